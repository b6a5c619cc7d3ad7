/*
 * walk.c - the three pagination models, streamed page by page.
 *
 *   after-id   /v2/organizations, /v2/devices-detailed: pageSize + after=<last
 *              id of the previous page>; a bare array in ascending id
 *   cursor     /v2/queries/...: pageSize, then cursor=<cursor.name> (the name
 *              stays the same while offset advances)
 *   olderThan  /v2/activities: newest first, olderThan=<smallest id seen>
 *
 * One request at a time per walk (the next page depends on this one); many
 * walks run side by side on the loop. Each page is decoded on the thread
 * pool, handed to the callback, and freed before the next is asked for, so
 * memory stays one page deep. A short page ends the walk. With a row cap,
 * the last request asks for at most one row more than the cap leaves, which
 * tells "exactly at the cap" from "more beyond it".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nj_internal.h"

typedef enum paging_e { PAGING_AFTER_ID, PAGING_CURSOR, PAGING_OLDER } paging_t;

static const struct {
  const char *path;
  paging_t paging;
  const char *fixed_query;
} endpoints[NJ_EP_COUNT] = {
    [NJ_EP_ORGANIZATIONS] = {"/v2/organizations", PAGING_AFTER_ID, NULL},
    [NJ_EP_DEVICES_DETAILED] = {"/v2/devices-detailed", PAGING_AFTER_ID, NULL},
    [NJ_EP_VOLUMES] = {"/v2/queries/volumes", PAGING_CURSOR, "include=bl"},
    [NJ_EP_AV_STATUS] = {"/v2/queries/antivirus-status", PAGING_CURSOR, NULL},
    [NJ_EP_OS_PATCHES] = {"/v2/queries/os-patches", PAGING_CURSOR, NULL},
    [NJ_EP_SOFTWARE_PATCHES] = {"/v2/queries/software-patches", PAGING_CURSOR,
                                NULL},
    [NJ_EP_ACTIVITIES] = {"/v2/activities", PAGING_OLDER, NULL},
};

#define DEFAULT_PAGE 1000u
#define ACTIVITIES_MIN_PAGE 10u
#define ACTIVITIES_MAX_PAGE 1000u

const char *nj_endpoint_path(nj_endpoint_t ep) {
  return (unsigned)ep < NJ_EP_COUNT ? endpoints[ep].path : "?";
}

typedef struct page_job_s page_job_t;

struct nj_walk_s {
  nj_client_t *client;
  nj_endpoint_t ep;
  char *df;    /* encoded */
  char *query; /* as given */
  uint32_t page_size;
  uint64_t cap; /* 0 = none */
  bool pages_on_worker;
  nj_page_cb on_page;
  nj_walk_cb done;
  void *data;
  nj_call_t call;
  bool started;
  int64_t after, older;
  char *cursor;
  uint32_t requested;
  unsigned pages;
  uint64_t rows;
  rn_req_t *work;
  rn_req_t *kick; /* the first request goes out from the loop */
  bool cancelled;
  /* A page slot: held from sending a request until its page is delivered
   * and freed, so pages in flight and held stay under the caps. */
  bool has_slot;
  bool waiting_slot; /* parked: kick is a long timer the grant cancels */
  bool slot_granted;
  nj_walk_t *next_slot_waiter;
};

struct page_job_s {
  nj_walk_t *walk;
  char *body;
  size_t len;
  nj_decoded_t dec;
  int status;
  bool parse_error;
  size_t deliver; /* rows handed to the callback (after the cap) */
  bool cap_hit;
  int cb_rc;
  char msg[NJ_ERR_LEN];
};

/* ------------------------------------------------------- page slots */

/* Pages in flight or held (request sent, answer buffered, decoding or being
 * delivered) in this plugin image, and per credential + region. Memory is
 * bounded by these caps, not by the number of walks running. */
