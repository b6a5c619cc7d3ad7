/* scheduler.c - turns cron ticks of enabled jobs into runs.
 *
 * One timer wakes at the next minute boundary of the runner's clock; each
 * job whose expression matches that minute gets one tick, handed to
 * runner->dispatch_tick (in-process here; the durable queue plugs in the
 * same way). A job whose previous run is still going skips the tick, so a
 * slow job never piles up copies of itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct rn__scheduler_s {
  rn__runner_t *runner;
  uv_timer_t timer;
  int64_t last_tick_s; /* the last minute handled */
  char **running;      /* names of configured jobs with a run in flight */
  size_t nrunning;
};

static bool is_running(rn__scheduler_t *s, const char *name) {
  for (size_t i = 0; i < s->nrunning; i++)
    if (strcmp(s->running[i], name) == 0)
      return true;
  return false;
}

static void mark_running(rn__scheduler_t *s, const char *name, bool on) {
  if (on) {
    char **grown = realloc(s->running, (s->nrunning + 1) * sizeof *grown);
    char *copy = strdup(name);
    if (!grown || !copy)
      abort();
    s->running = grown;
    s->running[s->nrunning++] = copy;
    return;
  }
  for (size_t i = 0; i < s->nrunning; i++) {
    if (strcmp(s->running[i], name) == 0) {
      free(s->running[i]);
      s->running[i] = s->running[--s->nrunning];
      return;
    }
  }
}

typedef struct scheduled_run_s {
  rn__runner_t *runner;
  char *name;
  int64_t tick_s;
} scheduled_run_t;

static void scheduled_done(rn_job_t *job, int status, const char *result_json,
                           const char *summary, void *data) {
  scheduled_run_t *run = data;
  (void)result_json;
  rn__log(status < 0 ? RN_LOG_WARNING : RN_LOG_INFO, job->qualified_name,
          "run of %s for tick %lld %s%s%s", run->name, (long long)run->tick_s,
          status < 0 ? "failed: " : "done",
          status < 0 ? rn__strerror(status) : (summary ? ": " : ""),
          status < 0 ? "" : (summary ? summary : ""));
  if (run->runner->scheduler)
    mark_running(run->runner->scheduler, run->name, false);
  free(run->name);
  free(run);
}

/* The in-process dispatcher: run the job right here. */
static int dispatch_in_process(rn__runner_t *runner, rn__gen_job_t *job,
                               int64_t tick_s) {
  scheduled_run_t *run = calloc(1, sizeof *run);
  if (!run)
    return RN_ENOMEM;
  run->runner = runner;
  run->name = strdup(job->conf->name);
  run->tick_s = tick_s;
  char err[1024];
  int rc = rn__run_in_process(runner, job, NULL, 0, scheduled_done, run, err,
                              sizeof err);
  if (rc < 0) {
    rn__log(RN_LOG_ERR, job->conf->name, "tick %lld not run: %s",
            (long long)tick_s, err);
    free(run->name);
    free(run);
    return rc;
  }
  mark_running(runner->scheduler, job->conf->name, true);
  return 0;
}

int rn__run_in_process(rn__runner_t *runner, rn__gen_job_t *job,
                       const char *params_json, int64_t queue_id,
                       rn__job_done_cb done, void *data, char *err,
                       size_t errlen) {
  (void)runner;
  if (!job->valid) {
    snprintf(err, errlen, "job %s is not valid (see its configuration)",
             job->conf->name);
    return RN_ECONFIG;
  }
  rn__job_start_t start = {.plugin = job->plugin,
                           .def = job->def,
                           .conf = job->conf,
                           .options = &job->options,
                           .params_json = params_json,
                           .queue_id = queue_id,
                           .done = done,
                           .done_data = data};
  return rn__job_start(&start, err, errlen);
}

static void arm(rn__scheduler_t *s);

/* The latest minute in (after, upto] that cron matches, or -1. */
static int64_t latest_match(const rn__cron_t *cron, int64_t after,
                            int64_t upto) {
  int64_t found = -1;
  for (int64_t t = rn__cron_next(cron, after); t > 0 && t <= upto;
       t = rn__cron_next(cron, t))
    found = t;
  return found;
}

static void on_tick(uv_timer_t *timer) {
  rn__scheduler_t *s = timer->data;
  rn__runner_t *runner = s->runner;
  int64_t now_s = rn__now_ms(runner) / 1000;
  int64_t minute = now_s - now_s % 60;
  /* Each minute boundary is handled once, even if the timer fires early
   * or late. After a stall (a busy loop, a paused process, a clock step)
   * the minutes it skipped are caught up, each job once at its latest
   * missed tick (missed_runs = once, as after downtime), as cron does for a
   * short jump; ticks older than RN__SCHED_CATCH_UP_S are let go. */
  if (minute > s->last_tick_s && runner->gen && !runner->stopping) {
    int64_t from = s->last_tick_s;
    if (minute - from > RN__SCHED_CATCH_UP_S) {
      rn__log(RN_LOG_WARNING, NULL,
              "the scheduler missed %lld minute(s); ticks older than %d "
              "minutes are not caught up",
              (long long)((minute - from) / 60 - 1),
              RN__SCHED_CATCH_UP_S / 60);
      from = minute - RN__SCHED_CATCH_UP_S;
    }
    s->last_tick_s = minute;
    rn__generation_t *gen = runner->gen;
    for (size_t i = 0; i < gen->njobs; i++) {
      rn__gen_job_t *job = &gen->jobs[i];
      if (!job->valid || !job->conf->enabled || !job->conf->schedule)
        continue;
      int64_t tick =
          job->conf->missed_runs_skip
              ? latest_match(&job->conf->cron, minute - 1, minute)
              : latest_match(&job->conf->cron, from, minute);
      if (tick < 0)
        continue;
      if (is_running(s, job->conf->name)) {
        rn__log(RN_LOG_WARNING, job->conf->name,
                "tick %lld skipped: the previous run is still going",
                (long long)tick);
        continue;
      }
      if (tick < minute)
        rn__log(RN_LOG_NOTICE, job->conf->name,
                "tick %lld caught up %lld s late (missed_runs = once)",
                (long long)tick,
                (long long)(now_s - tick));
      runner->dispatch_tick(runner, job, tick);
    }
  }
  arm(s);
}

static void arm(rn__scheduler_t *s) {
  int64_t now_ms = rn__now_ms(s->runner);
  int64_t next_minute_ms = (now_ms / 60000 + 1) * 60000;
  uv_timer_start(&s->timer, on_tick,
                 rn__real_delay_ms(s->runner, next_minute_ms), 0);
}

int rn__scheduler_start(rn__runner_t *runner) {
  rn__scheduler_t *s = calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  s->runner = runner;
  int64_t now_s = rn__now_ms(runner) / 1000;
  s->last_tick_s = now_s - now_s % 60; /* the current minute has begun */
  uv_timer_init(runner->loop, &s->timer);
  s->timer.data = s;
  if (!runner->dispatch_tick)
    runner->dispatch_tick = dispatch_in_process;
  runner->scheduler = s;
  arm(s);
  return 0;
}

static void scheduler_closed(uv_handle_t *handle) {
  rn__scheduler_t *s = handle->data;
  for (size_t i = 0; i < s->nrunning; i++)
    free(s->running[i]);
  free(s->running);
  free(s);
}

void rn__scheduler_stop(rn__runner_t *runner) {
  rn__scheduler_t *s = runner->scheduler;
  if (!s)
    return;
  runner->scheduler = NULL;
  uv_close((uv_handle_t *)&s->timer, scheduler_closed);
}
