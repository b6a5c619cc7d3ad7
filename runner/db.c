/* db.c - PostgreSQL for plugins and the queue.
 *
 * Pool connections are non-blocking libpq sockets watched by uv_poll on the
 * loop: PQconnectStartParams/PQconnectPoll to connect, PQsendQueryParams to
 * send, PQconsumeInput/PQisBusy/PQgetResult (until NULL) to read. The poll is
 * rebuilt whenever PQsocket changes, since libpq may replace the socket while
 * connecting. A broken connection fails its query, is finished and comes
 * back after a backoff. One more connection carries LISTEN and subscribes
 * again after every reconnect. Transactions for plugins run on the thread
 * pool over blocking connections of their own. */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

#define CONNECT_TIMEOUT_MS 10000
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
#define TX_POOL_MAX 8

struct rn_db_result_s {
  PGresult *res;
};

struct rn__db_query_s {
  rn__list_t link; /* in db->waiting, conn->own or db->canceled; unlinked
                      while in flight */
  rn__db_t *db;
  char *sql;
  int nparams;
  char **params;
  rn__db_cb cb;
  void *data;
  struct conn_s *conn; /* while in flight */
  bool canceled;
};

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_READY };

typedef struct conn_s {
  rn__db_t *db;
  PGconn *pg;
  uv_poll_t *poll;
  int polled_fd;
  int events;
  uv_timer_t timer; /* connect timeout, then reconnect backoff */
  enum conn_state state;
  rn__db_query_t *live;
  PGresult *result;  /* the result kept for live, until PQgetResult = NULL */
  rn__list_t own;    /* statements only this connection sends (LISTEN) */
  bool flush_pending;
  bool listen;
  bool recycle; /* a cancel request went out: reconnect after the result */
  uint32_t backoff_ms;
  uv_getaddrinfo_t *resolving; /* host name lookup before connecting */
} conn_t;

typedef struct channel_s {
  char *name;
  rn__db_notify_cb cb;
  void *data;
} channel_t;

struct rn__db_s {
  rn__runner_t *runner;
  uv_loop_t *loop;
  char *url;
  char *safe_url; /* for logs */
  char *resolve_host; /* a host name libpq would otherwise look up on the
                         loop; NULL for addresses, sockets and host lists */
  uint32_t backoff_cap_ms;
  conn_t *conns;
  size_t nconns;
  conn_t listener;
  bool listener_started;
  channel_t *channels;
  size_t nchannels;
  rn__list_t waiting;
  rn__list_t canceled;
  uv_timer_t cancel_timer;
  int health; /* 0 unknown, 1 reachable, -1 failing: logged on change */
  bool up;
  rn__db_state_cb state_cb;
  void *state_data;
  unsigned busy;
  unsigned open_handles;
  bool closing;
};

static void conn_start(conn_t *c);
static void pump(conn_t *c);

/* ----------------------------------------------------------- helpers */

char *rn__db_redact(const char *url) {
  char *copy = strdup(url ? url : "");
  if (!copy)
    return NULL;
  const char *scheme = strstr(copy, "://");
  if (scheme) {
    char *auth = (char *)scheme + 3;
    char *end = auth + strcspn(auth, "/?");
    char *at = memchr(auth, '@', (size_t)(end - auth));
    char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
      char *out;
      if (asprintf(&out, "%.*s:***%s", (int)(colon - copy), copy, at) < 0)
        out = NULL;
      free(copy);
      return out;
    }
    return copy;
  }
  char *pw = strstr(copy, "password=");
  if (pw) {
    char *value = pw + 9;
    size_t len = strcspn(value, " \t");
    char *out;
    if (asprintf(&out, "%.*s***%s", (int)(value - copy), copy, value + len) < 0)
      out = NULL;
    free(copy);
    return out;
  }
  return copy;
}

/* The session options of every connection the runner opens: jit=off, then
 * the URL's own options (or PGOPTIONS), which may turn it back on. Counts by
 * state over millions of queue rows (the dashboard, /metrics) cross
 * PostgreSQL's JIT cost threshold, and compiling them takes seconds where
 * running them takes milliseconds. New; NULL when out of memory (libpq then
 * ignores the key). */
static char *session_options(const char *url) {
  PQconninfoOption *parsed = PQconninfoParse(url, NULL);
  const char *own = NULL;
  for (PQconninfoOption *o = parsed; o && o->keyword; o++)
    if (strcmp(o->keyword, "options") == 0 && o->val && *o->val)
      own = o->val;
  if (!own)
    own = getenv("PGOPTIONS"); /* an explicit options key overrides it */
  char *options;
  if (asprintf(&options, "-c jit=off%s%s", own && *own ? " " : "",
               own ? own : "") < 0)
    options = NULL;
  PQconninfoFree(parsed);
  return options;
}

/* libpq messages end with a newline and may span lines: keep the first. */
static void one_line(char *buf, size_t len, const char *msg) {
  snprintf(buf, len, "%s", msg && *msg ? msg : "unknown error");
  buf[strcspn(buf, "\n")] = '\0';
}

static void handle_closed(uv_handle_t *handle);

/* Server notices (and the FATAL a terminated session receives) go to our
 * log rather than to libpq's default of stderr; connection state changes
 * are reported by set_health once. */
static void log_notice(void *arg, const char *message) {
  char line[512];
  (void)arg;
  one_line(line, sizeof line, message);
  rn__log(RN_LOG_DEBUG, "db", "server says: %s", line);
}

static void query_free(rn__db_query_t *q) {
  for (int i = 0; i < q->nparams; i++)
    free(q->params[i]);
  free(q->params);
  free(q->sql);
  free(q);
}

/* sqlstate is published on the runner for the length of the callback. */
static void deliver(rn__db_t *db, rn__db_query_t *q, int status, PGresult *res,
                    const char *errmsg, const char *sqlstate) {
  db->busy--;
  char *published = db->runner->db_sqlstate;
  if (q->canceled) {
    q->cb(RN_ECANCELED, NULL, "canceled", q->data);
  } else {
    snprintf(published, sizeof db->runner->db_sqlstate, "%s",
             status < 0 && sqlstate ? sqlstate : "");
    q->cb(status, status == 0 ? res : NULL,
          status == 0 ? NULL : (errmsg ? errmsg : rn__strerror(status)),
          q->data);
    published[0] = '\0';
  }
  query_free(q);
}

