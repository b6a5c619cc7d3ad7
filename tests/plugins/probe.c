/* probe - a plugin whose build-time variants exercise the loader: an older
 * ABI minor, wrong ABI major, short descriptor, missing entry, failing
 * create(), and two versions of the same plugin for reload. */
#include <regentra/plugin.h>
#include <stdio.h>

#ifndef PROBE_NAME
#define PROBE_NAME "probe"
#endif
#ifndef PROBE_VERSION
#define PROBE_VERSION "1"
#endif
#ifndef PROBE_ABI_MAJOR
#define PROBE_ABI_MAJOR RN_ABI_MAJOR
#endif
/* A 1.0 plugin by default: the host keeps loading plugins of an older
 * minor. */
#ifndef PROBE_ABI_MINOR
#define PROBE_ABI_MINOR 0
#endif
#ifndef PROBE_STRUCT_SIZE
#define PROBE_STRUCT_SIZE sizeof(rn_plugin_t)
#endif

static const rn_host_t *host;

static int probe_create(rn_ctx_t *ctx, const rn_config_t *config,
                        void **state) {
  (void)config;
  *state = NULL;
#ifdef PROBE_CREATE_FAILS
  host->log(ctx, RN_LOG_ERR, "refusing to start on purpose");
  return RN_ECONFIG;
#else
  host->log(ctx, RN_LOG_INFO, "probe %s created", PROBE_VERSION);
  return 0;
#endif
}

static void probe_destroy(rn_ctx_t *ctx, void *state) {
  (void)state;
  host->log(ctx, RN_LOG_INFO, "probe %s destroyed", PROBE_VERSION);
}

static const rn_option_t slow_options[] = {
    {.name = "duration", .type = RN_OPT_DURATION, .default_value = "1s"},
    {.name = "label", .type = RN_OPT_STRING},
    {.name = "count", .type = RN_OPT_INT, .min = 1, .max = 10},
    {0},
};

static void slow_done(rn_ctx_t *ctx, int status, void *data) {
  rn_job_t *job = data;
  char summary[128];
  snprintf(summary, sizeof summary, "probe %s %s", PROBE_VERSION,
           status == 0 ? "finished" : "cancelled");
  host->log(ctx, RN_LOG_INFO, "%s", summary);
  host->job_complete(job, status, "{\"version\":\"" PROBE_VERSION "\"}",
                     summary);
}

static int slow_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  int64_t ms = host->config_int(host->job_config(job), "duration");
  rn_req_t *timer;
  int rc = host->timer_start(ctx, (uint64_t)ms, slow_done, job, &timer);
  if (rc < 0)
    return rc;
  host->job_set_data(job, timer);
  host->log(ctx, RN_LOG_INFO, "probe %s started", PROBE_VERSION);
  return 0;
}

static void slow_cancel(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)ctx;
  (void)state;
  host->cancel(host->job_data(job));
}

static const rn_job_def_t slow_job = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "slow",
    .summary = "waits, then reports its version",
    .options = slow_options,
    .run = slow_run,
    .cancel = slow_cancel,
};

static const rn_job_def_t *const jobs[] = {&slow_job, NULL};

static const rn_plugin_t descriptor = {
    .abi_version = ((uint32_t)PROBE_ABI_MAJOR << 16) | PROBE_ABI_MINOR,
    .struct_size = PROBE_STRUCT_SIZE,
    .name = PROBE_NAME,
    .version = PROBE_VERSION,
    .create = probe_create,
    .destroy = probe_destroy,
    .jobs = jobs,
};

#ifdef PROBE_NO_ENTRY
RN_EXPORT const rn_plugin_t *probe_entry(const rn_host_t *h);
RN_EXPORT const rn_plugin_t *probe_entry(const rn_host_t *h)
#else
RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h)
#endif
{
  host = h;
  return &descriptor;
}
