/* device_source.c - the skeleton of a device source on the SDK's kit. Copy
 * it, rename SOURCE, the display name and the plugin, and replace the three
 * API calls and normalize() with your API's.
 *
 * The card (<regentra/kit/card.h>) gives the operator commands `example
 * test|connect|orgs|map|disconnect|status`; the client
 * (<regentra/kit/client.h>) the OAuth2 token, the request budget, retries,
 * 429s and paging. What is left is the source's own:
 *
 *   POST {api_url}/oauth/token          client credentials (form body)
 *   GET  {api_url}/orgs                 {"items": [{"id", "name"}],
 *                                        "next": absolute URL | absent}
 *   GET  {api_url}/orgs/{id}/devices    {"items": [{"id", "name", "serial",
 *                                        "mac", "os", "last_seen"}], "next"}
 *
 * and the sync: the devices of every mapped organization become the assets
 * of its company, one transaction per company. Only "id" is required. */
#define _POSIX_C_SOURCE 200809L /* strdup, with -std=c11 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <regentra/devsrc.h>
#include <regentra/kit.h>
#include <regentra/kit/card.h>
#include <regentra/plugin.h>

#define SOURCE "example" /* provider, asset source and command group */
#define REGION "global"  /* the API has no regions */

static const rn_host_t *host;

typedef struct state_s {
  const char *api_url, *ca_file; /* borrowed from the config */
} state_t;

/* The API's budget per credential: 10 requests a second. */
static const rn_rate_window_t budget[] = {RN_RATE_WINDOW(10, 1000)};

/* A client of one credential; the secret is copied (and wiped on free). */
static int api_client(const state_t *st, rn_ctx_t *ctx, const char *client_id,
                      const char *secret, size_t secret_len, rk_client_t **out,
                      char *err, size_t errlen) {
  char token_url[1024];
  snprintf(token_url, sizeof token_url, "%s/oauth/token", st->api_url);
  rk_client_opts_t o = RK_CLIENT_OPTS_INIT;
  o.provider = "Example";
  o.key_name = SOURCE;
  o.base_url = st->api_url;
  o.token_url = token_url;
  o.ca_file = st->ca_file;
  o.client_id = client_id;
  o.client_secret = secret;
  o.client_secret_len = secret_len;
  o.rate_windows = budget;
  o.rate_window_count = 1;
  return rk_client_new(host, ctx, &o, out, err, errlen);
}

/* Worker thread: one page of a list, {"items": [...], "next": URL}, kept
 * whole (rows point into it). */
static int decode(const char *body, size_t len, rk_decoded_t *out, char *msg,
                  size_t msglen, void *data) {
  (void)data;
  json_t *page = json_loadb(body, len, 0, NULL);
  const char *next = json_string_value(json_object_get(page, "next"));
  out->page = page;
  out->parse_error = !page; /* retried like a 5xx */
  if (!json_is_array(json_object_get(page, "items"))) {
    snprintf(msg, msglen, "a page has no \"items\" array");
    return RN_EJSON;
  }
  if (next && !(out->next_link = strdup(next)))
    return RN_ENOMEM;
  out->count = json_array_size(json_object_get(page, "items"));
  return 0;
}

static void free_page(void *page, void *data) {
  (void)data;
  json_decref(page);
}

static int walk(rk_client_t *client, const char *path, rk_page_cb on_page,
                rk_walk_cb done, void *data) {
  rk_walk_opts_t w = RK_WALK_OPTS_INIT;
  w.paging = RK_PAGING_NEXT_LINK;
  w.path = path;
  w.page_param = "limit";
  w.page_size = 500;
  w.decode = decode;
  w.free_page = free_page;
  return rk_walk_start(client, &w, on_page, done, data, NULL);
}

