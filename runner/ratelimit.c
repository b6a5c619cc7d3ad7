/* ratelimit.c - see ratelimit.h. */
#include "ratelimit.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "http.h"
#include "internal.h"

/* One window: the times its last `limit` tokens were spent, oldest first,
 * in a ring. A token is free again once its time is a period old. */
typedef struct window_s {
  uint32_t limit;
  int64_t period_ms;
  int64_t *spent;
  uint32_t head, count;
} window_t;

typedef struct share_s share_t;

struct rn__rate_key_s {
  rn__rate_t *rl;
  char *name;
  window_t *windows;
  size_t nwindows;
  rn__rate_waiter_t *first, *last;
  int64_t paused_until;
  bool low_quota_logged;
  /* declaration (rn__rate_declare) */
  bool declared;
  uint64_t declared_gen;
  char *declared_by;
  /* pacing: admissions at least spacing_ms apart */
  int64_t spacing_ms;
  int64_t last_admit;
  bool admitted_once;
  /* shared budget: the last grant of the database bucket */
  bool grant_pending;
  int64_t grant_id;
  uint32_t grant_tokens, grant_spent;
  int64_t credit_from, credit_until;
  int64_t grant_retry_at;
  rn__rate_stats_t stats;
  rn__rate_key_t *next_key;
};

struct rn__rate_s {
  rn__rate_clock_fn clock;
  void *clock_data;
  rn__rate_key_t *keys, *last_key;
  unsigned margin_pct;
  bool paced;
  rn__rate_grant_fn granter;
  void *granter_data;
  share_t *share; /* the database granter, when attached */
};

static void share_free(share_t *share);

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
  rl->margin_pct = RN__RATE_MARGIN_PCT;
  rl->paced = true;
  return rl;
}

void rn__rate_set_clock(rn__rate_t *rl, rn__rate_clock_fn clock, void *data) {
  rl->clock = clock ? clock : monotonic_ms;
  rl->clock_data = clock ? data : NULL;
}

int64_t rn__rate_now(const rn__rate_t *rl) {
  return rl->clock(rl->clock_data);
}

static void free_windows(window_t *w, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(w[i].spent);
  free(w);
}

