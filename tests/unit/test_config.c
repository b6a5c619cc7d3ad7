/* Configuration: every bad input names file:line, and good files still
 * load beside bad ones. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "rt_runner.h"

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
  char expected[256]; /* appended to "<file>:" */
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
      /* One name, two sections: an error naming both places, never a
       * silent merge. */
      {"duplicate job back to back",
       "[job \"a\"]\nplugin = hello\njob = greet\n[job \"a\"]\n"
       "plugin = hello\njob = greet\n",
       ":4: duplicate job \"a\" (first defined at {file}:1)", false},
      {"duplicate job apart",
       "[job \"a\"]\nplugin = hello\njob = greet\n\n[job \"b\"]\n"
       "plugin = hello\njob = greet\n\n[job \"a\"]\njob = wait\n",
       ":9: duplicate job \"a\" (first defined at {file}:1)", false},
      {"duplicate plugin section back to back",
       "[plugin \"hello\"]\ngreeting = hi\n[plugin \"hello\"]\n"
       "enabled = no\n",
       ":3: duplicate [plugin \"hello\"] (first at {file}:1)", false},
      {"duplicate key that sets a field",
       "[job \"a\"]\nplugin = hello\njob = greet\nschedule = 1 * * * *\n"
       "schedule = 2 * * * *\n",
       ":5: duplicate key \"schedule\" (first at line 4)", false},
      {"duplicate plugin enabled key",
       "[plugin \"hello\"]\nenabled = yes\nenabled = no\n",
       ":3: duplicate key \"enabled\" (first at line 2)", false},
      /* A section with no keys is an error, not ignored. */
      {"empty job section",
       "[job \"a\"]\n\n; nothing here\n[job \"b\"]\nplugin = hello\n"
       "job = greet\n",
       ":1: empty section [job \"a\"]: it has no keys", false},
      {"empty plugin section at the end", "\n[plugin \"hello\"]\n",
       ":2: empty section [plugin \"hello\"]: it has no keys", false},
      /* Schedules no calendar date matches. */
      {"schedule on february 30",
       "[job \"a\"]\nplugin = hello\njob = greet\nschedule = 0 0 30 2 *\n",
       ":4: schedule = \"0 0 30 2 *\": never fires", false},
      {"schedule on april 31",
       "[job \"a\"]\nplugin = hello\njob = greet\nschedule = 0 0 31 4 *\n",
       ":4: schedule = \"0 0 31 4 *\": never fires", false},
      /* Config text echoed in a message: control bytes and bytes that are
       * not UTF-8 read \xNN; valid UTF-8 passes. */
      {"escape sequence in a key",
       "[job \"a\"]\nplugin = hello\njob = greet\ncol\x1b[2Jour = red\n",
       ":4: unknown key \"col\\x1B[2Jour\"", false},
      {"carriage return and bell in a value",
       "[job \"a\"]\nplugin = hello\njob = greet\nenabled = ye\rs\x07\n",
       ":4: enabled = \"ye\\x0Ds\\x07\": expected true or false", false},
      {"latin-1 byte in a key",
       "[job \"a\"]\nplugin = hello\njob = greet\ncaf\xe9 = x\n",
       ":4: unknown key \"caf\\xE9\"", false},
      {"utf-8 in a key",
       "[job \"a\"]\nplugin = hello\njob = greet\ncaf\xc3\xa9 = x\n",
       ":4: unknown key \"caf\xc3\xa9\"", false},
      {"c1 control in a key",
       "[job \"a\"]\nplugin = hello\njob = greet\nk\xc2\x9b" "31m = x\n",
       ":4: unknown key \"k\\xC2\\x9B31m\"", false},
      /* [source "name"]: one connection profile per source, checked
       * against the schema its plugins declare. */
      {"unquoted source name", "[source ninjaone]\nca_file = /x\n",
       ":1: section name must be quoted", false},
      {"duplicate source section",
       "[source \"ninjaone\"]\nca_file = /x\n[source \"ninjaone\"]\n"
       "ca_file = /y\n",
       ":3: duplicate [source \"ninjaone\"] (first at {file}:1)", false},
      {"duplicate key in a source", "[source \"ninjaone\"]\nca_file = /x\n"
       "ca_file = /y\n",
       ":3: duplicate key \"ca_file\" (first at line 2)", false},
      {"empty source section", "[source \"ninjaone\"]\n",
       ":1: empty section [source \"ninjaone\"]: it has no keys", false},
      {"unknown source key", "[source \"ninjaone\"]\ncolour = red\n",
       ":2: unknown key \"colour\"", false},
      {"bad source value", "[source \"ninjaone\"]\nbase_url_eu = ftp://x\n",
       ":2: base_url_eu = \"ftp://x\": expected an http:// or https:// URL",
       false},
      {"source no plugin declares", "[source \"nosuch\"]\nca_file = /x\n",
       ":1: [source \"nosuch\"]: no enabled plugin in", false},
      {"source key in a plugin section",
       "[plugin \"ninjaone-assets\"]\nbase_url_eu = http://127.0.0.1:1/eu\n",
       ":2: key \"base_url_eu\" belongs to the connection of source "
       "\"ninjaone\", shared by all its plugins: move this line from "
       "[plugin \"ninjaone-assets\"] into a [source \"ninjaone\"] section",
       false},
      {"key in both source and plugin",
       "[source \"ninjaone\"]\nbase_url_eu = http://127.0.0.1:1/eu\n\n"
       "[plugin \"ninjaone-assets\"]\nbase_url_eu = http://127.0.0.1:2/eu\n",
       ":5: key \"base_url_eu\" is set both here and in [source \"ninjaone\"] "
       "({file}:2); remove it from [plugin \"ninjaone-assets\"]",
       false},
      {"text after a section header",
       "[job \"a\"] plugin = hello\nplugin = hello\njob = greet\n",
       ":1: syntax error: \"plugin = hello\" after [job \"a\"]", false},
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
  char expected[1600];
  snprintf(expected, sizeof expected, "%s%s", path, c->expected);
  char *mark = strstr(expected, "{file}");
  if (mark) {
    char rest[800];
    snprintf(rest, sizeof rest, "%s", mark + strlen("{file}"));
    snprintf(mark, sizeof expected - (size_t)(mark - expected), "%s%s", path,
             rest);
  }
  cr_expect(has_error(gen->config, expected), "%s: expected \"%s\" in:\n%s",
            c->name, expected, all_errors(gen->config));
  for (size_t i = 0; i < gen->config->nerrors; i++)
    for (const char *b = gen->config->errors[i]; *b; b++)
      cr_expect((unsigned char)*b >= 0x20 && *b != 0x7f,
                "%s: raw control byte 0x%02x in \"%s\"", c->name,
                (unsigned char)*b, gen->config->errors[i]);
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

