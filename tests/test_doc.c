/* test_doc.c - crdt_doc: local edits and reads over multibyte text, state
 * vectors and delete sets, diff / diff_range / apply (idempotence,
 * commutativity, pending operations), garbage collection, snapshots, stats,
 * and hostile updates and snapshots, which must fail and leave the document
 * exactly as it was (text, lengths, state vector, delete set, pending count,
 * known clients and items). */
#include "doc.h"
#include "zip.h"
#include "cbor_rd.h"

#include <check.h>
#include <zlib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

/* ------------------------------------------------------------------ helpers */

#define ANY_ERR TDM_ERR_COUNT_ /* "some error" for ck_err */

/* Check's ck_assert_* record every passing assertion through the runner's
 * pipe; the loops below run them hundreds of thousands of times, so these
 * report only failures. */
#define ck_err(expr, want)                                                                         \
    do {                                                                                           \
        tdm_err got_ = (expr), want_ = (want);                                                     \
        if (want_ == ANY_ERR ? got_ == TDM_OK : got_ != want_)                                     \
            ck_abort_msg("%s:%d: %s: %s, want %s", __FILE__, __LINE__, #expr, tdm_err_name(got_),  \
                         want_ == ANY_ERR ? "an error" : tdm_err_name(want_));                     \
    } while (0)
#define ck_ok(expr) ck_err(expr, TDM_OK)
#define ck_fast(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg("%s:%d: assertion '%s' failed", __FILE__, __LINE__, #cond);      \
    } while (0)

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* enc_cp - UTF-8 of code point c into o; returns the byte count. */
static size_t enc_cp(uint32_t c, char *o)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xc0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* count_cps - code points and UTF-16 units of valid UTF-8 p[0..n). */
static void count_cps(const char *p, size_t n, size_t *cps, size_t *units)
{
    *cps = *units = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)p[i];
        if ((b & 0xc0) == 0x80) continue;
        (*cps)++;
        *units += b >= 0xf0 ? 2 : 1;
    }
}

/* cp_offset - byte offset of code point k in valid UTF-8 p[0..n). */
static size_t cp_offset(const char *p, size_t n, size_t k)
{
    size_t i = 0;
    while (k > 0 && i < n) {
        i++;
        while (i < n && ((uint8_t)p[i] & 0xc0) == 0x80) i++;
        k--;
    }
    return i;
}

static crdt_doc *doc_new(uint64_t client)
{
    crdt_doc *d = NULL;
    ck_ok(crdt_doc_new(client, &d));
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(crdt_doc_client(d), client);
    return d;
}

static crdt_doc *doc_new_opts(uint64_t client, bool gc, size_t max_update_bytes)
{
    crdt_doc_opts o = {0};
    o.client = client;
    o.gc = gc;
    o.max_update_bytes = max_update_bytes;
    crdt_doc *d = NULL;
    ck_ok(crdt_doc_new_opts(&o, &d));
    ck_assert_ptr_nonnull(d);
    return d;
}

/* doc_str - the text, NUL-terminated (free it); *n (may be NULL) gets its bytes. */
static char *doc_str(crdt_doc *d, size_t *n)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_ok(crdt_doc_text(d, &b));
    ck_fast(b.len == crdt_doc_len_bytes(d));
    size_t len = b.len;
    ck_ok(tbuf_append(&b, "", 1));
    size_t cap;
    char *s = (char *)tbuf_take(&b, &cap);
    if (n) *n = len;
    return s;
}

#define ck_text(d, want)                                                                           \
    do {                                                                                           \
        char *s_ = doc_str((d), NULL);                                                             \
        ck_assert_str_eq(s_, (want));                                                              \
        free(s_);                                                                                  \
    } while (0)

/* ck_lengths - the three lengths agree with the text. */
static void ck_lengths(crdt_doc *d)
{
    size_t n, cps, units;
    char *s = doc_str(d, &n);
    count_cps(s, n, &cps, &units);
    ck_assert_uint_eq(crdt_doc_len(d), cps);
    ck_assert_uint_eq(crdt_doc_len_utf16(d), units);
    ck_assert_uint_eq(crdt_doc_len_bytes(d), n);
    free(s);
}

static void ins(crdt_doc *d, size_t pos, const char *s)
{
    ck_ok(crdt_doc_insert(d, pos, s, strlen(s)));
}

static void del(crdt_doc *d, size_t pos, size_t count)
{
    ck_ok(crdt_doc_delete(d, pos, count));
}

static uint32_t sv_of(crdt_doc *d, uint64_t client)
{
    crdt_sv *sv = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(d, sv));
    uint32_t k = crdt_sv_get(sv, client);
    crdt_sv_free(sv);
    return k;
}

/* Everything observable about a document, to compare before and after. */
typedef struct dstate {
    char *text;
    size_t nbytes;
    crdt_sv *sv;
    crdt_ds *ds;
    size_t pending, len, len16;
    size_t clients, items; /* from crdt_doc_get_stats */
} dstate;

static void state_take(dstate *s, crdt_doc *d)
{
    s->text = doc_str(d, &s->nbytes);
    s->sv = crdt_sv_new();
    s->ds = crdt_ds_new();
    ck_ok(crdt_doc_state_vector(d, s->sv));
    ck_ok(crdt_doc_delete_set(d, s->ds));
    s->pending = crdt_doc_pending(d);
    s->len = crdt_doc_len(d);
    s->len16 = crdt_doc_len_utf16(d);
    crdt_doc_stats st;
    crdt_doc_get_stats(d, &st);
    s->clients = st.clients;
    s->items = st.items;
}

static void state_fini(dstate *s)
{
    free(s->text);
    crdt_sv_free(s->sv);
    crdt_ds_free(s->ds);
}

static void state_eq(const dstate *a, const dstate *b)
{
    ck_fast(a->nbytes == b->nbytes);
    ck_fast(memcmp(a->text, b->text, a->nbytes) == 0);
    ck_fast(crdt_sv_equal(a->sv, b->sv));
    ck_fast(crdt_ds_equal(a->ds, b->ds));
    ck_fast(a->pending == b->pending);
    ck_fast(a->len == b->len);
    ck_fast(a->len16 == b->len16);
}

/* state_same - state_eq, and the same clients and items: for a document that
 * refused a change (state_eq alone compares replicas, which may differ there) */
static void state_same(const dstate *a, const dstate *b)
{
    state_eq(a, b);
    ck_fast(a->clients == b->clients);
    ck_fast(a->items == b->items);
}

/* state_check - d still looks exactly like s. */
static void state_check(const dstate *s, crdt_doc *d)
{
    dstate t;
    state_take(&t, d);
    state_same(s, &t);
    state_fini(&t);
}

/* an observer that counts the changes it is told about */
static void count_changes(void *ctx, const struct ot_op *delta, tdm_err err, bool local)
{
    (void)delta;
    (void)err;
    (void)local;
    (*(int *)ctx)++;
}

/* ck_converged - same text, state vector and delete set; nothing pending. */
static void ck_converged(crdt_doc *a, crdt_doc *b)
{
    dstate x, y;
    state_take(&x, a);
    state_take(&y, b);
    ck_assert_uint_eq(x.pending, 0);
    state_eq(&x, &y);
    state_fini(&x);
    state_fini(&y);
}

/* diff_for - the update src has and dst (NULL: nobody) lacks. */
static void diff_for(crdt_doc *src, crdt_doc *dst, tbuf *out)
{
    crdt_sv *sv = NULL;
    if (dst) {
        sv = crdt_sv_new();
        ck_ok(crdt_doc_state_vector(dst, sv));
    }
    ck_ok(crdt_doc_diff(src, sv, out));
    crdt_sv_free(sv);
}

static void apply_buf(crdt_doc *d, const tbuf *u)
{
    ck_ok(crdt_doc_apply(d, u->data, u->len));
}

/* sync_to - bring dst up to date with src. */
static void sync_to(crdt_doc *dst, crdt_doc *src)
{
    tbuf u;
    tbuf_init(&u, 0);
    diff_for(src, dst, &u);
    apply_buf(dst, &u);
    tbuf_fini(&u);
}

static void snap(crdt_doc *d, tbuf *out)
{
    tbuf_reset(out);
    ck_ok(crdt_doc_snapshot(d, out));
}

/* from_snapshot - a new document of `client` loaded from s (NULL: empty). */
static crdt_doc *from_snapshot(const tbuf *s, uint64_t client)
{
    crdt_doc *d = doc_new(client);
    if (s) ck_ok(crdt_doc_load(d, s->data, s->len));
    return d;
}

static crdt_doc *doc_copy(crdt_doc *src, uint64_t client)
{
    tbuf s;
    tbuf_init(&s, 0);
    snap(src, &s);
    crdt_doc *d = from_snapshot(&s, client);
    tbuf_fini(&s);
    return d;
}

/* snap_codec - the codec field of an encoded snapshot. */
static uint64_t snap_codec(const tbuf *s)
{
    cbr r;
    size_t n, m;
    uint64_t v;
    cbr_init(&r, s->data, s->len);
    ck_ok(cbr_array(&r, &n));
    ck_ok(cbr_uint(&r, &v));
    for (int t = 0; t < 2; t++) {
        ck_ok(cbr_array(&r, &m));
        for (size_t i = 0; i < m; i++) ck_ok(cbr_uint(&r, &v));
    }
    ck_ok(cbr_uint(&r, &v));
    return v;
}

/* ck_consistent - a document that accepted hostile bytes is still whole: its
 * reads agree, it survives a snapshot round trip, and its full diff applies to
 * a fresh replica (which, with `converge`, then has the same text). */
static void ck_consistent(crdt_doc *d, bool converge)
{
    ck_lengths(d);
    tbuf s, u;
    tbuf_init(&s, 0);
    tbuf_init(&u, 0);
    dstate a;
    state_take(&a, d);
    snap(d, &s);
    crdt_doc *l = doc_new(424242);
    ck_ok(crdt_doc_load(l, s.data, s.len));
    dstate b;
    state_take(&b, l);
    a.pending = 0; /* pending operations are not part of a snapshot */
    state_eq(&a, &b);
    state_fini(&b);
    crdt_doc_free(l);
    ck_ok(crdt_doc_diff(d, NULL, &u));
    l = doc_new(434343);
    ck_ok(crdt_doc_apply(l, u.data, u.len));
    size_t tn;
    char *t = doc_str(l, &tn);
    if (converge) ck_fast(tn == a.nbytes && memcmp(t, a.text, a.nbytes) == 0);
    free(t);
    crdt_doc_free(l);
    state_fini(&a);
    tbuf_fini(&s);
    tbuf_fini(&u);
}

/* apply_bad - d must refuse p[0..n) with `want` and stay as it was. */
static void apply_bad(crdt_doc *d, const uint8_t *p, size_t n, tdm_err want)
{
    dstate s;
    state_take(&s, d);
    ck_err(crdt_doc_apply(d, p, n), want);
    state_check(&s, d);
    state_fini(&s);
}

/* load_bad - an empty document must refuse snapshot p[0..n) with `want`, stay
 * empty, and still load a good snapshot afterwards. */
static void load_bad(const uint8_t *p, size_t n, tdm_err want)
{
    crdt_doc *d = doc_new(77);
    int changes = 0;
    crdt_doc_observe(d, count_changes, &changes);
    ck_err(crdt_doc_load(d, p, n), want);
    ck_assert_int_eq(changes, 0);
    crdt_doc_observe(d, NULL, NULL);
    crdt_doc_stats st;
    crdt_doc_get_stats(d, &st);
    ck_assert_uint_eq(st.items, 0);
    ck_assert_uint_eq(st.clients, 1);
    ck_assert_uint_eq(crdt_doc_len(d), 0);
    ck_assert_uint_eq(sv_of(d, 77), 0);
    ins(d, 0, "ok");
    ck_text(d, "ok");
    ck_assert_uint_eq(sv_of(d, 77), 2);
    crdt_doc_free(d);
}

/* ---- hand-built updates: [1, [client-id ...], [[ci, clock, [op ...]] ...]] */

enum { REF_NONE = -1, REF_SAME = -2 }; /* origin/target forms; >= 0: [ci, clock] */

static void upd_head(tbuf *b, const uint64_t *ids, size_t nids, size_t nblocks)
{
    ck_ok(tbuf_cbor_array(b, 3));
    ck_ok(tbuf_cbor_uint(b, 1));
    ck_ok(tbuf_cbor_array(b, nids));
    for (size_t i = 0; i < nids; i++) ck_ok(tbuf_cbor_uint(b, ids[i]));
    ck_ok(tbuf_cbor_array(b, nblocks));
}

static void upd_block(tbuf *b, uint64_t ci, uint64_t clock, size_t nops)
{
    ck_ok(tbuf_cbor_array(b, 3));
    ck_ok(tbuf_cbor_uint(b, ci));
    ck_ok(tbuf_cbor_uint(b, clock));
    ck_ok(tbuf_cbor_array(b, nops));
}

static void upd_ref(tbuf *b, int64_t c, uint64_t k)
{
    if (c == REF_NONE) {
        ck_ok(tbuf_cbor_null(b));
    } else if (c == REF_SAME) {
        ck_ok(tbuf_cbor_uint(b, k));
    } else {
        ck_ok(tbuf_cbor_array(b, 2));
        ck_ok(tbuf_cbor_uint(b, (uint64_t)c));
        ck_ok(tbuf_cbor_uint(b, k));
    }
}

static void op_insert(tbuf *b, int64_t lc, uint64_t lk, int64_t rc, uint64_t rk, const char *t,
                      size_t n)
{
    ck_ok(tbuf_cbor_array(b, 3));
    upd_ref(b, lc, lk);
    upd_ref(b, rc, rk);
    ck_ok(tbuf_cbor_text(b, t, n));
}

static void op_tomb(tbuf *b, int64_t lc, uint64_t lk, int64_t rc, uint64_t rk, uint64_t len)
{
    ck_ok(tbuf_cbor_array(b, 3));
    upd_ref(b, lc, lk);
    upd_ref(b, rc, rk);
    ck_ok(tbuf_cbor_uint(b, len));
}

static void op_delete(tbuf *b, int64_t tc, uint64_t tk, int64_t slen)
{
    ck_ok(tbuf_cbor_array(b, 2));
    upd_ref(b, tc, tk);
    ck_ok(tbuf_cbor_int(b, slen));
}

/* one-op update from client id `cid` at `clock` */
static void upd_one_insert(tbuf *b, uint64_t cid, uint64_t clock, const char *t, size_t n)
{
    tbuf_reset(b);
    upd_head(b, &cid, 1, 1);
    upd_block(b, 0, clock, 1);
    op_insert(b, REF_NONE, 0, REF_NONE, 0, t, n);
}

/* ---- hand-built snapshots: [v, [id ...], [next ...], codec, items, text, dels] */

static void raw_deflate(const uint8_t *p, size_t n, tbuf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    uLong bound = deflateBound(&z, (uLong)n);
    ck_ok(tbuf_reserve(out, bound));
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = out->data + out->len;
    z.avail_out = (uInt)bound;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    out->len += z.total_out;
    deflateEnd(&z);
}

typedef struct snapspec {
    uint64_t version;
    const uint64_t *ids, *next;
    size_t nids, nnext;
    uint64_t codec;
    const uint8_t *col[3]; /* items, text, deletes: already in the codec's form */
    size_t ncol[3];
} snapspec;

static void snap_build(const snapspec *s, tbuf *out)
{
    tbuf_reset(out);
    ck_ok(tbuf_cbor_array(out, 8));
    ck_ok(tbuf_cbor_uint(out, s->version));
    ck_ok(tbuf_cbor_array(out, s->nids));
    for (size_t i = 0; i < s->nids; i++) ck_ok(tbuf_cbor_uint(out, s->ids[i]));
    ck_ok(tbuf_cbor_array(out, s->nnext));
    for (size_t i = 0; i < s->nnext; i++) ck_ok(tbuf_cbor_uint(out, s->next[i]));
    ck_ok(tbuf_cbor_uint(out, s->codec));
    for (int i = 0; i < 3; i++) ck_ok(tbuf_cbor_bytes(out, s->col[i], s->ncol[i]));
    /* the trailing CRC-32 covers every byte before it */
    ck_ok(tbuf_cbor_uint(out, zip_crc32(0, out->data, out->len)));
}

/* A small document with several clients, runs split by edits, multibyte text
 * and deletes (also of remote characters). a has client 1, b client 2. */
static void make_pair(crdt_doc **pa, crdt_doc **pb)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    ins(a, 0, "h\xc3\xa9llo w\xc3\xb6rld \xf0\x9f\x98\x80"); /* héllo wörld 😀 */
    sync_to(b, a);
    ins(b, 5, "\xe4\xb8\xad");       /* 中 */
    del(b, 1, 2);                    /* él */
    del(a, 12, 1);                   /* 😀 */
    ins(a, 12, "!\xf0\x9f\x8e\x89"); /* !🎉 */
    sync_to(a, b);
    sync_to(b, a);
    ck_converged(a, b);
    *pa = a;
    *pb = b;
}

