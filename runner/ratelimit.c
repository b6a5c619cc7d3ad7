/* ratelimit.c - see ratelimit.h. */
#include "ratelimit.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* One window: the times its last `limit` tokens were spent, oldest first,
 * in a ring. A token is free again once its time is a period old. */
typedef struct window_s {
  uint32_t limit;
  int64_t period_ms;
  int64_t *spent;
  uint32_t head, count;
} window_t;

struct rn__rate_key_s {
  rn__rate_t *rl;
  char *name;
  window_t *windows;
  size_t nwindows;
  rn__rate_waiter_t *first, *last;
  int64_t paused_until;
  bool low_quota_logged;
  rn__rate_stats_t stats;
  rn__rate_key_t *next_key;
};

struct rn__rate_s {
  rn__rate_clock_fn clock;
  void *clock_data;
  rn__rate_key_t *keys, *last_key;
};

static int64_t monotonic_ms(void *data) {
  (void)data;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

rn__rate_t *rn__rate_new(rn__rate_clock_fn clock, void *clock_data) {
  rn__rate_t *rl = calloc(1, sizeof *rl);
  if (!rl)
    return NULL;
  rn__rate_set_clock(rl, clock, clock_data);
  return rl;
}

void rn__rate_set_clock(rn__rate_t *rl, rn__rate_clock_fn clock, void *data) {
  rl->clock = clock ? clock : monotonic_ms;
  rl->clock_data = clock ? data : NULL;
}

int64_t rn__rate_now(const rn__rate_t *rl) { return rl->clock(rl->clock_data); }

static void free_windows(window_t *w, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(w[i].spent);
  free(w);
}

void rn__rate_free(rn__rate_t *rl) {
  if (!rl)
    return;
  rn__rate_key_t *k = rl->keys;
  while (k) {
    rn__rate_key_t *next = k->next_key;
    for (rn__rate_waiter_t *w = k->first; w; w = w->next)
      w->queued = false;
    free_windows(k->windows, k->nwindows);
    free(k->name);
    free(k);
    k = next;
  }
  free(rl);
}

rn__rate_key_t *rn__rate_key(rn__rate_t *rl, const char *name, bool create) {
  for (rn__rate_key_t *k = rl->keys; k; k = k->next_key)
    if (strcmp(k->name, name) == 0)
      return k;
  if (!create)
    return NULL;
  rn__rate_key_t *k = calloc(1, sizeof *k);
  if (!k || !(k->name = strdup(name))) {
    free(k);
    return NULL;
  }
  k->rl = rl;
  k->stats.remaining = -1;
  if (rl->last_key)
    rl->last_key->next_key = k;
  else
    rl->keys = k;
  rl->last_key = k;
  return k;
}

const char *rn__rate_key_name(const rn__rate_key_t *key) { return key->name; }

/* Spent times of `old` that still matter, newest kept, into `w`. */
static void carry_over(window_t *w, const window_t *old) {
  uint32_t keep = old->count < w->limit ? old->count : w->limit;
  for (uint32_t i = 0; i < keep; i++) {
    uint32_t from = (old->head + old->count - keep + i) % old->limit;
    w->spent[i] = old->spent[from];
  }
  w->head = 0;
  w->count = keep;
}

int rn__rate_configure(rn__rate_t *rl, const char *name,
                       const rn_rate_window_t *windows, size_t count) {
  if (!name || !*name || (count && !windows) || count > 16)
    return RN_EINVAL;
  for (size_t i = 0; i < count; i++)
    if (windows[i].limit == 0 || windows[i].period_ms == 0 ||
        windows[i].limit > 10000000 || windows[i].period_ms > INT64_MAX / 2)
      return RN_EINVAL;
  rn__rate_key_t *key = rn__rate_key(rl, name, true);
  if (!key)
    return RN_ENOMEM;
  window_t *fresh = count ? calloc(count, sizeof *fresh) : NULL;
  if (count && !fresh)
    return RN_ENOMEM;
  for (size_t i = 0; i < count; i++) {
    fresh[i].limit = windows[i].limit;
    fresh[i].period_ms = (int64_t)windows[i].period_ms;
    fresh[i].spent = calloc(windows[i].limit, sizeof(int64_t));
    if (!fresh[i].spent) {
      free_windows(fresh, count);
      return RN_ENOMEM;
    }
    /* A window of the same period keeps its history. */
    for (size_t j = 0; j < key->nwindows; j++)
      if (key->windows[j].period_ms == fresh[i].period_ms)
        carry_over(&fresh[i], &key->windows[j]);
  }
  free_windows(key->windows, key->nwindows);
  key->windows = fresh;
  key->nwindows = count;
  return 0;
}

/* Clock value from which every window has a token and no pause holds. */
static int64_t free_at(rn__rate_key_t *key, int64_t now) {
  int64_t at = key->paused_until > now ? key->paused_until : now;
  for (size_t i = 0; i < key->nwindows; i++) {
    window_t *w = &key->windows[i];
    while (w->count && w->spent[w->head] + w->period_ms <= now) {
      w->head = (w->head + 1) % w->limit;
      w->count--;
    }
    if (w->count == w->limit) {
      int64_t t = w->spent[w->head] + w->period_ms;
      if (t > at)
        at = t;
    }
  }
  return at;
}

static void spend(rn__rate_key_t *key, int64_t now) {
  for (size_t i = 0; i < key->nwindows; i++) {
    window_t *w = &key->windows[i];
    w->spent[(w->head + w->count) % w->limit] = now;
    w->count++;
  }
  key->stats.admitted++;
}

bool rn__rate_acquire(rn__rate_key_t *key, rn__rate_waiter_t *waiter,
                      rn__rate_ready_fn ready) {
  int64_t now = rn__rate_now(key->rl);
  waiter->key = key;
  waiter->ready = ready;
  waiter->queued_ms = now;
  if (!key->first && free_at(key, now) <= now) {
    spend(key, now);
    waiter->queued = false;
    return true;
  }
  waiter->queued = true;
  waiter->next = NULL;
  waiter->prev = key->last;
  if (key->last)
    key->last->next = waiter;
  else
    key->first = waiter;
  key->last = waiter;
  key->stats.queued++;
  return false;
}

void rn__rate_withdraw(rn__rate_waiter_t *waiter) {
  if (!waiter->queued)
    return;
  rn__rate_key_t *key = waiter->key;
  if (waiter->prev)
    waiter->prev->next = waiter->next;
  else
    key->first = waiter->next;
  if (waiter->next)
    waiter->next->prev = waiter->prev;
  else
    key->last = waiter->prev;
  waiter->prev = waiter->next = NULL;
  waiter->queued = false;
  key->stats.queued--;
}

void rn__rate_pump(rn__rate_t *rl) {
  for (rn__rate_key_t *key = rl->keys; key; key = key->next_key) {
    for (;;) {
      rn__rate_waiter_t *w = key->first;
      if (!w)
        break;
      int64_t now = rn__rate_now(rl);
      if (free_at(key, now) > now)
        break;
      rn__rate_withdraw(w);
      spend(key, now);
      key->stats.waited++;
      key->stats.wait_ms_total += (uint64_t)(now - w->queued_ms);
      w->ready(w);
    }
  }
}

int64_t rn__rate_next_ms(const rn__rate_t *rl) {
  int64_t next = -1;
  int64_t now = rn__rate_now(rl);
  for (rn__rate_key_t *key = rl->keys; key; key = key->next_key) {
    if (!key->first)
      continue;
    int64_t at = free_at(key, now);
    if (next < 0 || at < next)
      next = at;
  }
  return next;
}

void rn__rate_pause(rn__rate_key_t *key, int64_t ms) {
  if (ms <= 0)
    return;
  int64_t until = rn__rate_now(key->rl) + ms;
  if (until > key->paused_until) {
    key->paused_until = until;
    key->stats.paused++;
  }
}

/* Retry-After: delta seconds or an HTTP date. -1 if unreadable. */
static int64_t retry_after_ms(const char *text) {
  char *end;
  while (*text == ' ')
    text++;
  long long secs = strtoll(text, &end, 10);
  if (end != text && (*end == '\0' || *end == ' ' || *end == '\r'))
    return secs < 0 ? 0 : secs * 1000;
  time_t when = curl_getdate(text, NULL);
  if (when < 0)
    return -1;
  time_t now = time(NULL);
  return when > now ? (int64_t)(when - now) * 1000 : 0;
}

/* Longest pause an upstream can ask for; a larger value is clamped. */
#define MAX_PAUSE_MS (3600 * 1000)
/* A 429 without Retry-After pauses this long. */
#define DEFAULT_429_PAUSE_MS 2000
/* An exhausted quota without a reset time pauses this long. */
#define DEFAULT_QUOTA_PAUSE_MS 60000

int64_t rn__rate_observe(rn__rate_key_t *key, long status,
                         const char *retry_after, const char *remaining,
                         const char *reset) {
  int64_t pause = 0;
  if (status == 429 || status == 503) {
    int64_t ra = retry_after ? retry_after_ms(retry_after) : -1;
    if (status == 429) {
      key->stats.throttled++;
      pause = ra >= 0 ? ra : DEFAULT_429_PAUSE_MS;
    } else if (ra > 0) {
      pause = ra;
    }
  }
  if (remaining) {
    char *end;
    long long left = strtoll(remaining, &end, 10);
    if (end != remaining && left >= 0) {
      key->stats.remaining = left;
      if (left < RN__RATE_REMAINING_WARN && !key->low_quota_logged) {
        key->low_quota_logged = true;
        rn__log(RN_LOG_WARNING, "ratelimit",
                "key %s: upstream quota down to %lld remaining", key->name,
                left);
      } else if (left >= RN__RATE_REMAINING_WARN && key->low_quota_logged) {
        key->low_quota_logged = false;
        rn__log(RN_LOG_NOTICE, "ratelimit",
                "key %s: upstream quota recovered to %lld remaining",
                key->name, left);
      }
      if (left == 0) {
        int64_t wait = DEFAULT_QUOTA_PAUSE_MS;
        if (reset) {
          long long r = strtoll(reset, &end, 10);
          if (end != reset && r >= 0) {
            /* Seconds to wait, or an epoch time when that large. */
            time_t now = time(NULL);
            wait = r > 1000000000LL ? ((long long)now < r ? (r - now) * 1000 : 0)
                                    : r * 1000;
          }
        }
        if (wait > pause)
          pause = wait;
      }
    }
  }
  if (pause > MAX_PAUSE_MS)
    pause = MAX_PAUSE_MS;
  rn__rate_pause(key, pause);
  return pause;
}

int64_t rn__rate_throttle(rn__rate_key_t *key, int64_t ms) {
  key->stats.throttled++;
  if (ms > MAX_PAUSE_MS)
    ms = MAX_PAUSE_MS;
  rn__rate_pause(key, ms);
  return ms > 0 ? ms : 0;
}

void rn__rate_get_stats(const rn__rate_key_t *key, rn__rate_stats_t *out) {
  *out = key->stats;
  int64_t now = rn__rate_now(key->rl);
  out->paused_until_ms = key->paused_until > now ? key->paused_until : 0;
}

void rn__rate_each(const rn__rate_t *rl,
                   void (*fn)(const rn__rate_key_t *key, void *data),
                   void *data) {
  for (const rn__rate_key_t *k = rl->keys; k; k = k->next_key)
    fn(k, data);
}
