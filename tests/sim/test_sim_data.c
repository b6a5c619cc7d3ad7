/* ninjaone-sim: pagination, the device filter, and fixture round trips. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_client.h"

#define BOUNDARIES SIM_FIXTURES "/boundaries.json"
#define DEMO SIM_FIXTURES "/demo.json"

static sim_proc_t sim;
static char *token;

/* A generated fleet big enough that page size 7 leaves a remainder and
 * with pending devices, several regions and every row kind. */
static void start_generated(void)
{
    const char *args[] = {"--generate", "--seed", "42", "--orgs", "23", "--devices-per-org", "3-60",
                          "--regions", "eu,us", "--pending-rate", "0.1", "--patch-backlog", "2",
                          "--rate-limit-minute", "0", "--rate-limit-hour", "0", NULL};
    cr_assert_eq(simc_start(&sim, args), 0, "simulator did not start");
    token = simc_token(&sim, "eu", "sim-eu-client", "sim-eu-secret", "monitoring");
    cr_assert(token);
}

static void start_boundaries(void)
{
    const char *args[] = {"--fleet", BOUNDARIES, "--rate-limit-minute", "0", "--rate-limit-hour", "0", NULL};
    cr_assert_eq(simc_start(&sim, args), 0, "simulator did not start");
    token = simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring");
    cr_assert(token);
}

static void stop_clean(void)
{
    free(token);
    token = NULL;
    cr_expect_eq(simc_stop(&sim), 0, "simulator did not exit 0 on SIGTERM");
}

/* Every element of rows has a distinct value of key (integer or string)
 * and rows has the same elements as want, in the same order. */
static void expect_same_rows(json_t *rows, json_t *want, const char *what, int page_size)
{
    cr_assert(rows, "%s walk at page size %d failed", what, page_size);
    cr_expect_eq(json_array_size(rows), json_array_size(want), "%s at page size %d: %zu rows, want %zu",
                 what, page_size, json_array_size(rows), json_array_size(want));
    cr_expect(json_equal(rows, want), "%s at page size %d differs from the single-page answer", what,
              page_size);
}

static json_t *single_page(const char *path, const char *key)
{
    simc_resp_t r = simc_get(&sim, path, token);
    cr_assert_eq(r.status, 200, "GET %s -> %ld", path, r.status);
    json_t *rows = key ? json_incref(json_object_get(r.json, key)) : json_incref(r.json);
    simc_resp_free(&r);
    return rows;
}

static void expect_unique_ids(json_t *rows, const char *key)
{
    size_t n = json_array_size(rows);
    for (size_t i = 1; i < n; i++) {
        json_int_t prev = json_integer_value(json_object_get(json_array_get(rows, i - 1), key));
        json_int_t cur = json_integer_value(json_object_get(json_array_get(rows, i), key));
        cr_expect_lt(prev, cur, "ids not strictly ascending at %zu", i);
    }
}

TestSuite(sim_paging, .init = start_generated, .fini = stop_clean, .timeout = 60);

static void check_devices_at(int page_size)
{
    json_t *want = single_page("/eu/v2/devices-detailed?pageSize=100000", NULL);
    cr_assert_gt(json_array_size(want), 50);
    expect_unique_ids(want, "id");
    int pages = 0;
    json_t *rows = simc_walk_entities(&sim, "/eu/v2/devices-detailed", NULL, token, page_size, &pages);
    expect_same_rows(rows, want, "devices-detailed", page_size);
    cr_expect_eq(pages, (int)(json_array_size(want) / (size_t)page_size) + 1);
    json_decref(rows);
    json_decref(want);
}

Test(sim_paging, returns_every_device_once_at_page_size_1) { check_devices_at(1); }
Test(sim_paging, returns_every_device_once_at_page_size_7) { check_devices_at(7); }
Test(sim_paging, returns_every_device_once_at_page_size_1000) { check_devices_at(1000); }

Test(sim_paging, returns_every_org_once_at_page_sizes_1_7_1000)
{
    const char *paths[] = {"/eu/v2/organizations", "/eu/v2/organizations-detailed"};
    for (size_t k = 0; k < 2; k++) {
        char url[128];
        snprintf(url, sizeof url, "%s?pageSize=100000", paths[k]);
        json_t *want = single_page(url, NULL);
        cr_expect_eq(json_array_size(want), 12, "23 orgs over eu,us: 12 in eu");
        int sizes[] = {1, 7, 1000};
        for (int i = 0; i < 3; i++) {
            int pages;
            json_t *rows = simc_walk_entities(&sim, paths[k], NULL, token, sizes[i], &pages);
            expect_same_rows(rows, want, paths[k], sizes[i]);
            json_decref(rows);
        }
        json_decref(want);
    }
}

