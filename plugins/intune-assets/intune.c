/* intune.c - intune-assets: Microsoft Intune as a device source. Company
 * owned managed devices of each consented customer tenant (one multi-tenant
 * app registration, each tenant an organization mapped to a PSA company)
 * become assets of source "intune"; personal (BYOD) devices never do.
 *
 * Written against the installed SDK only (<regentra/plugin.h>,
 * <regentra/devsrc.h>) and built with `pkg-config regentra-sdk`.
 *
 * Jobs (CLI group `intune`): connect, map, sync. */
#define _DEFAULT_SOURCE
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "regentra/devsrc.h"
#include "regentra/plugin.h"

#define PROVIDER "intune"
#define REGION "global" /* one Entra ID cloud: no regions */
#define ACTOR "regentra-runner"
#define SCOPE "https://graph.microsoft.com/.default"
#define SELECT                                                               \
  "id,deviceName,serialNumber,wiFiMacAddress,ethernetMacAddress,"            \
  "operatingSystem,osVersion,manufacturer,model,lastSyncDateTime,"           \
  "complianceState,isEncrypted,managedDeviceOwnerType"
#define MAX_RETRIES 5
#define RATE_KEY "intune/graph"

static const rn_host_t *host;

typedef struct state_s {
  const char *login_url, *graph_url, *ca_file; /* borrowed from the config */
  int64_t page_size;
} state_t;

/* ------------------------------------------------------------ helpers */

/* application/x-www-form-urlencoded value of s appended to out (host mem). */
static void form_add(char *out, size_t cap, const char *name, const char *s) {
  size_t n = strlen(out);
  n += (size_t)snprintf(out + n, cap - n, "%s%s=", n ? "&" : "", name);
  for (; *s && n + 4 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || strchr("-._~", c))
      out[n++] = (char)c;
    else
      n += (size_t)snprintf(out + n, cap - n, "%%%02X", c);
  }
  out[n] = 0;
}

static const char *str_or_null(json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s && *s ? s : NULL;
}

/* "2026-12-01T08:15:00Z" (fractions ignored) in epoch ms; 0 = unknown. */
static int64_t iso_ms(const char *s) {
  struct tm tm = {0};
  if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon,
                   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6 ||
      tm.tm_year < 1971)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000;
}

/* Entra ID and Graph errors: the code and the first sentence only (the
 * rest is trace ids). */
static void upstream_error(const rn_http_response_t *resp, char *out,
                           size_t cap) {
  json_t *j = json_loads(resp->body, 0, NULL);
  json_t *err = json_object_get(j, "error");
  const char *code = json_is_string(err) ? json_string_value(err)
                                         : str_or_null(err, "code");
  const char *text = json_is_string(err)
                         ? str_or_null(j, "error_description")
                         : str_or_null(err, "message");
  int len = text ? (int)strcspn(text, ".\r\n") : 0;
  snprintf(out, cap, "HTTP %ld %s: %.*s", resp->status, code ? code : "?",
           len, text ? text : "");
  json_decref(j);
}

/* ------------------------------------------------------------ the run */

typedef struct cred_s {
  int64_t msp;
  char client_id[256];
  char *sealed; /* host memory */
  char *secret; /* opened: wiped with secret_free */
  size_t secret_len;
} cred_t;

typedef struct target_s {
  int64_t msp, company;
  char tenant[64];
  cred_t *cred;
} target_t;

typedef struct device_s {
  rn_asset_t asset;
  const char *macs[3];
} device_t;

typedef struct run_s {
  rn_ctx_t *ctx;
  state_t *st;
  rn_job_t *job;
  rn_req_t *req;
  int64_t param_msp;
  cred_t *creds;
  size_t n_creds;
  target_t *targets;
  size_t n_targets, group, group_end, cur;
  char token[8192];
  char url[2048];
  unsigned retries, pages;
  json_t *held;          /* the pages the devices point into */
  device_t *devices;
  size_t n_devices, cap_devices;
  int64_t personal;      /* not assets: counted only */
  bool complete;         /* every tenant of the company read to the end */
  bool cancelled;
  int status;            /* first failure of the run */
  char error[512];
  rn_asset_counts_t counts;
  json_t *result;        /* {"companies": [...]} */
} run_t;

