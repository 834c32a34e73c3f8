/* fuzz_ot.c - libFuzzer harness for the OT operations of crdt/ot.h.
 *
 * Byte 0 picks the mode:
 *   even: ot_op_decode of the rest (untrusted wire bytes).
 *     - the result is TDM_OK or one of the documented errors (TDM_EMALFORMED,
 *       TDM_EUTF8, TDM_ETOOBIG), and nothing is allocated on error;
 *     - decode -> encode -> decode gives an equal operation and re-encoding it
 *       gives identical bytes (the encoding of a decoded operation is
 *       canonical);
 *     - the decoded operation is in normal form: rebuilding it component by
 *       component through the builders gives an equal operation (normal form
 *       is idempotent), no component is empty, no two neighbours have one
 *       kind and no delete is followed by an insert;
 *     - its base and target lengths are the sums of its components.
 *   odd: a script of random edits decoded from the rest: a base text S of
 *     0..31 code points (ASCII, two-byte and four-byte characters), two
 *     concurrent operations a and b on S and an operation c on apply(a, S).
 *     - TP1: apply(apply(S, a), transform(b, a, RIGHT)) ==
 *            apply(apply(S, b), transform(a, b, LEFT)), and transform_pair
 *       gives the same two operations;
 *     - compose: apply(S, compose(a, c)) == apply(apply(S, a), c), the
 *       result is normalized, compose with an identity is the operation;
 *     - invert: apply(apply(S, a), invert(a, S)) == S;
 *     - ot_op_apply refuses a text of the wrong length (TDM_EBASELEN) and
 *       leaves the output untouched; compose of mismatched lengths is
 *       TDM_EBASELEN and writes nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ot.h"
#include "error.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* A byte reader over the input that returns zeros when it runs out. */
typedef struct fo_rd {
    const uint8_t *p;
    size_t n, i;
} fo_rd;

static uint8_t fo_byte(fo_rd *r)
{
    return r->i < r->n ? r->p[r->i++] : 0;
}

