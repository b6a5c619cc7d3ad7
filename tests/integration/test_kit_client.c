/* The kit's API client against graph-sim over real sockets, as a Microsoft
 * Graph source would use it: client-credentials tokens shared by every
 * client of a credential, @odata.nextLink paging kept on the API's origin,
 * 429s absorbed, a revoked token renewed once, refused credentials named;
 * and the after-id, before-id and cursor walkers against ninjaone-sim. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regentra/kit.h"
#include "rt.h"
#include "rt_host.h"
#include "sim_client.h"

#define APP "6d1f0c2a-4b7e-4f3a-9a51-0c8e2d7b1f90"
#define SECRET "demo-graph-secret"
#define CONTOSO "3f2a9c4e-7b1d-4e8a-9c2f-5d6e7f8a9b01"
#define CONTOSO_DEVICES 7
#define DEVICES "/v1.0/deviceManagement/managedDevices"

static rt_host_t h;
static sim_proc_t sim;

static void start(void) {
  const char *args[] = {"--fleet", GRAPH_FIXTURES "/demo.json", NULL};
  cr_assert_eq(simc_start(&sim, args), 0, "graph-sim did not start");
  rt_host_open(&h, NULL);
}

static void stop(void) {
  rt_host_close(&h);
  cr_expect_eq(simc_stop(&sim), 0);
}

TestSuite(kit_client, .init = start, .fini = stop, .timeout = 60);

static const char *const labels[] = {DEVICES};

/* A client of the demo app for a tenant; api_host names the Graph host
 * ("127.0.0.1", or "localhost" for another origin than the one graph-sim
 * writes into its next links). */
static rk_client_t *client_for(const char *api_host, const char *secret) {
  char base[128], token_url[256];
  snprintf(base, sizeof base, "http://%s:%d", api_host, sim.port);
  snprintf(token_url, sizeof token_url,
           "http://127.0.0.1:%d/" CONTOSO "/oauth2/v2.0/token", sim.port);
  rk_client_opts_t o = RK_CLIENT_OPTS_INIT;
  o.provider = "Microsoft Graph";
  o.key_name = "kit-test";
  o.where = "tenant " CONTOSO;
  o.rate_scope = CONTOSO;
  o.base_url = base;
  o.token_url = token_url;
  o.client_id = APP;
  o.client_secret = secret;
  o.client_secret_len = strlen(secret);
  o.scope = "https://graph.microsoft.com/.default";
  o.refusal_hint = "wrong client id, secret or tenant";
  o.backoff_base_ms = 20;
  o.backoff_max_ms = 200;
  o.endpoint_labels = labels;
  o.endpoint_count = 1;
  rk_client_t *c;
  char err[256];
  cr_assert_eq(rk_client_new(h.api, h.ctx, &o, &c, err, sizeof err), 0, "%s",
               err);
  return c;
}

static json_t *sim_stats(void) {
  simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
  cr_assert_not_null(r.json);
  json_t *j = json_incref(r.json);
  simc_resp_free(&r);
  return j;
}

static long stat_at(json_t *stats, const char *a, const char *b,
                    const char *c) {
  json_t *v = json_object_get(stats, a);
  if (b)
    v = json_object_get(v, b);
  if (c)
    v = json_object_get(v, c);
  return v ? (long)json_integer_value(v) : 0;
}

/* ------------------------------------------------ Graph page decoding */

/* The page: the parsed answer, rows in its "value" array. */
static int decode_graph(const char *body, size_t len, rk_decoded_t *out,
                        char *msg, size_t msglen, void *data) {
  (void)data;
  json_error_t jerr;
  json_t *root = json_loadb(body, len, 0, &jerr);
  if (!root) {
    out->parse_error = true;
    snprintf(msg, msglen, DEVICES ": the answer is not valid JSON");
    return RN_EJSON;
  }
  out->page = root;
  json_t *value = json_object_get(root, "value");
  json_t *next = json_object_get(root, "@odata.nextLink");
  if (!json_is_array(value) || (next && !json_is_string(next))) {
    snprintf(msg, msglen, DEVICES ": a page without a \"value\" array");
    return RN_EJSON;
  }
  out->count = json_array_size(value);
  if (next && !(out->next_link = strdup(json_string_value(next)))) {
    snprintf(msg, msglen, "out of memory");
    return RN_ENOMEM;
  }
  return 0;
}

static void free_graph(void *page, void *data) {
  (void)data;
  json_decref(page);
}

