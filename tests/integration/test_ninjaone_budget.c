/* One tenant, one budget, spread over the day: the evidence sweep's pacing
 * under `serve`, through the durable queue, against the simulator with its
 * rate limit counted on a sped-up clock (--clock-scale) and the runner's
 * clock and budget windows sped up alike (REGENTRA_CLOCK_SCALE with
 * REGENTRA_CLOCK_SCALE_BUDGET=1), so that hours of budget pass in minutes;
 * and three `serve` processes sharing one minute's budget. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cadence.h"
#include "rt_ninjaone.h"

#define SECRET "sim-eu-secret"
/* A budget a 24-customer mixed fleet cannot sweep in one hour beside its
 * asset sync: about 150 sweep requests and 26 for the sync, 142 usable. */
#define CUSTOMERS 24
#define PER_MINUTE 60
#define PER_HOUR 150
#define SCALE 40
/* 2026-01-01T00:14:30Z: the :15 sync ticks 30 s (0.75 s real) later. */
#define CLOCK_START_MS 1767226470000LL
/* 2026-01-01T00:26:00Z: the :30 sweep ticks 4 minutes (6 s real) later. */
#define SWEEP_CLOCK_START_MS 1767227160000LL
#define SWEEP_PERIOD_MS (6LL * 3600 * 1000)

static rt_nj_t h;
static long long msp;

#define q_int(...) rt_nj_int(&h, __VA_ARGS__)
#define q_text(...) rt_nj_text(&h, __VA_ARGS__)

/* The world of one test: the simulator started with sim_args, and the
 * MSP. */
static void setup_with(const char *sim_args) {
  rt_nj_setup(&h, "njbudget", SECRET,
              "1 8f1e2d3c4b5a69788796a5b4c3d2e1f0"
              "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
              sim_args);
  msp = q_int("INSERT INTO organization (name, kind) VALUES ('Acme MSP',"
              " 'MSP') RETURNING id");
}

static void setup(void) {
  char args[256];
  snprintf(args, sizeof args,
           "--generate --seed 7 --orgs %d --devices-per-org 5-1500"
           " --rate-limit-minute %d --rate-limit-hour %d --clock-scale %d",
           CUSTOMERS, PER_MINUTE, PER_HOUR, SCALE);
  setup_with(args);
}

static void teardown(void) {
  rt_nj_teardown(&h);
}

TestSuite(ninjaone_budget, .init = setup, .fini = teardown, .timeout = 900);

/* runner.conf: the connection profile with the budget (per_hour an hour),
 * and the queue. */
static void write_conf(int per_hour) {
  rt_cadence_write_conf(h.conf, h.dir, h.key_file, h.sim.port, PER_MINUTE,
                        per_hour, h.dsn, NULL);
}

/* `serve` on the sped-up clock from start_ms, with its budget windows
 * sped up alike. */
static void serve(rt_proc_t *p, const char *confd, long long start_ms,
                  double scale) {
  rt_cadence_serve(p, h.conf, confd, h.db_env, start_ms, scale, true);
}

/* The runner configured with a budget of per_hour, migrated, connected,
 * every organization mapped to a promoted customer; the simulator's
 * figures reset, so that they count only what the cadences send. */
static void connect_and_map(int per_hour, long customers) {
  write_conf(per_hour);
  char *migrate[] = {RT_RUNNER, "migrate", "-c", h.conf, NULL};
  char *err = NULL;
  cr_assert_eq(rt_run(migrate, NULL, NULL, NULL, &err), 0, "%s", err);
  free(err);
  rt_nj_connect(&h, msp, "sim-eu-client");
  rt_nj_map_all(&h, msp, customers);
  cr_assert_eq(rt_sim_post(&h.sim, "reset-stats", "{}", NULL), 0);
}

/* The sweep of a fleet too big for one hour beside the asset sync: its
 * customer jobs are spread over more than an hour of the runner's clock,
 * the last well before the next tick, each customer once; the simulator
 * sees no minute or hour over the budget and no 429, and the sync
 * completes. */
