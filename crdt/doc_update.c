/* doc_update.c - updates: diff (encode what a remote lacks), decode through the
 * validating reader, and apply with pending operations held in bounds.
 *
 * Update (CBOR):
 *   [1, [client-id ...], [block ...]]
 *   block  = [client-index, first-clock, [op ...]]   ops take consecutive clocks
 *   insert = [origin-left, origin-right, text]       one clock per code point
 *   tomb   = [origin-left, origin-right, length]     collected deleted text
 *   delete = [target, signed-length]                 >0: target, target+1, ...
 *                                                    <0: target, target-1, ...
 *   origin = null | clock (same client as the block) | [client-index, clock]
 *   target = clock (same client as the block) | [client-index, clock]
 */
#include "doc_internal.h"
#include "cbor_rd.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#define UPDATE_VERSION 1

typedef struct oplist {
    dop *v;
    size_t n, cap, limit;
} oplist;

static tdm_err ops_push(oplist *l, const dop *o)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        if (nc > l->limit) nc = l->limit;
        if (l->n >= nc) return TDM_ETOOBIG;
        dop *nv = realloc(l->v, nc * sizeof(dop));
        if (!nv) return TDM_ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *o;
    return TDM_OK;
}

/* scratch - make *p hold at least `need` elements (reused across calls). */
static tdm_err scratch(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return TDM_OK;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return TDM_ENOMEM;
    *p = np;
    *cap = nc;
    return TDM_OK;
}

static void scratch_trim(crdt_doc *d)
{
    if (d->sc_ops_cap > SCRATCH_KEEP) {
        free(d->sc_ops);
        d->sc_ops = NULL;
        d->sc_ops_cap = 0;
    }
    if (d->sc_u32_cap > 2 * SCRATCH_KEEP) {
        free(d->sc_u32);
        d->sc_u32 = NULL;
        d->sc_u32_cap = 0;
    }
    if (d->sc_ids_cap > SCRATCH_KEEP) {
        free(d->sc_ids);
        d->sc_ids = NULL;
        d->sc_ids_cap = 0;
    }
}

/* ---------- diff ---------- */

