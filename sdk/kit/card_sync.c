/* card_sync.c - the card's `sync`: the MAPPED organizations of active
 * credentials, grouped by company; each organization walked with its
 * credential through the provider's walk_devices, every row normalized into
 * an asset; each company's pull written in one transaction and recorded as
 * the credential's "asset_sync" run. A failure is named by organization or
 * company, keeps that company's assets from retiring and spoils no other
 * company; the first one is the job's outcome. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card_internal.h"

typedef struct target_s { /* one MAPPED organization and its credential */
  int64_t msp, company;
  char region[32], org[256], client_id[256];
  char *sealed; /* host memory */
} target_t;

/* One normalized row: the asset, its MAC list and its strings in one
 * block, so nothing points into the provider's pages. */
typedef struct device_s {
  rn_asset_t asset;
  const char **macs; /* NULL-terminated, inside the block */
} device_t;

typedef struct sync_s {
  target_t *targets; /* ordered by (msp, company): a group is one company */
  size_t n_targets, group, group_end, cur;
  device_t **devices; /* of the company being read */
  size_t n_devices, cap_devices;
  int64_t skipped, seen;
  uint64_t rows; /* rows of the organization being walked */
  bool complete; /* every organization of the company was read to the end */
  int status;    /* the first failure */
  char error[sizeof((op_t *)0)->error];
  const char *code, *hint; /* of the first failure, when the card knows */
  json_t *companies;
} sync_t;

static char sync_summary[160], walking_stage[128];
static const char *noun = "organization", *skipped_key = "skipped";

void rk__sync_words(void) {
  if (P.org_noun)
    noun = P.org_noun;
  if (P.skipped_name)
    skipped_key = P.skipped_name;
  snprintf(sync_summary, sizeof sync_summary, "%s",
           P.sync_help ? P.sync_help
                       : "the devices of mapped organizations become company "
                         "assets");
  snprintf(walking_stage, sizeof walking_stage, "walking %s devices",
           P.display_name);
  rk__job_sync.summary = sync_summary;
}

RN_PRINTF(3, 4) static void fail(op_t *op, int rc, const char *fmt, ...) {
  sync_t *run = op->sync;
  run->complete = false; /* nothing is retired for the company */
  char text[sizeof run->error];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  host->log(op->ctx, RN_LOG_WARNING, "%s", text);
  if (run->status)
    return;
  run->status = rc < 0 ? rc : RN_EINVAL;
  memcpy(run->error, text, sizeof text);
}

static void drop_devices(sync_t *run) {
  for (size_t i = 0; i < run->n_devices; i++)
    host->free(run->devices[i]);
  run->n_devices = 0;
}

static void sync_finish(op_t *op) {
  sync_t *run = op->sync;
  op->sync = NULL;
  wipe_secret(op);
  for (size_t i = 0; i < run->n_targets; i++)
    host->free(run->targets[i].sealed);
  drop_devices(run);
  host->free(run->devices);
  host->free(run->targets);
  json_object_set_new(op->result, "companies", run->companies);
  op->status = run->status;
  if (run->status < 0) {
    snprintf(op->error, sizeof op->error, "%s", run->error);
    op_explain(op, run->code, run->hint);
  }
  snprintf(op->summary, sizeof op->summary, "%zu mapped %s%s, %lld devices",
           run->n_targets, noun, run->n_targets == 1 ? "" : "s",
           (long long)run->seen);
  host->free(run);
  op_finish(op);
}

void sync_progress(op_t *op, uint64_t pages) {
  sync_t *run = op->sync;
  rn_progress_t p = RN_PROGRESS_INIT;
  p.stage = walking_stage;
  p.done = run->cur;
  p.total = run->n_targets;
  p.units = "organizations";
  p.pages = pages;
  p.items = run->n_devices;
  p.items_name = "devices";
  host->progress(op->job, &p);
}

/* ----------------------------------------------------------- the rows */

static size_t str_size(const char *s) {
  return s ? strlen(s) + 1 : 0;
}

