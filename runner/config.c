/* config.c - runner.conf and conf.d/NN-name.conf (INI), with file:line on
 * every error. Parsing is pure: nothing is applied until the caller has the
 * whole tree and its list of errors. It may run on any thread.
 *
 * The INI dialect is inih's as configured before (section headers, key = value
 * or key: value, ';' and '#' comment lines, ';' comments after whitespace,
 * no continuation lines), read here line by line so that a line of any length
 * is one line, and no name or value is ever cut short. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "internal.h"

#ifndef RN_DEFAULT_PLUGIN_DIR
#define RN_DEFAULT_PLUGIN_DIR "/usr/lib/regentra-runner/plugins"
#endif
#ifndef RN_DEFAULT_STATE_DIR
#define RN_DEFAULT_STATE_DIR "/var/lib/regentra-runner"
#endif
#ifndef RN_DEFAULT_MIGRATIONS_DIR
#define RN_DEFAULT_MIGRATIONS_DIR "/usr/share/regentra-runner/migrations"
#endif

/* An error message longer than this (after escaping) is cut, and says so. */
#define MESSAGE_MAX 4096
/* A section's keys are hashed once it holds more than this many. */
#define KVS_LINEAR_MAX 8

static char *xstrdup(const char *s) {
  char *p = strdup(s);
  if (!p)
    abort(); /* out of memory while reading configuration is not survivable */
  return p;
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (!q)
    abort();
  return q;
}

#define GROW(arr, count, cap)                                                \
  do {                                                                       \
    if ((count) == (cap)) {                                                  \
      (cap) = (cap) ? (cap)*2 : 8;                                           \
      (arr) = xrealloc((arr), (cap) * sizeof *(arr));                        \
    }                                                                        \
  } while (0)

/* ------------------------------------------------------------ escaping */

static bool is_continuation(unsigned char c) {
  return (c & 0xc0) == 0x80;
}

/* Length of the printable character at s: 1 for printable ASCII, 2-4 for
 * well-formed UTF-8 other than C1 controls; 0 for a byte to escape. */
static size_t printable_length(const unsigned char *s) {
  unsigned char c = s[0];
  if (c < 0x80)
    return c >= 0x20 && c != 0x7f ? 1 : 0;
  if (c >= 0xc2 && c <= 0xdf)
    return is_continuation(s[1]) && !(c == 0xc2 && s[1] < 0xa0) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!is_continuation(s[1]) || !is_continuation(s[2]))
      return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
      return 0; /* overlong, or a UTF-16 surrogate */
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!is_continuation(s[1]) || !is_continuation(s[2]) ||
        !is_continuation(s[3]))
      return 0;
    if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
      return 0; /* overlong, or past U+10FFFF */
    return 4;
  }
  return 0;
}

/* A copy of text (new) in which control bytes and bytes that are not part
 * of valid UTF-8 read \xNN, so that a message never carries terminal
 * escapes or line breaks from a file; cut at about `max` bytes with a note
 * of how much was left out. */
static char *escape_text(const char *text, size_t max) {
  const unsigned char *s = (const unsigned char *)text;
  size_t len = strlen(text);
  char *out = malloc((len < max ? len * 4 : max + 4) + 64);
  if (!out)
    abort();
  size_t o = 0, i = 0;
  while (i < len && o < max) {
    size_t n = printable_length(s + i);
    if (n) {
      memcpy(out + o, s + i, n);
      o += n;
      i += n;
    } else {
      o += (size_t)sprintf(out + o, "\\x%02X", s[i]);
      i++;
    }
  }
  if (i < len)
    o += (size_t)sprintf(out + o, "... (%zu more bytes not shown)", len - i);
  out[o] = '\0';
  return out;
}

void rn__config_error(rn__config_t *config, const char *file, int line,
                      const char *fmt, ...) {
  char *msg, *text;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0)
    abort();
  va_end(ap);
  if (line > 0) {
    if (asprintf(&text, "%s:%d: %s", file, line, msg) < 0)
      abort();
  } else if (asprintf(&text, "%s: %s", file, msg) < 0) {
    abort();
  }
  free(msg);
  GROW(config->errors, config->nerrors, config->errors_cap);
  config->errors[config->nerrors++] = escape_text(text, MESSAGE_MAX);
  free(text);
}

/* snprintf for reasons that echo a value: a cut is marked, never silent. */
static void say(char *err, size_t errlen, const char *fmt, ...)
    RN_PRINTF_LIKE(3, 4);

static void say(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n >= errlen && errlen > 4)
    memcpy(err + errlen - 4, "...", 4);
}

/* ---------------------------------------------------------- name index */

/* FNV-1a: names are short and written by the operator. */
static uint32_t name_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 16777619u;
  }
  return h;
}

static void index_insert_slot(rn__name_slot_t *slots, size_t mask,
                              rn__name_slot_t slot) {
  size_t i = slot.hash & mask;
  while (slots[i].name)
    i = (i + 1) & mask;
  slots[i] = slot;
}

/* `name` is borrowed: it must outlive its entry. */
static void index_put(rn__name_index_t *ix, const char *name, size_t pos) {
  size_t nslots = ix->slots ? ix->mask + 1 : 0;
  if ((ix->count + 1) * 2 > nslots) { /* keep the load at most one half */
    size_t grown = nslots ? nslots * 2 : 16;
    rn__name_slot_t *slots = calloc(grown, sizeof *slots);
    if (!slots)
      abort();
    for (size_t i = 0; i < nslots; i++)
      if (ix->slots[i].name)
        index_insert_slot(slots, grown - 1, ix->slots[i]);
    free(ix->slots);
    ix->slots = slots;
    ix->mask = grown - 1;
  }
  index_insert_slot(ix->slots, ix->mask,
                    (rn__name_slot_t){.name = name,
                                      .hash = name_hash(name),
                                      .pos = (uint32_t)pos});
  ix->count++;
}

