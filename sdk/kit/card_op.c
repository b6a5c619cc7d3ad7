/* card_op.c - what every card command does the same way: parameters, the
 * provider's hooks, discovery, transactions, the MSP check and the single
 * completion. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card_internal.h"

const rn_host_t *rk__host;
rk_provider_t rk__provider;

bool region_known(const char *word) {
  if (!word)
    return false;
  if (!P.regions)
    return strcmp(word, P.region) == 0;
  size_t len = strlen(word);
  for (const char *r = P.regions; *r;) {
    size_t n = strcspn(r, "|");
    if (n == len && strncmp(r, word, n) == 0)
      return true;
    r += n + (r[n] == '|');
  }
  return false;
}

op_t *op_new(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  op_t *op = host->calloc(1, sizeof *op);
  if (!op)
    return NULL;
  op->ctx = ctx;
  op->state = state;
  op->job = job;
  op->params = json_loads(host->job_params(job), 0, NULL);
  op->result = json_object();
  if (!op->params || !op->result) {
    json_decref(op->params);
    json_decref(op->result);
    host->free(op);
    return NULL;
  }
  op->msp_org_id = json_integer_value(json_object_get(op->params, "msp_org"));
  const char *region = P.regions ? op_str(op, "region") : P.region;
  op->has_region = region_known(region);
  if (op->has_region)
    snprintf(op->region, sizeof op->region, "%s", region);
  op->client_id = op_str(op, "client_id");
  return op;
}

const char *op_str(op_t *op, const char *name) {
  return json_string_value(json_object_get(op->params, name));
}

bool op_bool(op_t *op, const char *name) {
  return json_is_true(json_object_get(op->params, name));
}

void op_msp_text(const op_t *op, char out[24]) {
  snprintf(out, 24, "%lld", (long long)op->msp_org_id);
}

int op_db_error(op_t *op, rn_devsrc_t *ds, int rc) {
  snprintf(op->error, sizeof op->error, "database: %s",
           host->db_tx_error(ds->tx));
  return rc;
}

void wipe_secret(op_t *op) {
  if (op->secret)
    host->secret_free(op->secret, op->secret_len);
  op->secret = NULL;
  op->secret_len = 0;
  op->cred.secret = NULL;
  op->cred.secret_len = 0;
}

void op_explain(op_t *op, const char *code, const char *hint) {
  op->code = code;
  op->hint = hint;
}

void op_finish(op_t *op) {
  wipe_secret(op);
  host->free(op->sealed);
  if (op->release)
    op->release(op->data);
  host->free(op->granted_scope);
  if (op->status < 0) {
    if (!op->code && P.explain) {
      const char *hint = NULL;
      const char *code = P.explain(op->status, &hint);
      if (code)
        op_explain(op, code, hint);
    }
    /* A failure is {error: code, message, hint}; the runner's CLI names a
     * code for a status when the plugin gives none. */
    if (op->code)
      json_object_set_new(op->result, "error", json_string(op->code));
    json_object_set_new(op->result, "message", json_string(op->error));
    if (op->hint)
      json_object_set_new(op->result, "hint", json_string(op->hint));
  }
  char *result = json_dumps(op->result, JSON_COMPACT | JSON_SORT_KEYS);
  host->job_complete(op->job, op->status, result,
                     op->status < 0 ? op->error : op->summary);
  free(result);
  json_decref(op->params);
  json_decref(op->result);
  json_decref(op->orgs);
  json_decref(op->given);
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

/* ------------------------------------------------------- the session */

const rk_credential_t *rk_session_credential(const rk_session_t *s) {
  return &s->cred;
}
void *rk_session_state(const rk_session_t *s) {
  return s->state;
}
rn_ctx_t *rk_session_ctx(const rk_session_t *s) {
  return s->ctx;
}
rn_job_t *rk_session_job(const rk_session_t *s) {
  return s->job;
}

void rk_session_set_data(rk_session_t *s, void *data,
                         void (*release)(void *data)) {
  if (s->release && s->data != data)
    s->release(s->data);
  s->data = data;
  s->release = release;
}

void *rk_session_data(const rk_session_t *s) {
  return s->data;
}

