/* slots.c - process-wide page slots (ABI 1.6 slot_acquire/slot_release).
 *
 * A page held by a plugin (request sent, answer buffered, decoding or being
 * delivered) costs memory whatever image holds it, so the cap lives here,
 * in the host, and not in each plugin image's copy of the kit: at most
 * [runner] max_pages_held slots at once, and max_pages_per_key per key (a
 * caller's key is typically one credential's rate key).
 *
 * A waiter is a request of the job that asked: the job's cancellation and
 * an unload reach it like any other request. Grants go to the first waiter
 * that fits, in arrival order, and are delivered from the loop. A slot still
 * held when its job ends is given back then; its handle lives on until the
 * plugin releases it or its plugin is unloaded. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct slot_key_s {
  struct slot_key_s *next;
  unsigned held;
  unsigned refs; /* slots (waiting, granted or held) naming it */
  char name[];
} slot_key_t;

typedef enum slot_state_e {
  SLOT_WAITING = 1, /* in waiters */
  SLOT_DELIVERING,  /* the callback is due (granted, or cancelled) */
  SLOT_HELD,        /* in held, counted */
  SLOT_LAPSED,      /* in held, given back when its job ended */
} slot_state_t;

struct rn_slot_s {
  rn_req_t req; /* the acquire, until its callback has run */
  uv_timer_t deliver;
  rn__runner_t *runner;
  slot_key_t *key;
  uint32_t key_limit;
  rn_slot_cb cb;
  void *data;
  int status;
  slot_state_t state;
  bool counted;  /* takes one of the process's and its key's slots */
  rn_job_t *job; /* the run that asked; NULL = the plugin itself */
  rn__list_t link;
};

struct rn__slots_s {
  rn__list_t waiters;
  rn__list_t held;
  slot_key_t *keys;
  unsigned held_total;
};

static rn__slots_t *slots_of(rn__runner_t *runner) {
  if (!runner->slots) {
    runner->slots = calloc(1, sizeof *runner->slots);
    if (!runner->slots)
      return NULL;
    rn__list_init(&runner->slots->waiters);
    rn__list_init(&runner->slots->held);
  }
  return runner->slots;
}

static void caps(const rn__runner_t *runner, uint32_t *process,
                 uint32_t *per_key) {
  const rn__config_t *c = runner->gen ? runner->gen->config : NULL;
  *process = c && c->max_pages_held ? c->max_pages_held : RN__MAX_PAGES_HELD;
  *per_key =
      c && c->max_pages_per_key ? c->max_pages_per_key : RN__MAX_PAGES_PER_KEY;
}

static slot_key_t *key_ref(rn__slots_t *s, const char *name) {
  for (slot_key_t *k = s->keys; k; k = k->next)
    if (strcmp(k->name, name) == 0) {
      k->refs++;
      return k;
    }
  size_t len = strlen(name);
  slot_key_t *k = calloc(1, sizeof *k + len + 1);
  if (!k)
    return NULL;
  memcpy(k->name, name, len + 1);
  k->refs = 1;
  k->next = s->keys;
  s->keys = k;
  return k;
}

static void key_unref(rn__slots_t *s, slot_key_t *key) {
  if (--key->refs)
    return;
  for (slot_key_t **pp = &s->keys; *pp; pp = &(*pp)->next)
    if (*pp == key) {
      *pp = key->next;
      break;
    }
  free(key);
}

static bool fits(const rn_slot_t *slot) {
  uint32_t process, per_key;
  caps(slot->runner, &process, &per_key);
  uint32_t key_cap =
      slot->key_limit && slot->key_limit < per_key ? slot->key_limit : per_key;
  return slot->runner->slots->held_total < process && slot->key->held < key_cap;
}

static void take(rn_slot_t *slot) {
  slot->counted = true;
  slot->key->held++;
  slot->runner->slots->held_total++;
}

static void give_back(rn_slot_t *slot) {
  if (!slot->counted)
    return;
  slot->counted = false;
  slot->key->held--;
  slot->runner->slots->held_total--;
}

static void deliver(uv_timer_t *timer);

/* Hands free slots to the waiters that fit, first come first served. */
static void pump(rn__slots_t *s) {
  uint32_t process, per_key;
  rn__list_t *n = s->waiters.next;
  while (n != &s->waiters) {
    rn_slot_t *slot = rn__container_of(n, rn_slot_t, link);
    n = n->next;
    caps(slot->runner, &process, &per_key);
    if (s->held_total >= process)
      return;
    if (!fits(slot))
      continue;
    rn__list_remove(&slot->link);
    take(slot);
    slot->status = 0;
    slot->state = SLOT_DELIVERING;
    uv_timer_start(&slot->deliver, deliver, 0, 0);
  }
}

static void slot_closed(uv_handle_t *handle) {
  free(rn__container_of(handle, rn_slot_t, deliver));
}

/* Frees the handle; the slot is no longer counted or listed. */
static void slot_free(rn_slot_t *slot) {
  rn__slots_t *s = slot->runner->slots;
  key_unref(s, slot->key);
  uv_close((uv_handle_t *)&slot->deliver, slot_closed);
}

