/*
 * regentra/kit/client.h - the API client of the device-source kit.
 *
 * One rk_client_t talks to one API (a base URL) with one OAuth2
 * client-credentials credential:
 *
 *   token     fetched from token_url, one per credential for the whole
 *             process (the host's token cache, ABI 1.2; one fetch at a time,
 *             every waiting request shares it), renewed before it expires,
 *             dropped on a 401 and renewed once;
 *   budget    every request, token requests included, spends the rate key
 *             of the credential (host->rate_configure);
 *   retries   5xx, transport errors and bodies that are not JSON are retried
 *             with exponential backoff and jitter, up to max_retries;
 *   throttle  a 429 (Retry-After honoured), or an answer the provider's
 *             is_throttle_page hook calls a throttle page, pauses the whole
 *             rate key (host->rate_pause) and is retried, up to
 *             max_throttle_retries; then RN_ETHROTTLED;
 *   errors    other answers end the request with a sentence naming the
 *             provider, the request and where (the provider's error_detail
 *             hook turns the body into words); never the secret.
 *
 * Walkers page through a list in one of four styles (after-id, before-id,
 * cursor, next-link), one request at a time per walk, decoding each page on
 * the thread pool with the provider's decode hook. Pages in flight or held
 * are bounded per credential (max_pages_in_flight) and per plugin
 * (RK_MAX_PAGES_IN_FLIGHT), not by the number of walks.
 *
 * Everything runs on the loop thread unless said otherwise. Ownership words
 * as in regentra/plugin.h: new, borrowed, copied. Calls taking a callback
 * return 0 and call it exactly once, or return a negative error and never
 * call it. Versioning: see regentra/kit.h.
 */
#ifndef REGENTRA_KIT_CLIENT_H
#define REGENTRA_KIT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "regentra/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest sentence the kit writes about a failure. */
#define RK_ERR_LEN 512
/* Pages in flight or held at once in one plugin image, all credentials. */
#define RK_MAX_PAGES_IN_FLIGHT 8u
/* Endpoint labels a client counts its requests by. */
#define RK_MAX_ENDPOINTS 32u
/* rk_request_opts_t.endpoint / rk_walk_opts_t.endpoint: not counted by
 * endpoint (still counted in requests). */
#define RK_ENDPOINT_NONE UINT32_MAX

typedef struct rk_client_s rk_client_t;

/* How the client credentials reach the token endpoint. */
enum rk_auth_style {
  RK_AUTH_FORM = 0, /* client_id and client_secret in the form body */
  RK_AUTH_BASIC     /* HTTP Basic: client_id:client_secret */
};

/* ------------------------------------------------------ provider hooks */

/* What differs between providers, beyond URLs. Every hook may be NULL (the
 * default named beside it). data is rk_client_opts_t.provider_data. */
typedef struct rk_hooks_s {
  uint32_t struct_size; /* sizeof(rk_hooks_t) */
  /* An error answer (any status) in a few words, e.g. "HTTP 500 SERVER_ERROR:
   * ... (incidentId 42)"; never copy a body that is not the provider's error
   * format. Default: "HTTP <status>" plus the OAuth2 error / message fields
   * of a JSON body. */
  void (*error_detail)(const rn_http_response_t *resp, char *buf, size_t len,
                       void *data);
  /* True when an answer of status 2xx is in fact a throttle page (an HTML
   * "slow down" page served with 200). Default: never. */
  bool (*is_throttle_page)(const rn_http_response_t *resp, void *data);
  /* ABI 1.0 of the kit: append below this line only. */
} rk_hooks_t;

#define RK_HOOKS_INIT {sizeof(rk_hooks_t), NULL, NULL}

/* -------------------------------------------------------------- client */

