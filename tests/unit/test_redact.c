/* Error texts shown on the dashboard: addresses and URL hosts (a peer a
 * connection failed to reach) are replaced, the rest of the text stays. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"

struct redact_case {
  char text[160];
  char want[160];
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
      /* what is not an address stays */
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
