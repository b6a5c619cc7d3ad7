/* device_source.c - the skeleton of a device source: one `sync` job reads a
 * JSON device list from the `devices_url` option with the host's HTTP
 * service and writes it as the assets of one company in one transaction
 * through the device-source library. Copy it, rename SOURCE and the plugin,
 * and replace read_devices() with your API's walk (paging, tokens).
 *
 * The list it reads:
 *   [{"id": "d1", "name": "FS01", "serial": "7XK2QH3",
 *     "mac": "00:1a:2b:3c:4d:5e", "os": "Windows 11",
 *     "last_seen": 1767225600000}, ...]
 * Only "id" is required. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <regentra/devsrc.h>
#include <regentra/plugin.h>

#define SOURCE "example"         /* asset.external_source */
#define RATE_KEY "example/api"   /* the host meters requests of this bucket */

static const rn_host_t *host;

typedef struct state_s {
  const char *devices_url, *ca_file; /* borrowed from the config */
} state_t;

/* One run of the sync job; freed by finish(). */
typedef struct run_s {
  rn_ctx_t *ctx;
  rn_job_t *job;
  state_t *st;
  int64_t msp, company;
  json_t *list;       /* the parsed response; the assets point into it */
  rn_asset_t *assets; /* host memory */
  const char **macs;  /* one NULL-terminated pair per asset */
  size_t count;
  rn_asset_counts_t counts;
  char error[512];
} run_t;

static void finish(run_t *run, int status) {
  char result[256];
  snprintf(result, sizeof result,
           "{\"seen\": %lld, \"created\": %lld, \"updated\": %lld,"
           " \"retired\": %lld, \"deduped\": %lld}",
           (long long)run->counts.seen, (long long)run->counts.created,
           (long long)run->counts.updated, (long long)run->counts.retired,
           (long long)run->counts.deduped);
  host->job_complete(run->job, status, status < 0 ? NULL : result,
                     status < 0 ? run->error : "synced");
  json_decref(run->list);
  host->free(run->assets);
  host->free(run->macs);
  host->free(run);
}

static const char *member(json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s && *s ? s : NULL;
}

/* Normalizes the list into run->assets; the strings stay in run->list. */
static int read_devices(run_t *run, const char *body) {
  json_error_t jerr;
  run->list = json_loads(body, 0, &jerr);
  if (!run->list) {
    snprintf(run->error, sizeof run->error, "%s: line %d: %s",
             run->st->devices_url, jerr.line, jerr.text);
    return RN_EJSON;
  }
  if (!json_is_array(run->list)) {
    snprintf(run->error, sizeof run->error,
             "%s: not a JSON array of devices", run->st->devices_url);
    return RN_EJSON;
  }
  size_t n = json_array_size(run->list);
  run->assets = host->calloc(n + 1, sizeof *run->assets);
  run->macs = host->calloc(2 * n + 1, sizeof *run->macs);
  if (!run->assets || !run->macs)
    return RN_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *d = json_array_get(run->list, i);
    if (!member(d, "id")) {
      snprintf(run->error, sizeof run->error, "%s: device #%zu has no \"id\"",
               run->st->devices_url, i + 1);
      return RN_EJSON;
    }
    run->macs[2 * i] = member(d, "mac");
    run->assets[i] = (rn_asset_t){
        .external_id = member(d, "id"),
        .name = member(d, "name"),
        .hostname = member(d, "name"),
        .serial_number = member(d, "serial"),
        .mac_addresses = &run->macs[2 * i],
        .os_name = member(d, "os"),
        .device_class = "COMPUTER",
        .last_seen_ms = json_integer_value(json_object_get(d, "last_seen"))};
  }
  run->count = n;
  return 0;
}

