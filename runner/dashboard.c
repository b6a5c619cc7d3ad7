/* dashboard.c - the operator page at GET / of the admin port.
 *
 * One page load is one round of two statements sent together through the
 * asynchronous db service: one over the runner schema (queue, leases, runs,
 * rate budgets, sweeps), one over the platform tables (signals of promoted
 * customers), kept apart so a database without the platform tables still
 * gets the runner's view. Each returns rows tagged with a section number,
 * so nothing has to parse JSON. The connection stays suspended meanwhile;
 * a timer bounds the wait by cancelling what has not answered.
 *
 * What the page prints is chosen so that it never shows a secret, token,
 * device identifier, hostname or address: lease owners and finishers
 * (host:pid:nonce) are shown as a short digest, rate keys are the digests
 * the sources already use, errors are escaped and truncated, and signal
 * metadata is left out. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dashboard.h"
#include "db.h"

#define ERROR_CHARS 300 /* of a dead job's last error */
#define ERROR_CHARS_TEXT "300"
/* "Last runs" looks at this many latest finished rows of each outcome. */
#define RECENT_RUNS_TEXT "2000"
#define TIMELINE_HOURS 24
#define TIMELINE_NAMES 40 /* rows of the timeline at most */

struct rn__dashboard_s {
  rn__runner_t *runner;
  void (*wake)(void *data);
  void *wake_data;
  rn__list_t pages; /* waiting for the database */
};

typedef struct html_s {
  char *data;
  size_t len, cap;
  bool failed;
} html_t;

/* One page being prepared, owned by the request's con_cls slot and freed
 * once its connection, its queries and its timer are all done with it. */
typedef struct page_s {
  rn__dashboard_t *dash; /* NULL once the dashboard closed */
  rn__list_t link;
  struct MHD_Connection *conn;
  unsigned holds; /* connection + queries in flight + open timer */
  bool suspended;
  bool ready; /* body and status are final */
  bool timed_out;
  bool sweeps_only; /* the timeline shows sweep jobs, not every job */
  bool no_database; /* none configured: nothing is down */
  uv_timer_t timer;
  rn__db_query_t *runner_query, *compliance_query;
  /* each part rendered as its answer arrives */
  html_t runner_html, compliance_html;
  bool runner_ok, compliance_ok;
  unsigned status;
  html_t body;
} page_t;

/* ---------------------------------------------------------------- html */

static void html_add(html_t *h, const char *fmt, ...) RN_PRINTF_LIKE(2, 3);

static void html_add(html_t *h, const char *fmt, ...) {
  if (h->failed)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->data ? h->data + h->len : NULL,
                      h->data ? h->cap - h->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      h->failed = true;
      return;
    }
    if (h->data && (size_t)n < h->cap - h->len) {
      h->len += (size_t)n;
      return;
    }
    size_t want = h->cap ? h->cap * 2 : 8192;
    while (want < h->len + (size_t)n + 1)
      want *= 2;
    char *grown = realloc(h->data, want);
    if (!grown) {
      h->failed = true;
      return;
    }
    h->data = grown;
    h->cap = want;
  }
}

static void html_append(html_t *h, const html_t *part) {
  if (part->failed)
    h->failed = true;
  else if (part->len)
    html_add(h, "%.*s", (int)part->len, part->data);
}

/* Text from the database or configuration, safe in element content and in
 * quoted attribute values. Control characters other than newline and tab
 * become U+FFFD. */
static void html_text(html_t *h, const char *s) {
  for (const char *p = s; *p; p++) {
    switch (*p) {
    case '&':
      html_add(h, "&amp;");
      break;
    case '<':
      html_add(h, "&lt;");
      break;
    case '>':
      html_add(h, "&gt;");
      break;
    case '"':
      html_add(h, "&quot;");
      break;
    case '\'':
      html_add(h, "&#39;");
      break;
    default:
      if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t')
        html_add(h, "\xEF\xBF\xBD");
      else
        html_add(h, "%c", *p);
    }
  }
}

/* Length of a dotted IPv4 address at p (four groups of 1-3 digits, not
 * part of a longer run of digits and dots), or 0. */
static size_t ipv4_at(const char *p) {
  size_t n = 0;
  for (int group = 0; group < 4; group++) {
    size_t digits = 0;
    while (p[n] >= '0' && p[n] <= '9' && digits < 4) {
      n++;
      digits++;
    }
    if (digits == 0 || digits > 3)
      return 0;
    if (group < 3) {
      if (p[n] != '.')
        return 0;
      n++;
    }
  }
  bool longer = (p[n] >= '0' && p[n] <= '9') ||
                (p[n] == '.' && p[n + 1] >= '0' && p[n + 1] <= '9');
  return longer ? 0 : n;
}

static bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F');
}

static bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z');
}

/* Length of an IPv6 address at p (v4-mapped and zone ids included), or 0:
 * the longest run of hex digits, colons and dots that inet_pton accepts,
 * so that a sentence's full stop or colon after it is not taken. */
static size_t ipv6_at(const char *p) {
  enum { LONGEST = 45 }; /* ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 */
  size_t run = 0, colons = 0, hex = 0;
  while (run <= LONGEST && (is_hex(p[run]) || p[run] == ':' || p[run] == '.')) {
    colons += p[run] == ':';
    hex += is_hex(p[run]);
    run++;
  }
  if (run > LONGEST || colons < 2 || hex == 0 || is_alnum(p[run]))
    return 0;
  char text[LONGEST + 1];
  struct in6_addr addr;
  for (size_t len = run; len >= 2; len--) {
    memcpy(text, p, len);
    text[len] = '\0';
    if (inet_pton(AF_INET6, text, &addr) == 1) {
      if (p[len] == '%') { /* a zone: fe80::1%eth0 */
        len++;
        while (is_alnum(p[len]) || p[len] == '_' || p[len] == '-')
          len++;
      }
      return len;
    }
  }
  return 0;
}

/* Length of "[IPv6]" at p, or 0. */
static size_t bracketed_ipv6_at(const char *p) {
  if (*p != '[')
    return 0;
  size_t n = ipv6_at(p + 1);
  return n && p[1 + n] == ']' ? n + 2 : 0;
}

/* Length of a MAC address at p (six pairs of hex digits joined by all
 * colons or all hyphens), or 0. Not one when the run goes on: a seventh
 * pair or more digits, or when a pair and the same separator come before
 * p ("00:aa:bb:cc:dd:ee:ff" is no MAC, and not one from its second pair). */
