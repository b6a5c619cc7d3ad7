/* pii.c - the guard every signal's metadata passes before it is written.
 *
 * Metadata is published to customers' auditors (and to public Trust
 * Centers), so it may hold counts, percentages, distributions and bucket
 * names only. The guard rejects keys that name a per-device or personal
 * field, and string values (or distribution keys) shaped like hostnames,
 * FQDNs, IP or MAC addresses, serial numbers, drive letters, user names,
 * e-mail addresses or device UUIDs. Error messages give the path, never the
 * value. */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "devsrc_internal.h"

/* Keys that are aggregates by definition, whatever their words say. */
static const char *const allowed_keys[] = {
    "devices_with_serial", "hostname_count", "unique_users", "user_count",
    "mac_count", "ip_count", NULL};

/* A key is denied when one of its words (split at _ - . space and
 * camelCase) is one of these. "mac" alone is not here: it is also the macOS
 * device class; MAC-shaped values and "macAddress" keys are caught anyway. */
static const char *const denied_words[] = {
    "host",   "hostname", "hostnames", "fqdn",     "dns",     "netbios",
    "ip",     "ips",      "ipv4",      "ipv6",
    "serial", "serials",  "drive",     "letter",   "label",   "labels",
    "user",   "users",    "username",  "usernames", "login",  "logon",
    "email",  "emails",   "mail",      "sid",      "computer", "machine",
    "uid",    "uuid",     "address",   "addresses", "owner",  "contact",
    "phone",  NULL};

/* ...or when it pairs an identity word with a thing word, e.g. deviceId,
 * system_name, node_ids. */
static const char *const thing_words[] = {"device", "node", "agent", "system",
                                          "display", "volume", "endpoint",
                                          "asset", NULL};
static const char *const identity_words[] = {"id", "ids", "name", "names",
                                             NULL};

static bool in_list(const char *word, const char *const *list) {
  for (size_t i = 0; list[i]; i++)
    if (strcasecmp(word, list[i]) == 0)
      return true;
  return false;
}

/* Splits a key into lower-case words. */
static size_t split_words(const char *key, char words[][32], size_t max) {
  size_t n = 0, len = 0;
  for (const char *p = key;; p++) {
    bool boundary = !*p || *p == '_' || *p == '-' || *p == '.' || *p == ' ' ||
                    (isupper((unsigned char)*p) && p > key &&
                     islower((unsigned char)p[-1]));
    if (boundary && len) {
      words[n][len] = '\0';
      if (++n == max)
        return n;
      len = 0;
    }
    if (!*p)
      return n;
    if (isalnum((unsigned char)*p) && len < 31)
      words[n][len++] = (char)tolower((unsigned char)*p);
  }
}

static const char *denied_key(const char *key) {
  if (in_list(key, allowed_keys))
    return NULL;
  char words[16][32];
  size_t n = split_words(key, words, 16);
  bool thing = false, identity = false;
  for (size_t i = 0; i < n; i++) {
    if (in_list(words[i], denied_words))
      return "names a per-device or personal field";
    thing = thing || in_list(words[i], thing_words);
    identity = identity || in_list(words[i], identity_words);
  }
  return thing && identity ? "names a device identifier" : NULL;
}

/* ------------------------------------------------------- value shapes */

static bool is_ipv4(const char *s) {
  int parts = 0;
  while (*s) {
    if (!isdigit((unsigned char)*s))
      return false;
    int value = 0, digits = 0;
    while (isdigit((unsigned char)*s) && digits < 4) {
      value = value * 10 + (*s++ - '0');
      digits++;
    }
    if (digits > 3 || value > 255)
      return false;
    parts++;
    if (*s == '.')
      s++;
    else if (*s == '/' || *s == '\0')
      break; /* CIDR suffixes count too */
    else
      return false;
  }
  return parts == 4;
}

static bool is_ipv6(const char *s) {
  int colons = 0, hex = 0;
  for (const char *p = s; *p; p++) {
    if (*p == ':')
      colons++;
    else if (isxdigit((unsigned char)*p))
      hex++;
    else if (*p != '.' && *p != '%' && *p != '/')
      return false;
  }
  return colons >= 2 && hex >= 1;
}

static bool is_mac(const char *s) {
  char out[18];
  return rn_normalize_mac(s, out, sizeof out) &&
         (strchr(s, ':') || strchr(s, '-') || strchr(s, '.') ||
          strlen(s) == 12);
}

static bool is_email(const char *s) {
  const char *at = strchr(s, '@');
  return at && at > s && strchr(at + 1, '.') && !strchr(s, ' ');
}

static bool is_drive_letter(const char *s) {
  return isalpha((unsigned char)s[0]) && s[1] == ':' &&
         (s[2] == '\0' || s[2] == '\\' || s[2] == '/');
}

static bool is_domain_user(const char *s) {
  const char *slash = strchr(s, '\\');
  return slash && slash > s && slash[1] && !strchr(s, ' ');
}

static bool is_uuid(const char *s) {
  static const int groups[] = {8, 4, 4, 4, 12};
  for (int g = 0; g < 5; g++) {
    for (int i = 0; i < groups[g]; i++, s++)
      if (!isxdigit((unsigned char)*s))
        return false;
    if (g < 4 && *s++ != '-')
      return false;
  }
  return *s == '\0';
}

