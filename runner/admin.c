/* admin.c - /healthz, Prometheus /metrics and the dashboard (/, see
 * dashboard.c) on a local port.
 *
 * libmicrohttpd runs in its external-polling epoll mode: its epoll fd (which
 * holds the listening socket and every connection) is watched by one
 * uv_poll_t, MHD_run() is called when it is readable, and one uv_timer_t
 * follows MHD_get_timeout() for connection timeouts and work MHD still has
 * buffered. Requests are therefore answered on the loop thread, from
 * figures the loop owns, and must never block: queue depth comes from a
 * cache that a timer refreshes through the asynchronous db service. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "dashboard.h"
#include "db.h"
#include "http.h"

#define CONNECTION_LIMIT 16
#define CONNECTION_TIMEOUT_S 10
#define QUEUE_REFRESH_MS 5000
#define QUEUE_FIRST_REFRESH_MS 200

/* The states of runner.job (its CHECK constraint), reported even at 0. */
static const char *const queue_states[] = {"available", "running", "completed",
                                           "dead"};

typedef struct job_count_s {
  char *name;
  uint64_t completed;
  uint64_t failed;
} job_count_t;

struct rn__admin_s {
  rn__runner_t *runner;
  char *listen; /* as configured, to notice a change on reload */
  struct MHD_Daemon *daemon;
  uv_poll_t poll;
  uv_timer_t mhd_timer;
  uv_timer_t queue_timer;
  unsigned open_handles;
  bool closing;
  bool run_failed_logged;
  rn__dashboard_t *dashboard;
  /* completed / failed runs per job name, in first-seen order */
  job_count_t *jobs;
  size_t njobs;
  /* runner.job rows per state, from the last successful refresh */
  rn__db_query_t *query; /* in flight */
  bool queue_valid;
  bool queue_failing; /* logged once per ok -> failing change */
  int64_t queue_counts[RN_ARRAY_SIZE(queue_states)];
};

/* ------------------------------------------------------------ address */

int rn__admin_parse_listen(const char *text, struct sockaddr_storage *addr,
                           char *err, size_t errlen) {
  char host[64];
  const char *port_text;
  memset(addr, 0, sizeof *addr);
  if (text[0] == '[') {
    const char *end = strchr(text, ']');
    if (!end || end[1] != ':') {
      snprintf(err, errlen, "expected [IPv6 address]:port");
      return RN_EINVAL;
    }
    size_t n = (size_t)(end - text - 1);
    if (n == 0 || n >= sizeof host) {
      snprintf(err, errlen, "bad IPv6 address");
      return RN_EINVAL;
    }
    memcpy(host, text + 1, n);
    host[n] = '\0';
    port_text = end + 2;
  } else {
    const char *colon = strrchr(text, ':');
    if (!colon) {
      snprintf(err, errlen, "no port");
      return RN_EINVAL;
    }
    size_t n = (size_t)(colon - text);
    if (n == 0 || n >= sizeof host) {
      snprintf(err, errlen, "no address before the port");
      return RN_EINVAL;
    }
    memcpy(host, text, n);
    host[n] = '\0';
    if (strchr(host, ':')) {
      snprintf(err, errlen, "put an IPv6 address in brackets");
      return RN_EINVAL;
    }
    port_text = colon + 1;
  }
  unsigned long port = 0;
  if (!*port_text || strlen(port_text) > 5) {
    snprintf(err, errlen, "port must be 1..65535");
    return RN_EINVAL;
  }
  for (const char *p = port_text; *p; p++) {
    if (*p < '0' || *p > '9') {
      snprintf(err, errlen, "port must be 1..65535");
      return RN_EINVAL;
    }
    port = port * 10 + (unsigned long)(*p - '0');
  }
  if (port < 1 || port > 65535) {
    snprintf(err, errlen, "port must be 1..65535");
    return RN_EINVAL;
  }
  if (strcmp(host, "localhost") == 0)
    strcpy(host, "127.0.0.1");
  struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
  } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
  } else {
    snprintf(err, errlen, "\"%s\" is not a numeric IP address", host);
    return RN_EINVAL;
  }
  return 0;
}

