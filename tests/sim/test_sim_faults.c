/* ninjaone-sim: rate limiting, fault injection, the control API. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_client.h"

#define BOUNDARIES SIM_FIXTURES "/boundaries.json"

static sim_proc_t sim;
static char *token;

static void start_with(const char *const *extra)
{
    const char *args[32] = {"--fleet", BOUNDARIES, "--seed", "7"};
    int n = 4;
    for (int i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    cr_assert_eq(simc_start(&sim, args), 0, "simulator did not start");
    token = simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring");
    cr_assert(token);
}

static void start_default(void) { start_with(NULL); }

static void stop_clean(void)
{
    free(token);
    token = NULL;
    cr_expect_eq(simc_stop(&sim), 0, "simulator did not exit 0 on SIGTERM");
}

static long get_status(const char *path)
{
    simc_resp_t r = simc_get(&sim, path, token);
    long status = r.status;
    simc_resp_free(&r);
    return status;
}

/* ---- rate limiting ---- */

TestSuite(sim_ratelimit, .timeout = 30);

Test(sim_ratelimit, answers_429_with_retry_after_past_the_minute_limit, .fini = stop_clean)
{
    const char *extra[] = {"--rate-limit-minute", "5", NULL};
    start_with(extra);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(get_status("/eu/v2/organizations"), 200, "request %d", i + 1);
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(r.status, 429);
    int retry = atoi(r.retry_after);
    cr_expect(retry >= 1 && retry <= 60, "Retry-After '%s'", r.retry_after);
    simc_resp_free(&r);
    /* Token requests and control calls are not API budget. */
    free(simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring"));
    r = simc_get(&sim, "/_sim/stats", NULL);
    json_t *eu = json_object_get(json_object_get(r.json, "tenants"), "eu");
    cr_expect_eq(json_integer_value(json_object_get(eu, "requests")), 6);
    cr_expect_eq(json_integer_value(json_object_get(eu, "throttled")), 1);
    simc_resp_free(&r);
}

Test(sim_ratelimit, answers_an_html_page_with_status_200_in_html_mode, .fini = stop_clean)
{
    const char *extra[] = {"--rate-limit-minute", "2", "--throttle-mode", "html", NULL};
    start_with(extra);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.content_type, "text/html"), "content type %s", r.content_type);
    cr_expect(r.body && strstr(r.body, "Too Many Requests") && strstr(r.body, "rate limit"));
    cr_expect_null(r.json);
    simc_resp_free(&r);
}

Test(sim_ratelimit, counts_down_the_remaining_header_when_asked, .fini = stop_clean)
{
    const char *extra[] = {"--rate-limit-minute", "10", "--rate-limit-hour", "8", "--remaining-header", NULL};
    start_with(extra);
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_str_eq(r.remaining, "7", "the hour window (8) is the tighter one");
    simc_resp_free(&r);
    r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_str_eq(r.remaining, "6");
    simc_resp_free(&r);
}

Test(sim_ratelimit, limits_each_tenant_separately, .fini = stop_clean)
{
    const char *extra[] = {"--rate-limit-minute", "2", NULL};
    start_with(extra);
    char *us = simc_token(&sim, "us", "boundary-us-client", "boundary-us-secret", "monitoring");
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
    cr_expect_eq(get_status("/eu/v2/organizations"), 429);
    simc_resp_t r = simc_get(&sim, "/us/v2/organizations", us);
    cr_expect_eq(r.status, 200, "another tenant's budget is untouched");
    simc_resp_free(&r);
    free(us);
}

/* With the rate clock sped up 30 times a minute's window passes in 2 real
 * seconds: the third request of a 2-a-minute budget is refused, and one is
 * admitted again long before a real minute (60 s) has passed. */
Test(sim_ratelimit, a_sped_up_rate_clock_shortens_the_windows, .fini = stop_clean)
{
    const char *extra[] = {"--rate-limit-minute", "2", "--rate-limit-hour", "0", "--clock-scale", "30", NULL};
    start_with(extra);
    simc_resp_t r = simc_get(&sim, "/_sim/clock", NULL);
    cr_expect_eq(json_number_value(json_object_get(r.json, "scale")), 30.0);
    simc_resp_free(&r);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
    r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(r.status, 429);
    int retry_after = atoi(r.retry_after);
    cr_expect(retry_after >= 1 && retry_after <= 2, "Retry-After %d: real seconds of a 2 s minute", retry_after);
    simc_resp_free(&r);
    int status = 429;
    double waited = 0;
    while (status == 429 && waited < 30.0) {
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
        status = get_status("/eu/v2/organizations");
        clock_gettime(CLOCK_MONOTONIC, &b);
        waited = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    }
    cr_expect_eq(status, 200);
    cr_expect_lt(waited, 30.0, "admitted again after %.1f s", waited);
}

