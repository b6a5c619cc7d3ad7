/* card.c - the six operator commands of an integration card, each a job:
 * test, connect, orgs, map, disconnect, status. The provider's words fill
 * their help texts and sentences (card_words below). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card_internal.h"

/* ---------------------------------------------------------- the words */

static char test_summary[160], connect_summary[160], orgs_summary[160],
    map_summary[256], map_org_help[128], refresh_help[160], no_orgs_text[512];
static const char *const secret_help =
    "file holding the client secret (mode 0600), or - for stdin";

#define MAX_PARAMS 16
static rn_option_t credential_params[MAX_PARAMS], orgs_params[MAX_PARAMS],
    map_params[MAX_PARAMS], msp_region_params[MAX_PARAMS],
    status_params[MAX_PARAMS];

static size_t add_msp(rn_option_t *o) {
  o[0] = (rn_option_t)RN_OPTION(.name = "msp_org", .type = RN_OPT_INT,
                                .flags = RN_OPT_REQUIRED, .min = 1,
                                .max = INT64_MAX,
                                .help = "the MSP organization id");
  return 1;
}

/* --region, when the provider has regions. */
static size_t add_region(rn_option_t *o, int flags, const char *help) {
  if (!P.regions)
    return 0;
  *o = (rn_option_t)RN_OPTION(.name = "region", .type = RN_OPT_ENUM,
                              .flags = flags, .choices = P.regions,
                              .help = help);
  return 1;
}

static void upper(char *out, size_t cap, const char *word, const char *event) {
  size_t n = 0;
  for (; word[n] && n + 1 < cap; n++)
    out[n] = word[n] == '-'
                 ? '_'
                 : (char)(word[n] >= 'a' && word[n] <= 'z' ? word[n] - 'a' + 'A'
                                                           : word[n]);
  snprintf(out + n, cap - n, "_%s", event);
}

const char *rk__article(const char *word) {
  return strchr("AEIOUaeiou", word[0]) && word[0] ? "an" : "a";
}

