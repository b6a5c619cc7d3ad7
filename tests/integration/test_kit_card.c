/* The integration card of the source kit, driven through a second, tiny
 * provider (tests/plugins/cardprobe.c) by the real runner: real PostgreSQL,
 * its token endpoint and organization list served on a loopback socket. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rt_ninjaone.h"

#define SECRET "probe-good-secret"

static rt_nj_t h;
static long long msp, other_msp, customer, contoso, rival_company;
static char bad_secret_file[320];

/* POST /token: 200 for SECRET, else 401. GET /orgs: the list. GET
 * /orgs/c-1/devices: three devices, one personal; any other organization's
 * devices: 500. */
typedef struct server_s {
  int fd, port;
  pthread_t thread;
  pthread_mutex_t lock;
  int token_requests, list_requests, device_requests;
} server_t;
static server_t srv;

static const char orgs_json[] =
    "[{\"id\": \"c-1\", \"name\": \"Contoso\", \"description\": \"HQ\"},"
    " {\"id\": \"f-2\", \"name\": \"Fabrikam\"}]";

static const char devices_json[] =
    "[{\"id\": \"p1\", \"name\": \"FS01\", \"serial\": \"7XK2QH3\"},"
    " {\"id\": \"p2\", \"name\": \"PHONE\", \"personal\": true},"
    " {\"id\": \"p3\", \"name\": \"WS02\"}]";

static void reply(int c, int status, const char *body) {
  char resp[2048];
  int len = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, status == 200 ? "OK" : "Unauthorized",
                     strlen(body), body);
  ssize_t n;
  for (int off = 0; off < len && (n = write(c, resp + off, len - off)) > 0;)
    off += (int)n;
}

static void *serve(void *data) {
  server_t *s = data;
  for (;;) {
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
      return NULL; /* closed by teardown */
    char req[8192];
    size_t got = 0;
    ssize_t n;
    char *end = NULL;
    /* Headers to the blank line, then Content-Length bytes of body. */
    while (got < sizeof req - 1 &&
           (n = read(c, req + got, sizeof req - 1 - got)) > 0) {
      got += (size_t)n;
      req[got] = 0;
      if (!end && (end = strstr(req, "\r\n\r\n")))
        end += 4;
      if (end) {
        const char *cl = strcasestr(req, "Content-Length:");
        size_t want = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
        if (got >= (size_t)(end - req) + want)
          break;
      }
    }
    pthread_mutex_lock(&s->lock);
    if (strncmp(req, "POST /token", 11) == 0) {
      s->token_requests++;
      /* The secret is the body's last field, to the byte. */
      const char *field = "client_secret=" SECRET;
      size_t body_len = end ? strlen(end) : 0;
      bool good = end && body_len >= strlen(field) &&
                  strcmp(end + body_len - strlen(field), field) == 0 &&
                  strstr(end, "client_id=probe-client");
      reply(c, good ? 200 : 401,
            good ? "{\"access_token\": \"t\"}"
                 : "{\"error\": \"invalid_client\"}");
    } else if (strncmp(req, "GET /orgs/c-1/devices ", 22) == 0) {
      s->device_requests++;
      reply(c, 200, devices_json);
    } else if (strncmp(req, "GET /orgs/", 10) == 0) {
      s->device_requests++;
      reply(c, 500, "{\"error\": \"down\"}");
    } else {
      s->list_requests++;
      reply(c, 200, orgs_json);
    }
    pthread_mutex_unlock(&s->lock);
    close(c);
  }
}

