/* generation.c - one consistent set of config, plugin images and instances.
 *
 * A reload builds a new generation beside the current one and swaps only
 * when it is complete; the old one keeps its images until its last job and
 * request have finished, then destroys its instances and unloads. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.so files of plugin_dir, sorted. */
static int list_plugins(const char *dir, char ***out, size_t *count) {
  DIR *d = opendir(dir);
  *out = NULL;
  *count = 0;
  if (!d)
    return errno == ENOENT ? 0 : RN_EIO;
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 3, ".so"))
      continue;
    if (*count == cap) {
      cap = cap ? cap * 2 : 8;
      char **grown = realloc(*out, cap * sizeof **out);
      if (!grown)
        break;
      *out = grown;
    }
    (*out)[(*count)++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(*out, *count, sizeof **out, compare_names);
  return 0;
}

static void refuse(rn__generation_t *gen, const char *path, const char *why) {
  rn__config_error(gen->config, path, 0, "plugin refused: %s", why);
  rn__log(RN_LOG_ERR, NULL, "plugin refused: %s", why);
  gen->refuse_count++;
}

static rn__plugin_conf_t *source_conf(rn__config_t *config, const char *name) {
  for (size_t i = 0; i < config->nsources; i++)
    if (strcmp(config->sources[i].name, name) == 0)
      return &config->sources[i];
  return NULL;
}

static const rn_option_t *find_option(const rn_option_t *schema,
                                      const char *name) {
  for (; schema && schema->name; schema++)
    if (strcmp(schema->name, name) == 0)
      return schema;
  return NULL;
}

