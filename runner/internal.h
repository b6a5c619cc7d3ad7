/*
 * internal.h - what the host's modules share. Nothing here crosses the
 * plugin ABI: plugins see only sdk/include/regentra/plugin.h.
 */
#ifndef RN_INTERNAL_H
#define RN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "regentra/plugin.h"

#define RN_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define rn__container_of(ptr, type, member)                                  \
  ((type *)((char *)(ptr)-offsetof(type, member)))
#define RN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------ intrusive list */

typedef struct rn__list_s {
  struct rn__list_s *prev, *next;
} rn__list_t;

static inline void rn__list_init(rn__list_t *l) { l->prev = l->next = l; }
static inline bool rn__list_empty(const rn__list_t *l) { return l->next == l; }
static inline void rn__list_push(rn__list_t *head, rn__list_t *n) {
  n->prev = head->prev;
  n->next = head;
  head->prev->next = n;
  head->prev = n;
}
static inline void rn__list_remove(rn__list_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  rn__list_init(n);
}

/* ---------------------------------------------------------- errors.c */

const char *rn__strerror(int err);
const char *rn__err_name(int err);
/* Maps a libuv error (negated errno) into ours; unknown ones become EIO. */
int rn__from_uv(int uv_err);

/* ------------------------------------------------------------- log.c */

void rn__log_set_level(int level);
int rn__log_level(void);
int rn__log_parse_level(const char *text); /* -1 if unknown */
/* prefix may be NULL ("runner"). One line per call, to stderr. */
void rn__log(int level, const char *prefix, const char *fmt, ...)
    RN_PRINTF_LIKE(3, 4);
void rn__logv(int level, const char *prefix, const char *fmt, va_list ap);

/* ------------------------------------------------------------ cron.c */

/* A parsed 5-field cron expression (minute hour day-of-month month
 * day-of-week), evaluated in UTC. */
typedef struct rn__cron_s {
  uint64_t minutes; /* bit n = minute n */
  uint32_t hours;
  uint32_t mdays;   /* bit n = day n, 1..31 */
  uint16_t months;  /* bit n = month n, 1..12 */
  uint8_t wdays;    /* bit n = weekday n, 0 = Sunday (7 accepted as 0) */
  bool mday_any;    /* day-of-month field was "*" */
  bool wday_any;    /* day-of-week field was "*" */
} rn__cron_t;

/* 0, or RN_EINVAL with a one-line reason in err. */
int rn__cron_parse(const char *expr, rn__cron_t *out, char *err, size_t errlen);
/* The first matching time strictly after `after` (epoch seconds, UTC), or -1
 * when none exists within five years (e.g. "0 0 31 2 *"). */
int64_t rn__cron_next(const rn__cron_t *cron, int64_t after);

/* How far back the scheduler catches up ticks it missed in a stall. */
#define RN__SCHED_CATCH_UP_S (60 * 60)
/* False when no date of any year matches (e.g. "0 0 30 2 *", "0 0 31 4 *"). */
bool rn__cron_can_fire(const rn__cron_t *cron);

/* ---------------------------------------------------------- config.c */

typedef struct rn__kv_s {
  char *key;
  char *value;
  int line;
} rn__kv_t;

/* A hash from names to positions in an array (open addressing, linear
 * probing); the names are borrowed from the array's entries. */
typedef struct rn__name_slot_s {
  const char *name; /* NULL = empty */
  uint32_t hash;
  uint32_t pos;
} rn__name_slot_t;

typedef struct rn__name_index_s {
  rn__name_slot_t *slots; /* NULL until the first name */
  size_t mask;            /* slot count - 1 */
  size_t count;
} rn__name_index_t;

typedef struct rn__kvs_s {
  rn__kv_t *items;
  size_t count, cap;
  rn__name_index_t index; /* by key, once there are more than a few */
} rn__kvs_t;

const rn__kv_t *rn__kvs_find(const rn__kvs_t *kvs, const char *key);

/* A [plugin "name"] section; also a [source "name"] section, whose
 * `enabled` is unused (every key goes into options). */
