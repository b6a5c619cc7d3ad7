/* main.c - regentra-runner. */
#include "cli.h"

int main(int argc, char **argv) { return rn__cli_main(argc, argv); }
