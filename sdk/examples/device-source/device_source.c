/* device_source.c - the skeleton of a device source on the SDK's kit. Copy
 * it, rename SOURCE, the display name and the plugin, and replace the three
 * API calls and normalize() with your API's.
 *
 * The card (<regentra/kit/card.h>) gives the operator commands `example
 * test|connect|orgs|map|sync|disconnect|status`; the client
 * (<regentra/kit/client.h>) the OAuth2 token, the request budget, retries,
 * 429s and paging. What is left is the source's own:
 *
 *   POST {api_url}/oauth/token          client credentials (form body)
 *   GET  {api_url}/orgs                 {"items": [{"id", "name"}],
 *                                        "next": absolute URL | absent}
 *   GET  {api_url}/orgs/{id}/devices    {"items": [{"id", "name", "serial",
 *                                        "mac", "os", "last_seen"}], "next"}
 *
 * The card's sync walks each mapped organization's devices through
 * walk_devices and normalize() and writes them as the assets of its
 * company, one transaction per company. Only "id" is required. */
#define _POSIX_C_SOURCE 200809L /* strdup, with -std=c11 */
#include <jansson.h>
#include <stdio.h>
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

/* Your API's device record as an asset; strings stay in the row (the card
 * copies them at once, so the MAC list may be static: loop thread only).
 * Return 0 for a row that is not an asset. */
static int normalize(const void *device, rn_asset_t *out) {
  static const char *macs[2];
  json_t *d = (json_t *)device;
  macs[0] = member(d, "mac");
  macs[1] = NULL;
  *out = (rn_asset_t){.external_id = member(d, "id"),
                      .name = member(d, "name"),
                      .hostname = member(d, "name"),
                      .serial_number = member(d, "serial"),
                      .mac_addresses = macs,
                      .os_name = member(d, "os"),
                      .device_class = "COMPUTER",
                      .last_seen_ms =
                          json_integer_value(json_object_get(d, "last_seen"))};
  return 1;
}

static int device_page(const rk_page_t *page, void *data) {
  json_t *items = json_object_get(page->page, "items");
  rk_session_progress(data, page->number);
  for (size_t i = 0; i < page->count; i++) {
    int rc = rk_session_add_device(data, json_array_get(items, i));
    if (rc < 0)
      return rc;
  }
  return 0;
}

static void devices_walked(rk_walk_t *w, const rk_walk_result_t *result,
                           void *data) {
  (void)w;
  rk_session_done(data, result->status, result->message);
}

/* The card calls it once per MAPPED organization, with its credential. */
static int walk_devices(rk_session_t *s, const char *org) {
  const rk_credential_t *cred = rk_session_credential(s);
  rk_client_t *client;
  char err[RK_ERR_LEN], id[3 * 256], path[sizeof id + 32];
  if (strlen(org) >= 256) {
    rk_session_set_error(s, "the organization id is longer than 255 bytes");
    return RN_EINVAL;
  }
  int rc = api_client(rk_session_state(s), rk_session_ctx(s), cred->client_id,
                      cred->secret, cred->secret_len, &client, err, sizeof err);
  if (rc < 0) {
    rk_session_set_error(s, err);
    return rc;
  }
  rk_session_set_data(s, client, client_release);
  id[rk_url_encode(id, org, strlen(org))] = '\0'; /* the API's id */
  snprintf(path, sizeof path, "/orgs/%s/devices", id);
  return walk(client, path, device_page, devices_walked, s);
}

/* ------------------------------------------------------- descriptor */

static const rk_provider_t provider = {
    .struct_size = sizeof(rk_provider_t),
    .source = SOURCE,
    .display_name = "Example",
    .region = REGION,
    .client_id_help = "where the operator finds the API client's id",
    .authenticate = authenticate,
    .list_orgs = list_orgs,
    .walk_devices = walk_devices,
    .normalize = normalize,
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
  descriptor.jobs = rk_card_jobs(h, &provider); /* sync included */
  return descriptor.jobs ? &descriptor : NULL;
}
