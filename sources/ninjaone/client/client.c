/*
 * client.c - regions, the client, OAuth client credentials (one token per
 * client, fetched once for every concurrent request), and one logical API
 * call with its retries and error mapping.
 *
 * Error mapping of an API answer:
 *   2xx JSON            -> the body goes to the caller
 *   2xx HTML / 429      -> throttled: back off (Retry-After when given) and
 *                          retry, up to max_throttle_retries; the whole
 *                          rate key waits too (the host pauses it on a 429,
 *                          the client asks it to on an HTML page)
 *   401                 -> renew the token once and retry; then RN_EAUTH
 *   5xx, transport      -> retry with exponential backoff and jitter, up to
 *                          max_retries; then the error
 *   body not JSON       -> (reported by the decoder) like a 5xx
 *   other               -> RN_EUPSTREAM with NinjaOne's incidentId
 * At the token endpoint 400/401/404 mean wrong credentials or region:
 * RN_EAUTH with a sentence naming both.
 */
#include <ctype.h>
#include <math.h>
#include <sodium.h>
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

/* ------------------------------------------------------------- client */

#define RENEW_MARGIN_MS 60000
#define DEFAULT_TIMEOUT_MS 60000u
#define TOKEN_PATH "/ws/oauth/token"

static char *dup_str(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d)
    memcpy(d, s, n + 1);
  return d;
}

static char *host_of(const char *url) {
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  size_t n = strcspn(p, "/?#");
  char *h = malloc(n + 1);
  if (h) {
    memcpy(h, p, n);
    h[n] = '\0';
  }
  return h;
}

static void client_destroy(nj_client_t *c);
static void follower_remove(nj_client_t *c);
static void fetch_end(nj_client_t *c, int status, const char *message);

int nj_client_new(const rn_host_t *host, rn_ctx_t *ctx,
                  const nj_client_opts_t *opts, nj_client_t **out, char *err,
                  size_t errlen) {
  *out = NULL;
  if (!host || !opts || !RN_HOST_HAS(host, http_request) ||
      !RN_HOST_HAS(host, work_queue) || !RN_HOST_HAS(host, timer_start) ||
      !RN_HOST_HAS(host, rate_configure)) {
    snprintf(err, errlen, "the host lacks the HTTP, timer or work services");
    return RN_ENOSYS;
  }
  if ((unsigned)opts->region >= NJ_REGION_COUNT) {
    snprintf(err, errlen, "unknown NinjaOne region %d", (int)opts->region);
    return RN_EINVAL;
  }
  if (!opts->client_id || !*opts->client_id || !opts->client_secret ||
      !opts->client_secret_len) {
    snprintf(err, errlen, "a client id and a client secret are required");
    return RN_EINVAL;
  }
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return RN_ECRYPTO;
  }
  nj_client_t *c = calloc(1, sizeof *c);
  if (!c)
    goto nomem;
  c->host = host;
  c->ctx = ctx;
  c->region = opts->region;
  c->opts = *opts;
  c->opts.base_url = c->opts.ca_file = c->opts.client_id = NULL;
  c->opts.client_secret = NULL;
  if (!c->opts.rate_per_minute)
    c->opts.rate_per_minute = 200;
  if (!c->opts.rate_per_hour)
    c->opts.rate_per_hour = 1500;
  if (!c->opts.timeout_ms)
    c->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
  if (!c->opts.max_retries)
    c->opts.max_retries = 4;
  if (!c->opts.max_throttle_retries)
    c->opts.max_throttle_retries = 8;
  if (!c->opts.backoff_base_ms)
    c->opts.backoff_base_ms = 1000;
  if (!c->opts.backoff_max_ms)
    c->opts.backoff_max_ms = 30000;
  if (!c->opts.max_orgs)
    c->opts.max_orgs = 5000;
  if (!c->opts.max_devices_per_org)
    c->opts.max_devices_per_org = 10000;
  if (!c->opts.max_pages_in_flight)
    c->opts.max_pages_in_flight = 4;
  if (opts->base_url && *opts->base_url) {
    c->base_url = dup_str(opts->base_url);
    if (!c->base_url)
      goto nomem;
    size_t n = strlen(c->base_url);
    while (n && c->base_url[n - 1] == '/')
      c->base_url[--n] = '\0';
  } else {
    size_t n = strlen(regions[c->region].host) + 9;
    c->base_url = malloc(n);
    if (!c->base_url)
      goto nomem;
    snprintf(c->base_url, n, "https://%s", regions[c->region].host);
  }
  c->host_name = host_of(c->base_url);
  c->client_id = dup_str(opts->client_id);
  c->secret = malloc(opts->client_secret_len + 1);
  if (!c->host_name || !c->client_id || !c->secret)
    goto nomem;
  memcpy(c->secret, opts->client_secret, opts->client_secret_len);
  c->secret[opts->client_secret_len] = '\0';
  c->secret_len = opts->client_secret_len;
  if (opts->ca_file && *opts->ca_file && !(c->ca_file = dup_str(opts->ca_file)))
    goto nomem;
  /* The budget belongs to credential + region; the id is hashed so the key
   * can appear in logs and metrics. */
  unsigned char digest[8];
  crypto_generichash(digest, sizeof digest, (const unsigned char *)c->client_id,
                     strlen(c->client_id), NULL, 0);
  char hex[sizeof digest * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  snprintf(c->rate_key, sizeof c->rate_key, "ninjaone/%s/%s",
           regions[c->region].name, hex);
  /* The token belongs to base URL + client id + secret: a client given a
   * wrong secret must not be handed the token of the right one. */
  crypto_generichash_state st;
  unsigned char kd[16];
  char khex[sizeof kd * 2 + 1];
  crypto_generichash_init(&st, NULL, 0, sizeof kd);
  crypto_generichash_update(&st, (const unsigned char *)c->base_url,
                            strlen(c->base_url) + 1);
  crypto_generichash_update(&st, (const unsigned char *)c->client_id,
                            strlen(c->client_id) + 1);
  crypto_generichash_update(&st, (const unsigned char *)c->secret,
                            c->secret_len);
  crypto_generichash_final(&st, kd, sizeof kd);
  sodium_bin2hex(khex, sizeof khex, kd, sizeof kd);
  snprintf(c->cache_key, sizeof c->cache_key, "ninjaone-token/%s", khex);
  rn_rate_window_t windows[2] = {
      RN_RATE_WINDOW(c->opts.rate_per_minute, 60000),
      RN_RATE_WINDOW(c->opts.rate_per_hour, 3600000),
  };
  int rc = host->rate_configure(ctx, c->rate_key, windows,
                                c->opts.rate_limit_off ? 0 : 2);
  if (rc < 0) {
    snprintf(err, errlen, "rate limit for %s refused: %s", c->rate_key,
             host->strerror(rc));
    client_destroy(c);
    return rc;
  }
  *out = c;
  return 0;
nomem:
  if (c)
    client_destroy(c);
  snprintf(err, errlen, "out of memory");
  return RN_ENOMEM;
}

