/* customer.c - stage 2: the sweep of one compliance-promoted customer.
 *
 * The MSP's credential (looked up by the MSP id only) pulls the customer's
 * NinjaOne organization; everything written lands on the customer's
 * compliance organization. msp_org_id and customer_org_id never share a
 * variable. Steps: check mapping + read credential (tx) -> client ->
 * devices-detailed -> the five other walks in parallel -> five signals ->
 * one transaction of writes -> the single callback. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence.h"

#define MAX_WALKS (4 + EV_MAX_BACKUP_TYPES)

typedef struct cust_s cust_t;

typedef struct walk_ref_s {
  cust_t *c;
  ev_source_t src;
} walk_ref_t;

struct cust_s {
  rn_ctx_t *ctx;
  ev_state_t *state;
  ev_target_t t;
  ev_customer_cb cb;
  void *cb_data;
  int64_t now_ms;
  rn_devsrc_tx_opts_t tx; /* every transaction of the run writes at now_ms */
  /* read by the first transaction */
  int64_t company_id;
  char client_id[256];
  char *sealed;            /* host memory; freed once opened */
  bool first_sync_done;    /* the credential's first_evidence_synced_at */
  nj_client_t *client;
  ev_agg_t agg;
  walk_ref_t walks[MAX_WALKS];
  int walks_pending;
  uint64_t requests;
  ev_signal_t signals[EV_SIGNAL_COUNT];
  bool computed;
  json_t *report;
  int status;
  char error[1024];
};

static void set_error(cust_t *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(cust_t *c, int status, const char *fmt, ...) {
  if (c->status < 0)
    return; /* the first error explains the run */
  c->status = status < 0 ? status : RN_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->error, sizeof c->error, fmt, ap);
  va_end(ap);
}

static void cust_free(cust_t *c) {
  if (c->client)
    nj_client_free(c->client);
  host->free(c->sealed);
  for (int k = 0; k < EV_SIGNAL_COUNT; k++)
    ev_signal_free(&c->signals[k]);
  ev_agg_free(&c->agg);
  json_decref(c->report);
  host->free(c);
}

static void finish(cust_t *c) {
  if (c->client && !json_object_get(c->report, "accounting")) {
    nj_client_stats_t st; /* a failed run counts its requests too */
    nj_client_get_stats(c->client, &st);
    json_object_set_new(c->report, "accounting", nj_client_stats_json(&st));
  }
  json_object_set_new(c->report, "status",
                      json_string(c->status < 0 ? "error" : "ok"));
  if (c->status < 0)
    json_object_set_new(c->report, "error", json_string(c->error));
  ev_outcome_t outcome = {.status = c->status,
                          .error = c->status < 0 ? c->error : "",
                          .report = c->report};
  ev_customer_cb cb = c->cb;
  void *data = c->cb_data;
  cb(&outcome, data);
  cust_free(c);
}

/* ------------------------------------------------------ mapping check */

/* The mapping must still bind this NinjaOne org, for this MSP and region,
 * to a company promoted to exactly this customer organization. */
static int check_mapping(cust_t *c, rn_devsrc_t *ds) {
  char mapping_id[24], msp_org_id[24], customer_org_id[24];
  ev_itoa(c->t.mapping_id, mapping_id);
  ev_itoa(c->t.msp_org_id, msp_org_id);
  ev_itoa(c->t.customer_org_id, customer_org_id);
  const char *params[] = {mapping_id, msp_org_id, nj_region_name(c->t.region),
                          c->t.external_org_id, customer_org_id};
  rn_db_result_t *res;
  int rc = host->db_tx_exec(
      ds->tx,
      "SELECT m.portal_company_id FROM integration_org_mapping m"
      " JOIN portal_company pc ON pc.id = m.portal_company_id"
      "  AND pc.msp_org_id = m.msp_org_id"
      " WHERE m.id = $1 AND m.msp_org_id = $2 AND m.provider = 'ninjaone'"
      " AND m.region = $3 AND m.external_org_id = $4 AND m.state = 'MAPPED'"
      " AND pc.converted_to_organization_id = $5",
      5, params, &res);
  if (rc < 0)
    return rn_devsrc_fail(ds, rc, "database: %s", host->db_tx_error(ds->tx));
  if (host->db_rows(res) != 1) {
    host->db_result_free(res);
    return rn_devsrc_fail(
        ds, RN_ESTATE,
        "mapping %lld no longer binds NinjaOne organization %s (%s) of MSP "
        "organization %lld to a company promoted to customer organization "
        "%lld; nothing was written",
        (long long)c->t.mapping_id, c->t.external_org_id,
        nj_region_name(c->t.region), (long long)c->t.msp_org_id,
        (long long)c->t.customer_org_id);
  }
  c->company_id = strtoll(host->db_value(res, 0, 0), NULL, 10);
  host->db_result_free(res);
  return 0;
}

