/* sweep.c - the two jobs. `sweep` (stage 1, every 6 hours at :30) runs on the
 * MSP scope: it lists active NinjaOne credentials joined to MAPPED mappings
 * whose company was promoted to a compliance organization and emits one
 * `customer` event per tuple, keyed for concurrency on the customer. Where
 * there is no queue (a plain CLI run) it sweeps them inline, one after
 * another. `customer` (stage 2) sweeps one. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence.h"
#include "ninjaone/explain.h"
#include "pacing.h"
#include "regentra/kit/card.h"

#define TICK_PERIOD_S (6 * 3600)
#define TICK_OFFSET_S (30 * 60)

/* ---------------------------------------------------------- customer job */

static const rn_option_t customer_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX,
              .help = "the MSP organization that owns the NinjaOne credential"),
    RN_OPTION(.name = "customer_org", .type = RN_OPT_INT,
              .flags = RN_OPT_REQUIRED, .min = 1, .max = INT64_MAX,
              .help =
                  "the customer's compliance organization (signals land here)"),
    RN_OPTION(.name = "mapping", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX, .help = "the organization mapping"),
    RN_OPTION(.name = "region", .type = RN_OPT_ENUM, .flags = RN_OPT_REQUIRED,
              .choices = NJ_REGION_CHOICES,
              .help = "the credential's NinjaOne region"),
    RN_OPTION(.name = "org", .type = RN_OPT_STRING, .flags = RN_OPT_REQUIRED,
              .help = "the NinjaOne organization id"),
    RN_OPTION(.name = "first_sweep", .type = RN_OPT_BOOL,
              .help =
                  "set by the sweep when its tick found the first sweep not "
                  "done: keeps the ticket bridge quiet"),
    {0},
};

/* Parses an event or command payload; err says what is wrong. */
static int parse_target(json_t *params, ev_target_t *t, char *err,
                        size_t errlen) {
  memset(t, 0, sizeof *t);
  /* The flag vocabulary of every ninjaone command: --msp-org,
   * --customer-org, --mapping, --org. */
  static const char *const ints[] = {"msp_org", "customer_org", "mapping"};
  int64_t *dst[] = {&t->msp_org_id, &t->customer_org_id, &t->mapping_id};
  for (int i = 0; i < 3; i++)
    if (!ev_param_int(params, ints[i], dst[i]) || *dst[i] <= 0) {
      snprintf(err, errlen, "parameter \"%s\": expected a positive integer",
               ints[i]);
      return RN_EINVAL;
    }
  const char *region = json_string_value(json_object_get(params, "region"));
  if (!region || nj_region_parse(region, &t->region) < 0) {
    snprintf(err, errlen,
             "parameter \"region\": expected one of " NJ_REGION_CHOICES);
    return RN_EINVAL;
  }
  json_t *ext = json_object_get(params, "org");
  if (json_is_integer(ext))
    snprintf(t->external_org_id, sizeof t->external_org_id, "%lld",
             (long long)json_integer_value(ext));
  else if (json_is_string(ext))
    snprintf(t->external_org_id, sizeof t->external_org_id, "%s",
             json_string_value(ext));
  size_t digits = strspn(t->external_org_id, "0123456789");
  if (!digits || digits > 18 || t->external_org_id[digits]) {
    snprintf(err, errlen,
             "parameter \"org\": expected a NinjaOne "
             "organization id (digits)");
    return RN_EINVAL;
  }
  t->first_sweep = json_is_true(json_object_get(params, "first_sweep"));
  return 0;
}

