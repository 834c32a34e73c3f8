/* fuzz_import.c - libFuzzer harness for `tandem import` (cli/cmd_io.c, run
 * through its cli_cmd exactly as the command line does) on real LMDB stores
 * in a temporary directory made once per process.
 *
 * The input is written to a file (byte 0 picks the mode, the rest is the
 * file):
 *   even: `import <dir>/new doc FILE` into a database that does not exist.
 *     Exit 0: the database holds exactly one document "doc" whose text,
 *     state vector and delete set equal those of crdt_doc_load(FILE) (the
 *     check loads the file independently); the database is then removed.
 *     Any other exit: it is 1 or 4, and the database directory was not even
 *     created (nothing is written before the file is validated).
 *   odd: `import <dir>/base base FILE --merge` into a database holding
 *     document "base" (a few edits by two replicas). Exit 0: the stored
 *     document's state vector covers both the old one and the file's, its
 *     text is what merging the file into the old document in memory gives,
 *     and the document is then restored from its original update. Any other
 *     exit: the stored document is exactly as before (text, state vector,
 *     delete set, log length).
 * Nothing leaks (LeakSanitizer). The command's own messages are sent to
 * /dev/null during each call.
 */
#define _XOPEN_SOURCE 700
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "store.h"
#include "fuzz_util.h"

static char fi_dir[256], fi_file[300], fi_new[300], fi_base[300];
static tbuf fi_base_update; /* the base document's full update */

