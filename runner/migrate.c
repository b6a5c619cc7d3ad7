/* migrate.c - numbered SQL files applied once each, in numeric order across
 * every migrations directory (the runner's 0001.., the platform's 1001..).
 *
 * A session advisory lock makes a second `migrate` wait for the first and
 * then find nothing left to do. Each file runs as one script (they hold $$
 * bodies, so they are sent whole) inside its own transaction together with
 * its row in runner.schema_migration, which keeps the file's SHA-256: a file
 * edited after it was applied stops every later migrate. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MIGRATE_LOCK_SQL                                                     \
  "SELECT pg_advisory_lock(hashtextextended('regentra-runner migrate', 0))"
#define MIGRATE_UNLOCK_SQL                                                   \
  "SELECT pg_advisory_unlock(hashtextextended('regentra-runner migrate', 0))"

typedef struct migration_s {
  long version;
  char *name; /* file name */
  char *path;
} migration_t;

typedef struct migrations_s {
  migration_t *items;
  size_t count, cap;
} migrations_t;

static void migrations_free(migrations_t *m) {
  for (size_t i = 0; i < m->count; i++) {
    free(m->items[i].name);
    free(m->items[i].path);
  }
  free(m->items);
}

static int by_version(const void *a, const void *b) {
  const migration_t *x = a, *y = b;
  return (x->version > y->version) - (x->version < y->version);
}

/* NNNN_name.sql: digits, an underscore, then anything. */
static long file_version(const char *name) {
  size_t len = strlen(name), digits = 0;
  while (isdigit((unsigned char)name[digits]))
    digits++;
  if (digits == 0 || name[digits] != '_' || len < 5 ||
      strcmp(name + len - 4, ".sql") != 0)
    return -1;
  return strtol(name, NULL, 10);
}

static int scan_dir(const char *dir, migrations_t *m, char *err,
                    size_t errlen) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, errlen, "cannot read migrations directory %s: %s", dir,
             strerror(errno));
    return RN_EIO;
  }
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    long version = file_version(e->d_name);
    if (version < 0)
      continue;
    for (size_t i = 0; i < m->count; i++) {
      if (m->items[i].version == version) {
        snprintf(err, errlen, "migration number %ld is used twice: %s and "
                 "%s/%s", version, m->items[i].path, dir, e->d_name);
        rc = RN_EEXIST;
      }
    }
    if (rc)
      break;
    if (m->count == m->cap) {
      size_t cap = m->cap ? m->cap * 2 : 16;
      migration_t *grown = realloc(m->items, cap * sizeof *grown);
      if (!grown) {
        rc = RN_ENOMEM;
        break;
      }
      m->items = grown;
      m->cap = cap;
    }
    migration_t *item = &m->items[m->count];
    item->version = version;
    item->name = strdup(e->d_name);
    if (asprintf(&item->path, "%s/%s", dir, e->d_name) < 0)
      item->path = NULL;
    if (!item->name || !item->path) {
      free(item->name);
      free(item->path);
      rc = RN_ENOMEM;
      break;
    }
    m->count++;
  }
  closedir(d);
  return rc;
}

static char *read_whole(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1)
      break;
    char *grown = realloc(buf, cap * 2);
    if (!grown) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = grown;
    cap *= 2;
  }
  bool failed = ferror(f);
  fclose(f);
  if (!buf || failed) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

static void sha256_hex(const char *data, size_t len, char out[65]) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, (const unsigned char *)data, len);
  for (size_t i = 0; i < sizeof digest; i++)
    snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* Runs one statement (or script) and checks it ended as expected. */
static int run_sql(PGconn *pg, const char *sql, char *err, size_t errlen,
                   const char *what) {
  PGresult *res = PQexec(pg, sql);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  int rc = 0;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
    snprintf(err, errlen, "%s: %s", what, msg);
    err[strcspn(err, "\n")] = '\0';
    rc = RN_EDB;
  }
  PQclear(res);
  return rc;
}

