/* intune.c - intune-assets: Microsoft Intune as a device source, built
 * against the installed SDK alone (`pkg-config regentra-sdk`) on the
 * device-source kit. One multi-tenant app registration, consented by many
 * customer tenants; each tenant is an organization mapped to a PSA company.
 * The kit's card gives the commands (test, connect, orgs, map, disconnect,
 * status) and its client the token, budget, retries, 429s and paging; this
 * file is what is Intune's: the token URL per tenant, the device walk, the
 * normalization, and the sync of company-owned devices (personal ones never
 * become assets). */
#define _DEFAULT_SOURCE   /* timegm */
#define _XOPEN_SOURCE 700 /* strptime */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "regentra/devsrc.h"
#include "regentra/kit.h"
#include "regentra/kit/card.h"
#include "regentra/plugin.h"

#define SOURCE "intune" /* provider, asset source and command group */
#define REGION "global" /* one Entra ID cloud: no regions */
#define SCOPE "https://graph.microsoft.com/.default"
#define DEVICES "/v1.0/deviceManagement/managedDevices"
#define SELECT                                                                 \
  "id,deviceName,serialNumber,wiFiMacAddress,ethernetMacAddress,"              \
  "operatingSystem,osVersion,manufacturer,model,lastSyncDateTime,"             \
  "complianceState,isEncrypted,managedDeviceOwnerType"

static const rn_host_t *host;

typedef struct state_s {
  const char *login_url, *graph_url, *ca_file; /* borrowed from the config */
  int64_t page_size;
} state_t;

/* ---------------------------------------------------------- the client */

/* Intune's documented limit: 1,000 requests per 20 s per tenant and app. */
static const rn_rate_window_t graph_budget[] = {RN_RATE_WINDOW(1000, 20000)};

/* A Graph client of the app in one tenant (the token is per tenant). The
 * secret is copied; the client wipes its copy when freed. */
static int graph_client(const state_t *st, rn_ctx_t *ctx, const char *tenant,
                        const char *client_id, const char *secret,
                        size_t secret_len, rk_client_t **out, char *err,
                        size_t errlen) {
  char token_url[1024], where[80];
  snprintf(token_url, sizeof token_url, "%s/%s/oauth2/v2.0/token",
           st->login_url, tenant);
  snprintf(where, sizeof where, "tenant %s", tenant);
  rk_client_opts_t o = RK_CLIENT_OPTS_INIT;
  o.provider = "Intune";
  o.key_name = SOURCE;
  o.where = where;
  o.rate_scope = tenant;
  o.base_url = st->graph_url;
  o.token_url = token_url;
  o.ca_file = st->ca_file;
  o.client_id = client_id;
  o.client_secret = secret;
  o.client_secret_len = secret_len;
  o.scope = SCOPE;
  o.refusal_hint = "wrong client id or secret value, or no admin consent in "
                   "the tenant";
  o.rate_windows = graph_budget;
  o.rate_window_count = 1;
  return rk_client_new(host, ctx, &o, out, err, errlen);
}

/* ------------------------------------------------- the integration card */

static void client_release(void *client) {
  rk_client_free(client);
}

static void authenticated(rk_client_t *client, int status, const char *message,
                          void *data) {
  (void)client;
  rk_session_done(data, status, message);
}

/* The card calls it once per tenant the operator names (RK_ORGS_GIVEN):
 * Graph cannot list the tenants that consented to an app-only token. */
static int authenticate(rk_session_t *s) {
  const rk_credential_t *cred = rk_session_credential(s);
  rk_client_t *client;
  char err[RK_ERR_LEN];
  int rc = graph_client(rk_session_state(s), rk_session_ctx(s), cred->tenant,
                        cred->client_id, cred->secret, cred->secret_len,
                        &client, err, sizeof err);
  if (rc < 0) {
    rk_session_set_error(s, err);
    return rc;
  }
  rk_session_set_data(s, client, client_release); /* frees the previous */
  rk_session_set_host(s, ((state_t *)rk_session_state(s))->login_url);
  return rk_client_authenticate(client, authenticated, s);
}

/* A tenant id is a GUID: it becomes part of the token URL. */
static bool tenant_valid(const char *id) {
  for (int i = 0; i < 36; i++)
    if (i == 8 || i == 13 || i == 18 || i == 23
            ? id[i] != '-'
            : !isxdigit((unsigned char)id[i]))
      return false;
  return id[36] == '\0';
}

/* The --json error code and fix of a refused token or a 403 (the card's
 * own checks name theirs). */
