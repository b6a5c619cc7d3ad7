/* job.c - one run of a plugin job: parameters, secrets, timeout, and the
 * single completion every run ends with. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "internal.h"

/* Reads an RN_OPT_SECRET_FILE parameter: a file that only its owner may
 * read, or "-" for standard input (operator commands). */
static int read_secret_param(const char *path, char **bytes, size_t *len,
                             char *err, size_t errlen) {
  if (strcmp(path, "-") != 0)
    return rn__secret_read_file(path, bytes, len, err, errlen);
  size_t cap = 256, n = 0;
  char *buf = malloc(cap);
  if (!buf)
    return RN_ENOMEM;
  int c;
  while ((c = getchar()) != EOF) {
    if (n + 1 == cap) {
      char *grown = malloc(cap * 2);
      if (!grown) {
        rn__secret_wipe(buf, cap);
        return RN_ENOMEM;
      }
      memcpy(grown, buf, n);
      rn__secret_wipe(buf, cap);
      buf = grown;
      cap *= 2;
    }
    buf[n++] = (char)c;
  }
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    n--;
  buf[n] = '\0';
  if (n == 0) {
    snprintf(err, errlen, "the secret read from standard input is empty");
    rn__secret_wipe(buf, cap);
    return RN_EINVAL;
  }
  /* Shrink to an exact allocation so the wipe length is known. */
  char *exact = malloc(n + 1);
  if (!exact) {
    rn__secret_wipe(buf, cap);
    return RN_ENOMEM;
  }
  memcpy(exact, buf, n + 1);
  rn__secret_wipe(buf, cap);
  *bytes = exact;
  *len = n;
  return 0;
}

static json_t *typed_value(const rn_option_t *option, const char *text,
                           int64_t number) {
  switch (option->type) {
  case RN_OPT_INT:
  case RN_OPT_DURATION:
    return json_integer(number);
  case RN_OPT_BOOL:
    return json_boolean(number);
  default:
    return json_string(text);
  }
}

static void free_secrets(rn_job_t *job) {
  for (size_t i = 0; i < job->nsecrets; i++) {
    free(job->secrets[i].name);
    rn__secret_wipe(job->secrets[i].bytes, job->secrets[i].len + 1);
  }
  free(job->secrets);
  job->secrets = NULL;
  job->nsecrets = 0;
}

/* Where a local operator gives a secret file for this job, for messages. */
static void secret_file_hint(const rn__plugin_t *plugin,
                             const rn_job_def_t *def, const rn_option_t *option,
                             char *buf, size_t len) {
  const char *group = plugin ? plugin->desc->command_group : NULL;
  if (group && def->command) {
    int n = snprintf(buf, len, "regentra-runner %s %s --", group, def->command);
    for (const char *c = option->name; n >= 0 && (size_t)n + 1 < len && *c; c++)
      buf[n++] = *c == '_' ? '-' : *c;
    if (n >= 0 && (size_t)n < len)
      buf[n] = '\0';
  } else {
    snprintf(buf, len, "regentra-runner run %s.%s %s=FILE",
             plugin ? plugin->name : "PLUGIN", def->name, option->name);
  }
}

/* "a, b, c": the parameters a job takes, for messages. */
static void param_names(const rn_option_t *schema, char *buf, size_t len) {
  buf[0] = '\0';
  size_t n = 0;
  for (const rn_option_t *o = schema; o && o->name && n < len; o++) {
    int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", o->name);
    if (w < 0)
      break;
    n += (size_t)w;
  }
  if (!buf[0])
    snprintf(buf, len, "none");
}

