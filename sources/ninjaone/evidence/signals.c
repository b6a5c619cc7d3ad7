/* signals.c - per-customer aggregates and the five signal rules. */
#include "signals.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FRESH_MS (7 * EV_DAY_MS)
#define STALE_AFTER_MS (30 * EV_DAY_MS)
#define BACKUP_WINDOW_MS (7 * EV_DAY_MS)

static const char *const signal_names[EV_SIGNAL_COUNT] = {
    "disk_encryption", "antivirus_posture", "patch_sla", "backup_activity",
    "device_inventory"};

const char *ev_signal_name(ev_signal_key_t key) {
  return (unsigned)key < EV_SIGNAL_COUNT ? signal_names[key] : NULL;
}

/* Our own table: this file must not need the client library at link time. */
static const char *const source_paths[EV_SRC_COUNT] = {
    "/v2/devices-detailed",     "/v2/queries/volumes",
    "/v2/queries/antivirus-status", "/v2/queries/os-patches",
    "/v2/queries/software-patches", "/v2/activities"};

const char *ev_source_path(ev_source_t src) {
  return (unsigned)src < EV_SRC_COUNT ? source_paths[src] : NULL;
}

static bool eq(const char *a, const char *b) {
  return a && strcasecmp(a, b) == 0;
}

/* Epoch seconds with a fraction to whole milliseconds, so that "exactly 7
 * days" compares equal whatever the float did. */
static bool to_ms(double seconds, int64_t *out) {
  if (isnan(seconds) || isinf(seconds))
    return false;
  *out = (int64_t)llround(seconds * 1000.0);
  return true;
}

/* ------------------------------------------------------- distributions */

static void dist_add(ev_dist_t *d, const char *name, bool *oom) {
  if (!name || !*name)
    name = "unreported";
  for (size_t i = 0; i < d->n; i++)
    if (strcmp(d->names[i], name) == 0) {
      d->counts[i]++;
      return;
    }
  if (d->n == EV_DIST_MAX) {
    d->other++;
    return;
  }
  char *copy = strdup(name);
  if (!copy) {
    *oom = true;
    d->other++;
    return;
  }
  d->names[d->n] = copy;
  d->counts[d->n++] = 1;
}

static void dist_free(ev_dist_t *d) {
  for (size_t i = 0; i < d->n; i++)
    free(d->names[i]);
  memset(d, 0, sizeof *d);
}

/* Names come from the upstream: one that looks like an identifier to the
 * PII guard is counted under "other" instead of failing the whole write. */
static json_t *dist_json(const ev_dist_t *d) {
  json_t *o = json_object();
  int64_t other = d->other;
  for (size_t i = 0; o && i < d->n; i++) {
    json_t *probe = json_pack("{s:i}", d->names[i], 1);
    char *text = probe ? json_dumps(probe, JSON_COMPACT) : NULL;
    json_decref(probe);
    char why[128];
    bool clean = text && strcmp(d->names[i], "other") != 0 &&
                 rn_pii_check(text, why, sizeof why) == 0;
    free(text);
    if (clean)
      json_object_set_new(o, d->names[i], json_integer(d->counts[i]));
    else
      other += d->counts[i];
  }
  if (o && other)
    json_object_set_new(o, "other", json_integer(other));
  return o;
}

/* --------------------------------------------------------- device table */

void ev_agg_init(ev_agg_t *agg, int64_t now_ms, int64_t external_org_id) {
  memset(agg, 0, sizeof *agg);
  agg->now_ms = now_ms;
  agg->external_org_id = external_org_id;
}

void ev_agg_free(ev_agg_t *agg) {
  free(agg->devices);
  dist_free(&agg->classes);
  dist_free(&agg->conversion);
  dist_free(&agg->av_products);
  memset(agg, 0, sizeof *agg);
}

