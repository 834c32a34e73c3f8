/* store.c - opening and closing the environment, the error mapping, the
 * transaction gate, and the read-side queries on metadata. */
#include "store.h"
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEF_MAP_SIZE      ((size_t)1 << 30)
#define DEF_MAP_MAX       ((size_t)1 << 40)
#define DEF_QUEUE_MAX     65536u
#define DEF_QUEUE_BYTES   ((size_t)64 << 20)
#define DEF_COMPACT_UPD   1000u
#define DEF_COMPACT_BYT   ((uint64_t)1 << 20)
#define DEF_COMPACT_SHARE 1u
#define DEF_OT_KEEP       10000u
#define DEF_CHAT_KEEP     100000u
#define DEF_READERS       126u
#define MAX_READERS       4096u
#define RESIZE_RETRIES    8

/* Depth of read transactions the calling thread has open (through any
 * store): a thread inside a read callback must neither wait for a map resize
 * (its own transaction holds the resize up) nor wait for the writer. Thread
 * state, not shared state. */
static _Thread_local unsigned store_tls_depth;

tdm_err store__err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return TDM_OK;
    case MDB_NOTFOUND:
        return TDM_ENOTFOUND;
    case MDB_KEYEXIST:
        return TDM_ECONFLICT;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
        return TDM_EFULL;
    case ENOMEM:
        return TDM_ENOMEM;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_INCOMPATIBLE:
    case MDB_BAD_VALSIZE:
        return TDM_ECORRUPT;
    case MDB_VERSION_MISMATCH:
        return TDM_EVERSION;
    case MDB_TXN_FULL:
        return TDM_ETOOBIG;
    case EINVAL:
        return TDM_EINVAL;
    default:
        return TDM_EIO;
    }
}

int64_t store__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t store__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- gate ---------------------------------------------------------------- */

void store__gate_enter(store *st)
{
    store__gate *g = &st->gate;
    pthread_mutex_lock(&g->mu);
    /* A thread that already holds a transaction must not wait for a pending
     * resize (it waits for that very transaction); nobody enters while the
     * map is being replaced, which starts only once no transaction is open. */
    while ((g->resizing && store_tls_depth == 0) || g->mapping) pthread_cond_wait(&g->cv, &g->mu);
    g->active++;
    pthread_mutex_unlock(&g->mu);
    store_tls_depth++;
}

