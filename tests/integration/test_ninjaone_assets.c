/* ninjaone-assets end to end: `regentra-runner ninjaone sync` against a real
 * PostgreSQL and the NinjaOne simulator over real sockets, after connecting
 * and mapping with the ninjaone-mapping commands. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_ninjaone.h"
#include "sim_client.h"

#define SECRET "demo-eu-secret"

static rt_nj_t h;
static sim_proc_t simc;
static long long msp, other_msp;

#define q_int(...) rt_nj_int(&h, __VA_ARGS__)
#define q_text(...) rt_nj_text(&h, __VA_ARGS__)
/* `regentra-runner ninjaone ARGS... -c conf --json`; returns the exit
 * status; out/err are new (or freed when NULL is passed). */
#define nj(out, err, ...) rt_nj_run(&h, out, err, NULL, __VA_ARGS__)

/* The runner's configuration; assets_extra goes into the assets plugin's
 * section (e.g. a device cap). */
static void write_conf(const char *log_level, const char *assets_extra) {
  rt_nj_write_conf(&h, log_level, "eu us", assets_extra, "ninjaone-mapping",
                   "ninjaone-assets", NULL);
}

static void setup(void) {
  rt_nj_setup(&h, "njassets", SECRET,
              "1 8f1e2d3c4b5a69788796a5b4c3d2e1f0"
              "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
              "--fleet " SIM_FIXTURES "/demo.json");
  h.no_sanitizer_report = true;
  /* The same simulator, for the checks that ask it directly. */
  memset(&simc, 0, sizeof simc);
  simc.port = h.sim.port;
  snprintf(simc.scheme, sizeof simc.scheme, "http");
  msp = q_int("INSERT INTO organization (name, kind) VALUES ('Acme MSP',"
              " 'MSP') RETURNING id");
  other_msp = q_int("INSERT INTO organization (name, kind) VALUES"
                    " ('Rival MSP', 'MSP') RETURNING id");
  write_conf("info", "");
}

static void teardown(void) {
  rt_nj_teardown(&h);
}

static void connect_eu(long long msp_org_id) {
  rt_nj_connect(&h, msp_org_id, "demo-eu-client");
}

/* Maps a NinjaOne org to a new company named after it; returns the
 * mapping id. */
static long long map_new(long long msp_org_id, const char *org) {
  char *out, *err;
  int rc = nj(&out, &err, "map", "--msp-org", rt_nj_id(msp_org_id), "--org",
              org, "--create-new", NULL);
  cr_assert_eq(rc, 0, "map failed: %s%s", out, err);
  free(out);
  free(err);
  return q_int("SELECT id FROM integration_org_mapping WHERE msp_org_id ="
               " %lld AND external_org_id = '%s'", msp_org_id, org);
}

static long long company_of(long long mapping_id) {
  return q_int("SELECT portal_company_id FROM integration_org_mapping WHERE"
               " id = %lld", mapping_id);
}

/* Runs the sync with extra arguments; asserts the exit status. */
static void sync_expect(int want, char **out, char **err, const char *a1,
                        const char *a2, const char *a3, const char *a4) {
  char *o, *e;
  int rc = nj(&o, &e, "sync", a1, a2, a3, a4, NULL);
  cr_assert_eq(rc, want, "sync exit %d: %s%s", rc, o, e);
  if (out)
    *out = o;
  else
    free(o);
  if (err)
    *err = e;
  else
    free(e);
}