int rn__job_params_check(const rn__plugin_t *plugin, const rn_job_def_t *def,
                         const char *job_name, const char *params_json,
                         bool queued, json_t **typed, char *err,
                         size_t errlen) {
  if (typed)
    *typed = NULL;
  json_error_t jerr;
  json_t *in = params_json && *params_json
                   ? json_loads(params_json, JSON_REJECT_DUPLICATES, &jerr)
                   : json_object();
  if (!in) {
    snprintf(err, errlen, "parameters of %s are not valid JSON: %s (line %d)",
             job_name, jerr.text, jerr.line);
    return RN_EJSON;
  }
  if (!json_is_object(in)) {
    json_decref(in);
    snprintf(err, errlen, "parameters of %s must be a JSON object", job_name);
    return RN_EJSON;
  }
  const rn_option_t *schema = rn__schema_of(plugin, def, RN__SCHEMA_PARAMS);
  json_t *out = json_object();
  int rc = out ? 0 : RN_ENOMEM;
  const char *key;
  json_t *value;
  char hint[256];
  json_object_foreach(in, key, value) {
    if (rc < 0)
      break;
    const rn_option_t *option = schema;
    while (option && option->name && strcmp(option->name, key) != 0)
      option++;
    if (!option || !option->name) {
      char names[512];
      param_names(schema, names, sizeof names);
      snprintf(err, errlen, "%s has no parameter \"%s\" (it takes: %s)",
               job_name, key, names);
      rc = RN_EINVAL;
    }
  }
  for (const rn_option_t *option = schema; rc == 0 && option && option->name;
       option++) {
    value = json_object_get(in, option->name);
    /* Only a local operator names files for the host to read: a queued
     * payload could otherwise make the daemon read and send any file it
     * may read, or read its own standard input on the loop. */
    if (option->type == RN_OPT_SECRET_FILE && queued) {
      secret_file_hint(plugin, def, option, hint, sizeof hint);
      if (value) {
        snprintf(err, errlen,
                 "%s: parameter %s names a file; secret files can only be "
                 "given on the local command line (%s), never in a queued "
                 "payload",
                 job_name, option->name, hint);
        rc = RN_EPERM;
      } else if (option->flags & RN_OPT_REQUIRED) {
        snprintf(err, errlen,
                 "%s needs parameter %s, a secret file that only a local "
                 "operator can name (%s); it cannot run from the queue",
                 job_name, option->name, hint);
        rc = RN_EPERM;
      }
      continue;
    }
    char text_buf[64];
    const char *text = NULL;
    if (json_is_string(value))
      text = json_string_value(value);
    else if (json_is_integer(value)) {
      snprintf(text_buf, sizeof text_buf, "%lld",
               (long long)json_integer_value(value));
      text = text_buf;
    } else if (json_is_boolean(value))
      text = json_is_true(value) ? "true" : "false";
    else if (value && !json_is_null(value)) {
      snprintf(err, errlen,
               "%s: parameter \"%s\" must be a string, a whole number or a "
               "boolean, not %s",
               job_name, option->name,
               json_is_real(value)    ? "a fraction"
               : json_is_array(value) ? "an array"
                                      : "an object");
      rc = RN_EINVAL;
      break;
    }
    if (!text)
      text = option->default_value;
    if (!text) {
      if (option->flags & RN_OPT_REQUIRED) {
        snprintf(err, errlen, "%s: missing required parameter \"%s\"", job_name,
                 option->name);
        rc = RN_EINVAL;
      }
      continue;
    }
    int64_t number;
    char reason[512];
    rc = rn__option_parse(option, text, &number, reason, sizeof reason);
    if (rc < 0) {
      snprintf(err, errlen, "%s: parameter %s", job_name, reason);
      break;
    }
    json_t *typed_one = typed_value(option, text, number);
    if (!typed_one || json_object_set_new(out, option->name, typed_one) < 0)
      rc = RN_ENOMEM;
  }
  json_decref(in);
  if (rc == 0 && typed)
    *typed = out;
  else
    json_decref(out);
  return rc;
}

/* Checks params against the job's schema and rewrites them with typed
 * values and defaults; secret-file parameters move into job->secrets. A
 * run claimed from the queue (queue_id set) never reads a secret file. */
static int prepare_params(rn_job_t *job, const char *params_json, char *err,
                          size_t errlen) {
  json_t *typed;
  int rc = rn__job_params_check(job->plugin, job->def, job->qualified_name,
                                params_json, job->queue_id != 0, &typed, err,
                                errlen);
  if (rc < 0)
    return rc;
  for (const rn_option_t *option =
           rn__schema_of(job->plugin, job->def, RN__SCHEMA_PARAMS);
       rc == 0 && option && option->name; option++) {
    json_t *value = json_object_get(typed, option->name);
    if (option->type != RN_OPT_SECRET_FILE || !json_is_string(value))
      continue;
    rn__secret_param_t secret = {0};
    char reason[512];
    rc = read_secret_param(json_string_value(value), &secret.bytes, &secret.len,
                           reason, sizeof reason);
    if (rc < 0) {
      snprintf(err, errlen, "%s: parameter %s: %s", job->qualified_name,
               option->name, reason);
      break;
    }
    secret.name = strdup(option->name);
    rn__secret_param_t *grown =
        realloc(job->secrets, (job->nsecrets + 1) * sizeof *grown);
    if (!secret.name || !grown) {
      free(secret.name);
      rn__secret_wipe(secret.bytes, secret.len + 1);
      if (grown)
        job->secrets = grown;
      rc = RN_ENOMEM;
      break;
    }
    job->secrets = grown;
    job->secrets[job->nsecrets++] = secret;
    /* The path itself stays out of the parameters the plugin sees. */
    json_object_del(typed, option->name);
  }
  if (rc == 0) {
    job->params_json = json_dumps(typed, JSON_COMPACT | JSON_SORT_KEYS);
    if (!job->params_json)
      rc = RN_ENOMEM;
  }
  json_decref(typed);
  return rc;
}