static uint32_t dele_at_or_after(const dclient *cl, uint32_t k)
{
    uint32_t lo = 0, hi = cl->ndels;
    if (hi == 0 || cl->dels[hi - 1].clock + cl->dels[hi - 1].len <= k) return hi; /* recent */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (cl->dels[mid].clock + cl->dels[mid].len <= k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static tdm_err collect_client(crdt_doc *d, uint32_t c, uint32_t from, uint32_t to, oplist *out)
{
    const dclient *cl = &d->clients[c];
    epos ei = eidx_lower(d, &cl->ents, from);
    uint32_t di = dele_at_or_after(cl, from);
    uint32_t cur = from;
    while (cur < to) {
        dop o = {0};
        o.client = c;
        o.clock = cur;
        if (eidx_valid(&cl->ents, ei) && eidx_at(&cl->ents, ei)->clock <= cur) {
            const item *it = &d->items[eidx_at(&cl->ents, ei)->item];
            uint32_t s = cur - it->clock;
            uint32_t end = it->clock + it->len < to ? it->clock + it->len : to;
            o.len = end - cur;
            o.kind = it->content == NONE32 ? OP_TOMB : OP_INS;
            if (s > 0) {
                o.ac = c;
                o.ak = cur - 1;
            } else {
                o.ac = it->olc;
                o.ak = it->olk;
            }
            o.bc = it->orc;
            o.bk = it->ork;
            if (o.kind == OP_INS) {
                const uint8_t *p = d->text + it->content;
                size_t a = item_skip(d, it, s);
                size_t b = item_skip(d, it, s + o.len);
                o.text = p + a;
                o.nbytes = (uint32_t)(b - a);
            }
            eidx_next(&cl->ents, &ei);
            /* continue the previous insert when this piece extends its run */
            if (out->n && s == 0) {
                dop *pv = &out->v[out->n - 1];
                if (pv->client == c && pv->kind == o.kind && pv->clock + pv->len == cur &&
                    o.ac == c && o.ak == cur - 1 && o.bc == pv->bc && o.bk == pv->bk &&
                    (o.kind == OP_TOMB || pv->text + pv->nbytes == o.text)) {
                    pv->len += o.len;
                    pv->nbytes += o.nbytes;
                    cur = end;
                    continue;
                }
            }
            cur = end;
        } else if (di < cl->ndels && cl->dels[di].clock <= cur) {
            const dele *dl = &cl->dels[di];
            uint32_t s = cur - dl->clock;
            uint32_t end = dl->clock + dl->len < to ? dl->clock + dl->len : to;
            o.kind = OP_DEL;
            o.len = end - cur;
            o.back = (uint8_t)dl->back;
            o.ac = dl->tc;
            o.ak = dl->back ? dl->tk - s : dl->tk + s;
            di++;
            cur = end;
        } else {
            return TDM_EINVAL; /* a hole in the log: cannot happen */
        }
        tdm_err e = ops_push(out, &o);
        if (e) return e;
    }
    return TDM_OK;
}

static tdm_err enc_ref(tbuf *b, const uint32_t *map, uint32_t block_c, uint32_t c, uint32_t k,
                       int nullable)
{
    tdm_err e;
    if (c == NONE32 && nullable) return tbuf_cbor_null(b);
    if (c == block_c) return tbuf_cbor_uint(b, k);
    if ((e = tbuf_cbor_array(b, 2))) return e;
    if ((e = tbuf_cbor_uint(b, map[c]))) return e;
    return tbuf_cbor_uint(b, k);
}

static tdm_err encode_ops(crdt_doc *d, const oplist *l, tbuf *b)
{
    tdm_err e = TDM_OK;
    if ((e = scratch((void **)&d->sc_u32, &d->sc_u32_cap, 2 * (size_t)d->nclients,
                     sizeof(uint32_t))))
        return e;
    uint32_t *map = d->sc_u32, *ids = d->sc_u32 + d->nclients;
    for (uint32_t i = 0; i < d->nclients; i++) map[i] = NONE32;
    uint32_t nids = 0, nblocks = 0;
#define USE(c)                                                                                     \
    do {                                                                                           \
        if ((c) != NONE32 && map[(c)] == NONE32) {                                                 \
            map[(c)] = nids;                                                                       \
            ids[nids++] = (c);                                                                     \
        }                                                                                          \
    } while (0)
    for (size_t i = 0; i < l->n; i++) {
        const dop *o = &l->v[i];
        if (i == 0 || o->client != l->v[i - 1].client) nblocks++;
        USE(o->client);
        USE(o->ac);
        if (o->kind != OP_DEL) USE(o->bc);
    }
#undef USE
    size_t start = b->len;
    if ((e = tbuf_cbor_array(b, 3)) || (e = tbuf_cbor_uint(b, UPDATE_VERSION)) ||
        (e = tbuf_cbor_array(b, nids)))
        goto fail;
    for (uint32_t i = 0; i < nids; i++)
        if ((e = tbuf_cbor_uint(b, d->clients[ids[i]].id))) goto fail;
    if ((e = tbuf_cbor_array(b, nblocks))) goto fail;
    for (size_t i = 0; i < l->n;) {
        size_t j = i;
        while (j < l->n && l->v[j].client == l->v[i].client) j++;
        uint32_t c = l->v[i].client;
        if ((e = tbuf_cbor_array(b, 3)) || (e = tbuf_cbor_uint(b, map[c])) ||
            (e = tbuf_cbor_uint(b, l->v[i].clock)) || (e = tbuf_cbor_array(b, j - i)))
            goto fail;
        for (; i < j; i++) {
            const dop *o = &l->v[i];
            if (o->kind == OP_DEL) {
                if ((e = tbuf_cbor_array(b, 2)) || (e = enc_ref(b, map, c, o->ac, o->ak, 0)) ||
                    (e = tbuf_cbor_int(b, o->back ? -(int64_t)o->len : (int64_t)o->len)))
                    goto fail;
                continue;
            }
            if ((e = tbuf_cbor_array(b, 3)) || (e = enc_ref(b, map, c, o->ac, o->ak, 1)) ||
                (e = enc_ref(b, map, c, o->bc, o->bk, 1)))
                goto fail;
            e = o->kind == OP_INS ? tbuf_cbor_text(b, o->text, o->nbytes)
                                  : tbuf_cbor_uint(b, o->len);
            if (e) goto fail;
        }
    }
    goto out;
fail:
    b->len = start;
out:
    return e;
}

tdm_err crdt_doc_diff_range(crdt_doc *d, const crdt_sv *remote, const crdt_sv *upto, tbuf *out)
{
    oplist l = {d->sc_ops, 0, d->sc_ops_cap, SIZE_MAX / sizeof(dop)};
    tdm_err e = TDM_OK;
    for (uint32_t bi = 0; bi < d->nclients && !e; bi++) {
        uint32_t c = d->by_id[bi];
        uint32_t from = remote ? crdt_sv_get(remote, d->clients[c].id) : 0;
        uint32_t to = d->clients[c].next;
        if (upto) {
            uint32_t u = crdt_sv_get(upto, d->clients[c].id);
            if (u < to) to = u;
        }
        if (from < to) e = collect_client(d, c, from, to, &l);
    }
    d->sc_ops = l.v;
    d->sc_ops_cap = l.cap;
    if (!e) e = encode_ops(d, &l, out);
    scratch_trim(d);
    return e;
}

tdm_err crdt_doc_diff(crdt_doc *d, const crdt_sv *remote, tbuf *out)
{
    return crdt_doc_diff_range(d, remote, NULL, out);
}

/* ---------- decode ---------- */

static tdm_err dec_ref(cbr *r, uint32_t nclients, uint32_t block_c, uint32_t *c, uint32_t *k,
                       int nullable)
{
    uint64_t v, cc;
    size_t n;
    tdm_err e;
    switch (cbr_peek(r)) {
    case CBR_NULL:
        if (!nullable) return TDM_EMALFORMED;
        *c = NONE32;
        *k = 0;
        return cbr_null(r);
    case CBR_UINT:
        if ((e = cbr_uint(r, &v))) return e;
        if (v >= CRDT_CLOCK_MAX) return TDM_EMALFORMED;
        *c = block_c;
        *k = (uint32_t)v;
        return TDM_OK;
    case CBR_ARRAY:
        if ((e = cbr_array(r, &n))) return e;
        if (n != 2) return TDM_EMALFORMED;
        if ((e = cbr_uint(r, &cc)) || (e = cbr_uint(r, &v))) return e;
        if (cc >= nclients || v >= CRDT_CLOCK_MAX) return TDM_EMALFORMED;
        *c = (uint32_t)cc;
        *k = (uint32_t)v;
        return TDM_OK;
    default:
        return TDM_EMALFORMED;
    }
}

/* decode - parse and validate an update; ops name update client indices. */
static tdm_err decode(crdt_doc *d, const uint8_t *p, size_t n, uint64_t **ids_out,
                      uint32_t *nids_out, oplist *ops)
{
    cbr r;
    size_t cnt, nblocks;
    uint64_t v;
    tdm_err e;
    uint64_t *ids = NULL;
    cbr_init(&r, p, n);
    if ((e = cbr_array(&r, &cnt))) return e;
    if (cnt != 3) return TDM_EMALFORMED;
    if ((e = cbr_uint(&r, &v))) return e;
    if (v != UPDATE_VERSION) return TDM_EVERSION;
    if ((e = cbr_array(&r, &cnt))) return e;
    if (cnt > CRDT_MAX_CLIENTS) return TDM_ETOOBIG;
    if ((e = scratch((void **)&d->sc_ids, &d->sc_ids_cap, cnt ? cnt : 1, sizeof(uint64_t))))
        return e;
    ids = d->sc_ids;
    uint32_t nids = (uint32_t)cnt;
    for (uint32_t i = 0; i < nids; i++)
        if ((e = cbr_uint(&r, &ids[i]))) goto fail;
    if ((e = cbr_array(&r, &nblocks))) goto fail;
    for (size_t bi = 0; bi < nblocks; bi++) {
        uint64_t bc, clock;
        size_t nops;
        if ((e = cbr_array(&r, &cnt))) goto fail;
        if (cnt != 3) goto malformed;
        if ((e = cbr_uint(&r, &bc)) || (e = cbr_uint(&r, &clock)) || (e = cbr_array(&r, &nops)))
            goto fail;
        if (bc >= nids || clock >= CRDT_CLOCK_MAX) goto malformed;
        for (size_t oi = 0; oi < nops; oi++) {
            dop o = {0};
            o.client = (uint32_t)bc;
            o.clock = (uint32_t)clock;
            if ((e = cbr_array(&r, &cnt))) goto fail;
            if (cnt == 2) {
                int64_t sl;
                o.kind = OP_DEL;
                if ((e = dec_ref(&r, nids, o.client, &o.ac, &o.ak, 0)) || (e = cbr_int(&r, &sl)))
                    goto fail;
                if (sl == 0 || sl > (int64_t)CRDT_CLOCK_MAX || sl < -(int64_t)CRDT_CLOCK_MAX)
                    goto malformed;
                o.back = sl < 0;
                o.len = (uint32_t)(sl < 0 ? -sl : sl);
                if (o.back ? o.ak < o.len - 1 : (uint64_t)o.ak + o.len > CRDT_CLOCK_MAX)
                    goto malformed;
            } else if (cnt == 3) {
                if ((e = dec_ref(&r, nids, o.client, &o.ac, &o.ak, 1)) ||
                    (e = dec_ref(&r, nids, o.client, &o.bc, &o.bk, 1)))
                    goto fail;
                if (cbr_peek(&r) == CBR_TEXT) {
                    const uint8_t *t;
                    size_t tn, cps;
                    if ((e = cbr_text(&r, &t, &tn))) goto fail;
                    if (!utf8_validate(t, tn, &cps, NULL)) {
                        e = TDM_EUTF8;
                        goto fail;
                    }
                    o.kind = OP_INS;
                    o.text = t;
                    o.nbytes = (uint32_t)tn;
                    if (cps == 0 || cps > CRDT_CLOCK_MAX) goto malformed;
                    o.len = (uint32_t)cps;
                } else {
                    uint64_t len;
                    if ((e = cbr_uint(&r, &len))) goto fail;
                    if (len == 0 || len > CRDT_CLOCK_MAX) goto malformed;
                    o.kind = OP_TOMB;
                    o.len = (uint32_t)len;
                }
            } else {
                goto malformed;
            }
            if (clock + o.len >= CRDT_CLOCK_MAX) goto malformed;
            clock += o.len;
            if ((e = ops_push(ops, &o))) goto fail;
        }
    }
    if ((e = cbr_finish(&r))) goto fail;
    *ids_out = ids;
    *nids_out = nids;
    return TDM_OK;
malformed:
    e = TDM_EMALFORMED;
fail:
    return e;
}

/* ---------- apply ---------- */

typedef struct skey {
    uint32_t client, clock, idx;
} skey;

static int skey_cmp(const void *a, const void *b)
{
    const skey *x = a, *y = b;
    if (x->client != y->client) return x->client < y->client ? -1 : 1;
    if (x->clock != y->clock) return x->clock < y->clock ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static int op_ready(const dop *o, const uint32_t *next)
{
    if (o->kind == OP_DEL) {
        uint32_t hi = o->back ? o->ak : o->ak + o->len - 1;
        /* a deleter's own clocks from this operation on are not characters
         * (a hostile delete may name them; they are skipped when applied) */
        if (o->ac == o->client && hi >= o->clock) {
            uint32_t lo = o->back ? o->ak - (o->len - 1) : o->ak;
            if (lo >= o->clock) return 1;
            hi = o->clock - 1;
        }
        return hi < next[o->ac];
    }
    if (o->ac != NONE32 && o->ak >= next[o->ac]) return 0;
    if (o->bc != NONE32 && o->bk >= next[o->bc]) return 0;
    return 1;
}

/* plan - order the ready operations of all (pending first, then new) so each
 * one's dependencies come before it. order[] gets indices of ready ops; state[i]
 * is 1 for ready, 2 for already known, 0 for still waiting. */
static tdm_err plan(crdt_doc *d, const dop *all, uint32_t n, uint32_t *order, uint32_t *norder,
                    uint8_t *state)
{
    skey *keys = malloc((n ? n : 1) * sizeof(skey));
    uint32_t *next = malloc(d->nclients * sizeof(uint32_t));
    uint32_t *cur = malloc((d->nclients + 1) * sizeof(uint32_t));
    uint32_t *end = malloc((d->nclients + 1) * sizeof(uint32_t));
    tdm_err e = TDM_OK;
    if (!keys || !next || !cur || !end) {
        e = TDM_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) keys[i] = (skey){all[i].client, all[i].clock, i};
    qsort(keys, n, sizeof(skey), skey_cmp);
    for (uint32_t c = 0; c < d->nclients; c++) {
        next[c] = d->clients[c].next;
        cur[c] = end[c] = 0;
    }
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i, c = keys[i].client;
        while (j < n && keys[j].client == c) j++;
        cur[c] = i;
        end[c] = j;
        i = j;
    }
    memset(state, 0, n);
    *norder = 0;
    int progress = 1;
    while (progress) {
        progress = 0;
        for (uint32_t c = 0; c < d->nclients; c++) {
            while (cur[c] < end[c]) {
                const dop *o = &all[keys[cur[c]].idx];
                if (o->clock + o->len <= next[c]) {
                    state[keys[cur[c]].idx] = 2;
                    cur[c]++;
                    continue;
                }
                if (o->clock > next[c] || !op_ready(o, next)) break;
                state[keys[cur[c]].idx] = 1;
                order[(*norder)++] = keys[cur[c]].idx;
                next[c] = o->clock + o->len;
                cur[c]++;
                progress = 1;
            }
        }
    }
    /* a re-sent operation that is still waiting is held once, not twice */
    for (uint32_t i = 1; i < n; i++) {
        const dop *a = &all[keys[i - 1].idx], *b = &all[keys[i].idx];
        if (state[keys[i].idx] == 0 && state[keys[i - 1].idx] == 0 && a->client == b->client &&
            a->clock == b->clock && a->len == b->len && a->kind == b->kind)
            state[keys[i].idx] = 2;
    }
out:
    free(keys);
    free(next);
    free(cur);
    free(end);
    return e;
}

/* apply_planned - the general path: merge with the pending operations, order
 * what is ready, check the pending bound, then apply. */
static tdm_err apply_planned(crdt_doc *d, oplist *l)
{
    uint32_t *order = NULL, norder = 0;
    uint8_t *state = NULL;
    dop *all = NULL, *keep = NULL;
    tdm_err e = TDM_OK;
    uint32_t total = d->npending + (uint32_t)l->n;
    all = malloc((total ? total : 1) * sizeof(dop));
    order = malloc((total ? total : 1) * sizeof(uint32_t));
    state = malloc(total ? total : 1);
    if (!all || !order || !state) {
        e = TDM_ENOMEM;
        goto out;
    }
    if (d->npending) memcpy(all, d->pending, d->npending * sizeof(dop));
    if (l->n) memcpy(all + d->npending, l->v, l->n * sizeof(dop));
    if ((e = plan(d, all, total, order, &norder, state))) goto out;
    size_t wait_ops = 0, wait_bytes = 0;
    for (uint32_t i = 0; i < total; i++) {
        if (state[i] == 0) {
            wait_ops++;
            wait_bytes += all[i].nbytes;
        }
    }
    if (wait_ops > d->opts.max_pending_ops || wait_bytes > d->opts.max_pending_bytes) {
        e = TDM_EPENDING_FULL;
        goto out;
    }
    uint64_t chars = doc_chars(d);
    for (uint32_t i = 0; i < norder; i++)
        if (all[order[i]].kind != OP_DEL) chars += all[order[i]].len;
    if (chars > DOC_MAX_CHARS) {
        e = TDM_ETOOBIG_NOCHANGE;
        goto out;
    }
    keep = malloc((wait_ops ? wait_ops : 1) * sizeof(dop));
    if (!keep) {
        e = TDM_ENOMEM;
        goto out;
    }
    size_t nkeep = 0;
    for (uint32_t i = 0; i < total; i++) {
        if (state[i] != 0) continue;
        keep[nkeep] = all[i];
        if (i >= d->npending && all[i].nbytes) { /* new op waiting: own a copy of its text */
            uint8_t *t = malloc(all[i].nbytes);
            if (!t) {
                for (uint32_t j = 0, k = 0; j < i; j++) {
                    if (state[j] != 0) continue;
                    if (j >= d->npending && keep[k].nbytes) free((void *)keep[k].text);
                    k++;
                }
                e = TDM_ENOMEM;
                goto out;
            }
            memcpy(t, all[i].text, all[i].nbytes);
            keep[nkeep].text = t;
        }
        nkeep++;
    }
    for (uint32_t i = 0; i < norder && !e; i++) {
        const dop *o = &all[order[i]];
        e = o->kind == OP_DEL ? doc_apply_delete(d, o) : doc_integrate(d, o);
    }
    for (uint32_t i = 0; i < d->npending; i++)
        if (state[i] != 0) free((void *)all[i].text);
    free(d->pending);
    d->pending = keep;
    d->npending = d->cpending = (uint32_t)nkeep;
    keep = NULL;
    d->pending_bytes = wait_bytes;
out:
    free(keep);
    free(all);
    free(order);
    free(state);
    return e;
}

/* apply_direct - the common path: nothing pending and every operation ready in
 * the order given. Returns 1 when it applied the update, 0 to fall back. */
static int apply_direct(crdt_doc *d, const oplist *l, uint32_t *sim, tdm_err *err)
{
    if (d->npending) return 0;
    uint64_t chars = doc_chars(d);
    for (uint32_t c = 0; c < d->nclients; c++) sim[c] = d->clients[c].next;
    for (size_t i = 0; i < l->n; i++) {
        const dop *o = &l->v[i];
        if (o->clock + o->len <= sim[o->client]) continue;
        if (o->clock > sim[o->client] || !op_ready(o, sim)) return 0;
        sim[o->client] = o->clock + o->len;
        if (o->kind != OP_DEL) chars += o->len;
    }
    if (chars > DOC_MAX_CHARS) {
        *err = TDM_ETOOBIG_NOCHANGE;
        return 1;
    }
    tdm_err e = TDM_OK;
    for (size_t i = 0; i < l->n && !e; i++) {
        const dop *o = &l->v[i];
        e = o->kind == OP_DEL ? doc_apply_delete(d, o) : doc_integrate(d, o);
    }
    *err = e;
    return 1;
}

tdm_err crdt_doc_apply(crdt_doc *d, const uint8_t *p, size_t n)
{
    if (!p && n) return TDM_EINVAL;
    if (n > d->opts.max_update_bytes) return TDM_ETOOBIG;
    oplist l = {d->sc_ops, 0, d->sc_ops_cap, n / 2 + 1};
    uint64_t *ids = NULL;
    uint32_t nids = 0;
    tdm_err e = decode(d, p, n, &ids, &nids, &l);
    d->sc_ops = l.v;
    d->sc_ops_cap = l.cap;
    if (e) goto out;
    /* register only the clients its operations use (an update may not fill
     * the client table with names alone); they stay invisible until they
     * hold operations */
    if ((e = scratch((void **)&d->sc_u32, &d->sc_u32_cap, (size_t)nids * 2 + d->nclients,
                     sizeof(uint32_t))))
        goto out;
    uint32_t *map = d->sc_u32, n0 = d->nclients, fresh = 0;
    for (uint32_t i = 0; i < nids; i++) map[i] = 0;
    for (size_t i = 0; i < l.n; i++) {
        const dop *o = &l.v[i];
        map[o->client] = 1;
        if (o->ac != NONE32) map[o->ac] = 1;
        if (o->kind != OP_DEL && o->bc != NONE32) map[o->bc] = 1;
    }
    for (uint32_t i = 0; i < nids; i++) fresh += map[i] && doc_client_find(d, ids[i]) < 0;
    if (d->nclients + (uint64_t)fresh > CRDT_MAX_CLIENTS) {
        e = TDM_ETOOBIG;
        goto out;
    }
    if ((e = scratch((void **)&d->sc_u32, &d->sc_u32_cap, (size_t)nids + d->nclients + fresh,
                     sizeof(uint32_t))))
        goto out;
    map = d->sc_u32;
    for (uint32_t i = 0; i < nids; i++) {
        if (!map[i]) {
            map[i] = NONE32;
            continue;
        }
        if ((e = doc_client_index(d, ids[i], &map[i]))) {
            doc_clients_truncate(d, n0);
            goto out;
        }
    }
    for (size_t i = 0; i < l.n; i++) {
        dop *o = &l.v[i];
        o->client = map[o->client];
        if (o->ac != NONE32) o->ac = map[o->ac];
        if (o->kind != OP_DEL && o->bc != NONE32) o->bc = map[o->bc];
        /* a delete cannot name its own client's clocks past its end: they do
         * not exist when it is made (found by fuzz_update: such a delete was
         * recorded, the characters arrived later undeleted, and the
         * document's snapshot did not load). Checked on document indices, so
         * a client listed twice in the update does not get around it. */
        if (o->kind == OP_DEL && o->ac == o->client &&
            (uint64_t)(o->back ? o->ak : o->ak + o->len - 1) >= (uint64_t)o->clock + o->len) {
            e = TDM_EMALFORMED;
            doc_clients_truncate(d, n0);
            goto out;
        }
    }
    doc_txn_begin(d);
    if (!apply_direct(d, &l, d->sc_u32 + nids, &e)) e = apply_planned(d, &l);
    doc_txn_end(d, false);
    /* refused whole: the clients it named are forgotten again */
    if (e == TDM_EPENDING_FULL || e == TDM_ETOOBIG_NOCHANGE) {
        doc_clients_truncate(d, n0);
        e = e == TDM_ETOOBIG_NOCHANGE ? TDM_ETOOBIG : e;
    }
    if (!e) doc_compact_maybe(d);
out:
    scratch_trim(d);
    return e;
}

size_t crdt_doc_pending(const crdt_doc *d)
{
    return d->npending;
}
