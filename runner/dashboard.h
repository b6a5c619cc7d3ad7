/*
 * dashboard.h - the read-only operator page at GET / of the admin port.
 *
 * Server-rendered HTML with inline CSS, no script and no external asset.
 * A request suspends its connection, sends one round of queries through the
 * asynchronous db service (bounded by a timeout), renders, and resumes the
 * connection; the loop never waits on the database. When the database is
 * down or too slow the page is still rendered from what this process knows,
 * with status 503.
 */
#ifndef RN_DASHBOARD_H
#define RN_DASHBOARD_H

#include <microhttpd.h>

#include "internal.h"

typedef struct rn__dashboard_s rn__dashboard_t;

/* How long a page waits for the database before rendering without it. */
#define RN__DASHBOARD_QUERY_TIMEOUT_MS 3000

/* text (an error message) with every IPv4 and IPv6 address (bracketed,
 * v4-mapped, with a zone) replaced by "[address]", and in every
 * scheme://authority the user information dropped and the host replaced by
 * "[host]" (or "[address]"), its port kept; the host curl names after
 * "Could not resolve host: " and its other phrases replaced by "[host]"
 * (or "[address]"), and every MAC address by "[mac]". New; NULL when out of
 * memory. */
char *rn__dashboard_redact(const char *text);
/* rn__dashboard_redact of a text that was cut short: what is left at its
 * end of an address the cut split (hex digits, '.', ':', '-', '[') is
 * dropped first. New; NULL when out of memory. */
char *rn__dashboard_redact_cut(const char *text);

/* NULL when out of memory. wake(wake_data) is called after a connection
 * was resumed, to let the server run (not from inside the server). */
rn__dashboard_t *rn__dashboard_new(rn__runner_t *runner,
                                   void (*wake)(void *data), void *wake_data);
/* Serves GET / on conn. *con_cls is libmicrohttpd's per-request slot: NULL
 * on the first call, then the page being prepared, which this takes over
 * (the daemon must run with MHD_ALLOW_SUSPEND_RESUME). dash may be NULL on
 * a later call, once the dashboard was closed. */
enum MHD_Result rn__dashboard_serve(rn__dashboard_t *dash,
                                    struct MHD_Connection *conn,
                                    void **con_cls);
/* From the daemon's completion notifier, for any request: con_cls as the
 * notifier got it (a page of this module, or NULL). */
void rn__dashboard_request_ended(void **con_cls);
/* Answers every waiting page with 503 (resumed: the caller lets the daemon
 * run once before stopping it), cancels their queries and frees dash. The
 * pages end on their own once their queries and timers have answered. */
void rn__dashboard_close(rn__dashboard_t *dash);

#endif
