#define _POSIX_C_SOURCE 200809L
#include "fleet_load.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct loader {
    sim_fleet_t *fleet;
    int64_t now_ms;
    char *err;
    size_t errlen;
    bool failed;
    bool assign_ids; /* control path: the simulator picks every id */
    char where[256]; /* JSON path of the object being read */
} loader_t;

static void fail(loader_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(loader_t *ld, const char *fmt, ...)
{
    if (ld->failed)
        return;
    ld->failed = true;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(ld->err, ld->errlen, "%s: %s", ld->where[0] ? ld->where : "(top)", msg);
}

static const char *get_str(loader_t *ld, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        fail(ld, "\"%s\" must be a string", key);
        return NULL;
    }
    return sim_pool_intern(ld->fleet->pool, json_string_value(v));
}

static int64_t get_int(loader_t *ld, json_t *obj, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return dflt;
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    fail(ld, "\"%s\" must be a number", key);
    return dflt;
}

static bool get_bool(loader_t *ld, json_t *obj, const char *key, bool dflt)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return dflt;
    if (!json_is_boolean(v)) {
        fail(ld, "\"%s\" must be true or false", key);
        return dflt;
    }
    return json_is_true(v);
}

/* A time is either absolute epoch seconds under abs_key or an age in
 * seconds under age_key, resolved against the load clock. */
static int64_t get_time(loader_t *ld, json_t *obj, const char *abs_key, const char *age_key,
                        int64_t dflt)
{
    json_t *v = json_object_get(obj, abs_key);
    if (v && !json_is_null(v)) {
        if (!json_is_number(v)) {
            fail(ld, "\"%s\" must be epoch seconds", abs_key);
            return dflt;
        }
        return (int64_t)(json_number_value(v) * 1000.0 + (json_number_value(v) >= 0 ? 0.5 : -0.5));
    }
    v = json_object_get(obj, age_key);
    if (v && !json_is_null(v)) {
        if (!json_is_number(v)) {
            fail(ld, "\"%s\" must be a number of seconds", age_key);
            return dflt;
        }
        return ld->now_ms - (int64_t)(json_number_value(v) * 1000.0 + 0.5);
    }
    return dflt;
}

static json_t *get_array(loader_t *ld, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_array(v)) {
        fail(ld, "\"%s\" must be an array", key);
        return NULL;
    }
    return v;
}

static void enter(loader_t *ld, size_t mark, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void enter(loader_t *ld, size_t mark, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->where + mark, sizeof ld->where - mark, fmt, ap);
    va_end(ap);
}

static unsigned parse_scope_word(const char *w, size_t n)
{
    static const struct { const char *name; unsigned bit; } scopes[] = {
        {"monitoring", SIM_SCOPE_MONITORING},
        {"management", SIM_SCOPE_MANAGEMENT},
        {"control", SIM_SCOPE_CONTROL},
        {"offline_access", SIM_SCOPE_OFFLINE_ACCESS},
    };
    for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++)
        if (strlen(scopes[i].name) == n && strncmp(scopes[i].name, w, n) == 0)
            return scopes[i].bit;
    return 0;
}