typedef struct rk_client_opts_s {
  uint32_t struct_size; /* set by RK_CLIENT_OPTS_INIT */
  /* The provider as a person reads it ("NinjaOne"), for messages. */
  const char *provider;
  /* [a-z0-9_-]+: first part of the rate key and the token cache key. */
  const char *key_name;
  /* Where the credential lives, as a phrase for messages ("region eu",
   * "tenant 3f2a..."); NULL = nothing. Copied. */
  const char *where;
  /* Second part of the rate key ("eu", a tenant id); NULL = none. The key
   * is "<key_name>[/<rate_scope>]/<hash of client_id>". Copied. */
  const char *rate_scope;
  /* API root, e.g. "https://eu.ninjarmm.com" (a trailing slash is
   * dropped); request paths are appended to it and next links must stay
   * on its origin. Copied. */
  const char *base_url;
  /* Absolute URL of the OAuth2 token endpoint. Copied. */
  const char *token_url;
  const char *ca_file;   /* extra trust anchor; copied; NULL = none */
  const char *client_id; /* copied */
  /* Copied; held only while the client lives and wiped when it is freed;
   * never logged. */
  const char *client_secret;
  size_t client_secret_len;
  /* Scope asked for ("monitoring", "https://graph.microsoft.com/.default");
   * NULL = none. A granted scope wider than this is logged once. */
  const char *scope;
  int auth_style; /* enum rk_auth_style */
  /* Said when the token endpoint refuses the credentials (400/401/403/404):
   * default "wrong client id or secret". */
  const char *refusal_hint;
  /* The credential's request budget, shared by every client and job of the
   * process that uses the same rate key; copied. count 0: no budget (pauses
   * still apply). */
  const rn_rate_window_t *rate_windows;
  size_t rate_window_count;
  uint32_t timeout_ms;           /* per request; 0 = 60,000 */
  uint32_t max_retries;          /* 5xx / transport / bad JSON; 0 = 4 */
  uint32_t max_throttle_retries; /* 429 / throttle page; 0 = 8 */
  uint32_t backoff_base_ms;      /* first retry delay; 0 = 1,000 */
  uint32_t backoff_max_ms;       /* 0 = 30,000 */
  /* Pages of this credential in flight or held at once, across every walk
   * and client of the plugin; 0 = 4. */
  uint32_t max_pages_in_flight;
  /* Labels of the endpoints requests are counted by (borrowed for the
   * client's life: usually a static table of paths); at most
   * RK_MAX_ENDPOINTS. */
  const char *const *endpoint_labels;
  size_t endpoint_count;
  const rk_hooks_t *hooks; /* borrowed for the client's life; NULL = none */
  void *provider_data;     /* handed to the hooks */
  /* Kit 1.0: append below this line only. */
} rk_client_opts_t;

#define RK_CLIENT_OPTS_INIT {.struct_size = sizeof(rk_client_opts_t)}

/* Creates a client. On failure returns a negative error and writes a
 * sentence to err (never the secret). Free it after every request and walk
 * it started has called back. */
int rk_client_new(const rn_host_t *host, rn_ctx_t *ctx,
                  const rk_client_opts_t *opts, rk_client_t **out, char *err,
                  size_t errlen);
void rk_client_free(rk_client_t *client);

const char *rk_client_base_url(const rk_client_t *client); /* borrowed */
const char *rk_client_rate_key(const rk_client_t *client); /* borrowed */
/* Key of the credential's token in the host's token cache (borrowed). */
const char *rk_client_token_key(const rk_client_t *client);
/* "host[:port]" of the base URL, for messages (borrowed). */
const char *rk_client_host_name(const rk_client_t *client);
/* Scope granted with the last token (borrowed, NULL before one). */
const char *rk_client_granted_scope(const rk_client_t *client);

/* Makes sure a token is at hand, without an API request: from the
 * process's cache, or from the one token request every client of the
 * credential waiting at that moment shares. cb: once, with 0 or the error
 * and a sentence (borrowed). */
typedef void (*rk_status_cb)(rk_client_t *client, int status,
                             const char *message, void *data);
int rk_client_authenticate(rk_client_t *client, rk_status_cb cb, void *data);

/* --------------------------------------------------------------- figures */

typedef struct rk_stats_s {
  uint32_t struct_size;      /* set by rk_client_get_stats */
  uint64_t requests;         /* API requests sent (retries included) */
  uint64_t token_requests;   /* token endpoint calls */
  uint64_t retries;          /* after 5xx, transport errors, bad JSON */
  uint64_t throttled;        /* 429s and throttle pages seen */
  uint64_t renewals_401;     /* token renewals after a 401 */
  uint64_t token_cache_hits; /* tokens taken from the process's cache */
  uint64_t throttled_429;    /* of throttled: 429 answers */
  uint64_t throttle_pages;   /* of throttled: throttle pages */
  /* API requests by endpoint label (retries included). */
  uint64_t endpoint_requests[RK_MAX_ENDPOINTS];
  /* Kit 1.0: append below this line only. */
} rk_stats_t;

void rk_client_get_stats(const rk_client_t *client, rk_stats_t *out);
/* sum += add, field by field. */
void rk_stats_add(rk_stats_t *sum, const rk_stats_t *add);
/* The figures as a JSON object (new; NULL when out of memory): requests,
 * token_requests, retries, throttled, throttled_429, throttle_pages and
 * by_endpoint {label: requests}, the token endpoint under token_label
 * (NULL = left out); labels with no request are left out. */