static void client_destroy(nj_client_t *c) {
  follower_remove(c);
  fetch_end(c, RN_ECANCELED, "cancelled");
  if (c->secret) {
    sodium_memzero(c->secret, c->secret_len);
    free(c->secret);
  }
  if (c->token) {
    sodium_memzero(c->token, strlen(c->token));
    free(c->token);
  }
  free(c->granted_scope);
  free(c->base_url);
  free(c->host_name);
  free(c->ca_file);
  free(c->client_id);
  free(c);
}

void nj_client_free(nj_client_t *c) {
  if (!c)
    return;
  if (c->token_req) {
    /* A token fetch nobody waits for any more: its callback frees. */
    c->freeing = true;
    c->host->cancel(c->token_req);
    return;
  }
  client_destroy(c);
}

const char *nj_client_base_url(const nj_client_t *c) { return c->base_url; }
const char *nj_client_rate_key(const nj_client_t *c) { return c->rate_key; }
const char *nj_client_granted_scope(const nj_client_t *c) {
  return c->granted_scope;
}
void nj_client_get_stats(const nj_client_t *c, nj_client_stats_t *out) {
  *out = c->stats;
}

json_t *nj_client_stats_json(const nj_client_stats_t *st) {
  json_t *by = json_object();
  for (int ep = 0; by && ep < NJ_EP_COUNT; ep++)
    if (st->endpoint_requests[ep])
      json_object_set_new(by, nj_endpoint_path((nj_endpoint_t)ep),
                          json_integer((json_int_t)st->endpoint_requests[ep]));
  if (by && st->token_requests)
    json_object_set_new(by, TOKEN_PATH,
                        json_integer((json_int_t)st->token_requests));
  return by ? json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "requests",
                        (json_int_t)st->requests, "token_requests",
                        (json_int_t)st->token_requests, "retries",
                        (json_int_t)st->retries, "throttled",
                        (json_int_t)st->throttled, "throttled_429",
                        (json_int_t)st->throttled_429, "throttle_pages",
                        (json_int_t)st->throttle_pages, "by_endpoint", by)
            : NULL;
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