static const char *explain(int status, const char **hint) {
  bool auth = status == RN_EAUTH;
  *hint = auth ? "use the secret's value (not its id), and have the tenant "
                 "grant the app admin consent"
               : "an administrator of the tenant grants the app the "
                 "application permission "
                 "DeviceManagementManagedDevices.Read.All (admin consent)";
  return auth                  ? "auth_refused"
         : status == RN_EACCES ? "permission_denied"
                               : NULL;
}

/* --------------------------------------------------------------- the run */

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
  rk_client_t *client; /* of the tenant being read */
  json_t *held;        /* the pages the devices point into */
  device_t *devices;
  size_t n_devices;
  int64_t personal, seen;
  bool complete;    /* every tenant of the company was read to the end */
  bool msp_refused; /* --msp-org names no MSP */
  int status;       /* the first failure */
  char error[RK_ERR_LEN + 64];
  json_t *result; /* {"companies": [...]} */
} run_t;

static void start_target(run_t *run);
static void begin_group(run_t *run);

RN_PRINTF(3, 4) static void fail(run_t *run, int rc, const char *fmt, ...) {
  run->complete = false; /* nothing is retired for the company */
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
  /* The --json error shape of the card's commands; rk_check_msp's too. */
  const char *hint, *code = explain(run->status, &hint);
  if (run->msp_refused) {
    code = run->status == RN_ETENANT ? "not_an_msp" : "unknown_msp_org";
    hint = "--msp-org takes the id of an MSP organization";
  }
  if (code)
    json_object_set_new(run->result, "error", json_string(code));
  if (code && hint)
    json_object_set_new(run->result, "hint", json_string(hint));
  char *text = json_dumps(run->result, JSON_COMPACT), summary[700];
  snprintf(summary, sizeof summary, "%zu mapped tenant%s, %lld devices%s%s",
           run->n_targets, run->n_targets == 1 ? "" : "s", (long long)run->seen,
           run->status ? "; " : "", run->status ? run->error : "");
  host->job_complete(run->job, run->status, text, summary);
  free(text);
  json_decref(run->result);
  json_decref(run->held);
  host->free(run->devices);
  host->free(run->targets);
  host->free(run);
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

/* Worker thread: one page of managedDevices, kept whole (the devices point
 * into it), with its @odata.nextLink. */
static int decode(const char *body, size_t len, rk_decoded_t *out, char *msg,
                  size_t msglen, void *data) {
  (void)data;
  json_error_t jerr;
  json_t *page = json_loadb(body, len, 0, &jerr);
  const char *next = str(page, "@odata.nextLink");
  out->page = page;
  out->parse_error = !page;
  if (!json_is_array(json_object_get(page, "value"))) {
    snprintf(msg, msglen, "%s: %s", DEVICES,
             page ? "a page has no \"value\" array" : jerr.text);
    return RN_EJSON;
  }
  if (next && !(out->next_link = strdup(next)))
    return RN_ENOMEM;
  out->count = json_array_size(json_object_get(page, "value"));
  return 0;
}

static void free_page(void *page, void *data) {
  (void)data;
  json_decref(page);
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

/* Loop thread, page by page: the page is held until the company is
 * written. */
static int on_page(const rk_page_t *page, void *data) {
  run_t *run = data;
  const char *tenant = run->targets[run->cur].tenant;
  size_t n = run->n_devices + page->count + 1;
  device_t *grown = host->realloc(run->devices, n * sizeof *grown);
  if (grown)
    run->devices = grown;
  if (!grown || json_array_append(run->held, page->page) < 0) {
    fail(run, RN_ENOMEM, "tenant %s: out of memory", tenant);
    return RN_ENOMEM;
  }
  for (size_t i = 0; i < page->count; i++)
    if (add_device(run, json_array_get(json_object_get(page->page, "value"), i),
                   tenant) < 0) {
      fail(run, RN_EJSON, "tenant %s: device %zu of page %u has no \"id\"",
           tenant, i + 1, page->number);
      return RN_EJSON;
    }
  return 0;
}

static void next_target(run_t *run) {
  rk_client_free(run->client);
  run->client = NULL;
  run->cur++;
  start_target(run);
}

static void tenant_read(rk_walk_t *walk, const rk_walk_result_t *result,
                        void *data) {
  (void)walk;
  run_t *run = data;
  const char *tenant = run->targets[run->cur].tenant;
  if (result->status < 0 && strstr(result->message, tenant))
    fail(run, result->status, "%s", result->message); /* the kit's */
  else if (result->status < 0)
    fail(run, result->status, "tenant %s: %s", tenant, result->message);
  if (result->status == RN_ECANCELED) { /* the host ends the job */
    rk_client_free(run->client);
    return run_finish(run);
  }
  next_target(run);
}

static void company_written(rn_ctx_t *ctx, int status, const char *error,
                            void *data);
static int write_company(rn_devsrc_t *ds, void *data);

/* Reads the company's next tenant, or writes the company once all were. */
static void start_target(run_t *run) {
  if (run->cur == run->group_end) {
    int rc = rn_devsrc_transaction(host, run->ctx, write_company,
                                   company_written, run);
    if (rc < 0) {
      fail(run, rc, "cannot write: %s", host->strerror(rc));
      run_finish(run);
    }
    return;
  }
  target_t *t = &run->targets[run->cur];
  char err[RK_ERR_LEN], *secret;
  size_t len;
  int rc = host->secret_open(run->ctx, t->sealed, &secret, &len);
  if (rc < 0) {
    snprintf(err, sizeof err, "the saved secret cannot be opened: %s",
             host->strerror(rc));
  } else {
    rc = graph_client(run->st, run->ctx, t->tenant, t->client_id, secret, len,
                      &run->client, err, sizeof err);
    host->secret_free(secret, len); /* wipes it: the client has a copy */
  }
  if (rc == 0) {
    rk_walk_opts_t w = RK_WALK_OPTS_INIT;
    w.paging = RK_PAGING_NEXT_LINK;
    w.path = DEVICES;
    w.query = "$select=" SELECT; /* Graph repeats it in every next link */
    w.page_param = "$top";
    w.page_size = (uint32_t)run->st->page_size;
    w.decode = decode;
    w.free_page = free_page;
    rc = rk_walk_start(run->client, &w, on_page, tenant_read, run, NULL);
    if (rc < 0)
      snprintf(err, sizeof err, "cannot walk the devices: %s",
               host->strerror(rc));
  }
  if (rc < 0) {
    fail(run, rc, "tenant %s: %s", t->tenant, err);
    next_target(run);
  }
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

/* ------------------------------------------------------ database side */

/* Worker thread: the company's whole pull, or nothing. */
static int write_company(rn_devsrc_t *ds, void *data) {
  run_t *run = data;
  target_t *t = &run->targets[run->group];
  rn_asset_t *assets = host->calloc(run->n_devices + 1, sizeof *assets);
  if (!assets)
    return rn_devsrc_fail(ds, RN_ENOMEM, "out of memory");
  for (size_t i = 0; i < run->n_devices; i++) {
    assets[i] = run->devices[i].asset;
    assets[i].mac_addresses = run->devices[i].macs; /* no more realloc */
  }
  rn_asset_counts_t c;
  int rc =
      rn_assets_sync(ds, RN_MSP_ORG(t->msp), RN_COMPANY(t->company), SOURCE,
                     assets, run->n_devices, run->complete, NULL, &c);
  host->free(assets);
  if (rc < 0)
    return rc;
  json_t *d = json_pack(
      "{s:I,s:I,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "msp_org", t->msp, "company",
      t->company, "complete", run->complete, "seen", c.seen, "created",
      c.created, "updated", c.updated, "retired", c.retired, "deduped",
      c.deduped, "restored", c.restored, "personal_skipped", run->personal);
  char *details = d ? json_dumps(d, JSON_COMPACT) : NULL;
  rc = details ? rn_credential_record_run(ds, RN_MSP_ORG(t->msp), SOURCE,
                                          REGION, "asset_sync", details)
               : rn_devsrc_fail(ds, RN_ENOMEM, "out of memory");
  free(details);
  if (rc < 0) {
    json_decref(d);
    return rc;
  }
  json_array_append_new(json_object_get(run->result, "companies"), d);
  run->seen += c.seen;
  return 0;
}

static void company_written(rn_ctx_t *ctx, int status, const char *error,
                            void *data) {
  (void)ctx;
  run_t *run = data;
  if (status < 0)
    fail(run, status, "company %lld: %s",
         (long long)run->targets[run->group].company, error);
  if (status == RN_ECANCELED)
    return run_finish(run);
  run->group = run->group_end;
  begin_group(run);
}

/* Worker thread: the MAPPED tenants of active credentials, by company. */
static int plan(rn_devsrc_t *ds, void *data) {
  run_t *run = data;
  char msp[24];
  snprintf(msp, sizeof msp, "%lld", (long long)run->param_msp);
  const char *params[] = {run->param_msp ? msp : NULL};
  int rc = run->param_msp ? rk_check_msp(ds, run->param_msp) : 0;
  if (rc < 0)
    return rc; /* unknown, or a customer's id */
  rn_db_result_t *res = NULL;
  rc = host->db_tx_exec(
      ds->tx,
      "SELECT m.msp_org_id, m.portal_company_id, m.external_org_id,"
      " c.client_id, c.sealed_secret FROM integration_org_mapping m"
      " JOIN integration_credential c ON c.msp_org_id = m.msp_org_id"
      " AND c.provider = m.provider AND c.region = m.region AND c.is_active"
      " JOIN organization o ON o.id = m.msp_org_id AND o.kind = 'MSP'"
      " WHERE m.provider = '" SOURCE "' AND m.region = '" REGION "'"
      " AND m.state = 'MAPPED' AND ($1::bigint IS NULL OR m.msp_org_id = $1)"
      " ORDER BY 1, 2, 3",
      1, params, &res);
  if (rc)
    return rn_devsrc_fail(ds, rc, "plan: %s", host->db_tx_error(ds->tx));
  int rows = host->db_rows(res);
  if (!(run->targets = host->calloc((size_t)rows + 1, sizeof *run->targets)))
    rc = rn_devsrc_fail(ds, RN_ENOMEM, "out of memory");
  for (int i = 0; rc == 0 && i < rows; i++) {
    target_t *t = &run->targets[run->n_targets++];
    t->msp = strtoll(host->db_value(res, i, 0), NULL, 10);
    t->company = strtoll(host->db_value(res, i, 1), NULL, 10);
    snprintf(t->tenant, sizeof t->tenant, "%s", host->db_value(res, i, 2));
    snprintf(t->client_id, sizeof t->client_id, "%s",
             host->db_value(res, i, 3));
    if (!(t->sealed = host->strdup(host->db_value(res, i, 4))))
      rc = rn_devsrc_fail(ds, RN_ENOMEM, "out of memory");
  }
  host->db_result_free(res);
  return rc;
}

static void planned(rn_ctx_t *ctx, int status, const char *error, void *data) {
  (void)ctx;
  run_t *run = data;
  if (status < 0) {
    run->msp_refused = status == RN_ETENANT || status == RN_ENOENT;
    fail(run, status, "%s", error);
    return run_finish(run);
  }
  begin_group(run);
}

static int sync_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  run_t *run = host->calloc(1, sizeof *run);
  if (!run)
    return RN_ENOMEM;
  json_t *p = json_loads(host->job_params(job), 0, NULL);
  *run = (run_t){.ctx = ctx,
                 .st = state,
                 .job = job,
                 .param_msp = json_integer_value(json_object_get(p, "msp_org")),
                 .result = json_pack("{s:[]}", "companies")};
  json_decref(p);
  host->job_set_data(job, run);
  int rc = rn_devsrc_transaction(host, ctx, plan, planned, run);
  if (rc < 0) {
    json_decref(run->result);
    host->free(run);
  }
  return rc;
}

/* ------------------------------------------------------- descriptor */

static const rn_option_t sync_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .min = 1, .max = INT64_MAX,
              .help = "only this MSP organization (default: every one)"),
    {0},
};

