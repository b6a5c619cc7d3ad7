/* The durable queue across runner processes on one real PostgreSQL: each
 * row runs once, cron ticks once, leases of a killed runner are reclaimed,
 * concurrency keys hold across processes, retries back off and die, and
 * fan-out happens only with a completion. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rt_runner.h"

static rt_runner_t runner;
static char dsn[700];
static rt_proc_t procs[2];
static int nprocs;

static long long real_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A fresh database with the queue schema and the probe's table, and a
 * config with qprobe installed. db_extra goes into [database], jobs into
 * conf.d. */
static char private_dsn[256];

static void configure(int workers, const char *db_extra, const char *jobs) {
  snprintf(dsn, sizeof dsn, "%s",
           private_dsn[0] ? private_dsn : rt_pg_fresh_db());
  static const char *const plugins[] = {RT_QPROBE, NULL};
  rt_runner_prepare(&runner, "queue", plugins, jobs ? jobs : "");
  char runner_lines[128], database_lines[1024];
  snprintf(runner_lines, sizeof runner_lines,
           "workers = %d\ndrain_timeout = 10s\n", workers);
  snprintf(database_lines, sizeof database_lines,
           "poll_interval = 500ms\nretry_base = 200ms\n%s",
           db_extra ? db_extra : "");
  rt_runner_write_conf(&runner, runner_lines, dsn, database_lines);
  rt_runner_migrate(&runner);
  rt_qprobe_table(dsn);
}

static void start_runner(const char *clock_start) {
  cr_assert_lt(nprocs, 2);
  static char clock_env[2][64];
  char *env[3] = {NULL, NULL, NULL};
  if (clock_start) {
    snprintf(clock_env[nprocs], sizeof clock_env[nprocs],
             "REGENTRA_CLOCK_START_MS=%s", clock_start);
    env[0] = clock_env[nprocs];
    env[1] = "REGENTRA_CLOCK_SCALE=60";
  }
  rt_runner_serve(&runner, &procs[nprocs], env, NULL, 0);
  nprocs++;
}

static void stop_runner(int i) {
  free(rt_runner_stop(&procs[i], 30000));
  procs[i].pid = 0;
}

/* A cluster of this test's own, which it may stop and restart. */
static char cluster[128];
static int cluster_port;

/* Stops, or starts again on the port it got, and says why if that fails. */
static int cluster_ctl(const char *action) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1); "
           "%s \"$bin/pg_ctl\" -D %s/data -l %s/server.log -w -t 60 -m fast "
           "-o '-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off' %s "
           ">/dev/null 2>&1",
           geteuid() == 0 ? "runuser -u postgres --" : "", cluster, cluster,
           cluster_port, cluster, action);
  int rc = system(cmd);
  if (rc != 0 && strcmp(action, "stop") != 0)
    rt_pg_print_log(cluster);
  return rc;
}

static void cluster_create(void) {
  snprintf(cluster, sizeof cluster, "/tmp/rt-qpg-%ld", (long)getpid());
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "set -e; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | "
           "tail -n1); rm -rf %1$s; mkdir -p %1$s; chmod 755 %1$s; "
           "[ \"$(id -u)\" != 0 ] || chown postgres: %1$s; "
           "%2$s \"$bin/initdb\" -D %1$s/data -U regentra --auth=trust "
           "-E UTF8 --locale=C.UTF-8 >%1$s/initdb.log 2>&1",
           cluster, geteuid() == 0 ? "runuser -u postgres --" : "");
  cr_assert_eq(system(cmd), 0, "initdb failed (see %s)", cluster);
  cluster_port = rt_pg_cluster_start(cluster);
  cr_assert_gt(cluster_port, 0, "cluster did not start (its server.log is "
               "above)");
  snprintf(private_dsn, sizeof private_dsn,
           "postgresql://regentra@127.0.0.1:%d/postgres", cluster_port);
}

static void teardown(void) {
  if (cluster[0]) {
    cluster_ctl("stop");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cluster);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", cluster);
    cluster[0] = private_dsn[0] = '\0';
  }
  for (int i = 0; i < nprocs; i++)
    rt_runner_kill(&procs[i]);
  nprocs = 0;
  rt_remove_tree(runner.dir);
}

static char *runner_log(int i) { return rt_read_file(procs[i].err_path); }

TestSuite(queue, .fini = teardown, .timeout = 180);

