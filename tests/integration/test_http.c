/* The host's HTTP service, against the NinjaOne simulator over real
 * sockets: concurrency on one loop, cancellation, timeouts, the response
 * cap, the http:// rule and TLS verification; and transport failures
 * against sockets of the test's own, named by curl's error. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "rt.h"
#include "rt_host.h"
#include "sim_client.h"

static rt_host_t h;
static sim_proc_t sim;
static char base[128]; /* http://127.0.0.1:PORT/eu */
static char *token;
static char auth[512];

typedef struct call_s {
  int calls;
  int status;
  long http_status;
  size_t body_len;
  char request_id[80];
  char content_type[80];
  int *done_count;
} call_t;

static void on_response(rn_ctx_t *ctx, int status,
                        const rn_http_response_t *resp, void *data) {
  (void)ctx;
  call_t *c = data;
  c->calls++;
  c->status = status;
  if (status == 0) {
    cr_assert_not_null(resp);
    c->http_status = resp->status;
    c->body_len = resp->body_len;
    cr_assert_eq(resp->body[resp->body_len], '\0');
    const char *id = h.api->http_header(resp, "X-NJ-Request-Id");
    if (id)
      snprintf(c->request_id, sizeof c->request_id, "%s", id);
    if (resp->content_type)
      snprintf(c->content_type, sizeof c->content_type, "%s",
               resp->content_type);
  } else {
    cr_assert_null(resp);
  }
  if (c->done_count)
    (*c->done_count)++;
}

