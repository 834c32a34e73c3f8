/* doc_ents.c - the per-client id index: clock -> item, as a two-level blocked
 * array (sorted blocks of at most EBLK entries under a sorted block table), so
 * splitting or merging items costs a small memmove however large the index. */
#include "doc_internal.h"

#include <stdlib.h>
#include <string.h>

#define EBLK_FILL (EBLK * 3 / 4)

static uint32_t ent_end(const crdt_doc *d, const ent *e)
{
    return e->clock + d->items[e->item].len;
}

/* index of the last block whose first clock is <= clock, or NONE32 */
static uint32_t block_of(const eidx *x, uint32_t clock)
{
    const uint32_t *f = x->first;
    uint32_t nb = x->nb, h = x->hint;
    if (nb == 0 || f[0] > clock) return NONE32;
    if (h < nb && f[h] <= clock && (h + 1 == nb || f[h + 1] > clock)) return h;
    if (f[nb - 1] <= clock) return nb - 1;
    uint32_t lo = 0, hi = nb - 1; /* f[lo] <= clock < f[hi] */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (f[mid] <= clock)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void set_first(eidx *x, uint32_t b)
{
    x->first[b] = x->b[b]->e[0].clock;
}

int eidx_find(const crdt_doc *d, eidx *x, uint32_t clock, epos *pos)
{
    uint32_t b = block_of(x, clock);
    if (b == NONE32) return 0;
    const eblk *k = x->b[b];
    uint32_t lo, hi = k->n;
    uint32_t h = b == x->hint ? x->hint_i : hi;
    if (h < hi && k->e[h].clock <= clock && (h + 1 == hi || k->e[h + 1].clock > clock)) {
        lo = h; /* same entry as last time */
    } else if (h + 1 < hi && k->e[h + 1].clock <= clock &&
               (h + 2 == hi || k->e[h + 2].clock > clock)) {
        lo = h + 1; /* the next one */
    } else if (k->e[hi - 1].clock <= clock) {
        lo = hi - 1;
    } else {
        lo = 0; /* last entry with clock <= clock */
        while (hi - lo > 1) {
            uint32_t mid = (lo + hi) / 2;
            if (k->e[mid].clock <= clock)
                lo = mid;
            else
                hi = mid;
        }
    }
    if (clock >= ent_end(d, &k->e[lo])) return 0;
    x->hint = b;
    x->hint_i = lo;
    pos->b = b;
    pos->i = lo;
    return 1;
}

epos eidx_lower(const crdt_doc *d, const eidx *x, uint32_t clock)
{
    epos p = {0, 0};
    if (x->nb) { /* the common case: asking about the newest operations */
        const eblk *last = x->b[x->nb - 1];
        if (ent_end(d, &last->e[last->n - 1]) <= clock) return (epos){x->nb, 0};
    }
    uint32_t b = block_of(x, clock);
    if (b == NONE32) return p;
    const eblk *k = x->b[b];
    uint32_t lo = 0, hi = k->n; /* first entry with end > clock */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (ent_end(d, &k->e[mid]) <= clock)
            lo = mid + 1;
        else
            hi = mid;
    }
    p.b = b;
    p.i = lo;
    if (lo == k->n) {
        p.b++;
        p.i = 0;
    }
    return p;
}

static tdm_err add_block(eidx *x, uint32_t at, eblk **out)
{
    if (x->nb == x->cb) {
        uint32_t nc = x->cb ? x->cb * 2 : 4;
        eblk **nb = realloc(x->b, nc * sizeof(eblk *));
        if (!nb) return TDM_ENOMEM;
        x->b = nb;
        uint32_t *nf = realloc(x->first, nc * sizeof(uint32_t));
        if (!nf) return TDM_ENOMEM;
        x->first = nf;
        x->cb = nc;
    }
    eblk *k = malloc(sizeof(eblk));
    if (!k) return TDM_ENOMEM;
    k->n = 0;
    memmove(&x->b[at + 1], &x->b[at], (x->nb - at) * sizeof(eblk *));
    memmove(&x->first[at + 1], &x->first[at], (x->nb - at) * sizeof(uint32_t));
    x->b[at] = k;
    x->first[at] = 0; /* set by the caller once the block holds entries */
    x->nb++;
    *out = k;
    return TDM_OK;
}

tdm_err eidx_insert_after(eidx *x, epos p, ent v)
{
    eblk *k = x->b[p.b];
    uint32_t at = p.i + 1;
    if (k->n == EBLK) { /* split the full block in two halves */
        eblk *nk;
        tdm_err e = add_block(x, p.b + 1, &nk);
        if (e) return e;
        k = x->b[p.b];
        uint32_t half = EBLK / 2;
        memcpy(nk->e, &k->e[half], (EBLK - half) * sizeof(ent));
        nk->n = EBLK - half;
        k->n = half;
        set_first(x, p.b + 1);
        if (at > half) {
            k = nk;
            at -= half;
            p.b++;
        }
    }
    memmove(&k->e[at + 1], &k->e[at], (k->n - at) * sizeof(ent));
    k->e[at] = v;
    k->n++;
    set_first(x, p.b);
    x->count++;
    return TDM_OK;
}

tdm_err eidx_append(eidx *x, ent v)
{
    eblk *k = x->nb ? x->b[x->nb - 1] : NULL;
    if (!k || k->n == EBLK) {
        tdm_err e = add_block(x, x->nb, &k);
        if (e) return e;
    }
    k->e[k->n++] = v;
    set_first(x, x->nb - 1);
    x->count++;
    return TDM_OK;
}

void eidx_remove(eidx *x, epos p)
{
    eblk *k = x->b[p.b];
    memmove(&k->e[p.i], &k->e[p.i + 1], (k->n - p.i - 1) * sizeof(ent));
    k->n--;
    x->count--;
    if (k->n == 0) {
        free(k);
        memmove(&x->b[p.b], &x->b[p.b + 1], (x->nb - p.b - 1) * sizeof(eblk *));
        memmove(&x->first[p.b], &x->first[p.b + 1], (x->nb - p.b - 1) * sizeof(uint32_t));
        x->nb--;
    } else {
        set_first(x, p.b);
    }
}

tdm_err eidx_from_sorted(eidx *x, const ent *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i += EBLK_FILL) {
        eblk *k;
        tdm_err e = add_block(x, x->nb, &k);
        if (e) return e;
        k->n = n - i < EBLK_FILL ? n - i : EBLK_FILL;
        memcpy(k->e, &v[i], k->n * sizeof(ent));
        set_first(x, x->nb - 1);
        x->count += k->n;
    }
    return TDM_OK;
}

void eidx_free(eidx *x)
{
    for (uint32_t i = 0; i < x->nb; i++) free(x->b[i]);
    free(x->b);
    free(x->first);
    memset(x, 0, sizeof *x);
}

size_t eidx_mem(const eidx *x)
{
    return (size_t)x->nb * sizeof(eblk) + (size_t)x->cb * (sizeof(eblk *) + sizeof(uint32_t));
}