/* The approved device ids of a simulator org, sorted, comma-joined. */
static char *sim_device_ids(int org) {
  char *token = simc_token(&simc, "eu", "demo-eu-client", SECRET, NULL);
  cr_assert(token);
  char query[64];
  snprintf(query, sizeof query, "df=org%%20%%3D%%20%d", org);
  int pages = 0;
  json_t *rows = simc_walk_entities(&simc, "/eu/v2/devices-detailed", query,
                                    token, 1000, &pages);
  free(token);
  cr_assert(rows);
  long long ids[1000];
  size_t n = 0, i;
  json_t *row;
  json_array_foreach(rows, i, row) {
    const char *status =
        json_string_value(json_object_get(row, "approvalStatus"));
    if (n < 1000 && status && strcmp(status, "APPROVED") == 0)
      ids[n++] = json_integer_value(json_object_get(row, "id"));
  }
  json_decref(rows);
  for (size_t a = 1; a < n; a++)
    for (size_t b = a; b > 0 && ids[b - 1] > ids[b]; b--) {
      long long t = ids[b];
      ids[b] = ids[b - 1];
      ids[b - 1] = t;
    }
  char *text = calloc(1, n * 24 + 1);
  size_t used = 0;
  for (i = 0; i < n; i++)
    used += (size_t)sprintf(text + used, "%s%lld", i ? "," : "", ids[i]);
  return text;
}

static char *asset_ids(long long company, const char *status) {
  return q_text("SELECT coalesce(string_agg(external_id, ',' ORDER BY"
                " external_id::bigint), '') FROM asset WHERE portal_company_id"
                " = %lld AND external_source = 'ninjaone' AND status = '%s'",
                company, status);
}

static long long fleet(const char *body) {
  return simc_control(&simc, "fleet", body);
}

TestSuite(ninjaone_assets, .init = setup, .fini = teardown, .timeout = 180);

Test(ninjaone_assets, approved_devices_of_mapped_orgs_become_assets) {
  connect_eu(msp);
  long long m1 = map_new(msp, "1"), m5 = map_new(msp, "5");
  cr_assert_eq(nj(NULL, NULL, "map", "--msp-org", rt_nj_id(msp), "--org", "4",
                  "--ignore", NULL), 0);
  /* `run` logs at the configured level (commands log errors only). */
  write_conf("debug", "");
  char *out, *err;
  char *argv[] = {RT_RUNNER, "run", "ninjaone-assets.sync", "-c", h.conf,
                  NULL};
  char *env[] = {h.db_env, NULL};
  cr_assert_eq(rt_run(argv, env, NULL, &out, &err), 0);
  cr_expect(strstr(out, "\"truncatedAny\": false"), "%s", out);
  cr_expect(!strstr(out, SECRET) && !strstr(err, SECRET));
  cr_expect(!strstr(err, "Sanitizer"), "%s", err);

  /* Exactly the simulator's approved devices of the mapped orgs. */
  for (int k = 0; k < 2; k++) {
    long long company = company_of(k ? m5 : m1);
    char *want = sim_device_ids(k ? 5 : 1), *got = asset_ids(company, "ACTIVE");
    cr_expect_str_eq(got, want, "org %d", k ? 5 : 1);
    free(want);
    free(got);
  }
  cr_expect_eq(q_int("SELECT count(*) FROM asset"), 11 + 17);
  /* Each asset knows its NinjaOne organization, for "don't sync" later. */
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE external_org_id ="
                     " '1'"), 11);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE external_org_id ="
                     " '5'"), 17);
  /* Pending devices are skipped: 2082 is PENDING in org 5. */
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE external_id = '2082'"),
               0);
  /* Ignored and pending orgs contribute nothing. */
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE portal_company_id NOT"
                     " IN (%lld, %lld)", company_of(m1), company_of(m5)), 0);
  /* Normalized fields. */
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE external_id = '2001'"
                     " AND hostname = 'CDG-SRV01' AND name IS NOT NULL AND"
                     " device_class = 'WINDOWS_SERVER' AND serial_number IS"
                     " NOT NULL AND os_name IS NOT NULL AND manufacturer IS"
                     " NOT NULL AND model IS NOT NULL AND last_seen_at IS NOT"
                     " NULL AND cardinality(mac_addresses) >= 1 AND"
                     " msp_org_id = %lld", msp), 1);

  /* One audit row on the MSP with per-mapping counts. */
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_ASSET_SYNC'"), 1);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_ASSET_SYNC' AND organization_id = %lld AND"
                     " details->>'truncatedAny' = 'false' AND"
                     " jsonb_array_length(details->'mappings') = 2 AND"
                     " (details->'totals'->>'created')::int = 28", msp), 1);
  cr_expect_eq(q_int("SELECT (m->>'created')::int * 100 + (m->>'seen')::int"
                     " FROM audit_log, jsonb_array_elements(details->"
                     "'mappings') m WHERE event = 'NINJAONE_ASSET_SYNC' AND"
                     " (m->>'mapping_id')::bigint = %lld", m5), 1717);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " last_asset_sync_at IS NOT NULL AND"
                     " last_asset_sync->>'status' = 'ok'"), 1);

  /* No device identifier in any log line, nor in the audit row. */
  char *idents = q_text(
      "SELECT string_agg(concat_ws(',', hostname, serial_number,"
      " array_to_string(mac_addresses, ',')), ',') FROM asset");
  char *audit = q_text("SELECT details::text FROM audit_log WHERE event ="
                       " 'NINJAONE_ASSET_SYNC'");
  for (char *tok = strtok(idents, ","); tok; tok = strtok(NULL, ",")) {
    cr_expect(!strstr(err, tok), "log line names a device: %s", tok);
    cr_expect(!strstr(audit, tok), "audit names a device: %s", tok);
  }
  cr_expect(strstr(err, "asset sync of MSP organization"), "%s", err);
  free(idents);
  free(audit);
  free(out);
  free(err);

  /* Again: nothing new, nothing changed, nothing retired; every device
   * seen, none written. */
  sync_expect(0, NULL, NULL, NULL, NULL, NULL, NULL);
  cr_expect_eq(q_int("SELECT (details->'totals'->>'seen')::int * 10000 +"
                     " (details->'totals'->>'updated')::int * 1000 +"
                     " (details->'totals'->>'created')::int * 100 +"
                     " (details->'totals'->>'retired')::int FROM audit_log"
                     " WHERE event = 'NINJAONE_ASSET_SYNC' ORDER BY id DESC"
                     " LIMIT 1"), 280000);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'ACTIVE'"), 28);
}

