/* commands.c - subcommands owned by modules other than cli.c. */
#include "cli.h"

const rn__cli_command_t rn__cli_extra_commands[] = {
    {0},
};
