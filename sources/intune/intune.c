/* intune.c - intune-assets: Microsoft Intune as a device source, built
 * against the installed SDK alone (`pkg-config regentra-sdk`). One
 * multi-tenant app registration, consented by many customer tenants; each
 * tenant is an organization mapped to a PSA company. Company-owned managed
 * devices become assets of source "intune"; personal ones never do. */
#define _DEFAULT_SOURCE   /* timegm */
#define _XOPEN_SOURCE 700 /* strptime */
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
#define SELECT                                                                 \
  "id,deviceName,serialNumber,wiFiMacAddress,ethernetMacAddress,"              \
  "operatingSystem,osVersion,manufacturer,model,lastSyncDateTime,"             \
  "complianceState,isEncrypted,managedDeviceOwnerType"
#define MAX_RETRIES 5
#define RATE_KEY "intune/graph"

static const rn_host_t *host;

typedef struct state_s {
  const char *login_url, *graph_url, *ca_file; /* borrowed from the config */
  int64_t page_size;
} state_t;

/* ------------------------------------------------------------ helpers */

/* Appends name=value, form-encoded, to out. */
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

/* A string member; "" (Graph's unknown) reads as NULL. */
static const char *str(json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s && *s ? s : NULL;
}

/* "2026-12-01T08:15:00Z" in epoch ms; 0 when unknown (0001-01-01). */
static int64_t iso_ms(const char *s) {
  struct tm tm = {0};
  if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) || tm.tm_year < 71)
    return 0;
  return (int64_t)timegm(&tm) * 1000;
}

/* Entra ID ({"error": "x", "error_description": ..}) and Graph ({"error":
 * {"code", "message"}}) errors: the code and the first sentence, without
 * the trace ids that follow. */
static void upstream_error(const rn_http_response_t *resp, char *out,
                           size_t cap) {
  json_t *j = json_loads(resp->body, 0, NULL), *e = json_object_get(j, "error");
  bool aad = json_is_string(e); /* else Graph's {"code", "message"} */
  const char *code = aad ? json_string_value(e) : str(e, "code");
  const char *text = aad ? str(j, "error_description") : str(e, "message");
  int len = text ? (int)strcspn(text, ".\r\n") : 0;
  snprintf(out, cap, "HTTP %ld %s: %.*s", resp->status, code ? code : "?", len,
           text ? text : "");
  json_decref(j);
}

/* ------------------------------------------------------------ the run */

typedef struct target_s { /* one MAPPED tenant and its credential */
  int64_t msp, company;
  char tenant[64], client_id[256];
  char *sealed; /* host memory */
} target_t;

typedef struct device_s {
  rn_asset_t asset;
  const char *macs[3];
} device_t;

typedef struct run_s {
  rn_ctx_t *ctx;
  state_t *st;
  rn_job_t *job;
  int64_t param_msp;
  target_t *targets; /* ordered by (msp, company): a group is one company */
  size_t n_targets, group, group_end, cur;
  char token[8192], url[2048];
  unsigned retries;
  json_t *held; /* the pages the devices point into */
  device_t *devices;
  size_t n_devices;
  int64_t personal, seen;
  bool complete; /* every tenant of the company was read to the end */
  int status;    /* the first failure */
  char error[512];
  json_t *result; /* {"companies": [...]} */
} run_t;

static int write_tx(rn_db_tx_t *tx, void *data);
static void write_done(rn_ctx_t *ctx, int status, void *data);
static void start_target(run_t *run);

static void next_tenant(run_t *run) {
  run->cur++;
  start_target(run);
}
static void fetch_page(run_t *run);

RN_PRINTF(3, 4) static void fail(run_t *run, int rc, const char *fmt, ...) {
  run->complete = false;
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
  for (size_t i = 0; i < run->n_targets; i++)
    host->free(run->targets[i].sealed);
  memset(run->token, 0, sizeof run->token);
  char *text = json_dumps(run->result, JSON_COMPACT), summary[600];
  snprintf(summary, sizeof summary, "%zu mapped tenants, %lld devices%s%s",
           run->n_targets, (long long)run->seen, run->status ? "; " : "",
           run->status ? run->error : "");
  host->job_complete(run->job, run->status, text, summary);
  free(text);
  json_decref(run->result);
  json_decref(run->held);
  host->free(run->devices);
  host->free(run->targets);
  host->free(run);
}