enum rn__db_sqlclass rn__db_sqlstate_class(const char *sqlstate) {
  if (!sqlstate || strlen(sqlstate) != 5)
    return RN__DB_SQL_UNKNOWN;
  static const char *const retry[] = {"40001", "40P01", "57P01", "57P02",
                                      "57P03"};
  for (size_t i = 0; i < RN_ARRAY_SIZE(retry); i++)
    if (strcmp(sqlstate, retry[i]) == 0)
      return RN__DB_SQL_RETRY;
  if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0)
    return RN__DB_SQL_RETRY;
  if (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0 ||
      strncmp(sqlstate, "42", 2) == 0)
    return RN__DB_SQL_PERMANENT;
  return RN__DB_SQL_UNKNOWN;
}

const char *rn__db_sqlstate(const rn__runner_t *runner) {
  return runner ? runner->db_sqlstate : "";
}

/* The first line of a failed result's message with its SQLSTATE, e.g.
 * "ERROR:  duplicate key ... [SQLSTATE 23505]"; code gets the bare code. */
static void result_error(const PGresult *res, const PGconn *pg, char *msg,
                         size_t msglen, char code[6]) {
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  snprintf(code, 6, "%s", state ? state : "");
  one_line(msg, msglen, res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
  if (code[0]) {
    size_t len = strlen(msg);
    snprintf(msg + len, msglen - len, " [SQLSTATE %s]", code);
  }
}

/* PQcancel opens a connection of its own and blocks until the server took
 * the request, so it runs on a short-lived thread of its own: never on the
 * loop, and never queued behind the very thread-pool work it should stop.
 * The thread owns cancel. */
static void *send_cancel_thread(void *arg) {
  PGcancel *cancel = arg;
  char err[256];
  if (!PQcancel(cancel, err, sizeof err))
    rn__log(RN_LOG_DEBUG, "db", "cancel request not delivered: %s", err);
  PQfreeCancel(cancel);
  return NULL;
}

static bool send_cancel(PGcancel *cancel) {
  if (!cancel)
    return false;
  pthread_attr_t attr;
  pthread_t thread;
  bool ok = pthread_attr_init(&attr) == 0;
  ok = ok && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0;
  ok = ok && pthread_create(&thread, &attr, send_cancel_thread, cancel) == 0;
  pthread_attr_destroy(&attr);
  if (!ok) {
    rn__log(RN_LOG_WARNING, "db", "cannot start a thread for a cancel "
            "request; the statement runs to its end or its timeout");
    PQfreeCancel(cancel);
  }
  return ok;
}

static void set_health(rn__db_t *db, bool ok, const char *why) {
  if (ok && db->health != 1) {
    rn__log(RN_LOG_NOTICE, "db", "%s %s", db->health == -1
            ? "database reachable again:" : "database connected:",
            db->safe_url);
    db->health = 1;
  } else if (!ok && db->health != -1) {
    rn__log(RN_LOG_ERR, "db",
            "database %s unreachable: %s; retrying with backoff",
            db->safe_url, why);
    db->health = -1;
  }
}

static void update_up(rn__db_t *db) {
  bool up = false;
  for (size_t i = 0; i < db->nconns; i++)
    up = up || db->conns[i].state == CONN_READY;
  if (up == db->up)
    return;
  db->up = up;
  if (db->state_cb && !db->closing)
    db->state_cb(up, db->state_data);
}

/* ------------------------------------------------------- connections */

static void close_poll(conn_t *c) {
  if (!c->poll)
    return;
  uv_close((uv_handle_t *)c->poll, handle_closed);
  c->poll = NULL;
  c->events = 0;
  c->polled_fd = -1;
}

static void on_io(uv_poll_t *poll, int status, int events);

/* The one place that points uv_poll at the libpq socket. */
static int watch(conn_t *c, int events) {
  int fd = PQsocket(c->pg);
  if (fd < 0)
    return RN_EIO;
  if (c->poll && fd != c->polled_fd)
    close_poll(c);
  if (!c->poll) {
    uv_poll_t *poll = malloc(sizeof *poll);
    if (!poll)
      return RN_ENOMEM;
    int rc = uv_poll_init_socket(c->db->loop, poll, fd);
    if (rc < 0) {
      free(poll);
      return rn__from_uv(rc);
    }
    poll->data = c;
    c->db->open_handles++;
    c->poll = poll;
    c->polled_fd = fd;
    c->events = 0;
  }
  if (events != c->events) {
    int rc = uv_poll_start(c->poll, events, on_io);
    if (rc < 0)
      return rn__from_uv(rc);
    c->events = events;
  }
  return 0;
}

static void fail_waiting(rn__db_t *db, int status, const char *why) {
  while (!rn__list_empty(&db->waiting)) {
    rn__db_query_t *q = rn__container_of(db->waiting.next, rn__db_query_t,
                                         link);
    rn__list_remove(&q->link);
    deliver(db, q, status, NULL, why, status == RN_EDB ? "08006" : NULL);
  }
}

/* A lookup still running reports to nobody and frees itself. */
static void stop_resolving(conn_t *c) {
  if (!c->resolving)
    return;
  c->resolving->data = NULL;
  uv_cancel((uv_req_t *)c->resolving);
  c->resolving = NULL;
}

static void on_reconnect(uv_timer_t *timer) {
  conn_start(timer->data);
}

/* Drops the connection, fails what it carried and schedules a new one. */
static void conn_broken(conn_t *c, const char *why_raw) {
  rn__db_t *db = c->db;
  char why[512];
  one_line(why, sizeof why, why_raw);
  rn__db_query_t *live = c->live;
  c->live = NULL;
  PQclear(c->result);
  c->result = NULL;
  stop_resolving(c);
  close_poll(c);
  PQfinish(c->pg); /* after the poll stopped watching its socket */
  c->pg = NULL;
  c->state = CONN_DOWN;
  c->flush_pending = false;
  c->recycle = false;
  uv_timer_stop(&c->timer);
  set_health(db, false, why);
  /* LISTEN statements are rebuilt on the next connect. */
  while (!rn__list_empty(&c->own)) {
    rn__db_query_t *q = rn__container_of(c->own.next, rn__db_query_t, link);
    rn__list_remove(&q->link);
    db->busy--;
    query_free(q);
  }
  if (!db->closing) {
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > db->backoff_cap_ms)
      c->backoff_ms = db->backoff_cap_ms;
    uint64_t delay = c->backoff_ms / 2 +
                     randombytes_uniform(c->backoff_ms / 2 + 1);
    uv_timer_start(&c->timer, on_reconnect, delay, 0);
  }
  update_up(db);
  char msg[600];
  snprintf(msg, sizeof msg, "database connection lost: %s", why);
  if (live && !c->listen)
    deliver(db, live, RN_EDB, NULL, msg, "08006");
  else if (live) {
    db->busy--;
    query_free(live);
  }
  /* Nothing can carry the queued statements now: fail them rather than
   * let callers wait on a database that is away. */
  if (!db->up && !db->closing)
    fail_waiting(db, RN_EDB, msg);
}

