/* store_log.c - documents and their update logs: creation, append (writer
 * side), deletion, log walks and loading (snapshot + log replay). */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- writer side ------------------------------------------------------------- */

static int next_doc_id(store *st, MDB_txn *txn, uint64_t *id)
{
    MDB_val k = {8, (void *)"next_doc"}, v;
    int rc = mdb_get(txn, st->db_info, &k, &v);
    uint64_t next = 1;
    if (rc == 0 && v.mv_size == 8)
        next = store__get_u64(v.mv_data);
    else if (rc == 0)
        return MDB_CORRUPTED;
    else if (rc != MDB_NOTFOUND)
        return rc;
    uint8_t b[8];
    store__put_u64(b, next + 1);
    v.mv_size = 8;
    v.mv_data = b;
    rc = mdb_put(txn, st->db_info, &k, &v, 0);
    *id = next;
    return rc;
}

int store__job_doc(store *st, MDB_txn *txn, store__job *j, store__meta *m, bool *created)
{
    const uint8_t *name = j->key;
    size_t name_len = j->key_len;
    *created = false;
    tdm_err e = store__doc_find(st, txn, name, name_len, m);
    if (e != TDM_ENOTFOUND) {
        j->err = e;
        return 0;
    }
    uint64_t id;
    int rc = next_doc_id(st, txn, &id);
    if (rc) return rc;
    uint8_t b[8];
    store__put_u64(b, id);
    MDB_val k = {name_len, (void *)name}, v = {8, b};
    rc = mdb_put(txn, st->db_names, &k, &v, MDB_NOOVERWRITE);
    if (rc) return rc;
    memset(m, 0, sizeof *m);
    m->pub.id = id;
    m->pub.next_seq = 1;
    m->pub.chat_next_id = 1;
    m->pub.created_ms = m->pub.updated_ms = store__now_ms();
    memcpy(m->name, name, name_len);
    m->name_len = name_len;
    *created = true;
    return store__meta_put(txn, st, m);
}

static void touch(store *st, uint64_t id)
{
    for (size_t i = 0; i < st->ntouched; i++)
        if (st->touched[i] == id) return;
    if (st->ntouched < STORE_TOUCHED_MAX) st->touched[st->ntouched++] = id;
}

int store__append_prep(store *st, MDB_txn *txn, store__job *j, store__meta *m, bool *created)
{
    int rc = store__job_doc(st, txn, j, m, created);
    if (rc || j->err) return rc;
    uint8_t kb[16];
    store__key2(kb, m->pub.id, m->pub.next_seq);
    MDB_val k = {16, kb}, v;
    rc = mdb_get(txn, st->db_log, &k, &v);
    if (rc == 0) { /* metadata behind the log */
        j->err = TDM_ECORRUPT;
        return *created ? STORE_RC_REDO : 0;
    }
    if (rc != MDB_NOTFOUND) return rc;
    j->id = m->pub.next_seq++;
    m->pub.updates++;
    m->pub.log_bytes += j->n;
    m->pub.updated_ms = store__now_ms();
    return 0;
}

void store__append_done(store *st, const store__meta *m)
{
    if (store__wants_compact(st, m)) touch(st, m->pub.id);
}

int store__exec_append(store *st, MDB_txn *txn, store__job *j)
{
    store__meta m;
    bool created;
    int rc = store__append_prep(st, txn, j, &m, &created);
    if (rc || j->err) return rc;
    store__jrec r = {.doc = m.pub.id, .seq = j->id, .upd = j->data, .upd_n = j->n};
    rc = store__jrnl_put(st, txn, &r);
    if (!rc) rc = store__meta_put(txn, st, &m);
    if (!rc) store__append_done(st, &m);
    return rc;
}

int store__exec_create(store *st, MDB_txn *txn, store__job *j)
{
    store__meta m;
    bool created;
    int rc = store__job_doc(st, txn, j, &m, &created);
    if (!rc && !j->err) {
        j->id = m.pub.id;
        j->dup = !created;
    }
    return rc;
}

