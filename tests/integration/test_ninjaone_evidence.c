/* ninjaone-evidence end to end: the regentra-runner binary, a real
 * PostgreSQL and the NinjaOne simulator serving boundaries.json with its
 * data clock pinned, and the runner's clock pinned to the same instant. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "regentra/devsrc.h"
#include "rt_ninjaone.h"

#define FIXTURE SIM_FIXTURES "/boundaries.json"
#define NOW_S "1767225600"
#define SECRET "boundary-eu-secret"

static const char *const signal_keys[] = {"disk_encryption",
                                          "antivirus_posture", "patch_sla",
                                          "backup_activity",
                                          "device_inventory"};

static rt_nj_t h;
static long long msp;
static json_t *fixture;

#define q_int(...) rt_nj_int(&h, __VA_ARGS__)
#define q_text(...) rt_nj_text(&h, __VA_ARGS__)
/* `regentra-runner ninjaone ARGS... -c conf --json` with the clock pinned
 * to the fixture's now (see setup); returns the exit status; out/err are
 * new when asked for. */
#define nj(out, err, ...) rt_nj_run(&h, out, err, NULL, __VA_ARGS__)

static void setup(void) {
  rt_nj_setup(&h, "njev", SECRET,
              "1 0a1b2c3d4e5f60718293a4b5c6d7e8f9"
              "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
              "--fleet " FIXTURE " --now " NOW_S
              " --rate-limit-minute 0 --rate-limit-hour 0");
  /* A scale of 1e-9: the runner's clock barely moves. */
  h.env[0] = "REGENTRA_CLOCK_START_MS=" NOW_S "000";
  h.env[1] = "REGENTRA_CLOCK_SCALE=0.000000001";
  msp = q_int("INSERT INTO organization (name, kind) VALUES ('Acme MSP',"
              " 'MSP') RETURNING id");
  rt_nj_write_conf_source(&h, "warning", "eu",
                          "rate_per_minute = 100000\nrate_per_hour = 1000000\n",
                          "", "ninjaone-mapping", "ninjaone-evidence",
                          NULL);
  json_error_t jerr;
  fixture = json_load_file(FIXTURE, 0, &jerr);
  cr_assert(fixture, "fixture: %s", jerr.text);
}

static void teardown(void) {
  rt_nj_teardown(&h);
  json_decref(fixture);
  fixture = NULL;
}

static const char *msp_id(void) {
  return rt_nj_id(msp);
}

static void connect_eu(void) {
  rt_nj_connect(&h, msp, "boundary-eu-client");
}

/* A company for the org, promoted to a new customer compliance org when
 * asked; the org mapped to it. Returns the customer org id (0 if not
 * promoted). */
static long long map_org(long long org, bool promoted) {
  long long customer = 0;
  if (promoted)
    customer = q_int("INSERT INTO organization (name, kind) VALUES"
                     " ('Customer of org %lld', 'CUSTOMER') RETURNING id",
                     org);
  char converted[24] = "NULL";
  if (promoted)
    snprintf(converted, sizeof converted, "%lld", customer);
  long long company = q_int(
      "INSERT INTO portal_company (msp_org_id, name,"
      " converted_to_organization_id) VALUES (%lld, 'Company %lld', %s)"
      " RETURNING id",
      msp, org, converted);
  char o[24], c[24];
  snprintf(o, sizeof o, "%lld", org);
  snprintf(c, sizeof c, "%lld", company);
  char *out, *err;
  int rc = nj(&out, &err, "map", "--msp-org", msp_id(), "--org", o,
              "--use-existing", c, NULL);
  cr_assert_eq(rc, 0, "map %s: %s%s", o, out, err);
  free(out);
  free(err);
  return customer;
}

static int sweep(char **out) {
  char *o, *e;
  int rc = nj(&o, &e, "sweep", NULL);
  cr_expect_eq(rc, 0, "sweep failed: %s%s", o, e);
  free(e);
  if (out)
    *out = o;
  else
    free(o);
  return rc;
}

static json_t *orgs(void) { return json_object_get(fixture, "organizations"); }

static const char *expected(json_t *org, const char *key) {
  return json_string_value(json_object_get(json_object_get(org, "expected"),
                                           key));
}

