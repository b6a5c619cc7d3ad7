/* rt_host.h - a real host (loop, runner, one generation with an in-memory
 * plugin) for tests that call host services directly, as a plugin would. */
#ifndef RT_HOST_H
#define RT_HOST_H

#include "internal.h"

typedef struct rt_host_s {
  uv_loop_t loop;
  rn__runner_t runner;
  rn__generation_t *gen;
  rn__plugin_t *plugin; /* named "test", no jobs */
  rn_ctx_t *ctx;        /* pass to host services */
  const rn_host_t *api; /* the service table */
} rt_host_t;

/* config may be NULL (defaults); the host takes ownership of it. */
void rt_host_open(rt_host_t *h, rn__config_t *config);
/* Retires the generation, runs the loop until every handle has closed, and
 * asserts uv_loop_close() == 0. */
void rt_host_close(rt_host_t *h);
/* Runs the loop until *done is true or timeout_ms passes; false on timeout. */
bool rt_host_run_until(rt_host_t *h, const bool *done, int timeout_ms);

#endif
