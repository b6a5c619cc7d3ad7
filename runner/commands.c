/* commands.c - subcommands owned by modules other than cli.c: the queue's
 * operator commands. They are short-lived processes, so they talk to the
 * database with blocking libpq calls. */
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"

/* How long an operator command waits for a database that is down. */
#define CLI_DB_WAIT_MS 30000

/* Reads runner.conf (and conf.d) only: migrate needs no plugins. */
static rn__config_t *load_config_only(rn__cli_t *cli) {
  rn__config_t *config = rn__config_load(cli->config_path, cli->confd);
  if (!config) {
    fprintf(stderr, "regentra-runner: out of memory\n");
    return NULL;
  }
  for (size_t i = 0; i < config->nerrors; i++)
    fprintf(stderr, "regentra-runner: %s\n", config->errors[i]);
  return config;
}

static PGconn *connect_cli(const char *url) {
  if (!url || !*url) {
    rn__cli_fail(1, "no_database",
                 "set [database] url in runner.conf or REGENTRA_DATABASE_URL",
                 "no database configured");
    return NULL;
  }
  char err[1024];
  PGconn *pg = rn__db_connect_blocking(url, CLI_DB_WAIT_MS, err, sizeof err);
  if (!pg)
    rn__cli_fail(1, "database_error", "is PostgreSQL up and the url right?",
                 "%s", err);
  return pg;
}

/* One statement; NULL (after printing why) on error. */
static PGresult *query(PGconn *pg, const char *sql, int n,
                       const char *const *params) {
  PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
    return res;
  const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
  rn__cli_fail(1, "database_error",
               strstr(msg, "does not exist") ? "run 'regentra-runner migrate' "
                                               "first"
                                             : NULL,
               "%.*s", (int)strcspn(msg, "\n"), msg);
  PQclear(res);
  return NULL;
}

/* ----------------------------------------------------------- migrate */

static void ignore_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static int cmd_migrate(rn__cli_t *cli) {
  if (cli->argc > 0)
    return rn__cli_usage_error("migrate takes no arguments");
  rn__config_t *config = load_config_only(cli);
  if (!config)
    return 1;
  PGconn *pg = connect_cli(config->database_url);
  if (!pg) {
    rn__config_free(config);
    return 1;
  }
  /* Notices such as "already exists, skipping" are noise here. */
  PQsetNoticeProcessor(pg, ignore_notice, NULL);
  unsigned applied, skipped;
  char err[2048];
  int rc = rn__migrate(pg, config->migrations_dir, &applied, &skipped, err,
                       sizeof err);
  PQfinish(pg);
  if (rc < 0) {
    rn__cli_fail(1, "migration_failed", NULL, "migrate: %s", err);
    rn__config_free(config);
    return 1;
  }
  if (cli->json)
    printf("{\"applied\": %u, \"already_applied\": %u}\n", applied, skipped);
  else
    printf("migrations: %u applied, %u already applied (%s)\n", applied,
           skipped, config->migrations_dir);
  rn__config_free(config);
  return 0;
}

/* -------------------------------------------------------------- jobs */

static json_t *rows_json(PGresult *res) {
  json_t *list = json_array();
  for (int r = 0; r < PQntuples(res); r++) {
    json_t *row = json_object();
    for (int c = 0; c < PQnfields(res); c++) {
      json_t *v;
      if (PQgetisnull(res, r, c))
        v = json_null();
      else if (PQftype(res, c) == 20 || PQftype(res, c) == 23) /* int8, int4 */
        v = json_integer(strtoll(PQgetvalue(res, r, c), NULL, 10));
      else
        v = json_string(PQgetvalue(res, r, c));
      json_object_set_new(row, PQfname(res, c), v);
    }
    json_array_append_new(list, row);
  }
  return list;
}

static const char *value_or(PGresult *res, int r, int c, const char *other) {
  return PQgetisnull(res, r, c) ? other : PQgetvalue(res, r, c);
}

/* A stored error in the text output: in full, as --json gives it, with each
 * further line indented under its job and control characters (an escape
 * sequence quoted from an upstream) shown as '?'. */
static void print_error(const char *text) {
  for (const char *p = text; *p; p++) {
    if (*p == '\n')
      fputs("\n      ", stdout);
    else if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
      putchar('?');
    else
      putchar(*p);
  }
  putchar('\n');
}