static size_t mac_at(const char *start, const char *p) {
  char sep = p[0] && p[1] ? p[2] : '\0';
  if (sep != ':' && sep != '-')
    return 0;
  size_t n = 0;
  for (int pair = 0; pair < 6; pair++) {
    if (!is_hex(p[n]) || !is_hex(p[n + 1]))
      return 0;
    n += 2;
    if (pair < 5) {
      if (p[n] != sep)
        return 0;
      n++;
    }
  }
  if (is_alnum(p[n]) || (p[n] == sep && is_hex(p[n + 1])))
    return 0;
  size_t before = (size_t)(p - start);
  if (before >= 3 && p[-1] == sep && is_hex(p[-2]) && is_hex(p[-3]) &&
      (before == 3 || !is_alnum(p[-4])))
    return 0;
  return n;
}

/* curl's messages name the host bare, not in a URL; the phrases that come
 * right before it (libcurl 7.x and 8.x: hostip.c, connect.c, vtls). */
static const char *const host_phrases[] = {
    "Could not resolve host: ", "Could not resolve proxy: ",
    "Couldn't resolve host '",  "Couldn't resolve proxy '",
    "Failed to connect to ",    "target host name '",
    "subject name '",
};

/* Length of a host-naming phrase at p, or 0. */
static size_t host_phrase_at(const char *p) {
  for (size_t i = 0; i < sizeof host_phrases / sizeof host_phrases[0]; i++) {
    size_t n = strlen(host_phrases[i]);
    if (strncasecmp(p, host_phrases[i], n) == 0)
      return n;
  }
  return 0;
}

/* Length of a bare host name at p: labels of letters, digits, '-' and '_'
 * joined by dots ("*." for a certificate's wildcard); a full stop after it
 * is the sentence's. */
static size_t host_name_at(const char *p) {
  size_t n = strncmp(p, "*.", 2) == 0 ? 2 : 0;
  for (;;) {
    size_t label = 0;
    while (is_alnum(p[n + label]) || p[n + label] == '-' || p[n + label] == '_')
      label++;
    if (label == 0)
      return n && p[n - 1] == '.' ? n - 1 : n;
    n += label;
    if (p[n] != '.' || !is_alnum(p[n + 1]))
      return n;
    n++;
  }
}

/* At p, "scheme://": the length of the scheme and its "://", or 0. */
static size_t url_scheme_at(const char *p) {
  if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
    return 0;
  size_t n = 1;
  while (is_alnum(p[n]) || p[n] == '+' || p[n] == '-' || p[n] == '.')
    n++;
  return strncmp(p + n, "://", 3) == 0 ? n + 3 : 0;
}

/* Appends to out (growing it; false when out of memory). */
static bool text_add(char **out, size_t *len, size_t *cap, const char *s,
                     size_t n) {
  if (*len + n + 1 > *cap) {
    size_t want = (*len + n + 1) * 2;
    char *grown = realloc(*out, want);
    if (!grown)
      return false;
    *out = grown;
    *cap = want;
  }
  memcpy(*out + *len, s, n);
  *len += n;
  (*out)[*len] = '\0';
  return true;
}

/* A URL's authority at p (after "scheme://"): user information is dropped,
 * the host becomes [address] (an IP literal) or [host], a numeric port
 * stays. Returns the length consumed. */
static size_t redact_authority(const char *p, char **out, size_t *len,
                               size_t *cap, bool *ok) {
  size_t end = strcspn(p, "/?#\"'<>()[]{} \t\r\n,;");
  /* An IPv6 literal's brackets are part of the authority. */
  for (size_t at = end; p[at] == '[' || p[at] == ']';)
    at = end = at + 1 + strcspn(p + at + 1, "/?#\"'<>() \t\r\n,;");
  if (end == 0)
    return 0;
  const char *host = p;
  for (size_t i = 0; i < end; i++)
    if (p[i] == '@')
      host = p + i + 1;
  size_t host_len;
  bool literal;
  if (*host == '[') {
    const char *close = memchr(host, ']', (size_t)(p + end - host));
    host_len = close ? (size_t)(close - host) + 1 : (size_t)(p + end - host);
    literal = true;
  } else {
    host_len = strcspn(host, ":");
    if (host_len > (size_t)(p + end - host))
      host_len = (size_t)(p + end - host);
    literal = ipv4_at(host) == host_len;
  }
  *ok = *ok && text_add(out, len, cap, literal ? "[address]" : "[host]",
                        literal ? 9 : 6);
  const char *port = host + host_len;
  if (port < p + end && *port == ':') {
    size_t digits = 1;
    while (port + digits < p + end && port[digits] >= '0' &&
           port[digits] <= '9')
      digits++;
    if (digits > 1 && port + digits == p + end)
      *ok = *ok && text_add(out, len, cap, port, digits);
  }
  return end;
}

char *rn__dashboard_redact(const char *text) {
  char *out = NULL;
  size_t len = 0, cap = 0;
  bool ok = text_add(&out, &len, &cap, "", 0);
  for (const char *p = text; ok && *p;) {
    char prev = p == text ? ' ' : p[-1];
    /* Where each kind may start: not inside a word, a number or (for IPv4,
     * as before) a dotted run; an IPv6 address may follow a colon. */
    bool word_start = !(is_alnum(prev) || prev == '.' || prev == '_');
    bool scheme_start = word_start && prev != '+' && prev != '-';
    bool ipv4_start = !((prev >= '0' && prev <= '9') || prev == '.');
    size_t n;
    if (scheme_start && (n = url_scheme_at(p))) {
      ok = text_add(&out, &len, &cap, p, n);
      p += n;
      p += redact_authority(p, &out, &len, &cap, &ok);
    } else if (word_start && (n = host_phrase_at(p))) {
      /* The phrase stays; the host after it goes (an address as one). */
      ok = text_add(&out, &len, &cap, p, n);
      p += n;
      size_t literal = bracketed_ipv6_at(p);
      if (!literal)
        literal = ipv6_at(p);
      if (!literal)
        literal = ipv4_at(p);
      size_t name = literal ? 0 : host_name_at(p);
      if (literal || name)
        ok = ok && text_add(&out, &len, &cap, literal ? "[address]" : "[host]",
                            literal ? 9 : 6);
      p += literal ? literal : name;
    } else if (word_start && (n = mac_at(text, p))) {
      ok = text_add(&out, &len, &cap, "[mac]", 5);
      p += n;
    } else if ((n = bracketed_ipv6_at(p)) || (word_start && (n = ipv6_at(p))) ||
               (ipv4_start && (n = ipv4_at(p)))) {
      ok = text_add(&out, &len, &cap, "[address]", 9);
      p += n;
    } else {
      ok = text_add(&out, &len, &cap, p, 1);
      p++;
    }
  }
  if (!ok) {
    free(out);
    return NULL;
  }
  return out;
}

char *rn__dashboard_redact_cut(const char *text) {
  /* The cut may have split an address (IPv4 or IPv6, bracketed or not, or
   * a MAC address): drop a trailing part of one. */
  size_t len = strlen(text);
  while (len && (is_hex(text[len - 1]) || text[len - 1] == '.' ||
                 text[len - 1] == ':' || text[len - 1] == '-' ||
                 text[len - 1] == '['))
    len--;
  char *kept = strndup(text, len);
  char *redacted = kept ? rn__dashboard_redact(kept) : NULL;
  free(kept);
  return redacted;
}

