/* doc_delete.c - applying a delete operation: mark the target characters
 * deleted (splitting items at the range ends) and log the operation. */
#include "doc_internal.h"

tdm_err doc_apply_delete(crdt_doc *d, const dop *o0)
{
    dop o = *o0;
    dclient *cl = &d->clients[o.client];
    if (o.clock + o.len <= cl->next) return TDM_OK;
    if (o.clock > cl->next) return TDM_EINVAL;
    if (o.clock < cl->next) {
        uint32_t k = cl->next - o.clock;
        o.ak = o.back ? o.ak - k : o.ak + k;
        o.clock += k;
        o.len -= k;
    }
    tdm_err e = doc_dele_add(d, o.client, o.clock, o.len, o.ac, o.ak, o.back);
    if (e) return e;
    d->clients[o.client].next = o.clock + o.len;
    uint32_t lo = o.back ? o.ak - (o.len - 1) : o.ak;
    uint64_t end = (uint64_t)lo + o.len; /* exclusive */
    uint64_t k = lo;
    while (k < end) {
        uint32_t x = doc_find_id(d, o.ac, (uint32_t)k, NULL), y;
        if (x == NONE32) { /* not a character: skip to the next one */
            const eidx *ix = &d->clients[o.ac].ents;
            epos p = eidx_lower(d, ix, (uint32_t)k);
            if (!eidx_valid(ix, p)) break;
            k = eidx_at(ix, p)->clock;
            continue;
        }
        uint32_t off = (uint32_t)k - d->items[x].clock;
        if (off > 0) {
            e = doc_split(d, x, off, &y);
            if (e) return e;
            x = y;
        }
        if (d->items[x].clock + (uint64_t)d->items[x].len > end) {
            e = doc_split(d, x, (uint32_t)(end - d->items[x].clock), &y);
            if (e) return e;
        }
        k = d->items[x].clock + (uint64_t)d->items[x].len;
        if (!d->items[x].deleted) {
            doc_mark_deleted(d, x);
            doc_try_merge(d, x, tree_next(d, x));
            doc_try_merge(d, tree_prev(d, x), x);
        }
    }
    return TDM_OK;
}