void rk__card_words(void) {
  const char *name = P.display_name, *group = P.source, *a = rk__article(name);
  bool given = P.flags & RK_ORGS_GIVEN;
  upper(W.connected, sizeof W.connected, group, "CONNECTED");
  upper(W.discovery, sizeof W.discovery, group, "DISCOVERY");
  upper(W.disconnected, sizeof W.disconnected, group, "DISCONNECTED");
  snprintf(W.not_connected_hint, sizeof W.not_connected_hint,
           "save a credential first: 'regentra-runner %s connect --msp-org "
           "ID%s --client-id ID --client-secret-file FILE%s'%s",
           group, P.regions ? " --region R" : "", given ? " --orgs ID,..." : "",
           P.regions ? "; the region is then read from it" : "");
  if (given)
    snprintf(W.org_not_discovered_hint, sizeof W.org_not_discovered_hint,
             "connect again naming it in --orgs: the organizations of %s %s "
             "credential are the ones its operator names",
             a, name);
  else
    snprintf(W.org_not_discovered_hint, sizeof W.org_not_discovered_hint,
             "run 'regentra-runner %s orgs --refresh'; if the organization "
             "still does not appear, confirm in %s that it exists and that "
             "the API client can see it",
             group, name);
  snprintf(W.map_usage_hint, sizeof W.map_usage_hint,
           "see 'regentra-runner %s map --help'", group);
  snprintf(W.no_orgs_hint, sizeof W.no_orgs_hint, "%s",
           P.no_orgs_hint ? P.no_orgs_hint
                          : "give the API client access to at least one "
                            "organization, then run test again");
  snprintf(no_orgs_text, sizeof no_orgs_text, "%s",
           P.no_orgs_message ? P.no_orgs_message
                             : "the API client sees no organization");
  snprintf(W.retire_reason, sizeof W.retire_reason, "%s was disconnected",
           name);
  snprintf(W.listing_stage, sizeof W.listing_stage, "listing %s organizations",
           name);

  snprintf(test_summary, sizeof test_summary,
           "test %s %s API client: token, %sorganizations visible; saves "
           "nothing",
           a, name, P.flags & RK_REPORTS_SCOPE ? "scope, " : "");
  snprintf(connect_summary, sizeof connect_summary,
           "test, then seal and save %s %s credential and discover its "
           "organizations",
           a, name);
  if (given)
    snprintf(orgs_summary, sizeof orgs_summary,
             "list the %s organizations named at connect with their mapping "
             "state (--refresh authenticates in each again)",
             name);
  else
    snprintf(orgs_summary, sizeof orgs_summary,
             "list %s organizations with their mapping state (--refresh walks "
             "%s again)",
             name, name);
  snprintf(map_summary, sizeof map_summary,
           "bind %s %s organization to a company, create one, or ignore it; "
           "or many at once (--accept-suggestions, --from-file), previewed "
           "until --apply",
           a, name);
  snprintf(map_org_help, sizeof map_org_help,
           "the %s organization id (one map, applied at once)", name);
  snprintf(refresh_help, sizeof refresh_help, "%s",
           P.refresh_help ? P.refresh_help
                          : "list the organizations again before listing");

  size_t n = add_msp(credential_params);
  n += add_region(credential_params + n, RN_OPT_REQUIRED, P.region_help);
  credential_params[n++] =
      (rn_option_t)RN_OPTION(.name = "client_id", .type = RN_OPT_STRING,
                             .flags = RN_OPT_REQUIRED,
                             .help = P.client_id_help ? P.client_id_help
                                                      : "the API client's id");
  credential_params[n++] =
      (rn_option_t)RN_OPTION(.name = "client_secret_file",
                             .type = RN_OPT_SECRET_FILE,
                             .flags = RN_OPT_REQUIRED, .help = secret_help);
  if (given)
    credential_params[n++] = (rn_option_t)
        RN_OPTION(.name = "orgs", .type = RN_OPT_STRING,
                  .flags = RN_OPT_REQUIRED,
                  .help = P.orgs_help
                              ? P.orgs_help
                              : "the organization ids the credential reaches, "
                                "comma separated");
  credential_params[n] = (rn_option_t){0};

  n = add_msp(orgs_params);
  n += add_region(orgs_params + n, 0,
                  "default: the region of the saved credential");
  orgs_params[n++] =
      (rn_option_t)RN_OPTION(.name = "refresh", .type = RN_OPT_BOOL,
                             .default_value = "false", .help = refresh_help);
  orgs_params[n] = (rn_option_t){0};

  n = add_msp(map_params);
  map_params[n++] = (rn_option_t)RN_OPTION(.name = "org", .type = RN_OPT_STRING,
                                           .help = map_org_help);
  n += add_region(map_params + n, 0,
                  "default: the one region the organization was discovered "
                  "in");
  map_params[n++] =
      (rn_option_t)RN_OPTION(.name = "use_existing", .type = RN_OPT_INT,
                             .min = 1, .max = INT64_MAX,
                             .help = "bind to this PortalCompany id");
  map_params[n++] = (rn_option_t)RN_OPTION(
          .name = "create_new", .type = RN_OPT_BOOL,
          .help = "bind to a company named like the organization (reused if it "
                  "exists)");
  map_params[n++] = (rn_option_t)
      RN_OPTION(.name = "ignore", .type = RN_OPT_BOOL,
                .help = "don't sync: keep it out of PSA and compliance");
  map_params[n++] = (rn_option_t)
      RN_OPTION(.name = "from_ignored", .type = RN_OPT_BOOL,
                .help = "allow mapping an organization that is IGNORED");
  map_params[n++] = (rn_option_t)RN_OPTION(
          .name = "accept_suggestions", .type = RN_OPT_BOOL,
          .help =
              "bulk: map every PENDING organization to its unique suggested "
              "company (a preview unless --apply)");
  map_params[n++] = (rn_option_t)RN_OPTION(
          .name = "from_file", .type = RN_OPT_PATH,
          .help =
              "bulk: CSV rows org,action[,company] with action use-existing "
              "(company id), create-new or ignore (a preview unless "
              "--apply)");
  map_params[n++] = (rn_option_t)
      RN_OPTION(.name = "apply", .type = RN_OPT_BOOL,
                .help =
                    "bulk: make the previewed changes, all or none, each row "
                    "audited");
  map_params[n++] =
      (rn_option_t)RN_OPTION(.name = "actor", .type = RN_OPT_STRING,
                             .default_value = "operator",
                             .help = "who acts, for the audit log");
  map_params[n] = (rn_option_t){0};

  n = add_msp(msp_region_params);
  n += add_region(msp_region_params + n, 0,
                  "default: the region of the saved credential");
  msp_region_params[n] = (rn_option_t){0};

  n = add_msp(status_params);
  status_params[n] = (rn_option_t){0};

  rk__job_test.summary = test_summary;
  rk__job_connect.summary = connect_summary;
  rk__job_orgs.summary = orgs_summary;
  rk__job_map.summary = map_summary;
}