Test(ninjaone_budget, a_big_sweep_is_spread_across_its_window) {
  connect_and_map(PER_HOUR, CUSTOMERS);

  /* The :15 sync first, alone, then the :30 tick: the sweep's pacing then
   * reads this sync's device counts, as `plan` does. */
  char confd[320];
  snprintf(confd, sizeof confd, "%s/conf.d", h.dir);
  rt_cadence_write_confd(confd, RT_CADENCE_SYNC);
  rt_proc_t runner;
  serve(&runner, confd, CLOCK_START_MS, SCALE);
  bool synced = rt_cadence_wait_jobs(h.dsn, "ninjaone-asset-sync",
                                     "'completed'", 1, 300000);
  rt_nj_stop_serve(&runner, synced, "the asset sync did not complete");
  /* Then both cadences as shipped, from 00:26, on the same budget: the
   * sweep ticks at :30 and paces its customers over about 80 minutes of
   * the runner's clock, two minutes of real time. */
  rt_cadence_write_confd(confd, RT_CADENCE_SYNC | RT_CADENCE_SWEEP);
  serve(&runner, confd, SWEEP_CLOCK_START_MS, SCALE);
  bool swept = rt_cadence_wait_jobs(h.dsn, "ninjaone-evidence.customer",
                                    "'completed', 'dead'", CUSTOMERS, 600000);
  rt_nj_stop_serve(&runner, swept, "the sweep did not complete");

  /* The pacing the sweep chose, as its result says. */
  char *text = q_text("SELECT result FROM runner.job WHERE name ="
                      " 'ninjaone-evidence-sweep' AND state = 'completed'");
  json_t *result = json_loads(text ? text : "", 0, NULL);
  cr_assert_not_null(result, "sweep result: %s", text);
  free(text);
  json_t *pacing = json_array_get(json_object_get(result, "pacing"), 0);
  cr_assert_eq(json_array_size(json_object_get(result, "pacing")), 1);
  cr_expect_str_eq(json_string_value(json_object_get(pacing, "mode")),
                   "spread");
  cr_expect(json_is_true(json_object_get(pacing, "fits")));
  double spread_min =
      json_number_value(json_object_get(pacing, "spread_minutes"));
  long long estimated =
      json_integer_value(json_object_get(pacing, "estimated_requests"));
  long long sync_requests =
      json_integer_value(json_object_get(pacing, "asset_sync_requests"));
  long long per_hour = json_integer_value(
      json_object_get(pacing, "estimated_requests_per_hour"));
  long long last_offset_ms =
      json_integer_value(json_object_get(pacing, "last_start_offset_ms"));
  /* The same estimate as `ninjaone plan`, from the sync's device counts. */
  char *out = NULL;
  cr_assert_eq(
      rt_nj_run(&h, &out, NULL, NULL, "plan", "--msp-org", rt_nj_id(msp), NULL),
      0, "%s", out);
  json_t *plan = json_loads(out ? out : "", 0, NULL);
  free(out);
  json_t *cred = json_array_get(json_object_get(plan, "credentials"), 0);
  json_t *cadences = json_object_get(cred, "cadences");
  cr_expect_eq(json_integer_value(json_object_get(
                   json_object_get(cadences, "evidence_sweep"), "requests")),
               estimated);
  cr_expect_eq(json_integer_value(json_object_get(
                   json_object_get(cadences, "asset_sync"), "requests")),
               sync_requests);
  json_decref(plan);
  /* More than an hour beside the sync, so more than an hour of spread. */
  cr_expect_gt(estimated + sync_requests + 1, PER_HOUR * 95 / 100);
  cr_expect_gt(spread_min, 60.0);
  cr_expect_leq(per_hour + sync_requests + 1, PER_HOUR * 95 / 100);
  json_decref(result);

  /* The jobs table: run_at is real time, the runner's clock runs SCALE
   * times faster. The first customer is due at once, the last at the
   * offset the result names, well before the next tick. */
  long long first_ms = q_int(
      "SELECT (extract(epoch FROM min(j.run_at) - s.started_at) * 1000)"
      "::bigint FROM runner.job j, runner.job s WHERE j.name ="
      " 'ninjaone-evidence.customer' AND s.name = 'ninjaone-evidence-sweep'"
      " GROUP BY s.started_at");
  long long spread_ms = q_int(
      "SELECT (extract(epoch FROM max(run_at) - min(run_at)) * 1000)::bigint"
      " FROM runner.job WHERE name = 'ninjaone-evidence.customer'");
  cr_expect_lt(first_ms, 5000, "first customer due %lld ms after the sweep",
               first_ms);
  long long want_ms = last_offset_ms / SCALE;
  cr_expect(spread_ms * 10 >= want_ms * 9 && spread_ms * 10 <= want_ms * 11,
            "customers spread over %lld ms, %lld ms chosen", spread_ms,
            want_ms);
  cr_expect_lt(last_offset_ms, SWEEP_PERIOD_MS * 5 / 6 + 60000);
  /* Each customer once, each due at a different time. */
  cr_expect_eq(q_int("SELECT count(DISTINCT idempotency_key) FROM runner.job"
                     " WHERE name = 'ninjaone-evidence.customer' AND state ="
                     " 'completed'"),
               CUSTOMERS);
  cr_expect_eq(q_int("SELECT count(DISTINCT run_at) FROM runner.job WHERE"
                     " name = 'ninjaone-evidence.customer'"),
               CUSTOMERS);

  /* What the simulator saw, on its sped-up clock. */
  text = rt_sim_stats(&h.sim);
  json_t *stats = json_loads(text ? text : "", 0, NULL);
  free(text);
  cr_assert_not_null(stats);
  long long requests = rt_sim_tenant_stat(stats, "eu", "requests");
  long long throttled = rt_sim_tenant_stat(stats, "eu", "throttled");
  long long peak_minute = rt_sim_tenant_stat(stats, "eu", "peakPerMinute");
  long long peak_hour = rt_sim_tenant_stat(stats, "eu", "peakPerHour");
  json_decref(stats);
  fprintf(stderr,
          "pacing: %d customers, sweep estimate %lld + sync %lld requests,"
          " spread over %.1f min at %lld/h; simulator: %lld requests, %lld"
          " throttled, busiest minute %lld of %d, busiest hour %lld of %d\n",
          CUSTOMERS, estimated, sync_requests, spread_min, per_hour, requests,
          throttled, peak_minute, PER_MINUTE, peak_hour, PER_HOUR);
  cr_expect_eq(throttled, 0);
  cr_expect_leq(peak_minute, PER_MINUTE);
  cr_expect_leq(peak_hour, PER_HOUR);
}