/* The slot of name, or SIZE_MAX. */
static size_t index_slot(const rn__name_index_t *ix, const char *name) {
  if (!ix->slots)
    return SIZE_MAX;
  uint32_t h = name_hash(name);
  for (size_t i = h & ix->mask; ix->slots[i].name; i = (i + 1) & ix->mask)
    if (ix->slots[i].hash == h && strcmp(ix->slots[i].name, name) == 0)
      return i;
  return SIZE_MAX;
}

/* The position stored for name, or SIZE_MAX. */
static size_t index_get(const rn__name_index_t *ix, const char *name) {
  size_t i = index_slot(ix, name);
  return i == SIZE_MAX ? SIZE_MAX : ix->slots[i].pos;
}

/* Removes name, shifting later entries of its probe run back so that no
 * lookup stops early at the hole. */
static void index_remove(rn__name_index_t *ix, const char *name) {
  size_t hole = index_slot(ix, name);
  if (hole == SIZE_MAX)
    return;
  for (size_t i = (hole + 1) & ix->mask; ix->slots[i].name;
       i = (i + 1) & ix->mask) {
    size_t home = ix->slots[i].hash & ix->mask;
    /* Entry i may fill the hole when the hole lies on its probe path. */
    if (((i - home) & ix->mask) >= ((i - hole) & ix->mask)) {
      ix->slots[hole] = ix->slots[i];
      hole = i;
    }
  }
  ix->slots[hole] = (rn__name_slot_t){0};
  ix->count--;
}

static void index_free(rn__name_index_t *ix) {
  free(ix->slots);
  *ix = (rn__name_index_t){0};
}

/* ----------------------------------------------------------- key lists */

const rn__kv_t *rn__kvs_find(const rn__kvs_t *kvs, const char *key) {
  if (kvs->index.slots) {
    size_t pos = index_get(&kvs->index, key);
    return pos == SIZE_MAX ? NULL : &kvs->items[pos];
  }
  for (size_t i = 0; i < kvs->count; i++)
    if (strcmp(kvs->items[i].key, key) == 0)
      return &kvs->items[i];
  return NULL;
}

static void kvs_add(rn__kvs_t *kvs, const char *key, const char *value,
                    int line) {
  size_t cap = kvs->cap;
  GROW(kvs->items, kvs->count, cap);
  kvs->cap = cap;
  size_t pos = kvs->count++;
  kvs->items[pos] = (rn__kv_t){.key = xstrdup(key),
                               .value = value ? xstrdup(value) : NULL,
                               .line = line};
  if (kvs->index.slots)
    index_put(&kvs->index, kvs->items[pos].key, pos);
  else if (kvs->count > KVS_LINEAR_MAX)
    for (size_t i = 0; i < kvs->count; i++)
      index_put(&kvs->index, kvs->items[i].key, i);
}

static void kvs_free(rn__kvs_t *kvs) {
  for (size_t i = 0; i < kvs->count; i++) {
    free(kvs->items[i].key);
    free(kvs->items[i].value);
  }
  free(kvs->items);
  index_free(&kvs->index);
  *kvs = (rn__kvs_t){0};
}

int rn__parse_bool(const char *text, bool *value) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < RN_ARRAY_SIZE(yes); i++) {
    if (strcasecmp(text, yes[i]) == 0) {
      *value = true;
      return 0;
    }
    if (strcasecmp(text, no[i]) == 0) {
      *value = false;
      return 0;
    }
  }
  return RN_EINVAL;
}

int rn__parse_duration_ms(const char *text, uint64_t *ms) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(text, &end, 10);
  if (end == text || errno || text[0] == '-')
    return RN_EINVAL;
  uint64_t unit = 1000;
  if (strcmp(end, "ms") == 0)
    unit = 1;
  else if (strcmp(end, "s") == 0 || *end == '\0')
    unit = 1000;
  else if (strcmp(end, "m") == 0)
    unit = 60 * 1000;
  else if (strcmp(end, "h") == 0)
    unit = 3600 * 1000;
  else if (strcmp(end, "d") == 0)
    unit = 86400 * 1000;
  else
    return RN_EINVAL;
  if (n > UINT64_MAX / unit)
    return RN_ERANGE;
  *ms = n * unit;
  return 0;
}

static int parse_int(const char *text, int64_t *out) {
  char *end;
  errno = 0;
  long long n = strtoll(text, &end, 10);
  if (end == text || *end != '\0' || errno)
    return RN_EINVAL;
  *out = n;
  return 0;
}

static bool enum_has(const char *choices, const char *word) {
  size_t wlen = strlen(word);
  for (const char *p = choices; p && *p;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == wlen && strncmp(p, word, len) == 0)
      return true;
    p = bar ? bar + 1 : NULL;
  }
  return false;
}

