/* test_ot.c - OT text operations: builders and normal form, accessors, apply,
 * compose, transform, invert, the CBOR wire form and hostile wire inputs; then
 * fixed-seed property tests over random operations on random multibyte texts
 * (TP1 on both sides, compose against sequential apply, compose associativity,
 * invert, normalization against a naive model, encode/decode round trips and
 * mutated encodings). TANDEM_SOAK=N multiplies the property iterations. */
#include "ot.h"
#include "utf8.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

/* 2-, 3- and 4-byte code points */
#define E2 "\xc3\xa9"         /* é U+00E9 */
#define E3 "\xe2\x82\xac"     /* € U+20AC */
#define E4 "\xf0\x9f\x98\x80" /* 😀 U+1F600 */

/* Check's ck_assert_* report every passing check to the runner (one write
 * each); these only speak on failure, for hot loops. */
#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c);                               \
    } while (0)
#define REQUIRE_EQ(a, b)                                                                           \
    do {                                                                                           \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b);                                        \
        if (a_ != b_)                                                                              \
            ck_abort_msg("%s:%d: %s == %s (%ju != %ju)", __FILE__, __LINE__, #a, #b, a_, b_);      \
    } while (0)
#define REQUIRE_OK(x)                                                                              \
    do {                                                                                           \
        tdm_err e_ = (x);                                                                          \
        if (e_) ck_abort_msg("%s:%d: %s -> %s", __FILE__, __LINE__, #x, tdm_err_name(e_));         \
    } while (0)

/* ------------------------------------------------------------ helpers */

static ot_op *op_new(void)
{
    ot_op *op = NULL;
    REQUIRE_OK(ot_op_new(&op));
    REQUIRE(op != NULL);
    return op;
}

/* mk - an operation from a spec "r3|iab|d2" (retain 3, insert "ab", delete 2),
 * built with the builders (so it is normalized). "" is the empty operation. */
static ot_op *mk(const char *spec)
{
    ot_op *op = op_new();
    const char *s = spec;
    while (*s) {
        const char *end = strchr(s, '|');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (s[0] == 'i') {
            REQUIRE_OK(ot_op_insert(op, s + 1, len - 1));
        } else {
            size_t n = strtoul(s + 1, NULL, 10);
            if (s[0] == 'r')
                REQUIRE_OK(ot_op_retain(op, n));
            else
                REQUIRE_OK(ot_op_delete(op, n));
        }
        s += len + (end ? 1 : 0);
    }
    return op;
}

/* spec_of - the components of op in mk's notation, written into buf. */
static const char *spec_of(const ot_op *op, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = 0;
    for (size_t i = 0; i < ot_op_count(op); i++) {
        ot_comp c;
        REQUIRE_OK(ot_op_get(op, i, &c));
        int w;
        if (c.kind == OT_INSERT)
            w = snprintf(buf + at, cap - at, "%si%.*s", i ? "|" : "", (int)c.nbytes, c.text);
        else
            w = snprintf(buf + at, cap - at, "%s%c%zu", i ? "|" : "",
                         c.kind == OT_RETAIN ? 'r' : 'd', c.n);
        REQUIRE(w >= 0 && (size_t)w < cap - at);
        at += (size_t)w;
    }
    return buf;
}

#define ck_assert_op(op, want)                                                                     \
    do {                                                                                           \
        char sb_[512];                                                                             \
        ck_assert_str_eq(spec_of((op), sb_, sizeof sb_), (want));                                  \
    } while (0)

/* apply_str - apply op to the NUL-terminated text; returns a malloc'd
 * NUL-terminated result. */
static char *apply_str(const ot_op *op, const char *text)
{
    tbuf b;
    tbuf_init(&b, 0);
    REQUIRE_OK(ot_op_apply(op, text, strlen(text), &b));
    REQUIRE_OK(tbuf_append(&b, "", 1));
    size_t n;
    return (char *)tbuf_take(&b, &n);
}

#define ck_assert_apply(op, text, want)                                                            \
    do {                                                                                           \
        char *r_ = apply_str((op), (text));                                                        \
        ck_assert_str_eq(r_, (want));                                                              \
        free(r_);                                                                                  \
    } while (0)

/* Check the normal-form invariants through the public accessors. */
static void check_normalized(const ot_op *op)
{
    size_t base = 0, target = 0;
    int prev = 0;
    for (size_t i = 0; i < ot_op_count(op); i++) {
        ot_comp c;
        REQUIRE_OK(ot_op_get(op, i, &c));
        REQUIRE(c.n > 0);
        REQUIRE((int)c.kind != prev);
        REQUIRE(!(prev == OT_DELETE && c.kind == OT_INSERT));
        if (c.kind == OT_INSERT) {
            size_t cps = 0;
            REQUIRE(c.text != NULL);
            REQUIRE(utf8_validate((const uint8_t *)c.text, c.nbytes, &cps, NULL));
            REQUIRE_EQ(cps, c.n);
            target += c.n;
        } else {
            REQUIRE(c.text == NULL);
            REQUIRE_EQ(c.nbytes, 0);
            base += c.n;
            if (c.kind == OT_RETAIN) target += c.n;
        }
        prev = (int)c.kind;
    }
    REQUIRE_EQ(ot_op_base_len(op), base);
    REQUIRE_EQ(ot_op_target_len(op), target);
}

/* ------------------------------------------------------- unit: basics */

START_TEST(test_empty_op)
{
    ot_op *op = op_new();
    ck_assert_uint_eq(ot_op_count(op), 0);
    ck_assert_uint_eq(ot_op_base_len(op), 0);
    ck_assert_uint_eq(ot_op_target_len(op), 0);
    ck_assert(ot_op_is_noop(op));
    ot_comp c = {.kind = OT_RETAIN, .n = 77};
    ck_assert_int_eq(ot_op_get(op, 0, &c), TDM_ERANGE);
    ck_assert_uint_eq(c.n, 77); /* untouched */
    ck_assert_apply(op, "", "");
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(ot_op_apply(op, "a", 1, &b), TDM_EBASELEN);
    ck_assert_int_eq(ot_op_apply(op, NULL, 0, &b), TDM_OK);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(ot_op_encode(op, &b), TDM_OK);
    ck_assert_uint_eq(b.len, 1);
    ck_assert_uint_eq(b.data[0], 0x80);
    tbuf_fini(&b);
    ot_op_free(op);
    ot_op_free(NULL);
}
END_TEST

START_TEST(test_builders_merge)
{
    ot_op *op = op_new();
    ck_assert_int_eq(ot_op_retain(op, 2), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 0), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 3), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "", 0), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, NULL, 0), TDM_OK);
    ck_assert_op(op, "r5");
    ck_assert(ot_op_is_noop(op));
    ck_assert_int_eq(ot_op_insert(op, "a" E2, 3), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, E3 E4, 7), TDM_OK);
    ck_assert_op(op, "r5|ia" E2 E3 E4);
    ck_assert(!ot_op_is_noop(op));
    ck_assert_int_eq(ot_op_delete(op, 1), TDM_OK);
    ck_assert_int_eq(ot_op_delete(op, 0), TDM_OK);
    ck_assert_int_eq(ot_op_delete(op, 2), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 1), TDM_OK);
    ck_assert_op(op, "r5|ia" E2 E3 E4 "|d3|r1");
    ck_assert_uint_eq(ot_op_count(op), 4);
    ck_assert_uint_eq(ot_op_base_len(op), 9);
    ck_assert_uint_eq(ot_op_target_len(op), 10);

    ot_comp c;
    ck_assert_int_eq(ot_op_get(op, 1, &c), TDM_OK);
    ck_assert_int_eq(c.kind, OT_INSERT);
    ck_assert_uint_eq(c.n, 4);
    ck_assert_uint_eq(c.nbytes, 10);
    ck_assert_mem_eq(c.text, "a" E2 E3 E4, 10);
    ck_assert_int_eq(ot_op_get(op, 2, &c), TDM_OK);
    ck_assert_int_eq(c.kind, OT_DELETE);
    ck_assert_uint_eq(c.n, 3);
    ck_assert_ptr_null(c.text);
    ck_assert_int_eq(ot_op_get(op, 4, &c), TDM_ERANGE);
    check_normalized(op);

    ot_op_clear(op);
    ck_assert_uint_eq(ot_op_count(op), 0);
    ck_assert_uint_eq(ot_op_base_len(op), 0);
    ck_assert_uint_eq(ot_op_target_len(op), 0);
    ck_assert_int_eq(ot_op_delete(op, 1), TDM_OK);
    ck_assert_op(op, "d1");
    ot_op_free(op);
}
END_TEST