/* Delete every key of dbi that starts with the 8-byte prefix. */
static int del_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t prefix[8])
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc) return rc;
    MDB_val k = {8, (void *)prefix}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 8 && memcmp(k.mv_data, prefix, 8) == 0) {
        rc = mdb_cursor_del(c, 0);
        if (!rc) rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store__exec_delete(store *st, MDB_txn *txn, store__job *j)
{
    store__meta m;
    tdm_err e = store__doc_find(st, txn, j->key, j->key_len, &m);
    if (e) {
        j->err = e;
        return 0;
    }
    uint8_t p[8];
    store__put_u64(p, m.pub.id);
    MDB_dbi dbis[] = {st->db_log, st->db_snap, st->db_chat, st->db_dedup, st->db_ot};
    int rc = store__jrnl_migrate(st, txn);
    if (!rc && st->jrnl_stuck) rc = store__jrnl_drop_doc(st, txn, m.pub.id);
    for (size_t i = 0; i < sizeof dbis / sizeof dbis[0] && !rc; i++)
        rc = del_prefix(txn, dbis[i], p);
    MDB_val k = {8, p};
    if (!rc) rc = mdb_del(txn, st->db_docs, &k, NULL);
    MDB_val nk = {j->key_len, (void *)j->key};
    if (!rc) rc = mdb_del(txn, st->db_names, &nk, NULL);
    j->id = m.pub.id;
    return rc;
}

/* ---- public writes ---------------------------------------------------------------- */

tdm_err store_append_async(store *st, const void *name, size_t name_len, const uint8_t *p, size_t n,
                           store_done_fn cb, void *ctx)
{
    if (!st || !p || n == 0) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    if (n > STORE_UPDATE_MAX) return TDM_ETOOBIG;
    store__job *j = store__job_new(STORE_JOB_APPEND, name, name_len, p, n);
    if (!j) return TDM_ENOMEM;
    j->cb = cb;
    j->ctx = ctx;
    return store__enqueue(st, j, st->opts.queue_block);
}

tdm_err store_append(store *st, const void *name, size_t name_len, const uint8_t *p, size_t n,
                     uint64_t *seq)
{
    if (!st || !p || n == 0) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    if (n > STORE_UPDATE_MAX) return TDM_ETOOBIG;
    store__job *j = store__job_new(STORE_JOB_APPEND, name, name_len, p, n);
    if (!j) return TDM_ENOMEM;
    return store__run_sync(st, j, seq, NULL);
}

tdm_err store_doc_create(store *st, const void *name, size_t name_len, bool *created)
{
    if (!st) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    store__job *j = store__job_new(STORE_JOB_CREATE, name, name_len, NULL, 0);
    if (!j) return TDM_ENOMEM;
    bool existed = false;
    tdm_err e = store__run_sync(st, j, NULL, &existed);
    if (created) *created = !e && !existed;
    return e;
}

tdm_err store_doc_delete(store *st, const void *name, size_t name_len)
{
    if (!st) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    store__job *j = store__job_new(STORE_JOB_DELETE, name, name_len, NULL, 0);
    if (!j) return TDM_ENOMEM;
    return store__run_sync(st, j, NULL, NULL);
}

/* ---- reading ---------------------------------------------------------------------- */

/* Errors of decoding stored bytes: bad data is corruption; limits and memory
 * stay what they are. */
static tdm_err decode_err(tdm_err e)
{
    switch (e) {
    case TDM_OK:
    case TDM_ENOMEM:
    case TDM_ETOOBIG:
    case TDM_EVERSION:
    case TDM_EPENDING_FULL:
        return e;
    default:
        return TDM_ECORRUPT;
    }
}

typedef struct replay_ctx {
    crdt_doc *doc;
    store__replay *r;
    tdm_err err;
} replay_ctx;

/* Apply update seq (payload p[0..n), e from unframing it). */
static tdm_err replay_one(replay_ctx *x, uint64_t seq, const uint8_t *p, size_t n, tdm_err e)
{
    store__replay *r = x->r;
    if (!e) e = decode_err(crdt_doc_apply(x->doc, p, n));
    if (e) {
        r->bad_seq = seq;
        return e;
    }
    if (!r->first_seq) r->first_seq = seq;
    r->last_seq = seq;
    r->entries++;
    r->bytes += n;
    if (crdt_doc_pending(x->doc) == 0) {
        r->cut_seq = seq;
        r->kept = r->kept_bytes = 0;
    } else {
        r->kept++;
        r->kept_bytes += n;
    }
    return TDM_OK;
}

static int replay_jrnl(void *ctx, const store__jrec *j)
{
    replay_ctx *x = ctx;
    if (!j->upd) return 0;
    x->err = replay_one(x, j->seq, j->upd, j->upd_n, TDM_OK);
    return x->err != TDM_OK;
}

tdm_err store__replay_doc(store *st, MDB_txn *txn, uint64_t id, crdt_doc *doc, store__replay *r)
{
    memset(r, 0, sizeof *r);
    uint8_t kb[16];
    store__put_u64(kb, id);
    MDB_val k = {8, kb}, v;
    const uint8_t *p = NULL;
    size_t n = 0;
    int rc = mdb_get(txn, st->db_snap, &k, &v);
    if (rc && rc != MDB_NOTFOUND) return store__err(rc);
    if (rc == 0) {
        tdm_err e = store__unframe(&v, STORE_TAG_SNAP, &p, &n);
        if (!e) e = decode_err(crdt_doc_load(doc, p, n));
        if (e) {
            r->bad_snapshot = true;
            return e;
        }
    }
    MDB_cursor *c;
    rc = mdb_cursor_open(txn, st->db_log, &c);
    if (rc) return store__err(rc);
    store__key2(kb, id, 0);
    k.mv_size = 16;
    k.mv_data = kb;
    replay_ctx x = {doc, r, TDM_OK};
    tdm_err e = TDM_OK;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 8 && memcmp(k.mv_data, kb, 8) == 0) {
        if (k.mv_size != 16) {
            e = TDM_ECORRUPT;
            break;
        }
        uint64_t seq = store__get_u64((const uint8_t *)k.mv_data + 8);
        e = store__unframe(&v, STORE_TAG_LOG, &p, &n);
        e = replay_one(&x, seq, p, n, e);
        if (e) break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!e && rc && rc != MDB_NOTFOUND) e = store__err(rc);
    if (!e) {
        uint64_t bad = 0;
        e = store__jrnl_walk(st, txn, id, replay_jrnl, &x, &bad);
        if (!e) e = x.err;
        if (bad) r->bad_seq = bad; /* a damaged journal record (its key) */
    }
    return e;
}