static void setup(void) {
  rt_nj_setup(&h, "kitcard", SECRET,
              "1 8f1e2d3c4b5a69788796a5b4c3d2e1f0"
              "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
              "--fleet " SIM_FIXTURES "/demo.json");
  h.no_sanitizer_report = true;
  snprintf(bad_secret_file, sizeof bad_secret_file, "%s/bad-secret", h.dir);
  rt_write_file(bad_secret_file, "probe-wrong-secret", 0600);
  pthread_mutex_init(&srv.lock, NULL);
  srv.fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof addr;
  cr_assert(srv.fd >= 0 && /* port 0: the kernel picks a free one */
            bind(srv.fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
            listen(srv.fd, 8) == 0 &&
            getsockname(srv.fd, (struct sockaddr *)&addr, &alen) == 0);
  srv.port = ntohs(addr.sin_port);
  cr_assert_eq(pthread_create(&srv.thread, NULL, serve, &srv), 0);
  /* Only the probe: its own plugin directory. */
  char conf[1024];
  snprintf(conf, sizeof conf,
           "[runner]\nplugin_dir = %s\nstate_dir = %s/state\n"
           "master_key_file = %s\nlog_level = warning\n"
           "\n[plugin \"cardprobe\"]\nlist_url = http://127.0.0.1:%d\n"
           "\n[plugin \"cardgiven\"]\nlist_url = http://127.0.0.1:%d\n",
           RT_CARDPROBE_DIR, h.dir, h.key_file, srv.port, srv.port);
  rt_write_file(h.conf, conf, 0644);
  msp = rt_nj_int(&h, "INSERT INTO organization (name, kind) VALUES"
                      " ('Acme MSP', 'MSP') RETURNING id");
  other_msp = rt_nj_int(&h, "INSERT INTO organization (name, kind) VALUES"
                            " ('Rival MSP', 'MSP') RETURNING id");
  customer = rt_nj_int(&h, "INSERT INTO organization (name, kind) VALUES"
                           " ('Dental', 'CUSTOMER') RETURNING id");
  contoso = rt_nj_int(&h,
                      "INSERT INTO portal_company (msp_org_id, name)"
                      " VALUES (%lld, 'Contoso') RETURNING id",
                      msp);
  rival_company = rt_nj_int(&h,
                            "INSERT INTO portal_company (msp_org_id,"
                            " name) VALUES (%lld, 'Fabrikam') RETURNING id",
                            other_msp);
}

static void teardown(void) {
  shutdown(srv.fd, SHUT_RDWR);
  close(srv.fd);
  pthread_join(srv.thread, NULL);
  rt_nj_teardown(&h);
}

TestSuite(kit_card, .init = setup, .fini = teardown, .timeout = 120);

/* `regentra-runner GROUP ARGS... -c conf --json`: the exit status, the
 * output parsed (new); the secret is never printed. */
static int vcard(const char *group, json_t **out, va_list ap) {
  char *argv[32] = {RT_RUNNER, (char *)group};
  int argc = 2;
  for (const char *a; (a = va_arg(ap, const char *)) && argc < 28;)
    argv[argc++] = (char *)a;
  argv[argc++] = "-c";
  argv[argc++] = h.conf;
  argv[argc++] = "--json";
  argv[argc] = NULL;
  char *env[] = {h.db_env, NULL};
  char *o = NULL, *e = NULL;
  int rc = rt_run(argv, env, NULL, &o, &e);
  cr_expect(!strstr(o ? o : "", SECRET) && !strstr(e ? e : "", SECRET),
            "the secret was printed");
  cr_expect(!strstr(e ? e : "", "Sanitizer"), "%s", e);
  *out = json_loads(o ? o : "", 0, NULL);
  cr_expect(*out != NULL, "not JSON: %s%s", o, e);
  free(o);
  free(e);
  return rc;
}

static int card(json_t **out, ...) {
  va_list ap;
  va_start(ap, out);
  int rc = vcard("cardprobe", out, ap);
  va_end(ap);
  return rc;
}

static int given(json_t **out, ...) {
  va_list ap;
  va_start(ap, out);
  int rc = vcard("cardgiven", out, ap);
  va_end(ap);
  return rc;
}

static const char *jstr(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

static long long jint(json_t *o, const char *key) {
  return (long long)json_integer_value(json_object_get(o, key));
}

static int connect_with(const char *secret_file, json_t **out) {
  return card(out, "connect", "--msp-org", rt_nj_id(msp), "--client-id",
              "probe-client", "--client-secret-file", secret_file, NULL);
}

Test(kit_card, a_second_provider_runs_every_command_of_the_card) {
  json_t *j;
  /* test: token and organizations, nothing saved */
  cr_assert_eq(card(&j, "test", "--msp-org", rt_nj_id(msp), "--client-id",
                    "probe-client", "--client-secret-file", h.secret_file,
                    NULL),
               0);
  cr_expect_eq(jint(j, "organizations"), 2);
  cr_expect_str_eq(jstr(j, "region"), "global");
  cr_expect(json_is_false(json_object_get(j, "saved")));
  cr_expect_null(json_object_get(j, "granted_scope"),
                 "the probe reports no scope");
  json_decref(j);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM integration_credential"), 0);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM audit_log"), 0);

  /* connect: sealed, saved, discovered, audited on the MSP */
  cr_assert_eq(connect_with(h.secret_file, &j), 0);
  cr_expect(json_is_true(json_object_get(j, "saved")));
  cr_expect_eq(jint(json_object_get(j, "discovery"), "added"), 2);
  json_decref(j);
  char *sealed = rt_nj_text(&h,
                            "SELECT sealed_secret FROM"
                            " integration_credential WHERE provider ="
                            " 'cardprobe' AND region = 'global' AND"
                            " is_active AND msp_org_id = %lld",
                            msp);
  cr_assert_not_null(sealed);
  cr_expect(!strstr(sealed, SECRET), "stored sealed, never in clear");
  free(sealed);
  char *events = rt_nj_text(&h,
                            "SELECT string_agg(event, ',' ORDER BY id)"
                            " FROM audit_log WHERE organization_id = %lld",
                            msp);
  cr_expect_str_eq(events, "CARDPROBE_CONNECTED,CARDPROBE_DISCOVERY");
  free(events);

  /* orgs: both PENDING; Contoso suggests the MSP's company of that name */
  cr_assert_eq(card(&j, "orgs", "--msp-org", rt_nj_id(msp), NULL), 0);
  json_t *list = json_object_get(j, "organizations");
  cr_assert_eq(json_array_size(list), 2);
  json_t *first = json_array_get(list, 0);
  cr_expect_str_eq(jstr(first, "external_org_id"), "c-1");
  cr_expect_str_eq(jstr(first, "state"), "PENDING");
  cr_expect_eq(jint(json_object_get(first, "suggested_company"), "id"),
               contoso);
  json_decref(j);

  /* orgs --refresh walks the list again with the sealed secret */
  pthread_mutex_lock(&srv.lock);
  int lists = srv.list_requests;
  pthread_mutex_unlock(&srv.lock);
  cr_assert_eq(card(&j, "orgs", "--msp-org", rt_nj_id(msp), "--refresh", NULL),
               0);
  json_decref(j);
  pthread_mutex_lock(&srv.lock);
  cr_expect_eq(srv.list_requests, lists + 1);
  pthread_mutex_unlock(&srv.lock);

  /* map: the one region is found from the discovery */
  cr_assert_eq(card(&j, "map", "--msp-org", rt_nj_id(msp), "--org", "c-1",
                    "--use-existing", rt_nj_id(contoso), NULL),
               0);
  cr_expect_str_eq(jstr(j, "state"), "MAPPED");
  json_decref(j);

  /* status */
  cr_assert_eq(card(&j, "status", "--msp-org", rt_nj_id(msp), NULL), 0);
  json_t *cred = json_array_get(json_object_get(j, "credentials"), 0);
  cr_expect(json_is_true(json_object_get(cred, "connected")));
  cr_expect_eq(jint(json_object_get(cred, "mappings"), "MAPPED"), 1);
  cr_expect_eq(jint(json_object_get(cred, "mappings"), "PENDING"), 1);
  json_decref(j);

  /* disconnect: zeroed, inactive, audited; a second one changes nothing */
  cr_assert_eq(card(&j, "disconnect", "--msp-org", rt_nj_id(msp), NULL), 0);
  cr_expect(json_is_false(json_object_get(j, "credential_active")));
  json_decref(j);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM integration_credential"
                             " WHERE is_active OR sealed_secret IS NOT NULL"),
               0);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM audit_log WHERE event ="
                             " 'CARDPROBE_DISCONNECTED'"),
               1);
  cr_assert_eq(card(&j, "disconnect", "--msp-org", rt_nj_id(msp), NULL), 0);
  cr_expect(json_is_true(json_object_get(j, "already_disconnected")));
  json_decref(j);
  /* mappings survive the disconnect */
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM integration_org_mapping"
                             " WHERE state = 'MAPPED'"),
               1);
}

