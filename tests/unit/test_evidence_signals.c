/* The five evidence signals on and around every boundary of DESIGN
 * section 6, fed through the same page path the sweep uses. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "signals.h"

#define NOW_MS 1767225600000LL
#define NOW_S 1767225600.0
#define DAY_S 86400.0
#define ORG 42

static ev_agg_t agg;

static void setup(void) { ev_agg_init(&agg, NOW_MS, ORG); }
static void teardown(void) { ev_agg_free(&agg); }

/* ------------------------------------------------------------ builders */

static nj_device_t device(int64_t id, const char *node_class, int offline) {
  nj_device_t d;
  memset(&d, 0, sizeof d);
  d.id = id;
  d.organization_id = ORG;
  d.node_class = node_class;
  d.approval_status = "APPROVED";
  d.offline = offline;
  d.system_name = "CTS-FS01";
  d.dns_name = "cts-fs01.contoso.local";
  d.public_ip = "203.0.113.7";
  d.last_logged_in_user = "CONTOSO\\admin.jdoe";
  d.system.serial_number = "7XK2QH3";
  return d;
}

static void feed_devices(const nj_device_t *rows, size_t n) {
  nj_page_t page = {.endpoint = NJ_EP_DEVICES_DETAILED, .page = 1,
                    .count = n, .devices = rows};
  ev_agg_add_page(&agg, &page);
  ev_agg_walked(&agg, EV_SRC_DEVICES, false, false);
}

static void add_windows(int64_t first, int64_t n, int offline_count) {
  for (int64_t i = 0; i < n; i++) {
    nj_device_t d = device(first + i, "WINDOWS_WORKSTATION",
                           i < offline_count ? 1 : 0);
    feed_devices(&d, 1);
  }
}

static nj_volume_t volume(int64_t device_id, const char *type,
                          const char *conversion, const char *protection) {
  nj_volume_t v;
  memset(&v, 0, sizeof v);
  v.device_id = device_id;
  v.name = "C:";
  v.drive_letter = "C:";
  v.label = "OS";
  v.serial_number = "9A4C21F0";
  v.device_type = type;
  v.timestamp = NOW_S - 3600;
  if (conversion) {
    v.bitlocker.present = true;
    v.bitlocker.conversion_status = conversion;
    v.bitlocker.protection_status = protection;
  }
  return v;
}

static void feed_volume(nj_volume_t v) {
  nj_page_t page = {.endpoint = NJ_EP_VOLUMES, .page = 1, .count = 1,
                    .volumes = &v};
  ev_agg_add_page(&agg, &page);
}

static void feed_av(int64_t device_id, const char *product, const char *state,
                    const char *definitions, double timestamp) {
  nj_av_status_t a = {.device_id = device_id, .product_name = product,
                      .product_state = state,
                      .definition_status = definitions,
                      .timestamp = timestamp};
  nj_page_t page = {.endpoint = NJ_EP_AV_STATUS, .page = 1, .count = 1,
                    .av = &a};
  ev_agg_add_page(&agg, &page);
}

static void feed_os_patch(int64_t device_id, const char *severity,
                          const char *status) {
  nj_os_patch_t p = {.device_id = device_id, .severity = severity,
                     .status = status, .name = "KB5066793",
                     .timestamp = NOW_S - 2 * DAY_S, .installed_at = NAN};
  nj_page_t page = {.endpoint = NJ_EP_OS_PATCHES, .page = 1, .count = 1,
                    .os_patches = &p};
  ev_agg_add_page(&agg, &page);
}

static void feed_sw_patch(int64_t device_id, const char *impact,
                          const char *status) {
  nj_sw_patch_t p = {.device_id = device_id, .impact = impact,
                     .status = status, .title = "Chrome",
                     .timestamp = NOW_S - 2 * DAY_S, .installed_at = NAN};
  nj_page_t page = {.endpoint = NJ_EP_SOFTWARE_PATCHES, .page = 1, .count = 1,
                    .sw_patches = &p};
  ev_agg_add_page(&agg, &page);
}

