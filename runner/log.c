/* log.c - one line per event on stderr: time, level, prefix, message. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"
#include "progress.h"

static int log_threshold = RN_LOG_INFO;

static const struct {
  int level;
  const char *name;
} level_names[] = {
    {RN_LOG_ERR, "error"},   {RN_LOG_WARNING, "warning"},
    {RN_LOG_NOTICE, "notice"}, {RN_LOG_INFO, "info"},
    {RN_LOG_DEBUG, "debug"},
};

void rn__log_set_level(int level) { log_threshold = level; }
int rn__log_level(void) { return log_threshold; }

int rn__log_parse_level(const char *text) {
  for (size_t i = 0; i < RN_ARRAY_SIZE(level_names); i++)
    if (strcasecmp(text, level_names[i].name) == 0)
      return level_names[i].level;
  if (strcasecmp(text, "warn") == 0)
    return RN_LOG_WARNING;
  return -1;
}

static const char *level_name(int level) {
  for (size_t i = 0; i < RN_ARRAY_SIZE(level_names); i++)
    if (level_names[i].level == level)
      return level_names[i].name;
  return level < RN_LOG_ERR ? "error" : "debug";
}

void rn__logv(int level, const char *prefix, const char *fmt, va_list ap) {
  if (level > log_threshold)
    return;
  /* Build the whole line first so concurrent writers never interleave. */
  char line[4096];
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  int n = snprintf(line, sizeof line,
                   "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000,
                   level_name(level), prefix ? prefix : "runner");
  if (n < 0)
    return;
  if ((size_t)n < sizeof line)
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  size_t len = strnlen(line, sizeof line - 2);
  /* A message is one line: fold embedded newlines. */
  for (size_t i = 0; i < len; i++)
    if (line[i] == '\n' || line[i] == '\r')
      line[i] = ' ';
  line[len++] = '\n';
  rn__progress_log_write(line, len);
}

void rn__log(int level, const char *prefix, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rn__logv(level, prefix, fmt, ap);
  va_end(ap);
}
