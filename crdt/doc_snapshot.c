/* doc_snapshot.c - the compact whole-document form (see docs/CRDT.md).
 *
 * Snapshot (CBOR):
 *   [2, [client-id ...], [next-clock ...], codec, items: bytes, text: bytes, deletes: bytes,
 *    crc32]
 * codec 0: the three columns are stored as they are; 1: each is raw DEFLATE
 * (RFC 1951), inflated on load with a hard cap (max_update_bytes).
 * `items` is the item count (LEB128), then every item in document order as
 * LEB128 fields:
 *   flags (1 byte): bit0 deleted, bit1 content collected, bits2-3 left-origin
 *     mode, bits4-5 right-origin mode, bit6 client index follows
 *   [client index], clock as a zigzag delta from the end of that client's
 *   previous item, length, then the explicit origins (client index, clock).
 *   Left-origin modes: 0 none, 1 the last character of the previous item,
 *   2 the previous clock of the same client, 3 explicit.
 *   Right-origin modes: 0 none, 1 the first character of the next item,
 *   2 the same right origin as the item holding the left origin, 3 explicit.
 * `text` is the UTF-8 of every item that keeps content, in document order.
 * `deletes` holds, for each client in table order, its delete log: a count,
 *   then per record: clock delta from the previous record's end, len*2+back,
 *   target client index, zigzag delta of the target clock from the previous one.
 * crc32 is the CRC-32 (zlib) of every byte of the encoding before it, so a
 * corrupt file is refused rather than loaded as a different document. Only clients
 * holding operations are listed. Loading rebuilds the tree in one pass without
 * re-integrating; every client's inserts and deletes must tile its clocks
 * [0, next) exactly, and the deleted flags must agree with the delete log.
 */
#include "doc_internal.h"
#include "cbor_rd.h"
#include "utf8.h"
#include "zip.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_VERSION 2

enum { F_DEL = 1, F_GC = 2, F_CLIENT = 64 };

static int same_or(const item *a, uint32_t orc, uint32_t ork)
{
    return a->orc == orc && (orc == NONE32 || a->ork == ork);
}