static void start_sim(const char *const *extra) {
  const char *args[24] = {"--generate", "--orgs", "3", "--devices-per-org",
                          "40", "--rate-limit-minute", "0",
                          "--rate-limit-hour", "0"};
  int n = 9;
  for (int i = 0; extra && extra[i]; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  cr_assert_eq(simc_start(&sim, args), 0, "simulator did not start");
  snprintf(base, sizeof base, "%s://127.0.0.1:%d/eu", sim.scheme, sim.port);
}

static void get_token(void) {
  token = simc_token(&sim, "eu", "sim-eu-client", "sim-eu-secret",
                     "monitoring");
  cr_assert_not_null(token);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
}

static void setup(void) {
  rt_host_open(&h, NULL);
  start_sim(NULL);
  get_token();
}

static void teardown(void) {
  rt_host_close(&h);
  free(token);
  token = NULL;
  if (sim.pid > 0)
    cr_expect_eq(simc_stop(&sim), 0);
}

static int get(const char *url, const char *const *headers, uint32_t timeout,
               size_t cap, call_t *c, rn_req_t **req) {
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.url = url;
  rq.headers = headers;
  rq.timeout_ms = timeout;
  rq.max_response_bytes = cap;
  return h.api->http_request(h.ctx, &rq, on_response, c, req);
}

static long tenant_requests(void) {
  simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
  cr_assert_not_null(r.json);
  json_t *n = json_object_get(
      json_object_get(json_object_get(r.json, "tenants"), "eu"), "requests");
  long v = n ? (long)json_integer_value(n) : 0;
  simc_resp_free(&r);
  return v;
}

/* A bound for a loaded machine (ASan, many processes on 2 cores), not an
 * expectation: every wait below ends as soon as its condition holds. */
#define WAIT_MS 120000

/* Runs the loop until *done reaches n or WAIT_MS pass on the clock. */
static bool run_until_count(const int *done, int n) {
  uint64_t deadline = uv_hrtime() + (uint64_t)WAIT_MS * 1000000u;
  while (*done < n && uv_hrtime() < deadline) {
    bool unused = false;
    rt_host_run_until(&h, &unused, 20);
  }
  return *done >= n;
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 300);

Test(http, completes_200_concurrent_requests_on_one_loop) {
  enum { N = 200 };
  static call_t calls[N];
  int done = 0;
  char url[256];
  snprintf(url, sizeof url, "%s/v2/organizations?pageSize=5", base);
  const char *headers[] = {auth, "Accept: application/json", NULL};
  for (int i = 0; i < N; i++) {
    calls[i].done_count = &done;
    cr_assert_eq(get(url, headers, 0, 0, &calls[i], NULL), 0);
  }
  run_until_count(&done, N);
  cr_assert_eq(done, N, "only %d of %d requests called back", done, N);
  for (int i = 0; i < N; i++) {
    cr_expect_eq(calls[i].calls, 1);
    cr_expect_eq(calls[i].status, 0, "request %d: %s", i,
                 rn__strerror(calls[i].status));
    cr_expect_eq(calls[i].http_status, 200);
    cr_expect_gt(calls[i].body_len, 2);
    cr_expect_neq(calls[i].request_id[0], '\0', "x-nj-request-id missing");
    cr_expect(strstr(calls[i].content_type, "application/json"));
  }
  cr_expect_eq(tenant_requests(), N);
  rn__http_stats_t st;
  rn__http_get_stats(&h.runner, &st);
  cr_expect_eq(st.completed, N);
  cr_expect_eq(st.active, 0);
}

Test(http, cancelling_calls_back_exactly_once_with_ECANCELED) {
  enum { N = 40 };
  static call_t calls[N];
  static rn_req_t *reqs[N];
  int done = 0;
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"*\",\"kind\":\"slow\","
                            "\"delayMs\":3000,\"count\":1000,\"rate\":1}"),
               200);
  char url[256];
  snprintf(url, sizeof url, "%s/v2/organizations?pageSize=5", base);
  const char *headers[] = {auth, NULL};
  for (int i = 0; i < N; i++) {
    calls[i].done_count = &done;
    cr_assert_eq(get(url, headers, 0, 0, &calls[i], &reqs[i]), 0);
  }
  /* Half are on the wire, half cancelled before the loop even ran. */
  for (int i = 0; i < N / 2; i++)
    cr_assert_eq(h.api->cancel(reqs[i]), 0);
  bool unused = false;
  rt_host_run_until(&h, &unused, 300);
  cr_expect_eq(done, N / 2, "cancelled before the loop ran: %d of %d back",
               done, N / 2);
  for (int i = N / 2; i < N; i++) {
    cr_assert_eq(calls[i].calls, 0, "a slow request finished early");
    cr_assert_eq(h.api->cancel(reqs[i]), 0);
    cr_assert_eq(h.api->cancel(reqs[i]), 0); /* twice: still one callback */
  }
  cr_expect_eq(done, N / 2, "a cancellation called back inside cancel()");
  run_until_count(&done, N);
  rt_host_run_until(&h, &unused, 100);
  for (int i = 0; i < N; i++) {
    cr_expect_eq(calls[i].calls, 1, "request %d called back %d times", i,
                 calls[i].calls);
    cr_expect_eq(calls[i].status, RN_ECANCELED);
  }
}

Test(http, times_out_a_slow_transfer) {
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"*\",\"kind\":\"slow\","
                            "\"delayMs\":3000}"),
               200);
  call_t c = {0};
  int done = 0;
  c.done_count = &done;
  char url[256];
  snprintf(url, sizeof url, "%s/v2/organizations", base);
  const char *headers[] = {auth, NULL};
  cr_assert_eq(get(url, headers, 300, 0, &c, NULL), 0);
  run_until_count(&done, 1);
  cr_expect_eq(c.calls, 1);
  cr_expect_eq(c.status, RN_ETIMEDOUT, "got %s", rn__err_name(c.status));
}

