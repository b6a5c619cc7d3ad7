/* The daemon's life: hot reload while a job runs, and graceful shutdown. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "rt.h"

static char dir[256], plugins[300], conf[300];
static rt_proc_t daemon_proc;

static void install_probe(const char *variant) {
  char from[600], tmp[600], to[600];
  snprintf(from, sizeof from, "%s/%s/probe.so", RT_PROBE_DIR, variant);
  snprintf(tmp, sizeof tmp, "%s/.probe.so.new", plugins);
  snprintf(to, sizeof to, "%s/probe.so", plugins);
  /* Installers replace plugins by rename, never by rewriting in place. */
  rt_copy_file(from, tmp, 0755);
  cr_assert_eq(rename(tmp, to), 0);
}

static void configure(const char *duration, const char *drain) {
  rt_make_temp_dir(dir, sizeof dir, "life");
  snprintf(plugins, sizeof plugins, "%s/plugins", dir);
  snprintf(conf, sizeof conf, "%s/runner.conf", dir);
  mkdir(plugins, 0755);
  char text[1024], confd[400], job[500];
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s\nstate_dir = %s/state\n"
           "drain_timeout = %s\n",
           plugins, dir, drain);
  rt_write_file(conf, text, 0644);
  snprintf(confd, sizeof confd, "%s/conf.d", dir);
  mkdir(confd, 0755);
  snprintf(job, sizeof job, "%s/10-slow.conf", confd);
  snprintf(text, sizeof text,
           "[job \"slow\"]\nplugin = probe\njob = slow\n"
           "schedule = * * * * *\nduration = %s\n",
           duration);
  rt_write_file(job, text, 0644);
  install_probe("probe_v1");
}

/* The runner's clock starts just before a minute boundary and runs 60x, so
 * a "* * * * *" job ticks about once a second. */
static void start_daemon(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  static char start_env[64];
  snprintf(start_env, sizeof start_env, "REGENTRA_CLOCK_START_MS=%lld",
           (now / 60000 + 1) * 60000 - 300);
  char *env[] = {start_env, "REGENTRA_CLOCK_SCALE=60", NULL};
  char *argv[] = {RT_RUNNER, "serve", "-c", conf, NULL};
  rt_proc_start(&daemon_proc, argv, env, NULL);
}

static void stop_daemon_expect_clean_exit(void) {
  rt_proc_kill(&daemon_proc, SIGTERM);
  cr_assert(rt_proc_wait(&daemon_proc, 20000), "daemon did not stop");
  char *log = rt_read_file(daemon_proc.err_path);
  cr_expect_eq(daemon_proc.status, 0, "exit %d; log:\n%s", daemon_proc.status,
               log);
  cr_expect(strstr(log, "runner: stopped"), "%s", log);
  cr_expect(!strstr(log, "handles left open"), "%s", log);
  free(log);
}

static void teardown(void) {
  if (daemon_proc.pid > 0) {
    rt_proc_kill(&daemon_proc, SIGKILL);
    rt_proc_wait(&daemon_proc, 5000);
  }
  rt_remove_tree(dir);
}

static bool log_has(const char *text, int count, int timeout_ms) {
  return rt_wait_for_text(daemon_proc.err_path, text, count, timeout_ms);
}

TestSuite(lifecycle, .fini = teardown, .timeout = 90);

Test(lifecycle, reload_lets_the_running_job_finish_on_the_old_code) {
  configure("2500ms", "30s");
  start_daemon();
  cr_assert(log_has("probe: probe 1 started", 1, 15000), "first run never started");
  install_probe("probe_v2");
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload done", 1, 10000), "reload did not finish");
  cr_assert(log_has("probe: probe 1 finished", 1, 10000));
  cr_assert(log_has("probe: probe 2 started", 1, 10000), "new code never ran");
  cr_assert(log_has("probe: probe 2 finished", 1, 10000));
  /* The old generation is destroyed only after its job finished. */
  cr_assert(log_has("probe: probe 1 destroyed", 1, 5000));
  stop_daemon_expect_clean_exit();
  const char *log_path = daemon_proc.err_path;
  cr_expect_eq(rt_count_text(log_path, "probe: probe 1 started"), 1);
  cr_expect_eq(rt_count_text(log_path, "probe: probe 1 finished"), 1);
  cr_expect_eq(rt_count_text(log_path, "probe: probe 2 started"),
               rt_count_text(log_path, "probe: probe 2 finished"),
               "a run was lost or doubled");
  cr_expect_eq(rt_count_text(log_path, "cancelled"), 0);
  char *log = rt_read_file(log_path);
  cr_expect(strstr(log, "probe: probe 1 finished") < strstr(log, "probe: probe 1 destroyed"));
  free(log);
}

