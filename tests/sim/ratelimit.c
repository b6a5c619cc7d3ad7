#define _POSIX_C_SOURCE 200809L
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct tenant {
    int64_t *times; /* ring of admission times, oldest at head */
    size_t head, count;
} tenant_t;

struct sim_ratelimit {
    pthread_mutex_t lock;
    int per_minute, per_hour;
    size_t capacity;
    tenant_t *tenants;
    size_t n_tenants;
};

sim_ratelimit_t *sim_ratelimit_new(int per_minute, int per_hour, size_t n_clients)
{
    sim_ratelimit_t *rl = sim_xcalloc(1, sizeof *rl);
    pthread_mutex_init(&rl->lock, NULL);
    rl->per_minute = per_minute > 0 ? per_minute : 0;
    rl->per_hour = per_hour > 0 ? per_hour : 0;
    rl->capacity = (size_t)(rl->per_hour > rl->per_minute ? rl->per_hour : rl->per_minute);
    rl->n_tenants = n_clients;
    rl->tenants = sim_xcalloc(n_clients, sizeof *rl->tenants);
    return rl;
}

void sim_ratelimit_free(sim_ratelimit_t *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < rl->n_tenants; i++)
        free(rl->tenants[i].times);
    free(rl->tenants);
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

static pthread_mutex_t clock_lock = PTHREAD_MUTEX_INITIALIZER;
static double clock_scale = 1.0;
static int64_t anchor_ms, anchor_mono_ms; /* anchor_ms 0: not read yet */

/* Caller holds clock_lock. */
static int64_t rate_clock_locked(void)
{
    int64_t mono = sim_monotonic_ms();
    if (!anchor_ms) {
        anchor_ms = sim_wall_ms();
        anchor_mono_ms = mono;
    }
    return anchor_ms + (int64_t)((double)(mono - anchor_mono_ms) * clock_scale);
}

int64_t sim_rate_clock_ms(void)
{
    pthread_mutex_lock(&clock_lock);
    int64_t now = rate_clock_locked();
    pthread_mutex_unlock(&clock_lock);
    return now;
}

void sim_rate_clock_set_scale(double scale)
{
    pthread_mutex_lock(&clock_lock);
    /* Re-anchored at the current reading: the clock never jumps. */
    anchor_ms = rate_clock_locked();
    anchor_mono_ms = sim_monotonic_ms();
    clock_scale = scale > 0 ? scale : 1.0;
    pthread_mutex_unlock(&clock_lock);
}

double sim_rate_clock_scale(void)
{
    pthread_mutex_lock(&clock_lock);
    double scale = clock_scale;
    pthread_mutex_unlock(&clock_lock);
    return scale;
}

static int64_t at(const sim_ratelimit_t *rl, const tenant_t *t, size_t i)
{
    return t->times[(t->head + i) % rl->capacity];
}

int sim_ratelimit_admit(sim_ratelimit_t *rl, int client_index, int *remaining)
{
    *remaining = -1;
    if (rl->capacity == 0 || client_index < 0 || (size_t)client_index >= rl->n_tenants)
        return 0;
    int64_t now = sim_rate_clock_ms();
    pthread_mutex_lock(&rl->lock);
    tenant_t *t = &rl->tenants[client_index];
    if (!t->times)
        t->times = sim_xcalloc(rl->capacity, sizeof *t->times);
    /* The ring only needs the last hour (or minute, without an hourly
     * limit). */
    int64_t horizon = rl->per_hour ? 3600000 : 60000;
    while (t->count && now - at(rl, t, 0) >= horizon) {
        t->head = (t->head + 1) % rl->capacity;
        t->count--;
    }
    size_t in_minute = 0;
    while (in_minute < t->count && now - at(rl, t, t->count - 1 - in_minute) < 60000)
        in_minute++;
    int64_t wait_ms = 0;
    if (rl->per_minute && in_minute >= (size_t)rl->per_minute) {
        int64_t oldest = at(rl, t, t->count - (size_t)rl->per_minute);
        wait_ms = oldest + 60000 - now;
    }
    if (rl->per_hour && t->count >= (size_t)rl->per_hour) {
        int64_t oldest = at(rl, t, t->count - (size_t)rl->per_hour);
        int64_t w = oldest + 3600000 - now;
        if (w > wait_ms)
            wait_ms = w;
    }
    if (wait_ms > 0) {
        pthread_mutex_unlock(&rl->lock);
        /* Retry-After is real seconds: the wait on a sped-up clock is
         * shorter. */
        int64_t real_ms = (int64_t)((double)wait_ms / sim_rate_clock_scale()) + 1;
        return (int)((real_ms + 999) / 1000);
    }
    if (t->count == rl->capacity) {
        t->head = (t->head + 1) % rl->capacity;
        t->count--;
    }
    t->times[(t->head + t->count) % rl->capacity] = now;
    t->count++;
    in_minute++;
    long left = -1;
    if (rl->per_minute)
        left = rl->per_minute - (long)in_minute;
    if (rl->per_hour && (left < 0 || rl->per_hour - (long)t->count < left))
        left = rl->per_hour - (long)t->count;
    *remaining = (int)(left < 0 ? 0 : left);
    pthread_mutex_unlock(&rl->lock);
    return 0;
}
