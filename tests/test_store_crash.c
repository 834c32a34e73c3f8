/* test_store_crash.c - durability under SIGKILL.
 *
 * Each round forks a child that opens the store (a small map, so it grows;
 * a low compaction threshold, so compactions run and get killed too), loads
 * the document, and appends real CRDT updates from its own local edits as
 * fast as it can through the async path, plus chat messages. After each
 * commit the writer-thread callback reports the update's sequence number and
 * its client clock (or the chat id) to the parent over a pipe. The parent
 * SIGKILLs the child at a random point (after a random number of reports or
 * a random time), reopens the store and checks that every reported update and
 * message is present, that the log replays cleanly (nothing pending, verify
 * finds no problem), and that everything reported in earlier rounds is still
 * there. The directory carries over from round to round.
 *
 * Even rounds send every record through the storage journal
 * (journal_always) and most of their kills leave acknowledged records in it
 * (counted with raw LMDB before the reopen, which moves them): the checks
 * cover records read from the journal and moved at open. Odd rounds write
 * the child's dense batches straight into the tree while the journal is
 * empty (the default).
 *
 * test_crash_update_ot: the same with every update stored together with
 * its OT history record (store_append_ot_async, as the server stores an OT
 * client's change): after every kill the log and the history still pair
 * up (next_seq - 1 == ot_next; the history has no gap and names each
 * record's submitter).
 *
 * 20 rounds in CI; TANDEM_SOAK=N runs 20 * N. */
#include <check.h>
#include <errno.h>
#include <lmdb.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "doc.h"
#include "store.h"
#include "test_store_util.h"

#define DOC        "crashdoc"
#define NM_DOC     DOC, strlen(DOC)
#define ROOM       "crashroom"
#define MAX_ROUNDS 100000

enum { REC_UPDATE = 1, REC_CHAT = 2, REC_ERROR = 3 };

typedef struct report {
    uint32_t kind;
    uint32_t err;
    uint64_t seq;   /* update sequence or chat id */
    uint64_t clock; /* the child's clock after that update */
} report;

static bool g_journal_always; /* this round: every record through the journal */

static store_opts crash_opts(void)
{
    store_opts o = {.map_size = 128 << 10,
                    .compact_updates = 150,
                    .queue_max = 2048,
                    .journal_always = g_journal_always};
    return o;
}

/* ---- the child ---------------------------------------------------------------- */

static int g_pipe = -1;
static bool g_with_ot; /* test_crash_update_ot: updates go with an OT record */

static void put_report(const report *r)
{
    /* reports are smaller than PIPE_BUF: each write is atomic */
    if (write(g_pipe, r, sizeof *r) != (ssize_t)sizeof *r) _exit(5);
}

static void on_update(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    (void)dup;
    report r = {err ? REC_ERROR : REC_UPDATE, (uint32_t)err, id, (uint64_t)(uintptr_t)ctx};
    put_report(&r);
}

static void on_chat(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    (void)ctx;
    report r = {err ? REC_ERROR : REC_CHAT, (uint32_t)err, id, dup};
    put_report(&r);
}

static void child(const char *dir, uint64_t client, uint64_t seed)
{
    store *st;
    store_opts o = crash_opts();
    if (store_open(dir, &o, &st)) _exit(2);
    crdt_doc_opts dopt = {.client = client};
    su_editor ed;
    memset(&ed, 0, sizeof ed);
    tdm_err e = store_doc_load(st, NM_DOC, &dopt, &ed.doc, NULL);
    if (e == TDM_ENOTFOUND) e = crdt_doc_new(client, &ed.doc);
    if (e) _exit(3);
    ed.sv = crdt_sv_new();
    if (!ed.sv || crdt_doc_state_vector(ed.doc, ed.sv)) _exit(3);
    tbuf_init(&ed.upd, 0);
    ed.rng.s = seed;
    store_doc_meta meta = {0};
    if (g_with_ot) {
        e = store_doc_info(st, NM_DOC, &meta);
        if (e && e != TDM_ENOTFOUND) _exit(3);
    }
    uint64_t version = meta.ot_next;
    for (uint64_t i = 0;; i++) {
        su_edit(&ed, 4);
        void *clock = (void *)(uintptr_t)crdt_sv_get(ed.sv, client);
        if (g_with_ot) {
            uint8_t op = (uint8_t)version;
            store_ot_rec rec = {
                .version = version, .src = client, .op_id = 2 * i + 1, .op = &op, .op_len = 1};
            while ((e = store_append_ot_async(st, NM_DOC, ed.upd.data, ed.upd.len, &rec, on_update,
                                              clock)) == TDM_ETOOBIG)
                sched_yield();
            if (e) _exit(4);
            version++;
            continue;
        }
        if (i % 97 == 0) { /* now and then the synchronous path */
            uint64_t seq;
            if (store_append(st, NM_DOC, ed.upd.data, ed.upd.len, &seq)) _exit(4);
            on_update(clock, TDM_OK, seq, false);
            continue;
        }
        while ((e = store_append_async(st, NM_DOC, ed.upd.data, ed.upd.len, on_update, clock)) ==
               TDM_ETOOBIG)
            sched_yield();
        if (e) _exit(4);
        if (i % 13 == 0) {
            char text[32];
            int n = snprintf(text, sizeof text, "msg %llu", (unsigned long long)i);
            store_chat_msg m = {.user = (const uint8_t *)"crash",
                                .user_len = 5,
                                .text = (const uint8_t *)text,
                                .text_len = (size_t)n};
            while ((e = store_chat_append_async(st, ROOM, strlen(ROOM), &m, on_chat, NULL)) ==
                   TDM_ETOOBIG)
                sched_yield();
            if (e) _exit(4);
        }
    }
}

