/* queue.c - the durable job queue: every cron tick, event and run is a row
 * of runner.job, shared by every runner process on the database.
 *
 * Cron ticks are inserted under the unique (job, minute) key of
 * runner.cron_tick, so each runs once however many processes tick. Workers
 * claim with runner.claim_jobs (FOR UPDATE SKIP LOCKED, concurrency keys
 * counted in the database), wake on NOTIFY runner_job and poll as a
 * fallback, and renew the leases of their runs by heartbeat; any process
 * turns expired leases back into claimable rows. A run's outcome is written
 * with the same lease check, so a row is released or completed once, and a
 * completed run's emitted events are inserted in that same statement.
 *
 * Leases and outages: when the database comes back, a runner first renews
 * the leases of the rows it still runs, and it reclaims nothing until it
 * has itself been connected for a whole lease period, so every owner that
 * lived through the outage (reconnecting within a fraction of the lease:
 * see rn__db_set_reconnect_cap) has renewed before anyone reclaims. A job
 * that outlives an outage therefore keeps its row and its attempt count. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

#define RETRY_WRITE_MS 1000
#define MAINTENANCE_MS 5000
#define STOP_GIVE_UP_MS 5000
#define BACKOFF_CAP_MS (3600 * 1000)
#define CATCH_UP_MAX_STEPS 1000000

typedef struct rn__queue_s rn__queue_t;

enum outcome { OUT_NONE, OUT_COMPLETE, OUT_FAIL, OUT_RELEASE };

/* One claimed row, from claim to the write of its outcome. */
typedef struct qrun_s {
  rn__queue_t *queue;
  rn__list_t link; /* in queue->runs */
  int64_t id;
  char id_text[24];
  char *name;
  char *payload;
  int attempt;
  rn_job_t *job;     /* while the plugin runs it */
  rn_config_t adhoc; /* options of a PLUGIN.JOB event with no [job] */
  json_t *emits;     /* buffered host->emit calls */
  enum outcome outcome;
  bool permanent;    /* fail without retry */
  bool writing;
  bool write_failed_logged;
  bool lease_lost_logged;
  char *result;      /* JSON text or NULL */
  char *summary;
  char *error;
  uint64_t started_ms; /* loop time */
  uint64_t duration_ms;
} qrun_t;

struct rn__queue_s {
  rn__runner_t *runner;
  rn__db_t *db;
  char owner[160];
  uv_timer_t poll_timer, heartbeat_timer, maintenance_timer, retry_timer;
  unsigned open_handles;
  rn__list_t runs;
  unsigned nruns;
  bool claiming;
  bool claim_again;
  bool claim_failing;
  bool heartbeat_busy;
  bool heartbeat_again; /* a renewal was asked for while one was in flight */
  bool maintenance_busy;
  bool connected;
  uint64_t connected_since; /* loop time the database came (back) up */
  bool stopping;
  uint64_t stop_started; /* loop time */
  bool closing;
};

static void pump(rn__queue_t *q);
static void write_outcome(qrun_t *run);

static uint32_t max_attempts_of(const rn__runner_t *runner,
                                const rn__job_conf_t *conf) {
  if (conf && conf->max_attempts)
    return conf->max_attempts;
  const rn__config_t *c = runner->gen->config;
  return c->queue_max_attempts ? c->queue_max_attempts : 5;
}

static const rn__config_t *config_of(const rn__queue_t *q) {
  return q->runner->gen->config;
}

static uint64_t lease_ms(const rn__queue_t *q) {
  uint64_t v = config_of(q)->queue_lease_ms;
  return v ? v : 30000;
}

/* ----------------------------------------------------- event checking */

/* The configured job, or the plugin job, that an event name runs. */
typedef struct target_s {
  rn__gen_job_t *configured;
  rn__plugin_t *plugin;
  const rn_job_def_t *def;
} target_t;

static bool resolve(rn__generation_t *gen, const char *name, target_t *t) {
  memset(t, 0, sizeof *t);
  rn__gen_job_t *gj = rn__generation_job(gen, name);
  if (gj) {
    if (!gj->valid || !gj->conf->enabled)
      return false;
    t->configured = gj;
    return true;
  }
  const char *dot = strchr(name, '.');
  if (!dot || dot == name || !dot[1])
    return false;
  char plugin_name[128];
  if ((size_t)(dot - name) >= sizeof plugin_name)
    return false;
  snprintf(plugin_name, sizeof plugin_name, "%.*s", (int)(dot - name), name);
  t->plugin = rn__generation_plugin(gen, plugin_name);
  t->def = t->plugin ? rn__plugin_job(t->plugin, dot + 1) : NULL;
  return t->def != NULL;
}

int rn__queue_check_event(rn__generation_t *gen, const char *event,
                          const char *payload, char *err, size_t errlen) {
  target_t t;
  if (!event || !*event) {
    snprintf(err, errlen, "an event needs a name");
    return RN_EINVAL;
  }
  if (!resolve(gen, event, &t)) {
    snprintf(err, errlen,
             "unknown job \"%s\": expected an enabled [job] section name or "
             "PLUGIN.JOB of a loaded plugin",
             event);
    return RN_ENOENT;
  }
  size_t cap = gen->config->queue_max_payload ? gen->config->queue_max_payload
                                              : 256 * 1024;
  size_t len = payload ? strlen(payload) : 0;
  if (len > cap) {
    snprintf(err, errlen, "payload of %zu bytes is larger than max_payload "
             "(%zu bytes)", len, cap);
    return RN_ERANGE;
  }
  if (len > 0) {
    json_error_t jerr;
    json_t *v = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
      snprintf(err, errlen, "payload is not valid JSON: %s (line %d, column "
               "%d)", jerr.text, jerr.line, jerr.column);
      return RN_EJSON;
    }
    bool object = json_is_object(v);
    json_decref(v);
    if (!object) {
      snprintf(err, errlen, "payload must be a JSON object");
      return RN_EJSON;
    }
  }
  /* The check a claimed run gets again: refused now, not dead later. */
  rn__plugin_t *plugin = t.configured ? t.configured->plugin : t.plugin;
  const rn_job_def_t *def = t.configured ? t.configured->def : t.def;
  return rn__job_params_check(plugin, def, event, payload, true, NULL, err,
                              errlen);
}

