/* ninjaone-mapping end to end: the regentra-runner binary, a real
 * PostgreSQL and the NinjaOne simulator over real sockets. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rt_ninjaone.h"

#define SECRET "demo-eu-secret"

static rt_nj_t h;
static long long msp, other_msp;

#define q_int(...) rt_nj_int(&h, __VA_ARGS__)
#define q_text(...) rt_nj_text(&h, __VA_ARGS__)
/* `regentra-runner ninjaone ARGS... -c conf --json`, stdin_text on its
 * standard input; returns the exit status; out/err are new. */
#define nj(out, err, stdin_text, ...) \
  rt_nj_run(&h, out, err, stdin_text, __VA_ARGS__)

static void setup_with(const char *sim_args, const char *extra_conf) {
  rt_nj_setup(&h, "njmap", SECRET,
              "1 8f1e2d3c4b5a69788796a5b4c3d2e1f0"
              "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
              sim_args);
  msp = q_int("INSERT INTO organization (name, kind) VALUES ('Acme MSP',"
              " 'MSP') RETURNING id");
  other_msp = q_int("INSERT INTO organization (name, kind) VALUES"
                    " ('Rival MSP', 'MSP') RETURNING id");
  rt_nj_write_conf(&h, "warning", "eu us", extra_conf, "ninjaone-mapping",
                   NULL);
}

static void setup(void) {
  setup_with("--fleet " SIM_FIXTURES "/demo.json", "");
}

static void teardown(void) {
  rt_nj_teardown(&h);
}

static const char *msp_id(void) {
  return rt_nj_id(msp);
}

static void connect_eu(void) {
  rt_nj_connect(&h, msp, "demo-eu-client");
}

TestSuite(ninjaone_mapping, .init = setup, .fini = teardown, .timeout = 120);

Test(ninjaone_mapping, test_reports_organizations_and_saves_nothing) {
  char *out, *err;
  int rc = nj(&out, &err, NULL, "test", "--msp-org", msp_id(), "--region",
              "eu", "--client-id", "demo-eu-client", "--client-secret-file",
              h.secret_file, NULL);
  cr_expect_eq(rc, 0, "%s%s", out, err);
  cr_expect(strstr(out, "\"organizations\": 5"), "%s", out);
  cr_expect(strstr(out, "\"granted_scope\": \"monitoring\""), "%s", out);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), 0);
}

/* The option of name `name` in a `plugins --json` option list, or NULL. */
static json_t *option_named(json_t *options, const char *name) {
  size_t i;
  json_t *o;
  json_array_foreach(options, i, o) {
    if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0)
      return o;
  }
  return NULL;
}

/* The NinjaOne connection is one [source "ninjaone"] section (written by
 * rt_nj_write_conf, so every NinjaOne test runs on it): the plugins list it
 * as their source's schema, a command reaches the simulator through its
 * base_url_eu, and the same key in a [plugin] section is refused with what
 * to write instead. */