static void write_group(run_t *run);
static void begin_group(run_t *run);
static void start_target(run_t *run);
static void fetch_page(run_t *run);

static void fail(run_t *run, int rc, const char *fmt, ...) RN_PRINTF(3, 4);
static void fail(run_t *run, int rc, const char *fmt, ...) {
  if (run->status)
    return;
  run->status = rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(run->error, sizeof run->error, fmt, ap);
  va_end(ap);
  host->log(run->ctx, RN_LOG_WARNING, "%s", run->error);
}

static void run_finish(run_t *run) {
  for (size_t i = 0; i < run->n_creds; i++) {
    if (run->creds[i].secret)
      host->secret_free(run->creds[i].secret, run->creds[i].secret_len);
    host->free(run->creds[i].sealed);
  }
  memset(run->token, 0, sizeof run->token);
  if (run->status)
    json_object_set_new(run->result, "error", json_string(run->error));
  char *text = json_dumps(run->result, JSON_COMPACT);
  char summary[256];
  snprintf(summary, sizeof summary,
           "intune sync: %zu mapped tenants, %lld devices seen", run->n_targets,
           (long long)run->counts.seen);
  host->job_complete(run->job, run->status, text, summary);
  free(text);
  json_decref(run->result);
  json_decref(run->held);
  host->free(run->devices);
  host->free(run->creds);
  host->free(run->targets);
  host->free(run);
}

/* Keeps one Graph managedDevice as an asset; personal devices never. */
static int add_device(run_t *run, json_t *dev, const char *tenant) {
  const char *owner = str_or_null(dev, "managedDeviceOwnerType");
  if (!owner || strcmp(owner, "company")) {
    run->personal++;
    return 0;
  }
  if (!str_or_null(dev, "id"))
    return RN_EJSON;
  if (run->n_devices == run->cap_devices) {
    size_t cap = run->cap_devices ? run->cap_devices * 2 : 64;
    device_t *grown = host->realloc(run->devices, cap * sizeof *grown);
    if (!grown)
      return RN_ENOMEM;
    run->devices = grown;
    run->cap_devices = cap;
  }
  device_t *d = &run->devices[run->n_devices++];
  memset(d, 0, sizeof *d);
  const char *os = str_or_null(dev, "operatingSystem");
  bool mobile = os && (!strcmp(os, "iOS") || !strcmp(os, "Android") ||
                       !strcmp(os, "iPadOS"));
  size_t k = 0;
  if ((d->macs[k] = str_or_null(dev, "wiFiMacAddress")))
    k++;
  d->macs[k] = str_or_null(dev, "ethernetMacAddress");
  d->asset = (rn_asset_t){
      .external_id = str_or_null(dev, "id"),
      .name = str_or_null(dev, "deviceName"),
      .hostname = str_or_null(dev, "deviceName"),
      .serial_number = str_or_null(dev, "serialNumber"),
      .os_name = os,
      .device_class = mobile ? "MOBILE" : "COMPUTER",
      .manufacturer = str_or_null(dev, "manufacturer"),
      .model = str_or_null(dev, "model"),
      .last_seen_ms = iso_ms(str_or_null(dev, "lastSyncDateTime")),
      .external_org_id = tenant,
  };
  return 0;
}

