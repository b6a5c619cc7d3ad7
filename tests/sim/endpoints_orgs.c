#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>

#include "endpoints.h"

/* Entity lists page by "after" = last id of the previous page. */
static int parse_after(sim_t *sim, const sim_request_t *req, sim_response_t *res, int64_t *after)
{
    const char *text = sim_arg(req, "after");
    *after = 0;
    if (text && sim_parse_i64(text, after) != 0) {
        sim_respond_app_error(sim, res, 400, "FAILURE", "Invalid value for parameter 'after'", true);
        return -1;
    }
    return 0;
}

static void render_org(sim_json_t *j, const sim_org_t *org, bool detailed)
{
    sj_obj(j);
    sj_i64(j, "id", org->id);
    sj_str(j, "name", org->name);
    sj_str_opt(j, "description", org->description);
    sj_str(j, "nodeApprovalMode", org->approval_mode);
    if (detailed) {
        sj_key(j, "locations");
        sj_arr(j);
        for (uint32_t i = 0; i < org->n_locations; i++) {
            const sim_location_t *loc = &org->locations[i];
            sj_obj(j);
            sj_i64(j, "id", loc->id);
            sj_str(j, "name", loc->name);
            sj_str_opt(j, "address", loc->address);
            sj_str_opt(j, "description", loc->description);
            sj_end_obj(j);
        }
        sj_end_arr(j);
        /* Policies and settings are the same for every simulated org;
         * they exist so decoders meet the real shape. */
        static const char policies[] =
            "[{\"nodeRoleId\":1001,\"policyId\":101},{\"nodeRoleId\":1002,\"policyId\":102}]";
        sj_key(j, "policies");
        sj_v_raw(j, policies, sizeof policies - 1);
        sj_key(j, "settings");
        static const char settings[] =
            "{\"trayicon\":{\"product\":\"trayicon\",\"enabled\":true},"
            "\"splashtop\":{\"product\":\"splashtop\",\"enabled\":false},"
            "\"teamviewer\":{\"product\":\"teamviewer\",\"enabled\":false},"
            "\"backup\":{\"product\":\"backup\",\"enabled\":true},"
            "\"psa\":{\"product\":\"psa\",\"enabled\":false}}";
        sj_v_raw(j, settings, sizeof settings - 1);
    }
    sj_end_obj(j);
}

static void serve_orgs(sim_t *sim, sim_request_t *req, sim_response_t *res, bool detailed)
{
    int64_t after;
    if (parse_after(sim, req, res, &after) != 0)
        return;
    int page = sim_page_size(req, INT_MAX, 1, INT_MAX);
    if (page < 0) {
        sim_respond_app_error(sim, res, 400, "FAILURE", "Invalid value for parameter 'pageSize'", true);
        return;
    }
    sim_buf_t b;
    sim_buf_init(&b, 4096);
    sim_json_t j;
    sj_init(&j, &b);
    sj_arr(&j);
    sim_fleet_t *fleet = sim->fleet;
    pthread_rwlock_rdlock(&fleet->lock);
    int emitted = 0;
    for (size_t i = 0; i < fleet->n_orgs && emitted < page; i++) {
        const sim_org_t *org = &fleet->orgs[i];
        if (org->id <= after || !sim_client_sees_org(req->client, org))
            continue;
        render_org(&j, org, detailed);
        emitted++;
    }
    pthread_rwlock_unlock(&fleet->lock);
    sj_end_arr(&j);
    sim_respond_buf(res, 200, &b);
}

void sim_ep_organizations(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    serve_orgs(sim, req, res, false);
}

void sim_ep_organizations_detailed(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    serve_orgs(sim, req, res, true);
}
