/* The host's rate limiter: the windows on an injected clock, FIFO order,
 * pauses from 429 / Retry-After / remaining quota, and the same limiter in
 * front of the HTTP service holding a simulated tenant under its budget. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "ratelimit.h"
#include "rt.h"
#include "rt_host.h"
#include "sim_client.h"

/* ------------------------------------------------- limiter on its own */

static int64_t fake_now;
static int64_t fake_clock(void *data) {
  (void)data;
  return fake_now;
}

typedef struct probe_s {
  rn__rate_waiter_t w;
  int index;
  int64_t admitted_at;
  int *order;
  int *norder;
} probe_t;

static void on_ready(rn__rate_waiter_t *w) {
  probe_t *p = rn__container_of(w, probe_t, w);
  p->admitted_at = fake_now;
  p->order[(*p->norder)++] = p->index;
}

static const rn_rate_window_t ninjaone_windows[] = {
    RN_RATE_WINDOW(200, 60000),
    RN_RATE_WINDOW(1500, 3600000),
};

Test(ratelimit, holds_a_key_under_200_a_minute_while_500_wait_in_fifo) {
  enum { N = 500 };
  static probe_t probes[N];
  static int order[N];
  int norder = 0;
  fake_now = 1000000;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  cr_assert_eq(rn__rate_configure(rl, "tenant", ninjaone_windows, 2), 0);
  rn__rate_key_t *key = rn__rate_key(rl, "tenant", false);
  cr_assert_not_null(key);
  int immediate = 0;
  for (int i = 0; i < N; i++) {
    probes[i] = (probe_t){.index = i, .order = order, .norder = &norder,
                          .admitted_at = -1};
    if (rn__rate_acquire(key, &probes[i].w, on_ready)) {
      probes[i].admitted_at = fake_now;
      order[norder++] = i;
      immediate++;
    }
  }
  cr_expect_eq(immediate, 200);
  rn__rate_stats_t st;
  rn__rate_get_stats(key, &st);
  cr_expect_eq(st.queued, 300);
  cr_expect_eq(rn__rate_next_ms(rl), 1000000 + 60000);
  /* Time passes a second at a time; the owner pumps when told to. */
  for (int s = 0; s <= 180; s++) {
    fake_now = 1000000 + (int64_t)s * 1000;
    int64_t due = rn__rate_next_ms(rl);
    if (due >= 0 && due <= fake_now)
      rn__rate_pump(rl);
  }
  cr_assert_eq(norder, N);
  for (int i = 0; i < N; i++)
    cr_expect_eq(order[i], i, "admission %d went to waiter %d", i, order[i]);
  /* No sliding minute ever saw more than 200 admissions. */
  for (int i = 0; i < N; i++) {
    int in_window = 0;
    for (int j = 0; j < N; j++)
      if (probes[j].admitted_at <= probes[i].admitted_at &&
          probes[j].admitted_at > probes[i].admitted_at - 60000)
        in_window++;
    cr_expect_leq(in_window, 200, "%d admissions in the minute ending at %lld",
                  in_window, (long long)probes[i].admitted_at);
  }
  cr_expect_eq(probes[200].admitted_at, 1060000);
  cr_expect_eq(probes[400].admitted_at, 1120000);
  rn__rate_get_stats(key, &st);
  cr_expect_eq(st.admitted, N);
  cr_expect_eq(st.waited, 300);
  cr_expect_eq(st.queued, 0);
  rn__rate_free(rl);
}

Test(ratelimit, the_hour_window_binds_after_the_minute_window) {
  fake_now = 0;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  rn_rate_window_t w[] = {{.limit = 10, .period_ms = 1000},
                          {.limit = 25, .period_ms = 100000}};
  cr_assert_eq(rn__rate_configure(rl, "k", w, 2), 0);
  rn__rate_key_t *key = rn__rate_key(rl, "k", false);
  int admitted = 0;
  for (int s = 0; s < 20; s++) {
    fake_now = (int64_t)s * 1000;
    for (int i = 0; i < 10; i++) {
      rn__rate_waiter_t w1;
      if (rn__rate_acquire(key, &w1, NULL))
        admitted++;
      else
        rn__rate_withdraw(&w1);
    }
  }
  cr_expect_eq(admitted, 25);
  rn__rate_free(rl);
}