START_TEST(test_builders_insert_before_delete)
{
    /* delete then insert is stored insert then delete */
    ot_op *op = mk("r1|d2|i" E4);
    ck_assert_op(op, "r1|i" E4 "|d2");
    /* more deletes and inserts keep collapsing into one insert + one delete */
    ck_assert_int_eq(ot_op_delete(op, 1), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "x", 1), TDM_OK);
    ck_assert_int_eq(ot_op_delete(op, 4), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, E2, 2), TDM_OK);
    ck_assert_op(op, "r1|i" E4 "x" E2 "|d7");
    ck_assert_uint_eq(ot_op_base_len(op), 8);
    ck_assert_uint_eq(ot_op_target_len(op), 4);
    check_normalized(op);
    ot_op_free(op);

    /* at the start too */
    op = mk("d3|iab|d1|ic");
    ck_assert_op(op, "iabc|d4");
    ot_op *same = mk("iab|d2|ic|d2");
    ck_assert(ot_op_equal(op, same));
    ot_op_free(same);
    ot_op_free(op);

    /* the two orders have the same effect */
    ot_op *x = mk("r1|d2|iXY|r1"), *y = mk("r1|iXY|d2|r1");
    ck_assert(ot_op_equal(x, y));
    ck_assert_apply(x, "abcd", "aXYd");
    ot_op_free(x);
    ot_op_free(y);
}
END_TEST

START_TEST(test_builders_reject_bad_utf8)
{
    static const char *bad[] = {
        "\xc0\x80",         /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf5",             /* invalid lead */
        "a\xe2\x82",        /* truncated */
        "\x80",             /* stray continuation */
    };
    ot_op *op = mk("r1|ix|d1");
    ot_op *before;
    ck_assert_int_eq(ot_op_clone(op, &before), TDM_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(ot_op_insert(op, bad[i], strlen(bad[i])), TDM_EUTF8);
        ck_assert(ot_op_equal(op, before));
    }
    ot_op_free(before);
    ot_op_free(op);
}
END_TEST

START_TEST(test_length_caps)
{
    ot_op *op = op_new();
    ck_assert_int_eq(ot_op_retain(op, OT_MAX_LEN + 1), TDM_ETOOBIG);
    ck_assert_int_eq(ot_op_retain(op, SIZE_MAX), TDM_ETOOBIG);
    ck_assert_int_eq(ot_op_delete(op, SIZE_MAX), TDM_ETOOBIG);
    ck_assert_int_eq(ot_op_retain(op, OT_MAX_LEN - 1), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 2), TDM_ETOOBIG);
    ck_assert_int_eq(ot_op_delete(op, 2), TDM_ETOOBIG);
    ck_assert_int_eq(ot_op_insert(op, E2 E2, 4), TDM_ETOOBIG);
    ck_assert_uint_eq(ot_op_base_len(op), OT_MAX_LEN - 1);
    ck_assert_uint_eq(ot_op_count(op), 1);
    ck_assert_int_eq(ot_op_insert(op, E2, 2), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "a", 1), TDM_ETOOBIG);
    ck_assert_int_eq(ot_op_delete(op, 1), TDM_OK);
    ck_assert_int_eq(ot_op_delete(op, 1), TDM_ETOOBIG);
    ck_assert_uint_eq(ot_op_base_len(op), OT_MAX_LEN);
    ck_assert_uint_eq(ot_op_target_len(op), OT_MAX_LEN);
    ck_assert_op(op, "r2147483646|i" E2 "|d1");
    ot_op_free(op);
}
END_TEST

START_TEST(test_component_cap)
{
    ot_op *op = op_new();
    for (size_t i = 0; i < OT_MAX_COMPONENTS / 2; i++) {
        REQUIRE_OK(ot_op_retain(op, 1));
        REQUIRE_OK(ot_op_delete(op, 1));
    }
    ck_assert_uint_eq(ot_op_count(op), OT_MAX_COMPONENTS);
    ck_assert_int_eq(ot_op_retain(op, 1), TDM_ETOOBIG);
    ck_assert_int_eq(ot_op_insert(op, "a", 1), TDM_ETOOBIG); /* a new one before the delete */
    ck_assert_uint_eq(ot_op_count(op), OT_MAX_COMPONENTS);
    ck_assert_uint_eq(ot_op_base_len(op), OT_MAX_COMPONENTS);
    ck_assert_int_eq(ot_op_delete(op, 1), TDM_OK); /* merging still works */
    ck_assert_uint_eq(ot_op_count(op), OT_MAX_COMPONENTS);
    ot_op_free(op);
}
END_TEST