static void job_unref(rn_job_t *job) {
  if (--job->refs)
    return;
  rn__generation_t *gen = job->plugin->gen;
  free(job->qualified_name);
  free(job->params_json);
  free(job);
  rn__generation_unref(gen);
}

/* The host's own reference ends with its timer. */
static void job_closed(uv_handle_t *handle) {
  job_unref(rn__container_of(handle, rn_job_t, timeout));
}

rn_job_t *rn__job_enter(rn__runner_t *runner, rn_job_t *job) {
  rn_job_t *previous = runner->current_job;
  runner->current_job = job;
  return previous;
}

void rn__job_leave(rn__runner_t *runner, rn_job_t *previous) {
  runner->current_job = previous;
}

void rn__job_attach(rn_job_t *job, rn_req_t *req) {
  req->job = job;
  rn__list_push(&job->reqs, &req->job_link);
  job->refs++;
}

void rn__job_detach(rn_req_t *req) {
  rn_job_t *job = req->job;
  rn__list_remove(&req->job_link);
  req->job = NULL;
  job_unref(job);
}

/* Each request's cancel leads to its one callback (RN_ECANCELED unless it
 * had already finished); requests already cancelled ignore a second one. */
static void cancel_requests(rn_job_t *job) {
  job->refs++; /* a callback run from here must not free the list's owner */
  rn__list_t *n = job->reqs.next;
  while (n != &job->reqs) {
    rn_req_t *req = rn__container_of(n, rn_req_t, job_link);
    rn__list_t *next = n->next;
    if (req->cancel)
      req->cancel(req);
    n = next;
  }
  job_unref(job);
}

static void on_timeout(uv_timer_t *timer) {
  rn_job_t *job = rn__container_of(timer, rn_job_t, timeout);
  job->timeout_armed = false;
  rn__log(RN_LOG_WARNING, job->qualified_name,
          "timed out after %llu ms; cancelling",
          (unsigned long long)(job->conf ? job->conf->timeout_ms : 0));
  rn__job_cancel(job);
}

int rn__job_start(const rn__job_start_t *start, char *err, size_t errlen) {
  rn__plugin_t *plugin = start->plugin;
  rn__runner_t *runner = plugin->ctx.runner;
  rn_job_t *job = calloc(1, sizeof *job);
  if (!job)
    return RN_ENOMEM;
  job->plugin = plugin;
  job->def = start->def;
  job->conf = start->conf;
  job->options = start->options;
  job->queue_id = start->queue_id;
  job->done = start->done;
  job->done_data = start->done_data;
  job->refs = 1;
  rn__list_init(&job->link);
  rn__list_init(&job->reqs);
  if (asprintf(&job->qualified_name, "%s.%s", plugin->name, start->def->name) <
      0) {
    free(job);
    return RN_ENOMEM;
  }
  int rc = prepare_params(job, start->params_json, err, errlen);
  if (rc < 0) {
    free_secrets(job);
    free(job->params_json);
    free(job->qualified_name);
    free(job);
    return rc;
  }
  uv_timer_init(runner->loop, &job->timeout);
  rn__generation_ref(plugin->gen);
  plugin->live_jobs++;
  runner->running_jobs++;
  rn__list_push(&runner->jobs, &job->link);
  job->started_ms = uv_now(runner->loop);
  if (job->conf && job->conf->timeout_ms) {
    uv_timer_start(&job->timeout, on_timeout, job->conf->timeout_ms, 0);
    job->timeout_armed = true;
  }
  static const rn_config_t no_options;
  if (!job->options)
    job->options = &no_options;
  /* Requests run() starts belong to this run. */
  rn_job_t *previous = rn__job_enter(runner, job);
  rc = job->def->run(&plugin->ctx, plugin->state, job);
  rn__job_leave(runner, previous);
  if (rc < 0 && !job->completed) {
    snprintf(err, errlen, "%s failed to start: %s", job->qualified_name,
             rn__strerror(rc));
    /* The run never started: undo without calling done. Requests it left
     * behind against the contract still call back, into a live object. */
    job->done = NULL;
    job->completed = true;
    job->cancel_requested = true;
    cancel_requests(job);
    free_secrets(job);
    rn__list_remove(&job->link);
    plugin->live_jobs--;
    runner->running_jobs--;
    rn__generation_job_ended(plugin->gen);
    uv_close((uv_handle_t *)&job->timeout, job_closed);
    return rc;
  }
  return 0;
}

