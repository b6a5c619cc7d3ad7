/*
 * regentra/plugin.h - the device-source plugin ABI of regentra-runner.
 *
 * A plugin is a shared object exporting exactly one symbol, RN_ENTRY_NAME.
 * The host calls it once per load with its table of services and gets back a
 * static descriptor. Nothing else crosses the boundary: no libuv, curl, libpq
 * or jansson type appears here, and JSON crosses as UTF-8 text.
 *
 * Versioning: RN_ABI_VERSION = major << 16 | minor. The host accepts a plugin
 * whose major equals its own and whose minor is not greater. Structures that
 * cross the boundary start with a size field; a reader touches only fields
 * inside that size. Arrays are walked by the size their elements declare,
 * never by the reader's own sizeof. Fields and service slots are only ever
 * appended; a removal, reorder or change of meaning is a new major with a
 * new entry name.
 *
 * Ownership words used in the comments below:
 *   new       the callee allocated it; release with host->free (or the named
 *             release function);
 *   borrowed  valid until the callback returns (or as stated);
 *   copied    the host copies it during the call.
 *
 * Loop discipline: every plugin callback runs on the host's loop thread and
 * must not block. Blocking database work goes through db_transaction and CPU
 * heavy work through work_queue; both run on worker threads and report back
 * on the loop.
 *
 * Calls that take a callback either fail synchronously with a negative error
 * and never call it, or return 0 and call it exactly once (RN_ECANCELED
 * included).
 */
#ifndef REGENTRA_PLUGIN_H
#define REGENTRA_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RN_ABI_MAJOR 1
#define RN_ABI_MINOR 6
#define RN_ABI_VERSION (((uint32_t)RN_ABI_MAJOR << 16) | (uint32_t)RN_ABI_MINOR)
#define RN_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)
#define RN_ABI_MINOR_OF(v) ((uint32_t)(v)&0xffffu)

/* The entry symbol carries the major: a plugin for another major simply has
 * no symbol of this name. */
#define RN_ENTRY rn_plugin_entry_v1
#define RN_ENTRY_NAME "rn_plugin_entry_v1"

#define RN_EXPORT __attribute__((visibility("default")))
#define RN_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* ---------------------------------------------------------------- errors */

/* 0 is success, negative values are errors, positive values are counts.
 * Negated POSIX errno where one fits, 4000+ for what is ours. */
#define RN_ERRNO_MAP(XX)                                                     \
  XX(EPERM, -1, "operation not permitted")                                   \
  XX(ENOENT, -2, "no such file, job or record")                              \
  XX(EIO, -5, "input/output error")                                          \
  XX(ENOMEM, -12, "out of memory")                                           \
  XX(EACCES, -13, "permission denied")                                       \
  XX(EBUSY, -16, "resource busy")                                            \
  XX(EEXIST, -17, "already exists")                                          \
  XX(EINVAL, -22, "invalid argument")                                        \
  XX(ERANGE, -34, "value out of range")                                      \
  XX(ENOSYS, -38, "service not provided by this host")                       \
  XX(ETIMEDOUT, -110, "timed out")                                           \
  XX(ECANCELED, -125, "operation canceled")                                  \
  XX(EABI, -4001, "plugin ABI mismatch")                                     \
  XX(ECONFIG, -4002, "invalid configuration")                                \
  XX(EHTTP, -4003, "HTTP transfer failed")                                   \
  XX(EDB, -4004, "database error")                                           \
  XX(EJSON, -4005, "malformed or unexpected JSON")                           \
  XX(EAUTH, -4006, "authentication refused by upstream")                     \
  XX(ETHROTTLED, -4007, "throttled by upstream")                             \
  XX(EUPSTREAM, -4008, "upstream error")                                     \
  XX(ETRUNCATED, -4009, "result truncated at a cap")                         \
  XX(EPII, -4010, "metadata contains a device or personal identifier")       \
  XX(ETENANT, -4011, "record belongs to another tenant")                     \
  XX(ESTATE, -4012, "not allowed in the current state")                      \
  XX(ECRYPTO, -4013, "sealed value cannot be opened")

