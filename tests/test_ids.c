/* test_ids.c - state vectors and delete sets: operations, merge, covers,
 * encodings, and malformed encodings (which must leave the value unchanged). */
#include "ids.h"
#include "cbor_rd.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

/* ------------------------------------------------------------------ sv */

START_TEST(test_sv_basics)
{
    crdt_sv *sv = crdt_sv_new();
    ck_assert_ptr_nonnull(sv);
    ck_assert_uint_eq(crdt_sv_count(sv), 0);
    ck_assert_uint_eq(crdt_sv_get(sv, 7), 0);

    ck_assert_int_eq(crdt_sv_set(sv, 30, 3), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(sv, 10, 1), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(sv, UINT64_MAX, 9), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(sv, 20, 2), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(sv, 0, 5), TDM_OK);
    ck_assert_uint_eq(crdt_sv_count(sv), 5);
    ck_assert_uint_eq(crdt_sv_get(sv, 20), 2);
    ck_assert_uint_eq(crdt_sv_get(sv, 0), 5);
    ck_assert_uint_eq(crdt_sv_get(sv, UINT64_MAX), 9);
    ck_assert_uint_eq(crdt_sv_get(sv, 25), 0);

    static const uint64_t order[] = {0, 10, 20, 30, UINT64_MAX};
    for (size_t i = 0; i < 5; i++) {
        uint64_t c;
        uint32_t k;
        crdt_sv_entry(sv, i, &c, &k);
        ck_assert_uint_eq(c, order[i]);
        ck_assert_uint_eq(k, crdt_sv_get(sv, c));
    }

    ck_assert_int_eq(crdt_sv_set(sv, 20, 200), TDM_OK); /* update in place */
    ck_assert_uint_eq(crdt_sv_get(sv, 20), 200);
    ck_assert_uint_eq(crdt_sv_count(sv), 5);
    ck_assert_int_eq(crdt_sv_set(sv, 20, 0), TDM_OK); /* 0 removes */
    ck_assert_uint_eq(crdt_sv_count(sv), 4);
    ck_assert_uint_eq(crdt_sv_get(sv, 20), 0);
    ck_assert_int_eq(crdt_sv_set(sv, 12345, 0), TDM_OK); /* removing an absent one */
    ck_assert_uint_eq(crdt_sv_count(sv), 4);

    ck_assert_int_eq(crdt_sv_set(sv, 1, CRDT_CLOCK_MAX), TDM_EINVAL);
    ck_assert_int_eq(crdt_sv_set(sv, 1, UINT32_MAX), TDM_EINVAL);
    ck_assert_uint_eq(crdt_sv_get(sv, 1), 0);
    ck_assert_int_eq(crdt_sv_set(sv, 1, CRDT_CLOCK_MAX - 1), TDM_OK);

    crdt_sv_clear(sv);
    ck_assert_uint_eq(crdt_sv_count(sv), 0);
    ck_assert_uint_eq(crdt_sv_get(sv, 10), 0);
    crdt_sv_free(sv);
    crdt_sv_free(NULL);
}
END_TEST

