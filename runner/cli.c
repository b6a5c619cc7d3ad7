/* cli.c - the one binary's subcommands. Exit codes: 0 ok, 1 failure,
 * 2 usage. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "internal.h"
#include "progress.h"

#ifndef RN_VERSION
#define RN_VERSION "0.0.0"
#endif
#ifndef RN_DEFAULT_CONFIG
#define RN_DEFAULT_CONFIG "/etc/regentra-runner/runner.conf"
#endif

/* Set from --json before any command runs: failures found before a command
 * has its rn__cli_t (usage errors) are JSON too. */
static bool json_failures;

static void print_failure_json(const char *code, const char *message,
                               const char *hint) {
  if (!json_failures)
    return;
  json_t *o = json_pack("{s:s, s:s}", "error", code, "message", message);
  if (o && hint)
    json_object_set_new(o, "hint", json_string(hint));
  char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
  if (text)
    puts(text);
  free(text);
  json_decref(o);
}

static int vfail(int exit_code, const char *code, const char *hint,
                 const char *fmt, va_list ap) {
  char message[4096];
  vsnprintf(message, sizeof message, fmt, ap);
  fprintf(stderr, "regentra-runner: %s\n", message);
  if (hint)
    fprintf(stderr, "regentra-runner: hint: %s\n", hint);
  print_failure_json(code, message, hint);
  return exit_code;
}

int rn__cli_fail(int exit_code, const char *code, const char *hint,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(exit_code, code, hint, fmt, ap);
  va_end(ap);
  return exit_code;
}

int rn__cli_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(2, "usage", "see 'regentra-runner help', or GROUP --help for a "
        "plugin's commands", fmt, ap);
  va_end(ap);
  return 2;
}

/* The stable codes of --json failures, documented in README.md ("Error
 * codes"). A plugin may put a more precise code in its result. */
static const struct {
  int status;
  const char *code;
  const char *hint;
} error_codes[] = {
    {RN_EPERM, "permission_denied", NULL},
    {RN_EACCES, "permission_denied", NULL},
    {RN_ENOENT, "not_found", NULL},
    {RN_EIO, "io_error", NULL},
    {RN_ENOMEM, "out_of_memory", NULL},
    {RN_EBUSY, "busy", "another process holds it; run again shortly"},
    {RN_EEXIST, "already_exists", NULL},
    {RN_EINVAL, "invalid_argument", "see GROUP COMMAND --help for the flags"},
    {RN_ERANGE, "out_of_range", NULL},
    {RN_ENOSYS, "not_supported", NULL},
    {RN_ETIMEDOUT, "timed_out", "run again; raise the job's timeout if it "
                                "keeps happening"},
    {RN_ECANCELED, "canceled", NULL},
    {RN_EABI, "plugin_abi_mismatch", "rebuild the plugin against this "
                                     "runner's SDK"},
    {RN_ECONFIG, "config_invalid", "run 'regentra-runner check-config'"},
    {RN_EHTTP, "upstream_unavailable", "the upstream API could not be "
                                       "reached: check the network, proxy "
                                       "and base_url, then run again"},
    {RN_EDB, "database_error", NULL},
    {RN_EJSON, "bad_json", NULL},
    {RN_EAUTH, "auth_refused", "check the client id and secret and the "
                               "region they were issued for"},
    {RN_ETHROTTLED, "throttled", "the upstream rate limit was reached; run "
                                 "again later"},
    {RN_EUPSTREAM, "upstream_error", NULL},
    {RN_ETRUNCATED, "truncated", NULL},
    {RN_EPII, "pii_refused", NULL},
    {RN_ETENANT, "wrong_tenant", NULL},
    {RN_ESTATE, "invalid_state", NULL},
    {RN_ECRYPTO, "secret_unopenable", "is [runner] master_key_file the key "
                                      "the secret was sealed with?"},
};

const char *rn__cli_error_code(int status, const char **hint) {
  for (size_t i = 0; i < RN_ARRAY_SIZE(error_codes); i++)
    if (error_codes[i].status == status) {
      if (hint)
        *hint = error_codes[i].hint;
      return error_codes[i].code;
    }
  if (hint)
    *hint = NULL;
  return "failed";
}

/* A code is lower-case words joined by '_'; anything else in a result's
 * "error" is the message of a plugin that predates codes. */
static bool is_error_code(const char *s) {
  if (!s || !(*s >= 'a' && *s <= 'z'))
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
      return false;
  return true;
}

/* Loads config and plugins quietly except for errors. */
int rn__cli_load(rn__cli_t *cli, rn__runner_t *runner, uv_loop_t *loop) {
  if (uv_loop_init(loop) < 0)
    return -1;
  if (rn__runner_init(runner, loop, cli->config_path, cli->confd) < 0)
    return -1;
  runner->quiet = cli->quiet;
  return rn__runner_load(runner);
}