void store__gate_leave(store *st)
{
    store__gate *g = &st->gate;
    store_tls_depth--;
    pthread_mutex_lock(&g->mu);
    g->active--;
    if (g->active == 0) pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

int store__resize(store *st, size_t size)
{
    store__gate *g = &st->gate;
    pthread_mutex_lock(&g->mu);
    while (g->resizing) pthread_cond_wait(&g->cv, &g->mu);
    g->resizing = true;
    while (g->active > 0) pthread_cond_wait(&g->cv, &g->mu);
    g->mapping = true;
    pthread_mutex_unlock(&g->mu);
    int rc = mdb_env_set_mapsize(st->env, size);
    pthread_mutex_lock(&g->mu);
    g->mapping = false;
    g->resizing = false;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

bool store__may_wait(store *st)
{
    if (store_tls_depth > 0) return false;
    if (st->writer_started && pthread_equal(pthread_self(), st->writer)) return false;
    return true;
}

tdm_err store__rd_begin(store *st, MDB_txn **txn)
{
    for (int i = 0; i < RESIZE_RETRIES; i++) {
        store__gate_enter(st);
        int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
        if (rc == MDB_SUCCESS) return TDM_OK;
        store__gate_leave(st);
        if (rc != MDB_MAP_RESIZED || store_tls_depth > 0) return store__err(rc);
        rc = store__resize(st, 0); /* another process grew the map */
        if (rc) return store__err(rc);
    }
    return TDM_EIO;
}

void store__rd_end(store *st, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    store__gate_leave(st);
}

/* ---- open / close ---------------------------------------------------------- */

static void opts_defaults(store_opts *o)
{
    if (!o->map_size) o->map_size = DEF_MAP_SIZE;
    o->map_size = (o->map_size + 4095) & ~(size_t)4095;
    if (!o->map_max) o->map_max = DEF_MAP_MAX;
    if (o->map_max < o->map_size) o->map_max = o->map_size;
    if (!o->queue_max) o->queue_max = DEF_QUEUE_MAX;
    if (!o->queue_max_bytes) o->queue_max_bytes = DEF_QUEUE_BYTES;
    if (!o->compact_updates) o->compact_updates = DEF_COMPACT_UPD;
    if (!o->compact_bytes) o->compact_bytes = DEF_COMPACT_BYT;
    if (!o->compact_share) o->compact_share = DEF_COMPACT_SHARE;
    if (!o->ot_retention) o->ot_retention = DEF_OT_KEEP;
    if (!o->chat_retention) o->chat_retention = DEF_CHAT_KEEP;
    if (!o->max_readers) o->max_readers = DEF_READERS;
    if (!o->journal_records) o->journal_records = STORE_JRNL_MIGRATE_RECS;
    if (!o->journal_ms) o->journal_ms = STORE_JRNL_MIGRATE_MS;
    const char *j = getenv("TANDEM_STORE_JOURNAL");
    if (j && strcmp(j, "0") == 0) o->no_journal = true;
}

static int open_dbi(MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *dbi)
{
    return mdb_dbi_open(txn, name, flags, dbi);
}

/* Open every sub-database and check (or write) the format record. */
static tdm_err open_dbs(store *st)
{
    MDB_txn *txn = NULL;
    unsigned fl = st->read_only ? 0 : MDB_CREATE;
    int rc = mdb_txn_begin(st->env, NULL, st->read_only ? MDB_RDONLY : 0, &txn);
    if (rc) return store__err(rc);
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"info", &st->db_info},    {"names", &st->db_names}, {"docs", &st->db_docs},
               {"log", &st->db_log},      {"snap", &st->db_snap},   {"chat", &st->db_chat},
               {"cdedup", &st->db_dedup}, {"ot", &st->db_ot},       {"push", &st->db_push}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0] && !rc; i++)
        rc = open_dbi(txn, dbs[i].name, fl, dbs[i].dbi);
    tdm_err e = TDM_OK;
    if (rc == MDB_NOTFOUND) {
        e = TDM_ECORRUPT; /* read-only and a sub-database is missing */
        goto out;
    }
    if (rc) {
        e = store__err(rc);
        goto out;
    }
    MDB_val k = {6, (void *)"format"}, v;
    rc = mdb_get(txn, st->db_info, &k, &v);
    uint32_t format = STORE_FORMAT;
    bool have_format = rc == 0;
    if (rc == MDB_NOTFOUND && st->read_only) {
        e = TDM_ECORRUPT;
        goto out;
    } else if (rc && rc != MDB_NOTFOUND) {
        e = store__err(rc);
        goto out;
    } else if (rc == 0 && v.mv_size != 4) {
        e = TDM_ECORRUPT;
        goto out;
    } else if (rc == 0) {
        format = store__get_u32(v.mv_data);
        if (format < 1 || format > STORE_FORMAT) {
            e = TDM_EVERSION;
            goto out;
        }
    }
    /* Format 1 had no journal: a writable open adds it and says so (an
     * older binary then refuses the store instead of missing records). */
    rc = open_dbi(txn, "jrnl", fl, &st->db_jrnl);
    st->has_jrnl = rc == 0;
    if (rc == MDB_NOTFOUND && format == 1) rc = 0;
    if (rc) {
        e = rc == MDB_NOTFOUND ? TDM_ECORRUPT : store__err(rc);
        goto out;
    }
    if (!st->read_only && (format != STORE_FORMAT || !have_format)) {
        uint8_t b[4];
        store__put_u32(b, STORE_FORMAT);
        MDB_val nv = {4, b};
        rc = mdb_put(txn, st->db_info, &k, &nv, 0);
        if (rc) {
            e = store__err(rc);
            goto out;
        }
    }
    /* Commit also the read-only transaction: dbi handles opened in an
     * aborted transaction are closed with it. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) e = store__err(rc);
out:
    if (txn) mdb_txn_abort(txn);
    return e;
}

static tdm_err open_env(store *st, const char *dir)
{
    int rc = mdb_env_create(&st->env);
    if (rc) return store__err(rc);
    if (!rc) rc = mdb_env_set_maxdbs(st->env, 16);
    if (!rc) rc = mdb_env_set_maxreaders(st->env, st->opts.max_readers);
    if (!rc) rc = mdb_env_set_mapsize(st->env, st->opts.map_size);
    unsigned fl = MDB_NOTLS | (st->read_only ? MDB_RDONLY : 0);
    if (!rc) rc = mdb_env_open(st->env, dir, fl, 0600);
    if (rc == ENOENT) return TDM_ENOTFOUND;
    if (rc) return store__err(rc);
    int dead = 0;
    mdb_reader_check(st->env, &dead);
    return TDM_OK;
}

tdm_err store_open(const char *dir, const store_opts *opts, store **out)
{
    if (!dir || !out || !*dir) return TDM_EINVAL;
    *out = NULL;
    store_opts o = {0};
    if (opts) o = *opts;
    opts_defaults(&o);
    if (o.max_readers > MAX_READERS) return TDM_EINVAL;

    char path[4096];
    int pn = snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (pn < 0 || (size_t)pn >= sizeof path) return TDM_EINVAL;
    struct stat sb;
    if (o.no_create || o.read_only) {
        if (stat(path, &sb) != 0) return errno == ENOENT ? TDM_ENOTFOUND : TDM_EIO;
    } else if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return errno == ENOENT ? TDM_ENOTFOUND : TDM_EIO;
    }

    store *st = calloc(1, sizeof *st);
    if (!st) return TDM_ENOMEM;
    st->opts = o;
    st->read_only = o.read_only;
    tbuf_init(&st->scratch, STORE_UPDATE_MAX + 4096);
    pthread_mutex_init(&st->gate.mu, NULL);
    pthread_cond_init(&st->gate.cv, NULL);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv_work, NULL);
    pthread_cond_init(&st->cv_space, NULL);
    pthread_cond_init(&st->cv_done, NULL);

    tdm_err e = open_env(st, dir);
    if (!e) e = open_dbs(st);
    if (!e && !st->read_only) e = store__writer_start(st);
    if (e) {
        store_close(st);
        return e;
    }
    *out = st;
    return TDM_OK;
}

void store_close(store *st)
{
    if (!st) return;
    if (st->writer_started) store__writer_stop(st);
    if (st->env) mdb_env_close(st->env);
    tbuf_fini(&st->scratch);
    pthread_cond_destroy(&st->cv_done);
    pthread_cond_destroy(&st->cv_space);
    pthread_cond_destroy(&st->cv_work);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->gate.cv);
    pthread_mutex_destroy(&st->gate.mu);
    free(st);
}

/* ---- metadata queries -------------------------------------------------------- */