static const char *const fo_chars[] = {
    "a", "b", "c", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
#define FO_NCHARS (sizeof fo_chars / sizeof fo_chars[0])

/* fo_text - append k code points picked by the reader to t */
static void fo_text(fo_rd *r, size_t k, tbuf *t)
{
    for (size_t i = 0; i < k; i++) {
        const char *c = fo_chars[fo_byte(r) % FO_NCHARS];
        FZ_OK(tbuf_append(t, c, strlen(c)));
    }
}

/* fo_op - a random operation with base length `base` */
static ot_op *fo_op(fo_rd *r, size_t base)
{
    ot_op *op = NULL;
    tbuf ins;
    FZ_OK(ot_op_new(&op));
    tbuf_init(&ins, 1 << 16);
    size_t left = base;
    unsigned steps = fo_byte(r) % 12;
    for (unsigned s = 0; s < steps; s++) {
        uint8_t b = fo_byte(r);
        size_t k = (size_t)(b >> 2) % 8 + 1;
        switch (b & 3) {
        case 0:
        case 3: /* retain */
            if (k > left) k = left;
            FZ_OK(ot_op_retain(op, k));
            left -= k;
            break;
        case 1: /* insert */
            tbuf_reset(&ins);
            fo_text(r, k % 4 + 1, &ins);
            FZ_OK(ot_op_insert(op, (const char *)ins.data, ins.len));
            break;
        case 2: /* delete */
            if (k > left) k = left;
            FZ_OK(ot_op_delete(op, k));
            left -= k;
            break;
        }
    }
    FZ_OK(ot_op_retain(op, left)); /* the trailing retain is significant */
    tbuf_fini(&ins);
    FZ_CHECK(ot_op_base_len(op) == base);
    return op;
}

/* fo_check_normal - op is in normal form and its lengths are its components'
 * sums; rebuilding it through the builders gives an equal operation. */
static void fo_check_normal(const ot_op *op)
{
    ot_op *re = NULL;
    size_t base = 0, target = 0, count = ot_op_count(op);
    ot_kind prev = 0;
    bool noop = true;
    FZ_OK(ot_op_new(&re));
    for (size_t i = 0; i < count; i++) {
        ot_comp c;
        FZ_OK(ot_op_get(op, i, &c));
        FZ_CHECK(c.n >= 1);
        FZ_CHECK(c.kind != prev);
        FZ_CHECK(!(prev == OT_DELETE && c.kind == OT_INSERT));
        switch (c.kind) {
        case OT_RETAIN:
            base += c.n;
            target += c.n;
            FZ_CHECK(c.text == NULL && c.nbytes == 0);
            FZ_OK(ot_op_retain(re, c.n));
            break;
        case OT_INSERT: {
            target += c.n;
            noop = false;
            FZ_CHECK(c.text != NULL && c.nbytes >= c.n);
            tbuf t;
            tbuf_init(&t, 0);
            FZ_OK(tbuf_append(&t, c.text, c.nbytes));
            /* the component's code point count is its text's */
            size_t cps = 0;
            for (size_t j = 0; j < c.nbytes; j++) cps += (t.data[j] & 0xC0) != 0x80;
            FZ_CHECK(cps == c.n);
            FZ_OK(ot_op_insert(re, c.text, c.nbytes));
            tbuf_fini(&t);
            break;
        }
        case OT_DELETE:
            base += c.n;
            noop = false;
            FZ_CHECK(c.text == NULL && c.nbytes == 0);
            FZ_OK(ot_op_delete(re, c.n));
            break;
        default:
            fz_fail(__FILE__, __LINE__, "component kind is retain, insert or delete", NULL);
        }
        prev = c.kind;
    }
    ot_comp none;
    FZ_CHECK(ot_op_get(op, count, &none) == TDM_ERANGE);
    FZ_CHECK(ot_op_base_len(op) == base);
    FZ_CHECK(ot_op_target_len(op) == target);
    FZ_CHECK(ot_op_is_noop(op) == noop);
    FZ_CHECK(ot_op_equal(op, re));
    FZ_CHECK(ot_op_count(re) == count);
    ot_op_free(re);
}

static void fo_decode_mode(const uint8_t *p, size_t n)
{
    ot_op *op = (ot_op *)0x1; /* must stay untouched on error */
    tdm_err e = ot_op_decode(p, n, &op);
    if (e != TDM_OK) {
        FZ_CHECK(e == TDM_EMALFORMED || e == TDM_EUTF8 || e == TDM_ETOOBIG);
        FZ_CHECK(op == (ot_op *)0x1);
        return;
    }
    fo_check_normal(op);

    tbuf enc, enc2;
    tbuf_init(&enc, 0);
    tbuf_init(&enc2, 0);
    FZ_OK(ot_op_encode(op, &enc));
    ot_op *back = NULL;
    FZ_OK(ot_op_decode(enc.data, enc.len, &back));
    FZ_CHECK(ot_op_equal(op, back));
    FZ_OK(ot_op_encode(back, &enc2));
    FZ_CHECK(fz_buf_eq(&enc, &enc2));

    /* the clone is equal and independent */
    ot_op *cl = NULL;
    FZ_OK(ot_op_clone(op, &cl));
    FZ_CHECK(ot_op_equal(cl, op));
    ot_op_clear(cl);
    FZ_CHECK(ot_op_count(cl) == 0 && ot_op_base_len(cl) == 0 && ot_op_target_len(cl) == 0);
    FZ_CHECK(ot_op_count(op) == ot_op_count(back));

    ot_op_free(cl);
    ot_op_free(back);
    ot_op_free(op);
    tbuf_fini(&enc);
    tbuf_fini(&enc2);
}

/* fo_apply - apply op to t; must succeed */
static void fo_apply(const ot_op *op, const tbuf *t, tbuf *out)
{
    tbuf_reset(out);
    FZ_OK(ot_op_apply(op, (const char *)t->data, t->len, out));
}

static void fo_script_mode(const uint8_t *p, size_t n)
{
    fo_rd r = {p, n, 0};
    tbuf s, sa, sb, sab, sba, t1, t2, bad;
    tbuf_init(&s, 0);
    tbuf_init(&sa, 0);
    tbuf_init(&sb, 0);
    tbuf_init(&sab, 0);
    tbuf_init(&sba, 0);
    tbuf_init(&t1, 0);
    tbuf_init(&t2, 0);
    tbuf_init(&bad, 0);

    size_t len = fo_byte(&r) % 32;
    fo_text(&r, len, &s);
    ot_op *a = fo_op(&r, len);
    ot_op *b = fo_op(&r, len);
    fo_check_normal(a);
    fo_check_normal(b);
    fo_apply(a, &s, &sa);
    fo_apply(b, &s, &sb);
    ot_op *c = fo_op(&r, ot_op_target_len(a));

    /* TP1 */
    ot_op *a2 = NULL, *b2 = NULL, *a3 = NULL, *b3 = NULL;
    FZ_OK(ot_op_transform(a, b, OT_LEFT, &a2));
    FZ_OK(ot_op_transform(b, a, OT_RIGHT, &b2));
    fo_check_normal(a2);
    fo_check_normal(b2);
    fo_apply(b2, &sa, &sab);
    fo_apply(a2, &sb, &sba);
    FZ_CHECK(fz_buf_eq(&sab, &sba));
    FZ_OK(ot_op_transform_pair(a, b, OT_LEFT, &a3, &b3));
    FZ_CHECK(ot_op_equal(a2, a3) && ot_op_equal(b2, b3));
    /* transform over a no-op is the operation itself */
    ot_op *id = NULL, *aid = NULL;
    FZ_OK(ot_op_new(&id));
    FZ_OK(ot_op_retain(id, len));
    FZ_OK(ot_op_transform(a, id, OT_LEFT, &aid));
    FZ_CHECK(ot_op_equal(aid, a));

    /* compose */
    ot_op *ac = NULL, *aid2 = NULL;
    FZ_OK(ot_op_compose(a, c, &ac));
    fo_check_normal(ac);
    FZ_CHECK(ot_op_base_len(ac) == len && ot_op_target_len(ac) == ot_op_target_len(c));
    fo_apply(c, &sa, &t1);
    fo_apply(ac, &s, &t2);
    FZ_CHECK(fz_buf_eq(&t1, &t2));
    FZ_OK(ot_op_compose(id, a, &aid2));
    FZ_CHECK(ot_op_equal(aid2, a));
    if (ot_op_target_len(a) != ot_op_base_len(b)) {
        ot_op *no = (ot_op *)0x1;
        FZ_CHECK(ot_op_compose(a, b, &no) == TDM_EBASELEN);
        FZ_CHECK(no == (ot_op *)0x1);
    }

    /* invert */
    ot_op *inv = NULL;
    FZ_OK(ot_op_invert(a, (const char *)s.data, s.len, &inv));
    fo_check_normal(inv);
    fo_apply(inv, &sa, &t1);
    FZ_CHECK(fz_buf_eq(&t1, &s));

    /* wrong base length: refused, output untouched */
    FZ_OK(tbuf_append(&bad, "xy", 2));
    FZ_OK(tbuf_append(&bad, s.data, s.len));
    FZ_OK(tbuf_append(&t2, "q", 1));
    size_t before = t2.len;
    FZ_CHECK(ot_op_apply(a, (const char *)bad.data, bad.len, &t2) == TDM_EBASELEN);
    FZ_CHECK(t2.len == before);

    /* every produced operation round-trips through the wire form */
    const ot_op *all[] = {a, b, c, a2, b2, ac, inv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tbuf_reset(&t1);
        FZ_OK(ot_op_encode(all[i], &t1));
        ot_op *back = NULL;
        FZ_OK(ot_op_decode(t1.data, t1.len, &back));
        FZ_CHECK(ot_op_equal(back, all[i]));
        ot_op_free(back);
    }

    ot_op_free(a);
    ot_op_free(b);
    ot_op_free(c);
    ot_op_free(a2);
    ot_op_free(b2);
    ot_op_free(a3);
    ot_op_free(b3);
    ot_op_free(id);
    ot_op_free(aid);
    ot_op_free(aid2);
    ot_op_free(ac);
    ot_op_free(inv);
    tbuf_fini(&s);
    tbuf_fini(&sa);
    tbuf_fini(&sb);
    tbuf_fini(&sab);
    tbuf_fini(&sba);
    tbuf_fini(&t1);
    tbuf_fini(&t2);
    tbuf_fini(&bad);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    if ((data[0] & 1) == 0)
        fo_decode_mode(data + 1, size - 1);
    else
        fo_script_mode(data + 1, size - 1);
    return 0;
}