START_TEST(test_sv_merge_covers_equal_copy)
{
    crdt_sv *a = crdt_sv_new(), *b = crdt_sv_new(), *c = crdt_sv_new();
    ck_assert_int_eq(crdt_sv_set(a, 1, 10), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(a, 3, 5), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(b, 1, 4), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(b, 2, 7), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(b, 3, 9), TDM_OK);

    ck_assert(!crdt_sv_covers(a, b)); /* a lacks client 2 */
    ck_assert(!crdt_sv_covers(b, a)); /* b has less of client 1 */
    ck_assert(crdt_sv_covers(a, c));  /* everything covers the empty vector */
    ck_assert(crdt_sv_covers(c, c));
    ck_assert(!crdt_sv_covers(c, a));
    ck_assert(!crdt_sv_equal(a, b));

    ck_assert_int_eq(crdt_sv_copy(c, a), TDM_OK);
    ck_assert(crdt_sv_equal(a, c));
    ck_assert_int_eq(crdt_sv_merge(c, b), TDM_OK);
    ck_assert_uint_eq(crdt_sv_count(c), 3);
    ck_assert_uint_eq(crdt_sv_get(c, 1), 10);
    ck_assert_uint_eq(crdt_sv_get(c, 2), 7);
    ck_assert_uint_eq(crdt_sv_get(c, 3), 9);
    ck_assert(crdt_sv_covers(c, a));
    ck_assert(crdt_sv_covers(c, b));
    ck_assert(!crdt_sv_equal(c, a));

    /* merge is commutative and idempotent */
    crdt_sv *d = crdt_sv_new();
    ck_assert_int_eq(crdt_sv_copy(d, b), TDM_OK);
    ck_assert_int_eq(crdt_sv_merge(d, a), TDM_OK);
    ck_assert(crdt_sv_equal(c, d));
    ck_assert_int_eq(crdt_sv_merge(d, a), TDM_OK); /* in-place path: clients known */
    ck_assert_int_eq(crdt_sv_merge(d, d), TDM_OK);
    ck_assert(crdt_sv_equal(c, d));

    /* in-place merge raises only */
    crdt_sv *e = crdt_sv_new();
    ck_assert_int_eq(crdt_sv_set(e, 2, 100), TDM_OK);
    ck_assert_int_eq(crdt_sv_merge(d, e), TDM_OK);
    ck_assert_uint_eq(crdt_sv_get(d, 2), 100);
    ck_assert_uint_eq(crdt_sv_get(d, 1), 10);

    /* copy over a larger vector shrinks it */
    ck_assert_int_eq(crdt_sv_copy(d, e), TDM_OK);
    ck_assert(crdt_sv_equal(d, e));
    ck_assert_uint_eq(crdt_sv_count(d), 1);
    ck_assert_int_eq(crdt_sv_copy(d, d), TDM_OK);
    ck_assert(crdt_sv_equal(d, e));

    crdt_sv_free(a);
    crdt_sv_free(b);
    crdt_sv_free(c);
    crdt_sv_free(d);
    crdt_sv_free(e);
}
END_TEST

START_TEST(test_sv_client_cap)
{
    crdt_sv *a = crdt_sv_new(), *b = crdt_sv_new();
    for (uint64_t i = 0; i < CRDT_MAX_CLIENTS; i++)
        ck_assert_int_eq(crdt_sv_set(a, i * 2, 1), TDM_OK);
    ck_assert_uint_eq(crdt_sv_count(a), CRDT_MAX_CLIENTS);
    ck_assert_int_eq(crdt_sv_set(a, 1, 1), TDM_ETOOBIG);
    ck_assert_int_eq(crdt_sv_set(a, 2, 5), TDM_OK); /* existing entries still update */
    ck_assert_uint_eq(crdt_sv_get(a, 1), 0);

    /* a merge that would pass the cap fails and changes nothing */
    ck_assert_int_eq(crdt_sv_set(b, 0, 99), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(b, 3, 1), TDM_OK);
    ck_assert_int_eq(crdt_sv_merge(a, b), TDM_ETOOBIG);
    ck_assert_uint_eq(crdt_sv_get(a, 0), 1);
    ck_assert_uint_eq(crdt_sv_count(a), CRDT_MAX_CLIENTS);
    crdt_sv_free(a);
    crdt_sv_free(b);
}
END_TEST

