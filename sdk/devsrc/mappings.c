/* mappings.c - which external organization feeds which PortalCompany.
 * Keyed by (MSP, provider, region, external id) and never by credential, so
 * mappings survive disconnect and reconnect. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "devsrc_internal.h"

/* Names compare trimmed, case folded, with runs of white space as one
 * space. */
#define FOLDED(column) "lower(regexp_replace(btrim(" column "), '\\s+', ' ', 'g'))"

/* A company is suggested only when exactly one of the MSP's companies has
 * the same folded name: a guess between two would bind devices to the wrong
 * customer. Listings show every candidate of such an ambiguity instead. */
#define SUGGESTION                                                           \
  "(SELECT CASE WHEN count(*) = 1 THEN min(pc.id) END FROM portal_company pc" \
  " WHERE pc.msp_org_id = $1 AND " FOLDED("pc.name") " = " FOLDED("i.name") ")"

int rn_mappings_discovered(rn_devsrc_t *ds, rn_msp_org_t msp,
                           const char *provider, const char *region,
                           const rn_discovered_org_t *orgs, size_t count,
                           bool complete, rn_discovery_counts_t *counts) {
  memset(counts, 0, sizeof *counts);
  ds_array_t ids = {0}, names = {0};
  for (size_t i = 0; i < count; i++) {
    if (!orgs[i].external_id || !*orgs[i].external_id)
      return ds_fail(ds, RN_EINVAL, "discovered organization #%zu has no id",
                     i + 1);
    ds_array_add(&ids, orgs[i].external_id);
    ds_array_add(&names, orgs[i].name && *orgs[i].name ? orgs[i].name
                                                       : orgs[i].external_id);
  }
  const char *ids_text = ds_array_text(&ids);
  const char *names_text = ds_array_text(&names);
  char msp_id[24], now[32];
  ds_int_text(msp.id, msp_id);
  ds_epoch_text(ds->now_ms, now);
  int rc = RN_ENOMEM;
  rn_db_result_t *res = NULL;
  if (!ids_text || !names_text) {
    ds_fail(ds, rc, "discovery: out of memory");
    goto done;
  }
  const char *params[] = {msp_id, provider, region, ids_text, names_text, now};
  /* One statement: new rows PENDING with a suggestion; known rows get the
   * current name, lose any vanished flag, and a fresh suggestion while
   * still PENDING. xmax = 0 tells inserted rows apart. */
  rc = ds_exec(
      ds, "upsert discovered organizations",
      "WITH i AS (SELECT * FROM unnest($4::text[], $5::text[]) AS t(id, name)),"
      " prior AS (SELECT external_org_id, external_name, vanished_at"
      "   FROM integration_org_mapping"
      "   WHERE msp_org_id = $1 AND provider = $2 AND region = $3),"
      " up AS ("
      "  INSERT INTO integration_org_mapping AS m (msp_org_id, provider,"
      "   region, external_org_id, external_name, state, suggested_company_id,"
      "   first_seen_at, last_seen_at, updated_at)"
      "  SELECT $1, $2, $3, i.id, i.name, 'PENDING', " SUGGESTION ","
      "   to_timestamp($6), to_timestamp($6), to_timestamp($6) FROM i"
      "  ON CONFLICT (msp_org_id, provider, region, external_org_id)"
      "  DO UPDATE SET external_name = EXCLUDED.external_name,"
      "   vanished_at = NULL, last_seen_at = EXCLUDED.last_seen_at,"
      "   suggested_company_id = CASE WHEN m.state = 'PENDING'"
      "     THEN EXCLUDED.suggested_company_id ELSE m.suggested_company_id END,"
      "   updated_at = EXCLUDED.updated_at"
      "  RETURNING external_org_id, external_name, xmax = 0 AS inserted)"
      " SELECT count(*),"
      "  count(*) FILTER (WHERE up.inserted),"
      "  count(*) FILTER (WHERE NOT up.inserted"
      "    AND prior.external_name IS DISTINCT FROM up.external_name),"
      "  count(*) FILTER (WHERE prior.vanished_at IS NOT NULL)"
      " FROM up LEFT JOIN prior USING (external_org_id)",
      6, params, &res);
  if (rc < 0)
    goto done;
  const rn_host_t *h = ds->host;
  counts->seen = strtoll(h->db_value(res, 0, 0), NULL, 10);
  counts->added = strtoll(h->db_value(res, 0, 1), NULL, 10);
  counts->renamed = strtoll(h->db_value(res, 0, 2), NULL, 10);
  counts->reappeared = strtoll(h->db_value(res, 0, 3), NULL, 10);
  ds_free_result(ds, res);
  res = NULL;
  if (complete) {
    const char *vparams[] = {msp_id, provider, region, ids_text, now};
    rc = ds_exec(ds, "flag vanished organizations",
                 "UPDATE integration_org_mapping SET vanished_at ="
                 " to_timestamp($5), updated_at = to_timestamp($5)"
                 " WHERE msp_org_id = $1 AND provider = $2 AND region = $3"
                 " AND vanished_at IS NULL"
                 " AND external_org_id NOT IN (SELECT unnest($4::text[]))",
                 5, vparams, &res);
    if (rc < 0)
      goto done;
    counts->vanished = h->db_affected(res);
  }
  rc = 0;
done:
  ds_free_result(ds, res);
  ds_array_free(&ids);
  ds_array_free(&names);
  return rc;
}