Test(ninjaone_assets, a_device_gone_from_ninjaone_is_retired_next_sync) {
  connect_eu(msp);
  long long m1 = map_new(msp, "1");
  sync_expect(0, NULL, NULL, NULL, NULL, NULL, NULL);
  cr_assert_eq(q_int("SELECT count(*) FROM asset WHERE status = 'ACTIVE'"), 11);
  cr_assert_eq(fleet("{\"op\": \"device_remove\", \"deviceId\": 2002}"), 200);
  cr_assert_eq(fleet("{\"op\": \"device_unapprove\", \"deviceId\": 2003}"),
               200);
  sync_expect(0, NULL, NULL, NULL, NULL, NULL, NULL);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'RETIRED'"
                     " AND external_id IN ('2002', '2003') AND retired_reason"
                     " IS NOT NULL"), 2);
  cr_expect_eq(q_int("SELECT count(*) FROM asset"), 11, "rows are kept");
  char *want = sim_device_ids(1), *got = asset_ids(company_of(m1), "ACTIVE");
  cr_expect_str_eq(got, want);
  free(want);
  free(got);
  cr_expect_eq(q_int("SELECT (details->'totals'->>'retired')::int FROM"
                     " audit_log WHERE event = 'NINJAONE_ASSET_SYNC' ORDER BY"
                     " id DESC LIMIT 1"), 2);
  /* Approved again: back to ACTIVE. */
  cr_assert_eq(fleet("{\"op\": \"device_approve\", \"deviceId\": 2003}"),
               200);
  sync_expect(0, NULL, NULL, NULL, NULL, NULL, NULL);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'ACTIVE'"), 10);
}

