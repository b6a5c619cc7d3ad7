/* Query-report cursors: the name stays the same for a whole walk while
 * the offset advances, as NinjaOne's /v2/queries reports do. A cursor keeps the
 * filters of its first request and where the walk stopped. */
#ifndef SIM_CURSOR_H
#define SIM_CURSOR_H

#include "sim.h"

enum { SIM_CURSOR_ARGS = 8 };

typedef struct sim_cursor {
    char name[37];
    const char *endpoint;           /* static string of the query definition */
    int client_index;
    char *args[SIM_CURSOR_ARGS];    /* heap copies, NULL when absent */
    size_t device_pos;              /* position in the device walk */
    uint32_t row_pos;               /* next row of that device */
    int64_t offset;                 /* rows served before the next page */
    int64_t expires_mono_ms;
    bool expired;                   /* fault "cursor_expired" */
} sim_cursor_t;

sim_cursors_t *sim_cursors_new(uint64_t seed, int ttl_s);
void sim_cursors_free(sim_cursors_t *cs);

/* Creates a cursor holding copies of args; out receives a copy the
 * caller releases with sim_cursor_release. */
void sim_cursors_create(sim_cursors_t *cs, const char *endpoint, int client_index,
                        const char *const args[SIM_CURSOR_ARGS], sim_cursor_t *out);
/* Copies the live cursor called name into out. Returns 0, or -1 when it
 * does not exist, belongs to another endpoint or client, or expired. */
int sim_cursors_get(sim_cursors_t *cs, const char *name, const char *endpoint, int client_index,
                    sim_cursor_t *out);
/* Stores where the walk of cur stopped (and whether it is expired). */
void sim_cursors_save(sim_cursors_t *cs, const sim_cursor_t *cur);
void sim_cursor_release(sim_cursor_t *copy);
int sim_cursors_ttl(const sim_cursors_t *cs);

#endif
