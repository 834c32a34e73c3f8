/* test_utf8.c - strict UTF-8 validation and code-point arithmetic. */
#include "utf8.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static bool valid(const uint8_t *p, size_t n)
{
    return utf8_validate(p, n, NULL, NULL);
}

/* Encode code point cp (no checks) into out; returns the byte count. */
static size_t enc(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

START_TEST(test_ascii_and_empty)
{
    size_t cps = 99, astral = 99;
    ck_assert(utf8_validate(NULL, 0, &cps, &astral));
    ck_assert_uint_eq(cps, 0);
    ck_assert_uint_eq(astral, 0);

    const char *t = "hello, world: the quick brown fox jumps over the lazy dog";
    size_t n = strlen(t);
    ck_assert(utf8_validate((const uint8_t *)t, n, &cps, &astral));
    ck_assert_uint_eq(cps, n);
    ck_assert_uint_eq(astral, 0);
    ck_assert_uint_eq(utf8_count((const uint8_t *)t, n), n);
    ck_assert_uint_eq(utf8_skip((const uint8_t *)t, n, 13), 13);
    ck_assert_uint_eq(utf8_skip((const uint8_t *)t, n, n), n);
}
END_TEST

START_TEST(test_multibyte_counts)
{
    /* "aé€😀" : 1 + 2 + 3 + 4 bytes */
    const uint8_t s[] = {'a', 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80};
    size_t cps = 0, astral = 0;
    ck_assert(utf8_validate(s, sizeof s, &cps, &astral));
    ck_assert_uint_eq(cps, 4);
    ck_assert_uint_eq(astral, 1);
    ck_assert_uint_eq(utf8_count(s, sizeof s), 4);
    ck_assert_uint_eq(utf8_count_astral(s, sizeof s), 1);
    ck_assert_uint_eq(utf8_skip(s, sizeof s, 0), 0);
    ck_assert_uint_eq(utf8_skip(s, sizeof s, 1), 1);
    ck_assert_uint_eq(utf8_skip(s, sizeof s, 2), 3);
    ck_assert_uint_eq(utf8_skip(s, sizeof s, 3), 6);
    ck_assert_uint_eq(utf8_skip(s, sizeof s, 4), 10);
}
END_TEST

START_TEST(test_boundaries_valid)
{
    /* first and last code point of each length, and around the surrogates */
    ck_assert(valid(S("\x7f")));
    ck_assert(valid(S("\xc2\x80")));         /* U+0080 */
    ck_assert(valid(S("\xdf\xbf")));         /* U+07FF */
    ck_assert(valid(S("\xe0\xa0\x80")));     /* U+0800 */
    ck_assert(valid(S("\xed\x9f\xbf")));     /* U+D7FF */
    ck_assert(valid(S("\xee\x80\x80")));     /* U+E000 */
    ck_assert(valid(S("\xef\xbf\xbf")));     /* U+FFFF */
    ck_assert(valid(S("\xf0\x90\x80\x80"))); /* U+10000 */
    ck_assert(valid(S("\xf4\x8f\xbf\xbf"))); /* U+10FFFF */
    const uint8_t nul[] = {'a', 0, 'b'};     /* U+0000 is a valid code point */
    ck_assert(valid(nul, sizeof nul));
}
END_TEST

START_TEST(test_overlongs)
{
    ck_assert(!valid(S("\xc0\x80")));
    ck_assert(!valid(S("\xc1\xbf")));
    ck_assert(!valid(S("\xe0\x80\x80")));
    ck_assert(!valid(S("\xe0\x9f\xbf")));
    ck_assert(!valid(S("\xf0\x80\x80\x80")));
    ck_assert(!valid(S("\xf0\x8f\xbf\xbf")));
}
END_TEST

START_TEST(test_surrogates_and_range)
{
    ck_assert(!valid(S("\xed\xa0\x80"))); /* U+D800 */
    ck_assert(!valid(S("\xed\xbf\xbf"))); /* U+DFFF */
    /* a UTF-16 surrogate pair spelled as CESU-8 */
    ck_assert(!valid(S("\xed\xa0\xbd\xed\xb8\x80")));
    ck_assert(!valid(S("\xf4\x90\x80\x80"))); /* U+110000 */
    ck_assert(!valid(S("\xf5\x80\x80\x80")));
    ck_assert(!valid(S("\xf7\xbf\xbf\xbf")));
    ck_assert(!valid(S("\xf8\x88\x80\x80\x80"))); /* old 5-byte form */
    ck_assert(!valid(S("\xfe")));
    ck_assert(!valid(S("\xff")));
}
END_TEST

START_TEST(test_truncated_and_stray)
{
    ck_assert(!valid(S("\xc3")));
    ck_assert(!valid(S("\xe2\x82")));
    ck_assert(!valid(S("\xf0\x9f\x98")));
    ck_assert(!valid(S("abc\xf0\x9f")));
    ck_assert(!valid(S("\x80")));
    ck_assert(!valid(S("\xbf")));
    ck_assert(!valid(S("abcdefgh\x80zzzzzzzz")));
    ck_assert(!valid(S("\xc3\xa9\xa9"))); /* one continuation too many */
    /* lead byte followed by a non-continuation */
    ck_assert(!valid(S("\xc3"
                       "a")));
    ck_assert(!valid(S("\xe2\x82"
                       "a")));
    ck_assert(!valid(S("\xf0\x9f\x98"
                       "a")));
    ck_assert(!valid(S("\xe2\xc3\xa9")));
}
END_TEST

/* An error anywhere, also right after a fast 8-byte ASCII block, is found. */
START_TEST(test_error_at_every_offset)
{
    uint8_t buf[64];
    for (size_t pos = 0; pos < sizeof buf; pos++) {
        memset(buf, 'x', sizeof buf);
        buf[pos] = 0x80;
        ck_assert_msg(!valid(buf, sizeof buf), "stray byte at %zu accepted", pos);
        memset(buf, 'x', sizeof buf);
        buf[pos] = 0xe2; /* truncated: followed by ASCII or the end */
        ck_assert_msg(!valid(buf, sizeof buf), "truncated at %zu accepted", pos);
        memset(buf, 'x', sizeof buf);
        ck_assert(valid(buf, sizeof buf));
    }
}
END_TEST

/* Every code point: encodings of scalar values validate, surrogates do not. */
START_TEST(test_all_code_points)
{
    uint8_t b[4];
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        size_t n = enc(cp, b);
        size_t cps = 0, astral = 0;
        bool ok = utf8_validate(b, n, &cps, &astral);
        bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
        if (ok == surrogate) ck_abort_msg("U+%04X: validate gave %d", (unsigned)cp, ok);
        if (ok && (cps != 1 || astral != (cp >= 0x10000)))
            ck_abort_msg("U+%04X: cps %zu astral %zu", (unsigned)cp, cps, astral);
    }
}
END_TEST

