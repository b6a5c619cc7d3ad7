/* The admin endpoint: /healthz and Prometheus /metrics of a serving
 * daemon, fetched over a real socket. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rt_runner.h"

static rt_runner_t runner;
static int port;
static rt_proc_t daemon_proc;

/* runner.conf with the admin endpoint (listen_host:port), a [database] at
 * database_url (NULL: none) with database_lines, and a conf.d with `jobs`;
 * hello and probe installed. */
static void configure(const char *listen_host, const char *database_url,
                      const char *database_lines, const char *jobs) {
  static const char *const plugins[] = {
      RT_PLUGIN_DIR "/hello.so", RT_PROBE_DIR "/probe_v1/probe.so", NULL};
  rt_runner_prepare(&runner, "admin", plugins, jobs);
  port = rt_free_port();
  char runner_lines[256];
  snprintf(runner_lines, sizeof runner_lines,
           "drain_timeout = 10s\nadmin_listen = %s:%d\n", listen_host, port);
  rt_runner_write_conf(&runner, runner_lines, database_url, database_lines);
}

/* A greeting that completes and a probe that its timeout always cancels,
 * each once a (fast) minute. */
static const char two_jobs[] =
    "[job \"greet\"]\nplugin = hello\njob = greet\nschedule = * * * * *\n\n"
    "[job \"slowfail\"]\nplugin = probe\njob = slow\nschedule = * * * * *\n"
    "duration = 5s\ntimeout = 100ms\n";

/* The runner's clock starts just before a minute boundary and runs 60x, so
 * "* * * * *" ticks about once a second. */
static void start_daemon(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  static char start_env[64];
  snprintf(start_env, sizeof start_env, "REGENTRA_CLOCK_START_MS=%lld",
           (now / 60000 + 1) * 60000 - 300);
  char *env[] = {start_env, "REGENTRA_CLOCK_SCALE=60", NULL};
  rt_runner_serve(&runner, &daemon_proc, env, "serving /healthz", 15000);
}

static void stop_daemon_expect_clean_exit(void) {
  char *log = rt_runner_stop(&daemon_proc, 20000);
  cr_expect(strstr(log, "runner: stopped"), "%s", log);
  /* libmicrohttpd complains when its logger is not the first option. */
  cr_expect(!strstr(log, "MHD_OPTION_EXTERNAL_LOGGER"), "%s", log);
  free(log);
}

static void teardown(void) {
  rt_runner_kill(&daemon_proc);
  rt_remove_tree(runner.dir);
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

/* GETs path from the daemon's admin port; returns the status and sets
 * *body (new). */
static long fetch(const char *method, const char *path, char **body) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  CURL *curl = curl_easy_init();
  cr_assert(curl);
  body_t b = {.data = calloc(1, 1)};
  cr_assert(b.data);
  cr_assert_eq(curl_easy_setopt(curl, CURLOPT_URL, url), CURLE_OK);
  cr_assert_eq(curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method), CURLE_OK);
  cr_assert_eq(curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect),
               CURLE_OK);
  cr_assert_eq(curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b), CURLE_OK);
  /* A bound for a loaded machine; a healthy answer comes at once. */
  cr_assert_eq(curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L), CURLE_OK);
  CURLcode rc = curl_easy_perform(curl);
  cr_assert_eq(rc, CURLE_OK, "GET %s: %s", url, curl_easy_strerror(rc));
  long status = 0;
  cr_assert_eq(curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status),
               CURLE_OK);
  curl_easy_cleanup(curl);
  *body = b.data;
  return status;
}

static char *get_metrics(void) {
  char *body;
  long status = fetch("GET", "/metrics", &body);
  cr_assert_eq(status, 200, "/metrics answered %ld:\n%s", status, body);
  return body;
}

/* The value of the sample whose name and labels read exactly `series`, or
 * -1 when absent. */
static double sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *line = text; line && *line;) {
    if (strncmp(line, series, n) == 0 && line[n] == ' ')
      return strtod(line + n + 1, NULL);
    line = strchr(line, '\n');
    if (line)
      line++;
  }
  return -1;
}

static bool is_name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == ':' || (!first && c >= '0' && c <= '9');
}

/* Checks the text exposition format line by line: HELP and TYPE comments,
 * then samples `name{label="value",...} number` of a declared family. */
