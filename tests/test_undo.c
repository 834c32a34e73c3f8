/* test_undo.c - undo/redo of local edits: grouping by capture window, text
 * restored where it stood, remote edits made in between survive, and three
 * replicas undoing and redoing while they sync converge. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "test_util.h"
#include "undo.h"

static crdt_doc *mk(uint64_t client, bool gc)
{
    crdt_doc_opts o = {0};
    o.client = client;
    o.gc = gc;
    crdt_doc *d = NULL;
    ck_assert_int_eq(crdt_doc_new_opts(&o, &d), TDM_OK);
    return d;
}

static crdt_undo *um_for(crdt_doc *d)
{
    crdt_undo *um = NULL;
    ck_assert_int_eq(crdt_undo_new(d, NULL, &um), TDM_OK);
    return um;
}

static void expect(crdt_doc *d, const char *want)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(crdt_doc_text(d, &b), TDM_OK);
    ck_assert_int_eq(tbuf_append(&b, "", 1), TDM_OK);
    ck_assert_str_eq((const char *)b.data, want);
    tbuf_fini(&b);
}

static void type(crdt_doc *d, crdt_undo *um, size_t pos, const char *s, uint64_t t0)
{
    for (size_t i = 0; s[i]; i++) {
        ck_assert_int_eq(crdt_doc_insert(d, pos + i, s + i, 1), TDM_OK);
        ck_assert_int_eq(crdt_undo_record(um, t0 + i * 100), TDM_OK);
    }
}

START_TEST(test_grouping_and_redo)
{
    crdt_doc *d = mk(1, false);
    crdt_undo *um = um_for(d);
    bool did;
    type(d, um, 0, "hello", 0);     /* keystrokes 100 ms apart: one step */
    type(d, um, 5, " world", 5000); /* a pause: a second step */
    ck_assert_uint_eq(crdt_undo_depth(um), 2);
    ck_assert_int_eq(crdt_undo_undo(um, 9000, &did), TDM_OK);
    ck_assert(did);
    expect(d, "hello");
    ck_assert_int_eq(crdt_undo_undo(um, 9001, &did), TDM_OK);
    expect(d, "");
    ck_assert_int_eq(crdt_undo_undo(um, 9002, &did), TDM_OK);
    ck_assert(!did);
    ck_assert_uint_eq(crdt_undo_redo_depth(um), 2);
    ck_assert_int_eq(crdt_undo_redo(um, 9003, &did), TDM_OK);
    expect(d, "hello");
    ck_assert_int_eq(crdt_undo_redo(um, 9004, &did), TDM_OK);
    expect(d, "hello world");
    ck_assert_int_eq(crdt_undo_redo(um, 9005, &did), TDM_OK);
    ck_assert(!did);
    /* undo, then a new edit: the redo stack is gone */
    ck_assert_int_eq(crdt_undo_undo(um, 9100, &did), TDM_OK);
    expect(d, "hello");
    ck_assert_int_eq(crdt_doc_insert(d, 0, ">", 1), TDM_OK);
    ck_assert_int_eq(crdt_undo_record(um, 9200), TDM_OK);
    ck_assert_uint_eq(crdt_undo_redo_depth(um), 0);
    ck_assert_int_eq(crdt_undo_undo(um, 9300, &did), TDM_OK);
    expect(d, "hello");
    /* stop_capturing splits even inside the window */
    type(d, um, 5, "ab", 20000);
    crdt_undo_stop_capturing(um);
    type(d, um, 7, "cd", 20300);
    ck_assert_int_eq(crdt_undo_undo(um, 20500, &did), TDM_OK);
    expect(d, "helloab");
    crdt_undo_free(um);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_remote_edits_survive)
{
    crdt_doc *a = mk(1, false), *b = mk(2, false);
    crdt_undo *um = um_for(a);
    bool did;
    ck_assert_int_eq(crdt_doc_insert(a, 0, "abcdef", 6), TDM_OK);
    ck_assert_int_eq(crdt_undo_record(um, 0), TDM_OK);
    tu_sync(a, b);
    ck_assert_int_eq(crdt_doc_delete(a, 2, 2), TDM_OK); /* "abef" */
    ck_assert_int_eq(crdt_undo_record(um, 1000), TDM_OK);
    ck_assert_int_eq(crdt_doc_insert(b, 0, "X", 1), TDM_OK);
    ck_assert_int_eq(crdt_doc_insert(b, 7, "Y", 1), TDM_OK);
    ck_assert_int_eq(crdt_doc_insert(b, 4, "\xc3\xa9", 2), TDM_OK); /* between c and d */
    tu_sync(b, a);
    expect(a, "Xab\xc3\xa9"
              "efY");
    ck_assert_int_eq(crdt_undo_undo(um, 2000, &did), TDM_OK); /* "cd" back where it stood */
    expect(a, "Xabc\xc3\xa9"
              "defY");
    ck_assert_int_eq(crdt_undo_undo(um, 2001, &did),
                     TDM_OK); /* "abcdef" removed, remote text stays */
    expect(a, "X\xc3\xa9Y");
    tu_sync(a, b);
    expect(b, "X\xc3\xa9Y");
    ck_assert_int_eq(crdt_undo_redo(um, 2002, &did), TDM_OK);
    ck_assert_int_eq(crdt_undo_redo(um, 2003, &did), TDM_OK);
    expect(a, "Xab\xc3\xa9"
              "efY");
    tu_sync(a, b);
    expect(b, "Xab\xc3\xa9"
              "efY");
    crdt_undo_free(um);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_gc_cannot_restore)
{
    crdt_doc *d = mk(1, true);
    crdt_undo *um = um_for(d);
    bool did;
    ck_assert_int_eq(crdt_doc_insert(d, 0, "abc", 3), TDM_OK);
    ck_assert_int_eq(crdt_undo_record(um, 0), TDM_OK);
    ck_assert_int_eq(crdt_doc_delete(d, 0, 1), TDM_OK);
    ck_assert_int_eq(crdt_undo_record(um, 1000), TDM_OK);
    ck_assert_int_eq(crdt_undo_undo(um, 2000, &did), TDM_ENOTFOUND);
    expect(d, "bc");
    ck_assert_int_eq(crdt_undo_undo(um, 2001, &did), TDM_OK); /* inserts still undo */
    expect(d, "");
    crdt_undo_free(um);
    crdt_doc_free(d);
}
END_TEST

