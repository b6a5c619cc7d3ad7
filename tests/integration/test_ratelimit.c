/* The host's rate limiter: the windows on an injected clock, FIFO order,
 * pauses from 429 / Retry-After / remaining quota, and the same limiter in
 * front of the HTTP service holding a simulated tenant under its budget. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "ratelimit.h"
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
    {.limit = 200, .period_ms = 60000},
    {.limit = 1500, .period_ms = 3600000},
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

Test(ratelimit_http, keeps_a_simulated_tenant_under_200_a_minute,
     .timeout = 60) {
  enum { N = 500 };
  static result_t res[N];
  int done = 0;
  start("200", NULL);
  cr_assert_eq(h.api->rate_configure(h.ctx, "ninjaone/eu/test",
                                     ninjaone_windows, 2),
               0);
  for (int i = 0; i < N; i++) {
    res[i].done = &done;
    cr_assert_eq(send_one("ninjaone/eu/test", &res[i]), 0);
  }
  for (int i = 0; i < 100 && done < 200; i++)
    spin(50);
  spin(1000); /* a second more: nothing else may go out */
  cr_expect_eq(done, 200);
  rn__http_stats_t st;
  rn__http_get_stats(&h.runner, &st);
  cr_expect_eq(st.waiting, 300, "queued requests failed instead of waiting");
  for (int i = 0; i < N; i++) {
    if (i < 200) {
      cr_expect_eq(res[i].status, 0);
      cr_expect_eq(res[i].http_status, 200, "request %d: HTTP %ld", i,
                   res[i].http_status);
    } else {
      cr_expect_eq(res[i].calls, 0, "request %d went out early", i);
    }
  }
  simc_resp_t r;
  json_t *eu = eu_stats(&r);
  cr_expect_eq(json_integer_value(json_object_get(eu, "requests")), 200);
  cr_expect_eq(json_integer_value(json_object_get(eu, "throttled")), 0);
  simc_resp_free(&r);
  stop(); /* the 300 waiting are cancelled, once each */
  for (int i = 200; i < N; i++) {
    cr_expect_eq(res[i].calls, 1);
    cr_expect_eq(res[i].status, RN_ECANCELED);
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