/* ------------------------------------------------------------ enqueue */

static const char *const enqueue_sql =
    "WITH ins AS ("
    " INSERT INTO runner.job (name, payload, idempotency_key, concurrency_key,"
    "  concurrency_limit, run_at, priority, max_attempts)"
    " VALUES ($1, coalesce($2, '{}')::jsonb, $3, $4, coalesce($5::int, 1),"
    "  now() + coalesce($6::bigint, 0) * interval '1 millisecond',"
    "  coalesce($7::int, 0), $8::int)"
    " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL"
    " DO NOTHING RETURNING id)"
    " SELECT id, true FROM ins UNION ALL"
    " SELECT id, false FROM runner.job WHERE idempotency_key = $3"
    " AND NOT EXISTS (SELECT 1 FROM ins)";

static void enqueued(int status, PGresult *res, const char *errmsg,
                     void *data) {
  char *name = data;
  if (status < 0)
    rn__log(RN_LOG_ERR, "queue", "enqueue of %s failed: %s", name, errmsg);
  else if (res && PQntuples(res) == 1 && PQgetvalue(res, 0, 1)[0] == 'f')
    rn__log(RN_LOG_INFO, "queue", "%s: idempotency key already used by job "
            "%s; nothing added", name, PQgetvalue(res, 0, 0));
  free(name);
}

/* runner->emit while serving with a queue, for runs not from the queue. */
static int emit_direct(rn__runner_t *runner, const char *event,
                       const char *payload, const rn_emit_opts_t *opts,
                       char *err, size_t errlen) {
  rn__queue_t *q = runner->queue;
  if (!q || q->closing)
    return RN_ESTATE;
  int rc = rn__queue_check_event(runner->gen, event, payload, err, errlen);
  if (rc < 0)
    return rc;
  target_t t;
  resolve(runner->gen, event, &t);
  char limit[16], delay[24], priority[16], attempts[16];
  rn_emit_opts_t o = RN_EMIT_OPTS_INIT;
  if (opts)
    memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size
                                                  : sizeof o);
  /* run_at_ms is by the runner's clock; the database waits in real time. */
  int64_t ahead =
      o.run_at_ms ? (int64_t)rn__real_delay_ms(runner, o.run_at_ms) : 0;
  snprintf(limit, sizeof limit, "%u", o.concurrency_limit ? o.concurrency_limit : 1);
  snprintf(delay, sizeof delay, "%lld", (long long)(ahead > 0 ? ahead : 0));
  snprintf(priority, sizeof priority, "%d", o.priority);
  snprintf(attempts, sizeof attempts, "%u",
           o.max_attempts ? o.max_attempts
                          : max_attempts_of(runner, t.configured
                                                        ? t.configured->conf
                                                        : NULL));
  const char *params[] = {event,      payload && *payload ? payload : NULL,
                          o.idempotency_key, o.concurrency_key,
                          limit,      delay, priority, attempts};
  char *name = strdup(event);
  if (!name)
    return RN_ENOMEM;
  rc = rn__db_exec(q->db, enqueue_sql, 8, params, enqueued, name, NULL);
  if (rc < 0) {
    free(name);
    snprintf(err, errlen, "the database is unavailable");
  }
  return rc;
}

int rn__queue_job_emit(rn_job_t *job, const char *event, const char *payload,
                       const rn_emit_opts_t *opts) {
  rn__runner_t *runner = job->plugin->ctx.runner;
  qrun_t *run = job->done_data;
  char err[512];
  int rc = rn__queue_check_event(runner->gen, event, payload, err, sizeof err);
  if (rc < 0) {
    rn__log(RN_LOG_ERR, job->qualified_name, "emit %s refused: %s",
            event ? event : "(null)", err);
    return rc;
  }
  if (job->completed) {
    rn__log(RN_LOG_ERR, job->qualified_name,
            "emit %s after job_complete refused", event);
    return RN_ESTATE;
  }
  rn_emit_opts_t o = RN_EMIT_OPTS_INIT;
  if (opts)
    memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size
                                                  : sizeof o);
  json_t *body = payload && *payload ? json_loads(payload, 0, NULL)
                                     : json_object();
  json_t *e = json_pack(
      "{s:s, s:o, s:I, s:I, s:i, s:I}", "name", event, "payload",
      body ? body : json_object(), "concurrency_limit",
      (json_int_t)(o.concurrency_limit ? o.concurrency_limit : 1), "delay_ms",
      (json_int_t)(o.run_at_ms ? rn__real_delay_ms(runner, o.run_at_ms) : 0),
      "priority", (int)o.priority, "max_attempts", (json_int_t)o.max_attempts);
  if (!e)
    return RN_ENOMEM;
  if (o.idempotency_key)
    json_object_set_new(e, "idempotency_key", json_string(o.idempotency_key));
  if (o.concurrency_key)
    json_object_set_new(e, "concurrency_key", json_string(o.concurrency_key));
  if (!run->emits)
    run->emits = json_array();
  if (!run->emits || json_array_append_new(run->emits, e) < 0)
    return RN_ENOMEM;
  return 0;
}

/* -------------------------------------------------------------- runs */

