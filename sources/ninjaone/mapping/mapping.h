/* mapping.h - shared by the ninjaone-mapping plugin's files: the card's
 * provider table (provider.c) and the request plan (plan.c). */
#ifndef NJ_MAPPING_H
#define NJ_MAPPING_H

#include <jansson.h>
#include <stdbool.h>

#include "ninjaone/client.h"
#include "regentra/devsrc.h"
#include "regentra/kit/card.h"
#include "regentra/plugin.h"

extern const rn_host_t *host;

/* The plugin instance: options of its [plugin "ninjaone-mapping"] section. */
typedef struct mapping_state_s {
  nj_connection_t connection; /* where the API is, and the budget */
  uint32_t max_orgs;
} mapping_state_t;

/* The provider table of the integration card (provider.c). */
extern const rk_provider_t nj_card_provider;

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
