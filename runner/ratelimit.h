/*
 * ratelimit.h - per-key request budgets for upstream tenants.
 *
 * A key (chosen by the plugin, e.g. "ninjaone/eu/<credential hash>") has one
 * or more windows "at most `limit` requests per `period_ms`". Each window is
 * a bucket of `limit` tokens in which a spent token comes back exactly one
 * period after it was spent, so no span of `period_ms` ever sees more than
 * `limit` admissions (upstreams count in sliding windows; a bucket refilled
 * at a steady rate would overshoot them right after a burst).
 *
 * Requests that find no token wait in a FIFO per key; a 429, a Retry-After,
 * an exhausted remaining-quota header or a throttle signal a plugin reports
 * pauses the whole key. The limiter
 * is plain logic over an injectable clock: it never arms timers itself. The
 * owner calls rn__rate_pump() when rn__rate_next_ms() says something is due.
 *
 * Keys declared through rn__rate_declare() (the host's rate_configure) are
 * paced: each window admits only RN__RATE_MARGIN_PCT of its limit, and two
 * admissions of a key are at least period/limit apart for its fastest
 * window, so requests leave evenly spread (also after a pause) instead of in
 * a burst at the window edge.
 *
 * Shared budget: with a granter attached (rn__rate_share_db(), when a
 * database is configured) a declared key admits only against tokens granted
 * to this process from the key's bucket in PostgreSQL (runner.rate_take in
 * migration 0003). A grant is a few seconds' worth of requests at the paced
 * rate, usable in a short time slot; what a process did not use goes back
 * with its next request for a grant, and a grant of a process that died
 * simply ends with its slot. Every runner process on the database counts
 * against the same windows.
 */
#ifndef RN_RATELIMIT_H
#define RN_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "regentra/plugin.h"

/* Monotonic milliseconds. */
typedef int64_t (*rn__rate_clock_fn)(void *data);

typedef struct rn__rate_s rn__rate_t;
typedef struct rn__rate_key_s rn__rate_key_t;
typedef struct rn__rate_waiter_s rn__rate_waiter_t;

/* Called by rn__rate_pump() when the waiter got its token; the waiter is
 * already off the queue. */
typedef void (*rn__rate_ready_fn)(rn__rate_waiter_t *waiter);

struct rn__rate_waiter_s {
  rn__rate_key_t *key;
  rn__rate_waiter_t *prev, *next;
  rn__rate_ready_fn ready;
  int64_t queued_ms;
  bool queued;
};

/* Figures per key, for logs and the metrics endpoint. */
typedef struct rn__rate_stats_s {
  uint64_t admitted;       /* tokens handed out */
  uint64_t waited;         /* admissions that had to queue first */
  uint64_t throttled;      /* 429s and throttle signals reported */
  uint64_t paused;         /* pauses applied (Retry-After, 429, quota) */
  uint64_t wait_ms_total;  /* summed queueing time */
  uint64_t grant_calls;    /* database round trips for the shared budget */
  uint64_t granted;        /* tokens granted by the shared budget */
  uint64_t returned;       /* granted tokens handed back unused */
  size_t queued;           /* waiting right now */
  int64_t remaining;       /* last remaining-quota header; -1 = never seen */
  int64_t paused_until_ms; /* clock value; 0 = not paused */
} rn__rate_stats_t;

/* clock NULL = CLOCK_MONOTONIC. NULL when out of memory. */
rn__rate_t *rn__rate_new(rn__rate_clock_fn clock, void *clock_data);
/* Waiters still queued are dropped without a call. */
void rn__rate_free(rn__rate_t *rl);
void rn__rate_set_clock(rn__rate_t *rl, rn__rate_clock_fn clock, void *data);
int64_t rn__rate_now(const rn__rate_t *rl);

/* Windows here are in this host's layout (struct_size is not read): a
 * plugin's reach the limiter only through rn__abi_read_rate_windows.
 *
 * Sets (or replaces) the windows of a key, creating it. count 0 = no
 * budget (only pauses apply). Spent tokens are kept across a change. */
int rn__rate_configure(rn__rate_t *rl, const char *name,
                       const rn_rate_window_t *windows, size_t count);
/* Share of each window's limit a declared key uses (safety margin under
 * the upstream's own count), in percent. */
#define RN__RATE_MARGIN_PCT 95

/* A plugin's declaration of a key's budget, as the host's rate_configure
 * service makes it. The first declaration of a generation wins: an
 * identical one merges, a different one is logged and ignored, and a
 * declaration without windows (a plugin that wants no budget) never
 * removes the windows others declared. A declaration from a newer
 * generation (a reload) replaces the windows, keeping what was spent.
 * Windows are stored at RN__RATE_MARGIN_PCT of their limit (see
 * rn__rate_set_pacing) and the key is paced. `declared_by` names the
 * declarer in logs. */