static void load_clients(loader_t *ld, json_t *arr)
{
    sim_fleet_t *fleet = ld->fleet;
    size_t n = json_array_size(arr);
    fleet->clients = sim_xcalloc(n, sizeof *fleet->clients);
    size_t idx;
    json_t *c;
    json_array_foreach(arr, idx, c) {
        enter(ld, 0, "clients[%zu]", idx);
        sim_client_t *cl = &fleet->clients[fleet->n_clients++];
        cl->client_id = get_str(ld, c, "clientId");
        cl->client_secret = get_str(ld, c, "clientSecret");
        const char *region = get_str(ld, c, "region");
        if (!cl->client_id || !cl->client_secret || !region) {
            fail(ld, "clientId, clientSecret and region are required");
            return;
        }
        cl->region = sim_region_parse(region, strlen(region));
        if (cl->region < 0) {
            fail(ld, "unknown region \"%s\" (us, us2, eu, ca, oc)", region);
            return;
        }
        json_t *scopes = json_object_get(c, "scopes");
        if (!scopes) {
            cl->scopes = SIM_SCOPE_MONITORING;
        } else if (json_is_array(scopes)) {
            size_t k;
            json_t *s;
            json_array_foreach(scopes, k, s) {
                const char *w = json_string_value(s);
                unsigned bit = w ? parse_scope_word(w, strlen(w)) : 0;
                if (!bit) {
                    fail(ld, "scopes[%zu] is not monitoring, management, control or offline_access", k);
                    return;
                }
                cl->scopes |= bit;
            }
        } else {
            fail(ld, "\"scopes\" must be an array of scope names");
            return;
        }
        json_t *org_ids = json_object_get(c, "orgIds");
        if (org_ids) {
            if (!json_is_array(org_ids)) {
                fail(ld, "\"orgIds\" must be an array of organization ids");
                return;
            }
            cl->has_org_filter = true;
            cl->n_org_ids = (uint32_t)json_array_size(org_ids);
            int32_t *ids = sim_pool_alloc(fleet->pool, sizeof *ids * (cl->n_org_ids + 1));
            size_t k;
            json_t *v;
            json_array_foreach(org_ids, k, v) ids[k] = (int32_t)json_integer_value(v);
            cl->org_ids = ids;
        }
    }
}

static void load_volumes(loader_t *ld, sim_device_t *dev, json_t *arr, size_t mark)
{
    dev->n_volumes = (uint32_t)json_array_size(arr);
    dev->volumes = sim_pool_alloc(ld->fleet->pool, sizeof *dev->volumes * dev->n_volumes);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        enter(ld, mark, ".volumes[%zu]", i);
        sim_volume_t *vol = &dev->volumes[i];
        vol->name = get_str(ld, v, "name");
        vol->drive_letter = get_str(ld, v, "driveLetter");
        if (!vol->drive_letter && vol->name && strlen(vol->name) == 2 && vol->name[1] == ':')
            vol->drive_letter = vol->name;
        vol->label = get_str(ld, v, "label");
        vol->device_type = get_str(ld, v, "deviceType");
        if (!json_object_get(v, "deviceType"))
            vol->device_type = sim_pool_intern(ld->fleet->pool, "Local Disk");
        vol->file_system = get_str(ld, v, "fileSystem");
        vol->serial_number = get_str(ld, v, "serialNumber");
        vol->capacity = get_int(ld, v, "capacity", 0);
        vol->free_space = get_int(ld, v, "freeSpace", 0);
        vol->auto_mount = get_bool(ld, v, "autoMount", true);
        vol->compressed = get_bool(ld, v, "compressed", false);
        vol->timestamp_ms = get_time(ld, v, "timestamp", "ageSeconds", ld->now_ms);
        json_t *bl = json_object_get(v, "bitLockerStatus");
        if (bl && json_is_object(bl)) {
            vol->has_bitlocker = true;
            vol->bl_conversion = get_str(ld, bl, "conversionStatus");
            vol->bl_method = get_str(ld, bl, "encryptionMethod");
            vol->bl_protection = get_str(ld, bl, "protectionStatus");
            vol->bl_lock = get_str(ld, bl, "lockStatus");
            vol->bl_initialized = get_bool(ld, bl, "initializedForProtection", false);
        }
    }
}

static void load_av(loader_t *ld, sim_device_t *dev, json_t *arr, size_t mark)
{
    dev->n_av = (uint32_t)json_array_size(arr);
    dev->av = sim_pool_alloc(ld->fleet->pool, sizeof *dev->av * dev->n_av);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        enter(ld, mark, ".antivirus[%zu]", i);
        sim_av_t *av = &dev->av[i];
        av->product_name = get_str(ld, v, "productName");
        av->product_state = get_str(ld, v, "productState");
        av->definition_status = get_str(ld, v, "definitionStatus");
        av->version = get_str(ld, v, "version");
        av->timestamp_ms = get_time(ld, v, "timestamp", "ageSeconds", ld->now_ms);
    }
}

