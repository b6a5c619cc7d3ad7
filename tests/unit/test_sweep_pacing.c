/* The evidence sweep's pacing arithmetic (sources/ninjaone/evidence/
 * pacing.h) on and around its boundaries: at once while the sweep fits the
 * hour left beside the asset sync, spread at that rate beyond it, capped
 * at five sixths of the window, and never below a tenth of the hour. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "pacing.h"

#define HOUR_MS 3600000LL
#define WINDOW_MS (6 * HOUR_MS)

typedef struct pacing_case_s {
  int64_t per_hour, sync, requests, window_ms;
  int64_t sweep_hour, spread_ms;
  bool fits;
} pacing_case_t;

ParameterizedTestParameters(sweep_pacing, boundaries) {
  static pacing_case_t cases[] = {
      /* 1,425 usable, 100 + 1 kept: 1,324 an hour for the sweep. */
      {1500, 100, 1324, WINDOW_MS, 1324, 0, true},
      {1500, 100, 1325, WINDOW_MS, 1324, (1325 * HOUR_MS + 1323) / 1324, true},
      /* 500 customers under 1,000 devices: 3.25 hours. */
      {1500, 501, 3000, WINDOW_MS, 923, (3000 * HOUR_MS + 922) / 923, true},
      /* 1,000 customers: 14 hours needed, capped at 5, does not fit. */
      {1500, 1001, 6000, WINDOW_MS, 423, 5 * HOUR_MS, false},
      /* A sync bigger than the hour: the sweep keeps a tenth of it. */
      {1500, 5000, 600, WINDOW_MS, 142, (600 * HOUR_MS + 141) / 142, true},
      /* Late in the window: the cap shrinks with what is left. */
      {1500, 100, 4000, 3 * HOUR_MS, 1324, (3 * HOUR_MS) / 6 * 5, false},
  };
  return cr_make_param_array(pacing_case_t, cases,
                             sizeof cases / sizeof cases[0]);
}

ParameterizedTest(pacing_case_t *c, sweep_pacing, boundaries) {
  nj_sweep_pacing_t p;
  nj_sweep_pacing(c->per_hour, c->sync, c->requests, c->window_ms, &p);
  cr_expect_eq(p.usable_hour, c->per_hour * 95 / 100);
  cr_expect_eq(p.reserved, c->sync + 1);
  cr_expect_eq(p.sweep_hour, c->sweep_hour);
  cr_expect_eq(p.spread_ms, c->spread_ms,
               "requests %lld: spread %lld, want %lld", (long long)c->requests,
               (long long)p.spread_ms, (long long)c->spread_ms);
  cr_expect_eq(p.fits, c->fits);
}

Test(sweep_pacing, customers_start_in_proportion_to_the_estimates_before_them) {
  nj_sweep_pacing_t p;
  nj_sweep_pacing(1500, 501, 3000, WINDOW_MS, &p);
  cr_expect_eq(nj_sweep_offset_ms(&p, 0), 0);
  cr_expect_eq(nj_sweep_offset_ms(&p, 1500), p.spread_ms / 2);
  cr_expect_lt(nj_sweep_offset_ms(&p, 2994), p.spread_ms);
  /* At once: every customer is due now. */
  nj_sweep_pacing(1500, 100, 600, WINDOW_MS, &p);
  cr_expect_eq(nj_sweep_offset_ms(&p, 594), 0);
}