Test(ratelimit, withdrawn_waiters_are_skipped_without_a_call) {
  fake_now = 0;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  rn_rate_window_t w = {.limit = 1, .period_ms = 1000};
  cr_assert_eq(rn__rate_configure(rl, "k", &w, 1), 0);
  rn__rate_key_t *key = rn__rate_key(rl, "k", false);
  int order[4], n = 0;
  probe_t p[4];
  for (int i = 0; i < 4; i++) {
    p[i] = (probe_t){.index = i, .order = order, .norder = &n};
    bool now = rn__rate_acquire(key, &p[i].w, on_ready);
    cr_expect_eq(now, i == 0);
  }
  rn__rate_withdraw(&p[1].w);
  rn__rate_withdraw(&p[1].w); /* twice is harmless */
  for (int s = 1; s <= 3; s++) {
    fake_now = s * 1000;
    rn__rate_pump(rl);
  }
  cr_expect_eq(n, 2);
  cr_expect_eq(order[0], 2);
  cr_expect_eq(order[1], 3);
  rn__rate_free(rl);
}

Test(ratelimit, retry_after_and_429_pause_the_key) {
  fake_now = 50000;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  rn__rate_key_t *key = rn__rate_key(rl, "k", true); /* no windows */
  rn__rate_waiter_t w;
  cr_expect(rn__rate_acquire(key, &w, NULL));
  cr_expect_eq(rn__rate_observe(key, 429, "3", NULL, NULL), 3000);
  int order[2], n = 0;
  probe_t p = {.index = 7, .order = order, .norder = &n};
  cr_expect_not(rn__rate_acquire(key, &p.w, on_ready));
  cr_expect_eq(rn__rate_next_ms(rl), 53000);
  fake_now = 52999;
  rn__rate_pump(rl);
  cr_expect_eq(n, 0);
  fake_now = 53000;
  rn__rate_pump(rl);
  cr_expect_eq(n, 1);
  /* A 429 without Retry-After still pauses; a shorter pause never cuts a
   * longer one short. */
  cr_expect_gt(rn__rate_observe(key, 429, NULL, NULL, NULL), 0);
  rn__rate_pause(key, 30000);
  rn__rate_observe(key, 429, "1", NULL, NULL);
  rn__rate_stats_t st;
  rn__rate_get_stats(key, &st);
  cr_expect_eq(st.paused_until_ms, 53000 + 30000);
  cr_expect_eq(st.throttled, 3);
  /* An HTTP date in the past pauses nothing more; garbage is ignored. */
  cr_expect_eq(rn__rate_observe(key, 503, "Wed, 21 Oct 2015 07:28:00 GMT",
                                NULL, NULL),
               0);
  cr_expect_eq(rn__rate_observe(key, 503, "soon", NULL, NULL), 0);
  rn__rate_free(rl);
}

Test(ratelimit, an_exhausted_remaining_quota_pauses_until_reset) {
  fake_now = 0;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  rn__rate_key_t *key = rn__rate_key(rl, "k", true);
  cr_expect_eq(rn__rate_observe(key, 200, NULL, "150", NULL), 0);
  rn__rate_stats_t st;
  rn__rate_get_stats(key, &st);
  cr_expect_eq(st.remaining, 150);
  cr_expect_eq(rn__rate_observe(key, 200, NULL, "42", NULL), 0);
  cr_expect_eq(rn__rate_observe(key, 200, NULL, "0", "5"), 5000);
  rn__rate_get_stats(key, &st);
  cr_expect_eq(st.remaining, 0);
  cr_expect_eq(st.paused_until_ms, 5000);
  rn__rate_free(rl);
}