static void load_os_patches(loader_t *ld, sim_device_t *dev, json_t *arr, size_t mark)
{
    dev->n_os_patches = (uint32_t)json_array_size(arr);
    dev->os_patches = sim_pool_alloc(ld->fleet->pool, sizeof *dev->os_patches * dev->n_os_patches);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        enter(ld, mark, ".osPatches[%zu]", i);
        sim_os_patch_t *p = &dev->os_patches[i];
        p->id = get_str(ld, v, "id");
        p->name = get_str(ld, v, "name");
        p->kb_number = get_str(ld, v, "kbNumber");
        p->severity = get_str(ld, v, "severity");
        p->status = get_str(ld, v, "status");
        p->type = get_str(ld, v, "type");
        p->timestamp_ms = get_time(ld, v, "timestamp", "ageSeconds", ld->now_ms);
        p->installed_ms = get_time(ld, v, "installedAt", "installedAgeSeconds", 0);
    }
}

static void load_sw_patches(loader_t *ld, sim_device_t *dev, json_t *arr, size_t mark)
{
    dev->n_sw_patches = (uint32_t)json_array_size(arr);
    dev->sw_patches = sim_pool_alloc(ld->fleet->pool, sizeof *dev->sw_patches * dev->n_sw_patches);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        enter(ld, mark, ".softwarePatches[%zu]", i);
        sim_sw_patch_t *p = &dev->sw_patches[i];
        p->id = get_str(ld, v, "id");
        p->product_identifier = get_str(ld, v, "productIdentifier");
        p->title = get_str(ld, v, "title");
        p->impact = get_str(ld, v, "impact");
        p->status = get_str(ld, v, "status");
        p->type = get_str(ld, v, "type");
        p->timestamp_ms = get_time(ld, v, "timestamp", "ageSeconds", ld->now_ms);
        p->installed_ms = get_time(ld, v, "installedAt", "installedAgeSeconds", 0);
    }
}

static void load_backup_jobs(loader_t *ld, sim_device_t *dev, json_t *arr, size_t mark)
{
    dev->n_backup_jobs = (uint32_t)json_array_size(arr);
    dev->backup_jobs = sim_pool_alloc(ld->fleet->pool, sizeof *dev->backup_jobs * dev->n_backup_jobs);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        enter(ld, mark, ".backupJobs[%zu]", i);
        sim_backup_job_t *job = &dev->backup_jobs[i];
        job->job_id = get_str(ld, v, "jobId");
        job->status = get_str(ld, v, "jobStatus");
        job->destination = get_str(ld, v, "destination");
        job->plan_name = get_str(ld, v, "planName");
        job->plan_type = get_str(ld, v, "planType");
        job->start_ms = get_time(ld, v, "jobStartTime", "ageSeconds", ld->now_ms);
        job->end_ms = get_time(ld, v, "jobEndTime", "endAgeSeconds",
                               job->start_ms + get_int(ld, v, "durationSeconds", 1800) * 1000);
        job->actual_bytes = get_int(ld, v, "totalActualStorageBytes", 0);
        job->stored_bytes = get_int(ld, v, "totalStoredBytes", 0);
        job->files_uploaded = get_int(ld, v, "filesUploaded", 0);
        job->deleted = get_bool(ld, v, "deleted", false);
    }
}

static void load_activities(loader_t *ld, int32_t device_id, json_t *arr, size_t mark)
{
    sim_fleet_t *fleet = ld->fleet;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        enter(ld, mark, ".activities[%zu]", i);
        sim_activity_t *act = sim_fleet_add_activity(fleet);
        act->id = ld->assign_ids ? 0 : get_int(ld, v, "id", 0);
        act->time_ms = get_time(ld, v, "activityTime", "ageSeconds", ld->now_ms);
        act->device_id = (int32_t)get_int(ld, v, "deviceId", device_id);
        act->activity_type = get_str(ld, v, "activityType");
        act->status_code = get_str(ld, v, "statusCode");
        act->status = get_str(ld, v, "status");
        act->result = get_str(ld, v, "activityResult");
        act->severity = get_str(ld, v, "severity");
        act->priority = get_str(ld, v, "priority");
        act->type_label = get_str(ld, v, "type");
        act->source_name = get_str(ld, v, "sourceName");
        act->subject = get_str(ld, v, "subject");
        act->message = get_str(ld, v, "message");
        act->series_uid = get_str(ld, v, "seriesUid");
        json_t *data = json_object_get(v, "data");
        if (data && json_is_object(data)) {
            char *text = json_dumps(data, JSON_COMPACT);
            act->data_json = sim_pool_intern(fleet->pool, text);
            free(text);
        }
        if (!act->activity_type)
            fail(ld, "\"activityType\" is required");
    }
}

