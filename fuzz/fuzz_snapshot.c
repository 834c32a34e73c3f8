/* fuzz_snapshot.c - libFuzzer harness: crdt_doc_load(arbitrary bytes) into a
 * fresh document (max_update_bytes 4 MiB, which also caps inflating).
 *
 * Snapshots end with a CRC-32 of the bytes before it, which random mutations
 * nearly always break. Each input is therefore loaded twice: as it is, and
 * followed by the CBOR uint of its own CRC-32 (the seeds are snapshots with
 * their checksum cut off, so the second load reaches the decoder).
 *
 * Invariants:
 *   - on error: only a documented code; the document is still empty (no text,
 *     lengths 0, empty state vector and delete set, nothing pending, same
 *     client); a twin document that failed the same way still loads a valid
 *     snapshot; the failed document takes a local insert and delete, and they
 *     sync to another document;
 *   - on success: lengths agree with the text (strict UTF-8); the snapshot of
 *     the loaded document loads into a fresh document with identical text,
 *     state vector and delete set, and is a fixed point (re-snapshotting that
 *     copy gives the same bytes); a local insert on the loaded document,
 *     diffed against the copy's state vector, applies to the copy (nothing
 *     pending, same text and state vector), and a delete on the copy syncs
 *     back the same way.
 * TANDEM_FUZZ_STRICT=1 also rebuilds the loaded document from
 * crdt_doc_diff(doc, NULL) in a fresh document and requires the same text.
 */
#include "fuzz_base.h"
#include "zip.h"

#define CLIENT_L   7u
#define CLIENT_R   8u
#define MAX_UPDATE ((size_t)4 << 20)

static bool strict;
static tbuf good_snap; /* a valid snapshot of the base document */
static tbuf good_text; /* its text */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    strict = fz_env_flag("TANDEM_FUZZ_STRICT");
    crdt_doc *b = fz_base_build(FZ_CLIENT_A, false, false);
    tbuf_init(&good_snap, 0);
    tbuf_init(&good_text, 0);
    FZ_OK(crdt_doc_snapshot(b, &good_snap));
    FZ_OK(crdt_doc_text(b, &good_text));
    crdt_doc_free(b);
    return 0;
}

static bool err_documented(tdm_err e)
{
    return e == TDM_EMALFORMED || e == TDM_EVERSION || e == TDM_EUTF8 || e == TDM_ETOOBIG;
}

static void check_empty(crdt_doc *d, uint64_t client)
{
    fz_state s;
    fz_state_init(&s);
    fz_capture(d, &s);
    FZ_CHECK(s.text.len == 0 && s.cp == 0 && s.u16 == 0 && s.bytes == 0);
    FZ_CHECK(crdt_sv_count(s.sv) == 0);
    FZ_CHECK(crdt_ds_ranges(s.ds) == 0);
    FZ_CHECK(s.pending == 0);
    FZ_CHECK(crdt_doc_client(d) == client);
    fz_state_fini(&s);
}

static void check_failure(crdt_doc *d, tdm_err e, const uint8_t *data, size_t size)
{
    if (!err_documented(e)) fz_fail(__FILE__, __LINE__, "load returns a documented error", NULL);
    check_empty(d, CLIENT_L);

    /* a twin that failed the same way still loads a valid snapshot */
    crdt_doc *twin = fz_doc(CLIENT_L, false, MAX_UPDATE);
    FZ_CHECK(crdt_doc_load(twin, data, size) == e);
    FZ_OK(crdt_doc_load(twin, good_snap.data, good_snap.len));
    tbuf t;
    tbuf_init(&t, 0);
    FZ_OK(crdt_doc_text(twin, &t));
    FZ_CHECK(fz_buf_eq(&t, &good_text));
    crdt_doc_free(twin);

    /* and the failed one takes local edits that sync */
    fz_ins(d, 0, "ab\xf0\x9f\x98\x80");
    FZ_OK(crdt_doc_delete(d, 1, 1));
    tbuf_reset(&t);
    FZ_OK(crdt_doc_text(d, &t));
    FZ_CHECK(t.len == 5 && memcmp(t.data, "a\xf0\x9f\x98\x80", 5) == 0);
    FZ_CHECK(crdt_doc_len(d) == 2 && crdt_doc_len_utf16(d) == 3 && crdt_doc_len_bytes(d) == 5);
    crdt_doc *r = fz_doc(CLIENT_R, false, MAX_UPDATE);
    fz_sync(d, r);
    tbuf_reset(&t);
    FZ_OK(crdt_doc_text(r, &t));
    FZ_CHECK(t.len == 5 && memcmp(t.data, "a\xf0\x9f\x98\x80", 5) == 0);
    crdt_doc_free(r);
    tbuf_fini(&t);
}

