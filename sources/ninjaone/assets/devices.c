/* devices.c - NinjaOne device records become rn_asset_t rows the run owns.
 * Runs on a worker thread (the page callback), touching only the list. */
#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include "assets.h"

/* Strings and MAC arrays of a list, bump-allocated: freed all at once. */
struct dev_chunk_s {
  dev_chunk_t *next;
  size_t used, cap;
  max_align_t data[];
};

#define CHUNK_BYTES ((size_t)64 * 1024)

static void *chunk_alloc(devlist_t *list, size_t size) {
  size = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
  dev_chunk_t *c = list->chunks;
  if (!c || c->cap - c->used < size) {
    size_t cap = size > CHUNK_BYTES ? size : CHUNK_BYTES;
    c = host->alloc(sizeof *c + cap);
    if (!c)
      return NULL;
    c->next = list->chunks;
    c->used = 0;
    c->cap = cap;
    list->chunks = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += size;
  return p;
}

/* Blank values stay NULL: "" is not a name, a serial or a MAC. */
static int copy_str(devlist_t *list, const char *s, const char **out) {
  *out = NULL;
  if (!s || !*s)
    return 0;
  size_t n = strlen(s) + 1;
  char *p = chunk_alloc(list, n);
  if (!p)
    return RN_ENOMEM;
  memcpy(p, s, n);
  *out = p;
  return 0;
}

static const char *first_of(const char *a, const char *b) {
  return a && *a ? a : b;
}

static int normalize(devlist_t *list, const nj_device_t *d, rn_asset_t *a) {
  char id[24];
  int n = snprintf(id, sizeof id, "%lld", (long long)d->id);
  if (n < 0)
    return RN_EINVAL;
  memset(a, 0, sizeof *a);
  int rc = copy_str(list, id, &a->external_id);
  if (!rc)
    rc = copy_str(list,
                  first_of(d->display_name,
                           first_of(d->system_name, d->dns_name)),
                  &a->name);
  if (!rc)
    rc = copy_str(list, first_of(d->system_name, d->dns_name), &a->hostname);
  if (!rc)
    rc = copy_str(list,
                  first_of(d->system.serial_number,
                           d->system.bios_serial_number),
                  &a->serial_number);
  if (!rc)
    rc = copy_str(list, d->os.name, &a->os_name);
  if (!rc)
    rc = copy_str(list, d->node_class, &a->device_class);
  if (!rc)
    rc = copy_str(list, d->system.manufacturer, &a->manufacturer);
  if (!rc)
    rc = copy_str(list, d->system.model, &a->model);
  if (rc)
    return rc;
  if (d->n_mac_addresses) {
    const char **macs =
        chunk_alloc(list, (d->n_mac_addresses + 1) * sizeof *macs);
    if (!macs)
      return RN_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < d->n_mac_addresses; i++) {
      if (copy_str(list, d->mac_addresses[i], &macs[k]) < 0)
        return RN_ENOMEM;
      if (macs[k])
        k++;
    }
    macs[k] = NULL;
    a->mac_addresses = k ? macs : NULL;
  }
  /* lastContact is epoch seconds with a fraction; absent is NAN. */
  if (isfinite(d->last_contact) && d->last_contact > 0)
    a->last_seen_ms = (int64_t)llround(d->last_contact * 1000.0);
  return 0;
}

int devlist_add_page(devlist_t *list, const nj_page_t *page, int64_t org_id) {
  if (list->count + page->count > list->cap) {
    size_t cap = list->cap ? list->cap : 256;
    while (cap < list->count + page->count)
      cap *= 2;
    rn_asset_t *grown = host->realloc(list->assets, cap * sizeof *grown);
    if (!grown)
      return RN_ENOMEM;
    list->assets = grown;
    list->cap = cap;
  }
  /* Every device of the walk came from this organization: recorded so that
   * marking it "don't sync" later retires exactly its devices. */
  char org_text[24];
  const char *org_ref = NULL;
  snprintf(org_text, sizeof org_text, "%lld", (long long)org_id);
  if (copy_str(list, org_text, &org_ref) < 0)
    return RN_ENOMEM;
  for (size_t i = 0; i < page->count; i++) {
    const nj_device_t *d = &page->devices[i];
    /* The filter already asks for these; a row outside it is skipped
     * rather than trusted. */
    bool approved = nj_device_approved(d); /* no approvalStatus: not */
    bool ours = d->organization_id == NJ_ABSENT || d->organization_id == org_id;
    if (!approved || !ours || d->id == NJ_ABSENT) {
      list->skipped++;
      continue;
    }
    int rc = normalize(list, d, &list->assets[list->count]);
    if (rc < 0)
      return rc;
    list->assets[list->count].external_org_id = org_ref;
    list->count++;
  }
  return 0;
}

void devlist_free(devlist_t *list) {
  for (dev_chunk_t *c = list->chunks, *next; c; c = next) {
    next = c->next;
    host->free(c);
  }
  host->free(list->assets);
  memset(list, 0, sizeof *list);
}