static void expect_prometheus_text(const char *text) {
  char typed[64][96];
  size_t ntyped = 0;
  size_t samples = 0;
  cr_assert(text[0] && text[strlen(text) - 1] == '\n',
            "must end with a newline");
  char *copy = strdup(text);
  char *save = NULL;
  for (char *line = strtok_r(copy, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char name[96], type[32];
    if (strncmp(line, "# HELP ", 7) == 0)
      continue;
    if (strncmp(line, "# TYPE ", 7) == 0) {
      cr_assert_eq(sscanf(line, "# TYPE %95s %31s", name, type), 2, "%s", line);
      cr_expect(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0,
                "unexpected type in: %s", line);
      cr_assert_lt(ntyped, 64);
      snprintf(typed[ntyped++], sizeof typed[0], "%s", name);
      continue;
    }
    cr_assert_neq(line[0], '#', "stray comment: %s", line);
    const char *p = line;
    size_t len = 0;
    while (is_name_char(p[len], len == 0))
      len++;
    cr_assert_gt(len, 0, "no metric name: %s", line);
    snprintf(name, sizeof name, "%.*s", (int)len, p);
    bool declared = false;
    for (size_t i = 0; i < ntyped; i++)
      declared |= strcmp(typed[i], name) == 0;
    cr_expect(declared, "%s has no # TYPE line before it", name);
    p += len;
    if (*p == '{') {
      p++;
      while (*p != '}') {
        size_t l = 0;
        while (is_name_char(p[l], l == 0) && p[l] != ':')
          l++;
        cr_assert(l > 0 && p[l] == '=' && p[l + 1] == '"', "bad label: %s",
                  line);
        p += l + 2;
        while (*p && *p != '"')
          p += *p == '\\' && p[1] ? 2 : 1;
        cr_assert_eq(*p, '"', "unterminated label value: %s", line);
        p++;
        if (*p == ',')
          p++;
        else
          cr_assert_eq(*p, '}', "bad label list: %s", line);
      }
      p++;
    }
    cr_assert_eq(*p, ' ', "no value: %s", line);
    char *end;
    strtod(p + 1, &end);
    cr_expect(end != p + 1 && *end == '\0', "bad value: %s", line);
    samples++;
  }
  free(copy);
  cr_expect_gt(samples, 0);
}

/* Polls /metrics until series reaches at least min. */
static double wait_for_sample(const char *series, double min, int timeout_ms) {
  double value = -1;
  for (int waited = 0; waited <= timeout_ms; waited += 200) {
    char *text = get_metrics();
    value = sample(text, series);
    free(text);
    if (value >= min)
      return value;
    usleep(200 * 1000);
  }
  return value;
}

TestSuite(admin, .fini = teardown, .timeout = 120);

Test(admin, serves_health_and_job_counters_that_grow) {
  configure("127.0.0.1", NULL, NULL, two_jobs);
  start_daemon();
  char *body;
  cr_expect_eq(fetch("GET", "/healthz", &body), 200);
  cr_expect_str_eq(body, "ok\n");
  free(body);

  const char *greet = "regentra_job_runs_total{job=\"greet\","
                      "outcome=\"completed\"}";
  const char *fail = "regentra_job_runs_total{job=\"slowfail\","
                     "outcome=\"failed\"}";
  double first = wait_for_sample(greet, 1, 20000);
  cr_assert_geq(first, 1, "no completed greet run counted");
  cr_assert_geq(wait_for_sample(fail, 1, 20000), 1, "no failed run counted");
  cr_expect_geq(wait_for_sample(greet, first + 2, 20000), first + 2,
                "the completed counter did not grow");

  char *text = get_metrics();
  expect_prometheus_text(text);
  cr_expect(strstr(text, "# TYPE regentra_job_runs_total counter\n"), "%s",
            text);
  cr_expect(strstr(text, "regentra_runner_info{version=\""), "%s", text);
  cr_expect_eq(sample(text, "regentra_plugins_loaded"), 2, "%s", text);
  cr_expect_eq(sample(text, "regentra_generation"), 1, "%s", text);
  cr_expect_geq(sample(text, "regentra_jobs_running"), 0, "%s", text);
  cr_expect_eq(sample(text, "regentra_http_requests_in_flight"), 0, "%s", text);
  cr_expect_eq(sample(text, "regentra_pages_held"), 0, "%s", text);
  cr_expect_eq(sample(text, "regentra_pages_waiting"), 0, "%s", text);
  cr_expect_eq(sample(text, "regentra_job_runs_total{job=\"greet\","
                            "outcome=\"failed\"}"),
               0, "%s", text);
  cr_expect(!strstr(text, "regentra_queue_jobs"), "no database, no queue");
  free(text);

  cr_expect_eq(fetch("GET", "/nowhere", &body), 404);
  free(body);
  cr_expect_eq(fetch("POST", "/metrics", &body), 405);
  free(body);
  stop_daemon_expect_clean_exit();
}

Test(admin, healthz_is_503_while_the_database_is_unreachable) {
  /* A port found free a moment ago: the database is down from the start.
   * Listening on 0.0.0.0 must log a warning. */
  char database[256];
  snprintf(database, sizeof database, "postgresql://nobody@127.0.0.1:%d/none",
           rt_free_port());
  configure("0.0.0.0", database, NULL, "");
  start_daemon();
  char *body;
  cr_expect_eq(fetch("GET", "/healthz", &body), 503);
  cr_expect_str_eq(body, "database not connected\n");
  free(body);
  char *text = get_metrics();
  expect_prometheus_text(text);
  cr_expect_eq(sample(text, "regentra_database_up"), 0, "%s", text);
  free(text);
  cr_expect(rt_count_text(daemon_proc.err_path, "is not a loopback address") ==
                1,
            "no warning about listening beyond loopback");
  stop_daemon_expect_clean_exit();
}

Test(admin, reports_queue_depth_from_the_database) {
  configure("127.0.0.1", rt_pg_fresh_db(), "poll_interval = 500ms\n",
            "[job \"greet\"]\nplugin = hello\njob = greet\n"
            "schedule = * * * * *\n");
  rt_runner_migrate(&runner);
  start_daemon();
  /* Runs claimed from the queue are counted like in-process ones. */
  cr_assert_geq(wait_for_sample("regentra_job_runs_total{job=\"greet\","
                                "outcome=\"completed\"}",
                                2, 30000),
                2);
  cr_assert_geq(
      wait_for_sample("regentra_queue_jobs{state=\"completed\"}", 1, 20000), 1,
      "queue depth never reported");
  char *text = get_metrics();
  expect_prometheus_text(text);
  cr_expect_eq(sample(text, "regentra_database_up"), 1, "%s", text);
  cr_expect_geq(sample(text, "regentra_queue_jobs{state=\"available\"}"), 0,
                "%s", text);
  cr_expect_geq(sample(text, "regentra_queue_jobs{state=\"dead\"}"), 0, "%s",
                text);
  free(text);
  char *body;
  cr_expect_eq(fetch("GET", "/healthz", &body), 200, "%s", body);
  free(body);
  stop_daemon_expect_clean_exit();
}

Test(admin, a_bad_admin_listen_is_a_file_line_error) {
  const char *bad[] = {"127.0.0.1:99999", "127.0.0.1", "::1:9187",
                       "example.org:9187", "127.0.0.1:http"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    configure("127.0.0.1", NULL, NULL, "");
    /* Overwrite with the bad value on line 5. */
    char lines[256];
    snprintf(lines, sizeof lines, "drain_timeout = 10s\nadmin_listen = %s\n",
             bad[i]);
    rt_runner_write_conf(&runner, lines, NULL, NULL);
    char *argv[] = {RT_RUNNER, "check-config", "-c", runner.conf, NULL};
    char *out = NULL, *err = NULL;
    int rc = rt_run(argv, NULL, NULL, &out, &err);
    cr_expect_eq(rc, 1, "%s accepted", bad[i]);
    char expected[600];
    snprintf(expected, sizeof expected, "%s:5: admin_listen = \"%s\"",
             runner.conf, bad[i]);
    cr_expect(strstr(err, expected), "expected \"%s\" in:\n%s", expected, err);
    free(out);
    free(err);
    rt_remove_tree(runner.dir);
  }
  /* A good one, and off, pass. */
  const char *good[] = {"[::1]:9187", "localhost:9187", "off"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    configure("127.0.0.1", NULL, NULL, "");
    char lines[256];
    snprintf(lines, sizeof lines, "admin_listen = %s\n", good[i]);
    rt_runner_write_conf(&runner, lines, NULL, NULL);
    char *argv[] = {RT_RUNNER, "check-config", "-c", runner.conf, NULL};
    char *err = NULL;
    int rc = rt_run(argv, NULL, NULL, NULL, &err);
    cr_expect_eq(rc, 0, "%s refused: %s", good[i], err);
    free(err);
    if (i + 1 < sizeof good / sizeof *good)
      rt_remove_tree(runner.dir);
  }
}
