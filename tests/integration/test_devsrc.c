/* The device-source library against a real PostgreSQL, through the host's
 * own transaction service, as a plugin uses it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regentra/devsrc.h"
#include "rt.h"
#include "rt_host.h"

static rt_host_t host;
static const char *dsn;
static int64_t tx_now_ms; /* the clock of the next transactions */
static int64_t msp_id, other_msp_id, customer_id;

static char *q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *q(const char *fmt, ...) {
  char sql[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  return rt_pg_query(dsn, sql);
}

static int64_t q_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t q_int(const char *fmt, ...) {
  char sql[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  char *v = rt_pg_query(dsn, sql);
  int64_t n = v ? strtoll(v, NULL, 10) : -1;
  free(v);
  return n;
}

static void setup(void) {
  dsn = rt_pg_fresh_db();
  rt_pg_apply_dir(dsn, RT_SOURCE_DIR "/sdk/devsrc/migrations");
  msp_id = q_int("INSERT INTO organization (name, kind) VALUES ('Acme MSP',"
                 " 'MSP') RETURNING id");
  other_msp_id = q_int("INSERT INTO organization (name, kind) VALUES"
                       " ('Other MSP', 'MSP') RETURNING id");
  customer_id = q_int("INSERT INTO organization (name, kind) VALUES"
                      " ('Contoso compliance', 'CUSTOMER') RETURNING id");
  rn__config_t *config = calloc(1, sizeof *config);
  config->path = strdup("(test)");
  config->drain_timeout_ms = 1000;
  config->workers = 4;
  config->database_url = strdup(dsn);
  rt_host_open(&host, config);
  tx_now_ms = 1767225600000; /* 2026-01-01 */
}

static void teardown(void) { rt_host_close(&host); }

TestSuite(devsrc, .init = setup, .fini = teardown, .timeout = 60);

/* Runs fn inside one transaction through the host; returns its status. */
typedef int (*body_fn)(rn_devsrc_t *ds, void *data);
typedef struct tx_s {
  body_fn body;
  void *data;
  bool done;
  int status;
  char error[1024];
} tx_t;

static int tx_body(rn_db_tx_t *dbtx, void *data) {
  tx_t *t = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host.api, dbtx, tx_now_ms);
  int rc = t->body(&ds, t->data);
  if (rc < 0)
    snprintf(t->error, sizeof t->error, "%s", rn_devsrc_error(&ds));
  return rc;
}

static void tx_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  tx_t *t = data;
  t->done = true;
  t->status = status;
}

static int in_tx(body_fn body, void *data, char *error) {
  tx_t t = {.body = body, .data = data};
  cr_assert_eq(host.api->db_transaction(host.ctx, tx_body, tx_done, &t, NULL),
               0);
  cr_assert(rt_host_run_until(&host, &t.done, 30000), "transaction hung");
  if (error)
    strcpy(error, t.error);
  return t.status;
}

/* ------------------------------------------------------------- assets */

typedef struct sync_s {
  int64_t company;
  const char *source;
  rn_asset_t *assets;
  size_t count;
  bool complete;
  rn_asset_counts_t counts;
} sync_t;

static int do_sync(rn_devsrc_t *ds, void *data) {
  sync_t *s = data;
  return rn_assets_sync(ds, RN_MSP_ORG(msp_id), RN_COMPANY(s->company),
                        s->source, s->assets, s->count, s->complete, NULL,
                        &s->counts);
}

static int64_t company(const char *name) {
  return q_int("INSERT INTO portal_company (msp_org_id, name) VALUES (%lld,"
               " '%s') RETURNING id",
               (long long)msp_id, name);
}

static char *status_of(const char *source, const char *id) {
  return q("SELECT status || coalesce(':' || retired_reason, '') FROM asset"
           " WHERE external_source = '%s' AND external_id = '%s'",
           source, id);
}

#define EXPECT_STATUS(source, id, expected)                                  \
  do {                                                                       \
    char *got_ = status_of(source, id);                                      \
    cr_expect(got_ && strncmp(got_, expected, strlen(expected)) == 0,         \
              "%s/%s: %s, expected %s", source, id, got_ ? got_ : "(none)",   \
              expected);                                                     \
    free(got_);                                                              \
  } while (0)

Test(devsrc, dedups_across_four_sources_by_serial_then_mac_then_hostname) {
  int64_t c = company("Contoso");
  const char *mac_a[] = {"00-1A-2B-3C-4D-5E", NULL};
  const char *mac_a2[] = {"00:1a:2b:3c:4d:5e", "aa:bb:cc:dd:ee:01", NULL};
  const char *mac_b[] = {"aa:bb:cc:dd:ee:02", NULL};
  rn_asset_t ninja[] = {
      {.external_id = "n1", .hostname = "CTS-FS01", .serial_number = "7XK2QH3"},
      {.external_id = "n2", .hostname = "CTS-WS02", .mac_addresses = mac_a},
      {.external_id = "n3", .hostname = "CTS-WS03"},
  };
  rn_asset_t level[] = {
      /* same serial, another hostname: the same machine renamed */
      {.external_id = "l1", .hostname = "renamed-fs", .serial_number = "7xk2-qh3"},
      /* no serial, shares a MAC with n2 */
      {.external_id = "l2", .hostname = "other", .mac_addresses = mac_a2},
  };
  rn_asset_t intune[] = {
      /* no serial, no MAC: hostname match, case-insensitive */
      {.external_id = "i3", .hostname = "cts-ws03"},
      /* a different serial and the same hostname: a different device */
      {.external_id = "i4", .hostname = "CTS-FS01", .serial_number = "ZZZ99999"},
  };
  rn_asset_t entra[] = {
      {.external_id = "e1", .hostname = "x", .serial_number = "7XK2QH3"},
      {.external_id = "e5", .hostname = "lonely", .mac_addresses = mac_b},
  };
  sync_t syncs[] = {
      {c, "entra", entra, 2, true, {0}},   {c, "intune", intune, 2, true, {0}},
      {c, "level", level, 2, true, {0}},   {c, "ninjaone", ninja, 3, true, {0}},
  };
  char err[1024];
  for (size_t i = 0; i < 4; i++)
    cr_assert_eq(in_tx(do_sync, &syncs[i], err), 0, "%s", err);
  EXPECT_STATUS("ninjaone", "n1", "ACTIVE");
  EXPECT_STATUS("ninjaone", "n2", "ACTIVE");
  EXPECT_STATUS("ninjaone", "n3", "ACTIVE");
  EXPECT_STATUS("level", "l1", "RETIRED:duplicate of ninjaone asset n1");
  EXPECT_STATUS("level", "l2", "RETIRED:duplicate of ninjaone asset n2");
  EXPECT_STATUS("intune", "i3", "RETIRED:duplicate of ninjaone asset n3");
  EXPECT_STATUS("intune", "i4", "ACTIVE");
  EXPECT_STATUS("entra", "e1", "RETIRED:duplicate of ninjaone asset n1");
  EXPECT_STATUS("entra", "e5", "ACTIVE");
  cr_expect_eq(syncs[3].counts.deduped, 4, "ninjaone's sync retired %lld",
               (long long)syncs[3].counts.deduped);
  cr_expect_eq(syncs[3].counts.statements, 6,
               "planner settings, upsert, retire, dedup (and its planner "
               "setting), planner settings restored");
}

