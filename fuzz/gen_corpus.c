/* gen_corpus.c - writes the seed corpora of the fuzz harnesses from real
 * encodings: updates against the harness's base document, snapshots (codec 0
 * and 1; written without their trailing CRC-32, which fuzz_snapshot appends,
 * plus one complete snapshot), state vectors and delete sets, and CBOR items
 * of every kind.
 *
 * Also the OT seeds (fuzz_ot: encoded operations after a 0 mode byte, edit
 * scripts after a 1) and awareness scripts (fuzz_awareness: records
 * [ctl][len:2][bytes] applying real updates, ticking, setting the local state
 * and removing clients).
 *
 * Usage: fuzz_gen_corpus <dir>   (writes <dir>/fuzz_update/..., and so on;
 * the directories must exist). Deterministic: the same build writes the same
 * bytes. Every seed is checked to be accepted by its decoder first.
 */
#include "fuzz_base.h"
#include "awareness.h"
#include "cbor_rd.h"
#include "ot.h"
#include "zip.h"

static const char *outdir;

static void put(const char *harness, const char *name, const uint8_t *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", outdir, harness, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "gen_corpus: cannot write %s\n", path);
        exit(1);
    }
}

/* a CBOR seed for fuzz_cbor: depth byte + item */
static void put_cbor(const char *name, uint8_t depth_byte, const uint8_t *p, size_t n)
{
    uint8_t buf[16384];
    FZ_CHECK(n + 1 <= sizeof buf);
    buf[0] = depth_byte;
    memcpy(buf + 1, p, n);
    put("fuzz_cbor", name, buf, n + 1);
}

/* put_update_e - a seed update that the base document answers with `want` */
static void put_update_e(const char *name, const tbuf *u, tdm_err want)
{
    char nm[256];
    crdt_doc *d = fz_base_build(FZ_CLIENT_A, false, false);
    FZ_CHECK(crdt_doc_apply(d, u->data, u->len) == want);
    crdt_doc_free(d);
    FZ_CHECK(u->len <= 4096);
    put("fuzz_update", name, u->data, u->len);
    snprintf(nm, sizeof nm, "update-%s", name);
    put_cbor(nm, 66, u->data, u->len);
}

static void put_update(const char *name, const tbuf *u)
{
    put_update_e(name, u, TDM_OK);
}

/* codec field of a snapshot (its 5th element) */
static uint64_t snap_codec(const tbuf *s)
{
    cbr r;
    size_t cnt;
    uint64_t v;
    cbr_init(&r, s->data, s->len);
    FZ_OK(cbr_array(&r, &cnt));
    FZ_OK(cbr_uint(&r, &v));
    FZ_OK(cbr_skip(&r, 1));
    FZ_OK(cbr_skip(&r, 1));
    FZ_OK(cbr_uint(&r, &v));
    return v;
}

/* bytes before the trailing CRC-32 item (the 8th element) */
static size_t snap_body_len(const tbuf *s)
{
    cbr r;
    size_t cnt;
    uint64_t crc;
    cbr_init(&r, s->data, s->len);
    FZ_OK(cbr_array(&r, &cnt));
    FZ_CHECK(cnt == 8);
    for (int i = 0; i < 7; i++) FZ_OK(cbr_skip(&r, 1));
    size_t at = r.pos;
    FZ_OK(cbr_uint(&r, &crc));
    FZ_OK(cbr_finish(&r));
    FZ_CHECK(crc == zip_crc32(0, s->data, at));
    return at;
}

static int codecs_seen[2];

static void put_snapshot(const char *name, crdt_doc *d)
{
    char nm[256];
    tbuf s;
    tbuf_init(&s, 0);
    FZ_OK(crdt_doc_snapshot(d, &s));
    crdt_doc *l = fz_doc(7, false, 0);
    FZ_OK(crdt_doc_load(l, s.data, s.len));
    crdt_doc_free(l);
    FZ_CHECK(s.len <= 8192);
    codecs_seen[snap_codec(&s)]++;
    /* the harness appends the checksum itself: seed the body without it */
    put("fuzz_snapshot", name, s.data, snap_body_len(&s));
    snprintf(nm, sizeof nm, "snapshot-%s", name);
    put_cbor(nm, 66, s.data, s.len);
    tbuf_fini(&s);
}

static void put_sv(const char *name, const crdt_sv *sv)
{
    tbuf b;
    tbuf_init(&b, 0);
    FZ_OK(crdt_sv_encode(sv, &b));
    put("fuzz_sv_ds", name, b.data, b.len);
    put_cbor(name, 12, b.data, b.len);
    tbuf_fini(&b);
}