static bool expected_no_data(json_t *org, const char *key) {
  size_t i;
  json_t *k;
  json_array_foreach(json_object_get(org, "expectedNoData"), i, k) {
    if (strcmp(json_string_value(k), key) == 0)
      return true;
  }
  return false;
}

TestSuite(ninjaone_evidence, .init = setup, .fini = teardown, .timeout = 300);

Test(ninjaone_evidence, boundaries_dry_run_then_tickets) {
  connect_eu();
  size_t n = json_array_size(orgs());
  cr_assert_eq(n, 22);
  long long customer[32];
  for (size_t i = 0; i < n; i++)
    customer[i] = map_org(json_integer_value(json_object_get(
                              json_array_get(orgs(), i), "id")),
                          true);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " first_evidence_synced_at IS NULL"), 1);

  /* First sweep: a dry run for the bridge. */
  char *out;
  sweep(&out);
  cr_expect(strstr(out, "\"mode\": \"inline\""), "%s", out);
  cr_expect(strstr(out, "\"swept\": 22"), "%s", out);
  free(out);

  for (size_t i = 0; i < n; i++) {
    json_t *org = json_array_get(orgs(), i);
    const char *name = json_string_value(json_object_get(org, "name"));
    for (size_t k = 0; k < 5; k++) {
      char *status = q_text(
          "SELECT status FROM monitoring_signal WHERE organization_id = %lld"
          " AND signal_key = '%s'", customer[i], signal_keys[k]);
      cr_expect(status && strcmp(status, expected(org, signal_keys[k])) == 0,
                "%s: %s is %s, the fixture expects %s", name, signal_keys[k],
                status ? status : "(missing)", expected(org, signal_keys[k]));
      free(status);
      long long no_data = q_int(
          "SELECT count(*) FROM monitoring_signal WHERE organization_id ="
          " %lld AND signal_key = '%s' AND metadata->>'reason' = 'no_data'",
          customer[i], signal_keys[k]);
      cr_expect_eq(no_data, expected_no_data(org, signal_keys[k]) ? 1 : 0,
                   "%s: %s no_data", name, signal_keys[k]);
    }
  }
  /* no_data carries only true counts: nothing that reads as a measurement
   * (a Trust Center would show "0% protected"). */
  cr_expect(q_int("SELECT count(*) FROM monitoring_signal WHERE"
                  " metadata->>'reason' = 'no_data'") > 0);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal WHERE"
                     " metadata->>'reason' = 'no_data' AND NOT (metadata ?"
                     " 'devices_in_scope' AND NOT metadata ?| array["
                     " 'signature_age', 'protected_percent', 'fresh_percent',"
                     " 'encrypted', 'not_encrypted', 'unknown',"
                     " 'encrypted_percent', 'devices_with_success',"
                     " 'without_success_percent', 'events'])"), 0);

  /* Everything on the customer orgs, nothing on the MSP's. */
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal"), 22 * 5);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal s JOIN"
                     " organization o ON o.id = s.organization_id WHERE"
                     " o.kind = 'CUSTOMER' AND s.expires_at = s.collected_at"
                     " + interval '7 days' AND s.collected_at ="
                     " to_timestamp(" NOW_S ")"), 22 * 5);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal WHERE"
                     " organization_id = %lld", msp), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM evidence e JOIN organization o ON"
                     " o.id = e.organization_id WHERE o.kind = 'CUSTOMER'"),
               22 * 5 * 2);
  cr_expect_eq(q_int("SELECT count(*) FROM evidence WHERE organization_id ="
                     " %lld", msp), 0);
  cr_expect_eq(q_int("SELECT count(DISTINCT a.organization_id) FROM audit_log a"
                     " JOIN organization o ON o.id = a.organization_id WHERE"
                     " a.event = 'NINJAONE_EVIDENCE_SWEEP' AND o.kind ="
                     " 'CUSTOMER'"), 22);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_EVIDENCE_SWEEP'"), 22);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE organization_id ="
                     " %lld AND event = 'NINJAONE_EVIDENCE_SWEEP'", msp), 0);
  /* Dry run: no ticket, and the flag is stamped. */
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " first_evidence_synced_at IS NOT NULL AND"
                     " last_evidence_sweep->>'status' = 'ok'"), 1);

  /* No device identifier in any metadata. */
  char *all = q_text("SELECT string_agg(metadata::text, E'\\n') FROM"
                     " monitoring_signal");
  cr_assert(all);
  for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
    char why[256] = "";
    cr_expect_eq(rn_pii_check(line, why, sizeof why), 0, "%s: %s", why, line);
  }
  free(all);
  all = q_text("SELECT string_agg(metadata::text, ' ') || ' ' ||"
               " (SELECT string_agg(details::text, ' ') FROM audit_log WHERE"
               " event = 'NINJAONE_EVIDENCE_SWEEP') FROM monitoring_signal");
  size_t i;
  json_t *org;
  json_array_foreach(orgs(), i, org) {
    size_t d;
    json_t *dev;
    json_array_foreach(json_object_get(org, "devices"), d, dev) {
      const char *hostname =
          json_string_value(json_object_get(dev, "systemName"));
      char id[32];
      snprintf(id, sizeof id, "\"%lld\"",
               (long long)json_integer_value(json_object_get(dev, "id")));
      cr_expect(!hostname || !strstr(all, hostname), "%s leaked", hostname);
      cr_expect(!strstr(all, id), "device id %s leaked", id);
    }
  }
  cr_expect(!strstr(all, "deviceId") && !strstr(all, "device_id"));
  free(all);

  /* Only the monitoring scope was ever requested. */
  out = rt_sim_stats(&h.sim);
  json_t *stats = json_loads(out, 0, NULL);
  free(out);
  json_t *scope;
  json_array_foreach(json_object_get(stats, "tokenScopes"), i, scope)
    cr_expect_str_eq(json_string_value(scope), "monitoring");
  cr_expect(json_array_size(json_object_get(stats, "tokenScopes")) > 0);
  json_t *eps = json_object_get(
      json_object_get(json_object_get(stats, "tenants"), "eu"), "endpoints");
  const char *used[] = {"/v2/devices-detailed", "/v2/queries/volumes",
                        "/v2/queries/antivirus-status", "/v2/queries/os-patches",
                        "/v2/queries/software-patches", "/v2/activities"};
  for (size_t k = 0; k < 6; k++)
    cr_expect(json_integer_value(json_object_get(eps, used[k])) >= 22,
              "%s: %s", used[k], json_dumps(eps, 0));
  json_decref(stats);

  /* Second sweep: FAIL opens HIGH, WARNING MEDIUM, PASS nothing. */
  sweep(NULL);
  long long want_high = 0, want_medium = 0;
  json_array_foreach(orgs(), i, org) {
    for (size_t k = 0; k < 5; k++) {
      const char *st = expected(org, signal_keys[k]);
      want_high += strcmp(st, "FAIL") == 0;
      want_medium += strcmp(st, "WARNING") == 0;
      long long tickets = q_int(
          "SELECT count(*) FROM psa_ticket WHERE customer_org_id = %lld AND"
          " signal_key = '%s' AND status = 'OPEN' AND msp_org_id = %lld AND"
          " priority = '%s'",
          customer[i], signal_keys[k], msp,
          strcmp(st, "FAIL") == 0 ? "HIGH" : "MEDIUM");
      cr_expect_eq(tickets, strcmp(st, "PASS") == 0 ? 0 : 1, "%s %s",
                   json_string_value(json_object_get(org, "name")),
                   signal_keys[k]);
      /* Missing data is titled as such, apart from failing posture. */
      bool nd = expected_no_data(org, signal_keys[k]);
      if (strcmp(st, "PASS") != 0)
        cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket WHERE"
                           " customer_org_id = %lld AND signal_key = '%s' AND"
                           " status = 'OPEN' AND kind = '%s' AND title LIKE"
                           " '%s'",
                           customer[i], signal_keys[k],
                           nd ? "NO_DATA" : "FINDING",
                           nd ? "NinjaOne returned no %% for %% device%%"
                              : "Compliance finding: %% is %%"),
                     1, "%s %s: ticket kind or title",
                     json_string_value(json_object_get(org, "name")),
                     signal_keys[k]);
    }
  }
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket WHERE priority ="
                     " 'HIGH'"), want_high);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket WHERE priority ="
                     " 'MEDIUM'"), want_medium);

  /* Third sweep: the same tickets, updated, never duplicated. */
  sweep(NULL);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket"),
               want_high + want_medium);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket WHERE occurrences < 2"),
               0);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal"), 3 * 22 * 5);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_EVIDENCE_SWEEP' AND organization_id = %lld",
                     msp), 0);
}