static int load_body(rn_devsrc_t *ds, void *data) {
  cust_t *c = data;
  int rc = check_mapping(c, ds);
  if (rc < 0)
    return rc;
  rn_credential_t cred;
  /* The credential belongs to the MSP: looked up by its id, never the
   * customer's. */
  rn_msp_org_t msp = RN_MSP_ORG(c->t.msp_org_id);
  rc = rn_credential_get(ds, msp, PROVIDER, nj_region_name(c->t.region),
                         &cred);
  if (rc < 0)
    return rc;
  if (!cred.is_active || !cred.sealed_secret) {
    rn_credential_release(host, &cred);
    return rn_devsrc_fail(ds, RN_ESTATE,
                          "the NinjaOne credential of MSP organization %lld "
                          "in region %s is disconnected",
                          (long long)c->t.msp_org_id,
                          nj_region_name(c->t.region));
  }
  c->sealed = cred.sealed_secret;
  cred.sealed_secret = NULL;
  snprintf(c->client_id, sizeof c->client_id, "%s", cred.client_id);
  c->first_sync_done = cred.first_evidence_synced;
  rn_credential_release(host, &cred);
  return 0;
}

/* --------------------------------------------------------- failures */

static int record_failure_body(rn_devsrc_t *ds, void *data) {
  cust_t *c = data;
  json_t *details = json_pack(
      "{s:I, s:I, s:s, s:s, s:s}", "customer_org_id",
      (json_int_t)c->t.customer_org_id, "mapping_id",
      (json_int_t)c->t.mapping_id, "region", nj_region_name(c->t.region),
      "status", "error", "error", c->error);
  if (details && c->client) {
    nj_client_stats_t st;
    nj_client_get_stats(c->client, &st);
    json_object_set_new(details, "accounting", nj_client_stats_json(&st));
  }
  char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(details);
  if (!text)
    return RN_ENOMEM;
  int rc = rn_credential_record_run(ds, RN_MSP_ORG(c->t.msp_org_id), PROVIDER,
                                    nj_region_name(c->t.region),
                                    "evidence_sweep", text);
  free(text);
  return rc;
}

static void failure_recorded(rn_ctx_t *ctx, int status, const char *error,
                             void *data) {
  cust_t *c = data;
  if (status < 0)
    host->log(ctx, RN_LOG_WARNING,
              "customer organization %lld: the failed run was not recorded: "
              "%s",
              (long long)c->t.customer_org_id, error);
  finish(c);
}

static void finish_later(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  (void)status;
  finish(data);
}

/* Ends a run that failed after the checks. Always leaves the current
 * callback first: the client may not be freed from inside its own. */
static void fail_run(cust_t *c) {
  if (rn_devsrc_transaction_with(host, c->ctx, &c->tx, record_failure_body,
                                 failure_recorded, c) == 0)
    return;
  if (host->timer_start(c->ctx, 0, finish_later, c, NULL) == 0)
    return;
  finish(c);
}

/* ----------------------------------------------------------- writing */

static const char *action_name(rn_ticket_action_t a) {
  switch (a) {
  case RN_TICKET_SUPPRESSED:
    return "suppressed";
  case RN_TICKET_OPENED:
    return "opened";
  case RN_TICKET_UPDATED:
    return "updated";
  case RN_TICKET_RESOLVED:
    return "resolved";
  default:
    return "none";
  }
}

