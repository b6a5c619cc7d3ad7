/* qprobe - a plugin for queue tests. Its "record" job writes each run into
 * the table qprobe_run through the host's database service (the test
 * creates the table), so tests can count runs and check their overlap:
 *
 *   CREATE TABLE qprobe_run (id bigserial PRIMARY KEY, n int, key text,
 *     pid int, started_at timestamptz, finished_at timestamptz);
 *
 * Parameters: n, key, sleep_ms (hold the run open), fail_until (fail while
 * fewer than this many runs of n have been recorded), emit (emit that many
 * qprobe.record events, n = n * 1000 + i), fail_after_emit, raise (a
 * SQLSTATE: while fewer than fail_until runs of n are recorded, or always
 * when fail_until is 0, a statement raises it and the run completes with the
 * database error the host reports). "noop" completes
 * at once, for the benchmark. "secret" takes a secret file. */
#include <regentra/plugin.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const rn_host_t *host;

static const rn_option_t record_params[] = {
    RN_OPTION(.name = "n", .type = RN_OPT_INT, .default_value = "0"),
    RN_OPTION(.name = "key", .type = RN_OPT_STRING),
    RN_OPTION(.name = "sleep_ms", .type = RN_OPT_INT, .default_value = "0"),
    RN_OPTION(.name = "fail_until", .type = RN_OPT_INT, .default_value = "0"),
    RN_OPTION(.name = "emit", .type = RN_OPT_INT, .default_value = "0"),
    RN_OPTION(.name = "fail_after_emit", .type = RN_OPT_BOOL,
              .default_value = "false"),
    RN_OPTION(.name = "raise", .type = RN_OPT_STRING),
    {0},
};

/* The host hands parameters over as compact JSON with typed values. */
static long long param_int(const char *json, const char *key) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *p = strstr(json, pattern);
  if (!p)
    return 0;
  p += strlen(pattern);
  if (strncmp(p, "true", 4) == 0)
    return 1;
  return strtoll(p, NULL, 10);
}

static void param_str(const char *json, const char *key, char *out,
                      size_t len) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  const char *p = strstr(json, pattern);
  out[0] = '\0';
  if (!p)
    return;
  p += strlen(pattern);
  size_t n = 0;
  while (p[n] && p[n] != '"' && n + 1 < len)
    n++;
  memcpy(out, p, n);
  out[n] = '\0';
}

typedef struct run_s {
  rn_job_t *job;
  long long n, sleep_ms, fail_until, emit;
  bool fail_after_emit;
  long long attempt; /* runs of n recorded before this one, plus one */
  char row_id[32];
  char raise[8];
} run_t;

static void finish(rn_ctx_t *ctx, run_t *run) {
  int status = 0;
  char summary[128];
  for (long long i = 0; i < run->emit; i++) {
    char payload[96];
    snprintf(payload, sizeof payload, "{\"n\":%lld}", run->n * 1000 + i);
    int rc = host->emit(run->job, "qprobe.record", payload, NULL);
    if (rc < 0)
      status = rc;
  }
  if (run->fail_after_emit || run->attempt < run->fail_until)
    status = RN_EUPSTREAM;
  snprintf(summary, sizeof summary, "qprobe n=%lld attempt %lld %s", run->n,
           run->attempt, status ? "failed" : "ok");
  host->log(ctx, RN_LOG_INFO, "%s", summary);
  host->job_complete(run->job, status, "{\"ok\":true}", summary);
  host->free(run);
}

static void finished_recorded(rn_ctx_t *ctx, int status,
                              const rn_db_result_t *result, void *data) {
  run_t *run = data;
  (void)result;
  if (status < 0) {
    host->job_complete(run->job, status, NULL, "recording the end failed");
    host->free(run);
    return;
  }
  finish(ctx, run);
}

static void slept(rn_ctx_t *ctx, int status, void *data) {
  run_t *run = data;
  if (status < 0) {
    host->log(ctx, RN_LOG_INFO, "qprobe n=%lld cancelled", run->n);
    host->job_complete(run->job, status, NULL, "cancelled");
    host->free(run);
    return;
  }
  const char *params[] = {run->row_id};
  int rc = host->db_query(ctx,
                          "UPDATE qprobe_run SET finished_at = "
                          "clock_timestamp() WHERE id = $1::bigint",
                          1, params, finished_recorded, run, NULL);
  if (rc < 0) {
    host->job_complete(run->job, rc, NULL, "recording the end failed");
    host->free(run);
  }
}

static void raised(rn_ctx_t *ctx, int status, const rn_db_result_t *result,
                   void *data) {
  run_t *run = data;
  char summary[128];
  (void)result;
  snprintf(summary, sizeof summary, "qprobe n=%lld attempt %lld raised %s",
           run->n, run->attempt, run->raise);
  host->log(ctx, RN_LOG_INFO, "%s", summary);
  host->job_complete(run->job, status < 0 ? status : RN_EINVAL, NULL,
                     summary);
  host->free(run);
}