static void on_connect_timeout(uv_timer_t *timer) {
  conn_broken(timer->data, "connection attempt timed out");
}

static void listen_ready(int status, PGresult *res, const char *errmsg,
                         void *data);

static void queue_listens(conn_t *c) {
  rn__db_t *db = c->db;
  for (size_t i = 0; i < db->nchannels; i++) {
    char *ident = PQescapeIdentifier(c->pg, db->channels[i].name,
                                     strlen(db->channels[i].name));
    rn__db_query_t *q = calloc(1, sizeof *q);
    if (!ident || !q || asprintf(&q->sql, "LISTEN %s", ident) < 0) {
      PQfreemem(ident);
      free(q);
      rn__log(RN_LOG_ERR, "db", "out of memory subscribing to %s",
              db->channels[i].name);
      continue;
    }
    PQfreemem(ident);
    q->cb = listen_ready;
    q->data = db;
    q->db = db;
    db->busy++;
    rn__list_push(&c->own, &q->link);
  }
}

static void connect_step(conn_t *c) {
  switch (PQconnectPoll(c->pg)) {
  case PGRES_POLLING_READING:
    if (watch(c, UV_READABLE) < 0)
      conn_broken(c, "cannot watch the connection socket");
    return;
  case PGRES_POLLING_WRITING:
    if (watch(c, UV_WRITABLE) < 0)
      conn_broken(c, "cannot watch the connection socket");
    return;
  case PGRES_POLLING_OK:
    break;
  default:
    conn_broken(c, PQerrorMessage(c->pg));
    return;
  }
  uv_timer_stop(&c->timer);
  if (PQsetnonblocking(c->pg, 1) != 0) {
    conn_broken(c, PQerrorMessage(c->pg));
    return;
  }
  c->state = CONN_READY;
  c->backoff_ms = 0;
  set_health(c->db, true, NULL);
  if (c->listen)
    queue_listens(c);
  else
    update_up(c->db);
  if (c->state == CONN_READY)
    pump(c);
}

/* hostaddr (the addresses looked up here, comma-separated, tried in
 * order) comes after the URL, so it overrides; host then names the same
 * host once per address, and libpq keeps it for TLS (SNI, certificate) and
 * messages. */
static void connect_to(conn_t *c, const char *hosts, const char *hostaddr) {
  rn__db_t *db = c->db;
  char *options = session_options(db->url);
  const char *keys[] = {"dbname", "application_name", "options",
                        hostaddr ? "host" : NULL, "hostaddr", NULL};
  const char *values[] = {db->url, "regentra-runner", options, hosts,
                          hostaddr, NULL};
  c->pg = PQconnectStartParams(keys, values, 1);
  free(options);
  if (!c->pg) {
    conn_broken(c, "out of memory");
    return;
  }
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    conn_broken(c, PQerrorMessage(c->pg));
    return;
  }
  PQsetNoticeProcessor(c->pg, log_notice, NULL);
  /* Before the first PQconnectPoll, behave as if it said WRITING. */
  if (watch(c, UV_WRITABLE) < 0)
    conn_broken(c, "cannot watch the connection socket");
}

static void host_resolved(uv_getaddrinfo_t *req, int status,
                          struct addrinfo *res) {
  conn_t *c = req->data;
  enum { MAX_ADDRS = 8 };
  char addrs[MAX_ADDRS * 48] = "", one[48];
  size_t naddrs = 0, len = 0;
  for (struct addrinfo *a = status == 0 ? res : NULL; a && naddrs < MAX_ADDRS;
       a = a->ai_next) {
    one[0] = '\0';
    if (a->ai_family == AF_INET)
      uv_ip4_name((const struct sockaddr_in *)a->ai_addr, one, sizeof one);
    else if (a->ai_family == AF_INET6)
      uv_ip6_name((const struct sockaddr_in6 *)a->ai_addr, one, sizeof one);
    if (!one[0])
      continue;
    /* getaddrinfo repeats an address per protocol on some systems. */
    char listed[sizeof addrs + 2], wanted[sizeof one + 2];
    snprintf(listed, sizeof listed, ",%s,", addrs);
    snprintf(wanted, sizeof wanted, ",%s,", one);
    if (strstr(listed, wanted))
      continue;
    len += (size_t)snprintf(addrs + len, sizeof addrs - len, "%s%s",
                            naddrs ? "," : "", one);
    naddrs++;
  }
  uv_freeaddrinfo(res);
  free(req);
  if (!c)
    return; /* given up or closed meanwhile */
  c->resolving = NULL;
  if (naddrs == 0) {
    char why[512];
    snprintf(why, sizeof why, "cannot resolve host %s: %s",
             c->db->resolve_host,
             status < 0 ? uv_strerror(status) : "no address");
    conn_broken(c, why);
    return;
  }
  char *hosts = malloc(naddrs * (strlen(c->db->resolve_host) + 1));
  if (!hosts) {
    conn_broken(c, "out of memory");
    return;
  }
  hosts[0] = '\0';
  for (size_t i = 0; i < naddrs; i++) {
    if (i)
      strcat(hosts, ",");
    strcat(hosts, c->db->resolve_host);
  }
  connect_to(c, hosts, addrs);
  free(hosts);
}

