/* test_util.h - small helpers shared by the crdt test suites (Check).
 * Header-only (static inline); include after <check.h>. */
#ifndef TANDEM_TEST_UTIL_H
#define TANDEM_TEST_UTIL_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "doc.h"

/* tu_rng - splitmix64: a fixed-seed pseudo-random stream for property tests */
static inline uint64_t tu_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* tu_sync - bring `to` up to date with `from` (diff against to's state vector) */
static inline void tu_sync(crdt_doc *from, crdt_doc *to)
{
    crdt_sv *sv = crdt_sv_new();
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_ptr_nonnull(sv);
    ck_assert_int_eq(crdt_doc_state_vector(to, sv), TDM_OK);
    ck_assert_int_eq(crdt_doc_diff(from, sv, &b), TDM_OK);
    ck_assert_int_eq(crdt_doc_apply(to, b.data, b.len), TDM_OK);
    tbuf_fini(&b);
    crdt_sv_free(sv);
}

/* tu_text - the document's text, NUL-terminated (free it); *n (may be NULL)
 * gets its length in bytes */
static inline char *tu_text(crdt_doc *d, size_t *n)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(crdt_doc_text(d, &b), TDM_OK);
    ck_assert_int_eq(tbuf_append(&b, "", 1), TDM_OK);
    size_t len;
    char *t = (char *)tbuf_take(&b, &len);
    if (n) *n = len - 1;
    return t;
}

#endif
