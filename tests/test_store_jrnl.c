/* test_store_jrnl.c - the storage journal (storage/store_jrnl.c) on real
 * LMDB directories: records are readable while they wait in the journal
 * (load, log and OT ranges, verify) and after they moved; they move by
 * count, by age when the writer is idle, before a compaction or deletion and
 * at close; OT versions trimmed while in the journal are dropped; a journal
 * left by a process that never closed moves at the next open (also with
 * no_journal); a damaged journal record is a clear TDM_ECORRUPT that changes
 * nothing; a format-1 store (no journal) is read as it is and upgraded by a
 * writable open; dense batches go straight into the tree while the journal
 * is empty, and the log stays in order across both ways. Raw LMDB transactions look at the files
 * with the store closed. */
#include <check.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "doc.h"
#include "store.h"
#include "test_store_util.h"

#define NM(s) (s), strlen(s)

static char g_dir[4096];

static void setup(void)
{
    su_tmpdir(g_dir, sizeof g_dir);
}

static void teardown(void)
{
    su_rmtree(g_dir);
}

static store *open_store(const store_opts *o)
{
    return su_store_open(g_dir, o);
}

static store_stats stats(store *st)
{
    store_stats s;
    ck_assert_int_eq(store_get_stats(st, &s), TDM_OK);
    return s;
}

/* A raw LMDB transaction on g_dir (the store closed); raw_end commits a
 * write transaction, aborts a read-only one, and closes the environment. */
