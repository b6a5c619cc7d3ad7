/*
 * hello - the smallest useful regentra-runner plugin.
 *
 * Two jobs: "greet" completes at once with a JSON result; "wait" completes
 * after a delay using a host timer, and can be cancelled. Build it out of
 * tree with the Makefile beside this file (pkg-config regentra-sdk).
 */
#include <regentra/plugin.h>
#include <stdio.h>
#include <string.h>

static const rn_host_t *host;

/* [plugin "hello"] options. RN_OPTION fills in each element's struct_size,
 * by which the host steps through the array; {0} ends it. */
static const rn_option_t plugin_options[] = {
    RN_OPTION(.name = "greeting", .type = RN_OPT_STRING,
              .default_value = "hello",
              .help = "word each greeting starts with"),
    {0},
};

typedef struct hello_state_s {
  const char *greeting; /* borrowed from the host for the life of the load */
  unsigned greeted;
} hello_state_t;

static int hello_create(rn_ctx_t *ctx, const rn_config_t *config,
                        void **state) {
  hello_state_t *s = host->calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  s->greeting = host->config_str(config, "greeting");
  *state = s;
  host->log(ctx, RN_LOG_DEBUG, "created");
  return 0;
}

static void hello_destroy(rn_ctx_t *ctx, void *state) {
  hello_state_t *s = state;
  host->log(ctx, RN_LOG_DEBUG, "destroyed after %u greeting(s)", s->greeted);
  host->free(s);
}

/* ------------------------------------------------------------- greet */

static const rn_option_t greet_params[] = {
    RN_OPTION(.name = "name", .type = RN_OPT_STRING, .default_value = "world",
              .help = "who to greet"),
    {0},
};

/* Parameters arrive as a JSON object; this example reads its one string
 * field by hand to stay dependency-free. Real plugins use a JSON library. */
static void param_string(const char *json, const char *key, char *out,
                         size_t outlen) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  const char *p = strstr(json, pattern);
  out[0] = '\0';
  if (!p)
    return;
  p += strlen(pattern);
  size_t n = 0;
  while (p[n] && p[n] != '"' && n + 1 < outlen)
    n++;
  memcpy(out, p, n);
  out[n] = '\0';
}

static int greet_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  hello_state_t *s = state;
  char name[128], result[512], summary[256];
  param_string(host->job_params(job), "name", name, sizeof name);
  snprintf(summary, sizeof summary, "%s, %s", s->greeting, name);
  snprintf(result, sizeof result, "{\"greeting\":\"%s\",\"count\":%u}",
           summary, ++s->greeted);
  host->log(ctx, RN_LOG_INFO, "greeted %s", name);
  host->job_complete(job, 0, result, summary);
  return 0;
}

static const rn_job_def_t greet_job = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "greet",
    .summary = "complete at once with a greeting",
    .params = greet_params,
    .run = greet_run,
    .command = "greet",
};

/* -------------------------------------------------------------- wait */

static const rn_option_t wait_options[] = {
    RN_OPTION(.name = "duration", .type = RN_OPT_DURATION,
              .default_value = "2s", .help = "how long each run waits"),
    {0},
};

static void wait_done(rn_ctx_t *ctx, int status, void *data) {
  rn_job_t *job = data;
  (void)ctx;
  host->job_complete(job, status,
                     status == 0 ? "{\"waited\":true}" : "{\"waited\":false}",
                     status == 0 ? "waited" : "cancelled");
}

static int wait_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  int64_t ms = host->config_int(host->job_config(job), "duration");
  rn_req_t *timer;
  int rc = host->timer_start(ctx, (uint64_t)ms, wait_done, job, &timer);
  if (rc < 0)
    return rc;
  host->job_set_data(job, timer);
  return 0;
}

static void wait_cancel(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)ctx;
  (void)state;
  host->cancel(host->job_data(job)); /* wait_done then reports it */
}

static const rn_job_def_t wait_job = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "wait",
    .summary = "complete after a delay (cancellable)",
    .options = wait_options,
    .run = wait_run,
    .cancel = wait_cancel,
};

static const rn_job_def_t *const jobs[] = {&greet_job, &wait_job, NULL};

static const rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "hello",
    .version = "1.0.0",
    .summary = "example plugin: greetings and waits",
    .options = plugin_options,
    .create = hello_create,
    .destroy = hello_destroy,
    .jobs = jobs,
    .command_group = "hello",
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  if (h->abi_version >> 16 != RN_ABI_MAJOR)
    return NULL;
  host = h;
  return &descriptor;
}