static void conn_start(conn_t *c) {
  rn__db_t *db = c->db;
  if (db->closing)
    return;
  c->state = CONN_CONNECTING;
  uv_timer_start(&c->timer, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
  if (!db->resolve_host) {
    connect_to(c, NULL, NULL);
    return;
  }
  /* libpq would look the name up with a blocking getaddrinfo on the loop. */
  uv_getaddrinfo_t *req = malloc(sizeof *req);
  if (!req) {
    conn_broken(c, "out of memory");
    return;
  }
  req->data = c;
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM};
  int rc = uv_getaddrinfo(db->loop, req, host_resolved, db->resolve_host,
                          NULL, &hints);
  if (rc < 0) {
    free(req);
    char why[512];
    snprintf(why, sizeof why, "cannot resolve host %s: %s", db->resolve_host,
             uv_strerror(rc));
    conn_broken(c, why);
    return;
  }
  c->resolving = req;
}

/* The host name of url when it is one name to look up, else NULL: literal
 * addresses, socket directories, host lists and a given hostaddr are left
 * to libpq, which does not resolve those. */
static char *host_to_resolve(const char *url) {
  PQconninfoOption *opts = PQconninfoParse(url, NULL);
  const char *host = NULL, *hostaddr = NULL;
  for (PQconninfoOption *o = opts; o && o->keyword; o++) {
    if (strcmp(o->keyword, "host") == 0)
      host = o->val;
    else if (strcmp(o->keyword, "hostaddr") == 0)
      hostaddr = o->val;
  }
  char *name = NULL;
  unsigned char buf[sizeof(struct in6_addr)];
  if (host && *host && !(hostaddr && *hostaddr) && host[0] != '/' &&
      host[0] != '@' && !strchr(host, ',') &&
      inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
    name = strdup(host);
  PQconninfoFree(opts);
  return name;
}

static void conn_init(rn__db_t *db, conn_t *c, bool listen) {
  c->db = db;
  c->listen = listen;
  c->polled_fd = -1;
  rn__list_init(&c->own);
  uv_timer_init(db->loop, &c->timer);
  c->timer.data = c;
  db->open_handles++;
}

/* ------------------------------------------------------------ queries */

static void finish_live(conn_t *c) {
  rn__db_query_t *q = c->live;
  PGresult *res = c->result;
  c->live = NULL;
  c->result = NULL;
  int status = RN_EDB;
  const char *msg = "no result";
  char line[1024], code[6] = "";
  if (res) {
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      status = 0;
      msg = NULL;
    } else {
      result_error(res, c->pg, line, sizeof line, code);
      msg = line;
    }
  }
  deliver(c->db, q, status, res, msg, code);
  PQclear(res);
}

static void dispatch_notifies(conn_t *c) {
  rn__db_t *db = c->db;
  PGnotify *n;
  while (c->pg && (n = PQnotifies(c->pg))) {
    for (size_t i = 0; i < db->nchannels && !db->closing; i++)
      if (strcmp(db->channels[i].name, n->relname) == 0)
        db->channels[i].cb(n->relname, n->extra, db->channels[i].data);
    PQfreemem(n);
  }
}

/* After a statement that got a cancel request: a request arriving late
 * must not stop the next statement, so the session is replaced. The pool
 * stays up meanwhile; what waits goes out on the other connections. */
static void conn_recycle(conn_t *c) {
  close_poll(c);
  PQfinish(c->pg);
  c->pg = NULL;
  c->state = CONN_DOWN;
  c->recycle = false;
  c->flush_pending = false;
  uv_timer_stop(&c->timer);
  conn_start(c);
}

static void on_io(uv_poll_t *poll, int status, int events) {
  conn_t *c = poll->data;
  rn__db_t *db = c->db;
  if (status < 0 && c->state != CONN_CONNECTING) {
    conn_broken(c, uv_strerror(status));
    return;
  }
  /* While connecting, a socket error is libpq's to explain. */
  if (c->state == CONN_CONNECTING) {
    connect_step(c);
    return;
  }
  if (events & UV_READABLE) {
    if (!PQconsumeInput(c->pg)) {
      conn_broken(c, PQerrorMessage(c->pg));
      return;
    }
    dispatch_notifies(c);
    if (db->closing)
      return;
  }
  if (c->flush_pending) {
    int r = PQflush(c->pg);
    if (r < 0) {
      conn_broken(c, PQerrorMessage(c->pg));
      return;
    }
    c->flush_pending = r == 1;
  }
  while (c->live && !PQisBusy(c->pg)) {
    PGresult *res = PQgetResult(c->pg);
    if (!res) {
      bool recycle = c->recycle;
      finish_live(c);
      if (db->closing || c->state != CONN_READY)
        return;
      if (recycle) {
        conn_recycle(c);
        return;
      }
      break;
    }
    /* Keep an error over a later result: it is the one that matters. */
    if (c->result && PQresultStatus(res) != PGRES_FATAL_ERROR &&
        PQresultStatus(c->result) == PGRES_FATAL_ERROR) {
      PQclear(res);
    } else {
      PQclear(c->result);
      c->result = res;
    }
  }
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    conn_broken(c, PQerrorMessage(c->pg));
    return;
  }
  pump(c);
}

/* Sends the next statement when the connection is free; keeps READABLE on
 * always, since a NOTIFY or an error may arrive with nothing in flight. */
static void pump(conn_t *c) {
  rn__db_t *db = c->db;
  if (c->state != CONN_READY || db->closing)
    return;
  if (!c->live) {
    rn__list_t *from = !rn__list_empty(&c->own) ? &c->own
                       : c->listen              ? NULL
                                                : &db->waiting;
    if (from && !rn__list_empty(from)) {
      rn__db_query_t *q = rn__container_of(from->next, rn__db_query_t, link);
      rn__list_remove(&q->link);
      c->live = q;
      q->conn = c;
      if (!PQsendQueryParams(c->pg, q->sql, q->nparams, NULL,
                             (const char *const *)q->params, NULL, NULL, 0)) {
        conn_broken(c, PQerrorMessage(c->pg));
        return;
      }
      int r = PQflush(c->pg);
      if (r < 0) {
        conn_broken(c, PQerrorMessage(c->pg));
        return;
      }
      c->flush_pending = r == 1;
    }
  }
  if (watch(c, UV_READABLE | (c->flush_pending ? UV_WRITABLE : 0)) < 0)
    conn_broken(c, "cannot watch the connection socket");
}

static void pump_all(rn__db_t *db) {
  for (size_t i = 0; i < db->nconns && !rn__list_empty(&db->waiting); i++)
    if (!db->conns[i].live)
      pump(&db->conns[i]);
}

