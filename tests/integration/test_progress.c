/* Live progress of the long ninjaone commands: the regentra-runner binary
 * with its stderr on a pseudo-terminal, a real PostgreSQL and the NinjaOne
 * simulator. A person at a terminal sees pages, customers and requests;
 * piped stderr, --json and --quiet get not one byte of it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_ninjaone.h"

#define FIXTURE SIM_FIXTURES "/boundaries.json"
#define NOW_S "1767225600"
#define SECRET "boundary-eu-secret"

static rt_nj_t h;
static long long msp;

static void setup(void) {
  rt_nj_setup(&h, "njprogress", SECRET,
              "1 5c4b3a29180f6e5d4c3b2a1908f7e6d5"
              "5c4b3a29180f6e5d4c3b2a1908f7e6d5",
              "--fleet " FIXTURE " --now " NOW_S
              " --rate-limit-minute 0 --rate-limit-hour 0");
  h.env[0] = "REGENTRA_CLOCK_START_MS=" NOW_S "000";
  h.env[1] = "REGENTRA_CLOCK_SCALE=0.000000001";
  h.no_sanitizer_report = true;
  msp = rt_nj_int(&h, "INSERT INTO organization (name, kind) VALUES"
                      " ('Acme MSP', 'MSP') RETURNING id");
  rt_nj_write_conf_source(&h, "warning", "eu",
                          "rate_per_minute = 100000\nrate_per_hour = 1000000\n",
                          "", "ninjaone-mapping", "ninjaone-assets",
                          "ninjaone-evidence", NULL);
  rt_nj_connect(&h, msp, "boundary-eu-client");
}

static void teardown(void) {
  rt_nj_teardown(&h);
}

TestSuite(progress, .init = setup, .fini = teardown, .timeout = 300);

/* The terminal's width: wide enough for every figure unless a test says
 * otherwise (a narrower one cuts the line). */
static unsigned short tty_columns = 200;

/* How a run's stderr is attached. */
enum stderr_kind { ON_TTY, PIPED };

typedef struct run_s {
  int status;
  char *out; /* stdout, always a file */
  char *err; /* stderr: what the terminal or the pipe received */
} run_t;

static void run_free(run_t *r) {
  free(r->out);
  free(r->err);
}

static char *read_all(int fd) {
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  cr_assert(buf);
  for (;;) {
    if (len + 1 >= cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      cr_assert(buf);
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n > 0) {
      len += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    break; /* 0, or EIO once the terminal's last writer has gone */
  }
  buf[len] = '\0';
  return buf;
}

/* `regentra-runner ninjaone ARGS... -c conf` (ARGS: n words, NULL ones
 * left out), with stdout in a file and stderr on a new pseudo-terminal or
 * a pipe. */
static run_t run_args(enum stderr_kind kind, const char *const *args,
                      size_t n) {
  char *argv[32] = {RT_RUNNER, "ninjaone"};
  int argc = 2;
  for (size_t i = 0; i < n && argc < 28; i++)
    if (args[i])
      argv[argc++] = (char *)args[i];
  argv[argc++] = "-c";
  argv[argc++] = h.conf;
  argv[argc] = NULL;

  char out_path[400];
  snprintf(out_path, sizeof out_path, "%s/stdout.txt", h.dir);
  int out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  cr_assert(out_fd >= 0);
  int reader = -1, writer = -1;
  if (kind == ON_TTY) {
    struct winsize size = {.ws_row = 24, .ws_col = tty_columns};
    cr_assert_eq(openpty(&reader, &writer, NULL, NULL, &size), 0, "openpty: %s",
                 strerror(errno));
  } else {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    reader = p[0];
    writer = p[1];
  }
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    int in = open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(out_fd, 1);
    dup2(writer, 2);
    close(reader);
    putenv(h.db_env);
    for (int i = 0; i < 4 && h.env[i]; i++)
      putenv((char *)h.env[i]);
    execv(argv[0], argv);
    _exit(127);
  }
  close(writer);
  close(out_fd);
  run_t r = {0};
  r.err = read_all(reader);
  close(reader);
  int wstatus;
  cr_assert_eq(waitpid(pid, &wstatus, 0), pid);
  r.status =
      WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  r.out = rt_read_file(out_path);
  cr_assert(r.out);
  cr_expect(!strstr(r.out, SECRET) && !strstr(r.err, SECRET),
            "the secret was printed");
  cr_expect(!strstr(r.err, "Sanitizer"), "%s", r.err);
  return r;
}