bool rn__admin_is_loopback(const struct sockaddr_storage *addr) {
  if (addr->ss_family == AF_INET) {
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)addr;
    return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
  }
  if (addr->ss_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
      return true;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
  }
  return false;
}

/* ---------------------------------------------------- job run counters */

void rn__admin_job_finished(rn__runner_t *runner, const char *job_name,
                            int status) {
  rn__admin_t *a = runner->admin;
  if (!a || !job_name)
    return;
  job_count_t *c = NULL;
  for (size_t i = 0; i < a->njobs && !c; i++)
    if (strcmp(a->jobs[i].name, job_name) == 0)
      c = &a->jobs[i];
  if (!c) {
    /* Names come from configuration, so the table stays small. */
    job_count_t *grown = realloc(a->jobs, (a->njobs + 1) * sizeof *grown);
    if (!grown)
      return; /* a missed count is better than a failed run */
    a->jobs = grown;
    char *name = strdup(job_name);
    if (!name)
      return;
    c = &a->jobs[a->njobs++];
    *c = (job_count_t){.name = name};
  }
  if (status == 0)
    c->completed++;
  else
    c->failed++;
}

/* --------------------------------------------------------- text output */

typedef struct text_s {
  char *data;
  size_t len, cap;
  bool failed;
} text_t;

static void text_add(text_t *t, const char *fmt, ...) RN_PRINTF_LIKE(2, 3);

static void text_add(text_t *t, const char *fmt, ...) {
  if (t->failed)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->data ? t->data + t->len : NULL,
                      t->data ? t->cap - t->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = true;
      return;
    }
    if (t->data && (size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t want = t->cap ? t->cap * 2 : 4096;
    while (want < t->len + (size_t)n + 1)
      want *= 2;
    char *grown = realloc(t->data, want);
    if (!grown) {
      t->failed = true;
      return;
    }
    t->data = grown;
    t->cap = want;
  }
}

/* A label value as the exposition format wants it: \, " and newline
 * escaped. */
static void text_label(text_t *t, const char *value) {
  for (const char *p = value; *p; p++) {
    if (*p == '\\')
      text_add(t, "\\\\");
    else if (*p == '"')
      text_add(t, "\\\"");
    else if (*p == '\n')
      text_add(t, "\\n");
    else
      text_add(t, "%c", *p);
  }
}

