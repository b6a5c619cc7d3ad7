/* Fault injection on demand: per endpoint, on the Nth matching request
 * or at a seeded rate, so a test run replays the same faults. */
#ifndef SIM_FAULTS_H
#define SIM_FAULTS_H

#include <jansson.h>

#include "sim.h"

typedef enum sim_fault_kind {
    SIM_FAULT_NONE,
    SIM_FAULT_HTTP500,
    SIM_FAULT_SLOW,
    SIM_FAULT_DROP,
    SIM_FAULT_TRUNCATE,
    SIM_FAULT_MALFORMED,
    SIM_FAULT_REVOKE_TOKEN,
    SIM_FAULT_CURSOR_EXPIRED,
    SIM_FAULT_HTML_THROTTLE,
    SIM_FAULT_HTTP429,
} sim_fault_kind_t;

typedef struct sim_fault {
    sim_fault_kind_t kind;
    int delay_ms;
    int retry_after_s;
} sim_fault_t;

sim_faults_t *sim_faults_new(uint64_t seed);
void sim_faults_free(sim_faults_t *faults);

/* Adds a rule from its JSON description (README.md). Returns its id, or
 * -1 with a message in err. */
int sim_faults_add(sim_faults_t *faults, json_t *rule, char *err, size_t errlen);
void sim_faults_clear(sim_faults_t *faults);
void sim_faults_render(sim_faults_t *faults, sim_buf_t *out);

/* Counts this request against every matching rule and returns the
 * fault to apply (kind NONE for none). endpoint is "/v2/..." or
 * "/ws/oauth/token". */
sim_fault_t sim_faults_pick(sim_faults_t *faults, const char *endpoint, int region);

#endif
