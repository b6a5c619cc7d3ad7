/* rt_runner.c - see rt_runner.h. */
#include "rt_runner.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIGRATIONS                                                             \
  RT_SOURCE_DIR "/runner/migrations:" RT_SOURCE_DIR "/sdk/devsrc/migrations"

void rt_runner_prepare(rt_runner_t *r, const char *tag,
                       const char *const plugins[], const char *jobs) {
  rt_make_temp_dir(r->dir, sizeof r->dir, tag);
  snprintf(r->conf, sizeof r->conf, "%s/runner.conf", r->dir);
  char path[600];
  snprintf(path, sizeof path, "%s/plugins", r->dir);
  cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s", path);
  for (size_t i = 0; plugins && plugins[i]; i++) {
    const char *name = strrchr(plugins[i], '/');
    snprintf(path, sizeof path, "%s/plugins/%s", r->dir,
             name ? name + 1 : plugins[i]);
    rt_copy_file(plugins[i], path, 0755);
  }
  snprintf(path, sizeof path, "%s/conf.d", r->dir);
  cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s", path);
  if (jobs) {
    snprintf(path, sizeof path, "%s/conf.d/10-jobs.conf", r->dir);
    rt_write_file(path, jobs, 0644);
  }
}

void rt_runner_write_conf(const rt_runner_t *r, const char *runner_lines,
                          const char *database_url,
                          const char *database_lines) {
  char text[8192];
  int n = snprintf(text, sizeof text,
                   "[runner]\nplugin_dir = %s/plugins\nstate_dir = %s/state\n"
                   "%s",
                   r->dir, r->dir, runner_lines ? runner_lines : "");
  if (database_url && n > 0 && (size_t)n < sizeof text)
    n += snprintf(text + n, sizeof text - (size_t)n,
                  "[database]\nurl = %s\nmigrations_dir = %s\n%s", database_url,
                  MIGRATIONS, database_lines ? database_lines : "");
  cr_assert(n > 0 && (size_t)n < sizeof text, "runner.conf is too long");
  rt_write_file(r->conf, text, 0644);
}

void rt_runner_migrate(const rt_runner_t *r) {
  char *argv[] = {RT_RUNNER, "migrate", "-c", (char *)r->conf, NULL};
  char *err = NULL;
  int rc = rt_run(argv, NULL, NULL, NULL, &err);
  cr_assert_eq(rc, 0, "migrate failed: %s", err);
  free(err);
}

void rt_qprobe_table(const char *dsn) {
  free(rt_pg_query(dsn, "CREATE TABLE qprobe_run (id bigserial PRIMARY KEY,"
                        " n int, key text, pid int, started_at timestamptz,"
                        " finished_at timestamptz)"));
}

void rt_runner_serve(const rt_runner_t *r, rt_proc_t *p, char *const env[],
                     const char *ready_text, int timeout_ms) {
  char *argv[] = {RT_RUNNER, "serve", "-c", (char *)r->conf, NULL};
  rt_proc_start(p, argv, env, NULL);
  if (ready_text)
    cr_assert(rt_wait_for_text(p->err_path, ready_text, 1, timeout_ms),
              "the daemon never said \"%s\":\n%s", ready_text,
              rt_read_file(p->err_path));
}

char *rt_runner_expect_clean_exit(rt_proc_t *p, int timeout_ms) {
  cr_assert(rt_proc_wait(p, timeout_ms), "the daemon did not stop");
  char *log = rt_read_file(p->err_path);
  cr_assert(log, "no log at %s", p->err_path);
  cr_expect_eq(p->status, 0, "exit %d; log:\n%s", p->status, log);
  cr_expect(!strstr(log, "handles left open"), "%s", log);
  cr_expect(!strstr(log, "ERROR: AddressSanitizer"), "%s", log);
  return log;
}

char *rt_runner_stop(rt_proc_t *p, int timeout_ms) {
  rt_proc_kill(p, SIGTERM);
  return rt_runner_expect_clean_exit(p, timeout_ms);
}

void rt_runner_kill(rt_proc_t *p) {
  if (p->pid > 0) {
    rt_proc_kill(p, SIGKILL);
    rt_proc_wait(p, 5000);
  }
}

int rt_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t len = sizeof sa;
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}
