/* test_abi.c - option schemas and rate windows cross the ABI by the size
 * their elements declare: plugins built with the element layouts of ABI
 * 1.1 (no struct_size), of this header and of a later, larger layout are
 * loaded from real shared objects, their options validated and their rate
 * windows declared through the host's service. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "rt_host.h"

static rt_host_t h;
static char state_dir[] = "/tmp/rn-abi-XXXXXX";

static void setup(void) {
  cr_assert(mkdtemp(state_dir), "mkdtemp");
  rt_host_open(&h, NULL);
}

static void teardown(void) {
  rt_host_close(&h);
  rmdir(state_dir);
  strcpy(state_dir, "/tmp/rn-abi-XXXXXX");
}

TestSuite(abi, .init = setup, .fini = teardown, .timeout = 30);

/* Loads probe variant `target` (plugin `name`) as part of the test host's
 * generation, so services called from it know which plugin calls. */
static void load(rn__plugin_t *p, const char *target, const char *name) {
  char path[512], err[1024] = "";
  snprintf(path, sizeof path, "%s/%s/%s.so", RT_PROBE_DIR, target, name);
  memset(p, 0, sizeof *p);
  cr_assert_eq(rn__plugin_load(path, state_dir, p, err, sizeof err), 0, "%s",
               err);
  p->gen = h.gen;
  p->ctx.plugin = p;
  p->ctx.runner = &h.runner;
  rn__list_init(&p->ctx.reqs);
}

static const rn_option_t *find(const rn_option_t *schema, const char *name) {
  for (const rn_option_t *o = schema; o && o->name; o++)
    if (strcmp(o->name, name) == 0)
      return o;
  return NULL;
}

static size_t count(const rn_option_t *schema) {
  size_t n = 0;
  while (schema && schema[n].name)
    n++;
  return n;
}

/* Validates one `key = value` against schema: the number of errors, and
 * the first in err. */
static int check_one(const rn_option_t *schema, const char *key,
                     const char *value, char *err, size_t errlen) {
  rn__config_t *config = calloc(1, sizeof *config);
  rn__kv_t item = {.key = (char *)key, .value = (char *)value, .line = 7};
  rn__kvs_t kvs = {.items = &item, .count = 1, .cap = 1};
  rn_config_t values;
  int errors =
      rn__options_check(config, "30-probe.conf", 3, schema, &kvs, &values);
  snprintf(err, errlen, "%s", errors ? config->errors[0] : "");
  rn__options_free(&values);
  rn__config_free(config);
  return errors;
}

/* What every layout must read the same: the probe's schemas, their
 * validation, and the budget its create() declares. */
