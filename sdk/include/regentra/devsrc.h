/*
 * regentra/devsrc.h - the device-source library.
 *
 * What every device source needs beyond fetching and normalizing, done once:
 * credentials, organization mappings, assets with cross-source dedup and
 * retirement, signals with evidence behind a PII guard, the audit log and the
 * PSA ticket bridge. Plugins link it (libregentra-devsrc.a); it uses only the
 * host services of <regentra/plugin.h>.
 *
 * Every function runs inside a database transaction: call them from the
 * rn_db_tx_fn you pass to host->db_transaction (a worker thread), with an
 * rn_devsrc_t bound to that transaction. They return 0 or a negative RN_E*
 * error; on error rn_devsrc_error() says what and where, and the caller
 * returns the error so that the whole transaction rolls back: nothing is
 * half written.
 *
 * Tenant isolation: the MSP organization (the platform customer that owns
 * the RMM credential) and a customer compliance organization (one of the
 * MSP's clients) are different types, so one cannot be passed for the
 * other. Credential lookups take the MSP; signals, evidence and customer
 * audit rows take the customer; every query filters on the id it was given.
 */
#ifndef REGENTRA_DEVSRC_H
#define REGENTRA_DEVSRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "regentra/plugin.h"

/* The library's version: like the kit's (<regentra/kit.h>), a promise about
 * the source. A minor release only appends functions, and fields at the end
 * of a struct below its "append below this line" comment; test
 * RN_DEVSRC_VERSION_MINOR with #if for a feature a later minor added.
 * 1.1: rn_devsrc_transaction_with and rn_devsrc_tx_opts_t. */
#define RN_DEVSRC_VERSION_MAJOR 1
#define RN_DEVSRC_VERSION_MINOR 1

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ tenancy */

typedef struct rn_msp_org_s {
  int64_t id;
} rn_msp_org_t;
typedef struct rn_customer_org_s {
  int64_t id;
} rn_customer_org_t;
typedef struct rn_company_s {
  int64_t id;
} rn_company_t;

#define RN_MSP_ORG(n) ((rn_msp_org_t){(n)})
#define RN_CUSTOMER_ORG(n) ((rn_customer_org_t){(n)})
#define RN_COMPANY(n) ((rn_company_t){(n)})

/* One transaction's worth of library state. */
typedef struct rn_devsrc_s {
  const rn_host_t *host;
  rn_db_tx_t *tx;
  int64_t now_ms;    /* the clock every row of this transaction uses */
  char error[1024];  /* the last error, for rn_devsrc_error */
} rn_devsrc_t;

void rn_devsrc_init(rn_devsrc_t *ds, const rn_host_t *host, rn_db_tx_t *tx,
                    int64_t now_ms);
const char *rn_devsrc_error(const rn_devsrc_t *ds); /* borrowed */
/* Records what went wrong (for rn_devsrc_error) and returns err: a caller's
 * own check fails the same way the library's do. */
int rn_devsrc_fail(rn_devsrc_t *ds, int err, const char *fmt, ...)
    RN_PRINTF(3, 4);

/* The body of rn_devsrc_transaction: on a worker thread inside BEGIN, with
 * ds bound to the transaction (db_tx_* services only). 0 commits; a
 * negative error rolls everything back. */
typedef int (*rn_devsrc_tx_fn)(rn_devsrc_t *ds, void *data);
/* On the loop: status 0 (committed) or the error; error (borrowed, NULL on
 * success) says what failed: the body's rn_devsrc_error, or "database: ..."
 * when the transaction itself failed. */
typedef void (*rn_devsrc_done_cb)(rn_ctx_t *ctx, int status, const char *error,
                                  void *data);
/* Runs body in one transaction through host->db_transaction with an
 * rn_devsrc_t whose clock is host->now_ms(ctx) at this call. Fails at once
 * (RN_ENOSYS: the host has no database; RN_ENOMEM) without calling done,
 * or calls done exactly once. */
int rn_devsrc_transaction(const rn_host_t *host, rn_ctx_t *ctx,
                          rn_devsrc_tx_fn body, rn_devsrc_done_cb done,
                          void *data);