static const rn_job_def_t job_sync = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "sync",
    .summary = "company-owned Intune devices of mapped tenants become assets",
    .params = sync_params,
    .run = sync_run,
    .command = "sync"};

static const rn_job_def_t *const own_jobs[] = {&job_sync, NULL};

static const rk_provider_t provider = {
    .struct_size = sizeof(rk_provider_t),
    .source = SOURCE,
    .display_name = "Intune",
    .region = REGION,
    .client_id_help = "the application (client) id of the multi-tenant app "
                      "registration (Entra ID > App registrations)",
    .orgs_help = "the tenant ids that granted the app admin consent, comma "
                 "separated; each becomes an organization to map",
    .org_id_form = "a tenant id: a GUID",
    .org_id_valid = tenant_valid,
    .refresh_help = "authenticate in each saved tenant again before listing",
    .flags = RK_ORGS_GIVEN,
    .authenticate = authenticate,
    .explain = explain,
    .jobs = own_jobs,
};

static const rn_option_t plugin_options[] = {
    RN_OPTION(.name = "login_url", .type = RN_OPT_URL,
              .default_value = "https://login.microsoftonline.com",
              .help = "Entra ID token authority"),
    RN_OPTION(.name = "graph_url", .type = RN_OPT_URL,
              .default_value = "https://graph.microsoft.com",
              .help = "Microsoft Graph; @odata.nextLink must stay on it"),
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

static rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "intune-assets",
    .version = "0.2.0",
    .summary = "Microsoft Intune: tenants of a multi-tenant app mapped to "
               "companies; their company-owned managed devices become assets",
    .options = plugin_options,
    .create = intune_create,
    .destroy = intune_destroy,
    .command_group = SOURCE};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  descriptor.jobs = rk_card_jobs(h, &provider); /* the card's, then sync */
  return descriptor.jobs ? &descriptor : NULL;
}
