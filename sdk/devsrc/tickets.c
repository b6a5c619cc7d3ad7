/* tickets.c - the bridge from signals to the MSP's PSA queue: one open
 * ticket per (customer, signal), updated rather than duplicated, resolved
 * by a later PASS, silent during the first sweep after connect. A ticket
 * is a FINDING (the measurement failed) or NO_DATA (nothing to measure),
 * titled and described apart. */
#include <stdlib.h>
#include <string.h>

#include "devsrc_internal.h"

int rn_ticket_bridge(rn_devsrc_t *ds, rn_msp_org_t msp, rn_company_t company,
                     rn_customer_org_t customer, const char *signal_key,
                     rn_signal_status_t status, const rn_ticket_text_t *text,
                     bool first_sync_done, rn_ticket_action_t *action,
                     int64_t *ticket_id) {
  *action = RN_TICKET_NONE;
  if (ticket_id)
    *ticket_id = 0;
  if (!first_sync_done) {
    *action = RN_TICKET_SUPPRESSED;
    return 0;
  }
  char msp_id[24], company_id[24], customer_id[24], now[32];
  ds_int_text(msp.id, msp_id);
  ds_int_text(company.id, company_id);
  ds_int_text(customer.id, customer_id);
  ds_epoch_text(ds->now_ms, now);
  rn_db_result_t *res;
  int rc;
  const rn_host_t *h = ds->host;
  if (status == RN_SIGNAL_PASS) {
    const char *params[] = {customer_id, signal_key, now, msp_id};
    rc = ds_exec(ds, "resolve ticket",
                 "UPDATE psa_ticket SET status = 'RESOLVED',"
                 " resolved_at = to_timestamp($3), last_seen_at ="
                 " to_timestamp($3), resolution_note = 'Resolved "
                 "automatically: the ' || $2 || ' signal passed on ' ||"
                 " to_char(to_timestamp($3) AT TIME ZONE 'UTC',"
                 " 'YYYY-MM-DD HH24:MI') || ' UTC.'"
                 " WHERE customer_org_id = $1 AND signal_key = $2"
                 " AND msp_org_id = $4 AND status = 'OPEN' RETURNING id",
                 4, params, &res);
    if (rc < 0)
      return rc;
    if (h->db_rows(res) > 0) {
      *action = RN_TICKET_RESOLVED;
      if (ticket_id)
        *ticket_id = strtoll(h->db_value(res, 0, 0), NULL, 10);
    }
    ds_free_result(ds, res);
    return 0;
  }
  const char *kind =
      text && text->kind == RN_TICKET_NO_DATA ? "NO_DATA" : "FINDING";
  /* A finding and missing data are different work for the MSP: an open
   * ticket of the other kind is resolved, never retitled into this one. */
  const char *supersede_params[] = {customer_id, signal_key, now, msp_id,
                                    kind};
  rc = ds_exec(ds, "resolve superseded ticket",
               "UPDATE psa_ticket SET status = 'RESOLVED',"
               " resolved_at = to_timestamp($3), last_seen_at ="
               " to_timestamp($3), resolution_note = 'Resolved "
               "automatically: superseded on ' ||"
               " to_char(to_timestamp($3) AT TIME ZONE 'UTC',"
               " 'YYYY-MM-DD HH24:MI') || ' UTC by a ' || CASE $5 WHEN"
               " 'NO_DATA' THEN 'missing-data' ELSE 'finding' END ||"
               " ' ticket for the ' || $2 || ' signal.'"
               " WHERE customer_org_id = $1 AND signal_key = $2"
               " AND msp_org_id = $4 AND status = 'OPEN' AND kind <> $5",
               5, supersede_params, NULL);
  if (rc < 0)
    return rc;
  const char *priority = status == RN_SIGNAL_FAIL ? "HIGH" : "MEDIUM";
  const char *params[] = {msp_id,
                          company_id,
                          customer_id,
                          signal_key,
                          priority,
                          now,
                          rn_signal_status_name(status),
                          kind,
                          text ? text->title : NULL,
                          text ? text->description : NULL};
  /* The partial unique index (one OPEN per customer and key) makes this an
   * upsert; a repeat raises priority to HIGH when a WARNING became a FAIL. */
  rc = ds_exec(
      ds, "open or update ticket",
      "INSERT INTO psa_ticket AS t (msp_org_id, portal_company_id,"
      " customer_org_id, signal_key, priority, status, kind, title,"
      " description, occurrences, first_seen_at, last_seen_at)"
      " VALUES ($1, $2, $3, $4, $5, 'OPEN', $8,"
      " COALESCE($9, 'Compliance finding: ' || $4 || ' is ' || $7),"
      " COALESCE($10, 'The ' || $4 || ' signal is ' || $7 || ' for this"
      " customer (collected ' || to_char(to_timestamp($6) AT TIME ZONE"
      " 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC).'),"
      " 1, to_timestamp($6), to_timestamp($6))"
      " ON CONFLICT (customer_org_id, signal_key) WHERE status = 'OPEN'"
      " DO UPDATE SET occurrences = t.occurrences + 1,"
      " last_seen_at = EXCLUDED.last_seen_at,"
      " priority = CASE WHEN EXCLUDED.priority = 'HIGH' THEN 'HIGH'"
      "  ELSE t.priority END, title = EXCLUDED.title,"
      " description = EXCLUDED.description"
      " RETURNING id, xmax = 0",
      10, params, &res);
  if (rc < 0)
    return rc;
  *action = strcmp(h->db_value(res, 0, 1), "t") == 0 ? RN_TICKET_OPENED
                                                      : RN_TICKET_UPDATED;
  if (ticket_id)
    *ticket_id = strtoll(h->db_value(res, 0, 0), NULL, 10);
  ds_free_result(ds, res);
  return 0;
}
