#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "endpoints.h"
#include "query.h"

/* Query reports have no documented maximum; 10,000 is the largest page
 * any NinjaOne report is known to accept. */
enum { QUERY_DEFAULT_PAGE = 1000, QUERY_MAX_PAGE = 10000 };

static bool ts_ok(const sim_query_rows_t *rows, int64_t ts_ms)
{
    return !rows->has_ts || ts_ms >= rows->ts_ms;
}

/* ---- /v2/queries/volumes ---- */

static uint32_t volume_count(const sim_device_t *dev) { return dev->n_volumes; }

static bool include_bitlocker(const char *include)
{
    return include && strstr(include, "bl") != NULL;
}

static bool emit_volume(sim_json_t *j, const sim_fleet_t *fleet, const sim_device_t *dev,
                        uint32_t row, const sim_query_rows_t *rows)
{
    (void)fleet;
    const sim_volume_t *v = &dev->volumes[row];
    if (!ts_ok(rows, v->timestamp_ms))
        return false;
    sj_obj(j);
    sj_i64(j, "deviceId", dev->id);
    sj_str_opt(j, "name", v->name);
    sj_str_opt(j, "driveLetter", v->drive_letter);
    sj_str_opt(j, "label", v->label);
    sj_str_opt(j, "deviceType", v->device_type);
    sj_str_opt(j, "fileSystem", v->file_system);
    sj_bool(j, "autoMount", v->auto_mount);
    sj_bool(j, "compressed", v->compressed);
    sj_i64(j, "capacity", v->capacity);
    sj_i64(j, "freeSpace", v->free_space);
    sj_str_opt(j, "serialNumber", v->serial_number);
    if (v->has_bitlocker && include_bitlocker(rows->args[SIM_QARG_FIRST_OWN])) {
        sj_key(j, "bitLockerStatus");
        sj_obj(j);
        sj_str_opt(j, "conversionStatus", v->bl_conversion);
        sj_str_opt(j, "encryptionMethod", v->bl_method);
        sj_str_opt(j, "protectionStatus", v->bl_protection);
        sj_str_opt(j, "lockStatus", v->bl_lock);
        sj_bool(j, "initializedForProtection", v->bl_initialized);
        sj_end_obj(j);
    }
    sj_epoch_opt(j, "timestamp", v->timestamp_ms);
    sj_end_obj(j);
    return true;
}

static const sim_query_def_t volumes_def = {
    .endpoint = "/v2/queries/volumes",
    .arg_names = {"df", "ts", "include"},
    .default_page_size = QUERY_DEFAULT_PAGE,
    .max_page_size = QUERY_MAX_PAGE,
    .row_count = volume_count,
    .emit_row = emit_volume,
};

void sim_ep_volumes(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    sim_query_serve(sim, req, res, &volumes_def);
}

/* ---- /v2/queries/antivirus-status ---- */

static uint32_t av_count(const sim_device_t *dev) { return dev->n_av; }

static bool emit_av(sim_json_t *j, const sim_fleet_t *fleet, const sim_device_t *dev, uint32_t row,
                    const sim_query_rows_t *rows)
{
    (void)fleet;
    const sim_av_t *av = &dev->av[row];
    if (!ts_ok(rows, av->timestamp_ms) ||
        !sim_filter_matches(rows->args[SIM_QARG_FIRST_OWN], av->product_state) ||
        (rows->args[SIM_QARG_FIRST_OWN + 1] && av->product_name &&
         strcmp(rows->args[SIM_QARG_FIRST_OWN + 1], av->product_name) != 0))
        return false;
    sj_obj(j);
    sj_str_opt(j, "productName", av->product_name);
    sj_str_opt(j, "productState", av->product_state);
    sj_str_opt(j, "definitionStatus", av->definition_status);
    if (av->version)
        sj_str(j, "version", av->version); /* NinjaOne sends "" here */
    sj_i64(j, "deviceId", dev->id);
    sj_epoch_opt(j, "timestamp", av->timestamp_ms);
    sj_end_obj(j);
    return true;
}

static const sim_query_def_t av_def = {
    .endpoint = "/v2/queries/antivirus-status",
    .arg_names = {"df", "ts", "productState", "productName"},
    .default_page_size = QUERY_DEFAULT_PAGE,
    .max_page_size = QUERY_MAX_PAGE,
    .row_count = av_count,
    .emit_row = emit_av,
};

