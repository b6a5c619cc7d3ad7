/*
 * http.c - HTTP for plugins: libcurl multi driven by the libuv loop.
 *
 * One engine per runner, started by the first request. curl tells us which
 * sockets to watch (one uv_poll_t each) and when to call it back (one
 * uv_timer_t); every curl_multi_socket_action is followed by a drain of
 * curl_multi_info_read, and completions are delivered from that drain,
 * never from inside a curl callback. Requests naming a rate key first wait
 * for a token of the limiter (ratelimit.c).
 *
 * A request is in exactly one of three places: the limiter's queue
 * (WAITING), the multi handle (ACTIVE), or the engine's list of completions
 * to deliver on the next loop turn (DONE: cancellations and transfers that
 * could not start). Each place leads to one callback.
 */
#include "http.h"

#include <curl/curl.h>
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_TIMEOUT_MS 30000u
#define MAX_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_MAX_RESPONSE (64u * 1024 * 1024)
#define MAX_CONNECTIONS 512
#define MAX_CACHED_CONNECTIONS 128
/* How long a parsed CA bundle is reused before it is read again. */
#define CA_CACHE_SECONDS 3600L

typedef enum req_state_e { REQ_WAITING = 1, REQ_ACTIVE, REQ_DONE } req_state_t;

typedef struct buf_s {
  char *data;
  size_t len, cap;
} buf_t;

typedef struct rn__http_s rn__http_t;

typedef struct http_req_s {
  rn_req_t req; /* head: rn__req_start / rn__req_finish */
  rn__http_t *http;
  rn__list_t link; /* in http->waiting, ->active or ->done */
  req_state_t state;
  int status; /* the error a DONE request reports */
  CURL *easy;
  struct curl_slist *headers;
  char *url;
  char *body; /* wiped when freed: token requests carry secrets */
  size_t body_len;
  rn_http_cb cb;
  void *data;
  size_t max_bytes;
  rn__rate_key_t *key;
  struct upstream_count_s *upstream; /* with a rate key */
  rn__rate_waiter_t waiter;
  buf_t in_body;
  buf_t in_head; /* "Name: value" lines, NUL-separated */
  bool too_big;
  rn_http_response_t resp;
  char errbuf[CURL_ERROR_SIZE];
} http_req_t;

typedef struct sock_s {
  uv_poll_t poll;
  curl_socket_t fd;
  rn__http_t *http;
} sock_t;

struct rn__http_s {
  rn__runner_t *runner;
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t curl_timer; /* curl's single timeout */
  uv_timer_t rate_timer; /* next limiter admission */
  uv_timer_t done_timer; /* deliver DONE requests on the next turn */
  rn__list_t waiting, active, done;
  rn__rate_t *rate;
  unsigned open_handles; /* freed in the close callback that drops it to 0 */
  bool closing;
  rn__http_stats_t stats;
  struct upstream_count_s *upstream; /* per rate key and endpoint */
  char last_failure[RN__HTTP_FAILURE_LEN]; /* "" until a transfer fails */
};

/* Requests sent and 429s per rate key and endpoint (URL path without the
 * query), for /metrics: what each upstream budget was spent on. */
typedef struct upstream_count_s {
  struct upstream_count_s *next;
  char *key, *endpoint;
  uint64_t requests, throttled;
} upstream_count_t;

static void upstream_free(rn__http_t *http) {
  while (http->upstream) {
    upstream_count_t *u = http->upstream;
    http->upstream = u->next;
    free(u->key);
    free(u->endpoint);
    free(u);
  }
}

static upstream_count_t *upstream_of(rn__http_t *http, const char *key,
                                     const char *url) {
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : NULL;
  if (!p)
    p = "/";
  size_t n = strcspn(p, "?#");
  for (upstream_count_t *u = http->upstream; u; u = u->next)
    if (strcmp(u->key, key) == 0 && strlen(u->endpoint) == n &&
        strncmp(u->endpoint, p, n) == 0)
      return u;
  upstream_count_t *u = calloc(1, sizeof *u);
  if (!u || !(u->key = strdup(key)) || !(u->endpoint = strndup(p, n))) {
    if (u)
      free(u->key);
    free(u);
    return NULL;
  }
  u->next = http->upstream;
  http->upstream = u;
  return u;
}

