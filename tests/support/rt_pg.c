/* rt_pg.c - a real PostgreSQL for tests: a fresh database per call. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"

static char server_dsn[512];
static char cluster_dir[64];

static void stop_cluster(void) {
  if (!cluster_dir[0])
    return;
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1); "
           "%s \"$bin/pg_ctl\" -D %s/data -m immediate stop >/dev/null 2>&1; "
           "rm -rf %s",
           geteuid() == 0 ? "runuser -u postgres --" : "", cluster_dir,
           cluster_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "rt_pg: could not stop the cluster in %s\n", cluster_dir);
}

static void start_cluster(void) {
  snprintf(cluster_dir, sizeof cluster_dir, "/tmp/rt-pg-%ld", (long)getpid());
  const char *as = geteuid() == 0 ? "runuser -u postgres --" : "";
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "set -e; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1); "
           "rm -rf %1$s; mkdir -p %1$s; chmod 755 %1$s; "
           "[ \"$(id -u)\" != 0 ] || chown postgres: %1$s; "
           "%2$s \"$bin/initdb\" -D %1$s/data -U regentra --auth=trust "
           "-E UTF8 --locale=C.UTF-8 >%1$s/initdb.log 2>&1",
           cluster_dir, as);
  if (system(cmd) != 0) {
    fprintf(stderr, "rt_pg: initdb failed (see %s)\n", cluster_dir);
    abort();
  }
  int port = rt_pg_cluster_start(cluster_dir);
  if (port < 0) {
    fprintf(stderr, "rt_pg: could not start a throwaway cluster (see %s)\n",
            cluster_dir);
    abort();
  }
  snprintf(server_dsn, sizeof server_dsn,
           "postgresql://regentra@127.0.0.1:%d/postgres", port);
  atexit(stop_cluster);
}

void rt_pg_print_log(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/server.log", dir);
  char *log = rt_read_file(path);
  fprintf(stderr, "--- %s ---\n%s--- end of server.log ---\n", path,
          log ? log : "(unreadable)\n");
  free(log);
}

int rt_pg_cluster_start(const char *dir) {
  const char *as = geteuid() == 0 ? "runuser -u postgres --" : "";
  char cmd[4096];
  /* Another process may hold the port picked: try others, at random so
   * that test processes started together do not walk the same list. */
  for (int attempt = 0; attempt < 8; attempt++) {
    unsigned r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
      r = (unsigned)getpid() * 7919u + (unsigned)attempt * 104729u;
    int port = 20000 + (int)(r % 30000);
    snprintf(cmd, sizeof cmd,
             "bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1); "
             "%2$s \"$bin/pg_ctl\" -D %1$s/data -l %1$s/server.log -w -t 60 "
             "-o '-c listen_addresses=127.0.0.1 -p %3$d -k %1$s -c fsync=off "
             "-c max_connections=200' start >/dev/null 2>&1",
             dir, as, port);
    if (system(cmd) == 0)
      return port;
  }
  rt_pg_print_log(dir);
  return -1;
}

static PGconn *connect_or_die(const char *dsn) {
  PGconn *conn = PQconnectdb(dsn);
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "rt_pg: cannot connect: %s", PQerrorMessage(conn));
    abort();
  }
  return conn;
}

char *rt_pg_query(const char *dsn, const char *sql) {
  PGconn *conn = connect_or_die(dsn);
  PGresult *res = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    fprintf(stderr, "rt_pg: %s\n  in: %s\n", PQerrorMessage(conn), sql);
    abort();
  }
  char *value = NULL;
  if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
    value = strdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  PQfinish(conn);
  return value;
}

long rt_pg_count(const char *dsn, const char *sql) {
  char *v = rt_pg_query(dsn, sql);
  long n = v ? strtol(v, NULL, 10) : -1;
  free(v);
  return n;
}

bool rt_pg_wait_count(const char *dsn, const char *sql, long want,
                      int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 100) {
    if (rt_pg_count(dsn, sql) >= want)
      return true;
    usleep(100 * 1000);
  }
  return false;
}

const char *rt_pg_fresh_db(void) {
  static char dsn[600];
  static int seq;
  if (!server_dsn[0]) {
    const char *env = getenv("REGENTRA_TEST_DSN");
    if (env && *env)
      snprintf(server_dsn, sizeof server_dsn, "%s", env);
    else
      start_cluster();
  }
  char name[64], sql[128];
  /* Process ids come round again and databases of earlier runs stay on a
   * shared server: a random part keeps the name new. */
  unsigned salt = 0;
  if (getrandom(&salt, sizeof salt, 0) != (ssize_t)sizeof salt)
    salt = (unsigned)time(NULL);
  snprintf(name, sizeof name, "rt_%ld_%d_%08x", (long)getpid(), ++seq, salt);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  free(rt_pg_query(server_dsn, sql));
  /* Replace the database part of the server DSN (URI form). */
  const char *slash = strrchr(server_dsn, '/');
  const char *query = strchr(slash, '?');
  snprintf(dsn, sizeof dsn, "%.*s/%s%s", (int)(slash - server_dsn), server_dsn,
           name, query ? query : "");
  return dsn;
}

void rt_pg_apply_dir(const char *dsn, const char *dir) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "set -e; for f in $(ls '%s'/*.sql | sort); do "
           "psql -X -q -v ON_ERROR_STOP=1 -1 -d '%s' -f \"$f\" >/dev/null; "
           "done",
           dir, dsn);
  if (system(cmd) != 0) {
    fprintf(stderr, "rt_pg: applying %s failed\n", dir);
    abort();
  }
}