static void run_free(qrun_t *run) {
  rn__queue_t *q = run->queue;
  rn__list_remove(&run->link);
  q->nruns--;
  rn__options_free(&run->adhoc);
  json_decref(run->emits);
  free(run->name);
  free(run->payload);
  free(run->result);
  free(run->summary);
  free(run->error);
  free(run);
}

static void set_outcome(qrun_t *run, enum outcome outcome, const char *error) {
  run->outcome = outcome;
  free(run->error);
  run->error = error ? strdup(error) : NULL;
  if (outcome != OUT_COMPLETE) {
    /* A failed or returned run's fan-out never happened. */
    json_decref(run->emits);
    run->emits = NULL;
  }
}

static void run_done(rn_job_t *job, int status, const char *result_json,
                     const char *summary, void *data) {
  qrun_t *run = data;
  rn__queue_t *q = run->queue;
  run->job = NULL;
  run->duration_ms = uv_now(q->runner->loop) - run->started_ms;
  if (status == 0) {
    json_t *parsed = result_json ? json_loads(result_json, 0, NULL) : NULL;
    if (result_json && !json_is_object(parsed)) {
      json_t *wrapped = json_pack("{s:s}", "raw", result_json);
      run->result = wrapped ? json_dumps(wrapped, JSON_COMPACT) : NULL;
      json_decref(wrapped);
    } else if (result_json) {
      run->result = strdup(result_json);
    }
    json_decref(parsed);
    run->summary = summary ? strdup(summary) : NULL;
    set_outcome(run, OUT_COMPLETE, NULL);
  } else if (status == RN_ECANCELED && q->stopping) {
    set_outcome(run, OUT_RELEASE, NULL);
  } else {
    /* A database error the run ended on says by its SQLSTATE whether
     * trying again can help: a duplicate key or a syntax error cannot. */
    const char *code = status == RN_EDB && job && job->db_sqlstate[0]
                           ? job->db_sqlstate : NULL;
    char error[1024];
    snprintf(error, sizeof error, "%s%s%s%s%s%s", rn__strerror(status),
             code ? " [SQLSTATE " : "", code ? code : "", code ? "]" : "",
             summary ? ": " : "", summary ? summary : "");
    set_outcome(run, OUT_FAIL, error);
    if (rn__db_sqlstate_class(code) == RN__DB_SQL_PERMANENT)
      run->permanent = true;
  }
  write_outcome(run);
}

static void start_run(rn__queue_t *q, qrun_t *run) {
  rn__runner_t *runner = q->runner;
  target_t t;
  char err[1024];
  run->started_ms = uv_now(runner->loop);
  if (q->stopping || !resolve(runner->gen, run->name, &t)) {
    /* Claimed as the config changed under it: not ours to run. */
    set_outcome(run, OUT_RELEASE, NULL);
    write_outcome(run);
    return;
  }
  int rc;
  if (t.configured) {
    rc = rn__run_in_process(runner, t.configured, run->payload, run->id,
                            run_done, run, err, sizeof err);
  } else {
    const rn_config_t *options = NULL;
    const rn__job_conf_t *conf = NULL;
    rn__generation_t *gen = runner->gen;
    for (size_t i = 0; i < gen->njobs; i++) {
      rn__gen_job_t *j = &gen->jobs[i];
      if (j->valid && j->plugin == t.plugin && j->def == t.def) {
        options = &j->options;
        conf = j->conf;
        break;
      }
    }
    rc = 0;
    if (!options) {
      static const rn__kvs_t none;
      if (rn__options_check(gen->config, "(queue)", 0,
                            rn__schema_of(t.plugin, t.def, RN__SCHEMA_OPTIONS),
                            &none, &run->adhoc) > 0) {
        snprintf(err, sizeof err, "%s needs options: configure a [job] for "
                 "it", run->name);
        rc = RN_ECONFIG;
      }
      options = &run->adhoc;
    }
    if (rc == 0) {
      rn__job_start_t start = {.plugin = t.plugin, .def = t.def, .conf = conf,
                               .options = options,
                               .params_json = run->payload,
                               .queue_id = run->id, .done = run_done,
                               .done_data = run};
      rc = rn__job_start(&start, err, sizeof err);
    }
  }
  if (rc < 0) {
    /* Bad parameters or options do not get better by retrying. */
    rn__log(RN_LOG_ERR, run->name, "job %s not started: %s", run->id_text,
            err);
    run->permanent = true;
    set_outcome(run, OUT_FAIL, err);
    write_outcome(run);
    return;
  }
  /* queue_id marks the run so host->emit buffers on it. */
  rn_job_t *job = rn__container_of(runner->jobs.prev, rn_job_t, link);
  if (job->done_data == run) {
    job->queue_id = run->id;
    run->job = job;
  }
}

/* ------------------------------------------------------ outcome writes */

/* Each statement that ends an attempt writes its runner into finished_by:
 * it clears lease_owner, and nothing else would say which process ran it. */

static const char *const complete_sql =
    "WITH done AS ("
    " UPDATE runner.job SET state = 'completed', result = $3::jsonb,"
    "  summary = $4, duration_ms = $5::bigint, finished_at = now(),"
    "  finished_by = $2,"
    "  lease_owner = NULL, lease_expires_at = NULL, last_error = NULL,"
    "  lease_lost_by = NULL"
    " WHERE id = $1::bigint AND ((lease_owner = $2 AND state = 'running')"
    "  OR (lease_lost_by = $2 AND state = 'available'))"
    " RETURNING id),"
    " emitted AS ("
    " INSERT INTO runner.job (name, payload, idempotency_key, concurrency_key,"
    "  concurrency_limit, run_at, priority, max_attempts, parent_id)"
    " SELECT e.name, e.payload, e.idempotency_key, e.concurrency_key,"
    "  greatest(e.concurrency_limit, 1),"
    "  now() + greatest(e.delay_ms, 0) * interval '1 millisecond',"
    "  e.priority,"
    "  coalesce(nullif(e.max_attempts, 0), $7::int), d.id"
    " FROM done d, jsonb_to_recordset(coalesce($6, '[]')::jsonb) AS e("
    "  name text, payload jsonb, idempotency_key text, concurrency_key text,"
    "  concurrency_limit int, delay_ms bigint, priority int,"
    "  max_attempts int)"
    " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL"
    " DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM emitted)";

