/*
 * ninjaone/client.h - the NinjaOne public API v2 client shared by the
 * NinjaOne plugins.
 *
 * It uses only the host's services (http_request, work_queue, timer_start,
 * rate_configure, log, now_ms, and rate_pause where the host has it) through
 * the rn_host_t handed to the plugin, so it runs inside any plugin. Everything
 * here runs on the loop thread unless said otherwise.
 *
 * Ownership words as in regentra/plugin.h: new, borrowed, copied.
 */
#ifndef NINJAONE_CLIENT_H
#define NINJAONE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "regentra/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- regions */

typedef enum nj_region_e {
  NJ_REGION_US = 0, /* app.ninjarmm.com */
  NJ_REGION_US2,    /* us2.ninjarmm.com */
  NJ_REGION_EU,     /* eu.ninjarmm.com */
  NJ_REGION_CA,     /* ca.ninjarmm.com */
  NJ_REGION_OC,     /* oc.ninjarmm.com */
  NJ_REGION_COUNT
} nj_region_t;

/* The region names as an RN_OPT_ENUM choice list. */
#define NJ_REGION_CHOICES "us|us2|eu|ca|oc"

/* "us", "us2", "eu", "ca", "oc" (case-insensitive). 0 or RN_EINVAL. */
int nj_region_parse(const char *name, nj_region_t *out);
const char *nj_region_name(nj_region_t region); /* "eu" */
const char *nj_region_host(nj_region_t region); /* "eu.ninjarmm.com" */

/* ------------------------------------------------------------- client */

typedef struct nj_client_s nj_client_t;

typedef struct nj_client_opts_s {
  nj_region_t region;
  /* Replaces https://<region host> (tests, proxies, white-label hosts),
   * e.g. "http://127.0.0.1:8080/eu"; no trailing slash needed. Copied. */
  const char *base_url;
  const char *ca_file;   /* extra trust anchor; copied; NULL = none */
  const char *client_id; /* copied */
  /* The client secret: copied, held only while the client lives, wiped
   * with sodium_memzero when it is freed. Never logged. */
  const char *client_secret;
  size_t client_secret_len;
  /* Rate budget of this credential + region, shared by every client and
   * job that uses them: 0 = 200 a minute, 1,500 an hour. */
  uint32_t rate_per_minute;
  uint32_t rate_per_hour;
  bool rate_limit_off;  /* no budget (benchmarks); pauses still apply */
  uint32_t timeout_ms;  /* per request; 0 = 60,000 */
  uint32_t max_retries; /* 5xx / transport / bad JSON; 0 = 4 */
  uint32_t max_throttle_retries; /* 429 / HTML throttle page; 0 = 8 */
  uint32_t backoff_base_ms;      /* first retry delay; 0 = 1,000 */
  uint32_t backoff_max_ms;       /* 0 = 30,000 */
  uint32_t max_orgs;             /* organizations cap; 0 = 5,000 */
  uint32_t max_devices_per_org;  /* device walks cap; 0 = 10,000 */
  /* Pages of this credential + region in flight or held at once, across
   * every walk and client of the plugin (the plugin as a whole holds at
   * most 8): memory is bounded by these caps, not by the number of walks.
   * 0 = 4. */
  uint32_t max_pages_in_flight;
  /* ABI-free struct: fields are only appended. */
} nj_client_opts_t;

/* ------------------------------------------------- plugin settings */

/* The source every NinjaOne plugin declares (rn_plugin_t.source). */
#define NJ_SOURCE "ninjaone"

/* The keys of the one [source "ninjaone"] section all NinjaOne plugins
 * read: where each region's API lives (tests, proxies, white-label hosts),
 * an extra CA, and the request budget of a credential. Every NinjaOne
 * plugin declares exactly these as its source_options (the host refuses
 * plugins of one source whose schemas differ). */