json_t *rk_stats_json(const rk_stats_t *stats,
                      const char *const *endpoint_labels,
                      size_t endpoint_count, const char *token_label);
/* Path of the client's token URL ("/ws/oauth/token"), for rk_stats_json. */
const char *rk_client_token_label(const rk_client_t *client);

/* --------------------------------------------------------------- request */

typedef struct rk_request_opts_s {
  uint32_t struct_size; /* set by RK_REQUEST_OPTS_INIT */
  const char *method;   /* "GET" (default) or "POST", ... */
  /* "/v2/organizations?pageSize=5", appended to the base URL, or an
   * absolute URL on the base URL's origin. Copied. */
  const char *path;
  const char *body; /* copied; NULL = none */
  size_t body_len;
  const char *content_type; /* of body; NULL = application/json */
  uint32_t endpoint;        /* label index for figures, or RK_ENDPOINT_NONE */
  /* A 2xx body that is not JSON is retried like a 5xx (true by default). */
  bool expect_json;
  /* Kit 1.0: append below this line only. */
} rk_request_opts_t;

#define RK_REQUEST_OPTS_INIT                                                   \
  {.struct_size = sizeof(rk_request_opts_t), .method = "GET",                  \
   .endpoint = RK_ENDPOINT_NONE, .expect_json = true}

typedef struct rk_response_s {
  int status;       /* 0, or the error that ended the request */
  long http_status; /* of the last answer; 0 when none came */
  const char *body; /* borrowed; the last answer's body (errors too), or
                       NULL; NUL-terminated */
  size_t body_len;
  const char *message; /* borrowed; NULL when status is 0 */
  unsigned requests;   /* HTTP requests it took (retries included) */
} rk_response_t;

typedef struct rk_request_s rk_request_t;
typedef void (*rk_response_cb)(rk_client_t *client,
                               const rk_response_t *response, void *data);

/* One authenticated request with token, budget, retries and throttling.
 * *out (optional) is valid until cb runs. */
int rk_request(rk_client_t *client, const rk_request_opts_t *opts,
               rk_response_cb cb, void *data, rk_request_t **out);
/* cb still runs once, with RN_ECANCELED. */
void rk_request_cancel(rk_request_t *request);

/* ---------------------------------------------------------------- walks */

enum rk_paging {
  /* page_param=N, then id_param=<id of the last row>; ids ascend
   * (NinjaOne after=). A short page is the last. */
  RK_PAGING_AFTER_ID = 0,
  /* Newest first: id_param=<smallest id seen>; ids descend (NinjaOne
   * olderThan=). A short page is the last. */
  RK_PAGING_BEFORE_ID,
  /* id_param=<cursor the page named>, percent-encoded (NinjaOne query
   * reports). A short page is the last; a full one must name a cursor. */
  RK_PAGING_CURSOR,
  /* The page names the absolute URL of the next one (Graph
   * @odata.nextLink), which must stay on the base URL's origin; none
   * means the last page. */
  RK_PAGING_NEXT_LINK
};

/* What the decode hook makes of one page. */
typedef struct rk_decoded_s {
  void *page;   /* the provider's rows, freed by free_page */
  size_t count; /* rows in it */
  int64_t next_id;    /* AFTER_ID: last row's id; BEFORE_ID: smallest id */
  char *cursor;       /* CURSOR: new (malloc), NULL = none */
  char *next_link;    /* NEXT_LINK: new (malloc), NULL = last page */
  bool parse_error;   /* the body is not JSON: worth a retry */
} rk_decoded_t;

/* Runs on a worker thread: decodes body into out, touching nothing
 * shared. Returns 0, or a negative error with a sentence in msg naming the
 * endpoint, row and field (RN_EJSON; with out->parse_error when the body is
 * not JSON at all). out->page is freed with free_page whatever the result. */
typedef int (*rk_decode_fn)(const char *body, size_t len, rk_decoded_t *out,
                            char *msg, size_t msglen, void *data);
typedef void (*rk_free_page_fn)(void *page, void *data);

/* Reading a page a row at a time (kit 1.2), for decode hooks: jansson
 * parses one row, `row` decodes it, and its tree is freed before the next,
 * so a page is never held as one tree (about 8x its text) and a decoder's
 * memory is its own rows. The kit reads only the text around the rows. */
typedef struct rk_rows_reader_s {
  uint32_t struct_size; /* set by RK_ROWS_READER_INIT */
  const char *what;     /* names the page in messages: "/v2/devices" */
  /* NULL: the page is an array of rows. Otherwise it is an object whose
   * member of this name holds them; absent or null means no rows. */
  const char *rows_key;
  /* Each row, in order; rows that are not objects are refused before.
   * The row is freed on return (json_incref what is kept). Nonzero stops
   * the read with that status and its sentence in msg. */
  int (*row)(json_t *row, size_t index, void *data, char *msg,
             size_t msglen);
  /* Each other member of an object page, or NULL to drop them. */
  int (*member)(const char *key, json_t *value, void *data, char *msg,
                size_t msglen);
  void *data;
  /* Kit 1.2: append below this line only. */
} rk_rows_reader_t;