static int cmd_jobs(rn__cli_t *cli) {
  if (cli->argc > 0)
    return rn__cli_usage_error("jobs takes no arguments besides --json");
  rn__config_t *config = load_config_only(cli);
  if (!config)
    return 1;
  PGconn *pg = connect_cli(config->database_url);
  rn__config_free(config);
  if (!pg)
    return 1;
  PGresult *depth = query(
      pg,
      "SELECT s.state, count(j.id)::int AS count,"
      " (count(j.id) FILTER (WHERE j.run_at <= now()))::int AS due"
      " FROM unnest(ARRAY['available','running','completed','dead']) AS"
      " s(state) LEFT JOIN runner.job j ON j.state = s.state"
      " GROUP BY s.state ORDER BY array_position(ARRAY['available',"
      "'running','completed','dead'], s.state)",
      0, NULL);
  PGresult *running = depth ? query(
      pg,
      "SELECT id, name, attempt, max_attempts, lease_owner,"
      " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
      " AS started_at,"
      " (extract(epoch FROM now() - started_at) * 1000)::bigint AS running_ms"
      " FROM runner.job WHERE state = 'running' ORDER BY started_at LIMIT 50",
      0, NULL) : NULL;
  /* finished_by: the runner whose attempt ended last (lease_owner is gone
   * by then); NULL for rows that ended before migration 0004. */
  PGresult *failing = running ? query(
      pg,
      "SELECT id, name, attempt, max_attempts, last_error,"
      " to_char(run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
      " AS retry_at, finished_by FROM runner.job WHERE state = 'available'"
      " AND last_error IS NOT NULL ORDER BY id DESC LIMIT 20",
      0, NULL) : NULL;
  PGresult *dead = failing ? query(
      pg,
      "SELECT id, name, attempt, last_error,"
      " to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
      " AS died_at, finished_by FROM runner.job WHERE state = 'dead'"
      " ORDER BY finished_at DESC, id DESC LIMIT 20",
      0, NULL) : NULL;
  PGresult *completed = dead ? query(
      pg,
      "SELECT id, name, attempt,"
      " to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
      " AS finished_at, duration_ms, finished_by FROM runner.job"
      " WHERE state = 'completed' ORDER BY finished_at DESC, id DESC LIMIT 20",
      0, NULL) : NULL;
  int rc = completed ? 0 : 1;
  if (completed && cli->json) {
    json_t *out = json_object();
    json_t *by_state = json_object();
    for (int r = 0; r < PQntuples(depth); r++)
      json_object_set_new(by_state, PQgetvalue(depth, r, 0),
                          json_integer(atoi(PQgetvalue(depth, r, 1))));
    json_object_set_new(out, "depth", by_state);
    json_object_set_new(out, "due",
                        json_integer(atoi(PQgetvalue(depth, 0, 2))));
    json_object_set_new(out, "running", rows_json(running));
    json_object_set_new(out, "recent_failures", rows_json(failing));
    json_object_set_new(out, "dead", rows_json(dead));
    json_object_set_new(out, "recently_completed", rows_json(completed));
    char *text = json_dumps(out, JSON_INDENT(2));
    puts(text);
    free(text);
    json_decref(out);
  } else if (completed) {
    printf("queue depth:");
    for (int r = 0; r < PQntuples(depth); r++)
      printf(" %s %s%s", PQgetvalue(depth, r, 0), PQgetvalue(depth, r, 1),
             r == 0 ? "" : "");
    printf(" (%s available now)\n", PQgetvalue(depth, 0, 2));
    printf("\nrunning (%d):\n", PQntuples(running));
    for (int r = 0; r < PQntuples(running); r++)
      printf("  %-8s %-32s attempt %s/%s since %s on %s\n",
             PQgetvalue(running, r, 0), PQgetvalue(running, r, 1),
             PQgetvalue(running, r, 2), PQgetvalue(running, r, 3),
             PQgetvalue(running, r, 5), PQgetvalue(running, r, 4));
    printf("\nrecent failures, retrying (%d):\n", PQntuples(failing));
    for (int r = 0; r < PQntuples(failing); r++) {
      printf("  %-8s %-32s attempt %s/%s%s%s, next at %s: ",
             PQgetvalue(failing, r, 0), PQgetvalue(failing, r, 1),
             PQgetvalue(failing, r, 2), PQgetvalue(failing, r, 3),
             PQgetisnull(failing, r, 6) ? "" : " on ",
             value_or(failing, r, 6, ""), PQgetvalue(failing, r, 5));
      print_error(value_or(failing, r, 4, ""));
    }
    printf("\ndead (%d):\n", PQntuples(dead));
    for (int r = 0; r < PQntuples(dead); r++) {
      printf("  %-8s %-32s after %s attempt(s) at %s%s%s: ",
             PQgetvalue(dead, r, 0), PQgetvalue(dead, r, 1),
             PQgetvalue(dead, r, 2), value_or(dead, r, 4, "?"),
             PQgetisnull(dead, r, 5) ? "" : " on ", value_or(dead, r, 5, ""));
      print_error(value_or(dead, r, 3, ""));
    }
    if (PQntuples(dead))
      printf("revive one with: regentra-runner retry JOB_ID\n");
    printf("\nrecently completed (%d):\n", PQntuples(completed));
    for (int r = 0; r < PQntuples(completed); r++)
      printf("  %-8s %-32s attempt %s at %s in %s ms%s%s\n",
             PQgetvalue(completed, r, 0), PQgetvalue(completed, r, 1),
             PQgetvalue(completed, r, 2), value_or(completed, r, 3, "?"),
             value_or(completed, r, 4, "?"),
             PQgetisnull(completed, r, 5) ? "" : " on ",
             value_or(completed, r, 5, ""));
  }
  PQclear(depth);
  PQclear(running);
  PQclear(failing);
  PQclear(dead);
  PQclear(completed);
  PQfinish(pg);
  return rc;
}

