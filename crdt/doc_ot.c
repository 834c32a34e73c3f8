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
    doc_dset da = {0}, db = {0};
    ot_op *op = NULL;
    tdm_err e = va ? TDM_OK : TDM_ENOMEM;
    uint32_t *vb = va ? va + d->nclients : NULL;
    if (!e) e = sv_to_clocks(d, a, va);
    if (!e) e = sv_to_clocks(d, b, vb);
    if (!e) e = doc_dset_build(d, va, &da);
    if (!e) e = doc_dset_build(d, vb, &db);
    if (!e) e = ot_op_new(&op);
    for (uint32_t x = e ? NONE32 : tree_first(d); x != NONE32 && !e; x = tree_next(d, x)) {
        const item *it = &d->items[x];
        uint32_t c = it->client, k = it->clock, end = it->clock + it->len;
        const uint8_t *p = it->content == NONE32 ? NULL : d->text + it->content;
        while (k < end && !e) {
            bool dela, delb;
            uint32_t ra = doc_dset_run(&da, c, k, end, &dela),
                     rb = doc_dset_run(&db, c, k, end, &delb);
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