static void summarize(const ev_outcome_t *o, char *out, size_t len) {
  json_t *r = o->report;
  if (o->status < 0) {
    snprintf(
        out, len, "customer organization %lld: %s",
        (long long)json_integer_value(json_object_get(r, "customer_org_id")),
        o->error);
    return;
  }
  json_t *sig = json_object_get(r, "signals");
  json_t *tk = json_object_get(r, "tickets");
  size_t used = (size_t)snprintf(
      out, len,
      "customer organization %lld (NinjaOne organization %s, %lld approved "
      "device(s)%s): ",
      (long long)json_integer_value(json_object_get(r, "customer_org_id")),
      json_string_value(json_object_get(r, "external_org_id")),
      (long long)json_integer_value(json_object_get(r, "approved_devices")),
      json_is_true(json_object_get(r, "truncated")) ? ", truncated" : "");
  const char *key;
  json_t *v;
  bool first = true;
  json_object_foreach(sig, key, v) {
    if (used >= len)
      return;
    const char *ticket = json_string_value(json_object_get(tk, key));
    used += (size_t)snprintf(
        out + used, len - used, "%s%s %s%s%s", first ? "" : ", ", key,
        json_string_value(v),
        ticket && strcmp(ticket, "none") != 0 ? " ticket " : "",
        ticket && strcmp(ticket, "none") != 0 ? ticket : "");
    first = false;
  }
}

/* A failure's stable code and its fix (README "Error codes"). */
static const char *explain(int status, const char *error, const char **hint) {
  /* The two refusals of the mapping and credential checks. */
  if (status == RN_ESTATE && error && strstr(error, "promoted")) {
    *hint = "only customers whose company is promoted to a compliance "
            "organization are swept: link the company to its compliance "
            "organization, and map the NinjaOne organization to it";
    return "not_compliance_promoted";
  }
  if (status == RN_ESTATE && error && strstr(error, "disconnected")) {
    *hint = "connect again: 'regentra-runner ninjaone connect'";
    return "not_connected";
  }
  if (status == RN_ENOENT && error && strstr(error, "unknown MSP")) {
    *hint = "--msp-org takes the id of an organization of kind MSP";
    return "unknown_msp_org";
  }
  if (status == RN_ETENANT && error && strstr(error, "not an MSP")) {
    *hint = "--msp-org takes the MSP's organization id, not a customer's";
    return "not_an_msp";
  }
  return nj_explain_status(status, hint);
}

/* {error: code, message, hint} beside the rest of a failed result. */
static void set_failure(json_t *result, int status, const char *message) {
  const char *hint;
  const char *code = explain(status, message, &hint);
  if (code)
    json_object_set_new(result, "error", json_string(code));
  json_object_set_new(result, "message", json_string(message));
  if (hint)
    json_object_set_new(result, "hint", json_string(hint));
}

static void customer_done(const ev_outcome_t *o, void *data) {
  rn_job_t *job = data;
  /* The report stays the sweep's; a failure is told on a copy. */
  json_t *report =
      o->status < 0 ? json_deep_copy(o->report) : json_incref(o->report);
  if (o->status < 0)
    set_failure(report, o->status, o->error);
  char *result = json_dumps(report, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(report);
  char summary[2048];
  summarize(o, summary, sizeof summary);
  host->job_complete(job, o->status, result, summary);
  free(result);
}

static int run_customer(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  json_t *params = json_loads(host->job_params(job), 0, NULL);
  ev_target_t t;
  char err[256];
  int rc = params ? parse_target(params, &t, err, sizeof err) : RN_EJSON;
  json_decref(params);
  if (rc == 0)
    rc = ev_customer_sweep(ctx, state, &t, customer_done, job);
  if (rc < 0) {
    char result[1024];
    json_t *o = json_object();
    set_failure(o, rc, rc == RN_EINVAL ? err : host->strerror(rc));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    snprintf(result, sizeof result, "%s", text ? text : "{}");
    free(text);
    host->job_complete(job, rc, result,
                       rc == RN_EINVAL ? err : host->strerror(rc));
  }
  return 0;
}

const rn_job_def_t job_customer = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "customer",
    .summary = "sweep one compliance-promoted customer: six NinjaOne calls, "
               "five signals on its compliance organization",
    .params = customer_params,
    .run = run_customer,
    .command = "sweep-customer",
};

/* ------------------------------------------------------------- sweep job */

static const rn_option_t sweep_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .min = 1, .max = INT64_MAX,
              .help = "only this MSP organization (default: every MSP)"),
    {0},
};