/* Every plugin of a source reads the one [source] section as its own
 * options, beside the keys of its [plugin] section. */
Test(config, every_plugin_of_a_source_reads_its_source_section,
     .init = setup, .fini = teardown, .timeout = 20) {
  char path[600];
  snprintf(path, sizeof path, "%s/20-ninjaone.conf", confd);
  rt_write_file(path,
                "[source \"ninjaone\"]\nbase_url_eu = http://127.0.0.1:9/eu\n"
                "rate_per_minute = 7\n\n"
                "[plugin \"ninjaone-assets\"]\nconcurrency = 3\n",
                0644);
  loaded_t l;
  rn__generation_t *gen = load(&l);
  cr_expect_eq(gen->config->nerrors, 0, "%s", all_errors(gen->config));
  const rn_host_t *host = rn__host();
  static const char *const names[] = {"ninjaone-mapping", "ninjaone-assets",
                                      "ninjaone-evidence"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    rn__plugin_t *plugin = rn__generation_plugin(gen, names[i]);
    cr_assert(plugin, "%s is not loaded", names[i]);
    cr_expect_str_eq(plugin->source, "ninjaone");
    const char *url = host->config_str(&plugin->config, "base_url_eu");
    cr_expect(url && strcmp(url, "http://127.0.0.1:9/eu") == 0,
              "%s: base_url_eu = %s", names[i], url ? url : "(null)");
    cr_expect_eq(host->config_int(&plugin->config, "rate_per_minute"), 7,
                 "%s", names[i]);
    /* Unset keys keep the schema's default. */
    cr_expect_eq(host->config_int(&plugin->config, "rate_per_hour"), 1500,
                 "%s", names[i]);
    cr_expect_null(host->config_str(&plugin->config, "base_url_us"));
  }
  rn__plugin_t *assets = rn__generation_plugin(gen, "ninjaone-assets");
  cr_expect_eq(host->config_int(&assets->config, "concurrency"), 3);
  unload(&l);
}