/* Keeps one Graph managedDevice as an asset; personal devices never. */
static int add_device(run_t *run, json_t *dev, const char *tenant) {
  const char *owner = str(dev, "managedDeviceOwnerType");
  if (!owner || strcmp(owner, "company")) {
    run->personal++;
    return 0;
  }
  if (!str(dev, "id"))
    return RN_EJSON;
  device_t *d = &run->devices[run->n_devices++];
  memset(d, 0, sizeof *d);
  const char *os = str(dev, "operatingSystem");
  size_t k = 0;
  if ((d->macs[k] = str(dev, "wiFiMacAddress")))
    k++;
  d->macs[k] = str(dev, "ethernetMacAddress");
  bool mobile = os && (!strcmp(os, "iOS") || !strcmp(os, "Android"));
  d->asset = (rn_asset_t){.external_id = str(dev, "id"),
                          .name = str(dev, "deviceName"),
                          .hostname = str(dev, "deviceName"),
                          .os_name = os,
                          .serial_number = str(dev, "serialNumber"),
                          .device_class = mobile ? "MOBILE" : "COMPUTER",
                          .manufacturer = str(dev, "manufacturer"),
                          .model = str(dev, "model"),
                          .last_seen_ms = iso_ms(str(dev, "lastSyncDateTime")),
                          .external_org_id = tenant};
  return 0;
}

/* Sends a request of the run: NULL body = GET. */
static void send(run_t *run, const char *url, const char *header,
                 const char *body, rn_http_cb cb) {
  const char *headers[] = {header, "Accept: application/json", NULL};
  rn_http_request_t req = {.struct_size = sizeof req,
                           .method = body ? "POST" : "GET",
                           .url = url,
                           .headers = headers,
                           .body = body,
                           .body_len = body ? strlen(body) : 0,
                           .ca_file = run->st->ca_file,
                           .rate_key = body ? NULL : RATE_KEY};
  int rc = host->http_request(run->ctx, &req, cb, run, NULL);
  if (rc < 0) {
    fail(run, rc, "tenant %s: %s", run->targets[run->cur].tenant,
         host->strerror(rc));
    run_finish(run);
  }
}

/* A transport error, or RN_ECANCELED when the host cancels the job (it
 * has no cancel hook): true when handled. */
static bool failed(run_t *run, int status, const char *what) {
  if (status >= 0)
    return false;
  fail(run, status, "tenant %s %s: %s", run->targets[run->cur].tenant, what,
       host->strerror(status));
  if (status == RN_ECANCELED)
    run_finish(run);
  else
    next_tenant(run);
  return true;
}

static void page_done(rn_ctx_t *ctx, int status, const rn_http_response_t *resp,
                      void *data) {
  (void)ctx;
  run_t *run = data;
  if (failed(run, status, "devices"))
    return;
  target_t *t = &run->targets[run->cur];
  if ((resp->status == 429 || resp->status >= 500) &&
      run->retries++ < MAX_RETRIES) {
    /* The host paused the bucket for Retry-After on a 429 or 503; pause it
     * for what it cannot see, then ask again: the request waits there. */
    const char *ra = host->http_header(resp, "Retry-After");
    if (RN_HOST_HAS(host, rate_pause))
      host->rate_pause(run->ctx, RATE_KEY,
                       ra ? (uint64_t)strtoul(ra, NULL, 10) * 1000 : 1000);
    host->log(run->ctx, RN_LOG_INFO, "tenant %s: HTTP %ld, asking again",
              t->tenant, resp->status);
    return fetch_page(run);
  }
  char why[256];
  json_t *page = resp->status == 200 ? json_loads(resp->body, 0, NULL) : NULL;
  json_t *value = json_object_get(page, "value"), *dev;
  const char *next =
      json_string_value(json_object_get(page, "@odata.nextLink"));
  size_t glen = strlen(run->st->graph_url), i;
  int rc = 0;
  if (resp->status != 200) {
    upstream_error(resp, why, sizeof why);
    rc = resp->status == 401 || resp->status == 403 ? RN_EAUTH
         : resp->status == 429                      ? RN_ETHROTTLED
                                                    : RN_EUPSTREAM;
  } else if (!json_is_array(value)) {
    snprintf(why, sizeof why, "a page has no \"value\" array");
    rc = RN_EJSON;
  } else if (next && (strncmp(next, run->st->graph_url, glen) ||
                      next[glen] != '/' || strlen(next) >= sizeof run->url)) {
    /* The token goes to the configured Graph only. */
    snprintf(why, sizeof why, "@odata.nextLink leaves %s", run->st->graph_url);
    rc = RN_EUPSTREAM;
  }
  size_t n = run->n_devices + json_array_size(value) + 1;
  device_t *grown = rc ? NULL : host->realloc(run->devices, n * sizeof *grown);
  if (grown)
    run->devices = grown;
  else if (!rc)
    snprintf(why, sizeof why, "%s", host->strerror(rc = RN_ENOMEM));
  json_array_foreach(value, i, dev) {
    if (!rc && (rc = add_device(run, dev, t->tenant)))
      snprintf(why, sizeof why, "device %zu of a page: %s", i,
               host->strerror(rc));
  }
  if (page)
    json_array_append_new(run->held, page);
  if (rc) {
    fail(run, rc, "tenant %s: %s", t->tenant, why);
  } else if (next) {
    snprintf(run->url, sizeof run->url, "%s", next);
    run->retries = 0;
    return fetch_page(run);
  }
  next_tenant(run);
}

