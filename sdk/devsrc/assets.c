/* assets.c - devices of a source become Asset rows of a company, set-based:
 * the whole pull travels as arrays in one statement, retirement and
 * cross-source dedup are one statement each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devsrc_internal.h"

static const char *const default_priority[] = {"ninjaone", "level", "intune",
                                                "entra", NULL};

/* The pull as column arrays. MAC lists travel as comma-joined text per
 * device (PostgreSQL has no ragged arrays) and are split in SQL. */
typedef struct columns_s {
  ds_array_t external_id, name, hostname, serial, serial_norm, macs, os_name,
      device_class, manufacturer, model, last_seen, org;
} columns_t;

static void columns_free(columns_t *c) {
  ds_array_t *all[] = {&c->external_id, &c->name,    &c->hostname,
                       &c->serial,      &c->serial_norm, &c->macs,
                       &c->os_name,     &c->device_class, &c->manufacturer,
                       &c->model,       &c->last_seen, &c->org};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    ds_array_free(all[i]);
}

static const char *blank_to_null(const char *s) {
  return s && *s ? s : NULL;
}

static int fill_columns(rn_devsrc_t *ds, const rn_asset_t *assets,
                        size_t count, columns_t *c) {
  for (size_t i = 0; i < count; i++) {
    const rn_asset_t *a = &assets[i];
    if (!a->external_id || !*a->external_id)
      return ds_fail(ds, RN_EINVAL, "asset #%zu has no external id", i + 1);
    char serial[128], mac[18], seen[32];
    ds_buf_t macs = {0};
    for (size_t k = 0; a->mac_addresses && a->mac_addresses[k]; k++) {
      if (!rn_normalize_mac(a->mac_addresses[k], mac, sizeof mac))
        continue;
      if (macs.len && strstr(macs.data, mac))
        continue; /* the same address listed twice */
      if (macs.len)
        ds_buf_append(&macs, ",", 1);
      ds_buf_append(&macs, mac, strlen(mac));
    }
    ds_array_add(&c->external_id, a->external_id);
    ds_array_add(&c->name, blank_to_null(a->name));
    ds_array_add(&c->hostname, blank_to_null(a->hostname));
    ds_array_add(&c->serial, blank_to_null(a->serial_number));
    ds_array_add(&c->serial_norm,
                 rn_normalize_serial(a->serial_number, serial, sizeof serial)
                     ? serial
                     : NULL);
    ds_array_add(&c->macs, macs.len ? macs.data : NULL);
    ds_array_add(&c->os_name, blank_to_null(a->os_name));
    ds_array_add(&c->device_class, blank_to_null(a->device_class));
    ds_array_add(&c->manufacturer, blank_to_null(a->manufacturer));
    ds_array_add(&c->model, blank_to_null(a->model));
    if (a->last_seen_ms)
      ds_epoch_text(a->last_seen_ms, seen);
    ds_array_add(&c->last_seen, a->last_seen_ms ? seen : NULL);
    ds_array_add(&c->org, blank_to_null(a->external_org_id));
    bool failed = macs.failed;
    ds_buf_free(&macs);
    if (failed)
      return ds_fail(ds, RN_ENOMEM, "assets: out of memory");
  }
  return 0;
}

/* A pulled device differs from its stored row (x: the pull, a: the row).
 * The device's own last contact counts only when it moved by a day or more
 * (or became known or unknown): a device that checks in every few minutes
 * must not rewrite its row on every sync. A row retired other than as a
 * duplicate that is seen again changes too: it comes back. */