Test(devsrc, a_duplicate_comes_back_when_its_winner_goes) {
  int64_t c = company("Fabrikam");
  rn_asset_t ninja[] = {{.external_id = "n1", .serial_number = "SER12345"}};
  rn_asset_t level[] = {{.external_id = "l1", .serial_number = "SER12345"}};
  sync_t s_level = {c, "level", level, 1, true, {0}};
  sync_t s_ninja = {c, "ninjaone", ninja, 1, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_sync, &s_level, err), 0, "%s", err);
  cr_assert_eq(in_tx(do_sync, &s_ninja, err), 0, "%s", err);
  EXPECT_STATUS("level", "l1", "RETIRED:duplicate of ninjaone asset n1");
  /* The device leaves NinjaOne: a complete, empty pull. */
  sync_t gone = {c, "ninjaone", NULL, 0, true, {0}};
  cr_assert_eq(in_tx(do_sync, &gone, err), 0, "%s", err);
  EXPECT_STATUS("ninjaone", "n1", "RETIRED:not seen in a complete pull");
  EXPECT_STATUS("level", "l1", "ACTIVE");
  cr_expect_eq(gone.counts.retired, 1);
  cr_expect_eq(gone.counts.restored, 1);
  /* And it returns: the winner is active again, level retired again. */
  cr_assert_eq(in_tx(do_sync, &s_ninja, err), 0, "%s", err);
  EXPECT_STATUS("ninjaone", "n1", "ACTIVE");
  EXPECT_STATUS("level", "l1", "RETIRED:duplicate of ninjaone asset n1");
}

Test(devsrc, a_truncated_pull_retires_nothing) {
  int64_t c = company("Tailspin");
  rn_asset_t two[] = {{.external_id = "a"}, {.external_id = "b"}};
  sync_t full = {c, "ninjaone", two, 2, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_sync, &full, err), 0, "%s", err);
  cr_expect_eq(full.counts.created, 2);
  sync_t partial = {c, "ninjaone", two, 1, false, {0}};
  cr_assert_eq(in_tx(do_sync, &partial, err), 0, "%s", err);
  EXPECT_STATUS("ninjaone", "b", "ACTIVE");
  cr_expect_eq(partial.counts.retired, 0);
  cr_expect_eq(partial.counts.seen, 1);
  cr_expect_eq(partial.counts.updated, 0, "seen again, not changed");
  sync_t complete = {c, "ninjaone", two, 1, true, {0}};
  cr_assert_eq(in_tx(do_sync, &complete, err), 0, "%s", err);
  EXPECT_STATUS("ninjaone", "b", "RETIRED:not seen in a complete pull");
  cr_expect_eq(q_int("SELECT count(*) FROM asset"), 2, "rows are kept");
}

Test(devsrc, an_asset_without_an_id_fails_the_whole_sync_and_writes_nothing) {
  int64_t c = company("Wingtip");
  rn_asset_t bad[] = {{.external_id = "ok"}, {.external_id = ""}};
  sync_t s = {c, "ninjaone", bad, 2, true, {0}};
  char err[1024];
  cr_expect_eq(in_tx(do_sync, &s, err), RN_EINVAL);
  cr_expect(strstr(err, "asset #2 has no external id"), "%s", err);
  cr_expect_eq(q_int("SELECT count(*) FROM asset"), 0);
}

/* ----------------------------------------------------------- mappings */

typedef struct discover_s {
  rn_discovered_org_t *orgs;
  size_t count;
  bool complete;
  rn_discovery_counts_t counts;
} discover_t;

static int do_discover(rn_devsrc_t *ds, void *data) {
  discover_t *d = data;
  return rn_mappings_discovered(ds, RN_MSP_ORG(msp_id), "ninjaone", "eu",
                                d->orgs, d->count, d->complete, &d->counts);
}

static char *suggestion_of(const char *external_id) {
  return q("SELECT coalesce(pc.name, '(none)') FROM integration_org_mapping m"
           " LEFT JOIN portal_company pc ON pc.id = m.suggested_company_id"
           " WHERE m.external_org_id = '%s'",
           external_id);
}

Test(devsrc, suggests_a_company_by_trimmed_case_folded_name_only_if_unique) {
  company("Contoso Ltd");
  company("Fabrikam");
  company("fabrikam ");
  company("Another company");
  q_int("INSERT INTO portal_company (msp_org_id, name) VALUES (%lld,"
        " 'Tailspin') RETURNING id",
        (long long)other_msp_id);
  rn_discovered_org_t orgs[] = {{"1", "  CONTOSO LTD "},
                                {"2", "Fabrikam"},
                                {"3", "Tailspin"},
                                {"4", "Northwind"}};
  discover_t d = {orgs, 4, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_discover, &d, err), 0, "%s", err);
  cr_expect_eq(d.counts.added, 4);
  char *s1 = suggestion_of("1"), *s2 = suggestion_of("2"),
       *s3 = suggestion_of("3"), *s4 = suggestion_of("4");
  cr_expect_str_eq(s1, "Contoso Ltd");
  cr_expect_str_eq(s2, "(none)", "two companies share the name");
  cr_expect_str_eq(s3, "(none)", "another MSP's company was suggested");
  cr_expect_str_eq(s4, "(none)");
  free(s1);
  free(s2);
  free(s3);
  free(s4);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " state = 'PENDING'"),
               4);
}

