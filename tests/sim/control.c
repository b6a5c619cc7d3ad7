#define _POSIX_C_SOURCE 200809L
#include "control.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "faults.h"
#include "fleet_load.h"
#include "ratelimit.h"
#include "stats.h"

static void ok(sim_response_t *res, const char *key, int64_t value)
{
    sim_buf_t b;
    sim_buf_init(&b, 64);
    sim_json_t j;
    sj_init(&j, &b);
    sj_obj(&j);
    sj_bool(&j, "ok", true);
    if (key)
        sj_i64(&j, key, value);
    sj_end_obj(&j);
    sim_respond_buf(res, 200, &b);
}

static void fail(sim_response_t *res, int status, const char *message)
{
    sim_buf_t b;
    sim_buf_init(&b, 128);
    sim_json_t j;
    sj_init(&j, &b);
    sj_obj(&j);
    sj_bool(&j, "ok", false);
    sj_str(&j, "error", message);
    sj_end_obj(&j);
    sim_respond_buf(res, status, &b);
}

static json_t *parse_body(const sim_request_t *req, sim_response_t *res)
{
    json_error_t jerr;
    json_t *body = json_loadb(req->body ? req->body : "", req->body_len, 0, &jerr);
    if (!body) {
        char msg[256];
        snprintf(msg, sizeof msg, "body is not JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        fail(res, 400, msg);
    }
    return body;
}

static int32_t int_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int32_t)json_integer_value(v) : 0;
}

/* Device-state ops share the lookup. */
static void device_op(sim_fleet_t *fleet, json_t *body, const char *op, sim_response_t *res)
{
    int32_t id = int_field(body, "deviceId");
    ptrdiff_t d = sim_fleet_find_device(fleet, id);
    if (d < 0 || fleet->devices[d].removed) {
        char msg[64];
        snprintf(msg, sizeof msg, "no device %d", id);
        fail(res, 404, msg);
        return;
    }
    sim_device_t *dev = &fleet->devices[d];
    int64_t now = sim_clock_now_ms();
    if (strcmp(op, "device_offline") == 0) {
        dev->offline = true;
    } else if (strcmp(op, "device_online") == 0) {
        dev->offline = false;
        dev->last_contact_ms = dev->last_update_ms = now;
    } else if (strcmp(op, "device_unapprove") == 0) {
        dev->approval_status = sim_pool_intern(fleet->pool, "PENDING");
    } else if (strcmp(op, "device_approve") == 0) {
        dev->approval_status = sim_pool_intern(fleet->pool, "APPROVED");
    } else {
        dev->removed = true;
    }
    ok(res, "deviceId", id);
}

static void fleet_op(sim_t *sim, json_t *body, sim_response_t *res)
{
    const char *op = json_string_value(json_object_get(body, "op"));
    if (!op) {
        fail(res, 400, "\"op\" is required");
        return;
    }
    sim_fleet_t *fleet = sim->fleet;
    char err[320];
    pthread_rwlock_wrlock(&fleet->lock);
    if (strcmp(op, "device_offline") == 0 || strcmp(op, "device_online") == 0 ||
        strcmp(op, "device_unapprove") == 0 || strcmp(op, "device_approve") == 0 ||
        strcmp(op, "device_remove") == 0) {
        device_op(fleet, body, op, res);
    } else if (strcmp(op, "org_rename") == 0 || strcmp(op, "org_remove") == 0) {
        int32_t id = int_field(body, "orgId");
        sim_org_t *org = sim_fleet_find_org(fleet, id);
        const char *name = json_string_value(json_object_get(body, "name"));
        if (!org || org->removed) {
            snprintf(err, sizeof err, "no organization %d", id);
            fail(res, 404, err);
        } else if (strcmp(op, "org_rename") == 0 && !name) {
            fail(res, 400, "org_rename needs \"name\"");
        } else {
            if (strcmp(op, "org_rename") == 0)
                org->name = sim_pool_intern(fleet->pool, name);
            else
                org->removed = true;
            ok(res, "orgId", id);
        }
    } else if (strcmp(op, "org_add") == 0) {
        /* Either {"org": {fixture org}} or the org's fields inline. */
        json_t *org = json_object_get(body, "org");
        if (!org)
            org = body;
        int32_t id = sim_fleet_add_org_json(fleet, org, sim_clock_now_ms(), err, sizeof err);
        if (id < 0)
            fail(res, 400, err);
        else
            ok(res, "id", id);
    } else if (strcmp(op, "device_add") == 0) {
        json_t *dev = json_object_get(body, "device");
        if (!dev)
            dev = body;
        int32_t id = sim_fleet_add_device_json(fleet, int_field(body, "orgId"), dev,
                                               sim_clock_now_ms(), err, sizeof err);
        if (id < 0)
            fail(res, 400, err);
        else
            ok(res, "id", id);
    } else {
        snprintf(err, sizeof err, "unknown op \"%.64s\"", op);
        fail(res, 400, err);
    }
    pthread_rwlock_unlock(&fleet->lock);
}

