/* signals.c - monitoring signals and their evidence rows, always on the
 * customer's compliance organization. */
#include <stdlib.h>
#include <string.h>

#include "devsrc_internal.h"

#define SIGNAL_LIFETIME_MS (7LL * 24 * 3600 * 1000)

const char *rn_signal_status_name(rn_signal_status_t status) {
  switch (status) {
  case RN_SIGNAL_PASS:
    return "PASS";
  case RN_SIGNAL_WARNING:
    return "WARNING";
  case RN_SIGNAL_FAIL:
    return "FAIL";
  }
  return NULL;
}

int rn_signal_write(rn_devsrc_t *ds, rn_customer_org_t customer,
                    const char *source, const char *signal_key,
                    rn_signal_status_t status, const char *metadata_json,
                    int64_t mapping_id, int64_t *signal_id) {
  const char *status_name = rn_signal_status_name(status);
  if (!status_name)
    return ds_fail(ds, RN_EINVAL, "signal %s: invalid status %d", signal_key,
                   (int)status);
  char why[512];
  int rc = rn_pii_check(metadata_json, why, sizeof why);
  if (rc < 0)
    return ds_fail(ds, rc, "signal %s refused by the PII guard: %s",
                   signal_key, why);
  char org[24], collected[32], expires[32], mapping[24];
  ds_int_text(customer.id, org);
  ds_epoch_text(ds->now_ms, collected);
  ds_epoch_text(ds->now_ms + SIGNAL_LIFETIME_MS, expires);
  ds_int_text(mapping_id, mapping);
  const char *params[] = {org,       source,  signal_key,
                          status_name, metadata_json, collected,
                          expires,   mapping_id ? mapping : NULL};
  rn_db_result_t *res;
  /* The signal and one evidence row per mapped control, in one statement;
   * the organization must be a customer (compliance) organization. */
  rc = ds_exec(
      ds, "write signal",
      "WITH s AS (INSERT INTO monitoring_signal (organization_id, source,"
      "  signal_key, status, metadata, collected_at, expires_at, mapping_id)"
      "  SELECT o.id, $2, $3, $4, $5::jsonb, to_timestamp($6),"
      "   to_timestamp($7), $8::bigint FROM organization o"
      "  WHERE o.id = $1 AND o.kind = 'CUSTOMER' RETURNING *),"
      " e AS (INSERT INTO evidence (organization_id, control_id, signal_id,"
      "  signal_key, status, collected_at, summary)"
      "  SELECT s.organization_id, sc.control_id, s.id, s.signal_key,"
      "   s.status, s.collected_at, s.signal_key || ' ' || s.status"
      "  FROM s JOIN signal_control sc USING (signal_key) RETURNING 1)"
      " SELECT s.id, (SELECT count(*) FROM e) FROM s",
      8, params, &res);
  if (rc < 0)
    return rc;
  const rn_host_t *h = ds->host;
  if (h->db_rows(res) != 1) {
    ds_free_result(ds, res);
    return ds_fail(ds, RN_ETENANT,
                   "signal %s: organization %lld is not a customer compliance "
                   "organization",
                   signal_key, (long long)customer.id);
  }
  if (signal_id)
    *signal_id = strtoll(h->db_value(res, 0, 0), NULL, 10);
  bool has_evidence = strtoll(h->db_value(res, 0, 1), NULL, 10) > 0;
  ds_free_result(ds, res);
  if (!has_evidence)
    return ds_fail(ds, RN_EINVAL,
                   "signal %s maps to no internal control; evidence would be "
                   "missing",
                   signal_key);
  return 0;
}
