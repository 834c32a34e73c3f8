/* store_chat.c - chat messages per room: server-assigned monotonic ids,
 * deduplication by (user, client message id), retention, history ranges.
 *
 * Record (payload of a framed 'C' value), CBOR:
 *   [1, id: uint, time_ms: int, user: bytes, display: text, cmid: bytes, text: text]
 */
#include "store_internal.h"
#include "cbor_rd.h"

#include <string.h>

#define CHAT_FIELDS 7

tdm_err store__chat_decode(const uint8_t *p, size_t n, store_chat_msg *m)
{
    cbr r;
    cbr_init(&r, p, n);
    size_t cnt;
    uint64_t ver;
    memset(m, 0, sizeof *m);
    if (cbr_array(&r, &cnt) || cnt != CHAT_FIELDS) return TDM_ECORRUPT;
    if (cbr_uint(&r, &ver) || ver != 1) return TDM_ECORRUPT;
    if (cbr_uint(&r, &m->id) || m->id == 0) return TDM_ECORRUPT;
    if (cbr_int(&r, &m->time_ms)) return TDM_ECORRUPT;
    if (cbr_bytes(&r, &m->user, &m->user_len)) return TDM_ECORRUPT;
    if (cbr_text(&r, &m->display, &m->display_len)) return TDM_ECORRUPT;
    if (cbr_bytes(&r, &m->cmid, &m->cmid_len)) return TDM_ECORRUPT;
    if (cbr_text(&r, &m->text, &m->text_len)) return TDM_ECORRUPT;
    if (cbr_finish(&r)) return TDM_ECORRUPT;
    if (m->user_len < 1 || m->user_len > STORE_CHAT_USER_MAX ||
        m->display_len > STORE_CHAT_NAME_MAX || m->cmid_len > STORE_CHAT_CMID_MAX ||
        m->text_len > STORE_CHAT_TEXT_MAX)
        return TDM_ECORRUPT;
    return TDM_OK;
}

static tdm_err chat_encode(tbuf *b, const store_chat_msg *m)
{
    tdm_err e = tbuf_cbor_array(b, CHAT_FIELDS);
    if (!e) e = tbuf_cbor_uint(b, 1);
    if (!e) e = tbuf_cbor_uint(b, m->id);
    if (!e) e = tbuf_cbor_int(b, m->time_ms);
    if (!e) e = tbuf_cbor_bytes(b, m->user, m->user_len);
    if (!e) e = tbuf_cbor_text(b, m->display, m->display_len);
    if (!e) e = tbuf_cbor_bytes(b, m->cmid, m->cmid_len);
    if (!e) e = tbuf_cbor_text(b, m->text, m->text_len);
    return e;
}

/* The job payload: user_len u8, user, display_len u8, display, cmid_len u8,
 * cmid, text (the rest). */
static void job_unpack(const store__job *j, store_chat_msg *m)
{
    const uint8_t *p = j->data;
    memset(m, 0, sizeof *m);
    m->user_len = *p++;
    m->user = p;
    p += m->user_len;
    m->display_len = *p++;
    m->display = p;
    p += m->display_len;
    m->cmid_len = *p++;
    m->cmid = p;
    p += m->cmid_len;
    m->text = p;
    m->text_len = j->n - (size_t)(p - j->data);
    m->time_ms = (int64_t)j->arg2;
}

static size_t dedup_key(uint8_t *k, uint64_t room, const store_chat_msg *m)
{
    store__put_u64(k, room);
    k[8] = (uint8_t)m->user_len;
    memcpy(k + 9, m->user, m->user_len);
    memcpy(k + 9 + m->user_len, m->cmid, m->cmid_len);
    return 9 + m->user_len + m->cmid_len;
}

