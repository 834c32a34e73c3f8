/* test_doc_ot.c - the OT bridge: OT operations applied to a CRDT document as
 * local edits, and the OT operation between any two versions of a document. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "test_util.h"
#include "ot.h"

static crdt_doc *mk(uint64_t client)
{
    crdt_doc *d = NULL;
    ck_assert_int_eq(crdt_doc_new(client, &d), TDM_OK);
    return d;
}

typedef struct seen {
    int calls;
    ot_op *last;
} seen;

static void observe(void *ctx, const ot_op *op, tdm_err err, bool local)
{
    seen *s = ctx;
    ck_assert_int_eq(err, TDM_OK);
    ck_assert(local);
    s->calls++;
    ot_op_free(s->last);
    ck_assert_int_eq(ot_op_clone(op, &s->last), TDM_OK);
}

START_TEST(test_apply_ot)
{
    crdt_doc *d = mk(1);
    ck_assert_int_eq(crdt_doc_insert(d, 0, "h\xc3\xa9llo world", 12), TDM_OK);
    seen s = {0};
    crdt_doc_observe(d, observe, &s);
    ot_op *op;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 1), TDM_OK);
    ck_assert_int_eq(ot_op_delete(op, 1), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "\xe2\x82\xac", 3), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 4), TDM_OK);
    ck_assert_int_eq(ot_op_delete(op, 5), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "there\xf0\x9f\x98\x80", 9), TDM_OK);
    ck_assert_int_eq(crdt_doc_apply_ot(d, op), TDM_OK);
    size_t n;
    char *t = tu_text(d, &n);
    ck_assert_str_eq(t, "h\xe2\x82\xacllo there\xf0\x9f\x98\x80");
    free(t);
    ck_assert_int_eq(s.calls, 1); /* one change, reported as the operation itself */
    ck_assert(ot_op_equal(s.last, op));
    /* wrong base length: refused, nothing changes, nothing reported */
    ck_assert_int_eq(crdt_doc_apply_ot(d, op), TDM_EBASELEN);
    t = tu_text(d, &n);
    ck_assert_str_eq(t, "h\xe2\x82\xacllo there\xf0\x9f\x98\x80");
    free(t);
    ck_assert_int_eq(s.calls, 1);
    ot_op_free(op);
    ot_op_free(s.last);
    crdt_doc_free(d);
}
END_TEST

/* an OT client's edits carry its own ids, and replicas merge them normally */
START_TEST(test_apply_ot_as)
{
    crdt_doc *d = mk(1), *e = mk(2);
    ck_assert_int_eq(crdt_doc_insert(d, 0, "abc", 3), TDM_OK);
    ot_op *op;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 1), TDM_OK);
    ck_assert_int_eq(ot_op_delete(op, 1), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "XY", 2), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 1), TDM_OK);
    ck_assert_int_eq(crdt_doc_apply_ot_as(d, 77, op), TDM_OK);
    crdt_sv *sv = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_state_vector(d, sv), TDM_OK);
    ck_assert_uint_eq(crdt_sv_get(sv, 1), 3);  /* the document's own edits */
    ck_assert_uint_eq(crdt_sv_get(sv, 77), 3); /* one delete + two inserts as 77 */
    /* the document's own client still edits with its own ids */
    ck_assert_int_eq(crdt_doc_insert(d, 0, ">", 1), TDM_OK);
    ck_assert_int_eq(crdt_doc_state_vector(d, sv), TDM_OK);
    ck_assert_uint_eq(crdt_sv_get(sv, 1), 4);
    ck_assert_int_eq(crdt_doc_apply_ot_as(d, 77, op), TDM_EBASELEN);
    tu_sync(d, e);
    size_t n;
    char *t = tu_text(e, &n);
    ck_assert_str_eq(t, ">aXYc");
    free(t);
    crdt_sv_free(sv);
    ot_op_free(op);
    crdt_doc_free(d);
    crdt_doc_free(e);
}
END_TEST

enum { NV = 120 };

/* Versions seen by three concurrently editing replicas; the universe document
 * that merges them all must produce an operation between any two of them. */