static void put_ds(const char *name, const crdt_ds *ds)
{
    tbuf b;
    tbuf_init(&b, 0);
    FZ_OK(crdt_ds_encode(ds, &b));
    put("fuzz_sv_ds", name, b.data, b.len);
    put_cbor(name, 12, b.data, b.len);
    tbuf_fini(&b);
}

static void put_doc_ids(const char *name, crdt_doc *d)
{
    char nm[256];
    crdt_sv *sv = crdt_sv_new();
    crdt_ds *ds = crdt_ds_new();
    FZ_CHECK(sv && ds);
    FZ_OK(crdt_doc_state_vector(d, sv));
    FZ_OK(crdt_doc_delete_set(d, ds));
    snprintf(nm, sizeof nm, "sv-%s", name);
    put_sv(nm, sv);
    snprintf(nm, sizeof nm, "ds-%s", name);
    put_ds(nm, ds);
    crdt_sv_free(sv);
    crdt_ds_free(ds);
}

/* diff of d against the base's state vector */
static void diff_vs_base(crdt_doc *d, tbuf *out)
{
    crdt_doc *base = fz_base_build(FZ_CLIENT_A, false, false);
    crdt_sv *sv = crdt_sv_new();
    FZ_CHECK(sv);
    FZ_OK(crdt_doc_state_vector(base, sv));
    tbuf_reset(out);
    FZ_OK(crdt_doc_diff(d, sv, out));
    crdt_sv_free(sv);
    crdt_doc_free(base);
}

static crdt_doc *replica_of_base(uint64_t client, bool gc)
{
    crdt_doc *base = fz_base_build(FZ_CLIENT_A, false, false);
    crdt_doc *d = fz_doc(client, gc, 0);
    fz_sync(base, d);
    crdt_doc_free(base);
    return d;
}

static void gen_updates(void)
{
    tbuf u;
    tbuf_init(&u, 0);
    crdt_doc *base = fz_base_build(FZ_CLIENT_A, false, false);

    FZ_OK(crdt_doc_diff(base, NULL, &u));
    put_update("full-base", &u);
    crdt_doc *gbase = fz_base_build(FZ_CLIENT_A, true, false);
    tbuf_reset(&u);
    FZ_OK(crdt_doc_diff(gbase, NULL, &u));
    put_update("full-base-gc-tombstones", &u);
    crdt_doc_free(gbase);
    put_update("b-concurrent", &fz_base_g.ub);
    put_update("d-insert", &fz_base_g.ud);
    put_update("c-insert-pending", &fz_base_g.uc);
    diff_vs_base(base, &u);
    put_update("empty", &u);

    /* C with D's insert: both blocks in one update */
    crdt_doc *c = replica_of_base(FZ_CLIENT_C, false);
    fz_apply_ok(c, &fz_base_g.ud);
    fz_apply_ok(c, &fz_base_g.uc);
    diff_vs_base(c, &u);
    put_update("c-and-d", &u);
    crdt_doc_free(c);

    /* C, once more: ten separate inserts behind the missing one (too many
     * operations to hold pending), and one long insert (too many bytes) */
    c = replica_of_base(FZ_CLIENT_C, false);
    fz_apply_ok(c, &fz_base_g.ud);
    crdt_sv *sv_c = crdt_sv_new();
    FZ_CHECK(sv_c);
    FZ_OK(crdt_doc_state_vector(c, sv_c));
    fz_ins(c, 5, "C");
    for (size_t i = 0; i < 10; i++) fz_ins(c, 2 * i, "c");
    tbuf_reset(&u);
    FZ_OK(crdt_doc_diff(c, sv_c, &u));
    put_update_e("c-pending-full-ops", &u, TDM_EPENDING_FULL);
    crdt_doc_free(c);
    c = replica_of_base(FZ_CLIENT_C, false);
    fz_apply_ok(c, &fz_base_g.ud);
    fz_ins(c, 5, "a long insert that waits for D and takes more than sixty-four bytes");
    tbuf_reset(&u);
    FZ_OK(crdt_doc_diff(c, sv_c, &u));
    put_update_e("c-pending-full-bytes", &u, TDM_EPENDING_FULL);
    crdt_doc_free(c);
    crdt_sv_free(sv_c);

    /* E: typing, a delete across items of several clients, backspacing */
    crdt_doc *e = replica_of_base(5, false);
    fz_ins(e, 6, "typed");
    FZ_OK(crdt_doc_delete(e, 1, 8));
    for (int i = 0; i < 4; i++) FZ_OK(crdt_doc_delete(e, 10 - i, 1));
    fz_ins(e, crdt_doc_len(e), "\xf0\x9f\x8e\x89\xe2\x82\xac end");
    diff_vs_base(e, &u);
    put_update("e-edits", &u);
    crdt_doc_free(e);

    /* E with gc: its own inserted-then-deleted text travels as a tombstone */
    e = replica_of_base(5, true);
    fz_ins(e, 3, "temporary");
    FZ_OK(crdt_doc_delete(e, 4, 7));
    diff_vs_base(e, &u);
    put_update("e-gc-tombstone", &u);
    crdt_doc_free(e);

    /* F and G insert concurrently at the same place, then merge */
    crdt_doc *f = replica_of_base(6, false), *g = replica_of_base(UINT64_MAX, false);
    fz_ins(f, 4, "ffff");
    fz_ins(g, 4, "gg");
    FZ_OK(crdt_doc_delete(g, 0, 3));
    fz_sync(g, f);
    fz_ins(f, 5, "!");
    diff_vs_base(f, &u);
    put_update("f-g-concurrent", &u);
    crdt_doc_free(f);
    crdt_doc_free(g);

    /* a replica that never saw the base: no origins in common */
    crdt_doc *h = fz_doc(9, false, 0);
    fz_ins(h, 0, "unrelated");
    FZ_OK(crdt_doc_delete(h, 2, 2));
    tbuf_reset(&u);
    FZ_OK(crdt_doc_diff(h, NULL, &u));
    put_update("unrelated", &u);
    crdt_doc_free(h);

    crdt_doc_free(base);
    tbuf_fini(&u);
}

