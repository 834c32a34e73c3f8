/* test_cli.c - the real `tandem` binary (TANDEM_BIN, from CMake) run with
 * posix_spawn against real LMDB directories made in mkdtemp through the
 * storage API: documents with edits from two clients, deletes, multi-byte
 * text, chat. Captures stdout, stderr and the exit status of every happy
 * path and the error paths (missing database, unknown document, a corrupt
 * log entry written with a raw LMDB transaction, corrupt import files, bad
 * usage), checks that read-only commands leave data.mdb untouched, and drives
 * the compaction progress bar through a pseudo-terminal. */
#define _XOPEN_SOURCE 700 /* posix_openpt, grantpt, unlockpt, ptsname */

#include "store.h"
#include "doc.h"
#include "ids.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lmdb.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

extern char **environ;

/* ---- running the binary ---------------------------------------------------- */

typedef struct run_res {
    int status; /* exit status, or 128 + signal */
    char *out, *err;
    size_t out_len, err_len;
} run_res;

static void res_free(run_res *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

static void drain(int fd, char **buf, size_t *len, bool *open)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) return;
    if (n <= 0) { /* EOF, or EIO from a pty master whose slave closed */
        *open = false;
        return;
    }
    *buf = realloc(*buf, *len + (size_t)n + 1);
    ck_assert_ptr_nonnull(*buf);
    memcpy(*buf + *len, tmp, (size_t)n);
    *len += (size_t)n;
    (*buf)[*len] = '\0';
}

/* Run TANDEM_BIN with argv (NULL-terminated, argv[0] excluded); stdin from
 * `in` (NULL: /dev/null). When tty_slave >= 0 it is the child's stdout and
 * tty_master is read instead of a pipe. */