typedef struct walk_run_s {
  bool done;
  rk_walk_result_t res;
  char message[RK_ERR_LEN];
  json_t *ids; /* every row's id, in order */
} walk_run_t;

static int on_page(const rk_page_t *page, void *data) {
  walk_run_t *r = data;
  json_t *value = json_object_get(page->page, "value");
  for (size_t i = 0; i < page->count; i++)
    json_array_append(r->ids, json_object_get(json_array_get(value, i), "id"));
  return 0;
}

static void on_walk_done(rk_walk_t *w, const rk_walk_result_t *res,
                         void *data) {
  (void)w;
  walk_run_t *r = data;
  cr_assert_not(r->done, "walk finished twice");
  r->done = true;
  r->res = *res;
  if (res->message)
    snprintf(r->message, sizeof r->message, "%s", res->message);
  r->res.message = NULL;
}

static void run_walk(rk_client_t *c, uint32_t top, walk_run_t *r) {
  memset(r, 0, sizeof *r);
  r->ids = json_array();
  rk_walk_opts_t o = RK_WALK_OPTS_INIT;
  o.paging = RK_PAGING_NEXT_LINK;
  o.path = DEVICES;
  o.query = "$select=id,deviceName,serialNumber";
  o.page_param = "$top";
  o.page_size = top;
  o.endpoint = 0;
  o.decode = decode_graph;
  o.free_page = free_graph;
  cr_assert_eq(rk_walk_start(c, &o, on_page, on_walk_done, r, NULL), 0);
  cr_assert(rt_host_run_until(&h, &r->done, 30000), "walk did not finish");
}

/* ---------------------------------------------------------------- tests */

Test(kit_client, walks_every_page_by_next_link) {
  rk_client_t *c = client_for("127.0.0.1", SECRET);
  walk_run_t r;
  run_walk(c, 2, &r);
  cr_expect_eq(r.res.status, 0, "%s", r.message);
  cr_expect_not(r.res.truncated);
  cr_expect_eq(json_array_size(r.ids), CONTOSO_DEVICES);
  cr_expect_eq(r.res.rows, CONTOSO_DEVICES);
  cr_expect_eq(r.res.pages, 4, "7 devices at $top=2");
  for (size_t i = 0; i < json_array_size(r.ids); i++)
    for (size_t k = 0; k < i; k++)
      cr_expect_str_neq(json_string_value(json_array_get(r.ids, i)),
                        json_string_value(json_array_get(r.ids, k)),
                        "a device twice");
  json_t *st = sim_stats();
  cr_expect_eq(stat_at(st, "paths", DEVICES, NULL), 4);
  cr_expect_eq(stat_at(st, "tenants", CONTOSO, "tokenRequests"), 1);
  json_decref(st);
  rk_stats_t mine;
  rk_client_get_stats(c, &mine);
  cr_expect_eq(mine.requests, 4);
  cr_expect_eq(mine.endpoint_requests[0], 4);
  cr_expect_eq(mine.token_requests, 1);
  json_t *j = rk_stats_json(&mine, labels, 1, rk_client_token_label(c));
  cr_expect_eq(json_integer_value(
                   json_object_get(json_object_get(j, "by_endpoint"), DEVICES)),
               4);
  cr_expect_eq(
      json_integer_value(json_object_get(json_object_get(j, "by_endpoint"),
                                         "/" CONTOSO "/oauth2/v2.0/token")),
      1);
  json_decref(j);
  json_decref(r.ids);
  rk_client_free(c);
}

typedef struct auth_run_s {
  bool done;
  int status;
  char message[RK_ERR_LEN];
  int *finished;
} auth_run_t;

static void on_authenticated(rk_client_t *c, int status, const char *message,
                             void *data) {
  (void)c;
  auth_run_t *a = data;
  a->done = true;
  a->status = status;
  if (message)
    snprintf(a->message, sizeof a->message, "%s", message);
  if (a->finished)
    (*a->finished)++;
}

