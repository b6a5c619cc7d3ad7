/* commands.c - the six operator commands of the NinjaOne integration card,
 * each a job: test, connect, orgs, map, disconnect, status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping.h"

static const char no_visibility[] =
    "the API client sees no organization: it was created at the system "
    "level but is not attached to any customer organization. In NinjaOne, "
    "edit the API client and confirm it is tenant-scoped or has organization "
    "assignments; the monitoring scope needs visibility on at least one "
    "customer organization";

static const char *str_param(op_t *op, const char *name) {
  return json_string_value(json_object_get(op->params, name));
}

static bool bool_param(op_t *op, const char *name) {
  return json_is_true(json_object_get(op->params, name));
}

static const char *host_of(op_t *op) {
  return op->client ? nj_client_base_url(op->client)
                    : nj_region_host(op->region);
}

/* ------------------------------------------------------------- test */

static const rn_option_t credential_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX, .help = "the MSP organization id"),
    RN_OPTION(.name = "region", .type = RN_OPT_ENUM, .flags = RN_OPT_REQUIRED,
              .choices = NJ_REGION_CHOICES,
              .help = "the NinjaOne region you sign in to"),
    RN_OPTION(.name = "client_id", .type = RN_OPT_STRING,
              .flags = RN_OPT_REQUIRED,
              .help = "Administration > Apps > API > Client App IDs"),
    RN_OPTION(.name = "client_secret_file", .type = RN_OPT_SECRET_FILE,
              .flags = RN_OPT_REQUIRED,
              .help =
                  "file holding the client secret (mode 0600), or - for stdin"),
    {0},
};

/* After discovery for test and connect: the checks the card shows. */
static bool discovery_usable(op_t *op) {
  if (op->status < 0) {
    op_fail(op, op->status, "%s", op->error);
    return false;
  }
  if (json_array_size(op->orgs) == 0) {
    op_explain(op, "no_visible_organizations",
               "in NinjaOne, edit the API client: make it tenant-scoped or "
               "give it organization assignments, then run test again");
    op_fail(op, RN_ESTATE, "%s (region %s, %s)", no_visibility,
            nj_region_name(op->region), host_of(op));
    return false;
  }
  const char *scope = nj_client_granted_scope(op->client);
  json_object_set_new(op->result, "region",
                      json_string(nj_region_name(op->region)));
  json_object_set_new(op->result, "host", json_string(host_of(op)));
  json_object_set_new(op->result, "organizations",
                      json_integer((json_int_t)json_array_size(op->orgs)));
  json_object_set_new(op->result, "truncated",
                      json_boolean(op->walk.truncated));
  json_object_set_new(op->result, "granted_scope",
                      json_string(scope ? scope : ""));
  /* We ask for monitoring only; report anything wider NinjaOne grants. */
  bool wider =
      scope && (strstr(scope, "management") || strstr(scope, "control"));
  json_object_set_new(op->result, "scope_wider_than_requested",
                      json_boolean(wider));
  return true;
}

static void test_discovered(op_t *op) {
  if (!discovery_usable(op))
    return;
  json_object_set_new(op->result, "saved", json_false());
  snprintf(
      op->summary, sizeof op->summary,
      "connection ok: region %s (%s), %zu organization(s) visible%s, "
      "granted scope \"%s\"%s; nothing was saved",
      nj_region_name(op->region), host_of(op), json_array_size(op->orgs),
      op->walk.truncated ? " (list truncated at the cap)" : "",
      json_string_value(json_object_get(op->result, "granted_scope")),
      json_is_true(json_object_get(op->result, "scope_wider_than_requested"))
          ? "; warning: wider than the monitoring scope requested"
          : "");
  op_finish(op);
}

static void start_discovery(op_t *op, void (*next)(op_t *op)) {
  size_t len = 0;
  const char *secret = host->job_secret(op->job, "client_secret_file", &len);
  if (!secret) {
    op_fail(op, RN_EINVAL, "missing client secret");
    return;
  }
  int rc = op_make_client(op, secret, len);
  if (rc < 0) {
    op_fail(op, rc, "%s", op->error);
    return;
  }
  op_discover(op, next);
}

static void test_checked(op_t *op) {
  start_discovery(op, test_discovered);
}

static int run_test(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  return op_start(ctx, state, job, test_checked);
}

const rn_job_def_t job_test = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "test",
    .summary = "test a NinjaOne API client: token, scope, organizations "
               "visible; saves nothing",
    .params = credential_params,
    .run = run_test,
    .command = "test",
};

/* ---------------------------------------------------------- connect */

/* Sealed before the transaction: the master key lives in the host. */
typedef struct connect_s {
  char *sealed;
} connect_t;

static json_t *discovery_details(op_t *op, const rn_discovery_counts_t *c) {
  return json_pack(
      "{s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:I}", "region",
      nj_region_name(op->region), "organizations", (json_int_t)c->seen, "added",
      (json_int_t)c->added, "renamed", (json_int_t)c->renamed, "vanished",
      (json_int_t)c->vanished, "reappeared", (json_int_t)c->reappeared,
      "truncated", op->walk.truncated, "pages", (json_int_t)op->walk.pages);
}