/* run_args with the words up to the first NULL. */
static run_t run_cmd(enum stderr_kind kind, ...) {
  const char *args[24];
  size_t n = 0;
  va_list ap;
  va_start(ap, kind);
  for (const char *a; (a = va_arg(ap, const char *)) && n < 24;)
    args[n++] = a;
  va_end(ap);
  return run_args(kind, args, n);
}

/* No trace of a progress view: no carriage return, no job line. */
static void expect_no_progress(const run_t *r, const char *job) {
  cr_expect(!strchr(r->err, '\r'), "a line rewritten in place:\n%s", r->err);
  cr_expect(!strstr(r->err, job), "progress of %s:\n%s", job, r->err);
  cr_expect(!strstr(r->out, job) && !strchr(r->out, '\r'),
            "progress on stdout:\n%s", r->out);
}

/* The same command under --json and --quiet on a terminal: the terminal
 * receives nothing at all; --json's stdout is one JSON object. */
static void expect_silent_forms(const char *cmd, const char *a1, const char *a2,
                                const char *a3, const char *job) {
  const char *json_args[] = {cmd, a1, a2, a3, "--json"};
  run_t j = run_args(ON_TTY, json_args, 5);
  cr_expect_eq(j.status, 0, "%s --json: %s%s", cmd, j.out, j.err);
  cr_expect_str_empty(j.err, "%s --json wrote to the terminal:\n%s", cmd,
                      j.err);
  cr_expect(j.out[0] == '{' && !strstr(j.out, job), "%s", j.out);
  run_free(&j);
  const char *quiet_args[] = {cmd, a1, a2, a3, "--quiet"};
  run_t q = run_args(ON_TTY, quiet_args, 5);
  cr_expect_eq(q.status, 0, "%s --quiet: %s%s", cmd, q.out, q.err);
  cr_expect_str_empty(q.err, "%s --quiet wrote to the terminal:\n%s", cmd,
                      q.err);
  run_free(&q);
}

Test(progress, orgs_refresh_shows_pages_and_requests_on_a_terminal_only) {
  const char *m = rt_nj_id(msp);
  run_t tty = run_cmd(ON_TTY, "orgs", "--msp-org", m, "--refresh", NULL);
  cr_assert_eq(tty.status, 0, "%s%s", tty.out, tty.err);
  long long orgs = rt_nj_int(&h,
                             "SELECT count(*) FROM integration_org_mapping"
                             " WHERE msp_org_id = %lld",
                             msp);
  cr_assert_gt(orgs, 0);
  char want[160];
  snprintf(want, sizeof want,
           "\rninjaone-mapping.orgs: listing NinjaOne organizations, 1 page, "
           "%lld organizations, ",
           orgs);
  cr_expect(strstr(tty.err, want), "expected \"%s\" on the terminal:\n%s",
            want + 1, tty.err);
  cr_expect(strstr(tty.err, " requests, "), "%s", tty.err);
  /* The view ends on a line of its own, before anything else is said. */
  cr_expect(tty.err[strlen(tty.err) - 1] == '\n', "%s", tty.err);
  cr_expect(!strstr(tty.out, "ninjaone-mapping.orgs:"), "%s", tty.out);

  /* Piped: not a byte of it, and stdout is the very same. */
  run_t piped = run_cmd(PIPED, "orgs", "--msp-org", m, "--refresh", NULL);
  cr_assert_eq(piped.status, 0, "%s%s", piped.out, piped.err);
  expect_no_progress(&piped, "ninjaone-mapping.orgs");
  cr_expect_str_empty(piped.err, "%s", piped.err);
  cr_expect_str_eq(piped.out, tty.out);
  run_free(&piped);
  run_free(&tty);
  expect_silent_forms("orgs", "--msp-org", m, "--refresh",
                      "ninjaone-mapping.orgs");
}

/* Maps a NinjaOne organization to a new company promoted to a new
 * compliance organization. */
