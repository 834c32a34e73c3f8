/* ot.c - the ot_op value: storage, normalizing builders, accessors, apply and
 * the CBOR wire form. compose / transform / invert are in ot_transform.c and
 * use only the public interface.
 *
 * Storage: components in one array, the inserted text of all inserts in one
 * byte arena in component order (component i's text is text[off, off+nbytes)).
 * The builders only ever touch the last insert, and a delete carries no text,
 * so new text is always appended at the end of the arena, also when an insert
 * is placed before a trailing delete.
 *
 * Invariants: no component is empty; no two neighbours share a kind; a delete
 * is never directly followed by an insert; base = sum of retains and deletes
 * <= OT_MAX_LEN; target = sum of retains and inserts <= OT_MAX_LEN;
 * nc <= OT_MAX_COMPONENTS; tlen <= OT_MAX_TEXT_BYTES.
 */
#include "ot.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_rd.h"
#include "utf8.h"

/* All caps fit 32 bits, so a component is 16 bytes. */
_Static_assert(OT_MAX_LEN <= UINT32_MAX, "lengths fit uint32_t");
_Static_assert(OT_MAX_TEXT_BYTES <= UINT32_MAX, "text offsets fit uint32_t");
_Static_assert(OT_MAX_COMPONENTS <= OT_MAX_LEN, "counts fit");

typedef struct ot_rec {
    uint32_t n;      /* code points */
    uint32_t off;    /* insert: offset of the text in the arena */
    uint32_t nbytes; /* insert: bytes of text */
    uint8_t kind;    /* ot_kind */
} ot_rec;

struct ot_op {
    ot_rec *c; /* components */
    size_t nc, cc;
    char *text; /* insert text arena */
    size_t tlen, tcap;
    size_t base, target; /* lengths in code points */
};

#define OT_MIN_COMPS 8
#define OT_MIN_TEXT  64

tdm_err ot_op_new(ot_op **out)
{
    assert(out);
    ot_op *op = calloc(1, sizeof *op);
    if (!op) return TDM_ENOMEM;
    *out = op;
    return TDM_OK;
}

void ot_op_free(ot_op *op)
{
    if (!op) return;
    free(op->c);
    free(op->text);
    free(op);
}

void ot_op_clear(ot_op *op)
{
    assert(op);
    op->nc = 0;
    op->tlen = 0;
    op->base = 0;
    op->target = 0;
}

tdm_err ot_op_clone(const ot_op *src, ot_op **out)
{
    assert(src && out);
    ot_op *op = calloc(1, sizeof *op);
    if (!op) return TDM_ENOMEM;
    if (src->nc) {
        op->c = malloc(src->nc * sizeof *op->c);
        if (!op->c) goto fail;
        memcpy(op->c, src->c, src->nc * sizeof *op->c);
        op->nc = op->cc = src->nc;
    }
    if (src->tlen) {
        op->text = malloc(src->tlen);
        if (!op->text) goto fail;
        memcpy(op->text, src->text, src->tlen);
        op->tlen = op->tcap = src->tlen;
    }
    op->base = src->base;
    op->target = src->target;
    *out = op;
    return TDM_OK;
fail:
    ot_op_free(op);
    return TDM_ENOMEM;
}

/* ------------------------------------------------------------ growth */

/* Room for `extra` more components (TDM_ETOOBIG past OT_MAX_COMPONENTS). */
static tdm_err grow_comps(ot_op *op, size_t extra)
{
    if (extra > OT_MAX_COMPONENTS - op->nc) return TDM_ETOOBIG;
    size_t need = op->nc + extra;
    if (need <= op->cc) return TDM_OK;
    size_t ncap = op->cc < OT_MIN_COMPS ? OT_MIN_COMPS : op->cc;
    while (ncap < need) ncap *= 2;
    if (ncap > OT_MAX_COMPONENTS) ncap = OT_MAX_COMPONENTS;
    ot_rec *nc = realloc(op->c, ncap * sizeof *nc);
    if (!nc) return TDM_ENOMEM;
    op->c = nc;
    op->cc = ncap;
    return TDM_OK;
}

/* Room for `extra` more text bytes (TDM_ETOOBIG past OT_MAX_TEXT_BYTES). */
static tdm_err grow_text(ot_op *op, size_t extra)
{
    if (extra > OT_MAX_TEXT_BYTES - op->tlen) return TDM_ETOOBIG;
    size_t need = op->tlen + extra;
    if (need <= op->tcap) return TDM_OK;
    size_t ncap = op->tcap < OT_MIN_TEXT ? OT_MIN_TEXT : op->tcap;
    while (ncap < need) ncap *= 2;
    if (ncap > OT_MAX_TEXT_BYTES) ncap = OT_MAX_TEXT_BYTES;
    char *nt = realloc(op->text, ncap);
    if (!nt) return TDM_ENOMEM;
    op->text = nt;
    op->tcap = ncap;
    return TDM_OK;
}

