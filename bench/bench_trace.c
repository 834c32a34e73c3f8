/* bench_trace.c - tandem-bench-trace TRACE.json.gz [--runs N]
 *
 * Replays one editing trace through the CRDT and prints ONE JSON line of
 * medians over N timed runs (default 7, at least 5) after one warm-up run,
 * timed with CLOCK_MONOTONIC:
 *   replay_ms       sequential: one crdt_doc, per patch delete then insert;
 *                   concurrent: fork/merge replay (tests/support/replay.h)
 *   replay_observed_ms  sequential: as replay_ms with a change-delta observer
 *                   attached (it counts each delta's components)
 *   replay_sync_ms  sequential: as replay_ms, and after every patch
 *                   crdt_doc_diff to a second replica + crdt_doc_apply there
 *   gapbuf_ms       sequential: the same patches into a plain gap buffer
 *   load_ms         crdt_doc_load of the GC'd snapshot into an empty doc
 *                   (load_keep_ms: of the snapshot taken without GC)
 * and sizes: snapshot_bytes (after crdt_doc_gc), snapshot_bytes_keep (before),
 * doc_mem_bytes and items (crdt_doc_get_stats at the end of the replay, the
 * peak for these traces, which only grow), doc_mem_bytes_gc (after GC).
 * matched: every replayed, synced and loaded text equals endContent. Fields
 * that do not apply are null. Exit status 0 only when everything matched.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "doc.h"
#include "ot.h"
#include "gapbuf.h"
#include "replay.h"
#include "trace.h"

#define MAX_RUNS 1000

typedef struct bench {
    const trace *t;
    int runs;
    double *times; /* runs + 1 slots (slot 0: warm-up) */
    bool matched;
    char error[300];
} bench;

/* Results; NAN-free: `has_*` marks what was measured. */
typedef struct results {
    double replay_ms, sync_ms, gapbuf_ms, load_ms, load_keep_ms, observed_ms;
    bool has_sync, has_gapbuf, has_observed;
    size_t snap_bytes, snap_keep_bytes, mem_bytes, mem_gc_bytes, items, sync_update_bytes;
    size_t final_len;
} results;

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

/* Median of the timed runs (slots 1..runs). */
static double median(bench *b)
{
    qsort(b->times + 1, (size_t)b->runs, sizeof *b->times, cmp_double);
    int n = b->runs;
    return n % 2 ? b->times[1 + n / 2] : (b->times[n / 2] + b->times[n / 2 + 1]) / 2;
}

static bool fail(bench *b, const char *what, tdm_err err, const char *detail)
{
    if (!b->error[0])
        snprintf(b->error, sizeof b->error, "%s: %s%s%s", what, tdm_err_name(err),
                 detail && *detail ? " - " : "", detail ? detail : "");
    return false;
}

/* Does doc's text equal endContent? Errors count as a mismatch. */
static bool text_matches(bench *b, crdt_doc *doc)
{
    tbuf out;
    tbuf_init(&out, 0);
    tdm_err err = crdt_doc_text(doc, &out);
    bool ok = !err && out.len == b->t->end_len &&
              (out.len == 0 || memcmp(out.data, b->t->end_content, out.len) == 0);
    tbuf_fini(&out);
    if (err) fail(b, "crdt_doc_text", err, NULL);
    if (!ok) b->matched = false;
    return ok;
}

static bool bench_gapbuf(bench *b, results *r)
{
    const trace *t = b->t;
    for (int run = 0; run <= b->runs; run++) {
        gapbuf g;
        gapbuf_init(&g, 0);
        double t0 = now_ms();
        tdm_err err = gapbuf_splice(&g, 0, 0, t->start_content, t->start_len, 0);
        for (uint32_t i = 0; !err && i < t->ntxns; i++)
            for (uint32_t k = 0; !err && k < t->txns[i].npatches; k++) {
                const trace_patch *p = &t->txns[i].patches[k];
                err = gapbuf_splice(&g, p->pos, p->del, p->ins, p->ins_len, p->ins_cps);
            }
        b->times[run] = now_ms() - t0;
        size_t len;
        const char *s = gapbuf_contents(&g, &len);
        bool ok = !err && len == t->end_len && memcmp(s, t->end_content, len) == 0;
        gapbuf_fini(&g);
        if (!ok) return fail(b, "gap buffer replay", err ? err : TDM_ECONFLICT, "text differs");
    }
    r->gapbuf_ms = median(b);
    r->has_gapbuf = true;
    return true;
}

