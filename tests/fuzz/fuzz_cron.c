/* libFuzzer target: the cron parser and next-tick search never crash, and a
 * parsed schedule's next tick really matches it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char expr[256];
  if (size >= sizeof expr)
    return 0;
  memcpy(expr, data, size);
  expr[size] = '\0';
  rn__cron_t cron;
  char err[256];
  if (rn__cron_parse(expr, &cron, err, sizeof err) != 0) {
    if (err[0] == '\0')
      abort(); /* a refusal always says why */
    return 0;
  }
  int64_t next = rn__cron_next(&cron, 1767225600); /* 2026-01-01 */
  if (next != -1 && (next <= 1767225600 || next % 60 != 0))
    abort();
  if (next != -1 && rn__cron_next(&cron, next - 60) != next)
    abort(); /* the tick just found is the first one after the minute before */
  return 0;
}
