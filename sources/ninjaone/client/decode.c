/*
 * decode.c - one page of a NinjaOne answer into plain C rows (jansson).
 *
 * Lenient where NinjaOne is loose: omitted fields, nulls and unknown keys
 * are fine. Strict about types: a string where a number belongs (or the
 * other way round) is an error naming the endpoint, row and field, since a
 * silently dropped value would turn into a wrong compliance signal.
 *
 * The page is read a row at a time (rk_read_rows): each row's strings are
 * copied into the page's own chunks and its tree is freed before the next.
 * A page never exists as one tree (about 8x its text), a page waiting for
 * delivery holds about its text's size, and every node is allocated and
 * freed by the decoding thread (a tree freed on the loop's thread contended
 * for the allocator with the decoders).
 * Runs on a worker thread: touches nothing shared.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nj_internal.h"

typedef struct dec_s {
  const char *ep;   /* endpoint path, for messages */
  size_t row;       /* 0-based row within the page */
  const char *parent; /* enclosing object key, or NULL */
  nj_decoded_t *out;
  size_t chunk_size; /* of the next chunk */
  char *msg;
  size_t msglen;
  int err;
} dec_t;

#define CHUNK_SIZE (64u * 1024u)

static void wrong(dec_t *d, const char *key, const json_t *v,
                  const char *expected) {
  if (d->err)
    return;
  d->err = RN_EJSON;
  snprintf(d->msg, d->msglen, "%s: row %zu: field '%s%s%s' is %s, expected %s",
           d->ep, d->row + 1, d->parent ? d->parent : "",
           d->parent ? "." : "", key, rk_json_type_name(v), expected);
}

static void *arena(dec_t *d, size_t size, size_t align) {
  nj_chunk_t *c = d->out->chunks;
  size_t at = c ? (c->used + align - 1) & ~(align - 1) : 0;
  if (!c || at + size > c->cap) {
    size_t cap = size > d->chunk_size ? size : d->chunk_size;
    c = malloc(offsetof(nj_chunk_t, data) + cap);
    if (!c) {
      if (!d->err) {
        d->err = RN_ENOMEM;
        snprintf(d->msg, d->msglen, "out of memory");
      }
      return NULL;
    }
    c->next = d->out->chunks;
    c->used = 0;
    c->cap = cap;
    d->out->chunks = c;
    d->chunk_size = CHUNK_SIZE;
    at = 0;
  }
  c->used = at + size;
  return (char *)c->data + at;
}

static void *block(dec_t *d, size_t size) {
  void *p = arena(d, size, _Alignof(max_align_t));
  if (p)
    memset(p, 0, size);
  return p;
}

static const char *copy(dec_t *d, const json_t *v) {
  size_t n = json_string_length(v);
  char *s = arena(d, n + 1, 1);
  if (!s)
    return NULL;
  memcpy(s, json_string_value(v), n);
  s[n] = '\0';
  return s;
}

static const char *s_(dec_t *d, const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v))
    return NULL;
  if (!json_is_string(v)) {
    wrong(d, key, v, "a string");
    return NULL;
  }
  return copy(d, v);
}

static int64_t i_(dec_t *d, const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v))
    return NJ_ABSENT;
  if (json_is_integer(v))
    return (int64_t)json_integer_value(v);
  if (json_is_real(v)) {
    double x = json_real_value(v);
    if (x == floor(x) && fabs(x) < 9.0e18)
      return (int64_t)x;
  }
  wrong(d, key, v, "an integer");
  return NJ_ABSENT;
}

static double t_(dec_t *d, const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v))
    return NAN;
  if (json_is_number(v))
    return json_number_value(v);
  wrong(d, key, v, "a number");
  return NAN;
}

static int b_(dec_t *d, const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v))
    return -1;
  if (json_is_boolean(v))
    return json_is_true(v);
  wrong(d, key, v, "a boolean");
  return -1;
}