void nj__describe(const nj_client_t *c, const char *path, char *buf,
                  size_t len) {
  size_t n = strcspn(path, "?");
  snprintf(buf, len, "GET %.*s at %s (%s)", (int)n, path,
           regions[c->region].name, c->host_name);
}

/* ----------------------------------------------------- answer reading */

static bool is_html(const rn_http_response_t *resp) {
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
static void error_detail(const rn_http_response_t *resp, char *buf,
                         size_t len) {
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

static uint64_t backoff_ms(const nj_client_t *c, unsigned attempt) {
  uint64_t d = c->opts.backoff_base_ms;
  for (unsigned i = 1; i < attempt && d < c->opts.backoff_max_ms; i++)
    d *= 2;
  if (d > c->opts.backoff_max_ms)
    d = c->opts.backoff_max_ms;
  /* Jitter over the upper half: spread, never much shorter than asked. */
  uint64_t half = d / 2;
  return half + randombytes_uniform((uint32_t)(half + 1));
}

static int64_t retry_after_ms(const rn_http_response_t *resp,
                              const rn_host_t *host) {
  const char *ra = host->http_header(resp, "Retry-After");
  if (!ra)
    return -1;
  char *end;
  long long s = strtoll(ra, &end, 10);
  if (end == ra || s < 0)
    return -1;
  return s > 3600 ? 3600000 : s * 1000;
}

/* -------------------------------------------------------------- token */

#define TOKEN_POLL_MS 100

/* Renew a minute before expiry, or a quarter of a short lifetime. */
static int64_t renew_margin(const nj_client_t *c) {
  return c->token_ttl_ms / 4 < RENEW_MARGIN_MS ? c->token_ttl_ms / 4
                                               : RENEW_MARGIN_MS;
}

/* Wipes the text of a jansson string (a token) before its tree is freed. */
static void wipe_json_string(json_t *s) {
  if (json_is_string(s))
    sodium_memzero((char *)json_string_value(s), json_string_length(s));
}

static void call_send(nj_call_t *call);
static void call_fail(nj_call_t *call, int status, const char *fmt, ...)
    RN_PRINTF(3, 4);

static bool token_fresh(nj_client_t *c) {
  if (!c->token)
    return false;
  return c->host->now_ms(c->ctx) < c->token_expires_ms - renew_margin(c);
}

static bool has_token_cache(const nj_client_t *c) {
  return RN_HOST_HAS(c->host, token_get) && RN_HOST_HAS(c->host, token_put) &&
         RN_HOST_HAS(c->host, token_drop);
}

/* The cached value: "<granted scope>\n<token>". new; wipe before free. */
static char *cache_value(const nj_client_t *c, size_t *len) {
  const char *scope = c->granted_scope ? c->granted_scope : "";
  size_t sn = strlen(scope), tn = strlen(c->token);
  char *v = malloc(sn + tn + 2);
  if (v) {
    memcpy(v, scope, sn);
    v[sn] = '\n';
    memcpy(v + sn + 1, c->token, tn + 1);
    *len = sn + 1 + tn;
  }
  return v;
}

static void wipe_free(char *s, size_t len) {
  if (s) {
    sodium_memzero(s, len);
    free(s);
  }
}

static void drop_token(nj_client_t *c) {
  if (!c->token)
    return;
  if (has_token_cache(c)) {
    /* Only if nobody replaced it yet: theirs may be fine. */
    size_t len = 0;
    char *v = cache_value(c, &len);
    if (v)
      c->host->token_drop(c->ctx, c->cache_key, v, len);
    wipe_free(v, len);
  }
  wipe_free(c->token, strlen(c->token));
  c->token = NULL;
}

/* Takes a token (copied) that another client fetched or the cache held. */
static int adopt_token(nj_client_t *c, const char *token, const char *scope,
                       size_t scope_len, int64_t expires_ms, int64_t ttl_ms) {
  char *t = dup_str(token);
  char *sc = scope ? malloc(scope_len + 1) : NULL;
  if (!t || (scope && !sc)) {
    wipe_free(t, t ? strlen(t) : 0);
    free(sc);
    return RN_ENOMEM;
  }
  if (sc) {
    memcpy(sc, scope, scope_len);
    sc[scope_len] = '\0';
  }
  if (c->token) {
    wipe_free(c->token, strlen(c->token));
  }
  c->token = t;
  free(c->granted_scope);
  c->granted_scope = sc && *sc ? sc : NULL;
  if (sc && !*sc)
    free(sc);
  c->token_expires_ms = expires_ms;
  c->token_ttl_ms = ttl_ms;
  c->token_gen++;
  return 0;
}

static void waiters_fail(nj_client_t *c, int status, const char *message) {
  nj_call_t *w = c->waiters;
  c->waiters = c->last_waiter = NULL;
  while (w) {
    nj_call_t *next = w->next_waiter;
    w->next_waiter = NULL;
    call_fail(w, status, "%s", message);
    w = next;
  }
}

static void waiters_go(nj_client_t *c) {
  nj_call_t *w = c->waiters;
  c->waiters = c->last_waiter = NULL;
  while (w) {
    nj_call_t *next = w->next_waiter;
    w->next_waiter = NULL;
    call_send(w);
    w = next;
  }
}

static void token_fetch(nj_client_t *c);
static void token_acquire(nj_client_t *c);

/* Clients of this plugin image fetching a token right now: a client of the
 * same key waits for their answer instead of asking again. */
static nj_client_t *fetching;

static void fetching_remove(nj_client_t *c) {
  for (nj_client_t **pp = &fetching; *pp; pp = &(*pp)->next_fetching)
    if (*pp == c) {
      *pp = c->next_fetching;
      break;
    }
  c->next_fetching = NULL;
}

static void follower_remove(nj_client_t *c) {
  if (!c->leader)
    return;
  for (nj_client_t **pp = &c->leader->followers; *pp;
       pp = &(*pp)->next_follower)
    if (*pp == c) {
      *pp = c->next_follower;
      break;
    }
  c->leader = NULL;
  c->next_follower = NULL;
}

/* A fetch ended: status 0 (c->token is new), a failure, or RN_ECANCELED
 * when c goes away and its followers must fetch for themselves. Ends the
 * host cache claim and answers every follower. */
static void fetch_end(nj_client_t *c, int status, const char *message) {
  fetching_remove(c);
  if (c->holds_claim) {
    c->holds_claim = false;
    size_t len = 0;
    char *v = status == 0 ? cache_value(c, &len) : NULL;
    /* Usable until the renewal margin: nobody takes a token about to go. */
    c->host->token_put(c->ctx, c->cache_key, v, len,
                       c->token_expires_ms - renew_margin(c));
    wipe_free(v, len);
  }
  nj_client_t *f = c->followers;
  c->followers = NULL;
  while (f) {
    nj_client_t *next = f->next_follower;
    f->leader = NULL;
    f->next_follower = NULL;
    if (status == RN_ECANCELED) {
      token_acquire(f);
    } else if (status < 0) {
      f->token_fetching = false;
      waiters_fail(f, status, message);
    } else {
      const char *scope = c->granted_scope;
      int rc = adopt_token(f, c->token, scope, scope ? strlen(scope) : 0,
                           c->token_expires_ms, c->token_ttl_ms);
      f->token_fetching = false;
      if (rc < 0)
        waiters_fail(f, rc, "out of memory");
      else
        waiters_go(f);
    }
    f = next;
  }
}

static void on_token_retry(rn_ctx_t *ctx, int status, void *data) {
  nj_client_t *c = data;
  (void)ctx;
  c->token_req = NULL;
  bool polling = c->polling;
  c->polling = false;
  if (c->freeing) {
    fetch_end(c, RN_ECANCELED, "cancelled");
    client_destroy(c);
    return;
  }
  if (status == RN_ECANCELED) {
    fetch_end(c, RN_ECANCELED, "cancelled");
    c->token_fetching = false;
    waiters_fail(c, RN_ECANCELED, "cancelled");
    return;
  }
  if (polling)
    token_acquire(c);
  else
    token_fetch(c);
}

static void token_later(nj_client_t *c, uint64_t delay) {
  int rc = c->host->timer_start(c->ctx, delay, on_token_retry, c,
                                &c->token_req);
  if (rc < 0) {
    c->polling = false;
    fetch_end(c, rc, "cannot arm a timer");
    c->token_fetching = false;
    waiters_fail(c, rc, "cannot arm a timer");
  }
}

static void token_failed(nj_client_t *c, int status, const char *message) {
  c->host->log(c->ctx, RN_LOG_ERR, "%s", message);
  fetch_end(c, status, message);
  c->token_fetching = false;
  waiters_fail(c, status, message);
}

/* A token for c's waiters: from a fetch of this image under way, from the
 * host's cache, or fetched here (claiming the key in the host's cache so
 * other plugins wait for this one). */
static void token_acquire(nj_client_t *c) {
  for (nj_client_t *f = fetching; f; f = f->next_fetching)
    if (f != c && strcmp(f->cache_key, c->cache_key) == 0) {
      c->leader = f;
      c->next_follower = f->followers;
      f->followers = c;
      return;
    }
  if (has_token_cache(c)) {
    char *v = NULL;
    size_t len = 0;
    int64_t until = 0;
    int rc = c->host->token_get(c->ctx, c->cache_key, &v, &len, &until);
    if (rc == 0) {
      char *nl = memchr(v, '\n', len);
      int64_t margin = renew_margin(c);
      rc = nl ? adopt_token(c, nl + 1, v, (size_t)(nl - v), until + margin,
                            until + margin - c->host->now_ms(c->ctx))
              : RN_EINVAL;
      c->host->secret_free(v, len);
      if (rc == 0) {
        c->stats.token_cache_hits++;
        c->token_fetching = false;
        waiters_go(c);
        return;
      }
      /* A value we cannot read: fetch our own (the claim is not ours). */
    } else if (rc == RN_EBUSY) {
      /* Another plugin of the process is fetching it: ask again shortly. */
      c->polling = true;
      token_later(c, TOKEN_POLL_MS);
      return;
    } else if (rc == RN_ENOENT) {
      c->holds_claim = true;
    }
  }
  c->next_fetching = fetching;
  fetching = c;
  c->token_attempts = c->token_throttles = 0;
  token_fetch(c);
}

static void on_token(rn_ctx_t *ctx, int status, const rn_http_response_t *resp,
                     void *data) {
  nj_client_t *c = data;
  (void)ctx;
  c->token_req = NULL;
  char msg[NJ_ERR_LEN], detail[300];
  const char *where = regions[c->region].name;
  if (c->freeing) {
    fetch_end(c, RN_ECANCELED, "cancelled");
    client_destroy(c);
    return;
  }
  if (status == RN_ECANCELED) {
    fetch_end(c, RN_ECANCELED, "cancelled");
    c->token_fetching = false;
    waiters_fail(c, RN_ECANCELED, "cancelled");
    return;
  }
  bool throttled = status == 0 && (resp->status == 429 ||
                                   (resp->status < 300 && is_html(resp)));
  if (throttled) {
    c->stats.throttled++;
    if (resp->status == 429)
      c->stats.throttled_429++;
    else
      c->stats.throttle_pages++;
    if (c->token_throttles++ < c->opts.max_throttle_retries) {
      int64_t ra = retry_after_ms(resp, c->host);
      uint64_t b = backoff_ms(c, c->token_throttles);
      token_later(c, ra > (int64_t)b ? (uint64_t)ra : b);
      return;
    }
    snprintf(msg, sizeof msg,
             "NinjaOne token endpoint at %s (%s) kept throttling", where,
             c->host_name);
    token_failed(c, RN_ETHROTTLED, msg);
    return;
  }
  if (status < 0 || resp->status >= 500) {
    if (c->token_attempts++ < c->opts.max_retries) {
      c->stats.retries++;
      token_later(c, backoff_ms(c, c->token_attempts));
      return;
    }
    if (status < 0)
      snprintf(detail, sizeof detail, "%s", c->host->strerror(status));
    else
      error_detail(resp, detail, sizeof detail);
    snprintf(msg, sizeof msg,
             "NinjaOne token endpoint at %s (%s) failed after %u attempts: %s",
             where, c->host_name, c->token_attempts, detail);
    token_failed(c, status < 0 ? status : RN_EUPSTREAM, msg);
    return;
  }
  if (resp->status == 400 || resp->status == 401 || resp->status == 403 ||
      resp->status == 404) {
    error_detail(resp, detail, sizeof detail);
    snprintf(msg, sizeof msg,
             "NinjaOne refused the client credentials at region %s (%s): "
             "wrong client id/secret or wrong region (%s)",
             where, c->host_name, detail);
    token_failed(c, RN_EAUTH, msg);
    return;
  }
  if (resp->status != 200) {
    error_detail(resp, detail, sizeof detail);
    snprintf(msg, sizeof msg, "NinjaOne token endpoint at %s (%s): %s", where,
             c->host_name, detail);
    token_failed(c, RN_EUPSTREAM, msg);
    return;
  }
  json_error_t jerr;
  json_t *root = json_loadb(resp->body, resp->body_len, 0, &jerr);
  /* The text holds the token too: wiped before the host frees it. */
  sodium_memzero((char *)resp->body, resp->body_len);
  json_t *tok = json_object_get(root, "access_token");
  json_t *exp = json_object_get(root, "expires_in");
  json_t *scope = json_object_get(root, "scope");
  if (!json_is_string(tok) || !json_string_length(tok) ||
      (exp && !json_is_integer(exp)) || (scope && !json_is_string(scope))) {
    wipe_json_string(tok);
    json_decref(root);
    snprintf(msg, sizeof msg,
             "NinjaOne token endpoint at %s (%s): the answer is not a token "
             "(access_token, expires_in or scope missing or mistyped)",
             where, c->host_name);
    token_failed(c, RN_EJSON, msg);
    return;
  }
  if (c->token)
    wipe_free(c->token, strlen(c->token));
  c->token = dup_str(json_string_value(tok));
  int64_t ttl = exp ? (int64_t)json_integer_value(exp) * 1000 : 3600000;
  if (ttl <= 0)
    ttl = 1000;
  c->token_ttl_ms = ttl;
  c->token_expires_ms = c->host->now_ms(c->ctx) + ttl;
  c->token_gen++;
  free(c->granted_scope);
  c->granted_scope = scope ? dup_str(json_string_value(scope)) : NULL;
  if (c->granted_scope && !c->scope_warned) {
    char copy[256];
    snprintf(copy, sizeof copy, "%s", c->granted_scope);
    bool wider = false;
    for (char *save, *w = strtok_r(copy, " ", &save); w;
         w = strtok_r(NULL, " ", &save))
      wider |= strcmp(w, "monitoring") != 0;
    if (wider) {
      c->scope_warned = true;
      c->host->log(c->ctx, RN_LOG_WARNING,
                   "NinjaOne at %s granted a wider scope than asked "
                   "(monitoring): \"%s\"; only monitoring is used",
                   where, c->granted_scope);
    }
  }
  wipe_json_string(tok);
  json_decref(root);
  if (!c->token) {
    token_failed(c, RN_ENOMEM, "out of memory");
    return;
  }
  fetch_end(c, 0, NULL);
  c->token_fetching = false;
  waiters_go(c);
}

/* Appends s percent-encoded (RFC 3986 unreserved kept). */
size_t nj__encode(char *out, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      if (out)
        out[o] = (char)ch;
      o++;
    } else {
      if (out) {
        out[o] = '%';
        out[o + 1] = hex[ch >> 4];
        out[o + 2] = hex[ch & 15];
      }
      o += 3;
    }
  }
  return o;
}