/* One credential's customers in a sweep: they share its hour's budget. */
typedef struct pace_group_s {
  int64_t msp_org_id;
  nj_region_t region;
  int64_t customers;
  int64_t requests;      /* sum of the customers' planned_requests */
  int64_t sync_requests; /* the credential's asset sync, as plan counts it */
  nj_sweep_pacing_t pacing;
  int64_t placed; /* requests of the customers emitted so far */
  int64_t last_offset_ms;
} pace_group_t;

typedef struct sweep_s {
  rn_ctx_t *ctx;
  ev_state_t *state;
  rn_job_t *job;
  int64_t msp_filter; /* 0 = every MSP */
  int64_t now_ms;
  ev_target_t *targets;
  size_t n, next;
  pace_group_t *groups;
  size_t ngroups;
  size_t emitted, swept, failed;
  uint64_t approved_devices; /* of the customers swept inline */
  bool inline_mode;
  json_t *results;
  int status;
  char error[1024];
} sweep_t;

static void sweep_error(sweep_t *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sweep_error(sweep_t *s, int status, const char *fmt, ...) {
  if (s->status < 0)
    return;
  s->status = status < 0 ? status : RN_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->error, sizeof s->error, fmt, ap);
  va_end(ap);
}

/* What a group's pacing spends an hour: all of it in the first hour when
 * it runs at once, else spread evenly. */
static int64_t group_per_hour(const pace_group_t *g) {
  const nj_sweep_pacing_t *p = &g->pacing;
  if (p->spread_ms <= 0)
    return p->requests;
  return (int64_t)((double)p->requests * 3600000.0 / (double)p->spread_ms +
                   0.5);
}

/* The pacing chosen per credential, for the --json result and the job
 * record. */
static json_t *pacing_json(const sweep_t *s) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < s->ngroups; i++) {
    const pace_group_t *g = &s->groups[i];
    const nj_sweep_pacing_t *p = &g->pacing;
    json_array_append_new(
        a, json_pack(
               "{s:I, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:I,"
               " s:I, s:b}",
               "msp_org_id", (json_int_t)g->msp_org_id, "region",
               nj_region_name(g->region), "customers", (json_int_t)g->customers,
               "mode", p->spread_ms > 0 ? "spread" : "at_once",
               "estimated_requests", (json_int_t)p->requests,
               "asset_sync_requests", (json_int_t)g->sync_requests,
               "usable_per_hour", (json_int_t)p->usable_hour,
               "reserved_per_hour", (json_int_t)p->reserved, "sweep_per_hour",
               (json_int_t)p->sweep_hour, "spread_minutes",
               (double)p->spread_ms / 60000.0, "estimated_requests_per_hour",
               (json_int_t)group_per_hour(g), "last_start_offset_ms",
               (json_int_t)g->last_offset_ms, "fits", p->fits));
  }
  return a;
}

static size_t pacing_line(const pace_group_t *g, char *out, size_t len) {
  const nj_sweep_pacing_t *p = &g->pacing;
  int n;
  if (p->spread_ms <= 0)
    n = snprintf(out, len,
                 "\n  MSP organization %lld, region %s: %lld customer(s), "
                 "about %lld requests, at once (within the %lld an hour "
                 "left beside the asset sync)",
                 (long long)g->msp_org_id, nj_region_name(g->region),
                 (long long)g->customers, (long long)p->requests,
                 (long long)p->sweep_hour);
  else
    n = snprintf(out, len,
                 "\n  MSP organization %lld, region %s: %lld customer(s), "
                 "about %lld requests, spread over %lld minutes at about "
                 "%lld requests/hour (%lld usable, %lld kept for the asset "
                 "sync and a token)%s",
                 (long long)g->msp_org_id, nj_region_name(g->region),
                 (long long)g->customers, (long long)p->requests,
                 (long long)((p->spread_ms + 59999) / 60000),
                 (long long)group_per_hour(g), (long long)p->usable_hour,
                 (long long)p->reserved,
                 p->fits ? ""
                         : "; does NOT fit the budget before the next sweep "
                           "(see 'regentra-runner ninjaone plan')");
  if (n < 0)
    return 0;
  return (size_t)n < len ? (size_t)n : len;
}

