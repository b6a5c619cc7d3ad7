/* The fleet model: clients, organizations, devices and their report rows,
 * activities. Loaded from a fixture or generated, then read by every
 * endpoint under a read lock and changed by control operations under the
 * write lock. Every string and row array belongs to the fleet's pool. */
#ifndef SIM_FLEET_H
#define SIM_FLEET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

enum sim_region { SIM_US, SIM_US2, SIM_EU, SIM_CA, SIM_OC, SIM_REGION_COUNT };

const char *sim_region_name(int region);
/* Returns the region index for a name of length n, or -1. */
int sim_region_parse(const char *name, size_t n);

enum sim_scope {
    SIM_SCOPE_MONITORING = 1,
    SIM_SCOPE_MANAGEMENT = 2,
    SIM_SCOPE_CONTROL = 4,
    SIM_SCOPE_OFFLINE_ACCESS = 8,
};

typedef struct sim_client {
    const char *client_id;
    const char *client_secret;
    int region;
    unsigned scopes;       /* scopes the app is configured with */
    bool has_org_filter;   /* true: only org_ids are visible (maybe none) */
    const int32_t *org_ids;
    uint32_t n_org_ids;
} sim_client_t;

typedef struct sim_location {
    int32_t id;
    const char *name;
    const char *address;
    const char *description;
} sim_location_t;

typedef struct sim_org {
    int32_t id;
    int region;
    bool removed;
    const char *name;
    const char *description;
    const char *approval_mode;
    sim_location_t *locations;
    uint32_t n_locations;
    /* Indexes into fleet->devices, ascending device id. Heap owned by
     * the fleet (grows on device_add). */
    uint32_t *device_index;
    uint32_t n_devices;
    uint32_t cap_devices;
    /* Indexes into fleet->activities of this org's devices, ascending id,
     * and the latest activityTime at or before each position, so an
     * "after" filter stops early: /v2/activities for one org never scans
     * the fleet. Rebuilt by sim_fleet_finish. */
    uint32_t *activity_index;
    int64_t *activity_time_max;
    uint32_t n_activities;
} sim_org_t;

typedef struct sim_volume {
    const char *name;
    const char *drive_letter;
    const char *label;
    const char *device_type;
    const char *file_system;
    const char *serial_number;
    int64_t capacity;
    int64_t free_space;
    bool auto_mount;
    bool compressed;
    bool has_bitlocker;
    bool bl_initialized;
    const char *bl_conversion;
    const char *bl_method;
    const char *bl_protection;
    const char *bl_lock;
    int64_t timestamp_ms;
} sim_volume_t;

typedef struct sim_av {
    const char *product_name;
    const char *product_state;
    const char *definition_status;
    const char *version;
    int64_t timestamp_ms;
} sim_av_t;

typedef struct sim_os_patch {
    const char *id; /* NULL: derived from seed, device and row */
    const char *name;
    const char *kb_number;
    const char *severity;
    const char *status;
    const char *type;
    int64_t timestamp_ms;
    int64_t installed_ms;
} sim_os_patch_t;

typedef struct sim_sw_patch {
    const char *id;
    const char *product_identifier;
    const char *title;
    const char *impact;
    const char *status;
    const char *type;
    int64_t timestamp_ms;
    int64_t installed_ms;
} sim_sw_patch_t;

typedef struct sim_backup_job {
    const char *job_id;
    const char *status;
    const char *destination;
    const char *plan_name;
    const char *plan_type;
    int64_t start_ms;
    int64_t end_ms;
    int64_t actual_bytes;
    int64_t stored_bytes;
    int64_t files_uploaded;
    bool deleted;
} sim_backup_job_t;