typedef struct mapping_row_s {
  int64_t id;
  char state[16];
  char name[256];
  int64_t company_id; /* 0 = none */
} mapping_row_t;

/* Locks the mapping row for the action that follows. */
static int lock_mapping(rn_devsrc_t *ds, const char *msp_id,
                        const char *provider, const char *region,
                        const char *external_org_id, mapping_row_t *row) {
  const char *params[] = {msp_id, provider, region, external_org_id};
  rn_db_result_t *res;
  int rc = ds_exec(ds, "read mapping",
                   "SELECT id, state, external_name, portal_company_id"
                   " FROM integration_org_mapping WHERE msp_org_id = $1"
                   " AND provider = $2 AND region = $3"
                   " AND external_org_id = $4 FOR UPDATE",
                   4, params, &res);
  if (rc < 0)
    return rc;
  const rn_host_t *h = ds->host;
  if (h->db_rows(res) == 0) {
    ds_free_result(ds, res);
    return ds_fail(ds, RN_ENOENT,
                   "organization %s has not been discovered in region %s for "
                   "MSP organization %s; refresh discovery first",
                   external_org_id, region, msp_id);
  }
  row->id = strtoll(h->db_value(res, 0, 0), NULL, 10);
  snprintf(row->state, sizeof row->state, "%s", h->db_value(res, 0, 1));
  snprintf(row->name, sizeof row->name, "%s", h->db_value(res, 0, 2));
  const char *company = h->db_value(res, 0, 3);
  row->company_id = company ? strtoll(company, NULL, 10) : 0;
  ds_free_result(ds, res);
  return 0;
}

/* extra (borrowed, optional): more details to record. */
static int audit_action_with(rn_devsrc_t *ds, rn_msp_org_t msp,
                             const char *actor, const char *event,
                             const char *provider, const char *region,
                             const char *external_org_id,
                             const mapping_row_t *before, int64_t company_id,
                             json_t *extra) {
  json_t *details = json_pack("{s:s, s:s, s:s, s:I, s:s}", "provider",
                              provider, "region", region, "external_org_id",
                              external_org_id, "mapping_id",
                              (json_int_t)before->id, "previous_state",
                              before->state);
  if (details && company_id)
    json_object_set_new(details, "portal_company_id", json_integer(company_id));
  if (details && before->company_id)
    json_object_set_new(details, "previous_company_id",
                        json_integer(before->company_id));
  if (details && extra)
    json_object_update(details, extra);
  char *text = details ? json_dumps(details, JSON_COMPACT) : NULL;
  json_decref(details);
  int rc = text ? rn_audit_msp(ds, msp, actor, event, text)
                : ds_fail(ds, RN_ENOMEM, "audit: out of memory");
  free(text);
  return rc;
}

static int audit_action(rn_devsrc_t *ds, rn_msp_org_t msp, const char *actor,
                        const char *event, const char *provider,
                        const char *region, const char *external_org_id,
                        const mapping_row_t *before, int64_t company_id) {
  return audit_action_with(ds, msp, actor, event, provider, region,
                           external_org_id, before, company_id, NULL);
}

static int check_transition(rn_devsrc_t *ds, const mapping_row_t *row,
                            const char *external_org_id,
                            bool allow_from_ignored) {
  if (strcmp(row->state, "IGNORED") == 0 && !allow_from_ignored)
    return ds_fail(ds, RN_ESTATE,
                   "organization %s is IGNORED; say so explicitly to map it "
                   "again",
                   external_org_id);
  return 0;
}

static int bind(rn_devsrc_t *ds, const char *msp_id, int64_t mapping_id,
                int64_t company_id) {
  char mid[24], cid[24], now[32];
  ds_int_text(mapping_id, mid);
  ds_int_text(company_id, cid);
  ds_epoch_text(ds->now_ms, now);
  const char *params[] = {mid, cid, now, msp_id};
  return ds_exec(ds, "bind mapping",
                 "UPDATE integration_org_mapping SET state = 'MAPPED',"
                 " portal_company_id = $2, updated_at = to_timestamp($3)"
                 " WHERE id = $1 AND msp_org_id = $4",
                 4, params, NULL);
}

