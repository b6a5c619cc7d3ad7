/* main.c - regentra-runner. */
#include <signal.h>

#include "cli.h"

int main(int argc, char **argv) {
  /* A reload asked for before serve has installed its handler must not end
   * the process: the configuration it would reload is read at start-up. */
  signal(SIGHUP, SIG_IGN);
  rn__malloc_tune();
  return rn__cli_main(argc, argv);
}