static void map_promoted(const char *org) {
  long long customer = rt_nj_int(&h,
                                 "INSERT INTO organization (name, kind)"
                                 " VALUES ('Customer %s', 'CUSTOMER')"
                                 " RETURNING id",
                                 org);
  long long company = rt_nj_int(
      &h,
      "INSERT INTO portal_company (msp_org_id, name,"
      " converted_to_organization_id) VALUES (%lld, 'Company %s', %lld)"
      " RETURNING id",
      msp, org, customer);
  char c[24];
  snprintf(c, sizeof c, "%lld", company);
  char *out, *err;
  int rc = rt_nj_run(&h, &out, &err, NULL, "map", "--msp-org", rt_nj_id(msp),
                     "--org", org, "--use-existing", c, NULL);
  cr_assert_eq(rc, 0, "map %s: %s%s", org, out, err);
  free(out);
  free(err);
}

Test(progress, sync_shows_organizations_pages_and_devices_on_a_terminal_only) {
  map_promoted("101");
  map_promoted("201");
  map_promoted("301");
  run_t tty = run_cmd(ON_TTY, "sync", "--msp-org", rt_nj_id(msp), NULL);
  cr_assert_eq(tty.status, 0, "%s%s", tty.out, tty.err);
  long long devices = rt_nj_int(&h, "SELECT count(*) FROM asset WHERE"
                                    " external_source = 'ninjaone'");
  cr_assert_gt(devices, 0);
  /* The final line: every organization walked, one page each. */
  cr_expect(strstr(tty.err, "\rninjaone-assets.sync: syncing devices, 3/3 "
                            "organizations, 3 pages, "),
            "%s", tty.err);
  cr_expect(strstr(tty.err, " devices, ") && strstr(tty.err, " requests, "),
            "%s", tty.err);
  run_free(&tty);

  run_t piped = run_cmd(PIPED, "sync", "--msp-org", rt_nj_id(msp), NULL);
  cr_assert_eq(piped.status, 0, "%s%s", piped.out, piped.err);
  expect_no_progress(&piped, "ninjaone-assets.sync");
  run_free(&piped);
  expect_silent_forms("sync", "--msp-org", rt_nj_id(msp), NULL,
                      "ninjaone-assets.sync");
}

Test(progress, sweep_counts_customers_done_of_all_on_a_terminal_only) {
  map_promoted("101");
  map_promoted("201");
  run_t tty = run_cmd(ON_TTY, "sweep", NULL);
  cr_assert_eq(tty.status, 0, "%s%s", tty.out, tty.err);
  /* Before the first customer and after the last. */
  cr_expect(strstr(tty.err, "ninjaone-evidence.sweep: sweeping customers, "
                            "2/2 customers, "),
            "%s", tty.err);
  cr_expect(strstr(tty.err, " approved devices, ") &&
                strstr(tty.err, " requests, "),
            "%s", tty.err);
  /* The summary on stdout is untouched by it. */
  cr_expect(strstr(tty.out, "evidence sweep (inline, no queue): 2 "
                            "customer(s), 2 swept, 0 failed"),
            "%s", tty.out);
  run_free(&tty);

  run_t piped = run_cmd(PIPED, "sweep", NULL);
  cr_assert_eq(piped.status, 0, "%s%s", piped.out, piped.err);
  expect_no_progress(&piped, "ninjaone-evidence.sweep");
  run_free(&piped);
  expect_silent_forms("sweep", NULL, NULL, NULL, "ninjaone-evidence.sweep");
}

/* A line wider than the terminal would wrap, and \r would then rewrite
 * only its last row: every drawn line fits in one row. */
Test(progress, a_narrow_terminal_gets_lines_that_fit_in_one_row) {
  tty_columns = 40;
  run_t tty =
      run_cmd(ON_TTY, "orgs", "--msp-org", rt_nj_id(msp), "--refresh", NULL);
  tty_columns = 200;
  cr_assert_eq(tty.status, 0, "%s%s", tty.out, tty.err);
  cr_expect(strstr(tty.err, "\rninjaone-mapping.orgs: listing NinjaOn"), "%s",
            tty.err);
  size_t drawn = 0;
  for (const char *p = tty.err; (p = strchr(p, '\r'));) {
    p++;
    size_t len = strcspn(p, "\r\n");
    cr_expect_leq(len, 39, "a line of %zu columns: %.*s", len, (int)len, p);
    drawn++;
  }
  cr_expect_gt(drawn, 0);
  run_free(&tty);
}
