/* rt_outcome.c - the output files (/tmp/rt-*.out, .err) of the processes a
 * Criterion test started and reaped: removed when the test passed, kept
 * when it failed or crashed, with their paths on stderr, so that the
 * failure can be read. Linked into every Criterion test executable.
 *
 * The test runs in a worker process; its outcome is known in the runner
 * process that forked it (the report hooks run there). The worker lists
 * each reaped process's files in DIR/SUITE.TEST, DIR being made by the
 * runner before the first test and passed on in RT_OUTCOME_DIR; after the
 * test's fini the runner removes or names what the list holds. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"

#define DIR_ENV "RT_OUTCOME_DIR"

/* The runner's directory of lists ("" when it could not be made). */
static char list_dir[64];

static void list_path(char *buf, size_t len, const char *dir,
                      const struct criterion_test *test) {
  snprintf(buf, len, "%s/%s.%s", dir, test->category, test->name);
}

/* In the worker: appends the two paths to the current test's list. */
static void note_reaped(const char *out_path, const char *err_path) {
  const char *dir = getenv(DIR_ENV);
  if (!dir || !*dir || !criterion_current_test)
    return;
  char path[512];
  list_path(path, sizeof path, dir, criterion_current_test);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return; /* the files stay, as they did before */
  char lines[600];
  int n = snprintf(lines, sizeof lines, "%s\n%s\n", out_path, err_path);
  if (n > 0 && (size_t)n < sizeof lines &&
      write(fd, lines, (size_t)n) != (ssize_t)n)
    fprintf(stderr, "rt_outcome: could not list %s\n", out_path);
  close(fd);
}

__attribute__((constructor)) static void install(void) {
  rt_proc_reaped = note_reaped;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set) {
  (void)set;
  snprintf(list_dir, sizeof list_dir, "/tmp/rt-outcome-XXXXXX");
  if (!mkdtemp(list_dir)) {
    list_dir[0] = '\0';
    return;
  }
  setenv(DIR_ENV, list_dir, 1);
}

/* In the runner: the test is over; removes its processes' files, or names
 * them when it did not pass. */
static void settle(struct criterion_test_stats *stats) {
  if (!list_dir[0])
    return;
  char path[512];
  list_path(path, sizeof path, list_dir, stats->test);
  char *list = rt_read_file(path);
  if (!list)
    return;
  bool passed = stats->test_status == CR_STATUS_PASSED &&
                stats->failed_asserts == 0 && !stats->crashed &&
                !stats->timed_out;
  bool said = false;
  for (char *line = list, *next; *line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    else
      next = line + strlen(line);
    if (!*line)
      continue;
    if (passed) {
      if (unlink(line) != 0 && errno != ENOENT)
        fprintf(stderr, "rt_outcome: could not remove %s\n", line);
    } else if (access(line, F_OK) == 0) {
      if (!said)
        fprintf(stderr, "%s::%s: the output of its processes is kept:\n",
                stats->test->category, stats->test->name);
      said = true;
      fprintf(stderr, "  %s\n", line);
    }
  }
  free(list);
  unlink(path);
}

ReportHook(POST_FINI)(struct criterion_test_stats *stats) {
  settle(stats);
}

ReportHook(TEST_CRASH)(struct criterion_test_stats *stats) {
  settle(stats);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
  (void)stats;
  if (list_dir[0])
    rmdir(list_dir);
}