static int write_body(rn_devsrc_t *ds, void *data) {
  cust_t *c = data;
  int rc = check_mapping(c, ds);
  if (rc < 0)
    return rc;
  rn_msp_org_t msp = RN_MSP_ORG(c->t.msp_org_id);
  rn_customer_org_t customer = RN_CUSTOMER_ORG(c->t.customer_org_id);
  const char *region = nj_region_name(c->t.region);
  /* Quiet until the first sweep is done, and for every customer of the tick
   * that found it not done. */
  bool bridge_on = c->first_sync_done && !c->t.first_sweep;
  json_t *statuses = json_object(), *tickets = json_object();
  json_t *no_data = json_array();
  for (int k = 0; k < EV_SIGNAL_COUNT && rc == 0; k++) {
    const ev_signal_t *s = &c->signals[k];
    const char *key = ev_signal_name(s->key);
    rc = rn_signal_write(ds, customer, PROVIDER, key, s->status, s->metadata,
                         c->t.mapping_id, NULL);
    rn_ticket_action_t action = RN_TICKET_NONE;
    /* Missing data is its own kind of ticket, titled as such. */
    char title[160], description[640];
    rn_ticket_text_t text = {.kind = RN_TICKET_FINDING};
    if (s->no_data) {
      ev_no_data_ticket(s, title, sizeof title, description,
                        sizeof description);
      text = (rn_ticket_text_t){RN_TICKET_NO_DATA, title, description};
    }
    if (rc == 0)
      rc = rn_ticket_bridge(ds, msp, RN_COMPANY(c->company_id), customer, key,
                            s->status, &text, bridge_on, &action, NULL);
    json_object_set_new(statuses, key,
                        json_string(rn_signal_status_name(s->status)));
    json_object_set_new(tickets, key, json_string(action_name(action)));
    if (s->no_data)
      json_array_append_new(no_data, json_string(key));
  }
  json_object_set_new(c->report, "signals", statuses);
  json_object_set_new(c->report, "tickets", tickets);
  json_object_set_new(c->report, "no_data", no_data);
  json_object_set_new(c->report, "ticket_bridge",
                      json_string(bridge_on ? "on" : "first sweep: suppressed"));
  if (rc < 0)
    return rc;
  /* Aggregates only: the audit trail is the customer's to read. */
  json_t *details = json_pack(
      "{s:I, s:s, s:s, s:O, s:O, s:b, s:I, s:I, s:b}", "mapping_id",
      (json_int_t)c->t.mapping_id, "region", region, "external_org_id",
      c->t.external_org_id, "signals", statuses, "tickets", tickets,
      "first_sweep", !bridge_on, "approved_devices", (json_int_t)c->agg.count,
      "requests", (json_int_t)c->requests, "truncated",
      json_is_true(json_object_get(c->report, "truncated")));
  json_t *accounting = json_object_get(c->report, "accounting");
  if (details && accounting)
    json_object_set(details, "accounting", accounting);
  char *text = details ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS)
                       : NULL;
  json_decref(details);
  if (!text)
    return RN_ENOMEM;
  rc = rn_audit_customer(ds, customer, "regentra-runner",
                         "NINJAONE_EVIDENCE_SWEEP", text);
  free(text);
  if (rc == 0)
    rc = rn_credential_mark_first_evidence(ds, msp, PROVIDER, region);
  if (rc < 0)
    return rc;
  json_t *run = json_deep_copy(c->report);
  json_object_set_new(run, "status", json_string("ok"));
  text = run ? json_dumps(run, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(run);
  if (!text)
    return RN_ENOMEM;
  rc = rn_credential_record_run(ds, msp, PROVIDER, region, "evidence_sweep",
                                text);
  free(text);
  return rc;
}

static void written(rn_ctx_t *ctx, int status, const char *error, void *data) {
  (void)ctx;
  cust_t *c = data;
  if (status < 0) {
    set_error(c, status, "nothing was written: %s", error);
    fail_run(c);
    return;
  }
  finish(c);
}

/* ------------------------------------------------------------ walking */

static void compute_and_write(cust_t *c) {
  bool truncated = c->agg.oom;
  for (int s = 0; s < EV_SRC_COUNT; s++)
    truncated |= c->agg.endpoints[s].truncated;
  json_object_set_new(c->report, "truncated", json_boolean(truncated));
  json_object_set_new(c->report, "approved_devices",
                      json_integer((json_int_t)c->agg.count));
  /* Every request of this run, token and retries included, as the
   * upstream counted them. */
  nj_client_stats_t st;
  nj_client_get_stats(c->client, &st);
  c->requests = st.requests;
  json_object_set_new(c->report, "requests",
                      json_integer((json_int_t)c->requests));
  json_object_set_new(c->report, "accounting", nj_client_stats_json(&st));
  for (int k = 0; k < EV_SIGNAL_COUNT; k++) {
    int rc = ev_compute(&c->agg, (ev_signal_key_t)k, &c->signals[k]);
    if (rc < 0) {
      set_error(c, rc, "computing %s: %s", ev_signal_name((ev_signal_key_t)k),
                host->strerror(rc));
      fail_run(c);
      return;
    }
  }
  c->computed = true;
  int rc =
      rn_devsrc_transaction_with(host, c->ctx, &c->tx, write_body, written, c);
  if (rc < 0) {
    set_error(c, rc, "no database: %s", host->strerror(rc));
    fail_run(c);
  }
}

