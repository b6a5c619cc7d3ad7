/* The database service as a plugin sees it, on a real host and a real
 * PostgreSQL: borrowed results, errors, transactions on the thread pool,
 * cancellation, LISTEN, and reconnection after the server drops us. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "rt.h"
#include "rt_host.h"

static rt_host_t host;
static char dsn[700];

static void open_host(const char *url, uint32_t pool) {
  rn__config_t *config = calloc(1, sizeof *config);
  config->path = strdup("(test)");
  config->drain_timeout_ms = 1000;
  config->workers = 4;
  config->db_pool_size = pool;
  config->database_url = url ? strdup(url) : NULL;
  rt_host_open(&host, config);
}

static void setup(void) {
  snprintf(dsn, sizeof dsn, "%s", rt_pg_fresh_db());
  open_host(dsn, 2);
}

static void teardown(void) { rt_host_close(&host); }

typedef struct outcome_s {
  bool done;
  int calls;
  int status;
  int rows;
  char value[256];
  bool second_null;
} outcome_t;

static void on_result(rn_ctx_t *ctx, int status, const rn_db_result_t *result,
                      void *data) {
  outcome_t *o = data;
  (void)ctx;
  o->calls++;
  o->done = true;
  o->status = status;
  if (status == 0 && host.api->db_rows(result) > 0) {
    o->rows = host.api->db_rows(result);
    const char *v = host.api->db_value(result, 0, 0);
    snprintf(o->value, sizeof o->value, "%s", v ? v : "(null)");
    o->second_null = host.api->db_cols(result) > 1 &&
                     host.api->db_value(result, 0, 1) == NULL;
  }
}

/* Bounds for a loaded machine, not expectations: each wait ends as soon
 * as its condition holds. */
#define WAIT_MS 60000
/* Below the 31 s and 32 s sleeps: a callback within it proves the cancel. */
#define CANCEL_WAIT_MS 25000

TestSuite(db, .init = setup, .fini = teardown, .timeout = 300);

Test(db, query_hands_back_rows_as_a_borrowed_view_with_sql_nulls) {
  outcome_t o = {0};
  const char *params[] = {"41", NULL};
  cr_assert_eq(host.api->db_query(host.ctx, "SELECT $1::int + 1, $2::text", 2,
                                  params, on_result, &o, NULL),
               0);
  cr_assert(rt_host_run_until(&host, &o.done, WAIT_MS));
  cr_expect_eq(o.status, 0);
  cr_expect_eq(o.rows, 1);
  cr_expect_str_eq(o.value, "42");
  cr_expect(o.second_null);
}

Test(db, a_failing_statement_calls_back_once_with_edb) {
  outcome_t o = {0};
  cr_assert_eq(host.api->db_query(host.ctx, "SELECT * FROM no_such_table", 0,
                                  NULL, on_result, &o, NULL),
               0);
  cr_assert(rt_host_run_until(&host, &o.done, WAIT_MS));
  cr_expect_eq(o.status, RN_EDB);
  cr_expect_eq(o.calls, 1);
  /* The connection stays usable. */
  outcome_t again = {0};
  cr_assert_eq(host.api->db_query(host.ctx, "SELECT 'still here'", 0, NULL,
                                  on_result, &again, NULL),
               0);
  cr_assert(rt_host_run_until(&host, &again.done, WAIT_MS));
  cr_expect_str_eq(again.value, "still here");
}

typedef struct tx_data_s {
  int rows;
  bool fail;
  bool done;
  int status;
  char error[256];
} tx_data_t;

static int insert_rows(rn_db_tx_t *tx, void *data) {
  tx_data_t *d = data;
  const rn_host_t *api = host.api;
  int rc = api->db_tx_exec(tx, "CREATE TABLE IF NOT EXISTS t (n int)", 0,
                           NULL, NULL);
  for (int i = 0; rc == 0 && i < d->rows; i++) {
    char n[16];
    snprintf(n, sizeof n, "%d", i);
    const char *params[] = {n};
    rn_db_result_t *res = NULL;
    rc = api->db_tx_exec(tx, "INSERT INTO t VALUES ($1::int) RETURNING n", 1,
                         params, &res);
    if (rc == 0 && strcmp(api->db_value(res, 0, 0), n) != 0)
      rc = RN_EDB;
    api->db_result_free(res);
  }
  if (d->fail) {
    rc = api->db_tx_exec(tx, "SELECT 1/0", 0, NULL, NULL);
    snprintf(d->error, sizeof d->error, "%s", api->db_tx_error(tx));
  }
  return rc;
}

