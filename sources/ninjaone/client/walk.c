/*
 * walk.c - NinjaOne's endpoints and their paging, on the kit's walkers:
 *
 *   after-id   /v2/organizations, /v2/devices-detailed: pageSize + after=<last
 *              id of the previous page>; a bare array in ascending id
 *   cursor     /v2/queries/...: pageSize, then cursor=<cursor.name> (the name
 *              stays the same while offset advances)
 *   olderThan  /v2/activities: newest first, olderThan=<smallest id seen>
 *              (the kit's before-id paging)
 *
 * Pages are decoded on the thread pool by decode.c into nj_* rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nj_internal.h"

#define ACTIVITIES_MIN_PAGE 10u
#define ACTIVITIES_MAX_PAGE 1000u

const char *const nj__endpoint_paths[NJ_EP_COUNT] = {
    [NJ_EP_ORGANIZATIONS] = "/v2/organizations",
    [NJ_EP_DEVICES_DETAILED] = "/v2/devices-detailed",
    [NJ_EP_VOLUMES] = "/v2/queries/volumes",
    [NJ_EP_AV_STATUS] = "/v2/queries/antivirus-status",
    [NJ_EP_OS_PATCHES] = "/v2/queries/os-patches",
    [NJ_EP_SOFTWARE_PATCHES] = "/v2/queries/software-patches",
    [NJ_EP_ACTIVITIES] = "/v2/activities",
};

typedef struct endpoint_s {
  nj_endpoint_t ep;
  int paging; /* enum rk_paging */
  const char *id_param;
  const char *fixed_query;
} endpoint_t;

static const endpoint_t endpoints[NJ_EP_COUNT] = {
    [NJ_EP_ORGANIZATIONS] = {NJ_EP_ORGANIZATIONS, RK_PAGING_AFTER_ID, "after",
                             NULL},
    [NJ_EP_DEVICES_DETAILED] = {NJ_EP_DEVICES_DETAILED, RK_PAGING_AFTER_ID,
                                "after", NULL},
    [NJ_EP_VOLUMES] = {NJ_EP_VOLUMES, RK_PAGING_CURSOR, "cursor", "include=bl"},
    [NJ_EP_AV_STATUS] = {NJ_EP_AV_STATUS, RK_PAGING_CURSOR, "cursor", NULL},
    [NJ_EP_OS_PATCHES] = {NJ_EP_OS_PATCHES, RK_PAGING_CURSOR, "cursor", NULL},
    [NJ_EP_SOFTWARE_PATCHES] = {NJ_EP_SOFTWARE_PATCHES, RK_PAGING_CURSOR,
                                "cursor", NULL},
    [NJ_EP_ACTIVITIES] = {NJ_EP_ACTIVITIES, RK_PAGING_BEFORE_ID, "olderThan",
                          NULL},
};

#define DEFAULT_PAGE 1000u

const char *nj_endpoint_path(nj_endpoint_t ep) {
  return (unsigned)ep < NJ_EP_COUNT ? nj__endpoint_paths[ep] : "?";
}

struct nj_walk_s {
  rk_walk_t *kit;
  nj_endpoint_t ep;
  nj_page_cb on_page;
  nj_walk_cb done;
  void *data;
};

/* ------------------------------------------------------- kit hooks */

/* On a worker thread: one page into nj_* rows. */
static int decode(const char *body, size_t len, rk_decoded_t *out, char *msg,
                  size_t msglen, void *data) {
  const endpoint_t *e = data;
  nj_decoded_t *d = calloc(1, sizeof *d);
  if (!d) {
    snprintf(msg, msglen, "out of memory");
    return RN_ENOMEM;
  }
  out->page = d;
  int rc = nj__decode_page(e->ep, body, len, d, &out->parse_error, msg, msglen);
  if (rc < 0)
    return rc;
  out->count = d->count;
  out->next_id = e->paging == RK_PAGING_BEFORE_ID ? d->min_id : d->last_id;
  out->cursor = d->cursor_name; /* the kit frees it */
  d->cursor_name = NULL;
  return 0;
}

static void free_page(void *page, void *data) {
  (void)data;
  nj__decoded_free(page);
  free(page);
}

