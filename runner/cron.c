/*
 * cron.c - 5-field cron expressions (minute hour day-of-month month
 * day-of-week), evaluated in UTC.
 *
 * Calendar arithmetic is done here on proleptic Gregorian day numbers so
 * that the result never depends on TZ or on the C library's time zone
 * tables.
 */
/* uv.h (through internal.h) needs POSIX types that strict C11 hides. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define CRON_NFIELDS 5
/* "Within five years": 5 * 365 days plus the two leap days it may span. */
#define CRON_HORIZON_SECONDS ((int64_t)(5 * 365 + 2) * 86400)

typedef struct {
  const char *name;  /* used in error messages */
  int min, max;      /* accepted values */
  int open_max;      /* upper end of "*" and of "a/n" */
  const char *const *names; /* names[i] means value names_base + i */
  int names_base;
  int nnames;
} field_spec_t;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR",
                                          "MAY", "JUN", "JUL", "AUG",
                                          "SEP", "OCT", "NOV", "DEC"};
static const char *const wday_names[] = {"SUN", "MON", "TUE", "WED",
                                         "THU", "FRI", "SAT"};

/* Day-of-week accepts 7 as Sunday, but "*" and "a/n" stop at Saturday so
 * that "1/3" means Mon,Thu and not Mon,Thu,Sun. */
static const field_spec_t fields[CRON_NFIELDS] = {
    {"minute", 0, 59, 59, NULL, 0, 0},
    {"hour", 0, 23, 23, NULL, 0, 0},
    {"day-of-month", 1, 31, 31, NULL, 0, 0},
    {"month", 1, 12, 12, month_names, 1, 12},
    {"day-of-week", 0, 7, 6, wday_names, 0, 7},
};

/* ------------------------------------------------------------ parsing */

typedef struct {
  const field_spec_t *spec;
  const char *text; /* the whole field, for messages */
  size_t len;
  char *err;
  size_t errlen;
} field_ctx_t;

static int field_fail(field_ctx_t *fc, const char *fmt, ...)
    RN_PRINTF_LIKE(2, 3);

