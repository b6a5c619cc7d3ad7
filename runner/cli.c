/* cli.c - the one binary's subcommands. Exit codes: 0 ok, 1 failure,
 * 2 usage. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "internal.h"

#ifndef RN_VERSION
#define RN_VERSION "0.0.0"
#endif
#ifndef RN_DEFAULT_CONFIG
#define RN_DEFAULT_CONFIG "/etc/regentra-runner/runner.conf"
#endif

int rn__cli_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("regentra-runner: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see 'regentra-runner help')\n", stderr);
  va_end(ap);
  return 2;
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
  if (rc < 0) {
    fprintf(stderr, "regentra-runner: cannot load %s\n", cli->config_path);
    return 1;
  }
  rc = rn__runner_serve(&runner);
  if (rn__cli_unload(&runner, &loop) < 0)
    rc = -1;
  return rc == 0 ? 0 : 1;
}

/* ----------------------------------------------------- check-config */

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
  } else if (errors > 0) {
    fprintf(stderr, "regentra-runner: %d configuration error(s)\n", errors);
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
    return 1;
  }
  rn__generation_t *gen = runner.gen;
  json_t *list = json_array();
  for (size_t i = 0; i < gen->nplugins; i++) {
    const rn_plugin_t *d = gen->plugins[i].desc;
    json_t *jobs = json_array();
    for (size_t k = 0; d->jobs[k]; k++) {
      const rn_job_def_t *j = d->jobs[k];
      json_t *job = json_pack("{s:s, s:s, s:o, s:o}", "name", j->name,
                              "summary", j->summary ? j->summary : "",
                              "options", options_json(j->options), "params",
                              options_json(j->params));
      if (j->command && d->command_group)
        json_object_set_new(job, "command",
                            json_sprintf("%s %s", d->command_group,
                                         j->command));
      json_array_append_new(jobs, job);
    }
    json_array_append_new(
        list, json_pack("{s:s, s:s, s:o, s:s, s:o, s:o}", "name", d->name,
                        "version", d->version ? d->version : "", "abi",
                        json_sprintf("%u.%u", RN_ABI_MAJOR_OF(d->abi_version),
                                     RN_ABI_MINOR_OF(d->abi_version)),
                        "path", gen->plugins[i].source_path, "options",
                        options_json(d->options), "jobs", jobs));
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
    return 1;
  }
  int exit_code = 1;
  rn__generation_t *gen = runner.gen;
  rn__plugin_t *plugin = rn__generation_plugin(gen, plugin_name);
  const rn_job_def_t *def = plugin ? rn__plugin_job(plugin, job_name) : NULL;
  rn_config_t adhoc = {0};
  run_outcome_t out = {0};
  if (!def) {
    fprintf(stderr, "regentra-runner: no job %s.%s (%s)\n", plugin_name,
            job_name, plugin ? "the plugin has no such job"
                             : "no such plugin loaded; see 'plugins'");
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
    if (rn__options_check(gen->config, "(command line)", 0, def->options,
                          &none, &adhoc) > 0) {
      for (size_t i = before; i < gen->config->nerrors; i++)
        fprintf(stderr, "regentra-runner: %s\n", gen->config->errors[i]);
      fprintf(stderr, "regentra-runner: configure a [job] for %s.%s in "
              "conf.d to set its options\n", plugin_name, job_name);
      goto done;
    }
    options = &adhoc;
  }
  char err[1024];
  rn__job_start_t start = {.plugin = plugin, .def = def, .conf = conf,
                           .options = options, .params_json = params_json,
                           .done = run_done, .done_data = &out};
  if (rn__job_start(&start, err, sizeof err) < 0) {
    fprintf(stderr, "regentra-runner: %s\n", err);
    exit_code = 1;
    goto done;
  }
  while (!out.done && uv_run(&loop, UV_RUN_ONCE))
    ;
  if (!out.done) {
    fprintf(stderr, "regentra-runner: %s.%s never completed\n", plugin_name,
            job_name);
    goto done;
  }
  if (prefer_json || cli->json) {
    json_t *result = out.result_json ? json_loads(out.result_json, 0, NULL)
                                     : json_object();
    if (!result)
      result = json_pack("{s:s}", "raw", out.result_json);
    /* A result naming its own error (a code with a message) keeps it. */
    if (out.status < 0 &&
        !json_is_string(json_object_get(result, "message")))
      json_object_set_new(result, "error",
                          json_string(rn__strerror(out.status)));
    char *text = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
    puts(text);
    free(text);
    json_decref(result);
  }
  if (!(prefer_json || cli->json) && out.summary)
    printf("%s\n", out.summary);
  if (out.status < 0)
    fprintf(stderr, "regentra-runner: %s.%s failed: %s%s%s\n", plugin_name,
            job_name, rn__strerror(out.status),
            out.summary && (prefer_json || cli->json) ? ": " : "",
            out.summary && (prefer_json || cli->json) ? out.summary : "");
  exit_code = out.status < 0 ? 1 : 0;
