/* cmd_maint.c - maintenance: compact (read-write) and verify (read-only). */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- compact ------------------------------------------------------------------ */

#define BAR_WIDTH 30

typedef struct compact_ctx {
    const cli_cmd *cmd;
    bool tty;
    size_t failed;
} compact_ctx;

static void bar(size_t done, size_t total, const uint8_t *name, size_t name_len)
{
    size_t fill = total ? done * BAR_WIDTH / total : BAR_WIDTH;
    char b[BAR_WIDTH + 1];
    for (size_t i = 0; i < BAR_WIDTH; i++) b[i] = i < fill ? '#' : '.';
    b[BAR_WIDTH] = '\0';
    char nb[CLI_NAME_BUF];
    printf("\r\033[K[%s] %zu/%zu %.40s", b, done, total, cli_name(name, name_len, nb));
    fflush(stdout);
}

static int compact_progress(void *ctx, size_t done, size_t total, const uint8_t *name,
                            size_t name_len, tdm_err err)
{
    compact_ctx *c = ctx;
    char nb[CLI_NAME_BUF];
    if (err) {
        c->failed++;
        if (c->tty) printf("\r\033[K");
        fflush(stdout);
        cli_error(c->cmd, 0, "'%s': %s (%s)", cli_name(name, name_len, nb), tdm_strerror(err),
                  tdm_err_name(err));
    }
    if (c->tty)
        bar(done, total, name, name_len);
    else if (!err)
        printf("compacted %s\n", cli_name(name, name_len, nb));
    return 0;
}

static int compact_one(const cli_cmd *cmd, store *st, const char *db, const char *name)
{
    size_t nl = strlen(name);
    store_doc_meta b, a;
    tdm_err e = store_doc_info(st, name, nl, &b);
    if (!e) e = store_compact_doc(st, name, nl);
    if (!e) e = store_doc_info(st, name, nl, &a);
    if (e) return cli_store_error(cmd, db, name, e);
    char nb[CLI_NAME_BUF];
    printf("compacted %s: %" PRIu64 " updates (%" PRIu64 " bytes) + snapshot %" PRIu64
           " bytes -> %" PRIu64 " updates (%" PRIu64 " bytes) + snapshot %" PRIu64 " bytes\n",
           cli_name((const uint8_t *)name, nl, nb), b.updates, b.log_bytes, b.snapshot_bytes,
           a.updates, a.log_bytes, a.snapshot_bytes);
    return CLI_EXIT_OK;
}

static int run_compact(const cli_cmd *cmd, int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, NULL, 0, 1, 2, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    if (a.npos == 2 && (rc = cli_check_name(cmd, "document", a.pos[1]))) return rc;
    store *st;
    if ((rc = cli_open(cmd, a.pos[0], false, false, &st))) return rc;
    if (a.npos == 2) {
        rc = compact_one(cmd, st, a.pos[0], a.pos[1]);
        store_close(st);
        return cli_finish(cmd, rc);
    }
    compact_ctx c = {cmd, isatty(STDOUT_FILENO) == 1, 0};
    size_t n = 0;
    tdm_err e = store_compact_all(st, compact_progress, &c, &n);
    store_close(st);
    if (c.tty) putchar('\n');
    printf("compacted %zu document%s", n, n == 1 ? "" : "s");
    if (c.failed) printf(", %zu failed", c.failed);
    putchar('\n');
    if (e && c.failed)
        return cli_finish(cmd, cli_error(cmd, cli_exit_for(e), "%s: %zu document%s not compacted",
                                         a.pos[0], c.failed, c.failed == 1 ? "" : "s"));
    if (e) return cli_finish(cmd, cli_store_error(cmd, a.pos[0], NULL, e));
    return cli_finish(cmd, CLI_EXIT_OK);
}

const cli_cmd cli_cmd_compact = {
    "compact",
    "DB [DOC]",
    "Merge update logs into snapshots (one document, or all).",
    "\nWith DOC, compacts that document and prints its log and snapshot sizes\n"
    "before and after. Without DOC, compacts every document that has log\n"
    "entries: on a terminal with a progress bar, otherwise with one line\n"
    "'compacted NAME' per document; then a summary line. Failures are reported\n"
    "on stderr; the other documents are still compacted.\n"
    "Compaction keeps the text and state vector identical. Entries after the\n"
    "last point where nothing was pending stay in the log.\n"
    "\nOpens the database read-write (it must exist). Safe while a server uses\n"
    "the same database (LMDB serializes the writers).\n",
    run_compact,
};

