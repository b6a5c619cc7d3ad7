/* rt_proc.c - child processes and files for tests. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"

extern char **environ;

void (*rt_proc_reaped)(const char *out_path, const char *err_path);

long long rt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double rt_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A new, empty file of this process's own, open for the child to write:
 * created here, before the fork, so that whoever reads path after
 * rt_proc_start returns reads what this child wrote and nothing else. A
 * name made of pid and sequence alone was shared with files left in /tmp
 * by an earlier process that had the same pid: read before the child
 * truncated it, such a file gave a stale "port=" of a simulator long gone.
 */
static int open_output(char *path, size_t len, int seq, const char *suffix) {
  snprintf(path, len, "/tmp/rt-%ld-%d-XXXXXX%s", (long)getpid(), seq, suffix);
  int fd = mkostemps(path, (int)strlen(suffix), O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "rt_proc_start: cannot create %s: %s\n", path,
            strerror(errno));
    abort();
  }
  return fd;
}

void rt_proc_start(rt_proc_t *p, char *const argv[], char *const env[],
                   const char *stdin_text) {
  static int seq;
  memset(p, 0, sizeof *p);
  ++seq;
  int out = open_output(p->out_path, sizeof p->out_path, seq, ".out");
  int err = open_output(p->err_path, sizeof p->err_path, seq, ".err");
  int in_pipe[2] = {-1, -1};
  if (stdin_text && pipe(in_pipe) < 0)
    abort();
  fflush(NULL);
  p->pid = fork();
  if (p->pid < 0)
    abort();
  if (p->pid == 0) {
    int in = stdin_text ? in_pipe[0] : open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(out, 1); /* dup2 clears O_CLOEXEC on the copy */
    dup2(err, 2);
    if (stdin_text)
      close(in_pipe[1]);
    for (size_t i = 0; env && env[i]; i++)
      putenv(env[i]);
    setpgid(0, 0);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(out);
  close(err);
  if (stdin_text) {
    close(in_pipe[0]);
    size_t len = strlen(stdin_text);
    if (write(in_pipe[1], stdin_text, len) != (ssize_t)len)
      abort();
    close(in_pipe[1]);
  }
}

void rt_proc_remove_files(const rt_proc_t *p) {
  unlink(p->out_path);
  unlink(p->err_path);
}

/* rt_proc_wait; the reaped process is handed on when tell. */
static bool reap(rt_proc_t *p, int timeout_ms, bool tell) {
  long long deadline = rt_now_ms() + timeout_ms;
  for (;;) {
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
      p->status = WIFEXITED(status) ? WEXITSTATUS(status)
                                    : 128 + WTERMSIG(status);
      p->pid = 0;
      if (tell && rt_proc_reaped)
        rt_proc_reaped(p->out_path, p->err_path);
      return true;
    }
    if (rt_now_ms() > deadline)
      return false;
    usleep(10000);
  }
}

bool rt_proc_wait(rt_proc_t *p, int timeout_ms) {
  return reap(p, timeout_ms, true);
}

void rt_proc_kill(rt_proc_t *p, int sig) {
  if (p->pid > 0)
    kill(p->pid, sig);
}

char *rt_read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (cap - n - 1 == 0)
      buf = realloc(buf, cap *= 2);
  }
  buf[n] = '\0';
  fclose(f);
  return buf;
}

int rt_count_text(const char *path, const char *needle) {
  char *text = rt_read_file(path);
  int count = 0;
  for (char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
    count++;
  free(text);
  return count;
}

bool rt_wait_for_text(const char *path, const char *needle, int count,
                      int timeout_ms) {
  long long deadline = rt_now_ms() + timeout_ms;
  while (rt_count_text(path, needle) < count) {
    if (rt_now_ms() > deadline)
      return false;
    usleep(20000);
  }
  return true;
}

int rt_run(char *const argv[], char *const env[], const char *stdin_text,
           char **out, char **err) {
  rt_proc_t p;
  rt_proc_start(&p, argv, env, stdin_text);
  /* Its output is read and removed here. */
  if (!reap(&p, 60000, false)) {
    rt_proc_kill(&p, SIGKILL);
    reap(&p, 5000, false);
    p.status = -1;
  }
  if (out)
    *out = rt_read_file(p.out_path);
  if (err)
    *err = rt_read_file(p.err_path);
  rt_proc_remove_files(&p);
  return p.status;
}

void rt_write_file(const char *path, const char *text, int mode) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "rt_write_file %s: %s\n", path, strerror(errno));
    abort();
  }
  fputs(text, f);
  fclose(f);
  chmod(path, (mode_t)mode);
}

void rt_copy_file(const char *from, const char *to, int mode) {
  char *text = NULL;
  FILE *in = fopen(from, "rb");
  if (!in) {
    fprintf(stderr, "rt_copy_file %s: %s\n", from, strerror(errno));
    abort();
  }
  FILE *out = fopen(to, "wb");
  if (!out)
    abort();
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    fwrite(buf, 1, n, out);
  fclose(in);
  fclose(out);
  free(text);
  chmod(to, (mode_t)mode);
}

void rt_make_temp_dir(char *buf, size_t len, const char *tag) {
  snprintf(buf, len, "/tmp/rt-%s-XXXXXX", tag);
  if (!mkdtemp(buf))
    abort();
  chmod(buf, 0755);
}

bool rt_make_tls_ca(const char *dir) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -keyout "
           "ca.key -out ca.pem -days 2 -subj /CN=rt-test-ca >/dev/null 2>&1 "
           "&& openssl req -newkey rsa:2048 -nodes -keyout srv.key -out "
           "srv.csr -subj /CN=127.0.0.1 >/dev/null 2>&1 && "
           "printf 'subjectAltName=IP:127.0.0.1\n' > ext.cnf && "
           "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
           "-CAcreateserial -out srv.pem -days 2 -extfile ext.cnf "
           ">/dev/null 2>&1",
           dir);
  return system(cmd) == 0;
}

void rt_remove_tree(const char *path) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0)
    fprintf(stderr, "rt_remove_tree: could not remove %s\n", path);
}
