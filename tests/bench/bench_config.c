/* bench_config - how long runner.conf + conf.d take to parse, and the peak
 * resident memory of doing it. Prints figures; it is not a pass/fail test.
 *
 *   bench_config [case ...]
 *
 * Cases (all by default):
 *   keys40k      one [job] section with 40,000 plugin option keys
 *   keys160k     one [job] section with 160,000 plugin option keys
 *   sections100k 100,000 [job] sections of two keys each
 *   jobs20k      20,000 [job] sections of four keys each (80,000 keys)
 *   long1k       1,000 keys with 100 KB values each
 *
 * Each case parses in a child process of its own, so that its peak RSS is
 * its own (getrusage of the child, in MiB). "wall s" is the wall time of
 * rn__config_load alone, which a reload runs on the thread pool, and "CPU s"
 * the child's CPU time (user + system) up to then; writing the files is not
 * counted. "loop s" is what a reload then does on the loop: building the
 * generation from that config (with the hello plugin) and its errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "rt.h"

typedef struct bench_case_s {
  const char *name;
  void (*write)(FILE *f, long n);
  long n;
} bench_case_t;

static void write_keys(FILE *f, long n) {
  fprintf(f, "[job \"big\"]\nplugin = hello\njob = greet\n");
  for (long i = 0; i < n; i++)
    fprintf(f, "option_%07ld = value %ld\n", i, i);
}

static void write_sections(FILE *f, long n) {
  for (long i = 0; i < n; i++)
    fprintf(f, "[job \"job-%07ld\"]\nplugin = hello\njob = greet\n\n", i);
}

static void write_jobs(FILE *f, long n) {
  for (long i = 0; i < n; i++)
    fprintf(f,
            "[job \"job-%07ld\"]\nplugin = hello\njob = greet\n"
            "timeout = 10m\nschedule = %ld * * * *\n\n",
            i, i % 60);
}

static void write_long_values(FILE *f, long n) {
  enum { VALUE_BYTES = 100 * 1024 };
  static char value[VALUE_BYTES + 1];
  memset(value, 'v', VALUE_BYTES);
  fprintf(f, "[job \"long\"]\nplugin = hello\njob = greet\n");
  for (long i = 0; i < n; i++)
    fprintf(f, "option_%07ld = %s\n", i, value);
}

static const bench_case_t cases[] = {
    {"keys40k", write_keys, 40000},
    {"keys160k", write_keys, 160000},
    {"sections100k", write_sections, 100000},
    {"jobs20k", write_jobs, 20000},
    {"long1k", write_long_values, 1000},
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(const bench_case_t *c) {
  char dir[256], path[600], text[1024];
  rt_make_temp_dir(dir, sizeof dir, "bench-config");
  snprintf(path, sizeof path, "%s/runner.conf", dir);
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s/plugins\nstate_dir = %s/state\n"
           "log_level = error\n",
           dir, dir);
  rt_write_file(path, text, 0644);
  snprintf(path, sizeof path, "%s/plugins", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/plugins/hello.so", dir);
  rt_copy_file(RT_PLUGIN_DIR "/hello.so", path, 0755);
  snprintf(path, sizeof path, "%s/conf.d", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/conf.d/50-bench.conf", dir);
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  c->write(f, c->n);
  long bytes = ftell(f);
  fclose(f);
  snprintf(path, sizeof path, "%s/runner.conf", dir);

  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    double t0 = now_s();
    rn__config_t *config = rn__config_load(path, NULL);
    double parse_s = now_s() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    if (!config)
      _exit(1);
    size_t njobs = config->njobs, parse_errors = config->nerrors;
    uv_loop_t loop;
    rn__runner_t runner;
    if (uv_loop_init(&loop) != 0 ||
        rn__runner_init(&runner, &loop, path, NULL) != 0)
      _exit(1);
    rn__log_set_level(RN_LOG_ERR);
    double t1 = now_s();
    if (rn__generation_build(&runner, config, &runner.gen) != 0)
      _exit(1);
    double loop_s = now_s() - t1;
    printf("%-13s %7ld %9.1f %9.3f %9.3f %13.1f %9.3f %6zu %6zu %6zu\n",
           c->name, c->n, (double)bytes / (1024 * 1024), parse_s, cpu_s,
           (double)ru.ru_maxrss / 1024, loop_s, njobs, parse_errors,
           config->nerrors - parse_errors);
    fflush(stdout);
    rn__runner_close(&runner);
    uv_loop_close(&loop);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    printf("%-13s child failed (status %d)\n", c->name, status);
  rt_remove_tree(dir);
}

int main(int argc, char **argv) {
  printf("%-13s %7s %9s %9s %9s %13s %9s %6s %6s %6s\n", "case", "n",
         "file MiB", "wall s", "CPU s", "peak RSS MiB", "loop s", "jobs",
         "errors", "+build");
  for (size_t i = 0; i < RN_ARRAY_SIZE(cases); i++) {
    bool wanted = argc < 2;
    for (int a = 1; a < argc; a++)
      wanted = wanted || strcmp(argv[a], cases[i].name) == 0;
    if (wanted)
      run(&cases[i]);
  }
  return 0;
}
