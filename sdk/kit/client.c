/*
 * client.c - the kit's API client: OAuth2 client credentials (one token per
 * credential for the process, fetched once for every waiting request), and
 * one logical API call with its retries and error mapping.
 *
 * Error mapping of an API answer:
 *   2xx JSON              -> the body goes to the caller
 *   429 / throttle page   -> back off (Retry-After when given) and retry, up
 *                            to max_throttle_retries; the whole rate key
 *                            waits too (the host pauses it on a 429, the
 *                            client asks it to on a throttle page)
 *   401                   -> drop the token, renew it once and retry; then
 *                            RN_EAUTH
 *   5xx, transport        -> retry with exponential backoff and jitter, up
 *                            to max_retries; then the error
 *   2xx body not JSON     -> like a 5xx
 *   403 / other           -> RN_EACCES / RN_EUPSTREAM with the provider's
 *                            reading of the body
 * At the token endpoint 400/401/403/404 mean wrong credentials: RN_EAUTH
 * with a sentence naming the provider, where, and the hint.
 */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kit_internal.h"

#define RENEW_MARGIN_MS 60000
#define DEFAULT_TIMEOUT_MS 60000u
#define TOKEN_POLL_MS 100

static char *dup_str(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d)
    memcpy(d, s, n + 1);
  return d;
}

static void wipe_free(char *s, size_t len) {
  if (s) {
    sodium_memzero(s, len);
    free(s);
  }
}

/* "host[:port]" of an absolute URL (new). */
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

/* Length of "scheme://authority" at the start of url; 0 if not absolute. */
static size_t origin_len(const char *url) {
  const char *p = strstr(url, "://");
  if (!p || p == url || strcspn(url, "/?#") < (size_t)(p - url))
    return 0;
  p += 3;
  return (size_t)(p - url) + strcspn(p, "/?#");
}

bool rk_same_origin(const char *url, const char *base) {
  size_t a = origin_len(url), b = origin_len(base);
  return a && a == b && strncasecmp(url, base, a) == 0;
}

