/* doc_internal.h - private structures of crdt_doc, shared by doc*.c only.
 *
 * The sequence is a splay tree of items (runs of characters from one client
 * with consecutive clocks) in document order, each node summing the visible
 * and total code points of its subtree. Items live in one pool array and are
 * named by index. Per client, `ents` maps clock ranges to items (sorted by
 * clock) and `dels` logs that client's delete operations (sorted by clock).
 */
#ifndef TANDEM_DOC_INTERNAL_H
#define TANDEM_DOC_INTERNAL_H

#include "doc.h"

#define NONE32 UINT32_MAX
/* characters a document may hold, tombstones included: subtree sums are 32-bit */
#define DOC_MAX_CHARS 0x7fffffffu
/* internal: TDM_ETOOBIG returned before anything changed (see crdt_doc_apply) */
#define TDM_ETOOBIG_NOCHANGE ((tdm_err)1000)

typedef struct item {
    uint32_t client;   /* client index */
    uint32_t clock;    /* clock of the first character */
    uint32_t len;      /* code points */
    uint32_t nbytes;   /* UTF-8 bytes held (0 when collected) */
    uint32_t content;  /* offset in the text store; NONE32 when collected */
    uint32_t olc, olk; /* left origin (client index, clock); olc NONE32: none */
    uint32_t orc, ork; /* right origin */
    uint32_t l, r, p;  /* splay tree links */
    uint32_t svis;     /* visible code points in the subtree */
    uint32_t sall;     /* all code points in the subtree */
    uint8_t deleted;
    uint8_t mark; /* MARK_* while a change is being observed (doc_delta.c) */
} item;

enum { MARK_NEW = 1, MARK_GONE = 2 };

typedef struct ent {
    uint32_t clock;
    uint32_t item;
} ent;

#define EBLK 64
typedef struct eblk {
    uint32_t n;
    ent e[EBLK];
} eblk;

/* the id index of one client: sorted blocks of entries (doc_ents.c) */
typedef struct eidx {
    eblk **b;
    uint32_t *first; /* first clock of each block (cache-friendly search) */
    uint32_t nb, cb;
    uint32_t count;
    uint32_t hint;   /* block of the last lookup: edits are local */
    uint32_t hint_i; /* entry of the last lookup within that block */
} eidx;

typedef struct epos {
    uint32_t b, i;
} epos;

typedef struct dele {
    uint32_t clock; /* first clock of this delete operation */
    uint32_t len;   /* characters deleted (= clocks used) */
    uint32_t tc;    /* target client index */
    uint32_t tk;    /* first target clock */
    uint32_t back;  /* 1: targets run tk, tk-1, ...; 0: tk, tk+1, ... */
} dele;

typedef struct client {
    uint64_t id;
    uint32_t next; /* operations held: clocks [0, next) */
    eidx ents;
    dele *dels;
    uint32_t ndels, cdels;
} dclient;

enum { OP_INS = 0, OP_TOMB = 1, OP_DEL = 2 };

/* One decoded operation (update or pending). Clients are document indices. */
typedef struct dop {
    uint32_t client, clock, len;
    uint8_t kind;
    uint8_t back;
    uint32_t ac, ak; /* INS/TOMB: left origin; DEL: target */
    uint32_t bc, bk; /* INS/TOMB: right origin */
    const uint8_t *text;
    uint32_t nbytes;
} dop;

struct crdt_doc {
    crdt_doc_opts opts;
    uint32_t self; /* own client index */
    item *items;
    uint32_t nitems, citems, free_items, live_items;
    uint32_t root;
    uint8_t *text;
    size_t ntext, ctext, garbage;
    dclient *clients;
    uint32_t nclients, cclients;
    uint32_t *by_id; /* client indices sorted by id */
    size_t len_cp, len_16, len_bytes;
    dop *pending;
    uint32_t npending, cpending;
    size_t pending_bytes;
    /* scratch reused across diff/apply calls (bounded: dropped when large) */
    dop *sc_ops;
    size_t sc_ops_cap;
    uint32_t *sc_u32;
    size_t sc_u32_cap;
    uint64_t *sc_ids;
    size_t sc_ids_cap;
    /* change observation (doc_delta.c) */
    crdt_doc_observer_fn obs_fn;
    void *obs_ctx;
    int txn_open;     /* marking items changed by the current change */
    uint32_t *marked; /* items marked in the current change (may repeat) */
    uint32_t nmarked, cmarked;
    struct ot_op *delta; /* reused for each reported change */
    tdm_err obs_err;     /* first failure to build a delta (reported, not fatal) */
};

#define SCRATCH_KEEP 4096 /* elements kept between calls */

/* doc_ents.c */
int eidx_find(const crdt_doc *d, eidx *x, uint32_t clock, epos *pos);
epos eidx_lower(const crdt_doc *d, const eidx *x, uint32_t clock); /* first entry ending > clock */
tdm_err eidx_insert_after(eidx *x, epos p, ent v);
tdm_err eidx_append(eidx *x, ent v);
void eidx_remove(eidx *x, epos p);
tdm_err eidx_from_sorted(eidx *x, const ent *v, uint32_t n);
void eidx_free(eidx *x);
size_t eidx_mem(const eidx *x);
static inline int eidx_valid(const eidx *x, epos p)
{
    return p.b < x->nb;
}
static inline ent *eidx_at(const eidx *x, epos p)
{
    return &x->b[p.b]->e[p.i];
}
static inline void eidx_next(const eidx *x, epos *p)
{
    if (++p->i >= x->b[p->b]->n) {
        p->b++;
        p->i = 0;
    }
}

