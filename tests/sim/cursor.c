#define _POSIX_C_SOURCE 200809L
#include "cursor.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { N_BUCKETS = 4096 };

typedef struct entry {
    struct entry *next;
    sim_cursor_t cur;
} entry_t;

struct sim_cursors {
    pthread_mutex_t lock;
    uint64_t seed;
    uint64_t created;
    int ttl_s;
    entry_t *buckets[N_BUCKETS];
};

sim_cursors_t *sim_cursors_new(uint64_t seed, int ttl_s)
{
    sim_cursors_t *cs = sim_xcalloc(1, sizeof *cs);
    pthread_mutex_init(&cs->lock, NULL);
    cs->seed = seed;
    cs->ttl_s = ttl_s;
    return cs;
}

static void free_args(sim_cursor_t *c)
{
    for (int i = 0; i < SIM_CURSOR_ARGS; i++) {
        free(c->args[i]);
        c->args[i] = NULL;
    }
}

void sim_cursors_free(sim_cursors_t *cs)
{
    if (!cs)
        return;
    for (int b = 0; b < N_BUCKETS; b++) {
        entry_t *e = cs->buckets[b];
        while (e) {
            entry_t *next = e->next;
            free_args(&e->cur);
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&cs->lock);
    free(cs);
}

int sim_cursors_ttl(const sim_cursors_t *cs)
{
    return cs->ttl_s;
}

static size_t bucket_of(const char *name)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 1099511628211ULL;
    return (size_t)(h % N_BUCKETS);
}

static void copy_cursor(sim_cursor_t *dst, const sim_cursor_t *src)
{
    *dst = *src;
    for (int i = 0; i < SIM_CURSOR_ARGS; i++)
        dst->args[i] = src->args[i] ? sim_xstrdup(src->args[i]) : NULL;
}

/* Drops cursors that expired a while ago so long benchmarks stay flat. */
static void sweep_locked(sim_cursors_t *cs, int64_t now)
{
    for (int b = 0; b < N_BUCKETS; b++) {
        entry_t **link = &cs->buckets[b];
        while (*link) {
            entry_t *e = *link;
            if (now > e->cur.expires_mono_ms) {
                *link = e->next;
                free_args(&e->cur);
                free(e);
            } else {
                link = &e->next;
            }
        }
    }
}

void sim_cursors_create(sim_cursors_t *cs, const char *endpoint, int client_index,
                        const char *const args[SIM_CURSOR_ARGS], sim_cursor_t *out)
{
    entry_t *e = sim_xcalloc(1, sizeof *e);
    e->cur.endpoint = endpoint;
    e->cur.client_index = client_index;
    for (int i = 0; i < SIM_CURSOR_ARGS; i++)
        e->cur.args[i] = args[i] ? sim_xstrdup(args[i]) : NULL;
    int64_t now = sim_monotonic_ms();
    e->cur.expires_mono_ms = now + (int64_t)cs->ttl_s * 1000;
    pthread_mutex_lock(&cs->lock);
    uint64_t n = ++cs->created;
    if (n % 1024 == 0)
        sweep_locked(cs, now);
    sim_uuid(e->cur.name, cs->seed, 40, n, 0);
    size_t b = bucket_of(e->cur.name);
    e->next = cs->buckets[b];
    cs->buckets[b] = e;
    copy_cursor(out, &e->cur);
    pthread_mutex_unlock(&cs->lock);
}

static entry_t *find_locked(sim_cursors_t *cs, const char *name)
{
    for (entry_t *e = cs->buckets[bucket_of(name)]; e; e = e->next)
        if (strcmp(e->cur.name, name) == 0)
            return e;
    return NULL;
}

int sim_cursors_get(sim_cursors_t *cs, const char *name, const char *endpoint, int client_index,
                    sim_cursor_t *out)
{
    int rc = -1;
    pthread_mutex_lock(&cs->lock);
    entry_t *e = find_locked(cs, name);
    if (e && strcmp(e->cur.endpoint, endpoint) == 0 && e->cur.client_index == client_index &&
        !e->cur.expired && sim_monotonic_ms() <= e->cur.expires_mono_ms) {
        copy_cursor(out, &e->cur);
        rc = 0;
    }
    pthread_mutex_unlock(&cs->lock);
    return rc;
}

void sim_cursors_save(sim_cursors_t *cs, const sim_cursor_t *cur)
{
    pthread_mutex_lock(&cs->lock);
    entry_t *e = find_locked(cs, cur->name);
    if (e) {
        e->cur.device_pos = cur->device_pos;
        e->cur.row_pos = cur->row_pos;
        e->cur.offset = cur->offset;
        e->cur.expired = cur->expired;
    }
    pthread_mutex_unlock(&cs->lock);
}

void sim_cursor_release(sim_cursor_t *copy)
{
    free_args(copy);
}
