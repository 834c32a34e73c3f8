/* cmd_io.c - export and import of a document as one crdt snapshot
 * (crdt_doc_snapshot / crdt_doc_load). export is read-only; import validates
 * the whole file before it opens the database. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doc.h"
#include "ids.h"

/* ---- files ------------------------------------------------------------------ */

/* Read all of `path` ("-": stdin) into b (its limit caps the size). */
static int read_file(const cli_cmd *cmd, const char *path, tbuf *b)
{
    bool std = strcmp(path, "-") == 0;
    FILE *f = std ? stdin : fopen(path, "rb");
    if (!f)
        return cli_error(cmd, errno == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_ERROR, "%s: %s", path,
                         strerror(errno));
    int rc = CLI_EXIT_OK;
    for (;;) {
        if (tbuf_reserve(b, 65536)) {
            rc = cli_error(cmd, CLI_EXIT_CORRUPT, "%s: larger than %zu bytes: not a document", path,
                           b->limit);
            break;
        }
        size_t got = fread(b->data + b->len, 1, b->cap - b->len, f);
        b->len += got;
        if (got == 0) break;
    }
    if (!rc && ferror(f)) rc = cli_error(cmd, CLI_EXIT_ERROR, "%s: read error", path);
    if (!std) fclose(f);
    return rc;
}

/* Write p[0..n) to `path` ("-": stdout) through a temporary file in the same
 * directory renamed over it, so a failure never leaves a partial file. */
static int write_file(const cli_cmd *cmd, const char *path, const uint8_t *p, size_t n)
{
    if (strcmp(path, "-") == 0) {
        if (n && fwrite(p, 1, n, stdout) != n) return cli_finish(cmd, CLI_EXIT_ERROR);
        return CLI_EXIT_OK;
    }
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) return cli_error(cmd, CLI_EXIT_ERROR, "out of memory");
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = cli_error(cmd, errno == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_ERROR,
                           "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    mode_t um = umask(0);
    umask(um);
    bool ok = fchmod(fd, 0666 & ~um) == 0;
    for (size_t off = 0; ok && off < n;) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            ok = false;
        else
            off += (size_t)w;
    }
    if (ok) ok = fsync(fd) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) ok = false, err = errno;
    if (ok && rename(tmp, path) != 0) ok = false, err = errno;
    if (!ok) unlink(tmp);
    free(tmp);
    if (!ok) return cli_error(cmd, CLI_EXIT_ERROR, "%s: cannot write: %s", path, strerror(err));
    return CLI_EXIT_OK;
}

/* ---- export ------------------------------------------------------------------ */

static int run_export(const cli_cmd *cmd, int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, NULL, 0, 3, 3, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    const char *db = a.pos[0], *name = a.pos[1], *path = a.pos[2];
    if ((rc = cli_check_name(cmd, "document", name))) return rc;
    store *st;
    if ((rc = cli_open(cmd, db, true, false, &st))) return rc;
    crdt_doc *doc;
    tdm_err e = store_doc_load(st, name, strlen(name), NULL, &doc, NULL);
    store_close(st);
    if (e) return cli_store_error(cmd, db, name, e);
    tbuf snap;
    tbuf_init(&snap, 0);
    e = crdt_doc_snapshot(doc, &snap);
    size_t pending = crdt_doc_pending(doc), cps = crdt_doc_len(doc);
    crdt_doc_free(doc);
    if (e) {
        tbuf_fini(&snap);
        return cli_store_error(cmd, db, name, e);
    }
    rc = write_file(cmd, path, snap.data, snap.len);
    if (!rc && strcmp(path, "-") != 0) {
        char nb[CLI_NAME_BUF];
        printf("exported '%s' to %s: %zu bytes, %zu code points of text\n",
               cli_name((const uint8_t *)name, strlen(name), nb), path, snap.len, cps);
    }
    tbuf_fini(&snap);
    if (!rc && pending)
        cli_error(cmd, 0, "warning: %zu pending operation%s (missing dependencies) not exported",
                  pending, pending == 1 ? "" : "s");
    return cli_finish(cmd, rc);
}