/* ----------------------------------------------------------- enqueue */

typedef struct enqueue_args_s {
  const char *event;
  const char *payload;
  const char *idempotency_key;
  const char *concurrency_key;
  const char *concurrency_limit;
  const char *priority;
  const char *max_attempts;
  const char *delay_ms;
} enqueue_args_t;

static bool is_int(const char *s, long min, long max) {
  char *end;
  long v = strtol(s, &end, 10);
  return *s && !*end && v >= min && v <= max;
}

/* enqueue's flags; the value of enqueue_flags[k] goes to the member at
 * enqueue_flag_slots[k]. */
static const rn_option_t enqueue_flags[] = {
    RN_OPTION(.name = "idempotency_key", .type = RN_OPT_STRING,
              .help = "an event queued again with the same key is a no-op"),
    RN_OPTION(.name = "concurrency_key", .type = RN_OPT_STRING,
              .help = "jobs of the same key run at most "
                      "--concurrency-limit at a time"),
    RN_OPTION(.name = "concurrency_limit", .type = RN_OPT_INT, .min = 1,
              .max = 100000, .help = "running jobs per concurrency key"),
    RN_OPTION(.name = "priority", .type = RN_OPT_INT, .min = -1000000,
              .max = 1000000, .help = "higher runs first"),
    RN_OPTION(.name = "max_attempts", .type = RN_OPT_INT, .min = 1, .max = 100,
              .help = "attempts before the job is dead"),
    RN_OPTION(.name = "delay_ms", .type = RN_OPT_INT, .min = 0,
              .max = 31536000000L, .help = "not before this many ms from now"),
    {0},
};
static const size_t enqueue_flag_slots[] = {
    offsetof(enqueue_args_t, idempotency_key),
    offsetof(enqueue_args_t, concurrency_key),
    offsetof(enqueue_args_t, concurrency_limit),
    offsetof(enqueue_args_t, priority),
    offsetof(enqueue_args_t, max_attempts),
    offsetof(enqueue_args_t, delay_ms),
};
_Static_assert(RN_ARRAY_SIZE(enqueue_flag_slots) + 1 ==
                   RN_ARRAY_SIZE(enqueue_flags),
               "one slot per enqueue flag");

static int parse_enqueue(rn__cli_t *cli, enqueue_args_t *a) {
  for (int i = 0; i < cli->argc; i++) {
    const char *arg = cli->argv[i];
    if (strncmp(arg, "--", 2) != 0) {
      if (!a->event)
        a->event = arg;
      else if (!a->payload)
        a->payload = arg;
      else
        return rn__cli_usage_error("enqueue: unexpected argument \"%s\"", arg);
      continue;
    }
    size_t k = 0;
    while (k < RN_ARRAY_SIZE(enqueue_flag_slots) &&
           !rn__cli_flag_is(arg, enqueue_flags[k].name))
      k++;
    if (k == RN_ARRAY_SIZE(enqueue_flag_slots))
      return rn__cli_usage_error("enqueue: unknown option \"%s\"", arg);
    if (i + 1 >= cli->argc)
      return rn__cli_usage_error("enqueue: %s needs a value", arg);
    const char *value = cli->argv[++i];
    const rn_option_t *flag = &enqueue_flags[k];
    if (flag->type == RN_OPT_INT && !is_int(value, flag->min, flag->max))
      return rn__cli_usage_error("enqueue: %s \"%s\": expected a number in "
                                 "%" PRId64 "..%" PRId64,
                                 arg, value, flag->min, flag->max);
    *(const char **)((char *)a + enqueue_flag_slots[k]) = value;
  }
  if (!a->event)
    return rn__cli_usage_error("enqueue needs EVENT [JSON]");
  return 0;
}

