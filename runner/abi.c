/* abi.c - reads the arrays a plugin hands over (option schemas, rate
 * windows) into this host's layout, by the size their elements declare.
 *
 * ABI 1.4 elements start with struct_size: the host steps through an array
 * by the size of its first element and copies only the fields inside it, so
 * a plugin built against a smaller layout reads as zeros past its end and
 * one built against a larger layout is read up to the fields the host
 * knows. ABI 1.0 to 1.3 elements carry no size; the plugin's abi_version
 * says which layout it has. */
#include <inttypes.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The layouts of ABI 1.0 to 1.3, frozen. */
typedef struct option_v1_s {
  const char *name;
  int type;
  int flags;
  const char *default_value;
  const char *help;
  int64_t min, max;
  const char *choices;
} option_v1_t;

typedef struct rate_window_v1_s {
  uint32_t limit;
  uint64_t period_ms;
} rate_window_v1_t;

/* Sized elements: the first ABI minor that has them, and bounds that keep a
 * garbage size from walking off into the plugin's memory. */
#define SIZED_MINOR 4
#define MAX_ELEMENT_SIZE 4096
#define MAX_OPTIONS 256

/* No mapping lives in the first page: a "name" there is a size field. */
#define LOWEST_POINTER 4096

static bool sized(uint32_t abi_version) {
  return RN_ABI_MINOR_OF(abi_version) >= SIZED_MINOR;
}

static uint32_t size_at(const unsigned char *element) {
  uint32_t size;
  memcpy(&size, element, sizeof size);
  return size;
}

static const char *name_at(const unsigned char *element) {
  const char *name;
  memcpy(&name, element + offsetof(rn_option_t, name), sizeof name);
  return name;
}

/* The stride of a sized array from its first element; 0 on error. */
static size_t stride_of(uint32_t size, size_t least, size_t align,
                        const char *what, const char *initializer, char *err,
                        size_t errlen) {
  if (size < least || size > MAX_ELEMENT_SIZE || size % align) {
    snprintf(err, errlen,
             "%s: the first element declares struct_size %" PRIu32
             " (expected a multiple of %zu from %zu to %d: declare each "
             "element with %s)",
             what, size, align, least, MAX_ELEMENT_SIZE, initializer);
    return 0;
  }
  return size;
}

static int read_v1_options(uint32_t abi_version, const option_v1_t *in,
                           rn_option_t **out, const char *what, char *err,
                           size_t errlen) {
  size_t n = 0;
  while (n < MAX_OPTIONS && in[n].name)
    n++;
  if (n == MAX_OPTIONS) {
    snprintf(err, errlen, "%s: no terminating {0} within %d options", what,
             MAX_OPTIONS);
    return RN_EABI;
  }
  if (n && (uintptr_t)in[0].name < LOWEST_POINTER) {
    snprintf(err, errlen,
             "%s: the plugin declares ABI %" PRIu32 ".%" PRIu32
             " but its options start with a size field (ABI 1.%d+); it "
             "must declare abi_version = RN_ABI_VERSION",
             what, RN_ABI_MAJOR_OF(abi_version), RN_ABI_MINOR_OF(abi_version),
             SIZED_MINOR);
    return RN_EABI;
  }
  rn_option_t *copy = calloc(n + 1, sizeof *copy);
  if (!copy)
    return RN_ENOMEM;
  for (size_t i = 0; i < n; i++)
    copy[i] = (rn_option_t){.struct_size = sizeof(rn_option_t),
                            .name = in[i].name,
                            .type = in[i].type,
                            .flags = in[i].flags,
                            .default_value = in[i].default_value,
                            .help = in[i].help,
                            .min = in[i].min,
                            .max = in[i].max,
                            .choices = in[i].choices};
  *out = copy;
  return 0;
}

int rn__abi_read_options(uint32_t abi_version, const rn_option_t *array,
                         rn_option_t **out, const char *what, char *err,
                         size_t errlen) {
  *out = NULL;
  if (!array)
    return 0;
  if (!sized(abi_version))
    return read_v1_options(abi_version,
                           (const option_v1_t *)(const void *)array, out, what,
                           err, errlen);
  const unsigned char *base = (const unsigned char *)array;
  if (!name_at(base)) /* {0}: an empty schema */
    return 0;
  size_t stride =
      stride_of(size_at(base), offsetof(rn_option_t, name) + sizeof(char *),
                alignof(rn_option_t), what, "RN_OPTION(...)", err, errlen);
  if (!stride)
    return RN_EABI;
  size_t n = 0;
  for (; n < MAX_OPTIONS; n++) {
    const unsigned char *element = base + n * stride;
    if (!name_at(element))
      break;
    if (size_at(element) != stride) {
      snprintf(err, errlen,
               "%s: option #%zu (\"%s\") declares struct_size %" PRIu32
               ", the array's first %zu",
               what, n + 1, name_at(element), size_at(element), stride);
      return RN_EABI;
    }
  }
  if (n == MAX_OPTIONS) {
    snprintf(err, errlen, "%s: no terminating {0} within %d options", what,
             MAX_OPTIONS);
    return RN_EABI;
  }
  rn_option_t *copy = calloc(n + 1, sizeof *copy);
  if (!copy)
    return RN_ENOMEM;
  size_t known = stride < sizeof *copy ? stride : sizeof *copy;
  for (size_t i = 0; i < n; i++) {
    memcpy(&copy[i], base + i * stride, known);
    copy[i].struct_size = sizeof *copy;
  }
  *out = copy;
  return 0;
}