Test(sim_paging, walks_every_query_row_once_through_the_cursor_at_page_sizes_1_7_1000)
{
    const struct { const char *path; const char *query; } reports[] = {
        {"/eu/v2/queries/volumes", "include=bl"},
        {"/eu/v2/queries/antivirus-status", NULL},
        {"/eu/v2/queries/os-patches", NULL},
        {"/eu/v2/queries/software-patches", NULL},
        {"/eu/v2/backup/jobs", NULL},
    };
    for (size_t k = 0; k < sizeof reports / sizeof reports[0]; k++) {
        char url[256];
        snprintf(url, sizeof url, "%s?pageSize=10000%s%s", reports[k].path,
                 reports[k].query ? "&" : "", reports[k].query ? reports[k].query : "");
        json_t *want = single_page(url, "results");
        cr_expect_gt(json_array_size(want), 7, "%s has too few rows to test paging", reports[k].path);
        int sizes[] = {1, 7, 1000};
        for (int i = 0; i < 3; i++) {
            int pages;
            json_t *rows = simc_walk_cursor(&sim, reports[k].path, reports[k].query, token, sizes[i], &pages);
            expect_same_rows(rows, want, reports[k].path, sizes[i]);
            json_decref(rows);
        }
        json_decref(want);
    }
}

Test(sim_paging, returns_every_activity_once_newest_first_at_page_sizes_1_7_1000)
{
    json_t *want = single_page("/eu/v2/activities?pageSize=1000", "activities");
    size_t n = json_array_size(want);
    cr_assert_gt(n, 20);
    cr_assert_lt(n, 1000, "fleet too big for a single reference page");
    for (size_t i = 1; i < n; i++)
        cr_expect_gt(json_integer_value(json_object_get(json_array_get(want, i - 1), "id")),
                     json_integer_value(json_object_get(json_array_get(want, i), "id")),
                     "activities not newest first at %zu", i);
    int sizes[] = {1, 7, 1000};
    for (int i = 0; i < 3; i++) {
        int pages;
        json_t *rows = simc_walk_activities(&sim, "/eu/v2/activities", NULL, token, sizes[i], &pages);
        expect_same_rows(rows, want, "activities", sizes[i]);
        json_decref(rows);
    }
    json_decref(want);
}

Test(sim_paging, keeps_the_cursor_name_while_the_offset_advances)
{
    simc_resp_t a = simc_get(&sim, "/eu/v2/queries/volumes?pageSize=5", token);
    const char *name = json_string_value(json_object_get(json_object_get(a.json, "cursor"), "name"));
    cr_assert(name);
    char url[256];
    snprintf(url, sizeof url, "/eu/v2/queries/volumes?pageSize=5&cursor=%s", name);
    simc_resp_t b = simc_get(&sim, url, token);
    json_t *cur = json_object_get(b.json, "cursor");
    cr_expect_str_eq(json_string_value(json_object_get(cur, "name")), name);
    cr_expect_eq(json_integer_value(json_object_get(cur, "offset")), 5);
    cr_expect_eq(json_integer_value(json_object_get(cur, "count")), 5);
    cr_expect(json_is_real(json_object_get(cur, "expires")));
    simc_resp_free(&a);
    simc_resp_free(&b);
}

Test(sim_paging, filters_activities_by_type_and_after)
{
    json_t *all = single_page("/eu/v2/activities?pageSize=1000", "activities");
    json_t *backup = single_page("/eu/v2/activities?pageSize=1000&type=NINJA_BACKUP", "activities");
    size_t want = 0;
    for (size_t i = 0; i < json_array_size(all); i++)
        want += strcmp(json_string_value(json_object_get(json_array_get(all, i), "activityType")),
                       "NINJA_BACKUP") == 0;
    cr_expect_eq(json_array_size(backup), want);
    cr_expect_lt(json_array_size(backup), json_array_size(all), "generated fleet has patch activities too");
    /* after = the middle activity's time keeps only newer rows. */
    json_t *mid = json_array_get(all, json_array_size(all) / 2);
    char url[160];
    snprintf(url, sizeof url, "/eu/v2/activities?pageSize=1000&after=%.3f",
             json_number_value(json_object_get(mid, "activityTime")));
    json_t *recent = single_page(url, "activities");
    for (size_t i = 0; i < json_array_size(recent); i++)
        cr_expect_gt(json_number_value(json_object_get(json_array_get(recent, i), "activityTime")),
                     json_number_value(json_object_get(mid, "activityTime")));
    cr_expect_lt(json_array_size(recent), json_array_size(all));
    json_decref(all);
    json_decref(backup);
    json_decref(recent);
}