START_TEST(test_sv_encode)
{
    crdt_sv *sv = crdt_sv_new(), *back = crdt_sv_new();
    tbuf out;
    tbuf_init(&out, 0);
    ck_assert_int_eq(crdt_sv_encode(sv, &out), TDM_OK);
    ck_assert_uint_eq(out.len, 1);
    ck_assert_uint_eq(out.data[0], 0xa0);

    ck_assert_int_eq(crdt_sv_set(sv, 300, 2), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(sv, 1, 5), TDM_OK);
    tbuf_reset(&out);
    ck_assert_int_eq(crdt_sv_encode(sv, &out), TDM_OK);
    const uint8_t want[] = {0xa2, 0x01, 0x05, 0x19, 0x01, 0x2c, 0x02};
    ck_assert_uint_eq(out.len, sizeof want);
    ck_assert_mem_eq(out.data, want, sizeof want);

    ck_assert_int_eq(crdt_sv_decode(back, out.data, out.len), TDM_OK);
    ck_assert(crdt_sv_equal(sv, back));

    /* round trip of extreme values */
    ck_assert_int_eq(crdt_sv_set(sv, UINT64_MAX, CRDT_CLOCK_MAX - 1), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(sv, 0, 1), TDM_OK);
    tbuf_reset(&out);
    ck_assert_int_eq(crdt_sv_encode(sv, &out), TDM_OK);
    ck_assert_int_eq(crdt_sv_decode(back, out.data, out.len), TDM_OK);
    ck_assert(crdt_sv_equal(sv, back));
    ck_assert_uint_eq(crdt_sv_count(back), 4);

    /* decoding replaces, it does not merge */
    ck_assert_int_eq(crdt_sv_decode(back, BYTES(0xa1, 0x07, 0x08)), TDM_OK);
    ck_assert_uint_eq(crdt_sv_count(back), 1);
    ck_assert_uint_eq(crdt_sv_get(back, 7), 8);

    /* an encode that does not fit leaves the buffer as it was */
    tbuf small;
    tbuf_init(&small, 8);
    ck_assert_int_eq(tbuf_append(&small, "ab", 2), TDM_OK);
    ck_assert_int_eq(crdt_sv_encode(sv, &small), TDM_ETOOBIG);
    ck_assert_uint_eq(small.len, 2);
    ck_assert_mem_eq(small.data, "ab", 2);
    tbuf_fini(&small);
    tbuf_fini(&out);
    crdt_sv_free(sv);
    crdt_sv_free(back);
}
END_TEST

START_TEST(test_sv_decode_malformed)
{
    static const struct {
        const char *what;
        uint8_t in[12];
        size_t n;
        tdm_err e;
    } cases[] = {
        {"empty input", {0}, 0, TDM_EMALFORMED},
        {"not a map", {0x82, 0x01, 0x02}, 3, TDM_EMALFORMED},
        {"unsorted", {0xa2, 0x05, 0x01, 0x03, 0x01}, 5, TDM_EMALFORMED},
        {"duplicate", {0xa2, 0x05, 0x01, 0x05, 0x02}, 5, TDM_EMALFORMED},
        {"zero clock", {0xa1, 0x05, 0x00}, 3, TDM_EMALFORMED},
        {"clock = max", {0xa1, 0x05, 0x1a, 0xff, 0xff, 0xff, 0xf0}, 7, TDM_EMALFORMED},
        {"clock > u32", {0xa1, 0x05, 0x1b, 0, 0, 0, 1, 0, 0, 0, 1}, 11, TDM_EMALFORMED},
        {"negative key", {0xa1, 0x20, 0x01}, 3, TDM_EMALFORMED},
        {"text value", {0xa1, 0x01, 0x61, 'a'}, 4, TDM_EMALFORMED},
        {"trailing byte", {0xa1, 0x01, 0x01, 0x00}, 4, TDM_EMALFORMED},
        {"truncated", {0xa2, 0x01, 0x01, 0x02}, 4, TDM_EMALFORMED},
        {"indefinite map", {0xbf, 0x01, 0x01, 0xff}, 4, TDM_EMALFORMED},
        {"huge count",
         {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 1},
         11,
         TDM_EMALFORMED},
    };
    crdt_sv *sv = crdt_sv_new(), *orig = crdt_sv_new();
    ck_assert_int_eq(crdt_sv_set(sv, 42, 17), TDM_OK);
    ck_assert_int_eq(crdt_sv_copy(orig, sv), TDM_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tdm_err e = crdt_sv_decode(sv, cases[i].n ? cases[i].in : NULL, cases[i].n);
        ck_assert_msg(e == cases[i].e, "%s: got %s", cases[i].what, tdm_err_name(e));
        ck_assert_msg(crdt_sv_equal(sv, orig), "%s: value changed", cases[i].what);
    }
    crdt_sv_free(sv);
    crdt_sv_free(orig);
}
END_TEST