void rn__http_upstream_foreach(const rn__runner_t *runner,
                               rn__http_upstream_fn fn, void *data) {
  const rn__http_t *http = runner->http;
  for (const upstream_count_t *u = http ? http->upstream : NULL; u; u = u->next)
    fn(u->key, u->endpoint, u->requests, u->throttled, data);
}

static void reap(rn__http_t *http);
static void arm_rate_timer(rn__http_t *http);

/* ------------------------------------------------------------ buffers */

static int buf_append(buf_t *b, const char *p, size_t n, size_t cap_limit) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    if (cap_limit && cap > cap_limit + 1)
      cap = cap_limit + 1 > b->len + n + 1 ? cap_limit + 1 : b->len + n + 1;
    char *d = realloc(b->data, cap);
    if (!d)
      return RN_ENOMEM;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

/* ------------------------------------------------------ engine handles */

static void handle_closed(uv_handle_t *handle) {
  rn__http_t *http = handle->data;
  if (handle->type == UV_POLL)
    free(rn__container_of((uv_poll_t *)handle, sock_t, poll));
  if (--http->open_handles == 0) {
    upstream_free(http);
    free(http);
  }
}

static void close_handle(uv_handle_t *handle) {
  if (!uv_is_closing(handle))
    uv_close(handle, handle_closed);
}

/* -------------------------------------------------- curl -> libuv glue */

static void on_poll(uv_poll_t *poll, int status, int events) {
  sock_t *s = rn__container_of(poll, sock_t, poll);
  rn__http_t *http = s->http;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  else {
    if (events & UV_READABLE)
      flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
      flags |= CURL_CSELECT_OUT;
  }
  int running;
  /* s may be closed by this call (CURL_POLL_REMOVE); not used after it. */
  CURLMcode mc = curl_multi_socket_action(http->multi, s->fd, flags, &running);
  if (mc != CURLM_OK)
    rn__log(RN_LOG_ERR, "http", "curl_multi_socket_action: %s",
            curl_multi_strerror(mc));
  reap(http);
}

static void on_curl_timer_due(uv_timer_t *timer) {
  rn__http_t *http = timer->data;
  int running;
  CURLMcode mc = curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0,
                                          &running);
  if (mc != CURLM_OK)
    rn__log(RN_LOG_ERR, "http", "curl_multi_socket_action(timeout): %s",
            curl_multi_strerror(mc));
  reap(http); /* whatever `running` says: the last transfer may be done */
}

/* CURLMOPT_TIMERFUNCTION: called by curl, so it must not call curl. A zero
 * timeout runs on the next loop turn, never from here. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  rn__http_t *http = userp;
  (void)multi;
  if (http->closing)
    return 0;
  if (timeout_ms < 0)
    return uv_timer_stop(&http->curl_timer) == 0 ? 0 : -1;
  int rc = uv_timer_start(&http->curl_timer, on_curl_timer_due,
                          (uint64_t)timeout_ms, 0);
  if (rc < 0) {
    rn__log(RN_LOG_ERR, "http", "uv_timer_start: %s", uv_strerror(rc));
    return -1;
  }
  return 0;
}

static void sock_close(rn__http_t *http, sock_t *s) {
  if (uv_is_closing((uv_handle_t *)&s->poll))
    return;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, handle_closed);
  http->stats.sockets--;
}

/* CURLMOPT_SOCKETFUNCTION: watch what curl asks for. Returning -1 would
 * fail every transfer of the multi handle, so only a failure to watch at
 * all does. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp) {
  rn__http_t *http = userp;
  sock_t *s = socketp;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(http->multi, fd, NULL);
      sock_close(http, s);
    }
    return 0;
  }
  if (http->closing)
    return 0;
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s)
      return -1;
    s->fd = fd;
    s->http = http;
    int rc = uv_poll_init_socket(http->loop, &s->poll, fd);
    if (rc < 0) {
      rn__log(RN_LOG_ERR, "http", "uv_poll_init_socket(%d): %s", (int)fd,
              uv_strerror(rc));
      free(s);
      return -1;
    }
    s->poll.data = http;
    http->open_handles++;
    http->stats.sockets++;
    CURLMcode mc = curl_multi_assign(http->multi, fd, s);
    if (mc != CURLM_OK) {
      rn__log(RN_LOG_ERR, "http", "curl_multi_assign: %s",
              curl_multi_strerror(mc));
      sock_close(http, s);
      return -1;
    }
  }
  int events = 0;
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  int rc = uv_poll_start(&s->poll, events, on_poll);
  if (rc < 0) {
    rn__log(RN_LOG_ERR, "http", "uv_poll_start: %s", uv_strerror(rc));
    return -1;
  }
  return 0;
}

/* --------------------------------------------------------- requests */

