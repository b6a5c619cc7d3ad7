/* rt_cadence.h - the shipped NinjaOne cadences under `serve` on a sped-up
 * clock, as test_ninjaone_plan, test_ninjaone_budget and bench_cadence run
 * them: runner.conf, conf.d, the clock's environment, the bulk map of a
 * generated fleet and the simulator's figures per tenant. No Criterion:
 * files are written or the program aborts; callers check what is
 * returned. Needs RT_RUNNER, RT_PLUGIN_DIR and RT_SOURCE_DIR. */
#ifndef RT_CADENCE_H
#define RT_CADENCE_H

#include <jansson.h>
#include <stdbool.h>

#include "rt.h"

/* Writes runner.conf at conf: [runner] with the build's plugins, state in
 * dir, key_file as master key, log_level warning and runner_extra (lines
 * ending in a newline, or NULL); one [source "ninjaone"] profile with
 * region eu on the simulator's port and the budget (per_minute, per_hour);
 * [database] with dsn, the runner's migrations and a 200 ms poll. */
void rt_cadence_write_conf(const char *conf, const char *dir,
                           const char *key_file, int sim_port,
                           long per_minute, long per_hour, const char *dsn,
                           const char *runner_extra);

/* The jobs rt_cadence_write_confd writes, as shipped. */
enum {
  RT_CADENCE_SYNC = 1,     /* 20-assets.conf: the asset sync at :15 every 4 h */
  RT_CADENCE_SWEEP = 2,    /* 30-evidence.conf: the sweep at :30 every 6 h */
  RT_CADENCE_SWEEP_OFF = 4 /* the same, with enabled = false */
};
/* Makes the directory confd (it may exist) and writes the jobs of which
 * there; a job left out has its file removed. */
void rt_cadence_write_confd(const char *confd, int which);

/* The environment of `serve` on a sped-up clock: db_env (may be NULL),
 * REGENTRA_CLOCK_START_MS and REGENTRA_CLOCK_SCALE, and with scale_budget
 * REGENTRA_CLOCK_SCALE_BUDGET=1 (the budget's windows shrink alike).
 * Returns c->env, NULL-terminated, valid as long as c. */
typedef struct rt_clock_env_s {
  char start[64];
  char scale[64];
  char *env[5];
} rt_clock_env_t;
char **rt_clock_env(rt_clock_env_t *c, char *db_env, long long start_ms,
                    double scale, bool scale_budget);

/* Starts `RT_RUNNER serve -c conf -d confd` on the sped-up clock (see
 * rt_clock_env). */
void rt_cadence_serve(rt_proc_t *p, const char *conf, const char *confd,
                      char *db_env, long long start_ms, double scale,
                      bool scale_budget);

/* Promotes every organization of the MSP msp's mappings to a customer
 * with a portal company, and writes the CSV `ninjaone map --from-file
 * PATH --apply` maps them all with; returns the number of rows (0 when
 * there is none). */
long rt_cadence_map_file(const char *dsn, long long msp, const char *path);

/* Waits (up to timeout_ms) until at least want jobs named name are in one
 * of states (an SQL list: "'completed'", "'completed', 'dead'"). */
bool rt_cadence_wait_jobs(const char *dsn, const char *name,
                          const char *states, long want, int timeout_ms);

/* A figure of tenant (region) in the simulator's /_sim/stats (0 when
 * absent). */
long long rt_sim_tenant_stat(json_t *stats, const char *tenant,
                             const char *key);

#endif