static void token_fetch(nj_client_t *c) {
  static const char a[] = "grant_type=client_credentials&client_id=";
  static const char b[] = "&client_secret=";
  static const char d[] = "&scope=monitoring";
  size_t idn = strlen(c->client_id);
  size_t len = sizeof a - 1 + nj__encode(NULL, c->client_id, idn) +
               sizeof b - 1 + nj__encode(NULL, c->secret, c->secret_len) +
               sizeof d - 1;
  char *body = malloc(len + 1);
  size_t ulen = strlen(c->base_url) + sizeof TOKEN_PATH;
  char *url = malloc(ulen);
  if (!body || !url) {
    free(body);
    free(url);
    token_failed(c, RN_ENOMEM, "out of memory");
    return;
  }
  size_t o = 0;
  memcpy(body + o, a, sizeof a - 1);
  o += sizeof a - 1;
  o += nj__encode(body + o, c->client_id, idn);
  memcpy(body + o, b, sizeof b - 1);
  o += sizeof b - 1;
  o += nj__encode(body + o, c->secret, c->secret_len);
  memcpy(body + o, d, sizeof d - 1);
  o += sizeof d - 1;
  body[o] = '\0';
  snprintf(url, ulen, "%s%s", c->base_url, TOKEN_PATH);
  const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                           "Accept: application/json", NULL};
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.method = "POST";
  rq.url = url;
  rq.headers = headers;
  rq.body = body;
  rq.body_len = o;
  rq.timeout_ms = c->opts.timeout_ms;
  rq.ca_file = c->ca_file;
  rq.rate_key = c->rate_key; /* token requests spend the tenant's budget */
  c->stats.token_requests++;
  int rc = c->host->http_request(c->ctx, &rq, on_token, c, &c->token_req);
  sodium_memzero(body, o); /* the host copied it (and wipes its copy) */
  free(body);
  free(url);
  if (rc < 0) {
    char msg[NJ_ERR_LEN];
    snprintf(msg, sizeof msg, "NinjaOne token request to %s refused: %s",
             c->host_name, c->host->strerror(rc));
    token_failed(c, rc, msg);
  }
}