static void page_done(rn_ctx_t *ctx, int status, const rn_http_response_t *resp,
                      void *data) {
  (void)ctx;
  run_t *run = data;
  target_t *t = &run->targets[run->cur];
  run->req = NULL;
  if (status < 0 || run->cancelled) {
    fail(run, status < 0 ? status : RN_ECANCELED, "tenant %s: %s", t->tenant,
         host->strerror(status < 0 ? status : RN_ECANCELED));
    run->complete = false;
    if (run->cancelled || status == RN_ECANCELED)
      return run_finish(run);
    run->cur++;
    return start_target(run);
  }
  if ((resp->status == 429 || resp->status >= 500) &&
      run->retries++ < MAX_RETRIES) {
    /* The host already paused the bucket for a 429 or 503 with
     * Retry-After; pause it for what it could not see, then ask again:
     * the request waits in the bucket. */
    const char *ra = host->http_header(resp, "Retry-After");
    uint64_t pause_ms = ra ? (uint64_t)strtoul(ra, NULL, 10) * 1000 : 1000;
    if (RN_HOST_HAS(host, rate_pause))
      host->rate_pause(run->ctx, RATE_KEY, pause_ms);
    host->log(run->ctx, RN_LOG_INFO, "tenant %s: HTTP %ld, retrying",
              t->tenant, resp->status);
    return fetch_page(run);
  }
  char why[256];
  json_t *page = resp->status == 200 ? json_loads(resp->body, 0, NULL) : NULL;
  json_t *value = json_object_get(page, "value");
  const char *next = json_string_value(json_object_get(page, "@odata.nextLink"));
  size_t glen = strlen(run->st->graph_url);
  int rc = 0;
  if (resp->status != 200) {
    upstream_error(resp, why, sizeof why);
    rc = resp->status == 401 || resp->status == 403 ? RN_EAUTH : RN_EUPSTREAM;
  } else if (!json_is_array(value)) {
    snprintf(why, sizeof why, "page %u has no \"value\" array", run->pages + 1);
    rc = RN_EJSON;
  } else if (next && (strncmp(next, run->st->graph_url, glen) ||
                      next[glen] != '/' || strlen(next) >= sizeof run->url)) {
    /* The token goes only to the configured Graph. */
    snprintf(why, sizeof why, "@odata.nextLink leaves %s", run->st->graph_url);
    rc = RN_EUPSTREAM;
  }
  size_t i;
  json_t *dev;
  json_array_foreach(value, i, dev) {
    if (!rc && (rc = add_device(run, dev, t->tenant)))
      snprintf(why, sizeof why, "device %zu of page %u: %s", i,
               run->pages + 1, host->strerror(rc));
  }
  if (page)
    json_array_append_new(run->held, page);
  if (rc) {
    fail(run, rc, "tenant %s: %s", t->tenant, why);
    run->complete = false;
  } else if (run->pages++, next) {
    snprintf(run->url, sizeof run->url, "%s", next);
    run->retries = 0;
    return fetch_page(run);
  }
  run->cur++;
  start_target(run);
}

static void fetch_page(run_t *run) {
  char auth[sizeof run->token + 32];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", run->token);
  const char *headers[] = {auth, "Accept: application/json", NULL};
  rn_http_request_t req = RN_HTTP_REQUEST_INIT;
  req.url = run->url;
  req.headers = headers;
  req.ca_file = run->st->ca_file;
  req.rate_key = RATE_KEY;
  int rc = host->http_request(run->ctx, &req, page_done, run, &run->req);
  memset(auth, 0, sizeof auth);
  if (rc < 0) {
    fail(run, rc, "tenant %s: %s", run->targets[run->cur].tenant,
         host->strerror(rc));
    run_finish(run);
  }
}

static void token_done(rn_ctx_t *ctx, int status,
                       const rn_http_response_t *resp, void *data) {
  (void)ctx;
  run_t *run = data;
  target_t *t = &run->targets[run->cur];
  run->req = NULL;
  if (status < 0 || run->cancelled) {
    fail(run, status < 0 ? status : RN_ECANCELED, "tenant %s token: %s",
         t->tenant, host->strerror(status < 0 ? status : RN_ECANCELED));
    return run_finish(run);
  }
  json_t *j = resp->status == 200 ? json_loads(resp->body, 0, NULL) : NULL;
  const char *token = json_string_value(json_object_get(j, "access_token"));
  if (!token || strlen(token) >= sizeof run->token) {
    char why[256];
    upstream_error(resp, why, sizeof why);
    fail(run, resp->status == 429 || resp->status >= 500 ? RN_EUPSTREAM
                                                         : RN_EAUTH,
         "tenant %s token: %s", t->tenant, why);
    json_decref(j);
    run->complete = false;
    run->cur++;
    return start_target(run);
  }
  snprintf(run->token, sizeof run->token, "%s", token);
  json_decref(j);
  snprintf(run->url, sizeof run->url,
           "%s/v1.0/deviceManagement/managedDevices?$select=" SELECT
           "&$top=%lld",
           run->st->graph_url, (long long)run->st->page_size);
  run->retries = 0;
  fetch_page(run);
}