static run_res run_argv(const char *const *args, const char *in, int tty_master, int tty_slave)
{
    const char *argv[32] = {TANDEM_BIN};
    size_t n = 1;
    for (; args[n - 1]; n++) {
        ck_assert_uint_lt(n, 31);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    int po[2], pe[2];
    ck_assert_int_eq(pipe(pe), 0);
    if (tty_slave < 0)
        ck_assert_int_eq(pipe(po), 0);
    else
        po[0] = tty_master, po[1] = tty_slave;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawn_file_actions_addclose(&fa, po[0]);
    posix_spawn_file_actions_addclose(&fa, pe[0]);
    pid_t pid;
    int rc = posix_spawn(&pid, TANDEM_BIN, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ck_assert_int_eq(rc, 0);
    close(po[1]);
    close(pe[1]);
    run_res r = {0};
    r.out = calloc(1, 1);
    r.err = calloc(1, 1);
    bool oo = true, eo = true;
    while (oo || eo) {
        struct pollfd pf[2] = {{oo ? po[0] : -1, POLLIN, 0}, {eo ? pe[0] : -1, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            ck_assert_int_eq(errno, EINTR);
            continue;
        }
        if (oo && pf[0].revents) drain(po[0], &r.out, &r.out_len, &oo);
        if (eo && pf[1].revents) drain(pe[0], &r.err, &r.err_len, &eo);
    }
    close(po[0]);
    close(pe[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0) ck_assert_int_eq(errno, EINTR);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

static run_res run(const char *a0, ...)
{
    const char *args[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, 31);
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    return run_argv(args, NULL, -1, -1);
}

#define CK_STATUS(r, want)                                                                         \
    ck_assert_msg((r).status == (want), "exit %d, want %d; stdout: %s; stderr: %s", (r).status,    \
                  (want), (r).out, (r).err)

/* ---- fixtures ----------------------------------------------------------------- */

static void mk_tmpdir(char *buf, size_t n)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, n, "%s/tandem-cli-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

static void rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            rmtree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* A test directory: root (removed at the end) and db = root/db. */
typedef struct fx {
    char root[512];
    char db[600];
    store *st;
    crdt_doc *notes; /* reference replica of document "notes" */
    crdt_doc *draft; /* ... of "draft" */
} fx;

static store *fx_open(const char *db)
{
    store_opts o = {0};
    o.no_auto_compact = true;
    store *st = NULL;
    ck_assert_int_eq(store_open(db, &o, &st), TDM_OK);
    return st;
}

/* The update of the edits made on `ed` since `before`, appended to `name`
 * and applied to the reference replica `ref`. */
static void fx_push(store *st, const char *name, crdt_doc *ed, crdt_sv *before, crdt_doc *ref)
{
    tbuf u;
    tbuf_init(&u, 0);
    ck_assert_int_eq(crdt_doc_diff(ed, before, &u), TDM_OK);
    ck_assert_int_eq(store_append(st, name, strlen(name), u.data, u.len, NULL), TDM_OK);
    ck_assert_int_eq(crdt_doc_apply(ref, u.data, u.len), TDM_OK);
    tbuf_fini(&u);
    ck_assert_int_eq(crdt_doc_state_vector(ed, before), TDM_OK);
}

static void fx_ins(store *st, const char *name, crdt_doc *ed, crdt_sv *sv, crdt_doc *ref,
                   size_t pos, const char *text)
{
    ck_assert_int_eq(crdt_doc_insert(ed, pos, text, strlen(text)), TDM_OK);
    fx_push(st, name, ed, sv, ref);
}

static void fx_del(store *st, const char *name, crdt_doc *ed, crdt_sv *sv, crdt_doc *ref,
                   size_t pos, size_t count)
{
    ck_assert_int_eq(crdt_doc_delete(ed, pos, count), TDM_OK);
    fx_push(st, name, ed, sv, ref);
}

/* Bring replica b up to a (full diff). */
static void sync_to(crdt_doc *b, crdt_doc *a)
{
    tbuf u;
    tbuf_init(&u, 0);
    ck_assert_int_eq(crdt_doc_diff(a, NULL, &u), TDM_OK);
    ck_assert_int_eq(crdt_doc_apply(b, u.data, u.len), TDM_OK);
    tbuf_fini(&u);
}

static void fx_chat(store *st, const char *room, const char *user, const char *display,
                    const char *text, int64_t t)
{
    store_chat_msg m = {0};
    m.time_ms = t;
    m.user = (const uint8_t *)user;
    m.user_len = strlen(user);
    m.display = (const uint8_t *)display;
    m.display_len = strlen(display);
    m.text = (const uint8_t *)text;
    m.text_len = strlen(text);
    ck_assert_int_eq(store_chat_append(st, room, strlen(room), &m, NULL, NULL), TDM_OK);
}

#define CHAT_T0 1700000000000LL /* 2023-11-14T22:13:20.000Z */

/* The standard database: "notes" (two clients, inserts and deletes,
 * multi-byte text, 3 chat messages), "draft" (one client, 4 updates) and
 * "empty" (created, nothing in it). The store is closed afterwards. */
static void fx_setup(fx *f)
{
    memset(f, 0, sizeof *f);
    mk_tmpdir(f->root, sizeof f->root);
    snprintf(f->db, sizeof f->db, "%s/db", f->root);
    f->st = fx_open(f->db);
    ck_assert_int_eq(crdt_doc_new(99, &f->notes), TDM_OK);
    ck_assert_int_eq(crdt_doc_new(98, &f->draft), TDM_OK);

    crdt_doc *a, *b;
    crdt_sv *sa = crdt_sv_new(), *sb = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_new(1, &a), TDM_OK);
    ck_assert_int_eq(crdt_doc_new(2, &b), TDM_OK);
    fx_ins(f->st, "notes", a, sa, f->notes, 0, "Hello, world!\n");
    sync_to(b, a);
    ck_assert_int_eq(crdt_doc_state_vector(b, sb), TDM_OK);
    fx_ins(f->st, "notes", b, sb, f->notes, 0, "h\xc3\xa9llo \xf0\x9f\x8c\x8d ");
    fx_del(f->st, "notes", a, sa, f->notes, 5, 7); /* a: "Hello!\n" */
    sync_to(a, b);
    ck_assert_int_eq(crdt_doc_state_vector(a, sa), TDM_OK);
    fx_ins(f->st, "notes", a, sa, f->notes, crdt_doc_len(a), "caf\xc3\xa9 \xe2\x82\xac 5\n");
    fx_del(f->st, "notes", b, sb, f->notes, 0, 1);
    crdt_doc_free(a);
    crdt_doc_free(b);

    crdt_sv_clear(sa);
    ck_assert_int_eq(crdt_doc_new(3, &a), TDM_OK);
    fx_ins(f->st, "draft", a, sa, f->draft, 0, "first line\n");
    fx_ins(f->st, "draft", a, sa, f->draft, 11, "second line\n");
    fx_del(f->st, "draft", a, sa, f->draft, 0, 6);
    fx_ins(f->st, "draft", a, sa, f->draft, 0, "1st ");
    crdt_doc_free(a);
    crdt_sv_free(sa);
    crdt_sv_free(sb);

    ck_assert_int_eq(store_doc_create(f->st, "empty", 5, NULL), TDM_OK);
    fx_chat(f->st, "notes", "alice", "Alice A.", "hi all", CHAT_T0);
    fx_chat(f->st, "notes", "bob", "", "two\nlines", CHAT_T0 + 1500);
    fx_chat(f->st, "notes", "alice", "Alice A.", "caf\xc3\xa9 third", CHAT_T0 + 60000);
    store_close(f->st);
    f->st = NULL;
}

static void fx_teardown(fx *f)
{
    store_close(f->st);
    crdt_doc_free(f->notes);
    crdt_doc_free(f->draft);
    rmtree(f->root);
}

static char *doc_text(crdt_doc *d, size_t *len)
{
    tbuf t;
    tbuf_init(&t, 0);
    ck_assert_int_eq(crdt_doc_text(d, &t), TDM_OK);
    ck_assert_int_eq(tbuf_append(&t, "", 1), TDM_OK);
    *len = t.len - 1;
    size_t n;
    return (char *)tbuf_take(&t, &n);
}

/* Load a document of a database through the storage API. */
static crdt_doc *load(const char *db, const char *name)
{
    store_opts o = {0};
    o.read_only = true;
    store *st;
    ck_assert_int_eq(store_open(db, &o, &st), TDM_OK);
    crdt_doc *d = NULL;
    ck_assert_int_eq(store_doc_load(st, name, strlen(name), NULL, &d, NULL), TDM_OK);
    store_close(st);
    return d;
}

static void assert_same_doc(crdt_doc *x, crdt_doc *y)
{
    size_t nx, ny;
    char *tx = doc_text(x, &nx), *ty = doc_text(y, &ny);
    ck_assert_uint_eq(nx, ny);
    ck_assert_mem_eq(tx, ty, nx);
    free(tx);
    free(ty);
    crdt_sv *a = crdt_sv_new(), *b = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_state_vector(x, a), TDM_OK);
    ck_assert_int_eq(crdt_doc_state_vector(y, b), TDM_OK);
    ck_assert(crdt_sv_equal(a, b));
    crdt_sv_free(a);
    crdt_sv_free(b);
}

static bool has(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

static json_t *parse_json(const run_res *r)
{
    json_error_t je;
    json_t *v = json_loadb(r->out, r->out_len, 0, &je);
    ck_assert_msg(v != NULL, "bad JSON (%s): %s", je.text, r->out);
    return v;
}

static json_int_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

/* ---- help and usage ------------------------------------------------------------ */

static const char *const commands[] = {"ls",     "inspect", "cat",    "export",
                                       "import", "compact", "verify", "history"};

START_TEST(test_help_version)
{
    run_res r = run("--help", NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "usage: tandem COMMAND"));
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        ck_assert_msg(has(r.out, commands[i]), "%s missing from --help", commands[i]);
    ck_assert(has(r.out, "serve")); /* a real command since issue 5 (tests/test_server.c) */
    ck_assert(has(r.out, "Exit status"));
    res_free(&r);
    r = run("help", NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "usage: tandem COMMAND"));
    res_free(&r);
    r = run("--version", NULL);
    CK_STATUS(r, 0);
    ck_assert(strncmp(r.out, "tandem ", 7) == 0);
    res_free(&r);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: tandem %s ", commands[i]);
        r = run(commands[i], "--help", NULL);
        CK_STATUS(r, 0);
        ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
        ck_assert_uint_eq(r.err_len, 0);
        res_free(&r);
        r = run("help", commands[i], NULL);
        CK_STATUS(r, 0);
        ck_assert(strncmp(r.out, want, strlen(want)) == 0);
        res_free(&r);
        r = run(commands[i], "-h", NULL);
        CK_STATUS(r, 0);
        res_free(&r);
    }
}
END_TEST

START_TEST(test_usage_errors)
{
    static const char *const cases[][6] = {
        {NULL},
        {"frobnicate", NULL},
        {"--frob", NULL},
        {"help", "frobnicate", NULL},
        {"ls", NULL},
        {"ls", "a", "b", NULL},
        {"ls", "--color", "x", NULL},
        {"ls", "--json=yes", "x", NULL},
        {"inspect", "db", NULL},
        {"cat", "db", "doc", "extra", NULL},
        {"export", "db", "doc", NULL},
        {"import", "db", "doc", "f", "--force", "--merge"},
        {"history", "db", "room", "--after", "x1", NULL},
        {"history", "db", "room", "--limit", NULL},
        {"history", "db", "room", "--limit", "-3", NULL},
        {"history", "db", "room", "--json", "--json", NULL},
        {"compact", NULL},
        {"verify", "-q", "db", NULL},
        {"cat", "db", "", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[8] = {0};
        for (size_t k = 0; k < 6 && cases[i][k]; k++) args[k] = cases[i][k];
        run_res r = run_argv(args, NULL, -1, -1);
        ck_assert_msg(r.status == 2, "case %zu: exit %d; stderr: %s", i, r.status, r.err);
        ck_assert_msg(has(r.err, "usage: tandem"), "case %zu: no usage on stderr: %s", i, r.err);
        ck_assert_uint_eq(r.out_len, 0);
        res_free(&r);
    }
}
END_TEST

START_TEST(test_not_available)
{
    /* serve is a real command (tests/test_server.c): a stray argument is a usage error */
    run_res r = run("serve", "x", NULL);
    ck_assert_int_eq(r.status, 2);
    res_free(&r);
    /* token is a real command (tests/test_cli_token.c): a stray argument is a usage error */
    r = run("token", "x", NULL);
    ck_assert_int_eq(r.status, 2);
    res_free(&r);
}
END_TEST

/* ---- error paths ------------------------------------------------------------------ */

START_TEST(test_missing_db)
{
    char root[512], db[600], file[600];
    mk_tmpdir(root, sizeof root);
    snprintf(db, sizeof db, "%s/nope", root);
    snprintf(file, sizeof file, "%s/out", root);
    const char *const cases[][5] = {
        {"ls", db, NULL},
        {"inspect", db, "doc", NULL},
        {"cat", db, "doc", NULL},
        {"export", db, "doc", file, NULL},
        {"verify", db, NULL},
        {"compact", db, NULL},
        {"history", db, "room", NULL},
        {"ls", root, NULL}, /* exists, but no data.mdb */
        {"compact", root, "doc", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_res r = run_argv(cases[i], NULL, -1, -1);
        ck_assert_msg(r.status == 3, "case %zu: exit %d; stderr: %s", i, r.status, r.err);
        ck_assert_msg(has(r.err, i < 7 ? db : root), "case %zu: %s", i, r.err);
        res_free(&r);
    }
    /* nothing was created */
    struct stat sb;
    ck_assert_int_ne(stat(db, &sb), 0);
    ck_assert_int_ne(stat(file, &sb), 0);
    snprintf(file, sizeof file, "%s/data.mdb", root);
    ck_assert_int_ne(stat(file, &sb), 0);
    rmtree(root);
}
END_TEST

START_TEST(test_unknown_doc)
{
    fx f;
    fx_setup(&f);
    char file[600];
    snprintf(file, sizeof file, "%s/out", f.root);
    const char *const cases[][5] = {
        {"inspect", f.db, "nosuch", NULL},      {"cat", f.db, "nosuch", NULL},
        {"export", f.db, "nosuch", file, NULL}, {"compact", f.db, "nosuch", NULL},
        {"history", f.db, "nosuch", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_res r = run_argv(cases[i], NULL, -1, -1);
        ck_assert_msg(r.status == 3, "case %zu: exit %d; stderr: %s", i, r.status, r.err);
        ck_assert_msg(has(r.err, "'nosuch'"), "case %zu: %s", i, r.err);
        ck_assert_uint_eq(r.out_len, 0);
        res_free(&r);
    }
    struct stat sb;
    ck_assert_int_ne(stat(file, &sb), 0);
    fx_teardown(&f);
}
END_TEST

/* ---- read-only commands ------------------------------------------------------------ */

START_TEST(test_ls)
{
    fx f;
    fx_setup(&f);
    run_res r = run("ls", f.db, NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "UPDATES") && has(r.out, "NAME"));
    /* lines in name order: draft, empty, notes */
    const char *d = strstr(r.out, " draft\n"), *e = strstr(r.out, " empty\n"),
               *n = strstr(r.out, " notes\n");
    ck_assert(d && e && n && d < e && e < n);
    res_free(&r);

    r = run("ls", "--json", f.db, NULL);
    CK_STATUS(r, 0);
    json_t *v = parse_json(&r);
    ck_assert(json_is_array(v));
    ck_assert_uint_eq(json_array_size(v), 3);
    json_t *o = json_array_get(v, 2);
    ck_assert_str_eq(json_string_value(json_object_get(o, "name")), "notes");
    ck_assert_int_eq(jint(o, "updates"), 5);
    ck_assert_int_gt(jint(o, "log_bytes"), 0);
    ck_assert_int_eq(jint(o, "snapshot_bytes"), 0);
    ck_assert_int_eq(jint(o, "chat_count"), 3);
    o = json_array_get(v, 0);
    ck_assert_str_eq(json_string_value(json_object_get(o, "name")), "draft");
    ck_assert_int_eq(jint(o, "updates"), 4);
    o = json_array_get(v, 1);
    ck_assert_int_eq(jint(o, "updates"), 0);
    json_decref(v);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

START_TEST(test_cat)
{
    fx f;
    fx_setup(&f);
    size_t n;
    char *want = doc_text(f.notes, &n);
    ck_assert_uint_gt(n, 10);
    run_res r = run("cat", f.db, "notes", NULL);
    CK_STATUS(r, 0);
    ck_assert_uint_eq(r.out_len, n);
    ck_assert_mem_eq(r.out, want, n);
    ck_assert_uint_eq(r.err_len, 0);
    free(want);
    res_free(&r);
    want = doc_text(f.draft, &n);
    r = run("cat", f.db, "draft", NULL);
    CK_STATUS(r, 0);
    ck_assert_str_eq(r.out, want);
    ck_assert_str_eq(r.out, "1st line\nsecond line\n");
    free(want);
    res_free(&r);
    r = run("cat", f.db, "empty", NULL);
    CK_STATUS(r, 0);
    ck_assert_uint_eq(r.out_len, 0);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

START_TEST(test_inspect_json)
{
    fx f;
    fx_setup(&f);
    run_res r = run("inspect", f.db, "notes", "--json", NULL);
    CK_STATUS(r, 0);
    json_t *o = parse_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(o, "name")), "notes");
    ck_assert_int_eq(jint(o, "updates"), 5);
    ck_assert_int_eq(jint(o, "next_seq"), 6);
    ck_assert_int_gt(jint(o, "log_bytes"), 0);
    ck_assert_int_eq(jint(o, "snapshot_bytes"), 0);
    ck_assert_int_eq(jint(o, "chat_count"), 3);
    ck_assert_int_eq(jint(o, "chat_next_id"), 4);
    ck_assert_int_eq(jint(o, "pending"), 0);
    ck_assert_int_eq(jint(o, "deleted"), 8);
    json_t *tl = json_object_get(o, "text_length");
    ck_assert_int_eq(jint(tl, "code_points"), (json_int_t)crdt_doc_len(f.notes));
    ck_assert_int_eq(jint(tl, "utf16"), (json_int_t)crdt_doc_len_utf16(f.notes));
    ck_assert_int_eq(jint(tl, "bytes"), (json_int_t)crdt_doc_len_bytes(f.notes));
    ck_assert_int_ne(jint(tl, "utf16"), jint(tl, "code_points")); /* the emoji */
    crdt_sv *sv = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_state_vector(f.notes, sv), TDM_OK);
    ck_assert_int_eq(jint(o, "clients"), 2);
    json_t *jsv = json_object_get(o, "state_vector");
    ck_assert_uint_eq(json_object_size(jsv), 2);
    ck_assert_int_eq(jint(jsv, "1"), crdt_sv_get(sv, 1));
    ck_assert_int_eq(jint(jsv, "2"), crdt_sv_get(sv, 2));
    crdt_sv_free(sv);
    json_decref(o);
    res_free(&r);

    r = run("inspect", "--json", f.db, "empty", NULL);
    CK_STATUS(r, 0);
    o = parse_json(&r);
    ck_assert_int_eq(jint(o, "clients"), 0);
    ck_assert_int_eq(jint(json_object_get(o, "text_length"), "bytes"), 0);
    json_decref(o);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

START_TEST(test_inspect_text)
{
    fx f;
    fx_setup(&f);
    run_res r = run("inspect", f.db, "notes", NULL);
    CK_STATUS(r, 0);
    char want[128];
    ck_assert(has(r.out, "name:           notes\n"));
    ck_assert(has(r.out, "updates:        5 ("));
    ck_assert(has(r.out, "clients:        2\n"));
    snprintf(want, sizeof want, "text length:    %zu code points, %zu UTF-16 units, %zu bytes",
             crdt_doc_len(f.notes), crdt_doc_len_utf16(f.notes), crdt_doc_len_bytes(f.notes));
    ck_assert_msg(has(r.out, want), "%s", r.out);
    ck_assert(has(r.out, "chat:           3 messages"));
    ck_assert(has(r.out, "state vector:   1:"));
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

START_TEST(test_history)
{
    fx f;
    fx_setup(&f);
    run_res r = run("history", f.db, "notes", NULL);
    CK_STATUS(r, 0);
    ck_assert_str_eq(r.out, "#1 2023-11-14T22:13:20.000Z alice (Alice A.): hi all\n"
                            "#2 2023-11-14T22:13:21.500Z bob: two\\nlines\n"
                            "#3 2023-11-14T22:14:20.000Z alice (Alice A.): caf\xc3\xa9 third\n");
    res_free(&r);

    r = run("history", f.db, "notes", "--json", NULL);
    CK_STATUS(r, 0);
    json_t *o = parse_json(&r);
    ck_assert_int_eq(jint(o, "count"), 3);
    json_t *msgs = json_object_get(o, "messages");
    ck_assert_uint_eq(json_array_size(msgs), 3);
    for (size_t i = 0; i < 3; i++) ck_assert_int_eq(jint(json_array_get(msgs, i), "id"), i + 1);
    json_t *m = json_array_get(msgs, 1);
    ck_assert_str_eq(json_string_value(json_object_get(m, "text")), "two\nlines");
    ck_assert_str_eq(json_string_value(json_object_get(m, "user")), "bob");
    ck_assert_int_eq(jint(m, "time_ms"), CHAT_T0 + 1500);
    json_decref(o);
    res_free(&r);

    r = run("history", f.db, "notes", "--after", "1", "--limit=1", "--json", NULL);
    CK_STATUS(r, 0);
    o = parse_json(&r);
    msgs = json_object_get(o, "messages");
    ck_assert_uint_eq(json_array_size(msgs), 1);
    ck_assert_int_eq(jint(json_array_get(msgs, 0), "id"), 2);
    json_decref(o);
    res_free(&r);

    r = run("history", f.db, "notes", "--after", "3", NULL);
    CK_STATUS(r, 0);
    ck_assert_uint_eq(r.out_len, 0);
    res_free(&r);
    r = run("history", f.db, "draft", NULL); /* a room without chat */
    CK_STATUS(r, 0);
    ck_assert_uint_eq(r.out_len, 0);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

START_TEST(test_verify_ok)
{
    fx f;
    fx_setup(&f);
    run_res r = run("verify", f.db, NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "ok   notes\n") && has(r.out, "ok   draft\n"));
    ck_assert(has(r.out, "verified 3 documents: 3 ok, 0 with problems"));
    res_free(&r);
    r = run("verify", "--quiet", f.db, NULL);
    CK_STATUS(r, 0);
    ck_assert(!has(r.out, "ok   notes"));
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

/* ---- export and import --------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(p, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return p;
}

static void spit(const char *path, const uint8_t *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

START_TEST(test_export_import)
{
    fx f;
    fx_setup(&f);
    char file[600], db2[600];
    snprintf(file, sizeof file, "%s/notes.tdoc", f.root);
    snprintf(db2, sizeof db2, "%s/db2", f.root);
    run_res r = run("export", f.db, "notes", file, NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "exported 'notes'"));
    res_free(&r);
    /* the file is a crdt snapshot */
    size_t n;
    uint8_t *p = slurp(file, &n);
    crdt_doc *d;
    ck_assert_int_eq(crdt_doc_new(5, &d), TDM_OK);
    ck_assert_int_eq(crdt_doc_load(d, p, n), TDM_OK);
    assert_same_doc(d, f.notes);
    crdt_doc_free(d);
    /* export to stdout gives the same bytes */
    r = run("export", f.db, "notes", "-", NULL);
    CK_STATUS(r, 0);
    ck_assert_uint_eq(r.out_len, n);
    ck_assert_mem_eq(r.out, p, n);
    res_free(&r);
    free(p);

    /* import into a database that does not exist yet */
    r = run("import", db2, "copy", file, NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "new document"));
    res_free(&r);
    d = load(db2, "copy");
    assert_same_doc(d, f.notes);
    crdt_doc_free(d);
    r = run("cat", db2, "copy", NULL);
    CK_STATUS(r, 0);
    size_t tn;
    char *want = doc_text(f.notes, &tn);
    ck_assert_uint_eq(r.out_len, tn);
    ck_assert_mem_eq(r.out, want, tn);
    free(want);
    res_free(&r);
    r = run("verify", db2, NULL);
    CK_STATUS(r, 0);
    res_free(&r);

    /* import from stdin; and the empty document round-trips */
    char efile[600];
    snprintf(efile, sizeof efile, "%s/empty.tdoc", f.root);
    r = run("export", f.db, "empty", efile, NULL);
    CK_STATUS(r, 0);
    res_free(&r);
    const char *args[] = {"import", db2, "from-stdin", "-", NULL};
    r = run_argv(args, file, -1, -1);
    CK_STATUS(r, 0);
    res_free(&r);
    d = load(db2, "from-stdin");
    assert_same_doc(d, f.notes);
    crdt_doc_free(d);
    r = run("import", db2, "blank", efile, NULL);
    CK_STATUS(r, 0);
    res_free(&r);
    d = load(db2, "blank");
    ck_assert_uint_eq(crdt_doc_len(d), 0);
    crdt_doc_free(d);
    fx_teardown(&f);
}
END_TEST

/* data.mdb: size, mtime and bytes. */
typedef struct db_state {
    struct stat sb;
    uint8_t *bytes;
    size_t n;
} db_state;

static void db_state_get(const char *db, db_state *s)
{
    char path[700];
    snprintf(path, sizeof path, "%s/data.mdb", db);
    ck_assert_int_eq(stat(path, &s->sb), 0);
    s->bytes = slurp(path, &s->n);
}

static void db_state_same(const char *db, db_state *before)
{
    db_state now;
    db_state_get(db, &now);
    ck_assert_uint_eq(now.n, before->n);
    ck_assert_mem_eq(now.bytes, before->bytes, now.n);
    ck_assert_int_eq(now.sb.st_mtim.tv_sec, before->sb.st_mtim.tv_sec);
    ck_assert_int_eq(now.sb.st_mtim.tv_nsec, before->sb.st_mtim.tv_nsec);
    ck_assert_int_eq(now.sb.st_size, before->sb.st_size);
    free(now.bytes);
}

START_TEST(test_import_exists)
{
    fx f;
    fx_setup(&f);
    char file[600];
    snprintf(file, sizeof file, "%s/draft.tdoc", f.root);
    run_res r = run("export", f.db, "draft", file, NULL);
    CK_STATUS(r, 0);
    res_free(&r);

    /* refused: nothing written */
    db_state before;
    db_state_get(f.db, &before);
    r = run("import", f.db, "notes", file, NULL);
    CK_STATUS(r, 5);
    ck_assert(has(r.err, "'notes' exists") && has(r.err, "--force"));
    res_free(&r);
    db_state_same(f.db, &before);
    free(before.bytes);

    /* --merge: both texts' characters are there, nothing lost */
    r = run("import", f.db, "notes", file, "--merge", NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "merged"));
    res_free(&r);
    crdt_doc *d = load(f.db, "notes");
    ck_assert_uint_eq(crdt_doc_len(d), crdt_doc_len(f.notes) + crdt_doc_len(f.draft));
    crdt_doc_free(d);
    /* merging again writes nothing */
    db_state_get(f.db, &before);
    r = run("import", f.db, "notes", file, "--merge", NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "nothing written"));
    res_free(&r);
    db_state_same(f.db, &before);
    free(before.bytes);

    /* --force: replaced by the draft (and its chat is gone with it) */
    r = run("import", "--force", f.db, "notes", file, NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "replaced"));
    res_free(&r);
    d = load(f.db, "notes");
    assert_same_doc(d, f.draft);
    crdt_doc_free(d);
    r = run("history", f.db, "notes", NULL);
    CK_STATUS(r, 0);
    ck_assert_uint_eq(r.out_len, 0);
    res_free(&r);
    r = run("verify", f.db, NULL);
    CK_STATUS(r, 0);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

START_TEST(test_import_bad_files)
{
    fx f;
    fx_setup(&f);
    char file[600], bad[600], db2[600];
    snprintf(file, sizeof file, "%s/notes.tdoc", f.root);
    snprintf(bad, sizeof bad, "%s/bad.tdoc", f.root);
    snprintf(db2, sizeof db2, "%s/db2", f.root);
    run_res r = run("export", f.db, "notes", file, NULL);
    CK_STATUS(r, 0);
    res_free(&r);
    size_t n;
    uint8_t *p = slurp(file, &n);
    ck_assert_uint_gt(n, 16);

    db_state before;
    db_state_get(f.db, &before);
    /* truncations, flipped bytes, garbage, an empty file */
    size_t cuts[] = {0, 1, n / 3, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0] + 4; i++) {
        uint8_t *q = malloc(n);
        memcpy(q, p, n);
        size_t len = n;
        if (i < sizeof cuts / sizeof cuts[0])
            len = cuts[i];
        else if (i == 5)
            q[n / 2] ^= 0x40;
        else if (i == 6)
            q[n - 1] ^= 0x01;
        else if (i == 7)
            q[0] ^= 0xff;
        else
            memset(q, 'x', n);
        spit(bad, q, len);
        free(q);
        r = run("import", f.db, "newdoc", bad, NULL);
        ck_assert_msg(r.status == 4, "case %zu: exit %d; %s", i, r.status, r.err);
        ck_assert_msg(has(r.err, "not a valid tandem document"), "case %zu: %s", i, r.err);
        res_free(&r);
        r = run("import", f.db, "notes", bad, "--force", NULL);
        ck_assert_int_eq(r.status, 4);
        res_free(&r);
        r = run("import", db2, "newdoc", bad, NULL);
        ck_assert_int_eq(r.status, 4);
        res_free(&r);
    }
    free(p);
    db_state_same(f.db, &before);
    free(before.bytes);
    struct stat sb;
    ck_assert_int_ne(stat(db2, &sb), 0); /* not even created */
    r = run("inspect", f.db, "newdoc", NULL);
    CK_STATUS(r, 3);
    res_free(&r);

    /* a missing file */
    snprintf(bad, sizeof bad, "%s/missing.tdoc", f.root);
    r = run("import", f.db, "newdoc", bad, NULL);
    CK_STATUS(r, 3);
    ck_assert(has(r.err, bad));
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

/* ---- compaction ------------------------------------------------------------------------- */

static store_doc_meta info(const char *db, const char *name)
{
    store_opts o = {0};
    o.read_only = true;
    store *st;
    ck_assert_int_eq(store_open(db, &o, &st), TDM_OK);
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, name, strlen(name), &m), TDM_OK);
    store_close(st);
    return m;
}

