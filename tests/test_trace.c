/* test_trace.c - the trace reader, the gap buffer and the naive reference
 * replay against the traces in $TANDEM_TRACES and against hand-made files. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "trace.h"
#include "gapbuf.h"
#include "ref_replay.h"

/* The stats table of tests/traces/README.md. */
typedef struct expect {
    const char *rel;
    bool concurrent;
    uint32_t agents, txns;
    size_t patches;
    uint64_t ins, del;
    size_t final_len;
} expect;

static const expect traces[] = {
    {"sequential_traces/automerge-paper.json.gz", false, 1, 259778, 259778, 182315, 77463, 104852},
    {"sequential_traces/friendsforever_flat.json.gz", false, 1, 26078, 26078, 23720, 2358, 21362},
    {"concurrent_traces/friendsforever.json.gz", true, 2, 26078, 26078, 23720, 2358, 21362},
};
#define NTRACES 3
#define CONC    2 /* index of the concurrent trace */

/* Loaded once before the tests fork (unchecked fixture). */
static trace *loaded[NTRACES];
static tdm_err load_err[NTRACES];

static void load_all(void)
{
    char path[4096];
    for (int i = 0; i < NTRACES; i++) {
        load_err[i] = TDM_ENOTFOUND;
        if (trace_path(path, sizeof path, traces[i].rel))
            load_err[i] = trace_load(path, &loaded[i]);
    }
}

static void free_all(void)
{
    for (int i = 0; i < NTRACES; i++) {
        trace_free(loaded[i]);
        loaded[i] = NULL;
    }
}

static const trace *get(int i)
{
    ck_assert_msg(load_err[i] == TDM_OK, "loading %s: %s", traces[i].rel,
                  tdm_err_name(load_err[i]));
    ck_assert_ptr_nonnull(loaded[i]);
    return loaded[i];
}

