/* graphsim.h - the Microsoft Graph / Entra ID simulator (graph-sim): shared
 * by main.c (command line, fixture) and server.c (HTTP). */
#ifndef GRAPHSIM_H
#define GRAPHSIM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define GS_MAX_TOKENS 4096
#define GS_MAX_FAULTS 32
#define GS_MAX_PAGE 1000

/* One fault rule of POST /_sim/faults. */
typedef struct gs_fault_s {
  char endpoint[64]; /* "token", "managedDevices" or "*" */
  int status;        /* 429, 500 or 503 */
  int retry_after;   /* seconds, 429 only */
  int64_t nth;       /* fire on the nth matching request after adding (1 = next) */
  int64_t count;     /* how many times in a row */
  int64_t matched, fired;
} gs_fault_t;

typedef struct gs_token_s {
  char value[48];
  size_t tenant; /* index into the fixture's tenants */
  int64_t expires_s;
} gs_token_t;

typedef struct gs_sim_s {
  json_t *fleet;   /* the fixture: {"app": {...}, "tenants": [...]} */
  const char *client_id, *client_secret; /* borrowed from fleet */
  int token_ttl_s;
  int default_page;
  uint64_t seed;
  int port;
  /* Every handler runs on the one MHD polling thread: no locks. */
  gs_token_t tokens[GS_MAX_TOKENS];
  size_t n_tokens;
  uint64_t token_serial;
  gs_fault_t faults[GS_MAX_FAULTS];
  size_t n_faults;
  json_t *stats; /* {"requests": N, "tokenRequests": N, "paths": {..}, ...} */
} gs_sim_t;

/* Loads and checks the fixture; NULL with a message in err. */
json_t *gs_fleet_load(const char *path, char *err, size_t errlen);

/* Starts serving on 127.0.0.1:port (0 = any); sets sim->port. Returns the
 * daemon (struct MHD_Daemon *) or NULL with a message in err. */
void *gs_server_start(gs_sim_t *sim, int port, char *err, size_t errlen);
void gs_server_stop(void *daemon);

#endif