Test(queue, two_runners_run_1000_jobs_each_exactly_once) {
  configure(8, NULL, NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) SELECT "
                        "'qprobe.record', jsonb_build_object('n', g) FROM "
                        "generate_series(1, 1000) g"));
  start_runner(NULL);
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             1000, 90000),
            "only %ld of 1000 completed",
            rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'"));
  stop_runner(0);
  stop_runner(1);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run"), 1000);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(DISTINCT n) FROM qprobe_run"),
               1000);
  cr_expect_eq(rt_pg_count(dsn, "SELECT max(attempt) FROM runner.job"), 1);
  /* Both processes took a share of the work. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(DISTINCT pid) FROM qprobe_run"),
               2);
}

Test(queue, cron_tick_every_minute_runs_once_across_two_runners) {
  configure(2, NULL,
            "[job \"every\"]\nplugin = qprobe\njob = record\n"
            "schedule = * * * * *\n");
  /* The clocks start 30 s (0.5 s real) before minute M and run 60x, so
   * start-up is over before M: M, M+1, M+2 are due within 3.5 real s. */
  long long now = real_now_ms();
  long long m = (now / 60000 + 2) * 60000;
  char start[32];
  snprintf(start, sizeof start, "%lld", m - 30000);
  start_runner(start);
  start_runner(start);
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM runner.job WHERE name = 'every' AND state = "
           "'completed' AND scheduled_at BETWEEN to_timestamp(%lld) AND "
           "to_timestamp(%lld)",
           m / 1000, m / 1000 + 120);
  cr_assert(rt_pg_wait_count(dsn, sql, 3, 20000), "3 ticks did not complete");
  stop_runner(0);
  stop_runner(1);
  cr_expect_eq(rt_pg_count(dsn, sql), 3);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM runner.cron_tick WHERE scheduled_at BETWEEN "
           "to_timestamp(%lld) AND to_timestamp(%lld)",
           m / 1000, m / 1000 + 120);
  cr_expect_eq(rt_pg_count(dsn, sql), 3);
  /* Every tick row ran once: as many probe runs as completed ticks. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run"),
               rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE state "
                                "= 'completed'"));
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM (SELECT scheduled_at "
                                "FROM runner.job GROUP BY scheduled_at HAVING "
                                "count(*) > 1) d"),
               0);
}

Test(queue, killed_runner_leases_are_reclaimed_by_its_peer_and_completed_once) {
  configure(4, "lease = 2s\n", NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) SELECT "
                        "'qprobe.record', jsonb_build_object('n', g, "
                        "'sleep_ms', 1500) FROM generate_series(1, 12) g"));
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn, "SELECT count(*) FROM qprobe_run", 4, 15000));
  rt_proc_kill(&procs[0], SIGKILL);
  rt_proc_wait(&procs[0], 5000);
  procs[0].pid = 0;
  long held = rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE state "
                               "= 'running'");
  cr_assert_gt(held, 0, "the killed runner held no lease");
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             12, 60000),
            "the peer did not complete every job");
  stop_runner(1);
  /* Each job finished once; the killed runner's runs never finished. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run WHERE "
                                "finished_at IS NOT NULL"),
               12);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(DISTINCT n) FROM qprobe_run "
                                "WHERE finished_at IS NOT NULL"),
               12);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "attempt = 2"),
               held, "reclaimed jobs should show their second attempt");
  /* Reclaimed rows kept their place in line: run_at is still the time
   * they were queued, not the time of the reclaim. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "run_at <> created_at"),
               0, "a reclaimed job went to the back of the queue");
  char *log = runner_log(1);
  cr_expect(strstr(log, "whose lease expired"), "%s", log);
  free(log);
}

Test(queue, concurrency_key_limit_1_never_overlaps_across_runners) {
  configure(8, NULL, NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload, "
                        "concurrency_key, concurrency_limit) SELECT "
                        "'qprobe.record', jsonb_build_object('n', g, "
                        "'sleep_ms', 40), 'org-1', 1 FROM "
                        "generate_series(1, 20) g"));
  start_runner(NULL);
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             20, 60000));
  stop_runner(0);
  stop_runner(1);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run"), 20);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run a JOIN "
                                "qprobe_run b ON a.id < b.id AND a.started_at "
                                "< b.finished_at AND b.started_at < "
                                "a.finished_at"),
               0, "two runs with the same key overlapped");
}

Test(queue, different_concurrency_keys_run_in_parallel) {
  configure(16, NULL, NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload, "
                        "concurrency_key, concurrency_limit) SELECT "
                        "'qprobe.record', jsonb_build_object('n', g, "
                        "'sleep_ms', 500), 'org-' || g, 1 FROM "
                        "generate_series(1, 20) g"));
  start_runner(NULL);
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             20, 60000));
  stop_runner(0);
  stop_runner(1);
  cr_expect_gt(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run a JOIN "
                                "qprobe_run b ON a.id < b.id AND a.started_at "
                                "< b.finished_at AND b.started_at < "
                                "a.finished_at"),
               20, "runs with different keys did not overlap");
  /* 20 x 500 ms in series would take 10 s; in parallel about 1 s, which a
   * loaded machine may stretch but not to the series' length. */
  cr_expect_lt(rt_pg_count(dsn, "SELECT (extract(epoch FROM max(finished_at) "
                                "- min(started_at)) * 1000)::bigint FROM "
                                "qprobe_run"),
               10000);
}

