/* plugin.c - ninjaone-mapping: the NinjaOne credential lifecycle and the
 * organization mapping review, as jobs and `regentra-runner ninjaone ...`
 * commands, on the integration card of the source kit. */
#include <stdlib.h>
#include <string.h>

#include "mapping.h"

const rn_host_t *host;

/* The connection: one [source "ninjaone"] section for every NinjaOne
 * plugin. */
static const rn_option_t source_options[] = {NJ_CONNECTION_OPTIONS, {0}};

static const rn_option_t plugin_options[] = {
    RN_OPTION(.name = "max_orgs", .type = RN_OPT_INT, .default_value = "5000",
              .min = 1, .max = 1000000, .help = "discovery cap"),
    {0},
};

static int mapping_create(rn_ctx_t *ctx, const rn_config_t *config,
                          void **state) {
  (void)ctx;
  mapping_state_t *s = host->calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  nj_connection_read(host, config, &s->connection);
  s->max_orgs = (uint32_t)host->config_int(config, "max_orgs");
  *state = s;
  return 0;
}

static void mapping_destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  host->free(state);
}

/* The jobs come from the integration card: test, connect, orgs, map,
 * disconnect and status, then plan and check_config. */
static rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "ninjaone-mapping",
    .version = "0.1.0",
    .summary = "NinjaOne credential lifecycle and organization mapping",
    .options = plugin_options,
    .create = mapping_create,
    .destroy = mapping_destroy,
    .command_group = "ninjaone",
    .source = NJ_SOURCE,
    .source_options = source_options,
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  descriptor.jobs = rk_card_jobs(h, &nj_card_provider);
  return descriptor.jobs ? &descriptor : NULL;
}
