/* doc.c - crdt_doc lifetime, clients, the item pool, the text store, the id
 * index, and the local edits (insert, delete) and reads. */
#include "doc_internal.h"
#include "utf8.h"
#include "ot.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 0x7ffffff0u
#define MAX_TEXT  ((size_t)1 << 31)

static const crdt_doc_opts default_opts = {0, false, 100000, (size_t)16 << 20, (size_t)256 << 20};

static tdm_err grow(void **p, uint32_t *cap, uint32_t need, size_t elem, uint32_t max)
{
    if (need <= *cap) return TDM_OK;
    if (need > max) return TDM_ETOOBIG;
    uint64_t nc = *cap ? (uint64_t)*cap * 2 : 16;
    while (nc < need) nc *= 2;
    if (nc > max) nc = max;
    void *np = realloc(*p, (size_t)nc * elem);
    if (!np) return TDM_ENOMEM;
    *p = np;
    *cap = (uint32_t)nc;
    return TDM_OK;
}

tdm_err crdt_doc_new_opts(const crdt_doc_opts *opts, crdt_doc **out)
{
    crdt_doc *d = calloc(1, sizeof *d);
    if (!d) return TDM_ENOMEM;
    d->opts = opts ? *opts : default_opts;
    if (!d->opts.max_pending_ops) d->opts.max_pending_ops = default_opts.max_pending_ops;
    if (!d->opts.max_pending_bytes) d->opts.max_pending_bytes = default_opts.max_pending_bytes;
    if (!d->opts.max_update_bytes) d->opts.max_update_bytes = default_opts.max_update_bytes;
    d->root = NONE32;
    d->free_items = NONE32;
    tdm_err e = doc_client_index(d, d->opts.client, &d->self);
    if (e) {
        crdt_doc_free(d);
        return e;
    }
    *out = d;
    return TDM_OK;
}

tdm_err crdt_doc_new(uint64_t client, crdt_doc **out)
{
    crdt_doc_opts o = default_opts;
    o.client = client;
    return crdt_doc_new_opts(&o, out);
}

void crdt_doc_free(crdt_doc *d)
{
    if (!d) return;
    for (uint32_t i = 0; i < d->nclients; i++) {
        eidx_free(&d->clients[i].ents);
        free(d->clients[i].dels);
    }
    for (uint32_t i = 0; i < d->npending; i++) free((void *)d->pending[i].text);
    free(d->pending);
    free(d->sc_ops);
    free(d->sc_u32);
    free(d->sc_ids);
    free(d->marked);
    ot_op_free(d->delta);
    free(d->clients);
    free(d->by_id);
    free(d->items);
    free(d->text);
    free(d);
}

uint64_t crdt_doc_client(const crdt_doc *d)
{
    return d->opts.client;
}