static size_t cps_of(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

START_TEST(test_counts)
{
    const expect *e = &traces[_i];
    const trace *t = get(_i);
    ck_assert_int_eq(t->concurrent, e->concurrent);
    ck_assert_uint_eq(t->num_agents, e->agents);
    ck_assert_uint_eq(t->ntxns, e->txns);
    ck_assert_uint_eq(t->npatches, e->patches);
    ck_assert_uint_eq(t->start_len, 0);
    /* recount from the patches themselves, not from the loader's totals */
    size_t patches = 0;
    uint64_t ins = 0, del = 0;
    for (uint32_t i = 0; i < t->ntxns; i++) {
        const trace_txn *tx = &t->txns[i];
        ck_assert_uint_ge(tx->npatches, 1);
        for (uint32_t k = 0; k < tx->npatches; k++) {
            const trace_patch *p = &tx->patches[k];
            ck_assert_uint_eq(strlen(p->ins), p->ins_len);
            ck_assert_uint_eq(cps_of(p->ins, p->ins_len), p->ins_cps);
            ck_assert(p->del > 0 || p->ins_len > 0);
            ins += p->ins_cps;
            del += p->del;
        }
        patches += tx->npatches;
    }
    ck_assert_uint_eq(patches, e->patches);
    ck_assert_uint_eq(ins, e->ins);
    ck_assert_uint_eq(del, e->del);
    ck_assert_uint_eq(t->ins_cps, e->ins);
    ck_assert_uint_eq(t->del_cps, e->del);
    /* the final length is what was inserted minus what was deleted */
    ck_assert_uint_eq(ins - del, e->final_len);
    ck_assert_uint_eq(t->end_cps, e->final_len);
    ck_assert_uint_eq(cps_of(t->end_content, t->end_len), e->final_len);
    ck_assert_uint_eq(t->end_len, e->final_len); /* all ASCII */
    ck_assert_uint_eq(strlen(t->end_content), t->end_len);
}
END_TEST

/* automerge-paper: every patch is one character inserted or deleted. */
START_TEST(test_automerge_single_chars)
{
    const trace *t = get(0);
    for (uint32_t i = 0; i < t->ntxns; i++) {
        ck_assert_uint_eq(t->txns[i].npatches, 1);
        const trace_patch *p = &t->txns[i].patches[0];
        ck_assert((p->del == 1 && p->ins_len == 0) || (p->del == 0 && p->ins_cps == 1));
    }
}
END_TEST

/* README: 2 agents with 12,124 / 13,954 txns, 2,258 merges, parents earlier. */
START_TEST(test_concurrent_shape)
{
    const trace *t = get(CONC);
    uint32_t per_agent[2] = {0, 0}, merges = 0;
    ck_assert_uint_eq(t->txns[0].nparents, 0);
    for (uint32_t i = 0; i < t->ntxns; i++) {
        const trace_txn *tx = &t->txns[i];
        ck_assert_uint_lt(tx->agent, 2);
        per_agent[tx->agent]++;
        if (i > 0) ck_assert_uint_ge(tx->nparents, 1);
        ck_assert_uint_le(tx->nparents, 2);
        merges += tx->nparents == 2;
        for (uint32_t k = 0; k < tx->nparents; k++) ck_assert_uint_lt(tx->parents[k], i);
    }
    ck_assert_uint_eq(per_agent[0], 12124);
    ck_assert_uint_eq(per_agent[1], 13954);
    ck_assert_uint_eq(merges, 2258);
}
END_TEST

START_TEST(test_gapbuf_replay)
{
    const trace *t = get(_i);
    gapbuf g;
    gapbuf_init(&g, 0);
    ck_assert_int_eq(gapbuf_splice(&g, 0, 0, t->start_content, t->start_len, 0), TDM_OK);
    for (uint32_t i = 0; i < t->ntxns; i++) {
        for (uint32_t k = 0; k < t->txns[i].npatches; k++) {
            const trace_patch *p = &t->txns[i].patches[k];
            tdm_err err = gapbuf_splice(&g, p->pos, p->del, p->ins, p->ins_len, p->ins_cps);
            ck_assert_msg(err == TDM_OK, "txn %u: %s", i, tdm_err_name(err));
        }
    }
    size_t len;
    const char *s = gapbuf_contents(&g, &len);
    ck_assert_uint_eq(gapbuf_len(&g), t->end_cps);
    ck_assert_uint_eq(len, t->end_len);
    ck_assert(memcmp(s, t->end_content, len) == 0);
    gapbuf_fini(&g);
}
END_TEST

/* Model: an array of code points, checked against the gap buffer's bytes. */
static size_t encode_cp(uint32_t c, char *o)
{
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xc0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3f)), 2;
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | c >> 12);
        o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | c >> 18);
    o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static void check_model(gapbuf *g, const uint32_t *m, size_t n)
{
    static char want[1 << 20];
    size_t w = 0, len;
    for (size_t i = 0; i < n; i++) w += encode_cp(m[i], want + w);
    const char *s = gapbuf_contents(g, &len);
    ck_assert_uint_eq(gapbuf_len(g), n);
    ck_assert_uint_eq(len, w);
    ck_assert(memcmp(s, want, w) == 0);
}

START_TEST(test_gapbuf_utf8_model)
{
    static const uint32_t alphabet[] = {'a', 'b', 'z', 0xe9, 0x3b1, 0x20ac, 0x4e2d, 0x1f600};
    static uint32_t model[200000];
    size_t n = 0;
    uint64_t seed = 42;
    gapbuf g;
    gapbuf_init(&g, 0);
    for (int op = 0; op < 40000; op++) {
        bool ascii_only = (op / 3000) % 2 == 1; /* phases that return to the fast path */
        if (op % 3000 == 0) {                   /* drop everything now and then */
            ck_assert_int_eq(gapbuf_splice(&g, 0, n, "", 0, 0), TDM_OK);
            n = 0;
        }
        size_t pos = n ? rnd(&seed) % (n + 1) : 0;
        size_t del = rnd(&seed) % 3 == 0 ? rnd(&seed) % 4 : 0;
        if (del > n - pos) del = n - pos;
        uint32_t cps[6];
        char ins[24];
        size_t k = rnd(&seed) % 6, bytes = 0;
        for (size_t j = 0; j < k; j++) {
            cps[j] = alphabet[rnd(&seed) % (ascii_only ? 3 : 8)];
            bytes += encode_cp(cps[j], ins + bytes);
        }
        if (n - del + k > sizeof model / sizeof *model) k = bytes = 0;
        ck_assert_int_eq(gapbuf_splice(&g, pos, del, ins, bytes, k), TDM_OK);
        memmove(model + pos + k, model + pos + del, (n - pos - del) * sizeof *model);
        memcpy(model + pos, cps, k * sizeof *model);
        n = n - del + k;
        if (op % 97 == 0) check_model(&g, model, n);
    }
    check_model(&g, model, n);
    gapbuf_fini(&g);
}
END_TEST

