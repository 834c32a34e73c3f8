/* doc_undo.c - undo/redo steps built from the document's own operation log:
 * a step is the set of character ids the local client inserted and the
 * characters (ids and text) it deleted; reverting a step deletes the first
 * and inserts the second again, and the edits that does form the opposite
 * step. */
#include "undo.h"
#include "doc_internal.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

typedef struct urange {
    uint32_t clock, len; /* characters this client inserted */
} urange;

typedef struct udel {
    uint32_t c, clock, len; /* deleted characters, contiguous in one item */
    uint8_t *text;          /* NULL when the text was collected */
    uint32_t nbytes;
} udel;

typedef struct ustep {
    urange *ins;
    uint32_t nins, cins;
    udel *del;
    uint32_t ndel, cdel;
    uint64_t time;
    size_t bytes;
} ustep;

typedef struct ustack {
    ustep *v;
    size_t n, cap;
} ustack;

/* characters an undo or redo inserted again in place of deleted ones: later
 * steps that name the deleted characters follow this to their replacement */
typedef struct redone {
    uint32_t c, clock, len; /* the deleted characters */
    uint32_t to;            /* first clock of the replacement (own client) */
} redone;

#define REDONE_MAX 65536

struct crdt_undo {
    crdt_doc *d;
    redone *map;
    uint32_t nmap, cmap;
    crdt_undo_opts o;
    uint32_t last; /* own clocks below this are recorded */
    ustack undo, redo;
    bool stop;
    size_t bytes; /* deleted text held by all steps */
};

static void step_fini(crdt_undo *um, ustep *s)
{
    for (uint32_t i = 0; i < s->ndel; i++) free(s->del[i].text);
    free(s->del);
    free(s->ins);
    um->bytes -= s->bytes;
    memset(s, 0, sizeof *s);
}

static void stack_clear(crdt_undo *um, ustack *st)
{
    for (size_t i = 0; i < st->n; i++) step_fini(um, &st->v[i]);
    st->n = 0;
}

tdm_err crdt_undo_new(crdt_doc *doc, const crdt_undo_opts *opts, crdt_undo **out)
{
    crdt_undo *um = calloc(1, sizeof *um);
    if (!um) return TDM_ENOMEM;
    um->d = doc;
    if (opts) um->o = *opts;
    if (!um->o.capture_ms) um->o.capture_ms = 500;
    if (!um->o.max_steps) um->o.max_steps = 100;
    if (!um->o.max_bytes) um->o.max_bytes = (size_t)16 << 20;
    um->last = doc->clients[doc->self].next;
    *out = um;
    return TDM_OK;
}

void crdt_undo_free(crdt_undo *um)
{
    if (!um) return;
    stack_clear(um, &um->undo);
    stack_clear(um, &um->redo);
    free(um->undo.v);
    free(um->redo.v);
    free(um->map);
    free(um);
}

void crdt_undo_clear(crdt_undo *um)
{
    stack_clear(um, &um->undo);
    stack_clear(um, &um->redo);
}

void crdt_undo_stop_capturing(crdt_undo *um)
{
    um->stop = true;
}

size_t crdt_undo_depth(const crdt_undo *um)
{
    return um->undo.n;
}

size_t crdt_undo_redo_depth(const crdt_undo *um)
{
    return um->redo.n;
}

static tdm_err add_ins(ustep *s, uint32_t clock, uint32_t len)
{
    if (s->nins && s->ins[s->nins - 1].clock + s->ins[s->nins - 1].len == clock) {
        s->ins[s->nins - 1].len += len;
        return TDM_OK;
    }
    if (s->nins == s->cins) {
        uint32_t nc = s->cins ? s->cins * 2 : 4;
        urange *nv = realloc(s->ins, nc * sizeof(urange));
        if (!nv) return TDM_ENOMEM;
        s->ins = nv;
        s->cins = nc;
    }
    s->ins[s->nins++] = (urange){clock, len};
    return TDM_OK;
}