static bool same_text(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* The first option where two source schemas differ (name, type, flags,
 * default, bounds or choices); NULL when they agree. */
static const char *schema_difference(const rn_option_t *a,
                                     const rn_option_t *b) {
  static const rn_option_t end = {0};
  for (;;) {
    if (!a || !a->name)
      a = &end;
    if (!b || !b->name)
      b = &end;
    if (!a->name && !b->name)
      return NULL;
    if (!a->name || !b->name || strcmp(a->name, b->name) ||
        a->type != b->type || a->flags != b->flags ||
        !same_text(a->default_value, b->default_value) || a->min != b->min ||
        a->max != b->max || !same_text(a->choices, b->choices))
      return a->name ? a->name : b->name;
    a++;
    b++;
  }
}

/* A key of the plugin's source in its [plugin] section: each value has one
 * place, the [source] section every plugin of the source reads. Returns
 * the number of such keys, each reported with what to write instead. */
static int misplaced_source_keys(rn__config_t *config,
                                 const rn__plugin_t *plugin,
                                 const rn__plugin_conf_t *pconf) {
  int count = 0;
  const rn__plugin_conf_t *sconf = source_conf(config, plugin->source);
  for (size_t i = 0; pconf && i < pconf->options.count; i++) {
    const rn__kv_t *kv = &pconf->options.items[i];
    if (!find_option(plugin->source_options, kv->key))
      continue;
    const rn__kv_t *shared =
        sconf ? rn__kvs_find(&sconf->options, kv->key) : NULL;
    if (shared)
      rn__config_error(config, pconf->file, kv->line,
                       "key \"%s\" is set both here and in [source \"%s\"] "
                       "(%s:%d); remove it from [plugin \"%s\"]",
                       kv->key, plugin->source, sconf->file, shared->line,
                       plugin->name);
    else
      rn__config_error(config, pconf->file, kv->line,
                       "key \"%s\" belongs to the connection of source "
                       "\"%s\", shared by all its plugins: move this line "
                       "from [plugin \"%s\"] into a [source \"%s\"] section",
                       kv->key, plugin->source, plugin->name, plugin->source);
    count++;
  }
  return count;
}

/* Validates the plugin's [source] section (once per generation) and
 * appends its values to the plugin's config, so create() reads them like
 * its own options. */
static int join_source(rn__generation_t *gen, rn__plugin_t *plugin, char *err,
                       size_t errlen) {
  rn__config_t *config = gen->config;
  for (const rn_option_t *o = plugin->source_options; o && o->name; o++) {
    if (find_option(plugin->options, o->name)) {
      snprintf(err, errlen,
               "plugin %s declares \"%s\" both as its own option and as an "
               "option of source \"%s\"; a key has one place",
               plugin->name, o->name, plugin->source);
      return RN_ECONFIG;
    }
  }
  for (size_t i = 0; i < gen->nplugins; i++) {
    const rn__plugin_t *other = &gen->plugins[i];
    if (!other->source || strcmp(other->source, plugin->source) != 0)
      continue;
    const char *diff =
        schema_difference(other->source_options, plugin->source_options);
    if (diff) {
      snprintf(err, errlen,
               "plugin %s declares source \"%s\" with options unlike those "
               "of plugin %s (first difference: \"%s\"); every plugin of a "
               "source must declare the same source_options",
               plugin->name, plugin->source, other->name, diff);
      return RN_ECONFIG;
    }
    break;
  }
  static const rn__kvs_t no_options;
  rn__plugin_conf_t *sconf = source_conf(config, plugin->source);
  if (sconf && sconf->checked < 0) {
    snprintf(err, errlen,
             "plugin %s: its [source \"%s\"] options are invalid (see above)",
             plugin->name, plugin->source);
    return RN_ECONFIG;
  }
  rn_config_t shared;
  int errors = rn__options_check(
      config, sconf ? sconf->file : config->path, sconf ? sconf->line : 0,
      plugin->source_options, sconf ? &sconf->options : &no_options, &shared);
  if (sconf)
    sconf->checked = errors ? -1 : 1;
  if (errors) {
    rn__options_free(&shared);
    snprintf(err, errlen,
             "plugin %s: its [source \"%s\"] options are invalid (see above)",
             plugin->name, plugin->source);
    return RN_ECONFIG;
  }
  rn_config_t *own = &plugin->config;
  if (shared.count) {
    rn__opt_value_t *values =
        realloc(own->values, (own->count + shared.count) * sizeof *values);
    if (!values) {
      rn__options_free(&shared);
      snprintf(err, errlen, "plugin %s: out of memory", plugin->name);
      return RN_ENOMEM;
    }
    memcpy(values + own->count, shared.values, shared.count * sizeof *values);
    own->values = values;
    own->count += shared.count;
  }
  free(shared.values); /* its texts now belong to the plugin's config */
  return 0;
}

static void load_one(rn__generation_t *gen, const char *dir,
                     const char *file) {
  rn__config_t *config = gen->config;
  char path[4096], err[8192];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  char stem[256];
  snprintf(stem, sizeof stem, "%.*s", (int)(strlen(file) - 3), file);
  const rn__plugin_conf_t *pconf = rn__config_plugin(config, stem);
  if (pconf && !pconf->enabled) {
    rn__log(RN_LOG_INFO, NULL, "plugin %s disabled by %s:%d", stem,
            pconf->file, pconf->line);
    return;
  }
  rn__plugin_t *plugin = &gen->plugins[gen->nplugins];
  *plugin = (rn__plugin_t){.gen = gen};
  int rc = rn__plugin_load(path, config->state_dir, plugin, err, sizeof err);
  if (rc < 0) {
    refuse(gen, path, err);
    return;
  }
  if (strcmp(plugin->name, stem) != 0) {
    snprintf(err, sizeof err, "plugin %s declares the name \"%s\"; the file "
             "must be named %s.so", path, plugin->name, plugin->name);
    refuse(gen, path, err);
    rn__plugin_unload(plugin);
    return;
  }
  for (size_t i = 0; i < gen->nplugins; i++) {
    if (strcmp(gen->plugins[i].name, plugin->name) == 0) {
      snprintf(err, sizeof err, "plugin %s: name \"%s\" already loaded", path,
               plugin->name);
      refuse(gen, path, err);
      rn__plugin_unload(plugin);
      return;
    }
  }
  if (plugin->source) {
    rn__plugin_conf_t *sconf = source_conf(config, plugin->source);
    if (sconf)
      sconf->declared = true;
    if (misplaced_source_keys(config, plugin, pconf) > 0) {
      snprintf(err, sizeof err,
               "plugin %s: its [plugin \"%s\"] section sets keys of "
               "[source \"%s\"] (see above)",
               path, plugin->name, plugin->source);
      refuse(gen, path, err);
      rn__plugin_unload(plugin);
      return;
    }
  }
  static const rn__kvs_t no_options;
  const char *where = pconf ? pconf->file : config->path;
  int line = pconf ? pconf->line : 0;
  if (rn__options_check(
          config, where, line, rn__schema_of(plugin, NULL, RN__SCHEMA_PLUGIN),
          pconf ? &pconf->options : &no_options, &plugin->config) > 0) {
    snprintf(err, sizeof err, "plugin %s: its [plugin \"%s\"] options are "
             "invalid (see above)", path, plugin->name);
    refuse(gen, path, err);
    rn__plugin_unload(plugin);
    return;
  }
  if (plugin->source && join_source(gen, plugin, err, sizeof err) < 0) {
    refuse(gen, path, err);
    rn__plugin_unload(plugin);
    return;
  }
  plugin->ctx.plugin = plugin;
  plugin->ctx.runner = gen->runner;
  rn__list_init(&plugin->ctx.reqs);
  rc = plugin->desc->create(&plugin->ctx, &plugin->config, &plugin->state);
  if (rc < 0) {
    snprintf(err, sizeof err, "plugin %s (%s %s): create() failed: %s", path,
             plugin->name, plugin->desc->version ? plugin->desc->version : "?",
             rn__strerror(rc));
    refuse(gen, path, err);
    rn__plugin_unload(plugin);
    return;
  }
  plugin->created = true;
  gen->nplugins++;
  rn__log(RN_LOG_INFO, NULL, "plugin %s %s loaded (ABI %u.%u) from %s",
          plugin->name, plugin->desc->version ? plugin->desc->version : "?",
          RN_ABI_MAJOR_OF(plugin->desc->abi_version),
          RN_ABI_MINOR_OF(plugin->desc->abi_version), path);
}

static void validate_jobs(rn__generation_t *gen) {
  rn__config_t *config = gen->config;
  gen->jobs = calloc(config->njobs ? config->njobs : 1, sizeof *gen->jobs);
  if (!gen->jobs)
    abort();
  gen->njobs = config->njobs;
  for (size_t i = 0; i < config->njobs; i++) {
    const rn__job_conf_t *conf = &config->jobs[i];
    rn__gen_job_t *job = &gen->jobs[i];
    job->conf = conf;
    job->plugin = rn__generation_plugin(gen, conf->plugin);
    if (!job->plugin) {
      rn__config_error(config, conf->file, conf->line,
                       "job \"%s\": plugin \"%s\" is not loaded (no %s/%s.so, "
                       "or it was refused)",
                       conf->name, conf->plugin, config->plugin_dir,
                       conf->plugin);
      continue;
    }
    job->def = rn__plugin_job(job->plugin, conf->job);
    if (!job->def) {
      rn__config_error(config, conf->file, conf->line,
                       "job \"%s\": plugin \"%s\" has no job \"%s\"",
                       conf->name, conf->plugin, conf->job);
      continue;
    }
    if (rn__options_check(
            config, conf->file, conf->line,
            rn__schema_of(job->plugin, job->def, RN__SCHEMA_OPTIONS),
            &conf->options, &job->options) > 0)
      continue;
    job->valid = true;
  }
}

int rn__generation_build(rn__runner_t *runner, rn__config_t *config,
                         rn__generation_t **out) {
  rn__generation_t *gen = calloc(1, sizeof *gen);
  if (!gen)
    return RN_ENOMEM;
  gen->runner = runner;
  gen->id = ++runner->next_gen_id;
  gen->config = config;
  gen->refs = 1;
  if (mkdir(config->state_dir, 0700) < 0 && errno != EEXIST) {
    rn__config_error(config, config->state_dir, 0,
                     "cannot create state_dir: %s", strerror(errno));
  }
  char **files;
  size_t nfiles;
  if (list_plugins(config->plugin_dir, &files, &nfiles) < 0)
    rn__config_error(config, config->plugin_dir, 0,
                     "cannot read plugin_dir: %s", strerror(errno));
  gen->plugins = calloc(nfiles ? nfiles : 1, sizeof *gen->plugins);
  if (!gen->plugins)
    abort();
  for (size_t i = 0; i < nfiles; i++) {
    load_one(gen, config->plugin_dir, files[i]);
    free(files[i]);
  }
  free(files);
  for (size_t i = 0; i < config->nsources; i++)
    if (!config->sources[i].declared)
      rn__config_error(
          config, config->sources[i].file, config->sources[i].line,
          "[source \"%s\"]: no enabled plugin in %s declares this source",
          config->sources[i].name, config->plugin_dir);
  validate_jobs(gen);
  *out = gen;
  return 0;
}

rn__plugin_t *rn__generation_plugin(rn__generation_t *gen, const char *name) {
  for (size_t i = 0; i < gen->nplugins; i++)
    if (strcmp(gen->plugins[i].name, name) == 0)
      return &gen->plugins[i];
  return NULL;
}

rn__gen_job_t *rn__generation_job(rn__generation_t *gen, const char *name) {
  for (size_t i = 0; i < gen->njobs; i++)
    if (strcmp(gen->jobs[i].conf->name, name) == 0)
      return &gen->jobs[i];
  return NULL;
}

void rn__generation_ref(rn__generation_t *gen) { gen->refs++; }

static void free_generation(uv_handle_t *handle) {
  free(rn__container_of(handle, rn__generation_t, grace));
}

static void destroy(rn__generation_t *gen) {
  for (size_t i = 0; i < gen->nplugins; i++) {
    rn__plugin_t *plugin = &gen->plugins[i];
    if (plugin->created)
      plugin->desc->destroy(&plugin->ctx, plugin->state);
    rn__slots_ctx_gone(&plugin->ctx);
    rn__plugin_unload(plugin);
  }
  for (size_t i = 0; i < gen->njobs; i++)
    rn__options_free(&gen->jobs[i].options);
  rn__log(RN_LOG_DEBUG, NULL, "generation %llu unloaded",
          (unsigned long long)gen->id);
  free(gen->jobs);
  free(gen->plugins);
  rn__config_free(gen->config);
  gen->jobs = NULL;
  gen->plugins = NULL;
  gen->config = NULL;
  /* The grace timer lives in the struct: free it once the timer closed. */
  if (gen->grace_armed && !uv_is_closing((uv_handle_t *)&gen->grace))
    uv_close((uv_handle_t *)&gen->grace, free_generation);
  else if (!gen->grace_armed)
    free(gen);
}

static void grace_expired(uv_timer_t *timer) {
  rn__generation_t *gen = rn__container_of(timer, rn__generation_t, grace);
  rn__runner_t *runner = gen->runner;
  unsigned cancelled = 0;
  rn__list_t *n = runner->jobs.next;
  while (n != &runner->jobs) {
    rn__list_t *next = n->next;
    rn_job_t *job = rn__container_of(n, rn_job_t, link);
    if (job->plugin->gen == gen) {
      rn__job_cancel(job);
      cancelled++;
    }
    n = next;
  }
  if (cancelled)
    rn__log(RN_LOG_WARNING, NULL,
            "generation %llu: %u job(s) still running after drain_timeout; "
            "cancelled",
            (unsigned long long)gen->id, cancelled);
}

void rn__generation_drain(rn__generation_t *gen, uint64_t timeout_ms) {
  if (gen->grace_armed || gen->refs <= 1)
    return; /* nothing but the current reference: it unloads at once */
  uv_timer_init(gen->runner->loop, &gen->grace);
  uv_timer_start(&gen->grace, grace_expired, timeout_ms, 0);
  gen->grace_armed = true;
}

void rn__generation_unref(rn__generation_t *gen) {
  if (--gen->refs == 0)
    destroy(gen);
}

static bool has_live_jobs(const rn__generation_t *gen) {
  for (size_t i = 0; i < gen->nplugins; i++)
    if (gen->plugins[i].live_jobs)
      return true;
  return false;
}

/* What a retired generation's plugins still have out once its last job has
 * ended (timers and work of the plugin itself, callbacks of runs the host
 * ended) would keep its images mapped: cancel it. Each callback runs once,
 * and the last one unloads the generation. */
void rn__generation_cancel_leftovers(rn__generation_t *gen) {
  rn__generation_ref(gen); /* a synchronous callback must not unload it */
  for (size_t i = 0; i < gen->nplugins; i++)
    if (gen->plugins[i].created)
      rn__ctx_cancel_all(&gen->plugins[i].ctx);
  rn__generation_unref(gen);
}

void rn__generation_job_ended(rn__generation_t *gen) {
  if (gen->retired && !has_live_jobs(gen))
    rn__generation_cancel_leftovers(gen);
}

void rn__generation_retire(rn__generation_t *gen) {
  gen->retired = true;
  if (!has_live_jobs(gen))
    rn__generation_cancel_leftovers(gen);
  rn__generation_unref(gen);
}