static void req_free(http_req_t *r) {
  if (r->easy)
    curl_easy_cleanup(r->easy);
  /* Headers may carry a bearer token: wiped like the body. */
  for (struct curl_slist *h = r->headers; h; h = h->next)
    sodium_memzero(h->data, strlen(h->data));
  curl_slist_free_all(r->headers);
  if (r->body) {
    sodium_memzero(r->body, r->body_len);
    free(r->body);
  }
  free(r->url);
  free(r->in_body.data);
  free(r->in_head.data);
  free(r);
}

static int map_curl(const http_req_t *r, CURLcode code) {
  switch (code) {
  case CURLE_OK:
    return 0;
  case CURLE_OPERATION_TIMEDOUT:
    return RN_ETIMEDOUT;
  case CURLE_WRITE_ERROR:
    return r->too_big ? RN_ERANGE : RN_EHTTP;
  case CURLE_FILESIZE_EXCEEDED:
    return RN_ERANGE;
  case CURLE_OUT_OF_MEMORY:
    return RN_ENOMEM;
  default:
    return RN_EHTTP;
  }
}

static const char *plugin_name(const http_req_t *r) {
  return r->req.ctx->plugin ? r->req.ctx->plugin->name : NULL;
}

/* The one exit of every request: callback, accounting, memory. */
static void deliver(http_req_t *r, int status, const rn_http_response_t *resp) {
  rn__http_t *http = r->http;
  if (status == RN_ECANCELED)
    http->stats.cancelled++;
  else if (status < 0)
    http->stats.failed++;
  else
    http->stats.completed++;
  if (r->upstream && status >= 0 && resp && resp->status == 429)
    r->upstream->throttled++;
  rn__req_enter(&r->req);
  r->cb(r->req.ctx, status, resp, r->data);
  rn__req_finish(&r->req);
  req_free(r);
}

static void on_done_due(uv_timer_t *timer) {
  rn__http_t *http = timer->data;
  while (!rn__list_empty(&http->done)) {
    http_req_t *r = rn__container_of(http->done.next, http_req_t, link);
    rn__list_remove(&r->link);
    deliver(r, r->status, NULL);
  }
}

/* Moves r to the DONE list; its callback runs on the next loop turn. */
static void defer(http_req_t *r, int status) {
  rn__http_t *http = r->http;
  r->state = REQ_DONE;
  r->status = status;
  rn__list_push(&http->done, &r->link);
  if (!uv_is_active((uv_handle_t *)&http->done_timer)) {
    int rc = uv_timer_start(&http->done_timer, on_done_due, 0, 0);
    if (rc < 0) /* only when closing, and close delivers the list itself */
      rn__log(RN_LOG_ERR, "http", "uv_timer_start: %s", uv_strerror(rc));
  }
}

static void start_transfer(http_req_t *r) {
  rn__http_t *http = r->http;
  CURLMcode mc = curl_multi_add_handle(http->multi, r->easy);
  if (mc != CURLM_OK) {
    rn__log(RN_LOG_ERR, plugin_name(r), "curl_multi_add_handle: %s",
            curl_multi_strerror(mc));
    defer(r, RN_EHTTP);
    return;
  }
  r->state = REQ_ACTIVE;
  rn__list_push(&http->active, &r->link);
  http->stats.started++;
  if (r->upstream)
    r->upstream->requests++;
}

static void on_admitted(rn__rate_waiter_t *waiter) {
  http_req_t *r = rn__container_of(waiter, http_req_t, waiter);
  rn__list_remove(&r->link); /* from http->waiting */
  start_transfer(r);
}

static void http_cancel(rn_req_t *req) {
  http_req_t *r = rn__container_of(req, http_req_t, req);
  switch (r->state) {
  case REQ_WAITING:
    rn__rate_withdraw(&r->waiter);
    break;
  case REQ_ACTIVE: {
    CURLMcode mc = curl_multi_remove_handle(r->http->multi, r->easy);
    if (mc != CURLM_OK)
      rn__log(RN_LOG_ERR, plugin_name(r), "curl_multi_remove_handle: %s",
              curl_multi_strerror(mc));
    break;
  }
  case REQ_DONE:
    return; /* its one callback is already due */
  }
  rn__list_remove(&r->link);
  defer(r, RN_ECANCELED);
}