Test(ninjaone_mapping, connection_is_one_source_section_every_plugin_reads) {
  rt_nj_write_conf(&h, "warning", "eu", "", "ninjaone-mapping",
                   "ninjaone-assets", "ninjaone-evidence", NULL);
  char *argv[] = {RT_RUNNER, "plugins", "--json", "-c", h.conf, NULL};
  char *env[] = {h.db_env, NULL};
  char *out = NULL, *err = NULL;
  cr_assert_eq(rt_run(argv, env, NULL, &out, &err), 0, "%s%s", out, err);
  json_error_t jerr;
  json_t *plugins = json_loads(out, 0, &jerr);
  cr_assert(plugins, "plugins --json: %s: %s", jerr.text, out);
  int ninjaone = 0;
  size_t i;
  json_t *p;
  json_array_foreach(plugins, i, p) {
    const char *name = json_string_value(json_object_get(p, "name"));
    if (strncmp(name, "ninjaone-", 9) != 0)
      continue;
    ninjaone++;
    json_t *source = json_object_get(p, "source");
    cr_expect_str_eq(json_string_value(json_object_get(source, "name")),
                     "ninjaone", "%s", name);
    json_t *shared = json_object_get(source, "options");
    for (const char *const *key = (const char *const[]){
             "base_url_us", "base_url_us2", "base_url_eu", "base_url_ca",
             "base_url_oc", "ca_file", "rate_per_minute", "rate_per_hour",
             NULL};
         *key; key++) {
      cr_expect(option_named(shared, *key), "%s: source lacks %s", name, *key);
      cr_expect(!option_named(json_object_get(p, "options"), *key),
                "%s: %s is still a plugin option", name, *key);
    }
    json_t *rate = option_named(shared, "rate_per_minute");
    cr_expect_str_eq(json_string_value(json_object_get(rate, "default")),
                     "200");
  }
  cr_expect_eq(ninjaone, 3, "%s", out);
  json_decref(plugins);
  free(out);
  free(err);

  /* base_url_eu comes from [source "ninjaone"] only: without it the
   * command would go to the real eu.ninjarmm.com. */
  int rc = nj(&out, &err, NULL, "test", "--msp-org", msp_id(), "--region",
              "eu", "--client-id", "demo-eu-client", "--client-secret-file",
              h.secret_file, NULL);
  cr_expect_eq(rc, 0, "%s%s", out, err);
  cr_expect(strstr(out, "\"organizations\": 5"), "%s", out);
  free(out);
  free(err);

  /* A configuration written before the [source] section: the key in the
   * plugin's own section is refused, naming file:line and the fix. */
  rt_nj_write_conf_source(&h, "warning", "", "rate_per_minute = 200\n",
                          "base_url_eu = http://127.0.0.1:1/eu\n",
                          "ninjaone-mapping", NULL);
  char *text = rt_read_file(h.conf);
  cr_assert(text);
  int line = 1;
  for (const char *c = text; c < strstr(text, "base_url_eu"); c++)
    line += *c == '\n';
  free(text);
  char where[400];
  snprintf(where, sizeof where,
           "%s:%d: key \"base_url_eu\" belongs to the connection of source "
           "\"ninjaone\"",
           h.conf, line);
  rc = nj(&out, &err, NULL, "test", "--msp-org", msp_id(), "--region", "eu",
          "--client-id", "demo-eu-client", "--client-secret-file",
          h.secret_file, NULL);
  cr_expect_neq(rc, 0, "%s", out);
  cr_expect(strstr(err, where), "expected \"%s\" in: %s", where, err);
  cr_expect(strstr(err, "into a [source \\\"ninjaone\\\"] section") ||
                strstr(err, "into a [source \"ninjaone\"] section"),
            "%s", err);
  free(out);
  free(err);
}

Test(ninjaone_mapping, wrong_region_fails_naming_region_and_host_and_saves_nothing) {
  char *out, *err, host[64];
  snprintf(host, sizeof host, "127.0.0.1:%d", h.sim.port);
  int rc = nj(&out, &err, NULL, "connect", "--msp-org", msp_id(), "--region",
              "us", "--client-id", "demo-eu-client", "--client-secret-file",
              h.secret_file, NULL);
  cr_expect_eq(rc, 1);
  cr_expect(strstr(err, "region us") && strstr(err, host),
            "the error must name the region and host: %s", err);
  cr_expect(strstr(err, "nothing was saved") || strstr(err, "wrong"), "%s",
            err);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), 0);
}

Test(ninjaone_mapping, connect_discovers_and_suggests_a_case_different_name) {
  long long acme = q_int("INSERT INTO portal_company (msp_org_id, name)"
                         " VALUES (%lld, 'acme manufacturing') RETURNING id",
                         msp);
  /* The secret comes on standard input this time. */
  char *out, *err;
  int rc = nj(&out, &err, SECRET "\n", "connect", "--msp-org", msp_id(),
              "--region", "eu", "--client-id", "demo-eu-client",
              "--client-secret-file", "-", NULL);
  cr_assert_eq(rc, 0, "%s%s", out, err);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " is_active AND key_version = 1 AND sealed_secret LIKE"
                     " 'v1:%%' AND sealed_secret NOT LIKE '%%" SECRET "%%'"),
               1);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE organization_id ="
                     " %lld AND event = 'NINJAONE_CONNECTED'", msp), 1);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE details::text"
                     " LIKE '%%" SECRET "%%'"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " msp_org_id = %lld AND state = 'PENDING'", msp), 5);
  cr_expect_eq(q_int("SELECT suggested_company_id FROM integration_org_mapping"
                     " WHERE external_name = 'ACME Manufacturing'"),
               acme);

  rc = nj(&out, &err, NULL, "orgs", "--msp-org", msp_id(), NULL);
  cr_expect_eq(rc, 0, "%s", err);
  cr_expect(strstr(out, "\"name\": \"acme manufacturing\""), "%s", out);
  cr_expect(strstr(out, "\"state\": \"PENDING\""), "%s", out);
  free(out);
  free(err);

  /* Only the monitoring scope was ever requested. */
  out = rt_sim_stats(&h.sim);
  cr_expect(strstr(out, "\"tokenScopes\""), "%s", out);
  cr_expect(!strstr(out, "management") && !strstr(out, "control"), "%s", out);
  free(out);
}