/* Where the API is, for messages. */
static const char *host_of(op_t *op) {
  return op->api_host[0] ? op->api_host : "?";
}

/* ------------------------------------------------------------- test */

/* After discovery for test and connect: the checks the card shows. */
static bool discovery_usable(op_t *op) {
  if (op->status < 0) {
    op_fail(op, op->status, "%s", op->error);
    return false;
  }
  if (json_array_size(op->orgs) == 0) {
    op_explain(op, "no_visible_organizations", W.no_orgs_hint);
    op_fail(op, RN_ESTATE, "%s (region %s, %s)", no_orgs_text, op->region,
            host_of(op));
    return false;
  }
  json_object_set_new(op->result, "region", json_string(op->region));
  json_object_set_new(op->result, "host", json_string(host_of(op)));
  json_object_set_new(op->result, "organizations",
                      json_integer((json_int_t)json_array_size(op->orgs)));
  json_object_set_new(op->result, "truncated", json_boolean(op->truncated));
  if (P.flags & RK_REPORTS_SCOPE) {
    json_object_set_new(
        op->result, "granted_scope",
        json_string(op->granted_scope ? op->granted_scope : ""));
    json_object_set_new(op->result, "scope_wider_than_requested",
                        json_boolean(op->scope_wider));
  }
  return true;
}

static void test_discovered(op_t *op) {
  if (!discovery_usable(op))
    return;
  json_object_set_new(op->result, "saved", json_false());
  char scope[512] = "";
  if (P.flags & RK_REPORTS_SCOPE)
    snprintf(scope, sizeof scope, ", granted scope \"%s\"%s",
             op->granted_scope ? op->granted_scope : "",
             op->scope_wider && P.scope_warning ? P.scope_warning : "");
  snprintf(op->summary, sizeof op->summary,
           "connection ok: region %s (%s), %zu organization(s) visible%s%s; "
           "nothing was saved",
           op->region, host_of(op), json_array_size(op->orgs),
           op->truncated ? " (list truncated at the cap)" : "", scope);
  op_finish(op);
}

/* The ids of --orgs, for a provider whose operator names them. */
static int read_given(op_t *op) {
  const char *list = op_str(op, "orgs");
  json_decref(op->given);
  op->given = json_array();
  if (!op->given)
    return RN_ENOMEM;
  for (const char *p = list ? list : ""; *p;) {
    size_t n = strcspn(p, ", ");
    if (n) {
      char id[128];
      if (n >= sizeof id || (snprintf(id, sizeof id, "%.*s", (int)n, p),
                             P.org_id_valid && !P.org_id_valid(id))) {
        snprintf(op->error, sizeof op->error,
                 "--orgs: \"%.*s\" is not %s %s organization id%s%s%s",
                 (int)(n < 100 ? n : 100), p, rk__article(P.display_name),
                 P.display_name, P.org_id_form ? " (" : "",
                 P.org_id_form ? P.org_id_form : "", P.org_id_form ? ")" : "");
        op_explain(op, "invalid_argument", NULL);
        return RN_EINVAL;
      }
      json_array_append_new(op->given, json_string(id));
    }
    p += n;
    p += strspn(p, ", ");
  }
  if (json_array_size(op->given) == 0) {
    snprintf(op->error, sizeof op->error,
             "--orgs names no organization: give the ids the credential "
             "reaches, comma separated");
    op_explain(op, "invalid_argument", NULL);
    return RN_EINVAL;
  }
  return 0;
}

static void start_discovery(op_t *op, void (*next)(op_t *op)) {
  size_t len = 0;
  const char *secret = host->job_secret(op->job, "client_secret_file", &len);
  if (!secret) {
    op_fail(op, RN_EINVAL, "missing client secret");
    return;
  }
  op->job_secret = secret;
  op->job_secret_len = len;
  if (P.flags & RK_ORGS_GIVEN) {
    int rc = read_given(op);
    if (rc < 0) {
      op_fail(op, rc, "%s", op->error);
      return;
    }
  }
  op_discover(op, next);
}

