/* fuzz_update.c - libFuzzer harness: crdt_doc_apply(arbitrary bytes) on a
 * small document with history (fuzz_base.h), in three variants: plain, gc
 * (deleted content collected) and one holding a pending update.
 *
 * Invariants checked for each variant:
 *   - on error: only a documented code; text, state vector, delete set,
 *     pending count, the three lengths, the client count, the full diff and
 *     the snapshot bytes are exactly as before; the document still takes a
 *     local insert;
 *   - on success: the lengths (code points, UTF-16, bytes) agree with the
 *     text, which is strict UTF-8; the state vector covers the old one and the
 *     delete set contains the old one; the snapshot loads into fresh documents
 *     (same client and another client) with identical text, state vector and
 *     delete set, and re-snapshotting the same-client copy gives the same
 *     bytes; crdt_doc_diff(doc, NULL) applied to a fresh document gives the same
 *     state vector and delete set, nothing pending and the same text; the
 *     diff against the base's state vector brings a fresh base to the same
 *     state; with nothing pending, applying the same bytes again changes
 *     nothing; a local insert and delete afterwards still sync to the base
 *     copy (for these replicas "the same text" means the same characters in
 *     any order unless TANDEM_FUZZ_STRICT=1, see same_text());
 *   - the plain and gc variants return the same code and reach the same text,
 *     state vector, delete set and pending count.
 * TANDEM_FUZZ_STRICT=1 requires those replicas to agree on the exact text
 * (fails today on a reported finding: hostile origins).
 */
#include "fuzz_base.h"

static bool strict;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    strict = fz_env_flag("TANDEM_FUZZ_STRICT");
    fz_base_init();
    return 0;
}

/* same_text - replicas that merged the same operations in a different order
 * hold the same text. Hostile updates (origins that were never adjacent) break
 * that today (reported; see fuzz/README.md), so by default only the same
 * characters in any order are required, and the exact text under
 * TANDEM_FUZZ_STRICT=1. */
static bool same_text(const fz_state *a, const fz_state *b)
{
    return strict ? fz_same_text(a, b) : fz_same_chars(a, b);
}

static bool err_documented(tdm_err e)
{
    return e == TDM_EMALFORMED || e == TDM_EVERSION || e == TDM_EUTF8 || e == TDM_ETOOBIG ||
           e == TDM_EPENDING_FULL;
}

/* every range of `sub` is in `super` */
static bool ds_contains(const crdt_ds *super, const crdt_ds *sub)
{
    for (size_t i = 0; i < crdt_ds_ranges(sub); i++) {
        uint64_t c;
        uint32_t k, n;
        crdt_ds_range(sub, i, &c, &k, &n);
        if (!crdt_ds_has(super, c, k) || !crdt_ds_has(super, c, k + n - 1)) return false;
    }
    return crdt_ds_ids(super) >= crdt_ds_ids(sub);
}

/* load `snap` into a fresh document of `client`; its state must equal `want`
 * (text, state vector, delete set; nothing pending). Returns the document. */
static crdt_doc *load_expect(const tbuf *snap, uint64_t client, const fz_state *want)
{
    fz_state s;
    crdt_doc *l = fz_doc(client, false, 0);
    FZ_OK(crdt_doc_load(l, snap->data, snap->len));
    fz_state_init(&s);
    fz_capture(l, &s);
    FZ_CHECK(fz_same_text(&s, want));
    FZ_CHECK(crdt_sv_equal(s.sv, want->sv));
    FZ_CHECK(crdt_ds_equal(s.ds, want->ds));
    FZ_CHECK(s.pending == 0);
    fz_state_fini(&s);
    return l;
}