#define NJ_CONNECTION_OPTIONS                                                  \
  RN_OPTION(.name = "base_url_us", .type = RN_OPT_URL,                         \
            .help = "replaces https://app.ninjarmm.com (proxies, white-label " \
                    "hosts)"),                                                 \
      RN_OPTION(.name = "base_url_us2", .type = RN_OPT_URL,                    \
                .help = "replaces https://us2.ninjarmm.com"),                  \
      RN_OPTION(.name = "base_url_eu", .type = RN_OPT_URL,                     \
                .help = "replaces https://eu.ninjarmm.com"),                   \
      RN_OPTION(.name = "base_url_ca", .type = RN_OPT_URL,                     \
                .help = "replaces https://ca.ninjarmm.com"),                   \
      RN_OPTION(.name = "base_url_oc", .type = RN_OPT_URL,                     \
                .help = "replaces https://oc.ninjarmm.com"),                   \
      RN_OPTION(.name = "ca_file", .type = RN_OPT_PATH,                        \
                .help =                                                        \
                    "extra certificate authority (TLS is always verified)"),   \
      RN_OPTION(.name = "rate_per_minute", .type = RN_OPT_INT,                 \
                .default_value = "200", .min = 1, .max = 100000,               \
                .help = "request budget per credential and region"),           \
      RN_OPTION(.name = "rate_per_hour", .type = RN_OPT_INT,                   \
                .default_value = "1500", .min = 1, .max = 1000000,             \
                .help = "request budget per credential and region")

typedef struct nj_connection_s {
  const char *base_url[NJ_REGION_COUNT]; /* NULL = the region's real host */
  const char *ca_file;                   /* NULL = the system store */
  uint32_t rate_per_minute, rate_per_hour;
} nj_connection_t;

/* Reads the NJ_CONNECTION_OPTIONS of a plugin's validated config (the host
 * merges the [source "ninjaone"] values into it); strings
 * are borrowed from the host for the life of the load. */
void nj_connection_read(const rn_host_t *host, const rn_config_t *config,
                        nj_connection_t *out);
/* Sets region, base_url, ca_file and the rate budget of opts. */
void nj_connection_apply(const nj_connection_t *connection, nj_region_t region,
                         nj_client_opts_t *opts);

/* Creates a client. On failure returns a negative error and writes a
 * sentence to err (never containing the secret). The client must be freed
 * after every request and walk it started has called back. */
int nj_client_new(const rn_host_t *host, rn_ctx_t *ctx,
                  const nj_client_opts_t *opts, nj_client_t **out, char *err,
                  size_t errlen);
void nj_client_free(nj_client_t *client);

/* Base URL in use (borrowed) and the region's name for messages. */
const char *nj_client_base_url(const nj_client_t *client);
/* The limiter key of this credential + region (borrowed): "ninjaone/<region>/
 * <hash of the client id>". */
const char *nj_client_rate_key(const nj_client_t *client);
/* Scope granted with the last token (borrowed, NULL before one). */
const char *nj_client_granted_scope(const nj_client_t *client);

typedef enum nj_endpoint_e {
  NJ_EP_ORGANIZATIONS = 0, /* /v2/organizations, after-id */
  NJ_EP_DEVICES_DETAILED,  /* /v2/devices-detailed, after-id */
  NJ_EP_VOLUMES,           /* /v2/queries/volumes?include=bl, cursor */
  NJ_EP_AV_STATUS,         /* /v2/queries/antivirus-status, cursor */
  NJ_EP_OS_PATCHES,        /* /v2/queries/os-patches, cursor */
  NJ_EP_SOFTWARE_PATCHES,  /* /v2/queries/software-patches, cursor */
  NJ_EP_ACTIVITIES,        /* /v2/activities, olderThan */
  NJ_EP_COUNT
} nj_endpoint_t;

const char *nj_endpoint_path(nj_endpoint_t ep); /* "/v2/queries/volumes" */

