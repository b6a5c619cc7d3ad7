/* plan.c - `regentra-runner ninjaone plan --msp-org N [--json]`: the
 * NinjaOne requests the shipped cadences need for one MSP, per credential,
 * against the tenant's budget, from the mappings and the device counts of
 * the last asset sync. The arithmetic is in README.md ("Request budget").
 *
 * --json is an API: the field names below are stable; a failure carries
 * "error" (a code: not_found, not_an_msp, not_connected, database) and
 * "message". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping.h"

/* The cadences of the shipped conf.d examples. */
#define SYNC_SCHEDULE "15 */4 * * *"
#define SWEEP_SCHEDULE "30 */6 * * *"
#define SYNC_PERIOD_H 4
#define SWEEP_PERIOD_H 6
/* Rows of one page (devices-detailed, query reports, organizations). */
#define PAGE_ROWS 1000
/* The evidence sweep's endpoints, one request each per customer. */
#define SWEEP_ENDPOINTS 6
/* The share of the budget the runner spends (runner/ratelimit.h). */
#define MARGIN_PCT 95

typedef struct cred_plan_s {
  char region[16];
  int64_t known_orgs, mapped, promoted, devices, promoted_devices;
  int64_t sync_device_pages; /* sum over mapped of max(1, ceil(d/1000)) */
  int64_t sweep_pages;       /* sum over promoted of 6 * max(1, ...) */
} cred_plan_t;

typedef struct plan_s {
  rn_ctx_t *ctx;
  mapping_state_t *state;
  rn_job_t *job;
  int64_t msp_org_id;
  cred_plan_t *creds;
  size_t ncreds;
  const char *code; /* static; NULL = success */
  char message[512];
} plan_t;

static int fail(plan_t *p, const char *code, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(plan_t *p, const char *code, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->message, sizeof p->message, fmt, ap);
  va_end(ap);
  p->code = code;
  return status;
}

static int64_t int_at(const rn_db_result_t *res, int row, int col) {
  const char *v = host->db_value(res, row, col);
  return v ? strtoll(v, NULL, 10) : 0;
}

/* Device count per mapping: the "seen" of the credential's last asset sync
 * record, else the mapping's company's active NinjaOne assets, else 0. */
static const char plan_sql[] =
    "WITH m AS ("
    " SELECT c.region, m.id, pc.converted_to_organization_id IS NOT NULL"
    "  AS promoted, coalesce((SELECT max((d->>'seen')::bigint) FROM"
    "  jsonb_array_elements(CASE WHEN jsonb_typeof(c.last_asset_sync->"
    "  'details') = 'array' THEN c.last_asset_sync->'details' ELSE"
    "  '[]'::jsonb END) d WHERE d->>'mapping_id' = m.id::text),"
    "  (SELECT count(*) FROM asset a WHERE a.msp_org_id = m.msp_org_id AND"
    "  a.portal_company_id = m.portal_company_id AND a.external_source ="
    "  'ninjaone' AND a.status = 'ACTIVE'), 0) AS devices"
    " FROM integration_credential c"
    " JOIN integration_org_mapping m ON m.msp_org_id = c.msp_org_id AND"
    "  m.provider = c.provider AND m.region = c.region AND m.state = 'MAPPED'"
    " JOIN portal_company pc ON pc.id = m.portal_company_id"
    " WHERE c.msp_org_id = $1 AND c.provider = 'ninjaone' AND c.is_active)"
    "SELECT c.region,"
    " (SELECT count(*) FROM integration_org_mapping x WHERE x.msp_org_id ="
    "  c.msp_org_id AND x.provider = c.provider AND x.region = c.region"
    "  AND x.vanished_at IS NULL),"
    " count(m.id), count(m.id) FILTER (WHERE m.promoted),"
    " coalesce(sum(m.devices), 0),"
    " coalesce(sum(m.devices) FILTER (WHERE m.promoted), 0),"
    " coalesce(sum(greatest(1, ceil(m.devices / 1000.0))), 0),"
    " coalesce(sum(6 * greatest(1, ceil(m.devices / 1000.0)))"
    "  FILTER (WHERE m.promoted), 0)"
    " FROM integration_credential c LEFT JOIN m ON m.region = c.region"
    " WHERE c.msp_org_id = $1 AND c.provider = 'ninjaone' AND c.is_active"
    " GROUP BY c.msp_org_id, c.provider, c.region ORDER BY c.region";

