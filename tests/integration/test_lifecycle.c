/* The daemon's life: hot reload while a job runs, and graceful shutdown. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* A bound for a loaded machine, not an expectation: each wait for a log
 * line ends as soon as the line is there. */
#define WAIT_MS 60000

TestSuite(lifecycle, .fini = teardown, .timeout = 300);

Test(lifecycle, reload_lets_the_running_job_finish_on_the_old_code) {
  configure("2500ms", "30s");
  start_daemon();
  cr_assert(log_has("probe: probe 1 started", 1, WAIT_MS),
            "first run never started");
  install_probe("probe_v2");
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload done", 1, WAIT_MS), "reload did not finish");
  cr_assert(log_has("probe: probe 1 finished", 1, WAIT_MS));
  cr_assert(log_has("probe: probe 2 started", 1, WAIT_MS),
            "new code never ran");
  cr_assert(log_has("probe: probe 2 finished", 1, WAIT_MS));
  /* The old generation is destroyed only after its job finished. */
  cr_assert(log_has("probe: probe 1 destroyed", 1, WAIT_MS));
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
  cr_assert(log_has("probe: probe 1 finished", 1, WAIT_MS));
  char tmp[600], to[600];
  snprintf(tmp, sizeof tmp, "%s/.probe.so.new", plugins);
  snprintf(to, sizeof to, "%s/probe.so", plugins);
  rt_write_file(tmp, "this is not an ELF object\n", 0755);
  cr_assert_eq(rename(tmp, to), 0);
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload halted", 1, WAIT_MS), "no reload halted line");
  int before = rt_count_text(daemon_proc.err_path, "probe: probe 1 finished");
  cr_assert(log_has("probe: probe 1 finished", before + 2, WAIT_MS),
            "the old plugin stopped serving");
  stop_daemon_expect_clean_exit();
  cr_expect(rt_count_text(daemon_proc.err_path,
                          "probe.so: not an ELF shared object") >= 1);
  cr_expect_eq(rt_count_text(daemon_proc.err_path, "probe: probe 2"), 0);
}

Test(lifecycle, sigterm_waits_for_the_running_job_then_exits_0) {
  configure("1500ms", "30s");
  start_daemon();
  cr_assert(log_has("probe: probe 1 started", 1, WAIT_MS));
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
  cr_assert(log_has("probe: probe 1 started", 1, WAIT_MS));
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
  cr_assert(log_has("probe: probe 1 started", 1, WAIT_MS));
  install_probe("probe_v2");
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload done", 1, WAIT_MS));
  /* The old run would take a minute; the drain timeout ends it. */
  cr_assert(log_has("still running after drain_timeout; cancelled", 1, WAIT_MS),
            "the old generation's job was never cancelled");
  cr_assert(log_has("probe: probe 1 cancelled", 1, WAIT_MS));
  cr_assert(log_has("probe: probe 1 destroyed", 1, WAIT_MS),
            "the old generation was never unloaded");
  cr_assert(log_has("probe: probe 2 started", 1, WAIT_MS));
  stop_daemon_expect_clean_exit();
}

/* ------------------------------------------- jobs with no cancel hook */

/* The stubborn plugin's jobs ignore cancellation: only the host can stop
 * them, by cancelling the requests they started and, if that does not end
 * them, by ending them itself cancel_grace later. */

static void configure_stubborn(const char *runner_keys, const char *jobs) {
  rt_make_temp_dir(dir, sizeof dir, "stub");
  snprintf(plugins, sizeof plugins, "%s/plugins", dir);
  snprintf(conf, sizeof conf, "%s/runner.conf", dir);
  mkdir(plugins, 0755);
  char text[2048], confd[400], path[500];
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s\nstate_dir = %s/state\n%s\n", plugins,
           dir, runner_keys);
  rt_write_file(conf, text, 0644);
  snprintf(confd, sizeof confd, "%s/conf.d", dir);
  mkdir(confd, 0755);
  snprintf(path, sizeof path, "%s/10-stubborn.conf", confd);
  rt_write_file(path, jobs, 0644);
  char tmp[600], to[600];
  snprintf(tmp, sizeof tmp, "%s/.stubborn.so.new", plugins);
  snprintf(to, sizeof to, "%s/stubborn.so", plugins);
  rt_copy_file(RT_STUBBORN, tmp, 0755);
  cr_assert_eq(rename(tmp, to), 0);
}

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs `regentra-runner run stubborn.JOB` and waits for it to exit; the
 * [job] has a 1 s timeout and the runner a 2 s cancel_grace. */
