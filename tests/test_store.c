/* test_store.c - storage/ on real LMDB directories (mkdtemp), no mocks.
 *
 * basic: open/create/reopen, read-only and no_create, names and metadata,
 *   not-found vs empty, deletion, name caps.
 * log: many random edits appended then loaded equal the original (text and
 *   state vector) over several documents; log walks; async group commit with
 *   several producer threads (callback counts, per-document order, batches
 *   larger than one); a full queue; callback rules; gather_us (a commit at most
 *   once per interval under load).
 * compact: text and state vector identical before and after, the log shrinks;
 *   pending updates survive compaction; automatic compaction; compact_all with
 *   progress; a compacted whole-file copy.
 * chat, push, ot: ids, ranges, dedup, retention; subscriptions; OT history
 *   and retention across a reopen.
 * damage: garbage written into values with raw LMDB transactions gives
 *   TDM_ECORRUPT, a load that hands back nothing, a verify report, and a
 *   compaction that changes nothing.
 * mapfull: a 64 KiB map grows and everything stays readable; with growth
 *   capped, a clear TDM_EFULL and nothing corrupt. */
#include <check.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "doc.h"
#include "store.h"
#include "test_store_util.h"
#include "zip.h"

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

/* Bulk appends go through the async path (one fsync per group, not per
 * update); flush() waits for them and checks that none failed. */
static atomic_int g_async_fail;

static void must_ok(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    (void)ctx;
    (void)id;
    (void)dup;
    if (err) atomic_fetch_add(&g_async_fail, 1);
}

static void app(store *st, const char *name, const tbuf *u)
{
    SU_OK(store_append_async(st, name, strlen(name), u->data, u->len, must_ok, NULL));
}

static void flush(store *st)
{
    ck_assert_int_eq(store_flush(st), TDM_OK);
    ck_assert_int_eq(atomic_load(&g_async_fail), 0);
}

/* ------------------------------------------------------------------ basic */

static int count_docs(void *ctx, const uint8_t *name, size_t n, const store_doc_meta *m)
{
    (void)name;
    (void)n;
    (void)m;
    ++*(int *)ctx;
    return 0;
}

START_TEST(test_open_reopen)
{
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/db", g_dir);
    store *st = NULL;
    store_opts ro = {.read_only = true};
    ck_assert_int_eq(store_open(sub, &ro, &st), TDM_ENOTFOUND);
    store_opts nc = {.no_create = true};
    ck_assert_int_eq(store_open(sub, &nc, &st), TDM_ENOTFOUND);
    ck_assert_ptr_null(st);
    ck_assert_int_eq(store_open(sub, NULL, &st), TDM_OK); /* creates the directory */
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, NM("a"), &m), TDM_ENOTFOUND);
    bool created = false;
    ck_assert_int_eq(store_doc_create(st, NM("a"), &created), TDM_OK);
    ck_assert(created);
    ck_assert_int_eq(store_doc_create(st, NM("a"), &created), TDM_OK);
    ck_assert(!created);
    uint64_t seq = 0;
    ck_assert_int_eq(store_append(st, NM("b"), (const uint8_t *)"xy", 2, &seq), TDM_OK);
    ck_assert_uint_eq(seq, 1);
    store_close(st);

    ck_assert_int_eq(store_open(sub, &nc, &st), TDM_OK);
    ck_assert_int_eq(store_doc_info(st, NM("a"), &m), TDM_OK);
    ck_assert_uint_eq(m.updates, 0);
    ck_assert_uint_eq(m.next_seq, 1);
    ck_assert_int_eq(store_doc_info(st, NM("b"), &m), TDM_OK);
    ck_assert_uint_eq(m.updates, 1);
    ck_assert_uint_eq(m.log_bytes, 2);
    ck_assert_uint_eq(m.next_seq, 2);
    ck_assert_int_gt(m.created_ms, 1500000000000);
    store_close(st);

    ck_assert_int_eq(store_open(sub, &ro, &st), TDM_OK);
    int n = 0;
    ck_assert_int_eq(store_list_docs(st, count_docs, &n, NULL), TDM_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(store_append(st, NM("b"), (const uint8_t *)"z", 1, NULL), TDM_EINVAL);
    ck_assert_int_eq(store_append_async(st, NM("b"), (const uint8_t *)"z", 1, NULL, NULL),
                     TDM_EINVAL);
    ck_assert_int_eq(store_doc_create(st, NM("c"), NULL), TDM_EINVAL);
    ck_assert_int_eq(store_compact_all(st, NULL, NULL, NULL), TDM_EINVAL);
    store_close(st);
    store_close(NULL);
}
END_TEST

START_TEST(test_not_found_vs_empty)
{
    store *st = open_store(NULL);
    crdt_doc *doc = (crdt_doc *)&doc; /* must be overwritten with NULL */
    ck_assert_int_eq(store_doc_load(st, NM("nope"), NULL, &doc, NULL), TDM_ENOTFOUND);
    ck_assert_ptr_null(doc);
    ck_assert_int_eq(store_doc_create(st, NM("empty"), NULL), TDM_OK);
    store_doc_meta m;
    ck_assert_int_eq(store_doc_load(st, NM("empty"), NULL, &doc, &m), TDM_OK);
    ck_assert_ptr_nonnull(doc);
    ck_assert_uint_eq(crdt_doc_len(doc), 0);
    ck_assert_uint_eq(m.updates, 0);
    crdt_doc_free(doc);
    uint64_t cnt = 7;
    ck_assert_int_eq(store_chat_count(st, NM("nope"), &cnt), TDM_ENOTFOUND);
    ck_assert_int_eq(store_chat_count(st, NM("empty"), &cnt), TDM_OK);
    ck_assert_uint_eq(cnt, 0);
    size_t problems = 9;
    ck_assert_int_eq(store_verify_doc(st, NM("nope"), NULL, NULL, &problems), TDM_ENOTFOUND);
    ck_assert_int_eq(store_verify_doc(st, NM("empty"), NULL, NULL, &problems), TDM_OK);
    ck_assert_uint_eq(problems, 0);
    store_close(st);
}
END_TEST

typedef struct names_seen {
    char names[8][32];
    uint64_t updates[8];
    int n;
} names_seen;

static int collect_names(void *ctx, const uint8_t *name, size_t n, const store_doc_meta *m)
{
    names_seen *s = ctx;
    ck_assert_int_lt(s->n, 8);
    ck_assert_uint_lt(n, 32);
    memcpy(s->names[s->n], name, n);
    s->names[s->n][n] = 0;
    s->updates[s->n++] = m->updates;
    return 0;
}

START_TEST(test_names_meta)
{
    store *st = open_store(NULL);
    const char *names[] = {"zeta", "alpha", "mid", "alpha2"};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k <= i; k++)
            ck_assert_int_eq(store_append(st, NM(names[i]), (const uint8_t *)"u", 1, NULL), TDM_OK);
    names_seen s = {0};
    size_t count = 0;
    ck_assert_int_eq(store_list_docs(st, collect_names, &s, &count), TDM_OK);
    ck_assert_uint_eq(count, 4);
    ck_assert_str_eq(s.names[0], "alpha");
    ck_assert_str_eq(s.names[1], "alpha2");
    ck_assert_str_eq(s.names[2], "mid");
    ck_assert_str_eq(s.names[3], "zeta");
    ck_assert_uint_eq(s.updates[0], 2);
    ck_assert_uint_eq(s.updates[3], 1);

    /* binary names, caps */
    const uint8_t bin[3] = {0, 0xff, 0};
    ck_assert_int_eq(store_append(st, bin, 3, (const uint8_t *)"u", 1, NULL), TDM_OK);
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, bin, 2, &m), TDM_ENOTFOUND);
    ck_assert_int_eq(store_doc_info(st, bin, 3, &m), TDM_OK);
    char big[STORE_NAME_MAX + 1];
    memset(big, 'n', sizeof big);
    ck_assert_int_eq(store_append(st, big, sizeof big, (const uint8_t *)"u", 1, NULL), TDM_ETOOBIG);
    ck_assert_int_eq(store_append(st, big, sizeof big - 1, (const uint8_t *)"u", 1, NULL), TDM_OK);
    ck_assert_int_eq(store_append(st, big, 0, (const uint8_t *)"u", 1, NULL), TDM_EINVAL);
    ck_assert_int_eq(store_append(st, NM("x"), (const uint8_t *)"u", 0, NULL), TDM_EINVAL);

    /* deletion: gone for good, id not reused */
    ck_assert_int_eq(store_doc_info(st, NM("mid"), &m), TDM_OK);
    uint64_t old_id = m.id;
    store_chat_msg msg = {.user = (const uint8_t *)"u", .user_len = 1};
    ck_assert_int_eq(store_chat_append(st, NM("mid"), &msg, NULL, NULL), TDM_OK);
    ck_assert_int_eq(store_ot_append(st, NM("mid"), 0, (const uint8_t *)"\x80", 1), TDM_OK);
    ck_assert_int_eq(store_doc_delete(st, NM("mid")), TDM_OK);
    ck_assert_int_eq(store_doc_delete(st, NM("mid")), TDM_ENOTFOUND);
    ck_assert_int_eq(store_doc_info(st, NM("mid"), &m), TDM_ENOTFOUND);
    ck_assert_int_eq(store_append(st, NM("mid"), (const uint8_t *)"u", 1, NULL), TDM_OK);
    ck_assert_int_eq(store_doc_info(st, NM("mid"), &m), TDM_OK);
    ck_assert_uint_gt(m.id, old_id);
    ck_assert_uint_eq(m.chat_count, 0);
    ck_assert_uint_eq(m.ot_next, 0);
    ck_assert_uint_eq(m.next_seq, 2);
    store_stats ss;
    ck_assert_int_eq(store_get_stats(st, &ss), TDM_OK);
    ck_assert_uint_eq(ss.docs, 6);
    ck_assert_uint_ge(ss.map_size, (uint64_t)1 << 30);
    store_close(st);
}
END_TEST