static int on_page(const nj_page_t *page, void *data) {
  walk_ref_t *w = data;
  ev_agg_add_page(&w->c->agg, page);
  return w->c->agg.oom ? RN_ENOMEM : 0;
}

static void walk_ended(cust_t *c, ev_source_t src,
                       const nj_walk_result_t *result) {
  ev_agg_walked(&c->agg, src, result->truncated, result->cap_hit);
  /* A cap is a reported shortfall; any other early stop fails the run. */
  if (result->status < 0)
    set_error(c, result->status, "%s: %s", ev_source_path(src),
              result->message ? result->message
                              : host->strerror(result->status));
}

static void other_walk_done(nj_walk_t *walk, const nj_walk_result_t *result,
                            void *data) {
  (void)walk;
  walk_ref_t *w = data;
  cust_t *c = w->c;
  walk_ended(c, w->src, result);
  if (--c->walks_pending > 0)
    return;
  if (c->status < 0)
    fail_run(c);
  else
    compute_and_write(c);
}

static void start_other_walks(cust_t *c) {
  char df[96], after[64], types[EV_MAX_BACKUP_TYPES][96];
  snprintf(df, sizeof df, "org = %s", c->t.external_org_id);
  /* Strictly after now - 7 days, in epoch seconds with the fraction. */
  int64_t from_ms = c->now_ms - 7 * EV_DAY_MS;
  snprintf(after, sizeof after, "%lld.%03lld", (long long)(from_ms / 1000),
           (long long)(from_ms % 1000));
  nj_walk_opts_t opts[MAX_WALKS];
  size_t n = 0;
  opts[n++] = (nj_walk_opts_t){.endpoint = NJ_EP_VOLUMES, .df = df,
                               .query = "include=bl"};
  opts[n++] = (nj_walk_opts_t){.endpoint = NJ_EP_AV_STATUS, .df = df};
  opts[n++] = (nj_walk_opts_t){.endpoint = NJ_EP_OS_PATCHES, .df = df};
  opts[n++] = (nj_walk_opts_t){.endpoint = NJ_EP_SOFTWARE_PATCHES, .df = df};
  for (size_t i = 0; i < c->state->n_backup_types; i++) {
    snprintf(types[i], sizeof types[i], "type=%s&after=%s",
             c->state->backup_types[i], after);
    opts[n++] = (nj_walk_opts_t){.endpoint = NJ_EP_ACTIVITIES, .df = df,
                                 .query = types[i]};
  }
  static const ev_source_t srcs[] = {EV_SRC_VOLUMES, EV_SRC_AV,
                                     EV_SRC_OS_PATCHES, EV_SRC_SW_PATCHES};
  /* One extra count holds the run open while the walks are started. */
  c->walks_pending = 1;
  for (size_t i = 0; i < n; i++) {
    c->walks[i] = (walk_ref_t){c, i < 4 ? srcs[i] : EV_SRC_ACTIVITIES};
    c->walks_pending++;
    int rc = nj_walk_start(c->client, &opts[i], on_page, other_walk_done,
                           &c->walks[i], NULL);
    if (rc < 0) {
      c->walks_pending--;
      ev_agg_walked(&c->agg, c->walks[i].src, true, false);
      set_error(c, rc, "cannot read %s: %s", ev_source_path(c->walks[i].src),
                host->strerror(rc));
      break;
    }
  }
  if (--c->walks_pending == 0) {
    if (c->status < 0)
      fail_run(c);
    else
      compute_and_write(c);
  }
}

static void devices_done(nj_walk_t *walk, const nj_walk_result_t *result,
                         void *data) {
  (void)walk;
  walk_ref_t *w = data;
  cust_t *c = w->c;
  walk_ended(c, EV_SRC_DEVICES, result);
  if (c->status < 0) {
    fail_run(c);
    return;
  }
  /* Every other row is kept only for a device approved here, so the
   * device list comes first. */
  start_other_walks(c);
}