const cli_cmd cli_cmd_export = {
    "export",
    "DB DOC FILE",
    "Write a document to FILE as one encoded crdt snapshot.",
    "\nFILE receives the document's snapshot (crdt_doc_snapshot: the compact\n"
    "binary form of docs/CRDT.md with its CRC-32), which 'tandem import' and\n"
    "crdt_doc_load read. FILE '-' writes to standard output. Otherwise the data\n"
    "goes to a temporary file next to FILE that is renamed over it, so FILE is\n"
    "either replaced whole or left as it was. Pending operations are not part\n"
    "of a snapshot (a warning says how many were left out).\n"
    "\nOpens the database read-only. Exit 3 for an unknown document, 4 when it\n"
    "does not load (corrupt).\n",
    run_export,
};

/* ---- import ------------------------------------------------------------------ */

/* Everything checked before the database is touched: the file loads as a
 * snapshot, its full update re-applies to an empty document with the same
 * text and state vector, and fits in one log entry. */
typedef struct import_plan {
    crdt_doc *doc; /* the loaded file */
    tbuf update;   /* crdt_doc_diff(doc, NULL): what is appended */
    bool empty;    /* no operations at all: only create the document */
} import_plan;

static int plan_import(const cli_cmd *cmd, const char *path, import_plan *pl)
{
    tbuf file, t1, t2;
    tbuf_init(&file, 0);
    tbuf_init(&t1, 0);
    tbuf_init(&t2, 0);
    crdt_doc *check = NULL;
    crdt_sv *sv1 = crdt_sv_new(), *sv2 = crdt_sv_new();
    int rc = read_file(cmd, path, &file);
    tdm_err e = TDM_OK;
    if (!rc && !(sv1 && sv2)) e = TDM_ENOMEM;
    if (!rc && !e) e = crdt_doc_new(0, &pl->doc);
    if (!rc && !e) {
        e = crdt_doc_load(pl->doc, file.data, file.len);
        if (e && e != TDM_ENOMEM) {
            rc = cli_error(cmd, CLI_EXIT_CORRUPT, "%s: not a valid tandem document: %s (%s)", path,
                           tdm_strerror(e), tdm_err_name(e));
            e = TDM_OK;
        }
    }
    if (!rc && !e) e = crdt_doc_diff(pl->doc, NULL, &pl->update);
    if (!rc && !e) e = crdt_doc_state_vector(pl->doc, sv1);
    if (!rc && !e) e = crdt_doc_new(0, &check);
    if (!rc && !e) e = crdt_doc_apply(check, pl->update.data, pl->update.len);
    if (!rc && !e) e = crdt_doc_state_vector(check, sv2);
    if (!rc && !e) e = crdt_doc_text(pl->doc, &t1);
    if (!rc && !e) e = crdt_doc_text(check, &t2);
    if (!rc && !e &&
        (!crdt_sv_equal(sv1, sv2) || t1.len != t2.len ||
         (t1.len && memcmp(t1.data, t2.data, t1.len) != 0) || crdt_doc_pending(check)))
        rc = cli_error(cmd, CLI_EXIT_CORRUPT, "%s: the document does not re-encode faithfully",
                       path);
    if (!rc && !e && pl->update.len > STORE_UPDATE_MAX)
        rc = cli_error(cmd, CLI_EXIT_ERROR, "%s: the document is too large (%zu bytes > %zu)", path,
                       pl->update.len, STORE_UPDATE_MAX);
    if (!rc && e) rc = cli_error(cmd, cli_exit_for(e), "%s: %s", path, tdm_strerror(e));
    pl->empty = !rc && crdt_sv_count(sv1) == 0;
    crdt_doc_free(check);
    crdt_sv_free(sv1);
    crdt_sv_free(sv2);
    tbuf_fini(&file);
    tbuf_fini(&t1);
    tbuf_fini(&t2);
    return rc;
}

/* --merge: the update must apply on top of what the document holds.
 * *nothing_new tells that the document already contains all of it. */
