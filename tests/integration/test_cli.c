/* The command line through the regentra-runner binary: help that never
 * runs anything, and usage failures as JSON. No database involved unless a
 * test gives one: a command that ran would fail for the lack of one, and
 * say so. */
#include <criterion/criterion.h>
#include <jansson.h>
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

/* The sweep's --msp-org must name an MSP: a customer's organization, or no
 * organization, is refused before anything is listed, with its code. */
Test(cli, a_sweep_of_a_customer_or_of_no_organization_is_refused_by_code) {
  const char *dsn = rt_pg_fresh_db();
  rt_pg_apply_dir(dsn, RT_SOURCE_DIR "/sdk/devsrc/migrations");
  char *customer = rt_pg_query(dsn, "INSERT INTO organization (name, kind)"
                                    " VALUES ('Contoso', 'CUSTOMER')"
                                    " RETURNING id");
  cr_assert(customer);
  char db_env[700], want[160];
  snprintf(db_env, sizeof db_env, "REGENTRA_DATABASE_URL=%s", dsn);
  char *env[] = {db_env, NULL};
  struct {
    const char *msp_org, *code;
    char message[160];
  } cases[] = {{customer, "not_an_msp", ""},
               {"999999", "unknown_msp_org",
                "unknown MSP organization 999999"}};
  snprintf(cases[0].message, sizeof cases[0].message,
           "organization %s is a CUSTOMER organization, not an MSP", customer);
  for (size_t i = 0; i < 2; i++) {
    char *argv[] = {RT_RUNNER, "ninjaone", "sweep", "-c", conf, "--msp-org",
                    (char *)cases[i].msp_org, "--json", NULL};
    char *out, *err;
    int rc = rt_run(argv, env, NULL, &out, &err);
    cr_expect_eq(rc, 1, "%s%s", out, err);
    snprintf(want, sizeof want, "\"error\": \"%s\"", cases[i].code);
    cr_expect(strstr(out, want), "%s", out);
    cr_expect(strstr(out, cases[i].message), "%s", out);
    cr_expect(strstr(out, "\"hint\": \"--msp-org takes"), "%s", out);
    free(out);
    free(err);
  }
  free(customer);
}

/* jobs shows a stored error in full, as stored, in text and in --json; the
 * text keeps further lines under their job and never writes a control
 * character to the terminal. */
