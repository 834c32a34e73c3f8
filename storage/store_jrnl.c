/* store_jrnl.c - the journal: where updates and OT records land first.
 *
 * Written straight into the per-document trees, every update dirtied its
 * document's last leaf page in `log` and another in `ot`: a group commit that
 * touched 70 documents wrote some 140 leaf pages and synced them. The journal
 * keys every record of every document by one store-wide sequence number, so
 * the records of a commit fill consecutive pages (MDB_APPEND), a handful per
 * commit. store__jrnl_migrate moves them to the per-document trees, all at
 * once and in the same transaction as the jobs of a batch, when the journal
 * holds opts.journal_records records or STORE_JRNL_MIGRATE_BYTES bytes, when
 * its oldest record is opts.journal_ms old (the writer wakes up for it when
 * idle), before a compaction or deletion, at open and at close. Each leaf
 * page is then written once per migration instead of once per commit.
 *
 * Readers see a document's records as its tree entries followed by its
 * journal entries: migration moves every record, so for one document all
 * journal entries are newer than all tree entries.
 *
 * jrnl  seq u64 -> framed 'J': doc id u64 | log seq u64 | OT version u64 |
 *       flags u8 | update length u32 | update | [OT tag u8 | OT payload]
 *       flags: 1 an update (stored at log seq), 2 an OT record (at the
 *       version), 4 the OT record may replace an existing one (the first
 *       record of an empty history).
 */
#include "store_internal.h"

#include <string.h>

#define JR_FIXED 29u /* doc, seq, version, flags, update length */
#define JR_UPD   1u
#define JR_OT    2u
#define JR_OTREP 4u

/* The records straight into the trees (opts.no_journal, once the journal
 * was found empty at start; or a dense batch with the journal empty). */
static int put_direct(store *st, MDB_txn *txn, const store__jrec *r)
{
    uint8_t kb[16];
    int rc = 0;
    if (r->upd) {
        store__key2(kb, r->doc, r->seq);
        MDB_val k = {16, kb};
        rc = store__put_framed(txn, st->db_log, &k, STORE_TAG_LOG, r->upd, r->upd_n,
                               MDB_NOOVERWRITE);
    }
    if (!rc && r->ot) {
        store__key2(kb, r->doc, r->version);
        MDB_val k = {16, kb};
        rc = store__put_framed(txn, st->db_ot, &k, r->ot_tag, r->ot, r->ot_n,
                               r->ot_replace ? 0 : MDB_NOOVERWRITE);
    }
    return rc;
}

size_t store__jrnl_size(const store__jrec *r)
{
    return STORE_FRAME_HDR + JR_FIXED + r->upd_n + (r->ot ? 1 + r->ot_n : 0);
}

void store__jrnl_encode(const store__jrec *r, uint8_t *b)
{
    size_t n = store__jrnl_size(r) - STORE_FRAME_HDR;
    uint8_t *p = b + STORE_FRAME_HDR;
    store__put_u64(p, r->doc);
    store__put_u64(p + 8, r->upd ? r->seq : 0);
    store__put_u64(p + 16, r->ot ? r->version : 0);
    p[24] = (uint8_t)((r->upd ? JR_UPD : 0) | (r->ot ? JR_OT : 0) |
                      (r->ot && r->ot_replace ? JR_OTREP : 0));
    store__put_u32(p + 25, (uint32_t)r->upd_n);
    if (r->upd_n) memcpy(p + JR_FIXED, r->upd, r->upd_n);
    if (r->ot) {
        p[JR_FIXED + r->upd_n] = r->ot_tag;
        memcpy(p + JR_FIXED + r->upd_n + 1, r->ot, r->ot_n);
    }
    store__frame_hdr(b, STORE_TAG_JRNL, p, n);
}

int store__jrnl_put(store *st, MDB_txn *txn, const store__jrec *r)
{
    if (st->jrnl_direct || st->batch_direct) return put_direct(st, txn, r);
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->db_jrnl, &c);
    if (rc) return rc;
    MDB_val k, v;
    uint64_t next = 1;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        next = store__get_u64(k.mv_data) + 1;
    else if (rc == 0)
        rc = MDB_CORRUPTED;
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    uint8_t kb[8];
    store__put_u64(kb, next);
    k.mv_size = 8;
    k.mv_data = kb;
    v.mv_size = store__jrnl_size(r);
    v.mv_data = NULL;
    if (!rc) rc = mdb_cursor_put(c, &k, &v, MDB_APPEND | MDB_RESERVE);
    mdb_cursor_close(c);
    if (rc) return rc;
    store__jrnl_encode(r, v.mv_data);
    if (st->jrnl_first_ms == 0) st->jrnl_first_ms = store__mono_ns() / 1000000u;
    return 0;
}