START_TEST(test_gapbuf_range)
{
    gapbuf g;
    gapbuf_init(&g, 0);
    ck_assert_int_eq(gapbuf_splice(&g, 0, 0, "h\xc3\xa9llo", 6, 5), TDM_OK);
    ck_assert_int_eq(gapbuf_splice(&g, 6, 0, "x", 1, 1), TDM_ERANGE);
    ck_assert_int_eq(gapbuf_splice(&g, 4, 2, "", 0, 0), TDM_ERANGE);
    ck_assert_int_eq(gapbuf_splice(&g, 1, 1, "e", 1, 1), TDM_OK); /* é -> e */
    size_t len;
    const char *s = gapbuf_contents(&g, &len);
    ck_assert_uint_eq(len, 5);
    ck_assert(memcmp(s, "hello", 5) == 0);
    gapbuf_fini(&g);
    gapbuf_init(&g, 8); /* the hard cap */
    ck_assert_int_eq(gapbuf_splice(&g, 0, 0, "123456789", 9, 9), TDM_ETOOBIG);
    ck_assert_uint_eq(gapbuf_len(&g), 0);
    gapbuf_fini(&g);
}
END_TEST

START_TEST(test_ref_replay_concurrent)
{
    const trace *t = get(CONC);
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(ref_replay(t, &text, &len), TDM_OK);
    ck_assert_uint_eq(len, t->end_len);
    ck_assert(memcmp(text, t->end_content, len) == 0);
    free(text);
}
END_TEST

/* Write `s` to a new temp file (gzip-compressed when gz; then cut to half its
 * size when cut) and return its path in buf. */
static void write_temp(char *buf, size_t n, const char *s, bool gz, bool cut)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, n, "%s/tandem-trace-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(buf);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(s);
    if (gz) {
        gzFile f = gzdopen(fd, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(gzwrite(f, s, (unsigned)len), (int)len);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        ck_assert_int_eq(write(fd, s, len), (ssize_t)len);
        ck_assert_int_eq(close(fd), 0);
    }
    if (cut) {
        struct stat st;
        ck_assert_int_eq(stat(buf, &st), 0);
        ck_assert_int_eq(truncate(buf, st.st_size / 2), 0);
    }
}

static tdm_err load_text(const char *s, bool gz, bool cut, trace **out)
{
    char path[4096];
    write_temp(path, sizeof path, s, gz, cut);
    *out = NULL;
    tdm_err err = trace_load(path, out);
    unlink(path);
    return err;
}

/* A valid sequential trace long enough that half its gzip is mid-stream. */
static char *long_trace(void)
{
    size_t cap = 64 * 1024, w = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    w += (size_t)snprintf(s, cap, "{\"startContent\":\"\",\"endContent\":\"");
    for (int i = 0; i < 500; i++) s[w++] = (char)('a' + i % 26);
    w += (size_t)snprintf(s + w, cap - w, "\",\"txns\":[");
    for (int i = 0; i < 500; i++)
        w += (size_t)snprintf(s + w, cap - w, "%s{\"time\":\"x\",\"patches\":[[%d,0,\"%c\"]]}",
                              i ? "," : "", i, 'a' + i % 26);
    snprintf(s + w, cap - w, "]}");
    return s;
}