/* ------------------------------------------------------------------ editing */

START_TEST(test_new_free)
{
    crdt_doc *d = doc_new(0xfeedfacecafebeefull);
    ck_assert_uint_eq(crdt_doc_len(d), 0);
    ck_assert_uint_eq(crdt_doc_len_utf16(d), 0);
    ck_assert_uint_eq(crdt_doc_len_bytes(d), 0);
    ck_assert_uint_eq(crdt_doc_pending(d), 0);
    ck_text(d, "");
    crdt_sv *sv = crdt_sv_new();
    ck_ok(crdt_sv_set(sv, 5, 5)); /* state_vector replaces what sv held */
    ck_ok(crdt_doc_state_vector(d, sv));
    ck_assert_uint_eq(crdt_sv_count(sv), 0);
    crdt_ds *ds = crdt_ds_new();
    ck_ok(crdt_ds_add(ds, 5, 0, 3));
    ck_ok(crdt_doc_delete_set(d, ds));
    ck_assert_uint_eq(crdt_ds_ids(ds), 0);
    crdt_sv_free(sv);
    crdt_ds_free(ds);
    crdt_doc_free(d);
    crdt_doc_free(NULL);

    crdt_doc *o = NULL;
    ck_ok(crdt_doc_new_opts(NULL, &o)); /* NULL opts: defaults, client 0 */
    ck_assert_uint_eq(crdt_doc_client(o), 0);
    ins(o, 0, "x");
    ck_assert_uint_eq(sv_of(o, 0), 1);
    crdt_doc_free(o);
}
END_TEST

START_TEST(test_insert_positions)
{
    crdt_doc *d = doc_new(7);
    ins(d, 0, "world");  /* into the empty document */
    ins(d, 0, "hello "); /* at the start */
    ins(d, 11, "!");     /* at the end */
    ins(d, 5, ",");      /* in the middle of a run */
    ck_text(d, "hello, world!");
    ins(d, 7, "big "); /* at a run boundary */
    ck_text(d, "hello, big world!");
    ins(d, 17, "?"); /* at the end again */
    ins(d, 0, ">");
    ck_text(d, ">hello, big world!?");
    ck_assert_uint_eq(crdt_doc_len(d), 19);
    ck_assert_uint_eq(sv_of(d, 7), 19);
    ck_lengths(d);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_insert_out_of_range)
{
    crdt_doc *d = doc_new(7);
    ck_err(crdt_doc_insert(d, 1, "x", 1), TDM_ERANGE);
    ins(d, 0, "abcdef");
    del(d, 1, 3); /* "aef": positions count visible characters only */
    dstate s;
    state_take(&s, d);
    ck_err(crdt_doc_insert(d, 4, "x", 1), TDM_ERANGE);
    ck_err(crdt_doc_insert(d, 6, "x", 1), TDM_ERANGE);
    ck_err(crdt_doc_insert(d, SIZE_MAX, "x", 1), TDM_ERANGE);
    ck_err(crdt_doc_insert(d, 99, "", 0), TDM_ERANGE);
    state_check(&s, d);
    ins(d, 3, "x");
    ck_text(d, "aefx");
    state_fini(&s);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_insert_empty)
{
    crdt_doc *d = doc_new(7);
    ck_ok(crdt_doc_insert(d, 0, "", 0));
    ck_ok(crdt_doc_insert(d, 0, NULL, 0));
    ck_assert_uint_eq(sv_of(d, 7), 0);
    ins(d, 0, "ab");
    ck_ok(crdt_doc_insert(d, 1, "zzz", 0));
    ck_ok(crdt_doc_insert(d, 2, NULL, 0));
    ck_assert_uint_eq(sv_of(d, 7), 2); /* an empty insert takes no clock */
    ck_err(crdt_doc_insert(d, 0, NULL, 1), TDM_EINVAL);
    ck_text(d, "ab");
    ck_assert_uint_eq(sv_of(d, 7), 2);
    crdt_doc_free(d);
}
END_TEST

static const struct {
    const char *s;
    size_t n;
} bad_utf8[] = {
    {"\xc0\xaf", 2},                 /* overlong '/' */
    {"\xc1\xbf", 2},                 /* overlong */
    {"\xe0\x80\xaf", 3},             /* overlong, 3 bytes */
    {"\xe0\x9f\xbf", 3},             /* overlong U+07FF */
    {"\xf0\x80\x80\xaf", 4},         /* overlong, 4 bytes */
    {"\xf0\x8f\xbf\xbf", 4},         /* overlong U+FFFF */
    {"\xed\xa0\x80", 3},             /* surrogate U+D800 */
    {"\xed\xbf\xbf", 3},             /* surrogate U+DFFF */
    {"\xed\xa0\xbd\xed\xb8\x80", 6}, /* CESU-8 pair */
    {"\xc3", 1},                     /* truncated */
    {"\xe2\x82", 2},                 /* truncated */
    {"\xf0\x9f\x98", 3},             /* truncated */
    {"ab\xf0\x9f\x98", 5},           /* truncated at the end */
    {"\xe2\x28\xa1", 3},             /* bad continuation */
    {"\x80", 1},                     /* lone continuation */
    {"a\xbf"
     "b",
     3},                         /* lone continuation inside */
    {"\xf4\x90\x80\x80", 4},     /* U+110000 */
    {"\xf5\x80\x80\x80", 4},     /* lead byte past U+10FFFF */
    {"\xf7\xbf\xbf\xbf", 4},     /* U+1FFFFF */
    {"\xf8\x88\x80\x80\x80", 5}, /* 5-byte form */
    {"\xfe", 1},
    {"\xff", 1},
};

START_TEST(test_insert_invalid_utf8)
{
    crdt_doc *d = doc_new(7);
    ins(d, 0,
        "a\xe2\x82\xac"
        "b"); /* a€b */
    dstate s;
    state_take(&s, d);
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        for (size_t pos = 0; pos <= 3; pos++) {
            ck_err(crdt_doc_insert(d, pos, bad_utf8[i].s, bad_utf8[i].n), TDM_EUTF8);
            state_check(&s, d);
        }
    }
    /* the edges that are valid */
    static const struct {
        const char *s;
        size_t n, units;
    } good[] = {
        {"\x00", 1, 1},
        {"\x7f", 1, 1},
        {"\xc2\x80", 2, 1},
        {"\xdf\xbf", 2, 1},
        {"\xe0\xa0\x80", 3, 1},
        {"\xed\x9f\xbf", 3, 1},
        {"\xee\x80\x80", 3, 1},
        {"\xef\xbf\xbf", 3, 1},
        {"\xf0\x90\x80\x80", 4, 2},
        {"\xf4\x8f\xbf\xbf", 4, 2},
    };
    size_t bytes = 5, units = 3;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_ok(crdt_doc_insert(d, 1, good[i].s, good[i].n));
        bytes += good[i].n;
        units += good[i].units;
        ck_assert_uint_eq(crdt_doc_len(d), 4 + i);
        ck_assert_uint_eq(crdt_doc_len_bytes(d), bytes);
        ck_assert_uint_eq(crdt_doc_len_utf16(d), units);
    }
    state_fini(&s);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_delete_positions)
{
    crdt_doc *d = doc_new(7);
    ins(d, 0, "0123456789");
    del(d, 0, 1); /* start */
    ck_text(d, "123456789");
    del(d, 8, 1); /* end */
    ck_text(d, "12345678");
    del(d, 3, 2); /* middle */
    ck_text(d, "123678");
    ins(d, 3, "ab");
    del(d, 2, 4); /* across runs: "3" "ab" "6" */
    ck_text(d, "1278");
    del(d, 0, 4); /* everything */
    ck_text(d, "");
    ck_assert_uint_eq(sv_of(d, 7), 10 + 2 + 1 + 1 + 2 + 4 + 4);
    ck_lengths(d);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_delete_out_of_range)
{
    crdt_doc *d = doc_new(7);
    ck_err(crdt_doc_delete(d, 0, 1), TDM_ERANGE);
    ck_ok(crdt_doc_delete(d, 0, 0));
    ins(d, 0, "abc");
    dstate s;
    state_take(&s, d);
    ck_err(crdt_doc_delete(d, 4, 0), TDM_ERANGE);
    ck_err(crdt_doc_delete(d, 3, 1), TDM_ERANGE);
    ck_err(crdt_doc_delete(d, 2, 2), TDM_ERANGE);
    ck_err(crdt_doc_delete(d, 0, 4), TDM_ERANGE);
    ck_err(crdt_doc_delete(d, 1, SIZE_MAX), TDM_ERANGE);
    ck_err(crdt_doc_delete(d, SIZE_MAX, 1), TDM_ERANGE);
    ck_err(crdt_doc_delete(d, SIZE_MAX, SIZE_MAX), TDM_ERANGE);
    ck_ok(crdt_doc_delete(d, 3, 0)); /* empty deletes take no clock */
    ck_ok(crdt_doc_delete(d, 1, 0));
    state_check(&s, d);
    state_fini(&s);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_multibyte_lengths)
{
    crdt_doc *d = doc_new(7);
    ins(d, 0, "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"); /* aé€😀 */
    ck_assert_uint_eq(crdt_doc_len(d), 4);
    ck_assert_uint_eq(crdt_doc_len_utf16(d), 5);
    ck_assert_uint_eq(crdt_doc_len_bytes(d), 10);
    ck_assert_uint_eq(sv_of(d, 7), 4); /* one clock per code point */
    ins(d, 3, "\xe4\xb8\xad");         /* aé€中😀 */
    ck_text(d, "a\xc3\xa9\xe2\x82\xac\xe4\xb8\xad\xf0\x9f\x98\x80");
    del(d, 2, 1); /* aé中😀 */
    ck_assert_uint_eq(crdt_doc_len(d), 4);
    ck_assert_uint_eq(crdt_doc_len_utf16(d), 5);
    ck_assert_uint_eq(crdt_doc_len_bytes(d), 10);
    del(d, 3, 1); /* aé中 */
    ck_assert_uint_eq(crdt_doc_len_utf16(d), 3);
    ck_assert_uint_eq(crdt_doc_len_bytes(d), 6);
    ins(d, 0, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"); /* 😀😀😀 */
    ck_assert_uint_eq(crdt_doc_len(d), 6);
    ck_assert_uint_eq(crdt_doc_len_utf16(d), 9);
    ck_assert_uint_eq(crdt_doc_len_bytes(d), 18);
    ck_lengths(d);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_multibyte_delete_middle)
{
    crdt_doc *d = doc_new(7);
    /* 😀é€😀é€ in one run */
    ins(d, 0, "\xf0\x9f\x98\x80\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9\xe2\x82\xac");
    del(d, 2, 2); /* €😀 out of the middle of the run */
    ck_text(d, "\xf0\x9f\x98\x80\xc3\xa9\xc3\xa9\xe2\x82\xac");
    ck_assert_uint_eq(crdt_doc_len(d), 4);
    ck_assert_uint_eq(crdt_doc_len_utf16(d), 5);
    ck_assert_uint_eq(crdt_doc_len_bytes(d), 11);
    ins(d, 1, "x"); /* inside the split run */
    del(d, 3, 1);   /* the second é */
    ck_text(d, "\xf0\x9f\x98\x80x\xc3\xa9\xe2\x82\xac");
    del(d, 0, 1);
    ck_text(d, "x\xc3\xa9\xe2\x82\xac");
    ck_lengths(d);
    /* the same edits arrive intact at a replica */
    crdt_doc *r = doc_new(8);
    sync_to(r, d);
    ck_converged(d, r);
    ck_lengths(r);
    crdt_doc_free(r);
    crdt_doc_free(d);
}
END_TEST

static void ck_range(crdt_doc *d, const char *s, size_t n, size_t pos, size_t cnt, tbuf *b)
{
    size_t from = cp_offset(s, n, pos), to = cp_offset(s, n, pos + cnt);
    tbuf_reset(b);
    ck_ok(tbuf_append(b, "#", 1)); /* text_range appends */
    ck_ok(crdt_doc_text_range(d, pos, cnt, b));
    ck_fast(b->len == 1 + to - from);
    ck_fast(b->data[0] == '#');
    ck_fast(memcmp(b->data + 1, s + from, to - from) == 0);
}

/* ck_ranges - text_range agrees with the substring of the whole text: every
 * range of a short text, a fixed sample of a long one. */
static void ck_ranges(crdt_doc *d)
{
    size_t n, cps, units;
    char *s = doc_str(d, &n);
    count_cps(s, n, &cps, &units);
    ck_assert_uint_eq(cps, crdt_doc_len(d));
    tbuf b;
    tbuf_init(&b, 0);
    if (cps <= 100) {
        for (size_t pos = 0; pos <= cps; pos++)
            for (size_t cnt = 0; pos + cnt <= cps; cnt++) ck_range(d, s, n, pos, cnt, &b);
    } else {
        uint64_t seed = 99;
        for (size_t pos = 0; pos <= cps; pos++) {
            ck_range(d, s, n, pos, 0, &b);
            ck_range(d, s, n, pos, cps - pos, &b);
            if (pos < cps) ck_range(d, s, n, pos, 1, &b);
        }
        for (int i = 0; i < 2000; i++) {
            size_t pos = (size_t)(rnd(&seed) % (cps + 1));
            ck_range(d, s, n, pos, (size_t)(rnd(&seed) % (cps - pos + 1)), &b);
        }
    }
    tbuf_reset(&b);
    ck_err(crdt_doc_text_range(d, cps + 1, 0, &b), TDM_ERANGE);
    ck_err(crdt_doc_text_range(d, 0, cps + 1, &b), TDM_ERANGE);
    ck_err(crdt_doc_text_range(d, cps, 1, &b), TDM_ERANGE);
    ck_err(crdt_doc_text_range(d, 1, SIZE_MAX, &b), TDM_ERANGE);
    ck_err(crdt_doc_text_range(d, SIZE_MAX, SIZE_MAX, &b), TDM_ERANGE);
    ck_assert_uint_eq(b.len, 0);
    tbuf_fini(&b);
    free(s);
}

START_TEST(test_text_range)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    ck_ranges(a);                                                           /* empty */
    ins(a, 0, "\xce\xb1\xce\xb2\xce\xb3 abc \xf0\x9d\x84\x9e\xe2\x82\xac"); /* αβγ abc 𝄞€ */
    sync_to(b, a);
    ins(b, 2, "\xf0\x9f\x98\x80x");
    ins(a, 5, "\xe4\xb8\xad\xe6\x96\x87");
    del(a, 8, 2);
    del(b, 0, 1);
    sync_to(a, b);
    sync_to(b, a);
    ins(a, 3, "Z");
    del(a, 6, 1);
    ins(a, crdt_doc_len(a), "\xc3\xbf");
    ck_ranges(a);
    sync_to(b, a);
    ck_ranges(b);
    crdt_doc_stats st;
    crdt_doc_get_stats(a, &st);
    ck_assert_uint_gt(st.items, 5); /* the ranges did cross item boundaries */
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_text_buffer_limit)
{
    crdt_doc *d = doc_new(1);
    ins(d, 0, "hello world");
    ins(d, 5, ",");
    del(d, 8, 1); /* several items */
    tbuf b;
    tbuf_init(&b, 8);
    ck_ok(tbuf_append(&b, "ab", 2));
    ck_err(crdt_doc_text(d, &b), TDM_ETOOBIG);
    ck_assert_uint_eq(b.len, 2);
    ck_err(crdt_doc_text_range(d, 1, 8, &b), TDM_ETOOBIG);
    ck_assert_uint_eq(b.len, 2); /* nothing half-appended */
    ck_assert(memcmp(b.data, "ab", 2) == 0);
    ck_ok(crdt_doc_text_range(d, 0, 6, &b));
    ck_assert_uint_eq(b.len, 8);
    ck_assert(memcmp(b.data, "abhello,", 8) == 0);
    tbuf_fini(&b);
    crdt_doc_free(d);
}
END_TEST

static const uint32_t cp_pool[] = {'a',     'b',     'c',     ' ',     'x',    0xe9,
                                   0x7ff,   0x800,   0x20ac,  0x4e2d,  0xfffd, 0xffff,
                                   0x10000, 0x1f600, 0x1d11e, 0x10ffff};