/* v, or NULL when absent or null; NULL with an error when not of `type`. */
static const json_t *of_type(dec_t *d, const char *key, const json_t *v,
                             json_type type, const char *expected) {
  if (!v || json_is_null(v))
    return NULL;
  if (json_typeof(v) != type) {
    wrong(d, key, v, expected);
    return NULL;
  }
  return v;
}

/* An optional nested object. */
static const json_t *o_(dec_t *d, const json_t *obj, const char *key) {
  return of_type(d, key, json_object_get(obj, key), JSON_OBJECT, "an object");
}

static const json_t *a_(dec_t *d, const json_t *obj, const char *key) {
  return of_type(d, key, json_object_get(obj, key), JSON_ARRAY, "an array");
}

static const char *const *strings(dec_t *d, const json_t *obj, const char *key,
                                  size_t *n) {
  *n = 0;
  const json_t *arr = a_(d, obj, key);
  if (!arr || !json_array_size(arr))
    return NULL;
  const char **out = block(d, json_array_size(arr) * sizeof *out);
  if (!out)
    return NULL;
  size_t i;
  const json_t *v;
  json_array_foreach(arr, i, v) {
    if (json_is_null(v))
      continue;
    if (!json_is_string(v)) {
      wrong(d, key, v, "an array of strings");
      return NULL;
    }
    out[(*n)++] = copy(d, v);
  }
  return out;
}

/* ------------------------------------------------------------ rows */

static void org_row(dec_t *d, const json_t *o, void *row) {
  nj_org_t *r = row;
  r->id = i_(d, o, "id");
  r->name = s_(d, o, "name");
  r->description = s_(d, o, "description");
  r->node_approval_mode = s_(d, o, "nodeApprovalMode");
}

static void device_row(dec_t *d, const json_t *o, void *row) {
  nj_device_t *r = row;
  r->id = i_(d, o, "id");
  r->uid = s_(d, o, "uid");
  r->parent_device_id = i_(d, o, "parentDeviceId");
  r->organization_id = i_(d, o, "organizationId");
  r->location_id = i_(d, o, "locationId");
  r->node_class = s_(d, o, "nodeClass");
  r->node_role_id = i_(d, o, "nodeRoleId");
  r->role_policy_id = i_(d, o, "rolePolicyId");
  r->policy_id = i_(d, o, "policyId");
  r->approval_status = s_(d, o, "approvalStatus");
  r->offline = b_(d, o, "offline");
  r->display_name = s_(d, o, "displayName");
  r->system_name = s_(d, o, "systemName");
  r->dns_name = s_(d, o, "dnsName");
  r->netbios_name = s_(d, o, "netbiosName");
  r->created = t_(d, o, "created");
  r->last_contact = t_(d, o, "lastContact");
  r->last_update = t_(d, o, "lastUpdate");
  r->device_type = s_(d, o, "deviceType");
  r->public_ip = s_(d, o, "publicIP");
  r->last_logged_in_user = s_(d, o, "lastLoggedInUser");
  r->ip_addresses = strings(d, o, "ipAddresses", &r->n_ip_addresses);
  r->mac_addresses = strings(d, o, "macAddresses", &r->n_mac_addresses);
  r->os.last_boot_time = NAN;
  r->os.needs_reboot = -1;
  const json_t *os = o_(d, o, "os");
  if (os) {
    d->parent = "os";
    r->os.manufacturer = s_(d, os, "manufacturer");
    r->os.name = s_(d, os, "name");
    r->os.architecture = s_(d, os, "architecture");
    r->os.build_number = s_(d, os, "buildNumber");
    r->os.release_id = s_(d, os, "releaseId");
    r->os.last_boot_time = t_(d, os, "lastBootTime");
    r->os.needs_reboot = b_(d, os, "needsReboot");
    d->parent = NULL;
  }
  r->system.virtual_machine = -1;
  const json_t *sys = o_(d, o, "system");
  if (sys) {
    d->parent = "system";
    r->system.manufacturer = s_(d, sys, "manufacturer");
    r->system.model = s_(d, sys, "model");
    r->system.serial_number = s_(d, sys, "serialNumber");
    r->system.bios_serial_number = s_(d, sys, "biosSerialNumber");
    r->system.domain = s_(d, sys, "domain");
    r->system.chassis_type = s_(d, sys, "chassisType");
    r->system.virtual_machine = b_(d, sys, "virtualMachine");
    d->parent = NULL;
  }
  r->memory_capacity = NJ_ABSENT;
  const json_t *mem = o_(d, o, "memory");
  if (mem) {
    d->parent = "memory";
    r->memory_capacity = i_(d, mem, "capacity");
    d->parent = NULL;
  }
  const json_t *vols = a_(d, o, "volumes");
  if (vols && json_array_size(vols)) {
    nj_disk_t *disks = block(d, json_array_size(vols) * sizeof *disks);
    if (!disks)
      return;
    size_t i;
    const json_t *v;
    d->parent = "volumes[]";
    json_array_foreach(vols, i, v) {
      if (!json_is_object(v)) {
        wrong(d, "", v, "an object");
        break;
      }
      nj_disk_t *k = &disks[r->n_disks++];
      k->name = s_(d, v, "name");
      k->drive_letter = s_(d, v, "driveLetter");
      k->label = s_(d, v, "label");
      k->device_type = s_(d, v, "deviceType");
      k->file_system = s_(d, v, "fileSystem");
      k->capacity = i_(d, v, "capacity");
      k->free_space = i_(d, v, "freeSpace");
    }
    d->parent = NULL;
    r->disks = disks;
  }
}