/* Worker thread, inside one transaction: the whole pull or nothing. */
static int write_tx(rn_db_tx_t *tx, void *data) {
  run_t *run = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, tx, host->now_ms(run->ctx));
  /* complete: the list is the source's whole fleet of this company, so
   * devices missing from it retire. NULL: the MSP's source priority. */
  int rc = rn_assets_sync(&ds, RN_MSP_ORG(run->msp),
                          RN_COMPANY(run->company), SOURCE, run->assets,
                          run->count, true, NULL, &run->counts);
  if (rc < 0)
    snprintf(run->error, sizeof run->error, "%s", rn_devsrc_error(&ds));
  return rc;
}

static void write_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  finish(data, status);
}

static void list_done(rn_ctx_t *ctx, int status, const rn_http_response_t *resp,
                      void *data) {
  run_t *run = data;
  int rc = status;
  if (rc < 0) {
    snprintf(run->error, sizeof run->error, "%s: %s", run->st->devices_url,
             host->strerror(rc));
  } else if (resp->status != 200) {
    snprintf(run->error, sizeof run->error, "%s: HTTP %ld",
             run->st->devices_url, resp->status);
    rc = resp->status == 401 || resp->status == 403 ? RN_EAUTH
         : resp->status == 429                      ? RN_ETHROTTLED
                                                    : RN_EUPSTREAM;
  } else {
    rc = read_devices(run, resp->body);
  }
  if (rc == 0 &&
      (rc = host->db_transaction(ctx, write_tx, write_done, run, NULL)) < 0)
    snprintf(run->error, sizeof run->error, "cannot write: %s",
             host->strerror(rc));
  if (rc < 0)
    finish(run, rc);
}

static int sync_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  json_t *params = json_loads(host->job_params(job), 0, NULL);
  run_t *run = host->calloc(1, sizeof *run);
  if (!run) {
    json_decref(params);
    return RN_ENOMEM;
  }
  *run = (run_t){
      .ctx = ctx,
      .job = job,
      .st = state,
      .msp = json_integer_value(json_object_get(params, "msp_org")),
      .company = json_integer_value(json_object_get(params, "company"))};
  json_decref(params);
  host->job_set_data(job, run);
  static const rn_rate_window_t windows[] = {RN_RATE_WINDOW(10, 1000)};
  if (RN_HOST_HAS(host, rate_configure))
    host->rate_configure(ctx, RATE_KEY, windows, 1);
  const char *headers[] = {"Accept: application/json", NULL};
  rn_http_request_t req = {.struct_size = sizeof req,
                           .method = "GET",
                           .url = run->st->devices_url,
                           .headers = headers,
                           .ca_file = run->st->ca_file,
                           .rate_key = RATE_KEY};
  int rc = host->http_request(ctx, &req, list_done, run, NULL);
  if (rc < 0) /* nothing started: fail synchronously, no callback */
    host->free(run);
  return rc;
}

/* ------------------------------------------------------ descriptor */

static const rn_option_t sync_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX, .help = "the MSP organization id"),
    RN_OPTION(.name = "company", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX,
              .help = "the PSA company the devices belong to"),
    {0},
};

static const rn_job_def_t job_sync = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "sync",
    .summary = "the devices listed at devices_url become the company's assets",
    .params = sync_params,
    .run = sync_run,
    .command = "sync"};

static const rn_option_t plugin_options[] = {
    RN_OPTION(.name = "devices_url", .type = RN_OPT_URL,
              .default_value = "http://127.0.0.1:8080/devices.json",
              .help = "where the JSON device list is served"),
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
  s->devices_url = host->config_str(config, "devices_url");
  s->ca_file = host->config_str(config, "ca_file");
  *state = s;
  return 0;
}

static void source_destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  host->free(state);
}

static const rn_job_def_t *const jobs[] = {&job_sync, NULL};

static const rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "device-source",
    .version = "0.1.0",
    .summary = "template device source: a JSON device list becomes assets",
    .options = plugin_options,
    .create = source_create,
    .destroy = source_destroy,
    .jobs = jobs,
    .command_group = "example"};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  return &descriptor;
}