START_TEST(test_text_cap)
{
    size_t nbig = OT_MAX_TEXT_BYTES + 1;
    char *big = malloc(nbig);
    ck_assert_ptr_nonnull(big);
    memset(big, 'a', nbig);
    ot_op *op = op_new();
    ck_assert_int_eq(ot_op_insert(op, big, nbig), TDM_ETOOBIG);
    ck_assert_uint_eq(ot_op_count(op), 0);
    ck_assert_int_eq(ot_op_insert(op, big, OT_MAX_TEXT_BYTES - 1), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, E2, 2), TDM_ETOOBIG);
    ck_assert_int_eq(ot_op_insert(op, "b", 1), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "c", 1), TDM_ETOOBIG);
    ck_assert_uint_eq(ot_op_target_len(op), OT_MAX_TEXT_BYTES);
    ot_op_free(op);

    /* compose keeps a's insert and b's insert: past the cap */
    ot_op *a = op_new(), *b = op_new(), *c = NULL;
    ck_assert_int_eq(ot_op_retain(a, 1), TDM_OK);
    ck_assert_int_eq(ot_op_insert(a, big, OT_MAX_TEXT_BYTES), TDM_OK);
    ck_assert_int_eq(ot_op_retain(b, 1), TDM_OK);
    ck_assert_int_eq(ot_op_insert(b, "y", 1), TDM_OK);
    ck_assert_int_eq(ot_op_retain(b, OT_MAX_TEXT_BYTES), TDM_OK);
    ck_assert_int_eq(ot_op_compose(a, b, &c), TDM_ETOOBIG);
    ck_assert_ptr_null(c);
    ot_op_free(a);
    ot_op_free(b);

    /* inverting a delete of more text than the cap cannot hold it */
    ot_op *del = op_new(), *inv = NULL;
    ck_assert_int_eq(ot_op_delete(del, nbig), TDM_OK);
    ck_assert_int_eq(ot_op_invert(del, big, nbig, &inv), TDM_ETOOBIG);
    ck_assert_ptr_null(inv);
    ck_assert_int_eq(ot_op_invert(del, big, nbig - 1, &inv), TDM_EBASELEN);
    ot_op_free(del);
    del = op_new();
    ck_assert_int_eq(ot_op_delete(del, nbig - 1), TDM_OK);
    ck_assert_int_eq(ot_op_invert(del, big, nbig - 1, &inv), TDM_OK);
    ck_assert_uint_eq(ot_op_target_len(inv), nbig - 1);
    ot_op_free(inv);
    ot_op_free(del);
    free(big);
}
END_TEST

START_TEST(test_clone_equal)
{
    ot_op *a = mk("r2|i" E3 "x|d1|r4");
    ot_op *b = NULL;
    ck_assert_int_eq(ot_op_clone(a, &b), TDM_OK);
    ck_assert(ot_op_equal(a, b));
    ck_assert(ot_op_equal(b, a));
    ck_assert_int_eq(ot_op_retain(b, 1), TDM_OK);
    ck_assert(!ot_op_equal(a, b));
    ot_op_free(b);

    ot_op *e1 = op_new(), *e2 = NULL;
    ck_assert_int_eq(ot_op_clone(e1, &e2), TDM_OK);
    ck_assert(ot_op_equal(e1, e2));
    ck_assert(!ot_op_equal(e1, a));
    ot_op_free(e1);
    ot_op_free(e2);

    static const char *differ[] = {
        "r2|i" E3 "y|d1|r4", /* same lengths, other text */
        "r2|i" E2 "x|d1|r4", /* same code points, other bytes */
        "r2|i" E3 "x|r1|r4", /* delete vs retain */
        "r1|i" E3 "x|r1|d1|r4", "r2|i" E3 "x|d1|r3",
    };
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
        ot_op *d = mk(differ[i]);
        ck_assert_msg(!ot_op_equal(a, d), "%s", differ[i]);
        ot_op_free(d);
    }
    ot_op_free(a);
}
END_TEST

/* -------------------------------------------------------- unit: apply */

START_TEST(test_apply)
{
    ot_op *op = mk("r1|d2|i" E2 "|r2");
    ck_assert_apply(op, "a" E2 E3 E4 "b", "a" E2 E4 "b");
    ck_assert_apply(op, "abcde", "a" E2 "de");
    ot_op_free(op);

    op = mk("i" E4 E4 "|r1|d1|r1|iz");
    ck_assert_apply(op, E3 E2 "q", E4 E4 E3 "qz");
    ot_op_free(op);

    op = mk("d3");
    ck_assert_apply(op, E4 "a" E3, "");
    ot_op_free(op);

    /* errors leave out as it was */
    op = mk("r2|ix|d1");
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(tbuf_append(&b, "keep", 4), TDM_OK);
    ck_assert_int_eq(ot_op_apply(op, "ab", 2, &b), TDM_EBASELEN);
    ck_assert_int_eq(ot_op_apply(op, "abcd", 4, &b), TDM_EBASELEN);
    ck_assert_int_eq(ot_op_apply(op, E4 E4, 8, &b), TDM_EBASELEN); /* 8 bytes, 2 code points */
    ck_assert_int_eq(ot_op_apply(op, "a\xc3", 2, &b), TDM_EUTF8);
    ck_assert_int_eq(ot_op_apply(op, "ab\xed\xa0\x80", 5, &b), TDM_EUTF8);
    ck_assert_uint_eq(b.len, 4);
    ck_assert_mem_eq(b.data, "keep", 4);
    /* appends after what is there */
    ck_assert_int_eq(ot_op_apply(op, "ab" E4, 6, &b), TDM_OK);
    ck_assert_uint_eq(b.len, 7);
    ck_assert_mem_eq(b.data, "keepabx", 7);
    tbuf_fini(&b);

    /* a capped output */
    tbuf_init(&b, 5);
    ck_assert_int_eq(tbuf_append(&b, "kee", 3), TDM_OK);
    ck_assert_int_eq(ot_op_apply(op, "ab" E4, 6, &b), TDM_ETOOBIG);
    ck_assert_uint_eq(b.len, 3);
    ck_assert_mem_eq(b.data, "kee", 3);
    tbuf_fini(&b);
    ot_op_free(op);
}
END_TEST

