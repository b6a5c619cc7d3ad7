/* The operator dashboard at / of the admin port: a serving daemon over a
 * database filled through real operations (enqueued runs, a run that dies,
 * a rate grant, signals written to the platform tables), fetched with
 * libcurl and rendered by headless Chromium, its numbers checked against
 * the database. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rt_runner.h"

static rt_runner_t runner;
static char dsn[700];
static int port;
static rt_proc_t daemon_proc;

/* Jobs without a schedule, all qprobe.record: "rec", "flaky" (for the run
 * that dies), "evidence-sweep" (a sweep by its name) and "hold" (held open
 * while the page is read). */
static const char jobs[] =
    "[job \"rec\"]\nplugin = qprobe\njob = record\n\n"
    "[job \"flaky\"]\nplugin = qprobe\njob = record\n\n"
    "[job \"evidence-sweep\"]\nplugin = qprobe\njob = record\n\n"
    "[job \"hold\"]\nplugin = qprobe\njob = record\n";

/* runner.conf with admin_listen on a free loopback port and `database` as
 * the [database] url (NULL: a migrated fresh database). */
static void configure(const char *database) {
  static const char *const plugins[] = {RT_QPROBE, NULL};
  rt_runner_prepare(&runner, "dashboard", plugins, jobs);
  if (!database)
    snprintf(dsn, sizeof dsn, "%s", rt_pg_fresh_db());
  port = rt_free_port();
  char runner_lines[128];
  snprintf(runner_lines, sizeof runner_lines,
           "drain_timeout = 2s\nadmin_listen = 127.0.0.1:%d\n", port);
  rt_runner_write_conf(&runner, runner_lines, database ? database : dsn,
                       "poll_interval = 200ms\n");
  if (database)
    return;
  rt_runner_migrate(&runner);
  rt_qprobe_table(dsn);
}

static void start_daemon(void) {
  rt_runner_serve(&runner, &daemon_proc, NULL, "the dashboard (/)", 15000);
}

/* After SIGTERM: the daemon exits 0 with a clean log. */
static void expect_clean_exit(void) {
  char *log = rt_runner_expect_clean_exit(&daemon_proc, 30000);
  cr_expect(strstr(log, "runner: stopped"), "%s", log);
  cr_expect(!strstr(log, "suspended connections"), "%s", log);
  free(log);
}

static void stop_daemon_expect_clean_exit(void) {
  rt_proc_kill(&daemon_proc, SIGTERM);
  expect_clean_exit();
}

static void teardown(void) {
  rt_runner_kill(&daemon_proc);
  rt_remove_tree(runner.dir);
}

static void enqueue(const char *event, const char *payload, const char *flag,
                    const char *value) {
  char *argv[9];
  int argc = 0;
  argv[argc++] = RT_RUNNER;
  argv[argc++] = "enqueue";
  argv[argc++] = (char *)event;
  argv[argc++] = (char *)payload;
  if (flag) {
    argv[argc++] = (char *)flag;
    argv[argc++] = (char *)value;
  }
  argv[argc++] = "-c";
  argv[argc++] = runner.conf;
  argv[argc] = NULL;
  char *err = NULL;
  int rc = rt_run(argv, NULL, NULL, NULL, &err);
  cr_assert_eq(rc, 0, "enqueue %s %s: %s", event, payload, err);
  free(err);
}

/* ------------------------------------------------------------- fetching */

typedef struct body_s {
  char *data;
  size_t len;
} body_t;

static size_t collect(char *p, size_t size, size_t n, void *userp) {
  body_t *b = userp;
  char *grown = realloc(b->data, b->len + size * n + 1);
  if (!grown)
    return 0;
  memcpy(grown + b->len, p, size * n);
  b->data = grown;
  b->len += size * n;
  b->data[b->len] = '\0';
  return size * n;
}

