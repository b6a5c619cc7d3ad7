#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "endpoints.h"
#include "query.h"

/* Slots after df/ts: sf (status filter), ptf (plan type filter),
 * include (active|deleted|all), stf (start time filter). */
enum { ARG_SF = SIM_QARG_FIRST_OWN, ARG_PTF, ARG_INCLUDE, ARG_STF };

static uint32_t job_count(const sim_device_t *dev) { return dev->n_backup_jobs; }

/* stf: "startTime after <time>", "startTime before <time>" or
 * "startTime between(<from>,<to>)". */
static int parse_stf(const char *stf, int64_t *from, int64_t *to)
{
    *from = INT64_MIN;
    *to = INT64_MAX;
    if (!stf || !*stf)
        return 0;
    const char *p = strstr(stf, "after");
    char a[64] = "", b[64] = "";
    if (p && sscanf(p + 5, " %63s", a) == 1)
        return sim_parse_time(a, from);
    p = strstr(stf, "before");
    if (p && sscanf(p + 6, " %63s", a) == 1)
        return sim_parse_time(a, to);
    p = strstr(stf, "between");
    if (p && sscanf(p + 7, " ( %63[^, ] , %63[^) ] )", a, b) == 2)
        return sim_parse_time(a, from) == 0 && sim_parse_time(b, to) == 0 ? 0 : -1;
    return -1;
}

static int validate(const char *const *args, char *err, size_t errlen)
{
    int64_t from, to;
    if (parse_stf(args[ARG_STF], &from, &to) != 0) {
        snprintf(err, errlen, "Invalid start time filter '%.80s'", args[ARG_STF]);
        return -1;
    }
    const char *include = args[ARG_INCLUDE];
    if (include && strcasecmp(include, "active") != 0 && strcasecmp(include, "deleted") != 0 &&
        strcasecmp(include, "all") != 0) {
        snprintf(err, errlen, "Invalid value for parameter 'include': '%.40s'", include);
        return -1;
    }
    return 0;
}

static bool emit_job(sim_json_t *j, const sim_fleet_t *fleet, const sim_device_t *dev,
                     uint32_t row, const sim_query_rows_t *rows)
{
    const sim_backup_job_t *job = &dev->backup_jobs[row];
    const char *include = rows->args[ARG_INCLUDE];
    bool want_deleted = include && strcasecmp(include, "deleted") == 0;
    bool want_all = include && strcasecmp(include, "all") == 0;
    if (!want_all && job->deleted != want_deleted)
        return false;
    if (!sim_filter_matches(rows->args[ARG_SF], job->status) ||
        !sim_filter_matches(rows->args[ARG_PTF], job->plan_type))
        return false;
    int64_t from, to;
    parse_stf(rows->args[ARG_STF], &from, &to);
    if (job->start_ms < from || job->start_ms > to || !(!rows->has_ts || job->start_ms >= rows->ts_ms))
        return false;
    char job_id[37], plan_guid[37];
    if (job->job_id)
        snprintf(job_id, sizeof job_id, "%s", job->job_id);
    else
        sim_uuid(job_id, fleet->seed, 4, (uint64_t)dev->id, row);
    /* One plan per device and plan name. */
    uint64_t plan_hash = 0;
    for (const char *c = job->plan_name ? job->plan_name : ""; *c; c++)
        plan_hash = plan_hash * 31 + (unsigned char)*c;
    sim_uuid(plan_guid, fleet->seed, 5, (uint64_t)dev->id, plan_hash);
    sj_obj(j);
    sj_str(j, "jobId", job_id);
    sj_epoch_opt(j, "jobStartTime", job->start_ms);
    sj_epoch_opt(j, "jobEndTime", job->end_ms);
    sj_str_opt(j, "jobStatus", job->status);
    sj_str_opt(j, "destination", job->destination);
    sj_str(j, "planGuid", plan_guid);
    sj_str_opt(j, "planName", job->plan_name);
    sj_str_opt(j, "planType", job->plan_type);
    sj_i64(j, "totalActualStorageBytes", job->actual_bytes);
    sj_i64(j, "totalStoredBytes", job->stored_bytes);
    sj_i64(j, "filesUploaded", job->files_uploaded);
    sj_i64(j, "organizationId", dev->org_id);
    if (dev->location_id)
        sj_i64(j, "locationId", dev->location_id);
    sj_i64(j, "deviceId", dev->id);
    sj_end_obj(j);
    return true;
}

/* NinjaOne documents pageSize 1..10000, default 10000, for backup jobs. */
static const sim_query_def_t backup_def = {
    .endpoint = "/v2/backup/jobs",
    .arg_names = {"df", "ts", "sf", "ptf", "include", "stf"},
    .default_page_size = 10000,
    .max_page_size = 10000,
    .row_count = job_count,
    .emit_row = emit_job,
    .validate = validate,
};

void sim_ep_backup_jobs(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    sim_query_serve(sim, req, res, &backup_def);
}