enum rn_errno {
#define RN_ERRNO_ENUM(name, value, text) RN_##name = (value),
  RN_ERRNO_MAP(RN_ERRNO_ENUM)
#undef RN_ERRNO_ENUM
};

/* ------------------------------------------------------------ handles */

typedef struct rn_ctx_s rn_ctx_t;         /* one loaded plugin, as the host sees it */
typedef struct rn_job_s rn_job_t;         /* one run of a job */
typedef struct rn_req_s rn_req_t;         /* one cancellable request */
typedef struct rn_config_s rn_config_t;   /* validated options of a section */
typedef struct rn_db_result_s rn_db_result_t;
typedef struct rn_db_tx_s rn_db_tx_t;
typedef struct rn_slot_s rn_slot_t;     /* ABI 1.6: one page slot held */

/* Syslog-numbered levels. */
enum rn_log_level {
  RN_LOG_ERR = 3,
  RN_LOG_WARNING = 4,
  RN_LOG_NOTICE = 5,
  RN_LOG_INFO = 6,
  RN_LOG_DEBUG = 7
};

/* ------------------------------------------------------- config schema */

enum rn_option_type {
  RN_OPT_STRING = 1,
  RN_OPT_INT,         /* decimal, within [min, max] unless both are 0 */
  RN_OPT_BOOL,        /* true/false/yes/no/on/off/1/0 */
  RN_OPT_DURATION,    /* 30s, 5m, 2h, 1d or plain seconds; read in ms */
  RN_OPT_ENUM,        /* one of the '|'-separated words in `choices` */
  RN_OPT_URL,         /* http:// or https:// */
  RN_OPT_PATH,        /* a file path; not opened by the host */
  RN_OPT_SECRET_FILE  /* a path (or "-" for stdin, CLI only): the host reads
                         it, refusing group/world-readable files, and hands
                         the bytes over through job_secret; never logged.
                         Only a local command line names one: a queued
                         payload or an emitted event doing so is refused */
};

enum rn_option_flags { RN_OPT_REQUIRED = 1 };

/* One declared option. Declare each with RN_OPTION(...), which sets
 * struct_size; arrays of options end with {0} (an entry whose name is NULL).
 * The host walks an array by the struct_size of its first element, which
 * every named element must repeat, and reads only the fields inside it. The
 * host rejects keys that are not declared.
 *
 * ABI 1.0 to 1.3 elements had no struct_size (they began with `name`); the
 * host reads those by the plugin's abi_version, so a plugin must declare the
 * ABI it was built against (RN_ABI_VERSION), never an older one. */
typedef struct rn_option_s {
  uint32_t struct_size;      /* ABI 1.4+: sizeof(rn_option_t) at build time */
  const char *name;          /* [a-z0-9_]+ */
  int type;                  /* enum rn_option_type */
  int flags;                 /* enum rn_option_flags */
  const char *default_value; /* as it would be written in a file; NULL = none */
  const char *help;          /* one line, shown by `plugins` and `--help` */
  int64_t min, max;          /* RN_OPT_INT bounds, inclusive; 0,0 = any */
  const char *choices;       /* RN_OPT_ENUM: "us|us2|eu|ca|oc" */
  /* ABI 1.3+: append below this line only. */
} rn_option_t;

/* RN_OPTION(.name = "region", .type = RN_OPT_ENUM, .choices = "us|eu") */
#define RN_OPTION(...) {.struct_size = sizeof(rn_option_t), __VA_ARGS__}

/* ---------------------------------------------------------- descriptor */

/* One named job. `run` starts it: it returns 0 and later calls
 * host->job_complete exactly once, or returns a negative error and does not.
 * `cancel` (optional) asks a started job to finish early; it still completes
 * exactly once, normally with RN_ECANCELED.
 *
 * The host owns cancellation. The ABI passes services the plugin's ctx, not
 * the job, so the host tracks which job it is calling the plugin for: a
 * request (HTTP, query, transaction, timer, work) started during run(),
 * cancel() or a callback of one of a job's requests belongs to that job;
 * one started elsewhere (create(), a plugin-level timer's callback) belongs
 * to the plugin. On timeout, drain or reload the host calls `cancel` if set,
 * else cancels the job's requests at once (one RN_ECANCELED callback each).
 * A job still running [runner] cancel_grace later is completed by the host
 * with RN_ECANCELED and its requests are cancelled; its later requests fail
 * with RN_ECANCELED and a later job_complete is ignored. The job handle
 * stays valid until every request of the job has called back. Work running
 * on a worker thread runs out; the plugin stays loaded until it returns.
 * An unload cancels every request the plugin still has out. */
