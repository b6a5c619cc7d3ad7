/*
 * kit_internal.h - what the kit's client files share: the client and one
 * logical API call (token, send, retries, error mapping).
 */
#ifndef RK_KIT_INTERNAL_H
#define RK_KIT_INTERNAL_H

#include "regentra/kit/client.h"

typedef struct rk__call_s rk__call_t;

/* Result of one logical request: status 0 with the body of a 2xx answer,
 * or an error with a sentence and, when an answer came, its status and
 * body. body is new (the callee owns it; free()). */
typedef void (*rk__call_cb)(rk__call_t *call, int status, long http_status,
                            const char *message, char *body, size_t len,
                            void *data);

typedef enum rk__call_state_e {
  RK_CALL_IDLE = 0,
  RK_CALL_WAIT_TOKEN,
  RK_CALL_HTTP,
  RK_CALL_BACKOFF,
} rk__call_state_t;

struct rk__call_s {
  rk_client_t *client;
  uint32_t ep;        /* label index for the figures, or RK_ENDPOINT_NONE */
  char *url;          /* absolute */
  const char *method; /* static text */
  char *body;         /* NULL = none */
  size_t body_len;
  char *content_type;
  bool expect_json; /* a 2xx body that does not parse is retried */
  rk__call_state_t state;
  unsigned attempts;  /* retries spent on 5xx / transport / bad JSON */
  unsigned throttles; /* retries spent on throttling */
  bool renewed;       /* the one token renewal after a 401 is spent */
  bool cancelled;
  bool token_only;    /* only waits for a token (authenticate) */
  uint64_t token_gen; /* token the last send used */
  rn_req_t *req;      /* http request or backoff timer in flight */
  uint64_t requests;  /* HTTP requests sent for this call */
  rk__call_cb cb;
  void *data;
  rk__call_t *next_waiter;
  char message[RK_ERR_LEN];
};

struct rk_client_s {
  const rn_host_t *host;
  rn_ctx_t *ctx;
  char *provider;
  char *where;
  char *base_url;
  char *token_url;
  char *token_label;
  char *host_name;  /* of the base URL, for messages */
  char *token_host; /* of the token URL, for messages */
  char *ca_file;
  char *client_id;
  char *secret;
  size_t secret_len;
  char *scope;
  char *refusal_hint;
  char rate_key[160];
  rk_client_opts_t opts; /* defaults applied; string fields unused */
  /* token */
  char *token;
  int64_t token_expires_ms;
  int64_t token_ttl_ms;
  uint64_t token_gen;
  char *granted_scope;
  bool scope_warned;
  bool token_fetching;
  bool freeing; /* freed by the token callback still due */
  unsigned token_attempts, token_throttles;
  rn_req_t *token_req; /* token request, or a retry / poll timer */
  rk__call_t *waiters, *last_waiter;
  /* Token sharing: the key of the process's token cache (a hash of token
   * URL, scope, client id and secret), the host cache's fetch claim, and
   * the clients of this image fetching one (each followed by the clients
   * of the same key that wait for its answer). */
  char cache_key[96];
  bool holds_claim;
  bool polling; /* token_req is a timer to ask the host cache again */
  rk_client_t *next_fetching;
  rk_client_t *leader;
  rk_client_t *followers, *next_follower;
  rk_stats_t stats;
};

void rk__call_init(rk__call_t *call, rk_client_t *client, rk__call_cb cb,
                   void *data);
/* Takes url (new, absolute). Starts or restarts the call with fresh retry
 * budgets; the outcome always comes through the callback. */
void rk__call_start(rk__call_t *call, char *url);
/* The body of a success did not decode: retry within the budget, or call
 * back with the error. */
void rk__call_retry(rk__call_t *call, int status, const char *message);
void rk__call_cancel(rk__call_t *call);
void rk__call_clear(rk__call_t *call);

/* "GET /v2/organizations at region eu (eu.ninjarmm.com)" into buf. */
void rk__describe(const rk_client_t *c, const rk__call_t *call, char *buf,
                  size_t len);

#endif