static int plan_tx(rn_db_tx_t *tx, void *data) {
  plan_t *p = data;
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)p->msp_org_id);
  const char *params[] = {id};
  rn_db_result_t *res = NULL;
  int rc = host->db_tx_exec(tx, "SELECT kind FROM organization WHERE id = $1",
                            1, params, &res);
  if (rc < 0)
    return fail(p, "database", rc, "database: %s", host->db_tx_error(tx));
  if (host->db_rows(res) == 0) {
    host->db_result_free(res);
    return fail(p, "not_found", RN_ENOENT, "no organization %lld",
                (long long)p->msp_org_id);
  }
  bool msp = strcmp(host->db_value(res, 0, 0), "MSP") == 0;
  host->db_result_free(res);
  if (!msp)
    return fail(p, "not_an_msp", RN_EINVAL,
                "organization %lld is not an MSP organization",
                (long long)p->msp_org_id);
  rc = host->db_tx_exec(tx, plan_sql, 1, params, &res);
  if (rc < 0)
    return fail(p, "database", rc, "database: %s", host->db_tx_error(tx));
  int rows = host->db_rows(res);
  if (rows == 0) {
    host->db_result_free(res);
    return fail(p, "not_connected", RN_ENOENT,
                "MSP organization %lld has no active NinjaOne credential",
                (long long)p->msp_org_id);
  }
  p->creds = host->calloc((size_t)rows, sizeof *p->creds);
  if (!p->creds) {
    host->db_result_free(res);
    return fail(p, "database", RN_ENOMEM, "out of memory");
  }
  for (int r = 0; r < rows; r++) {
    cred_plan_t *c = &p->creds[r];
    snprintf(c->region, sizeof c->region, "%s", host->db_value(res, r, 0));
    c->known_orgs = int_at(res, r, 1);
    c->mapped = int_at(res, r, 2);
    c->promoted = int_at(res, r, 3);
    c->devices = int_at(res, r, 4);
    c->promoted_devices = int_at(res, r, 5);
    c->sync_device_pages = int_at(res, r, 6);
    c->sweep_pages = int_at(res, r, 7);
  }
  p->ncreds = (size_t)rows;
  host->db_result_free(res);
  return 0;
}

static int64_t pages_of(int64_t rows) {
  return rows <= PAGE_ROWS ? 1 : (rows + PAGE_ROWS - 1) / PAGE_ROWS;
}

/* Without libm: the plugin links nothing it does not need. */
static double rounded(double x, int decimals) {
  double scale = decimals == 1 ? 10.0 : 100.0;
  return (double)(int64_t)(x * scale + 0.5) / scale;
}

static json_t *budget_line(int64_t requests, int64_t limit) {
  return json_pack("{s:I, s:I, s:I}", "requests", (json_int_t)requests, "limit",
                   (json_int_t)limit, "headroom",
                   (json_int_t)(limit - requests));
}