void rk_session_set_host(rk_session_t *s, const char *api_host) {
  snprintf(s->api_host, sizeof s->api_host, "%s", api_host ? api_host : "");
}

void rk_session_set_scope(rk_session_t *s, const char *granted, bool wider) {
  host->free(s->granted_scope);
  s->granted_scope = granted ? host->strdup(granted) : NULL;
  s->scope_wider = wider;
}

int rk_session_add_org(rk_session_t *s, const char *external_id,
                       const char *name, const char *description) {
  if (!external_id || !*external_id)
    return RN_EINVAL;
  json_t *row = json_pack("{s:s, s:s}", "id", external_id, "name",
                          name && *name ? name : external_id);
  if (row && description)
    json_object_set_new(row, "description", json_string(description));
  if (!row || json_array_append_new(s->orgs, row) < 0)
    return RN_ENOMEM;
  return 0;
}

void rk_session_set_walk(rk_session_t *s, bool truncated, uint64_t pages) {
  s->truncated = truncated;
  s->pages = pages;
}

void rk_session_progress(rk_session_t *s, uint64_t pages) {
  if (!RN_HOST_HAS(host, progress))
    return;
  if (s->sync) {
    sync_progress(s, pages);
    return;
  }
  rn_progress_t p = RN_PROGRESS_INIT;
  p.stage = W.listing_stage;
  p.pages = pages;
  p.items = json_array_size(s->orgs);
  p.items_name = "organizations";
  host->progress(s->job, &p);
}

void rk_session_set_error(rk_session_t *s, const char *message) {
  snprintf(s->hook_error, sizeof s->hook_error, "%s", message ? message : "");
}

void rk_session_done(rk_session_t *s, int status, const char *message) {
  if (!s->in_hook)
    return; /* a second call: the hook broke its contract, ignore it */
  s->in_hook = false;
  void (*then)(op_t *, int, const char *) = s->hook_then;
  s->hook_then = NULL;
  then(s, status, message);
}

void op_call_hook(op_t *op, int (*hook)(rk_session_t *), const char *what,
                  void (*then)(op_t *, int, const char *)) {
  op->hook_error[0] = '\0';
  op->hook_then = then;
  op->in_hook = true;
  int rc = hook(op);
  if (rc < 0 && op->in_hook) {
    op->in_hook = false;
    op->hook_then = NULL;
    char text[sizeof op->hook_error + 64];
    if (op->hook_error[0])
      snprintf(text, sizeof text, "%s", op->hook_error);
    else
      snprintf(text, sizeof text, "%s: %s", what, host->strerror(rc));
    then(op, rc, text);
  }
}

/* ---------------------------------------------------------- discovery */

static void discovery_end(op_t *op, int status, const char *message) {
  wipe_secret(op);
  op->status = status < 0 ? status : 0;
  if (status < 0)
    snprintf(op->error, sizeof op->error, "%s",
             message ? message : host->strerror(status));
  void (*next)(op_t *) = op->after_discovery;
  op->after_discovery = NULL;
  next(op);
}

static void listed(op_t *op, int status, const char *message) {
  discovery_end(op, status, message);
}

static void authenticate_next_given(op_t *op);

static void authenticated(op_t *op, int status, const char *message) {
  if (status < 0) {
    discovery_end(op, status, message);
    return;
  }
  if (P.flags & RK_ORGS_GIVEN) {
    /* The tenant just authenticated is an organization, unless the hook
     * named it (with its display name) itself. */
    const char *tenant = op->cred.tenant;
    size_t i;
    json_t *o;
    bool named = false;
    json_array_foreach(op->orgs, i, o) {
      named |= strcmp(json_string_value(json_object_get(o, "id")), tenant) == 0;
    }
    int rc = named ? 0 : rk_session_add_org(op, tenant, NULL, NULL);
    if (rc < 0) {
      discovery_end(op, rc, NULL);
      return;
    }
    authenticate_next_given(op);
    return;
  }
  op_call_hook(op, P.list_orgs, "cannot list organizations", listed);
}

static void authenticate_next_given(op_t *op) {
  if (op->given_next == json_array_size(op->given)) {
    rk_session_set_walk(op, false, 0);
    discovery_end(op, 0, NULL);
    return;
  }
  op->cred.tenant =
      json_string_value(json_array_get(op->given, op->given_next++));
  op_call_hook(op, P.authenticate, "cannot authenticate", authenticated);
}

