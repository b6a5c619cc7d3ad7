/* Plugin loading: bad plugins are refused with a message naming the file
 * and the versions, and the good ones keep working. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
      "badmajor.so was built for ABI 2.0, this host provides ABI 1.6",
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

static int occurrences(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

/* Option schemas built with the 1.1 layout (no struct_size), with this
 * header's and with a larger future one read alike in every command. */
Test(plugins, options_of_every_element_layout_are_listed_and_checked_alike) {
  install("probe_layout11", "layout11.so", 0755);
  install("probe_sized", "sized.so", 0755);
  install("probe_wide", "wide.so", 0755);
  char *out, *err;
  int rc = runner("plugins", "--json", NULL, &out, &err);
  cr_assert_eq(rc, 0, "%s", err);
  const char *fields[] = {
      "\"name\": \"budget_per_minute\"",
      "\"help\": \"declare a request budget on create (0 = none)\"",
      "\"choices\": \"even|burst\"",
      "\"default\": \"even\"",
      "\"name\": \"repeat\"",
      "\"name\": \"note\"",
  };
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
    cr_expect_eq(occurrences(out, fields[i]), 3, "%s in:\n%s", fields[i], out);
  cr_expect_eq(occurrences(out, "a field of a later minor"), 0, "%s", out);
  free(out);
  free(err);

  char confd[400], file[500];
  snprintf(confd, sizeof confd, "%s/conf.d", dir);
  mkdir(confd, 0755);
  snprintf(file, sizeof file, "%s/30-layouts.conf", confd);
  rt_write_file(file,
                "[plugin \"wide\"]\nbudget_per_minute = lots\n"
                "[job \"old\"]\nplugin = layout11\njob = slow\n"
                "count = 11\npace = sideways\n",
                0644);
  rc = runner("check-config", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 1);
  char expected[3][700];
  snprintf(expected[0], sizeof expected[0],
           "%s:2: budget_per_minute = \"lots\": not a whole number", file);
  snprintf(expected[1], sizeof expected[1],
           "%s:6: count = 11: out of range 1..10", file);
  snprintf(expected[2], sizeof expected[2],
           "%s:7: pace = \"sideways\": expected one of even|burst", file);
  for (size_t i = 0; i < 3; i++)
    cr_expect(strstr(err, expected[i]), "expected \"%s\" in:\n%s",
              expected[i], err);
  free(out);
  free(err);
  unlink(file);

  const char *jobs[] = {"layout11.slow", "sized.slow", "wide.slow"};
  for (size_t i = 0; i < 3; i++) {
    rc = runner("run", jobs[i], "repeat=4", &out, &err);
    cr_expect_eq(rc, 1, "%s", err);
    cr_expect(strstr(err, "repeat = 4: out of range 1..3"), "%s: %s", jobs[i],
              err);
    free(out);
    free(err);
  }
}

/* Plugins of one source share one [source] section, checked once against
 * the schema they all declare; a plugin declaring another schema for the
 * same source is refused by name. */
Test(plugins, plugins_of_one_source_share_its_section_and_schema) {
  install("probe_srca", "srca.so", 0755);
  install("probe_srcb", "srcb.so", 0755);
  install("probe_srcz", "srcz.so", 0755);
  char confd[400], file[500];
  snprintf(confd, sizeof confd, "%s/conf.d", dir);
  mkdir(confd, 0755);
  snprintf(file, sizeof file, "%s/10-probesrc.conf", confd);
  rt_write_file(file,
                "[source \"probesrc\"]\nendpoint = http://127.0.0.1:1/\n"
                "page_size = 0\n",
                0644);
  char *out, *err;
  int rc = runner("check-config", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 1);
  char expected[700];
  /* Reported once, though two plugins read the section. */
  snprintf(expected, sizeof expected,
           "runner: %s:3: page_size = 0: out of range", file);
  cr_expect_eq(occurrences(err, expected), 1, "expected \"%s\" once in:\n%s",
               expected, err);
  free(out);
  free(err);

  rt_write_file(file,
                "[source \"probesrc\"]\nendpoint = http://127.0.0.1:1/\n",
                0644);
  rc = runner("check-config", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 1);
  cr_expect(strstr(err, "plugin srcz declares source \"probesrc\" with "
                        "options unlike those of plugin srca (first "
                        "difference: \"page_size\")"),
            "%s", err);
  free(out);
  free(err);
  rc = runner("plugins", "--json", NULL, &out, &err);
  cr_assert_eq(rc, 0, "%s", err);
  cr_expect_eq(occurrences(out, "\"name\": \"probesrc\""), 2, "%s", out);
  cr_expect_eq(occurrences(out, "\"name\": \"endpoint\""), 2, "%s", out);
  cr_expect_eq(occurrences(out, "\"default\": \"100\""), 2, "%s", out);
  cr_expect(!strstr(out, "\"name\": \"srcz\""), "%s", out);
  free(out);
  free(err);
}

