/* test_store_util.h - helpers shared by the storage suites (header-only, static):
 * temporary directories, a PRNG, and an editor that turns random local edits
 * of a crdt_doc into real updates. */
#ifndef TANDEM_TEST_STORE_UTIL_H
#define TANDEM_TEST_STORE_UTIL_H

#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doc.h"
#include "ids.h"
#include "store.h"

/* SU_OK - assert a tdm_err call succeeded. Check's ck_assert writes to a
 * pipe on every call; hot loops use this instead, which costs nothing unless
 * it fails. */
#define SU_OK(x)                                                                                   \
    do {                                                                                           \
        tdm_err su_e_ = (x);                                                                       \
        if (su_e_) ck_abort_msg("%s: %s", #x, tdm_err_name(su_e_));                                \
    } while (0)

typedef struct su_rng {
    uint64_t s;
} su_rng;

static inline uint64_t su_next(su_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static inline size_t su_below(su_rng *r, size_t n)
{
    return n ? (size_t)(su_next(r) % n) : 0;
}

/* su_tmpdir - a fresh directory under $TMPDIR (or /tmp); path in buf. */
static inline void su_tmpdir(char *buf, size_t n)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, n, "%s/tandem-store-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

/* su_store_open - store_open that must succeed. */
static inline store *su_store_open(const char *dir, const store_opts *o)
{
    store *st = NULL;
    ck_assert_int_eq(store_open(dir, o, &st), TDM_OK);
    ck_assert_ptr_nonnull(st);
    return st;
}

/* su_rmtree - remove a directory tree (two levels are enough here). */
static inline void su_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t dl = strlen(dir), nl = strlen(e->d_name);
        if (dl + nl + 2 > sizeof p) continue;
        memcpy(p, dir, dl);
        p[dl] = '/';
        memcpy(p + dl + 1, e->d_name, nl + 1);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            su_rmtree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* An editor: one replica making random local edits; su_edit returns the
 * update of that one edit (the diff against the state vector before it). */
typedef struct su_editor {
    crdt_doc *doc;
    crdt_sv *sv;
    tbuf upd;
    su_rng rng;
} su_editor;

static inline void su_editor_init(su_editor *ed, uint64_t client, uint64_t seed)
{
    ck_assert_int_eq(crdt_doc_new(client, &ed->doc), TDM_OK);
    ed->sv = crdt_sv_new();
    ck_assert_ptr_nonnull(ed->sv);
    tbuf_init(&ed->upd, 0);
    ed->rng.s = seed;
}

static inline void su_editor_fini(su_editor *ed)
{
    crdt_doc_free(ed->doc);
    crdt_sv_free(ed->sv);
    tbuf_fini(&ed->upd);
}

/* One random edit (mostly typing, some deletes, multi-byte text); the
 * update is in ed->upd. `chars` caps the inserted run. */
static inline void su_edit(su_editor *ed, size_t chars)
{
    static const char *const pieces[] = {"a", "b", "é", "ü", "→", "😀", "xyz", " ", "\n", "Q"};
    size_t len = crdt_doc_len(ed->doc);
    if (len > 0 && su_below(&ed->rng, 5) == 0) {
        size_t pos = su_below(&ed->rng, len);
        size_t cnt = 1 + su_below(&ed->rng, len - pos < 4 ? len - pos : 4);
        SU_OK(crdt_doc_delete(ed->doc, pos, cnt));
    } else {
        char buf[256];
        size_t n = 0, k = 1 + su_below(&ed->rng, chars ? chars : 1);
        for (size_t i = 0; i < k; i++) {
            const char *p = pieces[su_below(&ed->rng, sizeof pieces / sizeof pieces[0])];
            size_t pl = strlen(p);
            if (n + pl > sizeof buf) break;
            memcpy(buf + n, p, pl);
            n += pl;
        }
        size_t pos = su_below(&ed->rng, 3) == 0 ? su_below(&ed->rng, len + 1) : len;
        SU_OK(crdt_doc_insert(ed->doc, pos, buf, n));
    }
    tbuf_reset(&ed->upd);
    SU_OK(crdt_doc_diff(ed->doc, ed->sv, &ed->upd));
    SU_OK(crdt_doc_state_vector(ed->doc, ed->sv));
}

/* su_same - two documents hold the same text and state vector. */
static inline void su_assert_same(crdt_doc *a, crdt_doc *b)
{
    tbuf ta, tb;
    tbuf_init(&ta, 0);
    tbuf_init(&tb, 0);
    ck_assert_int_eq(crdt_doc_text(a, &ta), TDM_OK);
    ck_assert_int_eq(crdt_doc_text(b, &tb), TDM_OK);
    ck_assert_uint_eq(ta.len, tb.len);
    ck_assert(ta.len == 0 || memcmp(ta.data, tb.data, ta.len) == 0);
    tbuf_fini(&ta);
    tbuf_fini(&tb);
    crdt_sv *sa = crdt_sv_new(), *sb = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_state_vector(a, sa), TDM_OK);
    ck_assert_int_eq(crdt_doc_state_vector(b, sb), TDM_OK);
    ck_assert(crdt_sv_equal(sa, sb));
    crdt_sv_free(sa);
    crdt_sv_free(sb);
}

#endif