typedef struct action_s {
  const char *org;
  int64_t company;
  bool allow_ignored;
  rn_company_t out;
  int kind; /* 0 use existing, 1 create new, 2 ignore */
} action_t;

static int do_action(rn_devsrc_t *ds, void *data) {
  action_t *a = data;
  rn_msp_org_t msp = RN_MSP_ORG(msp_id);
  switch (a->kind) {
  case 0:
    return rn_mapping_use_existing(ds, msp, "ninjaone", "eu", a->org,
                                   RN_COMPANY(a->company), a->allow_ignored,
                                   "operator@test");
  case 1:
    return rn_mapping_create_new(ds, msp, "ninjaone", "eu", a->org,
                                 a->allow_ignored, "operator@test", &a->out);
  default:
    return rn_mapping_ignore(ds, msp, "ninjaone", "eu", a->org,
                             "operator@test");
  }
}

Test(devsrc, mapping_actions_are_audited_and_guarded) {
  int64_t existing = company("Fabrikam Inc");
  int64_t foreign = q_int("INSERT INTO portal_company (msp_org_id, name)"
                          " VALUES (%lld, 'Theirs') RETURNING id",
                          (long long)other_msp_id);
  rn_discovered_org_t orgs[] = {{"10", "Contoso"}, {"11", "fabrikam inc"},
                                {"12", "Noise Org"}};
  discover_t d = {orgs, 3, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_discover, &d, err), 0, "%s", err);

  action_t use = {.org = "10", .company = existing, .kind = 0};
  cr_expect_eq(in_tx(do_action, &use, err), 0, "%s", err);
  action_t create = {.org = "11", .kind = 1};
  cr_expect_eq(in_tx(do_action, &create, err), 0, "%s", err);
  cr_expect_eq(create.out.id, existing, "create-new must reuse the same name");
  cr_expect_eq(q_int("SELECT count(*) FROM portal_company WHERE msp_org_id ="
                     " %lld", (long long)msp_id), 1);
  action_t ignore = {.org = "12", .kind = 2};
  cr_expect_eq(in_tx(do_action, &ignore, err), 0, "%s", err);

  action_t cross = {.org = "10", .company = foreign, .kind = 0};
  cr_expect_eq(in_tx(do_action, &cross, err), RN_ETENANT);
  cr_expect(strstr(err, "is not a company of MSP organization"), "%s", err);
  action_t unknown = {.org = "999", .kind = 1};
  cr_expect_eq(in_tx(do_action, &unknown, err), RN_ENOENT);
  action_t silent = {.org = "12", .kind = 1};
  cr_expect_eq(in_tx(do_action, &silent, err), RN_ESTATE, "%s", err);
  silent.allow_ignored = true;
  cr_expect_eq(in_tx(do_action, &silent, err), 0, "%s", err);

  char *events = q("SELECT string_agg(event, ',' ORDER BY id) FROM audit_log"
                   " WHERE organization_id = %lld", (long long)msp_id);
  cr_expect_str_eq(events,
                   "ORG_MAPPING_USE_EXISTING,ORG_MAPPING_CREATE_NEW_REUSED,"
                   "ORG_MAPPING_IGNORED,ORG_MAPPING_CREATE_NEW");
  free(events);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE actor ="
                     " 'operator@test' AND details->>'previous_state' ="
                     " 'IGNORED'"),
               1);
}

Test(devsrc, rediscovery_renames_flags_vanished_and_never_deletes) {
  rn_discovered_org_t first[] = {{"1", "Alpha"}, {"2", "Beta"}};
  discover_t d1 = {first, 2, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_discover, &d1, err), 0, "%s", err);
  rn_discovered_org_t second[] = {{"1", "Alpha Renamed"}};
  discover_t partial = {second, 1, false, {0}};
  cr_assert_eq(in_tx(do_discover, &partial, err), 0, "%s", err);
  cr_expect_eq(partial.counts.renamed, 1);
  cr_expect_eq(partial.counts.vanished, 0, "an incomplete walk flags nothing");
  discover_t complete = {second, 1, true, {0}};
  cr_assert_eq(in_tx(do_discover, &complete, err), 0, "%s", err);
  cr_expect_eq(complete.counts.vanished, 1);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping"), 2);
  discover_t back = {first, 2, true, {0}};
  cr_assert_eq(in_tx(do_discover, &back, err), 0, "%s", err);
  cr_expect_eq(back.counts.reappeared, 1);
}

/* -------------------------------------------------------- credentials */

typedef struct cred_s {
  const char *sealed;
  int step; /* 0 save, 1 deactivate, 2 get */
  rn_credential_t got;
} cred_t;

static int do_cred(rn_devsrc_t *ds, void *data) {
  cred_t *c = data;
  rn_msp_org_t msp = RN_MSP_ORG(msp_id);
  if (c->step == 0)
    return rn_credential_save(ds, msp, "ninjaone", "eu", "client-1", c->sealed,
                              NULL);
  if (c->step == 1)
    return rn_credential_deactivate(ds, msp, "ninjaone", "eu");
  return rn_credential_get(ds, msp, "ninjaone", "eu", &c->got);
}