void sim_ep_antivirus_status(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    sim_query_serve(sim, req, res, &av_def);
}

/* ---- /v2/queries/os-patches ---- */

static uint32_t os_patch_count(const sim_device_t *dev) { return dev->n_os_patches; }

static bool emit_os_patch(sim_json_t *j, const sim_fleet_t *fleet, const sim_device_t *dev,
                          uint32_t row, const sim_query_rows_t *rows)
{
    const sim_os_patch_t *p = &dev->os_patches[row];
    if (!ts_ok(rows, p->timestamp_ms) ||
        !sim_filter_matches(rows->args[SIM_QARG_FIRST_OWN], p->status) ||
        !sim_filter_matches(rows->args[SIM_QARG_FIRST_OWN + 1], p->type) ||
        !sim_filter_matches(rows->args[SIM_QARG_FIRST_OWN + 2], p->severity))
        return false;
    char id[37];
    if (p->id)
        snprintf(id, sizeof id, "%s", p->id);
    else
        sim_uuid(id, fleet->seed, 2, (uint64_t)dev->id, row);
    sj_obj(j);
    sj_str(j, "id", id);
    sj_i64(j, "deviceId", dev->id);
    sj_str_opt(j, "name", p->name);
    sj_str_opt(j, "kbNumber", p->kb_number);
    sj_str_opt(j, "severity", p->severity);
    sj_str_opt(j, "status", p->status);
    sj_str_opt(j, "type", p->type);
    sj_epoch_opt(j, "installedAt", p->installed_ms);
    sj_epoch_opt(j, "timestamp", p->timestamp_ms);
    sj_end_obj(j);
    return true;
}

static const sim_query_def_t os_patches_def = {
    .endpoint = "/v2/queries/os-patches",
    .arg_names = {"df", "ts", "status", "type", "severity"},
    .default_page_size = QUERY_DEFAULT_PAGE,
    .max_page_size = QUERY_MAX_PAGE,
    .row_count = os_patch_count,
    .emit_row = emit_os_patch,
};

void sim_ep_os_patches(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    sim_query_serve(sim, req, res, &os_patches_def);
}

/* ---- /v2/queries/software-patches ---- */

static uint32_t sw_patch_count(const sim_device_t *dev) { return dev->n_sw_patches; }

static bool emit_sw_patch(sim_json_t *j, const sim_fleet_t *fleet, const sim_device_t *dev,
                          uint32_t row, const sim_query_rows_t *rows)
{
    const sim_sw_patch_t *p = &dev->sw_patches[row];
    if (!ts_ok(rows, p->timestamp_ms) ||
        !sim_filter_matches(rows->args[SIM_QARG_FIRST_OWN], p->status) ||
        !sim_filter_matches(rows->args[SIM_QARG_FIRST_OWN + 1], p->type) ||
        !sim_filter_matches(rows->args[SIM_QARG_FIRST_OWN + 2], p->impact) ||
        !sim_filter_matches(rows->args[SIM_QARG_FIRST_OWN + 3], p->product_identifier))
        return false;
    char id[37];
    if (p->id)
        snprintf(id, sizeof id, "%s", p->id);
    else
        sim_uuid(id, fleet->seed, 3, (uint64_t)dev->id, row);
    sj_obj(j);
    sj_str(j, "id", id);
    sj_i64(j, "deviceId", dev->id);
    sj_str_opt(j, "productIdentifier", p->product_identifier);
    sj_str_opt(j, "title", p->title);
    sj_str_opt(j, "impact", p->impact);
    sj_str_opt(j, "status", p->status);
    sj_str_opt(j, "type", p->type);
    sj_epoch_opt(j, "installedAt", p->installed_ms);
    sj_epoch_opt(j, "timestamp", p->timestamp_ms);
    sj_end_obj(j);
    return true;
}

static const sim_query_def_t sw_patches_def = {
    .endpoint = "/v2/queries/software-patches",
    .arg_names = {"df", "ts", "status", "type", "impact", "productIdentifier"},
    .default_page_size = QUERY_DEFAULT_PAGE,
    .max_page_size = QUERY_MAX_PAGE,
    .row_count = sw_patch_count,
    .emit_row = emit_sw_patch,
};

void sim_ep_software_patches(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    sim_query_serve(sim, req, res, &sw_patches_def);
}