typedef struct nj_client_stats_s {
  uint64_t requests;       /* API requests sent (retries included) */
  uint64_t token_requests; /* token endpoint calls */
  uint64_t retries;        /* after 5xx, transport errors, bad JSON */
  uint64_t throttled;      /* 429s and HTML throttle pages seen */
  uint64_t renewals_401;   /* token renewals after a 401 */
  /* API requests by endpoint (retries included); they add up to requests. */
  uint64_t endpoint_requests[NJ_EP_COUNT];
  uint64_t token_cache_hits; /* tokens taken from the process's cache */
  uint64_t throttled_429;    /* of throttled: 429 answers */
  uint64_t throttle_pages;   /* of throttled: HTML throttle pages */
} nj_client_stats_t;
void nj_client_get_stats(const nj_client_t *client, nj_client_stats_t *out);
void nj_client_stats_add(nj_client_stats_t *sum, const nj_client_stats_t *add);
/* The figures of a run as a JSON object (new): requests (API requests,
 * retries included), token_requests, retries, throttled (429s plus throttle
 * pages), throttled_429, throttle_pages and by_endpoint {path: requests,
 * the token endpoint included}. NULL when out of memory. */
json_t *nj_client_stats_json(const nj_client_stats_t *stats);

/* Makes sure a token is at hand: cb is called once with 0 or the error and
 * a sentence (borrowed). No API request is made: the token comes from the
 * process's cache when one is there (every client of the same base URL,
 * client id and secret shares it, across plugins when the host has the
 * token cache of ABI 1.2), or from one token request that every client of
 * the credential waiting at that moment shares. */
typedef void (*nj_status_cb)(nj_client_t *client, int status,
                             const char *message, void *data);
int nj_client_authenticate(nj_client_t *client, nj_status_cb cb, void *data);

/* --------------------------------------------------------- decoded rows */

/* Absent values: strings NULL, numbers NJ_ABSENT / NAN, tri-state booleans
 * -1 (0 false, 1 true). Every string is borrowed for the page callback. */
#define NJ_ABSENT INT64_MIN

typedef struct nj_org_s {
  int64_t id;
  const char *name;
  const char *description;
  const char *node_approval_mode;
} nj_org_t;

typedef struct nj_disk_s { /* volumes[] of a device-detailed record */
  const char *name;
  const char *drive_letter;
  const char *label;
  const char *device_type;
  const char *file_system;
  int64_t capacity;
  int64_t free_space;
} nj_disk_t;

typedef struct nj_device_s {
  int64_t id;
  const char *uid;
  int64_t parent_device_id;
  int64_t organization_id;
  int64_t location_id;
  const char *node_class;
  int64_t node_role_id;
  int64_t role_policy_id;
  int64_t policy_id;
  const char *approval_status;
  int offline; /* tri-state */
  const char *display_name;
  const char *system_name;
  const char *dns_name;
  const char *netbios_name;
  double created; /* epoch seconds */
  double last_contact;
  double last_update;
  const char *device_type; /* AgentDevice, VMHost, ... */
  const char *public_ip;
  const char *const *ip_addresses;
  size_t n_ip_addresses;
  const char *const *mac_addresses;
  size_t n_mac_addresses;
  const char *last_logged_in_user;
  struct {
    const char *manufacturer, *name, *architecture, *build_number, *release_id;
    double last_boot_time;
    int needs_reboot;
  } os;
  struct {
    const char *manufacturer, *model, *serial_number, *bios_serial_number,
        *domain, *chassis_type;
    int virtual_machine;
  } system;
  int64_t memory_capacity;
  const nj_disk_t *disks;
  size_t n_disks;
} nj_device_t;

/* The one approval rule of every NinjaOne plugin: a device is approved
 * only when its record says approvalStatus APPROVED. A record without the
 * field is not approved (not an asset, out of evidence scope): approval is
 * a state NinjaOne always reports, so a record that omits it proves
 * nothing, and counting it would put unvetted devices in the PSA asset list
 * and in compliance evidence. */
static inline bool nj_device_approved(const nj_device_t *d) {
  return d->approval_status && strcmp(d->approval_status, "APPROVED") == 0;
}

typedef struct nj_bitlocker_s {
  bool present;
  const char *conversion_status;
  const char *encryption_method;
  const char *protection_status;
  const char *lock_status;
  int initialized_for_protection;
} nj_bitlocker_t;

