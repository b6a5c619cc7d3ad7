/* Request counters behind GET /_sim/stats, so tests and benchmarks can
 * assert request budgets per tenant and endpoint. */
#ifndef SIM_STATS_H
#define SIM_STATS_H

#include "sim.h"

sim_stats_t *sim_stats_new(void);
void sim_stats_free(sim_stats_t *st);

/* One API request under a region prefix; endpoint NULL for unknown
 * routes, client_id NULL before authentication. */
void sim_stats_request(sim_stats_t *st, int region, const char *endpoint);
void sim_stats_client(sim_stats_t *st, int region, const char *client_id, bool throttled);
void sim_stats_throttled(sim_stats_t *st, int region);
/* A token request; scope is the scope string as sent ("" if omitted). */
void sim_stats_token(sim_stats_t *st, int region, const char *scope);
/* Any request outside the control API (counted in "requests"). */
void sim_stats_any(sim_stats_t *st);
void sim_stats_reset(sim_stats_t *st);
/* Per tenant: requests, endpoints, throttled, tokenRequests,
 * peakPerMinute / peakPerHour (API and token requests in the busiest 60 s
 * and hour), clients; and the simulator's cpuMs. */
void sim_stats_render(sim_stats_t *st, sim_buf_t *out);
/* {"<region>": [epoch ms of each API or token request, ascending]}. */
void sim_stats_render_times(sim_stats_t *st, sim_buf_t *out);

#endif