/* ------------------------------------------------------------------ log */

typedef struct walk_ctx {
    uint64_t next;
    size_t count;
} walk_ctx;

static int walk_log(void *ctx, uint64_t seq, const uint8_t *p, size_t n)
{
    walk_ctx *w = ctx;
    (void)p;
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_ge(seq, w->next);
    w->next = seq + 1;
    w->count++;
    return 0;
}

START_TEST(test_append_load_random)
{
    store_opts o = {.no_auto_compact = true};
    store *st = open_store(&o);
    enum { DOCS = 3, EDITS = 1500 };
    su_editor ed[DOCS];
    char name[DOCS][8];
    for (int d = 0; d < DOCS; d++) {
        su_editor_init(&ed[d], 100 + (uint64_t)d, 42 + (uint64_t)d);
        snprintf(name[d], sizeof name[d], "doc%d", d);
    }
    su_rng r = {7};
    for (int i = 0; i < EDITS * DOCS; i++) {
        int d = (int)su_below(&r, DOCS);
        su_edit(&ed[d], 8);
        ck_assert_int_eq(store_append(st, NM(name[d]), ed[d].upd.data, ed[d].upd.len, NULL),
                         TDM_OK);
    }
    store_close(st);
    st = open_store(&o);
    for (int d = 0; d < DOCS; d++) {
        crdt_doc *doc;
        store_doc_meta m;
        crdt_doc_opts dopt = {.client = 9};
        ck_assert_int_eq(store_doc_load(st, NM(name[d]), &dopt, &doc, &m), TDM_OK);
        su_assert_same(doc, ed[d].doc);
        ck_assert_uint_eq(crdt_doc_client(doc), 9);
        ck_assert_uint_eq(m.updates, m.next_seq - 1);
        walk_ctx w = {1, 0};
        ck_assert_int_eq(store_log_range(st, NM(name[d]), 0, walk_log, &w), TDM_OK);
        ck_assert_uint_eq(w.count, m.updates);
        walk_ctx w2 = {m.updates, 0};
        ck_assert_int_eq(store_log_range(st, NM(name[d]), m.updates, walk_log, &w2), TDM_OK);
        ck_assert_uint_eq(w2.count, 1);
        size_t problems = 1;
        ck_assert_int_eq(store_verify_doc(st, NM(name[d]), NULL, NULL, &problems), TDM_OK);
        ck_assert_uint_eq(problems, 0);
        crdt_doc_free(doc);
        su_editor_fini(&ed[d]);
    }
    store_close(st);
}
END_TEST

/* Async group commit: producers, each with its own document and replica,
 * plus all of them appending into one shared document. */
enum { PRODUCERS = 4, PER_PRODUCER = 3000 };

typedef struct prod {
    store *st;
    int idx;
    su_editor ed;
    atomic_uint_fast64_t done, failed;
    uint64_t last_seq; /* written by the writer thread only */
    bool order_ok;
} prod;

static void prod_done(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    prod *p = ctx;
    ck_assert(!dup);
    if (err) {
        atomic_fetch_add(&p->failed, 1);
        return;
    }
    if (id <= p->last_seq) p->order_ok = false;
    p->last_seq = id;
    atomic_fetch_add(&p->done, 1);
}

static void shared_done(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    (void)id;
    (void)dup;
    if (!err) atomic_fetch_add((atomic_uint_fast64_t *)ctx, 1);
}

static atomic_uint_fast64_t g_shared_done;

static void *producer(void *arg)
{
    prod *p = arg;
    char name[16];
    snprintf(name, sizeof name, "p%d", p->idx);
    for (int i = 0; i < PER_PRODUCER; i++) {
        su_edit(&p->ed, 3);
        tdm_err e;
        while ((e = store_append_async(p->st, NM(name), p->ed.upd.data, p->ed.upd.len, prod_done,
                                       p)) == TDM_ETOOBIG)
            sched_yield();
        SU_OK(e);
        /* the shared document gets every update of every producer too */
        while ((e = store_append_async(p->st, NM("shared"), p->ed.upd.data, p->ed.upd.len,
                                       shared_done, &g_shared_done)) == TDM_ETOOBIG)
            sched_yield();
        SU_OK(e);
    }
    return NULL;
}