static void volume_row(dec_t *d, const json_t *o, void *row) {
  nj_volume_t *r = row;
  r->device_id = i_(d, o, "deviceId");
  r->name = s_(d, o, "name");
  r->drive_letter = s_(d, o, "driveLetter");
  r->label = s_(d, o, "label");
  r->device_type = s_(d, o, "deviceType");
  r->file_system = s_(d, o, "fileSystem");
  r->auto_mount = b_(d, o, "autoMount");
  r->compressed = b_(d, o, "compressed");
  r->capacity = i_(d, o, "capacity");
  r->free_space = i_(d, o, "freeSpace");
  r->serial_number = s_(d, o, "serialNumber");
  r->timestamp = t_(d, o, "timestamp");
  r->bitlocker.initialized_for_protection = -1;
  const json_t *bl = o_(d, o, "bitLockerStatus");
  if (bl) {
    d->parent = "bitLockerStatus";
    r->bitlocker.present = true;
    r->bitlocker.conversion_status = s_(d, bl, "conversionStatus");
    r->bitlocker.encryption_method = s_(d, bl, "encryptionMethod");
    r->bitlocker.protection_status = s_(d, bl, "protectionStatus");
    r->bitlocker.lock_status = s_(d, bl, "lockStatus");
    r->bitlocker.initialized_for_protection =
        b_(d, bl, "initializedForProtection");
    d->parent = NULL;
  }
}

static void av_row(dec_t *d, const json_t *o, void *row) {
  nj_av_status_t *r = row;
  r->device_id = i_(d, o, "deviceId");
  r->product_name = s_(d, o, "productName");
  r->product_state = s_(d, o, "productState");
  r->definition_status = s_(d, o, "definitionStatus");
  r->version = s_(d, o, "version");
  r->timestamp = t_(d, o, "timestamp");
}

static void os_patch_row(dec_t *d, const json_t *o, void *row) {
  nj_os_patch_t *r = row;
  r->id = s_(d, o, "id");
  r->device_id = i_(d, o, "deviceId");
  r->name = s_(d, o, "name");
  r->kb_number = s_(d, o, "kbNumber");
  r->severity = s_(d, o, "severity");
  r->status = s_(d, o, "status");
  r->type = s_(d, o, "type");
  r->timestamp = t_(d, o, "timestamp");
  r->installed_at = t_(d, o, "installedAt");
}

