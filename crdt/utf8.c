/* utf8.c - strict UTF-8 validation and code-point arithmetic.
 *
 * Validation follows RFC 3629 / Unicode table 3-7 byte for byte: the second
 * byte of a sequence is range-checked against its lead byte, which is what
 * rules out overlong forms (C0, C1, E0 80..9F, F0 80..8F), surrogates
 * (ED A0..BF) and code points above U+10FFFF (F4 90.., F5..FF).
 *
 * ASCII runs are handled eight bytes at a time: a word is loaded with memcpy
 * (no alignment or aliasing assumptions) and tested against the high bits.
 */
#include "utf8.h"

#include <string.h>

#define HIGH_BITS UINT64_C(0x8080808080808080)

static uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Number of bytes in w with bit 7 set, where only bit 7 of each byte may be set. */
static unsigned count_high(uint64_t w)
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_popcountll(w);
#else
    /* Move each byte's bit 7 to bit 0 and sum the bytes with one multiply. */
    return (unsigned)((((w >> 7) * UINT64_C(0x0101010101010101)) >> 56) & 0xff);
#endif
}

bool utf8_validate(const uint8_t *p, size_t n, size_t *cps, size_t *astral)
{
    size_t i = 0, ncp = 0, nastral = 0;

    while (i < n) {
        if (n - i >= 8 && (load64(p + i) & HIGH_BITS) == 0) {
            i += 8;
            ncp += 8;
            continue;
        }
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            ncp++;
            continue;
        }
        /* Multi-byte sequence: the lead byte fixes the length and the legal
         * range of the second byte; later bytes are plain 80..BF. */
        size_t len;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0; /* overlong below U+0800 */
            if (c == 0xed) hi = 0x9f; /* surrogates U+D800..U+DFFF */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90; /* overlong below U+10000 */
            if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
        } else {
            return false; /* continuation byte, C0/C1 overlong lead, F5..FF */
        }
        if (n - i < len) return false;
        if (p[i + 1] < lo || p[i + 1] > hi) return false;
        for (size_t k = 2; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false;
        }
        i += len;
        ncp++;
        if (len == 4) nastral++;
    }
    if (cps) *cps = ncp;
    if (astral) *astral = nastral;
    return true;
}

size_t utf8_skip(const uint8_t *p, size_t n, size_t k)
{
    size_t i = 0;
    while (k > 0 && i < n) {
        if (k >= 8 && n - i >= 8 && (load64(p + i) & HIGH_BITS) == 0) {
            i += 8;
            k -= 8;
            continue;
        }
        uint8_t c = p[i];
        if (c < 0x80)
            i += 1;
        else if (c < 0xe0)
            i += 2;
        else if (c < 0xf0)
            i += 3;
        else
            i += 4;
        k--;
    }
    return i < n ? i : n;
}

size_t utf8_count(const uint8_t *p, size_t n)
{
    size_t i = 0, cont = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w = load64(p + i);
        /* continuation byte: bit 7 set and bit 6 clear */
        cont += count_high(w & ~(w << 1) & HIGH_BITS);
    }
    for (; i < n; i++) cont += (p[i] & 0xc0) == 0x80;
    return n - cont;
}

size_t utf8_count_astral(const uint8_t *p, size_t n)
{
    size_t i = 0, cnt = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w = load64(p + i);
        if ((w & HIGH_BITS) == 0) continue;
        /* lead byte of a 4-byte sequence: bits 7..4 all set (F0..F4) */
        cnt += count_high(w & (w << 1) & (w << 2) & (w << 3) & HIGH_BITS);
    }
    for (; i < n; i++) cnt += p[i] >= 0xf0;
    return cnt;
}
