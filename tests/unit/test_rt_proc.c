/* The test support's child processes: what a test reads as a child's
 * output is that child's. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

/* Pids come round again: a file an earlier process left under the name
 * pid and sequence alone would give must not read as the new child's
 * "port=" line (a simulator's port). */
Test(rt_proc, never_reads_an_earlier_process_file_as_the_childs_output,
     .timeout = 30) {
  char stale[256];
  snprintf(stale, sizeof stale, "/tmp/rt-%ld-1.out", (long)getpid());
  rt_write_file(stale, "port=1\n", 0600);
  /* Held open, the earlier file keeps its inode number to itself. */
  int fd = open(stale, O_RDONLY);
  struct stat old, now;
  cr_assert(fd >= 0 && fstat(fd, &old) == 0);
  char *argv[] = {"/bin/sleep", "5", NULL};
  rt_proc_t p;
  rt_proc_start(&p, argv, NULL, NULL);
  cr_expect_str_neq(p.out_path, stale, "the earlier process's file");
  cr_expect_not(rt_wait_for_text(p.out_path, "port=", 1, 200),
                "read the earlier process's output");
  cr_assert_eq(stat(p.out_path, &now), 0, "the child made no output file");
  cr_expect_neq(now.st_ino, old.st_ino, "the child writes the earlier file");
  close(fd);
  rt_proc_kill(&p, SIGKILL);
  cr_expect(rt_proc_wait(&p, 5000));
  unlink(p.out_path);
  unlink(p.err_path);
}

/* A reaped process's output files are listed for the runner process, which
 * removes them when the test passed (and names them when it failed). */
Test(rt_proc, a_reaped_process_is_listed_for_removal, .timeout = 30) {
  const char *dir = getenv("RT_OUTCOME_DIR");
  cr_assert_not_null(dir, "no RT_OUTCOME_DIR: rt_outcome.c is not linked");
  char *argv[] = {"/bin/echo", "hello", NULL};
  rt_proc_t p;
  rt_proc_start(&p, argv, NULL, NULL);
  cr_assert(rt_proc_wait(&p, 10000));
  char path[512];
  snprintf(path, sizeof path, "%s/rt_proc.a_reaped_process_is_listed_for_removal",
           dir);
  char *list = rt_read_file(path);
  cr_assert_not_null(list, "no list at %s", path);
  cr_expect(strstr(list, p.out_path), "%s not in: %s", p.out_path, list);
  cr_expect(strstr(list, p.err_path), "%s not in: %s", p.err_path, list);
  free(list);
  /* Read after the wait, as the tests read a daemon's log. */
  cr_expect_eq(rt_count_text(p.out_path, "hello"), 1);
}