/* Upserts op->orgs and records the discovery (run + audit on the MSP). */
static int record_discovery(op_t *op, rn_devsrc_t *ds) {
  size_t n = json_array_size(op->orgs);
  rn_discovered_org_t *orgs = host->calloc(n ? n : 1, sizeof *orgs);
  if (!orgs)
    return RN_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_array_get(op->orgs, i);
    orgs[i].external_id = json_string_value(json_object_get(o, "id"));
    orgs[i].name = json_string_value(json_object_get(o, "name"));
  }
  rn_discovery_counts_t counts;
  rn_msp_org_t msp = RN_MSP_ORG(op->msp_org_id);
  const char *region = nj_region_name(op->region);
  int rc = rn_mappings_discovered(ds, msp, PROVIDER, region, orgs, n,
                                  !op->walk.truncated, &counts);
  host->free(orgs);
  if (rc < 0)
    return rc;
  json_t *details = discovery_details(op, &counts);
  char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
  json_object_set_new(op->result, "discovery", details);
  rc = rn_credential_record_run(ds, msp, PROVIDER, region, "discovery", text);
  if (rc == 0)
    rc = rn_audit_msp(ds, msp, "regentra-runner", "NINJAONE_DISCOVERY", text);
  free(text);
  return rc;
}

static int connect_body(op_t *op, rn_devsrc_t *ds) {
  connect_t *c = host->job_data(op->job);
  rn_msp_org_t msp = RN_MSP_ORG(op->msp_org_id);
  const char *region = nj_region_name(op->region);
  int rc = rn_credential_save(ds, msp, PROVIDER, region, op->client_id,
                              c->sealed, NULL);
  if (rc < 0)
    return rc;
  json_object_set_new(op->result, "saved", json_true());
  json_object_set_new(op->result, "credential_active", json_true());
  json_t *details = json_pack(
      "{s:s, s:s, s:I, s:s}", "region", region, "host", host_of(op),
      "organizations_visible", (json_int_t)json_array_size(op->orgs),
      "granted_scope",
      json_string_value(json_object_get(op->result, "granted_scope")));
  char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(details);
  rc = rn_audit_msp(ds, msp, "regentra-runner", "NINJAONE_CONNECTED", text);
  free(text);
  return rc < 0 ? rc : record_discovery(op, ds);
}

static void connect_saved(op_t *op) {
  connect_t *c = host->job_data(op->job);
  host->free(c->sealed);
  host->free(c);
  host->job_set_data(op->job, NULL);
  if (op->status < 0) {
    op_fail(op, op->status, "nothing was saved: %s", op->error);
    return;
  }
  json_t *d = json_object_get(op->result, "discovery");
  snprintf(op->summary, sizeof op->summary,
           "connected: region %s (%s); credential sealed and saved; "
           "NINJAONE_CONNECTED written to MSP organization %lld; discovery "
           "found %lld organization(s), %lld new%s",
           nj_region_name(op->region), host_of(op), (long long)op->msp_org_id,
           (long long)json_integer_value(json_object_get(d, "organizations")),
           (long long)json_integer_value(json_object_get(d, "added")),
           op->walk.truncated ? " (truncated at the cap)" : "");
  op_finish(op);
}

static void connect_discovered(op_t *op) {
  if (!discovery_usable(op))
    return;
  size_t len = 0;
  const char *secret = host->job_secret(op->job, "client_secret_file", &len);
  connect_t *c = host->calloc(1, sizeof *c);
  int rc = c ? host->secret_seal(op->ctx, secret, len, &c->sealed) : RN_ENOMEM;
  if (rc < 0) {
    host->free(c);
    if (rc == RN_ENOSYS)
      op_explain(op, "no_master_key",
                 "set [runner] master_key_file in runner.conf");
    op_fail(op, rc, "cannot seal the secret: %s%s", host->strerror(rc),
            rc == RN_ENOSYS ? " (set [runner] master_key_file)" : "");
    return;
  }
  host->job_set_data(op->job, c);
  op_transaction(op, connect_body, connect_saved);
}

static void connect_checked(op_t *op) {
  start_discovery(op, connect_discovered);
}

static int run_connect(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  return op_start(ctx, state, job, connect_checked);
}

const rn_job_def_t job_connect = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "connect",
    .summary = "test, then seal and save a NinjaOne credential and discover "
               "its organizations",
    .params = credential_params,
    .run = run_connect,
    .command = "connect",
};

/* ------------------------------------------- region of a saved credential */

static const char not_connected_hint[] =
    "save a credential first: 'regentra-runner ninjaone connect --msp-org ID "
    "--region R --client-id ID --client-secret-file FILE'; the region is "
    "then read from it";

/* Resolves op->region from the MSP's saved NinjaOne credentials when no
 * --region was given; loads the sealed secret into op->secret when wanted. */