/* Copies s to *at (NULL stays NULL). */
static const char *put(char **at, const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  memcpy(*at, s, n);
  *at += n;
  return *at - n;
}

/* The asset in one host block: device_t, the MAC pointers, the strings. */
static device_t *device_copy(const rn_asset_t *a) {
  size_t n_macs = 0, text = 0;
  for (; a->mac_addresses && a->mac_addresses[n_macs]; n_macs++)
    text += str_size(a->mac_addresses[n_macs]);
  const char *strings[] = {a->external_id,   a->name,    a->hostname,
                           a->serial_number, a->os_name, a->device_class,
                           a->manufacturer,  a->model,   a->external_org_id};
  for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
    text += str_size(strings[i]);
  device_t *d = host->alloc(sizeof *d + (n_macs + 1) * sizeof(char *) + text);
  if (!d)
    return NULL;
  d->macs = (const char **)(d + 1);
  char *at = (char *)(d->macs + n_macs + 1);
  for (size_t i = 0; i < n_macs; i++)
    d->macs[i] = put(&at, a->mac_addresses[i]);
  d->macs[n_macs] = NULL;
  d->asset = (rn_asset_t){.external_id = put(&at, a->external_id),
                          .name = put(&at, a->name),
                          .hostname = put(&at, a->hostname),
                          .serial_number = put(&at, a->serial_number),
                          .mac_addresses = d->macs,
                          .os_name = put(&at, a->os_name),
                          .device_class = put(&at, a->device_class),
                          .manufacturer = put(&at, a->manufacturer),
                          .model = put(&at, a->model),
                          .last_seen_ms = a->last_seen_ms,
                          .external_org_id = put(&at, a->external_org_id)};
  return d;
}

int rk_session_add_device(rk_session_t *s, const void *device) {
  sync_t *run = s->sync;
  if (!run || !s->in_hook)
    return RN_EINVAL; /* only while sync's walk_devices runs */
  const char *org = run->targets[run->cur].org;
  uint64_t row = ++run->rows;
  rn_asset_t asset = {0};
  int rc = P.normalize(device, &asset);
  if (rc == 0) {
    run->skipped++;
    return 0;
  }
  if (rc < 0 || !asset.external_id) {
    fail(s, rc < 0 ? rc : RN_EJSON, "%s %s: device %llu %s", noun, org,
         (unsigned long long)row, rc < 0 ? host->strerror(rc) : "has no id");
    return rc < 0 ? rc : RN_EJSON;
  }
  if (!asset.external_org_id)
    asset.external_org_id = org;
  if (run->n_devices == run->cap_devices) {
    size_t cap = run->cap_devices ? 2 * run->cap_devices : 256;
    device_t **grown = host->realloc(run->devices, cap * sizeof *grown);
    if (!grown) {
      fail(s, RN_ENOMEM, "%s %s: out of memory", noun, org);
      return RN_ENOMEM;
    }
    run->devices = grown;
    run->cap_devices = cap;
  }
  device_t *d = device_copy(&asset);
  if (!d) {
    fail(s, RN_ENOMEM, "%s %s: out of memory", noun, org);
    return RN_ENOMEM;
  }
  run->devices[run->n_devices++] = d;
  return 0;
}

/* ----------------------------------------------------------- the walk */

static void start_target(op_t *op);
static void begin_group(op_t *op);

static void release_data(op_t *op) {
  if (op->release)
    op->release(op->data);
  op->data = NULL;
  op->release = NULL;
}

static void target_walked(op_t *op, int status, const char *message) {
  sync_t *run = op->sync;
  const char *org = run->targets[run->cur].org;
  wipe_secret(op);
  release_data(op); /* one client per organization */
  if (status < 0 && message && strstr(message, org))
    fail(op, status, "%s", message); /* the provider's, naming it */
  else if (status < 0)
    fail(op, status, "%s %s: %s", noun, org,
         message ? message : host->strerror(status));
  if (status == RN_ECANCELED) /* the host ends the job */
    return sync_finish(op);
  run->cur++;
  start_target(op);
}

