/* server.c - graph-sim over libmicrohttpd: routing, the Entra ID token
 * endpoint, Graph managedDevices with $select / $top / @odata.nextLink,
 * faults and the /_sim control API. One polling thread serves everything,
 * so the state in gs_sim_t needs no lock. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graphsim.h"

#define SCOPE "https://graph.microsoft.com/.default"
#define DEVICES_PATH "/v1.0/deviceManagement/managedDevices"
#define TOKEN_SUFFIX "/oauth2/v2.0/token"
#define MAX_BODY 65536

static const char *const fields[] = {
    "id", "deviceName", "serialNumber", "wiFiMacAddress", "ethernetMacAddress",
    "operatingSystem", "osVersion", "manufacturer", "model",
    "lastSyncDateTime", "complianceState", "isEncrypted",
    "managedDeviceOwnerType", NULL};

typedef struct reply_s {
  int status;
  char *body; /* malloc */
  int retry_after;
} reply_t;

typedef struct upload_s {
  char *data;
  size_t len;
  bool too_big;
} upload_t;

/* ------------------------------------------------------------ helpers */

static void reply_json(reply_t *r, int status, json_t *body) {
  r->status = status;
  r->body = json_dumps(body, JSON_COMPACT);
  json_decref(body);
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

/* A GUID-shaped id for trace and correlation ids. */
static void guid(gs_sim_t *sim, char out[37]) {
  uint64_t a = mix64(sim->seed ^ ++sim->token_serial * 0x9e3779b97f4a7c15ULL);
  uint64_t b = mix64(a);
  snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
           (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff,
           (unsigned)(b >> 48), (unsigned long long)(b & 0xffffffffffffULL));
}

static void stat_add(json_t *obj, const char *key) {
  json_object_set_new(obj, key,
                      json_integer(json_integer_value(json_object_get(obj, key)) + 1));
}

static json_t *stat_obj(json_t *obj, const char *key) {
  json_t *o = json_object_get(obj, key);
  if (!o) {
    o = json_object();
    json_object_set_new(obj, key, o);
  }
  return o;
}

static int percent_decode(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r == '+') {
      *w++ = ' ';
    } else if (*r == '%' && r[1] && r[2]) {
      char hex[3] = {r[1], r[2], 0};
      char *end;
      long v = strtol(hex, &end, 16);
      if (*end)
        return -1;
      *w++ = (char)v;
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = 0;
  return 0;
}

/* The value of `name` in an application/x-www-form-urlencoded body (new). */
static char *form_value(const char *body, const char *name) {
  size_t nlen = strlen(name);
  for (const char *p = body; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len > nlen && !strncmp(p, name, nlen) && p[nlen] == '=') {
      char *v = strndup(p + nlen + 1, len - nlen - 1);
      if (v && percent_decode(v)) {
        free(v);
        return NULL;
      }
      return v;
    }
    p = amp ? amp + 1 : NULL;
  }
  return NULL;
}

static json_t *tenant_by_id(gs_sim_t *sim, const char *id, size_t *index) {
  size_t i;
  json_t *t;
  json_array_foreach(json_object_get(sim->fleet, "tenants"), i, t) {
    if (!strcmp(json_string_value(json_object_get(t, "id")), id)) {
      *index = i;
      return t;
    }
  }
  return NULL;
}

/* ------------------------------------------------------------- faults */

static bool fault_fires(gs_sim_t *sim, const char *endpoint, reply_t *r) {
  for (size_t i = 0; i < sim->n_faults; i++) {
    gs_fault_t *f = &sim->faults[i];
    if (strcmp(f->endpoint, "*") && strcmp(f->endpoint, endpoint))
      continue;
    f->matched++;
    if (f->matched < f->nth || f->fired >= f->count)
      continue;
    f->fired++;
    char id[37];
    guid(sim, id);
    r->retry_after = f->status == 429 ? f->retry_after : 0;
    const char *code = f->status == 429   ? "TooManyRequests"
                       : f->status == 503 ? "serviceNotAvailable"
                                          : "InternalServerError";
    reply_json(r, f->status,
               json_pack("{s:{s:s,s:s,s:{s:s}}}", "error", "code", code,
                         "message",
                         f->status == 429 ? "Too many requests"
                                          : "The service is unavailable",
                         "innerError", "request-id", id));
    if (f->status == 429)
      stat_add(sim->stats, "throttled");
    return true;
  }
  return false;
}