/* GETs / ; returns the status, *body (new) and *elapsed_ms. */
static long fetch_page(char **body, char **content_type, long *elapsed_ms) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
  CURL *curl = curl_easy_init();
  cr_assert(curl);
  body_t b = {.data = calloc(1, 1)};
  cr_assert(b.data);
  cr_assert_eq(curl_easy_setopt(curl, CURLOPT_URL, url), CURLE_OK);
  cr_assert_eq(curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect),
               CURLE_OK);
  cr_assert_eq(curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b), CURLE_OK);
  cr_assert_eq(curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L), CURLE_OK);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CURLcode rc = curl_easy_perform(curl);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  cr_assert_eq(rc, CURLE_OK, "GET %s: %s", url, curl_easy_strerror(rc));
  long status = 0;
  cr_assert_eq(curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status),
               CURLE_OK);
  if (content_type) {
    char *ct = NULL;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    *content_type = strdup(ct ? ct : "");
  }
  curl_easy_cleanup(curl);
  if (elapsed_ms)
    *elapsed_ms =
        (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  *body = b.data;
  return status;
}

/* The text content of the element whose id is `id`, up to its first
 * child tag or its end (new), or NULL when absent. */
static char *element_text(const char *html, const char *id) {
  char needle[160];
  snprintf(needle, sizeof needle, "id=\"%s\"", id);
  const char *p = strstr(html, needle);
  if (!p)
    return NULL;
  p = strchr(p, '>');
  if (!p)
    return NULL;
  p++;
  size_t n = strcspn(p, "<");
  return strndup(p, n);
}

static long element_number(const char *html, const char *id) {
  char *text = element_text(html, id);
  cr_assert(text, "no element with id \"%s\" in the page", id);
  /* Thousands are separated by commas. */
  size_t w = 0;
  for (size_t r = 0; text[r]; r++)
    if (text[r] != ',')
      text[w++] = text[r];
  text[w] = '\0';
  char *end;
  long v = strtol(text, &end, 10);
  cr_assert(end != text && *end == '\0', "#%s holds \"%s\", not a number", id,
            text);
  free(text);
  return v;
}

/* The markup of the element with this id up to the end of its row or
 * section (new), to look for what it shows. */
static char *element_markup(const char *html, const char *id, const char *end) {
  char needle[160];
  snprintf(needle, sizeof needle, "id=\"%s\"", id);
  const char *p = strstr(html, needle);
  cr_assert(p, "no element with id \"%s\"", id);
  const char *q = strstr(p, end);
  cr_assert(q, "#%s is not closed by %s", id, end);
  return strndup(p, (size_t)(q - p));
}

static const char *const states[] = {"available", "running", "completed",
                                     "dead"};

/* Every number of the queue cards equals the database's count. */
static void expect_queue_counts(const char *html, const char *what) {
  for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
    char id[64], sql[160];
    snprintf(id, sizeof id, "queue-%s", states[i]);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM runner.job WHERE state = '%s'", states[i]);
    cr_expect_eq(element_number(html, id), rt_pg_count(dsn, sql),
                 "%s: %s differs from the database", what, states[i]);
  }
}

/* ---------------------------------------------------------- fixtures */

/* An MSP, a customer promoted from one of its companies with a MAPPED
 * mapping, and signals: disk PASS, antivirus WARNING, patch FAIL, backup
 * PASS but expired, device inventory never measured. A second company is
 * mapped but not promoted, and must not show. Returns the customer id. */
