/* bench_queue - throughput and claim latency of the durable queue with one
 * and with two runner processes on one PostgreSQL. Prints figures; it is
 * not a pass/fail test.
 *
 *   REGENTRA_TEST_DSN=postgresql://... bench_queue [N] [workers]
 *
 * Throughput: N no-op jobs are inserted, then the runners start; jobs/s is
 * N over the time from the first claim to the last completion. Latency:
 * with the runners idle and listening, jobs are inserted one at a time
 * (200 per second for 2 s); claim latency is started_at - run_at. */
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
  return 0;
}