static void started_recorded(rn_ctx_t *ctx, int status,
                             const rn_db_result_t *result, void *data) {
  run_t *run = data;
  if (status < 0) {
    host->job_complete(run->job, status, NULL, "recording the start failed");
    host->free(run);
    return;
  }
  snprintf(run->row_id, sizeof run->row_id, "%s",
           host->db_value(result, 0, 0));
  run->attempt = strtoll(host->db_value(result, 0, 1), NULL, 10) + 1;
  if (run->raise[0] && (run->fail_until == 0 ||
                        run->attempt < run->fail_until)) {
    char sql[160];
    snprintf(sql, sizeof sql, "DO $$BEGIN RAISE EXCEPTION 'qprobe raises %s' "
             "USING ERRCODE = '%s'; END$$", run->raise, run->raise);
    int rc = host->db_query(ctx, sql, 0, NULL, raised, run, NULL);
    if (rc < 0) {
      host->job_complete(run->job, rc, NULL, "raising failed");
      host->free(run);
    }
    return;
  }
  rn_req_t *timer;
  int rc = host->timer_start(ctx, (uint64_t)run->sleep_ms, slept, run, &timer);
  if (rc < 0) {
    host->job_complete(run->job, rc, NULL, "no timer");
    host->free(run);
    return;
  }
  host->job_set_data(run->job, timer);
}

static int record_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)state;
  const char *json = host->job_params(job);
  run_t *run = host->calloc(1, sizeof *run);
  if (!run)
    return RN_ENOMEM;
  run->job = job;
  run->n = param_int(json, "n");
  run->sleep_ms = param_int(json, "sleep_ms");
  run->fail_until = param_int(json, "fail_until");
  run->emit = param_int(json, "emit");
  run->fail_after_emit = param_int(json, "fail_after_emit") != 0;
  char key[128], n[32], pid[32];
  param_str(json, "key", key, sizeof key);
  param_str(json, "raise", run->raise, sizeof run->raise);
  for (char *c = run->raise; *c; c++)
    if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z')))
      run->raise[0] = '\0'; /* a SQLSTATE or nothing */
  snprintf(n, sizeof n, "%lld", run->n);
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  const char *params[] = {n, key, pid};
  int rc = host->db_query(
      ctx,
      "INSERT INTO qprobe_run (n, key, pid, started_at) VALUES ($1::int, $2,"
      " $3::int, clock_timestamp()) RETURNING id, (SELECT count(*) FROM "
      "qprobe_run WHERE n = $1::int)",
      3, params, started_recorded, run, NULL);
  if (rc < 0)
    host->free(run);
  return rc;
}

static void record_cancel(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)ctx;
  (void)state;
  rn_req_t *timer = host->job_data(job);
  if (timer)
    host->cancel(timer);
}

static int noop_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)ctx;
  (void)state;
  host->job_complete(job, 0, NULL, NULL);
  return 0;
}

static const rn_job_def_t record_job = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "record",
    .summary = "records its run in qprobe_run",
    .params = record_params,
    .run = record_run,
    .cancel = record_cancel,
};

static const rn_job_def_t noop_job = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "noop",
    .summary = "completes at once",
    .run = noop_run,
};

/* "secret" reports how many bytes of its secret file the host handed over:
 * local operators may name such files, queued payloads may not. */
static const rn_option_t secret_params[] = {
    RN_OPTION(.name = "label", .type = RN_OPT_STRING, .flags = RN_OPT_REQUIRED),
    RN_OPTION(.name = "token_file", .type = RN_OPT_SECRET_FILE,
              .flags = RN_OPT_REQUIRED),
    {0},
};

static int secret_run(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)ctx;
  (void)state;
  size_t len = 0;
  const char *bytes = host->job_secret(job, "token_file", &len);
  char result[64];
  snprintf(result, sizeof result, "{\"secret_bytes\":%zu}", bytes ? len : 0);
  host->job_complete(job, 0, result, NULL);
  return 0;
}

static const rn_job_def_t secret_job = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "secret",
    .summary = "reports the size of its secret file",
    .params = secret_params,
    .run = secret_run,
};

static const rn_job_def_t *const jobs[] = {&record_job, &noop_job, &secret_job,
                                           NULL};

static int qprobe_create(rn_ctx_t *ctx, const rn_config_t *config,
                         void **state) {
  (void)ctx;
  (void)config;
  *state = NULL;
  return 0;
}

static void qprobe_destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  (void)state;
}

static const rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "qprobe",
    .version = "1",
    .create = qprobe_create,
    .destroy = qprobe_destroy,
    .jobs = jobs,
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  return &descriptor;
}
