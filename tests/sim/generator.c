#define _POSIX_C_SOURCE 200809L
#include "generator.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fleet_load.h"
#include "util.h"

#define DAY_MS 86400000LL

void sim_gen_defaults(sim_gen_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->seed = 1;
    opts->regions[0] = SIM_EU;
    opts->n_regions = 1;
    opts->orgs = 10;
    opts->devices_min = opts->devices_max = 25;
    opts->mix_workstation = 70;
    opts->mix_server = 15;
    opts->mix_mac = 10;
    opts->mix_linux = 5;
    opts->encryption_rate = 0.9;
    opts->av_fresh = 85;
    opts->av_aging = 8;
    opts->av_stale = 4;
    opts->av_unprotected = 3;
    opts->patch_backlog = 1.0;
    opts->patch_failed_rate = 0.02;
    opts->backup_rate = 0.5;
    opts->backup_failure_rate = 0.05;
    opts->offline_rate = 0.1;
    opts->pending_rate = 0.02;
}

static const char *const name_first[] = {
    "Northwind", "Contoso", "Fabrikam", "Tailspin", "Adventure", "Blue Ridge", "Harbor",
    "Summit", "Riverside", "Oakwood", "Granite", "Cedar", "Silverline", "Lakeshore",
    "Pinecrest", "Redwood", "Ironbridge", "Maple", "Westfield", "Eastgate", "Brightwater",
    "Highland", "Coastal", "Meridian", "Sterling", "Evergreen", "Keystone", "Lighthouse",
    "Crescent", "Falcon", "Horizon", "Juniper", "Kingsley", "Larkspur", "Mariner",
    "Nordic", "Orchard", "Prairie", "Quarry", "Rosewood",
};
static const char *const name_trade[] = {
    "Dental", "Legal", "Accounting", "Logistics", "Medical", "Engineering", "Realty",
    "Insurance", "Veterinary", "Architects", "Manufacturing", "Pharmacy", "Construction",
    "Consulting", "Family Practice", "Wealth", "Marine", "Foods", "Printing", "Design",
    "Orthopedics", "Credit Union", "Schools", "Hospitality", "Auto Group", "Labs",
    "Freight", "Energy", "Clinic", "Partners",
};
static const char *const name_suffix[] = {
    "LLC", "Inc.", "Group", "Ltd", "GmbH", "& Co", "Associates", "Corp", "PLLC", "Services",
};

enum { N_FIRST = 40, N_TRADE = 30, N_SUFFIX = 10 };
_Static_assert(sizeof name_first / sizeof name_first[0] == N_FIRST, "name list size");
_Static_assert(sizeof name_trade / sizeof name_trade[0] == N_TRADE, "name list size");
_Static_assert(sizeof name_suffix / sizeof name_suffix[0] == N_SUFFIX, "name list size");

static void org_name(uint32_t index, char *out, size_t n)
{
    const uint32_t total = N_FIRST * N_TRADE * N_SUFFIX;
    /* 7919 is prime and coprime to total, so this visits every
     * combination once before repeating. */
    uint32_t k = (uint32_t)(((uint64_t)index * 7919u + 17u) % total);
    int len = snprintf(out, n, "%s %s %s", name_first[k % N_FIRST],
                       name_trade[(k / N_FIRST) % N_TRADE],
                       name_suffix[k / (N_FIRST * N_TRADE)]);
    if (index >= total && len > 0 && (size_t)len < n)
        snprintf(out + len, n - (size_t)len, " %u", index / total + 1);
}

static uint32_t poisson(sim_rng_t *rng, double mean)
{
    if (mean <= 0)
        return 0;
    double limit = exp(-mean), p = 1.0;
    uint32_t k = 0;
    do {
        k++;
        p *= sim_rng_unit(rng);
    } while (p > limit && k < 200);
    return k - 1;
}

static int pick_weighted(sim_rng_t *rng, const double *w, int n)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        total += w[i] > 0 ? w[i] : 0;
    if (total <= 0)
        return 0;
    double x = sim_rng_unit(rng) * total;
    for (int i = 0; i < n; i++) {
        double wi = w[i] > 0 ? w[i] : 0;
        if (x < wi)
            return i;
        x -= wi;
    }
    return n - 1;
}