/* More than CRDT_MAX_CLIENTS entries, all present in the input: TDM_ETOOBIG. */
START_TEST(test_sv_decode_too_many)
{
    size_t cnt = CRDT_MAX_CLIENTS + 1;
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(tbuf_cbor_map(&b, cnt), TDM_OK);
    for (size_t i = 0; i < cnt; i++) {
        ck_assert_int_eq(tbuf_cbor_uint(&b, i), TDM_OK);
        ck_assert_int_eq(tbuf_cbor_uint(&b, 1), TDM_OK);
    }
    crdt_sv *sv = crdt_sv_new();
    ck_assert_int_eq(crdt_sv_set(sv, 1, 1), TDM_OK);
    ck_assert_int_eq(crdt_sv_decode(sv, b.data, b.len), TDM_ETOOBIG);
    ck_assert_uint_eq(crdt_sv_count(sv), 1);
    /* one fewer is fine */
    tbuf c;
    tbuf_init(&c, 0);
    ck_assert_int_eq(tbuf_cbor_map(&c, cnt - 1), TDM_OK);
    for (size_t i = 0; i < cnt - 1; i++) {
        ck_assert_int_eq(tbuf_cbor_uint(&c, i), TDM_OK);
        ck_assert_int_eq(tbuf_cbor_uint(&c, 1), TDM_OK);
    }
    ck_assert_int_eq(crdt_sv_decode(sv, c.data, c.len), TDM_OK);
    ck_assert_uint_eq(crdt_sv_count(sv), CRDT_MAX_CLIENTS);
    tbuf_fini(&b);
    tbuf_fini(&c);
    crdt_sv_free(sv);
}
END_TEST

/* ------------------------------------------------------------------ ds */

/* The canonical invariants: sorted by (client, clock), non-empty, and ranges of
 * one client neither overlap nor touch. */
static void check_canonical(const crdt_ds *ds)
{
    uint64_t pc = 0, pend = 0;
    for (size_t i = 0; i < crdt_ds_ranges(ds); i++) {
        uint64_t c;
        uint32_t k, l;
        crdt_ds_range(ds, i, &c, &k, &l);
        ck_assert_uint_gt(l, 0);
        ck_assert_uint_le((uint64_t)k + l, CRDT_CLOCK_MAX);
        if (i > 0) {
            ck_assert_uint_ge(c, pc);
            if (c == pc) ck_assert_uint_gt(k, pend);
        }
        pc = c;
        pend = (uint64_t)k + l;
    }
}

static void expect_range(const crdt_ds *ds, size_t i, uint64_t c, uint32_t k, uint32_t l)
{
    uint64_t gc;
    uint32_t gk, gl;
    crdt_ds_range(ds, i, &gc, &gk, &gl);
    ck_assert_uint_eq(gc, c);
    ck_assert_uint_eq(gk, k);
    ck_assert_uint_eq(gl, l);
}