static void control_faults(gs_sim_t *sim, const char *method, const char *body,
                           reply_t *r) {
  if (!strcmp(method, "DELETE")) {
    sim->n_faults = 0;
    reply_json(r, 200, json_pack("{s:b}", "ok", 1));
    return;
  }
  if (!strcmp(method, "GET")) {
    json_t *list = json_array();
    for (size_t i = 0; i < sim->n_faults; i++) {
      gs_fault_t *f = &sim->faults[i];
      json_array_append_new(
          list, json_pack("{s:s,s:i,s:I,s:I}", "endpoint", f->endpoint,
                          "status", f->status, "matched", (json_int_t)f->matched,
                          "fired", (json_int_t)f->fired));
    }
    reply_json(r, 200, list);
    return;
  }
  json_error_t jerr;
  json_t *rule = json_loads(body ? body : "", 0, &jerr);
  const char *endpoint = json_string_value(json_object_get(rule, "endpoint"));
  int status = (int)json_integer_value(json_object_get(rule, "status"));
  if (!endpoint || strlen(endpoint) >= sizeof sim->faults[0].endpoint ||
      (strcmp(endpoint, "*") && strcmp(endpoint, "token") &&
       strcmp(endpoint, "managedDevices")) ||
      (status != 429 && status != 500 && status != 503) ||
      sim->n_faults == GS_MAX_FAULTS) {
    json_decref(rule);
    reply_json(r, 400,
               json_pack("{s:s}", "error",
                         "a rule is {\"endpoint\": \"token\"|\"managedDevices\""
                         "|\"*\", \"status\": 429|500|503, \"retryAfter\": S, "
                         "\"nth\": N, \"count\": N}"));
    return;
  }
  gs_fault_t *f = &sim->faults[sim->n_faults++];
  memset(f, 0, sizeof *f);
  snprintf(f->endpoint, sizeof f->endpoint, "%s", endpoint);
  f->status = status;
  json_t *v;
  f->retry_after = (v = json_object_get(rule, "retryAfter")) ? (int)json_integer_value(v) : 1;
  f->nth = (v = json_object_get(rule, "nth")) ? json_integer_value(v) : 1;
  f->count = (v = json_object_get(rule, "count")) ? json_integer_value(v) : 1;
  json_decref(rule);
  reply_json(r, 200, json_pack("{s:b,s:i}", "ok", 1, "id", (int)sim->n_faults));
}

/* -------------------------------------------------------------- token */

/* An Entra ID error body: error, "AADSTSnnn: text", codes, trace ids. */
static void aad_error(gs_sim_t *sim, reply_t *r, int status, const char *error,
                      int code, const char *text) {
  char trace[37], corr[37], stamp[32], desc[1024];
  guid(sim, trace);
  guid(sim, corr);
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%SZ", &tm);
  snprintf(desc, sizeof desc,
           "AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", code,
           text, trace, corr, stamp);
  char uri[96];
  snprintf(uri, sizeof uri, "https://login.microsoftonline.com/error?code=%d",
           code);
  reply_json(r, status,
             json_pack("{s:s,s:s,s:[i],s:s,s:s,s:s,s:s}", "error", error,
                       "error_description", desc, "error_codes", code,
                       "timestamp", stamp, "trace_id", trace, "correlation_id",
                       corr, "error_uri", uri));
}

