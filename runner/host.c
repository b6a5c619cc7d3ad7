/* host.c - the table of services handed to plugins, and the small services
 * (logging, memory, config, clock, timers, thread-pool work) that need no
 * module of their own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "progress.h"

static void host_logv(rn_ctx_t *ctx, int level, const char *fmt, va_list ap) {
  rn__logv(level, ctx && ctx->plugin ? ctx->plugin->name : NULL, fmt, ap);
}

static void host_log(rn_ctx_t *ctx, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  host_logv(ctx, level, fmt, ap);
  va_end(ap);
}

static const rn__opt_value_t *find_value(const rn_config_t *config,
                                         const char *name) {
  for (size_t i = 0; config && i < config->count; i++)
    if (strcmp(config->values[i].option->name, name) == 0)
      return &config->values[i];
  return NULL;
}

static const char *config_str(const rn_config_t *config, const char *name) {
  const rn__opt_value_t *v = find_value(config, name);
  return v ? v->text : NULL;
}

static int64_t config_int(const rn_config_t *config, const char *name) {
  const rn__opt_value_t *v = find_value(config, name);
  return v && v->text ? v->number : 0;
}

static const rn_config_t *job_config(rn_job_t *job) { return job->options; }
static const char *job_name(rn_job_t *job) { return job->qualified_name; }
static const char *job_params(rn_job_t *job) { return job->params_json; }
static void job_set_data(rn_job_t *job, void *data) { job->plugin_data = data; }
static void *job_data(rn_job_t *job) { return job->plugin_data; }

static int job_emit(rn_job_t *job, const char *event, const char *payload,
                    const rn_emit_opts_t *opts) {
  rn__runner_t *runner = job->plugin->ctx.runner;
  char err[512] = "";
  /* A run claimed from the queue emits with its completion. */
  if (job->queue_id && runner->queue)
    return rn__queue_job_emit(job, event, payload, opts);
  if (!runner->emit)
    return RN_ENOSYS;
  int rc = runner->emit(runner, event, payload, opts, err, sizeof err);
  if (rc < 0)
    rn__log(RN_LOG_ERR, job->qualified_name, "emit %s refused: %s", event,
            err[0] ? err : rn__strerror(rc));
  return rc;
}

int64_t rn__real_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rn__now_ms(const rn__runner_t *runner) {
  int64_t real = rn__real_now_ms();
  if (!runner || !runner->clock_fake_start_ms)
    return real;
  return runner->clock_fake_start_ms +
         (int64_t)((double)(real - runner->clock_real_start_ms) *
                   runner->clock_scale);
}

uint64_t rn__real_delay_ms(const rn__runner_t *runner, int64_t when_ms) {
  int64_t ahead = when_ms - rn__now_ms(runner);
  if (ahead <= 0)
    return 0;
  double scale = runner->clock_fake_start_ms ? runner->clock_scale : 1.0;
  return (uint64_t)((double)ahead / scale) + 1;
}

static int64_t now_ms(rn_ctx_t *ctx) { return rn__now_ms(ctx->runner); }

/* ------------------------------------------------------------- timers */

typedef struct timer_req_s {
  rn_req_t req;
  uv_timer_t timer;
  rn_timer_cb cb;
  void *data;
  int status;
} timer_req_t;

static void timer_closed(uv_handle_t *handle) {
  free(rn__container_of(handle, timer_req_t, timer));
}

static void timer_fired(uv_timer_t *handle) {
  timer_req_t *t = rn__container_of(handle, timer_req_t, timer);
  rn__req_enter(&t->req);
  t->cb(t->req.ctx, t->status, t->data);
  rn__req_finish(&t->req);
  uv_close((uv_handle_t *)&t->timer, timer_closed);
}

static void timer_cancel(rn_req_t *req) {
  timer_req_t *t = rn__container_of(req, timer_req_t, req);
  if (t->status == RN_ECANCELED)
    return;
  /* Deliver the cancellation from the loop, not inside cancel(). */
  t->status = RN_ECANCELED;
  uv_timer_start(&t->timer, timer_fired, 0, 0);
}