Test(ratelimit, reconfiguring_keeps_what_was_spent) {
  fake_now = 0;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  rn_rate_window_t w = {.limit = 5, .period_ms = 1000};
  cr_assert_eq(rn__rate_configure(rl, "k", &w, 1), 0);
  rn__rate_key_t *key = rn__rate_key(rl, "k", false);
  rn__rate_waiter_t x;
  for (int i = 0; i < 5; i++)
    cr_expect(rn__rate_acquire(key, &x, NULL));
  w.limit = 3;
  cr_assert_eq(rn__rate_configure(rl, "k", &w, 1), 0);
  cr_expect_not(rn__rate_acquire(key, &x, NULL), "budget reset by reconfig");
  rn__rate_withdraw(&x);
  cr_expect_eq(rn__rate_configure(rl, "k", &w, 0), 0); /* limits off */
  cr_expect(rn__rate_acquire(key, &x, NULL));
  rn_rate_window_t bad = {.limit = 0, .period_ms = 1000};
  cr_expect_eq(rn__rate_configure(rl, "k", &bad, 1), RN_EINVAL);
  rn__rate_free(rl);
}

Test(ratelimit, declared_budgets_leave_evenly_spaced_under_the_margin) {
  enum { N = 400 };
  static probe_t probes[N];
  static int order[N];
  int norder = 0;
  fake_now = 1000000;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  cr_assert_eq(rn__rate_declare(rl, "tenant", ninjaone_windows, 2, 1, "a"), 0);
  rn__rate_key_t *key = rn__rate_key(rl, "tenant", false);
  cr_expect_eq(rn__rate_key_spacing_ms(key), 316); /* 60000 / 190, up */
  for (int i = 0; i < N; i++) {
    probes[i] = (probe_t){.index = i, .order = order, .norder = &norder,
                          .admitted_at = -1};
    if (rn__rate_acquire(key, &probes[i].w, on_ready)) {
      probes[i].admitted_at = fake_now;
      order[norder++] = i;
    }
  }
  cr_expect_eq(norder, 1, "a burst went out: %d at once", norder);
  /* The owner pumps exactly when told to. */
  while (norder < N) {
    int64_t due = rn__rate_next_ms(rl);
    cr_assert_geq(due, fake_now);
    fake_now = due;
    rn__rate_pump(rl);
  }
  for (int i = 0; i < N; i++)
    cr_expect_eq(order[i], i);
  for (int i = 1; i < N; i++)
    cr_expect_geq(probes[i].admitted_at - probes[i - 1].admitted_at, 316,
                  "admissions %d and %d %lld ms apart", i - 1, i,
                  (long long)(probes[i].admitted_at - probes[i - 1].admitted_at));
  for (int i = 0; i < N; i++) {
    int in_window = 0;
    for (int j = 0; j <= i; j++)
      in_window += probes[j].admitted_at > probes[i].admitted_at - 60000;
    cr_expect_leq(in_window, 190);
  }
  rn__rate_free(rl);
}

Test(ratelimit, after_a_pause_the_queue_leaves_one_at_a_time) {
  enum { N = 10 };
  probe_t probes[N];
  int order[N], norder = 0;
  fake_now = 0;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  rn_rate_window_t w = {.limit = 100, .period_ms = 10000}; /* 95 -> 106 ms */
  cr_assert_eq(rn__rate_declare(rl, "k", &w, 1, 1, "a"), 0);
  rn__rate_key_t *key = rn__rate_key(rl, "k", false);
  cr_expect_eq(rn__rate_observe(key, 429, "5", NULL, NULL), 5000);
  for (int i = 0; i < N; i++) {
    probes[i] = (probe_t){.index = i, .order = order, .norder = &norder};
    cr_expect_not(rn__rate_acquire(key, &probes[i].w, on_ready));
  }
  cr_expect_eq(rn__rate_next_ms(rl), 5000);
  fake_now = 5000;
  rn__rate_pump(rl);
  cr_expect_eq(norder, 1, "%d left together when the pause ended", norder);
  cr_expect_eq(rn__rate_next_ms(rl), 5000 + 106);
  fake_now = 5105;
  rn__rate_pump(rl);
  cr_expect_eq(norder, 1);
  fake_now = 5106;
  rn__rate_pump(rl);
  cr_expect_eq(norder, 2);
  rn__rate_free(rl);
}

static size_t windows_of(rn__rate_t *rl, const char *name,
                         rn_rate_window_t *out) {
  return rn__rate_key_windows(rn__rate_key(rl, name, false), out, 4);
}

