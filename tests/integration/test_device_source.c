/* The SDK's device-source template (sdk/examples/device-source) as its
 * author would run it: the real runner, real PostgreSQL, and its device
 * list served over a real loopback socket. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rt_ninjaone.h"

static rt_nj_t h;
static long long msp, company;

/* The template's API: a token for any client credentials, one
 * organization, and `body` as its device list, until stopped. */
typedef struct server_s {
  int fd, port;
  pthread_t thread;
  pthread_mutex_t lock;
  char body[2048];
  int device_requests;
} server_t;
static server_t srv;

static void *serve(void *data) {
  server_t *s = data;
  for (;;) {
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
      return NULL; /* closed by server_stop */
    char req[4096];
    size_t got = 0;
    ssize_t n;
    /* The request ends Content-Length bytes after the blank line (the
     * token request's form body; a GET has none). */
    char *end = NULL;
    while (got < sizeof req - 1 &&
           (n = read(c, req + got, sizeof req - 1 - got)) > 0) {
      got += (size_t)n;
      req[got] = 0;
      const char *cl = strstr(req, "\r\nContent-Length:");
      if ((end = strstr(req, "\r\n\r\n")) &&
          (size_t)(end + 4 - req) + (cl ? strtoul(cl + 17, NULL, 10) : 0) <=
              got)
        break;
    }
    pthread_mutex_lock(&s->lock);
    const char *body = s->body;
    if (!strncmp(req, "POST /oauth/token", 17))
      body = "{\"access_token\": \"t-1\", \"token_type\": \"Bearer\","
             " \"expires_in\": 3600}";
    else if (!strncmp(req, "GET /orgs?", 10))
      body = "{\"items\": [{\"id\": \"o1\", \"name\": \"Contoso\"}]}";
    else
      s->device_requests += !strncmp(req, "GET /orgs/o1/devices", 20);
    char resp[2560];
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       strlen(body), body);
    pthread_mutex_unlock(&s->lock);
    for (int off = 0; off < len && (n = write(c, resp + off, len - off)) > 0;)
      off += (int)n;
    close(c);
  }
}

static void serve_list(const char *body) {
  pthread_mutex_lock(&srv.lock);
  snprintf(srv.body, sizeof srv.body, "%s", body);
  pthread_mutex_unlock(&srv.lock);
}

static void setup(void) {
  rt_nj_setup(&h, "devsrc-template", "unused-secret",
              "1 8f1e2d3c4b5a69788796a5b4c3d2e1f0"
              "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
              "--fleet " SIM_FIXTURES "/demo.json");
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
  char extra[256];
  snprintf(extra, sizeof extra,
           "\n[plugin \"device-source\"]\n"
           "api_url = http://127.0.0.1:%d\n",
           srv.port);
  rt_nj_write_conf(&h, "info", "", extra, NULL);
  msp = rt_nj_int(&h, "INSERT INTO organization (name, kind) VALUES"
                      " ('Acme MSP', 'MSP') RETURNING id");
  company = rt_nj_int(&h,
                      "INSERT INTO portal_company (msp_org_id, name)"
                      " VALUES (%lld, 'Contoso') RETURNING id",
                      msp);
}

static void teardown(void) {
  shutdown(srv.fd, SHUT_RDWR);
  close(srv.fd);
  pthread_join(srv.thread, NULL);
  rt_nj_teardown(&h);
}

TestSuite(device_source, .init = setup, .fini = teardown, .timeout = 120);

/* `regentra-runner example COMMAND --msp-org MSP ARGS... -c conf --json`
 * (ARGS NULL-terminated); expects exit 0. */
static int example(char **out, const char *command, ...) {
  char msp_id[24];
  snprintf(msp_id, sizeof msp_id, "%lld", msp);
  char *argv[16] = {RT_RUNNER, "example", (char *)command, "--msp-org", msp_id};
  int argc = 5;
  va_list ap;
  va_start(ap, command);
  for (const char *a; (a = va_arg(ap, const char *)) && argc < 12;)
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc++] = "-c";
  argv[argc++] = h.conf;
  argv[argc++] = "--json";
  char *env[] = {h.db_env, NULL};
  char *err = NULL;
  int rc = rt_run(argv, env, NULL, out, &err);
  cr_expect(rc == 0, "%s: exit %d: %s%s", command, rc, *out, err);
  free(err);
  return rc;
}

static int sync_company(char **out) {
  return example(out, "sync", NULL);
}

Test(device_source, the_template_syncs_a_list_and_retires_what_left_it) {
  /* The card: the credential tested and saved, its organization mapped. */
  char *out = NULL, company_id[24];
  snprintf(company_id, sizeof company_id, "%lld", company);
  cr_assert_eq(example(&out, "connect", "--client-id", "demo-client",
                       "--client-secret-file", h.secret_file, NULL),
               0);
  free(out);
  cr_assert_eq(
      example(&out, "map", "--org", "o1", "--use-existing", company_id, NULL),
      0);
  free(out);

  serve_list(
      "{\"items\": [{\"id\": \"d1\", \"name\": \"FS01\","
      " \"serial\": \"7XK2QH3\", \"mac\": \"00-1A-2B-3C-4D-5E\","
      " \"os\": \"Windows 11\"}, {\"id\": \"d2\", \"name\": \"WS02\"}]}");
  cr_assert_eq(sync_company(&out), 0);
  cr_expect(strstr(out, "\"created\": 2"), "%s", out);
  free(out);
  char *rows =
      rt_nj_text(&h,
                 "SELECT string_agg(external_id || ':' || status || ':' ||"
                 " coalesce(serial_normalized, '-') || ':' ||"
                 " coalesce(array_to_string(mac_addresses, ','), '-'), ' '"
                 " ORDER BY external_id) FROM asset WHERE external_source ="
                 " 'example' AND portal_company_id = %lld",
                 company);
  cr_expect_str_eq(rows, "d1:ACTIVE:7XK2QH3:00:1a:2b:3c:4d:5e d2:ACTIVE:-:-");
  free(rows);

  /* d2 left the list: the complete pull retires it. */
  serve_list("{\"items\": [{\"id\": \"d1\", \"name\": \"FS01\","
             " \"serial\": \"7XK2QH3\"}]}");
  cr_assert_eq(sync_company(&out), 0);
  cr_expect(strstr(out, "\"retired\": 1"), "%s", out);
  free(out);
  char *d2 =
      rt_nj_text(&h, "SELECT status FROM asset WHERE external_id = 'd2'");
  cr_expect_str_eq(d2, "RETIRED");
  free(d2);
  pthread_mutex_lock(&srv.lock);
  int requests = srv.device_requests;
  pthread_mutex_unlock(&srv.lock);
  cr_expect_eq(requests, 2, "one device list GET per sync");
}