int rn__rate_declare(rn__rate_t *rl, const char *name,
                     const rn_rate_window_t *windows, size_t count,
                     uint64_t generation, const char *declared_by);
/* Margin (1..100 percent) and pacing of keys declared from now on; the
 * defaults are RN__RATE_MARGIN_PCT and paced. */
void rn__rate_set_pacing(rn__rate_t *rl, unsigned margin_pct, bool paced);
/* The windows a key enforces (after the margin), up to max; returns the
 * count. And the least spacing of its admissions in ms (0 = not paced). */
size_t rn__rate_key_windows(const rn__rate_key_t *key, rn_rate_window_t *out,
                            size_t max);
int64_t rn__rate_key_spacing_ms(const rn__rate_key_t *key);

/* ---- shared budget */

/* Asks the owner of the shared budget for up to `want` tokens of key (want
 * 0: only hand back what the last grant left unused). The owner answers
 * with exactly one rn__rate_granted(): later, then pumping, or from inside
 * this call (a retry time) when the question cannot be sent. */
typedef void (*rn__rate_grant_fn)(rn__rate_key_t *key, uint32_t want,
                                  void *data);
void rn__rate_set_granter(rn__rate_t *rl, rn__rate_grant_fn fn, void *data);
/* The answer: `tokens` usable between the clock values from_ms and
 * until_ms under grant id `grant_id`, or tokens 0 and a retry after
 * retry_ms. */
void rn__rate_granted(rn__rate_key_t *key, int64_t grant_id, uint32_t tokens,
                      int64_t from_ms, int64_t until_ms, int64_t retry_ms);
/* The last grant of key: its id (0 = none), how many of its tokens were
 * spent, and how many are left unspent. */
void rn__rate_last_grant(const rn__rate_key_t *key, int64_t *grant_id,
                         uint32_t *spent, uint32_t *unspent);
/* The pause in force on key, in ms from now (0 = none). */
int64_t rn__rate_pause_left(const rn__rate_key_t *key);
/* Attaches the runner's database as the granter when one is configured:
 * declared keys then share their budget with every runner process of the
 * database. Returns true when attached. */
struct rn__runner_s;
bool rn__rate_share_db(rn__rate_t *rl, struct rn__runner_s *runner);

/* The key named so; with create, an unknown name gets a key without
 * windows. NULL when absent (or out of memory). */
rn__rate_key_t *rn__rate_key(rn__rate_t *rl, const char *name, bool create);
const char *rn__rate_key_name(const rn__rate_key_t *key);

/* Takes a token now if the key's queue is empty and every window has one:
 * returns true (ready is not called). Otherwise queues the waiter (FIFO)
 * and returns false; ready() comes from a later rn__rate_pump(). */
bool rn__rate_acquire(rn__rate_key_t *key, rn__rate_waiter_t *waiter,
                      rn__rate_ready_fn ready);
/* Takes a queued waiter off its queue (cancellation). No call. */
void rn__rate_withdraw(rn__rate_waiter_t *waiter);
/* Admits due waiters of every key in FIFO order, calling ready() for each.
 * ready() may queue or withdraw other waiters. */
void rn__rate_pump(rn__rate_t *rl);
/* Clock value when the next queued waiter may be admitted; -1 if nobody
 * waits. */
int64_t rn__rate_next_ms(const rn__rate_t *rl);

/* What an upstream answered, for the key the request was charged to:
 * status is the HTTP status; retry_after / remaining are the header texts
 * (NULL when absent). Returns the pause applied in ms (0 = none). */
int64_t rn__rate_observe(rn__rate_key_t *key, long status,
                         const char *retry_after, const char *remaining,
                         const char *reset);
/* Pauses the key for ms (the longer of this and any pause in force). */
void rn__rate_pause(rn__rate_key_t *key, int64_t ms);
/* A throttle signal the status line does not show (a plugin recognised
 * it in the body): counted as throttled, then a pause of ms, clamped like
 * a Retry-After. Returns the pause applied. */
int64_t rn__rate_throttle(rn__rate_key_t *key, int64_t ms);

/* Below this remaining quota the key logs one warning (then again only
 * after the quota recovered above it). */
#define RN__RATE_REMAINING_WARN 100

void rn__rate_get_stats(const rn__rate_key_t *key, rn__rate_stats_t *out);
/* Calls fn for every key, in creation order. */
void rn__rate_each(const rn__rate_t *rl,
                   void (*fn)(const rn__rate_key_t *key, void *data),
                   void *data);

#endif
