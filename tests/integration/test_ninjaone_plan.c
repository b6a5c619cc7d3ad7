/* `regentra-runner ninjaone plan --json`, and the budget warnings of
 * `ninjaone status` and `check-config`: the binary, a real PostgreSQL with
 * mappings and last-sync device counts, and the simulator (for the
 * credential's connect). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_cadence.h"
#include "rt_ninjaone.h"

#define SECRET "demo-eu-secret"

static rt_nj_t h;
static long long msp;

#define q_int(...) rt_nj_int(&h, __VA_ARGS__)

static void setup(void) {
  rt_nj_setup(&h, "njplan", SECRET,
              "1 8f1e2d3c4b5a69788796a5b4c3d2e1f0"
              "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
              "--fleet " SIM_FIXTURES "/demo.json");
  msp = q_int("INSERT INTO organization (name, kind) VALUES ('Acme MSP',"
              " 'MSP') RETURNING id");
  rt_nj_write_conf(&h, "warning", "eu", "", "ninjaone-mapping", NULL);
}

static void teardown(void) {
  rt_nj_teardown(&h);
}

TestSuite(ninjaone_plan, .init = setup, .fini = teardown, .timeout = 120);

/* Maps the mapping of external org `ext` to a new company, promoted to a
 * compliance tenant when promoted; returns the mapping id. */
static long long map_org(const char *ext, bool promoted) {
  long long customer = 0;
  if (promoted)
    customer = q_int("INSERT INTO organization (name, kind) VALUES"
                     " ('Customer %s', 'CUSTOMER') RETURNING id",
                     ext);
  long long company =
      promoted
          ? q_int("INSERT INTO portal_company (msp_org_id, name,"
                  " converted_to_organization_id) VALUES (%lld, 'Co %s', %lld)"
                  " RETURNING id",
                  msp, ext, customer)
          : q_int("INSERT INTO portal_company (msp_org_id, name) VALUES"
                  " (%lld, 'Co %s') RETURNING id",
                  msp, ext);
  return q_int("UPDATE integration_org_mapping SET state = 'MAPPED',"
               " portal_company_id = %lld WHERE msp_org_id = %lld AND"
               " external_org_id = '%s' RETURNING id",
               company, msp, ext);
}

static json_t *plan_json(int want_rc, const char *org) {
  char *out, *err;
  int rc = rt_nj_run(&h, &out, &err, NULL, "plan", "--msp-org", org, NULL);
  cr_assert_eq(rc, want_rc, "exit %d: %s%s", rc, out, err);
  json_error_t je;
  json_t *j = json_loads(out, 0, &je);
  cr_assert_not_null(j, "not JSON (%s): %s", je.text, out);
  free(out);
  free(err);
  return j;
}

static long long at(json_t *o, const char *path) {
  /* "a.b.c" */
  char buf[128];
  snprintf(buf, sizeof buf, "%s", path);
  json_t *v = o;
  for (char *save, *k = strtok_r(buf, ".", &save); k;
       k = strtok_r(NULL, ".", &save))
    v = json_object_get(v, k);
  cr_assert(json_is_integer(v) || json_is_boolean(v), "%s missing", path);
  return json_is_boolean(v) ? json_is_true(v) : json_integer_value(v);
}

/* Connects, maps three customers (two promoted) and records a last asset
 * sync that saw 2,500 devices (3 pages), 40 and 10: at the shipped
 * cadences 34 requests between two syncs (see the test below). */
static void three_customers(void) {
  rt_nj_connect(&h, msp, "demo-eu-client"); /* 5 organizations, PENDING */
  char ids[3][32];
  const char *ext[3];
  for (int i = 0; i < 3; i++) {
    char *e = rt_nj_text(&h,
                         "SELECT external_org_id FROM"
                         " integration_org_mapping ORDER BY"
                         " external_org_id::bigint OFFSET %d LIMIT 1",
                         i);
    cr_assert_not_null(e);
    snprintf(ids[i], sizeof ids[i], "%s", e);
    ext[i] = ids[i];
    free(e);
  }
  long long big = map_org(ext[0], true);
  long long small = map_org(ext[1], true);
  long long psa_only = map_org(ext[2], false);
  /* The last asset sync saw 2,500 devices (3 pages), 40 and 10. */
  q_int("UPDATE integration_credential SET last_asset_sync_at = now(),"
        " last_asset_sync = jsonb_build_object('details', jsonb_build_array("
        " jsonb_build_object('mapping_id', %lld, 'seen', 2500),"
        " jsonb_build_object('mapping_id', %lld, 'seen', 40),"
        " jsonb_build_object('mapping_id', %lld, 'seen', 10)))"
        " WHERE msp_org_id = %lld RETURNING 1",
        big, small, psa_only, msp);
}