static const char *const av_products[] = {
    "Microsoft Defender Antivirus", "SentinelOne", "Bitdefender Endpoint Security Tools",
    "Sophos Intercept X", "Webroot SecureAnywhere",
};

static const struct { const char *name; const char *kb; const char *severity; const char *type; } os_patch_catalog[] = {
    {"2025-10 Cumulative Update for Windows 11 Version 23H2 for x64-based Systems (KB5066793)", "KB5066793", "CRITICAL", "SECURITY_UPDATES"},
    {"2025-10 Security Update for Windows Server 2022 (KB5066782)", "KB5066782", "CRITICAL", "SECURITY_UPDATES"},
    {"2025-09 Cumulative Update for .NET Framework 3.5 and 4.8.1 (KB5064401)", "KB5064401", "IMPORTANT", "UPDATE_ROLLUPS"},
    {"Intel - System - 10.1.19444.8378", "", "NONE", "DRIVER_UPDATES"},
    {"Realtek Semiconductor Corp. - Extension - 10.0.22621.31245", "", "NONE", "DRIVER_UPDATES"},
    {"2025-10 Servicing Stack Update (KB5066128)", "KB5066128", "IMPORTANT", "CRITICAL_UPDATES"},
    {"Windows Malicious Software Removal Tool x64 - v5.135 (KB890830)", "KB890830", "MODERATE", "UPDATE_ROLLUPS"},
    {"Feature update to Windows 11, version 24H2", "", "OPTIONAL", "FEATURE_UPDATES"},
};
enum { N_OS_PATCHES = sizeof os_patch_catalog / sizeof os_patch_catalog[0] };

static const struct { const char *title; const char *impact; } sw_patch_catalog[] = {
    {"Google Chrome 141.0.7390.108", "CRITICAL"},
    {"Mozilla Firefox 144.0", "RECOMMENDED"},
    {"Adobe Acrobat Reader DC 25.001.20813", "RECOMMENDED"},
    {"Zoom Workplace 6.6.2", "OPTIONAL"},
    {"7-Zip 25.01", "OPTIONAL"},
    {"Notepad++ 8.8.6", "CRITICAL"},
};
enum { N_SW_PATCHES = sizeof sw_patch_catalog / sizeof sw_patch_catalog[0] };

typedef struct gen {
    const sim_gen_options_t *opts;
    sim_fleet_t *fleet;
    sim_rng_t rng;
    int64_t now_ms;
    /* Interned copies of string constants, keyed by the constant's
     * address: half a million devices ask for "Local Disk" millions of
     * times, and a pointer compare beats a hash lookup. */
    struct { const char *constant; const char *interned; } cache[512];
} gen_t;

/* For string constants only (literals and static tables). */
static const char *intern(gen_t *g, const char *constant)
{
    size_t k = ((uintptr_t)constant >> 3) % 512;
    if (g->cache[k].constant != constant) {
        g->cache[k].constant = constant;
        g->cache[k].interned = sim_pool_intern(g->fleet->pool, constant);
    }
    return g->cache[k].interned;
}

/* For text built in a buffer. */
static const char *intern_text(gen_t *g, const char *text)
{
    return sim_pool_intern(g->fleet->pool, text);
}