START_TEST(test_between_random)
{
    uint64_t seed = 900 + (uint64_t)_i;
    const char *pieces[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "word"};
    crdt_doc *r[3] = {mk(1), mk(2), mk(3)}, *uni = mk(9);
    crdt_sv *sv[NV];
    char *txt[NV];
    size_t len[NV];
    int nv = 0;
    for (int round = 0; nv < NV; round++) {
        int i = (int)(tu_rng(&seed) % 3);
        size_t L = crdt_doc_len(r[i]);
        if (L > 3 && tu_rng(&seed) % 3 == 0) {
            size_t at = tu_rng(&seed) % L, k = 1 + tu_rng(&seed) % 4;
            if (at + k > L) k = L - at;
            ck_assert_int_eq(crdt_doc_delete(r[i], at, k), TDM_OK);
        } else {
            const char *p = pieces[tu_rng(&seed) % 5];
            ck_assert_int_eq(crdt_doc_insert(r[i], tu_rng(&seed) % (L + 1), p, strlen(p)), TDM_OK);
        }
        if (tu_rng(&seed) % 4 == 0) tu_sync(r[i], r[(i + 1) % 3]);
        if (round % 3 == 0) { /* record this replica's version */
            sv[nv] = crdt_sv_new();
            ck_assert_int_eq(crdt_doc_state_vector(r[i], sv[nv]), TDM_OK);
            txt[nv] = tu_text(r[i], &len[nv]);
            nv++;
        }
    }
    for (int i = 0; i < 3; i++) tu_sync(r[i], uni);
    for (int k = 0; k < 400; k++) {
        int a = (int)(tu_rng(&seed) % NV), b = (int)(tu_rng(&seed) % NV);
        ot_op *op = NULL;
        ck_assert_int_eq(crdt_doc_ot_between(uni, sv[a], sv[b], &op), TDM_OK);
        tbuf out;
        tbuf_init(&out, 0);
        ck_assert_int_eq(ot_op_apply(op, txt[a], len[a], &out), TDM_OK);
        ck_assert_uint_eq(out.len, len[b]);
        ck_assert(len[b] == 0 || memcmp(out.data, txt[b], len[b]) == 0);
        tbuf_fini(&out);
        ot_op_free(op);
    }
    /* a version the document does not hold */
    crdt_sv *far = crdt_sv_new();
    ck_assert_int_eq(crdt_sv_set(far, 77, 5), TDM_OK);
    ot_op *op = NULL;
    ck_assert_int_eq(crdt_doc_ot_between(uni, sv[0], far, &op), TDM_ENOTFOUND);
    ck_assert_ptr_null(op);
    crdt_sv_free(far);
    for (int i = 0; i < NV; i++) {
        crdt_sv_free(sv[i]);
        free(txt[i]);
    }
    for (int i = 0; i < 3; i++) crdt_doc_free(r[i]);
    crdt_doc_free(uni);
}
END_TEST

/* After garbage collection, deleted text is gone: asking for an operation that
 * would have to re-insert it is refused; the other direction still works. */
START_TEST(test_between_gc)
{
    crdt_doc *d = mk(1);
    crdt_sv *v0 = crdt_sv_new(), *v1 = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_insert(d, 0, "abcdef", 6), TDM_OK);
    ck_assert_int_eq(crdt_doc_state_vector(d, v0), TDM_OK);
    ck_assert_int_eq(crdt_doc_delete(d, 1, 3), TDM_OK);
    ck_assert_int_eq(crdt_doc_state_vector(d, v1), TDM_OK);
    ot_op *op = NULL;
    ck_assert_int_eq(crdt_doc_ot_between(d, v1, v0, &op), TDM_OK); /* re-inserts "bcd" */
    tbuf out;
    tbuf_init(&out, 0);
    ck_assert_int_eq(ot_op_apply(op, "aef", 3, &out), TDM_OK);
    ck_assert(out.len == 6 && memcmp(out.data, "abcdef", 6) == 0);
    ot_op_free(op);
    ck_assert_int_eq(crdt_doc_gc(d), TDM_OK);
    op = NULL;
    ck_assert_int_eq(crdt_doc_ot_between(d, v1, v0, &op), TDM_ENOTFOUND);
    ck_assert_int_eq(crdt_doc_ot_between(d, v0, v1, &op), TDM_OK);
    tbuf_reset(&out);
    ck_assert_int_eq(ot_op_apply(op, "abcdef", 6, &out), TDM_OK);
    ck_assert(out.len == 3 && memcmp(out.data, "aef", 3) == 0);
    ot_op_free(op);
    tbuf_fini(&out);
    crdt_sv_free(v0);
    crdt_sv_free(v1);
    crdt_doc_free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("doc_ot");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_apply_ot);
    tcase_add_test(tc, test_apply_ot_as);
    tcase_add_loop_test(tc, test_between_random, 0, 4);
    tcase_add_test(tc, test_between_gc);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