void op_discover(op_t *op, void (*next)(op_t *op)) {
  op->after_discovery = next;
  json_decref(op->orgs);
  op->orgs = json_array();
  op->truncated = false;
  op->pages = 0;
  op->cred = (rk_credential_t){
      .struct_size = sizeof op->cred,
      .msp_org_id = op->msp_org_id,
      .region = op->region,
      .client_id = op->client_id,
      .secret = op->secret ? op->secret : op->job_secret,
      .secret_len = op->secret ? op->secret_len : op->job_secret_len};
  if (!op->orgs) {
    discovery_end(op, RN_ENOMEM, NULL);
    return;
  }
  if (P.flags & RK_ORGS_GIVEN) {
    op->given_next = 0;
    authenticate_next_given(op);
    return;
  }
  op_call_hook(op, P.authenticate, "cannot authenticate", authenticated);
}

/* ------------------------------------------------------- transactions */

typedef struct tx_s {
  op_t *op;
  op_tx_fn body;
  void (*next)(op_t *op);
} tx_t;

static int tx_body(rn_devsrc_t *ds, void *data) {
  tx_t *t = data;
  int rc = t->body(t->op, ds);
  if (rc < 0 && !t->op->error[0])
    snprintf(t->op->error, sizeof t->op->error, "%s", rn_devsrc_error(ds));
  return rc;
}

static void tx_done(rn_ctx_t *ctx, int status, const char *error, void *data) {
  (void)ctx;
  tx_t *t = data;
  op_t *op = t->op;
  op->status = status;
  if (status < 0 && !op->error[0])
    snprintf(op->error, sizeof op->error, "%s", error);
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
  int rc = rn_devsrc_transaction(host, op->ctx, tx_body, tx_done, t);
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

/* Callable without a card: the host is the transaction's. */
#undef host
int rk_check_msp(rn_devsrc_t *ds, int64_t msp_org_id) {
  const rn_host_t *h = ds->host;
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)msp_org_id);
  const char *params[] = {id};
  rn_db_result_t *res;
  int rc = h->db_tx_exec(ds->tx, "SELECT kind FROM organization WHERE id = $1",
                         1, params, &res);
  if (rc < 0)
    return rn_devsrc_fail(ds, rc, "database: %s", h->db_tx_error(ds->tx));
  const char *kind = h->db_rows(res) ? h->db_value(res, 0, 0) : NULL;
  if (!kind)
    rc = rn_devsrc_fail(ds, RN_ENOENT, "unknown MSP organization %lld",
                        (long long)msp_org_id);
  else if (strcmp(kind, "MSP") != 0)
    rc = rn_devsrc_fail(ds, RN_ETENANT,
                        "organization %lld is a %s organization, not an MSP",
                        (long long)msp_org_id, kind);
  h->db_result_free(res);
  return rc;
}
#define host rk__host

