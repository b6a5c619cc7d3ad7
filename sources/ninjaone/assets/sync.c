/* sync.c - the `sync` job: for each active NinjaOne credential, walk the
 * approved devices of every MAPPED organization (a few walks at once), write
 * each company's pull in its own transaction, then one audit row per MSP
 * organization. One credential or organization failing is recorded and the
 * others go on; the job completes once, when every callback is back. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"
#include "ninjaone/explain.h"

static const rn_option_t sync_params[] = {
    RN_OPTION(.name = "msp_org", .type = RN_OPT_INT, .min = 1, .max = INT64_MAX,
              .help =
                  "only this MSP organization (default: every connected one)"),
    RN_OPTION(.name = "region", .type = RN_OPT_ENUM,
              .choices = NJ_REGION_CHOICES,
              .help = "only the credential of this region"),
    RN_OPTION(.name = "mapping", .type = RN_OPT_INT, .min = 1, .max = INT64_MAX,
              .help =
                  "only this mapping: the company's \"Sync With NinjaOne\""),
    {0},
};

static void pump(run_t *run);
static void maybe_complete(run_t *run);
static void unit_walk_next(unit_t *u);

static run_t *run_of(const cred_t *cred) {
  return cred->msp->run;
}

static void set_error(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(char *buf, size_t len, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  snprintf(buf, len, "%s", text);
}

static void mapping_fail(mapping_t *m, int status, const char *message) {
  if (m->status < 0)
    return; /* the first reason stays */
  m->status = status < 0 ? status : RN_EIO;
  snprintf(m->error, sizeof m->error, "%s", message);
  devlist_free(&m->devices);
}

/* ------------------------------------------------------ units and MSPs */

static int msp_tx(rn_db_tx_t *tx, void *data) {
  msp_t *msp = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, tx, msp->run->now_ms);
  rn_msp_org_t msp_org = RN_MSP_ORG(msp->msp_org_id);
  int rc = 0;
  for (size_t i = 0; i < msp->n_creds && rc == 0; i++)
    rc = rn_credential_record_run(&ds, msp_org, PROVIDER,
                                  nj_region_name(msp->creds[i]->region),
                                  "asset_sync", msp->creds[i]->run_text);
  if (rc == 0)
    rc = rn_audit_msp(&ds, msp_org, ACTOR, "NINJAONE_ASSET_SYNC",
                      msp->audit_text);
  if (rc < 0)
    snprintf(msp->error, sizeof msp->error, "%s", rn_devsrc_error(&ds));
  msp->status = rc;
  return rc;
}

static void msp_tx_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  msp_t *msp = data;
  run_t *run = msp->run;
  run->outstanding--;
  if (status < 0 && msp->status >= 0) {
    msp->status = status;
    snprintf(msp->error, sizeof msp->error, "database: %s",
             host->strerror(status));
  }
  if (msp->status < 0)
    host->log(run->ctx, RN_LOG_ERR,
              "asset sync of MSP organization %lld: the audit row and run "
              "record were not written: %s",
              (long long)msp->msp_org_id, msp->error);
  msp->finished = true;
  maybe_complete(run);
}

static json_t *counts_json(const rn_asset_counts_t *c) {
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "seen",
                   (json_int_t)c->seen, "created", (json_int_t)c->created,
                   "updated", (json_int_t)c->updated, "retired",
                   (json_int_t)c->retired, "deduped", (json_int_t)c->deduped,
                   "restored", (json_int_t)c->restored);
}

static void add_counts(rn_asset_counts_t *sum, const rn_asset_counts_t *c) {
  sum->seen += c->seen;
  sum->created += c->created;
  sum->updated += c->updated;
  sum->retired += c->retired;
  sum->deduped += c->deduped;
  sum->restored += c->restored;
}

