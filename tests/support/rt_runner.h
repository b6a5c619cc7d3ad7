/* rt_runner.h - a runner under test, for Criterion tests: a directory with
 * its plugins, conf.d and runner.conf, its migrated database, and `serve`
 * processes that must stop cleanly. */
#ifndef RT_RUNNER_H
#define RT_RUNNER_H

#include "rt.h"

typedef struct rt_runner_s {
  char dir[256];  /* /tmp/rt-TAG-XXXXXX: plugins/, conf.d/, state/ */
  char conf[300]; /* dir/runner.conf */
} rt_runner_t;

/* Makes the directory: plugins/ with a copy of each of plugins (paths,
 * NULL-terminated; each keeps its file name), and conf.d/ with
 * 10-jobs.conf holding jobs (none when jobs is NULL). */
void rt_runner_prepare(rt_runner_t *r, const char *tag,
                       const char *const plugins[], const char *jobs);
/* Writes runner.conf: [runner] with plugin_dir and state_dir in the
 * directory, then runner_lines; with a database_url, [database] with it,
 * migrations_dir (the runner's and the device-source library's
 * migrations), then database_lines. Lines end with a newline; NULL = none. */
void rt_runner_write_conf(const rt_runner_t *r, const char *runner_lines,
                          const char *database_url, const char *database_lines);
/* `regentra-runner migrate` with the configuration. */
void rt_runner_migrate(const rt_runner_t *r);
/* The table the qprobe plugin records its runs in. */
void rt_qprobe_table(const char *dsn);

/* Starts `serve` with the configuration (env as for rt_proc_start) and,
 * when ready_text is given, waits up to timeout_ms for its log to say it. */
void rt_runner_serve(const rt_runner_t *r, rt_proc_t *p, char *const env[],
                     const char *ready_text, int timeout_ms);
/* Waits up to timeout_ms for p to exit (after a signal the caller sent)
 * and expects status 0 and a log without leaked handles or a sanitizer
 * report. Returns the log (new), for more checks. */
char *rt_runner_expect_clean_exit(rt_proc_t *p, int timeout_ms);
/* SIGTERM, then rt_runner_expect_clean_exit. */
char *rt_runner_stop(rt_proc_t *p, int timeout_ms);
/* For teardown: kills p (SIGKILL) if it still runs. */
void rt_runner_kill(rt_proc_t *p);

/* A loopback TCP port nobody listens on right now. */
int rt_free_port(void);

#endif