/* Delete the oldest messages (and their dedup keys) past the retention. */
static int chat_trim(store *st, MDB_txn *txn, store__meta *m)
{
    if (m->pub.chat_count <= st->opts.chat_retention) return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->db_chat, &c);
    if (rc) return rc;
    uint8_t kb[16];
    store__key2(kb, m->pub.id, 0);
    MDB_val k = {16, kb}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && m->pub.chat_count > st->opts.chat_retention && k.mv_size == 16 &&
           memcmp(k.mv_data, kb, 8) == 0) {
        const uint8_t *p;
        size_t n;
        store_chat_msg old;
        if (!store__unframe(&v, STORE_TAG_CHAT, &p, &n) && !store__chat_decode(p, n, &old) &&
            old.cmid_len) {
            uint8_t dk[STORE_KEY_MAX];
            MDB_val dkv = {dedup_key(dk, m->pub.id, &old), dk};
            rc = mdb_del(txn, st->db_dedup, &dkv, NULL);
            if (rc == MDB_NOTFOUND) rc = 0;
        }
        if (!rc) rc = mdb_cursor_del(c, 0);
        if (!rc) m->pub.chat_count--;
        if (!rc) rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store__exec_chat(store *st, MDB_txn *txn, store__job *j)
{
    store__meta m;
    bool created;
    int rc = store__job_doc(st, txn, j, &m, &created);
    if (rc || j->err) return rc;
    store_chat_msg msg;
    job_unpack(j, &msg);
    uint8_t dk[STORE_KEY_MAX];
    MDB_val dkv = {0, dk}, v;
    if (msg.cmid_len) {
        dkv.mv_size = dedup_key(dk, m.pub.id, &msg);
        rc = mdb_get(txn, st->db_dedup, &dkv, &v);
        if (rc == 0 && v.mv_size == 8) {
            j->id = store__get_u64(v.mv_data);
            j->dup = true;
            return 0;
        }
        if (rc && rc != MDB_NOTFOUND) return rc;
    }
    msg.id = m.pub.chat_next_id;
    tbuf_reset(&st->scratch);
    tdm_err e = chat_encode(&st->scratch, &msg);
    if (e) {
        j->err = e;
        return created ? STORE_RC_REDO : 0;
    }
    uint8_t kb[16];
    store__key2(kb, m.pub.id, msg.id);
    MDB_val k = {16, kb};
    rc = store__put_framed(txn, st->db_chat, &k, STORE_TAG_CHAT, st->scratch.data, st->scratch.len,
                           MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        j->err = TDM_ECORRUPT;
        return created ? STORE_RC_REDO : 0;
    }
    if (!rc && msg.cmid_len) {
        uint8_t ib[8];
        store__put_u64(ib, msg.id);
        v.mv_size = 8;
        v.mv_data = ib;
        rc = mdb_put(txn, st->db_dedup, &dkv, &v, 0);
    }
    if (rc) return rc;
    m.pub.chat_next_id++;
    m.pub.chat_count++;
    rc = chat_trim(st, txn, &m);
    if (!rc) rc = store__meta_put(txn, st, &m);
    j->id = msg.id;
    return rc;
}

static tdm_err chat_job(const void *room, size_t room_len, const store_chat_msg *msg,
                        store__job **out)
{
    if (!msg) return TDM_EINVAL;
    tdm_err ne = store__name_check(room, room_len);
    if (ne) return ne;
    if (msg->user_len < 1 || !msg->user || (msg->display_len && !msg->display) ||
        (msg->cmid_len && !msg->cmid) || (msg->text_len && !msg->text))
        return TDM_EINVAL;
    if (msg->user_len > STORE_CHAT_USER_MAX || msg->display_len > STORE_CHAT_NAME_MAX ||
        msg->cmid_len > STORE_CHAT_CMID_MAX || msg->text_len > STORE_CHAT_TEXT_MAX)
        return TDM_ETOOBIG;
    uint8_t buf[3 + STORE_CHAT_USER_MAX + STORE_CHAT_NAME_MAX + STORE_CHAT_CMID_MAX +
                STORE_CHAT_TEXT_MAX];
    size_t n = 0;
    buf[n++] = (uint8_t)msg->user_len;
    memcpy(buf + n, msg->user, msg->user_len);
    n += msg->user_len;
    buf[n++] = (uint8_t)msg->display_len;
    if (msg->display_len) memcpy(buf + n, msg->display, msg->display_len);
    n += msg->display_len;
    buf[n++] = (uint8_t)msg->cmid_len;
    if (msg->cmid_len) memcpy(buf + n, msg->cmid, msg->cmid_len);
    n += msg->cmid_len;
    if (msg->text_len) memcpy(buf + n, msg->text, msg->text_len);
    n += msg->text_len;
    store__job *j = store__job_new(STORE_JOB_CHAT, room, room_len, buf, n);
    if (!j) return TDM_ENOMEM;
    j->arg2 = (uint64_t)(msg->time_ms ? msg->time_ms : store__now_ms());
    *out = j;
    return TDM_OK;
}

tdm_err store_chat_append_async(store *st, const void *room, size_t room_len,
                                const store_chat_msg *msg, store_done_fn cb, void *ctx)
{
    if (!st) return TDM_EINVAL;
    store__job *j;
    tdm_err e = chat_job(room, room_len, msg, &j);
    if (e) return e;
    j->cb = cb;
    j->ctx = ctx;
    return store__enqueue(st, j, st->opts.queue_block);
}

tdm_err store_chat_append(store *st, const void *room, size_t room_len, const store_chat_msg *msg,
                          uint64_t *id, bool *duplicate)
{
    if (!st) return TDM_EINVAL;
    store__job *j;
    tdm_err e = chat_job(room, room_len, msg, &j);
    if (e) return e;
    return store__run_sync(st, j, id, duplicate);
}

tdm_err store_chat_range(store *st, const void *room, size_t room_len, uint64_t after_id,
                         size_t limit, store_chat_fn fn, void *ctx)
{
    if (!st || !fn) return TDM_EINVAL;
    tdm_err ne = store__name_check(room, room_len);
    if (ne) return ne;
    if (after_id == UINT64_MAX) after_id--; /* nothing can follow */
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) return e;
    uint64_t id = 0;
    MDB_cursor *c = NULL;
    int rc = 0;
    e = store__name_lookup(st, txn, room, room_len, &id);
    if (!e) rc = mdb_cursor_open(txn, st->db_chat, &c);
    uint8_t kb[16];
    store__key2(kb, id, after_id + 1);
    MDB_val k = {16, kb}, v;
    if (!e && !rc) rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    size_t seen = 0;
    while (!e && !rc && k.mv_size == 16 && memcmp(k.mv_data, kb, 8) == 0 &&
           (!limit || seen < limit)) {
        const uint8_t *p;
        size_t n;
        store_chat_msg msg;
        e = store__unframe(&v, STORE_TAG_CHAT, &p, &n);
        if (!e) e = store__chat_decode(p, n, &msg);
        if (!e && msg.id != store__get_u64((const uint8_t *)k.mv_data + 8)) e = TDM_ECORRUPT;
        if (e) break;
        seen++;
        if (fn(ctx, &msg)) break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (!e && rc && rc != MDB_NOTFOUND) e = store__err(rc);
    if (c) mdb_cursor_close(c);
    store__rd_end(st, txn);
    return e;
}

tdm_err store_chat_count(store *st, const void *room, size_t room_len, uint64_t *count)
{
    if (!count) return TDM_EINVAL;
    store_doc_meta m;
    tdm_err e = store_doc_info(st, room, room_len, &m);
    *count = e ? 0 : m.chat_count;
    return e;
}
