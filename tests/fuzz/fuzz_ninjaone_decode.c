/* libFuzzer target: the NinjaOne page decoders. The first byte picks the
 * endpoint; the rest is the body as the upstream sent it. A body is decoded
 * or refused with a message, and a decoded page is walked field by field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nj_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every string of a page so that ASan sees a dangling one. */
static size_t touch(const char *s) { return s ? strlen(s) : 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  nj_endpoint_t ep = (nj_endpoint_t)(data[0] % NJ_EP_COUNT);
  nj_decoded_t decoded;
  bool parse_error;
  char msg[512] = "";
  int rc = nj__decode_page(ep, (const char *)data + 1, size - 1, &decoded,
                           &parse_error, msg, sizeof msg);
  if (rc != 0 && msg[0] == '\0')
    abort();
  if (rc == 0) {
    nj_page_t page;
    nj__decoded_page(&decoded, decoded.count, 1, &page);
    size_t sum = 0;
    for (size_t i = 0; i < page.count; i++) {
      if (page.orgs)
        sum += touch(page.orgs[i].name);
      if (page.devices)
        sum += touch(page.devices[i].system_name) +
               touch(page.devices[i].approval_status);
      if (page.activities)
        sum += touch(page.activities[i].status);
    }
    if (sum == (size_t)-1)
      abort();
  }
  nj__decoded_free(&decoded);
  return 0;
}
