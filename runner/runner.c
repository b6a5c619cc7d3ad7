/* runner.c - the daemon's life: load, serve, reload on SIGHUP, drain and
 * exit on SIGTERM/SIGINT. */
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "notify.h"
#include "db.h"
#include "internal.h"

void rn__malloc_tune(void) {
  /* glibc gives each thread that allocates its own arena, and pages are
   * decoded on every thread of the pool: each arena then keeps a page's
   * worth of freed memory, so peak RSS grew with the pool rather than with
   * the pages held. Two arenas cost no measurable CPU.
   * A page's text (about 1.2 MiB for 1,000 devices) is freed once parsed;
   * glibc then raises its mmap threshold past that size, and later texts
   * land in the heap between long-lived blocks, where they stay. A fixed
   * threshold keeps every text in a mapping of its own, returned on free.
   * The operator's environment (MALLOC_*_, GLIBC_TUNABLES) wins. */
  if (getenv("GLIBC_TUNABLES"))
    return;
  if (!getenv("MALLOC_ARENA_MAX"))
    mallopt(M_ARENA_MAX, RN__MALLOC_ARENAS);
  if (!getenv("MALLOC_MMAP_THRESHOLD_"))
    mallopt(M_MMAP_THRESHOLD, RN__MALLOC_MMAP_THRESHOLD);
  if (!getenv("MALLOC_TRIM_THRESHOLD_"))
    mallopt(M_TRIM_THRESHOLD, RN__MALLOC_TRIM_THRESHOLD);
}

int rn__runner_init(rn__runner_t *runner, uv_loop_t *loop,
                    const char *config_path, const char *confd) {
  memset(runner, 0, sizeof *runner);
  runner->loop = loop;
  runner->config_path = strdup(config_path);
  runner->confd = confd ? strdup(confd) : NULL;
  if (!runner->config_path || (confd && !runner->confd))
    return RN_ENOMEM;
  rn__list_init(&runner->jobs);
  rn__list_init(&runner->pool_reqs);
  const char *start = getenv("REGENTRA_CLOCK_START_MS");
  if (start && *start) {
    runner->clock_real_start_ms = rn__real_now_ms();
    runner->clock_fake_start_ms = strtoll(start, NULL, 10);
    const char *scale = getenv("REGENTRA_CLOCK_SCALE");
    runner->clock_scale = scale && *scale ? strtod(scale, NULL) : 1.0;
    if (runner->clock_scale <= 0)
      runner->clock_scale = 1.0;
    const char *budget = getenv("REGENTRA_CLOCK_SCALE_BUDGET");
    runner->clock_scales_budget = budget && strcmp(budget, "1") == 0;
  }
  return 0;
}

static void log_config_errors(const rn__config_t *config, size_t from) {
  for (size_t i = from; i < config->nerrors; i++)
    rn__log(RN_LOG_ERR, NULL, "%s", config->errors[i]);
}

int rn__runner_load(rn__runner_t *runner) {
  rn__config_t *config = rn__config_load(runner->config_path, runner->confd);
  if (!config)
    return RN_ENOMEM;
  rn__log_set_level(runner->quiet ? RN_LOG_ERR : config->log_level);
  size_t parse_errors = config->nerrors;
  log_config_errors(config, 0);
  if (config->master_key_file) {
    char err[512];
    int rc = rn__secrets_open(config->master_key_file, &runner->secrets, err,
                              sizeof err);
    if (rc < 0)
      rn__config_error(config, config->path, 0, "master_key_file: %s", err);
  }
  rn__generation_t *gen;
  int rc = rn__generation_build(runner, config, &gen);
  if (rc < 0) {
    rn__config_free(config);
    return rc;
  }
  /* Plugin refusals were logged as they happened; log option errors. */
  for (size_t i = parse_errors; i < config->nerrors; i++)
    if (!strstr(config->errors[i], "plugin refused"))
      rn__log(RN_LOG_ERR, NULL, "%s", config->errors[i]);
  runner->gen = gen;
  return (int)config->nerrors;
}

/* ------------------------------------------------------------- reload */

static void reload_now(uv_timer_t *timer);

/* Swaps in a generation built from config (owned here), or keeps the
 * current one when anything is wrong. */
static void reload_apply(rn__runner_t *runner, rn__config_t *config) {
  rn__generation_t *gen = NULL;
  if (config && rn__generation_build(runner, config, &gen) == 0 &&
      config->nerrors == 0) {
    rn__generation_t *old = runner->gen;
    runner->gen = gen;
    rn__log_set_level(config->log_level);
    rn__log(RN_LOG_NOTICE, NULL,
            "reload done: generation %llu serves %zu plugins and %zu jobs; "
            "generation %llu drains",
            (unsigned long long)gen->id, gen->nplugins, gen->njobs,
            (unsigned long long)old->id);
    rn__generation_drain(old, config->drain_timeout_ms);
    rn__generation_retire(old);
    rn__admin_reloaded(runner);
  } else {
    if (config)
      log_config_errors(config, 0);
    rn__log(RN_LOG_ERR, NULL,
            "reload halted: %zu error(s) above; generation %llu keeps "
            "serving unchanged",
            config ? config->nerrors : 1,
            (unsigned long long)runner->gen->id);
    if (gen)
      rn__generation_retire(gen); /* destroys it: nothing references it */
    else
      rn__config_free(config);
  }
}

