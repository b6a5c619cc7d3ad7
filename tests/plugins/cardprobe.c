/* cardprobe - the smallest device source on the integration card
 * (regentra/kit/card.h): POST list_url/token with the client id and secret
 * (200 = good), then GET list_url/orgs, a JSON array of {"id", "name",
 * "description"}. No regions: every credential is saved under "global".
 * Its sync (the card's) reads GET list_url/orgs/<org>/devices, a JSON array
 * of {"id", "name", "serial", "personal"}; personal devices are no assets.
 *
 * Built with CARDPROBE_GIVEN it is "cardgiven": a provider that cannot list
 * its organizations (as Graph cannot list consented tenants), so the
 * operator names them (--orgs) and the card authenticates in each one at
 * list_url/token/<tenant>. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regentra/kit/card.h"
#include "regentra/plugin.h"

static const rn_host_t *host;

typedef struct state_s {
  const char *list_url; /* borrowed from the config */
} state_t;

static void token_done(rn_ctx_t *ctx, int status,
                       const rn_http_response_t *resp, void *data) {
  (void)ctx;
  rk_session_t *s = data;
  if (status == 0 && resp->status != 200) {
    char message[256];
    snprintf(message, sizeof message,
             "the token endpoint refused the credential (HTTP %ld): wrong "
             "client id or secret",
             resp->status);
    rk_session_done(s, RN_EAUTH, message);
    return;
  }
  rk_session_done(s, status, NULL);
}

static int authenticate(rk_session_t *s) {
  const rk_credential_t *cred = rk_session_credential(s);
  state_t *st = rk_session_state(s);
  char url[512], body[1024];
  snprintf(url, sizeof url, "%s/token%s%s", st->list_url,
           cred->tenant ? "/" : "", cred->tenant ? cred->tenant : "");
  int n = snprintf(body, sizeof body, "client_id=%s&client_secret=%.*s",
                   cred->client_id, (int)cred->secret_len, cred->secret);
  rk_session_set_host(s, st->list_url);
  rn_http_request_t req = RN_HTTP_REQUEST_INIT;
  req.method = "POST";
  req.url = url;
  req.body = body;
  req.body_len = n > 0 && (size_t)n < sizeof body ? (size_t)n : 0;
  int rc = host->http_request(rk_session_ctx(s), &req, token_done, s, NULL);
  memset(body, 0, sizeof body); /* the host copied it */
  return rc;
}

#ifndef CARDPROBE_GIVEN
static void orgs_done(rn_ctx_t *ctx, int status, const rn_http_response_t *resp,
                      void *data) {
  (void)ctx;
  rk_session_t *s = data;
  if (status < 0) {
    rk_session_done(s, status, NULL);
    return;
  }
  json_t *list = json_loads(resp->body, 0, NULL);
  if (resp->status != 200 || !json_is_array(list)) {
    json_decref(list);
    rk_session_done(s, RN_EUPSTREAM,
                    "the organization list is not a JSON "
                    "array");
    return;
  }
  size_t i;
  json_t *o;
  int rc = 0;
  json_array_foreach(list, i, o) {
    if (rc == 0)
      rc = rk_session_add_org(
          s, json_string_value(json_object_get(o, "id")),
          json_string_value(json_object_get(o, "name")),
          json_string_value(json_object_get(o, "description")));
  }
  json_decref(list);
  rk_session_set_walk(s, false, 1);
  rk_session_done(s, rc, rc < 0 ? "an organization without an id" : NULL);
}

static int list_orgs(rk_session_t *s) {
  state_t *st = rk_session_state(s);
  char url[512];
  snprintf(url, sizeof url, "%s/orgs", st->list_url);
  rn_http_request_t req = RN_HTTP_REQUEST_INIT;
  req.url = url;
  return host->http_request(rk_session_ctx(s), &req, orgs_done, s, NULL);
}

/* The whole list in one answer: every row to the card. */
static void devices_done(rn_ctx_t *ctx, int status,
                         const rn_http_response_t *resp, void *data) {
  (void)ctx;
  rk_session_t *s = data;
  if (status < 0) {
    rk_session_done(s, status, NULL);
    return;
  }
  json_t *list = json_loads(resp->body, 0, NULL);
  if (resp->status != 200 || !json_is_array(list)) {
    char message[128];
    snprintf(message, sizeof message,
             "the device list answered HTTP %ld, not a JSON array",
             resp->status);
    json_decref(list);
    rk_session_done(s, RN_EUPSTREAM, message);
    return;
  }
  size_t i;
  json_t *d;
  int rc = 0;
  json_array_foreach(list, i, d) {
    if (rc == 0)
      rc = rk_session_add_device(s, d);
  }
  json_decref(list);
  rk_session_progress(s, 1);
  rk_session_done(s, rc, NULL);
}

static int walk_devices(rk_session_t *s, const char *org) {
  state_t *st = rk_session_state(s);
  char url[512];
  snprintf(url, sizeof url, "%s/orgs/%s/devices", st->list_url, org);
  rn_http_request_t req = RN_HTTP_REQUEST_INIT;
  req.url = url;
  return host->http_request(rk_session_ctx(s), &req, devices_done, s, NULL);
}

static int normalize(const void *device, rn_asset_t *out) {
  json_t *d = (json_t *)device;
  if (json_is_true(json_object_get(d, "personal")))
    return 0;
  *out = (rn_asset_t){
      .external_id = json_string_value(json_object_get(d, "id")),
      .name = json_string_value(json_object_get(d, "name")),
      .hostname = json_string_value(json_object_get(d, "name")),
      .serial_number = json_string_value(json_object_get(d, "serial")),
      .device_class = "COMPUTER"};
  return 1;
}
#endif

#ifdef CARDPROBE_GIVEN
#define NAME "cardgiven"
/* A tenant id: hex digits and dashes. */
static bool tenant_valid(const char *id) {
  return *id && strspn(id, "0123456789abcdef-") == strlen(id);
}

static const rk_provider_t provider = {
    .struct_size = sizeof(rk_provider_t),
    .source = NAME,
    .display_name = "CardGiven",
    .region = "global",
    .org_id_form = "hex digits and dashes",
    .org_id_valid = tenant_valid,
    .orgs_help = "the consented tenant ids, comma separated",
    .flags = RK_ORGS_GIVEN,
    .authenticate = authenticate,
};
#else
#define NAME "cardprobe"
static const rk_provider_t provider = {
    .struct_size = sizeof(rk_provider_t),
    .source = NAME,
    .display_name = "CardProbe",
    .region = "global",
    .client_id_help = "the probe's client id",
    .authenticate = authenticate,
    .list_orgs = list_orgs,
    .walk_devices = walk_devices,
    .normalize = normalize,
};
#endif

static const rn_option_t options[] = {
    RN_OPTION(.name = "list_url", .type = RN_OPT_URL, .flags = RN_OPT_REQUIRED,
              .help = "where /token and /orgs are served"),
    {0},
};

static int create(rn_ctx_t *ctx, const rn_config_t *config, void **state) {
  (void)ctx;
  state_t *st = host->calloc(1, sizeof *st);
  if (!st)
    return RN_ENOMEM;
  st->list_url = host->config_str(config, "list_url");
  *state = st;
  return 0;
}

static void destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  host->free(state);
}

static rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = NAME,
    .version = "0.1.0",
    .summary = "a second provider on the integration card, for its tests",
    .options = options,
    .create = create,
    .destroy = destroy,
    .command_group = NAME,
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  descriptor.jobs = rk_card_jobs(h, &provider);
  return descriptor.jobs ? &descriptor : NULL;
}
