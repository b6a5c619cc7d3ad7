/* plugin.c - ninjaone-assets: the PSA asset sync of the NinjaOne
 * integration, as the job `sync` and `regentra-runner ninjaone sync`. */
#include "assets.h"

const rn_host_t *host;

/* The connection: one [source "ninjaone"] section for every NinjaOne
 * plugin. */
static const rn_option_t source_options[] = {NJ_CONNECTION_OPTIONS, {0}};

static const rn_option_t plugin_options[] = {
    RN_OPTION(
            .name = "max_devices_per_org", .type = RN_OPT_INT,
            .default_value = "10000", .min = 1, .max = 1000000,
            .help =
                "devices read per organization; more is recorded as truncated"),
    RN_OPTION(.name = "concurrency", .type = RN_OPT_INT, .default_value = "4",
              .min = 1, .max = 64,
              .help = "organizations walked at once per run (bounds memory)"),
    {0},
};

static int assets_create(rn_ctx_t *ctx, const rn_config_t *config,
                         void **state) {
  (void)ctx;
  assets_state_t *s = host->calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  nj_connection_read(host, config, &s->connection);
  s->max_devices_per_org =
      (uint32_t)host->config_int(config, "max_devices_per_org");
  s->concurrency = (uint32_t)host->config_int(config, "concurrency");
  *state = s;
  return 0;
}

static void assets_destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  host->free(state);
}

static const rn_job_def_t *const jobs[] = {&job_sync, NULL};

static const rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "ninjaone-assets",
    .version = "0.1.0",
    .summary = "NinjaOne PSA asset sync: approved devices of mapped "
               "organizations become company assets",
    .options = plugin_options,
    .create = assets_create,
    .destroy = assets_destroy,
    .jobs = jobs,
    .command_group = "ninjaone",
    .source = NJ_SOURCE,
    .source_options = source_options,
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  return &descriptor;
}
