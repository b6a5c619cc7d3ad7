/* The NinjaOne client library against the simulator: every endpoint
 * decoded at several page sizes, caps, the token's single flight and
 * renewal, and what each upstream failure turns into. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "nj_internal.h"
#include "rt_host.h"
#include "sim_client.h"

static rt_host_t h;
static sim_proc_t sim;
static char base[128];
static char sim_token[512];

static void start_sim(const char *const *extra) {
  const char *args[32] = {"--generate", "--orgs", "3", "--devices-per-org",
                          "10", "--rate-limit-minute", "0",
                          "--rate-limit-hour", "0", "--seed", "5"};
  int n = 11;
  for (int i = 0; extra && extra[i]; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  cr_assert_eq(simc_start(&sim, args), 0, "simulator did not start");
  snprintf(base, sizeof base, "http://127.0.0.1:%d/eu", sim.port);
  rt_host_open(&h, NULL);
}

static void stop_sim(void) {
  rt_host_close(&h);
  cr_expect_eq(simc_stop(&sim), 0);
}

static nj_client_t *client_with(const char *region, const char *id,
                                const char *secret) {
  nj_client_opts_t o = {0};
  cr_assert_eq(nj_region_parse(region, &o.region), 0);
  char url[160];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", sim.port, region);
  o.base_url = url;
  o.client_id = id;
  o.client_secret = secret;
  o.client_secret_len = strlen(secret);
  o.rate_limit_off = true;
  o.backoff_base_ms = 20;
  o.backoff_max_ms = 200;
  nj_client_t *c;
  char err[256];
  cr_assert_eq(nj_client_new(h.api, h.ctx, &o, &c, err, sizeof err), 0, "%s",
               err);
  return c;
}

static nj_client_t *client(void) {
  return client_with("eu", "sim-eu-client", "sim-eu-secret");
}

/* ----------------------------------------------------------- walking */

typedef struct walk_run_s {
  bool done;
  nj_walk_result_t res;
  char message[NJ_ERR_LEN];
  char **keys;
  size_t nkeys, capkeys;
  int bad_rows;
  int *finished; /* shared counter, optional */
} walk_run_t;

static void add_key(walk_run_t *r, const char *fmt, ...) RN_PRINTF(2, 3);
static void add_key(walk_run_t *r, const char *fmt, ...) {
  if (r->nkeys == r->capkeys) {
    r->capkeys = r->capkeys ? r->capkeys * 2 : 64;
    r->keys = realloc(r->keys, r->capkeys * sizeof *r->keys);
  }
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  r->keys[r->nkeys++] = strdup(buf);
}

static int on_page(const nj_page_t *p, void *data) {
  walk_run_t *r = data;
  for (size_t i = 0; i < p->count; i++) {
    switch (p->endpoint) {
    case NJ_EP_ORGANIZATIONS:
      add_key(r, "%lld", (long long)p->orgs[i].id);
      r->bad_rows += !p->orgs[i].name;
      break;
    case NJ_EP_DEVICES_DETAILED:
      add_key(r, "%lld", (long long)p->devices[i].id);
      r->bad_rows += p->devices[i].organization_id == NJ_ABSENT ||
                     !p->devices[i].node_class || p->devices[i].offline < 0;
      break;
    case NJ_EP_VOLUMES:
      add_key(r, "%lld|%s", (long long)p->volumes[i].device_id,
              p->volumes[i].name ? p->volumes[i].name : "");
      r->bad_rows += p->volumes[i].device_id == NJ_ABSENT ||
                     isnan(p->volumes[i].timestamp);
      break;
    case NJ_EP_AV_STATUS:
      add_key(r, "%lld|%s", (long long)p->av[i].device_id,
              p->av[i].product_name ? p->av[i].product_name : "");
      r->bad_rows += !p->av[i].product_state;
      break;
    case NJ_EP_OS_PATCHES:
      add_key(r, "%s", p->os_patches[i].id ? p->os_patches[i].id : "?");
      r->bad_rows += !p->os_patches[i].status;
      break;
    case NJ_EP_SOFTWARE_PATCHES:
      add_key(r, "%s", p->sw_patches[i].id ? p->sw_patches[i].id : "?");
      r->bad_rows += !p->sw_patches[i].status;
      break;
    case NJ_EP_ACTIVITIES:
      add_key(r, "%lld", (long long)p->activities[i].id);
      r->bad_rows += !p->activities[i].activity_type;
      break;
    default:
      break;
    }
  }
  return 0;
}

static void on_walk_done(nj_walk_t *w, const nj_walk_result_t *res,
                         void *data) {
  (void)w;
  walk_run_t *r = data;
  cr_assert_not(r->done, "walk finished twice");
  r->done = true;
  r->res = *res;
  if (res->message)
    snprintf(r->message, sizeof r->message, "%s", res->message);
  r->res.message = NULL;
  if (r->finished)
    (*r->finished)++;
}

static void run_walk(nj_client_t *c, nj_endpoint_t ep, uint32_t page,
                     const char *df, uint64_t cap, walk_run_t *r) {
  memset(r, 0, sizeof *r);
  nj_walk_opts_t o = {.endpoint = ep, .page_size = page, .df = df,
                      .max_rows = cap};
  cr_assert_eq(nj_walk_start(c, &o, on_page, on_walk_done, r, NULL), 0);
  cr_assert(rt_host_run_until(&h, &r->done, 60000), "walk did not finish");
}