int rn__cli_unload(rn__runner_t *runner, uv_loop_t *loop) {
  rn__runner_close(runner);
  if (uv_loop_close(loop) != 0) {
    rn__log(RN_LOG_ERR, NULL, "internal: handles left open at exit");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------ serve */

static int cmd_serve(rn__cli_t *cli) {
  if (cli->argc > 0)
    return rn__cli_usage_error("serve takes no arguments");
  uv_loop_t loop;
  rn__runner_t runner;
  int rc = rn__cli_load(cli, &runner, &loop);
  if (rc < 0)
    return rn__cli_fail(1, "config_invalid", NULL, "cannot load %s",
                        cli->config_path);
  rc = rn__runner_serve(&runner);
  if (rn__cli_unload(&runner, &loop) < 0)
    rc = -1;
  return rc == 0 ? 0 : 1;
}

/* ----------------------------------------------------- check-config */

typedef struct run_outcome_s {
  bool done;
  int status;
  char *result_json;
  char *summary;
} run_outcome_t;

static void run_done(rn_job_t *job, int status, const char *result_json,
                     const char *summary, void *data) {
  run_outcome_t *out = data;
  (void)job;
  out->done = true;
  out->status = status;
  out->result_json = result_json ? strdup(result_json) : NULL;
  out->summary = summary ? strdup(summary) : NULL;
}

/* A plugin checks what only it can judge (a tenant's request budget
 * against the enabled schedules): its job named check_config runs with
 * {"schedules": "{\"plugin.job\": \"cron\", ...}"} of the enabled
 * scheduled jobs, and its summary is printed as is. */
static void run_plugin_checks(rn__runner_t *runner, uv_loop_t *loop) {
  rn__generation_t *gen = runner->gen;
  json_t *schedules = json_object();
  for (size_t i = 0; i < gen->njobs; i++) {
    const rn__job_conf_t *conf = gen->jobs[i].conf;
    if (!gen->jobs[i].valid || !conf->enabled || !conf->schedule)
      continue;
    char key[512];
    snprintf(key, sizeof key, "%s.%s", conf->plugin, conf->job);
    json_object_set_new(schedules, key, json_string(conf->schedule));
  }
  char *schedules_json = json_dumps(schedules, JSON_COMPACT | JSON_SORT_KEYS);
  json_t *params = json_pack("{s:s}", "schedules", schedules_json);
  char *params_json = json_dumps(params, JSON_COMPACT);
  for (size_t i = 0; params_json && i < gen->nplugins; i++) {
    rn__plugin_t *plugin = &gen->plugins[i];
    const rn_job_def_t *def = rn__plugin_job(plugin, "check_config");
    if (!def)
      continue;
    static const rn__kvs_t none;
    rn_config_t options = {0};
    run_outcome_t out = {0};
    char err[1024] = "";
    int rc = rn__options_check(gen->config, "(check-config)", 0, def->options,
                               &none, &options) > 0
                 ? RN_ECONFIG
                 : 0;
    rn__job_start_t start = {.plugin = plugin,
                             .def = def,
                             .options = &options,
                             .params_json = params_json,
                             .done = run_done,
                             .done_data = &out};
    if (rc == 0)
      rc = rn__job_start(&start, err, sizeof err);
    while (rc == 0 && !out.done && uv_run(loop, UV_RUN_ONCE))
      ;
    if (rc < 0 || !out.done || out.status < 0)
      printf("%s.check_config did not run: %s%s%s\n", plugin->name,
             err[0] ? err : rn__strerror(rc < 0 ? rc : out.status),
             out.summary ? ": " : "", out.summary ? out.summary : "");
    else if (out.summary)
      printf("%s\n", out.summary);
    rn__options_free(&options);
    free(out.result_json);
    free(out.summary);
  }
  free(params_json);
  json_decref(params);
  free(schedules_json);
  json_decref(schedules);
}

static int cmd_check_config(rn__cli_t *cli) {
  if (cli->argc > 0)
    return rn__cli_usage_error("check-config takes no arguments");
  uv_loop_t loop;
  rn__runner_t runner;
  cli->quiet = true;
  int errors = rn__cli_load(cli, &runner, &loop);
  rn__generation_t *gen = runner.gen;
  if (errors == 0 && gen) {
    size_t enabled = 0;
    for (size_t i = 0; i < gen->njobs; i++)
      enabled += gen->jobs[i].valid && gen->jobs[i].conf->enabled;
    printf("configuration ok: %s and %s: %zu plugin(s), %zu job(s), %zu "
           "enabled\n",
           cli->config_path, gen->config->confd, gen->nplugins, gen->njobs,
           enabled);
    run_plugin_checks(&runner, &loop);
  } else if (errors > 0) {
    rn__cli_fail(1, "config_invalid", "fix each error at the file:line it "
                 "names", "%d configuration error(s), the first: %s", errors,
                 gen && gen->config->nerrors ? gen->config->errors[0] : "?");
  } else {
    rn__cli_fail(1, "config_invalid", NULL, "cannot load %s",
                 cli->config_path);
  }
  rn__cli_unload(&runner, &loop);
  return errors == 0 ? 0 : 1;
}

/* ----------------------------------------------------------- plugins */

static const char *option_type_name(int type) {
  static const char *const names[] = {"?",        "string", "int",
                                      "bool",     "duration", "enum",
                                      "url",      "path",   "secret-file"};
  return type > 0 && (size_t)type < RN_ARRAY_SIZE(names) ? names[type] : "?";
}

static json_t *options_json(const rn_option_t *options) {
  json_t *list = json_array();
  for (const rn_option_t *o = options; o && o->name; o++) {
    json_t *item = json_pack("{s:s, s:s, s:b}", "name", o->name, "type",
                             option_type_name(o->type), "required",
                             (o->flags & RN_OPT_REQUIRED) != 0);
    if (o->default_value)
      json_object_set_new(item, "default", json_string(o->default_value));
    if (o->type == RN_OPT_INT && (o->min || o->max)) {
      json_object_set_new(item, "min", json_integer(o->min));
      json_object_set_new(item, "max", json_integer(o->max));
    }
    if (o->choices)
      json_object_set_new(item, "choices", json_string(o->choices));
    if (o->help)
      json_object_set_new(item, "help", json_string(o->help));
    json_array_append_new(list, item);
  }
  return list;
}

static int cmd_plugins(rn__cli_t *cli) {
  if (cli->argc > 0)
    return rn__cli_usage_error("plugins takes no arguments besides --json");
  uv_loop_t loop;
  rn__runner_t runner;
  cli->quiet = true;
  int errors = rn__cli_load(cli, &runner, &loop);
  if (errors < 0) {
    rn__cli_unload(&runner, &loop);
    return rn__cli_fail(1, "config_invalid", NULL, "cannot load %s",
                        cli->config_path);
  }
  rn__generation_t *gen = runner.gen;
  json_t *list = json_array();
  for (size_t i = 0; i < gen->nplugins; i++) {
    const rn__plugin_t *p = &gen->plugins[i];
    const rn_plugin_t *d = p->desc;
    json_t *jobs = json_array();
    for (size_t k = 0; d->jobs[k]; k++) {
      const rn_job_def_t *j = d->jobs[k];
      json_t *job = json_pack(
          "{s:s, s:s, s:o, s:o}", "name", j->name, "summary",
          j->summary ? j->summary : "", "options",
          options_json(rn__schema_of(p, j, RN__SCHEMA_OPTIONS)), "params",
          options_json(rn__schema_of(p, j, RN__SCHEMA_PARAMS)));
      if (j->command && d->command_group)
        json_object_set_new(job, "command",
                            json_sprintf("%s %s", d->command_group,
                                         j->command));
      json_array_append_new(jobs, job);
    }
    json_t *item =
        json_pack("{s:s, s:s, s:o, s:s, s:o, s:o}", "name", d->name,
                  "version", d->version ? d->version : "", "abi",
                  json_sprintf("%u.%u", RN_ABI_MAJOR_OF(d->abi_version),
                               RN_ABI_MINOR_OF(d->abi_version)),
                  "path", gen->plugins[i].source_path, "options",
                  options_json(rn__schema_of(p, NULL, RN__SCHEMA_PLUGIN)),
                  "jobs", jobs);
    /* The keys of its shared [source "name"] section. */
    if (p->source)
      json_object_set_new(
          item, "source",
          json_pack("{s:s, s:o}", "name", p->source, "options",
                    options_json(rn__schema_of(p, NULL, RN__SCHEMA_SOURCE))));
    json_array_append_new(list, item);
  }
  if (cli->json) {
    char *text = json_dumps(list, JSON_INDENT(2));
    puts(text);
    free(text);
  } else {
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) {
      printf("%s %s (ABI %s) %s\n",
             json_string_value(json_object_get(p, "name")),
             json_string_value(json_object_get(p, "version")),
             json_string_value(json_object_get(p, "abi")),
             json_string_value(json_object_get(p, "path")));
      size_t k;
      json_t *j;
      json_array_foreach(json_object_get(p, "jobs"), k, j) {
        const char *command = json_string_value(json_object_get(j, "command"));
        printf("  %-24s %s%s%s%s\n", json_string_value(json_object_get(j, "name")),
               json_string_value(json_object_get(j, "summary")),
               command ? " [regentra-runner " : "", command ? command : "",
               command ? "]" : "");
      }
    }
    if (json_array_size(list) == 0)
      printf("no plugins loaded from %s\n", gen->config->plugin_dir);
  }
  json_decref(list);
  rn__cli_unload(&runner, &loop);
  return 0;
}

/* --------------------------------------------------------------- run */

/* Runs plugin.job once in this process with the given params and prints
 * its result: JSON with --json (or for `run`), the summary otherwise. */
int rn__cli_run_job(rn__cli_t *cli, const char *plugin_name,
                    const char *job_name, const char *params_json,
                    bool prefer_json) {
  uv_loop_t loop;
  rn__runner_t runner;
  int errors = rn__cli_load(cli, &runner, &loop);
  if (errors < 0) {
    rn__cli_unload(&runner, &loop);
    return rn__cli_fail(1, "config_invalid", NULL, "cannot load %s",
                        cli->config_path);
  }
  int exit_code = 1;
  rn__generation_t *gen = runner.gen;
  rn__plugin_t *plugin = rn__generation_plugin(gen, plugin_name);
  const rn_job_def_t *def = plugin ? rn__plugin_job(plugin, job_name) : NULL;
  rn_config_t adhoc = {0};
  run_outcome_t out = {0};
  if (!def) {
    rn__cli_fail(1, "unknown_job", "see 'regentra-runner plugins'",
                 "no job %s.%s (%s)%s%s", plugin_name, job_name,
                 plugin ? "the plugin has no such job"
                        : "no such plugin loaded",
                 gen->config->nerrors ? "; configuration: " : "",
                 gen->config->nerrors ? gen->config->errors[0] : "");
    goto done;
  }
  /* Options come from a configured job of the same plugin.job, if any. */
  const rn_config_t *options = NULL;
  const rn__job_conf_t *conf = NULL;
  for (size_t i = 0; i < gen->njobs; i++) {
    rn__gen_job_t *j = &gen->jobs[i];
    if (j->valid && j->plugin == plugin && j->def == def) {
      options = &j->options;
      conf = j->conf;
      break;
    }
  }
  if (!options) {
    static const rn__kvs_t none;
    size_t before = gen->config->nerrors;
    if (rn__options_check(gen->config, "(command line)", 0,
                          rn__schema_of(plugin, def, RN__SCHEMA_OPTIONS), &none,
                          &adhoc) > 0) {
      rn__cli_fail(1, "config_invalid", "configure a [job] for this job in "
                   "conf.d to set its options",
                   "%s.%s needs options: %s", plugin_name, job_name,
                   before < gen->config->nerrors ? gen->config->errors[before]
                                                 : "?");
      goto done;
    }
    options = &adhoc;
  }
  char err[1024];
  rn__job_start_t start = {.plugin = plugin, .def = def, .conf = conf,
                           .options = options, .params_json = params_json,
                           .done = run_done, .done_data = &out};
  /* A person at a terminal sees how far it has got; JSON readers and
   * pipes get nothing extra. */
  if (!cli->json && !cli->no_progress)
    rn__progress_start(&runner);
  int start_rc = rn__job_start(&start, err, sizeof err);
  if (start_rc < 0) {
    const char *hint;
    const char *code = rn__cli_error_code(start_rc, &hint);
    rn__cli_fail(1, code, hint, "%s", err);
    goto done;
  }
  while (!out.done && uv_run(&loop, UV_RUN_ONCE))
    ;
  rn__progress_stop();
  if (!out.done) {
    rn__cli_fail(1, "internal", NULL, "%s.%s never completed", plugin_name,
                 job_name);
    goto done;
  }
  /* A failure's text: what the job said, after the status it ended with. */
  char message[8192], status_text[RN__HTTP_FAILURE_LEN + 64];
  const char *transport = out.status == RN_EHTTP || out.status == RN_ETIMEDOUT
                              ? rn__http_last_failure(&runner)
                              : NULL;
  /* The plugin saw only the status; curl's words say which failure it was. */
  snprintf(status_text, sizeof status_text, "%s%s%s%s",
           rn__strerror(out.status), transport ? " (last: " : "",
           transport ? transport : "", transport ? ")" : "");
  snprintf(message, sizeof message, "%s.%s failed: %s%s%s", plugin_name,
           job_name, status_text, out.summary ? ": " : "",
           out.summary ? out.summary : "");
  json_t *result = out.result_json ? json_loads(out.result_json, 0, NULL)
                                   : json_object();
  if (!json_is_object(result)) {
    json_decref(result);
    result = json_pack("{s:s}", "raw", out.result_json);
  }
  const char *hint = NULL;
  if (out.status < 0) {
    /* {"error": code, "message": everything the text says, "hint"} */
    const char *code = json_string_value(json_object_get(result, "error"));
    const char *default_hint;
    const char *default_code = rn__cli_error_code(out.status, &default_hint);
    if (!is_error_code(code))
      code = default_code;
    json_t *plugin_hint = json_object_get(result, "hint");
    json_object_set_new(result, "hint",
                        json_is_string(plugin_hint)
                            ? json_incref(plugin_hint)
                            : default_hint ? json_string(default_hint)
                                           : json_null());
    json_object_set_new(result, "error", json_string(code));
    json_object_set_new(result, "message", json_string(message));
    if (json_is_null(json_object_get(result, "hint")))
      json_object_del(result, "hint");
    hint = json_string_value(json_object_get(result, "hint"));
  }
  if (prefer_json || cli->json) {
    char *text = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
    puts(text);
    free(text);
  }
  if (!(prefer_json || cli->json) && out.status >= 0 && out.summary)
    printf("%s\n", out.summary);
  if (out.status < 0) {
    fprintf(stderr, "regentra-runner: %s\n", message);
    if (hint)
      fprintf(stderr, "regentra-runner: hint: %s\n", hint);
  }
  json_decref(result);
  exit_code = out.status < 0 ? 1 : 0;
done:
  rn__progress_stop();
  rn__options_free(&adhoc);
  free(out.result_json);
  free(out.summary);
  rn__cli_unload(&runner, &loop);
  return exit_code;
}

static int cmd_run(rn__cli_t *cli) {
  if (cli->argc < 1)
    return rn__cli_usage_error("run needs PLUGIN.JOB");
  const char *target = cli->argv[0];
  const char *dot = strchr(target, '.');
  if (!dot || dot == target || !dot[1])
    return rn__cli_usage_error("run: \"%s\" is not PLUGIN.JOB", target);
  json_t *params = json_object();
  for (int i = 1; i < cli->argc; i++) {
    const char *eq = strchr(cli->argv[i], '=');
    if (!eq || eq == cli->argv[i]) {
      json_decref(params);
      return rn__cli_usage_error("run: \"%s\" is not key=value", cli->argv[i]);
    }
    char *key = strndup(cli->argv[i], (size_t)(eq - cli->argv[i]));
    json_object_set_new(params, key, json_string(eq + 1));
    free(key);
  }
  char *params_json = json_dumps(params, JSON_COMPACT);
  json_decref(params);
  char *plugin = strndup(target, (size_t)(dot - target));
  int rc = rn__cli_run_job(cli, plugin, dot + 1, params_json, true);
  free(plugin);
  free(params_json);
  return rc;
}

/* ------------------------------------------- plugin-registered commands */

/* The plugins of a directory, loaded only to read their descriptors: help
 * needs no configuration, database or create(). */
typedef struct plugin_shelf_s {
  char state_dir[4096]; /* private copies are dlopen()ed from here */
  rn__plugin_t *plugins;
  size_t n;
  char dir[4096];
} plugin_shelf_t;

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void shelf_close(plugin_shelf_t *shelf) {
  for (size_t i = 0; i < shelf->n; i++)
    rn__plugin_unload(&shelf->plugins[i]);
  free(shelf->plugins);
  if (shelf->state_dir[0])
    rmdir(shelf->state_dir);
  memset(shelf, 0, sizeof *shelf);
}

/* --plugin-dir, else plugin_dir of runner.conf when it can be read, else
 * the built-in default. Plugins that refuse to load are skipped quietly:
 * `plugins` and check-config are where refusals are explained. */
static int shelf_open(const rn__cli_t *cli, plugin_shelf_t *shelf) {
  memset(shelf, 0, sizeof *shelf);
  if (cli->plugin_dir) {
    snprintf(shelf->dir, sizeof shelf->dir, "%s", cli->plugin_dir);
  } else {
    rn__config_t *config = rn__config_load(cli->config_path, cli->confd);
    if (!config)
      return RN_ENOMEM;
    snprintf(shelf->dir, sizeof shelf->dir, "%s", config->plugin_dir);
    rn__config_free(config);
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(shelf->state_dir, sizeof shelf->state_dir,
           "%s/regentra-help-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(shelf->state_dir)) {
    shelf->state_dir[0] = '\0';
    return RN_EIO;
  }
  DIR *d = opendir(shelf->dir);
  if (!d)
    return RN_ENOENT;
  char **names = NULL;
  size_t count = 0;
  for (struct dirent *e; (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
      continue;
    char **grown = realloc(names, (count + 1) * sizeof *grown);
    if (!grown)
      break;
    names = grown;
    if ((names[count] = strdup(e->d_name)))
      count++;
  }
  closedir(d);
  qsort(names, count, sizeof *names, compare_strings);
  shelf->plugins = calloc(count ? count : 1, sizeof *shelf->plugins);
  for (size_t i = 0; i < count; i++) {
    char path[8192], err[1024];
    snprintf(path, sizeof path, "%s/%s", shelf->dir, names[i]);
    free(names[i]);
    if (shelf->plugins &&
        rn__plugin_load(path, shelf->state_dir, &shelf->plugins[shelf->n],
                        err, sizeof err) == 0)
      shelf->n++;
  }
  free(names);
  return shelf->plugins ? 0 : RN_ENOMEM;
}

static bool in_group(const rn_plugin_t *d, const char *group) {
  return RN__DESC_HAS(d, rn_plugin_t, command_group) && d->command_group &&
         strcmp(d->command_group, group) == 0;
}

static const rn_job_def_t *group_job(const plugin_shelf_t *shelf,
                                     const char *group, const char *command,
                                     const rn__plugin_t **owner) {
  for (size_t i = 0; i < shelf->n; i++) {
    const rn_plugin_t *d = shelf->plugins[i].desc;
    if (!in_group(d, group))
      continue;
    for (size_t k = 0; d->jobs[k]; k++)
      if (d->jobs[k]->command && strcmp(d->jobs[k]->command, command) == 0) {
        if (owner)
          *owner = &shelf->plugins[i];
        return d->jobs[k];
      }
  }
  return NULL;
}

static const char *flag_value_name(const rn_option_t *o) {
  switch (o->type) {
  case RN_OPT_INT:
    return " N";
  case RN_OPT_BOOL:
    return "";
  case RN_OPT_DURATION:
    return " DURATION";
  case RN_OPT_ENUM:
    return NULL; /* the choices themselves */
  case RN_OPT_URL:
    return " URL";
  case RN_OPT_PATH:
    return " PATH";
  case RN_OPT_SECRET_FILE:
    return " FILE|-";
  default:
    return " TEXT";
  }
}

/* "--max-attempts" for the option name "max_attempts"; returns its length. */
static int flag_of(const char *name, char *flag, size_t len) {
  int n = snprintf(flag, len, "--%s", name);
  for (int i = 2; i < n && (size_t)i < len; i++)
    if (flag[i] == '_')
      flag[i] = '-';
  return n;
}

bool rn__cli_flag_is(const char *arg, const char *name) {
  if (strncmp(arg, "--", 2) != 0)
    return false;
  arg += 2;
  for (; *arg && *name; arg++, name++)
    if (*arg != (*name == '_' ? '-' : *name))
      return false;
  return !*arg && !*name;
}

/* The shape of `plugins --json` options, each led by its "flag". */
static json_t *flags_json(const rn_option_t *options) {
  json_t *options_list = options_json(options);
  json_t *list = json_array();
  size_t i;
  json_t *option;
  json_array_foreach(options_list, i, option) {
    char flag[256];
    flag_of(json_string_value(json_object_get(option, "name")), flag,
            sizeof flag);
    json_t *item = json_pack("{s:s}", "flag", flag);
    json_object_update(item, option);
    json_array_append_new(list, item);
  }
  json_decref(options_list);
  return list;
}

static void print_flags(const rn__plugin_t *plugin, const rn_job_def_t *job,
                        const char *indent) {
  const rn_option_t *params = rn__schema_of(plugin, job, RN__SCHEMA_PARAMS);
  if (!params || !params->name)
    printf("%s(no flags)\n", indent);
  for (const rn_option_t *o = params; o && o->name; o++) {
    char flag[256];
    const char *value = flag_value_name(o);
    int n = flag_of(o->name, flag, sizeof flag);
    snprintf(flag + n, sizeof flag - (size_t)n, "%s%s", value ? value : " ",
             value ? "" : o->choices ? o->choices : "WORD");
    printf("%s%-28s %s%s%s%s%s\n", indent, flag,
           o->flags & RN_OPT_REQUIRED ? "(required) " : "",
           o->help ? o->help : "", o->default_value ? " [default: " : "",
           o->default_value ? o->default_value : "",
           o->default_value ? "]" : "");
  }
}

static void print_command_help(const char *group, const rn__plugin_t *owner,
                               const rn_job_def_t *job) {
  printf("usage: regentra-runner %s %s [flags] [-c runner.conf] [--json]\n\n"
         "%s\n(job %s.%s)\n\nflags:\n",
         group, job->command, job->summary ? job->summary : "", owner->name,
         job->name);
  print_flags(owner, job, "  ");
}

/* `GROUP COMMAND --help --json`: what print_command_help says. */
static json_t *command_help_json(const char *group, const rn__plugin_t *owner,
                                 const rn_job_def_t *job) {
  json_t *o = json_object();
  json_object_set_new(o, "command", json_sprintf("%s %s", group, job->command));
  json_object_set_new(o, "group", json_string(group));
  json_object_set_new(
      o, "usage",
      json_sprintf("regentra-runner %s %s [flags] [-c runner.conf] [--json]",
                   group, job->command));
  json_object_set_new(o, "summary",
                      json_string(job->summary ? job->summary : ""));
  json_object_set_new(o, "job", json_sprintf("%s.%s", owner->name, job->name));
  json_object_set_new(o, "flags",
                      flags_json(rn__schema_of(owner, job, RN__SCHEMA_PARAMS)));
  return o;
}

/* Every command of a group, with its flags. */
static json_t *group_help_json(const plugin_shelf_t *shelf, const char *group) {
  json_t *commands = json_array();
  for (size_t i = 0; i < shelf->n; i++) {
    const rn_plugin_t *d = shelf->plugins[i].desc;
    if (!in_group(d, group))
      continue;
    for (size_t k = 0; d->jobs[k]; k++)
      if (d->jobs[k]->command)
        json_array_append_new(
            commands, command_help_json(group, &shelf->plugins[i], d->jobs[k]));
  }
  json_t *o = json_object();
  json_object_set_new(o, "group", json_string(group));
  json_object_set_new(
      o, "usage",
      json_sprintf("regentra-runner %s COMMAND [flags] [-c runner.conf] "
                   "[--json]",
                   group));
  json_object_set_new(o, "plugin_dir", json_string(shelf->dir));
  json_object_set_new(o, "commands", commands);
  return o;
}

/* Prints a description (and frees it); 1 when it could not be built. */
static int print_help_json(json_t *description) {
  char *text = description ? json_dumps(description, JSON_INDENT(2)) : NULL;
  json_decref(description);
  if (!text)
    return rn__cli_fail(1, "out_of_memory", NULL,
                        "cannot describe the command");
  printf("%s\n", text);
  free(text);
  return 0;
}

/* `GROUP --help`, `help GROUP` and `GROUP COMMAND --help`: describe, never
 * run. Works without a configuration file. */
static int group_help(rn__cli_t *cli, const char *group, const char *command) {
  plugin_shelf_t shelf;
  int rc = shelf_open(cli, &shelf);
  if (rc < 0 && rc != RN_ENOENT) {
    shelf_close(&shelf);
    return rn__cli_fail(1, rn__cli_error_code(rc, NULL), NULL,
                        "cannot read the plugins of %s: %s", shelf.dir,
                        rn__strerror(rc));
  }
  int exit_code = 0;
  const rn__plugin_t *owner = NULL;
  const rn_job_def_t *job =
      command ? group_job(&shelf, group, command, &owner) : NULL;
  bool any = false;
  for (size_t i = 0; i < shelf.n && !any; i++)
    any = in_group(shelf.plugins[i].desc, group);
  if (!any) {
    exit_code = rn__cli_usage_error(
        "unknown command \"%s\": no plugin in %s has that command group "
        "(give the directory with --plugin-dir or -c runner.conf)",
        group, shelf.dir);
  } else if (command && !job) {
    exit_code = rn__cli_usage_error(
        "unknown command \"%s %s\" (see 'regentra-runner %s --help')", group,
        command, group);
  } else if (cli->json) {
    exit_code = print_help_json(job ? command_help_json(group, owner, job)
                                    : group_help_json(&shelf, group));
  } else if (job) {
    print_command_help(group, owner, job);
  } else {
    printf("usage: regentra-runner %s COMMAND [flags] [-c runner.conf] "
           "[--json]\n\ncommands (plugins in %s):\n",
           group, shelf.dir);
    for (size_t i = 0; i < shelf.n; i++) {
      const rn_plugin_t *d = shelf.plugins[i].desc;
      if (!in_group(d, group))
        continue;
      for (size_t k = 0; d->jobs[k]; k++) {
        if (!d->jobs[k]->command)
          continue;
        printf("\n  %-16s %s\n", d->jobs[k]->command,
               d->jobs[k]->summary ? d->jobs[k]->summary : "");
        print_flags(&shelf.plugins[i], d->jobs[k], "      ");
      }
    }
    printf("\n'regentra-runner %s COMMAND --help' shows one command.\n",
           group);
  }
  shelf_close(&shelf);
  return exit_code;
}

/* `regentra-runner GROUP COMMAND --some-param V ...` runs the job whose
 * command is COMMAND in the plugin whose command_group is GROUP. */
static int cmd_plugin_group(rn__cli_t *cli, const char *group) {
  if (cli->help)
    return group_help(cli, group, cli->argc > 0 ? cli->argv[0] : NULL);
  if (cli->argc < 1)
    return rn__cli_usage_error("%s needs a command (see 'regentra-runner %s "
                               "--help')", group, group);
  uv_loop_t loop;
  rn__runner_t runner;
  cli->quiet = true;
  if (rn__cli_load(cli, &runner, &loop) < 0) {
    rn__cli_unload(&runner, &loop);
    return rn__cli_fail(1, "config_invalid", NULL, "cannot load %s",
                        cli->config_path);
  }
  char *plugin_name = NULL, *job_name = NULL;
  rn__generation_t *gen = runner.gen;
  for (size_t i = 0; gen && i < gen->nplugins && !job_name; i++) {
    const rn_plugin_t *d = gen->plugins[i].desc;
    if (!d->command_group || strcmp(d->command_group, group) != 0)
      continue;
    for (size_t k = 0; d->jobs[k]; k++) {
      if (d->jobs[k]->command && strcmp(d->jobs[k]->command, cli->argv[0]) == 0) {
        plugin_name = strdup(d->name);
        job_name = strdup(d->jobs[k]->name);
        break;
      }
    }
  }
  char config_error[1024] = "";
  if (!job_name && gen && gen->config->nerrors)
    snprintf(config_error, sizeof config_error, "%s", gen->config->errors[0]);
  rn__cli_unload(&runner, &loop);
  if (!job_name && config_error[0])
    return rn__cli_fail(1, "config_invalid",
                        "run 'regentra-runner check-config'; 'regentra-runner "
                        "GROUP --help' works without a configuration",
                        "unknown command \"%s %s\" while the configuration "
                        "has errors: %s",
                        group, cli->argv[0], config_error);
  if (!job_name)
    return rn__cli_usage_error("unknown command \"%s %s\"", group,
                               cli->argv[0]);
  json_t *params = json_object();
  int rc = 0;
  for (int i = 1; i < cli->argc; i++) {
    const char *arg = cli->argv[i];
    if (strncmp(arg, "--", 2) != 0 || !arg[2]) {
      rc = rn__cli_usage_error("%s %s: unexpected argument \"%s\"", group,
                               cli->argv[0], arg);
      break;
    }
    char *key = strdup(arg + 2);
    for (char *c = key; *c; c++)
      if (*c == '-')
        *c = '_';
    /* A flag followed by another flag (or nothing) is a boolean switch. */
    if (i + 1 < cli->argc && strncmp(cli->argv[i + 1], "--", 2) != 0) {
      json_object_set_new(params, key, json_string(cli->argv[++i]));
    } else {
      json_object_set_new(params, key, json_string("true"));
    }
    free(key);
  }
  if (rc == 0) {
    char *params_json = json_dumps(params, JSON_COMPACT);
    rc = rn__cli_run_job(cli, plugin_name, job_name, params_json, false);
    free(params_json);
  }
  json_decref(params);
  free(plugin_name);
  free(job_name);
  return rc;
}

/* ------------------------------------------------------- version, help */

static int cmd_version(rn__cli_t *cli) {
  (void)cli;
  printf("regentra-runner %s (plugin ABI %d.%d)\n", RN_VERSION, RN_ABI_MAJOR,
         RN_ABI_MINOR);
  return 0;
}

static int cmd_help(rn__cli_t *cli);

static const rn__cli_command_t builtin_commands[] = {
    {"serve", cmd_serve, "",
     "run the daemon: cron, reload on SIGHUP, drain on SIGTERM", NULL},
    {"check-config", cmd_check_config, "",
     "validate runner.conf, conf.d and plugins; exit 1 on any error", NULL},
    {"plugins", cmd_plugins, "[--json]",
     "list loaded plugins, versions, ABI and jobs", NULL},
    {"run", cmd_run, "PLUGIN.JOB [key=value ...]",
     "run one job now in this process and print its JSON result", NULL},
    {"version", cmd_version, "", "print the version and plugin ABI", NULL},
    {"help", cmd_help, "[GROUP [COMMAND]]",
     "this text, or a plugin group's commands", NULL},
};

/* The flags every command takes. */
static const struct global_flag_s {
  const char *flag;
  const char *alias; /* NULL = none */
  const char *value; /* what follows the flag; NULL = a switch */
  const char *type;  /* as in `plugins --json` */
  const char *help;
} global_flags[] = {
    {"-c", NULL, "FILE", "path",
     "runner configuration (default " RN_DEFAULT_CONFIG ")"},
    {"-d", NULL, "DIR", "path",
     "job configuration directory (default: conf.d beside it)"},
    {"--json", NULL, NULL, "bool",
     "machine-readable output; a failure is one object {error, message, "
     "hint}; with --help, the description"},
    {"--quiet", "-q", NULL, "bool",
     "errors only: no live progress on a terminal"},
    {"--plugin-dir", NULL, "DIR", "path",
     "where help looks for plugins (default: plugin_dir of runner.conf)"},
    {"--help", "-h", NULL, "bool",
     "'GROUP --help', 'help GROUP' and 'GROUP COMMAND --help' list a plugin "
     "group's commands and flags; nothing runs"},
};

static json_t *global_flags_json(void) {
  json_t *list = json_array();
  for (size_t i = 0; i < RN_ARRAY_SIZE(global_flags); i++) {
    const struct global_flag_s *g = &global_flags[i];
    json_t *item = json_pack("{s:s, s:s, s:b, s:s}", "flag", g->flag, "type",
                             g->type, "required", 0, "help", g->help);
    if (g->alias)
      json_object_set_new(item, "alias", json_string(g->alias));
    if (g->value)
      json_object_set_new(item, "value", json_string(g->value));
    json_array_append_new(list, item);
  }
  return list;
}

/* `COMMAND --help --json` and `help COMMAND --json` for a command of the
 * binary (not of a plugin group). */
static json_t *builtin_help_json(const rn__cli_command_t *c) {
  json_t *o = json_object();
  json_object_set_new(o, "command", json_string(c->name));
  json_object_set_new(o, "usage",
                      json_sprintf("regentra-runner %s%s%s [-c runner.conf]",
                                   c->name, *c->usage ? " " : "", c->usage));
  json_object_set_new(o, "summary", json_string(c->help));
  json_object_set_new(o, "flags", flags_json(c->flags));
  json_object_set_new(o, "global_flags", global_flags_json());
  return o;
}

/* `help --json`: every command of the binary, and those of the plugin
 * groups found as `GROUP --help` finds them (none when there are none). */
static json_t *general_help_json(const rn__cli_t *cli) {
  json_t *commands = json_array();
  for (size_t i = 0; i < RN_ARRAY_SIZE(builtin_commands); i++) {
    json_t *c = builtin_help_json(&builtin_commands[i]);
    json_object_del(c, "global_flags");
    json_array_append_new(commands, c);
  }
  for (const rn__cli_command_t *e = rn__cli_extra_commands; e && e->name; e++) {
    json_t *c = builtin_help_json(e);
    json_object_del(c, "global_flags");
    json_array_append_new(commands, c);
  }
  json_t *groups = json_array();
  plugin_shelf_t shelf;
  if (shelf_open(cli, &shelf) == 0) {
    for (size_t i = 0; i < shelf.n; i++) {
      const rn_plugin_t *d = shelf.plugins[i].desc;
      if (!RN__DESC_HAS(d, rn_plugin_t, command_group) || !d->command_group)
        continue;
      bool seen = false; /* a group of several plugins, listed once */
      for (size_t k = 0; k < i && !seen; k++)
        seen = in_group(shelf.plugins[k].desc, d->command_group);
      if (!seen)
        json_array_append_new(groups,
                              group_help_json(&shelf, d->command_group));
    }
  }
  shelf_close(&shelf);
  json_t *o = json_object();
  json_object_set_new(o, "usage",
                      json_string("regentra-runner COMMAND [-c runner.conf] "
                                  "[-d conf.d] [--json] [args]"));
  json_object_set_new(o, "commands", commands);
  json_object_set_new(o, "groups", groups);
  json_object_set_new(o, "global_flags", global_flags_json());
  return o;
}

static const rn__cli_command_t *find_command(const char *name) {
  for (size_t i = 0; i < RN_ARRAY_SIZE(builtin_commands); i++)
    if (strcmp(builtin_commands[i].name, name) == 0)
      return &builtin_commands[i];
  for (const rn__cli_command_t *c = rn__cli_extra_commands; c && c->name; c++)
    if (strcmp(c->name, name) == 0)
      return c;
  return NULL;
}

/* `help [COMMAND]`, and COMMAND --help for a command of the binary. */
static int describe(rn__cli_t *cli, const rn__cli_command_t *command) {
  if (cli->json)
    return print_help_json(command ? builtin_help_json(command)
                                   : general_help_json(cli));
  printf("usage: regentra-runner COMMAND [-c runner.conf] [-d conf.d] "
         "[--json] [args]\n\ncommands:\n");
  for (size_t i = 0; i < RN_ARRAY_SIZE(builtin_commands); i++)
    printf("  %-14s %-28s %s\n", builtin_commands[i].name,
           builtin_commands[i].usage, builtin_commands[i].help);
  for (const rn__cli_command_t *c = rn__cli_extra_commands; c && c->name; c++)
    printf("  %-14s %-28s %s\n", c->name, c->usage, c->help);
  printf("  GROUP COMMAND  --param value ...            operator commands "
         "of plugins (see 'plugins')\n\n");
  for (size_t i = 0; i < RN_ARRAY_SIZE(global_flags); i++) {
    const struct global_flag_s *g = &global_flags[i];
    char flag[64];
    snprintf(flag, sizeof flag, "%s%s%s%s%s", g->alias ? g->alias : "",
             g->alias ? ", " : "", g->flag, g->value ? " " : "",
             g->value ? g->value : "");
    printf("%-17s %s\n", flag, g->help);
  }
  printf("REGENTRA_DATABASE_URL overrides [database] url.\n");
  return 0;
}

static int cmd_help(rn__cli_t *cli) {
  if (cli->argc > 0 && strcmp(cli->argv[0], "help") != 0) {
    const rn__cli_command_t *command = find_command(cli->argv[0]);
    if (command)
      return describe(cli, command);
    return group_help(cli, cli->argv[0], cli->argc > 1 ? cli->argv[1] : NULL);
  }
  return describe(cli, NULL);
}

int rn__cli_main(int argc, char **argv) {
  rn__cli_t cli = {.config_path = RN_DEFAULT_CONFIG};
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (!rest)
    return 1;
  const char *command = NULL;
  int nrest = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-c") == 0 || strcmp(a, "-d") == 0) {
      if (i + 1 >= argc) {
        free(rest);
        return rn__cli_usage_error("%s needs a value", a);
      }
      if (a[1] == 'c')
        cli.config_path = argv[++i];
      else
        cli.confd = argv[++i];
    } else if (strcmp(a, "--plugin-dir") == 0) {
      if (i + 1 >= argc) {
        free(rest);
        return rn__cli_usage_error("%s needs a value", a);
      }
      cli.plugin_dir = argv[++i];
    } else if (strcmp(a, "--json") == 0) {
      cli.json = json_failures = true;
    } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      cli.quiet = cli.no_progress = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      cli.help = true;
    } else if (!command) {
      command = a;
    } else {
      rest[nrest++] = argv[i];
    }
  }
  cli.argc = nrest;
  cli.argv = rest;
  int rc;
  if (!command && cli.help)
    command = "help";
  if (!command) {
    rc = rn__cli_usage_error("no command given");
    free(rest);
    return rc;
  }
  const rn__cli_command_t *known = find_command(command);
  if (known) {
    /* --help describes a command; it never runs it. `help --help` and
     * `help X --help` are help itself. */
    if (cli.help && known->run != cmd_help)
      rc = describe(&cli, known);
    else
      rc = known->run(&cli);
    free(rest);
    return rc;
  }
  if (command[0] == '-')
    rc = rn__cli_usage_error("unknown option \"%s\"", command);
  else
    rc = cmd_plugin_group(&cli, command);
  free(rest);
  return rc;
}
