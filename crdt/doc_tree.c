/* doc_tree.c - the document-order splay tree over items.
 *
 * Each node carries the visible and total code points of its subtree, so a
 * visible position is found in O(log n) amortized, and splaying keeps the
 * neighbourhood of recent edits near the root (editing traces are local).
 */
#include "doc_internal.h"

#define IT(x) (&d->items[(x)])

void tree_update(crdt_doc *d, uint32_t x)
{
    item *n = IT(x);
    uint32_t sv = (uint32_t)item_vis(n), sa = n->len;
    if (n->l != NONE32) {
        sv += IT(n->l)->svis;
        sa += IT(n->l)->sall;
    }
    if (n->r != NONE32) {
        sv += IT(n->r)->svis;
        sa += IT(n->r)->sall;
    }
    n->svis = sv;
    n->sall = sa;
}

static void rotate(crdt_doc *d, uint32_t x)
{
    item *n = IT(x);
    uint32_t p = n->p;
    item *pn = IT(p);
    uint32_t g = pn->p;
    if (pn->l == x) {
        pn->l = n->r;
        if (n->r != NONE32) IT(n->r)->p = p;
        n->r = p;
    } else {
        pn->r = n->l;
        if (n->l != NONE32) IT(n->l)->p = p;
        n->l = p;
    }
    pn->p = x;
    n->p = g;
    if (g == NONE32) {
        d->root = x;
    } else if (IT(g)->l == p) {
        IT(g)->l = x;
    } else {
        IT(g)->r = x;
    }
    tree_update(d, p);
}

void tree_splay(crdt_doc *d, uint32_t x)
{
    while (IT(x)->p != NONE32) {
        uint32_t p = IT(x)->p;
        uint32_t g = IT(p)->p;
        if (g != NONE32) {
            int zigzig = (IT(g)->l == p) == (IT(p)->l == x);
            rotate(d, zigzig ? p : x);
        }
        rotate(d, x);
    }
    tree_update(d, x);
}

uint32_t tree_find_vis(crdt_doc *d, size_t pos, uint32_t *off)
{
    uint32_t x = d->root;
    while (x != NONE32) {
        item *n = IT(x);
        size_t lv = n->l != NONE32 ? IT(n->l)->svis : 0;
        if (pos < lv) {
            x = n->l;
            continue;
        }
        pos -= lv;
        size_t v = item_vis(n);
        if (pos < v) {
            *off = (uint32_t)pos;
            tree_splay(d, x);
            return x;
        }
        pos -= v;
        x = n->r;
    }
    return NONE32;
}

size_t tree_index(crdt_doc *d, uint32_t x)
{
    tree_splay(d, x);
    uint32_t l = IT(x)->l;
    return l != NONE32 ? IT(l)->sall : 0;
}

static uint32_t leftmost(const crdt_doc *d, uint32_t x)
{
    while (d->items[x].l != NONE32) x = d->items[x].l;
    return x;
}

static uint32_t rightmost(const crdt_doc *d, uint32_t x)
{
    while (d->items[x].r != NONE32) x = d->items[x].r;
    return x;
}

uint32_t tree_next(const crdt_doc *d, uint32_t x)
{
    if (d->items[x].r != NONE32) return leftmost(d, d->items[x].r);
    uint32_t p = d->items[x].p;
    while (p != NONE32 && d->items[p].r == x) {
        x = p;
        p = d->items[p].p;
    }
    return p;
}

uint32_t tree_prev(const crdt_doc *d, uint32_t x)
{
    if (d->items[x].l != NONE32) return rightmost(d, d->items[x].l);
    uint32_t p = d->items[x].p;
    while (p != NONE32 && d->items[p].l == x) {
        x = p;
        p = d->items[p].p;
    }
    return p;
}

uint32_t tree_first(const crdt_doc *d)
{
    return d->root == NONE32 ? NONE32 : leftmost(d, d->root);
}

uint32_t tree_last(const crdt_doc *d)
{
    return d->root == NONE32 ? NONE32 : rightmost(d, d->root);
}

static void attach(crdt_doc *d, uint32_t parent, int right, uint32_t x)
{
    item *n = IT(x);
    n->l = n->r = NONE32;
    n->p = parent;
    if (parent == NONE32) {
        d->root = x;
    } else if (right) {
        IT(parent)->r = x;
    } else {
        IT(parent)->l = x;
    }
    tree_update(d, x);
    tree_splay(d, x);
}

void tree_insert_after(crdt_doc *d, uint32_t at, uint32_t x)
{
    if (at == NONE32) {
        uint32_t f = tree_first(d);
        attach(d, f, 0, x);
        return;
    }
    if (IT(at)->r == NONE32) {
        attach(d, at, 1, x);
    } else {
        attach(d, leftmost(d, IT(at)->r), 0, x);
    }
}

void tree_insert_before(crdt_doc *d, uint32_t at, uint32_t x)
{
    if (at == NONE32) {
        uint32_t l = tree_last(d);
        attach(d, l, 1, x);
        return;
    }
    if (IT(at)->l == NONE32) {
        attach(d, at, 0, x);
    } else {
        attach(d, rightmost(d, IT(at)->l), 1, x);
    }
}

void tree_remove(crdt_doc *d, uint32_t x)
{
    tree_splay(d, x);
    item *n = IT(x);
    uint32_t l = n->l, r = n->r;
    if (l != NONE32) IT(l)->p = NONE32;
    if (r != NONE32) IT(r)->p = NONE32;
    if (l == NONE32) {
        d->root = r;
    } else {
        d->root = l;
        uint32_t m = rightmost(d, l);
        tree_splay(d, m); /* m becomes root of the left tree, with no right child */
        IT(m)->r = r;
        if (r != NONE32) IT(r)->p = m;
        tree_update(d, m);
    }
    n->l = n->r = n->p = NONE32;
}

static uint32_t build(crdt_doc *d, const uint32_t *order, uint32_t lo, uint32_t hi, uint32_t parent)
{
    if (lo >= hi) return NONE32;
    uint32_t mid = lo + (hi - lo) / 2;
    uint32_t x = order[mid];
    IT(x)->p = parent;
    IT(x)->l = build(d, order, lo, mid, x);
    IT(x)->r = build(d, order, mid + 1, hi, x);
    tree_update(d, x);
    return x;
}

uint32_t tree_build(crdt_doc *d, const uint32_t *order, uint32_t n)
{
    d->root = build(d, order, 0, n, NONE32);
    return d->root;
}
