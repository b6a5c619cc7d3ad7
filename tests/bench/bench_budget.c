/* bench_budget - several runner processes spending one tenant's budget.
 *
 * R processes (each a real host on one shared PostgreSQL database) queue M
 * requests each on one rate key against the NinjaOne simulator, whose own
 * limiter is set to the same budget. Prints what the simulator saw (its
 * request and 429 counts, and the highest count in any minute, sampled
 * every 100 ms from /_sim/stats), the database round trips the shared
 * budget cost per 1,000 requests, wall time and peak RSS per process.
 *
 *   bench_budget [--runners R] [--requests M] [--per-minute N]
 *                [--per-hour N]
 *
 * Defaults: 3 runners x 100 requests at 200 a minute, no hour window. Uses
 * REGENTRA_TEST_DSN's server (or a throwaway cluster) and a fresh database.
 * No asserts: figures only.
 *
 * This one measures the limiter with bare requests. The same budget spent
 * by a real sweep of R `serve` processes (requests per customer, target
 * 6.00; token calls; the busiest minute; wall time; peak RSS and CPU per
 * process) is bench_cadence --runners R. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "ratelimit.h"
#include "rt.h"
#include "rt_host.h"
#include "sim_client.h"

#define KEY "ninjaone/eu/bench"

static sim_proc_t sim;
static char auth[512];
static rt_host_t h;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct call_s {
  long http_status;
  int status;
  int *done;
} call_t;

static void on_response(rn_ctx_t *ctx, int status,
                        const rn_http_response_t *resp, void *data) {
  (void)ctx;
  call_t *c = data;
  c->status = status;
  c->http_status = resp ? resp->status : 0;
  (*c->done)++;
}

/* One runner process; writes one line of figures to path. */
static void runner(const char *dsn, const char *path, int requests,
                   uint32_t per_minute, uint32_t per_hour) {
  rn__config_t *config = calloc(1, sizeof *config);
  config->path = strdup("(bench)");
  config->drain_timeout_ms = 1000;
  config->workers = 4;
  config->database_url = strdup(dsn);
  rt_host_open(&h, config);
  rn_rate_window_t w[2] = {RN_RATE_WINDOW(per_minute, 60000),
                           RN_RATE_WINDOW(per_hour, 3600000)};
  if (h.api->rate_configure(h.ctx, KEY, w, per_hour ? 2 : 1) != 0)
    _exit(3);
  call_t *calls = calloc((size_t)requests, sizeof *calls);
  int done = 0;
  char url[256];
  snprintf(url, sizeof url,
           "http://127.0.0.1:%d/eu/v2/organizations?pageSize=1", sim.port);
  const char *headers[] = {auth, NULL};
  for (int i = 0; i < requests; i++) {
    calls[i].done = &done;
    rn_http_request_t rq = RN_HTTP_REQUEST_INIT;
    rq.url = url;
    rq.headers = headers;
    rq.rate_key = KEY;
    if (h.api->http_request(h.ctx, &rq, on_response, &calls[i], NULL) != 0)
      _exit(4);
  }
  while (done < requests) {
    bool never = false;
    rt_host_run_until(&h, &never, 200);
  }
  int ok = 0, throttled = 0;
  for (int i = 0; i < requests; i++) {
    ok += calls[i].status == 0 && calls[i].http_status == 200;
    throttled += calls[i].http_status == 429;
  }
  rn__rate_stats_t st;
  rn__rate_get_stats(rn__rate_key(rn__http_rate(&h.runner), KEY, false), &st);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  char text[256];
  snprintf(text, sizeof text, "%d %d %llu %llu %llu %ld\n", ok, throttled,
           (unsigned long long)st.grant_calls, (unsigned long long)st.granted,
           (unsigned long long)st.returned, ru.ru_maxrss);
  rt_write_file(path, text, 0644);
  free(calls);
  rt_host_close(&h);
  _exit(0);
}

static long tenant_requests(long *throttled) {
  simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
  json_t *eu = json_object_get(json_object_get(r.json, "tenants"), "eu");
  long n = (long)json_integer_value(json_object_get(eu, "requests"));
  *throttled = (long)json_integer_value(json_object_get(eu, "throttled"));
  simc_resp_free(&r);
  return n;
}

