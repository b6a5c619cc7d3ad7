/* explain.h - the stable error codes (and their fixes) of NinjaOne failures
 * whose cause the status alone tells, shared by the ninjaone commands'
 * --json results: {"error": code, "message": ..., "hint": ...}. The codes
 * are listed in README.md ("Error codes"). */
#ifndef NJ_EXPLAIN_H
#define NJ_EXPLAIN_H

#include <stddef.h>

#include "regentra/plugin.h"

#define NJ_HINT_REGION                                                        \
  "check the client id and secret, and pick the region that matches the "    \
  "URL you sign in to NinjaOne with (us, us2, eu, ca, oc); then run "        \
  "'regentra-runner ninjaone test' again"

/* The code of status, or NULL when the status alone does not tell; *hint
 * (static) is the fix, or NULL. */
static inline const char *nj_explain_status(int status, const char **hint) {
  *hint = NULL;
  switch (status) {
  case RN_EAUTH:
    *hint = NJ_HINT_REGION;
    return "auth_refused";
  case RN_EHTTP:
  case RN_ETIMEDOUT:
    *hint = "NinjaOne could not be reached: check the network, a proxy and "
            "base_url_<region>, then run again";
    return "upstream_unavailable";
  case RN_ETHROTTLED:
    *hint = "NinjaOne's rate limit was reached; run again later";
    return "throttled";
  case RN_EUPSTREAM:
  case RN_EJSON:
    *hint = "NinjaOne answered with an error; quote its incidentId to "
            "NinjaOne support if it persists";
    return "upstream_error";
  case RN_ECRYPTO:
    *hint = "is [runner] master_key_file the key the secret was sealed "
            "with? Otherwise connect again with the client secret";
    return "secret_unopenable";
  case RN_ENOSYS:
    *hint = "set [database] url in runner.conf or REGENTRA_DATABASE_URL";
    return "no_database";
  case RN_EDB:
    return "database_error";
  case RN_EINVAL:
    *hint = "see 'regentra-runner ninjaone COMMAND --help'";
    return "invalid_argument";
  default:
    return NULL;
  }
}

#endif