static void sw_patch_row(dec_t *d, const json_t *o, void *row) {
  nj_sw_patch_t *r = row;
  r->id = s_(d, o, "id");
  r->device_id = i_(d, o, "deviceId");
  r->product_identifier = s_(d, o, "productIdentifier");
  r->title = s_(d, o, "title");
  r->impact = s_(d, o, "impact");
  r->status = s_(d, o, "status");
  r->type = s_(d, o, "type");
  r->timestamp = t_(d, o, "timestamp");
  r->installed_at = t_(d, o, "installedAt");
}

static void activity_row(dec_t *d, const json_t *o, void *row) {
  nj_activity_t *r = row;
  r->id = i_(d, o, "id");
  r->activity_time = t_(d, o, "activityTime");
  r->device_id = i_(d, o, "deviceId");
  r->severity = s_(d, o, "severity");
  r->priority = s_(d, o, "priority");
  r->series_uid = s_(d, o, "seriesUid");
  r->activity_type = s_(d, o, "activityType");
  r->status_code = s_(d, o, "statusCode");
  r->status = s_(d, o, "status");
  r->activity_result = s_(d, o, "activityResult");
  r->source_config_uid = s_(d, o, "sourceConfigUid");
  r->source_name = s_(d, o, "sourceName");
  r->subject = s_(d, o, "subject");
  r->user_id = i_(d, o, "userId");
  r->message = s_(d, o, "message");
  r->type = s_(d, o, "type");
}

typedef void (*row_fn)(dec_t *d, const json_t *o, void *row);

static const struct {
  size_t size;
  row_fn fn;
} row_types[NJ_EP_COUNT] = {
    [NJ_EP_ORGANIZATIONS] = {sizeof(nj_org_t), org_row},
    [NJ_EP_DEVICES_DETAILED] = {sizeof(nj_device_t), device_row},
    [NJ_EP_VOLUMES] = {sizeof(nj_volume_t), volume_row},
    [NJ_EP_AV_STATUS] = {sizeof(nj_av_status_t), av_row},
    [NJ_EP_OS_PATCHES] = {sizeof(nj_os_patch_t), os_patch_row},
    [NJ_EP_SOFTWARE_PATCHES] = {sizeof(nj_sw_patch_t), sw_patch_row},
    [NJ_EP_ACTIVITIES] = {sizeof(nj_activity_t), activity_row},
};

static int64_t row_id(nj_endpoint_t ep, const void *rows, size_t i) {
  switch (ep) {
  case NJ_EP_ORGANIZATIONS:
    return ((const nj_org_t *)rows)[i].id;
  case NJ_EP_DEVICES_DETAILED:
    return ((const nj_device_t *)rows)[i].id;
  case NJ_EP_ACTIVITIES:
    return ((const nj_activity_t *)rows)[i].id;
  default:
    return NJ_ABSENT;
  }
}

/* ------------------------------------------------------------ the page */

typedef struct page_read_s {
  dec_t *d;
  nj_endpoint_t ep;
  size_t cap; /* rows allocated */
} page_read_t;

static int on_row(json_t *o, size_t index, void *data, char *msg,
                  size_t msglen) {
  (void)msg;
  (void)msglen;
  page_read_t *pr = data;
  dec_t *d = pr->d;
  nj_decoded_t *out = d->out;
  size_t size = row_types[pr->ep].size;
  if (out->count == pr->cap) {
    size_t n = pr->cap ? pr->cap * 2 : 64;
    void *rows = realloc(out->rows, n * size);
    if (!rows) {
      snprintf(d->msg, d->msglen, "out of memory");
      return RN_ENOMEM;
    }
    out->rows = rows;
    pr->cap = n;
  }
  void *row = memset((char *)out->rows + out->count * size, 0, size);
  d->row = index;
  row_types[pr->ep].fn(d, o, row);
  if (d->err)
    return d->err;
  out->count++;
  return 0;
}

