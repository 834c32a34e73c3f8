/* cli_util.c - argument parsing, error reporting and opening the store for
 * the tandem command. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

/* ---- arguments ------------------------------------------------------------ */

void cli_print_help(const cli_cmd *cmd, FILE *f)
{
    fprintf(f, "usage: tandem %s %s\n\n%s\n%s", cmd->name, cmd->usage, cmd->summary, cmd->help);
}

int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tandem %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: tandem %s %s\n", cmd->name, cmd->usage);
    fprintf(stderr, "Try 'tandem %s --help' for more information.\n", cmd->name);
    return CLI_EXIT_USAGE;
}

/* Find option `name` (length n) among opts. */
static cli_opt *find_opt(cli_opt *opts, size_t nopts, const char *name, size_t n)
{
    for (size_t i = 0; i < nopts; i++)
        if (strlen(opts[i].name) == n && memcmp(opts[i].name, name, n) == 0) return &opts[i];
    return NULL;
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_opt *opts, size_t nopts,
              size_t min_pos, size_t max_pos, cli_args *out)
{
    memset(out, 0, sizeof *out);
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (out->npos >= max_pos || out->npos >= CLI_POS_MAX)
                return cli_usage_error(cmd, "unexpected argument '%s'", a);
            out->pos[out->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_print_help(cmd, stdout);
            return CLI_HELP_SHOWN;
        }
        if (a[1] != '-') return cli_usage_error(cmd, "unknown option '%s'", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = find_opt(opts, nopts, name, n);
        if (!o) return cli_usage_error(cmd, "unknown option '--%.*s'", (int)n, name);
        if (o->set) return cli_usage_error(cmd, "option '--%s' given twice", o->name);
        if (!o->arg) {
            if (eq) return cli_usage_error(cmd, "option '--%s' takes no value", o->name);
            o->value = "";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            return cli_usage_error(cmd, "option '--%s' needs a value (%s)", o->name, o->arg);
        }
        o->set = true;
    }
    if (out->npos < min_pos) return cli_usage_error(cmd, "missing arguments");
    return 0;
}

bool cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s) return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int cli_check_name(const cli_cmd *cmd, const char *what, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > STORE_NAME_MAX)
        return cli_usage_error(cmd, "%s name must be 1 to %u bytes (got %zu)", what, STORE_NAME_MAX,
                               n);
    return 0;
}

/* ---- errors --------------------------------------------------------------- */

int cli_error(const cli_cmd *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout); /* keep the order of results and messages on a shared terminal */
    va_start(ap, fmt);
    fprintf(stderr, "tandem %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int cli_exit_for(tdm_err e)
{
    switch (e) {
    case TDM_OK:
        return CLI_EXIT_OK;
    case TDM_ENOTFOUND:
        return CLI_EXIT_NOTFOUND;
    case TDM_ECORRUPT:
    case TDM_EMALFORMED:
    case TDM_EUTF8:
        return CLI_EXIT_CORRUPT;
    default:
        return CLI_EXIT_ERROR;
    }
}

int cli_store_error(const cli_cmd *cmd, const char *db, const char *name, tdm_err e)
{
    char nb[CLI_NAME_BUF];
    const char *shown = name ? cli_name((const uint8_t *)name, strlen(name), nb) : NULL;
    if (e == TDM_ENOTFOUND && shown)
        return cli_error(cmd, CLI_EXIT_NOTFOUND, "%s: no document '%s'", db, shown);
    if (e == TDM_ECORRUPT && shown)
        return cli_error(cmd, CLI_EXIT_CORRUPT,
                         "%s: document '%s' is corrupt; run 'tandem verify %s'", db, shown, db);
    if (e == TDM_ECORRUPT)
        return cli_error(cmd, CLI_EXIT_CORRUPT, "%s: corrupt data; run 'tandem verify %s'", db, db);
    if (shown)
        return cli_error(cmd, cli_exit_for(e), "%s: document '%s': %s (%s)", db, shown,
                         tdm_strerror(e), tdm_err_name(e));
    return cli_error(cmd, cli_exit_for(e), "%s: %s (%s)", db, tdm_strerror(e), tdm_err_name(e));
}

/* ---- the store ------------------------------------------------------------- */

int cli_open(const cli_cmd *cmd, const char *db, bool read_only, bool create, store **out)
{
    *out = NULL;
    struct stat sb;
    bool exists = stat(db, &sb) == 0;
    if (!exists && errno == ENOENT && !(create && !read_only))
        return cli_error(cmd, CLI_EXIT_NOTFOUND, "%s: no such database directory", db);
    if (exists && !S_ISDIR(sb.st_mode))
        return cli_error(cmd, CLI_EXIT_NOTFOUND,
                         "%s: not a directory (a database is a directory holding data.mdb)", db);
    store_opts o = {0};
    o.read_only = read_only;
    o.no_create = !create;
    o.no_auto_compact = true; /* the CLI compacts only when asked to */
    tdm_err e = store_open(db, &o, out);
    switch (e) {
    case TDM_OK:
        return CLI_EXIT_OK;
    case TDM_ENOTFOUND:
        return cli_error(cmd, CLI_EXIT_NOTFOUND, "%s: no tandem database here (no data.mdb)", db);
    case TDM_ECORRUPT:
        return cli_error(cmd, CLI_EXIT_CORRUPT, "%s: not a tandem database, or corrupt (%s)", db,
                         tdm_strerror(e));
    case TDM_EVERSION:
        return cli_error(cmd, CLI_EXIT_ERROR,
                         "%s: written by a newer version of tandem (storage format unknown)", db);
    default:
        return cli_error(cmd, cli_exit_for(e), "%s: cannot open the database: %s (%s)", db,
                         tdm_strerror(e), tdm_err_name(e));
    }
}

int cli_finish(const cli_cmd *cmd, int code)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error(cmd, CLI_EXIT_ERROR, "error writing to standard output: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    return code;
}