static tdm_err add_del(crdt_undo *um, ustep *s, uint32_t c, uint32_t clock, uint32_t len,
                       const uint8_t *text, uint32_t nbytes)
{
    if (s->ndel == s->cdel) {
        uint32_t nc = s->cdel ? s->cdel * 2 : 4;
        udel *nv = realloc(s->del, nc * sizeof(udel));
        if (!nv) return TDM_ENOMEM;
        s->del = nv;
        s->cdel = nc;
    }
    udel u = {c, clock, len, NULL, 0};
    if (text) {
        u.text = malloc(nbytes ? nbytes : 1);
        if (!u.text) return TDM_ENOMEM;
        memcpy(u.text, text, nbytes);
        u.nbytes = nbytes;
        s->bytes += nbytes;
        um->bytes += nbytes;
    }
    s->del[s->ndel++] = u;
    return TDM_OK;
}

/* the deleted characters (tc, [lo, hi)) with their text, item by item */
static tdm_err capture_targets(crdt_undo *um, ustep *s, uint32_t tc, uint32_t lo, uint32_t hi)
{
    crdt_doc *d = um->d;
    for (uint32_t k = lo; k < hi;) {
        uint32_t x = doc_find_id(d, tc, k, NULL);
        if (x == NONE32) { /* not a character: a hostile peer's delete; skip one */
            k++;
            continue;
        }
        const item *it = &d->items[x];
        uint32_t end = it->clock + it->len < hi ? it->clock + it->len : hi;
        const uint8_t *text = NULL;
        uint32_t nb = 0;
        if (it->content != NONE32) {
            uint32_t a = item_skip(d, it, k - it->clock), b = item_skip(d, it, end - it->clock);
            text = d->text + it->content + a;
            nb = b - a;
        }
        tdm_err e = add_del(um, s, tc, k, end - k, text, nb);
        if (e) return e;
        k = end;
    }
    return TDM_OK;
}

/* capture - the own operations with clocks [lo, hi) as a step */
static tdm_err capture(crdt_undo *um, uint32_t lo, uint32_t hi, ustep *s)
{
    crdt_doc *d = um->d;
    dclient *me = &d->clients[d->self];
    tdm_err e = TDM_OK;
    for (epos p = eidx_lower(d, &me->ents, lo); !e && eidx_valid(&me->ents, p);
         eidx_next(&me->ents, &p)) {
        const ent *en = eidx_at(&me->ents, p);
        uint32_t end = en->clock + d->items[en->item].len;
        if (en->clock >= hi) break;
        uint32_t a = en->clock > lo ? en->clock : lo, b = end < hi ? end : hi;
        if (a < b) e = add_ins(s, a, b - a);
    }
    for (uint32_t i = 0; i < me->ndels && !e; i++) {
        const dele *r = &me->dels[i];
        if (r->clock + r->len <= lo) continue;
        if (r->clock >= hi) break;
        uint32_t a = r->clock > lo ? r->clock : lo,
                 b = r->clock + r->len < hi ? r->clock + r->len : hi;
        uint32_t s0 = a - r->clock, n = b - a;
        uint32_t tlo = r->back ? r->tk - s0 - (n - 1) : r->tk + s0;
        e = capture_targets(um, s, r->tc, tlo, tlo + n);
    }
    return e;
}

/* enforce_bytes - drop the oldest steps (redo first, then undo) until the
 * deleted text held fits max_bytes; the newest undo step always stays */
static void enforce_bytes(crdt_undo *um)
{
    ustack *order[2] = {&um->redo, &um->undo};
    for (int k = 0; k < 2 && um->bytes > um->o.max_bytes; k++) {
        ustack *st = order[k];
        while (um->bytes > um->o.max_bytes && st->n > (size_t)(st == &um->undo)) {
            step_fini(um, &st->v[0]);
            memmove(&st->v[0], &st->v[1], (st->n - 1) * sizeof(ustep));
            st->n--;
        }
    }
}