static const char *const fail_sql =
    "UPDATE runner.job SET"
    " state = CASE WHEN $5::bool OR attempt >= max_attempts THEN 'dead'"
    "  ELSE 'available' END,"
    " run_at = CASE WHEN $5::bool OR attempt >= max_attempts THEN run_at"
    "  ELSE now() + $4::bigint * interval '1 millisecond' END,"
    " finished_at = CASE WHEN $5::bool OR attempt >= max_attempts"
    "  THEN now() END,"
    " last_error = $3, duration_ms = $6::bigint, finished_by = $2,"
    " lease_owner = NULL, lease_expires_at = NULL"
    " WHERE id = $1::bigint AND lease_owner = $2 AND state = 'running'"
    " RETURNING state, attempt, max_attempts";

static const char *const release_sql =
    "UPDATE runner.job SET state = 'available',"
    " attempt = greatest(attempt - 1, 0),"
    " lease_owner = NULL, lease_expires_at = NULL"
    " WHERE id = $1::bigint AND lease_owner = $2 AND state = 'running'"
    " RETURNING id";

static void retry_writes(uv_timer_t *timer);

static void outcome_written(int status, PGresult *res, const char *errmsg,
                            void *data) {
  qrun_t *run = data;
  rn__queue_t *q = run->queue;
  run->writing = false;
  if (status < 0) {
    if (q->closing || status == RN_ECANCELED)
      return; /* the lease runs out and a peer takes the row */
    if (!run->write_failed_logged)
      rn__log(RN_LOG_WARNING, run->name,
              "outcome of job %s not written yet (%s); retrying", run->id_text,
              errmsg);
    run->write_failed_logged = true;
    uv_timer_start(&q->retry_timer, retry_writes, RETRY_WRITE_MS, 0);
    return;
  }
  bool owned = PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), "0") != 0;
  if (!owned && run->outcome == OUT_COMPLETE) {
    rn__log(RN_LOG_ERR, run->name,
            "job %s SUCCEEDED but is NOT recorded: its lease was lost and "
            "another runner claimed the row, which runs it again (this "
            "run's summary: %s)",
            run->id_text, run->summary ? run->summary : "none");
  } else if (!owned) {
    rn__log(RN_LOG_WARNING, run->name,
            "lease on job %s was lost before its outcome was written; the "
            "row belongs to another claim now and this outcome is dropped",
            run->id_text);
  } else if (run->outcome == OUT_FAIL) {
    const char *state = PQgetvalue(res, 0, 0);
    if (strcmp(state, "dead") == 0)
      rn__log(RN_LOG_ERR, run->name, "job %s is dead after attempt %s of %s: "
              "%s", run->id_text, PQgetvalue(res, 0, 1),
              PQgetvalue(res, 0, 2), run->error);
    else
      rn__log(RN_LOG_WARNING, run->name, "job %s attempt %s of %s failed "
              "(%s); retrying with backoff", run->id_text,
              PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), run->error);
  } else if (run->outcome == OUT_COMPLETE && PQnfields(res) > 1 &&
             strcmp(PQgetvalue(res, 0, 1), "0") != 0) {
    rn__log(RN_LOG_DEBUG, run->name, "job %s emitted %s event(s)",
            run->id_text, PQgetvalue(res, 0, 1));
  }
  run_free(run);
  pump(q);
}

static void write_outcome(qrun_t *run) {
  rn__queue_t *q = run->queue;
  if (run->writing || q->closing)
    return;
  char duration[24], backoff[24], attempts[16];
  snprintf(duration, sizeof duration, "%llu",
           (unsigned long long)run->duration_ms);
  const char *sql;
  int n;
  const char *params[7];
  params[0] = run->id_text;
  params[1] = q->owner;
  char *emits = NULL;
  switch (run->outcome) {
  case OUT_COMPLETE:
    emits = run->emits ? json_dumps(run->emits, JSON_COMPACT) : NULL;
    snprintf(attempts, sizeof attempts, "%u", max_attempts_of(q->runner, NULL));
    sql = complete_sql;
    params[2] = run->result;
    params[3] = run->summary;
    params[4] = duration;
    params[5] = emits;
    params[6] = attempts;
    n = 7;
    break;
  case OUT_FAIL: {
    uint64_t base = config_of(q)->queue_retry_base_ms;
    uint64_t delay = base ? base : 10000;
    for (int i = 1; i < run->attempt && delay < BACKOFF_CAP_MS; i++)
      delay *= 2;
    if (delay > BACKOFF_CAP_MS)
      delay = BACKOFF_CAP_MS;
    /* Jitter of +-25% keeps failed runs of many rows from retrying in
     * lockstep. */
    delay = delay * 3 / 4 + randombytes_uniform((uint32_t)(delay / 2 + 1));
    snprintf(backoff, sizeof backoff, "%llu", (unsigned long long)delay);
    sql = fail_sql;
    params[2] = run->error ? run->error : "failed";
    params[3] = backoff;
    params[4] = run->permanent ? "true" : "false";
    params[5] = duration;
    n = 6;
    break;
  }
  default:
    sql = release_sql;
    n = 2;
    break;
  }
  run->writing = true;
  /* Ahead of plugin queries: the outcome must land while the lease holds. */
  int rc = rn__db_exec_first(q->db, sql, n, params, outcome_written, run, NULL);
  free(emits);
  if (rc < 0) {
    run->writing = false;
    if (!run->write_failed_logged)
      rn__log(RN_LOG_WARNING, run->name, "outcome of job %s not written yet "
              "(%s); retrying", run->id_text, rn__strerror(rc));
    run->write_failed_logged = true;
    uv_timer_start(&q->retry_timer, retry_writes, RETRY_WRITE_MS, 0);
  }
}