Test(ninjaone_mapping, the_three_actions_are_audited_and_guarded) {
  long long contoso = q_int("INSERT INTO portal_company (msp_org_id, name)"
                            " VALUES (%lld, 'Contoso') RETURNING id", msp);
  long long theirs = q_int("INSERT INTO portal_company (msp_org_id, name)"
                           " VALUES (%lld, 'Theirs') RETURNING id", other_msp);
  connect_eu();
  char c[24], t[24];
  snprintf(c, sizeof c, "%lld", contoso);
  snprintf(t, sizeof t, "%lld", theirs);
  cr_expect_eq(nj(NULL, NULL, NULL, "map", "--msp-org", msp_id(), "--org", "1",
                  "--use-existing", c, NULL), 0);
  cr_expect_eq(nj(NULL, NULL, NULL, "map", "--msp-org", msp_id(), "--org", "5",
                  "--create-new", NULL), 0);
  cr_expect_eq(nj(NULL, NULL, NULL, "map", "--msp-org", msp_id(), "--org", "4",
                  "--ignore", NULL), 0);
  char *out, *err;
  cr_expect_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(), "--org",
                  "2", "--use-existing", t, NULL), 1);
  cr_expect(strstr(err, "is not a company of MSP organization"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(), "--org",
                  "4", "--create-new", NULL), 1);
  cr_expect(strstr(err, "IGNORED"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(), "--org",
                  "999", "--ignore", NULL), 1);
  cr_expect(strstr(err, "has not been discovered"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(), "--org",
                  "3", "--ignore", "--create-new", NULL), 1);
  free(out);
  free(err);
  cr_expect_eq(nj(NULL, NULL, NULL, "map", "--msp-org", msp_id(), "--org", "4",
                  "--create-new", "--from-ignored", NULL), 0);
  char *events = q_text("SELECT string_agg(event, ',' ORDER BY id) FROM"
                        " audit_log WHERE organization_id = %lld AND event"
                        " LIKE 'ORG_MAPPING%%'", msp);
  cr_expect_str_eq(events, "ORG_MAPPING_USE_EXISTING,ORG_MAPPING_CREATE_NEW,"
                           "ORG_MAPPING_IGNORED,ORG_MAPPING_CREATE_NEW");
  free(events);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " state = 'MAPPED'"), 3);
  cr_expect_eq(q_int("SELECT count(*) FROM portal_company WHERE msp_org_id ="
                     " %lld", other_msp), 1, "nothing of the other MSP changed");
}

