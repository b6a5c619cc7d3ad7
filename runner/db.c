/* db.c - PostgreSQL for plugins and the queue. */
#include "internal.h"

void rn__db_fill_host(rn_host_t *host) { (void)host; }
