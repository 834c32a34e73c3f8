/* store_ot.c - OT version history per document: operation `version` turns
 * version `version` into version + 1; contiguous, trimmed to the retention. */
#include "store_internal.h"

#include <string.h>

int store__exec_ot(store *st, MDB_txn *txn, store__job *j)
{
    store__meta m;
    bool created;
    tdm_err e;
    int rc = store__doc_get_or_create(st, txn, j->key, j->key_len, &m, &created, &e);
    if (rc) return rc;
    if (e) {
        j->err = e;
        return 0;
    }
    uint64_t version = j->arg;
    bool empty = m.pub.ot_first == m.pub.ot_next;
    if (!empty && version != m.pub.ot_next) {
        j->err = TDM_ECONFLICT;
        return created ? STORE_RC_REDO : 0;
    }
    uint8_t kb[16];
    store__key2(kb, m.pub.id, version);
    MDB_val k = {16, kb};
    /* An empty history may have stale entries only if metadata is corrupt;
     * overwrite is then the safe choice for the first version. */
    rc = store__put_framed(txn, st->db_ot, &k, STORE_TAG_OT, j->data, j->n,
                           empty ? 0 : MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        j->err = TDM_ECORRUPT;
        return created ? STORE_RC_REDO : 0;
    }
    if (rc) return rc;
    if (empty) m.pub.ot_first = version;
    m.pub.ot_next = version + 1;
    while (!rc && m.pub.ot_next - m.pub.ot_first > st->opts.ot_retention) {
        store__key2(kb, m.pub.id, m.pub.ot_first);
        MDB_val dk = {16, kb};
        rc = mdb_del(txn, st->db_ot, &dk, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
        m.pub.ot_first++;
    }
    m.pub.updated_ms = store__now_ms();
    if (!rc) rc = store__meta_put(txn, st, &m);
    j->id = version;
    return rc;
}

static tdm_err ot_job(const void *name, size_t name_len, uint64_t version, const uint8_t *p,
                      size_t n, store__job **out)
{
    if (!p || n == 0 || version == UINT64_MAX) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    if (n > STORE_UPDATE_MAX) return TDM_ETOOBIG;
    store__job *j = store__job_new(STORE_JOB_OT, name, name_len, p, n);
    if (!j) return TDM_ENOMEM;
    j->arg = version;
    *out = j;
    return TDM_OK;
}

tdm_err store_ot_append_async(store *st, const void *name, size_t name_len, uint64_t version,
                              const uint8_t *p, size_t n, store_done_fn cb, void *ctx)
{
    if (!st) return TDM_EINVAL;
    store__job *j;
    tdm_err e = ot_job(name, name_len, version, p, n, &j);
    if (e) return e;
    j->cb = cb;
    j->ctx = ctx;
    return store__enqueue(st, j, st->opts.queue_block);
}

tdm_err store_ot_append(store *st, const void *name, size_t name_len, uint64_t version,
                        const uint8_t *p, size_t n)
{
    if (!st) return TDM_EINVAL;
    store__job *j;
    tdm_err e = ot_job(name, name_len, version, p, n, &j);
    if (e) return e;
    return store__run_sync(st, j, NULL, NULL);
}

tdm_err store_ot_range(store *st, const void *name, size_t name_len, uint64_t from_version,
                       store_ot_fn fn, void *ctx)
{
    if (!st || !fn) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) return e;
    store__meta m;
    MDB_cursor *c = NULL;
    int rc = 0;
    e = store__doc_find(st, txn, name, name_len, &m);
    if (!e && (from_version < m.pub.ot_first || from_version > m.pub.ot_next)) e = TDM_ERANGE;
    if (!e && from_version == m.pub.ot_next) goto out;
    if (!e) rc = mdb_cursor_open(txn, st->db_ot, &c);
    uint8_t kb[16];
    store__key2(kb, m.pub.id, from_version);
    MDB_val k = {16, kb}, v;
    if (!e && !rc) rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    uint64_t expect = from_version;
    while (!e && !rc && k.mv_size == 16 && memcmp(k.mv_data, kb, 8) == 0) {
        uint64_t ver = store__get_u64((const uint8_t *)k.mv_data + 8);
        if (ver >= m.pub.ot_next) break;
        const uint8_t *p;
        size_t n;
        e = store__unframe(&v, STORE_TAG_OT, &p, &n);
        if (!e && ver != expect) e = TDM_ECORRUPT; /* a hole in the history */
        if (e) break;
        expect++;
        if (fn(ctx, ver, p, n)) {
            expect = m.pub.ot_next;
            break;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (!e && rc && rc != MDB_NOTFOUND) e = store__err(rc);
    if (!e && expect != m.pub.ot_next) e = TDM_ECORRUPT; /* entries missing at the end */
out:
    if (c) mdb_cursor_close(c);
    store__rd_end(st, txn);
    return e;
}