Test(sim_ratelimit, sets_the_rate_clock_scale_by_control, .fini = stop_clean)
{
    const char *extra[] = {NULL};
    start_with(extra);
    simc_resp_t r = simc_request(&sim, "POST", "/_sim/clock", "application/json", "{\"scale\":2.5}", NULL);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(json_number_value(json_object_get(r.json, "scale")), 2.5);
    simc_resp_free(&r);
    r = simc_request(&sim, "POST", "/_sim/clock", "application/json", "{\"scale\":0}", NULL);
    cr_expect_eq(r.status, 400);
    simc_resp_free(&r);
}

/* ---- faults ---- */

TestSuite(sim_faults, .init = start_default, .fini = stop_clean, .timeout = 30);

Test(sim_faults, answers_500_failure_on_the_nth_request)
{
    cr_assert_eq(simc_control(&sim, "faults", "{\"endpoint\":\"/v2/organizations\",\"kind\":\"http500\",\"nth\":3}"), 200);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
    cr_expect_eq(get_status("/eu/v2/devices"), 200, "other endpoints do not count");
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
    simc_resp_t r = simc_get(&sim, "/eu/api/v2/organizations", token);
    cr_expect_eq(r.status, 500);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "resultCode")), "FAILURE");
    cr_expect(json_string_value(json_object_get(r.json, "incidentId")));
    simc_resp_free(&r);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200, "nth fires once by default");
}

Test(sim_faults, delays_a_slow_response_by_delay_ms)
{
    simc_control(&sim, "faults", "{\"endpoint\":\"/v2/organizations\",\"kind\":\"slow\",\"delayMs\":400}");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1000.0 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    cr_expect_geq(ms, 400.0, "answered after %.0f ms", ms);
}

Test(sim_faults, drops_the_connection_mid_body)
{
    simc_control(&sim, "faults", "{\"endpoint\":\"/v2/devices-detailed\",\"kind\":\"drop\"}");
    simc_resp_t r = simc_get(&sim, "/eu/v2/devices-detailed", token);
    cr_expect_neq(r.curl_code, CURLE_OK, "a dropped body must be a transfer error");
    cr_expect_gt(r.len, 0, "part of the body arrives first");
    simc_resp_free(&r);
    cr_expect_eq(get_status("/eu/v2/devices-detailed"), 200);
}

Test(sim_faults, truncates_or_malforms_the_json_body)
{
    const char *kinds[] = {"truncate", "malformed"};
    for (int i = 0; i < 2; i++) {
        char rule[128];
        snprintf(rule, sizeof rule, "{\"endpoint\":\"/v2/queries/volumes\",\"kind\":\"%s\"}", kinds[i]);
        simc_control(&sim, "faults", rule);
        simc_resp_t r = simc_get(&sim, "/eu/v2/queries/volumes", token);
        cr_expect_eq(r.curl_code, CURLE_OK);
        cr_expect_eq(r.status, 200);
        cr_expect_gt(r.len, 0);
        cr_expect_null(r.json, "%s body parsed as JSON", kinds[i]);
        simc_resp_free(&r);
    }
}

Test(sim_faults, revokes_the_token_early)
{
    simc_control(&sim, "faults", "{\"endpoint\":\"/v2/devices\",\"kind\":\"revoke_token\",\"nth\":2}");
    cr_expect_eq(get_status("/eu/v2/devices"), 200);
    cr_expect_eq(get_status("/eu/v2/devices"), 401);
    cr_expect_eq(get_status("/eu/v2/organizations"), 401, "the token stays revoked");
    char *fresh = simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring");
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations", fresh);
    cr_expect_eq(r.status, 200, "a new token works");
    simc_resp_free(&r);
    free(fresh);
}

Test(sim_faults, expires_the_cursor_of_a_walk)
{
    simc_control(&sim, "faults", "{\"endpoint\":\"/v2/queries/antivirus-status\",\"kind\":\"cursor_expired\"}");
    simc_resp_t r = simc_get(&sim, "/eu/v2/queries/antivirus-status?pageSize=2", token);
    cr_expect_eq(r.status, 200, "the first page is served");
    char url[256];
    snprintf(url, sizeof url, "/eu/v2/queries/antivirus-status?pageSize=2&cursor=%s",
             json_string_value(json_object_get(json_object_get(r.json, "cursor"), "name")));
    simc_resp_free(&r);
    r = simc_get(&sim, url, token);
    cr_expect_eq(r.status, 400);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "resultCode")), "FAILURE");
    simc_resp_free(&r);
    int pages;
    json_t *rows = simc_walk_cursor(&sim, "/eu/v2/queries/antivirus-status", NULL, token, 2, &pages);
    cr_expect(rows, "a fresh walk succeeds");
    json_decref(rows);
}