static int check_msp_body(op_t *op, rn_devsrc_t *ds) {
  int rc = rk_check_msp(ds, op->msp_org_id);
  if (rc == RN_ENOENT)
    op_explain(op, "unknown_msp_org",
               "--msp-org takes the id of an organization of kind MSP");
  else if (rc == RN_ETENANT)
    op_explain(op, "not_an_msp",
               "--msp-org takes the MSP's organization id, not a customer's");
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

/* ------------------------------------- the region of what was discovered */

int one_region(op_t *op, rn_devsrc_t *ds, const char *sql, int nparams,
               const char *org, int *rows) {
  char id[24];
  op_msp_text(op, id);
  const char *params[] = {id, P.source, org};
  rn_db_result_t *res;
  int rc = host->db_tx_exec(ds->tx, sql, nparams, params, &res);
  if (rc < 0)
    return op_db_error(op, ds, rc);
  *rows = host->db_rows(res);
  if (*rows == 1) {
    snprintf(op->region, sizeof op->region, "%s", host->db_value(res, 0, 0));
    op->has_region = true;
  }
  host->db_result_free(res);
  return 0;
}

int resolve_mapping_region(op_t *op, rn_devsrc_t *ds, const char *org) {
  if (op->has_region)
    return 0;
  int rows;
  int rc = one_region(
      op, ds,
      "SELECT DISTINCT region FROM integration_org_mapping WHERE msp_org_id"
      " = $1 AND provider = $2 AND ($3::text IS NULL OR external_org_id = $3)"
      " ORDER BY region",
      3, org, &rows);
  if (rc < 0)
    return rc;
  const char *name = P.display_name;
  const char *group = P.source;
  if (rows == 0 && org) {
    snprintf(op->error, sizeof op->error,
             "%s organization %s has not been discovered for MSP "
             "organization %lld: run 'regentra-runner %s orgs --refresh' "
             "first",
             name, org, (long long)op->msp_org_id, group);
    op_explain(op, "org_not_discovered", W.org_not_discovered_hint);
  } else if (rows == 0) {
    snprintf(op->error, sizeof op->error,
             "no %s organization has been discovered for MSP organization "
             "%lld: run 'regentra-runner %s connect' or 'orgs --refresh' "
             "first",
             name, (long long)op->msp_org_id, group);
    op_explain(op, "org_not_discovered",
               "connect first; discovery lists the organizations to map");
  } else if (rows > 1 && org) {
    snprintf(op->error, sizeof op->error,
             "%s organization %s exists in several regions: pass --region",
             name, org);
    op_explain(op, "region_required", "pass --region");
  } else if (rows > 1) {
    snprintf(op->error, sizeof op->error,
             "MSP organization %lld has %s organizations in several "
             "regions: pass --region",
             (long long)op->msp_org_id, name);
    op_explain(op, "region_required", "pass --region");
  }
  return rows == 1 ? 0 : rows == 0 ? RN_ENOENT : RN_EINVAL;
}

/* -------------------------------------------------------- the binding */

rk_words_t rk__words;

static const rn_job_def_t *card_jobs[32];

static bool word_ok(const char *s) {
  return s && *s &&
         strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(s);
}

const rn_job_def_t *const *rk_card_jobs(const rn_host_t *h,
                                        const rk_provider_t *provider) {
  if (!h || !provider || provider->struct_size < offsetof(rk_provider_t, jobs))
    return NULL;
  memset(&rk__provider, 0, sizeof rk__provider);
  memcpy(&rk__provider, provider,
         provider->struct_size < sizeof rk__provider ? provider->struct_size
                                                     : sizeof rk__provider);
  bool given = P.flags & RK_ORGS_GIVEN;
  const char *problem = NULL;
  if (!word_ok(P.source) || strlen(P.source) > 31)
    problem = "source must be [a-z0-9_-]+, at most 31 characters";
  else if (!P.display_name)
    problem = "display_name is missing";
  else if (!P.regions && !word_ok(P.region))
    problem = "without regions, region names the one region";
  else if (!P.authenticate || (!given && !P.list_orgs))
    problem = "authenticate and list_orgs (or RK_ORGS_GIVEN) are required";
  else if (!P.walk_devices != !P.normalize)
    problem = "walk_devices and normalize go together";
  size_t n = 0;
  if (!problem) {
    rk__host = h;
    rk__card_words();
    const rn_job_def_t *own[] = {&rk__job_test,       &rk__job_connect,
                                 &rk__job_orgs,       &rk__job_map,
                                 &rk__job_disconnect, &rk__job_status};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
      card_jobs[n++] = own[i];
    if (P.walk_devices) {
      rk__sync_words();
      card_jobs[n++] = &rk__job_sync;
    }
    for (size_t i = 0; P.jobs && P.jobs[i]; i++) {
      if (n == sizeof card_jobs / sizeof *card_jobs - 1) {
        problem = "more than 24 jobs of its own";
        break;
      }
      if (P.walk_devices && P.jobs[i]->name &&
          strcmp(P.jobs[i]->name, rk__job_sync.name) == 0) {
        problem = "a job of its own is named sync, and the card runs sync";
        break;
      }
      card_jobs[n++] = P.jobs[i];
    }
  }
  if (problem) {
    fprintf(stderr, "regentra kit: the card of provider \"%s\": %s\n",
            P.source ? P.source : "?", problem);
    return NULL;
  }
  card_jobs[n] = NULL;
  return card_jobs;
}
