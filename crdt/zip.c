#include "zip.h"

#include <zlib.h>

tdm_err zip_deflate(const uint8_t *p, size_t n, tbuf *out)
{
    z_stream z = {0};
    if (deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK) return TDM_ENOMEM;
    size_t start = out->len;
    uLong bound = deflateBound(&z, (uLong)n);
    tdm_err e = tbuf_reserve(out, bound);
    if (e) goto done;
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = out->data + out->len;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        e = TDM_EINVAL;
        out->len = start;
        goto done;
    }
    out->len += z.total_out;
done:
    deflateEnd(&z);
    return e;
}

tdm_err zip_inflate(const uint8_t *p, size_t n, size_t cap, tbuf *out)
{
    z_stream z = {0};
    if (inflateInit2(&z, -15) != Z_OK) return TDM_ENOMEM;
    size_t start = out->len;
    tdm_err e = TDM_OK;
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    for (;;) {
        size_t chunk = n * 4 + 4096;
        if (out->len - start + chunk > cap) chunk = cap - (out->len - start);
        if (chunk == 0) {
            e = TDM_ETOOBIG;
            break;
        }
        if ((e = tbuf_reserve(out, chunk))) break;
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)chunk;
        int rc = inflate(&z, Z_NO_FLUSH);
        out->len += chunk - z.avail_out;
        if (rc == Z_STREAM_END) {
            if (z.avail_in != 0) e = TDM_EMALFORMED; /* trailing bytes */
            break;
        }
        if (rc == Z_BUF_ERROR && z.avail_in == 0) { /* truncated */
            e = TDM_EMALFORMED;
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            e = rc == Z_MEM_ERROR ? TDM_ENOMEM : TDM_EMALFORMED;
            break;
        }
    }
    if (e) out->len = start;
    inflateEnd(&z);
    return e;
}

uint32_t zip_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    uLong c = crc;
    while (n > 0) { /* zlib takes uInt lengths */
        uInt k = n > 0x40000000u ? 0x40000000u : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}