static void gen_snapshots(void)
{
    crdt_doc *d = fz_base_build(FZ_CLIENT_A, false, false);
    put_snapshot("base", d);
    put_doc_ids("base", d);
    tbuf whole;
    tbuf_init(&whole, 0);
    FZ_OK(crdt_doc_snapshot(d, &whole));
    put("fuzz_snapshot", "base-with-crc", whole.data, whole.len);
    tbuf_fini(&whole);
    crdt_doc_free(d);
    d = fz_base_build(FZ_CLIENT_A, true, false);
    put_snapshot("base-gc", d);
    put_doc_ids("base-gc", d);
    crdt_doc_free(d);
    d = fz_base_build(FZ_CLIENT_A, false, true);
    put_snapshot("base-pending", d);
    crdt_doc_free(d);
    d = fz_doc(3, false, 0);
    put_snapshot("empty", d);
    put_doc_ids("empty", d);
    crdt_doc_free(d);

    /* larger documents (several KiB of columns): deflated, codec 1 */
    for (int gc = 0; gc < 2; gc++) {
        crdt_doc *a = fz_doc(11, gc, 0), *b = fz_doc(12, gc, 0);
        for (int i = 0; i < 60; i++) {
            fz_ins(a, crdt_doc_len(a), "the quick brown fox ");
            if (i % 7 == 3) FZ_OK(crdt_doc_delete(a, crdt_doc_len(a) / 2, 5));
            if (i % 10 == 9) {
                fz_sync(a, b);
                fz_ins(b, (size_t)i % crdt_doc_len(b), "\xce\xbb\xf0\x9f\x90\x8d");
                FZ_OK(crdt_doc_delete(b, crdt_doc_len(b) - 3, 2));
                fz_sync(b, a);
            }
        }
        put_snapshot(gc ? "large-gc" : "large", a);
        put_doc_ids(gc ? "large-gc" : "large", a);
        crdt_doc_free(a);
        crdt_doc_free(b);
    }
    FZ_CHECK(codecs_seen[0] > 0 && codecs_seen[1] > 0);
}