static long seed_signals(void) {
  char *id = rt_pg_query(
      dsn,
      "WITH msp AS (INSERT INTO public.organization (name, kind)"
      "  VALUES ('Helpdesk MSP', 'MSP') RETURNING id),"
      " cust AS (INSERT INTO public.organization (name, kind)"
      "  VALUES ('Acme <Dental> & Co', 'CUSTOMER') RETURNING id),"
      " pc AS (INSERT INTO public.portal_company (msp_org_id, name,"
      "  converted_to_organization_id)"
      "  SELECT msp.id, 'Acme Dental', cust.id FROM msp, cust RETURNING id,"
      "  msp_org_id),"
      " other AS (INSERT INTO public.portal_company (msp_org_id, name)"
      "  SELECT id, 'Not Promoted Ltd' FROM msp RETURNING id, msp_org_id),"
      " m1 AS (INSERT INTO public.integration_org_mapping (msp_org_id,"
      "  provider, region, external_org_id, external_name, state,"
      "  portal_company_id) SELECT msp_org_id, 'ninjaone', 'us', '17',"
      "  'Acme', 'MAPPED', id FROM pc),"
      " m2 AS (INSERT INTO public.integration_org_mapping (msp_org_id,"
      "  provider, region, external_org_id, external_name, state,"
      "  portal_company_id) SELECT msp_org_id, 'ninjaone', 'us', '18',"
      "  'Other', 'MAPPED', id FROM other)"
      "SELECT id::text FROM cust");
  cr_assert(id);
  long customer = strtol(id, NULL, 10);
  free(id);
  char sql[2048];
  snprintf(sql, sizeof sql,
           "INSERT INTO public.monitoring_signal (organization_id, source,"
           " signal_key, status, metadata, collected_at, expires_at) VALUES"
           " (%ld, 'ninjaone', 'disk_encryption', 'FAIL', '{}',"
           "  now() - interval '3 days', now() + interval '4 days'),"
           " (%ld, 'ninjaone', 'disk_encryption', 'PASS', '{}',"
           "  now() - interval '2 hours', now() + interval '7 days'),"
           " (%ld, 'ninjaone', 'antivirus_posture', 'WARNING', '{}',"
           "  now() - interval '2 hours', now() + interval '7 days'),"
           " (%ld, 'ninjaone', 'patch_sla', 'FAIL', '{}',"
           "  now() - interval '2 hours', now() + interval '7 days'),"
           " (%ld, 'ninjaone', 'backup_activity', 'PASS', '{}',"
           "  now() - interval '8 days', now() - interval '1 day')",
           customer, customer, customer, customer, customer);
  free(rt_pg_query(dsn, sql));
  return customer;
}

/* A grant of 30 requests on a NinjaOne-style key, through the function
 * every runner uses. */
static void seed_rate_grant(void) {
  free(rt_pg_query(dsn,
                   "SELECT grant_id::text FROM runner.rate_take('ninjaone/us/"
                   "0f1e2d3c4b5a6978', 'test:1:x', 30, '[{\"limit\": 200, "
                   "\"period_ms\": 60000}, {\"limit\": 1500, \"period_ms\": "
                   "3600000}]', 10, NULL, 0, 0)"));
}

/* A dead row with markup and a long error, as a plugin could leave one,
 * last run by another runner (PEER). */
#define PEER "peer-host-7:4242:0badf00d"
static void seed_hostile_dead_job(void) {
  free(rt_pg_query(
      dsn, "INSERT INTO runner.job (name, state, attempt, max_attempts,"
           " finished_by, last_error, finished_at) VALUES ('rec', 'dead', 3,"
           " 3, '" PEER "',"
           " rpad('<script>alert(1)</script> & \"quoted\" from 10.20.30.40,"
           " [2001:db8::7]:443, ::ffff:10.9.8.7 and"
           " https://user:pw@device-0042.customer.example/v2 ', 290, 'x') ||"
           /* The cut at 300 characters falls inside this address. */
           " ' 2001:db8:aaaa:bbbb:cccc:dddd::1 ' || repeat('x', 400),"
           " now() - interval '1 minute')"));
}

/* ---------------------------------------------------------- chromium */

static const char *chromium_path(void) {
  static const char *const candidates[] = {"/usr/bin/chromium",
                                           "/usr/bin/chromium-browser"};
  for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
    if (access(candidates[i], X_OK) == 0)
      return candidates[i];
  return NULL;
}

/* Runs headless Chromium on the page with `mode` (--screenshot=... or
 * --dump-dom); returns its stdout (new). */