/* ------------------------------------------------------ unit: compose */

START_TEST(test_compose)
{
    ot_op *a = mk("r1|i" E2 E3 E4 "|r2"), *b = mk("r2|d1|r1|iZ|r2"), *c = NULL;
    ck_assert_int_eq(ot_op_compose(a, b, &c), TDM_OK);
    /* b deleted the middle code point of a's insert */
    ck_assert_op(c, "r1|i" E2 E4 "Z|r2");
    ck_assert_apply(c, "xyz", "x" E2 E4 "Zyz");
    ot_op_free(c);

    /* b deletes all of a's insert and more */
    ot_op *b2 = mk("r1|d4|r1");
    ck_assert_int_eq(ot_op_compose(a, b2, &c), TDM_OK);
    ck_assert_op(c, "r1|d1|r1");
    ot_op_free(c);
    ot_op_free(b2);

    /* a's deletes pass through, b's inserts go in; result normalized */
    ot_op *a3 = mk("d1|r2"), *b3 = mk("iQ|r2");
    ck_assert_int_eq(ot_op_compose(a3, b3, &c), TDM_OK);
    ck_assert_op(c, "iQ|d1|r2");
    check_normalized(c);
    ot_op_free(c);

    /* length mismatch */
    c = (ot_op *)&c; /* sentinel: must stay */
    ck_assert_int_eq(ot_op_compose(a, a3, &c), TDM_EBASELEN);
    ck_assert_ptr_eq(c, (ot_op *)&c);
    ot_op_free(a3);
    ot_op_free(b3);

    /* empty with empty */
    ot_op *e = op_new();
    ck_assert_int_eq(ot_op_compose(e, e, &c), TDM_OK);
    ck_assert_uint_eq(ot_op_count(c), 0);
    ot_op_free(c);
    ot_op_free(e);
    ot_op_free(a);
    ot_op_free(b);
}
END_TEST

/* ---------------------------------------------------- unit: transform */

START_TEST(test_transform_ties)
{
    /* both insert at position 1 of "ab" */
    ot_op *a = mk("r1|i" E3 "|r1"), *b = mk("r1|i" E4 "|r1");
    ot_op *ap = NULL, *bp = NULL;
    ck_assert_int_eq(ot_op_transform(a, b, OT_LEFT, &ap), TDM_OK);
    ck_assert_int_eq(ot_op_transform(b, a, OT_RIGHT, &bp), TDM_OK);
    ck_assert_op(ap, "r1|i" E3 "|r2");
    ck_assert_op(bp, "r2|i" E4 "|r1");
    ck_assert_apply(ap, "a" E4 "b", "a" E3 E4 "b");
    ck_assert_apply(bp, "a" E3 "b", "a" E3 E4 "b");
    ot_op_free(ap);
    ot_op_free(bp);

    /* the other side puts b first */
    ck_assert_int_eq(ot_op_transform_pair(a, b, OT_RIGHT, &ap, &bp), TDM_OK);
    ck_assert_op(ap, "r2|i" E3 "|r1");
    ck_assert_op(bp, "r1|i" E4 "|r2");
    ot_op_free(ap);
    ot_op_free(bp);
    ot_op_free(a);
    ot_op_free(b);
}
END_TEST

START_TEST(test_transform_deletes)
{
    /* overlapping deletes are performed once */
    ot_op *a = mk("r1|d3|r1"), *b = mk("r2|d3"), *ap = NULL, *bp = NULL;
    ck_assert_int_eq(ot_op_transform_pair(a, b, OT_LEFT, &ap, &bp), TDM_OK);
    ck_assert_op(ap, "r1|d1");
    ck_assert_op(bp, "r1|d1");
    ck_assert_apply(ap, "ab", "a");
    ck_assert_apply(bp, "ae", "a");
    ot_op_free(ap);
    ot_op_free(bp);
    ot_op_free(a);
    ot_op_free(b);

    /* an insert inside text the other deleted survives */
    a = mk("r2|iXY|r2");
    b = mk("r1|d3");
    ck_assert_int_eq(ot_op_transform_pair(a, b, OT_LEFT, &ap, &bp), TDM_OK);
    ck_assert_op(ap, "r1|iXY");
    ck_assert_op(bp, "r1|d1|r2|d2");
    ck_assert_apply(ap, "a", "aXY");
    ck_assert_apply(bp, "abXYcd", "aXY");
    ot_op_free(ap);
    ot_op_free(bp);
    ot_op_free(a);
    ot_op_free(b);

    /* errors */
    a = mk("r2");
    b = mk("r3");
    ap = bp = (ot_op *)&ap;
    ck_assert_int_eq(ot_op_transform(a, b, OT_LEFT, &ap), TDM_EBASELEN);
    ck_assert_int_eq(ot_op_transform_pair(a, b, OT_LEFT, &ap, &bp), TDM_EBASELEN);
    ck_assert_ptr_eq(ap, (ot_op *)&ap);
    ck_assert_ptr_eq(bp, (ot_op *)&ap);
    ot_op_free(a);
    ot_op_free(b);
}
END_TEST

/* ------------------------------------------------------- unit: invert */

START_TEST(test_invert)
{
    const char *s = "a" E2 E3 E4 "b";
    ot_op *op = mk("r1|d2|iN" E4 "|r1|d1"), *inv = NULL;
    ck_assert_apply(op, s, "aN" E4 E4);
    ck_assert_int_eq(ot_op_invert(op, s, strlen(s), &inv), TDM_OK);
    ck_assert_op(inv, "r1|i" E2 E3 "|d2|r1|ib");
    ck_assert_apply(inv, "aN" E4 E4, s);
    /* inverting the inverse gives the operation back */
    ot_op *back = NULL;
    ck_assert_int_eq(ot_op_invert(inv, "aN" E4 E4, strlen("aN" E4 E4), &back), TDM_OK);
    ck_assert(ot_op_equal(back, op));
    ot_op_free(back);
    ot_op_free(inv);

    inv = (ot_op *)&inv;
    ck_assert_int_eq(ot_op_invert(op, "abc", 3, &inv), TDM_EBASELEN);
    ck_assert_int_eq(ot_op_invert(op,
                                  "ab\xc3\x28"
                                  "de",
                                  6, &inv),
                     TDM_EUTF8);
    ck_assert_ptr_eq(inv, (ot_op *)&inv);
    ot_op_free(op);

    op = op_new();
    ck_assert_int_eq(ot_op_invert(op, "", 0, &inv), TDM_OK);
    ck_assert_uint_eq(ot_op_count(inv), 0);
    ot_op_free(inv);
    ot_op_free(op);
}
END_TEST