Test(ninjaone_assets, the_device_cap_sets_truncated_and_retires_nothing) {
  connect_eu(msp);
  map_new(msp, "1");
  sync_expect(0, NULL, NULL, NULL, NULL, NULL, NULL);
  cr_assert_eq(q_int("SELECT count(*) FROM asset WHERE status = 'ACTIVE'"), 11);
  write_conf("info", "max_devices_per_org = 5\n");
  char *out;
  sync_expect(0, &out, NULL, NULL, NULL, NULL, NULL);
  cr_expect(strstr(out, "\"truncatedAny\": true"), "%s", out);
  free(out);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_ASSET_SYNC' AND details->>'truncatedAny' ="
                     " 'true' AND (details->'totals'->>'seen')::int = 5 AND"
                     " (details->'totals'->>'retired')::int = 0"), 1);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'ACTIVE'"), 11,
               "a truncated pull retires nothing");
}

Test(ninjaone_assets, a_per_mapping_sync_touches_only_that_mapping) {
  connect_eu(msp);
  long long m1 = map_new(msp, "1"), m5 = map_new(msp, "5");
  sync_expect(0, NULL, NULL, "--msp-org", rt_nj_id(msp), NULL, NULL);
  cr_assert_eq(q_int("SELECT count(*) FROM asset WHERE status = 'ACTIVE'"), 28);
  cr_assert_eq(fleet("{\"op\": \"device_remove\", \"deviceId\": 2002}"), 200);
  cr_assert_eq(fleet("{\"op\": \"device_remove\", \"deviceId\": 2083}"), 200);
  long long before = q_int("SELECT (max(last_synced_at) ="
                           " min(last_synced_at))::int FROM asset WHERE"
                           " portal_company_id = %lld", company_of(m5));
  char *m5_synced = q_text("SELECT max(last_synced_at)::text FROM asset WHERE"
                           " portal_company_id = %lld", company_of(m5));
  sync_expect(0, NULL, NULL, "--mapping", rt_nj_id(m1), NULL, NULL);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'RETIRED'"),
               1);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'RETIRED' AND"
                     " external_id = '2002'"), 1);
  char *m5_after = q_text("SELECT max(last_synced_at)::text FROM asset WHERE"
                          " portal_company_id = %lld", company_of(m5));
  cr_expect_str_eq(m5_after, m5_synced, "the other mapping was touched");
  cr_expect_eq(before, 1);
  free(m5_synced);
  free(m5_after);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_ASSET_SYNC' AND details->>'scope' ="
                     " 'mapping' AND (details->>'mapping_id')::bigint = %lld"
                     " AND jsonb_array_length(details->'mappings') = 1", m1),
               1);

  /* A mapping that is not MAPPED, or of another MSP, is refused. */
  char *err;
  long long pending = q_int("SELECT id FROM integration_org_mapping WHERE"
                            " external_org_id = '2'");
  sync_expect(1, NULL, &err, "--mapping", rt_nj_id(pending), NULL, NULL);
  cr_expect(strstr(err, "not MAPPED"), "%s", err);
  free(err);
  sync_expect(1, NULL, &err, "--mapping", rt_nj_id(m1), "--msp-org",
              rt_nj_id(other_msp));
  cr_expect(strstr(err, "does not belong to MSP organization"), "%s", err);
  free(err);
  sync_expect(1, NULL, &err, "--mapping", "999999", NULL, NULL);
  cr_expect(strstr(err, "no NinjaOne mapping 999999"), "%s", err);
  free(err);
}