/* One org's activities come from its index; a df naming two orgs still
 * scans the fleet. Both must give the same rows, with and without a time
 * bound, whole and paged. */
Test(sim_paging, one_orgs_activities_from_the_index_match_the_full_scan)
{
    json_t *orgs = single_page("/eu/v2/organizations?pageSize=1000", NULL);
    json_t *all = single_page("/eu/v2/activities?pageSize=1000", "activities");
    cr_assert_gt(json_array_size(orgs), 3);
    json_t *mid = json_array_get(all, json_array_size(all) / 2);
    double mid_time = json_number_value(json_object_get(mid, "activityTime"));
    size_t total = 0;
    for (size_t i = 0; i < json_array_size(orgs); i++) {
        long long org = json_integer_value(json_object_get(json_array_get(orgs, i), "id"));
        for (int bounded = 0; bounded < 2; bounded++) {
            char after[48] = "", one[256], two[256];
            if (bounded)
                snprintf(after, sizeof after, "&after=%.3f", mid_time);
            snprintf(one, sizeof one, "/eu/v2/activities?pageSize=1000&df=org%%20%%3D%%20%lld%s", org,
                     after);
            snprintf(two, sizeof two,
                     "/eu/v2/activities?pageSize=1000&df=org%%20in%%20(%lld,999999)%s", org, after);
            json_t *indexed = single_page(one, "activities");
            json_t *scanned = single_page(two, "activities");
            expect_same_rows(indexed, scanned, one, 1000);
            total += bounded ? 0 : json_array_size(indexed);
            json_decref(indexed);
            json_decref(scanned);
        }
        char df[64];
        snprintf(df, sizeof df, "df=org%%20%%3D%%20%lld", org);
        int pages;
        json_t *paged = simc_walk_activities(&sim, "/eu/v2/activities", df, token, 7, &pages);
        char one[160];
        snprintf(one, sizeof one, "/eu/v2/activities?pageSize=1000&df=org%%20in%%20(%lld,999999)", org);
        json_t *scanned = single_page(one, "activities");
        expect_same_rows(paged, scanned, "one org's activities paged", 7);
        json_decref(paged);
        json_decref(scanned);
    }
    cr_expect_eq(total, json_array_size(all), "every activity belongs to one org");
    json_decref(orgs);
    json_decref(all);
}

/* Every API and token request is stamped; the busiest minute is counted. */
Test(sim_paging, stamps_each_request_and_reports_the_busiest_minute)
{
    cr_assert_eq(simc_control(&sim, "reset-stats", "{}"), 200);
    for (int i = 0; i < 5; i++) {
        json_t *rows = single_page("/eu/v2/organizations?pageSize=10", NULL);
        json_decref(rows);
    }
    free(simc_token(&sim, "eu", "sim-eu-client", "sim-eu-secret", "monitoring"));
    simc_resp_t r = simc_get(&sim, "/_sim/request-times", NULL);
    json_t *times = json_object_get(r.json, "eu");
    cr_assert_eq(json_array_size(times), 6, "%s", r.body);
    for (size_t i = 1; i < 6; i++)
        cr_expect_geq(json_integer_value(json_array_get(times, i)),
                      json_integer_value(json_array_get(times, i - 1)));
    simc_resp_free(&r);
    r = simc_get(&sim, "/_sim/stats", NULL);
    json_t *eu = json_object_get(json_object_get(r.json, "tenants"), "eu");
    cr_expect_eq(json_integer_value(json_object_get(eu, "peakPerMinute")), 6);
    cr_expect_eq(json_integer_value(json_object_get(eu, "peakPerHour")), 6);
    cr_expect(json_is_integer(json_object_get(r.json, "cpuMs")));
    simc_resp_free(&r);
}