/* random local edits against a code-point array model */
START_TEST(test_output_limits)
{
    crdt_doc *a, *b;
    make_pair(&a, &b);
    tbuf o;
    tbuf_init(&o, 24);
    ck_ok(tbuf_append(&o, "prefix", 6));
    /* encoders that do not fit leave the buffer as it was */
    ck_err(crdt_doc_diff(a, NULL, &o), TDM_ETOOBIG);
    ck_assert_uint_eq(o.len, 6);
    ck_err(crdt_doc_diff_range(a, NULL, NULL, &o), TDM_ETOOBIG);
    ck_assert_uint_eq(o.len, 6);
    ck_err(crdt_doc_snapshot(a, &o), TDM_ETOOBIG);
    ck_assert_uint_eq(o.len, 6);
    ck_assert(memcmp(o.data, "prefix", 6) == 0);
    tbuf_fini(&o);
    /* and they append after what the buffer holds */
    tbuf_init(&o, 0);
    ck_ok(tbuf_append(&o, "prefix", 6));
    ck_ok(crdt_doc_diff(a, NULL, &o));
    crdt_doc *c = doc_new(3);
    ck_ok(crdt_doc_apply(c, o.data + 6, o.len - 6));
    ck_converged(a, c);
    tbuf_reset(&o);
    ck_ok(tbuf_append(&o, "prefix", 6));
    ck_ok(crdt_doc_snapshot(a, &o));
    crdt_doc *l = doc_new(4);
    ck_ok(crdt_doc_load(l, o.data + 6, o.len - 6));
    ck_converged(a, l);
    crdt_doc_free(l);
    crdt_doc_free(c);
    tbuf_fini(&o);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_random_edits_model)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    crdt_doc *d = doc_new(5);
    uint32_t *m = malloc(8192 * sizeof(uint32_t));
    size_t mlen = 0, inserted = 0, deleted = 0;
    tbuf b;
    tbuf_init(&b, 0);
    for (int step = 0; step < 2000; step++) {
        uint64_t r = rnd(&seed);
        if (mlen == 0 || (r % 3 != 0 && mlen < 6000)) {
            size_t pos = (size_t)(rnd(&seed) % (mlen + 1)), k = 1 + (size_t)(r >> 8) % 4;
            char t[16];
            size_t n = 0;
            uint32_t cps[4];
            for (size_t i = 0; i < k; i++) {
                cps[i] = cp_pool[rnd(&seed) % (sizeof cp_pool / sizeof cp_pool[0])];
                n += enc_cp(cps[i], t + n);
            }
            ck_ok(crdt_doc_insert(d, pos, t, n));
            memmove(m + pos + k, m + pos, (mlen - pos) * sizeof(uint32_t));
            memcpy(m + pos, cps, k * sizeof(uint32_t));
            mlen += k;
            inserted += k;
        } else {
            size_t pos = (size_t)(rnd(&seed) % mlen);
            size_t max = mlen - pos < 6 ? mlen - pos : 6;
            size_t k = 1 + (size_t)(rnd(&seed) % max);
            ck_ok(crdt_doc_delete(d, pos, k));
            memmove(m + pos, m + pos + k, (mlen - pos - k) * sizeof(uint32_t));
            mlen -= k;
            deleted += k;
        }
        if (step % 97 == 0 || step == 1999) {
            size_t want_units = 0;
            tbuf_reset(&b);
            for (size_t i = 0; i < mlen; i++) {
                char t[4];
                size_t n = enc_cp(m[i], t);
                ck_ok(tbuf_append(&b, t, n));
                want_units += m[i] >= 0x10000 ? 2 : 1;
            }
            size_t n;
            char *s = doc_str(d, &n);
            ck_assert_uint_eq(n, b.len);
            ck_assert(memcmp(s, b.data, n) == 0);
            ck_assert_uint_eq(crdt_doc_len(d), mlen);
            ck_assert_uint_eq(crdt_doc_len_utf16(d), want_units);
            tbuf r2;
            tbuf_init(&r2, 0);
            for (int q = 0; q < 20 && mlen; q++) {
                size_t pos = (size_t)(rnd(&seed) % mlen);
                size_t cnt = (size_t)(rnd(&seed) % (mlen - pos + 1));
                size_t from = cp_offset(s, n, pos), to = cp_offset(s, n, pos + cnt);
                tbuf_reset(&r2);
                ck_ok(crdt_doc_text_range(d, pos, cnt, &r2));
                ck_assert_uint_eq(r2.len, to - from);
                ck_assert(to == from || memcmp(r2.data, s + from, to - from) == 0);
            }
            tbuf_fini(&r2);
            free(s);
            ck_assert_uint_eq(sv_of(d, 5), inserted + deleted);
            crdt_ds *ds = crdt_ds_new();
            ck_ok(crdt_doc_delete_set(d, ds));
            ck_assert_uint_eq(crdt_ds_ids(ds), deleted);
            crdt_ds_free(ds);
        }
    }
    /* a replica built from the whole history and one from a snapshot agree */
    crdt_doc *r = doc_new(6);
    sync_to(r, d);
    ck_converged(d, r);
    crdt_doc *l = doc_copy(d, 7);
    ck_converged(d, l);
    crdt_doc_free(l);
    crdt_doc_free(r);
    tbuf_fini(&b);
    free(m);
    crdt_doc_free(d);
}
END_TEST

/* ------------------------------------------------------------------ sync */

START_TEST(test_state_vector_counts)
{
    crdt_doc *a = doc_new(7), *b = doc_new(9);
    ins(a, 0, "abc");
    ck_assert_uint_eq(sv_of(a, 7), 3);
    del(a, 1, 1);
    ck_assert_uint_eq(sv_of(a, 7), 4);
    ins(a, 0, "\xc3\xa9\xf0\x9f\x98\x80"); /* 2 code points, 6 bytes */
    ck_assert_uint_eq(sv_of(a, 7), 6);
    del(a, 0, 3);
    ck_assert_uint_eq(sv_of(a, 7), 9);
    sync_to(b, a);
    crdt_sv *sa = crdt_sv_new(), *sb = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(a, sa));
    ck_ok(crdt_doc_state_vector(b, sb));
    ck_assert(crdt_sv_equal(sa, sb));
    ck_assert_uint_eq(crdt_sv_count(sb), 1); /* b made no operations yet */
    ck_assert_uint_eq(crdt_sv_get(sb, 9), 0);
    del(b, 0, 1);
    ins(b, 0, "xy");
    ck_ok(crdt_doc_state_vector(b, sb));
    ck_assert_uint_eq(crdt_sv_count(sb), 2);
    ck_assert_uint_eq(crdt_sv_get(sb, 7), 9);
    ck_assert_uint_eq(crdt_sv_get(sb, 9), 3);
    sync_to(a, b);
    ck_converged(a, b);
    crdt_sv_free(sa);
    crdt_sv_free(sb);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_delete_set)
{
    crdt_doc *a = doc_new(7), *b = doc_new(9);
    ins(a, 0, "abcdef"); /* 7:0..5 */
    del(a, 1, 2);        /* b c = 7:1, 7:2; the delete itself is 7:6, 7:7 */
    crdt_ds *ds = crdt_ds_new();
    ck_ok(crdt_doc_delete_set(a, ds));
    ck_assert(crdt_ds_has(ds, 7, 1));
    ck_assert(crdt_ds_has(ds, 7, 2));
    ck_assert(!crdt_ds_has(ds, 7, 0));
    ck_assert(!crdt_ds_has(ds, 7, 3));
    ck_assert(!crdt_ds_has(ds, 7, 6)); /* delete operations are not characters */
    ck_assert(!crdt_ds_has(ds, 7, 7));
    ck_assert_uint_eq(crdt_ds_ids(ds), 2);
    ck_assert_uint_eq(crdt_ds_ranges(ds), 1);

    sync_to(b, a);
    ins(b, 0, "zz"); /* 9:0, 9:1 */
    del(b, 0, 1);    /* 9:0 */
    del(b, 3, 1);    /* "zadef": e = 7:4 */
    ck_text(b, "zadf");
    ck_ok(crdt_doc_delete_set(b, ds));
    ck_assert(crdt_ds_has(ds, 7, 4));
    ck_assert(crdt_ds_has(ds, 9, 0));
    ck_assert(!crdt_ds_has(ds, 9, 1));
    ck_assert_uint_eq(crdt_ds_ids(ds), 4);
    sync_to(a, b);
    crdt_ds *da = crdt_ds_new();
    ck_ok(crdt_doc_delete_set(a, da));
    ck_assert(crdt_ds_equal(da, ds));
    ck_converged(a, b);
    crdt_ds_free(ds);
    crdt_ds_free(da);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_diff_null_partial_full)
{
    crdt_doc *a, *c;
    make_pair(&a, &c);
    crdt_doc *b = doc_new(3);
    tbuf all, part, none;
    tbuf_init(&all, 0);
    tbuf_init(&part, 0);
    tbuf_init(&none, 0);
    ck_ok(crdt_doc_diff(a, NULL, &all));
    apply_buf(b, &all);
    ck_converged(a, b);

    ins(a, 3, "more \xe2\x82\xac");
    del(a, 0, 2);
    tbuf_reset(&all);
    ck_ok(crdt_doc_diff(a, NULL, &all));
    diff_for(a, b, &part);
    ck_assert_uint_lt(part.len, all.len);
    apply_buf(b, &part);
    ck_converged(a, b);

    /* against a full state vector: nothing to send, applying changes nothing */
    diff_for(a, b, &none);
    ck_assert_uint_lt(none.len, part.len);
    dstate s, sa;
    state_take(&s, b);
    state_take(&sa, a);
    apply_buf(b, &none);
    state_check(&s, b);
    apply_buf(a, &none);
    state_check(&sa, a);
    crdt_doc *e = doc_new(4);
    apply_buf(e, &none);
    ck_assert_uint_eq(crdt_doc_len(e), 0);
    ck_assert_uint_eq(sv_of(e, 1), 0);
    /* a doc applying its own full diff stays the same */
    apply_buf(a, &all);
    state_check(&sa, a);
    state_fini(&s);
    state_fini(&sa);
    crdt_doc_free(e);
    tbuf_fini(&all);
    tbuf_fini(&part);
    tbuf_fini(&none);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(c);
}
END_TEST

START_TEST(test_diff_partial_mid_run)
{
    crdt_doc *a = doc_new(1);
    ins(a, 0, "hello w\xc3\xb6rld"); /* one run, 1:0..10 */
    del(a, 2, 6);                    /* "llo w\xc3\xb6" : one forward run 1:11..16 */
    ck_text(a, "herld");
    crdt_sv *up = crdt_sv_new();
    tbuf u;
    tbuf_init(&u, 0);
    static const struct {
        uint32_t clock;
        const char *text;
    } cut[] = {
        {0, ""},
        {1, "h"},
        {4, "hell"},
        {8, "hello w\xc3\xb6"},
        {11, "hello w\xc3\xb6rld"},
        {13, "heo w\xc3\xb6rld"},
        {16, "he\xc3\xb6rld"},
        {17, "herld"},
    };
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        crdt_sv_clear(up);
        ck_ok(crdt_sv_set(up, 1, cut[i].clock));
        crdt_doc *b = doc_new(2);
        tbuf_reset(&u);
        ck_ok(crdt_doc_diff_range(a, NULL, up, &u));
        apply_buf(b, &u);
        ck_text(b, cut[i].text);
        ck_assert_uint_eq(sv_of(b, 1), cut[i].clock);
        ck_lengths(b);
        /* and from there to the end, starting mid-run */
        sync_to(b, a);
        ck_converged(a, b);
        crdt_doc_free(b);
    }
    crdt_sv_free(up);
    tbuf_fini(&u);
    crdt_doc_free(a);
}
END_TEST

START_TEST(test_diff_range_versions)
{
    enum { NV = 5 };
    crdt_sv *v[NV];
    char *t[NV];
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    ins(a, 0, "abc\xc3\xa9");
    v[0] = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(a, v[0]));
    t[0] = doc_str(a, NULL);
    sync_to(b, a);
    ins(b, 1, "XY");
    del(b, 3, 2);
    ins(a, 4, "\xf0\x9f\x98\x80");
    sync_to(a, b);
    v[1] = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(a, v[1]));
    t[1] = doc_str(a, NULL);
    del(a, 0, 2);
    v[2] = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(a, v[2]));
    t[2] = doc_str(a, NULL);
    ins(a, 1, "\xe4\xb8\xad\xe6\x96\x87");
    for (int i = 0; i < 4; i++) del(a, crdt_doc_len(a) - 1, 1); /* backspaces */
    v[3] = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(a, v[3]));
    t[3] = doc_str(a, NULL);
    sync_to(b, a);
    ins(b, 0, "!!");
    sync_to(a, b);
    v[4] = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(a, v[4]));
    t[4] = doc_str(a, NULL);

    tbuf u;
    tbuf_init(&u, 0);
    crdt_sv *got = crdt_sv_new();
    crdt_doc *step = doc_new(3);
    for (int i = 0; i < NV; i++) {
        /* from nothing to exactly v[i] */
        crdt_doc *c = doc_new(3);
        tbuf_reset(&u);
        ck_ok(crdt_doc_diff_range(a, NULL, v[i], &u));
        apply_buf(c, &u);
        ck_ok(crdt_doc_state_vector(c, got));
        ck_assert(crdt_sv_equal(got, v[i]));
        ck_text(c, t[i]);
        ck_assert_uint_eq(crdt_doc_pending(c), 0);
        crdt_doc_free(c);
        /* from v[i-1] to exactly v[i] */
        crdt_sv *have = crdt_sv_new();
        ck_ok(crdt_doc_state_vector(step, have));
        tbuf_reset(&u);
        ck_ok(crdt_doc_diff_range(a, have, v[i], &u));
        apply_buf(step, &u);
        ck_ok(crdt_doc_state_vector(step, got));
        ck_assert(crdt_sv_equal(got, v[i]));
        ck_text(step, t[i]);
        crdt_sv_free(have);
    }
    /* upto NULL is crdt_doc_diff */
    tbuf w;
    tbuf_init(&w, 0);
    tbuf_reset(&u);
    ck_ok(crdt_doc_diff_range(a, v[1], NULL, &u));
    ck_ok(crdt_doc_diff(a, v[1], &w));
    ck_assert_uint_eq(u.len, w.len);
    ck_assert(memcmp(u.data, w.data, u.len) == 0);
    tbuf_fini(&w);
    for (int i = 0; i < NV; i++) {
        crdt_sv_free(v[i]);
        free(t[i]);
    }
    crdt_sv_free(got);
    tbuf_fini(&u);
    crdt_doc_free(step);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_diff_range_backspace)
{
    crdt_doc *a = doc_new(1);
    ins(a, 0, "abcdef\xc3\xa9");                                /* 1:0..6 */
    for (int i = 0; i < 5; i++) del(a, crdt_doc_len(a) - 1, 1); /* backwards: 1:7..11 */
    ck_text(a, "ab");
    for (int i = 0; i < 5; i++) ins(a, 2, "x"); /* typing backwards */
    del(a, 0, 1);
    ck_text(a, "bxxxxx");
    crdt_sv *up = crdt_sv_new();
    tbuf u;
    tbuf_init(&u, 0);
    static const char *const at[] = {"abcdef\xc3\xa9", "abcdef", "abcde", "abcd", "abc", "ab"};
    for (uint32_t k = 7; k <= 12; k++) {
        crdt_sv_clear(up);
        ck_ok(crdt_sv_set(up, 1, k));
        crdt_doc *b = doc_new(2);
        tbuf_reset(&u);
        ck_ok(crdt_doc_diff_range(a, NULL, up, &u));
        apply_buf(b, &u);
        ck_text(b, at[k - 7]);
        ck_assert_uint_eq(sv_of(b, 1), k);
        sync_to(b, a); /* the rest of the backwards run, then the rest */
        ck_converged(a, b);
        crdt_doc_free(b);
    }
    crdt_sv_free(up);
    tbuf_fini(&u);
    crdt_doc_free(a);
}
END_TEST