static int resolve_credential(op_t *op, rn_devsrc_t *ds, bool need_active,
                              bool want_secret) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)op->msp_org_id);
  if (!op->has_region) {
    const char *params[] = {id};
    rn_db_result_t *res;
    int rc = host->db_tx_exec(
        ds->tx,
        "SELECT region FROM integration_credential WHERE msp_org_id = $1"
        " AND provider = 'ninjaone' ORDER BY is_active DESC, region",
        1, params, &res);
    if (rc < 0) {
      snprintf(op->error, sizeof op->error, "database: %s",
               host->db_tx_error(ds->tx));
      return rc;
    }
    int rows = host->db_rows(res);
    if (rows == 1)
      nj_region_parse(host->db_value(res, 0, 0), &op->region);
    host->db_result_free(res);
    if (rows == 0) {
      snprintf(op->error, sizeof op->error,
               "no NinjaOne credential is saved for MSP organization %lld: "
               "run 'regentra-runner ninjaone connect' first",
               (long long)op->msp_org_id);
      op_explain(op, "not_connected", not_connected_hint);
      return RN_ENOENT;
    }
    if (rows > 1) {
      snprintf(op->error, sizeof op->error,
               "MSP organization %lld has NinjaOne credentials in several "
               "regions: pass --region",
               (long long)op->msp_org_id);
      op_explain(op, "region_required", "pass --region");
      return RN_EINVAL;
    }
    op->has_region = true;
  }
  rn_credential_t cred;
  int rc = rn_credential_get(ds, RN_MSP_ORG(op->msp_org_id), PROVIDER,
                             nj_region_name(op->region), &cred);
  if (rc == RN_ENOENT) {
    snprintf(op->error, sizeof op->error,
             "no NinjaOne credential is saved for MSP organization %lld in "
             "region %s: run 'regentra-runner ninjaone connect' first",
             (long long)op->msp_org_id, nj_region_name(op->region));
    op_explain(op, "not_connected", not_connected_hint);
    return rc;
  }
  if (rc < 0)
    return rc;
  if (need_active && !cred.is_active) {
    rn_credential_release(host, &cred);
    snprintf(op->error, sizeof op->error,
             "the NinjaOne credential of MSP organization %lld in region %s "
             "is disconnected: connect again first",
             (long long)op->msp_org_id, nj_region_name(op->region));
    op_explain(op, "not_connected", not_connected_hint);
    return RN_ESTATE;
  }
  if (want_secret) {
    op->sealed = cred.sealed_secret;
    cred.sealed_secret = NULL;
    snprintf(op->client_id_buf, sizeof op->client_id_buf, "%s", cred.client_id);
    op->client_id = op->client_id_buf;
  }
  json_object_set_new(op->result, "credential_active",
                      json_boolean(cred.is_active));
  rn_credential_release(host, &cred);
  return 0;
}

/* ------------------------------------------------------------- orgs */

static const rn_option_t orgs_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX, .help = "the MSP organization id"),
    RN_OPTION(.name = "region", .type = RN_OPT_ENUM,
              .choices = NJ_REGION_CHOICES,
              .help = "default: the region of the saved credential"),
    RN_OPTION(.name = "refresh", .type = RN_OPT_BOOL, .default_value = "false",
              .help = "walk /v2/organizations again before listing"),
    {0},
};

static int list_body(op_t *op, rn_devsrc_t *ds) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)op->msp_org_id);
  const char *params[] = {id, nj_region_name(op->region)};
  rn_db_result_t *res;
  int
      rc =
          host->db_tx_exec(ds->tx,
                           "SELECT m.external_org_id, m.external_name, m.state,"
                           " m.portal_company_id, pc.name, "
                           "m.suggested_company_id, sc.name,"
                           " m.vanished_at IS NOT NULL,"
                           /* Every company whose name matches, as of now: more
                            * than one is an ambiguity the operator resolves,
                            * never a guess. */
                           " CASE WHEN m.state = 'PENDING' THEN (SELECT "
                           "json_agg(json_build_object("
                           "  'id', c.id, 'name', c.name) ORDER BY c.id) FROM "
                           "portal_company c"
                           "  WHERE c.msp_org_id = m.msp_org_id "
                           "AND " FOLDED_NAME("c.name") " = " FOLDED_NAME(
                               "m.external_name") ") END"
                                                  " FROM "
                                                  "integration_org_mapping m"
                                                  " LEFT JOIN portal_company "
                                                  "pc ON pc.id = "
                                                  "m.portal_company_id"
                                                  " LEFT JOIN portal_company "
                                                  "sc ON sc.id = "
                                                  "m.suggested_company_id"
                                                  " WHERE m.msp_org_id = $1 "
                                                  "AND m.provider = 'ninjaone'"
                                                  " AND m.region = $2 ORDER BY "
                                                  "lower(m.external_name), "
                                                  "m.external_org_id",
                           2, params, &res);
  if (rc < 0) {
    snprintf(op->error, sizeof op->error, "database: %s",
             host->db_tx_error(ds->tx));
    return rc;
  }
  json_t *list = json_array();
  for (int r = 0; r < host->db_rows(res); r++) {
    json_t *row = json_pack(
        "{s:s, s:s, s:s, s:b}", "external_org_id", host->db_value(res, r, 0),
        "name", host->db_value(res, r, 1), "state", host->db_value(res, r, 2),
        "vanished", strcmp(host->db_value(res, r, 7), "t") == 0);
    const char *matches_text = host->db_value(res, r, 8);
    json_t *matches = matches_text ? json_loads(matches_text, 0, NULL) : NULL;
    bool ambiguous = json_array_size(matches) > 1;
    for (int k = 0; k < 2; k++) {
      const char *cid = host->db_value(res, r, 3 + 2 * k);
      json_t *company =
          cid ? json_pack("{s:I, s:s}", "id",
                          (json_int_t)strtoll(cid, NULL, 10), "name",
                          host->db_value(res, r, 4 + 2 * k))
              : json_null();
      if (k == 1 && matches_text) /* PENDING: the suggestion as of now */
        company =
            (json_decref(company), json_array_size(matches) == 1
                                       ? json_incref(json_array_get(matches, 0))
                                       : json_null());
      json_object_set_new(row, k == 0 ? "company" : "suggested_company",
                          company);
    }
    json_object_set_new(row, "suggestion_ambiguous", json_boolean(ambiguous));
    json_object_set_new(row, "suggestion_candidates",
                        ambiguous ? json_incref(matches) : json_array());
    json_decref(matches);
    json_array_append_new(list, row);
  }
  host->db_result_free(res);
  json_object_set_new(op->result, "organizations", list);
  json_object_set_new(op->result, "region",
                      json_string(nj_region_name(op->region)));
  return 0;
}