static void tx_done(rn_ctx_t *ctx, int status, void *data) {
  tx_data_t *d = data;
  (void)ctx;
  d->done = true;
  d->status = status;
}

Test(db, transaction_commits_its_rows_or_rolls_all_of_them_back) {
  tx_data_t ok = {.rows = 50};
  cr_assert_eq(host.api->db_transaction(host.ctx, insert_rows, tx_done, &ok,
                                        NULL),
               0);
  cr_assert(rt_host_run_until(&host, &ok.done, WAIT_MS));
  cr_expect_eq(ok.status, 0);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM t"), 50);

  tx_data_t bad = {.rows = 10, .fail = true};
  cr_assert_eq(host.api->db_transaction(host.ctx, insert_rows, tx_done, &bad,
                                        NULL),
               0);
  cr_assert(rt_host_run_until(&host, &bad.done, WAIT_MS));
  cr_expect_eq(bad.status, RN_EDB);
  cr_expect(strstr(bad.error, "division by zero"), "%s", bad.error);
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM t"), 50);
}

typedef struct show_data_s {
  const char *setting;
  bool done;
  int status;
  char value[128];
} show_data_t;

static int show_setting(rn_db_tx_t *tx, void *data) {
  show_data_t *d = data;
  char sql[64];
  snprintf(sql, sizeof sql, "SHOW %s", d->setting);
  rn_db_result_t *res = NULL;
  int rc = host.api->db_tx_exec(tx, sql, 0, NULL, &res);
  if (rc == 0)
    snprintf(d->value, sizeof d->value, "%s", host.api->db_value(res, 0, 0));
  host.api->db_result_free(res);
  return rc;
}

static void show_done(rn_ctx_t *ctx, int status, void *data) {
  show_data_t *d = data;
  (void)ctx;
  d->done = true;
  d->status = status;
}

/* SHOW setting through the loop's pool and through a transaction on a
 * worker thread; both must say expected. */
static void expect_setting(const char *setting, const char *expected) {
  outcome_t o = {0};
  char sql[64];
  snprintf(sql, sizeof sql, "SHOW %s", setting);
  cr_assert_eq(host.api->db_query(host.ctx, sql, 0, NULL, on_result, &o, NULL),
               0);
  cr_assert(rt_host_run_until(&host, &o.done, WAIT_MS));
  cr_expect_eq(o.status, 0);
  cr_expect_str_eq(o.value, expected, "%s on the pool", setting);
  show_data_t tx = {.setting = setting};
  cr_assert_eq(
      host.api->db_transaction(host.ctx, show_setting, show_done, &tx, NULL),
      0);
  cr_assert(rt_host_run_until(&host, &tx.done, WAIT_MS));
  cr_expect_eq(tx.status, 0);
  cr_expect_str_eq(tx.value, expected, "%s in a transaction", setting);
}

Test(db, the_runners_connections_run_without_jit) {
  /* On by default since PostgreSQL 12: queue counts would be compiled. */
  char *server_default = rt_pg_query(dsn, "SHOW jit");
  cr_expect_str_eq(server_default, "on", "the test's own connection");
  free(server_default);
  expect_setting("jit", "off");
}

Test(db, options_of_the_url_still_apply_beside_jit_off) {
  rt_host_close(&host);
  char url[800];
  snprintf(url, sizeof url, "%s%soptions=-c%%20work_mem%%3D5MB", dsn,
           strchr(dsn, '?') ? "&" : "?");
  open_host(url, 2);
  expect_setting("work_mem", "5MB");
  expect_setting("jit", "off");
}

Test(db, cancelling_a_queued_query_calls_back_once_with_ecanceled) {
  outcome_t slow[2] = {{0}}, cancelled = {0};
  for (int i = 0; i < 2; i++)
    cr_assert_eq(host.api->db_query(host.ctx, "SELECT pg_sleep(0.3)::text", 0,
                                    NULL, on_result, &slow[i], NULL),
                 0);
  rn_req_t *req;
  cr_assert_eq(host.api->db_query(host.ctx, "SELECT 1", 0, NULL, on_result,
                                  &cancelled, &req),
               0);
  cr_assert_eq(host.api->cancel(req), 0);
  cr_expect(!cancelled.done, "cancel called back synchronously");
  cr_assert(rt_host_run_until(&host, &cancelled.done, WAIT_MS));
  cr_expect_eq(cancelled.status, RN_ECANCELED);
  cr_assert(rt_host_run_until(&host, &slow[1].done, WAIT_MS));
  cr_expect_eq(slow[0].status, 0);
  cr_expect_eq(slow[1].status, 0);
  cr_expect_eq(cancelled.calls, 1);
}