/* A query report's cursor names its next page; other members are dropped. */
static int on_member(const char *key, json_t *v, void *data, char *msg,
                     size_t msglen) {
  (void)msg;
  (void)msglen;
  page_read_t *pr = data;
  dec_t *d = pr->d;
  if (pr->ep == NJ_EP_ACTIVITIES || strcmp(key, "cursor") != 0)
    return 0;
  const json_t *cur = of_type(d, key, v, JSON_OBJECT, "an object");
  if (cur) {
    d->parent = "cursor";
    const char *name = s_(d, cur, "name");
    d->parent = NULL;
    if (name && !(d->out->cursor_name = strdup(name)) && !d->err) {
      d->err = RN_ENOMEM;
      snprintf(d->msg, d->msglen, "out of memory");
    }
  }
  return d->err;
}

int nj__decode_page(nj_endpoint_t ep, const char *body, size_t len,
                    nj_decoded_t *out, bool *parse_error, char *msg,
                    size_t msglen) {
  memset(out, 0, sizeof *out);
  out->endpoint = ep;
  out->last_id = out->min_id = NJ_ABSENT;
  const char *path = nj_endpoint_path(ep);
  /* The first chunk is the text's size: no string is longer than its JSON,
   * so it holds most of what the rows keep. */
  dec_t d = {.ep = path, .out = out, .chunk_size = len + 1, .msg = msg,
             .msglen = msglen};
  page_read_t pr = {.d = &d, .ep = ep};
  rk_rows_reader_t r = RK_ROWS_READER_INIT;
  r.what = path;
  if (ep == NJ_EP_ACTIVITIES)
    r.rows_key = "activities";
  else if (ep != NJ_EP_ORGANIZATIONS && ep != NJ_EP_DEVICES_DETAILED)
    r.rows_key = "results";
  r.row = on_row;
  r.member = on_member;
  r.data = &pr;
  int rc = rk_read_rows(body, len, &r, parse_error, msg, msglen);
  if (rc)
    return rc;
  size_t n = out->count;
  if (ep == NJ_EP_ORGANIZATIONS || ep == NJ_EP_DEVICES_DETAILED ||
      ep == NJ_EP_ACTIVITIES) {
    for (size_t i = 0; i < n; i++) {
      int64_t id = row_id(ep, out->rows, i);
      if (id == NJ_ABSENT) {
        snprintf(msg, msglen, "%s: row %zu has no id to page on", path, i + 1);
        return RN_EJSON;
      }
      if (out->min_id == NJ_ABSENT || id < out->min_id)
        out->min_id = id;
      out->last_id = id;
    }
  }
  return 0;
}

void nj__decoded_free(nj_decoded_t *d) {
  while (d->chunks) {
    nj_chunk_t *next = d->chunks->next;
    free(d->chunks);
    d->chunks = next;
  }
  free(d->rows);
  free(d->cursor_name);
  memset(d, 0, sizeof *d);
}

void nj__decoded_page(const nj_decoded_t *d, size_t count, unsigned page_no,
                      nj_page_t *page) {
  memset(page, 0, sizeof *page);
  page->endpoint = d->endpoint;
  page->page = page_no;
  page->count = count;
  switch (d->endpoint) {
  case NJ_EP_ORGANIZATIONS:
    page->orgs = d->rows;
    break;
  case NJ_EP_DEVICES_DETAILED:
    page->devices = d->rows;
    break;
  case NJ_EP_VOLUMES:
    page->volumes = d->rows;
    break;
  case NJ_EP_AV_STATUS:
    page->av = d->rows;
    break;
  case NJ_EP_OS_PATCHES:
    page->os_patches = d->rows;
    break;
  case NJ_EP_SOFTWARE_PATCHES:
    page->sw_patches = d->rows;
    break;
  case NJ_EP_ACTIVITIES:
    page->activities = d->rows;
    break;
  default:
    break;
  }
}