static void retry_writes(uv_timer_t *timer) {
  rn__queue_t *q = timer->data;
  for (rn__list_t *n = q->runs.next; n != &q->runs;) {
    qrun_t *run = rn__container_of(n, qrun_t, link);
    n = n->next;
    if (run->outcome != OUT_NONE && !run->writing)
      write_outcome(run);
  }
}

/* ------------------------------------------------------------- claims */

/* The names this process can run now: enabled configured jobs and every
 * PLUGIN.JOB of the current generation, as a JSON array. */
static char *claimable_names(rn__generation_t *gen) {
  json_t *names = json_array();
  for (size_t i = 0; i < gen->njobs; i++)
    if (gen->jobs[i].valid && gen->jobs[i].conf->enabled)
      json_array_append_new(names, json_string(gen->jobs[i].conf->name));
  for (size_t i = 0; i < gen->nplugins; i++) {
    const rn_plugin_t *d = gen->plugins[i].desc;
    for (size_t k = 0; d->jobs[k]; k++)
      json_array_append_new(names, json_sprintf("%s.%s", gen->plugins[i].name,
                                                d->jobs[k]->name));
  }
  char *text = json_dumps(names, JSON_COMPACT);
  json_decref(names);
  return text;
}

static void claimed(int status, PGresult *res, const char *errmsg,
                    void *data) {
  rn__queue_t *q = data;
  q->claiming = false;
  if (q->closing)
    return;
  if (status < 0) {
    if (!q->claim_failing && status != RN_ECANCELED)
      rn__log(RN_LOG_ERR, "queue", "claiming failed: %s%s", errmsg,
              strstr(errmsg, "does not exist")
                  ? " (run 'regentra-runner migrate')" : "");
    q->claim_failing = true;
    return;
  }
  if (q->claim_failing)
    rn__log(RN_LOG_NOTICE, "queue", "claiming works again");
  q->claim_failing = false;
  int rows = PQntuples(res);
  for (int r = 0; r < rows; r++) {
    qrun_t *run = calloc(1, sizeof *run);
    if (!run)
      abort();
    run->queue = q;
    run->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    snprintf(run->id_text, sizeof run->id_text, "%lld", (long long)run->id);
    run->name = strdup(PQgetvalue(res, r, 1));
    run->payload = strdup(PQgetvalue(res, r, 2));
    run->attempt = atoi(PQgetvalue(res, r, 3));
    if (!run->name || !run->payload)
      abort();
    rn__list_push(&q->runs, &run->link);
    q->nruns++;
  }
  /* Start after all are listed: a run may complete synchronously. */
  rn__list_t *n = q->runs.prev;
  for (int r = 0; r < rows; r++)
    n = n->prev;
  for (int r = 0; r < rows; r++) {
    n = n->next;
    qrun_t *run = rn__container_of(n, qrun_t, link);
    start_run(q, run);
  }
  /* A full batch suggests more is waiting. */
  if (q->claim_again || rows > 0)
    pump(q);
}

static void pump(rn__queue_t *q) {
  rn__runner_t *runner = q->runner;
  if (q->closing || q->stopping || !runner->gen)
    return;
  if (q->claiming) {
    q->claim_again = true;
    return;
  }
  uint32_t workers = config_of(q)->workers ? config_of(q)->workers : 1;
  if (q->nruns >= workers || !rn__db_up(q->db))
    return;
  q->claim_again = false;
  char *names = claimable_names(runner->gen);
  char max[16], lease[24];
  snprintf(max, sizeof max, "%u", workers - q->nruns);
  snprintf(lease, sizeof lease, "%llu", (unsigned long long)lease_ms(q));
  const char *params[] = {q->owner, names, max, lease};
  q->claiming = true;
  int rc = rn__db_exec(q->db,
                       "SELECT id, name, payload, attempt, max_attempts, "
                       "wait_ms FROM runner.claim_jobs($1, ARRAY(SELECT "
                       "jsonb_array_elements_text($2::jsonb)), $3::int, "
                       "$4::int)",
                       4, params, claimed, q, NULL);
  free(names);
  if (rc < 0)
    q->claiming = false;
}

static void on_poll(uv_timer_t *timer) { pump(timer->data); }

static void on_notify(const char *channel, const char *extra, void *data) {
  (void)channel;
  (void)extra;
  pump(data);
}

/* --------------------------------------------------- heartbeat, upkeep */

/* Rows this process runs whose lease another runner reclaimed: said once
 * per run, since its outcome may now be lost. */
static void check_renewed(rn__queue_t *q, const char *sent, PGresult *res) {
  int rows = PQntuples(res);
  for (rn__list_t *n = q->runs.next; n != &q->runs; n = n->next) {
    qrun_t *run = rn__container_of(n, qrun_t, link);
    if (run->outcome != OUT_NONE || run->lease_lost_logged)
      continue;
    /* Only ids this heartbeat asked for: later claims were not in it. */
    const char *p = sent;
    size_t len = strlen(run->id_text);
    bool asked = false;
    while (p && *p && !asked) {
      asked = strncmp(p, run->id_text, len) == 0 &&
              (p[len] == ',' || p[len] == '\0');
      p = strchr(p, ',');
      p = p ? p + 1 : NULL;
    }
    bool renewed = false;
    for (int r = 0; r < rows && !renewed; r++)
      renewed = strcmp(PQgetvalue(res, r, 0), run->id_text) == 0;
    if (asked && !renewed) {
      run->lease_lost_logged = true;
      rn__log(RN_LOG_ERR, run->name, "lease on job %s could not be renewed: "
              "another runner reclaimed it; this run's outcome is recorded "
              "only if no runner has claimed the row again by then",
              run->id_text);
    }
  }
}