static void orgs_listed(op_t *op) {
  if (op->status < 0) {
    op_fail(op, op->status, "%s", op->error);
    return;
  }
  json_t *list = json_object_get(op->result, "organizations");
  size_t used = (size_t)snprintf(
      op->summary, sizeof op->summary,
      "%zu NinjaOne organization(s) of MSP organization %lld in region %s:\n"
      "%-10s %-28s %-8s %-24s %-24s %s",
      json_array_size(list), (long long)op->msp_org_id,
      nj_region_name(op->region), "ORG", "NAME", "STATE", "COMPANY",
      "SUGGESTED", "AMBIGUOUS (no suggestion; pick one with map)");
  size_t i;
  json_t *row;
  json_array_foreach(list, i, row) {
    if (used >= sizeof op->summary - 1400) { /* a row is shorter */
      snprintf(op->summary + used, sizeof op->summary - used,
               "\n... %zu more (see --json)", json_array_size(list) - i);
      break;
    }
    json_t *company = json_object_get(row, "company");
    json_t *suggested = json_object_get(row, "suggested_company");
    char candidates[1024] = "-";
    size_t c_used = 0, k;
    json_t *candidate;
    json_array_foreach(json_object_get(row, "suggestion_candidates"), k,
                       candidate) {
      if (c_used >= sizeof candidates - 1)
        break;
      c_used += (size_t)snprintf(
          candidates + c_used, sizeof candidates - c_used, "%s#%lld \"%s\"",
          k ? ", " : "",
          (long long)json_integer_value(json_object_get(candidate, "id")),
          json_string_value(json_object_get(candidate, "name")));
    }
    used += (size_t)snprintf(
        op->summary + used, sizeof op->summary - used,
        "\n%-10s %-28.28s %-8s %-24.24s %-24.24s %s%s",
        json_string_value(json_object_get(row, "external_org_id")),
        json_string_value(json_object_get(row, "name")),
        json_string_value(json_object_get(row, "state")),
        json_is_object(company)
            ? json_string_value(json_object_get(company, "name"))
            : "-",
        json_is_object(suggested)
            ? json_string_value(json_object_get(suggested, "name"))
            : "-",
        candidates,
        json_is_true(json_object_get(row, "vanished")) ? " (vanished)" : "");
  }
  op_finish(op);
}

static void orgs_refreshed(op_t *op) {
  if (op->status < 0) {
    op_fail(op, op->status, "%s", op->error);
    return;
  }
  op_transaction(op, list_body, orgs_listed);
}

static void orgs_walked(op_t *op) {
  if (op->status < 0) {
    op_fail(op, op->status, "refresh failed; nothing changed: %s", op->error);
    return;
  }
  op_transaction(op, record_discovery, orgs_refreshed);
}

static int orgs_credential_body(op_t *op, rn_devsrc_t *ds) {
  bool refresh = bool_param(op, "refresh");
  return resolve_credential(op, ds, refresh, refresh);
}

static void orgs_have_credential(op_t *op) {
  if (op->status < 0) {
    op_fail(op, op->status, "%s", op->error);
    return;
  }
  if (!op->sealed) {
    op_transaction(op, list_body, orgs_listed);
    return;
  }
  int rc = host->secret_open(op->ctx, op->sealed, &op->secret, &op->secret_len);
  if (rc < 0) {
    op_fail(op, rc,
            "the saved secret cannot be opened: %s (is [runner] "
            "master_key_file the key it was sealed with?)",
            host->strerror(rc));
    return;
  }
  rc = op_make_client(op, op->secret, op->secret_len);
  if (rc < 0) {
    op_fail(op, rc, "%s", op->error);
    return;
  }
  op_discover(op, orgs_walked);
}