#define CHANGED(a, x)                                                        \
  " ((" a ".portal_company_id, " a ".name, " a ".hostname, " a               \
  ".serial_number, " a ".serial_normalized, " a ".mac_addresses, " a         \
  ".os_name, " a ".device_class, " a ".manufacturer, " a ".model, " a        \
  ".external_org_id) IS DISTINCT FROM ($2::bigint, " x ".name, " x           \
  ".hostname, " x ".serial_number, " x ".serial_normalized, " x              \
  ".mac_addresses, " x ".os_name, " x ".device_class, " x ".manufacturer, "  \
  x ".model, " x ".external_org_id)"                                         \
  " OR (" a ".status = 'RETIRED' AND " a ".duplicate_of_asset_id IS NULL)"   \
  " OR (" a ".last_seen_at IS NULL) <> (" x ".last_seen_at IS NULL)"         \
  " OR abs(extract(epoch FROM " x ".last_seen_at - " a ".last_seen_at))"     \
  "  >= 86400) "

/* Records the run, then writes only the new and the changed devices: the
 * pull is compared with the stored rows first, so an unchanged row is
 * neither rewritten nor locked. The conflict clause repeats the comparison
 * for a row written meanwhile by another transaction. */
/* Retention of asset_sync_run: runs of the (company, source) older than
 * this are deleted when a run is recorded, except the runs asset_last_seen
 * reads: the newest complete run of the (company, source), and for each row
 * retired other than as a duplicate the newest complete run before it was
 * retired. */
#define RUN_RETENTION_DAYS "90"

/* A run r that asset_last_seen reads (see RUN_RETENTION_DAYS). */
#define RUN_NEEDED(r)                                                        \
  " (" r ".complete AND (NOT EXISTS (SELECT 1 FROM asset_sync_run n"         \
  "   WHERE n.msp_org_id = " r ".msp_org_id"                                 \
  "   AND n.portal_company_id = " r ".portal_company_id"                     \
  "   AND n.external_source = " r ".external_source AND n.complete"          \
  "   AND n.synced_at > " r ".synced_at)"                                    \
  "  OR EXISTS (SELECT 1 FROM asset ra WHERE ra.msp_org_id = " r             \
  ".msp_org_id AND ra.portal_company_id = " r ".portal_company_id"           \
  "   AND ra.external_source = " r ".external_source"                        \
  "   AND ra.duplicate_of_asset_id IS NULL"                                  \
  "   AND ra.retired_at > " r ".synced_at"                                   \
  "   AND NOT EXISTS (SELECT 1 FROM asset_sync_run n"                        \
  "    WHERE n.msp_org_id = " r ".msp_org_id"                                \
  "    AND n.portal_company_id = " r ".portal_company_id"                    \
  "    AND n.external_source = " r ".external_source AND n.complete"         \
  "    AND n.synced_at > " r ".synced_at"                                    \
  "    AND n.synced_at < ra.retired_at)))) "

