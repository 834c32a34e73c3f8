/* fuzz_base.h - the small fixed document the update harness starts from, and
 * the updates around it (fuzz/ only; also used by the corpus generator).
 *
 * Two replicas edit concurrently:
 *   A (client 1): "hello world", ", dear" inserted, first character deleted;
 *   B (client 2) receives that, then inserts multi-byte text at the front
 *     ("¡é😀 "), backspaces "world" (a backwards delete run) and appends "!中";
 *   A meanwhile appends " again", deletes a range and types "xyz" forwards;
 *   A merges B's update, then prefixes "> " and deletes two characters.
 * fz_base_build() replays A's local edits and merges B's update (computed
 * once), so every call gives the same document; with gc it drops deleted
 * content (tombstones). With `pending` it also holds one update pending: C
 * (client 3) typed between two characters D (client 4) inserted, and only C's
 * update has arrived; fz_base_g.ud is the update that resolves it. The base
 * holds at most 8 operations / 64 text bytes pending.
 * Everything is deterministic; nothing depends on the fuzz input.
 */
#ifndef TANDEM_FUZZ_BASE_H
#define TANDEM_FUZZ_BASE_H

#include "fuzz_util.h"

#define FZ_CLIENT_A 1u
#define FZ_CLIENT_B 2u
#define FZ_CLIENT_C 3u
#define FZ_CLIENT_D 4u
/* small pending bounds, so that TDM_EPENDING_FULL is reachable */
#define FZ_BASE_MAX_PENDING_OPS   8
#define FZ_BASE_MAX_PENDING_BYTES 64

typedef struct fz_base {
    bool ready;
    tbuf ub; /* B's operations after it received A's first edits */
    tbuf uc; /* C's insert: pending until ud arrives */
    tbuf ud; /* D's insert */
} fz_base;

static fz_base fz_base_g;

static inline void fz_ins(crdt_doc *d, size_t pos, const char *s)
{
    FZ_OK(crdt_doc_insert(d, pos, s, strlen(s)));
}

static inline void fz_apply_ok(crdt_doc *d, const tbuf *u)
{
    FZ_OK(crdt_doc_apply(d, u->data, u->len));
}

/* diff of `from` against what `to` holds, applied to `to`. */
static inline void fz_sync(crdt_doc *from, crdt_doc *to)
{
    tbuf u;
    crdt_sv *sv = crdt_sv_new();
    FZ_CHECK(sv);
    tbuf_init(&u, 0);
    FZ_OK(crdt_doc_state_vector(to, sv));
    FZ_OK(crdt_doc_diff(from, sv, &u));
    fz_apply_ok(to, &u);
    tbuf_fini(&u);
    crdt_sv_free(sv);
}

static inline void fz_base_phase1(crdt_doc *a)
{
    fz_ins(a, 0, "hello world");
    fz_ins(a, 5, ", dear"); /* hello, dear world */
    FZ_OK(crdt_doc_delete(a, 0, 1));
}

/* A's edits concurrent with B's */
static inline void fz_base_phase2(crdt_doc *a)
{
    fz_ins(a, crdt_doc_len(a), " again");
    FZ_OK(crdt_doc_delete(a, 2, 3));
    fz_ins(a, 3, "x"); /* typing forwards: one run */
    fz_ins(a, 4, "y");
    fz_ins(a, 5, "z");
}

static inline void fz_base_phase3(crdt_doc *a)
{
    fz_ins(a, 0, "> ");
    FZ_OK(crdt_doc_delete(a, crdt_doc_len(a) / 2, 2));
}

static inline void fz_base_init(void);

/* fz_base_build - a fresh copy of the base document for client `client`. */
static inline crdt_doc *fz_base_build(uint64_t client, bool gc, bool pending)
{
    crdt_doc_opts o = {0};
    crdt_doc *a = NULL;
    fz_base_init();
    o.client = client;
    o.gc = gc;
    o.max_pending_ops = FZ_BASE_MAX_PENDING_OPS;
    o.max_pending_bytes = FZ_BASE_MAX_PENDING_BYTES;
    FZ_OK(crdt_doc_new_opts(&o, &a));
    fz_base_phase1(a);
    fz_base_phase2(a);
    fz_apply_ok(a, &fz_base_g.ub);
    fz_base_phase3(a);
    if (pending) {
        fz_apply_ok(a, &fz_base_g.uc);
        FZ_CHECK(crdt_doc_pending(a) > 0);
    }
    return a;
}

static inline void fz_base_init(void)
{
    if (fz_base_g.ready) return;
    tbuf_init(&fz_base_g.ub, 0);
    tbuf_init(&fz_base_g.uc, 0);
    tbuf_init(&fz_base_g.ud, 0);

    /* B: receives A's first edits, then edits concurrently with A */
    crdt_doc *a = fz_doc(FZ_CLIENT_A, false, 0);
    crdt_doc *b = fz_doc(FZ_CLIENT_B, false, 0);
    crdt_sv *at_sync = crdt_sv_new();
    FZ_CHECK(at_sync);
    fz_base_phase1(a);
    fz_sync(a, b);
    FZ_OK(crdt_doc_state_vector(b, at_sync));
    fz_ins(b, 0, "\xc2\xa1\xc3\xa9\xf0\x9f\x98\x80 "); /* "¡é😀 " */
    for (int i = 0; i < 5; i++) FZ_OK(crdt_doc_delete(b, crdt_doc_len(b) - 1, 1));
    fz_ins(b, crdt_doc_len(b), "!\xe4\xb8\xad"); /* "!中" */
    FZ_OK(crdt_doc_diff(b, at_sync, &fz_base_g.ub));
    crdt_doc_free(a);
    crdt_doc_free(b);
    fz_base_g.ready = true; /* fz_base_build works from here on */

    /* D inserts "DD" into the base; C sees it and types "C" between them */
    crdt_doc *base = fz_base_build(FZ_CLIENT_A, false, false);
    crdt_doc *c = fz_doc(FZ_CLIENT_C, false, 0);
    crdt_doc *d = fz_doc(FZ_CLIENT_D, false, 0);
    fz_sync(base, d);
    fz_sync(base, c);
    fz_ins(d, 4, "DD");
    FZ_OK(crdt_doc_state_vector(base, at_sync));
    FZ_OK(crdt_doc_diff(d, at_sync, &fz_base_g.ud));
    fz_apply_ok(c, &fz_base_g.ud);
    FZ_OK(crdt_doc_state_vector(c, at_sync));
    fz_ins(c, 5, "C");
    FZ_OK(crdt_doc_diff(c, at_sync, &fz_base_g.uc));
    crdt_doc_free(base);
    crdt_doc_free(c);
    crdt_doc_free(d);
    crdt_sv_free(at_sync);
}

#endif
