/* buf.h - a growable byte buffer with a hard cap (prefix tbuf_), and the CBOR
 * encoding helpers that write into it through libcbor's encoder.
 *
 * Every buffer is created with a cap; growing past it fails with TDM_ETOOBIG and
 * leaves the contents as they were. The buffer owns its memory until
 * tbuf_take() hands it to the caller. Not thread-safe: one owner at a time.
 */
#ifndef TANDEM_BUF_H
#define TANDEM_BUF_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef struct tbuf {
    uint8_t *data; /* contents, len bytes valid */
    size_t len;
    size_t cap;   /* bytes allocated */
    size_t limit; /* hard cap on len */
} tbuf;

#define TBUF_DEFAULT_LIMIT ((size_t)256 << 20) /* 256 MiB */

/* tbuf_init - empty buffer that may grow to `limit` bytes (0: TBUF_DEFAULT_LIMIT). */
void tbuf_init(tbuf *b, size_t limit);
/* tbuf_fini - free the memory; the buffer is empty and reusable afterwards. */
void tbuf_fini(tbuf *b);
/* tbuf_reset - set len to 0, keep the memory. */
void tbuf_reset(tbuf *b);
/* tbuf_reserve - make room for `extra` more bytes. TDM_ETOOBIG past the limit. */
tdm_err tbuf_reserve(tbuf *b, size_t extra);
/* tbuf_append - append n bytes. */
tdm_err tbuf_append(tbuf *b, const void *p, size_t n);
/* tbuf_take - hand the memory to the caller (free() it); the buffer is left empty.
 * Returns NULL when nothing was ever allocated (then *len is 0). */
uint8_t *tbuf_take(tbuf *b, size_t *len);

/* CBOR items (RFC 8949, shortest form) appended with libcbor's encoder. Each
 * appends the whole item (bytes/text: head and payload) or fails with
 * TDM_ETOOBIG / TDM_ENOMEM leaving the buffer unchanged. */
tdm_err tbuf_cbor_uint(tbuf *b, uint64_t v);
tdm_err tbuf_cbor_int(tbuf *b, int64_t v);
tdm_err tbuf_cbor_array(tbuf *b, size_t count);
tdm_err tbuf_cbor_map(tbuf *b, size_t count);
tdm_err tbuf_cbor_bytes(tbuf *b, const void *p, size_t n);
tdm_err tbuf_cbor_text(tbuf *b, const void *p, size_t n);
tdm_err tbuf_cbor_null(tbuf *b);
tdm_err tbuf_cbor_bool(tbuf *b, int v);

/* LEB128 varints (used inside CBOR byte strings by the columnar snapshot). */
tdm_err tbuf_varint(tbuf *b, uint64_t v);
/* zigzag-encoded signed varint */
tdm_err tbuf_svarint(tbuf *b, int64_t v);

#endif
