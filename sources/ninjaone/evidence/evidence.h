/* evidence.h - shared by the ninjaone-evidence plugin's files. */
#ifndef NJ_EVIDENCE_H
#define NJ_EVIDENCE_H

#include <jansson.h>
#include <stdbool.h>

#include "ninjaone/client.h"
#include "regentra/devsrc.h"
#include "regentra/plugin.h"
#include "signals.h"

#define PROVIDER "ninjaone"
#define CUSTOMER_EVENT "ninjaone-evidence.customer"
/* Queue priority of the customer jobs of a sweep (lower is claimed first;
 * cron ticks and events default to 0). */
#define EV_CUSTOMER_PRIORITY 10
#define EV_MAX_BACKUP_TYPES 8

extern const rn_host_t *host;

/* The plugin instance: options of its [plugin "ninjaone-evidence"] section. */
typedef struct ev_state_s {
  nj_connection_t connection; /* where the API is, and the budget */
  uint32_t max_devices_per_org;
  char backup_types[EV_MAX_BACKUP_TYPES][48]; /* activity types counted */
  size_t n_backup_types;
} ev_state_t;

/* One customer to sweep: what the stage-1 event carries. */
typedef struct ev_target_s {
  int64_t msp_org_id;      /* owns the credential; lookups only */
  int64_t customer_org_id; /* the compliance org; every write */
  int64_t mapping_id;
  nj_region_t region;
  char external_org_id[64];
  /* The tick that emitted this saw first_evidence_synced_at NULL: its
   * sweeps stay a dry run for tickets even after one of them stamps it. */
  bool first_sweep;
  /* The sweep's estimate of this customer's requests (pacing.h), from the
   * device count of the last asset sync; 0 outside a sweep. */
  int64_t planned_requests;
} ev_target_t;

/* The outcome of one customer sweep, handed to its caller. */
typedef struct ev_outcome_s {
  int status;          /* 0 or the error */
  const char *error;   /* borrowed; "" when status is 0 */
  json_t *report;      /* borrowed: statuses, tickets, counts */
} ev_outcome_t;

typedef void (*ev_customer_cb)(const ev_outcome_t *outcome, void *data);

/* Sweeps one customer: mapping and credential checks, the six walks, the
 * five signals, then one transaction of writes. Returns 0 and calls cb
 * exactly once, or a negative error and does not call it. */
int ev_customer_sweep(rn_ctx_t *ctx, ev_state_t *state,
                      const ev_target_t *target, ev_customer_cb cb,
                      void *data);

/* Helpers for JSON parameters given as numbers or decimal strings. */
bool ev_param_int(json_t *params, const char *name, int64_t *out);

/* Formats into a fixed buffer, for SQL parameters. */
void ev_itoa(int64_t n, char out[24]);

extern const rn_job_def_t job_sweep, job_customer;

#endif
