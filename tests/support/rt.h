/* rt.h - test support: a real PostgreSQL, child processes, files. */
#ifndef RT_H
#define RT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A connection string for a new, empty database of its own. Uses
 * REGENTRA_TEST_DSN's server when set; otherwise starts a throwaway cluster
 * (initdb in a temp dir, as the postgres user when run as root) once per
 * process and stops it at exit. Returns a static string; aborts on failure
 * with a message. */
const char *rt_pg_fresh_db(void);
/* Runs one SQL statement on dsn (blocking); returns the first value of the
 * first row (new, free it) or NULL. Aborts the test on an error. */
char *rt_pg_query(const char *dsn, const char *sql);
long rt_pg_count(const char *dsn, const char *sql);
/* Polls the count of sql (every 100 ms, up to timeout_ms) until it is at
 * least want; false when it never was. */
bool rt_pg_wait_count(const char *dsn, const char *sql, long want,
                      int timeout_ms);
/* Starts the cluster initdb'd in dir/data (logging to dir/server.log) on a
 * random port, trying other ports when the one picked is taken; returns
 * the port, or -1 after printing server.log to stderr. */
int rt_pg_cluster_start(const char *dir);
/* Prints dir/server.log to stderr, to say why a cluster did not start. */
void rt_pg_print_log(const char *dir);
/* Applies every *.sql of dir in name order, each as one transaction. */
void rt_pg_apply_dir(const char *dsn, const char *dir);

/* A child process whose stdout and stderr go to files. */
typedef struct rt_proc_s {
  pid_t pid;
  char out_path[256];
  char err_path[256];
  int status; /* after rt_proc_wait: exit code, or 128 + signal */
} rt_proc_t;

/* argv is NULL-terminated; env entries "K=V" are added (NULL-terminated or
 * NULL). Standard input is /dev/null unless stdin_text is given. The output
 * files are new and empty when it returns (names of their own, never one
 * left by an earlier process). */
void rt_proc_start(rt_proc_t *p, char *const argv[], char *const env[],
                   const char *stdin_text);
/* Removes the output files (after the last read of them). */
void rt_proc_remove_files(const rt_proc_t *p);
/* Waits up to timeout_ms; returns false if it is still running. A process
 * reaped here is handed to rt_proc_reaped, when set: in a Criterion test
 * (rt_outcome.c) its output files are removed when the test ends, unless
 * the test failed, when they are kept and named. */
bool rt_proc_wait(rt_proc_t *p, int timeout_ms);
extern void (*rt_proc_reaped)(const char *out_path, const char *err_path);
void rt_proc_kill(rt_proc_t *p, int sig);
/* Waits until file contains needle `count` times; false on timeout. */
bool rt_wait_for_text(const char *path, const char *needle, int count,
                      int timeout_ms);
int rt_count_text(const char *path, const char *needle);
/* Runs argv to completion (timeout 60 s) and returns its exit status; the
 * outputs are read into *out and *err (new; may pass NULL). */
int rt_run(char *const argv[], char *const env[], const char *stdin_text,
           char **out, char **err);

/* The monotonic clock, for wall times and deadlines. */
long long rt_now_ms(void);
double rt_now_s(void);

/* Files. */
char *rt_read_file(const char *path); /* new; NULL if unreadable */
void rt_write_file(const char *path, const char *text, int mode);
void rt_copy_file(const char *from, const char *to, int mode);
/* A fresh directory under /tmp (static buffer per call site is fine). */
void rt_make_temp_dir(char *buf, size_t len, const char *tag);
/* In dir: a throwaway CA (ca.pem, ca.key) and a server certificate it
 * signed for 127.0.0.1 (srv.pem, srv.key), made by the openssl command;
 * false when that failed. */
bool rt_make_tls_ca(const char *dir);
void rt_remove_tree(const char *path);

#endif