typedef struct rn__plugin_conf_s {
  char *name;
  char *file;
  int line;
  bool enabled;
  rn__kvs_t options; /* keys other than `enabled` */
  /* [source] only, set while a generation loads: a plugin declared this
   * source; and 1 once its keys proved valid, -1 once they were reported
   * invalid (so each error is reported once, not once per plugin). */
  bool declared;
  int checked;
} rn__plugin_conf_t;

/* A [job "name"] section. */
typedef struct rn__job_conf_s {
  char *name;   /* section name, unique across files */
  char *plugin; /* plugin name */
  char *job;    /* job of that plugin */
  char *schedule; /* NULL = on demand only */
  rn__cron_t cron;
  bool enabled;
  uint64_t timeout_ms; /* 0 = none */
  uint32_t max_attempts;
  char *file;
  int line;
  rn__kvs_t options; /* plugin job options, validated against its schema */
  /* queue: ticks missed while no runner was up */
  bool missed_runs_skip; /* missed_runs = skip; default once */
} rn__job_conf_t;

typedef struct rn__config_s {
  char *path;     /* runner.conf */
  char *confd;    /* conf.d directory */
  /* [runner] */
  char *plugin_dir;
  char *state_dir;      /* private copies of plugins live here */
  char *master_key_file;
  int log_level;
  uint64_t drain_timeout_ms;
  /* How long a cancelled job may take to end before the host ends it. */
  uint64_t cancel_grace_ms;
  uint32_t workers;     /* jobs running at once in this process */
  uint32_t max_pages_held;    /* page slots in this process; 0 = default */
  uint32_t max_pages_per_key; /* page slots per key (credential); 0 = default */
  char *admin_listen;   /* "address:port" of the admin endpoint; NULL = off */
  /* [database] */
  char *database_url;   /* REGENTRA_DATABASE_URL overrides */
  char *migrations_dir;
  /* sections */
  rn__plugin_conf_t *plugins;
  size_t nplugins;
  rn__job_conf_t *jobs;
  size_t njobs;
  rn__plugin_conf_t *sources; /* [source "name"] sections */
  size_t nsources, sources_cap;
  rn__name_index_t source_index;
  /* "file:line: message" lines, in the order found; bytes that are not
   * printable read \xNN */
  char **errors;
  size_t nerrors;
  /* by name, into plugins[] and jobs[] */
  rn__name_index_t plugin_index, job_index;
  size_t plugins_cap, jobs_cap, errors_cap;
  /* [database]: the pool and the queue (defaults in config.c) */
  uint32_t db_pool_size;
  uint64_t queue_lease_ms;
  uint64_t queue_poll_ms;
  uint64_t queue_retention_ms;
  uint64_t queue_retry_base_ms;
  uint32_t queue_max_payload;
  uint32_t queue_max_attempts; /* when a job section sets none */
} rn__config_t;

/* Reads runner.conf and every conf.d/NN-name.conf in sorted order. Returns the
 * config (new) even when it holds errors; NULL only when out of memory.
 * A job in a file with errors is dropped; runner.conf errors are fatal
 * for the caller to decide. */
rn__config_t *rn__config_load(const char *path, const char *confd);
void rn__config_free(rn__config_t *config);
void rn__config_error(rn__config_t *config, const char *file, int line,
                      const char *fmt, ...) RN_PRINTF_LIKE(4, 5);
const rn__plugin_conf_t *rn__config_plugin(const rn__config_t *config,
                                           const char *name);
const rn__plugin_conf_t *rn__config_source(const rn__config_t *config,
                                           const char *name);
/* Checks `kvs` against `schema` and fills `out` with the values (defaults
 * applied). Errors go to config with file:line; returns their count. */
typedef struct rn__opt_value_s {
  const rn_option_t *option;
  char *text; /* NULL = unset */
  int64_t number;
} rn__opt_value_t;

struct rn_config_s {
  rn__opt_value_t *values;
  size_t count;
};

int rn__options_check(rn__config_t *config, const char *file, int line,
                      const rn_option_t *schema, const rn__kvs_t *kvs,
                      rn_config_t *out);
