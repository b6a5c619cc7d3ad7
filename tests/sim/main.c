/* ninjaone-sim: a NinjaOne public API v2 simulator for tests, demos and
 * benchmarks. See README.md for the fleet format and the control API. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cursor.h"
#include "faults.h"
#include "fleet_load.h"
#include "generator.h"
#include "ratelimit.h"
#include "server.h"
#include "sim.h"
#include "stats.h"

static const char usage_text[] =
    "Usage: ninjaone-sim [--fleet FILE.json | --generate [generator options]] [options]\n"
    "\n"
    "Serves the NinjaOne public API v2 on 127.0.0.1 for the regions us, us2, eu, ca, oc\n"
    "under path prefixes (base URL http://127.0.0.1:PORT/<region>). Prints \"port=N\" as\n"
    "the first line on stdout once it accepts connections; runs until SIGTERM/SIGINT.\n"
    "\n"
    "Fleet:\n"
    "  --fleet FILE            load a fixture fleet (JSON, see README.md)\n"
    "  --generate              generate a fleet deterministically from the options below\n"
    "  --seed N                seed for the generator, ids, tokens and fault rates (default 1)\n"
    "  --now EPOCH             pin the data clock to EPOCH seconds: relative fixture times\n"
    "                          (ageSeconds) resolve against it and it stays fixed\n"
    "\n"
    "Generator (with --generate):\n"
    "  --regions LIST          comma separated regions orgs are spread over (default eu);\n"
    "                          one client per region: sim-<region>-client / sim-<region>-secret\n"
    "  --orgs N                organizations (default 10)\n"
    "  --devices-per-org N|MIN-MAX\n"
    "                          devices per org, fixed or log-uniform in MIN..MAX (default 25)\n"
    "  --os-mix W,S,M,L        weights of Windows workstations, Windows servers, Macs, Linux\n"
    "                          servers (default 70,15,10,5)\n"
    "  --encryption-rate F     share of in-scope volumes fully encrypted (default 0.9)\n"
    "  --av-mix F,A,S,U        weights of AV fresh, aging, stale, unprotected devices\n"
    "                          (default 85,8,4,3)\n"
    "  --patch-backlog F       mean outstanding OS patches per Windows device (default 1.0);\n"
    "                          software patches average half of it\n"
    "  --patch-failed-rate F   share of devices with one FAILED patch (default 0.02)\n"
    "  --backup-rate F         share of devices with a backup plan (default 0.5)\n"
    "  --backup-failure-rate F share of backup devices whose jobs all failed (default 0.05)\n"
    "  --offline-rate F        share of devices offline (default 0.1)\n"
    "  --pending-rate F        share of devices awaiting approval (default 0.02)\n"
    "\n"
    "Server:\n"
    "  --port N                TCP port on 127.0.0.1, 0 = any free port (default 0)\n"
    "  --threads N             N > 0: thread pool of N with epoll; 0: one thread per\n"
    "                          connection (default 0)\n"
    "  --tls-cert FILE         PEM certificate: serve HTTPS (needs --tls-key)\n"
    "  --tls-key FILE          PEM private key\n"
    "  --token-ttl SECONDS     access token lifetime and expires_in (default 3600)\n"
    "  --cursor-ttl SECONDS    query cursor lifetime (default 600)\n"
    "  --rate-limit-minute N   requests per tenant per sliding minute, 0 = off (default 200)\n"
    "  --rate-limit-hour N     requests per tenant per sliding hour, 0 = off (default 1500)\n"
    "  --clock-scale F         the rate limit's minute and hour (and the request times)\n"
    "                          pass F times faster than real time, for a client whose\n"
    "                          clock is sped up alike (default 1)\n"
    "  --throttle-mode MODE    429 (status 429 + Retry-After) or html (status 200 HTML page)\n"
    "                          (default 429)\n"
    "  --remaining-header      send X-RateLimit-Remaining on admitted API requests\n"
    "  --help                  show this text\n";

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ninjaone-sim: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'ninjaone-sim --help'.\n");
    exit(2);
}

static long parse_long(const char *opt, const char *text, long min, long max)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < min || v > max) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: '%%s' is not a number in %ld..%ld", opt, min, max);
        usage_error(msg, text);
    }
    return v;
}

static double parse_rate(const char *opt, const char *text)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (!*text || *end || !(v >= 0 && v <= 1)) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s: '%%s' is not a fraction in 0..1", opt);
        usage_error(msg, text);
    }
    return v;
}

static void parse_weights(const char *opt, const char *text, double *out[4])
{
    double w[4];
    char tail;
    if (sscanf(text, "%lf,%lf,%lf,%lf%c", &w[0], &w[1], &w[2], &w[3], &tail) != 4 || w[0] < 0 ||
        w[1] < 0 || w[2] < 0 || w[3] < 0 || w[0] + w[1] + w[2] + w[3] <= 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s: '%%s' must be four non-negative weights a,b,c,d", opt);
        usage_error(msg, text);
    }
    for (int i = 0; i < 4; i++)
        *out[i] = w[i];
}

enum {
    OPT_FLEET = 256, OPT_GENERATE, OPT_SEED, OPT_NOW, OPT_REGIONS, OPT_ORGS, OPT_DPO, OPT_OS_MIX,
    OPT_ENC, OPT_AV_MIX, OPT_PATCH_BACKLOG, OPT_PATCH_FAILED, OPT_BACKUP_RATE, OPT_BACKUP_FAIL,
    OPT_OFFLINE, OPT_PENDING, OPT_PORT, OPT_THREADS, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TOKEN_TTL,
    OPT_CURSOR_TTL, OPT_RL_MINUTE, OPT_RL_HOUR, OPT_CLOCK_SCALE, OPT_THROTTLE, OPT_REMAINING, OPT_HELP,
};

static const struct option long_opts[] = {
    {"fleet", required_argument, NULL, OPT_FLEET},
    {"generate", no_argument, NULL, OPT_GENERATE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"now", required_argument, NULL, OPT_NOW},
    {"regions", required_argument, NULL, OPT_REGIONS},
    {"orgs", required_argument, NULL, OPT_ORGS},
    {"devices-per-org", required_argument, NULL, OPT_DPO},
    {"os-mix", required_argument, NULL, OPT_OS_MIX},
    {"encryption-rate", required_argument, NULL, OPT_ENC},
    {"av-mix", required_argument, NULL, OPT_AV_MIX},
    {"patch-backlog", required_argument, NULL, OPT_PATCH_BACKLOG},
    {"patch-failed-rate", required_argument, NULL, OPT_PATCH_FAILED},
    {"backup-rate", required_argument, NULL, OPT_BACKUP_RATE},
    {"backup-failure-rate", required_argument, NULL, OPT_BACKUP_FAIL},
    {"offline-rate", required_argument, NULL, OPT_OFFLINE},
    {"pending-rate", required_argument, NULL, OPT_PENDING},
    {"port", required_argument, NULL, OPT_PORT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"token-ttl", required_argument, NULL, OPT_TOKEN_TTL},
    {"cursor-ttl", required_argument, NULL, OPT_CURSOR_TTL},
    {"rate-limit-minute", required_argument, NULL, OPT_RL_MINUTE},
    {"rate-limit-hour", required_argument, NULL, OPT_RL_HOUR},
    {"clock-scale", required_argument, NULL, OPT_CLOCK_SCALE},
    {"throttle-mode", required_argument, NULL, OPT_THROTTLE},
    {"remaining-header", no_argument, NULL, OPT_REMAINING},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    sim_t sim;
    memset(&sim, 0, sizeof sim);
    sim.opts.seed = 1;
    sim.opts.token_ttl_s = 3600;
    sim.opts.cursor_ttl_s = 600;
    sim.opts.rate_per_minute = 200;
    sim.opts.rate_per_hour = 1500;
    sim_gen_options_t gen;
    sim_gen_defaults(&gen);
    const char *fleet_path = NULL;
    bool generate = false;
    int64_t now_ms = 0;

    int c;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_FLEET: fleet_path = optarg; break;
        case OPT_GENERATE: generate = true; break;
        case OPT_SEED: {
            char *end = NULL;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (!*optarg || *end)
                usage_error("--seed: '%s' is not a number", optarg);
            sim.opts.seed = v;
            break;
        }
        case OPT_NOW:
            if (sim_parse_time(optarg, &now_ms) != 0 || now_ms <= 0)
                usage_error("--now: '%s' is not epoch seconds or a date", optarg);
            break;
        case OPT_REGIONS: {
            gen.n_regions = 0;
            const char *p = optarg;
            while (*p) {
                size_t n = strcspn(p, ",");
                int r = sim_region_parse(p, n);
                if (r < 0 || gen.n_regions == SIM_REGION_COUNT)
                    usage_error("--regions: '%s' must list regions from us, us2, eu, ca, oc", optarg);
                gen.regions[gen.n_regions++] = r;
                p += n + (p[n] == ',');
            }
            if (!gen.n_regions)
                usage_error("--regions: '%s' names no region", optarg);
            break;
        }
        case OPT_ORGS: gen.orgs = (uint32_t)parse_long("--orgs", optarg, 0, 1000000); break;
        case OPT_DPO: {
            const char *dash = strchr(optarg, '-');
            if (dash) {
                char lo[32];
                snprintf(lo, sizeof lo, "%.*s", (int)(dash - optarg), optarg);
                gen.devices_min = (uint32_t)parse_long("--devices-per-org", lo, 0, 10000000);
                gen.devices_max = (uint32_t)parse_long("--devices-per-org", dash + 1, 0, 10000000);
                if (gen.devices_max < gen.devices_min)
                    usage_error("--devices-per-org: '%s' has MAX below MIN", optarg);
            } else {
                gen.devices_min = gen.devices_max =
                    (uint32_t)parse_long("--devices-per-org", optarg, 0, 10000000);
            }
            break;
        }
        case OPT_OS_MIX: {
            double *w[4] = {&gen.mix_workstation, &gen.mix_server, &gen.mix_mac, &gen.mix_linux};
            parse_weights("--os-mix", optarg, w);
            break;
        }
        case OPT_ENC: gen.encryption_rate = parse_rate("--encryption-rate", optarg); break;
        case OPT_AV_MIX: {
            double *w[4] = {&gen.av_fresh, &gen.av_aging, &gen.av_stale, &gen.av_unprotected};
            parse_weights("--av-mix", optarg, w);
            break;
        }
        case OPT_PATCH_BACKLOG: {
            char *end = NULL;
            gen.patch_backlog = strtod(optarg, &end);
            if (!*optarg || *end || !(gen.patch_backlog >= 0 && gen.patch_backlog <= 50))
                usage_error("--patch-backlog: '%s' is not a number in 0..50", optarg);
            break;
        }
        case OPT_PATCH_FAILED: gen.patch_failed_rate = parse_rate("--patch-failed-rate", optarg); break;
        case OPT_BACKUP_RATE: gen.backup_rate = parse_rate("--backup-rate", optarg); break;
        case OPT_BACKUP_FAIL: gen.backup_failure_rate = parse_rate("--backup-failure-rate", optarg); break;
        case OPT_OFFLINE: gen.offline_rate = parse_rate("--offline-rate", optarg); break;
        case OPT_PENDING: gen.pending_rate = parse_rate("--pending-rate", optarg); break;
        case OPT_PORT: sim.opts.port = (int)parse_long("--port", optarg, 0, 65535); break;
        case OPT_THREADS: sim.opts.threads = (int)parse_long("--threads", optarg, 0, 256); break;
        case OPT_TLS_CERT: sim.opts.tls_cert = optarg; break;
        case OPT_TLS_KEY: sim.opts.tls_key = optarg; break;
        case OPT_TOKEN_TTL: sim.opts.token_ttl_s = (int)parse_long("--token-ttl", optarg, 1, 86400 * 30); break;
        case OPT_CURSOR_TTL: sim.opts.cursor_ttl_s = (int)parse_long("--cursor-ttl", optarg, 1, 86400 * 30); break;
        case OPT_RL_MINUTE: sim.opts.rate_per_minute = (int)parse_long("--rate-limit-minute", optarg, 0, 10000000); break;
        case OPT_RL_HOUR: sim.opts.rate_per_hour = (int)parse_long("--rate-limit-hour", optarg, 0, 10000000); break;
        case OPT_CLOCK_SCALE: {
            char *end = NULL;
            double scale = strtod(optarg, &end);
            if (!*optarg || *end || !(scale > 0 && scale <= 100000))
                usage_error("--clock-scale: '%s' is not a number in (0, 100000]", optarg);
            sim_rate_clock_set_scale(scale);
            break;
        }
        case OPT_THROTTLE:
            if (strcmp(optarg, "429") == 0)
                sim.opts.throttle_mode = SIM_THROTTLE_429;
            else if (strcmp(optarg, "html") == 0)
                sim.opts.throttle_mode = SIM_THROTTLE_HTML;
            else
                usage_error("--throttle-mode: '%s' must be 429 or html", optarg);
            break;
        case OPT_REMAINING: sim.opts.remaining_header = true; break;
        case OPT_HELP:
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs("Try 'ninjaone-sim --help'.\n", stderr); return 2;
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (!!fleet_path == generate)
        usage_error("%s", fleet_path ? "give either --fleet or --generate, not both"
                                      : "give --fleet FILE.json or --generate");
    if (!!sim.opts.tls_cert != !!sim.opts.tls_key)
        usage_error("%s", "--tls-cert and --tls-key go together");

    /* Signals are taken by sigwait in this thread; block them before
     * the server threads exist so they inherit the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    int64_t fixture_now = 0;
    if (now_ms)
        sim_clock_pin(now_ms);
    if (fleet_path) {
        sim.fleet = sim_fleet_load(fleet_path, sim.opts.seed, now_ms, &fixture_now, err, sizeof err);
        if (!sim.fleet) {
            fprintf(stderr, "ninjaone-sim: %s\n", err);
            return 1;
        }
        if (!now_ms && fixture_now)
            sim_clock_pin(fixture_now);
    } else {
        gen.seed = sim.opts.seed;
        sim.fleet = sim_generate(&gen, now_ms ? now_ms : sim_wall_ms());
        if (!sim.fleet)
            return 1;
    }
    sim.auth = sim_auth_new(sim.opts.seed, sim.opts.token_ttl_s);
    sim.stats = sim_stats_new();
    sim.faults = sim_faults_new(sim.opts.seed);
    sim.ratelimit = sim_ratelimit_new(sim.opts.rate_per_minute, sim.opts.rate_per_hour,
                                      sim.fleet->n_clients);
    sim.cursors = sim_cursors_new(sim.opts.seed, sim.opts.cursor_ttl_s);

    int rc = 0;
    sim_server_t *server = sim_server_start(&sim, err, sizeof err);
    if (!server) {
        fprintf(stderr, "ninjaone-sim: %s\n", err);
        rc = 1;
    } else {
        printf("port=%d\n", sim_server_port(server));
        fflush(stdout);
        fprintf(stderr, "ninjaone-sim: %zu clients, %zu organizations, %zu devices, %zu activities; %s on 127.0.0.1:%d\n",
                sim.fleet->n_clients, sim.fleet->n_orgs, sim.fleet->n_devices,
                sim.fleet->n_activities, sim.opts.tls_cert ? "https" : "http",
                sim_server_port(server));
        int sig = 0;
        sigwait(&stop_signals, &sig);
        sim_server_stop(server);
    }
    sim_cursors_free(sim.cursors);
    sim_ratelimit_free(sim.ratelimit);
    sim_faults_free(sim.faults);
    sim_stats_free(sim.stats);
    sim_auth_free(sim.auth);
    sim_fleet_free(sim.fleet);
    return rc;
}