/* An error text as html_text does, with addresses and hosts replaced: an
 * error may quote the peer a connection failed to reach, or a device.
 * cut: the text was cut short. */
static void html_error(html_t *h, const char *s, bool cut) {
  char *redacted = cut ? rn__dashboard_redact_cut(s) : rn__dashboard_redact(s);
  if (!redacted) {
    h->failed = true;
    return;
  }
  html_text(h, redacted);
  free(redacted);
}

/* 1234567 as "1,234,567". */
static void html_count(html_t *h, long long n) {
  char digits[32];
  int len = snprintf(digits, sizeof digits, "%lld", n < 0 ? 0 : n);
  for (int i = 0; i < len; i++) {
    if (i > 0 && (len - i) % 3 == 0)
      html_add(h, ",");
    html_add(h, "%c", digits[i]);
  }
}

/* "42s", "17m", "3h 05m", "6d 04h". */
static void html_duration(html_t *h, long long s) {
  if (s < 0)
    s = 0;
  if (s < 60)
    html_add(h, "%llds", s);
  else if (s < 3600)
    html_add(h, "%lldm", s / 60);
  else if (s < 86400)
    html_add(h, "%lldh %02lldm", s / 3600, s % 3600 / 60);
  else
    html_add(h, "%lldd %02lldh", s / 86400, s % 86400 / 3600);
}

static void html_ms(html_t *h, long long ms) {
  if (ms < 1000)
    html_add(h, "%lld ms", ms);
  else if (ms < 60000)
    html_add(h, "%.1f s", (double)ms / 1000.0);
  else
    html_duration(h, ms / 1000);
}

static long long num(PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col)
             ? 0
             : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static const char *str(PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col);
}

static const char style[] =
    "<style>"
    ":root{--fg:#1f2933;--mute:#66788a;--line:#e3e8ee;--bg:#f5f7fa;"
    "--card:#fff;--ok:#1f9d55;--warn:#d97706;--bad:#dc2626;--none:#9aa5b1;"
    "--accent:#4f46e5}"
    "*{box-sizing:border-box}"
    "body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',"
    "Roboto,sans-serif;color:var(--fg);background:var(--bg)}"
    "header{display:flex;flex-wrap:wrap;gap:6px 22px;align-items:baseline;"
    "padding:14px 28px;background:#111827;color:#e5e7eb}"
    "header h1{font-size:17px;margin:0 12px 0 0;color:#fff;letter-spacing:.2px}"
    "header span{font-size:13px;color:#9ca3af}header b{color:#e5e7eb;"
    "font-weight:600}"
    "main{padding:18px 28px 40px;max-width:1280px}"
    ".banner{padding:10px 14px;border-radius:6px;margin:0 0 16px;"
    "background:#fef2f2;color:#991b1b;border:1px solid #fecaca}"
    ".grid{display:grid;grid-template-columns:repeat(4,1fr);gap:14px;"
    "margin-bottom:18px}"
    ".stat{background:var(--card);border:1px solid var(--line);"
    "border-radius:8px;padding:12px 16px;border-top:4px solid var(--none)}"
    ".stat .num{display:block;font-size:28px;font-weight:650;"
    "font-variant-numeric:tabular-nums}"
    ".stat .lbl{color:var(--mute);font-size:12px;text-transform:uppercase;"
    "letter-spacing:.6px}"
    ".s-available{border-top-color:var(--accent)}"
    ".s-running{border-top-color:var(--warn)}"
    ".s-completed{border-top-color:var(--ok)}.s-dead{border-top-color:var(--"
    "bad)}"
    "section{background:var(--card);border:1px solid var(--line);"
    "border-radius:8px;margin-bottom:18px;overflow:hidden}"
    "section h2{font-size:13px;margin:0;padding:10px 16px;"
    "text-transform:uppercase;letter-spacing:.6px;color:var(--mute);"
    "border-bottom:1px solid var(--line);background:#fafbfc}"
    "section h2 small{text-transform:none;letter-spacing:0;font-weight:400;"
    "margin-left:8px}"
    "table{width:100%;border-collapse:collapse}"
    "th,td{text-align:left;padding:7px 16px;border-bottom:1px solid "
    "var(--line);vertical-align:top}"
    "th{font-size:12px;color:var(--mute);font-weight:600}"
    "tr:last-child td{border-bottom:0}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".empty{padding:12px 16px;color:var(--mute)}"
    ".err{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;"
    "white-space:pre-wrap;word-break:break-word;color:#7f1d1d;max-width:760px}"
    ".pill{display:inline-block;padding:1px 8px;border-radius:10px;"
    "font-size:12px;font-weight:600;color:#fff;background:var(--none)}"
    ".PASS,.completed{background:var(--ok)}.WARNING{background:var(--warn)}"
    ".FAIL,.dead{background:var(--bad)}.nodata{background:var(--none)}"
    ".mine{background:var(--accent)}"
    ".runs span{display:inline-block;width:12px;height:12px;border-radius:3px;"
    "margin-right:3px;vertical-align:middle}"
    ".sig{display:flex;flex-direction:column;align-items:flex-start;gap:2px;"
    "min-width:120px}.sig.expired .pill{opacity:.45}"
    ".sig small{color:var(--mute);font-size:11px}.sig .old{color:var(--bad)}"
    ".bar{height:6px;background:#edf0f3;border-radius:3px;overflow:hidden;"
    "min-width:120px}"
    ".bar i{display:block;height:100%;background:var(--ok)}"
    ".bar i.hi{background:var(--warn)}.bar i.full{background:var(--bad)}"
    ".tl{display:grid;grid-template-columns:200px repeat(24,1fr);gap:3px;"
    "padding:12px 16px;align-items:center}"
    ".tl .name{font-size:12px;overflow:hidden;text-overflow:ellipsis;"
    "white-space:nowrap}"
    ".tl .h{font-size:10px;color:var(--mute);text-align:center}"
    ".tl .box{height:26px;border-radius:4px;background:#edf0f3;"
    "font-size:11px;display:flex;align-items:center;justify-content:center;"
    "color:#fff;font-weight:600}"
    ".tl .box.ok{background:var(--ok)}.tl .box.bad{background:var(--bad)}"
    ".tl .box.mixed{background:var(--warn)}"
    ".kv{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0;padding:12px 16px;"
    "color:var(--mute)}.kv b{color:var(--fg);font-weight:600;margin-left:4px}"
    "#process table{border-top:1px solid var(--line)}"
    "footer{color:var(--mute);font-size:12px}"
    "</style>";

/* ------------------------------------------------------------- queries */

/* The runner that ended a row's last attempt: "self" for this process ($2),
 * else a digest of host:pid:nonce (never the host name); NULL when unknown. */
