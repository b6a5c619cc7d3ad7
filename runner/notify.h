/*
 * notify.h - tells the service manager what the daemon is doing, through
 * sd_notify(3): ready once serving, reloading around a SIGHUP, stopping on
 * drain, and a watchdog ping from the loop when WatchdogSec= is set. Each
 * call is a no-op when the daemon does not run under systemd.
 */
#ifndef RN_NOTIFY_H
#define RN_NOTIFY_H

#include "internal.h"

/* READY=1 and, when the unit sets WatchdogSec=, starts pinging from the
 * loop at half that interval. */
void rn__notify_ready(rn__runner_t *runner);
void rn__notify_reloading(void);
void rn__notify_reloaded(void);
void rn__notify_stopping(void);
/* Stops the watchdog and closes its timer; the loop must then run. */
void rn__notify_close(rn__runner_t *runner);

#endif