static void free_run(walk_run_t *r) {
  for (size_t i = 0; i < r->nkeys; i++)
    free(r->keys[i]);
  free(r->keys);
  r->keys = NULL;
  r->nkeys = 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The simulator's own walk of the same endpoint, as sorted keys. */
static char **truth(nj_endpoint_t ep, size_t *n) {
  static const char *paths[] = {
      [NJ_EP_ORGANIZATIONS] = "/eu/v2/organizations",
      [NJ_EP_DEVICES_DETAILED] = "/eu/v2/devices-detailed",
      [NJ_EP_VOLUMES] = "/eu/v2/queries/volumes",
      [NJ_EP_AV_STATUS] = "/eu/v2/queries/antivirus-status",
      [NJ_EP_OS_PATCHES] = "/eu/v2/queries/os-patches",
      [NJ_EP_SOFTWARE_PATCHES] = "/eu/v2/queries/software-patches",
      [NJ_EP_ACTIVITIES] = "/eu/v2/activities",
  };
  int pages;
  json_t *rows;
  if (ep == NJ_EP_ORGANIZATIONS || ep == NJ_EP_DEVICES_DETAILED)
    rows = simc_walk_entities(&sim, paths[ep], NULL, sim_token, 1000, &pages);
  else if (ep == NJ_EP_ACTIVITIES)
    rows = simc_walk_activities(&sim, paths[ep], NULL, sim_token, 1000,
                                &pages);
  else
    rows = simc_walk_cursor(&sim, paths[ep],
                            ep == NJ_EP_VOLUMES ? "include=bl" : NULL,
                            sim_token, 1000, &pages);
  cr_assert_not_null(rows);
  *n = json_array_size(rows);
  char **keys = calloc(*n ? *n : 1, sizeof *keys);
  for (size_t i = 0; i < *n; i++) {
    json_t *o = json_array_get(rows, i);
    char buf[256];
    const char *s;
    switch (ep) {
    case NJ_EP_VOLUMES:
      s = json_string_value(json_object_get(o, "name"));
      snprintf(buf, sizeof buf, "%lld|%s",
               (long long)json_integer_value(json_object_get(o, "deviceId")),
               s ? s : "");
      break;
    case NJ_EP_AV_STATUS:
      s = json_string_value(json_object_get(o, "productName"));
      snprintf(buf, sizeof buf, "%lld|%s",
               (long long)json_integer_value(json_object_get(o, "deviceId")),
               s ? s : "");
      break;
    case NJ_EP_OS_PATCHES:
    case NJ_EP_SOFTWARE_PATCHES:
      snprintf(buf, sizeof buf, "%s",
               json_string_value(json_object_get(o, "id")));
      break;
    default:
      snprintf(buf, sizeof buf, "%lld",
               (long long)json_integer_value(json_object_get(o, "id")));
    }
    keys[i] = strdup(buf);
  }
  json_decref(rows);
  qsort(keys, *n, sizeof *keys, cmp_str);
  return keys;
}

static void fetch_sim_token(void) {
  char *t = simc_token(&sim, "eu", "sim-eu-client", "sim-eu-secret",
                       "monitoring");
  cr_assert_not_null(t);
  snprintf(sim_token, sizeof sim_token, "%s", t);
  free(t);
}

static long stat_int(const char *region, const char *field) {
  simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
  cr_assert_not_null(r.json);
  json_t *v = region ? json_object_get(json_object_get(json_object_get(
                                           r.json, "tenants"),
                                       region),
                                       field)
                     : json_object_get(r.json, field);
  long n = v ? (long)json_integer_value(v) : 0;
  simc_resp_free(&r);
  return n;
}

Test(ninjaone_client, decodes_every_endpoint_at_page_sizes_1_7_and_1000,
     .timeout = 240) {
  start_sim(NULL);
  fetch_sim_token();
  nj_client_t *c = client();
  static const uint32_t sizes[] = {1, 7, 1000};
  for (int ep = 0; ep < NJ_EP_COUNT; ep++) {
    size_t nt;
    char **want = truth((nj_endpoint_t)ep, &nt);
    cr_assert_gt(nt, 0, "%s: the fleet has no rows", nj_endpoint_path(ep));
    for (size_t s = 0; s < RN_ARRAY_SIZE(sizes); s++) {
      walk_run_t r;
      run_walk(c, (nj_endpoint_t)ep, sizes[s], NULL, UINT64_MAX, &r);
      cr_expect_eq(r.res.status, 0, "%s at %u: %s", nj_endpoint_path(ep),
                   sizes[s], r.message);
      cr_expect_not(r.res.truncated);
      cr_expect_eq(r.bad_rows, 0, "%s: rows decoded with fields missing",
                   nj_endpoint_path(ep));
      cr_expect_eq(r.nkeys, nt, "%s at page size %u: %zu rows, want %zu",
                   nj_endpoint_path(ep), sizes[s], r.nkeys, nt);
      qsort(r.keys, r.nkeys, sizeof *r.keys, cmp_str);
      for (size_t i = 0; i < r.nkeys && i < nt; i++)
        cr_expect_str_eq(r.keys[i], want[i], "%s at %u: row set differs",
                         nj_endpoint_path(ep), sizes[s]);
      uint32_t eff = ep == NJ_EP_ACTIVITIES && sizes[s] < 10 ? 10 : sizes[s];
      cr_expect_geq(r.res.pages, nt / eff, "%s: %u pages",
                    nj_endpoint_path(ep), r.res.pages);
      free_run(&r);
    }
    for (size_t i = 0; i < nt; i++)
      free(want[i]);
    free(want);
  }
  nj_client_free(c);
  stop_sim();
}

Test(ninjaone_client, caps_mark_the_walk_truncated, .timeout = 60) {
  start_sim(NULL);
  nj_client_t *c = client();
  walk_run_t r;
  run_walk(c, NJ_EP_ORGANIZATIONS, 1000, NULL, 2, &r);
  cr_expect_eq(r.res.status, 0);
  cr_expect_eq(r.nkeys, 2);
  cr_expect(r.res.truncated && r.res.cap_hit);
  free_run(&r);
  /* Exactly at the cap is complete, not truncated. */
  run_walk(c, NJ_EP_DEVICES_DETAILED, 4, "org = 1", 10, &r);
  cr_expect_eq(r.nkeys, 10);
  cr_expect_not(r.res.truncated, "a walk of exactly the cap was truncated");
  free_run(&r);
  run_walk(c, NJ_EP_DEVICES_DETAILED, 4, "org = 1", 9, &r);
  cr_expect_eq(r.nkeys, 9);
  cr_expect(r.res.truncated && r.res.cap_hit);
  free_run(&r);
  nj_client_free(c);
  /* The client's defaults: max_orgs and max_devices_per_org. */
  nj_client_opts_t o = {.region = NJ_REGION_EU, .base_url = base,
                        .client_id = "sim-eu-client",
                        .client_secret = "sim-eu-secret",
                        .client_secret_len = 13, .rate_limit_off = true,
                        .max_orgs = 1, .max_devices_per_org = 3};
  char err[200];
  cr_assert_eq(nj_client_new(h.api, h.ctx, &o, &c, err, sizeof err), 0);
  run_walk(c, NJ_EP_ORGANIZATIONS, 0, NULL, 0, &r);
  cr_expect(r.nkeys == 1 && r.res.truncated);
  free_run(&r);
  run_walk(c, NJ_EP_DEVICES_DETAILED, 0, "org = 2", 0, &r);
  cr_expect(r.nkeys == 3 && r.res.truncated);
  free_run(&r);
  nj_client_free(c);
  stop_sim();
}

Test(ninjaone_client, fifty_concurrent_first_requests_share_one_token,
     .timeout = 60) {
  enum { N = 50 };
  static walk_run_t runs[N];
  int finished = 0;
  start_sim(NULL);
  cr_assert_eq(simc_control(&sim, "reset-stats", "{}"), 200);
  nj_client_t *c = client();
  for (int i = 0; i < N; i++) {
    memset(&runs[i], 0, sizeof runs[i]);
    runs[i].finished = &finished;
    nj_walk_opts_t o = {.endpoint = NJ_EP_ORGANIZATIONS, .page_size = 100};
    cr_assert_eq(nj_walk_start(c, &o, on_page, on_walk_done, &runs[i], NULL),
                 0);
  }
  for (int i = 0; i < 600 && finished < N; i++) {
    bool never = false;
    rt_host_run_until(&h, &never, 50);
  }
  cr_assert_eq(finished, N);
  for (int i = 0; i < N; i++) {
    cr_expect_eq(runs[i].res.status, 0, "%s", runs[i].message);
    cr_expect_eq(runs[i].nkeys, 3);
    free_run(&runs[i]);
  }
  cr_expect_eq(stat_int(NULL, "tokenRequests"), 1);
  simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
  json_t *scopes = json_object_get(r.json, "tokenScopes");
  cr_expect_eq(json_array_size(scopes), 1);
  cr_expect_str_eq(json_string_value(json_array_get(scopes, 0)), "monitoring");
  simc_resp_free(&r);
  /* The generated client is configured wider; that is reported. */
  cr_expect(strstr(nj_client_granted_scope(c), "monitoring"));
  nj_client_free(c);
  stop_sim();
}

Test(ninjaone_client, renews_an_expiring_token_mid_walk, .timeout = 60) {
  const char *extra[] = {"--token-ttl", "2", NULL};
  start_sim(extra);
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"/v2/devices-detailed\","
                            "\"kind\":\"slow\",\"delayMs\":150,\"rate\":1,"
                            "\"count\":40}"),
               200);
  nj_client_t *c = client();
  walk_run_t r;
  run_walk(c, NJ_EP_DEVICES_DETAILED, 1, NULL, 0, &r);
  cr_expect_eq(r.res.status, 0, "%s", r.message);
  cr_expect_eq(r.nkeys, 30);
  cr_expect_not(r.res.truncated);
  cr_expect_geq(stat_int(NULL, "tokenRequests"), 2);
  free_run(&r);
  /* A token revoked upstream: one renewal after the 401, then on. */
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"/v2/organizations\","
                            "\"kind\":\"revoke_token\",\"nth\":2}"),
               200);
  run_walk(c, NJ_EP_ORGANIZATIONS, 1, NULL, 0, &r);
  cr_expect_eq(r.res.status, 0, "%s", r.message);
  cr_expect_eq(r.nkeys, 3);
  nj_client_stats_t st;
  nj_client_get_stats(c, &st);
  cr_expect_eq(st.renewals_401, 1);
  free_run(&r);
  nj_client_free(c);
  stop_sim();
}