Test(sim_faults, throttles_on_demand_with_html_or_429)
{
    simc_control(&sim, "faults", "[{\"endpoint\":\"/v2/organizations\",\"kind\":\"html_throttle\",\"nth\":1},"
                                 "{\"endpoint\":\"/v2/organizations\",\"kind\":\"http429\",\"nth\":2,\"retryAfter\":3}]");
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.content_type, "text/html"));
    simc_resp_free(&r);
    r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(r.status, 429);
    cr_expect_str_eq(r.retry_after, "3");
    simc_resp_free(&r);
}

Test(sim_faults, can_fail_the_token_endpoint)
{
    simc_control(&sim, "faults", "{\"endpoint\":\"/ws/oauth/token\",\"kind\":\"http500\"}");
    char *t = simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring");
    cr_expect_null(t);
    free(t);
    t = simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring");
    cr_expect(t);
    free(t);
}

Test(sim_faults, clears_every_rule_on_delete)
{
    simc_control(&sim, "faults", "{\"endpoint\":\"*\",\"kind\":\"http500\",\"rate\":1.0}");
    cr_expect_eq(get_status("/eu/v2/organizations"), 500);
    simc_resp_t r = simc_request(&sim, "DELETE", "/_sim/faults", NULL, NULL, NULL);
    cr_expect_eq(r.status, 200);
    simc_resp_free(&r);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
}

Test(sim_faults, refuses_an_unknown_fault_kind)
{
    cr_expect_eq(simc_control(&sim, "faults", "{\"endpoint\":\"/v2/organizations\",\"kind\":\"meteor\"}"), 400);
}

/* Status sequence of 40 requests under a 30% rate fault. */
static void rate_sequence(char out[41])
{
    simc_control(&sim, "faults", "{\"endpoint\":\"/v2/organizations\",\"kind\":\"http500\",\"rate\":0.3,\"count\":100}");
    for (int i = 0; i < 40; i++)
        out[i] = get_status("/eu/v2/organizations") == 500 ? 'x' : '.';
    out[40] = '\0';
}

Test(sim_faults, repeats_rate_faults_exactly_with_the_same_seed, .timeout = 60)
{
    char first[41], second[41];
    rate_sequence(first);
    stop_clean();
    start_default();
    rate_sequence(second);
    cr_expect_str_eq(first, second);
    cr_expect(strchr(first, 'x') && strchr(first, '.'), "30%% of 40 should mix: %s", first);
}

Test(sim_faults, stops_a_rate_fault_after_count_fires)
{
    simc_control(&sim, "faults", "{\"endpoint\":\"/v2/organizations\",\"kind\":\"http500\",\"rate\":1.0,\"count\":2}");
    cr_expect_eq(get_status("/eu/v2/organizations"), 500);
    cr_expect_eq(get_status("/eu/v2/organizations"), 500);
    cr_expect_eq(get_status("/eu/v2/organizations"), 200);
}

/* ---- control ---- */

TestSuite(sim_control, .init = start_default, .fini = stop_clean, .timeout = 30);

static json_t *device(int id)
{
    char url[160];
    snprintf(url, sizeof url, "/eu/v2/devices?df=id%%20%%3D%%20%d%%20AND%%20status%%20in%%20(APPROVED,PENDING)", id);
    simc_resp_t r = simc_get(&sim, url, token);
    json_t *row = json_incref(json_array_get(r.json, 0));
    simc_resp_free(&r);
    return row;
}

Test(sim_control, takes_a_device_offline_and_back_online)
{
    cr_assert_eq(simc_control(&sim, "fleet", "{\"op\":\"device_offline\",\"deviceId\":10100}"), 200);
    json_t *d = device(10100);
    cr_expect(json_is_true(json_object_get(d, "offline")));
    json_decref(d);
    cr_assert_eq(simc_control(&sim, "fleet", "{\"op\":\"device_online\",\"deviceId\":10100}"), 200);
    d = device(10100);
    cr_expect(json_is_false(json_object_get(d, "offline")));
    json_decref(d);
    cr_expect_eq(simc_control(&sim, "fleet", "{\"op\":\"device_offline\",\"deviceId\":1}"), 404);
}

Test(sim_control, unapproves_a_device_out_of_the_default_list)
{
    simc_control(&sim, "fleet", "{\"op\":\"device_unapprove\",\"deviceId\":10101}");
    simc_resp_t r = simc_get(&sim, "/eu/v2/devices?df=org%20%3D%20101", token);
    cr_expect_eq(json_array_size(r.json), 19);
    simc_resp_free(&r);
    json_t *d = device(10101);
    cr_expect_str_eq(json_string_value(json_object_get(d, "approvalStatus")), "PENDING");
    json_decref(d);
}

