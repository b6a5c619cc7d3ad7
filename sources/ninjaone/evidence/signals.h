/* signals.h - the five compliance signals of the NinjaOne evidence sweep,
 * computed from per-customer aggregates (DESIGN section 6).
 *
 * Pure code: no host, no database, no network. Rows are fed page by page as
 * the client decodes them; only a few bytes per approved device are kept
 * (keyed by device id), never a page. Every boundary is an integer
 * comparison on exact counts and milliseconds.
 *
 * Ownership: an ev_agg_t owns its device table and product names
 * (ev_agg_free); ev_signal_t.metadata is malloc'd text (free()). */
#ifndef NJ_EVIDENCE_SIGNALS_H
#define NJ_EVIDENCE_SIGNALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ninjaone/client.h"
#include "regentra/devsrc.h"

#define EV_DAY_MS (24LL * 3600 * 1000)

typedef enum ev_signal_key_e {
  EV_DISK_ENCRYPTION = 0,
  EV_ANTIVIRUS_POSTURE,
  EV_PATCH_SLA,
  EV_BACKUP_ACTIVITY,
  EV_DEVICE_INVENTORY,
  EV_SIGNAL_COUNT
} ev_signal_key_t;

const char *ev_signal_name(ev_signal_key_t key); /* "disk_encryption" */

/* The endpoints a sweep reads, in the order it reads them. */
typedef enum ev_source_e {
  EV_SRC_DEVICES = 0,
  EV_SRC_VOLUMES,
  EV_SRC_AV,
  EV_SRC_OS_PATCHES,
  EV_SRC_SW_PATCHES,
  EV_SRC_ACTIVITIES,
  EV_SRC_COUNT
} ev_source_t;

const char *ev_source_path(ev_source_t src); /* "/v2/queries/volumes" */

/* Small per-device state: what the signals need and nothing that names it. */
typedef struct ev_device_s {
  int64_t id;              /* 0 = empty slot */
  int64_t av_newest_on_ms; /* newest report of a product that is ON */
  uint16_t flags;          /* EV_F_* */
} ev_device_t;

enum {
  EV_F_WIN_MAC = 1 << 0,    /* Windows or macOS: its local disks are in scope */
  EV_F_OFFLINE = 1 << 1,
  EV_F_AV_ROW = 1 << 2,     /* at least one AV row */
  EV_F_AV_ON = 1 << 3,      /* a product with productState=ON */
  EV_F_AV_FRESH = 1 << 4,   /* ON + Up-to-Date reported within 7 days */
  EV_F_AV_OUTDATED = 1 << 5, /* an ON product reported Out-of-Date */
  EV_F_BK_ANY = 1 << 6,     /* backup activity in the window */
  EV_F_BK_SUCCESS = 1 << 7,
  EV_F_BK_FAILURE = 1 << 8,
  EV_F_OFFLINE_UNKNOWN = 1 << 9
};

/* A bounded name -> count distribution (vendors, products, classes). */
#define EV_DIST_MAX 32
typedef struct ev_dist_s {
  char *names[EV_DIST_MAX];
  int64_t counts[EV_DIST_MAX];
  size_t n;
  int64_t other; /* names past the cap, or names refused by the PII guard */
} ev_dist_t;

typedef struct ev_endpoint_stats_s {
  uint64_t pages, rows, dropped; /* dropped: not an approved device */
  bool walked, truncated;
} ev_endpoint_stats_t;

typedef struct ev_agg_s {
  int64_t now_ms;
  int64_t external_org_id;
  /* open addressing table of approved devices */
  ev_device_t *devices;
  size_t cap, count;
  int64_t offline, offline_unknown;
  ev_dist_t classes; /* nodeClass of approved devices */
  /* disk_encryption */
  int64_t vol_in_scope, vol_encrypted, vol_not_encrypted, vol_unknown;
  int64_t vol_out_of_scope;
  ev_dist_t conversion; /* conversionStatus of in-scope volumes */
  /* antivirus_posture */
  int64_t av_rows, av_rows_on;
  ev_dist_t av_products; /* ON rows by product */
  /* patch_sla: (device, patch) pairs */
  int64_t os_outstanding_critical, os_outstanding_important;
  int64_t sw_outstanding_critical, sw_outstanding_recommended;
  int64_t os_failed, sw_failed, os_rows, sw_rows;
  /* backup_activity */
  int64_t bk_events, bk_success_events, bk_failure_events, bk_other_events;
  int64_t bk_outside_window;
  ev_endpoint_stats_t endpoints[EV_SRC_COUNT];
  bool cap_hit; /* a walk stopped at a row cap */
  bool oom;     /* a table could not grow: results are incomplete */
} ev_agg_t;

void ev_agg_init(ev_agg_t *agg, int64_t now_ms, int64_t external_org_id);
void ev_agg_free(ev_agg_t *agg);

/* Feed rows. add_device keeps approved devices of the org and returns true
 * for them; the others return false when the row was dropped. */
bool ev_agg_add_device(ev_agg_t *agg, const nj_device_t *d);
bool ev_agg_add_volume(ev_agg_t *agg, const nj_volume_t *v);
bool ev_agg_add_av(ev_agg_t *agg, const nj_av_status_t *a);
bool ev_agg_add_os_patch(ev_agg_t *agg, const nj_os_patch_t *p);
bool ev_agg_add_sw_patch(ev_agg_t *agg, const nj_sw_patch_t *p);
bool ev_agg_add_activity(ev_agg_t *agg, const nj_activity_t *a);

/* Feeds one decoded page of any endpoint (counts pages, rows and drops). */
void ev_agg_add_page(ev_agg_t *agg, const nj_page_t *page);
/* Records how a walk ended. */
void ev_agg_walked(ev_agg_t *agg, ev_source_t src, bool truncated,
                   bool cap_hit);

typedef struct ev_signal_s {
  ev_signal_key_t key;
  rn_signal_status_t status;
  bool no_data;             /* nothing to measure: WARNING, reason no_data */
  int64_t devices_in_scope; /* no_data: the devices the rule would measure */
  char *metadata;           /* JSON object, malloc'd */
} ev_signal_t;

/* Computes one signal. 0, or RN_ENOMEM. A no_data signal's metadata holds
 * only counts that are true: devices_in_scope and the zero count of rows
 * received (in_scope_volumes, av_rows or backup_events), plus the endpoints
 * read; never a bucket or percentage that would read as a measurement. */
int ev_compute(const ev_agg_t *agg, ev_signal_key_t key, ev_signal_t *out);

/* The PSA ticket text of a no_data signal: a title such as "NinjaOne
 * returned no antivirus data for 5 devices" and a description that says it
 * is missing data, not a failing measurement. Counts only. */
void ev_no_data_ticket(const ev_signal_t *s, char *title, size_t title_len,
                       char *description, size_t description_len);
void ev_signal_free(ev_signal_t *s);

#endif
