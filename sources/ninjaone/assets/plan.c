/* plan.c - what one run covers: the active NinjaOne credentials and their
 * MAPPED mappings, grouped by MSP organization, credential and company.
 * Runs inside a transaction on a worker thread; the loop waits for it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"
#include "regentra/kit/card.h"

static int fail(run_t *run, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(run_t *run, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(run->error, sizeof run->error, fmt, ap);
  va_end(ap);
  return status;
}

static int query(run_t *run, rn_devsrc_t *ds, const char *sql, int n,
                 const char *const *params, rn_db_result_t **res) {
  int rc = host->db_tx_exec(ds->tx, sql, n, params, res);
  if (rc < 0)
    return fail(run, rc, "database: %s", host->db_tx_error(ds->tx));
  return 0;
}

static int64_t int_at(rn_db_result_t *res, int row, int col) {
  const char *v = host->db_value(res, row, col);
  return v ? strtoll(v, NULL, 10) : 0;
}

/* The manual "Sync With NinjaOne" of one mapping: its MSP and region. */
static int resolve_mapping(run_t *run, rn_devsrc_t *ds) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)run->param_mapping);
  const char *params[] = {id};
  rn_db_result_t *res;
  int rc = query(run, ds,
                 "SELECT msp_org_id, region, state FROM integration_org_mapping"
                 " WHERE id = $1 AND provider = 'ninjaone'",
                 1, params, &res);
  if (rc < 0)
    return rc;
  if (host->db_rows(res) == 0) {
    host->db_result_free(res);
    return fail(run, RN_ENOENT, "there is no NinjaOne mapping %lld",
                (long long)run->param_mapping);
  }
  int64_t msp_org_id = int_at(res, 0, 0);
  nj_region_t region;
  bool region_ok = nj_region_parse(host->db_value(res, 0, 1), &region) == 0;
  char state[16];
  snprintf(state, sizeof state, "%s", host->db_value(res, 0, 2));
  host->db_result_free(res);
  if (run->param_msp && run->param_msp != msp_org_id)
    return fail(run, RN_ETENANT,
                "NinjaOne mapping %lld does not belong to MSP organization "
                "%lld",
                (long long)run->param_mapping, (long long)run->param_msp);
  if (!region_ok || (run->has_region && region != run->region))
    return fail(run, RN_EINVAL,
                "NinjaOne mapping %lld is not in region %s",
                (long long)run->param_mapping,
                run->has_region ? nj_region_name(run->region) : "?");
  if (strcmp(state, "MAPPED") != 0)
    return fail(run, RN_ESTATE,
                "NinjaOne mapping %lld is %s, not MAPPED: bind it to a "
                "company first ('regentra-runner ninjaone map')",
                (long long)run->param_mapping, state);
  run->param_msp = msp_org_id;
  run->region = region;
  run->has_region = true;
  return 0;
}

static int check_msp(run_t *run, rn_devsrc_t *ds) {
  int rc = rk_check_msp(ds, run->param_msp);
  return rc < 0 ? fail(run, rc, "%s", rn_devsrc_error(ds)) : 0;
}

/* Credential of an MSP by region, among those loaded. */
static cred_t *find_cred(run_t *run, int64_t msp_org_id, const char *region) {
  nj_region_t r;
  if (nj_region_parse(region, &r) < 0)
    return NULL;
  for (size_t i = 0; i < run->n_creds; i++)
    if (run->creds[i].msp->msp_org_id == msp_org_id &&
        run->creds[i].region == r)
      return &run->creds[i];
  return NULL;
}