static void sweep_finish(sweep_t *s) {
  /* Where the customers were swept: events for the queue, here, or nowhere
   * when there was no customer to sweep. */
  const char *mode = s->inline_mode ? "inline" : s->n ? "queued" : "none";
  json_t *result =
      json_pack("{s:s, s:I, s:I, s:I, s:I, s:O}", "mode", mode, "customers",
                (json_int_t)s->n, "emitted", (json_int_t)s->emitted, "swept",
                (json_int_t)s->swept, "failed", (json_int_t)s->failed,
                "results", s->results);
  if (result && !s->inline_mode && s->ngroups)
    json_object_set_new(result, "pacing", pacing_json(s));
  if (s->status < 0)
    set_failure(result, s->status, s->error);
  char *text =
      result ? json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(result);
  char summary[8192];
  size_t used;
  if (s->n == 0 && s->status < 0)
    used = (size_t)snprintf(summary, sizeof summary, "evidence sweep failed");
  else if (s->n == 0)
    used = (size_t)snprintf(summary, sizeof summary,
                            "evidence sweep: no active NinjaOne credential "
                            "has a MAPPED organization whose company is "
                            "promoted to a compliance organization");
  else if (s->inline_mode)
    used = (size_t)snprintf(summary, sizeof summary,
                            "evidence sweep (inline, no queue): %zu "
                            "customer(s), %zu swept, %zu failed",
                            s->n, s->swept, s->failed);
  else
    used = (size_t)snprintf(summary, sizeof summary,
                            "evidence sweep: %zu customer event(s) emitted "
                            "of %zu",
                            s->emitted, s->n);
  for (size_t g = 0; !s->inline_mode && g < s->ngroups; g++)
    if (used < sizeof summary)
      used += pacing_line(&s->groups[g], summary + used, sizeof summary - used);
  size_t i;
  json_t *r;
  json_array_foreach(s->results, i, r) {
    const char *line = json_string_value(json_object_get(r, "summary"));
    if (line && used < sizeof summary)
      used += (size_t)snprintf(summary + used, sizeof summary - used, "\n  %s",
                               line);
  }
  if (s->status < 0 && used < sizeof summary)
    snprintf(summary + used, sizeof summary - used, "\nerror: %s", s->error);
  host->job_complete(s->job, s->status, text, summary);
  free(text);
  json_decref(s->results);
  host->free(s->targets);
  host->free(s->groups);
  host->free(s);
}

static void sweep_next(sweep_t *s);

/* Customers done of all, for a person watching the command. */
static void report_progress(sweep_t *s) {
  if (!RN_HOST_HAS(host, progress))
    return;
  rn_progress_t p = RN_PROGRESS_INIT;
  p.stage = "sweeping customers";
  p.done = s->swept + s->failed;
  p.total = s->n;
  p.units = "customers";
  p.items = s->approved_devices;
  p.items_name = "approved devices";
  host->progress(s->job, &p);
}

static void inline_done(const ev_outcome_t *o, void *data) {
  sweep_t *s = data;
  char line[2048];
  summarize(o, line, sizeof line);
  json_t *r = json_deep_copy(o->report);
  json_object_set_new(r, "summary", json_string(line));
  json_array_append_new(s->results, r);
  if (o->status < 0) {
    s->failed++;
    sweep_error(s, o->status, "%s", line);
  } else {
    s->swept++;
  }
  json_int_t devices =
      json_integer_value(json_object_get(o->report, "approved_devices"));
  s->approved_devices += devices > 0 ? (uint64_t)devices : 0;
  sweep_next(s);
}

/* Customers one after another: one credential's rate budget, one at a time. */
static void sweep_next(sweep_t *s) {
  report_progress(s);
  while (s->next < s->n) {
    ev_target_t *t = &s->targets[s->next++];
    int rc = ev_customer_sweep(s->ctx, s->state, t, inline_done, s);
    if (rc == 0)
      return;
    s->failed++;
    sweep_error(s, rc, "customer organization %lld: cannot start: %s",
                (long long)t->customer_org_id, host->strerror(rc));
  }
  sweep_finish(s);
}