static json_t *mapping_json(const mapping_t *m) {
  json_t *j = counts_json(&m->counts);
  json_object_set_new(j, "mapping_id", json_integer(m->id));
  json_object_set_new(j, "region",
                      json_string(nj_region_name(m->cred->region)));
  json_object_set_new(j, "external_org_id", json_string(m->external_org_id));
  json_object_set_new(j, "company_id", json_integer(m->company_id));
  json_object_set_new(j, "status",
                      json_string(m->status < 0 ? "failed" : "ok"));
  if (m->status < 0)
    json_object_set_new(j, "error", json_string(m->error));
  json_object_set_new(j, "truncated", json_boolean(m->truncated));
  json_object_set_new(j, "cap_hit", json_boolean(m->cap_hit));
  json_object_set_new(j, "pages", json_integer(m->pages));
  json_object_set_new(j, "skipped_not_approved",
                      json_integer((json_int_t)m->skipped));
  json_object_set_new(
      j, "retirement",
      json_string(m->retirement ? m->retirement : "skipped: not written"));
  return j;
}

static const char *cred_status(const cred_t *cred, size_t *failed) {
  size_t n = 0, bad = 0;
  for (size_t u = 0; u < cred->n_units; u++)
    for (size_t k = 0; k < cred->units[u]->count; k++, n++)
      bad += cred->units[u]->mappings[k]->status < 0;
  *failed = bad;
  if (cred->status < 0 || (n && bad == n))
    return "failed";
  return bad ? "partial" : "ok";
}

/* The audit details of an MSP (and each credential's run record). Counts
 * and ids of organizations and companies only: never a device's. */
static int msp_build(msp_t *msp) {
  run_t *run = msp->run;
  json_t *mappings = json_array(), *creds = json_array(),
         *regions = json_array();
  rn_asset_counts_t total = {0};
  bool truncated_any = false;
  size_t failed = 0;
  nj_client_stats_t requests = {0}; /* token and retries included */
  for (size_t i = 0; i < msp->n_creds; i++) {
    cred_t *cred = msp->creds[i];
    nj_client_stats_t cst = {0};
    if (cred->client)
      nj_client_get_stats(cred->client, &cst);
    nj_client_stats_add(&requests, &cst);
    json_t *cmaps = json_array();
    rn_asset_counts_t ctotal = {0};
    bool ctrunc = false;
    for (size_t u = 0; u < cred->n_units; u++)
      for (size_t k = 0; k < cred->units[u]->count; k++) {
        mapping_t *m = cred->units[u]->mappings[k];
        json_array_append_new(cmaps, mapping_json(m));
        add_counts(&ctotal, &m->counts);
        ctrunc |= m->truncated;
      }
    size_t cfailed;
    const char *status = cred_status(cred, &cfailed);
    failed += cfailed;
    json_t *cj = json_pack(
        "{s:s, s:s, s:I, s:I, s:b}", "region", nj_region_name(cred->region),
        "status", status, "mappings", (json_int_t)json_array_size(cmaps),
        "failed", (json_int_t)cfailed, "truncatedAny", ctrunc);
    if (cred->status < 0)
      json_object_set_new(cj, "error", json_string(cred->error));
    json_object_set_new(cj, "accounting", nj_client_stats_json(&cst));
    /* The credential's own record: its part of the run. */
    json_t *record = json_deep_copy(cj);
    json_object_set_new(record, "scope",
                        json_string(run->param_mapping ? "mapping" : "all"));
    json_object_set_new(record, "totals", counts_json(&ctotal));
    json_object_set(record, "details", cmaps);
    free(cred->run_text);
    cred->run_text = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(record);
    json_array_extend(mappings, cmaps);
    json_decref(cmaps);
    json_array_append_new(creds, cj);
    json_array_append_new(regions, json_string(nj_region_name(cred->region)));
    add_counts(&total, &ctotal);
    truncated_any |= ctrunc;
  }
  msp->details = json_pack(
      "{s:s, s:o, s:o, s:o, s:o, s:I, s:b, s:I}", "scope",
      run->param_mapping ? "mapping" : "all", "regions", regions, "credentials",
      creds, "mappings", mappings, "totals", counts_json(&total), "failed",
      (json_int_t)failed, "truncatedAny", truncated_any, "max_devices_per_org",
      (json_int_t)run->state->max_devices_per_org);
  if (msp->details)
    json_object_set_new(msp->details, "accounting",
                        nj_client_stats_json(&requests));
  if (msp->details && run->param_mapping)
    json_object_set_new(msp->details, "mapping_id",
                        json_integer(run->param_mapping));
  msp->audit_text =
      msp->details ? json_dumps(msp->details, JSON_COMPACT | JSON_SORT_KEYS)
                   : NULL;
  for (size_t i = 0; i < msp->n_creds; i++)
    if (!msp->creds[i]->run_text)
      return RN_ENOMEM;
  if (!msp->audit_text)
    return RN_ENOMEM;
  host->log(run->ctx, failed ? RN_LOG_WARNING : RN_LOG_INFO,
            "asset sync of MSP organization %lld: %zu mapping(s), %lld "
            "device(s) seen, %lld created, %lld updated, %lld retired, %lld "
            "deduped, %zu failed%s",
            (long long)msp->msp_org_id, json_array_size(mappings),
            (long long)total.seen, (long long)total.created,
            (long long)total.updated, (long long)total.retired,
            (long long)total.deduped, failed,
            truncated_any ? ", truncated at the device cap" : "");
  return 0;
}

