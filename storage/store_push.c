/* store_push.c - Web Push subscriptions per user.
 *
 * Key: user length u8 | user | FNV-1a-64(endpoint) u64 (big-endian).
 * Record (payload of a framed 'P' value), CBOR:
 *   [1, endpoint: text, p256dh: bytes, auth: bytes, rooms: [bytes ...], created_ms: int]
 * or, when the subscription carries a display name (issue 7, Web Push
 * mentions), version 2 with one more field:
 *   [2, endpoint, p256dh, auth, rooms, created_ms, display: bytes]
 * Both are read; version 1 is still written when there is no display name.
 */
#include "store_internal.h"
#include "cbor_rd.h"

#include <stdlib.h>
#include <string.h>

#define PUSH_FIELDS    6
#define PUSH_FIELDS_V2 7
#define PUSH_REC_MAX                                                                               \
    (64 + STORE_PUSH_ENDPOINT_MAX + 2 * STORE_PUSH_KEY_MAX + STORE_PUSH_USER_MAX + 3 +             \
     STORE_PUSH_ROOMS_MAX * (STORE_NAME_MAX + 3))

static size_t push_key(uint8_t *k, const uint8_t *user, size_t ulen, const uint8_t *ep, size_t n)
{
    k[0] = (uint8_t)ulen;
    memcpy(k + 1, user, ulen);
    store__put_u64(k + 1 + ulen, store__fnv64(ep, n));
    return 1 + ulen + 8;
}

/* Decode a record; rooms go to `rooms` (room for STORE_PUSH_ROOMS_MAX). */
static tdm_err push_decode(const uint8_t *p, size_t n, store_push_sub *s, store_bytes *rooms)
{
    cbr r;
    cbr_init(&r, p, n);
    size_t cnt, nr;
    uint64_t ver;
    memset(s, 0, sizeof *s);
    if (cbr_array(&r, &cnt) || (cnt != PUSH_FIELDS && cnt != PUSH_FIELDS_V2)) return TDM_ECORRUPT;
    if (cbr_uint(&r, &ver) || ver != (cnt == PUSH_FIELDS ? 1u : 2u)) return TDM_ECORRUPT;
    if (cbr_text(&r, &s->endpoint, &s->endpoint_len)) return TDM_ECORRUPT;
    if (cbr_bytes(&r, &s->p256dh, &s->p256dh_len)) return TDM_ECORRUPT;
    if (cbr_bytes(&r, &s->auth, &s->auth_len)) return TDM_ECORRUPT;
    if (cbr_array(&r, &nr) || nr > STORE_PUSH_ROOMS_MAX) return TDM_ECORRUPT;
    for (size_t i = 0; i < nr; i++) {
        if (cbr_bytes(&r, &rooms[i].p, &rooms[i].n)) return TDM_ECORRUPT;
        if (!store__name_ok(rooms[i].p, rooms[i].n)) return TDM_ECORRUPT;
    }
    if (cbr_int(&r, &s->created_ms)) return TDM_ECORRUPT;
    if (ver == 2 && (cbr_bytes(&r, &s->display, &s->display_len) || s->display_len < 1 ||
                     s->display_len > STORE_PUSH_USER_MAX))
        return TDM_ECORRUPT;
    if (cbr_finish(&r)) return TDM_ECORRUPT;
    if (s->endpoint_len < 1 || s->endpoint_len > STORE_PUSH_ENDPOINT_MAX || s->p256dh_len < 1 ||
        s->p256dh_len > STORE_PUSH_KEY_MAX || s->auth_len < 1 || s->auth_len > STORE_PUSH_KEY_MAX)
        return TDM_ECORRUPT;
    s->rooms = rooms;
    s->nrooms = nr;
    return TDM_OK;
}

