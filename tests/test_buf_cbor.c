/* test_buf_cbor.c - tbuf, the CBOR writers, the cbr_ reader and the varints:
 * known encodings, round trips, and hostile inputs. */
#include "buf.h"
#include "cbor_rd.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static void expect_bytes(const tbuf *b, const uint8_t *want, size_t n)
{
    ck_assert_uint_eq(b->len, n);
    ck_assert_mem_eq(b->data, want, n);
}

/* ------------------------------------------------------------- tbuf */

START_TEST(test_tbuf_basics)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_uint_eq(b.limit, TBUF_DEFAULT_LIMIT);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(tbuf_append(&b, "abc", 3), TDM_OK);
    ck_assert_int_eq(tbuf_append(&b, NULL, 0), TDM_OK);
    ck_assert_int_eq(tbuf_append(&b, "def", 3), TDM_OK);
    expect_bytes(&b, (const uint8_t *)"abcdef", 6);
    ck_assert_uint_ge(b.cap, b.len);

    /* growth across many appends keeps the contents */
    for (int i = 0; i < 10000; i++) {
        uint8_t c = (uint8_t)i;
        ck_assert_int_eq(tbuf_append(&b, &c, 1), TDM_OK);
    }
    ck_assert_uint_eq(b.len, 10006);
    for (int i = 0; i < 10000; i++) ck_assert_uint_eq(b.data[6 + i], (uint8_t)i);

    tbuf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_nonnull(b.data);

    ck_assert_int_eq(tbuf_append(&b, "xy", 2), TDM_OK);
    size_t len = 0;
    uint8_t *d = tbuf_take(&b, &len);
    ck_assert_uint_eq(len, 2);
    ck_assert_mem_eq(d, "xy", 2);
    free(d);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    /* still usable after take, and after fini */
    ck_assert_int_eq(tbuf_append(&b, "z", 1), TDM_OK);
    tbuf_fini(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_int_eq(tbuf_append(&b, "q", 1), TDM_OK);
    expect_bytes(&b, (const uint8_t *)"q", 1);
    tbuf_fini(&b);
    tbuf_fini(NULL);
}
END_TEST

START_TEST(test_tbuf_limit)
{
    tbuf b;
    tbuf_init(&b, 10);
    ck_assert_int_eq(tbuf_append(&b, "0123456", 7), TDM_OK);
    ck_assert_int_eq(tbuf_append(&b, "7890", 4), TDM_ETOOBIG);
    expect_bytes(&b, (const uint8_t *)"0123456", 7);
    ck_assert_int_eq(tbuf_reserve(&b, SIZE_MAX), TDM_ETOOBIG);
    ck_assert_int_eq(tbuf_reserve(&b, SIZE_MAX - 3), TDM_ETOOBIG);
    ck_assert_int_eq(tbuf_append(&b, "789", 3), TDM_OK);
    ck_assert_uint_le(b.cap, 10);
    ck_assert_int_eq(tbuf_append(&b, "x", 1), TDM_ETOOBIG);
    expect_bytes(&b, (const uint8_t *)"0123456789", 10);
    tbuf_fini(&b);
}
END_TEST

/* ----------------------------------------------------- CBOR writing */