/* ---------------------------------------------------- unit: wire form */

START_TEST(test_encode_known)
{
    static const struct {
        const char *spec;
        uint8_t bytes[16];
        size_t n;
    } cases[] = {
        {"", {0x80}, 1},
        {"r3|iab|d2", {0x83, 0x03, 0x62, 'a', 'b', 0x21}, 6},
        {"d1", {0x81, 0x20}, 2},
        {"r24|d25", {0x82, 0x18, 24, 0x38, 24}, 5},
        {"r1000|i" E4, {0x82, 0x19, 0x03, 0xe8, 0x64, 0xf0, 0x9f, 0x98, 0x80}, 9},
        {"r2147483647", {0x81, 0x1a, 0x7f, 0xff, 0xff, 0xff}, 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ot_op *op = mk(cases[i].spec), *back = NULL;
        tbuf b;
        tbuf_init(&b, 0);
        ck_assert_int_eq(ot_op_encode(op, &b), TDM_OK);
        ck_assert_uint_eq(b.len, cases[i].n);
        ck_assert_mem_eq(b.data, cases[i].bytes, cases[i].n);
        ck_assert_int_eq(ot_op_decode(b.data, b.len, &back), TDM_OK);
        ck_assert(ot_op_equal(op, back));
        ot_op_free(back);

        /* a capped output that cannot hold it is left as it was */
        tbuf small;
        tbuf_init(&small, cases[i].n + 1);
        ck_assert_int_eq(tbuf_append(&small, "xy", 2), TDM_OK);
        ck_assert_int_eq(ot_op_encode(op, &small), TDM_ETOOBIG);
        ck_assert_uint_eq(small.len, 2);
        tbuf_fini(&small);
        tbuf_fini(&b);
        ot_op_free(op);
    }
}
END_TEST

START_TEST(test_decode_normalizes)
{
    ot_op *op = NULL;
    /* [1, 2, -1, "a", -2, "b"] -> r3 | iab | d3 */
    ck_assert_int_eq(ot_op_decode(BYTES(0x86, 0x01, 0x02, 0x20, 0x61, 'a', 0x21, 0x61, 'b'), &op),
                     TDM_OK);
    ck_assert_op(op, "r3|iab|d3");
    ot_op_free(op);
}
END_TEST

/* decode must fail with `want` and leave the output alone */
static void decode_fails(const uint8_t *p, size_t n, tdm_err want)
{
    ot_op *sentinel = (ot_op *)&sentinel, *out = sentinel;
    ck_assert_int_eq(ot_op_decode(p, n, &out), want);
    ck_assert_ptr_eq(out, sentinel);
}

START_TEST(test_decode_hostile)
{
    decode_fails(NULL, 0, TDM_EMALFORMED);
    decode_fails(BYTES(0x01), TDM_EMALFORMED);       /* not an array */
    decode_fails(BYTES(0xa0), TDM_EMALFORMED);       /* a map */
    decode_fails(BYTES(0x80, 0x00), TDM_EMALFORMED); /* trailing byte */
    decode_fails(BYTES(0x81, 0x01, 0x80), TDM_EMALFORMED);
    /* huge declared counts: never allocated, refused by the reader */
    decode_fails(BYTES(0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), TDM_EMALFORMED);
    decode_fails(BYTES(0x9a, 0x00, 0x10, 0x00, 0x01, 0x01), TDM_EMALFORMED);
    decode_fails(BYTES(0x85, 0x01, 0x20), TDM_EMALFORMED); /* fewer items than declared */
    /* indefinite lengths */
    decode_fails(BYTES(0x9f, 0x01, 0xff), TDM_EMALFORMED);
    decode_fails(BYTES(0x81, 0x7f, 0x61, 'a', 0xff), TDM_EMALFORMED);
    decode_fails(BYTES(0x81, 0xff), TDM_EMALFORMED); /* stray break */
    /* zero-length components */
    decode_fails(BYTES(0x81, 0x00), TDM_EMALFORMED);
    decode_fails(BYTES(0x82, 0x01, 0x60), TDM_EMALFORMED);
    decode_fails(BYTES(0x81, 0x18, 0x00), TDM_EMALFORMED); /* non-shortest 0 */
    /* wrong item types */
    decode_fails(BYTES(0x81, 0x41, 'a'), TDM_EMALFORMED);                 /* byte string */
    decode_fails(BYTES(0x81, 0x80), TDM_EMALFORMED);                      /* nested array */
    decode_fails(BYTES(0x81, 0xa0), TDM_EMALFORMED);                      /* map */
    decode_fails(BYTES(0x81, 0xc0, 0x61, 'a'), TDM_EMALFORMED);           /* tag */
    decode_fails(BYTES(0x81, 0xf5), TDM_EMALFORMED);                      /* true */
    decode_fails(BYTES(0x81, 0xf6), TDM_EMALFORMED);                      /* null */
    decode_fails(BYTES(0x81, 0xf9, 0x3c, 0x00), TDM_EMALFORMED);          /* half float 1.0 */
    decode_fails(BYTES(0x81, 0xfb, 0, 0, 0, 0, 0, 0, 0), TDM_EMALFORMED); /* truncated */
    /* invalid UTF-8 in an insert */
    decode_fails(BYTES(0x81, 0x62, 0xc0, 0x80), TDM_EUTF8);
    decode_fails(BYTES(0x81, 0x63, 0xed, 0xa0, 0x80), TDM_EUTF8);
    decode_fails(BYTES(0x82, 0x61, 'a', 0x61, 0xff), TDM_EUTF8);
    decode_fails(BYTES(0x81, 0x62, 'a', 0xe2), TDM_EUTF8); /* split code point */
    decode_fails(BYTES(0x81, 0x65, 'a'), TDM_EMALFORMED);  /* text past the end */
    /* overflow-size lengths */
    decode_fails(BYTES(0x81, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), TDM_ETOOBIG);
    decode_fails(BYTES(0x81, 0x1b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00), TDM_ETOOBIG);
    decode_fails(BYTES(0x81, 0x1a, 0x80, 0x00, 0x00, 0x00), TDM_ETOOBIG);
    decode_fails(BYTES(0x81, 0x3a, 0x7f, 0xff, 0xff, 0xff), TDM_ETOOBIG); /* delete 2^31 */
    decode_fails(BYTES(0x81, 0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), TDM_ETOOBIG);
    decode_fails(BYTES(0x81, 0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), TDM_ETOOBIG);
    /* lengths that fit one by one but not summed */
    decode_fails(BYTES(0x82, 0x1a, 0x7f, 0xff, 0xff, 0xff, 0x20), TDM_ETOOBIG);
    decode_fails(BYTES(0x83, 0x1a, 0x40, 0x00, 0x00, 0x00, 0x61, 'a', 0x1a, 0x40, 0x00, 0x00, 0x00),
                 TDM_ETOOBIG);
    decode_fails(BYTES(0x83, 0x3a, 0x3f, 0xff, 0xff, 0xff, 0x61, 'a', 0x3a, 0x3f, 0xff, 0xff, 0xff),
                 TDM_ETOOBIG);

    /* the largest lengths are fine */
    ot_op *op = NULL;
    ck_assert_int_eq(ot_op_decode(BYTES(0x81, 0x3a, 0x7f, 0xff, 0xff, 0xfe), &op), TDM_OK);
    ck_assert_op(op, "d2147483647");
    ot_op_free(op);
}
END_TEST

START_TEST(test_decode_count_cap)
{
    /* OT_MAX_COMPONENTS items are fine; one more is too big */
    size_t n = OT_MAX_COMPONENTS + 1;
    uint8_t *p = malloc(5 + n);
    ck_assert_ptr_nonnull(p);
    p[0] = 0x9a;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) p[5 + i] = (i & 1) ? 0x20 : 0x01; /* retain 1, delete 1 */
    decode_fails(p, 5 + n, TDM_ETOOBIG);
    n--;
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    ot_op *op = NULL;
    ck_assert_int_eq(ot_op_decode(p, 5 + n, &op), TDM_OK);
    ck_assert_uint_eq(ot_op_count(op), OT_MAX_COMPONENTS);
    ot_op_free(op);
    free(p);
}
END_TEST