START_TEST(test_apply_idempotent)
{
    crdt_doc *a, *c;
    make_pair(&a, &c);
    tbuf all;
    tbuf_init(&all, 0);
    ck_ok(crdt_doc_diff(a, NULL, &all));
    crdt_doc *b = doc_new(3);
    apply_buf(b, &all);
    dstate s;
    state_take(&s, b);
    apply_buf(b, &all);
    state_check(&s, b);
    apply_buf(b, &all);
    state_check(&s, b);
    state_fini(&s);
    ck_converged(a, b);

    /* overlapping updates: a prefix first, then everything (partly known ops) */
    crdt_sv *up = crdt_sv_new();
    ck_ok(crdt_sv_set(up, 1, 9));
    ck_ok(crdt_sv_set(up, 2, 2));
    tbuf part;
    tbuf_init(&part, 0);
    ck_ok(crdt_doc_diff_range(a, NULL, up, &part));
    crdt_doc *d = doc_new(4);
    apply_buf(d, &part);
    apply_buf(d, &part);
    apply_buf(d, &all);
    ck_converged(a, d);
    apply_buf(d, &part);
    ck_converged(a, d);
    crdt_sv_free(up);
    tbuf_fini(&part);
    tbuf_fini(&all);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(c);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_apply_commutative)
{
    crdt_doc *base = doc_new(100);
    ins(base, 0, "hello w\xc3\xb6rld \xf0\x9f\x98\x80");
    crdt_doc *p[3];
    tbuf u[3];
    crdt_sv *sv0 = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(base, sv0));
    for (int i = 0; i < 3; i++) {
        p[i] = doc_new(10 + (uint64_t)i);
        sync_to(p[i], base);
        tbuf_init(&u[i], 0);
    }
    ins(p[0], 5, " big");
    del(p[0], 0, 1);
    ins(p[0], 0, "H");
    del(p[1], 4, 3); /* overlaps p[0]'s insert point */
    ins(p[1], 4, "\xe4\xb8\xad");
    del(p[2], 0, crdt_doc_len(p[2])); /* deletes everything the others edit around */
    ins(p[2], 0, "new");
    for (int i = 0; i < 3; i++) ck_ok(crdt_doc_diff(p[i], sv0, &u[i]));
    static const int perm[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                   {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    crdt_doc *r[6];
    for (int k = 0; k < 6; k++) {
        r[k] = doc_new(200 + (uint64_t)k);
        sync_to(r[k], base);
        for (int j = 0; j < 3; j++) apply_buf(r[k], &u[perm[k][j]]);
        if (k) ck_converged(r[0], r[k]);
    }
    ck_lengths(r[0]);
    ck_assert_uint_eq(sv_of(r[0], 10), 6);
    ck_assert_uint_eq(sv_of(r[0], 11), 4);
    ck_assert_uint_eq(sv_of(r[0], 12), 16);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++)
            if (j != i) apply_buf(p[i], &u[j]);
        ck_converged(r[0], p[i]);
    }
    for (int k = 0; k < 6; k++) crdt_doc_free(r[k]);
    for (int i = 0; i < 3; i++) {
        crdt_doc_free(p[i]);
        tbuf_fini(&u[i]);
    }
    crdt_sv_free(sv0);
    crdt_doc_free(base);
}
END_TEST

START_TEST(test_concurrent_no_interleave)
{
    /* concurrent runs typed at one place, forwards and backwards, stay whole */
    for (int backwards = 0; backwards < 2; backwards++) {
        crdt_doc *a = doc_new(1), *b = doc_new(2);
        ins(a, 0, "12");
        sync_to(b, a);
        const char *sa = "abc", *sb = "xyz";
        for (int i = 0; i < 3; i++) {
            char ca[2] = {sa[backwards ? 2 - i : i], 0}, cb[2] = {sb[backwards ? 2 - i : i], 0};
            ins(a, backwards ? 1 : 1 + (size_t)i, ca);
            ins(b, backwards ? 1 : 1 + (size_t)i, cb);
        }
        ck_text(a, "1abc2");
        sync_to(a, b);
        sync_to(b, a);
        ck_converged(a, b);
        char *s = doc_str(a, NULL);
        ck_assert_msg(!strcmp(s, "1abcxyz2") || !strcmp(s, "1xyzabc2"), "interleaved: %s", s);
        free(s);
        crdt_doc_free(a);
        crdt_doc_free(b);
    }
}
END_TEST

START_TEST(test_pending_out_of_order)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    tbuf u[3];
    crdt_sv *sv = crdt_sv_new();
    for (int i = 0; i < 3; i++) tbuf_init(&u[i], 0);
    ins(a, 0, "hello");
    ck_ok(crdt_doc_diff(a, NULL, &u[0]));
    ck_ok(crdt_doc_state_vector(a, sv));
    ins(a, 5, " w\xc3\xb6rld");
    ck_ok(crdt_doc_diff(a, sv, &u[1]));
    ck_ok(crdt_doc_state_vector(a, sv));
    del(a, 0, 6);
    ck_ok(crdt_doc_diff(a, sv, &u[2]));

    apply_buf(b, &u[2]); /* deletes of characters b does not have */
    ck_assert_uint_eq(crdt_doc_pending(b), 1);
    ck_text(b, "");
    apply_buf(b, &u[1]); /* inserts after characters b does not have */
    ck_assert_uint_eq(crdt_doc_pending(b), 2);
    ck_text(b, "");
    ck_assert_uint_eq(sv_of(b, 1), 0); /* pending operations are not in the sv */
    /* held operations are not in diffs */
    tbuf d;
    tbuf_init(&d, 0);
    ck_ok(crdt_doc_diff(b, NULL, &d));
    crdt_doc *c = doc_new(3);
    apply_buf(c, &d);
    ck_assert_uint_eq(sv_of(c, 1), 0);
    ck_assert_uint_eq(crdt_doc_pending(c), 0);
    int changes = 0;
    crdt_doc_observe(b, count_changes, &changes);
    apply_buf(b, &u[0]); /* everything falls into place, as one change */
    ck_assert_int_eq(changes, 1);
    ck_assert_uint_eq(crdt_doc_pending(b), 0);
    ck_converged(a, b);
    ck_text(b, "w\xc3\xb6rld");
    tbuf_fini(&d);
    crdt_doc_free(c);
    for (int i = 0; i < 3; i++) tbuf_fini(&u[i]);
    crdt_sv_free(sv);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_pending_bounds)
{
    crdt_doc *a = doc_new(1);
    tbuf u[3];
    crdt_sv *sv = crdt_sv_new();
    for (int i = 0; i < 3; i++) tbuf_init(&u[i], 0);
    ins(a, 0, "ab");
    ck_ok(crdt_doc_diff(a, NULL, &u[0]));
    ck_ok(crdt_doc_state_vector(a, sv));
    ins(a, 2, "cdefgh");
    ck_ok(crdt_doc_diff(a, sv, &u[1]));
    ck_ok(crdt_doc_state_vector(a, sv));
    del(a, 0, 3);
    ck_ok(crdt_doc_diff(a, sv, &u[2]));

    crdt_doc_opts o = {0};
    o.client = 2;
    o.max_pending_ops = 1;
    crdt_doc *b = NULL;
    ck_ok(crdt_doc_new_opts(&o, &b));
    apply_buf(b, &u[1]);
    ck_assert_uint_eq(crdt_doc_pending(b), 1);
    apply_bad(b, u[2].data, u[2].len, TDM_EPENDING_FULL); /* a second op would wait */
    apply_buf(b, &u[0]);
    ck_assert_uint_eq(crdt_doc_pending(b), 0);
    ck_text(b, "abcdefgh");
    apply_buf(b, &u[2]);
    ck_converged(a, b);
    crdt_doc_free(b);

    o.max_pending_ops = 0;
    o.max_pending_bytes = 4; /* u[1] holds 6 bytes of text */
    ck_ok(crdt_doc_new_opts(&o, &b));
    apply_bad(b, u[1].data, u[1].len, TDM_EPENDING_FULL);
    apply_buf(b, &u[2]); /* a delete holds no text */
    ck_assert_uint_eq(crdt_doc_pending(b), 1);
    apply_buf(b, &u[0]);
    apply_buf(b, &u[1]);
    ck_converged(a, b);
    crdt_doc_free(b);

    /* a refused update does not leave the clients it named behind */
    o.max_pending_ops = 1;
    o.max_pending_bytes = 0;
    ck_ok(crdt_doc_new_opts(&o, &b));
    tbuf w;
    tbuf_init(&w, 0);
    upd_head(&w, (uint64_t[]){50, 51}, 2, 1);
    upd_block(&w, 0, 0, 2);
    op_insert(&w, 1, 5, REF_NONE, 0, "a", 1);
    op_insert(&w, 1, 6, REF_NONE, 0, "b", 1);
    apply_bad(b, w.data, w.len, TDM_EPENDING_FULL);
    crdt_doc_stats st;
    crdt_doc_get_stats(b, &st);
    ck_assert_uint_eq(st.clients, 1);
    tbuf_fini(&w);
    crdt_doc_free(b);

    for (int i = 0; i < 3; i++) tbuf_fini(&u[i]);
    crdt_sv_free(sv);
    crdt_doc_free(a);
}
END_TEST

START_TEST(test_pending_missing_origin)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    ins(a, 0, "abc");
    sync_to(b, a);
    tbuf u;
    tbuf_init(&u, 0);
    /* client 50 inserts after 1:9, which does not exist yet */
    uint64_t ids[] = {50, 1};
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 0, 1);
    op_insert(&u, 1, 9, REF_NONE, 0, "Q", 1);
    dstate s;
    state_take(&s, b);
    apply_buf(b, &u);
    ck_assert_uint_eq(crdt_doc_pending(b), 1);
    s.pending = 1;
    s.clients += 1;     /* 50 is known now, though none of its operations are */
    state_check(&s, b); /* held, not applied */
    /* client 51 inserts before an id of a client nobody has heard of */
    tbuf v;
    tbuf_init(&v, 0);
    uint64_t ids2[] = {51, 0xabcdefull};
    upd_head(&v, ids2, 2, 1);
    upd_block(&v, 0, 0, 1);
    op_insert(&v, REF_NONE, 0, 1, 0, "R", 1);
    apply_buf(b, &v);
    ck_assert_uint_eq(crdt_doc_pending(b), 2);
    ck_assert_uint_eq(sv_of(b, 51), 0);
    ck_assert_uint_eq(sv_of(b, 0xabcdef), 0);
    /* known operations arriving while others wait change nothing */
    tbuf k;
    tbuf_init(&k, 0);
    ck_ok(crdt_doc_diff(a, NULL, &k));
    dstate s2;
    state_take(&s2, b);
    apply_buf(b, &k);
    state_check(&s2, b);
    state_fini(&s2);
    tbuf_fini(&k);
    ins(a, 3, "defghij"); /* 1:3..9 */
    sync_to(b, a);
    ck_assert_uint_eq(crdt_doc_pending(b), 1);
    ck_text(b, "abcdefghijQ");
    ck_assert_uint_eq(sv_of(b, 50), 1);
    /* the same operations in another order on another replica */
    crdt_doc *c = doc_new(3);
    apply_buf(c, &u);
    sync_to(c, a);
    char *sb = doc_str(b, NULL), *sc = doc_str(c, NULL);
    ck_assert_str_eq(sb, sc);
    free(sb);
    free(sc);
    state_fini(&s);
    tbuf_fini(&u);
    tbuf_fini(&v);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(c);
}
END_TEST

START_TEST(test_delete_non_characters)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    ins(a, 0, "abc"); /* 1:0..2 */
    del(a, 0, 1);     /* 1:3 deletes 'a' */
    ins(a, 2, "d");   /* 1:4 */
    sync_to(b, a);
    ck_text(b, "bcd");
    tbuf u;
    tbuf_init(&u, 0);
    uint64_t ids[] = {50, 1};
    /* 50:0 deletes 1:3, a delete operation; 50:1..2 delete 1:2 'c' and 1:3 */
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 0, 2);
    op_delete(&u, 1, 3, 1);
    op_delete(&u, 1, 2, 2);
    apply_buf(b, &u);
    ck_text(b, "bd");
    ck_assert_uint_eq(sv_of(b, 50), 3);
    ck_assert_uint_eq(crdt_doc_pending(b), 0);
    crdt_ds *ds = crdt_ds_new();
    ck_ok(crdt_doc_delete_set(b, ds));
    ck_assert(crdt_ds_has(ds, 1, 2));
    ck_assert(!crdt_ds_has(ds, 1, 3));
    ck_assert_uint_eq(crdt_ds_ids(ds), 2);
    /* a delete of 50's own delete operations, backwards: 50:3 targets 50:2, 50:1 */
    tbuf_reset(&u);
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 3, 1);
    op_delete(&u, REF_SAME, 2, -2);
    apply_buf(b, &u);
    ck_text(b, "bd");
    ck_assert_uint_eq(sv_of(b, 50), 5);
    /* a replica that gets it all through b agrees */
    sync_to(a, b);
    ck_converged(a, b);
    crdt_doc *c = doc_copy(b, 3);
    ck_converged(b, c);
    crdt_ds_free(ds);
    tbuf_fini(&u);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(c);
}
END_TEST

START_TEST(test_origin_not_character)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2), *c = doc_new(3);
    ins(a, 0, "abc");
    del(a, 1, 1); /* 1:3 is a delete */
    sync_to(b, a);
    tbuf u;
    tbuf_init(&u, 0);
    uint64_t ids[] = {50, 1};
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 0, 1);
    op_insert(&u, 1, 3, 1, 3, "Z", 1); /* both origins name the delete */
    apply_buf(b, &u);
    ck_assert_uint_eq(crdt_doc_pending(b), 0);
    ck_assert_uint_eq(sv_of(b, 50), 1);
    ck_assert_uint_eq(crdt_doc_len(b), 3);
    ins(a, 2, "x");
    apply_buf(c, &u); /* c: pending until 1:3 exists */
    ck_assert_uint_eq(crdt_doc_pending(c), 1);
    sync_to(c, a);
    sync_to(b, a);
    sync_to(a, b);
    ck_converged(a, b);
    ck_converged(a, c);
    tbuf_fini(&u);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(c);
}
END_TEST

/* random edits on three replicas with random partial syncs, fixed seed */
START_TEST(test_random_replicas)
{
    uint64_t seed = 12345;
    crdt_doc *r[3];
    for (int i = 0; i < 3; i++) r[i] = doc_new(1000 + (uint64_t)i * 77);
    for (int step = 0; step < 1500; step++) {
        crdt_doc *d = r[rnd(&seed) % 3];
        size_t len = crdt_doc_len(d);
        uint64_t x = rnd(&seed);
        if (x % 7 == 0) {
            int i = (int)(rnd(&seed) % 3), j = (int)(rnd(&seed) % 3);
            if (i != j) sync_to(r[i], r[j]);
        } else if (len == 0 || x % 3) {
            char t[12];
            size_t n = 0, k = 1 + (size_t)(x >> 10) % 3;
            for (size_t i = 0; i < k; i++)
                n += enc_cp(cp_pool[rnd(&seed) % (sizeof cp_pool / sizeof cp_pool[0])], t + n);
            ck_ok(crdt_doc_insert(d, (size_t)(rnd(&seed) % (len + 1)), t, n));
        } else {
            size_t pos = (size_t)(rnd(&seed) % len);
            size_t k = 1 + (size_t)(rnd(&seed) % (len - pos < 4 ? len - pos : 4));
            ck_ok(crdt_doc_delete(d, pos, k));
        }
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                if (i != j) sync_to(r[i], r[j]);
    ck_converged(r[0], r[1]);
    ck_converged(r[0], r[2]);
    ck_lengths(r[0]);
    ck_ranges(r[0]);
    for (int i = 0; i < 3; i++) crdt_doc_free(r[i]);
}
END_TEST

/* ------------------------------------------------------------------ gc */

/* a document whose deleted text is most of what it ever held */
static void fill_and_delete(crdt_doc *d, size_t kib)
{
    char line[64];
    for (size_t i = 0; i < kib * 16; i++) {
        /* 64 bytes, 61 code points: 58 ASCII, é, €, newline */
        memset(line, 'a' + (int)(i % 26), 58);
        memcpy(line + 58, "\xc3\xa9\xe2\x82\xac\n", 6);
        ck_ok(crdt_doc_insert(d, crdt_doc_len(d) / 2, line, 64));
    }
    size_t len = crdt_doc_len(d);
    del(d, 10, len - 30); /* keep 20 code points */
    del(d, 2, 3);
}

START_TEST(test_gc_call)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    fill_and_delete(a, 100);
    sync_to(b, a);
    crdt_doc_stats st0, st1;
    crdt_doc_get_stats(a, &st0);
    ck_assert_uint_ge(st0.content_bytes, 100 * 1024);
    dstate s;
    state_take(&s, a);
    tbuf u0, u1;
    tbuf_init(&u0, 0);
    tbuf_init(&u1, 0);
    ck_ok(crdt_doc_diff(a, NULL, &u0));
    ck_ok(crdt_doc_gc(a));
    state_check(&s, a); /* text, sv, delete set unchanged */
    crdt_doc_get_stats(a, &st1);
    ck_assert_uint_lt(st1.content_bytes, st0.content_bytes);
    ck_assert_uint_eq(st1.content_bytes, crdt_doc_len_bytes(a));
    ck_assert_uint_lt(st1.mem_bytes, st0.mem_bytes);
    ck_ok(crdt_doc_diff(a, NULL, &u1));
    ck_assert_uint_lt(u1.len, u0.len / 2); /* tombstones carry no text */
    ck_ok(crdt_doc_gc(a));                 /* again: nothing more to drop */
    state_check(&s, a);
    /* editing continues on both sides and converges */
    ins(a, 3, "after gc \xf0\x9f\x98\x80");
    del(b, 0, 2);
    ins(b, 5, "b");
    sync_to(a, b);
    sync_to(b, a);
    ck_converged(a, b);
    ck_lengths(a);
    /* gc of a doc without deletes or of an empty doc changes nothing */
    crdt_doc *c = doc_new(3), *e = doc_new(4);
    ins(c, 0, "keep \xe2\x82\xac");
    crdt_doc_get_stats(c, &st0);
    ck_ok(crdt_doc_gc(c));
    ck_ok(crdt_doc_gc(e));
    crdt_doc_get_stats(c, &st1);
    ck_assert_uint_eq(st1.content_bytes, st0.content_bytes);
    ck_text(c, "keep \xe2\x82\xac");
    ck_text(e, "");
    ins(e, 0, "x");
    ck_text(e, "x");
    crdt_doc_free(c);
    crdt_doc_free(e);
    state_fini(&s);
    tbuf_fini(&u0);
    tbuf_fini(&u1);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_gc_option)
{
    crdt_doc *g = doc_new_opts(1, true, 0), *n = doc_new(1);
    fill_and_delete(g, 200);
    fill_and_delete(n, 200);
    ck_converged(g, n); /* same client, same edits: same everything */
    crdt_doc_stats sg, sn;
    crdt_doc_get_stats(g, &sg);
    crdt_doc_get_stats(n, &sn);
    ck_assert_uint_ge(sn.content_bytes, 200 * 1024);
    ck_assert_uint_lt(sg.content_bytes, sn.content_bytes / 2);
    tbuf ug, un;
    tbuf_init(&ug, 0);
    tbuf_init(&un, 0);
    ck_ok(crdt_doc_diff(g, NULL, &ug));
    ck_ok(crdt_doc_diff(n, NULL, &un));
    ck_assert_uint_lt(ug.len, un.len / 2);
    crdt_doc *r = doc_new(2), *q = doc_new(3);
    apply_buf(r, &ug);
    apply_buf(q, &un);
    ck_converged(r, q);
    ck_converged(r, g);
    crdt_doc_stats sr;
    crdt_doc_get_stats(r, &sr);
    ck_assert_uint_eq(sr.content_bytes, crdt_doc_len_bytes(r));
    /* the gc document goes on collecting what remote deletes remove */
    del(q, 0, crdt_doc_len(q));
    sync_to(g, q);
    ck_converged(g, q);
    ck_text(g, "");
    crdt_doc_free(r);
    crdt_doc_free(q);
    tbuf_fini(&ug);
    tbuf_fini(&un);
    crdt_doc_free(g);
    crdt_doc_free(n);
}
END_TEST

