/* credentials.c - sealed RMM credentials, one per (MSP, provider, region).
 * Every query here is keyed by the MSP organization. */
#include <stdlib.h>
#include <string.h>

#include "devsrc_internal.h"

void rn_credential_release(const rn_host_t *host, rn_credential_t *cred) {
  if (cred->sealed_secret) {
    /* Sealed text is not the secret, but it need not linger either. */
    memset(cred->sealed_secret, 0, strlen(cred->sealed_secret));
    host->free(cred->sealed_secret);
  }
  cred->sealed_secret = NULL;
}

static int key_version_of(const char *sealed) {
  /* Sealed values read "v<version>:..." (see the host's secret_seal). */
  if (!sealed || sealed[0] != 'v')
    return -1;
  char *end;
  long v = strtol(sealed + 1, &end, 10);
  return *end == ':' && v > 0 && v < 1000000 ? (int)v : -1;
}

int rn_credential_save(rn_devsrc_t *ds, rn_msp_org_t msp, const char *provider,
                       const char *region, const char *client_id,
                       const char *sealed_secret, int64_t *credential_id) {
  int version = key_version_of(sealed_secret);
  if (version < 0)
    return ds_fail(ds, RN_EINVAL, "save credential: the secret is not sealed");
  if (!client_id || !*client_id)
    return ds_fail(ds, RN_EINVAL, "save credential: empty client id");
  char msp_id[24], ver[24], now[32];
  ds_int_text(msp.id, msp_id);
  ds_int_text(version, ver);
  ds_epoch_text(ds->now_ms, now);
  const char *params[] = {msp_id, provider, region, client_id, sealed_secret,
                          ver, now};
  rn_db_result_t *res;
  int rc = ds_exec(
      ds, "save credential",
      "INSERT INTO integration_credential AS c (msp_org_id, provider, region,"
      " client_id, sealed_secret, key_version, is_active, connected_at,"
      " disconnected_at, updated_at)"
      " VALUES ($1, $2, $3, $4, $5, $6, true, to_timestamp($7), NULL,"
      " to_timestamp($7))"
      " ON CONFLICT (msp_org_id, provider, region) DO UPDATE SET"
      " client_id = EXCLUDED.client_id, sealed_secret = EXCLUDED.sealed_secret,"
      " key_version = EXCLUDED.key_version, is_active = true,"
      " connected_at = EXCLUDED.connected_at, disconnected_at = NULL,"
      " updated_at = EXCLUDED.updated_at"
      " RETURNING id",
      7, params, &res);
  if (rc < 0)
    return rc;
  if (credential_id)
    *credential_id = strtoll(ds_first(ds, res), NULL, 10);
  ds_free_result(ds, res);
  return 0;
}

int rn_credential_get(rn_devsrc_t *ds, rn_msp_org_t msp, const char *provider,
                      const char *region, rn_credential_t *out) {
  memset(out, 0, sizeof *out);
  char msp_id[24];
  ds_int_text(msp.id, msp_id);
  const char *params[] = {msp_id, provider, region};
  rn_db_result_t *res;
  int rc = ds_exec(ds, "read credential",
                   "SELECT id, client_id, sealed_secret, is_active,"
                   " first_evidence_synced_at IS NOT NULL"
                   " FROM integration_credential"
                   " WHERE msp_org_id = $1 AND provider = $2 AND region = $3",
                   3, params, &res);
  if (rc < 0)
    return rc;
  const rn_host_t *h = ds->host;
  if (h->db_rows(res) == 0) {
    ds_free_result(ds, res);
    return ds_fail(ds, RN_ENOENT,
                   "no %s credential for MSP organization %lld in region %s",
                   provider, (long long)msp.id, region);
  }
  out->id = strtoll(h->db_value(res, 0, 0), NULL, 10);
  out->msp = msp;
  snprintf(out->provider, sizeof out->provider, "%s", provider);
  snprintf(out->region, sizeof out->region, "%s", region);
  const char *client = h->db_value(res, 0, 1);
  snprintf(out->client_id, sizeof out->client_id, "%s", client ? client : "");
  const char *sealed = h->db_value(res, 0, 2);
  out->sealed_secret = sealed ? h->strdup(sealed) : NULL;
  out->is_active = strcmp(h->db_value(res, 0, 3), "t") == 0;
  out->first_evidence_synced = strcmp(h->db_value(res, 0, 4), "t") == 0;
  ds_free_result(ds, res);
  if (sealed && !out->sealed_secret)
    return ds_fail(ds, RN_ENOMEM, "read credential: out of memory");
  return 0;
}