typedef struct heard_s {
  int resubscribed;
  int notices;
  char extra[64];
} heard_t;

static void on_notice(const char *channel, const char *extra, void *data) {
  heard_t *h = data;
  if (!channel) {
    h->resubscribed++;
    return;
  }
  h->notices++;
  snprintf(h->extra, sizeof h->extra, "%s", extra);
}

static bool wait_heard(const int *counter, int want, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms && *counter < want; waited += 20) {
    bool never = false;
    rt_host_run_until(&host, &never, 20);
  }
  return *counter >= want;
}

Test(db, reconnects_and_listens_again_after_the_server_drops_every_connection) {
  rn__db_t *db = rn__db_get(&host.runner);
  cr_assert(db);
  heard_t heard = {0};
  cr_assert_eq(rn__db_listen(db, "rt_channel", on_notice, &heard), 0);
  cr_assert(wait_heard(&heard.resubscribed, 1, WAIT_MS), "LISTEN never ready");
  free(rt_pg_query(dsn, "NOTIFY rt_channel, 'one'"));
  cr_assert(wait_heard(&heard.notices, 1, WAIT_MS));
  cr_expect_str_eq(heard.extra, "one");

  /* The server ends every session of ours (as a restart would). */
  free(rt_pg_query(dsn, "SELECT count(pg_terminate_backend(pid)) FROM "
                        "pg_stat_activity WHERE application_name = "
                        "'regentra-runner' AND datname = current_database()"));
  cr_assert(wait_heard(&heard.resubscribed, 2, WAIT_MS),
            "LISTEN was not re-established");
  free(rt_pg_query(dsn, "NOTIFY rt_channel, 'two'"));
  cr_assert(wait_heard(&heard.notices, 2, WAIT_MS));
  cr_expect_str_eq(heard.extra, "two");

  /* Queries work again (the first ones may have failed fast). */
  bool ok = false;
  for (int i = 0; i < 100 && !ok; i++) {
    outcome_t o = {0};
    int rc = host.api->db_query(host.ctx, "SELECT 'back'", 0, NULL, on_result,
                                &o, NULL);
    if (rc == 0) {
      rt_host_run_until(&host, &o.done, WAIT_MS);
      ok = o.status == 0 && strcmp(o.value, "back") == 0;
    }
    if (!ok) {
      bool never = false;
      rt_host_run_until(&host, &never, 100);
    }
  }
  cr_expect(ok, "no query succeeded after the reconnect");
}

Test(db, without_a_database_the_services_say_enosys) {
  rt_host_close(&host);
  open_host(NULL, 0);
  outcome_t o = {0};
  cr_expect_eq(host.api->db_query(host.ctx, "SELECT 1", 0, NULL, on_result, &o,
                                  NULL),
               RN_ENOSYS);
  tx_data_t d = {0};
  cr_expect_eq(host.api->db_transaction(host.ctx, insert_rows, tx_done, &d,
                                        NULL),
               RN_ENOSYS);
  cr_expect(!o.done && !d.done);
}

Test(db, the_password_of_a_url_never_reaches_a_log_line) {
  char *a = rn__db_redact("postgresql://app:s3cret@db.example:5432/x?ssl=1");
  char *b = rn__db_redact("host=db user=app password=s3cret dbname=x");
  cr_expect_str_eq(a, "postgresql://app:***@db.example:5432/x?ssl=1");
  cr_expect_str_eq(b, "host=db user=app password=*** dbname=x");
  free(a);
  free(b);
}

/* --- SQLSTATE, server-side cancellation, statement_timeout --- */

typedef struct coded_s {
  outcome_t o;
  char sqlstate[6];
} coded_t;

static void on_coded_result(rn_ctx_t *ctx, int status,
                            const rn_db_result_t *result, void *data) {
  coded_t *c = data;
  snprintf(c->sqlstate, sizeof c->sqlstate, "%s",
           rn__db_sqlstate(&host.runner));
  on_result(ctx, status, result, &c->o);
}

