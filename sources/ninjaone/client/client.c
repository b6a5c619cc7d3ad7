/*
 * client.c - regions and the NinjaOne client: NinjaOne's settings, wording
 * and error bodies around the kit's API client (regentra/kit/client.h),
 * which does the token, budget, retries and throttling.
 *
 * NinjaOne specifics:
 *   token     POST <region host>/ws/oauth/token, scope "monitoring"; at the
 *             token endpoint 400/401/403/404 mean wrong credentials or a
 *             wrong region: RN_EAUTH with a sentence naming both;
 *   throttle  besides 429, an HTML page served with status 200;
 *   errors    three JSON families (resultCode / error / errorCode with
 *             errorMessage / error_description / message), and incidentId;
 *   budget    per credential and region: 200 a minute, 1,500 an hour.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nj_internal.h"

/* ------------------------------------------------------------ regions */

static const struct {
  const char *name, *host;
} regions[NJ_REGION_COUNT] = {
    [NJ_REGION_US] = {"us", "app.ninjarmm.com"},
    [NJ_REGION_US2] = {"us2", "us2.ninjarmm.com"},
    [NJ_REGION_EU] = {"eu", "eu.ninjarmm.com"},
    [NJ_REGION_CA] = {"ca", "ca.ninjarmm.com"},
    [NJ_REGION_OC] = {"oc", "oc.ninjarmm.com"},
};

int nj_region_parse(const char *name, nj_region_t *out) {
  for (int i = 0; name && i < NJ_REGION_COUNT; i++)
    if (strcasecmp(name, regions[i].name) == 0) {
      *out = (nj_region_t)i;
      return 0;
    }
  return RN_EINVAL;
}

const char *nj_region_name(nj_region_t r) {
  return (unsigned)r < NJ_REGION_COUNT ? regions[r].name : "?";
}

const char *nj_region_host(nj_region_t r) {
  return (unsigned)r < NJ_REGION_COUNT ? regions[r].host : "?";
}

#define TOKEN_PATH "/ws/oauth/token"

/* ------------------------------------------------------------ answers */

static bool is_html(const rn_http_response_t *resp, void *data) {
  (void)data;
  if (resp->content_type && strstr(resp->content_type, "html"))
    return true;
  const char *p = resp->body;
  while (p < resp->body + resp->body_len && isspace((unsigned char)*p))
    p++;
  return p < resp->body + resp->body_len && *p == '<';
}

/* A short description of a NinjaOne error body (any of its three JSON
 * families), with incidentId when present. Never copies the body itself
 * when it is not JSON. */
static void error_detail(const rn_http_response_t *resp, char *buf, size_t len,
                         void *data) {
  (void)data;
  json_error_t jerr;
  json_t *root = json_loadb(resp->body, resp->body_len, 0, &jerr);
  const char *what = NULL, *detail = NULL, *incident = NULL;
  if (json_is_object(root)) {
    const char *keys[] = {"resultCode", "error", "errorCode"};
    for (size_t i = 0; i < 3 && !what; i++)
      what = json_string_value(json_object_get(root, keys[i]));
    const char *dkeys[] = {"errorMessage", "error_description", "message"};
    for (size_t i = 0; i < 3 && !detail; i++)
      detail = json_string_value(json_object_get(root, dkeys[i]));
    incident = json_string_value(json_object_get(root, "incidentId"));
  }
  snprintf(buf, len, "HTTP %ld%s%s%s%s%s%s%s", resp->status, what ? " " : "",
           what ? what : "", detail ? ": " : "", detail ? detail : "",
           incident ? " (incidentId " : "", incident ? incident : "",
           incident ? ")" : "");
  json_decref(root);
}

static const rk_hooks_t hooks = {
    .struct_size = sizeof(rk_hooks_t),
    .error_detail = error_detail,
    .is_throttle_page = is_html,
};

/* ------------------------------------------------------------- client */

