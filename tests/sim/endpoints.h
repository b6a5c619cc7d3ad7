/* Endpoint families. Each handler runs after routing, authentication,
 * rate limiting and fault picking, and fills res. */
#ifndef SIM_ENDPOINTS_H
#define SIM_ENDPOINTS_H

#include "sim.h"

/* /v2/organizations and /v2/organizations-detailed (after-id paging). */
void sim_ep_organizations(sim_t *sim, sim_request_t *req, sim_response_t *res);
void sim_ep_organizations_detailed(sim_t *sim, sim_request_t *req, sim_response_t *res);
/* /v2/devices and /v2/devices-detailed (df, after-id paging). */
void sim_ep_devices(sim_t *sim, sim_request_t *req, sim_response_t *res);
void sim_ep_devices_detailed(sim_t *sim, sim_request_t *req, sim_response_t *res);
/* /v2/queries/... (cursor wrapper). */
void sim_ep_volumes(sim_t *sim, sim_request_t *req, sim_response_t *res);
void sim_ep_antivirus_status(sim_t *sim, sim_request_t *req, sim_response_t *res);
void sim_ep_os_patches(sim_t *sim, sim_request_t *req, sim_response_t *res);
void sim_ep_software_patches(sim_t *sim, sim_request_t *req, sim_response_t *res);
/* /v2/activities (olderThan paging, newest first). */
void sim_ep_activities(sim_t *sim, sim_request_t *req, sim_response_t *res);
/* /v2/backup/jobs (cursor wrapper). */
void sim_ep_backup_jobs(sim_t *sim, sim_request_t *req, sim_response_t *res);

/* Shared by the device endpoints and control responses. */
void sim_render_device(sim_json_t *j, const sim_fleet_t *fleet, const sim_device_t *dev,
                       bool detailed);
/* True when the request's client may see the device's organization. */
bool sim_device_visible(const sim_fleet_t *fleet, const sim_request_t *req,
                        const sim_device_t *dev);

#endif
