/* The control API under /_sim/: statistics, faults, fleet changes and
 * the data clock. No authentication; never counted in tenant stats. */
#ifndef SIM_CONTROL_H
#define SIM_CONTROL_H

#include "sim.h"

void sim_control(sim_t *sim, sim_request_t *req, const char *path, sim_response_t *res);

#endif
