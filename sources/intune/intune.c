/* intune.c - intune-assets: Microsoft Intune as a device source, built
 * against the installed SDK alone (`pkg-config regentra-sdk`) on the
 * device-source kit. One multi-tenant app registration, consented by many
 * customer tenants; each tenant is an organization mapped to a PSA company.
 * The kit's card gives the commands (test, connect, orgs, map, sync,
 * disconnect, status) and its client the token, budget, retries, 429s and
 * paging; this file is what is Intune's: the token URL per tenant, the
 * device walk and the normalization (personal devices never become
 * assets). */
#define _DEFAULT_SOURCE   /* timegm */
#define _XOPEN_SOURCE 700 /* strptime */
#include <ctype.h>
#include <jansson.h>
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

/* ------------------------------------------------------- the device walk */

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

/* Worker thread: one page of managedDevices, with its @odata.nextLink. */
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

/* One Graph managedDevice as an asset; personal devices never are. The
 * card copies the asset at once, so the MAC list may be static (loop
 * thread only). */
static int normalize(const void *device, rn_asset_t *out) {
  static const char *macs[3];
  json_t *dev = (json_t *)device;
  const char *owner = str(dev, "managedDeviceOwnerType");
  if (!owner || strcmp(owner, "company"))
    return 0;
  const char *os = str(dev, "operatingSystem");
  size_t k = 0;
  if ((macs[k] = str(dev, "wiFiMacAddress")))
    k++;
  macs[k++] = str(dev, "ethernetMacAddress");
  macs[k] = NULL;
  bool mobile = os && (!strcmp(os, "iOS") || !strcmp(os, "Android"));
  *out = (rn_asset_t){.external_id = str(dev, "id"),
                      .name = str(dev, "deviceName"),
                      .hostname = str(dev, "deviceName"),
                      .os_name = os,
                      .serial_number = str(dev, "serialNumber"),
                      .mac_addresses = macs,
                      .device_class = mobile ? "MOBILE" : "COMPUTER",
                      .manufacturer = str(dev, "manufacturer"),
                      .model = str(dev, "model"),
                      .last_seen_ms = iso_ms(str(dev, "lastSyncDateTime"))};
  return 1;
}

/* Loop thread, page by page: every row to the card. */
static int device_page(const rk_page_t *page, void *data) {
  json_t *rows = json_object_get(page->page, "value");
  rk_session_progress(data, page->number);
  for (size_t i = 0; i < page->count; i++) {
    int rc = rk_session_add_device(data, json_array_get(rows, i));
    if (rc < 0)
      return rc;
  }
  return 0;
}

static void devices_walked(rk_walk_t *walk, const rk_walk_result_t *result,
                           void *data) {
  (void)walk;
  rk_session_done(data, result->status, result->message);
}

/* The card calls it once per MAPPED tenant, with that tenant's token. */
static int walk_devices(rk_session_t *s, const char *tenant) {
  const rk_credential_t *cred = rk_session_credential(s);
  const state_t *st = rk_session_state(s);
  rk_client_t *client;
  char err[RK_ERR_LEN];
  int rc =
      graph_client(st, rk_session_ctx(s), tenant, cred->client_id, cred->secret,
                   cred->secret_len, &client, err, sizeof err);
  if (rc < 0) {
    rk_session_set_error(s, err);
    return rc;
  }
  rk_session_set_data(s, client, client_release);
  rk_walk_opts_t w = RK_WALK_OPTS_INIT;
  w.paging = RK_PAGING_NEXT_LINK;
  w.path = DEVICES;
  w.query = "$select=" SELECT; /* Graph repeats it in every next link */
  w.page_param = "$top";
  w.page_size = (uint32_t)st->page_size;
  w.decode = decode;
  w.free_page = free_page;
  return rk_walk_start(client, &w, device_page, devices_walked, s, NULL);
}

/* ------------------------------------------------------- descriptor */

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
    .walk_devices = walk_devices,
    .normalize = normalize,
    .sync_help = "company-owned Intune devices of mapped tenants become "
                 "assets",
    .org_noun = "tenant",
    .skipped_name = "personal_skipped",
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
  descriptor.jobs = rk_card_jobs(h, &provider); /* sync included */
  return descriptor.jobs ? &descriptor : NULL;
}