static void reads_the_probe(const char *target, const char *name) {
  rn__plugin_t p;
  load(&p, target, name);
  const rn_job_def_t *slow = rn__plugin_job(&p, "slow");
  cr_assert(slow);

  /* Every field of every option, in this host's layout. */
  const rn_option_t *plugin = rn__schema_of(&p, NULL, RN__SCHEMA_PLUGIN);
  const rn_option_t *options = rn__schema_of(&p, slow, RN__SCHEMA_OPTIONS);
  const rn_option_t *params = rn__schema_of(&p, slow, RN__SCHEMA_PARAMS);
  cr_assert_eq(count(plugin), 1);
  cr_assert_eq(count(options), 4);
  cr_assert_eq(count(params), 2);
  const rn_option_t *budget = find(plugin, "budget_per_minute");
  cr_assert(budget);
  cr_expect_eq(budget->type, RN_OPT_INT);
  cr_expect_str_eq(budget->default_value, "0");
  cr_expect_eq(budget->min, 0);
  cr_expect_eq(budget->max, 100000);
  cr_expect_str_eq(budget->help,
                   "declare a request budget on create (0 = none)");
  const rn_option_t *pace = find(options, "pace");
  cr_assert(pace);
  cr_expect_eq(pace->type, RN_OPT_ENUM);
  cr_expect_str_eq(pace->choices, "even|burst");
  cr_expect_str_eq(pace->default_value, "even");
  cr_expect_str_eq(pace->help, "how runs are spread");
  cr_expect_eq(pace->flags, 0);
  const rn_option_t *label = find(options, "label");
  cr_assert(label);
  cr_expect_eq(label->type, RN_OPT_STRING);
  cr_expect_null(label->default_value);
  cr_expect_null(label->choices);
  cr_expect_eq(find(options, "count")->max, 10);
  cr_expect_eq(find(params, "repeat")->min, 1);

  /* A [job] section is checked against the schema as read. */
  char err[512];
  cr_expect_eq(check_one(options, "count", "11", err, sizeof err), 1);
  cr_expect(strstr(err, "30-probe.conf:7: count = 11: out of range 1..10"),
            "%s", err);
  cr_expect_eq(check_one(options, "pace", "sideways", err, sizeof err), 1);
  cr_expect(strstr(err, "expected one of even|burst"), "%s", err);
  cr_expect_eq(check_one(options, "colour", "red", err, sizeof err), 1);
  cr_expect(strstr(err, "unknown key \"colour\""), "%s", err);
  cr_expect_eq(check_one(options, "pace", "burst", err, sizeof err), 0, "%s",
               err);

  /* Run-time parameters too, with defaults filled in. */
  json_t *typed = NULL;
  cr_expect_eq(rn__job_params_check(&p, slow, "probe.slow", "{\"repeat\": 4}",
                                    false, &typed, err, sizeof err),
               RN_ERANGE);
  cr_expect(strstr(err, "repeat = 4: out of range 1..3"), "%s", err);
  cr_assert_eq(rn__job_params_check(&p, slow, "probe.slow",
                                    "{\"note\": \"hi\"}", false, &typed, err,
                                    sizeof err),
               0, "%s", err);
  cr_expect_eq(json_integer_value(json_object_get(typed, "repeat")), 1);
  cr_expect_str_eq(json_string_value(json_object_get(typed, "note")), "hi");
  json_decref(typed);

  /* create() declares 120 a minute and 3600 an hour through
   * rate_configure, in its own element layout. */
  rn__config_t *config = calloc(1, sizeof *config);
  rn__kv_t item = {.key = "budget_per_minute", .value = "120", .line = 2};
  rn__kvs_t kvs = {.items = &item, .count = 1, .cap = 1};
  cr_assert_eq(
      rn__options_check(config, "30-probe.conf", 1, plugin, &kvs, &p.config),
      0);
  rn__config_free(config);
  void *state;
  cr_assert_eq(p.desc->create(&p.ctx, &p.config, &state), 0);
  char key_name[64];
  snprintf(key_name, sizeof key_name, "probe/%s", name);
  rn__rate_t *rl = rn__http_rate(&h.runner);
  cr_assert(rl);
  rn__rate_key_t *key = rn__rate_key(rl, key_name, false);
  cr_assert(key, "no budget declared for %s", key_name);
  rn_rate_window_t windows[4];
  cr_assert_eq(rn__rate_key_windows(key, windows, 4), 2);
  /* Held at RN__RATE_MARGIN_PCT (95%) of what was declared. */
  cr_expect_eq(windows[0].limit, 114);
  cr_expect_eq(windows[0].period_ms, 60000);
  cr_expect_eq(windows[1].limit, 3420);
  cr_expect_eq(windows[1].period_ms, 3600000);
  /* And they hold: one admission now, the next paced 60000/114 ms on. */
  rn__rate_waiter_t first = {0}, second = {0};
  cr_expect(rn__rate_acquire(key, &first, NULL));
  cr_expect_not(rn__rate_acquire(key, &second, NULL));
  cr_expect_eq(rn__rate_key_spacing_ms(key), 527);
  rn__rate_withdraw(&second);
  p.desc->destroy(&p.ctx, state);
  rn__plugin_unload(&p);
}

Test(abi, a_plugin_built_with_the_1_1_layouts_loads_and_is_read_by_them) {
  reads_the_probe("probe_layout11", "layout11");
}

Test(abi, a_plugin_built_with_this_headers_layouts_is_read_by_struct_size) {
  reads_the_probe("probe_sized", "sized");
}

/* The old host stepped through arrays by its own sizeof: it would have
 * taken this probe's future fields for the next element (a name of
 * (char *)-1) and crashed. */
Test(abi, a_plugin_with_larger_elements_is_read_up_to_the_known_fields) {
  reads_the_probe("probe_wide", "wide");
}

/* ---- malformed arrays are refused with what and where */