tdm_err crdt_doc_snapshot(crdt_doc *d, tbuf *out)
{
    tbuf items, text, dels;
    tbuf_init(&items, out->limit);
    tbuf_init(&text, out->limit);
    tbuf_init(&dels, out->limit);
    tdm_err e = TDM_OK;
    size_t start = out->len;
    uint32_t *last_end = calloc(2 * (size_t)d->nclients, sizeof(uint32_t));
    if (!last_end) return TDM_ENOMEM;
    /* only clients holding operations, or named as the target of a delete,
     * are written: rm maps index -> table slot (a delete may target a client
     * of which nothing was received; fuzz_snapshot found such a snapshot
     * loading and its re-snapshot not) */
    uint32_t *rm = last_end + d->nclients, nused = 0;
    for (uint32_t c = 0; c < d->nclients; c++) rm[c] = d->clients[c].next ? 0 : NONE32;
    for (uint32_t c = 0; c < d->nclients; c++)
        for (uint32_t i = 0; i < d->clients[c].ndels; i++) rm[d->clients[c].dels[i].tc] = 0;
    for (uint32_t c = 0; c < d->nclients; c++)
        if (rm[c] != NONE32) rm[c] = nused++;
    uint32_t prev = NONE32, prev_client = NONE32;
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((e = (x))) goto fail;                                                                  \
    } while (0)
    TRY(tbuf_varint(&items, d->live_items));
    for (uint32_t x = tree_first(d); x != NONE32; prev = x, x = tree_next(d, x)) {
        const item *it = &d->items[x];
        uint32_t nx = tree_next(d, x);
        int olm = 3, orm = 3;
        if (it->olc == NONE32)
            olm = 0;
        else if (prev != NONE32 && d->items[prev].client == it->olc &&
                 d->items[prev].clock + d->items[prev].len - 1 == it->olk)
            olm = 1;
        else if (it->olc == it->client && it->olk + 1 == it->clock)
            olm = 2;
        if (it->orc == NONE32)
            orm = 0;
        else if (nx != NONE32 && d->items[nx].client == it->orc && d->items[nx].clock == it->ork)
            orm = 1;
        else if (it->olc != NONE32) {
            uint32_t h = doc_find_id(d, it->olc, it->olk, NULL);
            if (h != NONE32 && same_or(&d->items[h], it->orc, it->ork)) orm = 2;
        }
        uint8_t flags =
            (uint8_t)((it->deleted ? F_DEL : 0) | (it->content == NONE32 ? F_GC : 0) | (olm << 2) |
                      (orm << 4) | (it->client != prev_client ? F_CLIENT : 0));
        TRY(tbuf_append(&items, &flags, 1));
        if (flags & F_CLIENT) TRY(tbuf_varint(&items, rm[it->client]));
        TRY(tbuf_svarint(&items, (int64_t)it->clock - last_end[it->client]));
        TRY(tbuf_varint(&items, it->len));
        if (olm == 3) {
            TRY(tbuf_varint(&items, rm[it->olc]));
            TRY(tbuf_varint(&items, it->olk));
        }
        if (orm == 3) {
            TRY(tbuf_varint(&items, rm[it->orc]));
            TRY(tbuf_varint(&items, it->ork));
        }
        if (it->content != NONE32) TRY(tbuf_append(&text, d->text + it->content, it->nbytes));
        last_end[it->client] = it->clock + it->len;
        prev_client = it->client;
    }
    for (uint32_t c = 0; c < d->nclients; c++) {
        const dclient *cl = &d->clients[c];
        uint32_t pend = 0, ptk = 0;
        if (rm[c] == NONE32) continue;
        TRY(tbuf_varint(&dels, cl->ndels));
        for (uint32_t i = 0; i < cl->ndels; i++) {
            const dele *r = &cl->dels[i];
            TRY(tbuf_varint(&dels, r->clock - pend));
            TRY(tbuf_varint(&dels, (uint64_t)r->len * 2 + r->back));
            TRY(tbuf_varint(&dels, rm[r->tc]));
            TRY(tbuf_svarint(&dels, (int64_t)r->tk - ptk));
            pend = r->clock + r->len;
            ptk = r->tk;
        }
    }
    /* deflate the three columns when that is smaller (it is, past a few KiB) */
    tbuf z[3];
    const tbuf *col[3] = {&items, &text, &dels};
    int codec = items.len + text.len + dels.len > 512;
    for (int i = 0; i < 3; i++) tbuf_init(&z[i], out->limit);
    if (codec) {
        for (int i = 0; i < 3 && !e; i++) e = zip_deflate(col[i]->data, col[i]->len, &z[i]);
        if (!e && z[0].len + z[1].len + z[2].len >= items.len + text.len + dels.len) codec = 0;
        if (codec) {
            for (int i = 0; i < 3; i++) col[i] = &z[i];
        }
    }
    if (!e) e = tbuf_cbor_array(out, 8);
    if (!e) e = tbuf_cbor_uint(out, SNAP_VERSION);
    if (e) {
        for (int i = 0; i < 3; i++) tbuf_fini(&z[i]);
        goto fail;
    }
    if (!e) e = tbuf_cbor_array(out, nused);
    for (uint32_t c = 0; c < d->nclients && !e; c++)
        if (rm[c] != NONE32) e = tbuf_cbor_uint(out, d->clients[c].id);
    if (!e) e = tbuf_cbor_array(out, nused);
    for (uint32_t c = 0; c < d->nclients && !e; c++)
        if (rm[c] != NONE32) e = tbuf_cbor_uint(out, d->clients[c].next);
    if (!e) e = tbuf_cbor_uint(out, (uint64_t)codec);
    for (int i = 0; i < 3 && !e; i++) e = tbuf_cbor_bytes(out, col[i]->data, col[i]->len);
    if (!e) e = tbuf_cbor_uint(out, zip_crc32(0, out->data + start, out->len - start));
    for (int i = 0; i < 3; i++) tbuf_fini(&z[i]);
    if (e) goto fail;
#undef TRY
    goto done;
fail:
    out->len = start;
done:
    free(last_end);
    tbuf_fini(&items);
    tbuf_fini(&text);
    tbuf_fini(&dels);
    return e;
}

/* ---------- load ---------- */

typedef struct loader {
    crdt_doc *d;
    uint32_t nc;     /* clients in the snapshot's table (the loader's own may follow) */
    uint32_t n;      /* items */
    uint32_t *order; /* item indices in document order (= 0..n-1) */
    uint8_t *orm;    /* right-origin mode per item, until resolved */
} loader;