/* (a) local replay, keeping the last run's document in *keep. */
static bool bench_replay(bench *b, results *r, crdt_doc **keep)
{
    for (int run = 0; run <= b->runs; run++) {
        crdt_doc *doc = NULL;
        replay_info info = {0};
        tdm_err err = TDM_OK;
        double t0 = now_ms();
        if (b->t->concurrent) {
            err = replay_concurrent(b->t, &doc, &info);
        } else {
            err = crdt_doc_new(1, &doc);
            if (!err) err = replay_sequential(b->t, doc);
        }
        b->times[run] = now_ms() - t0;
        if (err) {
            crdt_doc_free(doc);
            return fail(b, "replay", err, info.detail);
        }
        text_matches(b, doc);
        crdt_doc_free(*keep);
        *keep = doc;
    }
    r->replay_ms = median(b);
    return true;
}

/* the observer attached for replay_observed_ms: it reads every delta */
static void count_delta(void *ctx, const ot_op *op, tdm_err err, bool local)
{
    (void)local;
    size_t *n = ctx;
    *n += err ? 1000000 : ot_op_count(op);
}

/* replay with a change-delta observer attached (issue 3: at most 2x replay) */
static bool bench_observed(bench *b, results *r)
{
    for (int run = 0; run <= b->runs; run++) {
        crdt_doc *doc = NULL;
        size_t comps = 0;
        tdm_err err = crdt_doc_new(1, &doc);
        if (!err) crdt_doc_observe(doc, count_delta, &comps);
        double t0 = now_ms();
        if (!err) err = replay_sequential(b->t, doc);
        b->times[run] = now_ms() - t0;
        if (!err) text_matches(b, doc);
        crdt_doc_free(doc);
        if (err) return fail(b, "replay with observer", err, NULL);
        if (comps < b->t->npatches)
            return fail(b, "replay with observer", TDM_ECONFLICT, "deltas missing");
    }
    r->observed_ms = median(b);
    r->has_observed = true;
    return true;
}

/* (b) replay with an update encoded and applied to a second replica per patch. */
static bool bench_sync(bench *b, results *r)
{
    for (int run = 0; run <= b->runs; run++) {
        crdt_doc *doc = NULL, *rep = NULL;
        replay_info info = {0};
        tdm_err err = crdt_doc_new(1, &doc);
        if (!err) err = crdt_doc_new(2, &rep);
        double t0 = now_ms();
        if (!err) err = replay_sequential_sync(b->t, doc, rep, &info);
        b->times[run] = now_ms() - t0;
        if (!err) {
            text_matches(b, rep);
            text_matches(b, doc);
            r->sync_update_bytes = info.update_bytes;
        }
        crdt_doc_free(doc);
        crdt_doc_free(rep);
        if (err) return fail(b, "replay with sync", err, info.detail);
    }
    r->sync_ms = median(b);
    r->has_sync = true;
    return true;
}

/* (c) time crdt_doc_load of snap into a fresh empty document. */
static bool bench_load(bench *b, const tbuf *snap, double *ms)
{
    for (int run = 0; run <= b->runs; run++) {
        crdt_doc *doc = NULL;
        tdm_err err = crdt_doc_new(3, &doc);
        if (err) return fail(b, "crdt_doc_new", err, NULL);
        double t0 = now_ms();
        err = crdt_doc_load(doc, snap->data, snap->len);
        b->times[run] = now_ms() - t0;
        if (!err) text_matches(b, doc);
        crdt_doc_free(doc);
        if (err) return fail(b, "crdt_doc_load", err, NULL);
    }
    *ms = median(b);
    return true;
}

