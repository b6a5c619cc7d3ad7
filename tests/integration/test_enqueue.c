/* What a queued payload may carry: enqueue checks it against the job's
 * declared parameters before inserting, reads it from standard input on
 * "-", explains an empty one, and refuses secret files, which only a local
 * operator may name; a claimed run checks the same again. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_runner.h"

static rt_runner_t runner;
static char dsn[700], secret_path[400];
static rt_proc_t daemon_proc;

/* A fresh database with the queue schema, qprobe installed, and two
 * configured jobs without a schedule: "rec" (qprobe.record) and
 * "nightly-secret" (qprobe.secret). */
static void setup(void) {
  snprintf(dsn, sizeof dsn, "%s", rt_pg_fresh_db());
  static const char *const plugins[] = {RT_QPROBE, NULL};
  rt_runner_prepare(
      &runner, "enqueue", plugins,
      "[job \"rec\"]\nplugin = qprobe\njob = record\n"
      "[job \"nightly-secret\"]\nplugin = qprobe\njob = secret\n");
  rt_runner_write_conf(&runner, "drain_timeout = 10s\n", dsn,
                       "poll_interval = 200ms\n");
  /* A file the daemon must never read on a queued payload's word. */
  snprintf(secret_path, sizeof secret_path, "%s/token", runner.dir);
  rt_write_file(secret_path, "s3cr3t-token\n", 0600);
  rt_runner_migrate(&runner);
  rt_qprobe_table(dsn);
}

static void teardown(void) {
  rt_runner_kill(&daemon_proc);
  rt_remove_tree(runner.dir);
}

static int enqueue(const char *event, const char *payload,
                   const char *stdin_text, char **out, char **err) {
  char *argv[7];
  int argc = 0;
  argv[argc++] = RT_RUNNER;
  argv[argc++] = "enqueue";
  argv[argc++] = (char *)event;
  if (payload)
    argv[argc++] = (char *)payload;
  argv[argc++] = "-c";
  argv[argc++] = runner.conf;
  argv[argc] = NULL;
  return rt_run(argv, NULL, stdin_text, out, err);
}

static long jobs_in_queue(void) {
  return rt_pg_count(dsn, "SELECT count(*) FROM runner.job");
}

TestSuite(enqueue, .init = setup, .fini = teardown, .timeout = 120);

