/* doc_ot.c - the bridge between OT operations and the CRDT: apply an OT
 * operation as local edits, and compute the OT operation between two versions
 * of a document named by state vectors. */
#include "doc_internal.h"
#include "ot.h"
#include "utf8.h"

#include <stdlib.h>

tdm_err crdt_doc_apply_ot(crdt_doc *d, const ot_op *op)
{
    if (ot_op_base_len(op) != d->len_cp) return TDM_EBASELEN;
    crdt_doc_observer_fn fn = d->obs_fn;
    d->obs_fn = NULL; /* report the whole operation once, below */
    tdm_err e = TDM_OK;
    size_t pos = 0, n = ot_op_count(op);
    for (size_t i = 0; i < n && !e; i++) {
        ot_comp c;
        ot_op_get(op, i, &c);
        if (c.kind == OT_RETAIN) {
            pos += c.n;
        } else if (c.kind == OT_INSERT) {
            e = crdt_doc_insert(d, pos, c.text, c.nbytes);
            pos += c.n;
        } else {
            e = crdt_doc_delete(d, pos, c.n);
        }
    }
    d->obs_fn = fn;
    if (fn && !ot_op_is_noop(op)) fn(d->obs_ctx, e ? NULL : op, e, true);
    return e;
}

tdm_err crdt_doc_apply_ot_as(crdt_doc *d, uint64_t client, const ot_op *op)
{
    if (ot_op_base_len(op) != d->len_cp) return TDM_EBASELEN;
    uint32_t idx, self = d->self;
    tdm_err e = doc_client_index(d, client, &idx);
    if (e) return e;
    d->self = idx; /* local edits are made with this client's ids */
    e = crdt_doc_apply_ot(d, op);
    d->self = self;
    return e;
}

/* ---------- the operation between two versions ---------- */

typedef struct drange {
    uint32_t c, lo, hi; /* client index, clocks [lo, hi) */
} drange;

static int drange_cmp(const void *a, const void *b)
{
    const drange *x = a, *y = b;
    if (x->c != y->c) return x->c < y->c ? -1 : 1;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* the ids deleted by the delete operations inside version v, sorted, merged */
typedef struct dset {
    drange *v;
    size_t n;
} dset;

static tdm_err dset_build(crdt_doc *d, const uint32_t *v, dset *out)
{
    size_t cap = 0;
    for (uint32_t c = 0; c < d->nclients; c++) cap += d->clients[c].ndels;
    out->v = malloc((cap ? cap : 1) * sizeof(drange));
    out->n = 0;
    if (!out->v) return TDM_ENOMEM;
    for (uint32_t c = 0; c < d->nclients; c++) {
        const dclient *cl = &d->clients[c];
        for (uint32_t i = 0; i < cl->ndels; i++) {
            const dele *r = &cl->dels[i];
            if (r->clock >= v[c]) break;
            uint32_t m = v[c] - r->clock < r->len ? v[c] - r->clock : r->len;
            uint32_t lo = r->back ? r->tk - (m - 1) : r->tk;
            out->v[out->n++] = (drange){r->tc, lo, lo + m};
        }
    }
    qsort(out->v, out->n, sizeof(drange), drange_cmp);
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (k && out->v[k - 1].c == out->v[i].c && out->v[i].lo <= out->v[k - 1].hi) {
            if (out->v[i].hi > out->v[k - 1].hi) out->v[k - 1].hi = out->v[i].hi;
        } else {
            out->v[k++] = out->v[i];
        }
    }
    out->n = k;
    return TDM_OK;
}

/* number of clocks from k on (up to end) that are deleted / not deleted in s:
 * returns the length of the run starting at k with constant state, *del set */
static uint32_t dset_run(const dset *s, uint32_t c, uint32_t k, uint32_t end, bool *del)
{
    size_t lo = 0, hi = s->n; /* first range with (c, hi) > (c, k) */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const drange *r = &s->v[mid];
        if (r->c < c || (r->c == c && r->hi <= k))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n && s->v[lo].c == c && s->v[lo].lo <= k) {
        *del = true;
        return (s->v[lo].hi < end ? s->v[lo].hi : end) - k;
    }
    *del = false;
    if (lo < s->n && s->v[lo].c == c && s->v[lo].lo < end) return s->v[lo].lo - k;
    return end - k;
}

static tdm_err sv_to_clocks(crdt_doc *d, const crdt_sv *sv, uint32_t *v)
{
    for (uint32_t c = 0; c < d->nclients; c++) {
        v[c] = crdt_sv_get(sv, d->clients[c].id);
        if (v[c] > d->clients[c].next) return TDM_ENOTFOUND; /* we lack that version */
    }
    for (size_t i = 0; i < crdt_sv_count(sv); i++) {
        uint64_t id;
        uint32_t clock;
        crdt_sv_entry(sv, i, &id, &clock);
        if (clock && doc_client_find(d, id) < 0) return TDM_ENOTFOUND;
    }
    return TDM_OK;
}

tdm_err crdt_doc_ot_between(crdt_doc *d, const crdt_sv *a, const crdt_sv *b, ot_op **out)
{
    uint32_t *va = malloc(2 * (size_t)d->nclients * sizeof(uint32_t));
    dset da = {0}, db = {0};
    ot_op *op = NULL;
    tdm_err e = va ? TDM_OK : TDM_ENOMEM;
    uint32_t *vb = va ? va + d->nclients : NULL;
    if (!e) e = sv_to_clocks(d, a, va);
    if (!e) e = sv_to_clocks(d, b, vb);
    if (!e) e = dset_build(d, va, &da);
    if (!e) e = dset_build(d, vb, &db);
    if (!e) e = ot_op_new(&op);
    for (uint32_t x = e ? NONE32 : tree_first(d); x != NONE32 && !e; x = tree_next(d, x)) {
        const item *it = &d->items[x];
        uint32_t c = it->client, k = it->clock, end = it->clock + it->len;
        const uint8_t *p = it->content == NONE32 ? NULL : d->text + it->content;
        while (k < end && !e) {
            bool dela, delb;
            uint32_t ra = dset_run(&da, c, k, end, &dela), rb = dset_run(&db, c, k, end, &delb);
            uint32_t run = ra < rb ? ra : rb;
            /* inserted in a version: clock below its entry; split at that edge too */
            if (k < va[c] && va[c] < k + run) run = va[c] - k;
            if (k < vb[c] && vb[c] < k + run) run = vb[c] - k;
            bool in_a = k < va[c] && !dela, in_b = k < vb[c] && !delb;
            if (in_a && in_b) {
                e = ot_op_retain(op, run);
            } else if (in_a) {
                e = ot_op_delete(op, run);
            } else if (in_b) {
                if (!p) {
                    e = TDM_ENOTFOUND; /* that text was garbage-collected */
                } else {
                    uint32_t off = k - it->clock;
                    size_t s = item_skip(d, it, off), t = item_skip(d, it, off + run);
                    e = ot_op_insert(op, (const char *)p + s, t - s);
                }
            }
            k += run;
        }
    }
    free(va);
    free(da.v);
    free(db.v);
    if (e) {
        ot_op_free(op);
        return e;
    }
    *out = op;
    return TDM_OK;
}
