/* bench_queue - throughput and claim latency of the durable queue with one
 * and with two runner processes on one PostgreSQL. Prints figures; it is
 * not a pass/fail test.
 *
 *   REGENTRA_TEST_DSN=postgresql://... bench_queue [N] [workers]
 *
 * Throughput: N no-op jobs are inserted, then the runners start; jobs/s is
 * N over the time from the first claim to the last completion. Latency:
 * with the runners idle and listening, jobs are inserted one at a time
 * (200 per second for 2 s); claim latency is started_at - run_at.
 * Behind a busy key: 20000 rows wait on a concurrency key at its limit
 * ahead of one row of a free key; the figure is that row's claim latency
 * and the time one claim_jobs call takes with that backlog. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

#define MIGRATIONS RT_SOURCE_DIR "/runner/migrations:" RT_SOURCE_DIR "/sdk/devsrc/migrations"

static char dir[256], conf[300], dsn[700];

static void configure(int workers) {
  snprintf(dsn, sizeof dsn, "%s", rt_pg_fresh_db());
  rt_make_temp_dir(dir, sizeof dir, "bench");
  char path[600], text[2048];
  snprintf(path, sizeof path, "%s/plugins", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/plugins/qprobe.so", dir);
  rt_copy_file(RT_QPROBE, path, 0755);
  snprintf(conf, sizeof conf, "%s/runner.conf", dir);
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s/plugins\nstate_dir = %s/state\n"
           "workers = %d\nlog_level = warning\n"
           "[database]\nurl = %s\nmigrations_dir = %s\npool_size = 4\n",
           dir, dir, workers, dsn, MIGRATIONS);
  rt_write_file(conf, text, 0644);
  char *argv[] = {RT_RUNNER, "migrate", "-c", conf, NULL};
  if (rt_run(argv, NULL, NULL, NULL, NULL) != 0) {
    fprintf(stderr, "bench_queue: migrate failed\n");
    exit(1);
  }
}

static void wait_all(long n) {
  for (int i = 0; i < 6000; i++) {
    if (rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE state = "
                         "'completed'") >= n)
      return;
    usleep(50 * 1000);
  }
  fprintf(stderr, "bench_queue: jobs did not complete in 5 minutes\n");
  exit(1);
}

typedef struct figures_s {
  double jobs_per_s;
  double p50_ms, p99_ms;
} figures_t;

static double query_double(const char *sql) {
  char *v = rt_pg_query(dsn, sql);
  double d = v ? strtod(v, NULL) : -1;
  free(v);
  return d;
}

static figures_t run(int processes, long n, int workers) {
  configure(workers);
  figures_t f = {0};
  char sql[512];
  snprintf(sql, sizeof sql,
           "INSERT INTO runner.job (name) SELECT 'qprobe.noop' FROM "
           "generate_series(1, %ld)",
           n);
  free(rt_pg_query(dsn, sql));
  rt_proc_t procs[2];
  char *argv[] = {RT_RUNNER, "serve", "-c", conf, NULL};
  for (int i = 0; i < processes; i++)
    rt_proc_start(&procs[i], argv, NULL, NULL);
  wait_all(n);
  f.jobs_per_s = (double)n / query_double(
                                 "SELECT extract(epoch FROM max(finished_at) - "
                                 "min(started_at)) FROM runner.job");
  /* Latency: single inserts into an idle queue. */
  free(rt_pg_query(dsn, "DELETE FROM runner.job"));
  for (int i = 0; i < 400; i++) {
    free(rt_pg_query(dsn, "INSERT INTO runner.job (name) VALUES "
                          "('qprobe.noop')"));
    usleep(5000);
  }
  wait_all(400);
  f.p50_ms = query_double("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY "
                          "extract(epoch FROM started_at - run_at) * 1000) "
                          "FROM runner.job");
  f.p99_ms = query_double("SELECT percentile_cont(0.99) WITHIN GROUP (ORDER "
                          "BY extract(epoch FROM started_at - run_at) * 1000) "
                          "FROM runner.job");
  for (int i = 0; i < processes; i++) {
    rt_proc_kill(&procs[i], SIGTERM);
    rt_proc_wait(&procs[i], 30000);
  }
  rt_remove_tree(dir);
  return f;
}

/* Claim latency of one free row queued behind `backlog` rows of a key at
 * its limit, and the cost of a claim that finds nothing but that backlog;
 * -1 when the free row is not claimed within 30 s. */
static void behind_busy_key(long backlog, double *latency_ms,
                            double *claim_ms) {
  configure(4);
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, state, attempt, "
                        "concurrency_key, lease_owner, lease_expires_at) "
                        "VALUES ('qprobe.noop', 'running', 1, 'busy', "
                        "'elsewhere', now() + interval '1 hour')"));
  char sql[512];
  snprintf(sql, sizeof sql,
           "INSERT INTO runner.job (name, concurrency_key, run_at) SELECT "
           "'qprobe.noop', 'busy', now() - interval '1 minute' FROM "
           "generate_series(1, %ld)",
           backlog);
  free(rt_pg_query(dsn, sql));
  free(rt_pg_query(dsn, "ANALYZE runner.job"));
  /* The clock is read after the claim's rows are counted. */
  *claim_ms = query_double(
      "SELECT extract(epoch FROM (SELECT clock_timestamp() FROM (SELECT "
      "count(*) FROM runner.claim_jobs('bench', ARRAY['qprobe.noop'], 4, "
      "1000)) c) - statement_timestamp()) * 1000");
  rt_proc_t proc;
  char *argv[] = {RT_RUNNER, "serve", "-c", conf, NULL};
  rt_proc_start(&proc, argv, NULL, NULL);
  usleep(1000 * 1000); /* idle and listening */
  free(rt_pg_query(dsn, "INSERT INTO runner.job (name, concurrency_key) "
                        "VALUES ('qprobe.noop', 'free')"));
  *latency_ms = -1;
  for (int i = 0; i < 600 && *latency_ms < 0; i++) {
    if (rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                         "concurrency_key = 'free' AND state = 'completed'") ==
        1)
      *latency_ms = query_double(
          "SELECT extract(epoch FROM started_at - run_at) * 1000 FROM "
          "runner.job WHERE concurrency_key = 'free'");
    else
      usleep(50 * 1000);
  }
  rt_proc_kill(&proc, SIGTERM);
  rt_proc_wait(&proc, 30000);
  rt_remove_tree(dir);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 5000;
  int workers = argc > 2 ? atoi(argv[2]) : 16;
  figures_t one = run(1, n, workers);
  figures_t two = run(2, n, workers);
  printf("queue benchmark: %ld no-op jobs, %d workers per process\n", n,
         workers);
  printf("  1 process : %8.0f jobs/s  claim latency p50 %.2f ms  p99 %.2f ms\n",
         one.jobs_per_s, one.p50_ms, one.p99_ms);
  printf("  2 process : %8.0f jobs/s  claim latency p50 %.2f ms  p99 %.2f ms\n",
         two.jobs_per_s, two.p50_ms, two.p99_ms);
  printf("  2/1 ratio : %.2f\n", two.jobs_per_s / one.jobs_per_s);
  double latency_ms, claim_ms;
  behind_busy_key(20000, &latency_ms, &claim_ms);
  if (latency_ms < 0)
    printf("  behind a busy key (20000 rows): free row never claimed; "
           "claim_jobs %.1f ms\n", claim_ms);
  else
    printf("  behind a busy key (20000 rows): free row claimed in %.1f ms; "
           "claim_jobs %.1f ms\n", latency_ms, claim_ms);
  return 0;
}
