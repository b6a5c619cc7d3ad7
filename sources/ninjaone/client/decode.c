/*
 * decode.c - one page of a NinjaOne answer into plain C rows (jansson).
 *
 * Lenient where NinjaOne is loose: omitted fields, nulls and unknown keys
 * are fine. Strict about types: a string where a number belongs (or the
 * other way round) is an error naming the endpoint, row and field, since a
 * silently dropped value would turn into a wrong compliance signal.
 *
 * The rows' strings are copied out of the parsed tree into the page's own
 * chunks, and the tree is freed before the page leaves the decoding thread:
 * a page waiting for delivery holds about its text's size, and the thousands
 * of nodes of the tree are allocated and freed by one thread (a tree freed
 * on the loop's thread contended for the allocator with the decoders).
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

static const char *type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  default:
    return "null";
  }
}

static void wrong(dec_t *d, const char *key, const json_t *v,
                  const char *expected) {
  if (d->err)
    return;
  d->err = RN_EJSON;
  snprintf(d->msg, d->msglen, "%s: row %zu: field '%s%s%s' is %s, expected %s",
           d->ep, d->row + 1, d->parent ? d->parent : "",
           d->parent ? "." : "", key, type_name(v), expected);
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

/* ------------------------------------------------------------ the text */

/* A page is read a row at a time: jansson parses one row, which is decoded
 * and freed before the next (JSON_DISABLE_EOF_CHECK makes jansson stop at
 * the row's end and say where that is). Only the brackets, commas and
 * colons around the rows are read here. So a page never exists as one
 * tree: decoding 1,000 devices holds one device's nodes at a time, not
 * 8x the page's text, and the nodes are reused from the thread's cache. */
typedef struct text_s {
  const char *start, *p, *end;
  bool *parse_error;
} text_t;