Test(enqueue, refuses_unknown_mistyped_and_missing_parameters_by_name) {
  static const struct {
    const char *event, *payload, *expect;
  } cases[] = {
      {"qprobe.record", "{\"nn\":1}",
       "qprobe.record has no parameter \"nn\" (it takes: n, key, sleep_ms, "
       "fail_until, emit, fail_after_emit, raise)"},
      {"rec", "{\"sleep\":5}", "rec has no parameter \"sleep\""},
      {"qprobe.record", "{\"n\":\"seven\"}",
       "qprobe.record: parameter n = \"seven\": not a whole number"},
      {"rec", "{\"n\":[1]}",
       "rec: parameter \"n\" must be a string, a whole number or a boolean, "
       "not an array"},
      {"qprobe.record", "{\"n\":1.5}", "not a fraction"},
      {"qprobe.secret", "{}",
       "qprobe.secret: missing required parameter \"label\""},
      {"nightly-secret", "{\"token_file\":null}",
       "nightly-secret: missing required parameter \"label\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *out = NULL, *err = NULL;
    int rc = enqueue(cases[i].event, cases[i].payload, NULL, &out, &err);
    cr_expect_eq(rc, 1, "case %zu: exit %d; stderr:\n%s", i, rc, err);
    cr_expect(strstr(err, cases[i].expect), "case %zu: expected \"%s\" in:\n%s",
              i, cases[i].expect, err);
    free(out);
    free(err);
  }
  cr_expect_eq(jobs_in_queue(), 0, "a refused payload was inserted");

  /* Well-formed payloads still go in, by configured name and PLUGIN.JOB. */
  char *out = NULL, *err = NULL;
  cr_expect_eq(enqueue("rec", "{\"n\":\"4\",\"key\":\"k\"}", NULL, &out, &err),
               0, "%s", err);
  free(out);
  free(err);
  cr_expect_eq(enqueue("qprobe.record", NULL, NULL, &out, &err), 0, "%s", err);
  free(out);
  free(err);
  cr_expect_eq(jobs_in_queue(), 2);
}

Test(enqueue, refuses_secret_files_in_a_queued_payload) {
  char with_path[800];
  snprintf(with_path, sizeof with_path,
           "{\"label\":\"x\",\"token_file\":\"%s\"}", secret_path);
  static const char *const events[] = {"qprobe.secret", "nightly-secret"};
  const char *payloads[] = {with_path,
                            "{\"label\":\"x\",\"token_file\":\"-\"}"};
  for (size_t e = 0; e < 2; e++) {
    for (size_t p = 0; p < 2; p++) {
      char *out = NULL, *err = NULL;
      int rc = enqueue(events[e], payloads[p], NULL, &out, &err);
      cr_expect_eq(rc, 1, "%s %s: exit %d", events[e], payloads[p], rc);
      char expected[600];
      snprintf(expected, sizeof expected,
               "%s: parameter token_file names a file; secret files can only "
               "be given on the local command line (regentra-runner run "
               "qprobe.secret token_file=FILE), never in a queued payload",
               events[e]);
      cr_expect(strstr(err, expected), "expected \"%s\" in:\n%s", expected,
                err);
      cr_expect(!strstr(err, "s3cr3t"), "the secret leaked:\n%s", err);
      free(out);
      free(err);
    }
  }
  /* Left out, the required file cannot come from the queue at all. */
  char *out = NULL, *err = NULL;
  cr_expect_eq(enqueue("qprobe.secret", "{\"label\":\"x\"}", NULL, &out, &err),
               1);
  cr_expect(strstr(err, "qprobe.secret needs parameter token_file, a secret "
                        "file that only a local operator can name"),
            "%s", err);
  free(out);
  free(err);
  cr_expect_eq(jobs_in_queue(), 0, "a payload naming a file was inserted");
}

Test(enqueue, local_run_still_reads_secret_files_from_a_file_and_stdin) {
  char arg[600];
  snprintf(arg, sizeof arg, "token_file=%s", secret_path);
  char *argv[] = {RT_RUNNER, "run", "qprobe.secret", "label=x",
                  arg,       "-c",  runner.conf,     NULL};
  char *out = NULL, *err = NULL;
  cr_expect_eq(rt_run(argv, NULL, NULL, &out, &err), 0, "%s", err);
  /* "s3cr3t-token" without its newline. */
  cr_expect(strstr(out, "\"secret_bytes\": 12"), "%s", out);
  free(out);
  free(err);
  char *from_stdin[] = {RT_RUNNER,      "run", "qprobe.secret", "label=x",
                        "token_file=-", "-c",  runner.conf,     NULL};
  cr_expect_eq(rt_run(from_stdin, NULL, "abc\n", &out, &err), 0, "%s", err);
  cr_expect(strstr(out, "\"secret_bytes\": 3"), "%s", out);
  free(out);
  free(err);
}

Test(enqueue, claimed_run_naming_a_secret_file_dies_without_reading_it) {
  /* Rows written past enqueue (by an older version, or by hand). */
  char sql[2048];
  snprintf(sql, sizeof sql,
           "INSERT INTO runner.job (name, payload, max_attempts) VALUES"
           " ('qprobe.secret', '{\"label\":\"a\",\"token_file\":\"%s\"}', 3),"
           " ('nightly-secret', '{\"label\":\"b\",\"token_file\":\"%s\"}', 3),"
           " ('nightly-secret', '{\"label\":\"c\",\"token_file\":\"-\"}', 3),"
           " ('rec', '{\"nn\":1}', 3)",
           secret_path, secret_path);
  free(rt_pg_query(dsn, sql));
  rt_runner_serve(&runner, &daemon_proc, NULL, NULL, 0);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state IN "
                             "('dead', 'completed')",
                             4, 20000),
            "the rows were never finished");
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "state = 'completed'"),
               0, "a run read a file named by its payload");
  /* Refused for good on the first attempt: retrying cannot help. */
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "state = 'dead' AND attempt = 1"),
               4);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "last_error LIKE '%parameter token_file names "
                                "a file; secret files can only be given on "
                                "the local command line%never in a queued "
                                "payload'"),
               3);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "name = 'rec' AND last_error LIKE "
                                "'qprobe.record has no parameter \"nn\"%'"),
               1);
  char *log = rt_runner_stop(&daemon_proc, 30000);
  cr_expect(!strstr(log, "s3cr3t"), "the secret reached the log:\n%s", log);
  free(log);
}

Test(enqueue, reads_the_payload_from_stdin_and_explains_an_empty_one) {
  /* Larger than one command-line argument may be (128 KiB). */
  size_t key_len = 200 * 1024;
  char *payload = malloc(key_len + 64);
  cr_assert(payload);
  int n = snprintf(payload, 64, "{\"n\": 5, \"key\": \"");
  memset(payload + n, 'k', key_len);
  strcpy(payload + n + key_len, "\"}\n");
  char *out = NULL, *err = NULL;
  int rc = enqueue("rec", "-", payload, &out, &err);
  free(payload);
  cr_expect_eq(rc, 0, "exit %d; stderr:\n%s", rc, err);
  cr_expect(strstr(out, "enqueued rec as job "), "%s", out);
  free(out);
  free(err);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM runner.job WHERE "
                                "payload->>'n' = '5' AND "
                                "length(payload->>'key') = 204800"),
               1);

  rc = enqueue("rec", "", NULL, &out, &err);
  cr_expect_eq(rc, 1);
  cr_expect(strstr(err, "enqueue: payload is empty; give a JSON object such "
                        "as '{}'"),
            "%s", err);
  cr_expect(!strstr(err, "invalid input syntax"), "%s", err);
  free(out);
  free(err);
  rc = enqueue("rec", "-", "", &out, &err);
  cr_expect_eq(rc, 1);
  cr_expect(strstr(err, "enqueue: payload is empty (nothing on standard "
                        "input); give a JSON object such as '{}'"),
            "%s", err);
  free(out);
  free(err);
  /* Standard input gets the same checks as an argument. */
  rc = enqueue("rec", "-", "{\"nn\": 1}", &out, &err);
  cr_expect_eq(rc, 1);
  cr_expect(strstr(err, "rec has no parameter \"nn\""), "%s", err);
  free(out);
  free(err);
  cr_expect_eq(jobs_in_queue(), 1);
}
