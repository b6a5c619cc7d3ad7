/* pacing.h - the request estimate that `ninjaone plan` (mapping/plan.c)
 * and the evidence sweep's pacing (sweep.c) share, and the sweep's pacing
 * arithmetic (README.md, "Request budget"). Header only: both plugins
 * include it and link nothing more. */
#ifndef NJ_PACING_H
#define NJ_PACING_H

#include <stdbool.h>
#include <stdint.h>

/* Rows of one page (devices-detailed, query reports, organizations). */
#define NJ_PAGE_ROWS 1000
/* The evidence sweep's endpoints, one request each per customer. */
#define NJ_SWEEP_ENDPOINTS 6
/* The share of the budget the runner spends (runner/ratelimit.h). */
#define NJ_BUDGET_MARGIN_PCT 95

/* SQL: a derived table (alias it `seen`, LEFT JOIN it ON seen.mapping_id =
 * m.id) of the devices each mapping had at its credential's last asset
 * sync: the "seen" of its record in the active credential's
 * last_asset_sync. Each credential's records are read once, not once per
 * mapping. */
#define NJ_SQL_SEEN_DEVICES                                                    \
  "(SELECT (d->>'mapping_id')::bigint AS mapping_id,"                          \
  "  max((d->>'seen')::bigint) AS devices"                                     \
  "  FROM integration_credential sc, jsonb_array_elements(CASE WHEN"           \
  "  jsonb_typeof(sc.last_asset_sync->'details') = 'array' THEN"               \
  "  sc.last_asset_sync->'details' ELSE '[]'::jsonb END) d"                    \
  "  WHERE sc.provider = 'ninjaone' AND sc.is_active"                          \
  "  AND d->>'mapping_id' ~ '^[0-9]{1,18}$' GROUP BY 1)"

/* SQL: the devices of mapping m, with `seen` (NJ_SQL_SEEN_DEVICES) joined:
 * as the last asset sync saw them, else the mapping's company's active
 * NinjaOne assets, else 0. */
#define NJ_SQL_MAPPING_DEVICES                                                 \
  "coalesce(seen.devices,"                                                     \
  "  (SELECT count(*) FROM asset a WHERE a.msp_org_id = m.msp_org_id AND"      \
  "  a.portal_company_id = m.portal_company_id AND a.external_source ="        \
  "  'ninjaone' AND a.status = 'ACTIVE'), 0)"

/* SQL: the pages of a list of `devices` rows (one when empty). */
#define NJ_SQL_PAGES(devices) "greatest(1, ceil((" devices ") / 1000.0))"

/* SQL: one customer's evidence sweep, in requests: every endpoint walks
 * the customer's devices once. */
#define NJ_SQL_SWEEP_REQUESTS(devices) "6 * " NJ_SQL_PAGES(devices)

static inline int64_t nj_pages_of(int64_t rows) {
  return rows <= NJ_PAGE_ROWS ? 1 : (rows + NJ_PAGE_ROWS - 1) / NJ_PAGE_ROWS;
}

/* How one credential's sweep spreads its customers. */
typedef struct nj_sweep_pacing_s {
  int64_t usable_hour; /* the hour's budget less the margin */
  int64_t reserved;    /* held each hour for the asset sync and a token */
  int64_t sweep_hour;  /* what the sweep may spend in an hour */
  int64_t requests;    /* the sweep's estimate */
  int64_t needed_ms;   /* the spread at sweep_hour an hour; 0: at once */
  int64_t spread_ms;   /* the spread chosen: needed_ms, capped */
  bool fits;           /* the spread ends well before the next tick */
} nj_sweep_pacing_t;

/* The part of the window a sweep may spread over: the rest (a sixth) is
 * left for the last customers to finish before the next tick. */
#define NJ_SWEEP_SPREAD_SHARE_NUM 5
#define NJ_SWEEP_SPREAD_SHARE_DEN 6

/* A sweep of `requests` against per_hour, beside an asset sync of
 * sync_requests, with window_ms left before the next tick. A sweep that
 * fits in what one hour leaves after the sync runs at once; a bigger one
 * spreads at sweep_hour an hour, capped at 5/6 of the window. */
static inline void nj_sweep_pacing(int64_t per_hour, int64_t sync_requests,
                                   int64_t requests, int64_t window_ms,
                                   nj_sweep_pacing_t *p) {
  p->usable_hour = per_hour * NJ_BUDGET_MARGIN_PCT / 100;
  if (p->usable_hour < 1)
    p->usable_hour = 1;
  p->reserved = sync_requests + 1;
  p->sweep_hour = p->usable_hour - p->reserved;
  /* A sync bigger than the hour spans hours itself: the sweep keeps a
   * tenth of the hour rather than stopping. */
  if (p->sweep_hour < p->usable_hour / 10)
    p->sweep_hour = p->usable_hour / 10 ? p->usable_hour / 10 : 1;
  p->requests = requests;
  p->needed_ms = requests <= p->sweep_hour
                     ? 0
                     : (requests * 3600000 + p->sweep_hour - 1) / p->sweep_hour;
  int64_t cap = window_ms > 0 ? window_ms / NJ_SWEEP_SPREAD_SHARE_DEN *
                                    NJ_SWEEP_SPREAD_SHARE_NUM
                              : 0;
  p->spread_ms = p->needed_ms < cap ? p->needed_ms : cap;
  p->fits = p->needed_ms <= cap;
}

/* When the customer whose estimate starts `before` requests into the sweep
 * is due, in ms after the sweep starts. */
static inline int64_t nj_sweep_offset_ms(const nj_sweep_pacing_t *p,
                                         int64_t before) {
  if (p->spread_ms <= 0 || p->requests <= 0)
    return 0;
  return (int64_t)((double)before * (double)p->spread_ms / (double)p->requests);
}

#endif