static void test_checked(op_t *op) {
  start_discovery(op, test_discovered);
}

static int run_test(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  return op_start(ctx, state, job, test_checked);
}

rn_job_def_t rk__job_test = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "test",
    .params = credential_params,
    .run = run_test,
    .command = "test",
};

/* ---------------------------------------------------------- connect */

static json_t *discovery_details(op_t *op, const rn_discovery_counts_t *c) {
  return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:I}", "region",
                   op->region, "organizations", (json_int_t)c->seen, "added",
                   (json_int_t)c->added, "renamed", (json_int_t)c->renamed,
                   "vanished", (json_int_t)c->vanished, "reappeared",
                   (json_int_t)c->reappeared, "truncated", op->truncated,
                   "pages", (json_int_t)op->pages);
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
  /* Operator-named organizations are a complete list only of themselves:
   * nothing else vanishes because a connect named fewer. */
  bool complete = !op->truncated && !(P.flags & RK_ORGS_GIVEN);
  int rc = rn_mappings_discovered(ds, msp, P.source, op->region, orgs, n,
                                  complete, &counts);
  host->free(orgs);
  if (rc < 0)
    return rc;
  json_t *details = discovery_details(op, &counts);
  char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
  json_object_set_new(op->result, "discovery", details);
  rc = rn_credential_record_run(ds, msp, P.source, op->region, "discovery",
                                text);
  if (rc == 0)
    rc = rn_audit_msp(ds, msp, ACTOR, W.discovery, text);
  free(text);
  return rc;
}

/* Sealed before the transaction: the master key lives in the host. */
typedef struct connect_s {
  char *sealed;
} connect_t;

static int connect_body(op_t *op, rn_devsrc_t *ds) {
  connect_t *c = host->job_data(op->job);
  rn_msp_org_t msp = RN_MSP_ORG(op->msp_org_id);
  int rc = rn_credential_save(ds, msp, P.source, op->region, op->client_id,
                              c->sealed, NULL);
  if (rc < 0)
    return rc;
  json_object_set_new(op->result, "saved", json_true());
  json_object_set_new(op->result, "credential_active", json_true());
  json_t *details =
      json_pack("{s:s, s:s, s:I}", "region", op->region, "host", host_of(op),
                "organizations_visible", (json_int_t)json_array_size(op->orgs));
  if (P.flags & RK_REPORTS_SCOPE)
    json_object_set_new(
        details, "granted_scope",
        json_string(op->granted_scope ? op->granted_scope : ""));
  char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(details);
  rc = rn_audit_msp(ds, msp, ACTOR, W.connected, text);
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
           "%s written to MSP organization %lld; discovery found %lld "
           "organization(s), %lld new%s",
           op->region, host_of(op), W.connected, (long long)op->msp_org_id,
           (long long)json_integer_value(json_object_get(d, "organizations")),
           (long long)json_integer_value(json_object_get(d, "added")),
           op->truncated ? " (truncated at the cap)" : "");
  op_finish(op);
}

static void connect_discovered(op_t *op) {
  if (!discovery_usable(op))
    return;
  connect_t *c = host->calloc(1, sizeof *c);
  int rc = c ? host->secret_seal(op->ctx, op->job_secret, op->job_secret_len,
                                 &c->sealed)
             : RN_ENOMEM;
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

rn_job_def_t rk__job_connect = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "connect",
    .params = credential_params,
    .run = run_connect,
    .command = "connect",
};

/* ------------------------------------------- region of a saved credential */

/* Resolves op->region from the MSP's saved credentials when no --region
 * was given; loads the sealed secret into op->sealed when wanted. */
