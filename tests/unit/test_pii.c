/* The PII guard: hostile metadata is refused with its path (never its
 * value); aggregate metadata passes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "regentra/devsrc.h"

typedef struct pii_case_s {
  char json[200];
  char path[64]; /* expected at the start of the error */
} pii_case_t;

ParameterizedTestParameters(pii, refuses_identifiers) {
  static pii_case_t cases[] = {
      {"{\"hostname\":\"x\"}", "metadata.hostname"},
      {"{\"hostName\":\"x\"}", "metadata.hostName"},
      {"{\"fqdn\":\"x\"}", "metadata.fqdn"},
      {"{\"dnsName\":\"x\"}", "metadata.dnsName"},
      {"{\"netbios_name\":\"x\"}", "metadata.netbios_name"},
      {"{\"ip\":\"x\"}", "metadata.ip"},
      {"{\"ipAddresses\":[]}", "metadata.ipAddresses"},
      {"{\"publicIP\":1}", "metadata.publicIP"},
      {"{\"macAddresses\":[]}", "metadata.macAddresses"},
      {"{\"serialNumber\":\"x\"}", "metadata.serialNumber"},
      {"{\"bios_serial\":\"x\"}", "metadata.bios_serial"},
      {"{\"driveLetter\":\"x\"}", "metadata.driveLetter"},
      {"{\"volume_label\":\"x\"}", "metadata.volume_label"},
      {"{\"lastLoggedInUser\":\"x\"}", "metadata.lastLoggedInUser"},
      {"{\"user\":\"x\"}", "metadata.user"},
      {"{\"email\":\"x\"}", "metadata.email"},
      {"{\"deviceId\":5948}", "metadata.deviceId"},
      {"{\"device_ids\":[1,2]}", "metadata.device_ids"},
      {"{\"systemName\":\"x\"}", "metadata.systemName"},
      {"{\"displayName\":\"x\"}", "metadata.displayName"},
      {"{\"nodes\":{\"nodeId\":1}}", "metadata.nodes.nodeId"},
      {"{\"computer\":\"x\"}", "metadata.computer"},
      {"{\"a\":\"10.0.8.4\"}", "metadata.a: value looks like an IPv4"},
      {"{\"a\":\"203.0.113.7\"}", "metadata.a: value looks like an IPv4"},
      {"{\"a\":\"192.168.1.0/24\"}", "metadata.a: value looks like an IPv4"},
      {"{\"a\":\"fe80::1c2b:3aff:fe4d:5e6f\"}", "metadata.a: value looks like an IPv6"},
      {"{\"a\":\"2001:db8::8a2e:370:7334\"}", "metadata.a: value looks like an IPv6"},
      {"{\"a\":\"00:1A:2B:3C:4D:5E\"}", "metadata.a: value looks like a MAC"},
      {"{\"a\":\"00-1a-2b-3c-4d-5e\"}", "metadata.a: value looks like a MAC"},
      {"{\"a\":\"001a.2b3c.4d5e\"}", "metadata.a: value looks like a MAC"},
      {"{\"a\":\"cts-fs01.contoso.local\"}", "metadata.a: value looks like a host name"},
      {"{\"a\":\"mail.example.com\"}", "metadata.a: value looks like a host name"},
      {"{\"a\":\"CTS-FS01\"}", "metadata.a: value looks like a machine name"},
      {"{\"a\":\"DESKTOP-7H3K2L9\"}", "metadata.a: value looks like a machine name"},
      {"{\"a\":\"7XK2QH3\"}", "metadata.a: value looks like a serial"},
      {"{\"a\":\"C02XK1ZJJGH5\"}", "metadata.a: value looks like a serial"},
      {"{\"a\":\"9A4C21F0\"}", "metadata.a: value looks like a serial"},
      {"{\"a\":\"C:\"}", "metadata.a: value looks like a drive letter"},
      {"{\"a\":\"D:\\\\\"}", "metadata.a: value looks like a drive letter"},
      {"{\"a\":\"CONTOSO\\\\admin.jdoe\"}", "metadata.a: value looks like a DOMAIN"},
      {"{\"a\":\"jdoe@contoso.com\"}", "metadata.a: value looks like an e-mail"},
      {"{\"a\":\"0b6f3d2e-9c41-4a57-8e1d-6c2b7a9f0e13\"}", "metadata.a: value looks like a device UUID"},
      {"{\"vendors\":{\"CTS-FS01\":3}}", "metadata.vendors: a key looks like a machine name"},
      {"{\"by\":{\"10.0.0.1\":1}}", "metadata.by: a key looks like an IPv4"},
      {"{\"list\":[\"ok\",\"10.1.2.3\"]}", "metadata.list[1]: value looks like an IPv4"},
      {"{\"deep\":{\"er\":{\"x\":\"jdoe@x.io\"}}}", "metadata.deep.er.x: value looks like an e-mail"},
  };
  return cr_make_param_array(pii_case_t, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(pii_case_t *c, pii, refuses_identifiers) {
  char err[512] = "";
  int rc = rn_pii_check(c->json, err, sizeof err);
  cr_expect_eq(rc, RN_EPII, "%s was accepted", c->json);
  cr_expect(strncmp(err, c->path, strlen(c->path)) == 0,
            "%s: error \"%s\" does not start with \"%s\"", c->json, err,
            c->path);
}

typedef struct ok_case_s {
  char json[400];
} ok_case_t;

ParameterizedTestParameters(pii, accepts_aggregates) {
  static ok_case_t cases[] = {
      {"{}"},
      {"{\"total_volumes\":120,\"encrypted\":114,\"percent\":95.0}"},
      {"{\"unknown\":3,\"thresholds\":{\"pass\":95,\"warning\":80}}"},
      {"{\"reason\":\"no_data\"}"},
      {"{\"truncated\":false,\"pages\":{\"/v2/queries/volumes\":3}}"},
      {"{\"endpoints\":[\"/v2/devices-detailed\",\"/v2/queries/antivirus-status\"]}"},
      {"{\"vendors\":{\"Microsoft Defender Antivirus\":40,\"SentinelOne\":2}}"},
      {"{\"buckets\":{\"fresh\":30,\"aging\":5,\"stale\":1,\"unprotected\":2}}"},
      {"{\"outstanding\":4,\"failed_installs\":0,\"by_severity\":{\"CRITICAL\":1,\"IMPORTANT\":3}}"},
      {"{\"devices\":25,\"offline\":3,\"offline_percent\":12.0}"},
      {"{\"devices_with_backup\":10,\"without_success\":1,\"failure_percent\":10.0}"},
      {"{\"os\":{\"Windows 11 Pro\":12,\"macOS 14 Sonoma\":3}}"},
      {"{\"classes\":{\"WINDOWS_WORKSTATION\":20,\"WINDOWS_SERVER\":3,\"MAC\":2}}"},
      {"{\"encryption_methods\":{\"XTS_AES_128\":40,\"NONE\":2}}"},
      {"{\"definition_status\":{\"Up-to-Date\":30,\"Out-of-Date\":2}}"},
      {"{\"window_days\":7,\"activity_types\":[\"NINJA_BACKUP\"]}"},
      {"{\"status\":\"PASS\",\"rule\":\">= 95% encrypted\"}"},
      {"{\"collected_with\":\"regentra-runner 0.1.0\"}"},
      {"{\"agent_version\":\"5.9.1234.1\"}"},
      {"{\"user_count\":14,\"hostname_count\":25}"},
      {"{\"products\":[{\"name\":\"Sophos Intercept X\",\"devices\":4}]}"},
      {"{\"ratio\":0.5,\"empty\":null,\"flag\":true}"},
  };
  return cr_make_param_array(ok_case_t, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(ok_case_t *c, pii, accepts_aggregates) {
  char err[512] = "";
  cr_expect_eq(rn_pii_check(c->json, err, sizeof err), 0, "%s refused: %s",
               c->json, err);
}

Test(pii, never_repeats_the_offending_value) {
  char err[512];
  rn_pii_check("{\"a\":\"secret-host-42.contoso.local\"}", err, sizeof err);
  cr_expect(!strstr(err, "contoso"), "%s", err);
}

Test(pii, rejects_non_objects_and_bad_json) {
  char err[256];
  cr_expect_eq(rn_pii_check("[1,2]", err, sizeof err), RN_EJSON);
  cr_expect_eq(rn_pii_check("{\"a\":", err, sizeof err), RN_EJSON);
}

Test(normalize, serials_and_macs) {
  char out[64];
  cr_expect(rn_normalize_serial(" 7xk2-qh3 ", out, sizeof out));
  cr_expect_str_eq(out, "7XK2QH3");
  cr_expect(!rn_normalize_serial("To be filled by O.E.M.", out, sizeof out));
  cr_expect(!rn_normalize_serial("0000000", out, sizeof out));
  cr_expect(!rn_normalize_serial("", out, sizeof out));
  cr_expect(rn_normalize_mac("00-1A-2B-3C-4D-5E", out, sizeof out));
  cr_expect_str_eq(out, "00:1a:2b:3c:4d:5e");
  cr_expect(rn_normalize_mac("001a.2b3c.4d5e", out, sizeof out));
  cr_expect(!rn_normalize_mac("00:00:00:00:00:00", out, sizeof out));
  cr_expect(!rn_normalize_mac("not a mac", out, sizeof out));
}

/* Found by fuzz_pii: a path longer than the buffer overran it when the last
 * step was an array index. */
Test(pii, deep_paths_are_cut_not_overrun) {
  char json[4096], err[512];
  size_t len = 0;
  len += (size_t)snprintf(json + len, sizeof json - len, "{\"%0400d\":", 0);
  for (int i = 0; i < 200; i++)
    json[len++] = '[';
  len += (size_t)snprintf(json + len, sizeof json - len, "\"10.0.0.1\"");
  for (int i = 0; i < 200; i++)
    json[len++] = ']';
  snprintf(json + len, sizeof json - len, "}");
  cr_expect_eq(rn_pii_check(json, err, sizeof err), RN_EPII);
  cr_expect_eq(strncmp(err, "metadata.000", 12), 0, "%s", err);
}