static const char *find_header(const http_req_t *r, const char *name) {
  size_t n = strlen(name);
  const char *p = r->in_head.data, *end = p + r->in_head.len;
  while (p && p < end) {
    size_t len = strlen(p);
    if (len > n && p[n] == ':' && strncasecmp(p, name, n) == 0) {
      const char *v = p + n + 1;
      while (*v == ' ' || *v == '\t')
        v++;
      return v;
    }
    p += len + 1;
  }
  return NULL;
}

/* "POST to 127.0.0.1:8443: <curl's words> (curl error 52: <its class>)",
 * with the system's error when there is one ("..., Connection refused"):
 * method, host and port only, never path, query, headers or body (a token
 * request carries secrets). */
static void describe_failure(const http_req_t *r, CURLcode code, char *out,
                             size_t len) {
  char *host = NULL, *port = NULL;
  const char *method = NULL;
  CURLU *u = curl_url();
  if (u && curl_url_set(u, CURLUPART_URL, r->url, 0) == CURLUE_OK) {
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  }
  if (curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_METHOD, &method) !=
          CURLE_OK ||
      !method)
    method = "request";
  const char *generic = curl_easy_strerror(code);
  const char *said = r->errbuf[0] ? r->errbuf : generic;
  bool says_generic = strstr(said, generic) != NULL;
  /* "Connection refused" is only in the system's error. */
  long os_errno = 0;
  char os_buf[96], os_text[112] = "";
  if (curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK &&
      os_errno > 0)
    snprintf(os_text, sizeof os_text, ", %s",
             strerror_r((int)os_errno, os_buf, sizeof os_buf));
  snprintf(out, len, "%s to %s:%s: %s (curl error %d%s%s%s)", method,
           host ? host : "?", port ? port : "?", said, (int)code,
           says_generic ? "" : ": ", says_generic ? "" : generic, os_text);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
}

static void complete(http_req_t *r, CURLcode code) {
  rn__http_t *http = r->http;
  int status = map_curl(r, code);
  if (status < 0) {
    /* Kept for the failure message of a command (rn__http_last_failure):
     * the plugin sees only the status. */
    describe_failure(r, code, http->last_failure, sizeof http->last_failure);
    rn__log(RN_LOG_NOTICE, plugin_name(r), "HTTP transfer failed (%s): %s",
            rn__err_name(status), http->last_failure);
    deliver(r, status, NULL);
    return;
  }
  long code_http = 0;
  double total = 0;
  char *ctype = NULL;
  if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code_http) !=
          CURLE_OK ||
      curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &total) != CURLE_OK ||
      curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype) != CURLE_OK) {
    deliver(r, RN_EHTTP, NULL);
    return;
  }
  if (r->key) {
    int64_t paused = rn__rate_observe(
        r->key, code_http, find_header(r, "Retry-After"),
        find_header(r, "X-RateLimit-Remaining"),
        find_header(r, "X-RateLimit-Reset"));
    if (paused > 0)
      arm_rate_timer(http);
  }
  r->resp = (rn_http_response_t){
      .struct_size = sizeof(rn_http_response_t),
      .status = code_http,
      .body = r->in_body.data ? r->in_body.data : "",
      .body_len = r->in_body.len,
      .content_type = ctype,
      .elapsed_s = total,
  };
  deliver(r, 0, &r->resp);
}