void rn__options_free(rn_config_t *values);
/* Parses one value of an option; 0 or RN_EINVAL with the reason in err. */
int rn__option_parse(const rn_option_t *option, const char *text,
                     int64_t *number, char *err, size_t errlen);
int rn__parse_duration_ms(const char *text, uint64_t *ms);
int rn__parse_bool(const char *text, bool *value);

/* ---------------------------------------------------------- loader.c */

typedef struct rn__runner_s rn__runner_t;
typedef struct rn__generation_s rn__generation_t;
typedef struct rn__scheduler_s rn__scheduler_t;

/* One plugin loaded into one generation: its image, descriptor, instance. */
typedef struct rn__plugin_s rn__plugin_t;

struct rn_ctx_s {
  rn__plugin_t *plugin;
  rn__runner_t *runner;
  rn__list_t reqs; /* live rn_req_t */
};

/* A job's schemas read into this host's layout (abi.c). */
typedef struct rn__job_schema_s {
  const rn_job_def_t *def;
  rn_option_t *options, *params; /* NULL = none */
} rn__job_schema_t;

struct rn__plugin_s {
  rn__generation_t *gen;
  char *name;
  char *source_path; /* as installed */
  void *image;       /* dlopen handle */
  const rn_plugin_t *desc;
  rn_config_t config;
  void *state;
  bool created;
  rn_ctx_t ctx;
  unsigned live_jobs;
  /* desc->options and every job's options and params, read once at load
   * by their declared element size; read them through rn__schema_of. */
  rn_option_t *options;
  /* ABI 1.5: desc->source and desc->source_options when inside its
   * struct_size; NULL = the plugin names no source. */
  const char *source;
  rn_option_t *source_options;
  rn__job_schema_t *job_schemas; /* one per desc->jobs[i], same order */
  size_t njobs;
};

/* The host's service table (host.c). */
const rn_host_t *rn__host(void);

/* Opens the file once (no symlinks) and checks that descriptor and its
 * directory (not writable by group or others, owned by root or by us) and
 * state_dir (ours, created 0700 if missing); copies exactly the bytes of
 * that descriptor to a unique private file under state_dir, checks the
 * copy's ELF headers (a torn or truncated file is refused, never mapped),
 * dlopens it, removes it, and checks the descriptor. On failure returns a
 * negative error and writes a sentence naming the file and the reason to
 * err; state_dir is left as it was. */
int rn__plugin_load(const char *path, const char *state_dir,
                    rn__plugin_t *plugin, char *err, size_t errlen);
void rn__plugin_unload(rn__plugin_t *plugin);
const rn_job_def_t *rn__plugin_job(const rn__plugin_t *plugin,
                                   const char *job_name);
/* ---- abi.c: arrays a plugin hands over, in this host's layout */

/* Reads an option array of a plugin built for abi_version into *out, a new
 * array (free()) in this host's layout ending with a zero element; NULL
 * when array is NULL or empty. Strings stay the plugin's. `what` names the
 * array in err. RN_EABI when the array is malformed. */
int rn__abi_read_options(uint32_t abi_version, const rn_option_t *array,
                         rn_option_t **out, const char *what, char *err,
                         size_t errlen);
/* Reads count rate windows of a plugin built for abi_version into out
 * (count elements, this host's layout). RN_EINVAL when malformed. */
int rn__abi_read_rate_windows(uint32_t abi_version, const rn_rate_window_t *in,
                              size_t count, rn_rate_window_t *out, char *err,
                              size_t errlen);
/* Reads every schema of plugin->desc into the plugin (at load); err names
 * path and the array. rn__plugin_free_schemas undoes it. */
int rn__plugin_read_schemas(rn__plugin_t *plugin, const char *path, char *err,
                            size_t errlen);
void rn__plugin_free_schemas(rn__plugin_t *plugin);

typedef enum rn__schema_kind_e {
  RN__SCHEMA_PLUGIN,  /* its [plugin] section; def is ignored */
  RN__SCHEMA_OPTIONS, /* a [job] section of def */
  RN__SCHEMA_PARAMS,  /* the run-time parameters of def */
  RN__SCHEMA_SOURCE   /* its [source] section; def is ignored */
} rn__schema_kind_t;
/* The one way the host reads a plugin's options: this host's layout,
 * terminated by an entry whose name is NULL; NULL = none. */
