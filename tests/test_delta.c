/* test_delta.c - change deltas: every change to a document is reported as one
 * OT operation, and applying the reported operations to an editor's copy of
 * the text reproduces the document's text exactly: for local edits, remote
 * updates, released pending updates, loaded snapshots and whole real traces. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "test_util.h"
#include "gapbuf.h"
#include "ot.h"
#include "replay.h"
#include "trace.h"
#include "utf8.h"

/* An editor's copy of the text, kept only through the reported deltas. */
typedef struct shadow {
    gapbuf g;
    size_t calls, local, remote, errors;
    size_t base_mismatch;
} shadow;

static void shadow_init(shadow *s)
{
    memset(s, 0, sizeof *s);
    gapbuf_init(&s->g, 0);
}

static void on_delta(void *ctx, const ot_op *op, tdm_err err, bool local)
{
    shadow *s = ctx;
    s->calls++;
    if (err || !op) {
        s->errors++;
        return;
    }
    local ? s->local++ : s->remote++;
    if (ot_op_base_len(op) != gapbuf_len(&s->g)) s->base_mismatch++;
    size_t pos = 0, n = ot_op_count(op);
    for (size_t i = 0; i < n; i++) {
        ot_comp c;
        ot_op_get(op, i, &c);
        if (c.kind == OT_RETAIN) {
            pos += c.n;
        } else if (c.kind == OT_INSERT) {
            if (gapbuf_splice(&s->g, pos, 0, c.text, c.nbytes, c.n)) s->errors++;
            pos += c.n;
        } else {
            if (gapbuf_splice(&s->g, pos, c.n, "", 0, 0)) s->errors++;
        }
    }
}

static void assert_same(crdt_doc *d, shadow *s)
{
    tbuf t;
    tbuf_init(&t, 0);
    ck_assert_int_eq(crdt_doc_text(d, &t), TDM_OK);
    size_t n;
    const char *g = gapbuf_contents(&s->g, &n);
    ck_assert_uint_eq(n, t.len);
    ck_assert(n == 0 || memcmp(g, t.data, n) == 0);
    ck_assert_uint_eq(s->errors, 0);
    ck_assert_uint_eq(s->base_mismatch, 0);
    tbuf_fini(&t);
}

static crdt_doc *mk(uint64_t client, bool gc, shadow *s)
{
    crdt_doc_opts o = {0};
    o.client = client;
    o.gc = gc;
    crdt_doc *d = NULL;
    ck_assert_int_eq(crdt_doc_new_opts(&o, &d), TDM_OK);
    if (s) crdt_doc_observe(d, on_delta, s);
    return d;
}

START_TEST(test_local_edits)
{
    shadow s;
    shadow_init(&s);
    crdt_doc *d = mk(1, false, &s);
    ck_assert_int_eq(crdt_doc_insert(d, 0, "h\xc3\xa9llo w\xf0\x9f\x98\x80rld", 16), TDM_OK);
    ck_assert_uint_eq(s.calls, 1);
    ck_assert_uint_eq(s.local, 1);
    assert_same(d, &s);
    ck_assert_int_eq(crdt_doc_delete(d, 1, 3), TDM_OK);
    ck_assert_int_eq(crdt_doc_insert(d, 3, "\xe2\x82\xac", 3), TDM_OK);
    assert_same(d, &s);
    size_t calls = s.calls; /* refused edits and empty ones report nothing */
    ck_assert_int_eq(crdt_doc_insert(d, 99, "x", 1), TDM_ERANGE);
    ck_assert_int_eq(crdt_doc_insert(d, 0, "", 0), TDM_OK);
    ck_assert_int_eq(crdt_doc_delete(d, 0, 0), TDM_OK);
    ck_assert_uint_eq(s.calls, calls);
    uint64_t seed = 7;
    const char *pieces[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "xyz"};
    for (int i = 0; i < 3000; i++) {
        size_t len = crdt_doc_len(d);
        if (len && tu_rng(&seed) % 3 == 0) {
            size_t at = tu_rng(&seed) % len, n = 1 + tu_rng(&seed) % 4;
            if (at + n > len) n = len - at;
            ck_assert_int_eq(crdt_doc_delete(d, at, n), TDM_OK);
        } else {
            const char *p = pieces[tu_rng(&seed) % 5];
            ck_assert_int_eq(crdt_doc_insert(d, tu_rng(&seed) % (len + 1), p, strlen(p)), TDM_OK);
        }
        if (i % 100 == 0) assert_same(d, &s);
    }
    assert_same(d, &s);
    crdt_doc_free(d);
    gapbuf_fini(&s.g);
}
END_TEST

/* Three replicas (one collecting garbage) edit concurrently and merge: every
 * replica's shadow follows its text through remote changes of many positions. */
START_TEST(test_remote_merges)
{
    shadow s[3];
    crdt_doc *r[3];
    for (int i = 0; i < 3; i++) {
        shadow_init(&s[i]);
        r[i] = mk((uint64_t)i + 1, i == 2, &s[i]);
    }
    uint64_t seed = 100 + (uint64_t)_i;
    const char *pieces[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "lorem"};
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 3; i++) {
            int k = 1 + (int)(tu_rng(&seed) % 5);
            while (k--) {
                size_t len = crdt_doc_len(r[i]);
                if (len > 3 && tu_rng(&seed) % 3 == 0) {
                    size_t at = tu_rng(&seed) % len, n = 1 + tu_rng(&seed) % 3;
                    if (at + n > len) n = len - at;
                    ck_assert_int_eq(crdt_doc_delete(r[i], at, n), TDM_OK);
                } else {
                    const char *p = pieces[tu_rng(&seed) % 5];
                    ck_assert_int_eq(crdt_doc_insert(r[i], tu_rng(&seed) % (len + 1), p, strlen(p)),
                                     TDM_OK);
                }
            }
        }
        int a = (int)(tu_rng(&seed) % 3), b = (a + 1 + (int)(tu_rng(&seed) % 2)) % 3;
        tu_sync(r[a], r[b]);
        assert_same(r[b], &s[b]);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j) tu_sync(r[i], r[j]);
    for (int i = 0; i < 3; i++) {
        assert_same(r[i], &s[i]);
        ck_assert_uint_gt(s[i].remote, 0);
        crdt_doc_free(r[i]);
        gapbuf_fini(&s[i].g);
    }
}
END_TEST

