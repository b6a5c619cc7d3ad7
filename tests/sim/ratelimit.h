/* Per-tenant request limiter: sliding one-minute and one-hour windows
 * over the times of admitted requests. A tenant is one client app, which
 * lives in exactly one region. */
#ifndef SIM_RATELIMIT_H
#define SIM_RATELIMIT_H

#include "sim.h"

/* Limits of 0 switch that window off. */
sim_ratelimit_t *sim_ratelimit_new(int per_minute, int per_hour, size_t n_clients);
void sim_ratelimit_free(sim_ratelimit_t *rl);

/* Returns 0 when admitted (and *remaining = requests left in the
 * tighter window, or -1 when unlimited), else the seconds until a
 * request would be admitted. */
int sim_ratelimit_admit(sim_ratelimit_t *rl, int client_index, int *remaining);

/* The clock the limiter's windows and the request times count by, in epoch
 * ms: the wall clock when the simulator starts, then the monotonic clock
 * times the scale (1 unless --clock-scale or POST /_sim/clock {"scale"}
 * set it), so that a client whose own clock is sped up meets a minute and
 * an hour of its time. Changing the scale keeps the clock continuous. */
int64_t sim_rate_clock_ms(void);
void sim_rate_clock_set_scale(double scale);
double sim_rate_clock_scale(void);

#endif
