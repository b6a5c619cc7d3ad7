#define _POSIX_C_SOURCE 200809L
#include "auth.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stats.h"

typedef struct token {
    char value[64];
    int client_index;
    unsigned scopes;
    int64_t expires_mono_ms;
    bool revoked;
} token_t;

struct sim_auth {
    pthread_mutex_t lock;
    sim_rng_t rng;
    int ttl_s;
    token_t *tokens;
    size_t n_tokens, cap_tokens;
};

static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

sim_auth_t *sim_auth_new(uint64_t seed, int ttl_s)
{
    sim_auth_t *auth = sim_xcalloc(1, sizeof *auth);
    pthread_mutex_init(&auth->lock, NULL);
    auth->rng.state = seed ^ 0x6a09e667f3bcc909ULL;
    auth->ttl_s = ttl_s;
    return auth;
}

void sim_auth_free(sim_auth_t *auth)
{
    if (!auth)
        return;
    free(auth->tokens);
    pthread_mutex_destroy(&auth->lock);
    free(auth);
}

/* Tokens look opaque ("<32 chars>.<16 chars>") but the second part starts
 * with the table index in base 62, so lookups need no hash table. */
static void make_token(sim_auth_t *auth, size_t index, char out[64])
{
    for (int i = 0; i < 32; i++)
        out[i] = alnum[sim_rng_next(&auth->rng) % 62];
    out[32] = '.';
    size_t v = index;
    for (int i = 5; i >= 0; i--) {
        out[33 + i] = alnum[v % 62];
        v /= 62;
    }
    for (int i = 39; i < 49; i++)
        out[i] = alnum[sim_rng_next(&auth->rng) % 62];
    out[49] = '\0';
}

static ptrdiff_t token_index(const char *value)
{
    if (strlen(value) != 49 || value[32] != '.')
        return -1;
    size_t v = 0;
    for (int i = 0; i < 6; i++) {
        const char *p = strchr(alnum, value[33 + i]);
        if (!p || !*p)
            return -1;
        v = v * 62 + (size_t)(p - alnum);
    }
    return (ptrdiff_t)v;
}