static int resolve_credential(op_t *op, rn_devsrc_t *ds, bool need_active,
                              bool want_secret) {
  const char *name = P.display_name, *group = P.source;
  if (!op->has_region) {
    int rows;
    int rc = one_region(
        op, ds,
        "SELECT region FROM integration_credential WHERE msp_org_id = $1"
        " AND provider = $2 ORDER BY is_active DESC, region",
        2, NULL, &rows);
    if (rc < 0)
      return rc;
    if (rows == 0) {
      snprintf(op->error, sizeof op->error,
               "no %s credential is saved for MSP organization %lld: "
               "run 'regentra-runner %s connect' first",
               name, (long long)op->msp_org_id, group);
      op_explain(op, "not_connected", W.not_connected_hint);
      return RN_ENOENT;
    }
    if (rows > 1) {
      snprintf(op->error, sizeof op->error,
               "MSP organization %lld has %s credentials in several "
               "regions: pass --region",
               (long long)op->msp_org_id, name);
      op_explain(op, "region_required", "pass --region");
      return RN_EINVAL;
    }
    op->has_region = true;
  }
  rn_credential_t cred;
  int rc = rn_credential_get(ds, RN_MSP_ORG(op->msp_org_id), P.source,
                             op->region, &cred);
  if (rc == RN_ENOENT) {
    snprintf(op->error, sizeof op->error,
             "no %s credential is saved for MSP organization %lld in "
             "region %s: run 'regentra-runner %s connect' first",
             name, (long long)op->msp_org_id, op->region, group);
    op_explain(op, "not_connected", W.not_connected_hint);
    return rc;
  }
  if (rc < 0)
    return rc;
  if (need_active && !cred.is_active) {
    rn_credential_release(host, &cred);
    snprintf(op->error, sizeof op->error,
             "the %s credential of MSP organization %lld in region %s "
             "is disconnected: connect again first",
             name, (long long)op->msp_org_id, op->region);
    op_explain(op, "not_connected", W.not_connected_hint);
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

static int list_body(op_t *op, rn_devsrc_t *ds) {
  char id[24];
  op_msp_text(op, id);
  const char *params[] = {id, op->region, P.source};
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
                                                  "AND m.provider = $3 AND "
                                                  "m.region = $2"
                                                  " ORDER BY "
                                                  "lower(m.external_name), "
                                                  "m.external_org_id",
                           3, params, &res);
  if (rc < 0)
    return op_db_error(op, ds, rc);
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
  json_object_set_new(op->result, "region", json_string(op->region));
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
      "%zu %s organization(s) of MSP organization %lld in region %s:\n"
      "%-10s %-28s %-8s %-24s %-24s %s",
      json_array_size(list), P.display_name, (long long)op->msp_org_id,
      op->region, "ORG", "NAME", "STATE", "COMPANY", "SUGGESTED",
      "AMBIGUOUS (no suggestion; pick one with map)");
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

/* Operator-named organizations are refreshed by authenticating in each of
 * the ones discovered before. */
static int given_body(op_t *op, rn_devsrc_t *ds) {
  char id[24];
  op_msp_text(op, id);
  const char *params[] = {id, P.source, op->region};
  rn_db_result_t *res;
  int rc = host->db_tx_exec(
      ds->tx,
      "SELECT external_org_id FROM integration_org_mapping WHERE msp_org_id"
      " = $1 AND provider = $2 AND region = $3 ORDER BY external_org_id",
      3, params, &res);
  if (rc < 0)
    return op_db_error(op, ds, rc);
  json_decref(op->given);
  op->given = json_array();
  for (int r = 0; r < host->db_rows(res); r++)
    json_array_append_new(op->given, json_string(host->db_value(res, r, 0)));
  host->db_result_free(res);
  return 0;
}

static void orgs_given_read(op_t *op) {
  if (op->status < 0) {
    op_fail(op, op->status, "%s", op->error);
    return;
  }
  op_discover(op, orgs_walked);
}

static int orgs_credential_body(op_t *op, rn_devsrc_t *ds) {
  bool refresh = op_bool(op, "refresh");
  int rc = resolve_credential(op, ds, refresh, refresh);
  return rc == 0 && refresh && (P.flags & RK_ORGS_GIVEN) ? given_body(op, ds)
                                                         : rc;
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
  orgs_given_read(op);
}

static void orgs_checked(op_t *op) {
  op_transaction(op, orgs_credential_body, orgs_have_credential);
}

static int run_orgs(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  return op_start(ctx, state, job, orgs_checked);
}

rn_job_def_t rk__job_orgs = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "orgs",
    .params = orgs_params,
    .run = run_orgs,
    .command = "orgs",
};

/* -------------------------------------------------------------- map */