static int timer_start(rn_ctx_t *ctx, uint64_t timeout_ms, rn_timer_cb cb,
                       void *data, rn_req_t **req) {
  if (!cb)
    return RN_EINVAL;
  int rc = rn__req_admit(ctx);
  if (rc < 0)
    return rc;
  timer_req_t *t = calloc(1, sizeof *t);
  if (!t)
    return RN_ENOMEM;
  t->cb = cb;
  t->data = data;
  uv_timer_init(ctx->runner->loop, &t->timer);
  uv_timer_start(&t->timer, timer_fired, timeout_ms, 0);
  rn__req_start(ctx, &t->req, timer_cancel);
  if (req)
    *req = &t->req;
  return 0;
}

/* -------------------------------------------------------- thread pool */

typedef struct work_req_s {
  rn_req_t req;
  uv_work_t work;
  rn_work_fn fn;
  rn_status_cb done;
  void *data;
} work_req_t;

static void work_run(uv_work_t *w) {
  work_req_t *r = rn__container_of(w, work_req_t, work);
  r->fn(r->data);
}

static void work_after(uv_work_t *w, int status) {
  work_req_t *r = rn__container_of(w, work_req_t, work);
  /* A run the host already ended is still current here, and still
   * allocated: this request held it and its generation until now. */
  rn__req_enter(&r->req);
  r->done(r->req.ctx, status == UV_ECANCELED ? RN_ECANCELED : 0, r->data);
  rn__req_finish(&r->req);
  free(r);
}

static void work_cancel(rn_req_t *req) {
  work_req_t *r = rn__container_of(req, work_req_t, req);
  /* Succeeds only before a worker picked it up; otherwise it runs out. */
  uv_cancel((uv_req_t *)&r->work);
}

static int work_queue(rn_ctx_t *ctx, rn_work_fn fn, rn_status_cb done,
                      void *data, rn_req_t **req) {
  if (!fn || !done)
    return RN_EINVAL;
  int rc = rn__req_admit(ctx);
  if (rc < 0)
    return rc;
  work_req_t *r = calloc(1, sizeof *r);
  if (!r)
    return RN_ENOMEM;
  r->fn = fn;
  r->done = done;
  r->data = data;
  rc = uv_queue_work(ctx->runner->loop, &r->work, work_run, work_after);
  if (rc < 0) {
    free(r);
    return rn__from_uv(rc);
  }
  rn__req_start(ctx, &r->req, work_cancel);
  rn__req_on_pool(&r->req);
  if (req)
    *req = &r->req;
  return 0;
}

static int host_cancel(rn_req_t *req) {
  if (!req || !req->cancel)
    return RN_EINVAL;
  req->cancel(req);
  return 0;
}

/* ------------------------------------------------------------ secrets */

static int secret_seal(rn_ctx_t *ctx, const char *plain, size_t len,
                       char **sealed) {
  if (!ctx->runner->secrets)
    return RN_ENOSYS;
  return rn__secret_seal(ctx->runner->secrets, plain, len, sealed);
}

static int secret_open(rn_ctx_t *ctx, const char *sealed, char **plain,
                       size_t *len) {
  if (!ctx->runner->secrets)
    return RN_ENOSYS;
  return rn__secret_open(ctx->runner->secrets, sealed, plain, len);
}

static void secret_free(char *plain, size_t len) {
  rn__secret_wipe(plain, len + 1);
}

/* ------------------------------------------------------ token cache */

/* Short-lived secrets shared by every plugin of the process (OAuth tokens):
 * one entry per caller's key, with a claim so only one caller fetches. */
#define TOKEN_CLAIM_MS 120000

typedef struct token_entry_s {
  struct token_entry_s *next;
  char *key;
  char *value; /* wiped when replaced or freed */
  size_t len;
  int64_t until_ms;
  int64_t claim_until_ms; /* 0 = nobody fetching */
} token_entry_t;

struct rn__tokens_s {
  token_entry_t *head;
};

static void token_value_clear(token_entry_t *e) {
  if (e->value)
    rn__secret_wipe(e->value, e->len + 1);
  e->value = NULL;
  e->len = 0;
  e->until_ms = 0;
}