/* The scheduled :30 of a 6-hour boundary at or before now: re-emitting
 * within one tick (a retried or repeated run) is a no-op. */
static int64_t tick_of(int64_t now_ms) {
  int64_t now_s = now_ms / 1000 - TICK_OFFSET_S;
  return now_s - ((now_s % TICK_PERIOD_S) + TICK_PERIOD_S) % TICK_PERIOD_S +
         TICK_OFFSET_S;
}

static int emit_one(sweep_t *s, const ev_target_t *t, int64_t tick,
                    int64_t run_at_ms) {
  json_t *payload = json_pack(
      "{s:I, s:I, s:I, s:s, s:s, s:b}", "msp_org", (json_int_t)t->msp_org_id,
      "customer_org", (json_int_t)t->customer_org_id, "mapping",
      (json_int_t)t->mapping_id, "region", nj_region_name(t->region), "org",
      t->external_org_id, "first_sweep", t->first_sweep);
  char *text =
      payload ? json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(payload);
  if (!text)
    return RN_ENOMEM;
  char concurrency_key[24], idempotency_key[96];
  /* One sweep at a time per compliance org; customers run in parallel. */
  ev_itoa(t->customer_org_id, concurrency_key);
  snprintf(idempotency_key, sizeof idempotency_key,
           "ninjaone-evidence:mapping:%lld:tick:%lld", (long long)t->mapping_id,
           (long long)tick);
  rn_emit_opts_t opts = RN_EMIT_OPTS_INIT;
  opts.concurrency_key = concurrency_key;
  opts.concurrency_limit = 1;
  opts.idempotency_key = idempotency_key;
  /* Behind the asset sync and every other default-priority job: when both
   * are queued, the sync is claimed first instead of waiting out the
   * sweep. */
  opts.priority = EV_CUSTOMER_PRIORITY;
  opts.run_at_ms = run_at_ms;
  int rc = RN_HOST_HAS(host, emit)
               ? host->emit(s->job, CUSTOMER_EVENT, text, &opts)
               : RN_ENOSYS;
  free(text);
  return rc;
}

/* The group of a credential; created when asked to (groups has room for
 * one per target). */
static pace_group_t *group_of(sweep_t *s, int64_t msp_org_id,
                              nj_region_t region, bool create) {
  for (size_t i = 0; i < s->ngroups; i++)
    if (s->groups[i].msp_org_id == msp_org_id && s->groups[i].region == region)
      return &s->groups[i];
  if (!create)
    return NULL;
  pace_group_t *g = &s->groups[s->ngroups++];
  g->msp_org_id = msp_org_id;
  g->region = region;
  return g;
}

static void listed(rn_ctx_t *ctx, int status, const char *error, void *data) {
  (void)ctx;
  sweep_t *s = data;
  if (status < 0) {
    sweep_error(s, status, "%s", error);
    sweep_finish(s);
    return;
  }
  int64_t tick = tick_of(s->now_ms);
  /* Each credential's customers share its hour: spread when the sweep
   * would take more than the hour leaves beside the asset sync. */
  int64_t window_ms = (tick + TICK_PERIOD_S) * 1000 - s->now_ms;
  int64_t per_hour = s->state->connection.rate_per_hour
                         ? s->state->connection.rate_per_hour
                         : 1500;
  for (size_t g = 0; g < s->ngroups; g++)
    nj_sweep_pacing(per_hour, s->groups[g].sync_requests, s->groups[g].requests,
                    window_ms, &s->groups[g].pacing);
  for (size_t i = 0; i < s->n; i++) {
    const ev_target_t *t = &s->targets[i];
    pace_group_t *g = group_of(s, t->msp_org_id, t->region, false);
    int64_t offset = g ? nj_sweep_offset_ms(&g->pacing, g->placed) : 0;
    if (g) {
      g->placed += t->planned_requests;
      g->last_offset_ms = offset;
    }
    int rc = emit_one(s, t, tick, offset > 0 ? s->now_ms + offset : 0);
    if (rc == RN_ENOSYS && i == 0) {
      /* No queue here (a plain CLI run): do the work ourselves. */
      s->inline_mode = true;
      sweep_next(s);
      return;
    }
    if (rc < 0) {
      s->failed++;
      sweep_error(s, rc, "customer organization %lld: event refused: %s",
                  (long long)t->customer_org_id, host->strerror(rc));
      continue;
    }
    s->emitted++;
    json_array_append_new(
        s->results, json_pack("{s:I, s:I, s:I, s:s}", "msp_org_id",
                              (json_int_t)t->msp_org_id, "customer_org_id",
                              (json_int_t)t->customer_org_id, "mapping_id",
                              (json_int_t)t->mapping_id, "status", "emitted"));
  }
  sweep_finish(s);
}

