/* cli.h - shared pieces of the tandem command (prefix cli_): exit codes, the
 * command table entry, argument parsing, opening the store with clear
 * messages, and output helpers. Each command group lives in its own file
 * (cmd_docs.c, cmd_io.c, cmd_maint.c, cmd_chat.c); tandem.c dispatches.
 *
 * Messages go to stderr as "tandem CMD: ...", results to stdout.
 * Threads: the CLI is single-threaded (the store's writer thread is internal).
 */
#ifndef TANDEM_CLI_H
#define TANDEM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "error.h"
#include "store.h"

/* Exit statuses (docs/CLI.md, docs/tandem.1). */
enum {
    CLI_EXIT_OK = 0,       /* success; verify: every document is sound */
    CLI_EXIT_ERROR = 1,    /* any other failure (I/O, out of memory, disk full, not available) */
    CLI_EXIT_USAGE = 2,    /* bad command line; usage on stderr */
    CLI_EXIT_NOTFOUND = 3, /* no database, no such document or room, input file missing */
    CLI_EXIT_CORRUPT = 4,  /* corrupt stored data, verify found problems, invalid import file */
    CLI_EXIT_EXISTS = 5,   /* import: the document exists (see --merge, --force) */
};

/* cli_parse result besides the exit codes: help was printed, exit 0. */
#define CLI_HELP_SHOWN (-1)

/* Positional arguments a command takes at most. */
#define CLI_POS_MAX 4

typedef struct cli_cmd cli_cmd;
/* cli_run_fn - run a command; argv[0] is the command name. Returns the exit status. */
typedef int (*cli_run_fn)(const cli_cmd *cmd, int argc, char **argv);

/* One subcommand: its name, a one-line usage and summary, the --help text
 * (options and details, printed after the usage line) and the function. */
struct cli_cmd {
    const char *name;
    const char *usage;   /* arguments after the name: "DB DOC [--json]" */
    const char *summary; /* one line for `tandem --help` */
    const char *help;    /* the rest of `tandem CMD --help` */
    cli_run_fn run;
};

extern const cli_cmd cli_cmd_ls, cli_cmd_inspect, cli_cmd_cat;
extern const cli_cmd cli_cmd_export, cli_cmd_import;
extern const cli_cmd cli_cmd_compact, cli_cmd_verify;
extern const cli_cmd cli_cmd_history;
extern const cli_cmd cli_cmd_serve;

/* One option of a command: "--name" (flag) or "--name VALUE" / "--name=VALUE"
 * when `arg` (the metavariable) is set. cli_parse fills `set` and `value`. */
typedef struct cli_opt {
    const char *name;
    const char *arg;
    bool set;
    const char *value;
} cli_opt;

typedef struct cli_args {
    const char *pos[CLI_POS_MAX];
    size_t npos;
} cli_args;

/* cli_parse - parse argv[1..argc) of `cmd` against opts[0..nopts): options
 * anywhere, "--" ends them, "-" is positional; -h/--help prints the help to
 * stdout. Between min_pos and max_pos positional arguments.
 * Returns 0, CLI_HELP_SHOWN, or CLI_EXIT_USAGE (message and usage on stderr). */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_opt *opts, size_t nopts,
              size_t min_pos, size_t max_pos, cli_args *out);
/* cli_usage_error - "tandem CMD: <msg>" and the usage line on stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cli_print_help - the full help of cmd on `f`. */
void cli_print_help(const cli_cmd *cmd, FILE *f);
/* cli_parse_u64 - a decimal number without sign or spaces. false when invalid. */
bool cli_parse_u64(const char *s, uint64_t *out);
/* cli_check_name - document/room name of 1..STORE_NAME_MAX bytes, else a usage error. */
int cli_check_name(const cli_cmd *cmd, const char *what, const char *name);

/* cli_error - "tandem CMD: <msg>" on stderr; returns `code`. */
int cli_error(const cli_cmd *cmd, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* cli_exit_for - the exit status for a store/crdt error. */
int cli_exit_for(tdm_err e);
/* cli_store_error - report error e of an operation on document `name` (may be
 * NULL) and return its exit status, with a specific message for not-found
 * and corrupt data. */
int cli_store_error(const cli_cmd *cmd, const char *db, const char *name, tdm_err e);

/* cli_open - open the database in directory `db`: read_only (MDB_RDONLY, no
 * writer thread, nothing written) or read-write; `create` makes it when
 * missing (read-write only). On failure prints why and returns the exit status. */
int cli_open(const cli_cmd *cmd, const char *db, bool read_only, bool create, store **out);
/* cli_finish - flush stdout; a write error is reported and turns `code` into
 * CLI_EXIT_ERROR. Returns the exit status. */
int cli_finish(const cli_cmd *cmd, int code);

/* Buffer size for cli_name: every byte may take 4 characters. */
#define CLI_NAME_BUF (4 * STORE_NAME_MAX + 1)
/* cli_name - printable form of a name: valid UTF-8 without control
 * characters is kept; backslash becomes "\\", other bytes "\xHH". Returns buf. */
const char *cli_name(const uint8_t *p, size_t n, char buf[CLI_NAME_BUF]);
/* cli_print_escaped - bytes as cli_name does, onto f, without a length cap. */
void cli_print_escaped(FILE *f, const uint8_t *p, size_t n);
/* cli_time - Unix ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) into buf[32]; 0 gives "-". */
const char *cli_time(int64_t ms, char buf[32]);

/* cli_json_str - a JSON string of bytes p[0..n): invalid UTF-8 bytes become
 * U+FFFD. NULL only when out of memory. */
json_t *cli_json_str(const uint8_t *p, size_t n);
/* cli_json_print - dump `v` (consumed) to stdout with a newline. TDM_ENOMEM
 * when v is NULL (a failed build), TDM_EIO when writing fails. */
tdm_err cli_json_print(json_t *v);
/* cli_json_set - json_object_set_new that records a failure in *ok. */
void cli_json_set(json_t *o, const char *key, json_t *v, bool *ok);

#endif
