/* store_writer.c - the writer thread: a bounded job queue, group commit (all
 * queued jobs in one transaction, at most one transaction start per
 * opts.gather_us under load), map growth on MDB_MAP_FULL, callbacks after
 * the commit, and automatic compaction. */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

store__job *store__job_new(store__job_kind kind, const void *key, size_t key_len, const void *data,
                           size_t n)
{
    store__job *j = malloc(sizeof *j + key_len + n);
    if (!j) return NULL;
    memset(j, 0, sizeof *j);
    uint8_t *b = (uint8_t *)(j + 1);
    j->kind = kind;
    if (key_len) memcpy(b, key, key_len);
    if (n) memcpy(b + key_len, data, n);
    j->key = b;
    j->key_len = key_len;
    j->data = b + key_len;
    j->n = n;
    j->cost = key_len + n + sizeof *j;
    return j;
}

tdm_err store__enqueue(store *st, store__job *j, bool block)
{
    if (st->read_only || !st->writer_started) {
        free(j);
        return TDM_EINVAL;
    }
    /* Waiting from a callback could deadlock: never block there. */
    if (!store__may_wait(st)) block = false;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (st->stopping) {
            pthread_mutex_unlock(&st->mu);
            free(j);
            return TDM_EINVAL;
        }
        bool empty = st->queued == 0;
        bool room = st->queued < st->opts.queue_max &&
                    st->queued_bytes + j->cost <= st->opts.queue_max_bytes;
        /* One job larger than the byte cap still goes through an empty queue. */
        if (room || (empty && st->queued < st->opts.queue_max)) break;
        if (!block) {
            pthread_mutex_unlock(&st->mu);
            free(j);
            return TDM_ETOOBIG;
        }
        pthread_cond_wait(&st->cv_space, &st->mu);
    }
    j->next = NULL;
    if (st->tail)
        st->tail->next = j;
    else
        st->head = j;
    st->tail = j;
    st->queued++;
    st->queued_bytes += j->cost;
    pthread_cond_signal(&st->cv_work);
    pthread_mutex_unlock(&st->mu);
    return TDM_OK;
}

/* ---- synchronous waiting ----------------------------------------------------- */

typedef struct sync_wait {
    store *st;
    bool done;
    tdm_err err;
    uint64_t id;
    bool dup;
} sync_wait;

static void sync_done(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    sync_wait *w = ctx;
    pthread_mutex_lock(&w->st->mu);
    w->err = err;
    w->id = id;
    w->dup = dup;
    w->done = true;
    pthread_cond_broadcast(&w->st->cv_done);
    pthread_mutex_unlock(&w->st->mu);
}

tdm_err store__run_sync(store *st, store__job *j, uint64_t *id, bool *dup)
{
    if (!store__may_wait(st)) {
        free(j);
        return TDM_EINVAL;
    }
    sync_wait w = {st, false, TDM_OK, 0, false};
    j->cb = sync_done;
    j->ctx = &w;
    tdm_err e = store__enqueue(st, j, true);
    if (e) return e;
    pthread_mutex_lock(&st->mu);
    while (!w.done) pthread_cond_wait(&st->cv_done, &st->mu);
    pthread_mutex_unlock(&st->mu);
    if (id) *id = w.id;
    if (dup) *dup = w.dup;
    return w.err;
}

tdm_err store_flush(store *st)
{
    if (!st) return TDM_EINVAL;
    store__job *j = store__job_new(STORE_JOB_NOP, NULL, 0, NULL, 0);
    if (!j) return TDM_ENOMEM;
    return store__run_sync(st, j, NULL, NULL);
}

/* ---- one batch ------------------------------------------------------------------- */

static int exec_job(store *st, MDB_txn *txn, store__job *j)
{
    switch (j->kind) {
    case STORE_JOB_APPEND:
        return store__exec_append(st, txn, j);
    case STORE_JOB_CHAT:
        return store__exec_chat(st, txn, j);
    case STORE_JOB_OT:
        return store__exec_ot(st, txn, j);
    case STORE_JOB_APPEND_OT:
        return store__exec_append_ot(st, txn, j);
    case STORE_JOB_CREATE:
        return store__exec_create(st, txn, j);
    case STORE_JOB_DELETE:
        return store__exec_delete(st, txn, j);
    case STORE_JOB_COMPACT:
    case STORE_JOB_COMPACT_ID:
        return store__exec_compact(st, txn, j);
    case STORE_JOB_HOLDOFF:
        return store__exec_holdoff(st, txn, j);
    case STORE_JOB_PUSH_PUT:
        return store__exec_push_put(st, txn, j);
    case STORE_JOB_PUSH_DEL:
        return store__exec_push_del(st, txn, j);
    case STORE_JOB_NOP:
        return 0;
    }
    j->err = TDM_EINVAL;
    return 0;
}

