/* op.c - what every ninjaone command does the same way: parameters, the
 * client, discovery, transactions and the single completion. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping.h"
#include "ninjaone/explain.h"

op_t *op_new(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  op_t *op = host->calloc(1, sizeof *op);
  if (!op)
    return NULL;
  op->ctx = ctx;
  op->state = state;
  op->job = job;
  op->now_ms = host->now_ms(ctx);
  op->params = json_loads(host->job_params(job), 0, NULL);
  op->result = json_object();
  if (!op->params || !op->result) {
    json_decref(op->params);
    json_decref(op->result);
    host->free(op);
    return NULL;
  }
  op->msp_org_id = json_integer_value(json_object_get(op->params, "msp_org"));
  const char *region =
      json_string_value(json_object_get(op->params, "region"));
  op->has_region = region && nj_region_parse(region, &op->region) == 0;
  op->client_id = json_string_value(json_object_get(op->params, "client_id"));
  return op;
}

static void wipe_secret(op_t *op) {
  if (op->secret)
    host->secret_free(op->secret, op->secret_len);
  op->secret = NULL;
  op->secret_len = 0;
}

void op_explain(op_t *op, const char *code, const char *hint) {
  op->code = code;
  op->hint = hint;
}

/* Codes for failures whose cause the status alone tells. */
static void explain_by_status(op_t *op) {
  const char *hint;
  const char *code = nj_explain_status(op->status, &hint);
  if (code)
    op_explain(op, code, hint);
}

void op_finish(op_t *op) {
  wipe_secret(op);
  host->free(op->sealed);
  if (op->client)
    nj_client_free(op->client);
  char *result = NULL;
  if (op->status < 0) {
    if (!op->code)
      explain_by_status(op);
    /* A failure is {error: code, message, hint}; the runner's CLI names a
     * code for a status when the plugin gives none. */
    if (op->code)
      json_object_set_new(op->result, "error", json_string(op->code));
    json_object_set_new(op->result, "message", json_string(op->error));
    if (op->hint)
      json_object_set_new(op->result, "hint", json_string(op->hint));
  }
  result = json_dumps(op->result, JSON_COMPACT | JSON_SORT_KEYS);
  host->job_complete(op->job, op->status, result,
                     op->status < 0 ? op->error : op->summary);
  free(result);
  json_decref(op->params);
  json_decref(op->result);
  json_decref(op->orgs);
  host->free(op);
}

void op_fail(op_t *op, int status, const char *fmt, ...) {
  /* Formatted aside first: the arguments often include op->error itself. */
  char text[sizeof op->error];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  memcpy(op->error, text, sizeof text);
  op->status = status < 0 ? status : RN_EINVAL;
  op_finish(op);
}

int op_make_client(op_t *op, const char *secret, size_t secret_len) {
  nj_client_opts_t opts = {
      .client_id = op->client_id,
      .client_secret = secret,
      .client_secret_len = secret_len,
      .max_orgs = op->state->max_orgs,
  };
  nj_connection_apply(&op->state->connection, op->region, &opts);
  int rc = nj_client_new(host, op->ctx, &opts, &op->client, op->error,
                         sizeof op->error);
  /* The client holds its own copy now; ours goes at once. */
  wipe_secret(op);
  return rc;
}

/* ---------------------------------------------------------- discovery */

typedef struct discovery_s {
  op_t *op;
  void (*next)(op_t *op);
} discovery_t;

static int on_org_page(const nj_page_t *page, void *data) {
  op_t *op = ((discovery_t *)data)->op;
  for (size_t i = 0; i < page->count; i++) {
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)page->orgs[i].id);
    const char *name = page->orgs[i].name;
    json_array_append_new(op->orgs, json_pack("{s:s, s:s}", "id", id, "name",
                                              name && *name ? name : id));
  }
  if (RN_HOST_HAS(host, progress)) {
    rn_progress_t p = RN_PROGRESS_INIT;
    p.stage = "listing NinjaOne organizations";
    p.pages = page->page;
    p.items = json_array_size(op->orgs);
    p.items_name = "organizations";
    host->progress(op->job, &p);
  }
  return 0;
}

static void on_orgs_walked(nj_walk_t *walk, const nj_walk_result_t *result,
                           void *data) {
  (void)walk;
  discovery_t *d = data;
  op_t *op = d->op;
  op->walk = *result;
  op->walk.message = NULL;
  if (result->message)
    snprintf(op->walk_message, sizeof op->walk_message, "%s",
             result->message);
  op->status = result->status;
  if (result->status < 0)
    snprintf(op->error, sizeof op->error, "%s",
             result->message ? result->message
                             : host->strerror(result->status));
  void (*next)(op_t *) = d->next;
  host->free(d);
  next(op);
}