int rn__option_parse(const rn_option_t *option, const char *text,
                     int64_t *number, char *err, size_t errlen) {
  *number = 0;
  switch (option->type) {
  case RN_OPT_STRING:
  case RN_OPT_PATH:
  case RN_OPT_SECRET_FILE:
    if (!*text) {
      say(err, errlen, "%s must not be empty", option->name);
      return RN_EINVAL;
    }
    return 0;
  case RN_OPT_INT:
    if (parse_int(text, number) < 0) {
      say(err, errlen, "%s = \"%s\": not a whole number", option->name, text);
      return RN_EINVAL;
    }
    if ((option->min || option->max) &&
        (*number < option->min || *number > option->max)) {
      say(err, errlen, "%s = %s: out of range %" PRId64 "..%" PRId64,
          option->name, text, option->min, option->max);
      return RN_ERANGE;
    }
    return 0;
  case RN_OPT_BOOL: {
    bool b;
    if (rn__parse_bool(text, &b) < 0) {
      say(err, errlen, "%s = \"%s\": expected true or false", option->name,
          text);
      return RN_EINVAL;
    }
    *number = b;
    return 0;
  }
  case RN_OPT_DURATION: {
    uint64_t ms;
    if (rn__parse_duration_ms(text, &ms) < 0 || ms > INT64_MAX) {
      say(err, errlen,
          "%s = \"%s\": expected a duration such as 30s, 5m, 2h, 1d",
          option->name, text);
      return RN_EINVAL;
    }
    *number = (int64_t)ms;
    return 0;
  }
  case RN_OPT_ENUM:
    if (!enum_has(option->choices, text)) {
      say(err, errlen, "%s = \"%s\": expected one of %s", option->name, text,
          option->choices ? option->choices : "(none)");
      return RN_EINVAL;
    }
    return 0;
  case RN_OPT_URL:
    if (strncmp(text, "https://", 8) != 0 && strncmp(text, "http://", 7) != 0) {
      say(err, errlen, "%s = \"%s\": expected an http:// or https:// URL",
          option->name, text);
      return RN_EINVAL;
    }
    return 0;
  default:
    say(err, errlen, "%s: option type %d is not known to this host",
        option->name, option->type);
    return RN_EABI;
  }
}

int rn__options_check(rn__config_t *config, const char *file, int line,
                      const rn_option_t *schema, const rn__kvs_t *kvs,
                      rn_config_t *out) {
  size_t before = config->nerrors;
  size_t n = 0;
  while (schema && schema[n].name)
    n++;
  *out = (rn_config_t){0};
  if (n) {
    out->values = calloc(n, sizeof *out->values);
    if (!out->values)
      abort();
  }
  out->count = n;
  for (size_t i = 0; i < kvs->count; i++) {
    size_t k = 0;
    while (k < n && strcmp(schema[k].name, kvs->items[i].key) != 0)
      k++;
    if (k == n)
      rn__config_error(config, file, kvs->items[i].line,
                       "unknown key \"%s\"", kvs->items[i].key);
  }
  for (size_t k = 0; k < n; k++) {
    const rn_option_t *option = &schema[k];
    const rn__kv_t *kv = rn__kvs_find(kvs, option->name);
    const char *text = kv ? kv->value : option->default_value;
    out->values[k].option = option;
    if (!text) {
      if (option->flags & RN_OPT_REQUIRED)
        rn__config_error(config, file, line, "missing required key \"%s\"",
                         option->name);
      continue;
    }
    char reason[512];
    if (rn__option_parse(option, text, &out->values[k].number, reason,
                         sizeof reason) < 0) {
      rn__config_error(config, file, kv ? kv->line : line, "%s%s", reason,
                       kv ? "" : " (the plugin's default)");
      continue;
    }
    out->values[k].text = xstrdup(text);
  }
  return (int)(config->nerrors - before);
}

void rn__options_free(rn_config_t *values) {
  for (size_t i = 0; i < values->count; i++)
    free(values->values[i].text);
  free(values->values);
  *values = (rn_config_t){0};
}

/* ------------------------------------------------------------ parsing */

enum section_kind { SEC_NONE, SEC_RUNNER, SEC_DATABASE, SEC_PLUGIN, SEC_SOURCE,
                    SEC_JOB, SEC_BAD };

typedef struct parse_state_s {
  rn__config_t *config;
  const char *file;
  bool main_file;
  int line; /* of the line being read */
  /* the section being read */
  enum section_kind kind;
  char *header;   /* its text between '[' and ']' */
  int header_line;
  size_t index;   /* into plugins[] or jobs[] */
  size_t nkeys;
  rn__kvs_t keys; /* its keys not kept in the section's options */
  size_t first_job, first_plugin, first_source; /* this file's first entries */
  int runner_line, database_line; /* of [runner] and [database], if seen */
} parse_state_t;

static char *quoted_name(const char *rest, const char *file, int line,
                         rn__config_t *config) {
  while (*rest == ' ')
    rest++;
  size_t len = strlen(rest);
  if (len < 3 || rest[0] != '"' || rest[len - 1] != '"') {
    rn__config_error(config, file, line,
                     "section name must be quoted, like [job \"nightly\"]");
    return NULL;
  }
  char *name = strndup(rest + 1, len - 2);
  if (!name)
    abort();
  for (const char *c = name; *c; c++) {
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
          *c == '_' || *c == '.')) {
      rn__config_error(config, file, line,
                       "name \"%s\" may hold only a-z, 0-9, '-', '_' and '.'",
                       name);
      free(name);
      return NULL;
    }
  }
  return name;
}

