/* ot_transform.c - compose, transform and invert (the ot.js algorithms over
 * code points). Built only on the public ot_op interface: a cursor walks an
 * operation's components and hands out pieces of them (splitting insert text
 * at code-point boundaries); results are assembled with the normalizing
 * builders, so they come out normalized. Each runs in time linear in the
 * components and bytes of its inputs.
 */
#include "ot.h"

#include <assert.h>
#include <stdint.h>

#include "utf8.h"

/* A read position inside an operation: component i, `used` code points and
 * `used_b` bytes of it already handed out. kind 0 means the end. */
typedef struct ot_cur {
    const ot_op *op;
    size_t i, count;
    ot_comp c;
    size_t used, used_b;
} ot_cur;

static void cur_load(ot_cur *k)
{
    k->used = k->used_b = 0;
    if (k->i < k->count) {
        tdm_err e = ot_op_get(k->op, k->i, &k->c);
        assert(!e);
        (void)e;
    } else {
        k->c = (ot_comp){0};
    }
}

static void cur_init(ot_cur *k, const ot_op *op)
{
    k->op = op;
    k->i = 0;
    k->count = ot_op_count(op);
    cur_load(k);
}

/* Kind of the current component, 0 at the end. */
static int cur_kind(const ot_cur *k)
{
    return (int)k->c.kind;
}

static size_t cur_left(const ot_cur *k)
{
    return k->c.n - k->used;
}

/* cur_take - hand out up to `max` code points of the current component and
 * move past them. For an insert, *text / *nbytes get the piece's bytes. */
static size_t cur_take(ot_cur *k, size_t max, const char **text, size_t *nbytes)
{
    assert(k->c.kind);
    size_t left = cur_left(k), take = max < left ? max : left;
    if (k->c.kind == OT_INSERT) {
        assert(text && nbytes);
        const char *s = k->c.text + k->used_b;
        size_t rem = k->c.nbytes - k->used_b;
        size_t b = take == left ? rem : utf8_skip((const uint8_t *)s, rem, take);
        *text = s;
        *nbytes = b;
        k->used_b += b;
    }
    k->used += take;
    if (k->used == k->c.n) {
        k->i++;
        cur_load(k);
    }
    return take;
}

tdm_err ot_op_compose(const ot_op *a, const ot_op *b, ot_op **out)
{
    assert(a && b && out);
    if (ot_op_target_len(a) != ot_op_base_len(b)) return TDM_EBASELEN;
    ot_op *r;
    tdm_err e = ot_op_new(&r);
    if (e) return e;

    ot_cur ka, kb;
    cur_init(&ka, a);
    cur_init(&kb, b);
    const char *t = NULL;
    size_t nb = 0;
    for (;;) {
        int ta = cur_kind(&ka), tb = cur_kind(&kb);
        if (ta == OT_DELETE) {
            /* a deleted it; b never sees it */
            e = ot_op_delete(r, cur_take(&ka, SIZE_MAX, NULL, NULL));
        } else if (tb == OT_INSERT) {
            /* b's inserts do not touch a's output */
            cur_take(&kb, SIZE_MAX, &t, &nb);
            e = ot_op_insert(r, t, nb);
        } else if (!ta || !tb) {
            assert(!ta && !tb); /* equal lengths: both end together */
            break;
        } else if (ta == OT_RETAIN) {
            size_t n = cur_take(&ka, cur_left(&kb), NULL, NULL);
            cur_take(&kb, n, NULL, NULL);
            e = tb == OT_RETAIN ? ot_op_retain(r, n) : ot_op_delete(r, n);
        } else { /* a inserts, b retains or deletes that text */
            size_t n = cur_take(&ka, cur_left(&kb), &t, &nb);
            cur_take(&kb, n, NULL, NULL);
            if (tb == OT_RETAIN) e = ot_op_insert(r, t, nb);
        }
        if (e) {
            ot_op_free(r);
            return e;
        }
    }
    *out = r;
    return TDM_OK;
}

tdm_err ot_op_transform(const ot_op *a, const ot_op *b, ot_side side, ot_op **a_prime)
{
    assert(a && b && a_prime && (side == OT_LEFT || side == OT_RIGHT));
    if (ot_op_base_len(a) != ot_op_base_len(b)) return TDM_EBASELEN;
    ot_op *r;
    tdm_err e = ot_op_new(&r);
    if (e) return e;

    ot_cur ka, kb;
    cur_init(&ka, a);
    cur_init(&kb, b);
    const char *t = NULL;
    size_t nb = 0;
    for (;;) {
        int ta = cur_kind(&ka), tb = cur_kind(&kb);
        if (ta == OT_INSERT && (side == OT_LEFT || tb != OT_INSERT)) {
            cur_take(&ka, SIZE_MAX, &t, &nb);
            e = ot_op_insert(r, t, nb);
        } else if (tb == OT_INSERT) {
            /* b's text is in the new base: step over it */
            e = ot_op_retain(r, cur_take(&kb, SIZE_MAX, &t, &nb));
        } else if (!ta || !tb) {
            assert(!ta && !tb);
            break;
        } else {
            size_t n = cur_take(&ka, cur_left(&kb), NULL, NULL);
            cur_take(&kb, n, NULL, NULL);
            /* text b deleted is gone for a' too (a delete of it is dropped) */
            if (tb == OT_RETAIN) e = ta == OT_RETAIN ? ot_op_retain(r, n) : ot_op_delete(r, n);
        }
        if (e) {
            ot_op_free(r);
            return e;
        }
    }
    *a_prime = r;
    return TDM_OK;
}

tdm_err ot_op_transform_pair(const ot_op *a, const ot_op *b, ot_side a_side, ot_op **a_prime,
                             ot_op **b_prime)
{
    assert(a_prime && b_prime);
    ot_op *ap, *bp;
    tdm_err e = ot_op_transform(a, b, a_side, &ap);
    if (e) return e;
    e = ot_op_transform(b, a, a_side == OT_LEFT ? OT_RIGHT : OT_LEFT, &bp);
    if (e) {
        ot_op_free(ap);
        return e;
    }
    *a_prime = ap;
    *b_prime = bp;
    return TDM_OK;
}

tdm_err ot_op_invert(const ot_op *op, const char *text, size_t n, ot_op **inv)
{
    assert(op && inv && (text || n == 0));
    const uint8_t *p = (const uint8_t *)text;
    size_t cps;
    if (!utf8_validate(p, n, &cps, NULL)) return TDM_EUTF8;
    if (cps != ot_op_base_len(op)) return TDM_EBASELEN;
    ot_op *r;
    tdm_err e = ot_op_new(&r);
    if (e) return e;

    size_t pos = 0, count = ot_op_count(op);
    for (size_t i = 0; i < count && !e; i++) {
        ot_comp c;
        e = ot_op_get(op, i, &c);
        assert(!e);
        size_t b;
        switch (c.kind) {
        case OT_RETAIN:
            pos += utf8_skip(p + pos, n - pos, c.n);
            e = ot_op_retain(r, c.n);
            break;
        case OT_INSERT:
            e = ot_op_delete(r, c.n);
            break;
        default: /* OT_DELETE: put the deleted text back */
            b = utf8_skip(p + pos, n - pos, c.n);
            e = ot_op_insert(r, text + pos, b);
            pos += b;
            break;
        }
    }
    if (e) {
        ot_op_free(r);
        return e;
    }
    *inv = r;
    return TDM_OK;
}
