/* OAuth 2.0 client credentials as NinjaOne's token endpoint answers it,
 * and bearer checks for every API request. */
#ifndef SIM_AUTH_H
#define SIM_AUTH_H

#include "sim.h"

sim_auth_t *sim_auth_new(uint64_t seed, int ttl_s);
void sim_auth_free(sim_auth_t *auth);

/* POST <region>/ws/oauth/token (and /oauth/token). */
void sim_auth_token_endpoint(sim_t *sim, sim_request_t *req, sim_response_t *res);

/* Checks the Authorization header against the request's region. Returns
 * 0 and fills req->client*, or -1 with the gateway error in res. */
int sim_auth_check(sim_t *sim, sim_request_t *req, sim_response_t *res);

/* Revokes one token (fault "revoke_token") or every token. */
void sim_auth_revoke(sim_auth_t *auth, const char *token);
void sim_auth_revoke_all(sim_auth_t *auth);

#endif
