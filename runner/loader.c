/* loader.c - loading one plugin image safely.
 *
 * glibc's dlopen returns the image already mapped for a path that is still
 * open, even after a new file was renamed over it, so every load copies the
 * file to a fresh unique name first and unlinks the copy once mapped. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Refuses files an unprivileged user could have swapped: anything writable
 * by group or others, or owned by someone other than root or us. */
static int check_trusted(const char *path, const char *what, char *err,
                         size_t errlen) {
  struct stat st;
  if (stat(path, &st) < 0) {
    snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
    return errno == ENOENT ? RN_ENOENT : RN_EIO;
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(err, errlen,
             "%s %s is writable by group or others (mode %03o); refusing to "
             "load code from it",
             what, path, (unsigned)(st.st_mode & 0777));
    return RN_EPERM;
  }
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    snprintf(err, errlen,
             "%s %s is owned by uid %u, neither root nor the service user "
             "(uid %u); refusing to load code from it",
             what, path, (unsigned)st.st_uid, (unsigned)geteuid());
    return RN_EPERM;
  }
  return 0;
}

static int copy_file(const char *src, const char *dst, char *err,
                     size_t errlen) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    snprintf(err, errlen, "plugin %s: %s", src, strerror(errno));
    return RN_EIO;
  }
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0500);
  if (out < 0) {
    snprintf(err, errlen, "cannot create %s: %s", dst, strerror(errno));
    close(in);
    return RN_EIO;
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while ((n = read(in, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0) {
        if (errno == EINTR)
          continue;
        rc = RN_EIO;
        break;
      }
      off += w;
    }
    if (rc)
      break;
  }
  if (n < 0)
    rc = RN_EIO;
  if (close(out) < 0)
    rc = RN_EIO;
  close(in);
  if (rc) {
    snprintf(err, errlen, "cannot copy plugin %s to %s: %s", src, dst,
             strerror(errno));
    unlink(dst);
  }
  return rc;
}

static bool valid_name(const char *name) {
  if (!name || !*name)
    return false;
  for (const char *c = name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
          *c == '_'))
      return false;
  return true;
}

static int check_descriptor(const char *path, const rn_plugin_t *desc,
                            char *err, size_t errlen) {
  if (!desc) {
    snprintf(err, errlen, "plugin %s: entry %s returned no descriptor", path,
             RN_ENTRY_NAME);
    return RN_EABI;
  }
  uint32_t v = desc->abi_version;
  if (RN_ABI_MAJOR_OF(v) != RN_ABI_MAJOR ||
      RN_ABI_MINOR_OF(v) > RN_ABI_MINOR) {
    snprintf(err, errlen,
             "plugin %s was built for ABI %" PRIu32 ".%" PRIu32
             ", this host provides ABI %d.%d",
             path, RN_ABI_MAJOR_OF(v), RN_ABI_MINOR_OF(v), RN_ABI_MAJOR,
             RN_ABI_MINOR);
    return RN_EABI;
  }
  /* ABI 1.0 descriptors end at command_group: anything smaller is broken. */
  size_t min_size = offsetof(rn_plugin_t, command_group) +
                    sizeof(((rn_plugin_t *)0)->command_group);
  if (desc->struct_size < min_size) {
    snprintf(err, errlen,
             "plugin %s: descriptor of %" PRIu32
             " bytes is smaller than ABI %d.0 requires (%zu bytes)",
             path, desc->struct_size, RN_ABI_MAJOR, min_size);
    return RN_EABI;
  }
  if (!valid_name(desc->name) || !desc->create || !desc->destroy ||
      !desc->jobs) {
    snprintf(err, errlen,
             "plugin %s: descriptor lacks a valid name, create, destroy or "
             "jobs",
             path);
    return RN_EABI;
  }
  for (size_t i = 0; desc->jobs[i]; i++) {
    const rn_job_def_t *job = desc->jobs[i];
    size_t min_job = offsetof(rn_job_def_t, command) + sizeof(job->command);
    if (job->struct_size < min_job || !valid_name(job->name) || !job->run) {
      snprintf(err, errlen,
               "plugin %s: job #%zu has a malformed definition (size %" PRIu32
               ", expected at least %zu, a name and a run hook)",
               path, i + 1, job->struct_size, min_job);
      return RN_EABI;
    }
    for (size_t k = 0; k < i; k++) {
      if (strcmp(desc->jobs[k]->name, job->name) == 0) {
        snprintf(err, errlen, "plugin %s: job \"%s\" is defined twice", path,
                 job->name);
        return RN_EABI;
      }
    }
  }
  return 0;
}

int rn__plugin_load(const char *path, const char *state_dir,
                    rn__plugin_t *plugin, char *err, size_t errlen) {
  static uint64_t load_seq;
  char *dir_copy = strdup(path);
  if (!dir_copy)
    return RN_ENOMEM;
  int rc = check_trusted(dirname(dir_copy), "plugin directory", err, errlen);
  free(dir_copy);
  if (rc == 0)
    rc = check_trusted(path, "plugin file", err, errlen);
  if (rc < 0)
    return rc;

  char copy[4096];
  snprintf(copy, sizeof copy, "%s/plugin-%ld-%" PRIu64 ".so", state_dir,
           (long)getpid(), ++load_seq);
  rc = copy_file(path, copy, err, errlen);
  if (rc < 0)
    return rc;
  /* RTLD_NOW: an unresolved symbol refuses the load now, not mid-job. */
  void *image = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
  unlink(copy);
  if (!image) {
    snprintf(err, errlen, "plugin %s: cannot load: %s", path, dlerror());
    return RN_EABI;
  }
  rn_plugin_entry_fn entry;
  *(void **)&entry = dlsym(image, RN_ENTRY_NAME);
  if (!entry) {
    snprintf(err, errlen,
             "plugin %s exports no %s: not a plugin for ABI %d.x of this "
             "host (built for another major, or not a plugin)",
             path, RN_ENTRY_NAME, RN_ABI_MAJOR);
    dlclose(image);
    return RN_EABI;
  }
  const rn_plugin_t *desc = entry(rn__host());
  rc = check_descriptor(path, desc, err, errlen);
  if (rc < 0) {
    dlclose(image);
    return rc;
  }
  plugin->image = image;
  plugin->desc = desc;
  plugin->name = strdup(desc->name);
  plugin->source_path = strdup(path);
  if (!plugin->name || !plugin->source_path) {
    rn__plugin_unload(plugin);
    return RN_ENOMEM;
  }
  return 0;
}

void rn__plugin_unload(rn__plugin_t *plugin) {
  if (plugin->image)
    dlclose(plugin->image);
  free(plugin->name);
  free(plugin->source_path);
  rn__options_free(&plugin->config);
  plugin->image = NULL;
  plugin->name = plugin->source_path = NULL;
  plugin->desc = NULL;
}

const rn_job_def_t *rn__plugin_job(const rn__plugin_t *plugin,
                                   const char *job_name) {
  for (size_t i = 0; plugin->desc->jobs[i]; i++)
    if (strcmp(plugin->desc->jobs[i]->name, job_name) == 0)
      return plugin->desc->jobs[i];
  return NULL;
}