static void reap(rn__http_t *http) {
  CURLMsg *msg;
  int left;
  while (http->multi && (msg = curl_multi_info_read(http->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode code = msg->data.result; /* read before the handle goes */
    char *priv = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
        !priv) {
      rn__log(RN_LOG_ERR, "http", "finished transfer without its request");
      curl_multi_remove_handle(http->multi, easy);
      continue;
    }
    http_req_t *r = (http_req_t *)(void *)priv;
    CURLMcode mc = curl_multi_remove_handle(http->multi, easy);
    if (mc != CURLM_OK)
      rn__log(RN_LOG_ERR, plugin_name(r), "curl_multi_remove_handle: %s",
              curl_multi_strerror(mc));
    rn__list_remove(&r->link);
    r->state = REQ_DONE;
    complete(r, code);
  }
}

/* ------------------------------------------------------------ limiter */

static void on_rate_due(uv_timer_t *timer) {
  rn__http_t *http = timer->data;
  rn__rate_pump(http->rate);
  arm_rate_timer(http);
}

static void arm_rate_timer(rn__http_t *http) {
  if (http->closing)
    return;
  int64_t next = rn__rate_next_ms(http->rate);
  if (next < 0) {
    uv_timer_stop(&http->rate_timer);
    return;
  }
  int64_t now = rn__rate_now(http->rate);
  uint64_t delay = next > now ? (uint64_t)(next - now) : 0;
  int rc = uv_timer_start(&http->rate_timer, on_rate_due, delay, 0);
  if (rc < 0)
    rn__log(RN_LOG_ERR, "http", "uv_timer_start: %s", uv_strerror(rc));
}

/* ------------------------------------------------------------- engine */

static rn__http_t *engine(rn__runner_t *runner) {
  static bool curl_ready;
  if (runner->http)
    return runner->http->closing ? NULL : runner->http;
  if (!curl_ready) {
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
      rn__log(RN_LOG_ERR, "http", "curl_global_init: %s",
              curl_easy_strerror(cc));
      return NULL;
    }
    curl_ready = true;
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (!(v->features & CURL_VERSION_ASYNCHDNS))
      rn__log(RN_LOG_WARNING, "http",
              "libcurl %s resolves names synchronously: lookups will stall "
              "the loop",
              v->version);
  }
  rn__http_t *http = calloc(1, sizeof *http);
  if (!http)
    return NULL;
  http->runner = runner;
  http->loop = runner->loop;
  rn__list_init(&http->waiting);
  rn__list_init(&http->active);
  rn__list_init(&http->done);
  http->rate = rn__rate_new(NULL, NULL);
  http->multi = curl_multi_init();
  if (!http->rate || !http->multi) {
    rn__rate_free(http->rate);
    if (http->multi)
      curl_multi_cleanup(http->multi);
    free(http);
    return NULL;
  }
  CURLMcode mc = CURLM_OK;
  if (mc == CURLM_OK)
    mc = curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  if (mc == CURLM_OK)
    mc = curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
  if (mc == CURLM_OK)
    mc = curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  if (mc == CURLM_OK)
    mc = curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
  if (mc == CURLM_OK)
    mc = curl_multi_setopt(http->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                           (long)MAX_CONNECTIONS);
  if (mc == CURLM_OK)
    mc = curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS,
                           (long)MAX_CACHED_CONNECTIONS);
  if (mc == CURLM_OK)
    mc = curl_multi_setopt(http->multi, CURLMOPT_PIPELINING,
                           (long)CURLPIPE_MULTIPLEX);
  if (mc != CURLM_OK) {
    rn__log(RN_LOG_ERR, "http", "curl_multi_setopt: %s",
            curl_multi_strerror(mc));
    rn__rate_free(http->rate);
    curl_multi_cleanup(http->multi);
    free(http);
    return NULL;
  }
  /* With a database, declared budgets are shared by its runner processes. */
  rn__rate_share_db(http->rate, runner);
  uv_timer_t *timers[] = {&http->curl_timer, &http->rate_timer,
                          &http->done_timer};
  for (size_t i = 0; i < RN_ARRAY_SIZE(timers); i++) {
    uv_timer_init(http->loop, timers[i]); /* cannot fail on unix */
    timers[i]->data = http;
    http->open_handles++;
  }
  runner->http = http;
  return http;
}

void rn__http_close(rn__runner_t *runner) {
  rn__http_t *http = runner->http;
  if (!http || http->closing)
    return;
  http->closing = true; /* new requests are refused from here on */
  while (!rn__list_empty(&http->waiting)) {
    http_req_t *r = rn__container_of(http->waiting.next, http_req_t, link);
    http_cancel(&r->req);
  }
  while (!rn__list_empty(&http->active)) {
    http_req_t *r = rn__container_of(http->active.next, http_req_t, link);
    http_cancel(&r->req);
  }
  /* Callbacks may cancel others (already DONE: no-op) but start none. */
  uv_timer_stop(&http->done_timer);
  on_done_due(&http->done_timer);
  /* May report CURL_POLL_REMOVE for cached connections: polls close. */
  CURLMcode mc = curl_multi_cleanup(http->multi);
  if (mc != CURLM_OK)
    rn__log(RN_LOG_ERR, "http", "curl_multi_cleanup: %s",
            curl_multi_strerror(mc));
  http->multi = NULL;
  rn__rate_free(http->rate);
  http->rate = NULL;
  close_handle((uv_handle_t *)&http->curl_timer);
  close_handle((uv_handle_t *)&http->rate_timer);
  close_handle((uv_handle_t *)&http->done_timer);
  runner->http = NULL; /* freed by the last close callback */
}

