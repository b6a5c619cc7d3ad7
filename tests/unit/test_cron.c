/* Unit tests for cron.c: parsing, error messages and next-run times. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* timegm, gmtime_r */
#endif

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ------------------------------------------------------------ helpers */

/* The expected times are computed by the C library's timegm, independently
 * of the calendar code under test. */
static int64_t at(const char *iso) {
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  int n = sscanf(iso, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon,
                 &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec);
  cr_assert_eq(n, 6, "bad time literal in test: %s", iso);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm);
}

static void fmt(int64_t t, char *buf, size_t len) {
  if (t == -1) {
    snprintf(buf, len, "none");
    return;
  }
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static rn__cron_t parse_ok(const char *expr) {
  rn__cron_t cron;
  char err[256] = "";
  int rc = rn__cron_parse(expr, &cron, err, sizeof(err));
  cr_assert_eq(rc, 0, "\"%s\" should parse, got: %s", expr, err);
  return cron;
}

/* A minute-by-minute reference, only used over short windows. */
static bool brute_matches(const rn__cron_t *c, int64_t t) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  bool dom = (c->mdays >> tm.tm_mday) & 1;
  bool dow = (c->wdays >> tm.tm_wday) & 1;
  bool day = (c->mday_any || c->wday_any) ? (dom && dow) : (dom || dow);
  return ((c->minutes >> tm.tm_min) & 1) && ((c->hours >> tm.tm_hour) & 1) &&
         ((c->months >> (tm.tm_mon + 1)) & 1) && day;
}

/* ------------------------------------------------------- next: tables */

struct next_case {
  char expr[40];
  char from[24];
  char want[24]; /* "none" when there is no run within five years */
};