static int submit(rn__db_t *db, const char *sql, int nparams,
                  const char *const *params, rn__db_cb cb, void *data,
                  rn__db_query_t **query, bool first) {
  if (!db || !sql || !cb || nparams < 0 || (nparams > 0 && !params))
    return RN_EINVAL;
  if (db->closing)
    return RN_ECANCELED;
  /* Known to be away: fail now instead of queueing behind a backoff. */
  if (db->health == -1 && !db->up)
    return RN_EDB;
  rn__db_query_t *q = calloc(1, sizeof *q);
  if (!q)
    return RN_ENOMEM;
  q->sql = strdup(sql);
  q->params = nparams ? calloc((size_t)nparams, sizeof *q->params) : NULL;
  q->nparams = nparams;
  bool ok = q->sql && (nparams == 0 || q->params);
  for (int i = 0; ok && i < nparams; i++)
    ok = !params[i] || (q->params[i] = strdup(params[i]));
  if (!ok) {
    q->nparams = q->params ? nparams : 0;
    query_free(q);
    return RN_ENOMEM;
  }
  q->cb = cb;
  q->data = data;
  q->db = db;
  /* Pushing before the first waiting statement puts it at the head. */
  rn__list_push(first ? db->waiting.next : &db->waiting, &q->link);
  db->busy++;
  if (query)
    *query = q;
  pump_all(db);
  return 0;
}

int rn__db_exec(rn__db_t *db, const char *sql, int nparams,
                const char *const *params, rn__db_cb cb, void *data,
                rn__db_query_t **query) {
  return submit(db, sql, nparams, params, cb, data, query, false);
}

int rn__db_exec_first(rn__db_t *db, const char *sql, int nparams,
                      const char *const *params, rn__db_cb cb, void *data,
                      rn__db_query_t **query) {
  return submit(db, sql, nparams, params, cb, data, query, true);
}

static void deliver_canceled(uv_timer_t *timer) {
  rn__db_t *db = timer->data;
  while (!rn__list_empty(&db->canceled)) {
    rn__db_query_t *q = rn__container_of(db->canceled.next, rn__db_query_t,
                                         link);
    rn__list_remove(&q->link);
    deliver(db, q, RN_ECANCELED, NULL, "canceled", NULL);
  }
}

void rn__db_cancel(rn__db_query_t *q) {
  if (q->canceled)
    return;
  q->canceled = true;
  /* In flight (unlinked): the server is asked to stop it, and its result,
   * when it comes, is reported as canceled. Queued: it never goes out;
   * report it from the next loop turn. */
  if (rn__list_empty(&q->link)) {
    conn_t *c = q->conn;
    if (c && c->live == q && c->pg && !c->recycle && !c->listen) {
      c->recycle = true;
      send_cancel(PQgetCancel(c->pg));
    }
    return;
  }
  rn__list_remove(&q->link);
  rn__list_push(&q->db->canceled, &q->link);
  uv_timer_start(&q->db->cancel_timer, deliver_canceled, 0, 0);
}

int rn__db_listen(rn__db_t *db, const char *channel, rn__db_notify_cb cb,
                  void *data) {
  if (!db || !channel || !cb)
    return RN_EINVAL;
  channel_t *grown =
      realloc(db->channels, (db->nchannels + 1) * sizeof *db->channels);
  if (!grown)
    return RN_ENOMEM;
  db->channels = grown;
  channel_t *ch = &db->channels[db->nchannels];
  ch->name = strdup(channel);
  if (!ch->name)
    return RN_ENOMEM;
  ch->cb = cb;
  ch->data = data;
  db->nchannels++;
  if (!db->listener_started) {
    db->listener_started = true;
    conn_start(&db->listener);
  } else if (db->listener.state == CONN_READY) {
    /* Subscribe on the live connection: resend every LISTEN (harmless). */
    queue_listens(&db->listener);
    pump(&db->listener);
  }
  return 0;
}

static void listen_ready(int status, PGresult *res, const char *errmsg,
                         void *data) {
  rn__db_t *db = data;
  (void)res;
  if (status < 0) {
    if (status != RN_ECANCELED)
      rn__log(RN_LOG_ERR, "db", "LISTEN failed: %s", errmsg);
    return;
  }
  /* Only after the last LISTEN of a (re)connect: tell subscribers that
   * notifications may have been missed while it was down. */
  if (!rn__list_empty(&db->listener.own))
    return;
  for (size_t i = 0; i < db->nchannels && !db->closing; i++)
    db->channels[i].cb(NULL, NULL, db->channels[i].data);
}

void rn__db_set_reconnect_cap(rn__db_t *db, uint32_t cap_ms) {
  if (db)
    db->backoff_cap_ms = cap_ms < BACKOFF_MIN_MS ? BACKOFF_MIN_MS
                         : cap_ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                   : cap_ms;
}

void rn__db_on_state(rn__db_t *db, rn__db_state_cb cb, void *data) {
  db->state_cb = cb;
  db->state_data = data;
}

bool rn__db_up(const rn__db_t *db) { return db && db->up; }
unsigned rn__db_busy(const rn__db_t *db) { return db ? db->busy : 0; }

/* ------------------------------------------------------ open / close */

static void free_db(rn__db_t *db) {
  for (size_t i = 0; i < db->nchannels; i++)
    free(db->channels[i].name);
  free(db->channels);
  free(db->conns);
  free(db->url);
  free(db->safe_url);
  free(db->resolve_host);
  free(db);
}

static void handle_released(rn__db_t *db) {
  if (--db->open_handles == 0 && db->closing)
    free_db(db);
}

static void handle_closed(uv_handle_t *handle) {
  conn_t *c = handle->data;
  if (handle->type == UV_POLL)
    free(handle);
  handle_released(c->db);
}

static void cancel_timer_closed(uv_handle_t *handle) {
  handle_released(handle->data);
}

enum { DEFAULT_POOL = 4 };