static tdm_err push_encode(tbuf *b, const store_push_sub *s, int64_t created)
{
    bool v2 = s->display_len > 0;
    tdm_err e = tbuf_cbor_array(b, v2 ? PUSH_FIELDS_V2 : PUSH_FIELDS);
    if (!e) e = tbuf_cbor_uint(b, v2 ? 2 : 1);
    if (!e) e = tbuf_cbor_text(b, s->endpoint, s->endpoint_len);
    if (!e) e = tbuf_cbor_bytes(b, s->p256dh, s->p256dh_len);
    if (!e) e = tbuf_cbor_bytes(b, s->auth, s->auth_len);
    if (!e) e = tbuf_cbor_array(b, s->nrooms);
    for (size_t i = 0; i < s->nrooms && !e; i++)
        e = tbuf_cbor_bytes(b, s->rooms[i].p, s->rooms[i].n);
    if (!e) e = tbuf_cbor_int(b, created);
    if (!e && v2) e = tbuf_cbor_bytes(b, s->display, s->display_len);
    return e;
}

/* The endpoint of the record stored under key k, if any. */
static int stored_endpoint(store *st, MDB_txn *txn, MDB_val *k, store_push_sub *old,
                           store_bytes *rooms, tdm_err *e)
{
    MDB_val v;
    int rc = mdb_get(txn, st->db_push, k, &v);
    if (rc) return rc;
    const uint8_t *p;
    size_t n;
    *e = store__unframe(&v, STORE_TAG_PUSH, &p, &n);
    if (!*e) *e = push_decode(p, n, old, rooms);
    return 0;
}

int store__exec_push_put(store *st, MDB_txn *txn, store__job *j)
{
    MDB_val k = {j->key_len, (void *)j->key};
    store_push_sub old, nw;
    store_bytes *rooms = malloc(2 * STORE_PUSH_ROOMS_MAX * sizeof *rooms);
    if (!rooms) {
        j->err = TDM_ENOMEM;
        return 0;
    }
    tdm_err e = push_decode(j->data, j->n, &nw, rooms);
    tdm_err olde = TDM_OK;
    int rc = e ? 0 : stored_endpoint(st, txn, &k, &old, rooms + STORE_PUSH_ROOMS_MAX, &olde);
    if (!e && rc == 0 && !olde &&
        (old.endpoint_len != nw.endpoint_len ||
         memcmp(old.endpoint, nw.endpoint, nw.endpoint_len) != 0))
        e = TDM_ECONFLICT; /* 64-bit hash collision between two endpoints */
    free(rooms);
    if (e) {
        j->err = e;
        return 0;
    }
    if (rc && rc != MDB_NOTFOUND) return rc;
    return store__put_framed(txn, st->db_push, &k, STORE_TAG_PUSH, j->data, j->n, 0);
}

int store__exec_push_del(store *st, MDB_txn *txn, store__job *j)
{
    MDB_val k = {j->key_len, (void *)j->key};
    store_push_sub old;
    store_bytes *rooms = malloc(STORE_PUSH_ROOMS_MAX * sizeof *rooms);
    if (!rooms) {
        j->err = TDM_ENOMEM;
        return 0;
    }
    tdm_err e = TDM_OK;
    int rc = stored_endpoint(st, txn, &k, &old, rooms, &e);
    if (!rc && !e && (old.endpoint_len != j->n || memcmp(old.endpoint, j->data, j->n) != 0))
        rc = MDB_NOTFOUND;
    free(rooms);
    if (rc == MDB_NOTFOUND) {
        j->err = TDM_ENOTFOUND;
        return 0;
    }
    if (rc) return rc;
    /* a corrupt record under this key is removed as well */
    return mdb_del(txn, st->db_push, &k, NULL);
}

static bool user_ok(const void *user, size_t ulen)
{
    return user && ulen >= 1 && ulen <= STORE_PUSH_USER_MAX;
}