static const char upsert_sql[] =
    "WITH run AS (INSERT INTO asset_sync_run (msp_org_id, portal_company_id,"
    "  external_source, synced_at, complete, seen, source_priority)"
    "  VALUES ($1, $2, $3, to_timestamp($15), $17, $18, $19::text[])"
    "  RETURNING id),"
    /* Sees the runs as they were before this statement (the run above
     * included): the newest complete one stays until a later run. */
    " pruned AS (DELETE FROM asset_sync_run r WHERE r.msp_org_id = $1"
    "  AND r.portal_company_id = $2 AND r.external_source = $3"
    "  AND r.synced_at < to_timestamp($15) - interval '" RUN_RETENTION_DAYS
    " days' AND NOT" RUN_NEEDED("r") "),"
    " i AS (SELECT external_id, name, hostname, serial_number,"
    "  serial_normalized, string_to_array(macs, ',') AS mac_addresses,"
    "  os_name, device_class, manufacturer, model,"
    "  to_timestamp(last_seen) AS last_seen_at, external_org_id"
    "  FROM unnest($4::text[], $5::text[], $6::text[],"
    "  $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],"
    "  $12::text[], $13::text[], $14::float8[], $16::text[])"
    "  AS t(external_id, name, hostname, serial_number, serial_normalized,"
    "   macs, os_name, device_class, manufacturer, model, last_seen,"
    "   external_org_id)),"
    /* The rows still to write: new or changed. The ANY narrows the stored
     * side to the pulled ids through the unique key, instead of hashing
     * every row of the MSP and source. */
    " to_write AS (SELECT i.* FROM i LEFT JOIN asset a ON a.msp_org_id = $1"
    "  AND a.external_source = $3 AND a.external_id = i.external_id"
    "  AND a.external_id = ANY ($4::text[])"
    "  WHERE a.id IS NULL OR" CHANGED("a", "i") "),"
    " up AS ("
    " INSERT INTO asset AS a (msp_org_id, portal_company_id, external_source,"
    "  external_id, name, hostname, serial_number, serial_normalized,"
    "  mac_addresses, os_name, device_class, manufacturer, model, last_seen_at,"
    "  external_org_id, status, first_synced_at, last_synced_at)"
    " SELECT $1, $2, $3, external_id, name, hostname, serial_number,"
    "  serial_normalized, mac_addresses, os_name, device_class,"
    "  manufacturer, model, last_seen_at, external_org_id, 'ACTIVE',"
    "  to_timestamp($15), to_timestamp($15) FROM to_write"
    " ON CONFLICT (msp_org_id, external_source, external_id) DO UPDATE SET"
    "  portal_company_id = EXCLUDED.portal_company_id, name = EXCLUDED.name,"
    "  hostname = EXCLUDED.hostname, serial_number = EXCLUDED.serial_number,"
    "  serial_normalized = EXCLUDED.serial_normalized,"
    "  mac_addresses = EXCLUDED.mac_addresses, os_name = EXCLUDED.os_name,"
    "  device_class = EXCLUDED.device_class,"
    "  manufacturer = EXCLUDED.manufacturer, model = EXCLUDED.model,"
    "  last_seen_at = EXCLUDED.last_seen_at,"
    "  external_org_id = EXCLUDED.external_org_id,"
    "  last_synced_at = EXCLUDED.last_synced_at,"
    /* Seen again: active again, unless dedup retired it (decided below). */
    "  status = CASE WHEN a.duplicate_of_asset_id IS NULL THEN 'ACTIVE'"
    "   ELSE a.status END,"
    "  retired_at = CASE WHEN a.duplicate_of_asset_id IS NULL THEN NULL"
    "   ELSE a.retired_at END,"
    "  retired_reason = CASE WHEN a.duplicate_of_asset_id IS NULL THEN NULL"
    "   ELSE a.retired_reason END"
    " WHERE" CHANGED("a", "EXCLUDED")
    " RETURNING xmax = 0 AS inserted)"
    " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT"
    "  inserted), (SELECT count(*) FROM run),"
    /* Did the company's previous run rank sources the same way? (The run
     * inserted above is not visible to this statement.) */
    "  COALESCE((SELECT r.source_priority = $19::text[] FROM asset_sync_run r"
    "   WHERE r.portal_company_id = $2 AND r.msp_org_id = $1"
    "   ORDER BY r.id DESC LIMIT 1), false) FROM up";

/* Not in a complete pull: retired (a duplicate that vanished from its own
 * source is no longer a candidate for restoring either). */
static const char retire_unseen_sql[] =
    "UPDATE asset SET status = 'RETIRED', retired_at = to_timestamp($5),"
    " retired_reason = 'not seen in a complete pull from ' || $3,"
    " duplicate_of_asset_id = NULL"
    " WHERE msp_org_id = $1 AND portal_company_id = $2 AND external_source = $3"
    " AND (status = 'ACTIVE' OR duplicate_of_asset_id IS NOT NULL)"
    /* NOT IN a subquery is planned as one hashed subplan; "<> ALL (array)"
     * or NOT EXISTS over unnest() rescan the whole pull for every row,
     * quadratic at 100,000 devices. external_id is never NULL. */
    " AND external_id NOT IN (SELECT unnest($4::text[]))";