/* Reads the whole of standard input as the payload: "-" lifts the command
 * line's size limit. NULL (after saying why) on error. */
static char *read_payload_stdin(void) {
  /* Far above any max_payload; the queue's own cap applies after. */
  const size_t limit = 64u << 20;
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n + 1 == cap) {
      if (cap > limit) {
        fprintf(stderr, "regentra-runner: enqueue: the payload on standard "
                "input is larger than %zu bytes\n", limit);
        free(buf);
        return NULL;
      }
      char *grown = realloc(buf, cap * 2);
      if (!grown) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = grown;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, stdin);
    n += got;
    if (got == 0)
      break;
  }
  if (!buf) {
    fprintf(stderr, "regentra-runner: out of memory\n");
    return NULL;
  }
  if (ferror(stdin)) {
    fprintf(stderr, "regentra-runner: enqueue: cannot read the payload from "
            "standard input\n");
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  if (strlen(buf) != n) {
    fprintf(stderr, "regentra-runner: enqueue: the payload on standard input "
            "holds a NUL byte; give a JSON object\n");
    free(buf);
    return NULL;
  }
  return buf;
}

static bool is_blank(const char *s) {
  while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
    s++;
  return *s == '\0';
}

/* Checks the event and its payload as a claim would, then inserts it. */
static int insert_job(rn__cli_t *cli, const enqueue_args_t *args) {
  enqueue_args_t a = *args;
  uv_loop_t loop;
  rn__runner_t runner;
  cli->quiet = true;
  if (rn__cli_load(cli, &runner, &loop) < 0 || !runner.gen) {
    rn__cli_unload(&runner, &loop);
    return 1;
  }
  char err[1024];
  int rc = rn__queue_check_event(runner.gen, a.event, a.payload, err,
                                 sizeof err);
  char *url = runner.gen->config->database_url
                  ? strdup(runner.gen->config->database_url)
                  : NULL;
  const rn__gen_job_t *configured = rn__generation_job(runner.gen, a.event);
  char attempts[16];
  snprintf(attempts, sizeof attempts, "%u",
           configured && configured->conf->max_attempts
               ? configured->conf->max_attempts
               : runner.gen->config->queue_max_attempts
                     ? runner.gen->config->queue_max_attempts
                     : 5);
  rn__cli_unload(&runner, &loop);
  if (rc < 0) {
    fprintf(stderr, "regentra-runner: enqueue %s refused: %s\n", a.event, err);
    free(url);
    return 1;
  }
  PGconn *pg = connect_cli(url);
  free(url);
  if (!pg)
    return 1;
  const char *params[] = {a.event,
                          a.payload,
                          a.idempotency_key,
                          a.concurrency_key,
                          a.concurrency_limit,
                          a.delay_ms,
                          a.priority,
                          a.max_attempts ? a.max_attempts : attempts};
  PGresult *res = query(
      pg,
      "WITH ins AS ("
      " INSERT INTO runner.job (name, payload, idempotency_key,"
      "  concurrency_key, concurrency_limit, run_at, priority, max_attempts)"
      " VALUES ($1, coalesce($2, '{}')::jsonb, $3, $4,"
      "  coalesce($5::int, 1),"
      "  now() + coalesce($6::bigint, 0) * interval '1 millisecond',"
      "  coalesce($7::int, 0), $8::int)"
      " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL"
      " DO NOTHING RETURNING id)"
      " SELECT id, true FROM ins UNION ALL"
      " SELECT id, false FROM runner.job WHERE idempotency_key = $3"
      " AND NOT EXISTS (SELECT 1 FROM ins)",
      8, params);
  int exit_code = 1;
  if (res && PQntuples(res) == 1) {
    bool created = PQgetvalue(res, 0, 1)[0] == 't';
    if (cli->json)
      printf("{\"id\": %s, \"created\": %s}\n", PQgetvalue(res, 0, 0),
             created ? "true" : "false");
    else if (created)
      printf("enqueued %s as job %s\n", a.event, PQgetvalue(res, 0, 0));
    else
      printf("idempotency key already used by job %s; nothing added\n",
             PQgetvalue(res, 0, 0));
    exit_code = 0;
  } else if (res) {
    fprintf(stderr, "regentra-runner: enqueue %s: the idempotency key's job "
            "is being written by another process; try again\n", a.event);
  }
  PQclear(res);
  PQfinish(pg);
  return exit_code;
}