static void family(text_t *t, const char *name, const char *type,
                   const char *help) {
  text_add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* ------------------------------------------------------------ metrics */

static bool database_configured(const rn__runner_t *runner) {
  const char *url = runner->gen ? runner->gen->config->database_url : NULL;
  return url && *url;
}

static void rate_key_metrics(const rn__rate_key_t *key, void *data) {
  text_t *t = data;
  rn__rate_stats_t s;
  rn__rate_get_stats(key, &s);
  static const char *const names[] = {
      "regentra_ratelimit_admitted_total", "regentra_ratelimit_waited_total",
      "regentra_ratelimit_throttled_total", "regentra_ratelimit_pauses_total",
      "regentra_ratelimit_queued"};
  const uint64_t values[] = {s.admitted, s.waited, s.throttled, s.paused,
                             (uint64_t)s.queued};
  for (size_t i = 0; i < RN_ARRAY_SIZE(names); i++) {
    text_add(t, "%s{key=\"", names[i]);
    text_label(t, rn__rate_key_name(key));
    text_add(t, "\"} %llu\n", (unsigned long long)values[i]);
  }
  text_add(t, "regentra_ratelimit_wait_seconds_total{key=\"");
  text_label(t, rn__rate_key_name(key));
  text_add(t, "\"} %.3f\n", (double)s.wait_ms_total / 1000.0);
  if (s.remaining >= 0) {
    text_add(t, "regentra_ratelimit_remaining{key=\"");
    text_label(t, rn__rate_key_name(key));
    text_add(t, "\"} %lld\n", (long long)s.remaining);
  }
}

static void rate_metrics(rn__runner_t *runner, text_t *t) {
  /* Only an engine already running: a scrape must not start one. */
  if (!runner->http)
    return;
  rn__rate_t *rl = rn__http_rate(runner);
  if (!rl)
    return;
  family(t, "regentra_ratelimit_admitted_total", "counter",
         "Requests admitted by the rate limiter, per key.");
  family(t, "regentra_ratelimit_waited_total", "counter",
         "Admissions that had to wait for a token first, per key.");
  family(t, "regentra_ratelimit_throttled_total", "counter",
         "Throttle answers (429 and the like) reported by upstream, per key.");
  family(t, "regentra_ratelimit_pauses_total", "counter",
         "Pauses applied to a key (Retry-After, 429, exhausted quota).");
  family(t, "regentra_ratelimit_queued", "gauge",
         "Requests waiting for a token now, per key.");
  family(t, "regentra_ratelimit_wait_seconds_total", "counter",
         "Time requests spent waiting for a token, per key.");
  family(t, "regentra_ratelimit_remaining", "gauge",
         "Last remaining quota announced by upstream, per key.");
  rn__rate_each(rl, rate_key_metrics, t);
}

static void upstream_sample(const char *key, const char *endpoint,
                            uint64_t requests, uint64_t throttled, void *data) {
  text_t *t = data;
  const char *names[] = {"regentra_upstream_requests_total",
                         "regentra_upstream_throttled_total"};
  const uint64_t values[] = {requests, throttled};
  for (size_t i = 0; i < RN_ARRAY_SIZE(names); i++) {
    text_add(t, "%s{key=\"", names[i]);
    text_label(t, key);
    text_add(t, "\",endpoint=\"");
    text_label(t, endpoint);
    text_add(t, "\"} %llu\n", (unsigned long long)values[i]);
  }
}

static void write_metrics(rn__admin_t *a, text_t *t) {
  rn__runner_t *runner = a->runner;
  rn__generation_t *gen = runner->gen;
  family(t, "regentra_runner_info", "gauge",
         "Version of the runner and of the plugin ABI it provides.");
  text_add(t, "regentra_runner_info{version=\"%s\",abi=\"%u.%u\"} 1\n",
           RN_VERSION, (unsigned)RN_ABI_MAJOR, (unsigned)RN_ABI_MINOR);
  family(t, "regentra_generation", "gauge",
         "Id of the configuration generation that takes new work.");
  text_add(t, "regentra_generation %llu\n",
           (unsigned long long)(gen ? gen->id : 0));
  family(t, "regentra_plugins_loaded", "gauge",
         "Plugins loaded in the current generation.");
  text_add(t, "regentra_plugins_loaded %zu\n", gen ? gen->nplugins : 0);
  family(t, "regentra_jobs_running", "gauge",
         "Job runs in progress in this process.");
  text_add(t, "regentra_jobs_running %u\n", runner->running_jobs);
  unsigned slots_waiting = 0;
  unsigned slots_held = rn__slots_held(runner, &slots_waiting);
  family(t, "regentra_pages_held", "gauge",
         "Page slots plugins hold in this process (max_pages_held caps it).");
  text_add(t, "regentra_pages_held %u\n", slots_held);
  family(t, "regentra_pages_waiting", "gauge",
         "Page requests waiting for a free page slot in this process.");
  text_add(t, "regentra_pages_waiting %u\n", slots_waiting);
  family(t, "regentra_job_runs_total", "counter",
         "Job runs finished by this process, by job and outcome.");
  for (size_t i = 0; i < a->njobs; i++) {
    const job_count_t *c = &a->jobs[i];
    text_add(t, "regentra_job_runs_total{job=\"");
    text_label(t, c->name);
    text_add(t, "\",outcome=\"completed\"} %llu\n",
             (unsigned long long)c->completed);
    text_add(t, "regentra_job_runs_total{job=\"");
    text_label(t, c->name);
    text_add(t, "\",outcome=\"failed\"} %llu\n", (unsigned long long)c->failed);
  }
  rn__http_stats_t hs;
  rn__http_get_stats(runner, &hs);
  family(t, "regentra_http_requests_in_flight", "gauge",
         "Upstream HTTP transfers in progress.");
  text_add(t, "regentra_http_requests_in_flight %zu\n", hs.active);
  family(t, "regentra_http_requests_waiting", "gauge",
         "Upstream HTTP requests held by the rate limiter.");
  text_add(t, "regentra_http_requests_waiting %zu\n", hs.waiting);
  family(t, "regentra_http_requests_total", "counter",
         "Upstream HTTP requests finished, by outcome.");
  text_add(t,
           "regentra_http_requests_total{outcome=\"response\"} %llu\n"
           "regentra_http_requests_total{outcome=\"error\"} %llu\n"
           "regentra_http_requests_total{outcome=\"cancelled\"} %llu\n",
           (unsigned long long)hs.completed, (unsigned long long)hs.failed,
           (unsigned long long)hs.cancelled);
  family(t, "regentra_upstream_requests_total", "counter",
         "Upstream requests sent (token requests and retries included), by "
         "rate key and endpoint.");
  family(t, "regentra_upstream_throttled_total", "counter",
         "429 answers, by rate key and endpoint.");
  rn__http_upstream_foreach(runner, upstream_sample, t);
  rate_metrics(runner, t);
  if (!database_configured(runner))
    return;
  family(t, "regentra_database_up", "gauge",
         "1 when the runner's database connections are up.");
  text_add(t, "regentra_database_up %d\n",
           runner->db && rn__db_up(runner->db) ? 1 : 0);
  if (!a->queue_valid)
    return;
  family(t, "regentra_queue_jobs", "gauge",
         "Rows of the durable queue by state (refreshed every 5 s).");
  for (size_t i = 0; i < RN_ARRAY_SIZE(queue_states); i++)
    text_add(t, "regentra_queue_jobs{state=\"%s\"} %lld\n", queue_states[i],
             (long long)a->queue_counts[i]);
}

/* -------------------------------------------------------- queue depth */

static void admin_release(rn__admin_t *a);

static void queue_counted(int status, PGresult *res, const char *errmsg,
                          void *data) {
  rn__admin_t *a = data;
  a->query = NULL;
  if (a->closing) {
    admin_release(a);
    return;
  }
  if (status < 0) {
    a->queue_valid = false;
    if (!a->queue_failing)
      rn__log(RN_LOG_WARNING, "admin", "queue depth unavailable: %s", errmsg);
    a->queue_failing = true;
    return;
  }
  int64_t counts[RN_ARRAY_SIZE(queue_states)] = {0};
  for (int row = 0; row < PQntuples(res); row++) {
    const char *state = PQgetvalue(res, row, 0);
    for (size_t i = 0; i < RN_ARRAY_SIZE(queue_states); i++)
      if (strcmp(state, queue_states[i]) == 0)
        counts[i] = strtoll(PQgetvalue(res, row, 1), NULL, 10);
  }
  memcpy(a->queue_counts, counts, sizeof counts);
  a->queue_valid = true;
  if (a->queue_failing)
    rn__log(RN_LOG_NOTICE, "admin", "queue depth available again");
  a->queue_failing = false;
}

static void on_queue_timer(uv_timer_t *timer) {
  rn__admin_t *a = timer->data;
  rn__runner_t *runner = a->runner;
  if (a->query || !runner->db || !rn__db_up(runner->db))
    return; /* the last figures stand until the database answers */
  int rc = rn__db_exec(runner->db,
                       "SELECT state, count(*) FROM runner.job GROUP BY state",
                       0, NULL, queue_counted, a, &a->query);
  if (rc < 0) {
    a->query = NULL;
    a->queue_valid = false;
  }
}

/* ------------------------------------------------------------ requests */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
                               const char *content_type, const char *body,
                               size_t len, const char *allow) {
  struct MHD_Response *response =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!response)
    return MHD_NO;
  enum MHD_Result rc = MHD_add_response_header(
      response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (rc == MHD_YES && allow)
    rc = MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
  if (rc == MHD_YES)
    rc = MHD_queue_response(conn, status, response);
  MHD_destroy_response(response);
  return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn,
                                    unsigned status, const char *text) {
  return respond(conn, status, "text/plain; charset=utf-8", text, strlen(text),
                 NULL);
}