/* bounded skip of k code points in valid UTF-8 q[0..n): bytes, or SIZE_MAX */
static size_t skip_cps(const uint8_t *q, size_t n, uint32_t k)
{
    size_t i = 0;
    while (k > 0 && i < n) {
        uint8_t b = q[i];
        i += b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        k--;
    }
    return (k == 0 && i <= n) ? i : SIZE_MAX;
}

static int ent_cmp(const void *a, const void *b)
{
    const ent *x = a, *y = b;
    return x->clock < y->clock ? -1 : x->clock > y->clock;
}

static tdm_err load_items(loader *L, const uint8_t *ip, size_t in, const uint8_t *tp, size_t tn)
{
    crdt_doc *d = L->d;
    vrd r;
    uint64_t cnt;
    tdm_err e;
    vrd_init(&r, ip, in);
    if ((e = vrd_uint(&r, &cnt))) return e;
    if (cnt > in) return TDM_EMALFORMED; /* each item takes >= 3 bytes */
    uint32_t *last_end = calloc(d->nclients, sizeof(uint32_t));
    L->order = malloc((cnt ? cnt : 1) * sizeof(uint32_t));
    L->orm = malloc(cnt ? cnt : 1);
    if (!last_end || !L->order || !L->orm) {
        free(last_end);
        return TDM_ENOMEM;
    }
    size_t tpos = 0;
    uint64_t chars = 0;
    uint32_t client = NONE32;
    for (uint64_t i = 0; i < cnt; i++) {
        uint8_t flags;
        uint32_t x, len, v;
        int64_t delta;
        if ((e = vrd_byte(&r, &flags))) goto out;
        if (flags & 0x80) goto bad;
        if (flags & F_CLIENT) {
            if ((e = vrd_u32(&r, &client))) goto out;
        }
        if (client >= L->nc) goto bad;
        if ((e = vrd_sint(&r, &delta)) || (e = vrd_u32(&r, &len))) goto out;
        int64_t clock = (int64_t)last_end[client] + delta;
        if (clock < 0 || len == 0 || clock + len > CRDT_CLOCK_MAX) goto bad;
        chars += len;
        if (chars > DOC_MAX_CHARS) goto bad; /* subtree sums are 32-bit */
        if ((e = doc_item_new(d, &x))) goto out;
        item *it = &d->items[x];
        it->client = client;
        it->clock = (uint32_t)clock;
        it->len = len;
        it->deleted = flags & F_DEL;
        it->l = it->r = it->p = NONE32;
        last_end[client] = it->clock + len;
        int olm = (flags >> 2) & 3, orm = (flags >> 4) & 3;
        it->olc = it->orc = NONE32;
        if (olm == 1) {
            if (i == 0) goto bad;
            const item *pv = &d->items[L->order[i - 1]];
            it->olc = pv->client;
            it->olk = pv->clock + pv->len - 1;
        } else if (olm == 2) {
            if (it->clock == 0) goto bad;
            it->olc = client;
            it->olk = it->clock - 1;
        } else if (olm == 3) {
            if ((e = vrd_u32(&r, &it->olc)) || (e = vrd_u32(&r, &v))) goto out;
            if (it->olc >= L->nc || v >= CRDT_CLOCK_MAX) goto bad;
            it->olk = v;
        }
        if (orm == 3) {
            if ((e = vrd_u32(&r, &it->orc)) || (e = vrd_u32(&r, &v))) goto out;
            if (it->orc >= L->nc || v >= CRDT_CLOCK_MAX) goto bad;
            it->ork = v;
        } else if (orm == 2 && olm == 0) {
            goto bad;
        }
        L->orm[i] = (uint8_t)orm;
        if (flags & F_GC) {
            if (!(flags & F_DEL)) goto bad;
            it->content = NONE32;
            it->nbytes = 0;
        } else {
            size_t nb = skip_cps(tp + tpos, tn - tpos, len);
            if (nb == SIZE_MAX) goto bad;
            it->content = (uint32_t)tpos;
            it->nbytes = (uint32_t)nb;
            tpos += nb;
            if (!it->deleted) {
                d->len_cp += len;
                d->len_bytes += nb;
                d->len_16 += len + (nb != len ? utf8_count_astral(tp + it->content, nb) : 0);
            }
        }
        L->order[i] = x;
        L->n++;
    }
    if (r.pos != r.n || tpos != tn) goto bad;
    e = TDM_OK;
    goto out;
bad:
    e = TDM_EMALFORMED;
out:
    free(last_end);
    return e;
}