Test(queue, failing_job_retries_with_backoff_then_dies_with_its_last_error) {
  configure(4, NULL, NULL);
  /* n=1 succeeds on its third attempt; n=2 never does within 3. */
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload, max_attempts)"
                        " VALUES ('qprobe.record', '{\"n\":1,\"fail_until\":3}',"
                        " 5), ('qprobe.record', '{\"n\":2,\"fail_until\":100}',"
                        " 3)"));
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state IN "
                             "('completed', 'dead')",
                             2, 30000));
  cr_expect_eq(rt_pg_count(dsn, "SELECT attempt FROM runner.job WHERE "
                                "payload->>'n' = '1' AND state = 'completed'"),
               3);
  cr_expect_eq(rt_pg_count(dsn, "SELECT attempt FROM runner.job WHERE "
                                "payload->>'n' = '2' AND state = 'dead'"),
               3);
  char *error = rt_pg_query(dsn, "SELECT last_error FROM runner.job WHERE "
                                 "state = 'dead'");
  cr_expect(error && strstr(error, "qprobe n=2 attempt 3 failed"), "%s",
            error);
  free(error);
  /* Backoff doubles (200 ms, then 400 ms, each +-25%). */
  long gap1 = rt_pg_count(dsn, "SELECT (extract(epoch FROM s[2] - s[1]) * "
                               "1000)::bigint FROM (SELECT array_agg("
                               "started_at ORDER BY id) s FROM qprobe_run "
                               "WHERE n = 2) x");
  long gap2 = rt_pg_count(dsn, "SELECT (extract(epoch FROM s[3] - s[2]) * "
                               "1000)::bigint FROM (SELECT array_agg("
                               "started_at ORDER BY id) s FROM qprobe_run "
                               "WHERE n = 2) x");
  cr_expect_geq(gap1, 150, "first retry after %ld ms", gap1);
  cr_expect_geq(gap2, 300, "second retry after %ld ms", gap2);
  /* Milliseconds, not seconds; the bound leaves room for a loaded
   * machine's scheduling delay on top of the backoff. */
  cr_expect_lt(gap1, 20000);

  /* The operator sees it dead and revives it: three more attempts. */
  char *out = NULL, *err = NULL;
  char *jobs_argv[] = {RT_RUNNER, "jobs", "--json", "-c", runner.conf, NULL};
  cr_expect_eq(rt_run(jobs_argv, NULL, NULL, &out, &err), 0, "%s", err);
  cr_expect(strstr(out, "\"dead\": 1"), "%s", out);
  free(out);
  free(err);
  char *id = rt_pg_query(dsn, "SELECT id FROM runner.job WHERE state = "
                              "'dead'");
  char *retry_argv[] = {RT_RUNNER, "retry", id, "-c", runner.conf, NULL};
  cr_expect_eq(rt_run(retry_argv, NULL, NULL, &out, &err), 0, "%s", err);
  free(out);
  free(err);
  cr_expect(rt_pg_wait_count(dsn, "SELECT count(*) FROM qprobe_run WHERE n = 2",
                             6, 20000));
  cr_expect(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'dead'",
                             1, 20000));
  free(id);
  /* Retrying a job that is not dead is refused. */
  id = rt_pg_query(dsn, "SELECT id FROM runner.job WHERE state = "
                        "'completed'");
  char *done_argv[] = {RT_RUNNER, "retry", id, "-c", runner.conf, NULL};
  cr_expect_eq(rt_run(done_argv, NULL, NULL, &out, &err), 1);
  cr_expect(strstr(err, "is completed, not dead"), "%s", err);
  free(out);
  free(err);
  free(id);
  char *bad_argv[] = {RT_RUNNER, "retry", "999999", "-c", runner.conf, NULL};
  cr_expect_eq(rt_run(bad_argv, NULL, NULL, &out, &err), 1);
  cr_expect(strstr(err, "no job 999999"), "%s", err);
  free(out);
  free(err);
  stop_runner(0);
}

Test(queue, same_idempotency_key_twice_adds_one_job) {
  configure(2, NULL, NULL);
  char *out1 = NULL, *out2 = NULL, *err = NULL;
  char *argv[] = {RT_RUNNER,           "enqueue", "qprobe.record", "{\"n\":7}",
                  "--idempotency-key", "order-7", "--json",        "-c",
                  runner.conf,         NULL};
  cr_assert_eq(rt_run(argv, NULL, NULL, &out1, &err), 0, "%s", err);
  free(err);
  cr_assert_eq(rt_run(argv, NULL, NULL, &out2, &err), 0, "%s", err);
  free(err);
  cr_expect(strstr(out1, "\"created\": true"), "%s", out1);
  cr_expect(strstr(out2, "\"created\": false"), "%s", out2);
  /* Both answers name the same job. */
  cr_expect_eq(strncmp(out1, out2, strcspn(out1, ",")), 0, "%s vs %s", out1,
               out2);
  free(out1);
  free(out2);
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             1, 15000));
  /* Still a no-op while the completed row is kept. */
  cr_assert_eq(rt_run(argv, NULL, NULL, &out1, &err), 0, "%s", err);
  cr_expect(strstr(out1, "\"created\": false"), "%s", out1);
  free(out1);
  free(err);
  usleep(700 * 1000);
  stop_runner(0);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job"), 1);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run"), 1);
}