Test(sim_paging, lists_only_approved_devices_unless_df_names_a_status)
{
    json_t *listed = single_page("/eu/v2/devices?pageSize=100000", NULL);
    for (size_t i = 0; i < json_array_size(listed); i++)
        cr_expect_str_eq(json_string_value(json_object_get(json_array_get(listed, i), "approvalStatus")), "APPROVED");
    json_t *pending = single_page("/eu/v2/devices?pageSize=100000&df=status%20%3D%20PENDING", NULL);
    cr_expect_gt(json_array_size(pending), 0, "--pending-rate 0.1 made no pending device");
    for (size_t i = 0; i < json_array_size(pending); i++)
        cr_expect_str_eq(json_string_value(json_object_get(json_array_get(pending, i), "approvalStatus")), "PENDING");
    json_decref(listed);
    json_decref(pending);
}

/* ---- df ---- */

static json_t *devices_for(const char *df)
{
    char *e = simc_escape(df);
    char url[1024];
    snprintf(url, sizeof url, "/eu/v2/devices?pageSize=100000&df=%s", e);
    free(e);
    simc_resp_t r = simc_get(&sim, url, token);
    cr_expect_eq(r.status, 200, "df '%s' -> %ld %s", df, r.status, r.body ? r.body : "");
    json_t *rows = json_incref(r.json);
    simc_resp_free(&r);
    return rows;
}

TestSuite(sim_df, .init = start_boundaries, .fini = stop_clean, .timeout = 30);