/* Snapshots without and with GC, memory stats, and load timings. */
static bool bench_snapshots(bench *b, results *r, crdt_doc *doc)
{
    crdt_doc_stats st;
    crdt_doc_get_stats(doc, &st);
    r->mem_bytes = st.mem_bytes;
    r->items = st.items;
    r->final_len = crdt_doc_len(doc);
    tbuf keep, gcd;
    tbuf_init(&keep, 0);
    tbuf_init(&gcd, 0);
    bool ok = false;
    tdm_err err = crdt_doc_snapshot(doc, &keep);
    if (err) {
        fail(b, "crdt_doc_snapshot", err, NULL);
        goto out;
    }
    err = crdt_doc_gc(doc);
    if (!err) err = crdt_doc_snapshot(doc, &gcd);
    if (err) {
        fail(b, "crdt_doc_gc + snapshot", err, NULL);
        goto out;
    }
    text_matches(b, doc);
    crdt_doc_get_stats(doc, &st);
    r->mem_gc_bytes = st.mem_bytes;
    r->snap_bytes = gcd.len;
    r->snap_keep_bytes = keep.len;
    ok = bench_load(b, &gcd, &r->load_ms) && bench_load(b, &keep, &r->load_keep_ms);
out:
    tbuf_fini(&keep);
    tbuf_fini(&gcd);
    return ok;
}

/* JSON output: the basename may need escaping; numbers may be null. */
static void put_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void put_ms(const char *key, double v, bool has)
{
    if (has)
        printf(",\"%s\":%.3f", key, v);
    else
        printf(",\"%s\":null", key);
}

static void put_size(const char *key, size_t v, bool has)
{
    if (has)
        printf(",\"%s\":%zu", key, v);
    else
        printf(",\"%s\":null", key);
}

static void print_line(const bench *b, const results *r, const char *name, bool done)
{
    printf("{\"trace\":");
    put_str(name);
    printf(",\"kind\":\"%s\",\"runs\":%d", b->t->concurrent ? "concurrent" : "sequential", b->runs);
    put_size("ops", b->t->npatches, true);
    put_size("final_len", r->final_len, done);
    put_ms("replay_ms", r->replay_ms, done);
    put_ms("replay_sync_ms", r->sync_ms, done && r->has_sync);
    put_ms("gapbuf_ms", r->gapbuf_ms, r->has_gapbuf);
    put_ms("ratio_vs_gapbuf", r->has_gapbuf ? r->replay_ms / r->gapbuf_ms : 0,
           done && r->has_gapbuf && r->gapbuf_ms > 0);
    put_ms("replay_observed_ms", r->observed_ms, done && r->has_observed);
    put_ms("ratio_observed_vs_replay", r->has_observed ? r->observed_ms / r->replay_ms : 0,
           done && r->has_observed && r->replay_ms > 0);
    put_ms("load_ms", r->load_ms, done);
    put_ms("load_keep_ms", r->load_keep_ms, done);
    put_size("snapshot_bytes", r->snap_bytes, done);
    put_size("snapshot_bytes_keep", r->snap_keep_bytes, done);
    put_size("doc_mem_bytes", r->mem_bytes, done);
    put_size("doc_mem_bytes_gc", r->mem_gc_bytes, done);
    put_size("items", r->items, done);
    put_size("sync_update_bytes", r->sync_update_bytes, done && r->has_sync);
    printf(",\"matched\":%s", done && b->matched ? "true" : "false");
    if (b->error[0]) {
        printf(",\"error\":");
        put_str(b->error);
    }
    printf("}\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int runs = 7;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 5 || v > MAX_RUNS) {
                fprintf(stderr, "--runs must be an integer in 5..%d\n", MAX_RUNS);
                return 2;
            }
            runs = (int)v;
        } else if (!path && argv[i][0] != '-') {
            path = argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: %s TRACE.json.gz [--runs N]\n", argv[0]);
        return 2;
    }
    trace *t = NULL;
    tdm_err err = trace_load(path, &t);
    if (err) {
        fprintf(stderr, "%s: %s\n", path, tdm_strerror(err));
        return 1;
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    bench b = {.t = t, .runs = runs, .matched = true};
    results r = {0};
    crdt_doc *doc = NULL;
    b.times = calloc((size_t)runs + 1, sizeof *b.times);
    bool done = b.times != NULL;
    if (!done) fail(&b, "calloc", TDM_ENOMEM, NULL);
    if (done && !t->concurrent) done = bench_gapbuf(&b, &r);
    if (done) done = bench_replay(&b, &r, &doc);
    if (done && !t->concurrent) done = bench_observed(&b, &r);
    if (done && !t->concurrent) done = bench_sync(&b, &r);
    if (done) done = bench_snapshots(&b, &r, doc);
    print_line(&b, &r, name, done);
    crdt_doc_free(doc);
    free(b.times);
    trace_free(t);
    return done && b.matched ? 0 : 1;
}
