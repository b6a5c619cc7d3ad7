/* http.c - HTTP for plugins: libcurl multi on the loop. */
#include "internal.h"

void rn__http_fill_host(rn_host_t *host) { (void)host; }