/* ---- the parent --------------------------------------------------------------- */

typedef struct seen {
    uint64_t clients[4096];
    uint64_t clocks[4096];
    size_t n;
    uint64_t max_seq, max_chat;
    uint64_t jrnl_rounds; /* journal_always rounds whose kill left records in it */
} seen;

/* Records in the journal of dir (0 without one), read with raw LMDB before
 * the store reopens and moves them. */
static long jrnl_records(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    long n = 0;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    if (mdb_env_open(env, dir, MDB_RDONLY, 0600) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        MDB_stat st;
        if (mdb_dbi_open(txn, "jrnl", 0, &dbi) == 0 && mdb_stat(txn, dbi, &st) == 0)
            n = (long)st.ms_entries;
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return n;
}

static int chat_last(void *ctx, const store_chat_msg *m)
{
    *(uint64_t *)ctx = m->id;
    return 0;
}

typedef struct ot_check {
    uint64_t next;
} ot_check;

static int ot_rec_check(void *ctx, const store_ot_rec *r)
{
    ot_check *c = ctx;
    ck_assert_uint_eq(r->version, c->next);
    ck_assert_uint_ge(r->src, 5000); /* a round's client id */
    ck_assert_uint_eq(r->op_id % 2, 1);
    ck_assert_uint_eq(r->op_len, 1);
    ck_assert_uint_eq(r->op[0], (uint8_t)r->version);
    c->next++;
    return 0;
}

static void check_store(const char *dir, const seen *s, uint64_t round)
{
    store *st;
    store_opts o = crash_opts();
    tdm_err e = store_open(dir, &o, &st);
    ck_assert_msg(e == TDM_OK, "round %llu: reopen: %s", (unsigned long long)round,
                  tdm_err_name(e));
    size_t problems = 0;
    e = store_verify_doc(st, NM_DOC, NULL, NULL, &problems);
    if (s->n == 0 && e == TDM_ENOTFOUND) {
        store_close(st);
        return;
    }
    ck_assert_msg(e == TDM_OK && problems == 0, "round %llu: verify: %s, %zu problems",
                  (unsigned long long)round, tdm_err_name(e), problems);
    crdt_doc *doc;
    store_doc_meta m;
    ck_assert_int_eq(store_doc_load(st, NM_DOC, NULL, &doc, &m), TDM_OK);
    ck_assert_uint_eq(crdt_doc_pending(doc), 0);
    crdt_sv *sv = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_state_vector(doc, sv), TDM_OK);
    for (size_t i = 0; i < s->n; i++)
        ck_assert_msg(crdt_sv_get(sv, s->clients[i]) >= s->clocks[i],
                      "round %llu: client %llu has clock %u, %llu was reported durable",
                      (unsigned long long)round, (unsigned long long)s->clients[i],
                      crdt_sv_get(sv, s->clients[i]), (unsigned long long)s->clocks[i]);
    ck_assert_uint_gt(m.next_seq, s->max_seq);
    if (g_with_ot) {
        /* every stored update has its OT record and no record is without
         * its update, whatever the kill interrupted */
        ck_assert_msg(m.next_seq - 1 == m.ot_next,
                      "round %llu: %llu updates stored but OT history up to %llu",
                      (unsigned long long)round, (unsigned long long)(m.next_seq - 1),
                      (unsigned long long)m.ot_next);
        ot_check oc = {.next = m.ot_first};
        ck_assert_int_eq(store_ot_range_rec(st, NM_DOC, m.ot_first, ot_rec_check, &oc), TDM_OK);
        ck_assert_uint_eq(oc.next, m.ot_next);
    }
    if (s->max_chat) {
        uint64_t last = 0;
        ck_assert_int_eq(
            store_chat_range(st, ROOM, strlen(ROOM), s->max_chat - 1, 1, chat_last, &last), TDM_OK);
        ck_assert_uint_eq(last, s->max_chat);
        ck_assert_int_eq(store_verify_doc(st, ROOM, strlen(ROOM), NULL, NULL, NULL), TDM_OK);
    }
    crdt_sv_free(sv);
    crdt_doc_free(doc);
    store_close(st);
}