tdm_err store_doc_info(store *st, const void *name, size_t name_len, store_doc_meta *meta)
{
    if (!st || !meta) return TDM_EINVAL;
    tdm_err ne = store__name_check(name, name_len);
    if (ne) return ne;
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) return e;
    store__meta m;
    e = store__doc_find(st, txn, name, name_len, &m);
    store__rd_end(st, txn);
    if (!e) *meta = m.pub;
    return e;
}

tdm_err store_list_docs(store *st, store_doc_fn fn, void *ctx, size_t *count)
{
    if (count) *count = 0;
    if (!st || !fn) return TDM_EINVAL;
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) return e;
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(txn, st->db_names, &c);
    MDB_val k, v;
    size_t seen = 0;
    if (!rc) rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (!rc) {
        if (v.mv_size != 8) {
            e = TDM_ECORRUPT;
            break;
        }
        store__meta m;
        e = store__meta_get(st, txn, store__get_u64(v.mv_data), &m);
        if (e) break;
        seen++;
        if (fn(ctx, k.mv_data, k.mv_size, &m.pub)) break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (!e && rc && rc != MDB_NOTFOUND) e = store__err(rc);
    if (c) mdb_cursor_close(c);
    store__rd_end(st, txn);
    if (count) *count = seen;
    return e;
}

tdm_err store_get_stats(store *st, store_stats *out)
{
    if (!st || !out) return TDM_EINVAL;
    MDB_envinfo info;
    MDB_stat est, nst;
    MDB_txn *txn;
    tdm_err e = store__rd_begin(st, &txn);
    if (e) return e;
    int rc = mdb_env_info(st->env, &info);
    if (!rc) rc = mdb_env_stat(st->env, &est);
    if (!rc) rc = mdb_stat(txn, st->db_names, &nst);
    store__rd_end(st, txn);
    if (rc) return store__err(rc);
    pthread_mutex_lock(&st->mu);
    *out = st->stats;
    out->queued = st->queued;
    pthread_mutex_unlock(&st->mu);
    out->map_size = info.me_mapsize;
    out->map_used = ((uint64_t)info.me_last_pgno + 1) * est.ms_psize;
    out->docs = nst.ms_entries;
    return TDM_OK;
}