typedef struct rn_job_def_s {
  uint32_t struct_size;        /* sizeof(rn_job_def_t) at build time */
  const char *name;            /* [a-z0-9_-]+, unique within the plugin */
  const char *summary;         /* one line */
  const rn_option_t *options;  /* keys of a [job] section; NULL = none */
  const rn_option_t *params;   /* run-time parameters (the payload object);
                                  NULL = the job takes none */
  int (*run)(rn_ctx_t *ctx, void *state, rn_job_t *job);
  void (*cancel)(rn_ctx_t *ctx, void *state, rn_job_t *job);
  /* Operator command: when set, `regentra-runner <command_group> <command>
   * --some-param V` runs this job with params {"some_param": "V"}. */
  const char *command;
  /* ABI 1.3+: append below this line only. */
} rn_job_def_t;

typedef struct rn_plugin_s {
  uint32_t abi_version;          /* RN_ABI_VERSION at build time */
  uint32_t struct_size;          /* sizeof(rn_plugin_t) at build time */
  const char *name;              /* [a-z0-9_-]+, unique in a host */
  const char *version;           /* the plugin's own semver */
  const char *summary;           /* one line */
  const rn_option_t *options;    /* keys of its [plugin "name"] section */
  /* Called once per load with the validated [plugin] options; sets *state.
   * A negative return refuses the load. */
  int (*create)(rn_ctx_t *ctx, const rn_config_t *config, void **state);
  /* Called once, after the last job of this load has completed and every
   * request it started has called back. */
  void (*destroy)(rn_ctx_t *ctx, void *state);
  const rn_job_def_t *const *jobs; /* NULL-terminated */
  const char *command_group;     /* CLI group for job commands; NULL = none */
  /* ABI 1.5. The device source this plugin talks to ([a-z0-9_-]+, e.g.
   * "ninjaone"); NULL = none. Every plugin naming a source shares one
   * [source "name"] section, validated once against source_options, which
   * every plugin of the source must declare identically (else the later
   * ones are refused). Its values reach create()'s config like the
   * plugin's own options; a key of source_options may not appear in a
   * [plugin] section. */
  const char *source;
  const rn_option_t *source_options; /* keys of [source "name"]; NULL = none */
  /* ABI 1.5+: append below this line only. */
} rn_plugin_t;

/* ------------------------------------------------------------- services */

typedef void (*rn_timer_cb)(rn_ctx_t *ctx, int status, void *data);
typedef void (*rn_work_fn)(void *data); /* runs on a worker thread */
typedef void (*rn_status_cb)(rn_ctx_t *ctx, int status, void *data);
/* ABI 1.6. status 0 with slot (held until slot_release), or RN_ECANCELED
 * with slot NULL. */
typedef void (*rn_slot_cb)(rn_ctx_t *ctx, int status, rn_slot_t *slot,
                           void *data);

/* HTTP. Headers are "Name: value" strings. */
typedef struct rn_http_request_s {
  uint32_t struct_size;        /* set by RN_HTTP_REQUEST_INIT */
  const char *method;          /* "GET" (default), "POST", ... */
  const char *url;             /* https://, or http:// to a loopback host */
  const char *const *headers;  /* NULL-terminated; NULL = none */
  const char *body;            /* NULL = no body */
  size_t body_len;
  uint32_t timeout_ms;         /* whole transfer; 0 = 30000 */
  size_t max_response_bytes;   /* 0 = 64 MiB */
  const char *ca_file;         /* extra trust anchor; NULL = system store */
  const char *rate_key;        /* limiter bucket (see rate_configure); NULL = none */
  /* ABI 1.3+: append below this line only. */
} rn_http_request_t;

#define RN_HTTP_REQUEST_INIT {sizeof(rn_http_request_t), "GET", NULL, NULL, NULL, 0, 0, 0, NULL, NULL}