/* Queues call until a token is at hand; starts the one fetch. */
static void token_wait(nj_client_t *c, nj_call_t *call) {
  call->state = CALL_WAIT_TOKEN;
  call->next_waiter = NULL;
  if (c->last_waiter)
    c->last_waiter->next_waiter = call;
  else
    c->waiters = call;
  c->last_waiter = call;
  if (!c->token_fetching) {
    c->token_fetching = true;
    token_acquire(c);
  }
}

static void waiter_remove(nj_client_t *c, nj_call_t *call) {
  nj_call_t **pp = &c->waiters, *prev = NULL;
  while (*pp && *pp != call) {
    prev = *pp;
    pp = &(*pp)->next_waiter;
  }
  if (!*pp)
    return;
  *pp = call->next_waiter;
  if (c->last_waiter == call)
    c->last_waiter = prev;
  call->next_waiter = NULL;
}

/* --------------------------------------------------------------- calls */

void nj__call_init(nj_call_t *call, nj_client_t *client, nj__call_cb cb,
                   void *data) {
  memset(call, 0, sizeof *call);
  call->client = client;
  call->cb = cb;
  call->data = data;
}

void nj__call_clear(nj_call_t *call) {
  free(call->path);
  call->path = NULL;
}

static void call_fail(nj_call_t *call, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(call->message, sizeof call->message, fmt, ap);
  va_end(ap);
  call->state = CALL_IDLE;
  call->cb(call, status, call->message, NULL, 0, call->data);
}

