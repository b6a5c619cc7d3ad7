/* The test support's child processes: what a test reads as a child's
 * output is that child's. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

/* Output files are named by the test process's pid and a sequence number,
 * and pids come round again: a file left by an earlier process must not
 * read as the new child's "port=" line (a simulator's port). */
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
  cr_assert_str_eq(p.out_path, stale, "the first child's file");
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