Test(ninjaone_mapping, disconnect_does_the_five_steps_and_reconnect_keeps_mappings) {
  long long customer = q_int("INSERT INTO organization (name, kind) VALUES"
                             " ('Contoso compliance', 'CUSTOMER') RETURNING id");
  long long company = q_int("INSERT INTO portal_company (msp_org_id, name,"
                            " converted_to_organization_id) VALUES (%lld,"
                            " 'Contoso Dental Group', %lld) RETURNING id",
                            msp, customer);
  connect_eu();
  char c[24];
  snprintf(c, sizeof c, "%lld", company);
  cr_assert_eq(nj(NULL, NULL, NULL, "map", "--msp-org", msp_id(), "--org",
                  "1", "--use-existing", c, NULL), 0);
  q_int("INSERT INTO asset (msp_org_id, portal_company_id, external_source,"
        " external_id, hostname) VALUES (%lld, %lld, 'ninjaone', '101', 'a'),"
        " (%lld, %lld, 'ninjaone', '102', 'b'), (%lld, %lld, 'level', 'x',"
        " 'c') RETURNING 1",
        msp, company, msp, company, msp, company);
  q_int("INSERT INTO monitoring_signal (organization_id, source, signal_key,"
        " status, metadata, expires_at) VALUES (%lld, 'ninjaone',"
        " 'device_inventory', 'PASS', '{}', now() + interval '7 days')"
        " RETURNING 1", customer);

  char *out, *err;
  cr_assert_eq(nj(&out, &err, NULL, "disconnect", "--msp-org", msp_id(),
                  NULL), 0, "%s", err);
  free(out);
  free(err);
  /* 1. sealed columns zeroed, inactive */
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE NOT"
                     " is_active AND sealed_secret IS NULL AND key_version"
                     " IS NULL"), 1);
  /* 2. every ninjaone asset of the MSP retired, rows kept, others alone */
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE external_source ="
                     " 'ninjaone' AND status = 'RETIRED'"), 2);
  cr_expect_eq(q_int("SELECT count(*) FROM asset WHERE external_source ="
                     " 'level' AND status = 'ACTIVE'"), 1);
  /* 3. the event on the customer's trail and on the MSP's */
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE organization_id ="
                     " %lld AND event = 'NINJAONE_DISCONNECTED' AND"
                     " (details->>'signals_collected')::int = 1", customer), 1);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE organization_id ="
                     " %lld AND event = 'NINJAONE_DISCONNECTED'", msp), 1);
  /* 4. signals and 5. mappings untouched */
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal"), 1);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " state = 'MAPPED' AND portal_company_id = %lld",
                     company), 1);

  /* Idempotent: a second disconnect changes nothing. */
  long long audits = q_int("SELECT count(*) FROM audit_log");
  cr_expect_eq(nj(NULL, NULL, NULL, "disconnect", "--msp-org", msp_id(),
                  NULL), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), audits);

  /* Commands that need the credential say to connect again. */
  cr_expect_eq(nj(&out, &err, NULL, "orgs", "--msp-org", msp_id(),
                  "--refresh", NULL), 1);
  cr_expect(strstr(err, "connect again"), "%s", err);
  free(out);
  free(err);

  connect_eu();
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " state = 'MAPPED' AND portal_company_id = %lld",
                     company), 1, "reconnect lost a mapping");
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " is_active"), 1);
  cr_expect_eq(nj(&out, &err, NULL, "status", "--msp-org", msp_id(), NULL), 0);
  cr_expect(strstr(out, "\"connected\": true"), "%s", out);
  free(out);
  free(err);
}

