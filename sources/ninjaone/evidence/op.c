/* op.c - what both jobs do the same way: transactions and parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence.h"

void ev_itoa(int64_t n, char out[24]) {
  snprintf(out, 24, "%lld", (long long)n);
}

bool ev_param_int(json_t *params, const char *name, int64_t *out) {
  json_t *v = json_object_get(params, name);
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return true;
  }
  /* Events may carry ids as text; accept only a whole decimal number. */
  const char *s = json_string_value(v);
  if (!s || !*s)
    return false;
  char *end;
  long long n = strtoll(s, &end, 10);
  if (*end)
    return false;
  *out = n;
  return true;
}

typedef struct tx_s {
  int64_t now_ms;
  ev_tx_fn body;
  ev_tx_done done;
  void *data;
  int status;
  char error[1024];
} tx_t;

/* Worker thread: only db_tx_* services and our own data. */
static int tx_body(rn_db_tx_t *dbtx, void *data) {
  tx_t *t = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, dbtx, t->now_ms);
  int rc = t->body(t->data, &ds, t->error, sizeof t->error);
  if (rc < 0 && !t->error[0])
    snprintf(t->error, sizeof t->error, "%s", rn_devsrc_error(&ds));
  t->status = rc;
  return rc;
}

static void tx_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  tx_t *t = data;
  if (status < 0 && t->status >= 0) {
    t->status = status;
    snprintf(t->error, sizeof t->error, "database: %s",
             host->strerror(status));
  }
  ev_tx_done done = t->done;
  void *d = t->data;
  char error[sizeof t->error];
  memcpy(error, t->error, sizeof error);
  int rc = t->status;
  host->free(t);
  done(d, rc, error);
}

int ev_transaction(rn_ctx_t *ctx, int64_t now_ms, ev_tx_fn body,
                   ev_tx_done done, void *data) {
  if (!RN_HOST_HAS(host, db_transaction))
    return RN_ENOSYS;
  tx_t *t = host->calloc(1, sizeof *t);
  if (!t)
    return RN_ENOMEM;
  t->now_ms = now_ms;
  t->body = body;
  t->done = done;
  t->data = data;
  int rc = host->db_transaction(ctx, tx_body, tx_done, t, NULL);
  if (rc < 0)
    host->free(t);
  return rc;
}