tdm_err store_doc_load(store *st, const void *name, size_t name_len, const crdt_doc_opts *dopts,
                       crdt_doc **out, store_doc_meta *meta)
{
    if (out) *out = NULL;
    if (!st || !out) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    crdt_doc_opts def = {0};
    crdt_doc *doc = NULL;
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) return e;
    store__meta m;
    store__replay r;
    e = store__doc_find(st, txn, name, name_len, &m);
    if (!e) e = crdt_doc_new_opts(dopts ? dopts : &def, &doc);
    if (!e) e = store__replay_doc(st, txn, m.pub.id, doc, &r);
    store__rd_end(st, txn);
    if (e) {
        crdt_doc_free(doc);
        return e;
    }
    if (meta) *meta = m.pub;
    *out = doc;
    return TDM_OK;
}

typedef struct range_ctx {
    store_update_fn fn;
    void *ctx;
    uint64_t from;
    bool stop;
} range_ctx;

static int range_jrnl(void *ctx, const store__jrec *j)
{
    range_ctx *x = ctx;
    if (!j->upd || j->seq < x->from) return 0;
    x->stop = x->fn(x->ctx, j->seq, j->upd, j->upd_n) != 0;
    return x->stop;
}

tdm_err store_log_range(store *st, const void *name, size_t name_len, uint64_t from_seq,
                        store_update_fn fn, void *ctx)
{
    if (!st || !fn) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) return e;
    uint64_t id = 0;
    MDB_cursor *c = NULL;
    e = store__name_lookup(st, txn, name, name_len, &id);
    int rc = 0;
    if (!e) rc = mdb_cursor_open(txn, st->db_log, &c);
    uint8_t kb[16];
    store__key2(kb, id, from_seq);
    MDB_val k = {16, kb}, v;
    range_ctx x = {fn, ctx, from_seq, false};
    if (!e && !rc) rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (!e && rc == 0 && k.mv_size == 16 && memcmp(k.mv_data, kb, 8) == 0) {
        const uint8_t *p;
        size_t n;
        e = store__unframe(&v, STORE_TAG_LOG, &p, &n);
        if (e) break;
        if (fn(ctx, store__get_u64((const uint8_t *)k.mv_data + 8), p, n)) {
            x.stop = true;
            break;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (!e && rc && rc != MDB_NOTFOUND) e = store__err(rc);
    if (!e && !x.stop) e = store__jrnl_walk(st, txn, id, range_jrnl, &x, NULL);
    if (c) mdb_cursor_close(c);
    store__rd_end(st, txn);
    return e;
}