START_TEST(test_async_group_commit)
{
    store_opts o = {.compact_updates = 700, .queue_max = 4096};
    store *st = open_store(&o);
    prod ps[PRODUCERS];
    pthread_t th[PRODUCERS];
    atomic_store(&g_shared_done, 0);
    for (int i = 0; i < PRODUCERS; i++) {
        memset(&ps[i], 0, sizeof ps[i]);
        ps[i].st = st;
        ps[i].idx = i;
        ps[i].order_ok = true;
        su_editor_init(&ps[i].ed, 1000 + (uint64_t)i, 99 + (uint64_t)i);
        ck_assert_int_eq(pthread_create(&th[i], NULL, producer, &ps[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) pthread_join(th[i], NULL);
    store_close(st); /* drains the queue: every callback has run */
    st = open_store(&o);
    crdt_doc *all;
    ck_assert_int_eq(crdt_doc_new(5, &all), TDM_OK);
    tbuf u;
    tbuf_init(&u, 0);
    for (int i = 0; i < PRODUCERS; i++) {
        ck_assert_uint_eq(atomic_load(&ps[i].done), PER_PRODUCER);
        ck_assert_uint_eq(atomic_load(&ps[i].failed), 0);
        ck_assert(ps[i].order_ok);
        ck_assert_uint_eq(ps[i].last_seq, PER_PRODUCER);
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        crdt_doc *doc;
        store_doc_meta m;
        ck_assert_int_eq(store_doc_load(st, NM(name), NULL, &doc, &m), TDM_OK);
        su_assert_same(doc, ps[i].ed.doc);
        ck_assert_uint_gt(m.compactions, 0); /* automatic compaction ran */
        ck_assert_uint_lt(m.updates, 700 + 1);
        crdt_doc_free(doc);
        tbuf_reset(&u);
        ck_assert_int_eq(crdt_doc_diff(ps[i].ed.doc, NULL, &u), TDM_OK);
        ck_assert_int_eq(crdt_doc_apply(all, u.data, u.len), TDM_OK);
    }
    ck_assert_uint_eq(atomic_load(&g_shared_done), PRODUCERS * PER_PRODUCER);
    crdt_doc *shared;
    ck_assert_int_eq(store_doc_load(st, NM("shared"), NULL, &shared, NULL), TDM_OK);
    su_assert_same(shared, all);
    crdt_doc_free(shared);
    crdt_doc_free(all);
    tbuf_fini(&u);
    store_stats ss;
    ck_assert_int_eq(store_get_stats(st, &ss), TDM_OK);
    store_close(st);
    for (int i = 0; i < PRODUCERS; i++) su_editor_fini(&ps[i].ed);
}
END_TEST

/* A callback that holds the writer until released, so the queue fills. */
typedef struct gate_cb {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, release;
    store *st;
    tdm_err nested_sync, nested_async;
} gate_cb;

static void blocking_done(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    gate_cb *g = ctx;
    (void)id;
    (void)dup;
    ck_assert_int_eq(err, TDM_OK);
    /* callback rules: no synchronous writes from the writer thread */
    g->nested_sync = store_append(g->st, NM("q"), (const uint8_t *)"n", 1, NULL);
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->release) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static atomic_int g_plain_done;
static void plain_done(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    (void)ctx;
    (void)id;
    (void)dup;
    if (!err) atomic_fetch_add(&g_plain_done, 1);
}

static int sync_in_list(void *ctx, const uint8_t *name, size_t n, const store_doc_meta *m)
{
    (void)m;
    store *st = ctx;
    ck_assert_int_eq(store_append(st, name, n, (const uint8_t *)"n", 1, NULL), TDM_EINVAL);
    ck_assert_int_eq(store_compact_doc(st, name, n), TDM_EINVAL);
    store_doc_meta mm;
    ck_assert_int_eq(store_doc_info(st, name, n, &mm), TDM_OK); /* nested reads are fine */
    return 0;
}

START_TEST(test_queue_full_and_rules)
{
    store_opts o = {.queue_max = 4};
    store *st = open_store(&o);
    gate_cb g = {.st = st, .nested_sync = TDM_OK};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    ck_assert_int_eq(store_append_async(st, NM("q"), (const uint8_t *)"a", 1, blocking_done, &g),
                     TDM_OK);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    atomic_store(&g_plain_done, 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(store_append_async(st, NM("q"), (const uint8_t *)"b", 1, plain_done, NULL),
                         TDM_OK);
    ck_assert_int_eq(store_append_async(st, NM("q"), (const uint8_t *)"c", 1, plain_done, NULL),
                     TDM_ETOOBIG);
    pthread_mutex_lock(&g.mu);
    g.release = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    uint64_t seq;
    ck_assert_int_eq(store_append(st, NM("q"), (const uint8_t *)"d", 1, &seq), TDM_OK);
    ck_assert_uint_eq(seq, 6);
    ck_assert_int_eq(g.nested_sync, TDM_EINVAL);
    ck_assert_int_eq(atomic_load(&g_plain_done), 4);
    ck_assert_int_eq(store_list_docs(st, sync_in_list, st, NULL), TDM_OK);
    store_stats ss;
    ck_assert_int_eq(store_get_stats(st, &ss), TDM_OK);
    ck_assert_uint_ge(ss.max_batch, 4);
    store_close(st);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}
END_TEST

/* queue_block: a producer facing a full queue waits until the writer has
 * taken jobs, instead of failing. */
typedef struct blocked_arg {
    store *st;
    atomic_int returned;
    tdm_err err;
} blocked_arg;

static void *blocked_producer(void *arg)
{
    blocked_arg *b = arg;
    b->err = store_append_async(b->st, NM("q"), (const uint8_t *)"e", 1, plain_done, NULL);
    atomic_store(&b->returned, 1);
    return NULL;
}

START_TEST(test_queue_block)
{
    store_opts o = {.queue_max = 2, .queue_block = true};
    store *st = open_store(&o);
    gate_cb g = {.st = st};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    ck_assert_int_eq(store_append_async(st, NM("q"), (const uint8_t *)"a", 1, blocking_done, &g),
                     TDM_OK);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    atomic_store(&g_plain_done, 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(store_append_async(st, NM("q"), (const uint8_t *)"b", 1, plain_done, NULL),
                         TDM_OK);
    blocked_arg b = {.st = st};
    atomic_init(&b.returned, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, blocked_producer, &b), 0);
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    ck_assert_int_eq(atomic_load(&b.returned), 0); /* still waiting for room */
    pthread_mutex_lock(&g.mu);
    g.release = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(th, NULL);
    ck_assert_int_eq(b.err, TDM_OK);
    ck_assert_int_eq(store_flush(st), TDM_OK);
    ck_assert_int_eq(atomic_load(&g_plain_done), 3);
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, NM("q"), &m), TDM_OK);
    ck_assert_uint_eq(m.updates, 4);
    store_close(st);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}
END_TEST

/* ------------------------------------------------------------------ compact */

static int gather_walk(void *ctx, uint64_t seq, const uint8_t *p, size_t n)
{
    char *got = ctx;
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_ge(seq, 1);
    ck_assert_uint_le(seq, 4);
    got[seq - 1] = (char)p[0];
    return 0;
}

/* gather_us: under load the writer starts a transaction at most once per
 * gather_us. A is committed alone (an idle store commits at once) and holds
 * the writer in its callback while B1 and B2 are queued; once released, the
 * writer sees two jobs queued less than gather_us (1 s) after A's commit
 * started, so it waits, and C, queued 50 ms after the release, shares B1 and
 * B2's transaction: 2 transactions for 4 jobs (without the wait B1 and B2
 * commit before C arrives: 3). */
START_TEST(test_gather_under_load)
{
    unsetenv("TANDEM_STORE_GATHER_US"); /* it would override opts.gather_us */
    store_opts o = {.gather_us = 1000000};
    store *st = open_store(&o);
    gate_cb g = {.st = st, .nested_sync = TDM_OK};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    atomic_store(&g_plain_done, 0);
    ck_assert_int_eq(store_append_async(st, NM("g"), (const uint8_t *)"a", 1, blocking_done, &g),
                     TDM_OK);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(store_append_async(st, NM("g"), (const uint8_t *)"b", 1, plain_done, NULL),
                         TDM_OK);
    pthread_mutex_lock(&g.mu);
    g.release = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    struct timespec later = {0, 50000000}; /* without the wait B1 and B2 commit meanwhile */
    nanosleep(&later, NULL);
    ck_assert_int_eq(store_append_async(st, NM("g"), (const uint8_t *)"c", 1, plain_done, NULL),
                     TDM_OK);
    while (atomic_load(&g_plain_done) < 3) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    store_stats ss;
    ck_assert_int_eq(store_get_stats(st, &ss), TDM_OK);
    ck_assert_uint_eq(ss.jobs, 4);
    ck_assert_uint_eq(ss.batches, 2);
    ck_assert_uint_eq(ss.max_batch, 3);
    store_close(st);
    /* everything committed, in queue order */
    st = open_store(NULL);
    char got[8] = {0};
    ck_assert_int_eq(store_log_range(st, NM("g"), 0, gather_walk, got), TDM_OK);
    ck_assert_str_eq(got, "abbc");
    store_close(st);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}
END_TEST

static int progress_count(void *ctx, size_t done, size_t total, const uint8_t *name, size_t n,
                          tdm_err err)
{
    (void)name;
    (void)n;
    ck_assert_int_eq(err, TDM_OK);
    ck_assert_uint_le(done, total);
    ++*(size_t *)ctx;
    return 0;
}

START_TEST(test_compaction)
{
    store_opts o = {.no_auto_compact = true};
    store *st = open_store(&o);
    su_editor ed, other;
    su_editor_init(&ed, 11, 5);
    su_editor_init(&other, 12, 6);
    for (int i = 0; i < 1200; i++) {
        su_edit(&ed, 6);
        app(st, "c", &ed.upd);
    }
    flush(st);
    store_doc_meta before, after;
    ck_assert_int_eq(store_doc_info(st, NM("c"), &before), TDM_OK);
    ck_assert_uint_eq(before.updates, 1200);
    ck_assert_int_eq(store_compact_doc(st, NM("c")), TDM_OK);
    ck_assert_int_eq(store_doc_info(st, NM("c"), &after), TDM_OK);
    ck_assert_uint_eq(after.updates, 0);
    ck_assert_uint_eq(after.log_bytes, 0);
    ck_assert_uint_gt(after.snapshot_bytes, 0);
    ck_assert_uint_lt(after.snapshot_bytes, before.log_bytes);
    ck_assert_uint_eq(after.next_seq, 1201);
    ck_assert_uint_eq(after.text_len, crdt_doc_len(ed.doc));
    ck_assert_uint_eq(after.clients, 1);
    ck_assert_uint_eq(after.compactions, 1);
    crdt_doc *doc;
    ck_assert_int_eq(store_doc_load(st, NM("c"), NULL, &doc, NULL), TDM_OK);
    su_assert_same(doc, ed.doc);
    crdt_doc_free(doc);
    walk_ctx w = {1, 0};
    ck_assert_int_eq(store_log_range(st, NM("c"), 0, walk_log, &w), TDM_OK);
    ck_assert_uint_eq(w.count, 0);

    /* more edits, from a second replica too; one of its updates is held back
     * so the next ones stay pending: compaction must keep them */
    for (int i = 0; i < 50; i++) {
        su_edit(&ed, 6);
        app(st, "c", &ed.upd);
    }
    tbuf held;
    tbuf_init(&held, 0);
    tbuf u;
    tbuf_init(&u, 0);
    ck_assert_int_eq(crdt_doc_diff(ed.doc, NULL, &u), TDM_OK);
    ck_assert_int_eq(crdt_doc_apply(other.doc, u.data, u.len), TDM_OK);
    ck_assert_int_eq(crdt_doc_state_vector(other.doc, other.sv), TDM_OK);
    su_edit(&other, 4);
    ck_assert_int_eq(tbuf_append(&held, other.upd.data, other.upd.len), TDM_OK);
    for (int i = 0; i < 10; i++) {
        su_edit(&other, 4);
        app(st, "c", &other.upd);
    }
    flush(st);
    ck_assert_int_eq(store_compact_doc(st, NM("c")), TDM_OK);
    ck_assert_int_eq(store_doc_info(st, NM("c"), &after), TDM_OK);
    ck_assert_uint_eq(after.updates, 10); /* the pending ones stay in the log */
    ck_assert_int_eq(store_doc_load(st, NM("c"), NULL, &doc, NULL), TDM_OK);
    ck_assert_uint_gt(crdt_doc_pending(doc), 0);
    su_assert_same(doc, ed.doc);
    crdt_doc_free(doc);
    size_t problems = 0;
    ck_assert_int_eq(store_verify_doc(st, NM("c"), NULL, NULL, &problems), TDM_EPENDING_FULL);
    ck_assert_uint_eq(problems, 1);
    /* the missing update arrives: everything applies and compacts away */
    ck_assert_int_eq(store_append(st, NM("c"), held.data, held.len, NULL), TDM_OK);
    ck_assert_int_eq(store_compact_doc(st, NM("c")), TDM_OK);
    ck_assert_int_eq(store_doc_info(st, NM("c"), &after), TDM_OK);
    ck_assert_uint_eq(after.updates, 0);
    ck_assert_uint_eq(after.clients, 2);
    ck_assert_int_eq(store_doc_load(st, NM("c"), NULL, &doc, NULL), TDM_OK);
    ck_assert_uint_eq(crdt_doc_pending(doc), 0);
    su_assert_same(doc, other.doc);
    crdt_doc_free(doc);
    ck_assert_int_eq(store_verify_doc(st, NM("c"), NULL, NULL, &problems), TDM_OK);

    /* compact_all over several documents, with progress */
    for (int d = 0; d < 5; d++) {
        char name[8];
        snprintf(name, sizeof name, "m%d", d);
        for (int i = 0; i < 20; i++) {
            su_edit(&ed, 3);
            app(st, name, &ed.upd);
        }
    }
    flush(st);
    ck_assert_int_eq(store_compact_doc(st, NM("nope")), TDM_ENOTFOUND);
    size_t calls = 0, compacted = 0;
    ck_assert_int_eq(store_compact_all(st, progress_count, &calls, &compacted), TDM_OK);
    ck_assert_uint_eq(calls, 5);
    ck_assert_uint_eq(compacted, 5);

    /* whole-file compacted copy: opens and loads the same */
    char copy[4200];
    snprintf(copy, sizeof copy, "%s/copy", g_dir);
    ck_assert_int_eq(mkdir(copy, 0700), 0);
    ck_assert_int_eq(store_copy_compact(st, copy), TDM_OK);
    ck_assert_int_eq(store_copy_compact(st, copy), TDM_EIO); /* not empty */
    store *cp = NULL;
    store_opts ro = {.read_only = true};
    ck_assert_int_eq(store_open(copy, &ro, &cp), TDM_OK);
    ck_assert_int_eq(store_doc_load(cp, NM("c"), NULL, &doc, NULL), TDM_OK);
    su_assert_same(doc, other.doc);
    crdt_doc_free(doc);
    ck_assert_int_eq(store_doc_load(cp, NM("m4"), NULL, &doc, NULL), TDM_OK);
    crdt_doc_free(doc);
    store_close(cp);
    char f1[4300], f2[4300];
    snprintf(f1, sizeof f1, "%s/data.mdb", g_dir);
    snprintf(f2, sizeof f2, "%s/data.mdb", copy);
    struct stat s1, s2;
    ck_assert_int_eq(stat(f1, &s1), 0);
    ck_assert_int_eq(stat(f2, &s2), 0);
    ck_assert_int_lt(s2.st_size, s1.st_size); /* free pages left out */

    tbuf_fini(&held);
    tbuf_fini(&u);
    su_editor_fini(&ed);
    su_editor_fini(&other);
    store_close(st);
}
END_TEST

START_TEST(test_compaction_gc)
{
    store_opts o = {.no_auto_compact = true, .compact_gc = true};
    store *st = open_store(&o);
    su_editor ed;
    su_editor_init(&ed, 21, 77);
    for (int i = 0; i < 600; i++) {
        su_edit(&ed, 5);
        app(st, "g", &ed.upd);
    }
    flush(st);
    ck_assert_int_eq(store_compact_doc(st, NM("g")), TDM_OK);
    crdt_doc *doc;
    ck_assert_int_eq(store_doc_load(st, NM("g"), NULL, &doc, NULL), TDM_OK);
    su_assert_same(doc, ed.doc);
    crdt_doc_free(doc);
    su_editor_fini(&ed);
    store_close(st);
}
END_TEST

/* ------------------------------------------------------------------ chat */

typedef struct chat_seen {
    uint64_t ids[64];
    int n;
} chat_seen;

static int chat_collect(void *ctx, const store_chat_msg *m)
{
    chat_seen *s = ctx;
    ck_assert_int_lt(s->n, 64);
    ck_assert_uint_eq(m->user_len, 5);
    ck_assert(memcmp(m->user, "user1", 5) == 0 || memcmp(m->user, "user2", 5) == 0);
    ck_assert_uint_eq(m->display_len, 6);
    ck_assert_int_gt(m->time_ms, 0);
    char want[32];
    snprintf(want, sizeof want, "hello %llu", (unsigned long long)m->id);
    s->ids[s->n++] = m->id;
    return 0;
}

static void chat_msg(store_chat_msg *m, const char *user, const char *cmid, const char *text)
{
    memset(m, 0, sizeof *m);
    m->user = (const uint8_t *)user;
    m->user_len = strlen(user);
    m->display = (const uint8_t *)"Dörte";
    m->display_len = strlen("Dörte");
    m->cmid = (const uint8_t *)cmid;
    m->cmid_len = cmid ? strlen(cmid) : 0;
    m->text = (const uint8_t *)text;
    m->text_len = strlen(text);
}

START_TEST(test_chat)
{
    store_opts o = {.chat_retention = 20};
    store *st = open_store(&o);
    store_chat_msg m;
    char cmid[16], text[32];
    for (int i = 1; i <= 30; i++) {
        snprintf(cmid, sizeof cmid, "c%d", i);
        snprintf(text, sizeof text, "hello %d", i);
        chat_msg(&m, "user1", cmid, text);
        uint64_t id = 0;
        bool dup = true;
        ck_assert_int_eq(store_chat_append(st, NM("room"), &m, &id, &dup), TDM_OK);
        ck_assert_uint_eq(id, (uint64_t)i);
        ck_assert(!dup);
    }
    uint64_t cnt;
    ck_assert_int_eq(store_chat_count(st, NM("room"), &cnt), TDM_OK);
    ck_assert_uint_eq(cnt, 20); /* retention */
    /* a resend is deduplicated; the same cmid from another user is not */
    chat_msg(&m, "user1", "c25", "again");
    uint64_t id;
    bool dup;
    ck_assert_int_eq(store_chat_append(st, NM("room"), &m, &id, &dup), TDM_OK);
    ck_assert(dup);
    ck_assert_uint_eq(id, 25);
    chat_msg(&m, "user2", "c25", "other");
    ck_assert_int_eq(store_chat_append(st, NM("room"), &m, &id, &dup), TDM_OK);
    ck_assert(!dup);
    ck_assert_uint_eq(id, 31);
    /* a trimmed message's cmid is forgotten with it */
    chat_msg(&m, "user1", "c1", "resent");
    ck_assert_int_eq(store_chat_append(st, NM("room"), &m, &id, &dup), TDM_OK);
    ck_assert(!dup);
    ck_assert_uint_eq(id, 32);
    /* no cmid: never deduplicated */
    chat_msg(&m, "user1", NULL, "x");
    ck_assert_int_eq(store_chat_append(st, NM("room"), &m, &id, &dup), TDM_OK);
    ck_assert_int_eq(store_chat_append(st, NM("room"), &m, &id, &dup), TDM_OK);
    ck_assert_uint_eq(id, 34);
    store_close(st);

    st = open_store(&o);
    chat_seen s = {0};
    ck_assert_int_eq(store_chat_range(st, NM("room"), 0, 0, chat_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 20);
    ck_assert_uint_eq(s.ids[0], 15);
    for (int i = 1; i < s.n; i++) ck_assert_uint_eq(s.ids[i], s.ids[i - 1] + 1);
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(store_chat_range(st, NM("room"), 20, 5, chat_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 5);
    ck_assert_uint_eq(s.ids[0], 21);
    ck_assert_uint_eq(s.ids[4], 25);
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(store_chat_range(st, NM("room"), 34, 0, chat_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 0);
    ck_assert_int_eq(store_chat_range(st, NM("room"), UINT64_MAX, 0, chat_collect, &s), TDM_OK);
    ck_assert_int_eq(store_chat_range(st, NM("none"), 0, 0, chat_collect, &s), TDM_ENOTFOUND);

    /* async variant and caps */
    atomic_store(&g_plain_done, 0);
    chat_msg(&m, "user2", "z", "async");
    ck_assert_int_eq(store_chat_append_async(st, NM("room2"), &m, plain_done, NULL), TDM_OK);
    char big[STORE_CHAT_TEXT_MAX + 1];
    memset(big, 'x', sizeof big);
    m.text = (const uint8_t *)big;
    m.text_len = sizeof big;
    ck_assert_int_eq(store_chat_append(st, NM("room2"), &m, NULL, NULL), TDM_ETOOBIG);
    m.text_len = STORE_CHAT_TEXT_MAX;
    m.cmid_len = STORE_CHAT_CMID_MAX + 1;
    ck_assert_int_eq(store_chat_append(st, NM("room2"), &m, NULL, NULL), TDM_ETOOBIG);
    m.cmid_len = 0;
    m.user_len = 0;
    ck_assert_int_eq(store_chat_append(st, NM("room2"), &m, NULL, NULL), TDM_EINVAL);
    m.user_len = 5;
    ck_assert_int_eq(store_chat_append(st, NM("room2"), &m, &id, NULL), TDM_OK);
    ck_assert_uint_eq(id, 2);
    ck_assert_int_eq(atomic_load(&g_plain_done), 1);
    size_t problems = 1;
    ck_assert_int_eq(store_verify_doc(st, NM("room"), NULL, NULL, &problems), TDM_OK);
    ck_assert_uint_eq(problems, 0);
    store_close(st);
}
END_TEST

/* ------------------------------------------------------------------ push */

typedef struct push_seen {
    int n;
    char users[8][16];
    size_t nrooms[8];
    uint8_t auth0;
} push_seen;

static int push_collect(void *ctx, const uint8_t *user, size_t ulen, const store_push_sub *s)
{
    push_seen *p = ctx;
    ck_assert_int_lt(p->n, 8);
    memcpy(p->users[p->n], user, ulen);
    p->users[p->n][ulen] = 0;
    p->nrooms[p->n] = s->nrooms;
    for (size_t i = 0; i < s->nrooms; i++) ck_assert_uint_ge(s->rooms[i].n, 1);
    ck_assert_uint_eq(s->p256dh_len, 65);
    ck_assert_int_gt(s->created_ms, 0);
    p->auth0 = s->auth[0];
    p->n++;
    return 0;
}

START_TEST(test_push)
{
    store *st = open_store(NULL);
    uint8_t p256[65], auth[16];
    memset(p256, 4, sizeof p256);
    memset(auth, 1, sizeof auth);
    store_bytes rooms[2] = {{(const uint8_t *)"r1", 2}, {(const uint8_t *)"room-two", 8}};
    store_push_sub s = {.endpoint = (const uint8_t *)"https://push.example/a",
                        .endpoint_len = 22,
                        .p256dh = p256,
                        .p256dh_len = 65,
                        .auth = auth,
                        .auth_len = 16,
                        .rooms = rooms,
                        .nrooms = 2};
    ck_assert_int_eq(store_push_put(st, NM("alice"), &s), TDM_OK);
    s.endpoint = (const uint8_t *)"https://push.example/b";
    s.nrooms = 1;
    ck_assert_int_eq(store_push_put(st, NM("alice"), &s), TDM_OK);
    s.nrooms = 0;
    ck_assert_int_eq(store_push_put(st, NM("bob"), &s), TDM_OK);
    ck_assert_int_eq(store_push_put(st, NM("alic"), &s), TDM_OK); /* a prefix of alice */
    push_seen ps = {0};
    ck_assert_int_eq(store_push_list(st, NM("alice"), push_collect, &ps), TDM_OK);
    ck_assert_int_eq(ps.n, 2);
    memset(&ps, 0, sizeof ps);
    ck_assert_int_eq(store_push_list(st, NULL, 0, push_collect, &ps), TDM_OK);
    ck_assert_int_eq(ps.n, 4);
    /* replace: same user and endpoint */
    auth[0] = 9;
    s.nrooms = 2;
    ck_assert_int_eq(store_push_put(st, NM("bob"), &s), TDM_OK);
    memset(&ps, 0, sizeof ps);
    ck_assert_int_eq(store_push_list(st, NM("bob"), push_collect, &ps), TDM_OK);
    ck_assert_int_eq(ps.n, 1);
    ck_assert_uint_eq(ps.nrooms[0], 2);
    ck_assert_uint_eq(ps.auth0, 9);
    /* delete */
    ck_assert_int_eq(store_push_del(st, NM("alice"), NM("https://push.example/a")), TDM_OK);
    ck_assert_int_eq(store_push_del(st, NM("alice"), NM("https://push.example/a")), TDM_ENOTFOUND);
    ck_assert_int_eq(store_push_del(st, NM("carol"), NM("https://push.example/a")), TDM_ENOTFOUND);
    memset(&ps, 0, sizeof ps);
    ck_assert_int_eq(store_push_list(st, NM("alice"), push_collect, &ps), TDM_OK);
    ck_assert_int_eq(ps.n, 1);
    ck_assert_uint_eq(ps.nrooms[0], 1);
    /* caps */
    s.p256dh_len = STORE_PUSH_KEY_MAX + 1;
    ck_assert_int_eq(store_push_put(st, NM("bob"), &s), TDM_ETOOBIG);
    s.p256dh_len = 65;
    s.nrooms = STORE_PUSH_ROOMS_MAX + 1;
    ck_assert_int_eq(store_push_put(st, NM("bob"), &s), TDM_ETOOBIG);
    s.nrooms = 0;
    s.auth_len = 0;
    ck_assert_int_eq(store_push_put(st, NM("bob"), &s), TDM_EINVAL);
    store_close(st);
}
END_TEST

/* ------------------------------------------------------------------ OT history */

typedef struct ot_seen {
    uint64_t first, last;
    int n;
} ot_seen;

static int ot_collect(void *ctx, uint64_t version, const uint8_t *p, size_t n)
{
    ot_seen *s = ctx;
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(p[0], (uint8_t)version);
    if (!s->n) s->first = version;
    s->last = version;
    s->n++;
    return 0;
}

START_TEST(test_ot_history)
{
    store_opts o = {.ot_retention = 10};
    store *st = open_store(&o);
    for (uint64_t v = 5; v < 31; v++) {
        uint8_t b = (uint8_t)v;
        ck_assert_int_eq(store_ot_append(st, NM("o"), v, &b, 1), TDM_OK);
    }
    uint8_t b = 1;
    ck_assert_int_eq(store_ot_append(st, NM("o"), 30, &b, 1), TDM_ECONFLICT);
    ck_assert_int_eq(store_ot_append(st, NM("o"), 32, &b, 1), TDM_ECONFLICT);
    store_close(st);
    st = open_store(&o);
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, NM("o"), &m), TDM_OK);
    ck_assert_uint_eq(m.ot_first, 21);
    ck_assert_uint_eq(m.ot_next, 31);
    ot_seen s = {0};
    ck_assert_int_eq(store_ot_range(st, NM("o"), 21, ot_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 10);
    ck_assert_uint_eq(s.first, 21);
    ck_assert_uint_eq(s.last, 30);
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(store_ot_range(st, NM("o"), 28, ot_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 3);
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(store_ot_range(st, NM("o"), 31, ot_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 0);
    ck_assert_int_eq(store_ot_range(st, NM("o"), 20, ot_collect, &s), TDM_ERANGE);
    ck_assert_int_eq(store_ot_range(st, NM("o"), 32, ot_collect, &s), TDM_ERANGE);
    ck_assert_int_eq(store_ot_range(st, NM("x"), 0, ot_collect, &s), TDM_ENOTFOUND);
    /* async append with callback */
    atomic_store(&g_plain_done, 0);
    b = 31;
    ck_assert_int_eq(store_ot_append_async(st, NM("o"), 31, &b, 1, plain_done, NULL), TDM_OK);
    store_close(st);
    ck_assert_int_eq(atomic_load(&g_plain_done), 1);
    st = open_store(&o);
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(store_ot_range(st, NM("o"), 22, ot_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 10);
    ck_assert_uint_eq(s.last, 31);
    size_t problems = 1;
    ck_assert_int_eq(store_verify_doc(st, NM("o"), NULL, NULL, &problems), TDM_OK);
    store_close(st);
}
END_TEST

/* Retention trims in batches: with ot_retention 32 a document holds up to
 * 32 + 2 versions, then the append past that trims back to 32 at once; every
 * version kept is still readable and the trimmed ones are refused. */
START_TEST(test_ot_trim_in_batches)
{
    store_opts o = {.ot_retention = 32};
    store *st = open_store(&o);
    store_doc_meta m;
    for (uint64_t v = 0; v < 34; v++) {
        uint8_t b = (uint8_t)v;
        ck_assert_int_eq(store_ot_append(st, NM("t"), v, &b, 1), TDM_OK);
    }
    ck_assert_int_eq(store_doc_info(st, NM("t"), &m), TDM_OK);
    ck_assert_uint_eq(m.ot_first, 0); /* 34 held: within 32 + 32/16 */
    ck_assert_uint_eq(m.ot_next, 34);
    uint8_t b = 34;
    ck_assert_int_eq(store_ot_append(st, NM("t"), 34, &b, 1), TDM_OK);
    ck_assert_int_eq(store_doc_info(st, NM("t"), &m), TDM_OK);
    ck_assert_uint_eq(m.ot_first, 3); /* 35 held: back to 32 in one go */
    ck_assert_uint_eq(m.ot_next, 35);
    ot_seen s = {0};
    ck_assert_int_eq(store_ot_range(st, NM("t"), 3, ot_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 32);
    ck_assert_uint_eq(s.last, 34);
    ck_assert_int_eq(store_ot_range(st, NM("t"), 2, ot_collect, &s), TDM_ERANGE);
    size_t problems = 1;
    ck_assert_int_eq(store_verify_doc(st, NM("t"), NULL, NULL, &problems), TDM_OK);
    ck_assert_uint_eq(problems, 0);
    store_close(st);
}
END_TEST

/* Records with their submitter (format 2) next to records without one
 * (format 1, as written before submitters were kept), and the combined
 * update + OT job. */
typedef struct rec_seen {
    uint64_t version[16], src[16], op_id[16];
    uint8_t first_byte[16];
    int n;
} rec_seen;

static int rec_collect(void *ctx, const store_ot_rec *r)
{
    rec_seen *s = ctx;
    ck_assert_int_lt(s->n, 16);
    ck_assert_uint_ge(r->op_len, 1);
    s->version[s->n] = r->version;
    s->src[s->n] = r->src;
    s->op_id[s->n] = r->op_id;
    s->first_byte[s->n] = r->op[0];
    s->n++;
    return 0;
}

START_TEST(test_ot_records_with_submitter)
{
    store_opts o = {.ot_retention = 6};
    store *st = open_store(&o);
    uint8_t b = 0;
    /* version 0: the old API (no submitter: format 1) */
    ck_assert_int_eq(store_ot_append(st, NM("s"), 0, &b, 1), TDM_OK);
    /* versions 1, 2: an OT client's operations; 3: a CRDT change (src 0) */
    uint8_t op2[3] = {1, 2, 3};
    store_ot_rec r = {.version = 1, .src = 0x1234567890abULL, .op_id = 7, .op = op2, .op_len = 3};
    ck_assert_int_eq(store_ot_put(st, NM("s"), &r), TDM_OK);
    r.version = 2, r.op_id = 9, op2[0] = 2;
    ck_assert_int_eq(store_ot_put(st, NM("s"), &r), TDM_OK);
    b = 3;
    store_ot_rec crdt = {.version = 3, .op = &b, .op_len = 1};
    ck_assert_int_eq(store_ot_put(st, NM("s"), &crdt), TDM_OK);
    /* bad input changes nothing */
    ck_assert_int_eq(store_ot_put(st, NM("s"), NULL), TDM_EINVAL);
    store_ot_rec empty = {.version = 4, .src = 1, .op_id = 1, .op = &b, .op_len = 0};
    ck_assert_int_eq(store_ot_put(st, NM("s"), &empty), TDM_EINVAL);
    r.version = 9; /* not contiguous */
    ck_assert_int_eq(store_ot_put(st, NM("s"), &r), TDM_ECONFLICT);
    store_close(st);

    st = open_store(&o);
    rec_seen s = {0};
    ck_assert_int_eq(store_ot_range_rec(st, NM("s"), 0, rec_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 4);
    ck_assert_uint_eq(s.src[0], 0); /* the format-1 record reads as "no submitter" */
    ck_assert_uint_eq(s.op_id[0], 0);
    ck_assert_uint_eq(s.first_byte[0], 0);
    ck_assert_uint_eq(s.src[1], 0x1234567890abULL);
    ck_assert_uint_eq(s.op_id[1], 7);
    ck_assert_uint_eq(s.first_byte[1], 1);
    ck_assert_uint_eq(s.op_id[2], 9);
    ck_assert_uint_eq(s.first_byte[2], 2);
    ck_assert_uint_eq(s.src[3], 0);
    ck_assert_uint_eq(s.version[3], 3);
    /* the plain walk sees the operations alone, whatever the format */
    ot_seen os = {0};
    ck_assert_int_eq(store_ot_range(st, NM("s"), 3, ot_collect, &os), TDM_OK);
    ck_assert_int_eq(os.n, 1);

    /* the combined job: the update and the OT record in one transaction */
    su_editor ed;
    su_editor_init(&ed, 5, 11);
    atomic_store(&g_plain_done, 0);
    for (uint64_t v = 4; v < 10; v++) {
        su_edit(&ed, 4);
        b = (uint8_t)v;
        store_ot_rec c = {.version = v, .src = 77, .op_id = 2 * v + 1, .op = &b, .op_len = 1};
        ck_assert_int_eq(
            store_append_ot_async(st, NM("s"), ed.upd.data, ed.upd.len, &c, plain_done, NULL),
            TDM_OK);
    }
    /* a record that does not continue the history: the update is still
     * stored (its result is what the callback gets), the history is not */
    su_edit(&ed, 4);
    store_ot_rec gap = {.version = 42, .src = 77, .op_id = 99, .op = &b, .op_len = 1};
    ck_assert_int_eq(
        store_append_ot_async(st, NM("s"), ed.upd.data, ed.upd.len, &gap, plain_done, NULL),
        TDM_OK);
    ck_assert_int_eq(store_append_ot_async(st, NM("s"), NULL, 0, &gap, plain_done, NULL),
                     TDM_EINVAL);
    ck_assert_int_eq(
        store_append_ot_async(st, NM("s"), ed.upd.data, ed.upd.len, NULL, plain_done, NULL),
        TDM_EINVAL);
    store_close(st);
    ck_assert_int_eq(atomic_load(&g_plain_done), 7);

    st = open_store(&o);
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, NM("s"), &m), TDM_OK);
    ck_assert_uint_eq(m.updates, 7);
    ck_assert_uint_eq(m.ot_next, 10);
    ck_assert_uint_eq(m.ot_first, 4); /* retention 6 trimmed 0..3, formats mixed */
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(store_ot_range_rec(st, NM("s"), 4, rec_collect, &s), TDM_OK);
    ck_assert_int_eq(s.n, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert_uint_eq(s.version[i], 4 + (uint64_t)i);
        ck_assert_uint_eq(s.src[i], 77);
        ck_assert_uint_eq(s.op_id[i], 2 * s.version[i] + 1);
        ck_assert_uint_eq(s.first_byte[i], (uint8_t)s.version[i]);
    }
    crdt_doc *doc;
    crdt_doc_opts dopt = {.client = 9};
    ck_assert_int_eq(store_doc_load(st, NM("s"), &dopt, &doc, &m), TDM_OK);
    su_assert_same(doc, ed.doc);
    crdt_doc_free(doc);
    size_t problems = 1;
    ck_assert_int_eq(store_verify_doc(st, NM("s"), NULL, NULL, &problems), TDM_OK);
    ck_assert_uint_eq(problems, 0);
    su_editor_fini(&ed);
    store_close(st);
}
END_TEST

/* ------------------------------------------------------------------ damage */

/* Overwrite the value of key (id|n) in sub-database `db` with v[0..n). */
static void raw_put(const char *db, uint64_t id, uint64_t n, const void *v, size_t vn)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_open(env, g_dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, db, 0, &dbi), 0);
    uint8_t kb[16];
    for (int i = 0; i < 8; i++) {
        kb[i] = (uint8_t)(id >> (56 - 8 * i));
        kb[8 + i] = (uint8_t)(n >> (56 - 8 * i));
    }
    MDB_val k = {strcmp(db, "log") && strcmp(db, "chat") ? 8 : 16, kb}, val = {vn, (void *)v};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &val, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

typedef struct problems_seen {
    int n;
    uint64_t at[8];
} problems_seen;

static void on_problem(void *ctx, const char *what, uint64_t at, tdm_err err)
{
    problems_seen *p = ctx;
    ck_assert_ptr_nonnull(what);
    ck_assert_int_ne(err, TDM_OK);
    if (p->n < 8) p->at[p->n] = at;
    p->n++;
}

START_TEST(test_corrupt_values)
{
    store_opts o = {.no_auto_compact = true};
    store *st = open_store(&o);
    su_editor ed;
    su_editor_init(&ed, 31, 8);
    for (int i = 0; i < 20; i++) {
        su_edit(&ed, 4);
        ck_assert_int_eq(store_append(st, NM("d"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    }
    store_chat_msg m;
    chat_msg(&m, "user1", "c", "hi");
    ck_assert_int_eq(store_chat_append(st, NM("d"), &m, NULL, NULL), TDM_OK);
    store_doc_meta meta;
    ck_assert_int_eq(store_doc_info(st, NM("d"), &meta), TDM_OK);
    uint64_t id = meta.id;
    store_close(st);

    /* 1. garbage over update 7 */
    raw_put("log", id, 7, "garbage!", 8);
    st = open_store(&o);
    crdt_doc *doc = (crdt_doc *)&doc;
    ck_assert_int_eq(store_doc_load(st, NM("d"), NULL, &doc, NULL), TDM_ECORRUPT);
    ck_assert_ptr_null(doc); /* nothing half-loaded to save over the real one */
    problems_seen ps = {0};
    size_t problems = 0;
    ck_assert_int_eq(store_verify_doc(st, NM("d"), on_problem, &ps, &problems), TDM_ECORRUPT);
    ck_assert_uint_ge(problems, 2); /* the checksum, the replay (and the byte count) */
    ck_assert_uint_eq(ps.at[0], 7);
    ck_assert_int_eq(store_compact_doc(st, NM("d")), TDM_ECORRUPT);
    store_doc_meta after;
    ck_assert_int_eq(store_doc_info(st, NM("d"), &after), TDM_OK);
    ck_assert_uint_eq(after.updates, 20); /* compaction changed nothing */
    ck_assert_uint_eq(after.snapshot_bytes, 0);
    walk_ctx w = {1, 0};
    ck_assert_int_eq(store_log_range(st, NM("d"), 0, walk_log, &w), TDM_ECORRUPT);
    ck_assert_uint_eq(w.count, 6);
    store_close(st);

    /* 2. a well-framed value (correct tag and CRC) whose update does not decode */
    uint8_t v[5 + 4] = {'L', 0, 0, 0, 0, 0xff, 0xfe, 0x01, 0x02};
    uint32_t crc = zip_crc32(0, v, 1);
    crc = zip_crc32(crc, v + 5, 4);
    v[1] = (uint8_t)(crc >> 24);
    v[2] = (uint8_t)(crc >> 16);
    v[3] = (uint8_t)(crc >> 8);
    v[4] = (uint8_t)crc;
    raw_put("log", id, 7, v, sizeof v);
    st = open_store(&o);
    ck_assert_int_eq(store_doc_load(st, NM("d"), NULL, &doc, NULL), TDM_ECORRUPT);
    ck_assert_ptr_null(doc);
    memset(&ps, 0, sizeof ps);
    ck_assert_int_eq(store_verify_doc(st, NM("d"), on_problem, &ps, &problems), TDM_ECORRUPT);
    ck_assert_int_ge(ps.n, 1);
    store_close(st);

    /* 3. a corrupt chat record and corrupt metadata */
    raw_put("chat", id, 1, "\x43zzzzzz", 7);
    st = open_store(&o);
    chat_seen cs = {0};
    ck_assert_int_eq(store_chat_range(st, NM("d"), 0, 0, chat_collect, &cs), TDM_ECORRUPT);
    ck_assert_int_eq(cs.n, 0);
    store_close(st);
    raw_put("docs", id, 0, "M\0\0\0\0short", 10);
    st = open_store(&o);
    ck_assert_int_eq(store_doc_info(st, NM("d"), &meta), TDM_ECORRUPT);
    ck_assert_int_eq(store_doc_load(st, NM("d"), NULL, &doc, NULL), TDM_ECORRUPT);
    ck_assert_ptr_null(doc);
    ck_assert_int_eq(store_append(st, NM("d"), ed.upd.data, ed.upd.len, NULL), TDM_ECORRUPT);
    ck_assert_int_eq(store_verify_doc(st, NM("d"), NULL, NULL, &problems), TDM_ECORRUPT);
    ck_assert_int_eq(store_list_docs(st, count_docs, &ps.n, NULL), TDM_ECORRUPT);
    /* other documents are unaffected */
    ck_assert_int_eq(store_append(st, NM("e"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    store_close(st);
    su_editor_fini(&ed);

    /* 4. a file that is not an LMDB database */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/bad", g_dir);
    ck_assert_int_eq(mkdir(bad, 0700), 0);
    char f[4300];
    snprintf(f, sizeof f, "%s/data.mdb", bad);
    FILE *fp = fopen(f, "w");
    ck_assert_ptr_nonnull(fp);
    for (int i = 0; i < 4096; i++) fputc('x', fp);
    fclose(fp);
    store *bs = NULL;
    ck_assert_int_eq(store_open(bad, NULL, &bs), TDM_ECORRUPT);
    ck_assert_ptr_null(bs);
}
END_TEST

/* ------------------------------------------------------------------ map full */

START_TEST(test_map_grows)
{
    store_opts o = {.map_size = 64 << 10, .no_auto_compact = true};
    store *st = open_store(&o);
    su_editor ed;
    su_editor_init(&ed, 41, 9);
    for (int i = 0; i < 3000; i++) {
        su_edit(&ed, 40);
        app(st, "big", &ed.upd);
    }
    flush(st);
    store_stats ss;
    ck_assert_int_eq(store_get_stats(st, &ss), TDM_OK);
    ck_assert_uint_gt(ss.grows, 0);
    ck_assert_uint_gt(ss.map_size, 64 << 10);
    ck_assert_int_eq(store_compact_doc(st, NM("big")), TDM_OK);
    store_close(st);
    st = open_store(&o); /* the file is larger than the requested map now */
    crdt_doc *doc;
    ck_assert_int_eq(store_doc_load(st, NM("big"), NULL, &doc, NULL), TDM_OK);
    su_assert_same(doc, ed.doc);
    crdt_doc_free(doc);
    su_editor_fini(&ed);
    store_close(st);
}
END_TEST

typedef struct res {
    tdm_err err;
    bool done;
} res;

static void res_done(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    res *r = ctx;
    (void)id;
    (void)dup;
    r->err = err;
    r->done = true;
}

START_TEST(test_map_full_capped)
{
    store_opts o = {.map_size = 64 << 10, .map_max = 256 << 10, .no_auto_compact = true};
    store *st = open_store(&o);
    su_editor ed;
    su_editor_init(&ed, 51, 10);
    crdt_doc *last_good;
    ck_assert_int_eq(crdt_doc_new(1, &last_good), TDM_OK);
    enum { CHUNK = 50 };
    tbuf ups[CHUNK];
    for (int i = 0; i < CHUNK; i++) tbuf_init(&ups[i], 0);
    bool failed = false;
    uint64_t ok = 0;
    for (int round = 0; round < 1000 && !failed; round++) {
        res rs[CHUNK] = {{0}};
        for (int i = 0; i < CHUNK; i++) {
            su_edit(&ed, 60);
            tbuf_reset(&ups[i]);
            ck_assert_int_eq(tbuf_append(&ups[i], ed.upd.data, ed.upd.len), TDM_OK);
            ck_assert_int_eq(
                store_append_async(st, NM("full"), ups[i].data, ups[i].len, res_done, &rs[i]),
                TDM_OK);
        }
        ck_assert_int_eq(store_flush(st), TDM_OK);
        for (int i = 0; i < CHUNK; i++) {
            ck_assert(rs[i].done);
            if (rs[i].err == TDM_OK) {
                ok++;
                ck_assert_int_eq(crdt_doc_apply(last_good, ups[i].data, ups[i].len), TDM_OK);
            } else {
                ck_assert_int_eq(rs[i].err, TDM_EFULL);
                failed = true;
            }
        }
    }
    ck_assert(failed);
    ck_assert_uint_gt(ok, 100);
    ck_assert_str_eq(tdm_strerror(TDM_EFULL), "storage is full (map size limit reached)");
    /* the synchronous path reports the same */
    static char blob[200000];
    memset(blob, 'b', sizeof blob);
    ck_assert_int_eq(crdt_doc_insert(ed.doc, 0, blob, sizeof blob), TDM_OK);
    tbuf_reset(&ed.upd);
    ck_assert_int_eq(crdt_doc_diff(ed.doc, ed.sv, &ed.upd), TDM_OK);
    ck_assert_int_eq(store_append(st, NM("full"), ed.upd.data, ed.upd.len, NULL), TDM_EFULL);
    store_stats ss;
    ck_assert_int_eq(store_get_stats(st, &ss), TDM_OK);
    ck_assert_uint_eq(ss.map_size, 256 << 10);
    /* everything committed before is intact */
    crdt_doc *doc;
    store_doc_meta m;
    ck_assert_int_eq(store_doc_load(st, NM("full"), NULL, &doc, &m), TDM_OK);
    su_assert_same(doc, last_good);
    ck_assert_uint_eq(m.updates, ok);
    crdt_doc_free(doc);
    size_t problems = 1;
    tdm_err v = store_verify_doc(st, NM("full"), NULL, NULL, &problems);
    ck_assert(v == TDM_OK || v == TDM_EPENDING_FULL); /* a failed update leaves a gap */
    store_close(st);
    /* a larger cap lets it go on */
    o.map_max = 0;
    st = open_store(&o);
    ck_assert_int_eq(store_append(st, NM("full"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    ck_assert_int_eq(store_doc_load(st, NM("full"), NULL, &doc, NULL), TDM_OK);
    crdt_doc_free(doc);
    store_close(st);
    crdt_doc_free(last_good);
    for (int i = 0; i < CHUNK; i++) tbuf_fini(&ups[i]);
    su_editor_fini(&ed);
}
END_TEST

/* Two processes write one directory at the same time, both with a small map:
 * the child writes far more and grows the map; the parent picks the growth up
 * (MDB_MAP_RESIZED, on its next write or read) and both documents end up
 * complete. */
START_TEST(test_two_processes)
{
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 1) _exit(2);
        store_opts o = {.map_size = 64 << 10, .no_auto_compact = true};
        store *st;
        if (store_open(g_dir, &o, &st)) _exit(3);
        su_editor ed;
        su_editor_init(&ed, 62, 62);
        for (int i = 0; i < 1500; i++) {
            su_edit(&ed, 30);
            if (i % 50 == 49) {
                if (store_append(st, NM("child"), ed.upd.data, ed.upd.len, NULL)) _exit(4);
            } else if (store_append_async(st, NM("child"), ed.upd.data, ed.upd.len, NULL, NULL)) {
                _exit(5);
            }
        }
        if (store_flush(st)) _exit(6);
        crdt_doc *doc;
        if (store_doc_load(st, NM("child"), NULL, &doc, NULL)) _exit(7);
        tbuf a, b;
        tbuf_init(&a, 0);
        tbuf_init(&b, 0);
        if (crdt_doc_text(doc, &a) || crdt_doc_text(ed.doc, &b) || a.len != b.len ||
            memcmp(a.data, b.data, a.len))
            _exit(8);
        _exit(0);
    }
    close(go[0]);
    store_opts o = {.map_size = 64 << 10, .no_auto_compact = true};
    store *st = open_store(&o);
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    close(go[1]);
    su_editor ed;
    su_editor_init(&ed, 61, 61);
    for (int i = 0; i < 100; i++) {
        su_edit(&ed, 3);
        ck_assert_int_eq(store_append(st, NM("parent"), ed.upd.data, ed.upd.len, NULL), TDM_OK);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    crdt_doc *doc;
    ck_assert_int_eq(store_doc_load(st, NM("parent"), NULL, &doc, NULL), TDM_OK);
    su_assert_same(doc, ed.doc);
    crdt_doc_free(doc);
    store_doc_meta m;
    ck_assert_int_eq(store_doc_info(st, NM("child"), &m), TDM_OK);
    ck_assert_uint_eq(m.updates, 1500);
    ck_assert_int_eq(store_verify_doc(st, NM("child"), NULL, NULL, NULL), TDM_OK);
    store_close(st);
    su_editor_fini(&ed);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tb = tcase_create("basic");
    tcase_add_checked_fixture(tb, setup, teardown);
    tcase_add_test(tb, test_open_reopen);
    tcase_add_test(tb, test_not_found_vs_empty);
    tcase_add_test(tb, test_names_meta);
    suite_add_tcase(s, tb);
    TCase *tl = tcase_create("log");
    tcase_add_checked_fixture(tl, setup, teardown);
    tcase_add_test(tl, test_append_load_random);
    tcase_add_test(tl, test_async_group_commit);
    tcase_add_test(tl, test_queue_full_and_rules);
    tcase_add_test(tl, test_queue_block);
    tcase_add_test(tl, test_gather_under_load);
    suite_add_tcase(s, tl);
    TCase *tc = tcase_create("compact");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_compaction);
    tcase_add_test(tc, test_compaction_gc);
    suite_add_tcase(s, tc);
    TCase *tx = tcase_create("records");
    tcase_add_checked_fixture(tx, setup, teardown);
    tcase_add_test(tx, test_chat);
    tcase_add_test(tx, test_push);
    tcase_add_test(tx, test_ot_history);
    tcase_add_test(tx, test_ot_trim_in_batches);
    tcase_add_test(tx, test_ot_records_with_submitter);
    suite_add_tcase(s, tx);
    TCase *td = tcase_create("damage");
    tcase_add_checked_fixture(td, setup, teardown);
    tcase_add_test(td, test_corrupt_values);
    tcase_add_test(td, test_map_grows);
    tcase_add_test(td, test_map_full_capped);
    tcase_add_test(td, test_two_processes);
    suite_add_tcase(s, td);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