Test(kit_card, a_bad_secret_is_refused_and_nothing_is_saved) {
  json_t *j;
  cr_expect_eq(connect_with(bad_secret_file, &j), 1);
  cr_expect_str_eq(jstr(j, "error"), "auth_refused");
  cr_expect(strstr(jstr(j, "message"), "wrong client id or secret"), "%s",
            jstr(j, "message"));
  json_decref(j);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM integration_credential"), 0);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM integration_org_mapping"),
               0);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM audit_log"), 0);
  pthread_mutex_lock(&srv.lock);
  cr_expect_eq(srv.token_requests, 1);
  cr_expect_eq(srv.list_requests, 0, "no listing without a token");
  pthread_mutex_unlock(&srv.lock);
}

Test(kit_card, the_msp_and_its_customers_are_never_confused) {
  json_t *j;
  /* A customer's organization id is not an MSP's. */
  cr_expect_eq(card(&j, "status", "--msp-org", rt_nj_id(customer), NULL), 1);
  cr_expect_str_eq(jstr(j, "error"), "not_an_msp");
  json_decref(j);
  /* Another MSP's company is refused, and the mapping stays PENDING. */
  cr_assert_eq(connect_with(h.secret_file, &j), 0);
  json_decref(j);
  cr_expect_eq(card(&j, "map", "--msp-org", rt_nj_id(msp), "--org", "f-2",
                    "--use-existing", rt_nj_id(rival_company), NULL),
               1);
  cr_expect_str_eq(jstr(j, "error"), "company_not_owned");
  json_decref(j);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM integration_org_mapping"
                             " WHERE external_org_id = 'f-2' AND state ="
                             " 'PENDING' AND portal_company_id IS NULL"),
               1);
  /* The other MSP sees no credential of this one. */
  cr_expect_eq(
      card(&j, "orgs", "--msp-org", rt_nj_id(other_msp), "--refresh", NULL), 1);
  cr_expect_str_eq(jstr(j, "error"), "not_connected");
  json_decref(j);
}