static void run_stubborn(const char *job, const char *job_keys,
                         const char *runner_keys, char **log_out) {
  char jobs[1024], keys[1024];
  snprintf(jobs, sizeof jobs,
           "[job \"s\"]\nplugin = stubborn\njob = %s\ntimeout = 1s\n%s\n", job,
           job_keys);
  snprintf(keys, sizeof keys, "cancel_grace = 2s\n%s", runner_keys);
  configure_stubborn(keys, jobs);
  char target[64];
  snprintf(target, sizeof target, "stubborn.%s", job);
  char *argv[] = {RT_RUNNER, "run", target, "-c", conf, NULL};
  long long t0 = mono_ms();
  rt_proc_start(&daemon_proc, argv, NULL, NULL);
  cr_assert(rt_proc_wait(&daemon_proc, 30000), "stubborn.%s was never stopped",
            job);
  long long took = mono_ms() - t0;
  char *log = rt_read_file(daemon_proc.err_path);
  char *out = rt_read_file(daemon_proc.out_path);
  fprintf(stderr,
          "stubborn.%s: timeout 1 s, cancel_grace 2 s: the command "
          "exited after %lld ms\n",
          job, took);
  cr_expect_eq(daemon_proc.status, 1, "exit %d\n%s", daemon_proc.status, log);
  cr_expect(strstr(out, "\"error\": \"canceled\""), "%s\n%s", out,
            log);
  cr_expect(strstr(log, "timed out after 1000 ms; cancelling"), "%s", log);
  cr_expect(strstr(log, "finished in"), "%s", log);
  cr_expect(!strstr(log, "handles left open"), "%s", log);
  cr_expect(!strstr(log, "Sanitizer"), "%s", log);
  /* The plugin's own timer was cancelled at unload, not waited for. */
  cr_expect(strstr(log, "stubborn: housekeeping timer: RN_ECANCELED"), "%s",
            log);
  cr_expect(strstr(log, "stubborn: stubborn destroyed\n"), "%s", log);
  free(out);
  *log_out = log;
}

Test(lifecycle, timeout_stops_a_job_without_cancel_hook_waiting_on_http) {
  /* A server that takes connections and never answers them. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  cr_assert_eq(listen(fd, 8), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  char keys[128];
  snprintf(keys, sizeof keys, "url = http://127.0.0.1:%d/never",
           ntohs(addr.sin_port));
  char *log;
  run_stubborn("http", keys, "", &log);
  close(fd);
  /* The host cancelled the request; the plugin completed with that. */
  cr_expect(strstr(log, "stubborn: http callback: RN_ECANCELED"), "%s", log);
  cr_expect(!strstr(log, "the host ends it"), "%s", log);
  free(log);
}

Test(lifecycle, timeout_stops_a_job_without_cancel_hook_waiting_on_a_timer) {
  char *log;
  run_stubborn("timer", "duration = 10m", "", &log);
  cr_expect(strstr(log, "stubborn: timer callback: RN_ECANCELED"), "%s", log);
  cr_expect(!strstr(log, "the host ends it"), "%s", log);
  free(log);
}

Test(lifecycle, a_job_that_restarts_its_timer_is_ended_by_the_host) {
  char *log;
  run_stubborn("timer", "duration = 10m\nagain = true", "", &log);
  cr_expect(strstr(log, "timer callback: RN_ECANCELED; starting it again"),
            "%s", log);
  cr_expect(strstr(log, "still running 2000 ms after it was cancelled; the "
                        "host ends it"),
            "%s", log);
  /* After that its new requests are refused, so it cannot go on. */
  cr_expect(strstr(log, "stubborn: timer restart callback: RN_ECANCELED"), "%s",
            log);
  cr_expect(strstr(log, "job_complete after the host ended the run; ignored"),
            "%s", log);
  free(log);
}