Test(devsrc, reconnect_keeps_every_mapping) {
  rn_discovered_org_t orgs[] = {{"1", "Alpha"}};
  discover_t d = {orgs, 1, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_discover, &d, err), 0, "%s", err);
  action_t create = {.org = "1", .kind = 1};
  cr_assert_eq(in_tx(do_action, &create, err), 0, "%s", err);
  cred_t save = {.sealed = "v1:AAAA", .step = 0};
  cr_assert_eq(in_tx(do_cred, &save, err), 0, "%s", err);
  cred_t off = {.step = 1};
  cr_assert_eq(in_tx(do_cred, &off, err), 0, "%s", err);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " sealed_secret IS NULL AND NOT is_active"),
               1);
  cred_t again = {.sealed = "v2:BBBB", .step = 0};
  cr_assert_eq(in_tx(do_cred, &again, err), 0, "%s", err);
  cred_t get = {.step = 2};
  cr_assert_eq(in_tx(do_cred, &get, err), 0, "%s", err);
  cr_expect(get.got.is_active);
  cr_expect_str_eq(get.got.sealed_secret, "v2:BBBB");
  rn_credential_release(host.api, &get.got);
  cr_expect_eq(q_int("SELECT key_version FROM integration_credential"), 2);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_org_mapping WHERE"
                     " state = 'MAPPED'"),
               1);
}

/* ----------------------------------------------- signals and tickets */

typedef struct signal_s {
  const char *key;
  rn_signal_status_t status;
  const char *metadata;
  bool first_sync_done;
  int64_t company;
  bool to_msp; /* write to the MSP org by mistake */
  rn_ticket_action_t action;
  const rn_ticket_text_t *text;
} signal_t;

static int do_signal(rn_devsrc_t *ds, void *data) {
  signal_t *s = data;
  rn_customer_org_t customer =
      RN_CUSTOMER_ORG(s->to_msp ? msp_id : customer_id);
  int rc = rn_signal_write(ds, customer, "ninjaone", s->key, s->status,
                           s->metadata, 0, NULL);
  if (rc < 0)
    return rc;
  return rn_ticket_bridge(ds, RN_MSP_ORG(msp_id), RN_COMPANY(s->company),
                          customer, s->key, s->status, s->text,
                          s->first_sync_done, &s->action, NULL);
}

Test(devsrc, signals_write_evidence_per_control_and_tickets_dedup) {
  int64_t c = company("Contoso");
  q_int("UPDATE portal_company SET converted_to_organization_id = %lld"
        " WHERE id = %lld RETURNING id",
        (long long)customer_id, (long long)c);
  char err[1024];
  signal_t first = {"patch_sla", RN_SIGNAL_FAIL, "{\"outstanding\":7}", false,
                    c, false, 0, NULL};
  cr_assert_eq(in_tx(do_signal, &first, err), 0, "%s", err);
  cr_expect_eq(first.action, RN_TICKET_SUPPRESSED);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM evidence WHERE organization_id ="
                     " %lld AND control_id IN ('IC-038', 'IC-053')",
                     (long long)customer_id),
               2);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal WHERE"
                     " expires_at - collected_at = interval '7 days'"),
               1);

  signal_t warn = {"patch_sla", RN_SIGNAL_WARNING, "{\"outstanding\":2}", true,
                   c, false, 0, NULL};
  cr_assert_eq(in_tx(do_signal, &warn, err), 0, "%s", err);
  cr_expect_eq(warn.action, RN_TICKET_OPENED);
  signal_t fail = {"patch_sla", RN_SIGNAL_FAIL, "{\"outstanding\":9}", true, c,
                   false, 0, NULL};
  cr_assert_eq(in_tx(do_signal, &fail, err), 0, "%s", err);
  cr_expect_eq(fail.action, RN_TICKET_UPDATED);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket"), 1);
  char *t = q("SELECT priority || ' ' || occurrences FROM psa_ticket");
  cr_expect_str_eq(t, "HIGH 2");
  free(t);
  signal_t pass = {"patch_sla", RN_SIGNAL_PASS, "{\"outstanding\":0}", true, c,
                   false, 0, NULL};
  cr_assert_eq(in_tx(do_signal, &pass, err), 0, "%s", err);
  cr_expect_eq(pass.action, RN_TICKET_RESOLVED);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket WHERE status ="
                     " 'RESOLVED' AND resolution_note LIKE 'Resolved%%'"),
               1);
  signal_t again = {"patch_sla", RN_SIGNAL_FAIL, "{\"outstanding\":6}", true,
                    c, false, 0, NULL};
  cr_assert_eq(in_tx(do_signal, &again, err), 0, "%s", err);
  cr_expect_eq(again.action, RN_TICKET_OPENED, "a new finding, a new ticket");
}

Test(devsrc, pii_or_a_wrong_organization_writes_nothing) {
  int64_t c = company("Contoso");
  char err[1024];
  signal_t leak = {"device_inventory", RN_SIGNAL_PASS,
                   "{\"devices\":3,\"names\":[\"CTS-FS01\"]}", true, c, false,
                   0, NULL};
  cr_expect_eq(in_tx(do_signal, &leak, err), RN_EPII);
  cr_expect(strstr(err, "metadata.names[0]: value looks like a machine name"),
            "%s", err);
  cr_expect(!strstr(err, "CTS-FS01"), "the error repeats the value: %s", err);
  signal_t wrong = {"device_inventory", RN_SIGNAL_PASS, "{\"devices\":3}",
                    true, c, true, 0, NULL};
  cr_expect_eq(in_tx(do_signal, &wrong, err), RN_ETENANT);
  cr_expect_eq(q_int("SELECT count(*) FROM monitoring_signal"), 0);
  cr_expect_eq(q_int("SELECT count(*) FROM evidence"), 0);
}

Test(devsrc, ignoring_an_organization_retires_only_its_devices) {
  rn_discovered_org_t orgs[] = {{"7", "Gamma"}, {"8", "Gamma East"}};
  discover_t d = {orgs, 2, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_discover, &d, err), 0, "%s", err);
  int64_t c = company("Gamma");
  action_t map7 = {.org = "7", .company = c, .kind = 0};
  action_t map8 = {.org = "8", .company = c, .kind = 0};
  cr_assert_eq(in_tx(do_action, &map7, err), 0, "%s", err);
  cr_assert_eq(in_tx(do_action, &map8, err), 0, "%s", err);
  /* Both organizations feed the same company. */
  rn_asset_t devices[] = {{.external_id = "a", .external_org_id = "7"},
                          {.external_id = "b", .external_org_id = "7"},
                          {.external_id = "c", .external_org_id = "8"}};
  sync_t s = {c, "ninjaone", devices, 3, true, {0}};
  cr_assert_eq(in_tx(do_sync, &s, err), 0, "%s", err);
  action_t ignore = {.org = "7", .kind = 2};
  cr_assert_eq(in_tx(do_action, &ignore, err), 0, "%s", err);
  EXPECT_STATUS("ninjaone", "a", "RETIRED:organization mapping set to IGNORED");
  EXPECT_STATUS("ninjaone", "b", "RETIRED:organization mapping set to IGNORED");
  EXPECT_STATUS("ninjaone", "c", "ACTIVE");
}