static void msp_finish(msp_t *msp) {
  run_t *run = msp->run;
  if (msp->finishing)
    return;
  msp->finishing = true;
  int rc = msp_build(msp);
  if (rc == 0) {
    run->outstanding++;
    rc = RN_HOST_HAS(host, db_transaction)
             ? host->db_transaction(run->ctx, msp_tx, msp_tx_done, msp, NULL)
             : RN_ENOSYS;
    if (rc < 0)
      run->outstanding--;
  }
  if (rc < 0) {
    msp->status = rc;
    snprintf(msp->error, sizeof msp->error, "cannot record the run: %s",
             host->strerror(rc));
    msp->finished = true;
  }
}

static void unit_finish(unit_t *u) {
  u->done = true;
  for (size_t k = 0; k < u->count; k++)
    devlist_free(&u->mappings[k]->devices);
  msp_t *msp = u->cred->msp;
  if (--msp->busy == 0)
    msp_finish(msp);
}

/* Why a unit's pull may not retire what it did not see. NULL = it may. */
static const char *retire_blocker(const unit_t *u) {
  for (size_t k = 0; k < u->count; k++) {
    if (u->mappings[k]->status < 0)
      return "skipped: another organization bound to the company failed";
    if (u->mappings[k]->truncated)
      return "skipped: truncated at the device cap";
  }
  if (!u->covers_company)
    return "skipped: the company is bound to NinjaOne organizations not "
           "synced in this run";
  return NULL;
}

static int unit_tx(rn_db_tx_t *tx, void *data) {
  unit_t *u = data;
  run_t *run = run_of(u->cred);
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, tx, run->now_ms);
  rn_msp_org_t msp = RN_MSP_ORG(u->cred->msp->msp_org_id);
  rn_company_t company = RN_COMPANY(u->company_id);
  const char *blocker = retire_blocker(u);
  bool single = u->count == 1;
  mapping_t *first = NULL;
  size_t total = 0;
  int rc = 0;
  for (size_t k = 0; k < u->count && rc == 0; k++) {
    mapping_t *m = u->mappings[k];
    if (m->status < 0)
      continue;
    first = first ? first : m;
    total += m->devices.count;
    /* A company of several organizations retires once, over their union. */
    rc = rn_assets_sync(&ds, msp, company, PROVIDER, m->devices.assets,
                        m->devices.count, single && !blocker, NULL, &m->counts);
    m->retirement = blocker ? blocker : "done";
  }
  if (rc == 0 && !single && !blocker && first) {
    rn_asset_t *all = host->calloc(total ? total : 1, sizeof *all);
    if (!all)
      return RN_ENOMEM;
    size_t n = 0;
    for (size_t k = 0; k < u->count; k++) {
      memcpy(all + n, u->mappings[k]->devices.assets,
             u->mappings[k]->devices.count * sizeof *all);
      n += u->mappings[k]->devices.count;
    }
    rn_asset_counts_t c;
    rc = rn_assets_sync(&ds, msp, company, PROVIDER, all, n, true, NULL, &c);
    host->free(all);
    /* Reported once, on the first organization of the company. */
    first->counts.retired += c.retired;
    first->counts.deduped += c.deduped;
    first->counts.restored += c.restored;
  }
  if (rc < 0)
    for (size_t k = 0; k < u->count; k++)
      if (u->mappings[k]->status == 0) {
        memset(&u->mappings[k]->counts, 0, sizeof u->mappings[k]->counts);
        u->mappings[k]->retirement = NULL;
        mapping_fail(u->mappings[k], rc, rn_devsrc_error(&ds));
      }
  return rc;
}