/* Devsrc 1.1. How rn_devsrc_transaction_with runs a transaction. Write it
 * with RN_DEVSRC_TX_OPTS_INIT; a field left 0 is the default. */
typedef struct rn_devsrc_tx_opts_s {
  uint32_t struct_size; /* set by RN_DEVSRC_TX_OPTS_INIT */
  /* The clock of the transaction's rows (epoch ms), for a run whose writes
   * must all carry the run's own "now"; 0 = host->now_ms(ctx) at the call. */
  int64_t now_ms;
  /* Devsrc 1.1+: append below this line only. */
} rn_devsrc_tx_opts_t;

#define RN_DEVSRC_TX_OPTS_INIT {sizeof(rn_devsrc_tx_opts_t), 0}

/* rn_devsrc_transaction with options (borrowed; NULL = the defaults). Read
 * up to opts->struct_size: fields after it read as 0. RN_EINVAL, without
 * calling done, when struct_size does not cover itself. */
int rn_devsrc_transaction_with(const rn_host_t *host, rn_ctx_t *ctx,
                               const rn_devsrc_tx_opts_t *opts,
                               rn_devsrc_tx_fn body, rn_devsrc_done_cb done,
                               void *data);

/* --------------------------------------------------------- credentials */

typedef struct rn_credential_s {
  int64_t id;
  rn_msp_org_t msp;
  char provider[32];
  char region[16];
  char client_id[256];
  char *sealed_secret;  /* new (host->free); NULL when inactive */
  bool is_active;
  bool first_evidence_synced; /* first_evidence_synced_at is set */
} rn_credential_t;

void rn_credential_release(const rn_host_t *host, rn_credential_t *cred);

/* Saves the sealed secret for (msp, provider, region): inserts, or replaces
 * the sealed values of an existing row and reactivates it. The key version
 * is read from the sealed text. */
int rn_credential_save(rn_devsrc_t *ds, rn_msp_org_t msp, const char *provider,
                       const char *region, const char *client_id,
                       const char *sealed_secret, int64_t *credential_id);
/* RN_ENOENT when there is none. */
int rn_credential_get(rn_devsrc_t *ds, rn_msp_org_t msp, const char *provider,
                      const char *region, rn_credential_t *out);
/* Zeroes the sealed columns, sets is_active=false and clears
 * first_evidence_synced_at, so that the first evidence sweep after the next
 * connect is a dry run again (the ticket bridge stays quiet), as after the
 * first connect. Clearing a set stamp writes FIRST_EVIDENCE_SYNC_CLEARED on
 * the MSP org with the previous value. Idempotent. */
int rn_credential_deactivate(rn_devsrc_t *ds, rn_msp_org_t msp,
                             const char *provider, const char *region);
/* Stamps first_evidence_synced_at if still NULL. */
int rn_credential_mark_first_evidence(rn_devsrc_t *ds, rn_msp_org_t msp,
                                      const char *provider, const char *region);
/* Records the outcome of a run: what is one of "discovery", "asset_sync",
 * "evidence_sweep"; details is a JSON object (copied). */
int rn_credential_record_run(rn_devsrc_t *ds, rn_msp_org_t msp,
                             const char *provider, const char *region,
                             const char *what, const char *details_json);

/* ------------------------------------------------------------ mappings */

typedef enum rn_mapping_state {
  RN_MAPPING_PENDING = 1,
  RN_MAPPING_MAPPED,
  RN_MAPPING_IGNORED
} rn_mapping_state_t;

typedef struct rn_discovered_org_s {
  const char *external_id;
  const char *name;
} rn_discovered_org_t;

typedef struct rn_discovery_counts_s {
  int64_t seen, added, renamed, vanished, reappeared;
} rn_discovery_counts_t;

/* Upserts what discovery saw: new orgs become PENDING with a suggestion,
 * renamed ones are updated, ones not seen in a complete walk are flagged
 * vanished (never deleted). A walk that was not complete flags nothing. */
int rn_mappings_discovered(rn_devsrc_t *ds, rn_msp_org_t msp,
                           const char *provider, const char *region,
                           const rn_discovered_org_t *orgs, size_t count,
                           bool complete, rn_discovery_counts_t *counts);