Test(ratelimit, the_first_declaration_wins_and_no_plugin_can_lift_a_budget) {
  fake_now = 0;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  rn_rate_window_t out[4];
  /* Three plugins of one generation declare the same credential's key. */
  cr_assert_eq(rn__rate_declare(rl, "t", ninjaone_windows, 2, 1, "assets"), 0);
  cr_assert_eq(rn__rate_declare(rl, "t", ninjaone_windows, 2, 1, "evidence"),
               0);
  rn_rate_window_t other = {.limit = 1000, .period_ms = 60000};
  cr_assert_eq(rn__rate_declare(rl, "t", &other, 1, 1, "mapping"), 0);
  cr_assert_eq(windows_of(rl, "t", out), 2, "a later declaration replaced "
                                            "the first");
  cr_expect_eq(out[0].limit, 190);
  cr_expect_eq(out[1].limit, 1425);
  /* Asking for no budget (a benchmark's rate_limit_off) lifts nothing. */
  cr_assert_eq(rn__rate_declare(rl, "t", NULL, 0, 1, "bench"), 0);
  cr_assert_eq(rn__rate_declare(rl, "t", NULL, 0, 2, "bench"), 0);
  cr_expect_eq(windows_of(rl, "t", out), 2);
  rn__rate_key_t *key = rn__rate_key(rl, "t", false);
  rn__rate_waiter_t x, y;
  cr_expect(rn__rate_acquire(key, &x, NULL));
  cr_expect_not(rn__rate_acquire(key, &y, NULL), "the budget was lifted");
  rn__rate_withdraw(&y);
  /* A reload (newer generation) may change it; what was spent stays. */
  rn_rate_window_t slower = {.limit = 100, .period_ms = 60000};
  cr_assert_eq(rn__rate_declare(rl, "t", &slower, 1, 2, "assets"), 0);
  cr_assert_eq(windows_of(rl, "t", out), 1);
  cr_expect_eq(out[0].limit, 95);
  cr_expect_eq(rn__rate_next_ms(rl), -1);
  cr_expect_not(rn__rate_acquire(key, &y, NULL));
  cr_expect_eq(rn__rate_next_ms(rl), 632); /* 60000 / 95, up */
  rn__rate_withdraw(&y);
  cr_expect_eq(rn__rate_declare(rl, "t",
                                &(rn_rate_window_t){.limit = 0, .period_ms = 1},
                                1, 3, "x"),
               RN_EINVAL);
  rn__rate_free(rl);
}

/* A granter that records what it was asked; the test answers. */
typedef struct grants_s {
  int calls;
  uint32_t want[16];
  int64_t returned_id[16];
  uint32_t returned_spent[16];
} grants_t;

static void record_grant(rn__rate_key_t *key, uint32_t want, void *data) {
  grants_t *g = data;
  uint32_t unspent;
  if (g->calls < 16) {
    g->want[g->calls] = want;
    rn__rate_last_grant(key, &g->returned_id[g->calls],
                        &g->returned_spent[g->calls], &unspent);
  }
  g->calls++;
}

