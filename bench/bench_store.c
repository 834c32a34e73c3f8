/* bench_store.c - tandem-bench-store [--dir DIR] [--runs N] [--producers P]
 *                 [--updates U] [--window W] [--text-bytes B]
 *
 * Storage benchmark on real LMDB directories (created under DIR, default
 * $TMPDIR or /tmp, removed afterwards). Prints ONE JSON line of medians over
 * N runs (default 5):
 *
 *   appends_per_s   sustained durable appends per second: P producer threads
 *                   (default 4), each with its own document, append U updates
 *                   in total (default 200000) through store_append_async,
 *                   keeping at most W (default 4096) each in flight; every
 *                   update is a real CRDT update of 12 typed characters
 *                   (about 30 bytes). Sync on (fsync per commit), default
 *                   options (auto-compaction included). Timed from the first
 *                   enqueue to the last callback.
 *   commits_per_s, avg_batch   write transactions per second and jobs per
 *                   transaction in those runs.
 *   load_ms         store_doc_load of a document holding B bytes of text
 *                   (default 1 MiB of random letters, spaces and newlines,
 *                   inserted 64 bytes at a time at random positions) as a
 *                   snapshot, plus a log of 1000 single-character edits on top.
 *   snapshot_bytes, log_updates, log_bytes  the shape of that document.
 *
 * Exit status 0 when every run succeeded and the loaded text matched.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "doc.h"
#include "store.h"

#define MAX_RUNS      100
#define UPDATE_CHARS  12 /* characters typed per update: about 30 bytes each */
#define MAX_PRODUCERS 64

typedef struct cfg {
    const char *base;
    int runs, producers;
    size_t updates, window, text_bytes;
} cfg;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t dl = strlen(dir), nl = strlen(e->d_name);
        if (dl + nl + 2 > sizeof p) continue;
        memcpy(p, dir, dl);
        p[dl] = '/';
        memcpy(p + dl + 1, e->d_name, nl + 1);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int mktmp(const cfg *c, char *buf, size_t n)
{
    snprintf(buf, n, "%s/tandem-bench-store-XXXXXX", c->base);
    return mkdtemp(buf) ? 0 : -1;
}

/* ---- updates: one typed character each -------------------------------------- */

typedef struct upd_set {
    uint8_t *data;
    size_t *off; /* count + 1 offsets */
    size_t count, bytes;
} upd_set;

static int make_updates(uint64_t client, size_t count, upd_set *u)
{
    crdt_doc *doc;
    crdt_sv *sv = crdt_sv_new();
    tbuf all, one;
    tbuf_init(&all, 0);
    tbuf_init(&one, 0);
    u->off = malloc((count + 1) * sizeof *u->off);
    if (!sv || !u->off || crdt_doc_new(client, &doc)) return -1;
    u->off[0] = 0;
    uint64_t x = client * 0x9e3779b97f4a7c15u + 1;
    for (size_t i = 0; i < count; i++) {
        char word[UPDATE_CHARS];
        for (size_t k = 0; k < sizeof word; k++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            word[k] = (char)('a' + (x >> 33) % 26);
        }
        tbuf_reset(&one);
        if (crdt_doc_insert(doc, crdt_doc_len(doc), word, sizeof word) ||
            crdt_doc_diff(doc, sv, &one) || crdt_doc_state_vector(doc, sv) ||
            tbuf_append(&all, one.data, one.len))
            return -1;
        u->off[i + 1] = all.len;
    }
    u->count = count;
    u->bytes = all.len;
    u->data = tbuf_take(&all, &u->bytes);
    tbuf_fini(&one);
    crdt_sv_free(sv);
    crdt_doc_free(doc);
    return 0;
}

/* ---- sustained appends --------------------------------------------------------- */

typedef struct producer {
    store *st;
    int idx;
    const upd_set *u;
    size_t window;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t done, failed; /* under mu */
} producer;