static size_t slot_of(int64_t id, size_t cap) {
  uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
  return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static ev_device_t *find(const ev_agg_t *agg, int64_t id) {
  if (!agg->cap || id == 0)
    return NULL;
  for (size_t i = slot_of(id, agg->cap);; i = (i + 1) & (agg->cap - 1)) {
    if (agg->devices[i].id == id)
      return &agg->devices[i];
    if (agg->devices[i].id == 0)
      return NULL;
  }
}

static bool grow(ev_agg_t *agg) {
  size_t cap = agg->cap ? agg->cap * 2 : 64;
  ev_device_t *table = calloc(cap, sizeof *table);
  if (!table)
    return false;
  for (size_t i = 0; i < agg->cap; i++) {
    if (!agg->devices[i].id)
      continue;
    size_t j = slot_of(agg->devices[i].id, cap);
    while (table[j].id)
      j = (j + 1) & (cap - 1);
    table[j] = agg->devices[i];
  }
  free(agg->devices);
  agg->devices = table;
  agg->cap = cap;
  return true;
}

static ev_device_t *insert(ev_agg_t *agg, int64_t id, bool *existed) {
  ev_device_t *d = find(agg, id);
  *existed = d != NULL;
  if (d)
    return d;
  if ((agg->count + 1) * 2 > agg->cap && !grow(agg)) {
    agg->oom = true;
    return NULL;
  }
  size_t i = slot_of(id, agg->cap);
  while (agg->devices[i].id)
    i = (i + 1) & (agg->cap - 1);
  agg->devices[i] = (ev_device_t){.id = id, .av_newest_on_ms = INT64_MIN};
  agg->count++;
  return &agg->devices[i];
}

/* ---------------------------------------------------------------- rows */

static bool windows_or_mac(const char *node_class) {
  return node_class && (strncasecmp(node_class, "WINDOWS_", 8) == 0 ||
                        eq(node_class, "MAC") || eq(node_class, "MAC_SERVER"));
}

bool ev_agg_add_device(ev_agg_t *agg, const nj_device_t *d) {
  if (d->id <= 0 || !nj_device_approved(d))
    return false;
  /* The filter asked for this org; a row of another org is not ours. */
  if (d->organization_id != NJ_ABSENT &&
      d->organization_id != agg->external_org_id)
    return false;
  bool existed;
  ev_device_t *dev = insert(agg, d->id, &existed);
  if (!dev || existed)
    return dev != NULL;
  if (windows_or_mac(d->node_class))
    dev->flags |= EV_F_WIN_MAC;
  if (d->offline == 1) {
    dev->flags |= EV_F_OFFLINE;
    agg->offline++;
  } else if (d->offline != 0) {
    dev->flags |= EV_F_OFFLINE_UNKNOWN;
    agg->offline_unknown++;
  }
  dist_add(&agg->classes, d->node_class, &agg->oom);
  return true;
}

bool ev_agg_add_volume(ev_agg_t *agg, const nj_volume_t *v) {
  ev_device_t *dev = find(agg, v->device_id);
  if (!dev)
    return false;
  /* An allow list: removable, optical, network, RAM and unknown types are
   * all out of scope, as are volumes of other operating systems. */
  if (!(dev->flags & EV_F_WIN_MAC) || !eq(v->device_type, "Local Disk")) {
    agg->vol_out_of_scope++;
    return true;
  }
  agg->vol_in_scope++;
  const nj_bitlocker_t *bl = &v->bitlocker;
  dist_add(&agg->conversion,
           bl->present ? bl->conversion_status : "unreported", &agg->oom);
  if (bl->present && eq(bl->protection_status, "PROTECTED") &&
      eq(bl->conversion_status, "FULLY_ENCRYPTED"))
    agg->vol_encrypted++;
  else if (!bl->present || !bl->conversion_status || !bl->protection_status ||
           eq(bl->conversion_status, "UNKNOWN") ||
           eq(bl->protection_status, "UNKNOWN"))
    agg->vol_unknown++;
  else
    agg->vol_not_encrypted++;
  return true;
}

bool ev_agg_add_av(ev_agg_t *agg, const nj_av_status_t *a) {
  ev_device_t *dev = find(agg, a->device_id);
  if (!dev)
    return false;
  agg->av_rows++;
  dev->flags |= EV_F_AV_ROW;
  if (!eq(a->product_state, "ON"))
    return true;
  agg->av_rows_on++;
  dev->flags |= EV_F_AV_ON;
  dist_add(&agg->av_products, a->product_name, &agg->oom);
  int64_t at;
  if (!to_ms(a->timestamp, &at))
    return true; /* a report without a time proves nothing fresh */
  if (at > dev->av_newest_on_ms)
    dev->av_newest_on_ms = at;
  if (eq(a->definition_status, "Up-to-Date") && agg->now_ms - at <= FRESH_MS)
    dev->flags |= EV_F_AV_FRESH;
  if (eq(a->definition_status, "Out-of-Date"))
    dev->flags |= EV_F_AV_OUTDATED;
  return true;
}

/* Neither rejected, failed nor installed: still to do. */
static bool pending_status(const char *status) {
  return !eq(status, "REJECTED") && !eq(status, "FAILED") &&
         !eq(status, "INSTALLED");
}

bool ev_agg_add_os_patch(ev_agg_t *agg, const nj_os_patch_t *p) {
  if (!find(agg, p->device_id))
    return false;
  agg->os_rows++;
  if (eq(p->status, "FAILED"))
    agg->os_failed++;
  else if (pending_status(p->status)) {
    if (eq(p->severity, "CRITICAL"))
      agg->os_outstanding_critical++;
    else if (eq(p->severity, "IMPORTANT"))
      agg->os_outstanding_important++;
  }
  return true;
}

bool ev_agg_add_sw_patch(ev_agg_t *agg, const nj_sw_patch_t *p) {
  if (!find(agg, p->device_id))
    return false;
  agg->sw_rows++;
  if (eq(p->status, "FAILED"))
    agg->sw_failed++;
  else if (pending_status(p->status)) {
    if (eq(p->impact, "CRITICAL"))
      agg->sw_outstanding_critical++;
    else if (eq(p->impact, "RECOMMENDED"))
      agg->sw_outstanding_recommended++;
  }
  return true;
}

bool ev_agg_add_activity(ev_agg_t *agg, const nj_activity_t *a) {
  ev_device_t *dev = find(agg, a->device_id);
  if (!dev)
    return false;
  int64_t at;
  /* The query asked for after=now-7d (strict); checked again here so a
   * lenient upstream cannot widen the window. */
  if (!to_ms(a->activity_time, &at) || at <= agg->now_ms - BACKUP_WINDOW_MS) {
    agg->bk_outside_window++;
    return true;
  }
  agg->bk_events++;
  dev->flags |= EV_F_BK_ANY;
  if (eq(a->activity_result, "SUCCESS")) {
    agg->bk_success_events++;
    dev->flags |= EV_F_BK_SUCCESS;
  } else if (eq(a->activity_result, "FAILURE")) {
    agg->bk_failure_events++;
    dev->flags |= EV_F_BK_FAILURE;
  } else {
    agg->bk_other_events++;
  }
  return true;
}

static int source_of(nj_endpoint_t ep) {
  switch (ep) {
  case NJ_EP_DEVICES_DETAILED:
    return EV_SRC_DEVICES;
  case NJ_EP_VOLUMES:
    return EV_SRC_VOLUMES;
  case NJ_EP_AV_STATUS:
    return EV_SRC_AV;
  case NJ_EP_OS_PATCHES:
    return EV_SRC_OS_PATCHES;
  case NJ_EP_SOFTWARE_PATCHES:
    return EV_SRC_SW_PATCHES;
  case NJ_EP_ACTIVITIES:
    return EV_SRC_ACTIVITIES;
  default:
    return -1;
  }
}

void ev_agg_add_page(ev_agg_t *agg, const nj_page_t *page) {
  int src = source_of(page->endpoint);
  if (src < 0)
    return;
  ev_endpoint_stats_t *st = &agg->endpoints[src];
  st->pages++;
  st->rows += page->count;
  for (size_t i = 0; i < page->count; i++) {
    bool kept = false;
    switch (src) {
    case EV_SRC_DEVICES:
      kept = ev_agg_add_device(agg, &page->devices[i]);
      break;
    case EV_SRC_VOLUMES:
      kept = ev_agg_add_volume(agg, &page->volumes[i]);
      break;
    case EV_SRC_AV:
      kept = ev_agg_add_av(agg, &page->av[i]);
      break;
    case EV_SRC_OS_PATCHES:
      kept = ev_agg_add_os_patch(agg, &page->os_patches[i]);
      break;
    case EV_SRC_SW_PATCHES:
      kept = ev_agg_add_sw_patch(agg, &page->sw_patches[i]);
      break;
    case EV_SRC_ACTIVITIES:
      kept = ev_agg_add_activity(agg, &page->activities[i]);
      break;
    }
    if (!kept)
      st->dropped++;
  }
}

void ev_agg_walked(ev_agg_t *agg, ev_source_t src, bool truncated,
                   bool cap_hit) {
  if ((unsigned)src >= EV_SRC_COUNT)
    return;
  agg->endpoints[src].walked = true;
  agg->endpoints[src].truncated |= truncated;
  agg->cap_hit |= cap_hit;
}

/* ------------------------------------------------------------- signals */

/* A percentage for people, rounded to two decimals; decisions never read it. */
static json_t *percent(int64_t part, int64_t whole) {
  if (whole <= 0)
    return json_null();
  return json_real((double)llround((double)part * 10000.0 / (double)whole) /
                   100.0);
}

/* The endpoints a signal rests on, with page counts; true when any of them
 * (or the device list, which every signal rests on) was truncated. */
static bool add_endpoints(json_t *md, const ev_agg_t *agg, ev_source_t own) {
  json_t *eps = json_object();
  bool truncated = agg->oom;
  ev_source_t used[] = {EV_SRC_DEVICES, own};
  for (size_t i = 0; i < (own == EV_SRC_DEVICES ? 1u : 2u); i++) {
    const ev_endpoint_stats_t *st = &agg->endpoints[used[i]];
    truncated |= st->truncated;
    json_object_set_new(
        eps, source_paths[used[i]],
        json_pack("{s:I, s:I, s:I, s:b}", "pages", (json_int_t)st->pages,
                  "rows", (json_int_t)st->rows, "dropped_rows",
                  (json_int_t)st->dropped, "truncated", st->truncated));
  }
  json_object_set_new(md, "endpoints", eps);
  json_object_set_new(md, "truncated", json_boolean(truncated));
  return truncated;
}

/* Nothing to measure: the metadata holds only counts that are true (the
 * devices the rule would measure, the rows received: zero), never a bucket
 * or percentage that would read as a measurement. */
static rn_signal_status_t no_data(const ev_agg_t *agg, json_t *md,
                                  ev_source_t own, int64_t devices_in_scope,
                                  const char *zero_key, ev_signal_t *out) {
  out->no_data = true;
  out->devices_in_scope = devices_in_scope;
  json_object_set_new(md, "devices_in_scope", json_integer(devices_in_scope));
  json_object_set_new(md, zero_key, json_integer(0));
  add_endpoints(md, agg, own);
  return RN_SIGNAL_WARNING;
}

static int64_t devices_with(const ev_agg_t *agg, uint16_t flag) {
  int64_t n = 0;
  for (size_t i = 0; i < agg->cap; i++)
    n += agg->devices[i].id && (agg->devices[i].flags & flag);
  return n;
}

static rn_signal_status_t disk_encryption(const ev_agg_t *agg, json_t *md,
                                          ev_signal_t *out) {
  int64_t in = agg->vol_in_scope, enc = agg->vol_encrypted;
  if (in == 0) {
    /* Volumes of other types or systems were received: a true count. */
    json_object_set_new(md, "out_of_scope_volumes",
                        json_integer(agg->vol_out_of_scope));
    return no_data(agg, md, EV_SRC_VOLUMES, devices_with(agg, EV_F_WIN_MAC),
                   "in_scope_volumes", out);
  }
  json_object_set_new(md, "in_scope_volumes", json_integer(in));
  json_object_set_new(md, "encrypted", json_integer(enc));
  json_object_set_new(md, "not_encrypted", json_integer(agg->vol_not_encrypted));
  json_object_set_new(md, "unknown", json_integer(agg->vol_unknown));
  json_object_set_new(md, "out_of_scope_volumes",
                      json_integer(agg->vol_out_of_scope));
  json_object_set_new(md, "encrypted_percent", percent(enc, in));
  json_object_set_new(md, "conversion_status", dist_json(&agg->conversion));
  json_object_set_new(md, "thresholds",
                      json_pack("{s:i, s:i}", "pass_min_percent", 95,
                                "warning_min_percent", 80));
  add_endpoints(md, agg, EV_SRC_VOLUMES);
  if (enc * 100 >= in * 95)
    return RN_SIGNAL_PASS;
  if (enc * 100 >= in * 80)
    return RN_SIGNAL_WARNING;
  return RN_SIGNAL_FAIL;
}

static rn_signal_status_t antivirus(const ev_agg_t *agg, json_t *md,
                                    ev_signal_t *out) {
  if (agg->av_rows == 0)
    return no_data(agg, md, EV_SRC_AV, (int64_t)agg->count, "av_rows", out);
  int64_t fresh = 0, aging = 0, stale = 0, unprotected = 0, outdated = 0;
  for (size_t i = 0; i < agg->cap; i++) {
    const ev_device_t *d = &agg->devices[i];
    if (!d->id)
      continue;
    if (!(d->flags & EV_F_AV_ON))
      unprotected++;
    else if (d->flags & EV_F_AV_FRESH)
      fresh++;
    else if (d->av_newest_on_ms == INT64_MIN ||
             agg->now_ms - d->av_newest_on_ms > STALE_AFTER_MS)
      stale++;
    else
      aging++;
    if ((d->flags & EV_F_AV_ON) && (d->flags & EV_F_AV_OUTDATED))
      outdated++;
  }
  int64_t devices = (int64_t)agg->count;
  json_object_set_new(md, "devices_evaluated", json_integer(devices));
  json_object_set_new(md, "signature_age",
                      json_pack("{s:I, s:I, s:I, s:I}", "fresh",
                                (json_int_t)fresh, "aging", (json_int_t)aging,
                                "stale", (json_int_t)stale, "unprotected",
                                (json_int_t)unprotected));
  json_object_set_new(md, "protected_percent",
                      percent(devices - unprotected, devices));
  json_object_set_new(md, "fresh_percent", percent(fresh, devices));
  json_object_set_new(md, "reporting_out_of_date", json_integer(outdated));
  json_object_set_new(md, "av_rows", json_integer(agg->av_rows));
  json_object_set_new(md, "av_rows_on", json_integer(agg->av_rows_on));
  json_object_set_new(md, "products_on", dist_json(&agg->av_products));
  json_object_set_new(md, "thresholds",
                      json_pack("{s:i, s:i}", "fresh_max_days", 7,
                                "aging_max_days", 30));
  add_endpoints(md, agg, EV_SRC_AV);
  if (unprotected > 0 || stale > 0)
    return RN_SIGNAL_FAIL;
  if (aging > 0)
    return RN_SIGNAL_WARNING;
  return RN_SIGNAL_PASS;
}

static rn_signal_status_t patch_sla(const ev_agg_t *agg, json_t *md) {
  int64_t os = agg->os_outstanding_critical + agg->os_outstanding_important;
  int64_t sw = agg->sw_outstanding_critical + agg->sw_outstanding_recommended;
  int64_t outstanding = os + sw, failed = agg->os_failed + agg->sw_failed;
  json_object_set_new(md, "outstanding", json_integer(outstanding));
  json_object_set_new(
      md, "outstanding_os",
      json_pack("{s:I, s:I}", "critical",
                (json_int_t)agg->os_outstanding_critical, "important",
                (json_int_t)agg->os_outstanding_important));
  json_object_set_new(
      md, "outstanding_software",
      json_pack("{s:I, s:I}", "critical",
                (json_int_t)agg->sw_outstanding_critical, "recommended",
                (json_int_t)agg->sw_outstanding_recommended));
  json_object_set_new(md, "failed_installs",
                      json_pack("{s:I, s:I}", "os", (json_int_t)agg->os_failed,
                                "software", (json_int_t)agg->sw_failed));
  json_object_set_new(md, "patch_rows",
                      json_pack("{s:I, s:I}", "os", (json_int_t)agg->os_rows,
                                "software", (json_int_t)agg->sw_rows));
  json_object_set_new(md, "thresholds",
                      json_pack("{s:i, s:i, s:b}", "pass_max_outstanding", 0,
                                "warning_max_outstanding", 5,
                                "fail_on_failed_install", 1));
  json_t *eps = json_object();
  bool truncated = agg->oom;
  const ev_source_t used[] = {EV_SRC_DEVICES, EV_SRC_OS_PATCHES,
                              EV_SRC_SW_PATCHES};
  for (size_t i = 0; i < 3; i++) {
    const ev_endpoint_stats_t *st = &agg->endpoints[used[i]];
    truncated |= st->truncated;
    json_object_set_new(
        eps, source_paths[used[i]],
        json_pack("{s:I, s:I, s:I, s:b}", "pages", (json_int_t)st->pages,
                  "rows", (json_int_t)st->rows, "dropped_rows",
                  (json_int_t)st->dropped, "truncated", st->truncated));
  }
  json_object_set_new(md, "endpoints", eps);
  json_object_set_new(md, "truncated", json_boolean(truncated));
  if (failed > 0 || outstanding >= 6)
    return RN_SIGNAL_FAIL;
  if (outstanding >= 1)
    return RN_SIGNAL_WARNING;
  return RN_SIGNAL_PASS;
}

static rn_signal_status_t backup(const ev_agg_t *agg, json_t *md,
                                 ev_signal_t *out) {
  int64_t with = 0, success = 0, without = 0, only_failed = 0;
  for (size_t i = 0; i < agg->cap; i++) {
    uint16_t f = agg->devices[i].flags;
    if (!agg->devices[i].id || !(f & EV_F_BK_ANY))
      continue;
    with++;
    if (f & EV_F_BK_SUCCESS)
      success++;
    else {
      without++;
      if (f & EV_F_BK_FAILURE)
        only_failed++;
    }
  }
  if (with == 0)
    return no_data(agg, md, EV_SRC_ACTIVITIES, (int64_t)agg->count,
                   "backup_events", out);
  json_object_set_new(md, "devices_with_activity", json_integer(with));
  json_object_set_new(md, "devices_with_success", json_integer(success));
  json_object_set_new(md, "devices_without_success", json_integer(without));
  json_object_set_new(md, "devices_only_failed", json_integer(only_failed));
  json_object_set_new(md, "without_success_percent", percent(without, with));
  json_object_set_new(
      md, "events",
      json_pack("{s:I, s:I, s:I}", "success",
                (json_int_t)agg->bk_success_events, "failure",
                (json_int_t)agg->bk_failure_events, "other",
                (json_int_t)agg->bk_other_events));
  json_object_set_new(md, "window_days", json_integer(7));
  json_object_set_new(md, "thresholds",
                      json_pack("{s:i}", "fail_min_percent_without_success",
                                10));
  add_endpoints(md, agg, EV_SRC_ACTIVITIES);
  if (without == 0)
    return RN_SIGNAL_PASS;
  if (without * 10 >= with)
    return RN_SIGNAL_FAIL;
  return RN_SIGNAL_WARNING;
}

static rn_signal_status_t inventory(const ev_agg_t *agg, json_t *md) {
  int64_t approved = (int64_t)agg->count;
  json_object_set_new(md, "approved_devices", json_integer(approved));
  json_object_set_new(md, "offline", json_integer(agg->offline));
  json_object_set_new(md, "online", json_integer(approved - agg->offline -
                                                  agg->offline_unknown));
  json_object_set_new(md, "offline_unreported",
                      json_integer(agg->offline_unknown));
  json_object_set_new(md, "offline_percent", percent(agg->offline, approved));
  json_object_set_new(md, "node_classes", dist_json(&agg->classes));
  json_object_set_new(md, "thresholds",
                      json_pack("{s:i, s:i}", "pass_min_devices", 1,
                                "warning_min_offline_percent", 50));
  add_endpoints(md, agg, EV_SRC_DEVICES);
  if (approved == 0) {
    json_object_set_new(md, "reason", json_string("no_approved_device"));
    return RN_SIGNAL_WARNING;
  }
  return agg->offline * 2 >= approved ? RN_SIGNAL_WARNING : RN_SIGNAL_PASS;
}

int ev_compute(const ev_agg_t *agg, ev_signal_key_t key, ev_signal_t *out) {
  memset(out, 0, sizeof *out);
  out->key = key;
  json_t *md = json_object();
  if (!md)
    return RN_ENOMEM;
  json_object_set_new(md, "signal", json_string(ev_signal_name(key)));
  json_object_set_new(md, "source", json_string("ninjaone"));
  switch (key) {
  case EV_DISK_ENCRYPTION:
    out->status = disk_encryption(agg, md, out);
    break;
  case EV_ANTIVIRUS_POSTURE:
    out->status = antivirus(agg, md, out);
    break;
  case EV_PATCH_SLA:
    out->status = patch_sla(agg, md);
    break;
  case EV_BACKUP_ACTIVITY:
    out->status = backup(agg, md, out);
    break;
  case EV_DEVICE_INVENTORY:
    out->status = inventory(agg, md);
    break;
  default:
    json_decref(md);
    return RN_EINVAL;
  }
  if (out->no_data)
    json_object_set_new(md, "reason", json_string("no_data"));
  json_object_set_new(md, "status",
                      json_string(rn_signal_status_name(out->status)));
  /* Ten significant digits: 78.95, never 78.950000000000003. */
  out->metadata =
      json_dumps(md, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
  json_decref(md);
  return out->metadata ? 0 : RN_ENOMEM;
}

static const char *plural(int64_t n) { return n == 1 ? "" : "s"; }

void ev_no_data_ticket(const ev_signal_t *s, char *title, size_t title_len,
                       char *description, size_t description_len) {
  long long n = (long long)s->devices_in_scope;
  const char *what, *devices, *missing, *check;
  switch (s->key) {
  case EV_DISK_ENCRYPTION:
    what = "disk encryption data";
    devices = "approved Windows or macOS device";
    missing = "no local disk, so no BitLocker status,";
    check = "that these devices report their volumes to NinjaOne";
    break;
  case EV_ANTIVIRUS_POSTURE:
    what = "antivirus data";
    devices = "approved device";
    missing = "no antivirus status";
    check = "that an antivirus product is installed on these devices and "
            "reports to NinjaOne";
    break;
  case EV_BACKUP_ACTIVITY:
    what = "backup activity";
    devices = "approved device";
    missing = "no backup activity in the last 7 days";
    check = "that backup jobs run for these devices and report to NinjaOne";
    break;
  default:
    what = "data";
    devices = "approved device";
    missing = "nothing to measure";
    check = "the NinjaOne organization";
    break;
  }
  const char *name = ev_signal_name(s->key);
  snprintf(title, title_len, "NinjaOne returned no %s for %lld device%s",
           what, n, plural(n));
  snprintf(description, description_len,
           "Missing data, not a failing measurement. NinjaOne returned %s "
           "for any of the %lld %s%s of this organization, so the %s signal "
           "could not be measured and is WARNING with reason no_data. No "
           "device is known to fail the rule. Check %s; the ticket resolves "
           "itself once the signal passes.",
           missing, n, devices, plural(n), name ? name : "?", check);
}

void ev_signal_free(ev_signal_t *s) {
  free(s->metadata);
  s->metadata = NULL;
}
