/* stubborn - jobs with no cancel hook, each waiting on one kind of request
 * for a long time: an HTTP request, a timer, a thread-pool work item, a
 * database query and a database transaction. Only the host can stop them.
 * Each callback logs what it got and completes the job with that status,
 * whether or not the job is still running. The plugin also keeps a timer
 * of its own (started in create()), as plugins with housekeeping do. */
#include <regentra/plugin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const rn_host_t *host;

typedef struct state_s {
  rn_req_t *housekeeping;
} state_t;

static const rn_option_t plugin_options[] = {
    RN_OPTION(.name = "housekeeping", .type = RN_OPT_DURATION,
              .default_value = "1h",
              .help = "period of the plugin's own timer"),
    {0},
};

static void housekeeping_fired(rn_ctx_t *ctx, int status, void *data) {
  state_t *state = data;
  state->housekeeping = NULL;
  host->log(ctx, RN_LOG_INFO, "housekeeping timer: %s",
            status < 0 ? host->err_name(status) : "fired");
}

static int stubborn_create(rn_ctx_t *ctx, const rn_config_t *config,
                           void **out) {
  state_t *state = host->calloc(1, sizeof *state);
  if (!state)
    return RN_ENOMEM;
  int64_t period = host->config_int(config, "housekeeping");
  int rc = host->timer_start(ctx, (uint64_t)period, housekeeping_fired, state,
                             &state->housekeeping);
  if (rc < 0) {
    host->free(state);
    return rc;
  }
  host->log(ctx, RN_LOG_INFO, "stubborn created");
  *out = state;
  return 0;
}

static void stubborn_destroy(rn_ctx_t *ctx, void *state) {
  host->log(ctx, RN_LOG_INFO, "stubborn destroyed%s",
            ((state_t *)state)->housekeeping ? " with its timer out" : "");
  host->free(state);
}

/* Every callback ends here: the job is completed with what arrived. */
static void finish(rn_ctx_t *ctx, rn_job_t *job, const char *what, int status) {
  host->log(ctx, RN_LOG_INFO, "%s callback: %s", what,
            status < 0 ? host->err_name(status) : "ok");
  host->job_complete(job, status, NULL, what);
}

static void started(rn_ctx_t *ctx, rn_job_t *job) {
  host->log(ctx, RN_LOG_INFO, "%s waiting", host->job_name(job));
}

/* ------------------------------------------------------------- http */

static const rn_option_t http_options[] = {
    RN_OPTION(.name = "url", .type = RN_OPT_URL, .flags = RN_OPT_REQUIRED),
    {0},
};

static void http_done(rn_ctx_t *ctx, int status, const rn_http_response_t *resp,
                      void *data) {
  (void)resp;
  finish(ctx, data, "http", status);
}

static int http_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.url = host->config_str(host->job_config(job), "url");
  rq.timeout_ms = 600000;
  int rc = host->http_request(ctx, &rq, http_done, job, NULL);
  if (rc == 0)
    started(ctx, job);
  return rc;
}

/* ------------------------------------------------------------ timer */

static const rn_option_t timer_options[] = {
    RN_OPTION(.name = "duration", .type = RN_OPT_DURATION,
              .default_value = "10m"),
    /* Starts the timer again whatever its callback got, as a naive retry
     * loop would; a failed start completes the job. */
    RN_OPTION(.name = "again", .type = RN_OPT_BOOL, .default_value = "false"),
    {0},
};

static void timer_done(rn_ctx_t *ctx, int status, void *data) {
  rn_job_t *job = data;
  const rn_config_t *options = host->job_config(job);
  if (host->config_int(options, "again")) {
    host->log(ctx, RN_LOG_INFO, "timer callback: %s; starting it again",
              status < 0 ? host->err_name(status) : "ok");
    int rc =
        host->timer_start(ctx, (uint64_t)host->config_int(options, "duration"),
                          timer_done, job, NULL);
    if (rc == 0)
      return;
    finish(ctx, job, "timer restart", rc);
    return;
  }
  finish(ctx, job, "timer", status);
}

static int timer_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  int64_t ms = host->config_int(host->job_config(job), "duration");
  int rc = host->timer_start(ctx, (uint64_t)ms, timer_done, job, NULL);
  if (rc == 0)
    started(ctx, job);
  return rc;
}