/* [runner] and [database]: once each, in runner.conf. */
static enum section_kind begin_main_section(parse_state_t *st,
                                            const char *section) {
  bool runner = strcmp(section, "runner") == 0;
  if (!st->main_file) {
    rn__config_error(st->config, st->file, st->line,
                     "[%s] belongs in runner.conf, not in conf.d", section);
    return SEC_BAD;
  }
  int *seen = runner ? &st->runner_line : &st->database_line;
  if (*seen) {
    rn__config_error(st->config, st->file, st->line,
                     "duplicate [%s] (first at %s:%d)", section, st->file,
                     *seen);
    return SEC_BAD;
  }
  *seen = st->line;
  return runner ? SEC_RUNNER : SEC_DATABASE;
}

static void begin_section(parse_state_t *st, const char *section) {
  rn__config_t *config = st->config;
  int line = st->line;
  st->header = xstrdup(section);
  st->header_line = line;
  if (strcmp(section, "runner") == 0 || strcmp(section, "database") == 0) {
    st->kind = begin_main_section(st, section);
    return;
  }
  bool is_job = strncmp(section, "job ", 4) == 0;
  bool is_plugin = strncmp(section, "plugin ", 7) == 0;
  bool is_source = strncmp(section, "source ", 7) == 0;
  if (!is_job && !is_plugin && !is_source) {
    rn__config_error(config, st->file, line,
                     "unknown section [%s]; expected [runner], [database], "
                     "[source \"name\"], [plugin \"name\"] or "
                     "[job \"name\"]",
                     section);
    st->kind = SEC_BAD;
    return;
  }
  char *name = quoted_name(section + (is_job ? 4 : 7), st->file, line, config);
  if (!name) {
    st->kind = SEC_BAD;
    return;
  }
  if (is_job) {
    size_t first = index_get(&config->job_index, name);
    if (first != SIZE_MAX) {
      rn__config_error(config, st->file, line,
                       "duplicate job \"%s\" (first defined at %s:%d)", name,
                       config->jobs[first].file, config->jobs[first].line);
      free(name);
      st->kind = SEC_BAD;
      return;
    }
    GROW(config->jobs, config->njobs, config->jobs_cap);
    config->jobs[config->njobs] =
        (rn__job_conf_t){.name = name, .enabled = true,
                         .file = xstrdup(st->file), .line = line};
    index_put(&config->job_index, name, config->njobs);
    st->index = config->njobs++;
    st->kind = SEC_JOB;
  } else if (is_source) {
    size_t first = index_get(&config->source_index, name);
    if (first != SIZE_MAX) {
      rn__config_error(
          config, st->file, line, "duplicate [source \"%s\"] (first at %s:%d)",
          name, config->sources[first].file, config->sources[first].line);
      free(name);
      st->kind = SEC_BAD;
      return;
    }
    GROW(config->sources, config->nsources, config->sources_cap);
    config->sources[config->nsources] =
        (rn__plugin_conf_t){.name = name, .enabled = true,
                            .file = xstrdup(st->file), .line = line};
    index_put(&config->source_index, name, config->nsources);
    st->index = config->nsources++;
    st->kind = SEC_SOURCE;
  } else {
    size_t first = index_get(&config->plugin_index, name);
    if (first != SIZE_MAX) {
      rn__config_error(
          config, st->file, line, "duplicate [plugin \"%s\"] (first at %s:%d)",
          name, config->plugins[first].file, config->plugins[first].line);
      free(name);
      st->kind = SEC_BAD;
      return;
    }
    GROW(config->plugins, config->nplugins, config->plugins_cap);
    config->plugins[config->nplugins] =
        (rn__plugin_conf_t){.name = name, .enabled = true,
                            .file = xstrdup(st->file), .line = line};
    index_put(&config->plugin_index, name, config->nplugins);
    st->index = config->nplugins++;
    st->kind = SEC_PLUGIN;
  }
}

static char *resolve_path(const char *file, const char *value) {
  if (value[0] == '/')
    return xstrdup(value);
  char *copy = xstrdup(file);
  char *path;
  if (asprintf(&path, "%s/%s", dirname(copy), value) < 0)
    abort();
  free(copy);
  return path;
}

/* "a:b:c" with each directory resolved like a single path. */
static char *resolve_path_list(const char *file, const char *value) {
  char *list = xstrdup(value), *save = NULL, *out = NULL;
  for (char *dir = strtok_r(list, ":", &save); dir;
       dir = strtok_r(NULL, ":", &save)) {
    char *resolved = resolve_path(file, dir);
    char *joined;
    if (asprintf(&joined, "%s%s%s", out ? out : "", out ? ":" : "",
                 resolved) < 0)
      abort();
    free(resolved);
    free(out);
    out = joined;
  }
  free(list);
  return out ? out : xstrdup("");
}

static void set_string(char **slot, char *value) {
  free(*slot);
  *slot = value;
}