/* One credential's plan; appends its lines to summary. */
static json_t *plan_credential(const cred_plan_t *c, int64_t per_minute,
                               int64_t per_hour, char *summary, size_t *used,
                               size_t cap, bool *fits_out) {
  int64_t usable_minute = per_minute * MARGIN_PCT / 100;
  int64_t usable_hour = per_hour * MARGIN_PCT / 100;
  if (usable_minute < 1)
    usable_minute = 1;
  if (usable_hour < 1)
    usable_hour = 1;
  int64_t org_pages = pages_of(c->known_orgs);
  int64_t sync = org_pages + c->sync_device_pages;
  int64_t sweep = c->sweep_pages;
  int64_t discovery = org_pages;
  int64_t tokens_per_hour = 1;
  /* A customer promoted next costs what the promoted ones cost on
   * average, and at least the six endpoints. */
  double per_customer =
      c->promoted ? (double)sweep / (double)c->promoted : SWEEP_ENDPOINTS;
  /* The runner paces at the usable per-minute rate: no minute sees more
   * than that, whatever a run queues. */
  int64_t biggest_run = sync > sweep ? sync : sweep;
  int64_t peak_minute =
      biggest_run < usable_minute ? biggest_run : usable_minute;
  /* 00:xx and 12:xx hold both the :15 sync and the :30 sweep. */
  int64_t peak_hour = sync + sweep + tokens_per_hour;
  /* Both runs of 00:15 / 00:30 done before the next sync at 04:15. */
  int64_t window = sync + sweep + SYNC_PERIOD_H * tokens_per_hour;
  int64_t window_usable = SYNC_PERIOD_H * usable_hour;
  bool fits = window <= window_usable;
  *fits_out = fits;
  double left_window =
      (double)(window_usable - sync - SYNC_PERIOD_H * tokens_per_hour);
  double left_hour = (double)(usable_hour - sync - tokens_per_hour);
  int64_t max_promoted =
      left_window > 0 ? (int64_t)(left_window / per_customer) : 0;
  int64_t max_promoted_hour =
      left_hour > 0 ? (int64_t)(left_hour / per_customer) : 0;
  double sync_minutes = (double)sync / (double)usable_minute;
  double sweep_hours = (double)sweep / (double)usable_hour;
  if ((double)sweep / (double)usable_minute / 60.0 > sweep_hours)
    sweep_hours = (double)sweep / (double)usable_minute / 60.0;

  json_t *cadences = json_pack(
      "{s:{s:s, s:i, s:I, s:f}, s:{s:s, s:i, s:I, s:f, s:f},"
      " s:{s:n, s:I}, s:{s:I}}",
      "asset_sync", "schedule", SYNC_SCHEDULE, "runs_per_day",
      24 / SYNC_PERIOD_H, "requests", (json_int_t)sync, "minutes_at_full_rate",
      rounded(sync_minutes, 1), "evidence_sweep", "schedule", SWEEP_SCHEDULE,
      "runs_per_day", 24 / SWEEP_PERIOD_H, "requests", (json_int_t)sweep,
      "requests_per_customer", rounded(per_customer, 2), "hours_at_full_rate",
      rounded(sweep_hours, 2), "discovery", "schedule", "requests",
      (json_int_t)discovery, "tokens", "requests_per_hour",
      (json_int_t)tokens_per_hour);
  json_t *j = json_pack(
      "{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:b, s:I, s:I}",
      "region", c->region, "known_organizations", (json_int_t)c->known_orgs,
      "mapped_customers", (json_int_t)c->mapped, "promoted_customers",
      (json_int_t)c->promoted, "devices", (json_int_t)c->devices,
      "promoted_devices", (json_int_t)c->promoted_devices, "cadences", cadences,
      "peak_minute", budget_line(peak_minute, per_minute), "peak_hour",
      budget_line(peak_hour, per_hour), "sync_window",
      json_pack("{s:I, s:I, s:I, s:i}", "requests", (json_int_t)window,
                "usable", (json_int_t)window_usable, "headroom",
                (json_int_t)(window_usable - window), "hours", SYNC_PERIOD_H),
      "fits", fits, "max_promoted_customers", (json_int_t)max_promoted,
      "max_promoted_customers_within_hour", (json_int_t)max_promoted_hour);
  if (*used < cap)
    *used += (size_t)snprintf(
        summary + *used, cap - *used,
        "\n  region %s: %lld mapped customers (%lld promoted), %lld devices"
        "\n    asset sync (%s): %lld requests a run, %.1f min at %lld/min"
        "\n    evidence sweep (%s): %lld requests a run (%.2f a customer),"
        " %.2f h at %lld/h"
        "\n    discovery: %lld request(s) a run; tokens: %lld an hour"
        "\n    busiest minute: %lld of %lld (headroom %lld)"
        "\n    busiest hour (00:00 and 12:00 UTC, sync + sweep + token):"
        " %lld of %lld (headroom %lld)"
        "\n    sync + sweep + tokens before the next sync (%d h): %lld of"
        " %lld usable (headroom %lld): %s"
        "\n    promoted customers that fit: %lld (%lld within one hour)",
        c->region, (long long)c->mapped, (long long)c->promoted,
        (long long)c->devices, SYNC_SCHEDULE, (long long)sync, sync_minutes,
        (long long)usable_minute, SWEEP_SCHEDULE, (long long)sweep,
        per_customer, sweep_hours, (long long)usable_hour, (long long)discovery,
        (long long)tokens_per_hour, (long long)peak_minute,
        (long long)per_minute, (long long)(per_minute - peak_minute),
        (long long)peak_hour, (long long)per_hour,
        (long long)(per_hour - peak_hour), SYNC_PERIOD_H, (long long)window,
        (long long)window_usable, (long long)(window_usable - window),
        fits ? "fits" : "does NOT fit", (long long)max_promoted,
        (long long)max_promoted_hour);
  if (*used > cap)
    *used = cap;
  return j;
}