rn__db_t *rn__db_get(rn__runner_t *runner) {
  if (runner->db)
    return runner->db;
  const char *url = runner->gen && runner->gen->config
                        ? runner->gen->config->database_url
                        : NULL;
  if (!url || !*url || runner->stopping)
    return NULL;
  rn__db_t *db = calloc(1, sizeof *db);
  if (!db)
    return NULL;
  db->runner = runner;
  db->loop = runner->loop;
  db->url = strdup(url);
  db->safe_url = rn__db_redact(url);
  db->resolve_host = host_to_resolve(url);
  db->backoff_cap_ms = BACKOFF_MAX_MS;
  size_t pool = runner->gen->config->db_pool_size ? runner->gen->config->db_pool_size
                                                   : DEFAULT_POOL;
  db->conns = calloc(pool, sizeof *db->conns);
  if (!db->url || !db->safe_url || !db->conns) {
    free_db(db);
    return NULL;
  }
  db->nconns = pool;
  rn__list_init(&db->waiting);
  rn__list_init(&db->canceled);
  uv_timer_init(db->loop, &db->cancel_timer);
  db->cancel_timer.data = db;
  db->open_handles++;
  for (size_t i = 0; i < pool; i++)
    conn_init(db, &db->conns[i], false);
  conn_init(db, &db->listener, true);
  runner->db = db;
  for (size_t i = 0; i < pool; i++)
    conn_start(&db->conns[i]);
  return db;
}

static void conn_close(conn_t *c) {
  rn__db_t *db = c->db;
  if (c->live) {
    rn__db_query_t *q = c->live;
    c->live = NULL;
    if (c->listen) {
      db->busy--;
      query_free(q);
    } else
      deliver(db, q, RN_ECANCELED, NULL, "the database service is closing",
              NULL);
  }
  while (!rn__list_empty(&c->own)) {
    rn__db_query_t *q = rn__container_of(c->own.next, rn__db_query_t, link);
    rn__list_remove(&q->link);
    db->busy--;
    query_free(q);
  }
  PQclear(c->result);
  c->result = NULL;
  stop_resolving(c);
  close_poll(c);
  PQfinish(c->pg);
  c->pg = NULL;
  c->state = CONN_DOWN;
  uv_close((uv_handle_t *)&c->timer, handle_closed);
}

static void tx_pool_drain(void);

void rn__db_close(rn__runner_t *runner) {
  rn__db_t *db = runner->db;
  if (!db)
    return;
  runner->db = NULL;
  db->closing = true;
  fail_waiting(db, RN_ECANCELED, "the database service is closing");
  deliver_canceled(&db->cancel_timer);
  for (size_t i = 0; i < db->nconns; i++)
    conn_close(&db->conns[i]);
  conn_close(&db->listener);
  uv_close((uv_handle_t *)&db->cancel_timer, cancel_timer_closed);
  tx_pool_drain();
}

/* ------------------------------------------------- blocking connections */

PGconn *rn__db_connect_blocking(const char *url, uint64_t wait_ms, char *err,
                                size_t errlen) {
  char *safe = rn__db_redact(url);
  char *options = session_options(url);
  uint64_t waited = 0, backoff = 250;
  char last[512] = "";
  for (;;) {
    const char *keys[] = {"dbname", "application_name", "connect_timeout",
                          "options", NULL};
    const char *values[] = {url, "regentra-runner", "10", options, NULL};
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (pg && PQstatus(pg) == CONNECTION_OK) {
      if (last[0])
        fprintf(stderr, "regentra-runner: database %s reachable again\n",
                safe ? safe : "");
      free(safe);
      free(options);
      return pg;
    }
    one_line(last, sizeof last, pg ? PQerrorMessage(pg) : "out of memory");
    PQfinish(pg);
    if (waited >= wait_ms)
      break;
    fprintf(stderr,
            "regentra-runner: database %s not reachable (%s); retrying in "
            "%.1f s\n",
            safe ? safe : "", last, (double)backoff / 1000.0);
    usleep((useconds_t)(backoff * 1000));
    waited += backoff;
    backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
  }
  snprintf(err, errlen, "cannot connect to database %s: %s", safe ? safe : "",
           last);
  free(safe);
  free(options);
  return NULL;
}

/* Transactions run on worker threads over connections of this pool, kept
 * process-wide so a closing db never frees one a worker still holds. */
static struct {
  uv_once_t once;
  uv_mutex_t mutex;
  PGconn *idle[TX_POOL_MAX];
  char *idle_url[TX_POOL_MAX];
  size_t nidle;
} tx_pool = {.once = UV_ONCE_INIT};

static void tx_pool_init(void) {
  if (uv_mutex_init(&tx_pool.mutex) != 0)
    abort();
}

static PGconn *tx_pool_take(const char *url, char *err, size_t errlen) {
  uv_once(&tx_pool.once, tx_pool_init);
  PGconn *pg = NULL;
  uv_mutex_lock(&tx_pool.mutex);
  for (size_t i = tx_pool.nidle; i-- > 0;) {
    if (strcmp(tx_pool.idle_url[i], url) == 0) {
      pg = tx_pool.idle[i];
      free(tx_pool.idle_url[i]);
      tx_pool.idle[i] = tx_pool.idle[tx_pool.nidle - 1];
      tx_pool.idle_url[i] = tx_pool.idle_url[tx_pool.nidle - 1];
      tx_pool.nidle--;
      break;
    }
  }
  uv_mutex_unlock(&tx_pool.mutex);
  if (pg && PQstatus(pg) == CONNECTION_OK)
    return pg;
  PQfinish(pg);
  char *options = session_options(url);
  const char *keys[] = {"dbname", "application_name", "connect_timeout",
                        "options", NULL};
  const char *values[] = {url, "regentra-runner", "10", options, NULL};
  pg = PQconnectdbParams(keys, values, 1);
  free(options);
  if (pg && PQstatus(pg) == CONNECTION_OK) {
    PQsetNoticeProcessor(pg, log_notice, NULL);
    return pg;
  }
  one_line(err, errlen, pg ? PQerrorMessage(pg) : "out of memory");
  PQfinish(pg);
  return NULL;
}

static void tx_pool_give(const char *url, PGconn *pg) {
  uv_once(&tx_pool.once, tx_pool_init);
  char *copy = strdup(url);
  uv_mutex_lock(&tx_pool.mutex);
  if (copy && PQstatus(pg) == CONNECTION_OK &&
      PQtransactionStatus(pg) == PQTRANS_IDLE &&
      tx_pool.nidle < TX_POOL_MAX) {
    tx_pool.idle[tx_pool.nidle] = pg;
    tx_pool.idle_url[tx_pool.nidle++] = copy;
    pg = NULL;
    copy = NULL;
  }
  uv_mutex_unlock(&tx_pool.mutex);
  free(copy);
  PQfinish(pg);
}

