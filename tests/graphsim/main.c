/* main.c - graph-sim: command line, fixture loading, signal handling. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphsim.h"

static const char usage[] =
    "usage: graph-sim --fleet FILE [--port N] [--token-ttl S] [--page-size N]"
    " [--seed N]\n"
    "Serves the Entra ID client-credentials token endpoint and Microsoft Graph\n"
    "managedDevices on 127.0.0.1. Prints \"port=N\" as the first line once it\n"
    "accepts connections; serves until SIGTERM or SIGINT.\n"
    "  --fleet FILE     JSON fixture: one app registration, its tenants and devices\n"
    "  --port N         0 = any free port (default 0)\n"
    "  --token-ttl S    token lifetime and expires_in (default 3599)\n"
    "  --page-size N    page size when $top is absent (default 100, max 1000)\n"
    "  --seed N         seed of token values (default 1)\n";

static const char *const device_fields[] = {
    "id", "deviceName", "serialNumber", "wiFiMacAddress", "ethernetMacAddress",
    "operatingSystem", "osVersion", "manufacturer", "model",
    "lastSyncDateTime", "complianceState", "isEncrypted",
    "managedDeviceOwnerType", NULL};

static int check_device(json_t *dev, const char *tenant, size_t i, char *err,
                        size_t errlen) {
  if (!json_is_object(dev) || !json_is_string(json_object_get(dev, "id"))) {
    snprintf(err, errlen, "tenant %s: device %zu has no string \"id\"",
             tenant, i);
    return -1;
  }
  const char *key;
  json_t *v;
  json_object_foreach(dev, key, v) {
    size_t k = 0;
    while (device_fields[k] && strcmp(device_fields[k], key))
      k++;
    if (!device_fields[k]) {
      snprintf(err, errlen, "tenant %s: device %zu: unknown field \"%s\"",
               tenant, i, key);
      return -1;
    }
  }
  const char *owner =
      json_string_value(json_object_get(dev, "managedDeviceOwnerType"));
  if (!owner || (strcmp(owner, "company") && strcmp(owner, "personal"))) {
    snprintf(err, errlen,
             "tenant %s: device %zu: managedDeviceOwnerType must be "
             "\"company\" or \"personal\"",
             tenant, i);
    return -1;
  }
  return 0;
}

json_t *gs_fleet_load(const char *path, char *err, size_t errlen) {
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!root) {
    snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
    return NULL;
  }
  json_t *app = json_object_get(root, "app");
  json_t *tenants = json_object_get(root, "tenants");
  if (!json_is_string(json_object_get(app, "clientId")) ||
      !json_is_string(json_object_get(app, "clientSecret")) ||
      !json_is_array(tenants)) {
    snprintf(err, errlen,
             "%s: needs \"app\" {clientId, clientSecret} and \"tenants\" []",
             path);
    json_decref(root);
    return NULL;
  }
  size_t t;
  json_t *tenant;
  json_array_foreach(tenants, t, tenant) {
    const char *id = json_string_value(json_object_get(tenant, "id"));
    json_t *devices = json_object_get(tenant, "devices");
    if (!id || !json_is_array(devices)) {
      snprintf(err, errlen, "%s: tenant %zu needs \"id\" and \"devices\"",
               path, t);
      json_decref(root);
      return NULL;
    }
    size_t i;
    json_t *dev;
    json_array_foreach(devices, i, dev) {
      if (check_device(dev, id, i, err, errlen)) {
        json_decref(root);
        return NULL;
      }
    }
  }
  return root;
}

static int parse_int(const char *opt, const char *value, long min, long max,
                     long *out) {
  char *end;
  long n = value ? strtol(value, &end, 10) : 0;
  if (!value || *end || n < min || n > max) {
    fprintf(stderr, "graph-sim: %s needs a number in [%ld, %ld]\n", opt, min,
            max);
    return -1;
  }
  *out = n;
  return 0;
}

int main(int argc, char **argv) {
  static gs_sim_t sim;
  const char *fleet_path = NULL;
  long port = 0, ttl = 3599, page = 100, seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int rc = 0;
    if (!strcmp(a, "--help")) {
      fputs(usage, stdout);
      return 0;
    } else if (!strcmp(a, "--fleet") && v)
      fleet_path = v;
    else if (!strcmp(a, "--port"))
      rc = parse_int(a, v, 0, 65535, &port);
    else if (!strcmp(a, "--token-ttl"))
      rc = parse_int(a, v, 1, 86400, &ttl);
    else if (!strcmp(a, "--page-size"))
      rc = parse_int(a, v, 1, GS_MAX_PAGE, &page);
    else if (!strcmp(a, "--seed"))
      rc = parse_int(a, v, 0, 1L << 30, &seed);
    else {
      fprintf(stderr, "graph-sim: unknown or incomplete option %s\n%s", a,
              usage);
      return 2;
    }
    if (rc)
      return 2;
    i++;
  }
  if (!fleet_path) {
    fprintf(stderr, "graph-sim: --fleet FILE is required\n%s", usage);
    return 2;
  }
  char err[512];
  sim.fleet = gs_fleet_load(fleet_path, err, sizeof err);
  if (!sim.fleet) {
    fprintf(stderr, "graph-sim: %s\n", err);
    return 1;
  }
  json_t *app = json_object_get(sim.fleet, "app");
  sim.client_id = json_string_value(json_object_get(app, "clientId"));
  sim.client_secret = json_string_value(json_object_get(app, "clientSecret"));
  sim.token_ttl_s = (int)ttl;
  sim.default_page = (int)page;
  sim.seed = (uint64_t)seed;
  sim.stats = json_object();

  /* Block the stop signals before MHD starts its thread, then wait. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  void *daemon = gs_server_start(&sim, (int)port, err, sizeof err);
  if (!daemon) {
    fprintf(stderr, "graph-sim: %s\n", err);
    json_decref(sim.fleet);
    json_decref(sim.stats);
    return 1;
  }
  printf("port=%d\n", sim.port);
  fflush(stdout);
  fprintf(stderr, "graph-sim: %zu tenants on http://127.0.0.1:%d\n",
          json_array_size(json_object_get(sim.fleet, "tenants")), sim.port);
  int sig = 0;
  sigwait(&stop, &sig);
  gs_server_stop(daemon);
  json_decref(sim.fleet);
  json_decref(sim.stats);
  return 0;
}
