/* bench_cadence - the shipped NinjaOne cadences end to end: R `serve`
 * processes on one database run the :15 asset sync and the :30 evidence
 * sweep of a generated fleet, the runners' clock sped up so both tick at
 * once. The budget is sped up alike on both sides (the simulator's limiter
 * counts on --clock-scale, the runners' windows shrink with
 * REGENTRA_CLOCK_SCALE_BUDGET=1), so hours of budget pass in minutes: a
 * paced 500-customer sweep spreads over about 5 hours of the runners'
 * clock, and the 04:15 sync runs beside it. The suite's scaled-down
 * versions are test_ninjaone_plan (ninjaone_cadence) and
 * test_ninjaone_budget.
 *
 * Prints what the simulator saw (API requests, 429s, token requests, the
 * busiest minute and hour on the sped-up clock, its CPU), the sweep's
 * pacing and requests per customer (target 6.00), the syncs', what
 * `ninjaone plan` predicted from the sync's device counts, lost leases,
 * wall time, and peak RSS and CPU per runner process.
 *
 *   bench_cadence [--customers N] [--devices MIN-MAX] [--runners R]
 *                 [--per-minute N] [--per-hour N] [--scale F]
 *                 [--timeout-min N] [--max-pages-held N]
 *
 * Defaults: 500 customers of 5-2000 devices, 1 runner, 200 a minute and
 * 1,500 an hour, clock x20, the runners' default max_pages_held. Uses REGENTRA_TEST_DSN's server (or a
 * throwaway cluster) and a fresh database. No asserts: figures only. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"
#include "rt_cadence.h"
#include "sim_client.h"

/* 2026-01-01T00:14:30Z: the sync ticks 30 s of runner time later. */
#define CLOCK_START_MS 1767226470000LL
#define MAX_RUNNERS 16

static const char *dsn;
static char dir[256], conf[320], confd[320], db_env[700];

static void die(const char *what, const char *detail) {
  fprintf(stderr, "bench_cadence: %s%s%s\n", what, detail ? ": " : "",
          detail ? detail : "");
  exit(1);
}

static long long q_int(const char *sql) {
  char *v = rt_pg_query(dsn, sql);
  long long n = v ? strtoll(v, NULL, 10) : -1;
  free(v);
  return n;
}

/* `regentra-runner ARGS... -c conf` (ARGS NULL-terminated) with the
 * database; dies on failure unless out is given. */
static int runner_cli(char **out, ...) {
  char *argv[24] = {RT_RUNNER};
  int argc = 1;
  va_list ap;
  va_start(ap, out);
  for (const char *a; (a = va_arg(ap, const char *)) && argc < 20;)
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc++] = "-c";
  argv[argc++] = conf;
  argv[argc] = NULL;
  char *env[] = {db_env, NULL};
  char *o = NULL, *e = NULL;
  int rc = rt_run(argv, env, NULL, &o, &e);
  if (rc != 0 && !out) {
    fprintf(stderr, "%s%s", o ? o : "", e ? e : "");
    die("command failed", argv[1]);
  }
  if (out)
    *out = o;
  else
    free(o);
  free(e);
  return rc;
}

/* A process's resident set now, in KiB (0 when it cannot be read). */
static long rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kib = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kib = strtol(line + 6, NULL, 10);
  if (f)
    fclose(f);
  return kib;
}

static long long tenant_stat(json_t *stats, const char *key) {
  return rt_sim_tenant_stat(stats, "eu", key);
}

static long long json_at(json_t *o, const char *a, const char *b,
                         const char *c) {
  json_t *v = json_object_get(o, a);
  if (b)
    v = json_object_get(v, b);
  if (c)
    v = json_object_get(v, c);
  return (long long)json_integer_value(v);
}

