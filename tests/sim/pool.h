/* Arena plus string interning for the fleet: every fleet string and row
 * array lives here and dies with the fleet, so the model has one owner. */
#ifndef SIM_POOL_H
#define SIM_POOL_H

#include <stddef.h>

typedef struct sim_pool sim_pool_t;

sim_pool_t *sim_pool_new(void);
void sim_pool_free(sim_pool_t *pool);
/* Zeroed, 8-byte aligned memory owned by the pool. */
void *sim_pool_alloc(sim_pool_t *pool, size_t n);
/* Returns the pool's single copy of s (NULL stays NULL). */
const char *sim_pool_intern(sim_pool_t *pool, const char *s);
/* Copy owned by the pool, not interned: for strings unique to one row
 * (names, serials), where a lookup would only cost time. */
const char *sim_pool_strdup(sim_pool_t *pool, const char *s);
size_t sim_pool_bytes(const sim_pool_t *pool);

#endif