/* Reading and parsing the files runs on the thread pool, so that a large
 * conf.d never holds up the loop (leases, heartbeats, the admin endpoint);
 * the generation is then built on the loop. */
typedef struct reload_load_s {
  uv_work_t work;
  rn__runner_t *runner;
  rn__config_t *config; /* new; NULL when out of memory */
  const char *gate;     /* borrowed from the environment; NULL when unset */
} reload_load_t;

/* For tests of what the daemon does while a reload is reading its files:
 * when REGENTRA_RELOAD_GATE names an existing FIFO, the read waits there
 * until a writer has opened and closed it. */
static void wait_at_reload_gate(const char *gate) {
  int fd = gate ? open(gate, O_RDONLY | O_CLOEXEC) : -1;
  if (fd < 0)
    return;
  char buf[256];
  while (read(fd, buf, sizeof buf) > 0)
    ;
  close(fd);
}

static void load_config(uv_work_t *work) {
  reload_load_t *load = rn__container_of(work, reload_load_t, work);
  load->config =
      rn__config_load(load->runner->config_path, load->runner->confd);
  wait_at_reload_gate(load->gate);
}

static void config_loaded(uv_work_t *work, int status) {
  reload_load_t *load = rn__container_of(work, reload_load_t, work);
  rn__runner_t *runner = load->runner;
  rn__config_t *config = load->config;
  free(load);
  if (status < 0 || runner->stopping || !runner->gen) {
    rn__config_free(config); /* stopping: nothing to reload into */
    runner->reloading = false;
    return;
  }
  reload_apply(runner, config);
  runner->reloading = false;
  rn__notify_reloaded();
  /* A SIGHUP that arrived meanwhile asked for one more reload. */
  if (runner->reload_pending)
    uv_timer_start(&runner->reload_timer, reload_now, 0, 0);
}

static void reload_now(uv_timer_t *timer) {
  rn__runner_t *runner = timer->data;
  runner->reload_pending = false;
  if (runner->stopping)
    return;
  rn__notify_reloading();
  rn__log(RN_LOG_NOTICE, NULL, "reloading configuration and plugins");
  reload_load_t *load = calloc(1, sizeof *load);
  int rc = UV_ENOMEM;
  if (load) {
    load->runner = runner;
    const char *gate = getenv("REGENTRA_RELOAD_GATE");
    load->gate = gate && *gate ? gate : NULL;
    rc = uv_queue_work(runner->loop, &load->work, load_config, config_loaded);
  }
  if (rc < 0) {
    free(load);
    rn__log(RN_LOG_ERR, NULL,
            "reload halted: cannot start reading the configuration: %s; "
            "generation %llu keeps serving unchanged",
            uv_strerror(rc), (unsigned long long)runner->gen->id);
    rn__notify_reloaded();
    return;
  }
  runner->reloading = true;
}

static void on_sighup(uv_signal_t *handle, int signum) {
  rn__runner_t *runner = handle->data;
  (void)signum;
  if (runner->reload_pending || runner->stopping)
    return; /* coalesced into the reload already due */
  runner->reload_pending = true;
  if (!runner->reloading)
    uv_timer_start(&runner->reload_timer, reload_now, 0, 0);
}

/* ----------------------------------------------------------- shutdown */

