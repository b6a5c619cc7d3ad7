/*
 * admin.h - the local admin endpoint: GET /healthz and Prometheus
 * GET /metrics, served by libmicrohttpd on the runner's own loop (no
 * threads of its own). Off unless [runner] admin_listen is set.
 */
#ifndef RN_ADMIN_H
#define RN_ADMIN_H

#include <sys/socket.h>

#include "internal.h"

typedef struct rn__admin_s rn__admin_t;

/* Parses "address:port": a numeric IPv4 address, an IPv6 address in
 * brackets ("[::1]:9187") or "localhost", and a port 1..65535. 0, or
 * RN_EINVAL with a one-line reason in err. */
int rn__admin_parse_listen(const char *text, struct sockaddr_storage *addr,
                           char *err, size_t errlen);
bool rn__admin_is_loopback(const struct sockaddr_storage *addr);

/* Starts listening when the current generation sets admin_listen (0 when it
 * does not). A negative error (logged) when the address cannot be bound. */
int rn__admin_start(rn__runner_t *runner);
/* Stops the server and closes its handles; the loop must then run for
 * their close callbacks. Safe to call twice or when never started. */
void rn__admin_close(rn__runner_t *runner);
/* After a reload: the address is bound once, so a changed one waits for a
 * restart (logged). */
void rn__admin_reloaded(rn__runner_t *runner);
/* Counts a finished run of `job_name` (a [job] section, or PLUGIN.JOB):
 * status 0 completed, negative failed or cancelled. */
void rn__admin_job_finished(rn__runner_t *runner, const char *job_name,
                            int status);

#endif