static void unit_tx_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  unit_t *u = data;
  run_t *run = run_of(u->cred);
  run->outstanding--;
  run->walking--;
  for (size_t k = 0; k < u->count; k++) {
    mapping_t *m = u->mappings[k];
    if (status < 0 && m->status == 0) {
      char text[256];
      snprintf(text, sizeof text, "database: %s", host->strerror(status));
      memset(&m->counts, 0, sizeof m->counts);
      m->retirement = NULL;
      mapping_fail(m, status, text);
    }
    m->written = m->status == 0;
    if (m->status < 0)
      host->log(run->ctx, RN_LOG_WARNING,
                "asset sync of mapping %lld (MSP organization %lld, region "
                "%s, organization %s): nothing written: %s",
                (long long)m->id, (long long)u->cred->msp->msp_org_id,
                nj_region_name(u->cred->region), m->external_org_id, m->error);
  }
  unit_finish(u);
  pump(run);
  maybe_complete(run);
}

static void unit_write(unit_t *u) {
  run_t *run = run_of(u->cred);
  bool any = false;
  for (size_t k = 0; k < u->count; k++)
    any |= u->mappings[k]->status == 0;
  int rc = RN_ECANCELED;
  if (any && !run->cancelled) {
    run->outstanding++;
    rc = RN_HOST_HAS(host, db_transaction)
             ? host->db_transaction(run->ctx, unit_tx, unit_tx_done, u, NULL)
             : RN_ENOSYS;
    if (rc == 0)
      return;
    run->outstanding--;
  }
  for (size_t k = 0; k < u->count; k++)
    mapping_fail(u->mappings[k], rc,
                 rc == RN_ECANCELED ? "cancelled" : host->strerror(rc));
  run->walking--;
  unit_finish(u);
  pump(run);
}

/* ---------------------------------------------------------------- walks */

/* Pages walked and devices seen so far, mappings walked of all: any
 * thread. */
static void report_progress(run_t *run, uint64_t pages, uint64_t devices) {
  if (!RN_HOST_HAS(host, progress))
    return;
  rn_progress_t p = RN_PROGRESS_INIT;
  p.stage = "syncing devices";
  p.done = atomic_load(&run->mappings_walked);
  p.total = run->n_mappings;
  p.units = "organizations";
  p.pages = pages;
  p.items = devices;
  p.items_name = "devices";
  host->progress(run->job, &p);
}

static int on_page(const nj_page_t *page, void *data) {
  mapping_t *m = data; /* worker thread: only this mapping's list */
  run_t *run = run_of(m->cred);
  report_progress(run, atomic_fetch_add(&run->pages_walked, 1) + 1,
                  atomic_fetch_add(&run->devices_seen, page->count) +
                      page->count);
  return devlist_add_page(&m->devices, page, m->org_id);
}

