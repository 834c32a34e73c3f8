/* store_compact.c - merging a document's log into its snapshot (writer side),
 * compaction on demand, and the compacted whole-file copy. */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define COMPACT_ALL_CHUNK 64 /* names collected per read transaction */

bool store__wants_compact(const store *st, const store__meta *m)
{
    if (st->opts.no_auto_compact) return false;
    if (m->pub.next_seq < m->auto_after_seq) return false;
    if (m->pub.log_bytes < m->pub.snapshot_bytes / st->opts.compact_share) return false;
    return m->pub.updates >= st->opts.compact_updates || m->pub.log_bytes >= st->opts.compact_bytes;
}

/* Delete log entries of doc id with seq <= cut. */
static int drop_log(store *st, MDB_txn *txn, uint64_t id, uint64_t cut)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->db_log, &c);
    if (rc) return rc;
    uint8_t kb[16];
    store__key2(kb, id, 0);
    MDB_val k = {16, kb}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == 16 && memcmp(k.mv_data, kb, 8) == 0 &&
           store__get_u64((const uint8_t *)k.mv_data + 8) <= cut) {
        rc = mdb_cursor_del(c, 0);
        if (!rc) rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The new snapshot must load back to the same text and state vector before
 * it may replace the log it supersedes: a snapshot the CRDT cannot read back
 * would lose data, so compaction refuses (TDM_ECORRUPT) and keeps the log. */
static tdm_err check_roundtrip(crdt_doc *doc, const crdt_sv *sv, const tbuf *snap)
{
    crdt_doc *back = NULL;
    crdt_sv *sv2 = crdt_sv_new();
    tbuf t1, t2;
    tbuf_init(&t1, 0);
    tbuf_init(&t2, 0);
    tdm_err e = sv2 ? crdt_doc_new(0, &back) : TDM_ENOMEM;
    if (!e && crdt_doc_load(back, snap->data, snap->len)) e = TDM_ECORRUPT;
    if (!e) e = crdt_doc_state_vector(back, sv2);
    if (!e) e = crdt_doc_text(doc, &t1);
    if (!e) e = crdt_doc_text(back, &t2);
    if (!e && (!crdt_sv_equal(sv, sv2) || t1.len != t2.len ||
               (t1.len && memcmp(t1.data, t2.data, t1.len) != 0)))
        e = TDM_ECORRUPT;
    tbuf_fini(&t1);
    tbuf_fini(&t2);
    crdt_sv_free(sv2);
    crdt_doc_free(back);
    return e;
}

/* Everything that can fail without writing: load, replay, encode, check. */
static tdm_err build_snapshot(store *st, MDB_txn *txn, const store__meta *m, tbuf *snap,
                              store__replay *r, size_t *clients, size_t *text_len)
{
    crdt_doc *doc = NULL;
    crdt_sv *sv = crdt_sv_new();
    tdm_err e = sv ? crdt_doc_new(0, &doc) : TDM_ENOMEM;
    if (!e) e = store__replay_doc(st, txn, m->pub.id, doc, r);
    if (!e && r->cut_seq && st->opts.compact_gc) e = crdt_doc_gc(doc);
    if (!e && r->cut_seq) e = crdt_doc_snapshot(doc, snap);
    if (!e) e = crdt_doc_state_vector(doc, sv);
    if (!e && r->cut_seq) e = check_roundtrip(doc, sv, snap);
    if (!e) {
        *clients = crdt_sv_count(sv);
        *text_len = crdt_doc_len(doc);
    }
    crdt_sv_free(sv);
    crdt_doc_free(doc);
    return e;
}

int store__exec_compact(store *st, MDB_txn *txn, store__job *j)
{
    store__meta m;
    tdm_err e = j->kind == STORE_JOB_COMPACT ? store__doc_find(st, txn, j->key, j->key_len, &m)
                                             : store__meta_get(st, txn, j->arg, &m);
    if (e || m.pub.updates == 0) {
        j->err = e;
        return 0;
    }
    /* the log whole in its tree first (drop_log deletes from the tree) */
    int rc = store__jrnl_migrate(st, txn);
    if (rc) return rc;
    if (st->jrnl_stuck) {
        j->err = TDM_ECORRUPT;
        return 0;
    }
    tbuf snap;
    tbuf_init(&snap, 0);
    store__replay r;
    size_t clients = 0, text_len = 0;
    e = build_snapshot(st, txn, &m, &snap, &r, &clients, &text_len);
    if (e || r.cut_seq == 0) { /* error, or everything is still pending */
        tbuf_fini(&snap);
        j->err = e;
        j->id = !e && store__wants_compact(st, &m);
        return 0;
    }
    uint8_t kb[8];
    store__put_u64(kb, m.pub.id);
    MDB_val k = {8, kb};
    rc = store__put_framed(txn, st->db_snap, &k, STORE_TAG_SNAP, snap.data, snap.len, 0);
    if (!rc) rc = drop_log(st, txn, m.pub.id, r.cut_seq);
    if (!rc) {
        m.pub.updates = r.kept;
        m.pub.log_bytes = r.kept_bytes;
        m.pub.snapshot_bytes = snap.len;
        m.pub.clients = clients;
        m.pub.text_len = text_len;
        m.pub.compactions++;
        m.pub.updated_ms = store__now_ms();
        rc = store__meta_put(txn, st, &m);
    }
    tbuf_fini(&snap);
    j->id = store__wants_compact(st, &m);
    return rc;
}

int store__exec_holdoff(store *st, MDB_txn *txn, store__job *j)
{
    store__meta m;
    tdm_err e = store__meta_get(st, txn, j->arg, &m);
    if (e) {
        j->err = e;
        return 0;
    }
    m.auto_after_seq = m.pub.next_seq + st->opts.compact_updates;
    return store__meta_put(txn, st, &m);
}

tdm_err store_compact_doc(store *st, const void *name, size_t name_len)
{
    if (!st) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    store__job *j = store__job_new(STORE_JOB_COMPACT, name, name_len, NULL, 0);
    if (!j) return TDM_ENOMEM;
    return store__run_sync(st, j, NULL, NULL);
}

typedef struct name_chunk {
    uint8_t names[COMPACT_ALL_CHUNK][STORE_NAME_MAX];
    size_t lens[COMPACT_ALL_CHUNK];
    size_t count;
} name_chunk;

/* Collect up to a chunk of names of documents with log entries, strictly
 * after `after` (NULL: from the start); *total counts all such documents
 * when total is non-NULL. */
static tdm_err collect(store *st, const uint8_t *after, size_t after_len, name_chunk *ch,
                       size_t *total)
{
    ch->count = 0;
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) return e;
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(txn, st->db_names, &c);
    MDB_val k = {after_len, (void *)after}, v;
    if (!rc) rc = mdb_cursor_get(c, &k, &v, after ? MDB_SET_RANGE : MDB_FIRST);
    if (!rc && after && k.mv_size == after_len && memcmp(k.mv_data, after, after_len) == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    while (!rc && (total || ch->count < COMPACT_ALL_CHUNK)) {
        store__meta m;
        if (v.mv_size != 8 || k.mv_size > STORE_NAME_MAX) {
            e = TDM_ECORRUPT;
            break;
        }
        e = store__meta_get(st, txn, store__get_u64(v.mv_data), &m);
        if (e) break;
        if (m.pub.updates > 0) {
            if (total) ++*total;
            if (ch->count < COMPACT_ALL_CHUNK) {
                memcpy(ch->names[ch->count], k.mv_data, k.mv_size);
                ch->lens[ch->count++] = k.mv_size;
            }
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (!e && rc && rc != MDB_NOTFOUND) e = store__err(rc);
    if (c) mdb_cursor_close(c);
    store__rd_end(st, txn);
    return e;
}

tdm_err store_compact_all(store *st, store_progress_fn progress, void *ctx, size_t *compacted)
{
    if (compacted) *compacted = 0;
    if (!st) return TDM_EINVAL;
    if (st->read_only || !store__may_wait(st)) return TDM_EINVAL;
    name_chunk *ch = malloc(sizeof *ch);
    if (!ch) return TDM_ENOMEM;
    size_t total = 0, done = 0;
    tdm_err first = collect(st, NULL, 0, ch, &total);
    uint8_t last[STORE_NAME_MAX];
    bool stop = first != TDM_OK;
    while (ch->count > 0 && !stop) {
        for (size_t i = 0; i < ch->count && !stop; i++) {
            tdm_err e = store_compact_doc(st, ch->names[i], ch->lens[i]);
            if (e == TDM_ENOTFOUND) e = TDM_OK; /* deleted meanwhile */
            if (e && !first) first = e;
            if (!e && compacted) ++*compacted;
            done++;
            if (total < done) total = done;
            if (progress && progress(ctx, done, total, ch->names[i], ch->lens[i], e)) stop = true;
        }
        size_t last_len = ch->lens[ch->count - 1];
        memcpy(last, ch->names[ch->count - 1], last_len);
        if (stop) break;
        tdm_err e = collect(st, last, last_len, ch, NULL);
        if (e) {
            if (!first) first = e;
            break;
        }
    }
    free(ch);
    return first;
}

tdm_err store_copy_compact(store *st, const char *dst_dir)
{
    if (!st || !dst_dir || !*dst_dir) return TDM_EINVAL;
    store__gate_enter(st);
    int rc = mdb_env_copy2(st->env, dst_dir, MDB_CP_COMPACT);
    store__gate_leave(st);
    if (rc == EINVAL) return TDM_EIO;
    return store__err(rc);
}
