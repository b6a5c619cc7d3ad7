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

#include "../evidence/pacing.h"
#include "mapping.h"

/* The cadences of the shipped conf.d examples. */
#define SYNC_SCHEDULE "15 */4 * * *"
#define SWEEP_SCHEDULE "30 */6 * * *"
/* Rows of one page (devices-detailed, query reports, organizations). */
#define PAGE_ROWS 1000
/* The evidence sweep's endpoints, one request each per customer. */
#define SWEEP_ENDPOINTS 6
/* The share of the budget the runner spends (runner/ratelimit.h). */
#define MARGIN_PCT 95

const plan_cadence_t plan_shipped_cadence = {.sync_period_h = 4,
                                             .sweep_period_h = 6};

typedef struct plan_s {
  rn_ctx_t *ctx;
  mapping_state_t *state;
  rn_job_t *job;
  int64_t msp_org_id;
  cred_plan_t *creds;
  size_t ncreds;
  plan_cadence_t cadence;
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

/* Device count per mapping (NJ_SQL_MAPPING_DEVICES, shared with the
 * evidence sweep's pacing). */
static const char plan_sql[] =
    "WITH m AS ("
    " SELECT c.region, m.id, pc.converted_to_organization_id IS NOT NULL"
    "  AS promoted, " NJ_SQL_MAPPING_DEVICES " AS devices"
    " FROM integration_credential c"
    " JOIN integration_org_mapping m ON m.msp_org_id = c.msp_org_id AND"
    "  m.provider = c.provider AND m.region = c.region AND m.state = 'MAPPED'"
    " JOIN portal_company pc ON pc.id = m.portal_company_id"
    " LEFT JOIN " NJ_SQL_SEEN_DEVICES " seen ON seen.mapping_id = m.id"
    " WHERE c.msp_org_id = $1 AND c.provider = 'ninjaone' AND c.is_active)"
    "SELECT c.region,"
    " (SELECT count(*) FROM integration_org_mapping x WHERE x.msp_org_id ="
    "  c.msp_org_id AND x.provider = c.provider AND x.region = c.region"
    "  AND x.vanished_at IS NULL),"
    " count(m.id), count(m.id) FILTER (WHERE m.promoted),"
    " coalesce(sum(m.devices), 0),"
    " coalesce(sum(m.devices) FILTER (WHERE m.promoted), 0),"
    " coalesce(sum(" NJ_SQL_PAGES("m.devices") "), 0),"
    " coalesce(sum(" NJ_SQL_SWEEP_REQUESTS("m.devices") ")"
    "  FILTER (WHERE m.promoted), 0)"
    " FROM integration_credential c LEFT JOIN m ON m.region = c.region"
    " WHERE c.msp_org_id = $1 AND c.provider = 'ninjaone' AND c.is_active"
    " GROUP BY c.msp_org_id, c.provider, c.region ORDER BY c.region";

int plan_query(rn_db_tx_t *tx, int64_t msp_org_id, cred_plan_t **creds,
               size_t *ncreds, char *err, size_t errlen) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)msp_org_id);
  const char *params[] = {id};
  rn_db_result_t *res = NULL;
  *creds = NULL;
  *ncreds = 0;
  int rc = host->db_tx_exec(tx, plan_sql, 1, params, &res);
  if (rc < 0) {
    snprintf(err, errlen, "database: %s", host->db_tx_error(tx));
    return rc;
  }
  int rows = host->db_rows(res);
  if (rows > 0 && !(*creds = host->calloc((size_t)rows, sizeof **creds))) {
    host->db_result_free(res);
    snprintf(err, errlen, "out of memory");
    return RN_ENOMEM;
  }
  for (int r = 0; r < rows; r++) {
    cred_plan_t *c = &(*creds)[r];
    snprintf(c->region, sizeof c->region, "%s", host->db_value(res, r, 0));
    c->known_orgs = int_at(res, r, 1);
    c->mapped = int_at(res, r, 2);
    c->promoted = int_at(res, r, 3);
    c->devices = int_at(res, r, 4);
    c->promoted_devices = int_at(res, r, 5);
    c->sync_device_pages = int_at(res, r, 6);
    c->sweep_pages = int_at(res, r, 7);
  }
  *ncreds = (size_t)rows;
  host->db_result_free(res);
  return 0;
}