static void on_backoff_done(rn_ctx_t *ctx, int status, void *data) {
  nj_call_t *call = data;
  (void)ctx;
  call->req = NULL;
  if (status == RN_ECANCELED || call->cancelled) {
    call_fail(call, RN_ECANCELED, "cancelled");
    return;
  }
  call->state = CALL_IDLE;
  if (token_fresh(call->client))
    call_send(call);
  else
    token_wait(call->client, call);
}

static void call_later(nj_call_t *call, uint64_t delay) {
  nj_client_t *c = call->client;
  call->state = CALL_BACKOFF;
  int rc = c->host->timer_start(c->ctx, delay, on_backoff_done, call,
                                &call->req);
  if (rc < 0)
    call_fail(call, rc, "cannot arm a timer: %s", c->host->strerror(rc));
}

void nj__call_retry(nj_call_t *call, int status, const char *message) {
  nj_client_t *c = call->client;
  char where[200];
  nj__describe(c, call->path, where, sizeof where);
  if (call->attempts++ < c->opts.max_retries) {
    c->stats.retries++;
    call_later(call, backoff_ms(c, call->attempts));
    return;
  }
  call_fail(call, status, "%s failed after %u attempts: %s", where,
            call->attempts, message);
}

static void on_api(rn_ctx_t *ctx, int status, const rn_http_response_t *resp,
                   void *data) {
  nj_call_t *call = data;
  nj_client_t *c = call->client;
  (void)ctx;
  call->req = NULL;
  char where[200], detail[300];
  nj__describe(c, call->path, where, sizeof where);
  if (status == RN_ECANCELED || call->cancelled) {
    call_fail(call, RN_ECANCELED, "cancelled");
    return;
  }
  if (status == RN_ERANGE) {
    call_fail(call, status, "%s: the answer is larger than the response cap",
              where);
    return;
  }
  if (status < 0) {
    nj__call_retry(call, status, c->host->strerror(status));
    return;
  }
  long http = resp->status;
  if (http == 429 || (http >= 200 && http < 300 && is_html(resp))) {
    c->stats.throttled++;
    if (http == 429)
      c->stats.throttled_429++;
    else
      c->stats.throttle_pages++;
    int64_t ra = retry_after_ms(resp, c->host);
    uint64_t b = backoff_ms(c, call->throttles + 1);
    uint64_t delay = ra > (int64_t)b ? (uint64_t)ra : b;
    /* The host pauses the key on a 429 but cannot read a 200 page: hold
     * every request of this credential, not only this one. */
    if (http != 429 && RN_HOST_HAS(c->host, rate_pause))
      c->host->rate_pause(c->ctx, c->rate_key, delay);
    if (call->throttles++ < c->opts.max_throttle_retries) {
      call_later(call, delay);
      return;
    }
    call_fail(call, RN_ETHROTTLED, "%s: still throttled after %u retries",
              where, call->throttles - 1);
    return;
  }
  if (http == 401) {
    if (!call->renewed) {
      call->renewed = true;
      c->stats.renewals_401++;
      if (c->token_gen == call->token_gen)
        drop_token(c); /* others may have renewed it already */
      if (token_fresh(c))
        call_send(call);
      else
        token_wait(c, call);
      return;
    }
    error_detail(resp, detail, sizeof detail);
    call_fail(call, RN_EAUTH, "%s: the renewed token was refused too (%s)",
              where, detail);
    return;
  }
  if (http >= 500) {
    error_detail(resp, detail, sizeof detail);
    nj__call_retry(call, RN_EUPSTREAM, detail);
    return;
  }
  if (http < 200 || http >= 300) {
    error_detail(resp, detail, sizeof detail);
    call_fail(call, http == 403 ? RN_EACCES : RN_EUPSTREAM, "%s: %s", where,
              detail);
    return;
  }
  char *body = malloc(resp->body_len + 1);
  if (!body) {
    call_fail(call, RN_ENOMEM, "out of memory");
    return;
  }
  memcpy(body, resp->body, resp->body_len + 1);
  call->state = CALL_IDLE;
  call->cb(call, 0, NULL, body, resp->body_len, call->data);
}