Test(lifecycle, timeout_ends_a_job_waiting_on_thread_pool_work) {
  /* Work cannot be interrupted: the host ends the run at the grace
   * deadline, and the work's callback arrives later into a live job. */
  char *log;
  run_stubborn("work", "duration = 5s", "", &log);
  cr_expect(strstr(log, "the host ends it (1 request(s) still out"), "%s", log);
  cr_expect(strstr(log, "stubborn: work of stubborn.work returned"), "%s", log);
  cr_expect(strstr(log, "job_complete after the host ended the run; ignored"),
            "%s", log);
  char *ended = strstr(log, "the host ends it");
  char *returned = strstr(log, "work of stubborn.work returned");
  cr_expect(ended && returned && ended < returned, "%s", log);
  /* The plugin stayed loaded until its work had called back. */
  char *destroyed = strstr(log, "stubborn: stubborn destroyed");
  cr_expect(returned && destroyed && returned < destroyed, "%s", log);
  free(log);
}

Test(lifecycle, timeout_stops_a_job_without_cancel_hook_waiting_on_a_query) {
  char keys[800];
  snprintf(keys, sizeof keys, "\n[database]\nurl = %s\n", rt_pg_fresh_db());
  char *log;
  run_stubborn("query", "", keys, &log);
  cr_expect(strstr(log, "stubborn: query callback: RN_ECANCELED") ||
                strstr(log, "the host ends it"),
            "%s", log);
  free(log);
}

Test(lifecycle, timeout_ends_a_job_without_cancel_hook_in_a_transaction) {
  /* The transaction's statement may run on until it ends (20 s here) if
   * nothing interrupts it; the run ends at timeout + cancel_grace anyway. */
  char keys[800];
  snprintf(keys, sizeof keys, "\n[database]\nurl = %s\n", rt_pg_fresh_db());
  char *log;
  run_stubborn("tx", "seconds = 20", keys, &log);
  char *line = strstr(log, "stubborn.tx: finished in");
  cr_expect(line && strstr(line, "operation canceled"), "%s", log);
  long long ms = line ? atoll(line + strlen("stubborn.tx: finished in ")) : -1;
  fprintf(stderr, "stubborn.tx: the run ended after %lld ms\n", ms);
  free(log);
}

/* A "* * * * *" timer job that restarts its timer whatever happens: drain
 * and reload can only end it through the host. */
static const char stubborn_cron_job[] =
    "[job \"t\"]\nplugin = stubborn\njob = timer\nschedule = * * * * *\n"
    "duration = 10m\nagain = true\n";

/* Serves the stubborn job of `jobs` (drain_timeout 500 ms, cancel_grace
 * 1 s) until it has started, then stops the daemon with SIGTERM; prints
 * how long the exit took and returns the log. */
static char *serve_then_sigterm(const char *jobs, const char *started,
                                const char *what) {
  configure_stubborn("drain_timeout = 500ms\ncancel_grace = 1s", jobs);
  start_daemon();
  cr_assert(log_has(started, 1, WAIT_MS), "never started");
  long long t0 = mono_ms();
  rt_proc_kill(&daemon_proc, SIGTERM);
  cr_assert(rt_proc_wait(&daemon_proc, 20000),
            "SIGTERM never ended the daemon");
  fprintf(stderr,
          "SIGTERM with %s: drain_timeout 500 ms, cancel_grace 1000 ms: "
          "exit after %lld ms\n",
          what, mono_ms() - t0);
  char *log = rt_read_file(daemon_proc.err_path);
  cr_expect_eq(daemon_proc.status, 0, "%s", log);
  return log;
}

Test(lifecycle, sigterm_with_a_job_without_cancel_hook_exits_after_the_grace) {
  char *log = serve_then_sigterm(stubborn_cron_job, "stubborn.timer waiting",
                                 "a stubborn job");
  cr_expect(strstr(log, "drain deadline reached"), "%s", log);
  cr_expect(strstr(log, "stubborn.timer: still running 1000 ms after it was "
                        "cancelled; the host ends it"),
            "%s", log);
  cr_expect(strstr(log, "stubborn: housekeeping timer: RN_ECANCELED"), "%s",
            log);
  cr_expect(strstr(log, "runner: stopped"), "%s", log);
  cr_expect(!strstr(log, "handles left open"), "%s", log);
  free(log);
}

/* Work on a worker thread cannot be stopped, and libuv joins its workers
 * at exit: a stopping runner waits cancel_grace for it, then leaves it. */