/* An update that arrives before its dependency is held; the delta for the
 * update that releases it covers both. */
START_TEST(test_pending_release)
{
    shadow s;
    shadow_init(&s);
    crdt_doc *a = mk(1, false, NULL), *b = mk(2, false, &s);
    crdt_sv *sv = crdt_sv_new();
    tbuf u1, u2;
    tbuf_init(&u1, 0);
    tbuf_init(&u2, 0);
    ck_assert_int_eq(crdt_doc_insert(a, 0, "abc", 3), TDM_OK);
    ck_assert_int_eq(crdt_doc_diff(a, sv, &u1), TDM_OK);
    ck_assert_int_eq(crdt_doc_state_vector(a, sv), TDM_OK);
    ck_assert_int_eq(crdt_doc_insert(a, 1, "XY", 2), TDM_OK);
    ck_assert_int_eq(crdt_doc_delete(a, 4, 1), TDM_OK);
    ck_assert_int_eq(crdt_doc_diff(a, sv, &u2), TDM_OK);
    ck_assert_int_eq(crdt_doc_apply(b, u2.data, u2.len), TDM_OK);
    ck_assert_uint_gt(crdt_doc_pending(b), 0);
    ck_assert_uint_eq(s.calls, 0);
    ck_assert_int_eq(crdt_doc_apply(b, u1.data, u1.len), TDM_OK);
    ck_assert_uint_eq(crdt_doc_pending(b), 0);
    ck_assert_uint_eq(s.calls, 1);
    assert_same(b, &s);
    /* a snapshot load is reported as the insert of its text */
    shadow s2;
    shadow_init(&s2);
    crdt_doc *c = mk(3, false, &s2);
    tbuf snap;
    tbuf_init(&snap, 0);
    ck_assert_int_eq(crdt_doc_snapshot(b, &snap), TDM_OK);
    ck_assert_int_eq(crdt_doc_load(c, snap.data, snap.len), TDM_OK);
    ck_assert_uint_eq(s2.calls, 1);
    assert_same(c, &s2);
    tbuf_fini(&snap);
    tbuf_fini(&u1);
    tbuf_fini(&u2);
    crdt_sv_free(sv);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(c);
    gapbuf_fini(&s.g);
    gapbuf_fini(&s2.g);
}
END_TEST

static trace *load_trace(const char *rel)
{
    char path[4096];
    trace *t = NULL;
    ck_assert_ptr_nonnull(trace_path(path, sizeof path, rel));
    ck_assert_int_eq(trace_load(path, &t), TDM_OK);
    return t;
}

static void assert_end(shadow *s, const trace *t)
{
    size_t n;
    const char *g = gapbuf_contents(&s->g, &n);
    ck_assert_uint_eq(n, t->end_len);
    ck_assert(memcmp(g, t->end_content, n) == 0);
    ck_assert_uint_eq(s->errors, 0);
    ck_assert_uint_eq(s->base_mismatch, 0);
}

/* automerge-paper: local deltas on the editing replica and remote deltas on
 * the receiving one both rebuild the final text. */
START_TEST(test_trace_sequential)
{
    trace *t = load_trace("sequential_traces/automerge-paper.json.gz");
    shadow sl, sr;
    shadow_init(&sl);
    shadow_init(&sr);
    crdt_doc *a = mk(1, false, &sl), *b = mk(2, false, &sr);
    replay_info info;
    ck_assert_int_eq(replay_sequential_sync(t, a, b, &info), TDM_OK);
    assert_end(&sl, t);
    assert_end(&sr, t);
    ck_assert_uint_eq(sl.local, t->npatches + (t->start_content[0] != 0) + 0);
    ck_assert_uint_eq(sr.local, 0);
    crdt_doc_free(a);
    crdt_doc_free(b);
    gapbuf_fini(&sl.g);
    gapbuf_fini(&sr.g);
    trace_free(t);
}
END_TEST

/* friendsforever: every fork merged back into the universe is a remote delta */
START_TEST(test_trace_concurrent)
{
    trace *t = load_trace("concurrent_traces/friendsforever.json.gz");
    shadow s;
    shadow_init(&s);
    crdt_doc *uni = NULL;
    replay_info info;
    ck_assert_int_eq(replay_concurrent_observed(t, &uni, &info, on_delta, &s), TDM_OK);
    assert_end(&s, t);
    ck_assert_uint_gt(s.remote, 1000);
    crdt_doc_free(uni);
    gapbuf_fini(&s.g);
    trace_free(t);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("delta");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_local_edits);
    tcase_add_loop_test(tc, test_remote_merges, 0, 3);
    tcase_add_test(tc, test_pending_release);
    tcase_add_test(tc, test_trace_sequential);
    tcase_add_test(tc, test_trace_concurrent);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