static ot_rec *last(const ot_op *op)
{
    return op->nc ? &op->c[op->nc - 1] : NULL;
}

/* ---------------------------------------------------------- builders */

tdm_err ot_op_retain(ot_op *op, size_t n)
{
    assert(op);
    if (n == 0) return TDM_OK;
    if (n > OT_MAX_LEN - op->base || n > OT_MAX_LEN - op->target) return TDM_ETOOBIG;
    ot_rec *l = last(op);
    if (l && l->kind == OT_RETAIN) {
        l->n += (uint32_t)n;
    } else {
        tdm_err e = grow_comps(op, 1);
        if (e) return e;
        op->c[op->nc++] = (ot_rec){.n = (uint32_t)n, .kind = OT_RETAIN};
    }
    op->base += n;
    op->target += n;
    return TDM_OK;
}

tdm_err ot_op_delete(ot_op *op, size_t n)
{
    assert(op);
    if (n == 0) return TDM_OK;
    if (n > OT_MAX_LEN - op->base) return TDM_ETOOBIG;
    ot_rec *l = last(op);
    if (l && l->kind == OT_DELETE) {
        l->n += (uint32_t)n;
    } else {
        tdm_err e = grow_comps(op, 1);
        if (e) return e;
        op->c[op->nc++] = (ot_rec){.n = (uint32_t)n, .kind = OT_DELETE};
    }
    op->base += n;
    return TDM_OK;
}

tdm_err ot_op_insert(ot_op *op, const char *text, size_t nbytes)
{
    assert(op);
    if (nbytes == 0) return TDM_OK;
    assert(text);
    size_t cps;
    if (!utf8_validate((const uint8_t *)text, nbytes, &cps, NULL)) return TDM_EUTF8;
    if (cps > OT_MAX_LEN - op->target) return TDM_ETOOBIG;

    /* Where the text goes: the last insert, the insert before a trailing
     * delete, or a new component (before a trailing delete, else at the end). */
    ot_rec *into = NULL;
    size_t at = op->nc;
    ot_rec *l = last(op);
    if (l && l->kind == OT_INSERT) {
        into = l;
    } else if (l && l->kind == OT_DELETE) {
        if (op->nc >= 2 && op->c[op->nc - 2].kind == OT_INSERT)
            into = &op->c[op->nc - 2];
        else
            at = op->nc - 1;
    }
    tdm_err e = grow_text(op, nbytes);
    if (e) return e;
    if (!into) {
        e = grow_comps(op, 1);
        if (e) return e;
    }

    /* Nothing fails from here on. */
    if (into) {
        into->n += (uint32_t)cps;
        into->nbytes += (uint32_t)nbytes;
    } else {
        if (at < op->nc) op->c[at + 1] = op->c[at]; /* move the trailing delete */
        op->c[at] = (ot_rec){.n = (uint32_t)cps,
                             .off = (uint32_t)op->tlen,
                             .nbytes = (uint32_t)nbytes,
                             .kind = OT_INSERT};
        op->nc++;
    }
    memcpy(op->text + op->tlen, text, nbytes);
    op->tlen += nbytes;
    op->target += cps;
    return TDM_OK;
}

/* --------------------------------------------------------- accessors */

size_t ot_op_count(const ot_op *op)
{
    assert(op);
    return op->nc;
}

tdm_err ot_op_get(const ot_op *op, size_t i, ot_comp *c)
{
    assert(op && c);
    if (i >= op->nc) return TDM_ERANGE;
    const ot_rec *r = &op->c[i];
    c->kind = (ot_kind)r->kind;
    c->n = r->n;
    c->text = r->kind == OT_INSERT ? op->text + r->off : NULL;
    c->nbytes = r->kind == OT_INSERT ? r->nbytes : 0;
    return TDM_OK;
}

size_t ot_op_base_len(const ot_op *op)
{
    assert(op);
    return op->base;
}

size_t ot_op_target_len(const ot_op *op)
{
    assert(op);
    return op->target;
}

bool ot_op_is_noop(const ot_op *op)
{
    assert(op);
    return op->nc == 0 || (op->nc == 1 && op->c[0].kind == OT_RETAIN);
}