Test(http, refuses_a_response_larger_than_the_cap) {
  call_t c = {0};
  int done = 0;
  c.done_count = &done;
  char url[256];
  snprintf(url, sizeof url, "%s/v2/devices-detailed?pageSize=100", base);
  const char *headers[] = {auth, NULL};
  cr_assert_eq(get(url, headers, 0, 4096, &c, NULL), 0);
  run_until_count(&done, 1);
  cr_expect_eq(c.calls, 1);
  cr_expect_eq(c.status, RN_ERANGE, "got %s", rn__err_name(c.status));
  /* The same page without a cap arrives whole. */
  call_t whole = {0};
  whole.done_count = &done;
  cr_assert_eq(get(url, headers, 0, 0, &whole, NULL), 0);
  run_until_count(&done, 2);
  cr_expect_eq(whole.status, 0);
  cr_expect_gt(whole.body_len, 4096);
}

Test(http, accepts_plain_http_only_for_loopback_hosts) {
  call_t c = {0};
  int done = 0;
  c.done_count = &done;
  cr_expect_eq(get("http://example.com/v2/organizations", NULL, 0, 0, &c,
                   NULL),
               RN_EACCES);
  cr_expect_eq(get("http://10.0.0.1:8080/x", NULL, 0, 0, &c, NULL),
               RN_EACCES);
  cr_expect_eq(get("ftp://127.0.0.1/x", NULL, 0, 0, &c, NULL), RN_EINVAL);
  cr_expect_eq(get("not a url", NULL, 0, 0, &c, NULL), RN_EINVAL);
  const char *bad_header[] = {"X-Evil: a\r\nX-Injected: b", NULL};
  char url[256];
  snprintf(url, sizeof url, "http://localhost:%d/_sim/clock", sim.port);
  cr_expect_eq(get(url, bad_header, 0, 0, &c, NULL), RN_EINVAL);
  bool unused = false;
  rt_host_run_until(&h, &unused, 50);
  cr_expect_eq(c.calls, 0, "a refused request called back");
  cr_assert_eq(get(url, NULL, 0, 0, &c, NULL), 0);
  run_until_count(&done, 1);
  cr_expect_eq(c.status, 0);
  cr_expect_eq(c.http_status, 200);
}

Test(http, posts_a_form_body_and_reads_the_answer) {
  call_t c = {0};
  int done = 0;
  c.done_count = &done;
  char url[256];
  snprintf(url, sizeof url, "%s/ws/oauth/token", base);
  static const char form[] = "grant_type=client_credentials&client_id=sim-eu-"
                             "client&client_secret=sim-eu-secret&scope="
                             "monitoring";
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.method = "POST";
  rq.url = url;
  const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                           NULL};
  rq.headers = headers;
  rq.body = form;
  rq.body_len = strlen(form);
  cr_assert_eq(h.api->http_request(h.ctx, &rq, on_response, &c, NULL), 0);
  run_until_count(&done, 1);
  cr_expect_eq(c.status, 0);
  cr_expect_eq(c.http_status, 200);
}

Test(http, unloading_cancels_requests_in_flight_once_each) {
  enum { N = 100 };
  static call_t calls[N];
  int done = 0;
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\":\"*\",\"kind\":\"slow\","
                            "\"delayMs\":5000,\"count\":1000,\"rate\":1}"),
               200);
  char url[256];
  snprintf(url, sizeof url, "%s/v2/devices-detailed?pageSize=10", base);
  const char *headers[] = {auth, NULL};
  /* One admission a minute: however slowly this machine runs the next
   * lines, only the first request is on the wire and the rest wait. */
  rn_rate_window_t w = RN_RATE_WINDOW(60, 3600000);
  cr_assert_eq(h.api->rate_configure(h.ctx, "test-tenant", &w, 1), 0);
  for (int i = 0; i < N; i++) {
    calls[i].done_count = &done;
    rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
    rq.url = url;
    rq.headers = headers;
    rq.rate_key = "test-tenant";
    cr_assert_eq(h.api->http_request(h.ctx, &rq, on_response, &calls[i], NULL),
                 0);
  }
  bool unused = false;
  rt_host_run_until(&h, &unused, 300);
  rn__http_stats_t st;
  rn__http_get_stats(&h.runner, &st);
  /* Declared budgets are paced: one leaves at once, the rest wait. */
  cr_expect_eq(st.active, 1);
  cr_expect_eq(st.waiting, N - 1);
  cr_expect_eq(done, 0);
  rt_host_close(&h); /* unload: every request calls back, handles close */
  cr_expect_eq(done, N);
  for (int i = 0; i < N; i++) {
    cr_expect_eq(calls[i].calls, 1);
    cr_expect_eq(calls[i].status, RN_ECANCELED);
  }
  rt_host_open(&h, NULL); /* for the fixture's teardown */
}