Test(ninjaone_assets, a_failing_credential_does_not_stop_another_msp) {
  long long third = q_int("INSERT INTO organization (name, kind) VALUES"
                          " ('Third MSP', 'MSP') RETURNING id");
  connect_eu(msp);
  map_new(msp, "1");
  /* The rival's sealed secret cannot be opened. */
  connect_eu(other_msp);
  map_new(other_msp, "2");
  q_int("UPDATE integration_credential SET sealed_secret = 'v1:AAAA'"
        " WHERE msp_org_id = %lld RETURNING 1", other_msp);
  /* The third's credential is used against the wrong region. */
  connect_eu(third);
  map_new(third, "3");
  q_int("UPDATE integration_org_mapping SET region = 'us' WHERE msp_org_id ="
        " %lld RETURNING 1", third);
  q_int("UPDATE integration_credential SET region = 'us' WHERE msp_org_id ="
        " %lld RETURNING 1", third);

  char *out, *err;
  sync_expect(1, &out, &err, NULL, NULL, NULL, NULL);
  cr_expect(strstr(err, "cannot be opened"), "%s", err);
  cr_expect(strstr(err, "region us"), "the wrong region is named: %s", err);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE msp_org_id = %lld AND"
                     " status = 'ACTIVE'", msp), 11);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE msp_org_id <> %lld",
                     msp), 0);
  /* Every MSP has its audit row; only the healthy one is clean. */
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_ASSET_SYNC' AND (details->>'failed')::int ="
                     " 0 AND organization_id = %lld", msp), 1);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_ASSET_SYNC' AND (details->>'failed')::int ="
                     " 1 AND organization_id IN (%lld, %lld)", other_msp,
                     third), 2);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " last_asset_sync->>'status' = 'failed'"), 2);

  /* One MSP alone syncs cleanly. */
  sync_expect(0, NULL, NULL, "--msp-org", rt_nj_id(msp), NULL, NULL);
  char *err2;
  sync_expect(1, NULL, &err2, "--msp-org", "999999", NULL, NULL);
  cr_expect(strstr(err2, "unknown MSP organization 999999"), "%s", err2);
  free(err2);
}

Test(ninjaone_assets, a_company_of_two_orgs_retires_over_their_union) {
  connect_eu(msp);
  long long company = q_int("INSERT INTO portal_company (msp_org_id, name)"
                            " VALUES (%lld, 'Group') RETURNING id", msp);
  for (int org = 1; org <= 2; org++) {
    char o[4];
    snprintf(o, sizeof o, "%d", org);
    cr_assert_eq(nj(NULL, NULL, "map", "--msp-org", rt_nj_id(msp), "--org", o,
                    "--use-existing", rt_nj_id(company), NULL), 0);
  }
  long long m1 = q_int("SELECT id FROM integration_org_mapping WHERE"
                       " external_org_id = '1'");
  sync_expect(0, NULL, NULL, NULL, NULL, NULL, NULL);
  cr_assert_eq(q_int("SELECT count(*) FROM asset WHERE status = 'ACTIVE' AND"
                     " portal_company_id = %lld", company), 11 + 24,
               "one organization's pull retired the other's devices");
  /* Again: still all of them, each mapping counted on its own. */
  sync_expect(0, NULL, NULL, NULL, NULL, NULL, NULL);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'ACTIVE'"),
               35);
  /* A device gone from org 2: retired over the union of both pulls. */
  cr_assert_eq(fleet("{\"op\": \"device_remove\", \"deviceId\": 2014}"), 200);
  cr_assert_eq(fleet("{\"op\": \"device_remove\", \"deviceId\": 2002}"), 200);
  /* One mapping alone cannot tell what the company lost: retires nothing. */
  sync_expect(0, NULL, NULL, "--mapping", rt_nj_id(m1), NULL, NULL);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'RETIRED'"), 0);
  sync_expect(0, NULL, NULL, NULL, NULL, NULL, NULL);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'RETIRED'"
                     " AND external_id IN ('2002', '2014')"), 2);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE status = 'ACTIVE'"),
               33);
  cr_expect_eq(q_int("SELECT (details->'totals'->>'retired')::int FROM"
                     " audit_log WHERE event = 'NINJAONE_ASSET_SYNC' ORDER BY"
                     " id DESC LIMIT 1"), 2);
}

Test(ninjaone_assets, nothing_connected_is_nothing_to_do) {
  char *out;
  sync_expect(0, &out, NULL, NULL, NULL, NULL, NULL);
  cr_expect(strstr(out, "\"mappings\": 0"), "%s", out);
  free(out);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), 0);
  char *err;
  sync_expect(1, NULL, &err, "--msp-org", rt_nj_id(msp), NULL, NULL);
  cr_expect(strstr(err, "connect"), "%s", err);
  free(err);
}
