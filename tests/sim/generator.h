/* Deterministic fleet generator: the same options and seed always give
 * the same fleet, byte for byte in every response. */
#ifndef SIM_GENERATOR_H
#define SIM_GENERATOR_H

#include <stdint.h>

#include "fleet.h"

typedef struct sim_gen_options {
    uint64_t seed;
    int regions[SIM_REGION_COUNT]; /* regions orgs are spread over */
    int n_regions;
    uint32_t orgs;
    uint32_t devices_min; /* per org; min == max for a fixed size */
    uint32_t devices_max;
    /* OS mix weights: Windows workstation, Windows server, Mac, Linux */
    double mix_workstation, mix_server, mix_mac, mix_linux;
    double encryption_rate;     /* in-scope volumes encrypted */
    double av_fresh, av_aging, av_stale, av_unprotected; /* AV weights */
    double patch_backlog;       /* mean outstanding OS patches per Windows device */
    double patch_failed_rate;   /* devices with one failed install */
    double backup_rate;         /* devices with a backup plan */
    double backup_failure_rate; /* backup devices whose jobs all failed */
    double offline_rate;
    double pending_rate;        /* devices awaiting approval */
} sim_gen_options_t;

void sim_gen_defaults(sim_gen_options_t *opts);

/* Builds a fleet with one client per region (see README.md). */
sim_fleet_t *sim_generate(const sim_gen_options_t *opts, int64_t now_ms);

#endif