static const struct {
    const char *name, *json;
} malformed[] = {
    {"not json", "{\"txns\": ["},
    {"empty file", ""},
    {"root not an object", "[1,2,3]"},
    {"missing txns", "{\"startContent\":\"\",\"endContent\":\"\"}"},
    {"missing endContent", "{\"startContent\":\"\",\"txns\":[]}"},
    {"negative pos",
     "{\"startContent\":\"\",\"endContent\":\"\",\"txns\":[{\"patches\":[[-1,0,\"a\"]]}]}"},
    {"negative del",
     "{\"startContent\":\"\",\"endContent\":\"\",\"txns\":[{\"patches\":[[0,-2,\"\"]]}]}"},
    {"pos beyond uint32", "{\"endContent\":\"\",\"txns\":[{\"patches\":[[4294967296,0,\"a\"]]}]}"},
    {"pos not an integer", "{\"endContent\":\"\",\"txns\":[{\"patches\":[[1.5,0,\"a\"]]}]}"},
    {"ins not a string", "{\"endContent\":\"\",\"txns\":[{\"patches\":[[0,0,5]]}]}"},
    {"patch of two", "{\"endContent\":\"\",\"txns\":[{\"patches\":[[0,0]]}]}"},
    {"patches missing", "{\"endContent\":\"\",\"txns\":[{\"time\":\"x\"}]}"},
    {"unknown kind", "{\"kind\":\"weird\",\"endContent\":\"\",\"txns\":[]}"},
    {"parent not earlier",
     "{\"kind\":\"concurrent\",\"endContent\":\"ab\",\"numAgents\":1,\"txns\":["
     "{\"parents\":[],\"agent\":0,\"patches\":[[0,0,\"a\"]]},"
     "{\"parents\":[1],\"agent\":0,\"patches\":[[1,0,\"b\"]]}]}"},
    {"negative parent", "{\"kind\":\"concurrent\",\"endContent\":\"a\",\"numAgents\":1,\"txns\":["
                        "{\"parents\":[-1],\"agent\":0,\"patches\":[[0,0,\"a\"]]}]}"},
    {"agent out of range",
     "{\"kind\":\"concurrent\",\"endContent\":\"a\",\"numAgents\":1,\"txns\":["
     "{\"parents\":[],\"agent\":1,\"patches\":[[0,0,\"a\"]]}]}"},
    {"numAgents missing", "{\"kind\":\"concurrent\",\"endContent\":\"a\",\"txns\":["
                          "{\"parents\":[],\"agent\":0,\"patches\":[[0,0,\"a\"]]}]}"},
    {"parents missing", "{\"kind\":\"concurrent\",\"endContent\":\"a\",\"numAgents\":1,\"txns\":["
                        "{\"agent\":0,\"patches\":[[0,0,\"a\"]]}]}"},
};
#define NMALFORMED (int)(sizeof malformed / sizeof *malformed)

START_TEST(test_malformed)
{
    trace *t;
    tdm_err err = load_text(malformed[_i].json, _i % 2 == 0, false, &t);
    ck_assert_msg(err == TDM_EMALFORMED, "%s: got %s", malformed[_i].name, tdm_err_name(err));
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_truncated_gzip)
{
    char *s = long_trace();
    trace *t;
    ck_assert_int_eq(load_text(s, true, false, &t), TDM_OK); /* control: whole file loads */
    ck_assert_uint_eq(t->npatches, 500);
    ck_assert_uint_eq(t->end_len, 500);
    trace_free(t);
    ck_assert_int_eq(load_text(s, true, true, &t), TDM_EMALFORMED);
    ck_assert_ptr_null(t);
    /* gzip magic followed by garbage */
    ck_assert_int_eq(load_text("\x1f\x8b\x08\x01garbage-garbage-garbage", false, false, &t),
                     TDM_EMALFORMED);
    free(s);
}
END_TEST