static int token_requests(void) {
  pthread_mutex_lock(&srv.lock);
  int n = srv.token_requests;
  pthread_mutex_unlock(&srv.lock);
  return n;
}

Test(kit_card, organizations_the_operator_names_are_each_authenticated) {
  json_t *j;
  /* A secret file's line end is not part of the secret (the host reads
   * it so): neither sent nor sealed. */
  rt_write_file(h.secret_file, SECRET "\r\n", 0600);
  /* A malformed id is refused before any request. */
  cr_expect_eq(given(&j, "connect", "--msp-org", rt_nj_id(msp), "--client-id",
                     "probe-client", "--client-secret-file", h.secret_file,
                     "--orgs", "aa11-22,not a tenant", NULL),
               1);
  cr_expect(strstr(jstr(j, "message"), "\"not\" is not a CardGiven "
                                       "organization id (hex digits and "
                                       "dashes)"),
            "%s", jstr(j, "message"));
  json_decref(j);
  cr_expect_eq(token_requests(), 0);
  /* Two tenants: one token each; they become the organizations. */
  cr_assert_eq(given(&j, "connect", "--msp-org", rt_nj_id(msp), "--client-id",
                     "probe-client", "--client-secret-file", h.secret_file,
                     "--orgs", "aa11-22, bb33-44", NULL),
               0);
  cr_expect_eq(jint(json_object_get(j, "discovery"), "added"), 2);
  json_decref(j);
  cr_expect_eq(token_requests(), 2);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM integration_org_mapping"
                             " WHERE provider = 'cardgiven' AND region ="
                             " 'global' AND external_org_id IN ('aa11-22',"
                             " 'bb33-44')"),
               2);
  /* --refresh authenticates in each one again, with the sealed secret:
   * sealed without the line end too. */
  cr_assert_eq(given(&j, "orgs", "--msp-org", rt_nj_id(msp), "--refresh", NULL),
               0);
  cr_expect_eq(json_array_size(json_object_get(j, "organizations")), 2);
  json_decref(j);
  cr_expect_eq(token_requests(), 4);
  pthread_mutex_lock(&srv.lock);
  cr_expect_eq(srv.list_requests, 0, "nothing is listed");
  pthread_mutex_unlock(&srv.lock);
}

