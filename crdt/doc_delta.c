/* doc_delta.c - change deltas: every change (a local edit, an applied update
 * with any pending operations it releases, a loaded snapshot) is reported to
 * the document's observer as one OT operation on the visible text.
 *
 * While a change runs, the items it inserts are marked NEW and the visible
 * items it deletes GONE (splits copy the mark; items with different marks never
 * merge). At the end the marked items are put in document order and the
 * operation is read off them: retain the unchanged text between them, insert
 * NEW text, delete GONE text. Items both NEW and GONE cancel out. The cost is
 * O(k log n) for k marked items, independent of the document size.
 */
#include "doc_internal.h"
#include "ot.h"
#include "utf8.h"

#include <stdlib.h>

#define MARKED_MAX 0x7ffffff0u

void crdt_doc_observe(crdt_doc *d, crdt_doc_observer_fn fn, void *ctx)
{
    d->obs_fn = fn;
    d->obs_ctx = ctx;
}

void doc_mark(crdt_doc *d, uint32_t x, uint8_t m)
{
    d->items[x].mark |= m;
    if (d->nmarked == d->cmarked) {
        uint32_t nc = d->cmarked ? d->cmarked * 2 : 64;
        uint32_t *nm = nc <= MARKED_MAX ? realloc(d->marked, nc * sizeof(uint32_t)) : NULL;
        if (!nm) { /* cannot record: report this change as failed */
            d->obs_err = TDM_ENOMEM;
            return;
        }
        d->marked = nm;
        d->cmarked = nc;
    }
    d->marked[d->nmarked++] = x;
}

void doc_txn_begin(crdt_doc *d)
{
    if (!d->obs_fn) return;
    d->txn_open = 1;
    d->nmarked = 0;
    d->obs_err = TDM_OK;
}

typedef struct mk {
    size_t order; /* index in document order (all characters) */
    uint32_t x;
} mk;

static int mk_cmp(const void *a, const void *b)
{
    const mk *p = a, *q = b;
    return p->order < q->order ? -1 : p->order > q->order;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t p = *(const uint32_t *)a, q = *(const uint32_t *)b;
    return p < q ? -1 : p > q;
}

static tdm_err build(crdt_doc *d, ot_op *out)
{
    if (d->nmarked) qsort(d->marked, d->nmarked, sizeof(uint32_t), u32_cmp);
    mk *v = malloc((d->nmarked ? d->nmarked : 1) * sizeof(mk));
    if (!v) return TDM_ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->nmarked; i++) {
        uint32_t x = d->marked[i];
        if (i && x == d->marked[i - 1]) continue;
        const item *it = &d->items[x];
        /* released items have len 0; NEW+GONE and unmarked ones change nothing */
        if (it->len == 0 || it->mark == 0 || it->mark == (MARK_NEW | MARK_GONE)) continue;
        if ((it->mark & MARK_NEW) && it->deleted) continue; /* a tombstone */
        v[n++] = (mk){tree_index(d, x), x};
    }
    qsort(v, n, sizeof(mk), mk_cmp);
    tdm_err e = TDM_OK;
    size_t cur = 0; /* visible characters of the new text consumed so far */
    for (uint32_t i = 0; i < n && !e; i++) {
        uint32_t x = v[i].x;
        tree_splay(d, x);
        const item *it = &d->items[x];
        size_t before = it->l != NONE32 ? d->items[it->l].svis : 0;
        e = ot_op_retain(out, before - cur);
        if (e) break;
        if (it->mark & MARK_NEW) {
            e = ot_op_insert(out, (const char *)d->text + it->content, it->nbytes);
            cur = before + it->len;
        } else {
            e = ot_op_delete(out, it->len);
            cur = before;
        }
    }
    if (!e) e = ot_op_retain(out, d->len_cp - cur);
    free(v);
    return e;
}

void doc_report_local(crdt_doc *d, size_t pos, const char *text, size_t n, size_t del)
{
    /* a local edit is one splice: no marking needed */
    tdm_err e = d->delta ? TDM_OK : ot_op_new(&d->delta);
    if (!e) {
        ot_op_clear(d->delta);
        e = ot_op_retain(d->delta, pos);
    }
    if (!e && del) e = ot_op_delete(d->delta, del);
    if (!e && n) e = ot_op_insert(d->delta, text, n);
    if (!e)
        e = ot_op_retain(d->delta,
                         d->len_cp - pos - (text ? utf8_count((const uint8_t *)text, n) : 0));
    d->obs_fn(d->obs_ctx, e ? NULL : d->delta, e, true);
}

void doc_txn_end(crdt_doc *d, bool local)
{
    if (!d->txn_open) return;
    d->txn_open = 0;
    tdm_err e = d->obs_err;
    if (!e && !d->delta) e = ot_op_new(&d->delta);
    if (!e) {
        ot_op_clear(d->delta);
        e = build(d, d->delta);
    }
    for (uint32_t i = 0; i < d->nmarked; i++) d->items[d->marked[i]].mark = 0;
    /* marks kept new runs apart from the text around them: merge them now */
    for (uint32_t i = 0; i < d->nmarked; i++) {
        uint32_t x = d->marked[i];
        if (d->items[x].len == 0) continue; /* released by an earlier merge */
        doc_try_merge(d, x, tree_next(d, x));
        doc_try_merge(d, tree_prev(d, x), x);
    }
    d->nmarked = 0;
    if (d->cmarked > 4096) {
        free(d->marked);
        d->marked = NULL;
        d->cmarked = 0;
    }
    if (e) {
        d->obs_fn(d->obs_ctx, NULL, e, local);
    } else if (!ot_op_is_noop(d->delta)) {
        d->obs_fn(d->obs_ctx, d->delta, TDM_OK, local);
    }
}
