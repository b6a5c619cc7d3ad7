/* probe - a plugin whose build-time variants exercise the loader: an older
 * ABI minor, wrong ABI major, short descriptor, missing entry, failing
 * create(), two versions of the same plugin for reload, and the element
 * layouts of option schemas and rate windows: those of ABI 1.0/1.1 (no
 * struct_size), this header's, and a larger one from a future minor; and
 * plugins of one device source, with equal or differing source schemas. */
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

/* Option and rate window elements. A plugin of ABI 1.0 or 1.1 was built
 * with these layouts, before elements carried their size. */
#if PROBE_ABI_MINOR < 2
typedef struct probe_option_s {
  const char *name;
  int type;
  int flags;
  const char *default_value;
  const char *help;
  int64_t min, max;
  const char *choices;
} probe_option_t;
typedef struct probe_window_s {
  uint32_t limit;
  uint64_t period_ms;
} probe_window_t;
#define OPTION(...)                                                            \
  { __VA_ARGS__ }
#define WINDOW(limit, period_ms)                                               \
  { (limit), (period_ms) }
#define END {0}
#elif defined(PROBE_WIDE_LAYOUT)
/* Built against a later minor whose elements grew: the host reads the
 * fields it knows and steps over the rest by the declared size. The
 * trailing values are what a host stepping by its own sizeof would take
 * for the next element's size and name. */
typedef struct probe_option_s {
  rn_option_t known;
  const char *future_text;
  int64_t future_number;
} probe_option_t;
typedef struct probe_window_s {
  rn_rate_window_t known;
  uint64_t future_burst;
  const char *future_text;
} probe_window_t;
#define OPTION(...)                                                            \
  {                                                                            \
    .known = {.struct_size = sizeof(probe_option_t), __VA_ARGS__},             \
    .future_text = "a field of a later minor", .future_number = -1             \
  }
#define WINDOW(limit, period_ms)                                               \
  {                                                                            \
    .known = {sizeof(probe_window_t), (limit), (period_ms)},                   \
    .future_burst = 0xffffffffffffffffu, .future_text = "burst"                \
  }
#define END {.known = {0}}
#else
typedef rn_option_t probe_option_t;
typedef rn_rate_window_t probe_window_t;
#define OPTION(...) RN_OPTION(__VA_ARGS__)
#define WINDOW(limit, period_ms) RN_RATE_WINDOW(limit, period_ms)
#define END {0}
#endif
/* The descriptor's fields are typed by this header; the host reads the
 * elements by the layout the plugin declares. */
#define AS_OPTIONS(array) ((const rn_option_t *)(const void *)(array))
#define AS_WINDOWS(array) ((const rn_rate_window_t *)(const void *)(array))

static const probe_option_t plugin_options[] = {
    OPTION(.name = "budget_per_minute", .type = RN_OPT_INT,
           .default_value = "0", .min = 0, .max = 100000,
           .help = "declare a request budget on create (0 = none)"),
    END,
};

#ifdef PROBE_SOURCE
/* The connection of a device source (ABI 1.5): PROBE_SOURCE_ODD declares
 * another default, which the host refuses beside the usual schema. */
static const probe_option_t source_options[] = {
    OPTION(.name = "endpoint", .type = RN_OPT_URL, .help = "the API host"),
#if defined(PROBE_SOURCE_ODD)
    OPTION(.name = "page_size", .type = RN_OPT_INT, .default_value = "50",
           .min = 1, .max = 1000, .help = "rows per page"),
#elif defined(PROBE_SOURCE_OVERLAP)
    /* also a key of the plugin's own section */
    OPTION(.name = "budget_per_minute", .type = RN_OPT_INT,
           .default_value = "0", .min = 0, .max = 100000, .help = "budget"),
#else
    OPTION(.name = "page_size", .type = RN_OPT_INT, .default_value = "100",
           .min = 1, .max = 1000, .help = "rows per page"),
#endif
    END,
};
#endif

static const rn_host_t *host;

static int probe_create(rn_ctx_t *ctx, const rn_config_t *config,
                        void **state) {
  *state = NULL;
#ifdef PROBE_CREATE_FAILS
  (void)config;
  host->log(ctx, RN_LOG_ERR, "refusing to start on purpose");
  return RN_ECONFIG;
#else
  uint32_t per_minute = (uint32_t)host->config_int(config, "budget_per_minute");
  if (per_minute) {
    const probe_window_t windows[] = {WINDOW(per_minute, 60000),
                                      WINDOW(per_minute * 30, 3600000)};
    int rc =
        host->rate_configure(ctx, "probe/" PROBE_NAME, AS_WINDOWS(windows), 2);
    if (rc < 0)
      return rc;
  }
  host->log(ctx, RN_LOG_INFO, "probe %s created", PROBE_VERSION);
  return 0;
#endif
}

static void probe_destroy(rn_ctx_t *ctx, void *state) {
  (void)state;
  host->log(ctx, RN_LOG_INFO, "probe %s destroyed", PROBE_VERSION);
}

static const probe_option_t slow_options[] = {
    OPTION(.name = "duration", .type = RN_OPT_DURATION, .default_value = "1s"),
    OPTION(.name = "label", .type = RN_OPT_STRING),
    OPTION(.name = "count", .type = RN_OPT_INT, .min = 1, .max = 10),
    OPTION(.name = "pace", .type = RN_OPT_ENUM, .choices = "even|burst",
           .default_value = "even", .help = "how runs are spread"),
    END,
};

static const probe_option_t slow_params[] = {
    OPTION(.name = "repeat", .type = RN_OPT_INT, .default_value = "1", .min = 1,
           .max = 3, .help = "times to wait"),
    OPTION(.name = "note", .type = RN_OPT_STRING, .help = "any text"),
    END,
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
    .options = AS_OPTIONS(slow_options),
    .params = AS_OPTIONS(slow_params),
    .run = slow_run,
    .cancel = slow_cancel,
};

static const rn_job_def_t *const jobs[] = {&slow_job, NULL};

static const rn_plugin_t descriptor = {
    .abi_version = ((uint32_t)PROBE_ABI_MAJOR << 16) | PROBE_ABI_MINOR,
    .struct_size = PROBE_STRUCT_SIZE,
    .name = PROBE_NAME,
    .version = PROBE_VERSION,
    .options = AS_OPTIONS(plugin_options),
#ifdef PROBE_SOURCE
    .source = PROBE_SOURCE,
    .source_options = AS_OPTIONS(source_options),
#endif
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