Test(ninjaone_evidence, a_company_not_promoted_gets_no_signal) {
  connect_eu();
  long long customer = map_org(101, true);
  cr_assert_eq(map_org(102, false), 0);
  char *out;
  sweep(&out);
  cr_expect(strstr(out, "\"customers\": 1"), "%s", out);
  free(out);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal"), 5);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal WHERE"
                     " organization_id = %lld", customer), 5);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_EVIDENCE_SWEEP'"), 1);
  /* Only org 101 was pulled. */
  out = rt_sim_stats(&h.sim);
  json_t *stats = json_loads(out, 0, NULL);
  free(out);
  json_t *eps = json_object_get(
      json_object_get(json_object_get(stats, "tenants"), "eu"), "endpoints");
  cr_expect_eq(json_integer_value(json_object_get(eps, "/v2/devices-detailed")),
               1);
  json_decref(stats);
}

/* The seed's budget: six /v2 requests per customer and one token for the
 * whole process, and the audit rows count exactly what NinjaOne saw. */
Test(ninjaone_evidence, six_requests_per_customer_one_token_counted_honestly) {
  connect_eu();
  map_org(101, true);
  map_org(103, true);
  cr_assert_eq(rt_sim_post(&h.sim, "reset-stats", "{}", NULL), 0);
  sweep(NULL);
  char *out = rt_sim_stats(&h.sim);
  json_t *stats = json_loads(out, 0, NULL);
  free(out);
  json_t *eu = json_object_get(json_object_get(stats, "tenants"), "eu");
  json_t *eps = json_object_get(eu, "endpoints");
  cr_expect_eq(json_integer_value(json_object_get(eu, "requests")), 2 * 6, "%s",
               json_dumps(eu, 0));
  const char *used[] = {
      "/v2/devices-detailed",         "/v2/queries/volumes",
      "/v2/queries/antivirus-status", "/v2/queries/os-patches",
      "/v2/queries/software-patches", "/v2/activities"};
  for (size_t k = 0; k < 6; k++)
    cr_expect_eq(json_integer_value(json_object_get(eps, used[k])), 2, "%s: %s",
                 used[k], json_dumps(eps, 0));
  cr_expect_eq(json_integer_value(json_object_get(eu, "tokenRequests")), 1);
  /* The audit rows add up to the simulator's figures, endpoint by endpoint. */
  cr_expect_eq(q_int("SELECT sum((details->'accounting'->>'requests')::int)"
                     " FROM audit_log WHERE event ="
                     " 'NINJAONE_EVIDENCE_SWEEP'"),
               json_integer_value(json_object_get(eu, "requests")));
  cr_expect_eq(q_int("SELECT sum((details->'accounting'->>'token_requests')"
                     "::int) FROM audit_log WHERE event ="
                     " 'NINJAONE_EVIDENCE_SWEEP'"),
               json_integer_value(json_object_get(eu, "tokenRequests")));
  cr_expect_eq(q_int("SELECT sum((details->'accounting'->>'throttled')::int)"
                     " FROM audit_log WHERE event ="
                     " 'NINJAONE_EVIDENCE_SWEEP'"),
               json_integer_value(json_object_get(eu, "throttled")));
  for (size_t k = 0; k < 6; k++)
    cr_expect_eq(q_int("SELECT sum((details->'accounting'->'by_endpoint'->>"
                       "'%s')::int) FROM audit_log WHERE event ="
                       " 'NINJAONE_EVIDENCE_SWEEP'",
                       used[k]),
                 2, "%s", used[k]);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_EVIDENCE_SWEEP' AND (details->>'requests')"
                     "::int = 6"),
               2);
  json_decref(stats);
}