/* The three operator actions. `actor` names who acted (audited on the MSP
 * org). An IGNORED mapping changes only with allow_from_ignored. A company
 * of another MSP is refused with RN_ETENANT; an org never discovered with
 * RN_ENOENT. *company_out (optional) receives the bound company. */
int rn_mapping_use_existing(rn_devsrc_t *ds, rn_msp_org_t msp,
                            const char *provider, const char *region,
                            const char *external_org_id, rn_company_t company,
                            bool allow_from_ignored, const char *actor);
int rn_mapping_create_new(rn_devsrc_t *ds, rn_msp_org_t msp,
                          const char *provider, const char *region,
                          const char *external_org_id, bool allow_from_ignored,
                          const char *actor, rn_company_t *company_out);
/* Also retires the ACTIVE assets that came from that organization (rows
 * kept): "don't sync" takes its devices out of the PSA asset list, and the
 * rows they had deduplicated come back ACTIVE. The ORG_MAPPING_IGNORED
 * audit row carries assets_retired and assets_restored. */
int rn_mapping_ignore(rn_devsrc_t *ds, rn_msp_org_t msp, const char *provider,
                      const char *region, const char *external_org_id,
                      const char *actor);

/* -------------------------------------------------------------- assets */

/* One normalized device. Strings may be NULL. */
typedef struct rn_asset_s {
  const char *external_id;  /* the source's id, unique per source and MSP */
  const char *name;
  const char *hostname;
  const char *serial_number;
  const char *const *mac_addresses; /* NULL-terminated; any common format */
  const char *os_name;
  const char *device_class;
  const char *manufacturer;
  const char *model;
  int64_t last_seen_ms;     /* 0 = unknown */
  const char *external_org_id; /* the source's organization; NULL = unknown */
} rn_asset_t;

/* seen: devices in the pull; created: new rows; updated: rows whose content
 * changed and was written (seen - created - updated rows were left as they
 * were); retired: rows not in a complete pull; deduped: rows newly retired as
 * a duplicate; restored: rows back to ACTIVE because their winner went. */
typedef struct rn_asset_counts_s {
  int64_t seen, created, updated, retired, deduped, restored;
  int64_t statements; /* SQL round trips this sync used */
} rn_asset_counts_t;

/* Source priority, highest first. Each MSP org has one, stored in
 * msp_source_priority (migration 1006; rn_source_priority_set): the sources
 * it names, then the others in the default order ninjaone, level, intune,
 * entra. No stored row: the default order. */
typedef struct rn_source_priority_s {
  const char *const *sources; /* NULL-terminated */
} rn_source_priority_t;

/* Stores the MSP's source priority (replacing the previous one); NULL or
 * NULL sources restores the default order. Takes effect for every later
 * sync, retirement and dedup of the MSP, whichever plugin runs it. An empty
 * list, a malformed name or a source named twice fails with the table's
 * check naming it. */
int rn_source_priority_set(rn_devsrc_t *ds, rn_msp_org_t msp,
                           const rn_source_priority_t *priority);

/* Upserts a pull of devices for (msp, company, source) with set-based SQL,
 * writing only new rows and rows whose content changed (IS DISTINCT FROM;
 * the device's last contact counts when it moved by a day or more), and
 * records the pull as one asset_sync_run row. An unchanged row is not
 * rewritten: when a sync last saw it is the newest complete run of its
 * (company, source), as the asset_last_seen view computes. When `complete`,
 * retires this source's devices of the company that the pull did not
 * contain (a truncated pull retires nothing). Then dedups the company across
 * sources: the same device (normalized serial, else a shared MAC address,
 * else hostname) stays ACTIVE only in the highest-priority source; the
 * others are retired naming the winner and come back when the winner goes.
 *
 * priority: NULL (what plugins pass) reads the MSP's stored priority inside
 * this transaction; non-NULL overrides it for this call only (tests). Each
 * sync that records a run also deletes the (company, source)'s runs older
 * than 90 days, except those asset_last_seen reads. */
int rn_assets_sync(rn_devsrc_t *ds, rn_msp_org_t msp, rn_company_t company,
                   const char *source, const rn_asset_t *assets, size_t count,
                   bool complete, const rn_source_priority_t *priority,
                   rn_asset_counts_t *counts);