START_TEST(test_cbor_uint_encodings)
{
    static const struct {
        uint64_t v;
        uint8_t enc[9];
        size_t n;
    } cases[] = {
        {0, {0x00}, 1},
        {23, {0x17}, 1},
        {24, {0x18, 24}, 2},
        {255, {0x18, 0xff}, 2},
        {256, {0x19, 0x01, 0x00}, 3},
        {65535, {0x19, 0xff, 0xff}, 3},
        {65536, {0x1a, 0x00, 0x01, 0x00, 0x00}, 5},
        {UINT32_MAX, {0x1a, 0xff, 0xff, 0xff, 0xff}, 5},
        {(uint64_t)UINT32_MAX + 1, {0x1b, 0, 0, 0, 1, 0, 0, 0, 0}, 9},
        {UINT64_MAX, {0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tbuf b;
        tbuf_init(&b, 0);
        ck_assert_int_eq(tbuf_cbor_uint(&b, cases[i].v), TDM_OK);
        expect_bytes(&b, cases[i].enc, cases[i].n);
        cbr r;
        uint64_t v = 0;
        cbr_init(&r, b.data, b.len);
        ck_assert_int_eq(cbr_peek(&r), CBR_UINT);
        ck_assert_int_eq(cbr_uint(&r, &v), TDM_OK);
        ck_assert_uint_eq(v, cases[i].v);
        ck_assert_int_eq(cbr_finish(&r), TDM_OK);
        tbuf_fini(&b);
    }
}
END_TEST

START_TEST(test_cbor_int_encodings)
{
    static const struct {
        int64_t v;
        uint8_t enc[9];
        size_t n;
    } cases[] = {
        {-1, {0x20}, 1},
        {-24, {0x37}, 1},
        {-25, {0x38, 0x18}, 2},
        {-256, {0x38, 0xff}, 2},
        {-257, {0x39, 0x01, 0x00}, 3},
        {5, {0x05}, 1},
        {INT64_MAX, {0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
        {INT64_MIN, {0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tbuf b;
        tbuf_init(&b, 0);
        ck_assert_int_eq(tbuf_cbor_int(&b, cases[i].v), TDM_OK);
        expect_bytes(&b, cases[i].enc, cases[i].n);
        cbr r;
        int64_t v = 0;
        cbr_init(&r, b.data, b.len);
        ck_assert_int_eq(cbr_int(&r, &v), TDM_OK);
        ck_assert_int_eq(v, cases[i].v);
        ck_assert_int_eq(cbr_finish(&r), TDM_OK);
        tbuf_fini(&b);
    }
}
END_TEST

START_TEST(test_cbor_other_encodings)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(tbuf_cbor_array(&b, 3), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_map(&b, 2), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_array(&b, 1000), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_bytes(&b, "\x01\x02", 2), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_text(&b, "IETF", 4), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_text(&b, NULL, 0), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_null(&b), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_bool(&b, 1), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_bool(&b, 0), TDM_OK);
    const uint8_t want[] = {0x83, 0xa2, 0x99, 0x03, 0xe8, 0x42, 0x01, 0x02, 0x64,
                            'I',  'E',  'T',  'F',  0x60, 0xf6, 0xf5, 0xf4};
    expect_bytes(&b, want, sizeof want);

    /* a 300-byte string takes a two-byte length */
    uint8_t big[300];
    memset(big, 0xab, sizeof big);
    tbuf_reset(&b);
    ck_assert_int_eq(tbuf_cbor_bytes(&b, big, sizeof big), TDM_OK);
    ck_assert_uint_eq(b.len, 3 + sizeof big);
    ck_assert_uint_eq(b.data[0], 0x59);
    ck_assert_uint_eq(b.data[1], 0x01);
    ck_assert_uint_eq(b.data[2], 0x2c);
    tbuf_fini(&b);
}
END_TEST

/* Writers near the limit: an item that fits exactly succeeds (no 9-byte
 * reservation is demanded), one that does not fails and changes nothing. */
START_TEST(test_cbor_writers_at_limit)
{
    tbuf b;
    tbuf_init(&b, 6);
    ck_assert_int_eq(tbuf_append(&b, "abcd", 4), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_uint(&b, 256), TDM_ETOOBIG); /* needs 3 */
    ck_assert_int_eq(tbuf_cbor_bytes(&b, "x", 1), TDM_OK);  /* needs 2 */
    ck_assert_int_eq(tbuf_cbor_null(&b), TDM_ETOOBIG);
    ck_assert_int_eq(tbuf_cbor_bool(&b, 1), TDM_ETOOBIG);
    ck_assert_int_eq(tbuf_varint(&b, 0), TDM_ETOOBIG);
    expect_bytes(&b, (const uint8_t *)"abcd\x41x", 6);
    tbuf_fini(&b);

    tbuf_init(&b, 6);
    ck_assert_int_eq(tbuf_append(&b, "ab", 2), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_text(&b, "hello", 5), TDM_ETOOBIG); /* head fits, text not */
    ck_assert_int_eq(tbuf_cbor_int(&b, -100000), TDM_ETOOBIG);
    ck_assert_int_eq(tbuf_varint(&b, UINT64_MAX), TDM_ETOOBIG);
    ck_assert_int_eq(tbuf_svarint(&b, INT64_MIN), TDM_ETOOBIG);
    expect_bytes(&b, (const uint8_t *)"ab", 2);
    ck_assert_int_eq(tbuf_cbor_int(&b, -1000), TDM_OK);
    expect_bytes(&b, BYTES('a', 'b', 0x39, 0x03, 0xe7));
    tbuf_fini(&b);
}
END_TEST

/* ------------------------------------------------------- CBOR reading */

START_TEST(test_cbr_round_trip)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(tbuf_cbor_map(&b, 2), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_text(&b, "k", 1), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_array(&b, 4), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_int(&b, -7), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_bytes(&b, "\x00\xff", 2), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_null(&b), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_bool(&b, 1), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_uint(&b, 1u << 20), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_bool(&b, 0), TDM_OK);

    cbr r;
    size_t n;
    const uint8_t *s;
    int64_t i;
    uint64_t u;
    bool bv;
    cbr_init(&r, b.data, b.len);
    ck_assert_uint_eq(cbr_remaining(&r), b.len);
    ck_assert_int_eq(cbr_peek(&r), CBR_MAP);
    ck_assert_int_eq(cbr_map(&r, &n), TDM_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(cbr_text(&r, &s, &n), TDM_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_eq(s, b.data + 2); /* zero-copy: points into the input */
    ck_assert_int_eq(cbr_array(&r, &n), TDM_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(cbr_peek(&r), CBR_NEGINT);
    ck_assert_int_eq(cbr_uint(&r, &u), TDM_EMALFORMED); /* negative is not uint */
    ck_assert_int_eq(cbr_int(&r, &i), TDM_OK);
    ck_assert_int_eq(i, -7);
    ck_assert_int_eq(cbr_text(&r, &s, &n), TDM_EMALFORMED); /* bytes are not text */
    ck_assert_int_eq(cbr_bytes(&r, &s, &n), TDM_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(s, "\x00\xff", 2);
    ck_assert_int_eq(cbr_bool(&r, &bv), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_null(&r), TDM_OK);
    ck_assert_int_eq(cbr_bool(&r, &bv), TDM_OK);
    ck_assert(bv);
    ck_assert_int_eq(cbr_finish(&r), TDM_EMALFORMED); /* two items left */
    ck_assert_int_eq(cbr_uint(&r, &u), TDM_OK);
    ck_assert_uint_eq(u, 1u << 20);
    ck_assert_int_eq(cbr_bool(&r, &bv), TDM_OK);
    ck_assert(!bv);
    ck_assert_int_eq(cbr_peek(&r), CBR_END);
    ck_assert_int_eq(cbr_uint(&r, &u), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_finish(&r), TDM_OK);
    ck_assert_uint_eq(cbr_remaining(&r), 0);
    tbuf_fini(&b);
}
END_TEST

START_TEST(test_cbr_peek_types)
{
    static const struct {
        uint8_t in[4];
        size_t n;
        cbr_type t;
    } cases[] = {
        {{0x00}, 1, CBR_UINT},         {{0x20}, 1, CBR_NEGINT},
        {{0x40}, 1, CBR_BYTES},        {{0x60}, 1, CBR_TEXT},
        {{0x80}, 1, CBR_ARRAY},        {{0xa0}, 1, CBR_MAP},
        {{0xc1, 0x00}, 2, CBR_TAG},    {{0xf9, 0x3c, 0x00}, 3, CBR_FLOAT},
        {{0xf4}, 1, CBR_BOOL},         {{0xf6}, 1, CBR_NULL},
        {{0xf7}, 1, CBR_UNDEF},        {{0}, 0, CBR_END},
        {{0x1c}, 1, CBR_BAD},          {{0xfc}, 1, CBR_BAD},
        {{0xff}, 1, CBR_BAD},          {{0x9f, 0xff}, 2, CBR_BAD},
        {{0xbf, 0xff}, 2, CBR_BAD},    {{0x5f, 0xff}, 2, CBR_BAD},
        {{0x7f, 0xff}, 2, CBR_BAD},    {{0x19, 0x01}, 2, CBR_BAD},
        {{0x81}, 1, CBR_BAD},          {{0xa1, 0x00}, 2, CBR_BAD},
        {{0xfa, 0, 0, 0}, 4, CBR_BAD},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cbr r;
        cbr_init(&r, cases[i].n ? cases[i].in : NULL, cases[i].n);
        ck_assert_msg(cbr_peek(&r) == cases[i].t, "case %zu: got %d", i, (int)cbr_peek(&r));
        ck_assert_uint_eq(r.pos, 0);
    }
}
END_TEST

/* Declared counts larger than the input: rejected at once, nothing allocated
 * (the check timeout would catch a libcbor-style 2 GiB allocation loop). */
START_TEST(test_cbr_huge_counts)
{
    const uint8_t arr64[] = {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t map64[] = {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0};
    const uint8_t arr32[] = {0x9a, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0};
    const uint8_t bytes64[] = {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'a'};
    const uint8_t text32[] = {0x7a, 0x00, 0x01, 0x00, 0x00, 'a', 'b'};
    size_t n;
    const uint8_t *s;
    cbr r;

    cbr_init(&r, arr64, sizeof arr64);
    ck_assert_int_eq(cbr_peek(&r), CBR_BAD);
    ck_assert_int_eq(cbr_array(&r, &n), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_skip(&r, 8), TDM_EMALFORMED);
    ck_assert_uint_eq(r.pos, 0);

    cbr_init(&r, map64, sizeof map64);
    ck_assert_int_eq(cbr_map(&r, &n), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_skip(&r, 8), TDM_EMALFORMED);
    ck_assert_uint_eq(r.pos, 0);

    cbr_init(&r, arr32, sizeof arr32);
    ck_assert_int_eq(cbr_array(&r, &n), TDM_EMALFORMED);

    cbr_init(&r, bytes64, sizeof bytes64);
    ck_assert_int_eq(cbr_bytes(&r, &s, &n), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_skip(&r, 8), TDM_EMALFORMED);

    cbr_init(&r, text32, sizeof text32);
    ck_assert_int_eq(cbr_text(&r, &s, &n), TDM_EMALFORMED);
    ck_assert_uint_eq(r.pos, 0);
}
END_TEST

/* The count bound is exact: count == remaining passes, count + 1 fails;
 * a map needs two bytes per entry. */
START_TEST(test_cbr_count_bounds)
{
    size_t n;
    cbr r;
    cbr_init(&r, BYTES(0x83, 1, 2, 3));
    ck_assert_int_eq(cbr_array(&r, &n), TDM_OK);
    ck_assert_uint_eq(n, 3);
    cbr_init(&r, BYTES(0x84, 1, 2, 3));
    ck_assert_int_eq(cbr_array(&r, &n), TDM_EMALFORMED);
    cbr_init(&r, BYTES(0xa2, 1, 2, 3, 4));
    ck_assert_int_eq(cbr_map(&r, &n), TDM_OK);
    ck_assert_uint_eq(n, 2);
    cbr_init(&r, BYTES(0xa2, 1, 2, 3));
    ck_assert_int_eq(cbr_map(&r, &n), TDM_EMALFORMED);
    ck_assert_uint_eq(r.pos, 0);
    /* a long-form count that fits */
    cbr_init(&r, BYTES(0x98, 2, 0, 0));
    ck_assert_int_eq(cbr_array(&r, &n), TDM_OK);
    ck_assert_uint_eq(n, 2);
}
END_TEST

START_TEST(test_cbr_indefinite_rejected)
{
    size_t n;
    const uint8_t *s;
    cbr r;
    cbr_init(&r, BYTES(0x9f, 0x01, 0xff));
    ck_assert_int_eq(cbr_array(&r, &n), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_skip(&r, 4), TDM_EMALFORMED);
    cbr_init(&r, BYTES(0xbf, 0x01, 0x02, 0xff));
    ck_assert_int_eq(cbr_map(&r, &n), TDM_EMALFORMED);
    cbr_init(&r, BYTES(0x5f, 0x41, 'a', 0xff));
    ck_assert_int_eq(cbr_bytes(&r, &s, &n), TDM_EMALFORMED);
    cbr_init(&r, BYTES(0x7f, 0x61, 'a', 0xff));
    ck_assert_int_eq(cbr_text(&r, &s, &n), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_skip(&r, 4), TDM_EMALFORMED);
    /* an indefinite item nested inside a definite one */
    cbr_init(&r, BYTES(0x82, 0x01, 0x9f, 0xff));
    ck_assert_int_eq(cbr_skip(&r, 4), TDM_EMALFORMED);
    ck_assert_uint_eq(r.pos, 0);
}
END_TEST

START_TEST(test_cbr_truncated)
{
    static const struct {
        uint8_t in[4];
        size_t n;
    } cases[] = {
        {{0x18}, 1},      {{0x19, 0x01}, 2}, {{0x1a, 0, 0}, 3}, {{0x1b, 0, 0, 0}, 4}, {{0x38}, 1},
        {{0x42, 'a'}, 2}, {{0x62, 'a'}, 2},  {{0x58}, 1},       {{0x59, 0x00}, 2},    {{0x98}, 1},
        {{0xb9, 0}, 2},   {{0xd8}, 1},       {{0xfb, 0, 0}, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cbr r;
        uint64_t u;
        int64_t v;
        size_t n;
        const uint8_t *s;
        cbr_init(&r, cases[i].in, cases[i].n);
        ck_assert_msg(cbr_peek(&r) == CBR_BAD, "case %zu", i);
        ck_assert_int_eq(cbr_uint(&r, &u), TDM_EMALFORMED);
        ck_assert_int_eq(cbr_int(&r, &v), TDM_EMALFORMED);
        ck_assert_int_eq(cbr_bytes(&r, &s, &n), TDM_EMALFORMED);
        ck_assert_int_eq(cbr_text(&r, &s, &n), TDM_EMALFORMED);
        ck_assert_int_eq(cbr_array(&r, &n), TDM_EMALFORMED);
        ck_assert_int_eq(cbr_skip(&r, 4), TDM_EMALFORMED);
        ck_assert_uint_eq(r.pos, 0);
    }
    /* a complete head whose nested items are cut off */
    cbr r;
    cbr_init(&r, BYTES(0x82, 0x01, 0x19, 0x01));
    ck_assert_int_eq(cbr_skip(&r, 4), TDM_EMALFORMED);
    ck_assert_uint_eq(r.pos, 0);
}
END_TEST

START_TEST(test_cbr_trailing_bytes)
{
    cbr r;
    uint64_t u;
    cbr_init(&r, BYTES(0x01, 0x02));
    ck_assert_int_eq(cbr_uint(&r, &u), TDM_OK);
    ck_assert_uint_eq(u, 1);
    ck_assert_int_eq(cbr_finish(&r), TDM_EMALFORMED);
    ck_assert_uint_eq(cbr_remaining(&r), 1);
    ck_assert_int_eq(cbr_uint(&r, &u), TDM_OK);
    ck_assert_int_eq(cbr_finish(&r), TDM_OK);
}
END_TEST

START_TEST(test_cbr_int_range)
{
    cbr r;
    int64_t v = 42;
    /* 2^63 as uint and -2^64 as negint do not fit int64_t */
    cbr_init(&r, BYTES(0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0));
    ck_assert_int_eq(cbr_int(&r, &v), TDM_EMALFORMED);
    cbr_init(&r, BYTES(0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    ck_assert_int_eq(cbr_int(&r, &v), TDM_EMALFORMED);
    cbr_init(&r, BYTES(0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0));
    ck_assert_int_eq(cbr_int(&r, &v), TDM_EMALFORMED);
    ck_assert_int_eq(v, 42);
    ck_assert_uint_eq(r.pos, 0);
    cbr_init(&r, BYTES(0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    ck_assert_int_eq(cbr_int(&r, &v), TDM_OK);
    ck_assert_int_eq(v, INT64_MIN);
    cbr_init(&r, BYTES(0x61, 'a'));
    ck_assert_int_eq(cbr_int(&r, &v), TDM_EMALFORMED);
}
END_TEST

START_TEST(test_cbr_skip)
{
    /* {"a": [1, -2, h'0102', 1.5, null, undefined, true, 1(0)], 3: {}} then 7 */
    const uint8_t in[] = {0xa2, 0x61, 'a',  0x88, 0x01, 0x21, 0x42, 0x01, 0x02, 0xf9,
                          0x3e, 0x00, 0xf6, 0xf7, 0xf5, 0xc1, 0x00, 0x03, 0xa0, 0x07};
    cbr r;
    uint64_t u;
    cbr_init(&r, in, sizeof in);
    ck_assert_int_eq(cbr_skip(&r, 2), TDM_EMALFORMED); /* the tag is a third level */
    ck_assert_uint_eq(r.pos, 0);
    ck_assert_int_eq(cbr_skip(&r, 3), TDM_OK);
    ck_assert_uint_eq(r.pos, sizeof in - 1);
    ck_assert_int_eq(cbr_uint(&r, &u), TDM_OK);
    ck_assert_uint_eq(u, 7);
    ck_assert_int_eq(cbr_finish(&r), TDM_OK);
    ck_assert_int_eq(cbr_skip(&r, 3), TDM_EMALFORMED); /* nothing left */

    /* scalars with depth 0; containers need depth >= 1 even when empty */
    cbr_init(&r, BYTES(0x63, 'a', 'b', 'c'));
    ck_assert_int_eq(cbr_skip(&r, 0), TDM_OK);
    ck_assert_uint_eq(r.pos, 4);
    cbr_init(&r, BYTES(0x80));
    ck_assert_int_eq(cbr_skip(&r, 0), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_skip(&r, 1), TDM_OK);

    ck_assert_int_eq(cbr_skip(&r, -1), TDM_EINVAL);
    ck_assert_int_eq(cbr_skip(&r, CBR_MAX_DEPTH + 1), TDM_EINVAL);
}
END_TEST

START_TEST(test_cbr_skip_depth)
{
    enum { DEEP = 100000 };
    uint8_t *deep = malloc(DEEP + 1);
    ck_assert_ptr_nonnull(deep);
    memset(deep, 0x81, DEEP); /* [[[[...0...]]]] */
    deep[DEEP] = 0x00;
    cbr r;
    cbr_init(&r, deep, DEEP + 1);
    ck_assert_int_eq(cbr_skip(&r, CBR_MAX_DEPTH), TDM_EMALFORMED);
    ck_assert_uint_eq(r.pos, 0);

    /* exactly the limit passes, one more level fails */
    cbr_init(&r, deep + DEEP - 10, 11);
    ck_assert_int_eq(cbr_skip(&r, 10), TDM_OK);
    ck_assert_int_eq(cbr_finish(&r), TDM_OK);
    cbr_init(&r, deep + DEEP - 11, 12);
    ck_assert_int_eq(cbr_skip(&r, 10), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_skip(&r, 11), TDM_OK);
    cbr_init(&r, deep + DEEP - CBR_MAX_DEPTH, CBR_MAX_DEPTH + 1);
    ck_assert_int_eq(cbr_skip(&r, CBR_MAX_DEPTH), TDM_OK);

    /* deep tags and maps count as well */
    memset(deep, 0xc1, 20);
    deep[20] = 0x00;
    cbr_init(&r, deep, 21);
    ck_assert_int_eq(cbr_skip(&r, 19), TDM_EMALFORMED);
    ck_assert_int_eq(cbr_skip(&r, 20), TDM_OK);
    free(deep);
}
END_TEST

/* A wide array of 65536 elements skips in linear time. */
START_TEST(test_cbr_skip_wide)
{
    size_t n = 5 + 65536 + 1;
    uint8_t *p = calloc(1, n);
    ck_assert_ptr_nonnull(p);
    p[0] = 0x9a;
    p[1] = 0x00;
    p[2] = 0x01;
    p[3] = 0x00;
    p[4] = 0x00;
    p[n - 1] = 0x17;
    cbr r;
    uint64_t u;
    cbr_init(&r, p, n);
    ck_assert_int_eq(cbr_skip(&r, 1), TDM_OK);
    ck_assert_uint_eq(r.pos, n - 1);
    ck_assert_int_eq(cbr_uint(&r, &u), TDM_OK);
    ck_assert_uint_eq(u, 23);
    /* one element short */
    cbr_init(&r, p, n - 2);
    ck_assert_int_eq(cbr_skip(&r, 1), TDM_EMALFORMED);
    ck_assert_uint_eq(r.pos, 0);
    free(p);
}
END_TEST

/* ------------------------------------------------------------ varints */

START_TEST(test_varint_round_trip)
{
    static const uint64_t vals[] = {0,
                                    1,
                                    127,
                                    128,
                                    300,
                                    16383,
                                    16384,
                                    UINT32_MAX,
                                    (uint64_t)UINT32_MAX + 1,
                                    UINT64_C(1) << 63,
                                    UINT64_MAX};
    static const size_t lens[] = {1, 1, 1, 2, 2, 2, 3, 5, 5, 10, 10};
    tbuf b;
    tbuf_init(&b, 0);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        size_t before = b.len;
        ck_assert_int_eq(tbuf_varint(&b, vals[i]), TDM_OK);
        ck_assert_uint_eq(b.len - before, lens[i]);
    }
    vrd r;
    vrd_init(&r, b.data, b.len);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint64_t v = 0;
        ck_assert_int_eq(vrd_uint(&r, &v), TDM_OK);
        ck_assert_uint_eq(v, vals[i]);
    }
    ck_assert_uint_eq(r.pos, b.len);
    uint64_t v;
    ck_assert_int_eq(vrd_uint(&r, &v), TDM_EMALFORMED);

    /* 300 = ac 02 */
    tbuf_reset(&b);
    ck_assert_int_eq(tbuf_varint(&b, 300), TDM_OK);
    expect_bytes(&b, BYTES(0xac, 0x02));
    tbuf_fini(&b);
}
END_TEST

START_TEST(test_svarint)
{
    static const int64_t vals[] = {0, -1, 1, -2, 2, 63, -64, 64, INT64_MAX, INT64_MIN};
    static const uint64_t zz[] = {0, 1, 2, 3, 4, 126, 127, 128, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        tbuf a, b;
        tbuf_init(&a, 0);
        tbuf_init(&b, 0);
        ck_assert_int_eq(tbuf_svarint(&a, vals[i]), TDM_OK);
        ck_assert_int_eq(tbuf_varint(&b, zz[i]), TDM_OK);
        ck_assert_uint_eq(a.len, b.len);
        ck_assert_mem_eq(a.data, b.data, a.len);
        vrd r;
        int64_t v = 0;
        vrd_init(&r, a.data, a.len);
        ck_assert_int_eq(vrd_sint(&r, &v), TDM_OK);
        ck_assert_int_eq(v, vals[i]);
        tbuf_fini(&a);
        tbuf_fini(&b);
    }
}
END_TEST

START_TEST(test_varint_hostile)
{
    vrd r;
    uint64_t v = 99;
    uint32_t w = 99;
    uint8_t c;
    /* 11 bytes: non-minimal zero, too long */
    vrd_init(&r, BYTES(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00));
    ck_assert_int_eq(vrd_uint(&r, &v), TDM_EMALFORMED);
    ck_assert_uint_eq(r.pos, 0);
    /* 10 bytes whose last carries bit 64: overflow */
    vrd_init(&r, BYTES(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02));
    ck_assert_int_eq(vrd_uint(&r, &v), TDM_EMALFORMED);
    vrd_init(&r, BYTES(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f));
    ck_assert_int_eq(vrd_uint(&r, &v), TDM_EMALFORMED);
    ck_assert_uint_eq(v, 99);
    /* the largest 10-byte value is fine */
    vrd_init(&r, BYTES(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
    ck_assert_int_eq(vrd_uint(&r, &v), TDM_OK);
    ck_assert_uint_eq(v, UINT64_MAX);
    /* non-minimal but in range: accepted */
    vrd_init(&r, BYTES(0x81, 0x80, 0x00));
    ck_assert_int_eq(vrd_uint(&r, &v), TDM_OK);
    ck_assert_uint_eq(v, 1);
    /* truncated */
    vrd_init(&r, BYTES(0x80));
    ck_assert_int_eq(vrd_uint(&r, &v), TDM_EMALFORMED);
    vrd_init(&r, NULL, 0);
    ck_assert_int_eq(vrd_uint(&r, &v), TDM_EMALFORMED);
    ck_assert_int_eq(vrd_byte(&r, &c), TDM_EMALFORMED);
    int64_t s;
    ck_assert_int_eq(vrd_sint(&r, &s), TDM_EMALFORMED);
    /* u32 bounds */
    vrd_init(&r, BYTES(0xff, 0xff, 0xff, 0xff, 0x0f, 0x80, 0x80, 0x80, 0x80, 0x10));
    ck_assert_int_eq(vrd_u32(&r, &w), TDM_OK);
    ck_assert_uint_eq(w, UINT32_MAX);
    ck_assert_int_eq(vrd_u32(&r, &w), TDM_EMALFORMED); /* 2^32 */
    ck_assert_uint_eq(r.pos, 5);
    ck_assert_uint_eq(w, UINT32_MAX);
    ck_assert_int_eq(vrd_uint(&r, &v), TDM_OK);
    ck_assert_uint_eq(v, UINT64_C(1) << 32);
    /* bytes */
    vrd_init(&r, BYTES(0xab));
    ck_assert_int_eq(vrd_byte(&r, &c), TDM_OK);
    ck_assert_uint_eq(c, 0xab);
    ck_assert_int_eq(vrd_byte(&r, &c), TDM_EMALFORMED);
}
END_TEST

/* Every prefix of a valid encoding fails cleanly and never reads past it
 * (ASan checks the last part). */
START_TEST(test_cbr_every_prefix)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(tbuf_cbor_array(&b, 3), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_uint(&b, UINT64_MAX), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_text(&b, "hello", 5), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_map(&b, 1), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_int(&b, -300), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_bytes(&b, "xyz", 3), TDM_OK);
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(cut);
        memcpy(cut, b.data, n);
        cbr r;
        cbr_init(&r, cut, n);
        ck_assert_int_eq(cbr_skip(&r, 4), TDM_EMALFORMED);
        ck_assert_uint_eq(r.pos, 0);
        free(cut);
    }
    cbr r;
    cbr_init(&r, b.data, b.len);
    ck_assert_int_eq(cbr_skip(&r, 2), TDM_OK);
    ck_assert_int_eq(cbr_finish(&r), TDM_OK);
    tbuf_fini(&b);
}

/* one-byte tag heads 6-20 are tags like any other (libcbor 0.8 alone refuses them) */
START_TEST(test_short_tags)
{
    static const uint8_t a[] = {0xca, 0x00}, b[] = {0xd8, 0x0a, 0x00};
    cbr r;
    cbr_init(&r, a, sizeof a);
    ck_assert_int_eq(cbr_peek(&r), CBR_TAG);
    ck_assert_int_eq(cbr_skip(&r, 2), TDM_OK);
    ck_assert_int_eq(cbr_finish(&r), TDM_OK);
    cbr_init(&r, b, sizeof b);
    ck_assert_int_eq(cbr_skip(&r, 2), TDM_OK);
    ck_assert_int_eq(cbr_finish(&r), TDM_OK);
}
END_TEST
END_TEST

static Suite *buf_cbor_suite(void)
{
    Suite *s = suite_create("buf_cbor");
    TCase *tb = tcase_create("tbuf");
    tcase_add_test(tb, test_tbuf_basics);
    tcase_add_test(tb, test_tbuf_limit);
    suite_add_tcase(s, tb);

    TCase *tw = tcase_create("write");
    tcase_add_test(tw, test_cbor_uint_encodings);
    tcase_add_test(tw, test_cbor_int_encodings);
    tcase_add_test(tw, test_cbor_other_encodings);
    tcase_add_test(tw, test_cbor_writers_at_limit);
    suite_add_tcase(s, tw);

    TCase *tr = tcase_create("read");
    tcase_add_test(tr, test_cbr_round_trip);
    tcase_add_test(tr, test_cbr_peek_types);
    tcase_add_test(tr, test_cbr_huge_counts);
    tcase_add_test(tr, test_cbr_count_bounds);
    tcase_add_test(tr, test_cbr_indefinite_rejected);
    tcase_add_test(tr, test_cbr_truncated);
    tcase_add_test(tr, test_cbr_trailing_bytes);
    tcase_add_test(tr, test_cbr_int_range);
    tcase_add_test(tr, test_cbr_skip);
    tcase_add_test(tr, test_cbr_skip_depth);
    tcase_add_test(tr, test_cbr_skip_wide);
    tcase_add_test(tr, test_cbr_every_prefix);
    suite_add_tcase(s, tr);

    TCase *tv = tcase_create("varint");
    tcase_add_test(tv, test_varint_round_trip);
    tcase_add_test(tv, test_svarint);
    tcase_add_test(tv, test_varint_hostile);
    tcase_add_test(tv, test_short_tags);
    suite_add_tcase(s, tv);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(buf_cbor_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
