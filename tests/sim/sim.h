/* The simulator's shared context and the request/response records the
 * router hands to each endpoint family. */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet.h"
#include "util.h"

struct MHD_Connection;
typedef struct sim_auth sim_auth_t;
typedef struct sim_stats sim_stats_t;
typedef struct sim_faults sim_faults_t;
typedef struct sim_ratelimit sim_ratelimit_t;
typedef struct sim_cursors sim_cursors_t;

enum sim_throttle_mode { SIM_THROTTLE_429, SIM_THROTTLE_HTML };

typedef struct sim_options {
    int port;
    int threads; /* 0: a thread per connection */
    uint64_t seed;
    int token_ttl_s;
    int cursor_ttl_s;
    int rate_per_minute;
    int rate_per_hour;
    enum sim_throttle_mode throttle_mode;
    bool remaining_header;
    const char *tls_cert;
    const char *tls_key;
} sim_options_t;

typedef struct sim {
    sim_options_t opts;
    sim_fleet_t *fleet;
    sim_auth_t *auth;
    sim_stats_t *stats;
    sim_faults_t *faults;
    sim_ratelimit_t *ratelimit;
    sim_cursors_t *cursors;
    atomic_ullong request_seq; /* feeds x-nj-request-id and incident ids */
} sim_t;

/* How the server mangles a finished response (fault injection). */
enum sim_delivery { SIM_DELIVER_NORMAL, SIM_DELIVER_DROP, SIM_DELIVER_TRUNCATE, SIM_DELIVER_MALFORMED };

typedef struct sim_response {
    int status;
    char *body; /* heap, owned by the response until the server sends it */
    size_t len;
    const char *content_type;
    int retry_after_s;   /* > 0: send Retry-After */
    int remaining;       /* >= 0: send X-RateLimit-Remaining */
    enum sim_delivery delivery;
} sim_response_t;

typedef struct sim_request {
    struct MHD_Connection *conn;
    const char *method;
    int region;          /* -1 for control paths */
    const char *path;    /* endpoint path, "/v2/..." even when asked as /api/v2 */
    const char *body;
    size_t body_len;
    /* Filled by authentication. */
    int client_index;
    const sim_client_t *client;
    char token[96];
    /* Set by the fault picker: expire the cursor this request touches. */
    bool expire_cursor;
} sim_request_t;

/* Query-string argument (decoded), or NULL. */
const char *sim_arg(const sim_request_t *req, const char *name);
/* Request header, or NULL. */
const char *sim_header(const sim_request_t *req, const char *name);

/* Response builders; each replaces any body already set. */
void sim_respond_buf(sim_response_t *res, int status, sim_buf_t *body);
void sim_respond_text(sim_response_t *res, int status, const char *content_type, const char *text);
/* Application family: {"resultCode","errorMessage","incidentId"}. */
void sim_respond_app_error(sim_t *sim, sim_response_t *res, int status, const char *result_code,
                           const char *message, bool with_incident);
/* Auth gateway family: {"error","error_description","error_code"}. */
void sim_respond_auth_error(sim_response_t *res, int status, const char *error,
                            const char *description, int code);
void sim_response_clear(sim_response_t *res);

/* "WEB_MGMT_SERVICE-2a-<epoch>-<8 letters>", unique per call. */
void sim_incident_id(sim_t *sim, char out[64]);

/* Parses pageSize: default when absent, clamped to [min, max]; returns
 * -1 when present but not a number. */
int sim_page_size(const sim_request_t *req, int dflt, int min, int max);

#endif