/* Cross-source dedup of a set of companies ($2, an array), each on its own.
 * Candidates are rows alive in their source (ACTIVE, or retired only as a
 * duplicate). Two rows of a company are the same device when both have a
 * normalized serial and they are equal; else, when both have MAC addresses
 * and share one; else, when both have a hostname and they are equal
 * ignoring case. Each row's winner is the best-ranked matching row of a
 * strictly better source; rows with none are active, so a row whose winner
 * was retired comes back. Only rows whose verdict changed are written. */
static const char dedup_sql[] =
    "WITH alive AS ("
    " SELECT id, portal_company_id AS co, external_source, external_id,"
    "  serial_normalized AS sn, NULLIF(mac_addresses, '{}') AS macs,"
    "  lower(hostname) AS host,"
    "  COALESCE(array_position($3::text[], external_source), 1000) AS rank,"
    "  duplicate_of_asset_id"
    " FROM asset WHERE msp_org_id = $1"
    " AND portal_company_id = ANY ($2::bigint[])"
    " AND (status = 'ACTIVE' OR duplicate_of_asset_id IS NOT NULL)),"
    " mac AS (SELECT id, co, rank, sn, unnest(macs) AS mac FROM alive),"
    " cand AS ("
    "  SELECT r.id AS rid, w.id AS wid, w.rank AS wrank FROM alive r"
    "   JOIN alive w ON w.co = r.co AND w.sn = r.sn AND w.rank < r.rank"
    "  UNION ALL"
    "  SELECT rm.id, wm.id, wm.rank FROM mac rm JOIN mac wm"
    "   ON wm.co = rm.co AND wm.mac = rm.mac AND wm.rank < rm.rank"
    "   AND (rm.sn IS NULL OR wm.sn IS NULL)"
    "  UNION ALL"
    "  SELECT r.id, w.id, w.rank FROM alive r JOIN alive w"
    "   ON w.co = r.co AND w.host = r.host AND w.rank < r.rank"
    "   AND (r.sn IS NULL OR w.sn IS NULL)"
    "   AND (r.macs IS NULL OR w.macs IS NULL)),"
    " verdict AS (SELECT DISTINCT ON (rid) rid, wid FROM cand"
    "  ORDER BY rid, wrank, wid),"
    " change AS (SELECT alive.id, v.wid FROM alive"
    "  LEFT JOIN verdict v ON v.rid = alive.id"
    "  WHERE alive.duplicate_of_asset_id IS DISTINCT FROM v.wid)"
    " UPDATE asset a SET"
    "  status = CASE WHEN c.wid IS NULL THEN 'ACTIVE' ELSE 'RETIRED' END,"
    "  duplicate_of_asset_id = c.wid,"
    "  retired_at = CASE WHEN c.wid IS NULL THEN NULL ELSE to_timestamp($4)"
    "   END,"
    "  retired_reason = CASE WHEN c.wid IS NULL THEN NULL ELSE"
    "   'duplicate of ' || w.external_source || ' asset ' || w.external_id END"
    " FROM change c LEFT JOIN asset w ON w.id = c.wid"
    " WHERE a.id = c.id"
    " RETURNING c.wid IS NOT NULL";

/* Planner settings for the set-based statements, restored afterwards so
 * that the caller's own statements in the transaction plan as before. JIT
 * is off: compiling these one-off plans costs more than running them (at
 * 100,000 devices, seconds against a few hundred milliseconds); sorts and
 * hashes of a large company get room in memory. */
typedef struct plan_s {
  char jit[16], work_mem[32], nestloop[8];
} plan_t;

/* The same statement reads the MSP's source priority (msp_source_priority,
 * migration 1006) inside the caller's transaction, so the sync, retirement
 * and dedup of every plugin rank sources alike without another round trip:
 * the caller's override ($2) if any, else the stored order followed by the
 * default sources it does not name, else the default ($3). *order (text
 * array literal) is the caller's to free. */