Test(queue, enqueue_rejects_bad_input_with_a_clear_error) {
  configure(2, "max_payload = 64\n", NULL);
  static const struct {
    const char *event, *payload, *expect;
    int rc;
  } cases[] = {
      {"qprobe.record", "{\"n\":", "payload is not valid JSON", 1},
      {"qprobe.record", "[1,2]", "payload must be a JSON object", 1},
      {"nosuch.job", "{}", "unknown job \"nosuch.job\"", 1},
      {"qprobe.record",
       "{\"key\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
       "larger than max_payload", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *out = NULL, *err = NULL;
    char *argv[] = {RT_RUNNER,
                    "enqueue",
                    (char *)cases[i].event,
                    (char *)cases[i].payload,
                    "-c",
                    runner.conf,
                    NULL};
    int rc = rt_run(argv, NULL, NULL, &out, &err);
    cr_expect_eq(rc, cases[i].rc, "case %zu: exit %d", i, rc);
    cr_expect(strstr(err, cases[i].expect), "case %zu: %s", i, err);
    free(out);
    free(err);
  }
  char *out = NULL, *err = NULL;
  char *usage[] = {RT_RUNNER, "enqueue", "-c", runner.conf, NULL};
  cr_expect_eq(rt_run(usage, NULL, NULL, &out, &err), 2);
  free(out);
  free(err);
  char *bad_flag[] = {RT_RUNNER, "enqueue", "qprobe.record", "{}", "--priority",
                      "high",    "-c",      runner.conf,     NULL};
  cr_expect_eq(rt_run(bad_flag, NULL, NULL, &out, &err), 2);
  free(out);
  free(err);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job"), 0);
}

/* Lower priority first: what is waiting at priority 10 (a sweep's
 * customers) is claimed after a job at the default 0 (the asset sync), even
 * one queued later. */
Test(queue, a_lower_priority_value_is_claimed_first) {
  configure(1, NULL, NULL);
  const char *keys[] = {"sweep-1", "sweep-2", "sync"};
  const char *priorities[] = {"10", "10", "0"};
  for (int i = 0; i < 3; i++) {
    char payload[64];
    snprintf(payload, sizeof payload, "{\"n\":%d,\"key\":\"%s\"}", i, keys[i]);
    char *argv[] = {RT_RUNNER, "enqueue",    "qprobe.record",
                    payload,   "--priority", (char *)priorities[i],
                    "-c",      runner.conf,  NULL};
    char *err = NULL;
    cr_assert_eq(rt_run(argv, NULL, NULL, NULL, &err), 0, "%s", err);
    free(err);
  }
  start_runner(NULL);
  cr_expect(
      rt_pg_wait_count(dsn,
                       "SELECT count(*) FROM qprobe_run WHERE finished_at IS"
                       " NOT NULL",
                       3, 30000));
  stop_runner(0);
  char *order = rt_pg_query(dsn, "SELECT string_agg(key, ',' ORDER BY id)"
                                 " FROM qprobe_run");
  cr_expect_str_eq(order, "sync,sweep-1,sweep-2");
  free(order);
}

/* lease_owner is cleared when a run ends; finished_by keeps which of two
 * runners ended each row's last attempt, as host:pid:nonce. */
Test(queue, each_finished_job_names_the_runner_that_ran_it) {
  configure(4, NULL, NULL);
  start_runner(NULL);
  start_runner(NULL);
  pid_t pids[2] = {procs[0].pid, procs[1].pid};
  for (int i = 0; i < 2; i++)
    cr_assert(rt_wait_for_text(procs[i].err_path, "using the queue", 1,
                               15000),
              "runner %d did not start its queue", i);
  /* 200 that complete, one that fails once first, one dead at once. */
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) SELECT "
                        "'qprobe.record', jsonb_build_object('n', g, "
                        "'sleep_ms', 20) FROM generate_series(1, 200) g"));
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) VALUES "
                        "('qprobe.record', '{\"n\":1001,\"fail_until\":2}'),"
                        " ('qprobe.record', '{\"n\":1002,\"raise\":"
                        "\"23505\"}')"));
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state IN "
                             "('completed', 'dead')",
                             202, 60000),
            "the jobs did not finish");
  stop_runner(0);
  stop_runner(1);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "finished_by IS NULL OR finished_by !~ "
                                "'^[^:]*:[0-9]+:[0-9a-f]{8}$'"),
               0, "a finished row names no runner");
  /* Each row's finisher is the process that recorded its last run. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job j CROSS "
                                "JOIN LATERAL (SELECT r.pid FROM qprobe_run r"
                                " WHERE r.n = (j.payload->>'n')::int ORDER BY"
                                " r.id DESC LIMIT 1) last WHERE split_part("
                                "j.finished_by, ':', 2)::int = last.pid"),
               202);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(DISTINCT finished_by) FROM "
                                "runner.job"),
               2);
  char sql[256];
  for (int i = 0; i < 2; i++) {
    snprintf(sql, sizeof sql, "SELECT count(*) FROM runner.job WHERE "
             "split_part(finished_by, ':', 2) = '%ld'", (long)pids[i]);
    cr_expect_gt(rt_pg_count(dsn, sql), 0, "runner %d finished nothing", i);
  }
  cr_expect_eq(rt_pg_count(dsn, "SELECT attempt FROM runner.job WHERE "
                                "payload->>'n' = '1001' AND state = "
                                "'completed'"),
               2);

  /* `jobs` shows it, as text and in --json. */
  char *dead_by = rt_pg_query(dsn, "SELECT finished_by FROM runner.job "
                                   "WHERE state = 'dead'");
  cr_assert(dead_by && *dead_by);
  char *argv[] = {RT_RUNNER, "jobs", "-c", runner.conf, NULL};
  char *out = NULL, *err = NULL;
  cr_assert_eq(rt_run(argv, NULL, NULL, &out, &err), 0, "%s", err);
  char expect[256];
  snprintf(expect, sizeof expect, " on %s: ", dead_by);
  cr_expect(strstr(out, expect), "no \"%s\" in:\n%s", expect, out);
  cr_expect(strstr(out, "recently completed (20):"), "%s", out);
  free(out);
  free(err);
  char *json_argv[] = {RT_RUNNER, "jobs", "--json", "-c", runner.conf, NULL};
  cr_assert_eq(rt_run(json_argv, NULL, NULL, &out, &err), 0, "%s", err);
  snprintf(expect, sizeof expect, "\"finished_by\": \"%s\"", dead_by);
  cr_expect(strstr(out, expect), "no %s in:\n%s", expect, out);
  char *completed = strstr(out, "\"recently_completed\"");
  cr_expect(completed && strstr(completed, "\"finished_by\": \""), "%s", out);
  free(out);
  free(err);
  free(dead_by);
}