Test(db, a_failed_statement_carries_its_sqlstate_to_the_callback) {
  static const struct {
    const char *sql, *sqlstate;
    enum rn__db_sqlclass class;
  } cases[] = {
      {"SELECT * FROM no_such_table", "42P01", RN__DB_SQL_PERMANENT},
      {"SELECT 1/0", "22012", RN__DB_SQL_PERMANENT},
      {"DO $$BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END$$",
       "40001", RN__DB_SQL_RETRY},
      {"DO $$BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END$$",
       "40P01", RN__DB_SQL_RETRY},
      {"DO $$BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '23505'; END$$",
       "23505", RN__DB_SQL_PERMANENT},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    coded_t c = {0};
    cr_assert_eq(host.api->db_query(host.ctx, cases[i].sql, 0, NULL,
                                    on_coded_result, &c, NULL),
                 0);
    cr_assert(rt_host_run_until(&host, &c.o.done, WAIT_MS));
    cr_expect_eq(c.o.status, RN_EDB, "case %zu", i);
    cr_expect_str_eq(c.sqlstate, cases[i].sqlstate, "case %zu", i);
    cr_expect_eq(rn__db_sqlstate_class(c.sqlstate), cases[i].class,
                 "case %zu", i);
  }
  /* Outside a callback there is none. */
  cr_expect_str_eq(rn__db_sqlstate(&host.runner), "");
  cr_expect_eq(rn__db_sqlstate_class("57P01"), RN__DB_SQL_RETRY);
  cr_expect_eq(rn__db_sqlstate_class("08006"), RN__DB_SQL_RETRY);
  cr_expect_eq(rn__db_sqlstate_class("53300"), RN__DB_SQL_RETRY);
  cr_expect_eq(rn__db_sqlstate_class("XX000"), RN__DB_SQL_UNKNOWN);
  cr_expect_eq(rn__db_sqlstate_class(""), RN__DB_SQL_UNKNOWN);
}

/* Runs the loop until the server shows sql (by prefix) as active. */
static bool wait_active(const char *prefix) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE "
           "state = 'active' AND query LIKE '%s%%'", prefix);
  for (int waited = 0; waited < WAIT_MS; waited += 50) {
    if (rt_pg_count(dsn, sql) > 0)
      return true;
    bool never = false;
    rt_host_run_until(&host, &never, 50);
  }
  return false;
}

Test(db, cancelling_a_running_query_stops_it_on_the_server_and_calls_back_once) {
  outcome_t slow = {0};
  rn_req_t *req;
  cr_assert_eq(host.api->db_query(host.ctx, "SELECT pg_sleep(31)::text", 0,
                                  NULL, on_result, &slow, &req),
               0);
  cr_assert(wait_active("SELECT pg_sleep(31)"));
  cr_assert_eq(host.api->cancel(req), 0);
  cr_assert(rt_host_run_until(&host, &slow.done, CANCEL_WAIT_MS),
            "the statement ran on after its cancel");
  cr_expect_eq(slow.status, RN_ECANCELED);
  cr_expect_eq(slow.calls, 1);
  /* The pool goes on serving, on a fresh session. */
  outcome_t again = {0};
  cr_assert_eq(host.api->db_query(host.ctx, "SELECT 'after'", 0, NULL,
                                  on_result, &again, NULL),
               0);
  cr_assert(rt_host_run_until(&host, &again.done, WAIT_MS));
  cr_expect_str_eq(again.value, "after");
  cr_expect_eq(slow.calls, 1);
}

typedef struct long_tx_s {
  bool done;
  int calls;
  int status;
  int sleep_rc;
  char timeout[32];
} long_tx_t;

static int insert_then_sleep(rn_db_tx_t *tx, void *data) {
  long_tx_t *d = data;
  const rn_host_t *api = host.api;
  rn_db_result_t *res = NULL;
  int rc = api->db_tx_exec(tx, "SHOW statement_timeout", 0, NULL, &res);
  if (rc == 0)
    snprintf(d->timeout, sizeof d->timeout, "%s", api->db_value(res, 0, 0));
  api->db_result_free(res);
  if (rc == 0)
    rc = api->db_tx_exec(tx, "CREATE TABLE kept (n int)", 0, NULL, NULL);
  if (rc == 0)
    rc = d->sleep_rc =
        api->db_tx_exec(tx, "SELECT pg_sleep(32)", 0, NULL, NULL);
  return rc;
}

static void long_tx_done(rn_ctx_t *ctx, int status, void *data) {
  long_tx_t *d = data;
  (void)ctx;
  d->calls++;
  d->done = true;
  d->status = status;
}

