/*
 * nj_internal.h - what the client's files share: the client (NinjaOne's
 * settings around a kit client) and page decoding.
 */
#ifndef NJ_INTERNAL_H
#define NJ_INTERNAL_H

#include <jansson.h>

#include "ninjaone/client.h"
#include "regentra/kit/client.h"

#define NJ_ERR_LEN RK_ERR_LEN
/* Pages in flight or held at once in one plugin image (all credentials). */
#define NJ_MAX_PAGES_IN_FLIGHT RK_MAX_PAGES_IN_FLIGHT

struct nj_client_s {
  const rn_host_t *host;
  rk_client_t *kit; /* token, budget, retries, throttling, page slots */
  nj_region_t region;
  nj_client_opts_t opts; /* defaults applied; string fields unused */
  /* The key of the credential's token in the host's token cache. */
  char cache_key[96];
};

/* The endpoints' paths, by nj_endpoint_t: the labels of the figures. */
extern const char *const nj__endpoint_paths[NJ_EP_COUNT];

/* Pages in flight or held now: of this rate key, or of the image (NULL). */
unsigned nj__pages_in_flight(const char *rate_key);

/* ------------------------------------------------------------ decode */

/* A decoded page's strings and arrays, bump-allocated in a few chunks: the
 * parsed tree is freed on the decoding thread, and a page held for delivery
 * is a handful of blocks about the size of its text, not a tree of
 * thousands of nodes at 8x the text freed on the loop's thread. */
typedef struct nj_chunk_s {
  struct nj_chunk_s *next;
  size_t used, cap;
  max_align_t data[];
} nj_chunk_t;

typedef struct nj_decoded_s {
  nj_endpoint_t endpoint;
  void *rows;      /* array of the endpoint's row type */
  size_t count;
  nj_chunk_t *chunks; /* the rows' strings, string arrays and disks */
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