static token_entry_t *token_entry(rn__runner_t *runner, const char *key,
                                  bool create) {
  if (!runner->tokens) {
    if (!create)
      return NULL;
    runner->tokens = calloc(1, sizeof *runner->tokens);
    if (!runner->tokens)
      return NULL;
  }
  for (token_entry_t *e = runner->tokens->head; e; e = e->next)
    if (strcmp(e->key, key) == 0)
      return e;
  if (!create)
    return NULL;
  token_entry_t *e = calloc(1, sizeof *e);
  if (!e || !(e->key = strdup(key))) {
    free(e);
    return NULL;
  }
  e->next = runner->tokens->head;
  runner->tokens->head = e;
  return e;
}

static int token_get(rn_ctx_t *ctx, const char *key, char **value, size_t *len,
                     int64_t *until_ms) {
  if (!key || !value || !len)
    return RN_EINVAL;
  token_entry_t *e = token_entry(ctx->runner, key, true);
  if (!e)
    return RN_ENOMEM;
  int64_t now = rn__now_ms(ctx->runner);
  if (e->value && now < e->until_ms) {
    char *copy = malloc(e->len + 1);
    if (!copy)
      return RN_ENOMEM;
    memcpy(copy, e->value, e->len + 1);
    *value = copy;
    *len = e->len;
    if (until_ms)
      *until_ms = e->until_ms;
    return 0;
  }
  token_value_clear(e);
  if (e->claim_until_ms && now < e->claim_until_ms)
    return RN_EBUSY;
  e->claim_until_ms = now + TOKEN_CLAIM_MS;
  return RN_ENOENT;
}

static int token_put(rn_ctx_t *ctx, const char *key, const char *value,
                     size_t len, int64_t until_ms) {
  if (!key)
    return RN_EINVAL;
  token_entry_t *e = token_entry(ctx->runner, key, value != NULL);
  if (!e)
    return value ? RN_ENOMEM : 0;
  e->claim_until_ms = 0;
  if (!value)
    return 0;
  char *copy = malloc(len + 1);
  if (!copy)
    return RN_ENOMEM;
  memcpy(copy, value, len);
  copy[len] = '\0';
  token_value_clear(e);
  e->value = copy;
  e->len = len;
  e->until_ms = until_ms;
  return 0;
}

static void token_drop(rn_ctx_t *ctx, const char *key, const char *value,
                       size_t len) {
  token_entry_t *e = key ? token_entry(ctx->runner, key, false) : NULL;
  if (e && e->value &&
      (!value || (len == e->len && memcmp(value, e->value, len) == 0)))
    token_value_clear(e);
}

void rn__tokens_close(rn__runner_t *runner) {
  if (!runner->tokens)
    return;
  token_entry_t *e = runner->tokens->head;
  while (e) {
    token_entry_t *next = e->next;
    token_value_clear(e);
    free(e->key);
    free(e);
    e = next;
  }
  free(runner->tokens);
  runner->tokens = NULL;
}

static rn_host_t host_table;

const rn_host_t *rn__host(void) {
  if (host_table.struct_size)
    return &host_table;
  host_table = (rn_host_t){
      .abi_version = RN_ABI_VERSION,
      .struct_size = sizeof(rn_host_t),
      .log = host_log,
      .logv = host_logv,
      .strerror = rn__strerror,
      .err_name = rn__err_name,
      .alloc = malloc,
      .calloc = calloc,
      .realloc = realloc,
      .free = free,
      .strdup = strdup,
      .config_str = config_str,
      .config_int = config_int,
      .job_config = job_config,
      .job_name = job_name,
      .job_params = job_params,
      .job_secret = rn__host_job_secret,
      .job_set_data = job_set_data,
      .job_data = job_data,
      .job_complete = rn__host_job_complete,
      .emit = job_emit,
      .now_ms = now_ms,
      .timer_start = timer_start,
      .work_queue = work_queue,
      .cancel = host_cancel,
      .secret_seal = secret_seal,
      .secret_open = secret_open,
      .secret_free = secret_free,
      .token_get = token_get,
      .token_put = token_put,
      .token_drop = token_drop,
      .progress = rn__progress_report,
  };
  rn__http_fill_host(&host_table);
  rn__slots_fill_host(&host_table);
  rn__db_fill_host(&host_table);
  return &host_table;
}