static int on_kit_page(const rk_page_t *page, void *data) {
  nj_walk_t *w = data; /* read only: may run on a worker */
  nj_page_t p;
  nj__decoded_page(page->page, page->count, page->number, &p);
  return w->on_page(&p, w->data);
}

static void on_kit_done(rk_walk_t *kit, const rk_walk_result_t *res,
                        void *data) {
  nj_walk_t *w = data;
  (void)kit;
  nj_walk_result_t r = {
      .status = res->status,
      .message = res->message,
      .pages = res->pages,
      .rows = res->rows,
      .requests = res->requests,
      .truncated = res->truncated,
      .cap_hit = res->cap_hit,
  };
  w->done(w, &r, w->data);
  free(w);
}

/* "df=<encoded>&<fixed>&<query>" (new), or NULL with *rc. */
static char *walk_query(const nj_walk_opts_t *opts, int *rc) {
  const char *fixed = endpoints[opts->endpoint].fixed_query;
  size_t dn = opts->df ? strlen(opts->df) : 0;
  size_t n = 8 + (dn ? rk_url_encode(NULL, opts->df, dn) : 0) +
             (fixed ? strlen(fixed) : 0) +
             (opts->query ? strlen(opts->query) : 0);
  char *q = malloc(n);
  *rc = q ? 0 : RN_ENOMEM;
  if (!q)
    return NULL;
  size_t o = 0;
  if (dn) {
    memcpy(q, "df=", 3);
    o = 3 + rk_url_encode(q + 3, opts->df, dn);
  }
  if (fixed)
    o += (size_t)snprintf(q + o, n - o, "%s%s", o ? "&" : "", fixed);
  if (opts->query && *opts->query)
    o += (size_t)snprintf(q + o, n - o, "%s%s", o ? "&" : "", opts->query);
  q[o] = '\0';
  return q;
}

int nj_walk_start(nj_client_t *client, const nj_walk_opts_t *opts,
                  nj_page_cb on_page, nj_walk_cb done, void *data,
                  nj_walk_t **out) {
  if (!client || !opts || !on_page || !done ||
      (unsigned)opts->endpoint >= NJ_EP_COUNT)
    return RN_EINVAL;
  const endpoint_t *e = &endpoints[opts->endpoint];
  nj_walk_t *w = calloc(1, sizeof *w);
  int rc = 0;
  char *query = w ? walk_query(opts, &rc) : NULL;
  if (!w || !query) {
    free(w);
    return RN_ENOMEM;
  }
  w->ep = opts->endpoint;
  w->on_page = on_page;
  w->done = done;
  w->data = data;
  rk_walk_opts_t ko = RK_WALK_OPTS_INIT;
  ko.paging = e->paging;
  ko.path = nj__endpoint_paths[e->ep];
  ko.query = query;
  ko.page_param = "pageSize";
  ko.id_param = e->id_param;
  ko.page_size = opts->page_size ? opts->page_size : DEFAULT_PAGE;
  if (e->ep == NJ_EP_ACTIVITIES) {
    if (ko.page_size > ACTIVITIES_MAX_PAGE)
      ko.page_size = ACTIVITIES_MAX_PAGE;
    ko.min_page_size = ACTIVITIES_MIN_PAGE;
  }
  ko.max_rows = opts->max_rows;
  if (!ko.max_rows && e->ep == NJ_EP_ORGANIZATIONS)
    ko.max_rows = client->opts.max_orgs;
  if (!ko.max_rows && e->ep == NJ_EP_DEVICES_DETAILED)
    ko.max_rows = client->opts.max_devices_per_org;
  ko.pages_on_worker = opts->pages_on_worker;
  ko.endpoint = (uint32_t)e->ep;
  ko.decode = decode;
  ko.free_page = free_page;
  ko.decode_data = (void *)e;
  rc = rk_walk_start(client->kit, &ko, on_kit_page, on_kit_done, w, &w->kit);
  free(query); /* copied */
  if (rc < 0) {
    free(w);
    return rc;
  }
  if (out)
    *out = w;
  return 0;
}

void nj_walk_cancel(nj_walk_t *w) {
  if (w)
    rk_walk_cancel(w->kit);
}