static void feed_backup(int64_t device_id, const char *result, double age_s) {
  nj_activity_t a = {.id = 1, .device_id = device_id,
                     .activity_type = "NINJA_BACKUP",
                     .activity_result = result,
                     .activity_time = NOW_S - age_s};
  nj_page_t page = {.endpoint = NJ_EP_ACTIVITIES, .page = 1, .count = 1,
                    .activities = &a};
  ev_agg_add_page(&agg, &page);
}

/* Computes a signal, checks its metadata against the PII guard, and returns
 * the parsed metadata (new). */
static json_t *compute(ev_signal_key_t key, rn_signal_status_t *status,
                       bool *no_data) {
  ev_signal_t s;
  cr_assert_eq(ev_compute(&agg, key, &s), 0);
  char why[256] = "";
  cr_assert_eq(rn_pii_check(s.metadata, why, sizeof why), 0,
               "%s metadata refused by the PII guard: %s (%s)",
               ev_signal_name(key), why, s.metadata);
  json_t *md = json_loads(s.metadata, 0, NULL);
  cr_assert(md, "metadata is not JSON: %s", s.metadata);
  cr_assert_str_eq(json_string_value(json_object_get(md, "status")),
                   rn_signal_status_name(s.status));
  *status = s.status;
  if (no_data)
    *no_data = s.no_data;
  bool reason = json_object_get(md, "reason") != NULL &&
                strcmp(json_string_value(json_object_get(md, "reason")),
                       "no_data") == 0;
  cr_assert_eq(reason, s.no_data, "reason no_data iff no data: %s",
               s.metadata);
  ev_signal_free(&s);
  return md;
}

static rn_signal_status_t status_of(ev_signal_key_t key, bool *no_data) {
  rn_signal_status_t st;
  json_decref(compute(key, &st, no_data));
  return st;
}

#define PASS RN_SIGNAL_PASS
#define WARNING RN_SIGNAL_WARNING
#define FAIL RN_SIGNAL_FAIL

/* ----------------------------------------------------- disk_encryption */

struct disk_case {
  int in_scope, encrypted;
  rn_signal_status_t want;
};

