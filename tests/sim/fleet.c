#define _POSIX_C_SOURCE 200809L
#include "fleet.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const region_names[SIM_REGION_COUNT] = {"us", "us2", "eu", "ca", "oc"};

const char *sim_region_name(int region)
{
    return region >= 0 && region < SIM_REGION_COUNT ? region_names[region] : "?";
}

int sim_region_parse(const char *name, size_t n)
{
    for (int i = 0; i < SIM_REGION_COUNT; i++)
        if (strlen(region_names[i]) == n && strncmp(region_names[i], name, n) == 0)
            return i;
    return -1;
}

sim_fleet_t *sim_fleet_new(uint64_t seed)
{
    sim_fleet_t *fleet = sim_xcalloc(1, sizeof *fleet);
    pthread_rwlock_init(&fleet->lock, NULL);
    fleet->pool = sim_pool_new();
    fleet->seed = seed;
    return fleet;
}

void sim_org_free_index(sim_org_t *org)
{
    free(org->device_index);
    free(org->activity_index);
    free(org->activity_time_max);
    org->device_index = NULL;
    org->activity_index = NULL;
    org->activity_time_max = NULL;
    org->n_devices = org->cap_devices = org->n_activities = 0;
}

/* Each org's activities (of its devices), in id order, with the running
 * latest time. Two passes: count, then fill. */
static void index_activities(sim_fleet_t *fleet)
{
    for (size_t i = 0; i < fleet->n_activities; i++) {
        ptrdiff_t d = sim_fleet_find_device(fleet, fleet->activities[i].device_id);
        sim_org_t *org = d < 0 ? NULL : sim_fleet_find_org(fleet, fleet->devices[d].org_id);
        if (org)
            org->n_activities++;
    }
    for (size_t o = 0; o < fleet->n_orgs; o++) {
        sim_org_t *org = &fleet->orgs[o];
        if (!org->n_activities)
            continue;
        org->activity_index = sim_xcalloc(org->n_activities, sizeof *org->activity_index);
        org->activity_time_max = sim_xcalloc(org->n_activities, sizeof *org->activity_time_max);
        org->n_activities = 0;
    }
    for (size_t i = 0; i < fleet->n_activities; i++) {
        const sim_activity_t *a = &fleet->activities[i];
        ptrdiff_t d = sim_fleet_find_device(fleet, a->device_id);
        sim_org_t *org = d < 0 ? NULL : sim_fleet_find_org(fleet, fleet->devices[d].org_id);
        if (!org)
            continue;
        uint32_t k = org->n_activities++;
        org->activity_index[k] = (uint32_t)i;
        int64_t prev = k ? org->activity_time_max[k - 1] : INT64_MIN;
        org->activity_time_max[k] = a->time_ms > prev ? a->time_ms : prev;
    }
}

void sim_fleet_free(sim_fleet_t *fleet)
{
    if (!fleet)
        return;
    for (size_t i = 0; i < fleet->n_orgs; i++)
        sim_org_free_index(&fleet->orgs[i]);
    free(fleet->orgs);
    free(fleet->devices);
    free(fleet->activities);
    free(fleet->clients);
    sim_pool_free(fleet->pool);
    pthread_rwlock_destroy(&fleet->lock);
    free(fleet);
}

static void *grow(void *arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 64;
    return sim_xrealloc(arr, *cap * size);
}

void sim_fleet_reserve(sim_fleet_t *fleet, size_t devices, size_t activities)
{
    if (devices > fleet->cap_devices) {
        fleet->devices = sim_xrealloc(fleet->devices, devices * sizeof *fleet->devices);
        fleet->cap_devices = devices;
    }
    if (activities > fleet->cap_activities) {
        fleet->activities = sim_xrealloc(fleet->activities, activities * sizeof *fleet->activities);
        fleet->cap_activities = activities;
    }
}

sim_org_t *sim_fleet_add_org(sim_fleet_t *fleet)
{
    fleet->orgs = grow(fleet->orgs, &fleet->cap_orgs, fleet->n_orgs, sizeof *fleet->orgs);
    sim_org_t *org = &fleet->orgs[fleet->n_orgs++];
    memset(org, 0, sizeof *org);
    return org;
}

sim_device_t *sim_fleet_add_device(sim_fleet_t *fleet)
{
    fleet->devices = grow(fleet->devices, &fleet->cap_devices, fleet->n_devices,
                          sizeof *fleet->devices);
    sim_device_t *dev = &fleet->devices[fleet->n_devices++];
    memset(dev, 0, sizeof *dev);
    return dev;
}

sim_activity_t *sim_fleet_add_activity(sim_fleet_t *fleet)
{
    fleet->activities = grow(fleet->activities, &fleet->cap_activities,
                             fleet->n_activities, sizeof *fleet->activities);
    sim_activity_t *act = &fleet->activities[fleet->n_activities++];
    memset(act, 0, sizeof *act);
    return act;
}

