/* Configuration: every bad input names file:line, and good files still
 * load beside bad ones. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "rt.h"

static char dir[256];
static char conf_path[512];
static char confd[512];

static void write_runner_conf(void) {
  char text[1024];
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s\nstate_dir = %s/state\n"
           "log_level = error\n",
           RT_PLUGIN_DIR, dir);
  rt_write_file(conf_path, text, 0644);
}

static void setup(void) {
  rt_make_temp_dir(dir, sizeof dir, "config");
  snprintf(conf_path, sizeof conf_path, "%s/runner.conf", dir);
  snprintf(confd, sizeof confd, "%s/conf.d", dir);
  mkdir(confd, 0755);
  write_runner_conf();
  rt_write_file(strcat(strcpy((char[600]){0}, confd), "/50-good.conf"),
                "[job \"good\"]\nplugin = hello\njob = greet\n"
                "schedule = 15 */4 * * *\n",
                0644);
}

static void teardown(void) { rt_remove_tree(dir); }

/* Loads the tree and builds a generation, as the daemon does. */
typedef struct loaded_s {
  uv_loop_t loop;
  rn__runner_t runner;
} loaded_t;

static rn__generation_t *load(loaded_t *l) {
  cr_assert_eq(uv_loop_init(&l->loop), 0);
  cr_assert_eq(rn__runner_init(&l->runner, &l->loop, conf_path, NULL), 0);
  cr_assert_geq(rn__runner_load(&l->runner), 0);
  return l->runner.gen;
}

static void unload(loaded_t *l) {
  rn__runner_close(&l->runner);
  cr_assert_eq(uv_loop_close(&l->loop), 0);
}

static bool has_error(rn__config_t *c, const char *text) {
  for (size_t i = 0; i < c->nerrors; i++)
    if (strstr(c->errors[i], text))
      return true;
  return false;
}

static char *all_errors(rn__config_t *c) {
  static char buf[8192];
  buf[0] = '\0';
  for (size_t i = 0; i < c->nerrors; i++) {
    strncat(buf, c->errors[i], sizeof buf - strlen(buf) - 2);
    strcat(buf, "\n");
  }
  return buf;
}

typedef struct bad_case_s {
  char name[48];
  char text[256];
  char expected[160]; /* appended to "<file>:" */
  bool disables_plugin; /* a bad [plugin] section refuses the plugin */
} bad_case_t;