Test(ninjaone_client, wrong_region_or_secret_is_one_clear_error,
     .timeout = 60) {
  start_sim(NULL);
  nj_client_t *c = client_with("us", "sim-eu-client", "sim-eu-secret");
  walk_run_t r;
  run_walk(c, NJ_EP_ORGANIZATIONS, 100, NULL, 0, &r);
  cr_expect_eq(r.res.status, RN_EAUTH);
  cr_expect(r.res.truncated);
  cr_expect(strstr(r.message, "region us") && strstr(r.message, "127.0.0.1"),
            "%s", r.message);
  cr_expect(strstr(r.message, "wrong client id/secret or wrong region"), "%s",
            r.message);
  cr_expect(strstr(r.message, "Client app not exist"), "%s", r.message);
  nj_client_free(c);
  c = client_with("eu", "sim-eu-client", "not-the-secret");
  run_walk(c, NJ_EP_ORGANIZATIONS, 100, NULL, 0, &r);
  cr_expect_eq(r.res.status, RN_EAUTH);
  cr_expect(strstr(r.message, "region eu"), "%s", r.message);
  cr_expect_null(strstr(r.message, "not-the-secret"), "secret in a message");
  nj_client_free(c);
  stop_sim();
}

/* Injects one fault rule, walks devices at page size 7, and returns. */
static void walk_with_fault(const char *rule, walk_run_t *r) {
  cr_assert_eq(simc_control(&sim, "faults", rule), 200);
  nj_client_t *c = client();
  run_walk(c, NJ_EP_DEVICES_DETAILED, 7, NULL, 0, r);
  nj_client_free(c);
  simc_resp_t del = simc_request(&sim, "DELETE", "/_sim/faults", NULL, NULL,
                                 NULL);
  simc_resp_free(&del);
}

Test(ninjaone_client, transient_upstream_failures_are_retried,
     .timeout = 90) {
  start_sim(NULL);
  static const char *const rules[] = {
      "{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"http429\","
      "\"nth\":2,\"retryAfter\":1}",
      "{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"html_throttle\","
      "\"nth\":2}",
      "{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"http500\","
      "\"nth\":2,\"count\":2}",
      "{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"drop\",\"nth\":3}",
      "{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"truncate\","
      "\"nth\":2}",
      "{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"malformed\","
      "\"nth\":4}",
      "{\"endpoint\":\"/ws/oauth/token\",\"kind\":\"http500\",\"nth\":1}",
  };
  for (size_t i = 0; i < RN_ARRAY_SIZE(rules); i++) {
    walk_run_t r;
    walk_with_fault(rules[i], &r);
    cr_expect_eq(r.res.status, 0, "%s: %s", rules[i], r.message);
    cr_expect_eq(r.nkeys, 30, "%s: %zu rows", rules[i], r.nkeys);
    cr_expect_not(r.res.truncated, "%s", rules[i]);
    qsort(r.keys, r.nkeys, sizeof *r.keys, cmp_str);
    for (size_t k = 1; k < r.nkeys; k++)
      cr_expect_str_neq(r.keys[k - 1], r.keys[k], "%s: a row twice", rules[i]);
    free_run(&r);
  }
  stop_sim();
}