static int map_body(op_t *op, rn_devsrc_t *ds) {
  const char *org = op_str(op, "org");
  int rc = resolve_mapping_region(op, ds, org);
  if (rc < 0)
    return rc;
  rn_msp_org_t msp = RN_MSP_ORG(op->msp_org_id);
  const char *actor = op_str(op, "actor");
  bool from_ignored = op_bool(op, "from_ignored");
  json_t *use = json_object_get(op->params, "use_existing");
  rn_company_t company = {0};
  const char *action;
  if (use) {
    company.id = json_integer_value(use);
    rc = rn_mapping_use_existing(ds, msp, P.source, op->region, org, company,
                                 from_ignored, actor);
    action = "use-existing";
  } else if (op_bool(op, "create_new")) {
    rc = rn_mapping_create_new(ds, msp, P.source, op->region, org, from_ignored,
                               actor, &company);
    action = "create-new";
  } else {
    rc = rn_mapping_ignore(ds, msp, P.source, op->region, org, actor);
    action = "ignore";
  }
  if (rc < 0)
    return rc;
  json_object_set_new(op->result, "org", json_string(org));
  json_object_set_new(op->result, "region", json_string(op->region));
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
    op_explain(op, "org_not_discovered", W.org_not_discovered_hint);
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
             "%s organization %s (%s) is MAPPED to company %lld",
             P.display_name, op_str(op, "org"), op->region,
             (long long)json_integer_value(company));
  else
    snprintf(op->summary, sizeof op->summary,
             "%s organization %s (%s) is IGNORED: its devices stay out "
             "of PSA and compliance",
             P.display_name, op_str(op, "org"), op->region);
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
                op_bool(op, "create_new") + op_bool(op, "ignore");
  bool one = op_str(op, "org") != NULL;
  int modes = one + op_bool(op, "accept_suggestions") +
              (op_str(op, "from_file") != NULL);
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
  else if (one && op_bool(op, "apply"))
    usage = "--apply goes with --accept-suggestions or --from-file; a single "
            "map applies at once";
  if (usage) {
    op_explain(op, "usage", W.map_usage_hint);
    op_fail(op, RN_EINVAL, "%s", usage);
    return 0;
  }
  op_check_msp(op, one ? map_checked : bulk_map_start);
  return 0;
}

rn_job_def_t rk__job_map = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "map",
    .params = map_params,
    .run = run_map,
    .command = "map",
};

/* ------------------------------------------------------- disconnect */

/* The five steps of the product page, in one transaction. */
static int disconnect_body(op_t *op, rn_devsrc_t *ds) {
  int rc = resolve_credential(op, ds, false, false);
  if (rc < 0)
    return rc;
  const char *region = op->region;
  json_object_set_new(op->result, "region", json_string(region));
  if (!json_is_true(json_object_get(op->result, "credential_active"))) {
    json_object_set_new(op->result, "already_disconnected", json_true());
    return 0; /* idempotent: a second disconnect changes nothing */
  }
  rn_msp_org_t msp = RN_MSP_ORG(op->msp_org_id);
  /* 1. zero the sealed columns, inactive */
  rc = rn_credential_deactivate(ds, msp, P.source, region);
  /* The result reports the state after the change. */
  if (rc == 0)
    json_object_set_new(op->result, "credential_active", json_false());
  /* 2. retire every asset of the source in the MSP org (rows kept); the
   * rows they had deduplicated come back */
  int64_t retired = 0, restored = 0;
  if (rc == 0)
    rc = rn_assets_retire_source(ds, msp, P.source, W.retire_reason, &retired,
                                 &restored);
  if (rc < 0)
    return rc;
  /* 3. the customers whose compliance trail this affects */
  char msp_id[24], now[32];
  op_msp_text(op, msp_id);
  snprintf(now, sizeof now, "%.3f", (double)ds->now_ms / 1000.0);
  const char *params[] = {msp_id, region, now, P.source};
  rn_db_result_t *res;
  rc = host->db_tx_exec(
      ds->tx,
      "SELECT pc.converted_to_organization_id AS customer_org_id,"
      " (SELECT count(*) FROM monitoring_signal s"
      "   WHERE s.organization_id = pc.converted_to_organization_id"
      "   AND s.source = $4 AND s.expires_at > to_timestamp($3))"
      " FROM portal_company pc WHERE pc.converted_to_organization_id IS NOT"
      " NULL AND pc.id IN (SELECT m.portal_company_id"
      "  FROM integration_org_mapping m WHERE m.msp_org_id = $1"
      "  AND m.provider = $4 AND m.region = $2 AND m.state = 'MAPPED')"
      " ORDER BY 1",
      4, params, &res);
  if (rc < 0)
    return op_db_error(op, ds, rc);
  json_t *customers = json_array();
  for (int r = 0; r < host->db_rows(res) && rc == 0; r++) {
    rn_customer_org_t customer =
        RN_CUSTOMER_ORG(strtoll(host->db_value(res, r, 0), NULL, 10));
    int64_t signals = strtoll(host->db_value(res, r, 1), NULL, 10);
    json_t *details = json_pack("{s:s, s:I}", "region", region,
                                "signals_collected", (json_int_t)signals);
    char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(details);
    rc = rn_audit_customer(ds, customer, ACTOR, W.disconnected, text);
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
    rc = rn_audit_msp(ds, msp, ACTOR, W.disconnected, text);
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
             "%s (%s) was already disconnected for MSP organization "
             "%lld; nothing changed",
             P.display_name, op->region, (long long)op->msp_org_id);
  else
    snprintf(
        op->summary, sizeof op->summary,
        "disconnected %s (%s) for MSP organization %lld: "
        "credential zeroed and inactive, %lld asset(s) retired, "
        "%s written to %zu customer organization(s) "
        "and the MSP; signals and mappings kept",
        P.display_name, op->region, (long long)op->msp_org_id,
        (long long)json_integer_value(
            json_object_get(op->result, "assets_retired")),
        W.disconnected,
        json_array_size(json_object_get(op->result, "customers_notified")));
  op_finish(op);
}