/* A run whose runner vanished and whose lease ran out on its last attempt
 * dies by a peer's reclaim: finished_by names the runner that lost it. */
Test(queue, a_job_dead_by_an_expired_lease_names_the_runner_that_lost_it) {
  configure(1, "lease = 2s\n", NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, state, attempt, "
                        "max_attempts, lease_owner, lease_expires_at) VALUES"
                        " ('qprobe.noop', 'running', 1, 1, "
                        "'gone-host:4242:0badf00d', now() - interval "
                        "'1 minute')"));
  start_runner(NULL);
  bool dead = rt_pg_wait_count(dsn,
                               "SELECT count(*) FROM runner.job WHERE state"
                               " = 'dead'",
                               1, 20000);
  stop_runner(0);
  cr_assert(dead, "the expired lease was not reclaimed");
  char *by = rt_pg_query(dsn, "SELECT finished_by FROM runner.job");
  cr_expect_str_eq(by, "gone-host:4242:0badf00d");
  free(by);
}

/* The tick of a cron job, as the scheduler queues it (tick_sql). */
static void queue_tick(const char *job, const char *payload) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "WITH tick AS (INSERT INTO runner.cron_tick (job_name, "
           "scheduled_at, job_id) VALUES ('%s', date_trunc('minute', now()),"
           " nextval(pg_get_serial_sequence('runner.job', 'id'))) RETURNING"
           " job_name, scheduled_at, job_id) INSERT INTO runner.job (id, "
           "name, payload, max_attempts, scheduled_at, concurrency_key, "
           "concurrency_limit) SELECT job_id, job_name, '%s', 5, "
           "scheduled_at, 'cron:' || job_name, 1 FROM tick",
           job, payload);
  free(rt_pg_query(dsn, sql));
}

/* A due cron tick (which only fans out) is claimed at the next free slot,
 * not after every fan-out row queued before it at its priority; it stays
 * behind a lower priority value, and behind its own running limit. */
Test(queue, a_due_cron_tick_is_claimed_ahead_of_queued_fan_out_children) {
  configure(1, NULL,
            "[job \"sweep\"]\nplugin = qprobe\njob = record\n\n"
            "[job \"held\"]\nplugin = qprobe\njob = record\n");
  /* 30 due children of one completed run (due a minute ago), ... */
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, state, attempt, "
                        "finished_at) VALUES ('qprobe.record', 'completed',"
                        " 1, now())"));
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload, parent_id, "
                        "run_at) SELECT 'qprobe.record', jsonb_build_object("
                        "'n', g, 'key', 'child'), (SELECT min(id) FROM "
                        "runner.job), now() - interval '1 minute' FROM "
                        "generate_series(1, 30) g"));
  /* ... then an urgent event at a lower priority value, ... */
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload, priority) "
                        "VALUES ('qprobe.record', '{\"key\":\"urgent\"}', "
                        "-1)"));
  /* ... the due tick of "sweep", and one of "held", whose previous tick
   * another runner still runs. */
  queue_tick("sweep", "{\"key\":\"tick\"}");
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, state, attempt, "
                        "concurrency_key, concurrency_limit, lease_owner, "
                        "lease_expires_at) VALUES ('held', 'running', 1, "
                        "'cron:held', 1, 'elsewhere', now() + interval "
                        "'1 hour')"));
  queue_tick("held", "{\"key\":\"held\"}");
  start_runner(NULL);
  bool done = rt_pg_wait_count(dsn,
                               "SELECT count(*) FROM qprobe_run WHERE "
                               "finished_at IS NOT NULL",
                               32, 30000);
  stop_runner(0);
  cr_assert(done, "only %ld of 32 runs finished",
            rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run WHERE "
                             "finished_at IS NOT NULL"));
  char *order = rt_pg_query(dsn, "SELECT string_agg(key, ',' ORDER BY id) "
                                 "FROM (SELECT id, key FROM qprobe_run "
                                 "ORDER BY id LIMIT 3) f");
  cr_expect_str_eq(order, "urgent,tick,child");
  free(order);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run WHERE key ="
                                " 'held'"),
               0, "a tick ran beside its previous one");
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE name ="
                                " 'held' AND state = 'available' AND attempt "
                                "= 0"),
               1);
}

