/* bench_fetch - fetch and decode every device of a simulated fleet through
 * the host's HTTP service and the NinjaOne client, rate limits off:
 * first one walk per organization all at once on one loop, then the same
 * walks one at a time. Prints wall time, requests, devices/s, CPU seconds
 * and peak RSS of this process (the simulator is another process).
 *
 * Each phase runs in a child process of its own, so peak RSS is per phase.
 * On a loopback simulator there is no network latency to overlap, so the
 * phases are repeated with LATENCY_MS added to every answer (the simulator's
 * "slow" fault), which is what a real upstream costs per request.
 *
 * The client holds at most a few pages at once (its page slots), so peak
 * RSS of the concurrent phase should stay near the one-at-a-time figure.
 * Last, the CPU per device of the concurrent phase is set against a bare
 * jansson parse (json_loadb + json_decref) of the same first page, and
 * that page's size is printed as text, as a jansson tree and as the client
 * holds it decoded.
 *
 *   bench_fetch [ORGS [DEVICES_PER_ORG [PAGE_SIZE [LATENCY_MS]]]]
 *   defaults      100   1000              1000      50
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include <jansson.h>

#include "nj_internal.h"
#include "rt_host.h"
#include "sim_client.h"

typedef struct bench_s {
  rt_host_t *h;
  nj_client_t *client;
  int orgs;
  int next_org;     /* next org to start */
  int running;
  int finished;
  int concurrency;
  uint32_t page_size;
  uint64_t devices;
  uint64_t requests;
  int errors;
  bool all_done;
} bench_t;

static int on_page(const nj_page_t *page, void *data) {
  bench_t *b = data;
  b->devices += page->count;
  return 0;
}

static void start_next(bench_t *b);

static void on_done(nj_walk_t *walk, const nj_walk_result_t *res, void *data) {
  bench_t *b = data;
  (void)walk;
  b->running--;
  b->finished++;
  b->requests += res->requests;
  if (res->status || res->truncated) {
    b->errors++;
    fprintf(stderr, "walk failed: %s%s\n", res->message ? res->message : "",
            res->truncated ? " (truncated)" : "");
  }
  start_next(b);
  if (b->finished == b->orgs)
    b->all_done = true;
}

static void start_next(bench_t *b) {
  while (b->running < b->concurrency && b->next_org < b->orgs) {
    char df[32];
    snprintf(df, sizeof df, "org = %d", ++b->next_org);
    nj_walk_opts_t o = {.endpoint = NJ_EP_DEVICES_DETAILED,
                        .df = df,
                        .page_size = b->page_size};
    int rc = nj_walk_start(b->client, &o, on_page, on_done, b, NULL);
    if (rc < 0) {
      fprintf(stderr, "nj_walk_start: %s\n", rn__strerror(rc));
      exit(1);
    }
    b->running++;
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static double last_us_per_device = -1;

static double run(rt_host_t *h, nj_client_t *c, int orgs, int concurrency,
                  uint32_t page_size, const char *label) {
  bench_t b = {.h = h, .client = c, .orgs = orgs, .concurrency = concurrency,
               .page_size = page_size};
  double t0 = now_s(), c0 = cpu_s();
  start_next(&b);
  while (!b.all_done)
    uv_run(&h->loop, UV_RUN_ONCE);
  double wall = now_s() - t0, cpu = cpu_s() - c0;
  printf("%-16s walks %d at once: wall %.2f s, requests %llu, devices %llu, "
         "%.0f devices/s, CPU %.2f s (%.1f us/device), peak RSS %.1f MiB%s\n",
         label, concurrency, wall, (unsigned long long)b.requests,
         (unsigned long long)b.devices, (double)b.devices / wall, cpu,
         b.devices ? cpu * 1e6 / (double)b.devices : 0.0,
         (double)peak_rss_kb() / 1024.0, b.errors ? " (WITH ERRORS)" : "");
  last_us_per_device = b.devices ? cpu * 1e6 / (double)b.devices : -1;
  return b.errors ? -1 : wall;
}

static int phase(int port, int orgs, int concurrency, uint32_t page,
                 const char *label) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid > 0) {
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
  }
  rt_host_t h;
  rt_host_open(&h, NULL);
  char base[96];
  snprintf(base, sizeof base, "http://127.0.0.1:%d/eu", port);
  nj_client_opts_t o = {.region = NJ_REGION_EU, .base_url = base,
                        .client_id = "sim-eu-client",
                        .client_secret = "sim-eu-secret",
                        .client_secret_len = strlen("sim-eu-secret"),
                        .rate_limit_off = true};
  nj_client_t *c;
  char err[256];
  if (nj_client_new(h.api, h.ctx, &o, &c, err, sizeof err) < 0) {
    fprintf(stderr, "nj_client_new: %s\n", err);
    _exit(1);
  }
  double wall = run(&h, c, orgs, concurrency, page, label);
  nj_client_free(c);
  rt_host_close(&h);
  fflush(stdout);
  FILE *f = fopen("/tmp/bench_fetch.wall", "w");
  if (f) {
    fprintf(f, "%f %f\n", wall, last_us_per_device);
    fclose(f);
  }
  _exit(wall > 0 ? 0 : 1);
}

static double last_wall(double *us_per_device) {
  double w = -1, us = -1;
  FILE *f = fopen("/tmp/bench_fetch.wall", "r");
  if (f) {
    if (fscanf(f, "%lf %lf", &w, &us) != 2)
      w = us = -1;
    fclose(f);
  }
  if (us_per_device)
    *us_per_device = us;
  return w;
}

/* CPU per device of a bare jansson parse of the first page of org 1 (what
 * any client must at least pay), best of a few rounds. */