/* Retires every live asset of a source in the MSP org (disconnect). The
 * rows they had deduplicated come back ACTIVE in the same transaction (or
 * lose to the next-best winner of the MSP's priority). *retired counts
 * the rows that were ACTIVE, *restored the rows back to ACTIVE; both
 * optional. "Don't sync" (rn_mapping_ignore) and a complete pull that no
 * longer holds a winner restore its duplicates the same way. */
int rn_assets_retire_source(rn_devsrc_t *ds, rn_msp_org_t msp,
                            const char *source, const char *reason,
                            int64_t *retired, int64_t *restored);

/* Normalizations used by dedup (exposed for plugins and tests). Write into
 * out (NUL-terminated); return false when the input has no usable value. */
bool rn_normalize_serial(const char *serial, char *out, size_t outlen);
bool rn_normalize_mac(const char *mac, char *out, size_t outlen);

/* ---------------------------------------------- signals and evidence */

typedef enum rn_signal_status {
  RN_SIGNAL_PASS = 1,
  RN_SIGNAL_WARNING,
  RN_SIGNAL_FAIL
} rn_signal_status_t;

const char *rn_signal_status_name(rn_signal_status_t status);

/* The PII guard: 0 when metadata (a JSON object) holds only aggregates;
 * RN_EPII with the offending path in err otherwise (never the value). */
int rn_pii_check(const char *metadata_json, char *err, size_t errlen);

/* Writes a signal on the customer's compliance organization with
 * expires_at = collected + 7 days, and one evidence row per internal control
 * the signal maps to. The PII guard runs first: a violation writes nothing. */
int rn_signal_write(rn_devsrc_t *ds, rn_customer_org_t customer,
                    const char *source, const char *signal_key,
                    rn_signal_status_t status, const char *metadata_json,
                    int64_t mapping_id, int64_t *signal_id);

/* ---------------------------------------------------------- audit log */

int rn_audit_msp(rn_devsrc_t *ds, rn_msp_org_t msp, const char *actor,
                 const char *event, const char *details_json);
int rn_audit_customer(rn_devsrc_t *ds, rn_customer_org_t customer,
                      const char *actor, const char *event,
                      const char *details_json);

/* -------------------------------------------------------- ticket bridge */

typedef enum rn_ticket_action {
  RN_TICKET_NONE = 0,      /* nothing to do (PASS with no open ticket) */
  RN_TICKET_SUPPRESSED,    /* first sweep: the bridge stays quiet */
  RN_TICKET_OPENED,
  RN_TICKET_UPDATED,
  RN_TICKET_RESOLVED
} rn_ticket_action_t;

typedef enum rn_ticket_kind {
  RN_TICKET_FINDING = 0, /* the measurement failed the signal's rule */
  RN_TICKET_NO_DATA      /* the source sent nothing to measure */
} rn_ticket_kind_t;

/* What a ticket says. title/description NULL: a default naming the signal
 * and its status ("Compliance finding: patch_sla is FAIL"). A NO_DATA
 * ticket should say what was missing, e.g. "NinjaOne returned no antivirus
 * data for 5 devices". Strings are copied. */
typedef struct rn_ticket_text_s {
  rn_ticket_kind_t kind;
  const char *title;
  const char *description;
} rn_ticket_text_t;

/* Routes one signal to the MSP's PSA queue for the company: FAIL opens or
 * updates a HIGH ticket, WARNING a MEDIUM one, one open ticket per
 * (customer, signal key); PASS resolves an open one with a note. An open
 * ticket of the other kind (finding vs. no data) is resolved as superseded
 * and a new one opened. text NULL = a FINDING with the default text. Does
 * nothing (RN_TICKET_SUPPRESSED) while first_sync_done is false. */
int rn_ticket_bridge(rn_devsrc_t *ds, rn_msp_org_t msp, rn_company_t company,
                     rn_customer_org_t customer, const char *signal_key,
                     rn_signal_status_t status, const rn_ticket_text_t *text,
                     bool first_sync_done, rn_ticket_action_t *action,
                     int64_t *ticket_id);

#ifdef __cplusplus
}
#endif
#endif