bool ot_op_equal(const ot_op *a, const ot_op *b)
{
    assert(a && b);
    if (a->nc != b->nc || a->base != b->base || a->target != b->target || a->tlen != b->tlen)
        return false;
    for (size_t i = 0; i < a->nc; i++) {
        const ot_rec *x = &a->c[i], *y = &b->c[i];
        if (x->kind != y->kind || x->n != y->n) return false;
        if (x->kind == OT_INSERT &&
            (x->nbytes != y->nbytes || memcmp(a->text + x->off, b->text + y->off, x->nbytes)))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------- apply */

tdm_err ot_op_apply(const ot_op *op, const char *text, size_t n, tbuf *out)
{
    assert(op && out && (text || n == 0));
    const uint8_t *p = (const uint8_t *)text;
    size_t cps;
    if (!utf8_validate(p, n, &cps, NULL)) return TDM_EUTF8;
    if (cps != op->base) return TDM_EBASELEN;

    size_t mark = out->len, pos = 0;
    tdm_err e = TDM_OK;
    for (size_t i = 0; i < op->nc && !e; i++) {
        const ot_rec *r = &op->c[i];
        size_t b;
        switch (r->kind) {
        case OT_RETAIN:
            b = utf8_skip(p + pos, n - pos, r->n);
            e = tbuf_append(out, p + pos, b);
            pos += b;
            break;
        case OT_INSERT:
            e = tbuf_append(out, op->text + r->off, r->nbytes);
            break;
        default: /* OT_DELETE */
            pos += utf8_skip(p + pos, n - pos, r->n);
            break;
        }
    }
    assert(e || pos == n);
    if (e) out->len = mark;
    return e;
}

/* --------------------------------------------------------- wire form */

tdm_err ot_op_encode(const ot_op *op, tbuf *out)
{
    assert(op && out);
    size_t mark = out->len;
    tdm_err e = tbuf_cbor_array(out, op->nc);
    for (size_t i = 0; i < op->nc && !e; i++) {
        const ot_rec *r = &op->c[i];
        if (r->kind == OT_RETAIN)
            e = tbuf_cbor_uint(out, r->n);
        else if (r->kind == OT_INSERT)
            e = tbuf_cbor_text(out, op->text + r->off, r->nbytes);
        else
            e = tbuf_cbor_int(out, -(int64_t)r->n);
    }
    if (e) out->len = mark;
    return e;
}

/* One component from the reader into op. */
static tdm_err decode_comp(cbr *r, ot_op *op)
{
    switch (cbr_peek(r)) {
    case CBR_UINT: {
        uint64_t v;
        if (cbr_uint(r, &v)) return TDM_EMALFORMED;
        if (v == 0) return TDM_EMALFORMED;
        if (v > OT_MAX_LEN) return TDM_ETOOBIG;
        return ot_op_retain(op, (size_t)v);
    }
    case CBR_NEGINT: {
        /* A complete negative-integer head (cbr_peek checked it) that
         * cbr_int refuses is below INT64_MIN: far past OT_MAX_LEN. */
        int64_t v;
        if (cbr_int(r, &v)) return TDM_ETOOBIG;
        uint64_t len = (uint64_t)(-(v + 1)) + 1; /* CBOR -1 is delete 1 */
        if (len > OT_MAX_LEN) return TDM_ETOOBIG;
        return ot_op_delete(op, (size_t)len);
    }
    case CBR_TEXT: {
        const uint8_t *s;
        size_t nb;
        if (cbr_text(r, &s, &nb)) return TDM_EMALFORMED;
        if (nb == 0) return TDM_EMALFORMED;
        return ot_op_insert(op, (const char *)s, nb);
    }
    default:
        return TDM_EMALFORMED;
    }
}

tdm_err ot_op_decode(const uint8_t *p, size_t n, ot_op **out)
{
    assert(out && (p || n == 0));
    cbr r;
    cbr_init(&r, p, n);
    size_t count;
    if (cbr_array(&r, &count)) return TDM_EMALFORMED;
    if (count > OT_MAX_COMPONENTS) return TDM_ETOOBIG;

    ot_op *op;
    tdm_err e = ot_op_new(&op);
    if (e) return e;
    for (size_t i = 0; i < count && !e; i++) e = decode_comp(&r, op);
    if (!e && cbr_finish(&r)) e = TDM_EMALFORMED;
    if (e) {
        ot_op_free(op);
        return e;
    }
    *out = op;
    return TDM_OK;
}