static void make_volumes(gen_t *g, sim_device_t *dev, bool windows, bool mac, bool workstation)
{
    sim_rng_t *rng = &g->rng;
    bool second = windows && sim_rng_unit(rng) < (workstation ? 0.1 : 0.6);
    bool removable = workstation && sim_rng_unit(rng) < 0.1;
    uint32_t n = 1 + (second ? 1 : 0) + (removable ? 1 : 0);
    dev->volumes = sim_pool_alloc(g->fleet->pool, sizeof *dev->volumes * n);
    dev->n_volumes = n;
    for (uint32_t i = 0; i < n; i++) {
        sim_volume_t *v = &dev->volumes[i];
        v->auto_mount = true;
        v->timestamp_ms = g->now_ms - (int64_t)sim_rng_below(rng, 86400) * 1000;
        char serial[16];
        snprintf(serial, sizeof serial, "%08X", (unsigned)sim_rng_next(rng));
        v->serial_number = sim_pool_strdup(g->fleet->pool, serial);
        bool is_removable = removable && i == n - 1;
        if (is_removable) {
            v->name = intern(g, "E:");
            v->drive_letter = v->name;
            v->label = intern(g, "USB DISK");
            v->device_type = intern(g, "Removable Disk");
            v->file_system = intern(g, "FAT32");
            v->capacity = 32000000000LL;
            v->free_space = 12000000000LL;
            continue;
        }
        v->device_type = intern(g, "Local Disk");
        if (mac) {
            v->name = intern(g, "Macintosh HD");
            v->file_system = intern(g, "APFS");
            v->capacity = 494384795648LL;
        } else if (windows) {
            v->name = intern(g, i == 0 ? "C:" : "D:");
            v->drive_letter = v->name;
            v->label = intern(g, i == 0 ? "OS" : "Data");
            v->file_system = intern(g, "NTFS");
            v->capacity = i == 0 ? 255369785344LL : 1099511627776LL;
        } else {
            v->name = intern(g, "/");
            v->file_system = intern(g, "ext4");
            v->capacity = 107374182400LL;
        }
        v->free_space = v->capacity / 100 * (10 + sim_rng_below(rng, 70));
        if (!windows && !mac)
            continue; /* Linux volumes carry no BitLocker block */
        v->has_bitlocker = true;
        if (sim_rng_unit(rng) < g->opts->encryption_rate) {
            v->bl_conversion = intern(g, "FULLY_ENCRYPTED");
            v->bl_method = intern(g, mac ? "AES_256" : "XTS_AES_128");
            v->bl_protection = intern(g, "PROTECTED");
            v->bl_lock = intern(g, "UNLOCKED");
            v->bl_initialized = true;
        } else {
            static const char *const conv[] = {"FULLY_DECRYPTED", "FULLY_DECRYPTED",
                                               "ENCRYPTION_IN_PROGRESS", "UNKNOWN"};
            int k = (int)sim_rng_below(rng, 4);
            v->bl_conversion = intern(g, conv[k]);
            v->bl_method = intern(g, k == 2 ? "XTS_AES_128" : k == 3 ? "UNKNOWN" : "NONE");
            v->bl_protection = intern(g, k == 3 ? "UNKNOWN" : "UNPROTECTED");
            v->bl_lock = intern(g, k == 3 ? "UNKNOWN" : "UNLOCKED");
            v->bl_initialized = k == 2;
        }
    }
}

static void make_av(gen_t *g, sim_device_t *dev)
{
    sim_rng_t *rng = &g->rng;
    const sim_gen_options_t *o = g->opts;
    double weights[4] = {o->av_fresh, o->av_aging, o->av_stale, o->av_unprotected};
    int state = pick_weighted(rng, weights, 4);
    if (state == 3 && sim_rng_unit(rng) < 0.5)
        return; /* unprotected: no AV row at all */
    bool third_party = sim_rng_unit(rng) < 0.4;
    uint32_t n = third_party ? 2 : 1;
    dev->av = sim_pool_alloc(g->fleet->pool, sizeof *dev->av * n);
    dev->n_av = n;
    sim_av_t *main = &dev->av[0];
    main->product_name = intern(g, av_products[third_party ? 1 + sim_rng_below(rng, 4) : 0]);
    main->version = intern(g, third_party ? "24.1.4.257" : "4.18.25090.3009");
    int64_t age_s;
    switch (state) {
    case 0:
        main->product_state = intern(g, "ON");
        main->definition_status = intern(g, "Up-to-Date");
        age_s = sim_rng_below(rng, 3 * 86400);
        break;
    case 1:
        main->product_state = intern(g, "ON");
        if (sim_rng_unit(rng) < 0.5) {
            main->definition_status = intern(g, "Up-to-Date");
            age_s = 8 * 86400 + sim_rng_below(rng, 21 * 86400);
        } else {
            main->definition_status = intern(g, "Out-of-Date");
            age_s = sim_rng_below(rng, 6 * 86400);
        }
        break;
    case 2:
        main->product_state = intern(g, "ON");
        main->definition_status = intern(g, "Out-of-Date");
        age_s = 31 * 86400 + sim_rng_below(rng, 60 * 86400);
        break;
    default:
        main->product_state = intern(g, "OFF");
        main->definition_status = intern(g, "Out-of-Date");
        age_s = sim_rng_below(rng, 86400);
        break;
    }
    main->timestamp_ms = g->now_ms - age_s * 1000;
    if (third_party) {
        /* Defender switches itself off when another product is ON. */
        sim_av_t *def = &dev->av[1];
        def->product_name = intern(g, av_products[0]);
        def->product_state = intern(g, "OFF");
        def->definition_status = intern(g, "Out-of-Date");
        def->version = intern(g, "");
        def->timestamp_ms = main->timestamp_ms;
    }
}

