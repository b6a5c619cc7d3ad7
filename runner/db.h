/* db.h - PostgreSQL on the loop, for the queue and for plugins.
 *
 * A small pool of non-blocking libpq connections driven by uv_poll, one
 * connection reserved for LISTEN, reconnection with backoff, and a pool of
 * blocking connections used by transactions on the thread pool. */
#ifndef RN_DB_H
#define RN_DB_H

#include <libpq-fe.h>

#include "internal.h"

typedef struct rn__db_s rn__db_t;
typedef struct rn__db_query_s rn__db_query_t;

/* status 0 with res (borrowed, valid during the call), or a negative error
 * with errmsg (borrowed; never NULL when status < 0) and res NULL. */
typedef void (*rn__db_cb)(int status, PGresult *res, const char *errmsg,
                          void *data);
/* A notification on a channel passed to rn__db_listen; channel NULL means
 * the LISTEN connection was (re)established, so notifications may have been
 * missed. */
typedef void (*rn__db_notify_cb)(const char *channel, const char *extra,
                                 void *data);
/* Called when the pool goes from down to up (up = true) or back. */
typedef void (*rn__db_state_cb)(bool up, void *data);

/* The database of the runner, opened on first use from the current
 * generation's [database] url; NULL when none is configured. */
rn__db_t *rn__db_get(rn__runner_t *runner);
/* Fails everything queued with RN_ECANCELED and closes every handle. */
void rn__db_close(rn__runner_t *runner);

/* Sends a parameterized statement on the next free pool connection. params
 * are copied. The callback runs exactly once unless this fails. *query
 * (optional) lets the caller cancel before the callback. */
int rn__db_exec(rn__db_t *db, const char *sql, int nparams,
                const char *const *params, rn__db_cb cb, void *data,
                rn__db_query_t **query);
/* Like rn__db_exec, but ahead of every statement still waiting for a
 * connection: a lease renewal or a run's outcome must not queue behind a
 * backlog of plugin queries that outlasts the lease. */
int rn__db_exec_first(rn__db_t *db, const char *sql, int nparams,
                      const char *const *params, rn__db_cb cb, void *data,
                      rn__db_query_t **query);
/* The callback then runs with RN_ECANCELED: from a later loop turn when the
 * statement was still queued; when the server already runs it, a cancel
 * request (PQcancel, off the loop) stops it and the callback follows its
 * end. Either way exactly once. */
void rn__db_cancel(rn__db_query_t *query);
int rn__db_listen(rn__db_t *db, const char *channel, rn__db_notify_cb cb,
                  void *data);
void rn__db_on_state(rn__db_t *db, rn__db_state_cb cb, void *data);
bool rn__db_up(const rn__db_t *db);
/* Queries queued or in flight. */
unsigned rn__db_busy(const rn__db_t *db);
/* Reconnect attempts back off up to cap_ms (default 10 s): the queue keeps
 * it well under its lease so a runner is back before its peers reclaim. */
void rn__db_set_reconnect_cap(rn__db_t *db, uint32_t cap_ms);

/* --- SQLSTATE: every database error carries the server's five-character
 * code (PG_DIAG_SQLSTATE); a connection lost mid-statement is "08006". */
enum rn__db_sqlclass {
  RN__DB_SQL_UNKNOWN,   /* no code, or one of no class below: retry */
  RN__DB_SQL_RETRY,     /* 40001 40P01 57P01-57P03 08xxx 53xxx */
  RN__DB_SQL_PERMANENT, /* 22xxx 23xxx 42xxx: the same input fails again */
};
enum rn__db_sqlclass rn__db_sqlstate_class(const char *sqlstate);
/* During an rn__db_cb (and a plugin's database callback) with an error:
 * its SQLSTATE, "" when there is none. Borrowed, valid during the call. */
const char *rn__db_sqlstate(const rn__runner_t *runner);

/* Cancel hooks of the plugin database requests (rn_req_t.cancel), for the
 * code that cancels every request of a job. A query: as rn__db_cancel. A
 * transaction: before a worker took it, it never starts; while it runs, its
 * statement gets a cancel request and it rolls back. The request's callback
 * then runs exactly once with RN_ECANCELED. */
void rn__db_query_req_cancel(rn_req_t *req);
void rn__db_tx_req_cancel(rn_req_t *req);
/* Statements of a transaction run under SET LOCAL statement_timeout: the
 * longest timeout of the plugin's configured jobs, or this. */
#define RN__DB_TX_STATEMENT_TIMEOUT_MS (10 * 60 * 1000)

/* Blocking helpers for CLI commands (never on the loop of a daemon).
 * Connects, retrying with backoff for up to wait_ms and saying so on
 * stderr; NULL with the reason in err. */
PGconn *rn__db_connect_blocking(const char *url, uint64_t wait_ms, char *err,
                                size_t errlen);
/* The URL with any password replaced by "***" (new). */
char *rn__db_redact(const char *url);

#endif