Test(ninjaone_plan, counts_the_requests_of_each_cadence_from_the_last_sync) {
  three_customers();
  json_t *j = plan_json(0, rt_nj_id(msp));
  cr_expect_eq(at(j, "msp_org"), msp);
  cr_expect_eq(at(j, "budget.per_minute"), 200);
  cr_expect_eq(at(j, "budget.per_hour"), 1500);
  cr_expect_eq(at(j, "budget.usable_per_hour"), 1425);
  cr_expect_eq(at(j, "fits"), 1);
  json_t *creds = json_object_get(j, "credentials");
  cr_assert_eq(json_array_size(creds), 1);
  json_t *c = json_array_get(creds, 0);
  cr_expect_str_eq(json_string_value(json_object_get(c, "region")), "eu");
  cr_expect_eq(at(c, "mapped_customers"), 3);
  cr_expect_eq(at(c, "promoted_customers"), 2);
  cr_expect_eq(at(c, "devices"), 2550);
  /* Sync: 1 organizations page + 3 + 1 + 1 devices-detailed pages. */
  cr_expect_eq(at(c, "cadences.asset_sync.requests"), 6);
  /* Sweep: 6 endpoints x 3 pages for the big one, 6 for the small one. */
  cr_expect_eq(at(c, "cadences.evidence_sweep.requests"), 24);
  cr_expect_eq(at(c, "cadences.discovery.requests"), 1);
  cr_expect_eq(at(c, "cadences.tokens.requests_per_hour"), 1);
  cr_expect_eq(at(c, "peak_minute.requests"), 24);
  cr_expect_eq(at(c, "peak_minute.headroom"), 176);
  cr_expect_eq(at(c, "peak_hour.requests"), 31);
  cr_expect_eq(at(c, "peak_hour.limit"), 1500);
  cr_expect_eq(at(c, "peak_hour.headroom"), 1469);
  cr_expect_eq(at(c, "sync_window.requests"), 34);
  cr_expect_eq(at(c, "sync_window.usable"), 5700);
  /* A promoted customer costs 12 on average here: (5700 - 6 - 4) / 12. */
  cr_expect_eq(at(c, "max_promoted_customers"), 474);
  cr_expect_eq(at(c, "max_promoted_customers_within_hour"), 118);
  json_decref(j);
}

Test(ninjaone_plan, failures_carry_an_error_code_and_a_message) {
  json_t *j = plan_json(1, rt_nj_id(msp)); /* not connected yet */
  cr_expect_str_eq(json_string_value(json_object_get(j, "error")),
                   "not_connected");
  cr_expect(strstr(json_string_value(json_object_get(j, "message")),
                   "no active NinjaOne credential"));
  json_decref(j);
  long long customer = q_int("INSERT INTO organization (name, kind) VALUES"
                             " ('Dental', 'CUSTOMER') RETURNING id");
  j = plan_json(1, rt_nj_id(customer));
  cr_expect_str_eq(json_string_value(json_object_get(j, "error")),
                   "not_an_msp");
  /* The same words as every other command's MSP check. */
  char want[96];
  snprintf(want, sizeof want,
           "organization %lld is a CUSTOMER organization, not an MSP",
           customer);
  const char *msg = json_string_value(json_object_get(j, "message"));
  cr_expect(msg && strstr(msg, want), "%s", msg ? msg : "(none)");
  json_decref(j);
  j = plan_json(1, "999999");
  cr_expect_str_eq(json_string_value(json_object_get(j, "error")), "not_found");
  msg = json_string_value(json_object_get(j, "message"));
  cr_expect(msg && strstr(msg, "unknown MSP organization 999999"), "%s",
            msg ? msg : "(none)");
  json_decref(j);
}