static void clock_op(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    (void)sim;
    if (strcmp(req->method, "POST") == 0) {
        json_t *body = parse_body(req, res);
        if (!body)
            return;
        json_t *now = json_object_get(body, "now");
        json_t *advance = json_object_get(body, "advanceSeconds");
        json_t *scale = json_object_get(body, "scale");
        if (scale && !(json_is_number(scale) && json_number_value(scale) > 0 &&
                       json_number_value(scale) <= 100000)) {
            json_decref(body);
            fail(res, 400, "\"scale\": expected a number in (0, 100000]");
            return;
        }
        if (scale)
            sim_rate_clock_set_scale(json_number_value(scale));
        if (json_is_number(now))
            sim_clock_pin((int64_t)(json_number_value(now) * 1000.0 + 0.5));
        else if (now && json_is_null(now))
            sim_clock_unpin();
        else if (json_is_number(advance))
            sim_clock_pin(sim_clock_now_ms() + (int64_t)(json_number_value(advance) * 1000.0));
        else if (!scale) {
            json_decref(body);
            fail(res, 400, "give \"now\" (epoch seconds or null), \"advanceSeconds\" or \"scale\"");
            return;
        }
        json_decref(body);
    }
    sim_buf_t b;
    sim_buf_init(&b, 64);
    sim_json_t j;
    sj_init(&j, &b);
    sj_obj(&j);
    sj_key(&j, "now");
    sj_v_epoch(&j, sim_clock_now_ms());
    sj_bool(&j, "pinned", sim_clock_is_pinned());
    char scale_text[32];
    int scale_len = snprintf(scale_text, sizeof scale_text, "%g", sim_rate_clock_scale());
    sj_key(&j, "scale");
    sj_v_raw(&j, scale_text, (size_t)scale_len);
    sj_end_obj(&j);
    sim_respond_buf(res, 200, &b);
}

void sim_control(sim_t *sim, sim_request_t *req, const char *path, sim_response_t *res)
{
    const char *m = req->method;
    bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0, del = strcmp(m, "DELETE") == 0;
    if (strcmp(path, "/_sim/stats") == 0 && get) {
        sim_buf_t b;
        sim_buf_init(&b, 1024);
        sim_stats_render(sim->stats, &b);
        sim_respond_buf(res, 200, &b);
    } else if (strcmp(path, "/_sim/request-times") == 0 && get) {
        sim_buf_t b;
        sim_buf_init(&b, 1024);
        sim_stats_render_times(sim->stats, &b);
        sim_respond_buf(res, 200, &b);
    } else if (strcmp(path, "/_sim/reset-stats") == 0 && post) {
        sim_stats_reset(sim->stats);
        ok(res, NULL, 0);
    } else if (strcmp(path, "/_sim/faults") == 0 && post) {
        json_t *body = parse_body(req, res);
        if (!body)
            return;
        char err[200];
        /* One rule object, or an array of them. */
        int id = 0;
        if (json_is_array(body)) {
            size_t i;
            json_t *rule;
            json_array_foreach(body, i, rule) {
                id = sim_faults_add(sim->faults, rule, err, sizeof err);
                if (id < 0)
                    break;
            }
        } else {
            id = sim_faults_add(sim->faults, body, err, sizeof err);
        }
        json_decref(body);
        if (id < 0)
            fail(res, 400, err);
        else
            ok(res, "id", id);
    } else if (strcmp(path, "/_sim/faults") == 0 && del) {
        sim_faults_clear(sim->faults);
        ok(res, NULL, 0);
    } else if (strcmp(path, "/_sim/faults") == 0 && get) {
        sim_buf_t b;
        sim_buf_init(&b, 256);
        sim_faults_render(sim->faults, &b);
        sim_respond_buf(res, 200, &b);
    } else if (strcmp(path, "/_sim/fleet") == 0 && post) {
        json_t *body = parse_body(req, res);
        if (!body)
            return;
        fleet_op(sim, body, res);
        json_decref(body);
    } else if (strcmp(path, "/_sim/clock") == 0 && (get || post)) {
        clock_op(sim, req, res);
    } else if (strcmp(path, "/_sim/revoke-tokens") == 0 && post) {
        sim_auth_revoke_all(sim->auth);
        ok(res, NULL, 0);
    } else {
        fail(res, 404, "unknown control path or method");
    }
}