#define FINISHER_SQL                                                           \
  " CASE WHEN finished_by = $2 THEN 'self'"                                    \
  " ELSE left(md5(finished_by), 8) END"

/* Rows of (section, order, a..g), all text. $1: the names of the sweep
 * jobs (text[]), NULL for every job; $2: this process's queue identity. */
static const char runner_sql[] =
    "SELECT 0 AS sec, 0::bigint AS ord, state AS a, count(*)::text AS b,"
    " NULL::text AS c, NULL::text AS d, NULL::text AS e, NULL::text AS f,"
    " NULL::text AS g"
    "  FROM runner.job GROUP BY state "
    "UNION ALL "
    "SELECT 1, row_number() OVER (ORDER BY started_at, id), id::text, name,"
    " left(md5(lease_owner), 8),"
    " floor(extract(epoch FROM now() - started_at))::bigint::text,"
    " attempt::text, max_attempts::text, NULL"
    "  FROM (SELECT * FROM runner.job WHERE state = 'running'"
    "         ORDER BY started_at, id LIMIT 50) r "
    "UNION ALL "
    "SELECT 2, row_number() OVER (ORDER BY finished_at DESC NULLS LAST,"
    " id DESC), id::text, name, attempt::text || '/' || max_attempts,"
    " floor(extract(epoch FROM now() - coalesce(finished_at,"
    " created_at)))::bigint::text,"
    " left(last_error, " ERROR_CHARS_TEXT "), length(last_error)::text,"
    FINISHER_SQL
    "  FROM (SELECT * FROM runner.job WHERE state = 'dead'"
    "         ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 20) d "
    "UNION ALL "
    "SELECT 3, row_number() OVER (ORDER BY name, finished_at DESC, id DESC),"
    " name, state, floor(extract(epoch FROM now() - finished_at))::bigint"
    "::text, duration_ms::text, attempt::text," FINISHER_SQL ", NULL"
    /* Among the latest finished rows of each outcome, read backwards
     * over job_finished_idx: a bounded read however long the history. */
    "  FROM (SELECT *, row_number() OVER (PARTITION BY name"
    "                  ORDER BY finished_at DESC, id DESC) AS nth"
    "         FROM ((SELECT name, state, finished_at, duration_ms, attempt, id,"
    "                       finished_by"
    "                  FROM runner.job WHERE state = 'completed'"
    "                   AND finished_at > now() - interval '7 days'"
    "                 ORDER BY finished_at DESC LIMIT " RECENT_RUNS_TEXT ")"
    "               UNION ALL"
    "               (SELECT name, state, finished_at, duration_ms, attempt, id,"
    "                       finished_by"
    "                  FROM runner.job WHERE state = 'dead'"
    "                   AND finished_at > now() - interval '7 days'"
    "                 ORDER BY finished_at DESC LIMIT " RECENT_RUNS_TEXT ")) f"
    "       ) x"
    " WHERE nth <= 5 "
    "UNION ALL "
    "SELECT 4, row_number() OVER (ORDER BY b.key, (e.w ->> "
    "'period_ms')::bigint),"
    " b.key, e.w ->> 'limit', e.w ->> 'period_ms', coalesce(u.used, 0)::text,"
    " greatest(floor(extract(epoch FROM b.paused_until - now())), 0)"
    "::bigint::text, NULL, NULL"
    "  FROM (SELECT * FROM runner.rate_bucket ORDER BY key LIMIT 100) b"
    "  CROSS JOIN LATERAL (SELECT value AS w FROM"
    "   jsonb_array_elements(b.windows) LIMIT 8) e"
    "  LEFT JOIN LATERAL (SELECT sum(g.tokens) AS used FROM runner.rate_grant g"
    "    WHERE g.key = b.key AND g.tokens > 0 AND g.ends_at > now()"
    "      - (e.w ->> 'period_ms')::bigint * interval '1 millisecond') u"
    "    ON true "
    "UNION ALL "
    /* Clock hours (UTC), so that a box matches the hour over it. */
    "SELECT 5, row_number() OVER (ORDER BY name, h), name,"
    " (extract(epoch FROM date_trunc('hour', now() AT TIME ZONE 'UTC') - h)"
    "  / 3600)::int::text, ok::text, bad::text, NULL, NULL, NULL"
    "  FROM (SELECT name, date_trunc('hour', finished_at AT TIME ZONE 'UTC')"
    "   AS h, count(*) FILTER (WHERE state = 'completed') AS ok,"
    "   count(*) FILTER (WHERE state = 'dead') AS bad"
    "  FROM runner.job WHERE state IN ('completed', 'dead')"
    "   AND finished_at >= (date_trunc('hour', now() AT TIME ZONE 'UTC')"
    "                       - interval '23 hours') AT TIME ZONE 'UTC'"
    "   AND ($1::text[] IS NULL OR name = ANY ($1::text[]))"
    "  GROUP BY 1, 2) t "
    "UNION ALL "
    "SELECT 6, 0, extract(hour FROM now() AT TIME ZONE 'UTC')::int::text,"
    " to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
    " NULL, NULL, NULL, NULL, NULL "
    "ORDER BY 1, 2";

enum {
  SEC_QUEUE,
  SEC_RUNNING,
  SEC_DEAD,
  SEC_RUNS,
  SEC_RATE,
  SEC_TIMELINE,
  SEC_META
};

static const char *const signal_keys[] = {
    "disk_encryption", "antivirus_posture", "patch_sla", "backup_activity",
    "device_inventory"};
static const char *const signal_titles[] = {
    "Disk encryption", "Antivirus", "Patch SLA", "Backup", "Device inventory"};

/* Per customer compliance organization of a MAPPED mapping whose company
 * was promoted: the latest row of each of the five signals (or NULLs). */
static const char compliance_sql[] =
    "WITH customer AS ("
    " SELECT DISTINCT o.id, o.name FROM public.integration_org_mapping m"
    "   JOIN public.portal_company pc ON pc.id = m.portal_company_id"
    "   JOIN public.organization o ON o.id = pc.converted_to_organization_id"
    "  WHERE m.state = 'MAPPED' ORDER BY o.name, o.id LIMIT 200) "
    "SELECT c.id::text, c.name, k.pos::text, s.status,"
    " floor(extract(epoch FROM now() - s.collected_at))::bigint::text,"
    " floor(extract(epoch FROM s.expires_at - now()))::bigint::text"
    "  FROM customer c"
    "  CROSS JOIN unnest(ARRAY['disk_encryption', 'antivirus_posture',"
    "   'patch_sla', 'backup_activity', 'device_inventory'])"
    "   WITH ORDINALITY AS k(key, pos)"
    "  LEFT JOIN LATERAL (SELECT ms.status, ms.collected_at, ms.expires_at"
    "    FROM public.monitoring_signal ms"
    "   WHERE ms.organization_id = c.id AND ms.signal_key = k.key"
    "   ORDER BY ms.collected_at DESC, ms.id DESC LIMIT 1) s ON true"
    " ORDER BY c.name, c.id, k.pos";