static void on_walked(nj_walk_t *walk, const nj_walk_result_t *result,
                      void *data) {
  (void)walk;
  mapping_t *m = data;
  unit_t *u = m->unit;
  run_t *run = run_of(u->cred);
  run->outstanding--;
  m->walk = NULL;
  m->walked = true;
  m->pages = result->pages;
  atomic_fetch_add(&run->mappings_walked, 1);
  report_progress(run, atomic_load(&run->pages_walked),
                  atomic_load(&run->devices_seen));
  /* A failed walk writes nothing: it is a failure, not a shortfall. */
  m->truncated = result->status == 0 && result->truncated;
  m->cap_hit = result->cap_hit;
  m->skipped = m->devices.skipped;
  if (result->status < 0) {
    char text[512];
    snprintf(text, sizeof text, "devices of NinjaOne organization %s: %s",
             m->external_org_id,
             result->message ? result->message
                             : host->strerror(result->status));
    mapping_fail(m, result->status, text);
  }
  u->next++;
  unit_walk_next(u);
  maybe_complete(run);
}

/* Walks the unit's mappings one after another, then writes them. */
static void unit_walk_next(unit_t *u) {
  run_t *run = run_of(u->cred);
  for (; u->next < u->count; u->next++) {
    mapping_t *m = u->mappings[u->next];
    if (m->status < 0)
      continue;
    if (run->cancelled) {
      mapping_fail(m, RN_ECANCELED, "cancelled");
      continue;
    }
    /* Approved devices only: pending and rejected ones stay in NinjaOne. */
    char df[96];
    snprintf(df, sizeof df, "org = %lld AND status eq APPROVED",
             (long long)m->org_id);
    nj_walk_opts_t opts = {
        .endpoint = NJ_EP_DEVICES_DETAILED, .df = df, .pages_on_worker = true};
    run->outstanding++;
    int rc =
        nj_walk_start(u->cred->client, &opts, on_page, on_walked, m, &m->walk);
    if (rc == 0)
      return;
    run->outstanding--;
    mapping_fail(m, rc, "cannot start the device walk");
  }
  unit_write(u);
}

static void pump(run_t *run) {
  while (!run->cancelled && run->walking < run->state->concurrency &&
         run->queue_next < run->queue_len) {
    unit_t *u = run->queue[run->queue_next++];
    run->walking++;
    unit_walk_next(u);
  }
}

/* ---------------------------------------------------------- credentials */

/* The credential cannot sync: every mapping of it says why. */
static void cred_fail(cred_t *cred, int status, const char *message) {
  cred->status = status < 0 ? status : RN_EIO;
  snprintf(cred->error, sizeof cred->error, "%s", message);
  host->log(run_of(cred)->ctx, RN_LOG_WARNING,
            "asset sync of MSP organization %lld, region %s: %s",
            (long long)cred->msp->msp_org_id, nj_region_name(cred->region),
            message);
  for (size_t u = 0; u < cred->n_units; u++) {
    for (size_t k = 0; k < cred->units[u]->count; k++)
      mapping_fail(cred->units[u]->mappings[k], cred->status,
                   "not synced: the credential failed");
    unit_finish(cred->units[u]);
  }
}

static void on_authenticated(nj_client_t *client, int status,
                             const char *message, void *data) {
  (void)client;
  cred_t *cred = data;
  run_t *run = run_of(cred);
  run->outstanding--;
  if (status < 0) {
    char text[1024];
    snprintf(text, sizeof text, "cannot sign in to NinjaOne: %s",
             message ? message : host->strerror(status));
    cred_fail(cred, status, text);
  } else if (run->cancelled) {
    cred_fail(cred, RN_ECANCELED, "cancelled");
  } else {
    for (size_t u = 0; u < cred->n_units; u++)
      run->queue[run->queue_len++] = cred->units[u];
    pump(run);
  }
  maybe_complete(run);
}