START_TEST(test_gc_diff_and_snapshot)
{
    crdt_doc *a, *b;
    make_pair(&a, &b);
    crdt_doc *late = doc_new(9);
    sync_to(late, a); /* has the text that a will collect */
    ins(a, 2, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac");
    del(a, 1, 5);
    ins(b, 0, "B");
    ck_ok(crdt_doc_gc(a));
    /* a fresh replica gets tombstones for deleted text and converges */
    crdt_doc *f = doc_new(10);
    sync_to(f, a);
    ck_converged(a, f);
    crdt_doc_stats st;
    crdt_doc_get_stats(f, &st);
    ck_assert_uint_eq(st.content_bytes, crdt_doc_len_bytes(f));
    ck_lengths(f);
    /* a replica that still holds the text, and a concurrent editor, converge */
    sync_to(late, a);
    ck_converged(a, late);
    sync_to(a, b);
    sync_to(b, a);
    sync_to(late, a);
    sync_to(f, a);
    ck_converged(a, b);
    ck_converged(a, late);
    ck_converged(a, f);
    /* the snapshot of a collected document loads and goes on working */
    crdt_doc *l = doc_copy(a, 11);
    ck_converged(a, l);
    del(l, 0, 2);
    ins(l, 1, "\xf0\x9f\x8e\x89");
    ins(a, 0, "A");
    sync_to(a, l);
    sync_to(l, a);
    ck_converged(a, l);
    ck_lengths(l);
    crdt_doc_free(l);
    crdt_doc_free(f);
    crdt_doc_free(late);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_gc_then_remote_edits)
{
    /* remote edits that name characters a collected: split tombstones,
     * delete them again, insert next to them */
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    ins(a, 0, "0123456789abcdef");
    sync_to(b, a);
    del(a, 2, 10); /* 23456789ab */
    ck_ok(crdt_doc_gc(a));
    del(b, 4, 4);                   /* 4567: already deleted at a */
    ins(b, 6, "X");                 /* between 5 and 6: inside a's tombstone */
    ins(b, 11, "\xf0\x9f\x98\x80"); /* after b, before c */
    del(b, 0, 1);
    sync_to(a, b);
    sync_to(b, a);
    ck_converged(a, b);
    ck_text(a, "1Xcd\xf0\x9f\x98\x80"
               "ef");
    ins(a, 1, "y");
    del(a, 3, 1);
    sync_to(b, a);
    ck_converged(a, b);
    crdt_doc *l = doc_copy(a, 3);
    ck_converged(a, l);
    crdt_doc_free(l);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

/* ------------------------------------------------------------------ snapshots */

static void roundtrip(crdt_doc *a, crdt_doc *b, uint64_t want_codec)
{
    tbuf s;
    tbuf_init(&s, 0);
    snap(a, &s);
    ck_assert_uint_eq(snap_codec(&s), want_codec);
    crdt_doc *l = from_snapshot(&s, 77);
    ck_converged(a, l);
    ck_lengths(l);
    crdt_doc_stats sa, sl;
    crdt_doc_get_stats(a, &sa);
    crdt_doc_get_stats(l, &sl);
    ck_assert_uint_eq(sl.content_bytes, sa.content_bytes);
    /* everyone goes on editing, then syncs */
    ins(l, crdt_doc_len(l) / 2, "from l \xc3\xa9");
    del(l, 0, 1);
    ins(a, 0, "from a");
    if (crdt_doc_len(b)) del(b, crdt_doc_len(b) - 1, 1);
    ins(b, crdt_doc_len(b) ? 1 : 0, "\xf0\x9f\x98\x80");
    crdt_doc *all[3] = {a, b, l};
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                if (i != j) sync_to(all[i], all[j]);
    ck_converged(a, l);
    ck_converged(a, b);
    /* the loaded document's own snapshot loads too */
    snap(l, &s);
    crdt_doc *l2 = from_snapshot(&s, 78);
    ck_converged(l, l2);
    crdt_doc_free(l2);
    crdt_doc_free(l);
    tbuf_fini(&s);
}

START_TEST(test_snapshot_roundtrip)
{
    crdt_doc *a, *b;
    make_pair(&a, &b);
    roundtrip(a, b, 0); /* small: columns stored as they are */
    crdt_doc_free(a);
    crdt_doc_free(b);

    /* large: deflated columns */
    a = doc_new(1);
    b = doc_new(2);
    fill_and_delete(a, 4);
    sync_to(b, a);
    for (int i = 0; i < 200; i++) {
        ins(i % 2 ? a : b, (size_t)i % 17, i % 3 ? "x\xc3\xa9" : "\xf0\x9f\x98\x80");
        if (i % 5 == 0) del(i % 2 ? b : a, (size_t)i % 13, 2);
        if (i % 20 == 0) {
            sync_to(a, b);
            sync_to(b, a);
        }
    }
    sync_to(a, b);
    roundtrip(a, b, 1);
    crdt_doc_free(a);
    crdt_doc_free(b);

    /* empty */
    a = doc_new(1);
    b = doc_new(2);
    roundtrip(a, b, 0);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_snapshot_own_client)
{
    /* a restart: the replica reloads its own snapshot and keeps counting */
    crdt_doc *a, *b;
    make_pair(&a, &b);
    uint32_t k = sv_of(a, 1);
    tbuf s;
    tbuf_init(&s, 0);
    snap(a, &s);
    crdt_doc_free(a);
    a = from_snapshot(&s, 1);
    ck_converged(a, b);
    ins(a, 0, "again");
    ck_assert_uint_eq(sv_of(a, 1), k + 5);
    ins(b, 0, "b");
    sync_to(b, a);
    sync_to(a, b);
    ck_converged(a, b);
    tbuf_fini(&s);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_load_not_empty)
{
    crdt_doc *a, *b;
    make_pair(&a, &b);
    tbuf s;
    tbuf_init(&s, 0);
    snap(a, &s);
    /* text */
    dstate st;
    state_take(&st, b);
    ck_err(crdt_doc_load(b, s.data, s.len), TDM_EINVAL);
    state_check(&st, b);
    state_fini(&st);
    /* no text, but clocks used */
    crdt_doc *c = doc_new(3);
    ins(c, 0, "x");
    del(c, 0, 1);
    ck_err(crdt_doc_load(c, s.data, s.len), TDM_EINVAL);
    ck_assert_uint_eq(sv_of(c, 3), 2);
    ck_assert_uint_eq(sv_of(c, 1), 0);
    crdt_doc_free(c);
    /* only remote operations */
    c = doc_new(3);
    ins(b, 0, "q");
    sync_to(c, b);
    state_take(&st, c);
    ck_err(crdt_doc_load(c, s.data, s.len), TDM_EINVAL);
    state_check(&st, c);
    state_fini(&st);
    crdt_doc_free(c);
    /* only pending operations */
    c = doc_new(3);
    tbuf u;
    tbuf_init(&u, 0);
    upd_head(&u, (uint64_t[]){50, 1}, 2, 1);
    upd_block(&u, 0, 0, 1);
    op_insert(&u, 1, 0, REF_NONE, 0, "p", 1);
    apply_buf(c, &u);
    ck_assert_uint_eq(crdt_doc_pending(c), 1);
    ck_err(crdt_doc_load(c, s.data, s.len), TDM_EINVAL);
    ck_assert_uint_eq(crdt_doc_pending(c), 1);
    ck_assert_uint_eq(crdt_doc_len(c), 0);
    crdt_doc_free(c);
    /* already loaded */
    c = from_snapshot(&s, 3);
    state_take(&st, c);
    ck_err(crdt_doc_load(c, s.data, s.len), TDM_EINVAL);
    state_check(&st, c);
    state_fini(&st);
    crdt_doc_free(c);
    tbuf_fini(&u);
    tbuf_fini(&s);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_snapshot_excludes_pending)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    ins(a, 0, "base");
    sync_to(b, a);
    tbuf u;
    tbuf_init(&u, 0);
    upd_head(&u, (uint64_t[]){50, 1}, 2, 1);
    upd_block(&u, 0, 0, 1);
    op_insert(&u, 1, 99, REF_NONE, 0, "p", 1);
    apply_buf(b, &u);
    ck_assert_uint_eq(crdt_doc_pending(b), 1);
    crdt_doc *l = doc_copy(b, 3);
    ck_assert_uint_eq(crdt_doc_pending(l), 0);
    ck_text(l, "base");
    crdt_sv *x = crdt_sv_new(), *y = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(b, x));
    ck_ok(crdt_doc_state_vector(l, y));
    ck_assert(crdt_sv_equal(x, y));
    crdt_sv_free(x);
    crdt_sv_free(y);
    tbuf_fini(&u);
    crdt_doc_free(l);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

/* ------------------------------------------------------------------ hostile */

/* a small valid update (b's edits that a lacks) and the document it applies to */
static void small_update(tbuf *base, tbuf *u)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    ins(a, 0, "h\xc3\xa9llo \xf0\x9f\x98\x80");
    sync_to(b, a);
    snap(a, base);
    ins(b, 3, "\xe4\xb8\xadx");
    del(b, 0, 2);
    ins(b, 0, "Q");
    tbuf_reset(u);
    diff_for(b, a, u);
    crdt_doc_free(a);
    crdt_doc_free(b);
}

/* an update from a gc'd document, with tombstones, backwards deletes and
 * references to several clients, for a fresh document */
static void tomb_update(tbuf *u)
{
    crdt_doc *a = doc_new_opts(1, true, 0), *b = doc_new(2);
    ins(a, 0, "abcdef");
    sync_to(b, a);
    ins(b, 2, "\xc3\xa9\xc3\xa9");
    sync_to(a, b);
    del(a, 1, 3);
    del(a, 3, 1);
    del(a, 2, 1);
    ck_ok(crdt_doc_gc(a));
    tbuf_reset(u);
    ck_ok(crdt_doc_diff(a, NULL, u));
    crdt_doc_free(a);
    crdt_doc_free(b);
}

START_TEST(test_update_truncations)
{
    tbuf base, u;
    tbuf_init(&base, 0);
    tbuf_init(&u, 0);
    small_update(&base, &u);
    crdt_doc *d = from_snapshot(&base, 3), *e = doc_new(4);
    for (size_t n = 0; n < u.len; n++) {
        apply_bad(d, u.data, n, ANY_ERR);
        apply_bad(e, u.data, n, ANY_ERR);
    }
    apply_buf(d, &u); /* and the whole thing still applies */
    tomb_update(&u);
    for (size_t n = 0; n < u.len; n++) apply_bad(e, u.data, n, ANY_ERR);
    apply_buf(e, &u);
    ck_lengths(e);
    tbuf_fini(&base);
    tbuf_fini(&u);
    crdt_doc_free(d);
    crdt_doc_free(e);
}
END_TEST