static void token(gs_sim_t *sim, const char *tenant_id, const char *body,
                  reply_t *r) {
  char text[512];
  stat_add(sim->stats, "tokenRequests");
  size_t tenant_index = 0;
  json_t *tenant = tenant_by_id(sim, tenant_id, &tenant_index);
  if (tenant)
    stat_add(stat_obj(stat_obj(sim->stats, "tenants"), tenant_id),
             "tokenRequests");
  char *grant = form_value(body, "grant_type");
  char *client_id = form_value(body, "client_id");
  char *secret = form_value(body, "client_secret");
  char *scope = form_value(body, "scope");
  if (!tenant) {
    snprintf(text, sizeof text,
             "Tenant '%s' not found. Check to make sure you have the correct "
             "tenant ID and are signing into the correct cloud. Check with "
             "your subscription administrator, this may happen if there are "
             "no active subscriptions for the tenant.",
             tenant_id);
    aad_error(sim, r, 400, "invalid_request", 90002, text);
  } else if (!grant || strcmp(grant, "client_credentials")) {
    aad_error(sim, r, 400, "unsupported_grant_type", 70003,
              "The app requested an unsupported grant type.");
  } else if (!client_id || strcmp(client_id, sim->client_id)) {
    snprintf(text, sizeof text,
             "Application with identifier '%s' was not found in the directory "
             "'%s'.",
             client_id ? client_id : "", tenant_id);
    aad_error(sim, r, 400, "unauthorized_client", 700016, text);
  } else if (!secret || strcmp(secret, sim->client_secret)) {
    snprintf(text, sizeof text,
             "Invalid client secret provided. Ensure the secret being sent in "
             "the request is the client secret value, not the client secret "
             "ID, for a secret added to app '%s'.",
             sim->client_id);
    aad_error(sim, r, 401, "invalid_client", 7000215, text);
  } else if (!scope || strcmp(scope, SCOPE)) {
    snprintf(text, sizeof text,
             "The provided value for scope %s is not valid. Client credential "
             "flows must have a scope value with /.default suffixed to the "
             "resource identifier (application ID URI).",
             scope ? scope : "");
    aad_error(sim, r, 400, "invalid_scope", 1002012, text);
  } else if (json_is_false(json_object_get(tenant, "consented"))) {
    snprintf(text, sizeof text,
             "The identity of the calling application could not be "
             "established: tenant '%s' has not consented to app '%s'.",
             tenant_id, sim->client_id);
    aad_error(sim, r, 400, "invalid_client", 700016, text);
  } else if (!fault_fires(sim, "token", r)) {
    gs_token_t *t = &sim->tokens[sim->n_tokens++ % GS_MAX_TOKENS];
    char g[37];
    guid(sim, g);
    snprintf(t->value, sizeof t->value, "eyJ0eXAi.%s", g);
    t->tenant = tenant_index;
    t->expires_s = (int64_t)time(NULL) + sim->token_ttl_s;
    reply_json(r, 200,
               json_pack("{s:s,s:i,s:i,s:s}", "token_type", "Bearer",
                         "expires_in", sim->token_ttl_s, "ext_expires_in",
                         sim->token_ttl_s, "access_token", t->value));
  }
  free(grant);
  free(client_id);
  free(secret);
  free(scope);
}

/* ------------------------------------------------------------ devices */

static void graph_error(gs_sim_t *sim, reply_t *r, int status,
                        const char *code, const char *message) {
  char id[37];
  guid(sim, id);
  reply_json(r, status,
             json_pack("{s:{s:s,s:s,s:{s:s,s:s}}}", "error", "code", code,
                       "message", message, "innerError", "request-id", id,
                       "client-request-id", id));
}

static const gs_token_t *bearer(gs_sim_t *sim, struct MHD_Connection *conn,
                                reply_t *r) {
  const char *auth =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
  if (!auth || strncmp(auth, "Bearer ", 7) || !auth[7]) {
    graph_error(sim, r, 401, "InvalidAuthenticationToken",
                "Access token is empty.");
    return NULL;
  }
  size_t n = sim->n_tokens < GS_MAX_TOKENS ? sim->n_tokens : GS_MAX_TOKENS;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(sim->tokens[i].value, auth + 7))
      continue;
    if (sim->tokens[i].expires_s <= (int64_t)time(NULL)) {
      graph_error(sim, r, 401, "InvalidAuthenticationToken",
                  "Lifetime validation failed, the token is expired.");
      return NULL;
    }
    return &sim->tokens[i];
  }
  graph_error(sim, r, 401, "InvalidAuthenticationToken",
              "Access token validation failure. Invalid audience.");
  return NULL;
}