Test(sim_df, accepts_every_documented_form)
{
    const char *forms[] = {
        "org = 101", "org eq 101", "organization = 101", "org != 101", "org neq 101",
        "org in (101,102)", "org in ( 101 , 102 )", "org notin (101)", "org nin (101)",
        "loc = 1010", "location in (1010,1020)", "role = 1001", "id = 10100", "id in (10100,10101)",
        "class = WINDOWS_WORKSTATION", "class in (WINDOWS_WORKSTATION,WINDOWS_SERVER)",
        "status eq APPROVED", "status = PENDING", "status != PENDING", "online", "offline",
        "org eq 101 AND online", "org = 101 and class = WINDOWS_WORKSTATION", "org = 101 && online",
        "created after 2024-01-01", "created before 20300101", "created > 2024-01-01T00:00:00Z",
        "org eq 1 AND group 2", "",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        json_decref(devices_for(forms[i]));
}

Test(sim_df, selects_exactly_the_devices_each_clause_names)
{
    json_t *rows = devices_for("org = 101");
    cr_expect_eq(json_array_size(rows), 20);
    json_decref(rows);
    rows = devices_for("org in (101,102)");
    cr_expect_eq(json_array_size(rows), 39);
    json_decref(rows);
    rows = devices_for("id in (10100,10205)");
    cr_expect_eq(json_array_size(rows), 2);
    json_decref(rows);
    rows = devices_for("org = 103 AND class = LINUX_SERVER");
    cr_expect_eq(json_array_size(rows), 1);
    json_decref(rows);
    rows = devices_for("org = 103 and class notin (LINUX_SERVER)");
    cr_expect_eq(json_array_size(rows), 5, "pending device excluded by the default APPROVED filter");
    json_decref(rows);
    rows = devices_for("org = 103 && status = PENDING");
    cr_expect_eq(json_array_size(rows), 1);
    json_decref(rows);
    rows = devices_for("org eq 501 AND offline");
    cr_expect_eq(json_array_size(rows), 2);
    json_decref(rows);
    rows = devices_for("org eq 501 AND online");
    cr_expect_eq(json_array_size(rows), 2);
    json_decref(rows);
    rows = devices_for("org eq 501 AND status != APPROVED");
    cr_expect_eq(json_array_size(rows), 1);
    json_decref(rows);
    rows = devices_for("group 2");
    cr_expect_eq(json_array_size(rows), 0, "the simulator has no saved groups");
    json_decref(rows);
}

Test(sim_df, rejects_junk_with_400_and_an_application_error)
{
    const char *junk[] = {
        "org", "org =", "org = abc", "org == 1", "org = 1 OR org = 2", "org in 1,2", "org in (1,2",
        "org in ()", "color = red", "org = 1 AND", "AND org = 1", "status = SLEEPING", "org = 1 org = 2",
        "created after yesterday", "org = 1; drop", "org = -1", "class = WINDOWS-X",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        char *e = simc_escape(junk[i]);
        char url[512];
        snprintf(url, sizeof url, "/eu/v2/devices-detailed?df=%s", e);
        free(e);
        simc_resp_t r = simc_get(&sim, url, token);
        cr_expect_eq(r.status, 400, "df '%s' was accepted (%ld)", junk[i], r.status);
        cr_expect_str_eq(json_string_value(json_object_get(r.json, "resultCode")), "FAILURE");
        cr_expect(json_string_value(json_object_get(r.json, "errorMessage")));
        cr_expect(json_string_value(json_object_get(r.json, "incidentId")));
        simc_resp_free(&r);
    }
    /* The same parser guards queries and activities. */
    simc_resp_t r = simc_get(&sim, "/eu/v2/queries/volumes?df=org%20%3D%3D%201", token);
    cr_expect_eq(r.status, 400);
    simc_resp_free(&r);
    r = simc_get(&sim, "/eu/v2/activities?df=nonsense", token);
    cr_expect_eq(r.status, 400);
    simc_resp_free(&r);
}

/* ---- fixtures ---- */

TestSuite(sim_fixtures, .init = start_boundaries, .fini = stop_clean, .timeout = 60);

static json_t *load_fixture(const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    cr_assert(root, "%s: %s", path, err.text);
    return root;
}

Test(sim_fixtures, every_boundary_org_carries_a_hand_written_expectation)
{
    json_t *root = load_fixture(BOUNDARIES);
    const char *signals[] = {"disk_encryption", "antivirus_posture", "patch_sla", "backup_activity",
                             "device_inventory"};
    json_t *orgs = json_object_get(root, "organizations");
    cr_assert_gt(json_array_size(orgs), 15);
    size_t i;
    json_t *org;
    json_array_foreach(orgs, i, org) {
        json_t *expected = json_object_get(org, "expected");
        cr_assert(json_is_object(expected), "org %zu has no expected block", i);
        for (size_t k = 0; k < 5; k++) {
            const char *s = json_string_value(json_object_get(expected, signals[k]));
            cr_expect(s && (!strcmp(s, "PASS") || !strcmp(s, "WARNING") || !strcmp(s, "FAIL")),
                      "org %zu: %s", i, signals[k]);
        }
    }
    json_decref(root);
}

Test(sim_fixtures, pins_the_data_clock_to_the_fixture_now)
{
    json_t *root = load_fixture(BOUNDARIES);
    simc_resp_t r = simc_get(&sim, "/_sim/clock", NULL);
    cr_expect_eq(json_number_value(json_object_get(r.json, "now")),
                 json_number_value(json_object_get(root, "now")));
    cr_expect(json_is_true(json_object_get(r.json, "pinned")));
    simc_resp_free(&r);
    json_decref(root);
}

/* Finds the rows of one device in a query result. */
static json_t *rows_of(json_t *rows, json_int_t device_id)
{
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
        if (json_integer_value(json_object_get(row, "deviceId")) == device_id)
            json_array_append(out, row);
    return out;
}

static double fixture_time(json_t *row, double now)
{
    return now - json_number_value(json_object_get(row, "ageSeconds"));
}

Test(sim_fixtures, boundary_rows_round_trip_field_for_field)
{
    json_t *root = load_fixture(BOUNDARIES);
    double now = json_number_value(json_object_get(root, "now"));
    int pages;
    json_t *volumes = simc_walk_cursor(&sim, "/eu/v2/queries/volumes", "include=bl", token, 1000, &pages);
    json_t *av = simc_walk_cursor(&sim, "/eu/v2/queries/antivirus-status", NULL, token, 1000, &pages);
    json_t *osp = simc_walk_cursor(&sim, "/eu/v2/queries/os-patches", NULL, token, 1000, &pages);
    json_t *swp = simc_walk_cursor(&sim, "/eu/v2/queries/software-patches", NULL, token, 1000, &pages);
    json_t *acts = simc_walk_activities(&sim, "/eu/v2/activities", NULL, token, 1000, &pages);
    json_t *devices = simc_walk_entities(&sim, "/eu/v2/devices-detailed", "df=status%20in%20(APPROVED,PENDING)", token, 1000, &pages);
    cr_assert(volumes && av && osp && swp && acts && devices);
    size_t n_devices = 0;
    size_t i, k;
    json_t *org, *dev;
    json_array_foreach(json_object_get(root, "organizations"), i, org) {
        json_array_foreach(json_object_get(org, "devices"), k, dev) {
            json_int_t id = json_integer_value(json_object_get(dev, "id"));
            n_devices++;
            /* volumes: name, type and BitLocker state */
            json_t *want = json_object_get(dev, "volumes");
            json_t *got = rows_of(volumes, id);
            cr_expect_eq(json_array_size(got), json_array_size(want), "device %lld volumes", (long long)id);
            for (size_t v = 0; v < json_array_size(want) && v < json_array_size(got); v++) {
                json_t *w = json_array_get(want, v), *g = json_array_get(got, v);
                cr_expect_str_eq(json_string_value(json_object_get(g, "name")), json_string_value(json_object_get(w, "name")));
                cr_expect_str_eq(json_string_value(json_object_get(g, "deviceType")), json_string_value(json_object_get(w, "deviceType")));
                json_t *wbl = json_object_get(w, "bitLockerStatus");
                json_t *gbl = json_object_get(g, "bitLockerStatus");
                cr_expect_eq(!wbl, !gbl, "device %lld volume %zu bitLockerStatus presence", (long long)id, v);
                if (wbl && gbl)
                    cr_expect(json_equal(wbl, gbl), "device %lld volume %zu bitLockerStatus", (long long)id, v);
            }
            json_decref(got);
            /* AV: state, definition status and the exact timestamp */
            want = json_object_get(dev, "antivirus");
            got = rows_of(av, id);
            cr_expect_eq(json_array_size(got), json_array_size(want), "device %lld AV rows", (long long)id);
            for (size_t v = 0; v < json_array_size(want) && v < json_array_size(got); v++) {
                json_t *w = json_array_get(want, v), *g = json_array_get(got, v);
                cr_expect_str_eq(json_string_value(json_object_get(g, "productState")), json_string_value(json_object_get(w, "productState")));
                cr_expect_str_eq(json_string_value(json_object_get(g, "definitionStatus")), json_string_value(json_object_get(w, "definitionStatus")));
                cr_expect_eq(json_number_value(json_object_get(g, "timestamp")), fixture_time(w, now),
                             "device %lld AV timestamp", (long long)id);
            }
            json_decref(got);
            /* patches: severity/impact and status */
            want = json_object_get(dev, "osPatches");
            got = rows_of(osp, id);
            cr_expect_eq(json_array_size(got), json_array_size(want));
            for (size_t v = 0; v < json_array_size(want) && v < json_array_size(got); v++) {
                cr_expect_str_eq(json_string_value(json_object_get(json_array_get(got, v), "severity")),
                                 json_string_value(json_object_get(json_array_get(want, v), "severity")));
                cr_expect_str_eq(json_string_value(json_object_get(json_array_get(got, v), "status")),
                                 json_string_value(json_object_get(json_array_get(want, v), "status")));
            }
            json_decref(got);
            want = json_object_get(dev, "softwarePatches");
            got = rows_of(swp, id);
            cr_expect_eq(json_array_size(got), json_array_size(want));
            json_decref(got);
            /* activities: result and exact time */
            want = json_object_get(dev, "activities");
            got = rows_of(acts, id);
            cr_expect_eq(json_array_size(got), json_array_size(want), "device %lld activities", (long long)id);
            for (size_t v = 0; v < json_array_size(want); v++) {
                json_t *w = json_array_get(want, v);
                bool found = false;
                for (size_t g = 0; g < json_array_size(got); g++) {
                    json_t *a = json_array_get(got, g);
                    found |= json_number_value(json_object_get(a, "activityTime")) == fixture_time(w, now) &&
                             !strcmp(json_string_value(json_object_get(a, "activityResult")),
                                     json_string_value(json_object_get(w, "activityResult")));
                }
                cr_expect(found, "device %lld activity %zu not served", (long long)id, v);
            }
            json_decref(got);
        }
    }
    cr_expect_eq(json_array_size(devices), n_devices, "every fixture device is served");
    json_decref(volumes);
    json_decref(av);
    json_decref(osp);
    json_decref(swp);
    json_decref(acts);
    json_decref(devices);
    json_decref(root);
}

Test(sim_fixtures, demo_fleet_names_one_org_that_differs_from_a_company_only_in_case)
{
    json_t *root = load_fixture(DEMO);
    json_t *orgs = json_object_get(root, "organizations");
    cr_expect_geq(json_array_size(orgs), 4);
    cr_expect_leq(json_array_size(orgs), 5);
    bool found = false;
    size_t i;
    json_t *org;
    json_array_foreach(orgs, i, org) {
        found |= strcmp(json_string_value(json_object_get(org, "name")), "ACME Manufacturing") == 0;
        size_t n = json_array_size(json_object_get(org, "devices"));
        cr_expect(n >= 5 && n <= 40, "org %zu has %zu devices", i, n);
    }
    cr_expect(found);
    json_decref(root);
}