/* ----------------------------------------------------------- rendering */

static const char *const queue_states[] = {"available", "running", "completed",
                                           "dead"};

/* Whether queue row `id` is run by this process. */
static bool run_here(const rn__runner_t *runner, long long id) {
  for (const rn__list_t *l = runner->jobs.next; l != &runner->jobs;
       l = l->next) {
    const rn_job_t *job = rn__container_of(l, rn_job_t, link);
    if (job->queue_id == id)
      return true;
  }
  return false;
}

static void section_open(html_t *h, const char *id, const char *title,
                         const char *note) {
  html_add(h, "<section id=\"%s\"><h2>%s", id, title);
  if (note)
    html_add(h, "<small>%s</small>", note);
  html_add(h, "</h2>");
}

static void render_queue(html_t *h, PGresult *res) {
  long long counts[RN_ARRAY_SIZE(queue_states)] = {0};
  for (int row = 0; row < PQntuples(res); row++) {
    if (num(res, row, 0) != SEC_QUEUE)
      continue;
    for (size_t i = 0; i < RN_ARRAY_SIZE(queue_states); i++)
      if (strcmp(str(res, row, 2), queue_states[i]) == 0)
        counts[i] = num(res, row, 3);
  }
  html_add(h, "<div class=\"grid\" id=\"queue\">");
  for (size_t i = 0; i < RN_ARRAY_SIZE(queue_states); i++) {
    html_add(h, "<div class=\"stat s-%s\"><span id=\"queue-%s\" class=\"num\">",
             queue_states[i], queue_states[i]);
    html_count(h, counts[i]);
    html_add(h, "</span><span class=\"lbl\">%s</span></div>", queue_states[i]);
  }
  html_add(h, "</div>");
}

static void render_running(html_t *h, const rn__runner_t *runner,
                           PGresult *res) {
  section_open(h, "running", "Running jobs", "all runners, oldest first");
  bool any = false;
  for (int row = 0; row < PQntuples(res); row++) {
    if (num(res, row, 0) != SEC_RUNNING)
      continue;
    if (!any)
      html_add(h,
               "<table><tr><th class=\"n\">id</th><th>job</th><th>runner</th>"
               "<th>running for</th><th class=\"n\">attempt</th></tr>");
    any = true;
    long long id = num(res, row, 2);
    html_add(h, "<tr><td class=\"n\">%lld</td><td>", id);
    html_text(h, str(res, row, 3));
    if (run_here(runner, id))
      html_add(h, "</td><td><span class=\"pill mine\">this runner</span>");
    else
      html_add(h, "</td><td>runner %s", str(res, row, 4));
    html_add(h, "</td><td>");
    html_duration(h, num(res, row, 5));
    html_add(h, "</td><td class=\"n\">%lld / %lld</td></tr>", num(res, row, 6),
             num(res, row, 7));
  }
  html_add(h, any ? "</table>" : "<p class=\"empty\">No job is running.</p>");
  html_add(h, "</section>");
}

/* The runner of a finished row (FINISHER_SQL): this process, a peer by
 * digest, or nothing for rows that ended before it was recorded. */
static void html_finisher(html_t *h, const char *finisher) {
  if (strcmp(finisher, "self") == 0)
    html_add(h, "<span class=\"pill mine\">this runner</span>");
  else if (*finisher)
    html_add(h, "runner %s", finisher);
}

static void render_dead(html_t *h, PGresult *res) {
  section_open(h, "dead", "Dead jobs", "latest 20, out of attempts");
  bool any = false;
  for (int row = 0; row < PQntuples(res); row++) {
    if (num(res, row, 0) != SEC_DEAD)
      continue;
    if (!any)
      html_add(h, "<table><tr><th class=\"n\">id</th><th>job</th>"
                  "<th class=\"n\">attempts</th>"
                  "<th>died</th><th>runner</th><th>last error</th></tr>");
    any = true;
    html_add(h, "<tr><td class=\"n\">%lld</td><td>", num(res, row, 2));
    html_text(h, str(res, row, 3));
    html_add(h, "</td><td class=\"n\">");
    html_text(h, str(res, row, 4));
    html_add(h, "</td><td>");
    html_duration(h, num(res, row, 5));
    html_add(h, " ago</td><td>");
    html_finisher(h, str(res, row, 8));
    html_add(h, "</td><td><div class=\"err\">");
    html_error(h, str(res, row, 6), num(res, row, 7) > ERROR_CHARS);
    if (num(res, row, 7) > ERROR_CHARS)
      html_add(h, "\xE2\x80\xA6"); /* … */
    html_add(h, "</div></td></tr>");
  }
  html_add(h, any ? "</table>" : "<p class=\"empty\">No dead job.</p>");
  html_add(h, "</section>");
}

/* One table row per job name: the latest outcome, its duration, and the
 * last five outcomes as coloured squares (newest first). */
static void render_runs(html_t *h, PGresult *res) {
  section_open(h, "runs", "Last runs per job", "up to 5 per job, last 7 days");
  bool any = false;
  const char *name = NULL;
  for (int row = 0; row < PQntuples(res); row++) {
    if (num(res, row, 0) != SEC_RUNS)
      continue;
    if (!any)
      html_add(h, "<table><tr><th>job</th><th>last outcome</th>"
                  "<th>finished</th><th class=\"n\">duration</th>"
                  "<th class=\"n\">attempt</th><th>runner</th>"
                  "<th>last 5</th></tr>");
    any = true;
    if (name && strcmp(name, str(res, row, 2)) == 0)
      continue; /* drawn with its name's squares below */
    name = str(res, row, 2);
    html_add(h, "<tr><td>");
    html_text(h, name);
    const char *state = str(res, row, 3);
    html_add(h, "</td><td><span class=\"pill %s\">%s</span></td><td>",
             strcmp(state, "dead") == 0 ? "dead" : "completed",
             strcmp(state, "dead") == 0 ? "dead" : "completed");
    html_duration(h, num(res, row, 4));
    html_add(h, " ago</td><td class=\"n\">");
    html_ms(h, num(res, row, 5));
    html_add(h, "</td><td class=\"n\">%lld</td><td>", num(res, row, 6));
    html_finisher(h, str(res, row, 7));
    html_add(h, "</td><td class=\"runs\">");
    for (int r = row; r < PQntuples(res) && num(res, r, 0) == SEC_RUNS &&
                      strcmp(str(res, r, 2), name) == 0;
         r++) {
      bool dead = strcmp(str(res, r, 3), "dead") == 0;
      html_add(h, "<span class=\"%s\" title=\"%s, ",
               dead ? "dead" : "completed", dead ? "dead" : "completed");
      html_ms(h, num(res, r, 5));
      html_add(h, "\"></span>");
    }
    html_add(h, "</td></tr>");
  }
  html_add(h, any ? "</table>"
                  : "<p class=\"empty\">No finished run in 7 days.</p>");
  html_add(h, "</section>");
}