Test(cli, jobs_shows_last_errors_in_full_in_text_and_json) {
  const char *dsn = rt_pg_fresh_db();
  char db_env[700];
  snprintf(db_env, sizeof db_env, "REGENTRA_DATABASE_URL=%s", dsn);
  char *env[] = {db_env, NULL};
  rt_pg_apply_dir(dsn, RT_SOURCE_DIR "/runner/migrations");
  char *out, *err;
  const char *error = "GET to eu.ninjarmm.com:443: Could not resolve host: "
                      "eu.ninjarmm.com\n  device aa:bb:cc:dd:ee:ff at "
                      "10.20.30.40\x1b[2J";
  char sql[512];
  snprintf(sql, sizeof sql,
           "INSERT INTO runner.job (name, state, attempt, max_attempts,"
           " last_error, finished_at) VALUES ('rec', 'dead', 3, 3, $$%s$$,"
           " now()), ('retrying', 'available', 1, 3, $$%s$$, NULL)",
           error, error);
  free(rt_pg_query(dsn, sql));

  char *json_argv[] = {RT_RUNNER, "jobs", "--json", "-c", conf, NULL};
  cr_assert_eq(rt_run(json_argv, env, NULL, &out, &err), 0, "%s", err);
  json_t *j = json_loads(out, 0, NULL);
  cr_assert(j, "%s", out);
  const char *lists[] = {"dead", "recent_failures"};
  for (size_t i = 0; i < 2; i++) {
    json_t *row = json_array_get(json_object_get(j, lists[i]), 0);
    cr_expect_str_eq(json_string_value(json_object_get(row, "last_error")),
                     error, "%s", lists[i]);
  }
  json_decref(j);
  free(out);
  free(err);

  char *text_argv[] = {RT_RUNNER, "jobs", "-c", conf, NULL};
  cr_assert_eq(rt_run(text_argv, env, NULL, &out, &err), 0, "%s", err);
  const char *shown = "GET to eu.ninjarmm.com:443: Could not resolve host: "
                      "eu.ninjarmm.com\n        device aa:bb:cc:dd:ee:ff at "
                      "10.20.30.40?[2J\n";
  const char *first = strstr(out, shown);
  cr_expect(first && strstr(first + 1, shown), "twice, in full: %s", out);
  cr_expect(!strchr(out, '\x1b'), "%s", out);
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

/* ------------------------------------------------------- --help --json */

/* Runs the binary with args and parses its whole standard output as one
 * JSON object (new); the exit code must be 0 and nothing may have run. */
static json_t *help_json(const char *const *args) {
  char *argv[32] = {RT_RUNNER};
  int argc = 1;
  for (; args[argc - 1] && argc < 31; argc++)
    argv[argc] = (char *)args[argc - 1];
  argv[argc] = NULL;
  char *env[] = {"REGENTRA_DATABASE_URL=", NULL};
  char *out, *err;
  int rc = rt_run(argv, env, NULL, &out, &err);
  cr_expect_eq(rc, 0, "%s %s: %s%s", args[0], args[1], out, err);
  cr_expect(!strstr(err, "no database"), "help ran something: %s", err);
  json_error_t error;
  json_t *description = json_loads(out, 0, &error);
  cr_assert(json_is_object(description), "%s %s: not one JSON object (%s):\n%s",
            args[0], args[1], error.text, out);
  free(out);
  free(err);
  return description;
}

/* The entry of list whose key is value, or NULL. */
static json_t *entry(json_t *list, const char *key, const char *value) {
  size_t i;
  json_t *item;
  json_array_foreach(list, i, item) {
    const char *v = json_string_value(json_object_get(item, key));
    if (v && strcmp(v, value) == 0)
      return item;
  }
  return NULL;
}

static void expect_flag(json_t *flags, const char *flag, const char *type,
                        bool required) {
  json_t *f = entry(flags, "flag", flag);
  cr_assert(f, "no %s in %s", flag, json_dumps(flags, 0));
  cr_expect_str_eq(json_string_value(json_object_get(f, "type")), type, "%s",
                   flag);
  cr_expect(json_is_boolean(json_object_get(f, "required")) &&
                json_is_true(json_object_get(f, "required")) == required,
            "%s required", flag);
  const char *help = json_string_value(json_object_get(f, "help"));
  cr_expect(help && *help, "%s has no help", flag);
}

Test(cli, a_group_command_with_help_and_json_is_described_in_json) {
  const char *forms[][10] = {
      {"ninjaone", "map", "--help", "--json", "-c", conf, NULL},
      {"help", "ninjaone", "map", "--json", "-c", conf, NULL},
      {"--json", "-c", conf, "ninjaone", "map", "--msp-org", "1", "-h", NULL},
  };
  json_t *first = NULL;
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    json_t *d = help_json(forms[i]);
    cr_expect_str_eq(json_string_value(json_object_get(d, "command")),
                     "ninjaone map");
    cr_expect_str_eq(json_string_value(json_object_get(d, "group")),
                     "ninjaone");
    cr_expect_str_eq(json_string_value(json_object_get(d, "job")),
                     "ninjaone-mapping.map");
    cr_expect(strstr(json_string_value(json_object_get(d, "summary")),
                     "organization"),
              "%s", json_dumps(d, 0));
    json_t *flags = json_object_get(d, "flags");
    expect_flag(flags, "--msp-org", "int", true);
    expect_flag(flags, "--from-file", "path", false);
    expect_flag(flags, "--apply", "bool", false);
    /* The name of the parameter beside its flag, as `plugins --json`. */
    cr_expect_str_eq(json_string_value(json_object_get(
                         entry(flags, "flag", "--msp-org"), "name")),
                     "msp_org");
    if (first)
      cr_expect(json_equal(first, d), "%s differs", forms[i][0]);
    else
      first = json_incref(d);
    json_decref(d);
  }
  json_decref(first);
}