static void load_device(loader_t *ld, sim_org_t *org, json_t *d, size_t mark)
{
    sim_fleet_t *fleet = ld->fleet;
    int32_t org_id = org->id;
    int32_t first_location = org->n_locations ? org->locations[0].id : 0;
    sim_device_t *dev = sim_fleet_add_device(fleet);
    dev->id = ld->assign_ids ? fleet->next_device_id++ : (int32_t)get_int(ld, d, "id", 0);
    if (dev->id <= 0)
        fail(ld, "\"id\" must be a positive device id");
    dev->org_id = org_id;
    dev->uid = get_str(ld, d, "uid");
    dev->location_id = (int32_t)get_int(ld, d, "locationId", first_location);
    dev->role_id = (int32_t)get_int(ld, d, "nodeRoleId", 0);
    dev->policy_id = (int32_t)get_int(ld, d, "policyId", 0);
    dev->node_class = get_str(ld, d, "nodeClass");
    dev->approval_status = get_str(ld, d, "approvalStatus");
    dev->offline = get_bool(ld, d, "offline", false);
    dev->system_name = get_str(ld, d, "systemName");
    dev->display_name = get_str(ld, d, "displayName");
    dev->dns_name = get_str(ld, d, "dnsName");
    dev->ip_address = get_str(ld, d, "ipAddress");
    dev->mac_address = get_str(ld, d, "macAddress");
    dev->public_ip = get_str(ld, d, "publicIP");
    dev->last_user = get_str(ld, d, "lastLoggedInUser");
    dev->created_ms = get_time(ld, d, "created", "createdAgeSeconds", 0);
    dev->last_contact_ms = get_time(ld, d, "lastContact", "lastContactAgeSeconds", 0);
    json_t *os = json_object_get(d, "os");
    if (os) {
        dev->os_name = get_str(ld, os, "name");
        dev->os_manufacturer = get_str(ld, os, "manufacturer");
        dev->os_architecture = get_str(ld, os, "architecture");
        dev->os_build = get_str(ld, os, "buildNumber");
        dev->os_release = get_str(ld, os, "releaseId");
        dev->needs_reboot = get_bool(ld, os, "needsReboot", false);
    }
    json_t *sys = json_object_get(d, "system");
    if (sys) {
        dev->sys_manufacturer = get_str(ld, sys, "manufacturer");
        dev->sys_model = get_str(ld, sys, "model");
        dev->serial_number = get_str(ld, sys, "serialNumber");
        dev->domain = get_str(ld, sys, "domain");
        dev->chassis = get_str(ld, sys, "chassisType");
        dev->virtual_machine = get_bool(ld, sys, "virtualMachine", false);
    }
    json_t *arr;
    /* Row loaders take the device by pointer; it stays valid because
     * nothing appends devices until this one is done. */
    if ((arr = get_array(ld, d, "volumes")))
        load_volumes(ld, dev, arr, mark);
    if ((arr = get_array(ld, d, "antivirus")))
        load_av(ld, dev, arr, mark);
    if ((arr = get_array(ld, d, "osPatches")))
        load_os_patches(ld, dev, arr, mark);
    if ((arr = get_array(ld, d, "softwarePatches")))
        load_sw_patches(ld, dev, arr, mark);
    if ((arr = get_array(ld, d, "backupJobs")))
        load_backup_jobs(ld, dev, arr, mark);
    int32_t device_id = dev->id;
    sim_device_fill_defaults(fleet, dev, ld->now_ms);
    if ((arr = get_array(ld, d, "activities")))
        load_activities(ld, device_id, arr, mark);
}