Test(ninjaone_evidence, sweep_customer_refuses_a_mismatched_customer) {
  connect_eu();
  long long customer = map_org(201, true);
  long long other = q_int("INSERT INTO organization (name, kind) VALUES"
                          " ('Someone else', 'CUSTOMER') RETURNING id");
  long long mapping = q_int("SELECT id FROM integration_org_mapping WHERE"
                            " external_org_id = '201'");
  char m[24], c[24], o[24];
  snprintf(m, sizeof m, "%lld", mapping);
  snprintf(c, sizeof c, "%lld", customer);
  snprintf(o, sizeof o, "%lld", other);
  char *out, *err;
  /* Another customer's id, or the MSP's, as the destination: refused. */
  cr_expect_eq(nj(&out, &err, "sweep-customer", "--msp-org", msp_id(),
                  "--customer-org", o, "--mapping", m, "--region", "eu",
                  "--org", "201", NULL), 1);
  cr_expect(strstr(err, "nothing was written"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(nj(&out, &err, "sweep-customer", "--msp-org", msp_id(),
                  "--customer-org", msp_id(), "--mapping", m,
                  "--region", "eu", "--org", "201", NULL), 1);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal"), 0);
  /* The right one works, and writes only there. */
  cr_expect_eq(nj(&out, &err, "sweep-customer", "--msp-org", msp_id(),
                  "--customer-org", c, "--mapping", m, "--region", "eu",
                  "--org", "201", NULL), 0, "%s", err);
  cr_expect(strstr(out, "\"antivirus_posture\": \"PASS\""), "%s", out);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal WHERE"
                     " organization_id = %lld", customer), 5);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal"), 5);
}