Test(ninjaone_mapping, bad_input_is_refused_and_changes_nothing) {
  char *out, *err;
  cr_expect_eq(nj(&out, &err, NULL, "orgs", "--msp-org", msp_id(), NULL), 1);
  cr_expect(strstr(err, "connect") && strstr(err, "first"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(nj(&out, &err, NULL, "test", "--msp-org", "999999", "--region",
                  "eu", "--client-id", "x", "--client-secret-file",
                  h.secret_file, NULL), 1);
  cr_expect(strstr(err, "unknown MSP organization 999999"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(nj(&out, &err, NULL, "test", "--msp-org", msp_id(), "--region",
                  "mars", "--client-id", "x", "--client-secret-file",
                  h.secret_file, NULL), 1);
  cr_expect(strstr(err, "expected one of us|us2|eu|ca|oc"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(nj(&out, &err, NULL, "connect", "--msp-org", msp_id(),
                  "--region", "eu", "--client-id", "x", NULL), 1);
  cr_expect(strstr(err, "missing required parameter \"client_secret_file\""),
            "%s", err);
  free(out);
  free(err);
  chmod(h.secret_file, 0644);
  cr_expect_eq(nj(&out, &err, NULL, "connect", "--msp-org", msp_id(),
                  "--region", "eu", "--client-id", "demo-eu-client",
                  "--client-secret-file", h.secret_file, NULL), 1);
  cr_expect(strstr(err, "accessible by group or others"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), 0);
}

Test(ninjaone_mapping, a_client_without_org_visibility_is_explained) {
  teardown();
  setup_with("--fleet " SIM_FIXTURES "/boundaries.json", "");
  char *out, *err;
  rt_write_file(h.secret_file, "boundary-blind-secret\n", 0600);
  cr_expect_eq(nj(&out, &err, NULL, "test", "--msp-org", msp_id(), "--region",
                  "eu", "--client-id", "boundary-blind-client",
                  "--client-secret-file", h.secret_file, NULL), 1);
  cr_expect(strstr(err, "sees no organization"), "%s", err);
  free(out);
  free(err);
}

Test(ninjaone_mapping, discovery_stops_at_5000_organizations_and_says_truncated,
     .timeout = 240) {
  teardown();
  setup_with("--generate --seed 3 --orgs 5001 --devices-per-org 1 "
             "--rate-limit-minute 0 --rate-limit-hour 0", "");
  rt_write_file(h.secret_file, "sim-eu-secret\n", 0600);
  char *out, *err;
  int rc = nj(&out, &err, NULL, "connect", "--msp-org", msp_id(), "--region",
              "eu", "--client-id", "sim-eu-client", "--client-secret-file",
              h.secret_file, NULL);
  cr_assert_eq(rc, 0, "%s%s", out, err);
  cr_expect(strstr(out, "\"truncated\": true"), "%s", out);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping"), 5000);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'NINJAONE_DISCOVERY' AND (details->>'truncated')::bool"),
               1);
}

Test(ninjaone_mapping, rotate_key_reseals_and_the_credential_still_opens) {
  connect_eu();
  char *sealed_before = q_text("SELECT sealed_secret FROM integration_credential");
  char *argv[] = {RT_RUNNER, "rotate-key", "--add-key", "-c", h.conf, NULL};
  char *env[] = {h.db_env, NULL};
  char *out, *err;
  cr_assert_eq(rt_run(argv, env, NULL, &out, &err), 0, "%s%s", out, err);
  cr_expect(strstr(out, "re-sealed 1 credential(s) under key version 2"),
            "%s", out);
  free(out);
  free(err);
  char *key = rt_read_file(h.key_file);
  cr_expect(strncmp(key, "1 ", 2) == 0 && strstr(key, "\n2 "),
            "the old key must stay: %s", key);
  free(key);
  char *sealed_after = q_text("SELECT sealed_secret FROM integration_credential");
  cr_expect(strncmp(sealed_after, "v2:", 3) == 0, "%s", sealed_after);
  cr_expect_str_neq(sealed_before, sealed_after);
  free(sealed_before);
  free(sealed_after);
  cr_expect_eq(q_int("SELECT key_version FROM integration_credential"), 2);
  /* The re-sealed secret still signs in to NinjaOne. */
  cr_expect_eq(nj(&out, &err, NULL, "orgs", "--msp-org", msp_id(),
                  "--refresh", NULL), 0, "%s", err);
  free(out);
  free(err);
}

/* ------------------------------------------------ what --json tells */

static json_t *parse_json(const char *text) {
  json_error_t jerr;
  json_t *o = json_loads(text ? text : "", 0, &jerr);
  cr_assert(json_is_object(o), "not one JSON object (%s):\n%s", jerr.text,
            text);
  return o;
}

static const char *jstr(json_t *o, const char *key) {
  const char *v = json_string_value(json_object_get(o, key));
  return v ? v : "";
}

Test(ninjaone_mapping, json_failure_of_a_wrong_region_has_code_message_and_hint) {
  char host[64];
  snprintf(host, sizeof host, "127.0.0.1:%d", h.sim.port);
  const char *commands[] = {"test", "connect"};
  for (size_t i = 0; i < 2; i++) {
    char *out, *err;
    int rc = nj(&out, &err, NULL, commands[i], "--msp-org", msp_id(),
                "--region", "us", "--client-id", "demo-eu-client",
                "--client-secret-file", h.secret_file, NULL);
    cr_expect_eq(rc, 1, "exit codes stay: %s", commands[i]);
    json_t *o = parse_json(out);
    cr_expect_str_eq(jstr(o, "error"), "auth_refused", "%s", out);
    /* Everything the text says: region, host, the upstream's cause. */
    const char *message = jstr(o, "message");
    cr_expect(strstr(message, "region us") && strstr(message, host),
              "%s", out);
    cr_expect(strstr(message, "wrong client id/secret or wrong region"),
              "%s", out);
    cr_expect(strstr(message, "HTTP 4") && strstr(message, "incidentId"),
              "%s", out);
    cr_expect(strstr(jstr(o, "hint"), "pick the region that matches the URL "
                                      "you sign in to NinjaOne with"),
              "%s", out);
    json_decref(o);
    free(out);
    free(err);
  }
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential"), 0);
}

Test(ninjaone_mapping, json_failures_name_the_troubleshooting_codes) {
  char *out, *err;
  /* Not connected yet: the region cannot be read from a credential. */
  cr_expect_eq(nj(&out, &err, NULL, "orgs", "--msp-org", msp_id(), NULL), 1);
  json_t *o = parse_json(out);
  cr_expect_str_eq(jstr(o, "error"), "not_connected", "%s", out);
  cr_expect(strstr(jstr(o, "hint"), "connect"), "%s", out);
  json_decref(o);
  free(out);
  free(err);
  connect_eu();
  /* An organization NinjaOne never listed. */
  cr_expect_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(), "--org",
                  "999", "--ignore", NULL), 1);
  o = parse_json(out);
  cr_expect_str_eq(jstr(o, "error"), "org_not_discovered", "%s", out);
  cr_expect(strstr(jstr(o, "hint"), "orgs --refresh"), "%s", out);
  json_decref(o);
  free(out);
  free(err);
  /* A bad flag combination. */
  cr_expect_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(), "--org",
                  "3", "--ignore", "--create-new", NULL), 1);
  o = parse_json(out);
  cr_expect_str_eq(jstr(o, "error"), "usage", "%s", out);
  json_decref(o);
  free(out);
  free(err);
}