static int field_fail(field_ctx_t *fc, const char *fmt, ...) {
  if (fc->err && fc->errlen > 0) {
    int n = snprintf(fc->err, fc->errlen, "%s field \"%.*s\": ",
                     fc->spec->name, (int)fc->len, fc->text);
    if (n >= 0 && (size_t)n < fc->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(fc->err + n, fc->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return RN_EINVAL;
}

static void fail(char *err, size_t errlen, const char *fmt, ...)
    RN_PRINTF_LIKE(3, 4);

static void fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
}

/* Reads a number or (where the field has them) a name at *p, which must
 * stay below end. */
static int parse_value(field_ctx_t *fc, const char **p, const char *end,
                       int *value) {
  const field_spec_t *spec = fc->spec;
  const char *s = *p;

  if (s < end && isdigit((unsigned char)*s)) {
    long v = 0;
    while (s < end && isdigit((unsigned char)*s)) {
      /* Saturate: anything this large is out of range anyway. */
      if (v < 100000)
        v = v * 10 + (*s - '0');
      s++;
    }
    if (v < spec->min || v > spec->max)
      return field_fail(fc, "value out of range %d-%d", spec->min, spec->max);
    *value = (int)v;
    *p = s;
    return 0;
  }

  if (s < end && isalpha((unsigned char)*s) && spec->names) {
    const char *start = s;
    while (s < end && isalpha((unsigned char)*s))
      s++;
    size_t n = (size_t)(s - start);
    for (int i = 0; i < spec->nnames; i++) {
      const char *name = spec->names[i];
      if (strlen(name) != n)
        continue;
      size_t k = 0;
      while (k < n && toupper((unsigned char)start[k]) == name[k])
        k++;
      if (k == n) {
        *value = spec->names_base + i;
        *p = s;
        return 0;
      }
    }
    return field_fail(fc, "unknown name \"%.*s\" (expected %s-%s)", (int)n,
                      start, spec->names[0], spec->names[spec->nnames - 1]);
  }

  if (s >= end)
    return field_fail(fc, "missing value");
  if (spec->names)
    return field_fail(fc, "expected a number or name, found '%c'", *s);
  return field_fail(fc, "expected a number, found '%c'", *s);
}

/* One list item: "*", "v", "a-b", each optionally followed by "/step". */
static int parse_item(field_ctx_t *fc, const char *s, const char *end,
                      uint64_t *bits) {
  const field_spec_t *spec = fc->spec;
  int lo, hi, step = 1;
  int rc;

  if (s == end)
    return field_fail(fc, "empty list item");

  if (*s == '*') {
    lo = spec->min;
    hi = spec->open_max;
    s++;
  } else {
    if ((rc = parse_value(fc, &s, end, &lo)) != 0)
      return rc;
    hi = lo;
    if (s < end && *s == '-') {
      s++;
      if ((rc = parse_value(fc, &s, end, &hi)) != 0)
        return rc;
      if (hi < lo)
        return field_fail(fc, "reversed range %d-%d (start is after end)",
                          lo, hi);
    } else if (s < end && *s == '/') {
      /* "a/n" runs from a to the end of the field's range. */
      hi = lo > spec->open_max ? lo : spec->open_max;
    }
  }

  if (s < end && *s == '/') {
    s++;
    if (s == end || !isdigit((unsigned char)*s))
      return field_fail(fc, "missing step after '/'");
    long v = 0;
    while (s < end && isdigit((unsigned char)*s)) {
      if (v < 100000)
        v = v * 10 + (*s - '0');
      s++;
    }
    if (v == 0)
      return field_fail(fc, "step must be at least 1");
    if (v > spec->max)
      return field_fail(fc, "step %ld larger than the field's range %d-%d",
                        v, spec->min, spec->max);
    step = (int)v;
  }

  if (s < end)
    return field_fail(fc, "unexpected '%c'", *s);

  for (int v = lo; v <= hi; v += step)
    *bits |= (uint64_t)1 << v;
  return 0;
}

static int parse_field(field_ctx_t *fc, uint64_t *bits, bool *any) {
  const char *s = fc->text, *end = fc->text + fc->len;
  int rc;

  *bits = 0;
  for (;;) {
    const char *comma = memchr(s, ',', (size_t)(end - s));
    const char *item_end = comma ? comma : end;
    if ((rc = parse_item(fc, s, item_end, bits)) != 0)
      return rc;
    if (!comma)
      break;
    s = comma + 1;
  }
  /* As in Vixie cron, a field that starts with '*' (a bare star or a step
   * over it) counts as unrestricted for the day-of-month/day-of-week rule. */
  *any = fc->text[0] == '*';
  return 0;
}

int rn__cron_parse(const char *expr, rn__cron_t *out, char *err,
                   size_t errlen) {
  const char *start[CRON_NFIELDS + 1];
  size_t len[CRON_NFIELDS + 1];
  rn__cron_t cron;
  uint64_t bits[CRON_NFIELDS];
  bool any[CRON_NFIELDS];

  if (err && errlen > 0)
    err[0] = '\0';
  if (!expr || !out) {
    fail(err, errlen, "no cron expression given");
    return RN_EINVAL;
  }

  const char *p = expr;
  while (isspace((unsigned char)*p))
    p++;
  if (*p == '\0') {
    fail(err, errlen, "empty cron expression");
    return RN_EINVAL;
  }
  if (*p == '@') {
    size_t n = strcspn(p, " \t\r\n");
    fail(err, errlen,
         "macros such as \"%.*s\" are not supported; write the 5 fields "
         "(minute hour day-of-month month day-of-week)",
         (int)(n > 32 ? 32 : n), p);
    return RN_EINVAL;
  }

  int total = 0;
  while (*p) {
    const char *f = p;
    while (*p && !isspace((unsigned char)*p))
      p++;
    if (total < CRON_NFIELDS + 1) {
      start[total] = f;
      len[total] = (size_t)(p - f);
    }
    total++;
    while (isspace((unsigned char)*p))
      p++;
  }
  if (total != CRON_NFIELDS) {
    fail(err, errlen,
         "expected 5 fields (minute hour day-of-month month day-of-week), "
         "found %d",
         total);
    return RN_EINVAL;
  }
  for (int i = 0; i < CRON_NFIELDS; i++) {
    field_ctx_t fc = {&fields[i], start[i], len[i], err, errlen};
    int rc = parse_field(&fc, &bits[i], &any[i]);
    if (rc != 0)
      return rc;
  }

  memset(&cron, 0, sizeof(cron));
  cron.minutes = bits[0];
  cron.hours = (uint32_t)bits[1];
  cron.mdays = (uint32_t)bits[2];
  cron.months = (uint16_t)bits[3];
  /* Fold 7 onto 0: both mean Sunday. */
  cron.wdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f);
  cron.mday_any = any[2];
  cron.wday_any = any[4];
  *out = cron;
  return 0;
}

/* ------------------------------------------------------------ calendar */

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0)))
    q--;
  return q;
}

