/* notify.c - sd_notify(3) from the loop: see notify.h. */
#include "notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

static uv_timer_t watchdog;
static bool watchdog_started;

static void ping(uv_timer_t *timer) {
  (void)timer;
  sd_notify(0, "WATCHDOG=1");
}

void rn__notify_ready(rn__runner_t *runner) {
  sd_notifyf(0, "READY=1\nSTATUS=serving %zu plugin(s), %zu job(s)",
             runner->gen->nplugins, runner->gen->njobs);
  uint64_t usec = 0;
  if (watchdog_started || sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
    return;
  uint64_t every_ms = usec / 2000 ? usec / 2000 : 1;
  uv_timer_init(runner->loop, &watchdog);
  uv_timer_start(&watchdog, ping, every_ms, every_ms);
  /* The ping proves the loop turns; it must not keep the loop alive. */
  uv_unref((uv_handle_t *)&watchdog);
  watchdog_started = true;
}

void rn__notify_reloading(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  /* MONOTONIC_USEC lets systemd 253+ match this to its own reload. */
  sd_notifyf(0, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
             (unsigned long long)now.tv_sec * 1000000ULL +
                 (unsigned long long)now.tv_nsec / 1000ULL);
}

void rn__notify_reloaded(void) { sd_notify(0, "READY=1\nSTATUS=serving"); }

void rn__notify_stopping(void) {
  sd_notify(0, "STOPPING=1\nSTATUS=draining running jobs");
}

void rn__notify_close(rn__runner_t *runner) {
  (void)runner;
  if (!watchdog_started)
    return;
  uv_timer_stop(&watchdog);
  uv_close((uv_handle_t *)&watchdog, NULL);
  watchdog_started = false;
}
