#define _POSIX_C_SOURCE 200809L
#include "query.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "df.h"
#include "endpoints.h"

bool sim_filter_matches(const char *filter, const char *value)
{
    if (!filter || !*filter)
        return true;
    if (!value)
        return false;
    /* Skip a leading "<field> =" or "<field> in" so the same helper serves
     * status=FAILED and sf=status in (FAILED,CANCELED). */
    const char *p = filter;
    const char *eq = strchr(filter, '=');
    const char *paren = strchr(filter, '(');
    if (eq)
        p = eq + 1;
    else if (paren)
        p = paren + 1;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '(' || *p == ')')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ')' && *p != ' ')
            p++;
        size_t n = (size_t)(p - start);
        if (n && strlen(value) == n && strncasecmp(start, value, n) == 0)
            return true;
    }
    return false;
}

static void cursor_error(sim_t *sim, sim_response_t *res, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof msg, "Cursor '%.60s' has expired or does not exist", name);
    sim_respond_app_error(sim, res, 400, "FAILURE", msg, true);
}

void sim_query_serve(sim_t *sim, sim_request_t *req, sim_response_t *res,
                     const sim_query_def_t *def)
{
    int page = sim_page_size(req, def->default_page_size, 1, def->max_page_size);
    if (page < 0) {
        sim_respond_app_error(sim, res, 400, "FAILURE", "Invalid value for parameter 'pageSize'", true);
        return;
    }
    sim_cursor_t cur;
    const char *cursor_name = sim_arg(req, "cursor");
    char err[256];
    if (cursor_name && *cursor_name) {
        if (sim_cursors_get(sim->cursors, cursor_name, def->endpoint, req->client_index, &cur) != 0) {
            cursor_error(sim, res, cursor_name);
            return;
        }
        if (req->expire_cursor) {
            cur.expired = true;
            sim_cursors_save(sim->cursors, &cur);
            sim_cursor_release(&cur);
            cursor_error(sim, res, cursor_name);
            return;
        }
    } else {
        const char *args[SIM_CURSOR_ARGS] = {0};
        for (int i = 0; i < SIM_CURSOR_ARGS; i++)
            args[i] = def->arg_names[i] ? sim_arg(req, def->arg_names[i]) : NULL;
        sim_df_t *check = NULL;
        if (sim_df_parse(args[SIM_QARG_DF], &check, err, sizeof err) != 0) {
            sim_respond_app_error(sim, res, 400, "FAILURE", err, true);
            return;
        }
        sim_df_free(check);
        int64_t ts;
        if (args[SIM_QARG_TS] && sim_parse_time(args[SIM_QARG_TS], &ts) != 0) {
            sim_respond_app_error(sim, res, 400, "FAILURE", "Invalid value for parameter 'ts'", true);
            return;
        }
        if (def->validate && def->validate(args, err, sizeof err) != 0) {
            sim_respond_app_error(sim, res, 400, "FAILURE", err, true);
            return;
        }
        sim_cursors_create(sim->cursors, def->endpoint, req->client_index, args, &cur);
    }

    sim_df_t *df = NULL;
    sim_df_parse(cur.args[SIM_QARG_DF], &df, err, sizeof err); /* checked at creation */
    sim_query_rows_t rows = {.args = cur.args};
    if (cur.args[SIM_QARG_TS] && sim_parse_time(cur.args[SIM_QARG_TS], &rows.ts_ms) == 0)
        rows.has_ts = true;

    sim_buf_t results;
    sim_buf_init(&results, 512 * (size_t)(page < 1000 ? page : 1000));
    sim_json_t j;
    sj_init(&j, &results);
    sj_arr(&j);
    int count = 0;
    sim_fleet_t *fleet = sim->fleet;
    pthread_rwlock_rdlock(&fleet->lock);
    int32_t single_org = sim_df_single_org(df);
    const sim_org_t *org = single_org ? sim_fleet_find_org(fleet, single_org) : NULL;
    size_t n_positions = single_org ? (org ? org->n_devices : 0) : fleet->n_devices;
    size_t pos = cur.device_pos;
    uint32_t row = cur.row_pos;
    for (; pos < n_positions && count < page; pos++, row = 0) {
        const sim_device_t *dev =
            single_org ? &fleet->devices[org->device_index[pos]] : &fleet->devices[pos];
        uint32_t n_rows = def->row_count(dev);
        if (row >= n_rows || !sim_df_match(df, dev) || !sim_device_visible(fleet, req, dev))
            continue;
        for (; row < n_rows && count < page; row++)
            if (def->emit_row(&j, fleet, dev, row, &rows))
                count++;
        if (count == page)
            break; /* resume at (pos, row) */
    }
    pthread_rwlock_unlock(&fleet->lock);
    sj_end_arr(&j);
    sim_df_free(df);

    int64_t now_mono = sim_monotonic_ms();
    int64_t expires_ms = sim_clock_now_ms() + (cur.expires_mono_ms - now_mono);
    sim_buf_t b;
    sim_buf_init(&b, results.len + 200);
    sim_json_t w;
    sj_init(&w, &b);
    sj_obj(&w);
    sj_key(&w, "cursor");
    sj_obj(&w);
    sj_str(&w, "name", cur.name);
    sj_i64(&w, "offset", cur.offset);
    sj_i64(&w, "count", count);
    sj_key(&w, "expires");
    sj_v_epoch(&w, expires_ms - expires_ms % 1000);
    sj_end_obj(&w);
    sj_key(&w, "results");
    sj_v_raw(&w, results.data, results.len);
    sj_end_obj(&w);
    sim_buf_free(&results);

    cur.device_pos = pos;
    cur.row_pos = row;
    cur.offset += count;
    if (req->expire_cursor)
        cur.expired = true; /* first page served; the next one fails */
    sim_cursors_save(sim->cursors, &cur);
    sim_cursor_release(&cur);
    sim_respond_buf(res, 200, &b);
}
