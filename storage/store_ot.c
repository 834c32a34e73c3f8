/* store_ot.c - OT version history per document: operation `version` turns
 * version `version` into version + 1; contiguous, trimmed to the retention.
 * Each record may carry its submitter (client id, op id: format 2); the
 * combined job stores a room's update and its OT record in one transaction. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* The OT half of a job on metadata m (read by the caller): check the
 * version follows the history, account it, trim the oldest versions.
 * *replace: the record may overwrite (the history was empty). Sets j->err
 * for a job that fails on its own; else an LMDB error. */
static int ot_prep(store *st, MDB_txn *txn, store__job *j, store__meta *m, bool *replace)
{
    uint64_t version = j->arg;
    bool empty = m->pub.ot_first == m->pub.ot_next;
    *replace = empty;
    if (!empty && version != m->pub.ot_next) {
        j->err = TDM_ECONFLICT;
        return 0;
    }
    uint8_t kb[16];
    store__key2(kb, m->pub.id, version);
    MDB_val k = {16, kb}, v;
    /* An empty history may have stale entries only if metadata is corrupt;
     * overwrite is then the safe choice for the first version. */
    int rc = empty ? MDB_NOTFOUND : mdb_get(txn, st->db_ot, &k, &v);
    if (rc == 0) {
        j->err = TDM_ECORRUPT;
        return 0;
    }
    if (rc != MDB_NOTFOUND) return rc;
    rc = 0;
    if (empty) m->pub.ot_first = version;
    m->pub.ot_next = version + 1;
    /* trimmed in batches of retention/16 (625 of 10,000): a trim dirties the
     * leaf page holding the document's oldest versions, which on every
     * append would be one more page written per update of a busy document.
     * A trimmed version still in the journal is dropped when it moves. */
    uint64_t keep = st->opts.ot_retention, held = m->pub.ot_next - m->pub.ot_first;
    if (held <= keep + keep / 16) keep = held;
    while (!rc && m->pub.ot_next - m->pub.ot_first > keep) {
        store__key2(kb, m->pub.id, m->pub.ot_first);
        MDB_val dk = {16, kb};
        rc = mdb_del(txn, st->db_ot, &dk, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
        m->pub.ot_first++;
    }
    m->pub.updated_ms = store__now_ms();
    j->id = version;
    return rc;
}

int store__exec_ot(store *st, MDB_txn *txn, store__job *j)
{
    store__meta m;
    bool created, replace;
    int rc = store__job_doc(st, txn, j, &m, &created);
    if (rc || j->err) return rc;
    rc = ot_prep(st, txn, j, &m, &replace);
    if (!rc && j->err) return created ? STORE_RC_REDO : 0;
    store__jrec r = {.doc = m.pub.id,
                     .version = j->arg,
                     .ot_tag = j->tag2 ? j->tag2 : STORE_TAG_OT,
                     .ot_replace = replace,
                     .ot = j->data,
                     .ot_n = j->n};
    if (!rc) rc = store__jrnl_put(st, txn, &r);
    if (!rc) rc = store__meta_put(txn, st, &m);
    return rc;
}

int store__exec_append_ot(store *st, MDB_txn *txn, store__job *j)
{
    store__meta m;
    bool created, replace = false;
    int rc = store__append_prep(st, txn, j, &m, &created); /* j->data, j->n: the update */
    if (rc || j->err) return rc;                           /* REDO leaves both out */
    store__job o = *j;
    o.data = j->data2;
    o.n = j->n2;
    o.err = TDM_OK;
    /* an OT-only failure leaves the update stored (the history stops) */
    rc = ot_prep(st, txn, &o, &m, &replace);
    if (rc) return rc;
    store__jrec r = {.doc = m.pub.id, .seq = j->id, .upd = j->data, .upd_n = j->n};
    if (!o.err) {
        r.version = o.arg;
        r.ot_tag = o.tag2 ? o.tag2 : STORE_TAG_OT;
        r.ot_replace = replace;
        r.ot = o.data;
        r.ot_n = o.n;
    }
    rc = store__jrnl_put(st, txn, &r);
    if (!rc) rc = store__meta_put(txn, st, &m);
    if (!rc) store__append_done(st, &m);
    return rc;
}

tdm_err store__ot_payload(uint8_t tag, const uint8_t *p, size_t n, store_ot_rec *r)
{
    r->src = r->op_id = 0;
    if (tag == STORE_TAG_OT2) {
        if (n <= 16) return TDM_ECORRUPT;
        r->src = store__get_u64(p);
        r->op_id = store__get_u64(p + 8);
        p += 16, n -= 16;
    } else if (tag != STORE_TAG_OT) {
        return TDM_ECORRUPT;
    }
    r->op = p;
    r->op_len = n;
    return TDM_OK;
}

tdm_err store__ot_unframe(const MDB_val *v, store_ot_rec *r)
{
    const uint8_t *p;
    size_t n;
    uint8_t tag = v->mv_size >= 1 && ((const uint8_t *)v->mv_data)[0] == STORE_TAG_OT2
                      ? STORE_TAG_OT2
                      : STORE_TAG_OT;
    tdm_err e = store__unframe(v, tag, &p, &n);
    if (!e) e = store__ot_payload(tag, p, n, r);
    return e;
}

/* The record format for rec: 2 only when it names a submitter. */
static uint8_t rec_tag(const store_ot_rec *rec)
{
    return rec->src || rec->op_id ? STORE_TAG_OT2 : STORE_TAG_OT;
}

static tdm_err rec_check(const void *name, size_t name_len, const store_ot_rec *rec)
{
    if (!rec || !rec->op || rec->op_len == 0 || rec->version == UINT64_MAX) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    if (rec->op_len > STORE_UPDATE_MAX) return TDM_ETOOBIG;
    return TDM_OK;
}

/* A job whose data is `pre` (pre_n bytes, may be 0) followed by the OT
 * payload of rec; data2 set when pre_n > 0. */
static tdm_err rec_job(store__job_kind kind, const void *name, size_t name_len, const uint8_t *pre,
                       size_t pre_n, const store_ot_rec *rec, store__job **out)
{
    uint8_t tag = rec_tag(rec);
    size_t hdr = tag == STORE_TAG_OT2 ? 16 : 0;
    size_t total = pre_n + hdr + rec->op_len;
    store__job *j = store__job_new(kind, name, name_len, NULL, 0);
    if (!j) return TDM_ENOMEM;
    store__job *big = realloc(j, sizeof *j + name_len + total);
    if (!big) {
        free(j);
        return TDM_ENOMEM;
    }
    j = big;
    uint8_t *b = (uint8_t *)(j + 1);
    j->key = b;
    uint8_t *d = b + name_len;
    if (pre_n) memcpy(d, pre, pre_n);
    uint8_t *o = d + pre_n;
    if (hdr) {
        store__put_u64(o, rec->src);
        store__put_u64(o + 8, rec->op_id);
    }
    memcpy(o + hdr, rec->op, rec->op_len);
    if (pre_n) {
        j->data = d;
        j->n = pre_n;
        j->data2 = o;
        j->n2 = hdr + rec->op_len;
    } else {
        j->data = o;
        j->n = hdr + rec->op_len;
    }
    j->tag2 = tag;
    j->arg = rec->version;
    j->cost = sizeof *j + name_len + total;
    *out = j;
    return TDM_OK;
}

tdm_err store_ot_put_async(store *st, const void *name, size_t name_len, const store_ot_rec *rec,
                           store_done_fn cb, void *ctx)
{
    if (!st) return TDM_EINVAL;
    tdm_err e = rec_check(name, name_len, rec);
    store__job *j = NULL;
    if (!e) e = rec_job(STORE_JOB_OT, name, name_len, NULL, 0, rec, &j);
    if (e) return e;
    j->cb = cb;
    j->ctx = ctx;
    return store__enqueue(st, j, st->opts.queue_block);
}

tdm_err store_ot_put(store *st, const void *name, size_t name_len, const store_ot_rec *rec)
{
    if (!st) return TDM_EINVAL;
    tdm_err e = rec_check(name, name_len, rec);
    store__job *j = NULL;
    if (!e) e = rec_job(STORE_JOB_OT, name, name_len, NULL, 0, rec, &j);
    if (e) return e;
    return store__run_sync(st, j, NULL, NULL);
}

tdm_err store_append_ot_async(store *st, const void *name, size_t name_len, const uint8_t *p,
                              size_t n, const store_ot_rec *rec, store_done_fn cb, void *ctx)
{
    if (!st || !p || n == 0) return TDM_EINVAL;
    if (n > STORE_UPDATE_MAX) return TDM_ETOOBIG;
    tdm_err e = rec_check(name, name_len, rec);
    store__job *j = NULL;
    if (!e) e = rec_job(STORE_JOB_APPEND_OT, name, name_len, p, n, rec, &j);
    if (e) return e;
    j->cb = cb;
    j->ctx = ctx;
    return store__enqueue(st, j, st->opts.queue_block);
}

tdm_err store_ot_append_async(store *st, const void *name, size_t name_len, uint64_t version,
                              const uint8_t *p, size_t n, store_done_fn cb, void *ctx)
{
    store_ot_rec r = {.version = version, .op = p, .op_len = n};
    return store_ot_put_async(st, name, name_len, &r, cb, ctx);
}

tdm_err store_ot_append(store *st, const void *name, size_t name_len, uint64_t version,
                        const uint8_t *p, size_t n)
{
    store_ot_rec r = {.version = version, .op = p, .op_len = n};
    return store_ot_put(st, name, name_len, &r);
}

typedef struct plain_walk {
    store_ot_fn fn;
    void *ctx;
} plain_walk;

static int plain_one(void *ctx, const store_ot_rec *r)
{
    plain_walk *w = ctx;
    return w->fn(w->ctx, r->version, r->op, r->op_len);
}

tdm_err store_ot_range(store *st, const void *name, size_t name_len, uint64_t from_version,
                       store_ot_fn fn, void *ctx)
{
    if (!fn) return TDM_EINVAL;
    plain_walk w = {fn, ctx};
    return store_ot_range_rec(st, name, name_len, from_version, plain_one, &w);
}

typedef struct ot_walk {
    store_ot_rec_fn fn;
    void *ctx;
    uint64_t expect, next; /* the version wanted next; the end of the history */
    bool stop;
    tdm_err err;
} ot_walk;

/* One record of the history (version ver); 1: stop. */
static int ot_one(ot_walk *w, uint64_t ver, store_ot_rec *rec)
{
    if (ver < w->expect) return 0; /* journal: before the start, or trimmed */
    if (ver >= w->next) return 1;
    if (ver != w->expect) { /* a hole in the history */
        w->err = TDM_ECORRUPT;
        return 1;
    }
    w->expect++;
    rec->version = ver;
    if (w->fn(w->ctx, rec)) {
        w->stop = true;
        return 1;
    }
    return 0;
}

static int ot_jrnl(void *ctx, const store__jrec *j)
{
    if (!j->ot) return 0;
    store_ot_rec rec;
    if (store__ot_payload(j->ot_tag, j->ot, j->ot_n, &rec)) {
        ((ot_walk *)ctx)->err = TDM_ECORRUPT;
        return 1;
    }
    return ot_one(ctx, j->version, &rec);
}

tdm_err store_ot_range_rec(store *st, const void *name, size_t name_len, uint64_t from_version,
                           store_ot_rec_fn fn, void *ctx)
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
    ot_walk w = {fn, ctx, from_version, m.pub.ot_next, false, TDM_OK};
    bool done = false;
    if (!e && !rc) rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (!e && !rc && k.mv_size == 16 && memcmp(k.mv_data, kb, 8) == 0) {
        uint64_t ver = store__get_u64((const uint8_t *)k.mv_data + 8);
        store_ot_rec rec;
        e = store__ot_unframe(&v, &rec);
        if (e) break;
        if (ot_one(&w, ver, &rec)) {
            done = true;
            break;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (!e && rc && rc != MDB_NOTFOUND) e = store__err(rc);
    if (!e && !done) e = store__jrnl_walk(st, txn, m.pub.id, ot_jrnl, &w, NULL);
    if (!e) e = w.err;
    if (!e && !w.stop && w.expect != m.pub.ot_next) e = TDM_ECORRUPT; /* entries missing */
out:
    if (c) mdb_cursor_close(c);
    store__rd_end(st, txn);
    return e;
}