/* Opens the sealed secret just long enough to hand it to the client. */
static int cred_open(run_t *run, cred_t *cred) {
  if (!RN_HOST_HAS(host, secret_open)) {
    set_error(cred->error, sizeof cred->error,
              "the client secret cannot be opened: no master key (set "
              "[runner] master_key_file)");
    return RN_ENOSYS;
  }
  char *plain = NULL;
  size_t len = 0;
  int rc = cred->sealed
               ? host->secret_open(run->ctx, cred->sealed, &plain, &len)
               : RN_ECRYPTO;
  host->free(cred->sealed);
  cred->sealed = NULL;
  if (rc < 0) {
    set_error(cred->error, sizeof cred->error,
              "the saved client secret cannot be opened (%s): check [runner] "
              "master_key_file, or connect again",
              host->strerror(rc));
    return rc;
  }
  nj_client_opts_t opts = {
      .client_id = cred->client_id,
      .client_secret = plain,
      .client_secret_len = len,
      .max_devices_per_org = run->state->max_devices_per_org,
  };
  nj_connection_apply(&run->state->connection, cred->region, &opts);
  rc = nj_client_new(host, run->ctx, &opts, &cred->client, cred->error,
                     sizeof cred->error);
  host->secret_free(plain, len); /* the client keeps its own copy */
  return rc;
}

static void start_credentials(run_t *run) {
  run->queue =
      host->calloc(run->n_units ? run->n_units : 1, sizeof *run->queue);
  if (!run->queue) {
    run->status = RN_ENOMEM;
    snprintf(run->error, sizeof run->error, "out of memory");
    return;
  }
  for (size_t i = 0; i < run->n_msps; i++)
    for (size_t c = 0; c < run->msps[i].n_creds; c++)
      run->msps[i].busy += run->msps[i].creds[c]->n_units;
  run->outstanding++; /* nothing completes while this loop runs */
  for (size_t i = 0; i < run->n_creds; i++) {
    cred_t *cred = &run->creds[i];
    if (cred->status < 0) {
      char text[sizeof cred->error];
      snprintf(text, sizeof text, "%s", cred->error);
      cred_fail(cred, cred->status, text);
      continue;
    }
    if (cred->n_units == 0)
      continue; /* nothing mapped: no sign-in needed */
    int rc = cred_open(run, cred);
    if (rc == 0) {
      run->outstanding++;
      rc = nj_client_authenticate(cred->client, on_authenticated, cred);
      if (rc < 0) {
        run->outstanding--;
        set_error(cred->error, sizeof cred->error, "cannot sign in: %s",
                  host->strerror(rc));
      }
    }
    if (rc < 0) {
      char text[sizeof cred->error];
      snprintf(text, sizeof text, "%s", cred->error);
      cred_fail(cred, rc, text);
    }
  }
  for (size_t i = 0; i < run->n_msps; i++)
    if (run->msps[i].busy == 0)
      msp_finish(&run->msps[i]);
  run->outstanding--;
}

/* ------------------------------------------------------------ the job */

static void run_free(run_t *run) {
  plan_free(run);
  host->free(run);
}

/* Appends to a summary, stopping quietly when it is full. */
typedef struct text_s {
  char buf[16384];
  size_t used;
} text_t;

static void say(text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(text_t *t, const char *fmt, ...) {
  if (t->used >= sizeof t->buf - 1)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t->buf + t->used, sizeof t->buf - t->used, fmt, ap);
  va_end(ap);
  if (n > 0)
    t->used += (size_t)n;
}

static void say_mapping(text_t *t, const mapping_t *m) {
  say(t,
      "\n  MSP organization %lld, %s organization %s -> company %lld "
      "(mapping %lld): ",
      (long long)m->cred->msp->msp_org_id, nj_region_name(m->cred->region),
      m->external_org_id, (long long)m->company_id, (long long)m->id);
  if (m->status < 0)
    say(t, "FAILED: %s", m->error);
  else
    say(t,
        "%lld seen, %lld created, %lld updated, %lld retired, %lld "
        "deduped%s",
        (long long)m->counts.seen, (long long)m->counts.created,
        (long long)m->counts.updated, (long long)m->counts.retired,
        (long long)m->counts.deduped,
        m->truncated ? " (truncated at the device cap: nothing retired)" : "");
}