static int plan_tx(rn_devsrc_t *ds, void *data) {
  plan_t *p = data;
  /* The card's MSP check and its words. */
  int rc = rk_check_msp(ds, p->msp_org_id);
  if (rc == RN_ENOENT)
    return fail(p, "not_found", RN_ENOENT, "%s", rn_devsrc_error(ds));
  if (rc == RN_ETENANT)
    return fail(p, "not_an_msp", RN_EINVAL, "%s", rn_devsrc_error(ds));
  if (rc < 0)
    return fail(p, "database", rc, "%s", rn_devsrc_error(ds));
  rc = plan_query(ds->tx, p->msp_org_id, &p->creds, &p->ncreds, p->message,
                  sizeof p->message);
  if (rc < 0)
    return fail(p, "database", rc, "%s", p->message);
  if (p->ncreds == 0)
    return fail(p, "not_connected", RN_ENOENT,
                "MSP organization %lld has no active NinjaOne credential",
                (long long)p->msp_org_id);
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

int plan_period_hours(const char *schedule) {
  char minute[32], hour[64], dom[8], month[8], dow[8], extra[2];
  if (!schedule || sscanf(schedule, "%31s %63s %7s %7s %7s %1s", minute, hour,
                          dom, month, dow, extra) != 5)
    return 0;
  if (strcmp(dom, "*") || strcmp(month, "*") || strcmp(dow, "*") ||
      strspn(minute, "0123456789") != strlen(minute))
    return 0;
  int runs = 0;
  if (strcmp(hour, "*") == 0) {
    runs = 24;
  } else if (strncmp(hour, "*/", 2) == 0) {
    int step = atoi(hour + 2);
    runs = step > 0 ? (24 + step - 1) / step : 0;
  } else {
    /* "0,12" or "3": hours listed one by one */
    for (const char *h = hour; *h;) {
      size_t digits = strspn(h, "0123456789");
      if (digits == 0 || atoi(h) > 23)
        return 0;
      runs++;
      h += digits;
      if (*h == ',')
        h++;
      else if (*h)
        return 0;
    }
  }
  return runs > 0 ? 24 / runs : 0;
}

void plan_budget(const cred_plan_t *c, const plan_cadence_t *cadence,
                 int64_t per_minute, int64_t per_hour, budget_plan_t *o) {
  memset(o, 0, sizeof *o);
  o->usable_minute = per_minute * MARGIN_PCT / 100;
  o->usable_hour = per_hour * MARGIN_PCT / 100;
  if (o->usable_minute < 1)
    o->usable_minute = 1;
  if (o->usable_hour < 1)
    o->usable_hour = 1;
  int64_t org_pages = pages_of(c->known_orgs);
  o->sync = cadence->sync_period_h ? org_pages + c->sync_device_pages : 0;
  o->sweep = cadence->sweep_period_h ? c->sweep_pages : 0;
  o->discovery = org_pages;
  o->tokens_per_hour = 1;
  /* A customer promoted next costs what the promoted ones cost on
   * average, and at least the six endpoints. */
  o->per_customer = c->promoted ? (double)c->sweep_pages / (double)c->promoted
                                : SWEEP_ENDPOINTS;
  /* The runner paces at the usable per-minute rate: no minute sees more
   * than that, whatever a run queues. */
  int64_t biggest_run = o->sync > o->sweep ? o->sync : o->sweep;
  o->peak_minute =
      biggest_run < o->usable_minute ? biggest_run : o->usable_minute;
  /* The shipped 00:xx and 12:xx hold both the :15 sync and the :30 sweep;
   * any two cadences meet in some hour. */
  o->peak_hour = o->sync + o->sweep + o->tokens_per_hour;
  /* Everything between two syncs is done before the next one starts: the
   * sync, the sweeps that start in that window, a token an hour. */
  o->window_h =
      cadence->sync_period_h ? cadence->sync_period_h : cadence->sweep_period_h;
  int64_t sweeps = 0;
  if (cadence->sweep_period_h && o->window_h)
    sweeps =
        (o->window_h + cadence->sweep_period_h - 1) / cadence->sweep_period_h;
  o->window = o->sync + sweeps * o->sweep + o->window_h * o->tokens_per_hour;
  o->window_usable = o->window_h * o->usable_hour;
  o->fits = o->window <= o->window_usable;
  double left_window =
      (double)(o->window_usable - o->sync - o->window_h * o->tokens_per_hour);
  double left_hour = (double)(o->usable_hour - o->sync - o->tokens_per_hour);
  double per_window = o->per_customer * (double)(sweeps ? sweeps : 1);
  o->max_promoted = left_window > 0 ? (int64_t)(left_window / per_window) : 0;
  o->max_promoted_hour =
      left_hour > 0 ? (int64_t)(left_hour / o->per_customer) : 0;
  o->sync_minutes = (double)o->sync / (double)o->usable_minute;
  o->sweep_hours = (double)o->sweep / (double)o->usable_hour;
  if ((double)o->sweep / (double)o->usable_minute / 60.0 > o->sweep_hours)
    o->sweep_hours = (double)o->sweep / (double)o->usable_minute / 60.0;
}

/* One credential's plan; appends its lines to summary. */
static json_t *plan_credential(const cred_plan_t *c,
                               const plan_cadence_t *cadence,
                               int64_t per_minute, int64_t per_hour,
                               char *summary, size_t *used, size_t cap,
                               bool *fits_out) {
  budget_plan_t b;
  plan_budget(c, cadence, per_minute, per_hour, &b);
  *fits_out = b.fits;
  int sync_h = cadence->sync_period_h, sweep_h = cadence->sweep_period_h;
  json_t *cadences =
      json_pack("{s:{s:s, s:i, s:I, s:f}, s:{s:s, s:i, s:I, s:f, s:f},"
                " s:{s:n, s:I}, s:{s:I}}",
                "asset_sync", "schedule", SYNC_SCHEDULE, "runs_per_day",
                sync_h ? 24 / sync_h : 0, "requests", (json_int_t)b.sync,
                "minutes_at_full_rate", rounded(b.sync_minutes, 1),
                "evidence_sweep", "schedule", SWEEP_SCHEDULE, "runs_per_day",
                sweep_h ? 24 / sweep_h : 0, "requests", (json_int_t)b.sweep,
                "requests_per_customer", rounded(b.per_customer, 2),
                "hours_at_full_rate", rounded(b.sweep_hours, 2), "discovery",
                "schedule", "requests", (json_int_t)b.discovery, "tokens",
                "requests_per_hour", (json_int_t)b.tokens_per_hour);
  json_t *j = json_pack(
      "{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:b, s:I, s:I}",
      "region", c->region, "known_organizations", (json_int_t)c->known_orgs,
      "mapped_customers", (json_int_t)c->mapped, "promoted_customers",
      (json_int_t)c->promoted, "devices", (json_int_t)c->devices,
      "promoted_devices", (json_int_t)c->promoted_devices, "cadences", cadences,
      "peak_minute", budget_line(b.peak_minute, per_minute), "peak_hour",
      budget_line(b.peak_hour, per_hour), "sync_window",
      json_pack("{s:I, s:I, s:I, s:i}", "requests", (json_int_t)b.window,
                "usable", (json_int_t)b.window_usable, "headroom",
                (json_int_t)(b.window_usable - b.window), "hours", b.window_h),
      "fits", b.fits, "max_promoted_customers", (json_int_t)b.max_promoted,
      "max_promoted_customers_within_hour", (json_int_t)b.max_promoted_hour);
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
        (long long)c->devices, SYNC_SCHEDULE, (long long)b.sync, b.sync_minutes,
        (long long)b.usable_minute, SWEEP_SCHEDULE, (long long)b.sweep,
        b.per_customer, b.sweep_hours, (long long)b.usable_hour,
        (long long)b.discovery, (long long)b.tokens_per_hour,
        (long long)b.peak_minute, (long long)per_minute,
        (long long)(per_minute - b.peak_minute), (long long)b.peak_hour,
        (long long)per_hour, (long long)(per_hour - b.peak_hour), b.window_h,
        (long long)b.window, (long long)b.window_usable,
        (long long)(b.window_usable - b.window),
        b.fits ? "fits" : "does NOT fit", (long long)b.max_promoted,
        (long long)b.max_promoted_hour);
  if (*used > cap)
    *used = cap;
  return j;
}