/* build the id index and check that inserts and deletes tile each client's clocks */
static tdm_err index_and_check(loader *L)
{
    crdt_doc *d = L->d;
    uint32_t *start = calloc(d->nclients + 1, sizeof(uint32_t));
    ent *all = malloc((L->n ? L->n : 1) * sizeof(ent));
    tdm_err e = TDM_OK;
    if (!start || !all) {
        e = TDM_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < L->n; i++) start[d->items[L->order[i]].client + 1]++;
    for (uint32_t c = 0; c < d->nclients; c++) start[c + 1] += start[c];
    for (uint32_t i = 0; i < L->n; i++) { /* counting sort by client, stable in doc order */
        uint32_t x = L->order[i];
        all[start[d->items[x].client]++] = (ent){d->items[x].clock, x};
    }
    for (uint32_t c = d->nclients; c > 0; c--) start[c] = start[c - 1];
    start[0] = 0;
    for (uint32_t c = 0; c < d->nclients && !e; c++) {
        dclient *cl = &d->clients[c];
        ent *v = all + start[c];
        uint32_t n = start[c + 1] - start[c];
        int sorted = 1;
        for (uint32_t i = 1; i < n && sorted; i++) sorted = v[i - 1].clock < v[i].clock;
        if (!sorted) qsort(v, n, sizeof(ent), ent_cmp);
        uint32_t ei = 0, di = 0, cur = 0;
        while (ei < n || di < cl->ndels) {
            if (ei < n && v[ei].clock == cur) {
                cur += d->items[v[ei++].item].len;
            } else if (di < cl->ndels && cl->dels[di].clock == cur) {
                cur += cl->dels[di++].len;
            } else {
                e = TDM_EMALFORMED;
                goto out;
            }
        }
        if (cur != cl->next)
            e = TDM_EMALFORMED;
        else
            e = eidx_from_sorted(&cl->ents, v, n);
    }
out:
    free(start);
    free(all);
    return e;
}

/* every deleted item that kept its text is covered by delete operations, and
 * no visible item is */
static tdm_err check_deleted(loader *L)
{
    crdt_doc *d = L->d;
    doc_dset s;
    tdm_err e = doc_dset_build(d, NULL, &s);
    for (uint32_t i = 0; i < L->n && !e; i++) {
        const item *it = &d->items[L->order[i]];
        bool del;
        uint32_t run = doc_dset_run(&s, it->client, it->clock, it->clock + it->len, &del);
        bool covered = del && run == it->len, overlap = del || run < it->len;
        /* deleted text without content may have come as a tombstone whose
         * delete operation is still pending; everything else must agree */
        if (it->deleted ? (!covered && it->content != NONE32) : overlap) e = TDM_EMALFORMED;
    }
    free(s.v);
    return e;
}

static tdm_err resolve_right(loader *L)
{
    crdt_doc *d = L->d;
    for (uint32_t i = 0; i < L->n; i++) {
        item *it = &d->items[L->order[i]];
        if (L->orm[i] == 1) {
            if (i + 1 >= L->n) return TDM_EMALFORMED;
            const item *nx = &d->items[L->order[i + 1]];
            it->orc = nx->client;
            it->ork = nx->clock;
        } else if (L->orm[i] == 2) {
            uint32_t h = doc_find_id(d, it->olc, it->olk, NULL);
            if (h == NONE32 || h == L->order[i]) return TDM_EMALFORMED;
            /* the holder must come earlier in document order: its mode is resolved */
            if (h >= L->order[i]) return TDM_EMALFORMED;
            it->orc = d->items[h].orc;
            it->ork = d->items[h].ork;
        }
    }
    /* origins name characters the document holds: the left one before the
     * item, the right one after it (items are numbered in document order) */
    for (uint32_t i = 0; i < L->n; i++) {
        const item *it = &d->items[L->order[i]];
        if (it->olc != NONE32) {
            uint32_t h = doc_find_id(d, it->olc, it->olk, NULL);
            if (h == NONE32 || h >= L->order[i]) return TDM_EMALFORMED;
        }
        if (it->orc != NONE32) {
            uint32_t h = doc_find_id(d, it->orc, it->ork, NULL);
            if (h == NONE32 || h <= L->order[i]) return TDM_EMALFORMED;
        }
    }
    return TDM_OK;
}

