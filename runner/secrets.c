/* secrets.c - secrets at rest and in memory.
 *
 * The master key file holds one or more lines "<version> <64 hex digits>";
 * the highest version seals, any listed version opens, so keys rotate by
 * appending a line and re-sealing. A sealed value is text:
 * "v<version>:<base64 of nonce || secretbox ciphertext>". */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define MAX_KEYS 16

struct rn__secrets_s {
  unsigned nkeys;
  struct {
    unsigned version;
    unsigned char key[crypto_secretbox_KEYBYTES];
  } keys[MAX_KEYS];
};

void rn__secret_wipe(char *data, size_t len) {
  if (!data)
    return;
  sodium_memzero(data, len);
  free(data);
}

int rn__secret_read_file(const char *path, char **data, size_t *len,
                         char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return errno == ENOENT ? RN_ENOENT : RN_EACCES;
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s: not a regular file", path);
    close(fd);
    return RN_EINVAL;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    snprintf(err, errlen,
             "%s is accessible by group or others (mode %03o); make it 0600 "
             "or 0400",
             path, (unsigned)(st.st_mode & 0777));
    close(fd);
    return RN_EPERM;
  }
  if (st.st_size > 65536) {
    snprintf(err, errlen, "%s: larger than 64 KiB; not a secret file", path);
    close(fd);
    return RN_EINVAL;
  }
  size_t cap = (size_t)st.st_size + 1;
  char *buf = malloc(cap);
  if (!buf) {
    close(fd);
    return RN_ENOMEM;
  }
  size_t n = 0;
  ssize_t got;
  while (n < cap - 1 && (got = read(fd, buf + n, cap - 1 - n)) > 0)
    n += (size_t)got;
  close(fd);
  /* A trailing newline is editor noise, not part of the secret. */
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    n--;
  buf[n] = '\0';
  if (n == 0) {
    snprintf(err, errlen, "%s is empty", path);
    rn__secret_wipe(buf, cap);
    return RN_EINVAL;
  }
  /* Callers wipe with the length they are given: give them the capacity. */
  if (n + 1 < cap) {
    char *exact = malloc(n + 1);
    if (!exact) {
      rn__secret_wipe(buf, cap);
      return RN_ENOMEM;
    }
    memcpy(exact, buf, n + 1);
    rn__secret_wipe(buf, cap);
    buf = exact;
  }
  *data = buf;
  *len = n;
  return 0;
}

int rn__secrets_open(const char *key_file, rn__secrets_t **out, char *err,
                     size_t errlen) {
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return RN_EIO;
  }
  char *text;
  size_t len;
  int rc = rn__secret_read_file(key_file, &text, &len, err, errlen);
  if (rc < 0)
    return rc;
  rn__secrets_t *s = sodium_malloc(sizeof *s);
  if (!s) {
    rn__secret_wipe(text, len + 1);
    return RN_ENOMEM;
  }
  memset(s, 0, sizeof *s);
  int line = 0;
  char *save = NULL;
  for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    line++;
    if (*l == '#' || *l == '\0')
      continue;
    unsigned version;
    char hex[crypto_secretbox_KEYBYTES * 2 + 2];
    size_t bin_len;
    if (sscanf(l, "%u %65s", &version, hex) != 2 || version == 0 ||
        strlen(hex) != crypto_secretbox_KEYBYTES * 2 ||
        s->nkeys == MAX_KEYS ||
        sodium_hex2bin(s->keys[s->nkeys].key, crypto_secretbox_KEYBYTES, hex,
                       strlen(hex), NULL, &bin_len, NULL) != 0 ||
        bin_len != crypto_secretbox_KEYBYTES) {
      snprintf(err, errlen,
               "%s:%d: expected \"<version> <64 hex digits>\" (at most %d keys)",
               key_file, line, MAX_KEYS);
      sodium_memzero(hex, sizeof hex);
      rn__secret_wipe(text, len + 1);
      sodium_free(s);
      return RN_ECONFIG;
    }
    sodium_memzero(hex, sizeof hex);
    s->keys[s->nkeys++].version = version;
  }
  rn__secret_wipe(text, len + 1);
  if (s->nkeys == 0) {
    snprintf(err, errlen, "%s holds no key", key_file);
    sodium_free(s);
    return RN_ECONFIG;
  }
  sodium_mprotect_readonly(s);
  *out = s;
  return 0;
}

void rn__secrets_close(rn__secrets_t *secrets) {
  if (secrets)
    sodium_free(secrets); /* zeroes the keys */
}

static int newest_key(const rn__secrets_t *s) {
  int best = 0;
  for (unsigned i = 1; i < s->nkeys; i++)
    if (s->keys[i].version > s->keys[best].version)
      best = (int)i;
  return best;
}

int rn__secret_seal(const rn__secrets_t *s, const char *plain, size_t len,
                    char **sealed) {
  const int k = newest_key(s);
  size_t box_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
  unsigned char *box = malloc(box_len);
  if (!box)
    return RN_ENOMEM;
  randombytes_buf(box, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES,
                        (const unsigned char *)plain, len, box,
                        s->keys[k].key);
  size_t b64_len =
      sodium_base64_encoded_len(box_len, sodium_base64_VARIANT_ORIGINAL);
  char *out = malloc(b64_len + 16);
  if (!out) {
    free(box);
    return RN_ENOMEM;
  }
  int prefix = snprintf(out, 16, "v%u:", s->keys[k].version);
  sodium_bin2base64(out + prefix, b64_len, box, box_len,
                    sodium_base64_VARIANT_ORIGINAL);
  free(box);
  *sealed = out;
  return 0;
}

int rn__secret_open(const rn__secrets_t *s, const char *sealed, char **plain,
                    size_t *len) {
  unsigned version;
  int consumed = 0;
  if (sscanf(sealed, "v%u:%n", &version, &consumed) != 1 || consumed == 0)
    return RN_ECRYPTO;
  int k = -1;
  for (unsigned i = 0; i < s->nkeys; i++)
    if (s->keys[i].version == version)
      k = (int)i;
  if (k < 0)
    return RN_ECRYPTO;
  const char *b64 = sealed + consumed;
  size_t b64_len = strlen(b64);
  unsigned char *box = malloc(b64_len);
  size_t box_len;
  if (!box)
    return RN_ENOMEM;
  if (sodium_base642bin(box, b64_len, b64, b64_len, NULL, &box_len, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      box_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
    free(box);
    return RN_ECRYPTO;
  }
  size_t n = box_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
  char *out = malloc(n + 1);
  if (!out) {
    free(box);
    return RN_ENOMEM;
  }
  if (crypto_secretbox_open_easy((unsigned char *)out,
                                 box + crypto_secretbox_NONCEBYTES,
                                 box_len - crypto_secretbox_NONCEBYTES, box,
                                 s->keys[k].key) != 0) {
    free(box);
    rn__secret_wipe(out, n + 1);
    return RN_ECRYPTO;
  }
  free(box);
  out[n] = '\0';
  *plain = out;
  *len = n;
  return 0;
}

unsigned rn__secrets_version(const rn__secrets_t *s) {
  return s->keys[newest_key(s)].version;
}