static void authenticated(nj_client_t *client, int status, const char *message,
                          void *data) {
  cust_t *c = data;
  if (status < 0) {
    set_error(c, status, "%s", message ? message : host->strerror(status));
    fail_run(c);
    return;
  }
  char df[96];
  snprintf(df, sizeof df, "org = %s", c->t.external_org_id);
  nj_walk_opts_t opts = {.endpoint = NJ_EP_DEVICES_DETAILED, .df = df};
  c->walks[0] = (walk_ref_t){c, EV_SRC_DEVICES};
  int rc = nj_walk_start(client, &opts, on_page, devices_done, &c->walks[0],
                         NULL);
  if (rc < 0) {
    set_error(c, rc, "cannot list devices: %s", host->strerror(rc));
    fail_run(c);
  }
}

/* Opens the sealed secret only long enough to hand a copy to the client. */
static int make_client(cust_t *c) {
  char *secret = NULL;
  size_t len = 0;
  int rc = host->secret_open(c->ctx, c->sealed, &secret, &len);
  host->free(c->sealed);
  c->sealed = NULL;
  if (rc < 0) {
    set_error(c, rc, "cannot open the sealed client secret of MSP "
                     "organization %lld: %s",
              (long long)c->t.msp_org_id, host->strerror(rc));
    return rc;
  }
  nj_client_opts_t opts = {
      .client_id = c->client_id,
      .client_secret = secret,
      .client_secret_len = len,
      .max_devices_per_org = c->state->max_devices_per_org,
  };
  nj_connection_apply(&c->state->connection, c->t.region, &opts);
  char err[512] = "";
  rc = nj_client_new(host, c->ctx, &opts, &c->client, err, sizeof err);
  host->secret_free(secret, len); /* the client holds its own copy */
  if (rc < 0)
    set_error(c, rc, "%s", err[0] ? err : host->strerror(rc));
  return rc;
}

static void loaded(rn_ctx_t *ctx, int status, const char *error,
                   void *data) {
  (void)ctx;
  cust_t *c = data;
  if (status < 0) {
    /* Refused before any call: nothing to record against the credential
     * that the error does not already say. */
    set_error(c, status, "%s", error);
    finish(c);
    return;
  }
  json_object_set_new(c->report, "company_id",
                      json_integer((json_int_t)c->company_id));
  int rc = make_client(c);
  if (rc == 0)
    rc = nj_client_authenticate(c->client, authenticated, c);
  if (rc < 0) {
    set_error(c, rc, "cannot start: %s", host->strerror(rc));
    fail_run(c);
  }
}

int ev_customer_sweep(rn_ctx_t *ctx, ev_state_t *state,
                      const ev_target_t *target, ev_customer_cb cb,
                      void *data) {
  if (target->msp_org_id <= 0 || target->customer_org_id <= 0 ||
      target->mapping_id <= 0)
    return RN_EINVAL;
  /* NinjaOne org ids are numbers; anything else must not reach a df. */
  size_t digits = strspn(target->external_org_id, "0123456789");
  if (!digits || digits > 18 || target->external_org_id[digits])
    return RN_EINVAL;
  cust_t *c = host->calloc(1, sizeof *c);
  if (!c)
    return RN_ENOMEM;
  c->ctx = ctx;
  c->state = state;
  c->t = *target;
  c->cb = cb;
  c->cb_data = data;
  c->now_ms = host->now_ms(ctx);
  c->tx = (rn_devsrc_tx_opts_t)RN_DEVSRC_TX_OPTS_INIT;
  c->tx.now_ms = c->now_ms;
  c->report = json_pack(
      "{s:I, s:I, s:I, s:s, s:s}", "msp_org_id", (json_int_t)target->msp_org_id,
      "customer_org_id", (json_int_t)target->customer_org_id, "mapping_id",
      (json_int_t)target->mapping_id, "region", nj_region_name(target->region),
      "external_org_id", target->external_org_id);
  int64_t external = strtoll(target->external_org_id, NULL, 10);
  ev_agg_init(&c->agg, c->now_ms, external);
  int rc = c->report ? rn_devsrc_transaction_with(host, ctx, &c->tx, load_body,
                                                  loaded, c)
                     : RN_ENOMEM;
  if (rc < 0) {
    json_decref(c->report);
    ev_agg_free(&c->agg);
    host->free(c);
  }
  return rc;
}