static json_t *field_value(json_t *dev, const char *field) {
  json_t *v = json_object_get(dev, field);
  if (v)
    return json_incref(v);
  if (!strcmp(field, "isEncrypted"))
    return json_false();
  if (!strcmp(field, "lastSyncDateTime"))
    return json_string("0001-01-01T00:00:00Z");
  return json_string("");
}

static void devices(gs_sim_t *sim, struct MHD_Connection *conn, reply_t *r) {
  const gs_token_t *tok = bearer(sim, conn, r);
  if (!tok)
    return;
  json_t *tenant =
      json_array_get(json_object_get(sim->fleet, "tenants"), tok->tenant);
  const char *tenant_id = json_string_value(json_object_get(tenant, "id"));
  stat_add(stat_obj(stat_obj(sim->stats, "tenants"), tenant_id), "requests");
  if (fault_fires(sim, "managedDevices", r))
    return;
  const char *select =
      MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "$select");
  const char *top = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "$top");
  const char *skip =
      MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "$skiptoken");
  char msg[256];
  /* The selected fields, checked; none selected = every field. */
  const char *chosen[32];
  size_t n_chosen = 0;
  char sel[512];
  snprintf(sel, sizeof sel, "%s", select ? select : "");
  for (char *save, *f = strtok_r(sel, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
    while (*f == ' ')
      f++;
    size_t k = 0;
    while (fields[k] && strcmp(fields[k], f))
      k++;
    if (!fields[k]) {
      snprintf(msg, sizeof msg,
               "Could not find a property named '%s' on type "
               "'microsoft.graph.managedDevice'.",
               f);
      graph_error(sim, r, 400, "BadRequest", msg);
      return;
    }
    if (n_chosen < 32)
      chosen[n_chosen++] = fields[k];
  }
  if (!n_chosen)
    for (; fields[n_chosen]; n_chosen++)
      chosen[n_chosen] = fields[n_chosen];
  char *end;
  long page = top ? strtol(top, &end, 10) : sim->default_page;
  if (top && (*end || page < 1)) {
    snprintf(msg, sizeof msg, "Invalid $top value '%s'.", top);
    graph_error(sim, r, 400, "BadRequest", msg);
    return;
  }
  if (page > GS_MAX_PAGE)
    page = GS_MAX_PAGE;
  long offset = 0;
  if (skip && (strncmp(skip, "skip-", 5) ||
               (offset = strtol(skip + 5, &end, 10)) < 0 || *end)) {
    graph_error(sim, r, 400, "BadRequest", "Invalid $skiptoken.");
    return;
  }
  json_t *all = json_object_get(tenant, "devices");
  json_t *value = json_array();
  size_t total = json_array_size(all);
  for (size_t i = (size_t)offset; i < total && i < (size_t)(offset + page); i++) {
    json_t *dev = json_array_get(all, i), *out = json_object();
    for (size_t k = 0; k < n_chosen; k++)
      json_object_set_new(out, chosen[k], field_value(dev, chosen[k]));
    json_array_append_new(value, out);
  }
  char context[768];
  snprintf(context, sizeof context,
           "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/"
           "managedDevices%s%s%s",
           select ? "(" : "", select ? select : "", select ? ")" : "");
  json_t *body = json_pack("{s:s,s:o}", "@odata.context", context, "value", value);
  if ((size_t)(offset + page) < total) {
    char next[1024];
    snprintf(next, sizeof next,
             "http://127.0.0.1:%d" DEVICES_PATH "?%s%s%s$top=%ld&$skiptoken=skip-%ld",
             sim->port, select ? "$select=" : "", select ? select : "",
             select ? "&" : "", page, offset + page);
    json_object_set_new(body, "@odata.nextLink", json_string(next));
  }
  reply_json(r, 200, body);
}

