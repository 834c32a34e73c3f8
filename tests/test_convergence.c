/* test_convergence.c - replicas of one text converge, and concurrent runs do
 * not interleave.
 *
 * random: a property test. 3-5 replicas (some with gc) make thousands of local
 *   inserts and deletes of multi-byte text at code-point positions (anywhere,
 *   at the ends, the middle, or continuing their own runs and backspaces);
 *   every local edit is checked at once against a plain UTF-8 string model.
 *   Replicas exchange per-edit updates and incremental diffs through per-pair
 *   queues that deliver in random order, duplicate and drop messages; state
 *   vector resyncs (also through the queues) repair the drops. At checkpoints
 *   the queues are drained, every replica pulls once from every other, and all
 *   must agree on text, state vector, delete set and clock accounting, with
 *   nothing pending; snapshots and full diffs must rebuild the same document.
 *   A second flavour keeps the text tiny so nearly every insert collides.
 *   Fixed seeds in CI; TANDEM_SOAK=N runs N times as many seeds (half of the
 *   extra ones with 4x the steps). TANDEM_CONV_VERBOSE=1 prints per-seed
 *   counters.
 * noninterleave: forward and backward typing of concurrent runs (two and three
 *   replicas, various delivery orders), and the Fugue paper's three-replica
 *   case ("bac" or "acb", never "abc").
 * pending: out-of-order updates are held and released; the pending bounds
 *   refuse an update whole and leave the document unchanged. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "ids.h"

/* ------------------------------------------------------------------ PRNG */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    uint64_t x = seed;
    r->s = splitmix64(&x);
    if (!r->s) r->s = 1;
}

/* xorshift64* */
static uint64_t rng_next(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

static size_t rng_below(rng *r, size_t n)
{
    return n ? (size_t)(rng_next(r) % n) : 0;
}

static bool rng_chance(rng *r, unsigned pct)
{
    return rng_below(r, 100) < pct;
}

/* ------------------------------------------------------------------ UTF-8, independently of
 * crdt/utf8.c */

static bool is_cont(uint8_t b)
{
    return (b & 0xc0) == 0x80;
}

static size_t u8_cps(const uint8_t *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += !is_cont(p[i]);
    return c;
}

static size_t u8_utf16(const uint8_t *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_cont(p[i])) c += p[i] >= 0xf0 ? 2 : 1;
    return c;
}

/* byte offset of code point cp (cp may equal the count: the end) */
static size_t u8_off(const uint8_t *p, size_t n, size_t cp)
{
    size_t i = 0;
    for (; i < n; i++) {
        if (!is_cont(p[i])) {
            if (cp == 0) return i;
            cp--;
        }
    }
    ck_assert_uint_eq(cp, 0);
    return n;
}

/* structural well-formedness: lead bytes followed by the right continuations */
static bool u8_wellformed(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        size_t k = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
        if (!k || i + k > n) return false;
        for (size_t j = 1; j < k; j++)
            if (!is_cont(p[i + j])) return false;
        i += k;
    }
    return true;
}

static bool same_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* ------------------------------------------------------------------ small helpers */

typedef struct str {
    uint8_t *p;
    size_t n, cap;
} str;

static void str_reserve(str *s, size_t extra)
{
    if (s->p && s->n + extra <= s->cap) return;
    size_t nc = s->cap ? s->cap : 256;
    while (nc < s->n + extra) nc *= 2;
    s->p = realloc(s->p, nc);
    ck_assert_ptr_nonnull(s->p);
    s->cap = nc;
}

static void str_insert(str *s, size_t off, const uint8_t *p, size_t n)
{
    str_reserve(s, n);
    memmove(s->p + off + n, s->p + off, s->n - off);
    if (n) memcpy(s->p + off, p, n);
    s->n += n;
}

static void str_erase(str *s, size_t off, size_t n)
{
    memmove(s->p + off, s->p + off + n, s->n - off - n);
    s->n -= n;
}

static void str_set(str *s, const uint8_t *p, size_t n)
{
    s->n = 0;
    str_insert(s, 0, p, n);
}

static crdt_doc *doc_make(uint64_t client, bool gc)
{
    crdt_doc_opts o = {0};
    o.client = client;
    o.gc = gc;
    crdt_doc *d = NULL;
    ck_assert_int_eq(crdt_doc_new_opts(&o, &d), TDM_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(crdt_doc_client(d), client);
    return d;
}

static crdt_sv *sv_of(const crdt_doc *d)
{
    crdt_sv *sv = crdt_sv_new();
    ck_assert_ptr_nonnull(sv);
    ck_assert_int_eq(crdt_doc_state_vector(d, sv), TDM_OK);
    return sv;
}

static crdt_ds *ds_of(crdt_doc *d)
{
    crdt_ds *ds = crdt_ds_new();
    ck_assert_ptr_nonnull(ds);
    ck_assert_int_eq(crdt_doc_delete_set(d, ds), TDM_OK);
    return ds;
}

static void text_into(crdt_doc *d, tbuf *out)
{
    tbuf_reset(out);
    ck_assert_int_eq(crdt_doc_text(d, out), TDM_OK);
}

/* the document's lengths agree with its text, computed here */
static void check_lengths(const crdt_doc *d, const uint8_t *p, size_t n)
{
    ck_assert_msg(u8_wellformed(p, n), "text is not well-formed UTF-8");
    ck_assert_uint_eq(crdt_doc_len_bytes(d), n);
    ck_assert_uint_eq(crdt_doc_len(d), u8_cps(p, n));
    ck_assert_uint_eq(crdt_doc_len_utf16(d), u8_utf16(p, n));
}

/* a NUL-terminated copy of the text (caller frees) */
static char *doc_cstr(crdt_doc *d)
{
    tbuf t;
    tbuf_init(&t, 0);
    text_into(d, &t);
    check_lengths(d, t.data, t.len);
    char *s = malloc(t.len + 1);
    ck_assert_ptr_nonnull(s);
    if (t.len) memcpy(s, t.data, t.len);
    s[t.len] = '\0';
    tbuf_fini(&t);
    return s;
}

static void assert_doc_text(crdt_doc *d, const char *want)
{
    char *s = doc_cstr(d);
    ck_assert_str_eq(s, want);
    free(s);
}

static void apply_ok(crdt_doc *d, const tbuf *u)
{
    tdm_err e = crdt_doc_apply(d, u->data, u->len);
    ck_assert_msg(e == TDM_OK, "apply: %s", tdm_err_name(e));
}

/* dst pulls what it lacks from src: dst's state vector goes to src (encoded),
 * src's diff comes back. */
static void pull(crdt_doc *dst, crdt_doc *src)
{
    crdt_sv *sv = sv_of(dst), *dec = crdt_sv_new();
    tbuf b, u;
    tbuf_init(&b, 0);
    tbuf_init(&u, 0);
    ck_assert_int_eq(crdt_sv_encode(sv, &b), TDM_OK);
    ck_assert_int_eq(crdt_sv_decode(dec, b.data, b.len), TDM_OK);
    ck_assert(crdt_sv_equal(sv, dec));
    ck_assert_int_eq(crdt_doc_diff(src, dec, &u), TDM_OK);
    apply_ok(dst, &u);
    tbuf_fini(&b);
    tbuf_fini(&u);
    crdt_sv_free(sv);
    crdt_sv_free(dec);
}

/* ------------------------------------------------------------------ random convergence */

#define MAX_REPLICAS  5
#define BASE_SEEDS    9
#define BASE_STEPS    12000
#define TARGET_CPS    2000 /* deletes get likelier above this length */
#define CONTEND_SEEDS 6
#define CONTEND_STEPS 6000
#define CONTEND_CPS   24
#define PROBE_CLIENT  0x5eed5eed5eed5eedull

enum { MSG_UPDATE, MSG_SV };

typedef struct msg {
    uint8_t *p;
    size_t n;
    int kind;
} msg;

typedef struct queue {
    msg *v;
    size_t n, cap;
} queue;

typedef struct replica {
    crdt_doc *doc;
    uint64_t id;
    bool gc;
    str model;     /* the text as of the last local edit or refresh */
    bool stale;    /* remote updates were applied since */
    uint64_t ops;  /* clocks this replica has used */
    uint64_t ins;  /* code points it inserted */
    uint64_t dels; /* code points it deleted */
    size_t cursor; /* code point after its last insert, at its last delete */
} replica;

typedef struct world {
    rng rng;
    uint64_t seed;
    size_t step;
    int n;
    size_t target; /* text length above which deletes get likelier */
    replica r[MAX_REPLICAS];
    queue q[MAX_REPLICAS][MAX_REPLICAS];        /* q[from][to] */
    crdt_sv *known[MAX_REPLICAS][MAX_REPLICAS]; /* what i believes j holds */
    tbuf text, upd;
    size_t sent, delivered, dropped, duplicated, max_pending, held;
} world;

static void q_push(queue *q, int kind, const uint8_t *p, size_t n)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 16;
        q->v = realloc(q->v, q->cap * sizeof(msg));
        ck_assert_ptr_nonnull(q->v);
    }
    msg m = {malloc(n ? n : 1), n, kind};
    ck_assert_ptr_nonnull(m.p);
    if (n) memcpy(m.p, p, n);
    q->v[q->n++] = m;
}

