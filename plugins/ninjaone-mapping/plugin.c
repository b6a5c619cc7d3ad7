/* plugin.c - ninjaone-mapping: the NinjaOne credential lifecycle and the
 * organization mapping review, as jobs and `regentra-runner ninjaone ...`
 * commands. */
#include <stdlib.h>
#include <string.h>

#include "mapping.h"

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
    {.name = "max_orgs", .type = RN_OPT_INT, .default_value = "5000",
     .min = 1, .max = 1000000, .help = "discovery cap"},
    {.name = "rate_per_minute", .type = RN_OPT_INT, .default_value = "200",
     .min = 1, .max = 100000, .help = "request budget per credential"},
    {.name = "rate_per_hour", .type = RN_OPT_INT, .default_value = "1500",
     .min = 1, .max = 1000000, .help = "request budget per credential"},
    {0},
};

static int mapping_create(rn_ctx_t *ctx, const rn_config_t *config,
                          void **state) {
  (void)ctx;
  mapping_state_t *s = host->calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  static const char *const keys[NJ_REGION_COUNT] = {
      "base_url_us", "base_url_us2", "base_url_eu", "base_url_ca",
      "base_url_oc"};
  for (int r = 0; r < NJ_REGION_COUNT; r++)
    s->base_url[r] = host->config_str(config, keys[r]);
  s->ca_file = host->config_str(config, "ca_file");
  s->max_orgs = (uint32_t)host->config_int(config, "max_orgs");
  s->rate_per_minute = (uint32_t)host->config_int(config, "rate_per_minute");
  s->rate_per_hour = (uint32_t)host->config_int(config, "rate_per_hour");
  *state = s;
  return 0;
}

static void mapping_destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  host->free(state);
}

static const rn_job_def_t *const jobs[] = {
    &job_test, &job_connect, &job_orgs, &job_map, &job_disconnect,
    &job_status, NULL};

static const rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "ninjaone-mapping",
    .version = "0.1.0",
    .summary = "NinjaOne credential lifecycle and organization mapping",
    .options = plugin_options,
    .create = mapping_create,
    .destroy = mapping_destroy,
    .jobs = jobs,
    .command_group = "ninjaone",
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  return &descriptor;
}