static void tx_pool_drain(void) {
  uv_once(&tx_pool.once, tx_pool_init);
  uv_mutex_lock(&tx_pool.mutex);
  for (size_t i = 0; i < tx_pool.nidle; i++) {
    PQfinish(tx_pool.idle[i]);
    free(tx_pool.idle_url[i]);
  }
  tx_pool.nidle = 0;
  uv_mutex_unlock(&tx_pool.mutex);
}

/* ------------------------------------------------ services for plugins */

typedef struct plugin_query_s {
  rn_req_t req;
  rn__db_query_t *query;
  rn_db_cb cb;
  void *data;
} plugin_query_t;

static void plugin_query_done(int status, PGresult *res, const char *errmsg,
                              void *data) {
  plugin_query_t *pq = data;
  rn_db_result_t view = {res};
  if (status < 0 && status != RN_ECANCELED)
    rn__log(RN_LOG_WARNING, pq->req.ctx->plugin->name, "query failed: %s",
            errmsg);
  rn__req_enter(&pq->req);
  pq->cb(pq->req.ctx, status, status == 0 ? &view : NULL, pq->data);
  rn__req_finish(&pq->req);
  free(pq);
}

void rn__db_query_req_cancel(rn_req_t *req) {
  plugin_query_t *pq = rn__container_of(req, plugin_query_t, req);
  rn__db_cancel(pq->query);
}

static int db_query(rn_ctx_t *ctx, const char *sql, int nparams,
                    const char *const *params, rn_db_cb cb, void *data,
                    rn_req_t **req) {
  if (!ctx || !cb)
    return RN_EINVAL;
  if (rn__req_admit(ctx) < 0)
    return RN_ECANCELED; /* its run was ended by the host */
  rn__db_t *db = rn__db_get(ctx->runner);
  if (!db)
    return RN_ENOSYS;
  plugin_query_t *pq = calloc(1, sizeof *pq);
  if (!pq)
    return RN_ENOMEM;
  pq->cb = cb;
  pq->data = data;
  pq->req.ctx = ctx;
  int rc = rn__db_exec(db, sql, nparams, params, plugin_query_done, pq,
                       &pq->query);
  if (rc < 0) {
    free(pq);
    return rc;
  }
  rn__req_start(ctx, &pq->req, rn__db_query_req_cancel);
  if (req)
    *req = &pq->req;
  return 0;
}

struct rn_db_tx_s {
  PGconn *pg;
  atomic_bool *canceled;
  bool failed;
  char error[1024];
  char sqlstate[6];
};

typedef struct tx_req_s {
  rn_req_t req;
  uv_work_t work;
  char *url;
  uint64_t statement_timeout_ms;
  rn_db_tx_fn fn;
  rn_status_cb done;
  void *data;
  atomic_bool canceled;
  /* The running session's cancel key, set and taken under the mutex: the
   * worker sets it once connected, a cancel from the loop takes it. */
  uv_mutex_t cancel_mutex;
  PGcancel *cancel;
  int status;
  char error[1024];
  char sqlstate[6];
} tx_req_t;

static bool tx_command(PGconn *pg, const char *sql, char *err, size_t errlen,
                       char code[6]) {
  PGresult *res = PQexec(pg, sql);
  bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
  /* A COMMIT of a failed transaction answers "ROLLBACK". */
  if (ok && strcmp(sql, "COMMIT") == 0 && strcmp(PQcmdStatus(res), "COMMIT")) {
    ok = false;
    snprintf(err, errlen, "the transaction was rolled back at COMMIT");
    snprintf(code, 6, "40000");
  } else if (!ok) {
    result_error(res, pg, err, errlen, code);
  }
  PQclear(res);
  return ok;
}

static void tx_work(uv_work_t *work) {
  tx_req_t *t = rn__container_of(work, tx_req_t, work);
  char ignored[256], ignored_code[6];
  PGconn *pg = tx_pool_take(t->url, t->error, sizeof t->error);
  if (!pg) {
    snprintf(t->sqlstate, sizeof t->sqlstate, "08001");
    t->status = RN_EDB;
    return;
  }
  uv_mutex_lock(&t->cancel_mutex);
  t->cancel = PQgetCancel(pg);
  uv_mutex_unlock(&t->cancel_mutex);
  /* Checked after the key is published: a cancel either sees the key or
   * has set the flag already. */
  int rc = 0;
  char timeout[64];
  snprintf(timeout, sizeof timeout, "SET LOCAL statement_timeout = %llu",
           (unsigned long long)t->statement_timeout_ms);
  if (atomic_load(&t->canceled))
    rc = RN_ECANCELED;
  else if (!tx_command(pg, "BEGIN", t->error, sizeof t->error, t->sqlstate) ||
           !tx_command(pg, timeout, t->error, sizeof t->error, t->sqlstate))
    rc = RN_EDB;
  rn_db_tx_t tx = {.pg = pg, .canceled = &t->canceled};
  if (rc == 0)
    rc = t->fn(&tx, t->data);
  if (atomic_load(&t->canceled))
    rc = RN_ECANCELED;
  if (rc >= 0 && tx.failed)
    rc = RN_EDB; /* the plugin ignored a failed statement: never commit */
  if (rc >= 0) {
    if (!tx_command(pg, "COMMIT", t->error, sizeof t->error, t->sqlstate))
      rc = RN_EDB;
  } else if (PQtransactionStatus(pg) != PQTRANS_IDLE) {
    tx_command(pg, "ROLLBACK", ignored, sizeof ignored, ignored_code);
  }
  if (rc < 0 && rc != RN_ECANCELED && tx.error[0] && !t->error[0]) {
    snprintf(t->error, sizeof t->error, "%s", tx.error);
    memcpy(t->sqlstate, tx.sqlstate, sizeof t->sqlstate);
  }
  t->status = rc < 0 ? rc : 0;
  uv_mutex_lock(&t->cancel_mutex);
  bool cancel_sent = t->cancel == NULL;
  PQfreeCancel(t->cancel);
  t->cancel = NULL;
  uv_mutex_unlock(&t->cancel_mutex);
  /* A cancel request may still be on its way to this session: never lend
   * it to the next transaction. */
  if (cancel_sent) {
    PQfinish(pg);
    return;
  }
  tx_pool_give(t->url, pg);
}