static unsigned slots_in_use;
static struct tenant_slots_s {
  char key[80];
  unsigned in_use;
} tenants[NJ_MAX_TENANTS];
static nj_walk_t *slot_waiters, *last_slot_waiter;
/* The host cancelled a request nobody asked to cancel: it is shutting the
 * plugin down. Waiters then end as cancelled instead of starting requests,
 * until every slot is back. */
static bool draining;

static struct tenant_slots_s *tenant_of(const nj_walk_t *w, bool create) {
  struct tenant_slots_s *free_slot = NULL;
  for (size_t i = 0; i < NJ_MAX_TENANTS; i++) {
    if (tenants[i].in_use && strcmp(tenants[i].key, w->client->rate_key) == 0)
      return &tenants[i];
    if (!tenants[i].in_use && !free_slot)
      free_slot = &tenants[i];
  }
  if (create && free_slot)
    snprintf(free_slot->key, sizeof free_slot->key, "%s", w->client->rate_key);
  return create ? free_slot : NULL;
}

static bool slot_take(nj_walk_t *w) {
  if (slots_in_use >= NJ_MAX_PAGES_IN_FLIGHT)
    return false;
  struct tenant_slots_s *t = tenant_of(w, true);
  if (!t || t->in_use >= w->client->opts.max_pages_in_flight)
    return false;
  t->in_use++;
  slots_in_use++;
  w->has_slot = true;
  return true;
}

static void send_page(nj_walk_t *w);

/* Gives the slot back and hands it to the first waiter that fits. While
 * the host shuts down a waiter's request is refused at once, so the
 * waiters drain as cancelled. */
static void slot_release(nj_walk_t *w) {
  if (!w->has_slot)
    return;
  w->has_slot = false;
  slots_in_use--;
  struct tenant_slots_s *t = tenant_of(w, false);
  if (t)
    t->in_use--;
  if (draining && !slots_in_use && !slot_waiters)
    draining = false;
  /* The first waiter that now fits goes next (FIFO across walks). */
  nj_walk_t **pp = &slot_waiters, *prev = NULL;
  while (*pp) {
    nj_walk_t *x = *pp;
    if (slot_take(x)) {
      *pp = x->next_slot_waiter;
      if (last_slot_waiter == x)
        last_slot_waiter = prev;
      x->next_slot_waiter = NULL;
      x->waiting_slot = false;
      /* It sends from its park timer's callback, on the loop. */
      x->slot_granted = true;
      x->client->host->cancel(x->kick);
      return;
    }
    if (slots_in_use >= NJ_MAX_PAGES_IN_FLIGHT)
      return;
    prev = x;
    pp = &x->next_slot_waiter;
  }
}

static void slot_wait(nj_walk_t *w) {
  w->waiting_slot = true;
  w->next_slot_waiter = NULL;
  if (last_slot_waiter)
    last_slot_waiter->next_slot_waiter = w;
  else
    slot_waiters = w;
  last_slot_waiter = w;
}

static void slot_unwait(nj_walk_t *w) {
  nj_walk_t **pp = &slot_waiters, *prev = NULL;
  while (*pp && *pp != w) {
    prev = *pp;
    pp = &(*pp)->next_slot_waiter;
  }
  if (*pp) {
    *pp = w->next_slot_waiter;
    if (last_slot_waiter == w)
      last_slot_waiter = prev;
  }
  w->next_slot_waiter = NULL;
  w->waiting_slot = false;
}

unsigned nj__pages_in_flight(const char *rate_key) {
  if (!rate_key)
    return slots_in_use;
  for (size_t i = 0; i < NJ_MAX_TENANTS; i++)
    if (tenants[i].in_use && strcmp(tenants[i].key, rate_key) == 0)
      return tenants[i].in_use;
  return 0;
}

static void job_free(page_job_t *job) {
  nj__decoded_free(&job->dec);
  free(job->body);
  free(job);
}