Test(kit_client, clients_of_one_credential_share_one_token_request) {
  enum { N = 5 };
  rk_client_t *clients[N];
  auth_run_t runs[N] = {0};
  int finished = 0;
  for (int i = 0; i < N; i++) {
    clients[i] = client_for("127.0.0.1", SECRET);
    runs[i].finished = &finished;
    cr_assert_eq(rk_client_authenticate(clients[i], on_authenticated, &runs[i]),
                 0);
  }
  for (int i = 0; i < 600 && finished < N; i++) {
    bool never = false;
    rt_host_run_until(&h, &never, 50);
  }
  cr_assert_eq(finished, N);
  uint64_t token_requests = 0;
  for (int i = 0; i < N; i++) {
    cr_expect_eq(runs[i].status, 0, "%s", runs[i].message);
    rk_stats_t st;
    rk_client_get_stats(clients[i], &st);
    token_requests += st.token_requests;
  }
  cr_expect_eq(token_requests, 1, "the clients' own figures");
  /* A client made later takes the token from the process's cache. */
  rk_client_t *late = client_for("127.0.0.1", SECRET);
  walk_run_t r;
  run_walk(late, 1000, &r);
  cr_expect_eq(r.res.status, 0, "%s", r.message);
  rk_stats_t st;
  rk_client_get_stats(late, &st);
  cr_expect_eq(st.token_requests, 0);
  cr_expect_eq(st.token_cache_hits, 1);
  json_t *sims = sim_stats();
  cr_expect_eq(stat_at(sims, "tenants", CONTOSO, "tokenRequests"), 1,
               "graph-sim saw one token request for the credential");
  cr_expect_eq(stat_at(sims, "tokenRequests", NULL, NULL), 1);
  json_decref(sims);
  json_decref(r.ids);
  rk_client_free(late);
  for (int i = 0; i < N; i++)
    rk_client_free(clients[i]);
}

Test(kit_client, absorbs_429s_with_retry_after) {
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"managedDevices\",\"status\":429,"
                            "\"retryAfter\":1,\"nth\":2,\"count\":2}"),
               200);
  rk_client_t *c = client_for("127.0.0.1", SECRET);
  walk_run_t r;
  run_walk(c, 3, &r);
  cr_expect_eq(r.res.status, 0, "%s", r.message);
  cr_expect_not(r.res.truncated);
  cr_expect_eq(json_array_size(r.ids), CONTOSO_DEVICES,
               "every device once, none twice");
  cr_expect_eq(r.res.requests, 3 + 2, "three pages and two throttled asks");
  rk_stats_t st;
  rk_client_get_stats(c, &st);
  cr_expect_eq(st.throttled_429, 2);
  cr_expect_eq(st.throttled, 2);
  cr_expect_eq(st.retries, 0, "a throttle is not a failure");
  json_t *sims = sim_stats();
  cr_expect_eq(stat_at(sims, "throttled", NULL, NULL), 2);
  json_decref(sims);
  json_decref(r.ids);
  rk_client_free(c);
}

Test(kit_client, refuses_a_next_link_on_another_origin) {
  /* graph-sim writes its links for 127.0.0.1: to a client of localhost
   * they lead elsewhere, and the token must not follow them. */
  rk_client_t *c = client_for("localhost", SECRET);
  walk_run_t r;
  run_walk(c, 2, &r);
  cr_expect_eq(r.res.status, RN_EUPSTREAM, "%s", r.message);
  cr_expect(r.res.truncated);
  cr_expect_eq(r.res.rows, 2, "the first page was delivered");
  cr_expect(strstr(r.message, "origin") && strstr(r.message, DEVICES), "%s",
            r.message);
  json_t *sims = sim_stats();
  cr_expect_eq(stat_at(sims, "paths", DEVICES, NULL), 1,
               "the foreign link was never asked for");
  json_decref(sims);
  json_decref(r.ids);
  rk_client_free(c);
}

typedef struct req_run_s {
  bool done;
  int status;
  long http;
  unsigned requests;
  size_t rows;
  char message[RK_ERR_LEN];
} req_run_t;

static void on_response(rk_client_t *c, const rk_response_t *resp, void *data) {
  (void)c;
  req_run_t *r = data;
  r->done = true;
  r->status = resp->status;
  r->http = resp->http_status;
  r->requests = resp->requests;
  if (resp->message)
    snprintf(r->message, sizeof r->message, "%s", resp->message);
  json_t *j =
      resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
  r->rows = json_array_size(json_object_get(j, "value"));
  json_decref(j);
}

static void run_request(rk_client_t *c, const char *path, req_run_t *r) {
  memset(r, 0, sizeof *r);
  rk_request_opts_t o = RK_REQUEST_OPTS_INIT;
  o.path = path;
  o.endpoint = 0;
  cr_assert_eq(rk_request(c, &o, on_response, r, NULL), 0);
  cr_assert(rt_host_run_until(&h, &r->done, 30000), "request did not end");
}

