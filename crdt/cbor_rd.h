/* cbor_rd.h - the validating pull decoder for untrusted CBOR (prefix cbr_).
 *
 * Built on libcbor's cbor_stream_decode (one header per call, zero-copy strings);
 * never cbor_load. The reader enforces:
 *   - definite lengths only (indefinite strings/arrays/maps are malformed);
 *   - a declared array/map count never larger than the bytes that remain
 *     (every element takes at least one byte), so nothing is allocated in
 *     proportion to a declared size;
 *   - string lengths within the remaining bytes;
 *   - only the item type the caller asks for (anything else is TDM_EMALFORMED);
 *   - cbr_finish() fails when bytes remain (no trailing data).
 * Nesting depth is bounded by the caller's own structure: each cbr_* call reads
 * exactly one header, so recursion happens only where the caller recurses.
 * Strings point into the input (valid while the input is).
 *
 * Thread safety: a reader is a plain value; one thread per reader.
 */
#ifndef TANDEM_CBOR_RD_H
#define TANDEM_CBOR_RD_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"

typedef enum cbr_type {
    CBR_UINT,
    CBR_NEGINT,
    CBR_BYTES,
    CBR_TEXT,
    CBR_ARRAY,
    CBR_MAP,
    CBR_TAG,
    CBR_FLOAT,
    CBR_BOOL,
    CBR_NULL,
    CBR_UNDEF,
    CBR_END, /* no bytes left */
    CBR_BAD  /* the next bytes are not a well-formed CBOR header */
} cbr_type;

typedef struct cbr {
    const uint8_t *p;
    size_t n;
    size_t pos;
} cbr;

/* cbr_init - read p[0..n). */
void cbr_init(cbr *r, const uint8_t *p, size_t n);
/* cbr_peek - type of the next item without consuming it. CBR_BAD also covers
 * heads no cbr_* call would accept: indefinite lengths, a stray break, a
 * declared count or string length larger than the bytes that remain. */
cbr_type cbr_peek(const cbr *r);
/* cbr_remaining - bytes not yet consumed. */
size_t cbr_remaining(const cbr *r);

/* The typed readers below consume one item of exactly that type and return
 * TDM_OK, or return TDM_EMALFORMED (wrong type, malformed, truncated, end of
 * input) without moving the reader or writing the outputs. */
tdm_err cbr_uint(cbr *r, uint64_t *v);
/* cbr_int - an unsigned or negative integer that fits int64_t. */
tdm_err cbr_int(cbr *r, int64_t *v);
/* cbr_array - an array header; *count is <= remaining bytes. */
tdm_err cbr_array(cbr *r, size_t *count);
/* cbr_map - a map header; 2 * *count is <= remaining bytes. */
tdm_err cbr_map(cbr *r, size_t *count);
tdm_err cbr_bytes(cbr *r, const uint8_t **p, size_t *n);
/* cbr_text - a text string (UTF-8 is NOT checked here: callers validate). */
tdm_err cbr_text(cbr *r, const uint8_t **p, size_t *n);
tdm_err cbr_null(cbr *r);
tdm_err cbr_bool(cbr *r, bool *v);
/* Largest max_depth cbr_skip accepts (it keeps one counter per level). */
#define CBR_MAX_DEPTH 64

/* cbr_skip - skip one complete item of any type, nested at most `max_depth`:
 * each array, map or tag opens one level, so 0 allows only a scalar and 1 a
 * flat array of scalars. Works iteratively in time linear in the bytes skipped.
 * TDM_EINVAL when max_depth is outside 0..CBR_MAX_DEPTH; TDM_EMALFORMED for a
 * malformed, truncated or too deeply nested item, and then the reader does not
 * move. */
tdm_err cbr_skip(cbr *r, int max_depth);
/* cbr_finish - TDM_OK only when every byte has been consumed. */
tdm_err cbr_finish(const cbr *r);

/* Bounded LEB128 varint readers over a byte range (for columnar payloads). */
typedef struct vrd {
    const uint8_t *p;
    size_t n;
    size_t pos;
} vrd;
void vrd_init(vrd *r, const uint8_t *p, size_t n);
/* The vrd_* readers return TDM_EMALFORMED without moving on bad input.
 * vrd_uint - at most 10 bytes; overflowing 64 bits or running out is malformed.
 * Non-minimal forms that fit (80 00 for 0) are accepted. */
tdm_err vrd_uint(vrd *r, uint64_t *v);
/* vrd_u32 - like vrd_uint but the value must fit 32 bits. */
tdm_err vrd_u32(vrd *r, uint32_t *v);
/* vrd_sint - a zigzag-encoded signed varint (see tbuf_svarint). */
tdm_err vrd_sint(vrd *r, int64_t *v);
tdm_err vrd_byte(vrd *r, uint8_t *v);

#endif