typedef struct renewal_s {
  rn__queue_t *queue;
  char ids[];
} renewal_t;

static void renew_leases(rn__queue_t *q);

static void heartbeat_done(int status, PGresult *res, const char *errmsg,
                           void *data) {
  renewal_t *renewal = data;
  rn__queue_t *q = renewal->queue;
  q->heartbeat_busy = false;
  if (status < 0 && status != RN_ECANCELED && !q->closing)
    rn__log(RN_LOG_DEBUG, "queue", "heartbeat failed: %s", errmsg);
  if (status == 0 && !q->closing)
    check_renewed(q, renewal->ids, res);
  free(renewal);
  if (q->heartbeat_again && !q->closing) {
    q->heartbeat_again = false;
    renew_leases(q);
  }
}

/* Extends the lease of every row this process still runs, expired or not:
 * an expired lease nobody reclaimed is still ours. */
static void renew_leases(rn__queue_t *q) {
  if (q->heartbeat_busy) {
    q->heartbeat_again = true;
    return;
  }
  if (q->nruns == 0 || !rn__db_up(q->db))
    return;
  /* Only rows this process still runs: a claim whose answer was lost with
   * its connection is left to expire and be reclaimed. */
  size_t cap = (size_t)q->nruns * 24 + 2, len = 0;
  renewal_t *renewal = malloc(sizeof *renewal + cap);
  if (!renewal)
    return;
  renewal->queue = q;
  char *ids = renewal->ids;
  ids[0] = '\0';
  for (rn__list_t *n = q->runs.next; n != &q->runs; n = n->next) {
    qrun_t *run = rn__container_of(n, qrun_t, link);
    len += (size_t)snprintf(ids + len, cap - len, "%s%s", len ? "," : "",
                            run->id_text);
  }
  char lease[24];
  snprintf(lease, sizeof lease, "%llu", (unsigned long long)lease_ms(q));
  const char *params[] = {q->owner, lease, ids};
  q->heartbeat_busy = true;
  /* Ahead of plugin queries, which may queue for longer than the lease. */
  if (rn__db_exec_first(q->db,
                  "UPDATE runner.job SET lease_expires_at = now() + "
                  "$2::bigint * interval '1 millisecond' WHERE lease_owner = "
                  "$1 AND state = 'running' AND id = ANY "
                  "(string_to_array($3, ',')::bigint[]) RETURNING id",
                  3, params, heartbeat_done, renewal, NULL) < 0) {
    q->heartbeat_busy = false;
    free(renewal);
  }
}

static void on_heartbeat(uv_timer_t *timer) { renew_leases(timer->data); }

static const char *const reclaim_sql =
    "WITH expired AS (SELECT id FROM runner.job WHERE state = 'running'"
    " AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)"
    " UPDATE runner.job j SET"
    " state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead'"
    "  ELSE 'available' END,"
    " finished_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,"
    " last_error = 'lease of ' || j.lease_owner || ' expired (the runner "
    "stopped or lost the database)',"
    " lease_lost_by = j.lease_owner, finished_by = j.lease_owner,"
    " lease_owner = NULL, lease_expires_at = NULL"
    " FROM expired WHERE j.id = expired.id RETURNING j.id";

static const char *const prune_sql =
    "WITH gone AS (DELETE FROM runner.job WHERE id IN (SELECT id FROM "
    " runner.job WHERE state = 'completed' AND finished_at < now() - "
    " $1::bigint * interval '1 millisecond' LIMIT 1000) RETURNING 1),"
    " ticks AS (DELETE FROM runner.cron_tick t WHERE t.scheduled_at < now() -"
    " $1::bigint * interval '1 millisecond' AND t.scheduled_at < (SELECT"
    " max(l.scheduled_at) FROM runner.cron_tick l WHERE l.job_name ="
    " t.job_name) RETURNING 1)"
    " SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM ticks)";

static void pruned(int status, PGresult *res, const char *errmsg,
                   void *data) {
  rn__queue_t *q = data;
  q->maintenance_busy = false;
  if (status < 0) {
    if (status != RN_ECANCELED && !q->closing)
      rn__log(RN_LOG_DEBUG, "queue", "pruning failed: %s", errmsg);
    return;
  }
  if (strcmp(PQgetvalue(res, 0, 0), "0") != 0)
    rn__log(RN_LOG_INFO, "queue", "pruned %s completed job(s) past retention",
            PQgetvalue(res, 0, 0));
}

static void prune(rn__queue_t *q) {
  char retention[24];
  snprintf(retention, sizeof retention, "%llu",
           (unsigned long long)(config_of(q)->queue_retention_ms
                                    ? config_of(q)->queue_retention_ms
                                    : 7ULL * 24 * 3600 * 1000));
  const char *params[] = {retention};
  if (rn__db_exec(q->db, prune_sql, 1, params, pruned, q, NULL) < 0)
    q->maintenance_busy = false;
}

static void reclaimed(int status, PGresult *res, const char *errmsg,
                      void *data) {
  rn__queue_t *q = data;
  if (status < 0) {
    q->maintenance_busy = false;
    if (status != RN_ECANCELED && !q->closing)
      rn__log(RN_LOG_DEBUG, "queue", "reclaim failed: %s", errmsg);
    return;
  }
  if (PQntuples(res) > 0)
    rn__log(RN_LOG_WARNING, "queue", "reclaimed %d job(s) whose lease "
            "expired", PQntuples(res));
  prune(q);
}

