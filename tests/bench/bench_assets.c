/* bench_assets - set-based asset sync throughput against a real PostgreSQL.
 *
 * Pass 1 upserts 100,000 devices for one company and 10,000 for each of 10
 * more; pass 2 re-syncs exactly the same pull (nothing changed: nothing
 * should be written); pass 3 re-syncs every company with 5% of devices
 * changed and 2% gone (complete pulls, so the gone ones are retired) and
 * should report exactly the changed rows as updated. Prints rows/second per
 * pass, the seen/updated counts beside the expected ones, and the SQL round
 * trips used. Uses REGENTRA_TEST_DSN's server (or a throwaway cluster) and a
 * fresh database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "regentra/devsrc.h"
#include "rt.h"
#include "rt_host.h"

typedef struct company_s {
  int64_t id;
  size_t devices;
} company_t;

typedef struct pass_s {
  company_t *company;
  int pass; /* 1 created, 2 unchanged, 3 mixed */
  rn_asset_t *assets;
  char *strings;
  size_t count;
  rn_asset_counts_t counts;
  bool done;
  int status;
  char error[512];
} pass_t;

static rt_host_t host;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Builds the pull of one company for a pass: pass 3 drops every 50th device
 * (2%) and renames every 20th (5%); *changed counts the renamed ones. */
static void build(pass_t *p, size_t *changed) {
  size_t n = p->company->devices;
  p->assets = calloc(n, sizeof *p->assets);
  p->strings = calloc(n, 96);
  p->count = 0;
  for (size_t i = 0; i < n; i++) {
    bool mixed = p->pass == 3;
    if (mixed && i % 50 == 49)
      continue;
    char *s = p->strings + i * 96;
    char *id = s, *host_name = s + 24, *serial = s + 56;
    snprintf(id, 24, "%lld-%zu", (long long)p->company->id, i);
    bool renamed = mixed && i % 20 == 0;
    *changed += renamed;
    snprintf(host_name, 32, "%s-%zu", renamed ? "NEW" : "WS", i);
    snprintf(serial, 40, "SN%lldX%zu", (long long)p->company->id, i);
    p->assets[p->count++] = (rn_asset_t){.external_id = id,
                                         .hostname = host_name,
                                         .serial_number = serial,
                                         .os_name = "Windows 11 Pro",
                                         .device_class = "WINDOWS_WORKSTATION"};
  }
}

static int sync_body(rn_db_tx_t *tx, void *data) {
  pass_t *p = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host.api, tx, host.api->now_ms(host.ctx));
  int rc = rn_assets_sync(&ds, RN_MSP_ORG(1), RN_COMPANY(p->company->id),
                          "ninjaone", p->assets, p->count, true, NULL,
                          &p->counts);
  if (rc < 0)
    snprintf(p->error, sizeof p->error, "%s", rn_devsrc_error(&ds));
  return rc;
}

static void sync_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  pass_t *p = data;
  p->status = status;
  p->done = true;
}

static void run_pass(company_t *companies, size_t n, int pass) {
  size_t rows = 0, changed = 0;
  rn_asset_counts_t total = {0};
  double t0 = now_s();
  for (size_t i = 0; i < n; i++) {
    pass_t p = {.company = &companies[i], .pass = pass};
    build(&p, &changed);
    if (host.api->db_transaction(host.ctx, sync_body, sync_done, &p, NULL) < 0 ||
        !rt_host_run_until(&host, &p.done, 600000) || p.status < 0) {
      fprintf(stderr, "bench_assets: sync failed: %s\n", p.error);
      exit(1);
    }
    rows += p.count;
    total.seen += p.counts.seen;
    total.created += p.counts.created;
    total.updated += p.counts.updated;
    total.retired += p.counts.retired;
    total.statements += p.counts.statements;
    free(p.assets);
    free(p.strings);
  }
  double took = now_s() - t0;
  static const char *const names[] = {"", "created", "unchanged", "mixed"};
  printf("pass %d (%s): %zu rows in %.2f s = %.0f rows/s; seen %lld, created "
         "%lld, updated %lld (changed in the pull: %zu), retired %lld; %lld "
         "SQL statements (%zu transactions)\n",
         pass, names[pass], rows, took, (double)rows / took,
         (long long)total.seen, (long long)total.created,
         (long long)total.updated, changed, (long long)total.retired,
         (long long)total.statements, n);
}

int main(void) {
  const char *dsn = rt_pg_fresh_db();
  rt_pg_apply_dir(dsn, RT_SOURCE_DIR "/sdk/devsrc/migrations");
  free(rt_pg_query(dsn, "INSERT INTO organization (id, name, kind) VALUES"
                        " (1, 'Bench MSP', 'MSP')"));
  company_t companies[11];
  for (size_t i = 0; i < 11; i++) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "INSERT INTO portal_company (msp_org_id, name) VALUES (1,"
             " 'Company %zu') RETURNING id",
             i);
    char *id = rt_pg_query(dsn, sql);
    companies[i] = (company_t){strtoll(id, NULL, 10), i == 0 ? 100000 : 10000};
    free(id);
  }
  rn__config_t *config = calloc(1, sizeof *config);
  config->path = strdup("(bench)");
  config->workers = 4;
  config->database_url = strdup(dsn);
  rt_host_open(&host, config);
  run_pass(companies, 11, 1);
  run_pass(companies, 11, 2);
  run_pass(companies, 11, 3);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("peak RSS of the benchmark process: %ld MiB\n", ru.ru_maxrss / 1024);
  rt_host_close(&host);
  return 0;
}