static void fetch_page(run_t *run) {
  char auth[sizeof run->token + 32];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", run->token);
  send(run, run->url, auth, NULL, page_done);
  memset(auth, 0, sizeof auth);
}

static void token_done(rn_ctx_t *ctx, int status,
                       const rn_http_response_t *resp, void *data) {
  (void)ctx;
  run_t *run = data;
  if (failed(run, status, "token"))
    return;
  json_t *j = resp->status == 200 ? json_loads(resp->body, 0, NULL) : NULL;
  const char *token = json_string_value(json_object_get(j, "access_token"));
  if (!token || strlen(token) >= sizeof run->token) {
    char why[256];
    upstream_error(resp, why, sizeof why);
    fail(run,
         resp->status == 429 || resp->status >= 500 ? RN_EUPSTREAM : RN_EAUTH,
         "tenant %s token: %s", run->targets[run->cur].tenant, why);
    json_decref(j);
    return next_tenant(run);
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

/* The next tenant of the company, or the write once all were read. */
static void start_target(run_t *run) {
  if (run->cur == run->group_end) { /* every tenant read: write the company */
    int rc = host->db_transaction(run->ctx, write_tx, write_done, run, NULL);
    if (rc < 0) {
      fail(run, rc, "cannot write: %s", host->strerror(rc));
      run_finish(run);
    }
    return;
  }
  target_t *t = &run->targets[run->cur];
  char url[1024], body[4096] = "", *secret;
  size_t len;
  int rc = host->secret_open(run->ctx, t->sealed, &secret, &len);
  if (rc < 0) {
    fail(run, rc, "tenant %s: the saved secret cannot be opened: %s", t->tenant,
         host->strerror(rc));
    return next_tenant(run);
  }
  snprintf(url, sizeof url, "%s/%s/oauth2/v2.0/token", run->st->login_url,
           t->tenant);
  form_add(body, sizeof body, "grant_type", "client_credentials");
  form_add(body, sizeof body, "client_id", t->client_id);
  form_add(body, sizeof body, "client_secret", secret);
  host->secret_free(secret, len);
  form_add(body, sizeof body, "scope", SCOPE);
  send(run, url, "Content-Type: application/x-www-form-urlencoded", body,
       token_done);
  memset(body, 0, sizeof body);
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
    assets[i].mac_addresses = run->devices[i].macs; /* no more realloc */
  }
  rn_asset_counts_t c;
  int rc =
      rn_assets_sync(&ds, RN_MSP_ORG(t->msp), RN_COMPANY(t->company), PROVIDER,
                     assets, run->n_devices, run->complete, NULL, &c);
  host->free(assets);
  json_t *d = json_pack(
      "{s:I,s:I,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "msp_org", t->msp, "company",
      t->company, "complete", run->complete, "seen", c.seen, "created",
      c.created, "updated", c.updated, "retired", c.retired, "deduped",
      c.deduped, "restored", c.restored, "personal_skipped", run->personal);
  char *details = json_dumps(d, JSON_COMPACT);
  if (!rc)
    rc = rn_credential_record_run(&ds, RN_MSP_ORG(t->msp), PROVIDER, REGION,
                                  "asset_sync", details);
  free(details);
  if (rc < 0) {
    json_decref(d);
    snprintf(run->error, sizeof run->error, "company %lld: %s",
             (long long)t->company, rn_devsrc_error(&ds));
    return rc;
  }
  json_array_append_new(json_object_get(run->result, "companies"), d);
  run->seen += c.seen;
  return 0;
}

static void write_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  run_t *run = data;
  if (status < 0) {
    char why[sizeof run->error];
    snprintf(why, sizeof why, "%s", run->error);
    fail(run, status, "%s", status == RN_ECANCELED ? "canceled" : why);
  }
  if (status == RN_ECANCELED)
    return run_finish(run);
  run->group = run->group_end;
  begin_group(run);
}

