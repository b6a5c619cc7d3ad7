/* card_internal.h - shared by the files of the integration card. */
#ifndef RK_CARD_INTERNAL_H
#define RK_CARD_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "regentra/devsrc.h"
#include "regentra/kit/card.h"
#include "regentra/plugin.h"

/* The host and the provider of this plugin, kept by rk_card_jobs; the
 * provider is copied whole, so fields past an older struct_size read 0. */
extern const rn_host_t *rk__host;
extern rk_provider_t rk__provider;
#define host rk__host
#define P rk__provider

#define ACTOR "regentra-runner"

/* Sentences built once from the provider's words. */
typedef struct rk_words_s {
  char connected[64], discovery[64], disconnected[64]; /* audit events */
  char not_connected_hint[512];
  char org_not_discovered_hint[512];
  char map_usage_hint[128];
  char no_orgs_hint[512];
  char retire_reason[128];
  char listing_stage[128];
} rk_words_t;
extern rk_words_t rk__words;
#define W rk__words

/* One run of one command: everything its steps share. It is the
 * rk_session_t hooks see. Freed by op_finish. */
typedef struct rk_session_s op_t;
struct rk_session_s {
  rn_ctx_t *ctx;
  void *state;
  rn_job_t *job;
  json_t *params; /* the job's parameters, parsed */
  int64_t msp_org_id;
  char region[32];
  bool has_region;
  const char *client_id;   /* borrowed from params or client_id_buf */
  char client_id_buf[256]; /* of a saved credential */
  char *sealed;            /* a saved sealed secret (host memory) */
  char *secret;            /* opened (host memory); wiped by wipe_secret */
  size_t secret_len;
  const char *job_secret; /* the job's own, the host wipes it */
  size_t job_secret_len;
  rk_credential_t cred; /* what the hooks see */
  /* the provider's */
  void *data;
  void (*release)(void *data);
  char api_host[256];
  char *granted_scope;
  bool scope_wider;
  /* discovery */
  json_t *orgs;  /* [{"id":"12","name":"Contoso"}] */
  json_t *given; /* RK_ORGS_GIVEN: the ids the operator named */
  size_t given_next;
  bool truncated;
  uint64_t pages;
  void (*after_discovery)(op_t *op);
  void (*hook_then)(op_t *op, int status, const char *message);
  bool in_hook;
  char hook_error[1024];
  /* the outcome */
  json_t *result;
  char summary[65536]; /* listings of a few hundred rows fit */
  char error[4096];
  const char *code; /* the stable --json error code of a failure, or NULL */
  const char *hint; /* what fixes it, when known, or NULL */
  int status;
  void (*then)(op_t *op); /* continuation after op_check_msp */
  struct sync_s *sync;    /* sync's run (card_sync.c), or NULL */
};

op_t *op_new(rn_ctx_t *ctx, void *state, rn_job_t *job);
void op_finish(op_t *op);
void op_fail(op_t *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void op_explain(op_t *op, const char *code, const char *hint);
const char *op_str(op_t *op, const char *name);
bool op_bool(op_t *op, const char *name);
/* The MSP id as a statement parameter. */
void op_msp_text(const op_t *op, char out[24]);
/* Fails with "database: <the transaction's error>". */
int op_db_error(op_t *op, rn_devsrc_t *ds, int rc);

/* Whether word is one of the provider's regions. */
bool region_known(const char *word);

/* Authenticates the credential (op->cred: client id and secret, set by the
 * caller) and collects op->orgs; calls next with op->status set. */
void op_discover(op_t *op, void (*next)(op_t *op));
void wipe_secret(op_t *op);
/* Calls a hook; a synchronous failure reaches then() with what the hook
 * said, else with `what: <error>`. */
void op_call_hook(op_t *op, int (*hook)(rk_session_t *), const char *what,
                  void (*then)(op_t *, int, const char *));

typedef int (*op_tx_fn)(op_t *op, rn_devsrc_t *ds);
/* Runs body in a transaction; next gets op->status. */
void op_transaction(op_t *op, op_tx_fn body, void (*next)(op_t *op));
/* A job's run hook: a new op, the MSP check, then first(op). */
int op_start(rn_ctx_t *ctx, void *state, rn_job_t *job,
             void (*first)(op_t *op));
void op_check_msp(op_t *op, void (*next)(op_t *op));

/* Runs sql for regions with nparams of: $1 the MSP, $2 the source, $3 org
 * (NULL = any); *rows is how many came back, the only one becomes
 * op->region. */
int one_region(op_t *op, rn_devsrc_t *ds, const char *sql, int nparams,
               const char *org, int *rows);
/* The one region of the MSP's discovered organizations (of org, when not
 * NULL), unless --region was given. */
int resolve_mapping_region(op_t *op, rn_devsrc_t *ds, const char *org);

/* A company name as names are compared: trimmed, case folded, runs of white
 * space as one space. The suggestion (sdk/devsrc/mappings.c) folds alike. */
#define FOLDED_NAME(column)                                                    \
  "lower(regexp_replace(btrim(" column "), '\\s+', ' ', 'g'))"

/* Bulk mapping (card_bulk.c): `map --accept-suggestions` and `map
 * --from-file`; a preview unless --apply. Completes the job. */
void bulk_map_start(op_t *op);

/* The card's jobs (card.c), finished by rk_card_jobs. */
extern rn_job_def_t rk__job_test, rk__job_connect, rk__job_orgs, rk__job_map,
    rk__job_disconnect, rk__job_status;
/* sync (card_sync.c): only with the provider's device hooks. */
extern rn_job_def_t rk__job_sync;
void rk__sync_words(void);
/* rk_session_progress of a sync. */
void sync_progress(op_t *op, uint64_t pages);
/* Fills the jobs' parameters and summaries from the provider's words. */
void rk__card_words(void);
/* "an" before a vowel: "an Intune credential", "a NinjaOne credential". */
const char *rk__article(const char *word);

#endif