/* ------------------------------------------- status and check-config */

/* conf.d of h with the shipped asset sync and sweep; the sweep disabled
 * unless sweep_enabled. Returns the directory (static). */
static const char *write_confd(bool sweep_enabled) {
  static char dir[320];
  snprintf(dir, sizeof dir, "%s/conf.d", h.dir);
  rt_cadence_write_confd(dir, RT_CADENCE_SYNC | (sweep_enabled
                                                     ? RT_CADENCE_SWEEP
                                                     : RT_CADENCE_SWEEP_OFF));
  return dir;
}

/* `check-config -c conf -d confd`, with the database when with_db. */
static int check_config_env(const char *confd, char *db_env, char **out) {
  char *argv[] = {RT_RUNNER, "check-config", "-c", h.conf,
                  "-d",      (char *)confd,  NULL};
  char *env[] = {db_env, NULL};
  char *err = NULL;
  int rc = rt_run(argv, env, NULL, out, &err);
  cr_expect(!strstr(err ? err : "", "Sanitizer"), "%s", err);
  free(err);
  return rc;
}

static int check_config(const char *confd, bool with_db, char **out) {
  return check_config_env(confd, with_db ? h.db_env : NULL, out);
}

/* 8 requests an hour: 7 usable, 28 in the 4 hours between two syncs, less
 * than the 34 the three customers need. */
#define SMALL_BUDGET "rate_per_minute = 8\nrate_per_hour = 8\n"

Test(ninjaone_plan, check_config_warns_when_the_enabled_schedules_do_not_fit) {
  three_customers();
  rt_nj_write_conf_source(&h, "warning", "eu", SMALL_BUDGET, "",
                          "ninjaone-assets", "ninjaone-evidence",
                          "ninjaone-mapping", NULL);
  char *out = NULL;
  int rc = check_config(write_confd(true), true, &out);
  /* A warning, not a configuration error. */
  cr_expect_eq(rc, 0, "%s", out);
  cr_expect(strstr(out, "configuration ok"), "%s", out);
  char want[512];
  snprintf(want, sizeof want,
           "warning: MSP organization %lld, region eu: 2 promoted"
           " customer(s) need 34 requests in the 4 h between two syncs, 28"
           " usable; at most 1 fit (see 'regentra-runner ninjaone plan"
           " --msp-org %lld')",
           msp, msp);
  cr_expect(strstr(out, want), "want \"%s\" in: %s", want, out);
  free(out);

  /* The sweep disabled: the sync and its tokens alone (10) fit. */
  rc = check_config(write_confd(false), true, &out);
  cr_expect_eq(rc, 0, "%s", out);
  cr_expect(strstr(out, "NinjaOne request budget (asset sync \"15 */4 * * *\","
                        " evidence sweep off): 1 credential(s) checked,"
                        " all fit"),
            "%s", out);
  cr_expect(!strstr(out, "warning"), "%s", out);
  free(out);
}

Test(ninjaone_plan, check_config_says_the_budget_check_was_skipped_without_db) {
  rt_nj_write_conf_source(&h, "warning", "eu", SMALL_BUDGET, "",
                          "ninjaone-assets", "ninjaone-evidence",
                          "ninjaone-mapping", NULL);
  char *out = NULL;
  int rc = check_config(write_confd(true), false, &out);
  cr_expect_eq(rc, 0, "%s", out);
  cr_expect(strstr(out, "configuration ok"), "%s", out);
  cr_expect(strstr(out, "NinjaOne request budget (asset sync \"15 */4 * * *\","
                        " evidence sweep \"30 */6 * * *\"): check skipped:"
                        " no database is configured (set [database] url or"
                        " REGENTRA_DATABASE_URL)"),
            "%s", out);
  free(out);
  /* Nothing listens on port 1: refused at once. */
  static char unreachable[] =
      "REGENTRA_DATABASE_URL=postgresql://nobody@127.0.0.1:1/none";
  rc = check_config_env(write_confd(true), unreachable, &out);
  cr_expect_eq(rc, 0, "%s", out);
  cr_expect(strstr(out, "check skipped: the database did not answer ("), "%s",
            out);
  free(out);
}