/* Three runners, one budget: a sweep of many small customers that fits in
 * an hour, so its customers are all due at once and only the minute's
 * budget, shared through the database, paces them. The simulator counts
 * its minute of 60 on the same sped-up clock. */
#define SHARED_CUSTOMERS 300
#define SHARED_RUNNERS 3
#define SHARED_PER_HOUR 100000 /* the sweep's 1,800 requests fit in it */
/* 1,800 requests at 57 a minute: about 32 minutes of the sped-up clock, a
 * minute of real time. */
#define SHARED_SCALE 30
/* 2026-01-01T00:29:00Z: the :30 sweep ticks a minute (2 s real) later. */
#define SHARED_CLOCK_START_MS 1767227340000LL

static rt_proc_t runners[SHARED_RUNNERS];

static void setup_shared(void) {
  char args[256];
  snprintf(args, sizeof args,
           "--generate --seed 11 --orgs %d --devices-per-org 1-3"
           " --rate-limit-minute %d --rate-limit-hour 0 --clock-scale %d",
           SHARED_CUSTOMERS, PER_MINUTE, SHARED_SCALE);
  setup_with(args);
}

static void teardown_shared(void) {
  for (int i = 0; i < SHARED_RUNNERS; i++)
    if (runners[i].pid > 0) {
      rt_proc_kill(&runners[i], SIGKILL);
      rt_proc_wait(&runners[i], 10000);
    }
  teardown();
}

TestSuite(ninjaone_budget_shared, .init = setup_shared, .fini = teardown_shared,
          .timeout = 600);

/* Three `serve` processes on one database and one credential sweep 300
 * customers of one tenant, enqueued once by the :30 tick, under a budget
 * of 60 a minute: every customer is swept once, the runners share the
 * customers between them, and the simulator, counting by its per-request
 * timestamps, sees no minute over 60 and no 429. */