/* Two-byte prefixes: exhaustive check against the table in RFC 3629. */
START_TEST(test_all_lead_second_pairs)
{
    for (unsigned a = 0xc0; a <= 0xff; a++) {
        for (unsigned b = 0; b <= 0xff; b++) {
            uint8_t s[4] = {(uint8_t)a, (uint8_t)b, 0x80, 0x80};
            size_t len = a < 0xe0 ? 2 : a < 0xf0 ? 3 : 4;
            unsigned lo = 0x80, hi = 0xbf;
            bool lead_ok = (a >= 0xc2 && a <= 0xf4);
            if (a == 0xe0) lo = 0xa0;
            if (a == 0xed) hi = 0x9f;
            if (a == 0xf0) lo = 0x90;
            if (a == 0xf4) hi = 0x8f;
            bool expect = lead_ok && b >= lo && b <= hi;
            if (valid(s, len) != expect) ck_abort_msg("%02X %02X: expected %d", a, b, expect);
        }
    }
}
END_TEST

/* Random mixed text: validate's counts and utf8_count/count_astral/skip agree
 * with a byte-at-a-time reference. Fixed seed. */
START_TEST(test_random_mixed)
{
    srand(12345);
    static const uint32_t ranges[][2] = {
        {0x20, 0x7e}, {0x80, 0x7ff}, {0x800, 0xd7ff}, {0xe000, 0xffff}, {0x10000, 0x10ffff}};
    for (int round = 0; round < 200; round++) {
        uint8_t buf[4 * 300];
        size_t offs[301];
        size_t n = 0, k = (size_t)(rand() % 300), astral = 0;
        for (size_t i = 0; i < k; i++) {
            int r = rand() % 10;
            int cls = r < 6 ? 0 : r - 5; /* mostly ASCII, runs included */
            uint32_t lo = ranges[cls][0], hi = ranges[cls][1];
            uint32_t cp = lo + (uint32_t)rand() % (hi - lo + 1);
            offs[i] = n;
            n += enc(cp, buf + n);
            astral += cp >= 0x10000;
        }
        offs[k] = n;
        size_t cps = 0, ast = 0;
        ck_assert(utf8_validate(buf, n, &cps, &ast));
        ck_assert_uint_eq(cps, k);
        ck_assert_uint_eq(ast, astral);
        ck_assert_uint_eq(utf8_count(buf, n), k);
        ck_assert_uint_eq(utf8_count_astral(buf, n), astral);
        for (size_t i = 0; i <= k; i++) ck_assert_uint_eq(utf8_skip(buf, n, i), offs[i]);
        if (n > 0) {
            /* cutting the last sequence short must fail unless it was ASCII */
            size_t last = offs[k - 1];
            if (n - last > 1) ck_assert(!valid(buf, n - 1));
        }
    }
}
END_TEST

/* Outputs are untouched when validation fails. */
START_TEST(test_outputs_untouched_on_error)
{
    size_t cps = 7, astral = 9;
    ck_assert(!utf8_validate(S("ab\xc0\x80"), &cps, &astral));
    ck_assert_uint_eq(cps, 7);
    ck_assert_uint_eq(astral, 9);
}
END_TEST

static Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ascii_and_empty);
    tcase_add_test(tc, test_multibyte_counts);
    tcase_add_test(tc, test_boundaries_valid);
    tcase_add_test(tc, test_overlongs);
    tcase_add_test(tc, test_surrogates_and_range);
    tcase_add_test(tc, test_truncated_and_stray);
    tcase_add_test(tc, test_error_at_every_offset);
    tcase_add_test(tc, test_all_code_points);
    tcase_add_test(tc, test_all_lead_second_pairs);
    tcase_add_test(tc, test_random_mixed);
    tcase_add_test(tc, test_outputs_untouched_on_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
