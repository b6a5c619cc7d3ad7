/* Test helpers: run ninjaone-sim as a child process and talk to it over
 * real sockets with libcurl. */
#ifndef SIM_CLIENT_H
#define SIM_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct sim_proc {
    pid_t pid;
    int port;
    char scheme[8]; /* "http" or "https" */
    char ca_file[256];
} sim_proc_t;

/* Starts the simulator with args (NULL-terminated, without --port), and
 * waits for its "port=" line. With SIM_VALGRIND=1 in the environment it
 * runs under valgrind and a leak or error makes the exit status 99. */
int simc_start(sim_proc_t *p, const char *const *args);
/* SIGTERM, wait, and return the exit status (-1 on a signal death). */
int simc_stop(sim_proc_t *p);

typedef struct simc_resp {
    long status;
    int curl_code;
    char *body;
    size_t len;
    char content_type[128];
    char retry_after[32];
    char remaining[32];
    char request_id[80];
    json_t *json; /* parsed body or NULL */
} simc_resp_t;

/* GET path (e.g. "/eu/v2/organizations?pageSize=7") with an optional
 * bearer token. */
simc_resp_t simc_get(const sim_proc_t *p, const char *path, const char *token);
/* Request with any method and body; header is an optional raw header. */
simc_resp_t simc_request(const sim_proc_t *p, const char *method, const char *path,
                         const char *content_type, const char *body, const char *header);
void simc_resp_free(simc_resp_t *r);

/* Token for a client; scope NULL omits the parameter. Returns a heap
 * string (free()) or NULL. */
char *simc_token(const sim_proc_t *p, const char *region, const char *client_id,
                 const char *secret, const char *scope);

/* POST /_sim/<what> with a JSON body; returns the HTTP status. */
long simc_control(const sim_proc_t *p, const char *what, const char *json_body);

/* Every row of an after-id entity list, walked at page_size. Returns a
 * new JSON array (caller decrefs) or NULL on any HTTP error. */
json_t *simc_walk_entities(const sim_proc_t *p, const char *path, const char *extra_query,
                           const char *token, int page_size, int *pages);
/* Every row of a cursor query report, walked at page_size; checks the
 * cursor name stays constant and offsets advance. NULL on error. */
json_t *simc_walk_cursor(const sim_proc_t *p, const char *path, const char *extra_query,
                         const char *token, int page_size, int *pages);
/* Every activity, walked with olderThan. NULL on error. */
json_t *simc_walk_activities(const sim_proc_t *p, const char *path, const char *extra_query,
                             const char *token, int page_size, int *pages);

/* Percent-encodes s for a query string (heap string). */
char *simc_escape(const char *s);

#endif