static int walk_hook(rk_session_t *s) {
  return P.walk_devices(s, s->sync->targets[s->sync->cur].org);
}

static int write_company(rn_devsrc_t *ds, void *data);
static void company_written(rn_ctx_t *ctx, int status, const char *error,
                            void *data);

/* Reads the company's next organization, or writes the company once all
 * were read. */
static void start_target(op_t *op) {
  sync_t *run = op->sync;
  if (run->cur == run->group_end) {
    int rc = rn_devsrc_transaction(host, op->ctx, write_company,
                                   company_written, op);
    if (rc < 0) {
      fail(op, rc, "no database: %s", host->strerror(rc));
      sync_finish(op);
    }
    return;
  }
  target_t *t = &run->targets[run->cur];
  run->rows = 0;
  int rc = host->secret_open(op->ctx, t->sealed, &op->secret, &op->secret_len);
  if (rc < 0) {
    op->secret = NULL;
    op->secret_len = 0;
    char text[160];
    snprintf(text, sizeof text, "the saved secret cannot be opened: %s",
             host->strerror(rc));
    return target_walked(op, rc, text);
  }
  bool given = P.flags & RK_ORGS_GIVEN;
  snprintf(op->region, sizeof op->region, "%s", t->region);
  op->has_region = true;
  op->msp_org_id = t->msp;
  op->cred = (rk_credential_t){.struct_size = sizeof(rk_credential_t),
                               .msp_org_id = t->msp,
                               .region = op->region,
                               .tenant = given ? t->org : NULL,
                               .client_id = t->client_id,
                               .secret = op->secret,
                               .secret_len = op->secret_len};
  op_call_hook(op, walk_hook, "cannot walk the devices", target_walked);
}

/* Reads the next company's organizations, or ends the run. */
static void begin_group(op_t *op) {
  sync_t *run = op->sync;
  if (run->group == run->n_targets)
    return sync_finish(op);
  drop_devices(run);
  run->skipped = 0;
  run->complete = true;
  size_t end = run->group;
  const target_t *first = &run->targets[run->group];
  while (end < run->n_targets && run->targets[end].msp == first->msp &&
         run->targets[end].company == first->company)
    end++;
  run->cur = run->group;
  run->group_end = end;
  start_target(op);
}

/* ------------------------------------------------------ database side */

/* Worker thread: the company's whole pull, or nothing. */
static int write_company(rn_devsrc_t *ds, void *data) {
  op_t *op = data;
  sync_t *run = op->sync;
  const target_t *t = &run->targets[run->group];
  rn_asset_t *assets = host->calloc(run->n_devices + 1, sizeof *assets);
  if (!assets)
    return rn_devsrc_fail(ds, RN_ENOMEM, "out of memory");
  for (size_t i = 0; i < run->n_devices; i++)
    assets[i] = run->devices[i]->asset;
  rn_asset_counts_t c;
  /* complete: devices of the company missing from the pull retire. NULL:
   * the MSP's source priority. */
  int rc =
      rn_assets_sync(ds, RN_MSP_ORG(t->msp), RN_COMPANY(t->company), P.source,
                     assets, run->n_devices, run->complete, NULL, &c);
  host->free(assets);
  if (rc < 0)
    return rc;
  json_t *d = json_pack(
      "{s:I,s:I,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "msp_org", t->msp, "company",
      t->company, "complete", run->complete, "seen", c.seen, "created",
      c.created, "updated", c.updated, "retired", c.retired, "deduped",
      c.deduped, "restored", c.restored, skipped_key, run->skipped);
  char *details = d ? json_dumps(d, JSON_COMPACT) : NULL;
  rc = details ? rn_credential_record_run(ds, RN_MSP_ORG(t->msp), P.source,
                                          t->region, "asset_sync", details)
               : rn_devsrc_fail(ds, RN_ENOMEM, "out of memory");
  free(details);
  if (rc < 0) {
    json_decref(d);
    return rc;
  }
  json_array_append_new(run->companies, d);
  run->seen += c.seen;
  return 0;
}