done:
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

/* `regentra-runner GROUP COMMAND --some-param V ...` runs the job whose
 * command is COMMAND in the plugin whose command_group is GROUP. */
static int cmd_plugin_group(rn__cli_t *cli, const char *group) {
  if (cli->argc < 1)
    return rn__cli_usage_error("%s needs a command", group);
  uv_loop_t loop;
  rn__runner_t runner;
  cli->quiet = true;
  if (rn__cli_load(cli, &runner, &loop) < 0) {
    rn__cli_unload(&runner, &loop);
    return 1;
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
  rn__cli_unload(&runner, &loop);
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
    {"serve", cmd_serve, "", "run the daemon: cron, reload on SIGHUP, drain on SIGTERM"},
    {"check-config", cmd_check_config, "", "validate runner.conf, conf.d and plugins; exit 1 on any error"},
    {"plugins", cmd_plugins, "[--json]", "list loaded plugins, versions, ABI and jobs"},
    {"run", cmd_run, "PLUGIN.JOB [key=value ...]", "run one job now in this process and print its JSON result"},
    {"version", cmd_version, "", "print the version and plugin ABI"},
    {"help", cmd_help, "", "this text"},
};

static int cmd_help(rn__cli_t *cli) {
  (void)cli;
  printf("usage: regentra-runner COMMAND [-c runner.conf] [-d conf.d] "
         "[--json] [args]\n\ncommands:\n");
  for (size_t i = 0; i < RN_ARRAY_SIZE(builtin_commands); i++)
    printf("  %-14s %-28s %s\n", builtin_commands[i].name,
           builtin_commands[i].usage, builtin_commands[i].help);
  for (const rn__cli_command_t *c = rn__cli_extra_commands; c && c->name; c++)
    printf("  %-14s %-28s %s\n", c->name, c->usage, c->help);
  printf("  GROUP COMMAND  --param value ...            operator commands "
         "of plugins (see 'plugins')\n\n"
         "-c FILE   runner configuration (default %s)\n"
         "-d DIR    job configuration directory (default: conf.d beside it)\n"
         "--json    machine-readable output\n"
         "REGENTRA_DATABASE_URL overrides [database] url.\n",
         RN_DEFAULT_CONFIG);
  return 0;
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
    } else if (strcmp(a, "--json") == 0) {
      cli.json = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      command = command ? command : "help";
    } else if (!command) {
      command = a;
    } else {
      rest[nrest++] = argv[i];
    }
  }
  cli.argc = nrest;
  cli.argv = rest;
  int rc;
  if (!command) {
    rc = rn__cli_usage_error("no command given");
    free(rest);
    return rc;
  }
  for (size_t i = 0; i < RN_ARRAY_SIZE(builtin_commands); i++) {
    if (strcmp(builtin_commands[i].name, command) == 0) {
      rc = builtin_commands[i].run(&cli);
      free(rest);
      return rc;
    }
  }
  for (const rn__cli_command_t *c = rn__cli_extra_commands; c && c->name; c++) {
    if (strcmp(c->name, command) == 0) {
      rc = c->run(&cli);
      free(rest);
      return rc;
    }
  }
  if (command[0] == '-')
    rc = rn__cli_usage_error("unknown option \"%s\"", command);
  else
    rc = cmd_plugin_group(&cli, command);
  free(rest);
  return rc;
}
