/* settings.c - the [source "ninjaone"] options all NinjaOne plugins share. */
#include "ninjaone/client.h"

void nj_connection_read(const rn_host_t *host, const rn_config_t *config,
                        nj_connection_t *out) {
  static const char *const keys[NJ_REGION_COUNT] = {
      "base_url_us", "base_url_us2", "base_url_eu", "base_url_ca",
      "base_url_oc"};
  for (int r = 0; r < NJ_REGION_COUNT; r++)
    out->base_url[r] = host->config_str(config, keys[r]);
  out->ca_file = host->config_str(config, "ca_file");
  out->rate_per_minute = (uint32_t)host->config_int(config, "rate_per_minute");
  out->rate_per_hour = (uint32_t)host->config_int(config, "rate_per_hour");
}

void nj_connection_apply(const nj_connection_t *connection,
                         nj_region_t region, nj_client_opts_t *opts) {
  opts->region = region;
  opts->base_url = connection->base_url[region];
  opts->ca_file = connection->ca_file;
  opts->rate_per_minute = connection->rate_per_minute;
  opts->rate_per_hour = connection->rate_per_hour;
}