/* Loads the active credentials and MAPPED tenants, ordered by company. */
static int plan_tx(rn_db_tx_t *tx, void *data) {
  run_t *run = data;
  char msp[24];
  snprintf(msp, sizeof msp, "%lld", (long long)run->param_msp);
  const char *params[] = {run->param_msp ? msp : NULL};
  rn_db_result_t *res = NULL;
  int rc = host->db_tx_exec(
      tx,
      "SELECT m.msp_org_id, m.portal_company_id, m.external_org_id,"
      " c.client_id, c.sealed_secret FROM integration_org_mapping m"
      " JOIN integration_credential c ON c.msp_org_id = m.msp_org_id"
      " AND c.provider = m.provider AND c.region = m.region AND c.is_active"
      " JOIN organization o ON o.id = m.msp_org_id AND o.kind = 'MSP'"
      " WHERE m.provider = 'intune' AND m.region = 'global'"
      " AND m.state = 'MAPPED' AND ($1::bigint IS NULL OR m.msp_org_id = $1)"
      " ORDER BY 1, 2, 3",
      1, params, &res);
  if (rc) {
    snprintf(run->error, sizeof run->error, "plan: %s", host->db_tx_error(tx));
    return rc;
  }
  int rows = host->db_rows(res);
  if (!(run->targets = host->calloc((size_t)rows + 1, sizeof *run->targets)))
    rc = RN_ENOMEM;
  for (int i = 0; !rc && i < rows; i++) {
    target_t *t = &run->targets[run->n_targets++];
    t->msp = strtoll(host->db_value(res, i, 0), NULL, 10);
    t->company = strtoll(host->db_value(res, i, 1), NULL, 10);
    snprintf(t->tenant, sizeof t->tenant, "%s", host->db_value(res, i, 2));
    snprintf(t->client_id, sizeof t->client_id, "%s",
             host->db_value(res, i, 3));
    if (!(t->sealed = host->strdup(host->db_value(res, i, 4))))
      rc = RN_ENOMEM;
  }
  host->db_result_free(res);
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
  static const rn_rate_window_t windows[] = {RN_RATE_WINDOW(1000, 20000)};
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
  *run = (run_t){.ctx = ctx,
                 .st = state,
                 .job = job,
                 .param_msp = json_integer_value(json_object_get(p, "msp_org")),
                 .result = json_pack("{s:[]}", "companies")};
  json_decref(p);
  host->job_set_data(job, run);
  int rc = host->db_transaction(ctx, plan_tx, plan_done, run, NULL);
  if (rc < 0) {
    json_decref(run->result);
    host->free(run);
  }
  return rc;
}

/* ---------------------------------------------------------- connect */

typedef struct connect_s {
  rn_ctx_t *ctx;
  rn_job_t *job;
  json_t *params;
  char *sealed;
  char error[512];
} connect_t;

/* Saves the sealed secret; the tenants become organizations, and those
 * given as TENANT=COMPANY are mapped to that company. */