static MDB_txn *raw_begin(bool write, MDB_env **env)
{
    MDB_txn *txn;
    ck_assert_int_eq(mdb_env_create(env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(*env, 16), 0);
    ck_assert_int_eq(mdb_env_open(*env, g_dir, write ? 0 : MDB_RDONLY, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(*env, NULL, write ? 0 : MDB_RDONLY, &txn), 0);
    return txn;
}

static void raw_end(MDB_env *env, MDB_txn *txn, bool write)
{
    if (write)
        ck_assert_int_eq(mdb_txn_commit(txn), 0);
    else
        mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* Entries of sub-database db (-1: it does not exist). */
static long raw_count(const char *db)
{
    MDB_env *env;
    MDB_txn *txn = raw_begin(false, &env);
    MDB_dbi dbi;
    long n = -1;
    if (mdb_dbi_open(txn, db, 0, &dbi) == 0) {
        MDB_stat s;
        ck_assert_int_eq(mdb_stat(txn, dbi, &s), 0);
        n = (long)s.ms_entries;
    }
    raw_end(env, txn, false);
    return n;
}

/* Write a raw record (or with v NULL, drop the sub-database). */
static void raw_put(const char *db, const void *key, size_t kn, const void *v, size_t vn)
{
    MDB_env *env;
    MDB_txn *txn = raw_begin(true, &env);
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_dbi_open(txn, db, 0, &dbi), 0);
    if (v) {
        MDB_val k = {kn, (void *)key}, val = {vn, (void *)v};
        ck_assert_int_eq(mdb_put(txn, dbi, &k, &val, 0), 0);
    } else {
        ck_assert_int_eq(mdb_drop(txn, dbi, 1), 0);
    }
    raw_end(env, txn, true);
}

static uint32_t raw_format(void)
{
    MDB_env *env;
    MDB_txn *txn = raw_begin(false, &env);
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_dbi_open(txn, "info", 0, &dbi), 0);
    MDB_val k = {6, (void *)"format"}, v;
    ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
    ck_assert_uint_eq(v.mv_size, 4);
    const uint8_t *p = v.mv_data;
    uint32_t f = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    raw_end(env, txn, false);
    return f;
}

typedef struct log_seen {
    uint64_t first, last;
    size_t n;
} log_seen;

static int log_collect(void *ctx, uint64_t seq, const uint8_t *p, size_t n)
{
    log_seen *s = ctx;
    (void)p;
    ck_assert_uint_gt(n, 0);
    if (s->n) ck_assert_uint_eq(seq, s->last + 1);
    if (!s->n) s->first = seq;
    s->last = seq;
    s->n++;
    return 0;
}

typedef struct ot_seen {
    uint64_t first, last;
    uint8_t bytes[64];
    size_t n;
} ot_seen;

static int ot_collect(void *ctx, uint64_t version, const uint8_t *p, size_t n)
{
    ot_seen *s = ctx;
    ck_assert_uint_eq(n, 1);
    if (s->n) ck_assert_uint_eq(version, s->last + 1);
    if (!s->n) s->first = version;
    s->last = version;
    if (s->n < sizeof s->bytes) s->bytes[s->n] = p[0];
    s->n++;
    return 0;
}

static void assert_doc(store *st, const char *name, crdt_doc *want)
{
    crdt_doc *doc = NULL;
    ck_assert_int_eq(store_doc_load(st, NM(name), NULL, &doc, NULL), TDM_OK);
    su_assert_same(doc, want);
    crdt_doc_free(doc);
}

static void assert_verified(store *st, const char *name)
{
    size_t problems = 1;
    ck_assert_int_eq(store_verify_doc(st, NM(name), NULL, NULL, &problems), TDM_OK);
    ck_assert_uint_eq(problems, 0);
}

typedef struct acks {
    int ok, failed;
} acks;

static void on_ack(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    acks *a = ctx;
    (void)id;
    (void)dup;
    if (err)
        a->failed++;
    else
        a->ok++;
}

/* 30 updates of "a" (10 of them with OT records, versions 0..9, the
 * combined job) and 5 OT-only records of "b". */
static void write_some(store *st, su_editor *ed)
{
    acks a = {0};
    for (int i = 0; i < 30; i++) {
        su_edit(ed, 6);
        if (i < 20) {
            ck_assert_int_eq(store_append(st, NM("a"), ed->upd.data, ed->upd.len, NULL), TDM_OK);
            continue;
        }
        uint8_t op = (uint8_t)(100 + i);
        store_ot_rec r = {
            .version = (uint64_t)i - 20, .src = 7, .op_id = (uint64_t)i, .op = &op, .op_len = 1};
        ck_assert_int_eq(
            store_append_ot_async(st, NM("a"), ed->upd.data, ed->upd.len, &r, on_ack, &a), TDM_OK);
    }
    for (uint64_t v = 0; v < 5; v++) {
        uint8_t b = (uint8_t)(200 + v);
        ck_assert_int_eq(store_ot_append(st, NM("b"), v, &b, 1), TDM_OK);
    }
    ck_assert_int_eq(store_flush(st), TDM_OK);
    ck_assert_int_eq(a.ok, 10);
    ck_assert_int_eq(a.failed, 0);
}

static void assert_some(store *st, su_editor *ed)
{
    assert_doc(st, "a", ed->doc);
    log_seen ls = {0};
    ck_assert_int_eq(store_log_range(st, NM("a"), 0, log_collect, &ls), TDM_OK);
    ck_assert_uint_eq(ls.n, 30);
    ck_assert_uint_eq(ls.first, 1);
    ck_assert_uint_eq(ls.last, 30);
    log_seen tail = {0};
    ck_assert_int_eq(store_log_range(st, NM("a"), 25, log_collect, &tail), TDM_OK);
    ck_assert_uint_eq(tail.n, 6);
    ck_assert_uint_eq(tail.first, 25);
    ot_seen os = {0};
    ck_assert_int_eq(store_ot_range(st, NM("a"), 3, ot_collect, &os), TDM_OK);
    ck_assert_uint_eq(os.n, 7);
    ck_assert_uint_eq(os.first, 3);
    ck_assert_uint_eq(os.bytes[0], 123);
    ck_assert_uint_eq(os.bytes[6], 129);
    ot_seen ob = {0};
    ck_assert_int_eq(store_ot_range(st, NM("b"), 0, ot_collect, &ob), TDM_OK);
    ck_assert_uint_eq(ob.n, 5);
    ck_assert_uint_eq(ob.bytes[4], 204);
    assert_verified(st, "a");
    assert_verified(st, "b");
}

START_TEST(test_reads_see_journal)
{
    store_opts o = {.no_auto_compact = true, .journal_ms = 600000};
    store *st = open_store(&o);
    su_editor ed;
    su_editor_init(&ed, 41, 4);
    write_some(st, &ed);
    store_stats s = stats(st);
    ck_assert_uint_eq(s.journal_migrations, 0); /* everything is still in the journal */
    assert_some(st, &ed);
    store_close(st);
    /* close moved every record to its tree */
    ck_assert_int_eq(raw_count("jrnl"), 0);
    ck_assert_int_eq(raw_count("log"), 30);
    ck_assert_int_eq(raw_count("ot"), 15);
    ck_assert_uint_eq(raw_format(), 2);
    st = open_store(&o);
    assert_some(st, &ed);
    store_close(st);
    su_editor_fini(&ed);
}
END_TEST

START_TEST(test_moves_by_count)
{
    store_opts o = {.no_auto_compact = true, .journal_records = 16, .journal_ms = 600000};
    store *st = open_store(&o);
    su_editor ed;
    su_editor_init(&ed, 42, 5);
    for (int i = 0; i < 100; i++) {
        su_edit(&ed, 4);
        ck_assert_int_eq(store_append(st, NM("c"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    }
    store_stats s = stats(st);
    ck_assert_uint_ge(s.journal_migrations, 5); /* one per 16 records */
    ck_assert_uint_ge(s.journal_moved, 80);
    ck_assert_uint_le(s.journal_moved, 100);
    ck_assert(!s.journal_stuck);
    assert_doc(st, "c", ed.doc);
    assert_verified(st, "c");
    store_close(st);
    ck_assert_int_eq(raw_count("log"), 100);
    su_editor_fini(&ed);
}
END_TEST

START_TEST(test_moves_when_idle)
{
    store_opts o = {.no_auto_compact = true, .journal_ms = 100};
    store *st = open_store(&o);
    su_editor ed;
    su_editor_init(&ed, 43, 6);
    for (int i = 0; i < 5; i++) {
        su_edit(&ed, 4);
        ck_assert_int_eq(store_append(st, NM("d"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    }
    /* no more writes: the writer wakes up by itself */
    store_stats s = {0};
    for (int i = 0; i < 300 && s.journal_moved < 5; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        s = stats(st);
    }
    ck_assert_uint_eq(s.journal_moved, 5);
    ck_assert_uint_eq(s.journal_migrations, 1);
    assert_doc(st, "d", ed.doc);
    store_close(st);
    su_editor_fini(&ed);
}
END_TEST

/* ot_retention 6: versions trimmed while still in the journal are not read
 * and do not reach the tree. */
START_TEST(test_ot_trimmed_in_journal)
{
    store_opts o = {.ot_retention = 6, .journal_ms = 600000};
    store *st = open_store(&o);
    for (uint64_t v = 0; v < 40; v++) {
        uint8_t b = (uint8_t)v;
        ck_assert_int_eq(store_ot_append(st, NM("t"), v, &b, 1), TDM_OK);
    }
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, NM("t"), &m), TDM_OK);
    ck_assert_uint_eq(m.ot_first, 34);
    ck_assert_uint_eq(m.ot_next, 40);
    ck_assert_uint_eq(stats(st).journal_migrations, 0);
    ot_seen s = {0};
    ck_assert_int_eq(store_ot_range(st, NM("t"), 34, ot_collect, &s), TDM_OK);
    ck_assert_uint_eq(s.n, 6);
    ck_assert_uint_eq(s.bytes[0], 34);
    ck_assert_int_eq(store_ot_range(st, NM("t"), 33, ot_collect, &s), TDM_ERANGE);
    assert_verified(st, "t");
    store_close(st);
    ck_assert_int_eq(raw_count("ot"), 6);
    st = open_store(&o);
    ot_seen s2 = {0};
    ck_assert_int_eq(store_ot_range(st, NM("t"), 34, ot_collect, &s2), TDM_OK);
    ck_assert_uint_eq(s2.n, 6);
    ck_assert_uint_eq(s2.last, 39);
    assert_verified(st, "t");
    store_close(st);
}
END_TEST

START_TEST(test_compact_and_delete_move_it)
{
    store_opts o = {.no_auto_compact = true, .journal_ms = 600000};
    store *st = open_store(&o);
    su_editor ea, eb;
    su_editor_init(&ea, 44, 7);
    su_editor_init(&eb, 45, 8);
    for (int i = 0; i < 20; i++) {
        su_edit(&ea, 4);
        su_edit(&eb, 4);
        ck_assert_int_eq(store_append(st, NM("e"), ea.upd.data, ea.upd.len, NULL), TDM_OK);
        ck_assert_int_eq(store_append(st, NM("f"), eb.upd.data, eb.upd.len, NULL), TDM_OK);
    }
    ck_assert_uint_eq(stats(st).journal_migrations, 0);
    ck_assert_int_eq(store_compact_doc(st, NM("e")), TDM_OK);
    ck_assert_uint_eq(stats(st).journal_migrations, 1);
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, NM("e"), &m), TDM_OK);
    ck_assert_uint_eq(m.updates, 0);
    ck_assert_uint_eq(m.compactions, 1);
    assert_doc(st, "e", ea.doc);
    assert_verified(st, "e");

    /* more for both, then delete "e" while its records wait in the journal */
    for (int i = 0; i < 5; i++) {
        su_edit(&ea, 4);
        su_edit(&eb, 4);
        ck_assert_int_eq(store_append(st, NM("e"), ea.upd.data, ea.upd.len, NULL), TDM_OK);
        ck_assert_int_eq(store_append(st, NM("f"), eb.upd.data, eb.upd.len, NULL), TDM_OK);
    }
    ck_assert_int_eq(store_doc_delete(st, NM("e")), TDM_OK);
    ck_assert_int_eq(store_doc_info(st, NM("e"), &m), TDM_ENOTFOUND);
    assert_doc(st, "f", eb.doc);
    assert_verified(st, "f");
    bool created = false;
    ck_assert_int_eq(store_doc_create(st, NM("e"), &created), TDM_OK);
    ck_assert(created);
    log_seen ls = {0};
    ck_assert_int_eq(store_log_range(st, NM("e"), 0, log_collect, &ls), TDM_OK);
    ck_assert_uint_eq(ls.n, 0); /* nothing of the old "e" came back */
    store_close(st);
    ck_assert_int_eq(raw_count("jrnl"), 0);
    ck_assert_int_eq(raw_count("log"), 25); /* "f" only */
    su_editor_fini(&ea);
    su_editor_fini(&eb);
}
END_TEST

/* A child writes and exits without store_close (as a crash would): its
 * acknowledged records stay in the journal and move at the next open, also
 * for a handle that writes straight to the trees. */
static void child_writes_and_exits(su_editor *ed, int n)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        store_opts o = {.no_auto_compact = true, .journal_ms = 600000};
        store *st = NULL;
        if (store_open(g_dir, &o, &st)) _exit(2);
        for (int i = 0; i < n; i++) {
            su_edit(ed, 4);
            if (store_append(st, NM("g"), ed->upd.data, ed->upd.len, NULL)) _exit(3);
        }
        _exit(0);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    for (int i = 0; i < n; i++) su_edit(ed, 4); /* the parent's copy replays the same edits */
}

START_TEST(test_left_behind_moves_at_open)
{
    su_editor ed;
    su_editor_init(&ed, 46, 9);
    child_writes_and_exits(&ed, 12);
    ck_assert_int_eq(raw_count("jrnl"), 12);
    ck_assert_int_eq(raw_count("log"), 0);
    /* a read-only handle reads them from the journal */
    store_opts ro = {.read_only = true};
    store *st = open_store(&ro);
    assert_doc(st, "g", ed.doc);
    store_close(st);
    /* a handle without the journal moves them before its first write */
    store_opts o = {.no_auto_compact = true, .no_journal = true};
    st = open_store(&o);
    for (int i = 0; i < 3; i++) {
        su_edit(&ed, 4);
        ck_assert_int_eq(store_append(st, NM("g"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    }
    store_stats s = stats(st);
    ck_assert_uint_eq(s.journal_moved, 12);
    assert_doc(st, "g", ed.doc);
    assert_verified(st, "g");
    store_close(st);
    ck_assert_int_eq(raw_count("jrnl"), 0);
    ck_assert_int_eq(raw_count("log"), 15);
    su_editor_fini(&ed);
}
END_TEST

START_TEST(test_damaged_journal_record)
{
    su_editor ed;
    su_editor_init(&ed, 47, 10);
    child_writes_and_exits(&ed, 6); /* six records left in the journal, keys 1..6 */
    uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 4};
    raw_put("jrnl", key, 8, "Jgarbage-garbage-garbage-garbage", 32);
    store_opts o = {.no_auto_compact = true};
    store *st = open_store(&o);
    store_stats s = stats(st);
    ck_assert(s.journal_stuck);
    ck_assert_uint_eq(s.journal_moved, 0); /* nothing moved around the damage */
    crdt_doc *doc = (crdt_doc *)&doc;
    ck_assert_int_eq(store_doc_load(st, NM("g"), NULL, &doc, NULL), TDM_ECORRUPT);
    ck_assert_ptr_null(doc);
    ck_assert_int_eq(store_compact_doc(st, NM("g")), TDM_ECORRUPT);
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, NM("g"), &m), TDM_OK);
    ck_assert_uint_eq(m.updates, 6); /* compaction changed nothing */
    ck_assert_uint_eq(m.snapshot_bytes, 0);
    size_t problems = 0;
    ck_assert_int_eq(store_verify_doc(st, NM("g"), NULL, NULL, &problems), TDM_ECORRUPT);
    ck_assert_uint_ge(problems, 1);
    store_close(st);
    ck_assert_int_eq(raw_count("jrnl"), 6); /* the journal stayed as it was */
    su_editor_fini(&ed);
}
END_TEST

START_TEST(test_format1_upgrade)
{
    store_opts o = {.no_auto_compact = true};
    store *st = open_store(&o);
    su_editor ed;
    su_editor_init(&ed, 48, 11);
    for (int i = 0; i < 10; i++) {
        su_edit(&ed, 4);
        ck_assert_int_eq(store_append(st, NM("h"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    }
    store_close(st);
    /* make it a format-1 store: no journal, format 1 */
    raw_put("jrnl", NULL, 0, NULL, 0);
    raw_put("info", "format", 6, "\0\0\0\1", 4);
    ck_assert_int_eq(raw_count("jrnl"), -1);
    store_opts ro = {.read_only = true};
    st = open_store(&ro);
    assert_doc(st, "h", ed.doc);
    assert_verified(st, "h");
    store_close(st);
    ck_assert_uint_eq(raw_format(), 1); /* a read-only open changes nothing */
    st = open_store(&o);
    su_edit(&ed, 4);
    ck_assert_int_eq(store_append(st, NM("h"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    assert_doc(st, "h", ed.doc);
    store_close(st);
    ck_assert_uint_eq(raw_format(), 2);
    ck_assert_int_eq(raw_count("jrnl"), 0);
    ck_assert_int_eq(raw_count("log"), 11);
    /* a format from the future is refused */
    raw_put("info", "format", 6, "\0\0\0\3", 4);
    store *bad = (store *)&bad;
    ck_assert_int_eq(store_open(g_dir, &o, &bad), TDM_EVERSION);
    ck_assert_ptr_null(bad);
    su_editor_fini(&ed);
}
END_TEST

/* Batches of one document written many times go straight into the tree
 * while the journal is empty; single appends in between use the journal;
 * the log stays in order across both. */
START_TEST(test_dense_batches_direct)
{
    store_opts o = {.no_auto_compact = true, .journal_ms = 600000, .queue_max = 100000};
    store *st = open_store(&o);
    su_editor ed;
    su_editor_init(&ed, 49, 12);
    acks a = {0};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 2000; i++) {
            su_edit(&ed, 8);
            ck_assert_int_eq(
                store_append_async(st, NM("dense"), ed.upd.data, ed.upd.len, on_ack, &a), TDM_OK);
        }
        ck_assert_int_eq(store_flush(st), TDM_OK);
        su_edit(&ed, 3); /* one append alone: into the journal */
        ck_assert_int_eq(store_append(st, NM("dense"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    }
    ck_assert_int_eq(a.ok, 6000);
    store_stats s = stats(st);
    ck_assert_uint_ge(s.direct_batches, 1);
    log_seen ls = {0};
    ck_assert_int_eq(store_log_range(st, NM("dense"), 0, log_collect, &ls), TDM_OK);
    ck_assert_uint_eq(ls.n, 6003); /* log_collect checks consecutive sequence numbers */
    assert_doc(st, "dense", ed.doc);
    assert_verified(st, "dense");
    store_close(st);
    ck_assert_int_eq(raw_count("log"), 6003);
    st = open_store(&o);
    assert_doc(st, "dense", ed.doc);
    store_close(st);
    su_editor_fini(&ed);
}
END_TEST

static Suite *jrnl_suite(void)
{
    Suite *s = suite_create("store_jrnl");
    TCase *tc = tcase_create("journal");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reads_see_journal);
    tcase_add_test(tc, test_moves_by_count);
    tcase_add_test(tc, test_moves_when_idle);
    tcase_add_test(tc, test_ot_trimmed_in_journal);
    tcase_add_test(tc, test_compact_and_delete_move_it);
    tcase_add_test(tc, test_left_behind_moves_at_open);
    tcase_add_test(tc, test_damaged_journal_record);
    tcase_add_test(tc, test_format1_upgrade);
    tcase_add_test(tc, test_dense_batches_direct);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jrnl_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
