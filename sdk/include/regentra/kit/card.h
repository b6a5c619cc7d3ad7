/*
 * regentra/kit/card.h - the integration card of a device source, as
 * operator commands: `GROUP test|connect|orgs|map|sync|disconnect|status`.
 *
 * A source fills one rk_provider_t: its words (source name, display name,
 * regions, help texts, error hints) and two asynchronous hooks,
 * authenticate a credential and list the organizations it sees. The card
 * does the rest the same way for every source: the MSP and tenant checks,
 * sealing the secret through the host (a secret file is only ever read by a
 * local command line, never from a queued payload), the credential row,
 * discovery into organization mappings, the three mapping actions and the
 * bulk map (--accept-suggestions, --from-file), disconnect (credential
 * zeroed, assets retired, every affected customer's audit trail told),
 * status, the audit rows (SOURCE_CONNECTED, SOURCE_DISCOVERY,
 * SOURCE_DISCONNECTED, ORG_MAPPING_*) and the --json shapes, where a failure
 * is {"error": code, "message", "hint"}. With the two device hooks (kit 1.1)
 * it also runs `sync`: every MAPPED organization of an active credential is
 * walked with that credential, its rows normalized into assets, and each
 * company's pull written in one transaction (rn_assets_sync) and recorded as
 * the credential's "asset_sync" run; one failed company spoils no other.
 *
 * Link: -lregentra_kit -lregentra_devsrc (pkg-config regentra-sdk). The card
 * runs on host services only; the provider table is read by its struct_size,
 * so fields are only ever appended.
 *
 * Hooks run on the loop thread and never block. A hook either returns a
 * negative error at once (and never calls rk_session_done), or returns 0
 * and calls rk_session_done exactly once, cancellation included.
 */
#ifndef REGENTRA_KIT_CARD_H
#define REGENTRA_KIT_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "regentra/devsrc.h"
#include "regentra/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One run of one card command, as a hook sees it. Owned by the card. */
typedef struct rk_session_s rk_session_t;

/* The credential a hook authenticates. Everything borrowed from the card:
 * valid until the hook calls rk_session_done; the secret bytes are wiped by
 * the card once discovery ends, so a provider copies what it keeps. */
typedef struct rk_credential_s {
  uint32_t struct_size;
  int64_t msp_org_id; /* the MSP that owns the credential */
  const char *region; /* one of the provider's regions, or its one region */
  /* RK_ORGS_GIVEN: the organization (tenant) to authenticate in; else
   * NULL: one credential sees every organization. */
  const char *tenant;
  const char *client_id;
  const char *secret; /* not NUL-terminated: secret_len bytes */
  size_t secret_len;
  /* Append below this line only. */
} rk_credential_t;

/* Provider flags. */
enum rk_provider_flags {
  /* The token answer names a granted scope: test and connect report it
   * (granted_scope, scope_wider_than_requested). */
  RK_REPORTS_SCOPE = 1,
  /* The API cannot list the organizations the credential reaches (Graph
   * with an app-only token cannot list consented tenants): the operator
   * names them at test and connect (--orgs ID,ID...), the card
   * authenticates in each one, and list_orgs is not used. */
  RK_ORGS_GIVEN = 2,
};

/* What a command adds to one credential's `status` (see status_extra). */
typedef struct rk_status_extra_s {
  char *json;      /* new (host memory) JSON object merged into the
                      credential's status object; NULL = nothing */
  char line[1024]; /* appended to the text, after a newline and indent;
                      "" = nothing */
} rk_status_extra_t;