static int plan_begin(rn_devsrc_t *ds, const char *msp_id,
                      const rn_source_priority_t *override, plan_t *saved,
                      char **order, int64_t *statements) {
  ds_array_t given = {0}, fallback = {0};
  if (override && override->sources)
    for (size_t i = 0; override->sources[i]; i++)
      ds_array_add(&given, override->sources[i]);
  for (size_t i = 0; default_priority[i]; i++)
    ds_array_add(&fallback, default_priority[i]);
  const char *params[] = {msp_id, ds_array_text(&given),
                          ds_array_text(&fallback)};
  if ((override && override->sources && !params[1]) || !params[2]) {
    ds_array_free(&given);
    ds_array_free(&fallback);
    return ds_fail(ds, RN_ENOMEM, "assets: out of memory");
  }
  if (!(override && override->sources))
    params[1] = NULL;
  rn_db_result_t *res;
  int rc = ds_exec(
      ds, "plan assets",
      "WITH old AS MATERIALIZED (SELECT current_setting('jit') AS jit,"
      "  current_setting('work_mem') AS work_mem,"
      "  current_setting('enable_nestloop') AS nestloop)"
      " SELECT jit, work_mem, nestloop, set_config('jit', 'off', true),"
      "  set_config('work_mem', CASE WHEN pg_size_bytes(work_mem) <"
      "   64 * 1024 * 1024 THEN '64MB' ELSE work_mem END, true),"
      "  COALESCE($2::text[], (SELECT p.sources || ARRAY(SELECT d.s"
      "   FROM unnest($3::text[]) WITH ORDINALITY AS d(s, n)"
      "   WHERE d.s <> ALL (p.sources) ORDER BY d.n)"
      "   FROM msp_source_priority p WHERE p.msp_org_id = $1::bigint),"
      "   $3::text[]) FROM old",
      3, params, &res);
  ds_array_free(&given);
  ds_array_free(&fallback);
  (*statements)++;
  if (rc < 0)
    return rc;
  const rn_host_t *h = ds->host;
  *order = strdup(h->db_value(res, 0, 5));
  if (!*order) {
    ds_free_result(ds, res);
    return ds_fail(ds, RN_ENOMEM, "assets: out of memory");
  }
  snprintf(saved->jit, sizeof saved->jit, "%s", h->db_value(res, 0, 0));
  snprintf(saved->work_mem, sizeof saved->work_mem, "%s",
           h->db_value(res, 0, 1));
  snprintf(saved->nestloop, sizeof saved->nestloop, "%s",
           h->db_value(res, 0, 2));
  ds_free_result(ds, res);
  return 0;
}

static int plan_end(rn_devsrc_t *ds, const plan_t *saved,
                    int64_t *statements) {
  const char *params[] = {saved->jit, saved->work_mem, saved->nestloop};
  (*statements)++;
  return ds_exec(ds, "plan assets",
                 "SELECT set_config('jit', $1, true),"
                 " set_config('work_mem', $2, true),"
                 " set_config('enable_nestloop', $3, true)",
                 3, params, NULL);
}

/* Runs dedup over the companies (a PostgreSQL bigint array literal) and
 * counts rows newly retired as duplicates and rows restored. Call between
 * plan_begin and plan_end. */
static int dedup(rn_devsrc_t *ds, const char *msp_id, const char *companies,
                 const char *order_text, int64_t *deduped, int64_t *restored,
                 int64_t *statements) {
  char now[32];
  ds_epoch_text(ds->now_ms, now);
  /* Rows written by this very transaction have no statistics yet, and the
   * planner, guessing a few rows, would pair every device with every other
   * in nested loops: quadratic at 100,000 devices. Hash joins it is (the
   * caller's plan_end restores the setting). */
  rn_db_result_t *res = NULL;
  int rc = ds_exec(ds, "plan dedup", "SET LOCAL enable_nestloop = off", 0,
                   NULL, NULL);
  (*statements)++;
  if (rc == 0) {
    const char *params[] = {msp_id, companies, order_text, now};
    rc = ds_exec(ds, "dedup assets", dedup_sql, 4, params, &res);
    (*statements)++;
  }
  if (rc < 0) {
    ds_free_result(ds, res);
    return rc;
  }
  const rn_host_t *h = ds->host;
  for (int i = 0; i < h->db_rows(res); i++) {
    if (strcmp(h->db_value(res, i, 0), "t") == 0)
      (*deduped)++;
    else
      (*restored)++;
  }
  ds_free_result(ds, res);
  return 0;
}

