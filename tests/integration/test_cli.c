/* The command line through the regentra-runner binary: help that never
 * runs anything, and usage failures as JSON. No database involved: a
 * command that ran would fail for the lack of one, and say so. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

static char dir[256], conf[300];

static void setup(void) {
  rt_make_temp_dir(dir, sizeof dir, "cli");
  snprintf(conf, sizeof conf, "%s/runner.conf", dir);
  char text[1024];
  /* Readable, with the plugins, and no database: a sweep that ran would
   * end in "no database". */
  snprintf(text, sizeof text, "[runner]\nplugin_dir = %s\nstate_dir = %s\n",
           RT_PLUGIN_DIR, dir);
  rt_write_file(conf, text, 0644);
}

static void teardown(void) { rt_remove_tree(dir); }

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

/* Runs the binary with args (NULL-terminated) and no database in reach. */
static int run(char **out, char **err, ...) {
  char *argv[32] = {RT_RUNNER};
  int argc = 1;
  va_list ap;
  va_start(ap, err);
  for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
    argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  char *env[] = {"REGENTRA_DATABASE_URL=", NULL};
  return rt_run(argv, env, NULL, out, err);
}

static void expect_flags_of_sweep(const char *out, const char *err) {
  cr_expect(strstr(out, "usage: regentra-runner ninjaone sweep"), "%s", out);
  cr_expect(strstr(out, "compliance evidence sweep"),
            "the job's description: %s", out);
  cr_expect(strstr(out, "--msp-org N"), "%s", out);
  cr_expect(!strstr(out, "evidence sweep failed") &&
                !strstr(err, "evidence sweep failed") &&
                !strstr(err, "no database"),
            "help ran the sweep:\n%s\n%s", out, err);
}

Test(cli, command_help_with_a_config_describes_and_never_runs) {
  char *out, *err;
  int rc = run(&out, &err, "ninjaone", "sweep", "--help", "-c", conf, NULL);
  cr_expect_eq(rc, 0, "%s%s", out, err);
  expect_flags_of_sweep(out, err);
  free(out);
  free(err);
  /* --help anywhere, -h too. */
  rc = run(&out, &err, "-c", conf, "ninjaone", "sweep", "--msp-org", "1",
           "-h", NULL);
  cr_expect_eq(rc, 0, "%s%s", out, err);
  expect_flags_of_sweep(out, err);
  free(out);
  free(err);
}

Test(cli, group_help_needs_no_config_file) {
  char missing[400];
  snprintf(missing, sizeof missing, "%s/absent.conf", dir);
  const char *forms[][4] = {
      {"ninjaone", "--help", NULL},
      {"help", "ninjaone", NULL},
  };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    char *out, *err;
    int rc = run(&out, &err, forms[i][0], forms[i][1], "-c", missing,
                 "--plugin-dir", RT_PLUGIN_DIR, NULL);
    cr_expect_eq(rc, 0, "%s %s: %s%s", forms[i][0], forms[i][1], out, err);
    /* Every command of the three ninjaone plugins, with its description. */
    const char *commands[] = {"test", "connect", "orgs", "map", "disconnect",
                              "status", "sync", "sweep", "sweep-customer"};
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
      char line[64];
      snprintf(line, sizeof line, "\n  %s ", commands[k]);
      cr_expect(strstr(out, line), "%s missing in:\n%s", commands[k], out);
    }
    cr_expect(strstr(out, "organization mapping") || strstr(out, "NinjaOne"),
              "%s", out);
    free(out);
    free(err);
  }
  /* A command's flags, without a config file either. */
  char *out, *err;
  int rc = run(&out, &err, "ninjaone", "map", "--help", "-c", missing,
               "--plugin-dir", RT_PLUGIN_DIR, NULL);
  cr_expect_eq(rc, 0, "%s%s", out, err);
  cr_expect(strstr(out, "--accept-suggestions"), "%s", out);
  cr_expect(strstr(out, "--from-file PATH"), "%s", out);
  cr_expect(strstr(out, "--msp-org N"), "%s", out);
  free(out);
  free(err);
  rc = run(&out, &err, "help", "ninjaone", "sweep-customer", "-c", missing,
           "--plugin-dir", RT_PLUGIN_DIR, NULL);
  cr_expect_eq(rc, 0, "%s%s", out, err);
  /* One flag vocabulary: the names every other ninjaone command uses. */
  cr_expect(strstr(out, "--msp-org N") && strstr(out, "--customer-org N") &&
                strstr(out, "--mapping N") && strstr(out, "--org TEXT"),
            "%s", out);
  cr_expect(!strstr(out, "-id "), "%s", out);
  free(out);
  free(err);
}