/* The next tenant of the company, or the write when all were read. */
static void start_target(run_t *run) {
  if (run->cur == run->group_end)
    return write_group(run);
  target_t *t = &run->targets[run->cur];
  if (!t->cred->secret) {
    run->complete = false;
    run->cur++;
    return start_target(run);
  }
  char url[1024], body[4096] = "";
  snprintf(url, sizeof url, "%s/%s/oauth2/v2.0/token", run->st->login_url,
           t->tenant);
  form_add(body, sizeof body, "grant_type", "client_credentials");
  form_add(body, sizeof body, "client_id", t->cred->client_id);
  form_add(body, sizeof body, "client_secret", t->cred->secret);
  form_add(body, sizeof body, "scope", SCOPE);
  const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                           NULL};
  rn_http_request_t req = RN_HTTP_REQUEST_INIT;
  req.method = "POST";
  req.url = url;
  req.headers = headers;
  req.body = body;
  req.body_len = strlen(body);
  req.ca_file = run->st->ca_file;
  run->pages = 0;
  int rc = host->http_request(run->ctx, &req, token_done, run, &run->req);
  memset(body, 0, sizeof body);
  if (rc < 0) {
    fail(run, rc, "tenant %s token: %s", t->tenant, host->strerror(rc));
    run_finish(run);
  }
}

/* ---------------------------------------------------- database side */

static int write_tx(rn_db_tx_t *tx, void *data) {
  run_t *run = data;
  target_t *t = &run->targets[run->group];
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, tx, host->now_ms(run->ctx));
  rn_asset_t *assets = host->calloc(run->n_devices + 1, sizeof *assets);
  if (!assets)
    return RN_ENOMEM;
  for (size_t i = 0; i < run->n_devices; i++) {
    assets[i] = run->devices[i].asset;
    assets[i].mac_addresses = run->devices[i].macs; /* stable from here on */
  }
  rn_asset_counts_t c;
  int rc = rn_assets_sync(&ds, RN_MSP_ORG(t->msp), RN_COMPANY(t->company),
                          PROVIDER, assets, run->n_devices, run->complete,
                          NULL, &c);
  host->free(assets);
  if (rc < 0) {
    snprintf(run->error, sizeof run->error, "company %lld: %s",
             (long long)t->company, rn_devsrc_error(&ds));
    return rc;
  }
  run->counts.seen += c.seen;
  json_array_append_new(
      json_object_get(run->result, "companies"),
      json_pack("{s:I,s:I,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "msp_org",
                (json_int_t)t->msp, "company", (json_int_t)t->company,
                "complete", run->complete, "seen", (json_int_t)c.seen,
                "created", (json_int_t)c.created, "updated",
                (json_int_t)c.updated, "retired", (json_int_t)c.retired,
                "deduped", (json_int_t)c.deduped, "restored",
                (json_int_t)c.restored, "personal_skipped",
                (json_int_t)run->personal));
  char details[128];
  snprintf(details, sizeof details, "{\"seen\": %lld, \"complete\": %s}",
           (long long)c.seen, run->complete ? "true" : "false");
  return rn_credential_record_run(&ds, RN_MSP_ORG(t->msp), PROVIDER, REGION,
                                  "asset_sync", details);
}

static void write_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  run_t *run = data;
  if (status < 0) {
    char why[sizeof run->error];
    snprintf(why, sizeof why, "%s", run->error);
    fail(run, status, "%s", *why ? why : host->strerror(status));
  }
  if (run->cancelled || status == RN_ECANCELED)
    return run_finish(run);
  run->group = run->group_end;
  begin_group(run);
}

/* Reads the next company's tenants, or ends the run. */
static void begin_group(run_t *run) {
  if (run->group == run->n_targets)
    return run_finish(run);
  json_decref(run->held);
  run->held = json_array();
  run->n_devices = 0;
  run->personal = 0;
  run->complete = true;
  size_t end = run->group;
  while (end < run->n_targets &&
         run->targets[end].msp == run->targets[run->group].msp &&
         run->targets[end].company == run->targets[run->group].company)
    end++;
  run->cur = run->group;
  run->group_end = end;
  start_target(run);
}