static void gen_ids(void)
{
    crdt_sv *sv = crdt_sv_new();
    crdt_ds *ds = crdt_ds_new();
    FZ_CHECK(sv && ds);
    FZ_OK(crdt_sv_set(sv, 0, 1));
    FZ_OK(crdt_sv_set(sv, 23, 24));
    FZ_OK(crdt_sv_set(sv, 0x10000, 0x100));
    FZ_OK(crdt_sv_set(sv, UINT64_MAX, CRDT_CLOCK_MAX - 1));
    put_sv("sv-edges", sv);
    FZ_OK(crdt_ds_add(ds, 0, 0, 1));
    FZ_OK(crdt_ds_add(ds, 0, 2, 22));
    FZ_OK(crdt_ds_add(ds, 0, 100, 1000));
    FZ_OK(crdt_ds_add(ds, 1u << 20, 5, 5));
    FZ_OK(crdt_ds_add(ds, UINT64_MAX, CRDT_CLOCK_MAX - 1, 1));
    put_ds("ds-edges", ds);
    crdt_sv_free(sv);
    crdt_ds_free(ds);
}

static void gen_cbor(void)
{
    static const uint8_t items[] = {
        0x8a,                                              /* array(10) */
        0x00, 0x17, 0x18, 0x18,                            /* 0, 23, 24 */
        0x1b, 0x80, 0,    0,    0,    0,    0,    0,    0, /* 2^63 */
        0x20, 0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,    /* -1, -2^64 */
        0xff, 0xff,                                        /* */
        0x43, 'a',  'b',  'c',                             /* bytes */
        0x62, 0xc3, 0xa9,                                  /* text "é" */
        0xa1, 0x01, 0xf6,                                  /* {1: null} */
        0xc1, 0x1a, 0x5f, 0x00, 0x00, 0x00,                /* tag 1 (epoch) */
        0xf9, 0x3c, 0x00,                                  /* 1.0 half */
        0xf4,                                              /* false */
    };
    static const uint8_t scalars[] = {
        0xf5, 0xf7, 0xfa, 0x3f, 0x80, 0x00, 0x00, 0xfb, 0x40, 0x09, 0x21,
        0xfb, 0x54, 0x44, 0x2d, 0x18, 0xd8, 0x20, 0x63, 'u',  'r',  'i',
    };
    static const uint8_t nested[] = {0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81,
                                     0xa1, 0x00, 0x82, 0xc2, 0x41, 0x01, 0x80};
    static const uint8_t varints[] = {0x00, 0x7f, 0x80, 0x01, 0xff, 0xff, 0xff, 0xff,
                                      0x0f, 0x80, 0x80, 0x80, 0x80, 0x10, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t rejected[] = {0x9f, 0x01, 0xff, 0x5f, 0x41, 0x00, 0xff, 0xf8, 0x20};
    put_cbor("items", 66, items, sizeof items);
    put_cbor("scalars", 2, scalars, sizeof scalars);
    put_cbor("nested-depth10", 12, nested, sizeof nested);
    put_cbor("nested-depth4", 6, nested, sizeof nested);
    put_cbor("varints", 0x1b, varints, sizeof varints);
    put_cbor("rejected", 66, rejected, sizeof rejected);
}

/* put_ot - the wire form of op after fuzz_ot's decode-mode byte */
static void put_ot(const char *name, const ot_op *op)
{
    tbuf b;
    tbuf_init(&b, 0);
    FZ_OK(tbuf_append(&b, "\0", 1));
    FZ_OK(ot_op_encode(op, &b));
    ot_op *back = NULL;
    FZ_OK(ot_op_decode(b.data + 1, b.len - 1, &back));
    FZ_CHECK(ot_op_equal(back, op));
    ot_op_free(back);
    put("fuzz_ot", name, b.data, b.len);
    tbuf_fini(&b);
}

static void gen_ot(void)
{
    ot_op *op = NULL;
    FZ_OK(ot_op_new(&op));
    put_ot("empty", op);
    FZ_OK(ot_op_retain(op, 3));
    FZ_OK(ot_op_insert(op, "ab", 2));
    FZ_OK(ot_op_delete(op, 2));
    put_ot("retain-insert-delete", op);
    ot_op_clear(op);
    FZ_OK(ot_op_insert(op, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    FZ_OK(ot_op_retain(op, 40000));
    FZ_OK(ot_op_delete(op, 70000));
    put_ot("multibyte-long", op);
    ot_op_free(op);
    /* not normalized on the wire: delete before insert, neighbours of one kind */
    static const uint8_t denorm[] = {0, 0x85, 0x02, 0x03, 0x21, 0x61, 0x78, 0x61, 0x79};
    put("fuzz_ot", "denormal", denorm, sizeof denorm);
    static const uint8_t bad[] = {0, 0x82, 0x00, 0x60};
    put("fuzz_ot", "zero-retain-empty-insert", bad, sizeof bad);
    /* edit scripts: base length, then op a, op b, op c */
    static const uint8_t s1[] = {1,    12,   0,    1,    2,    3,    4,    5,    0,    1,    2,
                                 3,    4,    5,    6,    0x10, 0x21, 3,    0x0e, 0x09, 0x05, 4,
                                 0x21, 0x02, 0x15, 0x08, 5,    0x05, 0x11, 2,    0x0d, 0x01, 0x02};
    put("fuzz_ot", "script-1", s1, sizeof s1);
    static const uint8_t s2[] = {
        3,    31,   5,  5,    5,    4,    4,    4,    3,    3,    3,    2,    2,    2,
        1,    1,    1,  0,    0,    0,    5,    4,    3,    2,    1,    0,    5,    4,
        3,    2,    1,  0,    11,   0x1e, 0x1d, 0x1f, 0x06, 0x05, 0x2d, 0x1c, 0x01, 0x02,
        0x03, 0x0a, 11, 0x1d, 0x1d, 0x05, 0x01, 0x1e, 0x2e, 0x03, 0x06, 0x09, 0x0c, 0x10};
    put("fuzz_ot", "script-2", s2, sizeof s2);
}

/* aw_rec - append a fuzz_awareness record */
static void aw_rec(tbuf *b, uint8_t ctl, const uint8_t *p, size_t n)
{
    uint8_t h[3] = {ctl, (uint8_t)(n >> 8), (uint8_t)n};
    FZ_OK(tbuf_append(b, h, 3));
    FZ_OK(tbuf_append(b, p, n));
}

static void gen_awareness(void)
{
    aw_state *x = NULL, *y = NULL;
    tbuf u, v, s;
    tbuf_init(&u, 0);
    tbuf_init(&v, 0);
    tbuf_init(&s, 0);
    FZ_OK(aw_new(7, &x));
    FZ_OK(aw_new(9, &y));
    FZ_OK(aw_set_local(x, (const uint8_t *)"{\"cursor\":3}", 12, 10));
    FZ_OK(aw_encode_local(x, &u));
    FZ_OK(aw_set_local(y, (const uint8_t *)"{\"name\":\"ann\"}", 14, 10));
    FZ_OK(aw_apply(y, u.data, u.len, 11, NULL));
    FZ_OK(aw_encode(y, NULL, 0, &v)); /* two entries */
    uint64_t gone = 7;
    FZ_OK(aw_remove_clients(y, &gone, 1, 12));
    tbuf rm;
    tbuf_init(&rm, 0);
    FZ_OK(aw_encode(y, &gone, 1, &rm)); /* [7, clock, null] */

    /* small caps, local client 2: apply, renew, set, remove, apply the removal */
    FZ_OK(tbuf_append(&s, "\x03", 1));
    aw_rec(&s, 0, u.data, u.len);
    aw_rec(&s, 0, v.data, v.len);
    aw_rec(&s, 2, (const uint8_t *)"me", 2);
    aw_rec(&s, 1, (const uint8_t *)"\x10", 1); /* 16 s: renews the local entry */
    aw_rec(&s, 0, rm.data, rm.len);
    aw_rec(&s, 3, (const uint8_t *)"\x09\x02", 2);
    put("fuzz_awareness", "apply-remove", s.data, s.len);
    /* default caps, local client 7 (contested by x's entry), then a timeout */
    tbuf_reset(&s);
    FZ_OK(tbuf_append(&s, "\x0c", 1));
    aw_rec(&s, 0, v.data, v.len);
    aw_rec(&s, 1, (const uint8_t *)"(", 1); /* 40 s: expires y */
    aw_rec(&s, 0, u.data, u.len);
    put("fuzz_awareness", "contest-timeout", s.data, s.len);
    /* malformed: a client listed twice, then a good update */
    tbuf_reset(&s);
    FZ_OK(tbuf_append(&s, "\x01", 1));
    static const uint8_t twice[] = {0x82, 0x83, 0x05, 0x01, 0xf6, 0x83, 0x05, 0x02, 0xf6};
    aw_rec(&s, 0, twice, sizeof twice);
    aw_rec(&s, 0, u.data, u.len);
    put("fuzz_awareness", "twice-then-good", s.data, s.len);
    aw_free(x);
    aw_free(y);
    tbuf_fini(&u);
    tbuf_fini(&v);
    tbuf_fini(&s);
    tbuf_fini(&rm);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    fz_base_init();
    gen_updates();
    gen_snapshots();
    gen_ids();
    gen_cbor();
    gen_ot();
    gen_awareness();
    return 0;
}
