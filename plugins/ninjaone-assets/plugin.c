/* plugin.c - ninjaone-assets: the PSA asset sync of the NinjaOne
 * integration, as the job `sync` and `regentra-runner ninjaone sync`. */
#include "assets.h"

const rn_host_t *host;

static const rn_option_t plugin_options[] = {
    {.name = "base_url_us", .type = RN_OPT_URL,
     .help = "replaces https://app.ninjarmm.com (proxies, white-label hosts)"},
    {.name = "base_url_us2", .type = RN_OPT_URL,
     .help = "replaces https://us2.ninjarmm.com"},
    {.name = "base_url_eu", .type = RN_OPT_URL,
     .help = "replaces https://eu.ninjarmm.com"},
    {.name = "base_url_ca", .type = RN_OPT_URL,
     .help = "replaces https://ca.ninjarmm.com"},
    {.name = "base_url_oc", .type = RN_OPT_URL,
     .help = "replaces https://oc.ninjarmm.com"},
    {.name = "ca_file", .type = RN_OPT_PATH,
     .help = "extra certificate authority to trust (TLS is always verified)"},
    {.name = "max_devices_per_org", .type = RN_OPT_INT,
     .default_value = "10000", .min = 1, .max = 1000000,
     .help = "devices read per organization; more is recorded as truncated"},
    {.name = "concurrency", .type = RN_OPT_INT, .default_value = "4",
     .min = 1, .max = 64,
     .help = "organizations walked at once per run (bounds memory)"},
    {.name = "rate_per_minute", .type = RN_OPT_INT, .default_value = "200",
     .min = 1, .max = 100000, .help = "request budget per credential"},
    {.name = "rate_per_hour", .type = RN_OPT_INT, .default_value = "1500",
     .min = 1, .max = 1000000, .help = "request budget per credential"},
    {0},
};

static int assets_create(rn_ctx_t *ctx, const rn_config_t *config,
                         void **state) {
  (void)ctx;
  assets_state_t *s = host->calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  static const char *const keys[NJ_REGION_COUNT] = {
      "base_url_us", "base_url_us2", "base_url_eu", "base_url_ca",
      "base_url_oc"};
  for (int r = 0; r < NJ_REGION_COUNT; r++)
    s->base_url[r] = host->config_str(config, keys[r]);
  s->ca_file = host->config_str(config, "ca_file");
  s->max_devices_per_org =
      (uint32_t)host->config_int(config, "max_devices_per_org");
  s->concurrency = (uint32_t)host->config_int(config, "concurrency");
  s->rate_per_minute = (uint32_t)host->config_int(config, "rate_per_minute");
  s->rate_per_hour = (uint32_t)host->config_int(config, "rate_per_hour");
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
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  return &descriptor;
}