Test(kit_client, renews_a_revoked_token_once) {
  rk_client_t *c = client_for("127.0.0.1", SECRET);
  req_run_t r;
  run_request(c, DEVICES "?$top=5", &r);
  cr_assert_eq(r.status, 0, "%s", r.message);
  cr_expect_eq(r.rows, 5);
  cr_assert_eq(simc_control(&sim, "revoke-tokens", "{}"), 200);
  run_request(c, DEVICES "?$top=5", &r);
  cr_expect_eq(r.status, 0, "%s", r.message);
  cr_expect_eq(r.http, 200);
  cr_expect_eq(r.requests, 2, "the 401 and the retry with the new token");
  rk_stats_t st;
  rk_client_get_stats(c, &st);
  cr_expect_eq(st.renewals_401, 1);
  cr_expect_eq(st.token_requests, 2);
  json_t *sims = sim_stats();
  cr_expect_eq(stat_at(sims, "tenants", CONTOSO, "tokenRequests"), 2);
  json_decref(sims);
  rk_client_free(c);
}

Test(kit_client, refused_credentials_are_one_clear_error) {
  rk_client_t *c = client_for("127.0.0.1", "not-the-secret");
  req_run_t r;
  run_request(c, DEVICES, &r);
  cr_expect_eq(r.status, RN_EAUTH, "%s", r.message);
  cr_expect(strstr(r.message, "Microsoft Graph refused the client "
                              "credentials at tenant " CONTOSO),
            "%s", r.message);
  cr_expect(strstr(r.message, "wrong client id, secret or tenant"), "%s",
            r.message);
  cr_expect(strstr(r.message, "invalid_client"), "%s", r.message);
  cr_expect_null(strstr(r.message, "not-the-secret"), "secret in a message");
  json_t *sims = sim_stats();
  cr_expect_eq(stat_at(sims, "paths", DEVICES, NULL), 0,
               "no API request without a token");
  json_decref(sims);
  rk_client_free(c);
}

Test(kit_client, retries_server_errors_then_names_the_request) {
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"managedDevices\",\"status\":503,"
                            "\"count\":2}"),
               200);
  rk_client_t *c = client_for("127.0.0.1", SECRET);
  req_run_t r;
  run_request(c, DEVICES, &r);
  cr_expect_eq(r.status, 0, "%s", r.message);
  cr_expect_eq(r.requests, 3);
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"managedDevices\",\"status\":500,"
                            "\"count\":100}"),
               200);
  run_request(c, DEVICES, &r);
  cr_expect_eq(r.status, RN_EUPSTREAM);
  cr_expect_eq(r.requests, 5, "the first try and four retries");
  cr_expect(strstr(r.message, "GET " DEVICES " at tenant " CONTOSO) &&
                strstr(r.message, "failed after 5 attempts"),
            "%s", r.message);
  rk_client_free(c);
}

Test(kit_client, a_foreign_absolute_url_is_refused_before_sending) {
  rk_client_t *c = client_for("127.0.0.1", SECRET);
  rk_request_opts_t o = RK_REQUEST_OPTS_INIT;
  o.path = "http://localhost:1/v1.0/me";
  req_run_t r = {0};
  cr_expect_eq(rk_request(c, &o, on_response, &r, NULL), RN_EACCES);
  cr_expect_not(r.done);
  rk_client_free(c);
}

/* Where a token may go: the base URL's scheme, host and port exactly. */
/* ----------------------------------------------- a page row by row */

typedef struct rows_seen_s {
  json_t *kept;     /* rows kept with json_incref */
  char members[128];
  int stop_at;      /* 1-based row whose callback fails; 0 = none */
} rows_seen_t;

static int keep_row(json_t *row, size_t index, void *data, char *msg,
                    size_t msglen) {
  rows_seen_t *s = data;
  if (s->stop_at && (int)index + 1 == s->stop_at) {
    snprintf(msg, msglen, "row %zu refused by its decoder", index + 1);
    return RN_EINVAL;
  }
  cr_assert_eq(json_array_size(s->kept), index, "rows out of order");
  json_array_append(s->kept, row); /* the reader frees its reference */
  return 0;
}

static int note_member(const char *key, json_t *value, void *data, char *msg,
                       size_t msglen) {
  (void)msg;
  (void)msglen;
  rows_seen_t *s = data;
  size_t n = strlen(s->members);
  snprintf(s->members + n, sizeof s->members - n, "%s%s=%s", n ? "," : "",
           key, rk_json_type_name(value));
  return 0;
}