static void plan_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  plan_t *p = data;
  json_t *result;
  char summary[8192];
  if (status < 0) {
    if (!p->code)
      fail(p, "database", status, "database: %s", host->strerror(status));
    result = json_pack("{s:s, s:s, s:I}", "error", p->code, "message",
                       p->message, "msp_org", (json_int_t)p->msp_org_id);
    snprintf(summary, sizeof summary, "%s", p->message);
  } else {
    int64_t per_minute = p->state->connection.rate_per_minute
                             ? p->state->connection.rate_per_minute
                             : 200;
    int64_t per_hour = p->state->connection.rate_per_hour
                           ? p->state->connection.rate_per_hour
                           : 1500;
    size_t used = (size_t)snprintf(
        summary, sizeof summary,
        "NinjaOne request plan for MSP organization %lld: budget %lld/min and"
        " %lld/h per credential, the runner spends %d%% of it",
        (long long)p->msp_org_id, (long long)per_minute, (long long)per_hour,
        MARGIN_PCT);
    json_t *creds = json_array();
    bool all_fit = true;
    for (size_t i = 0; i < p->ncreds; i++) {
      bool fits;
      json_array_append_new(creds, plan_credential(&p->creds[i], per_minute,
                                                   per_hour, summary, &used,
                                                   sizeof summary, &fits));
      all_fit &= fits;
    }
    result =
        json_pack("{s:I, s:{s:I, s:I, s:i, s:I, s:I}, s:o, s:b}", "msp_org",
                  (json_int_t)p->msp_org_id, "budget", "per_minute",
                  (json_int_t)per_minute, "per_hour", (json_int_t)per_hour,
                  "margin_pct", MARGIN_PCT, "usable_per_minute",
                  (json_int_t)(per_minute * MARGIN_PCT / 100),
                  "usable_per_hour", (json_int_t)(per_hour * MARGIN_PCT / 100),
                  "credentials", creds, "fits", all_fit);
  }
  char *text =
      result ? json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  host->job_complete(p->job, status < 0 ? status : (text ? 0 : RN_ENOMEM), text,
                     summary);
  free(text);
  json_decref(result);
  host->free(p->creds);
  host->free(p);
}

static const rn_option_t plan_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX, .help = "the MSP organization id"),
    {0},
};

static int run_plan(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  plan_t *p = host->calloc(1, sizeof *p);
  if (!p)
    return RN_ENOMEM;
  p->ctx = ctx;
  p->state = state;
  p->job = job;
  json_t *params = json_loads(host->job_params(job), 0, NULL);
  p->msp_org_id = json_integer_value(json_object_get(params, "msp_org"));
  json_decref(params);
  int rc = host->db_transaction(ctx, plan_tx, plan_done, p, NULL);
  if (rc < 0)
    host->free(p);
  return rc;
}

const rn_job_def_t job_plan = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "plan",
    .summary = "the NinjaOne requests of each shipped cadence against the "
               "tenant's budget, and how many promoted customers fit",
    .params = plan_params,
    .run = run_plan,
    .command = "plan",
};