Test(ninjaone_mapping, a_client_without_visibility_has_its_code) {
  teardown();
  setup_with("--fleet " SIM_FIXTURES "/boundaries.json", "");
  rt_write_file(h.secret_file, "boundary-blind-secret\n", 0600);
  char *out, *err;
  cr_expect_eq(nj(&out, &err, NULL, "test", "--msp-org", msp_id(), "--region",
                  "eu", "--client-id", "boundary-blind-client",
                  "--client-secret-file", h.secret_file, NULL), 1);
  json_t *o = parse_json(out);
  cr_expect_str_eq(jstr(o, "error"), "no_visible_organizations", "%s", out);
  cr_expect(strstr(jstr(o, "message"), "sees no organization"), "%s", out);
  cr_expect(strstr(jstr(o, "hint"), "organization assignments"), "%s", out);
  json_decref(o);
  free(out);
  free(err);
}

Test(ninjaone_mapping, disconnect_json_reports_the_state_after_the_change) {
  connect_eu();
  char *out, *err;
  cr_assert_eq(nj(&out, &err, NULL, "disconnect", "--msp-org", msp_id(),
                  NULL), 0, "%s", err);
  json_t *o = parse_json(out);
  cr_expect(json_is_false(json_object_get(o, "credential_active")), "%s", out);
  cr_expect_null(json_object_get(o, "already_disconnected"), "%s", out);
  json_decref(o);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " is_active"), 0);
  cr_assert_eq(nj(&out, &err, NULL, "disconnect", "--msp-org", msp_id(),
                  NULL), 0, "%s", err);
  o = parse_json(out);
  cr_expect(json_is_false(json_object_get(o, "credential_active")), "%s", out);
  cr_expect(json_is_true(json_object_get(o, "already_disconnected")), "%s",
            out);
  json_decref(o);
  free(out);
  free(err);
  /* connect says what it left behind too. */
  rt_nj_run(&h, &out, &err, NULL, "connect", "--msp-org", msp_id(),
            "--region", "eu", "--client-id", "demo-eu-client",
            "--client-secret-file", h.secret_file, NULL);
  o = parse_json(out);
  cr_expect(json_is_true(json_object_get(o, "credential_active")), "%s", out);
  cr_expect(json_is_true(json_object_get(o, "saved")), "%s", out);
  json_decref(o);
  free(out);
  free(err);
}

/* `regentra-runner ninjaone ARGS...` without --json: the text output. */
static int nj_text(char **out, char **err, ...) {
  char *argv[32] = {RT_RUNNER, "ninjaone"};
  int argc = 2;
  va_list ap;
  va_start(ap, err);
  for (char *a; (a = va_arg(ap, char *)) && argc < 29;)
    argv[argc++] = a;
  va_end(ap);
  argv[argc++] = "-c";
  argv[argc++] = h.conf;
  argv[argc] = NULL;
  char *env[] = {h.db_env, NULL};
  return rt_run(argv, env, NULL, out, err);
}