/* ----------------------------------------------------------------- TLS */

static char tls_dir[64];

static void make_ca(void) {
  snprintf(tls_dir, sizeof tls_dir, "/tmp/rn-http-tls-XXXXXX");
  cr_assert(mkdtemp(tls_dir));
  cr_assert(rt_make_tls_ca(tls_dir), "openssl could not make a throwaway CA");
}

static void tls_setup(void) {
  rt_host_open(&h, NULL);
  make_ca();
  char cert[128], key[128];
  snprintf(cert, sizeof cert, "%s/srv.pem", tls_dir);
  snprintf(key, sizeof key, "%s/srv.key", tls_dir);
  const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
  start_sim(extra);
  snprintf(sim.ca_file, sizeof sim.ca_file, "%s/ca.pem", tls_dir);
}

static void tls_teardown(void) {
  teardown();
  rt_remove_tree(tls_dir);
}

TestSuite(http_tls, .init = tls_setup, .fini = tls_teardown, .timeout = 300);

/* One request alone on the loop, reissued while it times out: a timeout
 * says nothing about verification. libcurl parses the CA bundle on the
 * loop thread during the handshake, so inside the transfer's connect
 * timeout; under ASan with slow malloc unwinding on a loaded machine the
 * system bundle takes 10-20 s. Run together, one request's parsing made
 * the others time out; alone, a request still times out when its
 * handshake needs another loop turn after the parse. */
static int tls_get(const char *url, const char *ca) {
  uint64_t deadline = uv_hrtime() + (uint64_t)WAIT_MS * 1000000u;
  call_t c;
  do {
    int done = 0;
    c = (call_t){.done_count = &done};
    rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
    rq.url = url;
    rq.ca_file = ca;
    cr_assert_eq(h.api->http_request(h.ctx, &rq, on_response, &c, NULL), 0);
    cr_assert(run_until_count(&done, 1), "%s: no callback", url);
  } while (c.status == RN_ETIMEDOUT && uv_hrtime() < deadline);
  return c.status == 0 ? (int)c.http_status : c.status;
}

Test(http_tls, verifies_the_certificate_against_the_given_ca) {
  char url[256], ca[128], wrong_name[256];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/_sim/clock", sim.port);
  snprintf(wrong_name, sizeof wrong_name, "https://localhost:%d/_sim/clock",
           sim.port);
  snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir);
  int unknown = tls_get(url, NULL);       /* system store: unknown CA */
  int trusted = tls_get(url, ca);         /* our CA: accepted */
  int mismatch = tls_get(wrong_name, ca); /* our CA, but not its name */
  cr_expect_eq(unknown, RN_EHTTP, "unknown CA: %d %s", unknown,
               rn__err_name(unknown));
  cr_expect_eq(trusted, 200, "trusted CA: %d %s", trusted,
               rn__err_name(trusted));
  cr_expect_eq(mismatch, RN_EHTTP, "name mismatch: %d %s", mismatch,
               rn__err_name(mismatch));
  /* The failure says which check refused it, and where. */
  const char *why = rn__http_last_failure(&h.runner);
  cr_assert_not_null(why);
  cr_expect(strstr(why, "GET to localhost:") && strstr(why, "curl error 60"),
            "%s", why);
}

/* ------------------------------------------------- transport failures */

static void failure_setup(void) {
  rt_host_open(&h, NULL);
}

static void failure_teardown(void) {
  rt_host_close(&h);
}