static void make_patches(gen_t *g, sim_device_t *dev, bool windows)
{
    sim_rng_t *rng = &g->rng;
    uint32_t n_os = windows ? poisson(rng, g->opts->patch_backlog) : 0;
    bool failed = sim_rng_unit(rng) < g->opts->patch_failed_rate;
    uint32_t total = n_os + (failed ? 1 : 0);
    if (total > N_OS_PATCHES)
        total = N_OS_PATCHES;
    if (total) {
        static const char *const statuses[] = {"MANUAL", "APPROVED", "DELAYED"};
        dev->os_patches = sim_pool_alloc(g->fleet->pool, sizeof *dev->os_patches * total);
        dev->n_os_patches = total;
        uint32_t first = sim_rng_below(rng, N_OS_PATCHES);
        for (uint32_t i = 0; i < total; i++) {
            sim_os_patch_t *p = &dev->os_patches[i];
            uint32_t k = (first + i) % N_OS_PATCHES;
            p->name = intern(g, os_patch_catalog[k].name);
            p->kb_number = intern(g, os_patch_catalog[k].kb);
            p->severity = intern(g, os_patch_catalog[k].severity);
            p->type = intern(g, os_patch_catalog[k].type);
            bool is_failed = failed && i == total - 1;
            p->status = intern(g, is_failed ? "FAILED" : statuses[sim_rng_below(rng, 3)]);
            p->timestamp_ms = g->now_ms - (int64_t)sim_rng_below(rng, 14 * 86400) * 1000;
            if (is_failed)
                p->installed_ms = p->timestamp_ms;
        }
    }
    uint32_t n_sw = poisson(rng, g->opts->patch_backlog / 2);
    if (n_sw > N_SW_PATCHES)
        n_sw = N_SW_PATCHES;
    if (n_sw) {
        dev->sw_patches = sim_pool_alloc(g->fleet->pool, sizeof *dev->sw_patches * n_sw);
        dev->n_sw_patches = n_sw;
        uint32_t first = sim_rng_below(rng, N_SW_PATCHES);
        for (uint32_t i = 0; i < n_sw; i++) {
            sim_sw_patch_t *p = &dev->sw_patches[i];
            uint32_t k = (first + i) % N_SW_PATCHES;
            char uuid[37];
            sim_uuid(uuid, g->fleet->seed, 20, k, 0);
            p->product_identifier = intern_text(g, uuid);
            p->title = intern(g, sw_patch_catalog[k].title);
            p->impact = intern(g, sw_patch_catalog[k].impact);
            p->status = intern(g, sim_rng_unit(rng) < 0.5 ? "APPROVED" : "MANUAL");
            p->type = intern(g, "PATCH");
            p->timestamp_ms = g->now_ms - (int64_t)sim_rng_below(rng, 14 * 86400) * 1000;
        }
    }
}

static void add_backup_activity(gen_t *g, const sim_device_t *dev, const sim_backup_job_t *job)
{
    sim_activity_t *act = sim_fleet_add_activity(g->fleet);
    bool ok = strcmp(job->status, "COMPLETED") == 0;
    bool warn = ok && job->files_uploaded == 1; /* marks "with warning" jobs */
    act->time_ms = job->end_ms;
    act->device_id = dev->id;
    act->activity_type = intern(g, "NINJA_BACKUP");
    act->status_code = intern(g, !ok ? "NINJA_BACKUP_BACKUPJOB_FAILED"
                                 : warn ? "NINJA_BACKUP_BACKUPJOB_COMPLETED_WITH_WARNING"
                                        : "NINJA_BACKUP_BACKUPJOB_COMPLETED");
    act->status = intern(g, !ok ? "Backup job failed"
                            : warn ? "Backup job completed with warnings" : "Backup job completed");
    act->result = intern(g, ok ? "SUCCESS" : "FAILURE");
    act->severity = intern(g, ok ? "NONE" : "MAJOR");
    act->priority = intern(g, ok ? "NONE" : "HIGH");
    act->type_label = intern(g, "Ninja Backup");
    act->source_name = job->plan_name;
    char msg[160];
    snprintf(msg, sizeof msg, "Backup job '%s' %s", job->plan_name,
             !ok ? "failed" : warn ? "completed with warnings" : "completed");
    act->message = intern_text(g, msg);
    snprintf(msg, sizeof msg, "{\"message\":{\"code\":\"%s\",\"params\":{\"planName\":\"%s\"}}}",
             ok ? "backup_job_completed" : "backup_job_failed", job->plan_name);
    act->data_json = intern_text(g, msg);
}

