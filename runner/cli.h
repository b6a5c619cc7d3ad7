/* cli.h - subcommands; modules with their own commands (migrate, jobs,
 * enqueue, ...) list them in rn__cli_extra_commands. */
#ifndef RN_CLI_H
#define RN_CLI_H

#include <stdbool.h>

#include "internal.h"

typedef struct rn__cli_s {
  const char *config_path;
  const char *confd; /* NULL = conf.d beside config_path */
  bool json;
  bool quiet;         /* log errors only, whatever the config says */
  bool no_progress;   /* --quiet: no live progress on a terminal */
  bool help;          /* -h/--help anywhere: describe, never run */
  const char *plugin_dir; /* --plugin-dir: where help looks for plugins */
  int argc;          /* arguments after the command */
  char **argv;
} rn__cli_t;

typedef struct rn__cli_command_s {
  const char *name;
  int (*run)(rn__cli_t *cli);
  const char *usage;
  const char *help;
  /* The command's own --flags, described by `--help --json`: a name such as
   * "max_attempts" is the flag --max-attempts. Ends at a NULL name; NULL =
   * none. */
  const rn_option_t *flags;
} rn__cli_command_t;

/* NULL-terminated; defined by the module that owns the commands. */
extern const rn__cli_command_t rn__cli_extra_commands[];

/* Whether arg is the flag of an option name: "--max-attempts" for
 * "max_attempts". */
bool rn__cli_flag_is(const char *arg, const char *name);

int rn__cli_main(int argc, char **argv);
int rn__cli_usage_error(const char *fmt, ...) RN_PRINTF_LIKE(1, 2);
/* A failure: "regentra-runner: MESSAGE" (and the hint) on stderr and, with
 * --json, {"error": code, "message": ..., "hint": ...} on stdout. hint may
 * be NULL. Returns exit_code. */
int rn__cli_fail(int exit_code, const char *code, const char *hint,
                 const char *fmt, ...) RN_PRINTF_LIKE(4, 5);
/* The stable --json error code of an error status, and its hint (NULL when
 * there is none to give). */
const char *rn__cli_error_code(int status, const char **hint);
int rn__cli_load(rn__cli_t *cli, rn__runner_t *runner, uv_loop_t *loop);
int rn__cli_unload(rn__runner_t *runner, uv_loop_t *loop);
/* rotate.c */
int rn__cmd_rotate_key(rn__cli_t *cli);
int rn__cli_run_job(rn__cli_t *cli, const char *plugin_name,
                    const char *job_name, const char *params_json,
                    bool prefer_json);

#endif