static void tx_req_free(tx_req_t *t) {
  uv_mutex_destroy(&t->cancel_mutex);
  free(t->url);
  free(t);
}

static void tx_after(uv_work_t *work, int status) {
  tx_req_t *t = rn__container_of(work, tx_req_t, work);
  int result = status == UV_ECANCELED ? RN_ECANCELED : t->status;
  rn__runner_t *runner = t->req.ctx->runner;
  if (result < 0 && result != RN_ECANCELED && t->error[0])
    rn__log(RN_LOG_WARNING, t->req.ctx->plugin->name,
            "transaction rolled back: %s", t->error);
  rn__req_enter(&t->req);
  snprintf(runner->db_sqlstate, sizeof runner->db_sqlstate, "%s",
           result == RN_EDB ? t->sqlstate : "");
  t->done(t->req.ctx, result, t->data);
  runner->db_sqlstate[0] = '\0';
  rn__req_finish(&t->req);
  tx_req_free(t);
}

void rn__db_tx_req_cancel(rn_req_t *req) {
  tx_req_t *t = rn__container_of(req, tx_req_t, req);
  if (atomic_exchange(&t->canceled, true))
    return;
  /* Succeeds only before a worker took it: tx_after then reports
   * RN_ECANCELED. Otherwise the running statement is stopped, and the flag
   * rolls back whatever the plugin does next. */
  if (uv_cancel((uv_req_t *)&t->work) == 0)
    return;
  uv_mutex_lock(&t->cancel_mutex);
  PGcancel *cancel = t->cancel;
  t->cancel = NULL;
  uv_mutex_unlock(&t->cancel_mutex);
  send_cancel(cancel);
}

/* The longest timeout of the plugin's configured jobs: no statement of one
 * of its runs may rightly outlast that. */
static uint64_t tx_statement_timeout(const rn_ctx_t *ctx) {
  uint64_t longest = 0;
  const rn__generation_t *gen = ctx->plugin->gen;
  for (size_t i = 0; gen && i < gen->njobs; i++)
    if (gen->jobs[i].valid && gen->jobs[i].plugin == ctx->plugin &&
        gen->jobs[i].conf->timeout_ms > longest)
      longest = gen->jobs[i].conf->timeout_ms;
  return longest ? longest : RN__DB_TX_STATEMENT_TIMEOUT_MS;
}

static int db_transaction(rn_ctx_t *ctx, rn_db_tx_fn fn, rn_status_cb done,
                          void *data, rn_req_t **req) {
  if (!ctx || !fn || !done)
    return RN_EINVAL;
  if (rn__req_admit(ctx) < 0)
    return RN_ECANCELED; /* its run was ended by the host */
  rn__db_t *db = rn__db_get(ctx->runner);
  if (!db)
    return RN_ENOSYS;
  tx_req_t *t = calloc(1, sizeof *t);
  if (!t || !(t->url = strdup(db->url))) {
    free(t);
    return RN_ENOMEM;
  }
  if (uv_mutex_init(&t->cancel_mutex) != 0) {
    free(t->url);
    free(t);
    return RN_ENOMEM;
  }
  t->fn = fn;
  t->done = done;
  t->data = data;
  t->statement_timeout_ms = tx_statement_timeout(ctx);
  atomic_init(&t->canceled, false);
  int rc = uv_queue_work(ctx->runner->loop, &t->work, tx_work, tx_after);
  if (rc < 0) {
    tx_req_free(t);
    return rn__from_uv(rc);
  }
  rn__req_start(ctx, &t->req, rn__db_tx_req_cancel);
  rn__req_on_pool(&t->req);
  if (req)
    *req = &t->req;
  return 0;
}

static int db_tx_exec(rn_db_tx_t *tx, const char *sql, int nparams,
                      const char *const *params, rn_db_result_t **result) {
  if (result)
    *result = NULL;
  if (!tx || !sql || nparams < 0 || (nparams > 0 && !params))
    return RN_EINVAL;
  if (atomic_load(tx->canceled)) {
    snprintf(tx->error, sizeof tx->error, "transaction canceled");
    tx->failed = true;
    return RN_ECANCELED;
  }
  PGresult *res = PQexecParams(tx->pg, sql, nparams, NULL, params, NULL, NULL,
                               0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    result_error(res, tx->pg, tx->error, sizeof tx->error, tx->sqlstate);
    tx->failed = true;
    PQclear(res);
    /* A statement stopped by our own cancel request (57014) is the cancel. */
    return atomic_load(tx->canceled) ? RN_ECANCELED : RN_EDB;
  }
  if (!result) {
    PQclear(res);
    return 0;
  }
  rn_db_result_t *r = malloc(sizeof *r);
  if (!r) {
    PQclear(res);
    return RN_ENOMEM;
  }
  r->res = res;
  *result = r;
  return 0;
}

static const char *db_tx_error(rn_db_tx_t *tx) {
  return tx && tx->error[0] ? tx->error : NULL;
}

static int db_rows(const rn_db_result_t *r) {
  return r && r->res ? PQntuples(r->res) : 0;
}

static int db_cols(const rn_db_result_t *r) {
  return r && r->res ? PQnfields(r->res) : 0;
}

static const char *db_value(const rn_db_result_t *r, int row, int col) {
  if (!r || !r->res || row < 0 || col < 0 || row >= PQntuples(r->res) ||
      col >= PQnfields(r->res) || PQgetisnull(r->res, row, col))
    return NULL;
  return PQgetvalue(r->res, row, col);
}

static int64_t db_affected(const rn_db_result_t *r) {
  const char *n = r && r->res ? PQcmdTuples(r->res) : "";
  return *n ? strtoll(n, NULL, 10) : 0;
}

static void db_result_free(rn_db_result_t *r) {
  if (!r)
    return;
  PQclear(r->res);
  free(r);
}

void rn__db_fill_host(rn_host_t *host) {
  host->db_query = db_query;
  host->db_transaction = db_transaction;
  host->db_tx_exec = db_tx_exec;
  host->db_tx_error = db_tx_error;
  host->db_rows = db_rows;
  host->db_cols = db_cols;
  host->db_value = db_value;
  host->db_affected = db_affected;
  host->db_result_free = db_result_free;
}
