/* doc_insert.c - integrating an insert (local or remote) with the FugueMax rule.
 *
 * The rule is the YjsMod integration of Gentle's reference-crdts, which the
 * Fugue paper proves equivalent to FugueMax: scan the items between the left
 * origin and the right origin; an item whose left origin lies further left
 * ends the scan; one with the same left origin is skipped when its right origin
 * lies further right, tentatively passed when it lies further left, and
 * ordered by client id when the right origins are equal.
 */
#include "doc_internal.h"
#include "utf8.h"

/* character index (all characters, deleted included) of id (c, k); -1 if unknown */
static int64_t id_index(crdt_doc *d, uint32_t c, uint32_t k)
{
    uint32_t x = doc_find_id(d, c, k, NULL);
    if (x == NONE32) return -1;
    return (int64_t)tree_index(d, x) + (k - d->items[x].clock);
}

static uint32_t find_dest(crdt_doc *d, const dop *o, uint32_t left, uint32_t right)
{
    int64_t total = d->root == NONE32 ? 0 : d->items[d->root].sall;
    int64_t lidx = o->ac == NONE32 ? -1 : id_index(d, o->ac, o->ak);
    int64_t ridx = o->bc == NONE32 ? total : id_index(d, o->bc, o->bk);
    uint64_t me = d->clients[o->client].id;
    uint32_t cur = left == NONE32 ? tree_first(d) : tree_next(d, left);
    uint32_t dest = cur;
    int scanning = 0;
    for (;;) {
        if (!scanning) dest = cur;
        if (cur == NONE32 || cur == right) break;
        const item *c = &d->items[cur];
        int64_t oleft = c->olc == NONE32 ? -1 : id_index(d, c->olc, c->olk);
        if (oleft < lidx) break;
        if (oleft == lidx) {
            c = &d->items[cur];
            int64_t oright = c->orc == NONE32 ? total : id_index(d, c->orc, c->ork);
            if (oright < ridx) {
                scanning = 1;
            } else if (oright == ridx) {
                if (me < d->clients[d->items[cur].client].id) break;
                scanning = 0;
            } else {
                scanning = 0;
            }
        }
        cur = tree_next(d, cur);
    }
    return dest;
}

tdm_err doc_integrate(crdt_doc *d, const dop *o0)
{
    dop o = *o0;
    dclient *cl = &d->clients[o.client];
    tdm_err e;
    if (o.clock + o.len <= cl->next) return TDM_OK; /* already known */
    if (o.clock > cl->next) return TDM_EINVAL;      /* not ready: caller bug */
    if (o.clock < cl->next) {                       /* partly known: keep the tail */
        uint32_t k = cl->next - o.clock;
        if (o.kind == OP_INS) {
            size_t kb = utf8_skip(o.text, o.nbytes, k);
            o.text += kb;
            o.nbytes -= (uint32_t)kb;
        }
        o.clock += k;
        o.len -= k;
        o.ac = o.client;
        o.ak = o.clock - 1;
    }
    uint32_t left = NONE32, right = NONE32, y;
    if (o.ac != NONE32) {
        left = doc_find_id(d, o.ac, o.ak, NULL);
        if (left == NONE32) {
            o.ac = NONE32; /* not a character: treated as no origin, on every replica */
        } else {
            uint32_t k = o.ak - d->items[left].clock + 1;
            if (k < d->items[left].len) {
                e = doc_split(d, left, k, &y);
                if (e) return e;
            }
        }
    }
    if (o.bc != NONE32) {
        right = doc_find_id(d, o.bc, o.bk, NULL);
        if (right == NONE32) {
            o.bc = NONE32;
        } else {
            uint32_t k = o.bk - d->items[right].clock;
            if (k > 0) {
                int was_left = right == left;
                e = doc_split(d, right, k, &y);
                if (e) return e;
                right = y;
                /* only a hostile update puts its right origin inside the left one */
                if (was_left) left = doc_find_id(d, o.ac, o.ak, NULL);
            }
        }
    }
    uint32_t after_left = left == NONE32 ? tree_first(d) : tree_next(d, left);
    if (after_left != right && left != NONE32 && right != NONE32 &&
        tree_index(d, right) <= tree_index(d, left)) {
        /* only a hostile update names a right origin left of its left origin:
         * drop it, and store it dropped, so every replica and every later
         * snapshot or diff sees the same operation */
        o.bc = NONE32;
        right = NONE32;
    }
    /* the run continues the item on its left (typing forwards): extend it */
    if (after_left == right && left != NONE32 && doc_try_extend(d, left, &o, SIZE_MAX, &e))
        return e;
    uint32_t x;
    e = doc_item_new(d, &x);
    if (e) return e;
    uint32_t off = NONE32;
    if (o.kind == OP_INS) {
        e = doc_text_append(d, o.text, o.nbytes, &off);
        if (!e) e = eidx_append(&d->clients[o.client].ents, (ent){o.clock, x});
    } else {
        e = eidx_append(&d->clients[o.client].ents, (ent){o.clock, x});
    }
    if (e) {
        doc_item_release(d, x);
        return e;
    }
    item *it = &d->items[x];
    it->client = o.client;
    it->clock = o.clock;
    it->len = o.len;
    it->content = off;
    it->nbytes = o.kind == OP_INS ? o.nbytes : 0;
    it->olc = o.ac;
    it->olk = o.ac == NONE32 ? 0 : o.ak;
    it->orc = o.bc;
    it->ork = o.bc == NONE32 ? 0 : o.bk;
    it->deleted = o.kind == OP_TOMB;
    it->l = it->r = it->p = NONE32;

    if (after_left == right) {
        if (right != NONE32)
            tree_insert_before(d, right, x);
        else
            tree_insert_after(d, left, x);
    } else {
        tree_insert_before(d, find_dest(d, &o, left, right), x);
    }
    d->clients[o.client].next = o.clock + o.len;
    if (o.kind == OP_INS && d->txn_open) doc_mark(d, x, MARK_NEW);
    if (o.kind == OP_INS) {
        d->len_cp += o.len;
        d->len_bytes += o.nbytes;
        d->len_16 += o.len + (o.nbytes != o.len ? utf8_count_astral(o.text, o.nbytes) : 0);
    }
    doc_try_merge(d, tree_prev(d, x), x);
    return TDM_OK;
}