static tdm_err load_dels(crdt_doc *d, uint32_t nc, const uint8_t *p, size_t n)
{
    vrd r;
    tdm_err e;
    vrd_init(&r, p, n);
    for (uint32_t c = 0; c < nc; c++) {
        dclient *cl = &d->clients[c];
        uint64_t cnt;
        if ((e = vrd_uint(&r, &cnt))) return e;
        if (cnt > n) return TDM_EMALFORMED;
        cl->cdels = cnt ? (uint32_t)cnt : 1;
        cl->dels = malloc(cl->cdels * sizeof(dele));
        if (!cl->dels) return TDM_ENOMEM;
        uint64_t pend = 0;
        int64_t ptk = 0;
        for (uint64_t i = 0; i < cnt; i++) {
            uint64_t dc, lb, tc;
            int64_t dtk;
            if ((e = vrd_uint(&r, &dc)) || (e = vrd_uint(&r, &lb)) || (e = vrd_uint(&r, &tc)) ||
                (e = vrd_sint(&r, &dtk)))
                return e;
            uint64_t clock = pend + dc, len = lb >> 1;
            int64_t tk = ptk + dtk;
            if (len == 0 || clock + len > CRDT_CLOCK_MAX || tc >= d->nclients || tk < 0 ||
                tk >= CRDT_CLOCK_MAX)
                return TDM_EMALFORMED;
            if ((lb & 1) ? (uint64_t)tk + 1 < len : (uint64_t)tk + len > CRDT_CLOCK_MAX)
                return TDM_EMALFORMED;
            /* nor its own client's clocks past its end (as crdt_doc_apply) */
            if (tc == c && ((lb & 1) ? (uint64_t)tk : (uint64_t)tk + len - 1) >= clock + len)
                return TDM_EMALFORMED;
            cl->dels[cl->ndels++] = (dele){(uint32_t)clock, (uint32_t)len, (uint32_t)tc,
                                           (uint32_t)tk, (uint32_t)(lb & 1)};
            pend = clock + len;
            ptk = tk;
        }
    }
    return r.pos == r.n ? TDM_OK : TDM_EMALFORMED;
}

static void reset_doc(crdt_doc *d)
{
    for (uint32_t c = 0; c < d->nclients; c++) {
        eidx_free(&d->clients[c].ents);
        free(d->clients[c].dels);
        d->clients[c].dels = NULL;
        d->clients[c].ndels = d->clients[c].cdels = 0;
        d->clients[c].next = 0;
    }
    d->nclients = 1; /* the document's own client is always index 0 of a fresh doc */
    d->by_id[0] = 0;
    d->nitems = d->live_items = 0;
    d->free_items = NONE32;
    d->root = NONE32;
    d->ntext = 0;
    d->len_cp = d->len_bytes = d->len_16 = 0;
}

static tdm_err load_columns(crdt_doc *d, const uint8_t *p, size_t n, size_t ids_at, size_t next_at,
                            size_t nc, const uint8_t *ip, size_t in, const uint8_t *tp, size_t tn,
                            const uint8_t *dp, size_t dn);