static const char *unhealthy_reason(const rn__runner_t *runner) {
  if (runner->stopping)
    return "stopping: draining running jobs\n";
  if (!runner->gen)
    return "no configuration loaded\n";
  if (database_configured(runner) && !(runner->db && rn__db_up(runner->db)))
    return "database not connected\n";
  return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  rn__admin_t *a = cls;
  (void)version;
  (void)upload;
  (void)upload_size;
  bool known = strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0 ||
               strcmp(url, "/") == 0;
  if (!known)
    return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                   "text/plain; charset=utf-8", "method not allowed\n", 19,
                   "GET, HEAD");
  if (strcmp(url, "/") == 0)
    return rn__dashboard_serve(a->dashboard, conn, con_cls);
  if (strcmp(url, "/healthz") == 0) {
    const char *reason =
        a->closing ? "stopping\n" : unhealthy_reason(a->runner);
    return reason ? respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, reason)
                  : respond_text(conn, MHD_HTTP_OK, "ok\n");
  }
  text_t t = {0};
  write_metrics(a, &t);
  enum MHD_Result rc = t.failed
                           ? respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                          "out of memory\n")
                           : respond(conn, MHD_HTTP_OK,
                                     "text/plain; version=0.0.4; charset=utf-8",
                                     t.data, t.len, NULL);
  free(t.data);
  return rc;
}