static tdm_err push(crdt_undo *um, ustack *st, ustep *s)
{
    if (st->n == um->o.max_steps) { /* drop the oldest */
        step_fini(um, &st->v[0]);
        memmove(&st->v[0], &st->v[1], (st->n - 1) * sizeof(ustep));
        st->n--;
    }
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 8;
        ustep *nv = realloc(st->v, nc * sizeof(ustep));
        if (!nv) return TDM_ENOMEM;
        st->v = nv;
        st->cap = nc;
    }
    st->v[st->n++] = *s;
    enforce_bytes(um);
    return TDM_OK;
}

/* merge src into dst (the newer edits join the open step) */
static tdm_err join(crdt_undo *um, ustep *dst, ustep *src)
{
    tdm_err e = TDM_OK;
    for (uint32_t i = 0; i < src->nins && !e; i++)
        e = add_ins(dst, src->ins[i].clock, src->ins[i].len);
    for (uint32_t i = 0; i < src->ndel && !e; i++) {
        udel *u = &src->del[i];
        e = add_del(um, dst, u->c, u->clock, u->len, u->text, u->nbytes);
    }
    return e;
}

tdm_err crdt_undo_record(crdt_undo *um, uint64_t now_ms)
{
    crdt_doc *d = um->d;
    uint32_t hi = d->clients[d->self].next;
    if (hi == um->last) return TDM_OK;
    ustep s = {0};
    tdm_err e = capture(um, um->last, hi, &s);
    if (!e) {
        ustep *top = um->undo.n ? &um->undo.v[um->undo.n - 1] : NULL;
        if (top && !um->stop && now_ms >= top->time && now_ms - top->time < um->o.capture_ms) {
            e = join(um, top, &s);
            top->time = now_ms;
            step_fini(um, &s);
            enforce_bytes(um);
        } else {
            s.time = now_ms;
            e = push(um, &um->undo, &s);
            if (e) step_fini(um, &s);
        }
    } else {
        step_fini(um, &s);
    }
    if (!e) {
        um->last = hi;
        um->stop = false;
        stack_clear(um, &um->redo);
    }
    return e;
}

typedef struct dorder {
    size_t order;
    uint32_t i;
} dorder;

static int dorder_cmp(const void *a, const void *b)
{
    const dorder *x = a, *y = b;
    return x->order > y->order ? -1 : x->order < y->order; /* last first */
}

static tdm_err map_add(crdt_undo *um, uint32_t c, uint32_t clock, uint32_t len, uint32_t to)
{
    if (um->nmap == REDONE_MAX) { /* forget the oldest half */
        memmove(um->map, um->map + REDONE_MAX / 2, (REDONE_MAX / 2) * sizeof(redone));
        um->nmap = REDONE_MAX / 2;
    }
    if (um->nmap == um->cmap) {
        uint32_t nc = um->cmap ? um->cmap * 2 : 16;
        redone *nv = realloc(um->map, nc * sizeof(redone));
        if (!nv) return TDM_ENOMEM;
        um->map = nv;
        um->cmap = nc;
    }
    um->map[um->nmap++] = (redone){c, clock, len, to};
    return TDM_OK;
}

/* delete_ids - delete the visible characters (c, [lo, hi)); deleted ones that
 * an undo or redo replaced are followed to their replacement */
static tdm_err delete_ids(crdt_undo *um, uint32_t c, uint32_t lo, uint32_t hi, int depth)
{
    crdt_doc *d = um->d;
    tdm_err e = TDM_OK;
    if (depth > 64) return TDM_OK;
    for (uint32_t k = lo; k < hi && !e;) {
        uint32_t x = doc_find_id(d, c, k, NULL);
        if (x == NONE32) break;
        const item *it = &d->items[x];
        uint32_t stop = it->clock + it->len < hi ? it->clock + it->len : hi;
        if (!it->deleted) {
            tree_splay(d, x);
            it = &d->items[x];
            size_t pos = (it->l != NONE32 ? d->items[it->l].svis : 0) + (k - it->clock);
            e = crdt_doc_delete(d, pos, stop - k);
        } else {
            for (uint32_t m = 0; m < um->nmap && !e; m++) {
                const redone r = um->map[m];
                uint32_t a = r.clock > k ? r.clock : k;
                uint32_t b = r.clock + r.len < stop ? r.clock + r.len : stop;
                if (r.c != c || a >= b) continue;
                e = delete_ids(um, d->self, r.to + (a - r.clock), r.to + (b - r.clock), depth + 1);
            }
        }
        k = stop;
    }
    return e;
}