size_t rk_url_encode(char *out, const char *s, size_t n) {
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

static void client_destroy(rk_client_t *c);
static void follower_remove(rk_client_t *c);
static void fetch_end(rk_client_t *c, int status, const char *message);

static uint32_t or_default(uint32_t v, uint32_t d) {
  return v ? v : d;
}

int rk_client_new(const rn_host_t *host, rn_ctx_t *ctx,
                  const rk_client_opts_t *opts, rk_client_t **out, char *err,
                  size_t errlen) {
  *out = NULL;
  if (!host || !opts || !RN_HOST_HAS(host, http_request) ||
      !RN_HOST_HAS(host, work_queue) || !RN_HOST_HAS(host, timer_start) ||
      !RN_HOST_HAS(host, rate_configure)) {
    snprintf(err, errlen, "the host lacks the HTTP, timer or work services");
    return RN_ENOSYS;
  }
  /* Read the caller's opts only up to the size it was built with. */
  rk_client_opts_t o = RK_CLIENT_OPTS_INIT;
  size_t n = opts->struct_size < sizeof o ? opts->struct_size : sizeof o;
  if (n < offsetof(rk_client_opts_t, hooks)) {
    snprintf(err, errlen, "client options without a valid struct_size");
    return RN_EINVAL;
  }
  memcpy(&o, opts, n);
  const char *provider = o.provider && *o.provider ? o.provider : "the API";
  if (!o.key_name || !*o.key_name ||
      strspn(o.key_name, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
          strlen(o.key_name)) {
    snprintf(err, errlen, "%s: key_name must be [a-z0-9_-]+", provider);
    return RN_EINVAL;
  }
  if (!o.base_url || !origin_len(o.base_url) || !o.token_url ||
      !origin_len(o.token_url)) {
    snprintf(err, errlen, "%s: an absolute base URL and token URL are needed",
             provider);
    return RN_EINVAL;
  }
  if (!o.client_id || !*o.client_id || !o.client_secret ||
      !o.client_secret_len) {
    snprintf(err, errlen, "a client id and a client secret are required");
    return RN_EINVAL;
  }
  if (o.endpoint_count > RK_MAX_ENDPOINTS ||
      (o.endpoint_count && !o.endpoint_labels)) {
    snprintf(err, errlen, "%s: at most %u endpoint labels", provider,
             RK_MAX_ENDPOINTS);
    return RN_EINVAL;
  }
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return RN_ECRYPTO;
  }
  rk_client_t *c = calloc(1, sizeof *c);
  if (!c)
    goto nomem;
  c->host = host;
  c->ctx = ctx;
  c->opts = o;
  c->opts.timeout_ms = or_default(o.timeout_ms, DEFAULT_TIMEOUT_MS);
  c->opts.max_retries = or_default(o.max_retries, 4);
  c->opts.max_throttle_retries = or_default(o.max_throttle_retries, 8);
  c->opts.backoff_base_ms = or_default(o.backoff_base_ms, 1000);
  c->opts.backoff_max_ms = or_default(o.backoff_max_ms, 30000);
  c->opts.max_pages_in_flight = or_default(o.max_pages_in_flight, 4);
  c->opts.rate_windows = NULL;
  c->stats.struct_size = sizeof c->stats;
  c->provider = dup_str(provider);
  c->where = dup_str(o.where && *o.where ? o.where : NULL);
  c->base_url = dup_str(o.base_url);
  c->token_url = dup_str(o.token_url);
  c->client_id = dup_str(o.client_id);
  c->secret = malloc(o.client_secret_len + 1);
  c->refusal_hint =
      dup_str(o.refusal_hint && *o.refusal_hint ? o.refusal_hint
                                                : "wrong client id or secret");
  if (!c->provider || !c->base_url || !c->token_url || !c->client_id ||
      !c->secret || !c->refusal_hint || (o.where && *o.where && !c->where))
    goto nomem;
  size_t bn = strlen(c->base_url);
  while (bn && c->base_url[bn - 1] == '/')
    c->base_url[--bn] = '\0';
  c->host_name = host_of(c->base_url);
  c->token_host = host_of(c->token_url);
  size_t on = origin_len(c->token_url);
  c->token_label = dup_str(c->token_url[on] ? c->token_url + on : "/");
  if (!c->host_name || !c->token_host || !c->token_label)
    goto nomem;
  if (c->token_label[strcspn(c->token_label, "?#")])
    c->token_label[strcspn(c->token_label, "?#")] = '\0';
  memcpy(c->secret, o.client_secret, o.client_secret_len);
  c->secret[o.client_secret_len] = '\0';
  c->secret_len = o.client_secret_len;
  if (o.ca_file && *o.ca_file && !(c->ca_file = dup_str(o.ca_file)))
    goto nomem;
  if (o.scope && *o.scope && !(c->scope = dup_str(o.scope)))
    goto nomem;
  /* The budget belongs to the credential; the id is hashed so the key can
   * appear in logs and metrics. */
  unsigned char digest[8];
  crypto_generichash(digest, sizeof digest, (const unsigned char *)c->client_id,
                     strlen(c->client_id), NULL, 0);
  char hex[sizeof digest * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  if (o.rate_scope && *o.rate_scope)
    snprintf(c->rate_key, sizeof c->rate_key, "%s/%.64s/%s", o.key_name,
             o.rate_scope, hex);
  else
    snprintf(c->rate_key, sizeof c->rate_key, "%s/%s", o.key_name, hex);
  /* The token belongs to token URL + scope + client id + secret: a client
   * given a wrong secret must not be handed the token of the right one. */
  crypto_generichash_state st;
  unsigned char kd[16];
  char khex[sizeof kd * 2 + 1];
  crypto_generichash_init(&st, NULL, 0, sizeof kd);
  crypto_generichash_update(&st, (const unsigned char *)c->token_url,
                            strlen(c->token_url) + 1);
  if (c->scope)
    crypto_generichash_update(&st, (const unsigned char *)c->scope,
                              strlen(c->scope) + 1);
  crypto_generichash_update(&st, (const unsigned char *)c->client_id,
                            strlen(c->client_id) + 1);
  crypto_generichash_update(&st, (const unsigned char *)c->secret,
                            c->secret_len);
  crypto_generichash_final(&st, kd, sizeof kd);
  sodium_bin2hex(khex, sizeof khex, kd, sizeof kd);
  snprintf(c->cache_key, sizeof c->cache_key, "%.48s-token/%s", o.key_name,
           khex);
  int rc = host->rate_configure(ctx, c->rate_key, o.rate_windows,
                                o.rate_windows ? o.rate_window_count : 0);
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

static void client_destroy(rk_client_t *c) {
  follower_remove(c);
  fetch_end(c, RN_ECANCELED, "cancelled");
  wipe_free(c->secret, c->secret_len);
  if (c->token)
    wipe_free(c->token, strlen(c->token));
  free(c->granted_scope);
  free(c->provider);
  free(c->where);
  free(c->base_url);
  free(c->token_url);
  free(c->token_label);
  free(c->host_name);
  free(c->token_host);
  free(c->ca_file);
  free(c->client_id);
  free(c->scope);
  free(c->refusal_hint);
  free(c);
}

void rk_client_free(rk_client_t *c) {
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

const char *rk_client_base_url(const rk_client_t *c) {
  return c->base_url;
}
const char *rk_client_rate_key(const rk_client_t *c) {
  return c->rate_key;
}
const char *rk_client_token_key(const rk_client_t *c) {
  return c->cache_key;
}
const char *rk_client_host_name(const rk_client_t *c) {
  return c->host_name;
}
const char *rk_client_token_label(const rk_client_t *c) {
  return c->token_label;
}
const char *rk_client_granted_scope(const rk_client_t *c) {
  return c->granted_scope;
}

/* ------------------------------------------------------------- figures */

void rk_client_get_stats(const rk_client_t *c, rk_stats_t *out) {
  *out = c->stats;
}

void rk_stats_add(rk_stats_t *sum, const rk_stats_t *add) {
  sum->struct_size = sizeof *sum;
  sum->requests += add->requests;
  sum->token_requests += add->token_requests;
  sum->retries += add->retries;
  sum->throttled += add->throttled;
  sum->renewals_401 += add->renewals_401;
  sum->token_cache_hits += add->token_cache_hits;
  sum->throttled_429 += add->throttled_429;
  sum->throttle_pages += add->throttle_pages;
  for (size_t i = 0; i < RK_MAX_ENDPOINTS; i++)
    sum->endpoint_requests[i] += add->endpoint_requests[i];
}

json_t *rk_stats_json(const rk_stats_t *st, const char *const *labels,
                      size_t count, const char *token_label) {
  json_t *by = json_object();
  for (size_t i = 0; by && labels && i < count && i < RK_MAX_ENDPOINTS; i++)
    if (st->endpoint_requests[i] && labels[i])
      json_object_set_new(by, labels[i],
                          json_integer((json_int_t)st->endpoint_requests[i]));
  if (by && token_label && st->token_requests)
    json_object_set_new(by, token_label,
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

/* ----------------------------------------------------- answer reading */

void rk__describe(const rk_client_t *c, const rk__call_t *call, char *buf,
                  size_t len) {
  const char *path = call->url ? call->url : "";
  size_t bn = strlen(c->base_url);
  if (strncmp(path, c->base_url, bn) == 0 && path[bn] == '/')
    path += bn;
  else if (origin_len(path))
    path += origin_len(path);
  size_t n = strcspn(path, "?");
  snprintf(buf, len, "%s %.*s at %s%s%s%s", call->method, (int)n, path,
           c->where ? c->where : c->host_name, c->where ? " (" : "",
           c->where ? c->host_name : "", c->where ? ")" : "");
}

/* "HTTP 400 invalid_client: AADSTS7000215 ..." from the common JSON error
 * shapes: OAuth2 {error, error_description}, {error: {code, message}},
 * {message}. The text of a body that is not JSON is never copied. */
static void default_detail(const rn_http_response_t *resp, char *buf,
                           size_t len) {
  json_error_t jerr;
  json_t *root = json_loadb(resp->body, resp->body_len, 0, &jerr);
  const char *what = NULL, *detail = NULL;
  if (json_is_object(root)) {
    json_t *e = json_object_get(root, "error");
    if (json_is_object(e)) {
      what = json_string_value(json_object_get(e, "code"));
      detail = json_string_value(json_object_get(e, "message"));
    } else {
      what = json_string_value(e);
      detail = json_string_value(json_object_get(root, "error_description"));
    }
    if (!detail)
      detail = json_string_value(json_object_get(root, "message"));
  }
  /* The first sentence only: trace and correlation ids follow in some. */
  int dn = detail ? (int)strcspn(detail, "\r\n") : 0;
  const char *stop = detail ? strstr(detail, ". ") : NULL;
  if (stop && stop - detail < dn)
    dn = (int)(stop - detail) + 1;
  snprintf(buf, len, "HTTP %ld%s%s%s%.*s", resp->status, what ? " " : "",
           what ? what : "", detail ? ": " : "", dn, detail ? detail : "");
  json_decref(root);
}

static void error_detail(const rk_client_t *c, const rn_http_response_t *resp,
                         char *buf, size_t len) {
  const rk_hooks_t *h = c->opts.hooks;
  if (h && h->struct_size > offsetof(rk_hooks_t, error_detail) &&
      h->error_detail)
    h->error_detail(resp, buf, len, c->opts.provider_data);
  else
    default_detail(resp, buf, len);
}

static bool is_throttle_page(const rk_client_t *c,
                             const rn_http_response_t *resp) {
  const rk_hooks_t *h = c->opts.hooks;
  return h && h->struct_size > offsetof(rk_hooks_t, is_throttle_page) &&
         h->is_throttle_page &&
         h->is_throttle_page(resp, c->opts.provider_data);
}

static bool throttled_answer(const rk_client_t *c,
                             const rn_http_response_t *resp) {
  return resp->status == 429 || (resp->status >= 200 && resp->status < 300 &&
                                 is_throttle_page(c, resp));
}

static void count_throttle(rk_client_t *c, long http) {
  c->stats.throttled++;
  if (http == 429)
    c->stats.throttled_429++;
  else
    c->stats.throttle_pages++;
}

static uint64_t backoff_ms(const rk_client_t *c, unsigned attempt) {
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

/* Renew a minute before expiry, or a quarter of a short lifetime. */
static int64_t renew_margin(const rk_client_t *c) {
  return c->token_ttl_ms / 4 < RENEW_MARGIN_MS ? c->token_ttl_ms / 4
                                               : RENEW_MARGIN_MS;
}

/* Wipes the text of a jansson string (a token) before its tree is freed. */
static void wipe_json_string(json_t *s) {
  if (json_is_string(s))
    sodium_memzero((char *)json_string_value(s), json_string_length(s));
}

static void call_send(rk__call_t *call);
static void call_fail(rk__call_t *call, int status, long http,
                      const rn_http_response_t *resp, const char *fmt, ...)
    RN_PRINTF(5, 6);

static bool token_fresh(rk_client_t *c) {
  if (!c->token)
    return false;
  return c->host->now_ms(c->ctx) < c->token_expires_ms - renew_margin(c);
}

static bool has_token_cache(const rk_client_t *c) {
  return RN_HOST_HAS(c->host, token_get) && RN_HOST_HAS(c->host, token_put) &&
         RN_HOST_HAS(c->host, token_drop);
}

/* The cached value: "<granted scope>\n<token>". new; wipe before free. */
static char *cache_value(const rk_client_t *c, size_t *len) {
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

static void drop_token(rk_client_t *c) {
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
static int adopt_token(rk_client_t *c, const char *token, const char *scope,
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
  if (c->token)
    wipe_free(c->token, strlen(c->token));
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

static void waiters_fail(rk_client_t *c, int status, const char *message) {
  rk__call_t *w = c->waiters;
  c->waiters = c->last_waiter = NULL;
  while (w) {
    rk__call_t *next = w->next_waiter;
    w->next_waiter = NULL;
    call_fail(w, status, 0, NULL, "%s", message);
    w = next;
  }
}

static void waiters_go(rk_client_t *c) {
  rk__call_t *w = c->waiters;
  c->waiters = c->last_waiter = NULL;
  while (w) {
    rk__call_t *next = w->next_waiter;
    w->next_waiter = NULL;
    call_send(w);
    w = next;
  }
}

static void token_fetch(rk_client_t *c);
static void token_acquire(rk_client_t *c);

/* Clients of this plugin image fetching a token right now: a client of the
 * same key waits for their answer instead of asking again. */
static rk_client_t *fetching;

static void fetching_remove(rk_client_t *c) {
  for (rk_client_t **pp = &fetching; *pp; pp = &(*pp)->next_fetching)
    if (*pp == c) {
      *pp = c->next_fetching;
      break;
    }
  c->next_fetching = NULL;
}

static void follower_remove(rk_client_t *c) {
  if (!c->leader)
    return;
  for (rk_client_t **pp = &c->leader->followers; *pp;
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
static void fetch_end(rk_client_t *c, int status, const char *message) {
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
  rk_client_t *f = c->followers;
  c->followers = NULL;
  while (f) {
    rk_client_t *next = f->next_follower;
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
  rk_client_t *c = data;
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

static void token_later(rk_client_t *c, uint64_t delay) {
  int rc =
      c->host->timer_start(c->ctx, delay, on_token_retry, c, &c->token_req);
  if (rc < 0) {
    c->polling = false;
    fetch_end(c, rc, "cannot arm a timer");
    c->token_fetching = false;
    waiters_fail(c, rc, "cannot arm a timer");
  }
}

static void token_failed(rk_client_t *c, int status, const char *message) {
  c->host->log(c->ctx, RN_LOG_ERR, "%s", message);
  fetch_end(c, status, message);
  c->token_fetching = false;
  waiters_fail(c, status, message);
}

/* A token for c's waiters: from a fetch of this image under way, from the
 * host's cache, or fetched here (claiming the key in the host's cache so
 * other plugins wait for this one). */
static void token_acquire(rk_client_t *c) {
  for (rk_client_t *f = fetching; f; f = f->next_fetching)
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

/* Logs once when the granted scope holds a word not asked for. */
static void check_scope(rk_client_t *c) {
  if (!c->granted_scope || c->scope_warned)
    return;
  char copy[512];
  snprintf(copy, sizeof copy, "%s", c->granted_scope);
  bool wider = false;
  for (char *save, *w = strtok_r(copy, " ", &save); w && !wider;
       w = strtok_r(NULL, " ", &save)) {
    bool asked = false;
    size_t wn = strlen(w);
    for (const char *s = c->scope; s && *s && !asked;) {
      size_t sn = strcspn(s, " ");
      asked = sn == wn && strncmp(s, w, wn) == 0;
      s += sn;
      s += strspn(s, " ");
    }
    wider = !asked;
  }
  if (wider) {
    c->scope_warned = true;
    c->host->log(c->ctx, RN_LOG_WARNING,
                 "%s at %s granted a wider scope than asked (%s): \"%s\"; "
                 "only that is used",
                 c->provider, c->where ? c->where : c->host_name,
                 c->scope ? c->scope : "none", c->granted_scope);
  }
}

static void on_token(rn_ctx_t *ctx, int status, const rn_http_response_t *resp,
                     void *data) {
  rk_client_t *c = data;
  (void)ctx;
  c->token_req = NULL;
  char msg[RK_ERR_LEN], detail[300];
  const char *where = c->where ? c->where : c->token_host;
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
  if (status == 0 && throttled_answer(c, resp)) {
    count_throttle(c, resp->status);
    if (c->token_throttles++ < c->opts.max_throttle_retries) {
      int64_t ra = retry_after_ms(resp, c->host);
      uint64_t b = backoff_ms(c, c->token_throttles);
      token_later(c, ra > (int64_t)b ? (uint64_t)ra : b);
      return;
    }
    snprintf(msg, sizeof msg, "%s token endpoint at %s (%s) kept throttling",
             c->provider, where, c->token_host);
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
      error_detail(c, resp, detail, sizeof detail);
    snprintf(msg, sizeof msg,
             "%s token endpoint at %s (%s) failed after %u attempts: %s",
             c->provider, where, c->token_host, c->token_attempts, detail);
    token_failed(c, status < 0 ? status : RN_EUPSTREAM, msg);
    return;
  }
  if (resp->status == 400 || resp->status == 401 || resp->status == 403 ||
      resp->status == 404) {
    error_detail(c, resp, detail, sizeof detail);
    snprintf(msg, sizeof msg,
             "%s refused the client credentials at %s (%s): %s (%s)",
             c->provider, where, c->token_host, c->refusal_hint, detail);
    token_failed(c, RN_EAUTH, msg);
    return;
  }
  if (resp->status != 200) {
    error_detail(c, resp, detail, sizeof detail);
    snprintf(msg, sizeof msg, "%s token endpoint at %s (%s): %s", c->provider,
             where, c->token_host, detail);
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
             "%s token endpoint at %s (%s): the answer is not a token "
             "(access_token, expires_in or scope missing or mistyped)",
             c->provider, where, c->token_host);
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
  check_scope(c);
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

/* Appends "&name=value" (value percent-encoded) at body + o. */
static size_t form_put(char *body, size_t o, const char *name,
                       const char *value, size_t n) {
  size_t nn = strlen(name);
  if (body) {
    if (o)
      body[o] = '&';
    memcpy(body + o + (o ? 1 : 0), name, nn);
    body[o + (o ? 1 : 0) + nn] = '=';
  }
  size_t start = o + (o ? 1 : 0) + nn + 1;
  return start + rk_url_encode(body ? body + start : NULL, value, n);
}

/* The form body of the token request (new; wipe it); *len set. */
static char *token_body(const rk_client_t *c, size_t *len) {
  bool form = c->opts.auth_style != RK_AUTH_BASIC;
  size_t idn = strlen(c->client_id);
  char *body = NULL;
  for (int pass = 0; pass < 2; pass++) {
    size_t o = form_put(body, 0, "grant_type", "client_credentials", 18);
    if (form) {
      o = form_put(body, o, "client_id", c->client_id, idn);
      o = form_put(body, o, "client_secret", c->secret, c->secret_len);
    }
    if (c->scope)
      o = form_put(body, o, "scope", c->scope, strlen(c->scope));
    if (body) {
      body[o] = '\0';
      *len = o;
      return body;
    }
    if (!(body = malloc(o + 1)))
      return NULL;
  }
  return NULL;
}

/* "Authorization: Basic base64(id:secret)" (new; wipe it). */
static char *basic_header(const rk_client_t *c) {
  static const char pre[] = "Authorization: Basic ";
  size_t idn = strlen(c->client_id), pn = idn + 1 + c->secret_len;
  char *pair = malloc(pn);
  size_t bn = sodium_base64_encoded_len(pn, sodium_base64_VARIANT_ORIGINAL);
  char *h = malloc(sizeof pre - 1 + bn);
  if (!pair || !h) {
    free(pair);
    free(h);
    return NULL;
  }
  memcpy(pair, c->client_id, idn);
  pair[idn] = ':';
  memcpy(pair + idn + 1, c->secret, c->secret_len);
  memcpy(h, pre, sizeof pre - 1);
  sodium_bin2base64(h + sizeof pre - 1, bn, (const unsigned char *)pair, pn,
                    sodium_base64_VARIANT_ORIGINAL);
  wipe_free(pair, pn);
  return h;
}

static void token_fetch(rk_client_t *c) {
  size_t len = 0;
  char *body = token_body(c, &len);
  char *basic = c->opts.auth_style == RK_AUTH_BASIC ? basic_header(c) : NULL;
  if (!body || (c->opts.auth_style == RK_AUTH_BASIC && !basic)) {
    wipe_free(body, len);
    wipe_free(basic, basic ? strlen(basic) : 0);
    token_failed(c, RN_ENOMEM, "out of memory");
    return;
  }
  const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                           "Accept: application/json", basic, NULL};
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.method = "POST";
  rq.url = c->token_url;
  rq.headers = headers;
  rq.body = body;
  rq.body_len = len;
  rq.timeout_ms = c->opts.timeout_ms;
  rq.ca_file = c->ca_file;
  rq.rate_key = c->rate_key; /* token requests spend the tenant's budget */
  c->stats.token_requests++;
  int rc = c->host->http_request(c->ctx, &rq, on_token, c, &c->token_req);
  /* The host copied them (and wipes its copies). */
  wipe_free(body, len);
  wipe_free(basic, basic ? strlen(basic) : 0);
  if (rc < 0) {
    char msg[RK_ERR_LEN];
    snprintf(msg, sizeof msg, "%s token request to %s refused: %s", c->provider,
             c->token_host, c->host->strerror(rc));
    token_failed(c, rc, msg);
  }
}

/* Queues call until a token is at hand; starts the one fetch. */
static void token_wait(rk_client_t *c, rk__call_t *call) {
  call->state = RK_CALL_WAIT_TOKEN;
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

static void waiter_remove(rk_client_t *c, rk__call_t *call) {
  rk__call_t **pp = &c->waiters, *prev = NULL;
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

void rk__call_init(rk__call_t *call, rk_client_t *client, rk__call_cb cb,
                   void *data) {
  memset(call, 0, sizeof *call);
  call->client = client;
  call->cb = cb;
  call->data = data;
  call->method = "GET";
  call->ep = RK_ENDPOINT_NONE;
}

void rk__call_clear(rk__call_t *call) {
  free(call->url);
  call->url = NULL;
  free(call->body);
  call->body = NULL;
  free(call->content_type);
  call->content_type = NULL;
}

/* Ends the call with an error; resp (optional) is the answer that did. */
static void call_fail(rk__call_t *call, int status, long http,
                      const rn_http_response_t *resp, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(call->message, sizeof call->message, fmt, ap);
  va_end(ap);
  call->state = RK_CALL_IDLE;
  char *body = NULL;
  size_t len = 0;
  if (resp && resp->body && (body = malloc(resp->body_len + 1))) {
    memcpy(body, resp->body, resp->body_len);
    body[resp->body_len] = '\0';
    len = resp->body_len;
  }
  call->cb(call, status, http, call->message, body, len, call->data);
}

static void on_backoff_done(rn_ctx_t *ctx, int status, void *data) {
  rk__call_t *call = data;
  (void)ctx;
  call->req = NULL;
  if (status == RN_ECANCELED || call->cancelled) {
    call_fail(call, RN_ECANCELED, 0, NULL, "cancelled");
    return;
  }
  call->state = RK_CALL_IDLE;
  if (token_fresh(call->client))
    call_send(call);
  else
    token_wait(call->client, call);
}

static void call_later(rk__call_t *call, uint64_t delay) {
  rk_client_t *c = call->client;
  call->state = RK_CALL_BACKOFF;
  int rc =
      c->host->timer_start(c->ctx, delay, on_backoff_done, call, &call->req);
  if (rc < 0)
    call_fail(call, rc, 0, NULL, "cannot arm a timer: %s",
              c->host->strerror(rc));
}

void rk__call_retry(rk__call_t *call, int status, const char *message) {
  rk_client_t *c = call->client;
  char where[300];
  rk__describe(c, call, where, sizeof where);
  if (call->attempts++ < c->opts.max_retries) {
    c->stats.retries++;
    call_later(call, backoff_ms(c, call->attempts));
    return;
  }
  call_fail(call, status, 0, NULL, "%s failed after %u attempts: %s", where,
            call->attempts, message);
}

static void on_api(rn_ctx_t *ctx, int status, const rn_http_response_t *resp,
                   void *data) {
  rk__call_t *call = data;
  rk_client_t *c = call->client;
  (void)ctx;
  call->req = NULL;
  char where[300], detail[300];
  rk__describe(c, call, where, sizeof where);
  if (status == RN_ECANCELED || call->cancelled) {
    call_fail(call, RN_ECANCELED, 0, NULL, "cancelled");
    return;
  }
  if (status == RN_ERANGE) {
    call_fail(call, status, 0, NULL,
              "%s: the answer is larger than the response cap", where);
    return;
  }
  if (status < 0) {
    rk__call_retry(call, status, c->host->strerror(status));
    return;
  }
  long http = resp->status;
  if (throttled_answer(c, resp)) {
    count_throttle(c, http);
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
    call_fail(call, RN_ETHROTTLED, http, resp,
              "%s: still throttled after %u retries", where,
              call->throttles - 1);
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
    error_detail(c, resp, detail, sizeof detail);
    call_fail(call, RN_EAUTH, http, resp,
              "%s: the renewed token was refused too (%s)", where, detail);
    return;
  }
  if (http >= 500) {
    error_detail(c, resp, detail, sizeof detail);
    rk__call_retry(call, RN_EUPSTREAM, detail);
    return;
  }
  if (http < 200 || http >= 300) {
    error_detail(c, resp, detail, sizeof detail);
    call_fail(call, http == 403 ? RN_EACCES : RN_EUPSTREAM, http, resp,
              "%s: %s", where, detail);
    return;
  }
  if (call->expect_json) {
    json_error_t jerr;
    json_t *root = json_loadb(resp->body, resp->body_len, 0, &jerr);
    if (!root) {
      rk__call_retry(call, RN_EJSON, "the answer is not valid JSON");
      return;
    }
    json_decref(root);
  }
  char *body = malloc(resp->body_len + 1);
  if (!body) {
    call_fail(call, RN_ENOMEM, http, NULL, "out of memory");
    return;
  }
  memcpy(body, resp->body, resp->body_len + 1);
  call->state = RK_CALL_IDLE;
  call->cb(call, 0, http, NULL, body, resp->body_len, call->data);
}

static void call_send(rk__call_t *call) {
  rk_client_t *c = call->client;
  if (call->cancelled) {
    /* Cancelled while waiting for the token: report from the loop. */
    call_later(call, 0);
    return;
  }
  if (call->token_only) {
    call->state = RK_CALL_IDLE;
    call->cb(call, 0, 0, NULL, NULL, 0, call->data);
    return;
  }
  size_t tlen = strlen(c->token) + 32;
  char *auth = malloc(tlen);
  char *ctype = NULL;
  if (call->body) {
    const char *t =
        call->content_type ? call->content_type : "application/json";
    size_t n = strlen(t) + 16;
    if ((ctype = malloc(n)))
      snprintf(ctype, n, "Content-Type: %s", t);
  }
  if (!auth || (call->body && !ctype)) {
    free(auth);
    free(ctype);
    call_fail(call, RN_ENOMEM, 0, NULL, "out of memory");
    return;
  }
  snprintf(auth, tlen, "Authorization: Bearer %s", c->token);
  const char *headers[] = {auth, "Accept: application/json", ctype, NULL};
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.method = call->method;
  rq.url = call->url;
  rq.headers = headers;
  rq.body = call->body;
  rq.body_len = call->body_len;
  rq.timeout_ms = c->opts.timeout_ms;
  rq.ca_file = c->ca_file;
  rq.rate_key = c->rate_key;
  call->token_gen = c->token_gen;
  call->state = RK_CALL_HTTP;
  call->requests++;
  c->stats.requests++;
  if (call->ep < RK_MAX_ENDPOINTS)
    c->stats.endpoint_requests[call->ep]++;
  int rc = c->host->http_request(c->ctx, &rq, on_api, call, &call->req);
  sodium_memzero(auth, strlen(auth));
  free(auth);
  free(ctype);
  if (rc == RN_ESTATE) {
    /* The host is shutting down: this request is as good as cancelled. */
    call_fail(call, RN_ECANCELED, 0, NULL,
              "cancelled: the host is shutting down");
  } else if (rc < 0) {
    char where[300];
    rk__describe(c, call, where, sizeof where);
    call_fail(call, rc, 0, NULL, "%s: request refused: %s", where,
              c->host->strerror(rc));
  }
}

void rk__call_start(rk__call_t *call, char *url) {
  free(call->url);
  call->url = url;
  call->attempts = call->throttles = 0;
  call->renewed = false;
  if (token_fresh(call->client))
    call_send(call);
  else
    token_wait(call->client, call);
}

void rk__call_cancel(rk__call_t *call) {
  if (call->cancelled)
    return;
  call->cancelled = true;
  switch (call->state) {
  case RK_CALL_WAIT_TOKEN:
    waiter_remove(call->client, call);
    call_later(call, 0);
    break;
  case RK_CALL_HTTP:
  case RK_CALL_BACKOFF:
    if (call->req)
      call->client->host->cancel(call->req);
    break;
  case RK_CALL_IDLE:
    break;
  }
}

/* ----------------------------------------------------- authenticate */

typedef struct auth_wait_s {
  rk__call_t call; /* token_only: waits for the token, sends nothing */
  rk_status_cb cb;
  void *data;
} auth_wait_t;

static void on_token_at_hand(rk__call_t *call, int status, long http,
                             const char *message, char *body, size_t len,
                             void *data) {
  auth_wait_t *p = data;
  (void)len;
  (void)http;
  free(body);
  rk_client_t *c = call->client;
  rk__call_clear(call);
  p->cb(c, status, status ? message : NULL, p->data);
  free(p);
}

int rk_client_authenticate(rk_client_t *c, rk_status_cb cb, void *data) {
  if (!c || !cb)
    return RN_EINVAL;
  auth_wait_t *p = calloc(1, sizeof *p);
  if (!p)
    return RN_ENOMEM;
  p->cb = cb;
  p->data = data;
  rk__call_init(&p->call, c, on_token_at_hand, p);
  p->call.token_only = true;
  /* From the loop, so the callback never runs inside this call. */
  p->call.state = RK_CALL_BACKOFF;
  int rc =
      c->host->timer_start(c->ctx, 0, on_backoff_done, &p->call, &p->call.req);
  if (rc < 0)
    free(p);
  return rc;
}

/* ------------------------------------------------------------ request */

struct rk_request_s {
  rk__call_t call;
  rk_response_cb cb;
  void *data;
};

static void on_request_done(rk__call_t *call, int status, long http,
                            const char *message, char *body, size_t len,
                            void *data) {
  rk_request_t *r = data;
  rk_response_t resp = {.status = status,
                        .http_status = http,
                        .body = body,
                        .body_len = len,
                        .message = status ? message : NULL,
                        .requests = (unsigned)call->requests};
  rk_client_t *c = call->client;
  r->cb(c, &resp, r->data);
  free(body);
  rk__call_clear(call);
  free(r);
}

/* An absolute URL of the base's origin, or base + path (new). */
static char *request_url(const rk_client_t *c, const char *path) {
  if (origin_len(path))
    return rk_same_origin(path, c->base_url) ? dup_str(path) : NULL;
  size_t n = strlen(c->base_url) + strlen(path) + 2;
  char *url = malloc(n);
  if (url)
    snprintf(url, n, "%s%s%s", c->base_url, *path == '/' ? "" : "/", path);
  return url;
}

int rk_request(rk_client_t *c, const rk_request_opts_t *opts, rk_response_cb cb,
               void *data, rk_request_t **out) {
  if (!c || !opts || !cb || !opts->path ||
      opts->struct_size < offsetof(rk_request_opts_t, expect_json))
    return RN_EINVAL;
  rk_request_opts_t o = RK_REQUEST_OPTS_INIT;
  memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
  if (origin_len(o.path) && !rk_same_origin(o.path, c->base_url))
    return RN_EACCES; /* the token goes to the base URL's origin only */
  rk_request_t *r = calloc(1, sizeof *r);
  if (!r)
    return RN_ENOMEM;
  r->cb = cb;
  r->data = data;
  rk__call_init(&r->call, c, on_request_done, r);
  r->call.method = o.method && !strcasecmp(o.method, "POST")     ? "POST"
                   : o.method && !strcasecmp(o.method, "PUT")    ? "PUT"
                   : o.method && !strcasecmp(o.method, "PATCH")  ? "PATCH"
                   : o.method && !strcasecmp(o.method, "DELETE") ? "DELETE"
                                                                 : "GET";
  r->call.ep = o.endpoint;
  r->call.expect_json = o.expect_json;
  char *url = request_url(c, o.path);
  if (!url)
    goto nomem;
  r->call.url = url;
  if (o.body) {
    if (!(r->call.body = malloc(o.body_len + 1)))
      goto nomem;
    memcpy(r->call.body, o.body, o.body_len);
    r->call.body[o.body_len] = '\0';
    r->call.body_len = o.body_len;
  }
  if (o.content_type && !(r->call.content_type = dup_str(o.content_type)))
    goto nomem;
  /* From the loop, so the callback never runs inside this call. */
  r->call.state = RK_CALL_BACKOFF;
  int rc =
      c->host->timer_start(c->ctx, 0, on_backoff_done, &r->call, &r->call.req);
  if (rc < 0) {
    rk__call_clear(&r->call);
    free(r);
    return rc;
  }
  if (out)
    *out = r;
  return 0;
nomem:
  rk__call_clear(&r->call);
  free(r);
  return RN_ENOMEM;
}

void rk_request_cancel(rk_request_t *r) {
  if (r)
    rk__call_cancel(&r->call);
}
