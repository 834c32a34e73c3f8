/* zip.h - raw DEFLATE (RFC 1951) of byte columns through zlib (prefix zip_).
 *
 * Used by the snapshot encoding. Inflating untrusted bytes is bounded: output
 * grows with the data actually produced, never with a declared size, and stops
 * with TDM_ETOOBIG at `cap`. Pure computation; any thread, one call at a time
 * per buffer.
 */
#ifndef TANDEM_ZIP_H
#define TANDEM_ZIP_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"

/* zip_deflate - append the raw-deflated form of p[0..n) to out. */
tdm_err zip_deflate(const uint8_t *p, size_t n, tbuf *out);
/* zip_inflate - append the inflated form of p[0..n) to out. TDM_EMALFORMED when
 * the stream is invalid, truncated or followed by trailing bytes; TDM_ETOOBIG
 * when more than `cap` bytes would come out. */
tdm_err zip_inflate(const uint8_t *p, size_t n, size_t cap, tbuf *out);

/* zip_crc32 - CRC-32 (ISO-HDLC, as zlib) of p[0..n), continuing from crc
 * (start with 0). */
uint32_t zip_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