static void runner_key(parse_state_t *st, const char *key, const char *value) {
  rn__config_t *c = st->config;
  uint64_t ms;
  int64_t n;
  if (strcmp(key, "plugin_dir") == 0)
    set_string(&c->plugin_dir, resolve_path(st->file, value));
  else if (strcmp(key, "state_dir") == 0)
    set_string(&c->state_dir, resolve_path(st->file, value));
  else if (strcmp(key, "master_key_file") == 0)
    set_string(&c->master_key_file, resolve_path(st->file, value));
  else if (strcmp(key, "log_level") == 0) {
    int level = rn__log_parse_level(value);
    if (level < 0)
      rn__config_error(c, st->file, st->line,
                       "log_level = \"%s\": expected error, warning, notice, "
                       "info or debug",
                       value);
    else
      c->log_level = level;
  } else if (strcmp(key, "drain_timeout") == 0) {
    if (rn__parse_duration_ms(value, &ms) < 0)
      rn__config_error(c, st->file, st->line,
                       "drain_timeout = \"%s\": expected a duration", value);
    else
      c->drain_timeout_ms = ms;
  } else if (strcmp(key, "cancel_grace") == 0) {
    if (rn__parse_duration_ms(value, &ms) < 0)
      rn__config_error(c, st->file, st->line,
                       "cancel_grace = \"%s\": expected a duration", value);
    else
      c->cancel_grace_ms = ms;
  } else if (strcmp(key, "workers") == 0) {
    if (parse_int(value, &n) < 0 || n < 1 || n > 1024)
      rn__config_error(c, st->file, st->line,
                       "workers = \"%s\": expected 1..1024", value);
    else
      c->workers = (uint32_t)n;
  } else if (strcmp(key, "max_pages_held") == 0) {
    if (parse_int(value, &n) < 0 || n < 1 || n > 4096)
      rn__config_error(c, st->file, st->line,
                       "max_pages_held = \"%s\": expected 1..4096", value);
    else
      c->max_pages_held = (uint32_t)n;
  } else if (strcmp(key, "max_pages_per_key") == 0) {
    if (parse_int(value, &n) < 0 || n < 1 || n > 4096)
      rn__config_error(c, st->file, st->line,
                       "max_pages_per_key = \"%s\": expected 1..4096", value);
    else
      c->max_pages_per_key = (uint32_t)n;
  } else if (strcmp(key, "admin_listen") == 0) {
    struct sockaddr_storage addr;
    char why[160];
    if (strcmp(value, "off") == 0 || !*value)
      set_string(&c->admin_listen, NULL);
    else if (rn__admin_parse_listen(value, &addr, why, sizeof why) < 0)
      rn__config_error(c, st->file, st->line,
                       "admin_listen = \"%s\": %s; expected address:port "
                       "such as 127.0.0.1:9187, or off",
                       value, why);
    else
      set_string(&c->admin_listen, xstrdup(value));
  } else {
    rn__config_error(c, st->file, st->line, "unknown key \"%s\" in [runner]",
                     key);
  }
}

/* Queue tuning in [database]; false when key is not one of them. */
static bool queue_key(rn__config_t *c, parse_state_t *st, const char *key,
                      const char *value) {
  static const struct {
    const char *key;
    size_t offset;
    uint64_t min_ms;
  } durations[] = {
      {"lease", offsetof(rn__config_t, queue_lease_ms), 1000},
      {"poll_interval", offsetof(rn__config_t, queue_poll_ms), 10},
      {"retention", offsetof(rn__config_t, queue_retention_ms), 1000},
      {"retry_base", offsetof(rn__config_t, queue_retry_base_ms), 10},
  };
  for (size_t i = 0; i < RN_ARRAY_SIZE(durations); i++) {
    if (strcmp(key, durations[i].key) != 0)
      continue;
    uint64_t ms;
    if (rn__parse_duration_ms(value, &ms) < 0 || ms < durations[i].min_ms)
      rn__config_error(c, st->file, st->line,
                       "%s = \"%s\": expected a duration of at least %llu ms",
                       key, value, (unsigned long long)durations[i].min_ms);
    else
      *(uint64_t *)((char *)c + durations[i].offset) = ms;
    return true;
  }
  int64_t n;
  if (strcmp(key, "pool_size") == 0) {
    if (parse_int(value, &n) < 0 || n < 1 || n > 64)
      rn__config_error(c, st->file, st->line,
                       "pool_size = \"%s\": expected 1..64", value);
    else
      c->db_pool_size = (uint32_t)n;
  } else if (strcmp(key, "max_payload") == 0) {
    if (parse_int(value, &n) < 0 || n < 2 || n > 16 * 1024 * 1024)
      rn__config_error(c, st->file, st->line,
                       "max_payload = \"%s\": expected bytes, 2..16777216",
                       value);
    else
      c->queue_max_payload = (uint32_t)n;
  } else if (strcmp(key, "max_attempts") == 0) {
    if (parse_int(value, &n) < 0 || n < 1 || n > 100)
      rn__config_error(c, st->file, st->line,
                       "max_attempts = \"%s\": expected 1..100", value);
    else
      c->queue_max_attempts = (uint32_t)n;
  } else {
    return false;
  }
  return true;
}

static void database_key(parse_state_t *st, const char *key,
                         const char *value) {
  rn__config_t *c = st->config;
  if (strcmp(key, "url") == 0)
    set_string(&c->database_url, xstrdup(value));
  else if (strcmp(key, "migrations_dir") == 0)
    set_string(&c->migrations_dir, resolve_path_list(st->file, value));
  else if (!queue_key(c, st, key, value))
    rn__config_error(c, st->file, st->line,
                     "unknown key \"%s\" in [database]", key);
}