int nj_client_new(const rn_host_t *host, rn_ctx_t *ctx,
                  const nj_client_opts_t *opts, nj_client_t **out, char *err,
                  size_t errlen) {
  *out = NULL;
  if (!host || !opts) {
    snprintf(err, errlen, "no host or options");
    return RN_EINVAL;
  }
  if ((unsigned)opts->region >= NJ_REGION_COUNT) {
    snprintf(err, errlen, "unknown NinjaOne region %d", (int)opts->region);
    return RN_EINVAL;
  }
  nj_client_t *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errlen, "out of memory");
    return RN_ENOMEM;
  }
  c->host = host;
  c->region = opts->region;
  c->opts = *opts;
  c->opts.base_url = c->opts.ca_file = c->opts.client_id = NULL;
  c->opts.client_secret = NULL;
  if (!c->opts.rate_per_minute)
    c->opts.rate_per_minute = 200;
  if (!c->opts.rate_per_hour)
    c->opts.rate_per_hour = 1500;
  if (!c->opts.max_orgs)
    c->opts.max_orgs = 5000;
  if (!c->opts.max_devices_per_org)
    c->opts.max_devices_per_org = 10000;
  char base[512], token_url[600], where[32];
  if (opts->base_url && *opts->base_url)
    snprintf(base, sizeof base, "%s", opts->base_url);
  else
    snprintf(base, sizeof base, "https://%s", regions[c->region].host);
  size_t n = strlen(base);
  while (n && base[n - 1] == '/')
    base[--n] = '\0';
  snprintf(token_url, sizeof token_url, "%s" TOKEN_PATH, base);
  snprintf(where, sizeof where, "region %s", regions[c->region].name);
  /* The budget belongs to credential + region. */
  rn_rate_window_t windows[2] = {
      RN_RATE_WINDOW(c->opts.rate_per_minute, 60000),
      RN_RATE_WINDOW(c->opts.rate_per_hour, 3600000),
  };
  rk_client_opts_t ko = RK_CLIENT_OPTS_INIT;
  ko.provider = "NinjaOne";
  ko.key_name = "ninjaone";
  ko.where = where;
  ko.rate_scope = regions[c->region].name;
  ko.base_url = base;
  ko.token_url = token_url;
  ko.ca_file = opts->ca_file;
  ko.client_id = opts->client_id;
  ko.client_secret = opts->client_secret;
  ko.client_secret_len = opts->client_secret_len;
  ko.scope = "monitoring"; /* read-only; a wider grant is logged */
  ko.refusal_hint = "wrong client id/secret or wrong region";
  ko.rate_windows = windows;
  ko.rate_window_count = c->opts.rate_limit_off ? 0 : 2;
  ko.timeout_ms = opts->timeout_ms;
  ko.max_retries = opts->max_retries;
  ko.max_throttle_retries = opts->max_throttle_retries;
  ko.backoff_base_ms = opts->backoff_base_ms;
  ko.backoff_max_ms = opts->backoff_max_ms;
  ko.max_pages_in_flight = opts->max_pages_in_flight;
  ko.endpoint_labels = nj__endpoint_paths;
  ko.endpoint_count = NJ_EP_COUNT;
  ko.hooks = &hooks;
  int rc = rk_client_new(host, ctx, &ko, &c->kit, err, errlen);
  if (rc < 0) {
    free(c);
    return rc;
  }
  snprintf(c->cache_key, sizeof c->cache_key, "%s",
           rk_client_token_key(c->kit));
  *out = c;
  return 0;
}

void nj_client_free(nj_client_t *c) {
  if (!c)
    return;
  rk_client_free(c->kit); /* it may end later, on its own */
  free(c);
}

const char *nj_client_base_url(const nj_client_t *c) {
  return rk_client_base_url(c->kit);
}
const char *nj_client_rate_key(const nj_client_t *c) {
  return rk_client_rate_key(c->kit);
}
const char *nj_client_granted_scope(const nj_client_t *c) {
  return rk_client_granted_scope(c->kit);
}
unsigned nj__pages_in_flight(const char *rate_key) {
  return rk_pages_in_flight(rate_key);
}

/* ------------------------------------------------------------ figures */

void nj_client_get_stats(const nj_client_t *c, nj_client_stats_t *out) {
  rk_stats_t st;
  rk_client_get_stats(c->kit, &st);
  *out = (nj_client_stats_t){
      .requests = st.requests,
      .token_requests = st.token_requests,
      .retries = st.retries,
      .throttled = st.throttled,
      .renewals_401 = st.renewals_401,
      .token_cache_hits = st.token_cache_hits,
      .throttled_429 = st.throttled_429,
      .throttle_pages = st.throttle_pages,
  };
  for (int ep = 0; ep < NJ_EP_COUNT; ep++)
    out->endpoint_requests[ep] = st.endpoint_requests[ep];
}

json_t *nj_client_stats_json(const nj_client_stats_t *st) {
  rk_stats_t k = {
      .struct_size = sizeof k,
      .requests = st->requests,
      .token_requests = st->token_requests,
      .retries = st->retries,
      .throttled = st->throttled,
      .renewals_401 = st->renewals_401,
      .token_cache_hits = st->token_cache_hits,
      .throttled_429 = st->throttled_429,
      .throttle_pages = st->throttle_pages,
  };
  for (int ep = 0; ep < NJ_EP_COUNT; ep++)
    k.endpoint_requests[ep] = st->endpoint_requests[ep];
  return rk_stats_json(&k, nj__endpoint_paths, NJ_EP_COUNT, TOKEN_PATH);
}

void nj_client_stats_add(nj_client_stats_t *sum, const nj_client_stats_t *add) {
  sum->requests += add->requests;
  sum->token_requests += add->token_requests;
  sum->retries += add->retries;
  sum->throttled += add->throttled;
  sum->renewals_401 += add->renewals_401;
  for (int ep = 0; ep < NJ_EP_COUNT; ep++)
    sum->endpoint_requests[ep] += add->endpoint_requests[ep];
  sum->token_cache_hits += add->token_cache_hits;
  sum->throttled_429 += add->throttled_429;
  sum->throttle_pages += add->throttle_pages;
}

/* ---------------------------------------------------- authenticate */

typedef struct auth_wait_s {
  nj_client_t *client;
  nj_status_cb cb;
  void *data;
} auth_wait_t;

static void on_authenticated(rk_client_t *kit, int status, const char *message,
                             void *data) {
  auth_wait_t *p = data;
  (void)kit;
  p->cb(p->client, status, message, p->data);
  free(p);
}

int nj_client_authenticate(nj_client_t *c, nj_status_cb cb, void *data) {
  if (!c || !cb)
    return RN_EINVAL;
  auth_wait_t *p = calloc(1, sizeof *p);
  if (!p)
    return RN_ENOMEM;
  *p = (auth_wait_t){c, cb, data};
  int rc = rk_client_authenticate(c->kit, on_authenticated, p);
  if (rc < 0)
    free(p);
  return rc;
}