typedef struct sim_device {
    int32_t id;
    int32_t org_id;
    int32_t location_id;
    int32_t role_id;
    int32_t policy_id;
    bool offline;
    bool removed;
    bool needs_reboot;
    bool virtual_machine;
    const char *uid;
    const char *node_class;
    const char *approval_status;
    const char *device_type;
    const char *system_name;
    const char *display_name;
    const char *dns_name;
    const char *ip_address;
    const char *mac_address;
    const char *public_ip;
    const char *os_name;
    const char *os_manufacturer;
    const char *os_architecture;
    const char *os_build;
    const char *os_release;
    const char *sys_manufacturer;
    const char *sys_model;
    const char *serial_number;
    const char *domain;
    const char *chassis;
    const char *cpu_name;
    const char *last_user;
    int64_t created_ms;
    int64_t last_contact_ms;
    int64_t last_update_ms;
    int64_t last_boot_ms;
    int64_t memory_bytes;
    int32_t cores;
    int32_t logical_cores;
    sim_volume_t *volumes;
    uint32_t n_volumes;
    sim_av_t *av;
    uint32_t n_av;
    sim_os_patch_t *os_patches;
    uint32_t n_os_patches;
    sim_sw_patch_t *sw_patches;
    uint32_t n_sw_patches;
    sim_backup_job_t *backup_jobs;
    uint32_t n_backup_jobs;
} sim_device_t;

typedef struct sim_activity {
    int64_t id;
    int64_t time_ms;
    int32_t device_id;
    const char *activity_type;
    const char *status_code;
    const char *status;
    const char *result;
    const char *severity;
    const char *priority;
    const char *type_label;
    const char *source_name;
    const char *subject;
    const char *message;
    const char *series_uid;   /* NULL: derived */
    const char *data_json;    /* raw JSON object text or NULL */
} sim_activity_t;

typedef struct sim_fleet {
    pthread_rwlock_t lock;
    sim_pool_t *pool;
    uint64_t seed;
    int64_t loaded_now_ms; /* clock value relative times were resolved at */
    sim_client_t *clients;
    size_t n_clients;
    sim_org_t *orgs; /* ascending id */
    size_t n_orgs, cap_orgs;
    sim_device_t *devices; /* ascending id */
    size_t n_devices, cap_devices;
    sim_activity_t *activities; /* ascending id, i.e. oldest first */
    size_t n_activities, cap_activities;
    int32_t next_org_id;
    int32_t next_device_id;
    int32_t next_location_id;
    int64_t next_activity_id;
} sim_fleet_t;

sim_fleet_t *sim_fleet_new(uint64_t seed);
void sim_fleet_free(sim_fleet_t *fleet);

/* Appending; each returns a pointer valid until the next append of the
 * same kind. Callers hold the write lock (or own the fleet alone). */
sim_org_t *sim_fleet_add_org(sim_fleet_t *fleet);
sim_device_t *sim_fleet_add_device(sim_fleet_t *fleet);
sim_activity_t *sim_fleet_add_activity(sim_fleet_t *fleet);

/* Grows the device and activity arrays to at least these capacities. */
void sim_fleet_reserve(sim_fleet_t *fleet, size_t devices, size_t activities);

/* Sorts orgs, devices and activities by id, builds each org's device
 * index and the id counters. Returns 0, or -1 with a message in err. */
int sim_fleet_finish(sim_fleet_t *fleet, char *err, size_t errlen);

/* Gives activities without an id ids in time order (above the highest
 * given id). Call before sim_fleet_finish. */
void sim_fleet_number_activities(sim_fleet_t *fleet);

/* Frees an org's device and activity indexes. */
void sim_org_free_index(sim_org_t *org);

/* Appends one device index to its org (after a device_add). */
void sim_fleet_link_device(sim_fleet_t *fleet, size_t device_index);

sim_org_t *sim_fleet_find_org(const sim_fleet_t *fleet, int32_t id);
/* Index into fleet->devices or -1. */
ptrdiff_t sim_fleet_find_device(const sim_fleet_t *fleet, int32_t id);
/* First index whose id is greater than after. */
size_t sim_fleet_device_lower(const sim_fleet_t *fleet, int32_t after);

bool sim_client_sees_org(const sim_client_t *client, const sim_org_t *org);

/* Derived ids, the same on every run with the same seed. */
void sim_device_uid(const sim_fleet_t *fleet, const sim_device_t *dev, char out[37]);

/* The simulator clock for data: pinned (--now, fixture "now") or wall. */
void sim_clock_pin(int64_t now_ms);
void sim_clock_unpin(void);
bool sim_clock_is_pinned(void);
int64_t sim_clock_now_ms(void);

#endif