int rn__abi_read_rate_windows(uint32_t abi_version, const rn_rate_window_t *in,
                              size_t count, rn_rate_window_t *out, char *err,
                              size_t errlen) {
  if (count && !in) {
    snprintf(err, errlen, "%zu windows declared but none given", count);
    return RN_EINVAL;
  }
  if (!sized(abi_version)) {
    const rate_window_v1_t *v1 = (const rate_window_v1_t *)(const void *)in;
    for (size_t i = 0; i < count; i++)
      out[i] = (rn_rate_window_t){.struct_size = sizeof *out,
                                  .limit = v1[i].limit,
                                  .period_ms = v1[i].period_ms};
    return 0;
  }
  if (!count)
    return 0;
  const unsigned char *base = (const unsigned char *)in;
  size_t stride = stride_of(
      size_at(base), offsetof(rn_rate_window_t, period_ms) + sizeof(uint64_t),
      alignof(rn_rate_window_t), "rate windows",
      "RN_RATE_WINDOW(limit, period_ms)", err, errlen);
  if (!stride)
    return RN_EINVAL;
  size_t known = stride < sizeof *out ? stride : sizeof *out;
  for (size_t i = 0; i < count; i++) {
    const unsigned char *element = base + i * stride;
    if (size_at(element) != stride) {
      snprintf(err, errlen,
               "rate window #%zu declares struct_size %" PRIu32
               ", the first %zu",
               i + 1, size_at(element), stride);
      return RN_EINVAL;
    }
    memset(&out[i], 0, sizeof out[i]);
    memcpy(&out[i], element, known);
    out[i].struct_size = sizeof *out;
  }
  return 0;
}

/* ------------------------------------------------- a plugin's schemas */

static void free_schemas(rn__plugin_t *plugin) {
  free(plugin->options);
  free(plugin->source_options);
  plugin->source_options = NULL;
  plugin->source = NULL;
  for (size_t i = 0; i < plugin->njobs; i++) {
    free(plugin->job_schemas[i].options);
    free(plugin->job_schemas[i].params);
  }
  free(plugin->job_schemas);
  plugin->options = NULL;
  plugin->job_schemas = NULL;
  plugin->njobs = 0;
}

int rn__plugin_read_schemas(rn__plugin_t *plugin, const char *path, char *err,
                            size_t errlen) {
  const rn_plugin_t *desc = plugin->desc;
  char what[512];
  size_t njobs = 0;
  while (desc->jobs[njobs])
    njobs++;
  plugin->job_schemas = calloc(njobs ? njobs : 1, sizeof *plugin->job_schemas);
  if (!plugin->job_schemas)
    return RN_ENOMEM;
  plugin->njobs = njobs;
  snprintf(what, sizeof what, "plugin %s: options", path);
  int rc = rn__abi_read_options(desc->abi_version, desc->options,
                                &plugin->options, what, err, errlen);
  if (rc == 0 && RN__DESC_HAS(desc, rn_plugin_t, source_options) &&
      desc->source) {
    plugin->source = desc->source;
    size_t len =
        strspn(desc->source, "abcdefghijklmnopqrstuvwxyz0123456789_-");
    if (len == 0 || desc->source[len] != '\0' || len > 64) {
      snprintf(err, errlen,
               "plugin %s: source name must be 1 to 64 of [a-z0-9_-]", path);
      free_schemas(plugin);
      return RN_EABI;
    }
    snprintf(what, sizeof what, "plugin %s: source_options", path);
    rc = rn__abi_read_options(desc->abi_version, desc->source_options,
                              &plugin->source_options, what, err, errlen);
  }
  for (size_t i = 0; rc == 0 && i < njobs; i++) {
    const rn_job_def_t *def = desc->jobs[i];
    rn__job_schema_t *schema = &plugin->job_schemas[i];
    schema->def = def;
    snprintf(what, sizeof what, "plugin %s: job \"%s\": options", path,
             def->name);
    rc = rn__abi_read_options(desc->abi_version, def->options, &schema->options,
                              what, err, errlen);
    if (rc == 0) {
      snprintf(what, sizeof what, "plugin %s: job \"%s\": params", path,
               def->name);
      rc = rn__abi_read_options(desc->abi_version, def->params, &schema->params,
                                what, err, errlen);
    }
  }
  if (rc == RN_ENOMEM)
    snprintf(err, errlen, "plugin %s: out of memory", path);
  if (rc < 0)
    free_schemas(plugin);
  return rc;
}

void rn__plugin_free_schemas(rn__plugin_t *plugin) {
  free_schemas(plugin);
}

const rn_option_t *rn__schema_of(const rn__plugin_t *plugin,
                                 const rn_job_def_t *def,
                                 rn__schema_kind_t kind) {
  if (!plugin)
    return NULL;
  if (kind == RN__SCHEMA_PLUGIN)
    return plugin->options;
  if (kind == RN__SCHEMA_SOURCE)
    return plugin->source_options;
  for (size_t i = 0; i < plugin->njobs; i++)
    if (plugin->job_schemas[i].def == def)
      return kind == RN__SCHEMA_PARAMS ? plugin->job_schemas[i].params
                                       : plugin->job_schemas[i].options;
  return NULL;
}
