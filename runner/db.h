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
/* The callback then runs with RN_ECANCELED (from a later loop turn). */
void rn__db_cancel(rn__db_query_t *query);
int rn__db_listen(rn__db_t *db, const char *channel, rn__db_notify_cb cb,
                  void *data);
void rn__db_on_state(rn__db_t *db, rn__db_state_cb cb, void *data);
bool rn__db_up(const rn__db_t *db);
/* Queries queued or in flight. */
unsigned rn__db_busy(const rn__db_t *db);

/* Blocking helpers for CLI commands (never on the loop of a daemon).
 * Connects, retrying with backoff for up to wait_ms and saying so on
 * stderr; NULL with the reason in err. */
PGconn *rn__db_connect_blocking(const char *url, uint64_t wait_ms, char *err,
                                size_t errlen);
/* The URL with any password replaced by "***" (new). */
char *rn__db_redact(const char *url);

#endif