START_TEST(test_ds_add_has)
{
    crdt_ds *ds = crdt_ds_new();
    ck_assert_ptr_nonnull(ds);
    ck_assert_uint_eq(crdt_ds_ranges(ds), 0);
    ck_assert_uint_eq(crdt_ds_ids(ds), 0);
    ck_assert(!crdt_ds_has(ds, 1, 0));

    ck_assert_int_eq(crdt_ds_add(ds, 1, 10, 5), TDM_OK); /* [10,15) */
    ck_assert(!crdt_ds_has(ds, 1, 9));
    ck_assert(crdt_ds_has(ds, 1, 10));
    ck_assert(crdt_ds_has(ds, 1, 14));
    ck_assert(!crdt_ds_has(ds, 1, 15));
    ck_assert(!crdt_ds_has(ds, 2, 12));
    ck_assert(!crdt_ds_has(ds, 0, 12));

    ck_assert_int_eq(crdt_ds_add(ds, 1, 15, 2), TDM_OK); /* touching: [10,17) */
    ck_assert_uint_eq(crdt_ds_ranges(ds), 1);
    expect_range(ds, 0, 1, 10, 7);
    ck_assert_int_eq(crdt_ds_add(ds, 1, 8, 2), TDM_OK); /* touching below: [8,17) */
    ck_assert_uint_eq(crdt_ds_ranges(ds), 1);
    expect_range(ds, 0, 1, 8, 9);
    ck_assert_int_eq(crdt_ds_add(ds, 1, 9, 3), TDM_OK); /* inside: no change */
    expect_range(ds, 0, 1, 8, 9);
    ck_assert_int_eq(crdt_ds_add(ds, 1, 30, 1), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(ds, 1, 20, 2), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(ds, 0, 5, 1), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(ds, 7, 0, 1), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(ds, 1, 0, 0), TDM_OK); /* empty: no-op */
    ck_assert_uint_eq(crdt_ds_ranges(ds), 5);
    expect_range(ds, 0, 0, 5, 1);
    expect_range(ds, 1, 1, 8, 9);
    expect_range(ds, 2, 1, 20, 2);
    expect_range(ds, 3, 1, 30, 1);
    expect_range(ds, 4, 7, 0, 1);
    ck_assert_uint_eq(crdt_ds_ids(ds), 1 + 9 + 2 + 1 + 1);

    /* one add bridging three ranges */
    ck_assert_int_eq(crdt_ds_add(ds, 1, 12, 19), TDM_OK); /* [12,31) */
    ck_assert_uint_eq(crdt_ds_ranges(ds), 3);
    expect_range(ds, 1, 1, 8, 23);
    check_canonical(ds);

    /* limits */
    ck_assert_int_eq(crdt_ds_add(ds, 9, CRDT_CLOCK_MAX - 1, 2), TDM_EINVAL);
    ck_assert_int_eq(crdt_ds_add(ds, 9, UINT32_MAX, UINT32_MAX), TDM_EINVAL);
    ck_assert_uint_eq(crdt_ds_ranges(ds), 3);
    ck_assert_int_eq(crdt_ds_add(ds, 9, CRDT_CLOCK_MAX - 1, 1), TDM_OK);
    ck_assert(crdt_ds_has(ds, 9, CRDT_CLOCK_MAX - 1));

    crdt_ds_clear(ds);
    ck_assert_uint_eq(crdt_ds_ranges(ds), 0);
    ck_assert(!crdt_ds_has(ds, 1, 10));
    crdt_ds_free(ds);
    crdt_ds_free(NULL);
}
END_TEST

enum { RC = 3, RK = 160 }; /* clients and clocks in the random tests */

static void ref_add(bool ref[RC][RK], uint64_t c, uint32_t k, uint32_t l)
{
    for (uint32_t i = 0; i < l; i++) ref[c][k + i] = true;
}

static void check_against(const crdt_ds *ds, bool ref[RC][RK])
{
    uint64_t total = 0;
    for (uint64_t c = 0; c < RC; c++) {
        for (uint32_t k = 0; k < RK; k++) {
            total += ref[c][k];
            if (crdt_ds_has(ds, c, k) != ref[c][k])
                ck_abort_msg("has(%u, %u) should be %d", (unsigned)c, (unsigned)k, ref[c][k]);
        }
    }
    ck_assert_uint_eq(crdt_ds_ids(ds), total);
    check_canonical(ds);
}

/* Random adds against a bitmap; random merges against the bitmap union. */
START_TEST(test_ds_random)
{
    srand(4242);
    for (int round = 0; round < 200; round++) {
        static bool ra[RC][RK], rb[RC][RK];
        memset(ra, 0, sizeof ra);
        memset(rb, 0, sizeof rb);
        crdt_ds *a = crdt_ds_new(), *b = crdt_ds_new(), *u = crdt_ds_new();
        int na = rand() % 40, nb = rand() % 40;
        for (int i = 0; i < na + nb; i++) {
            uint64_t c = (uint64_t)(rand() % RC);
            uint32_t k = (uint32_t)(rand() % (RK - 10));
            uint32_t l = (uint32_t)(rand() % 10);
            crdt_ds *t = i < na ? a : b;
            ref_add(i < na ? ra : rb, c, k, l);
            ck_assert_int_eq(crdt_ds_add(t, c, k, l), TDM_OK);
            ck_assert_int_eq(crdt_ds_add(u, c, k, l), TDM_OK);
        }
        check_against(a, ra);
        check_against(b, rb);

        crdt_ds *m = crdt_ds_new();
        ck_assert_int_eq(crdt_ds_merge(m, a), TDM_OK);
        ck_assert(crdt_ds_equal(m, a));
        ck_assert_int_eq(crdt_ds_merge(m, b), TDM_OK);
        for (int c = 0; c < RC; c++)
            for (int k = 0; k < RK; k++) ra[c][k] = ra[c][k] || rb[c][k];
        check_against(m, ra);
        ck_assert(crdt_ds_equal(m, u)); /* canonical form: same set, same ranges */
        ck_assert_int_eq(crdt_ds_merge(m, m), TDM_OK);
        ck_assert_int_eq(crdt_ds_merge(m, a), TDM_OK); /* idempotent */
        ck_assert(crdt_ds_equal(m, u));

        /* encode / decode round trip */
        tbuf out;
        tbuf_init(&out, 0);
        ck_assert_int_eq(crdt_ds_encode(m, &out), TDM_OK);
        crdt_ds *back = crdt_ds_new();
        ck_assert_int_eq(crdt_ds_decode(back, out.data, out.len), TDM_OK);
        ck_assert(crdt_ds_equal(m, back));
        tbuf_fini(&out);

        crdt_ds_free(a);
        crdt_ds_free(b);
        crdt_ds_free(u);
        crdt_ds_free(m);
        crdt_ds_free(back);
    }
}
END_TEST

