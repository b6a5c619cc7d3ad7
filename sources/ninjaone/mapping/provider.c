/* provider.c - NinjaOne on the integration card (regentra/kit/card.h): its
 * words, authenticate and list organizations on the NinjaOne client, and
 * the request budget that `status` shows per credential. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping.h"
#include "ninjaone/explain.h"

static void client_release(void *client) {
  nj_client_free(client);
}

static void authenticated(nj_client_t *client, int status, const char *message,
                          void *data) {
  rk_session_t *s = data;
  if (status >= 0) {
    /* We ask for monitoring only; report anything wider NinjaOne grants. */
    const char *scope = nj_client_granted_scope(client);
    rk_session_set_scope(
        s, scope,
        scope && (strstr(scope, "management") || strstr(scope, "control")));
  }
  rk_session_done(s, status, message);
}

static int authenticate(rk_session_t *s) {
  const rk_credential_t *cred = rk_session_credential(s);
  mapping_state_t *state = rk_session_state(s);
  nj_region_t region;
  if (nj_region_parse(cred->region, &region) < 0)
    return RN_EINVAL;
  nj_client_opts_t opts = {
      .client_id = cred->client_id,
      .client_secret = cred->secret,
      .client_secret_len = cred->secret_len,
      .max_orgs = state->max_orgs,
  };
  nj_connection_apply(&state->connection, region, &opts);
  nj_client_t *client;
  char error[1024];
  /* The client keeps its own copy of the secret. */
  int rc = nj_client_new(host, rk_session_ctx(s), &opts, &client, error,
                         sizeof error);
  if (rc < 0) {
    rk_session_set_error(s, error);
    return rc;
  }
  rk_session_set_data(s, client, client_release);
  rk_session_set_host(s, nj_client_base_url(client));
  return nj_client_authenticate(client, authenticated, s);
}

static int org_page(const nj_page_t *page, void *data) {
  rk_session_t *s = data;
  for (size_t i = 0; i < page->count; i++) {
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)page->orgs[i].id);
    int rc = rk_session_add_org(s, id, page->orgs[i].name,
                                page->orgs[i].description);
    if (rc < 0)
      return rc;
  }
  rk_session_progress(s, page->page);
  return 0;
}

static void orgs_walked(nj_walk_t *walk, const nj_walk_result_t *result,
                        void *data) {
  (void)walk;
  rk_session_t *s = data;
  rk_session_set_walk(s, result->truncated, result->pages);
  rk_session_done(s, result->status, result->message);
}

static int list_orgs(rk_session_t *s) {
  nj_walk_opts_t opts = {.endpoint = NJ_EP_ORGANIZATIONS};
  return nj_walk_start(rk_session_data(s), &opts, org_page, orgs_walked, s,
                       NULL);
}

static bool org_id_valid(const char *id) {
  size_t n = strspn(id, "0123456789");
  return n > 0 && n <= 18 && !id[n];
}

/* Whether the shipped cadences fit the credential's request budget. */
static int status_budget(void *state, rn_devsrc_t *ds, int64_t msp_org_id,
                         const char *region, rk_status_extra_t *out) {
  cred_plan_t *creds;
  size_t ncreds;
  char error[512];
  int rc = plan_query(ds->tx, msp_org_id, &creds, &ncreds, error, sizeof error);
  if (rc < 0)
    return rn_devsrc_fail(ds, rc, "%s", error);
  for (size_t k = 0; k < ncreds && rc == 0; k++) {
    if (strcmp(creds[k].region, region) != 0)
      continue;
    json_t *b = plan_fit_json(state, &creds[k], &plan_shipped_cadence);
    json_t *extra = json_pack("{s:o}", "budget", b);
    char *text = json_dumps(extra, JSON_COMPACT);
    json_decref(extra);
    out->json = text ? host->strdup(text) : NULL;
    free(text);
    if (!out->json)
      rc = RN_ENOMEM;
    snprintf(
        out->line, sizeof out->line,
        json_is_true(json_object_get(b, "fits"))
            ? "request budget: the shipped cadences fit (%lld of %lld"
              " usable in %lld h; up to %lld promoted customers)"
            : "warning: the shipped cadences do NOT fit the request"
              " budget: %lld requests in %lld usable between two syncs"
              " (%lld h); at most %lld promoted customers fit (see"
              " 'regentra-runner ninjaone plan')",
        (long long)json_integer_value(json_object_get(b, "window_requests")),
        (long long)json_integer_value(json_object_get(b, "window_usable")),
        (long long)json_integer_value(json_object_get(b, "window_hours")),
        (long long)json_integer_value(
            json_object_get(b, "max_promoted_customers")));
  }
  host->free(creds);
  return rc;
}

static const rn_job_def_t *const own_jobs[] = {&job_plan, &job_check_config,
                                               NULL};

const rk_provider_t nj_card_provider = {
    .struct_size = sizeof(rk_provider_t),
    .source = NJ_SOURCE,
    .display_name = "NinjaOne",
    .regions = NJ_REGION_CHOICES,
    .region_help = "the NinjaOne region you sign in to",
    .client_id_help = "Administration > Apps > API > Client App IDs",
    .refresh_help = "walk /v2/organizations again before listing",
    .no_orgs_message =
        "the API client sees no organization: it was created at the system "
        "level but is not attached to any customer organization. In "
        "NinjaOne, edit the API client and confirm it is tenant-scoped or "
        "has organization assignments; the monitoring scope needs "
        "visibility on at least one customer organization",
    .no_orgs_hint = "in NinjaOne, edit the API client: make it tenant-scoped "
                    "or give it organization assignments, then run test "
                    "again",
    .scope_warning = "; warning: wider than the monitoring scope requested",
    .org_id_form = "digits",
    .org_id_valid = org_id_valid,
    .flags = RK_REPORTS_SCOPE,
    .authenticate = authenticate,
    .list_orgs = list_orgs,
    .explain = nj_explain_status,
    .status_extra = status_budget,
    .jobs = own_jobs,
};