Test(ninjaone_client, persistent_failures_end_the_walk_truncated,
     .timeout = 90) {
  start_sim(NULL);
  static const struct {
    const char *rule;
    int status;
    const char *needle;
  } cases[] = {
      {"{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"http500\","
       "\"rate\":1,\"count\":100}",
       RN_EUPSTREAM, "incidentId"},
      {"{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"drop\","
       "\"rate\":1,\"count\":100}",
       RN_EHTTP, "attempts"},
      {"{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"truncate\","
       "\"rate\":1,\"count\":100}",
       RN_EJSON, "not valid JSON"},
      {"{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"malformed\","
       "\"rate\":1,\"count\":100}",
       RN_EJSON, "not valid JSON"},
      {"{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"html_throttle\","
       "\"rate\":1,\"count\":100}",
       RN_ETHROTTLED, "throttled"},
  };
  for (size_t i = 0; i < RN_ARRAY_SIZE(cases); i++) {
    walk_run_t r;
    walk_with_fault(cases[i].rule, &r);
    cr_expect_eq(r.res.status, cases[i].status, "%s: got %s (%s)",
                 cases[i].rule, rn__err_name(r.res.status), r.message);
    cr_expect(r.res.truncated, "%s: a failed walk not marked truncated",
              cases[i].rule);
    cr_expect(strstr(r.message, cases[i].needle), "%s: message \"%s\"",
              cases[i].rule, r.message);
    cr_expect(strstr(r.message, "/v2/devices-detailed"), "%s", r.message);
    free_run(&r);
  }
  /* A late failure after some pages: still an error, never a success. */
  walk_run_t r;
  walk_with_fault("{\"endpoint\":\"/v2/devices-detailed\",\"kind\":"
                  "\"http500\",\"nth\":3,\"count\":100}",
                  &r);
  cr_expect_eq(r.res.status, RN_EUPSTREAM);
  cr_expect_gt(r.nkeys, 0);
  cr_expect(r.res.truncated);
  free_run(&r);
  stop_sim();
}

/* NinjaOne throttles with a 200 HTML page the host cannot recognise; the
 * client has the host pause the whole key, so the tenant's other walks
 * wait instead of collecting throttle pages of their own. */
Test(ninjaone_client, an_html_throttle_page_pauses_every_walk_of_the_tenant,
     .timeout = 150) {
  const char *extra[] = {"--rate-limit-minute", "4", "--throttle-mode", "html",
                         NULL};
  start_sim(extra);
  nj_client_opts_t o = {.region = NJ_REGION_EU,
                        .base_url = base,
                        .client_id = "sim-eu-client",
                        .client_secret = "sim-eu-secret",
                        .client_secret_len = strlen("sim-eu-secret"),
                        .rate_limit_off = true,
                        .max_throttle_retries = 60,
                        .backoff_base_ms = 2000,
                        .backoff_max_ms = 8000};
  nj_client_t *c;
  char err[256];
  cr_assert_eq(nj_client_new(h.api, h.ctx, &o, &c, err, sizeof err), 0, "%s",
               err);
  cr_assert_eq(simc_control(&sim, "reset-stats", "{}"), 200);
  enum { N = 4 };
  static walk_run_t runs[N];
  int finished = 0;
  for (int i = 0; i < N; i++) {
    memset(&runs[i], 0, sizeof runs[i]);
    runs[i].finished = &finished;
  }
  /* Five pages against a budget of four: the fifth gets the HTML page. */
  nj_walk_opts_t dev = {.endpoint = NJ_EP_DEVICES_DETAILED, .page_size = 7};
  cr_assert_eq(nj_walk_start(c, &dev, on_page, on_walk_done, &runs[0], NULL),
               0);
  nj_client_stats_t cs = {0};
  bool never = false;
  for (int i = 0; i < 2000 && cs.throttled == 0; i++) {
    rt_host_run_until(&h, &never, 5);
    nj_client_get_stats(c, &cs);
  }
  cr_assert_eq(cs.throttled, 1, "no throttle page seen");
  long requests = stat_int("eu", "requests");
  cr_expect_eq(stat_int("eu", "throttled"), 1);

  /* Three more walks while the key is paused (at least a second, half the
   * first backoff): none of them reaches NinjaOne yet. The loop runs for
   * what is left of the pause less a margin, however long the lines
   * before took on a loaded machine. */
  nj_walk_opts_t orgs = {.endpoint = NJ_EP_ORGANIZATIONS, .page_size = 100};
  for (int i = 1; i < N; i++)
    cr_assert_eq(
        nj_walk_start(c, &orgs, on_page, on_walk_done, &runs[i], NULL), 0);
  rn__rate_t *rate = rn__http_rate(&h.runner);
  rn__rate_key_t *key = rn__rate_key(rate, nj_client_rate_key(c), false);
  cr_assert_not_null(key);
  rn__rate_stats_t rs;
  rn__rate_get_stats(key, &rs);
  int64_t pause_left = rs.paused_until_ms - rn__rate_now(rate) - 200;
  rt_host_run_until(&h, &never, pause_left > 0 ? (int)pause_left : 0);
  cr_expect_eq(stat_int("eu", "requests"), requests,
               "requests reached NinjaOne while the key was paused");
  cr_expect_eq(stat_int("eu", "throttled"), 1);
  rn__rate_get_stats(key, &rs);
  cr_expect_eq(rs.queued, N - 1, "%zu requests wait for the key", rs.queued);
  cr_expect_gt(rs.paused_until_ms, 0);
  cr_expect_eq(rs.throttled, 1);

  /* The minute window reopens and every walk completes in full. */
  for (int i = 0; i < 2400 && finished < N; i++)
    rt_host_run_until(&h, &never, 50);
  cr_assert_eq(finished, N);
  for (int i = 0; i < N; i++) {
    cr_expect_eq(runs[i].res.status, 0, "walk %d: %s", i, runs[i].message);
    cr_expect_not(runs[i].res.truncated, "walk %d", i);
    cr_expect_eq(runs[i].nkeys, i == 0 ? 30 : 3, "walk %d: %zu rows", i,
                 runs[i].nkeys);
    free_run(&runs[i]);
  }
  /* Throttle pages only ever came back to requests sent between pauses,
   * and the limiter counted each one. */
  nj_client_get_stats(c, &cs);
  rn__rate_get_stats(key, &rs);
  cr_expect_eq((long)cs.throttled, stat_int("eu", "throttled"));
  cr_expect_eq(rs.throttled, cs.throttled);
  nj_client_free(c);
  stop_sim();
}

Test(ninjaone_client, cancelling_100_walks_and_unloading_leaks_nothing,
     .timeout = 60) {
  enum { N = 100 };
  static walk_run_t runs[N];
  static nj_walk_t *walks[N];
  int finished = 0;
  start_sim(NULL);
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"*\",\"kind\":\"slow\","
                            "\"delayMs\":3000,\"rate\":1,\"count\":1000}"),
               200);
  nj_client_t *c = client();
  for (int i = 0; i < N; i++) {
    memset(&runs[i], 0, sizeof runs[i]);
    runs[i].finished = &finished;
    nj_walk_opts_t o = {.endpoint = NJ_EP_DEVICES_DETAILED, .page_size = 5};
    cr_assert_eq(
        nj_walk_start(c, &o, on_page, on_walk_done, &runs[i], &walks[i]), 0);
  }
  bool never = false;
  rt_host_run_until(&h, &never, 500);
  for (int i = 0; i < N / 2; i++)
    nj_walk_cancel(walks[i]);
  for (int i = 0; i < 100 && finished < N / 2; i++)
    rt_host_run_until(&h, &never, 20);
  cr_expect_eq(finished, N / 2);
  /* The rest go with the unload. */
  rt_host_close(&h);
  cr_expect_eq(finished, N);
  for (int i = 0; i < N; i++) {
    cr_expect_eq(runs[i].res.status, RN_ECANCELED);
    cr_expect(runs[i].res.truncated);
    free_run(&runs[i]);
  }
  nj_client_free(c);
  rt_host_open(&h, NULL);
  stop_sim();
}