START_TEST(test_ds_equal)
{
    crdt_ds *a = crdt_ds_new(), *b = crdt_ds_new();
    ck_assert(crdt_ds_equal(a, b));
    ck_assert_int_eq(crdt_ds_add(a, 1, 0, 4), TDM_OK);
    ck_assert(!crdt_ds_equal(a, b));
    ck_assert_int_eq(crdt_ds_add(b, 1, 2, 2), TDM_OK);
    ck_assert(!crdt_ds_equal(a, b));
    ck_assert_int_eq(crdt_ds_add(b, 1, 0, 2), TDM_OK);
    ck_assert(crdt_ds_equal(a, b));
    ck_assert_int_eq(crdt_ds_add(b, 2, 0, 4), TDM_OK);
    ck_assert(!crdt_ds_equal(a, b));
    crdt_ds_free(a);
    crdt_ds_free(b);
}
END_TEST

START_TEST(test_ds_client_cap)
{
    crdt_ds *a = crdt_ds_new(), *b = crdt_ds_new();
    for (uint64_t c = 0; c < CRDT_MAX_CLIENTS; c++)
        ck_assert_int_eq(crdt_ds_add(a, c, 0, 1), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(a, CRDT_MAX_CLIENTS, 0, 1), TDM_ETOOBIG);
    ck_assert_int_eq(crdt_ds_add(a, 5, 10, 1), TDM_OK); /* a known client is fine */
    ck_assert_uint_eq(crdt_ds_ranges(a), CRDT_MAX_CLIENTS + 1);

    ck_assert_int_eq(crdt_ds_add(b, CRDT_MAX_CLIENTS + 7, 0, 1), TDM_OK);
    ck_assert_int_eq(crdt_ds_merge(a, b), TDM_ETOOBIG);
    ck_assert_uint_eq(crdt_ds_ranges(a), CRDT_MAX_CLIENTS + 1);
    ck_assert(!crdt_ds_has(a, CRDT_MAX_CLIENTS + 7, 0));
    crdt_ds_free(a);
    crdt_ds_free(b);
}
END_TEST