static double bare_parse_us(sim_proc_t *sim, uint32_t page) {
  char *token =
      simc_token(sim, "eu", "sim-eu-client", "sim-eu-secret", "monitoring");
  if (!token)
    return -1;
  char path[128];
  snprintf(path, sizeof path,
           "/eu/v2/devices-detailed?pageSize=%u&df=org%%20%%3D%%201", page);
  simc_resp_t r = simc_get(sim, path, token);
  free(token);
  double best = -1;
  size_t devices = json_array_size(r.json);
  if (devices) {
    /* What one page costs while held: its text, then its tree. */
    struct mallinfo2 m0 = mallinfo2();
    json_error_t jerr;
    json_t *root = json_loadb(r.body, r.len, JSON_REJECT_DUPLICATES, &jerr);
    struct mallinfo2 m1 = mallinfo2();
    json_decref(root);
    /* What the client holds of it once decoded (hblkhd: its chunks may be
     * mappings of their own). */
    nj_decoded_t d;
    bool parse_error;
    char msg[NJ_ERR_LEN];
    struct mallinfo2 m2 = mallinfo2();
    int rc = nj__decode_page(NJ_EP_DEVICES_DETAILED, r.body, r.len, &d,
                             &parse_error, msg, sizeof msg);
    struct mallinfo2 m3 = mallinfo2();
    nj__decoded_free(&d);
    double tree = (double)(m1.uordblks - m0.uordblks);
    double held = (double)((m3.uordblks + m3.hblkhd) -
                           (m2.uordblks + m2.hblkhd));
    printf("  one page of %zu devices: body %.2f MiB, jansson tree %.2f MiB "
           "(%.1fx the body), decoded page %.2f MiB (%.1fx)%s%s\n",
           devices, (double)r.len / 1048576.0, tree / 1048576.0,
           tree / (double)r.len, held / 1048576.0, held / (double)r.len,
           rc ? ": " : "", rc ? msg : "");
  }
  for (int round = 0; round < 5 && devices; round++) {
    double c0 = cpu_s();
    for (int i = 0; i < 10; i++) {
      json_error_t jerr;
      json_t *root = json_loadb(r.body, r.len, JSON_REJECT_DUPLICATES, &jerr);
      json_decref(root);
    }
    double us = (cpu_s() - c0) * 1e6 / (10.0 * (double)devices);
    if (best < 0 || us < best)
      best = us;
  }
  simc_resp_free(&r);
  return best;
}

int main(int argc, char **argv) {
  int orgs = argc > 1 ? atoi(argv[1]) : 100;
  int per_org = argc > 2 ? atoi(argv[2]) : 1000;
  uint32_t page = argc > 3 ? (uint32_t)atoi(argv[3]) : 1000;
  int latency = argc > 4 ? atoi(argv[4]) : 50;
  /* As the runner's main does (BENCH_MALLOC_DEFAULT=1: glibc's defaults,
   * for the before figure). */
  const char *untuned = getenv("BENCH_MALLOC_DEFAULT");
  if (!untuned || strcmp(untuned, "1") != 0)
    rn__malloc_tune();
  if (orgs <= 0 || per_org <= 0 || page == 0 || latency < 0) {
    fprintf(stderr,
            "usage: bench_fetch [ORGS [DEVICES_PER_ORG [PAGE [LATENCY_MS]]]]\n");
    return 2;
  }
  char orgs_s[16], per_s[16];
  snprintf(orgs_s, sizeof orgs_s, "%d", orgs);
  snprintf(per_s, sizeof per_s, "%d", per_org);
  const char *args[] = {"--generate", "--seed", "1", "--orgs", orgs_s,
                        "--devices-per-org", per_s, "--rate-limit-minute",
                        "0", "--rate-limit-hour", "0", NULL};
  sim_proc_t sim;
  printf("simulator: %d orgs x %d devices; page size %u; libuv pool %s\n",
         orgs, per_org, page,
         getenv("UV_THREADPOOL_SIZE") ? getenv("UV_THREADPOOL_SIZE") : "4");
  fflush(stdout);
  if (simc_start(&sim, args) != 0) {
    fprintf(stderr, "the simulator did not start\n");
    return 1;
  }
  int rc = 0;
  for (int pass = 0; pass < (latency ? 2 : 1) && rc == 0; pass++) {
    if (pass == 1) {
      char rule[160];
      snprintf(rule, sizeof rule,
               "{\"endpoint\":\"*\",\"kind\":\"slow\",\"rate\":1,"
               "\"delayMs\":%d}",
               latency);
      if (simc_control(&sim, "faults", rule) != 200) {
        fprintf(stderr, "cannot add latency to the simulator\n");
        rc = 1;
        break;
      }
      printf("with %d ms added to every answer:\n", latency);
    } else {
      printf("loopback, no added latency:\n");
    }
    rc |= phase(sim.port, orgs, orgs, page, "  concurrent:");
    double us_client = -1;
    double multi = last_wall(&us_client);
    rc |= phase(sim.port, orgs, 1, page, "  one at a time:");
    double serial = last_wall(NULL);
    double us_bare = bare_parse_us(&sim, page);
    if (us_client > 0 && us_bare > 0)
      printf("  CPU per device: client (HTTP, decode, delivery) %.1f us, bare "
             "jansson parse of the same page %.1f us: %.2fx\n",
             us_client, us_bare, us_client / us_bare);
    if (rc == 0 && multi > 0 && serial > 0)
      printf("  ratio: one at a time takes %.1fx the wall time of all at "
             "once\n",
             serial / multi);
  }
  remove("/tmp/bench_fetch.wall");
  simc_stop(&sim);
  return rc;
}