static void on_maintenance(uv_timer_t *timer) {
  rn__queue_t *q = timer->data;
  if (q->maintenance_busy || q->closing || !rn__db_up(q->db))
    return;
  q->maintenance_busy = true;
  /* Only after a whole lease period of our own connection: an owner that
   * came back with us has renewed by then (see the top of the file). */
  uint64_t now = uv_now(q->runner->loop);
  if (!q->connected || now - q->connected_since < lease_ms(q)) {
    prune(q);
    return;
  }
  if (rn__db_exec(q->db, reclaim_sql, 0, NULL, reclaimed, q, NULL) < 0)
    q->maintenance_busy = false;
}

/* ---------------------------------------------------------------- cron */

static const char *const tick_sql =
    "WITH tick AS (INSERT INTO runner.cron_tick (job_name, scheduled_at,"
    " job_id) VALUES ($1, to_timestamp($2::bigint),"
    " nextval(pg_get_serial_sequence('runner.job', 'id')))"
    " ON CONFLICT DO NOTHING RETURNING job_name, scheduled_at, job_id)"
    " INSERT INTO runner.job (id, name, max_attempts, scheduled_at,"
    " concurrency_key, concurrency_limit)"
    " SELECT job_id, job_name, $3::int, scheduled_at, 'cron:' || job_name, 1"
    " FROM tick RETURNING id";

typedef struct tick_s {
  char *name;
  int64_t tick_s;
  bool catch_up;
} tick_t;

static void tick_inserted(int status, PGresult *res, const char *errmsg,
                          void *data) {
  tick_t *t = data;
  if (status < 0 && status != RN_ECANCELED)
    rn__log(RN_LOG_ERR, t->name, "tick %lld not queued: %s", (long long)t->tick_s,
            errmsg);
  else if (status == 0 && PQntuples(res) == 1)
    rn__log(RN_LOG_INFO, t->name, "%s %lld queued as job %s",
            t->catch_up ? "missed tick" : "tick", (long long)t->tick_s,
            PQgetvalue(res, 0, 0));
  free(t->name);
  free(t);
}

static int insert_tick(rn__runner_t *runner, rn__gen_job_t *job,
                       int64_t tick_s, bool catch_up) {
  rn__queue_t *q = runner->queue;
  if (!q || q->closing)
    return RN_ESTATE;
  tick_t *t = calloc(1, sizeof *t);
  if (!t || !(t->name = strdup(job->conf->name))) {
    free(t);
    return RN_ENOMEM;
  }
  t->tick_s = tick_s;
  t->catch_up = catch_up;
  char when[24], attempts[16];
  snprintf(when, sizeof when, "%lld", (long long)tick_s);
  snprintf(attempts, sizeof attempts, "%u",
           max_attempts_of(runner, job->conf));
  const char *params[] = {job->conf->name, when, attempts};
  int rc = rn__db_exec(q->db, tick_sql, 3, params, tick_inserted, t, NULL);
  if (rc < 0) {
    rn__log(RN_LOG_ERR, job->conf->name, "tick %lld not queued: %s; it is "
            "caught up when the database is back", (long long)tick_s,
            rn__strerror(rc));
    free(t->name);
    free(t);
  }
  return rc;
}

static int dispatch_tick(rn__runner_t *runner, rn__gen_job_t *job,
                         int64_t tick_s) {
  return insert_tick(runner, job, tick_s, false);
}

/* After downtime (ours or the database's): for each scheduled job whose
 * last recorded tick is older than its latest due tick, queue that latest
 * one (missed_runs = once) or nothing (skip). Never one per missed tick. */
static void last_ticks_read(int status, PGresult *res, const char *errmsg,
                            void *data) {
  rn__queue_t *q = data;
  if (status < 0) {
    if (status != RN_ECANCELED && !q->closing)
      rn__log(RN_LOG_ERR, "queue", "reading last cron ticks failed: %s",
              errmsg);
    return;
  }
  rn__runner_t *runner = q->runner;
  rn__generation_t *gen = runner->gen;
  int64_t now_s = rn__now_ms(runner) / 1000;
  int64_t minute = now_s - now_s % 60;
  for (int r = 0; r < PQntuples(res); r++) {
    rn__gen_job_t *job = rn__generation_job(gen, PQgetvalue(res, r, 0));
    if (!job || !job->valid || !job->conf->enabled || !job->conf->schedule)
      continue;
    int64_t last = strtoll(PQgetvalue(res, r, 1), NULL, 10);
    int64_t due = -1, t = last;
    unsigned missed = 0;
    for (int steps = 0; steps < CATCH_UP_MAX_STEPS; steps++) {
      t = rn__cron_next(&job->conf->cron, t);
      if (t < 0 || t > minute)
        break;
      due = t;
      missed++;
    }
    if (due < 0)
      continue;
    if (job->conf->missed_runs_skip) {
      rn__log(RN_LOG_NOTICE, job->conf->name, "%u missed tick(s) since %lld "
              "skipped (missed_runs = skip)", missed, (long long)last);
      continue;
    }
    rn__log(RN_LOG_NOTICE, job->conf->name, "%u missed tick(s) since %lld: "
            "running once for tick %lld (missed_runs = once)", missed,
            (long long)last, (long long)due);
    insert_tick(runner, job, due, true);
  }
}