/* Returns true when the key went into the job's options. */
static bool job_key(parse_state_t *st, const char *key, const char *value) {
  rn__config_t *c = st->config;
  rn__job_conf_t *job = &c->jobs[st->index];
  int line = st->line;
  if (strcmp(key, "plugin") == 0) {
    set_string(&job->plugin, xstrdup(value));
  } else if (strcmp(key, "job") == 0) {
    set_string(&job->job, xstrdup(value));
  } else if (strcmp(key, "schedule") == 0) {
    char reason[256];
    if (rn__cron_parse(value, &job->cron, reason, sizeof reason) < 0)
      rn__config_error(c, st->file, line, "schedule = \"%s\": %s", value,
                       reason);
    else if (!rn__cron_can_fire(&job->cron))
      rn__config_error(c, st->file, line,
                       "schedule = \"%s\": never fires (no month it allows "
                       "has a day of month it allows)",
                       value);
    else
      set_string(&job->schedule, xstrdup(value));
  } else if (strcmp(key, "enabled") == 0) {
    if (rn__parse_bool(value, &job->enabled) < 0)
      rn__config_error(c, st->file, line,
                       "enabled = \"%s\": expected true or false", value);
  } else if (strcmp(key, "timeout") == 0) {
    if (rn__parse_duration_ms(value, &job->timeout_ms) < 0)
      rn__config_error(c, st->file, line,
                       "timeout = \"%s\": expected a duration such as 10m",
                       value);
  } else if (strcmp(key, "max_attempts") == 0) {
    int64_t n;
    if (parse_int(value, &n) < 0 || n < 1 || n > 100)
      rn__config_error(c, st->file, line,
                       "max_attempts = \"%s\": expected 1..100", value);
    else
      job->max_attempts = (uint32_t)n;
  } else if (strcmp(key, "missed_runs") == 0) {
    if (strcmp(value, "once") == 0 || strcmp(value, "skip") == 0)
      job->missed_runs_skip = value[0] == 's';
    else
      rn__config_error(c, st->file, line,
                       "missed_runs = \"%s\": expected once or skip", value);
  } else {
    kvs_add(&job->options, key, value, line);
    return true;
  }
  return false;
}

/* Returns true when the key went into the plugin's options. */
static bool plugin_key(parse_state_t *st, const char *key, const char *value) {
  rn__plugin_conf_t *plugin = &st->config->plugins[st->index];
  if (strcmp(key, "enabled") != 0) {
    kvs_add(&plugin->options, key, value, st->line);
    return true;
  }
  if (rn__parse_bool(value, &plugin->enabled) < 0)
    rn__config_error(st->config, st->file, st->line,
                     "enabled = \"%s\": expected true or false", value);
  return false;
}

/* The section's options, where most of its keys are kept. */
static const rn__kvs_t *section_options(const parse_state_t *st) {
  if (st->kind == SEC_JOB)
    return &st->config->jobs[st->index].options;
  if (st->kind == SEC_PLUGIN)
    return &st->config->plugins[st->index].options;
  if (st->kind == SEC_SOURCE)
    return &st->config->sources[st->index].options;
  return NULL;
}

static void on_key(parse_state_t *st, const char *key, const char *value) {
  if (st->kind == SEC_NONE) {
    rn__config_error(st->config, st->file, st->line,
                     "key \"%s\" outside of any section", key);
    return;
  }
  st->nkeys++;
  if (st->kind == SEC_BAD)
    return; /* the section itself was reported */
  const rn__kvs_t *options = section_options(st);
  const rn__kv_t *first = rn__kvs_find(&st->keys, key);
  if (!first && options)
    first = rn__kvs_find(options, key);
  if (first) {
    rn__config_error(st->config, st->file, st->line,
                     "duplicate key \"%s\" (first at line %d)", key,
                     first->line);
    return;
  }
  bool kept = false;
  switch (st->kind) {
  case SEC_RUNNER:
    runner_key(st, key, value);
    break;
  case SEC_DATABASE:
    database_key(st, key, value);
    break;
  case SEC_JOB:
    kept = job_key(st, key, value);
    break;
  case SEC_PLUGIN:
    kept = plugin_key(st, key, value);
    break;
  case SEC_SOURCE: /* checked against the source's schema at load */
    kvs_add(&st->config->sources[st->index].options, key, value, st->line);
    kept = true;
    break;
  default:
    break;
  }
  if (!kept)
    kvs_add(&st->keys, key, NULL, st->line);
}

static void job_conf_free(rn__job_conf_t *job) {
  free(job->name);
  free(job->plugin);
  free(job->job);
  free(job->schedule);
  free(job->file);
  kvs_free(&job->options);
}

static void plugin_conf_free(rn__plugin_conf_t *plugin) {
  free(plugin->name);
  free(plugin->file);
  kvs_free(&plugin->options);
}

static void drop_jobs_from(rn__config_t *c, size_t first) {
  for (size_t i = first; i < c->njobs; i++) {
    index_remove(&c->job_index, c->jobs[i].name);
    job_conf_free(&c->jobs[i]);
  }
  c->njobs = first;
}

/* A file with errors loses all of its job, plugin and source sections. */
static void drop_file_sections(parse_state_t *st) {
  rn__config_t *c = st->config;
  drop_jobs_from(c, st->first_job);
  for (size_t i = st->first_plugin; i < c->nplugins; i++) {
    index_remove(&c->plugin_index, c->plugins[i].name);
    plugin_conf_free(&c->plugins[i]);
  }
  c->nplugins = st->first_plugin;
  for (size_t i = st->first_source; i < c->nsources; i++) {
    index_remove(&c->source_index, c->sources[i].name);
    plugin_conf_free(&c->sources[i]);
  }
  c->nsources = st->first_source;
}

/* At the next header or the end of the file: a section must hold keys,
 * and a job must name its plugin and job. An incomplete job is dropped so
 * that nothing downstream sees it. */
