/* roomgate: see server/cli.c for the commands. */
#include "server/server.h"

int
main(int argc, char **argv, char **envp)
{
	return gate_cli_main(argc, argv, envp);
}