void rn__rate_free(rn__rate_t *rl) {
  if (!rl)
    return;
  share_free(rl->share);
  rn__rate_key_t *k = rl->keys;
  while (k) {
    rn__rate_key_t *next = k->next_key;
    for (rn__rate_waiter_t *w = k->first; w; w = w->next)
      w->queued = false;
    free_windows(k->windows, k->nwindows);
    free(k->declared_by);
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

const char *rn__rate_key_name(const rn__rate_key_t *key) {
  return key->name;
}

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

/* Replaces the windows of key (count 0 = none), keeping what was spent. */
static int apply_windows(rn__rate_key_t *key, const rn_rate_window_t *windows,
                         size_t count) {
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

static int check_windows(const rn_rate_window_t *windows, size_t count) {
  if ((count && !windows) || count > 16)
    return RN_EINVAL;
  for (size_t i = 0; i < count; i++)
    if (windows[i].limit == 0 || windows[i].period_ms == 0 ||
        windows[i].limit > 10000000 || windows[i].period_ms > INT64_MAX / 2)
      return RN_EINVAL;
  return 0;
}

int rn__rate_configure(rn__rate_t *rl, const char *name,
                       const rn_rate_window_t *windows, size_t count) {
  if (!name || !*name || check_windows(windows, count) < 0)
    return RN_EINVAL;
  rn__rate_key_t *key = rn__rate_key(rl, name, true);
  if (!key)
    return RN_ENOMEM;
  key->spacing_ms = 0;
  return apply_windows(key, windows, count);
}

void rn__rate_set_pacing(rn__rate_t *rl, unsigned margin_pct, bool paced) {
  rl->margin_pct = margin_pct >= 1 && margin_pct <= 100 ? margin_pct : 100;
  rl->paced = paced;
}

static bool same_windows(const rn_rate_window_t *a, size_t na,
                         const rn_rate_window_t *b, size_t nb) {
  if (na != nb)
    return false;
  for (size_t i = 0; i < na; i++)
    if (a[i].limit != b[i].limit || a[i].period_ms != b[i].period_ms)
      return false;
  return true;
}

static void describe_windows(char *buf, size_t len, const rn_rate_window_t *w,
                             size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && used < len; i++) {
    int k = snprintf(buf + used, len - used, "%s%u/%llums", i ? " " : "",
                     w[i].limit, (unsigned long long)w[i].period_ms);
    if (k < 0)
      break;
    used += (size_t)k;
  }
}

int rn__rate_declare(rn__rate_t *rl, const char *name,
                     const rn_rate_window_t *windows, size_t count,
                     uint64_t generation, const char *declared_by) {
  if (!name || !*name || check_windows(windows, count) < 0)
    return RN_EINVAL;
  rn__rate_key_t *key = rn__rate_key(rl, name, true);
  if (!key)
    return RN_ENOMEM;
  if (!declared_by)
    declared_by = "?";
  if (count == 0) {
    /* Wanting no budget is one plugin's business: it never lifts a budget
     * another declared. */
    if (key->nwindows)
      rn__log(RN_LOG_INFO, "ratelimit",
              "key %s: %s asked for no budget; keeping the one %s declared",
              name, declared_by, key->declared_by ? key->declared_by : "?");
    return 0;
  }
  rn_rate_window_t eff[16];
  int64_t spacing = 0;
  for (size_t i = 0; i < count; i++) {
    uint64_t limit = (uint64_t)windows[i].limit * rl->margin_pct / 100;
    eff[i].limit = limit ? (uint32_t)limit : 1;
    eff[i].period_ms = windows[i].period_ms;
    /* Rounded up: a spacing rounded down would outrun the margin. */
    int64_t gap =
        (int64_t)((eff[i].period_ms + eff[i].limit - 1) / eff[i].limit);
    if (rl->paced && (spacing == 0 || gap < spacing))
      spacing = gap ? gap : 1;
  }
  if (key->declared && key->declared_gen >= generation) {
    rn_rate_window_t cur[16];
    size_t ncur = rn__rate_key_windows(key, cur, 16);
    if (!same_windows(cur, ncur, eff, count)) {
      char mine[160], theirs[160];
      describe_windows(mine, sizeof mine, eff, count);
      describe_windows(theirs, sizeof theirs, cur, ncur);
      rn__log(RN_LOG_WARNING, "ratelimit",
              "key %s: %s declares a budget of %s, %s declared %s first; "
              "keeping %s",
              name, declared_by, mine, key->declared_by, theirs, theirs);
    }
    return 0;
  }
  char *by = strdup(declared_by);
  if (!by)
    return RN_ENOMEM;
  int rc = apply_windows(key, eff, count);
  if (rc < 0) {
    free(by);
    return rc;
  }
  free(key->declared_by);
  key->declared_by = by;
  key->declared = true;
  key->declared_gen = generation;
  key->spacing_ms = spacing;
  return 0;
}

size_t rn__rate_key_windows(const rn__rate_key_t *key, rn_rate_window_t *out,
                            size_t max) {
  size_t n = 0;
  for (; n < key->nwindows && n < max; n++)
    out[n] =
        (rn_rate_window_t){.limit = key->windows[n].limit,
                           .period_ms = (uint64_t)key->windows[n].period_ms};
  return n;
}

int64_t rn__rate_key_spacing_ms(const rn__rate_key_t *key) {
  return key->spacing_ms;
}

/* ----------------------------------------------------- shared budget */

static bool shared(const rn__rate_key_t *key) {
  return key->rl->granter && key->declared && key->nwindows;
}

/* Requests after this much time of paced sending make one grant. */
#define GRANT_SPAN_MS 6000
#define GRANT_MAX 50

static uint32_t grant_size(const rn__rate_key_t *key) {
  int64_t n;
  if (key->spacing_ms > 0)
    n = (GRANT_SPAN_MS + key->spacing_ms - 1) / key->spacing_ms;
  else {
    n = GRANT_MAX;
    for (size_t i = 0; i < key->nwindows; i++)
      if (key->windows[i].limit / 10 < n)
        n = key->windows[i].limit / 10;
  }
  if (n < 1)
    n = 1;
  if (n > GRANT_MAX)
    n = GRANT_MAX;
  for (size_t i = 0; i < key->nwindows; i++)
    if (n > key->windows[i].limit)
      n = key->windows[i].limit;
  return (uint32_t)n;
}

static void request_grant(rn__rate_key_t *key, uint32_t want) {
  key->grant_pending = true;
  key->stats.grant_calls++;
  key->stats.returned += key->grant_tokens - key->grant_spent;
  key->rl->granter(key, want, key->rl->granter_data);
}

void rn__rate_set_granter(rn__rate_t *rl, rn__rate_grant_fn fn, void *data) {
  rl->granter = fn;
  rl->granter_data = data;
}

void rn__rate_granted(rn__rate_key_t *key, int64_t grant_id, uint32_t tokens,
                      int64_t from_ms, int64_t until_ms, int64_t retry_ms) {
  int64_t now = rn__rate_now(key->rl);
  key->grant_pending = false;
  key->grant_id = tokens ? grant_id : 0;
  key->grant_tokens = tokens;
  key->grant_spent = 0;
  key->credit_from = from_ms;
  key->credit_until = until_ms;
  key->grant_retry_at = tokens ? 0 : now + (retry_ms > 0 ? retry_ms : 0);
  key->stats.granted += tokens;
}

void rn__rate_last_grant(const rn__rate_key_t *key, int64_t *grant_id,
                         uint32_t *spent, uint32_t *unspent) {
  *grant_id = key->grant_id;
  *spent = key->grant_spent;
  *unspent = key->grant_tokens - key->grant_spent;
}

int64_t rn__rate_pause_left(const rn__rate_key_t *key) {
  int64_t now = rn__rate_now(key->rl);
  return key->paused_until > now ? key->paused_until - now : 0;
}

/* ------------------------------------------------------- admission */

/* Clock value from which the head waiter may go: every window has a token,
 * no pause holds, the spacing has passed and (shared keys) the grant is
 * usable. INT64_MAX while a grant is being asked for. *need_grant: only a
 * new grant lets it go; the value returned is when to ask for it. */
static int64_t due_at(rn__rate_key_t *key, int64_t now, bool *need_grant) {
  *need_grant = false;
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
  if (key->spacing_ms && key->admitted_once &&
      key->last_admit + key->spacing_ms > at)
    at = key->last_admit + key->spacing_ms;
  if (!shared(key))
    return at;
  if (key->grant_pending)
    return INT64_MAX;
  if (key->credit_from > at)
    at = key->credit_from;
  if (key->grant_spent >= key->grant_tokens || at >= key->credit_until) {
    /* Asked for at once (or at the retry time), so the answer is usually
     * back before the spacing has passed. */
    *need_grant = true;
    return now > key->grant_retry_at ? now : key->grant_retry_at;
  }
  return at;
}

static void spend(rn__rate_key_t *key, int64_t now) {
  for (size_t i = 0; i < key->nwindows; i++) {
    window_t *w = &key->windows[i];
    w->spent[(w->head + w->count) % w->limit] = now;
    w->count++;
  }
  key->last_admit = now;
  key->admitted_once = true;
  if (shared(key))
    key->grant_spent++;
  key->stats.admitted++;
}

bool rn__rate_acquire(rn__rate_key_t *key, rn__rate_waiter_t *waiter,
                      rn__rate_ready_fn ready) {
  int64_t now = rn__rate_now(key->rl);
  waiter->key = key;
  waiter->ready = ready;
  waiter->queued_ms = now;
  bool need_grant = false;
  if (!key->first && due_at(key, now, &need_grant) <= now && !need_grant) {
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
  /* The first waiter of a key without a grant asks for one at once. */
  if (need_grant && !key->grant_pending && key->grant_retry_at <= now)
    request_grant(key, grant_size(key));
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

/* A shared key nobody waits on hands back an expired grant's rest. */
static bool idle_return_due(const rn__rate_key_t *key, int64_t now) {
  return shared(key) && !key->first && !key->grant_pending &&
         key->grant_spent < key->grant_tokens && now >= key->credit_until;
}

void rn__rate_pump(rn__rate_t *rl) {
  for (rn__rate_key_t *key = rl->keys; key; key = key->next_key) {
    for (;;) {
      int64_t now = rn__rate_now(rl);
      rn__rate_waiter_t *w = key->first;
      if (!w) {
        if (idle_return_due(key, now))
          request_grant(key, 0);
        break;
      }
      bool need_grant;
      int64_t at = due_at(key, now, &need_grant);
      if (at > now)
        break;
      if (need_grant) {
        request_grant(key, grant_size(key));
        break;
      }
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
    int64_t at;
    if (key->first) {
      bool need_grant;
      at = due_at(key, now, &need_grant);
      if (at == INT64_MAX)
        continue;
    } else if (shared(key) && !key->grant_pending &&
               key->grant_spent < key->grant_tokens) {
      at = key->credit_until;
    } else {
      continue;
    }
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
                "key %s: upstream quota recovered to %lld remaining", key->name,
                left);
      }
      if (left == 0) {
        int64_t wait = DEFAULT_QUOTA_PAUSE_MS;
        if (reset) {
          long long r = strtoll(reset, &end, 10);
          if (end != reset && r >= 0) {
            /* Seconds to wait, or an epoch time when that large. */
            time_t now = time(NULL);
            wait = r > 1000000000LL
                       ? ((long long)now < r ? (r - now) * 1000 : 0)
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

/* ------------------------------------- shared budget in PostgreSQL */

typedef struct grant_req_s {
  rn__list_t link; /* in share->pending */
  share_t *share;  /* NULL once the limiter is gone */
  rn__rate_key_t *key;
  rn__db_query_t *query;
  int64_t sent_ms;
  uint32_t want;
} grant_req_t;

struct share_s {
  rn__rate_t *rl;
  rn__runner_t *runner; /* its db is looked up per call: it closes first */
  rn__list_t pending;
  /* Whether the database has runner.rate_take: asked once. */
  enum { PROBE_NONE, PROBE_SENT, PROBE_READY } probe;
  rn__db_query_t *probe_query;
  bool failing; /* logged once per outage */
  char holder[160];
};

static void send_take(share_t *share, rn__rate_key_t *key, uint32_t want);

/* Takes a grant and hands back the rest of the previous one in one round
 * trip; see migrations/0003_rate_budget.sql. */
static const char take_sql[] =
    "SELECT grant_id, tokens, delay_ms, valid_ms, retry_ms, conflict"
    " FROM runner.rate_take($1, $2, $3::integer, $4::jsonb, $5::integer,"
    " $6::bigint, $7::integer, $8::bigint)";

/* A database that cannot answer is asked again after this long. */
#define GRANT_RETRY_MS 1000

static void on_grant(int status, PGresult *res, const char *errmsg,
                     void *data) {
  grant_req_t *req = data;
  share_t *share = req->share;
  if (!share) {
    free(req);
    return;
  }
  rn__list_remove(&req->link);
  rn__rate_key_t *key = req->key;
  int64_t now = rn__rate_now(share->rl);
  if (status == RN_ECANCELED) {
    rn__rate_granted(key, 0, 0, 0, 0, GRANT_RETRY_MS); /* closing */
  } else if (status < 0 || PQntuples(res) != 1 || PQnfields(res) != 6) {
    if (!share->failing)
      rn__log(RN_LOG_WARNING, "ratelimit",
              "key %s: the shared budget is unavailable (%s); requests wait "
              "and the database is asked again every %d ms",
              key->name, status < 0 ? errmsg : "unexpected result",
              GRANT_RETRY_MS);
    share->failing = true;
    rn__rate_granted(key, 0, 0, 0, 0, GRANT_RETRY_MS);
  } else {
    if (share->failing)
      rn__log(RN_LOG_NOTICE, "ratelimit",
              "key %s: the shared budget answers again", key->name);
    share->failing = false;
    int64_t id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    long long tokens = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    int64_t delay = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    int64_t valid = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    int64_t retry = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    bool conflict = PQgetvalue(res, 0, 5)[0] == 't';
    if (conflict)
      rn__log(RN_LOG_WARNING, "ratelimit",
              "key %s: another runner process declares a different budget "
              "for this key; each process's grants count against its own "
              "windows",
              key->name);
    if (tokens < 0 || tokens > UINT32_MAX)
      tokens = 0;
    if (tokens == 0 && req->want && retry < 100)
      retry = 100;
    /* Usable from when this process can be sure the slot has begun until
     * the slot ends by the clock of the sender (never later than the
     * database's). */
    rn__rate_granted(key, id, (uint32_t)tokens, now + delay,
                     req->sent_ms + delay + valid, retry);
  }
  free(req);
  rn__http_rate_kick(share->runner);
}

static void send_take(share_t *share, rn__rate_key_t *key, uint32_t want) {
  grant_req_t *req = calloc(1, sizeof *req);
  rn_rate_window_t w[16];
  size_t n = rn__rate_key_windows(key, w, 16);
  char windows[16 * 48 + 4], want_s[16], spacing_s[24], ret_id_s[24],
      ret_spent_s[16], pause_s[24];
  size_t used = 0;
  windows[used++] = '[';
  for (size_t i = 0; i < n; i++)
    used +=
        (size_t)snprintf(windows + used, sizeof windows - used,
                         "%s{\"limit\":%u,\"period_ms\":%llu}", i ? "," : "",
                         w[i].limit, (unsigned long long)w[i].period_ms);
  snprintf(windows + used, sizeof windows - used, "]");
  int64_t grant_id;
  uint32_t spent, unspent;
  rn__rate_last_grant(key, &grant_id, &spent, &unspent);
  snprintf(want_s, sizeof want_s, "%u", want);
  snprintf(spacing_s, sizeof spacing_s, "%lld",
           (long long)rn__rate_key_spacing_ms(key));
  snprintf(ret_id_s, sizeof ret_id_s, "%lld", (long long)grant_id);
  snprintf(ret_spent_s, sizeof ret_spent_s, "%u", spent);
  snprintf(pause_s, sizeof pause_s, "%lld",
           (long long)rn__rate_pause_left(key));
  const char *params[] = {key->name,   share->holder,
                          want_s,      windows,
                          spacing_s,   grant_id ? ret_id_s : NULL,
                          ret_spent_s, pause_s};
  int rc = RN_ENOMEM;
  if (req) {
    req->share = share;
    req->key = key;
    req->want = want;
    req->sent_ms = rn__rate_now(share->rl);
    rn__list_push(&share->pending, &req->link);
    rn__db_t *db = share->runner->db;
    rc = db ? rn__db_exec(db, take_sql, 8, params, on_grant, req, &req->query)
            : RN_ECANCELED; /* the database closed: the runner stops */
  }
  if (rc == RN_ECANCELED) {
    rn__list_remove(&req->link);
    free(req);
    rn__rate_granted(key, 0, 0, 0, 0, GRANT_RETRY_MS);
    return;
  }
  if (rc < 0) {
    if (req)
      rn__list_remove(&req->link);
    free(req);
    if (!share->failing)
      rn__log(RN_LOG_WARNING, "ratelimit",
              "key %s: cannot ask the shared budget: %s", key->name,
              rn__strerror(rc));
    share->failing = true;
    rn__rate_granted(key, 0, 0, 0, 0, GRANT_RETRY_MS);
  }
}

static void on_probe(int status, PGresult *res, const char *errmsg,
                     void *data) {
  share_t *share = data;
  if (!share->rl) {
    free(share); /* the limiter is gone; share_free left this to us */
    return;
  }
  share->probe_query = NULL;
  rn__rate_t *rl = share->rl;
  bool ready =
      status == 0 && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
  if (status == 0 && !ready) {
    /* A database without migration 0003: budgets stay per process. */
    rn__log(RN_LOG_WARNING, "ratelimit",
            "the database has no runner.rate_take (run `regentra-runner "
            "migrate`): rate budgets are not shared between runner "
            "processes");
    rn__rate_set_granter(rl, NULL, NULL);
    for (rn__rate_key_t *k = rl->keys; k; k = k->next_key)
      k->grant_pending = false;
  } else if (ready) {
    share->probe = PROBE_READY;
    for (rn__rate_key_t *k = rl->keys; k; k = k->next_key)
      if (k->grant_pending)
        send_take(share, k, k->first ? grant_size(k) : 0);
  } else {
    share->probe = PROBE_NONE;
    if (!share->failing && status != RN_ECANCELED)
      rn__log(RN_LOG_WARNING, "ratelimit",
              "the shared budget is unavailable (%s); requests wait and the "
              "database is asked again every %d ms",
              errmsg ? errmsg : "?", GRANT_RETRY_MS);
    share->failing |= status != RN_ECANCELED;
    for (rn__rate_key_t *k = rl->keys; k; k = k->next_key)
      if (k->grant_pending)
        rn__rate_granted(k, 0, 0, 0, 0, GRANT_RETRY_MS);
  }
  rn__http_rate_kick(share->runner);
}

static void take_grant(rn__rate_key_t *key, uint32_t want, void *data) {
  share_t *share = data;
  if (share->probe == PROBE_READY) {
    send_take(share, key, want);
    return;
  }
  if (share->probe == PROBE_SENT)
    return; /* asked once the probe answers */
  rn__db_t *db = share->runner->db;
  int rc =
      db ? rn__db_exec(db, "SELECT to_regproc('runner.rate_take') IS NOT NULL",
                       0, NULL, on_probe, share, &share->probe_query)
         : RN_ECANCELED;
  if (rc < 0) {
    rn__rate_granted(key, 0, 0, 0, 0, GRANT_RETRY_MS);
    return;
  }
  share->probe = PROBE_SENT;
}

bool rn__rate_share_db(rn__rate_t *rl, rn__runner_t *runner) {
  if (rl->share)
    return true;
  rn__db_t *db = rn__db_get(runner);
  if (!db)
    return false;
  share_t *share = calloc(1, sizeof *share);
  if (!share)
    return false;
  share->rl = rl;
  share->runner = runner;
  rn__list_init(&share->pending);
  char host[64] = "";
  gethostname(host, sizeof host - 1);
  snprintf(share->holder, sizeof share->holder, "%s:%ld:%08x", host,
           (long)getpid(), (unsigned)rand() ^ (unsigned)rn__real_now_ms());
  rl->share = share;
  rn__rate_set_granter(rl, take_grant, share);
  return true;
}

static void share_free(share_t *share) {
  if (!share)
    return;
  if (share->probe_query) {
    /* Its cancellation answers later and frees the share then. */
    share->rl = NULL;
    rn__db_query_t *q = share->probe_query;
    share->probe_query = NULL;
    rn__db_cancel(q);
    while (!rn__list_empty(&share->pending)) {
      grant_req_t *req =
          rn__container_of(share->pending.next, grant_req_t, link);
      rn__list_remove(&req->link);
      req->share = NULL;
      rn__db_cancel(req->query);
    }
    share->probe = PROBE_NONE;
    return;
  }
  /* Grants still held end with their slot; the answers still due only
   * free their requests. */
  while (!rn__list_empty(&share->pending)) {
    grant_req_t *req = rn__container_of(share->pending.next, grant_req_t, link);
    rn__list_remove(&req->link);
    req->share = NULL;
    rn__db_cancel(req->query);
  }
  free(share);
}