static void send_msg(world *w, int from, int to, int kind, const tbuf *b)
{
    ck_assert_int_ne(from, to);
    q_push(&w->q[from][to], kind, b->data, b->len);
    w->sent++;
}

static void refresh_model(world *w, int i)
{
    replica *r = &w->r[i];
    text_into(r->doc, &w->text);
    check_lengths(r->doc, w->text.data, w->text.len);
    str_set(&r->model, w->text.data, w->text.len);
    r->stale = false;
}

static const char *const glyphs2[] = {"\xc3\xa9", "\xc3\x9f", "\xc3\xb1", "\xd0\x96", "\xcf\x89"};
static const char *const glyphs3[] = {"\xe2\x82\xac", "\xe4\xb8\xad", "\xe6\x96\x87",
                                      "\xe2\x80\x94", "\xe3\x81\x82"};
static const char *const glyphs4[] = {"\xf0\x9f\x98\x80", "\xf0\x9d\x84\x9e", "\xf0\x9f\x8e\x89",
                                      "\xf0\x9f\x99\x82"};

/* append one random code point (1-4 bytes) to buf; returns its byte count */
static size_t rand_glyph(rng *r, uint8_t *buf)
{
    size_t k = rng_below(r, 100);
    const char *g;
    if (k < 55) {
        static const char ascii[] =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
            " .,;!?\n";
        buf[0] = (uint8_t)ascii[rng_below(r, sizeof ascii - 1)];
        return 1;
    }
    if (k < 70)
        g = glyphs2[rng_below(r, sizeof glyphs2 / sizeof *glyphs2)];
    else if (k < 85)
        g = glyphs3[rng_below(r, sizeof glyphs3 / sizeof *glyphs3)];
    else
        g = glyphs4[rng_below(r, sizeof glyphs4 / sizeof *glyphs4)];
    size_t n = strlen(g);
    memcpy(buf, g, n);
    return n;
}

/* An invalid edit fails and changes nothing. */
static void bad_edit(world *w, int i)
{
    replica *r = &w->r[i];
    size_t len = u8_cps(r->model.p, r->model.n);
    crdt_sv *before = sv_of(r->doc);
    tdm_err e;
    switch (rng_below(&w->rng, 3)) {
    case 0:
        e = crdt_doc_insert(r->doc, len + 1 + rng_below(&w->rng, 3), "x", 1);
        ck_assert_int_eq(e, TDM_ERANGE);
        break;
    case 1:
        e = crdt_doc_insert(r->doc, rng_below(&w->rng, len + 1), "a\xc3(", 3);
        ck_assert_int_eq(e, TDM_EUTF8);
        break;
    default:
        e = crdt_doc_delete(r->doc, rng_below(&w->rng, len + 1), len + 1);
        ck_assert_int_ne(e, TDM_OK);
        break;
    }
    text_into(r->doc, &w->text);
    ck_assert(same_bytes(w->text.data, w->text.len, r->model.p, r->model.n));
    crdt_sv *after = sv_of(r->doc);
    ck_assert(crdt_sv_equal(before, after));
    crdt_sv_free(before);
    crdt_sv_free(after);
}

/* Where to insert: often where this replica typed last (runs), at the ends or
 * the middle (where replicas collide), else anywhere. */
static size_t insert_pos(world *w, const replica *r, size_t len)
{
    size_t k = rng_below(&w->rng, 100);
    if (k < 25) return r->cursor < len ? r->cursor : len;
    if (k < 35) return len;
    if (k < 42) return 0;
    if (k < 55) {
        size_t mid = len / 2 + rng_below(&w->rng, 5);
        mid = mid < 2 ? 0 : mid - 2;
        return mid < len ? mid : len;
    }
    return rng_below(&w->rng, len + 1);
}

/* One random local edit on replica i, checked against the model; the per-edit
 * update (diff against the state vector before the edit) may be broadcast. */
