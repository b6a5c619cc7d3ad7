/*
 * nj_internal.h - what the client's files share: the client, one logical
 * API call (token, send, retries, error mapping), and page decoding.
 */
#ifndef NJ_INTERNAL_H
#define NJ_INTERNAL_H

#include <jansson.h>

#include "ninjaone/client.h"

#define NJ_ERR_LEN 512
/* Pages in flight or held at once in one plugin image (all credentials),
 * and the most credentials tracked for their own cap. */
#define NJ_MAX_PAGES_IN_FLIGHT 8u
#define NJ_MAX_TENANTS 64

typedef struct nj_call_s nj_call_t;

/* Result of one logical GET: status 0 with the body (new: the callee owns
 * it; free()), or an error with a sentence. */
typedef void (*nj__call_cb)(nj_call_t *call, int status, const char *message,
                            char *body, size_t len, void *data);

typedef enum call_state_e {
  CALL_IDLE = 0,
  CALL_WAIT_TOKEN,
  CALL_HTTP,
  CALL_BACKOFF,
} call_state_t;

struct nj_call_s {
  nj_client_t *client;
  nj_endpoint_t ep; /* for the figures by endpoint */
  char *path;     /* "/v2/organizations?pageSize=5&after=3" */
  call_state_t state;
  unsigned attempts;   /* retries spent on 5xx / transport / bad JSON */
  unsigned throttles;  /* retries spent on throttling */
  bool renewed;        /* the one token renewal after a 401 is spent */
  bool cancelled;
  bool token_only;     /* only waits for a token (authenticate) */
  uint64_t token_gen;  /* token the last send used */
  rn_req_t *req;       /* http request or backoff timer in flight */
  uint64_t requests;   /* HTTP requests sent for this call */
  nj__call_cb cb;
  void *data;
  nj_call_t *next_waiter;
  char message[NJ_ERR_LEN];
};

struct nj_client_s {
  const rn_host_t *host;
  rn_ctx_t *ctx;
  nj_region_t region;
  char *base_url;
  char *host_name; /* for messages */
  char *ca_file;
  char *client_id;
  char *secret;
  size_t secret_len;
  char rate_key[80];
  nj_client_opts_t opts; /* defaults applied; string fields unused */
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
  nj_call_t *waiters, *last_waiter;
  /* Token sharing: the key of the process's token cache (a hash of base
   * URL, client id and secret), the host cache's fetch claim, and the
   * clients of this image fetching one (each followed by the clients of
   * the same key that wait for its answer). */
  char cache_key[80];
  bool holds_claim;
  bool polling; /* token_req is a timer to ask the host cache again */
  nj_client_t *next_fetching;
  nj_client_t *leader;
  nj_client_t *followers, *next_follower;
  nj_client_stats_t stats;
};

/* Calls: start (or restart after a retry decision) and cancel. */
void nj__call_init(nj_call_t *call, nj_client_t *client, nj__call_cb cb,
                   void *data);
/* Takes path (new). 0, or a negative error (no callback). */
int nj__call_start(nj_call_t *call, char *path);
/* The body of a success did not parse: retry within the budget, or call
 * back with the error. */
void nj__call_retry(nj_call_t *call, int status, const char *message);
void nj__call_cancel(nj_call_t *call);
void nj__call_clear(nj_call_t *call);

/* Pages in flight or held now: of this rate key, or of the image (NULL). */
unsigned nj__pages_in_flight(const char *rate_key);

/* Percent-encodes n bytes of s into out (RFC 3986 unreserved kept, space
 * as %20); returns the length written. out NULL: only measures. */
size_t nj__encode(char *out, const char *s, size_t n);

/* "GET /v2/organizations at eu (eu.ninjarmm.com)" into buf. */
void nj__describe(const nj_client_t *c, const char *path, char *buf,
                  size_t len);

/* ------------------------------------------------------------ decode */

typedef struct nj_decoded_s {
  nj_endpoint_t endpoint;
  json_t *root;    /* keeps the strings alive */
  void *rows;      /* array of the endpoint's row type */
  size_t count;
  void **blocks;   /* extra allocations (string arrays, disks) */
  size_t nblocks, capblocks;
  /* paging */
  int64_t last_id;     /* after-id lists: id of the last row */
  int64_t min_id;      /* activities: smallest id */
  char *cursor_name;   /* query reports (new) */
} nj_decoded_t;

/* Parses and decodes one page (any thread). Returns 0; RN_EJSON with
 * *parse_error set when the body is not JSON (worth a retry); RN_EJSON
 * when a field has the wrong type (not worth one). msg names endpoint,
 * row and field. */
int nj__decode_page(nj_endpoint_t ep, const char *body, size_t len,
                    nj_decoded_t *out, bool *parse_error, char *msg,
                    size_t msglen);
void nj__decoded_free(nj_decoded_t *d);
/* Fills a page view of the first `count` rows. */
void nj__decoded_page(const nj_decoded_t *d, size_t count, unsigned page_no,
                      nj_page_t *page);

#endif
