/* test_replay.c - the real traces replayed through the CRDT (crdt_doc API):
 * sequential as local edits (with and without a synced second replica),
 * concurrent by fork/merge (tests/support/replay.h); each must end at
 * endContent. Hand-made concurrent traces cover merges of three agents,
 * UTF-8 positions and a trace the fork/merge replay must refuse. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "doc.h"
#include "ref_replay.h"
#include "replay.h"
#include "trace.h"

static trace *load(const char *rel)
{
    char path[4096];
    trace *t = NULL;
    ck_assert_ptr_nonnull(trace_path(path, sizeof path, rel));
    tdm_err err = trace_load(path, &t);
    ck_assert_msg(err == TDM_OK, "%s: %s", path, tdm_err_name(err));
    return t;
}

/* Load a trace from JSON text through a temp file. */
static trace *load_json(const char *json)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tandem-replay-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(json);
    ck_assert_int_eq(write(fd, json, n), (ssize_t)n);
    ck_assert_int_eq(close(fd), 0);
    trace *t = NULL;
    tdm_err err = trace_load(path, &t);
    unlink(path);
    ck_assert_msg(err == TDM_OK, "hand-made trace: %s", tdm_err_name(err));
    return t;
}

static void assert_text(crdt_doc *doc, const trace *t)
{
    tbuf out;
    tbuf_init(&out, 0);
    ck_assert_int_eq(crdt_doc_text(doc, &out), TDM_OK);
    ck_assert_uint_eq(out.len, t->end_len);
    ck_assert_msg(out.len == 0 || memcmp(out.data, t->end_content, out.len) == 0,
                  "text differs from endContent");
    ck_assert_uint_eq(crdt_doc_len(doc), t->end_cps);
    tbuf_fini(&out);
}

static const char *const sequential[] = {
    "sequential_traces/automerge-paper.json.gz",
    "sequential_traces/friendsforever_flat.json.gz",
};

START_TEST(test_sequential)
{
    trace *t = load(sequential[_i]);
    crdt_doc *doc = NULL;
    ck_assert_int_eq(crdt_doc_new(1, &doc), TDM_OK);
    tdm_err err = replay_sequential(t, doc);
    ck_assert_msg(err == TDM_OK, "replay: %s", tdm_err_name(err));
    assert_text(doc, t);
    crdt_doc_free(doc);
    trace_free(t);
}
END_TEST

START_TEST(test_sequential_sync)
{
    trace *t = load(sequential[_i]);
    crdt_doc *doc = NULL, *rep = NULL;
    replay_info info;
    ck_assert_int_eq(crdt_doc_new(1, &doc), TDM_OK);
    ck_assert_int_eq(crdt_doc_new(2, &rep), TDM_OK);
    tdm_err err = replay_sequential_sync(t, doc, rep, &info);
    ck_assert_msg(err == TDM_OK, "%s", info.detail);
    ck_assert_uint_gt(info.update_bytes, 0);
    assert_text(doc, t);
    assert_text(rep, t);
    crdt_doc_free(doc);
    crdt_doc_free(rep);
    trace_free(t);
}
END_TEST

static void replay_conc_and_check(const trace *t)
{
    crdt_doc *doc = NULL;
    replay_info info;
    tdm_err err = replay_concurrent(t, &doc, &info);
    ck_assert_msg(err == TDM_OK, "%s", info.detail);
    assert_text(doc, t);
    crdt_doc_free(doc);
}

START_TEST(test_concurrent_friendsforever)
{
    trace *t = load("concurrent_traces/friendsforever.json.gz");
    crdt_doc *doc = NULL;
    replay_info info;
    tdm_err err = replay_concurrent(t, &doc, &info);
    ck_assert_msg(err == TDM_OK, "%s", info.detail);
    ck_assert_uint_gt(info.bringups, 0); /* the agents did merge each other's work */
    assert_text(doc, t);
    crdt_doc_free(doc);
    trace_free(t);
}
END_TEST

/* Three agents fork from "héllo", edit concurrently (different places), then
 * merge; UTF-8 makes code points differ from bytes. The naive reference must
 * agree with the literal end text, so the trace itself is checked too. */
static const char three_agents[] =
    "{\"kind\":\"concurrent\",\"numAgents\":3,"
    "\"endContent\":\">\xc4\xa4\xc3\xa9ll w\xc3\xb6rld!\",\"txns\":["
    "{\"parents\":[],\"agent\":0,\"patches\":[[0,0,\"h\xc3\xa9llo\"]]},"
    "{\"parents\":[0],\"agent\":1,\"patches\":[[5,0,\" w\xc3\xb6rld\"]]},"
    "{\"parents\":[0],\"agent\":2,\"patches\":[[0,1,\"\xc4\xa4\"]]},"
    "{\"parents\":[0],\"agent\":0,\"patches\":[[4,1,\"\"]]},"
    "{\"parents\":[1,2,3],\"agent\":2,\"patches\":[[10,0,\"!\"]]},"
    "{\"parents\":[4,1],\"agent\":1,\"patches\":[[0,0,\">\"]]}]}";

START_TEST(test_concurrent_three_agents)
{
    trace *t = load_json(three_agents);
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(ref_replay(t, &text, &len), TDM_OK);
    ck_assert_str_eq(text, t->end_content);
    free(text);
    replay_conc_and_check(t);
    trace_free(t);
}
END_TEST

/* Agent 0's txn 3 does not see its own txn 2: agent 0's replica already
 * holds more than txn 3's parents, and reusing client id 1 would repeat
 * clocks, so the fork/merge replay must refuse the trace. */
static const char unordered_agent[] =
    "{\"kind\":\"concurrent\",\"numAgents\":2,\"endContent\":\"Hell world\",\"txns\":["
    "{\"parents\":[],\"agent\":0,\"patches\":[[0,0,\"hello\"]]},"
    "{\"parents\":[0],\"agent\":1,\"patches\":[[5,0,\" world\"]]},"
    "{\"parents\":[1],\"agent\":0,\"patches\":[[0,1,\"H\"]]},"
    "{\"parents\":[0],\"agent\":0,\"patches\":[[4,1,\"\"]]},"
    "{\"parents\":[2,3],\"agent\":1,\"patches\":[]}]}";

START_TEST(test_concurrent_unordered_agent)
{
    trace *t = load_json(unordered_agent);
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(ref_replay(t, &text, &len), TDM_OK); /* valid as an event graph */
    ck_assert_str_eq(text, "Hell world");
    free(text);
    crdt_doc *doc = NULL;
    replay_info info;
    ck_assert_int_eq(replay_concurrent(t, &doc, &info), TDM_EMALFORMED);
    ck_assert_ptr_null(doc);
    ck_assert_ptr_nonnull(strstr(info.detail, "txn 3"));
    trace_free(t);
}
END_TEST

START_TEST(test_concurrent_rejects_sequential)
{
    trace *t = load(sequential[1]);
    crdt_doc *doc = NULL;
    ck_assert_int_eq(replay_concurrent(t, &doc, NULL), TDM_EINVAL);
    ck_assert_ptr_null(doc);
    trace_free(t);
}
END_TEST

static Suite *replay_suite(void)
{
    Suite *s = suite_create("replay");
    TCase *tc = tcase_create("crdt");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_sequential, 0, 2);
    tcase_add_loop_test(tc, test_sequential_sync, 0, 2);
    tcase_add_test(tc, test_concurrent_friendsforever);
    tcase_add_test(tc, test_concurrent_three_agents);
    tcase_add_test(tc, test_concurrent_unordered_agent);
    tcase_add_test(tc, test_concurrent_rejects_sequential);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(replay_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
