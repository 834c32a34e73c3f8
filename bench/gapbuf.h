/* gapbuf.h - a plain gap buffer over UTF-8 bytes with code-point positions
 * (prefix gapbuf_): the floor the CRDT is compared against in benchmarks.
 *
 * The text lives in one array with a gap at the last edit; an edit moves the
 * gap (memmove of the bytes in between) and writes into it. Positions are code
 * points. While the whole text is ASCII a position is a byte offset; otherwise
 * it is found by scanning UTF-8 from the gap, whose code-point position is
 * tracked, so local edits stay cheap.
 *
 * Ownership: the buffer owns its memory (gapbuf_init / gapbuf_fini).
 * Threads: a buffer is single-threaded; no globals.
 */
#ifndef TANDEM_GAPBUF_H
#define TANDEM_GAPBUF_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef struct gapbuf {
    char *buf;        /* cap bytes: text [0, gap_start) and [gap_end, cap) */
    size_t cap;       /* bytes allocated */
    size_t gap_start; /* byte offset of the gap */
    size_t gap_end;   /* byte offset just past the gap */
    size_t gap_cp;    /* code points before the gap */
    size_t cps;       /* code points in the text */
    size_t multi;     /* code points of two or more bytes in the text */
    size_t limit;     /* hard cap on cap */
} gapbuf;

/* gapbuf_init - an empty buffer that may grow to `limit` bytes (0: 1 GiB). */
void gapbuf_init(gapbuf *g, size_t limit);
/* gapbuf_fini - free the memory; the buffer is empty and reusable. */
void gapbuf_fini(gapbuf *g);

/* gapbuf_splice - at code point pos delete `del` code points, then insert
 * ins[0..ins_len), which must be valid UTF-8 holding exactly ins_cps code
 * points (the caller's promise; trace_load provides both). TDM_ERANGE when
 * pos + del exceeds the length, TDM_ETOOBIG past the limit, TDM_ENOMEM. On
 * error the text is unchanged. */
tdm_err gapbuf_splice(gapbuf *g, size_t pos, size_t del, const char *ins, size_t ins_len,
                      size_t ins_cps);

/* gapbuf_len - code points in the text. gapbuf_len_bytes - UTF-8 bytes. */
size_t gapbuf_len(const gapbuf *g);
size_t gapbuf_len_bytes(const gapbuf *g);

/* gapbuf_contents - move the gap to the end and return the text (not
 * NUL-terminated; *len gets its bytes). Valid until the next splice or fini. */
const char *gapbuf_contents(gapbuf *g, size_t *len);

#endif