static int apply_one(PGconn *pg, const migration_t *m, const char *script,
                     const char *checksum, char *err, size_t errlen) {
  char what[600];
  snprintf(what, sizeof what, "migration %s", m->path);
  int rc = run_sql(pg, "BEGIN", err, errlen, what);
  if (rc == 0)
    rc = run_sql(pg, script, err, errlen, what);
  if (rc == 0) {
    char version[32];
    snprintf(version, sizeof version, "%ld", m->version);
    const char *params[] = {version, m->name, checksum};
    PGresult *res = PQexecParams(
        pg,
        "INSERT INTO runner.schema_migration (version, name, checksum) "
        "VALUES ($1::integer, $2, $3)",
        3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
      snprintf(err, errlen, "%s: recording it failed: %s", what,
               res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
      err[strcspn(err, "\n")] = '\0';
      rc = RN_EDB;
    }
    PQclear(res);
  }
  if (rc == 0)
    rc = run_sql(pg, "COMMIT", err, errlen, what);
  if (rc < 0) {
    char ignored[256];
    run_sql(pg, "ROLLBACK", ignored, sizeof ignored, "rollback");
  }
  return rc;
}

static int migrate_locked(PGconn *pg, migrations_t *all, unsigned *applied,
                          unsigned *skipped, char *err, size_t errlen) {
  int rc = run_sql(pg,
                   "CREATE SCHEMA IF NOT EXISTS runner;"
                   "CREATE TABLE IF NOT EXISTS runner.schema_migration ("
                   " version integer PRIMARY KEY,"
                   " name text NOT NULL,"
                   " checksum text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())",
                   err, errlen, "creating runner.schema_migration");
  if (rc < 0)
    return rc;
  PGresult *done = PQexec(
      pg, "SELECT version, checksum, name FROM runner.schema_migration");
  if (!done || PQresultStatus(done) != PGRES_TUPLES_OK) {
    snprintf(err, errlen, "reading runner.schema_migration: %s",
             done ? PQresultErrorMessage(done) : PQerrorMessage(pg));
    err[strcspn(err, "\n")] = '\0';
    PQclear(done);
    return RN_EDB;
  }
  /* Check every applied file first: a changed one stops everything. */
  char **scripts = calloc(all->count ? all->count : 1, sizeof *scripts);
  char(*sums)[65] = calloc(all->count ? all->count : 1, sizeof *sums);
  bool *is_done = calloc(all->count ? all->count : 1, sizeof *is_done);
  if (!scripts || !sums || !is_done)
    rc = RN_ENOMEM;
  for (size_t i = 0; rc == 0 && i < all->count; i++) {
    size_t len;
    scripts[i] = read_whole(all->items[i].path, &len);
    if (!scripts[i]) {
      snprintf(err, errlen, "cannot read %s: %s", all->items[i].path,
               strerror(errno));
      rc = RN_EIO;
      break;
    }
    sha256_hex(scripts[i], len, sums[i]);
    for (int r = 0; r < PQntuples(done); r++) {
      if (strtol(PQgetvalue(done, r, 0), NULL, 10) != all->items[i].version)
        continue;
      is_done[i] = true;
      if (strcmp(PQgetvalue(done, r, 1), sums[i]) != 0) {
        snprintf(err, errlen,
                 "migration %s was changed after it was applied (as %s); "
                 "refusing to migrate: restore the file and add a new "
                 "numbered migration instead",
                 all->items[i].path, PQgetvalue(done, r, 2));
        rc = RN_ESTATE;
      }
    }
  }
  PQclear(done);
  for (size_t i = 0; rc == 0 && i < all->count; i++) {
    if (is_done[i]) {
      (*skipped)++;
      continue;
    }
    rc = apply_one(pg, &all->items[i], scripts[i], sums[i], err, errlen);
    if (rc == 0) {
      (*applied)++;
      rn__log(RN_LOG_NOTICE, "migrate", "applied %s", all->items[i].name);
    }
  }
  for (size_t i = 0; scripts && i < all->count; i++)
    free(scripts[i]);
  free(scripts);
  free(sums);
  free(is_done);
  return rc;
}

int rn__migrate(void *conn, const char *dirs, unsigned *applied,
                unsigned *skipped, char *err, size_t errlen) {
  PGconn *pg = conn;
  *applied = *skipped = 0;
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialize");
    return RN_ECRYPTO;
  }
  migrations_t all = {0};
  char *list = strdup(dirs ? dirs : "");
  if (!list)
    return RN_ENOMEM;
  int rc = 0;
  char *save = NULL;
  for (char *dir = strtok_r(list, ":", &save); dir && rc == 0;
       dir = strtok_r(NULL, ":", &save))
    if (*dir)
      rc = scan_dir(dir, &all, err, errlen);
  free(list);
  if (rc == 0 && all.count == 0) {
    snprintf(err, errlen, "no NNNN_name.sql files in %s", dirs);
    rc = RN_ENOENT;
  }
  if (rc == 0) {
    qsort(all.items, all.count, sizeof *all.items, by_version);
    rc = run_sql(pg, MIGRATE_LOCK_SQL, err, errlen, "taking the migrate lock");
    if (rc == 0) {
      rc = migrate_locked(pg, &all, applied, skipped, err, errlen);
      char ignored[256];
      run_sql(pg, MIGRATE_UNLOCK_SQL, ignored, sizeof ignored, "unlock");
    }
  }
  migrations_free(&all);
  return rc;
}