int rn_assets_sync(rn_devsrc_t *ds, rn_msp_org_t msp, rn_company_t company,
                   const char *source, const rn_asset_t *assets, size_t count,
                   bool complete, const rn_source_priority_t *priority,
                   rn_asset_counts_t *counts) {
  memset(counts, 0, sizeof *counts);
  counts->seen = (int64_t)count;
  columns_t c = {0};
  char *order = NULL;
  rn_db_result_t *res = NULL;
  plan_t plan;
  int rc = fill_columns(ds, assets, count, &c);
  if (rc < 0)
    goto done;
  char msp_id[24], company_id[24], now[32], seen[24], companies[32];
  ds_int_text(msp.id, msp_id);
  if ((rc = plan_begin(ds, msp_id, priority, &plan, &order,
                       &counts->statements)) < 0)
    goto done;
  ds_int_text(company.id, company_id);
  ds_epoch_text(ds->now_ms, now);
  ds_int_text((int64_t)count, seen);
  snprintf(companies, sizeof companies, "{%s}", company_id);
  const char *upsert_params[] = {
      msp_id, company_id, source,
      ds_array_text(&c.external_id), ds_array_text(&c.name),
      ds_array_text(&c.hostname), ds_array_text(&c.serial),
      ds_array_text(&c.serial_norm), ds_array_text(&c.macs),
      ds_array_text(&c.os_name), ds_array_text(&c.device_class),
      ds_array_text(&c.manufacturer), ds_array_text(&c.model),
      ds_array_text(&c.last_seen), now, ds_array_text(&c.org),
      complete ? "true" : "false", seen, order};
  for (size_t i = 0; i < sizeof upsert_params / sizeof *upsert_params; i++) {
    if (!upsert_params[i]) {
      rc = ds_fail(ds, RN_ENOMEM, "assets: out of memory");
      goto done;
    }
  }
  const rn_host_t *h = ds->host;
  bool same_priority = false;
  /* An empty pull records no run: nothing was seen, and a complete one
   * leaves no live row whose sighting a run would date. */
  if (count > 0) {
    rc = ds_exec(ds, "upsert assets", upsert_sql, 19, upsert_params, &res);
    counts->statements++;
    if (rc < 0)
      goto done;
    counts->created = strtoll(h->db_value(res, 0, 0), NULL, 10);
    counts->updated = strtoll(h->db_value(res, 0, 1), NULL, 10);
    same_priority = strcmp(h->db_value(res, 0, 3), "t") == 0;
    ds_free_result(ds, res);
    res = NULL;
  }
  if (complete) {
    const char *retire_params[] = {msp_id, company_id, source,
                                   upsert_params[3], now};
    rc = ds_exec(ds, "retire unseen assets", retire_unseen_sql, 5,
                 retire_params, &res);
    counts->statements++;
    if (rc < 0)
      goto done;
    counts->retired = h->db_affected(res);
    ds_free_result(ds, res);
    res = NULL;
  }
  /* Every change to a company's rows, from any source or by retirement,
   * runs dedup there; a pull that changed nothing, ranked as the run
   * before it, leaves every verdict as it was. */
  if (counts->created || counts->updated || counts->retired || !same_priority)
    rc = dedup(ds, msp_id, companies, order, &counts->deduped,
               &counts->restored, &counts->statements);
  if (rc == 0)
    rc = plan_end(ds, &plan, &counts->statements);
done:
  ds_free_result(ds, res);
  columns_free(&c);
  free(order);
  return rc;
}