#define RK_ROWS_READER_INIT {.struct_size = sizeof(rk_rows_reader_t)}

/* Reads body with r. Returns 0; RN_EJSON with *not_json set when the text
 * is not JSON (worth a retry) or a key is given twice; RN_EJSON when the
 * page or a row has the wrong shape; or what a callback returned. msg
 * names r->what, and the byte or row. Any thread. */
int rk_read_rows(const char *body, size_t len, const rk_rows_reader_t *r,
                 bool *not_json, char *msg, size_t msglen);

/* "an object", "an array", "a string", "a number", "a boolean", "null":
 * for messages that say what a value is. */
const char *rk_json_type_name(const json_t *v);

typedef struct rk_page_s {
  unsigned number;  /* 1-based */
  size_t count;     /* rows to take: the page's, or fewer at the row cap */
  void *page;       /* rk_decoded_t.page, borrowed for the callback */
} rk_page_t;

typedef struct rk_walk_result_s {
  int status;          /* 0, or the error that ended the walk */
  const char *message; /* borrowed; NULL when status is 0 */
  unsigned pages;      /* pages delivered */
  uint64_t rows;       /* rows delivered */
  uint64_t requests;   /* HTTP requests made for this walk */
  /* The walk did not see every row: a cap was hit, an error or a
   * cancellation stopped it, or the page callback asked to stop. */
  bool truncated;
  bool cap_hit;
} rk_walk_result_t;

typedef struct rk_walk_s rk_walk_t;

/* Once per page, in order. 0 goes on; a negative value stops the walk
 * (truncated, with that status). On the loop thread, or on the worker
 * right after decoding when pages_on_worker is set. */
typedef int (*rk_page_cb)(const rk_page_t *page, void *data);
/* Exactly once at the end; result borrowed. */
typedef void (*rk_walk_cb)(rk_walk_t *walk, const rk_walk_result_t *result,
                           void *data);

typedef struct rk_walk_opts_s {
  uint32_t struct_size; /* set by RK_WALK_OPTS_INIT */
  int paging;           /* enum rk_paging */
  const char *path;     /* "/v2/devices-detailed"; copied */
  /* Extra query, already encoded ("df=x&include=bl"); copied; NULL = none.
   * Comes after the page size, before the paging parameter. */
  const char *query;
  const char *page_param; /* "pageSize", "$top"; NULL = no page size sent */
  const char *id_param;   /* "after", "olderThan", "cursor" */
  uint32_t page_size;     /* 0 = 1,000 */
  uint32_t min_page_size; /* the API's least page size; 0 = 1 */
  /* Row cap; 0 = none. With a page size, the last request asks for one row
   * more than the cap leaves, telling "exactly at the cap" from "more". */
  uint64_t max_rows;
  bool pages_on_worker;
  uint32_t endpoint; /* label index for figures, or RK_ENDPOINT_NONE */
  rk_decode_fn decode;       /* required */
  rk_free_page_fn free_page; /* NULL = nothing to free */
  void *decode_data;         /* for decode and free_page */
  /* Kit 1.0: append below this line only. */
} rk_walk_opts_t;

#define RK_WALK_OPTS_INIT                                                      \
  {.struct_size = sizeof(rk_walk_opts_t), .endpoint = RK_ENDPOINT_NONE}

/* Starts a walk; *out (optional) is valid until done runs. */
int rk_walk_start(rk_client_t *client, const rk_walk_opts_t *opts,
                  rk_page_cb on_page, rk_walk_cb done, void *data,
                  rk_walk_t **out);
/* Stops a walk early: done still runs once, with RN_ECANCELED. */
void rk_walk_cancel(rk_walk_t *walk);

/* Pages in flight or held now in this plugin image: of a rate key, or of
 * every key (NULL). */
unsigned rk_pages_in_flight(const char *rate_key);

/* ------------------------------------------------------------- helpers */

/* Percent-encodes n bytes of s into out (RFC 3986 unreserved kept); returns
 * the length written. out NULL: only measures. */
size_t rk_url_encode(char *out, const char *s, size_t n);
/* True when url is on the origin (scheme, host and port) of base. */
bool rk_same_origin(const char *url, const char *base);

#ifdef __cplusplus
}
#endif
#endif
