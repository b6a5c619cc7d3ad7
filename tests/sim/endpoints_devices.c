#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "df.h"
#include "endpoints.h"

bool sim_device_visible(const sim_fleet_t *fleet, const sim_request_t *req,
                        const sim_device_t *dev)
{
    if (dev->removed)
        return false;
    const sim_org_t *org = sim_fleet_find_org(fleet, dev->org_id);
    return org && sim_client_sees_org(req->client, org);
}

void sim_render_device(sim_json_t *j, const sim_fleet_t *fleet, const sim_device_t *dev,
                       bool detailed)
{
    char uid[37];
    sim_device_uid(fleet, dev, uid);
    sj_obj(j);
    sj_i64(j, "id", dev->id);
    sj_str(j, "uid", uid);
    sj_i64(j, "organizationId", dev->org_id);
    if (dev->location_id)
        sj_i64(j, "locationId", dev->location_id);
    sj_str(j, "nodeClass", dev->node_class);
    if (dev->role_id)
        sj_i64(j, "nodeRoleId", dev->role_id);
    if (dev->policy_id) {
        sj_i64(j, "rolePolicyId", dev->policy_id);
        sj_i64(j, "policyId", dev->policy_id);
    }
    sj_str(j, "approvalStatus", dev->approval_status);
    sj_bool(j, "offline", dev->offline);
    sj_str_opt(j, "displayName", dev->display_name);
    sj_str_opt(j, "systemName", dev->system_name);
    sj_str_opt(j, "dnsName", dev->dns_name);
    sj_str_opt(j, "netbiosName", dev->system_name);
    sj_epoch_opt(j, "created", dev->created_ms);
    sj_epoch_opt(j, "lastContact", dev->last_contact_ms);
    sj_epoch_opt(j, "lastUpdate", dev->last_update_ms);
    if (detailed) {
        if (dev->ip_address) {
            sj_key(j, "ipAddresses");
            sj_arr(j);
            sj_v_str(j, dev->ip_address);
            sj_end_arr(j);
        }
        if (dev->mac_address) {
            sj_key(j, "macAddresses");
            sj_arr(j);
            sj_v_str(j, dev->mac_address);
            sj_end_arr(j);
        }
        sj_str_opt(j, "publicIP", dev->public_ip);
        sj_key(j, "os");
        sj_obj(j);
        sj_str_opt(j, "manufacturer", dev->os_manufacturer);
        sj_str_opt(j, "name", dev->os_name);
        sj_str_opt(j, "architecture", dev->os_architecture);
        sj_epoch_opt(j, "lastBootTime", dev->last_boot_ms);
        sj_str_opt(j, "buildNumber", dev->os_build);
        sj_str_opt(j, "releaseId", dev->os_release);
        sj_str(j, "locale", "en-US");
        sj_str(j, "language", "English");
        sj_bool(j, "needsReboot", dev->needs_reboot);
        sj_end_obj(j);
        sj_key(j, "system");
        sj_obj(j);
        sj_str_opt(j, "name", dev->system_name);
        sj_str_opt(j, "manufacturer", dev->sys_manufacturer);
        sj_str_opt(j, "model", dev->sys_model);
        sj_str_opt(j, "biosSerialNumber", dev->serial_number);
        sj_str_opt(j, "serialNumber", dev->serial_number);
        sj_str_opt(j, "domain", dev->domain);
        sj_i64(j, "numberOfProcessors", 1);
        sj_i64(j, "totalPhysicalMemory", dev->memory_bytes);
        sj_bool(j, "virtualMachine", dev->virtual_machine);
        sj_str_opt(j, "chassisType", dev->chassis);
        sj_end_obj(j);
        sj_key(j, "memory");
        sj_obj(j);
        sj_i64(j, "capacity", dev->memory_bytes);
        sj_end_obj(j);
        sj_key(j, "processors");
        sj_arr(j);
        sj_obj(j);
        sj_str(j, "architecture", "x64");
        sj_str_opt(j, "name", dev->cpu_name);
        sj_i64(j, "numCores", dev->cores);
        sj_i64(j, "numLogicalCores", dev->logical_cores);
        sj_end_obj(j);
        sj_end_arr(j);
        sj_key(j, "volumes");
        sj_arr(j);
        for (uint32_t i = 0; i < dev->n_volumes; i++) {
            const sim_volume_t *v = &dev->volumes[i];
            sj_obj(j);
            sj_str_opt(j, "name", v->name);
            sj_str_opt(j, "label", v->label);
            sj_str_opt(j, "deviceType", v->device_type);
            sj_str_opt(j, "fileSystem", v->file_system);
            sj_bool(j, "autoMount", v->auto_mount);
            sj_bool(j, "compressed", v->compressed);
            sj_i64(j, "capacity", v->capacity);
            sj_i64(j, "freeSpace", v->free_space);
            sj_str_opt(j, "serialNumber", v->serial_number);
            sj_end_obj(j);
        }
        sj_end_arr(j);
        sj_str_opt(j, "lastLoggedInUser", dev->last_user);
        sj_str_opt(j, "deviceType", dev->device_type);
    }
    sj_end_obj(j);
}