/* A request is over (answered, failed or dropped): the dashboard's page, if
 * it was one, is let go. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
  (void)cls;
  (void)conn;
  (void)why;
  rn__dashboard_request_ended(con_cls);
}

/* ---------------------------------------------------- loop integration */

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char line[512];
  if (vsnprintf(line, sizeof line, fmt, ap) < 0)
    return;
  size_t len = strlen(line);
  while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  rn__log(RN_LOG_WARNING, "admin", "%s", line);
}

static void on_mhd_timer(uv_timer_t *timer);

/* Lets MHD do what is ready, then sleeps until it next needs a turn. */
static void drive(rn__admin_t *a) {
  if (MHD_run(a->daemon) != MHD_YES && !a->run_failed_logged) {
    rn__log(RN_LOG_ERR, "admin", "the HTTP server failed a turn");
    a->run_failed_logged = true;
  }
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(a->daemon, &ms) == MHD_YES)
    uv_timer_start(&a->mhd_timer, on_mhd_timer, (uint64_t)ms, 0);
  else
    uv_timer_stop(&a->mhd_timer);
}

static void on_mhd_timer(uv_timer_t *timer) {
  drive(timer->data);
}

/* The dashboard resumed a connection: libmicrohttpd takes it back in its
 * next turn, which its epoll fd does not announce. */
static void on_dashboard_wake(void *data) {
  rn__admin_t *a = data;
  if (a->daemon)
    drive(a);
}

static void on_poll(uv_poll_t *poll, int status, int events) {
  rn__admin_t *a = poll->data;
  (void)events;
  if (status < 0 && !a->run_failed_logged) {
    rn__log(RN_LOG_ERR, "admin", "polling the HTTP server: %s",
            uv_strerror(status));
    a->run_failed_logged = true;
  }
  drive(a);
}

/* ------------------------------------------------------------ lifetime */

static void admin_free(rn__admin_t *a) {
  for (size_t i = 0; i < a->njobs; i++)
    free(a->jobs[i].name);
  free(a->jobs);
  free(a->listen);
  free(a);
}

/* Frees once every handle is closed and no query is left to answer. */
static void admin_release(rn__admin_t *a) {
  if (a->open_handles == 0 && !a->query)
    admin_free(a);
}

static void handle_closed(uv_handle_t *handle) {
  rn__admin_t *a = handle->data;
  a->open_handles--;
  admin_release(a);
}

static void admin_shutdown(rn__admin_t *a, bool poll_open, bool mhd_timer_open,
                           bool queue_timer_open) {
  a->closing = true;
  /* Pages waiting for the database are answered and resumed; one more turn
   * lets the server take them back before it stops. */
  rn__dashboard_close(a->dashboard);
  a->dashboard = NULL;
  if (a->daemon)
    MHD_run(a->daemon);
  /* Stop watching the epoll fd before MHD closes it. */
  if (poll_open)
    uv_close((uv_handle_t *)&a->poll, handle_closed);
  if (a->daemon) {
    MHD_stop_daemon(a->daemon);
    a->daemon = NULL;
  }
  if (mhd_timer_open)
    uv_close((uv_handle_t *)&a->mhd_timer, handle_closed);
  if (queue_timer_open)
    uv_close((uv_handle_t *)&a->queue_timer, handle_closed);
  if (a->query)
    rn__db_cancel(a->query); /* its callback releases us */
  admin_release(a);
}