static char *chromium(const char *mode) {
  const char *exe = chromium_path();
  cr_assert(exe, "chromium is not installed (Debian package \"chromium\", "
                 "see packaging/dev.sh): the rendering check cannot run");
  char url[128], profile[400], profile_arg[450];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
  snprintf(profile, sizeof profile, "%s/chromium-profile", runner.dir);
  snprintf(profile_arg, sizeof profile_arg, "--user-data-dir=%s", profile);
  char *argv[] = {(char *)exe,
                  "--headless",
                  "--no-sandbox",
                  "--disable-gpu",
                  "--disable-dev-shm-usage",
                  "--no-first-run",
                  profile_arg,
                  "--window-size=1280,1600",
                  (char *)mode,
                  url,
                  NULL};
  char home[400];
  snprintf(home, sizeof home, "HOME=%s", runner.dir);
  char *env[] = {home, NULL};
  char *out = NULL, *err = NULL;
  int rc = rt_run(argv, env, NULL, &out, &err);
  cr_assert_eq(rc, 0, "chromium %s failed (%d):\n%s", mode, rc, err);
  free(err);
  return out;
}

/* ---------------------------------------------------------------- tests */

TestSuite(dashboard, .fini = teardown, .timeout = 180);

Test(dashboard, shows_the_queue_runs_budgets_and_signals_of_the_database) {
  configure(NULL);
  long customer = seed_signals();
  seed_rate_grant();
  seed_hostile_dead_job();
  start_daemon();

  /* Three completed runs, two sweeps, one that dies on its only attempt,
   * one held open, two not due for an hour. */
  enqueue("rec", "{\"n\":1}", NULL, NULL);
  enqueue("rec", "{\"n\":2}", NULL, NULL);
  enqueue("rec", "{\"n\":3}", NULL, NULL);
  enqueue("evidence-sweep", "{\"n\":4}", NULL, NULL);
  enqueue("evidence-sweep", "{\"n\":5}", NULL, NULL);
  enqueue("flaky", "{\"n\":6,\"fail_until\":5}", "--max-attempts", "1");
  enqueue("hold", "{\"n\":7,\"sleep_ms\":60000}", NULL, NULL);
  enqueue("rec", "{\"n\":8}", "--delay-ms", "3600000");
  enqueue("rec", "{\"n\":9}", "--delay-ms", "3600000");
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'completed'",
                             5, 30000),
            "the runs did not complete");
  cr_assert(rt_pg_wait_count(
                dsn, "SELECT count(*) FROM runner.job WHERE state = 'dead'", 2,
                30000),
            "the flaky run did not die");
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM runner.job WHERE state = "
                             "'running'",
                             1, 30000),
            "the held run is not running");

  char *html, *type;
  long elapsed;
  long status = fetch_page(&html, &type, &elapsed);
  cr_assert_eq(status, 200, "/ answered %ld:\n%s", status, html);
  cr_expect(strstr(type, "text/html"), "content type %s", type);
  free(type);
  printf("dashboard: %zu bytes rendered in %ld ms\n", strlen(html), elapsed);
  cr_expect(strstr(html, "<!DOCTYPE html>"));
  cr_expect(!strstr(html, "<script"), "no script in the page");
  /* (An error quoting a URL is text, not an asset.) */
  static const char *const assets[] = {"src=\"http", "href=\"http", "url(http",
                                       "@import"};
  for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
    cr_expect(!strstr(html, assets[i]), "an external asset: %s", assets[i]);
  cr_expect(strstr(html, "id=\"db\">up<"), "database shown up");

  expect_queue_counts(html, "curl");
  cr_expect_eq(element_number(html, "queue-completed"), 5);
  cr_expect_eq(element_number(html, "queue-dead"), 2);
  cr_expect_eq(element_number(html, "queue-running"), 1);
  cr_expect_eq(element_number(html, "queue-available"), 2);
  cr_expect_eq(element_number(html, "generation"), 1);
  cr_expect_eq(element_number(html, "running-here"), 1);

  /* The held run is ours; no lease owner (host:pid:nonce) is printed. */
  char *running = element_markup(html, "running", "</section>");
  cr_expect(strstr(running, "hold") && strstr(running, "this runner"), "%s",
            running);
  free(running);
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  char *owner = rt_pg_query(
      dsn, "SELECT lease_owner FROM runner.job WHERE state = 'running'");
  cr_assert(owner && strstr(owner, host));
  cr_expect(!strstr(html, owner), "the lease owner leaked");
  cr_expect(strlen(host) < 4 || !strstr(html, host), "the hostname leaked");
  free(owner);

  /* Dead jobs: the real one with its error, the hostile one escaped and
   * cut short. */
  char *dead = element_markup(html, "dead", "</section>");
  char *flaky_error =
      rt_pg_query(dsn, "SELECT last_error FROM runner.job WHERE name = "
                       "'flaky' AND state = 'dead'");
  cr_assert(flaky_error);
  cr_expect(strstr(dead, "flaky") && strstr(dead, flaky_error),
            "expected \"%s\" in:\n%s", flaky_error, dead);
  free(flaky_error);
  cr_expect(strstr(dead, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; "
                         "&quot;quoted&quot; from [address], [address]:443, "
                         "[address] and https://[host]/v2 xxx"),
            "%s", dead);
  static const char *const leaks[] = {"10.20.30.40", "db8", "10.9.8.7",
                                      "device-0042", "user:pw"};
  for (size_t i = 0; i < sizeof leaks / sizeof leaks[0]; i++)
    cr_expect(!strstr(html, leaks[i]), "\"%s\" leaked:\n%s", leaks[i], dead);
  cr_expect(!strstr(html, "<script>"));
  /* Cut inside the last address: what was left of it is dropped. */
  cr_expect(strstr(dead, "xxx \xE2\x80\xA6</div>"), "long error not cut: %s",
            dead);
  cr_expect(!strstr(dead, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            "300 characters at most");
  /* Which runner ran each: the flaky one here, the other by a digest of
   * its identity, never by its host name. */
  char *digest = rt_pg_query(dsn, "SELECT 'runner ' || left(md5('" PEER
                                  "'), 8)");
  cr_expect(strstr(dead, "<td><span class=\"pill mine\">this runner</span>"
                         "</td>") && strstr(dead, digest),
            "expected this runner and %s in:\n%s", digest, dead);
  cr_expect(!strstr(html, "peer-host-7"), "the peer's host name leaked");
  free(digest);
  free(dead);

  /* Last runs: one row per job name that finished, with its runner. */
  char *runs = element_markup(html, "runs", "</section>");
  cr_expect(strstr(runs, "<td>rec</td>") && strstr(runs, "<td>flaky</td>") &&
                strstr(runs, "<td>evidence-sweep</td>"),
            "%s", runs);
  cr_expect(strstr(runs, "this runner"), "%s", runs);
  cr_expect(!strstr(runs, "<td>hold</td>"), "a running job has no outcome");
  free(runs);

  /* Budgets: 30 of 200 a minute and of 1,500 an hour. */
  char *rate = element_markup(html, "rate", "</section>");
  cr_expect(strstr(rate, "ninjaone/us/0f1e2d3c4b5a6978"), "%s", rate);
  cr_expect(strstr(rate, "per minute</td><td class=\"n\">200</td><td "
                         "class=\"n\">30</td><td class=\"n\">170</td>"),
            "%s", rate);
  cr_expect(strstr(rate, "per hour</td><td class=\"n\">1500</td><td "
                         "class=\"n\">30</td><td class=\"n\">1470</td>"),
            "%s", rate);
  free(rate);

  /* Sweeps: only the sweep job, two completed in this hour. */
  char *timeline = element_markup(html, "timeline", "</section>");
  cr_expect(strstr(timeline, "Sweeps, last 24 hours"), "%s", timeline);
  cr_expect(strstr(timeline, ">evidence-sweep</span>"), "%s", timeline);
  cr_expect(!strstr(timeline, ">rec</span>"), "%s", timeline);
  cr_expect(strstr(timeline, "title=\"2 completed, 0 dead\">2</span></div>"),
            "the newest box is last: %s", timeline);
  free(timeline);

  /* Signals: the promoted customer only, escaped, each with its colour. */
  char id[96];
  snprintf(id, sizeof id, "customer-%ld", customer);
  char *row = element_markup(html, id, "</tr>");
  cr_expect(strstr(row, "Acme &lt;Dental&gt; &amp; Co"), "%s", row);
  free(row);
  cr_expect(!strstr(html, "Not Promoted"));
  const struct {
    const char *key, *shows;
  } expected[] = {
      {"disk_encryption", "class=\"pill PASS\">PASS</span><small>2h 00m old"},
      {"antivirus_posture", "class=\"pill WARNING\">WARNING</span>"},
      {"patch_sla", "class=\"pill FAIL\">FAIL</span>"},
      {"backup_activity", "<small class=\"old\">expired 1d 00h ago"},
      {"device_inventory", "class=\"pill nodata\">no data</span>"},
  };
  for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) {
    snprintf(id, sizeof id, "signal-%ld-%s", customer, expected[i].key);
    char *cell = element_markup(html, id, "</td>");
    cr_expect(strstr(cell, expected[i].shows), "expected %s in:\n%s",
              expected[i].shows, cell);
    free(cell);
  }
  free(html);

  /* Headless Chromium: a screenshot kept as an artifact, and the DOM it
   * rendered carries the same numbers. */
  char shot[700], arg[720];
  mkdir(RT_ARTIFACT_DIR, 0755);
  snprintf(shot, sizeof shot, "%s/dashboard.png", RT_ARTIFACT_DIR);
  unlink(shot);
  snprintf(arg, sizeof arg, "--screenshot=%s", shot);
  free(chromium(arg));
  struct stat st;
  cr_assert_eq(stat(shot, &st), 0, "no screenshot at %s", shot);
  cr_expect_gt(st.st_size, 20000, "screenshot of %lld bytes",
               (long long)st.st_size);
  char *png = rt_read_file(shot);
  cr_assert(png);
  cr_expect(memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0, "not a PNG");
  free(png);
  printf("dashboard: screenshot %s (%lld bytes)\n", shot,
         (long long)st.st_size);
  char *dom = chromium("--dump-dom");
  cr_assert(strstr(dom, "id=\"queue\""), "no dashboard in the DOM:\n%s", dom);
  expect_queue_counts(dom, "chromium");
  snprintf(id, sizeof id, "signal-%ld-patch_sla", customer);
  char *cell = element_markup(dom, id, "</td>");
  cr_expect(strstr(cell, "FAIL"), "%s", cell);
  free(cell);
  free(dom);
  stop_daemon_expect_clean_exit();
}

