/* buf.c - capped growable buffer and CBOR/varint writers.
 *
 * Invariants: len <= cap <= limit (cap may be 0 with data NULL). Every writer
 * either appends its whole item or leaves len (and the bytes below len) as
 * they were. The CBOR writers call libcbor's encoder into space reserved at
 * the end of the buffer; libcbor never allocates.
 */
#include "buf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>

#define TBUF_MIN_CAP 64

void tbuf_init(tbuf *b, size_t limit)
{
    assert(b);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit ? limit : TBUF_DEFAULT_LIMIT;
}

void tbuf_fini(tbuf *b)
{
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void tbuf_reset(tbuf *b)
{
    assert(b);
    b->len = 0;
}

tdm_err tbuf_reserve(tbuf *b, size_t extra)
{
    assert(b && b->len <= b->cap);
    if (extra > b->limit || b->len > b->limit - extra) return TDM_ETOOBIG;
    size_t need = b->len + extra;
    if (need <= b->cap) return TDM_OK;

    /* Grow geometrically, but never past the limit. */
    size_t ncap = b->cap < TBUF_MIN_CAP ? TBUF_MIN_CAP : b->cap;
    while (ncap < need) ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
    if (ncap > b->limit) ncap = b->limit;

    uint8_t *nd = realloc(b->data, ncap);
    if (!nd) return TDM_ENOMEM;
    b->data = nd;
    b->cap = ncap;
    return TDM_OK;
}

tdm_err tbuf_append(tbuf *b, const void *p, size_t n)
{
    if (n == 0) return TDM_OK;
    assert(p);
    tdm_err e = tbuf_reserve(b, n);
    if (e) return e;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return TDM_OK;
}

uint8_t *tbuf_take(tbuf *b, size_t *len)
{
    assert(b);
    uint8_t *d = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}

/* Size of a CBOR head (initial byte plus argument) for argument v. */
static size_t cbor_head_size(uint64_t v)
{
    if (v < 24) return 1;
    if (v <= UINT8_MAX) return 2;
    if (v <= UINT16_MAX) return 3;
    if (v <= UINT32_MAX) return 5;
    return 9;
}

typedef size_t (*cbor_head_fn)(uint64_t v, unsigned char *out, size_t room);

static size_t enc_uint(uint64_t v, unsigned char *out, size_t room)
{
    return cbor_encode_uint(v, out, room);
}

static size_t enc_negint(uint64_t v, unsigned char *out, size_t room)
{
    return cbor_encode_negint(v, out, room);
}

static size_t enc_array(uint64_t v, unsigned char *out, size_t room)
{
    return cbor_encode_array_start((size_t)v, out, room);
}

static size_t enc_map(uint64_t v, unsigned char *out, size_t room)
{
    return cbor_encode_map_start((size_t)v, out, room);
}

static size_t enc_bytes(uint64_t v, unsigned char *out, size_t room)
{
    return cbor_encode_bytestring_start((size_t)v, out, room);
}

static size_t enc_text(uint64_t v, unsigned char *out, size_t room)
{
    return cbor_encode_string_start((size_t)v, out, room);
}

/* Append a head with argument v and then `n` payload bytes from p (n may be 0).
 * All space is reserved first, so a failure changes nothing. */
static tdm_err put_head(tbuf *b, cbor_head_fn fn, uint64_t v, const void *p, size_t n)
{
    size_t hs = cbor_head_size(v);
    if (n > SIZE_MAX - hs) return TDM_ETOOBIG;
    tdm_err e = tbuf_reserve(b, hs + n);
    if (e) return e;
    size_t w = fn(v, b->data + b->len, hs);
    if (w != hs) return TDM_EINVAL; /* libcbor disagreed about the head size */
    if (n) memcpy(b->data + b->len + hs, p, n);
    b->len += hs + n;
    return TDM_OK;
}

tdm_err tbuf_cbor_uint(tbuf *b, uint64_t v)
{
    return put_head(b, enc_uint, v, NULL, 0);
}

tdm_err tbuf_cbor_int(tbuf *b, int64_t v)
{
    if (v >= 0) return put_head(b, enc_uint, (uint64_t)v, NULL, 0);
    /* -1 - v, computed without overflow for INT64_MIN */
    return put_head(b, enc_negint, (uint64_t)(-(v + 1)), NULL, 0);
}

tdm_err tbuf_cbor_array(tbuf *b, size_t count)
{
    return put_head(b, enc_array, count, NULL, 0);
}

tdm_err tbuf_cbor_map(tbuf *b, size_t count)
{
    return put_head(b, enc_map, count, NULL, 0);
}

tdm_err tbuf_cbor_bytes(tbuf *b, const void *p, size_t n)
{
    assert(p || n == 0);
    return put_head(b, enc_bytes, n, p, n);
}

tdm_err tbuf_cbor_text(tbuf *b, const void *p, size_t n)
{
    assert(p || n == 0);
    return put_head(b, enc_text, n, p, n);
}

tdm_err tbuf_cbor_null(tbuf *b)
{
    tdm_err e = tbuf_reserve(b, 1);
    if (e) return e;
    if (cbor_encode_null(b->data + b->len, 1) != 1) return TDM_EINVAL;
    b->len += 1;
    return TDM_OK;
}

tdm_err tbuf_cbor_bool(tbuf *b, int v)
{
    tdm_err e = tbuf_reserve(b, 1);
    if (e) return e;
    if (cbor_encode_bool(v != 0, b->data + b->len, 1) != 1) return TDM_EINVAL;
    b->len += 1;
    return TDM_OK;
}

tdm_err tbuf_varint(tbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    return tbuf_append(b, tmp, n);
}

tdm_err tbuf_svarint(tbuf *b, int64_t v)
{
    /* zigzag: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ... */
    uint64_t z = ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
    return tbuf_varint(b, z);
}
