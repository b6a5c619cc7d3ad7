/* plugin.c - ninjaone-evidence: the compliance evidence sweep of the
 * NinjaOne integration, as two jobs (and `regentra-runner ninjaone ...`
 * commands): `sweep` fans out one event per compliance-promoted customer,
 * `customer` sweeps one. */
#include <stdio.h>
#include <string.h>

#include "evidence.h"

const rn_host_t *host;

/* The connection: one [source "ninjaone"] section for every NinjaOne
 * plugin. */
static const rn_option_t source_options[] = {NJ_CONNECTION_OPTIONS, {0}};

static const rn_option_t plugin_options[] = {
    RN_OPTION(
            .name = "max_devices_per_org", .type = RN_OPT_INT,
            .default_value = "10000", .min = 1, .max = 1000000,
            .help =
                "device cap per customer; a sweep that hits it says truncated"),
    RN_OPTION(
            .name = "backup_activity_types", .type = RN_OPT_STRING,
            .default_value = "NINJA_BACKUP",
            .help =
                "comma-separated activity types that count as backup activity"),
    {0},
};

/* "NINJA_BACKUP, CLOUDBERRY_BACKUP" -> words of [A-Z0-9_]. */
static int parse_types(ev_state_t *s, const char *list) {
  const char *p = list ? list : "";
  while (*p) {
    p += strspn(p, " ,");
    size_t len = strcspn(p, " ,");
    if (!len)
      break;
    if (s->n_backup_types == EV_MAX_BACKUP_TYPES ||
        len >= sizeof s->backup_types[0])
      return RN_ECONFIG;
    for (size_t i = 0; i < len; i++)
      if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
            p[i] == '_'))
        return RN_ECONFIG;
    memcpy(s->backup_types[s->n_backup_types], p, len);
    s->backup_types[s->n_backup_types++][len] = '\0';
    p += len;
  }
  return s->n_backup_types ? 0 : RN_ECONFIG;
}

static int evidence_create(rn_ctx_t *ctx, const rn_config_t *config,
                           void **state) {
  ev_state_t *s = host->calloc(1, sizeof *s);
  if (!s)
    return RN_ENOMEM;
  nj_connection_read(host, config, &s->connection);
  s->max_devices_per_org =
      (uint32_t)host->config_int(config, "max_devices_per_org");
  const char *types = host->config_str(config, "backup_activity_types");
  if (parse_types(s, types) < 0) {
    host->log(ctx, RN_LOG_ERR,
              "backup_activity_types = \"%s\": expected up to %d activity "
              "types such as NINJA_BACKUP, separated by commas",
              types ? types : "", EV_MAX_BACKUP_TYPES);
    host->free(s);
    return RN_ECONFIG;
  }
  *state = s;
  return 0;
}

static void evidence_destroy(rn_ctx_t *ctx, void *state) {
  (void)ctx;
  host->free(state);
}

static const rn_job_def_t *const jobs[] = {&job_sweep, &job_customer, NULL};

static const rn_plugin_t descriptor = {
    .abi_version = RN_ABI_VERSION,
    .struct_size = sizeof(rn_plugin_t),
    .name = "ninjaone-evidence",
    .version = "0.1.0",
    .summary = "NinjaOne compliance evidence sweep: five aggregate-only "
               "signals per compliance-promoted customer",
    .options = plugin_options,
    .create = evidence_create,
    .destroy = evidence_destroy,
    .jobs = jobs,
    .command_group = "ninjaone",
    .source = NJ_SOURCE,
    .source_options = source_options,
};

RN_EXPORT const rn_plugin_t *RN_ENTRY(const rn_host_t *h) {
  host = h;
  return &descriptor;
}
