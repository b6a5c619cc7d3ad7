/* Fixture fleets: JSON files describing clients, organizations, devices
 * and their report rows (format in README.md). */
#ifndef SIM_FLEET_LOAD_H
#define SIM_FLEET_LOAD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet.h"

/* Loads path into a new fleet. Relative times ("ageSeconds") resolve
 * against now_ms if non-zero, else the fixture's "now", else the wall
 * clock; *pinned_ms receives the fixture's "now" (0 if absent). Returns
 * NULL with a message naming the file and the JSON path on error. */
sim_fleet_t *sim_fleet_load(const char *path, uint64_t seed, int64_t now_ms,
                            int64_t *pinned_ms, char *err, size_t errlen);

/* Control path (POST /_sim/fleet): appends an organization (with its
 * devices) or one device, described in the fixture format. The simulator
 * assigns every id; returns the new org/device id, or -1 with err.
 * Caller holds the fleet's write lock. */
int32_t sim_fleet_add_org_json(sim_fleet_t *fleet, json_t *org, int64_t now_ms, char *err,
                               size_t errlen);
int32_t sim_fleet_add_device_json(sim_fleet_t *fleet, int32_t org_id, json_t *device,
                                  int64_t now_ms, char *err, size_t errlen);

/* Fills fields a fixture or generator left empty (OS, hardware, names)
 * from the device's class, so every device looks like an agent device. */
void sim_device_fill_defaults(sim_fleet_t *fleet, sim_device_t *dev, int64_t now_ms);

#endif