static void local_edit(world *w, int i)
{
    replica *r = &w->r[i];
    if (r->stale) refresh_model(w, i);
    if (rng_chance(&w->rng, 2)) bad_edit(w, i);
    size_t len = u8_cps(r->model.p, r->model.n);
    crdt_sv *before = sv_of(r->doc);
    size_t used;
    bool del = len > 0 && rng_chance(&w->rng, len > w->target ? 65 : 30);
    if (del) {
        size_t pos, count;
        if (r->cursor > 0 && r->cursor <= len && rng_chance(&w->rng, 25)) {
            pos = r->cursor - 1; /* backspace */
            count = 1;
        } else {
            pos = rng_below(&w->rng, len);
            size_t room = len - pos;
            size_t most = rng_chance(&w->rng, 10) ? 80 : 8;
            count = 1 + rng_below(&w->rng, room < most ? room : most);
        }
        r->cursor = pos;
        tdm_err e = crdt_doc_delete(r->doc, pos, count);
        ck_assert_msg(e == TDM_OK, "seed %llx step %zu: delete(%zu, %zu) of %zu: %s",
                      (unsigned long long)w->seed, w->step, pos, count, len, tdm_err_name(e));
        size_t a = u8_off(r->model.p, r->model.n, pos);
        size_t b = u8_off(r->model.p, r->model.n, pos + count);
        str_erase(&r->model, a, b - a);
        r->dels += count;
        used = count;
    } else {
        size_t pos = insert_pos(w, r, len);
        size_t k = 1 + rng_below(&w->rng, 8), nb = 0;
        uint8_t run[32];
        for (size_t j = 0; j < k; j++) nb += rand_glyph(&w->rng, run + nb);
        tdm_err e = crdt_doc_insert(r->doc, pos, (const char *)run, nb);
        ck_assert_msg(e == TDM_OK, "seed %llx step %zu: insert at %zu of %zu: %s",
                      (unsigned long long)w->seed, w->step, pos, len, tdm_err_name(e));
        str_insert(&r->model, u8_off(r->model.p, r->model.n, pos), run, nb);
        r->ins += k;
        r->cursor = pos + k;
        used = k;
    }
    r->ops += used;

    /* the text is the model's, and the lengths agree */
    text_into(r->doc, &w->text);
    ck_assert_msg(same_bytes(w->text.data, w->text.len, r->model.p, r->model.n),
                  "seed %llx step %zu: replica %d text differs from its model after a local %s",
                  (unsigned long long)w->seed, w->step, i, del ? "delete" : "insert");
    check_lengths(r->doc, r->model.p, r->model.n);
    if (rng_chance(&w->rng, 10)) {
        size_t n = u8_cps(r->model.p, r->model.n);
        size_t pos = rng_below(&w->rng, n + 1);
        size_t cnt = rng_below(&w->rng, n - pos + 1);
        tbuf_reset(&w->text);
        ck_assert_int_eq(crdt_doc_text_range(r->doc, pos, cnt, &w->text), TDM_OK);
        size_t a = u8_off(r->model.p, r->model.n, pos);
        size_t b = u8_off(r->model.p, r->model.n, pos + cnt);
        ck_assert(same_bytes(w->text.data, w->text.len, r->model.p + a, b - a));
    }

    /* the edit took exactly `used` clocks of this replica and nothing else */
    crdt_sv *after = sv_of(r->doc);
    ck_assert_uint_eq(crdt_sv_get(after, r->id), crdt_sv_get(before, r->id) + used);
    ck_assert_uint_eq(crdt_sv_get(after, r->id), r->ops);
    ck_assert_int_eq(crdt_sv_set(after, r->id, crdt_sv_get(before, r->id)), TDM_OK);
    ck_assert(crdt_sv_equal(after, before));

    if (rng_chance(&w->rng, 60)) {
        tbuf_reset(&w->upd);
        ck_assert_int_eq(crdt_doc_diff(r->doc, before, &w->upd), TDM_OK);
        ck_assert_uint_gt(w->upd.len, 0);
        for (int j = 0; j < w->n; j++)
            if (j != i) send_msg(w, i, j, MSG_UPDATE, &w->upd);
    }
    crdt_sv_free(before);
    crdt_sv_free(after);
}

static void receive(world *w, int from, int to, const msg *m)
{
    replica *r = &w->r[to];
    if (m->kind == MSG_UPDATE) {
        crdt_sv *before = sv_of(r->doc);
        tdm_err e = crdt_doc_apply(r->doc, m->p, m->n);
        ck_assert_msg(e == TDM_OK, "seed %llx step %zu: apply %d->%d (%zu bytes): %s",
                      (unsigned long long)w->seed, w->step, from, to, m->n, tdm_err_name(e));
        crdt_sv *after = sv_of(r->doc);
        ck_assert(crdt_sv_covers(after, before));
        /* nobody else can hand us new operations of our own */
        ck_assert_uint_eq(crdt_sv_get(after, r->id), r->ops);
        crdt_sv_free(before);
        crdt_sv_free(after);
        r->stale = true;
        size_t p = crdt_doc_pending(r->doc);
        if (p > w->max_pending) w->max_pending = p;
        if (p) w->held++;
        return;
    }
    /* a resync request: `from` says what it holds; answer with what it lacks */
    crdt_sv *sv = crdt_sv_new(), *mine = sv_of(r->doc);
    ck_assert_int_eq(crdt_sv_decode(sv, m->p, m->n), TDM_OK);
    tbuf_reset(&w->upd);
    ck_assert_int_eq(crdt_doc_diff(r->doc, sv, &w->upd), TDM_OK);
    send_msg(w, to, from, MSG_UPDATE, &w->upd);
    ck_assert_int_eq(crdt_sv_copy(w->known[to][from], sv), TDM_OK);
    ck_assert_int_eq(crdt_sv_merge(w->known[to][from], mine), TDM_OK);
    crdt_sv_free(sv);
    crdt_sv_free(mine);
}

/* Deliver (or drop, or deliver and keep for a second delivery) one message
 * picked uniformly from all queued ones. False when nothing is queued. */
static bool deliver_one(world *w, unsigned drop_pct, unsigned dup_pct)
{
    size_t total = 0;
    for (int i = 0; i < w->n; i++)
        for (int j = 0; j < w->n; j++) total += w->q[i][j].n;
    if (!total) return false;
    size_t k = rng_below(&w->rng, total);
    int from = 0, to = 0;
    for (from = 0; from < w->n; from++) {
        for (to = 0; to < w->n; to++) {
            if (k < w->q[from][to].n) goto found;
            k -= w->q[from][to].n;
        }
    }
    ck_abort_msg("message index out of range");
found:;
    queue *q = &w->q[from][to];
    msg m = q->v[k];
    if (rng_chance(&w->rng, drop_pct)) {
        q->v[k] = q->v[--q->n];
        free(m.p);
        w->dropped++;
        return true;
    }
    bool dup = rng_chance(&w->rng, dup_pct);
    if (dup)
        w->duplicated++;
    else
        q->v[k] = q->v[--q->n];
    receive(w, from, to, &m);
    w->delivered++;
    if (!dup) free(m.p);
    return true;
}

/* i sends j a diff against what i last believed j holds. */
static void gossip(world *w, int i, int j)
{
    replica *r = &w->r[i];
    tbuf_reset(&w->upd);
    ck_assert_int_eq(crdt_doc_diff(r->doc, w->known[i][j], &w->upd), TDM_OK);
    send_msg(w, i, j, MSG_UPDATE, &w->upd);
    crdt_sv *mine = sv_of(r->doc);
    ck_assert_int_eq(crdt_sv_merge(w->known[i][j], mine), TDM_OK);
    crdt_sv_free(mine);
}