static void serve_devices(sim_t *sim, sim_request_t *req, sim_response_t *res, bool detailed)
{
    int64_t after = 0;
    const char *after_text = sim_arg(req, "after");
    if (after_text && sim_parse_i64(after_text, &after) != 0) {
        sim_respond_app_error(sim, res, 400, "FAILURE", "Invalid value for parameter 'after'", true);
        return;
    }
    int page = sim_page_size(req, INT_MAX, 1, INT_MAX);
    if (page < 0) {
        sim_respond_app_error(sim, res, 400, "FAILURE", "Invalid value for parameter 'pageSize'", true);
        return;
    }
    sim_df_t *df = NULL;
    char err[256];
    if (sim_df_parse(sim_arg(req, "df"), &df, err, sizeof err) != 0) {
        sim_respond_app_error(sim, res, 400, "FAILURE", err, true);
        return;
    }
    bool approved_only = !sim_df_has_status(df);
    int32_t single_org = sim_df_single_org(df);

    sim_buf_t b;
    sim_buf_init(&b, detailed ? 1600 * (size_t)(page < 1000 ? page : 1000) : 4096);
    sim_json_t j;
    sj_init(&j, &b);
    sj_arr(&j);
    sim_fleet_t *fleet = sim->fleet;
    pthread_rwlock_rdlock(&fleet->lock);
    int emitted = 0;
    int32_t after_id = after > INT32_MAX ? INT32_MAX : after < 0 ? 0 : (int32_t)after;
    if (single_org) {
        /* One org: walk its own ascending index instead of the fleet. */
        const sim_org_t *org = sim_fleet_find_org(fleet, single_org);
        if (org && sim_client_sees_org(req->client, org)) {
            for (uint32_t k = 0; k < org->n_devices && emitted < page; k++) {
                const sim_device_t *dev = &fleet->devices[org->device_index[k]];
                if (dev->id <= after_id || dev->removed || !sim_df_match(df, dev))
                    continue;
                if (approved_only && strcmp(dev->approval_status, "APPROVED") != 0)
                    continue;
                sim_render_device(&j, fleet, dev, detailed);
                emitted++;
            }
        }
    } else {
        for (size_t i = sim_fleet_device_lower(fleet, after_id);
             i < fleet->n_devices && emitted < page; i++) {
            const sim_device_t *dev = &fleet->devices[i];
            if (approved_only && strcmp(dev->approval_status, "APPROVED") != 0)
                continue;
            if (!sim_df_match(df, dev) || !sim_device_visible(fleet, req, dev))
                continue;
            sim_render_device(&j, fleet, dev, detailed);
            emitted++;
        }
    }
    pthread_rwlock_unlock(&fleet->lock);
    sj_end_arr(&j);
    sim_df_free(df);
    sim_respond_buf(res, 200, &b);
}

void sim_ep_devices(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    serve_devices(sim, req, res, false);
}

void sim_ep_devices_detailed(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    serve_devices(sim, req, res, true);
}