static const char *member(json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s && *s ? s : NULL;
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

static int authenticate(rk_session_t *s) {
  const rk_credential_t *cred = rk_session_credential(s);
  state_t *st = rk_session_state(s);
  rk_client_t *client;
  char err[RK_ERR_LEN];
  int rc = api_client(st, rk_session_ctx(s), cred->client_id, cred->secret,
                      cred->secret_len, &client, err, sizeof err);
  if (rc < 0) {
    rk_session_set_error(s, err);
    return rc;
  }
  rk_session_set_data(s, client, client_release); /* list_orgs uses it */
  rk_session_set_host(s, st->api_url);
  return rk_client_authenticate(client, authenticated, s);
}

static int org_page(const rk_page_t *page, void *data) {
  json_t *items = json_object_get(page->page, "items");
  for (size_t i = 0; i < page->count; i++) {
    json_t *org = json_array_get(items, i);
    int rc =
        rk_session_add_org(data, member(org, "id"), member(org, "name"), NULL);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static void orgs_walked(rk_walk_t *w, const rk_walk_result_t *result,
                        void *data) {
  (void)w;
  rk_session_set_walk(data, result->truncated, result->pages);
  rk_session_done(data, result->status, result->message);
}

static int list_orgs(rk_session_t *s) {
  return walk(rk_session_data(s), "/orgs", org_page, orgs_walked, s);
}

/* ------------------------------------------------------------- the sync */

typedef struct target_s { /* one MAPPED organization and its credential */
  int64_t msp, company;
  char org[128], client_id[256], path[512];
  char *sealed; /* host memory */
} target_t;

typedef struct device_s {
  rn_asset_t asset;
  const char *macs[2]; /* NULL-terminated */
} device_t;

typedef struct run_s {
  rn_ctx_t *ctx;
  state_t *st;
  rn_job_t *job;
  int64_t param_msp;
  target_t *targets; /* ordered by (msp, company): a group is one company */
  size_t n_targets, group, group_end, cur;
  rk_client_t *client; /* of the organization being read */
  json_t *held;        /* the pages the devices point into */
  device_t *devices;
  size_t n_devices;
  bool complete; /* every organization of the company was read to the end */
  int status;    /* the first failure */
  char error[RK_ERR_LEN + 64];
  json_t *result; /* {"companies": [...]} */
} run_t;

static void start_target(run_t *run);

RN_PRINTF(3, 4) static void fail(run_t *run, int rc, const char *fmt, ...) {
  run->complete = false; /* nothing is retired for the company */
  if (run->status)
    return;
  run->status = rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(run->error, sizeof run->error, fmt, ap);
  va_end(ap);
}

static void run_finish(run_t *run) {
  for (size_t i = 0; i < run->n_targets; i++)
    host->free(run->targets[i].sealed);
  char *text = json_dumps(run->result, JSON_COMPACT);
  host->job_complete(run->job, run->status, text,
                     run->status ? run->error : "synced");
  free(text);
  json_decref(run->result);
  json_decref(run->held);
  host->free(run->devices);
  host->free(run->targets);
  host->free(run);
}

/* Your API's device record as an asset; strings stay in the page. */
static void normalize(json_t *d, const char *org, device_t *out) {
  out->macs[0] = member(d, "mac");
  out->macs[1] = NULL;
  out->asset = (rn_asset_t){
      .external_id = member(d, "id"),
      .name = member(d, "name"),
      .hostname = member(d, "name"),
      .serial_number = member(d, "serial"),
      .os_name = member(d, "os"),
      .device_class = "COMPUTER",
      .last_seen_ms = json_integer_value(json_object_get(d, "last_seen")),
      .external_org_id = org};
}

static int device_page(const rk_page_t *page, void *data) {
  run_t *run = data;
  target_t *t = &run->targets[run->cur];
  json_t *items = json_object_get(page->page, "items");
  size_t n = run->n_devices + page->count;
  device_t *grown = host->realloc(run->devices, (n + 1) * sizeof *grown);
  if (grown)
    run->devices = grown;
  if (!grown || json_array_append(run->held, page->page) < 0) {
    fail(run, RN_ENOMEM, "organization %s: out of memory", t->org);
    return RN_ENOMEM;
  }
  for (size_t i = 0; i < page->count; i++) {
    json_t *d = json_array_get(items, i);
    if (!member(d, "id")) {
      fail(run, RN_EJSON,
           "organization %s: device %zu of page %u has no "
           "\"id\"",
           t->org, i + 1, page->number);
      return RN_EJSON;
    }
    normalize(d, t->org, &run->devices[run->n_devices++]);
  }
  return 0;
}

static void next_target(run_t *run) {
  rk_client_free(run->client);
  run->client = NULL;
  run->cur++;
  start_target(run);
}

static void devices_walked(rk_walk_t *w, const rk_walk_result_t *result,
                           void *data) {
  (void)w;
  run_t *run = data;
  if (result->status < 0)
    fail(run, result->status, "organization %s: %s", run->targets[run->cur].org,
         result->message);
  if (result->status == RN_ECANCELED) { /* the host ends the job */
    rk_client_free(run->client);
    return run_finish(run);
  }
  next_target(run);
}

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
  /* complete: devices of the company missing from the pull retire. NULL:
   * the MSP's source priority. */
  int rc =
      rn_assets_sync(ds, RN_MSP_ORG(t->msp), RN_COMPANY(t->company), SOURCE,
                     assets, run->n_devices, run->complete, NULL, &c);
  host->free(assets);
  if (rc == 0)
    json_array_append_new(json_object_get(run->result, "companies"),
                          json_pack("{s:I,s:b,s:I,s:I,s:I,s:I,s:I}", "company",
                                    t->company, "complete", run->complete,
                                    "seen", c.seen, "created", c.created,
                                    "updated", c.updated, "retired", c.retired,
                                    "deduped", c.deduped));
  return rc;
}

static void begin_group(run_t *run);

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

/* Reads the company's next organization, or writes the company. */
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
    rc = api_client(run->st, run->ctx, t->client_id, secret, len, &run->client,
                    err, sizeof err);
    host->secret_free(secret, len); /* wipes it: the client has a copy */
  }
  if (rc == 0) {
    char id[3 * sizeof t->org]; /* the API's id, percent-encoded */
    id[rk_url_encode(id, t->org, strlen(t->org))] = '\0';
    snprintf(t->path, sizeof t->path, "/orgs/%s/devices", id);
    rc = walk(run->client, t->path, device_page, devices_walked, run);
    if (rc < 0)
      snprintf(err, sizeof err, "%s", host->strerror(rc));
  }
  if (rc < 0) {
    fail(run, rc, "organization %s: %s", t->org, err);
    next_target(run);
  }
}