int main(int argc, char **argv) {
  int runners = 3, requests = 100;
  long per_minute = 200, per_hour = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--runners") == 0)
      runners = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--requests") == 0)
      requests = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--per-minute") == 0)
      per_minute = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--per-hour") == 0)
      per_hour = atol(argv[i + 1]);
    else {
      fprintf(stderr, "bench_budget: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (runners < 1 || runners > 64 || requests < 1 || per_minute < 1) {
    fprintf(stderr,
            "bench_budget: bad --runners, --requests or --per-minute\n");
    return 2;
  }
  const char *dsn = rt_pg_fresh_db();
  rt_pg_apply_dir(dsn, RT_SOURCE_DIR "/runner/migrations");
  char minute_s[24], hour_s[24];
  snprintf(minute_s, sizeof minute_s, "%ld", per_minute);
  snprintf(hour_s, sizeof hour_s, "%ld", per_hour);
  const char *args[] = {"--generate", "--orgs",
                        "2",          "--devices-per-org",
                        "5",          "--rate-limit-minute",
                        minute_s,     "--rate-limit-hour",
                        hour_s,       NULL};
  if (simc_start(&sim, args) != 0) {
    fprintf(stderr, "bench_budget: the simulator did not start\n");
    return 1;
  }
  char *token =
      simc_token(&sim, "eu", "sim-eu-client", "sim-eu-secret", "monitoring");
  if (!token)
    return 1;
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  free(token);
  char dir[128];
  rt_make_temp_dir(dir, sizeof dir, "bench-budget");
  pid_t *pids = calloc((size_t)runners, sizeof *pids);
  int64_t t0 = now_ms();
  for (int i = 0; i < runners; i++) {
    char path[256];
    snprintf(path, sizeof path, "%s/runner-%d", dir, i);
    pids[i] = fork();
    if (pids[i] == 0)
      runner(dsn, path, requests, (uint32_t)per_minute, (uint32_t)per_hour);
  }
  enum { MAX_SAMPLES = 100000 };
  static struct {
    int64_t at;
    long n;
  } samples[MAX_SAMPLES];
  int nsamples = 0, running = runners;
  long throttled = 0;
  while (running > 0) {
    if (nsamples < MAX_SAMPLES) {
      samples[nsamples].at = now_ms();
      samples[nsamples].n = tenant_requests(&throttled);
      nsamples++;
    }
    for (int i = 0; i < runners; i++) {
      int status;
      if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        pids[i] = 0;
        running--;
      }
    }
    usleep(100 * 1000); /* sampling period */
  }
  int64_t wall = now_ms() - t0;
  long total = tenant_requests(&throttled);
  long max_minute = 0;
  for (int i = 0; i < nsamples; i++)
    for (int j = i + 1; j < nsamples && samples[j].at - samples[i].at < 60000;
         j++)
      if (samples[j].n - samples[i].n > max_minute)
        max_minute = samples[j].n - samples[i].n;
  unsigned long long calls = 0, granted = 0, returned = 0;
  int ok = 0, seen_429 = 0;
  printf("bench_budget: %d runners x %d requests, budget %ld/min%s%s\n",
         runners, requests, per_minute, per_hour ? ", " : "",
         per_hour ? hour_s : "");
  for (int i = 0; i < runners; i++) {
    char path[256];
    snprintf(path, sizeof path, "%s/runner-%d", dir, i);
    char *text = rt_read_file(path);
    int p_ok = 0, p_429 = 0;
    unsigned long long c = 0, g = 0, r = 0;
    long rss = 0;
    if (text)
      sscanf(text, "%d %d %llu %llu %llu %ld", &p_ok, &p_429, &c, &g, &r, &rss);
    free(text);
    printf("  runner %d: %d ok, %d 429s, %llu grant calls, %llu granted, "
           "%llu handed back, peak RSS %.1f MiB\n",
           i, p_ok, p_429, c, g, r, (double)rss / 1024.0);
    ok += p_ok;
    seen_429 += p_429;
    calls += c;
    granted += g;
    returned += r;
  }
  printf("  simulator: %ld requests, %ld throttled (429)\n", total, throttled);
  printf("  highest count in any 60 s (sampled every 100 ms): %ld of %ld\n",
         max_minute, per_minute);
  printf("  database round trips per 1,000 requests: %.1f\n",
         ok ? 1000.0 * (double)calls / (double)ok : 0.0);
  printf("  wall time: %.1f s (%.1f requests/min)\n", (double)wall / 1000.0,
         (double)total * 60000.0 / (double)(wall ? wall : 1));
  simc_stop(&sim);
  rt_remove_tree(dir);
  free(pids);
  return ok == runners * requests && throttled == 0 ? 0 : 1;
}