Test(ninjaone_plan, status_warns_when_the_shipped_cadences_do_not_fit) {
  three_customers();
  json_t *j = NULL;
  for (int round = 0; round < 2; round++) {
    /* NinjaOne's own budget first, then 8 an hour. */
    rt_nj_write_conf_source(&h, "warning", "eu", round ? SMALL_BUDGET : "", "",
                            "ninjaone-mapping", NULL);
    char *out, *err;
    int rc = rt_nj_run(&h, &out, &err, NULL, "status", "--msp-org",
                       rt_nj_id(msp), NULL);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "%s", out);
    free(out);
    free(err);
    json_t *b = json_object_get(
        json_array_get(json_object_get(j, "credentials"), 0), "budget");
    cr_assert(json_is_object(b), "no budget in the status");
    cr_expect_eq(at(b, "fits"), round == 0);
    cr_expect_eq(at(b, "window_requests"), 34);
    cr_expect_eq(at(b, "window_usable"), round ? 28 : 5700);
    cr_expect_eq(at(b, "max_promoted_customers"), round ? 1 : 474);
    json_decref(j);
  }
}

/* ------------------------------------------------------------ cadences */

/* Both shipped cadences under `serve`, the runner's clock sped up so that
 * the :15 asset sync and then the :30 sweep tick within seconds of real
 * time, against a mixed fleet of 5-2,000 devices per customer. The budget
 * is sped up with the clock on both sides (the simulator's limiter counts
 * on --clock-scale, the runner's windows shrink with
 * REGENTRA_CLOCK_SCALE_BUDGET=1), so a minute of the runner's clock holds
 * a minute's budget: 30 customers at 60 a minute. Every request of both runs, counted by the
 * simulator, is what `plan` predicts from the sync's device counts, within
 * 5%, and none is throttled. (The sync sent one request fewer than
 * planned with 30 customers and with 15: at 15, 1 in 16 is over 5%.) */
#define CAD_CUSTOMERS 30
#define CAD_PER_MINUTE 60
/* 2026-01-01T00:14:30Z: the sync ticks 30 s (1.5 s real) later. */
#define CAD_CLOCK_START_MS 1767226470000LL
/* 2026-01-01T00:28:00Z: the sweep ticks 2 minutes (6 s real) later. */
#define CAD_SWEEP_CLOCK_START_MS 1767227280000LL
#define CAD_CLOCK_SCALE 20

static void cadence_setup(void) {
  char args[256];
  snprintf(args, sizeof args,
           "--generate --seed 7 --orgs %d --devices-per-org 5-2000"
           " --rate-limit-minute %d --rate-limit-hour 1500 --clock-scale %d",
           CAD_CUSTOMERS, CAD_PER_MINUTE, CAD_CLOCK_SCALE);
  rt_nj_setup(&h, "njcad", "sim-eu-secret",
              "1 8f1e2d3c4b5a69788796a5b4c3d2e1f0"
              "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
              args);
  msp = q_int("INSERT INTO organization (name, kind) VALUES ('Acme MSP',"
              " 'MSP') RETURNING id");
}

TestSuite(ninjaone_cadence, .init = cadence_setup, .fini = teardown,
          .timeout = 900);
static bool within_5pct(long long seen, long long predicted) {
  long long diff = seen > predicted ? seen - predicted : predicted - seen;
  return diff * 100 <= predicted * 5;
}