static void load_org(loader_t *ld, json_t *o, size_t idx)
{
    sim_fleet_t *fleet = ld->fleet;
    size_t mark = (size_t)snprintf(ld->where, sizeof ld->where, "organizations[%zu]", idx);
    sim_org_t *org = sim_fleet_add_org(fleet);
    org->id = ld->assign_ids ? fleet->next_org_id++ : (int32_t)get_int(ld, o, "id", 0);
    if (org->id <= 0)
        fail(ld, "\"id\" must be a positive organization id");
    const char *region = get_str(ld, o, "region");
    org->region = region ? sim_region_parse(region, strlen(region)) : -1;
    if (org->region < 0)
        fail(ld, "\"region\" must be one of us, us2, eu, ca, oc");
    org->name = get_str(ld, o, "name");
    if (!org->name)
        fail(ld, "\"name\" is required");
    org->description = get_str(ld, o, "description");
    org->approval_mode = get_str(ld, o, "nodeApprovalMode");
    if (!org->approval_mode)
        org->approval_mode = sim_pool_intern(fleet->pool, "AUTOMATIC");
    json_t *locs = get_array(ld, o, "locations");
    if (locs) {
        org->n_locations = (uint32_t)json_array_size(locs);
        org->locations = sim_pool_alloc(fleet->pool, sizeof *org->locations * org->n_locations);
        size_t i;
        json_t *l;
        json_array_foreach(locs, i, l) {
            enter(ld, mark, ".locations[%zu]", i);
            org->locations[i].id = ld->assign_ids ? fleet->next_location_id++
                                                  : (int32_t)get_int(ld, l, "id", 0);
            org->locations[i].name = get_str(ld, l, "name");
            org->locations[i].address = get_str(ld, l, "address");
            org->locations[i].description = get_str(ld, l, "description");
        }
    }
    json_t *devices = get_array(ld, o, "devices");
    size_t org_index = (size_t)(org - fleet->orgs);
    if (devices) {
        size_t i;
        json_t *d;
        json_array_foreach(devices, i, d) {
            if (ld->failed)
                return;
            size_t dmark = mark + (size_t)snprintf(ld->where + mark, sizeof ld->where - mark,
                                                   ".devices[%zu]", i);
            load_device(ld, &fleet->orgs[org_index], d, dmark);
        }
    }
}

sim_fleet_t *sim_fleet_load(const char *path, uint64_t seed, int64_t now_ms,
                            int64_t *pinned_ms, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    *pinned_ms = 0;
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    char msg[400] = "";
    loader_t ld = {.err = msg, .errlen = sizeof msg};
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: top level must be an object", path);
        json_decref(root);
        return NULL;
    }
    json_t *seed_v = json_object_get(root, "seed");
    if (json_is_integer(seed_v))
        seed = (uint64_t)json_integer_value(seed_v);
    ld.fleet = sim_fleet_new(seed);
    json_t *now_v = json_object_get(root, "now");
    if (json_is_number(now_v))
        *pinned_ms = (int64_t)(json_number_value(now_v) * 1000.0 + 0.5);
    ld.now_ms = now_ms ? now_ms : *pinned_ms ? *pinned_ms : sim_wall_ms();
    ld.fleet->loaded_now_ms = ld.now_ms;

    json_t *clients = get_array(&ld, root, "clients");
    if (clients)
        load_clients(&ld, clients);
    json_t *orgs = json_object_get(root, "organizations");
    if (!orgs)
        orgs = json_object_get(root, "orgs");
    if (orgs && !json_is_array(orgs))
        fail(&ld, "\"organizations\" must be an array");
    size_t i;
    json_t *o;
    if (orgs && !ld.failed)
        json_array_foreach(orgs, i, o) {
            load_org(&ld, o, i);
            if (ld.failed)
                break;
        }
    json_decref(root);
    if (!ld.failed) {
        ld.where[0] = '\0';
        sim_fleet_number_activities(ld.fleet);
        if (sim_fleet_finish(ld.fleet, msg, sizeof msg) != 0)
            ld.failed = true;
    }
    if (ld.failed) {
        snprintf(err, errlen, "%s: %s", path, msg);
        sim_fleet_free(ld.fleet);
        return NULL;
    }
    return ld.fleet;
}

