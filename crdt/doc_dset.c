/* doc_dset.c - the set of deleted character ids read off the delete logs
 * (all of them, or those a version holds), for version reads and snapshot
 * checks. */
#include "doc_internal.h"

#include <stdlib.h>

static int drange_cmp(const void *a, const void *b)
{
    const drange *x = a, *y = b;
    if (x->c != y->c) return x->c < y->c ? -1 : 1;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

tdm_err doc_dset_build(crdt_doc *d, const uint32_t *v, doc_dset *out)
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
            uint32_t m = r->len;
            if (v) {
                if (r->clock >= v[c]) break;
                if (v[c] - r->clock < m) m = v[c] - r->clock;
            }
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
uint32_t doc_dset_run(const doc_dset *s, uint32_t c, uint32_t k, uint32_t end, bool *del)
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