TestSuite(http_failure, .init = failure_setup, .fini = failure_teardown,
          .timeout = 300);

/* A loopback port bound by the test and not listening: a connection to it
 * is refused, and no other process can take it meanwhile. Returns the fd. */
static int refusing_port(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  *port = ntohs(addr.sin_port);
  return fd;
}

/* A server on the test's loop that reads a request's head and closes the
 * connection without a word, as a server dropping a connection does. */
typedef struct mute_conn_s {
  uv_tcp_t tcp;
  char head[4096];
  size_t len;
} mute_conn_t;

static uv_tcp_t mute_server;
static int mute_closed; /* connections closed after their request */

static void mute_free(uv_handle_t *handle) {
  free(handle->data);
}

static void mute_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf) {
  mute_conn_t *c = handle->data;
  (void)hint;
  *buf = uv_buf_init(c->head + c->len, (unsigned)(sizeof c->head - 1 - c->len));
}

/* Whole when the head and the Content-Length bytes after it are in: what
 * is left unread would turn the close into a reset. */
static bool mute_whole(const mute_conn_t *c) {
  const char *end = strstr(c->head, "\r\n\r\n");
  if (!end)
    return false;
  const char *cl = strcasestr(c->head, "\r\nContent-Length:");
  size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
  return c->len >= (size_t)(end + 4 - c->head) + body;
}

static void mute_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
  mute_conn_t *c = stream->data;
  (void)buf;
  if (n > 0) {
    c->len += (size_t)n;
    c->head[c->len] = '\0';
  }
  bool whole = mute_whole(c);
  if (n < 0 || whole || c->len + 1 >= sizeof c->head) {
    mute_closed += whole;
    uv_close((uv_handle_t *)stream, mute_free);
  }
}