static void orgs_checked(op_t *op) {
  op_transaction(op, orgs_credential_body, orgs_have_credential);
}

static int run_orgs(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  return op_start(ctx, state, job, orgs_checked);
}

const rn_job_def_t job_orgs = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "orgs",
    .summary = "list NinjaOne organizations with their mapping state "
               "(--refresh walks NinjaOne again)",
    .params = orgs_params,
    .run = run_orgs,
    .command = "orgs",
};

/* -------------------------------------------------------------- map */

static const rn_option_t map_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX, .help = "the MSP organization id"),
    RN_OPTION(.name = "org", .type = RN_OPT_STRING,
              .help =
                  "the NinjaOne organization id (one map, applied at once)"),
    RN_OPTION(.name = "region", .type = RN_OPT_ENUM,
              .choices = NJ_REGION_CHOICES,
              .help =
                  "default: the one region the organization was discovered in"),
    RN_OPTION(.name = "use_existing", .type = RN_OPT_INT, .min = 1,
              .max = INT64_MAX, .help = "bind to this PortalCompany id"),
    RN_OPTION(.name = "create_new", .type = RN_OPT_BOOL,
              .help =
                  "bind to a company named like the organization (reused if it "
                  "exists)"),
    RN_OPTION(.name = "ignore", .type = RN_OPT_BOOL,
              .help = "don't sync: keep it out of PSA and compliance"),
    RN_OPTION(.name = "from_ignored", .type = RN_OPT_BOOL,
              .help = "allow mapping an organization that is IGNORED"),
    RN_OPTION(
            .name = "accept_suggestions", .type = RN_OPT_BOOL,
            .help =
                "bulk: map every PENDING organization to its unique suggested "
                "company (a preview unless --apply)"),
    RN_OPTION(
            .name = "from_file", .type = RN_OPT_PATH,
            .help =
                "bulk: CSV rows org,action[,company] with action use-existing "
                "(company id), create-new or ignore (a preview unless "
                "--apply)"),
    RN_OPTION(.name = "apply", .type = RN_OPT_BOOL,
              .help = "bulk: make the previewed changes, all or none, each row "
                      "audited"),
    RN_OPTION(.name = "actor", .type = RN_OPT_STRING,
              .default_value = "operator",
              .help = "who acts, for the audit log"),
    {0},
};

static const char org_not_discovered_hint[] =
    "run 'regentra-runner ninjaone orgs --refresh'; if the organization "
    "still does not appear, confirm in NinjaOne that it exists and that the "
    "API client can see it";

/* The region an organization was discovered in, when not given. */
static int resolve_org_region(op_t *op, rn_devsrc_t *ds, const char *org) {
  if (op->has_region)
    return 0;
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)op->msp_org_id);
  const char *params[] = {id, org};
  rn_db_result_t *res;
  int rc = host->db_tx_exec(
      ds->tx,
      "SELECT region FROM integration_org_mapping WHERE msp_org_id = $1"
      " AND provider = 'ninjaone' AND external_org_id = $2 ORDER BY region",
      2, params, &res);
  if (rc < 0) {
    snprintf(op->error, sizeof op->error, "database: %s",
             host->db_tx_error(ds->tx));
    return rc;
  }
  int rows = host->db_rows(res);
  if (rows == 1)
    nj_region_parse(host->db_value(res, 0, 0), &op->region);
  host->db_result_free(res);
  if (rows == 0) {
    snprintf(op->error, sizeof op->error,
             "NinjaOne organization %s has not been discovered for MSP "
             "organization %lld: run 'regentra-runner ninjaone orgs "
             "--refresh' first",
             org, (long long)op->msp_org_id);
    op_explain(op, "org_not_discovered", org_not_discovered_hint);
    return RN_ENOENT;
  }
  if (rows > 1) {
    snprintf(op->error, sizeof op->error,
             "NinjaOne organization %s exists in several regions: pass "
             "--region",
             org);
    op_explain(op, "region_required", "pass --region");
    return RN_EINVAL;
  }
  op->has_region = true;
  return 0;
}

static int map_body(op_t *op, rn_devsrc_t *ds) {
  const char *org = str_param(op, "org");
  int rc = resolve_org_region(op, ds, org);
  if (rc < 0)
    return rc;
  rn_msp_org_t msp = RN_MSP_ORG(op->msp_org_id);
  const char *region = nj_region_name(op->region);
  const char *actor = str_param(op, "actor");
  bool from_ignored = bool_param(op, "from_ignored");
  json_t *use = json_object_get(op->params, "use_existing");
  rn_company_t company = {0};
  const char *action;
  if (use) {
    company.id = json_integer_value(use);
    rc = rn_mapping_use_existing(ds, msp, PROVIDER, region, org, company,
                                 from_ignored, actor);
    action = "use-existing";
  } else if (bool_param(op, "create_new")) {
    rc = rn_mapping_create_new(ds, msp, PROVIDER, region, org, from_ignored,
                               actor, &company);
    action = "create-new";
  } else {
    rc = rn_mapping_ignore(ds, msp, PROVIDER, region, org, actor);
    action = "ignore";
  }
  if (rc < 0)
    return rc;
  json_object_set_new(op->result, "org", json_string(org));
  json_object_set_new(op->result, "region", json_string(region));
  json_object_set_new(op->result, "action", json_string(action));
  json_object_set_new(op->result, "state",
                      json_string(company.id ? "MAPPED" : "IGNORED"));
  json_object_set_new(op->result, "company_id",
                      company.id ? json_integer(company.id) : json_null());
  return 0;
}