/* ------------------------------------------------------------ routing */

static void route(gs_sim_t *sim, struct MHD_Connection *conn, const char *url,
                  const char *method, const char *body, reply_t *r) {
  if (!strncmp(url, "/_sim/", 6)) {
    if (!strcmp(url, "/_sim/stats") && !strcmp(method, "GET"))
      reply_json(r, 200, json_deep_copy(sim->stats));
    else if (!strcmp(url, "/_sim/reset-stats") && !strcmp(method, "POST")) {
      json_object_clear(sim->stats);
      reply_json(r, 200, json_pack("{s:b}", "ok", 1));
    } else if (!strcmp(url, "/_sim/revoke-tokens") && !strcmp(method, "POST")) {
      memset(sim->tokens, 0, sizeof sim->tokens);
      sim->n_tokens = 0;
      reply_json(r, 200, json_pack("{s:b}", "ok", 1));
    } else if (!strcmp(url, "/_sim/faults"))
      control_faults(sim, method, body, r);
    else
      reply_json(r, 404, json_pack("{s:s}", "error", "no such control path"));
    return;
  }
  stat_add(sim->stats, "requests");
  stat_add(stat_obj(sim->stats, "paths"), url);
  size_t len = strlen(url), slen = strlen(TOKEN_SUFFIX);
  if (len > slen + 1 && !strcmp(url + len - slen, TOKEN_SUFFIX)) {
    char tenant[128];
    size_t tlen = len - slen - 1;
    if (strcmp(method, "POST") || tlen >= sizeof tenant ||
        memchr(url + 1, '/', tlen)) {
      aad_error(sim, r, 400, "invalid_request", 900561,
                "The endpoint only accepts POST requests.");
      return;
    }
    memcpy(tenant, url + 1, tlen);
    tenant[tlen] = 0;
    token(sim, tenant, body ? body : "", r);
  } else if (!strcmp(url, DEVICES_PATH) && !strcmp(method, "GET")) {
    devices(sim, conn, r);
  } else {
    graph_error(sim, r, 400, "BadRequest",
                "Resource not found for the segment.");
  }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  (void)version;
  gs_sim_t *sim = cls;
  upload_t *up = *con_cls;
  if (!up) {
    up = calloc(1, sizeof *up);
    if (!up)
      return MHD_NO;
    *con_cls = up;
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (up->len + *upload_data_size > MAX_BODY) {
      up->too_big = true;
    } else {
      char *grown = realloc(up->data, up->len + *upload_data_size + 1);
      if (!grown)
        return MHD_NO;
      up->data = grown;
      memcpy(up->data + up->len, upload_data, *upload_data_size);
      up->len += *upload_data_size;
      up->data[up->len] = 0;
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  reply_t r = {0};
  if (up->too_big)
    reply_json(&r, 413, json_pack("{s:s}", "error", "body too large"));
  else
    route(sim, conn, url, method, up->data, &r);
  const char *text = r.body ? r.body : "{}";
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
  free(r.body);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, "Content-Type",
                          "application/json; charset=utf-8");
  if (r.retry_after) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", r.retry_after);
    MHD_add_response_header(resp, "Retry-After", ra);
  }
  enum MHD_Result rc = MHD_queue_response(conn, (unsigned)r.status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode code) {
  (void)cls;
  (void)conn;
  (void)code;
  upload_t *up = *con_cls;
  if (up) {
    free(up->data);
    free(up);
    *con_cls = NULL;
  }
}

void *gs_server_start(gs_sim_t *sim, int port, char *err, size_t errlen) {
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, (uint16_t)port, NULL,
      NULL, on_request, sim, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, sim, MHD_OPTION_END);
  if (!d) {
    snprintf(err, errlen, "cannot listen on 127.0.0.1:%d", port);
    return NULL;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  sim->port = info ? info->port : port;
  return d;
}

void gs_server_stop(void *daemon) {
  MHD_stop_daemon(daemon);
}
