/* test_relpos.c - relative positions: anchors follow their character through
 * local and concurrent remote edits, resolve inside the text when it is
 * deleted, and encode/decode safely. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "test_util.h"
#include "relpos.h"

static crdt_doc *mk(uint64_t client)
{
    crdt_doc *d = NULL;
    ck_assert_int_eq(crdt_doc_new(client, &d), TDM_OK);
    return d;
}

static size_t resolve(crdt_doc *d, const crdt_relpos *rp)
{
    size_t i = 999999;
    ck_assert_int_eq(crdt_relpos_resolve(d, rp, &i), TDM_OK);
    return i;
}

/* the code point at index i, as a 32-bit value (text is short in these tests) */
static uint32_t cp_at(crdt_doc *d, size_t i)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(crdt_doc_text_range(d, i, 1, &b), TDM_OK);
    uint32_t v = 0;
    for (size_t k = 0; k < b.len; k++) v = v << 8 | b.data[k];
    tbuf_fini(&b);
    return v;
}

START_TEST(test_basic_assoc)
{
    crdt_doc *d = mk(1);
    ck_assert_int_eq(crdt_doc_insert(d, 0, "abcdef", 6), TDM_OK);
    crdt_relpos r, l, s, e;
    ck_assert_int_eq(crdt_relpos_from_index(d, 3, CRDT_ASSOC_RIGHT, &r), TDM_OK);
    ck_assert_int_eq(crdt_relpos_from_index(d, 3, CRDT_ASSOC_LEFT, &l), TDM_OK);
    ck_assert_int_eq(crdt_relpos_from_index(d, 0, CRDT_ASSOC_LEFT, &s), TDM_OK);
    ck_assert_int_eq(crdt_relpos_from_index(d, 6, CRDT_ASSOC_RIGHT, &e), TDM_OK);
    ck_assert_int_eq(s.kind, CRDT_RELPOS_START);
    ck_assert_int_eq(e.kind, CRDT_RELPOS_END);
    ck_assert_uint_eq(resolve(d, &r), 3);
    ck_assert_uint_eq(resolve(d, &l), 3);
    /* typing at the anchor: RIGHT moves with 'd', LEFT stays after 'c' */
    ck_assert_int_eq(crdt_doc_insert(d, 3, "XY", 2), TDM_OK);
    ck_assert_uint_eq(resolve(d, &r), 5);
    ck_assert_uint_eq(resolve(d, &l), 3);
    ck_assert_uint_eq(resolve(d, &e), 8);
    ck_assert_uint_eq(resolve(d, &s), 0);
    ck_assert_int_eq(crdt_doc_insert(d, 0, "__", 2), TDM_OK);
    ck_assert_uint_eq(resolve(d, &r), 7);
    ck_assert_uint_eq(resolve(d, &l), 5);
    /* delete the anchored characters: both resolve where they stood */
    ck_assert_int_eq(crdt_doc_delete(d, 4, 5), TDM_OK); /* "__ab" + "f" */
    ck_assert_uint_eq(resolve(d, &r), 4);
    ck_assert_uint_eq(resolve(d, &l), 4);
    ck_assert_int_eq(crdt_relpos_from_index(d, 6, CRDT_ASSOC_RIGHT, &r), TDM_ERANGE);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_unknown_and_codec)
{
    crdt_doc *a = mk(1), *b = mk(2);
    ck_assert_int_eq(crdt_doc_insert(a, 0, "h\xc3\xa9llo", 6), TDM_OK);
    crdt_relpos rp, back;
    ck_assert_int_eq(crdt_relpos_from_index(a, 2, CRDT_ASSOC_RIGHT, &rp), TDM_OK);
    size_t i;
    ck_assert_int_eq(crdt_relpos_resolve(b, &rp, &i), TDM_ENOTFOUND);
    tu_sync(a, b);
    ck_assert_uint_eq(resolve(b, &rp), 2);
    tbuf t;
    tbuf_init(&t, 0);
    ck_assert_int_eq(crdt_relpos_encode(&rp, &t), TDM_OK);
    memset(&back, 0, sizeof back);
    ck_assert_int_eq(crdt_relpos_decode(&back, t.data, t.len), TDM_OK);
    ck_assert(back.client == rp.client && back.clock == rp.clock && back.kind == rp.kind &&
              back.assoc == rp.assoc);
    for (size_t n = 0; n < t.len; n++) /* every truncation fails, output untouched */
        ck_assert_int_ne(crdt_relpos_decode(&back, t.data, n), TDM_OK);
    uint8_t bad[] = {0x84, 0x07, 0x00, 0x01, 0x02}; /* kind 7 */
    ck_assert_int_eq(crdt_relpos_decode(&back, bad, sizeof bad), TDM_EMALFORMED);
    ck_assert(back.clock == rp.clock);
    tbuf_fini(&t);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

/* Three replicas edit concurrently; anchors made on replica 0 follow their
 * character on every replica while it lives and always resolve in range. */
START_TEST(test_random_concurrent)
{
    const char *pieces[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "xyz"};
    uint64_t seed = 42 + (uint64_t)_i;
    int rounds = 300;
    const char *soak = getenv("TANDEM_SOAK");
    if (soak) rounds *= atoi(soak) > 0 ? atoi(soak) : 1;
    crdt_doc *r[3] = {mk(1), mk(2), mk(3)};
    ck_assert_int_eq(crdt_doc_insert(r[0], 0, "0123456789", 10), TDM_OK);
    tu_sync(r[0], r[1]);
    tu_sync(r[0], r[2]);
    enum { NA = 8 };
    crdt_relpos anc[NA];
    uint32_t ch[NA];
    for (int k = 0; k < NA; k++) {
        size_t len = crdt_doc_len(r[0]);
        size_t at = tu_rng(&seed) % len;
        ck_assert_int_eq(crdt_relpos_from_index(r[0], at, CRDT_ASSOC_RIGHT, &anc[k]), TDM_OK);
        ch[k] = cp_at(r[0], at);
    }
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < 3; i++) {
            crdt_doc *d = r[i];
            size_t len = crdt_doc_len(d);
            if (len > 4 && tu_rng(&seed) % 3 == 0) {
                size_t at = tu_rng(&seed) % len, n = 1 + tu_rng(&seed) % 2;
                if (at + n > len) n = len - at;
                ck_assert_int_eq(crdt_doc_delete(d, at, n), TDM_OK);
            } else {
                const char *p = pieces[tu_rng(&seed) % 5];
                ck_assert_int_eq(crdt_doc_insert(d, tu_rng(&seed) % (len + 1), p, strlen(p)),
                                 TDM_OK);
            }
        }
        if (round % 3 == 2) {
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    if (i != j) tu_sync(r[i], r[j]);
        }
        for (int i = 0; i < 3; i++) {
            crdt_doc *d = r[i];
            crdt_ds *ds = crdt_ds_new();
            ck_assert_int_eq(crdt_doc_delete_set(d, ds), TDM_OK);
            for (int k = 0; k < NA; k++) {
                size_t idx;
                ck_assert_int_eq(crdt_relpos_resolve(d, &anc[k], &idx), TDM_OK);
                ck_assert_uint_le(idx, crdt_doc_len(d));
                if (crdt_ds_has(ds, anc[k].client, anc[k].clock)) continue;
                /* alive: the index names exactly the anchored character */
                crdt_relpos now;
                ck_assert_uint_lt(idx, crdt_doc_len(d));
                ck_assert_int_eq(crdt_relpos_from_index(d, idx, CRDT_ASSOC_RIGHT, &now), TDM_OK);
                ck_assert(now.client == anc[k].client && now.clock == anc[k].clock);
                ck_assert_uint_eq(cp_at(d, idx), ch[k]);
            }
            crdt_ds_free(ds);
        }
    }
    for (int i = 0; i < 3; i++) crdt_doc_free(r[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("relpos");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_basic_assoc);
    tcase_add_test(tc, test_unknown_and_codec);
    tcase_add_loop_test(tc, test_random_concurrent, 0, 4);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