Test(config, dangling_link_is_reported_and_others_still_load, .init = setup,
     .fini = teardown, .timeout = 20) {
  char path[600];
  snprintf(path, sizeof path, "%s/40-gone.conf", confd);
  cr_assert_eq(symlink("/nonexistent/regentra.conf", path), 0);
  loaded_t l;
  rn__generation_t *gen = load(&l);
  char expected[700];
  snprintf(expected, sizeof expected, "%s: not a regular file (a symbolic link",
           path);
  cr_expect(has_error(gen->config, expected), "%s", all_errors(gen->config));
  cr_expect(rn__generation_job(gen, "good")->valid);
  unload(&l);
}

Test(config, non_regular_files_in_conf_d_are_refused_and_others_still_load,
     .init = setup, .fini = teardown, .timeout = 20) {
  char fifo[600], sock_path[600], subdir[600], link[600], expected[700];
  /* A FIFO nobody writes to: opening or reading it would wait forever. */
  snprintf(fifo, sizeof fifo, "%s/10-fifo.conf", confd);
  cr_assert_eq(mkfifo(fifo, 0644), 0);
  snprintf(sock_path, sizeof sock_path, "%s/20-socket.conf", confd);
  int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  cr_assert_lt(strlen(sock_path), sizeof sun.sun_path);
  strcpy(sun.sun_path, sock_path);
  cr_assert_eq(bind(sock, (struct sockaddr *)&sun, sizeof sun), 0, "%s",
               strerror(errno));
  snprintf(subdir, sizeof subdir, "%s/30-dir.conf", confd);
  cr_assert_eq(mkdir(subdir, 0755), 0);
  /* A link to a good file is refused too: what is read is what was opened. */
  snprintf(link, sizeof link, "%s/40-link.conf", confd);
  cr_assert_eq(symlink("50-good.conf", link), 0);

  rn__config_t *c = rn__config_load(conf_path, NULL);
  close(sock);
  const struct {
    const char *path, *kind;
  } refused[] = {{fifo, "a FIFO"},
                 {sock_path, NULL}, /* refused at open or by its type */
                 {subdir, "a directory"},
                 {link, "a symbolic link"}};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    if (refused[i].kind)
      snprintf(expected, sizeof expected, "%s: not a regular file (%s",
               refused[i].path, refused[i].kind);
    else
      snprintf(expected, sizeof expected, "%s: not a regular file",
               refused[i].path);
    cr_expect(has_error(c, expected), "expected \"%s\" in:\n%s", expected,
              all_errors(c));
  }
  cr_expect_eq(c->nerrors, 4, "%s", all_errors(c));
  cr_expect_eq(c->njobs, 1);
  cr_expect_str_eq(c->jobs[0].name, "good");
  rn__config_free(c);
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

