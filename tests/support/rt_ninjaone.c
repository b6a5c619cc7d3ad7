/* rt_ninjaone.c - end-to-end NinjaOne tests: simulator, runner.conf,
 * database and runner commands. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cadence.h"
#include "rt_ninjaone.h"

void rt_sim_start(rt_sim_t *sim, const char *args) {
  char words[1024];
  snprintf(words, sizeof words, "%s", args);
  char *argv[32] = {SIM_BINARY, "--port", "0"};
  int argc = 3;
  for (char *tok = strtok(words, " "); tok && argc < 31;
       tok = strtok(NULL, " "))
    argv[argc++] = tok;
  argv[argc] = NULL;
  memset(sim, 0, sizeof *sim);
  rt_proc_start(&sim->proc, argv, NULL, NULL);
  if (!rt_wait_for_text(sim->proc.out_path, "port=", 1, 60000)) {
    char *err = rt_read_file(sim->proc.err_path);
    cr_assert_fail("simulator did not start: %s", err ? err : "(no stderr)");
  }
  char *out = rt_read_file(sim->proc.out_path);
  sim->port = atoi(strstr(out, "port=") + 5);
  free(out);
  cr_assert_gt(sim->port, 0, "simulator announced no port");
}

/* What the simulator said on stderr besides its banner (its errors, and
 * libmicrohttpd's), onto the test's stderr: a failed test's log shows why
 * the simulator dropped a connection. */
static void sim_report_errors(const rt_sim_t *sim) {
  char *err = rt_read_file(sim->proc.err_path);
  for (char *line = err, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    else
      next = line + strlen(line);
    if (*line && !strstr(line, " on 127.0.0.1:"))
      fprintf(stderr, "simulator on port %d: %s\n", sim->port, line);
  }
  free(err);
}

void rt_sim_stop(rt_sim_t *sim) {
  if (sim->proc.pid > 0) {
    rt_proc_kill(&sim->proc, SIGTERM);
    rt_proc_wait(&sim->proc, 10000);
    sim_report_errors(sim);
  }
}

char *rt_sim_stats(const rt_sim_t *sim) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/_sim/stats", sim->port);
  char *argv[] = {"/usr/bin/curl", "-s", url, NULL};
  char *out = NULL;
  rt_run(argv, NULL, NULL, &out, NULL);
  return out;
}

int rt_sim_post(const rt_sim_t *sim, const char *what, const char *json_body,
                char **out) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/_sim/%s", sim->port, what);
  char *argv[] = {"/usr/bin/curl",   "-s", "-X", "POST", "-d",
                  (char *)json_body, url,  NULL};
  return rt_run(argv, NULL, NULL, out, NULL);
}

void rt_nj_setup(rt_nj_t *h, const char *tag, const char *secret,
                 const char *master_key, const char *sim_args) {
  rt_make_temp_dir(h->dir, sizeof h->dir, tag);
  snprintf(h->conf, sizeof h->conf, "%s/runner.conf", h->dir);
  snprintf(h->secret_file, sizeof h->secret_file, "%s/secret", h->dir);
  snprintf(h->key_file, sizeof h->key_file, "%s/master.key", h->dir);
  char line[256];
  snprintf(line, sizeof line, "%s\n", secret);
  rt_write_file(h->secret_file, line, 0600);
  snprintf(line, sizeof line, "%s\n", master_key);
  rt_write_file(h->key_file, line, 0600);
  h->secret = secret;
  h->dsn = rt_pg_fresh_db();
  rt_pg_apply_dir(h->dsn, RT_SOURCE_DIR "/sdk/devsrc/migrations");
  snprintf(h->db_env, sizeof h->db_env, "REGENTRA_DATABASE_URL=%s", h->dsn);
  rt_sim_start(&h->sim, sim_args);
}

void rt_nj_teardown(rt_nj_t *h) {
  rt_sim_stop(&h->sim);
  rt_remove_tree(h->dir);
}

/* Appends to a configuration being built; aborts when it does not fit. */
static void conf_add(char *text, size_t cap, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void conf_add(char *text, size_t cap, size_t *used, const char *fmt,
                     ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text + *used, cap - *used, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= cap - *used) {
    fprintf(stderr, "rt_nj_write_conf: configuration too long\n");
    abort();
  }
  *used += (size_t)n;
}

static void write_conf(const rt_nj_t *h, const char *log_level,
                       const char *regions, const char *source_extra,
                       const char *extra, va_list plugins) {
  char text[4096];
  size_t used = 0;
  conf_add(text, sizeof text, &used,
           "[runner]\nplugin_dir = %s\nstate_dir = %s/state\n"
           "master_key_file = %s\nlog_level = %s\n",
           RT_PLUGIN_DIR, h->dir, h->key_file, log_level);
  /* One connection profile, read by every NinjaOne plugin. */
  conf_add(text, sizeof text, &used, "\n[source \"ninjaone\"]\n");
  char words[64];
  snprintf(words, sizeof words, "%s", regions);
  for (char *r = strtok(words, " "); r; r = strtok(NULL, " "))
    conf_add(text, sizeof text, &used, "base_url_%s = http://127.0.0.1:%d/%s\n",
             r, h->sim.port, r);
  conf_add(text, sizeof text, &used, "%s", source_extra);
  for (const char *plugin; (plugin = va_arg(plugins, const char *));)
    conf_add(text, sizeof text, &used, "\n[plugin \"%s\"]\nenabled = true\n",
             plugin);
  conf_add(text, sizeof text, &used, "%s", extra);
  rt_write_file(h->conf, text, 0644);
}

