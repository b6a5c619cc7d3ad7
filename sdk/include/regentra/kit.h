/*
 * regentra/kit.h - the device-source kit: what a source of the common RMM,
 * MDM and PSA shape needs around <regentra/plugin.h> and
 * <regentra/devsrc.h>, written once. Plugins link it statically
 * (libregentra_kit.a, `pkg-config --libs regentra-sdk`); it uses only the
 * host services handed to the plugin.
 *
 *   <regentra/kit/client.h>  the API client: OAuth2 client credentials with
 *                            a per-credential token shared by the process,
 *                            rate budget, retries, throttling, and walkers
 *                            for after-id, cursor and next-link paging.
 *   <regentra/kit/card.h>    the integration card: a provider table that
 *                            drives `GROUP test|connect|orgs|map|sync|
 *                            disconnect|status` with their audit, sealing
 *                            and --json.
 *
 * Compatibility: the kit is versioned like the plugin ABI. A minor release
 * only appends: new functions, new fields at the end of a struct (below its
 * "append below this line" comment) and new hooks. Every struct a plugin
 * fills in starts with struct_size and is written with its *_INIT macro or
 * a designated initializer that sets struct_size, so that a field the
 * plugin's headers did not know reads as zero (NULL, the default). A field
 * is never removed, reordered or given another meaning within a major; that
 * is a new major. A plugin may test RK_KIT_VERSION_MINOR at build time for
 * a feature it needs.
 */
#ifndef REGENTRA_KIT_H
#define REGENTRA_KIT_H

#define RK_KIT_VERSION_MAJOR 1
/* 1.1: the card's sync (rk_provider_t walk_devices, normalize and their
 * words; rk_session_add_device). */
/* 1.2: rk_read_rows, a JSON page read a row at a time. */
#define RK_KIT_VERSION_MINOR 2

#include "regentra/kit/card.h"
#include "regentra/kit/client.h"

#endif