static int cmp_org(const void *a, const void *b)
{
    int32_t x = ((const sim_org_t *)a)->id, y = ((const sim_org_t *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_device(const void *a, const void *b)
{
    int32_t x = ((const sim_device_t *)a)->id, y = ((const sim_device_t *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_activity(const void *a, const void *b)
{
    int64_t x = ((const sim_activity_t *)a)->id, y = ((const sim_activity_t *)b)->id;
    return (x > y) - (x < y);
}

/* Activities without an id get ids in time order after the highest
 * given id, so "newest first" and "id descending" agree. */
static int cmp_activity_time(const void *a, const void *b)
{
    const sim_activity_t *x = a, *y = b;
    if (x->time_ms != y->time_ms)
        return (x->time_ms > y->time_ms) - (x->time_ms < y->time_ms);
    return (x->device_id > y->device_id) - (x->device_id < y->device_id);
}

void sim_fleet_number_activities(sim_fleet_t *fleet)
{
    int64_t max_id = 0;
    for (size_t i = 0; i < fleet->n_activities; i++)
        if (fleet->activities[i].id > max_id)
            max_id = fleet->activities[i].id;
    qsort(fleet->activities, fleet->n_activities, sizeof *fleet->activities, cmp_activity_time);
    int64_t next = max_id > 0 ? max_id + 1 : 70000000;
    for (size_t i = 0; i < fleet->n_activities; i++)
        if (fleet->activities[i].id == 0)
            fleet->activities[i].id = next++;
}

void sim_fleet_link_device(sim_fleet_t *fleet, size_t device_index)
{
    sim_org_t *org = sim_fleet_find_org(fleet, fleet->devices[device_index].org_id);
    if (!org)
        return;
    if (org->n_devices == org->cap_devices) {
        org->cap_devices = org->cap_devices ? org->cap_devices * 2 : 16;
        org->device_index = sim_xrealloc(org->device_index,
                                         org->cap_devices * sizeof *org->device_index);
    }
    org->device_index[org->n_devices++] = (uint32_t)device_index;
}

int sim_fleet_finish(sim_fleet_t *fleet, char *err, size_t errlen)
{
    qsort(fleet->orgs, fleet->n_orgs, sizeof *fleet->orgs, cmp_org);
    qsort(fleet->devices, fleet->n_devices, sizeof *fleet->devices, cmp_device);
    qsort(fleet->activities, fleet->n_activities, sizeof *fleet->activities, cmp_activity);
    for (size_t i = 1; i < fleet->n_orgs; i++)
        if (fleet->orgs[i].id == fleet->orgs[i - 1].id) {
            snprintf(err, errlen, "duplicate organization id %d", fleet->orgs[i].id);
            return -1;
        }
    for (size_t i = 1; i < fleet->n_devices; i++)
        if (fleet->devices[i].id == fleet->devices[i - 1].id) {
            snprintf(err, errlen, "duplicate device id %d", fleet->devices[i].id);
            return -1;
        }
    for (size_t i = 1; i < fleet->n_activities; i++)
        if (fleet->activities[i].id == fleet->activities[i - 1].id) {
            snprintf(err, errlen, "duplicate activity id %lld",
                     (long long)fleet->activities[i].id);
            return -1;
        }
    int32_t max_loc = 0;
    for (size_t i = 0; i < fleet->n_orgs; i++) {
        sim_org_t *org = &fleet->orgs[i];
        sim_org_free_index(org);
        for (uint32_t k = 0; k < org->n_locations; k++)
            if (org->locations[k].id > max_loc)
                max_loc = org->locations[k].id;
    }
    for (size_t i = 0; i < fleet->n_devices; i++) {
        if (!sim_fleet_find_org(fleet, fleet->devices[i].org_id)) {
            snprintf(err, errlen, "device %d names unknown organization %d",
                     fleet->devices[i].id, fleet->devices[i].org_id);
            return -1;
        }
        sim_fleet_link_device(fleet, i);
    }
    index_activities(fleet);
    fleet->next_org_id = fleet->n_orgs ? fleet->orgs[fleet->n_orgs - 1].id + 1 : 1;
    fleet->next_device_id = fleet->n_devices ? fleet->devices[fleet->n_devices - 1].id + 1 : 1;
    fleet->next_location_id = max_loc + 1;
    fleet->next_activity_id =
        fleet->n_activities ? fleet->activities[fleet->n_activities - 1].id + 1 : 1;
    return 0;
}

sim_org_t *sim_fleet_find_org(const sim_fleet_t *fleet, int32_t id)
{
    size_t lo = 0, hi = fleet->n_orgs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (fleet->orgs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < fleet->n_orgs && fleet->orgs[lo].id == id ? &fleet->orgs[lo] : NULL;
}

size_t sim_fleet_device_lower(const sim_fleet_t *fleet, int32_t after)
{
    size_t lo = 0, hi = fleet->n_devices;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (fleet->devices[mid].id <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

ptrdiff_t sim_fleet_find_device(const sim_fleet_t *fleet, int32_t id)
{
    size_t i = sim_fleet_device_lower(fleet, id - 1);
    return i < fleet->n_devices && fleet->devices[i].id == id ? (ptrdiff_t)i : -1;
}

bool sim_client_sees_org(const sim_client_t *client, const sim_org_t *org)
{
    if (org->removed || org->region != client->region)
        return false;
    if (!client->has_org_filter)
        return true;
    for (uint32_t i = 0; i < client->n_org_ids; i++)
        if (client->org_ids[i] == org->id)
            return true;
    return false;
}

void sim_device_uid(const sim_fleet_t *fleet, const sim_device_t *dev, char out[37])
{
    if (dev->uid) {
        snprintf(out, 37, "%s", dev->uid);
        return;
    }
    sim_uuid(out, fleet->seed, 1, (uint64_t)dev->id, 0);
}

static atomic_llong pinned_now_ms; /* 0: follow the wall clock */

void sim_clock_pin(int64_t now_ms) { atomic_store(&pinned_now_ms, now_ms); }
void sim_clock_unpin(void) { atomic_store(&pinned_now_ms, 0); }
bool sim_clock_is_pinned(void) { return atomic_load(&pinned_now_ms) != 0; }

int64_t sim_clock_now_ms(void)
{
    int64_t pinned = atomic_load(&pinned_now_ms);
    return pinned ? pinned : sim_wall_ms();
}