static bool is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m) {
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Leap days in years [1, y), counted on the proleptic Gregorian calendar. */
static int64_t leaps_before(int64_t y) {
  int64_t p = y - 1;
  return floor_div(p, 4) - floor_div(p, 100) + floor_div(p, 400);
}

/* Days from 1970-01-01 to January 1st of year y. */
static int64_t days_before_year(int64_t y) {
  return 365 * (y - 1970) + leaps_before(y) - leaps_before(1970);
}

static void civil_from_days(int64_t days, int64_t *y, int *m, int *d) {
  /* Estimate with the mean Gregorian year, then correct by at most a
   * year or two either way. */
  int64_t year = 1970 + floor_div(days * 400, 146097);
  while (days_before_year(year) > days)
    year--;
  while (days_before_year(year + 1) <= days)
    year++;
  int64_t rest = days - days_before_year(year);
  int month = 1;
  while (rest >= days_in_month(year, month)) {
    rest -= days_in_month(year, month);
    month++;
  }
  *y = year;
  *m = month;
  *d = (int)rest + 1;
}

/* ------------------------------------------------------------ matching */

static bool day_matches(const rn__cron_t *cron, int mday, int64_t days) {
  /* 1970-01-01 was a Thursday (4). */
  int wday = (int)(days - 7 * floor_div(days, 7) + 4) % 7;
  bool dom = (cron->mdays >> mday) & 1;
  bool dow = (cron->wdays >> wday) & 1;
  if (cron->mday_any || cron->wday_any)
    return dom && dow;
  return dom || dow;
}

/* Lowest set bit of `bits` at or above `from`, or -1. */
static int next_bit(uint64_t bits, int from) {
  if (from >= 64)
    return -1;
  bits &= ~(uint64_t)0 << from;
  if (!bits)
    return -1;
  return __builtin_ctzll(bits);
}

int64_t rn__cron_next(const rn__cron_t *cron, int64_t after) {
  if (!cron)
    return -1;
  /* Sets that can never match (only possible when filled by hand). */
  if (!(cron->minutes & (((uint64_t)1 << 60) - 1)) ||
      !(cron->hours & 0xffffffu) || !(cron->months & 0x1ffeu) ||
      (!(cron->mdays & 0xfffffffeu) && !(cron->wdays & 0x7fu)))
    return -1;
  /* Keep the arithmetic below clear of overflow at either extreme. */
  if (after > INT64_MAX - CRON_HORIZON_SECONDS - 120 ||
      after < INT64_MIN + CRON_HORIZON_SECONDS + 120)
    return -1;

  int64_t limit = after + CRON_HORIZON_SECONDS;
  int64_t t = floor_div(after, 60) * 60 + 60; /* next whole minute */
  int64_t days = floor_div(t, 86400);
  int64_t secs = t - days * 86400;
  int hour = (int)(secs / 3600);
  int minute = (int)(secs % 3600 / 60);
  int64_t y;
  int m, d;
  civil_from_days(days, &y, &m, &d);

  /* Each pass rejects a whole month or a whole day, or returns; with the
   * horizon checked per day this ends after at most ~1900 passes. */
  for (;;) {
    if (days * 86400 > limit)
      return -1;

    if (!((cron->months >> m) & 1)) {
      days += days_in_month(y, m) - d + 1;
      d = 1;
      if (++m > 12) {
        m = 1;
        y++;
      }
      hour = minute = 0;
      continue;
    }

    if (day_matches(cron, d, days)) {
      for (int h = next_bit(cron->hours, hour); h >= 0 && h < 24;
           h = next_bit(cron->hours, h + 1)) {
        int mi = next_bit(cron->minutes, h == hour ? minute : 0);
        if (mi >= 0 && mi < 60) {
          int64_t when = days * 86400 + h * 3600 + mi * 60;
          return when <= limit ? when : -1;
        }
      }
    }

    days++;
    hour = minute = 0;
    if (++d > days_in_month(y, m)) {
      d = 1;
      if (++m > 12) {
        m = 1;
        y++;
      }
    }
  }
}

bool rn__cron_can_fire(const rn__cron_t *cron) {
  if (!(cron->minutes & (((uint64_t)1 << 60) - 1)) ||
      !(cron->hours & 0xffffffu) || !(cron->months & 0x1ffeu))
    return false;
  /* Both day fields restricted: either may match, and every month has
   * every weekday. */
  if (!cron->mday_any && !cron->wday_any)
    return (cron->wdays & 0x7f) != 0;
  /* Otherwise the day of month must exist in a month allowed. Over the
   * 400-year Gregorian cycle every date, February 29 included, falls on
   * every weekday, so the weekday set only needs to be non-empty. */
  static const int longest[13] = {0,  31, 29, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
  if (!(cron->wdays & 0x7f))
    return false;
  for (int m = 1; m <= 12; m++) {
    uint32_t days = (uint32_t)(((uint64_t)1 << (longest[m] + 1)) - 2);
    if (((cron->months >> m) & 1) && (cron->mdays & days))
      return true;
  }
  return false;
}