static void complete(run_t *run) {
  run->completed = true;
  rn_asset_counts_t total = {0};
  size_t failed = 0;
  bool truncated_any = false;
  int status = run->status;
  /* The first failure names the job's status; the others are listed. */
  for (size_t i = 0; i < run->n_mappings; i++) {
    const mapping_t *m = &run->mappings[i];
    add_counts(&total, &m->counts);
    truncated_any |= m->truncated;
    if (m->status < 0) {
      failed++;
      status = status < 0 ? status : m->status;
    }
  }
  for (size_t i = 0; i < run->n_creds; i++)
    if (run->creds[i].status < 0)
      status = status < 0 ? status : run->creds[i].status;
  for (size_t i = 0; i < run->n_msps; i++)
    if (run->msps[i].status < 0)
      status = status < 0 ? status : run->msps[i].status;
  if (run->cancelled)
    status = RN_ECANCELED;

  text_t *t = host->calloc(1, sizeof *t);
  if (t && run->status < 0)
    say(t, "%s", run->error);
  else if (t && run->n_creds == 0)
    say(t,
        "NinjaOne asset sync: nothing to sync, no connected NinjaOne "
        "credential%s",
        run->has_region ? " in that region" : "");
  else if (t)
    say(t,
        "NinjaOne asset sync%s: %zu mapping(s) of %zu MSP "
        "organization(s), %zu failed; %lld device(s) seen, %lld created, "
        "%lld updated, %lld retired, %lld deduped%s",
        run->cancelled ? " (cancelled)" : "", run->n_mappings, run->n_msps,
        failed, (long long)total.seen, (long long)total.created,
        (long long)total.updated, (long long)total.retired,
        (long long)total.deduped,
        truncated_any ? "; truncatedAny: an organization hit the device cap"
                      : "");
  json_t *msps = json_array();
  for (size_t i = 0; i < run->n_msps && run->status >= 0; i++) {
    msp_t *msp = &run->msps[i];
    json_t *d = msp->details ? json_deep_copy(msp->details) : json_object();
    json_object_set_new(d, "msp_org_id", json_integer(msp->msp_org_id));
    json_object_set_new(d, "audit_written", json_boolean(msp->status == 0));
    if (msp->status < 0)
      json_object_set_new(d, "audit_error", json_string(msp->error));
    json_array_append_new(msps, d);
    for (size_t c = 0; t && c < msp->n_creds; c++) {
      cred_t *cred = msp->creds[c];
      if (cred->status < 0)
        say(t, "\n  MSP organization %lld, region %s: FAILED: %s",
            (long long)msp->msp_org_id, nj_region_name(cred->region),
            cred->error);
      for (size_t u = 0; u < cred->n_units; u++)
        for (size_t k = 0; k < cred->units[u]->count; k++)
          if (cred->status >= 0) /* a failed credential is said once */
            say_mapping(t, cred->units[u]->mappings[k]);
    }
    if (t && msp->status < 0)
      say(t, "\n  MSP organization %lld: audit row not written: %s",
          (long long)msp->msp_org_id, msp->error);
  }
  json_t *result =
      json_pack("{s:o, s:I, s:I, s:o, s:b}", "msp_orgs", msps, "mappings",
                (json_int_t)run->n_mappings, "failed", (json_int_t)failed,
                "totals", counts_json(&total), "truncatedAny", truncated_any);
  if (result && status < 0) {
    /* {error: code, message, hint}; the runner's CLI puts the whole text
     * in message. */
    const char *hint;
    const char *code = nj_explain_status(status, &hint);
    if (code)
      json_object_set_new(result, "error", json_string(code));
    json_object_set_new(result, "message",
                        json_string(run->error[0] ? run->error
                                    : t           ? t->buf
                                                  : "failed"));
    if (hint)
      json_object_set_new(result, "hint", json_string(hint));
  }
  char *result_text =
      result ? json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(result);
  rn_job_t *job = run->job;
  host->job_set_data(job, NULL);
  run_free(run);
  host->job_complete(job, status, result_text,
                     t ? t->buf : "NinjaOne asset sync: out of memory");
  free(result_text);
  host->free(t);
}

