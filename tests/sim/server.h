/* HTTP front: libmicrohttpd on 127.0.0.1, region prefixes, routing,
 * authentication, rate limiting and fault delivery. */
#ifndef SIM_SERVER_H
#define SIM_SERVER_H

#include "sim.h"

typedef struct sim_server sim_server_t;

/* Starts listening; returns NULL with a message in err. */
sim_server_t *sim_server_start(sim_t *sim, char *err, size_t errlen);
int sim_server_port(const sim_server_t *server);
void sim_server_stop(sim_server_t *server);

#endif