static void write_group(run_t *run) {
  int rc = host->db_transaction(run->ctx, write_tx, write_done, run, NULL);
  if (rc < 0) {
    fail(run, rc, "cannot write: %s", host->strerror(rc));
    run_finish(run);
  }
}

/* Loads the active credentials and MAPPED tenants, ordered by company. */
static int plan_tx(rn_db_tx_t *tx, void *data) {
  run_t *run = data;
  char msp[24];
  snprintf(msp, sizeof msp, "%lld", (long long)run->param_msp);
  const char *params[] = {run->param_msp ? msp : NULL};
  rn_db_result_t *creds = NULL, *maps = NULL;
  int rc = host->db_tx_exec(
      tx,
      "SELECT c.msp_org_id, c.client_id, c.sealed_secret"
      " FROM integration_credential c JOIN organization o"
      " ON o.id = c.msp_org_id AND o.kind = 'MSP' WHERE c.provider = 'intune'"
      " AND c.region = 'global' AND c.is_active"
      " AND ($1::bigint IS NULL OR c.msp_org_id = $1) ORDER BY 1",
      1, params, &creds);
  if (!rc)
    rc = host->db_tx_exec(
        tx,
        "SELECT m.msp_org_id, m.portal_company_id, m.external_org_id"
        " FROM integration_org_mapping m JOIN integration_credential c"
        " ON c.msp_org_id = m.msp_org_id AND c.provider = m.provider"
        " AND c.region = m.region AND c.is_active"
        " WHERE m.provider = 'intune' AND m.region = 'global'"
        " AND m.state = 'MAPPED' AND ($1::bigint IS NULL OR m.msp_org_id = $1)"
        " ORDER BY 1, 2, 3",
        1, params, &maps);
  if (rc) {
    snprintf(run->error, sizeof run->error, "plan: %s",
             host->db_tx_error(tx));
    goto out;
  }
  size_t nc = (size_t)host->db_rows(creds), nm = (size_t)host->db_rows(maps);
  run->creds = host->calloc(nc + 1, sizeof *run->creds);
  run->targets = host->calloc(nm + 1, sizeof *run->targets);
  if (!run->creds || !run->targets) {
    rc = RN_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < nc; i++) {
    cred_t *c = &run->creds[run->n_creds++];
    c->msp = strtoll(host->db_value(creds, (int)i, 0), NULL, 10);
    snprintf(c->client_id, sizeof c->client_id, "%s",
             host->db_value(creds, (int)i, 1));
    if (!(c->sealed = host->strdup(host->db_value(creds, (int)i, 2)))) {
      rc = RN_ENOMEM;
      goto out;
    }
  }
  for (size_t i = 0; i < nm; i++) {
    target_t *t = &run->targets[run->n_targets];
    t->msp = strtoll(host->db_value(maps, (int)i, 0), NULL, 10);
    t->company = strtoll(host->db_value(maps, (int)i, 1), NULL, 10);
    snprintf(t->tenant, sizeof t->tenant, "%s", host->db_value(maps, (int)i, 2));
    for (size_t k = 0; k < run->n_creds; k++)
      if (run->creds[k].msp == t->msp)
        t->cred = &run->creds[k];
    if (t->cred)
      run->n_targets++;
  }
out:
  host->db_result_free(creds);
  host->db_result_free(maps);
  return rc;
}

static void plan_done(rn_ctx_t *ctx, int status, void *data) {
  run_t *run = data;
  if (status < 0) {
    char why[sizeof run->error];
    snprintf(why, sizeof why, "%s", run->error);
    fail(run, status, "%s", *why ? why : host->strerror(status));
    return run_finish(run);
  }
  for (size_t i = 0; i < run->n_creds; i++) {
    cred_t *c = &run->creds[i];
    int rc = host->secret_open(ctx, c->sealed, &c->secret, &c->secret_len);
    if (rc < 0)
      fail(run, rc, "MSP %lld: the saved secret cannot be opened: %s",
           (long long)c->msp, host->strerror(rc));
  }
  static const rn_rate_window_t windows[] = {{1000, 20000}};
  if (RN_HOST_HAS(host, rate_configure))
    host->rate_configure(ctx, RATE_KEY, windows, 1);
  begin_group(run);
}