const rn_option_t *rn__schema_of(const rn__plugin_t *plugin,
                                 const rn_job_def_t *def,
                                 rn__schema_kind_t kind);

/* Reads a field of a descriptor only when it lies within struct_size. */
#define RN__DESC_HAS(desc, type, field)                                      \
  (offsetof(type, field) + sizeof(((type *)0)->field) <= (desc)->struct_size)

/* ------------------------------------------------------ generation.c */

/* A configured job as this generation validated it. */
typedef struct rn__gen_job_s {
  const rn__job_conf_t *conf;
  rn__plugin_t *plugin;
  const rn_job_def_t *def;
  rn_config_t options;
  bool valid; /* false: reported, never run */
} rn__gen_job_t;

/* Everything one reload builds: config, plugins and their instances. */
struct rn__generation_s {
  rn__runner_t *runner;
  uint64_t id;
  rn__config_t *config;
  rn__plugin_t *plugins;
  size_t nplugins;
  rn__gen_job_t *jobs;
  size_t njobs;
  unsigned refuse_count; /* plugins refused while building */
  unsigned refs;     /* live jobs + live requests + 1 while current */
  uv_timer_t grace;  /* after a reload: when its last jobs are cancelled */
  bool grace_armed;
  bool retired;      /* no longer current: hands out no new work */
};

/* Builds a whole generation from config: loads every plugin of plugin_dir,
 * validates plugin and job options. Plugins that fail are refused with a
 * logged reason; the generation still loads. */
int rn__generation_build(rn__runner_t *runner, rn__config_t *config,
                         rn__generation_t **out);
rn__plugin_t *rn__generation_plugin(rn__generation_t *gen, const char *name);
rn__gen_job_t *rn__generation_job(rn__generation_t *gen, const char *name);
void rn__generation_ref(rn__generation_t *gen);
/* Drops a reference; the last one destroys instances and unloads images. */
void rn__generation_unref(rn__generation_t *gen);
/* Drops the reference a generation holds while it is the current one; the
 * caller has already stopped handing it new work. */
void rn__generation_retire(rn__generation_t *gen);
/* After a reload: jobs of gen still running after timeout_ms are cancelled,
 * so an old image never lingers for ever. Call before retiring it. */
void rn__generation_drain(rn__generation_t *gen, uint64_t timeout_ms);
/* A job of gen has ended; once a retired generation has none left, the
 * requests its plugins still hold (plugin-level timers, late ones) are
 * cancelled so that it can unload. */
void rn__generation_job_ended(rn__generation_t *gen);
/* Cancels every request gen's plugins still have out; each calls back
 * once. For a generation with no live job (retire, end of a drain). */
void rn__generation_cancel_leftovers(rn__generation_t *gen);

/* ------------------------------------------------------------- job.c */

typedef void (*rn__job_done_cb)(rn_job_t *job, int status,
                                const char *result_json, const char *summary,
                                void *data);

typedef struct rn__secret_param_s {
  char *name;
  char *bytes;
  size_t len;
} rn__secret_param_t;

struct rn_job_s {
  rn__plugin_t *plugin;
  const rn_job_def_t *def;
  const rn__job_conf_t *conf; /* NULL for an ad-hoc run */
  const rn_config_t *options; /* validated [job] options; borrowed */
  char *qualified_name;       /* "plugin.job" */
  char *params_json;
  rn__secret_param_t *secrets;
  size_t nsecrets;
  void *plugin_data;
  int64_t queue_id;           /* queue row, 0 when not from the queue */
  uint64_t started_ms;
  /* One timer, one use at a time: the timeout while running, the grace
   * period once cancelled, the delivery once completed. */
  uv_timer_t timeout;
  bool timeout_armed;
  bool completed;
  bool cancel_requested;
  char db_sqlstate[6];        /* of the database error it completed on */
  bool host_ended;            /* completed by the host at the grace deadline */
  rn__job_done_cb done;
  void *done_data;
  rn__list_t link;            /* in runner->jobs */
  /* Requests started on behalf of this run (rn_req_t.job_link). Each holds
   * a reference, so the object outlives late callbacks of a run the host
   * ended; the host holds one more until its timer has closed. */
  rn__list_t reqs;
  unsigned refs;
};

