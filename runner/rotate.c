/* rotate.c - `regentra-runner rotate-key`: re-seals every stored credential
 * under the newest key of the master key file, in one transaction. With
 * --add-key it first appends a fresh random key as the next version. */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "db.h"

/* Appends "<version> <hex>" to the key file, keeping its mode: the old keys
 * must stay, or values sealed under them could never be opened again. */
static int add_key(const char *path, unsigned version, char *err,
                   size_t errlen) {
  unsigned char key[32];
  char hex[65], line[96];
  randombytes_buf(key, sizeof key);
  sodium_bin2hex(hex, sizeof hex, key, sizeof key);
  sodium_memzero(key, sizeof key);
  int n = snprintf(line, sizeof line, "%u %s\n", version, hex);
  sodium_memzero(hex, sizeof hex);
  int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    sodium_memzero(line, sizeof line);
    return RN_EIO;
  }
  ssize_t w = write(fd, line, (size_t)n);
  int sync_rc = fsync(fd);
  close(fd);
  sodium_memzero(line, sizeof line);
  if (w != n || sync_rc < 0) {
    snprintf(err, errlen, "%s: could not append the new key", path);
    return RN_EIO;
  }
  return 0;
}

/* Runs one statement; on failure writes the database's reason to err. */
static PGresult *exec_or_report(PGconn *pg, const char *sql, int n,
                                const char *const *params, char *err,
                                size_t errlen) {
  PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
    return res;
  snprintf(err, errlen, "%s", PQresultErrorMessage(res));
  size_t len = strlen(err);
  while (len > 0 && err[len - 1] == '\n')
    err[--len] = '\0';
  PQclear(res);
  return NULL;
}

/* Re-seals every credential in one transaction: all or nothing. 0, or -1
 * with the reason in err and *code naming its kind. */
static int reseal_all(PGconn *pg, const rn__secrets_t *keys, unsigned *count,
                      const char **code, char *err, size_t errlen) {
  *count = 0;
  *code = "database_error";
  PGresult *res = exec_or_report(pg, "BEGIN", 0, NULL, err, errlen);
  if (!res)
    return -1;
  PQclear(res);
  res = exec_or_report(pg,
                       "SELECT id, sealed_secret FROM integration_credential"
                       " WHERE sealed_secret IS NOT NULL FOR UPDATE",
                       0, NULL, err, errlen);
  int rc = res ? 0 : -1;
  for (int r = 0; res && r < PQntuples(res) && rc == 0; r++) {
    char *plain = NULL, *sealed = NULL;
    size_t len;
    if (rn__secret_open(keys, PQgetvalue(res, r, 1), &plain, &len) < 0) {
      snprintf(err, errlen,
               "credential %s cannot be opened with any key in the key file; "
               "nothing was changed",
               PQgetvalue(res, r, 0));
      *code = "secret_unopenable";
      rc = -1;
      break;
    }
    rc = rn__secret_seal(keys, plain, len, &sealed);
    rn__secret_wipe(plain, len + 1);
    if (rc < 0) {
      snprintf(err, errlen, "sealing credential %s failed: %s",
               PQgetvalue(res, r, 0), rn__strerror(rc));
      *code = "internal";
      rc = -1;
      break;
    }
    char version[16];
    snprintf(version, sizeof version, "%u", rn__secrets_version(keys));
    const char *params[] = {PQgetvalue(res, r, 0), sealed, version};
    PGresult *up = exec_or_report(
        pg,
        "UPDATE integration_credential SET sealed_secret = $2,"
        " key_version = $3::int, updated_at = now() WHERE id = $1::bigint",
        3, params, err, errlen);
    free(sealed);
    if (!up)
      rc = -1;
    PQclear(up);
    if (rc == 0)
      (*count)++;
  }
  PQclear(res);
  char end_err[512];
  res = exec_or_report(pg, rc == 0 ? "COMMIT" : "ROLLBACK", 0, NULL, end_err,
                       sizeof end_err);
  if (!res && rc == 0) {
    snprintf(err, errlen, "%s", end_err);
    rc = -1;
  }
  PQclear(res);
  return rc;
}

int rn__cmd_rotate_key(rn__cli_t *cli) {
  bool add = false;
  for (int i = 0; i < cli->argc; i++) {
    if (strcmp(cli->argv[i], "--add-key") == 0)
      add = true;
    else
      return rn__cli_usage_error("rotate-key: unexpected argument \"%s\"",
                                 cli->argv[i]);
  }
  rn__config_t *config = rn__config_load(cli->config_path, cli->confd);
  if (!config)
    return rn__cli_fail(1, "out_of_memory", NULL,
                        "rotate-key: cannot load the configuration");
  int exit_code = 1;
  rn__secrets_t *keys = NULL;
  PGconn *pg = NULL;
  char err[1024];
  unsigned added = 0;
  if (!config->master_key_file) {
    rn__cli_fail(1, "no_master_key", "set [runner] master_key_file",
                 "rotate-key: [runner] master_key_file is not set in %s",
                 config->path);
    goto done;
  }
  if (rn__secrets_open(config->master_key_file, &keys, err, sizeof err) < 0) {
    rn__cli_fail(1, "no_master_key", NULL, "rotate-key: %s", err);
    goto done;
  }
  if (add) {
    unsigned next = rn__secrets_version(keys) + 1;
    rn__secrets_close(keys);
    keys = NULL;
    if (add_key(config->master_key_file, next, err, sizeof err) < 0 ||
        rn__secrets_open(config->master_key_file, &keys, err, sizeof err) < 0) {
      rn__cli_fail(1, "io_error", NULL, "rotate-key: %s", err);
      goto done;
    }
    added = next;
    if (!cli->json)
      printf("added key version %u to %s\n", next, config->master_key_file);
  }
  if (!config->database_url) {
    rn__cli_fail(1, "no_database",
                 "set [database] url or REGENTRA_DATABASE_URL",
                 "rotate-key: no database configured%s",
                 added ? " (the new key was added; run rotate-key again "
                         "without --add-key once it is)"
                       : "");
    goto done;
  }
  pg = rn__db_connect_blocking(config->database_url, 30000, err, sizeof err);
  if (!pg) {
    rn__cli_fail(1, "database_error", NULL, "rotate-key: %s", err);
    goto done;
  }
  unsigned count;
  const char *code;
  if (reseal_all(pg, keys, &count, &code, err, sizeof err) < 0) {
    rn__cli_fail(1, code, NULL, "rotate-key: %s", err);
    goto done;
  }
  if (cli->json) {
    if (added)
      printf("{\"resealed\": %u, \"key_version\": %u, \"added_key_version\": "
             "%u}\n",
             count, rn__secrets_version(keys), added);
    else
      printf("{\"resealed\": %u, \"key_version\": %u}\n", count,
             rn__secrets_version(keys));
  } else {
    printf("re-sealed %u credential(s) under key version %u\n", count,
           rn__secrets_version(keys));
  }
  exit_code = 0;
done:
  if (pg)
    PQfinish(pg);
  rn__secrets_close(keys);
  rn__config_free(config);
  return exit_code;
}