static void make_backups(gen_t *g, sim_device_t *dev, bool server)
{
    sim_rng_t *rng = &g->rng;
    if (sim_rng_unit(rng) >= g->opts->backup_rate)
        return;
    bool all_failed = sim_rng_unit(rng) < g->opts->backup_failure_rate;
    uint32_t n = 2;
    dev->backup_jobs = sim_pool_alloc(g->fleet->pool, sizeof *dev->backup_jobs * n);
    dev->n_backup_jobs = n;
    static const int days_ago[] = {1, 4};
    for (uint32_t i = 0; i < n; i++) {
        sim_backup_job_t *job = &dev->backup_jobs[i];
        job->plan_name = intern(g, server ? "Nightly image" : "Documents and Desktop");
        job->plan_type = intern(g, server ? "IMAGE" : "FILE_FOLDER");
        job->destination = intern(g, "CLOUD");
        job->status = intern(g, all_failed ? "FAILED" : "COMPLETED");
        job->start_ms = g->now_ms - days_ago[i] * DAY_MS +
                        (int64_t)sim_rng_below(rng, 6 * 3600) * 1000;
        job->end_ms = job->start_ms + (int64_t)(600 + sim_rng_below(rng, 3000)) * 1000 + 417;
        job->actual_bytes = server ? 53687091200LL : 2147483648LL;
        job->stored_bytes = job->actual_bytes / 3;
        job->files_uploaded = server ? 0 : 100 + sim_rng_below(rng, 900);
        if (!all_failed && !server && sim_rng_unit(rng) < 0.1)
            job->files_uploaded = 1;
        add_backup_activity(g, dev, job);
    }
}

static void make_patch_activity(gen_t *g, const sim_device_t *dev)
{
    sim_activity_t *act = sim_fleet_add_activity(g->fleet);
    act->time_ms = g->now_ms - 2 * DAY_MS - (int64_t)sim_rng_below(&g->rng, 86400) * 1000;
    act->device_id = dev->id;
    act->activity_type = intern(g, "PATCH_MANAGEMENT");
    act->status_code = intern(g, "PATCH_MANAGEMENT_APPLY_PATCH_COMPLETED");
    act->status = intern(g, "Patch apply completed");
    act->result = intern(g, "SUCCESS");
    act->severity = intern(g, "NONE");
    act->priority = intern(g, "NONE");
    act->type_label = intern(g, "Patch Management");
    act->message = intern(g, "Patch installation completed");
}