/* The tenant's budget as configured, else NinjaOne's published one. */
static void budget_limits(const mapping_state_t *state, int64_t *per_minute,
                          int64_t *per_hour) {
  *per_minute = state->connection.rate_per_minute
                    ? state->connection.rate_per_minute
                    : 200;
  *per_hour =
      state->connection.rate_per_hour ? state->connection.rate_per_hour : 1500;
}

json_t *plan_fit_json(const mapping_state_t *state, const cred_plan_t *c,
                      const plan_cadence_t *cadence) {
  int64_t per_minute, per_hour;
  budget_limits(state, &per_minute, &per_hour);
  budget_plan_t b;
  plan_budget(c, cadence, per_minute, per_hour, &b);
  return json_pack("{s:b, s:I, s:I, s:I, s:i, s:I, s:I, s:I}", "fits", b.fits,
                   "promoted_customers", (json_int_t)c->promoted,
                   "window_requests", (json_int_t)b.window, "window_usable",
                   (json_int_t)b.window_usable, "window_hours", b.window_h,
                   "max_promoted_customers", (json_int_t)b.max_promoted,
                   "peak_hour_requests", (json_int_t)b.peak_hour,
                   "peak_hour_limit", (json_int_t)per_hour);
}

static void plan_done(rn_ctx_t *ctx, int status, const char *error,
                      void *data) {
  (void)ctx;
  (void)error; /* p->message says it in this command's words */
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
    int64_t per_minute, per_hour;
    budget_limits(p->state, &per_minute, &per_hour);
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
      json_array_append_new(creds,
                            plan_credential(&p->creds[i], &plan_shipped_cadence,
                                            per_minute, per_hour, summary,
                                            &used, sizeof summary, &fits));
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
  int rc = rn_devsrc_transaction(host, ctx, plan_tx, plan_done, p);
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

/* ------------------------------------------------------- check-config */

/* `regentra-runner check-config` runs this with the schedules of the
 * enabled jobs: every MSP organization with an active NinjaOne credential
 * is planned at those cadences, and each credential that does not fit is a
 * warning. Without a database the check is skipped, and says why. */
typedef struct budget_check_s {
  mapping_state_t *state;
  rn_job_t *job;
  plan_cadence_t cadence;
  char sync_schedule[96], sweep_schedule[96];
  json_t *warnings;
  int64_t checked;
  char error[512];
} budget_check_t;

static int check_tx(rn_db_tx_t *tx, void *data) {
  budget_check_t *k = data;
  rn_db_result_t *res = NULL;
  int rc = host->db_tx_exec(
      tx,
      "SELECT DISTINCT msp_org_id FROM integration_credential WHERE"
      " provider = 'ninjaone' AND is_active ORDER BY 1",
      0, NULL, &res);
  if (rc < 0) {
    snprintf(k->error, sizeof k->error, "database: %s", host->db_tx_error(tx));
    return rc;
  }
  for (int r = 0; r < host->db_rows(res) && rc == 0; r++) {
    int64_t msp = int_at(res, r, 0);
    cred_plan_t *creds;
    size_t n;
    rc = plan_query(tx, msp, &creds, &n, k->error, sizeof k->error);
    for (size_t i = 0; rc == 0 && i < n; i++) {
      json_t *fit = plan_fit_json(k->state, &creds[i], &k->cadence);
      k->checked++;
      if (json_is_true(json_object_get(fit, "fits"))) {
        json_decref(fit);
        continue;
      }
      json_object_set_new(fit, "msp_org", json_integer((json_int_t)msp));
      json_object_set_new(fit, "region", json_string(creds[i].region));
      json_array_append_new(k->warnings, fit);
    }
    host->free(creds);
  }
  host->db_result_free(res);
  return rc;
}

static long long int_of(json_t *o, const char *key) {
  return (long long)json_integer_value(json_object_get(o, key));
}

static void check_finish(budget_check_t *k, int status) {
  char summary[8192];
  size_t used = (size_t)snprintf(
      summary, sizeof summary,
      "NinjaOne request budget (asset sync %s, evidence sweep %s): ",
      k->sync_schedule, k->sweep_schedule);
  json_t *result;
  if (status < 0) {
    /* Nothing to check against is not a configuration error. */
    snprintf(summary + used, sizeof summary - used, "check skipped: %s",
             k->error);
    result = json_pack("{s:b, s:s}", "skipped", 1, "reason", k->error);
  } else {
    size_t nwarn = json_array_size(k->warnings);
    used += (size_t)snprintf(
        summary + used, sizeof summary - used, "%lld credential(s) checked, %s",
        (long long)k->checked, nwarn ? "some do NOT fit" : "all fit");
    size_t i;
    json_t *w;
    json_array_foreach(k->warnings, i, w) {
      if (used >= sizeof summary)
        break;
      used += (size_t)snprintf(
          summary + used, sizeof summary - used,
          "\n  warning: MSP organization %lld, region %s: %lld promoted"
          " customer(s) need %lld requests in the %lld h between two syncs,"
          " %lld usable; at most %lld fit (see 'regentra-runner ninjaone"
          " plan --msp-org %lld')",
          int_of(w, "msp_org"), json_string_value(json_object_get(w, "region")),
          int_of(w, "promoted_customers"), int_of(w, "window_requests"),
          int_of(w, "window_hours"), int_of(w, "window_usable"),
          int_of(w, "max_promoted_customers"), int_of(w, "msp_org"));
    }
    result = json_pack("{s:b, s:I, s:b, s:O}", "skipped", 0, "checked",
                       (json_int_t)k->checked, "fits", nwarn == 0, "warnings",
                       k->warnings);
  }
  json_object_set_new(result, "cadence",
                      json_pack("{s:i, s:i}", "sync_period_hours",
                                k->cadence.sync_period_h, "sweep_period_hours",
                                k->cadence.sweep_period_h));
  char *text = json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(result);
  host->job_complete(k->job, text ? 0 : RN_ENOMEM, text, summary);
  free(text);
  json_decref(k->warnings);
  host->free(k);
}

static void check_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  budget_check_t *k = data;
  if (status < 0 && !k->error[0])
    snprintf(k->error, sizeof k->error,
             "the database did not answer (%s; the log says why)",
             host->strerror(status));
  check_finish(k, status);
}

