/* ninjaone-sim: command line, OAuth token flows and bearer checks. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim_client.h"

#define BOUNDARIES SIM_FIXTURES "/boundaries.json"
#define DEMO SIM_FIXTURES "/demo.json"
#define FORM "application/x-www-form-urlencoded"

static sim_proc_t sim;

static void start_boundaries(void)
{
    const char *args[] = {"--fleet", BOUNDARIES, NULL};
    cr_assert_eq(simc_start(&sim, args), 0, "simulator did not start");
}

static void stop_clean(void)
{
    cr_expect_eq(simc_stop(&sim), 0, "simulator did not exit 0 on SIGTERM");
}

static simc_resp_t token_request(const char *region, const char *body)
{
    char path[64];
    snprintf(path, sizeof path, "/%s/ws/oauth/token", region);
    return simc_request(&sim, "POST", path, FORM, body, NULL);
}

TestSuite(sim_cli, .timeout = 30);

Test(sim_cli, prints_port_first_and_exits_zero_on_sigterm)
{
    const char *args[] = {"--fleet", DEMO, NULL};
    cr_assert_eq(simc_start(&sim, args), 0);
    cr_assert_gt(sim.port, 0);
    simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
    cr_expect_eq(r.status, 200);
    simc_resp_free(&r);
    cr_expect_eq(simc_stop(&sim), 0);
}

Test(sim_cli, help_documents_every_option)
{
    FILE *f = popen(SIM_BINARY " --help", "r");
    cr_assert(f);
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    cr_expect_eq(pclose(f), 0);
    const char *options[] = {"--fleet", "--generate", "--seed", "--now", "--regions", "--orgs",
                             "--devices-per-org", "--os-mix", "--encryption-rate", "--av-mix",
                             "--patch-backlog", "--patch-failed-rate", "--backup-rate",
                             "--backup-failure-rate", "--offline-rate", "--pending-rate", "--port",
                             "--threads", "--tls-cert", "--tls-key", "--token-ttl", "--cursor-ttl",
                             "--rate-limit-minute", "--rate-limit-hour", "--throttle-mode",
                             "--remaining-header", "--help"};
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        cr_expect(strstr(text, options[i]), "--help does not mention %s", options[i]);
}

Test(sim_cli, refuses_a_broken_fleet_file_naming_the_file_and_place)
{
    char path[] = "/tmp/sim-bad-fleet-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "{\"organizations\":[{\"id\":1,\"region\":\"mars\",\"name\":\"X\"}]}";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --fleet %s 2>&1", SIM_BINARY, path);
    FILE *f = popen(cmd, "r");
    char out[1024];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    int status = pclose(f);
    unlink(path);
    cr_expect_eq(WEXITSTATUS(status), 1);
    cr_expect(strstr(out, path), "error does not name the file: %s", out);
    cr_expect(strstr(out, "organizations[0]"), "error does not name the place: %s", out);
    cr_expect(strstr(out, "region"), "error does not name the field: %s", out);
}

Test(sim_cli, refuses_unknown_options_with_usage_status_2)
{
    int status = system(SIM_BINARY " --generate --no-such-option >/dev/null 2>&1");
    cr_expect_eq(WEXITSTATUS(status), 2);
    status = system(SIM_BINARY " >/dev/null 2>&1");
    cr_expect_eq(WEXITSTATUS(status), 2, "neither --fleet nor --generate must be a usage error");
}

Test(sim_cli, serves_https_with_a_certificate_the_client_verifies, .timeout = 60)
{
    char dir[] = "/tmp/sim-tls-XXXXXX";
    cr_assert(mkdtemp(dir));
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
             "-subj /CN=sim-test-ca >/dev/null 2>&1 && "
             "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 "
             ">/dev/null 2>&1 && printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem "
             "-days 2 -extfile ext.cnf >/dev/null 2>&1",
             dir);
    cr_assert_eq(system(cmd), 0, "openssl could not make a throwaway CA");
    char cert[300], key[300];
    snprintf(cert, sizeof cert, "%s/srv.pem", dir);
    snprintf(key, sizeof key, "%s/srv.key", dir);
    const char *args[] = {"--fleet", BOUNDARIES, "--tls-cert", cert, "--tls-key", key, NULL};
    cr_assert_eq(simc_start(&sim, args), 0);
    cr_expect_str_eq(sim.scheme, "https");
    /* Without the CA the client must refuse the certificate. */
    simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
    cr_expect_neq(r.curl_code, 0, "an unknown CA was accepted");
    simc_resp_free(&r);
    snprintf(sim.ca_file, sizeof sim.ca_file, "%s/ca.pem", dir);
    char *token = simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring");
    cr_expect(token, "no token over verified TLS");
    r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(r.curl_code, 0);
    cr_expect_eq(r.status, 200);
    simc_resp_free(&r);
    free(token);
    cr_expect_eq(simc_stop(&sim), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(sim_auth, .init = start_boundaries, .fini = stop_clean, .timeout = 30);

Test(sim_auth, issues_a_bearer_token_with_the_requested_scope)
{
    simc_resp_t r = token_request("eu", "grant_type=client_credentials&client_id=boundary-eu-client"
                                        "&client_secret=boundary-eu-secret&scope=monitoring");
    cr_assert_eq(r.status, 200);
    cr_assert(r.json);
    cr_expect(json_string_value(json_object_get(r.json, "access_token")));
    cr_expect_eq(json_integer_value(json_object_get(r.json, "expires_in")), 3600);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "token_type")), "Bearer");
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "scope")), "monitoring");
    cr_expect_null(json_object_get(r.json, "refresh_token"));
    simc_resp_free(&r);
}