START_TEST(test_snapshot_truncations)
{
    crdt_doc *a, *b;
    make_pair(&a, &b);
    tbuf s;
    tbuf_init(&s, 0);
    for (int big = 0; big < 2; big++) {
        if (big) {
            fill_and_delete(a, 2);
        }
        snap(a, &s);
        ck_assert_uint_eq(snap_codec(&s), (uint64_t)big);
        crdt_doc *d = doc_new(5);
        for (size_t n = 0; n < s.len; n++) {
            ck_err(crdt_doc_load(d, s.data, n), ANY_ERR);
            ck_assert_uint_eq(crdt_doc_len(d), 0);
            ck_assert_uint_eq(sv_of(d, 1), 0);
            ck_assert_uint_eq(sv_of(d, 2), 0);
        }
        crdt_doc_stats st;
        crdt_doc_get_stats(d, &st);
        ck_assert_uint_eq(st.items, 0);
        ck_assert_uint_eq(st.clients, 1);
        ck_ok(crdt_doc_load(d, s.data, s.len)); /* failed loads left it loadable */
        ck_converged(a, d);
        crdt_doc_free(d);
    }
    tbuf_fini(&s);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

/* fuzz_update - every single-byte change of u (all values, or bit flips)
 * applied to a document loaded from base (NULL: empty). */
static void fuzz_update(const tbuf *base, const tbuf *u, int all_values)
{
    crdt_doc *d = from_snapshot(base, 3);
    dstate s;
    state_take(&s, d);
    uint8_t *m = malloc(u->len);
    memcpy(m, u->data, u->len);
    size_t ok = 0, bad = 0;
    for (size_t i = 0; i < u->len; i++) {
        for (unsigned v = 0; v < 256; v++) {
            unsigned x = v ^ u->data[i];
            if (v == u->data[i] || (!all_values && (x & (x - 1)))) continue;
            m[i] = (uint8_t)v;
            tdm_err e = crdt_doc_apply(d, m, u->len);
            if (e) {
                state_check(&s, d);
                bad++;
            } else {
                ok++;
                ck_consistent(d, true);
                crdt_doc_free(d);
                d = from_snapshot(base, 3);
            }
        }
        m[i] = u->data[i];
    }
    ck_assert_uint_gt(bad, 0);
    ck_assert_uint_gt(ok, 0);
    free(m);
    state_fini(&s);
    crdt_doc_free(d);
}

START_TEST(test_update_corruptions)
{
    tbuf base, u;
    tbuf_init(&base, 0);
    tbuf_init(&u, 0);
    small_update(&base, &u);
    ck_assert_uint_lt(u.len, 80);
    fuzz_update(&base, &u, 1);
    tomb_update(&u);
    ck_assert_uint_lt(u.len, 120);
    fuzz_update(NULL, &u, 1);
    tbuf_fini(&base);
    tbuf_fini(&u);
}
END_TEST

/* fuzz_snapshot - every single-byte change of s loaded into an empty document */
static void fuzz_snapshot(const tbuf *s, int all_values)
{
    crdt_doc *d = doc_new(3);
    int changes = 0;
    crdt_doc_observe(d, count_changes, &changes);
    uint8_t *m = malloc(s->len);
    memcpy(m, s->data, s->len);
    size_t ok = 0, bad = 0;
    for (size_t i = 0; i < s->len; i++) {
        for (unsigned v = 0; v < 256; v++) {
            unsigned x = v ^ s->data[i];
            if (v == s->data[i] || (!all_values && (x & (x - 1)))) continue;
            m[i] = (uint8_t)v;
            tdm_err e = crdt_doc_load(d, m, s->len);
            if (e) {
                bad++;
                ck_fast(crdt_doc_len(d) == 0);
                ck_fast(crdt_doc_len_bytes(d) == 0);
                ck_fast(crdt_doc_len_utf16(d) == 0);
                ck_fast(sv_of(d, 1) == 0);
                ck_fast(sv_of(d, 2) == 0);
                ck_fast(crdt_doc_pending(d) == 0);
                ck_fast(changes == 0);
                crdt_doc_stats st;
                crdt_doc_get_stats(d, &st);
                ck_fast(st.items == 0 && st.clients == 1);
            } else {
                /* Not `converge`: the loader takes item order, origins and
                 * deleted flags as given without checking them against the
                 * delete log or the FugueMax rule, so a changed flag can load
                 * and then differ from a replica rebuilt from its diff. */
                ok++;
                ck_consistent(d, false);
                crdt_doc_free(d);
                d = doc_new(3);
                changes = 0;
                crdt_doc_observe(d, count_changes, &changes);
            }
        }
        m[i] = s->data[i];
    }
    ck_assert_uint_gt(bad, 0);
    ck_assert_uint_eq(ok, 0); /* the trailing CRC-32 catches every single-byte change */
    /* after all that, a good load */
    ck_ok(crdt_doc_load(d, s->data, s->len));
    ck_consistent(d, true);
    free(m);
    crdt_doc_free(d);
}

START_TEST(test_snapshot_corruptions)
{
    crdt_doc *a = doc_new(1), *b = doc_new(2);
    ins(a, 0, "h\xc3\xa9llo \xf0\x9f\x98\x80");
    sync_to(b, a);
    ins(b, 3, "\xe4\xb8\xad");
    del(b, 0, 2);
    del(b, 4, 1);
    ins(a, 0, "Q");
    sync_to(a, b);
    tbuf s;
    tbuf_init(&s, 0);
    snap(a, &s);
    ck_assert_uint_eq(snap_codec(&s), 0);
    ck_assert_uint_lt(s.len, 100);
    fuzz_snapshot(&s, 1);
    ck_ok(crdt_doc_gc(a));
    snap(a, &s);
    fuzz_snapshot(&s, 1);
    /* deflated columns: bit flips */
    fill_and_delete(a, 1);
    sync_to(a, b);
    snap(a, &s);
    ck_assert_uint_eq(snap_codec(&s), 1);
    fuzz_snapshot(&s, 0);
    tbuf_fini(&s);
    crdt_doc_free(a);
    crdt_doc_free(b);
}
END_TEST

START_TEST(test_trailing_bytes)
{
    tbuf base, u, s;
    tbuf_init(&base, 0);
    tbuf_init(&u, 0);
    tbuf_init(&s, 0);
    small_update(&base, &u);
    crdt_doc *d = from_snapshot(&base, 3);
    static const uint8_t tails[][2] = {{0x00, 0}, {0xf6, 0}, {0x80, 0}, {0xff, 0}, {0x01, 0x02}};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t n = u.len;
        ck_ok(tbuf_append(&u, tails[i], 2));
        apply_bad(d, u.data, n + 1, TDM_EMALFORMED);
        apply_bad(d, u.data, n + 2, TDM_EMALFORMED);
        u.len = n;
        n = base.len;
        ck_ok(tbuf_append(&base, tails[i], 2));
        load_bad(base.data, n + 1, TDM_EMALFORMED);
        load_bad(base.data, n + 2, TDM_EMALFORMED);
        base.len = n;
    }
    apply_buf(d, &u);
    /* two updates back to back are not one update */
    tbuf two;
    tbuf_init(&two, 0);
    ck_ok(tbuf_append(&two, u.data, u.len));
    ck_ok(tbuf_append(&two, u.data, u.len));
    tbuf_fini(&u);
    u = two;
    crdt_doc *e = from_snapshot(&base, 4);
    apply_bad(e, u.data, u.len, TDM_EMALFORMED);
    crdt_doc_free(e);
    tbuf_fini(&base);
    tbuf_fini(&u);
    tbuf_fini(&s);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_versions)
{
    tbuf base, u;
    tbuf_init(&base, 0);
    tbuf_init(&u, 0);
    small_update(&base, &u);
    crdt_doc *d = from_snapshot(&base, 3);
    ck_assert_uint_eq(u.data[0], 0x83);
    ck_assert_uint_eq(u.data[1], 0x01); /* [1, ...] */
    static const uint8_t vers[] = {0x00, 0x02, 0x03, 0x17};
    for (size_t i = 0; i < sizeof vers; i++) {
        u.data[1] = vers[i];
        apply_bad(d, u.data, u.len, TDM_EVERSION);
    }
    u.data[1] = 0x01;
    /* 2^64-1 as the version: a longer head */
    tbuf w;
    tbuf_init(&w, 0);
    ck_ok(tbuf_append(&w, BYTES(0x83, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)));
    ck_ok(tbuf_append(&w, u.data + 2, u.len - 2));
    apply_bad(d, w.data, w.len, TDM_EVERSION);
    apply_bad(d, BYTES(0x83, 0x20, 0x80, 0x80), ANY_ERR);       /* -1 */
    apply_bad(d, BYTES(0x83, 0x61, 0x31, 0x80, 0x80), ANY_ERR); /* "1" */
    apply_buf(d, &u);

    ck_assert_uint_eq(base.data[0], 0x88);
    ck_assert_uint_eq(base.data[1], 0x02); /* [2, ...] */
    static const uint8_t svers[] = {0x00, 0x01, 0x03, 0x17};
    for (size_t i = 0; i < sizeof svers; i++) {
        base.data[1] = svers[i];
        load_bad(base.data, base.len, TDM_EVERSION);
    }
    base.data[1] = 0x02;
    crdt_doc *e = from_snapshot(&base, 4);
    crdt_doc_free(e);
    tbuf_fini(&w);
    tbuf_fini(&base);
    tbuf_fini(&u);
    crdt_doc_free(d);
}
END_TEST

#define H32  0x9b, 0, 0, 0, 1, 0, 0, 0, 0    /* array of 2^32 */
#define H60  0x9b, 0x10, 0, 0, 0, 0, 0, 0, 0 /* array of 2^60 */
#define H32M 0x9a, 0xff, 0xff, 0xff, 0xff    /* array of 2^32-1 */
#define PAD  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

START_TEST(test_huge_counts)
{
    crdt_doc *d = doc_new(3);
    ins(d, 0, "text");
    /* baseline: [1, [5], [[0, 0, [[null, null, "ab"]]]]] applies */
    crdt_doc *e = doc_new(4);
    ck_ok(crdt_doc_apply(e, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6,
                                  0xf6, 0x62, 'a', 'b')));
    ck_text(e, "ab");
    crdt_doc_free(e);
    apply_bad(d, BYTES(H32, 0x01, 0x81, 0x05, 0x80, PAD), ANY_ERR);
    apply_bad(d, BYTES(H60, 0x01, 0x81, 0x05, 0x80, PAD), ANY_ERR);
    apply_bad(d, BYTES(0x83, 0x01, H32, 0x05, 0x80, PAD), ANY_ERR);
    apply_bad(d, BYTES(0x83, 0x01, H60, 0x05, 0x80, PAD), ANY_ERR);
    apply_bad(d, BYTES(0x83, 0x01, H32M, 0x05, 0x80, PAD), ANY_ERR);
    apply_bad(d, BYTES(0x83, 0x01, 0x81, 0x05, H32, 0x83, 0x00, 0x00, 0x80, PAD), ANY_ERR);
    apply_bad(d, BYTES(0x83, 0x01, 0x81, 0x05, H60, 0x83, 0x00, 0x00, 0x80, PAD), ANY_ERR);
    apply_bad(d, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, H32, PAD), ANY_ERR);
    apply_bad(d, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, H60, PAD), ANY_ERR);
    apply_bad(d, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, H60, PAD), ANY_ERR);
    /* a text string of 2^60 bytes, and of 2^32 */
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6, 0x7b,
                    0x10, 0, 0, 0, 0, 0, 0, 0, 'a', PAD),
              ANY_ERR);
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6, 0x7b, 0,
                    0, 0, 1, 0, 0, 0, 0, 'a', PAD),
              ANY_ERR);
    /* a tombstone or delete of 2^60 characters */
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6, 0x1b,
                    0x10, 0, 0, 0, 0, 0, 0, 0),
              TDM_EMALFORMED);
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x82, 0x00, 0x1b, 0x10, 0,
                    0, 0, 0, 0, 0, 0),
              TDM_EMALFORMED);
    /* more client ids than CRDT_MAX_CLIENTS: refused before anything is registered */
    tbuf u;
    tbuf_init(&u, 0);
    ck_ok(tbuf_cbor_array(&u, 3));
    ck_ok(tbuf_cbor_uint(&u, 1));
    ck_ok(tbuf_cbor_array(&u, CRDT_MAX_CLIENTS + 1));
    for (uint64_t i = 0; i <= CRDT_MAX_CLIENTS; i++) ck_ok(tbuf_cbor_uint(&u, 1000 + i));
    ck_ok(tbuf_cbor_array(&u, 0));
    apply_bad(d, u.data, u.len, TDM_ETOOBIG);
    crdt_doc_stats st;
    crdt_doc_get_stats(d, &st);
    ck_assert_uint_eq(st.clients, 1);

    /* snapshots: [2, [9], [3], 0, h'..', h'..', h'..', crc] is the baseline */
#define SNAP_ITEMS 0x45, 0x01, 0x40, 0x00, 0x00, 0x03 /* 1 item: client 0, clock 0, len 3 */
#define SNAP_REST  0x00, SNAP_ITEMS, 0x43, 'a', 'b', 'c', 0x41, 0x00, SNAP_CRC
#define SNAP_CRC   0x1a, 0xfe, 0x7e, 0x77, 0x53 /* CRC-32 of the bytes before it */
    crdt_doc *l = doc_new(4);
    ck_ok(crdt_doc_load(l, BYTES(0x88, 0x02, 0x81, 0x09, 0x81, 0x03, SNAP_REST)));
    ck_text(l, "abc");
    ck_assert_uint_eq(sv_of(l, 9), 3);
    crdt_doc_free(l);
    load_bad(BYTES(H32, 0x02, 0x81, 0x09, 0x81, 0x03, SNAP_REST, PAD), ANY_ERR);
    load_bad(BYTES(0x88, 0x02, H32, 0x09, 0x81, 0x03, SNAP_REST, PAD), ANY_ERR);
    load_bad(BYTES(0x88, 0x02, H60, 0x09, 0x81, 0x03, SNAP_REST, PAD), ANY_ERR);
    load_bad(BYTES(0x88, 0x02, H32M, 0x09, 0x81, 0x03, SNAP_REST, PAD), ANY_ERR);
    load_bad(BYTES(0x88, 0x02, 0x81, 0x09, H32, 0x03, SNAP_REST, PAD), ANY_ERR);
    load_bad(BYTES(0x88, 0x02, 0x81, 0x09, H60, 0x03, SNAP_REST, PAD), ANY_ERR);
    /* a byte string of 2^60 and 2^32 bytes as the items column */
    load_bad(BYTES(0x88, 0x02, 0x81, 0x09, 0x81, 0x03, 0x00, 0x5b, 0x10, 0, 0, 0, 0, 0, 0, 0, PAD),
             ANY_ERR);
    load_bad(BYTES(0x88, 0x02, 0x81, 0x09, 0x81, 0x03, 0x00, 0x5b, 0, 0, 0, 1, 0, 0, 0, 0, PAD),
             ANY_ERR);
    /* items column: a count of 2^60 items (varint) */
    load_bad(BYTES(0x88, 0x02, 0x81, 0x09, 0x81, 0x03, 0x00, 0x4d, 0x80, 0x80, 0x80, 0x80, 0x80,
                   0x80, 0x80, 0x80, 0x10, 0x40, 0x00, 0x00, 0x03, 0x43, 'a', 'b', 'c', 0x41, 0x00),
             TDM_EMALFORMED);
    /* deletes column: 2^40 records */
    load_bad(BYTES(0x88, 0x02, 0x81, 0x09, 0x81, 0x03, 0x00, SNAP_ITEMS, 0x43, 'a', 'b', 'c', 0x46,
                   0x80, 0x80, 0x80, 0x80, 0x80, 0x20),
             TDM_EMALFORMED);
    /* more clients than CRDT_MAX_CLIENTS */
    tbuf_reset(&u);
    ck_ok(tbuf_cbor_array(&u, 8));
    ck_ok(tbuf_cbor_uint(&u, 2));
    for (int t = 0; t < 2; t++) {
        ck_ok(tbuf_cbor_array(&u, CRDT_MAX_CLIENTS + 1));
        for (uint64_t i = 0; i <= CRDT_MAX_CLIENTS; i++) ck_ok(tbuf_cbor_uint(&u, t ? 0 : i));
    }
    ck_ok(tbuf_cbor_uint(&u, 0));
    for (int c = 0; c < 3; c++) ck_ok(tbuf_cbor_bytes(&u, "", 0));
    ck_ok(tbuf_cbor_uint(&u, 0));
    load_bad(u.data, u.len, TDM_ETOOBIG);
    tbuf_fini(&u);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_indefinite_lengths)
{
    crdt_doc *d = doc_new(3);
    ins(d, 0, "text");
    /* [_ 1, [5], [[0, 0, [[null, null, "ab"]]]]] and friends */
    apply_bad(d,
              BYTES(0x9f, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6, 0x62,
                    'a', 'b', 0xff),
              TDM_EMALFORMED);
    apply_bad(d,
              BYTES(0x83, 0x01, 0x9f, 0x05, 0xff, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6,
                    0x62, 'a', 'b'),
              TDM_EMALFORMED);
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x9f, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6, 0x62,
                    'a', 'b', 0xff),
              TDM_EMALFORMED);
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x9f, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6, 0x62,
                    'a', 'b', 0xff),
              TDM_EMALFORMED);
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x9f, 0x83, 0xf6, 0xf6, 0x62,
                    'a', 'b', 0xff),
              TDM_EMALFORMED);
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x9f, 0xf6, 0xf6, 0x62,
                    'a', 'b', 0xff),
              TDM_EMALFORMED);
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6, 0x7f,
                    0x61, 'a', 0x61, 'b', 0xff),
              TDM_EMALFORMED);
    apply_bad(d, BYTES(0x83, 0x01, 0x81, 0x05, 0xff), TDM_EMALFORMED); /* stray break */
    load_bad(BYTES(0x9f, 0x02, 0x81, 0x09, 0x81, 0x03, SNAP_REST, 0xff), TDM_EMALFORMED);
    load_bad(BYTES(0x88, 0x02, 0x9f, 0x09, 0xff, 0x81, 0x03, SNAP_REST), TDM_EMALFORMED);
    load_bad(BYTES(0x88, 0x02, 0x81, 0x09, 0x9f, 0x03, 0xff, SNAP_REST), TDM_EMALFORMED);
    load_bad(BYTES(0x88, 0x02, 0x81, 0x09, 0x81, 0x03, 0x00, 0x5f, SNAP_ITEMS, 0xff, 0x43, 'a', 'b',
                   'c', 0x41, 0x00),
             TDM_EMALFORMED);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_update_invalid_utf8)
{
    crdt_doc *d = doc_new(3);
    ins(d, 0, "text");
    tbuf u;
    tbuf_init(&u, 0);
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        upd_one_insert(&u, 5, 0, bad_utf8[i].s, bad_utf8[i].n);
        apply_bad(d, u.data, u.len, TDM_EUTF8);
    }
    /* valid text in a valid op after one with bad text: nothing applied */
    tbuf_reset(&u);
    upd_head(&u, (uint64_t[]){5}, 1, 1);
    upd_block(&u, 0, 0, 2);
    op_insert(&u, REF_NONE, 0, REF_NONE, 0, "ok", 2);
    op_insert(&u, REF_SAME, 1, REF_NONE, 0, "\xed\xa0\x80", 3);
    apply_bad(d, u.data, u.len, TDM_EUTF8);
    upd_one_insert(&u, 5, 0, "\xf4\x8f\xbf\xbf", 4);
    apply_buf(d, &u);
    ck_assert_uint_eq(crdt_doc_len(d), 5);
    ck_assert_uint_eq(crdt_doc_len_utf16(d), 6);
    tbuf_fini(&u);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_update_client_index)
{
    crdt_doc *d = doc_new(3);
    ins(d, 0, "text");
    tbuf u;
    tbuf_init(&u, 0);
    uint64_t ids[] = {5, 3};
    /* block client index past the table */
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 2, 0, 1);
    op_insert(&u, REF_NONE, 0, REF_NONE, 0, "a", 1);
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    tbuf_reset(&u);
    upd_head(&u, ids, 2, 1);
    upd_block(&u, UINT64_MAX, 0, 1);
    op_insert(&u, REF_NONE, 0, REF_NONE, 0, "a", 1);
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    tbuf_reset(&u);
    upd_head(&u, NULL, 0, 1); /* no clients at all */
    upd_block(&u, 0, 0, 1);
    op_insert(&u, REF_NONE, 0, REF_NONE, 0, "a", 1);
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    /* origins and targets past the table */
    for (int which = 0; which < 3; which++) {
        tbuf_reset(&u);
        upd_head(&u, ids, 2, 1);
        upd_block(&u, 0, 0, 1);
        if (which == 0) op_insert(&u, 2, 0, REF_NONE, 0, "a", 1);
        if (which == 1) op_insert(&u, REF_NONE, 0, 7, 1, "a", 1);
        if (which == 2) op_delete(&u, 2, 0, 1);
        apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    }
    /* the same with index 1 (= client 3) is fine */
    tbuf_reset(&u);
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 0, 2);
    op_insert(&u, 1, 3, REF_NONE, 0, "a", 1);
    op_delete(&u, 1, 0, 1);
    apply_buf(d, &u);
    ck_text(d, "exta");
    tbuf_fini(&u);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_update_clock_limits)
{
    crdt_doc *d = doc_new(3);
    ins(d, 0, "text");
    tbuf u;
    tbuf_init(&u, 0);
    uint64_t ids[] = {5, 3};
    static const uint64_t bad_clock[] = {CRDT_CLOCK_MAX, CRDT_CLOCK_MAX + 1ull, UINT32_MAX,
                                         1ull << 32, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad_clock / sizeof bad_clock[0]; i++) {
        upd_one_insert(&u, 5, bad_clock[i], "a", 1); /* block clock */
        apply_bad(d, u.data, u.len, TDM_EMALFORMED);
        for (int which = 0; which < 5; which++) {
            tbuf_reset(&u);
            upd_head(&u, ids, 2, 1);
            upd_block(&u, 0, 0, 1);
            if (which == 0) op_insert(&u, REF_SAME, bad_clock[i], REF_NONE, 0, "a", 1);
            if (which == 1) op_insert(&u, 1, bad_clock[i], REF_NONE, 0, "a", 1);
            if (which == 2) op_insert(&u, REF_NONE, 0, 1, bad_clock[i], "a", 1);
            if (which == 3) op_delete(&u, 1, bad_clock[i], 1);
            if (which == 4) op_delete(&u, REF_SAME, bad_clock[i], -1);
            apply_bad(d, u.data, u.len, TDM_EMALFORMED);
        }
    }
    /* runs that would cross CRDT_CLOCK_MAX */
    upd_one_insert(&u, 5, CRDT_CLOCK_MAX - 1, "ab", 2);
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    tbuf_reset(&u);
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 0, 1);
    op_tomb(&u, REF_NONE, 0, REF_NONE, 0, CRDT_CLOCK_MAX + 1ull);
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    tbuf_reset(&u);
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 10, 1);
    op_tomb(&u, REF_NONE, 0, REF_NONE, 0, CRDT_CLOCK_MAX - 5);
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    tbuf_reset(&u);
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 0, 1);
    op_delete(&u, 1, CRDT_CLOCK_MAX - 1, 2); /* targets past the limit */
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    tbuf_reset(&u);
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 0, 1);
    op_delete(&u, 1, 0, -2); /* backwards below clock 0 */
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    static const int64_t bad_len[] = {(int64_t)CRDT_CLOCK_MAX + 1, -(int64_t)CRDT_CLOCK_MAX - 1,
                                      INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof bad_len / sizeof bad_len[0]; i++) {
        tbuf_reset(&u);
        upd_head(&u, ids, 2, 1);
        upd_block(&u, 0, 0, 1);
        op_delete(&u, 1, 0, bad_len[i]);
        apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    }
    /* a negative integer beyond int64 as a delete length */
    apply_bad(d,
              BYTES(0x83, 0x01, 0x82, 0x05, 0x03, 0x81, 0x83, 0x00, 0x00, 0x81, 0x82, 0x82, 0x01,
                    0x00, 0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
              TDM_EMALFORMED);
    tbuf_fini(&u);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_zero_length_ops)
{
    crdt_doc *d = doc_new(3);
    ins(d, 0, "text");
    tbuf u;
    tbuf_init(&u, 0);
    uint64_t ids[] = {5, 3};
    upd_one_insert(&u, 5, 0, "", 0);
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    tbuf_reset(&u);
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 0, 1);
    op_tomb(&u, REF_NONE, 0, REF_NONE, 0, 0);
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    tbuf_reset(&u);
    upd_head(&u, ids, 2, 1);
    upd_block(&u, 0, 0, 1);
    op_delete(&u, 1, 0, 0);
    apply_bad(d, u.data, u.len, TDM_EMALFORMED);
    /* an op of the wrong shape */
    apply_bad(d, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x81, 0xf6),
              TDM_EMALFORMED);
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x84, 0xf6, 0xf6, 0x61,
                    'a', 0x00),
              TDM_EMALFORMED);
    apply_bad(
        d, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6, 0x41, 'a'),
        TDM_EMALFORMED); /* bytes, not text */
    apply_bad(d, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x82, 0xf6, 0x01),
              TDM_EMALFORMED); /* delete of null */
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0x83, 0x00, 0x00,
                    0x00, 0xf6, 0x61, 'a'),
              TDM_EMALFORMED); /* origin of three numbers */
    tbuf_fini(&u);
    crdt_doc_free(d);
}
END_TEST

