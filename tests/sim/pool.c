#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { CHUNK_SIZE = 1 << 20 };

typedef struct chunk {
    struct chunk *next;
    size_t used;
    size_t size;
    _Alignas(16) unsigned char mem[];
} chunk_t;

struct sim_pool {
    chunk_t *chunks;
    size_t bytes;
    const char **slots; /* open-addressing set of interned strings */
    size_t n_slots;
    size_t n_used;
};

sim_pool_t *sim_pool_new(void)
{
    sim_pool_t *pool = sim_xcalloc(1, sizeof *pool);
    pool->n_slots = 1024;
    pool->slots = sim_xcalloc(pool->n_slots, sizeof *pool->slots);
    return pool;
}

void sim_pool_free(sim_pool_t *pool)
{
    if (!pool)
        return;
    chunk_t *c = pool->chunks;
    while (c) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(pool->slots);
    free(pool);
}

void *sim_pool_alloc(sim_pool_t *pool, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    chunk_t *c = pool->chunks;
    if (!c || c->size - c->used < n) {
        size_t size = n > CHUNK_SIZE / 4 ? n : CHUNK_SIZE;
        chunk_t *fresh = sim_xmalloc(sizeof *fresh + size);
        fresh->used = 0;
        fresh->size = size;
        pool->bytes += sizeof *fresh + size;
        if (size == n && c) {
            /* A big one-off block goes behind the current chunk so the
             * current chunk's free tail stays usable. */
            fresh->next = c->next;
            c->next = fresh;
        } else {
            fresh->next = c;
            pool->chunks = fresh;
        }
        c = fresh;
    }
    void *p = c->mem + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    /* FNV's low bits cluster for strings that differ only at the end;
     * the table indexes by low bits, so mix them. */
    return sim_mix64(h);
}

static void grow_slots(sim_pool_t *pool)
{
    size_t n = pool->n_slots * 2;
    const char **slots = sim_xcalloc(n, sizeof *slots);
    for (size_t i = 0; i < pool->n_slots; i++) {
        const char *s = pool->slots[i];
        if (!s)
            continue;
        size_t k = hash_str(s) & (n - 1);
        while (slots[k])
            k = (k + 1) & (n - 1);
        slots[k] = s;
    }
    free(pool->slots);
    pool->slots = slots;
    pool->n_slots = n;
}

const char *sim_pool_intern(sim_pool_t *pool, const char *s)
{
    if (!s)
        return NULL;
    if ((pool->n_used + 1) * 10 > pool->n_slots * 7)
        grow_slots(pool);
    size_t k = hash_str(s) & (pool->n_slots - 1);
    while (pool->slots[k]) {
        if (strcmp(pool->slots[k], s) == 0)
            return pool->slots[k];
        k = (k + 1) & (pool->n_slots - 1);
    }
    size_t len = strlen(s);
    char *copy = sim_pool_alloc(pool, len + 1);
    memcpy(copy, s, len + 1);
    pool->slots[k] = copy;
    pool->n_used++;
    return copy;
}

const char *sim_pool_strdup(sim_pool_t *pool, const char *s)
{
    if (!s)
        return NULL;
    size_t len = strlen(s);
    char *copy = sim_pool_alloc(pool, len + 1);
    memcpy(copy, s, len + 1);
    return copy;
}

size_t sim_pool_bytes(const sim_pool_t *pool)
{
    return pool->bytes + pool->n_slots * sizeof *pool->slots;
}