static void end_section(parse_state_t *st) {
  rn__config_t *c = st->config;
  if (st->kind != SEC_NONE && st->kind != SEC_BAD && st->nkeys == 0) {
    rn__config_error(c, st->file, st->header_line,
                     "empty section [%s]: it has no keys", st->header);
    if (st->kind == SEC_JOB)
      drop_jobs_from(c, st->index);
  } else if (st->kind == SEC_JOB) {
    rn__job_conf_t *job = &c->jobs[st->index];
    if (!job->plugin)
      rn__config_error(c, job->file, job->line,
                       "job \"%s\": missing required key \"plugin\"",
                       job->name);
    if (!job->job)
      rn__config_error(c, job->file, job->line,
                       "job \"%s\": missing required key \"job\"", job->name);
    if (!job->plugin || !job->job)
      drop_jobs_from(c, st->index);
  }
  free(st->header);
  st->header = NULL;
  kvs_free(&st->keys);
  st->nkeys = 0;
  st->kind = SEC_NONE;
}

static char *skip_space(char *s) {
  while (isspace((unsigned char)*s))
    s++;
  return s;
}

static void strip_trailing_space(char *s) {
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
}

/* The first of `stops` in s, or the ';' of an inline comment (one that
 * follows whitespace), or the end of s. */
static char *find_stop(char *s, const char *stops) {
  bool after_space = false;
  while (*s && !strchr(stops, *s) && !(after_space && *s == ';')) {
    after_space = isspace((unsigned char)*s);
    s++;
  }
  return s;
}

static void parse_header(parse_state_t *st, char *start) {
  end_section(st);
  char *end = find_stop(start + 1, "]");
  if (*end != ']') {
    rn__config_error(st->config, st->file, st->line,
                     "syntax error: section header without a closing ']'");
    st->kind = SEC_BAD; /* its keys are not taken for the previous one's */
    return;
  }
  *end = '\0';
  const char *rest = skip_space(end + 1);
  if (*rest && *rest != ';' && *rest != '#') {
    rn__config_error(st->config, st->file, st->line,
                     "syntax error: \"%s\" after [%s]; a comment there "
                     "starts with ; or #",
                     rest, start + 1);
    st->kind = SEC_BAD;
    return;
  }
  begin_section(st, start + 1);
}

static void parse_line(parse_state_t *st, char *text, size_t len) {
  if (memchr(text, '\0', len)) {
    rn__config_error(st->config, st->file, st->line,
                     "syntax error: the line holds a NUL byte");
    return;
  }
  char *start = text;
  if (st->line == 1 && strncmp(start, "\xef\xbb\xbf", 3) == 0)
    start += 3; /* a UTF-8 byte order mark */
  strip_trailing_space(start);
  start = skip_space(start);
  if (!*start || *start == ';' || *start == '#')
    return;
  if (*start == '[') {
    parse_header(st, start);
    return;
  }
  char *end = find_stop(start, "=:");
  if (*end != '=' && *end != ':') {
    rn__config_error(st->config, st->file, st->line,
                     "syntax error (expected [section] or key = value)");
    return;
  }
  char delimiter = *end;
  *end = '\0';
  strip_trailing_space(start);
  if (!*start) {
    rn__config_error(st->config, st->file, st->line,
                     "syntax error: no key before '%c'", delimiter);
    return;
  }
  char *value = end + 1;
  *find_stop(value, "") = '\0';
  value = skip_space(value);
  strip_trailing_space(value);
  on_key(st, start, value);
}

/* What a file that is not a regular one is, for the error. */
static const char *file_kind(mode_t mode) {
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISLNK(mode))
    return "a symbolic link";
  return "of an unknown type";
}

/* Opens a file to parse and checks the descriptor it reads from. A FIFO,
 * socket or device would block the reading thread (a reload would never
 * end), so anything but a regular file is refused; O_NONBLOCK keeps the open
 * itself from waiting for a FIFO's writer. conf.d files are not followed
 * through symbolic links (a link could be pointed elsewhere once checked);
 * the main file is named by the operator and may be one. */