static void check_success(crdt_doc *l)
{
    fz_state sl, sr;
    tbuf snap, snap2, u;
    fz_state_init(&sl);
    fz_state_init(&sr);
    tbuf_init(&snap, 0);
    tbuf_init(&snap2, 0);
    tbuf_init(&u, 0);
    fz_capture(l, &sl);
    FZ_CHECK(sl.pending == 0);

    /* re-snapshot -> load: same state, and a fixed point */
    FZ_OK(crdt_doc_snapshot(l, &snap));
    crdt_doc *r = fz_doc(CLIENT_L, false, MAX_UPDATE);
    FZ_OK(crdt_doc_load(r, snap.data, snap.len));
    fz_capture(r, &sr);
    FZ_CHECK(fz_same_state(&sl, &sr));
    FZ_OK(crdt_doc_snapshot(r, &snap2));
    FZ_CHECK(fz_buf_eq(&snap, &snap2));
    crdt_doc_free(r);

    /* a copy under another client id, then edits both ways */
    r = fz_doc(CLIENT_R, false, MAX_UPDATE);
    FZ_OK(crdt_doc_load(r, snap.data, snap.len));
    fz_capture(r, &sr);
    FZ_CHECK(fz_same_state(&sl, &sr));

    fz_ins(l, sl.cp / 2, "x\xc3\xa9");
    fz_sync(l, r);
    fz_capture(l, &sl);
    fz_capture(r, &sr);
    FZ_CHECK(sr.pending == 0);
    FZ_CHECK(fz_same_text(&sl, &sr));
    FZ_CHECK(crdt_sv_equal(sl.sv, sr.sv));

    FZ_OK(crdt_doc_delete(r, sr.cp / 3, 1));
    fz_ins(r, 0, "y");
    fz_sync(r, l);
    fz_capture(l, &sl);
    fz_capture(r, &sr);
    FZ_CHECK(sl.pending == 0);
    FZ_CHECK(fz_same_state(&sl, &sr));
    crdt_doc_free(r);

    if (strict) {
        /* the operations the document holds rebuild it elsewhere */
        crdt_doc *f = fz_doc(1001, false, 0);
        FZ_OK(crdt_doc_diff(l, NULL, &u));
        FZ_OK(crdt_doc_apply(f, u.data, u.len));
        fz_capture(f, &sr);
        FZ_CHECK(sr.pending == 0);
        FZ_CHECK(fz_same_text(&sl, &sr));
        FZ_CHECK(crdt_sv_equal(sl.sv, sr.sv));
        crdt_doc_free(f);
    }

    fz_state_fini(&sl);
    fz_state_fini(&sr);
    tbuf_fini(&snap);
    tbuf_fini(&snap2);
    tbuf_fini(&u);
}

static void fuzz_load(const uint8_t *data, size_t size)
{
    crdt_doc *l = fz_doc(CLIENT_L, false, MAX_UPDATE);
    tdm_err e = crdt_doc_load(l, data, size);
    if (e)
        check_failure(l, e, data, size);
    else
        check_success(l);
    crdt_doc_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the bytes as they are (this covers the checksum check) ... */
    fuzz_load(data, size);
    /* ... and as a snapshot body followed by its CRC-32, so that mutated
     * bodies pass the checksum and reach the decoder */
    tbuf t;
    tbuf_init(&t, 0);
    FZ_OK(tbuf_append(&t, data, size));
    FZ_OK(tbuf_cbor_uint(&t, zip_crc32(0, data, size)));
    fuzz_load(t.data, t.len);
    tbuf_fini(&t);
    return 0;
}