/* doc.c */
tdm_err doc_client_index(crdt_doc *d, uint64_t id, uint32_t *out);
/* doc_clients_truncate - forget clients with index >= n (they must hold nothing) */
void doc_clients_truncate(crdt_doc *d, uint32_t n);
int32_t doc_client_find(const crdt_doc *d, uint64_t id);
tdm_err doc_item_new(crdt_doc *d, uint32_t *out);
void doc_item_release(crdt_doc *d, uint32_t x);
tdm_err doc_text_append(crdt_doc *d, const uint8_t *p, size_t n, uint32_t *off);
uint32_t doc_find_id(crdt_doc *d, uint32_t c, uint32_t clock, epos *pos);
tdm_err doc_split(crdt_doc *d, uint32_t x, uint32_t k, uint32_t *right);
void doc_try_merge(crdt_doc *d, uint32_t a, uint32_t b);
/* doc_try_extend - when insert o continues item `left`'s run (same client,
 * next clock, left origin its last character, same right origin, content at
 * the end of the text store, same change mark), grow the item in place and
 * return 1 with *err set; else 0. astral: 4-byte sequences in o's text, or
 * SIZE_MAX to count them. */
int doc_try_extend(crdt_doc *d, uint32_t left, const dop *o, size_t astral, tdm_err *err);
tdm_err doc_dele_add(crdt_doc *d, uint32_t c, uint32_t clock, uint32_t len, uint32_t tc,
                     uint32_t tk, uint32_t back);
void doc_mark_deleted(crdt_doc *d, uint32_t x);
void doc_compact_maybe(crdt_doc *d);
/* doc_insert_before_id - a local insert placed right before character (c, clock)
 * (a tombstone or not): how undo puts deleted text back where it stood */
tdm_err doc_insert_before_id(crdt_doc *d, uint32_t c, uint32_t clock, const char *text, size_t n);

/* doc_delta.c */
void doc_txn_begin(crdt_doc *d);
void doc_txn_end(crdt_doc *d, bool local);
void doc_mark(crdt_doc *d, uint32_t x, uint8_t m);
void doc_report_local(crdt_doc *d, size_t pos, const char *text, size_t n, size_t del);
static inline bool doc_marking(const crdt_doc *d)
{
    return d->txn_open;
}

/* doc_dset.c: the character ids deleted by the delete logs, as sorted,
 * merged ranges per client */
typedef struct drange {
    uint32_t c, lo, hi; /* client index, clocks [lo, hi) */
} drange;
typedef struct doc_dset {
    drange *v; /* owned: free() it */
    size_t n;
} doc_dset;
/* doc_dset_build - the targets of every delete operation with clock < v[c]
 * for its deleter c (v NULL: all of them). */
tdm_err doc_dset_build(crdt_doc *d, const uint32_t *v, doc_dset *out);
/* doc_dset_run - from clock k of client c (up to end): the length of the run
 * with one state, and *del whether that state is deleted. */
uint32_t doc_dset_run(const doc_dset *s, uint32_t c, uint32_t k, uint32_t end, bool *del);

/* doc_tree.c */
void tree_update(crdt_doc *d, uint32_t x);
void tree_splay(crdt_doc *d, uint32_t x);
uint32_t tree_find_vis(crdt_doc *d, size_t pos, uint32_t *off);
size_t tree_index(crdt_doc *d, uint32_t x);
uint32_t tree_next(const crdt_doc *d, uint32_t x);
uint32_t tree_prev(const crdt_doc *d, uint32_t x);
uint32_t tree_first(const crdt_doc *d);
uint32_t tree_last(const crdt_doc *d);
void tree_insert_before(crdt_doc *d, uint32_t at, uint32_t x); /* at NONE32: append */
void tree_insert_after(crdt_doc *d, uint32_t at, uint32_t x);  /* at NONE32: prepend */
void tree_remove(crdt_doc *d, uint32_t x);
uint32_t tree_build(crdt_doc *d, const uint32_t *order, uint32_t n);

/* doc_insert.c */
tdm_err doc_integrate(crdt_doc *d, const dop *o);

/* doc_delete.c */
tdm_err doc_apply_delete(crdt_doc *d, const dop *o);

/* item_skip - byte offset of code point k in an item's content (ASCII: k) */
size_t utf8_skip(const uint8_t *p, size_t n, size_t k);
static inline uint32_t item_skip(const crdt_doc *d, const item *it, uint32_t k)
{
    if (it->nbytes == it->len || k == 0) return k;
    if (k == it->len) return it->nbytes;
    return (uint32_t)utf8_skip(d->text + it->content, it->nbytes, k);
}

static inline uint64_t doc_chars(const crdt_doc *d)
{
    return d->root == NONE32 ? 0 : d->items[d->root].sall;
}

static inline size_t item_vis(const item *it)
{
    return it->deleted ? 0 : it->len;
}

#endif