/* ---------------------------------------------------- decoding alone */

static int decode(nj_endpoint_t ep, const char *body, nj_decoded_t *d,
                  bool *parse, char *msg) {
  return nj__decode_page(ep, body, strlen(body), d, parse, msg, NJ_ERR_LEN);
}

Test(ninjaone_decode, tolerates_omitted_fields_nulls_and_unknown_keys) {
  nj_decoded_t d;
  bool parse;
  char msg[NJ_ERR_LEN];
  cr_assert_eq(decode(NJ_EP_DEVICES_DETAILED,
                      "[{\"id\":5,\"systemName\":null,\"nodeId\":9,"
                      "\"os\":null,\"volumes\":[{\"name\":\"C:\","
                      "\"nodeId\":3}],\"created\":1743088826.52},"
                      "{\"id\":6,\"offline\":true,\"ipAddresses\":"
                      "[\"10.0.0.1\",null]}]",
                      &d, &parse, msg),
               0, "%s", msg);
  const nj_device_t *dev = d.rows;
  cr_expect_eq(d.count, 2);
  cr_expect_null(dev[0].system_name);
  cr_expect_eq(dev[0].offline, -1);
  cr_expect_eq(dev[0].organization_id, NJ_ABSENT);
  cr_expect_eq(dev[0].n_disks, 1);
  cr_expect_str_eq(dev[0].disks[0].name, "C:");
  cr_expect_eq(dev[0].disks[0].capacity, NJ_ABSENT);
  cr_expect_float_eq(dev[0].created, 1743088826.52, 1e-6);
  cr_expect_eq(dev[1].offline, 1);
  cr_expect_eq(dev[1].n_ip_addresses, 1);
  cr_expect_eq(d.last_id, 6);
  nj__decoded_free(&d);
  cr_assert_eq(decode(NJ_EP_VOLUMES,
                      "{\"cursor\":{\"name\":\"abc\",\"offset\":0},"
                      "\"results\":[{\"deviceId\":1,\"bitLockerStatus\":"
                      "{\"protectionStatus\":\"PROTECTED\"}},"
                      "{\"deviceId\":2}]}",
                      &d, &parse, msg),
               0, "%s", msg);
  const nj_volume_t *v = d.rows;
  cr_expect(v[0].bitlocker.present);
  cr_expect_str_eq(v[0].bitlocker.protection_status, "PROTECTED");
  cr_expect_not(v[1].bitlocker.present);
  cr_expect_str_eq(d.cursor_name, "abc");
  nj__decoded_free(&d);
}

Test(ninjaone_decode, names_endpoint_row_and_field_of_a_wrong_type) {
  nj_decoded_t d;
  bool parse;
  char msg[NJ_ERR_LEN];
  cr_expect_eq(decode(NJ_EP_DEVICES_DETAILED,
                      "[{\"id\":1},{\"id\":2,\"systemName\":42}]", &d, &parse,
                      msg),
               RN_EJSON);
  cr_expect_not(parse);
  cr_expect(strstr(msg, "/v2/devices-detailed") && strstr(msg, "row 2") &&
                strstr(msg, "systemName") && strstr(msg, "a number"),
            "%s", msg);
  nj__decoded_free(&d);
  cr_expect_eq(decode(NJ_EP_VOLUMES,
                      "{\"results\":[{\"bitLockerStatus\":{\"lockStatus\":"
                      "true}}]}",
                      &d, &parse, msg),
               RN_EJSON);
  cr_expect(strstr(msg, "bitLockerStatus.lockStatus"), "%s", msg);
  nj__decoded_free(&d);
  cr_expect_eq(decode(NJ_EP_ACTIVITIES, "{\"activities\":{}}", &d, &parse,
                      msg),
               RN_EJSON);
  nj__decoded_free(&d);
  cr_expect_eq(decode(NJ_EP_ORGANIZATIONS, "[{\"id\":1}", &d, &parse, msg),
               RN_EJSON);
  cr_expect(parse, "truncated JSON not reported as unparseable");
  nj__decoded_free(&d);
  cr_expect_eq(decode(NJ_EP_ORGANIZATIONS, "[{\"id\":\"7\"}]", &d, &parse,
                      msg),
               RN_EJSON);
  cr_expect(strstr(msg, "'id'"), "%s", msg);
  nj__decoded_free(&d);
}

/* A page is read row by row around jansson: the text between the rows
 * (white space, commas, the enclosing object's other members) must be read
 * exactly as a whole-text parser would. */