static int read_rows(const char *body, const char *rows_key, rows_seen_t *s,
                     bool *not_json, char *msg) {
  memset(s->members, 0, sizeof s->members);
  json_decref(s->kept);
  s->kept = json_array();
  rk_rows_reader_t r = RK_ROWS_READER_INIT;
  r.what = "/devices";
  r.rows_key = rows_key;
  r.row = keep_row;
  r.member = note_member;
  r.data = s;
  return rk_read_rows(body, strlen(body), &r, not_json, msg, 256);
}

Test(kit_rows, reads_rows_members_and_refusals_as_a_whole_parse_would) {
  rows_seen_t s = {0};
  bool not_json;
  char msg[256];
  cr_assert_eq(read_rows(" {\"@odata.count\":2, \"value\" : [ {\"id\":\"a\","
                         "\"x\":[1,{\"y\":\"]}\"}]} ,{\"id\":\"b\"} ],"
                         "\"@odata.nextLink\":\"https://h/n\"}\n",
                         "value", &s, &not_json, msg),
               0, "%s", msg);
  cr_expect_eq(json_array_size(s.kept), 2);
  cr_expect_str_eq(
      json_string_value(json_object_get(json_array_get(s.kept, 1), "id")),
      "b");
  cr_expect_str_eq(s.members, "@odata.count=a number,"
                              "@odata.nextLink=a string");
  /* An array page; a row the decoder refuses stops the read with its
   * status and sentence. */
  s.stop_at = 2;
  cr_expect_eq(read_rows("[{\"id\":1},{\"id\":2},{\"id\":3}]", NULL, &s,
                         &not_json, msg),
               RN_EINVAL);
  cr_expect_not(not_json);
  cr_expect_str_eq(msg, "row 2 refused by its decoder");
  cr_expect_eq(json_array_size(s.kept), 1);
  s.stop_at = 0;
  static const struct {
    const char *body, *rows_key;
    bool not_json;
    const char *msg;
  } refused[] = {
      {"[{\"id\":1}", NULL, true, "/devices: the answer is not valid JSON ("},
      {"[{\"id\":1}]]", NULL, true, "(end of text expected at byte 10)"},
      {"{\"value\":[],\"value\":[]}", "value", true,
       "(duplicate key at byte 12)"},
      {"{\"a\":1,\"a\":2}", "value", true, "duplicate key"},
      {"{\"value\":7}", "value", false,
       "/devices: 'value' is a number, expected an array"},
      {"[\"x\"]", NULL, false, "/devices: row 1 is a string, expected an object"},
      {"{}", NULL, false, "/devices: the answer is an object, expected an array"},
      {"[]", "value", false, "/devices: the answer is an array, expected an object"},
  };
  for (size_t i = 0; i < RN_ARRAY_SIZE(refused); i++) {
    cr_expect_eq(read_rows(refused[i].body, refused[i].rows_key, &s,
                           &not_json, msg),
                 RN_EJSON, "%s", refused[i].body);
    cr_expect_eq(not_json, refused[i].not_json, "%s: %s", refused[i].body, msg);
    cr_expect(strstr(msg, refused[i].msg), "%s: \"%s\"", refused[i].body, msg);
  }
  /* No rows at all is fine: absent, null or empty. */
  const char *empty[] = {"{}", "{\"value\":null}", "{\"value\":[]}"};
  for (size_t i = 0; i < RN_ARRAY_SIZE(empty); i++)
    cr_expect_eq(read_rows(empty[i], "value", &s, &not_json, msg), 0, "%s: %s",
                 empty[i], msg);
  json_decref(s.kept);
}