Test(cli, a_group_with_help_and_json_lists_its_commands_in_json) {
  char missing[400];
  snprintf(missing, sizeof missing, "%s/absent.conf", dir);
  const char *forms[][8] = {
      {"ninjaone", "--help", "--json", "-c", missing, "--plugin-dir",
       RT_PLUGIN_DIR, NULL},
      {"help", "ninjaone", "--json", "-c", missing, "--plugin-dir",
       RT_PLUGIN_DIR, NULL},
  };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    json_t *d = help_json(forms[i]);
    cr_expect_str_eq(json_string_value(json_object_get(d, "group")),
                     "ninjaone");
    json_t *commands = json_object_get(d, "commands");
    const char *names[] = {"test", "connect",    "orgs",
                           "map",  "disconnect", "status",
                           "sync", "sweep",      "sweep-customer"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
      char command[64];
      snprintf(command, sizeof command, "ninjaone %s", names[k]);
      json_t *c = entry(commands, "command", command);
      cr_expect(c && json_is_array(json_object_get(c, "flags")), "%s missing",
                command);
    }
    expect_flag(
        json_object_get(entry(commands, "command", "ninjaone sweep-customer"),
                        "flags"),
        "--customer-org", "int", true);
    json_decref(d);
  }
}

Test(cli, a_command_of_the_binary_with_help_and_json_is_described_in_json) {
  const char *forms[][6] = {
      {"enqueue", "--help", "--json", "-c", conf, NULL},
      {"help", "enqueue", "--json", "-c", conf, NULL},
  };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    json_t *d = help_json(forms[i]);
    cr_expect_str_eq(json_string_value(json_object_get(d, "command")),
                     "enqueue");
    cr_expect(strstr(json_string_value(json_object_get(d, "usage")),
                     "regentra-runner enqueue EVENT"),
              "%s", json_dumps(d, 0));
    json_t *flags = json_object_get(d, "flags");
    expect_flag(flags, "--idempotency-key", "string", false);
    expect_flag(flags, "--max-attempts", "int", false);
    json_t *attempts = entry(flags, "flag", "--max-attempts");
    cr_expect_eq(json_integer_value(json_object_get(attempts, "min")), 1);
    cr_expect_eq(json_integer_value(json_object_get(attempts, "max")), 100);
    json_t *global = json_object_get(d, "global_flags");
    expect_flag(global, "-c", "path", false);
    expect_flag(global, "--json", "bool", false);
    json_decref(d);
  }
  /* A command without flags of its own says so; serve never starts. */
  const char *serve[] = {"serve", "--help", "--json", "-c", conf, NULL};
  json_t *d = help_json(serve);
  cr_expect_str_eq(json_string_value(json_object_get(d, "command")), "serve");
  cr_expect_eq(json_array_size(json_object_get(d, "flags")), 0);
  json_decref(d);
}

Test(cli, help_with_json_lists_every_command_and_group_in_json) {
  const char *forms[][5] = {
      {"help", "--json", "-c", conf, NULL},
      {"--help", "--json", "-c", conf, NULL},
  };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    json_t *d = help_json(forms[i]);
    json_t *commands = json_object_get(d, "commands");
    const char *names[] = {"serve", "check-config", "plugins",
                           "run",   "enqueue",      "jobs",
                           "retry", "rotate-key",   "help"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
      cr_expect(entry(commands, "command", names[k]), "%s missing", names[k]);
    expect_flag(
        json_object_get(entry(commands, "command", "rotate-key"), "flags"),
        "--add-key", "bool", false);
    json_t *ninjaone = entry(json_object_get(d, "groups"), "group", "ninjaone");
    cr_assert(ninjaone, "%s", json_dumps(json_object_get(d, "groups"), 0));
    cr_expect(entry(json_object_get(ninjaone, "commands"), "command",
                    "ninjaone sweep"));
    expect_flag(json_object_get(d, "global_flags"), "--plugin-dir", "path",
                false);
    json_decref(d);
  }
}