int main(int argc, char **argv) {
  int customers = 500, runners = 1;
  long per_minute = 200, per_hour = 1500, timeout_min = 300;
  long max_pages_held = 0; /* 0 = the runner's default */
  double scale = 20;
  const char *devices = "5-2000";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v)
      die("a value is missing after", a);
    if (strcmp(a, "--customers") == 0)
      customers = atoi(v);
    else if (strcmp(a, "--devices") == 0)
      devices = v;
    else if (strcmp(a, "--runners") == 0)
      runners = atoi(v);
    else if (strcmp(a, "--per-minute") == 0)
      per_minute = atol(v);
    else if (strcmp(a, "--per-hour") == 0)
      per_hour = atol(v);
    else if (strcmp(a, "--scale") == 0)
      scale = atof(v);
    else if (strcmp(a, "--timeout-min") == 0)
      timeout_min = atol(v);
    else if (strcmp(a, "--max-pages-held") == 0)
      max_pages_held = atol(v);
    else
      die("unknown option", a);
    i++;
  }
  if (customers < 1 || runners < 1 || runners > MAX_RUNNERS ||
      per_minute < 1 || per_hour < 0 || scale <= 0 || max_pages_held < 0 ||
      max_pages_held > 4096)
    die("out of range: --customers >= 1, --runners 1-16, --per-minute >= 1,"
        " --per-hour >= 0, --scale > 0, --max-pages-held 0-4096",
        NULL);

  rt_make_temp_dir(dir, sizeof dir, "bench-cadence");
  char path[512], text[8192];
  snprintf(conf, sizeof conf, "%s/runner.conf", dir);
  snprintf(confd, sizeof confd, "%s/conf.d", dir);
  snprintf(path, sizeof path, "%s/secret", dir);
  rt_write_file(path, "sim-eu-secret\n", 0600);
  char secret_file[512];
  snprintf(secret_file, sizeof secret_file, "%s", path);
  snprintf(path, sizeof path, "%s/master.key", dir);
  rt_write_file(path,
                "1 8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4"
                "c3d2e1f0\n",
                0600);

  char orgs_s[16], minute_s[24], hour_s[24], scale_s[32];
  snprintf(orgs_s, sizeof orgs_s, "%d", customers);
  snprintf(minute_s, sizeof minute_s, "%ld", per_minute);
  snprintf(hour_s, sizeof hour_s, "%ld", per_hour);
  snprintf(scale_s, sizeof scale_s, "%g", scale);
  const char *sim_args[] = {"--generate", "--seed",
                            "7",          "--orgs",
                            orgs_s,       "--devices-per-org",
                            devices,      "--rate-limit-minute",
                            minute_s,     "--rate-limit-hour",
                            hour_s,       "--clock-scale",
                            scale_s,      NULL};
  sim_proc_t sim;
  if (simc_start(&sim, sim_args) != 0)
    die("the simulator did not start", NULL);

  dsn = rt_pg_fresh_db();
  rt_pg_apply_dir(dsn, RT_SOURCE_DIR "/sdk/devsrc/migrations");
  snprintf(db_env, sizeof db_env, "REGENTRA_DATABASE_URL=%s", dsn);
  char runner_extra[64] = "";
  if (max_pages_held > 0)
    snprintf(runner_extra, sizeof runner_extra, "max_pages_held = %ld\n",
             max_pages_held);
  rt_cadence_write_conf(conf, dir, path, sim.port, per_minute, per_hour, dsn,
                        runner_extra);
  rt_cadence_write_confd(confd, RT_CADENCE_SYNC | RT_CADENCE_SWEEP);
  runner_cli(NULL, "migrate", NULL);

  /* Connect, then map every organization to a company promoted to a
   * customer, in one bulk map. */
  long long msp = q_int("INSERT INTO organization (name, kind) VALUES"
                        " ('Bench MSP', 'MSP') RETURNING id");
  char msp_s[24];
  snprintf(msp_s, sizeof msp_s, "%lld", msp);
  runner_cli(NULL, "ninjaone", "connect", "--msp-org", msp_s, "--region",
             "eu", "--client-id", "sim-eu-client", "--client-secret-file",
             secret_file, NULL);
  snprintf(path, sizeof path, "%s/map.csv", dir);
  if (rt_cadence_map_file(dsn, msp, path) == 0)
    die("no organizations discovered", NULL);
  runner_cli(NULL, "ninjaone", "map", "--msp-org", msp_s, "--from-file",
             path, "--apply", NULL);
  simc_control(&sim, "reset-stats", "{}");

  /* The runners, each with its log. */
  pid_t pids[MAX_RUNNERS];
  rt_clock_env_t clock;
  char **env = rt_clock_env(&clock, db_env, CLOCK_START_MS, scale, true);
  double t0 = rt_now_s();
  for (int i = 0; i < runners; i++) {
    pids[i] = fork();
    if (pids[i] < 0)
      die("fork", strerror(errno));
    if (pids[i] == 0) {
      snprintf(path, sizeof path, "%s/runner-%d.log", dir, i);
      if (!freopen(path, "w", stderr))
        _exit(127);
      for (char **e = env; *e; e++)
        putenv(*e);
      execl(RT_RUNNER, RT_RUNNER, "serve", "-c", conf, "-d", confd,
            (char *)NULL);
      _exit(127);
    }
  }
  /* Polled once a second: the figures are minutes long. */
  bool done = false;
  double sync_done_s = 0;
  /* Sampled each second: the most resident memory of each runner while a
   * sync runs, and while only customer sweeps do. */
  long rss_sync[MAX_RUNNERS] = {0}, rss_sweep[MAX_RUNNERS] = {0};
  while (!done && rt_now_s() - t0 < (double)timeout_min * 60) {
    sleep(1);
    bool syncing = q_int("SELECT count(*) FROM runner.job WHERE name ="
                         " 'ninjaone-asset-sync' AND state = 'running'") > 0;
    for (int i = 0; i < runners; i++) {
      long kib = rss_kib(pids[i]);
      long *peak = syncing ? &rss_sync[i] : &rss_sweep[i];
      if (kib > *peak)
        *peak = kib;
    }
    if (!sync_done_s &&
        q_int("SELECT count(*) FROM runner.job WHERE name ="
              " 'ninjaone-asset-sync' AND state = 'completed'") > 0)
      sync_done_s = rt_now_s() - t0;
    done = sync_done_s &&
           q_int("SELECT count(*) FROM runner.job WHERE name ="
                 " 'ninjaone-evidence-sweep' AND state = 'completed'") > 0 &&
           q_int("SELECT count(*) FROM runner.job WHERE name ="
                 " 'ninjaone-evidence.customer' AND state IN ('completed',"
                 " 'dead')") >= customers &&
           q_int("SELECT count(*) FROM runner.job WHERE name ="
                 " 'ninjaone-asset-sync' AND state <> 'completed'") == 0;
  }
  double wall = rt_now_s() - t0;
  simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
  json_t *stats = r.json ? json_incref(r.json) : NULL;
  simc_resp_free(&r);
  struct rusage ru[MAX_RUNNERS];
  for (int i = 0; i < runners; i++) {
    kill(pids[i], SIGTERM);
    int status;
    if (wait4(pids[i], &status, 0, &ru[i]) < 0)
      memset(&ru[i], 0, sizeof ru[i]);
  }
  long long dead =
      q_int("SELECT count(*) FROM runner.job WHERE state = 'dead'");
  long long swept = q_int("SELECT count(*) FROM runner.job WHERE name ="
                          " 'ninjaone-evidence.customer' AND state ="
                          " 'completed'");
  long long syncs = q_int("SELECT count(*) FROM runner.job WHERE name ="
                          " 'ninjaone-asset-sync' AND state = 'completed'");
  /* A job run again: its lease was lost (reclaimed) or it failed once. */
  long long rerun = q_int("SELECT count(*) FROM runner.job WHERE attempt > 1");
  long long lease_lines = 0;
  for (int i = 0; i < runners; i++) {
    snprintf(path, sizeof path, "%s/runner-%d.log", dir, i);
    FILE *f = fopen(path, "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f))
      if (strstr(line, "reclaimed") || strstr(line, "could not be renewed"))
        lease_lines++;
    if (f)
      fclose(f);
  }
  snprintf(text, sizeof text,
           "SELECT string_agg(to_char(extract(epoch FROM finished_at -"
           " started_at) / 60.0 * %g, 'FM99990.0'), ', ' ORDER BY id) FROM"
           " runner.job WHERE name = 'ninjaone-asset-sync' AND state ="
           " 'completed'",
           scale);
  char *sync_minutes = rt_pg_query(dsn, text);
  char *pacing_text =
      rt_pg_query(dsn, "SELECT result->'pacing'->0 FROM runner.job WHERE"
                       " name = 'ninjaone-evidence-sweep' AND state ="
                       " 'completed' ORDER BY id LIMIT 1");
  json_t *pacing = pacing_text ? json_loads(pacing_text, 0, NULL) : NULL;
  free(pacing_text);
  long long sweep_seen =
      q_int("SELECT coalesce(sum((result->>'requests')::bigint), 0) FROM"
            " runner.job WHERE name = 'ninjaone-evidence.customer'");
  char *plan_text = NULL;
  runner_cli(&plan_text, "ninjaone", "plan", "--msp-org", msp_s, "--json",
             NULL);
  json_t *plan = plan_text ? json_loads(plan_text, 0, NULL) : NULL;
  free(plan_text);
  json_t *cred = json_array_get(json_object_get(plan, "credentials"), 0);
  long long sync_planned =
      json_at(cred, "cadences", "asset_sync", "requests");
  long long sweep_planned =
      json_at(cred, "cadences", "evidence_sweep", "requests");
  long long api = tenant_stat(stats, "requests");

  printf("bench_cadence: %d customers (%lld devices), devices %s each, %d"
         " runner(s), budget %ld/min and %ld/h, runner clock x%g\n",
         customers, json_at(cred, "devices", NULL, NULL), devices, runners,
         per_minute, per_hour, scale);
  printf("  %s in %.1f s (asset sync done at %.1f s); %lld of %d customers"
         " swept, %lld dead job(s)\n",
         done ? "both cadences completed" : "NOT completed (timeout)", wall,
         sync_done_s, swept, customers, dead);
  printf("  simulator: %lld API requests, %lld throttled (429), %lld token"
         " request(s); busiest minute %lld of %ld, busiest hour %lld of %ld;"
         " its CPU %lld ms\n",
         api, tenant_stat(stats, "throttled"),
         tenant_stat(stats, "tokenRequests"),
         tenant_stat(stats, "peakPerMinute"), per_minute,
         tenant_stat(stats, "peakPerHour"), per_hour,
         (long long)json_integer_value(json_object_get(stats, "cpuMs")));
  printf("  sweep pacing: %s, spread over %.1f min of the runners' clock at"
         " about %lld requests/h (estimate %lld, sync %lld kept aside)%s\n",
         json_string_value(json_object_get(pacing, "mode")),
         json_number_value(json_object_get(pacing, "spread_minutes")),
         json_at(pacing, "estimated_requests_per_hour", NULL, NULL),
         json_at(pacing, "estimated_requests", NULL, NULL),
         json_at(pacing, "asset_sync_requests", NULL, NULL),
         json_is_false(json_object_get(pacing, "fits")) ? ", does NOT fit"
                                                        : "");
  printf("  asset syncs completed: %lld, minutes each (runners' clock): %s\n",
         syncs, sync_minutes ? sync_minutes : "?");
  printf("  jobs run more than once: %lld; lease lines in the logs"
         " (reclaimed / not renewed): %lld\n",
         rerun, lease_lines);
  printf("  sweep: %lld requests (runner's count), %.2f per customer"
         " (target 6.00 + pages over 1,000 rows); plan %lld (%+.1f%%)\n",
         sweep_seen, (double)sweep_seen / customers, sweep_planned,
         sweep_planned ? 100.0 * (double)(sweep_seen - sweep_planned) /
                             (double)sweep_planned
                       : 0.0);
  /* Every completed sync is planned alike. */
  sync_planned *= syncs > 0 ? syncs : 1;
  printf("  asset sync(s): %lld requests (simulator less sweep), %.2f per"
         " customer; plan %lld (%+.1f%%)\n",
         api - sweep_seen, (double)(api - sweep_seen) / customers, sync_planned,
         sync_planned ? 100.0 * (double)(api - sweep_seen - sync_planned) /
                            (double)sync_planned
                      : 0.0);
  printf("  total: %lld seen, %lld planned (%+.1f%%)\n", api,
         sync_planned + sweep_planned,
         sync_planned + sweep_planned
             ? 100.0 * (double)(api - sync_planned - sweep_planned) /
                   (double)(sync_planned + sweep_planned)
             : 0.0);
  for (int i = 0; i < runners; i++)
    printf("  runner %d: peak RSS %.1f MiB (sampled: %.1f MiB while a sync"
           " ran, %.1f MiB otherwise), CPU %.1f s\n",
           i, (double)ru[i].ru_maxrss / 1024.0, (double)rss_sync[i] / 1024.0,
           (double)rss_sweep[i] / 1024.0,
           (double)ru[i].ru_utime.tv_sec + (double)ru[i].ru_stime.tv_sec +
               (double)(ru[i].ru_utime.tv_usec + ru[i].ru_stime.tv_usec) / 1e6);
  json_decref(plan);
  json_decref(pacing);
  free(sync_minutes);
  json_decref(stats);
  simc_stop(&sim);
  rt_remove_tree(dir);
  return done ? 0 : 1;
}