typedef struct rk_provider_s {
  uint32_t struct_size; /* sizeof(rk_provider_t) at build time */

  /* ---- words */
  /* [a-z0-9_-]+: the devsrc provider and asset source, the command group
   * and, upper-cased, the prefix of the audit events (NINJAONE_CONNECTED). */
  const char *source;
  const char *display_name; /* "NinjaOne", in every sentence */
  /* '|'-separated region words ("us|us2|eu|ca|oc"), or NULL: every
   * credential is saved under the one `region`. */
  const char *regions;
  const char *region;         /* with regions NULL, e.g. "global" */
  const char *region_help;    /* "the NinjaOne region you sign in to" */
  const char *client_id_help; /* where the operator finds the client id */
  /* --refresh's help; NULL: "list the organizations again before listing" */
  const char *refresh_help;
  /* When the credential sees no organization: the message and the fix. */
  const char *no_orgs_message;
  const char *no_orgs_hint;
  /* RK_REPORTS_SCOPE: appended to test's text when the granted scope is
   * wider than asked ("; warning: wider than ..."). */
  const char *scope_warning;
  /* --from-file: what an organization id looks like, for its errors
   * ("digits"), and the check; NULL = any text without a comma. */
  const char *org_id_form;
  bool (*org_id_valid)(const char *external_id);
  /* RK_ORGS_GIVEN: the help of --orgs. */
  const char *orgs_help;
  uint32_t flags; /* enum rk_provider_flags */

  /* ---- hooks */
  /* Authenticates rk_session_credential(s). On success it may report the
   * host it talked to (rk_session_set_host) and the granted scope. */
  int (*authenticate)(rk_session_t *s);
  /* After a successful authenticate: every organization the credential
   * sees, each through rk_session_add_org; the walk's shape through
   * rk_session_set_walk. Not used with RK_ORGS_GIVEN. */
  int (*list_orgs)(rk_session_t *s);
  /* The stable --json code of a failure whose status alone tells its cause,
   * and the fix (*hint, static or NULL); NULL = the card's own words. */
  const char *(*explain)(int status, const char **hint);
  /* Optional, inside status's transaction (a worker thread: db_tx_* only):
   * what to add to the status of the credential of (msp, region). */
  int (*status_extra)(void *state, rn_devsrc_t *ds, int64_t msp_org_id,
                      const char *region, rk_status_extra_t *out);
  /* The plugin's own jobs (sync, plan, ...), listed after the card's;
   * NULL-terminated, or NULL. */
  const rn_job_def_t *const *jobs;

  /* ---- kit 1.1: the card's `sync`. Both hooks, or neither: a source
   * whose walk is its own (one walk over every organization) leaves them
   * NULL and keeps its sync among its jobs. */
  /* Starts the device walk of one MAPPED organization, org (its external
   * id), with rk_session_credential(s) (RK_ORGS_GIVEN: authenticating in
   * tenant org). Every device row goes to rk_session_add_device, each page
   * may be shown with rk_session_progress; ends with rk_session_done. */
  int (*walk_devices)(rk_session_t *s, const char *org);
  /* Inside rk_session_add_device: the row as an asset, strings borrowed
   * from the row (the card copies them; external_org_id NULL = org). 1: an
   * asset; 0: not one (counted, never written); negative: the row is
   * unusable. A row without external_id is unusable. */
  int (*normalize)(const void *device, rn_asset_t *out);
  /* sync's words: its help line (NULL: "the devices of mapped
   * organizations become company assets"); what an organization is called
   * in its messages ("tenant"; NULL = "organization"); the --json key of
   * the per-company count of rows normalize skipped ("personal_skipped";
   * NULL = "skipped"). */
  const char *sync_help;
  const char *org_noun;
  const char *skipped_name;
  /* Append below this line only. */
} rk_provider_t;

/* The card's jobs for provider, then provider->jobs: NULL-terminated,
 * static storage, valid while the plugin is loaded. Call it once, from the
 * entry function (it keeps host and provider, both borrowed for the life of
 * the load). NULL when the provider table is unusable (the reason goes to
 * stderr: there is no ctx to log to yet). */
const rn_job_def_t *const *rk_card_jobs(const rn_host_t *host,
                                        const rk_provider_t *provider);

/* ---- for hooks */

const rk_credential_t *rk_session_credential(const rk_session_t *s);
void *rk_session_state(const rk_session_t *s); /* the plugin's state */
rn_ctx_t *rk_session_ctx(const rk_session_t *s);
rn_job_t *rk_session_job(const rk_session_t *s);
/* The provider's own data for this session (its API client): release is
 * called once when the command ends, whatever happened. */
void rk_session_set_data(rk_session_t *s, void *data,
                         void (*release)(void *data));
void *rk_session_data(const rk_session_t *s);
/* Where the API is, for messages ("eu.ninjarmm.com" or a base URL);
 * copied. */
void rk_session_set_host(rk_session_t *s, const char *api_host);
/* The scope the token grants (copied; NULL = none) and whether it is wider
 * than asked. */
void rk_session_set_scope(rk_session_t *s, const char *granted, bool wider);
/* One organization the credential sees (strings copied; an empty name
 * reads as the id; description NULL = none). */
int rk_session_add_org(rk_session_t *s, const char *external_id,
                       const char *name, const char *description);
/* How the organization walk went: stopped at a cap, pages read. */
void rk_session_set_walk(rk_session_t *s, bool truncated, uint64_t pages);
/* Shows "listing <display> organizations" (in sync: "walking <display>
 * devices", with the organizations done and the devices so far) with the
 * pages so far to a person watching the command. */
void rk_session_progress(rk_session_t *s, uint64_t pages);
/* sync, from walk_devices: one raw device row, borrowed for the call. The
 * card normalizes it at once and keeps a copy of the asset. 0, or a
 * negative error (the walk stops: return it from the page callback); the
 * card has then recorded the failure, naming the organization. */
int rk_session_add_device(rk_session_t *s, const void *device);
/* Why a hook failed at once (before it returns its negative error);
 * copied. */
void rk_session_set_error(rk_session_t *s, const char *message);
/* Ends the hook: 0, or a negative error with a message for the operator
 * (copied; NULL = the error's text). Never name the secret in it. */
void rk_session_done(rk_session_t *s, int status, const char *message);

/* ---- for a source's own jobs */

/* Inside a transaction: 0 when msp_org_id names an organization of kind
 * MSP; RN_ENOENT when it names none, RN_ETENANT when it names another kind
 * (a customer), with the reason in rn_devsrc_error(ds). */
int rk_check_msp(rn_devsrc_t *ds, int64_t msp_org_id);

#ifdef __cplusplus
}
#endif
#endif