START_TEST(test_ds_encode)
{
    crdt_ds *ds = crdt_ds_new(), *back = crdt_ds_new();
    tbuf out;
    tbuf_init(&out, 0);
    ck_assert_int_eq(crdt_ds_encode(ds, &out), TDM_OK);
    ck_assert_uint_eq(out.len, 1);
    ck_assert_uint_eq(out.data[0], 0xa0);

    ck_assert_int_eq(crdt_ds_add(ds, 300, 0, 2), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(ds, 1, 5, 1), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(ds, 1, 10, 30), TDM_OK);
    tbuf_reset(&out);
    ck_assert_int_eq(crdt_ds_encode(ds, &out), TDM_OK);
    /* {1: [5, 1, 10, 30], 300: [0, 2]} */
    const uint8_t want[] = {0xa2, 0x01, 0x84, 0x05, 0x01, 0x0a, 0x18,
                            0x1e, 0x19, 0x01, 0x2c, 0x82, 0x00, 0x02};
    ck_assert_uint_eq(out.len, sizeof want);
    ck_assert_mem_eq(out.data, want, sizeof want);
    ck_assert_int_eq(crdt_ds_decode(back, out.data, out.len), TDM_OK);
    ck_assert(crdt_ds_equal(ds, back));

    /* touching ranges in the input are accepted and merged */
    ck_assert_int_eq(crdt_ds_decode(back, BYTES(0xa1, 0x01, 0x84, 0x00, 0x02, 0x02, 0x03)), TDM_OK);
    ck_assert_uint_eq(crdt_ds_ranges(back), 1);
    expect_range(back, 0, 1, 0, 5);

    /* largest legal range */
    crdt_ds_clear(ds);
    ck_assert_int_eq(crdt_ds_add(ds, UINT64_MAX, 0, CRDT_CLOCK_MAX), TDM_OK);
    tbuf_reset(&out);
    ck_assert_int_eq(crdt_ds_encode(ds, &out), TDM_OK);
    ck_assert_int_eq(crdt_ds_decode(back, out.data, out.len), TDM_OK);
    ck_assert(crdt_ds_equal(ds, back));
    ck_assert_uint_eq(crdt_ds_ids(back), CRDT_CLOCK_MAX);

    /* an encode that does not fit leaves the buffer as it was */
    tbuf small;
    tbuf_init(&small, 4);
    ck_assert_int_eq(tbuf_append(&small, "x", 1), TDM_OK);
    ck_assert_int_eq(crdt_ds_encode(ds, &small), TDM_ETOOBIG);
    ck_assert_uint_eq(small.len, 1);
    tbuf_fini(&small);
    tbuf_fini(&out);
    crdt_ds_free(ds);
    crdt_ds_free(back);
}
END_TEST

START_TEST(test_ds_decode_malformed)
{
    static const struct {
        const char *what;
        uint8_t in[16];
        size_t n;
        tdm_err e;
    } cases[] = {
        {"empty input", {0}, 0, TDM_EMALFORMED},
        {"not a map", {0x80}, 1, TDM_EMALFORMED},
        {"value not array", {0xa1, 0x01, 0x02}, 3, TDM_EMALFORMED},
        {"empty ranges", {0xa1, 0x01, 0x80}, 3, TDM_EMALFORMED},
        {"odd array", {0xa1, 0x01, 0x83, 0x00, 0x01, 0x05}, 6, TDM_EMALFORMED},
        {"zero length", {0xa1, 0x01, 0x82, 0x00, 0x00}, 5, TDM_EMALFORMED},
        {"unsorted ranges", {0xa1, 0x01, 0x84, 0x05, 0x01, 0x00, 0x01}, 7, TDM_EMALFORMED},
        {"overlap", {0xa1, 0x01, 0x84, 0x00, 0x05, 0x04, 0x01}, 7, TDM_EMALFORMED},
        {"duplicate range", {0xa1, 0x01, 0x84, 0x00, 0x01, 0x00, 0x01}, 7, TDM_EMALFORMED},
        {"clock = max", {0xa1, 0x01, 0x82, 0x1a, 0xff, 0xff, 0xff, 0xf0, 0x01}, 9, TDM_EMALFORMED},
        {"end > max", {0xa1, 0x01, 0x82, 0x1a, 0xff, 0xff, 0xff, 0xef, 0x02}, 9, TDM_EMALFORMED},
        {"len > u32",
         {0xa1, 0x01, 0x82, 0x00, 0x1b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00},
         13,
         TDM_EMALFORMED},
        {"unsorted clients",
         {0xa2, 0x02, 0x82, 0x00, 0x01, 0x01, 0x82, 0x00, 0x01},
         9,
         TDM_EMALFORMED},
        {"duplicate client",
         {0xa2, 0x01, 0x82, 0x00, 0x01, 0x01, 0x82, 0x05, 0x01},
         9,
         TDM_EMALFORMED},
        {"negative clock", {0xa1, 0x01, 0x82, 0x20, 0x01}, 5, TDM_EMALFORMED},
        {"trailing byte", {0xa1, 0x01, 0x82, 0x00, 0x01, 0x00}, 6, TDM_EMALFORMED},
        {"truncated", {0xa1, 0x01, 0x84, 0x00, 0x01, 0x05}, 6, TDM_EMALFORMED},
        {"indefinite array", {0xa1, 0x01, 0x9f, 0x00, 0x01, 0xff}, 6, TDM_EMALFORMED},
        {"huge array",
         {0xa1, 0x01, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1},
         13,
         TDM_EMALFORMED},
    };
    crdt_ds *ds = crdt_ds_new(), *orig = crdt_ds_new();
    ck_assert_int_eq(crdt_ds_add(ds, 3, 4, 5), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(ds, 8, 0, 1), TDM_OK);
    ck_assert_int_eq(crdt_ds_merge(orig, ds), TDM_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tdm_err e = crdt_ds_decode(ds, cases[i].n ? cases[i].in : NULL, cases[i].n);
        ck_assert_msg(e == cases[i].e, "%s: got %s", cases[i].what, tdm_err_name(e));
        ck_assert_msg(crdt_ds_equal(ds, orig), "%s: value changed", cases[i].what);
    }
    crdt_ds_free(ds);
    crdt_ds_free(orig);
}
END_TEST