static void fail_all(store__job *list, tdm_err e)
{
    for (store__job *j = list; j; j = j->next)
        if (!j->skip && j->kind != STORE_JOB_NOP) j->err = e;
}

/* Grow the map after MDB_MAP_FULL. Returns 0 when it grew. */
static int grow_map(store *st)
{
    MDB_envinfo info;
    int rc = mdb_env_info(st->env, &info);
    if (rc) return rc;
    size_t cur = info.me_mapsize;
    if (cur >= st->opts.map_max) return MDB_MAP_FULL;
    size_t next = cur > st->opts.map_max / 2 ? st->opts.map_max : cur * 2;
    rc = store__resize(st, next);
    if (rc) return rc == ENOMEM ? MDB_MAP_FULL : rc;
    pthread_mutex_lock(&st->mu);
    st->stats.grows++;
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* After a commit: the documents it pushed past the compaction threshold
 * wait in `compact` for the journal to have moved. */
static void keep_touched(store *st)
{
    for (size_t i = 0; i < st->ntouched; i++) {
        size_t k = 0;
        while (k < st->ncompact && st->compact[k] != st->touched[i]) k++;
        if (k == st->ncompact && st->ncompact < STORE_TOUCHED_MAX)
            st->compact[st->ncompact++] = st->touched[i];
    }
    st->ntouched = 0;
}

static bool journaled(const store__job *j)
{
    return !j->skip && (j->kind == STORE_JOB_APPEND || j->kind == STORE_JOB_OT ||
                        j->kind == STORE_JOB_APPEND_OT);
}

/* Whether the batch's records would fill more pages in the journal than the
 * last leaf pages of their documents (a few documents written many times:
 * the journal would only write every record twice). Counts at most
 * DENSE_DOCS_MAX documents (more: not dense). */
#define DENSE_DOCS_MAX 64u
static bool dense_batch(const store__job *list)
{
    uint64_t bytes = 0;
    for (const store__job *j = list; j; j = j->next)
        if (journaled(j)) bytes += j->n + j->n2 + 24;
    uint64_t docs_max = bytes / 4096u; /* the documents the records outweigh */
    if (docs_max == 0) return false;
    if (docs_max > DENSE_DOCS_MAX) docs_max = DENSE_DOCS_MAX;
    uint64_t seen[DENSE_DOCS_MAX];
    size_t ndocs = 0;
    for (const store__job *j = list; j; j = j->next) {
        if (!journaled(j)) continue;
        uint64_t h = store__fnv64(j->key, j->key_len);
        size_t i = 0;
        while (i < ndocs && seen[i] != h) i++;
        if (i < ndocs) continue;
        if (ndocs + 1 > docs_max) return false;
        seen[ndocs++] = h;
    }
    return true;
}

/* A dense batch writes straight into the trees once the journal is empty
 * (so that every document's tree entries stay older than its journal
 * entries): a journal of at most DENSE_MOVE_MAX records (left by a small
 * batch in between) moves first, in the same transaction. Sets
 * st->batch_direct; returns an LMDB error. */
#define DENSE_MOVE_MAX 256u
static int choose_direct(store *st, MDB_txn *txn, const store__job *list)
{
    st->batch_direct = false;
    if (!st->has_jrnl || st->jrnl_stuck || st->jrnl_direct || st->opts.journal_always ||
        !dense_batch(list))
        return 0;
    MDB_stat js;
    int rc = mdb_stat(txn, st->db_jrnl, &js);
    if (rc) return rc;
    if (js.ms_entries > DENSE_MOVE_MAX) return 0;
    if (js.ms_entries > 0) {
        rc = store__jrnl_migrate(st, txn);
        if (rc || st->jrnl_stuck) return rc;
    }
    st->batch_direct = true;
    return 0;
}

/* Run a list of jobs in one write transaction, retrying after map growth or
 * without a job that failed after writing. Sets every job's result. With
 * `migrate`, or when due, the journal moves in the same transaction. */
static void run_batch(store *st, store__job *list, bool migrate)
{
    for (int attempt = 0;; attempt++) {
        st->ntouched = 0;
        for (store__job *j = list; j; j = j->next)
            if (!j->skip) {
                j->err = TDM_OK;
                j->id = 0;
                j->dup = false;
            }
        store__gate_enter(st);
        MDB_txn *txn = NULL;
        int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
        if (rc == MDB_MAP_RESIZED) {
            store__gate_leave(st);
            rc = store__resize(st, 0);
            if (rc) {
                fail_all(list, store__err(rc));
                return;
            }
            continue;
        }
        if (rc) {
            store__gate_leave(st);
            fail_all(list, store__err(rc));
            return;
        }
        store__job *culprit = NULL;
        rc = choose_direct(st, txn, list);
        for (store__job *j = list; j && !rc; j = j->next) {
            if (j->skip) continue;
            rc = exec_job(st, txn, j);
            if (rc == STORE_RC_REDO) culprit = j;
        }
        if (!rc && (migrate || store__jrnl_due(st, txn))) rc = store__jrnl_migrate(st, txn);
        bool direct = st->batch_direct;
        st->batch_direct = false;
        if (rc)
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
        store__gate_leave(st);
        if (rc == 0) {
            keep_touched(st);
            if (direct) {
                pthread_mutex_lock(&st->mu);
                st->stats.direct_batches++;
                pthread_mutex_unlock(&st->mu);
            }
            return;
        }
        if (rc == STORE_RC_REDO) {
            culprit->skip = true; /* its err is set; redo the rest */
            continue;
        }
        if (rc == MDB_MAP_FULL && attempt < 64) {
            int g = grow_map(st);
            if (g == 0) continue;
            rc = g;
        }
        st->ntouched = 0;
        fail_all(list, store__err(rc));
        return;
    }
}

static bool heavy(const store__job *j)
{
    return j->kind == STORE_JOB_COMPACT || j->kind == STORE_JOB_COMPACT_ID ||
           j->kind == STORE_JOB_DELETE;
}

/* Detach the next batch from the queue (mu held): everything queued up to
 * the caps; heavy jobs (compaction, delete) run alone. */
static store__job *take_batch(store *st, size_t *count)
{
    store__job *first = st->head, *last = first;
    size_t n = 1, bytes = first->cost;
    if (!heavy(first)) {
        while (last->next && !heavy(last->next) && n < STORE_BATCH_MAX &&
               bytes + last->next->cost <= STORE_BATCH_BYTES) {
            last = last->next;
            bytes += last->cost;
            n++;
        }
    }
    st->head = last->next;
    if (!st->head) st->tail = NULL;
    last->next = NULL;
    size_t cost = 0;
    for (store__job *j = first; j; j = j->next) cost += j->cost;
    st->queued -= n;
    st->queued_bytes -= cost;
    *count = n;
    return first;
}

static void deliver(store__job *list)
{
    while (list) {
        store__job *next = list->next;
        if (list->cb) list->cb(list->ctx, list->err, list->id, list->dup);
        free(list);
        list = next;
    }
}

/* Compact the documents recent commits pushed past the threshold, each in
 * its own transaction. A compaction moves the journal first: while jobs are
 * waiting this waits for the next regular move (at most
 * opts.journal_ms), so that a busy store does not move its journal
 * once per compacted document. A failure holds the document off for another
 * compact_updates appends. */
static void auto_compact(store *st)
{
    if (store__jrnl_waiting(st)) {
        pthread_mutex_lock(&st->mu);
        bool busy = st->head != NULL && !st->stopping;
        pthread_mutex_unlock(&st->mu);
        if (busy) return;
        run_batch(st, NULL, true);
    }
    size_t n = st->ncompact;
    uint64_t ids[STORE_TOUCHED_MAX];
    memcpy(ids, st->compact, n * sizeof ids[0]);
    st->ncompact = 0;
    for (size_t i = 0; i < n; i++) {
        store__job *j = store__job_new(STORE_JOB_COMPACT_ID, NULL, 0, NULL, 0);
        if (!j) return;
        j->arg = ids[i];
        run_batch(st, j, false);
        tdm_err e = j->err;
        bool hold = j->id != 0; /* exec_compact: still past the threshold */
        free(j);
        pthread_mutex_lock(&st->mu);
        if (e)
            st->stats.compact_failures++;
        else
            st->stats.auto_compactions++;
        pthread_mutex_unlock(&st->mu);
        if (e || hold) {
            store__job *h = store__job_new(STORE_JOB_HOLDOFF, NULL, 0, NULL, 0);
            if (!h) return;
            h->arg = ids[i];
            run_batch(st, h, false);
            free(h);
        }
    }
}

/* The minimum time between the starts of two write transactions, in
 * nanoseconds (0: none): TANDEM_STORE_GATHER_US when set (decimal
 * microseconds, 0 = off, at most STORE_GATHER_MAX_US), else opts.gather_us. */
static uint64_t gather_ns(const store *st)
{
    uint64_t us = st->opts.gather_us;
    const char *v = getenv("TANDEM_STORE_GATHER_US");
    if (v && *v >= '0' && *v <= '9') {
        char *end = NULL;
        unsigned long x = strtoul(v, &end, 10);
        if (*end == '\0' && x <= STORE_GATHER_MAX_US) us = x;
    }
    if (us > STORE_GATHER_MAX_US) us = STORE_GATHER_MAX_US;
    return us * 1000u;
}

/* Group commit under load: when the previous transaction started less than
 * `gap` ago, sleep (mu released) until `gap` after its start, so the jobs
 * that arrive meanwhile share the next transaction and its fsync. Only under
 * load (the previous batch or the queue holds more than one job: one caller
 * doing one synchronous write after another never waits); not when stopping
 * or when a full batch is already queued. (mu held) */
static void gather(store *st, uint64_t gap, uint64_t last_start, size_t last_n)
{
    if (!gap || !last_start || st->stopping || st->queued >= STORE_BATCH_MAX) return;
    if (last_n < 2 && st->queued < 2) return;
    uint64_t until = last_start + gap, now = store__mono_ns();
    if (now >= until) return; /* idle or slow commits: no wait */
    struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
    pthread_mutex_unlock(&st->mu);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
    pthread_mutex_lock(&st->mu);
}

/* Wait for jobs (mu held). While the journal holds records, wake up when
 * its oldest is opts.journal_ms old: false then (move it, idle). */
static bool wait_work(store *st)
{
    while (!st->head && !st->stopping) {
        if (!store__jrnl_waiting(st)) {
            pthread_cond_wait(&st->cv_work, &st->mu);
            continue;
        }
        struct timespec ts;
        uint64_t now_ms = store__mono_ns() / 1000000u;
        uint64_t due = st->jrnl_first_ms + st->opts.journal_ms;
        if (now_ms >= due) return false;
        clock_gettime(CLOCK_REALTIME, &ts); /* the condition variable's clock */
        uint64_t ns = (uint64_t)ts.tv_nsec + (due - now_ms) * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&st->cv_work, &st->mu, &ts);
    }
    return true;
}