static void finish(nj_walk_t *w, int status, const char *message,
                   bool cap_hit) {
  nj_walk_result_t res = {
      .status = status,
      .message = status ? message : NULL,
      .pages = w->pages,
      .rows = w->rows,
      .requests = w->call.requests,
      .truncated = status != 0 || cap_hit,
      .cap_hit = cap_hit,
  };
  if (status && status != RN_ECANCELED)
    w->client->host->log(w->client->ctx, RN_LOG_DEBUG,
                         "walk of %s stopped after %u pages: %s",
                         endpoints[w->ep].path, w->pages, message);
  nj__call_clear(&w->call);
  if (status == RN_ECANCELED && !w->cancelled && w->has_slot)
    draining = true;
  slot_release(w);
  w->done(w, &res, w->data);
  free(w->df);
  free(w->query);
  free(w->cursor);
  free(w);
}

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    RN_PRINTF(4, 5);
static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0)
      return RN_EINVAL;
    if ((size_t)n < *cap - *len) {
      *len += (size_t)n;
      return 0;
    }
    size_t ncap = (*cap + (size_t)n) * 2;
    char *b = realloc(*buf, ncap);
    if (!b)
      return RN_ENOMEM;
    *buf = b;
    *cap = ncap;
  }
}

static char *encode(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(nj__encode(NULL, s, n) + 1);
  if (out)
    out[nj__encode(out, s, n)] = '\0';
  return out;
}

static void on_page_answer(nj_call_t *call, int status, const char *message,
                           char *body, size_t len, void *data);

static int build_and_start(nj_walk_t *w);

static void send_page(nj_walk_t *w) {
  int rc = build_and_start(w);
  if (rc < 0)
    finish(w, rc, "cannot build the request", false);
}

#define PARK_MS (3600u * 1000u)

static int park(nj_walk_t *w);

/* A parked walk holds this timer, so the host's unload (or the walk's
 * cancel) reaches it; a free slot cancels it on purpose. */
static void on_park(rn_ctx_t *ctx, int status, void *data) {
  nj_walk_t *w = data;
  (void)ctx;
  w->kick = NULL;
  if (w->slot_granted && !w->cancelled && !draining && status == RN_ECANCELED) {
    w->slot_granted = false;
    send_page(w);
    return;
  }
  if (status == 0 && w->waiting_slot && !w->cancelled) {
    int rc = park(w); /* an hour without a slot: wait on */
    if (rc == 0)
      return;
  }
  if (w->waiting_slot)
    slot_unwait(w);
  w->slot_granted = false;
  finish(w, RN_ECANCELED, "cancelled", false); /* gives back a granted slot */
}

static int park(nj_walk_t *w) {
  return w->client->host->timer_start(w->client->ctx, PARK_MS, on_park, w,
                                      &w->kick);
}

/* The next request goes out once a page slot is free; the slot of the page
 * just delivered is given back first, so walks take turns. */
static int request_page(nj_walk_t *w) {
  slot_release(w);
  if (draining)
    return RN_ECANCELED;
  if (slot_take(w))
    return build_and_start(w);
  int rc = park(w);
  if (rc == 0)
    slot_wait(w);
  return rc;
}

static int build_and_start(nj_walk_t *w) {
  uint32_t size = w->page_size;
  if (w->cap) {
    uint64_t left = w->cap - w->rows;
    if (left + 1 < size)
      size = (uint32_t)(left + 1);
  }
  if (w->ep == NJ_EP_ACTIVITIES && size < ACTIVITIES_MIN_PAGE)
    size = ACTIVITIES_MIN_PAGE;
  w->requested = size;
  size_t len = 0, cap = 256;
  char *path = malloc(cap);
  if (!path)
    return RN_ENOMEM;
  path[0] = '\0';
  int rc = append(&path, &len, &cap, "%s?pageSize=%u", endpoints[w->ep].path,
                  size);
  if (!rc && w->df)
    rc = append(&path, &len, &cap, "&df=%s", w->df);
  if (!rc && endpoints[w->ep].fixed_query)
    rc = append(&path, &len, &cap, "&%s", endpoints[w->ep].fixed_query);
  if (!rc && w->query && *w->query)
    rc = append(&path, &len, &cap, "&%s", w->query);
  if (!rc && w->started) {
    switch (endpoints[w->ep].paging) {
    case PAGING_AFTER_ID:
      rc = append(&path, &len, &cap, "&after=%lld", (long long)w->after);
      break;
    case PAGING_CURSOR:
      rc = append(&path, &len, &cap, "&cursor=%s", w->cursor);
      break;
    case PAGING_OLDER:
      rc = append(&path, &len, &cap, "&olderThan=%lld", (long long)w->older);
      break;
    }
  }
  if (rc) {
    free(path);
    return rc;
  }
  return nj__call_start(&w->call, path);
}