static FILE *open_config_file(rn__config_t *config, const char *file,
                              bool follow_link) {
  int flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
  if (!follow_link)
    flags |= O_NOFOLLOW;
  int fd = open(file, flags);
  if (fd < 0) {
    if (errno == ELOOP && !follow_link)
      rn__config_error(config, file, 0,
                       "not a regular file (a symbolic link; put the file "
                       "itself in the directory)");
    else if (errno == ENXIO) /* a socket, or a device with no driver */
      rn__config_error(config, file, 0, "not a regular file");
    else
      rn__config_error(config, file, 0, "cannot read: %s", strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    rn__config_error(config, file, 0, "cannot read: %s", strerror(errno));
    close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    rn__config_error(config, file, 0, "not a regular file (%s)",
                     file_kind(st.st_mode));
    close(fd);
    return NULL;
  }
  FILE *stream = fdopen(fd, "r");
  if (!stream) {
    rn__config_error(config, file, 0, "cannot read: %s", strerror(errno));
    close(fd);
  }
  return stream;
}

static void parse_file(rn__config_t *config, const char *file,
                       bool main_file) {
  parse_state_t st = {.config = config, .file = file, .main_file = main_file,
                      .first_job = config->njobs,
                      .first_plugin = config->nplugins,
                      .first_source = config->nsources};
  size_t errors_before = config->nerrors;
  FILE *stream = open_config_file(config, file, main_file);
  if (!stream)
    return;
  char *line = NULL;
  size_t cap = 0;
  for (;;) {
    errno = 0;
    ssize_t len = getline(&line, &cap, stream);
    if (len < 0)
      break;
    st.line++;
    parse_line(&st, line, (size_t)len);
  }
  if (!feof(stream))
    rn__config_error(config, file, st.line + 1, "cannot read: %s",
                     strerror(errno ? errno : EIO));
  free(line);
  fclose(stream);
  end_section(&st);
  if (config->nerrors > errors_before && !main_file)
    drop_file_sections(&st);
}

typedef struct confd_entry_s {
  char *name;
  unsigned char type; /* d_type: DT_UNKNOWN when the file system does not say */
} confd_entry_t;

static int compare_entries(const void *a, const void *b) {
  return strcmp(((const confd_entry_t *)a)->name,
                ((const confd_entry_t *)b)->name);
}

/* The kind of a directory entry that is known not to be a regular file (nor
 * a symbolic link, which the open refuses), so that it is never opened: an
 * open can have effects on a device. NULL otherwise. */
static const char *entry_kind_refused(unsigned char type) {
  switch (type) {
  case DT_FIFO:
    return "a FIFO";
  case DT_SOCK:
    return "a socket";
  case DT_CHR:
    return "a character device";
  case DT_BLK:
    return "a block device";
  case DT_DIR:
    return "a directory";
  default:
    return NULL;
  }
}

static void parse_confd(rn__config_t *config, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    if (errno != ENOENT)
      rn__config_error(config, dir, 0, "cannot read directory: %s",
                       strerror(errno));
    return;
  }
  confd_entry_t *entries = NULL;
  size_t count = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (e->d_name[0] == '.' || len < 6 ||
        strcmp(e->d_name + len - 5, ".conf") != 0)
      continue;
    GROW(entries, count, cap);
    entries[count++] =
        (confd_entry_t){.name = xstrdup(e->d_name), .type = e->d_type};
  }
  closedir(d);
  if (count > 0) /* an empty conf.d: entries is NULL */
    qsort(entries, count, sizeof *entries, compare_entries);
  for (size_t i = 0; i < count; i++) {
    char *path;
    if (asprintf(&path, "%s/%s", dir, entries[i].name) < 0)
      abort();
    const char *refused = entry_kind_refused(entries[i].type);
    if (refused)
      rn__config_error(config, path, 0, "not a regular file (%s)", refused);
    else
      parse_file(config, path, false);
    free(path);
    free(entries[i].name);
  }
  free(entries);
}

rn__config_t *rn__config_load(const char *path, const char *confd) {
  rn__config_t *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->path = xstrdup(path);
  c->log_level = RN_LOG_INFO;
  c->drain_timeout_ms = 30000;
  c->cancel_grace_ms = 5000;
  c->workers = 16;
  c->db_pool_size = 4;
  c->queue_lease_ms = 30000;
  c->queue_poll_ms = 2000;
  c->queue_retention_ms = 7ULL * 24 * 3600 * 1000;
  c->queue_retry_base_ms = 10000;
  c->queue_max_payload = 256 * 1024;
  c->queue_max_attempts = 5;
  parse_file(c, path, true);
  if (confd)
    c->confd = xstrdup(confd);
  else {
    char *copy = xstrdup(path);
    if (asprintf(&c->confd, "%s/conf.d", dirname(copy)) < 0)
      abort();
    free(copy);
  }
  parse_confd(c, c->confd);
  if (!c->plugin_dir)
    c->plugin_dir = xstrdup(RN_DEFAULT_PLUGIN_DIR);
  if (!c->state_dir)
    c->state_dir = xstrdup(RN_DEFAULT_STATE_DIR);
  if (!c->migrations_dir)
    c->migrations_dir = xstrdup(RN_DEFAULT_MIGRATIONS_DIR);
  const char *env_url = getenv("REGENTRA_DATABASE_URL");
  if (env_url && *env_url)
    set_string(&c->database_url, xstrdup(env_url));
  return c;
}

const rn__plugin_conf_t *rn__config_plugin(const rn__config_t *config,
                                           const char *name) {
  size_t pos = index_get(&config->plugin_index, name);
  return pos == SIZE_MAX ? NULL : &config->plugins[pos];
}

const rn__plugin_conf_t *rn__config_source(const rn__config_t *config,
                                           const char *name) {
  size_t pos = index_get(&config->source_index, name);
  return pos == SIZE_MAX ? NULL : &config->sources[pos];
}

void rn__config_free(rn__config_t *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->njobs; i++)
    job_conf_free(&c->jobs[i]);
  for (size_t i = 0; i < c->nplugins; i++)
    plugin_conf_free(&c->plugins[i]);
  for (size_t i = 0; i < c->nsources; i++)
    plugin_conf_free(&c->sources[i]);
  for (size_t i = 0; i < c->nerrors; i++)
    free(c->errors[i]);
  index_free(&c->job_index);
  index_free(&c->plugin_index);
  index_free(&c->source_index);
  free(c->jobs);
  free(c->plugins);
  free(c->sources);
  free(c->errors);
  free(c->path);
  free(c->confd);
  free(c->plugin_dir);
  free(c->state_dir);
  free(c->master_key_file);
  free(c->admin_listen);
  free(c->database_url);
  free(c->migrations_dir);
  free(c);
}