static void missed_runs(const char *policy, long expect_runs) {
  char jobs[256];
  snprintf(jobs, sizeof jobs,
           "[job \"every\"]\nplugin = qprobe\njob = record\n"
           "schedule = * * * * *\nmissed_runs = %s\n",
           policy);
  configure(2, NULL, jobs);
  /* The last tick was ten minutes before the clock's current minute m. */
  long long m = (real_now_ms() / 60000 + 5) * 60000;
  char sql[256], start[32];
  snprintf(sql, sizeof sql, "INSERT INTO runner.cron_tick (job_name, "
           "scheduled_at) VALUES ('every', to_timestamp(%lld))",
           m / 1000 - 600);
  free(rt_pg_query(dsn, sql));
  /* 20 s into minute m at 60x: m+1 is due after 0.67 s, so wait less. */
  snprintf(start, sizeof start, "%lld", m + 20000);
  start_runner(start);
  if (expect_runs)
    cr_expect(rt_pg_wait_count(dsn,
                               "SELECT count(*) FROM runner.job WHERE state = "
                               "'completed'",
                               expect_runs, 10000));
  else
    cr_expect(rt_wait_for_text(procs[0].err_path, "10 missed tick(s) since",
                               1, 10000),
              "the runner never decided on the missed ticks");
  stop_runner(0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM runner.job WHERE "
           "scheduled_at = to_timestamp(%lld)", m / 1000);
  cr_expect_eq(rt_pg_count(dsn, sql), expect_runs,
               "the latest missed tick (minute m) ran %ld time(s)",
               rt_pg_count(dsn, sql));
  snprintf(sql, sizeof sql, "SELECT count(*) FROM runner.job WHERE "
           "scheduled_at < to_timestamp(%lld)", m / 1000);
  cr_expect_eq(rt_pg_count(dsn, sql), 0, "an older missed tick ran");
}

Test(queue, missed_runs_once_runs_the_latest_missed_tick_only) {
  missed_runs("once", 1);
  char *log = runner_log(0);
  cr_expect(strstr(log, "10 missed tick(s)"), "%s", log);
  free(log);
}

Test(queue, missed_runs_skip_runs_none_of_them) {
  missed_runs("skip", 0);
  char *log = runner_log(0);
  cr_expect(strstr(log, "10 missed tick(s) since") &&
                strstr(log, "skipped (missed_runs = skip)"),
            "%s", log);
  free(log);
}

Test(queue, emitted_events_become_jobs_only_when_the_run_completes) {
  configure(4, NULL, NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload, max_attempts)"
                        " VALUES ('qprobe.record', '{\"n\":5,\"emit\":3}', 1),"
                        " ('qprobe.record', '{\"n\":6,\"emit\":3,"
                        "\"fail_after_emit\":true}', 1)"));
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state IN "
                             "('completed', 'dead')",
                             5, 20000));
  usleep(800 * 1000);
  stop_runner(0);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job c JOIN "
                                "runner.job p ON c.parent_id = p.id WHERE "
                                "p.payload->>'n' = '5'"),
               3);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run WHERE n "
                                "BETWEEN 5000 AND 5002"),
               3);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run WHERE n "
                                "BETWEEN 6000 AND 6002"),
               0, "a failed run's events were inserted");
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job"), 5);
}