/* ------------------------------------- retired winners and restored rows */

typedef struct retire_s {
  int64_t retired, restored;
} retire_t;

static int do_retire_source(rn_devsrc_t *ds, void *data) {
  retire_t *r = data;
  return rn_assets_retire_source(ds, RN_MSP_ORG(msp_id), "ninjaone",
                                 "NinjaOne was disconnected", &r->retired,
                                 &r->restored);
}

static int64_t active_in(int64_t company_id) {
  return q_int("SELECT count(*) FROM asset WHERE portal_company_id = %lld"
               " AND status = 'ACTIVE'",
               (long long)company_id);
}

/* The repro of the report: 20 NinjaOne devices, 9 Level rows of which 6
 * are the same machines, one Entra row of a machine both know. */
static int64_t northwind(void) {
  int64_t c = company("Northwind");
  static char ids[40][16], serials[40][16];
  rn_asset_t ninja[20], level[9], entra[1];
  for (int i = 0; i < 20; i++) {
    snprintf(ids[i], sizeof ids[i], "n%d", i);
    snprintf(serials[i], sizeof serials[i], "NWSER%03d", i);
    ninja[i] = (rn_asset_t){.external_id = ids[i],
                            .serial_number = serials[i],
                            .external_org_id = "7"};
  }
  for (int i = 0; i < 9; i++) {
    snprintf(ids[20 + i], sizeof ids[20 + i], "l%d", i);
    snprintf(serials[20 + i], sizeof serials[20 + i], "NWSER%03d",
             i < 6 ? i : 100 + i);
    level[i] = (rn_asset_t){.external_id = ids[20 + i],
                            .serial_number = serials[20 + i]};
  }
  entra[0] = (rn_asset_t){.external_id = "e0", .serial_number = "nwser000"};
  sync_t syncs[] = {{c, "entra", entra, 1, true, {0}},
                    {c, "level", level, 9, true, {0}},
                    {c, "ninjaone", ninja, 20, true, {0}}};
  char err[1024];
  for (size_t i = 0; i < 3; i++)
    cr_assert_eq(in_tx(do_sync, &syncs[i], err), 0, "%s", err);
  cr_assert_eq(active_in(c), 23);
  return c;
}

Test(devsrc, a_disconnect_brings_back_the_rows_its_assets_had_deduplicated) {
  int64_t c = northwind();
  retire_t r = {0};
  char err[1024];
  cr_assert_eq(in_tx(do_retire_source, &r, err), 0, "%s", err);
  cr_expect_eq(r.retired, 20);
  cr_expect_eq(r.restored, 6);
  cr_expect_eq(active_in(c), 9, "Northwind fell to %lld active assets",
               (long long)active_in(c));
  EXPECT_STATUS("level", "l0", "ACTIVE");
  EXPECT_STATUS("level", "l5", "ACTIVE");
  /* Entra's row now loses to the next-best source. */
  EXPECT_STATUS("entra", "e0", "RETIRED:duplicate of level asset l0");
  cr_expect_eq(q_int("SELECT count(*) FROM asset a JOIN asset w ON w.id ="
                     " a.duplicate_of_asset_id WHERE w.status = 'RETIRED'"
                     " AND w.duplicate_of_asset_id IS NULL"),
               0, "a row is the duplicate of a retired row");
}

Test(devsrc, ignoring_an_organization_brings_back_what_its_devices_deduplicated) {
  rn_discovered_org_t orgs[] = {{"7", "Northwind"}};
  discover_t d = {orgs, 1, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_discover, &d, err), 0, "%s", err);
  int64_t c = northwind();
  action_t map = {.org = "7", .company = c, .kind = 0};
  cr_assert_eq(in_tx(do_action, &map, err), 0, "%s", err);
  action_t ignore = {.org = "7", .kind = 2};
  cr_assert_eq(in_tx(do_action, &ignore, err), 0, "%s", err);
  cr_expect_eq(active_in(c), 9);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE event ="
                     " 'ORG_MAPPING_IGNORED' AND"
                     " (details->>'assets_retired')::int = 20 AND"
                     " (details->>'assets_restored')::int = 6"),
               1);
}

Test(devsrc, a_winner_gone_from_a_complete_pull_restores_all_it_had_won) {
  int64_t c = northwind();
  sync_t gone = {c, "ninjaone", NULL, 0, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_sync, &gone, err), 0, "%s", err);
  cr_expect_eq(gone.counts.retired, 20);
  cr_expect_eq(gone.counts.restored, 6);
  cr_expect_eq(active_in(c), 9);
}

/* ---------------------------------------------- unchanged rows stay put */

static char *row_versions(int64_t company_id) {
  return q("SELECT string_agg(external_id || '@' || xmin::text || '/' ||"
           " xmax::text, ',' ORDER BY external_id) FROM asset WHERE"
           " portal_company_id = %lld",
           (long long)company_id);
}