Test(ninjaone_mapping, an_ambiguous_name_lists_every_candidate_and_suggests_none) {
  long long lower = q_int("INSERT INTO portal_company (msp_org_id, name)"
                          " VALUES (%lld, 'northwind legal llp') RETURNING id",
                          msp);
  long long upper = q_int("INSERT INTO portal_company (msp_org_id, name)"
                          " VALUES (%lld, '  NORTHWIND   LEGAL LLP ')"
                          " RETURNING id", msp);
  q_int("INSERT INTO portal_company (msp_org_id, name) VALUES (%lld,"
        " 'Northwind Legal LLP') RETURNING id", other_msp);
  connect_eu();
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " external_org_id = '2' AND suggested_company_id IS"
                     " NULL"), 1);
  char *out, *err;
  cr_assert_eq(nj(&out, &err, NULL, "orgs", "--msp-org", msp_id(), NULL), 0,
               "%s", err);
  json_t *o = parse_json(out);
  json_t *row = NULL, *r;
  size_t i;
  json_array_foreach(json_object_get(o, "organizations"), i, r)
    if (strcmp(jstr(r, "external_org_id"), "2") == 0)
      row = r;
  cr_assert(row, "%s", out);
  cr_expect(json_is_null(json_object_get(row, "suggested_company")), "%s",
            out);
  cr_expect(json_is_true(json_object_get(row, "suggestion_ambiguous")), "%s",
            out);
  json_t *candidates = json_object_get(row, "suggestion_candidates");
  cr_assert_eq(json_array_size(candidates), 2, "only this MSP's: %s", out);
  cr_expect_eq(json_integer_value(json_object_get(
                   json_array_get(candidates, 0), "id")), lower);
  cr_expect_eq(json_integer_value(json_object_get(
                   json_array_get(candidates, 1), "id")), upper);
  json_decref(o);
  free(out);
  free(err);
  /* The text output has a column for it, naming both. */
  cr_assert_eq(nj_text(&out, &err, "orgs", "--msp-org", msp_id(), NULL), 0,
               "%s", err);
  char a[32], b[32];
  snprintf(a, sizeof a, "#%lld \"northwind legal llp\"", lower);
  snprintf(b, sizeof b, "#%lld \"  NORTHWIND", upper);
  cr_expect(strstr(out, "AMBIGUOUS"), "%s", out);
  cr_expect(strstr(out, a) && strstr(out, b), "%s", out);
  free(out);
  free(err);
}

/* ---------------------------------------------------- bulk mapping */

Test(ninjaone_mapping, accept_suggestions_previews_then_applies_unique_ones) {
  long long contoso = q_int("INSERT INTO portal_company (msp_org_id, name)"
                            " VALUES (%lld, 'contoso dental group')"
                            " RETURNING id", msp);
  long long acme = q_int("INSERT INTO portal_company (msp_org_id, name)"
                         " VALUES (%lld, 'ACME manufacturing') RETURNING id",
                         msp);
  q_int("INSERT INTO portal_company (msp_org_id, name) VALUES (%lld,"
        " 'Northwind Legal LLP'), (%lld, 'northwind legal llp') RETURNING 1",
        msp, msp);
  connect_eu();
  long long audits = q_int("SELECT count(*) FROM audit_log");
  char *out, *err;
  cr_assert_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(),
                  "--accept-suggestions", NULL), 0, "%s%s", out, err);
  json_t *o = parse_json(out);
  cr_expect_str_eq(jstr(o, "mode"), "preview");
  cr_expect_eq(json_integer_value(json_object_get(o, "would_change")), 2,
               "%s", out);
  cr_expect_eq(json_integer_value(json_object_get(o, "changed")), 0);
  cr_expect_eq(json_integer_value(json_object_get(o, "skipped_ambiguous")), 1,
               "%s", out);
  cr_expect_eq(json_array_size(json_object_get(o, "changes")), 2, "%s", out);
  json_decref(o);
  free(out);
  free(err);
  /* The preview changed nothing. */
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " state <> 'PENDING'"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), audits);

  cr_assert_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(),
                  "--accept-suggestions", "--apply", "--actor", "ops@msp",
                  NULL), 0, "%s%s", out, err);
  o = parse_json(out);
  cr_expect_str_eq(jstr(o, "mode"), "applied");
  cr_expect_eq(json_integer_value(json_object_get(o, "changed")), 2);
  json_decref(o);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT portal_company_id FROM integration_org_mapping"
                     " WHERE external_org_id = '1' AND state = 'MAPPED'"),
               contoso);
  cr_expect_eq(q_int("SELECT portal_company_id FROM integration_org_mapping"
                     " WHERE external_org_id = '5' AND state = 'MAPPED'"),
               acme);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " external_org_id = '2' AND state = 'PENDING'"), 1,
               "the ambiguous one stays for the operator");
  /* Audited per row like single maps, and once for the whole. */
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'ORG_MAPPING_USE_EXISTING' AND actor = 'ops@msp'"
                     " AND organization_id = %lld", msp), 2);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'ORG_MAPPING_BULK' AND (details->>'changed')::int = 2"),
               1);
}