Test(ninjaone_decode, reads_the_text_around_the_rows_as_json_does) {
  static const struct {
    nj_endpoint_t ep;
    const char *body;
    int rc;        /* 0, or RN_EJSON */
    bool parse;    /* refused as not JSON (worth a retry) */
    size_t count;  /* rows, when decoded */
    const char *needle;
  } cases[] = {
      {NJ_EP_DEVICES_DETAILED, " [ ] ", 0, false, 0, NULL},
      {NJ_EP_DEVICES_DETAILED, "\n[\n{\"id\":1} ,\r\n\t{\"id\":2}\n]\n", 0,
       false, 2, NULL},
      {NJ_EP_ACTIVITIES,
       "{\"lastActivityId\":9,\"activities\":[{\"id\":9},{\"id\":8}],"
       "\"more\":{\"a\":[1,{\"b\":\"]}\"}]}}",
       0, false, 2, NULL},
      {NJ_EP_VOLUMES, "{\"results\":null,\"cursor\":null}", 0, false, 0,
       NULL},
      {NJ_EP_VOLUMES, "{}", 0, false, 0, NULL},
      {NJ_EP_DEVICES_DETAILED, "", RN_EJSON, true, 0, "not valid JSON"},
      {NJ_EP_DEVICES_DETAILED, "[{\"id\":1}] x", RN_EJSON, true, 0,
       "end of text expected at byte 11"},
      {NJ_EP_DEVICES_DETAILED, "[{\"id\":1} {\"id\":2}]", RN_EJSON, true, 0,
       "',' or ']' expected"},
      {NJ_EP_DEVICES_DETAILED, "[{\"id\":1},]", RN_EJSON, true, 0,
       "not valid JSON"},
      {NJ_EP_DEVICES_DETAILED, "[{\"id\":1,\"id\":2}]", RN_EJSON, true, 0,
       "duplicate"},
      {NJ_EP_VOLUMES, "{\"results\":[],\"results\":[]}", RN_EJSON, true, 0,
       "duplicate key"},
      {NJ_EP_VOLUMES, "{\"results\":[] \"cursor\":{}}", RN_EJSON, true, 0,
       "',' or '}' expected"},
      {NJ_EP_VOLUMES, "{\"results\" []}", RN_EJSON, true, 0,
       "a key and ':' expected"},
      {NJ_EP_VOLUMES, "{\"results\":{}}", RN_EJSON, false, 0,
       "'results' is an object, expected an array"},
      {NJ_EP_VOLUMES, "{\"cursor\":[]}", RN_EJSON, false, 0,
       "'cursor' is an array, expected an object"},
      {NJ_EP_DEVICES_DETAILED, "{\"id\":1}", RN_EJSON, false, 0,
       "is an object, expected an array"},
      {NJ_EP_ACTIVITIES, "[]", RN_EJSON, false, 0,
       "is an array, expected an object"},
      {NJ_EP_DEVICES_DETAILED, "[{\"id\":1},7]", RN_EJSON, false, 0,
       "row 2 is a number, expected an object"},
  };
  for (size_t i = 0; i < RN_ARRAY_SIZE(cases); i++) {
    nj_decoded_t d;
    bool parse;
    char msg[NJ_ERR_LEN] = "";
    int rc = decode(cases[i].ep, cases[i].body, &d, &parse, msg);
    cr_expect_eq(rc, cases[i].rc, "case %zu: %s", i, msg);
    cr_expect_eq(parse, cases[i].parse, "case %zu: %s", i, msg);
    if (rc == 0)
      cr_expect_eq(d.count, cases[i].count, "case %zu", i);
    if (cases[i].needle)
      cr_expect(strstr(msg, cases[i].needle), "case %zu: \"%s\"", i, msg);
    nj__decoded_free(&d);
  }
}

/* Strings are copied out of each row's tree, which is freed before the
 * next row: they must outlive it, escapes decoded, on a page long enough
 * to grow the rows more than once. */
Test(ninjaone_decode, rows_own_their_strings_on_a_long_page) {
  enum { ROWS = 700 };
  char *body = malloc(ROWS * 128 + 16);
  cr_assert_not_null(body);
  size_t n = (size_t)sprintf(body, "[");
  for (int i = 0; i < ROWS; i++)
    n += (size_t)sprintf(body + n,
                         "%s{\"id\":%d,\"systemName\":\"host-%d\\u00e9\\\"\","
                         "\"ipAddresses\":[\"10.0.%d.%d\"]}",
                         i ? "," : "", 1000 - i, i, i / 256, i % 256);
  strcpy(body + n, "]");
  nj_decoded_t d;
  bool parse;
  char msg[NJ_ERR_LEN];
  cr_assert_eq(decode(NJ_EP_DEVICES_DETAILED, body, &d, &parse, msg), 0, "%s",
               msg);
  free(body);
  cr_assert_eq(d.count, ROWS);
  const nj_device_t *dev = d.rows;
  char want[64];
  for (int i = 0; i < ROWS; i++) {
    snprintf(want, sizeof want, "host-%d\xc3\xa9\"", i);
    cr_expect_str_eq(dev[i].system_name, want);
    snprintf(want, sizeof want, "10.0.%d.%d", i / 256, i % 256);
    cr_expect_eq(dev[i].n_ip_addresses, 1);
    cr_expect_str_eq(dev[i].ip_addresses[0], want);
  }
  cr_expect_eq(d.last_id, 1000 - ROWS + 1);
  cr_expect_eq(d.min_id, 1000 - ROWS + 1);
  nj__decoded_free(&d);
}

Test(ninjaone_regions, know_the_five_hosts) {
  nj_region_t r;
  cr_expect_eq(nj_region_parse("US", &r), 0);
  cr_expect_str_eq(nj_region_host(r), "app.ninjarmm.com");
  cr_expect_eq(nj_region_parse("us2", &r), 0);
  cr_expect_str_eq(nj_region_host(r), "us2.ninjarmm.com");
  cr_expect_eq(nj_region_parse("eu", &r), 0);
  cr_expect_str_eq(nj_region_host(r), "eu.ninjarmm.com");
  cr_expect_eq(nj_region_parse("ca", &r), 0);
  cr_expect_str_eq(nj_region_host(r), "ca.ninjarmm.com");
  cr_expect_eq(nj_region_parse("oc", &r), 0);
  cr_expect_str_eq(nj_region_host(r), "oc.ninjarmm.com");
  cr_expect_eq(nj_region_parse("uk", &r), RN_EINVAL);
}

/* ------------------------------------------------- one token a process */

typedef struct auth_run_s {
  bool done;
  int status;
} auth_run_t;

static void on_authenticated(nj_client_t *c, int status, const char *message,
                             void *data) {
  (void)c;
  (void)message;
  auth_run_t *a = data;
  cr_assert_not(a->done, "authenticate called back twice");
  a->done = true;
  a->status = status;
}

static int authenticate(nj_client_t *c) {
  auth_run_t a = {0};
  cr_assert_eq(nj_client_authenticate(c, on_authenticated, &a), 0);
  cr_assert(rt_host_run_until(&h, &a.done, 60000), "no token");
  return a.status;
}

static long endpoint_requests(const char *path) {
  simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
  json_t *v = json_object_get(
      json_object_get(json_object_get(json_object_get(r.json, "tenants"), "eu"),
                      "endpoints"),
      path);
  long n = v ? (long)json_integer_value(v) : 0;
  simc_resp_free(&r);
  return n;
}

/* Jobs come and go, each with a client of its own (a mapping command, a
 * customer's sweep): one token serves them all while it lives, and signing
 * in costs no API request. A wrong secret is never handed that token. */