Test(devsrc, an_unchanged_pull_writes_no_row_and_counts_only_changes) {
  int64_t c = company("Adatum");
  const int64_t day = 24LL * 3600 * 1000, t0 = tx_now_ms;
  rn_asset_t pull[] = {
      {.external_id = "a", .hostname = "AD-01", .last_seen_ms = t0 - 60000},
      {.external_id = "b", .hostname = "AD-02", .last_seen_ms = t0 - 60000},
      {.external_id = "c", .hostname = "AD-03", .last_seen_ms = t0 - 60000}};
  sync_t s = {c, "ninjaone", pull, 3, true, {0}};
  char err[1024];
  cr_assert_eq(in_tx(do_sync, &s, err), 0, "%s", err);
  cr_expect_eq(s.counts.created, 3);
  char *before = row_versions(c);

  /* Six hours later, the same pull; the devices checked in meanwhile. */
  tx_now_ms = t0 + 6 * 3600 * 1000;
  for (int i = 0; i < 3; i++)
    pull[i].last_seen_ms = tx_now_ms - 60000;
  cr_assert_eq(in_tx(do_sync, &s, err), 0, "%s", err);
  cr_expect_eq(s.counts.seen, 3);
  cr_expect_eq(s.counts.created, 0);
  cr_expect_eq(s.counts.updated, 0, "updated %lld unchanged rows",
               (long long)s.counts.updated);
  char *after = row_versions(c);
  cr_expect_str_eq(after, before, "unchanged rows were written or locked");
  free(after);
  /* When a sync last saw them: the second run, without a write. */
  cr_expect_eq(q_int("SELECT count(*) FROM asset_last_seen l JOIN asset a ON"
                     " a.id = l.asset_id WHERE a.portal_company_id = %lld AND"
                     " l.last_synced_at = to_timestamp(%lld / 1000.0)",
                     (long long)c, (long long)tx_now_ms),
               3);
  cr_expect_eq(q_int("SELECT count(*) FROM asset_sync_run WHERE"
                     " portal_company_id = %lld AND complete AND seen = 3",
                     (long long)c),
               2);

  /* One renamed, one seen again two days later: two updates, exactly. */
  tx_now_ms = t0 + 3 * day;
  pull[0].hostname = "AD-01-RENAMED";
  pull[1].last_seen_ms = tx_now_ms - 60000;
  cr_assert_eq(in_tx(do_sync, &s, err), 0, "%s", err);
  cr_expect_eq(s.counts.updated, 2);
  char *third = row_versions(c);
  cr_expect(strstr(third, "c@") && strstr(before, "c@"));
  const char *c_before = strstr(before, "c@"), *c_after = strstr(third, "c@");
  cr_expect_str_eq(c_after, c_before, "device c was rewritten");
  free(third);
  free(before);
  char *renamed = q("SELECT hostname FROM asset WHERE external_id = 'a'");
  cr_expect_str_eq(renamed, "AD-01-RENAMED");
  free(renamed);

  /* A retired device seen again is a change: it comes back. */
  sync_t two = {c, "ninjaone", pull, 2, true, {0}};
  cr_assert_eq(in_tx(do_sync, &two, err), 0, "%s", err);
  cr_expect_eq(two.counts.retired, 1);
  cr_assert_eq(in_tx(do_sync, &s, err), 0, "%s", err);
  cr_expect_eq(s.counts.updated, 1);
  EXPECT_STATUS("ninjaone", "c", "ACTIVE");
  /* Retired rows were last seen before they were retired. */
  cr_expect_eq(q_int("SELECT count(*) FROM asset_last_seen l JOIN asset a ON"
                     " a.id = l.asset_id WHERE a.external_id = 'c' AND"
                     " l.last_synced_at = to_timestamp(%lld / 1000.0)",
                     (long long)tx_now_ms),
               1);
}

/* ------------------------------------------ disconnect and the dry run */

static int do_mark_first(rn_devsrc_t *ds, void *data) {
  (void)data;
  return rn_credential_mark_first_evidence(ds, RN_MSP_ORG(msp_id), "ninjaone",
                                           "eu");
}

Test(devsrc, a_disconnect_makes_the_first_sweep_after_reconnect_a_dry_run) {
  char err[1024];
  cred_t save = {.sealed = "v1:AAAA", .step = 0};
  cr_assert_eq(in_tx(do_cred, &save, err), 0, "%s", err);
  cr_assert_eq(in_tx(do_mark_first, NULL, err), 0, "%s", err);
  cred_t off = {.step = 1};
  cr_assert_eq(in_tx(do_cred, &off, err), 0, "%s", err);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " first_evidence_synced_at IS NULL"),
               1);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log WHERE organization_id ="
                     " %lld AND event = 'FIRST_EVIDENCE_SYNC_CLEARED' AND"
                     " details->>'previous_first_evidence_synced_at' ="
                     " '2026-01-01T00:00:00.000Z' AND details->>'region' ="
                     " 'eu'",
                     (long long)msp_id),
               1);
  /* Idempotent: nothing more to clear, nothing more audited. */
  cr_assert_eq(in_tx(do_cred, &off, err), 0, "%s", err);
  cr_expect_eq(q_int("SELECT count(*) FROM audit_log"), 1);
  cred_t again = {.sealed = "v2:BBBB", .step = 0};
  cr_assert_eq(in_tx(do_cred, &again, err), 0, "%s", err);
  cred_t get = {.step = 2};
  cr_assert_eq(in_tx(do_cred, &get, err), 0, "%s", err);
  cr_expect(get.got.is_active);
  cr_expect(!get.got.first_evidence_synced,
            "the first sweep after reconnect would open tickets");
  rn_credential_release(host.api, &get.got);
}

/* -------------------------------------------- missing-data tickets */