typedef struct class_profile {
    const char *node_class;
    const char *os_name;
    const char *os_manufacturer;
    const char *build;
    const char *release;
    const char *sys_manufacturer;
    const char *model;
    const char *chassis;
    const char *cpu;
    int cores;
    int64_t memory;
    int32_t role_id;
    const char *suffix; /* systemName infix */
} class_profile_t;

static const class_profile_t profiles[] = {
    {"WINDOWS_WORKSTATION", "Windows 11 Professional Edition", "Microsoft Corporation", "22631",
     "23H2", "Dell Inc.", "Latitude 5440", "LAPTOP", "13th Gen Intel(R) Core(TM) i5-1345U", 10,
     17179869184LL, 1001, "WS"},
    {"WINDOWS_SERVER", "Windows Server 2022 Standard Edition", "Microsoft Corporation", "20348",
     "21H2", "Dell Inc.", "PowerEdge R650", "DESKTOP", "Intel(R) Xeon(R) Gold 6342 CPU @ 2.80GHz",
     24, 68719476736LL, 1002, "SRV"},
    {"MAC", "macOS Sonoma", "Apple Inc.", "23G93", "14.6.1", "Apple Inc.", "MacBookPro18,3",
     "LAPTOP", "Apple M1 Pro", 10, 17179869184LL, 1003, "MAC"},
    {"LINUX_SERVER", "Ubuntu 22.04.4 LTS", "Canonical", "5.15.0-105", "22.04", "Supermicro",
     "SYS-1029P-WTR", "DESKTOP", "Intel(R) Xeon(R) Silver 4214R CPU @ 2.40GHz", 12,
     34359738368LL, 1004, "LNX"},
    {"LINUX_WORKSTATION", "Ubuntu 24.04 LTS", "Canonical", "6.8.0-45", "24.04", "Lenovo",
     "ThinkPad T14 Gen 4", "LAPTOP", "AMD Ryzen 7 PRO 7840U", 8, 34359738368LL, 1005, "LWS"},
};

static const class_profile_t *profile_for(const char *node_class)
{
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
        if (node_class && strcmp(profiles[i].node_class, node_class) == 0)
            return &profiles[i];
    return &profiles[0];
}