START_TEST(test_decode_every_prefix)
{
    ot_op *op = mk("r300|i" E2 E3 E4 "abc|d70000|r5|ix");
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(ot_op_encode(op, &b), TDM_OK);
    for (size_t k = 0; k < b.len; k++) decode_fails(b.data, k, TDM_EMALFORMED);
    ot_op *back = NULL;
    ck_assert_int_eq(ot_op_decode(b.data, b.len, &back), TDM_OK);
    ck_assert(ot_op_equal(op, back));
    ot_op_free(back);
    tbuf_fini(&b);
    ot_op_free(op);
}
END_TEST

/* ------------------------------------------------- property test kit */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) /* splitmix64 */
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static size_t rng_below(rng *r, size_t n)
{
    return n ? (size_t)(rng_next(r) % n) : 0;
}

static int soak(void)
{
    const char *s = getenv("TANDEM_SOAK");
    int k = s ? atoi(s) : 1;
    return k < 1 ? 1 : k;
}

/* A text: UTF-8 bytes with its length in code points. */
typedef struct str {
    char *p;
    size_t n, cps;
} str;

static void str_free(str *s)
{
    free(s->p);
    s->p = NULL;
}

static const char *const pool[] = {"a",
                                   "b",
                                   "c",
                                   " ",
                                   "\n",
                                   E2,
                                   "\xd0\xb6",
                                   E3,
                                   "\xe4\xb8\xad",
                                   E4,
                                   "\xf0\x9d\x84\x9e",
                                   "\xf4\x8f\xbf\xbf"};

/* rand_text - cps random code points from 1-4 byte sequences (into tb); one
 * text in four is mostly ASCII, so long runs take utf8_skip's 8-byte path. */
static void rand_text(rng *r, size_t cps, tbuf *tb)
{
    tbuf_reset(tb);
    bool ascii = rng_below(r, 4) == 0;
    for (size_t i = 0; i < cps; i++) {
        size_t k = ascii && rng_below(r, 16) ? rng_below(r, 3)
                                             : rng_below(r, sizeof pool / sizeof pool[0]);
        const char *c = pool[k];
        REQUIRE_OK(tbuf_append(tb, c, strlen(c)));
    }
}

/* rand_str - a random text of at most max_cps code points (one in eight up
 * to 8 * max_cps). */
static str rand_str(rng *r, size_t max_cps)
{
    tbuf tb;
    tbuf_init(&tb, 0);
    if (rng_below(r, 8) == 0) max_cps *= 8;
    str s = {.cps = rng_below(r, max_cps + 1)};
    rand_text(r, s.cps, &tb);
    REQUIRE_OK(tbuf_append(&tb, "", 1));
    s.p = (char *)tbuf_take(&tb, &s.n);
    s.n--;
    return s;
}

/* A raw builder call, kept to replay through a naive model. */
typedef struct raw {
    int kind;
    size_t n;
    char text[64];
    size_t nbytes;
} raw;

/* rand_raw - a random sequence of builder calls walking a base of `len` code
 * points (zero-length calls and every order of neighbours included), applied
 * to op as it goes; returns the number of calls recorded in calls[0..cap). */
static size_t rand_raw(rng *r, size_t len, ot_op *op, raw *calls, size_t cap)
{
    size_t k = 0, left = len;
    tbuf tb;
    tbuf_init(&tb, 0);
    while (k + 1 < cap) { /* the last slot is kept for the closing retain */
        raw c = {0};
        size_t pick = rng_below(r, 10);
        if (left == 0 && (pick < 6 || rng_below(r, 3) == 0)) break;
        if (pick < 3) {
            c.kind = OT_RETAIN;
            /* mostly short, sometimes long (up to the rest of the base) */
            c.n = rng_below(r, 4) ? rng_below(r, left < 4 ? left + 1 : 4) : rng_below(r, left + 1);
            REQUIRE_OK(ot_op_retain(op, c.n));
            left -= c.n;
        } else if (pick < 6) {
            c.kind = OT_DELETE;
            c.n = rng_below(r, 6) ? rng_below(r, left < 3 ? left + 1 : 3) : rng_below(r, left + 1);
            REQUIRE_OK(ot_op_delete(op, c.n));
            left -= c.n;
        } else {
            c.kind = OT_INSERT;
            rand_text(r, rng_below(r, 4), &tb);
            if (tb.len) memcpy(c.text, tb.data, tb.len);
            c.nbytes = tb.len;
            REQUIRE_OK(ot_op_insert(op, c.text, c.nbytes));
        }
        calls[k++] = c;
    }
    if (left) {
        REQUIRE_OK(ot_op_retain(op, left));
        calls[k++] = (raw){.kind = OT_RETAIN, .n = left};
    }
    tbuf_fini(&tb);
    return k;
}