static void decode_work(void *data) {
  page_job_t *job = data;
  nj_walk_t *w = job->walk; /* read only here: the loop waits for us */
  job->status = nj__decode_page(w->ep, job->body, job->len, &job->dec,
                                &job->parse_error, job->msg, sizeof job->msg);
  free(job->body); /* the rows point into the parsed tree, not the text */
  job->body = NULL;
  if (job->status < 0)
    return;
  job->deliver = job->dec.count;
  if (w->cap && w->rows + job->deliver > w->cap) {
    job->deliver = (size_t)(w->cap - w->rows);
    job->cap_hit = true;
  }
  if (w->pages_on_worker && job->deliver) {
    nj_page_t page;
    nj__decoded_page(&job->dec, job->deliver, w->pages + 1, &page);
    job->cb_rc = w->on_page(&page, w->data);
  }
}

static void next_or_finish(nj_walk_t *w, page_job_t *job) {
  const nj_decoded_t *d = &job->dec;
  char msg[NJ_ERR_LEN];
  w->pages++;
  w->rows += job->deliver;
  int rc = job->cb_rc;
  if (!w->pages_on_worker && job->deliver) {
    nj_page_t page;
    nj__decoded_page(d, job->deliver, w->pages, &page);
    rc = w->on_page(&page, w->data);
  }
  if (rc < 0) {
    job_free(job);
    finish(w, rc, "stopped by the page callback", false);
    return;
  }
  if (job->cap_hit) {
    w->client->host->log(w->client->ctx, RN_LOG_NOTICE,
                         "%s: stopped at the cap of %llu rows; the rest is "
                         "not read (truncated)",
                         endpoints[w->ep].path, (unsigned long long)w->cap);
    job_free(job);
    finish(w, 0, NULL, true);
    return;
  }
  if (d->count == 0 || d->count < w->requested) {
    job_free(job); /* a short page is the last */
    finish(w, 0, NULL, false);
    return;
  }
  const char *stuck = NULL;
  switch (endpoints[w->ep].paging) {
  case PAGING_AFTER_ID:
    if (w->started && d->last_id <= w->after)
      stuck = "ids did not ascend";
    w->after = d->last_id;
    break;
  case PAGING_OLDER:
    if (w->started && d->min_id >= w->older)
      stuck = "ids did not descend";
    w->older = d->min_id;
    break;
  case PAGING_CURSOR:
    if (!d->cursor_name || !*d->cursor_name) {
      stuck = "a full page came without a cursor";
      break;
    }
    free(w->cursor);
    w->cursor = encode(d->cursor_name);
    if (!w->cursor)
      stuck = "out of memory";
    break;
  }
  job_free(job);
  if (stuck) {
    snprintf(msg, sizeof msg, "%s: cannot page on: %s",
             endpoints[w->ep].path, stuck);
    finish(w, RN_EJSON, msg, false);
    return;
  }
  w->started = true;
  int src = request_page(w);
  if (src < 0)
    finish(w, src, "cannot build the next request", false);
}