typedef struct rn__job_start_s {
  rn__plugin_t *plugin;
  const rn_job_def_t *def;
  const rn__job_conf_t *conf; /* optional */
  const rn_config_t *options; /* optional, borrowed from the generation */
  const char *params_json;    /* optional, copied; must be an object */
  int64_t queue_id;
  rn__job_done_cb done;
  void *done_data;
} rn__job_start_t;

/* Checks a JSON object of job parameters against def's declared params:
 * no unknown name, each value a string, whole number or boolean that parses
 * as its declared type, every required one present. job_name names the job
 * in the sentence written to err. queued: the parameters come from the
 * queue rather than a local operator, so a secret-file parameter is refused
 * (a required one too: such a job cannot run from the queue). On success,
 * when typed is not NULL, *typed is a new jansson object of typed values
 * with defaults filled in (secret-file values are their paths). The one
 * check used at enqueue, at emit and when a claimed run starts. */
struct json_t;
int rn__job_params_check(const rn__plugin_t *plugin, const rn_job_def_t *def,
                         const char *job_name, const char *params_json,
                         bool queued, struct json_t **typed, char *err,
                         size_t errlen);
/* Validates params against the job's schema (reading secret files), then
 * calls run(). Returns 0 and calls done exactly once, or a negative error
 * with the reason in err and never calls done. */
int rn__job_start(const rn__job_start_t *start, char *err, size_t errlen);
/* Timeout, drain and reload: the plugin's cancel hook if it has one, else
 * the host cancels the run's requests at once; either way the host ends
 * the run with RN_ECANCELED if it is still going cancel_grace later. */
void rn__job_cancel(rn_job_t *job);
/* Makes job the one on whose behalf the plugin is being called (NULL for
 * none); returns the previous one, for rn__job_leave. */
rn_job_t *rn__job_enter(rn__runner_t *runner, rn_job_t *job);
void rn__job_leave(rn__runner_t *runner, rn_job_t *previous);
void rn__job_attach(rn_job_t *job, rn_req_t *req);
void rn__job_detach(rn_req_t *req);

/* ------------------------------------------------------------- req.c */

/* The common head of every cancellable request a plugin starts. */
struct rn_req_s {
  rn_ctx_t *ctx;
  rn__list_t link;
  void (*cancel)(rn_req_t *req); /* must lead to exactly one callback */
  /* The run that was current when the request started (NULL: a request of
   * the plugin itself, e.g. from create() or a plugin-level timer). Its
   * callback runs with that run current again. */
  rn_job_t *job;
  rn__list_t job_link;
  rn__list_t pool_link; /* in runner->pool_reqs while on the thread pool */
  rn_job_t *outer_job; /* current before rn__req_enter, restored after */
  bool entered;
};

/* 0, or RN_ECANCELED when the run current on ctx was already ended by the
 * host: services check this before starting anything, so a plugin that
 * retries cannot keep an ended run alive. */
int rn__req_admit(rn_ctx_t *ctx);
void rn__req_start(rn_ctx_t *ctx, rn_req_t *req, void (*cancel)(rn_req_t *));
/* The request is work queued to the thread pool: nothing can stop it once
 * a worker runs it, so a stopping runner waits for it only so long. */
void rn__req_on_pool(rn_req_t *req);
/* Just before the request's callback: makes its run current. */
void rn__req_enter(rn_req_t *req);
/* After the request's callback has run. */
void rn__req_finish(rn_req_t *req);
void rn__ctx_cancel_all(rn_ctx_t *ctx);

/* ---------------------------------------------------------- secrets.c */

typedef struct rn__secrets_s rn__secrets_t;
/* Reads a file that must not be readable by group or others; *data is new
 * and NUL-terminated, release with rn__secret_wipe. */
int rn__secret_read_file(const char *path, char **data, size_t *len,
                         char *err, size_t errlen);