rn__rate_t *rn__http_rate(rn__runner_t *runner) {
  rn__http_t *http = engine(runner);
  return http ? http->rate : NULL;
}

void rn__http_rate_kick(rn__runner_t *runner) {
  rn__http_t *http = runner->http;
  if (!http || http->closing)
    return;
  rn__rate_pump(http->rate);
  arm_rate_timer(http);
}

const char *rn__http_last_failure(const rn__runner_t *runner) {
  const rn__http_t *http = runner->http;
  return http && http->last_failure[0] ? http->last_failure : NULL;
}

void rn__http_get_stats(const rn__runner_t *runner, rn__http_stats_t *out) {
  memset(out, 0, sizeof *out);
  const rn__http_t *http = runner->http;
  if (!http)
    return;
  *out = http->stats;
  size_t n = 0;
  for (const rn__list_t *l = http->active.next; l != &http->active; l = l->next)
    n++;
  out->active = n;
  n = 0;
  for (const rn__list_t *l = http->waiting.next; l != &http->waiting;
       l = l->next)
    n++;
  out->waiting = n;
}

/* -------------------------------------------------- request building */

static size_t on_body(char *p, size_t size, size_t n, void *userp) {
  http_req_t *r = userp;
  size_t len = size * n;
  if (r->in_body.len + len > r->max_bytes) {
    r->too_big = true;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (buf_append(&r->in_body, p, len, r->max_bytes) < 0)
    return 0;
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *userp) {
  http_req_t *r = userp;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
    r->in_head.len = 0; /* a new response (after 1xx): forget the last */
  size_t keep = len;
  while (keep && (p[keep - 1] == '\r' || p[keep - 1] == '\n'))
    keep--;
  if (!keep)
    return len;
  if (r->in_head.len + keep > 256 * 1024)
    return 0; /* absurd header block */
  if (buf_append(&r->in_head, p, keep, 0) < 0 ||
      buf_append(&r->in_head, "", 1, 0) < 0)
    return 0;
  return len;
}

static bool is_loopback(const char *host) {
  if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
      strcmp(host, "::1") == 0)
    return true;
  if (strncmp(host, "127.", 4) != 0)
    return false;
  for (const char *p = host + 4; *p; p++)
    if (!isdigit((unsigned char)*p) && *p != '.')
      return false;
  return true;
}

/* https://anything, or http:// to a loopback host. */
static int check_url(const char *url) {
  CURLU *u = curl_url();
  if (!u)
    return RN_ENOMEM;
  char *scheme = NULL, *host = NULL;
  int rc = RN_EINVAL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    if (strcmp(scheme, "https") == 0)
      rc = 0;
    else if (strcmp(scheme, "http") == 0)
      rc = is_loopback(host) ? 0 : RN_EACCES;
  }
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  return rc;
}

#define REQ_HAS(rq, field)                                                   \
  (offsetof(rn_http_request_t, field) + sizeof((rq)->field) <= (rq)->struct_size)

