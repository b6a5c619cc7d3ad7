/* loader.c - loading one plugin image safely.
 *
 * What is checked is what is loaded: the plugin is opened once without
 * following symlinks, its descriptor is checked, and its bytes are copied
 * from that descriptor into a private file under state_dir. The copy's ELF
 * headers are checked by hand before dlopen ever maps it: a file cut inside
 * a loadable segment would otherwise kill the process with SIGBUS when the
 * dynamic loader touches the missing pages.
 *
 * The private copy also serves reload: glibc's dlopen returns the image
 * already mapped for a path that is still open, even after a new file was
 * renamed over it, so every load maps a fresh unique name. The copy is
 * unlinked as soon as dlopen returns, on every path. */
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#if defined(__x86_64__)
#define HOST_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_ELF_MACHINE EM_AARCH64
#elif defined(__powerpc64__)
#define HOST_ELF_MACHINE EM_PPC64
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_ELF_MACHINE EM_RISCV
#elif defined(__s390x__)
#define HOST_ELF_MACHINE EM_S390
#else
#define HOST_ELF_MACHINE EM_NONE /* unknown here: dlopen checks it */
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ELF_DATA ELFDATA2LSB
#else
#define HOST_ELF_DATA ELFDATA2MSB
#endif

/* Refuses what an unprivileged user could have swapped: anything writable
 * by group or others, or owned by someone other than root or us. */
static int check_owner_mode(const struct stat *st, const char *what,
                            const char *path, char *err, size_t errlen) {
  if (st->st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(err, errlen,
             "%s %s is writable by group or others (mode %03o); refusing to "
             "load code from it",
             what, path, (unsigned)(st->st_mode & 0777));
    return RN_EPERM;
  }
  if (st->st_uid != 0 && st->st_uid != geteuid()) {
    snprintf(err, errlen,
             "%s %s is owned by uid %u, neither root nor the service user "
             "(uid %u); refusing to load code from it",
             what, path, (unsigned)st->st_uid, (unsigned)geteuid());
    return RN_EPERM;
  }
  return 0;
}

static int open_errno(int e) {
  return e == ENOENT ? RN_ENOENT : e == EACCES ? RN_EACCES : RN_EIO;
}

/* Opens path's directory and then the file relative to that descriptor,
 * so the file opened is the one in the directory that was checked. */
static int open_plugin(const char *path, int *fd_out, struct stat *st,
                       char *err, size_t errlen) {
  const char *slash = strrchr(path, '/');
  char dir[4096];
  const char *base = slash ? slash + 1 : path;
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    snprintf(err, errlen, "plugin directory %s: %s", dir, strerror(errno));
    return open_errno(errno);
  }
  struct stat dst;
  int rc = 0;
  if (fstat(dirfd, &dst) < 0) {
    snprintf(err, errlen, "plugin directory %s: %s", dir, strerror(errno));
    rc = RN_EIO;
  }
  if (rc == 0)
    rc = check_owner_mode(&dst, "plugin directory", dir, err, errlen);
  if (rc < 0) {
    close(dirfd);
    return rc;
  }
  /* O_NONBLOCK: a FIFO named *.so must not hang the loop on open. */
  int fd = openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  int open_error = errno;
  close(dirfd);
  if (fd < 0) {
    if (open_error == ELOOP)
      snprintf(err, errlen,
               "plugin file %s is a symbolic link; install the file itself "
               "(a link could be pointed elsewhere after it was checked)",
               path);
    else
      snprintf(err, errlen, "plugin file %s: %s", path, strerror(open_error));
    return open_error == ELOOP ? RN_EPERM : open_errno(open_error);
  }
  if (fstat(fd, st) < 0) {
    snprintf(err, errlen, "plugin file %s: %s", path, strerror(errno));
    close(fd);
    return RN_EIO;
  }
  if (!S_ISREG(st->st_mode)) {
    snprintf(err, errlen, "plugin file %s is not a regular file", path);
    close(fd);
    return RN_EINVAL;
  }
  rc = check_owner_mode(st, "plugin file", path, err, errlen);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  *fd_out = fd;
  return 0;
}

/* Removes private copies left by a process that died between copying and
 * unlinking (killed mid-load, or an older version that crashed in dlopen):
 * plugin-PID-N.so whose PID no longer runs. Once per process. */