typedef struct rn_http_response_s {
  uint32_t struct_size;
  long status;                 /* HTTP status code */
  const char *body;            /* NUL-terminated, body_len bytes before it */
  size_t body_len;
  const char *content_type;    /* NULL if absent */
  double elapsed_s;
  /* ABI 1.3+: append below this line only. */
} rn_http_response_t;

/* status: 0 when a response arrived (whatever its HTTP status), or the
 * transport error. resp is borrowed, NULL unless status is 0. */
typedef void (*rn_http_cb)(rn_ctx_t *ctx, int status,
                           const rn_http_response_t *resp, void *data);

/* One window of a token bucket: at most `limit` requests per `period_ms`.
 * Declare each with RN_RATE_WINDOW, which sets struct_size; the host walks
 * an array of them by the struct_size of its first element (every element
 * repeats it). ABI 1.0 to 1.3 windows were {limit, period_ms} without a
 * size: the host reads those by the plugin's abi_version. */
typedef struct rn_rate_window_s {
  uint32_t struct_size;        /* ABI 1.4+: sizeof(rn_rate_window_t) */
  uint32_t limit;
  uint64_t period_ms;
  /* ABI 1.3+: append below this line only. */
} rn_rate_window_t;

#define RN_RATE_WINDOW(limit, period_ms)                                     \
  {sizeof(rn_rate_window_t), (limit), (period_ms)}

typedef void (*rn_db_cb)(rn_ctx_t *ctx, int status,
                         const rn_db_result_t *result, void *data);
/* Runs on a worker thread inside BEGIN; return 0 to COMMIT, negative to
 * ROLLBACK. Only db_tx_* services may be called from it. */
typedef int (*rn_db_tx_fn)(rn_db_tx_t *tx, void *data);

/* Options for emit. */
typedef struct rn_emit_opts_s {
  uint32_t struct_size;
  const char *idempotency_key;   /* NULL = none */
  const char *concurrency_key;   /* NULL = none */
  uint32_t concurrency_limit;    /* with concurrency_key; 0 = 1 */
  int64_t run_at_ms;             /* epoch ms; 0 = now */
  int32_t priority;              /* lower runs first; 0 = default */
  uint32_t max_attempts;         /* 0 = the queue's default */
  /* ABI 1.3+: append below this line only. */
} rn_emit_opts_t;

#define RN_EMIT_OPTS_INIT {sizeof(rn_emit_opts_t), NULL, NULL, 0, 0, 0, 0}

/* ABI 1.3. How far a long job has got, for a person watching a command
 * run on a terminal. Counts are totals since the job started; a field left
 * 0 (or NULL) is not shown. */
typedef struct rn_progress_s {
  uint32_t struct_size;   /* set by RN_PROGRESS_INIT */
  const char *stage;      /* what it does now, a few words ("walking
                             devices"); NULL = nothing to say */
  uint64_t done;          /* units finished (customers, organizations) */
  uint64_t total;         /* units in all; 0 = not known yet */
  const char *units;      /* their plural noun: "customers" */
  uint64_t pages;         /* API pages walked */
  uint64_t items;         /* rows those pages held */
  const char *items_name; /* their plural noun: "devices" */
  /* ABI 1.3+: append below this line only. */
} rn_progress_t;

#define RN_PROGRESS_INIT {sizeof(rn_progress_t), NULL, 0, 0, NULL, 0, 0, NULL}