/* Each credential's asset sync as `ninjaone plan` counts it: the
 * organizations list, and a devices-detailed page per 1,000 devices of each
 * mapped customer (promoted or not). */
static int sync_estimate(sweep_t *s, rn_devsrc_t *ds) {
  char msp_org_id[24];
  if (s->msp_filter)
    ev_itoa(s->msp_filter, msp_org_id);
  const char *params[] = {s->msp_filter ? msp_org_id : NULL};
  rn_db_result_t *res;
  int rc = host->db_tx_exec(
      ds->tx,
      "SELECT c.msp_org_id, c.region,"
      " (SELECT count(*) FROM integration_org_mapping x WHERE x.msp_org_id ="
      "  c.msp_org_id AND x.provider = c.provider AND x.region = c.region"
      "  AND x.vanished_at IS NULL),"
      " (SELECT coalesce(sum(" NJ_SQL_PAGES(NJ_SQL_MAPPING_DEVICES) "), 0)"
      "  FROM integration_org_mapping m JOIN portal_company pc ON pc.id ="
      "  m.portal_company_id LEFT JOIN " NJ_SQL_SEEN_DEVICES " seen ON"
      "  seen.mapping_id = m.id WHERE m.msp_org_id = c.msp_org_id AND"
      "  m.provider = c.provider AND m.region = c.region AND"
      "  m.state = 'MAPPED')"
      " FROM integration_credential c"
      " WHERE c.provider = 'ninjaone' AND c.is_active"
      " AND ($1::bigint IS NULL OR c.msp_org_id = $1::bigint)",
      1, params, &res);
  if (rc < 0)
    return rn_devsrc_fail(ds, rc, "database: %s", host->db_tx_error(ds->tx));
  for (int r = 0; r < host->db_rows(res); r++) {
    nj_region_t region;
    if (nj_region_parse(host->db_value(res, r, 1), &region) < 0)
      continue;
    pace_group_t *g = group_of(s, strtoll(host->db_value(res, r, 0), NULL, 10),
                               region, false);
    if (g)
      g->sync_requests =
          nj_pages_of(strtoll(host->db_value(res, r, 2), NULL, 10)) +
          strtoll(host->db_value(res, r, 3), NULL, 10);
  }
  host->db_result_free(res);
  return 0;
}