/* ------------------------------------------------------------- work */

static const rn_option_t work_options[] = {
    RN_OPTION(.name = "duration", .type = RN_OPT_DURATION,
              .default_value = "3s"),
    {0},
};

typedef struct work_s {
  rn_job_t *job;
  int64_t ms;
} work_t;

static void work_sleep(void *data) {
  work_t *w = data;
  struct timespec ts = {.tv_sec = w->ms / 1000,
                        .tv_nsec = (w->ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

static void work_done(rn_ctx_t *ctx, int status, void *data) {
  work_t *w = data;
  rn_job_t *job = w->job;
  host->free(w);
  /* The job name is read from a job the host may have ended already. */
  host->log(ctx, RN_LOG_INFO, "work of %s returned", host->job_name(job));
  finish(ctx, job, "work", status);
}

static int work_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  work_t *w = host->calloc(1, sizeof *w);
  if (!w)
    return RN_ENOMEM;
  w->job = job;
  w->ms = host->config_int(host->job_config(job), "duration");
  int rc = host->work_queue(ctx, work_sleep, work_done, w, NULL);
  if (rc < 0) {
    host->free(w);
    return rc;
  }
  started(ctx, job);
  return 0;
}

/* --------------------------------------------------------- database */

static const rn_option_t db_options[] = {
    RN_OPTION(.name = "seconds", .type = RN_OPT_INT, .default_value = "600",
              .min = 1, .max = 3600),
    {0},
};

static const char *const sleep_sql = "SELECT pg_sleep($1)";

static const char *seconds_of(rn_job_t *job) {
  return host->config_str(host->job_config(job), "seconds");
}

static void query_done(rn_ctx_t *ctx, int status, const rn_db_result_t *res,
                       void *data) {
  (void)res;
  finish(ctx, data, "query", status);
}

static int query_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  const char *params[] = {seconds_of(job)};
  int rc = host->db_query(ctx, sleep_sql, 1, params, query_done, job, NULL);
  if (rc == 0)
    started(ctx, job);
  return rc;
}

typedef struct tx_s {
  rn_job_t *job;
  char seconds[16];
} tx_t;

static int tx_body(rn_db_tx_t *tx, void *data) {
  tx_t *t = data;
  const char *params[] = {t->seconds};
  return host->db_tx_exec(tx, sleep_sql, 1, params, NULL);
}

static void tx_done(rn_ctx_t *ctx, int status, void *data) {
  tx_t *t = data;
  rn_job_t *job = t->job;
  host->free(t);
  finish(ctx, job, "transaction", status);
}

static int tx_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  /* The body runs on a worker thread: it gets its own copy. */
  tx_t *t = host->calloc(1, sizeof *t);
  if (!t)
    return RN_ENOMEM;
  t->job = job;
  snprintf(t->seconds, sizeof t->seconds, "%s", seconds_of(job));
  int rc = host->db_transaction(ctx, tx_body, tx_done, t, NULL);
  if (rc < 0) {
    host->free(t);
    return rc;
  }
  started(ctx, job);
  return 0;
}

/* ------------------------------------------------------- descriptor */

#define JOB(id, what, opts)                                                    \
  static const rn_job_def_t id##_job = {                                       \
      .struct_size = sizeof(rn_job_def_t),                                     \
      .name = #id,                                                             \
      .summary = "waits on " what "; has no cancel hook",                      \
      .options = opts,                                                         \
      .run = id##_run,                                                         \
  }
JOB(http, "an HTTP request", http_options);
JOB(timer, "a timer", timer_options);
JOB(work, "a thread-pool work item", work_options);
JOB(query, "SELECT pg_sleep(seconds)", db_options);
JOB(tx, "a transaction running SELECT pg_sleep(seconds)", db_options);

static const rn_job_def_t *const jobs[] = {&http_job,  &timer_job, &work_job,
                                           &query_job, &tx_job,    NULL};

static const rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "stubborn",
    .version = "1",
    .summary = "jobs that ignore cancellation",
    .options = plugin_options,
    .create = stubborn_create,
    .destroy = stubborn_destroy,
    .jobs = jobs,
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  return &descriptor;
}