Test(devsrc, missing_data_tickets_are_titled_apart_from_findings) {
  int64_t c = company("Tailspin");
  q_int("UPDATE portal_company SET converted_to_organization_id = %lld"
        " WHERE id = %lld RETURNING id",
        (long long)customer_id, (long long)c);
  char err[1024];
  rn_ticket_text_t missing = {
      RN_TICKET_NO_DATA, "NinjaOne returned no antivirus data for 5 devices",
      "Missing data, not a failing measurement."};
  signal_t nodata = {"antivirus_posture", RN_SIGNAL_WARNING,
                     "{\"reason\":\"no_data\",\"devices_in_scope\":5,"
                     "\"av_rows\":0}",
                     true, c, false, 0, &missing};
  cr_assert_eq(in_tx(do_signal, &nodata, err), 0, "%s", err);
  cr_expect_eq(nodata.action, RN_TICKET_OPENED);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket WHERE kind = 'NO_DATA'"
                     " AND priority = 'MEDIUM' AND title = 'NinjaOne returned"
                     " no antivirus data for 5 devices' AND description LIKE"
                     " 'Missing data%%' AND status = 'OPEN'"),
               1);
  /* The same again updates it. */
  cr_assert_eq(in_tx(do_signal, &nodata, err), 0, "%s", err);
  cr_expect_eq(nodata.action, RN_TICKET_UPDATED);
  /* Data arrives and fails: a finding, a new ticket; the other resolved. */
  signal_t fail = {"antivirus_posture", RN_SIGNAL_FAIL, "{\"unprotected\":2}",
                   true, c, false, 0, NULL};
  cr_assert_eq(in_tx(do_signal, &fail, err), 0, "%s", err);
  cr_expect_eq(fail.action, RN_TICKET_OPENED);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket WHERE kind = 'NO_DATA'"
                     " AND status = 'RESOLVED' AND resolution_note LIKE"
                     " '%%superseded%%by a finding ticket%%'"),
               1);
  cr_expect_eq(q_int("SELECT count(*) FROM psa_ticket WHERE kind = 'FINDING'"
                     " AND status = 'OPEN' AND priority = 'HIGH' AND title ="
                     " 'Compliance finding: antivirus_posture is FAIL' AND"
                     " description LIKE 'The antivirus_posture signal is"
                     " FAIL%%'"),
               1);
}

/* ------------------------------------------- per-MSP source priority */

typedef struct msp_sync_s {
  int64_t msp;
  sync_t sync;
} msp_sync_t;

static int do_msp_sync(rn_devsrc_t *ds, void *data) {
  msp_sync_t *m = data;
  sync_t *s = &m->sync;
  return rn_assets_sync(ds, RN_MSP_ORG(m->msp), RN_COMPANY(s->company),
                        s->source, s->assets, s->count, s->complete, NULL,
                        &s->counts);
}

typedef struct set_priority_s {
  int64_t msp;
  const char *const *sources;
} set_priority_t;

static int do_set_priority(rn_devsrc_t *ds, void *data) {
  set_priority_t *p = data;
  rn_source_priority_t priority = {.sources = p->sources};
  return rn_source_priority_set(ds, RN_MSP_ORG(p->msp),
                                p->sources ? &priority : NULL);
}

Test(devsrc, an_msp_ranks_its_sources_and_another_keeps_the_default) {
  char err[1024];
  const char *intune_first[] = {"intune", "ninjaone", NULL};
  set_priority_t set = {msp_id, intune_first};
  cr_assert_eq(in_tx(do_set_priority, &set, err), 0, "%s", err);
  const char *twice[] = {"intune", "intune", NULL};
  set_priority_t bad = {msp_id, twice};
  cr_expect_lt(in_tx(do_set_priority, &bad, err), 0);
  cr_expect(strstr(err, "msp_source_priority_sources_distinct"), "%s", err);
  char *stored = q("SELECT sources::text FROM msp_source_priority");
  cr_expect_str_eq(stored, "{intune,ninjaone}",
                   "the refused list changed nothing");
  free(stored);

  int64_t c = company("Contoso");
  int64_t other = q_int("INSERT INTO portal_company (msp_org_id, name) VALUES"
                        " (%lld, 'Tailspin') RETURNING id",
                        (long long)other_msp_id);
  rn_asset_t ninja[] = {{.external_id = "n1", .serial_number = "SER-777"}};
  rn_asset_t intune[] = {{.external_id = "i1", .serial_number = "ser777"}};
  rn_asset_t other_ninja[] = {{.external_id = "n9", .serial_number = "SER-777"}};
  rn_asset_t other_intune[] = {{.external_id = "i9", .serial_number = "ser777"}};
  msp_sync_t syncs[] = {
      {msp_id, {c, "ninjaone", ninja, 1, true, {0}}},
      {msp_id, {c, "intune", intune, 1, true, {0}}},
      {other_msp_id, {other, "ninjaone", other_ninja, 1, true, {0}}},
      {other_msp_id, {other, "intune", other_intune, 1, true, {0}}},
  };
  for (size_t i = 0; i < 4; i++)
    cr_assert_eq(in_tx(do_msp_sync, &syncs[i], err), 0, "%s", err);
  EXPECT_STATUS("intune", "i1", "ACTIVE");
  EXPECT_STATUS("ninjaone", "n1", "RETIRED:duplicate of intune asset i1");
  EXPECT_STATUS("ninjaone", "n9", "ACTIVE");
  EXPECT_STATUS("intune", "i9", "RETIRED:duplicate of ninjaone asset n9");
  cr_expect_eq(syncs[1].sync.counts.statements, 6,
               "the stored priority costs no extra round trip");
  char *used = q("SELECT source_priority::text FROM asset_sync_run"
                 " WHERE portal_company_id = %lld ORDER BY id DESC LIMIT 1",
                 (long long)c);
  cr_expect_str_eq(used, "{intune,ninjaone,level,entra}",
                   "unnamed sources follow in the default order");
  free(used);

  /* Back to the default: a later sync of either source decides again. */
  set_priority_t reset = {msp_id, NULL};
  cr_assert_eq(in_tx(do_set_priority, &reset, err), 0, "%s", err);
  msp_sync_t again = {msp_id, {c, "intune", intune, 1, true, {0}}};
  cr_assert_eq(in_tx(do_msp_sync, &again, err), 0, "%s", err);
  EXPECT_STATUS("ninjaone", "n1", "ACTIVE");
  EXPECT_STATUS("intune", "i1", "RETIRED:duplicate of ninjaone asset n1");
}

/* ---------------------------------------------- asset_sync_run retention */