Test(lifecycle, broken_replacement_leaves_the_old_plugin_serving) {
  configure("200ms", "30s");
  start_daemon();
  cr_assert(log_has("probe: probe 1 finished", 1, 15000));
  char tmp[600], to[600];
  snprintf(tmp, sizeof tmp, "%s/.probe.so.new", plugins);
  snprintf(to, sizeof to, "%s/probe.so", plugins);
  rt_write_file(tmp, "this is not an ELF object\n", 0755);
  cr_assert_eq(rename(tmp, to), 0);
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload halted", 1, 10000), "no reload halted line");
  int before = rt_count_text(daemon_proc.err_path, "probe: probe 1 finished");
  cr_assert(log_has("probe: probe 1 finished", before + 2, 15000),
            "the old plugin stopped serving");
  stop_daemon_expect_clean_exit();
  cr_expect(rt_count_text(daemon_proc.err_path,
                          "probe.so: not an ELF shared object") >= 1);
  cr_expect_eq(rt_count_text(daemon_proc.err_path, "probe: probe 2"), 0);
}

Test(lifecycle, sigterm_waits_for_the_running_job_then_exits_0) {
  configure("1500ms", "30s");
  start_daemon();
  cr_assert(log_has("probe: probe 1 started", 1, 15000));
  rt_proc_kill(&daemon_proc, SIGTERM);
  cr_assert(rt_proc_wait(&daemon_proc, 20000));
  char *log = rt_read_file(daemon_proc.err_path);
  cr_expect_eq(daemon_proc.status, 0, "%s", log);
  cr_expect(strstr(log, "probe: probe 1 finished"), "the job was cut short:\n%s", log);
  cr_expect(strstr(log, "runner: stopped"));
  cr_expect(!strstr(log, "handles left open"));
  free(log);
}

Test(lifecycle, sigterm_cancels_jobs_still_running_at_the_deadline) {
  configure("60s", "500ms");
  start_daemon();
  cr_assert(log_has("probe: probe 1 started", 1, 15000));
  rt_proc_kill(&daemon_proc, SIGTERM);
  cr_assert(rt_proc_wait(&daemon_proc, 20000), "daemon ignored its deadline");
  char *log = rt_read_file(daemon_proc.err_path);
  cr_expect_eq(daemon_proc.status, 0, "%s", log);
  cr_expect(strstr(log, "drain deadline reached"), "%s", log);
  cr_expect(strstr(log, "probe: probe 1 cancelled"), "%s", log);
  cr_expect(!strstr(log, "handles left open"));
  free(log);
}

Test(lifecycle, reload_cancels_old_jobs_still_running_after_the_drain_timeout) {
  configure("60s", "1s");
  start_daemon();
  cr_assert(log_has("probe: probe 1 started", 1, 15000));
  install_probe("probe_v2");
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload done", 1, 10000));
  /* The old run would take a minute; the drain timeout ends it. */
  cr_assert(log_has("still running after drain_timeout; cancelled", 1, 10000),
            "the old generation's job was never cancelled");
  cr_assert(log_has("probe: probe 1 cancelled", 1, 5000));
  cr_assert(log_has("probe: probe 1 destroyed", 1, 5000),
            "the old generation was never unloaded");
  cr_assert(log_has("probe: probe 2 started", 1, 10000));
  stop_daemon_expect_clean_exit();
}