/* rand_op - a random operation on a base of `len` code points. */
static ot_op *rand_op(rng *r, size_t len)
{
    raw calls[96];
    ot_op *op = op_new();
    rand_raw(r, len, op, calls, sizeof calls / sizeof calls[0]);
    REQUIRE_EQ(ot_op_base_len(op), len);
    return op;
}

/* apply to a str, giving a new str */
static str apply_s(const ot_op *op, str s)
{
    tbuf b;
    tbuf_init(&b, 0);
    REQUIRE_OK(ot_op_apply(op, s.p, s.n, &b));
    REQUIRE_OK(tbuf_append(&b, "", 1));
    str o = {.cps = ot_op_target_len(op)};
    o.p = (char *)tbuf_take(&b, &o.n);
    o.n--;
    REQUIRE_EQ(utf8_count((const uint8_t *)o.p, o.n), o.cps);
    return o;
}

static void ck_str_eq(str a, str b, uint64_t seed, int iter)
{
    ck_assert_msg(a.n == b.n && memcmp(a.p, b.p, a.n) == 0, "seed %llx iteration %d: '%s' != '%s'",
                  (unsigned long long)seed, iter, a.p, b.p);
}

#define SEED UINT64_C(0x74616e64656d0003)

/* --------------------------------------------------- property tests */

START_TEST(test_prop_normalization)
{
    rng r = {SEED ^ 1};
    int iters = 3000 * soak();
    tbuf enc, model;
    tbuf_init(&enc, 0);
    tbuf_init(&model, 0);
    for (int it = 0; it < iters; it++) {
        str s = rand_str(&r, 12);
        raw calls[64];
        ot_op *op = op_new();
        size_t k = rand_raw(&r, s.cps, op, calls, 64);
        check_normalized(op);

        /* the naive model: replay the raw calls on the text */
        tbuf_reset(&model);
        size_t pos = 0;
        for (size_t i = 0; i < k; i++) {
            size_t b = calls[i].kind == OT_INSERT
                           ? 0
                           : utf8_skip((const uint8_t *)s.p + pos, s.n - pos, calls[i].n);
            if (calls[i].kind == OT_RETAIN) tbuf_append(&model, s.p + pos, b);
            if (calls[i].kind == OT_INSERT) tbuf_append(&model, calls[i].text, calls[i].nbytes);
            pos += b;
        }
        REQUIRE_EQ(pos, s.n);
        str got = apply_s(op, s);
        REQUIRE_EQ(got.n, model.len);
        REQUIRE(got.n == 0 || memcmp(got.p, model.data, got.n) == 0);

        /* encode -> decode round trip; re-encoding gives the same bytes */
        tbuf_reset(&enc);
        REQUIRE_OK(ot_op_encode(op, &enc));
        ot_op *back = NULL;
        REQUIRE_OK(ot_op_decode(enc.data, enc.len, &back));
        REQUIRE(ot_op_equal(op, back));
        size_t n1 = enc.len;
        REQUIRE_OK(ot_op_encode(back, &enc));
        REQUIRE_EQ(enc.len, 2 * n1);
        REQUIRE(memcmp(enc.data, enc.data + n1, n1) == 0);

        /* a clone is equal and independent */
        ot_op *cl = NULL;
        REQUIRE_OK(ot_op_clone(op, &cl));
        REQUIRE(ot_op_equal(cl, op));
        REQUIRE_OK(ot_op_insert(cl, "z", 1));
        REQUIRE(!ot_op_equal(cl, op));
        ot_op_free(cl);

        ot_op_free(back);
        ot_op_free(op);
        str_free(&got);
        str_free(&s);
    }
    tbuf_fini(&enc);
    tbuf_fini(&model);
}
END_TEST

START_TEST(test_prop_transform_tp1)
{
    rng r = {SEED ^ 2};
    int iters = 4000 * soak();
    for (int it = 0; it < iters; it++) {
        str s = rand_str(&r, it % 2 ? 4 : 16); /* short texts make ties frequent */
        ot_op *a = rand_op(&r, s.cps), *b = rand_op(&r, s.cps);
        for (int side = 0; side < 2; side++) {
            ot_op *ap = NULL, *bp = NULL;
            REQUIRE_OK(ot_op_transform(a, b, (ot_side)side, &ap));
            REQUIRE_OK(ot_op_transform(b, a, (ot_side)!side, &bp));
            check_normalized(ap);
            check_normalized(bp);
            REQUIRE_EQ(ot_op_base_len(ap), ot_op_target_len(b));
            REQUIRE_EQ(ot_op_base_len(bp), ot_op_target_len(a));

            str sa = apply_s(a, s), sb = apply_s(b, s);
            str sab = apply_s(bp, sa), sba = apply_s(ap, sb);
            ck_str_eq(sab, sba, SEED ^ 2, it);

            /* the composed paths are the same operation */
            ot_op *c1 = NULL, *c2 = NULL;
            REQUIRE_OK(ot_op_compose(a, bp, &c1));
            REQUIRE_OK(ot_op_compose(b, ap, &c2));
            REQUIRE(ot_op_equal(c1, c2));

            /* the pair convenience agrees */
            ot_op *pa = NULL, *pb = NULL;
            REQUIRE_OK(ot_op_transform_pair(a, b, (ot_side)side, &pa, &pb));
            REQUIRE(ot_op_equal(pa, ap));
            REQUIRE(ot_op_equal(pb, bp));

            ot_op_free(pa);
            ot_op_free(pb);
            ot_op_free(c1);
            ot_op_free(c2);
            str_free(&sa);
            str_free(&sb);
            str_free(&sab);
            str_free(&sba);
            ot_op_free(ap);
            ot_op_free(bp);
        }
        /* transforming over a no-op changes nothing */
        ot_op *id = op_new(), *t = NULL;
        REQUIRE_OK(ot_op_retain(id, s.cps));
        REQUIRE_OK(ot_op_transform(a, id, OT_LEFT, &t));
        REQUIRE(ot_op_equal(t, a));
        ot_op_free(t);
        ot_op_free(id);
        ot_op_free(a);
        ot_op_free(b);
        str_free(&s);
    }
}
END_TEST