static int setup_easy(http_req_t *r, const rn_http_request_t *rq,
                      const char *method) {
  CURL *e = r->easy;
  uint32_t timeout = REQ_HAS(rq, timeout_ms) && rq->timeout_ms
                         ? rq->timeout_ms
                         : DEFAULT_TIMEOUT_MS;
  uint32_t connect = timeout < MAX_CONNECT_TIMEOUT_MS ? timeout
                                                      : MAX_CONNECT_TIMEOUT_MS;
  const char *ca = REQ_HAS(rq, ca_file) ? rq->ca_file : NULL;
  CURLcode c = CURLE_OK;
#define SET(opt, val)                                                        \
  do {                                                                       \
    if (c == CURLE_OK)                                                       \
      c = curl_easy_setopt(e, opt, val);                                     \
  } while (0)
  SET(CURLOPT_URL, r->url);
  SET(CURLOPT_PRIVATE, (void *)r);
  SET(CURLOPT_ERRORBUFFER, r->errbuf);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  SET(CURLOPT_PIPEWAIT, 1L);
  SET(CURLOPT_ACCEPT_ENCODING, "");
  SET(CURLOPT_TIMEOUT_MS, (long)timeout);
  SET(CURLOPT_CONNECTTIMEOUT_MS, (long)connect);
  SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_bytes);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, (void *)r);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, (void *)r);
  SET(CURLOPT_USERAGENT, "regentra-runner/" RN_VERSION);
  /* Trust is loaded on the loop thread for every new connection, so it must
   * be cheap: parsing the system bundle (some 140 certificates) took 100 ms
   * per connection in an ASan build, 4 s with its slow unwinding
   * (bench_tls). */
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  if (ca && *ca) {
    /* An extra anchor: the system directory stays trusted too. */
    SET(CURLOPT_CAINFO, ca);
    if (v->capath)
      SET(CURLOPT_CAPATH, v->capath);
  } else if (v->capath) {
    /* The system store as its hashed directory (the bundle is made from the
     * same certificates): a handshake reads the one or two it needs. */
    SET(CURLOPT_CAINFO, NULL);
    SET(CURLOPT_CAPATH, v->capath);
  } else {
#if LIBCURL_VERSION_NUM >= 0x075700 /* 7.87.0 */
    /* The bundle alone: curl keeps it parsed in the multi handle. */
    SET(CURLOPT_CA_CACHE_TIMEOUT, CA_CACHE_SECONDS);
#endif
  }
  if (strcmp(method, "GET") == 0) {
    SET(CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0) {
    SET(CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "POST") == 0) {
    SET(CURLOPT_POST, 1L);
  } else {
    SET(CURLOPT_CUSTOMREQUEST, method);
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
  }
  SET(CURLOPT_HTTPHEADER, r->headers);
#undef SET
  if (c != CURLE_OK) {
    rn__log(RN_LOG_ERR, plugin_name(r), "curl_easy_setopt: %s",
            curl_easy_strerror(c));
    return c == CURLE_OUT_OF_MEMORY ? RN_ENOMEM : RN_EINVAL;
  }
  return 0;
}

static bool valid_method(const char *m) {
  if (!*m || strlen(m) > 16)
    return false;
  for (const char *p = m; *p; p++)
    if (!isupper((unsigned char)*p))
      return false;
  return true;
}