static void remove_stale_copies(int state_fd, const char *state_dir) {
  static bool swept;
  if (swept)
    return;
  swept = true;
  int fd = dup(state_fd);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0)
      close(fd);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    long pid;
    uint64_t seq;
    int end = 0;
    if (sscanf(e->d_name, "plugin-%ld-%" SCNu64 ".so%n", &pid, &seq, &end) !=
            2 ||
        end == 0 || e->d_name[end] != '\0' || pid <= 0 || pid == getpid())
      continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
      continue; /* alive, or not ours to judge */
    if (unlinkat(state_fd, e->d_name, 0) == 0)
      rn__log(RN_LOG_NOTICE, NULL,
              "removed %s/%s, a plugin copy left by process %ld which no "
              "longer runs",
              state_dir, e->d_name, pid);
  }
  closedir(d);
}

/* state_dir holds the private copies we dlopen: it must be ours alone. */
static int open_state_dir(const char *state_dir, int *fd_out, char *err,
                          size_t errlen) {
  if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
    snprintf(err, errlen, "state_dir %s cannot be created: %s", state_dir,
             strerror(errno));
    return open_errno(errno);
  }
  int fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "state_dir %s: %s", state_dir, strerror(errno));
    return open_errno(errno);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    snprintf(err, errlen, "state_dir %s: %s", state_dir, strerror(errno));
    close(fd);
    return RN_EIO;
  }
  if (st.st_uid != geteuid()) {
    snprintf(err, errlen,
             "state_dir %s is owned by uid %u, not the service user (uid "
             "%u); refusing to stage plugins in it",
             state_dir, (unsigned)st.st_uid, (unsigned)geteuid());
    close(fd);
    return RN_EPERM;
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(err, errlen,
             "state_dir %s is writable by group or others (mode %03o); make "
             "it 0700",
             state_dir, (unsigned)(st.st_mode & 0777));
    close(fd);
    return RN_EPERM;
  }
  remove_stale_copies(fd, state_dir);
  *fd_out = fd;
  return 0;
}

/* A new file of our own under state_dir, created exclusively. */
static int create_copy(int state_fd, const char *state_dir, char *name,
                       size_t namelen, char *path, size_t pathlen, char *err,
                       size_t errlen) {
  static uint64_t load_seq;
  for (int attempt = 0; attempt < 100; attempt++) {
    snprintf(name, namelen, "plugin-%ld-%" PRIu64 ".so", (long)getpid(),
             ++load_seq);
    int fd = openat(state_fd, name,
                    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      snprintf(path, pathlen, "%s/%s", state_dir, name);
      return fd;
    }
    if (errno != EEXIST)
      break;
  }
  snprintf(err, errlen, "cannot create a private copy in state_dir %s: %s",
           state_dir, strerror(errno));
  return RN_EIO;
}

/* Copies exactly size bytes; a file that shrinks or grows meanwhile is
 * being rewritten in place and is refused. */
static int copy_exact(int in, off_t size, int out, const char *path, char *err,
                      size_t errlen) {
  char buf[65536];
  off_t done = 0;
  while (done < size) {
    size_t want =
        (size_t)(size - done) < sizeof buf ? (size_t)(size - done) : sizeof buf;
    ssize_t n = pread(in, buf, want, done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      snprintf(err, errlen, "plugin %s: read failed at byte %lld: %s", path,
               (long long)done, strerror(errno));
      return RN_EIO;
    }
    if (n == 0) {
      snprintf(err, errlen,
               "plugin %s shrank from %lld to %lld bytes while being copied "
               "(is it being rewritten in place?)",
               path, (long long)size, (long long)done);
      return RN_EIO;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        snprintf(err, errlen, "cannot copy plugin %s to state_dir: %s", path,
                 strerror(errno));
        return RN_EIO;
      }
      off += w;
    }
    done += n;
  }
  char probe;
  ssize_t extra;
  while ((extra = pread(in, &probe, 1, size)) < 0 && errno == EINTR)
    ;
  struct stat after;
  if (extra != 0 || fstat(in, &after) < 0 || after.st_size != size) {
    snprintf(err, errlen,
             "plugin %s changed size while being copied (is it being "
             "rewritten in place?)",
             path);
    return RN_EIO;
  }
  return 0;
}

