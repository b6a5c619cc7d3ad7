/*
 * http.h - the host's HTTP engine: libcurl multi driven by the libuv loop,
 * with the rate limiter in front of it. Plugins reach it through the
 * http_request / http_header / rate_configure / rate_pause services; tests
 * and the metrics endpoint use what is declared here.
 */
#ifndef RN_HTTP_H
#define RN_HTTP_H

#include "internal.h"
#include "ratelimit.h"

/* The runner's limiter, starting the engine if needed; NULL when it cannot
 * start (logged). Tests use it to inject a clock. */
rn__rate_t *rn__http_rate(rn__runner_t *runner);
/* Re-reads the limiter's clock and admits what is due now (a test that
 * moved an injected clock calls this). */
void rn__http_rate_kick(rn__runner_t *runner);

typedef struct rn__http_stats_s {
  uint64_t started;   /* transfers handed to curl */
  uint64_t completed; /* callbacks with a response */
  uint64_t failed;    /* callbacks with a transport error */
  uint64_t cancelled; /* callbacks with RN_ECANCELED */
  size_t active;      /* in curl now */
  size_t waiting;     /* in the limiter's queues now */
  size_t sockets;     /* poll handles open now */
} rn__http_stats_t;

void rn__http_get_stats(const rn__runner_t *runner, rn__http_stats_t *out);

/* The last transport failure of the runner's engine, as a sentence naming
 * method, host:port and curl's error ("POST to 127.0.0.1:8080: Empty reply
 * from server (curl error 52: ...)"), never path, headers or body; NULL
 * when none failed. Plugins see only RN_EHTTP: a command failing with it
 * quotes this. Valid until the next transfer ends or the engine closes. */
#define RN__HTTP_FAILURE_LEN 512
const char *rn__http_last_failure(const rn__runner_t *runner);

/* Requests sent and 429s seen per rate key and endpoint (URL path), since
 * the engine started. */
typedef void (*rn__http_upstream_fn)(const char *key, const char *endpoint,
                                     uint64_t requests, uint64_t throttled,
                                     void *data);
void rn__http_upstream_foreach(const rn__runner_t *runner,
                               rn__http_upstream_fn fn, void *data);

#endif