static void deliver(uv_timer_t *timer) {
  rn_slot_t *slot = rn__container_of(timer, rn_slot_t, deliver);
  int status = slot->status;
  /* A run that has ended no longer gives its slots back when it ends; the
   * handle must not keep its address either (it may be freed after this). */
  if (slot->job && slot->job->completed)
    slot->job = NULL;
  if (status == 0) {
    slot->state = SLOT_HELD;
    rn__list_push(&slot->runner->slots->held, &slot->link);
  }
  rn__req_enter(&slot->req);
  slot->cb(slot->req.ctx, status, status == 0 ? slot : NULL, slot->data);
  rn__req_finish(&slot->req);
  if (status != 0)
    slot_free(slot);
}

static void slot_cancel(rn_req_t *req) {
  rn_slot_t *slot = rn__container_of(req, rn_slot_t, req);
  if (slot->state == SLOT_WAITING) {
    rn__list_remove(&slot->link);
  } else if (slot->state == SLOT_DELIVERING && slot->status == 0) {
    give_back(slot); /* granted but not yet told: someone else may use it */
    pump(slot->runner->slots);
  } else {
    return;
  }
  slot->status = RN_ECANCELED;
  slot->state = SLOT_DELIVERING;
  uv_timer_start(&slot->deliver, deliver, 0, 0);
}

static int slot_acquire(rn_ctx_t *ctx, const char *key, uint32_t key_limit,
                        rn_slot_cb cb, void *data, rn_req_t **req) {
  if (!ctx || !key || !cb)
    return RN_EINVAL;
  int rc = rn__req_admit(ctx);
  if (rc < 0)
    return rc;
  rn__slots_t *s = slots_of(ctx->runner);
  if (!s)
    return RN_ENOMEM;
  rn_slot_t *slot = calloc(1, sizeof *slot);
  if (!slot)
    return RN_ENOMEM;
  slot->key = key_ref(s, key);
  if (!slot->key) {
    free(slot);
    return RN_ENOMEM;
  }
  slot->runner = ctx->runner;
  slot->key_limit = key_limit;
  slot->cb = cb;
  slot->data = data;
  uv_timer_init(ctx->runner->loop, &slot->deliver);
  rn__req_start(ctx, &slot->req, slot_cancel);
  slot->job = slot->req.job;
  /* Capacity left after the last pump is capacity no waiter fits in, so a
   * newcomer that fits overtakes nobody. */
  if (fits(slot)) {
    take(slot);
    slot->status = 0;
    slot->state = SLOT_DELIVERING;
    uv_timer_start(&slot->deliver, deliver, 0, 0);
  } else {
    slot->state = SLOT_WAITING;
    rn__list_push(&s->waiters, &slot->link);
  }
  if (req)
    *req = &slot->req;
  return 0;
}

static void slot_release(rn_slot_t *slot) {
  if (!slot)
    return;
  rn__slots_t *s = slot->runner->slots;
  rn__list_remove(&slot->link);
  give_back(slot);
  slot_free(slot);
  pump(s);
}

void rn__slots_job_ended(rn__runner_t *runner, rn_job_t *job) {
  rn__slots_t *s = runner->slots;
  if (!s)
    return;
  unsigned lapsed = 0;
  for (rn__list_t *n = s->held.next; n != &s->held; n = n->next) {
    rn_slot_t *slot = rn__container_of(n, rn_slot_t, link);
    if (slot->job != job)
      continue;
    slot->job = NULL;
    if (slot->state == SLOT_HELD) {
      give_back(slot);
      slot->state = SLOT_LAPSED;
      lapsed++;
    }
  }
  if (!lapsed)
    return;
  rn__log(RN_LOG_WARNING, job->qualified_name,
          "ended holding %u page slot(s); the host gave them back", lapsed);
  pump(s);
}

void rn__slots_ctx_gone(rn_ctx_t *ctx) {
  rn__slots_t *s = ctx->runner->slots;
  if (!s)
    return;
  rn__list_t *n = s->held.next;
  bool freed = false;
  while (n != &s->held) {
    rn_slot_t *slot = rn__container_of(n, rn_slot_t, link);
    n = n->next;
    if (slot->req.ctx != ctx)
      continue;
    rn__list_remove(&slot->link);
    give_back(slot);
    slot_free(slot);
    freed = true;
  }
  if (freed)
    pump(s);
}

unsigned rn__slots_held(const rn__runner_t *runner, unsigned *waiting) {
  unsigned w = 0;
  if (runner->slots)
    for (rn__list_t *n = runner->slots->waiters.next;
         n != &runner->slots->waiters; n = n->next)
      w++;
  if (waiting)
    *waiting = w;
  return runner->slots ? runner->slots->held_total : 0;
}

void rn__slots_close(rn__runner_t *runner) {
  /* Every slot belonged to a plugin, and every plugin is gone by now. */
  free(runner->slots);
  runner->slots = NULL;
}

void rn__slots_fill_host(rn_host_t *host) {
  host->slot_acquire = slot_acquire;
  host->slot_release = slot_release;
}