/* The codes of the mapping actions' refusals (sdk/devsrc/mappings.c). */
static void explain_map_refusal(op_t *op) {
  if (op->code)
    return;
  if (op->status == RN_ENOENT)
    op_explain(op, "org_not_discovered", org_not_discovered_hint);
  else if (op->status == RN_ESTATE)
    op_explain(op, "org_ignored",
               "pass --from-ignored to map an organization marked don't "
               "sync");
  else if (op->status == RN_ETENANT)
    op_explain(op, "company_not_owned",
               "--use-existing takes the id of one of this MSP's companies");
}

static void map_done(op_t *op) {
  if (op->status < 0) {
    explain_map_refusal(op);
    op_fail(op, op->status, "nothing changed: %s", op->error);
    return;
  }
  json_t *company = json_object_get(op->result, "company_id");
  if (json_is_integer(company))
    snprintf(op->summary, sizeof op->summary,
             "NinjaOne organization %s (%s) is MAPPED to company %lld",
             str_param(op, "org"), nj_region_name(op->region),
             (long long)json_integer_value(company));
  else
    snprintf(op->summary, sizeof op->summary,
             "NinjaOne organization %s (%s) is IGNORED: its devices stay out "
             "of PSA and compliance",
             str_param(op, "org"), nj_region_name(op->region));
  op_finish(op);
}

static void map_checked(op_t *op) {
  op_transaction(op, map_body, map_done);
}

static int run_map(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  op_t *op = op_new(ctx, state, job);
  if (!op)
    return RN_ENOMEM;
  int actions = (json_object_get(op->params, "use_existing") != NULL) +
                bool_param(op, "create_new") + bool_param(op, "ignore");
  bool one = str_param(op, "org") != NULL;
  int modes = one + bool_param(op, "accept_suggestions") +
              (str_param(op, "from_file") != NULL);
  const char *usage = NULL;
  if (modes != 1)
    usage = "choose one of --org ORG (with an action), --accept-suggestions "
            "or --from-file FILE";
  else if (one && actions != 1)
    usage = "choose exactly one of --use-existing COMPANY_ID, --create-new "
            "or --ignore";
  else if (!one && actions)
    usage = "--use-existing, --create-new and --ignore go with --org; a "
            "bulk map takes its actions from the suggestions or the file";
  else if (one && bool_param(op, "apply"))
    usage = "--apply goes with --accept-suggestions or --from-file; a single "
            "map applies at once";
  if (usage) {
    op_explain(op, "usage", "see 'regentra-runner ninjaone map --help'");
    op_fail(op, RN_EINVAL, "%s", usage);
    return 0;
  }
  op_check_msp(op, one ? map_checked : bulk_map_start);
  return 0;
}

const rn_job_def_t job_map = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "map",
    .summary = "bind a NinjaOne organization to a company, create one, or "
               "ignore it; or many at once (--accept-suggestions, "
               "--from-file), previewed until --apply",
    .params = map_params,
    .run = run_map,
    .command = "map",
};

/* ------------------------------------------------------- disconnect */

static const rn_option_t msp_region_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX, .help = "the MSP organization id"),
    RN_OPTION(.name = "region", .type = RN_OPT_ENUM,
              .choices = NJ_REGION_CHOICES,
              .help = "default: the region of the saved credential"),
    {0},
};