Test(ratelimit, a_shared_key_spends_only_granted_tokens_and_hands_back_the_rest) {
  enum { N = 8 };
  probe_t probes[N];
  int order[N], norder = 0;
  grants_t g = {0};
  fake_now = 0;
  rn__rate_t *rl = rn__rate_new(fake_clock, NULL);
  rn__rate_set_granter(rl, record_grant, &g);
  rn_rate_window_t w = {.limit = 60, .period_ms = 60000}; /* 57: 1053 ms */
  cr_assert_eq(rn__rate_declare(rl, "k", &w, 1, 1, "a"), 0);
  rn__rate_key_t *key = rn__rate_key(rl, "k", false);
  for (int i = 0; i < N; i++) {
    probes[i] = (probe_t){.index = i, .order = order, .norder = &norder};
    cr_expect_not(rn__rate_acquire(key, &probes[i].w, on_ready),
                  "admitted without a grant");
  }
  cr_assert_eq(g.calls, 1, "one question for the whole queue");
  cr_expect_eq(g.want[0], 6); /* 6 s of requests at 1053 ms */
  cr_expect_eq(g.returned_id[0], 0);
  cr_expect_eq(rn__rate_next_ms(rl), -1, "a timer while the answer is due");
  /* 3 tokens in a slot from 100 to 10,000. */
  rn__rate_granted(key, 41, 3, 100, 10000, 0);
  rn__rate_pump(rl);
  cr_expect_eq(norder, 0);
  while (rn__rate_next_ms(rl) >= 0 && g.calls == 1) {
    fake_now = rn__rate_next_ms(rl);
    rn__rate_pump(rl);
  }
  cr_expect_eq(norder, 3);
  cr_expect_eq(fake_now, 100 + 2 * 1053);
  cr_assert_eq(g.calls, 2, "no new grant asked for when the last ran out");
  cr_expect_eq(g.returned_id[1], 41);
  cr_expect_eq(g.returned_spent[1], 3);
  /* Refused: ask again after the retry time, not before. */
  rn__rate_granted(key, 0, 0, 0, 0, 5000);
  cr_expect_eq(rn__rate_next_ms(rl), fake_now + 5000);
  fake_now += 5000;
  rn__rate_pump(rl);
  cr_assert_eq(g.calls, 3);
  /* 6 granted, 2 used, then nobody waits: the rest goes back when the slot
   * ends. */
  rn__rate_granted(key, 42, 6, fake_now, fake_now + 8000, 0);
  for (int i = 3; i < N; i++)
    rn__rate_withdraw(&probes[i].w);
  probe_t late[2];
  for (int i = 0; i < 2; i++) {
    late[i] = (probe_t){.index = 100 + i, .order = order, .norder = &norder};
    if (rn__rate_acquire(key, &late[i].w, on_ready))
      norder++;
    fake_now += 1053;
    rn__rate_pump(rl);
  }
  cr_expect_eq(norder, 5);
  int64_t slot_end = rn__rate_next_ms(rl);
  cr_expect_gt(slot_end, fake_now);
  fake_now = slot_end;
  rn__rate_pump(rl);
  cr_assert_eq(g.calls, 4);
  cr_expect_eq(g.want[3], 0);
  cr_expect_eq(g.returned_id[3], 42);
  cr_expect_eq(g.returned_spent[3], 2);
  rn__rate_granted(key, 0, 0, 0, 0, 0);
  cr_expect_eq(rn__rate_next_ms(rl), -1);
  rn__rate_stats_t st;
  rn__rate_get_stats(key, &st);
  cr_expect_eq(st.grant_calls, 4);
  cr_expect_eq(st.granted, 9);
  cr_expect_eq(st.returned, 4);
  rn__rate_free(rl);
}

/* ------------------------------------------ in front of HTTP, with sim */

static rt_host_t h;
static sim_proc_t sim;
static char auth[512];

typedef struct result_s {
  int calls, status;
  long http_status;
  int *done;
} result_t;

static void on_response(rn_ctx_t *ctx, int status,
                        const rn_http_response_t *resp, void *data) {
  (void)ctx;
  result_t *r = data;
  r->calls++;
  r->status = status;
  r->http_status = resp ? resp->status : 0;
  (*r->done)++;
}

static void start(const char *minute, const char *extra) {
  const char *args[] = {"--generate", "--orgs", "2", "--devices-per-org", "5",
                        "--rate-limit-minute", minute, "--rate-limit-hour",
                        "0", extra, NULL};
  cr_assert_eq(simc_start(&sim, args), 0);
  char *token = simc_token(&sim, "eu", "sim-eu-client", "sim-eu-secret",
                           "monitoring");
  cr_assert_not_null(token);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  free(token);
  rt_host_open(&h, NULL);
}

static void stop(void) {
  rt_host_close(&h);
  cr_expect_eq(simc_stop(&sim), 0);
}

static json_t *eu_stats(simc_resp_t *r) {
  *r = simc_get(&sim, "/_sim/stats", NULL);
  cr_assert_not_null(r->json);
  return json_object_get(json_object_get(r->json, "tenants"), "eu");
}