START_TEST(test_compact_doc)
{
    fx f;
    fx_setup(&f);
    run_res r = run("compact", f.db, "notes", NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.out, "compacted notes: 5 updates"));
    res_free(&r);
    store_doc_meta m = info(f.db, "notes");
    ck_assert_uint_eq(m.updates, 0);
    ck_assert_uint_gt(m.snapshot_bytes, 0);
    ck_assert_uint_eq(m.compactions, 1);
    crdt_doc *d = load(f.db, "notes");
    assert_same_doc(d, f.notes);
    crdt_doc_free(d);
    m = info(f.db, "draft");
    ck_assert_uint_eq(m.updates, 4); /* untouched */
    r = run("verify", f.db, NULL);
    CK_STATUS(r, 0);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

START_TEST(test_compact_all_plain)
{
    fx f;
    fx_setup(&f);
    run_res r = run("compact", f.db, NULL);
    CK_STATUS(r, 0);
    ck_assert_str_eq(r.out, "compacted draft\ncompacted notes\ncompacted 2 documents\n");
    res_free(&r);
    crdt_doc *d = load(f.db, "notes");
    assert_same_doc(d, f.notes);
    crdt_doc_free(d);
    d = load(f.db, "draft");
    assert_same_doc(d, f.draft);
    crdt_doc_free(d);
    ck_assert_uint_eq(info(f.db, "draft").updates, 0);
    r = run("compact", f.db, NULL); /* nothing left to do */
    CK_STATUS(r, 0);
    ck_assert_str_eq(r.out, "compacted 0 documents\n");
    res_free(&r);
    r = run("verify", f.db, NULL);
    CK_STATUS(r, 0);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

START_TEST(test_compact_all_tty)
{
    fx f;
    fx_setup(&f);
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) { /* no pseudo-terminals here (a minimal container): nothing to drive */
        fprintf(stderr, "test_compact_all_tty: posix_openpt: %s; skipped\n", strerror(errno));
        fx_teardown(&f);
        return;
    }
    ck_assert_int_eq(grantpt(m), 0);
    ck_assert_int_eq(unlockpt(m), 0);
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    ck_assert_int_ge(s, 0);
    const char *args[] = {"compact", f.db, NULL};
    run_res r = run_argv(args, NULL, m, s);
    CK_STATUS(r, 0);
    ck_assert_msg(has(r.out, "\r\033[K[") && has(r.out, "] 2/2 notes"), "%s", r.out);
    ck_assert(has(r.out, "[###############...............] 1/2 draft"));
    ck_assert(has(r.out, "compacted 2 documents"));
    ck_assert(!has(r.out, "compacted draft"));
    res_free(&r);
    crdt_doc *d = load(f.db, "notes");
    assert_same_doc(d, f.notes);
    crdt_doc_free(d);
    fx_teardown(&f);
}
END_TEST