static void window_name(html_t *h, long long period_ms) {
  if (period_ms == 60000)
    html_add(h, "per minute");
  else if (period_ms == 3600000)
    html_add(h, "per hour");
  else if (period_ms == 86400000)
    html_add(h, "per day");
  else {
    html_add(h, "per ");
    html_ms(h, period_ms);
  }
}

static void render_rate(html_t *h, PGresult *res) {
  section_open(h, "rate", "Rate budgets",
               "per credential key, shared by every runner");
  bool any = false;
  for (int row = 0; row < PQntuples(res); row++) {
    if (num(res, row, 0) != SEC_RATE)
      continue;
    if (!any)
      html_add(h, "<table><tr><th>key</th><th>window</th><th class=\"n\">budget"
                  "</th><th class=\"n\">used</th><th class=\"n\">headroom"
                  "</th><th>used share</th></tr>");
    any = true;
    long long limit = num(res, row, 3), used = num(res, row, 5);
    long long headroom = limit > used ? limit - used : 0;
    long long pct = limit > 0 ? used * 100 / limit : 100;
    if (pct > 100)
      pct = 100;
    html_add(h, "<tr><td>");
    html_text(h, str(res, row, 2));
    if (num(res, row, 6) > 0) {
      html_add(h, " <span class=\"pill WARNING\">paused ");
      html_duration(h, num(res, row, 6));
      html_add(h, "</span>");
    }
    html_add(h, "</td><td>");
    window_name(h, num(res, row, 4));
    html_add(h,
             "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td>"
             "<td class=\"n\">%lld</td><td><div class=\"bar\"><i class=\"%s\""
             " style=\"width:%lld%%\"></i></div></td></tr>",
             limit, used, headroom,
             pct >= 90   ? "full"
             : pct >= 70 ? "hi"
                         : "",
             pct);
  }
  html_add(h, any ? "</table>"
                  : "<p class=\"empty\">No upstream request budget in use "
                    "yet.</p>");
  html_add(h, "</section>");
}

/* Rows of 24 boxes, oldest hour on the left; the rows of one name are
 * adjacent (ordered by name). */
static void render_timeline(html_t *h, PGresult *res, bool sweeps,
                            int hour_now) {
  section_open(h, "timeline",
               sweeps ? "Sweeps, last 24 hours" : "Runs, last 24 hours",
               sweeps ? "finished runs per clock hour (UTC): green completed, "
                        "amber some died, red all died"
                      : "no sweep job is configured, so every job: finished "
                        "runs per clock hour (UTC)");
  int row = 0, nrows = PQntuples(res);
  while (row < nrows && num(res, row, 0) != SEC_TIMELINE)
    row++;
  if (row == nrows || num(res, row, 0) != SEC_TIMELINE) {
    html_add(h, "<p class=\"empty\">Nothing finished in 24 hours.</p>"
                "</section>");
    return;
  }
  html_add(h, "<div class=\"tl\"><span></span>");
  for (int i = TIMELINE_HOURS - 1; i >= 0; i--)
    html_add(h, "<span class=\"h\">%02d</span>",
             ((hour_now - i) % 24 + 24) % 24);
  unsigned names = 0, more = 0;
  while (row < nrows && num(res, row, 0) == SEC_TIMELINE) {
    const char *name = str(res, row, 2);
    long long ok[TIMELINE_HOURS] = {0}, bad[TIMELINE_HOURS] = {0};
    for (; row < nrows && num(res, row, 0) == SEC_TIMELINE &&
           strcmp(str(res, row, 2), name) == 0;
         row++) {
      long long ago = num(res, row, 3);
      if (ago < 0 || ago >= TIMELINE_HOURS)
        continue;
      ok[ago] += num(res, row, 4);
      bad[ago] += num(res, row, 5);
    }
    if (names++ >= TIMELINE_NAMES) {
      more++;
      continue;
    }
    html_add(h, "<span class=\"name\" title=\"");
    html_text(h, name);
    html_add(h, "\">");
    html_text(h, name);
    html_add(h, "</span>");
    for (int i = TIMELINE_HOURS - 1; i >= 0; i--) {
      long long total = ok[i] + bad[i];
      const char *tone = !total    ? ""
                         : !bad[i] ? " ok"
                         : ok[i]   ? " mixed"
                                   : " bad";
      html_add(h, "<span class=\"box%s\" title=\"%lld completed, %lld dead\">",
               tone, ok[i], bad[i]);
      if (total)
        html_add(h, "%lld", total);
      html_add(h, "</span>");
    }
  }
  html_add(h, "</div>");
  if (more)
    html_add(h, "<p class=\"empty\">and %u more job(s)</p>", more);
  html_add(h, "</section>");
}

static void render_runner_part(page_t *page, PGresult *res) {
  html_t *h = &page->runner_html;
  rn__runner_t *runner = page->dash->runner;
  int hour_now = 0;
  for (int row = 0; row < PQntuples(res); row++)
    if (num(res, row, 0) == SEC_META)
      hour_now = (int)num(res, row, 2);
  render_queue(h, res);
  render_running(h, runner, res);
  render_dead(h, res);
  render_runs(h, res);
  render_rate(h, res);
  render_timeline(h, res, page->sweeps_only, hour_now);
}

static void render_compliance(html_t *h, PGresult *res) {
  section_open(h, "signals", "Evidence signals",
               "per compliance-promoted customer, latest of each signal");
  if (PQntuples(res) == 0) {
    html_add(h, "<p class=\"empty\">No promoted customer.</p></section>");
    return;
  }
  html_add(h, "<table><tr><th>customer</th>");
  for (size_t i = 0; i < RN_ARRAY_SIZE(signal_titles); i++)
    html_add(h, "<th>%s</th>", signal_titles[i]);
  html_add(h, "</tr>");
  for (int row = 0; row < PQntuples(res); row++) {
    long long pos = num(res, row, 2);
    if (pos == 1) {
      html_add(h, "<tr id=\"customer-%lld\"><td>", num(res, row, 0));
      html_text(h, str(res, row, 1));
      html_add(h, "</td>");
    }
    const char *status = str(res, row, 3);
    const char *key = pos >= 1 && pos <= (long long)RN_ARRAY_SIZE(signal_keys)
                          ? signal_keys[pos - 1]
                          : "unknown";
    bool expired = *status && num(res, row, 5) <= 0;
    html_add(h, "<td><div class=\"sig%s\" id=\"signal-%lld-%s\">",
             expired ? " expired" : "", num(res, row, 0), key);
    if (!*status) {
      html_add(h, "<span class=\"pill nodata\">no data</span></div></td>");
    } else {
      long long age = num(res, row, 4), left = num(res, row, 5);
      html_add(h, "<span class=\"pill ");
      html_text(h, status);
      html_add(h, "\">");
      html_text(h, status);
      html_add(h, "</span><small>");
      html_duration(h, age);
      html_add(h, " old</small>");
      if (left > 0) {
        html_add(h, "<small>expires in ");
        html_duration(h, left);
      } else {
        html_add(h, "<small class=\"old\">expired ");
        html_duration(h, -left);
        html_add(h, " ago");
      }
      html_add(h, "</small></div></td>");
    }
    if (pos == (long long)RN_ARRAY_SIZE(signal_keys))
      html_add(h, "</tr>");
  }
  html_add(h, "</table></section>");
}