Test(queue, sigterm_returns_unfinished_jobs_to_the_queue) {
  configure(2, NULL, NULL);
  rt_runner_write_conf(&runner, "workers = 2\ndrain_timeout = 500ms\n", dsn,
                       NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) VALUES "
                        "('qprobe.record', '{\"n\":1,\"sleep_ms\":60000}'),"
                        " ('qprobe.record', '{\"n\":2,\"sleep_ms\":60000}'),"
                        " ('qprobe.record', '{\"n\":3,\"sleep_ms\":60000}')"));
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn, "SELECT count(*) FROM qprobe_run", 2, 15000));
  stop_runner(0);
  /* Nothing is left leased: peers can take all three at once. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE state "
                                "= 'available' AND attempt = 0 AND "
                                "lease_owner IS NULL AND run_at <= now()"),
               3);
  char *log = runner_log(0);
  cr_expect(strstr(log, "drain deadline reached"), "%s", log);
  free(log);
}

Test(queue, reload_keeps_in_flight_jobs_and_stops_claiming_removed_ones) {
  configure(4, NULL,
            "[job \"slow\"]\nplugin = qprobe\njob = record\n");
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) VALUES "
                        "('slow', '{\"n\":1,\"sleep_ms\":1500}')"));
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn, "SELECT count(*) FROM qprobe_run", 1, 15000));
  /* Remove the job and reload while its run is in flight. */
  char path[600];
  snprintf(path, sizeof path, "%s/conf.d/10-jobs.conf", runner.dir);
  rt_write_file(path, "", 0644);
  rt_proc_kill(&procs[0], SIGHUP);
  cr_assert(rt_wait_for_text(procs[0].err_path, "reload done", 1, 10000));
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) VALUES "
                        "('slow', '{\"n\":2}')"));
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             1, 10000));
  usleep(1500 * 1000);
  stop_runner(0);
  /* The in-flight run completed once; the new row waits for a runner that
   * still has the job. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run WHERE n = 1 "
                                "AND finished_at IS NOT NULL"),
               1);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "payload->>'n' = '2' AND state = 'available' "
                                "AND attempt = 0"),
               1);
}

Test(queue, database_down_at_start_and_restarted_mid_run_loses_and_doubles_nothing) {
  cluster_create();
  configure(8, NULL, NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) SELECT "
                        "'qprobe.record', jsonb_build_object('n', g, "
                        "'sleep_ms', 20) FROM generate_series(1, 300) g"));
  cr_assert_eq(cluster_ctl("stop"), 0);
  start_runner(NULL);
  cr_assert(rt_wait_for_text(procs[0].err_path, "unreachable", 1, 15000),
            "the runner did not say the database is down");
  cr_assert_eq(cluster_ctl("start"), 0);
  cr_assert(rt_wait_for_text(procs[0].err_path, "database reachable again", 1,
                             30000));
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             60, 30000));
  /* Restart while jobs are claimed, running and being written back. */
  cr_assert_eq(cluster_ctl("restart"), 0);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             300, 90000),
            "only %ld of 300 completed after the restart",
            rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'"));
  stop_runner(0);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "state <> 'completed'"),
               0);
  /* Runs cut short by the restart were retried; each n finished once. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run WHERE "
                                "finished_at IS NOT NULL"),
               300);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(DISTINCT n) FROM qprobe_run "
                                "WHERE finished_at IS NOT NULL"),
               300);
  char *log = runner_log(0);
  cr_expect_geq(rt_count_text(procs[0].err_path, "database reachable again"),
                2, "%s", log);
  free(log);
}

Test(queue, completed_rows_past_retention_are_pruned_and_others_kept) {
  configure(2, "retention = 1s\nlease = 2s\n", NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, state, finished_at, "
                        "attempt) VALUES ('qprobe.noop', 'completed', now() - "
                        "interval '1 hour', 1), ('qprobe.noop', 'dead', now() -"
                        " interval '1 hour', 5), ('qprobe.noop', 'completed', "
                        "now() + interval '1 hour', 1)"));
  start_runner(NULL);
  bool pruned = false;
  for (int i = 0; i < 100 && !pruned; i++) {
    pruned = rt_pg_count(dsn, "SELECT count(*) FROM runner.job") == 2;
    usleep(100 * 1000);
  }
  stop_runner(0);
  cr_expect(pruned, "the old completed row is still there");
  /* Dead rows stay for the operator; recent completions stay too. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE state "
                                "= 'dead'"),
               1);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE state "
                                "= 'completed'"),
               1);
}

/* Two runners, a 4 s lease, 16 jobs of 18 s each, and the database away
 * for 9 s while they run: the owners renew on their return before anyone
 * reclaims, so nothing runs twice, every first outcome is kept and no
 * attempt is spent. */
