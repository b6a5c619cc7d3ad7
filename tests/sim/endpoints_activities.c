#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "df.h"
#include "endpoints.h"
#include "query.h"

/* Spec: pageSize 10..1000, default 200. Out-of-range sizes are clamped
 * rather than refused. */
enum { ACT_DEFAULT_PAGE = 200, ACT_MIN_PAGE = 10, ACT_MAX_PAGE = 1000 };

static void render_activity(sim_json_t *j, const sim_fleet_t *fleet, const sim_activity_t *a)
{
    char series[37];
    if (a->series_uid)
        snprintf(series, sizeof series, "%s", a->series_uid);
    else
        sim_uuid(series, fleet->seed, 6, (uint64_t)a->id, 0);
    sj_obj(j);
    sj_i64(j, "id", a->id);
    sj_epoch_opt(j, "activityTime", a->time_ms);
    if (a->device_id)
        sj_i64(j, "deviceId", a->device_id);
    sj_str(j, "severity", a->severity ? a->severity : "NONE");
    sj_str(j, "priority", a->priority ? a->priority : "NONE");
    sj_str(j, "seriesUid", series);
    sj_str(j, "activityType", a->activity_type);
    sj_str_opt(j, "statusCode", a->status_code);
    sj_str_opt(j, "status", a->status);
    sj_str_opt(j, "activityResult", a->result);
    sj_str_opt(j, "sourceName", a->source_name);
    sj_str_opt(j, "subject", a->subject);
    sj_str_opt(j, "message", a->message);
    sj_str_opt(j, "type", a->type_label);
    if (a->data_json) {
        sj_key(j, "data");
        sj_v_raw(j, a->data_json, strlen(a->data_json));
    }
    sj_end_obj(j);
}

static int time_arg(const sim_request_t *req, const char *name, int64_t *out, bool *has)
{
    const char *text = sim_arg(req, name);
    *has = text && *text;
    return *has ? sim_parse_time(text, out) : 0;
}

static int id_arg(const sim_request_t *req, const char *name, int64_t *out, bool *has)
{
    const char *text = sim_arg(req, name);
    *has = text && *text;
    return *has ? sim_parse_i64(text, out) : 0;
}

void sim_ep_activities(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    int page = sim_page_size(req, ACT_DEFAULT_PAGE, ACT_MIN_PAGE, ACT_MAX_PAGE);
    int64_t after_ms = 0, before_ms = 0, older = 0, newer = 0;
    bool has_after, has_before, has_older, has_newer;
    const char *bad = NULL;
    if (page < 0)
        bad = "pageSize";
    else if (time_arg(req, "after", &after_ms, &has_after) != 0)
        bad = "after";
    else if (time_arg(req, "before", &before_ms, &has_before) != 0)
        bad = "before";
    else if (id_arg(req, "olderThan", &older, &has_older) != 0)
        bad = "olderThan";
    else if (id_arg(req, "newerThan", &newer, &has_newer) != 0)
        bad = "newerThan";
    if (bad) {
        char msg[96];
        snprintf(msg, sizeof msg, "Invalid value for parameter '%s'", bad);
        sim_respond_app_error(sim, res, 400, "FAILURE", msg, true);
        return;
    }
    const char *cls = sim_arg(req, "class");
    if (cls && strcasecmp(cls, "ALL") != 0 && strcasecmp(cls, "DEVICE") != 0 &&
        strcasecmp(cls, "SYSTEM") != 0 && strcasecmp(cls, "USER") != 0) {
        sim_respond_app_error(sim, res, 400, "FAILURE", "Invalid value for parameter 'class'", true);
        return;
    }
    /* Every simulated activity is a device activity. */
    bool no_rows = cls && (strcasecmp(cls, "SYSTEM") == 0 || strcasecmp(cls, "USER") == 0);
    const char *type = sim_arg(req, "type");
    const char *status = sim_arg(req, "status");
    const char *series = sim_arg(req, "seriesUid");
    char err[256];
    sim_df_t *df = NULL;
    if (sim_df_parse(sim_arg(req, "df"), &df, err, sizeof err) != 0) {
        sim_respond_app_error(sim, res, 400, "FAILURE", err, true);
        return;
    }

    sim_buf_t rows;
    sim_buf_init(&rows, 600 * (size_t)page);
    sim_json_t j;
    sj_init(&j, &rows);
    sj_arr(&j);
    sim_fleet_t *fleet = sim->fleet;
    pthread_rwlock_rdlock(&fleet->lock);
    int64_t last_id = fleet->n_activities ? fleet->activities[fleet->n_activities - 1].id : 0;
    /* Activities are stored oldest first; start below olderThan. With
     * one org in the df only that org's index is read, newest first, and
     * the scan stops once nothing earlier can be after "after". */
    int32_t org_id = sim_df_single_org(df);
    const sim_org_t *org = org_id ? sim_fleet_find_org(fleet, org_id) : NULL;
    const uint32_t *index = org ? org->activity_index : NULL;
    size_t hi = org ? org->n_activities : fleet->n_activities;
    if (has_older) {
        size_t lo = 0;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (fleet->activities[index ? index[mid] : mid].id < older)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    int count = 0;
    if (org_id && !org)
        hi = 0; /* an org that does not exist has no activities */
    for (size_t i = hi; i-- > 0 && count < page && !no_rows;) {
        if (org && has_after && org->activity_time_max[i] <= after_ms)
            break;
        const sim_activity_t *a = &fleet->activities[index ? index[i] : i];
        if (has_newer && a->id <= newer)
            break;
        if ((has_after && a->time_ms <= after_ms) || (has_before && a->time_ms >= before_ms))
            continue;
        if (type && *type && !sim_filter_matches(type, a->activity_type))
            continue;
        if (status && *status && !sim_filter_matches(status, a->status_code))
            continue;
        if (series && *series && a->series_uid && strcmp(series, a->series_uid) != 0)
            continue;
        ptrdiff_t d = sim_fleet_find_device(fleet, a->device_id);
        if (d < 0)
            continue;
        const sim_device_t *dev = &fleet->devices[d];
        if (!sim_df_match(df, dev) || !sim_device_visible(fleet, req, dev))
            continue;
        render_activity(&j, fleet, a);
        count++;
    }
    pthread_rwlock_unlock(&fleet->lock);
    sj_end_arr(&j);
    sim_df_free(df);

    sim_buf_t b;
    sim_buf_init(&b, rows.len + 64);
    sim_json_t w;
    sj_init(&w, &b);
    sj_obj(&w);
    sj_i64(&w, "lastActivityId", last_id);
    sj_key(&w, "activities");
    sj_v_raw(&w, rows.data, rows.len);
    sj_end_obj(&w);
    sim_buf_free(&rows);
    sim_respond_buf(res, 200, &b);
}