Test(dashboard, says_503_and_shows_the_process_while_the_database_is_down) {
  char database[128];
  snprintf(database, sizeof database, "postgresql://nobody@127.0.0.1:%d/none",
           rt_free_port());
  configure(database);
  start_daemon();
  char *html;
  long status = fetch_page(&html, NULL, NULL);
  cr_expect_eq(status, 503, "%s", html);
  cr_expect(strstr(html, "id=\"db\">unavailable<"), "%s", html);
  cr_expect(strstr(html, "id=\"problem\""), "%s", html);
  cr_expect_eq(element_number(html, "generation"), 1);
  cr_expect_eq(element_number(html, "running-here"), 0);
  cr_expect(!strstr(html, "id=\"queue\""), "no figures without a database");
  free(html);
  stop_daemon_expect_clean_exit();
}

/* A statement that waits on a lock the test holds: the page gives up at
 * its timeout, cancels the statement and still answers. */
Test(dashboard, answers_503_when_the_database_does_not_answer_in_time) {
  configure(NULL);
  start_daemon();
  /* Up once the queue has connected and polled. */
  char *html;
  for (int i = 0; i < 100; i++) {
    long status = fetch_page(&html, NULL, NULL);
    bool up = status == 200;
    free(html);
    if (up)
      break;
    usleep(100 * 1000);
  }
  PGconn *locker = PQconnectdb(dsn);
  cr_assert_eq(PQstatus(locker), CONNECTION_OK, "%s", PQerrorMessage(locker));
  PGresult *res = PQexec(locker, "BEGIN; LOCK TABLE runner.rate_bucket IN "
                                 "ACCESS EXCLUSIVE MODE");
  cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s",
               PQerrorMessage(locker));
  PQclear(res);
  long elapsed;
  long status = fetch_page(&html, NULL, &elapsed);
  cr_expect_eq(status, 503, "%s", html);
  cr_expect(strstr(html, "did not answer within"), "%s", html);
  cr_expect_eq(element_number(html, "generation"), 1);
  printf("dashboard: gave up on the database after %ld ms\n", elapsed);
  free(html);
  PQclear(PQexec(locker, "ROLLBACK"));
  PQfinish(locker);
  /* The cancelled statement left the pool usable. */
  status = fetch_page(&html, NULL, NULL);
  cr_expect_eq(status, 200, "%s", html);
  free(html);
  stop_daemon_expect_clean_exit();
}