static int list_body(rn_devsrc_t *ds, void *data) {
  sweep_t *s = data;
  char msp_org_id[24] = "";
  rn_db_result_t *res;
  int rc;
  if (s->msp_filter) {
    ev_itoa(s->msp_filter, msp_org_id);
    rc = rk_check_msp(ds, s->msp_filter);
    if (rc < 0)
      return rc;
  }
  /* The estimates' per-mapping asset count fallback makes the planner's
   * cost high enough to JIT-compile these few-millisecond queries, which
   * takes seconds. */
  rc = host->db_tx_exec(ds->tx, "SET LOCAL jit = off", 0, NULL, &res);
  if (rc < 0)
    return rn_devsrc_fail(ds, rc, "database: %s", host->db_tx_error(ds->tx));
  host->db_result_free(res);
  const char *params[] = {s->msp_filter ? msp_org_id : NULL};
  rc = host->db_tx_exec(
      ds->tx,
      "SELECT c.msp_org_id, pc.converted_to_organization_id AS"
      " customer_org_id, m.id, m.region, m.external_org_id,"
      " c.first_evidence_synced_at IS NULL,"
      " " NJ_SQL_SWEEP_REQUESTS(NJ_SQL_MAPPING_DEVICES)
      " FROM integration_credential c"
      " JOIN integration_org_mapping m ON m.msp_org_id = c.msp_org_id"
      "  AND m.provider = c.provider AND m.region = c.region"
      "  AND m.state = 'MAPPED'"
      " JOIN portal_company pc ON pc.id = m.portal_company_id"
      "  AND pc.msp_org_id = m.msp_org_id"
      " LEFT JOIN " NJ_SQL_SEEN_DEVICES " seen ON seen.mapping_id = m.id"
      " WHERE c.provider = 'ninjaone' AND c.is_active"
      " AND pc.converted_to_organization_id IS NOT NULL"
      " AND ($1::bigint IS NULL OR c.msp_org_id = $1::bigint)"
      " ORDER BY c.msp_org_id, customer_org_id, m.id",
      1, params, &res);
  if (rc < 0)
    return rn_devsrc_fail(ds, rc, "database: %s", host->db_tx_error(ds->tx));
  int rows = host->db_rows(res);
  s->targets = host->calloc(rows ? (size_t)rows : 1, sizeof *s->targets);
  if (!s->targets) {
    host->db_result_free(res);
    return RN_ENOMEM;
  }
  s->groups = host->calloc(rows ? (size_t)rows : 1, sizeof *s->groups);
  if (!s->groups) {
    host->db_result_free(res);
    return RN_ENOMEM;
  }
  s->n = 0;
  for (int r = 0; r < rows; r++) {
    ev_target_t *t = &s->targets[s->n];
    t->msp_org_id = strtoll(host->db_value(res, r, 0), NULL, 10);
    t->customer_org_id = strtoll(host->db_value(res, r, 1), NULL, 10);
    t->mapping_id = strtoll(host->db_value(res, r, 2), NULL, 10);
    snprintf(t->external_org_id, sizeof t->external_org_id, "%s",
             host->db_value(res, r, 4));
    t->first_sweep = strcmp(host->db_value(res, r, 5), "t") == 0;
    t->planned_requests = strtoll(host->db_value(res, r, 6), NULL, 10);
    /* A region this build does not know is skipped, not guessed. */
    if (nj_region_parse(host->db_value(res, r, 3), &t->region) < 0)
      continue;
    pace_group_t *g = group_of(s, t->msp_org_id, t->region, true);
    g->customers++;
    g->requests += t->planned_requests;
    s->n++;
  }
  host->db_result_free(res);
  return s->ngroups ? sync_estimate(s, ds) : 0;
}

static int run_sweep(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  sweep_t *s = host->calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  s->ctx = ctx;
  s->state = state;
  s->job = job;
  s->now_ms = host->now_ms(ctx);
  s->results = json_array();
  json_t *params = json_loads(host->job_params(job), 0, NULL);
  int64_t msp = 0;
  if (params && json_object_get(params, "msp_org") &&
      (!ev_param_int(params, "msp_org", &msp) || msp <= 0)) {
    json_decref(params);
    sweep_error(s, RN_EINVAL,
                "parameter \"msp_org\": expected a positive "
                "integer");
    sweep_finish(s);
    return 0;
  }
  json_decref(params);
  s->msp_filter = msp;
  /* The listing reads at the sweep's clock, the one its tick is of. */
  rn_devsrc_tx_opts_t tx = RN_DEVSRC_TX_OPTS_INIT;
  tx.now_ms = s->now_ms;
  int rc = s->results ? rn_devsrc_transaction_with(host, ctx, &tx, list_body,
                                                   listed, s)
                      : RN_ENOMEM;
  if (rc < 0) {
    sweep_error(s, rc,
                "no database: %s (set [database] url or "
                "REGENTRA_DATABASE_URL)",
                host->strerror(rc));
    sweep_finish(s);
  }
  return 0;
}

const rn_job_def_t job_sweep = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "sweep",
    .summary = "compliance evidence sweep: one customer event per "
               "compliance-promoted NinjaOne mapping (cron 30 */6 * * *)",
    .params = sweep_params,
    .run = run_sweep,
    .command = "sweep",
};