static void catch_up(rn__queue_t *q) {
  rn__generation_t *gen = q->runner->gen;
  json_t *names = json_array();
  for (size_t i = 0; i < gen->njobs; i++)
    if (gen->jobs[i].valid && gen->jobs[i].conf->enabled &&
        gen->jobs[i].conf->schedule)
      json_array_append_new(names, json_string(gen->jobs[i].conf->name));
  if (json_array_size(names) > 0) {
    char *text = json_dumps(names, JSON_COMPACT);
    const char *params[] = {text};
    rn__db_exec(q->db,
                "SELECT job_name, extract(epoch FROM max(scheduled_at))::bigint"
                " FROM runner.cron_tick WHERE job_name = ANY (ARRAY(SELECT "
                "jsonb_array_elements_text($1::jsonb))) GROUP BY job_name",
                1, params, last_ticks_read, q, NULL);
    free(text);
  }
  json_decref(names);
}

static void on_db_state(bool up, void *data) {
  rn__queue_t *q = data;
  if (!up) {
    q->connected = false;
    return;
  }
  if (q->closing)
    return;
  if (!q->connected) {
    q->connected = true;
    q->connected_since = uv_now(q->runner->loop);
  }
  /* Our leases first, before a peer that came back too may reclaim. */
  renew_leases(q);
  catch_up(q);
  retry_writes(&q->retry_timer);
  pump(q);
}

/* ---------------------------------------------------------- lifecycle */

int rn__queue_start(rn__runner_t *runner) {
  rn__db_t *db = rn__db_get(runner);
  if (!db)
    return RN_ENOSYS;
  rn__queue_t *q = calloc(1, sizeof *q);
  if (!q)
    return RN_ENOMEM;
  q->runner = runner;
  q->db = db;
  char host[64] = "";
  gethostname(host, sizeof host - 1);
  if (sodium_init() < 0) {
    free(q);
    return RN_ECRYPTO;
  }
  snprintf(q->owner, sizeof q->owner, "%s:%ld:%08x", host, (long)getpid(),
           (unsigned)randombytes_random());
  rn__list_init(&q->runs);
  uv_timer_t *timers[] = {&q->poll_timer, &q->heartbeat_timer,
                          &q->maintenance_timer, &q->retry_timer};
  for (size_t i = 0; i < RN_ARRAY_SIZE(timers); i++) {
    uv_timer_init(runner->loop, timers[i]);
    timers[i]->data = q;
    q->open_handles++;
  }
  runner->queue = q;
  runner->dispatch_tick = dispatch_tick;
  runner->emit = emit_direct;
  const rn__config_t *c = config_of(q);
  uint64_t poll = c->queue_poll_ms ? c->queue_poll_ms : 2000;
  uint64_t beat = lease_ms(q) / 3;
  uint64_t upkeep = lease_ms(q) / 2 < MAINTENANCE_MS ? lease_ms(q) / 2
                                                      : MAINTENANCE_MS;
  uv_timer_start(&q->poll_timer, on_poll, poll, poll);
  uv_timer_start(&q->heartbeat_timer, on_heartbeat, beat, beat);
  uv_timer_start(&q->maintenance_timer, on_maintenance, upkeep, upkeep);
  /* Back within a quarter lease after an outage, well before a peer's
   * reclaim (a whole lease after its own return). */
  rn__db_set_reconnect_cap(db, (uint32_t)(lease_ms(q) / 4));
  rn__db_on_state(db, on_db_state, q);
  if (rn__db_up(db)) { /* opened earlier, by another service */
    q->connected = true;
    q->connected_since = uv_now(runner->loop);
  }
  int rc = rn__db_listen(db, "runner_job", on_notify, q);
  if (rc < 0)
    rn__log(RN_LOG_WARNING, "queue", "no NOTIFY wake-ups (%s); polling "
            "every %llu ms", rn__strerror(rc), (unsigned long long)poll);
  rn__log(RN_LOG_NOTICE, "queue", "using the queue in %s as %s with %u "
          "worker(s)", "the database", q->owner, c->workers);
  return 0;
}

void rn__queue_stop(rn__runner_t *runner) {
  rn__queue_t *q = runner->queue;
  if (!q || q->stopping)
    return;
  q->stopping = true;
  q->stop_started = uv_now(runner->loop);
  uv_timer_stop(&q->poll_timer);
}

bool rn__queue_idle(const rn__runner_t *runner) {
  const rn__queue_t *q = runner->queue;
  if (!q)
    return true;
  if (q->nruns == 0 && !q->claiming)
    return true;
  /* Past the drain deadline the database may be gone: stop waiting and let
   * the leases expire instead. */
  uint64_t now = uv_now(runner->loop);
  return runner->drain_cancelled && now > runner->drain_deadline +
                                              STOP_GIVE_UP_MS;
}

const char *rn__queue_owner(const rn__runner_t *runner) {
  return runner->queue ? runner->queue->owner : NULL;
}

static void queue_handle_closed(uv_handle_t *handle) {
  rn__queue_t *q = handle->data;
  if (--q->open_handles == 0)
    free(q);
}

void rn__queue_close(rn__runner_t *runner) {
  rn__queue_t *q = runner->queue;
  if (!q)
    return;
  runner->queue = NULL;
  runner->emit = NULL;
  q->closing = true;
  if (q->nruns)
    rn__log(RN_LOG_WARNING, "queue", "%u job(s) left unwritten; their leases "
            "expire and peers take them", q->nruns);
  while (!rn__list_empty(&q->runs)) {
    qrun_t *run = rn__container_of(q->runs.next, qrun_t, link);
    if (run->job) {
      /* Still running (only when giving up): the job keeps a pointer. */
      run->job->done = NULL;
      run->job->done_data = NULL;
    }
    run_free(run);
  }
  uv_close((uv_handle_t *)&q->poll_timer, queue_handle_closed);
  uv_close((uv_handle_t *)&q->heartbeat_timer, queue_handle_closed);
  uv_close((uv_handle_t *)&q->maintenance_timer, queue_handle_closed);
  uv_close((uv_handle_t *)&q->retry_timer, queue_handle_closed);
}