/* Results are delivered from a fresh loop turn, never from inside the
 * plugin's own call to job_complete. */
typedef struct completion_s {
  int status;
  char *result_json;
  char *summary;
} completion_t;

static void deliver(uv_timer_t *timer) {
  rn_job_t *job = rn__container_of(timer, rn_job_t, timeout);
  completion_t *c = timer->data;
  rn__runner_t *runner = job->plugin->ctx.runner;
  rn__list_remove(&job->link);
  job->plugin->live_jobs--;
  runner->running_jobs--;
  uint64_t took = uv_now(runner->loop) - job->started_ms;
  rn__log(c->status < 0 ? RN_LOG_WARNING : RN_LOG_INFO, job->qualified_name,
          "finished in %llu ms: %s", (unsigned long long)took,
          c->status < 0 ? rn__strerror(c->status) : "ok");
  free_secrets(job);
  rn__slots_job_ended(runner, job);
  rn__admin_job_finished(runner, job->conf ? job->conf->name
                                           : job->qualified_name,
                         c->status);
  if (job->done)
    job->done(job, c->status, c->result_json, c->summary, job->done_data);
  free(c->result_json);
  free(c->summary);
  free(c);
  rn__generation_job_ended(job->plugin->gen);
  uv_close((uv_handle_t *)&job->timeout, job_closed);
}

static void complete(rn_job_t *job, int status, const char *result_json,
                     const char *summary) {
  job->completed = true;
  completion_t *c = calloc(1, sizeof *c);
  if (!c)
    abort();
  c->status = status > 0 ? 0 : status;
  if (c->status == RN_EDB)
    memcpy(job->db_sqlstate, job->plugin->ctx.runner->db_sqlstate,
           sizeof job->db_sqlstate);
  c->result_json = result_json ? strdup(result_json) : NULL;
  c->summary = summary ? strdup(summary) : NULL;
  job->timeout.data = c;
  job->timeout_armed = false;
  uv_timer_stop(&job->timeout);
  uv_timer_start(&job->timeout, deliver, 0, 0);
}

/* The plugin had cancel_grace to end the run and did not: the host ends it.
 * Requests still out call back later, into this object, which lives until
 * the last of them has (and their generation with it). */
static void grace_expired(uv_timer_t *timer) {
  rn_job_t *job = rn__container_of(timer, rn_job_t, timeout);
  unsigned pending = 0;
  for (rn__list_t *n = job->reqs.next; n != &job->reqs; n = n->next)
    pending++;
  rn__log(RN_LOG_WARNING, job->qualified_name,
          "still running %llu ms after it was cancelled; the host ends it "
          "(%u request(s) still out are cancelled)",
          (unsigned long long)job->plugin->gen->config->cancel_grace_ms,
          pending);
  job->host_ended = true;
  cancel_requests(job);
  complete(job, RN_ECANCELED, NULL,
           "cancelled: the run did not end within cancel_grace");
}

void rn__job_cancel(rn_job_t *job) {
  if (job->completed || job->cancel_requested)
    return;
  job->cancel_requested = true;
  rn__runner_t *runner = job->plugin->ctx.runner;
  if (job->def->cancel) {
    /* The plugin knows its run best: it gets the grace period to wind
     * down, bookkeeping requests included. */
    rn_job_t *previous = rn__job_enter(runner, job);
    job->def->cancel(&job->plugin->ctx, job->plugin->state, job);
    rn__job_leave(runner, previous);
  } else {
    cancel_requests(job);
  }
  if (job->completed)
    return; /* the hook ended it at once */
  job->timeout_armed = false;
  uv_timer_stop(&job->timeout);
  uv_timer_start(&job->timeout, grace_expired,
                 job->plugin->gen->config->cancel_grace_ms, 0);
}

void rn__host_job_complete(rn_job_t *job, int status, const char *result_json,
                           const char *summary) {
  if (job->completed) {
    if (job->host_ended)
      rn__log(RN_LOG_INFO, job->qualified_name,
              "job_complete after the host ended the run; ignored");
    else
      rn__log(RN_LOG_ERR, job->qualified_name,
              "job_complete called twice; the second call is ignored");
    return;
  }
  complete(job, status, result_json, summary);
}

const char *rn__host_job_secret(rn_job_t *job, const char *param,
                                size_t *len) {
  for (size_t i = 0; i < job->nsecrets; i++) {
    if (strcmp(job->secrets[i].name, param) == 0) {
      if (len)
        *len = job->secrets[i].len;
      return job->secrets[i].bytes;
    }
  }
  return NULL;
}