int rn_mapping_use_existing(rn_devsrc_t *ds, rn_msp_org_t msp,
                            const char *provider, const char *region,
                            const char *external_org_id, rn_company_t company,
                            bool allow_from_ignored, const char *actor) {
  char msp_id[24], cid[24];
  ds_int_text(msp.id, msp_id);
  ds_int_text(company.id, cid);
  mapping_row_t row;
  int rc = lock_mapping(ds, msp_id, provider, region, external_org_id, &row);
  if (rc < 0 || (rc = check_transition(ds, &row, external_org_id,
                                       allow_from_ignored)) < 0)
    return rc;
  /* The company must be one of this MSP's: never bind across tenants. */
  const char *params[] = {cid, msp_id};
  rn_db_result_t *res;
  rc = ds_exec(ds, "check company",
               "SELECT count(*) FROM portal_company WHERE id = $1"
               " AND msp_org_id = $2",
               2, params, &res);
  if (rc < 0)
    return rc;
  bool owned = strcmp(ds_first(ds, res), "1") == 0;
  ds_free_result(ds, res);
  if (!owned)
    return ds_fail(ds, RN_ETENANT,
                   "company %lld is not a company of MSP organization %lld",
                   (long long)company.id, (long long)msp.id);
  if ((rc = bind(ds, msp_id, row.id, company.id)) < 0)
    return rc;
  return audit_action(ds, msp, actor, "ORG_MAPPING_USE_EXISTING", provider,
                      region, external_org_id, &row, company.id);
}

int rn_mapping_create_new(rn_devsrc_t *ds, rn_msp_org_t msp,
                          const char *provider, const char *region,
                          const char *external_org_id, bool allow_from_ignored,
                          const char *actor, rn_company_t *company_out) {
  char msp_id[24];
  ds_int_text(msp.id, msp_id);
  mapping_row_t row;
  int rc = lock_mapping(ds, msp_id, provider, region, external_org_id, &row);
  if (rc < 0 || (rc = check_transition(ds, &row, external_org_id,
                                       allow_from_ignored)) < 0)
    return rc;
  /* Reuse a company of the same name (trimmed, case folded) rather than
   * create a duplicate; the oldest wins when several already share it. */
  const char *params[] = {msp_id, row.name};
  rn_db_result_t *res;
  rc = ds_exec(ds, "find or create company",
               "WITH existing AS (SELECT id FROM portal_company"
               "  WHERE msp_org_id = $1 AND lower(btrim(name)) ="
               "  lower(btrim($2)) ORDER BY id LIMIT 1),"
               " created AS (INSERT INTO portal_company (msp_org_id, name)"
               "  SELECT $1, btrim($2) WHERE NOT EXISTS (SELECT 1 FROM existing)"
               "  RETURNING id)"
               " SELECT id, false FROM existing UNION ALL"
               " SELECT id, true FROM created",
               2, params, &res);
  if (rc < 0)
    return rc;
  int64_t company_id = strtoll(ds->host->db_value(res, 0, 0), NULL, 10);
  bool created = strcmp(ds->host->db_value(res, 0, 1), "t") == 0;
  ds_free_result(ds, res);
  if ((rc = bind(ds, msp_id, row.id, company_id)) < 0)
    return rc;
  if (company_out)
    company_out->id = company_id;
  return audit_action(ds, msp, actor,
                      created ? "ORG_MAPPING_CREATE_NEW"
                              : "ORG_MAPPING_CREATE_NEW_REUSED",
                      provider, region, external_org_id, &row, company_id);
}

int rn_mapping_ignore(rn_devsrc_t *ds, rn_msp_org_t msp, const char *provider,
                      const char *region, const char *external_org_id,
                      const char *actor) {
  char msp_id[24], mid[24], now[32];
  ds_int_text(msp.id, msp_id);
  mapping_row_t row;
  int rc = lock_mapping(ds, msp_id, provider, region, external_org_id, &row);
  if (rc < 0)
    return rc;
  ds_int_text(row.id, mid);
  ds_epoch_text(ds->now_ms, now);
  const char *params[] = {mid, now, msp_id};
  rc = ds_exec(ds, "ignore mapping",
               "UPDATE integration_org_mapping SET state = 'IGNORED',"
               " portal_company_id = NULL, updated_at = to_timestamp($2)"
               " WHERE id = $1 AND msp_org_id = $3",
               3, params, NULL);
  if (rc < 0)
    return rc;
  int64_t retired = 0, restored = 0;
  rc = ds_assets_retire(ds, msp, provider, external_org_id,
                        "organization mapping set to IGNORED", &retired,
                        &restored);
  if (rc < 0)
    return rc;
  json_t *assets = json_pack("{s:I, s:I}", "assets_retired",
                             (json_int_t)retired, "assets_restored",
                             (json_int_t)restored);
  rc = audit_action_with(ds, msp, actor, "ORG_MAPPING_IGNORED", provider,
                         region, external_org_id, &row, 0, assets);
  json_decref(assets);
  return rc;
}