Test(queue, jobs_outliving_a_database_outage_longer_than_the_lease_run_once,
     .timeout = 240) {
  cluster_create();
  configure(8, "lease = 4s\n", NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) SELECT "
                        "'qprobe.record', jsonb_build_object('n', g, "
                        "'sleep_ms', 18000) FROM generate_series(1, 16) g"));
  start_runner(NULL);
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn, "SELECT count(*) FROM qprobe_run", 16, 20000),
            "not all 16 jobs started");
  cr_assert_eq(rt_pg_count(dsn, "SELECT count(DISTINCT pid) FROM qprobe_run"),
               2, "both runners should hold leases");
  cr_assert_eq(cluster_ctl("stop"), 0);
  /* The outage itself: more than twice the lease. */
  usleep(9000 * 1000);
  cr_assert_eq(cluster_ctl("start"), 0, "cluster did not start again");
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state IN "
                             "('completed', 'dead')",
                             16, 60000),
            "only %ld of 16 finished",
            rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE state IN "
                             "('completed', 'dead')"));
  stop_runner(0);
  stop_runner(1);
  long runs = rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run");
  long completed = rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                    "state = 'completed'");
  long max_attempt = rt_pg_count(dsn, "SELECT max(attempt) FROM runner.job");
  fprintf(stderr, "outage test: %ld runs of 16 jobs, %ld completed, highest "
          "attempt %ld\n", runs, completed, max_attempt);
  cr_expect_eq(runs, 16, "%ld runs of 16 jobs: some ran twice", runs);
  cr_expect_eq(completed, 16);
  cr_expect_eq(max_attempt, 1, "the outage cost an attempt");
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run WHERE "
                                "finished_at IS NOT NULL"),
               16);
  for (int i = 0; i < 2; i++) {
    char *log = runner_log(i);
    cr_expect(strstr(log, "unreachable"), "runner %d missed the outage:\n%s",
              i, log);
    cr_expect(!strstr(log, "was lost") && !strstr(log, "NOT recorded") &&
                  !strstr(log, "could not be renewed") &&
                  !strstr(log, "whose lease expired"),
              "runner %d:\n%s", i, log);
    free(log);
  }
}

Test(queue, a_free_key_behind_200_jobs_of_a_saturated_key_is_claimed_at_once) {
  configure(2, NULL, NULL);
  /* Key "busy" is at its limit of 1, held by another runner for an hour. */
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, state, attempt, "
                        "concurrency_key, concurrency_limit, lease_owner, "
                        "lease_expires_at) VALUES ('qprobe.noop', 'running', "
                        "1, 'busy', 1, 'elsewhere', now() + interval "
                        "'1 hour')"));
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload, "
                        "concurrency_key, concurrency_limit, run_at) SELECT "
                        "'qprobe.record', jsonb_build_object('n', g), 'busy', "
                        "1, now() - interval '1 minute' FROM "
                        "generate_series(1, 200) g"));
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload, "
                        "concurrency_key, concurrency_limit) VALUES "
                        "('qprobe.record', '{\"n\":1000}', 'free', 1)"));
  start_runner(NULL);
  bool done =
      rt_pg_wait_count(dsn,
                       "SELECT count(*) FROM runner.job WHERE "
                       "concurrency_key = 'free' AND state = 'completed'",
                       1, 10000);
  stop_runner(0);
  cr_expect(done, "the job of the free key was never claimed");
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "concurrency_key = 'busy' AND state = "
                                "'available' AND attempt = 0"),
               200, "a job of the saturated key ran");
}

Test(queue, sqlstate_decides_between_retry_and_dead) {
  configure(4, NULL, NULL);
  /* n=1: a serialization failure twice, then success; n=2: a unique
   * violation, which no retry can mend. */
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload, max_attempts)"
                        " VALUES ('qprobe.record', '{\"n\":1,\"raise\":"
                        "\"40001\",\"fail_until\":3}', 5), ('qprobe.record',"
                        " '{\"n\":2,\"raise\":\"23505\"}', 5)"));
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state IN "
                             "('completed', 'dead')",
                             2, 30000));
  stop_runner(0);
  cr_expect_eq(rt_pg_count(dsn, "SELECT attempt FROM runner.job WHERE "
                                "payload->>'n' = '1' AND state = 'completed'"),
               3);
  cr_expect_eq(rt_pg_count(dsn, "SELECT attempt FROM runner.job WHERE "
                                "payload->>'n' = '2' AND state = 'dead'"),
               1, "a unique violation was retried");
  char *error = rt_pg_query(dsn, "SELECT last_error FROM runner.job WHERE "
                                 "state = 'dead'");
  cr_expect(error && strstr(error, "SQLSTATE 23505"), "%s", error);
  free(error);
}

/* A peer reclaimed the row (as after an outage the owner did not come back
 * from in time) but nobody claimed it again yet: the owner's successful
 * outcome is still recorded, once, and the runner says what happened. */
Test(queue, a_success_after_a_lost_lease_is_kept_while_the_row_waits) {
  configure(1, "lease = 2s\n", NULL);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, payload) VALUES "
                        "('qprobe.record', '{\"n\":1,\"sleep_ms\":3000}')"));
  start_runner(NULL);
  cr_assert(rt_pg_wait_count(dsn, "SELECT count(*) FROM qprobe_run", 1, 15000));
  /* What a peer's reclaim writes. */
  free(rt_pg_query(dsn, "UPDATE runner.job SET state = 'available', "
                        "lease_lost_by = lease_owner, lease_owner = NULL, "
                        "lease_expires_at = NULL, last_error = 'lease "
                        "expired' WHERE state = 'running'"));
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             1, 15000),
            "the successful outcome was dropped");
  stop_runner(0);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM qprobe_run"), 1);
  cr_expect_eq(rt_pg_count(dsn, "SELECT attempt FROM runner.job"), 1);
  char *log = runner_log(0);
  cr_expect(strstr(log, "could not be renewed"), "%s", log);
  free(log);
}
