/* graph-sim over real sockets: tokens and their errors, the token choosing
 * the tenant, $select, $top paging by @odata.nextLink, 429 faults and
 * stats. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sim_client.h"

#define APP "6d1f0c2a-4b7e-4f3a-9a51-0c8e2d7b1f90"
#define SECRET "demo-graph-secret"
#define CONTOSO "3f2a9c4e-7b1d-4e8a-9c2f-5d6e7f8a9b01"
#define NORTHWIND "b7c14e2d-9a3f-4c6b-8e1d-2f0a7b9c3d42"
#define SCOPE_ENC "https%3A%2F%2Fgraph.microsoft.com%2F.default"
#define DEVICES "/v1.0/deviceManagement/managedDevices"

static sim_proc_t sim;

static void start(void) {
  const char *args[] = {"--fleet", GRAPH_FIXTURES "/demo.json", NULL};
  cr_assert_eq(simc_start(&sim, args), 0, "graph-sim did not start");
}
static void stop(void) {
  cr_expect_eq(simc_stop(&sim), 0);
}

TestSuite(graphsim, .init = start, .fini = stop, .timeout = 60);

static simc_resp_t token_resp(const char *tenant, const char *secret,
                              const char *scope) {
  char path[160], body[512];
  snprintf(path, sizeof path, "/%s/oauth2/v2.0/token", tenant);
  snprintf(body, sizeof body,
           "grant_type=client_credentials&client_id=" APP
           "&client_secret=%s&scope=%s",
           secret, scope);
  return simc_request(&sim, "POST", path, "application/x-www-form-urlencoded",
                      body, NULL);
}

static char *token(const char *tenant) {
  simc_resp_t r = token_resp(tenant, SECRET, SCOPE_ENC);
  cr_assert_eq(r.status, 200, "token: %ld %s", r.status, r.body);
  char *t = strdup(json_string_value(json_object_get(r.json, "access_token")));
  cr_assert_eq(json_integer_value(json_object_get(r.json, "expires_in")), 3599);
  simc_resp_free(&r);
  return t;
}

Test(graphsim, token_errors_are_entra_id_errors) {
  simc_resp_t r = token_resp(CONTOSO, "wrong", SCOPE_ENC);
  cr_expect_eq(r.status, 401);
  cr_expect_str_eq(json_string_value(json_object_get(r.json, "error")),
                   "invalid_client");
  cr_expect(strstr(json_string_value(json_object_get(r.json, "error_description")),
                   "AADSTS7000215"));
  simc_resp_free(&r);
  r = token_resp("00000000-1111-2222-3333-444444444444", SECRET, SCOPE_ENC);
  cr_expect_eq(r.status, 400);
  cr_expect_str_eq(json_string_value(json_object_get(r.json, "error")),
                   "invalid_request");
  cr_expect_eq(json_integer_value(
                   json_array_get(json_object_get(r.json, "error_codes"), 0)),
               90002);
  simc_resp_free(&r);
  r = token_resp(CONTOSO, SECRET, "https%3A%2F%2Fgraph.microsoft.com%2FDeviceManagementManagedDevices.Read.All");
  cr_expect_eq(r.status, 400);
  cr_expect_str_eq(json_string_value(json_object_get(r.json, "error")),
                   "invalid_scope");
  simc_resp_free(&r);
  r = simc_get(&sim, DEVICES, "not-a-token");
  cr_expect_eq(r.status, 401);
  simc_resp_free(&r);
}

/* Walks every page at $top=2 with $select; returns the rows (new). */
static json_t *walk(const char *tok, int *pages) {
  json_t *rows = json_array();
  char path[1024];
  snprintf(path, sizeof path,
           DEVICES "?$select=id,deviceName,managedDeviceOwnerType&$top=2");
  *pages = 0;
  for (;;) {
    simc_resp_t r = simc_get(&sim, path, tok);
    cr_assert_eq(r.status, 200, "page: %ld %s", r.status, r.body);
    (*pages)++;
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(r.json, "value"), i, row) {
      cr_expect_eq(json_object_size(row), 3, "only the selected fields");
      cr_expect(json_object_get(row, "deviceName"));
      json_array_append(rows, row);
    }
    const char *next =
        json_string_value(json_object_get(r.json, "@odata.nextLink"));
    if (!next) {
      simc_resp_free(&r);
      break;
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "http://127.0.0.1:%d/", sim.port);
    cr_assert(!strncmp(next, prefix, strlen(prefix)), "absolute: %s", next);
    cr_expect(strstr(next, "$select=id,deviceName,managedDeviceOwnerType"));
    snprintf(path, sizeof path, "%s", next + strlen(prefix) - 1);
    simc_resp_free(&r);
  }
  return rows;
}

Test(graphsim, paging_select_and_the_token_choosing_the_tenant) {
  char *contoso = token(CONTOSO), *northwind = token(NORTHWIND);
  int pages;
  json_t *rows = walk(contoso, &pages);
  cr_expect_eq(json_array_size(rows), 7);
  cr_expect_eq(pages, 4);
  cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rows, 5),
                                                     "managedDeviceOwnerType")),
                   "personal");
  json_decref(rows);
  rows = walk(northwind, &pages);
  cr_expect_eq(json_array_size(rows), 3);
  cr_expect_eq(pages, 2);
  json_decref(rows);
  /* Without $select every field is served. */
  simc_resp_t r = simc_get(&sim, DEVICES "?$top=1", contoso);
  cr_expect_eq(json_object_size(json_array_get(json_object_get(r.json, "value"), 0)), 13);
  simc_resp_free(&r);
  r = simc_get(&sim, DEVICES "?$select=id,nosuchField", contoso);
  cr_expect_eq(r.status, 400);
  simc_resp_free(&r);
  free(contoso);
  free(northwind);
}

Test(graphsim, throttle_with_retry_after_and_stats) {
  char *tok = token(CONTOSO);
  cr_assert_eq(simc_control(&sim, "faults",
                            "{\"endpoint\": \"managedDevices\", \"status\": 429,"
                            " \"retryAfter\": 7, \"nth\": 2}"),
               200);
  simc_resp_t r = simc_get(&sim, DEVICES "?$top=2", tok);
  cr_expect_eq(r.status, 200);
  simc_resp_free(&r);
  r = simc_get(&sim, DEVICES "?$top=2", tok);
  cr_expect_eq(r.status, 429);
  cr_expect_str_eq(r.retry_after, "7");
  cr_expect_str_eq(json_string_value(json_object_get(
                       json_object_get(r.json, "error"), "code")),
                   "TooManyRequests");
  simc_resp_free(&r);
  r = simc_get(&sim, DEVICES "?$top=2", tok);
  cr_expect_eq(r.status, 200, "the rule fires once");
  simc_resp_free(&r);
  r = simc_get(&sim, "/_sim/stats", NULL);
  cr_expect_eq(json_integer_value(json_object_get(r.json, "tokenRequests")), 1);
  cr_expect_eq(json_integer_value(json_object_get(r.json, "throttled")), 1);
  cr_expect_eq(json_integer_value(json_object_get(
                   json_object_get(r.json, "paths"), DEVICES)),
               3);
  simc_resp_free(&r);
  free(tok);
}
