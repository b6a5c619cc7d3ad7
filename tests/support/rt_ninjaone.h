/* rt_ninjaone.h - end-to-end NinjaOne tests: the simulator as a child
 * process, the runner's configuration, a fresh database and
 * `regentra-runner ninjaone ...` runs. Criterion tests only: the helpers
 * report through cr_assert / cr_expect. Needs SIM_BINARY, RT_RUNNER,
 * RT_PLUGIN_DIR and RT_SOURCE_DIR. */
#ifndef RT_NINJAONE_H
#define RT_NINJAONE_H

#include <stdbool.h>

#include "rt.h"

/* The NinjaOne simulator on a port of its own choosing. */
typedef struct rt_sim_s {
  rt_proc_t proc;
  int port;
} rt_sim_t;

/* Starts `SIM_BINARY --port 0 ARGS` (args: words separated by spaces) and
 * waits for its "port=" line. */
void rt_sim_start(rt_sim_t *sim, const char *args);
/* SIGTERM and wait; does nothing if it is not running. */
void rt_sim_stop(rt_sim_t *sim);
/* The body of GET /_sim/stats (new; NULL if unreachable). */
char *rt_sim_stats(const rt_sim_t *sim);
/* POSTs json_body to /_sim/<what>; returns curl's exit status, the
 * response body into *out (new; may pass NULL). */
int rt_sim_post(const rt_sim_t *sim, const char *what, const char *json_body,
                char **out);

/* One test's world: a temp dir with runner.conf, the client secret and the
 * master key; a fresh database; the simulator. */
typedef struct rt_nj_s {
  char dir[256];
  char conf[300];
  char secret_file[300];
  char key_file[300];
  char db_env[700]; /* REGENTRA_DATABASE_URL=... */
  const char *dsn;
  const char *secret;       /* no command may ever print it */
  const char *env[4];       /* more "K=V" for every run, NULL-terminated */
  bool no_sanitizer_report; /* also expect none on a run's stderr */
  rt_sim_t sim;
} rt_nj_t;

/* Makes the temp dir (tag names it), writes secret and the master key
 * line ("VERSION HEX") with mode 0600, creates a database with the
 * platform migrations and starts the simulator with sim_args. */
void rt_nj_setup(rt_nj_t *h, const char *tag, const char *secret,
                 const char *master_key, const char *sim_args);
/* Stops the simulator and removes the temp dir. */
void rt_nj_teardown(rt_nj_t *h);

/* Writes h->conf: the [runner] section, the [source "ninjaone"] section
 * with base_url_<region> for each of regions ("eu us") pointing at the
 * simulator, then a section for each plugin (NULL-terminated list). extra
 * goes last, so it belongs to the last plugin's section. */
void rt_nj_write_conf(const rt_nj_t *h, const char *log_level,
                      const char *regions, const char *extra, ...);
/* The same with source_extra appended to the [source "ninjaone"] section
 * (rate_per_minute, ca_file, ...). */
void rt_nj_write_conf_source(const rt_nj_t *h, const char *log_level,
                             const char *regions, const char *source_extra,
                             const char *extra, ...);

/* Runs `regentra-runner ninjaone ARGS... -c conf --json` (ARGS
 * NULL-terminated) with the database and h->env in its environment;
 * returns the exit status. out/err are new, or freed when NULL is passed. */
int rt_nj_run(const rt_nj_t *h, char **out, char **err, const char *stdin_text,
              ...);
/* `connect` in region eu with h->secret_file; asserts it succeeds. */
void rt_nj_connect(const rt_nj_t *h, long long msp_org_id,
                   const char *client_id);

/* Every organization of the MSP's mappings promoted to a customer with a
 * portal company and mapped to it, in one `map --from-file --apply`
 * (rt_cadence_map_file); asserts that customers are MAPPED. */
void rt_nj_map_all(const rt_nj_t *h, long long msp_org_id, long customers);

/* Stops a `serve` (SIGTERM) and expects a clean exit and a log without a
 * sanitizer report; asserts ok, with the log and what as the message. */
void rt_nj_stop_serve(rt_proc_t *p, bool ok, const char *what);

/* SQL on h->dsn, printf-style: the first value as a number (-1 if none),
 * or as text (new; NULL if none). */
long long rt_nj_int(const rt_nj_t *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *rt_nj_text(const rt_nj_t *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An id as a command argument; four calls may be live at once. */
const char *rt_nj_id(long long id);

#endif
