#define _POSIX_C_SOURCE 200809L
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "control.h"
#include "endpoints.h"
#include "faults.h"
#include "ratelimit.h"
#include "stats.h"

enum { MAX_BODY = 1 << 20 };

struct sim_server {
    struct MHD_Daemon *daemon;
    char *tls_cert; /* PEM text, kept alive for the daemon */
    char *tls_key;
};

typedef void (*handler_fn)(sim_t *, sim_request_t *, sim_response_t *);

static const struct route {
    const char *path;
    handler_fn handler;
} routes[] = {
    {"/v2/organizations", sim_ep_organizations},
    {"/v2/organizations-detailed", sim_ep_organizations_detailed},
    {"/v2/devices", sim_ep_devices},
    {"/v2/devices-detailed", sim_ep_devices_detailed},
    {"/v2/queries/volumes", sim_ep_volumes},
    {"/v2/queries/antivirus-status", sim_ep_antivirus_status},
    {"/v2/queries/os-patches", sim_ep_os_patches},
    {"/v2/queries/software-patches", sim_ep_software_patches},
    {"/v2/activities", sim_ep_activities},
    {"/v2/backup/jobs", sim_ep_backup_jobs},
};

/* ---- helpers declared in sim.h ---- */

const char *sim_arg(const sim_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *sim_header(const sim_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void sim_response_clear(sim_response_t *res)
{
    free(res->body);
    res->body = NULL;
    res->len = 0;
}

void sim_respond_buf(sim_response_t *res, int status, sim_buf_t *body)
{
    sim_response_clear(res);
    res->status = status;
    res->content_type = "application/json";
    res->body = sim_buf_steal(body, &res->len);
}

void sim_respond_text(sim_response_t *res, int status, const char *content_type, const char *text)
{
    sim_response_clear(res);
    res->status = status;
    res->content_type = content_type;
    res->body = sim_xstrdup(text);
    res->len = strlen(text);
}

void sim_incident_id(sim_t *sim, char out[64])
{
    uint64_t n = sim_mix64(atomic_fetch_add(&sim->request_seq, 1) ^ sim->opts.seed);
    char letters[9];
    for (int i = 0; i < 8; i++) {
        letters[i] = (char)('A' + n % 26);
        n /= 26;
    }
    letters[8] = '\0';
    snprintf(out, 64, "WEB_MGMT_SERVICE-2a-%lld-%s", (long long)(sim_clock_now_ms() / 1000), letters);
}

void sim_respond_app_error(sim_t *sim, sim_response_t *res, int status, const char *result_code,
                           const char *message, bool with_incident)
{
    sim_buf_t b;
    sim_buf_init(&b, 160);
    sim_json_t j;
    sj_init(&j, &b);
    sj_obj(&j);
    sj_str(&j, "resultCode", result_code);
    sj_str_opt(&j, "errorMessage", message);
    if (with_incident) {
        char incident[64];
        sim_incident_id(sim, incident);
        sj_str(&j, "incidentId", incident);
    }
    sj_end_obj(&j);
    sim_respond_buf(res, status, &b);
}

void sim_respond_auth_error(sim_response_t *res, int status, const char *error,
                            const char *description, int code)
{
    sim_buf_t b;
    sim_buf_init(&b, 128);
    sim_json_t j;
    sj_init(&j, &b);
    sj_obj(&j);
    sj_str(&j, "error", error);
    sj_str(&j, "error_description", description);
    if (code >= 0)
        sj_i64(&j, "error_code", code);
    sj_end_obj(&j);
    sim_respond_buf(res, status, &b);
}

int sim_page_size(const sim_request_t *req, int dflt, int min, int max)
{
    const char *text = sim_arg(req, "pageSize");
    if (!text)
        return dflt;
    int64_t v;
    if (sim_parse_i64(text, &v) != 0)
        return -1;
    if (v < min)
        v = min;
    if (v > max)
        v = max;
    return (int)v;
}

/* ---- throttling and faults ---- */

static const char throttle_page[] =
    "<!DOCTYPE html>\n<html><head><title>Too Many Requests</title></head>\n"
    "<body><h1>Too Many Requests</h1>\n"
    "<p>You have exceeded the rate limit for this API. Please slow down and try again "
    "later.</p></body></html>\n";

static void respond_throttled(sim_t *sim, sim_response_t *res, bool html, int retry_after_s)
{
    if (html) {
        /* NinjaOne is reported to throttle with a 200 HTML page. */
        sim_respond_text(res, 200, "text/html; charset=utf-8", throttle_page);
        return;
    }
    sim_respond_app_error(sim, res, 429, "FAILURE", "Rate limit exceeded", true);
    res->retry_after_s = retry_after_s > 0 ? retry_after_s : 1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Applies a fault that answers instead of the endpoint. Returns true
 * when res is final. */
static bool apply_fault(sim_t *sim, sim_request_t *req, sim_response_t *res, sim_fault_t fault)
{
    switch (fault.kind) {
    case SIM_FAULT_HTTP500:
        sim_respond_app_error(sim, res, 500, "FAILURE", "java.lang.NullPointerException", true);
        return true;
    case SIM_FAULT_HTML_THROTTLE:
        respond_throttled(sim, res, true, 0);
        return true;
    case SIM_FAULT_HTTP429:
        respond_throttled(sim, res, false, fault.retry_after_s);
        return true;
    case SIM_FAULT_REVOKE_TOKEN:
        if (req->token[0]) {
            sim_auth_revoke(sim->auth, req->token);
            sim_respond_auth_error(res, 401, "not_authenticated", "Invalid credentials", 10);
            return true;
        }
        return false;
    case SIM_FAULT_SLOW:
        sleep_ms(fault.delay_ms);
        return false;
    case SIM_FAULT_CURSOR_EXPIRED:
        req->expire_cursor = true;
        return false;
    case SIM_FAULT_DROP:
        res->delivery = SIM_DELIVER_DROP;
        return false;
    case SIM_FAULT_TRUNCATE:
        res->delivery = SIM_DELIVER_TRUNCATE;
        return false;
    case SIM_FAULT_MALFORMED:
        res->delivery = SIM_DELIVER_MALFORMED;
        return false;
    case SIM_FAULT_NONE:
        break;
    }
    return false;
}

/* ---- routing ---- */

static void not_found(sim_t *sim, sim_response_t *res)
{
    sim_respond_app_error(sim, res, 404, "FAILURE", "HTTP 404 Not Found", false);
}

static void dispatch(sim_t *sim, sim_request_t *req, const char *url, sim_response_t *res)
{
    if (strncmp(url, "/_sim/", 6) == 0) {
        sim_control(sim, req, url, res);
        return;
    }
    sim_stats_any(sim->stats);
    const char *seg = url + (url[0] == '/');
    size_t seg_len = strcspn(seg, "/");
    req->region = sim_region_parse(seg, seg_len);
    if (req->region < 0 || seg[seg_len] != '/') {
        not_found(sim, res);
        return;
    }
    const char *rest = seg + seg_len;
    int region = req->region;

    if (strcmp(rest, "/ws/oauth/token") == 0 || strcmp(rest, "/oauth/token") == 0) {
        req->path = "/ws/oauth/token";
        if (strcmp(req->method, "POST") != 0) {
            sim_respond_app_error(sim, res, 405, "FAILURE", "HTTP 405 Method Not Allowed", false);
            return;
        }
        sim_fault_t fault = sim_faults_pick(sim->faults, req->path, region);
        if (apply_fault(sim, req, res, fault))
            return;
        sim_auth_token_endpoint(sim, req, res);
        return;
    }

    const char *path = strncmp(rest, "/api/v2/", 8) == 0 ? rest + 4 : rest;
    const struct route *route = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(routes[i].path, path) == 0)
            route = &routes[i];
    if (!route) {
        sim_stats_request(sim->stats, region, NULL);
        not_found(sim, res);
        return;
    }
    req->path = route->path;
    sim_stats_request(sim->stats, region, route->path);
    if (strcmp(req->method, "GET") != 0) {
        sim_respond_app_error(sim, res, 405, "FAILURE", "HTTP 405 Method Not Allowed", false);
        return;
    }
    if (sim_auth_check(sim, req, res) != 0)
        return;
    int remaining = -1;
    int retry_after = sim_ratelimit_admit(sim->ratelimit, req->client_index, &remaining);
    sim_stats_client(sim->stats, region, req->client->client_id, retry_after > 0);
    if (retry_after > 0) {
        sim_stats_throttled(sim->stats, region);
        respond_throttled(sim, res, sim->opts.throttle_mode == SIM_THROTTLE_HTML, retry_after);
        return;
    }
    if (sim->opts.remaining_header)
        res->remaining = remaining;
    sim_fault_t fault = sim_faults_pick(sim->faults, route->path, region);
    if (apply_fault(sim, req, res, fault))
        return;
    route->handler(sim, req, res);
}

/* ---- libmicrohttpd glue ---- */

typedef struct connection_state {
    sim_buf_t body;
    bool too_large;
} connection_state_t;

typedef struct partial_body {
    char *data;
    size_t len;  /* bytes sent before the connection is cut */
} partial_body_t;

static ssize_t partial_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    partial_body_t *pb = cls;
    if (pos >= pb->len)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = pb->len - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, pb->data + pos, n);
    return (ssize_t)n;
}

