/* store_verify.c - checking one document: metadata against the log, every
 * value's frame, a full replay, chat records and OT history. */
#include "store_internal.h"

#include <string.h>

typedef struct vctx {
    store_problem_fn fn;
    void *ctx;
    size_t problems;
    tdm_err first;
} vctx;

static void problem(vctx *v, const char *what, uint64_t at, tdm_err e)
{
    v->problems++;
    if (!v->first) v->first = e;
    if (v->fn) v->fn(v->ctx, what, at, e);
}

typedef struct walk {
    uint64_t count, bytes, first, last;
    bool gap;
} walk;

static void walk_add(walk *w, uint64_t n, size_t len)
{
    if (w->count && n != w->last + 1) w->gap = true;
    if (!w->count) w->first = n;
    w->last = n;
    w->count++;
    w->bytes += len;
}

/* Walk every key id|n of dbi; check each frame with `tag`; for chat also
 * decode the record. Keys must be 16 bytes. */
static int walk_prefix(MDB_txn *txn, MDB_dbi dbi, uint64_t id, uint8_t tag, vctx *vc, walk *w)
{
    memset(w, 0, sizeof *w);
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc) return rc;
    uint8_t kb[16];
    store__key2(kb, id, 0);
    MDB_val k = {16, kb}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 8 && memcmp(k.mv_data, kb, 8) == 0) {
        if (k.mv_size != 16) {
            problem(vc, "key of the wrong size", 0, TDM_ECORRUPT);
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            continue;
        }
        uint64_t n = store__get_u64((const uint8_t *)k.mv_data + 8);
        const uint8_t *p;
        size_t len;
        store_ot_rec rec;
        tdm_err e = tag == STORE_TAG_OT ? store__ot_unframe(&v, &rec) /* either format */
                                        : store__unframe(&v, tag, &p, &len);
        if (!e && tag == STORE_TAG_OT) p = rec.op, len = rec.op_len;
        if (e)
            problem(vc,
                    tag == STORE_TAG_LOG    ? "update fails its checksum"
                    : tag == STORE_TAG_CHAT ? "chat message fails its checksum"
                                            : "OT operation fails its checksum",
                    n, e);
        store_chat_msg msg;
        if (!e && tag == STORE_TAG_CHAT && (store__chat_decode(p, len, &msg) || msg.id != n))
            problem(vc, "chat message does not decode", n, TDM_ECORRUPT);
        walk_add(w, n, e ? 0 : len);
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

typedef struct jwalk {
    walk *w;
    bool ot;
    uint64_t from; /* OT: versions before the first kept were trimmed */
} jwalk;

static int jwalk_one(void *ctx, const store__jrec *r)
{
    jwalk *j = ctx;
    if (j->ot && r->ot && r->version >= j->from) walk_add(j->w, r->version, r->ot_n);
    if (!j->ot && r->upd) walk_add(j->w, r->seq, r->upd_n);
    return 0;
}

/* Continue walk w with the document's journal records (log or OT). */
static void walk_jrnl(store *st, MDB_txn *txn, const store__meta *m, bool ot, vctx *vc, walk *w)
{
    jwalk j = {w, ot, m->pub.ot_first};
    uint64_t bad = 0;
    tdm_err e = store__jrnl_walk(st, txn, m->pub.id, jwalk_one, &j, &bad);
    if (e == TDM_ECORRUPT)
        problem(vc, "journal record fails its checksum", bad, e);
    else if (e)
        problem(vc, "journal could not be read", 0, e);
}

static void check_log(store *st, MDB_txn *txn, const store__meta *m, vctx *vc)
{
    walk w;
    int rc = walk_prefix(txn, st->db_log, m->pub.id, STORE_TAG_LOG, vc, &w);
    if (rc) problem(vc, "log could not be read", 0, store__err(rc));
    walk_jrnl(st, txn, m, false, vc, &w);
    if (w.count != m->pub.updates)
        problem(vc, "metadata update count differs from the log", 0, TDM_ECORRUPT);
    if (w.bytes != m->pub.log_bytes)
        problem(vc, "metadata log bytes differ from the log", 0, TDM_ECORRUPT);
    if (w.count && w.last >= m->pub.next_seq)
        problem(vc, "log entry at or past the next sequence number", w.last, TDM_ECORRUPT);
    if (w.gap) problem(vc, "gap in the log sequence", 0, TDM_ECORRUPT);

    uint8_t kb[8];
    store__put_u64(kb, m->pub.id);
    MDB_val k = {8, kb}, v;
    rc = mdb_get(txn, st->db_snap, &k, &v);
    uint64_t snap_bytes = 0;
    if (rc == 0) {
        const uint8_t *p;
        size_t n;
        if (store__unframe(&v, STORE_TAG_SNAP, &p, &n))
            problem(vc, "snapshot fails its checksum", 0, TDM_ECORRUPT);
        else
            snap_bytes = n;
    } else if (rc != MDB_NOTFOUND) {
        problem(vc, "snapshot could not be read", 0, store__err(rc));
    }
    if (snap_bytes != m->pub.snapshot_bytes)
        problem(vc, "metadata snapshot bytes differ from the snapshot", 0, TDM_ECORRUPT);

    crdt_doc *doc = NULL;
    tdm_err e = crdt_doc_new(0, &doc);
    store__replay r;
    if (!e) e = store__replay_doc(st, txn, m->pub.id, doc, &r);
    if (e == TDM_ENOMEM)
        problem(vc, "out of memory replaying the document", 0, e);
    else if (e && r.bad_snapshot)
        problem(vc, "snapshot does not load", 0, e);
    else if (e)
        problem(vc, "update does not apply", r.bad_seq, e);
    else if (crdt_doc_pending(doc))
        problem(vc, "operations left pending (missing dependencies)", 0, TDM_EPENDING_FULL);
    crdt_doc_free(doc);
}

static void check_chat_ot(store *st, MDB_txn *txn, const store__meta *m, vctx *vc)
{
    walk w;
    int rc = walk_prefix(txn, st->db_chat, m->pub.id, STORE_TAG_CHAT, vc, &w);
    if (rc) problem(vc, "chat could not be read", 0, store__err(rc));
    if (w.count != m->pub.chat_count) problem(vc, "metadata chat count differs", 0, TDM_ECORRUPT);
    if (w.count && w.last >= m->pub.chat_next_id)
        problem(vc, "chat id at or past the next id", w.last, TDM_ECORRUPT);

    rc = walk_prefix(txn, st->db_ot, m->pub.id, STORE_TAG_OT, vc, &w);
    if (rc) problem(vc, "OT history could not be read", 0, store__err(rc));
    walk_jrnl(st, txn, m, true, vc, &w);
    uint64_t want = m->pub.ot_next - m->pub.ot_first;
    if (w.count != want || w.gap ||
        (w.count && (w.first != m->pub.ot_first || w.last + 1 != m->pub.ot_next)))
        problem(vc, "OT history differs from its metadata", 0, TDM_ECORRUPT);
}

tdm_err store_verify_doc(store *st, const void *name, size_t name_len, store_problem_fn fn,
                         void *ctx, size_t *problems)
{
    if (problems) *problems = 0;
    if (!st) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    vctx vc = {fn, ctx, 0, TDM_OK};
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) return e;
    store__meta m;
    e = store__doc_find(st, txn, name, name_len, &m);
    if (e == TDM_ECORRUPT) problem(&vc, "metadata is corrupt", 0, e);
    if (!e) {
        check_log(st, txn, &m, &vc);
        check_chat_ot(st, txn, &m, &vc);
    }
    store__rd_end(st, txn);
    if (problems) *problems = vc.problems;
    if (e && e != TDM_ECORRUPT) return e;
    return vc.first;
}
