/* doc_relpos.c - relative positions over the document's items. */
#include "relpos.h"
#include "doc_internal.h"
#include "cbor_rd.h"

tdm_err crdt_relpos_from_index(crdt_doc *d, size_t index, crdt_assoc assoc, crdt_relpos *out)
{
    if (index > d->len_cp || (assoc != CRDT_ASSOC_RIGHT && assoc != CRDT_ASSOC_LEFT))
        return index > d->len_cp ? TDM_ERANGE : TDM_EINVAL;
    crdt_relpos rp = {0};
    size_t at = assoc == CRDT_ASSOC_RIGHT ? index : index - 1;
    if (assoc == CRDT_ASSOC_RIGHT && index == d->len_cp) {
        rp.kind = CRDT_RELPOS_END;
    } else if (assoc == CRDT_ASSOC_LEFT && index == 0) {
        rp.kind = CRDT_RELPOS_START;
    } else {
        uint32_t off, x = tree_find_vis(d, at, &off);
        if (x == NONE32) return TDM_EINVAL;
        rp.kind = CRDT_RELPOS_CHAR;
        rp.assoc = (uint8_t)assoc;
        rp.client = d->clients[d->items[x].client].id;
        rp.clock = d->items[x].clock + off;
    }
    *out = rp;
    return TDM_OK;
}

tdm_err crdt_relpos_resolve(crdt_doc *d, const crdt_relpos *rp, size_t *index)
{
    switch (rp->kind) {
    case CRDT_RELPOS_START:
        *index = 0;
        return TDM_OK;
    case CRDT_RELPOS_END:
        *index = d->len_cp;
        return TDM_OK;
    case CRDT_RELPOS_CHAR:
        break;
    default:
        return TDM_EINVAL;
    }
    int32_t c = doc_client_find(d, rp->client);
    if (c < 0) return TDM_ENOTFOUND;
    uint32_t x = doc_find_id(d, (uint32_t)c, rp->clock, NULL);
    if (x == NONE32) return TDM_ENOTFOUND;
    tree_splay(d, x);
    const item *it = &d->items[x];
    size_t before = it->l != NONE32 ? d->items[it->l].svis : 0;
    if (it->deleted) {
        *index = before;
    } else {
        *index = before + (rp->clock - it->clock) + (rp->assoc == CRDT_ASSOC_LEFT);
    }
    return TDM_OK;
}

tdm_err crdt_relpos_encode(const crdt_relpos *rp, tbuf *out)
{
    size_t start = out->len;
    tdm_err e = tbuf_cbor_array(out, 4);
    if (!e) e = tbuf_cbor_uint(out, rp->kind);
    if (!e) e = tbuf_cbor_uint(out, rp->assoc);
    if (!e) e = tbuf_cbor_uint(out, rp->client);
    if (!e) e = tbuf_cbor_uint(out, rp->clock);
    if (e) out->len = start;
    return e;
}

tdm_err crdt_relpos_decode(crdt_relpos *rp, const uint8_t *p, size_t n)
{
    cbr r;
    size_t cnt;
    uint64_t kind, assoc, client, clock;
    tdm_err e;
    cbr_init(&r, p, n);
    if ((e = cbr_array(&r, &cnt))) return e;
    if (cnt != 4) return TDM_EMALFORMED;
    if ((e = cbr_uint(&r, &kind)) || (e = cbr_uint(&r, &assoc)) || (e = cbr_uint(&r, &client)) ||
        (e = cbr_uint(&r, &clock)) || (e = cbr_finish(&r)))
        return e;
    if (kind > CRDT_RELPOS_END || assoc > CRDT_ASSOC_LEFT || clock >= CRDT_CLOCK_MAX)
        return TDM_EMALFORMED;
    if (kind != CRDT_RELPOS_CHAR && (assoc || client || clock)) return TDM_EMALFORMED;
    rp->kind = (uint8_t)kind;
    rp->assoc = (uint8_t)assoc;
    rp->client = client;
    rp->clock = (uint32_t)clock;
    return TDM_OK;
}