Test(abi, a_sized_option_array_without_struct_size_is_refused_by_name) {
  static const rn_option_t bare[] = {{.name = "region"}, {0}};
  rn_option_t *out = NULL;
  char err[512];
  cr_expect_eq(rn__abi_read_options(RN_ABI_VERSION, bare, &out,
                                    "plugin x.so: options", err, sizeof err),
               RN_EABI);
  cr_expect_null(out);
  cr_expect(strstr(err, "plugin x.so: options: the first element declares "
                        "struct_size 0"),
            "%s", err);
  cr_expect(strstr(err, "RN_OPTION"), "%s", err);
}

Test(abi, elements_of_one_array_must_declare_one_size) {
  rn_option_t mixed[] = {RN_OPTION(.name = "a"), RN_OPTION(.name = "b"), {0}};
  mixed[1].struct_size = 8;
  rn_option_t *out = NULL;
  char err[512];
  cr_expect_eq(rn__abi_read_options(RN_ABI_VERSION, mixed, &out, "opts", err,
                                    sizeof err),
               RN_EABI);
  cr_expect(strstr(err, "option #2 (\"b\") declares struct_size 8"), "%s", err);
}

Test(abi, a_1_x_plugin_whose_options_carry_a_size_is_refused_not_misread) {
  static const rn_option_t sized[] = {RN_OPTION(.name = "a"), {0}};
  rn_option_t *out = NULL;
  char err[512];
  cr_expect_eq(rn__abi_read_options((1u << 16) | 1u, sized, &out, "opts", err,
                                    sizeof err),
               RN_EABI);
  cr_expect(strstr(err, "declares ABI 1.1 but its options start with a size "
                        "field"),
            "%s", err);
}

Test(abi, an_empty_schema_reads_as_none) {
  static const rn_option_t none[] = {{0}};
  rn_option_t *out = (rn_option_t *)1;
  char err[64];
  cr_expect_eq(
      rn__abi_read_options(RN_ABI_VERSION, none, &out, "x", err, sizeof err),
      0);
  cr_expect_null(out);
}

Test(abi, rate_configure_refuses_windows_without_struct_size) {
  rn_rate_window_t bare = {.limit = 60, .period_ms = 60000};
  cr_expect_eq(h.api->rate_configure(h.ctx, "abi/bare", &bare, 1), RN_EINVAL);
  rn_rate_window_t sized[2] = {RN_RATE_WINDOW(60, 60000),
                               RN_RATE_WINDOW(600, 3600000)};
  sized[1].struct_size = 24;
  cr_expect_eq(h.api->rate_configure(h.ctx, "abi/mixed", sized, 2), RN_EINVAL);
  sized[1].struct_size = sizeof sized[1];
  cr_expect_eq(h.api->rate_configure(h.ctx, "abi/good", sized, 2), 0);
}

/* What a later host sees of this one's plugins: elements smaller than its
 * own read as zero past their end. */
Test(abi, an_element_smaller_than_the_hosts_reads_as_zero_past_its_end) {
  typedef struct short_option_s {
    uint32_t struct_size;
    const char *name;
    int type;
    int flags;
  } short_option_t;
  static const short_option_t shorter[] = {
      {sizeof(short_option_t), "region", RN_OPT_ENUM, RN_OPT_REQUIRED},
      {sizeof(short_option_t), "limit", RN_OPT_INT, 0},
      {0},
  };
  rn_option_t *out = NULL;
  char err[256] = "";
  cr_assert_eq(rn__abi_read_options(RN_ABI_VERSION,
                                    (const rn_option_t *)(const void *)shorter,
                                    &out, "opts", err, sizeof err),
               0, "%s", err);
  cr_assert_eq(count(out), 2);
  cr_expect_str_eq(out[0].name, "region");
  cr_expect_eq(out[0].type, RN_OPT_ENUM);
  cr_expect_eq(out[0].flags, RN_OPT_REQUIRED);
  cr_expect_null(out[0].choices);
  cr_expect_null(out[0].default_value);
  cr_expect_str_eq(out[1].name, "limit");
  cr_expect_eq(out[1].min, 0);
  cr_expect_eq(out[1].max, 0);
  cr_expect_eq(out[1].struct_size, sizeof(rn_option_t));
  free(out);
}