/* A page still waiting for the database when the daemon is told to stop is
 * answered (503) and the daemon exits cleanly. */
Test(dashboard, a_page_waiting_for_the_database_is_answered_on_shutdown) {
  configure(NULL);
  start_daemon();
  char *html;
  for (int i = 0; i < 100; i++) {
    long status = fetch_page(&html, NULL, NULL);
    bool up = status == 200;
    free(html);
    if (up)
      break;
    usleep(100 * 1000);
  }
  PGconn *locker = PQconnectdb(dsn);
  cr_assert_eq(PQstatus(locker), CONNECTION_OK, "%s", PQerrorMessage(locker));
  PGresult *res = PQexec(locker, "BEGIN; LOCK TABLE runner.rate_bucket IN "
                                 "ACCESS EXCLUSIVE MODE");
  cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s",
               PQerrorMessage(locker));
  PQclear(res);
  char url[128], out[400];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
  snprintf(out, sizeof out, "%s/page.html", runner.dir);
  rt_proc_t curl_proc;
  char *argv[] = {"/usr/bin/curl", "-s", "-m", "20", "-o", out, "-w",
                  "%{http_code}",  url,  NULL};
  rt_proc_start(&curl_proc, argv, NULL, NULL);
  cr_assert(rt_pg_wait_count(dsn,
                             "SELECT count(*) FROM pg_locks WHERE NOT granted"
                             " AND relation = 'runner.rate_bucket'::regclass",
                             1, 10000),
            "the page's statement never waited on the lock");
  rt_proc_kill(&daemon_proc, SIGTERM);
  cr_assert(rt_proc_wait(&curl_proc, 20000), "curl did not finish");
  char *code = rt_read_file(curl_proc.out_path);
  cr_expect_str_eq(code, "503");
  free(code);
  char *page = rt_read_file(out);
  char *problem = page ? element_text(page, "problem") : NULL;
  cr_expect(problem && strstr(problem, "stopping"), "%s",
            problem ? problem
            : page  ? page
                    : "(none)");
  free(problem);
  free(page);
  PQclear(PQexec(locker, "ROLLBACK"));
  PQfinish(locker);
  expect_clean_exit();
}

Test(dashboard, without_a_database_shows_the_process_with_200) {
  configure(NULL);
  /* The same configuration without its [database] section. */
  char *text = rt_read_file(runner.conf);
  cr_assert(text);
  char *section = strstr(text, "[database]");
  cr_assert(section);
  *section = '\0';
  rt_write_file(runner.conf, text, 0644);
  free(text);
  start_daemon();
  char *html;
  long status = fetch_page(&html, NULL, NULL);
  cr_expect_eq(status, 200, "%s", html);
  cr_expect(strstr(html, "id=\"db\">none<"), "%s", html);
  char *problem = element_text(html, "problem");
  cr_expect(problem && strstr(problem, "No database is configured"), "%s",
            html);
  free(problem);
  cr_expect_eq(element_number(html, "generation"), 1);
  free(html);
  stop_daemon_expect_clean_exit();
}