/* ---- corruption ---------------------------------------------------------------------------- */

/* Flip the last byte of log entry `seq` of document `name` with a raw LMDB
 * write transaction. The key layout (docs/STORAGE.md): sub-database "log",
 * key = document id (u64 big-endian) | sequence (u64 big-endian), value =
 * tag | CRC-32 | update; the flipped byte breaks the CRC. */
static void corrupt_log_entry(const char *db, const char *name, uint64_t seq)
{
    uint64_t id = info(db, name).id;
    MDB_env *env;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
    ck_assert_int_eq(mdb_env_open(env, db, 0, 0600), 0);
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "log", 0, &dbi), 0);
    uint8_t kb[16];
    for (int i = 0; i < 8; i++) {
        kb[i] = (uint8_t)(id >> (56 - 8 * i));
        kb[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
    }
    MDB_val k = {16, kb}, v;
    ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
    ck_assert_uint_gt(v.mv_size, 5);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 1] ^= 0x5a;
    MDB_val nv = {v.mv_size, copy};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &nv, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    free(copy);
    mdb_env_close(env);
}

START_TEST(test_verify_corrupt)
{
    fx f;
    fx_setup(&f);
    corrupt_log_entry(f.db, "draft", 2);
    run_res r = run("verify", f.db, NULL);
    CK_STATUS(r, 4);
    ck_assert_msg(has(r.out, "BAD  draft: update fails its checksum (at 2)"), "%s", r.out);
    ck_assert(has(r.out, "ok   notes\n"));
    ck_assert(has(r.out, "verified 3 documents: 2 ok, 1 with problems"));
    ck_assert(has(r.err, "problems found"));
    res_free(&r);

    const char *const cases[][4] = {
        {"cat", f.db, "draft", NULL},
        {"inspect", f.db, "draft", NULL},
        {"compact", f.db, "draft", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r = run_argv(cases[i], NULL, -1, -1);
        ck_assert_msg(r.status == 4, "case %zu: exit %d; %s", i, r.status, r.err);
        ck_assert_msg(has(r.err, "'draft' is corrupt"), "case %zu: %s", i, r.err);
        ck_assert_uint_eq(r.out_len, 0);
        res_free(&r);
    }
    char file[600];
    snprintf(file, sizeof file, "%s/draft.tdoc", f.root);
    r = run("export", f.db, "draft", file, NULL);
    CK_STATUS(r, 4);
    res_free(&r);
    struct stat sb;
    ck_assert_int_ne(stat(file, &sb), 0);
    /* compacting all goes on past the bad document and fails at the end */
    r = run("compact", f.db, NULL);
    CK_STATUS(r, 4);
    ck_assert(has(r.err, "'draft'"));
    ck_assert(has(r.out, "compacted notes\n"));
    res_free(&r);
    /* the rest is still readable */
    r = run("ls", f.db, NULL);
    CK_STATUS(r, 0);
    res_free(&r);
    r = run("cat", f.db, "notes", NULL);
    CK_STATUS(r, 0);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

/* A document whose log misses an update: the later one stays pending. */
START_TEST(test_pending)
{
    fx f;
    fx_setup(&f);
    crdt_doc *ed, *ref;
    crdt_sv *sv = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_new(4, &ed), TDM_OK);
    ck_assert_int_eq(crdt_doc_new(97, &ref), TDM_OK);
    ck_assert_int_eq(crdt_doc_insert(ed, 0, "lost ", 5), TDM_OK);
    ck_assert_int_eq(crdt_doc_state_vector(ed, sv), TDM_OK); /* the first edit is never stored */
    store *st = fx_open(f.db);
    fx_ins(st, "gap", ed, sv, ref, 5, "kept");
    store_close(st);
    ck_assert_uint_eq(crdt_doc_pending(ref), 1);

    run_res r = run("cat", f.db, "gap", NULL);
    CK_STATUS(r, 0);
    ck_assert_uint_eq(r.out_len, 0);
    ck_assert(has(r.err, "warning: 1 pending operation (missing dependencies) not shown"));
    res_free(&r);
    r = run("inspect", f.db, "gap", "--json", NULL);
    CK_STATUS(r, 0);
    json_t *o = parse_json(&r);
    ck_assert_int_eq(jint(o, "pending"), 1);
    json_decref(o);
    res_free(&r);
    char file[600];
    snprintf(file, sizeof file, "%s/gap.tdoc", f.root);
    r = run("export", f.db, "gap", file, NULL);
    CK_STATUS(r, 0);
    ck_assert(has(r.err, "1 pending operation (missing dependencies) not exported"));
    res_free(&r);
    r = run("verify", "--quiet", f.db, NULL);
    CK_STATUS(r, 4);
    ck_assert_msg(has(r.out, "BAD  gap: operations left pending"), "%s", r.out);
    ck_assert(!has(r.out, "notes"));
    res_free(&r);
    crdt_sv_free(sv);
    crdt_doc_free(ed);
    crdt_doc_free(ref);
    fx_teardown(&f);
}
END_TEST

/* Names that are not UTF-8 appear escaped in text and with U+FFFD in JSON. */
START_TEST(test_names_json)
{
    fx f;
    fx_setup(&f);
    store *st = fx_open(f.db);
    ck_assert_int_eq(store_doc_create(st, "z\xff\xc3", 3, NULL), TDM_OK);
    store_close(st);
    run_res r = run("ls", f.db, NULL);
    CK_STATUS(r, 0);
    ck_assert_msg(has(r.out, " z\\xff\\xc3\n"), "%s", r.out);
    res_free(&r);
    r = run("ls", "--json", f.db, NULL);
    CK_STATUS(r, 0);
    json_t *v = parse_json(&r);
    json_t *last = json_array_get(v, json_array_size(v) - 1);
    ck_assert_str_eq(json_string_value(json_object_get(last, "name")), "z\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(v);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

/* ---- read-only commands write nothing -------------------------------------------------------- */

START_TEST(test_readonly_unchanged)
{
    fx f;
    fx_setup(&f);
    char file[600];
    snprintf(file, sizeof file, "%s/out.tdoc", f.root);
    db_state before;
    db_state_get(f.db, &before);
    sleep(1); /* a write now would move the mtime even on coarse clocks */
    const char *const cases[][6] = {
        {"ls", f.db, NULL},
        {"ls", f.db, "--json", NULL},
        {"inspect", f.db, "notes", NULL},
        {"inspect", f.db, "notes", "--json", NULL},
        {"cat", f.db, "notes", NULL},
        {"export", f.db, "notes", file, NULL},
        {"verify", f.db, NULL},
        {"history", f.db, "notes", NULL},
        {"history", f.db, "notes", "--json", "--after", "1"},
        {"inspect", f.db, "nosuch", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[8] = {0};
        for (size_t k = 0; k < 6 && cases[i][k]; k++) args[k] = cases[i][k];
        run_res r = run_argv(args, NULL, -1, -1);
        ck_assert_msg(r.status == (i == 9 ? 3 : 0), "case %zu: %d %s", i, r.status, r.err);
        res_free(&r);
    }
    db_state_same(f.db, &before);
    free(before.bytes);
    fx_teardown(&f);
}
END_TEST

/* Names with control bytes and backslashes are listed escaped. */
START_TEST(test_names_escaped)
{
    fx f;
    fx_setup(&f);
    store *st = fx_open(f.db);
    ck_assert_int_eq(store_doc_create(st, "a\nb\\c\x01", 6, NULL), TDM_OK);
    store_close(st);
    run_res r = run("ls", f.db, NULL);
    CK_STATUS(r, 0);
    ck_assert_msg(has(r.out, " a\\nb\\\\c\\x01\n"), "%s", r.out);
    res_free(&r);
    fx_teardown(&f);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("usage");
    tcase_add_test(tc, test_help_version);
    tcase_add_test(tc, test_usage_errors);
    tcase_add_test(tc, test_not_available);
    suite_add_tcase(s, tc);
    tc = tcase_create("read");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_missing_db);
    tcase_add_test(tc, test_unknown_doc);
    tcase_add_test(tc, test_ls);
    tcase_add_test(tc, test_cat);
    tcase_add_test(tc, test_inspect_json);
    tcase_add_test(tc, test_inspect_text);
    tcase_add_test(tc, test_history);
    tcase_add_test(tc, test_verify_ok);
    tcase_add_test(tc, test_names_escaped);
    tcase_add_test(tc, test_names_json);
    tcase_add_test(tc, test_pending);
    tcase_add_test(tc, test_readonly_unchanged);
    suite_add_tcase(s, tc);
    tc = tcase_create("write");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_export_import);
    tcase_add_test(tc, test_import_exists);
    tcase_add_test(tc, test_import_bad_files);
    tcase_add_test(tc, test_compact_doc);
    tcase_add_test(tc, test_compact_all_plain);
    tcase_add_test(tc, test_compact_all_tty);
    tcase_add_test(tc, test_verify_corrupt);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cli_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