static json_t *job_params(rn_job_t *job) {
  json_t *p = json_loads(host->job_params(job), 0, NULL);
  return p ? p : json_object();
}

static int sync_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  run_t *run = host->calloc(1, sizeof *run);
  if (!run)
    return RN_ENOMEM;
  json_t *p = job_params(job);
  run->param_msp = json_integer_value(json_object_get(p, "msp_org"));
  json_decref(p);
  run->ctx = ctx;
  run->st = state;
  run->job = job;
  run->result = json_pack("{s:[]}", "companies");
  host->job_set_data(job, run);
  int rc = host->db_transaction(ctx, plan_tx, plan_done, run, &run->req);
  if (rc < 0) {
    json_decref(run->result);
    host->free(run);
  }
  return rc;
}

static void sync_cancel(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)ctx;
  (void)state;
  run_t *run = host->job_data(job);
  run->cancelled = true;
  if (run->req)
    host->cancel(run->req);
}

/* ------------------------------------------------- connect and map */

typedef struct op_s {
  rn_ctx_t *ctx;
  rn_job_t *job;
  json_t *params;
  char *sealed;
  char error[512];
} op_t;

static int connect_tx(rn_db_tx_t *tx, void *data) {
  op_t *op = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, tx, host->now_ms(op->ctx));
  rn_msp_org_t msp = RN_MSP_ORG(json_integer_value(json_object_get(op->params, "msp_org")));
  char tenants[2048];
  snprintf(tenants, sizeof tenants, "%s",
           json_string_value(json_object_get(op->params, "tenants")));
  rn_discovered_org_t orgs[64];
  size_t n = 0;
  for (char *save, *t = strtok_r(tenants, ", ", &save); t && n < 64;
       t = strtok_r(NULL, ", ", &save))
    orgs[n++] = (rn_discovered_org_t){t, t};
  int64_t id;
  rn_discovery_counts_t counts;
  int rc = rn_credential_save(
      &ds, msp, PROVIDER, REGION,
      json_string_value(json_object_get(op->params, "client_id")), op->sealed,
      &id);
  if (!rc)
    rc = rn_mappings_discovered(&ds, msp, PROVIDER, REGION, orgs, n, true,
                                &counts);
  if (!rc)
    rc = rn_audit_msp(&ds, msp, ACTOR, "INTUNE_CONNECTED", "{}");
  if (rc)
    snprintf(op->error, sizeof op->error, "%s", rn_devsrc_error(&ds));
  return rc;
}

static int map_tx(rn_db_tx_t *tx, void *data) {
  op_t *op = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, tx, host->now_ms(op->ctx));
  int rc = rn_mapping_use_existing(
      &ds, RN_MSP_ORG(json_integer_value(json_object_get(op->params, "msp_org"))),
      PROVIDER, REGION, json_string_value(json_object_get(op->params, "tenant")),
      RN_COMPANY(json_integer_value(json_object_get(op->params, "company"))),
      true, ACTOR);
  if (rc)
    snprintf(op->error, sizeof op->error, "%s", rn_devsrc_error(&ds));
  return rc;
}

static void op_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  op_t *op = data;
  json_t *result = status < 0 ? json_pack("{s:s}", "error", op->error)
                              : json_pack("{s:b}", "ok", 1);
  char *text = json_dumps(result, JSON_COMPACT);
  host->job_complete(op->job, status, text, status < 0 ? op->error : "done");
  free(text);
  json_decref(result);
  json_decref(op->params);
  host->free(op->sealed);
  host->free(op);
}

static int op_start(rn_ctx_t *ctx, rn_job_t *job, rn_db_tx_fn fn, bool seal) {
  op_t *op = host->calloc(1, sizeof *op);
  if (!op)
    return RN_ENOMEM;
  op->ctx = ctx;
  op->job = job;
  op->params = job_params(job);
  int rc = 0;
  if (seal) {
    size_t len = 0;
    const char *secret = host->job_secret(job, "client_secret_file", &len);
    while (secret && len && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
      len--; /* the file's line end is not part of the secret */
    rc = secret ? host->secret_seal(ctx, secret, len, &op->sealed) : RN_EINVAL;
  }
  if (!rc)
    rc = host->db_transaction(ctx, fn, op_done, op, NULL);
  if (rc < 0) {
    json_decref(op->params);
    host->free(op->sealed);
    host->free(op);
  }
  return rc;
}

static int connect_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  return op_start(ctx, job, connect_tx, true);
}