static int read_at(int fd, void *buf, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n =
        pread(fd, (char *)buf + done, len - done, (off_t)(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return RN_EIO;
    done += (size_t)n;
  }
  return 0;
}

/* True when [offset, offset + count * entry) lies inside size bytes. */
static bool table_inside(uint64_t offset, uint64_t count, uint64_t entry,
                         uint64_t size, uint64_t *end) {
  *end = UINT64_MAX;
  if (count && entry > UINT64_MAX / count)
    return false;
  uint64_t bytes = count * entry;
  if (offset > UINT64_MAX - bytes)
    return false;
  *end = offset + bytes;
  return *end <= size;
}

/* Checks what dlopen trusts before it maps anything: the ELF header, and
 * that the program headers and every segment they describe lie inside the
 * file. The sentence names the file as installed (path). */
static int check_elf(int fd, uint64_t size, const char *path, char *err,
                     size_t errlen) {
  if (size == 0) {
    snprintf(err, errlen, "plugin %s: the file is empty", path);
    return RN_EINVAL;
  }
  Elf64_Ehdr eh;
  memset(&eh, 0, sizeof eh);
  size_t head = size < sizeof eh ? (size_t)size : sizeof eh;
  if (read_at(fd, &eh, head, 0) < 0) {
    snprintf(err, errlen, "plugin %s: cannot read its copy", path);
    return RN_EIO;
  }
  if (head < SELFMAG || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    snprintf(err, errlen,
             "plugin %s: not an ELF shared object (no ELF magic in "
             "its first bytes)",
             path);
    return RN_EINVAL;
  }
  if (head < sizeof eh) {
    snprintf(err, errlen,
             "plugin %s: the file has %" PRIu64
             " bytes, fewer than an ELF header (%zu bytes; torn or truncated "
             "copy?)",
             path, size, sizeof eh);
    return RN_EINVAL;
  }
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) {
    snprintf(err, errlen,
             "plugin %s: ELF class %u is not 64-bit; this host loads "
             "64-bit plugins",
             path, (unsigned)eh.e_ident[EI_CLASS]);
    return RN_EINVAL;
  }
  if (eh.e_ident[EI_DATA] != HOST_ELF_DATA ||
      eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT) {
    snprintf(err, errlen,
             "plugin %s: byte order or ELF version does not match "
             "this host",
             path);
    return RN_EINVAL;
  }
  if (HOST_ELF_MACHINE != EM_NONE && eh.e_machine != HOST_ELF_MACHINE) {
    snprintf(err, errlen,
             "plugin %s: built for ELF machine %u, this host is "
             "machine %u",
             path, (unsigned)eh.e_machine, (unsigned)HOST_ELF_MACHINE);
    return RN_EINVAL;
  }
  if (eh.e_type != ET_DYN) {
    snprintf(err, errlen,
             "plugin %s: ELF type %u is not a shared object (ET_DYN)", path,
             (unsigned)eh.e_type);
    return RN_EINVAL;
  }
  uint64_t end;
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
      eh.e_phnum == PN_XNUM) {
    snprintf(err, errlen,
             "plugin %s: malformed program header table (%u entries "
             "of %u bytes)",
             path, (unsigned)eh.e_phnum, (unsigned)eh.e_phentsize);
    return RN_EINVAL;
  }
  if (!table_inside(eh.e_phoff, eh.e_phnum, sizeof(Elf64_Phdr), size, &end)) {
    snprintf(err, errlen,
             "plugin %s: the program header table ends at byte "
             "%" PRIu64 " but the file has %" PRIu64
             " bytes (torn or truncated copy?)",
             path, end, size);
    return RN_EINVAL;
  }
  unsigned loads = 0;
  for (unsigned i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    if (read_at(fd, &ph, sizeof ph, eh.e_phoff + (uint64_t)i * sizeof ph) < 0) {
      snprintf(err, errlen, "plugin %s: cannot read its copy", path);
      return RN_EIO;
    }
    bool load = ph.p_type == PT_LOAD;
    loads += load;
    if (load && ph.p_filesz > ph.p_memsz) {
      snprintf(err, errlen,
               "plugin %s: loadable segment %u has more bytes in the "
               "file than in memory",
               path, loads);
      return RN_EINVAL;
    }
    if (!table_inside(ph.p_offset, 1, ph.p_filesz, size, &end)) {
      if (load)
        snprintf(err, errlen,
                 "plugin %s: loadable segment %u ends at byte "
                 "%" PRIu64 " but the file has %" PRIu64
                 " bytes (torn or truncated copy?)",
                 path, loads, end, size);
      else
        snprintf(err, errlen,
                 "plugin %s: program header %u (type 0x%" PRIx32
                 ") ends at byte %" PRIu64 " but the file has %" PRIu64
                 " bytes (torn or truncated copy?)",
                 path, i + 1, ph.p_type, end, size);
      return RN_EINVAL;
    }
  }
  if (loads == 0) {
    snprintf(err, errlen, "plugin %s: it has no loadable segment", path);
    return RN_EINVAL;
  }
  if (eh.e_shoff != 0) {
    /* e_shnum 0 with a table present means the count is in entry 0. */
    uint64_t count = eh.e_shnum ? eh.e_shnum : 1;
    if (eh.e_shentsize != sizeof(Elf64_Shdr)) {
      snprintf(err, errlen,
               "plugin %s: malformed section header table (entries of %u "
               "bytes)",
               path, (unsigned)eh.e_shentsize);
      return RN_EINVAL;
    }
    if (!table_inside(eh.e_shoff, count, sizeof(Elf64_Shdr), size, &end)) {
      snprintf(err, errlen,
               "plugin %s: the section header table ends at byte %" PRIu64
               " but the file has %" PRIu64 " bytes (torn or truncated copy?)",
               path, end, size);
      return RN_EINVAL;
    }
  }
  return 0;
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
  if (RN_ABI_MAJOR_OF(v) != RN_ABI_MAJOR || RN_ABI_MINOR_OF(v) > RN_ABI_MINOR) {
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

/* Stages the checked descriptor's bytes as a private copy and checks the
 * copy's ELF headers; on success copy_path names it. The copy is removed
 * here on failure. */
static int stage_copy(int plugin_fd, const struct stat *st, const char *path,
                      int state_fd, const char *state_dir, char *copy_name,
                      size_t namelen, char *copy_path, size_t pathlen,
                      char *err, size_t errlen) {
  int out = create_copy(state_fd, state_dir, copy_name, namelen, copy_path,
                        pathlen, err, errlen);
  if (out < 0)
    return out;
  int rc = copy_exact(plugin_fd, st->st_size, out, path, err, errlen);
  if (rc == 0) {
    /* Check the bytes dlopen will map, not the file they came from. */
    struct stat copied;
    if (fstat(out, &copied) < 0 || copied.st_size != st->st_size) {
      snprintf(err, errlen, "cannot copy plugin %s to state_dir %s", path,
               state_dir);
      rc = RN_EIO;
    } else {
      rc = check_elf(out, (uint64_t)copied.st_size, path, err, errlen);
    }
  }
  if (close(out) < 0 && rc == 0) {
    snprintf(err, errlen, "cannot copy plugin %s to state_dir %s: %s", path,
             state_dir, strerror(errno));
    rc = RN_EIO;
  }
  if (rc < 0)
    unlinkat(state_fd, copy_name, 0);
  return rc;
}

int rn__plugin_load(const char *path, const char *state_dir,
                    rn__plugin_t *plugin, char *err, size_t errlen) {
  int plugin_fd;
  struct stat st;
  int rc = open_plugin(path, &plugin_fd, &st, err, errlen);
  if (rc < 0)
    return rc;
  int state_fd;
  rc = open_state_dir(state_dir, &state_fd, err, errlen);
  if (rc < 0) {
    close(plugin_fd);
    return rc;
  }
  char copy_name[128], copy_path[4096];
  rc = stage_copy(plugin_fd, &st, path, state_fd, state_dir, copy_name,
                  sizeof copy_name, copy_path, sizeof copy_path, err, errlen);
  close(plugin_fd);
  if (rc < 0) {
    close(state_fd);
    return rc;
  }
  /* RTLD_NOW: an unresolved symbol refuses the load now, not mid-job. */
  void *image = dlopen(copy_path, RTLD_NOW | RTLD_LOCAL);
  /* Mapped or not, the copy has served its purpose. */
  unlinkat(state_fd, copy_name, 0);
  close(state_fd);
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
  /* Read once by the elements' declared size; nothing else walks them. */
  rc = rn__plugin_read_schemas(plugin, path, err, errlen);
  if (rc < 0) {
    rn__plugin_unload(plugin);
    return rc;
  }
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
  rn__plugin_free_schemas(plugin);
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
