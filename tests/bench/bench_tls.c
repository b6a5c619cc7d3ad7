/* bench_tls - what a new TLS connection costs through the host's HTTP
 * service. The NinjaOne simulator serves HTTPS with a throwaway CA made by
 * the openssl command; each request asks for "Connection: close", so each
 * one makes a new connection and handshake. Two trust set-ups are timed:
 *
 *   given CA   the request names the throwaway CA file (base_url overrides
 *              in tests and behind TLS-inspecting proxies); accepted
 *   system     no CA file: the system store, as for the real NinjaOne; the
 *              simulator's certificate is refused, after the same loading
 *              and handshake work
 *
 * For each: N connections one after another, then N at once. Prints wall
 * time per connection (first, median, max), the total, and the longest
 * stall of the loop (a 1 ms repeating timer's largest lateness): the CA
 * store is loaded on the loop thread.
 *
 *   bench_tls [N]     default 20
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"
#include "rt_host.h"
#include "sim_client.h"

static rt_host_t h;

typedef struct probe_s {
  uv_timer_t timer;
  uint64_t last_ns;
  uint64_t worst_ns;
} probe_t;

static void on_tick(uv_timer_t *timer) {
  probe_t *p = timer->data;
  uint64_t now = uv_hrtime();
  if (p->last_ns && now - p->last_ns > p->worst_ns)
    p->worst_ns = now - p->last_ns;
  p->last_ns = now;
}

typedef struct call_s {
  bool done;
  int status;
  long http_status;
  uint64_t start_ns, end_ns;
  int *pending;
  bool *all_done;
} call_t;

static void on_response(rn_ctx_t *ctx, int status,
                        const rn_http_response_t *resp, void *data) {
  (void)ctx;
  call_t *c = data;
  c->done = true;
  c->status = status;
  c->http_status = status == 0 ? resp->status : 0;
  c->end_ns = uv_hrtime();
  if (c->pending && --*c->pending == 0)
    *c->all_done = true;
}

static void start(call_t *c, const char *url, const char *ca) {
  static const char *const headers[] = {"Connection: close", NULL};
  rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
  rq.url = url;
  rq.ca_file = ca;
  rq.headers = headers;
  rq.timeout_ms = 120000;
  c->start_ns = uv_hrtime();
  if (h.api->http_request(h.ctx, &rq, on_response, c, NULL) != 0) {
    fprintf(stderr, "bench_tls: http_request refused\n");
    exit(1);
  }
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Runs n connections (one after another, or all at once) and prints. */
static void run(const char *label, const char *url, const char *ca, int n,
                bool at_once) {
  call_t *calls = calloc((size_t)n, sizeof *calls);
  uint64_t *ms = calloc((size_t)n, sizeof *ms);
  probe_t probe = {0};
  uv_timer_init(&h.loop, &probe.timer);
  probe.timer.data = &probe;
  uv_timer_start(&probe.timer, on_tick, 1, 1);
  uint64_t t0 = uv_hrtime();
  int ok = 0, refused = 0, other = 0;
  if (at_once) {
    int pending = n;
    bool all_done = false;
    for (int i = 0; i < n; i++) {
      calls[i].pending = &pending;
      calls[i].all_done = &all_done;
      start(&calls[i], url, ca);
    }
    if (!rt_host_run_until(&h, &all_done, 600000)) {
      fprintf(stderr, "bench_tls: %s: no answer in 600 s\n", label);
      exit(1);
    }
  } else {
    for (int i = 0; i < n; i++) {
      start(&calls[i], url, ca);
      if (!rt_host_run_until(&h, &calls[i].done, 600000)) {
        fprintf(stderr, "bench_tls: %s: no answer in 600 s\n", label);
        exit(1);
      }
    }
  }
  uint64_t total_ns = uv_hrtime() - t0;
  uv_timer_stop(&probe.timer);
  uv_close((uv_handle_t *)&probe.timer, NULL);
  uv_run(&h.loop, UV_RUN_NOWAIT);
  for (int i = 0; i < n; i++) {
    ms[i] = (calls[i].end_ns - calls[i].start_ns) / 1000000u;
    if (calls[i].status == 0 && calls[i].http_status == 200)
      ok++;
    else if (calls[i].status == RN_EHTTP)
      refused++; /* the certificate was not trusted */
    else
      other++;
  }
  uint64_t first = ms[0];
  qsort(ms, (size_t)n, sizeof *ms, compare_u64);
  printf("%-10s %-10s %3d conns: first %6llu ms, median %6llu ms, max %6llu "
         "ms, total %7.1f ms, loop stall %6.1f ms (%d ok, %d refused, %d "
         "other)\n",
         label, at_once ? "at once" : "in turn", n, (unsigned long long)first,
         (unsigned long long)ms[n / 2], (unsigned long long)ms[n - 1],
         (double)total_ns / 1e6, (double)probe.worst_ns / 1e6, ok, refused,
         other);
  fflush(stdout);
  free(ms);
  free(calls);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20;
  if (n < 1 || n > 500) {
    fprintf(stderr, "usage: bench_tls [N (1-500)]\n");
    return 2;
  }
  char dir[64];
  rt_make_temp_dir(dir, sizeof dir, "bench-tls");
  if (!rt_make_tls_ca(dir)) {
    fprintf(stderr, "bench_tls: openssl could not make a throwaway CA\n");
    rt_remove_tree(dir);
    return 1;
  }
  char cert[128], key[128], ca[128];
  snprintf(cert, sizeof cert, "%s/srv.pem", dir);
  snprintf(key, sizeof key, "%s/srv.key", dir);
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  sim_proc_t sim;
  const char *args[] = {"--generate", "--orgs",
                        "1",          "--devices-per-org",
                        "1",          "--rate-limit-minute",
                        "0",          "--rate-limit-hour",
                        "0",          "--tls-cert",
                        cert,         "--tls-key",
                        key,          NULL};
  if (simc_start(&sim, args) != 0) {
    fprintf(stderr, "bench_tls: the simulator did not start\n");
    rt_remove_tree(dir);
    return 1;
  }
  char url[128];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/_sim/clock", sim.port);

  rt_host_open(&h, NULL);
  printf("bench_tls: %d new TLS connections per line, to %s\n", n, url);
  run("given CA", url, ca, n, false);
  run("given CA", url, ca, n, true);
  run("system", url, NULL, n, false);
  run("system", url, NULL, n, true);
  rt_host_close(&h);
  simc_stop(&sim);
  rt_remove_tree(dir);
  return 0;
}