Test(lifecycle, sigterm_leaves_work_that_never_returns_after_the_grace) {
  char *log = serve_then_sigterm("[job \"w\"]\nplugin = stubborn\njob = work\n"
                                 "schedule = * * * * *\nduration = 10m\n",
                                 "stubborn.work waiting",
                                 "10 min of work on a worker thread");
  cr_expect(strstr(log, "stubborn.work: still running 1000 ms after it was "
                        "cancelled; the host ends it"),
            "%s", log);
  cr_expect(strstr(log, "stubborn: stubborn.work: work on a worker thread is "
                        "still running; not waiting for it"),
            "%s", log);
  cr_expect(strstr(log, "exiting with 1 work item(s) still on worker threads"),
            "%s", log);
  cr_expect(!strstr(log, "work of stubborn.work returned"), "%s", log);
  free(log);
}

Test(lifecycle, reload_unloads_the_old_image_of_a_job_without_cancel_hook) {
  configure_stubborn("drain_timeout = 1s\ncancel_grace = 1s",
                     stubborn_cron_job);
  start_daemon();
  cr_assert(log_has("stubborn.timer waiting", 1, WAIT_MS), "never started");
  char tmp[600], to[600];
  snprintf(tmp, sizeof tmp, "%s/.stubborn.so.new", plugins);
  snprintf(to, sizeof to, "%s/stubborn.so", plugins);
  rt_copy_file(RT_STUBBORN, tmp, 0755);
  cr_assert_eq(rename(tmp, to), 0);
  long long t0 = mono_ms();
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload done", 1, WAIT_MS));
  cr_assert(log_has("still running after drain_timeout; cancelled", 1, WAIT_MS),
            "the old generation's job was never cancelled");
  cr_assert(log_has("the host ends it", 1, WAIT_MS),
            "the old generation's job was never ended");
  /* Its plugin-level timer too is cancelled, and the image unloads. */
  cr_assert(log_has("stubborn: stubborn destroyed\n", 1, WAIT_MS),
            "the old generation was never unloaded");
  long long took = mono_ms() - t0;
  fprintf(stderr,
          "SIGHUP with a stubborn job: drain_timeout 1000 ms, "
          "cancel_grace 1000 ms: old image unloaded after %lld ms\n",
          took);
  /* The new generation runs the job again. */
  cr_assert(log_has("stubborn.timer waiting", 2, WAIT_MS));
  stop_daemon_expect_clean_exit();
}

/* A runner stopped (SIGSTOP: a paused VM, a stalled loop) across a job's
 * minute runs that tick once it goes on, instead of waiting an hour. */
Test(lifecycle, a_tick_missed_in_a_stall_is_caught_up) {
  /* start_daemon's clock crosses a minute boundary 5 ms after it starts,
   * then one a second: the job's minute is the 40th, about 40 s in, which
   * leaves a slow start on a busy machine time to serve before it. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long minute_of_hour = ((long long)ts.tv_sec / 60 + 1 + 40) % 60;
  char jobs[256];
  snprintf(jobs, sizeof jobs,
           "[job \"t\"]\nplugin = stubborn\njob = timer\n"
           "schedule = %lld * * * *\nduration = 1s\n",
           minute_of_hour);
  configure_stubborn("", jobs);
  long long t0 = mono_ms();
  start_daemon();
  cr_assert(log_has("runner: serving", 1, 35000),
            "the runner did not serve within 35 s: too slow to stall it "
            "before the job's minute");
  cr_assert_eq(kill(daemon_proc.pid, SIGSTOP), 0);
  /* The stall itself: from before the job's minute to two minutes past. */
  while (mono_ms() - t0 < 42000)
    usleep(100 * 1000);
  cr_assert_eq(kill(daemon_proc.pid, SIGCONT), 0);
  cr_expect(log_has("caught up", 1, WAIT_MS), "the missed tick was lost");
  cr_expect(log_has("stubborn.timer waiting", 1, WAIT_MS), "it never ran");
  stop_daemon_expect_clean_exit();
}

Test(lifecycle, cancel_grace_must_be_a_duration) {
  configure_stubborn("cancel_grace = soon", "");
  char *argv[] = {RT_RUNNER, "check-config", "-c", conf, NULL};
  char *err = NULL;
  cr_expect_eq(rt_run(argv, NULL, NULL, NULL, &err), 1, "%s", err);
  cr_expect(strstr(err, "runner.conf:4: cancel_grace = \"soon\": expected a "
                        "duration"),
            "%s", err);
  free(err);
}