Test(ninjaone_client, clients_one_after_another_share_one_token,
     .timeout = 60) {
  start_sim(NULL);
  cr_assert_eq(simc_control(&sim, "reset-stats", "{}"), 200);
  for (int job = 0; job < 3; job++) {
    nj_client_t *c = client();
    cr_expect_eq(authenticate(c), 0);
    walk_run_t r;
    run_walk(c, NJ_EP_ORGANIZATIONS, 100, NULL, 0, &r);
    cr_expect_eq(r.res.status, 0, "%s", r.message);
    cr_expect_eq(r.nkeys, 3);
    free_run(&r);
    nj_client_stats_t st;
    nj_client_get_stats(c, &st);
    cr_expect_eq(st.requests, 1);
    cr_expect_eq(st.endpoint_requests[NJ_EP_ORGANIZATIONS], 1);
    cr_expect_eq(st.token_requests, job == 0 ? 1 : 0, "job %d", job);
    cr_expect_eq(st.token_cache_hits, job == 0 ? 0 : 1, "job %d", job);
    nj_client_free(c);
  }
  cr_expect_eq(stat_int("eu", "tokenRequests"), 1);
  cr_expect_eq(endpoint_requests("/v2/organizations"), 3);
  cr_expect_eq(stat_int("eu", "requests"), 3);
  /* Same client id, wrong secret: its own token request, refused. */
  nj_client_t *bad = client_with("eu", "sim-eu-client", "not-the-secret");
  cr_expect_eq(authenticate(bad), RN_EAUTH);
  nj_client_free(bad);
  cr_expect_eq(stat_int("eu", "tokenRequests"), 2);
  stop_sim();
}

/* Clients of one credential starting at once: one token request between
 * them; a 401 drops the shared token and one renewal serves the others. */
Test(ninjaone_client, concurrent_clients_share_one_token_request,
     .timeout = 60) {
  enum { N = 8 };
  static walk_run_t runs[N];
  nj_client_t *clients[N];
  int finished = 0;
  start_sim(NULL);
  cr_assert_eq(simc_control(&sim, "reset-stats", "{}"), 200);
  for (int i = 0; i < N; i++) {
    clients[i] = client();
    memset(&runs[i], 0, sizeof runs[i]);
    runs[i].finished = &finished;
    nj_walk_opts_t o = {.endpoint = NJ_EP_ORGANIZATIONS, .page_size = 100};
    cr_assert_eq(
        nj_walk_start(clients[i], &o, on_page, on_walk_done, &runs[i], NULL),
        0);
  }
  for (int i = 0; i < 600 && finished < N; i++) {
    bool never = false;
    rt_host_run_until(&h, &never, 50);
  }
  cr_assert_eq(finished, N);
  uint64_t tokens = 0;
  for (int i = 0; i < N; i++) {
    cr_expect_eq(runs[i].res.status, 0, "%s", runs[i].message);
    free_run(&runs[i]);
    nj_client_stats_t st;
    nj_client_get_stats(clients[i], &st);
    tokens += st.token_requests;
  }
  cr_expect_eq(stat_int("eu", "tokenRequests"), 1);
  cr_expect_eq(tokens, 1, "the clients' own figures agree");
  for (int i = 0; i < N; i++)
    nj_client_free(clients[i]);
  stop_sim();
}

/* --------------------------------------------------- bounded pages */

typedef struct capped_s {
  const char *rate_key;
  unsigned max_key, max_all;
  uint64_t devices;
  int finished;
  int failed;
} capped_t;

static int on_capped_page(const nj_page_t *p, void *data) {
  capped_t *c = data;
  unsigned k = nj__pages_in_flight(c->rate_key), a = nj__pages_in_flight(NULL);
  if (k > c->max_key)
    c->max_key = k;
  if (a > c->max_all)
    c->max_all = a;
  c->devices += p->count;
  return 0;
}

static void on_capped_done(nj_walk_t *w, const nj_walk_result_t *res,
                           void *data) {
  (void)w;
  capped_t *c = data;
  c->finished++;
  c->failed += res->status != 0;
}

/* However many walks run, a credential has at most max_pages_in_flight
 * pages sent, buffered or being decoded, and the plugin at most 8. */
Test(ninjaone_client, many_walks_hold_no_more_pages_than_the_caps,
     .timeout = 120) {
  enum { N = 20 };
  start_sim(NULL);
  char url[160];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/eu", sim.port);
  nj_client_opts_t o = {.region = NJ_REGION_EU,
                        .base_url = url,
                        .client_id = "sim-eu-client",
                        .client_secret = "sim-eu-secret",
                        .client_secret_len = strlen("sim-eu-secret"),
                        .rate_limit_off = true,
                        .max_pages_in_flight = 3};
  nj_client_t *c;
  char err[256];
  cr_assert_eq(nj_client_new(h.api, h.ctx, &o, &c, err, sizeof err), 0, "%s",
               err);
  capped_t cap = {.rate_key = nj_client_rate_key(c)};
  for (int i = 0; i < N; i++) {
    nj_walk_opts_t wo = {.endpoint = NJ_EP_DEVICES_DETAILED, .page_size = 4};
    cr_assert_eq(
        nj_walk_start(c, &wo, on_capped_page, on_capped_done, &cap, NULL), 0);
  }
  for (int i = 0; i < 2400 && cap.finished < N; i++) {
    bool never = false;
    rt_host_run_until(&h, &never, 50);
  }
  cr_assert_eq(cap.finished, N);
  cr_expect_eq(cap.failed, 0);
  cr_expect_eq(cap.devices, (uint64_t)N * 30);
  cr_expect_leq(cap.max_key, 3);
  cr_expect_geq(cap.max_key, 2, "the walks did overlap");
  cr_expect_leq(cap.max_all, NJ_MAX_PAGES_IN_FLIGHT);
  cr_expect_eq(nj__pages_in_flight(NULL), 0, "every slot given back");
  nj_client_free(c);
  stop_sim();
}

typedef struct process_capped_s {
  const char *key_a, *key_b;
  unsigned max_held, max_a, max_b;
  uint64_t devices_a, devices_b;
  int finished;
  int failed;
} process_capped_t;

static int on_process_capped_page(const nj_page_t *p, void *data) {
  process_capped_t *c = data;
  unsigned n = rn__slots_held(&h.runner, NULL);
  unsigned a = nj__pages_in_flight(c->key_a), b = nj__pages_in_flight(c->key_b);
  if (n > c->max_held)
    c->max_held = n;
  if (a > c->max_a)
    c->max_a = a;
  if (b > c->max_b)
    c->max_b = b;
  (void)p;
  return 0;
}

static void on_process_capped_done(nj_walk_t *w, const nj_walk_result_t *res,
                                   void *data) {
  (void)w;
  process_capped_t *c = data;
  c->finished++;
  c->failed += res->status != 0;
}

/* Two credentials, each allowed 3 pages, share the process's max_pages_held
 * of 3: the host's page slots cap every walk of the process together. */