Test(devsrc, old_sync_runs_go_but_not_those_last_seen_reads) {
  const int64_t day = 86400000, start = tx_now_ms;
  int64_t c = company("Contoso");
  rn_asset_t both[] = {{.external_id = "a", .hostname = "alpha"},
                       {.external_id = "b", .hostname = "beta"}};
  struct {
    int64_t day;
    size_t count;
    bool complete;
  } steps[] = {
      {0, 2, true},    /* run 0: b's last sighting before it is retired */
      {1, 1, true},    /* run 1: b retired (not seen) */
      {2, 1, false},   /* run 2: truncated, read by nothing */
      {3, 1, true},    /* run 3: newest complete until day 200 */
      {200, 1, true},  /* runs 0-2 are old now; run 3 is still the newest */
      {201, 1, true},  /* run 3 is old and superseded */
  };
  char err[1024];
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
    tx_now_ms = start + steps[i].day * day;
    sync_t s = {c, "ninjaone", both, steps[i].count, steps[i].complete, {0}};
    cr_assert_eq(in_tx(do_sync, &s, err), 0, "%s", err);
    if (steps[i].day == 200)
      cr_expect_eq(q_int("SELECT count(*) FROM asset_sync_run"
                         " WHERE portal_company_id = %lld",
                         (long long)c),
                   3, "runs 1 and 2 deleted at day 200");
  }
  char *days = q("SELECT string_agg((extract(epoch FROM synced_at)"
                 " - %lld)::bigint / 86400 || '', ',' ORDER BY synced_at)"
                 " FROM asset_sync_run WHERE portal_company_id = %lld",
                 (long long)(start / 1000), (long long)c);
  cr_expect_str_eq(days, "0,200,201", "the days of the runs kept");
  free(days);
  EXPECT_STATUS("ninjaone", "b", "RETIRED:not seen in a complete pull");
  cr_expect_eq(q_int("SELECT (extract(epoch FROM l.last_synced_at)"
                     " - %lld)::bigint / 86400 FROM asset_last_seen l JOIN asset a"
                     " ON a.id = l.asset_id WHERE a.external_id = 'b'",
                     (long long)(start / 1000)),
               0, "b was last seen by run 0, still there");
  cr_expect_eq(q_int("SELECT (extract(epoch FROM l.last_synced_at)"
                     " - %lld)::bigint / 86400 FROM asset_last_seen l JOIN asset a"
                     " ON a.id = l.asset_id WHERE a.external_id = 'a'",
                     (long long)(start / 1000)),
               201);
}

/* ---------------------------------- rn_devsrc_transaction_with's clock */

typedef struct clock_tx_s {
  cred_t cred;
  int fail; /* 0, or the error the body fails with after its save */
  int64_t body_now_ms;
  bool done;
  int status;
  char error[1024];
} clock_tx_t;

static int clock_body(rn_devsrc_t *ds, void *data) {
  clock_tx_t *t = data;
  t->body_now_ms = ds->now_ms;
  int rc = do_cred(ds, &t->cred);
  if (rc == 0 && t->fail)
    rc = rn_devsrc_fail(ds, t->fail, "refused after the save of %s",
                        t->cred.sealed);
  return rc;
}

static void clock_done(rn_ctx_t *ctx, int status, const char *error,
                       void *data) {
  (void)ctx;
  clock_tx_t *t = data;
  t->done = true;
  t->status = status;
  snprintf(t->error, sizeof t->error, "%s", error ? error : "(none)");
}

static int run_clock_tx(const rn_devsrc_tx_opts_t *opts, clock_tx_t *t) {
  int rc = rn_devsrc_transaction_with(host.api, host.ctx, opts, clock_body,
                                      clock_done, t);
  if (rc == 0)
    cr_assert(rt_host_run_until(&host, &t->done, 30000), "transaction hung");
  return rc;
}

Test(devsrc, a_transaction_given_a_clock_writes_every_row_at_it) {
  rn_devsrc_tx_opts_t opts = RN_DEVSRC_TX_OPTS_INIT;
  opts.now_ms = tx_now_ms + 90061000; /* 2026-01-02T01:01:01Z */
  clock_tx_t t = {.cred = {.sealed = "v1:AAAA", .step = 0}};
  cr_assert_eq(run_clock_tx(&opts, &t), 0);
  cr_expect_eq(t.status, 0, "%s", t.error);
  cr_expect_str_eq(t.error, "(none)");
  cr_expect_eq(t.body_now_ms, opts.now_ms);
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential WHERE"
                     " connected_at = '2026-01-02T01:01:01Z' AND updated_at ="
                     " connected_at"),
               1);
}

Test(devsrc, a_failed_body_rolls_back_and_done_says_why) {
  rn_devsrc_tx_opts_t opts = RN_DEVSRC_TX_OPTS_INIT;
  opts.now_ms = tx_now_ms;
  clock_tx_t t = {.cred = {.sealed = "v1:AAAA", .step = 0},
                  .fail = RN_ESTATE};
  cr_assert_eq(run_clock_tx(&opts, &t), 0);
  cr_expect_eq(t.status, RN_ESTATE);
  cr_expect_str_eq(t.error, "refused after the save of v1:AAAA");
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential"), 0);
}

Test(devsrc, without_a_clock_a_transaction_runs_at_the_hosts_now) {
  /* NULL, and options whose size stops before now_ms (an older layout):
   * both the default, the host's clock at the call. */
  rn_devsrc_tx_opts_t shorter = {.struct_size = sizeof(uint32_t),
                                 .now_ms = 1};
  const rn_devsrc_tx_opts_t *cases[] = {NULL, &shorter};
  for (size_t i = 0; i < 2; i++) {
    clock_tx_t t = {.cred = {.sealed = "v1:AAAA", .step = 0}};
    int64_t before = host.api->now_ms(host.ctx);
    cr_assert_eq(run_clock_tx(cases[i], &t), 0);
    int64_t after = host.api->now_ms(host.ctx);
    cr_expect_eq(t.status, 0, "%s", t.error);
    cr_expect(t.body_now_ms >= before && t.body_now_ms <= after,
              "case %zu: %lld not in [%lld, %lld]", i,
              (long long)t.body_now_ms, (long long)before, (long long)after);
  }
}

Test(devsrc, transaction_options_without_a_size_are_refused_at_once) {
  rn_devsrc_tx_opts_t unsized = {.now_ms = tx_now_ms};
  clock_tx_t t = {.cred = {.sealed = "v1:AAAA", .step = 0}};
  cr_expect_eq(run_clock_tx(&unsized, &t), RN_EINVAL);
  cr_expect(!t.done, "done was called");
  cr_expect_eq(q_int("SELECT count(*) FROM integration_credential"), 0);
}
