#define _POSIX_C_SOURCE 200809L
#include "sim_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

int simc_start(sim_proc_t *p, const char *const *args)
{
    memset(p, 0, sizeof *p);
    snprintf(p->scheme, sizeof p->scheme, "http");
    const char *argv[64];
    int n = 0;
    bool valgrind = getenv("SIM_VALGRIND") && strcmp(getenv("SIM_VALGRIND"), "1") == 0;
    if (valgrind) {
        argv[n++] = "valgrind";
        argv[n++] = "-q";
        argv[n++] = "--leak-check=full";
        argv[n++] = "--errors-for-leak-kinds=definite,indirect";
        argv[n++] = "--error-exitcode=99";
    }
    argv[n++] = SIM_BINARY;
    argv[n++] = "--port";
    argv[n++] = "0";
    for (int i = 0; args && args[i] && n < 62; i++) {
        if (strcmp(args[i], "--tls-cert") == 0)
            snprintf(p->scheme, sizeof p->scheme, "https");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    int out[2];
    if (pipe(out) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        /* stderr stays the test's: the simulator's errors (libmicrohttpd's
         * included) belong in a failed test's log. */
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    p->pid = pid;
    char line[64];
    size_t len = 0;
    int timeout_ms = valgrind ? 120000 : 20000;
    while (len < sizeof line - 1) {
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            break;
        ssize_t got = read(out[0], line + len, 1);
        if (got <= 0)
            break;
        len++;
        if (line[len - 1] == '\n')
            break;
    }
    line[len] = '\0';
    close(out[0]);
    if (sscanf(line, "port=%d", &p->port) != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        p->pid = 0;
        return -1;
    }
    return 0;
}

int simc_stop(sim_proc_t *p)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    int status = 0;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
        ;
    p->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    simc_resp_t *r = userp;
    size_t n = size * nmemb;
    r->body = realloc(r->body, r->len + n + 1);
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static void copy_header_value(char *dst, size_t cap, const char *line, size_t name_len, size_t n)
{
    const char *v = line + name_len;
    while (*v == ' ')
        v++;
    size_t len = n - (size_t)(v - line);
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userp)
{
    simc_resp_t *r = userp;
    size_t n = size * nmemb;
    static const struct { const char *name; size_t off; size_t cap; } wanted[] = {
        {"content-type:", offsetof(simc_resp_t, content_type), sizeof ((simc_resp_t *)0)->content_type},
        {"retry-after:", offsetof(simc_resp_t, retry_after), sizeof ((simc_resp_t *)0)->retry_after},
        {"x-ratelimit-remaining:", offsetof(simc_resp_t, remaining), sizeof ((simc_resp_t *)0)->remaining},
        {"x-nj-request-id:", offsetof(simc_resp_t, request_id), sizeof ((simc_resp_t *)0)->request_id},
    };
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        size_t k = strlen(wanted[i].name);
        if (n > k && strncasecmp(line, wanted[i].name, k) == 0)
            copy_header_value((char *)r + wanted[i].off, wanted[i].cap, line, k, n);
    }
    return n;
}

simc_resp_t simc_request(const sim_proc_t *p, const char *method, const char *path,
                         const char *content_type, const char *body, const char *header)
{
    simc_resp_t r;
    memset(&r, 0, sizeof r);
    CURL *c = curl_easy_init();
    char url[4096];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", p->scheme, p->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (p->ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, p->ca_file);
    struct curl_slist *headers = NULL;
    char ct[160];
    if (content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        headers = curl_slist_append(headers, ct);
    }
    if (header)
        headers = curl_slist_append(headers, header);
    if (headers)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    r.curl_code = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (r.body && r.curl_code == 0)
        r.json = json_loadb(r.body, r.len, 0, NULL);
    return r;
}

simc_resp_t simc_get(const sim_proc_t *p, const char *path, const char *token)
{
    char header[200];
    if (token)
        snprintf(header, sizeof header, "Authorization: Bearer %s", token);
    return simc_request(p, "GET", path, NULL, NULL, token ? header : NULL);
}

void simc_resp_free(simc_resp_t *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

char *simc_token(const sim_proc_t *p, const char *region, const char *client_id,
                 const char *secret, const char *scope)
{
    char path[64], body[512];
    snprintf(path, sizeof path, "/%s/ws/oauth/token", region);
    int n = snprintf(body, sizeof body, "grant_type=client_credentials&client_id=%s&client_secret=%s",
                     client_id, secret);
    if (scope)
        snprintf(body + n, sizeof body - (size_t)n, "&scope=%s", scope);
    simc_resp_t r = simc_request(p, "POST", path, "application/x-www-form-urlencoded", body, NULL);
    char *token = NULL;
    if (r.status == 200 && r.json)
        token = strdup(json_string_value(json_object_get(r.json, "access_token")));
    simc_resp_free(&r);
    return token;
}

long simc_control(const sim_proc_t *p, const char *what, const char *json_body)
{
    char path[128];
    snprintf(path, sizeof path, "/_sim/%s", what);
    simc_resp_t r = simc_request(p, "POST", path, "application/json", json_body ? json_body : "{}", NULL);
    long status = r.status;
    simc_resp_free(&r);
    return status;
}

char *simc_escape(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = curl_easy_escape(c, s, 0);
    char *copy = strdup(e);
    curl_free(e);
    curl_easy_cleanup(c);
    return copy;
}

json_t *simc_walk_entities(const sim_proc_t *p, const char *path, const char *extra_query,
                           const char *token, int page_size, int *pages)
{
    json_t *all = json_array();
    long long after = 0;
    *pages = 0;
    for (;;) {
        char url[2048];
        snprintf(url, sizeof url, "%s?pageSize=%d&after=%lld%s%s", path, page_size, after,
                 extra_query ? "&" : "", extra_query ? extra_query : "");
        simc_resp_t r = simc_get(p, url, token);
        if (r.status != 200 || !json_is_array(r.json)) {
            simc_resp_free(&r);
            json_decref(all);
            return NULL;
        }
        (*pages)++;
        size_t n = json_array_size(r.json);
        for (size_t i = 0; i < n; i++) {
            json_t *row = json_array_get(r.json, i);
            json_array_append(all, row);
            after = json_integer_value(json_object_get(row, "id"));
        }
        simc_resp_free(&r);
        if ((int)n < page_size || *pages > 100000)
            break;
    }
    return all;
}

json_t *simc_walk_cursor(const sim_proc_t *p, const char *path, const char *extra_query,
                         const char *token, int page_size, int *pages)
{
    json_t *all = json_array();
    char name[64] = "";
    long long expected_offset = 0;
    *pages = 0;
    for (;;) {
        char url[2048];
        if (name[0])
            snprintf(url, sizeof url, "%s?pageSize=%d&cursor=%s", path, page_size, name);
        else
            snprintf(url, sizeof url, "%s?pageSize=%d%s%s", path, page_size,
                     extra_query ? "&" : "", extra_query ? extra_query : "");
        simc_resp_t r = simc_get(p, url, token);
        json_t *cursor = r.json ? json_object_get(r.json, "cursor") : NULL;
        json_t *results = r.json ? json_object_get(r.json, "results") : NULL;
        const char *cname = json_string_value(json_object_get(cursor, "name"));
        bool ok = r.status == 200 && cname && json_is_array(results) &&
                  json_integer_value(json_object_get(cursor, "offset")) == expected_offset &&
                  json_integer_value(json_object_get(cursor, "count")) ==
                      (json_int_t)json_array_size(results) &&
                  (!name[0] || strcmp(name, cname) == 0);
        if (!ok) {
            simc_resp_free(&r);
            json_decref(all);
            return NULL;
        }
        snprintf(name, sizeof name, "%s", cname);
        (*pages)++;
        size_t n = json_array_size(results);
        json_array_extend(all, results);
        expected_offset += (long long)n;
        simc_resp_free(&r);
        if ((int)n < page_size || *pages > 100000)
            break;
    }
    return all;
}

json_t *simc_walk_activities(const sim_proc_t *p, const char *path, const char *extra_query,
                             const char *token, int page_size, int *pages)
{
    json_t *all = json_array();
    long long older = 0;
    *pages = 0;
    for (;;) {
        char url[2048];
        int n = snprintf(url, sizeof url, "%s?pageSize=%d%s%s", path, page_size,
                         extra_query ? "&" : "", extra_query ? extra_query : "");
        if (older)
            snprintf(url + n, sizeof url - (size_t)n, "&olderThan=%lld", older);
        simc_resp_t r = simc_get(p, url, token);
        json_t *acts = r.json ? json_object_get(r.json, "activities") : NULL;
        if (r.status != 200 || !json_is_array(acts)) {
            simc_resp_free(&r);
            json_decref(all);
            return NULL;
        }
        (*pages)++;
        size_t k = json_array_size(acts);
        for (size_t i = 0; i < k; i++) {
            json_t *a = json_array_get(acts, i);
            json_array_append(all, a);
            older = json_integer_value(json_object_get(a, "id"));
        }
        simc_resp_free(&r);
        if (k == 0 || *pages > 100000)
            break;
    }
    return all;
}