/* The hours between runs of plugin.job among the enabled ones (0: off);
 * text describes the schedule. */
static int cadence_of(json_t *schedules, const char *job, char *text,
                      size_t cap) {
  const char *s = json_string_value(json_object_get(schedules, job));
  if (!s) {
    snprintf(text, cap, "off");
    return 0;
  }
  int period = plan_period_hours(s);
  /* Another shape of schedule: planned as once a day, and said so. */
  snprintf(text, cap, period ? "\"%.60s\"" : "\"%.60s\" (planned as daily)", s);
  return period ? period : 24;
}

static const rn_option_t check_params[] = {
    RN_OPTION(.name = "schedules", .type = RN_OPT_STRING,
              .help = "JSON object: \"plugin.job\" to the cron schedule of "
                      "each enabled job (default: the shipped ones)"),
    {0},
};

static int run_check(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  json_t *params = json_loads(host->job_params(job), 0, NULL);
  const char *text = json_string_value(json_object_get(params, "schedules"));
  json_t *schedules =
      text ? json_loads(text, 0, NULL)
           : json_pack("{s:s, s:s}", "ninjaone-assets.sync", SYNC_SCHEDULE,
                       "ninjaone-evidence.sweep", SWEEP_SCHEDULE);
  json_decref(params);
  if (!json_is_object(schedules)) {
    json_decref(schedules);
    return RN_EINVAL;
  }
  budget_check_t *k = host->calloc(1, sizeof *k);
  if (!k || !(k->warnings = json_array())) {
    json_decref(schedules);
    host->free(k);
    return RN_ENOMEM;
  }
  k->state = state;
  k->job = job;
  k->cadence.sync_period_h =
      cadence_of(schedules, "ninjaone-assets.sync", k->sync_schedule,
                 sizeof k->sync_schedule);
  k->cadence.sweep_period_h =
      cadence_of(schedules, "ninjaone-evidence.sweep", k->sweep_schedule,
                 sizeof k->sweep_schedule);
  json_decref(schedules);
  int rc = host->db_transaction(ctx, check_tx, check_done, k, NULL);
  if (rc < 0) {
    snprintf(k->error, sizeof k->error, "%s",
             rc == RN_ENOSYS ? "no database is configured (set [database] "
                               "url or REGENTRA_DATABASE_URL)"
                             : host->strerror(rc));
    check_finish(k, rc);
  }
  return 0;
}

const rn_job_def_t job_check_config = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "check_config",
    .summary = "whether the enabled NinjaOne schedules fit each tenant's "
               "request budget (run by check-config)",
    .params = check_params,
    .run = run_check,
};