START_TEST(test_update_size_limit)
{
    crdt_doc *a = doc_new(1);
    char big[300];
    memset(big, 'z', sizeof big);
    ck_ok(crdt_doc_insert(a, 0, big, sizeof big));
    tbuf u, s;
    tbuf_init(&u, 0);
    tbuf_init(&s, 0);
    ck_ok(crdt_doc_diff(a, NULL, &u));
    snap(a, &s);
    crdt_doc *d = doc_new_opts(2, false, 256);
    ins(d, 0, "mine");
    apply_bad(d, u.data, u.len, TDM_ETOOBIG);
    crdt_doc *e = doc_new_opts(2, false, 256);
    ck_err(crdt_doc_load(e, s.data, s.len), TDM_ETOOBIG);
    ck_assert_uint_eq(crdt_doc_len(e), 0);
    crdt_doc_free(e);
    e = doc_new_opts(2, false, 512);
    apply_buf(e, &u);
    ck_converged(a, e);
    crdt_doc_free(e);
    tbuf_fini(&u);
    tbuf_fini(&s);
    crdt_doc_free(d);
    crdt_doc_free(a);
}
END_TEST

/* snapshot [2, [9], [next], codec, items, text, dels, crc] from raw column bytes */
static void crafted(tbuf *out, uint64_t next, uint64_t codec, const uint8_t *ip, size_t in,
                    const char *tp, size_t tn, const uint8_t *dp, size_t dn)
{
    static const uint64_t ids[] = {9};
    snapspec sp = {2, ids, &next, 1, 1, codec, {ip, (const uint8_t *)tp, dp}, {in, tn, dn}};
    snap_build(&sp, out);
}

#define COL(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
#define NOCOL    NULL, 0

/* Regressions for bugs found by this suite (each failed before its fix). */
START_TEST(test_regressions)
{
    tbuf u;
    tbuf_init(&u, 0);
    /* 1. total characters past 2^31 (tombstones included): refused whole */
    crdt_doc *d = doc_new(1);
    ck_ok(tbuf_cbor_array(&u, 3));
    ck_ok(tbuf_cbor_uint(&u, 1));
    ck_ok(tbuf_cbor_array(&u, 2));
    ck_ok(tbuf_cbor_uint(&u, 7));
    ck_ok(tbuf_cbor_uint(&u, 5));
    ck_ok(tbuf_cbor_array(&u, 2));
    for (int c = 0; c < 2; c++) { /* [c, 0, [[null, null, 0xF0000000]]] */
        ck_ok(tbuf_cbor_array(&u, 3));
        ck_ok(tbuf_cbor_uint(&u, (uint64_t)c));
        ck_ok(tbuf_cbor_uint(&u, 0));
        ck_ok(tbuf_cbor_array(&u, 1));
        ck_ok(tbuf_cbor_array(&u, 3));
        ck_ok(tbuf_cbor_null(&u));
        ck_ok(tbuf_cbor_null(&u));
        ck_ok(tbuf_cbor_uint(&u, 0xF0000000u));
    }
    apply_bad(d, u.data, u.len, TDM_ETOOBIG);
    crdt_doc_stats st;
    crdt_doc_get_stats(d, &st);
    ck_assert_uint_eq(st.clients, 1);
    /* 2. an operation reaching clock CRDT_CLOCK_MAX is malformed */
    apply_bad(d,
              BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x81, 0x83, 0xf6, 0xf6, 0x1a,
                    0xff, 0xff, 0xff, 0xf0),
              TDM_EMALFORMED);
    /* 3. re-sending an update that is held pending holds it once */
    crdt_doc *a = doc_new(2), *b = doc_new(3);
    int changes = 0;
    crdt_doc_observe(b, count_changes, &changes);
    ins(a, 0, "x");
    crdt_sv *sv = crdt_sv_new();
    ck_ok(crdt_doc_state_vector(a, sv));
    ins(a, 1, "y");
    tbuf_reset(&u);
    ck_ok(crdt_doc_diff(a, sv, &u));
    for (int i = 0; i < 5; i++) ck_ok(crdt_doc_apply(b, u.data, u.len));
    ck_assert_uint_eq(crdt_doc_pending(b), 1);
    /* 6. ... and an observed update that changes nothing visible reports nothing */
    ck_assert_int_eq(changes, 0);
    tbuf_reset(&u);
    ck_ok(crdt_doc_diff(a, NULL, &u));
    ck_ok(crdt_doc_apply(b, u.data, u.len));
    ck_assert_uint_eq(crdt_doc_pending(b), 0);
    ck_text(b, "xy");
    ck_assert_int_eq(changes, 1);
    /* 4. names alone do not fill the client table */
    tbuf_reset(&u);
    ck_ok(tbuf_cbor_array(&u, 3));
    ck_ok(tbuf_cbor_uint(&u, 1));
    ck_ok(tbuf_cbor_array(&u, 65535));
    for (uint64_t i = 0; i < 65535; i++) ck_ok(tbuf_cbor_uint(&u, 1000 + i));
    ck_ok(tbuf_cbor_array(&u, 0));
    crdt_doc *e = doc_new(4);
    ck_ok(crdt_doc_apply(e, u.data, u.len));
    crdt_doc_get_stats(e, &st);
    ck_assert_uint_eq(st.clients, 1);
    tbuf sn;
    tbuf_init(&sn, 0);
    ck_ok(crdt_doc_snapshot(e, &sn));
    ck_assert_uint_lt(sn.len, 64);
    crdt_doc *f = doc_new(5);
    ck_ok(crdt_doc_load(f, sn.data, sn.len));
    /* 5. snapshots whose deleted flags disagree with their delete log */
    crafted(&sn, 3, 0, COL(0x01, 0x41, 0x00, 0x00, 0x03), "abc", 3, COL(0x00));
    load_bad(sn.data, sn.len, TDM_EMALFORMED); /* deleted, but nothing deleted it */
    crafted(&sn, 4, 0, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", 3,
            COL(0x01, 0x03, 0x02, 0x00, 0x00));
    load_bad(sn.data, sn.len, TDM_EMALFORMED); /* deleted by 9:3, but visible */
    /* a flipped byte anywhere in a real snapshot is caught by its checksum */
    crdt_doc *g = doc_new(6);
    ins(g, 0, "hello world");
    del(g, 2, 3);
    tbuf_reset(&sn);
    ck_ok(crdt_doc_snapshot(g, &sn));
    for (size_t i = 0; i < sn.len; i++) {
        sn.data[i] ^= 0x10;
        crdt_doc *h = doc_new(7);
        ck_assert_int_ne(crdt_doc_load(h, sn.data, sn.len), TDM_OK);
        crdt_doc_free(h);
        sn.data[i] ^= 0x10;
    }
    /* fuzz finding: a delete naming its own clocks merged into a record that
     * depended on itself; its diff must rebuild the text with nothing pending */
    crdt_doc *k = doc_new(1), *k2 = doc_new(2);
    ck_ok(crdt_doc_apply(k, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x83, 0x83, 0xf6,
                                  0xf6, 0x62, 0x61, 0x62, 0x82, 0x00, 0x01, 0x82, 0x01, 0x02)));
    ck_text(k, "");
    tbuf_reset(&u);
    ck_ok(crdt_doc_diff(k, NULL, &u));
    ck_ok(crdt_doc_apply(k2, u.data, u.len));
    ck_assert_uint_eq(crdt_doc_pending(k2), 0);
    ck_text(k2, "");
    /* fuzz_update finding: a delete naming its own client's clocks past its
     * end (client 5: "abcdefghij" at 0..9, a delete at 10 of 5:17..19, then
     * "0123456789" at 13..22) was recorded while the characters it named came
     * in undeleted, and the document's snapshot did not load. Refused whole,
     * also when the update lists the client twice to hide it. */
    {
        crdt_doc *o = doc_new(1);
        ck_assert_int_eq(
            crdt_doc_apply(o, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x83, 0x83,
                                    0xf6, 0xf6, 0x6a, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i',
                                    'j', 0x82, 0x11, 0x03, 0x83, 0x09, 0xf6, 0x6a, '0', '1', '2',
                                    '3', '4', '5', '6', '7', '8', '9')),
            TDM_EMALFORMED);
        ck_assert_int_eq(
            crdt_doc_apply(o, BYTES(0x83, 0x01, 0x82, 0x05, 0x05, 0x81, 0x83, 0x00, 0x00, 0x83,
                                    0x83, 0xf6, 0xf6, 0x6a, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h',
                                    'i', 'j', 0x82, 0x82, 0x01, 0x11, 0x03, 0x83, 0x09, 0xf6, 0x6a,
                                    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')),
            TDM_EMALFORMED);
        ck_assert_uint_eq(crdt_doc_len(o), 0);
        ck_assert_uint_eq(crdt_doc_pending(o), 0);
        /* the same delete of 5:2..4 (before it) is fine and round-trips */
        ck_ok(crdt_doc_apply(o, BYTES(0x83, 0x01, 0x81, 0x05, 0x81, 0x83, 0x00, 0x00, 0x83, 0x83,
                                      0xf6, 0xf6, 0x6a, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i',
                                      'j', 0x82, 0x02, 0x03, 0x83, 0x09, 0xf6, 0x6a, '0', '1', '2',
                                      '3', '4', '5', '6', '7', '8', '9')));
        ck_text(o, "abfghij0123456789");
        tbuf_reset(&sn);
        ck_ok(crdt_doc_snapshot(o, &sn));
        crdt_doc *o2 = from_snapshot(&sn, 3);
        ck_text(o2, "abfghij0123456789");
        crdt_doc_free(o2);
        crdt_doc_free(o);
    }
    /* fuzz finding: an origin naming the loader's own client index (one past
     * the snapshot's table) is refused */
    crdt_doc *m = doc_new(7);
    ck_assert_int_eq(crdt_doc_load(m, BYTES(0x88, 0x02, 0x81, 0x01, 0x81, 0x01, 0x00, 0x47, 0x01,
                                            0x70, 0x00, 0x00, 0x01, 0x01, 0x00, 0x41, 0x61, 0x41,
                                            0x00, 0x1a, 0x28, 0x95, 0x00, 0x1b)),
                     TDM_EMALFORMED);
    /* fuzz finding: origins naming clocks the document lacks, or the item itself */
    ck_assert_int_eq(crdt_doc_load(m, BYTES(0x88, 0x02, 0x81, 0x01, 0x81, 0x01, 0x00, 0x47, 0x01,
                                            0x70, 0x00, 0x00, 0x01, 0x00, 0x05, 0x41, 0x61, 0x41,
                                            0x00, 0x1a, 0x2b, 0x29, 0x5c, 0xce)),
                     TDM_EMALFORMED);
    ck_assert_int_eq(crdt_doc_load(m, BYTES(0x88, 0x02, 0x81, 0x01, 0x81, 0x01, 0x00, 0x47, 0x01,
                                            0x4c, 0x00, 0x00, 0x01, 0x00, 0x00, 0x41, 0x61, 0x41,
                                            0x00, 0x1a, 0x91, 0x06, 0xb1, 0x08)),
                     TDM_EMALFORMED);
    ck_assert_uint_eq(crdt_doc_len(m), 0);
    crdt_doc_free(k);
    crdt_doc_free(k2);
    crdt_doc_free(m);
    tbuf_fini(&sn);
    crdt_sv_free(sv);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(d);
    crdt_doc_free(e);
    crdt_doc_free(f);
    crdt_doc_free(g);
    tbuf_fini(&u);
}
END_TEST