static void partial_free(void *cls)
{
    partial_body_t *pb = cls;
    free(pb->data);
    free(pb);
}

static struct MHD_Response *build_response(sim_t *sim, sim_response_t *res)
{
    struct MHD_Response *r;
    if (res->delivery == SIM_DELIVER_DROP && res->len > 1) {
        /* Announce the full length, send half, then close: the client
         * sees a connection dropped mid-body. */
        partial_body_t *pb = sim_xmalloc(sizeof *pb);
        pb->data = res->body;
        pb->len = res->len / 2;
        r = MHD_create_response_from_callback(res->len, 16 * 1024, partial_reader, pb, partial_free);
        res->body = NULL;
    } else {
        if (res->delivery == SIM_DELIVER_TRUNCATE && res->len > 1)
            res->len /= 2; /* valid HTTP, cut JSON */
        if (res->delivery == SIM_DELIVER_MALFORMED && res->len > 1)
            res->body[1] = '#'; /* "[#..." or "{#...": never valid JSON */
        r = MHD_create_response_from_buffer(res->len, res->body ? res->body : (char *)"",
                                            res->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        res->body = NULL;
    }
    if (!r)
        return NULL;
    MHD_add_response_header(r, "Content-Type", res->content_type ? res->content_type : "application/json");
    MHD_add_response_header(r, "Server", "Grizzly");
    char value[64];
    uint64_t n = atomic_fetch_add(&sim->request_seq, 1);
    sim_uuid(value, sim->opts.seed, 50, n, 0);
    MHD_add_response_header(r, "x-nj-request-id", value);
    if (res->retry_after_s > 0) {
        snprintf(value, sizeof value, "%d", res->retry_after_s);
        MHD_add_response_header(r, "Retry-After", value);
    }
    if (res->remaining >= 0) {
        snprintf(value, sizeof value, "%d", res->remaining);
        MHD_add_response_header(r, "X-RateLimit-Remaining", value);
    }
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    sim_t *sim = cls;
    connection_state_t *state = *con_cls;
    if (!state) {
        state = sim_xcalloc(1, sizeof *state);
        sim_buf_init(&state->body, 256);
        *con_cls = state;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (state->body.len + *upload_data_size > MAX_BODY)
            state->too_large = true;
        else
            sim_buf_put(&state->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    sim_request_t req = {
        .conn = conn,
        .method = method,
        .region = -1,
        .path = url,
        .body = state->body.data,
        .body_len = state->body.len,
        .client_index = -1,
    };
    sim_response_t res = {.status = 500, .remaining = -1};
    if (state->too_large)
        sim_respond_app_error(sim, &res, 413, "FAILURE", "Request body too large", false);
    else
        dispatch(sim, &req, url, &res);
    struct MHD_Response *r = build_response(sim, &res);
    sim_response_clear(&res);
    if (!r)
        return MHD_NO;
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)res.status, r);
    MHD_destroy_response(r);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    connection_state_t *state = *con_cls;
    if (!state)
        return;
    sim_buf_free(&state->body);
    free(state);
    *con_cls = NULL;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    sim_buf_t b;
    sim_buf_init(&b, 4096);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sim_buf_put(&b, chunk, n);
    fclose(f);
    return sim_buf_steal(&b, NULL);
}

/* libmicrohttpd's errors (a connection it could not accept, serve or give a
 * thread to) on stderr, one line each, so a test's log says why a client
 * saw its connection closed. */
static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[1024];
    int n = snprintf(line, sizeof line, "ninjaone-sim: libmicrohttpd: ");
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

sim_server_t *sim_server_start(sim_t *sim, char *err, size_t errlen)
{
    sim_server_t *server = sim_xcalloc(1, sizeof *server);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)sim->opts.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (sim->opts.threads > 0)
        flags |= MHD_USE_EPOLL;
    else
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    bool tls = sim->opts.tls_cert && sim->opts.tls_key;
    if (tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "this libmicrohttpd was built without TLS support");
            free(server);
            return NULL;
        }
        server->tls_cert = read_file(sim->opts.tls_cert, err, errlen);
        server->tls_key = server->tls_cert ? read_file(sim->opts.tls_key, err, errlen) : NULL;
        if (!server->tls_key) {
            free(server->tls_cert);
            free(server);
            return NULL;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem opts[9];
    int k = 0;
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_error, NULL};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &addr};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 120, NULL};
    if (sim->opts.threads > 0)
        opts[k++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, sim->opts.threads, NULL};
    else
        opts[k++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_STACK_SIZE, 256 * 1024, NULL};
    if (tls) {
        opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, server->tls_cert};
        opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, server->tls_key};
    }
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    server->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, sim, MHD_OPTION_ARRAY,
                                      opts, MHD_OPTION_END);
    if (!server->daemon) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d%s", sim->opts.port,
                 tls ? " (or the TLS certificate/key was refused)" : "");
        free(server->tls_cert);
        free(server->tls_key);
        free(server);
        return NULL;
    }
    return server;
}

int sim_server_port(const sim_server_t *server)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? (int)info->port : -1;
}

void sim_server_stop(sim_server_t *server)
{
    if (!server)
        return;
    MHD_stop_daemon(server->daemon);
    free(server->tls_cert);
    free(server->tls_key);
    free(server);
}
