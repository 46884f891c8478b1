/* man_keys: prints a daemon's config keys as roff for its manual page, from the same settings
 * table as its --help, so that the two can never disagree. Run by the build (deploy/package.cmake).
 *   man_keys collector|agent */
#include <stdio.h>
#include <string.h>

#include "agent_config.h"
#include "collector_config.h"

int
main (int argc, char *argv[])
{
    if (argc == 2 && strcmp (argv[1], "collector") == 0)
        collector_config_describe_roff (stdout);
    else if (argc == 2 && strcmp (argv[1], "agent") == 0)
        agent_config_describe_roff (stdout);
    else {
        fprintf (stderr, "usage: man_keys collector|agent\n");
        return 2;
    }
    return fflush (stdout) == 0 ? 0 : 1;
}
