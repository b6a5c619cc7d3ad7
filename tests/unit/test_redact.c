/* Error texts shown on the dashboard: addresses, URL hosts and the hosts
 * curl names (a peer a connection failed to reach) and MAC addresses (a
 * customer's device) are replaced, the rest of the text stays. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"

struct redact_case {
  char text[200];
  char want[200];
};

ParameterizedTestParameters(redact, replaces_addresses_and_url_hosts) {
  static struct redact_case cases[] = {
      /* IPv4, as before */
      {"connect to 10.20.30.40 failed", "connect to [address] failed"},
      {"peer:10.20.30.40:443", "peer:[address]:443"},
      {"version 1.2.3.4.5 and 1234.1.1.1", "version 1.2.3.4.5 and 1234.1.1.1"},
      /* IPv6: full, compressed, loopback, at the end of a sentence */
      {"from 2001:0db8:85a3:0000:0000:8a2e:0370:7334 now",
       "from [address] now"},
      {"to 2001:db8::1: refused", "to [address]: refused"},
      {"reset by ::1.", "reset by [address]."},
      {"peer fe80::1%eth0 gone", "peer [address] gone"},
      {"addr=2001:db8::42,", "addr=[address],"},
      /* v4-mapped, whole (not "::ffff:[address]") */
      {"from ::ffff:10.20.30.40 now", "from [address] now"},
      {"from ::FFFF:192.0.2.1", "from [address]"},
      /* bracketed, with and without a port */
      {"connect to [2001:db8::1]:8443 failed",
       "connect to [address]:8443 failed"},
      {"([::1])", "([address])"},
      {"[::ffff:192.0.2.1]:80", "[address]:80"},
      /* URLs: the host goes, the scheme, port and path stay */
      {"GET https://eu.ninjarmm.com/v2/devices: 503",
       "GET https://[host]/v2/devices: 503"},
      {"http://sim.internal:8080/ws/oauth/token timed out",
       "http://[host]:8080/ws/oauth/token timed out"},
      {"url http://10.1.2.3:9/x", "url http://[address]:9/x"},
      {"url http://[2001:db8::7]:9187/metrics",
       "url http://[address]:9187/metrics"},
      {"postgresql://regentra:s3cret@db.example.org:5432/platform down",
       "postgresql://[host]:5432/platform down"},
      {"'https://host.example.com'", "'https://[host]'"},
      {"see https://example.com?q=1", "see https://[host]?q=1"},
      {"https://u:p@[::1]:80/x", "https://[address]:80/x"},
      /* a URL cut short keeps nothing of its authority */
      {"GET https://user:pa", "GET https://[host]"},
      /* MAC addresses, colons or hyphens, any case */
      {"device aa:bb:cc:dd:ee:ff gone", "device [mac] gone"},
      {"mac=00-1A-2B-3C-4D-5E,", "mac=[mac],"},
      {"MAC:AA:BB:CC:DD:EE:0F.", "MAC:[mac]."},
      {"(aa:bb:cc:dd:ee:ff)", "([mac])"},
      {"seen 00:11:22:33:44:55: no", "seen [mac]: no"},
      /* not a MAC: five or seven pairs, mixed separators, a longer pair */
      {"aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee"},
      {"00:aa:bb:cc:dd:ee:ff", "00:aa:bb:cc:dd:ee:ff"},
      {"aa:bb:cc-dd-ee-ff", "aa:bb:cc-dd-ee-ff"},
      {"aa:bb:cc:dd:ee:fff", "aa:bb:cc:dd:ee:fff"},
      {"aabbccddeeff and aa.bb.cc.dd.ee.ff",
       "aabbccddeeff and aa.bb.cc.dd.ee.ff"},
      /* curl's messages name the host bare */
      {"Could not resolve host: eu.ninjarmm.com",
       "Could not resolve host: [host]"},
      {"GET failed: Could not resolve host: sim.internal (curl error 6)",
       "GET failed: Could not resolve host: [host] (curl error 6)"},
      {"Could not resolve proxy: proxy.corp.",
       "Could not resolve proxy: [host]."},
      {"Couldn't resolve host 'db-01'", "Couldn't resolve host '[host]'"},
      {"Failed to connect to api.example.com port 443 after 2 ms: "
       "Couldn't connect to server",
       "Failed to connect to [host] port 443 after 2 ms: Couldn't connect to "
       "server"},
      {"Failed to connect to 10.0.0.7 port 5432", "Failed to connect to "
                                                  "[address] port 5432"},
      {"Failed to connect to ::1 port 80", "Failed to connect to [address] "
                                           "port 80"},
      {"SSL: no alternative certificate subject name matches target host "
       "name 'app.eu.ninjarmm.com'",
       "SSL: no alternative certificate subject name matches target host "
       "name '[host]'"},
      {"certificate subject name '*.example.org' does not match target host "
       "name 'x.test'",
       "certificate subject name '[host]' does not match target host name "
       "'[host]'"},
      /* what is not an address stays */
      {"Couldn't resolve host name (curl error 6)",
       "Couldn't resolve host name (curl error 6)"},
      {"job 42: mapping 17 of organization 5 refused",
       "job 42: mapping 17 of organization 5 refused"},
      {"id 550e8400-e29b-41d4-a716-446655440000 on 2026-12-02T12:30:45Z",
       "id 550e8400-e29b-41d4-a716-446655440000 on 2026-12-02T12:30:45Z"},
      {"deadbeefcafe at 12:30:45.123", "deadbeefcafe at 12:30:45.123"},
      {"Failed to connect: refused", "Failed to connect: refused"},
      {"at 12:30:45 std::string Error::Timeout",
       "at 12:30:45 std::string Error::Timeout"},
      {"HTTP 429 after 3 retries", "HTTP 429 after 3 retries"},
      {"no scheme://", "no scheme://"},
      {"", ""},
  };
  return cr_make_param_array(struct redact_case, cases,
                             sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct redact_case *c, redact,
                  replaces_addresses_and_url_hosts) {
  char *got = rn__dashboard_redact(c->text);
  cr_assert(got);
  cr_expect_str_eq(got, c->want, "\"%s\": got \"%s\", want \"%s\"", c->text,
                   got, c->want);
  free(got);
}

/* A dead job's error is cut at 300 characters: what the cut left of an
 * address goes with it, then the rest is redacted as usual. */
ParameterizedTestParameters(redact, drops_an_address_the_cut_split) {
  static struct redact_case cases[] = {
      {"peer 10.20.30.", "peer "},
      {"from 2001:db8:aa", "from "},
      {"to [2001:db8::", "to "},
      {"device aa:bb:cc:dd:e", "device "},
      {"device aa-bb-cc-", "device "},
      {"Could not resolve host: eu.ninj", "Could not resolve host: [host]"},
      {"10.1.2.3 refused, then aa:bb:cc:dd:ee:ff, then 2001:d",
       "[address] refused, then [mac], then "},
      /* a cut after a word keeps the word, but not hex digits at its end */
      {"timed out after 3 retries", "timed out after 3 retries"},
      {"timed out after 3", "timed out after "},
  };
  return cr_make_param_array(struct redact_case, cases,
                             sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct redact_case *c, redact,
                  drops_an_address_the_cut_split) {
  char *got = rn__dashboard_redact_cut(c->text);
  cr_assert(got);
  cr_expect_str_eq(got, c->want, "\"%s\": got \"%s\", want \"%s\"", c->text,
                   got, c->want);
  free(got);
}