Test(sim_auth, answers_client_app_not_exist_in_the_wrong_region)
{
    simc_resp_t r = token_request("us", "grant_type=client_credentials&client_id=boundary-eu-client"
                                        "&client_secret=boundary-eu-secret&scope=monitoring");
    cr_expect_eq(r.status, 404);
    cr_assert(r.json);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "resultCode")), "Client app not exist");
    const char *incident = json_string_value(json_object_get(r.json, "incidentId"));
    cr_expect(incident && strncmp(incident, "WEB_MGMT_SERVICE-", 17) == 0);
    simc_resp_free(&r);
}

Test(sim_auth, rejects_a_bad_secret_with_invalid_client)
{
    simc_resp_t r = token_request("eu", "grant_type=client_credentials&client_id=boundary-eu-client"
                                        "&client_secret=wrong&scope=monitoring");
    cr_expect_eq(r.status, 400);
    cr_assert(r.json);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "error")), "invalid_client");
    cr_expect(json_string_value(json_object_get(r.json, "error_description")));
    simc_resp_free(&r);
}

Test(sim_auth, accepts_the_oauth_token_path_without_ws)
{
    simc_resp_t r = simc_request(&sim, "POST", "/eu/oauth/token", FORM,
                                 "grant_type=client_credentials&client_id=boundary-eu-client"
                                 "&client_secret=boundary-eu-secret",
                                 NULL);
    cr_expect_eq(r.status, 200);
    simc_resp_free(&r);
}

Test(sim_auth, accepts_client_credentials_in_basic_auth)
{
    /* base64("boundary-eu-client:boundary-eu-secret") */
    simc_resp_t r = simc_request(&sim, "POST", "/eu/ws/oauth/token", FORM,
                                 "grant_type=client_credentials&scope=monitoring",
                                 "Authorization: Basic Ym91bmRhcnktZXUtY2xpZW50OmJvdW5kYXJ5LWV1LXNlY3JldA==");
    cr_expect_eq(r.status, 200);
    simc_resp_free(&r);
}

Test(sim_auth, records_the_scope_string_of_every_token_request)
{
    free(simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring"));
    free(simc_token(&sim, "us", "boundary-us-client", "boundary-us-secret", NULL));
    free(simc_token(&sim, "us", "boundary-us-client", "boundary-us-secret", "monitoring%20management"));
    free(simc_token(&sim, "eu", "boundary-eu-client", "wrong", "control"));
    simc_resp_t r = simc_get(&sim, "/_sim/stats", NULL);
    cr_assert(r.json);
    cr_expect_eq(json_integer_value(json_object_get(r.json, "tokenRequests")), 4);
    json_t *scopes = json_object_get(r.json, "tokenScopes");
    cr_assert_eq(json_array_size(scopes), 4);
    cr_expect_str_eq(json_string_value(json_array_get(scopes, 0)), "monitoring");
    cr_expect_str_eq(json_string_value(json_array_get(scopes, 1)), "");
    cr_expect_str_eq(json_string_value(json_array_get(scopes, 2)), "monitoring management");
    cr_expect_str_eq(json_string_value(json_array_get(scopes, 3)), "control");
    simc_resp_free(&r);
}

Test(sim_auth, grants_requested_scopes_that_are_configured_and_never_more)
{
    /* The us app has monitoring + management; omitting scope = all configured. */
    simc_resp_t r = token_request("us", "grant_type=client_credentials&client_id=boundary-us-client"
                                        "&client_secret=boundary-us-secret");
    cr_assert_eq(r.status, 200);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "scope")), "monitoring management");
    simc_resp_free(&r);
    r = token_request("us", "grant_type=client_credentials&client_id=boundary-us-client"
                            "&client_secret=boundary-us-secret&scope=monitoring+control");
    cr_assert_eq(r.status, 200);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "scope")), "monitoring");
    simc_resp_free(&r);
}

