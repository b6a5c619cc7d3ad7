/* libFuzzer target: the PII guard takes any bytes as signal metadata and
 * either accepts them or names the path it refused, never the value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "regentra/devsrc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *json = malloc(size + 1);
  if (!json)
    return 0;
  memcpy(json, data, size);
  json[size] = '\0';
  char err[512] = "";
  int rc = rn_pii_check(json, err, sizeof err);
  if (rc != 0 && err[0] == '\0')
    abort();
  free(json);
  return 0;
}