ParameterizedTestParameters(config, bad_input_names_file_and_line) {
  static bad_case_t cases[] = {
      {"unknown key", "[job \"a\"]\nplugin = hello\njob = greet\ncolour = red\n",
       ":4: unknown key \"colour\"", false},
      {"bad cron minute", "[job \"a\"]\nplugin = hello\njob = greet\nschedule = 61 * * * *\n",
       ":4: schedule = \"61 * * * *\": minute", false},
      {"cron with four fields", "[job \"a\"]\nplugin = hello\njob = greet\nschedule = * * * *\n",
       ":4: schedule = \"* * * *\"", false},
      {"missing plugin key", "\n[job \"a\"]\njob = greet\n",
       ":2: job \"a\": missing required key \"plugin\"", false},
      {"missing job key", "[job \"a\"]\nplugin = hello\n",
       ":1: job \"a\": missing required key \"job\"", false},
      {"plugin not installed", "[job \"a\"]\nplugin = nosuch\njob = greet\n",
       ":1: job \"a\": plugin \"nosuch\" is not loaded", false},
      {"job the plugin lacks", "[job \"a\"]\nplugin = hello\njob = fly\n",
       ":1: job \"a\": plugin \"hello\" has no job \"fly\"", false},
      {"bad job option value", "[job \"a\"]\nplugin = hello\njob = wait\nduration = soon\n",
       ":4: duration = \"soon\": expected a duration", false},
      {"bad enabled", "[job \"a\"]\nplugin = hello\njob = greet\nenabled = maybe\n",
       ":4: enabled = \"maybe\": expected true or false", false},
      {"bad timeout", "[job \"a\"]\nplugin = hello\njob = greet\ntimeout = 5x\n",
       ":4: timeout = \"5x\"", false},
      {"duplicate key", "[job \"a\"]\nplugin = hello\njob = greet\nplugin = hello\n",
       ":4: duplicate key \"plugin\"", false},
      {"key before any section", "plugin = hello\n",
       ":1: key \"plugin\" outside of any section", false},
      {"unknown section", "[jobs \"a\"]\nplugin = hello\n",
       ":1: unknown section [jobs \"a\"]", false},
      {"unquoted job name", "[job a]\nplugin = hello\n",
       ":1: section name must be quoted", false},
      {"runner section in conf.d", "[runner]\nworkers = 4\n",
       ":1: [runner] belongs in runner.conf", false},
      {"syntax error", "[job \"a\"]\nplugin = hello\nthis line has no equals sign\n",
       ":3: syntax error", false},
      {"duplicate job across files", "[job \"good\"]\nplugin = hello\njob = greet\n",
       ":1: duplicate job \"good\" (first defined at", false},
      {"unknown plugin option", "[plugin \"hello\"]\nvolume = 11\n",
       ":2: unknown key \"volume\"", true},
  };
  return cr_make_param_array(bad_case_t, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(bad_case_t *c, config, bad_input_names_file_and_line,
                  .init = setup, .fini = teardown, .timeout = 20) {
  char path[600];
  /* 60- sorts after 50-good.conf so that "duplicate job" sees good first. */
  snprintf(path, sizeof path, "%s/60-bad.conf", confd);
  rt_write_file(path, c->text, 0644);
  loaded_t l;
  rn__generation_t *gen = load(&l);
  char expected[800];
  snprintf(expected, sizeof expected, "%s%s", path, c->expected);
  cr_expect(has_error(gen->config, expected), "%s: expected \"%s\" in:\n%s",
            c->name, expected, all_errors(gen->config));
  rn__gen_job_t *good = rn__generation_job(gen, "good");
  if (c->disables_plugin)
    cr_expect(good && !good->valid, "%s: ran with a refused plugin", c->name);
  else
    cr_expect(good && good->valid, "%s: the good file no longer loads",
              c->name);
  if (strstr(c->text, "[job \"a\"]")) {
    rn__gen_job_t *bad = rn__generation_job(gen, "a");
    cr_expect(!bad || !bad->valid, "%s: the bad job would run", c->name);
  }
  unload(&l);
}

Test(config, unreadable_file_is_reported_and_others_still_load, .init = setup,
     .fini = teardown, .timeout = 20) {
  char path[600];
  snprintf(path, sizeof path, "%s/40-gone.conf", confd);
  cr_assert_eq(symlink("/nonexistent/regentra.conf", path), 0);
  loaded_t l;
  rn__generation_t *gen = load(&l);
  char expected[700];
  snprintf(expected, sizeof expected, "%s: cannot read: ", path);
  cr_expect(has_error(gen->config, expected), "%s", all_errors(gen->config));
  cr_expect(rn__generation_job(gen, "good")->valid);
  unload(&l);
}

Test(config, files_load_in_sorted_order_with_defaults_applied, .init = setup,
     .fini = teardown, .timeout = 20) {
  char path[600];
  snprintf(path, sizeof path, "%s/10-first.conf", confd);
  rt_write_file(path, "[job \"waiter\"]\nplugin = hello\njob = wait\n"
                      "timeout = 2m\nenabled = no\n", 0644);
  snprintf(path, sizeof path, "%s/README", confd);
  rt_write_file(path, "not a conf file: ignored\n", 0644);
  loaded_t l;
  rn__generation_t *gen = load(&l);
  cr_assert_eq(gen->config->nerrors, 0, "%s", all_errors(gen->config));
  cr_assert_eq(gen->njobs, 2);
  cr_expect_str_eq(gen->jobs[0].conf->name, "waiter");
  cr_expect_str_eq(gen->jobs[1].conf->name, "good");
  cr_expect_eq(gen->jobs[0].conf->timeout_ms, 120000);
  cr_expect(!gen->jobs[0].conf->enabled);
  /* The option default "2s" of hello.wait reads back in milliseconds. */
  cr_expect_eq(rn__host()->config_int(&gen->jobs[0].options, "duration"), 2000);
  unload(&l);
}

Test(config, database_url_comes_from_the_environment_first, .init = setup,
     .fini = teardown, .timeout = 20) {
  rt_write_file(conf_path, "[database]\nurl = postgresql://file/db\n", 0644);
  setenv("REGENTRA_DATABASE_URL", "postgresql://env/db", 1);
  rn__config_t *c = rn__config_load(conf_path, NULL);
  unsetenv("REGENTRA_DATABASE_URL");
  cr_expect_str_eq(c->database_url, "postgresql://env/db");
  rn__config_free(c);
}

Test(config, relative_migration_dirs_resolve_beside_runner_conf, .init = setup,
     .fini = teardown, .timeout = 20) {
  rt_write_file(conf_path, "[database]\nmigrations_dir = a:/abs/b:c/d\n", 0644);
  rn__config_t *c = rn__config_load(conf_path, NULL);
  char expected[900];
  snprintf(expected, sizeof expected, "%s/a:/abs/b:%s/c/d", dir, dir);
  cr_expect_str_eq(c->migrations_dir, expected);
  rn__config_free(c);
}