static void call_send(nj_call_t *call) {
  nj_client_t *c = call->client;
  if (call->cancelled) {
    /* Cancelled while waiting for the token: report from the loop. */
    call_later(call, 0);
    return;
  }
  if (call->token_only) {
    call->state = CALL_IDLE;
    call->cb(call, 0, NULL, NULL, 0, call->data);
    return;
  }
  size_t tlen = strlen(c->token) + 32;
  char *auth = malloc(tlen);
  size_t ulen = strlen(c->base_url) + strlen(call->path) + 1;
  char *url = malloc(ulen);
  if (!auth || !url) {
    free(auth);
    free(url);
    call_fail(call, RN_ENOMEM, "out of memory");
    return;
  }
  snprintf(auth, tlen, "Authorization: Bearer %s", c->token);
  snprintf(url, ulen, "%s%s", c->base_url, call->path);
  const char *headers[] = {auth, "Accept: application/json", NULL};
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.url = url;
  rq.headers = headers;
  rq.timeout_ms = c->opts.timeout_ms;
  rq.ca_file = c->ca_file;
  rq.rate_key = c->rate_key;
  call->token_gen = c->token_gen;
  call->state = CALL_HTTP;
  call->requests++;
  c->stats.requests++;
  if ((unsigned)call->ep < NJ_EP_COUNT)
    c->stats.endpoint_requests[call->ep]++;
  int rc = c->host->http_request(c->ctx, &rq, on_api, call, &call->req);
  sodium_memzero(auth, strlen(auth));
  free(auth);
  free(url);
  if (rc == RN_ESTATE) {
    /* The host is shutting down: this request is as good as cancelled. */
    call_fail(call, RN_ECANCELED, "cancelled: the host is shutting down");
  } else if (rc < 0) {
    char where[200];
    nj__describe(c, call->path, where, sizeof where);
    call_fail(call, rc, "%s: request refused: %s", where,
              c->host->strerror(rc));
  }
}