Test(cli, help_reads_plugin_dir_from_the_config) {
  char *out, *err;
  int rc = run(&out, &err, "ninjaone", "--help", "-c", conf, NULL);
  cr_expect_eq(rc, 0, "%s%s", out, err);
  cr_expect(strstr(out, "\n  sweep-customer "), "%s", out);
  free(out);
  free(err);
}

Test(cli, unknown_commands_and_groups_are_usage_errors_in_json) {
  char *out, *err;
  int rc = run(&out, &err, "ninjaone", "nosuch", "--help", "-c", conf,
               "--json", NULL);
  cr_expect_eq(rc, 2, "%s%s", out, err);
  cr_expect(strstr(out, "\"error\": \"usage\""), "%s", out);
  cr_expect(strstr(out, "unknown command \\\"ninjaone nosuch\\\""), "%s",
            out);
  free(out);
  free(err);
  rc = run(&out, &err, "ninjaone", "--json", NULL);
  cr_expect_eq(rc, 2, "%s%s", out, err);
  cr_expect(strstr(out, "\"error\": \"usage\"") && strstr(out, "\"hint\""),
            "%s", out);
  free(out);
  free(err);
}

Test(cli, a_failed_command_without_database_says_no_database_in_json) {
  char *out, *err;
  int rc = run(&out, &err, "ninjaone", "sweep", "-c", conf, "--json", NULL);
  cr_expect_eq(rc, 1, "%s%s", out, err);
  cr_expect(strstr(out, "\"error\": \"no_database\""), "%s", out);
  cr_expect(strstr(out, "\"message\": \"ninjaone-evidence.sweep failed:"),
            "%s", out);
  cr_expect(strstr(out, "REGENTRA_DATABASE_URL"), "the hint: %s", out);
  free(out);
  free(err);
}

Test(cli, an_empty_sweep_says_it_swept_nothing_rather_than_queued) {
  const char *dsn = rt_pg_fresh_db();
  rt_pg_apply_dir(dsn, RT_SOURCE_DIR "/sdk/devsrc/migrations");
  char db_env[700];
  snprintf(db_env, sizeof db_env, "REGENTRA_DATABASE_URL=%s", dsn);
  char *argv[] = {RT_RUNNER, "ninjaone", "sweep", "-c", conf, "--json", NULL};
  char *env[] = {db_env, NULL};
  char *out, *err;
  int rc = rt_run(argv, env, NULL, &out, &err);
  cr_expect_eq(rc, 0, "%s%s", out, err);
  cr_expect(strstr(out, "\"mode\": \"none\""), "%s", out);
  cr_expect(strstr(out, "\"customers\": 0"), "%s", out);
  cr_expect(!strstr(out, "queued"), "%s", out);
  free(out);
  free(err);
}

/* rotate-key explains its failures like every other command, and its --json
 * output is one object even when it added a key. */
Test(cli, rotate_key_failures_are_json_with_a_code) {
  char *out, *err;
  int rc = run(&out, &err, "rotate-key", "-c", conf, "--json", NULL);
  cr_expect_eq(rc, 1, "%s%s", out, err);
  cr_expect(strstr(out, "\"error\": \"no_master_key\""), "%s", out);
  cr_expect(strstr(out, "master_key_file is not set in"), "%s", out);
  cr_expect(strstr(err, "master_key_file is not set in"), "%s", err);
  free(out);
  free(err);

  char key[600], text[2048];
  snprintf(key, sizeof key, "%s/master.key", dir);
  rt_write_file(key,
                "1 000102030405060708090a0b0c0d0e0f"
                "101112131415161718191a1b1c1d1e1f\n",
                0600);
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s\nstate_dir = %s\nmaster_key_file = %s\n",
           RT_PLUGIN_DIR, dir, key);
  rt_write_file(conf, text, 0644);
  rc = run(&out, &err, "rotate-key", "--add-key", "-c", conf, "--json", NULL);
  cr_expect_eq(rc, 1, "%s%s", out, err);
  cr_expect(out[0] == '{' && !strstr(out, "added key version"),
            "stdout is not one JSON object: %s", out);
  cr_expect(strstr(out, "\"error\": \"no_database\""), "%s", out);
  cr_expect(strstr(out, "the new key was added"), "%s", out);
  free(out);
  free(err);
}