static void check_success(crdt_doc *doc, bool gc, bool pending, const uint8_t *data, size_t size,
                          const fz_state *s0, const fz_state *s1)
{
    tbuf snap, snap2, full, u;
    fz_state s;
    tbuf_init(&snap, 0);
    tbuf_init(&snap2, 0);
    tbuf_init(&full, 0);
    tbuf_init(&u, 0);
    fz_state_init(&s);

    /* monotone: nothing known is forgotten, nothing deleted comes back */
    FZ_CHECK(crdt_sv_covers(s1->sv, s0->sv));
    FZ_CHECK(ds_contains(s1->ds, s0->ds));

    /* snapshot -> load (same client: a fixed point; another client) */
    FZ_OK(crdt_doc_snapshot(doc, &snap));
    crdt_doc *l = load_expect(&snap, FZ_CLIENT_A, s1);
    FZ_OK(crdt_doc_snapshot(l, &snap2));
    FZ_CHECK(fz_buf_eq(&snap, &snap2));
    crdt_doc_free(l);
    crdt_doc_free(load_expect(&snap, 1000, s1));

    /* the full diff rebuilds the applied state in a fresh document */
    FZ_OK(crdt_doc_diff(doc, NULL, &full));
    crdt_doc *f = fz_doc(1001, false, 0);
    FZ_OK(crdt_doc_apply(f, full.data, full.len));
    fz_capture(f, &s);
    FZ_CHECK(s.pending == 0);
    FZ_CHECK(same_text(&s, s1));
    FZ_CHECK(crdt_sv_equal(s.sv, s1->sv));
    FZ_CHECK(crdt_ds_equal(s.ds, s1->ds));
    crdt_doc_free(f);

    /* the incremental diff brings a copy of the base to the same state */
    crdt_doc *b2 = fz_base_build(FZ_CLIENT_A, gc, pending);
    crdt_sv *sv_b2 = crdt_sv_new();
    FZ_CHECK(sv_b2);
    FZ_OK(crdt_doc_state_vector(b2, sv_b2));
    FZ_OK(crdt_doc_diff(doc, sv_b2, &u));
    FZ_OK(crdt_doc_apply(b2, u.data, u.len));
    fz_capture(b2, &s);
    FZ_CHECK(same_text(&s, s1));
    FZ_CHECK(crdt_sv_equal(s.sv, s1->sv));
    FZ_CHECK(crdt_ds_equal(s.ds, s1->ds));

    /* idempotent: with nothing pending, the same bytes again change nothing */
    if (s1->pending == 0) {
        tbuf full2;
        tbuf_init(&full2, 0);
        FZ_OK(crdt_doc_apply(doc, data, size));
        fz_capture(doc, &s);
        FZ_CHECK(fz_same_state(&s, s1));
        FZ_OK(crdt_doc_diff(doc, NULL, &full2));
        FZ_CHECK(fz_buf_eq(&full, &full2));
        tbuf_fini(&full2);
    }

    /* local edits on top still sync */
    fz_ins(doc, crdt_doc_len(doc) / 2, "#\xc3\xa9");
    FZ_OK(crdt_doc_delete(doc, 0, 1));
    FZ_OK(crdt_doc_state_vector(b2, sv_b2));
    tbuf_reset(&u);
    FZ_OK(crdt_doc_diff(doc, sv_b2, &u));
    FZ_OK(crdt_doc_apply(b2, u.data, u.len));
    fz_state s2;
    fz_state_init(&s2);
    fz_capture(doc, &s2);
    fz_capture(b2, &s);
    FZ_CHECK(same_text(&s, &s2));
    FZ_CHECK(crdt_sv_equal(s.sv, s2.sv));
    fz_state_fini(&s2);

    crdt_sv_free(sv_b2);
    crdt_doc_free(b2);
    fz_state_fini(&s);
    tbuf_fini(&snap);
    tbuf_fini(&snap2);
    tbuf_fini(&full);
    tbuf_fini(&u);
}

static void check_failure(crdt_doc *doc, tdm_err e, const fz_state *s0, const fz_state *s1,
                          const tbuf *full0, const tbuf *snap0, size_t clients0)
{
    tbuf t;
    tbuf_init(&t, 0);
    if (!err_documented(e)) fz_fail(__FILE__, __LINE__, "apply returns a documented error", NULL);
    FZ_CHECK(fz_same_state(s0, s1));
    FZ_OK(crdt_doc_diff(doc, NULL, &t));
    FZ_CHECK(fz_buf_eq(full0, &t));
    crdt_doc_stats st;
    crdt_doc_get_stats(doc, &st);
    FZ_CHECK(st.clients == clients0);
    tbuf_reset(&t);
    FZ_OK(crdt_doc_snapshot(doc, &t));
    FZ_CHECK(fz_buf_eq(snap0, &t));
    /* still usable */
    fz_ins(doc, 0, "#");
    tbuf_reset(&t);
    FZ_OK(crdt_doc_text(doc, &t));
    FZ_CHECK(t.len == s0->text.len + 1 && t.data[0] == '#');
    FZ_CHECK(s0->text.len == 0 || memcmp(t.data + 1, s0->text.data, s0->text.len) == 0);
    tbuf_fini(&t);
}

/* run - apply the input to a fresh base variant; *s1 gets the state right
 * after the apply. */
static tdm_err run(bool gc, bool pending, const uint8_t *data, size_t size, fz_state *s1)
{
    crdt_doc *doc = fz_base_build(FZ_CLIENT_A, gc, pending);
    fz_state s0;
    tbuf full0, snap0;
    crdt_doc_stats st;
    fz_state_init(&s0);
    tbuf_init(&full0, 0);
    tbuf_init(&snap0, 0);
    fz_capture(doc, &s0);
    FZ_OK(crdt_doc_diff(doc, NULL, &full0));
    FZ_OK(crdt_doc_snapshot(doc, &snap0));
    crdt_doc_get_stats(doc, &st);

    tdm_err e = crdt_doc_apply(doc, data, size);
    fz_capture(doc, s1);
    if (e)
        check_failure(doc, e, &s0, s1, &full0, &snap0, st.clients);
    else
        check_success(doc, gc, pending, data, size, &s0, s1);

    crdt_doc_free(doc);
    fz_state_fini(&s0);
    tbuf_fini(&full0);
    tbuf_fini(&snap0);
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_state sp, sg, sq;
    fz_state_init(&sp);
    fz_state_init(&sg);
    fz_state_init(&sq);
    tdm_err ep = run(false, false, data, size, &sp);
    tdm_err eg = run(true, false, data, size, &sg);
    (void)run(false, true, data, size, &sq);
    /* collecting deleted content changes nothing observable */
    FZ_CHECK(ep == eg);
    FZ_CHECK(fz_same_state(&sp, &sg));
    fz_state_fini(&sp);
    fz_state_fini(&sg);
    fz_state_fini(&sq);
    return 0;
}