static void on_authenticated(nj_client_t *client, int status,
                             const char *message, void *data) {
  discovery_t *d = data;
  op_t *op = d->op;
  if (status < 0) {
    op->status = status;
    snprintf(op->error, sizeof op->error, "%s",
             message ? message : host->strerror(status));
    void (*next)(op_t *) = d->next;
    host->free(d);
    next(op);
    return;
  }
  nj_walk_opts_t opts = {.endpoint = NJ_EP_ORGANIZATIONS};
  int rc = nj_walk_start(client, &opts, on_org_page, on_orgs_walked, d, NULL);
  if (rc < 0) {
    op->status = rc;
    snprintf(op->error, sizeof op->error, "cannot list organizations: %s",
             host->strerror(rc));
    void (*next)(op_t *) = d->next;
    host->free(d);
    next(op);
  }
}

void op_discover(op_t *op, void (*next)(op_t *op)) {
  discovery_t *d = host->calloc(1, sizeof *d);
  if (!d) {
    op->status = RN_ENOMEM;
    next(op);
    return;
  }
  d->op = op;
  d->next = next;
  json_decref(op->orgs);
  op->orgs = json_array();
  int rc = nj_client_authenticate(op->client, on_authenticated, d);
  if (rc < 0) {
    host->free(d);
    op->status = rc;
    snprintf(op->error, sizeof op->error, "cannot authenticate: %s",
             host->strerror(rc));
    next(op);
  }
}

/* ------------------------------------------------------- transactions */

typedef struct tx_s {
  op_t *op;
  op_tx_fn body;
  void (*next)(op_t *op);
} tx_t;

static int tx_body(rn_db_tx_t *dbtx, void *data) {
  tx_t *t = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, dbtx, t->op->now_ms);
  int rc = t->body(t->op, &ds);
  if (rc < 0 && !t->op->error[0])
    snprintf(t->op->error, sizeof t->op->error, "%s", rn_devsrc_error(&ds));
  t->op->status = rc;
  return rc;
}

static void tx_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  tx_t *t = data;
  op_t *op = t->op;
  if (status < 0 && op->status >= 0) {
    op->status = status;
    snprintf(op->error, sizeof op->error, "database: %s",
             host->strerror(status));
  }
  void (*next)(op_t *) = t->next;
  host->free(t);
  next(op);
}

void op_transaction(op_t *op, op_tx_fn body, void (*next)(op_t *op)) {
  tx_t *t = host->calloc(1, sizeof *t);
  if (!t) {
    op->status = RN_ENOMEM;
    next(op);
    return;
  }
  *t = (tx_t){op, body, next};
  op->error[0] = '\0';
  op_explain(op, NULL, NULL);
  int rc = RN_HOST_HAS(host, db_transaction)
               ? host->db_transaction(op->ctx, tx_body, tx_done, t, NULL)
               : RN_ENOSYS;
  if (rc < 0) {
    host->free(t);
    op->status = rc;
    snprintf(op->error, sizeof op->error,
             "no database: %s (set [database] url or REGENTRA_DATABASE_URL)",
             host->strerror(rc));
    op_explain(op, "no_database",
               "set [database] url in runner.conf or REGENTRA_DATABASE_URL, "
               "then run 'regentra-runner migrate'");
    next(op);
  }
}

/* ------------------------------------------------------- MSP check */

static int check_msp_body(op_t *op, rn_devsrc_t *ds) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)op->msp_org_id);
  const char *params[] = {id};
  rn_db_result_t *res;
  int rc = host->db_tx_exec(ds->tx,
                            "SELECT kind FROM organization WHERE id = $1", 1,
                            params, &res);
  if (rc < 0) {
    snprintf(op->error, sizeof op->error, "database: %s",
             host->db_tx_error(ds->tx));
    return rc;
  }
  const char *kind = host->db_rows(res) ? host->db_value(res, 0, 0) : NULL;
  if (!kind) {
    rc = RN_ENOENT;
    snprintf(op->error, sizeof op->error, "unknown MSP organization %lld",
             (long long)op->msp_org_id);
    op_explain(op, "unknown_msp_org",
               "--msp-org takes the id of an organization of kind MSP");
  } else if (strcmp(kind, "MSP") != 0) {
    rc = RN_ETENANT;
    snprintf(op->error, sizeof op->error,
             "organization %lld is a %s organization, not an MSP",
             (long long)op->msp_org_id, kind);
    op_explain(op, "not_an_msp",
               "--msp-org takes the MSP's organization id, not a customer's");
  }
  host->db_result_free(res);
  return rc;
}

static void after_check(op_t *op) {
  if (op->status < 0) {
    op_finish(op);
    return;
  }
  void (*then)(op_t *) = op->then;
  op->then = NULL;
  then(op);
}

void op_check_msp(op_t *op, void (*next)(op_t *op)) {
  op->then = next;
  op_transaction(op, check_msp_body, after_check);
}

int op_start(rn_ctx_t *ctx, void *state, rn_job_t *job,
             void (*first)(op_t *op)) {
  op_t *op = op_new(ctx, state, job);
  if (!op)
    return RN_ENOMEM;
  op_check_msp(op, first);
  return 0;
}