/* Three replicas edit, undo and redo at random while syncing at random; an
 * undo immediately followed by a redo with nothing in between restores the
 * text; at the end everyone converges. */
START_TEST(test_three_replicas)
{
    uint64_t seed = 4242 + (uint64_t)_i, now = 0;
    const char *pieces[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "xyz"};
    crdt_doc *r[3];
    crdt_undo *u[3];
    for (int i = 0; i < 3; i++) {
        r[i] = mk((uint64_t)i + 1, false);
        u[i] = um_for(r[i]);
    }
    int rounds = 400;
    const char *soak = getenv("TANDEM_SOAK");
    if (soak && atoi(soak) > 0) rounds *= atoi(soak);
    for (int round = 0; round < rounds; round++) {
        now += 1 + tu_rng(&seed) % 900;
        int i = (int)(tu_rng(&seed) % 3);
        crdt_doc *d = r[i];
        uint64_t what = tu_rng(&seed) % 10;
        bool did;
        if (what < 5) {
            size_t len = crdt_doc_len(d);
            const char *p = pieces[tu_rng(&seed) % 5];
            ck_assert_int_eq(crdt_doc_insert(d, tu_rng(&seed) % (len + 1), p, strlen(p)), TDM_OK);
            ck_assert_int_eq(crdt_undo_record(u[i], now), TDM_OK);
        } else if (what < 7) {
            size_t len = crdt_doc_len(d);
            if (len) {
                size_t at = tu_rng(&seed) % len, n = 1 + tu_rng(&seed) % 3;
                if (at + n > len) n = len - at;
                ck_assert_int_eq(crdt_doc_delete(d, at, n), TDM_OK);
                ck_assert_int_eq(crdt_undo_record(u[i], now), TDM_OK);
            }
        } else if (what < 9) {
            char *before = tu_text(d, NULL);
            size_t redo_before = crdt_undo_redo_depth(u[i]);
            ck_assert_int_eq(crdt_undo_undo(u[i], now, &did), TDM_OK);
            if (crdt_undo_redo_depth(u[i]) > redo_before) {
                /* redo right away restores the text exactly */
                ck_assert_int_eq(crdt_undo_redo(u[i], now, &did), TDM_OK);
                ck_assert(did);
                char *after = tu_text(d, NULL);
                ck_assert_str_eq(after, before);
                free(after);
                ck_assert_int_eq(crdt_undo_undo(u[i], now, &did), TDM_OK);
            } else { /* the step had nothing left to revert */
                char *after = tu_text(d, NULL);
                ck_assert_str_eq(after, before);
                free(after);
            }
            free(before);
        } else {
            ck_assert_int_eq(crdt_undo_redo(u[i], now, &did), TDM_OK);
        }
        if (tu_rng(&seed) % 3 == 0) tu_sync(r[i], r[(i + 1 + tu_rng(&seed) % 2) % 3]);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j) tu_sync(r[i], r[j]);
    char *t0 = tu_text(r[0], NULL);
    for (int i = 1; i < 3; i++) {
        char *t = tu_text(r[i], NULL);
        ck_assert_str_eq(t, t0);
        free(t);
    }
    free(t0);
    for (int i = 0; i < 3; i++) {
        crdt_undo_free(u[i]);
        crdt_doc_free(r[i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("undo");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_grouping_and_redo);
    tcase_add_test(tc, test_remote_edits_survive);
    tcase_add_test(tc, test_gc_cannot_restore);
    tcase_add_loop_test(tc, test_three_replicas, 0, 6);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