static void company_written(rn_ctx_t *ctx, int status, const char *error,
                            void *data) {
  (void)ctx;
  op_t *op = data;
  sync_t *run = op->sync;
  if (status < 0)
    fail(op, status, "company %lld: %s",
         (long long)run->targets[run->group].company, error);
  if (status == RN_ECANCELED)
    return sync_finish(op);
  run->group = run->group_end;
  begin_group(op);
}

/* Worker thread: the MAPPED organizations of active credentials of MSPs,
 * by company. */
static int plan_body(op_t *op, rn_devsrc_t *ds) {
  sync_t *run = op->sync;
  char msp[24];
  op_msp_text(op, msp);
  const char *params[] = {P.source, op->msp_org_id ? msp : NULL};
  rn_db_result_t *res = NULL;
  int rc = host->db_tx_exec(
      ds->tx,
      "SELECT m.msp_org_id, m.portal_company_id, m.region, m.external_org_id,"
      " c.client_id, c.sealed_secret FROM integration_org_mapping m"
      " JOIN integration_credential c ON c.msp_org_id = m.msp_org_id"
      " AND c.provider = m.provider AND c.region = m.region AND c.is_active"
      " JOIN organization o ON o.id = m.msp_org_id AND o.kind = 'MSP'"
      " WHERE m.provider = $1 AND m.state = 'MAPPED'"
      " AND ($2::bigint IS NULL OR m.msp_org_id = $2) ORDER BY 1, 2, 3, 4",
      2, params, &res);
  if (rc < 0)
    return op_db_error(op, ds, rc);
  int rows = host->db_rows(res);
  if (!(run->targets = host->calloc((size_t)rows + 1, sizeof *run->targets)))
    rc = rn_devsrc_fail(ds, RN_ENOMEM, "out of memory");
  for (int i = 0; rc == 0 && i < rows; i++) {
    target_t *t = &run->targets[run->n_targets++];
    t->msp = strtoll(host->db_value(res, i, 0), NULL, 10);
    t->company = strtoll(host->db_value(res, i, 1), NULL, 10);
    snprintf(t->region, sizeof t->region, "%s", host->db_value(res, i, 2));
    snprintf(t->org, sizeof t->org, "%s", host->db_value(res, i, 3));
    snprintf(t->client_id, sizeof t->client_id, "%s",
             host->db_value(res, i, 4));
    if (!(t->sealed = host->strdup(host->db_value(res, i, 5))))
      rc = rn_devsrc_fail(ds, RN_ENOMEM, "out of memory");
  }
  host->db_result_free(res);
  return rc;
}

static void planned(op_t *op) {
  sync_t *run = op->sync;
  if (op->status < 0) {
    fail(op, op->status, "%s", op->error);
    run->code = op->code;
    run->hint = op->hint;
    return sync_finish(op);
  }
  begin_group(op);
}

static void plan(op_t *op) {
  if (!(op->sync = host->calloc(1, sizeof *op->sync)) ||
      !(op->sync->companies = json_array())) {
    host->free(op->sync);
    op->sync = NULL;
    return op_fail(op, RN_ENOMEM, "out of memory");
  }
  op_transaction(op, plan_body, planned);
}

static int run_sync(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  op_t *op = op_new(ctx, state, job);
  if (!op)
    return RN_ENOMEM;
  if (op->msp_org_id)
    op_check_msp(op, plan); /* unknown, or a customer's id */
  else
    plan(op);
  return 0;
}

static const rn_option_t sync_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .min = 1, .max = INT64_MAX,
              .help = "only this MSP organization (default: every one)"),
    {0},
};

rn_job_def_t rk__job_sync = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "sync",
    .summary = "the devices of mapped organizations become company assets",
    .params = sync_params,
    .run = run_sync,
    .command = "sync",
};
