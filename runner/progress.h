/*
 * progress.h - live progress of a command's job on a terminal: the
 * plugins' reports (host->progress, ABI 1.3) and the host's own request
 * count, as one line on stderr rewritten in place a few times a second.
 *
 * Only an interactive command turns it on; everywhere else (serve, piped
 * stderr, --json, --quiet) reports are dropped and nothing extra is
 * written. There is one stderr per process, so there is one view.
 */
#ifndef RN_PROGRESS_H
#define RN_PROGRESS_H

#include <stddef.h>

#include "internal.h"

/* Starts the view for runner's jobs when stderr is a terminal; otherwise
 * does nothing. Loop thread. */
void rn__progress_start(rn__runner_t *runner);
/* Ends the view: the last state, if anything was reported, stays on its
 * own line. Closes the timer (the loop must run for its close callback).
 * Harmless when not started or already stopped. Loop thread. */
void rn__progress_stop(void);
/* The host->progress slot: copies the report for the next redraw. Any
 * thread; a no-op while no view is on. */
void rn__progress_report(rn_job_t *job, const rn_progress_t *progress);
/* Writes a log line to stderr; with a view on, wipes the drawn line first
 * so the log line is never glued to it (the next redraw puts it back). */
void rn__progress_log_write(const char *line, size_t len);

#endif