typedef struct nj_volume_s { /* /v2/queries/volumes */
  int64_t device_id;
  const char *name;
  const char *drive_letter;
  const char *label;
  const char *device_type;
  const char *file_system;
  int auto_mount;
  int compressed;
  int64_t capacity;
  int64_t free_space;
  const char *serial_number;
  double timestamp;
  nj_bitlocker_t bitlocker;
} nj_volume_t;

typedef struct nj_av_status_s {
  int64_t device_id;
  const char *product_name;
  const char *product_state;
  const char *definition_status;
  const char *version;
  double timestamp;
} nj_av_status_t;

typedef struct nj_os_patch_s {
  const char *id;
  int64_t device_id;
  const char *name;
  const char *kb_number;
  const char *severity;
  const char *status;
  const char *type;
  double timestamp;
  double installed_at;
} nj_os_patch_t;

typedef struct nj_sw_patch_s {
  const char *id;
  int64_t device_id;
  const char *product_identifier;
  const char *title;
  const char *impact;
  const char *status;
  const char *type;
  double timestamp;
  double installed_at;
} nj_sw_patch_t;

typedef struct nj_activity_s {
  int64_t id;
  double activity_time;
  int64_t device_id;
  const char *severity;
  const char *priority;
  const char *series_uid;
  const char *activity_type;
  const char *status_code;
  const char *status;
  const char *activity_result;
  const char *source_config_uid;
  const char *source_name;
  const char *subject;
  int64_t user_id;
  const char *message;
  const char *type;
} nj_activity_t;

/* ------------------------------------------------------------ walkers */

/* One decoded page; rows borrowed for the callback. Exactly one of the
 * arrays is set, by endpoint. */
typedef struct nj_page_s {
  nj_endpoint_t endpoint;
  unsigned page; /* 1-based */
  size_t count;
  const nj_org_t *orgs;
  const nj_device_t *devices;
  const nj_volume_t *volumes;
  const nj_av_status_t *av;
  const nj_os_patch_t *os_patches;
  const nj_sw_patch_t *sw_patches;
  const nj_activity_t *activities;
} nj_page_t;

typedef struct nj_walk_result_s {
  int status;          /* 0, or the error that ended the walk */
  const char *message; /* borrowed; NULL when status is 0 */
  unsigned pages;      /* pages delivered */
  uint64_t rows;       /* rows delivered */
  uint64_t requests;   /* HTTP requests made for this walk */
  /* The walk did not see every row: a cap was hit, an error or a
   * cancellation stopped it, or the page callback asked to stop. */
  bool truncated;
  bool cap_hit;
} nj_walk_result_t;

typedef struct nj_walk_s nj_walk_t;

/* Called once per page, in order. Return 0 to go on; a negative value stops
 * the walk (truncated, with that status). On the loop thread unless
 * `pages_on_worker` is set: then on a worker thread, right after the page
 * was decoded, where only the plugin's own data may be touched. */
typedef int (*nj_page_cb)(const nj_page_t *page, void *data);
/* Called exactly once at the end; result borrowed. */
typedef void (*nj_walk_cb)(nj_walk_t *walk, const nj_walk_result_t *result,
                           void *data);

typedef struct nj_walk_opts_s {
  nj_endpoint_t endpoint;
  const char *df;     /* device filter, copied; encoded by the client */
  const char *query;  /* extra "k=v&k2=v2", copied, already encoded */
  uint32_t page_size; /* 0 = 1,000 (activities: clamped to 10..1000) */
  /* Row cap: 0 = the client's default for the endpoint (organizations:
   * max_orgs; devices: max_devices_per_org; others: none). */
  uint64_t max_rows;
  bool pages_on_worker;
} nj_walk_opts_t;

/* Starts a walk: returns 0 and calls done exactly once, or a negative error
 * and calls nothing. *out (optional) is valid until done runs. */
int nj_walk_start(nj_client_t *client, const nj_walk_opts_t *opts,
                  nj_page_cb on_page, nj_walk_cb done, void *data,
                  nj_walk_t **out);
/* Stops a walk early: done still runs once, with RN_ECANCELED. */
void nj_walk_cancel(nj_walk_t *walk);

#ifdef __cplusplus
}
#endif
#endif