/* Zeroes len bytes, then frees. */
void rn__secret_wipe(char *data, size_t len);
int rn__secrets_open(const char *key_file, rn__secrets_t **out, char *err,
                     size_t errlen);
void rn__secrets_close(rn__secrets_t *secrets);
int rn__secret_seal(const rn__secrets_t *secrets, const char *plain,
                    size_t len, char **sealed);
int rn__secret_open(const rn__secrets_t *secrets, const char *sealed,
                    char **plain, size_t *len);
unsigned rn__secrets_version(const rn__secrets_t *secrets);

/* ------------------------------------------------------------- host.c */

/* Job services implemented in job.c. */
void rn__host_job_complete(rn_job_t *job, int status, const char *result_json,
                           const char *summary);
const char *rn__host_job_secret(rn_job_t *job, const char *param, size_t *len);
/* Modules that provide services fill their slots of the table. */
void rn__http_fill_host(rn_host_t *host);
void rn__db_fill_host(rn_host_t *host);

/* ------------------------------------------------------------ runner.c */

struct rn__runner_s {
  uv_loop_t *loop;
  char *config_path;
  char *confd;
  rn__generation_t *gen; /* current */
  uint64_t next_gen_id;
  rn__list_t jobs;       /* running rn_job_t */
  rn_job_t *current_job; /* the run the plugin is being called for */
  unsigned running_jobs;
  /* The clock: real time, or (for tests) a start time and a speed-up read
   * from REGENTRA_CLOCK_START_MS and REGENTRA_CLOCK_SCALE. */
  int64_t clock_fake_start_ms; /* 0 = the real clock */
  int64_t clock_real_start_ms;
  double clock_scale;
  /* REGENTRA_CLOCK_SCALE_BUDGET=1: request budgets' windows shrink by the
   * speed-up, so a minute of the sped-up clock holds a minute's budget. */
  bool clock_scales_budget;
  /* How a due cron tick becomes a run: in-process here, the queue later. */
  int (*dispatch_tick)(rn__runner_t *runner, rn__gen_job_t *job,
                       int64_t tick_s);
  /* Where emitted events go: the in-process scheduler, or the queue. */
  int (*emit)(rn__runner_t *runner, const char *event, const char *payload,
              const rn_emit_opts_t *opts, char *err, size_t errlen);
  bool stopping;
  bool quiet; /* operator commands: errors only */
  /* services owned by their modules; NULL until started */
  rn__scheduler_t *scheduler;
  bool reload_pending;
  bool reloading;
  uv_signal_t sighup, sigterm, sigint;
  uv_timer_t reload_timer;
  uv_timer_t drain_timer;
  uint64_t drain_deadline; /* loop time */
  bool drain_cancelled;
  rn__list_t pool_reqs;   /* rn_req_t queued or running on the thread pool */
  uv_timer_t exit_timer;  /* stopped: waits for pool_reqs, so long */
  uint64_t exit_deadline; /* loop time */
  int exit_code;
  struct rn__http_s *http;
  struct rn__db_s *db;
  /* The SQLSTATE of the database error a callback is being told about right
   * now ("" otherwise), so a job completed from it with RN_EDB keeps it. */
  char db_sqlstate[6];
  rn__secrets_t *secrets;
  struct rn__queue_s *queue; /* the durable queue, when serving with a db */
  struct rn__admin_s *admin; /* /healthz and /metrics, when configured */
  struct rn__tokens_s *tokens; /* host token cache (host.c); NULL = empty */
  struct rn__slots_s *slots;   /* page slots (slots.c); NULL = none yet */
};

int64_t rn__now_ms(const rn__runner_t *runner);
int64_t rn__real_now_ms(void);
/* Real milliseconds until the runner's clock reads `when_ms`. */
uint64_t rn__real_delay_ms(const rn__runner_t *runner, int64_t when_ms);

/* Process-wide malloc settings that bound memory (arenas); call first thing
 * in main, before any thread starts. */
#define RN__MALLOC_ARENAS 2
#define RN__MALLOC_MMAP_THRESHOLD (256 * 1024)
#define RN__MALLOC_TRIM_THRESHOLD (1024 * 1024)
void rn__malloc_tune(void);
int rn__runner_init(rn__runner_t *runner, uv_loop_t *loop,
                    const char *config_path, const char *confd);