/* The table of host services, handed to the entry function. */
typedef struct rn_host_s {
  uint32_t abi_version;
  uint32_t struct_size;

  /* Logging: one line per event, prefixed by the host with plugin and job.
   * Never pass a secret, a token or a customer device identifier. */
  void (*log)(rn_ctx_t *ctx, int level, const char *fmt, ...) RN_PRINTF(3, 4);
  void (*logv)(rn_ctx_t *ctx, int level, const char *fmt, va_list ap);
  const char *(*strerror)(int err);  /* static text */
  const char *(*err_name)(int err);  /* static text, e.g. "RN_EINVAL" */

  /* Memory the host and the plugin hand each other. */
  void *(*alloc)(size_t size);
  void *(*calloc)(size_t count, size_t size);
  void *(*realloc)(void *ptr, size_t size);
  void (*free)(void *ptr);
  char *(*strdup)(const char *s);    /* new */

  /* Config accessors (values borrowed for the life of the load). An option
   * that is unset and has no default reads as NULL / 0. */
  const char *(*config_str)(const rn_config_t *config, const char *name);
  int64_t (*config_int)(const rn_config_t *config, const char *name);

  /* Jobs. */
  const rn_config_t *(*job_config)(rn_job_t *job);  /* its [job] options */
  const char *(*job_name)(rn_job_t *job);           /* borrowed: "plugin.job" */
  const char *(*job_params)(rn_job_t *job);         /* borrowed JSON object */
  /* Bytes of an RN_OPT_SECRET_FILE parameter, borrowed until job_complete;
   * the host wipes them afterwards. NULL if absent. */
  const char *(*job_secret)(rn_job_t *job, const char *param, size_t *len);
  void (*job_set_data)(rn_job_t *job, void *data);
  void *(*job_data)(rn_job_t *job);
  /* Ends the job: status 0 or a negative error; result_json (an object) and
   * summary (lines for a person) are copied; either may be NULL. */
  void (*job_complete)(rn_job_t *job, int status, const char *result_json,
                       const char *summary);
  /* Enqueue an event that becomes a job run (fan-out). Copied. */
  int (*emit)(rn_job_t *job, const char *event, const char *payload_json,
              const rn_emit_opts_t *opts);

  /* Clock: epoch milliseconds (the host may pin it in tests). */
  int64_t (*now_ms)(rn_ctx_t *ctx);

  /* Timers, thread-pool work and cancellation. *req (optional) is a handle
   * valid until the callback has run. */
  int (*timer_start)(rn_ctx_t *ctx, uint64_t timeout_ms, rn_timer_cb cb,
                     void *data, rn_req_t **req);
  int (*work_queue)(rn_ctx_t *ctx, rn_work_fn work, rn_status_cb done,
                    void *data, rn_req_t **req);
  int (*cancel)(rn_req_t *req);

  /* HTTP on the loop. The request and its strings are copied. */
  int (*http_request)(rn_ctx_t *ctx, const rn_http_request_t *request,
                      rn_http_cb cb, void *data, rn_req_t **req);
  /* Value of a response header, case-insensitive name; borrowed like resp. */
  const char *(*http_header)(const rn_http_response_t *resp, const char *name);
  /* Declare the windows of a limiter bucket (copied); requests naming it
   * wait in FIFO order for a token instead of failing. Each window is an
   * RN_RATE_WINDOW; a window without its struct_size is RN_EINVAL. */
  int (*rate_configure)(rn_ctx_t *ctx, const char *key,
                        const rn_rate_window_t *windows, size_t count);

  /* Database: parameterized statements only ($1, $2, ...; params copied;
   * NULL param = SQL NULL). The result is borrowed during the callback. */
  int (*db_query)(rn_ctx_t *ctx, const char *sql, int nparams,
                  const char *const *params, rn_db_cb cb, void *data,
                  rn_req_t **req);
  int (*db_transaction)(rn_ctx_t *ctx, rn_db_tx_fn fn, rn_status_cb done,
                        void *data, rn_req_t **req);
  /* Inside a transaction, on the worker thread. *result (optional) is new:
   * release with db_result_free. */
  int (*db_tx_exec)(rn_db_tx_t *tx, const char *sql, int nparams,
                    const char *const *params, rn_db_result_t **result);
  /* The last database error text of the transaction (borrowed). */
  const char *(*db_tx_error)(rn_db_tx_t *tx);
  int (*db_rows)(const rn_db_result_t *result);
  int (*db_cols)(const rn_db_result_t *result);
  /* Text value, borrowed like result; NULL for SQL NULL. */
  const char *(*db_value)(const rn_db_result_t *result, int row, int col);
  int64_t (*db_affected)(const rn_db_result_t *result);
  void (*db_result_free)(rn_db_result_t *result);

  /* Secrets sealed under the host's master key. seal: *sealed is new text
   * (key version, nonce and ciphertext). open: *plain is new, NUL-terminated;
   * release it with secret_free, which wipes it. */
  int (*secret_seal)(rn_ctx_t *ctx, const char *plain, size_t len,
                     char **sealed);
  int (*secret_open)(rn_ctx_t *ctx, const char *sealed, char **plain,
                     size_t *len);
  void (*secret_free)(char *plain, size_t len);

  /* ABI 1.1. Pauses every request naming the limiter bucket `key` (copied)
   * for pause_ms, as a 429 with Retry-After does: for throttle signals the
   * host cannot see itself, such as a throttle page served with status 200.
   * The longer of this and a pause in force wins; values above an hour are
   * clamped. Counts as a throttle in the bucket's figures. */
  int (*rate_pause)(rn_ctx_t *ctx, const char *key, uint64_t pause_ms);
  /* ABI 1.2. A process-wide cache of short-lived secrets such as OAuth
   * tokens, so every plugin and job of the process shares one per
   * credential, fetched by one of them at a time. key: the caller's
   * (never the secret itself; e.g. a hash of credential and client id).
   *   token_get: 0 with *value (new, release with secret_free) usable until
   *     *until_ms; RN_ENOENT: none, and the caller now holds the claim to
   *     fetch one and must end it with token_put; RN_EBUSY: another caller
   *     holds the claim (ask again shortly). A claim lapses after 2 minutes.
   *   token_put: stores value (copied) until until_ms and ends the claim;
   *     value NULL only ends the claim (the fetch failed).
   *   token_drop: forgets the stored value if it equals value (a 401 on a
   *     token someone else may already have replaced); value NULL: forgets
   *     it whatever it is.
   * Stored values are wiped when replaced, dropped or freed. Loop thread. */
  int (*token_get)(rn_ctx_t *ctx, const char *key, char **value, size_t *len,
                   int64_t *until_ms);
  int (*token_put)(rn_ctx_t *ctx, const char *key, const char *value,
                   size_t len, int64_t until_ms);
  void (*token_drop)(rn_ctx_t *ctx, const char *key, const char *value,
                     size_t len);
  /* ABI 1.3. Reports how far job has got (progress and its strings are
   * copied). Callable from any thread, a page callback on a worker
   * included; cheap enough for every page. The host shows it, with the
   * requests it has sent for the process, only to a person running a
   * command on a terminal, at most a few times a second; elsewhere (piped
   * output, --json, --quiet, serve) it is ignored. Never pass a secret or
   * a customer device identifier. */
  void (*progress)(rn_job_t *job, const rn_progress_t *progress);
  /* ABI 1.4: no new slots; rn_option_t and rn_rate_window_t elements start
   * with struct_size. ABI 1.5: no new slots; rn_plugin_t gains source and
   * source_options. */
  /* ABI 1.6. Process-wide page slots, so that the pages every plugin image
   * holds at once (request sent, answer buffered, decoding, delivering) are
   * bounded per process ([runner] max_pages_held) and per key ([runner]
   * max_pages_per_key, and key_limit when smaller; 0 = the host's), not per
   * image. key (copied): the caller's, e.g. its rate key (one credential).
   * slot_acquire calls cb once: with a slot when one is free, in FIFO order
   * among waiters that fit, or with RN_ECANCELED (host->cancel on *req, the
   * job's cancellation, an unload). Never calls back from inside the call.
   * slot_release gives the slot back (NULL: nothing); a slot still held
   * when its job ends is given back by the host, and releasing it later is
   * harmless. Loop thread. */
  int (*slot_acquire)(rn_ctx_t *ctx, const char *key, uint32_t key_limit,
                      rn_slot_cb cb, void *data, rn_req_t **req);
  void (*slot_release)(rn_slot_t *slot);
  /* ABI 1.6+: append below this line only. */
} rn_host_t;

/* True when `host` is new enough to have slot `fn` and provides it. */
#define RN_HOST_HAS(host, fn)                                                \
  (offsetof(rn_host_t, fn) + sizeof((host)->fn) <= (host)->struct_size &&    \
   (host)->fn != NULL)

/* The one symbol a plugin exports. */
typedef const rn_plugin_t *(*rn_plugin_entry_fn)(const rn_host_t *host);
RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *host);

#ifdef __cplusplus
}
#endif
#endif /* REGENTRA_PLUGIN_H */