void rt_nj_write_conf(const rt_nj_t *h, const char *log_level,
                      const char *regions, const char *extra, ...) {
  va_list ap;
  va_start(ap, extra);
  write_conf(h, log_level, regions, "", extra, ap);
  va_end(ap);
}

void rt_nj_write_conf_source(const rt_nj_t *h, const char *log_level,
                             const char *regions, const char *source_extra,
                             const char *extra, ...) {
  va_list ap;
  va_start(ap, extra);
  write_conf(h, log_level, regions, source_extra, extra, ap);
  va_end(ap);
}

int rt_nj_run(const rt_nj_t *h, char **out, char **err, const char *stdin_text,
              ...) {
  char *argv[48] = {RT_RUNNER, "ninjaone"};
  int argc = 2;
  va_list ap;
  va_start(ap, stdin_text);
  for (const char *a; (a = va_arg(ap, const char *)) && argc < 44;)
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc++] = "-c";
  argv[argc++] = (char *)h->conf;
  argv[argc++] = "--json";
  argv[argc] = NULL;
  char *env[6] = {(char *)h->db_env};
  for (int i = 0; i < 4 && h->env[i]; i++)
    env[i + 1] = (char *)h->env[i];
  char *o = NULL, *e = NULL;
  int rc = rt_run(argv, env, stdin_text, &o, &e);
  /* No command may ever print the secret, on any stream. */
  cr_expect(!strstr(o ? o : "", h->secret) && !strstr(e ? e : "", h->secret),
            "the secret was printed");
  /* A failing run exits 1 anyway: look for sanitizer reports too. */
  if (h->no_sanitizer_report)
    cr_expect(!strstr(e ? e : "", "Sanitizer"), "%s", e);
  if (out)
    *out = o;
  else
    free(o);
  if (err)
    *err = e;
  else
    free(e);
  return rc;
}

void rt_nj_connect(const rt_nj_t *h, long long msp_org_id,
                   const char *client_id) {
  char *out, *err;
  int rc = rt_nj_run(h, &out, &err, NULL, "connect", "--msp-org",
                     rt_nj_id(msp_org_id), "--region", "eu", "--client-id",
                     client_id, "--client-secret-file", h->secret_file, NULL);
  cr_assert_eq(rc, 0, "connect failed: %s%s", out, err);
  free(out);
  free(err);
}

void rt_nj_map_all(const rt_nj_t *h, long long msp_org_id, long customers) {
  char path[400];
  snprintf(path, sizeof path, "%s/map.csv", h->dir);
  cr_assert_eq(rt_cadence_map_file(h->dsn, msp_org_id, path), customers);
  char *out, *err;
  int rc = rt_nj_run(h, &out, &err, NULL, "map", "--msp-org",
                     rt_nj_id(msp_org_id), "--from-file", path, "--apply",
                     NULL);
  cr_assert_eq(rc, 0, "map: %s%s", out, err);
  free(out);
  free(err);
  cr_assert_eq(rt_nj_int(h,
                         "SELECT count(*) FROM integration_org_mapping WHERE"
                         " msp_org_id = %lld AND state = 'MAPPED'",
                         msp_org_id),
               customers);
}

void rt_nj_stop_serve(rt_proc_t *p, bool ok, const char *what) {
  rt_proc_kill(p, SIGTERM);
  cr_expect(rt_proc_wait(p, 30000), "the runner did not stop");
  char *log = rt_read_file(p->err_path);
  cr_assert(ok, "%s:\n%s", what, log);
  cr_expect(!strstr(log ? log : "", "Sanitizer"), "%s", log);
  free(log);
}

static char *vquery(const rt_nj_t *h, const char *fmt, va_list ap) {
  char sql[4096];
  int n = vsnprintf(sql, sizeof sql, fmt, ap);
  if (n < 0 || (size_t)n >= sizeof sql) {
    fprintf(stderr, "rt_nj: SQL too long: %.200s...\n", sql);
    abort();
  }
  return rt_pg_query(h->dsn, sql);
}

long long rt_nj_int(const rt_nj_t *h, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *v = vquery(h, fmt, ap);
  va_end(ap);
  long long n = v ? strtoll(v, NULL, 10) : -1;
  free(v);
  return n;
}

char *rt_nj_text(const rt_nj_t *h, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *v = vquery(h, fmt, ap);
  va_end(ap);
  return v;
}

const char *rt_nj_id(long long id) {
  static char buf[4][24];
  static int next;
  char *b = buf[next++ % 4];
  snprintf(b, 24, "%lld", id);
  return b;
}
