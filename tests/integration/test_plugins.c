/* Plugin loading: bad plugins are refused with a message naming the file
 * and the versions, and the good ones keep working. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rt.h"

static char dir[256], plugins[300], conf[300];

static void install(const char *variant, const char *file, int mode) {
  char from[600], to[600];
  if (strcmp(variant, "hello") == 0)
    snprintf(from, sizeof from, "%s/hello.so", RT_PLUGIN_DIR);
  else
    snprintf(from, sizeof from, "%s/%s/%s", RT_PROBE_DIR, variant, file);
  snprintf(to, sizeof to, "%s/%s", plugins, file);
  rt_copy_file(from, to, mode);
}

static void setup(void) {
  rt_make_temp_dir(dir, sizeof dir, "plugins");
  snprintf(plugins, sizeof plugins, "%s/plugins", dir);
  snprintf(conf, sizeof conf, "%s/runner.conf", dir);
  mkdir(plugins, 0755);
  char text[1024];
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s\nstate_dir = %s/state\n", plugins, dir);
  rt_write_file(conf, text, 0644);
}

static void teardown(void) { rt_remove_tree(dir); }

static int runner(const char *a1, const char *a2, const char *a3, char **out,
                  char **err) {
  char *argv[] = {RT_RUNNER, (char *)a1, "-c", conf, (char *)a2, (char *)a3,
                  NULL};
  return rt_run(argv, NULL, NULL, out, err);
}

TestSuite(plugins, .init = setup, .fini = teardown, .timeout = 60);

Test(plugins, refuses_each_bad_plugin_by_name_and_keeps_the_good_one) {
  install("hello", "hello.so", 0755);
  install("probe_badmajor", "badmajor.so", 0755);
  install("probe_small", "small.so", 0755);
  install("probe_noentry", "noentry.so", 0755);
  install("probe_createfail", "createfail.so", 0755);
  char *out, *err;
  int rc = runner("plugins", "--json", NULL, &out, &err);
  cr_expect_eq(rc, 0, "plugins exit %d; stderr:\n%s", rc, err);
  cr_expect(strstr(out, "\"name\": \"hello\""), "hello missing:\n%s", out);
  cr_expect(!strstr(out, "badmajor") && !strstr(out, "createfail"),
            "a refused plugin is listed:\n%s", out);
  const char *expected[] = {
      "badmajor.so was built for ABI 2.0, this host provides ABI 1.2",
      "small.so: descriptor of 16 bytes is smaller than ABI 1.0 requires",
      "noentry.so exports no rn_plugin_entry_v1",
      "createfail.so (createfail 1): create() failed",
  };
  for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
    cr_expect(strstr(err, expected[i]), "expected \"%s\" in:\n%s", expected[i],
              err);
  free(out);
  free(err);

  /* The daemon's other plugins still run their jobs. */
  rc = runner("run", "hello.greet", "name=operator", &out, &err);
  cr_expect_eq(rc, 0, "run failed: %s", err);
  cr_expect(strstr(out, "\"greeting\": \"hello, operator\""), "%s", out);
  free(out);
  free(err);

  /* check-config treats a refused plugin as an error. */
  rc = runner("check-config", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 1);
  cr_expect(strstr(err, "badmajor.so"), "%s", err);
  free(out);
  free(err);
}

Test(plugins, refuses_a_plugin_file_writable_by_others) {
  install("hello", "hello.so", 0755);
  install("probe_v1", "probe.so", 0666);
  char *out, *err;
  int rc = runner("plugins", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 0);
  cr_expect(strstr(err, "probe.so is writable by group or others (mode 666)"),
            "%s", err);
  cr_expect(strstr(out, "hello 1.0.0"), "%s", out);
  cr_expect(!strstr(out, "probe"), "%s", out);
  free(out);
  free(err);
}

Test(plugins, refuses_every_plugin_of_a_directory_writable_by_others) {
  install("hello", "hello.so", 0755);
  chmod(plugins, 0777);
  char *out, *err;
  runner("plugins", NULL, NULL, &out, &err);
  cr_expect(strstr(err, "plugin directory"), "%s", err);
  cr_expect(strstr(err, "is writable by group or others"), "%s", err);
  cr_expect(strstr(out, "no plugins loaded"), "%s", out);
  free(out);
  free(err);
}

Test(plugins, check_config_names_file_and_line_and_exits_1) {
  install("hello", "hello.so", 0755);
  char confd[400], bad[500];
  snprintf(confd, sizeof confd, "%s/conf.d", dir);
  mkdir(confd, 0755);
  snprintf(bad, sizeof bad, "%s/20-bad.conf", confd);
  rt_write_file(bad, "[job \"x\"]\nplugin = hello\njob = greet\n"
                     "schedule = 0 25 * * *\n", 0644);
  char *out, *err;
  int rc = runner("check-config", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 1);
  char expected[600];
  snprintf(expected, sizeof expected, "%s:4: schedule = \"0 25 * * *\": hour",
           bad);
  cr_expect(strstr(err, expected), "expected \"%s\" in:\n%s", expected, err);
  free(out);
  free(err);
  rt_write_file(bad, "[job \"x\"]\nplugin = hello\njob = greet\n"
                     "schedule = 0 23 * * *\n", 0644);
  rc = runner("check-config", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 0, "%s", err);
  cr_expect(strstr(out, "configuration ok"), "%s", out);
  free(out);
  free(err);
}

Test(plugins, usage_errors_exit_2_with_one_line) {
  char *out, *err;
  char *argv[] = {RT_RUNNER, "run", "no-dot-here", "-c", conf, NULL};
  cr_expect_eq(rt_run(argv, NULL, NULL, &out, &err), 2);
  cr_expect(strstr(err, "is not PLUGIN.JOB"), "%s", err);
  free(out);
  free(err);
  char *argv2[] = {RT_RUNNER, NULL};
  cr_expect_eq(rt_run(argv2, NULL, NULL, &out, &err), 2);
  free(out);
  free(err);
  char *argv3[] = {RT_RUNNER, "serve", "-c", NULL};
  cr_expect_eq(rt_run(argv3, NULL, NULL, &out, &err), 2);
  cr_expect(strstr(err, "-c needs a value"), "%s", err);
  free(out);
  free(err);
}
