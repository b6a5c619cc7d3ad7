/* devsrc.c - the library's transaction context, statements and buffers. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "devsrc_internal.h"

void rn_devsrc_init(rn_devsrc_t *ds, const rn_host_t *host, rn_db_tx_t *tx,
                    int64_t now_ms) {
  memset(ds, 0, sizeof *ds);
  ds->host = host;
  ds->tx = tx;
  ds->now_ms = now_ms;
}

const char *rn_devsrc_error(const rn_devsrc_t *ds) {
  return ds->error[0] ? ds->error : "no error";
}

int ds_fail(rn_devsrc_t *ds, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ds->error, sizeof ds->error, fmt, ap);
  va_end(ap);
  return err;
}

int ds_exec(rn_devsrc_t *ds, const char *what, const char *sql, int nparams,
            const char *const *params, rn_db_result_t **result) {
  if (result)
    *result = NULL;
  int rc = ds->host->db_tx_exec(ds->tx, sql, nparams, params, result);
  if (rc < 0) {
    const char *why = ds->host->db_tx_error(ds->tx);
    return ds_fail(ds, rc, "%s: %s", what,
                   why && *why ? why : ds->host->strerror(rc));
  }
  return 0;
}

void ds_free_result(rn_devsrc_t *ds, rn_db_result_t *result) {
  if (result)
    ds->host->db_result_free(result);
}

const char *ds_first(rn_devsrc_t *ds, const rn_db_result_t *result) {
  if (!result || ds->host->db_rows(result) < 1 || ds->host->db_cols(result) < 1)
    return NULL;
  return ds->host->db_value(result, 0, 0);
}

void ds_buf_append(ds_buf_t *b, const char *text, size_t len) {
  if (b->failed)
    return;
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + len + 1)
      cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
      b->failed = true;
      return;
    }
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, text, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void ds_buf_printf(ds_buf_t *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = true;
    return;
  }
  if ((size_t)n < sizeof small) {
    ds_buf_append(b, small, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (!big) {
    b->failed = true;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  ds_buf_append(b, big, (size_t)n);
  free(big);
}

void ds_buf_free(ds_buf_t *b) {
  free(b->data);
  *b = (ds_buf_t){0};
}

void ds_array_add(ds_array_t *a, const char *value) {
  ds_buf_append(&a->buf, a->count ? "," : "{", 1);
  a->count++;
  if (!value) {
    ds_buf_append(&a->buf, "NULL", 4);
    return;
  }
  /* Quote every element; only " and \ need escaping inside quotes. */
  ds_buf_append(&a->buf, "\"", 1);
  for (const char *p = value; *p; p++) {
    if (*p == '"' || *p == '\\')
      ds_buf_append(&a->buf, "\\", 1);
    ds_buf_append(&a->buf, p, 1);
  }
  ds_buf_append(&a->buf, "\"", 1);
}

const char *ds_array_text(ds_array_t *a) {
  if (a->count == 0)
    return "{}";
  if (!a->buf.data || a->buf.data[a->buf.len - 1] != '}')
    ds_buf_append(&a->buf, "}", 1);
  return a->buf.failed ? NULL : a->buf.data;
}

void ds_array_free(ds_array_t *a) {
  ds_buf_free(&a->buf);
  a->count = 0;
}

void ds_epoch_text(int64_t ms, char out[32]) {
  snprintf(out, 32, "%lld.%03lld", (long long)(ms / 1000),
           (long long)(ms % 1000 < 0 ? -(ms % 1000) : ms % 1000));
}

void ds_int_text(int64_t value, char out[24]) {
  snprintf(out, 24, "%lld", (long long)value);
}

/* ----------------------------------------------------- normalization */

bool rn_normalize_serial(const char *serial, char *out, size_t outlen) {
  /* Upper-case alphanumerics only; placeholder serials that vendors ship on
   * every unit would merge unrelated devices, so they count as absent. */
  static const char *const placeholders[] = {
      "", "0", "00000000", "0000000000", "123456789", "1234567890",
      "DEFAULTSTRING", "TOBEFILLEDBYOEM", "TOBEFILLEDBYOEM", "SYSTEMSERIALNUMBER",
      "NONE", "NA", "UNKNOWN", "CHASSISSERIALNUMBER", "NOTAPPLICABLE",
      "INVALID", "OEM", "SERIAL"};
  if (!serial || outlen < 2)
    return false;
  size_t n = 0;
  for (const char *p = serial; *p && n + 1 < outlen; p++)
    if (isalnum((unsigned char)*p))
      out[n++] = (char)toupper((unsigned char)*p);
  out[n] = '\0';
  for (size_t i = 0; i < sizeof placeholders / sizeof *placeholders; i++)
    if (strcmp(out, placeholders[i]) == 0)
      return false;
  bool all_same = n > 0;
  for (size_t i = 1; i < n; i++)
    all_same = all_same && out[i] == out[0];
  return n >= 4 && !all_same;
}

bool rn_normalize_mac(const char *mac, char *out, size_t outlen) {
  /* Accepts 00:11:22:33:44:55, 00-11-..., 0011.2233.4455, 001122334455. */
  if (!mac || outlen < 18)
    return false;
  char hex[12];
  size_t n = 0;
  for (const char *p = mac; *p; p++) {
    if (isxdigit((unsigned char)*p)) {
      if (n == 12)
        return false;
      hex[n++] = (char)tolower((unsigned char)*p);
    } else if (*p != ':' && *p != '-' && *p != '.' && *p != ' ') {
      return false;
    }
  }
  if (n != 12)
    return false;
  /* All-zero and broadcast addresses identify nothing. */
  if (memcmp(hex, "000000000000", 12) == 0 ||
      memcmp(hex, "ffffffffffff", 12) == 0)
    return false;
  for (int i = 0; i < 6; i++) {
    out[i * 3] = hex[i * 2];
    out[i * 3 + 1] = hex[i * 2 + 1];
    out[i * 3 + 2] = i < 5 ? ':' : '\0';
  }
  return true;
}