int rn__admin_start(rn__runner_t *runner) {
  const char *listen = runner->gen->config->admin_listen;
  if (!listen || runner->admin)
    return 0;
  struct sockaddr_storage addr;
  char err[256];
  if (rn__admin_parse_listen(listen, &addr, err, sizeof err) < 0) {
    rn__log(RN_LOG_ERR, "admin", "admin_listen = \"%s\": %s", listen, err);
    return RN_ECONFIG;
  }
  if (!MHD_is_feature_supported(MHD_FEATURE_EPOLL)) {
    rn__log(RN_LOG_ERR, "admin", "libmicrohttpd was built without epoll");
    return RN_ENOSYS;
  }
  rn__admin_t *a = calloc(1, sizeof *a);
  if (!a || !(a->listen = strdup(listen))) {
    free(a);
    return RN_ENOMEM;
  }
  a->runner = runner;
  if (!(a->dashboard = rn__dashboard_new(runner, on_dashboard_wake, a))) {
    admin_free(a);
    return RN_ENOMEM;
  }
  /* The dashboard suspends a connection while its queries run. */
  unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
  if (addr.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  /* The logger goes first: libmicrohttpd reports anything it meets while
   * reading the options before it through its default logger. */
  a->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER,
      on_mhd_log, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_END);
  if (!a->daemon) {
    rn__log(RN_LOG_ERR, "admin", "cannot listen on %s (see above)", listen);
    rn__dashboard_close(a->dashboard);
    admin_free(a);
    return RN_EIO;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  if (!info) {
    rn__log(RN_LOG_ERR, "admin", "the HTTP server has no epoll fd");
    admin_shutdown(a, false, false, false);
    return RN_EIO;
  }
  int rc = uv_poll_init(runner->loop, &a->poll, info->epoll_fd);
  if (rc < 0) {
    admin_shutdown(a, false, false, false);
    return rn__from_uv(rc);
  }
  a->poll.data = a;
  a->open_handles++;
  /* uv_timer_init cannot fail on a live loop; checked all the same. */
  rc = uv_timer_init(runner->loop, &a->mhd_timer);
  if (rc < 0) {
    admin_shutdown(a, true, false, false);
    return rn__from_uv(rc);
  }
  a->mhd_timer.data = a;
  a->open_handles++;
  rc = uv_timer_init(runner->loop, &a->queue_timer);
  if (rc < 0) {
    admin_shutdown(a, true, true, false);
    return rn__from_uv(rc);
  }
  a->queue_timer.data = a;
  a->open_handles++;
  rc = uv_poll_start(&a->poll, UV_READABLE, on_poll);
  if (rc == 0 && database_configured(runner))
    rc = uv_timer_start(&a->queue_timer, on_queue_timer, QUEUE_FIRST_REFRESH_MS,
                        QUEUE_REFRESH_MS);
  if (rc < 0) {
    admin_shutdown(a, true, true, true);
    return rn__from_uv(rc);
  }
  runner->admin = a;
  if (!rn__admin_is_loopback(&addr))
    rn__log(RN_LOG_WARNING, "admin",
            "admin_listen %s is not a loopback address: the dashboard, "
            "/metrics and /healthz are reachable from the network without "
            "authentication",
            listen);
  rn__log(RN_LOG_NOTICE, "admin",
          "serving /healthz, /metrics and the dashboard (/) on %s", listen);
  return 0;
}

void rn__admin_close(rn__runner_t *runner) {
  rn__admin_t *a = runner->admin;
  if (!a)
    return;
  runner->admin = NULL;
  admin_shutdown(a, true, true, true);
}

void rn__admin_reloaded(rn__runner_t *runner) {
  const rn__admin_t *a = runner->admin;
  const char *now = runner->gen ? runner->gen->config->admin_listen : NULL;
  const char *was = a ? a->listen : NULL;
  if ((!now && !was) || (now && was && strcmp(now, was) == 0))
    return;
  rn__log(RN_LOG_WARNING, "admin",
          "admin_listen changed to %s; it takes effect at the next restart "
          "(still %s)",
          now ? now : "off", was ? was : "off");
}