static int load_credentials(run_t *run, rn_devsrc_t *ds, const char *msp_id,
                            const char *region) {
  const char *params[] = {msp_id, region};
  rn_db_result_t *res;
  int rc = query(
      run, ds,
      "SELECT c.msp_org_id, c.region FROM integration_credential c"
      " JOIN organization o ON o.id = c.msp_org_id AND o.kind = 'MSP'"
      " WHERE c.provider = 'ninjaone' AND c.is_active"
      " AND ($1 = '0' OR c.msp_org_id = $1::bigint)"
      " AND ($2 = '' OR c.region = $2) ORDER BY c.msp_org_id, c.region",
      2, params, &res);
  if (rc < 0)
    return rc;
  size_t rows = (size_t)host->db_rows(res);
  run->creds = host->calloc(rows ? rows : 1, sizeof *run->creds);
  run->msps = host->calloc(rows ? rows : 1, sizeof *run->msps);
  run->cred_refs = host->calloc(rows ? rows : 1, sizeof *run->cred_refs);
  if (!run->creds || !run->msps || !run->cred_refs) {
    host->db_result_free(res);
    return fail(run, RN_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < rows; i++) {
    int64_t msp_org_id = int_at(res, (int)i, 0);
    msp_t *msp = run->n_msps ? &run->msps[run->n_msps - 1] : NULL;
    if (!msp || msp->msp_org_id != msp_org_id) {
      msp = &run->msps[run->n_msps++];
      msp->run = run;
      msp->msp_org_id = msp_org_id;
      msp->creds = &run->cred_refs[i];
    }
    cred_t *cred = &run->creds[run->n_creds++];
    cred->msp = msp;
    msp->creds[msp->n_creds++] = cred;
    const char *name = host->db_value(res, (int)i, 1);
    if (nj_region_parse(name, &cred->region) < 0) {
      cred->status = RN_ECONFIG;
      snprintf(cred->error, sizeof cred->error,
               "the saved credential names an unknown region \"%s\"", name);
    }
  }
  host->db_result_free(res);
  /* Each lookup by the MSP that owns the credential. */
  for (size_t i = 0; i < run->n_creds; i++) {
    cred_t *cred = &run->creds[i];
    if (cred->status < 0)
      continue;
    rn_credential_t c;
    rc = rn_credential_get(ds, RN_MSP_ORG(cred->msp->msp_org_id), PROVIDER,
                           nj_region_name(cred->region), &c);
    if (rc < 0)
      return fail(run, rc, "%s", rn_devsrc_error(ds));
    snprintf(cred->client_id, sizeof cred->client_id, "%s", c.client_id);
    cred->sealed = c.sealed_secret;
    c.sealed_secret = NULL;
    rn_credential_release(host, &c);
  }
  return 0;
}

static int load_mappings(run_t *run, rn_devsrc_t *ds, const char *msp_id,
                         const char *region, const char *mapping_id) {
  const char *params[] = {msp_id, region, mapping_id};
  rn_db_result_t *res;
  /* company_mappings counts every MAPPED mapping of an active credential
   * bound to the same company, in any region: retiring a company's devices
   * needs all of them in one pull. */
  int rc = query(
      run, ds,
      "SELECT m.id, m.msp_org_id, m.region, m.external_org_id,"
      " m.portal_company_id, (SELECT count(*) FROM integration_org_mapping o"
      "  JOIN integration_credential oc ON oc.msp_org_id = o.msp_org_id"
      "  AND oc.provider = o.provider AND oc.region = o.region"
      "  AND oc.is_active WHERE o.msp_org_id = m.msp_org_id"
      "  AND o.provider = m.provider AND o.state = 'MAPPED'"
      "  AND o.portal_company_id = m.portal_company_id)"
      " FROM integration_org_mapping m"
      " JOIN integration_credential c ON c.msp_org_id = m.msp_org_id"
      " AND c.provider = m.provider AND c.region = m.region AND c.is_active"
      " WHERE m.provider = 'ninjaone' AND m.state = 'MAPPED'"
      " AND ($1 = '0' OR m.msp_org_id = $1::bigint)"
      " AND ($2 = '' OR m.region = $2) AND ($3 = '0' OR m.id = $3::bigint)"
      " ORDER BY m.msp_org_id, m.region, m.portal_company_id, m.id",
      3, params, &res);
  if (rc < 0)
    return rc;
  size_t rows = (size_t)host->db_rows(res);
  run->mappings = host->calloc(rows ? rows : 1, sizeof *run->mappings);
  run->units = host->calloc(rows ? rows : 1, sizeof *run->units);
  run->map_refs = host->calloc(rows ? rows : 1, sizeof *run->map_refs);
  run->unit_refs = host->calloc(rows ? rows : 1, sizeof *run->unit_refs);
  if (!run->mappings || !run->units || !run->map_refs || !run->unit_refs) {
    host->db_result_free(res);
    return fail(run, RN_ENOMEM, "out of memory");
  }
  cred_t *prev_cred = NULL;
  for (size_t i = 0; i < rows; i++) {
    int r = (int)i;
    int64_t msp_org_id = int_at(res, r, 1);
    const char *row_region = host->db_value(res, r, 2);
    /* Both lists share one order: the previous row's credential is the
     * likely one, a search only when the credential changes. */
    nj_region_t rg;
    cred_t *cred = prev_cred && prev_cred->msp->msp_org_id == msp_org_id &&
                           nj_region_parse(row_region, &rg) == 0 &&
                           rg == prev_cred->region
                       ? prev_cred
                       : find_cred(run, msp_org_id, row_region);
    if (!cred)
      continue; /* not among this run's credentials */
    mapping_t *m = &run->mappings[run->n_mappings];
    m->id = int_at(res, r, 0);
    snprintf(m->external_org_id, sizeof m->external_org_id, "%s",
             host->db_value(res, r, 3));
    m->company_id = int_at(res, r, 4);
    m->company_mappings = int_at(res, r, 5);
    m->cred = cred;
    /* The id goes into the device filter: digits only, nothing else. */
    char *end = NULL;
    m->org_id = strtoll(m->external_org_id, &end, 10);
    if (!m->external_org_id[0] || *end ||
        strspn(m->external_org_id, "0123456789") !=
            strlen(m->external_org_id)) {
      m->status = RN_EINVAL;
      snprintf(m->error, sizeof m->error,
               "the external organization id is not a NinjaOne id");
    }
    unit_t *u = run->n_units ? &run->units[run->n_units - 1] : NULL;
    if (!u || u->cred != cred || u->company_id != m->company_id) {
      u = &run->units[run->n_units++];
      u->cred = cred;
      u->company_id = m->company_id;
      u->mappings = &run->map_refs[run->n_mappings];
      if (cred != prev_cred)
        cred->units = &run->unit_refs[run->n_units - 1];
      prev_cred = cred;
      cred->units[cred->n_units++] = u;
    }
    u->mappings[u->count++] = m;
    m->unit = u;
    run->n_mappings++;
  }
  host->db_result_free(res);
  for (size_t i = 0; i < run->n_units; i++) {
    unit_t *u = &run->units[i];
    u->covers_company = (int64_t)u->count == u->mappings[0]->company_mappings;
  }
  return 0;
}

int plan_load(run_t *run, rn_devsrc_t *ds) {
  int rc;
  if (run->param_mapping && (rc = resolve_mapping(run, ds)) < 0)
    return rc;
  if (run->param_msp && (rc = check_msp(run, ds)) < 0)
    return rc;
  char msp_id[24], mapping_id[24];
  snprintf(msp_id, sizeof msp_id, "%lld", (long long)run->param_msp);
  snprintf(mapping_id, sizeof mapping_id, "%lld",
           (long long)run->param_mapping);
  const char *region = run->has_region ? nj_region_name(run->region) : "";
  if ((rc = load_credentials(run, ds, msp_id, region)) < 0)
    return rc;
  if (run->n_creds == 0 && run->param_msp)
    return fail(run, run->param_mapping ? RN_ESTATE : RN_ENOENT,
                "MSP organization %lld has no connected NinjaOne credential"
                "%s%s: run 'regentra-runner ninjaone connect' first",
                (long long)run->param_msp,
                run->has_region ? " in region " : "", region);
  /* Every credential of the run sorts its units together: the ORDER BY
   * groups mappings by MSP and region, as the credentials are. */
  return load_mappings(run, ds, msp_id, region, mapping_id);
}

void plan_free(run_t *run) {
  for (size_t i = 0; i < run->n_mappings; i++)
    devlist_free(&run->mappings[i].devices);
  for (size_t i = 0; i < run->n_creds; i++) {
    host->free(run->creds[i].sealed);
    free(run->creds[i].run_text);
    if (run->creds[i].client)
      nj_client_free(run->creds[i].client);
  }
  for (size_t i = 0; i < run->n_msps; i++) {
    json_decref(run->msps[i].details);
    free(run->msps[i].audit_text);
  }
  host->free(run->msps);
  host->free(run->creds);
  host->free(run->units);
  host->free(run->mappings);
  host->free(run->cred_refs);
  host->free(run->unit_refs);
  host->free(run->map_refs);
  host->free(run->queue);
}