START_TEST(test_snapshot_crafted)
{
    tbuf s;
    tbuf_init(&s, 0);
    /* baseline: one item 9:0..2 "abc", no deletes */
    crafted(&s, 3, 0, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", 3, COL(0x00));
    crdt_doc *d = from_snapshot(&s, 4);
    ck_text(d, "abc");
    crdt_doc_free(d);
    /* baseline with a delete: 9:3 deletes 9:1; the item is split */
    crafted(&s, 4, 0, COL(0x03, 0x40, 0x00, 0x00, 0x01, 0x09, 0x00, 0x01, 0x08, 0x00, 0x01), "abc",
            3, COL(0x01, 0x03, 0x02, 0x00, 0x02));
    d = from_snapshot(&s, 4);
    ck_text(d, "ac");
    ck_assert_uint_eq(sv_of(d, 9), 4);
    crdt_doc_free(d);

#define BAD(next, items, text, dels, want)                                                         \
    do {                                                                                           \
        crafted(&s, next, 0, items, text, sizeof(text) - 1, dels);                                 \
        load_bad(s.data, s.len, want);                                                             \
    } while (0)
    BAD(4, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* clocks gap */
    BAD(2, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* past next */
    BAD(CRDT_CLOCK_MAX, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED);
    BAD(3, COL(0x01, 0x40, 0x00, 0x00, 0x00), "", COL(0x00), TDM_EMALFORMED);    /* len 0 */
    BAD(3, COL(0x01, 0x40, 0x05, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* client 5 */
    BAD(3, COL(0x01, 0x40, 0x01, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* client 1 */
    BAD(3, COL(0x01, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED);       /* no client yet */
    BAD(3, COL(0x01, 0x40, 0x00, 0x01, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* clock -1 */
    BAD(3, COL(0x01, 0x40, 0x00, 0xde, 0xff, 0xff, 0xff, 0x1f, 0x03), "abc", COL(0x00),
        TDM_EMALFORMED); /* clock near CRDT_CLOCK_MAX */
    BAD(3, COL(0x01, 0xc0, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* flag 0x80 */
    BAD(3, COL(0x01, 0x42, 0x00, 0x00, 0x03), "", COL(0x00), TDM_EMALFORMED);    /* gc, live */
    BAD(3, COL(0x01, 0x44, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* olm 1 first */
    BAD(3, COL(0x01, 0x48, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* olm 2 at 0 */
    BAD(3, COL(0x01, 0x50, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* orm 1 last */
    BAD(3, COL(0x01, 0x60, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED); /* orm 2, no ol */
    BAD(3, COL(0x01, 0x4c, 0x00, 0x00, 0x03, 0x07, 0x00), "abc", COL(0x00),
        TDM_EMALFORMED); /* explicit left origin of client 7 */
    BAD(3, COL(0x01, 0x70, 0x00, 0x00, 0x03, 0x00, 0xf0, 0xff, 0xff, 0xff, 0x0f), "abc", COL(0x00),
        TDM_EMALFORMED); /* explicit right origin at CRDT_CLOCK_MAX */
    BAD(3, COL(0x01, 0x40, 0x00, 0x00, 0x03), "ab", COL(0x00), TDM_EMALFORMED);   /* short */
    BAD(3, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abcd", COL(0x00), TDM_EMALFORMED); /* long */
    BAD(3, COL(0x01, 0x40, 0x00, 0x00, 0x03), "a\xc0\xaf", COL(0x00), TDM_EUTF8);
    BAD(3, COL(0x01, 0x40, 0x00, 0x00, 0x03), "ab\xed\xa0\x80", COL(0x00), TDM_EUTF8);
    BAD(3, COL(0x02, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x00), TDM_EMALFORMED);       /* 2 items */
    BAD(3, COL(0x01, 0x40, 0x00, 0x00, 0x03, 0x00), "abc", COL(0x00), TDM_EMALFORMED); /* tail */
    BAD(3, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x00, 0x00), TDM_EMALFORMED); /* tail */
    BAD(3, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x01), TDM_EMALFORMED); /* 1 del, none */
    BAD(3, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", NOCOL, TDM_EMALFORMED);     /* no count */
    /* deletes: zero length, target client 3, target past the limit, not tiling */
    BAD(4, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x01, 0x03, 0x00, 0x00, 0x00),
        TDM_EMALFORMED);
    BAD(4, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x01, 0x03, 0x02, 0x03, 0x00),
        TDM_EMALFORMED);
    BAD(4, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc",
        COL(0x01, 0x03, 0x02, 0x00, 0xe0, 0xff, 0xff, 0xff, 0x1f), TDM_EMALFORMED);
    BAD(5, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x01, 0x03, 0x02, 0x00, 0x02),
        TDM_EMALFORMED); /* next 5: a hole at 9:4 */
    /* a delete naming its own client's clocks past its end (9:3 deletes 9:5),
     * refused as crdt_doc_apply refuses it */
    BAD(4, COL(0x01, 0x40, 0x00, 0x00, 0x03), "abc", COL(0x01, 0x03, 0x02, 0x00, 0x0a),
        TDM_EMALFORMED);
#undef BAD
    /* fuzz_snapshot: a delete whose target client (5, second in the table)
     * holds no operations loaded, but the re-snapshot left client 5 out of
     * its table and wrote an unmapped index, so it did not load. Now the
     * snapshot of the loaded document loads and is a fixed point. */
    {
        static const uint64_t ids2[] = {9, 5}, nx2[] = {4, 0};
        const uint8_t it2[] = {0x01, 0x40, 0x00, 0x00, 0x03};
        const uint8_t de2[] = {0x01, 0x03, 0x02, 0x01, 0x00, 0x00};
        snapspec t2 = {2, ids2, nx2, 2, 2, 0, {it2, (const uint8_t *)"abc", de2}, {5, 3, 6}};
        snap_build(&t2, &s);
        d = from_snapshot(&s, 4);
        ck_text(d, "abc");
        tbuf s2, s3;
        tbuf_init(&s2, 0);
        tbuf_init(&s3, 0);
        ck_ok(crdt_doc_snapshot(d, &s2));
        crdt_doc *d2 = from_snapshot(&s2, 4);
        ck_text(d2, "abc");
        ck_ok(crdt_doc_snapshot(d2, &s3));
        ck_assert(s2.len == s3.len && memcmp(s2.data, s3.data, s2.len) == 0);
        crdt_doc_free(d2);
        crdt_doc_free(d);
        tbuf_fini(&s2);
        tbuf_fini(&s3);
    }

    /* tables: duplicate clients, length mismatch, codec 2 */
    static const uint64_t dup[] = {9, 9}, nx[] = {3, 0};
    const uint8_t items[] = {0x01, 0x40, 0x00, 0x00, 0x03}, dels2[] = {0x00, 0x00}, dels1[] = {0};
    snapspec t = {2, dup, nx, 2, 2, 0, {items, (const uint8_t *)"abc", dels2}, {5, 3, 2}};
    snap_build(&t, &s);
    load_bad(s.data, s.len, TDM_EMALFORMED);
    static const uint64_t one[] = {9};
    t = (snapspec){2, one, nx, 1, 2, 0, {items, (const uint8_t *)"abc", dels1}, {5, 3, 1}};
    snap_build(&t, &s);
    load_bad(s.data, s.len, TDM_EMALFORMED);
    t.nnext = 1;
    t.codec = 2;
    snap_build(&t, &s);
    load_bad(s.data, s.len, TDM_EMALFORMED);
    /* codec 1 with columns that are not DEFLATE, and with ones that are */
    t.codec = 1;
    snap_build(&t, &s);
    load_bad(s.data, s.len, TDM_EMALFORMED);
    tbuf z[3];
    for (int i = 0; i < 3; i++) {
        tbuf_init(&z[i], 0);
        raw_deflate(t.col[i], t.ncol[i], &z[i]);
        t.col[i] = z[i].data;
        t.ncol[i] = z[i].len;
    }
    snap_build(&t, &s);
    d = from_snapshot(&s, 4);
    ck_text(d, "abc");
    crdt_doc_free(d);
    /* a deflated column followed by junk */
    ck_ok(tbuf_append(&z[1], "J", 1));
    t.ncol[1] = z[1].len;
    t.col[1] = z[1].data;
    snap_build(&t, &s);
    load_bad(s.data, s.len, TDM_EMALFORMED);
    for (int i = 0; i < 3; i++) tbuf_fini(&z[i]);
    tbuf_fini(&s);
}
END_TEST

/* bomb - raw DEFLATE of `mib` MiB of zeros: the compressed form of one MiB
 * (ending byte-aligned after a full flush) repeated, then an empty last block. */
static void bomb(tbuf *out, size_t mib)
{
    uint8_t *zero = calloc(1, 1 << 20);
    tbuf one;
    tbuf_init(&one, 0);
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    ck_ok(tbuf_reserve(&one, 1 << 16));
    z.next_in = zero;
    z.avail_in = 1 << 20;
    z.next_out = one.data;
    z.avail_out = 1 << 16;
    ck_assert_int_eq(deflate(&z, Z_FULL_FLUSH), Z_OK);
    ck_assert_uint_eq(z.avail_in, 0);
    ck_assert_uint_gt(z.avail_out, 0);
    one.len = z.total_out;
    deflateEnd(&z);
    for (size_t i = 0; i < mib; i++) ck_ok(tbuf_append(out, one.data, one.len));
    ck_ok(tbuf_append(out, "\x03\x00", 2));
    tbuf_fini(&one);
    free(zero);
}

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

START_TEST(test_deflate_bomb)
{
    tbuf zb, ze, s;
    tbuf_init(&zb, 0);
    tbuf_init(&ze, 0);
    tbuf_init(&s, 0);
    bomb(&zb, 300);
    ck_assert_uint_lt(zb.len, 400 * 1024);
    /* it really is 300 MiB of zeros: inflate the first 64 MiB of it */
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(inflateInit2(&z, -15), Z_OK);
    uint8_t *sink = malloc(1 << 16);
    z.next_in = zb.data;
    z.avail_in = (uInt)zb.len;
    while (z.total_out < (64u << 20)) {
        z.next_out = sink;
        z.avail_out = 1 << 16;
        ck_assert_int_eq(inflate(&z, Z_NO_FLUSH), Z_OK);
    }
    inflateEnd(&z);
    free(sink);
    raw_deflate((const uint8_t *)"", 0, &ze);
    static const uint64_t ids[] = {9}, nx[] = {3};
    for (int col = 0; col < 3; col++) {
        snapspec sp = {2, ids, nx, 1, 1, 1, {ze.data, ze.data, ze.data}, {ze.len, ze.len, ze.len}};
        sp.col[col] = zb.data;
        sp.ncol[col] = zb.len;
        snap_build(&sp, &s);
        crdt_doc *d = doc_new_opts(4, false, 1 << 20);
        long rss0 = maxrss_kib();
        double t0 = now_s();
        ck_err(crdt_doc_load(d, s.data, s.len), TDM_ETOOBIG);
        double dt = now_s() - t0;
        long rss1 = maxrss_kib();
        ck_assert_msg(dt < 2.0, "took %.2f s", dt);
        ck_assert_msg(rss1 - rss0 < 64 * 1024, "peak RSS grew by %ld KiB", rss1 - rss0);
        ck_assert_uint_eq(crdt_doc_len(d), 0);
        ins(d, 0, "fine");
        ck_text(d, "fine");
        crdt_doc_free(d);
    }
    tbuf_fini(&zb);
    tbuf_fini(&ze);
    tbuf_fini(&s);
}
END_TEST

/* ------------------------------------------------------------------ stats */

START_TEST(test_stats)
{
    crdt_doc_stats st;
    crdt_doc *a = doc_new(1), *b = doc_new(2), *c = doc_new(3);
    crdt_doc_get_stats(a, &st);
    ck_assert_uint_eq(st.items, 0);
    ck_assert_uint_eq(st.clients, 1);
    ck_assert_uint_eq(st.content_bytes, 0);
    ck_assert_uint_gt(st.mem_bytes, 0);
    size_t mem0 = st.mem_bytes;
    ins(a, 0, "hello");
    ins(a, 5, " world"); /* continues the run */
    crdt_doc_get_stats(a, &st);
    ck_assert_uint_eq(st.items, 1);
    ck_assert_uint_eq(st.content_bytes, 11);
    ins(a, 5, ",");
    crdt_doc_get_stats(a, &st);
    ck_assert_uint_eq(st.items, 3);
    sync_to(b, a);
    ins(b, 0, "b");
    sync_to(c, b);
    ins(c, 0, "c");
    sync_to(a, c);
    crdt_doc_get_stats(a, &st);
    ck_assert_uint_eq(st.clients, 3);
    ck_assert_uint_ge(st.items, 5);
    crdt_doc_get_stats(b, &st);
    ck_assert_uint_eq(st.clients, 2);
    char *big = malloc(100000);
    memset(big, 'x', 100000);
    ck_ok(crdt_doc_insert(a, 0, big, 100000));
    free(big);
    crdt_doc_get_stats(a, &st);
    ck_assert_uint_ge(st.content_bytes, 100000);
    ck_assert_uint_ge(st.mem_bytes, mem0 + 100000);
    crdt_doc_free(a);
    crdt_doc_free(b);
    crdt_doc_free(c);
}
END_TEST

static Suite *doc_suite(void)
{
    Suite *s = suite_create("doc");
    TCase *te = tcase_create("edit");
    tcase_add_test(te, test_new_free);
    tcase_add_test(te, test_insert_positions);
    tcase_add_test(te, test_insert_out_of_range);
    tcase_add_test(te, test_insert_empty);
    tcase_add_test(te, test_insert_invalid_utf8);
    tcase_add_test(te, test_delete_positions);
    tcase_add_test(te, test_delete_out_of_range);
    tcase_add_test(te, test_multibyte_lengths);
    tcase_add_test(te, test_multibyte_delete_middle);
    tcase_add_test(te, test_text_range);
    tcase_add_test(te, test_text_buffer_limit);
    tcase_add_test(te, test_output_limits);
    tcase_add_test(te, test_random_edits_model);
    suite_add_tcase(s, te);

    TCase *ts = tcase_create("sync");
    tcase_add_test(ts, test_state_vector_counts);
    tcase_add_test(ts, test_delete_set);
    tcase_add_test(ts, test_diff_null_partial_full);
    tcase_add_test(ts, test_diff_partial_mid_run);
    tcase_add_test(ts, test_diff_range_versions);
    tcase_add_test(ts, test_diff_range_backspace);
    tcase_add_test(ts, test_apply_idempotent);
    tcase_add_test(ts, test_apply_commutative);
    tcase_add_test(ts, test_concurrent_no_interleave);
    tcase_add_test(ts, test_pending_out_of_order);
    tcase_add_test(ts, test_pending_bounds);
    tcase_add_test(ts, test_pending_missing_origin);
    tcase_add_test(ts, test_delete_non_characters);
    tcase_add_test(ts, test_origin_not_character);
    tcase_add_test(ts, test_random_replicas);
    suite_add_tcase(s, ts);

    TCase *tg = tcase_create("gc");
    tcase_add_test(tg, test_gc_call);
    tcase_add_test(tg, test_gc_option);
    tcase_add_test(tg, test_gc_diff_and_snapshot);
    tcase_add_test(tg, test_gc_then_remote_edits);
    suite_add_tcase(s, tg);

    TCase *tn = tcase_create("snapshot");
    tcase_add_test(tn, test_snapshot_roundtrip);
    tcase_add_test(tn, test_snapshot_own_client);
    tcase_add_test(tn, test_load_not_empty);
    tcase_add_test(tn, test_snapshot_excludes_pending);
    suite_add_tcase(s, tn);

    TCase *th = tcase_create("hostile");
    tcase_set_timeout(th, 120);
    tcase_add_test(th, test_update_truncations);
    tcase_add_test(th, test_snapshot_truncations);
    tcase_add_test(th, test_update_corruptions);
    tcase_add_test(th, test_regressions);
    tcase_add_test(th, test_snapshot_corruptions);
    tcase_add_test(th, test_trailing_bytes);
    tcase_add_test(th, test_versions);
    tcase_add_test(th, test_huge_counts);
    tcase_add_test(th, test_indefinite_lengths);
    tcase_add_test(th, test_update_invalid_utf8);
    tcase_add_test(th, test_update_client_index);
    tcase_add_test(th, test_update_clock_limits);
    tcase_add_test(th, test_zero_length_ops);
    tcase_add_test(th, test_update_size_limit);
    tcase_add_test(th, test_snapshot_crafted);
    tcase_add_test(th, test_deflate_bomb);
    suite_add_tcase(s, th);

    TCase *tt = tcase_create("stats");
    tcase_add_test(tt, test_stats);
    suite_add_tcase(s, tt);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(doc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