int ds_assets_retire(rn_devsrc_t *ds, rn_msp_org_t msp, const char *source,
                     const char *external_org_id, const char *reason,
                     int64_t *retired, int64_t *restored) {
  char msp_id[24], now[32];
  ds_int_text(msp.id, msp_id);
  ds_epoch_text(ds->now_ms, now);
  const char *params[] = {msp_id, source, external_org_id, reason, now};
  rn_db_result_t *res;
  /* Live rows only (a duplicate is live in its own source and must not be
   * restored below); "retired" counts the ones that were ACTIVE. The
   * companies returned are those where a row had lost to a row retired
   * here: dedup decides again there. */
  int rc = ds_exec(
      ds, "retire assets",
      "WITH gone AS (UPDATE asset a SET status = 'RETIRED',"
      "  retired_at = to_timestamp($5), retired_reason = $4,"
      "  duplicate_of_asset_id = NULL"
      "  FROM asset old WHERE old.id = a.id AND a.msp_org_id = $1"
      "  AND a.external_source = $2"
      "  AND ($3::text IS NULL OR a.external_org_id = $3)"
      "  AND (a.status = 'ACTIVE' OR a.duplicate_of_asset_id IS NOT NULL)"
      "  RETURNING a.id, old.status = 'ACTIVE' AS was_active)"
      " SELECT (SELECT count(*) FROM gone WHERE was_active),"
      "  (SELECT COALESCE(array_agg(DISTINCT l.portal_company_id), '{}')"
      "   FROM asset l JOIN gone g ON g.id = l.duplicate_of_asset_id"
      "   WHERE l.msp_org_id = $1)",
      5, params, &res);
  if (rc < 0)
    return rc;
  const rn_host_t *h = ds->host;
  int64_t n = strtoll(h->db_value(res, 0, 0), NULL, 10);
  const char *companies = h->db_value(res, 0, 1);
  int64_t deduped = 0, back = 0, statements = 0;
  plan_t plan;
  char *order = NULL;
  if (strcmp(companies, "{}") != 0 &&
      (rc = plan_begin(ds, msp_id, NULL, &plan, &order, &statements)) == 0) {
    rc = dedup(ds, msp_id, companies, order, &deduped, &back, &statements);
    if (rc == 0)
      rc = plan_end(ds, &plan, &statements);
  }
  free(order);
  ds_free_result(ds, res);
  if (rc < 0)
    return rc;
  if (retired)
    *retired = n;
  if (restored)
    *restored = back;
  return 0;
}

int rn_assets_retire_source(rn_devsrc_t *ds, rn_msp_org_t msp,
                            const char *source, const char *reason,
                            int64_t *retired, int64_t *restored) {
  return ds_assets_retire(ds, msp, source, NULL, reason, retired, restored);
}

int rn_source_priority_set(rn_devsrc_t *ds, rn_msp_org_t msp,
                           const rn_source_priority_t *priority) {
  char msp_id[24];
  ds_int_text(msp.id, msp_id);
  if (!priority || !priority->sources) {
    const char *params[] = {msp_id};
    return ds_exec(ds, "reset source priority",
                   "DELETE FROM msp_source_priority WHERE msp_org_id = $1", 1,
                   params, NULL);
  }
  ds_array_t sources = {0};
  for (size_t i = 0; priority->sources[i]; i++)
    ds_array_add(&sources, priority->sources[i]);
  const char *params[] = {msp_id, ds_array_text(&sources)};
  int rc;
  if (!params[1])
    rc = ds_fail(ds, RN_ENOMEM, "source priority: out of memory");
  else
    /* The table's checks name what is wrong (empty, a bad name, a source
     * listed twice, not an MSP org). */
    rc = ds_exec(ds, "set source priority",
                 "INSERT INTO msp_source_priority (msp_org_id, sources)"
                 " VALUES ($1, $2::text[]) ON CONFLICT (msp_org_id) DO UPDATE"
                 " SET sources = EXCLUDED.sources, updated_at = now()",
                 2, params, NULL);
  ds_array_free(&sources);
  return rc;
}
