/* `regentra-runner migrate`: every file once, in number order across the
 * runner's and the platform's directories, safe twice and concurrently,
 * and refusing an applied file that changed. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rt.h"

#define MIGRATIONS RT_SOURCE_DIR "/runner/migrations:" RT_SOURCE_DIR "/sdk/devsrc/migrations"

static char dir[256], conf[300], dsn[700];

/* The number of migration files shipped, counted rather than written down
 * so that adding one does not break these tests. */
static long shipped_migrations(void) {
  static const char *const dirs[] = {RT_SOURCE_DIR "/runner/migrations",
                                     RT_SOURCE_DIR "/sdk/devsrc/migrations"};
  long n = 0;
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    DIR *d = opendir(dirs[i]);
    cr_assert(d, "cannot read %s", dirs[i]);
    for (struct dirent *e; (e = readdir(d));) {
      size_t len = strlen(e->d_name);
      n += len > 4 && strcmp(e->d_name + len - 4, ".sql") == 0;
    }
    closedir(d);
  }
  return n;
}

static bool says(const char *out, long applied, long already) {
  char text[64];
  snprintf(text, sizeof text, "%ld applied, %ld already applied", applied,
           already);
  return out && strstr(out, text);
}

static void configure(const char *migrations_dir) {
  snprintf(dsn, sizeof dsn, "%s", rt_pg_fresh_db());
  rt_make_temp_dir(dir, sizeof dir, "migrate");
  snprintf(conf, sizeof conf, "%s/runner.conf", dir);
  char text[2048];
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s/plugins\nstate_dir = %s/state\n"
           "[database]\nurl = %s\nmigrations_dir = %s\n",
           dir, dir, dsn, migrations_dir);
  rt_write_file(conf, text, 0644);
}

static int migrate(char **out, char **err) {
  char *argv[] = {RT_RUNNER, "migrate", "-c", conf, NULL};
  return rt_run(argv, NULL, NULL, out, err);
}

static void teardown(void) { rt_remove_tree(dir); }

TestSuite(migrate, .fini = teardown, .timeout = 120);

Test(migrate, applies_every_file_in_number_order_then_nothing_the_second_time) {
  configure(MIGRATIONS);
  long n = shipped_migrations();
  char *out, *err;
  cr_assert_eq(migrate(&out, &err), 0, "%s", err);
  cr_expect(says(out, n, 0), "%s", out);
  /* The runner's 0001 comes before the platform's 1001.. */
  char *first = strstr(err, "applied 0001_runner_queue.sql");
  char *later = strstr(err, "applied 1001_platform.sql");
  cr_expect(first && later && first < later, "%s", err);
  free(out);
  free(err);
  cr_assert_eq(migrate(&out, &err), 0, "%s", err);
  cr_expect(says(out, 0, n), "%s", out);
  free(out);
  free(err);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.schema_migration"),
               n);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.schema_migration"
                                " WHERE length(checksum) = 64"),
               n);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM "
                                "public.signal_definition"),
               5);
}

Test(migrate, two_migrates_at_once_both_succeed_and_apply_each_file_once) {
  configure(MIGRATIONS);
  long n = shipped_migrations();
  rt_proc_t a, b;
  char *argv[] = {RT_RUNNER, "migrate", "-c", conf, NULL};
  rt_proc_start(&a, argv, NULL, NULL);
  rt_proc_start(&b, argv, NULL, NULL);
  cr_assert(rt_proc_wait(&a, 60000));
  cr_assert(rt_proc_wait(&b, 60000));
  char *ea = rt_read_file(a.err_path), *eb = rt_read_file(b.err_path);
  cr_expect_eq(a.status, 0, "%s", ea);
  cr_expect_eq(b.status, 0, "%s", eb);
  free(ea);
  free(eb);
  char *oa = rt_read_file(a.out_path), *ob = rt_read_file(b.out_path);
  /* One did the work; the other waited for the lock and found it done. */
  bool split = (says(oa, n, 0) && says(ob, 0, n)) ||
               (says(ob, n, 0) && says(oa, 0, n));
  cr_expect(split, "%s / %s", oa, ob);
  free(oa);
  free(ob);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.schema_migration"),
               n);
}

Test(migrate, refuses_to_run_when_an_applied_file_changed) {
  char copy[300];
  rt_make_temp_dir(copy, sizeof copy, "migs");
  char from[600], to[600];
  snprintf(from, sizeof from, "%s/runner/migrations/0001_runner_queue.sql",
           RT_SOURCE_DIR);
  snprintf(to, sizeof to, "%s/0001_runner_queue.sql", copy);
  rt_copy_file(from, to, 0644);
  configure(copy);
  char *out, *err;
  cr_assert_eq(migrate(&out, &err), 0, "%s", err);
  free(out);
  free(err);
  char *text = rt_read_file(to);
  char *edited;
  cr_assert(asprintf(&edited, "%s\n-- edited later\n", text) > 0);
  rt_write_file(to, edited, 0644);
  free(text);
  free(edited);
  /* A new file after it must not be applied either. */
  snprintf(to, sizeof to, "%s/0002_more.sql", copy);
  rt_write_file(to, "CREATE TABLE runner.more (id int);\n", 0644);
  cr_expect_eq(migrate(&out, &err), 1);
  cr_expect(strstr(err, "0001_runner_queue.sql was changed after it was "
                        "applied"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.schema_migration"),
               1);
  rt_remove_tree(copy);
}

Test(migrate, a_failing_file_is_rolled_back_and_named) {
  char copy[300];
  rt_make_temp_dir(copy, sizeof copy, "migs");
  char to[600];
  snprintf(to, sizeof to, "%s/0001_ok.sql", copy);
  rt_write_file(to, "CREATE TABLE public.ok_table (id int);\n", 0644);
  snprintf(to, sizeof to, "%s/0002_broken.sql", copy);
  rt_write_file(to, "CREATE TABLE public.half (id int);\nSELEC 1;\n", 0644);
  configure(copy);
  char *out, *err;
  cr_expect_eq(migrate(&out, &err), 1);
  cr_expect(strstr(err, "0002_broken.sql"), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.schema_migration"),
               1);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM pg_tables WHERE "
                                "tablename = 'half'"),
               0, "the failed file left a table behind");
  rt_remove_tree(copy);
}