/* Valid hand-made traces: plain and gzip, UTF-8 counting, concurrent fields. */
START_TEST(test_valid_small)
{
    trace *t;
    const char *seq =
        "{\"startContent\":\"ab\",\"endContent\":\"h\\u00e9llo\xe2\x82\xac\xf0\x9f\x98\x80\","
        "\"txns\":[{\"patches\":[[0,2,\"h\xc3\xa9llo\\u20ac\\ud83d\\ude00\"]]}]}";
    for (int gz = 0; gz < 2; gz++) {
        ck_assert_int_eq(load_text(seq, gz, false, &t), TDM_OK);
        ck_assert(!t->concurrent);
        ck_assert_uint_eq(t->num_agents, 1);
        ck_assert_str_eq(t->start_content, "ab");
        ck_assert_uint_eq(t->start_len, 2);
        ck_assert_uint_eq(t->ntxns, 1);
        ck_assert_uint_eq(t->txns[0].patches[0].del, 2);
        ck_assert_uint_eq(t->txns[0].patches[0].ins_len, 13);
        ck_assert_uint_eq(t->txns[0].patches[0].ins_cps, 7);
        ck_assert_uint_eq(t->end_len, 13);
        ck_assert_uint_eq(t->end_cps, 7);
        ck_assert_str_eq(t->txns[0].patches[0].ins, t->end_content);
        trace_free(t);
    }
    const char *conc = "{\"kind\":\"concurrent\",\"endContent\":\"ab\",\"numAgents\":2,\"txns\":["
                       "{\"parents\":[],\"agent\":0,\"patches\":[[0,0,\"a\"]]},"
                       "{\"parents\":[0],\"agent\":1,\"patches\":[[1,0,\"b\"]]},"
                       "{\"parents\":[0,1],\"agent\":0,\"patches\":[]}]}";
    ck_assert_int_eq(load_text(conc, true, false, &t), TDM_OK);
    ck_assert(t->concurrent);
    ck_assert_uint_eq(t->num_agents, 2);
    ck_assert_uint_eq(t->ntxns, 3);
    ck_assert_uint_eq(t->txns[1].agent, 1);
    ck_assert_uint_eq(t->txns[2].nparents, 2);
    ck_assert_uint_eq(t->txns[2].parents[1], 1);
    ck_assert_uint_eq(t->txns[2].npatches, 0);
    char *text;
    size_t len;
    ck_assert_int_eq(ref_replay(t, &text, &len), TDM_OK);
    ck_assert_str_eq(text, "ab");
    free(text);
    trace_free(t);
}
END_TEST

START_TEST(test_not_found)
{
    trace *t = NULL;
    ck_assert_int_eq(trace_load("/nonexistent-dir/none.json.gz", &t), TDM_ENOTFOUND);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(trace_load("/", &t), TDM_ENOTFOUND); /* a directory */
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_trace_path)
{
    char buf[64];
    const char *old = getenv("TANDEM_TRACES");
    char *saved = old ? strdup(old) : NULL;
    setenv("TANDEM_TRACES", "/x/traces", 1);
    ck_assert_str_eq(trace_path(buf, sizeof buf, "a/b.json.gz"), "/x/traces/a/b.json.gz");
    ck_assert_ptr_null(trace_path(buf, 8, "a/b.json.gz"));
    unsetenv("TANDEM_TRACES");
    ck_assert_str_eq(trace_path(buf, sizeof buf, "c"), "tests/traces/c");
    if (saved) setenv("TANDEM_TRACES", saved, 1);
    free(saved);
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("traces");
    tcase_add_unchecked_fixture(tc, load_all, free_all);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_counts, 0, NTRACES);
    tcase_add_test(tc, test_automerge_single_chars);
    tcase_add_test(tc, test_concurrent_shape);
    tcase_add_loop_test(tc, test_gapbuf_replay, 0, 2);
    tcase_add_test(tc, test_ref_replay_concurrent);
    suite_add_tcase(s, tc);

    TCase *tu = tcase_create("units");
    tcase_set_timeout(tu, 600);
    tcase_add_test(tu, test_gapbuf_utf8_model);
    tcase_add_test(tu, test_gapbuf_range);
    tcase_add_loop_test(tu, test_malformed, 0, NMALFORMED);
    tcase_add_test(tu, test_truncated_gzip);
    tcase_add_test(tu, test_valid_small);
    tcase_add_test(tu, test_not_found);
    tcase_add_test(tu, test_trace_path);
    suite_add_tcase(s, tu);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(trace_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
