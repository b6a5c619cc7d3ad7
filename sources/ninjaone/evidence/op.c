/* op.c - what both jobs do the same way: parameters. */
#include <stdio.h>
#include <stdlib.h>

#include "evidence.h"

void ev_itoa(int64_t n, char out[24]) {
  snprintf(out, 24, "%lld", (long long)n);
}

bool ev_param_int(json_t *params, const char *name, int64_t *out) {
  json_t *v = json_object_get(params, name);
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return true;
  }
  /* Events may carry ids as text; accept only a whole decimal number. */
  const char *s = json_string_value(v);
  if (!s || !*s)
    return false;
  char *end;
  long long n = strtoll(s, &end, 10);
  if (*end)
    return false;
  *out = n;
  return true;
}