/* What this process knows without the database. */
static void render_process(html_t *h, const rn__runner_t *runner) {
  section_open(h, "process", "This runner", NULL);
  const rn__generation_t *gen = runner->gen;
  html_add(h,
           "<p class=\"kv\"><span>generation <b id=\"generation\">%llu</b>"
           "</span><span>plugins <b>%zu</b></span><span>configured jobs "
           "<b>%zu</b></span><span>jobs running here <b id=\"running-here\">"
           "%u</b></span><span>state <b>%s</b></span></p>",
           (unsigned long long)(gen ? gen->id : 0), gen ? gen->nplugins : 0,
           gen ? gen->njobs : 0, runner->running_jobs,
           runner->stopping ? "draining" : "serving");
  if (!rn__list_empty(&runner->jobs)) {
    html_add(
        h, "<table><tr><th>job</th><th class=\"n\">queue id</th><th>running for"
           "</th></tr>");
    uint64_t now = uv_now(runner->loop);
    for (const rn__list_t *l = runner->jobs.next; l != &runner->jobs;
         l = l->next) {
      const rn_job_t *job = rn__container_of(l, rn_job_t, link);
      html_add(h, "<tr><td>");
      html_text(h, job->conf             ? job->conf->name
                   : job->qualified_name ? job->qualified_name
                                         : "?");
      html_add(h, "</td><td class=\"n\">");
      if (job->queue_id)
        html_add(h, "%lld", (long long)job->queue_id);
      html_add(h, "</td><td>");
      html_duration(h, (long long)((now - job->started_ms) / 1000));
      html_add(h, "</td></tr>");
    }
    html_add(h, "</table>");
  }
  html_add(h, "</section>");
}

/* ----------------------------------------------------------- lifetime */

static void page_release(page_t *page) {
  if (--page->holds > 0)
    return;
  free(page->runner_html.data);
  free(page->compliance_html.data);
  free(page->body.data);
  free(page);
}

static void timer_closed(uv_handle_t *handle) {
  page_release(handle->data);
}

static void assemble(page_t *page, const char *problem) {
  rn__runner_t *runner = page->dash->runner;
  html_t *h = &page->body;
  const rn__generation_t *gen = runner->gen;
  time_t now = time(NULL);
  struct tm tm;
  char stamp[32];
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S UTC", &tm);
  html_add(h,
           "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width\">"
           "<title>regentra-runner</title>%s</head><body><header>"
           "<h1>regentra-runner</h1><span>version <b>%s</b></span>"
           "<span>generation <b>%llu</b></span><span>database <b id=\"db\">"
           "%s</b></span><span>%s</span></header><main>",
           style, RN_VERSION, (unsigned long long)(gen ? gen->id : 0),
           page->no_database ? "none"
           : problem         ? "unavailable"
                             : "up",
           stamp);
  if (problem) {
    html_add(h, "<p class=\"banner\" id=\"problem\">");
    html_text(h, problem);
    html_add(h, "</p>");
  }
  if (page->runner_ok)
    html_append(h, &page->runner_html);
  if (page->runner_ok || page->compliance_ok)
    html_append(h, &page->compliance_html);
  render_process(h, runner);
  html_add(h, "<footer>Read-only. Reload the page to refresh; nothing here "
              "changes the queue.</footer></main></body></html>\n");
  page->status = problem && !page->no_database ? MHD_HTTP_SERVICE_UNAVAILABLE
                                               : MHD_HTTP_OK;
  page->ready = true;
}

/* Both answers are in (or cancelled): render and wake the connection. */
static void page_finish(page_t *page) {
  if (page->runner_query || page->compliance_query)
    return;
  rn__dashboard_t *dash = page->dash;
  if (page->dash && !page->ready) {
    char problem[400] = "";
    if (!page->runner_ok) {
      if (page->timed_out)
        snprintf(problem, sizeof problem,
                 "The database did not answer within %d ms; showing what "
                 "this runner knows.",
                 RN__DASHBOARD_QUERY_TIMEOUT_MS);
      else if (page->runner_html.len)
        snprintf(problem, sizeof problem, "%.*s", (int)page->runner_html.len,
                 page->runner_html.data);
      else
        snprintf(problem, sizeof problem,
                 "The database is unavailable; showing what this runner "
                 "knows.");
    }
    assemble(page, problem[0] ? problem : NULL);
    rn__list_remove(&page->link);
  }
  if (!uv_is_closing((uv_handle_t *)&page->timer))
    uv_close((uv_handle_t *)&page->timer, timer_closed);
  if (page->suspended) {
    page->suspended = false;
    MHD_resume_connection(page->conn);
    if (dash)
      dash->wake(dash->wake_data); /* may answer, end and release the page */
  }
}

static void runner_answered(int status, PGresult *res, const char *errmsg,
                            void *data) {
  page_t *page = data;
  page->runner_query = NULL;
  if (page->dash && status == 0) {
    page->runner_ok = true;
    render_runner_part(page, res);
  } else if (page->dash && status == RN_ECANCELED && !page->timed_out) {
    /* Only the runner cancels it then: it is closing its database. */
    html_add(&page->runner_html, "The runner is stopping; the database was "
                                 "not asked.");
  } else if (page->dash && !page->timed_out) {
    rn__log(RN_LOG_WARNING, "admin", "dashboard query failed: %s", errmsg);
    html_add(&page->runner_html, "The database query failed: %s", errmsg);
  }
  page_finish(page);
  page_release(page);
}

static void compliance_answered(int status, PGresult *res, const char *errmsg,
                                void *data) {
  page_t *page = data;
  page->compliance_query = NULL;
  /* Shown when the runner part is, or on its own when it succeeded. */
  if (page->dash && status == 0) {
    page->compliance_ok = true;
    render_compliance(&page->compliance_html, res);
  } else if (page->dash) {
    html_t *h = &page->compliance_html;
    section_open(h, "signals", "Evidence signals", NULL);
    if (page->timed_out)
      html_add(h, "<p class=\"empty\">The database did not answer in "
                  "time.</p></section>");
    else if (strcmp(rn__db_sqlstate(page->dash->runner), "42P01") == 0)
      html_add(h, "<p class=\"empty\">This database has no platform tables "
                  "(monitoring_signal).</p></section>");
    else {
      html_add(h, "<p class=\"empty\">Unavailable: ");
      html_text(h, errmsg);
      html_add(h, "</p></section>");
    }
  }
  page_finish(page);
  page_release(page);
}

