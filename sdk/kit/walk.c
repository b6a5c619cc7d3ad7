/*
 * walk.c - the walkers: a list streamed page by page in one of four paging
 * styles (after-id, before-id, cursor, next-link; see client.h).
 *
 * One request at a time per walk (the next page depends on this one); many
 * walks run side by side on the loop. Each page is decoded on the thread
 * pool by the provider's hook, handed to the callback, and freed before the
 * next is asked for, so memory stays one page deep per walk, and the page
 * slots bound it across walks: a slot is held from sending a request until
 * its page is delivered and freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kit_internal.h"

#define DEFAULT_PAGE 1000u
#define MAX_TENANTS 64
#define PARK_MS (3600u * 1000u)

typedef struct page_job_s page_job_t;

struct rk_walk_s {
  rk_client_t *client;
  rk_walk_opts_t opts; /* strings below */
  char *path;
  char *query;
  char *page_param;
  char *id_param;
  uint64_t cap; /* 0 = none */
  rk_page_cb on_page;
  rk_walk_cb done;
  void *data;
  rk__call_t call;
  bool started;
  int64_t last_id;
  char *cursor;    /* encoded */
  char *next_link; /* absolute */
  uint32_t requested;
  unsigned pages;
  uint64_t rows;
  rn_req_t *work;
  rn_req_t *kick; /* the first request goes out from the loop */
  bool cancelled;
  bool has_slot;
  bool waiting_slot; /* parked: kick is a long timer the grant cancels */
  bool slot_granted;
  rk_walk_t *next_slot_waiter;
  rn_slot_t *host_slot; /* the host's slot this page holds (ABI 1.6) */
  rn_req_t *slot_req;   /* asking the host for one */
};

struct page_job_s {
  rk_walk_t *walk;
  char *body;
  size_t len;
  rk_decoded_t dec;
  int status;
  size_t deliver; /* rows handed to the callback (after the cap) */
  bool cap_hit;
  int cb_rc;
  char msg[RK_ERR_LEN];
};

/* ------------------------------------------------------- page slots */

/* Pages in flight or held (request sent, answer buffered, decoding or being
 * delivered) in this plugin image, and per rate key. A host with page slots
 * (ABI 1.6) caps them across every image of the process; these counters
 * then only count, and cap only under an older host. */
static unsigned slots_in_use;
static struct tenant_slots_s {
  char key[160];
  unsigned in_use;
} tenants[MAX_TENANTS];
static rk_walk_t *slot_waiters, *last_slot_waiter;
/* The host cancelled a request nobody asked to cancel: it is shutting the
 * plugin down. Waiters then end as cancelled instead of starting requests,
 * until every slot is back. */
static bool draining;

static struct tenant_slots_s *tenant_of(const rk_walk_t *w, bool create) {
  struct tenant_slots_s *free_slot = NULL;
  for (size_t i = 0; i < MAX_TENANTS; i++) {
    if (tenants[i].in_use && strcmp(tenants[i].key, w->client->rate_key) == 0)
      return &tenants[i];
    if (!tenants[i].in_use && !free_slot)
      free_slot = &tenants[i];
  }
  if (create && free_slot)
    snprintf(free_slot->key, sizeof free_slot->key, "%s", w->client->rate_key);
  return create ? free_slot : NULL;
}

static bool host_slots(const rk_walk_t *w) {
  return RN_HOST_HAS(w->client->host, slot_acquire) &&
         RN_HOST_HAS(w->client->host, slot_release);
}

static void count_take(rk_walk_t *w, struct tenant_slots_s *t) {
  if (t)
    t->in_use++;
  slots_in_use++;
  w->has_slot = true;
}

static bool slot_take(rk_walk_t *w) {
  if (slots_in_use >= RK_MAX_PAGES_IN_FLIGHT)
    return false;
  struct tenant_slots_s *t = tenant_of(w, true);
  if (!t || t->in_use >= w->client->opts.max_pages_in_flight)
    return false;
  count_take(w, t);
  return true;
}