Test(plugins, a_key_both_of_the_plugin_and_of_its_source_is_refused) {
  install("probe_srcdup", "srcdup.so", 0755);
  char *out, *err;
  int rc = runner("check-config", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 1);
  cr_expect(strstr(err, "plugin srcdup declares \"budget_per_minute\" both "
                        "as its own option and as an option of source "
                        "\"dupsrc\""),
            "%s", err);
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

/* ------------------------------------------- files that are not plugins */

/* The first `bytes` bytes of a built plugin, as a copy cut short by a full
 * disk or a killed scp leaves it; installed by rename, as installers do. */
static void install_torn(const char *variant, const char *file, long bytes) {
  char from[600], tmp[600], to[600];
  snprintf(from, sizeof from, "%s/%s/%s", RT_PROBE_DIR, variant, file);
  snprintf(tmp, sizeof tmp, "%s/.%s.new", plugins, file);
  snprintf(to, sizeof to, "%s/%s", plugins, file);
  FILE *in = fopen(from, "rb");
  FILE *out = fopen(tmp, "wb");
  cr_assert(in && out, "cannot copy %s", from);
  char buf[4096];
  long left = bytes;
  size_t n;
  while (left > 0 &&
         (n = fread(buf, 1, left < 4096 ? (size_t)left : 4096, in)) > 0) {
    cr_assert_eq(fwrite(buf, 1, n, out), n);
    left -= (long)n;
  }
  fclose(in);
  fclose(out);
  cr_assert_eq(left, 0, "%s is shorter than %ld bytes", from, bytes);
  chmod(tmp, 0755);
  cr_assert_eq(rename(tmp, to), 0);
}

/* Names in dir other than . and .. ("" when empty). */
static void list_dir(const char *path, char *names, size_t len) {
  names[0] = '\0';
  DIR *d = opendir(path);
  cr_assert(d, "%s: %s", path, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      snprintf(names + strlen(names), len - strlen(names), "%s ", e->d_name);
  closedir(d);
}

static void expect_state_dir_empty(void) {
  char state[400], names[2048];
  snprintf(state, sizeof state, "%s/state", dir);
  list_dir(state, names, sizeof names);
  cr_expect_str_empty(names, "copies left in state_dir: %s", names);
}

/* What a crash looks like from outside, under the sanitizers or not. */
static void expect_no_crash(int rc, const char *err) {
  cr_expect(rc >= 0 && rc < 128, "exit %d", rc);
  cr_expect(!strstr(err, "AddressSanitizer") && !strstr(err, "DEADLYSIGNAL"),
            "crashed:\n%s", err);
}

Test(plugins, torn_plugin_is_refused_by_check_config_and_plugins) {
  install("hello", "hello.so", 0755);
  /* 6000 bytes cut the probe inside a loadable segment, as `head -c 6000`
   * would. */
  install_torn("probe_v1", "probe.so", 6000);
  char expected[600];
  snprintf(expected, sizeof expected, "plugin %s/probe.so: loadable segment ",
           plugins);
  char *out, *err;
  int rc = runner("check-config", NULL, NULL, &out, &err);
  expect_no_crash(rc, err);
  cr_expect_eq(rc, 1, "check-config exit %d; stderr:\n%s", rc, err);
  cr_expect(strstr(err, expected), "expected \"%s\" in:\n%s", expected, err);
  cr_expect(strstr(err, "but the file has 6000 bytes (torn or truncated "
                        "copy?)"),
            "%s", err);
  free(out);
  free(err);
  expect_state_dir_empty();

  rc = runner("plugins", NULL, NULL, &out, &err);
  expect_no_crash(rc, err);
  cr_expect_eq(rc, 0, "plugins exit %d; stderr:\n%s", rc, err);
  cr_expect(strstr(err, expected), "expected \"%s\" in:\n%s", expected, err);
  cr_expect(strstr(out, "hello 1.0.0"), "the good plugin is gone:\n%s", out);
  cr_expect(!strstr(out, "probe"), "%s", out);
  free(out);
  free(err);
  expect_state_dir_empty();
}

Test(plugins, non_elf_empty_and_headless_files_are_refused_with_the_reason) {
  static const struct {
    const char *content;
    const char *reason;
  } cases[] = {
      {"#!/bin/sh\necho not a plugin\n",
       "not an ELF shared object (no ELF magic in its first bytes)"},
      {"", "the file is empty"},
      {"\177ELF\002\001\001", "the file has 7 bytes, fewer than an ELF header"},
  };
  install("hello", "hello.so", 0755);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char path[600];
    snprintf(path, sizeof path, "%s/probe.so", plugins);
    rt_write_file(path, cases[i].content, 0755);
    char *out, *err;
    int rc = runner("check-config", NULL, NULL, &out, &err);
    expect_no_crash(rc, err);
    cr_expect_eq(rc, 1, "case %zu: exit %d", i, rc);
    char expected[800];
    snprintf(expected, sizeof expected, "plugin %s: %s", path, cases[i].reason);
    cr_expect(strstr(err, expected), "expected \"%s\" in:\n%s", expected, err);
    free(out);
    free(err);
    expect_state_dir_empty();
  }
}

Test(plugins, symlinked_plugin_is_refused) {
  install("hello", "hello.so", 0755);
  char target[600], link_path[600];
  snprintf(target, sizeof target, "%s/probe_v1/probe.so", RT_PROBE_DIR);
  snprintf(link_path, sizeof link_path, "%s/probe.so", plugins);
  cr_assert_eq(symlink(target, link_path), 0);
  char *out, *err;
  int rc = runner("plugins", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 0, "%s", err);
  char expected[800];
  snprintf(expected, sizeof expected,
           "plugin file %s is a symbolic link; install the file itself",
           link_path);
  cr_expect(strstr(err, expected), "expected \"%s\" in:\n%s", expected, err);
  cr_expect(strstr(out, "hello 1.0.0"), "%s", out);
  cr_expect(!strstr(out, "probe"), "a symlinked plugin was loaded:\n%s", out);
  free(out);
  free(err);
  expect_state_dir_empty();
}

Test(plugins, state_dir_open_to_others_is_refused) {
  install("hello", "hello.so", 0755);
  char state[400];
  snprintf(state, sizeof state, "%s/state", dir);
  cr_assert_eq(mkdir(state, 0700), 0);
  chmod(state, 0777);
  char *out, *err;
  int rc = runner("check-config", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 1);
  char expected[600];
  snprintf(expected, sizeof expected,
           "state_dir %s is writable by group or others (mode 777)", state);
  cr_expect(strstr(err, expected), "expected \"%s\" in:\n%s", expected, err);
  free(out);
  free(err);
  expect_state_dir_empty();
}

Test(plugins, copies_left_by_a_dead_process_are_removed_and_others_kept) {
  install("hello", "hello.so", 0755);
  char state[400], stale[600], other[600], names[2048];
  snprintf(state, sizeof state, "%s/state", dir);
  cr_assert_eq(mkdir(state, 0700), 0);
  /* No process has this id (above any pid_max). */
  snprintf(stale, sizeof stale, "%s/plugin-999999999-1.so", state);
  rt_write_file(stale, "left by a crash", 0600);
  snprintf(other, sizeof other, "%s/notes.txt", state);
  rt_write_file(other, "not a plugin copy", 0600);
  char *out, *err;
  int rc = runner("plugins", NULL, NULL, &out, &err);
  cr_expect_eq(rc, 0, "%s", err);
  cr_expect(strstr(out, "hello 1.0.0"), "%s", out);
  free(out);
  free(err);
  list_dir(state, names, sizeof names);
  cr_expect_str_eq(names, "notes.txt ", "state_dir holds: %s", names);
}

/* ------------------------------------------------ the serving daemon */

static rt_proc_t daemon_proc;

static void stop_daemon(void) {
  if (daemon_proc.pid > 0) {
    rt_proc_kill(&daemon_proc, SIGKILL);
    rt_proc_wait(&daemon_proc, 5000);
  }
  teardown();
}

/* A probe job every runner second; the clock runs 60x, so it ticks about
 * once a second. */
static void start_serving(void) {
  char confd[400], job[500];
  snprintf(confd, sizeof confd, "%s/conf.d", dir);
  mkdir(confd, 0755);
  snprintf(job, sizeof job, "%s/10-probe.conf", confd);
  rt_write_file(job,
                "[job \"tick\"]\nplugin = probe\njob = slow\n"
                "schedule = * * * * *\nduration = 100ms\n",
                0644);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  static char start_env[64];
  snprintf(start_env, sizeof start_env, "REGENTRA_CLOCK_START_MS=%lld",
           (now / 60000 + 1) * 60000 - 300);
  char *env[] = {start_env, "REGENTRA_CLOCK_SCALE=60", NULL};
  char *argv[] = {RT_RUNNER, "serve", "-c", conf, NULL};
  rt_proc_start(&daemon_proc, argv, env, NULL);
}

static bool log_has(const char *text, int count) {
  /* A bound for a loaded machine; the line usually comes at once. */
  return rt_wait_for_text(daemon_proc.err_path, text, count, 60000);
}

static void expect_clean_stop(void) {
  rt_proc_kill(&daemon_proc, SIGTERM);
  cr_assert(rt_proc_wait(&daemon_proc, 20000), "daemon did not stop");
  char *log = rt_read_file(daemon_proc.err_path);
  cr_expect_eq(daemon_proc.status, 0, "exit %d; log:\n%s", daemon_proc.status,
               log);
  cr_expect(strstr(log, "runner: stopped"), "%s", log);
  expect_no_crash(daemon_proc.status, log);
  free(log);
}

TestSuite(serving, .init = setup, .fini = stop_daemon, .timeout = 300);

Test(serving,
     torn_plugin_at_startup_is_refused_and_a_good_one_loads_on_sighup) {
  install("hello", "hello.so", 0755);
  install_torn("probe_v1", "probe.so", 6000);
  start_serving();
  cr_assert(log_has("probe.so: loadable segment ", 1), "no refusal logged");
  cr_assert(log_has("plugin hello 1.0.0 loaded", 1));
  expect_state_dir_empty();
  /* The daemon is alive and takes the repaired file on the next reload. */
  char from[600], tmp[600], to[600];
  snprintf(from, sizeof from, "%s/probe_v1/probe.so", RT_PROBE_DIR);
  snprintf(tmp, sizeof tmp, "%s/.probe.so.new", plugins);
  snprintf(to, sizeof to, "%s/probe.so", plugins);
  rt_copy_file(from, tmp, 0755);
  cr_assert_eq(rename(tmp, to), 0);
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload done", 1), "reload did not finish");
  cr_assert(log_has("probe: probe 1 finished", 1), "the probe never ran");
  expect_state_dir_empty();
  expect_clean_stop();
}

Test(serving, torn_plugin_on_sighup_leaves_the_old_generation_serving) {
  install("hello", "hello.so", 0755);
  install("probe_v1", "probe.so", 0755);
  start_serving();
  cr_assert(log_has("probe: probe 1 finished", 1), "the probe never ran");
  install_torn("probe_v2", "probe.so", 6000);
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload halted", 1), "no reload halted line");
  cr_expect(log_has("probe.so: loadable segment ", 1));
  int before = rt_count_text(daemon_proc.err_path, "probe: probe 1 finished");
  cr_assert(log_has("probe: probe 1 finished", before + 2),
            "the old plugin stopped serving");
  /* A second reload of the same torn file is refused the same way. */
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(log_has("reload halted", 2));
  expect_state_dir_empty();
  expect_clean_stop();
  cr_expect_eq(rt_count_text(daemon_proc.err_path, "probe: probe 2"), 0);
}