Test(ninjaone_mapping, map_from_file_names_file_and_line_and_applies_all_or_none) {
  long long contoso = q_int("INSERT INTO portal_company (msp_org_id, name)"
                            " VALUES (%lld, 'Contoso') RETURNING id", msp);
  connect_eu();
  long long audits = q_int("SELECT count(*) FROM audit_log");
  long long companies = q_int("SELECT count(*) FROM portal_company");
  char file[400], text[512];
  snprintf(file, sizeof file, "%s/orgs.csv", h.dir);
  snprintf(text, sizeof text,
           "org,action,company\n"
           "# reviewed with the customer team\n"
           "1,use-existing,%lld\n"
           "3, create-new\n"
           "999,ignore\n"
           "4,frobnicate\n"
           "4,ignore\n",
           contoso);
  rt_write_file(file, text, 0600);
  char *out, *err;
  for (int apply = 0; apply < 2; apply++) {
    cr_expect_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(),
                    "--from-file", file, apply ? "--apply" : NULL, NULL),
                 1, "%s", out);
    json_t *o = parse_json(out);
    cr_expect_str_eq(jstr(o, "error"), "bulk_map_refused", "%s", out);
    char line5[600], line6[600];
    snprintf(line5, sizeof line5, "%s:5: NinjaOne organization 999 has not "
             "been discovered", file);
    snprintf(line6, sizeof line6, "%s:6: action \\\"frobnicate\\\"", file);
    cr_expect(strstr(out, line5), "%s", out);
    cr_expect(strstr(out, line6), "%s", out);
    json_decref(o);
    free(out);
    free(err);
    cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                       " state <> 'PENDING'"), 0, "nothing changed");
    cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), audits);
    cr_expect_eq(q_int("SELECT count(*) FROM portal_company"), companies);
  }

  snprintf(text, sizeof text, "1,use-existing,%lld\n3,create-new\n4,ignore\n",
           contoso);
  rt_write_file(file, text, 0600);
  cr_assert_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(),
                  "--from-file", file, NULL), 0, "%s%s", out, err);
  json_t *o = parse_json(out);
  cr_expect_str_eq(jstr(o, "mode"), "preview");
  cr_expect_eq(json_integer_value(json_object_get(o, "would_change")), 3);
  json_decref(o);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM portal_company"), companies,
               "the preview created no company");
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), audits);

  cr_assert_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(),
                  "--from-file", file, "--apply", NULL), 0, "%s%s", out, err);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT portal_company_id FROM integration_org_mapping"
                     " WHERE external_org_id = '1' AND state = 'MAPPED'"),
               contoso);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping m JOIN"
                     " portal_company pc ON pc.id = m.portal_company_id"
                     " WHERE m.external_org_id = '3' AND pc.name ="
                     " 'Fabrikam Logistics'"), 1);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " external_org_id = '4' AND state = 'IGNORED'"), 1);
  char *events = q_text("SELECT string_agg(event, ',' ORDER BY id) FROM"
                        " audit_log WHERE organization_id = %lld AND event"
                        " LIKE 'ORG_MAPPING%%'", msp);
  cr_expect_str_eq(events, "ORG_MAPPING_USE_EXISTING,ORG_MAPPING_CREATE_NEW,"
                           "ORG_MAPPING_IGNORED,ORG_MAPPING_BULK");
  free(events);
  /* Applying the same file again changes nothing more. */
  audits = q_int("SELECT count(*) FROM audit_log");
  cr_assert_eq(nj(&out, &err, NULL, "map", "--msp-org", msp_id(),
                  "--from-file", file, "--apply", NULL), 0, "%s%s", out, err);
  o = parse_json(out);
  cr_expect_eq(json_integer_value(json_object_get(o, "changed")), 0, "%s",
               out);
  cr_expect_eq(json_integer_value(json_object_get(o, "unchanged")), 3, "%s",
               out);
  json_decref(o);
  free(out);
  free(err);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), audits);
}
