/* transaction.c - one devsrc transaction: db_transaction, rn_devsrc_init
 * and the error text, done once for every plugin. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "devsrc_internal.h"

typedef struct tx_s {
  const rn_host_t *host;
  int64_t now_ms;
  rn_devsrc_tx_fn body;
  rn_devsrc_done_cb done;
  void *data;
  int status;       /* the body's */
  char error[1024]; /* the body's reason, copied out of its rn_devsrc_t */
} tx_t;

int rn_devsrc_fail(rn_devsrc_t *ds, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ds->error, sizeof ds->error, fmt, ap);
  va_end(ap);
  return err;
}

/* Worker thread. */
static int tx_body(rn_db_tx_t *dbtx, void *data) {
  tx_t *t = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, t->host, dbtx, t->now_ms);
  t->status = t->body(&ds, t->data);
  if (t->status < 0)
    snprintf(t->error, sizeof t->error, "%s",
             ds.error[0] ? ds.error : t->host->strerror(t->status));
  return t->status;
}

static void tx_done(rn_ctx_t *ctx, int status, void *data) {
  tx_t *t = data;
  /* The body's failure says more than the rollback status; a commit that
   * failed after a good body is the database's. */
  if (t->status < 0)
    status = t->status;
  else if (status < 0)
    snprintf(t->error, sizeof t->error, "database: %s",
             t->host->strerror(status));
  char error[sizeof t->error];
  memcpy(error, t->error, sizeof error);
  rn_devsrc_done_cb done = t->done;
  void *done_data = t->data;
  t->host->free(t);
  done(ctx, status, status < 0 ? error : NULL, done_data);
}

int rn_devsrc_transaction(const rn_host_t *host, rn_ctx_t *ctx,
                          rn_devsrc_tx_fn body, rn_devsrc_done_cb done,
                          void *data) {
  return rn_devsrc_transaction_with(host, ctx, NULL, body, done, data);
}

int rn_devsrc_transaction_with(const rn_host_t *host, rn_ctx_t *ctx,
                               const rn_devsrc_tx_opts_t *opts,
                               rn_devsrc_tx_fn body, rn_devsrc_done_cb done,
                               void *data) {
  /* Only the fields inside the caller's struct_size: those its headers did
   * not know stay 0. */
  rn_devsrc_tx_opts_t o = {0};
  if (opts && opts->struct_size < sizeof opts->struct_size)
    return RN_EINVAL;
  if (opts && opts->struct_size >=
                  offsetof(rn_devsrc_tx_opts_t, now_ms) + sizeof opts->now_ms)
    o.now_ms = opts->now_ms;
  if (!RN_HOST_HAS(host, db_transaction))
    return RN_ENOSYS;
  tx_t *t = host->calloc(1, sizeof *t);
  if (!t)
    return RN_ENOMEM;
  *t = (tx_t){.host = host,
              .now_ms = o.now_ms ? o.now_ms : host->now_ms(ctx),
              .body = body,
              .done = done,
              .data = data};
  int rc = host->db_transaction(ctx, tx_body, tx_done, t, NULL);
  if (rc < 0)
    host->free(t);
  return rc;
}
