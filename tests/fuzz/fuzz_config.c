/* libFuzzer target: the config reader. The input is written as runner.conf
 * and as one conf.d file; whatever it holds, loading returns a config whose
 * errors each name a file and a line, and frees cleanly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* In memory: a disk-backed directory costs a journal write per run. */
static char dir[64], conf_path[96], confd[96], confd_file[128];

static void write_file(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
    abort();
}

static void remove_dir(void) {
  unlink(confd_file);
  unlink(conf_path);
  rmdir(confd);
  rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0]) {
    strcpy(dir, "/dev/shm/regentra-fuzz-config.XXXXXX");
    if (!mkdtemp(dir))
      abort();
    snprintf(conf_path, sizeof conf_path, "%s/runner.conf", dir);
    snprintf(confd, sizeof confd, "%s/conf.d", dir);
    snprintf(confd_file, sizeof confd_file, "%s/10-fuzz.conf", confd);
    if (mkdir(confd, 0700) != 0)
      abort();
    atexit(remove_dir);
  }
  write_file(conf_path, data, size);
  write_file(confd_file, data, size);
  rn__config_t *config = rn__config_load(conf_path, confd);
  if (!config)
    return 0; /* out of memory */
  for (size_t i = 0; i < config->nerrors; i++)
    if (strncmp(config->errors[i], dir, strlen(dir)) != 0)
      abort(); /* every error names the file it is about */
  rn__config_free(config);
  return 0;
}