Test(sim_auth, refuses_a_scope_the_app_lacks_with_invalid_scope)
{
    simc_resp_t r = token_request("eu", "grant_type=client_credentials&client_id=boundary-eu-client"
                                        "&client_secret=boundary-eu-secret&scope=control");
    cr_expect_eq(r.status, 400);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "error")), "invalid_scope");
    simc_resp_free(&r);
    r = token_request("eu", "grant_type=client_credentials&client_id=boundary-eu-client"
                            "&client_secret=boundary-eu-secret&scope=everything");
    cr_expect_eq(r.status, 400);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "error")), "invalid_scope");
    simc_resp_free(&r);
}

Test(sim_auth, rejects_a_missing_authorization_header_with_missing_header)
{
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations", NULL);
    cr_expect_eq(r.status, 400);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "error")), "missing_header");
    cr_expect_eq(json_integer_value(json_object_get(r.json, "error_code")), 2);
    simc_resp_free(&r);
}

Test(sim_auth, rejects_an_unknown_bearer_with_not_authenticated)
{
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations", "not-a-real-token");
    cr_expect_eq(r.status, 401);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "error")), "not_authenticated");
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "error_description")), "Invalid credentials");
    cr_expect_eq(json_integer_value(json_object_get(r.json, "error_code")), 10);
    simc_resp_free(&r);
}

Test(sim_auth, rejects_a_token_presented_to_another_region)
{
    char *token = simc_token(&sim, "us", "boundary-us-client", "boundary-us-secret", "monitoring");
    cr_assert(token);
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(r.status, 401);
    simc_resp_free(&r);
    r = simc_get(&sim, "/us/v2/organizations", token);
    cr_expect_eq(r.status, 200);
    simc_resp_free(&r);
    free(token);
}

Test(sim_auth, shows_a_client_only_the_orgs_of_its_region_and_list)
{
    char *eu = simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring");
    char *us = simc_token(&sim, "us", "boundary-us-client", "boundary-us-secret", "monitoring");
    char *blind = simc_token(&sim, "eu", "boundary-blind-client", "boundary-blind-secret", "monitoring");
    cr_assert(eu && us && blind);
    simc_resp_t r = simc_get(&sim, "/eu/v2/organizations", eu);
    cr_expect_eq(json_array_size(r.json), 22);
    simc_resp_free(&r);
    r = simc_get(&sim, "/us/v2/organizations", us);
    cr_expect_eq(json_array_size(r.json), 0, "the us tenant has no orgs in this fleet");
    simc_resp_free(&r);
    r = simc_get(&sim, "/eu/v2/organizations", blind);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(json_array_size(r.json), 0, "an empty orgIds list must show zero orgs");
    simc_resp_free(&r);
    r = simc_get(&sim, "/eu/v2/devices-detailed", blind);
    cr_expect_eq(json_array_size(r.json), 0);
    simc_resp_free(&r);
    free(eu);
    free(us);
    free(blind);
}

Test(sim_auth, serves_the_same_paths_under_api_v2)
{
    char *token = simc_token(&sim, "eu", "boundary-eu-client", "boundary-eu-secret", "monitoring");
    simc_resp_t a = simc_get(&sim, "/eu/v2/organizations-detailed", token);
    simc_resp_t b = simc_get(&sim, "/eu/api/v2/organizations-detailed", token);
    cr_expect_eq(a.status, 200);
    cr_expect_eq(b.status, 200);
    cr_expect(json_equal(a.json, b.json));
    simc_resp_free(&a);
    simc_resp_free(&b);
    free(token);
}

Test(sim_cli, expires_tokens_after_token_ttl)
{
    const char *args[] = {"--fleet", BOUNDARIES, "--token-ttl", "1", NULL};
    cr_assert_eq(simc_start(&sim, args), 0);
    simc_resp_t r = token_request("eu", "grant_type=client_credentials&client_id=boundary-eu-client"
                                        "&client_secret=boundary-eu-secret&scope=monitoring");
    cr_assert_eq(r.status, 200);
    cr_expect_eq(json_integer_value(json_object_get(r.json, "expires_in")), 1);
    char *token = strdup(json_string_value(json_object_get(r.json, "access_token")));
    simc_resp_free(&r);
    r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(r.status, 200);
    simc_resp_free(&r);
    struct timespec pause = {.tv_sec = 1, .tv_nsec = 300000000L};
    nanosleep(&pause, NULL);
    r = simc_get(&sim, "/eu/v2/organizations", token);
    cr_expect_eq(r.status, 401);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "error")), "not_authenticated");
    simc_resp_free(&r);
    free(token);
    cr_expect_eq(simc_stop(&sim), 0);
}