static bool wait_for(const char *sql, long long want, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 200) {
    if (q_int("%s", sql) >= want)
      return true;
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* Under `serve` the sweep fans out through the durable queue: one customer
 * job per promoted mapping, keyed on the customer org, emitted with the
 * sweep's completion and idempotent within a tick, at priority 10: behind
 * the asset sync's tick (0) when both wait for a worker. */
Test(ninjaone_evidence, queued_fan_out_keys_each_customer) {
  connect_eu();
  long long c303 = map_org(303, true), c304 = map_org(304, true);
  map_org(305, false);
  char *text = rt_read_file(h.conf), extra[1024];
  snprintf(extra, sizeof extra,
           "\n[database]\nurl = %s\nmigrations_dir = %s\n"
           "poll_interval = 200ms\n",
           h.dsn, RT_SOURCE_DIR "/runner/migrations");
  char *full = malloc(strlen(text) + strlen(extra) + 1);
  cr_assert(full);
  strcpy(full, text);
  strcat(full, extra);
  rt_write_file(h.conf, full, 0644);
  free(full);
  free(text);
  char *migrate[] = {RT_RUNNER, "migrate", "-c", h.conf, NULL};
  char *err = NULL;
  cr_assert_eq(rt_run(migrate, NULL, NULL, NULL, &err), 0, "%s", err);
  free(err);
  rt_proc_t runner;
  char *serve[] = {RT_RUNNER, "serve", "-c", h.conf, NULL};
  char *env[] = {h.db_env, NULL};
  rt_proc_start(&runner, serve, env, NULL);
  char *enqueue[] = {RT_RUNNER, "enqueue", "ninjaone-evidence.sweep", "{}",
                     "-c", h.conf, NULL};
  cr_assert_eq(rt_run(enqueue, env, NULL, NULL, &err), 0, "%s", err);
  free(err);
  bool done = wait_for("SELECT count(*) FROM runner.job WHERE name ="
                       " 'ninjaone-evidence.customer' AND state ="
                       " 'completed'", 2, 60000);
  /* The same tick again: the customer events are not added twice. */
  cr_assert_eq(rt_run(enqueue, env, NULL, NULL, &err), 0, "%s", err);
  free(err);
  cr_expect(wait_for("SELECT count(*) FROM runner.job WHERE name ="
                     " 'ninjaone-evidence.sweep' AND state = 'completed'",
                     2, 60000));
  rt_proc_kill(&runner, SIGTERM);
  cr_expect(rt_proc_wait(&runner, 30000));
  char *log = rt_read_file(runner.err_path);
  cr_assert(done, "customer jobs did not complete:\n%s", log);
  cr_expect(!strstr(log, "ERROR: AddressSanitizer"), "%s", log);
  free(log);
  cr_expect_eq(q_int("SELECT count(*) FROM runner.job WHERE name ="
                     " 'ninjaone-evidence.customer'"), 2);
  cr_expect_eq(q_int("SELECT count(*) FROM runner.job j WHERE j.name ="
                     " 'ninjaone-evidence.customer' AND j.concurrency_limit ="
                     " 1 AND j.concurrency_key IN ('%lld', '%lld') AND"
                     " j.concurrency_key = j.payload->>'customer_org' AND"
                     " j.idempotency_key LIKE 'ninjaone-evidence:mapping:%%'"
                     " AND (j.payload->>'msp_org')::bigint = %lld AND"
                     " j.parent_id IS NOT NULL AND j.priority = 10",
                     c303, c304, msp),
               2);
  /* Two customers fit the hour: both due at once, and the result says so. */
  cr_expect_eq(q_int("SELECT count(*) FROM runner.job s WHERE s.name ="
                     " 'ninjaone-evidence.sweep' AND s.result->'pacing'->0->>"
                     "'mode' = 'at_once' AND (s.result->'pacing'->0->>"
                     "'estimated_requests')::int = 12"),
               2);
  cr_expect_eq(q_int("SELECT count(*) FROM runner.job WHERE name ="
                     " 'ninjaone-evidence.customer' AND run_at > created_at"
                     " + interval '1 second'"),
               0);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal"), 10);
  char *st = q_text("SELECT string_agg(status, ',' ORDER BY organization_id)"
                    " FROM monitoring_signal WHERE signal_key = 'patch_sla'");
  cr_expect_str_eq(st, c303 < c304 ? "WARNING,FAIL" : "FAIL,WARNING");
  free(st);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_EVIDENCE_SWEEP' AND organization_id IN"
                     " (%lld, %lld)", c303, c304), 2);
}