Test(ninjaone_cadence, both_cadences_complete_unthrottled_as_planned) {
  rt_cadence_write_conf(h.conf, h.dir, h.key_file, h.sim.port, CAD_PER_MINUTE,
                        1500, h.dsn, NULL);
  char *migrate[] = {RT_RUNNER, "migrate", "-c", h.conf, NULL};
  char *err = NULL;
  cr_assert_eq(rt_run(migrate, NULL, NULL, NULL, &err), 0, "%s", err);
  free(err);
  rt_nj_connect(&h, msp, "sim-eu-client");
  /* Every organization mapped to a company promoted to a customer. */
  rt_nj_map_all(&h, msp, CAD_CUSTOMERS);
  /* Only what the cadences send from here on. */
  cr_assert_eq(rt_sim_post(&h.sim, "reset-stats", "{}", NULL), 0);
  char confd[320];
  snprintf(confd, sizeof confd, "%s/conf.d", h.dir);
  /* The :15 sync first, alone, then the :30 tick: the sweep's pacing then
   * reads this sync's device counts, as `plan` does. */
  rt_cadence_write_confd(confd, RT_CADENCE_SYNC);
  rt_proc_t runner;
  int64_t t0 = (int64_t)time(NULL);
  rt_cadence_serve(&runner, h.conf, confd, h.db_env, CAD_CLOCK_START_MS,
                   CAD_CLOCK_SCALE, true);
  bool synced = rt_cadence_wait_jobs(h.dsn, "ninjaone-asset-sync",
                                     "'completed'", 1, 600000);
  rt_nj_stop_serve(&runner, synced, "the asset sync did not complete");
  /* Then both cadences as shipped, from 00:28, on the same budget (kept in
   * the database): the sweep ticks at :30. 30 x 6 requests and more at 57
   * a minute: about 4 minutes of the runner's clock, 12 s of real time. */
  rt_cadence_write_confd(confd, RT_CADENCE_SYNC | RT_CADENCE_SWEEP);
  rt_cadence_serve(&runner, h.conf, confd, h.db_env, CAD_SWEEP_CLOCK_START_MS,
                   CAD_CLOCK_SCALE, true);
  bool swept = rt_cadence_wait_jobs(h.dsn, "ninjaone-evidence.customer",
                                    "'completed', 'dead'", CAD_CUSTOMERS,
                                    720000) &&
               rt_cadence_wait_jobs(h.dsn, "ninjaone-evidence-sweep",
                                    "'completed'", 1, 60000);
  int64_t wall_s = (int64_t)time(NULL) - t0;
  rt_nj_stop_serve(&runner, swept, "the sweep did not complete");
  cr_expect_eq(q_int("SELECT count(*) FROM runner.job WHERE state = 'dead'"),
               0);
  long long sweep_seen =
      q_int("SELECT coalesce(sum((result->>'requests')::bigint), 0) FROM"
            " runner.job WHERE name = 'ninjaone-evidence.customer'");

  char *text = rt_sim_stats(&h.sim);
  json_t *stats = json_loads(text ? text : "", 0, NULL);
  free(text);
  cr_assert_not_null(stats);
  long long api = rt_sim_tenant_stat(stats, "eu", "requests");
  long long throttled = rt_sim_tenant_stat(stats, "eu", "throttled");
  long long tokens = rt_sim_tenant_stat(stats, "eu", "tokenRequests");
  long long peak_minute = rt_sim_tenant_stat(stats, "eu", "peakPerMinute");
  json_decref(stats);

  json_t *plan = plan_json(0, rt_nj_id(msp));
  json_t *c = json_array_get(json_object_get(plan, "credentials"), 0);
  long long sync_planned = at(c, "cadences.asset_sync.requests");
  long long sweep_planned = at(c, "cadences.evidence_sweep.requests");
  long long devices = at(c, "devices");
  json_decref(plan);
  fprintf(stderr,
          "cadences: %d customers, %lld devices, budget %d/min: %lld API"
          " requests (%lld planned: sync %lld, sweep %lld), sweep %lld by"
          " the runner's count, %lld token(s), %lld throttled, at most %lld"
          " in a minute, %lld s\n",
          CAD_CUSTOMERS, devices, CAD_PER_MINUTE, api,
          sync_planned + sweep_planned, sync_planned, sweep_planned, sweep_seen,
          tokens, throttled, peak_minute, (long long)wall_s);
  cr_expect_eq(throttled, 0);
  cr_expect_leq(peak_minute, CAD_PER_MINUTE);
  cr_expect(within_5pct(api, sync_planned + sweep_planned),
            "%lld requests seen, %lld planned", api,
            sync_planned + sweep_planned);
  cr_expect(within_5pct(sweep_seen, sweep_planned),
            "%lld sweep requests, %lld planned", sweep_seen, sweep_planned);
  cr_expect(within_5pct(api - sweep_seen, sync_planned),
            "%lld sync requests, %lld planned", api - sweep_seen, sync_planned);
}