static int send_one(const char *key, result_t *res) {
  char url[256];
  snprintf(url, sizeof url,
           "http://127.0.0.1:%d/eu/v2/organizations?pageSize=1", sim.port);
  const char *headers[] = {auth, NULL};
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.url = url;
  rq.headers = headers;
  rq.rate_key = key;
  return h.api->http_request(h.ctx, &rq, on_response, res, NULL);
}

static void spin(int ms) {
  bool never = false;
  rt_host_run_until(&h, &never, ms);
}

Test(ratelimit_http, paces_a_simulated_tenant_evenly_under_its_budget,
     .timeout = 60) {
  enum { N = 60 };
  static result_t res[N];
  int done = 0;
  start("200", NULL);
  cr_assert_eq(h.api->rate_configure(h.ctx, "ninjaone/eu/test",
                                     ninjaone_windows, 2),
               0);
  int64_t t0 = rt_now_ms();
  for (int i = 0; i < N; i++) {
    res[i].done = &done;
    cr_assert_eq(send_one("ninjaone/eu/test", &res[i]), 0);
  }
  for (int i = 0; i < 200 && done < 6; i++)
    spin(50);
  int64_t elapsed = rt_now_ms() - t0;
  cr_assert_geq(done, 6, "paced requests never went out");
  /* 95% of 200 a minute, evenly: one admission per 315 ms, the first at
   * once. A burst would have sent all 60 now. */
  simc_resp_t r;
  json_t *eu = eu_stats(&r);
  long seen = (long)json_integer_value(json_object_get(eu, "requests"));
  cr_expect_leq(seen, 1 + elapsed / 315 + 1,
                "the simulator saw %ld requests in %lld ms", seen,
                (long long)elapsed);
  cr_expect_eq(json_integer_value(json_object_get(eu, "throttled")), 0);
  simc_resp_free(&r);
  rn__http_stats_t st;
  rn__http_get_stats(&h.runner, &st);
  cr_expect_gt(st.waiting, 0, "queued requests failed instead of waiting");
  stop(); /* those still waiting are cancelled, once each */
  for (int i = 0; i < N; i++) {
    cr_expect_eq(res[i].calls, 1);
    cr_expect(res[i].status == 0 || res[i].status == RN_ECANCELED);
    if (res[i].status == 0)
      cr_expect_eq(res[i].http_status, 200);
  }
}

Test(ratelimit_http, a_429_from_upstream_pauses_the_key, .timeout = 60) {
  static result_t res[8];
  int done = 0;
  start("3", NULL);
  for (int i = 0; i < 5; i++) {
    res[i].done = &done;
    cr_assert_eq(send_one("tenant", &res[i]), 0);
  }
  for (int i = 0; i < 100 && done < 5; i++)
    spin(50);
  int throttled = 0;
  for (int i = 0; i < 5; i++)
    throttled += res[i].http_status == 429;
  cr_expect_eq(throttled, 2);
  rn__rate_key_t *key = rn__rate_key(rn__http_rate(&h.runner), "tenant", false);
  cr_assert_not_null(key);
  rn__rate_stats_t st;
  rn__rate_get_stats(key, &st);
  cr_expect_gt(st.paused_until_ms, 0, "a 429 with Retry-After did not pause");
  cr_expect_eq(st.throttled, 2);
  /* The next request on that key waits instead of hitting upstream. */
  res[5].done = &done;
  cr_assert_eq(send_one("tenant", &res[5]), 0);
  spin(300);
  cr_expect_eq(res[5].calls, 0);
  simc_resp_t r;
  json_t *eu = eu_stats(&r);
  cr_expect_eq(json_integer_value(json_object_get(eu, "requests")), 5);
  simc_resp_free(&r);
  stop();
  cr_expect_eq(res[5].status, RN_ECANCELED);
}

Test(ratelimit_http, reads_the_remaining_quota_header, .timeout = 60) {
  static result_t res[3];
  int done = 0;
  start("150", "--remaining-header");
  for (int i = 0; i < 3; i++) {
    res[i].done = &done;
    cr_assert_eq(send_one("tenant", &res[i]), 0);
    for (int j = 0; j < 100 && done < i + 1; j++)
      spin(20);
  }
  rn__rate_key_t *key = rn__rate_key(rn__http_rate(&h.runner), "tenant", false);
  rn__rate_stats_t st;
  rn__rate_get_stats(key, &st);
  cr_expect_eq(st.remaining, 147);
  stop();
}

