/* tandem.c - the tandem command: dispatches to the subcommands of cmd_*.c,
 * prints the overall help and the version. docs/CLI.md and docs/tandem.1
 * describe every command. */
#include "cli.h"

#include <string.h>

extern const cli_cmd cli_cmd_token;      /* cmd_token.c */
extern const cli_cmd cli_cmd_vapid_keys; /* cmd_vapid.c */

#ifndef TANDEM_VERSION
#define TANDEM_VERSION "0.0.0"
#endif

static const cli_cmd *const cmds[] = {
    &cli_cmd_ls,     &cli_cmd_inspect, &cli_cmd_cat,        &cli_cmd_export,
    &cli_cmd_import, &cli_cmd_compact, &cli_cmd_verify,     &cli_cmd_history,
    &cli_cmd_token,  &cli_cmd_serve,   &cli_cmd_vapid_keys,
};

/* Commands that later issues add: listed, and refused with exit 1. The list
 * ends with a NULL entry so that it may become empty. */
static const char *const later[][2] = {
    {NULL, NULL},
};

static const char exit_help[] =
    "Exit status:\n"
    "  0  success (verify: every document is sound)\n"
    "  1  error: I/O, out of memory, disk full, command not available yet\n"
    "  2  usage: bad command line (usage on stderr)\n"
    "  3  not found: no database, no such document or room, missing input file\n"
    "  4  corrupt: stored data failed validation, verify found problems,\n"
    "     or an import file is not a valid document\n"
    "  5  exists: import target exists (use --merge or --force)\n";

static void print_main_help(FILE *f)
{
    fprintf(f, "usage: tandem COMMAND [ARGS...]\n"
               "       tandem help [COMMAND] | tandem --help | tandem --version\n\n"
               "Inspect and maintain a tandem database (an LMDB directory holding data.mdb).\n"
               "Read-only commands open it read-only and never write to it.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-8s %s\n", cmds[i]->name, cmds[i]->summary);
    if (later[0][0]) fprintf(f, "\nNot yet available (later releases):\n");
    for (size_t i = 0; later[i][0]; i++) fprintf(f, "  %-8s %s\n", later[i][0], later[i][1]);
    fprintf(f, "\nRun 'tandem COMMAND --help' for a command's arguments and options.\n\n%s",
            exit_help);
}

static const cli_cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmds[i]->name, name) == 0) return cmds[i];
    return NULL;
}

static bool is_later(const char *name)
{
    for (size_t i = 0; later[i][0]; i++)
        if (strcmp(later[i][0], name) == 0) return true;
    return false;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "tandem: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: tandem COMMAND [ARGS...]\n"
                    "Try 'tandem --help' for the list of commands.\n");
    return CLI_EXIT_USAGE;
}

static int not_available(const char *name)
{
    fprintf(stderr, "tandem: '%s' is not yet available in this version\n", name);
    return CLI_EXIT_ERROR;
}

/* tandem help [COMMAND] */
static int run_help(int argc, char **argv)
{
    if (argc < 3) {
        print_main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 3) return usage_error("help takes one command name, got '%s' too", argv[3]);
    const cli_cmd *c = find_cmd(argv[2]);
    if (c) {
        cli_print_help(c, stdout);
        return CLI_EXIT_OK;
    }
    if (is_later(argv[2])) return not_available(argv[2]);
    return usage_error("unknown command '%s'", argv[2]);
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage_error("%s", "no command given");
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("tandem %s\n", TANDEM_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "help") == 0) return run_help(argc, argv);
    const cli_cmd *c = find_cmd(name);
    if (c) return c->run(c, argc - 1, argv + 1);
    if (is_later(name)) return not_available(name);
    if (name[0] == '-') return usage_error("unknown option '%s'", name);
    return usage_error("unknown command '%s'", name);
}