static void fi_cleanup(void)
{
    char cmd[400];
    if (!fi_dir[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fi_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_import: could not remove %s\n", fi_dir);
    tbuf_fini(&fi_base_update);
}

static store *fi_open(const char *db)
{
    store *st = NULL;
    store_opts o = {.map_size = (size_t)64 << 20};
    FZ_OK(store_open(db, &o, &st));
    return st;
}

/* fi_store_base - (re)create document "base" from fi_base_update */
static void fi_store_base(void)
{
    store *st = fi_open(fi_base);
    tdm_err e = store_doc_delete(st, "base", 4);
    FZ_CHECK(e == TDM_OK || e == TDM_ENOTFOUND);
    FZ_OK(store_append(st, "base", 4, fi_base_update.data, fi_base_update.len, NULL));
    store_close(st);
}

/* With FUZZ_IMPORT_SEEDS=<dir>, Initialize writes the seed corpus there
 * (snapshots as `tandem export` writes them, in both modes) and exits. */
static void fi_put_seed(const char *dir, const char *name, crdt_doc *d)
{
    tbuf b;
    tbuf_init(&b, 0);
    FZ_OK(crdt_doc_snapshot(d, &b));
    for (int mode = 0; mode < 2; mode++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s-%s", dir, name, mode ? "merge" : "new");
        FILE *f = fopen(path, "wb");
        uint8_t m = (uint8_t)mode;
        FZ_CHECK(f && fwrite(&m, 1, 1, f) == 1 &&
                 (b.len == 0 || fwrite(b.data, 1, b.len, f) == b.len));
        FZ_CHECK(fclose(f) == 0);
    }
    tbuf_fini(&b);
}

static void fi_write_seeds(const char *dir)
{
    crdt_doc *d = fz_doc(5, false, 0);
    fi_put_seed(dir, "empty", d);
    FZ_OK(crdt_doc_apply(d, fi_base_update.data, fi_base_update.len));
    fi_put_seed(dir, "base", d);
    FZ_OK(crdt_doc_insert(d, 3, "\xf0\x9f\x98\x80 merged", 11));
    FZ_OK(crdt_doc_delete(d, 0, 2));
    fi_put_seed(dir, "base-plus", d);
    crdt_doc_free(d);
    d = fz_doc(6, true, 0);
    FZ_OK(crdt_doc_insert(d, 0, "other text, gc on", 17));
    FZ_OK(crdt_doc_delete(d, 5, 6));
    FZ_OK(crdt_doc_gc(d));
    fi_put_seed(dir, "other-gc", d);
    crdt_doc_free(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(fi_dir, sizeof fi_dir, "/tmp/tandem-fuzz-import.XXXXXX");
    FZ_CHECK(mkdtemp(fi_dir) != NULL);
    snprintf(fi_file, sizeof fi_file, "%s/input", fi_dir);
    snprintf(fi_new, sizeof fi_new, "%s/new", fi_dir);
    snprintf(fi_base, sizeof fi_base, "%s/base", fi_dir);
    tbuf_init(&fi_base_update, 0);
    atexit(fi_cleanup);
    crdt_doc *a = fz_doc(21, false, 0), *b = fz_doc(22, false, 0);
    tbuf u;
    tbuf_init(&u, 0);
    FZ_OK(crdt_doc_insert(a, 0, "hello world", 11));
    FZ_OK(crdt_doc_diff(a, NULL, &u));
    FZ_OK(crdt_doc_apply(b, u.data, u.len));
    FZ_OK(crdt_doc_insert(b, 5, ", dear \xc3\xa9", 9));
    FZ_OK(crdt_doc_delete(a, 0, 1));
    tbuf_reset(&u);
    FZ_OK(crdt_doc_diff(b, NULL, &u));
    FZ_OK(crdt_doc_apply(a, u.data, u.len));
    FZ_OK(crdt_doc_diff(a, NULL, &fi_base_update));
    crdt_doc_free(a);
    crdt_doc_free(b);
    tbuf_fini(&u);
    fi_store_base();
    const char *seeds = getenv("FUZZ_IMPORT_SEEDS");
    if (seeds) {
        fi_write_seeds(seeds);
        exit(0);
    }
    return 0;
}

typedef struct fi_state {
    fz_state s;
    size_t log;
} fi_state;

static bool fi_read(const char *db, const char *name, fi_state *out)
{
    store *st = fi_open(db);
    crdt_doc *d = NULL;
    store_doc_meta m;
    tdm_err e = store_doc_info(st, name, strlen(name), &m);
    if (e == TDM_ENOTFOUND) {
        store_close(st);
        return false;
    }
    FZ_OK(e);
    FZ_OK(store_doc_load(st, name, strlen(name), NULL, &d, NULL));
    fz_capture(d, &out->s);
    out->log = (size_t)m.next_seq;
    crdt_doc_free(d);
    store_close(st);
    return true;
}

/* fi_run - the command with its stdout and stderr sent to /dev/null for the
 * call (the harness's own messages still reach stderr) */
static int fi_run(char *db, char *name, bool merge)
{
    char cmdname[] = "import", flag[] = "--merge";
    char *argv[] = {cmdname, db, name, fi_file, flag, NULL};
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY);
    FZ_CHECK(out >= 0 && err >= 0 && null >= 0);
    FZ_CHECK(dup2(null, 1) == 1 && dup2(null, 2) == 2);
    int rc = cli_cmd_import.run(&cli_cmd_import, merge ? 5 : 4, argv);
    fflush(stdout);
    fflush(stderr);
    FZ_CHECK(dup2(out, 1) == 1 && dup2(err, 2) == 2);
    close(out);
    close(err);
    close(null);
    return rc;
}

/* fi_loaded - crdt_doc_load of the file into s; false when it does not load */
static bool fi_loaded(const uint8_t *p, size_t n, fz_state *s)
{
    crdt_doc *d = fz_doc(0, false, 0);
    bool ok = crdt_doc_load(d, p, n) == TDM_OK;
    if (ok) fz_capture(d, s);
    crdt_doc_free(d);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    FILE *f = fopen(fi_file, "wb");
    FZ_CHECK(f != NULL);
    FZ_CHECK(n == 0 || fwrite(p, 1, n, f) == n);
    FZ_CHECK(fclose(f) == 0);
    char doc[] = "doc", base[] = "base";
    fz_state file;
    fz_state_init(&file);
    bool loads = fi_loaded(p, n, &file);

    if ((data[0] & 1) == 0) {
        int rc = fi_run(fi_new, doc, false);
        struct stat sb;
        if (rc != CLI_EXIT_OK) {
            FZ_CHECK(rc == CLI_EXIT_ERROR || rc == CLI_EXIT_CORRUPT);
            FZ_CHECK(stat(fi_new, &sb) != 0); /* not even created */
        } else {
            FZ_CHECK(loads);
            fi_state got;
            fz_state_init(&got.s);
            FZ_CHECK(fi_read(fi_new, "doc", &got));
            FZ_CHECK(fz_same_text(&got.s, &file));
            FZ_CHECK(crdt_sv_equal(got.s.sv, file.sv));
            FZ_CHECK(crdt_ds_equal(got.s.ds, file.ds));
            FZ_CHECK(got.s.pending == 0);
            fz_state_fini(&got.s);
            char cmd[400];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", fi_new);
            FZ_CHECK(system(cmd) == 0);
        }
    } else {
        fi_state before, after;
        fz_state_init(&before.s);
        fz_state_init(&after.s);
        FZ_CHECK(fi_read(fi_base, "base", &before));
        int rc = fi_run(fi_base, base, true);
        FZ_CHECK(fi_read(fi_base, "base", &after));
        if (rc != CLI_EXIT_OK) {
            FZ_CHECK(rc == CLI_EXIT_ERROR || rc == CLI_EXIT_CORRUPT);
            FZ_CHECK(fz_same_state(&before.s, &after.s));
            FZ_CHECK(before.log == after.log);
        } else {
            FZ_CHECK(loads);
            /* the merge in memory */
            crdt_doc *m = fz_doc(0, false, 0), *fd = fz_doc(0, false, 0);
            tbuf u;
            tbuf_init(&u, 0);
            FZ_OK(crdt_doc_apply(m, fi_base_update.data, fi_base_update.len));
            FZ_OK(crdt_doc_load(fd, p, n));
            FZ_OK(crdt_doc_diff(fd, NULL, &u));
            FZ_OK(crdt_doc_apply(m, u.data, u.len));
            fz_state ms;
            fz_state_init(&ms);
            fz_capture(m, &ms);
            FZ_CHECK(fz_same_state(&ms, &after.s));
            FZ_CHECK(crdt_sv_covers(after.s.sv, before.s.sv));
            FZ_CHECK(crdt_sv_covers(after.s.sv, file.sv));
            fz_state_fini(&ms);
            crdt_doc_free(m);
            crdt_doc_free(fd);
            tbuf_fini(&u);
            if (after.log != before.log) fi_store_base();
        }
        fz_state_fini(&before.s);
        fz_state_fini(&after.s);
    }
    fz_state_fini(&file);
    return 0;
}