/* host.example.local, cts-fs01.contoso.com: dotted labels ending in a
 * letter label. Version numbers end in digits and pass. */
static bool is_fqdn(const char *s) {
  int labels = 0;
  const char *label = s;
  bool last_alpha = false;
  for (const char *p = s;; p++) {
    if (*p == '.' || *p == '\0') {
      size_t len = (size_t)(p - label);
      if (len == 0 || len > 63)
        return false;
      labels++;
      last_alpha = isalpha((unsigned char)p[-1]) != 0;
      for (const char *q = label; q < p; q++)
        last_alpha = last_alpha && (isalpha((unsigned char)*q) || *q == '-');
      if (!*p)
        break;
      label = p + 1;
    } else if (!isalnum((unsigned char)*p) && *p != '-') {
      return false;
    }
  }
  return labels >= 2 && last_alpha;
}

/* CTS-FS01, DESKTOP-AB12CD3: one label mixing letters, digits and a hyphen,
 * the shape Windows and most RMMs give machine names. */
static bool is_machine_name(const char *s) {
  size_t len = strlen(s);
  bool digit = false, alpha = false, hyphen = false;
  if (len < 3 || len > 63)
    return false;
  for (const char *p = s; *p; p++) {
    if (isdigit((unsigned char)*p))
      digit = true;
    else if (isalpha((unsigned char)*p))
      alpha = true;
    else if (*p == '-')
      hyphen = true;
    else
      return false;
  }
  return digit && alpha && hyphen;
}

/* 7XK2QH3, 9A4C21F0, C02XK1ZJJGH5: upper-case alphanumerics with letters and
 * at least two digits, no spaces. */
static bool is_serial(const char *s) {
  size_t len = strlen(s);
  int digits = 0, letters = 0;
  if (len < 6 || len > 24)
    return false;
  for (const char *p = s; *p; p++) {
    if (isdigit((unsigned char)*p))
      digits++;
    else if (isupper((unsigned char)*p))
      letters++;
    else
      return false;
  }
  return digits >= 2 && letters >= 1;
}

static const char *denied_value(const char *s) {
  if (is_ipv4(s))
    return "looks like an IPv4 address";
  if (is_uuid(s))
    return "looks like a device UUID";
  if (is_mac(s))
    return "looks like a MAC address";
  if (is_ipv6(s))
    return "looks like an IPv6 address";
  if (is_email(s))
    return "looks like an e-mail address";
  if (is_drive_letter(s))
    return "looks like a drive letter";
  if (is_domain_user(s))
    return "looks like a DOMAIN\\user name";
  if (is_fqdn(s))
    return "looks like a host name (FQDN)";
  if (is_machine_name(s))
    return "looks like a machine name";
  if (is_serial(s))
    return "looks like a serial number";
  return NULL;
}

/* Appends to the path of the value being checked and returns the bytes
 * added: a path deeper than the buffer is cut, never overrun. */
static size_t path_append(char *path, size_t pathlen, size_t used,
                          const char *fmt, ...) RN_PRINTF(4, 5);
static size_t path_append(char *path, size_t pathlen, size_t used,
                          const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(path + used, pathlen - used, fmt, ap);
  va_end(ap);
  if (n < 0)
    return 0;
  return (size_t)n < pathlen - used ? (size_t)n : pathlen - used - 1;
}

static int check(json_t *value, char *path, size_t pathlen, size_t used,
                 char *err, size_t errlen) {
  if (json_is_string(value)) {
    const char *why = denied_value(json_string_value(value));
    if (why) {
      snprintf(err, errlen, "%s: value %s", path, why);
      return RN_EPII;
    }
    return 0;
  }
  if (json_is_array(value)) {
    size_t i;
    json_t *item;
    json_array_foreach(value, i, item) {
      size_t n = path_append(path, pathlen, used, "[%zu]", i);
      int rc = check(item, path, pathlen, used + n, err, errlen);
      path[used] = '\0';
      if (rc < 0)
        return rc;
    }
    return 0;
  }
  if (json_is_object(value)) {
    const char *key;
    json_t *item;
    json_object_foreach(value, key, item) {
      size_t n = path_append(path, pathlen, used, ".%s", key);
      /* Keys are data too: a distribution keyed by host name is a list of
       * host names. */
      const char *why = denied_key(key);
      if (!why) {
        const char *shape = denied_value(key);
        if (shape) {
          path[used] = '\0';
          snprintf(err, errlen, "%s: a key %s", path[0] ? path : "metadata",
                   shape);
          return RN_EPII;
        }
      }
      if (why) {
        snprintf(err, errlen, "%s: key %s", path, why);
        return RN_EPII;
      }
      int rc = check(item, path, pathlen, used + n, err, errlen);
      path[used] = '\0';
      if (rc < 0)
        return rc;
    }
  }
  return 0; /* numbers, booleans, null */
}

int rn_pii_check(const char *metadata_json, char *err, size_t errlen) {
  json_error_t jerr;
  json_t *root = json_loads(metadata_json ? metadata_json : "", 0, &jerr);
  if (!root) {
    snprintf(err, errlen, "metadata is not valid JSON: %s", jerr.text);
    return RN_EJSON;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    snprintf(err, errlen, "metadata must be a JSON object");
    return RN_EJSON;
  }
  char path[512] = "metadata";
  int rc = check(root, path, sizeof path, strlen(path), err, errlen);
  json_decref(root);
  return rc;
}