/* ---------------------------------------------------- lines of any length */

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  cr_assert(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static const rn__kv_t *option_of(const rn__kvs_t *kvs, const char *key) {
  const rn__kv_t *kv = rn__kvs_find(kvs, key);
  cr_assert(kv, "no key \"%s\"", key);
  return kv;
}

Test(config, long_lines_are_read_whole_and_line_numbers_stay_right,
     .init = setup, .fini = teardown, .timeout = 20) {
  char *v190 = repeat('x', 190), *a188 = repeat('A', 188);
  char *v100k = repeat('v', 100 * 1024), *name60 = repeat('n', 60);
  char *key60 = repeat('k', 60);
  size_t size = 4 * 100 * 1024;
  char *text = malloc(size);
  cr_assert(text);
  snprintf(text, size,
           "[plugin \"hello\"]\n"     /* 1 */
           "greeting = %s#tail\n"     /* 2: # inside a value is text */
           "[job \"%s\"]\n"           /* 3 */
           "plugin = hello\n"         /* 4 */
           "job = greet\n"            /* 5 */
           "v190 = %s\n"              /* 6 */
           "v100k = %s ; a comment\n" /* 7 */
           "%s = long key\n"          /* 8 */
           "last = %s\n",             /* 9 */
           a188, name60, v190, v100k, key60, "end");
  char path[600];
  snprintf(path, sizeof path, "%s/10-long.conf", confd);
  rt_write_file(path, text, 0644);
  rn__config_t *c = rn__config_load(conf_path, NULL);
  cr_assert_eq(c->nerrors, 0, "%s", all_errors(c));
  const rn__plugin_conf_t *hello = rn__config_plugin(c, "hello");
  cr_assert(hello);
  char want[256];
  snprintf(want, sizeof want, "%s#tail", a188);
  cr_expect_str_eq(option_of(&hello->options, "greeting")->value, want);
  cr_assert_eq(c->njobs, 2);
  const rn__job_conf_t *job = &c->jobs[0];
  cr_expect_str_eq(job->name, name60);
  cr_expect_eq(job->line, 3);
  cr_expect_str_eq(option_of(&job->options, "v190")->value, v190);
  cr_expect_eq(option_of(&job->options, "v190")->line, 6);
  cr_expect_str_eq(option_of(&job->options, "v100k")->value, v100k);
  cr_expect_eq(option_of(&job->options, "v100k")->line, 7);
  cr_expect_str_eq(option_of(&job->options, key60)->value, "long key");
  cr_expect_eq(option_of(&job->options, key60)->line, 8);
  cr_expect_str_eq(option_of(&job->options, "last")->value, "end");
  cr_expect_eq(option_of(&job->options, "last")->line, 9);
  rn__config_free(c);

  /* An error after long lines names its own line. */
  snprintf(text, size,
           "[job \"after-long\"]\nplugin = hello\njob = greet\n"
           "v190 = %s\nv100k = %s\nthis line has no equals sign\n",
           v190, v100k);
  snprintf(path, sizeof path, "%s/20-bad.conf", confd);
  rt_write_file(path, text, 0644);
  c = rn__config_load(conf_path, NULL);
  char expected[700];
  snprintf(expected, sizeof expected, "%s:6: syntax error", path);
  cr_expect_eq(c->nerrors, 1, "%s", all_errors(c));
  cr_expect(has_error(c, expected), "%s", all_errors(c));
  rn__config_free(c);
  free(text);
  free(v190);
  free(a188);
  free(v100k);
  free(name60);
  free(key60);
}

Test(config, a_nul_byte_is_an_error_not_the_end_of_the_line, .init = setup,
     .fini = teardown, .timeout = 20) {
  static const char text[] = "[job \"a\"]\nplugin = hello\njob = greet\n"
                             "timeout = 10m\0 and more\n";
  char path[600];
  snprintf(path, sizeof path, "%s/60-nul.conf", confd);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  cr_assert_eq(fwrite(text, 1, sizeof text - 1, f), sizeof text - 1);
  fclose(f);
  rn__config_t *c = rn__config_load(conf_path, NULL);
  char expected[700];
  snprintf(expected, sizeof expected,
           "%s:4: syntax error: the line holds a "
           "NUL byte",
           path);
  cr_expect(has_error(c, expected), "%s", all_errors(c));
  rn__config_free(c);
}

Test(config, runner_and_database_sections_appear_once, .init = setup,
     .fini = teardown, .timeout = 20) {
  rt_write_file(conf_path,
                "[runner]\nlog_level = error\n[database]\npool_size = 2\n"
                "[runner]\nworkers = 4\n[database]\npool_size = 3\n",
                0644);
  rn__config_t *c = rn__config_load(conf_path, NULL);
  char expected[1400];
  snprintf(expected, sizeof expected,
           "%s:5: duplicate [runner] (first at "
           "%s:1)",
           conf_path, conf_path);
  cr_expect(has_error(c, expected), "%s", all_errors(c));
  snprintf(expected, sizeof expected,
           "%s:7: duplicate [database] (first at "
           "%s:3)",
           conf_path, conf_path);
  cr_expect(has_error(c, expected), "%s", all_errors(c));
  /* Nothing of the second sections was applied. */
  cr_expect_eq(c->workers, 16);
  cr_expect_eq(c->db_pool_size, 2);
  rn__config_free(c);
}

Test(config, a_long_message_is_cut_with_a_note_never_silently, .init = setup,
     .fini = teardown, .timeout = 20) {
  char *value = repeat('w', 20000);
  char *text;
  cr_assert_geq(asprintf(&text,
                         "[job \"a\"]\nplugin = hello\njob = greet\n"
                         "enabled = %s\n",
                         value),
                0);
  char path[600];
  snprintf(path, sizeof path, "%s/60-bad.conf", confd);
  rt_write_file(path, text, 0644);
  rn__config_t *c = rn__config_load(conf_path, NULL);
  cr_assert_eq(c->nerrors, 1, "%s", all_errors(c));
  cr_expect(strstr(c->errors[0], ":4: enabled = \"wwww"), "%s", c->errors[0]);
  cr_expect(strstr(c->errors[0], "more bytes not shown)"), "%s", c->errors[0]);
  cr_expect_lt(strlen(c->errors[0]), 5000);
  rn__config_free(c);
  free(text);
  free(value);
}

Test(config, many_keys_and_sections_load_with_every_duplicate_found,
     .init = setup, .fini = teardown, .timeout = 60) {
  /* Enough names that a hash that lost or merged one would show. */
  enum { JOBS = 3000, KEYS = 5000 };
  char path[600];
  snprintf(path, sizeof path, "%s/10-many.conf", confd);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  for (int i = 0; i < JOBS; i++)
    fprintf(f, "[job \"j%d\"]\nplugin = hello\njob = greet\n", i);
  fprintf(f, "[job \"keys\"]\nplugin = hello\njob = greet\n");
  for (int i = 0; i < KEYS; i++)
    fprintf(f, "k%d = %d\n", i, i);
  fclose(f);
  rn__config_t *c = rn__config_load(conf_path, NULL);
  cr_assert_eq(c->nerrors, 0, "%s", all_errors(c));
  cr_assert_eq(c->njobs, JOBS + 2);
  const rn__kvs_t *keys = &c->jobs[JOBS].options;
  cr_assert_eq(keys->count, KEYS);
  for (int i = 0; i < KEYS; i += 97) {
    char key[32], value[32];
    snprintf(key, sizeof key, "k%d", i);
    snprintf(value, sizeof value, "%d", i);
    cr_expect_str_eq(option_of(keys, key)->value, value);
    cr_expect_eq(option_of(keys, key)->line, 3 * JOBS + 4 + i);
  }
  cr_expect_null(rn__kvs_find(keys, "k-1"));
  rn__config_free(c);

  /* A later file with new names and some old ones again: the old ones are
   * duplicates, and the file is dropped, new names and all. */
  enum { NEW = 2000 };
  snprintf(path, sizeof path, "%s/20-again.conf", confd);
  f = fopen(path, "w");
  cr_assert(f);
  for (int i = 0; i < NEW; i++)
    fprintf(f, "[job \"n%d\"]\nplugin = hello\njob = greet\n", i);
  for (int i = 0; i < JOBS; i += 7)
    fprintf(f, "[job \"j%d\"]\nplugin = hello\njob = greet\n", i);
  fprintf(f, "[job \"keys2\"]\nplugin = hello\njob = greet\n");
  for (int i = 0; i < KEYS; i++)
    fprintf(f, "k%d = %d\nk%d = again\n", i, i, i);
  fclose(f);
  /* After that, the dropped names are free again and the others are not:
   * a stale or broken index would report the first or miss the second. */
  snprintf(path, sizeof path, "%s/70-late.conf", confd);
  f = fopen(path, "w");
  cr_assert(f);
  for (int i = 0; i < NEW; i++)
    fprintf(f, "[job \"n%d\"]\nplugin = hello\njob = greet\n", i);
  fprintf(f, "[job \"keys2\"]\nplugin = hello\njob = greet\n");
  for (int i = 0; i < JOBS; i += 5)
    fprintf(f, "[job \"j%d\"]\nplugin = hello\njob = greet\n", i);
  fclose(f);
  c = rn__config_load(conf_path, NULL);
  char expected[700];
  snprintf(expected, sizeof expected, "%s:%d: duplicate job \"j0\"", path,
           3 * NEW + 4);
  cr_expect(has_error(c, expected), "%s", all_errors(c));
  size_t duplicate_jobs = 0, duplicate_keys = 0;
  for (size_t i = 0; i < c->nerrors; i++) {
    duplicate_jobs += strstr(c->errors[i], ": duplicate job \"j") != NULL;
    duplicate_keys += strstr(c->errors[i], ": duplicate key \"k") != NULL;
  }
  cr_expect_eq(duplicate_jobs, (JOBS + 6) / 7 + (JOBS + 4) / 5);
  cr_expect_eq(duplicate_keys, KEYS);
  cr_expect_eq(c->nerrors, duplicate_jobs + duplicate_keys, "%.2000s",
               all_errors(c));
  /* Files with errors are dropped whole; the others stay. */
  cr_expect_eq(c->njobs, JOBS + 2);
  rn__config_free(c);
}

/* ------------------------------------------------- reload off the loop */

static rt_proc_t daemon_proc;

static void reload_teardown(void) {
  rt_runner_kill(&daemon_proc);
  teardown();
}

/* GET path over HTTP/1.0; the response (status line first) in buf, or ""
 * when none came within timeout_ms. */
static void http_get(int port, const char *path, char *buf, size_t len,
                     int timeout_ms) {
  buf[0] = '\0';
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s",
               strerror(errno));
  char request[256];
  int n = snprintf(request, sizeof request,
                   "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
  cr_assert_eq(write(fd, request, (size_t)n), n);
  size_t got = 0;
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  while (got + 1 < len && poll(&pfd, 1, timeout_ms) == 1) {
    ssize_t r = read(fd, buf + got, len - 1 - got);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  buf[got] = '\0';
  close(fd);
}

/* Starts `serve` on the hello plugin with an admin port (returned), once it
 * serves /healthz; reloads wait at gate when it is not NULL. */
static int start_daemon(const char *gate) {
  int port = rt_free_port();
  char path[600], text[1024];
  snprintf(path, sizeof path, "%s/plugins", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/plugins/hello.so", dir);
  rt_copy_file(RT_PLUGIN_DIR "/hello.so", path, 0755);
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s/plugins\nstate_dir = %s/state\n"
           "log_level = info\nadmin_listen = 127.0.0.1:%d\n",
           dir, dir, port);
  rt_write_file(conf_path, text, 0644);
  static char gate_env[640];
  snprintf(gate_env, sizeof gate_env, "REGENTRA_RELOAD_GATE=%s",
           gate ? gate : "");
  char *env[] = {gate_env, NULL};
  char *argv[] = {RT_RUNNER, "serve", "-c", conf_path, NULL};
  rt_proc_start(&daemon_proc, argv, env, NULL);
  cr_assert(
      rt_wait_for_text(daemon_proc.err_path, "serving /healthz", 1, 120000),
      "the daemon did not start:\n%s", rt_read_file(daemon_proc.err_path));
  return port;
}

static void stop_daemon(void) {
  free(rt_runner_stop(&daemon_proc, 60000));
}

Test(config_reload, a_fifo_in_conf_d_is_refused_and_the_reload_completes,
     .init = setup, .fini = reload_teardown, .timeout = 120) {
  start_daemon(NULL);
  /* Nobody ever writes to it: reading it would wait forever. */
  char fifo[600];
  snprintf(fifo, sizeof fifo, "%s/60-fifo.conf", confd);
  cr_assert_eq(mkfifo(fifo, 0644), 0);
  char path[600];
  snprintf(path, sizeof path, "%s/70-more.conf", confd);
  rt_write_file(path, "[job \"more\"]\nplugin = hello\njob = greet\n", 0644);
  rt_proc_kill(&daemon_proc, SIGHUP);
  /* A reload with an error changes nothing, and says so; it does not wait. */
  cr_assert(rt_wait_for_text(daemon_proc.err_path, "reload halted", 1, 60000),
            "the reload did not end:\n%s", rt_read_file(daemon_proc.err_path));
  char *log = rt_read_file(daemon_proc.err_path);
  char expected[700];
  snprintf(expected, sizeof expected, "%s: not a regular file (a FIFO)", fifo);
  cr_expect(strstr(log, expected), "expected \"%s\" in:\n%s", expected, log);
  cr_expect(strstr(log, "reload halted: 1 error(s) above"), "%s", log);
  free(log);
  /* The next reload, without the FIFO, loads the file beside it. */
  cr_assert_eq(unlink(fifo), 0);
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(rt_wait_for_text(daemon_proc.err_path, "reload done", 1, 60000),
            "%s", rt_read_file(daemon_proc.err_path));
  log = rt_read_file(daemon_proc.err_path);
  cr_expect(strstr(log, "serves 1 plugins and 2 jobs"), "%s", log);
  free(log);
  stop_daemon();
}

Test(config_reload, healthz_answers_while_a_large_conf_d_is_read, .init = setup,
     .fini = reload_teardown, .timeout = 240) {
  /* 20,000 jobs of four keys: 80,000 keys. */
  enum { JOBS = 20000 };
  char path[600];
  snprintf(path, sizeof path, "%s/10-large.conf", confd);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  for (int i = 0; i < JOBS; i++)
    fprintf(f,
            "[job \"job-%d\"]\nplugin = hello\njob = greet\n"
            "timeout = 10m\nenabled = %s\n\n",
            i, i % 2 ? "yes" : "no");
  fclose(f);
  /* Each reload waits at this FIFO while it exists (REGENTRA_RELOAD_GATE). */
  char gate[600];
  snprintf(gate, sizeof gate, "%s/reload-gate", dir);
  cr_assert_eq(mkfifo(gate, 0600), 0);
  int port = start_daemon(gate);

  /* The reload reads conf.d and then waits at the gate, as it would on a
   * slow disk, for as long as this test keeps its writer away. */
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(rt_wait_for_text(daemon_proc.err_path,
                             "reloading configuration and plugins", 1, 20000),
            "%s", rt_read_file(daemon_proc.err_path));

  /* The loop answers while the files are being read. */
  char response[4096];
  http_get(port, "/healthz", response, sizeof response, 10000);
  cr_expect(strncmp(response, "HTTP/1.", 7) == 0 && strstr(response, " 200 ") &&
                strstr(response, "ok"),
            "no answer from /healthz during the reload: \"%s\"", response);

  /* More SIGHUPs meanwhile ask for one more reload, not three. They were
   * handled once /healthz answers again: the loop saw the signal pipe
   * readable before that connection was made. */
  for (int i = 0; i < 3; i++)
    rt_proc_kill(&daemon_proc, SIGHUP);
  http_get(port, "/healthz", response, sizeof response, 10000);
  cr_expect(strstr(response, " 200 "), "\"%s\"", response);
  cr_expect_eq(rt_count_text(daemon_proc.err_path, "reload done"), 0,
               "the reload finished without passing the gate");

  /* Open the gate (the reader is there once the large file is read) and
   * remove it, so the next reload passes; that one also finds a new file. */
  int fd = -1;
  for (int tries = 0; fd < 0 && tries < 12000; tries++) {
    fd = open(gate, O_WRONLY | O_NONBLOCK);
    if (fd < 0) {
      cr_assert_eq(errno, ENXIO, "open %s: %s", gate, strerror(errno));
      usleep(10 * 1000); /* until the reader opens its end */
    }
  }
  cr_assert_geq(fd, 0, "the reload never reached %s", gate);
  cr_assert_eq(unlink(gate), 0);
  snprintf(path, sizeof path, "%s/99-gate.conf", confd);
  rt_write_file(path, "[job \"gate\"]\nplugin = hello\njob = greet\n", 0644);
  close(fd);

  cr_assert(rt_wait_for_text(daemon_proc.err_path, "reload done", 2, 120000),
            "%s", rt_read_file(daemon_proc.err_path));
  char *log = rt_read_file(daemon_proc.err_path);
  char done[128];
  snprintf(done, sizeof done, "generation 3 serves 1 plugins and %d jobs",
           JOBS + 2);
  cr_expect(strstr(log, done), "expected \"%s\" in:\n%s", done, log);
  free(log);

  stop_daemon();
  cr_expect_eq(rt_count_text(daemon_proc.err_path,
                             "reloading configuration and plugins"),
               2, "%s", rt_read_file(daemon_proc.err_path));
}