static void begin_group(run_t *run) {
  if (run->group == run->n_targets)
    return run_finish(run);
  json_decref(run->held);
  run->held = json_array();
  run->n_devices = 0;
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

/* Worker thread: the MAPPED organizations of active credentials. */
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
      " WHERE m.provider = '" SOURCE "' AND m.state = 'MAPPED'"
      " AND ($1::bigint IS NULL OR m.msp_org_id = $1) ORDER BY 1, 2, 3",
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
    snprintf(t->org, sizeof t->org, "%s", host->db_value(res, i, 2));
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
  if (rc < 0) { /* nothing started: fail synchronously, no callback */
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
    .summary = "the devices of mapped organizations become company assets",
    .params = sync_params,
    .run = sync_run,
    .command = "sync"};

static const rn_job_def_t *const own_jobs[] = {&job_sync, NULL};

static const rk_provider_t provider = {
    .struct_size = sizeof(rk_provider_t),
    .source = SOURCE,
    .display_name = "Example",
    .region = REGION,
    .client_id_help = "where the operator finds the API client's id",
    .authenticate = authenticate,
    .list_orgs = list_orgs,
    .jobs = own_jobs,
};

static const rn_option_t plugin_options[] = {
    RN_OPTION(.name = "api_url", .type = RN_OPT_URL,
              .default_value = "http://127.0.0.1:8080",
              .help = "the API root; next links must stay on it"),
    RN_OPTION(.name = "ca_file", .type = RN_OPT_PATH,
              .help = "extra trust anchor"),
    {0},
};

static int source_create(rn_ctx_t *ctx, const rn_config_t *config,
                         void **state) {
  (void)ctx;
  state_t *s = host->calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  s->api_url = host->config_str(config, "api_url");
  s->ca_file = host->config_str(config, "ca_file");
  *state = s;
  return 0;
}

static void source_destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  host->free(state);
}

static rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "device-source",
    .version = "0.2.0",
    .summary = "template device source on the kit: mapped organizations' "
               "devices become company assets",
    .options = plugin_options,
    .create = source_create,
    .destroy = source_destroy,
    .command_group = SOURCE};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  descriptor.jobs = rk_card_jobs(h, &provider); /* the card's, then sync */
  return descriptor.jobs ? &descriptor : NULL;
}