static int connect_tx(rn_db_tx_t *tx, void *data) {
  connect_t *op = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, tx, host->now_ms(op->ctx));
  rn_msp_org_t msp =
      RN_MSP_ORG(json_integer_value(json_object_get(op->params, "msp_org")));
  char list[4096], *company[128];
  snprintf(list, sizeof list, "%s",
           json_string_value(json_object_get(op->params, "tenants")));
  rn_discovered_org_t orgs[128];
  size_t n = 0;
  for (char *save, *t = strtok_r(list, ", ", &save); t && n < 128;
       t = strtok_r(NULL, ", ", &save)) {
    if ((company[n] = strchr(t, '=')))
      *company[n]++ = 0;
    if (!*t || strspn(t, "0123456789abcdefABCDEF-") != strlen(t)) {
      snprintf(op->error, sizeof op->error,
               "tenants: \"%s\" is not a tenant id (a GUID)", t);
      return RN_EINVAL;
    }
    orgs[n++] = (rn_discovered_org_t){t, t};
  }
  int64_t id;
  rn_discovery_counts_t counts;
  int rc = rn_credential_save(
      &ds, msp, PROVIDER, REGION,
      json_string_value(json_object_get(op->params, "client_id")), op->sealed,
      &id);
  if (!rc)
    rc = rn_mappings_discovered(&ds, msp, PROVIDER, REGION, orgs, n, true,
                                &counts);
  for (size_t i = 0; !rc && i < n; i++)
    if (company[i])
      rc = rn_mapping_use_existing(
          &ds, msp, PROVIDER, REGION, orgs[i].external_id,
          RN_COMPANY(strtoll(company[i], NULL, 10)), true, ACTOR);
  if (!rc)
    rc = rn_audit_msp(&ds, msp, ACTOR, "INTUNE_CONNECTED", "{}");
  if (rc)
    snprintf(op->error, sizeof op->error, "%s", rn_devsrc_error(&ds));
  return rc;
}

static void connect_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  connect_t *op = data;
  host->job_complete(op->job, status, status < 0 ? NULL : "{\"ok\": true}",
                     status < 0 ? op->error : "connected");
  json_decref(op->params);
  host->free(op->sealed);
  host->free(op);
}

static int connect_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  connect_t *op = host->calloc(1, sizeof *op);
  if (!op)
    return RN_ENOMEM;
  op->ctx = ctx;
  op->job = job;
  op->params = job_params(job);
  size_t len = 0;
  const char *secret = host->job_secret(job, "client_secret_file", &len);
  while (secret && len && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
    len--; /* the file's line end is not part of the secret */
  int rc =
      secret ? host->secret_seal(ctx, secret, len, &op->sealed) : RN_EINVAL;
  if (!rc)
    rc = host->db_transaction(ctx, connect_tx, connect_done, op, NULL);
  if (rc < 0) {
    json_decref(op->params);
    host->free(op->sealed);
    host->free(op);
  }
  return rc;
}

/* ------------------------------------------------------ descriptor */

static const rn_option_t connect_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX, .help = "the MSP organization id"),
    RN_OPTION(
            .name = "client_id", .type = RN_OPT_STRING,
            .flags = RN_OPT_REQUIRED,
            .help =
                "application (client) id of the multi-tenant app registration"),
    RN_OPTION(.name = "client_secret_file", .type = RN_OPT_SECRET_FILE,
              .flags = RN_OPT_REQUIRED,
              .help = "file holding the client secret value (mode 0600), or -"),
    RN_OPTION(.name = "tenants", .type = RN_OPT_STRING,
              .flags = RN_OPT_REQUIRED,
              .help =
                  "consented tenant ids, comma separated; TENANT=COMPANY also "
                  "maps the tenant to that PSA company"),
    {0},
};
static const rn_option_t sync_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .min = 1, .max = INT64_MAX,
              .help = "only this MSP organization (default: every one)"),
    {0},
};

static const rn_job_def_t job_connect = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "connect",
    .summary = "save the app's sealed secret, its tenants and their companies",
    .params = connect_params,
    .run = connect_run,
    .command = "connect"};
static const rn_job_def_t job_sync = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "sync",
    .summary = "company-owned Intune devices of mapped tenants become assets",
    .params = sync_params,
    .run = sync_run,
    .command = "sync"};

static const rn_option_t plugin_options[] = {
    RN_OPTION(.name = "login_url", .type = RN_OPT_URL,
              .default_value = "https://login.microsoftonline.com",
              .help = "Entra ID token authority"),
    RN_OPTION(.name = "graph_url", .type = RN_OPT_URL,
              .default_value = "https://graph.microsoft.com",
              .help = "Microsoft Graph; @odata.nextLink must stay under it"),
    RN_OPTION(.name = "ca_file", .type = RN_OPT_PATH,
              .help = "extra trust anchor"),
    RN_OPTION(.name = "page_size", .type = RN_OPT_INT, .default_value = "500",
              .min = 1, .max = 1000, .help = "devices per Graph page ($top)"),
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

static const rn_job_def_t *const jobs[] = {&job_connect, &job_sync, NULL};

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
    .command_group = "intune"};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  return &descriptor;
}