static int check_merge(const cli_cmd *cmd, store *st, const char *db, const char *name,
                       const import_plan *pl, bool *nothing_new)
{
    crdt_doc *cur;
    tdm_err e = store_doc_load(st, name, strlen(name), NULL, &cur, NULL);
    if (e) return cli_store_error(cmd, db, name, e);
    crdt_sv *before = crdt_sv_new(), *after = crdt_sv_new();
    e = before && after ? TDM_OK : TDM_ENOMEM;
    size_t pending = crdt_doc_pending(cur);
    if (!e) e = crdt_doc_state_vector(cur, before);
    if (!e) e = crdt_doc_apply(cur, pl->update.data, pl->update.len);
    if (!e) e = crdt_doc_state_vector(cur, after);
    *nothing_new = !e && crdt_sv_equal(before, after) && crdt_doc_pending(cur) == pending;
    crdt_sv_free(before);
    crdt_sv_free(after);
    crdt_doc_free(cur);
    if (e) return cli_error(cmd, cli_exit_for(e), "cannot merge: %s", tdm_strerror(e));
    return CLI_EXIT_OK;
}

static int run_import(const cli_cmd *cmd, int argc, char **argv)
{
    cli_opt opts[] = {{"force", NULL, false, NULL}, {"merge", NULL, false, NULL}};
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 2, 3, 3, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    bool force = opts[0].set, merge = opts[1].set;
    if (force && merge) return cli_usage_error(cmd, "--force and --merge exclude each other");
    const char *db = a.pos[0], *name = a.pos[1], *path = a.pos[2];
    if ((rc = cli_check_name(cmd, "document", name))) return rc;
    size_t nl = strlen(name);
    import_plan pl = {NULL, {0}, false};
    tbuf_init(&pl.update, 0);
    store *st = NULL;
    rc = plan_import(cmd, path, &pl);
    if (!rc) rc = cli_open(cmd, db, false, true, &st);
    store_doc_meta m;
    tdm_err e = TDM_OK;
    bool exists = false, nothing_new = false;
    if (!rc) {
        e = store_doc_info(st, name, nl, &m);
        exists = e == TDM_OK;
        if (e == TDM_ENOTFOUND) e = TDM_OK;
    }
    char nb[CLI_NAME_BUF];
    const char *shown = cli_name((const uint8_t *)name, nl, nb);
    if (!rc && !e && exists && !force && !merge)
        rc = cli_error(cmd, CLI_EXIT_EXISTS,
                       "%s: document '%s' exists; use --merge to merge the file into it or "
                       "--force to replace it",
                       db, shown);
    if (!rc && !e && exists && merge) rc = check_merge(cmd, st, db, name, &pl, &nothing_new);
    if (!rc && !e && exists && force) e = store_doc_delete(st, name, nl);
    bool write = !rc && !e && !nothing_new;
    if (write && pl.empty) e = store_doc_create(st, name, nl, NULL);
    if (write && !pl.empty) e = store_append(st, name, nl, pl.update.data, pl.update.len, NULL);
    if (!rc && e) rc = cli_store_error(cmd, db, name, e);
    if (!rc)
        printf("imported '%s' into %s from %s: %zu code points (%s)\n", shown, db, path,
               crdt_doc_len(pl.doc),
               !exists       ? "new document"
               : nothing_new ? "already contained: nothing written"
               : merge       ? "merged"
                             : "replaced");
    store_close(st);
    crdt_doc_free(pl.doc);
    tbuf_fini(&pl.update);
    return cli_finish(cmd, rc);
}

const cli_cmd cli_cmd_import = {
    "import",
    "DB DOC FILE [--merge | --force]",
    "Store a snapshot file (from 'tandem export') as document DOC.",
    "\nFILE ('-': standard input) is validated completely before the database\n"
    "is opened: it must load with crdt_doc_load, and the update built from it\n"
    "must rebuild the same text and state vector in an empty document. A file\n"
    "that fails is refused (exit 4) and nothing is written; the database is\n"
    "not even created. The document is then stored as ONE update in its log\n"
    "('tandem compact' turns it into a snapshot). DB is created when missing.\n"
    "\nAn existing document DOC is refused (exit 5) unless:\n"
    "  --merge   merge the file into the document (a CRDT merge: nothing is\n"
    "            lost; one transaction). The document must load and accept it;\n"
    "            when it already holds everything in the file, nothing is written.\n"
    "  --force   replace the document: delete it (log, snapshot, metadata, chat\n"
    "            and OT history) and store the file in its place. These are two\n"
    "            transactions; if interrupted between them, run the import again.\n",
    run_import,
};