/* The five steps of the product page, in one transaction. */
static int disconnect_body(op_t *op, rn_devsrc_t *ds) {
  int rc = resolve_credential(op, ds, false, false);
  if (rc < 0)
    return rc;
  const char *region = nj_region_name(op->region);
  json_object_set_new(op->result, "region", json_string(region));
  if (!json_is_true(json_object_get(op->result, "credential_active"))) {
    json_object_set_new(op->result, "already_disconnected", json_true());
    return 0; /* idempotent: a second disconnect changes nothing */
  }
  rn_msp_org_t msp = RN_MSP_ORG(op->msp_org_id);
  /* 1. zero the sealed columns, inactive */
  rc = rn_credential_deactivate(ds, msp, PROVIDER, region);
  /* The result reports the state after the change. */
  if (rc == 0)
    json_object_set_new(op->result, "credential_active", json_false());
  /* 2. retire every ninjaone asset of the MSP org (rows kept); the rows
   * they had deduplicated come back */
  int64_t retired = 0, restored = 0;
  if (rc == 0)
    rc = rn_assets_retire_source(ds, msp, PROVIDER, "NinjaOne was disconnected",
                                 &retired, &restored);
  if (rc < 0)
    return rc;
  /* 3. the customers whose compliance trail this affects */
  char msp_id[24], now[32];
  snprintf(msp_id, sizeof msp_id, "%lld", (long long)op->msp_org_id);
  snprintf(now, sizeof now, "%.3f", (double)op->now_ms / 1000.0);
  const char *params[] = {msp_id, region, now};
  rn_db_result_t *res;
  rc = host->db_tx_exec(
      ds->tx,
      "SELECT pc.converted_to_organization_id AS customer_org_id,"
      " (SELECT count(*) FROM monitoring_signal s"
      "   WHERE s.organization_id = pc.converted_to_organization_id"
      "   AND s.source = 'ninjaone' AND s.expires_at > to_timestamp($3))"
      " FROM portal_company pc WHERE pc.converted_to_organization_id IS NOT"
      " NULL AND pc.id IN (SELECT m.portal_company_id"
      "  FROM integration_org_mapping m WHERE m.msp_org_id = $1"
      "  AND m.provider = 'ninjaone' AND m.region = $2 AND m.state = 'MAPPED')"
      " ORDER BY 1",
      3, params, &res);
  if (rc < 0) {
    snprintf(op->error, sizeof op->error, "database: %s",
             host->db_tx_error(ds->tx));
    return rc;
  }
  json_t *customers = json_array();
  for (int r = 0; r < host->db_rows(res) && rc == 0; r++) {
    rn_customer_org_t customer =
        RN_CUSTOMER_ORG(strtoll(host->db_value(res, r, 0), NULL, 10));
    int64_t signals = strtoll(host->db_value(res, r, 1), NULL, 10);
    json_t *details = json_pack("{s:s, s:I}", "region", region,
                                "signals_collected", (json_int_t)signals);
    char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(details);
    rc = rn_audit_customer(ds, customer, "regentra-runner",
                           "NINJAONE_DISCONNECTED", text);
    free(text);
    json_array_append_new(customers, json_integer(customer.id));
  }
  host->db_result_free(res);
  /* 4. signals and 5. mappings are left alone on purpose. */
  json_t *details =
      json_pack("{s:s, s:I, s:I, s:O}", "region", region, "assets_retired",
                (json_int_t)retired, "assets_restored", (json_int_t)restored,
                "customer_org_ids", customers);
  char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(details);
  if (rc == 0)
    rc =
        rn_audit_msp(ds, msp, "regentra-runner", "NINJAONE_DISCONNECTED", text);
  free(text);
  json_object_set_new(op->result, "assets_retired", json_integer(retired));
  json_object_set_new(op->result, "assets_restored", json_integer(restored));
  json_object_set_new(op->result, "customers_notified", customers);
  return rc;
}

static void disconnect_done(op_t *op) {
  if (op->status < 0) {
    op_fail(op, op->status, "nothing changed: %s", op->error);
    return;
  }
  if (json_is_true(json_object_get(op->result, "already_disconnected")))
    snprintf(op->summary, sizeof op->summary,
             "NinjaOne (%s) was already disconnected for MSP organization "
             "%lld; nothing changed",
             nj_region_name(op->region), (long long)op->msp_org_id);
  else
    snprintf(
        op->summary, sizeof op->summary,
        "disconnected NinjaOne (%s) for MSP organization %lld: "
        "credential zeroed and inactive, %lld asset(s) retired, "
        "NINJAONE_DISCONNECTED written to %zu customer organization(s) "
        "and the MSP; signals and mappings kept",
        nj_region_name(op->region), (long long)op->msp_org_id,
        (long long)json_integer_value(
            json_object_get(op->result, "assets_retired")),
        json_array_size(json_object_get(op->result, "customers_notified")));
  op_finish(op);
}

static void disconnect_checked(op_t *op) {
  op_transaction(op, disconnect_body, disconnect_done);
}

static int run_disconnect(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  return op_start(ctx, state, job, disconnect_checked);
}

const rn_job_def_t job_disconnect = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "disconnect",
    .summary = "zero and deactivate the credential, retire its assets, tell "
               "every affected customer's audit trail",
    .params = msp_region_params,
    .run = run_disconnect,
    .command = "disconnect",
};

/* ----------------------------------------------------------- status */

static const rn_option_t status_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .flags = RN_OPT_REQUIRED,
              .min = 1, .max = INT64_MAX, .help = "the MSP organization id"),
    {0},
};