int32_t doc_client_find(const crdt_doc *d, uint64_t id)
{
    uint32_t lo = 0, hi = d->nclients;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        uint64_t v = d->clients[d->by_id[mid]].id;
        if (v == id) return (int32_t)d->by_id[mid];
        if (v < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

tdm_err doc_client_index(crdt_doc *d, uint64_t id, uint32_t *out)
{
    int32_t f = doc_client_find(d, id);
    if (f >= 0) {
        *out = (uint32_t)f;
        return TDM_OK;
    }
    uint32_t cc = d->cclients, cb = d->cclients;
    tdm_err e = grow((void **)&d->clients, &cc, d->nclients + 1, sizeof(dclient), CRDT_MAX_CLIENTS);
    if (e) return e;
    d->cclients = cc;
    e = grow((void **)&d->by_id, &cb, d->nclients + 1, sizeof(uint32_t), CRDT_MAX_CLIENTS);
    if (e) return e;
    if (cb != cc) { /* keep both arrays the same capacity */
        uint32_t *nb = realloc(d->by_id, (size_t)cc * sizeof(uint32_t));
        if (!nb) return TDM_ENOMEM;
        d->by_id = nb;
    }
    uint32_t idx = d->nclients++;
    memset(&d->clients[idx], 0, sizeof(dclient));
    d->clients[idx].id = id;
    uint32_t pos = 0;
    while (pos < idx && d->clients[d->by_id[pos]].id < id) pos++;
    memmove(&d->by_id[pos + 1], &d->by_id[pos], (idx - pos) * sizeof(uint32_t));
    d->by_id[pos] = idx;
    *out = idx;
    return TDM_OK;
}

void doc_clients_truncate(crdt_doc *d, uint32_t n)
{
    if (n >= d->nclients) return;
    for (uint32_t c = n; c < d->nclients; c++) {
        eidx_free(&d->clients[c].ents);
        free(d->clients[c].dels);
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < d->nclients; i++)
        if (d->by_id[i] < n) d->by_id[k++] = d->by_id[i];
    d->nclients = n;
}

tdm_err doc_item_new(crdt_doc *d, uint32_t *out)
{
    if (d->free_items != NONE32) {
        uint32_t x = d->free_items;
        d->free_items = d->items[x].p;
        memset(&d->items[x], 0, sizeof(item));
        d->live_items++;
        *out = x;
        return TDM_OK;
    }
    tdm_err e = grow((void **)&d->items, &d->citems, d->nitems + 1, sizeof(item), MAX_ITEMS);
    if (e) return e;
    uint32_t x = d->nitems++;
    memset(&d->items[x], 0, sizeof(item));
    d->live_items++;
    *out = x;
    return TDM_OK;
}

void doc_item_release(crdt_doc *d, uint32_t x)
{
    d->items[x].p = d->free_items;
    d->items[x].len = 0;
    d->free_items = x;
    d->live_items--;
}

tdm_err doc_text_append(crdt_doc *d, const uint8_t *p, size_t n, uint32_t *off)
{
    if (d->ntext + n > MAX_TEXT) return TDM_ETOOBIG;
    if (d->ntext + n > d->ctext) {
        size_t nc = d->ctext ? d->ctext * 2 : 4096;
        while (nc < d->ntext + n) nc *= 2;
        uint8_t *np = realloc(d->text, nc);
        if (!np) return TDM_ENOMEM;
        d->text = np;
        d->ctext = nc;
    }
    if (n) memcpy(d->text + d->ntext, p, n);
    *off = (uint32_t)d->ntext;
    d->ntext += n;
    return TDM_OK;
}

/* doc_find_id - the item holding character (c, clock), or NONE32; *pos (may be
 * NULL) gets its index entry. */
uint32_t doc_find_id(crdt_doc *d, uint32_t c, uint32_t clock, epos *pos)
{
    epos p;
    if (c >= d->nclients || !eidx_find(d, &d->clients[c].ents, clock, &p)) return NONE32;
    if (pos) *pos = p;
    return eidx_at(&d->clients[c].ents, p)->item;
}

/* doc_split - split item x after k code points (0 < k < len); *right gets the
 * new item holding the rest, placed right after x. */
tdm_err doc_split(crdt_doc *d, uint32_t x, uint32_t k, uint32_t *right)
{
    uint32_t y;
    item *ix = &d->items[x];
    epos entpos;
    if (doc_find_id(d, ix->client, ix->clock, &entpos) != x) return TDM_EINVAL;
    tdm_err e = doc_item_new(d, &y);
    if (e) return e;
    ix = &d->items[x];
    item *iy = &d->items[y];
    uint32_t kb = 0;
    if (ix->content != NONE32) kb = item_skip(d, ix, k);
    iy->client = ix->client;
    iy->clock = ix->clock + k;
    iy->len = ix->len - k;
    iy->content = ix->content == NONE32 ? NONE32 : ix->content + kb;
    iy->nbytes = ix->nbytes - kb;
    iy->olc = ix->client;
    iy->olk = ix->clock + k - 1;
    iy->orc = ix->orc;
    iy->ork = ix->ork;
    iy->deleted = ix->deleted;
    iy->mark = ix->mark;
    e = eidx_insert_after(&d->clients[ix->client].ents, entpos, (ent){iy->clock, y});
    if (e) {
        doc_item_release(d, y);
        return e;
    }
    tree_splay(d, x);
    ix->len = k;
    ix->nbytes = kb;
    tree_update(d, x);
    tree_insert_after(d, x, y);
    if (iy->mark) doc_mark(d, y, 0);
    *right = y;
    return TDM_OK;
}

int doc_try_extend(crdt_doc *d, uint32_t left, const dop *o, size_t astral, tdm_err *err)
{
    item *L = &d->items[left];
    if (o->kind != OP_INS || L->client != o->client || L->clock + L->len != o->clock ||
        o->ac != o->client || o->ak + 1 != o->clock || L->deleted ||
        L->mark != (d->txn_open ? MARK_NEW : 0) || L->orc != o->bc ||
        (o->bc != NONE32 && L->ork != o->bk) || L->content == NONE32 ||
        L->content + L->nbytes != d->ntext)
        return 0;
    uint32_t off;
    *err = doc_text_append(d, o->text, o->nbytes, &off);
    if (*err) return 1;
    if (astral == SIZE_MAX)
        astral = o->nbytes != o->len ? utf8_count_astral(o->text, o->nbytes) : 0;
    tree_splay(d, left);
    L = &d->items[left];
    L->len += o->len;
    L->nbytes += o->nbytes;
    tree_update(d, left);
    d->clients[o->client].next = o->clock + o->len;
    d->len_cp += o->len;
    d->len_bytes += o->nbytes;
    d->len_16 += o->len + astral;
    return 1;
}

/* doc_try_merge - merge b into a when b continues a's run (a directly precedes b). */
void doc_try_merge(crdt_doc *d, uint32_t a, uint32_t b)
{
    if (a == NONE32 || b == NONE32) return;
    item *ia = &d->items[a], *ib = &d->items[b];
    if (ia->client != ib->client || ib->clock != ia->clock + ia->len) return;
    if (ib->olc != ia->client || ib->olk != ib->clock - 1) return;
    if (ib->orc != ia->orc || ib->ork != ia->ork || ia->deleted != ib->deleted) return;
    if (ia->mark != ib->mark) return;
    if (ia->content == NONE32) {
        if (ib->content != NONE32) return;
    } else if (ib->content != ia->content + ia->nbytes) {
        return;
    }
    epos entpos;
    if (doc_find_id(d, ib->client, ib->clock, &entpos) != b) return;
    eidx_remove(&d->clients[ib->client].ents, entpos);
    tree_remove(d, b);
    ia = &d->items[a];
    ib = &d->items[b];
    tree_splay(d, a);
    ia->len += ib->len;
    ia->nbytes += ib->nbytes;
    tree_update(d, a);
    doc_item_release(d, b);
}

tdm_err doc_dele_add(crdt_doc *d, uint32_t c, uint32_t clock, uint32_t len, uint32_t tc,
                     uint32_t tk, uint32_t back)
{
    dclient *cl = &d->clients[c];
    if (cl->ndels) {
        dele *p = &cl->dels[cl->ndels - 1];
        if (p->clock + p->len == clock && p->tc == tc) {
            if (!p->back && !back && p->tk + p->len == tk) {
                p->len += len;
                return TDM_OK;
            }
            uint32_t low = p->back ? p->tk - (p->len - 1) : p->tk;
            /* a backwards run: each new target ends right before the previous low */
            if ((p->back || p->len == 1) && len == 1 && low > 0 && tk == low - 1) {
                p->back = 1;
                p->len += 1;
                return TDM_OK;
            }
        }
    }
    tdm_err e = grow((void **)&cl->dels, &cl->cdels, cl->ndels + 1, sizeof(dele), MAX_ITEMS);
    if (e) return e;
    cl->dels[cl->ndels++] = (dele){clock, len, tc, tk, back};
    return TDM_OK;
}

/* doc_mark_deleted - mark a visible item deleted and update the counters. */
void doc_mark_deleted(crdt_doc *d, uint32_t x)
{
    item *it = &d->items[x];
    if (it->deleted) return;
    if (d->txn_open) doc_mark(d, x, MARK_GONE);
    tree_splay(d, x);
    it->deleted = 1;
    tree_update(d, x);
    d->len_cp -= it->len;
    d->len_bytes -= it->nbytes;
    d->len_16 -= it->len;
    if (it->content != NONE32) {
        if (it->nbytes != it->len)
            d->len_16 -= utf8_count_astral(d->text + it->content, it->nbytes);
        if (d->opts.gc) {
            d->garbage += it->nbytes;
            it->content = NONE32;
            it->nbytes = 0;
        }
    }
}

static tdm_err insert_impl(crdt_doc *d, size_t pos, const char *text, size_t n)
{
    size_t cps, astral;
    if (!text && n) return TDM_EINVAL;
    if (!utf8_validate((const uint8_t *)text, n, &cps, &astral)) return TDM_EUTF8;
    if (pos > d->len_cp) return TDM_ERANGE;
    if (n == 0) return TDM_OK;
    dclient *me = &d->clients[d->self];
    if ((uint64_t)me->next + cps >= CRDT_CLOCK_MAX) return TDM_ETOOBIG;
    if (doc_chars(d) + cps > DOC_MAX_CHARS) return TDM_ETOOBIG;
    uint32_t left, right; /* items around the insertion point */
    tdm_err e;
    if (pos == d->len_cp) {
        left = tree_last(d);
        right = NONE32;
    } else {
        uint32_t off;
        right = tree_find_vis(d, pos, &off);
        if (off > 0) {
            left = right;
            e = doc_split(d, left, off, &right);
            if (e) return e;
        } else {
            left = tree_prev(d, right);
        }
    }
    dop o = {.client = d->self,
             .clock = me->next,
             .len = (uint32_t)cps,
             .kind = OP_INS,
             .text = (const uint8_t *)text,
             .nbytes = (uint32_t)n};
    o.ac = o.bc = NONE32;
    if (left != NONE32) {
        o.ac = d->items[left].client;
        o.ak = d->items[left].clock + d->items[left].len - 1;
    }
    if (right != NONE32) {
        o.bc = d->items[right].client;
        o.bk = d->items[right].clock;
    }
    /* fast path: typing forwards at the end of our own newest run skips the
     * origin lookups of doc_integrate */
    if (left != NONE32 && doc_try_extend(d, left, &o, astral, &e)) return e;
    return doc_integrate(d, &o);
}

static tdm_err delete_impl(crdt_doc *d, size_t pos, size_t count)
{
    if (pos > d->len_cp || count > d->len_cp - pos) return TDM_ERANGE;
    dclient *me = &d->clients[d->self];
    if ((uint64_t)me->next + count >= CRDT_CLOCK_MAX) return TDM_ETOOBIG;
    while (count > 0) {
        uint32_t off, x = tree_find_vis(d, pos, &off), y;
        tdm_err e;
        if (x == NONE32) return TDM_EINVAL;
        if (off > 0) {
            e = doc_split(d, x, off, &y);
            if (e) return e;
            x = y;
        }
        if (d->items[x].len > count) {
            e = doc_split(d, x, (uint32_t)count, &y);
            if (e) return e;
        }
        item *it = &d->items[x];
        uint32_t n = it->len;
        e = doc_dele_add(d, d->self, me->next, n, it->client, it->clock, 0);
        if (e) return e;
        me = &d->clients[d->self];
        me->next += n;
        doc_mark_deleted(d, x);
        count -= n;
        doc_try_merge(d, x, tree_next(d, x));
        doc_try_merge(d, tree_prev(d, x), x);
    }
    doc_compact_maybe(d);
    return TDM_OK;
}

tdm_err crdt_doc_insert(crdt_doc *d, size_t pos, const char *text, size_t n)
{
    size_t before = d->len_cp;
    tdm_err e = insert_impl(d, pos, text, n);
    if (!e && d->obs_fn && d->len_cp != before) doc_report_local(d, pos, text, n, 0);
    return e;
}

tdm_err crdt_doc_delete(crdt_doc *d, size_t pos, size_t count)
{
    tdm_err e = delete_impl(d, pos, count);
    if (!e && d->obs_fn && count) doc_report_local(d, pos, NULL, 0, count);
    return e;
}

tdm_err doc_insert_before_id(crdt_doc *d, uint32_t c, uint32_t clock, const char *text, size_t n)
{
    size_t cps, astral;
    if (!utf8_validate((const uint8_t *)text, n, &cps, &astral)) return TDM_EUTF8;
    if (n == 0) return TDM_OK;
    dclient *me = &d->clients[d->self];
    if ((uint64_t)me->next + cps >= CRDT_CLOCK_MAX) return TDM_ETOOBIG;
    if (doc_chars(d) + cps > DOC_MAX_CHARS) return TDM_ETOOBIG;
    uint32_t right = doc_find_id(d, c, clock, NULL), y;
    if (right == NONE32) return TDM_ENOTFOUND;
    if (clock > d->items[right].clock) {
        tdm_err e = doc_split(d, right, clock - d->items[right].clock, &y);
        if (e) return e;
        right = y;
    }
    uint32_t left = tree_prev(d, right);
    dop o = {.client = d->self,
             .clock = me->next,
             .len = (uint32_t)cps,
             .kind = OP_INS,
             .text = (const uint8_t *)text,
             .nbytes = (uint32_t)n};
    o.ac = NONE32;
    if (left != NONE32) {
        o.ac = d->items[left].client;
        o.ak = d->items[left].clock + d->items[left].len - 1;
    }
    o.bc = d->items[right].client;
    o.bk = d->items[right].clock;
    tree_splay(d, right);
    size_t pos = d->items[right].l != NONE32 ? d->items[d->items[right].l].svis : 0;
    tdm_err e = doc_integrate(d, &o);
    if (!e && d->obs_fn) doc_report_local(d, pos, text, n, 0);
    return e;
}

size_t crdt_doc_len(const crdt_doc *d)
{
    return d->len_cp;
}

size_t crdt_doc_len_utf16(const crdt_doc *d)
{
    return d->len_16;
}

size_t crdt_doc_len_bytes(const crdt_doc *d)
{
    return d->len_bytes;
}

tdm_err crdt_doc_text_range(crdt_doc *d, size_t pos, size_t count, tbuf *out)
{
    if (pos > d->len_cp || count > d->len_cp - pos) return TDM_ERANGE;
    if (count == 0) return TDM_OK;
    uint32_t off;
    uint32_t x = tree_find_vis(d, pos, &off);
    size_t start = out->len;
    while (x != NONE32 && count > 0) {
        item *it = &d->items[x];
        if (!it->deleted) {
            const uint8_t *p = d->text + it->content;
            uint32_t from = item_skip(d, it, off);
            uint32_t avail = it->len - off;
            uint32_t take = avail < count ? avail : (uint32_t)count;
            uint32_t to = item_skip(d, it, off + take);
            tdm_err e = tbuf_append(out, p + from, to - from);
            if (e) {
                out->len = start;
                return e;
            }
            count -= take;
            off = 0;
        }
        x = tree_next(d, x);
    }
    return TDM_OK;
}

tdm_err crdt_doc_text(crdt_doc *d, tbuf *out)
{
    tdm_err e = tbuf_reserve(out, d->len_bytes);
    if (e) return e;
    for (uint32_t x = tree_first(d); x != NONE32; x = tree_next(d, x)) {
        item *it = &d->items[x];
        if (!it->deleted) {
            memcpy(out->data + out->len, d->text + it->content, it->nbytes);
            out->len += it->nbytes;
        }
    }
    return TDM_OK;
}

tdm_err crdt_doc_state_vector(const crdt_doc *d, crdt_sv *sv)
{
    crdt_sv_clear(sv);
    for (uint32_t i = 0; i < d->nclients; i++) {
        if (d->clients[i].next == 0) continue;
        tdm_err e = crdt_sv_set(sv, d->clients[i].id, d->clients[i].next);
        if (e) return e;
    }
    return TDM_OK;
}

tdm_err crdt_doc_delete_set(crdt_doc *d, crdt_ds *ds)
{
    crdt_ds_clear(ds);
    for (uint32_t c = 0; c < d->nclients; c++) {
        dclient *cl = &d->clients[c];
        for (epos p = {0, 0}; eidx_valid(&cl->ents, p); eidx_next(&cl->ents, &p)) {
            item *it = &d->items[eidx_at(&cl->ents, p)->item];
            if (!it->deleted) continue;
            tdm_err e = crdt_ds_add(ds, cl->id, it->clock, it->len);
            if (e) return e;
        }
    }
    return TDM_OK;
}

tdm_err crdt_doc_gc(crdt_doc *d)
{
    uint8_t *nt = malloc(d->ntext ? d->ntext : 1);
    if (!nt) return TDM_ENOMEM;
    size_t n = 0;
    for (uint32_t x = tree_first(d); x != NONE32; x = tree_next(d, x)) {
        item *it = &d->items[x];
        if (it->content == NONE32) continue;
        if (it->deleted) {
            it->content = NONE32;
            it->nbytes = 0;
            continue;
        }
        memcpy(nt + n, d->text + it->content, it->nbytes);
        it->content = (uint32_t)n;
        n += it->nbytes;
    }
    free(d->text);
    d->text = nt;
    d->ntext = n;
    d->ctext = d->ntext ? d->ntext : 1;
    d->garbage = 0;
    return TDM_OK;
}

void doc_compact_maybe(crdt_doc *d)
{
    /* with opts.gc, collected text is garbage in the store: compact it once it
     * is half the store (failure to allocate just postpones it) */
    if (d->opts.gc && d->garbage > 65536 && d->garbage * 2 > d->ntext) (void)crdt_doc_gc(d);
}

void crdt_doc_get_stats(const crdt_doc *d, crdt_doc_stats *st)
{
    st->items = d->live_items;
    st->clients = d->nclients;
    st->content_bytes = d->ntext;
    size_t m = sizeof *d + (size_t)d->citems * sizeof(item) + d->ctext +
               (size_t)d->cclients * (sizeof(dclient) + sizeof(uint32_t)) +
               (size_t)d->cpending * sizeof(dop) + d->pending_bytes;
    for (uint32_t i = 0; i < d->nclients; i++)
        m += eidx_mem(&d->clients[i].ents) + (size_t)d->clients[i].cdels * sizeof(dele);
    st->mem_bytes = m;
}
