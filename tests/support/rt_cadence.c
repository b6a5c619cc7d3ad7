/* rt_cadence.c - see rt_cadence.h. */
#include "rt_cadence.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

void rt_cadence_write_conf(const char *conf, const char *dir,
                           const char *key_file, int sim_port,
                           long per_minute, long per_hour, const char *dsn,
                           const char *runner_extra) {
  char text[8192];
  int n = snprintf(text, sizeof text,
                   "[runner]\nplugin_dir = %s\nstate_dir = %s/state\n"
                   "master_key_file = %s\nlog_level = warning\n%s"
                   /* One connection profile that every NinjaOne plugin
                    * reads. */
                   "\n[source \"ninjaone\"]\n"
                   "base_url_eu = http://127.0.0.1:%d/eu\n"
                   "rate_per_minute = %ld\nrate_per_hour = %ld\n"
                   "\n[database]\nurl = %s\nmigrations_dir = %s\n"
                   "poll_interval = 200ms\n",
                   RT_PLUGIN_DIR, dir, key_file,
                   runner_extra ? runner_extra : "", sim_port, per_minute,
                   per_hour, dsn, RT_SOURCE_DIR "/runner/migrations");
  if (n < 0 || (size_t)n >= sizeof text) {
    fprintf(stderr, "rt_cadence_write_conf: configuration too long\n");
    abort();
  }
  rt_write_file(conf, text, 0644);
}

void rt_cadence_write_confd(const char *confd, int which) {
  if (mkdir(confd, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "rt_cadence_write_confd: mkdir %s: %s\n", confd,
            strerror(errno));
    abort();
  }
  char path[512];
  snprintf(path, sizeof path, "%s/20-assets.conf", confd);
  if (which & RT_CADENCE_SYNC)
    rt_write_file(path,
                  "[job \"ninjaone-asset-sync\"]\nplugin = ninjaone-assets\n"
                  "job = sync\nschedule = 15 */4 * * *\n",
                  0644);
  else
    unlink(path);
  snprintf(path, sizeof path, "%s/30-evidence.conf", confd);
  if (which & (RT_CADENCE_SWEEP | RT_CADENCE_SWEEP_OFF)) {
    char text[256];
    snprintf(text, sizeof text,
             "[job \"ninjaone-evidence-sweep\"]\nplugin = ninjaone-evidence\n"
             "job = sweep\nschedule = 30 */6 * * *\n%s",
             which & RT_CADENCE_SWEEP_OFF ? "enabled = false\n" : "");
    rt_write_file(path, text, 0644);
  } else {
    unlink(path);
  }
}

char **rt_clock_env(rt_clock_env_t *c, char *db_env, long long start_ms,
                    double scale, bool scale_budget) {
  size_t n = 0;
  snprintf(c->start, sizeof c->start, "REGENTRA_CLOCK_START_MS=%lld",
           start_ms);
  snprintf(c->scale, sizeof c->scale, "REGENTRA_CLOCK_SCALE=%g", scale);
  if (db_env)
    c->env[n++] = db_env;
  c->env[n++] = c->start;
  c->env[n++] = c->scale;
  if (scale_budget)
    c->env[n++] = "REGENTRA_CLOCK_SCALE_BUDGET=1";
  c->env[n] = NULL;
  return c->env;
}

void rt_cadence_serve(rt_proc_t *p, const char *conf, const char *confd,
                      char *db_env, long long start_ms, double scale,
                      bool scale_budget) {
  rt_clock_env_t clock;
  char **env = rt_clock_env(&clock, db_env, start_ms, scale, scale_budget);
  char *argv[] = {RT_RUNNER, "serve", "-c", (char *)conf, "-d", (char *)confd,
                  NULL};
  rt_proc_start(p, argv, env, NULL); /* env is copied into the child */
}

long rt_cadence_map_file(const char *dsn, long long msp, const char *path) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "WITH m AS (SELECT external_org_id FROM integration_org_mapping"
           " WHERE msp_org_id = %lld), o AS (INSERT INTO organization (name,"
           " kind) SELECT 'Customer ' || external_org_id, 'CUSTOMER' FROM m"
           " RETURNING id, name), c AS (INSERT INTO portal_company"
           " (msp_org_id, name, converted_to_organization_id) SELECT %lld,"
           " o.name, o.id FROM o RETURNING id, name)"
           " SELECT string_agg(substr(name, 10) || ',use-existing,' || id,"
           " E'\\n') FROM c",
           msp, msp);
  char *rows = rt_pg_query(dsn, sql);
  if (!rows || !*rows) {
    free(rows);
    return 0;
  }
  rt_write_file(path, rows, 0644);
  long n = 1;
  for (const char *p = rows; (p = strchr(p, '\n')); p++)
    n++;
  free(rows);
  return n;
}

bool rt_cadence_wait_jobs(const char *dsn, const char *name,
                          const char *states, long want, int timeout_ms) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM runner.job WHERE name = '%s' AND state IN"
           " (%s)",
           name, states);
  return rt_pg_wait_count(dsn, sql, want, timeout_ms);
}

long long rt_sim_tenant_stat(json_t *stats, const char *tenant,
                             const char *key) {
  json_t *t = json_object_get(json_object_get(stats, "tenants"), tenant);
  return (long long)json_integer_value(json_object_get(t, key));
}