ParameterizedTestParameters(disk_encryption, boundaries) {
  static struct disk_case cases[] = {
      {20, 19, PASS},     /* exactly 95% */
      {19, 18, WARNING},  /* 94.7% */
      {100, 95, PASS},    {100, 94, WARNING},
      {5, 4, WARNING},    /* exactly 80% */
      {100, 80, WARNING}, {100, 79, FAIL},
      {19, 15, FAIL},     /* 78.9% */
      {1, 1, PASS},       {1, 0, FAIL},
      {3, 3, PASS},       {7, 6, WARNING}, /* 85.7% */
  };
  return cr_make_param_array(struct disk_case, cases,
                             sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct disk_case *c, disk_encryption, boundaries,
                  .init = setup, .fini = teardown) {
  add_windows(1000, c->in_scope, 0);
  for (int i = 0; i < c->in_scope; i++)
    feed_volume(volume(1000 + i, "Local Disk",
                       i < c->encrypted ? "FULLY_ENCRYPTED" : "FULLY_DECRYPTED",
                       i < c->encrypted ? "PROTECTED" : "UNPROTECTED"));
  bool no_data;
  cr_expect_eq(status_of(EV_DISK_ENCRYPTION, &no_data), c->want,
               "%d of %d encrypted", c->encrypted, c->in_scope);
  cr_expect(!no_data);
}

Test(disk_encryption, scope_unknown_and_dropped_rows, .init = setup,
     .fini = teardown) {
  add_windows(1000, 5, 0);
  nj_device_t linux_srv = device(2000, "LINUX_SERVER", 0);
  nj_device_t mac = device(2001, "MAC", 0);
  nj_device_t pending = device(2002, "WINDOWS_WORKSTATION", 0);
  pending.approval_status = "PENDING";
  nj_device_t foreign = device(2003, "WINDOWS_WORKSTATION", 0);
  foreign.organization_id = ORG + 1;
  feed_devices((nj_device_t[]){linux_srv, mac, pending, foreign}, 4);
  /* 4 encrypted of 5 in scope, the fifth UNKNOWN: exactly 80% */
  for (int i = 0; i < 4; i++)
    feed_volume(volume(1000 + i, "Local Disk", "FULLY_ENCRYPTED", "PROTECTED"));
  feed_volume(volume(1004, "Local Disk", "UNKNOWN", "UNKNOWN"));
  feed_volume(volume(1001, "Removable Disk", NULL, NULL));
  feed_volume(volume(2000, "Local Disk", NULL, NULL));   /* Linux */
  feed_volume(volume(2002, "Local Disk", "FULLY_DECRYPTED", "UNPROTECTED"));
  feed_volume(volume(2003, "Local Disk", "FULLY_DECRYPTED", "UNPROTECTED"));
  feed_volume(volume(9999, "Local Disk", "FULLY_DECRYPTED", "UNPROTECTED"));
  rn_signal_status_t st;
  json_t *md = compute(EV_DISK_ENCRYPTION, &st, NULL);
  cr_expect_eq(st, WARNING);
  cr_expect_eq(json_integer_value(json_object_get(md, "in_scope_volumes")), 5);
  cr_expect_eq(json_integer_value(json_object_get(md, "unknown")), 1);
  cr_expect_eq(json_integer_value(json_object_get(md, "out_of_scope_volumes")),
               2);
  json_t *ep = json_object_get(json_object_get(md, "endpoints"),
                               "/v2/queries/volumes");
  cr_expect_eq(json_integer_value(json_object_get(ep, "dropped_rows")), 3);
  cr_expect_eq(json_real_value(json_object_get(md, "encrypted_percent")), 80.0);
  json_decref(md);
  /* A macOS volume counts like a Windows one; a missing status is unknown. */
  feed_volume(volume(2001, "Local Disk", NULL, NULL));
  md = compute(EV_DISK_ENCRYPTION, &st, NULL);
  cr_expect_eq(json_integer_value(json_object_get(md, "unknown")), 2);
  cr_expect_eq(st, FAIL, "4 of 6 is 66.7%%");
  json_decref(md);
}

Test(disk_encryption, in_progress_and_paused_are_not_encrypted, .init = setup,
     .fini = teardown) {
  add_windows(1000, 3, 0);
  feed_volume(volume(1000, "Local Disk", "ENCRYPTION_IN_PROGRESS", "UNPROTECTED"));
  feed_volume(volume(1001, "Local Disk", "FULLY_ENCRYPTED", "PENDING"));
  feed_volume(volume(1002, "Local Disk", "ENCRYPTION_PAUSED", "PROTECTED"));
  rn_signal_status_t st;
  json_t *md = compute(EV_DISK_ENCRYPTION, &st, NULL);
  cr_expect_eq(st, FAIL);
  cr_expect_eq(json_integer_value(json_object_get(md, "not_encrypted")), 3);
  json_decref(md);
}

Test(disk_encryption, no_in_scope_volume_is_no_data, .init = setup,
     .fini = teardown) {
  add_windows(1000, 2, 0);
  feed_volume(volume(1000, "Removable Disk", NULL, NULL));
  feed_volume(volume(1001, "CD-ROM Disc", NULL, NULL));
  bool no_data;
  cr_expect_eq(status_of(EV_DISK_ENCRYPTION, &no_data), WARNING);
  cr_expect(no_data);
}

/* --------------------------------------------------- antivirus_posture */

/* Parameters are copied into each test's process: no pointers. */
enum { ON_UP, ON_OUT, OFF_UP, OFF_OUT };
static const char *const av_state[] = {"ON", "ON", "OFF", "OFF"};
static const char *const av_definitions[] = {"Up-to-Date", "Out-of-Date",
                                             "Up-to-Date", "Out-of-Date"};

struct av_case {
  int report;
  double age_s;
  rn_signal_status_t want;
};

ParameterizedTestParameters(antivirus_posture, boundaries) {
  static struct av_case cases[] = {
      {ON_UP, 0, PASS},
      {ON_UP, 7 * DAY_S, PASS},           /* exactly 7 days */
      {ON_UP, 7 * DAY_S + 0.001, WARNING}, /* a millisecond over */
      {ON_UP, 7 * DAY_S + 1, WARNING},
      {ON_UP, 30 * DAY_S, WARNING},       /* exactly 30 days */
      {ON_UP, 30 * DAY_S + 0.001, FAIL},
      {ON_UP, 30 * DAY_S + 1, FAIL},
      {ON_OUT, DAY_S, WARNING},
      {ON_OUT, 0, WARNING},
      {ON_OUT, 30 * DAY_S, WARNING},
      {ON_OUT, 31 * DAY_S, FAIL},
      {OFF_UP, 0, FAIL},
      {OFF_OUT, 0, FAIL},
  };
  return cr_make_param_array(struct av_case, cases,
                             sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct av_case *c, antivirus_posture, boundaries,
                  .init = setup, .fini = teardown) {
  add_windows(1000, 2, 0);
  feed_av(1000, "Microsoft Defender Antivirus", "ON", "Up-to-Date",
          NOW_S - 3600);
  feed_av(1001, "SentinelOne", av_state[c->report],
          av_definitions[c->report], NOW_S - c->age_s);
  cr_expect_eq(status_of(EV_ANTIVIRUS_POSTURE, NULL), c->want,
               "%s %s %.3f s ago", av_state[c->report],
               av_definitions[c->report], c->age_s);
}

Test(antivirus_posture, buckets_and_unprotected_devices, .init = setup,
     .fini = teardown) {
  add_windows(1000, 5, 0);
  feed_av(1000, "Microsoft Defender Antivirus", "ON", "Up-to-Date", NOW_S);
  /* Defender OFF beside an ON third-party product is protected. */
  feed_av(1001, "Microsoft Defender Antivirus", "OFF", "Out-of-Date", NOW_S);
  feed_av(1001, "SentinelOne", "ON", "Up-to-Date", NOW_S - 3600);
  feed_av(1002, "SentinelOne", "ON", "Up-to-Date", NOW_S - 10 * DAY_S);
  feed_av(1003, "SentinelOne", "ON", "Up-to-Date", NOW_S - 40 * DAY_S);
  /* 1004 has no AV row at all: unprotected. */
  feed_av(7777, "SentinelOne", "ON", "Up-to-Date", NOW_S); /* not approved */
  rn_signal_status_t st;
  json_t *md = compute(EV_ANTIVIRUS_POSTURE, &st, NULL);
  cr_expect_eq(st, FAIL);
  json_t *b = json_object_get(md, "signature_age");
  cr_expect_eq(json_integer_value(json_object_get(b, "fresh")), 2);
  cr_expect_eq(json_integer_value(json_object_get(b, "aging")), 1);
  cr_expect_eq(json_integer_value(json_object_get(b, "stale")), 1);
  cr_expect_eq(json_integer_value(json_object_get(b, "unprotected")), 1);
  json_t *products = json_object_get(md, "products_on");
  cr_expect_eq(json_integer_value(json_object_get(products, "SentinelOne")), 3);
  json_decref(md);
}

Test(antivirus_posture, no_rows_at_all_is_no_data, .init = setup,
     .fini = teardown) {
  add_windows(1000, 3, 0);
  bool no_data;
  cr_expect_eq(status_of(EV_ANTIVIRUS_POSTURE, &no_data), WARNING);
  cr_expect(no_data);
}

Test(antivirus_posture, a_newer_report_decides_staleness, .init = setup,
     .fini = teardown) {
  add_windows(1000, 1, 0);
  feed_av(1000, "SentinelOne", "ON", "Up-to-Date", NOW_S - 45 * DAY_S);
  feed_av(1000, "Microsoft Defender Antivirus", "ON", "Out-of-Date",
          NOW_S - 2 * DAY_S);
  cr_expect_eq(status_of(EV_ANTIVIRUS_POSTURE, NULL), WARNING);
}

/* ----------------------------------------------------------- patch_sla */

struct patch_case {
  int os_outstanding, sw_outstanding, failed;
  rn_signal_status_t want;
};

ParameterizedTestParameters(patch_sla, boundaries) {
  static struct patch_case cases[] = {
      {0, 0, 0, PASS},    {1, 0, 0, WARNING}, {0, 1, 0, WARNING},
      {3, 2, 0, WARNING}, {5, 0, 0, WARNING}, {4, 2, 0, FAIL},
      {6, 0, 0, FAIL},    {0, 6, 0, FAIL},    {0, 0, 1, FAIL},
      {1, 0, 1, FAIL},    {20, 20, 0, FAIL},
  };
  return cr_make_param_array(struct patch_case, cases,
                             sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct patch_case *c, patch_sla, boundaries, .init = setup,
                  .fini = teardown) {
  add_windows(1000, 2, 0);
  for (int i = 0; i < c->os_outstanding; i++)
    feed_os_patch(1000 + i % 2, i % 2 ? "IMPORTANT" : "CRITICAL",
                  i % 3 ? "APPROVED" : "MANUAL");
  for (int i = 0; i < c->sw_outstanding; i++)
    feed_sw_patch(1000 + i % 2, i % 2 ? "RECOMMENDED" : "CRITICAL", "MANUAL");
  for (int i = 0; i < c->failed; i++)
    feed_os_patch(1000, "MODERATE", "FAILED");
  /* Never outstanding: lower severity, rejected, installed, failed. */
  feed_os_patch(1000, "MODERATE", "MANUAL");
  feed_os_patch(1000, "OPTIONAL", "APPROVED");
  feed_os_patch(1000, "CRITICAL", "REJECTED");
  feed_os_patch(1001, "IMPORTANT", "INSTALLED");
  feed_sw_patch(1001, "OPTIONAL", "APPROVED");
  feed_sw_patch(1001, "CRITICAL", "REJECTED");
  /* Not an approved device of this org: dropped. */
  feed_os_patch(5555, "CRITICAL", "MANUAL");
  feed_os_patch(5555, "CRITICAL", "FAILED");
  rn_signal_status_t st;
  json_t *md = compute(EV_PATCH_SLA, &st, NULL);
  cr_expect_eq(st, c->want, "%d OS + %d software outstanding, %d failed",
               c->os_outstanding, c->sw_outstanding, c->failed);
  cr_expect_eq(json_integer_value(json_object_get(md, "outstanding")),
               c->os_outstanding + c->sw_outstanding);
  json_decref(md);
}

Test(patch_sla, no_rows_is_a_pass_by_rule, .init = setup, .fini = teardown) {
  bool no_data;
  cr_expect_eq(status_of(EV_PATCH_SLA, &no_data), PASS);
  cr_expect(!no_data);
}

/* ----------------------------------------------------- backup_activity */

struct backup_case {
  int with_activity, only_failed;
  rn_signal_status_t want;
};

ParameterizedTestParameters(backup_activity, boundaries) {
  static struct backup_case cases[] = {
      {10, 1, FAIL},    /* exactly 10% */
      {11, 1, WARNING}, /* 9.1% */
      {3, 0, PASS},     {1, 0, PASS},      {1, 1, FAIL},
      {20, 2, FAIL},    {21, 2, WARNING},  {100, 9, WARNING},
      {100, 10, FAIL},
  };
  return cr_make_param_array(struct backup_case, cases,
                             sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct backup_case *c, backup_activity, boundaries,
                  .init = setup, .fini = teardown) {
  add_windows(1000, c->with_activity + 2, 0);
  for (int i = 0; i < c->with_activity; i++) {
    bool failing = i < c->only_failed;
    feed_backup(1000 + i, failing ? "FAILURE" : "SUCCESS", DAY_S);
    feed_backup(1000 + i, "FAILURE", 3 * DAY_S);
  }
  cr_expect_eq(status_of(EV_BACKUP_ACTIVITY, NULL), c->want,
               "%d of %d without success", c->only_failed, c->with_activity);
}

Test(backup_activity, window_is_seven_days_exclusive, .init = setup,
     .fini = teardown) {
  add_windows(1000, 3, 0);
  feed_backup(1000, "SUCCESS", DAY_S);
  feed_backup(1000, "FAILURE", 8 * DAY_S);  /* outside */
  feed_backup(1001, "FAILURE", 7 * DAY_S);  /* exactly 7 days: outside */
  feed_backup(1002, "SUCCESS", 7 * DAY_S - 0.001);
  rn_signal_status_t st;
  json_t *md = compute(EV_BACKUP_ACTIVITY, &st, NULL);
  cr_expect_eq(st, PASS);
  cr_expect_eq(json_integer_value(json_object_get(md, "devices_with_activity")),
               2);
  json_decref(md);
}

Test(backup_activity, no_activity_is_no_data, .init = setup, .fini = teardown) {
  add_windows(1000, 3, 0);
  feed_backup(9999, "FAILURE", DAY_S); /* not approved: dropped */
  bool no_data;
  cr_expect_eq(status_of(EV_BACKUP_ACTIVITY, &no_data), WARNING);
  cr_expect(no_data);
}

Test(backup_activity, success_with_warnings_counts_as_success, .init = setup,
     .fini = teardown) {
  add_windows(1000, 1, 0);
  feed_backup(1000, "FAILURE", 5 * DAY_S);
  feed_backup(1000, "SUCCESS", 4 * DAY_S); /* COMPLETED_WITH_WARNING */
  cr_expect_eq(status_of(EV_BACKUP_ACTIVITY, NULL), PASS);
}

/* ---------------------------------------------------- device_inventory */

struct inventory_case {
  int approved, offline;
  rn_signal_status_t want;
};

ParameterizedTestParameters(device_inventory, boundaries) {
  static struct inventory_case cases[] = {
      {4, 2, WARNING}, /* exactly 50% */
      {7, 3, PASS},    /* 42.9% */
      {1, 0, PASS},    {1, 1, WARNING}, {2, 1, WARNING},
      {3, 1, PASS},    {100, 49, PASS}, {100, 50, WARNING},
      {0, 0, WARNING},
  };
  return cr_make_param_array(struct inventory_case, cases,
                             sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct inventory_case *c, device_inventory, boundaries,
                  .init = setup, .fini = teardown) {
  add_windows(1000, c->approved, c->offline);
  nj_device_t pending = device(9000, "WINDOWS_WORKSTATION", 1);
  pending.approval_status = "PENDING";
  feed_devices(&pending, 1);
  bool no_data;
  cr_expect_eq(status_of(EV_DEVICE_INVENTORY, &no_data), c->want,
               "%d of %d offline", c->offline, c->approved);
  cr_expect(!no_data, "inventory reports no_approved_device, not no_data");
}

/* ------------------------------------------------------- all metadata */

Test(metadata, every_signal_is_aggregate_only, .init = setup,
     .fini = teardown) {
  add_windows(1000, 50, 7);
  nj_device_t mac = device(5000, "MAC", 0);
  feed_devices(&mac, 1);
  for (int i = 0; i < 50; i++) {
    feed_volume(volume(1000 + i, "Local Disk", "FULLY_ENCRYPTED", "PROTECTED"));
    feed_av(1000 + i, i % 2 ? "SentinelOne" : "ESET-NOD32", "ON",
            "Up-to-Date", NOW_S - i * 3600);
    feed_av(1000 + i, "WKS-PC01.corp.example.com", "ON", "Up-to-Date", NOW_S);
    feed_os_patch(1000 + i, "CRITICAL", "MANUAL");
    feed_sw_patch(1000 + i, "RECOMMENDED", "FAILED");
    feed_backup(1000 + i, i % 5 ? "SUCCESS" : "FAILURE", DAY_S);
  }
  static const char *const identifiers[] = {
      "CTS-FS01", "cts-fs01", "203.0.113.7", "admin.jdoe", "7XK2QH3",
      "9A4C21F0", "\"C:\"",   "\"OS\"",     "1000",       "5000",
      "WKS-PC01", "ESET-NOD32", NULL};
  for (int k = 0; k < EV_SIGNAL_COUNT; k++) {
    ev_signal_t s;
    cr_assert_eq(ev_compute(&agg, (ev_signal_key_t)k, &s), 0);
    char why[256] = "";
    cr_expect_eq(rn_pii_check(s.metadata, why, sizeof why), 0, "%s: %s",
                 ev_signal_name((ev_signal_key_t)k), why);
    for (size_t i = 0; identifiers[i]; i++)
      cr_expect(!strstr(s.metadata, identifiers[i]), "%s leaks %s: %s",
                ev_signal_name((ev_signal_key_t)k), identifiers[i],
                s.metadata);
    json_t *md = json_loads(s.metadata, 0, NULL);
    cr_expect(json_is_object(json_object_get(md, "thresholds")));
    cr_expect(json_is_object(json_object_get(md, "endpoints")));
    cr_expect(json_is_boolean(json_object_get(md, "truncated")));
    json_decref(md);
    ev_signal_free(&s);
  }
}

Test(metadata, a_truncated_walk_is_reported, .init = setup, .fini = teardown) {
  add_windows(1000, 2, 0);
  ev_agg_walked(&agg, EV_SRC_VOLUMES, true, true);
  rn_signal_status_t st;
  json_t *md = compute(EV_DISK_ENCRYPTION, &st, NULL);
  cr_expect(json_is_true(json_object_get(md, "truncated")));
  json_decref(md);
  md = compute(EV_PATCH_SLA, &st, NULL);
  cr_expect(json_is_false(json_object_get(md, "truncated")));
  json_decref(md);
}

Test(metadata, many_devices_and_products_stay_bounded, .init = setup,
     .fini = teardown) {
  enum { N = 20000 };
  nj_device_t *rows = calloc(1000, sizeof *rows);
  cr_assert(rows);
  for (int p = 0; p < N / 1000; p++) {
    for (int i = 0; i < 1000; i++)
      rows[i] = device(100000 + p * 1000 + i, "WINDOWS_SERVER", i % 4 == 0);
    feed_devices(rows, 1000);
  }
  free(rows);
  for (int i = 0; i < 100; i++) {
    char name[32];
    snprintf(name, sizeof name, "Vendor %d AV", i);
    feed_av(100000 + i, name, "ON", "Up-to-Date", NOW_S);
  }
  cr_expect_eq(agg.count, (size_t)N);
  cr_expect_eq(agg.av_products.n, (size_t)EV_DIST_MAX);
  cr_expect_eq(agg.av_products.other, 100 - EV_DIST_MAX);
  rn_signal_status_t st;
  json_t *md = compute(EV_DEVICE_INVENTORY, &st, NULL);
  cr_expect_eq(st, PASS);
  cr_expect_eq(json_integer_value(json_object_get(md, "offline")), N / 4);
  json_decref(md);
}

/* ----------------------------------------------------------- no_data */

/* Keys whose values would read as a measurement: none may appear beside
 * reason no_data. */
static const char *const measurement_keys[] = {
    "signature_age",  "protected_percent", "fresh_percent",
    "unprotected",    "fresh",             "aging",
    "stale",          "encrypted",         "not_encrypted",
    "unknown",        "encrypted_percent", "conversion_status",
    "products_on",    "reporting_out_of_date",
    "devices_with_success", "devices_without_success",
    "devices_only_failed",  "without_success_percent",
    "events",         "thresholds",        NULL};

static void expect_only_true_counts(ev_signal_key_t key, int64_t devices,
                                    const char *zero_key) {
  ev_signal_t s;
  cr_assert_eq(ev_compute(&agg, key, &s), 0);
  cr_expect(s.no_data);
  cr_expect_eq(s.devices_in_scope, devices);
  json_t *md = json_loads(s.metadata, 0, NULL);
  cr_assert(md);
  cr_expect_str_eq(json_string_value(json_object_get(md, "reason")),
                   "no_data");
  cr_expect_str_eq(json_string_value(json_object_get(md, "status")),
                   "WARNING");
  cr_expect_eq(json_integer_value(json_object_get(md, "devices_in_scope")),
               devices, "%s", s.metadata);
  json_t *zero = json_object_get(md, zero_key);
  cr_expect(json_is_integer(zero) && json_integer_value(zero) == 0, "%s: %s",
            zero_key, s.metadata);
  for (size_t i = 0; measurement_keys[i]; i++)
    cr_expect(!json_object_get(md, measurement_keys[i]),
              "%s reads as a measurement: %s", measurement_keys[i],
              s.metadata);
  cr_expect(!strstr(s.metadata, "percent"), "a percentage: %s", s.metadata);
  cr_expect(!strstr(s.metadata, "signature_age"), "%s", s.metadata);
  json_decref(md);
  ev_signal_free(&s);
}

Test(no_data, antivirus_says_devices_in_scope_and_zero_rows_only,
     .init = setup, .fini = teardown) {
  add_windows(1000, 5, 0);
  feed_av(7777, "SentinelOne", "ON", "Up-to-Date", NOW_S); /* not ours */
  expect_only_true_counts(EV_ANTIVIRUS_POSTURE, 5, "av_rows");
}

Test(no_data, disk_encryption_counts_windows_and_mac_devices_only,
     .init = setup, .fini = teardown) {
  add_windows(1000, 2, 0);
  nj_device_t linux_box = device(2000, "LINUX_SERVER", 0);
  feed_devices(&linux_box, 1);
  feed_volume(volume(1000, "Removable Disk", NULL, NULL));
  feed_volume(volume(2000, "Local Disk", "UNKNOWN", "UNKNOWN"));
  expect_only_true_counts(EV_DISK_ENCRYPTION, 2, "in_scope_volumes");
  ev_signal_t s;
  cr_assert_eq(ev_compute(&agg, EV_DISK_ENCRYPTION, &s), 0);
  cr_expect(strstr(s.metadata, "\"out_of_scope_volumes\":2"), "%s",
            s.metadata);
  ev_signal_free(&s);
}

Test(no_data, backup_says_devices_in_scope_and_zero_events_only,
     .init = setup, .fini = teardown) {
  add_windows(1000, 4, 1);
  feed_backup(1000, "SUCCESS", 9 * DAY_S); /* outside the window */
  expect_only_true_counts(EV_BACKUP_ACTIVITY, 4, "backup_events");
}

Test(no_data, ticket_text_says_missing_data_not_a_failure, .init = setup,
     .fini = teardown) {
  add_windows(1000, 5, 0);
  static const struct {
    ev_signal_key_t key;
    const char *title;
  } cases[] = {
      {EV_ANTIVIRUS_POSTURE, "NinjaOne returned no antivirus data for 5 devices"},
      {EV_DISK_ENCRYPTION,
       "NinjaOne returned no disk encryption data for 5 devices"},
      {EV_BACKUP_ACTIVITY, "NinjaOne returned no backup activity for 5 devices"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    ev_signal_t s;
    cr_assert_eq(ev_compute(&agg, cases[i].key, &s), 0);
    char title[160], description[640];
    ev_no_data_ticket(&s, title, sizeof title, description,
                      sizeof description);
    cr_expect_str_eq(title, cases[i].title);
    cr_expect(strncmp(description, "Missing data, not a failing measurement",
                      39) == 0,
              "%s", description);
    cr_expect(strstr(description, "reason no_data") &&
                  strstr(description, ev_signal_name(cases[i].key)),
              "%s", description);
    ev_signal_free(&s);
  }
}

Test(no_data, one_device_is_singular, .init = setup, .fini = teardown) {
  add_windows(1000, 1, 0);
  ev_signal_t s;
  cr_assert_eq(ev_compute(&agg, EV_ANTIVIRUS_POSTURE, &s), 0);
  char title[160], description[640];
  ev_no_data_ticket(&s, title, sizeof title, description, sizeof description);
  cr_expect_str_eq(title, "NinjaOne returned no antivirus data for 1 device");
  ev_signal_free(&s);
}

/* ------------------------------------------------------ approvalStatus */

Test(approval, a_device_without_approval_status_is_not_in_scope,
     .init = setup, .fini = teardown) {
  nj_device_t approved = device(1000, "WINDOWS_SERVER", 0);
  nj_device_t missing = device(1001, "WINDOWS_SERVER", 0);
  missing.approval_status = NULL;
  nj_device_t pending = device(1002, "WINDOWS_SERVER", 0);
  pending.approval_status = "PENDING";
  cr_expect(nj_device_approved(&approved));
  cr_expect(!nj_device_approved(&missing));
  cr_expect(!nj_device_approved(&pending));
  nj_device_t rows[] = {approved, missing, pending};
  feed_devices(rows, 3);
  cr_expect_eq(agg.count, 1);
  cr_expect_eq(agg.endpoints[EV_SRC_DEVICES].dropped, 2);
  /* Its rows are dropped too. */
  feed_av(1001, "SentinelOne", "ON", "Up-to-Date", NOW_S);
  cr_expect_eq(agg.av_rows, 0);
}