/* Loads config and plugins into a first generation. Returns the number of
 * errors found (logged); negative when nothing could be loaded. */
int rn__runner_load(rn__runner_t *runner);
/* Serves until SIGTERM/SIGINT: cron, reload on SIGHUP, graceful drain. */
int rn__runner_serve(rn__runner_t *runner);
/* Releases everything; the loop is then closable. */
void rn__runner_close(rn__runner_t *runner);
/* Wipes and frees the host token cache (host.c). */
void rn__tokens_close(rn__runner_t *runner);

/* ----------------------------------------------------------- slots.c */

/* Defaults of [runner] max_pages_held and max_pages_per_key. */
#define RN__MAX_PAGES_HELD 4u
#define RN__MAX_PAGES_PER_KEY 4u

typedef struct rn__slots_s rn__slots_t;
void rn__slots_fill_host(rn_host_t *host);
/* Gives back the slots job still holds (at its end). */
void rn__slots_job_ended(rn__runner_t *runner, rn_job_t *job);
/* Frees the slot handles of a plugin being unloaded. */
void rn__slots_ctx_gone(rn_ctx_t *ctx);
/* Slots held now; *waiting (optional): acquires waiting for one. */
unsigned rn__slots_held(const rn__runner_t *runner, unsigned *waiting);
void rn__slots_close(rn__runner_t *runner);

/* ------------------------------------------------------------ http.c */

/* The HTTP engine (http.h) starts with the first request. Close cancels
 * what is in flight (each callback runs once, with RN_ECANCELED) and closes
 * its handles; the loop must then run for their close callbacks. */
void rn__http_close(rn__runner_t *runner);

/* --------------------------------------------------------- scheduler.c */

int rn__scheduler_start(rn__runner_t *runner);
void rn__scheduler_stop(rn__runner_t *runner);
/* Runs one configured job now, in this process; queue_id is the queue row
 * it was claimed from, 0 when not from the queue. */
int rn__run_in_process(rn__runner_t *runner, rn__gen_job_t *job,
                       const char *params_json, int64_t queue_id,
                       rn__job_done_cb done, void *data, char *err,
                       size_t errlen);

/* ------------------------------------------- queue.c, migrate.c (queue) */

/* Serving with a database: cron ticks, emits and runs go through the
 * durable queue. Starts connecting at once; claims once the db is up. */
int rn__queue_start(rn__runner_t *runner);
/* SIGTERM: stop claiming; runs still going finish (or are cancelled at the
 * drain deadline) and their rows are written back or released. */
void rn__queue_stop(rn__runner_t *runner);
/* True when no claimed run remains unwritten (or no queue at all). */
bool rn__queue_idle(const rn__runner_t *runner);
/* Closes the queue's handles; leases still held expire on their own. */
void rn__queue_close(rn__runner_t *runner);
/* This process's identity in lease_owner and finished_by (host:pid:nonce;
 * borrowed), or NULL without a queue. */
const char *rn__queue_owner(const rn__runner_t *runner);
/* host->emit for a run claimed from the queue: buffered on the run and
 * inserted in the transaction that records its completion. */
int rn__queue_job_emit(rn_job_t *job, const char *event, const char *payload,
                       const rn_emit_opts_t *opts);
/* Checks an event for enqueue: a known job name, a JSON object payload
 * within the size cap whose parameters the job declares, with the types
 * and required ones it declares, and no secret file (rn__job_params_check,
 * queued). NULL or "" means {}. 0, or a negative error with a sentence in
 * err. */
int rn__queue_check_event(rn__generation_t *gen, const char *event,
                          const char *payload, char *err, size_t errlen);

/* Applies the NNNN_*.sql files of the ':'-separated dirs in numeric order,
 * each in its own transaction, under an advisory lock; refuses when an
 * applied file has changed. conn is a libpq PGconn. */
int rn__migrate(void *conn, const char *dirs, unsigned *applied,
                unsigned *skipped, char *err, size_t errlen);

#endif
