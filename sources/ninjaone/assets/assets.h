/* assets.h - shared by the ninjaone-assets plugin's files. */
#ifndef NJ_ASSETS_H
#define NJ_ASSETS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ninjaone/client.h"
#include "regentra/devsrc.h"
#include "regentra/plugin.h"

#define PROVIDER "ninjaone"
#define ACTOR "regentra-runner"

extern const rn_host_t *host;

/* The plugin instance: options of its [plugin "ninjaone-assets"] section. */
typedef struct assets_state_s {
  nj_connection_t connection; /* where the API is, and the budget */
  uint32_t max_devices_per_org;
  uint32_t concurrency; /* device walks in flight per run */
} assets_state_t;

/* ------------------------------------------------------------ devices */

/* Normalized devices of one walk. Every string lives in the list's own
 * chunks: page rows are borrowed for the page callback only. */
typedef struct dev_chunk_s dev_chunk_t;
typedef struct devlist_s {
  rn_asset_t *assets;
  size_t count, cap;
  dev_chunk_t *chunks;
  uint64_t skipped; /* rows that were not approved devices of the org */
} devlist_t;

/* Copies the page's approved devices of org_id; on the worker thread.
 * RN_ENOMEM leaves the list consistent (free it as usual). */
int devlist_add_page(devlist_t *list, const nj_page_t *page, int64_t org_id);
void devlist_free(devlist_t *list);

/* --------------------------------------------------------- the run */

typedef struct cred_s cred_t;
typedef struct unit_s unit_t;
typedef struct msp_s msp_t;
typedef struct run_s run_t;

/* One MAPPED mapping of the run. */
typedef struct mapping_s {
  int64_t id;
  char external_org_id[64];
  int64_t org_id;     /* external_org_id as a number, for the filter */
  int64_t company_id; /* the bound PortalCompany */
  int64_t company_mappings; /* MAPPED mappings bound to it (all regions) */
  cred_t *cred;
  unit_t *unit;
  nj_walk_t *walk;    /* while walking */
  devlist_t devices;
  int status;         /* 0, or why nothing was written */
  char error[512];
  bool walked, written;
  bool truncated, cap_hit;
  unsigned pages;
  uint64_t skipped;   /* rows that were not approved devices of the org */
  rn_asset_counts_t counts;
  const char *retirement; /* static: "done", or why it was skipped */
} mapping_t;

/* The mappings of one credential bound to one company: walked one after
 * another, written in one transaction (retiring needs all of them). */
struct unit_s {
  cred_t *cred;
  int64_t company_id;
  mapping_t **mappings;
  size_t count, next;
  bool covers_company; /* every MAPPED mapping of the company is here */
  bool done;
};

struct cred_s {
  msp_t *msp;
  nj_region_t region;
  char client_id[256];
  char *sealed;        /* host memory until opened */
  nj_client_t *client;
  int status;          /* 0, or why it could not sync */
  char error[1024];
  unit_t **units;
  size_t n_units;
  char *run_text;      /* last_asset_sync details (free) */
};

struct msp_s {
  run_t *run;
  int64_t msp_org_id;
  cred_t **creds;
  size_t n_creds;
  size_t busy;         /* units not yet done over all its credentials */
  bool finishing, finished;
  int status;          /* of the audit transaction */
  char error[512];
  json_t *details;     /* the audit row, also the run's result for it */
  char *audit_text;    /* details as text (free) */
};

struct run_s {
  rn_ctx_t *ctx;
  assets_state_t *state;
  rn_job_t *job;
  int64_t now_ms;
  /* parameters */
  int64_t param_msp;   /* 0 = every MSP */
  bool has_region;
  nj_region_t region;
  int64_t param_mapping; /* 0 = every MAPPED mapping */
  const char *trigger;   /* "schedule", "command" or "mapping" */
  /* the plan, one allocation per array */
  msp_t *msps;
  size_t n_msps;
  cred_t *creds;
  size_t n_creds;
  unit_t *units;
  size_t n_units;
  mapping_t *mappings;
  size_t n_mappings;
  cred_t **cred_refs;   /* storage behind msp_t.creds */
  unit_t **unit_refs;   /* storage behind cred_t.units */
  mapping_t **map_refs; /* storage behind unit_t.mappings */
  /* scheduling */
  unit_t **queue;
  size_t queue_len, queue_next;
  size_t walking;       /* units holding a walk slot */
  size_t outstanding;   /* callbacks still to come */
  /* progress: pages arrive on worker threads */
  atomic_uint_fast64_t pages_walked, devices_seen, mappings_walked;
  bool cancelled, completed;
  /* outcome of the plan */
  int status;
  char error[1024];
};

/* plan.c: loads what the run covers (in a transaction on a worker). */
int plan_load(run_t *run, rn_devsrc_t *ds);
void plan_free(run_t *run);

/* sync.c */
extern const rn_job_def_t job_sync;

#endif