static void on_done(void *ctx, tdm_err err, uint64_t id, bool dup)
{
    producer *p = ctx;
    (void)id;
    (void)dup;
    pthread_mutex_lock(&p->mu);
    if (err) p->failed++;
    p->done++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Wait until at most `limit` of this producer's appends are in flight. */
static void wait_window(producer *p, size_t sent, size_t limit)
{
    pthread_mutex_lock(&p->mu);
    while (sent - p->done > limit) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void *produce(void *arg)
{
    producer *p = arg;
    char name[32];
    int nl = snprintf(name, sizeof name, "bench-doc-%d", p->idx);
    for (size_t i = 0; i < p->u->count; i++) {
        wait_window(p, i, p->window - 1);
        const uint8_t *d = p->u->data + p->u->off[i];
        size_t n = p->u->off[i + 1] - p->u->off[i];
        /* the store is opened with queue_block: a full queue waits */
        if (store_append_async(p->st, name, (size_t)nl, d, n, on_done, p))
            on_done(p, TDM_EIO, 0, false);
    }
    wait_window(p, p->u->count, 0);
    return NULL;
}

static int run_appends(const cfg *c, upd_set *sets, double *per_s, double *commits_s,
                       double *avg_batch)
{
    char dir[4096];
    if (mktmp(c, dir, sizeof dir)) return -1;
    store *st;
    store_opts o = {.queue_block = true};
    if (store_open(dir, &o, &st)) return -1;
    producer ps[MAX_PRODUCERS];
    pthread_t th[MAX_PRODUCERS];
    store_stats s0, s1;
    store_get_stats(st, &s0);
    double t0 = now_ms();
    for (int i = 0; i < c->producers; i++) {
        ps[i] = (producer){.st = st, .idx = i, .u = &sets[i], .window = c->window};
        pthread_mutex_init(&ps[i].mu, NULL);
        pthread_cond_init(&ps[i].cv, NULL);
        pthread_create(&th[i], NULL, produce, &ps[i]);
    }
    size_t total = 0, failed = 0;
    for (int i = 0; i < c->producers; i++) {
        pthread_join(th[i], NULL); /* each waits for its last callback */
        total += sets[i].count;
        failed += ps[i].failed;
        pthread_mutex_destroy(&ps[i].mu);
        pthread_cond_destroy(&ps[i].cv);
    }
    double ms = now_ms() - t0;
    store_get_stats(st, &s1);
    store_close(st);
    rmtree(dir);
    if (failed) return -1;
    uint64_t batches = s1.batches - s0.batches;
    *per_s = (double)total / (ms / 1e3);
    *commits_s = (double)batches / (ms / 1e3);
    *avg_batch = batches ? (double)(s1.jobs - s0.jobs) / (double)batches : 0;
    return 0;
}

/* ---- load of a 1 MB document ------------------------------------------------------ */

typedef struct load_shape {
    uint64_t snapshot_bytes, log_updates, log_bytes;
} load_shape;

static int build_big(store *st, size_t text_bytes, crdt_doc **ref, load_shape *shape)
{
    crdt_doc *doc;
    crdt_sv *sv = crdt_sv_new();
    tbuf u;
    tbuf_init(&u, 0);
    if (!sv || crdt_doc_new(77, &doc)) return -1;
    char chunk[64];
    uint64_t x = 12345;
    for (size_t have = 0; have < text_bytes; have += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i++) { /* letters, spaces, newlines */
            x = x * 6364136223846793005u + 1442695040888963407u;
            unsigned r = (unsigned)(x >> 33) % 32;
            chunk[i] = r < 26 ? (char)('a' + r) : r < 31 ? ' ' : '\n';
        }
        size_t len = crdt_doc_len(doc);
        size_t pos = len ? (size_t)(x >> 20) % (len + 1) : 0; /* spread over the text */
        tbuf_reset(&u);
        if (crdt_doc_insert(doc, pos, chunk, sizeof chunk) || crdt_doc_diff(doc, sv, &u) ||
            crdt_doc_state_vector(doc, sv) ||
            store_append_async(st, "big", 3, u.data, u.len, NULL, NULL))
            return -1;
    }
    if (store_flush(st) || store_compact_doc(st, "big", 3)) return -1;
    for (int i = 0; i < 1000; i++) { /* a log on top of the snapshot */
        size_t len = crdt_doc_len(doc);
        tbuf_reset(&u);
        tdm_err e = i % 4 == 3 ? crdt_doc_delete(doc, (size_t)i * 997 % len, 1)
                               : crdt_doc_insert(doc, (size_t)i * 1009 % len, "x", 1);
        if (e || crdt_doc_diff(doc, sv, &u) || crdt_doc_state_vector(doc, sv) ||
            store_append_async(st, "big", 3, u.data, u.len, NULL, NULL))
            return -1;
    }
    store_doc_meta m;
    if (store_flush(st) || store_doc_info(st, "big", 3, &m)) return -1;
    shape->snapshot_bytes = m.snapshot_bytes;
    shape->log_updates = m.updates;
    shape->log_bytes = m.log_bytes;
    tbuf_fini(&u);
    crdt_sv_free(sv);
    *ref = doc;
    return 0;
}

static int same_text(crdt_doc *a, crdt_doc *b)
{
    tbuf x, y;
    tbuf_init(&x, 0);
    tbuf_init(&y, 0);
    int ok = !crdt_doc_text(a, &x) && !crdt_doc_text(b, &y) && x.len == y.len &&
             memcmp(x.data, y.data, x.len) == 0;
    tbuf_fini(&x);
    tbuf_fini(&y);
    return ok;
}

static int run_load(const cfg *c, double *times, load_shape *shape, size_t *text_len)
{
    char dir[4096];
    if (mktmp(c, dir, sizeof dir)) return -1;
    store *st;
    store_opts o = {.no_auto_compact = true};
    if (store_open(dir, &o, &st)) return -1;
    crdt_doc *ref = NULL;
    int rc = build_big(st, c->text_bytes, &ref, shape);
    for (int r = 0; !rc && r <= c->runs; r++) { /* run 0 warms up */
        crdt_doc *doc;
        double t0 = now_ms();
        if (store_doc_load(st, "big", 3, NULL, &doc, NULL)) rc = -1;
        double ms = now_ms() - t0;
        if (!rc && !same_text(doc, ref)) rc = -1;
        if (!rc) *text_len = crdt_doc_len_bytes(doc);
        crdt_doc_free(doc);
        if (r > 0) times[r - 1] = ms;
    }
    crdt_doc_free(ref);
    store_close(st);
    rmtree(dir);
    return rc;
}

static int parse(int argc, char **argv, cfg *c)
{
    const char *t = getenv("TMPDIR");
    *c = (cfg){t && *t ? t : "/tmp", 5, 4, 200000, 4096, 1 << 20};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return -1;
        if (!strcmp(a, "--dir"))
            c->base = v;
        else if (!strcmp(a, "--runs"))
            c->runs = atoi(v);
        else if (!strcmp(a, "--producers"))
            c->producers = atoi(v);
        else if (!strcmp(a, "--updates"))
            c->updates = (size_t)atol(v);
        else if (!strcmp(a, "--window"))
            c->window = (size_t)atol(v);
        else if (!strcmp(a, "--text-bytes"))
            c->text_bytes = (size_t)atol(v);
        else
            return -1;
        i++;
    }
    if (c->runs < 1 || c->runs > MAX_RUNS || c->producers < 1 || c->producers > MAX_PRODUCERS ||
        c->updates < (size_t)c->producers || c->window < 1 || c->text_bytes < 1024)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    cfg c;
    if (parse(argc, argv, &c)) {
        fprintf(stderr, "usage: tandem-bench-store [--dir DIR] [--runs N] [--producers P] "
                        "[--updates U] [--window W] [--text-bytes B]\n");
        return 2;
    }
    upd_set sets[MAX_PRODUCERS];
    size_t per = c.updates / (size_t)c.producers, ubytes = 0, ucount = 0;
    for (int i = 0; i < c.producers; i++) {
        if (make_updates(100 + (uint64_t)i, per, &sets[i])) {
            fprintf(stderr, "bench: building updates failed\n");
            return 1;
        }
        ubytes += sets[i].bytes;
        ucount += sets[i].count;
    }
    double rate[MAX_RUNS], commits[MAX_RUNS], batch[MAX_RUNS], load[MAX_RUNS];
    for (int r = 0; r < c.runs; r++)
        if (run_appends(&c, sets, &rate[r], &commits[r], &batch[r])) {
            fprintf(stderr, "bench: append run %d failed\n", r);
            return 1;
        }
    load_shape shape = {0};
    size_t text_len = 0;
    if (run_load(&c, load, &shape, &text_len)) {
        fprintf(stderr, "bench: load run failed\n");
        return 1;
    }
    double rate_min = rate[0], rate_max = rate[0];
    for (int r = 1; r < c.runs; r++) {
        if (rate[r] < rate_min) rate_min = rate[r];
        if (rate[r] > rate_max) rate_max = rate[r];
    }
    printf("{\"bench\":\"store\",\"runs\":%d,\"producers\":%d,\"updates\":%zu,\"window\":%zu,"
           "\"update_bytes_avg\":%.1f,\"appends_per_s\":%.0f,\"appends_per_s_min\":%.0f,"
           "\"appends_per_s_max\":%.0f,\"commits_per_s\":%.0f,\"avg_batch\":%.1f,"
           "\"load_ms\":%.2f,\"load_text_bytes\":%zu,\"snapshot_bytes\":%llu,"
           "\"log_updates\":%llu,\"log_bytes\":%llu}\n",
           c.runs, c.producers, ucount, c.window, (double)ubytes / (double)ucount,
           median(rate, c.runs), rate_min, rate_max, median(commits, c.runs), median(batch, c.runs),
           median(load, c.runs), text_len, (unsigned long long)shape.snapshot_bytes,
           (unsigned long long)shape.log_updates, (unsigned long long)shape.log_bytes);
    for (int i = 0; i < c.producers; i++) {
        free(sets[i].data);
        free(sets[i].off);
    }
    return 0;
}