int rn_credential_deactivate(rn_devsrc_t *ds, rn_msp_org_t msp,
                             const char *provider, const char *region) {
  char msp_id[24], now[32];
  ds_int_text(msp.id, msp_id);
  ds_epoch_text(ds->now_ms, now);
  const char *params[] = {msp_id, provider, region, now};
  rn_db_result_t *res;
  /* Overwrite before NULLing is pointless in PostgreSQL (MVCC keeps the old
   * tuple until vacuum); NULL is what the schema checks. Clearing
   * first_evidence_synced_at makes the first sweep after the next connect a
   * dry run again, as after the first connect. */
  int rc = ds_exec(
      ds, "deactivate credential",
      "UPDATE integration_credential c SET sealed_secret = NULL,"
      " key_version = NULL, is_active = false,"
      " disconnected_at = COALESCE(c.disconnected_at, to_timestamp($4)),"
      " first_evidence_synced_at = NULL, updated_at = to_timestamp($4)"
      " FROM integration_credential old WHERE old.id = c.id"
      " AND c.msp_org_id = $1 AND c.provider = $2 AND c.region = $3"
      " RETURNING to_char(old.first_evidence_synced_at AT TIME ZONE 'UTC',"
      "  'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
      4, params, &res);
  if (rc < 0)
    return rc;
  const char *was = ds_first(ds, res);
  if (!was) {
    ds_free_result(ds, res);
    return 0; /* no credential, or never swept: nothing to clear */
  }
  ds_buf_t details = {0};
  ds_buf_printf(&details,
                "{\"provider\":\"%s\",\"region\":\"%s\","
                "\"previous_first_evidence_synced_at\":\"%s\","
                "\"reason\":\"credential deactivated: the first evidence "
                "sweep after the next connect is a dry run\"}",
                provider, region, was);
  ds_free_result(ds, res);
  if (details.failed) {
    ds_buf_free(&details);
    return ds_fail(ds, RN_ENOMEM, "deactivate credential: out of memory");
  }
  rc = rn_audit_msp(ds, msp, "regentra-runner", "FIRST_EVIDENCE_SYNC_CLEARED",
                    details.data);
  ds_buf_free(&details);
  return rc;
}

int rn_credential_mark_first_evidence(rn_devsrc_t *ds, rn_msp_org_t msp,
                                      const char *provider,
                                      const char *region) {
  char msp_id[24], now[32];
  ds_int_text(msp.id, msp_id);
  ds_epoch_text(ds->now_ms, now);
  const char *params[] = {msp_id, provider, region, now};
  return ds_exec(ds, "stamp first evidence sync",
                 "UPDATE integration_credential"
                 " SET first_evidence_synced_at = to_timestamp($4)"
                 " WHERE msp_org_id = $1 AND provider = $2 AND region = $3"
                 " AND first_evidence_synced_at IS NULL",
                 4, params, NULL);
}

int rn_credential_record_run(rn_devsrc_t *ds, rn_msp_org_t msp,
                             const char *provider, const char *region,
                             const char *what, const char *details_json) {
  const char *sql;
  if (strcmp(what, "discovery") == 0)
    sql = "UPDATE integration_credential SET last_discovery_at ="
          " to_timestamp($4), last_discovery = $5::jsonb"
          " WHERE msp_org_id = $1 AND provider = $2 AND region = $3";
  else if (strcmp(what, "asset_sync") == 0)
    sql = "UPDATE integration_credential SET last_asset_sync_at ="
          " to_timestamp($4), last_asset_sync = $5::jsonb"
          " WHERE msp_org_id = $1 AND provider = $2 AND region = $3";
  else if (strcmp(what, "evidence_sweep") == 0)
    sql = "UPDATE integration_credential SET last_evidence_sweep_at ="
          " to_timestamp($4), last_evidence_sweep = $5::jsonb"
          " WHERE msp_org_id = $1 AND provider = $2 AND region = $3";
  else
    return ds_fail(ds, RN_EINVAL, "record run: unknown kind \"%s\"", what);
  char msp_id[24], now[32];
  ds_int_text(msp.id, msp_id);
  ds_epoch_text(ds->now_ms, now);
  const char *params[] = {msp_id, provider, region, now,
                          details_json ? details_json : "{}"};
  return ds_exec(ds, "record run", sql, 5, params, NULL);
}