tdm_err store__jrnl_decode(const MDB_val *k, const MDB_val *v, store__jrec *r)
{
    const uint8_t *p;
    size_t n;
    memset(r, 0, sizeof *r);
    if (k->mv_size != 8) return TDM_ECORRUPT;
    r->jseq = store__get_u64(k->mv_data);
    tdm_err e = store__unframe(v, STORE_TAG_JRNL, &p, &n);
    if (e) return e;
    if (n < JR_FIXED) return TDM_ECORRUPT;
    uint8_t fl = p[24];
    size_t un = store__get_u32(p + 25);
    if ((fl & ~(JR_UPD | JR_OT | JR_OTREP)) || !(fl & (JR_UPD | JR_OT)) || un > n - JR_FIXED)
        return TDM_ECORRUPT;
    if (!(fl & JR_UPD) != (un == 0)) return TDM_ECORRUPT;
    /* one form only: fields of an absent part are zero */
    if ((fl & JR_OTREP) && !(fl & JR_OT)) return TDM_ECORRUPT;
    if (!(fl & JR_UPD) && store__get_u64(p + 8) != 0) return TDM_ECORRUPT;
    if (!(fl & JR_OT) && store__get_u64(p + 16) != 0) return TDM_ECORRUPT;
    r->doc = store__get_u64(p);
    if (fl & JR_UPD) {
        r->seq = store__get_u64(p + 8);
        r->upd = p + JR_FIXED;
        r->upd_n = un;
    }
    size_t rest = n - JR_FIXED - un;
    if (fl & JR_OT) {
        if (rest < 2) return TDM_ECORRUPT;
        r->version = store__get_u64(p + 16);
        r->ot_tag = p[JR_FIXED + un];
        r->ot = p + JR_FIXED + un + 1;
        r->ot_n = rest - 1;
        r->ot_replace = (fl & JR_OTREP) != 0;
        store_ot_rec chk;
        if (store__ot_payload(r->ot_tag, r->ot, r->ot_n, &chk)) return TDM_ECORRUPT;
    } else if (rest) {
        return TDM_ECORRUPT;
    }
    return TDM_OK;
}

tdm_err store__jrnl_walk(store *st, MDB_txn *txn, uint64_t doc, store__jrnl_fn fn, void *ctx,
                         uint64_t *bad)
{
    if (bad) *bad = 0;
    if (!st->has_jrnl) return TDM_OK;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->db_jrnl, &c);
    if (rc) return store__err(rc);
    MDB_val k, v;
    tdm_err e = TDM_OK;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        store__jrec r;
        e = store__jrnl_decode(&k, &v, &r);
        if (e) {
            if (bad) *bad = k.mv_size == 8 ? store__get_u64(k.mv_data) : 0;
            break;
        }
        if (r.doc == doc && fn(ctx, &r)) break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!e && rc && rc != MDB_NOTFOUND) e = store__err(rc);
    return e;
}

bool store__jrnl_due(store *st, MDB_txn *txn)
{
    if (!st->has_jrnl || st->jrnl_stuck || st->jrnl_first_ms == 0) return false;
    if (store__mono_ns() / 1000000u - st->jrnl_first_ms >= st->opts.journal_ms) return true;
    MDB_stat s;
    if (mdb_stat(txn, st->db_jrnl, &s)) return true; /* let migration report it */
    uint64_t pages = (uint64_t)s.ms_leaf_pages + s.ms_overflow_pages;
    return s.ms_entries >= st->opts.journal_records ||
           pages * s.ms_psize >= STORE_JRNL_MIGRATE_BYTES;
}

/* Move one record into the trees (child transaction); an OT version
 * trimmed while it waited is dropped. 1: the record cannot go (damaged
 * metadata, or its key is taken), 0: moved, else an LMDB error. */
static int move_one(store *st, MDB_txn *txn, const store__jrec *r)
{
    store__jrec m = *r;
    if (m.ot) {
        store__meta meta;
        tdm_err e = store__meta_get(st, txn, m.doc, &meta);
        if (e == TDM_ECORRUPT) return 1;
        if (e) return MDB_PANIC;
        if (m.version < meta.pub.ot_first) m.ot = NULL;
    }
    int rc = put_direct(st, txn, &m);
    return rc == MDB_KEYEXIST ? 1 : rc;
}

int store__jrnl_migrate(store *st, MDB_txn *parent)
{
    if (!st->has_jrnl || st->jrnl_stuck) return 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, parent, 0, &txn);
    if (rc) return rc;
    MDB_cursor *c;
    rc = mdb_cursor_open(txn, st->db_jrnl, &c);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    MDB_val k, v;
    uint64_t moved = 0;
    bool damaged = false;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        store__jrec r;
        if (store__jrnl_decode(&k, &v, &r)) {
            damaged = true;
            break;
        }
        rc = move_one(st, txn, &r);
        if (rc == 1) damaged = true;
        if (rc) break;
        rc = mdb_cursor_del(c, 0);
        if (!rc) rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        moved++;
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) rc = 0;
    if (damaged) {
        /* Leave the journal as it is (readers report the damage; verify
         * names the record) and stop migrating from this handle: moving
         * around a record that cannot move would reorder the log. */
        mdb_txn_abort(txn);
        st->jrnl_stuck = true;
        pthread_mutex_lock(&st->mu);
        st->stats.journal_stuck = true;
        pthread_mutex_unlock(&st->mu);
        return 0;
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    if (rc) return rc;
    st->jrnl_first_ms = 0;
    if (moved) {
        pthread_mutex_lock(&st->mu);
        st->stats.journal_migrations++;
        st->stats.journal_moved += moved;
        pthread_mutex_unlock(&st->mu);
    }
    return 0;
}

int store__jrnl_drop_doc(store *st, MDB_txn *txn, uint64_t doc)
{
    if (!st->has_jrnl) return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->db_jrnl, &c);
    if (rc) return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        store__jrec r;
        if (store__jrnl_decode(&k, &v, &r) == TDM_OK && r.doc == doc) rc = mdb_cursor_del(c, 0);
        if (!rc) rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}