Test(ninjaone_client, walks_of_two_credentials_share_the_process_page_cap,
     .timeout = 120) {
  enum { N = 10 };
  start_sim(NULL);
  h.gen->config->max_pages_held = 3;
  h.gen->config->max_pages_per_key = 3;
  char url[160];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/eu", sim.port);
  /* The same sim credential under two regions: two rate keys. */
  nj_client_opts_t o = {.region = NJ_REGION_EU,
                        .base_url = url,
                        .client_id = "sim-eu-client",
                        .client_secret = "sim-eu-secret",
                        .client_secret_len = strlen("sim-eu-secret"),
                        .rate_limit_off = true,
                        .max_pages_in_flight = 3};
  nj_client_t *ca, *cb;
  char err[256];
  cr_assert_eq(nj_client_new(h.api, h.ctx, &o, &ca, err, sizeof err), 0, "%s",
               err);
  o.region = NJ_REGION_US;
  cr_assert_eq(nj_client_new(h.api, h.ctx, &o, &cb, err, sizeof err), 0, "%s",
               err);
  process_capped_t cap = {.key_a = nj_client_rate_key(ca),
                          .key_b = nj_client_rate_key(cb)};
  cr_assert_str_neq(cap.key_a, cap.key_b);
  for (int i = 0; i < N; i++) {
    nj_walk_opts_t wo = {.endpoint = NJ_EP_DEVICES_DETAILED, .page_size = 4};
    cr_assert_eq(nj_walk_start(i % 2 ? cb : ca, &wo, on_process_capped_page,
                               on_process_capped_done, &cap, NULL),
                 0);
  }
  for (int i = 0; i < 2400 && cap.finished < N; i++) {
    bool never = false;
    rt_host_run_until(&h, &never, 50);
  }
  cr_assert_eq(cap.finished, N);
  cr_expect_eq(cap.failed, 0);
  cr_expect_leq(cap.max_held, 3, "held %u pages at once", cap.max_held);
  cr_expect_geq(cap.max_held, 2, "the walks did overlap");
  cr_expect_geq(cap.max_a, 1);
  cr_expect_geq(cap.max_b, 1);
  cr_expect_eq(rn__slots_held(&h.runner, NULL), 0, "every slot given back");
  nj_client_free(ca);
  nj_client_free(cb);
  stop_sim();
}

/* ------------------------------------------ the host's upstream counts */

typedef struct upstream_seen_s {
  const char *key;
  uint64_t orgs, devices, token, throttled;
} upstream_seen_t;

static void on_upstream(const char *key, const char *endpoint,
                        uint64_t requests, uint64_t throttled, void *data) {
  upstream_seen_t *u = data;
  if (strcmp(key, u->key) != 0)
    return;
  if (strcmp(endpoint, "/eu/v2/organizations") == 0)
    u->orgs += requests;
  else if (strcmp(endpoint, "/eu/v2/devices-detailed") == 0)
    u->devices += requests;
  else if (strcmp(endpoint, "/eu/ws/oauth/token") == 0)
    u->token += requests;
  u->throttled += throttled;
}

/* What /metrics shows per rate key and endpoint is what NinjaOne saw:
 * token requests included (they carry the tenant's key), 429s counted. */
Test(ninjaone_client, host_counts_upstream_requests_by_key_and_endpoint,
     .timeout = 60) {
  start_sim(NULL);
  cr_assert_eq(simc_control(&sim, "reset-stats", "{}"), 200);
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"/v2/devices-detailed\","
                            "\"kind\":\"http429\",\"rate\":1,\"count\":1,"
                            "\"retryAfter\":0}"),
               200);
  nj_client_t *c = client();
  walk_run_t r;
  run_walk(c, NJ_EP_ORGANIZATIONS, 2, NULL, 0, &r);
  cr_expect_eq(r.res.status, 0, "%s", r.message);
  free_run(&r);
  run_walk(c, NJ_EP_DEVICES_DETAILED, 1000, NULL, 0, &r);
  cr_expect_eq(r.res.status, 0, "%s", r.message);
  free_run(&r);
  upstream_seen_t seen = {.key = nj_client_rate_key(c)};
  rn__http_upstream_foreach(&h.runner, on_upstream, &seen);
  cr_expect_eq(seen.orgs, (uint64_t)endpoint_requests("/v2/organizations"));
  cr_expect_eq(seen.devices,
               (uint64_t)endpoint_requests("/v2/devices-detailed"));
  cr_expect_eq(seen.devices, 2, "the 429 and its retry");
  cr_expect_eq(seen.token, (uint64_t)stat_int("eu", "tokenRequests"));
  cr_expect_eq(seen.token, 1);
  cr_expect_eq(seen.throttled, 1, "the injected 429");
  nj_client_stats_t st;
  nj_client_get_stats(c, &st);
  cr_expect_eq(st.requests, seen.orgs + seen.devices);
  cr_expect_eq(st.throttled_429, 1);
  nj_client_free(c);
  stop_sim();
}

/* Another plugin of the process holds the host cache's claim on the token:
 * this client asks no token of its own but waits for the one put there. */
Test(ninjaone_client, waits_for_a_token_another_plugin_is_fetching,
     .timeout = 60) {
  start_sim(NULL);
  cr_assert_eq(simc_control(&sim, "reset-stats", "{}"), 200);
  nj_client_t *c = client();
  char *v = NULL;
  size_t len = 0;
  int64_t until = 0;
  cr_assert_eq(h.api->token_get(h.ctx, c->cache_key, &v, &len, &until),
               RN_ENOENT, "the claim is ours");
  auth_run_t a = {0};
  cr_assert_eq(nj_client_authenticate(c, on_authenticated, &a), 0);
  cr_expect_not(rt_host_run_until(&h, &a.done, 300), "no token yet");
  cr_expect_eq(stat_int(NULL, "tokenRequests"), 0, "it waits, asks none");
  char *token =
      simc_token(&sim, "eu", "sim-eu-client", "sim-eu-secret", "monitoring");
  cr_assert(token);
  char value[600];
  int n = snprintf(value, sizeof value, "monitoring\n%s", token);
  free(token);
  cr_assert_eq(h.api->token_put(h.ctx, c->cache_key, value, (size_t)n,
                                h.api->now_ms(h.ctx) + 600000),
               0);
  cr_assert(rt_host_run_until(&h, &a.done, 5000), "the token was not taken");
  cr_expect_eq(a.status, 0);
  walk_run_t r;
  run_walk(c, NJ_EP_ORGANIZATIONS, 100, NULL, 0, &r);
  cr_expect_eq(r.res.status, 0, "%s", r.message);
  free_run(&r);
  cr_expect_eq(stat_int(NULL, "tokenRequests"), 1, "only the other one's");
  cr_expect_str_eq(nj_client_granted_scope(c), "monitoring");
  nj_client_free(c);
  stop_sim();
}