/* In-place application/x-www-form-urlencoded decoding. */
static void form_decode(char *s)
{
    char *out = s;
    for (char *p = s; *p; p++) {
        if (*p == '+') {
            *out++ = ' ';
        } else if (*p == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
            char hex[3] = {p[1], p[2], 0};
            *out++ = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
}

typedef struct form {
    char *copy; /* owns the strings below */
    const char *grant_type, *client_id, *client_secret, *scope;
    bool has_scope;
} form_t;

static void parse_form(const char *body, size_t len, form_t *f)
{
    memset(f, 0, sizeof *f);
    f->copy = sim_xstrndup(body ? body : "", body ? len : 0);
    char *save = NULL;
    for (char *pair = strtok_r(f->copy, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        const char *value = "";
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        form_decode(pair);
        form_decode((char *)value);
        if (strcmp(pair, "grant_type") == 0)
            f->grant_type = value;
        else if (strcmp(pair, "client_id") == 0)
            f->client_id = value;
        else if (strcmp(pair, "client_secret") == 0)
            f->client_secret = value;
        else if (strcmp(pair, "scope") == 0) {
            f->scope = value;
            f->has_scope = true;
        }
    }
}

static const struct { const char *name; unsigned bit; } scope_names[] = {
    {"monitoring", SIM_SCOPE_MONITORING},
    {"management", SIM_SCOPE_MANAGEMENT},
    {"control", SIM_SCOPE_CONTROL},
    {"offline_access", SIM_SCOPE_OFFLINE_ACCESS},
};

/* Space separated scope words to bits; -1 on an unknown word. */
static long scope_bits(const char *text)
{
    long bits = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *start = p;
        while (*p && *p != ' ')
            p++;
        size_t n = (size_t)(p - start);
        if (!n)
            continue;
        bool known = false;
        for (size_t i = 0; i < sizeof scope_names / sizeof scope_names[0]; i++)
            if (strlen(scope_names[i].name) == n && strncmp(scope_names[i].name, start, n) == 0) {
                bits |= scope_names[i].bit;
                known = true;
            }
        if (!known)
            return -1;
    }
    return bits;
}

static void scope_text(unsigned bits, char *out, size_t n)
{
    out[0] = '\0';
    for (size_t i = 0; i < sizeof scope_names / sizeof scope_names[0]; i++)
        if (bits & scope_names[i].bit) {
            if (out[0])
                strncat(out, " ", n - strlen(out) - 1);
            strncat(out, scope_names[i].name, n - strlen(out) - 1);
        }
}

/* Basic client authentication (RFC 6749 2.3.1), reportedly advertised by
 * NinjaOne; body credentials win when both are present. */
static void basic_credentials(const sim_request_t *req, char *id, char *secret, size_t n)
{
    id[0] = secret[0] = '\0';
    const char *h = sim_header(req, "Authorization");
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char decoded[512];
    size_t out = 0;
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = h + 6; *p && *p != '=' && out + 1 < sizeof decoded; p++) {
        const char *k = strchr(b64, *p);
        if (!k || !*k)
            return;
        acc = (acc << 6) | (unsigned)(k - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            decoded[out++] = (char)((acc >> bits) & 0xff);
        }
    }
    decoded[out] = '\0';
    char *colon = strchr(decoded, ':');
    if (!colon)
        return;
    *colon = '\0';
    size_t id_len = strnlen(decoded, n - 1);
    memcpy(id, decoded, id_len);
    id[id_len] = '\0';
    size_t secret_len = strnlen(colon + 1, n - 1);
    memcpy(secret, colon + 1, secret_len);
    secret[secret_len] = '\0';
}

void sim_auth_token_endpoint(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    form_t f;
    parse_form(req->body, req->body_len, &f);
    sim_stats_token(sim->stats, req->region, f.has_scope ? f.scope : "");
    char basic_id[256], basic_secret[256];
    basic_credentials(req, basic_id, basic_secret, sizeof basic_id);
    const char *client_id = f.client_id ? f.client_id : basic_id[0] ? basic_id : NULL;
    const char *secret = f.client_secret ? f.client_secret : basic_id[0] ? basic_secret : NULL;

    if (!f.grant_type || !*f.grant_type) {
        sim_respond_auth_error(res, 400, "invalid_request", "Missing grant_type parameter", -1);
    } else if (strcmp(f.grant_type, "client_credentials") != 0) {
        sim_respond_auth_error(res, 400, "unsupported_grant_type",
                               "Only client_credentials is supported by this client", -1);
    } else if (!client_id || !*client_id) {
        sim_respond_auth_error(res, 400, "invalid_request", "Missing client_id parameter", -1);
    } else {
        const sim_fleet_t *fleet = sim->fleet;
        int index = -1;
        for (size_t i = 0; i < fleet->n_clients; i++)
            if (fleet->clients[i].region == req->region &&
                strcmp(fleet->clients[i].client_id, client_id) == 0)
                index = (int)i;
        if (index < 0) {
            /* NinjaOne's answer for an id it does not know on this host,
             * typically a client of another region. */
            char incident[64];
            sim_incident_id(sim, incident);
            sim_buf_t b;
            sim_buf_init(&b, 128);
            sim_json_t j;
            sj_init(&j, &b);
            sj_obj(&j);
            sj_str(&j, "resultCode", "Client app not exist");
            sj_str(&j, "incidentId", incident);
            sj_end_obj(&j);
            sim_respond_buf(res, 404, &b);
        } else if (!secret || strcmp(secret, fleet->clients[index].client_secret) != 0) {
            sim_respond_auth_error(res, 400, "invalid_client", "Bad client credentials", -1);
        } else {
            const sim_client_t *client = &fleet->clients[index];
            long requested = f.has_scope ? scope_bits(f.scope) : (long)client->scopes;
            unsigned granted = requested < 0 ? 0 : (unsigned)requested & client->scopes;
            if (requested < 0 || granted == 0) {
                sim_respond_auth_error(res, 400, "invalid_scope",
                                       "The requested scope is invalid, unknown, or not "
                                       "configured for this client",
                                       -1);
            } else {
                char value[64];
                pthread_mutex_lock(&sim->auth->lock);
                sim_auth_t *auth = sim->auth;
                if (auth->n_tokens == auth->cap_tokens) {
                    auth->cap_tokens = auth->cap_tokens ? auth->cap_tokens * 2 : 64;
                    auth->tokens = sim_xrealloc(auth->tokens, auth->cap_tokens * sizeof *auth->tokens);
                }
                token_t *t = &auth->tokens[auth->n_tokens];
                make_token(auth, auth->n_tokens, t->value);
                auth->n_tokens++;
                t->client_index = index;
                t->scopes = granted;
                t->revoked = false;
                t->expires_mono_ms = sim_monotonic_ms() + (int64_t)auth->ttl_s * 1000;
                memcpy(value, t->value, sizeof value);
                pthread_mutex_unlock(&sim->auth->lock);
                char scopes[128];
                scope_text(granted, scopes, sizeof scopes);
                sim_buf_t b;
                sim_buf_init(&b, 192);
                sim_json_t j;
                sj_init(&j, &b);
                sj_obj(&j);
                sj_str(&j, "access_token", value);
                sj_i64(&j, "expires_in", sim->auth->ttl_s);
                sj_str(&j, "scope", scopes);
                sj_str(&j, "token_type", "Bearer");
                sj_end_obj(&j);
                sim_respond_buf(res, 200, &b);
            }
        }
    }
    free(f.copy);
}

int sim_auth_check(sim_t *sim, sim_request_t *req, sim_response_t *res)
{
    const char *h = sim_header(req, "Authorization");
    if (!h) {
        sim_respond_auth_error(res, 400, "missing_header", "Missing Authorization header", 2);
        return -1;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0 || !h[7] || strlen(h + 7) >= sizeof req->token) {
        sim_respond_auth_error(res, 400, "invalid_header", "Invalid Authorization header", 1);
        return -1;
    }
    const char *value = h + 7;
    ptrdiff_t index = token_index(value);
    bool ok = false;
    sim_auth_t *auth = sim->auth;
    pthread_mutex_lock(&auth->lock);
    if (index >= 0 && (size_t)index < auth->n_tokens) {
        const token_t *t = &auth->tokens[index];
        const sim_client_t *client = &sim->fleet->clients[t->client_index];
        ok = strcmp(t->value, value) == 0 && !t->revoked &&
             sim_monotonic_ms() < t->expires_mono_ms && client->region == req->region;
        if (ok) {
            req->client_index = t->client_index;
            req->client = client;
            snprintf(req->token, sizeof req->token, "%s", value);
        }
    }
    pthread_mutex_unlock(&auth->lock);
    if (!ok) {
        sim_respond_auth_error(res, 401, "not_authenticated", "Invalid credentials", 10);
        return -1;
    }
    return 0;
}

void sim_auth_revoke(sim_auth_t *auth, const char *token)
{
    ptrdiff_t index = token_index(token);
    pthread_mutex_lock(&auth->lock);
    if (index >= 0 && (size_t)index < auth->n_tokens &&
        strcmp(auth->tokens[index].value, token) == 0)
        auth->tokens[index].revoked = true;
    pthread_mutex_unlock(&auth->lock);
}

void sim_auth_revoke_all(sim_auth_t *auth)
{
    pthread_mutex_lock(&auth->lock);
    for (size_t i = 0; i < auth->n_tokens; i++)
        auth->tokens[i].revoked = true;
    pthread_mutex_unlock(&auth->lock);
}