static int status_body(op_t *op, rn_devsrc_t *ds) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)op->msp_org_id);
  const char *params[] = {id};
  rn_db_result_t *res;
  /* Built by PostgreSQL: timestamps come out as ISO 8601 text. */
  int rc = host->db_tx_exec(
      ds->tx,
      "SELECT json_build_object('credentials', coalesce((SELECT"
      " json_agg(json_build_object('region', c.region, 'connected',"
      "  c.is_active, 'connected_at', c.connected_at, 'disconnected_at',"
      "  c.disconnected_at, 'first_evidence_synced_at',"
      "  c.first_evidence_synced_at, 'last_discovery_at',"
      "  c.last_discovery_at, 'last_discovery', c.last_discovery,"
      "  'last_asset_sync_at', c.last_asset_sync_at, 'last_asset_sync',"
      "  c.last_asset_sync, 'last_evidence_sweep_at',"
      "  c.last_evidence_sweep_at, 'last_evidence_sweep',"
      "  c.last_evidence_sweep, 'mappings', coalesce((SELECT"
      "  json_object_agg(state, n) FROM (SELECT state, count(*) AS n"
      "   FROM integration_org_mapping m WHERE m.msp_org_id = c.msp_org_id"
      "   AND m.provider = c.provider AND m.region = c.region"
      "   GROUP BY state) s), '{}'::json)) ORDER BY c.region)"
      " FROM integration_credential c WHERE c.msp_org_id = $1"
      " AND c.provider = 'ninjaone'), '[]'::json))",
      1, params, &res);
  if (rc < 0) {
    snprintf(op->error, sizeof op->error, "database: %s",
             host->db_tx_error(ds->tx));
    return rc;
  }
  json_t *status = json_loads(host->db_value(res, 0, 0), 0, NULL);
  host->db_result_free(res);
  if (!status)
    return RN_EJSON;
  json_object_update(op->result, status);
  json_decref(status);
  /* Whether the shipped cadences fit each active credential's budget. */
  cred_plan_t *creds;
  size_t ncreds;
  rc = plan_query(ds->tx, op->msp_org_id, &creds, &ncreds, op->error,
                  sizeof op->error);
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(op->result, "credentials"), i, c) {
    for (size_t k = 0; rc == 0 && k < ncreds; k++)
      if (strcmp(creds[k].region,
                 json_string_value(json_object_get(c, "region"))) == 0)
        json_object_set_new(
            c, "budget",
            plan_fit_json(op->state, &creds[k], &plan_shipped_cadence));
  }
  host->free(creds);
  return rc;
}

static const char *or_never(json_t *v) {
  return json_is_string(v) ? json_string_value(v) : "never";
}

static void status_done(op_t *op) {
  if (op->status < 0) {
    op_fail(op, op->status, "%s", op->error);
    return;
  }
  json_t *creds = json_object_get(op->result, "credentials");
  size_t used = (size_t)snprintf(
      op->summary, sizeof op->summary, "NinjaOne for MSP organization %lld%s",
      (long long)op->msp_org_id,
      json_array_size(creds) ? ":" : ": not connected");
  size_t i;
  json_t *c;
  json_array_foreach(creds, i, c) {
    json_t *m = json_object_get(c, "mappings");
    if (used >= sizeof op->summary - 1)
      break;
    used += (size_t)snprintf(
        op->summary + used, sizeof op->summary - used,
        "\n  region %s: %s\n    mappings: %lld pending, %lld mapped, %lld "
        "ignored\n    last discovery: %s\n    last asset sync: %s\n    last "
        "evidence sweep: %s\n    first evidence sweep done: %s",
        json_string_value(json_object_get(c, "region")),
        json_is_true(json_object_get(c, "connected")) ? "connected"
                                                      : "disconnected",
        (long long)json_integer_value(json_object_get(m, "PENDING")),
        (long long)json_integer_value(json_object_get(m, "MAPPED")),
        (long long)json_integer_value(json_object_get(m, "IGNORED")),
        or_never(json_object_get(c, "last_discovery_at")),
        or_never(json_object_get(c, "last_asset_sync_at")),
        or_never(json_object_get(c, "last_evidence_sweep_at")),
        json_is_string(json_object_get(c, "first_evidence_synced_at"))
            ? "yes"
            : "no (the ticket bridge stays quiet until it is)");
    json_t *b = json_object_get(c, "budget");
    if (b && used < sizeof op->summary - 1)
      used += (size_t)snprintf(
          op->summary + used, sizeof op->summary - used,
          json_is_true(json_object_get(b, "fits"))
              ? "\n    request budget: the shipped cadences fit (%lld of %lld"
                " usable in %lld h; up to %lld promoted customers)"
              : "\n    warning: the shipped cadences do NOT fit the request"
                " budget: %lld requests in %lld usable between two syncs"
                " (%lld h); at most %lld promoted customers fit (see"
                " 'regentra-runner ninjaone plan')",
          (long long)json_integer_value(json_object_get(b, "window_requests")),
          (long long)json_integer_value(json_object_get(b, "window_usable")),
          (long long)json_integer_value(json_object_get(b, "window_hours")),
          (long long)json_integer_value(
              json_object_get(b, "max_promoted_customers")));
  }
  op_finish(op);
}

static void status_checked(op_t *op) {
  op_transaction(op, status_body, status_done);
}

static int run_status(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  return op_start(ctx, state, job, status_checked);
}

const rn_job_def_t job_status = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "status",
    .summary = "connection, region, mapping counts and the last runs",
    .params = status_params,
    .run = run_status,
    .command = "status",
};