Test(kit_origin, a_next_link_keeps_scheme_host_and_port) {
  static const struct {
    const char *url;
    bool same;
  } cases[] = {
      {"https://graph.microsoft.com/v1.0/x?$skiptoken=1", true},
      {"HTTPS://Graph.Microsoft.com/v1.0/x", true},
      {"https://graph.microsoft.com", true},
      {"https://graph.microsoft.com?$top=1", true},
      {"http://graph.microsoft.com/v1.0/x", false},
      {"https://graph.microsoft.com:8443/v1.0/x", false},
      {"https://graph.microsoft.com.evil.example/v1.0/x", false},
      {"https://graph.microsoft.com@evil.example/v1.0/x", false},
      {"https://evil.example/https://graph.microsoft.com/", false},
      {"/v1.0/x", false},
      {"graph.microsoft.com/v1.0/x", false},
      {"", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cr_expect_eq(rk_same_origin(cases[i].url, "https://graph.microsoft.com"),
                 cases[i].same, "%s", cases[i].url);
}

/* ----------------------------------- id and cursor paging, on ninjaone-sim */
#ifdef NJ_SIM_BINARY

/* The walkers' other styles, with decode hooks written here rather than
 * NinjaOne's: after-id (/v2/organizations), before-id (/v2/activities,
 * olderThan) and cursor (/v2/queries/antivirus-status). */
static rt_proc_t nj_proc;
static int nj_port;

static void start_nj(void) {
  char *argv[] = {NJ_SIM_BINARY,
                  "--port",
                  "0",
                  "--generate",
                  "--orgs",
                  "3",
                  "--devices-per-org",
                  "10",
                  "--rate-limit-minute",
                  "0",
                  "--rate-limit-hour",
                  "0",
                  "--seed",
                  "5",
                  NULL};
  rt_proc_start(&nj_proc, argv, NULL, NULL);
  cr_assert(rt_wait_for_text(nj_proc.out_path, "port=", 1, 60000),
            "ninjaone-sim did not start");
  char *out = rt_read_file(nj_proc.out_path);
  nj_port = atoi(strstr(out, "port=") + 5);
  free(out);
  rt_host_open(&h, NULL);
}

static void stop_nj(void) {
  rt_host_close(&h);
  rt_proc_kill(&nj_proc, SIGTERM);
  cr_expect(rt_proc_wait(&nj_proc, 10000));
}

TestSuite(kit_walkers, .init = start_nj, .fini = stop_nj, .timeout = 60);

static rk_client_t *nj_client(void) {
  char base[128], token_url[192];
  snprintf(base, sizeof base, "http://127.0.0.1:%d/eu", nj_port);
  snprintf(token_url, sizeof token_url, "%s/ws/oauth/token", base);
  rk_client_opts_t o = RK_CLIENT_OPTS_INIT;
  o.provider = "NinjaOne";
  o.key_name = "kit-test";
  o.base_url = base;
  o.token_url = token_url;
  o.client_id = "sim-eu-client";
  o.client_secret = "sim-eu-secret";
  o.client_secret_len = strlen("sim-eu-secret");
  o.scope = "monitoring";
  rk_client_t *c;
  char err[256];
  cr_assert_eq(rk_client_new(h.api, h.ctx, &o, &c, err, sizeof err), 0, "%s",
               err);
  return c;
}

/* Rows: the answer itself (an array) or its `key` member; ids from "id". */
typedef struct list_shape_s {
  const char *key; /* NULL: a bare array */
  int paging;
} list_shape_t;

static int decode_list(const char *body, size_t len, rk_decoded_t *out,
                       char *msg, size_t msglen, void *data) {
  const list_shape_t *shape = data;
  json_t *root = json_loadb(body, len, 0, NULL);
  if (!root) {
    out->parse_error = true;
    snprintf(msg, msglen, "not JSON");
    return RN_EJSON;
  }
  out->page = root;
  json_t *rows = shape->key ? json_object_get(root, shape->key) : root;
  if (!json_is_array(rows)) {
    snprintf(msg, msglen, "no rows");
    return RN_EJSON;
  }
  out->count = json_array_size(rows);
  size_t i;
  json_t *row;
  json_array_foreach(rows, i, row) {
    json_int_t id = json_integer_value(json_object_get(row, "id"));
    if (shape->paging == RK_PAGING_AFTER_ID || i == 0 || id < out->next_id)
      out->next_id = id;
  }
  const char *cursor = json_string_value(
      json_object_get(json_object_get(root, "cursor"), "name"));
  if (shape->paging == RK_PAGING_CURSOR && cursor &&
      !(out->cursor = strdup(cursor)))
    return RN_ENOMEM;
  return 0;
}

typedef struct list_run_s {
  bool done;
  const list_shape_t *shape;
  rk_walk_result_t res;
  char message[RK_ERR_LEN];
  json_t *rows;
} list_run_t;

static int on_list_page(const rk_page_t *page, void *data) {
  list_run_t *r = data;
  json_t *rows =
      r->shape->key ? json_object_get(page->page, r->shape->key) : page->page;
  for (size_t i = 0; i < page->count; i++)
    json_array_append(r->rows, json_array_get(rows, i));
  return 0;
}

static void on_list_done(rk_walk_t *w, const rk_walk_result_t *res,
                         void *data) {
  (void)w;
  list_run_t *r = data;
  r->done = true;
  r->res = *res;
  if (res->message)
    snprintf(r->message, sizeof r->message, "%s", res->message);
  r->res.message = NULL;
}

static void walk_list(rk_client_t *c, const char *path, const char *id_param,
                      const list_shape_t *shape, uint32_t page,
                      uint64_t max_rows, list_run_t *r) {
  memset(r, 0, sizeof *r);
  r->shape = shape;
  r->rows = json_array();
  rk_walk_opts_t o = RK_WALK_OPTS_INIT;
  o.paging = shape->paging;
  o.path = path;
  o.page_param = "pageSize";
  o.id_param = id_param;
  o.page_size = page;
  o.min_page_size = shape->paging == RK_PAGING_BEFORE_ID ? 10 : 0;
  o.max_rows = max_rows;
  o.decode = decode_list;
  o.free_page = free_graph;
  o.decode_data = (void *)shape;
  cr_assert_eq(rk_walk_start(c, &o, on_list_page, on_list_done, r, NULL), 0);
  cr_assert(rt_host_run_until(&h, &r->done, 30000), "walk did not finish");
  cr_expect_eq(r->res.status, 0, "%s: %s", path, r->message);
}

static json_int_t id_at(const list_run_t *r, size_t i) {
  return json_integer_value(json_object_get(json_array_get(r->rows, i), "id"));
}

Test(kit_walkers, after_id_pages_in_ascending_ids) {
  static const list_shape_t shape = {NULL, RK_PAGING_AFTER_ID};
  rk_client_t *c = nj_client();
  list_run_t all, one;
  walk_list(c, "/v2/organizations", "after", &shape, 1000, 0, &all);
  walk_list(c, "/v2/organizations", "after", &shape, 1, 0, &one);
  cr_expect_eq(json_array_size(all.rows), 3);
  cr_expect(json_equal(all.rows, one.rows), "page size 1 saw other rows");
  cr_expect_eq(one.res.requests, 4, "three full pages and an empty one");
  for (size_t i = 1; i < json_array_size(one.rows); i++)
    cr_expect_gt(id_at(&one, i), id_at(&one, i - 1));
  json_decref(all.rows);
  json_decref(one.rows);
  rk_client_free(c);
}

/* A cap too large to reach asks for whole pages, not for cap + 1 rows
 * (which wrapped to a page size of 0). */
Test(kit_walkers, an_unreachable_row_cap_asks_for_whole_pages) {
  static const list_shape_t shape = {NULL, RK_PAGING_AFTER_ID};
  rk_client_t *c = nj_client();
  list_run_t r;
  walk_list(c, "/v2/organizations", "after", &shape, 1000, UINT64_MAX, &r);
  cr_expect_eq(json_array_size(r.rows), 3);
  cr_expect_eq(r.res.requests, 1, "one short page holds all three");
  cr_expect_not(r.res.cap_hit);
  json_decref(r.rows);
  walk_list(c, "/v2/organizations", "after", &shape, 1000, 2, &r);
  cr_expect_eq(json_array_size(r.rows), 2);
  cr_expect(r.res.cap_hit && r.res.truncated);
  json_decref(r.rows);
  rk_client_free(c);
}

Test(kit_walkers, before_id_pages_newest_first) {
  static const list_shape_t shape = {"activities", RK_PAGING_BEFORE_ID};
  rk_client_t *c = nj_client();
  list_run_t all, small;
  walk_list(c, "/v2/activities", "olderThan", &shape, 1000, 0, &all);
  walk_list(c, "/v2/activities", "olderThan", &shape, 10, 0, &small);
  cr_assert_gt(json_array_size(all.rows), 10, "the fleet has few activities");
  cr_expect(json_equal(all.rows, small.rows), "page size 10 saw other rows");
  cr_expect_gt(small.res.pages, 1);
  for (size_t i = 1; i < json_array_size(small.rows); i++)
    cr_expect_lt(id_at(&small, i), id_at(&small, i - 1));
  json_decref(all.rows);
  json_decref(small.rows);
  rk_client_free(c);
}

Test(kit_walkers, cursor_pages_by_the_cursor_the_page_names) {
  static const list_shape_t shape = {"results", RK_PAGING_CURSOR};
  rk_client_t *c = nj_client();
  list_run_t all, small;
  walk_list(c, "/v2/queries/antivirus-status", "cursor", &shape, 1000, 0, &all);
  walk_list(c, "/v2/queries/antivirus-status", "cursor", &shape, 7, 0, &small);
  cr_assert_gt(json_array_size(all.rows), 7, "the fleet has few rows");
  cr_expect(json_equal(all.rows, small.rows), "page size 7 saw other rows");
  cr_expect_gt(small.res.pages, 1);
  json_decref(all.rows);
  json_decref(small.rows);
  rk_client_free(c);
}
#endif

/* ------------------------------------------------ the host's page slots */

/* The process-wide page slots (ABI 1.6) that the walkers of every plugin
 * image take turns on. */

typedef struct slot_probe_s {
  int calls;
  int status;
  rn_slot_t *slot;
  rn_req_t *req;
  bool done;
} slot_probe_t;

static void on_slot(rn_ctx_t *ctx, int status, rn_slot_t *slot, void *data) {
  slot_probe_t *p = data;
  (void)ctx;
  p->calls++;
  p->status = status;
  p->slot = slot;
  p->done = true;
}

static void acquire(slot_probe_t *p, const char *key, uint32_t key_limit) {
  cr_assert_eq(h.api->slot_acquire(h.ctx, key, key_limit, on_slot, p, &p->req),
               0);
  cr_expect_eq(p->calls, 0, "never calls back from inside the call");
}

static void settle(slot_probe_t *p) {
  cr_assert(rt_host_run_until(&h, &p->done, 5000), "no callback");
}

static unsigned held(unsigned *waiting) {
  return rn__slots_held(&h.runner, waiting);
}

static void open_host(void) {
  rt_host_open(&h, NULL);
  h.gen->config->max_pages_held = 2;
}

static void close_host(void) {
  cr_expect_eq(held(NULL), 0, "every slot given back");
  rt_host_close(&h);
}

TestSuite(host_slots, .init = open_host, .fini = close_host, .timeout = 30);

Test(host_slots, grants_first_come_first_served_within_both_caps) {
  unsigned waiting;
  slot_probe_t a1 = {0}, a2 = {0}, b1 = {0}, b2 = {0};
  acquire(&a1, "a", 1);
  acquire(&a2, "a", 1); /* key a is full */
  acquire(&b1, "b", 0);
  acquire(&b2, "b", 0); /* the process is full */
  settle(&a1);
  settle(&b1);
  cr_expect_eq(a1.status, 0);
  cr_expect_not_null(a1.slot);
  cr_expect_eq(b1.status, 0);
  cr_expect_eq(held(&waiting), 2);
  cr_expect_eq(waiting, 2);
  cr_expect_eq(a2.calls + b2.calls, 0);

  h.api->slot_release(b1.slot); /* b2 came later than a2, but a2 cannot go */
  settle(&b2);
  cr_expect_eq(b2.status, 0);
  cr_expect_eq(a2.calls, 0, "key a still holds its one slot");
  h.api->slot_release(a1.slot);
  settle(&a2);
  cr_expect_eq(a2.status, 0);
  cr_expect_eq(held(&waiting), 2);
  cr_expect_eq(waiting, 0);
  h.api->slot_release(a2.slot);
  h.api->slot_release(b2.slot);
  cr_expect_eq(held(NULL), 0);
  h.api->slot_release(NULL); /* nothing */
  bool never = false;
  rt_host_run_until(&h, &never, 20);
  cr_expect_eq(a1.calls + a2.calls + b1.calls + b2.calls, 4, "once each");
}

Test(host_slots, a_cancelled_waiter_is_called_once_with_ecanceled) {
  slot_probe_t g1 = {0}, g2 = {0}, w = {0};
  acquire(&g1, "k", 0);
  acquire(&g2, "k", 0);
  acquire(&w, "k", 0);
  settle(&g1);
  settle(&g2);
  cr_expect_eq(h.api->cancel(w.req), 0);
  settle(&w);
  cr_expect_eq(w.status, RN_ECANCELED);
  cr_expect_null(w.slot);
  h.api->slot_release(g1.slot);
  h.api->slot_release(g2.slot);
  bool never = false;
  rt_host_run_until(&h, &never, 20);
  cr_expect_eq(w.calls, 1);
  cr_expect_eq(held(NULL), 0);
}

Test(host_slots, a_grant_cancelled_before_delivery_goes_to_the_next_waiter) {
  slot_probe_t g1 = {0}, g2 = {0}, w = {0};
  acquire(&g1, "k", 0);
  acquire(&g2, "k", 0);
  cr_expect_eq(h.api->cancel(g2.req), 0); /* granted, not yet told */
  acquire(&w, "k", 0);                    /* fits in what g2 gave back */
  settle(&g1);
  settle(&g2);
  settle(&w);
  cr_expect_eq(g2.status, RN_ECANCELED);
  cr_expect_eq(w.status, 0);
  h.api->slot_release(g1.slot);
  h.api->slot_release(w.slot);
}