/* ------------------- one budget shared by runner processes, with sim */

#define SHARED_KEY "ninjaone/eu/shared"
#define PER_PROCESS 22

/* One runner process: a host on the shared database declares 60 a minute
 * on the key and sends its requests at once; its limiter does the rest.
 * Exits 0 when every request got a 200. Writes its limiter's figures to
 * figures_path. Never returns. */
static void runner_process(const char *dsn, const char *figures_path) {
  rn__config_t *config = calloc(1, sizeof *config);
  config->path = strdup("(test)");
  config->drain_timeout_ms = 1000;
  config->workers = 4;
  config->database_url = strdup(dsn);
  rt_host_open(&h, config);
  rn_rate_window_t w = RN_RATE_WINDOW(60, 60000);
  if (h.api->rate_configure(h.ctx, SHARED_KEY, &w, 1) != 0)
    _exit(3);
  static result_t res[PER_PROCESS];
  int done = 0;
  for (int i = 0; i < PER_PROCESS; i++) {
    res[i].done = &done;
    if (send_one(SHARED_KEY, &res[i]) != 0)
      _exit(4);
  }
  for (int i = 0; i < 3000 && done < PER_PROCESS; i++)
    spin(50);
  int ok = 0;
  for (int i = 0; i < PER_PROCESS; i++)
    ok += res[i].status == 0 && res[i].http_status == 200;
  rn__rate_stats_t st;
  rn__rate_get_stats(rn__rate_key(rn__http_rate(&h.runner), SHARED_KEY, false),
                     &st);
  char text[256];
  snprintf(text, sizeof text, "admitted=%llu grant_calls=%llu granted=%llu "
           "returned=%llu ok=%d\n",
           (unsigned long long)st.admitted, (unsigned long long)st.grant_calls,
           (unsigned long long)st.granted, (unsigned long long)st.returned, ok);
  rt_write_file(figures_path, text, 0644);
  rt_host_close(&h);
  _exit(ok == PER_PROCESS ? 0 : 1);
}

/* The simulator's count of the tenant's requests, sampled over time. */
typedef struct sample_s {
  int64_t at_ms;
  long requests, throttled;
} sample_t;

static sample_t sample_sim(void) {
  simc_resp_t r;
  json_t *eu = eu_stats(&r);
  sample_t s = {.at_ms = rt_now_ms(),
                .requests = (long)json_integer_value(json_object_get(eu, "requests")),
                .throttled = (long)json_integer_value(json_object_get(eu, "throttled"))};
  simc_resp_free(&r);
  return s;
}

/* The simulator's own limiter is set to the budget: every request over 60
 * in a sliding minute (by its arrival there) would be a 429. The test also
 * samples the simulator's count every 100 ms: requests counted between two
 * samples less than a minute apart all arrived within one minute. A budget
 * of 60 a minute over 66 requests needs a little over a minute of real
 * time: the simulator's window is fixed at 60 s. */
