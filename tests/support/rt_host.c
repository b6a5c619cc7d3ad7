/* rt_host.c - see rt_host.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_host.h"

/* Plain checks: benchmarks use this host too, outside any test. */
#define CHECK(cond, what)                                                    \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "rt_host: %s\n", what);                                \
      abort();                                                               \
    }                                                                        \
  } while (0)

static int no_create(rn_ctx_t *ctx, const rn_config_t *config, void **state) {
  (void)ctx;
  (void)config;
  *state = NULL;
  return 0;
}

static void no_destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  (void)state;
}

static const rn_job_def_t *const no_jobs[] = {NULL};
static const rn_plugin_t test_plugin = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "test",
    .version = "0",
    .create = no_create,
    .destroy = no_destroy,
    .jobs = no_jobs,
};

void rt_host_open(rt_host_t *h, rn__config_t *config) {
  memset(h, 0, sizeof *h);
  CHECK(uv_loop_init(&h->loop) == 0, "uv_loop_init failed");
  CHECK(rn__runner_init(&h->runner, &h->loop, "/dev/null", NULL) == 0,
        "runner init failed");
  if (!config) {
    config = calloc(1, sizeof *config);
    config->path = strdup("(test)");
    config->drain_timeout_ms = 1000;
    config->workers = 4;
  }
  rn__generation_t *gen = calloc(1, sizeof *gen);
  gen->runner = &h->runner;
  gen->id = 1;
  gen->config = config;
  gen->refs = 1;
  gen->plugins = calloc(1, sizeof *gen->plugins);
  gen->nplugins = 1;
  rn__plugin_t *p = &gen->plugins[0];
  p->gen = gen;
  p->name = strdup("test");
  p->source_path = strdup("(in memory)");
  p->desc = &test_plugin;
  p->created = true;
  p->ctx.plugin = p;
  p->ctx.runner = &h->runner;
  rn__list_init(&p->ctx.reqs);
  h->runner.gen = gen;
  h->gen = gen;
  h->plugin = p;
  h->ctx = &p->ctx;
  h->api = rn__host();
}

void rt_host_close(rt_host_t *h) {
  rn__runner_close(&h->runner);
  CHECK(uv_loop_close(&h->loop) == 0, "handles left open on the loop");
}

static void on_deadline(uv_timer_t *t) { *(bool *)t->data = true; }

bool rt_host_run_until(rt_host_t *h, const bool *done, int timeout_ms) {
  uv_timer_t deadline;
  bool expired = false;
  uv_timer_init(&h->loop, &deadline);
  deadline.data = &expired;
  /* The loop's clock stands still between runs: measure from now. */
  uv_update_time(&h->loop);
  uv_timer_start(&deadline, on_deadline, (uint64_t)timeout_ms, 0);
  while (!*done && !expired)
    uv_run(&h->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&deadline, NULL);
  uv_run(&h->loop, UV_RUN_NOWAIT);
  return *done;
}