static void mute_accept(uv_stream_t *server, int status) {
  cr_assert_eq(status, 0);
  mute_conn_t *c = calloc(1, sizeof *c);
  cr_assert_not_null(c);
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  cr_assert_eq(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
  cr_assert_eq(uv_read_start((uv_stream_t *)&c->tcp, mute_alloc, mute_read), 0);
}

static int mute_start(void) {
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  cr_assert_eq(uv_tcp_init(&h.loop, &mute_server), 0);
  cr_assert_eq(uv_tcp_bind(&mute_server, (struct sockaddr *)&addr, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&mute_server, 16, mute_accept), 0);
  int len = sizeof addr;
  cr_assert_eq(uv_tcp_getsockname(&mute_server, (struct sockaddr *)&addr, &len),
               0);
  return ntohs(addr.sin_port);
}

/* One request to url; returns its status, the failure text in why. */
static int fail_once(const char *method, const char *url, const char *body,
                     char *why, size_t why_len) {
  static const char *const headers[] = {"Authorization: Bearer hidden-token",
                                        NULL};
  int done = 0;
  call_t c = {.done_count = &done};
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.method = method;
  rq.url = url;
  rq.headers = headers;
  rq.body = body;
  rq.body_len = body ? strlen(body) : 0;
  rq.timeout_ms = WAIT_MS;
  cr_assert_eq(h.api->http_request(h.ctx, &rq, on_response, &c, NULL), 0);
  cr_assert(run_until_count(&done, 1), "%s: no callback", url);
  cr_assert_eq(c.calls, 1);
  const char *text = rn__http_last_failure(&h.runner);
  snprintf(why, why_len, "%s", text ? text : "(none)");
  return c.status;
}

Test(http_failure, a_refused_connection_is_named_with_curls_error) {
  cr_expect_null(rn__http_last_failure(&h.runner));
  int port;
  int fd = refusing_port(&port);
  char url[128], why[RN__HTTP_FAILURE_LEN], where[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v2/devices?key=hidden", port);
  int status = fail_once("GET", url, NULL, why, sizeof why);
  close(fd);
  cr_expect_eq(status, RN_EHTTP, "%s: %s", rn__err_name(status), why);
  snprintf(where, sizeof where, "GET to 127.0.0.1:%d: ", port);
  cr_expect(strstr(why, where), "%s", why);
  cr_expect(strstr(why, "curl error 7"), "%s", why);
  cr_expect(strstr(why, "Connection refused"), "%s", why);
  /* Neither the path and query nor a header. */
  cr_expect(!strstr(why, "hidden") && !strstr(why, "/v2"), "%s", why);
}

Test(http_failure, a_dropped_connection_is_named_with_curls_error) {
  int port = mute_start();
  char url[128], why[RN__HTTP_FAILURE_LEN], where[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/oauth/token", port);
  int status = fail_once("POST", url, "client_secret=hidden", why, sizeof why);
  uv_close((uv_handle_t *)&mute_server, NULL);
  cr_expect_eq(mute_closed, 1);
  cr_expect_eq(status, RN_EHTTP, "%s: %s", rn__err_name(status), why);
  snprintf(where, sizeof where, "POST to 127.0.0.1:%d: ", port);
  cr_expect(strstr(why, where), "%s", why);
  cr_expect(strstr(why, "Empty reply from server"), "%s", why);
  cr_expect(strstr(why, "curl error 52"), "%s", why);
  cr_expect(!strstr(why, "hidden") && !strstr(why, "oauth"), "%s", why);
}

/* A command whose job ends with RN_EHTTP quotes curl's error in its
 * message, on stderr and in the --json result: the plugin saw only the
 * status. The stubborn plugin's http job completes with what its one
 * request got. */
Test(http_failure, a_command_failing_on_a_transfer_quotes_curls_error) {
  int port;
  int fd = refusing_port(&port);
  char dir[256], plugins[300], conf[300], text[1024], tmp[400], to[400];
  rt_make_temp_dir(dir, sizeof dir, "httpfail");
  snprintf(plugins, sizeof plugins, "%s/plugins", dir);
  cr_assert_eq(mkdir(plugins, 0755), 0);
  snprintf(tmp, sizeof tmp, "%s/.stubborn.so.new", plugins);
  snprintf(to, sizeof to, "%s/stubborn.so", plugins);
  rt_copy_file(RT_STUBBORN, tmp, 0755);
  cr_assert_eq(rename(tmp, to), 0);
  snprintf(conf, sizeof conf, "%s/runner.conf", dir);
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s\nstate_dir = %s/state\n\n"
           "[job \"s\"]\nplugin = stubborn\njob = http\n"
           "url = http://127.0.0.1:%d/v2/organizations\n",
           plugins, dir, port);
  rt_write_file(conf, text, 0644);
  char *argv[] = {RT_RUNNER, "run", "stubborn.http", "-c", conf, NULL};
  char *out = NULL, *err = NULL;
  int rc = rt_run(argv, NULL, NULL, &out, &err);
  close(fd);
  cr_expect_eq(rc, 1, "exit %d\n%s\n%s", rc, out, err);
  json_t *result = json_loads(out ? out : "", 0, NULL);
  cr_assert(json_is_object(result), "not JSON: %s\n%s", out, err);
  const char *code = json_string_value(json_object_get(result, "error"));
  const char *message = json_string_value(json_object_get(result, "message"));
  cr_expect_str_eq(code ? code : "", "upstream_unavailable", "%s", out);
  cr_assert_not_null(message, "%s", out);
  char where[64];
  snprintf(where, sizeof where, "GET to 127.0.0.1:%d: ", port);
  cr_expect(strstr(message, "HTTP transfer failed") && strstr(message, where) &&
                strstr(message, "curl error 7") &&
                strstr(message, "Connection refused"),
            "%s", message);
  cr_expect(strstr(err, "Connection refused"), "%s", err);
  cr_expect(!strstr(message, "/v2/organizations"), "%s", message);
  json_decref(result);
  free(out);
  free(err);
  rt_remove_tree(dir);
}