Test(ratelimit_shared, three_runner_processes_stay_within_one_budget_of_60_a_minute,
     .timeout = 240) {
  const char *dsn = rt_pg_fresh_db();
  rt_pg_apply_dir(dsn, RT_SOURCE_DIR "/runner/migrations");
  const char *args[] = {"--generate", "--orgs", "2", "--devices-per-org", "5",
                        "--rate-limit-minute", "60", "--rate-limit-hour", "0",
                        NULL};
  cr_assert_eq(simc_start(&sim, args), 0);
  char *token = simc_token(&sim, "eu", "sim-eu-client", "sim-eu-secret",
                           "monitoring");
  cr_assert_not_null(token);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  free(token);
  char dir[128];
  rt_make_temp_dir(dir, sizeof dir, "shared-budget");
  enum { RUNNERS = 3, MAX_SAMPLES = 4000 };
  pid_t pids[RUNNERS];
  char figures[RUNNERS][256];
  int64_t t0 = rt_now_ms();
  for (int i = 0; i < RUNNERS; i++) {
    snprintf(figures[i], sizeof figures[i], "%s/runner-%d.txt", dir, i);
    pids[i] = fork();
    cr_assert_geq(pids[i], 0);
    if (pids[i] == 0)
      runner_process(dsn, figures[i]);
  }
  static sample_t samples[MAX_SAMPLES];
  int nsamples = 0, running = RUNNERS, failed = 0;
  while (running > 0 && nsamples < MAX_SAMPLES) {
    samples[nsamples++] = sample_sim();
    for (int i = 0; i < RUNNERS; i++) {
      int status;
      if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        pids[i] = 0;
        running--;
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
      }
    }
    usleep(100 * 1000); /* the sampling period, not a wait for a state */
  }
  samples[nsamples++] = sample_sim();
  int64_t wall = rt_now_ms() - t0;
  cr_assert_eq(running, 0);
  long max_minute = 0;
  for (int i = 0; i < nsamples; i++)
    for (int j = i + 1; j < nsamples && samples[j].at_ms - samples[i].at_ms < 60000;
         j++)
      if (samples[j].requests - samples[i].requests > max_minute)
        max_minute = samples[j].requests - samples[i].requests;
  sample_t last = samples[nsamples - 1];
  long grants = rt_pg_count(dsn, "SELECT count(*) FROM runner.rate_grant");
  fprintf(stderr,
          "shared budget: %ld requests, %ld throttled, at most %ld in a "
          "minute, %ld grants, %lld ms\n",
          last.requests, last.throttled, max_minute, grants, (long long)wall);
  for (int i = 0; i < RUNNERS; i++) {
    char *text = rt_read_file(figures[i]);
    fprintf(stderr, "runner %d: %s", i, text ? text : "(no figures)\n");
    free(text);
  }
  cr_expect_eq(failed, 0, "%d runner processes saw an error or a 429", failed);
  cr_expect_eq(last.requests, RUNNERS * PER_PROCESS);
  cr_expect_eq(last.throttled, 0);
  cr_expect_leq(max_minute, 60);
  cr_expect_gt(grants, 0);
  rt_remove_tree(dir);
  cr_expect_eq(simc_stop(&sim), 0);
}

/* Straight against the bucket: a process that dies holding a grant never
 * hands it back, and its tokens count until the grant's slot has aged out
 * of the window. */
Test(ratelimit_shared, a_dead_holders_grant_counts_until_it_ages_out,
     .timeout = 60) {
  const char *dsn = rt_pg_fresh_db();
  rt_pg_apply_dir(dsn, RT_SOURCE_DIR "/runner/migrations");
  const char *take =
      "SELECT tokens || ' ' || retry_ms FROM runner.rate_take('k', '%s', %d,"
      " '[{\"limit\": 6, \"period_ms\": 1000}]', 0, NULL, 0, 0)";
  char sql[512];
  snprintf(sql, sizeof sql, take, "dead", 5);
  char *got = rt_pg_query(dsn, sql);
  cr_expect_str_eq(got, "5 0");
  free(got);
  int64_t granted_at = rt_now_ms();
  snprintf(sql, sizeof sql, take, "live", 5);
  got = rt_pg_query(dsn, sql);
  cr_expect_str_eq(got, "1 0", "the dead holder's tokens were given again");
  free(got);
  /* The dead grant's slot ends 2 s (the slack) after it started; then it
   * counts for one more period. Asked in a loop, the bucket gives nothing
   * before that and gives again after. */
  int tokens = 0;
  int64_t first_again = 0;
  for (int i = 0; i < 400 && !tokens; i++) {
    got = rt_pg_query(dsn, sql);
    tokens = atoi(got);
    free(got);
    if (tokens)
      first_again = rt_now_ms();
    else
      usleep(20 * 1000); /* polling the bucket's answer */
  }
  cr_assert_gt(tokens, 0, "the budget never came back");
  cr_expect_geq(first_again - granted_at, 2000 + 1000 - 50,
                "tokens came back %lld ms after the dead grant",
                (long long)(first_again - granted_at));
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.rate_grant"
                                " WHERE holder = 'dead' AND NOT returned"),
               1);
}