tdm_err crdt_doc_load(crdt_doc *d, const uint8_t *p, size_t n)
{
    if (d->live_items || d->npending || d->self) return TDM_EINVAL;
    for (uint32_t c = 0; c < d->nclients; c++)
        if (d->clients[c].next) return TDM_EINVAL;
    if (n > d->opts.max_update_bytes) return TDM_ETOOBIG;
    cbr r;
    size_t cnt, nc;
    uint64_t v;
    const uint8_t *ip, *tp, *dp;
    size_t in, tn, dn;
    tdm_err e;
    cbr_init(&r, p, n);
    if ((e = cbr_array(&r, &cnt))) return e;
    if (cnt != 8) return TDM_EMALFORMED;
    if ((e = cbr_uint(&r, &v))) return e;
    if (v != SNAP_VERSION) return TDM_EVERSION;
    if ((e = cbr_array(&r, &nc))) return e;
    if (nc > CRDT_MAX_CLIENTS) return TDM_ETOOBIG;
    const size_t ids_at = r.pos;
    for (size_t i = 0; i < nc; i++)
        if ((e = cbr_uint(&r, &v))) return e;
    if ((e = cbr_array(&r, &cnt))) return e;
    if (cnt != nc) return TDM_EMALFORMED;
    const size_t next_at = r.pos;
    for (size_t i = 0; i < nc; i++) {
        if ((e = cbr_uint(&r, &v))) return e;
        if (v >= CRDT_CLOCK_MAX) return TDM_EMALFORMED;
    }
    uint64_t codec;
    if ((e = cbr_uint(&r, &codec))) return e;
    if (codec > 1) return TDM_EMALFORMED;
    uint64_t crc;
    if ((e = cbr_bytes(&r, &ip, &in)) || (e = cbr_bytes(&r, &tp, &tn)) ||
        (e = cbr_bytes(&r, &dp, &dn)))
        return e;
    const size_t crc_at = r.pos;
    if ((e = cbr_uint(&r, &crc)) || (e = cbr_finish(&r))) return e;
    /* the checksum of everything before it catches a corrupt file before any
     * inflating or loading */
    if (crc != zip_crc32(0, p, crc_at)) return TDM_EMALFORMED;
    tbuf z[3];
    for (int i = 0; i < 3; i++) tbuf_init(&z[i], d->opts.max_update_bytes);
    if (codec == 1) {
        const uint8_t **cp[3] = {&ip, &tp, &dp};
        size_t *cn[3] = {&in, &tn, &dn};
        for (int i = 0; i < 3 && !e; i++) {
            e = zip_inflate(*cp[i], *cn[i], d->opts.max_update_bytes, &z[i]);
            *cp[i] = z[i].data ? z[i].data : (const uint8_t *)"";
            *cn[i] = z[i].len;
        }
    }
    if (!e && !utf8_validate(tp, tn, NULL, NULL)) e = TDM_EUTF8;
    if (e) {
        for (int i = 0; i < 3; i++) tbuf_fini(&z[i]);
        return e;
    }
    e = load_columns(d, p, n, ids_at, next_at, nc, ip, in, tp, tn, dp, dn);
    for (int i = 0; i < 3; i++) tbuf_fini(&z[i]);
    return e;
}

static tdm_err load_columns(crdt_doc *d, const uint8_t *p, size_t n, size_t ids_at, size_t next_at,
                            size_t nc, const uint8_t *ip, size_t in, const uint8_t *tp, size_t tn,
                            const uint8_t *dp, size_t dn)
{
    loader L = {d, (uint32_t)nc, 0, NULL, NULL};
    tdm_err e;
    /* register the clients in table order: document index == table index */
    cbr ri, rn;
    cbr_init(&ri, p + ids_at, n - ids_at);
    cbr_init(&rn, p + next_at, n - next_at);
    reset_doc(d);
    d->nclients = 0;
    for (size_t i = 0; i < nc; i++) {
        uint64_t id, nx;
        uint32_t idx;
        cbr_uint(&ri, &id);
        cbr_uint(&rn, &nx);
        if (doc_client_find(d, id) >= 0) {
            e = TDM_EMALFORMED;
            goto fail;
        }
        if ((e = doc_client_index(d, id, &idx))) goto fail;
        d->clients[idx].next = (uint32_t)nx;
    }
    {
        int32_t self = doc_client_find(d, d->opts.client);
        if (self < 0) {
            if ((e = doc_client_index(d, d->opts.client, &d->self))) goto fail;
        } else {
            d->self = (uint32_t)self;
        }
    }
    if ((e = doc_text_append(d, tp, tn, &(uint32_t){0}))) goto fail;
    if ((e = load_dels(d, (uint32_t)nc, dp, dn))) goto fail;
    if ((e = load_items(&L, ip, in, tp, tn))) goto fail;
    if ((e = index_and_check(&L))) goto fail;
    if ((e = check_deleted(&L))) goto fail;
    if ((e = resolve_right(&L))) goto fail;
    tree_build(d, L.order, L.n);
    free(L.order);
    free(L.orm);
    if (d->obs_fn) { /* report the loaded text as one insert */
        doc_txn_begin(d);
        for (uint32_t i = 0; i < L.n; i++)
            if (!d->items[i].deleted) doc_mark(d, i, MARK_NEW);
        doc_txn_end(d, false);
    }
    return TDM_OK;
fail:
    free(L.order);
    free(L.orm);
    /* back to an empty document with only our own dclient */
    {
        uint64_t me = d->opts.client;
        for (uint32_t c = 0; c < d->nclients; c++) {
            eidx_free(&d->clients[c].ents);
            free(d->clients[c].dels);
        }
        d->nclients = 0;
        d->nitems = d->live_items = 0;
        d->free_items = NONE32;
        d->root = NONE32;
        d->ntext = 0;
        d->len_cp = d->len_bytes = d->len_16 = 0;
        doc_client_index(d, me, &d->self);
        d->clients[d->self].next = 0;
    }
    return e;
}