int nj__call_start(nj_call_t *call, char *path) {
  free(call->path);
  call->path = path;
  call->attempts = call->throttles = 0;
  call->renewed = false;
  if (token_fresh(call->client))
    call_send(call);
  else
    token_wait(call->client, call);
  return 0;
}

void nj__call_cancel(nj_call_t *call) {
  if (call->cancelled)
    return;
  call->cancelled = true;
  switch (call->state) {
  case CALL_WAIT_TOKEN:
    waiter_remove(call->client, call);
    call_later(call, 0);
    break;
  case CALL_HTTP:
  case CALL_BACKOFF:
    if (call->req)
      call->client->host->cancel(call->req);
    break;
  case CALL_IDLE:
    break;
  }
}

/* ---------------------------------------------------- authenticate */

typedef struct auth_wait_s {
  nj_call_t call; /* token_only: waits for the token, sends nothing */
  nj_status_cb cb;
  void *data;
} auth_wait_t;

static void on_token_at_hand(nj_call_t *call, int status, const char *message,
                             char *body, size_t len, void *data) {
  auth_wait_t *p = data;
  (void)len;
  free(body);
  nj_client_t *c = call->client;
  nj__call_clear(call);
  p->cb(c, status, status ? message : NULL, p->data);
  free(p);
}

int nj_client_authenticate(nj_client_t *c, nj_status_cb cb, void *data) {
  if (!c || !cb)
    return RN_EINVAL;
  auth_wait_t *p = calloc(1, sizeof *p);
  if (!p)
    return RN_ENOMEM;
  p->cb = cb;
  p->data = data;
  nj__call_init(&p->call, c, on_token_at_hand, p);
  p->call.token_only = true;
  p->call.ep = NJ_EP_COUNT;
  /* From the loop, so the callback never runs inside this call. */
  p->call.state = CALL_BACKOFF;
  int rc =
      c->host->timer_start(c->ctx, 0, on_backoff_done, &p->call, &p->call.req);
  if (rc < 0)
    free(p);
  return rc;
}