static void run_round(const char *dir, seen *s, uint64_t round, su_rng *rng)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    uint64_t client = 5000 + round;
    /* even rounds: every record through the journal; odd rounds: dense
     * batches straight into the tree while the journal is empty */
    g_journal_always = round % 2 == 0;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        g_pipe = fds[1];
        child(dir, client, su_next(rng));
        _exit(9);
    }
    close(fds[1]);
    /* kill after a random number of reports, or after a random time */
    bool by_count = su_below(rng, 2) == 0;
    uint64_t want = 1 + su_below(rng, 600);
    long ms = 5 + (long)su_below(rng, 120);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t got = 0, clock = 0;
    char buf[sizeof(report) * 64];
    size_t have = 0;
    bool killed = false;
    for (;;) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (!killed && ((by_count && got >= want) || (!by_count && el >= ms) || el > 20000)) {
            kill(pid, SIGKILL);
            killed = true;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        int pr = poll(&p, 1, killed ? 1000 : 1);
        if (pr <= 0) {
            if (killed) break;
            continue;
        }
        ssize_t r = read(fds[0], buf + have, sizeof buf - have);
        if (r <= 0) break; /* EOF: the child is gone */
        have += (size_t)r;
        size_t i = 0;
        for (; i + sizeof(report) <= have; i += sizeof(report)) {
            report rep;
            memcpy(&rep, buf + i, sizeof rep);
            ck_assert_msg(rep.kind != REC_ERROR, "round %llu: child reported %s",
                          (unsigned long long)round, tdm_err_name((tdm_err)rep.err));
            if (rep.kind == REC_UPDATE) {
                got++;
                if (rep.clock > clock) clock = rep.clock;
                if (rep.seq > s->max_seq) s->max_seq = rep.seq;
            } else if (rep.kind == REC_CHAT && rep.seq > s->max_chat) {
                s->max_chat = rep.seq;
            }
        }
        memmove(buf, buf + i, have - i);
        have -= i;
    }
    close(fds[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "round %llu: child ended by itself (status %d)", (unsigned long long)round,
                  status);
    if (getenv("TANDEM_CRASH_VERBOSE"))
        fprintf(stderr, "round %llu: killed after %llu reports (%s), max seq %llu, chat %llu\n",
                (unsigned long long)round, (unsigned long long)got, by_count ? "count" : "time",
                (unsigned long long)s->max_seq, (unsigned long long)s->max_chat);
    if (clock && s->n < sizeof s->clocks / sizeof s->clocks[0]) {
        s->clients[s->n] = client;
        s->clocks[s->n++] = clock;
    }
    if (g_journal_always && jrnl_records(dir) > 0) s->jrnl_rounds++;
    check_store(dir, s, round);
}

START_TEST(test_crash_rounds)
{
    const char *soak = getenv("TANDEM_SOAK");
    long mult = soak ? atol(soak) : 1;
    if (mult < 1) mult = 1;
    uint64_t rounds = 20 * (uint64_t)mult;
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    char dir[4096];
    su_tmpdir(dir, sizeof dir);
    seen *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    su_rng rng = {0x5eed};
    for (uint64_t r = 0; r < rounds; r++) run_round(dir, s, r, &rng);
    /* the run made real progress: many durable updates */
    ck_assert_uint_gt(s->max_seq, 20);
    /* kills left acknowledged records in the journal, and they were found */
    ck_assert_uint_gt(s->jrnl_rounds, 0);
    /* a compacted copy of the survivor is sound too */
    char copy[4200];
    snprintf(copy, sizeof copy, "%s/copy", dir);
    ck_assert_int_eq(mkdir(copy, 0700), 0);
    store *st;
    store_opts o = crash_opts();
    ck_assert_int_eq(store_open(dir, &o, &st), TDM_OK);
    ck_assert_int_eq(store_copy_compact(st, copy), TDM_OK);
    store_close(st);
    check_store(copy, s, rounds);
    free(s);
    su_rmtree(dir);
}
END_TEST

START_TEST(test_crash_update_ot)
{
    g_with_ot = true;
    char dir[4096];
    su_tmpdir(dir, sizeof dir);
    seen *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    su_rng rng = {0x07ed};
    for (uint64_t r = 0; r < 20; r++) run_round(dir, s, r, &rng);
    ck_assert_uint_gt(s->max_seq, 20);
    ck_assert_uint_gt(s->jrnl_rounds, 0); /* combined records read from the journal */
    free(s);
    su_rmtree(dir);
    g_with_ot = false;
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_crash");
    TCase *tc = tcase_create("sigkill");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, test_crash_rounds);
    tcase_add_test(tc, test_crash_update_ot);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
