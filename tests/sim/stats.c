#define _POSIX_C_SOURCE 200809L
#include "stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ratelimit.h"
#include "util.h"

typedef struct named_count {
    char *name;
    uint64_t requests;
    uint64_t throttled;
} named_count_t;

typedef struct counts {
    named_count_t *items;
    size_t n, cap;
} counts_t;

typedef struct region_stats {
    uint64_t requests;
    uint64_t throttled;
    uint64_t token_requests;
    counts_t endpoints;
    counts_t clients;
    /* Rate-clock ms (sim_rate_clock_ms: the wall clock, sped up with the
     * limiter's) of every API and token request, in arrival order, so a
     * test can find the busiest 60 seconds. */
    int64_t *times;
    size_t n_times, cap_times;
} region_stats_t;

struct sim_stats {
    pthread_mutex_t lock;
    uint64_t requests;
    uint64_t token_requests;
    char **token_scopes;
    size_t n_scopes, cap_scopes;
    region_stats_t regions[SIM_REGION_COUNT];
};

sim_stats_t *sim_stats_new(void)
{
    sim_stats_t *st = sim_xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    return st;
}

static void counts_clear(counts_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->items[i].name);
    free(c->items);
    memset(c, 0, sizeof *c);
}

static void clear_locked(sim_stats_t *st)
{
    for (size_t i = 0; i < st->n_scopes; i++)
        free(st->token_scopes[i]);
    free(st->token_scopes);
    st->token_scopes = NULL;
    st->n_scopes = st->cap_scopes = 0;
    for (int r = 0; r < SIM_REGION_COUNT; r++) {
        counts_clear(&st->regions[r].endpoints);
        counts_clear(&st->regions[r].clients);
        free(st->regions[r].times);
        memset(&st->regions[r], 0, sizeof st->regions[r]);
    }
    st->requests = st->token_requests = 0;
}

void sim_stats_free(sim_stats_t *st)
{
    if (!st)
        return;
    clear_locked(st);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static named_count_t *find(counts_t *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->items[i].name, name) == 0)
            return &c->items[i];
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = sim_xrealloc(c->items, c->cap * sizeof *c->items);
    }
    named_count_t *item = &c->items[c->n++];
    item->name = sim_xstrdup(name);
    item->requests = item->throttled = 0;
    return item;
}

/* Caller holds the lock. */
static void stamp(region_stats_t *rs)
{
    if (rs->n_times == rs->cap_times) {
        rs->cap_times = rs->cap_times ? rs->cap_times * 2 : 256;
        rs->times = sim_xrealloc(rs->times, rs->cap_times * sizeof *rs->times);
    }
    int64_t now = sim_rate_clock_ms();
    /* Stamped under the lock: never earlier than the one before. */
    if (rs->n_times && now < rs->times[rs->n_times - 1])
        now = rs->times[rs->n_times - 1];
    rs->times[rs->n_times++] = now;
}

/* The most requests in any window of window_ms (times ascending). */
static int64_t peak_in_window(const region_stats_t *rs, int64_t window_ms)
{
    size_t lo = 0, best = 0;
    for (size_t hi = 0; hi < rs->n_times; hi++) {
        while (rs->times[hi] - rs->times[lo] >= window_ms)
            lo++;
        if (hi - lo + 1 > best)
            best = hi - lo + 1;
    }
    return (int64_t)best;
}

void sim_stats_any(sim_stats_t *st)
{
    pthread_mutex_lock(&st->lock);
    st->requests++;
    pthread_mutex_unlock(&st->lock);
}

void sim_stats_request(sim_stats_t *st, int region, const char *endpoint)
{
    if (region < 0 || region >= SIM_REGION_COUNT)
        return;
    pthread_mutex_lock(&st->lock);
    st->regions[region].requests++;
    stamp(&st->regions[region]);
    if (endpoint)
        find(&st->regions[region].endpoints, endpoint)->requests++;
    pthread_mutex_unlock(&st->lock);
}

void sim_stats_client(sim_stats_t *st, int region, const char *client_id, bool throttled)
{
    if (region < 0 || region >= SIM_REGION_COUNT || !client_id)
        return;
    pthread_mutex_lock(&st->lock);
    named_count_t *c = find(&st->regions[region].clients, client_id);
    c->requests++;
    if (throttled)
        c->throttled++;
    pthread_mutex_unlock(&st->lock);
}