static void skip_space(text_t *t) {
  while (t->p < t->end &&
         (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r'))
    t->p++;
}

static bool at(text_t *t, char c) {
  skip_space(t);
  return t->p < t->end && *t->p == c;
}

static bool eat(text_t *t, char c) {
  if (!at(t, c))
    return false;
  t->p++;
  return true;
}

static int not_json(dec_t *d, text_t *t, const char *what, size_t offset) {
  *t->parse_error = true;
  snprintf(d->msg, d->msglen,
           "%s: the answer is not valid JSON (%s at byte %zu)", d->ep, what,
           offset);
  return RN_EJSON;
}

/* The next value, or NULL with the page refused as not JSON. */
static json_t *next_value(dec_t *d, text_t *t) {
  skip_space(t);
  json_error_t jerr;
  json_t *v = json_loadb(t->p, (size_t)(t->end - t->p),
                         JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK |
                             JSON_REJECT_DUPLICATES,
                         &jerr);
  if (!v) {
    not_json(d, t, jerr.text,
             (size_t)(t->p - t->start) + (size_t)jerr.position);
    return NULL;
  }
  t->p += jerr.position;
  return v;
}

static void *next_row(dec_t *d, nj_endpoint_t ep, size_t *cap) {
  nj_decoded_t *o = d->out;
  size_t size = row_types[ep].size;
  if (o->count == *cap) {
    size_t n = *cap ? *cap * 2 : 64;
    void *rows = realloc(o->rows, n * size);
    if (!rows) {
      d->err = RN_ENOMEM;
      snprintf(d->msg, d->msglen, "out of memory");
      return NULL;
    }
    o->rows = rows;
    *cap = n;
  }
  return memset((char *)o->rows + o->count * size, 0, size);
}

/* The rows of an array whose '[' has been read. */
static int read_rows(dec_t *d, text_t *t, nj_endpoint_t ep) {
  size_t cap = 0;
  if (eat(t, ']'))
    return 0;
  for (;;) {
    json_t *o = next_value(d, t);
    if (!o)
      return RN_EJSON;
    d->row = d->out->count;
    if (!json_is_object(o)) {
      snprintf(d->msg, d->msglen, "%s: row %zu is %s, expected an object",
               d->ep, d->row + 1, type_name(o));
      json_decref(o);
      return RN_EJSON;
    }
    void *row = next_row(d, ep, &cap);
    if (row)
      row_types[ep].fn(d, o, row);
    json_decref(o);
    if (d->err)
      return d->err;
    d->out->count++;
    if (eat(t, ','))
      continue;
    if (eat(t, ']'))
      return 0;
    return not_json(d, t, "',' or ']' expected", (size_t)(t->p - t->start));
  }
}

/* An object answer: `rows_key` holds the rows; a query report's cursor
 * names its next page. Other members are read and dropped. */
static int read_object(dec_t *d, text_t *t, nj_endpoint_t ep,
                       const char *rows_key) {
  bool seen_rows = false, seen_cursor = false;
  if (eat(t, '}'))
    return 0;
  for (;;) {
    size_t key_at = (size_t)(t->p - t->start);
    json_t *k = next_value(d, t);
    if (!k)
      return RN_EJSON;
    if (!json_is_string(k) || !eat(t, ':')) {
      json_decref(k);
      return not_json(d, t, "a key and ':' expected", key_at);
    }
    const char *key = json_string_value(k);
    bool is_rows = strcmp(key, rows_key) == 0;
    bool is_cursor = ep != NJ_EP_ACTIVITIES && strcmp(key, "cursor") == 0;
    if ((is_rows && seen_rows) || (is_cursor && seen_cursor)) {
      json_decref(k);
      return not_json(d, t, "duplicate key", key_at);
    }
    int rc = 0;
    if (is_rows && eat(t, '[')) {
      seen_rows = true;
      rc = read_rows(d, t, ep);
    } else {
      json_t *v = next_value(d, t);
      if (!v) {
        json_decref(k);
        return RN_EJSON;
      }
      if (is_rows) { /* not an array: null (no rows) or an error */
        seen_rows = true;
        of_type(d, key, v, JSON_ARRAY, "an array");
      } else if (is_cursor) {
        seen_cursor = true;
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
      }
      json_decref(v);
      rc = d->err;
    }
    json_decref(k);
    if (rc)
      return rc;
    if (eat(t, ','))
      continue;
    if (eat(t, '}'))
      return 0;
    return not_json(d, t, "',' or '}' expected", (size_t)(t->p - t->start));
  }
}

static int read_page(dec_t *d, text_t *t, nj_endpoint_t ep) {
  bool want_array = ep == NJ_EP_ORGANIZATIONS || ep == NJ_EP_DEVICES_DETAILED;
  int rc;
  if (want_array && eat(t, '[')) {
    rc = read_rows(d, t, ep);
  } else if (!want_array && eat(t, '{')) {
    rc = read_object(d, t, ep,
                     ep == NJ_EP_ACTIVITIES ? "activities" : "results");
  } else {
    json_t *v = next_value(d, t);
    if (!v)
      return RN_EJSON;
    snprintf(d->msg, d->msglen, "%s: the answer is %s, expected %s", d->ep,
             type_name(v), want_array ? "an array" : "an object");
    json_decref(v);
    return RN_EJSON;
  }
  if (rc)
    return rc;
  skip_space(t);
  if (t->p != t->end)
    return not_json(d, t, "end of text expected", (size_t)(t->p - t->start));
  return 0;
}

int nj__decode_page(nj_endpoint_t ep, const char *body, size_t len,
                    nj_decoded_t *out, bool *parse_error, char *msg,
                    size_t msglen) {
  memset(out, 0, sizeof *out);
  out->endpoint = ep;
  out->last_id = out->min_id = NJ_ABSENT;
  *parse_error = false;
  const char *path = nj_endpoint_path(ep);
  /* The first chunk holds every string: none is longer than its JSON. */
  dec_t d = {.ep = path, .out = out, .chunk_size = len + 1, .msg = msg,
             .msglen = msglen};
  text_t t = {.start = body, .p = body, .end = body + len,
              .parse_error = parse_error};
  int rc = read_page(&d, &t, ep);
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