/* Gives the slot back and hands it to the first waiter that fits. */
static void slot_release(rk_walk_t *w) {
  if (!w->has_slot)
    return;
  w->has_slot = false;
  slots_in_use--;
  struct tenant_slots_s *t = tenant_of(w, false);
  if (t)
    t->in_use--;
  if (w->host_slot) {
    w->client->host->slot_release(w->host_slot); /* the host hands it on */
    w->host_slot = NULL;
    return;
  }
  if (draining && !slots_in_use && !slot_waiters)
    draining = false;
  /* The first waiter that now fits goes next (FIFO across walks). */
  rk_walk_t **pp = &slot_waiters, *prev = NULL;
  while (*pp) {
    rk_walk_t *x = *pp;
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
    if (slots_in_use >= RK_MAX_PAGES_IN_FLIGHT)
      return;
    prev = x;
    pp = &x->next_slot_waiter;
  }
}

static void slot_wait(rk_walk_t *w) {
  w->waiting_slot = true;
  w->next_slot_waiter = NULL;
  if (last_slot_waiter)
    last_slot_waiter->next_slot_waiter = w;
  else
    slot_waiters = w;
  last_slot_waiter = w;
}

static void slot_unwait(rk_walk_t *w) {
  rk_walk_t **pp = &slot_waiters, *prev = NULL;
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

unsigned rk_pages_in_flight(const char *rate_key) {
  if (!rate_key)
    return slots_in_use;
  for (size_t i = 0; i < MAX_TENANTS; i++)
    if (tenants[i].in_use && strcmp(tenants[i].key, rate_key) == 0)
      return tenants[i].in_use;
  return 0;
}

/* ------------------------------------------------------------- walking */

static void decoded_clear(rk_walk_t *w, rk_decoded_t *d) {
  if (d->page && w->opts.free_page)
    w->opts.free_page(d->page, w->opts.decode_data);
  free(d->cursor);
  free(d->next_link);
  memset(d, 0, sizeof *d);
}

static void job_free(page_job_t *job) {
  decoded_clear(job->walk, &job->dec);
  free(job->body);
  free(job);
}

static void walk_free(rk_walk_t *w) {
  rk__call_clear(&w->call);
  free(w->path);
  free(w->query);
  free(w->page_param);
  free(w->id_param);
  free(w->cursor);
  free(w->next_link);
  free(w);
}

static void finish(rk_walk_t *w, int status, const char *message,
                   bool cap_hit) {
  rk_walk_result_t res = {
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
                         "walk of %s stopped after %u pages: %s", w->path,
                         w->pages, message);
  if (status == RN_ECANCELED && !w->cancelled && w->has_slot && !w->host_slot)
    draining = true;
  slot_release(w);
  w->done(w, &res, w->data);
  walk_free(w);
}

/* The URL of the next request (new). */
static char *next_url(rk_walk_t *w) {
  if (w->opts.paging == RK_PAGING_NEXT_LINK && w->started)
    return strdup(w->next_link);
  uint32_t size = w->opts.page_size;
  if (w->cap && w->opts.paging != RK_PAGING_NEXT_LINK) {
    uint64_t left = w->cap - w->rows; /* left + 1 may overflow */
    if (left < size)
      size = (uint32_t)(left + 1);
  }
  if (size < w->opts.min_page_size)
    size = w->opts.min_page_size;
  w->requested = size;
  const char *base = w->client->base_url;
  size_t n = strlen(base) + strlen(w->path) + 64 +
             (w->page_param ? strlen(w->page_param) : 0) +
             (w->query ? strlen(w->query) : 0) +
             (w->id_param ? strlen(w->id_param) : 0) +
             (w->cursor ? strlen(w->cursor) : 0);
  char *url = malloc(n);
  if (!url)
    return NULL;
  int o = snprintf(url, n, "%s%s", base, w->path);
  char sep = strchr(w->path, '?') ? '&' : '?';
  if (w->page_param) {
    o += snprintf(url + o, n - (size_t)o, "%c%s=%u", sep, w->page_param, size);
    sep = '&';
  }
  if (w->query) {
    o += snprintf(url + o, n - (size_t)o, "%c%s", sep, w->query);
    sep = '&';
  }
  if (w->started && w->id_param) {
    if (w->opts.paging == RK_PAGING_CURSOR)
      snprintf(url + o, n - (size_t)o, "%c%s=%s", sep, w->id_param, w->cursor);
    else
      snprintf(url + o, n - (size_t)o, "%c%s=%lld", sep, w->id_param,
               (long long)w->last_id);
  }
  return url;
}

static int build_and_start(rk_walk_t *w) {
  char *url = next_url(w);
  if (!url)
    return RN_ENOMEM;
  rk__call_start(&w->call, url);
  return 0;
}

static void send_page(rk_walk_t *w) {
  int rc = build_and_start(w);
  if (rc < 0)
    finish(w, rc, "cannot build the request", false);
}

static int park(rk_walk_t *w);

/* A parked walk holds this timer, so the host's unload (or the walk's
 * cancel) reaches it; a free slot cancels it on purpose. */
static void on_park(rn_ctx_t *ctx, int status, void *data) {
  rk_walk_t *w = data;
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

static void on_host_slot(rn_ctx_t *ctx, int status, rn_slot_t *slot,
                         void *data) {
  rk_walk_t *w = data;
  (void)ctx;
  w->slot_req = NULL;
  if (status == 0 && !w->cancelled) {
    w->host_slot = slot;
    count_take(w, tenant_of(w, true));
    send_page(w);
    return;
  }
  if (slot)
    w->client->host->slot_release(slot);
  finish(w, RN_ECANCELED, "cancelled", false);
}

static int park(rk_walk_t *w) {
  return w->client->host->timer_start(w->client->ctx, PARK_MS, on_park, w,
                                      &w->kick);
}

/* The next request goes out once a page slot is free; the slot of the page
 * just delivered is given back first, so walks take turns. */
static int request_page(rk_walk_t *w) {
  slot_release(w);
  if (host_slots(w))
    return w->client->host->slot_acquire(w->client->ctx, w->client->rate_key,
                                         w->client->opts.max_pages_in_flight,
                                         on_host_slot, w, &w->slot_req);
  if (draining)
    return RN_ECANCELED;
  if (slot_take(w))
    return build_and_start(w);
  int rc = park(w);
  if (rc == 0)
    slot_wait(w);
  return rc;
}

static void decode_work(void *data) {
  page_job_t *job = data;
  rk_walk_t *w = job->walk; /* read only here: the loop waits for us */
  job->status = w->opts.decode(job->body, job->len, &job->dec, job->msg,
                               sizeof job->msg, w->opts.decode_data);
  free(job->body); /* the rows point into the decoded page, not the text */
  job->body = NULL;
  if (job->status < 0)
    return;
  job->deliver = job->dec.count;
  if (w->cap && w->rows + job->deliver > w->cap) {
    job->deliver = (size_t)(w->cap - w->rows);
    job->cap_hit = true;
  }
  if (w->opts.pages_on_worker && job->deliver) {
    rk_page_t page = {w->pages + 1, job->deliver, job->dec.page};
    job->cb_rc = w->on_page(&page, w->data);
  }
}

/* Why the walk cannot go on from page d, or NULL; takes the paging state. */
static const char *advance(rk_walk_t *w, rk_decoded_t *d) {
  switch (w->opts.paging) {
  case RK_PAGING_AFTER_ID:
    if (w->started && d->next_id <= w->last_id)
      return "ids did not ascend";
    w->last_id = d->next_id;
    return NULL;
  case RK_PAGING_BEFORE_ID:
    if (w->started && d->next_id >= w->last_id)
      return "ids did not descend";
    w->last_id = d->next_id;
    return NULL;
  case RK_PAGING_CURSOR: {
    if (!d->cursor || !*d->cursor)
      return "a full page came without a cursor";
    size_t n = strlen(d->cursor);
    char *enc = malloc(rk_url_encode(NULL, d->cursor, n) + 1);
    if (!enc)
      return "out of memory";
    enc[rk_url_encode(enc, d->cursor, n)] = '\0';
    free(w->cursor);
    w->cursor = enc;
    return NULL;
  }
  case RK_PAGING_NEXT_LINK:
    /* The token goes to the base URL's origin only. */
    if (!rk_same_origin(d->next_link, w->client->base_url))
      return "the next link leaves the API's origin (refused)";
    if (w->call.url && strcmp(d->next_link, w->call.url) == 0)
      return "the next link is the page itself";
    free(w->next_link);
    w->next_link = d->next_link;
    d->next_link = NULL;
    return NULL;
  }
  return "unknown paging style";
}

static void next_or_finish(rk_walk_t *w, page_job_t *job) {
  rk_decoded_t *d = &job->dec;
  char msg[RK_ERR_LEN];
  w->pages++;
  w->rows += job->deliver;
  int rc = job->cb_rc;
  if (!w->opts.pages_on_worker && job->deliver) {
    rk_page_t page = {w->pages, job->deliver, d->page};
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
                         w->path, (unsigned long long)w->cap);
    job_free(job);
    finish(w, 0, NULL, true);
    return;
  }
  bool last = w->opts.paging == RK_PAGING_NEXT_LINK
                  ? !d->next_link
                  : d->count == 0 || d->count < w->requested;
  if (last) {
    job_free(job);
    finish(w, 0, NULL, false);
    return;
  }
  const char *stuck = advance(w, d);
  job_free(job);
  if (stuck) {
    snprintf(msg, sizeof msg, "%s: cannot page on: %s", w->path, stuck);
    finish(w, w->opts.paging == RK_PAGING_NEXT_LINK ? RN_EUPSTREAM : RN_EJSON,
           msg, false);
    return;
  }
  w->started = true;
  int src = request_page(w);
  if (src < 0)
    finish(w, src, "cannot build the next request", false);
}

static void decode_done(rn_ctx_t *ctx, int status, void *data) {
  page_job_t *job = data;
  rk_walk_t *w = job->walk;
  (void)ctx;
  w->work = NULL;
  if (status == RN_ECANCELED || w->cancelled) {
    job_free(job);
    finish(w, RN_ECANCELED, "cancelled", false);
    return;
  }
  if (job->status < 0) {
    char msg[RK_ERR_LEN];
    snprintf(msg, sizeof msg, "%s", job->msg);
    bool retry = job->dec.parse_error;
    int st = job->status;
    job_free(job);
    if (retry)
      rk__call_retry(&w->call, st, msg); /* calls on_page_answer again */
    else
      finish(w, st, msg, false);
    return;
  }
  next_or_finish(w, job);
}

static void on_page_answer(rk__call_t *call, int status, long http,
                           const char *message, char *body, size_t len,
                           void *data) {
  rk_walk_t *w = data;
  (void)call;
  (void)http;
  if (status < 0) {
    free(body);
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
  int rc =
      host->work_queue(w->client->ctx, decode_work, decode_done, job, &w->work);
  if (rc < 0) {
    job_free(job);
    finish(w, rc, "cannot queue the page for decoding", false);
  }
}

static void on_kick(rn_ctx_t *ctx, int status, void *data) {
  rk_walk_t *w = data;
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

static bool copy_str(char **out, const char *s) {
  if (!s || !*s)
    return true;
  *out = strdup(s);
  return *out != NULL;
}

int rk_walk_start(rk_client_t *client, const rk_walk_opts_t *opts,
                  rk_page_cb on_page, rk_walk_cb done, void *data,
                  rk_walk_t **out) {
  if (!client || !opts || !on_page || !done ||
      opts->struct_size < offsetof(rk_walk_opts_t, decode_data) ||
      (unsigned)opts->paging > RK_PAGING_NEXT_LINK)
    return RN_EINVAL;
  rk_walk_t *w = calloc(1, sizeof *w);
  if (!w)
    return RN_ENOMEM;
  rk_walk_opts_t o = RK_WALK_OPTS_INIT;
  memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
  w->opts = o;
  w->opts.path = w->opts.query = w->opts.page_param = w->opts.id_param = NULL;
  if (!o.decode || !o.path || o.path[0] != '/' ||
      (o.paging != RK_PAGING_NEXT_LINK && (!o.id_param || !*o.id_param))) {
    free(w);
    return RN_EINVAL;
  }
  w->client = client;
  w->on_page = on_page;
  w->done = done;
  w->data = data;
  if (!w->opts.page_size)
    w->opts.page_size = DEFAULT_PAGE;
  w->cap = o.max_rows;
  if (!copy_str(&w->path, o.path) || !copy_str(&w->query, o.query) ||
      !copy_str(&w->page_param, o.page_param) ||
      !copy_str(&w->id_param, o.id_param)) {
    walk_free(w);
    return RN_ENOMEM;
  }
  rk__call_init(&w->call, client, on_page_answer, w);
  w->call.ep = o.endpoint;
  int rc = client->host->timer_start(client->ctx, 0, on_kick, w, &w->kick);
  if (rc < 0) {
    walk_free(w);
    return rc;
  }
  if (out)
    *out = w;
  return 0;
}

void rk_walk_cancel(rk_walk_t *w) {
  if (!w || w->cancelled)
    return;
  w->cancelled = true;
  if (w->kick)
    w->client->host->cancel(w->kick);
  else if (w->slot_req)
    w->client->host->cancel(w->slot_req);
  else if (w->work)
    w->client->host->cancel(w->work); /* or it runs out; done sees it */
  else
    rk__call_cancel(&w->call);
}