static int http_request(rn_ctx_t *ctx, const rn_http_request_t *rq,
                        rn_http_cb cb, void *data, rn_req_t **out) {
  if (!ctx || !rq || !cb || rq->struct_size < offsetof(rn_http_request_t, url) +
                                                  sizeof(rq->url) ||
      !rq->url)
    return RN_EINVAL;
  if (rn__req_admit(ctx) < 0)
    return RN_ECANCELED; /* its run was ended by the host */
  const char *method = rq->method ? rq->method : "GET";
  if (!valid_method(method))
    return RN_EINVAL;
  const char *body = REQ_HAS(rq, body) ? rq->body : NULL;
  size_t body_len = body && REQ_HAS(rq, body_len) ? rq->body_len : 0;
  if (body && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
    return RN_EINVAL;
  int rc = check_url(rq->url);
  if (rc < 0) {
    if (rc == RN_EACCES)
      rn__log(RN_LOG_WARNING, ctx->plugin ? ctx->plugin->name : NULL,
              "refusing plain http:// to a host that is not loopback");
    return rc;
  }
  rn__http_t *http = engine(ctx->runner);
  if (!http)
    return ctx->runner->http ? RN_ESTATE : RN_ENOMEM;
  http_req_t *r = calloc(1, sizeof *r);
  if (!r)
    return RN_ENOMEM;
  r->http = http;
  r->cb = cb;
  r->data = data;
  r->max_bytes = REQ_HAS(rq, max_response_bytes) && rq->max_response_bytes
                     ? rq->max_response_bytes
                     : DEFAULT_MAX_RESPONSE;
  r->body_len = body_len;
  rn__list_init(&r->link);
  r->url = strdup(rq->url);
  if (!r->url)
    goto nomem;
  if (body) {
    r->body = malloc(body_len + 1);
    if (!r->body)
      goto nomem;
    memcpy(r->body, body, body_len);
    r->body[body_len] = '\0';
  }
  if (REQ_HAS(rq, headers) && rq->headers) {
    for (const char *const *h = rq->headers; *h; h++) {
      if (strpbrk(*h, "\r\n") || !strchr(*h, ':')) {
        req_free(r);
        return RN_EINVAL;
      }
      struct curl_slist *l = curl_slist_append(r->headers, *h);
      if (!l)
        goto nomem;
      r->headers = l;
    }
  }
  /* No "Expect: 100-continue" round trip for small bodies. */
  struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
  if (!l)
    goto nomem;
  r->headers = l;
  r->easy = curl_easy_init();
  if (!r->easy)
    goto nomem;
  rc = setup_easy(r, rq, method);
  if (rc < 0) {
    req_free(r);
    return rc;
  }
  const char *key = REQ_HAS(rq, rate_key) ? rq->rate_key : NULL;
  if (key && *key) {
    r->key = rn__rate_key(http->rate, key, true);
    r->upstream = upstream_of(http, key, rq->url);
    if (!r->key || !r->upstream)
      goto nomem;
  }
  rn__req_start(ctx, &r->req, http_cancel);
  if (out)
    *out = &r->req;
  if (r->key && !rn__rate_acquire(r->key, &r->waiter, on_admitted)) {
    r->state = REQ_WAITING;
    rn__list_push(&http->waiting, &r->link);
    arm_rate_timer(http);
    return 0;
  }
  start_transfer(r);
  return 0;
nomem:
  req_free(r);
  return RN_ENOMEM;
}

static const char *http_header(const rn_http_response_t *resp,
                               const char *name) {
  if (!resp || !name || !*name)
    return NULL;
  const http_req_t *r = rn__container_of(resp, http_req_t, resp);
  return find_header(r, name);
}

static int rate_configure(rn_ctx_t *ctx, const char *key,
                          const rn_rate_window_t *windows, size_t count) {
  if (!ctx || !key)
    return RN_EINVAL;
  rn__http_t *http = engine(ctx->runner);
  if (!http)
    return ctx->runner->http ? RN_ESTATE : RN_ENOMEM;
  const rn__plugin_t *p = ctx->plugin;
  /* Read by the elements' declared size (or the 1.x layout) into ours. */
  rn_rate_window_t read[16];
  char why[256];
  int rc =
      count > RN_ARRAY_SIZE(read)
          ? RN_EINVAL
          : rn__abi_read_rate_windows(p ? p->desc->abi_version : RN_ABI_VERSION,
                                      windows, count, read, why, sizeof why);
  if (rc < 0) {
    if (count > RN_ARRAY_SIZE(read))
      snprintf(why, sizeof why, "%zu windows, at most %zu", count,
               RN_ARRAY_SIZE(read));
    rn__log(RN_LOG_ERR, p ? p->name : "host", "rate_configure %s: %s", key,
            why);
    return rc;
  }
  if (ctx->runner->clock_scales_budget && ctx->runner->clock_scale > 1)
    for (size_t i = 0; i < count; i++) {
      uint64_t period =
          (uint64_t)((double)read[i].period_ms / ctx->runner->clock_scale);
      read[i].period_ms = period ? period : 1;
    }
  rc = rn__rate_declare(http->rate, key, read, count,
                        p && p->gen ? p->gen->id : 0, p ? p->name : "host");
  if (rc == 0)
    arm_rate_timer(http);
  return rc;
}

static int rate_pause(rn_ctx_t *ctx, const char *key, uint64_t pause_ms) {
  if (!ctx || !key || !*key)
    return RN_EINVAL;
  rn__http_t *http = engine(ctx->runner);
  if (!http)
    return ctx->runner->http ? RN_ESTATE : RN_ENOMEM;
  /* Created when unknown: a pause may come before the first request. */
  rn__rate_key_t *k = rn__rate_key(http->rate, key, true);
  if (!k)
    return RN_ENOMEM;
  int64_t ms = pause_ms > INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)pause_ms;
  if (rn__rate_throttle(k, ms) > 0)
    arm_rate_timer(http);
  return 0;
}

void rn__http_fill_host(rn_host_t *host) {
  host->http_request = http_request;
  host->http_header = http_header;
  host->rate_configure = rate_configure;
  host->rate_pause = rate_pause;
}