ParameterizedTestParameters(cron_next,
                            returns_the_first_match_strictly_after_the_start) {
  static struct next_case cases[] = {
      /* steps over a whole field, and their boundaries */
      {"*/4 * * * *", "2026-03-01T03:59:59Z", "2026-03-01T04:00:00Z"},
      {"*/4 * * * *", "2026-03-01T04:00:00Z", "2026-03-01T04:04:00Z"},
      {"*/4 * * * *", "2026-03-01T04:01:30Z", "2026-03-01T04:04:00Z"},
      {"*/4 * * * *", "2026-03-01T04:56:00Z", "2026-03-01T05:00:00Z"},
      {"15 */4 * * *", "2026-03-01T03:59:59Z", "2026-03-01T04:15:00Z"},
      {"15 */4 * * *", "2026-03-01T04:15:00Z", "2026-03-01T08:15:00Z"},
      {"15 */4 * * *", "2026-03-01T04:14:59Z", "2026-03-01T04:15:00Z"},
      {"15 */4 * * *", "2026-03-01T20:15:00Z", "2026-03-02T00:15:00Z"},
      {"30 */6 * * *", "2026-03-01T00:00:00Z", "2026-03-01T00:30:00Z"},
      {"30 */6 * * *", "2026-03-01T00:30:00Z", "2026-03-01T06:30:00Z"},
      {"30 */6 * * *", "2026-03-01T18:31:00Z", "2026-03-02T00:30:00Z"},
      {"*/15 * * * *", "2026-03-01T10:45:00Z", "2026-03-01T11:00:00Z"},
      /* lists and ranges */
      {"0 9,12,18 * * *", "2026-03-01T12:00:00Z", "2026-03-01T18:00:00Z"},
      {"5,10-12 * * * *", "2026-03-01T10:05:00Z", "2026-03-01T10:10:00Z"},
      {"5,10-12 * * * *", "2026-03-01T10:12:00Z", "2026-03-01T11:05:00Z"},
      {"0 9-17 * * MON-FRI", "2026-03-06T17:00:00Z", "2026-03-09T09:00:00Z"},
      /* steps over ranges, and a/n meaning a-max/n */
      {"10-30/10 * * * *", "2026-03-01T10:30:00Z", "2026-03-01T11:10:00Z"},
      {"0 1-10/3 * * *", "2026-03-01T10:00:00Z", "2026-03-02T01:00:00Z"},
      {"45/5 * * * *", "2026-03-01T10:55:00Z", "2026-03-01T11:45:00Z"},
      {"0 0 1 1/3 *", "2026-05-01T00:00:00Z", "2026-07-01T00:00:00Z"},
      /* month ends and leap years */
      {"0 0 1 * *", "2026-01-31T12:00:00Z", "2026-02-01T00:00:00Z"},
      {"0 0 31 * *", "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z"},
      {"0 0 31 * *", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z"},
      {"0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
      {"0 0 29 2 *", "1999-03-01T00:00:00Z", "2000-02-29T00:00:00Z"},
      {"0 0 28-31 2 *", "2026-02-28T00:00:00Z", "2027-02-28T00:00:00Z"},
      {"0 0 29 2 *", "2096-03-01T00:00:00Z", "none"}, /* 2100 is not leap */
      {"0 0 30 2 *", "2026-01-01T00:00:00Z", "none"},
      {"0 0 31 4,6,9,11 *", "2026-01-01T00:00:00Z", "none"},
      /* year rollover */
      {"59 23 31 12 *", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"},
      {"0 0 1 1 *", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},
      {"* * * * *", "2026-12-31T23:59:30Z", "2027-01-01T00:00:00Z"},
      {"0 0 * * MON", "2026-12-31T00:00:00Z", "2027-01-04T00:00:00Z"},
      {"0 12 * nov-DEC *", "2026-03-01T00:00:00Z", "2026-11-01T12:00:00Z"},
      {"0 0 1 JAN,jul *", "2026-02-01T00:00:00Z", "2026-07-01T00:00:00Z"},
      /* day-of-month OR day-of-week when both are restricted */
      {"0 0 13 * FRI", "2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z"},
      {"0 0 13 * 5", "2026-04-10T00:00:00Z", "2026-04-13T00:00:00Z"},
      {"0 0 1-31/2 * MON", "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"},
      /* ...but AND when either starts with '*' */
      {"0 0 */2 * MON", "2026-03-01T00:00:00Z", "2026-03-09T00:00:00Z"},
      {"0 0 13 * *", "2026-03-01T00:00:00Z", "2026-03-13T00:00:00Z"},
      {"0 0 * * FRI", "2026-03-07T00:00:00Z", "2026-03-13T00:00:00Z"},
      /* Sunday as 0, 7 and SUN */
      {"0 0 * * 0", "2026-03-02T00:00:00Z", "2026-03-08T00:00:00Z"},
      {"0 0 * * 7", "2026-03-02T00:00:00Z", "2026-03-08T00:00:00Z"},
      {"0 0 * * sun", "2026-03-02T00:00:00Z", "2026-03-08T00:00:00Z"},
      {"0 0 * * 5-7", "2026-03-02T00:00:00Z", "2026-03-06T00:00:00Z"},
      /* before the epoch, where division must round down */
      {"0 0 1 * *", "1969-12-15T10:00:00Z", "1970-01-01T00:00:00Z"},
      {"30 * * * *", "1969-12-31T23:30:00Z", "1970-01-01T00:30:00Z"},
      {"* * * * *", "1969-12-31T23:59:30Z", "1970-01-01T00:00:00Z"},
      /* century years: 2100 and 1900 are not leap, 2000 is */
      {"0 0 1 3 *", "2100-02-28T12:00:00Z", "2100-03-01T00:00:00Z"},
      {"0 0 * * MON", "2100-03-01T00:00:00Z", "2100-03-08T00:00:00Z"},
      {"0 0 * * THU", "1900-02-28T00:00:00Z", "1900-03-01T00:00:00Z"},
      {"0 0 * * TUE", "2000-02-23T00:00:00Z", "2000-02-29T00:00:00Z"},
  };
  return cr_make_param_array(struct next_case, cases,
                             sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct next_case *c, cron_next,
                  returns_the_first_match_strictly_after_the_start) {
  rn__cron_t cron = parse_ok(c->expr);
  char got[32];
  fmt(rn__cron_next(&cron, at(c->from)), got, sizeof(got));
  cr_expect_str_eq(got, c->want, "\"%s\" after %s: got %s, want %s", c->expr,
                   c->from, got, c->want);
}

/* ----------------------------------------------------- parse: errors */

struct bad_case {
  char expr[40];
  char field[40];  /* must appear in the message */
  char reason[48]; /* and so must this */
};

ParameterizedTestParameters(
    cron_parse, rejects_bad_fields_with_a_message_naming_the_field) {
  static struct bad_case cases[] = {
      {"60 * * * *", "minute field \"60\"", "out of range 0-59"},
      {"* 25 * * *", "hour field \"25\"", "out of range 0-23"},
      {"* * 0 * *", "day-of-month field \"0\"", "out of range 1-31"},
      {"* * 32 * *", "day-of-month field \"32\"", "out of range 1-31"},
      {"* * * 13 *", "month field \"13\"", "out of range 1-12"},
      {"* * * 0 *", "month field \"0\"", "out of range 1-12"},
      {"* * * * 8", "day-of-week field \"8\"", "out of range 0-7"},
      {"99999999999 * * * *", "minute field", "out of range 0-59"},
      {"1,,2 * * * *", "minute field \"1,,2\"", "empty list item"},
      {"1, * * * *", "minute field \"1,\"", "empty list item"},
      {"* ,3 * * *", "hour field \",3\"", "empty list item"},
      {"*/0 * * * *", "minute field \"*/0\"", "step must be at least 1"},
      {"* 1-5/0 * * *", "hour field", "step must be at least 1"},
      {"*/ * * * *", "minute field", "missing step"},
      {"*/60 * * * *", "minute field", "step 60 larger"},
      {"* 10-5 * * *", "hour field \"10-5\"", "reversed range 10-5"},
      {"* * * * FRI-MON", "day-of-week field", "reversed range 5-1"},
      {"* * * dec-feb *", "month field", "reversed range 12-2"},
      {"5x * * * *", "minute field \"5x\"", "unexpected 'x'"},
      {"* * 1-5-7 * *", "day-of-month field", "unexpected '-'"},
      {"* * * * 1/2/3", "day-of-week field", "unexpected '/'"},
      {"1- * * * *", "minute field", "missing value"},
      {"* a * * *", "hour field \"a\"", "expected a number"},
      {"* -1 * * *", "hour field", "expected a number"},
      {"* * * FOO *", "month field \"FOO\"", "unknown name \"FOO\""},
      {"* * * JAN-XYZ *", "month field", "unknown name \"XYZ\""},
      {"* * * * MONDAY", "day-of-week field", "unknown name \"MONDAY\""},
      {"* * MON * *", "day-of-month field", "expected a number"},
      {"* * * * * *", "5 fields", "found 6"},
      {"* * * *", "5 fields", "found 4"},
      {"* * * * * /bin/true", "5 fields", "found 6"},
      {"@daily", "\"@daily\"", "not supported"},
      {"@reboot", "\"@reboot\"", "not supported"},
      {"", "empty", "expression"},
      {"   \t ", "empty", "expression"},
  };
  return cr_make_param_array(struct bad_case, cases,
                             sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_case *c, cron_parse,
                  rejects_bad_fields_with_a_message_naming_the_field) {
  rn__cron_t cron;
  char err[256] = "";
  int rc = rn__cron_parse(c->expr, &cron, err, sizeof(err));
  cr_assert_eq(rc, RN_EINVAL, "\"%s\" should be rejected", c->expr);
  cr_expect(strstr(err, c->field) != NULL, "\"%s\": \"%s\" lacks \"%s\"",
            c->expr, err, c->field);
  cr_expect(strstr(err, c->reason) != NULL, "\"%s\": \"%s\" lacks \"%s\"",
            c->expr, err, c->reason);
  cr_expect(strchr(err, '\n') == NULL, "the reason is one line: %s", err);
}

/* ------------------------------------------------------- parse: sets */

Test(cron_parse, reports_an_out_of_range_hour_in_one_readable_line) {
  rn__cron_t cron;
  char err[256];
  cr_assert_eq(rn__cron_parse("0 25 * * *", &cron, err, sizeof(err)),
               RN_EINVAL);
  cr_expect_str_eq(err, "hour field \"25\": value out of range 0-23");
}

Test(cron_parse, expands_steps_lists_and_ranges_into_bit_sets) {
  rn__cron_t c = parse_ok("*/15 1,5,10-12 1-7/3 */5 *");
  cr_expect_eq(c.minutes, (1ull << 0) | (1ull << 15) | (1ull << 30) |
                              (1ull << 45));
  cr_expect_eq(c.hours, (1u << 1) | (1u << 5) | (1u << 10) | (1u << 11) |
                            (1u << 12));
  cr_expect_eq(c.mdays, (1u << 1) | (1u << 4) | (1u << 7));
  cr_expect_eq(c.months, (1u << 1) | (1u << 6) | (1u << 11));
  cr_expect_eq(c.wdays, 0x7f);
}

Test(cron_parse, fills_every_value_for_a_star) {
  rn__cron_t c = parse_ok("* * * * *");
  cr_expect_eq(c.minutes, (1ull << 60) - 1);
  cr_expect_eq(c.hours, (1u << 24) - 1);
  cr_expect_eq(c.mdays, 0xfffffffeu);
  cr_expect_eq(c.months, 0x1ffe);
  cr_expect_eq(c.wdays, 0x7f);
  cr_expect(c.mday_any);
  cr_expect(c.wday_any);
}

Test(cron_parse, folds_weekday_seven_onto_sunday) {
  cr_expect_eq(parse_ok("0 0 * * 7").wdays, 1u << 0);
  cr_expect_eq(parse_ok("0 0 * * 5-7").wdays,
               (1u << 5) | (1u << 6) | (1u << 0));
  cr_expect_eq(parse_ok("0 0 * * 0,7").wdays, 1u << 0);
}

Test(cron_parse, reads_names_in_any_case_as_their_numbers) {
  rn__cron_t a = parse_ok("0 0 * jan-MAR,Dec mon,Wed-fri");
  rn__cron_t b = parse_ok("0 0 * 1-3,12 1,3-5");
  cr_expect_eq(a.months, b.months);
  cr_expect_eq(a.wdays, b.wdays);
}

Test(cron_parse, stops_an_open_weekday_step_at_saturday) {
  /* "1/3" is Mon,Thu; it does not wrap onto 7 (Sunday). */
  cr_expect_eq(parse_ok("0 0 * * 1/3").wdays, (1u << 1) | (1u << 4));
}

Test(cron_parse, marks_day_fields_starting_with_a_star_as_unrestricted) {
  rn__cron_t c = parse_ok("0 0 */2 * 1-5");
  cr_expect(c.mday_any);
  cr_expect(!c.wday_any);
  c = parse_ok("0 0 1-31 * *");
  cr_expect(!c.mday_any);
  cr_expect(c.wday_any);
}

Test(cron_parse, accepts_surrounding_and_repeated_whitespace) {
  rn__cron_t a = parse_ok("  5\t4   * *  1 \n");
  rn__cron_t b = parse_ok("5 4 * * 1");
  cr_expect_eq(memcmp(&a, &b, sizeof(a)), 0);
}

Test(cron_parse, leaves_the_output_untouched_on_error) {
  rn__cron_t c = parse_ok("1 2 3 4 5");
  rn__cron_t before = c;
  cr_assert_eq(rn__cron_parse("1 2 3 4 9", &c, NULL, 0), RN_EINVAL);
  cr_expect_eq(memcmp(&c, &before, sizeof(c)), 0);
}

Test(cron_parse, truncates_the_reason_to_the_buffer_it_is_given) {
  rn__cron_t c;
  char err[12];
  memset(err, 'x', sizeof(err));
  cr_assert_eq(rn__cron_parse("* 25 * * *", &c, err, sizeof(err)),
               RN_EINVAL);
  cr_expect_eq(strlen(err), sizeof(err) - 1);
  cr_expect_str_eq(err, "hour field ");
}

Test(cron_parse, rejects_a_null_expression) {
  rn__cron_t c;
  char err[64];
  cr_expect_eq(rn__cron_parse(NULL, &c, err, sizeof(err)), RN_EINVAL);
  cr_expect_neq(err[0], '\0');
}

/* -------------------------------------------------------- next: other */

Test(cron_next, gives_up_quickly_on_a_date_that_never_exists, .timeout = 5) {
  rn__cron_t c = parse_ok("0 0 30 2 *");
  for (int64_t t = at("1970-01-01T00:00:00Z"); t < at("2100-01-01T00:00:00Z");
       t += 86400 * 97)
    cr_assert_eq(rn__cron_next(&c, t), -1);
}

Test(cron_next, answers_within_five_years_but_not_beyond) {
  rn__cron_t c = parse_ok("0 0 29 2 *");
  /* 2096-02-29 is then 4 years and a day away; 2104 would be 8 years. */
  cr_expect_eq(rn__cron_next(&c, at("2092-02-29T00:00:00Z")),
               at("2096-02-29T00:00:00Z"));
  cr_expect_eq(rn__cron_next(&c, at("2096-02-29T00:00:00Z")), -1);
}

Test(cron_next, returns_minute_aligned_times) {
  rn__cron_t c = parse_ok("* * * * *");
  int64_t t = at("2026-03-01T10:00:00Z");
  for (int s = 0; s < 60; s += 7)
    cr_expect_eq(rn__cron_next(&c, t + s), t + 60);
  cr_expect_eq(rn__cron_next(&c, t - 1), t);
}

Test(cron_next, does_not_overflow_at_the_extremes_of_time) {
  rn__cron_t c = parse_ok("* * * * *");
  cr_expect_eq(rn__cron_next(&c, INT64_MAX), -1);
  cr_expect_eq(rn__cron_next(&c, INT64_MAX - 100), -1);
  cr_expect_eq(rn__cron_next(&c, INT64_MIN), -1);
}

Test(cron_next, returns_none_for_a_set_that_cannot_match) {
  rn__cron_t c = parse_ok("* * * * *");
  c.months = 0;
  cr_expect_eq(rn__cron_next(&c, 0), -1);
  cr_expect_eq(rn__cron_next(NULL, 0), -1);
}

/* Compares against the minute-by-minute reference from many start times. */
struct brute_case {
  char expr[40];
};

ParameterizedTestParameters(cron_next, agrees_with_a_minute_by_minute_search) {
  static struct brute_case cases[] = {
      {"*/7 3-5 * * *"},   {"0 0 13 * FRI"},  {"30 */6 1,15 * MON"},
      {"0 0 */2 * MON"},   {"15 10 31 * *"},  {"5 0 1-7 * SUN"},
      {"59 23 28-31 * *"}, {"0 12 * * 6,7"},
  };
  return cr_make_param_array(struct brute_case, cases,
                             sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct brute_case *bc, cron_next,
                  agrees_with_a_minute_by_minute_search) {
  rn__cron_t c = parse_ok(bc->expr);
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  /* Starts spread over three centuries, on both sides of the epoch. */
  int64_t base = at("1900-01-01T00:00:00Z");
  for (int i = 0; i < 8; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    int64_t from = base + (int64_t)((seed >> 16) % (300ull * 365 * 86400));
    int64_t want = -1;
    /* 70 days covers the longest gap above (31 March to 31 May). */
    int64_t first = from - (from % 60 + 60) % 60 + 60; /* next minute */
    for (int64_t t = first; t <= from + 70 * 86400; t += 60) {
      if (brute_matches(&c, t)) {
        want = t;
        break;
      }
    }
    char got_s[32], want_s[32], from_s[32];
    fmt(rn__cron_next(&c, from), got_s, sizeof(got_s));
    fmt(want, want_s, sizeof(want_s));
    fmt(from, from_s, sizeof(from_s));
    cr_expect_str_eq(got_s, want_s, "\"%s\" after %s", bc->expr, from_s);
  }
}

/* ------------------------------------------------------- can it fire? */

struct fire_case {
  char expr[40];
  bool fires;
};

ParameterizedTestParameters(cron_can_fire,
                            is_false_exactly_when_no_calendar_date_matches) {
  static struct fire_case cases[] = {
      {"0 0 30 2 *", false},
      {"0 0 31 4 *", false},
      {"0 0 30,31 2 *", false},
      {"0 0 31 2,4,6,9,11 *", false},
      /* a weekday field starting with '*' narrows the day instead */
      {"0 0 30 2 */2", false},
      {"0 0 31 4,5 *", true},
      {"0 0 29 2 *", true},
      /* 29 February that is a Sunday: 2032, then 2060 */
      {"0 0 29 2 */7", true},
      /* both day fields restricted: either matches, so Mondays do */
      {"0 0 30 2 1", true},
      {"0 0 */31 2 *", true},
      {"0 0 31 * *", true},
      {"* * * * *", true},
  };
  return cr_make_param_array(struct fire_case, cases,
                             sizeof(cases) / sizeof(cases[0]));
}

/* rn__cron_next looks five years ahead; chained, it covers the whole
 * 400-year Gregorian cycle, after which the calendar repeats. */
static bool next_finds_a_match_within_400_years(const rn__cron_t *c) {
  int64_t t = at("2026-01-01T00:00:00Z");
  for (int i = 0; i <= 80; i++, t += (int64_t)5 * 365 * 86400)
    if (rn__cron_next(c, t) != -1)
      return true;
  return false;
}

ParameterizedTest(struct fire_case *fc, cron_can_fire,
                  is_false_exactly_when_no_calendar_date_matches) {
  rn__cron_t c = parse_ok(fc->expr);
  cr_expect_eq(rn__cron_can_fire(&c), fc->fires, "\"%s\"", fc->expr);
  cr_expect_eq(next_finds_a_match_within_400_years(&c), fc->fires,
               "\"%s\": rn__cron_next disagrees", fc->expr);
}

Test(cron_can_fire, is_false_for_a_set_that_cannot_match) {
  rn__cron_t c = parse_ok("* * * * *");
  c.hours = 0;
  cr_expect(!rn__cron_can_fire(&c));
}