Test(ninjaone_budget_shared,
     three_runners_sweep_300_customers_within_60_a_minute) {
  connect_and_map(SHARED_PER_HOUR, SHARED_CUSTOMERS);

  char confd[320];
  snprintf(confd, sizeof confd, "%s/conf.d", h.dir);
  rt_cadence_write_confd(confd, RT_CADENCE_SWEEP);
  double t0 = rt_now_s();
  for (int i = 0; i < SHARED_RUNNERS; i++)
    serve(&runners[i], confd, SHARED_CLOCK_START_MS, SHARED_SCALE);
  /* A minute of real time on an idle machine; nine allowed. */
  bool swept = rt_cadence_wait_jobs(h.dsn, "ninjaone-evidence.customer",
                                    "'completed', 'dead'", SHARED_CUSTOMERS,
                                    540000);
  double wall_s = rt_now_s() - t0;
  pid_t pids[SHARED_RUNNERS];
  for (int i = 0; i < SHARED_RUNNERS; i++) {
    pids[i] = runners[i].pid;
    rt_proc_kill(&runners[i], SIGTERM);
  }
  for (int i = 0; i < SHARED_RUNNERS; i++) {
    cr_expect(rt_proc_wait(&runners[i], 30000), "runner %d did not stop", i);
    char *log = rt_read_file(runners[i].err_path);
    cr_expect(!strstr(log ? log : "", "Sanitizer"), "runner %d:\n%s", i, log);
    if (!swept)
      fprintf(stderr, "runner %d:\n%s\n", i, log ? log : "");
    free(log);
  }
  cr_assert(swept, "the sweep did not complete: %lld of %d customers done",
            q_int("SELECT count(*) FROM runner.job WHERE name ="
                  " 'ninjaone-evidence.customer' AND state IN ('completed',"
                  " 'dead')"),
            SHARED_CUSTOMERS);

  /* One sweep, at once (the hour does not bind), each customer once. */
  cr_expect_eq(q_int("SELECT count(*) FROM runner.job WHERE name ="
                     " 'ninjaone-evidence-sweep' AND state = 'completed'"),
               1);
  char *text = q_text("SELECT result FROM runner.job WHERE name ="
                      " 'ninjaone-evidence-sweep'");
  json_t *result = json_loads(text ? text : "", 0, NULL);
  cr_assert_not_null(result, "sweep result: %s", text);
  free(text);
  json_t *pacing = json_array_get(json_object_get(result, "pacing"), 0);
  cr_expect_str_eq(json_string_value(json_object_get(pacing, "mode")),
                   "at_once");
  json_decref(result);
  cr_expect_eq(q_int("SELECT count(*) FROM runner.job WHERE name ="
                     " 'ninjaone-evidence.customer' AND state ="
                     " 'completed'"),
               SHARED_CUSTOMERS);
  cr_expect_eq(q_int("SELECT count(DISTINCT idempotency_key) FROM runner.job"
                     " WHERE name = 'ninjaone-evidence.customer'"),
               SHARED_CUSTOMERS);
  /* Swept once: one claim of each, none retried, each ended by a runner. */
  cr_expect_eq(q_int("SELECT count(*) FROM runner.job WHERE name ="
                     " 'ninjaone-evidence.customer' AND attempt <> 1"),
               0);
  cr_expect_eq(q_int("SELECT count(*) FROM runner.job WHERE name ="
                     " 'ninjaone-evidence.customer' AND finished_by IS NOT"
                     " NULL"),
               SHARED_CUSTOMERS);

  /* Each runner ran some of the customers: finished_by names the runner
   * of a row's (only) attempt as host:pid:nonce. */
  long long per_runner[SHARED_RUNNERS];
  for (int i = 0; i < SHARED_RUNNERS; i++) {
    per_runner[i] = q_int("SELECT count(*) FROM runner.job WHERE name ="
                          " 'ninjaone-evidence.customer' AND"
                          " split_part(finished_by, ':', 2) = '%ld'",
                          (long)pids[i]);
    cr_expect_gt(per_runner[i], 0, "runner %d (pid %ld) ran no customer", i,
                 (long)pids[i]);
  }

  /* What the simulator saw, on its sped-up clock. */
  text = rt_sim_stats(&h.sim);
  json_t *stats = json_loads(text ? text : "", 0, NULL);
  free(text);
  cr_assert_not_null(stats);
  long long requests = rt_sim_tenant_stat(stats, "eu", "requests");
  long long throttled = rt_sim_tenant_stat(stats, "eu", "throttled");
  long long peak_minute = rt_sim_tenant_stat(stats, "eu", "peakPerMinute");
  json_decref(stats);
  fprintf(stderr,
          "shared sweep: %d customers, %d runners, clock x%d; simulator: %lld"
          " requests, %lld throttled, busiest minute %lld of %d; %.1f s"
          " real; customers per runner %lld / %lld / %lld\n",
          SHARED_CUSTOMERS, SHARED_RUNNERS, SHARED_SCALE, requests, throttled,
          peak_minute, PER_MINUTE, wall_s, per_runner[0], per_runner[1],
          per_runner[2]);
  cr_expect_eq(throttled, 0);
  cr_expect_leq(peak_minute, PER_MINUTE);
  /* Six requests a customer, at most a token more per runner. */
  cr_expect_geq(requests, 6LL * SHARED_CUSTOMERS);
  cr_expect_leq(requests, 6LL * SHARED_CUSTOMERS + SHARED_RUNNERS);
}