/* The card's sync through the provider's two hooks: each mapped
 * organization walked with the saved credential, personal rows skipped,
 * one transaction per company; the organization whose walk fails is named
 * and spoils no other company. */
Test(kit_card, sync_walks_each_mapped_organization_into_its_company) {
  json_t *j;
  long long fabrikam = rt_nj_int(&h,
                                 "INSERT INTO portal_company (msp_org_id,"
                                 " name) VALUES (%lld, 'Fabrikam') RETURNING"
                                 " id",
                                 msp);
  cr_assert_eq(connect_with(h.secret_file, &j), 0);
  json_decref(j);
  cr_assert_eq(card(&j, "map", "--msp-org", rt_nj_id(msp), "--org", "c-1",
                    "--use-existing", rt_nj_id(contoso), NULL),
               0);
  json_decref(j);

  /* Only c-1 is mapped: a clean run. */
  cr_assert_eq(card(&j, "sync", "--msp-org", rt_nj_id(msp), NULL), 0);
  json_t *companies = json_object_get(j, "companies");
  cr_assert_eq(json_array_size(companies), 1);
  json_t *c = json_array_get(companies, 0);
  cr_expect_eq(jint(c, "company"), contoso);
  cr_expect_eq(jint(c, "msp_org"), msp);
  cr_expect_eq(jint(c, "created"), 2);
  cr_expect_eq(jint(c, "skipped"), 1);
  cr_expect(json_is_true(json_object_get(c, "complete")));
  json_decref(j);
  char *rows = rt_nj_text(&h,
                          "SELECT string_agg(external_id || ':' ||"
                          " external_org_id || ':' || status, ' ' ORDER BY"
                          " external_id) FROM asset WHERE external_source ="
                          " 'cardprobe' AND portal_company_id = %lld",
                          contoso);
  cr_expect_str_eq(rows, "p1:c-1:ACTIVE p3:c-1:ACTIVE");
  free(rows);

  /* f-2's walk fails: the job fails naming it; Contoso is still written. */
  cr_assert_eq(card(&j, "map", "--msp-org", rt_nj_id(msp), "--org", "f-2",
                    "--use-existing", rt_nj_id(fabrikam), NULL),
               0);
  json_decref(j);
  cr_expect_neq(card(&j, "sync", NULL), 0);
  cr_expect(strstr(jstr(j, "message"), "organization f-2:") &&
                strstr(jstr(j, "message"), "HTTP 500"),
            "%s", jstr(j, "message"));
  companies = json_object_get(j, "companies");
  cr_assert_eq(json_array_size(companies), 2);
  c = json_array_get(companies, 0);
  cr_expect_eq(jint(c, "company"), contoso);
  cr_expect_eq(jint(c, "seen"), 2);
  c = json_array_get(companies, 1);
  cr_expect_eq(jint(c, "company"), fabrikam);
  cr_expect(json_is_false(json_object_get(c, "complete")),
            "a failed walk retires nothing");
  json_decref(j);
  cr_expect_eq(rt_nj_int(&h, "SELECT count(*) FROM asset WHERE"
                             " external_source = 'cardprobe' AND status ="
                             " 'ACTIVE'"),
               2);

  /* A customer's id is not an MSP's. */
  cr_expect_neq(card(&j, "sync", "--msp-org", rt_nj_id(customer), NULL), 0);
  cr_expect_str_eq(jstr(j, "error"), "not_an_msp");
  json_decref(j);
}