static void maybe_complete(run_t *run) {
  if (run->completed || run->outstanding > 0)
    return;
  for (size_t i = 0; i < run->n_msps; i++)
    if (!run->msps[i].finished)
      return;
  complete(run);
}

static int plan_tx(rn_db_tx_t *tx, void *data) {
  run_t *run = data;
  rn_devsrc_t ds;
  rn_devsrc_init(&ds, host, tx, run->now_ms);
  int rc = plan_load(run, &ds);
  if (rc < 0) {
    run->status = rc;
    if (!run->error[0])
      snprintf(run->error, sizeof run->error, "%s", rn_devsrc_error(&ds));
  }
  return rc;
}

static void plan_done(rn_ctx_t *ctx, int status, void *data) {
  (void)ctx;
  run_t *run = data;
  run->outstanding--;
  if (status < 0 && run->status >= 0) {
    run->status = status;
    snprintf(run->error, sizeof run->error, "database: %s",
             host->strerror(status));
  }
  if (run->status >= 0 && !run->cancelled)
    start_credentials(run);
  else if (run->cancelled && run->status >= 0) {
    run->status = RN_ECANCELED;
    snprintf(run->error, sizeof run->error, "cancelled");
  }
  if (run->status < 0) {
    /* Nothing was started: the plan's MSPs have nothing to record. */
    for (size_t i = 0; i < run->n_msps; i++)
      run->msps[i].finished = true;
  }
  maybe_complete(run);
}

static int run_sync(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  json_t *params = json_loads(host->job_params(job), 0, NULL);
  if (!params)
    return RN_EJSON;
  run_t *run = host->calloc(1, sizeof *run);
  if (!run) {
    json_decref(params);
    return RN_ENOMEM;
  }
  run->ctx = ctx;
  run->state = state;
  run->job = job;
  run->now_ms = host->now_ms(ctx);
  run->param_msp = json_integer_value(json_object_get(params, "msp_org"));
  run->param_mapping = json_integer_value(json_object_get(params, "mapping"));
  const char *region = json_string_value(json_object_get(params, "region"));
  if (region && nj_region_parse(region, &run->region) < 0) {
    json_decref(params);
    host->free(run);
    return RN_EINVAL;
  }
  run->has_region = region != NULL;
  json_decref(params);
  host->job_set_data(job, run);
  run->outstanding++;
  int rc = RN_HOST_HAS(host, db_transaction)
               ? host->db_transaction(ctx, plan_tx, plan_done, run, NULL)
               : RN_ENOSYS;
  if (rc < 0) {
    run->outstanding--;
    run->status = rc;
    snprintf(run->error, sizeof run->error,
             "no database: %s (set [database] url or REGENTRA_DATABASE_URL)",
             host->strerror(rc));
    complete(run);
  }
  return 0;
}

static void cancel_sync(rn_ctx_t *ctx, void *state, rn_job_t *job) {
  (void)ctx;
  (void)state;
  run_t *run = host->job_data(job);
  if (!run || run->completed || run->cancelled)
    return;
  run->cancelled = true;
  /* Units still waiting for a slot end now; walks in flight call back. */
  while (run->queue && run->queue_next < run->queue_len) {
    unit_t *u = run->queue[run->queue_next++];
    for (size_t k = 0; k < u->count; k++)
      mapping_fail(u->mappings[k], RN_ECANCELED, "cancelled");
    unit_finish(u);
  }
  for (size_t i = 0; i < run->n_mappings; i++)
    if (run->mappings[i].walk)
      nj_walk_cancel(run->mappings[i].walk);
  maybe_complete(run);
}

const rn_job_def_t job_sync = {
    .struct_size = sizeof(rn_job_def_t),
    .name = "sync",
    .summary = "PSA asset sync: approved devices of every MAPPED NinjaOne "
               "organization become assets of its company (schedule "
               "\"15 */4 * * *\")",
    .params = sync_params,
    .run = run_sync,
    .cancel = cancel_sync,
    .command = "sync",
};
