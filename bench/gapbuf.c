/* gapbuf.c - gap buffer over UTF-8 bytes; see gapbuf.h.
 *
 * Invariants: gap_start <= gap_end <= cap; the bytes outside the gap are
 * valid UTF-8 holding `cps` code points of which `multi` are multi-byte, and
 * gap_cp of them lie before the gap. multi == 0 means byte offset == code
 * point, the fast path every ASCII trace takes.
 */
#include "gapbuf.h"

#include <stdlib.h>
#include <string.h>

#define GAPBUF_DEFAULT_LIMIT ((size_t)1 << 30)
#define GAPBUF_MIN_CAP       4096

static int is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

void gapbuf_init(gapbuf *g, size_t limit)
{
    memset(g, 0, sizeof *g);
    g->limit = limit ? limit : GAPBUF_DEFAULT_LIMIT;
}

void gapbuf_fini(gapbuf *g)
{
    size_t limit = g->limit;
    free(g->buf);
    memset(g, 0, sizeof *g);
    g->limit = limit;
}

size_t gapbuf_len(const gapbuf *g)
{
    return g->cps;
}

size_t gapbuf_len_bytes(const gapbuf *g)
{
    return g->cap - (g->gap_end - g->gap_start);
}

/* Logical byte offset of code point pos (pos <= cps), scanning from whichever
 * of the text start, the gap or the text end is nearest. */
static size_t byte_of(const gapbuf *g, size_t pos)
{
    if (g->multi == 0) return pos;
    const unsigned char *b = (const unsigned char *)g->buf;
    size_t off, k;
    if (pos <= g->gap_cp) {
        if (pos < g->gap_cp - pos) { /* forward from the start */
            for (off = 0, k = pos; k; k--) {
                off++;
                while (off < g->gap_start && is_cont(b[off])) off++;
            }
            return off;
        }
        for (off = g->gap_start, k = g->gap_cp - pos; k; off--) {
            if (!is_cont(b[off - 1])) k--; /* b[off-1] starts a code point */
        }
        return off;
    }
    if (g->cps - pos < pos - g->gap_cp) { /* backward from the end */
        for (off = g->cap, k = g->cps - pos; k; off--) {
            if (!is_cont(b[off - 1])) k--;
        }
    } else {
        for (off = g->gap_end, k = pos - g->gap_cp; k; k--) {
            off++;
            while (off < g->cap && is_cont(b[off])) off++;
        }
    }
    return g->gap_start + (off - g->gap_end);
}

/* Move the gap to logical byte offset boff, which is code point cp. */
static void move_gap(gapbuf *g, size_t boff, size_t cp)
{
    if (boff < g->gap_start) {
        size_t n = g->gap_start - boff;
        memmove(g->buf + g->gap_end - n, g->buf + boff, n);
        g->gap_start = boff;
        g->gap_end -= n;
    } else if (boff > g->gap_start) {
        size_t n = boff - g->gap_start;
        memmove(g->buf + g->gap_start, g->buf + g->gap_end, n);
        g->gap_start += n;
        g->gap_end += n;
    }
    g->gap_cp = cp;
}

/* Make the gap at least `need` bytes; the text is unchanged on failure. */
static tdm_err grow(gapbuf *g, size_t need)
{
    size_t len = gapbuf_len_bytes(g);
    if (need > g->limit || len > g->limit - need) return TDM_ETOOBIG;
    size_t ncap = g->cap < GAPBUF_MIN_CAP ? GAPBUF_MIN_CAP : g->cap;
    while (ncap < len + need) ncap = ncap > g->limit / 2 ? g->limit : ncap * 2;
    char *nb = realloc(g->buf, ncap);
    if (!nb) return TDM_ENOMEM;
    size_t tail = g->cap - g->gap_end;
    if (tail) memmove(nb + ncap - tail, nb + g->gap_end, tail);
    g->buf = nb;
    g->gap_end = ncap - tail;
    g->cap = ncap;
    return TDM_OK;
}

tdm_err gapbuf_splice(gapbuf *g, size_t pos, size_t del, const char *ins, size_t ins_len,
                      size_t ins_cps)
{
    if (pos > g->cps || del > g->cps - pos) return TDM_ERANGE;
    if (ins_len > g->gap_end - g->gap_start) {
        tdm_err err = grow(g, ins_len);
        if (err) return err;
    }
    move_gap(g, byte_of(g, pos), pos);
    if (del) {
        if (g->multi == 0) {
            g->gap_end += del;
        } else {
            const unsigned char *b = (const unsigned char *)g->buf;
            size_t off = g->gap_end, m = 0;
            for (size_t k = del; k; k--) {
                m += b[off] >= 0xc0;
                off++;
                while (off < g->cap && is_cont(b[off])) off++;
            }
            g->gap_end = off;
            g->multi -= m;
        }
        g->cps -= del;
    }
    if (ins_len) {
        memcpy(g->buf + g->gap_start, ins, ins_len);
        g->gap_start += ins_len;
        g->gap_cp += ins_cps;
        g->cps += ins_cps;
        if (ins_len != ins_cps) {
            size_t m = 0;
            for (size_t i = 0; i < ins_len; i++) m += (unsigned char)ins[i] >= 0xc0;
            g->multi += m;
        }
    }
    return TDM_OK;
}

const char *gapbuf_contents(gapbuf *g, size_t *len)
{
    *len = gapbuf_len_bytes(g);
    if (!g->buf) return "";
    move_gap(g, *len, g->cps);
    return g->buf;
}