sim_fleet_t *sim_generate(const sim_gen_options_t *opts, int64_t now_ms)
{
    gen_t g = {.opts = opts, .fleet = sim_fleet_new(opts->seed), .now_ms = now_ms};
    g.rng.state = opts->seed * 0x2545f4914f6cdd1dULL + 1;
    sim_fleet_t *fleet = g.fleet;
    fleet->loaded_now_ms = now_ms;

    fleet->clients = sim_xcalloc((size_t)opts->n_regions, sizeof *fleet->clients);
    for (int i = 0; i < opts->n_regions; i++) {
        char buf[64];
        sim_client_t *c = &fleet->clients[fleet->n_clients++];
        c->region = opts->regions[i];
        snprintf(buf, sizeof buf, "sim-%s-client", sim_region_name(c->region));
        c->client_id = intern_text(&g, buf);
        snprintf(buf, sizeof buf, "sim-%s-secret", sim_region_name(c->region));
        c->client_secret = intern_text(&g, buf);
        c->scopes = SIM_SCOPE_MONITORING | SIM_SCOPE_MANAGEMENT | SIM_SCOPE_CONTROL;
    }

    /* Size the arrays once: growing a 500,000-device array by doubling
     * copies and faults in far more memory than it keeps. */
    size_t expected = (size_t)opts->orgs * ((size_t)opts->devices_min + opts->devices_max) / 2 + 16;
    sim_fleet_reserve(fleet, expected, expected * (size_t)(opts->backup_rate * 2 + 1));

    double mix[4] = {opts->mix_workstation, opts->mix_server, opts->mix_mac, opts->mix_linux};
    static const char *const classes[4] = {"WINDOWS_WORKSTATION", "WINDOWS_SERVER", "MAC",
                                           "LINUX_SERVER"};
    static const char *const prefixes[4] = {"WS", "SRV", "MAC", "LNX"};
    int32_t device_id = 1000;
    int32_t location_id = 100;
    for (uint32_t o = 0; o < opts->orgs; o++) {
        sim_org_t *org = sim_fleet_add_org(fleet);
        org->id = (int32_t)o + 1;
        org->region = opts->regions[o % (uint32_t)opts->n_regions];
        char name[128];
        org_name(o, name, sizeof name);
        org->name = intern_text(&g, name);
        org->approval_mode = intern(&g, sim_rng_unit(&g.rng) < 0.3 ? "MANUAL" : "AUTOMATIC");
        org->n_locations = 1 + (sim_rng_unit(&g.rng) < 0.3 ? 1 : 0);
        org->locations = sim_pool_alloc(fleet->pool, sizeof *org->locations * org->n_locations);
        for (uint32_t l = 0; l < org->n_locations; l++) {
            org->locations[l].id = location_id++;
            org->locations[l].name = intern(&g, l == 0 ? "Head Office" : "Branch Office");
            snprintf(name, sizeof name, "%u Market Street", 10 + (o * 7 + l) % 900);
            org->locations[l].address = intern_text(&g, name);
        }
        uint32_t size = opts->devices_min;
        if (opts->devices_max > opts->devices_min) {
            /* Log-uniform: most orgs small, a few large, like real MSPs. */
            double lo = log((double)(opts->devices_min ? opts->devices_min : 1));
            double hi = log((double)opts->devices_max + 1);
            size = (uint32_t)exp(lo + sim_rng_unit(&g.rng) * (hi - lo));
            if (size > opts->devices_max)
                size = opts->devices_max;
            if (size < opts->devices_min)
                size = opts->devices_min;
        }
        /* Short code from the name initials, e.g. "NDL". */
        char code[4] = "ORG";
        int ci = 0;
        for (const char *c = org->name; *c && ci < 3; c++)
            if ((c == org->name || c[-1] == ' ') && *c >= 'A' && *c <= 'Z')
                code[ci++] = *c;
        int32_t org_id = org->id;
        int32_t first_loc = org->locations[0].id;
        int32_t n_locs = (int32_t)org->n_locations;
        for (uint32_t d = 0; d < size; d++) {
            sim_device_t *dev = sim_fleet_add_device(fleet);
            dev->id = device_id++;
            dev->org_id = org_id;
            dev->location_id = first_loc + (int32_t)(d % (uint32_t)n_locs);
            int cls = pick_weighted(&g.rng, mix, 4);
            dev->node_class = intern(&g, classes[cls]);
            dev->offline = sim_rng_unit(&g.rng) < opts->offline_rate;
            dev->approval_status =
                intern(&g, sim_rng_unit(&g.rng) < opts->pending_rate ? "PENDING" : "APPROVED");
            char sysname[32];
            snprintf(sysname, sizeof sysname, "%.3s-%s%04u", code, prefixes[cls], d + 1);
            dev->system_name = sim_pool_strdup(fleet->pool, sysname);
            bool windows = cls == 0 || cls == 1;
            bool mac = cls == 2;
            make_volumes(&g, dev, windows, mac, cls == 0 || cls == 2);
            if (cls != 3)
                make_av(&g, dev);
            make_patches(&g, dev, windows);
            make_backups(&g, dev, cls == 1 || cls == 3);
            if (windows && sim_rng_unit(&g.rng) < 0.5)
                make_patch_activity(&g, dev);
            sim_device_fill_defaults(fleet, dev, now_ms);
        }
    }
    sim_fleet_number_activities(fleet);
    char err[128];
    if (sim_fleet_finish(fleet, err, sizeof err) != 0) {
        fprintf(stderr, "ninjaone-sim: generator produced an invalid fleet: %s\n", err);
        sim_fleet_free(fleet);
        return NULL;
    }
    return fleet;
}