/* j asks i (through the unreliable queue) for what it lacks. */
static void resync_request(world *w, int j, int i)
{
    crdt_sv *sv = sv_of(w->r[j].doc);
    tbuf_reset(&w->upd);
    ck_assert_int_eq(crdt_sv_encode(sv, &w->upd), TDM_OK);
    send_msg(w, j, i, MSG_SV, &w->upd);
    crdt_sv_free(sv);
}

/* The snapshot of replica i loads into a fresh document that matches it, and
 * so does a fresh document fed the full diff. */
static void check_rebuild(world *w, int i)
{
    replica *r = &w->r[i];
    crdt_sv *sv = sv_of(r->doc);
    crdt_ds *ds = ds_of(r->doc);
    tbuf text, b;
    tbuf_init(&text, 0);
    tbuf_init(&b, 0);
    text_into(r->doc, &text);
    for (int how = 0; how < 2; how++) {
        crdt_doc *f = doc_make(PROBE_CLIENT, how == 1 && r->gc);
        tbuf_reset(&b);
        if (how == 0) {
            ck_assert_int_eq(crdt_doc_snapshot(r->doc, &b), TDM_OK);
            tdm_err e = crdt_doc_load(f, b.data, b.len);
            ck_assert_msg(e == TDM_OK, "seed %llx step %zu: load snapshot of replica %d: %s",
                          (unsigned long long)w->seed, w->step, i, tdm_err_name(e));
            ck_assert_uint_eq(crdt_doc_client(f), PROBE_CLIENT);
        } else {
            ck_assert_int_eq(crdt_doc_diff(r->doc, NULL, &b), TDM_OK);
            apply_ok(f, &b);
        }
        tbuf_reset(&w->text);
        text_into(f, &w->text);
        ck_assert_msg(same_bytes(w->text.data, w->text.len, text.data, text.len),
                      "seed %llx step %zu: replica %d rebuilt by %s has a different text",
                      (unsigned long long)w->seed, w->step, i, how ? "diff(NULL)" : "snapshot");
        check_lengths(f, w->text.data, w->text.len);
        ck_assert_uint_eq(crdt_doc_pending(f), 0);
        crdt_sv *fsv = sv_of(f);
        crdt_ds *fds = ds_of(f);
        ck_assert(crdt_sv_equal(fsv, sv));
        ck_assert(crdt_ds_equal(fds, ds));
        crdt_sv_free(fsv);
        crdt_ds_free(fds);
        crdt_doc_free(f);
    }
    tbuf_fini(&text);
    tbuf_fini(&b);
    crdt_sv_free(sv);
    crdt_ds_free(ds);
}

/* All replicas agree; the clocks and lengths add up. */
static void assert_converged(world *w)
{
    tbuf t0;
    tbuf_init(&t0, 0);
    text_into(w->r[0].doc, &t0);
    crdt_sv *sv0 = sv_of(w->r[0].doc);
    crdt_ds *ds0 = ds_of(w->r[0].doc);
    uint64_t ins = 0, dels = 0;
    size_t writers = 0;
    for (int i = 0; i < w->n; i++) {
        replica *r = &w->r[i];
        ins += r->ins;
        dels += r->dels;
        writers += r->ops > 0;
        ck_assert_msg(crdt_sv_get(sv0, r->id) == r->ops,
                      "seed %llx step %zu: replica %d made %llu ops, state vector says %u",
                      (unsigned long long)w->seed, w->step, i, (unsigned long long)r->ops,
                      crdt_sv_get(sv0, r->id));
        ck_assert_msg(crdt_doc_pending(r->doc) == 0, "seed %llx step %zu: replica %d holds %zu",
                      (unsigned long long)w->seed, w->step, i, crdt_doc_pending(r->doc));
        text_into(r->doc, &w->text);
        ck_assert_msg(same_bytes(w->text.data, w->text.len, t0.data, t0.len),
                      "seed %llx step %zu: replica %d text differs from replica 0 (%zu vs %zu "
                      "bytes)",
                      (unsigned long long)w->seed, w->step, i, w->text.len, t0.len);
        check_lengths(r->doc, w->text.data, w->text.len);
        crdt_sv *sv = sv_of(r->doc);
        crdt_ds *ds = ds_of(r->doc);
        ck_assert_msg(crdt_sv_equal(sv, sv0), "seed %llx step %zu: replica %d state vector",
                      (unsigned long long)w->seed, w->step, i);
        ck_assert_msg(crdt_ds_equal(ds, ds0), "seed %llx step %zu: replica %d delete set",
                      (unsigned long long)w->seed, w->step, i);
        crdt_sv_free(sv);
        crdt_ds_free(ds);
    }
    ck_assert_uint_eq(crdt_sv_count(sv0), writers);
    /* every inserted code point is visible or deleted; concurrent deletes of
     * one code point cost a clock each but delete it once */
    uint64_t gone = crdt_ds_ids(ds0);
    ck_assert_uint_le(gone, dels);
    ck_assert_uint_eq(u8_cps(t0.data, t0.len) + gone, ins);
    tbuf_fini(&t0);
    crdt_sv_free(sv0);
    crdt_ds_free(ds0);
}

/* Drain the queues (still lossy), then every replica pulls once from every
 * other over a reliable channel; one round must be enough. */
static void checkpoint(world *w)
{
    while (deliver_one(w, 6, 3)) {
    }
    for (int i = 0; i < w->n; i++) {
        for (int j = 0; j < w->n; j++)
            if (j != i) pull(w->r[i].doc, w->r[j].doc);
        w->r[i].stale = true;
    }
    assert_converged(w);
    crdt_sv *sv = sv_of(w->r[0].doc);
    for (int i = 0; i < w->n; i++) {
        for (int j = 0; j < w->n; j++) ck_assert_int_eq(crdt_sv_copy(w->known[i][j], sv), TDM_OK);
        check_rebuild(w, i);
    }
    crdt_sv_free(sv);
}

static unsigned soak_factor(void)
{
    const char *s = getenv("TANDEM_SOAK");
    long v = s && *s ? strtol(s, NULL, 10) : 1;
    return v < 1 ? 1u : v > 100000 ? 100000u : (unsigned)v;
}