/* revert - undo step s with local edits; *out gets the step those edits form */
static tdm_err revert(crdt_undo *um, ustep *s, uint64_t now_ms, ustep *out)
{
    crdt_doc *d = um->d;
    uint32_t before = d->clients[d->self].next;
    tdm_err e = TDM_OK, missing = TDM_OK;
    /* delete what the step inserted, wherever it is now */
    for (uint32_t i = 0; i < s->nins && !e; i++)
        e = delete_ids(um, d->self, s->ins[i].clock, s->ins[i].clock + s->ins[i].len, 0);
    /* insert again what it deleted, last piece first so pieces keep their order */
    dorder *ord = s->ndel ? malloc(s->ndel * sizeof(dorder)) : NULL;
    if (s->ndel && !ord && !e) e = TDM_ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->ndel && !e; i++) {
        udel *u = &s->del[i];
        uint32_t x = doc_find_id(d, u->c, u->clock, NULL);
        if (x == NONE32) continue;
        ord[n++] = (dorder){tree_index(d, x) + (u->clock - d->items[x].clock), i};
    }
    if (!e && n) qsort(ord, n, sizeof(dorder), dorder_cmp);
    for (uint32_t j = 0; j < n && !e; j++) {
        udel *u = &s->del[ord[j].i];
        if (!u->text) {
            missing = TDM_ENOTFOUND;
            continue;
        }
        /* each part goes right before its own tombstone: where it stood, even
         * when remote text was inserted between the parts meanwhile */
        const uint8_t *t = u->text;
        size_t left = u->nbytes;
        for (uint32_t k = u->clock, end = u->clock + u->len; k < end && !e;) {
            uint32_t x = doc_find_id(d, u->c, k, NULL);
            if (x == NONE32) break;
            const item *it = &d->items[x];
            uint32_t stop = it->clock + it->len < end ? it->clock + it->len : end;
            size_t nb = utf8_skip(t, left, stop - k);
            uint32_t to = d->clients[d->self].next;
            e = doc_insert_before_id(d, u->c, k, (const char *)t, nb);
            if (!e) e = map_add(um, u->c, k, stop - k, to);
            t += nb;
            left -= nb;
            k = stop;
        }
    }
    free(ord);
    uint32_t after = d->clients[d->self].next;
    memset(out, 0, sizeof *out);
    out->time = now_ms;
    tdm_err ce = capture(um, before, after, out);
    um->last = after;
    return e ? e : ce ? ce : missing;
}

static tdm_err move(crdt_undo *um, ustack *from, ustack *to, uint64_t now_ms, bool *did)
{
    if (did) *did = false;
    if (!from->n) return TDM_OK;
    ustep s = from->v[--from->n], r;
    tdm_err e = revert(um, &s, now_ms, &r);
    step_fini(um, &s);
    if (r.nins || r.ndel) {
        tdm_err pe = push(um, to, &r);
        if (pe) step_fini(um, &r);
        if (!e) e = pe;
    } else {
        step_fini(um, &r);
    }
    um->stop = true; /* the next edit starts a new step */
    if (did) *did = true;
    return e;
}

tdm_err crdt_undo_undo(crdt_undo *um, uint64_t now_ms, bool *did)
{
    tdm_err e = crdt_undo_record(um, now_ms);
    if (e) return e;
    return move(um, &um->undo, &um->redo, now_ms, did);
}

tdm_err crdt_undo_redo(crdt_undo *um, uint64_t now_ms, bool *did)
{
    tdm_err e = crdt_undo_record(um, now_ms);
    if (e) return e;
    return move(um, &um->redo, &um->undo, now_ms, did);
}