/* An endpoint that keeps failing fails the customer's sweep: nothing is
 * written, the first sweep stays not done, and the run says why. */
Test(ninjaone_evidence, a_failing_endpoint_writes_nothing) {
  connect_eu();
  long long customer = map_org(205, true);
  char *out = NULL;
  cr_assert_eq(rt_sim_post(&h.sim, "faults",
                           "{\"endpoint\": \"/v2/queries/antivirus-status\","
                           " \"kind\": \"http500\", \"rate\": 1.0,"
                           " \"count\": 100}",
                           &out),
               0);
  cr_assert(strstr(out, "\"ok\""), "%s", out);
  free(out);
  char *err;
  cr_expect_eq(nj(&out, &err, "sweep", NULL), 1);
  cr_expect(strstr(err, "/v2/queries/antivirus-status"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM evidence"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE organization_id ="
                     " %lld", customer), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " first_evidence_synced_at IS NULL AND"
                     " last_evidence_sweep->>'status' = 'error'"), 1);
}

/* The product page: the first sweep "after you connect" is a dry run, after
 * a reconnect as much as after the first connect. */
Test(ninjaone_evidence, the_first_sweep_after_a_reconnect_is_a_dry_run) {
  connect_eu();
  map_org(205, true);
  sweep(NULL);
  sweep(NULL);
  long long tickets = q_int("SELECT count(*) FROM psa_ticket");
  cr_assert(tickets > 0, "org 205 should open tickets once the bridge is on");
  char *out, *err;
  cr_assert_eq(nj(&out, &err, "disconnect", "--msp-org", msp_id(), NULL), 0,
               "%s", err);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " first_evidence_synced_at IS NULL"), 1);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE organization_id ="
                     " %lld AND event = 'FIRST_EVIDENCE_SYNC_CLEARED'", msp),
               1);
  q_int("UPDATE psa_ticket SET status = 'RESOLVED', resolved_at ="
        " last_seen_at RETURNING 1");
  connect_eu();
  sweep(NULL);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket WHERE status ="
                     " 'OPEN'"), 0, "the first sweep after reconnect opened"
                                   " tickets");
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " first_evidence_synced_at IS NOT NULL"), 1);
  sweep(NULL);
  cr_expect(q_int("SELECT count(*) FROM psa_ticket WHERE status = 'OPEN'") >
            0);
}