/* Every strict prefix of a valid encoding is rejected and changes nothing. */
START_TEST(test_ds_decode_prefixes)
{
    crdt_ds *ds = crdt_ds_new(), *t = crdt_ds_new();
    ck_assert_int_eq(crdt_ds_add(ds, 1, 0, 3), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(ds, 1, 100, 3000), TDM_OK);
    ck_assert_int_eq(crdt_ds_add(ds, 1ull << 40, 70000, 1), TDM_OK);
    tbuf out;
    tbuf_init(&out, 0);
    ck_assert_int_eq(crdt_ds_encode(ds, &out), TDM_OK);
    for (size_t n = 0; n < out.len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(cut);
        memcpy(cut, out.data, n);
        ck_assert_int_eq(crdt_ds_decode(t, cut, n), TDM_EMALFORMED);
        ck_assert_uint_eq(crdt_ds_ranges(t), 0);
        free(cut);
    }
    ck_assert_int_eq(crdt_ds_decode(t, out.data, out.len), TDM_OK);
    ck_assert(crdt_ds_equal(ds, t));
    tbuf_fini(&out);
    crdt_ds_free(ds);
    crdt_ds_free(t);
}
END_TEST

START_TEST(test_ds_decode_too_many_clients)
{
    size_t cnt = CRDT_MAX_CLIENTS + 1;
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(tbuf_cbor_map(&b, cnt), TDM_OK);
    for (size_t i = 0; i < cnt; i++) {
        ck_assert_int_eq(tbuf_cbor_uint(&b, i), TDM_OK);
        ck_assert_int_eq(tbuf_cbor_array(&b, 2), TDM_OK);
        ck_assert_int_eq(tbuf_cbor_uint(&b, 0), TDM_OK);
        ck_assert_int_eq(tbuf_cbor_uint(&b, 1), TDM_OK);
    }
    crdt_ds *ds = crdt_ds_new();
    ck_assert_int_eq(crdt_ds_decode(ds, b.data, b.len), TDM_ETOOBIG);
    ck_assert_uint_eq(crdt_ds_ranges(ds), 0);
    tbuf_fini(&b);
    crdt_ds_free(ds);
}
END_TEST

static Suite *ids_suite(void)
{
    Suite *s = suite_create("ids");
    TCase *tsv = tcase_create("sv");
    tcase_add_test(tsv, test_sv_basics);
    tcase_add_test(tsv, test_sv_merge_covers_equal_copy);
    tcase_add_test(tsv, test_sv_client_cap);
    tcase_add_test(tsv, test_sv_encode);
    tcase_add_test(tsv, test_sv_decode_malformed);
    tcase_add_test(tsv, test_sv_decode_too_many);
    suite_add_tcase(s, tsv);

    TCase *tds = tcase_create("ds");
    tcase_add_test(tds, test_ds_add_has);
    tcase_add_test(tds, test_ds_random);
    tcase_add_test(tds, test_ds_equal);
    tcase_add_test(tds, test_ds_client_cap);
    tcase_add_test(tds, test_ds_encode);
    tcase_add_test(tds, test_ds_decode_malformed);
    tcase_add_test(tds, test_ds_decode_prefixes);
    tcase_add_test(tds, test_ds_decode_too_many_clients);
    suite_add_tcase(s, tds);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ids_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