static void world_init(world *w, uint64_t seed, int n, size_t target)
{
    memset(w, 0, sizeof *w);
    w->seed = seed;
    w->target = target;
    rng_seed(&w->rng, seed);
    w->n = n;
    bool any_gc = false, any_plain = false;
    for (int i = 0; i < w->n; i++) {
        replica *r = &w->r[i];
        bool unique;
        do { /* distinct ids: sometimes small, sometimes huge */
            r->id = rng_chance(&w->rng, 25) ? rng_below(&w->rng, 8) : rng_next(&w->rng);
            unique = r->id != PROBE_CLIENT;
            for (int j = 0; j < i; j++) unique = unique && w->r[j].id != r->id;
        } while (!unique);
        r->gc = rng_chance(&w->rng, 40);
        if (i == w->n - 1 && !any_gc) r->gc = true;
        if (i == w->n - 1 && !any_plain) r->gc = false;
        any_gc |= r->gc;
        any_plain |= !r->gc;
        r->doc = doc_make(r->id, r->gc);
    }
    for (int i = 0; i < w->n; i++)
        for (int j = 0; j < w->n; j++) {
            w->known[i][j] = crdt_sv_new();
            ck_assert_ptr_nonnull(w->known[i][j]);
        }
    tbuf_init(&w->text, 0);
    tbuf_init(&w->upd, 0);
}

static void world_fini(world *w)
{
    for (int i = 0; i < w->n; i++) {
        crdt_doc_free(w->r[i].doc);
        free(w->r[i].model.p);
        for (int j = 0; j < w->n; j++) {
            for (size_t k = 0; k < w->q[i][j].n; k++) free(w->q[i][j].v[k].p);
            free(w->q[i][j].v);
            crdt_sv_free(w->known[i][j]);
        }
    }
    tbuf_fini(&w->text);
    tbuf_fini(&w->upd);
}

/* Run one world: `edit_pm` per mille of the steps are local edits and
 * `deliver_pm` deliveries of up to n messages; the rest gossip (90), ask for
 * a resync (30), collect garbage (7) or check a rebuild (3). */
static void run_world(uint64_t seed, int n, size_t steps, size_t target, size_t edit_pm,
                      size_t deliver_pm)
{
    ck_assert_uint_eq(edit_pm + deliver_pm + 130, 1000);
    world *w = malloc(sizeof *w);
    ck_assert_ptr_nonnull(w);
    world_init(w, seed, n, target);

    size_t edits = 0;
    for (w->step = 0; w->step < steps; w->step++) {
        size_t a = rng_below(&w->rng, 1000);
        int i = (int)rng_below(&w->rng, (size_t)w->n);
        int j = (int)((size_t)i + 1 + rng_below(&w->rng, (size_t)w->n - 1)) % w->n;
        if (a < edit_pm) {
            local_edit(w, i);
            edits++;
        } else if ((a -= edit_pm) < deliver_pm) {
            for (size_t k = 1 + rng_below(&w->rng, (size_t)w->n); k > 0; k--) deliver_one(w, 6, 5);
        } else if ((a -= deliver_pm) < 90) {
            gossip(w, i, j);
        } else if (a < 120) {
            resync_request(w, j, i);
        } else if (a < 127) {
            /* collect deleted content now: the visible text stays the same */
            crdt_sv *before = sv_of(w->r[i].doc);
            tbuf t;
            tbuf_init(&t, 0);
            text_into(w->r[i].doc, &t);
            ck_assert_int_eq(crdt_doc_gc(w->r[i].doc), TDM_OK);
            text_into(w->r[i].doc, &w->text);
            ck_assert(same_bytes(w->text.data, w->text.len, t.data, t.len));
            crdt_sv *after = sv_of(w->r[i].doc);
            ck_assert(crdt_sv_equal(before, after));
            crdt_sv_free(before);
            crdt_sv_free(after);
            tbuf_fini(&t);
        } else {
            check_rebuild(w, i); /* mid-run, possibly with operations pending */
        }
        if ((w->step + 1) % (steps / 4) == 0 && w->step + 1 < steps) checkpoint(w);
    }
    checkpoint(w);
    ck_assert_uint_gt(edits, steps * edit_pm / 1000 * 3 / 4);
    ck_assert_uint_gt(w->dropped, 0);
    ck_assert_uint_gt(w->duplicated, 0);
    ck_assert_uint_gt(w->held, 0); /* out-of-order delivery did leave ops pending */
    if (getenv("TANDEM_CONV_VERBOSE"))
        fprintf(stderr,
                "seed %016llx: %d replicas, %zu steps, %zu edits, %zu bytes of text, %zu sent, "
                "%zu delivered, %zu dropped, %zu duplicated, max pending %zu\n",
                (unsigned long long)seed, w->n, steps, edits, crdt_doc_len_bytes(w->r[0].doc),
                w->sent, w->delivered, w->dropped, w->duplicated, w->max_pending);
    world_fini(w);
    free(w);
}

static uint64_t seed_of(uint64_t salt, int i)
{
    uint64_t x = salt + (uint64_t)i;
    return splitmix64(&x);
}

/* Documents of a few thousand code points, edits anywhere. */
START_TEST(test_random_convergence)
{
    size_t steps = BASE_STEPS;
    if (_i >= BASE_SEEDS && _i % 2) steps *= 4;
    run_world(seed_of(0x7a6e64656d2d6376ull, _i), 3 + _i % 3, steps, TARGET_CPS, 450, 420);
}
END_TEST

/* Tiny documents and slower delivery: nearly every insert is concurrent with
 * others at the same place. */
START_TEST(test_random_contention)
{
    size_t steps = CONTEND_STEPS;
    if (_i >= CONTEND_SEEDS && _i % 2) steps *= 4;
    run_world(seed_of(0x636f6e74656e6421ull, _i), 3 + _i % 3, steps, CONTEND_CPS, 600, 270);
}
END_TEST

/* ------------------------------------------------------------------ non-interleaving */

#define MAX_UPS 32

typedef struct ups {
    tbuf v[MAX_UPS];
    size_t n;
} ups;

static void ups_fini(ups *u)
{
    for (size_t i = 0; i < u->n; i++) tbuf_fini(&u->v[i]);
    u->n = 0;
}

/* Type `run` one code point at a time at code point pos: forwards (each at the
 * end of what was typed) or backwards (last code point first, each at pos).
 * Each keystroke's update goes to out. */
static void type_run(crdt_doc *d, size_t pos, const char *run, bool backward, ups *out)
{
    size_t n = strlen(run), offs[MAX_UPS + 1], ncp = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_cont((uint8_t)run[i])) {
            ck_assert_uint_lt(ncp, MAX_UPS);
            offs[ncp++] = i;
        }
    offs[ncp] = n;
    char *before_text = doc_cstr(d);
    for (size_t k = 0; k < ncp; k++) {
        size_t idx = backward ? ncp - 1 - k : k;
        size_t at = backward ? pos : pos + k;
        crdt_sv *sv = sv_of(d);
        ck_assert_int_eq(crdt_doc_insert(d, at, run + offs[idx], offs[idx + 1] - offs[idx]),
                         TDM_OK);
        ck_assert_uint_lt(out->n, MAX_UPS);
        tbuf *u = &out->v[out->n++];
        tbuf_init(u, 0);
        ck_assert_int_eq(crdt_doc_diff(d, sv, u), TDM_OK);
        crdt_sv_free(sv);
    }
    /* locally the run sits whole at pos */
    size_t bl = strlen(before_text), off = u8_off((const uint8_t *)before_text, bl, pos);
    char *want = malloc(bl + n + 1);
    ck_assert_ptr_nonnull(want);
    memcpy(want, before_text, off);
    memcpy(want + off, run, n);
    memcpy(want + off + n, before_text + off, bl - off + 1);
    assert_doc_text(d, want);
    free(want);
    free(before_text);
}