Test(db, cancelling_a_running_transaction_stops_its_statement_and_rolls_back) {
  long_tx_t d = {0};
  rn_req_t *req;
  cr_assert_eq(host.api->db_transaction(host.ctx, insert_then_sleep,
                                        long_tx_done, &d, &req),
               0);
  cr_assert(wait_active("SELECT pg_sleep(32)"));
  rn__db_tx_req_cancel(req);
  rn__db_tx_req_cancel(req); /* twice is harmless */
  cr_assert(rt_host_run_until(&host, &d.done, CANCEL_WAIT_MS),
            "the transaction ran on after its cancel");
  cr_expect_eq(d.status, RN_ECANCELED);
  cr_expect_eq(d.sleep_rc, RN_ECANCELED);
  cr_expect_eq(d.calls, 1);
  /* Statements run under the plugin's statement_timeout (no job of the
   * test plugin sets a timeout: the default of 10 minutes). */
  cr_expect_str_eq(d.timeout, "10min");
  cr_expect_eq(rt_pg_count(dsn, "SELECT count(*) FROM pg_tables WHERE "
                                "tablename = 'kept'"),
               0, "the cancelled transaction committed");
}

Test(db, a_transaction_error_names_its_sqlstate) {
  tx_data_t bad = {.rows = 1, .fail = true};
  cr_assert_eq(host.api->db_transaction(host.ctx, insert_rows, tx_done, &bad,
                                        NULL),
               0);
  cr_assert(rt_host_run_until(&host, &bad.done, WAIT_MS));
  cr_expect_eq(bad.status, RN_EDB);
  cr_expect(strstr(bad.error, "division by zero [SQLSTATE 22012]"), "%s",
            bad.error);
}

/* "localhost" is looked up with uv_getaddrinfo, off the loop; libpq gets
 * every address (hostaddr) and still knows the name (host). */
Test(db, a_host_name_is_resolved_off_the_loop_and_connects) {
  rt_host_close(&host);
  char named[700];
  const char *at = strstr(dsn, "@127.0.0.1:");
  cr_assert(at, "the test server is not on 127.0.0.1: %s", dsn);
  snprintf(named, sizeof named, "%.*s@localhost:%s", (int)(at - dsn), dsn,
           at + strlen("@127.0.0.1:"));
  open_host(named, 1);
  outcome_t o = {0};
  cr_assert_eq(host.api->db_query(host.ctx, "SELECT 'by name'", 0, NULL,
                                  on_result, &o, NULL),
               0);
  cr_assert(rt_host_run_until(&host, &o.done, WAIT_MS));
  cr_expect_eq(o.status, 0);
  cr_expect_str_eq(o.value, "by name");
}

/* The runner's own lease statements go ahead of a backlog of plugin
 * queries: with both connections busy and two more plugin queries waiting,
 * a statement sent first is answered before the waiting ones. */
typedef struct ordered_s {
  int *next_rank;
  int rank;
  bool done;
} ordered_t;

static void on_ordered(rn_ctx_t *ctx, int status, const rn_db_result_t *result,
                       void *data) {
  ordered_t *o = data;
  (void)ctx;
  (void)result;
  cr_expect_eq(status, 0, "status %d", status);
  o->rank = (*o->next_rank)++;
  o->done = true;
}

static void on_first(int status, PGresult *res, const char *errmsg,
                     void *data) {
  (void)res;
  cr_expect_eq(status, 0, "%s", errmsg ? errmsg : "");
  on_ordered(NULL, 0, NULL, data);
}

Test(db, a_statement_sent_first_overtakes_waiting_plugin_queries) {
  int next_rank = 0;
  ordered_t warm[2], plugin[4], first = {.next_rank = &next_rank};
  /* Both connections up, so that two plugin queries run and two wait. */
  for (int i = 0; i < 2; i++) {
    warm[i] = (ordered_t){.next_rank = &next_rank};
    cr_assert_eq(host.api->db_query(host.ctx, "SELECT 1", 0, NULL, on_ordered,
                                    &warm[i], NULL),
                 0);
  }
  for (int i = 0; i < 2; i++)
    cr_assert(rt_host_run_until(&host, &warm[i].done, WAIT_MS));
  for (int i = 0; i < 4; i++) {
    plugin[i] = (ordered_t){.next_rank = &next_rank};
    cr_assert_eq(host.api->db_query(host.ctx, "SELECT pg_sleep(0.5)::text", 0,
                                    NULL, on_ordered, &plugin[i], NULL),
                 0);
  }
  cr_assert_eq(rn__db_exec_first(rn__db_get(&host.runner), "SELECT 1", 0,
                                 NULL, on_first, &first, NULL),
               0);
  for (int i = 0; i < 4; i++)
    cr_assert(rt_host_run_until(&host, &plugin[i].done, WAIT_MS));
  cr_assert(rt_host_run_until(&host, &first.done, WAIT_MS));
  cr_expect_lt(first.rank, plugin[2].rank,
               "sent first, answered %d; the third plugin query %d",
               first.rank, plugin[2].rank);
  cr_expect_lt(first.rank, plugin[3].rank);
}