static void *writer_main(void *arg)
{
    store *st = arg;
    uint64_t gap = gather_ns(st), last_start = 0;
    size_t last_n = 0;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (!wait_work(st)) {
            pthread_mutex_unlock(&st->mu);
            run_batch(st, NULL, true);
            /* a move that failed (the disk full, say) is retried after
             * another journal_ms, not at once */
            if (st->jrnl_first_ms) st->jrnl_first_ms = store__mono_ns() / 1000000u;
            if (st->ncompact) auto_compact(st);
            pthread_mutex_lock(&st->mu);
            continue;
        }
        if (!st->head) break;
        gather(st, gap, last_start, last_n);
        last_start = store__mono_ns();
        size_t n;
        store__job *list = take_batch(st, &n);
        last_n = n;
        pthread_cond_broadcast(&st->cv_space);
        pthread_mutex_unlock(&st->mu);

        run_batch(st, list, false);

        pthread_mutex_lock(&st->mu);
        st->stats.batches++;
        st->stats.jobs += n;
        if (n > st->stats.max_batch) st->stats.max_batch = n;
        pthread_mutex_unlock(&st->mu);

        deliver(list);
        if (st->ncompact) auto_compact(st);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    /* close: the journal moves, so the files hold every record in its tree */
    run_batch(st, NULL, true);
    return NULL;
}

tdm_err store__writer_start(store *st)
{
    /* a journal left by a crash moves before store_open returns (on the
     * opening thread: the writer does not run yet) */
    run_batch(st, NULL, true);
    st->jrnl_direct = st->opts.no_journal && !st->jrnl_stuck;
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0) return TDM_ENOMEM;
    st->writer_started = true;
    return TDM_OK;
}

void store__writer_stop(store *st)
{
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_broadcast(&st->cv_work);
    pthread_cond_broadcast(&st->cv_space);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->writer, NULL);
    st->writer_started = false;
}
