/* mapping.h - shared by the ninjaone-mapping plugin's files. */
#ifndef NJ_MAPPING_H
#define NJ_MAPPING_H

#include <jansson.h>
#include <stdbool.h>

#include "ninjaone/client.h"
#include "regentra/devsrc.h"
#include "regentra/plugin.h"

#define PROVIDER "ninjaone"

extern const rn_host_t *host;

/* The plugin instance: options of its [plugin "ninjaone-mapping"] section. */
typedef struct mapping_state_s {
  nj_connection_t connection; /* where the API is, and the budget */
  uint32_t max_orgs;
} mapping_state_t;

/* One run of one command: everything its steps share. Freed by op_finish. */
typedef struct op_s op_t;
struct op_s {
  rn_ctx_t *ctx;
  mapping_state_t *state;
  rn_job_t *job;
  json_t *params;          /* borrowed from the job's JSON, parsed */
  int64_t msp_org_id;
  nj_region_t region;
  bool has_region;
  const char *client_id;   /* borrowed from params or client_id_buf */
  char client_id_buf[256]; /* of a saved credential */
  char *sealed;            /* a saved sealed secret (host memory) */
  char *secret;            /* new; wiped by op_finish */
  size_t secret_len;
  nj_client_t *client;
  /* discovery */
  json_t *orgs;            /* [{"id":"12","name":"Contoso"}] */
  nj_walk_result_t walk;
  char walk_message[512];
  /* the outcome */
  json_t *result;
  char summary[65536]; /* listings of a few hundred rows fit */
  char error[4096];
  const char *code; /* the stable --json error code of a failure, or NULL */
  const char *hint; /* what fixes it, when known, or NULL */
  int status;
  int64_t now_ms;
  void (*then)(op_t *op); /* continuation after op_check_msp */
};

/* Starts op for a job: parses params (msp_org, region). */
op_t *op_new(rn_ctx_t *ctx, void *state, rn_job_t *job);
/* Completes the job with op->status/result/summary and frees op. */
void op_finish(op_t *op);
/* Sets status and error text, then finishes. */
void op_fail(op_t *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Names the failure being reported: code (see README "Error codes") and
 * the fix, both static strings. */
void op_explain(op_t *op, const char *code, const char *hint);

/* A company name as names are compared: trimmed, case folded, runs of white
 * space as one space. The suggestion (sdk/devsrc/mappings.c) folds alike. */
#define FOLDED_NAME(column) \
  "lower(regexp_replace(btrim(" column "), '\\s+', ' ', 'g'))"

/* Creates op->client for op->region with op->client_id and the secret
 * (copied by the client); wipes op->secret if that was the source. */
int op_make_client(op_t *op, const char *secret, size_t secret_len);
/* Authenticates, then walks /v2/organizations into op->orgs; calls next
 * (op->status set) when done. */
void op_discover(op_t *op, void (*next)(op_t *op));
/* Runs body in a transaction with an rn_devsrc_t; next gets the status. */
typedef int (*op_tx_fn)(op_t *op, rn_devsrc_t *ds);
void op_transaction(op_t *op, op_tx_fn body, void (*next)(op_t *op));
/* Checks that msp_org_id names an MSP organization, then calls next. */
void op_check_msp(op_t *op, void (*next)(op_t *op));
/* A job's run hook: a new op, the MSP check, then first(op). */
int op_start(rn_ctx_t *ctx, void *state, rn_job_t *job,
             void (*first)(op_t *op));

/* The jobs, one per command. */
/* Bulk mapping (bulk.c): `map --accept-suggestions` and `map --from-file`;
 * a preview unless --apply. Completes the job. */
void bulk_map_start(op_t *op);

extern const rn_job_def_t job_test, job_connect, job_orgs, job_map,
    job_disconnect, job_status;

/* ------------------------------------------------ request budget (plan.c) */

/* What the last asset sync knows of one active credential. */
typedef struct cred_plan_s {
  char region[16];
  int64_t known_orgs, mapped, promoted, devices, promoted_devices;
  int64_t sync_device_pages; /* sum over mapped of max(1, ceil(d/1000)) */
  int64_t sweep_pages;       /* sum over promoted of 6 * max(1, ...) */
} cred_plan_t;

/* The credentials of an MSP organization, ordered by region; *creds is host
 * memory (NULL when there is none). On failure err says why. */
int plan_query(rn_db_tx_t *tx, int64_t msp_org_id, cred_plan_t **creds,
               size_t *ncreds, char *err, size_t errlen);

/* The schedules being planned: hours between two runs, 0 = not scheduled. */
typedef struct plan_cadence_s {
  int sync_period_h;
  int sweep_period_h;
} plan_cadence_t;
extern const plan_cadence_t plan_shipped_cadence;

/* The hours between two runs of a 5-field cron schedule that runs at one
 * minute of some hours of every day (every 4th hour: 4; "0 0,12 * * *":
 * 12): 24 over the runs a day, rounded down. 0 for another shape. */
int plan_period_hours(const char *schedule);

typedef struct budget_plan_s {
  int64_t usable_minute, usable_hour; /* the share the runner spends */
  int64_t sync, sweep, discovery, tokens_per_hour; /* requests of a run */
  double per_customer; /* sweep requests of a promoted customer */
  int64_t peak_minute, peak_hour;
  int window_h; /* between two syncs (or sweeps without sync) */
  int64_t window, window_usable;
  bool fits;
  int64_t max_promoted, max_promoted_hour;
  double sync_minutes, sweep_hours; /* at the usable rate */
} budget_plan_t;

/* The one arithmetic of `plan`, `status` and check-config (README "Request
 * budget"): c's requests at cadence against per_minute and per_hour. */
void plan_budget(const cred_plan_t *c, const plan_cadence_t *cadence,
                 int64_t per_minute, int64_t per_hour, budget_plan_t *out);

/* Whether c fits at cadence under the state's budget: {"fits",
 * "promoted_customers", "window_requests", "window_usable", "window_hours",
 * "max_promoted_customers", "peak_hour_requests", "peak_hour_limit"}. */
json_t *plan_fit_json(const mapping_state_t *state, const cred_plan_t *c,
                      const plan_cadence_t *cadence);

extern const rn_job_def_t job_plan, job_check_config;

#endif
