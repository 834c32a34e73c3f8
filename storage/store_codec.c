/* store_codec.c - big-endian integers, keys, framed values (tag + CRC-32) and
 * the metadata record. */
#include "store_internal.h"
#include "zip.h"

#include <string.h>

void store__put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t store__get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

void store__put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t store__get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void store__key2(uint8_t k[16], uint64_t id, uint64_t n)
{
    store__put_u64(k, id);
    store__put_u64(k + 8, n);
}

bool store__name_ok(const void *name, size_t name_len)
{
    return name && name_len >= 1 && name_len <= STORE_NAME_MAX;
}

tdm_err store__name_check(const void *name, size_t name_len)
{
    if (!name || name_len == 0) return TDM_EINVAL;
    return name_len > STORE_NAME_MAX ? TDM_ETOOBIG : TDM_OK;
}

uint64_t store__fnv64(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static uint32_t frame_crc(uint8_t tag, const uint8_t *p, size_t n)
{
    uint32_t c = zip_crc32(0, &tag, 1);
    return n ? zip_crc32(c, p, n) : c;
}

void store__frame_hdr(uint8_t hdr[STORE_FRAME_HDR], uint8_t tag, const uint8_t *p, size_t n)
{
    hdr[0] = tag;
    store__put_u32(hdr + 1, frame_crc(tag, p, n));
}

tdm_err store__unframe(const MDB_val *v, uint8_t tag, const uint8_t **p, size_t *n)
{
    if (v->mv_size < STORE_FRAME_HDR) return TDM_ECORRUPT;
    const uint8_t *b = v->mv_data;
    if (b[0] != tag) return TDM_ECORRUPT;
    size_t len = v->mv_size - STORE_FRAME_HDR;
    if (store__get_u32(b + 1) != frame_crc(tag, b + STORE_FRAME_HDR, len)) return TDM_ECORRUPT;
    *p = b + STORE_FRAME_HDR;
    *n = len;
    return TDM_OK;
}

int store__put_framed(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, uint8_t tag, const uint8_t *p,
                      size_t n, unsigned flags)
{
    MDB_val v = {STORE_FRAME_HDR + n, NULL};
    int rc = mdb_put(txn, dbi, key, &v, flags | MDB_RESERVE);
    if (rc) return rc;
    uint8_t *b = v.mv_data;
    store__frame_hdr(b, tag, p, n);
    if (n) memcpy(b + STORE_FRAME_HDR, p, n);
    return 0;
}

/* Metadata payload: 14 u64 fields in this order, then name length u8 and
 * the name. */
#define META_FIELDS 14
#define META_FIXED  (META_FIELDS * 8)

static void meta_fields(store__meta *m, uint64_t *f[META_FIELDS])
{
    f[0] = &m->pub.next_seq;
    f[1] = &m->pub.updates;
    f[2] = &m->pub.log_bytes;
    f[3] = &m->pub.snapshot_bytes;
    f[4] = (uint64_t *)(void *)&m->pub.created_ms;
    f[5] = (uint64_t *)(void *)&m->pub.updated_ms;
    f[6] = &m->pub.clients;
    f[7] = &m->pub.text_len;
    f[8] = &m->pub.compactions;
    f[9] = &m->pub.chat_count;
    f[10] = &m->pub.chat_next_id;
    f[11] = &m->pub.ot_first;
    f[12] = &m->pub.ot_next;
    f[13] = &m->auto_after_seq;
}

tdm_err store__meta_decode(const MDB_val *v, store__meta *m)
{
    const uint8_t *p;
    size_t n;
    tdm_err e = store__unframe(v, STORE_TAG_META, &p, &n);
    if (e) return e;
    if (n < META_FIXED + 1) return TDM_ECORRUPT;
    size_t nl = p[META_FIXED];
    if (nl < 1 || n != META_FIXED + 1 + nl) return TDM_ECORRUPT;
    uint64_t *f[META_FIELDS];
    meta_fields(m, f);
    for (int i = 0; i < META_FIELDS; i++) *f[i] = store__get_u64(p + 8 * i);
    memcpy(m->name, p + META_FIXED + 1, nl);
    m->name_len = nl;
    if (m->pub.next_seq < 1 || m->pub.chat_next_id < 1 || m->pub.ot_first > m->pub.ot_next)
        return TDM_ECORRUPT;
    return TDM_OK;
}

int store__meta_put(MDB_txn *txn, store *st, const store__meta *m)
{
    uint8_t buf[META_FIXED + 1 + STORE_NAME_MAX];
    uint64_t *f[META_FIELDS];
    meta_fields((store__meta *)m, f);
    for (int i = 0; i < META_FIELDS; i++) store__put_u64(buf + 8 * i, *f[i]);
    buf[META_FIXED] = (uint8_t)m->name_len;
    memcpy(buf + META_FIXED + 1, m->name, m->name_len);
    uint8_t kb[8];
    store__put_u64(kb, m->pub.id);
    MDB_val k = {8, kb};
    return store__put_framed(txn, st->db_docs, &k, STORE_TAG_META, buf,
                             META_FIXED + 1 + m->name_len, 0);
}

tdm_err store__name_lookup(store *st, MDB_txn *txn, const void *name, size_t name_len, uint64_t *id)
{
    MDB_val k = {name_len, (void *)name}, v;
    int rc = mdb_get(txn, st->db_names, &k, &v);
    if (rc) return store__err(rc);
    if (v.mv_size != 8) return TDM_ECORRUPT;
    *id = store__get_u64(v.mv_data);
    return TDM_OK;
}

tdm_err store__meta_get(store *st, MDB_txn *txn, uint64_t id, store__meta *m)
{
    uint8_t kb[8];
    store__put_u64(kb, id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, st->db_docs, &k, &v);
    if (rc == MDB_NOTFOUND) return TDM_ECORRUPT; /* a name without metadata */
    if (rc) return store__err(rc);
    memset(m, 0, sizeof *m);
    tdm_err e = store__meta_decode(&v, m);
    m->pub.id = id;
    return e;
}

tdm_err store__doc_find(store *st, MDB_txn *txn, const void *name, size_t name_len, store__meta *m)
{
    uint64_t id = 0;
    tdm_err e = store__name_lookup(st, txn, name, name_len, &id);
    if (!e) e = store__meta_get(st, txn, id, m);
    if (!e && (m->name_len != name_len || memcmp(m->name, name, name_len) != 0)) e = TDM_ECORRUPT;
    return e;
}