void sim_stats_throttled(sim_stats_t *st, int region)
{
    if (region < 0 || region >= SIM_REGION_COUNT)
        return;
    pthread_mutex_lock(&st->lock);
    st->regions[region].throttled++;
    pthread_mutex_unlock(&st->lock);
}

void sim_stats_token(sim_stats_t *st, int region, const char *scope)
{
    pthread_mutex_lock(&st->lock);
    st->token_requests++;
    if (region >= 0 && region < SIM_REGION_COUNT) {
        st->regions[region].token_requests++;
        stamp(&st->regions[region]);
    }
    if (st->n_scopes == st->cap_scopes) {
        st->cap_scopes = st->cap_scopes ? st->cap_scopes * 2 : 16;
        st->token_scopes = sim_xrealloc(st->token_scopes, st->cap_scopes * sizeof *st->token_scopes);
    }
    st->token_scopes[st->n_scopes++] = sim_xstrdup(scope ? scope : "");
    pthread_mutex_unlock(&st->lock);
}

void sim_stats_reset(sim_stats_t *st)
{
    pthread_mutex_lock(&st->lock);
    clear_locked(st);
    pthread_mutex_unlock(&st->lock);
}

void sim_stats_render(sim_stats_t *st, sim_buf_t *out)
{
    sim_json_t j;
    sj_init(&j, out);
    pthread_mutex_lock(&st->lock);
    sj_obj(&j);
    sj_i64(&j, "requests", (int64_t)st->requests);
    sj_key(&j, "tenants");
    sj_obj(&j);
    for (int r = 0; r < SIM_REGION_COUNT; r++) {
        region_stats_t *rs = &st->regions[r];
        if (!rs->requests && !rs->token_requests)
            continue;
        sj_key(&j, sim_region_name(r));
        sj_obj(&j);
        sj_i64(&j, "requests", (int64_t)rs->requests);
        sj_key(&j, "endpoints");
        sj_obj(&j);
        for (size_t i = 0; i < rs->endpoints.n; i++) {
            sj_key(&j, rs->endpoints.items[i].name);
            sj_v_i64(&j, (int64_t)rs->endpoints.items[i].requests);
        }
        sj_end_obj(&j);
        sj_i64(&j, "throttled", (int64_t)rs->throttled);
        sj_i64(&j, "tokenRequests", (int64_t)rs->token_requests);
        /* API and token requests together, in any 60 s / 3,600 s. */
        sj_i64(&j, "peakPerMinute", peak_in_window(rs, 60000));
        sj_i64(&j, "peakPerHour", peak_in_window(rs, 3600000));
        sj_key(&j, "clients");
        sj_obj(&j);
        for (size_t i = 0; i < rs->clients.n; i++) {
            /* Client ids come from the fleet file: escape them. */
            sj_key_escaped(&j, rs->clients.items[i].name);
            sj_obj(&j);
            sj_i64(&j, "requests", (int64_t)rs->clients.items[i].requests);
            sj_i64(&j, "throttled", (int64_t)rs->clients.items[i].throttled);
            sj_end_obj(&j);
        }
        sj_end_obj(&j);
        sj_end_obj(&j);
    }
    sj_end_obj(&j);
    sj_i64(&j, "tokenRequests", (int64_t)st->token_requests);
    /* This process's CPU so far, to set against the client's. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    sj_i64(&j, "cpuMs",
           (int64_t)ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 +
               (int64_t)ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000);
    sj_key(&j, "tokenScopes");
    sj_arr(&j);
    for (size_t i = 0; i < st->n_scopes; i++)
        sj_v_str(&j, st->token_scopes[i]);
    sj_end_arr(&j);
    sj_end_obj(&j);
    pthread_mutex_unlock(&st->lock);
}

void sim_stats_render_times(sim_stats_t *st, sim_buf_t *out)
{
    sim_json_t j;
    sj_init(&j, out);
    pthread_mutex_lock(&st->lock);
    sj_obj(&j);
    for (int r = 0; r < SIM_REGION_COUNT; r++) {
        const region_stats_t *rs = &st->regions[r];
        if (!rs->n_times)
            continue;
        sj_key(&j, sim_region_name(r));
        sj_arr(&j);
        for (size_t i = 0; i < rs->n_times; i++)
            sj_v_i64(&j, rs->times[i]);
        sj_end_arr(&j);
    }
    sj_end_obj(&j);
    pthread_mutex_unlock(&st->lock);
}
