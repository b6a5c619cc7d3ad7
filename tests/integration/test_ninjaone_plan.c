/* `regentra-runner ninjaone plan --json`: the binary, a real PostgreSQL
 * with mappings and last-sync device counts, and the simulator (for the
 * credential's connect). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

Test(ninjaone_plan, counts_the_requests_of_each_cadence_from_the_last_sync) {
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
  cr_expect(json_is_string(json_object_get(j, "message")));
  json_decref(j);
  j = plan_json(1, "999999");
  cr_expect_str_eq(json_string_value(json_object_get(j, "error")), "not_found");
  json_decref(j);
}