Test(sim_control, removes_a_device_everywhere)
{
    simc_control(&sim, "fleet", "{\"op\":\"device_remove\",\"deviceId\":20100}");
    json_t *d = device(20100);
    cr_expect_null(d);
    simc_resp_t r = simc_get(&sim, "/eu/v2/queries/antivirus-status?df=org%20%3D%20201", token);
    cr_expect_eq(json_array_size(json_object_get(r.json, "results")), 1);
    simc_resp_free(&r);
}

Test(sim_control, renames_an_org)
{
    simc_control(&sim, "fleet", "{\"op\":\"org_rename\",\"orgId\":101,\"name\":\"Renamed Dental\"}");
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations?pageSize=1&after=100", token);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(r.json, 0), "name")), "Renamed Dental");
    simc_resp_free(&r);
}

Test(sim_control, adds_an_org_with_devices_and_a_device)
{
    simc_resp_t r = simc_request(&sim, "POST", "/_sim/fleet", "application/json",
                                 "{\"op\":\"org_add\",\"org\":{\"region\":\"eu\",\"name\":\"Newcomer GmbH\","
                                 "\"devices\":[{\"systemName\":\"NEW-WS01\",\"volumes\":[{\"name\":\"C:\"}]},"
                                 "{\"systemName\":\"NEW-WS02\"}]}}",
                                 NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_int_t org_id = json_integer_value(json_object_get(r.json, "id"));
    cr_expect_gt(org_id, 601);
    simc_resp_free(&r);
    char body[160];
    snprintf(body, sizeof body, "{\"op\":\"device_add\",\"orgId\":%lld,\"device\":{\"nodeClass\":\"MAC\"}}", (long long)org_id);
    r = simc_request(&sim, "POST", "/_sim/fleet", "application/json", body, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    simc_resp_free(&r);
    char url[160];
    snprintf(url, sizeof url, "/eu/v2/devices-detailed?df=org%%20%%3D%%20%lld", (long long)org_id);
    r = simc_get(&sim, url, token);
    cr_expect_eq(json_array_size(r.json), 3);
    simc_resp_free(&r);
    r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(json_array_size(r.json), 23);
    simc_resp_free(&r);
}

Test(sim_control, refuses_an_unknown_op)
{
    cr_expect_eq(simc_control(&sim, "fleet", "{\"op\":\"explode\"}"), 400);
    cr_expect_eq(simc_control(&sim, "fleet", "not json"), 400);
}

Test(sim_control, counts_api_requests_per_tenant_and_endpoint_but_not_control_calls)
{
    cr_expect_eq(simc_control(&sim, "reset-stats", NULL), 200);
    get_status("/eu/v2/devices-detailed");
    get_status("/eu/api/v2/devices-detailed");
    get_status("/eu/v2/queries/volumes");
    simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
    simc_resp_free(&r);
    r = simc_get(&sim, "/_sim/stats", NULL);
    cr_expect_eq(json_integer_value(json_object_get(r.json, "requests")), 3);
    json_t *eu = json_object_get(json_object_get(r.json, "tenants"), "eu");
    cr_expect_eq(json_integer_value(json_object_get(eu, "requests")), 3);
    json_t *endpoints = json_object_get(eu, "endpoints");
    cr_expect_eq(json_integer_value(json_object_get(endpoints, "/v2/devices-detailed")), 2);
    cr_expect_eq(json_integer_value(json_object_get(endpoints, "/v2/queries/volumes")), 1);
    cr_expect_eq(json_integer_value(json_object_get(eu, "throttled")), 0);
    cr_expect_eq(json_array_size(json_object_get(r.json, "tokenScopes")), 0);
    simc_resp_free(&r);
}

Test(sim_control, answers_unknown_routes_with_the_real_404_body)
{
    simc_resp_t r = simc_get(&sim, "/eu/v2/no-such-thing", token);
    cr_expect_eq(r.status, 404);
    cr_expect_str_eq(r.body, "{\"resultCode\":\"FAILURE\",\"errorMessage\":\"HTTP 404 Not Found\"}");
    cr_expect_neq(r.request_id[0], '\0', "x-nj-request-id missing");
    simc_resp_free(&r);
    r = simc_get(&sim, "/mars/v2/organizations", token);
    cr_expect_eq(r.status, 404);
    simc_resp_free(&r);
}

Test(sim_control, moves_the_data_clock)
{
    simc_resp_t r = simc_request(&sim, "POST", "/_sim/clock", "application/json", "{\"advanceSeconds\":60}", NULL);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(json_number_value(json_object_get(r.json, "now")), 1767225660.0);
    simc_resp_free(&r);
}