static void disconnect_checked(op_t *op) {
  op_transaction(op, disconnect_body, disconnect_done);
}

static int run_disconnect(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  return op_start(ctx, state, job, disconnect_checked);
}

rn_job_def_t rk__job_disconnect = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "disconnect",
    .summary = "zero and deactivate the credential, retire its assets, tell "
               "every affected customer's audit trail",
    .params = msp_region_params,
    .run = run_disconnect,
    .command = "disconnect",
};

/* ----------------------------------------------------------- status */

static int status_body(op_t *op, rn_devsrc_t *ds) {
  char id[24];
  op_msp_text(op, id);
  const char *params[] = {id, P.source};
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
      " AND c.provider = $2), '[]'::json))",
      2, params, &res);
  if (rc < 0)
    return op_db_error(op, ds, rc);
  json_t *status = json_loads(host->db_value(res, 0, 0), 0, NULL);
  host->db_result_free(res);
  if (!status)
    return RN_EJSON;
  json_object_update(op->result, status);
  json_decref(status);
  if (!P.status_extra)
    return 0;
  /* What the source adds to each credential (its request budget). */
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(op->result, "credentials"), i, c) {
    rk_status_extra_t extra = {0};
    rc =
        P.status_extra(op->state, ds, op->msp_org_id,
                       json_string_value(json_object_get(c, "region")), &extra);
    json_t *more = extra.json ? json_loads(extra.json, 0, NULL) : NULL;
    host->free(extra.json);
    if (rc < 0) {
      json_decref(more);
      if (!op->error[0])
        snprintf(op->error, sizeof op->error, "%s", rn_devsrc_error(ds));
      return rc;
    }
    if (json_is_object(more))
      json_object_update(c, more);
    json_decref(more);
    if (extra.line[0])
      json_object_set_new(c, "_line", json_string(extra.line));
  }
  return 0;
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
      op->summary, sizeof op->summary, "%s for MSP organization %lld%s",
      P.display_name, (long long)op->msp_org_id,
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
    /* The source's line goes to the text only. */
    json_t *line = json_object_get(c, "_line");
    if (line && used < sizeof op->summary - 1)
      used += (size_t)snprintf(op->summary + used, sizeof op->summary - used,
                               "\n    %s", json_string_value(line));
    json_object_del(c, "_line");
  }
  op_finish(op);
}

static void status_checked(op_t *op) {
  op_transaction(op, status_body, status_done);
}

static int run_status(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  return op_start(ctx, state, job, status_checked);
}

rn_job_def_t rk__job_status = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "status",
    .summary = "connection, region, mapping counts and the last runs",
    .params = status_params,
    .run = run_status,
    .command = "status",
};
