/* fuzz_util.h - checks shared by the libFuzzer harnesses (fuzz/ only).
 *
 * A failed check prints what was expected and aborts, which libFuzzer reports
 * as a crash and saves the input. Everything here is static (each harness is
 * its own program); none of it is part of the library.
 */
#ifndef TANDEM_FUZZ_UTIL_H
#define TANDEM_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "ids.h"

/* libFuzzer's entry points (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) fz_fail(__FILE__, __LINE__, #cond, NULL);                                     \
    } while (0)

/* FZ_OK - a call that must succeed; names the error when it does not. */
#define FZ_OK(call)                                                                                \
    do {                                                                                           \
        tdm_err fz_e_ = (call);                                                                    \
        if (fz_e_ != TDM_OK) fz_fail(__FILE__, __LINE__, #call, tdm_err_name(fz_e_));              \
    } while (0)

static inline _Noreturn void fz_fail(const char *file, int line, const char *what, const char *err)
{
    fprintf(stderr, "%s:%d: invariant violated: %s%s%s\n", file, line, what, err ? " -> " : "",
            err ? err : "");
    abort();
}

static inline crdt_doc *fz_doc(uint64_t client, bool gc, size_t max_update_bytes)
{
    crdt_doc_opts o = {0};
    crdt_doc *d = NULL;
    o.client = client;
    o.gc = gc;
    o.max_update_bytes = max_update_bytes;
    FZ_OK(crdt_doc_new_opts(&o, &d));
    return d;
}

static inline bool fz_buf_eq(const tbuf *a, const tbuf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* fz_check_utf8_lengths - p[0..n) is strict UTF-8 (checked independently of
 * crdt/utf8.c) with exactly cp code points and u16 UTF-16 units. */
static inline void fz_check_utf8_lengths(const uint8_t *p, size_t n, size_t cp, size_t u16)
{
    size_t i = 0, cps = 0, units = 0;
    while (i < n) {
        uint8_t b = p[i];
        uint32_t c;
        size_t k;
        if (b < 0x80) {
            c = b;
            k = 1;
        } else if (b >= 0xC2 && b < 0xE0) {
            c = b & 0x1F;
            k = 2;
        } else if (b >= 0xE0 && b < 0xF0) {
            c = b & 0x0F;
            k = 3;
        } else if (b >= 0xF0 && b < 0xF5) {
            c = b & 0x07;
            k = 4;
        } else {
            fz_fail(__FILE__, __LINE__, "text is strict UTF-8 (bad lead byte)", NULL);
        }
        FZ_CHECK(i + k <= n);
        for (size_t j = 1; j < k; j++) {
            FZ_CHECK((p[i + j] & 0xC0) == 0x80);
            c = (c << 6) | (p[i + j] & 0x3F);
        }
        FZ_CHECK(!(k == 3 && c < 0x800)); /* overlong */
        FZ_CHECK(!(k == 4 && (c < 0x10000 || c > 0x10FFFF)));
        FZ_CHECK(!(c >= 0xD800 && c <= 0xDFFF)); /* surrogate */
        i += k;
        cps++;
        units += c >= 0x10000 ? 2 : 1;
    }
    FZ_CHECK(cps == cp);
    FZ_CHECK(units == u16);
}

/* The observable state of a document. */
typedef struct fz_state {
    tbuf text;
    crdt_sv *sv;
    crdt_ds *ds;
    size_t pending, cp, u16, bytes;
} fz_state;

static inline void fz_state_init(fz_state *s)
{
    tbuf_init(&s->text, 0);
    s->sv = crdt_sv_new();
    s->ds = crdt_ds_new();
    FZ_CHECK(s->sv && s->ds);
    s->pending = s->cp = s->u16 = s->bytes = 0;
}

static inline void fz_state_fini(fz_state *s)
{
    tbuf_fini(&s->text);
    crdt_sv_free(s->sv);
    crdt_ds_free(s->ds);
}

/* fz_capture - read doc's state into s, checking that the three lengths agree
 * with the text. */
static inline void fz_capture(crdt_doc *d, fz_state *s)
{
    tbuf_reset(&s->text);
    FZ_OK(crdt_doc_text(d, &s->text));
    FZ_OK(crdt_doc_state_vector(d, s->sv));
    FZ_OK(crdt_doc_delete_set(d, s->ds));
    s->pending = crdt_doc_pending(d);
    s->cp = crdt_doc_len(d);
    s->u16 = crdt_doc_len_utf16(d);
    s->bytes = crdt_doc_len_bytes(d);
    FZ_CHECK(s->bytes == s->text.len);
    fz_check_utf8_lengths(s->text.data, s->text.len, s->cp, s->u16);
}

static inline bool fz_same_text(const fz_state *a, const fz_state *b)
{
    return fz_buf_eq(&a->text, &b->text) && a->cp == b->cp && a->u16 == b->u16 &&
           a->bytes == b->bytes;
}

static inline int fz_u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* fz_sorted_cps - the code points of valid UTF-8 p[0..n), sorted (malloc'd) */
static inline uint32_t *fz_sorted_cps(const uint8_t *p, size_t n, size_t *count)
{
    uint32_t *v = malloc((n ? n : 1) * sizeof(uint32_t));
    size_t k = 0;
    FZ_CHECK(v);
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        uint32_t c = len == 1 ? b : b & (0x7F >> len);
        for (size_t j = 1; j < len; j++) c = (c << 6) | (p[i + j] & 0x3F);
        v[k++] = c;
        i += len;
    }
    qsort(v, k, sizeof(uint32_t), fz_u32_cmp);
    *count = k;
    return v;
}

/* fz_same_chars - the same code points in any order (texts already checked
 * to be valid UTF-8 by fz_capture) */
static inline bool fz_same_chars(const fz_state *a, const fz_state *b)
{
    if (a->cp != b->cp || a->u16 != b->u16 || a->bytes != b->bytes) return false;
    size_t na, nb;
    uint32_t *va = fz_sorted_cps(a->text.data, a->text.len, &na);
    uint32_t *vb = fz_sorted_cps(b->text.data, b->text.len, &nb);
    bool same = na == nb && (na == 0 || memcmp(va, vb, na * sizeof(uint32_t)) == 0);
    free(va);
    free(vb);
    return same;
}

static inline bool fz_same_state(const fz_state *a, const fz_state *b)
{
    return fz_same_text(a, b) && crdt_sv_equal(a->sv, b->sv) && crdt_ds_equal(a->ds, b->ds) &&
           a->pending == b->pending;
}

/* fz_env_flag - an environment switch ("1" turns it on). */
static inline bool fz_env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] == '1';
}

#endif
