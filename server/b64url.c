/* b64url.c - base64url without padding (b64url.h). */
#include "b64url.h"

static const char b64_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64url_encode(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
    if (cap == 0) return 0;
    if (need + 1 > cap) {
        out[0] = '\0';
        return 0;
    }
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_alpha[v >> 18 & 63];
        out[o++] = b64_alpha[v >> 12 & 63];
        out[o++] = b64_alpha[v >> 6 & 63];
        out[o++] = b64_alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64_alpha[v >> 18 & 63];
        out[o++] = b64_alpha[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64_alpha[v >> 18 & 63];
        out[o++] = b64_alpha[v >> 12 & 63];
        out[o++] = b64_alpha[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

tdm_err b64url_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    if (!s && n) return TDM_EINVAL;
    if (n % 4 == 1) return TDM_EMALFORMED;
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    for (size_t i = 0; i < n; i++)
        if (b64url_value((unsigned char)s[i]) < 0) return TDM_EMALFORMED;
    if (need > cap) return TDM_ETOOBIG;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t v = (uint32_t)b64url_value((unsigned char)s[i]) << 18 |
                     (uint32_t)b64url_value((unsigned char)s[i + 1]) << 12 |
                     (uint32_t)b64url_value((unsigned char)s[i + 2]) << 6 |
                     (uint32_t)b64url_value((unsigned char)s[i + 3]);
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (n - i == 2) {
        uint32_t v = (uint32_t)b64url_value((unsigned char)s[i]) << 18 |
                     (uint32_t)b64url_value((unsigned char)s[i + 1]) << 12;
        if (v & 0xffffu) return TDM_EMALFORMED; /* non-zero unused bits */
        out[o++] = (uint8_t)(v >> 16);
    } else if (n - i == 3) {
        uint32_t v = (uint32_t)b64url_value((unsigned char)s[i]) << 18 |
                     (uint32_t)b64url_value((unsigned char)s[i + 1]) << 12 |
                     (uint32_t)b64url_value((unsigned char)s[i + 2]) << 6;
        if (v & 0xffu) return TDM_EMALFORMED;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
    }
    *out_len = o;
    return TDM_OK;
}