START_TEST(test_prop_compose)
{
    rng r = {SEED ^ 3};
    int iters = 3000 * soak();
    for (int it = 0; it < iters; it++) {
        str s = rand_str(&r, 12);
        ot_op *a = rand_op(&r, s.cps);
        ot_op *b = rand_op(&r, ot_op_target_len(a));
        ot_op *c = rand_op(&r, ot_op_target_len(b));

        ot_op *ab = NULL, *bc = NULL, *ab_c = NULL, *a_bc = NULL;
        REQUIRE_OK(ot_op_compose(a, b, &ab));
        check_normalized(ab);
        REQUIRE_EQ(ot_op_base_len(ab), s.cps);
        str sa = apply_s(a, s), sab = apply_s(b, sa), one = apply_s(ab, s);
        ck_str_eq(one, sab, SEED ^ 3, it);

        /* associativity: the same operation either way */
        REQUIRE_OK(ot_op_compose(b, c, &bc));
        REQUIRE_OK(ot_op_compose(ab, c, &ab_c));
        REQUIRE_OK(ot_op_compose(a, bc, &a_bc));
        REQUIRE(ot_op_equal(ab_c, a_bc));

        /* length mismatch is refused */
        if (ot_op_target_len(a) != ot_op_target_len(b)) {
            ot_op *x = NULL;
            REQUIRE_EQ(ot_op_compose(a, c, &x), TDM_EBASELEN);
            REQUIRE(x == NULL);
        }

        str_free(&sa);
        str_free(&sab);
        str_free(&one);
        ot_op_free(ab);
        ot_op_free(bc);
        ot_op_free(ab_c);
        ot_op_free(a_bc);
        ot_op_free(a);
        ot_op_free(b);
        ot_op_free(c);
        str_free(&s);
    }
}
END_TEST

START_TEST(test_prop_invert)
{
    rng r = {SEED ^ 4};
    int iters = 3000 * soak();
    for (int it = 0; it < iters; it++) {
        str s = rand_str(&r, 16);
        ot_op *op = rand_op(&r, s.cps), *inv = NULL, *back = NULL, *id = NULL;
        REQUIRE_OK(ot_op_invert(op, s.p, s.n, &inv));
        check_normalized(inv);
        REQUIRE_EQ(ot_op_base_len(inv), ot_op_target_len(op));
        REQUIRE_EQ(ot_op_target_len(inv), ot_op_base_len(op));
        str t = apply_s(op, s), u = apply_s(inv, t);
        ck_str_eq(u, s, SEED ^ 4, it);
        /* the inverse of the inverse is the operation */
        REQUIRE_OK(ot_op_invert(inv, t.p, t.n, &back));
        REQUIRE(ot_op_equal(back, op));
        /* op then its inverse composes to an identity on this text */
        REQUIRE_OK(ot_op_compose(op, inv, &id));
        str v = apply_s(id, s);
        ck_str_eq(v, s, SEED ^ 4, it);
        str_free(&v);
        str_free(&t);
        str_free(&u);
        ot_op_free(id);
        ot_op_free(back);
        ot_op_free(inv);
        ot_op_free(op);
        str_free(&s);
    }
}
END_TEST

START_TEST(test_prop_decode_mutations)
{
    /* random byte flips, truncations and insertions in valid encodings:
     * decode either refuses cleanly or yields a normalized operation that
     * round-trips */
    rng r = {SEED ^ 5};
    int iters = 3000 * soak();
    tbuf enc, again;
    tbuf_init(&enc, 0);
    tbuf_init(&again, 0);
    for (int it = 0; it < iters; it++) {
        ot_op *op = rand_op(&r, rng_below(&r, 20));
        tbuf_reset(&enc);
        REQUIRE_OK(ot_op_encode(op, &enc));
        ot_op_free(op);
        size_t muts = 1 + rng_below(&r, 3);
        for (size_t m = 0; m < muts; m++) {
            size_t at = rng_below(&r, enc.len);
            switch (rng_below(&r, 4)) {
            case 0:
                enc.data[at] ^= (uint8_t)(1u << rng_below(&r, 8));
                break;
            case 1:
                enc.data[at] = (uint8_t)rng_next(&r);
                break;
            case 2:
                enc.len = at;
                break;
            default: {
                uint8_t x = (uint8_t)rng_next(&r);
                REQUIRE_OK(tbuf_append(&enc, &x, 1));
                break;
            }
            }
        }
        ot_op *out = (ot_op *)&out;
        tdm_err e = ot_op_decode(enc.data, enc.len, &out);
        if (e) {
            REQUIRE_EQ(out, (ot_op *)&out);
            REQUIRE(e == TDM_EMALFORMED || e == TDM_EUTF8 || e == TDM_ETOOBIG);
            continue;
        }
        check_normalized(out);
        tbuf_reset(&again);
        REQUIRE_OK(ot_op_encode(out, &again));
        ot_op *back = NULL;
        REQUIRE_OK(ot_op_decode(again.data, again.len, &back));
        REQUIRE(ot_op_equal(back, out));
        ot_op_free(back);
        ot_op_free(out);
    }
    tbuf_fini(&enc);
    tbuf_fini(&again);
}
END_TEST

static Suite *ot_suite(void)
{
    Suite *s = suite_create("ot");
    TCase *tc = tcase_create("unit");
    tcase_add_test(tc, test_empty_op);
    tcase_add_test(tc, test_builders_merge);
    tcase_add_test(tc, test_builders_insert_before_delete);
    tcase_add_test(tc, test_builders_reject_bad_utf8);
    tcase_add_test(tc, test_length_caps);
    tcase_add_test(tc, test_component_cap);
    tcase_add_test(tc, test_text_cap);
    tcase_add_test(tc, test_clone_equal);
    tcase_add_test(tc, test_apply);
    tcase_add_test(tc, test_compose);
    tcase_add_test(tc, test_transform_ties);
    tcase_add_test(tc, test_transform_deletes);
    tcase_add_test(tc, test_invert);
    tcase_add_test(tc, test_encode_known);
    tcase_add_test(tc, test_decode_normalizes);
    tcase_add_test(tc, test_decode_hostile);
    tcase_add_test(tc, test_decode_count_cap);
    tcase_add_test(tc, test_decode_every_prefix);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("property");
    tcase_set_timeout(tp, 0); /* soak runs may be long */
    tcase_add_test(tp, test_prop_normalization);
    tcase_add_test(tp, test_prop_transform_tp1);
    tcase_add_test(tp, test_prop_compose);
    tcase_add_test(tp, test_prop_invert);
    tcase_add_test(tp, test_prop_decode_mutations);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ot_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