static void on_timeout(uv_timer_t *timer) {
  page_t *page = timer->data;
  page->timed_out = true;
  /* Each callback still runs once, with RN_ECANCELED. */
  if (page->runner_query)
    rn__db_cancel(page->runner_query);
  if (page->compliance_query)
    rn__db_cancel(page->compliance_query);
}

/* Names of the sweep jobs as a text[] literal: configured jobs whose name
 * or job says "sweep", and every event job of their plugins (the
 * per-customer work a sweep fans out into). NULL (no filter) when none. */
static char *sweep_names(const rn__runner_t *runner) {
  const rn__generation_t *gen = runner->gen;
  if (!gen)
    return NULL;
  html_t list = {0};
  bool any = false;
  for (size_t i = 0; i < gen->njobs; i++) {
    const rn__gen_job_t *job = &gen->jobs[i];
    if (!job->valid || !job->conf ||
        (!strstr(job->conf->name, "sweep") && !strstr(job->conf->job, "sweep")))
      continue;
    html_add(&list, "%s\"", any ? "," : "{");
    for (const char *p = job->conf->name; *p; p++)
      html_add(&list, "%s%c", *p == '"' || *p == '\\' ? "\\" : "", *p);
    html_add(&list, "\"");
    any = true;
    const rn_plugin_t *desc = job->plugin->desc;
    for (size_t j = 0; desc->jobs && desc->jobs[j]; j++)
      html_add(&list, ",\"%s.%s\"", job->plugin->name, desc->jobs[j]->name);
  }
  if (!any || list.failed) {
    free(list.data);
    return NULL;
  }
  html_add(&list, "}");
  if (list.failed) {
    free(list.data);
    return NULL;
  }
  return list.data;
}

static int page_start(rn__dashboard_t *dash, page_t *page) {
  rn__runner_t *runner = dash->runner;
  rn__db_t *db = runner->db;
  const char *url = runner->gen ? runner->gen->config->database_url : NULL;
  if (!url || !*url) {
    page->no_database = true;
    html_add(&page->runner_html, "No database is configured: jobs run in "
                                 "this process only, and there is no queue "
                                 "to show.");
    return 0;
  }
  if (!db || !rn__db_up(db))
    return 0; /* the default banner: unavailable */
  char *names = sweep_names(runner);
  page->sweeps_only = names != NULL;
  const char *params[] = {names, rn__queue_owner(runner)};
  page->holds++;
  int rc = rn__db_exec(db, runner_sql, 2, params, runner_answered, page,
                       &page->runner_query);
  free(names);
  if (rc < 0) {
    page->holds--;
    page->runner_query = NULL;
    html_add(&page->runner_html, "The database query could not be sent: %s",
             rn__strerror(rc));
    return 0;
  }
  page->holds++;
  rc = rn__db_exec(db, compliance_sql, 0, NULL, compliance_answered, page,
                   &page->compliance_query);
  if (rc < 0) {
    page->holds--;
    page->compliance_query = NULL;
  }
  return 0;
}

/* ------------------------------------------------------------ serving */

static enum MHD_Result respond_page(page_t *page) {
  const char *body = page->body.failed ? "out of memory\n" : page->body.data;
  size_t len = page->body.failed ? strlen(body) : page->body.len;
  struct MHD_Response *response =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!response)
    return MHD_NO;
  enum MHD_Result rc =
      MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                              page->body.failed ? "text/plain; charset=utf-8"
                                                : "text/html; charset=utf-8");
  /* Nothing external may load, and the page is never framed. */
  if (rc == MHD_YES)
    rc = MHD_add_response_header(
        response, "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors "
        "'none'");
  if (rc == MHD_YES)
    rc = MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                                 "no-store");
  if (rc == MHD_YES)
    rc = MHD_queue_response(page->conn,
                            page->body.failed ? MHD_HTTP_INTERNAL_SERVER_ERROR
                                              : page->status,
                            response);
  MHD_destroy_response(response);
  return rc;
}

rn__dashboard_t *rn__dashboard_new(rn__runner_t *runner,
                                   void (*wake)(void *data), void *wake_data) {
  rn__dashboard_t *dash = calloc(1, sizeof *dash);
  if (!dash)
    return NULL;
  dash->runner = runner;
  dash->wake = wake;
  dash->wake_data = wake_data;
  rn__list_init(&dash->pages);
  return dash;
}

enum MHD_Result rn__dashboard_serve(rn__dashboard_t *dash,
                                    struct MHD_Connection *conn,
                                    void **con_cls) {
  page_t *page = *con_cls;
  if (page)
    return page->ready ? respond_page(page) : MHD_YES;
  if (!dash)
    return MHD_NO;
  page = calloc(1, sizeof *page);
  if (!page)
    return MHD_NO;
  page->dash = dash;
  page->conn = conn;
  page->holds = 2; /* the connection, the timer */
  rn__list_init(&page->link);
  if (uv_timer_init(dash->runner->loop, &page->timer) < 0) {
    free(page);
    return MHD_NO;
  }
  page->timer.data = page;
  *con_cls = page;
  rn__list_push(&dash->pages, &page->link);
  page_start(dash, page);
  if (!page->runner_query && !page->compliance_query) {
    page_finish(page); /* nothing to wait for */
    return respond_page(page);
  }
  uv_timer_start(&page->timer, on_timeout, RN__DASHBOARD_QUERY_TIMEOUT_MS, 0);
  page->suspended = true;
  MHD_suspend_connection(conn);
  return MHD_YES;
}

void rn__dashboard_request_ended(void **con_cls) {
  page_t *page = con_cls ? *con_cls : NULL;
  if (!page)
    return;
  *con_cls = NULL;
  page_release(page);
}

void rn__dashboard_close(rn__dashboard_t *dash) {
  if (!dash)
    return;
  while (!rn__list_empty(&dash->pages)) {
    page_t *page = rn__container_of(dash->pages.next, page_t, link);
    rn__list_remove(&page->link);
    page->dash = NULL;
    html_add(&page->body, "<!DOCTYPE html><title>regentra-runner</title>"
                          "<p>The runner is stopping.</p>\n");
    page->status = MHD_HTTP_SERVICE_UNAVAILABLE;
    page->ready = true;
    if (page->suspended) {
      page->suspended = false;
      MHD_resume_connection(page->conn);
    }
    /* Their callbacks release the page; page_finish closes the timer. */
    if (page->runner_query)
      rn__db_cancel(page->runner_query);
    if (page->compliance_query)
      rn__db_cancel(page->compliance_query);
  }
  free(dash);
}