tdm_err store_push_put(store *st, const void *user, size_t user_len, const store_push_sub *sub)
{
    if (!st || !user_ok(user, user_len) || !sub || !sub->endpoint || !sub->p256dh || !sub->auth ||
        sub->endpoint_len < 1 || sub->p256dh_len < 1 || sub->auth_len < 1 ||
        (sub->nrooms && !sub->rooms) || (sub->display_len && !sub->display))
        return TDM_EINVAL;
    if (sub->endpoint_len > STORE_PUSH_ENDPOINT_MAX || sub->p256dh_len > STORE_PUSH_KEY_MAX ||
        sub->auth_len > STORE_PUSH_KEY_MAX || sub->nrooms > STORE_PUSH_ROOMS_MAX ||
        sub->display_len > STORE_PUSH_USER_MAX)
        return TDM_ETOOBIG;
    for (size_t i = 0; i < sub->nrooms; i++) {
        if (sub->rooms[i].n > STORE_NAME_MAX) return TDM_ETOOBIG;
        if (!store__name_ok(sub->rooms[i].p, sub->rooms[i].n)) return TDM_EINVAL;
    }
    tbuf b;
    tbuf_init(&b, PUSH_REC_MAX);
    tdm_err e = push_encode(&b, sub, sub->created_ms ? sub->created_ms : store__now_ms());
    uint8_t kb[STORE_KEY_MAX];
    size_t kn = push_key(kb, user, user_len, sub->endpoint, sub->endpoint_len);
    store__job *j = e ? NULL : store__job_new(STORE_JOB_PUSH_PUT, kb, kn, b.data, b.len);
    tbuf_fini(&b);
    if (e) return e;
    if (!j) return TDM_ENOMEM;
    return store__run_sync(st, j, NULL, NULL);
}

tdm_err store_push_del(store *st, const void *user, size_t user_len, const void *endpoint,
                       size_t endpoint_len)
{
    if (!st || !user_ok(user, user_len) || !endpoint || endpoint_len < 1) return TDM_EINVAL;
    if (endpoint_len > STORE_PUSH_ENDPOINT_MAX) return TDM_ENOTFOUND;
    uint8_t kb[STORE_KEY_MAX];
    size_t kn = push_key(kb, user, user_len, endpoint, endpoint_len);
    store__job *j = store__job_new(STORE_JOB_PUSH_DEL, kb, kn, endpoint, endpoint_len);
    if (!j) return TDM_ENOMEM;
    return store__run_sync(st, j, NULL, NULL);
}

tdm_err store_push_list(store *st, const void *user, size_t user_len, store_push_fn fn, void *ctx)
{
    if (!st || !fn || (user && !user_ok(user, user_len))) return TDM_EINVAL;
    store_bytes *rooms = malloc(STORE_PUSH_ROOMS_MAX * sizeof *rooms);
    if (!rooms) return TDM_ENOMEM;
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) {
        free(rooms);
        return e;
    }
    uint8_t pre[1 + STORE_PUSH_USER_MAX];
    size_t pn = 0;
    if (user) {
        pre[0] = (uint8_t)user_len;
        memcpy(pre + 1, user, user_len);
        pn = 1 + user_len;
    }
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(txn, st->db_push, &c);
    MDB_val k = {pn, pre}, v;
    if (!rc) rc = mdb_cursor_get(c, &k, &v, user ? MDB_SET_RANGE : MDB_FIRST);
    while (!rc && k.mv_size >= pn && memcmp(k.mv_data, pre, pn) == 0) {
        const uint8_t *kp = k.mv_data, *p;
        size_t n;
        if (k.mv_size < 10 || k.mv_size != 1u + kp[0] + 8u || kp[0] == 0) {
            e = TDM_ECORRUPT;
            break;
        }
        store_push_sub s;
        e = store__unframe(&v, STORE_TAG_PUSH, &p, &n);
        if (!e) e = push_decode(p, n, &s, rooms);
        if (e) break;
        if (fn(ctx, kp + 1, kp[0], &s)) break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (!e && rc && rc != MDB_NOTFOUND) e = store__err(rc);
    if (c) mdb_cursor_close(c);
    store__rd_end(st, txn);
    free(rooms);
    return e;
}