static int cmd_enqueue(rn__cli_t *cli) {
  enqueue_args_t a = {0};
  int usage = parse_enqueue(cli, &a);
  if (usage)
    return usage;
  char *stdin_payload = NULL;
  if (a.payload && strcmp(a.payload, "-") == 0) {
    stdin_payload = read_payload_stdin();
    if (!stdin_payload)
      return 1;
    a.payload = stdin_payload;
  }
  if (a.payload && is_blank(a.payload)) {
    fprintf(stderr, "regentra-runner: enqueue: payload is empty%s; give a "
            "JSON object such as '{}', or leave it out\n",
            stdin_payload ? " (nothing on standard input)" : "");
    free(stdin_payload);
    return 1;
  }
  int exit_code = insert_job(cli, &a);
  free(stdin_payload);
  return exit_code;
}

/* ------------------------------------------------------------- retry */

static int cmd_retry(rn__cli_t *cli) {
  if (cli->argc != 1 || !is_int(cli->argv[0], 1, 0x7fffffffffffffffL))
    return rn__cli_usage_error("retry needs one JOB_ID (a number)");
  rn__config_t *config = load_config_only(cli);
  if (!config)
    return 1;
  PGconn *pg = connect_cli(config->database_url);
  rn__config_free(config);
  if (!pg)
    return 1;
  const char *params[] = {cli->argv[0]};
  PGresult *res = query(
      pg,
      "WITH revived AS (UPDATE runner.job SET state = 'available',"
      " attempt = 0, run_at = now(), finished_at = NULL"
      " WHERE id = $1::bigint AND state = 'dead' RETURNING id)"
      " SELECT (SELECT count(*) FROM revived),"
      " (SELECT state FROM runner.job WHERE id = $1::bigint)",
      1, params);
  int rc = 1;
  if (res) {
    if (strcmp(PQgetvalue(res, 0, 0), "1") == 0) {
      if (cli->json) /* the state after the change */
        printf("{\"id\": %s, \"state\": \"available\", \"attempt\": 0}\n",
               cli->argv[0]);
      else
        printf("job %s revived: it runs again with a fresh set of "
               "attempts\n", cli->argv[0]);
      rc = 0;
    } else if (PQgetisnull(res, 0, 1)) {
      rn__cli_fail(1, "not_found", "see 'regentra-runner jobs'", "no job %s",
                   cli->argv[0]);
    } else {
      rn__cli_fail(1, "invalid_state", "only dead jobs can be retried",
                   "job %s is %s, not dead", cli->argv[0],
                   PQgetvalue(res, 0, 1));
    }
  }
  PQclear(res);
  PQfinish(pg);
  return rc;
}

static const rn_option_t rotate_key_flags[] = {
    RN_OPTION(.name = "add_key", .type = RN_OPT_BOOL,
              .help = "first append a fresh random key to master_key_file "
                      "as the next version"),
    {0},
};

const rn__cli_command_t rn__cli_extra_commands[] = {
    {"migrate", cmd_migrate, "",
     "apply database migrations (runner and platform) in order", NULL},
    {"jobs", cmd_jobs, "[--json]",
     "queue depth by state, running jobs, recent failures, dead jobs, "
     "recently completed ones, and the runner that ran each", NULL},
    {"enqueue", cmd_enqueue, "EVENT ['{json}' | -] [--idempotency-key K ...]",
     "add a job: a [job] name or PLUGIN.JOB, with a JSON object payload "
     "(- reads it from standard input)",
     enqueue_flags},
    {"retry", cmd_retry, "JOB_ID", "revive a dead job", NULL},
    {"rotate-key", rn__cmd_rotate_key, "[--add-key]",
     "re-seal every stored credential under the newest master key",
     rotate_key_flags},
    {0},
};