void sim_device_fill_defaults(sim_fleet_t *fleet, sim_device_t *dev, int64_t now_ms)
{
    sim_pool_t *pool = fleet->pool;
    if (!dev->node_class)
        dev->node_class = sim_pool_intern(pool, "WINDOWS_WORKSTATION");
    const class_profile_t *p = profile_for(dev->node_class);
    char tmp[96];
    if (!dev->approval_status)
        dev->approval_status = sim_pool_intern(pool, "APPROVED");
    if (!dev->device_type)
        dev->device_type = sim_pool_intern(pool, "AgentDevice");
    if (!dev->role_id)
        dev->role_id = p->role_id;
    if (!dev->system_name) {
        snprintf(tmp, sizeof tmp, "%s-%d", p->suffix, dev->id);
        dev->system_name = sim_pool_strdup(pool, tmp);
    }
    if (!dev->dns_name) {
        snprintf(tmp, sizeof tmp, "%s.corp.local", dev->system_name);
        for (char *c = tmp; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        dev->dns_name = sim_pool_strdup(pool, tmp);
    }
    if (!dev->ip_address) {
        snprintf(tmp, sizeof tmp, "10.%d.%d.%d", (dev->org_id >> 8) & 255, dev->org_id & 255,
                 (dev->id % 250) + 2);
        dev->ip_address = sim_pool_strdup(pool, tmp);
    }
    if (!dev->mac_address) {
        snprintf(tmp, sizeof tmp, "00:50:56:%02X:%02X:%02X", (dev->id >> 16) & 255,
                 (dev->id >> 8) & 255, dev->id & 255);
        dev->mac_address = sim_pool_strdup(pool, tmp);
    }
    if (!dev->os_name)
        dev->os_name = p->os_name;
    if (!dev->os_manufacturer)
        dev->os_manufacturer = p->os_manufacturer;
    if (!dev->os_architecture)
        dev->os_architecture = strcmp(p->node_class, "MAC") == 0 ? "ARM 64-bit Processor" : "64-bit";
    if (!dev->os_build)
        dev->os_build = p->build;
    if (!dev->os_release)
        dev->os_release = p->release;
    if (!dev->sys_manufacturer)
        dev->sys_manufacturer = p->sys_manufacturer;
    if (!dev->sys_model)
        dev->sys_model = p->model;
    if (!dev->chassis)
        dev->chassis = p->chassis;
    if (!dev->cpu_name)
        dev->cpu_name = p->cpu;
    if (!dev->cores) {
        dev->cores = p->cores;
        dev->logical_cores = p->cores * 2;
    }
    if (!dev->memory_bytes)
        dev->memory_bytes = p->memory;
    if (!dev->serial_number) {
        uint64_t h = sim_mix64(fleet->seed ^ ((uint64_t)dev->id * 0x9e3779b97f4a7c15ULL));
        static const char alphabet[] = "0123456789BCDFGHJKLMNPQRSTVWXYZ";
        for (int i = 0; i < 7; i++) {
            tmp[i] = alphabet[h % 31];
            h /= 31;
        }
        tmp[7] = '\0';
        dev->serial_number = sim_pool_strdup(pool, tmp);
    }
    if (!dev->created_ms)
        dev->created_ms = now_ms - (int64_t)(400 + dev->id % 300) * 86400000LL;
    if (!dev->last_contact_ms)
        dev->last_contact_ms = dev->offline ? now_ms - 3 * 86400000LL : now_ms - 60000;
    if (!dev->last_update_ms)
        dev->last_update_ms = dev->last_contact_ms;
    if (!dev->last_boot_ms)
        dev->last_boot_ms = now_ms - (int64_t)(1 + dev->id % 20) * 86400000LL;
}

/* Control path: append, then renumber and re-index; on error roll the
 * arrays back (strings already interned stay in the pool). */
static int32_t add_json(sim_fleet_t *fleet, json_t *org_json, int32_t org_id, json_t *dev_json,
                        int64_t now_ms, char *err, size_t errlen)
{
    loader_t ld = {.fleet = fleet, .now_ms = now_ms, .err = err, .errlen = errlen,
                   .assign_ids = true};
    size_t n_orgs = fleet->n_orgs, n_devices = fleet->n_devices, n_acts = fleet->n_activities;
    int32_t next_org = fleet->next_org_id, next_dev = fleet->next_device_id;
    int32_t next_loc = fleet->next_location_id;
    int32_t id = 0;
    if (!json_is_object(org_json ? org_json : dev_json)) {
        snprintf(err, errlen, "%s must be a JSON object", org_json ? "org" : "device");
        return -1;
    }
    if (org_json) {
        load_org(&ld, org_json, 0);
        id = fleet->orgs[n_orgs].id;
    } else {
        sim_org_t *org = sim_fleet_find_org(fleet, org_id);
        if (!org) {
            snprintf(err, errlen, "no organization %d", org_id);
            return -1;
        }
        snprintf(ld.where, sizeof ld.where, "device");
        load_device(&ld, org, dev_json, strlen(ld.where));
        id = fleet->devices[n_devices].id;
    }
    if (!ld.failed) {
        sim_fleet_number_activities(fleet);
        if (sim_fleet_finish(fleet, err, errlen) == 0)
            return id;
    }
    for (size_t i = n_orgs; i < fleet->n_orgs; i++)
        sim_org_free_index(&fleet->orgs[i]);
    fleet->n_orgs = n_orgs;
    fleet->n_devices = n_devices;
    fleet->n_activities = n_acts;
    fleet->next_org_id = next_org;
    fleet->next_device_id = next_dev;
    fleet->next_location_id = next_loc;
    char ignored[64];
    sim_fleet_finish(fleet, ignored, sizeof ignored);
    return -1;
}

int32_t sim_fleet_add_org_json(sim_fleet_t *fleet, json_t *org, int64_t now_ms, char *err,
                               size_t errlen)
{
    return add_json(fleet, org, 0, NULL, now_ms, err, errlen);
}

int32_t sim_fleet_add_device_json(sim_fleet_t *fleet, int32_t org_id, json_t *device,
                                  int64_t now_ms, char *err, size_t errlen)
{
    return add_json(fleet, NULL, org_id, device, now_ms, err, errlen);
}