static int map_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  return op_start(ctx, job, map_tx, false);
}

/* ------------------------------------------------------ descriptor */

#define MSP_PARAM                                                            \
  {.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED, .min = 1, \
   .max = INT64_MAX, .help = "the MSP organization id"}

static const rn_option_t connect_params[] = {
    MSP_PARAM,
    {.name = "client_id", .type = RN_OPT_STRING, .flags = RN_OPT_REQUIRED,
     .help = "application (client) id of the multi-tenant app registration"},
    {.name = "client_secret_file", .type = RN_OPT_SECRET_FILE,
     .flags = RN_OPT_REQUIRED,
     .help = "file holding the client secret value (mode 0600), or -"},
    {.name = "tenants", .type = RN_OPT_STRING, .flags = RN_OPT_REQUIRED,
     .help = "consented customer tenant ids, comma separated: the "
             "organizations to map"},
    {0},
};

static const rn_option_t map_params[] = {
    MSP_PARAM,
    {.name = "tenant", .type = RN_OPT_STRING, .flags = RN_OPT_REQUIRED,
     .help = "a connected tenant id"},
    {.name = "company", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
     .min = 1, .max = INT64_MAX, .help = "the PSA company it feeds"},
    {0},
};

static const rn_option_t sync_params[] = {
    {.name = "msp_org", .type = RN_OPT_INT, .min = 1, .max = INT64_MAX,
     .help = "only this MSP organization (default: every one)"},
    {0},
};

static const rn_job_def_t job_connect = {
    .struct_size = sizeof(rn_job_def_t), .name = "connect",
    .summary = "save the app's sealed secret and the tenants to map",
    .params = connect_params, .run = connect_run, .command = "connect"};
static const rn_job_def_t job_map = {
    .struct_size = sizeof(rn_job_def_t), .name = "map",
    .summary = "bind a tenant to a PSA company", .params = map_params,
    .run = map_run, .command = "map"};
static const rn_job_def_t job_sync = {
    .struct_size = sizeof(rn_job_def_t), .name = "sync",
    .summary = "company-owned Intune devices of mapped tenants become assets",
    .params = sync_params, .run = sync_run, .cancel = sync_cancel,
    .command = "sync"};

static const rn_option_t plugin_options[] = {
    {.name = "login_url", .type = RN_OPT_URL,
     .default_value = "https://login.microsoftonline.com",
     .help = "Entra ID token authority"},
    {.name = "graph_url", .type = RN_OPT_URL,
     .default_value = "https://graph.microsoft.com",
     .help = "Microsoft Graph; @odata.nextLink must stay under it"},
    {.name = "ca_file", .type = RN_OPT_PATH, .help = "extra trust anchor"},
    {.name = "page_size", .type = RN_OPT_INT, .default_value = "500",
     .min = 1, .max = 1000, .help = "devices per Graph page ($top)"},
    {0},
};

static int intune_create(rn_ctx_t *ctx, const rn_config_t *config,
                         void **state) {
  (void)ctx;
  state_t *s = host->calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  s->login_url = host->config_str(config, "login_url");
  s->graph_url = host->config_str(config, "graph_url");
  s->ca_file = host->config_str(config, "ca_file");
  s->page_size = host->config_int(config, "page_size");
  *state = s;
  return 0;
}

static void intune_destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  host->free(state);
}

static const rn_job_def_t *const jobs[] = {&job_connect, &job_map, &job_sync,
                                           NULL};

static const rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "intune-assets",
    .version = "0.1.0",
    .summary = "Microsoft Intune asset sync: company-owned managed devices of "
               "mapped tenants become company assets",
    .options = plugin_options,
    .create = intune_create,
    .destroy = intune_destroy,
    .jobs = jobs,
    .command_group = "intune",
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  return &descriptor;
}
