/* audit.c - the append-only audit log of an organization. The two entry
 * points differ only in the type of organization they accept, so that a
 * customer's trail never receives an MSP row by mistake, or the reverse. */
#include "devsrc_internal.h"

/* The row is written only if the organization has the expected kind. */
static int audit_write(rn_devsrc_t *ds, int64_t org_id, const char *kind,
                       const char *actor, const char *event,
                       const char *details_json) {
  char org[24], now[32];
  ds_int_text(org_id, org);
  ds_epoch_text(ds->now_ms, now);
  const char *params[] = {org,   actor ? actor : "system",
                          event, details_json ? details_json : "{}",
                          now,   kind};
  rn_db_result_t *res;
  int rc = ds_exec(ds, "write audit log",
                   "INSERT INTO audit_log (organization_id, actor, event,"
                   " details, created_at)"
                   " SELECT id, $2, $3, $4::jsonb, to_timestamp($5)"
                   " FROM organization WHERE id = $1 AND kind = $6",
                   6, params, &res);
  if (rc < 0)
    return rc;
  int64_t written = ds->host->db_affected(res);
  ds_free_result(ds, res);
  if (written != 1)
    return ds_fail(ds, RN_ETENANT,
                   "audit %s: organization %lld is not an %s organization",
                   event, (long long)org_id, kind);
  return 0;
}

int rn_audit_msp(rn_devsrc_t *ds, rn_msp_org_t msp, const char *actor,
                 const char *event, const char *details_json) {
  return audit_write(ds, msp.id, "MSP", actor, event, details_json);
}

int rn_audit_customer(rn_devsrc_t *ds, rn_customer_org_t customer,
                      const char *actor, const char *event,
                      const char *details_json) {
  return audit_write(ds, customer.id, "CUSTOMER", actor, event,
                     details_json);
}