static void decode_done(rn_ctx_t *ctx, int status, void *data) {
  page_job_t *job = data;
  nj_walk_t *w = job->walk;
  (void)ctx;
  w->work = NULL;
  if (status == RN_ECANCELED || w->cancelled) {
    job_free(job);
    finish(w, RN_ECANCELED, "cancelled", false);
    return;
  }
  if (job->status < 0) {
    char msg[NJ_ERR_LEN];
    snprintf(msg, sizeof msg, "%s", job->msg);
    bool retry = job->parse_error;
    int st = job->status;
    job_free(job);
    if (retry)
      nj__call_retry(&w->call, st, msg); /* calls on_page_answer again */
    else
      finish(w, st, msg, false);
    return;
  }
  next_or_finish(w, job);
}

static void on_page_answer(nj_call_t *call, int status, const char *message,
                           char *body, size_t len, void *data) {
  nj_walk_t *w = data;
  (void)call;
  if (status < 0) {
    finish(w, status, message, false);
    return;
  }
  if (w->cancelled) {
    free(body);
    finish(w, RN_ECANCELED, "cancelled", false);
    return;
  }
  page_job_t *job = calloc(1, sizeof *job);
  if (!job) {
    free(body);
    finish(w, RN_ENOMEM, "out of memory", false);
    return;
  }
  job->walk = w;
  job->body = body;
  job->len = len;
  const rn_host_t *host = w->client->host;
  int rc = host->work_queue(w->client->ctx, decode_work, decode_done, job,
                            &w->work);
  if (rc < 0) {
    job_free(job);
    finish(w, rc, "cannot queue the page for decoding", false);
  }
}

static void on_kick(rn_ctx_t *ctx, int status, void *data) {
  nj_walk_t *w = data;
  (void)ctx;
  w->kick = NULL;
  if (status == RN_ECANCELED || w->cancelled) {
    finish(w, RN_ECANCELED, "cancelled", false);
    return;
  }
  int rc = request_page(w);
  if (rc < 0)
    finish(w, rc, "cannot build the first request", false);
}

int nj_walk_start(nj_client_t *client, const nj_walk_opts_t *opts,
                  nj_page_cb on_page, nj_walk_cb done, void *data,
                  nj_walk_t **out) {
  if (!client || !opts || !on_page || !done ||
      (unsigned)opts->endpoint >= NJ_EP_COUNT)
    return RN_EINVAL;
  nj_walk_t *w = calloc(1, sizeof *w);
  if (!w)
    return RN_ENOMEM;
  w->client = client;
  w->ep = opts->endpoint;
  w->on_page = on_page;
  w->done = done;
  w->data = data;
  w->pages_on_worker = opts->pages_on_worker;
  w->page_size = opts->page_size ? opts->page_size : DEFAULT_PAGE;
  if (w->ep == NJ_EP_ACTIVITIES && w->page_size > ACTIVITIES_MAX_PAGE)
    w->page_size = ACTIVITIES_MAX_PAGE;
  w->cap = opts->max_rows;
  if (!w->cap && w->ep == NJ_EP_ORGANIZATIONS)
    w->cap = client->opts.max_orgs;
  if (!w->cap && w->ep == NJ_EP_DEVICES_DETAILED)
    w->cap = client->opts.max_devices_per_org;
  if ((opts->df && *opts->df && !(w->df = encode(opts->df))) ||
      (opts->query && *opts->query && !(w->query = strdup(opts->query)))) {
    free(w->df);
    free(w);
    return RN_ENOMEM;
  }
  nj__call_init(&w->call, client, on_page_answer, w);
  w->call.ep = w->ep;
  int rc = client->host->timer_start(client->ctx, 0, on_kick, w, &w->kick);
  if (rc < 0) {
    nj__call_clear(&w->call);
    free(w->df);
    free(w->query);
    free(w);
    return rc;
  }
  if (out)
    *out = w;
  return 0;
}

void nj_walk_cancel(nj_walk_t *w) {
  if (!w || w->cancelled)
    return;
  w->cancelled = true;
  if (w->kick)
    w->client->host->cancel(w->kick);
  else if (w->work)
    w->client->host->cancel(w->work); /* or it runs out; done sees it */
  else
    nj__call_cancel(&w->call);
}