/* ---- verify ------------------------------------------------------------------ */

typedef struct name_list {
    uint8_t (*names)[STORE_NAME_MAX];
    size_t *lens;
    size_t n, cap;
    bool oom;
} name_list;

static int collect_name(void *ctx, const uint8_t *name, size_t name_len, const store_doc_meta *m)
{
    (void)m;
    name_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        void *p = realloc(l->names, cap * sizeof *l->names);
        if (!p) return l->oom = true;
        l->names = p;
        p = realloc(l->lens, cap * sizeof *l->lens);
        if (!p) return l->oom = true;
        l->lens = p;
        l->cap = cap;
    }
    memcpy(l->names[l->n], name, name_len);
    l->lens[l->n++] = name_len;
    return 0;
}

typedef struct verify_ctx {
    const char *name; /* printable */
} verify_ctx;

static void verify_problem(void *ctx, const char *what, uint64_t at, tdm_err err)
{
    verify_ctx *v = ctx;
    printf("BAD  %s: %s", v->name, what);
    if (at) printf(" (at %" PRIu64 ")", at);
    printf(": %s\n", tdm_strerror(err));
}

static int run_verify(const cli_cmd *cmd, int argc, char **argv)
{
    cli_opt opts[] = {{"quiet", NULL, false, NULL}};
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 1, 1, 1, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    bool quiet = opts[0].set;
    store *st;
    if ((rc = cli_open(cmd, a.pos[0], true, false, &st))) return rc;
    name_list l = {0};
    size_t ok = 0, bad = 0, failed = 0;
    tdm_err le = store_list_docs(st, collect_name, &l, NULL);
    if (!le && l.oom) le = TDM_ENOMEM;
    if (le == TDM_ENOMEM)
        failed++;
    else if (le)
        bad++;
    if (le) printf("BAD  (document list): %s\n", tdm_strerror(le));
    for (size_t i = 0; i < l.n; i++) {
        char nb[CLI_NAME_BUF];
        verify_ctx v = {cli_name(l.names[i], l.lens[i], nb)};
        size_t problems = 0;
        tdm_err e = store_verify_doc(st, l.names[i], l.lens[i], verify_problem, &v, &problems);
        if (e && problems == 0) {
            printf("BAD  %s: could not be verified: %s\n", v.name, tdm_strerror(e));
            failed++;
        } else if (e || problems) {
            bad++;
        } else {
            ok++;
            if (!quiet) printf("ok   %s\n", v.name);
        }
    }
    printf("verified %zu document%s: %zu ok, %zu with problems\n", l.n, l.n == 1 ? "" : "s", ok,
           l.n - ok);
    store_close(st);
    free(l.names);
    free(l.lens);
    if (bad)
        rc = CLI_EXIT_CORRUPT;
    else if (failed)
        rc = CLI_EXIT_ERROR;
    if (rc)
        cli_error(cmd, 0, "%s: problems found in %zu of %zu documents%s", a.pos[0], l.n - ok, l.n,
                  le ? " (document list incomplete)" : "");
    return cli_finish(cmd, rc);
}

const cli_cmd cli_cmd_verify = {
    "verify",
    "DB [--quiet]",
    "Check every document; the exit status says whether all are sound.",
    "\nFor each document: the metadata agrees with the log (entry count, bytes,\n"
    "sequence numbers), the snapshot and every update pass their CRC-32 and\n"
    "replay into a fresh document, nothing is left pending, chat records and\n"
    "OT history pass their checks. Prints 'ok   NAME' for a sound document and\n"
    "'BAD  NAME: problem (at N): error' for each problem (N: the log sequence,\n"
    "chat id or OT version concerned), then a summary line.\n"
    "\nOptions:\n"
    "  --quiet   print only problems and the summary\n"
    "\nOpens the database read-only. Exit 0 when every document is sound, 4 when\n"
    "problems were found, else 1 when a document could not be checked (I/O,\n"
    "memory).\n",
    run_verify,
};