static void close_walk(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

/* Work on the thread pool cannot be stopped once a worker runs it, and
 * libuv joins its workers at exit: work that never returns would keep a
 * stopped runner alive for ever. It gets cancel_grace more; then the runner
 * leaves without it. Its jobs are already recorded as ended, and a
 * transaction it holds rolls back with its connection. */
static void exit_poll(uv_timer_t *timer) {
  rn__runner_t *runner = timer->data;
  if (rn__list_empty(&runner->pool_reqs)) {
    uv_close((uv_handle_t *)timer, NULL);
    return;
  }
  if (uv_now(runner->loop) < runner->exit_deadline)
    return;
  unsigned n = 0;
  for (rn__list_t *l = runner->pool_reqs.next; l != &runner->pool_reqs;
       l = l->next, n++) {
    rn_req_t *req = rn__container_of(l, rn_req_t, pool_link);
    rn__log(RN_LOG_WARNING, req->ctx->plugin->name,
            "%s%swork on a worker thread is still running; not waiting for "
            "it",
            req->job ? req->job->qualified_name : "", req->job ? ": " : "");
  }
  rn__log(RN_LOG_WARNING, NULL,
          "exiting with %u work item(s) still on worker threads", n);
  _exit(runner->exit_code);
}

static void finish(rn__runner_t *runner) {
  /* The db first: it fails what is still in flight to the queue, which
   * then frees what it holds. */
  rn__db_close(runner);
  rn__queue_close(runner);
  rn__admin_close(runner);
  /* No job is left; what the plugins still wait on (their own timers)
   * would keep the loop alive. */
  if (runner->gen)
    rn__generation_cancel_leftovers(runner->gen);
  rn__log(RN_LOG_NOTICE, NULL, "stopped");
  uv_close((uv_handle_t *)&runner->sighup, NULL);
  uv_close((uv_handle_t *)&runner->sigterm, NULL);
  uv_close((uv_handle_t *)&runner->sigint, NULL);
  uv_close((uv_handle_t *)&runner->reload_timer, NULL);
  uv_close((uv_handle_t *)&runner->drain_timer, NULL);
  runner->exit_deadline =
      uv_now(runner->loop) +
      (runner->gen ? runner->gen->config->cancel_grace_ms : 0);
  uv_timer_start(&runner->exit_timer, exit_poll, 0, 50);
}


/* Polled while draining: finish when the last job is done; cancel what is
 * left at the deadline. */
static void drain_poll(uv_timer_t *timer) {
  rn__runner_t *runner = timer->data;
  if (runner->running_jobs == 0 && rn__queue_idle(runner)) {
    uv_timer_stop(timer);
    finish(runner);
    return;
  }
  if (runner->drain_cancelled || uv_now(runner->loop) < runner->drain_deadline)
    return;
  runner->drain_cancelled = true;
  rn__log(RN_LOG_WARNING, NULL,
          "drain deadline reached with %u job(s) running; cancelling them",
          runner->running_jobs);
  rn__list_t *n = runner->jobs.next;
  while (n != &runner->jobs) {
    rn__list_t *next = n->next;
    rn__job_cancel(rn__container_of(n, rn_job_t, link));
    n = next;
  }
}

static void on_stop_signal(uv_signal_t *handle, int signum) {
  rn__runner_t *runner = handle->data;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  if (runner->stopping) {
    rn__log(RN_LOG_WARNING, NULL, "%s again: still draining", name);
    return;
  }
  runner->stopping = true;
  rn__notify_stopping();
  rn__scheduler_stop(runner);
  rn__queue_stop(runner);
  uv_timer_stop(&runner->reload_timer);
  uint64_t grace = runner->gen->config->drain_timeout_ms;
  /* Jobs cancelled at the deadline end within cancel_grace: by their
   * plugin, or by the host. */
  rn__log(RN_LOG_NOTICE, NULL,
          "%s: stopping; %u job(s) running, waiting up to %llu ms, then "
          "cancelling them (%llu ms more at most)",
          name, runner->running_jobs, (unsigned long long)grace,
          (unsigned long long)runner->gen->config->cancel_grace_ms);
  runner->drain_deadline = uv_now(runner->loop) + grace;
  uv_timer_start(&runner->drain_timer, drain_poll, 0, 50);
}

int rn__runner_serve(rn__runner_t *runner) {
  uv_loop_t *loop = runner->loop;
  uv_signal_init(loop, &runner->sighup);
  uv_signal_init(loop, &runner->sigterm);
  uv_signal_init(loop, &runner->sigint);
  uv_timer_init(loop, &runner->reload_timer);
  uv_timer_init(loop, &runner->drain_timer);
  uv_timer_init(loop, &runner->exit_timer);
  runner->exit_timer.data = runner;
  runner->sighup.data = runner->sigterm.data = runner->sigint.data = runner;
  runner->reload_timer.data = runner->drain_timer.data = runner;
  uv_signal_start(&runner->sighup, on_sighup, SIGHUP);
  uv_signal_start(&runner->sigterm, on_stop_signal, SIGTERM);
  uv_signal_start(&runner->sigint, on_stop_signal, SIGINT);
  int arc = rn__admin_start(runner);
  if (arc < 0)
    return arc;
  const char *url = runner->gen->config->database_url;
  if (url && *url) {
    int qrc = rn__queue_start(runner);
    if (qrc < 0)
      return qrc;
  }
  int rc = rn__scheduler_start(runner);
  if (rc < 0)
    return rc;
  rn__log(RN_LOG_NOTICE, NULL, "serving: %zu plugin(s), %zu job(s)",
          runner->gen->nplugins, runner->gen->njobs);
  rn__notify_ready(runner);
  uv_run(loop, UV_RUN_DEFAULT);
  return runner->exit_code;
}

void rn__runner_close(rn__runner_t *runner) {
  if (runner->gen) {
    rn__generation_retire(runner->gen);
    runner->gen = NULL;
  }
  rn__http_close(runner); /* cancels requests still in flight */
  rn__db_close(runner);    /* likewise, then the queue frees its runs */
  rn__queue_close(runner);
  rn__admin_close(runner);
  rn__notify_close(runner);
  /* Let close callbacks and the last completions run. */
  uv_run(runner->loop, UV_RUN_DEFAULT);
  uv_walk(runner->loop, close_walk, NULL);
  uv_run(runner->loop, UV_RUN_DEFAULT);
  rn__secrets_close(runner->secrets);
  runner->secrets = NULL;
  rn__tokens_close(runner);
  rn__slots_close(runner);
  free(runner->config_path);
  free(runner->confd);
}