/* Deliver a set of per-keystroke updates: mode 0 in order, 1 reversed, 2
 * shuffled with some delivered twice. Nothing may stay pending. */
static void deliver_ups(crdt_doc *d, ups *const *sets, size_t nsets, int mode, rng *r)
{
    const tbuf *list[4 * MAX_UPS];
    size_t n = 0;
    for (size_t s = 0; s < nsets; s++)
        for (size_t i = 0; i < sets[s]->n; i++) list[n++] = &sets[s]->v[i];
    if (mode == 1) {
        for (size_t i = 0; i < n / 2; i++) {
            const tbuf *t = list[i];
            list[i] = list[n - 1 - i];
            list[n - 1 - i] = t;
        }
    } else if (mode == 2) {
        for (size_t i = n; i > 1; i--) {
            size_t k = rng_below(r, i);
            const tbuf *t = list[i - 1];
            list[i - 1] = list[k];
            list[k] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        apply_ok(d, list[i]);
        if (mode == 2 && rng_chance(r, 30)) apply_ok(d, list[rng_below(r, i + 1)]);
    }
    ck_assert_uint_eq(crdt_doc_pending(d), 0);
}

/* (a), (b): two replicas from "" type "hello" and "world" at position 0,
 * forwards or backwards. _i picks the id order and the delivery mode. */
static void two_runs(int variant, bool backward)
{
    static const uint64_t idpairs[][2] = {
        {1, 2}, {2, 1}, {0xffffffffffffff00ull, 7}, {7, 0xffffffffffffff00ull}};
    const uint64_t *ids = idpairs[variant % 4];
    int mode = variant / 4; /* 0..2 per-keystroke delivery modes, 3 one diff each way */
    crdt_doc *a = doc_make(ids[0], false), *b = doc_make(ids[1], variant % 2 == 1);
    ups ua = {0}, ub = {0};
    rng r;
    rng_seed(&r, (uint64_t)variant);
    type_run(a, 0, "hello", backward, &ua);
    type_run(b, 0, "world", backward, &ub);
    if (mode < 3) {
        ups *sa[] = {&ua}, *sb[] = {&ub};
        deliver_ups(a, sb, 1, mode, &r);
        deliver_ups(b, sa, 1, mode, &r);
    } else {
        tbuf u;
        tbuf_init(&u, 0);
        crdt_sv *sva = sv_of(a);
        ck_assert_int_eq(crdt_doc_diff(b, sva, &u), TDM_OK);
        crdt_sv_free(sva);
        pull(b, a);
        apply_ok(a, &u);
        tbuf_fini(&u);
    }
    char *ta = doc_cstr(a), *tb = doc_cstr(b);
    ck_assert_msg(strcmp(ta, "helloworld") == 0 || strcmp(ta, "worldhello") == 0,
                  "%s typing, variant %d: merged text is \"%s\"", backward ? "backward" : "forward",
                  variant, ta);
    ck_assert_str_eq(ta, tb);
    free(ta);
    free(tb);
    ups_fini(&ua);
    ups_fini(&ub);
    crdt_doc_free(a);
    crdt_doc_free(b);
}

START_TEST(test_two_forward)
{
    two_runs(_i, false);
}
END_TEST

START_TEST(test_two_backward)
{
    two_runs(_i, true);
}
END_TEST

/* (c): three replicas type runs at the same spot of a shared text; each run
 * must end up contiguous, the three together exactly at that spot. */
START_TEST(test_three_runs)
{
    static const char base[] = "Gr\xc3\xbc\xc3\x9f"
                               "e, \xe4\xb8\x96\xe7\x95\x8c \xe2\x80\x94 ok\xf0\x9f\x98\x80!";
    static const char *const runs[3] = {"[1ab]", "<2\xc3\xa9\xe2\x82\xac>", "{3\xf0\x9f\x98\x80x}"};
    /* _i: direction pattern (4) x position (3) x id order (2) */
    static const bool dirs[4][3] = {
        {false, false, false}, {true, true, true}, {false, true, false}, {true, false, true}};
    const bool *dir = dirs[_i % 4];
    size_t base_cps = u8_cps((const uint8_t *)base, strlen(base));
    size_t positions[3] = {0, 8, base_cps};
    size_t pos = positions[(_i / 4) % 3];
    bool flip = (_i / 12) % 2;
    uint64_t ids[3] = {10, 20, 30};
    if (flip) {
        ids[0] = 30;
        ids[2] = 10;
    }
    char *first = NULL;
    for (uint64_t seed = 0; seed < 6; seed++) {
        crdt_doc *d[3];
        ups u[3];
        memset(u, 0, sizeof u);
        rng r;
        rng_seed(&r, seed * 131 + (uint64_t)_i);
        for (int k = 0; k < 3; k++) d[k] = doc_make(ids[k], k == 1);
        ck_assert_int_eq(crdt_doc_insert(d[0], 0, base, strlen(base)), TDM_OK);
        pull(d[1], d[0]);
        pull(d[2], d[0]);
        for (int k = 0; k < 3; k++) type_run(d[k], pos, runs[k], dir[k], &u[k]);
        for (int k = 0; k < 3; k++) {
            ups *others[2] = {&u[(k + 1) % 3], &u[(k + 2) % 3]};
            deliver_ups(d[k], others, 2, (int)(seed % 3), &r);
        }
        char *t0 = doc_cstr(d[0]);
        for (int k = 1; k < 3; k++) {
            char *t = doc_cstr(d[k]);
            ck_assert_str_eq(t, t0);
            free(t);
        }
        /* text == base[..pos) + runs in some order + base[pos..) */
        size_t off = u8_off((const uint8_t *)base, strlen(base), pos);
        bool ok = strncmp(t0, base, off) == 0 && strlen(t0) > strlen(base) - off &&
                  strcmp(t0 + strlen(t0) - (strlen(base) - off), base + off) == 0;
        const char *mid = t0 + off;
        bool used[3] = {false, false, false};
        for (int slot = 0; ok && slot < 3; slot++) {
            int hit = -1;
            for (int k = 0; k < 3; k++)
                if (!used[k] && strncmp(mid, runs[k], strlen(runs[k])) == 0) hit = k;
            if (hit < 0) {
                ok = false;
                break;
            }
            used[hit] = true;
            mid += strlen(runs[hit]);
        }
        ok = ok && (size_t)(mid - t0) == strlen(t0) - (strlen(base) - off);
        ck_assert_msg(ok, "runs interleaved (dirs %d%d%d, pos %zu, seed %llu): \"%s\"", dir[0],
                      dir[1], dir[2], pos, (unsigned long long)seed, t0);
        for (int k = 0; k < 3; k++) ck_assert_ptr_nonnull(strstr(t0, runs[k]));
        /* the delivery order does not change the outcome */
        if (!first)
            first = t0;
        else {
            ck_assert_str_eq(t0, first);
            free(t0);
        }
        for (int k = 0; k < 3; k++) {
            ups_fini(&u[k]);
            crdt_doc_free(d[k]);
        }
    }
    free(first);
}
END_TEST

/* (d): the Fugue paper's case. Roles A, B, C; _i picks which ids they get
 * (_i == 0: A < B < C). C types "c"; A, having it, types "a" at 0; B, having
 * nothing, types "b". Every delivery order must give "bac" or "acb" on all
 * three, the same text for every order. */
static void fugue_build(const uint64_t ids[3], crdt_doc *d[3], tbuf u[3])
{
    enum { A, B, C };
    for (int k = 0; k < 3; k++) {
        d[k] = doc_make(ids[k], k == B);
        tbuf_init(&u[k], 0);
    }
    ck_assert_int_eq(crdt_doc_insert(d[C], 0, "c", 1), TDM_OK);
    ck_assert_int_eq(crdt_doc_diff(d[C], NULL, &u[C]), TDM_OK);
    apply_ok(d[A], &u[C]);
    crdt_sv *sv = sv_of(d[A]);
    ck_assert_int_eq(crdt_doc_insert(d[A], 0, "a", 1), TDM_OK);
    assert_doc_text(d[A], "ac");
    ck_assert_int_eq(crdt_doc_diff(d[A], sv, &u[A]), TDM_OK);
    crdt_sv_free(sv);
    ck_assert_int_eq(crdt_doc_insert(d[B], 0, "b", 1), TDM_OK);
    ck_assert_int_eq(crdt_doc_diff(d[B], NULL, &u[B]), TDM_OK);
}

START_TEST(test_fugue_three)
{
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    enum { A, B, C };
    uint64_t ids[3];
    for (int k = 0; k < 3; k++) ids[perms[_i][k]] = 100 + (uint64_t)k; /* _i 0: A<B<C */
    char *first = NULL;
    /* each replica gets the three updates in order perms[p]; then by pairwise
     * state-vector syncs in order perms[p] of the pairs (A,B), (B,C), (A,C) */
    for (int how = 0; how < 2; how++) {
        for (int p = 0; p < 6; p++) {
            crdt_doc *d[3];
            tbuf u[3];
            fugue_build(ids, d, u);
            if (how == 0) {
                for (int k = 0; k < 3; k++) {
                    for (int s = 0; s < 3; s++) {
                        int which = perms[(p + k) % 6][s];
                        apply_ok(d[k], &u[which]);
                        if (k == B && s == 0 && which == A) { /* "a" without its "c" */
                            ck_assert_uint_gt(crdt_doc_pending(d[B]), 0);
                            assert_doc_text(d[B], "b");
                        }
                    }
                }
            } else {
                static const int pairs[3][2] = {{A, B}, {B, C}, {A, C}};
                for (int round = 0; round < 2; round++)
                    for (int s = 0; s < 3; s++) {
                        const int *pr = pairs[perms[p][s]];
                        pull(d[pr[0]], d[pr[1]]);
                        pull(d[pr[1]], d[pr[0]]);
                    }
            }
            for (int k = 0; k < 3; k++) {
                ck_assert_uint_eq(crdt_doc_pending(d[k]), 0);
                char *t = doc_cstr(d[k]);
                ck_assert_msg(strcmp(t, "bac") == 0 || strcmp(t, "acb") == 0,
                              "ids A=%llu B=%llu C=%llu, %s order %d: replica %c has \"%s\"",
                              (unsigned long long)ids[A], (unsigned long long)ids[B],
                              (unsigned long long)ids[C], how ? "sync" : "delivery", p, "ABC"[k],
                              t);
                if (!first)
                    first = t;
                else {
                    ck_assert_str_eq(t, first);
                    free(t);
                }
            }
            for (int k = 0; k < 3; k++) {
                crdt_doc_free(d[k]);
                tbuf_fini(&u[k]);
            }
        }
    }
    free(first);
}
END_TEST

/* ------------------------------------------------------------------ pending */

static void assert_same_state(crdt_doc *d, const char *text, const crdt_sv *sv, size_t pending)
{
    assert_doc_text(d, text);
    crdt_sv *now = sv_of(d);
    ck_assert(crdt_sv_equal(now, sv));
    crdt_sv_free(now);
    ck_assert_uint_eq(crdt_doc_pending(d), pending);
}

/* per-edit update: insert (n > 0) or delete (text NULL, n = count) */
static void edit_update(crdt_doc *d, size_t pos, const char *text, size_t n, tbuf *u)
{
    crdt_sv *sv = sv_of(d);
    if (text)
        ck_assert_int_eq(crdt_doc_insert(d, pos, text, n), TDM_OK);
    else
        ck_assert_int_eq(crdt_doc_delete(d, pos, n), TDM_OK);
    tbuf_init(u, 0);
    ck_assert_int_eq(crdt_doc_diff(d, sv, u), TDM_OK);
    crdt_sv_free(sv);
}

START_TEST(test_pending_out_of_order)
{
    static const int orders[][3] = {{1, 0, 2}, {2, 1, 0}, {2, 0, 1}, {1, 2, 0}};
    for (size_t o = 0; o < sizeof orders / sizeof *orders; o++) {
        crdt_doc *a = doc_make(1, false), *b = doc_make(2, o % 2 == 1);
        ck_assert_int_eq(crdt_doc_insert(a, 0, "start", 5), TDM_OK);
        pull(b, a);
        crdt_sv *base = sv_of(b);
        tbuf u[3];
        edit_update(a, 2, "h\xc3\xa9llo", 6, &u[0]); /* "sthélloart" */
        edit_update(a, 4, "\xe2\x82\xac", 3, &u[1]); /* "sthé€lloart" */
        edit_update(a, 1, NULL, 2, &u[2]);           /* "sé€lloart" */
        assert_doc_text(a, "s\xc3\xa9\xe2\x82\xaclloart");
        bool have0 = false;
        for (int s = 0; s < 3; s++) {
            int which = orders[o][s];
            apply_ok(b, &u[which]);
            have0 |= which == 0;
            if (!have0) { /* everything waits for u[0]; nothing shows */
                ck_assert_uint_ge(crdt_doc_pending(b), (size_t)s + 1);
                assert_same_state(b, "start", base, crdt_doc_pending(b));
            }
        }
        ck_assert_uint_eq(crdt_doc_pending(b), 0);
        assert_doc_text(b, "s\xc3\xa9\xe2\x82\xaclloart");
        crdt_sv *sa = sv_of(a), *sb = sv_of(b);
        ck_assert(crdt_sv_equal(sa, sb));
        crdt_sv_free(sa);
        crdt_sv_free(sb);
        crdt_sv_free(base);
        for (int k = 0; k < 3; k++) tbuf_fini(&u[k]);
        crdt_doc_free(a);
        crdt_doc_free(b);
    }

    /* a dependency on another client: C edits next to A's text before B has it */
    crdt_doc *a = doc_make(1, false), *b = doc_make(2, false), *c = doc_make(3, false);
    tbuf ua, uc;
    edit_update(a, 0, "\xf0\x9f\x98\x80xy", 6, &ua);
    apply_ok(c, &ua);
    edit_update(c, 2, "Z", 1, &uc);
    crdt_sv *empty = crdt_sv_new();
    apply_ok(b, &uc);
    ck_assert_uint_eq(crdt_doc_pending(b), 1);
    assert_same_state(b, "", empty, 1);
    apply_ok(b, &uc); /* a duplicate while pending: nothing shows, and it is held once */
    assert_same_state(b, "", empty, 1);
    apply_ok(b, &ua);
    ck_assert_uint_eq(crdt_doc_pending(b), 0);
    assert_doc_text(b, "\xf0\x9f\x98\x80xZy");
    crdt_sv_free(empty);
    tbuf_fini(&ua);
    tbuf_fini(&uc);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(c);
}
END_TEST

START_TEST(test_pending_bounds)
{
    crdt_doc *a = doc_make(1, false), *b = doc_make(2, false), *p = doc_make(4, false);
    crdt_doc_opts o = {0};
    o.client = 3;
    o.max_pending_ops = 2;
    crdt_doc *t = NULL;
    ck_assert_int_eq(crdt_doc_new_opts(&o, &t), TDM_OK);
    ck_assert_int_eq(crdt_doc_insert(a, 0, "base", 4), TDM_OK);
    pull(b, a);
    pull(t, a);
    pull(p, a);
    crdt_sv *tsv = sv_of(t);

    tbuf ux, uy, u3;
    edit_update(a, 0, "X", 1, &ux); /* "Xbase" */
    edit_update(a, 5, "Y", 1, &uy); /* "XbaseY": waits for X (same client) */
    apply_ok(b, &ux);
    crdt_sv *bsv = sv_of(b);
    ck_assert_int_eq(crdt_doc_insert(b, 1, "1", 1), TDM_OK); /* after X */
    ck_assert_int_eq(crdt_doc_insert(b, 6, "2", 1), TDM_OK); /* at the end */
    ck_assert_int_eq(crdt_doc_delete(b, 0, 1), TDM_OK);      /* X itself */
    assert_doc_text(b, "1base2");
    tbuf_init(&u3, 0);
    ck_assert_int_eq(crdt_doc_diff(b, bsv, &u3), TDM_OK);
    crdt_sv_free(bsv);

    /* u3 holds three operations, none of which can apply without X */
    apply_ok(p, &u3);
    ck_assert_uint_eq(crdt_doc_pending(p), 3);
    assert_doc_text(p, "base");

    /* bound 2: refused whole, nothing changes */
    ck_assert_int_eq(crdt_doc_apply(t, u3.data, u3.len), TDM_EPENDING_FULL);
    assert_same_state(t, "base", tsv, 0);
    /* one op pending is within the bound; then the three would make four */
    apply_ok(t, &uy);
    assert_same_state(t, "base", tsv, 1);
    ck_assert_int_eq(crdt_doc_apply(t, u3.data, u3.len), TDM_EPENDING_FULL);
    assert_same_state(t, "base", tsv, 1);
    /* the missing dependency releases everything; then u3 applies */
    apply_ok(t, &ux);
    assert_doc_text(t, "XbaseY");
    ck_assert_uint_eq(crdt_doc_pending(t), 0);
    apply_ok(t, &u3);
    ck_assert_uint_eq(crdt_doc_pending(t), 0);
    apply_ok(a, &u3);
    char *ta = doc_cstr(a), *tt = doc_cstr(t);
    ck_assert(strcmp(ta, "1base2Y") == 0 || strcmp(ta, "1baseY2") == 0);
    ck_assert_str_eq(tt, ta);
    free(ta);
    free(tt);

    /* the byte bound counts the text of waiting inserts */
    tbuf ue1, ue2;
    crdt_doc *e = doc_make(5, false);
    edit_update(e, 0, "x", 1, &ue1);
    edit_update(e, 1, "\xe2\x82\xac\xe2\x82\xac", 6, &ue2); /* 6 bytes, waits for x */
    for (size_t lim = 4; lim <= 6; lim++) {
        crdt_doc_opts ob = {0};
        ob.client = 6;
        ob.max_pending_bytes = lim;
        crdt_doc *q = NULL;
        ck_assert_int_eq(crdt_doc_new_opts(&ob, &q), TDM_OK);
        crdt_sv *empty = sv_of(q);
        tdm_err err = crdt_doc_apply(q, ue2.data, ue2.len);
        if (lim < 6) {
            ck_assert_int_eq(err, TDM_EPENDING_FULL);
            assert_same_state(q, "", empty, 0);
        } else {
            ck_assert_int_eq(err, TDM_OK);
            assert_same_state(q, "", empty, 1);
            apply_ok(q, &ue1);
            ck_assert_uint_eq(crdt_doc_pending(q), 0);
            assert_doc_text(q, "x\xe2\x82\xac\xe2\x82\xac");
        }
        crdt_sv_free(empty);
        crdt_doc_free(q);
    }
    tbuf_fini(&ue1);
    tbuf_fini(&ue2);
    crdt_doc_free(e);

    crdt_sv_free(tsv);
    tbuf_fini(&ux);
    tbuf_fini(&uy);
    tbuf_fini(&u3);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(p);
    crdt_doc_free(t);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *convergence_suite(void)
{
    unsigned soak = soak_factor();
    Suite *s = suite_create("convergence");
    TCase *tc = tcase_create("random");
    tcase_set_timeout(tc, 600.0 * soak);
    tcase_add_loop_test(tc, test_random_convergence, 0, (int)(BASE_SEEDS * soak));
    tcase_add_loop_test(tc, test_random_contention, 0, (int)(CONTEND_SEEDS * soak));
    suite_add_tcase(s, tc);

    tc = tcase_create("noninterleave");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_two_forward, 0, 16);
    tcase_add_loop_test(tc, test_two_backward, 0, 16);
    tcase_add_loop_test(tc, test_three_runs, 0, 24);
    tcase_add_loop_test(tc, test_fugue_three, 0, 6);
    suite_add_tcase(s, tc);

    tc = tcase_create("pending");
    tcase_add_test(tc, test_pending_out_of_order);
    tcase_add_test(tc, test_pending_bounds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(convergence_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
