/* test_awareness.c - aw_: local set/clear, clock ordering, removal, expiry and
 * renewal, change events, local-client override, convergence between
 * replicas, the wire form, caps and hostile inputs. */
#include "awareness.h"
#include "buf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define S(str) (const uint8_t *)(str), (sizeof(str) - 1)

/* ------------------------------------------------------------- helpers */

/* Records every observer call. */
typedef struct rec {
    int calls;
    aw_origin origin;
    uint64_t added[64], updated[64], removed[64];
    size_t na, nu, nr;
    size_t total_removed;
} rec;

static void on_change(void *ud, const aw_change *ch)
{
    rec *r = ud;
    r->calls++;
    r->origin = ch->origin;
    ck_assert_uint_gt(ch->n_added + ch->n_updated + ch->n_removed, 0);
    r->na = ch->n_added < 64 ? ch->n_added : 64;
    r->nu = ch->n_updated < 64 ? ch->n_updated : 64;
    r->nr = ch->n_removed < 64 ? ch->n_removed : 64;
    memcpy(r->added, ch->added, r->na * sizeof(uint64_t));
    memcpy(r->updated, ch->updated, r->nu * sizeof(uint64_t));
    memcpy(r->removed, ch->removed, r->nr * sizeof(uint64_t));
    r->total_removed += ch->n_removed;
}

static void rec_reset(rec *r)
{
    memset(r, 0, sizeof *r);
}

static aw_state *mk(uint64_t client)
{
    aw_state *aw = NULL;
    ck_assert_int_eq(aw_new(client, &aw), TDM_OK);
    ck_assert_ptr_nonnull(aw);
    return aw;
}

static aw_state *mk_opts(uint64_t client, size_t max_clients, size_t max_entries, size_t max_total)
{
    aw_opts o = {.client = client,
                 .max_clients = max_clients,
                 .max_update_entries = max_entries,
                 .max_total_bytes = max_total,
                 .hash_seed = 12345};
    aw_state *aw = NULL;
    ck_assert_int_eq(aw_new_opts(&o, &aw), TDM_OK);
    return aw;
}

static void expect_state(const aw_state *aw, uint64_t client, const char *want, uint32_t clock)
{
    aw_entry e;
    ck_assert_int_eq(aw_get(aw, client, &e), TDM_OK);
    ck_assert_uint_eq(e.client, client);
    ck_assert_uint_eq(e.len, strlen(want));
    if (e.len) ck_assert_mem_eq(e.state, want, e.len);
    ck_assert_uint_eq(e.clock, clock);
}

static void expect_absent(const aw_state *aw, uint64_t client)
{
    aw_entry e;
    ck_assert_int_eq(aw_get(aw, client, &e), TDM_ENOTFOUND);
}

static uint32_t clock_of(const aw_state *aw, uint64_t client)
{
    uint32_t c = 0;
    ck_assert_int_eq(aw_get_clock(aw, client, &c), TDM_OK);
    return c;
}

/* Send `from`'s entries for clients[0..n) (NULL: all present) to `to`. */
static void send(aw_state *from, const uint64_t *clients, size_t n, aw_state *to, uint64_t now)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(aw_encode(from, clients, n, &b), TDM_OK);
    ck_assert_int_eq(aw_apply(to, b.data, b.len, now, NULL), TDM_OK);
    tbuf_fini(&b);
}

static void send_local(aw_state *from, aw_state *to, uint64_t now)
{
    uint64_t c = aw_client(from);
    send(from, &c, 1, to, now);
}

/* Build an update from literal entries: state NULL means null. */
typedef struct lit {
    uint64_t client;
    uint64_t clock;
    const char *state;
} lit;

static void build(tbuf *b, const lit *e, size_t n)
{
    tbuf_init(b, 0);
    tdm_err err = tbuf_cbor_array(b, n);
    for (size_t i = 0; !err && i < n; i++) {
        if (!err) err = tbuf_cbor_array(b, 3);
        if (!err) err = tbuf_cbor_uint(b, e[i].client);
        if (!err) err = tbuf_cbor_uint(b, e[i].clock);
        if (!err)
            err =
                e[i].state ? tbuf_cbor_bytes(b, e[i].state, strlen(e[i].state)) : tbuf_cbor_null(b);
    }
    ck_assert_int_eq(err, TDM_OK);
}

static tdm_err apply_lits(aw_state *aw, const lit *e, size_t n, uint64_t now, bool *rb)
{
    tbuf b;
    build(&b, e, n);
    tdm_err err = aw_apply(aw, b.data, b.len, now, rb);
    tbuf_fini(&b);
    return err;
}

/* An update of `count` clients first, first + 1, ... at clock 1, each with
 * a 10-byte state (plain loop: few Check calls). */
static void build_many(tbuf *u, uint64_t first, size_t count)
{
    tbuf_reset(u);
    tdm_err e = tbuf_cbor_array(u, count);
    for (uint64_t i = 0; !e && i < count; i++) {
        if (!e) e = tbuf_cbor_array(u, 3);
        if (!e) e = tbuf_cbor_uint(u, first + i);
        if (!e) e = tbuf_cbor_uint(u, 1);
        if (!e) e = tbuf_cbor_bytes(u, "0123456789", 10);
    }
    ck_assert_int_eq(e, TDM_OK);
}

/* Everything observable about `aw` for the given ids, serialized, so "nothing
 * changed" is one memcmp. */
static void snap(const aw_state *aw, const uint64_t *ids, size_t n, tbuf *out)
{
    tbuf_init(out, 0);
    size_t cnt = aw_count(aw);
    tdm_err err = tbuf_append(out, &cnt, sizeof cnt);
    for (size_t i = 0; !err && i < n; i++) {
        uint32_t c = 0;
        aw_entry e;
        memset(&e, 0, sizeof e);
        int r[2] = {aw_get_clock(aw, ids[i], &c), aw_get(aw, ids[i], &e)};
        if (!err) err = tbuf_append(out, r, sizeof r);
        if (!err) err = tbuf_append(out, &c, sizeof c);
        if (!err) err = tbuf_append(out, &e.len, sizeof e.len);
        if (!err) err = tbuf_append(out, &e.updated_ms, sizeof e.updated_ms);
        if (!err) err = tbuf_append(out, e.state, e.len);
    }
    ck_assert_int_eq(err, TDM_OK);
}

/* A view as sorted (client, clock, state) text, for comparing replicas. */
typedef struct vent {
    uint64_t client;
    uint32_t clock;
    const uint8_t *state;
    size_t len;
} vent;

static int vent_cmp(const void *a, const void *b)
{
    uint64_t x = ((const vent *)a)->client, y = ((const vent *)b)->client;
    return (x > y) - (x < y);
}

static size_t view(const aw_state *aw, vent *v, size_t cap)
{
    size_t pos = 0, n = 0;
    aw_entry e;
    while (aw_next(aw, &pos, &e)) {
        ck_assert_uint_lt(n, cap);
        v[n++] = (vent){e.client, e.clock, e.state, e.len};
    }
    ck_assert_uint_eq(n, aw_count(aw));
    qsort(v, n, sizeof *v, vent_cmp);
    return n;
}

static void expect_same_view(const aw_state *a, const aw_state *b)
{
    vent va[64], vb[64];
    size_t na = view(a, va, 64), nb = view(b, vb, 64);
    ck_assert_uint_eq(na, nb);
    for (size_t i = 0; i < na; i++) {
        ck_assert_uint_eq(va[i].client, vb[i].client);
        ck_assert_uint_eq(va[i].clock, vb[i].clock);
        ck_assert_uint_eq(va[i].len, vb[i].len);
        if (va[i].len) ck_assert_mem_eq(va[i].state, vb[i].state, va[i].len);
    }
}

static uint64_t rng_next(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15u;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------- local */

START_TEST(test_set_clear)
{
    aw_state *a = mk(7);
    rec r;
    rec_reset(&r);
    aw_set_observer(a, on_change, &r);
    ck_assert_uint_eq(aw_client(a), 7);
    ck_assert_uint_eq(aw_count(a), 0);
    expect_absent(a, 7);
    ck_assert_uint_eq(clock_of(a, 7), 0);
    ck_assert_int_eq(aw_get_clock(a, 8, &(uint32_t){0}), TDM_ENOTFOUND);

    ck_assert_int_eq(aw_set_local(a, S("{\"x\":1}"), 100), TDM_OK);
    ck_assert_uint_eq(aw_count(a), 1);
    expect_state(a, 7, "{\"x\":1}", 1);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.origin, AW_ORIGIN_LOCAL);
    ck_assert_uint_eq(r.na, 1);
    ck_assert_uint_eq(r.added[0], 7);

    /* same bytes: clock bumps, no event */
    ck_assert_int_eq(aw_set_local(a, S("{\"x\":1}"), 200), TDM_OK);
    expect_state(a, 7, "{\"x\":1}", 2);
    ck_assert_int_eq(r.calls, 1);
    /* different bytes: updated */
    ck_assert_int_eq(aw_set_local(a, S("{\"x\":2}"), 300), TDM_OK);
    expect_state(a, 7, "{\"x\":2}", 3);
    ck_assert_int_eq(r.calls, 2);
    ck_assert_uint_eq(r.nu, 1);
    ck_assert_uint_eq(r.na + r.nr, 0);
    aw_entry e;
    ck_assert_int_eq(aw_get(a, 7, &e), TDM_OK);
    ck_assert_uint_eq(e.updated_ms, 300);

    /* clear: removed; clear again bumps without an event */
    ck_assert_int_eq(aw_clear_local(a, 400), TDM_OK);
    ck_assert_uint_eq(aw_count(a), 0);
    expect_absent(a, 7);
    ck_assert_uint_eq(clock_of(a, 7), 4);
    ck_assert_int_eq(r.calls, 3);
    ck_assert_uint_eq(r.nr, 1);
    ck_assert_uint_eq(r.removed[0], 7);
    ck_assert_int_eq(aw_clear_local(a, 500), TDM_OK);
    ck_assert_uint_eq(clock_of(a, 7), 5);
    ck_assert_int_eq(r.calls, 3);

    /* an empty state is present */
    ck_assert_int_eq(aw_set_local(a, NULL, 0, 600), TDM_OK);
    ck_assert_uint_eq(aw_count(a), 1);
    expect_state(a, 7, "", 6);
    ck_assert_int_eq(r.calls, 4);
    ck_assert_uint_eq(r.na, 1);

    /* bad arguments and caps change nothing */
    ck_assert_int_eq(aw_set_local(a, NULL, 3, 700), TDM_EINVAL);
    uint8_t *big = calloc(AW_MAX_STATE_BYTES + 1, 1);
    ck_assert_int_eq(aw_set_local(a, big, AW_MAX_STATE_BYTES + 1, 700), TDM_ETOOBIG);
    expect_state(a, 7, "", 6);
    ck_assert_int_eq(aw_set_local(a, big, AW_MAX_STATE_BYTES, 700), TDM_OK);
    ck_assert_uint_eq(clock_of(a, 7), 7);
    free(big);
    ck_assert_int_eq(aw_set_local(NULL, NULL, 0, 0), TDM_EINVAL);
    ck_assert_int_eq(aw_clear_local(NULL, 0), TDM_EINVAL);
    aw_free(a);
    aw_free(NULL);

    aw_opts bad = {.client = 1, .max_clients = ((size_t)1 << 30) + 1};
    aw_state *x = NULL;
    ck_assert_int_eq(aw_new_opts(&bad, &x), TDM_EINVAL);
    ck_assert_ptr_null(x);
    ck_assert_int_eq(aw_new_opts(NULL, &x), TDM_EINVAL);
}
END_TEST

/* ------------------------------------------------------------- remote */

START_TEST(test_clock_order)
{
    aw_state *a = mk(1), *b = mk(2);
    tbuf u1, u2, u3;
    tbuf_init(&u1, 0);
    tbuf_init(&u2, 0);
    tbuf_init(&u3, 0);
    ck_assert_int_eq(aw_set_local(a, S("one"), 0), TDM_OK);
    ck_assert_int_eq(aw_encode_local(a, &u1), TDM_OK);
    ck_assert_int_eq(aw_set_local(a, S("two"), 1), TDM_OK);
    ck_assert_int_eq(aw_encode_local(a, &u2), TDM_OK);
    ck_assert_int_eq(aw_set_local(a, S("three"), 2), TDM_OK);
    ck_assert_int_eq(aw_encode_local(a, &u3), TDM_OK);

    /* newest first, then stale ones: ignored */
    ck_assert_int_eq(aw_apply(b, u3.data, u3.len, 10, NULL), TDM_OK);
    expect_state(b, 1, "three", 3);
    ck_assert_int_eq(aw_apply(b, u1.data, u1.len, 20, NULL), TDM_OK);
    ck_assert_int_eq(aw_apply(b, u2.data, u2.len, 30, NULL), TDM_OK);
    expect_state(b, 1, "three", 3);
    aw_entry e;
    ck_assert_int_eq(aw_get(b, 1, &e), TDM_OK);
    ck_assert_uint_eq(e.updated_ms, 10); /* stale updates do not renew */
    /* equal clock with other bytes: ignored; applying twice is idempotent */
    lit same_clock = {1, 3, "forged"};
    ck_assert_int_eq(apply_lits(b, &same_clock, 1, 40, NULL), TDM_OK);
    expect_state(b, 1, "three", 3);
    ck_assert_int_eq(aw_apply(b, u3.data, u3.len, 50, NULL), TDM_OK);
    expect_state(b, 1, "three", 3);
    /* in order on a fresh replica */
    aw_state *c = mk(3);
    ck_assert_int_eq(aw_apply(c, u1.data, u1.len, 0, NULL), TDM_OK);
    expect_state(c, 1, "one", 1);
    ck_assert_int_eq(aw_apply(c, u2.data, u2.len, 0, NULL), TDM_OK);
    expect_state(c, 1, "two", 2);
    ck_assert_int_eq(aw_apply(c, u1.data, u1.len, 0, NULL), TDM_OK);
    expect_state(c, 1, "two", 2);
    /* an unknown client is accepted at clock 0 */
    lit zero = {9, 0, "z"};
    ck_assert_int_eq(apply_lits(c, &zero, 1, 0, NULL), TDM_OK);
    expect_state(c, 9, "z", 0);
    /* the maximum clock */
    lit maxc = {9, UINT32_MAX, "m"};
    ck_assert_int_eq(apply_lits(c, &maxc, 1, 0, NULL), TDM_OK);
    expect_state(c, 9, "m", UINT32_MAX);
    tbuf_fini(&u1);
    tbuf_fini(&u2);
    tbuf_fini(&u3);
    aw_free(a);
    aw_free(b);
    aw_free(c);
}
END_TEST

START_TEST(test_removal_by_null)
{
    aw_state *b = mk(2);
    rec r;
    rec_reset(&r);
    aw_set_observer(b, on_change, &r);
    lit live = {1, 5, "here"};
    ck_assert_int_eq(apply_lits(b, &live, 1, 0, NULL), TDM_OK);
    ck_assert_uint_eq(aw_count(b), 1);
    ck_assert_int_eq(r.calls, 1);

    /* lower clock null: ignored */
    lit low = {1, 4, NULL};
    ck_assert_int_eq(apply_lits(b, &low, 1, 0, NULL), TDM_OK);
    expect_state(b, 1, "here", 5);
    /* higher clock null: removed, clock remembered */
    lit gone = {1, 6, NULL};
    ck_assert_int_eq(apply_lits(b, &gone, 1, 0, NULL), TDM_OK);
    expect_absent(b, 1);
    ck_assert_uint_eq(aw_count(b), 0);
    ck_assert_uint_eq(clock_of(b, 1), 6);
    ck_assert_int_eq(r.calls, 2);
    ck_assert_int_eq(r.origin, AW_ORIGIN_REMOTE);
    ck_assert_uint_eq(r.nr, 1);
    ck_assert_uint_eq(r.removed[0], 1);
    /* the tombstone keeps stale states out, equal-clock null is a no-op */
    ck_assert_int_eq(apply_lits(b, &live, 1, 0, NULL), TDM_OK);
    ck_assert_int_eq(apply_lits(b, &gone, 1, 0, NULL), TDM_OK);
    lit stale = {1, 6, "again"};
    ck_assert_int_eq(apply_lits(b, &stale, 1, 0, NULL), TDM_OK);
    expect_absent(b, 1);
    ck_assert_int_eq(r.calls, 2);
    /* a higher clock brings it back: added */
    lit back = {1, 7, "back"};
    ck_assert_int_eq(apply_lits(b, &back, 1, 0, NULL), TDM_OK);
    expect_state(b, 1, "back", 7);
    ck_assert_int_eq(r.calls, 3);
    ck_assert_uint_eq(r.na, 1);
    /* the Yjs rule: null at the EQUAL clock removes a live entry */
    lit eq = {1, 7, NULL};
    ck_assert_int_eq(apply_lits(b, &eq, 1, 0, NULL), TDM_OK);
    expect_absent(b, 1);
    ck_assert_uint_eq(clock_of(b, 1), 7);
    ck_assert_int_eq(r.calls, 4);
    ck_assert_uint_eq(r.nr, 1);
    /* null about an unknown client: tombstone only, no event */
    lit unk = {50, 3, NULL};
    ck_assert_int_eq(apply_lits(b, &unk, 1, 0, NULL), TDM_OK);
    ck_assert_uint_eq(clock_of(b, 50), 3);
    expect_absent(b, 50);
    lit unk_old = {50, 2, "old"};
    ck_assert_int_eq(apply_lits(b, &unk_old, 1, 0, NULL), TDM_OK);
    expect_absent(b, 50);
    ck_assert_int_eq(r.calls, 4);
    aw_free(b);
}
END_TEST

START_TEST(test_remove_clients)
{
    /* A server S relays A, B, C to a peer P; A and B disconnect. */
    aw_state *a = mk(1), *bb = mk(2), *c = mk(3), *s = mk(100), *p = mk(200);
    ck_assert_int_eq(aw_set_local(a, S("a"), 0), TDM_OK);
    ck_assert_int_eq(aw_set_local(bb, S("b"), 0), TDM_OK);
    ck_assert_int_eq(aw_set_local(c, S("c"), 0), TDM_OK);
    ck_assert_int_eq(aw_set_local(bb, S("b2"), 0), TDM_OK);
    send_local(a, s, 0);
    send_local(bb, s, 0);
    send_local(c, s, 0);
    send(s, NULL, 0, p, 0);
    ck_assert_uint_eq(aw_count(p), 3);

    rec r;
    rec_reset(&r);
    aw_set_observer(s, on_change, &r);
    uint64_t drop[] = {1, 1, 999, 2};
    ck_assert_int_eq(aw_remove_clients(s, drop, 4, 10), TDM_OK);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.origin, AW_ORIGIN_REMOVE);
    ck_assert_uint_eq(r.nr, 2);
    ck_assert_uint_eq(r.removed[0], 1);
    ck_assert_uint_eq(r.removed[1], 2);
    ck_assert_uint_eq(aw_count(s), 1);
    ck_assert_uint_eq(clock_of(s, 1), 1); /* clocks unchanged */
    ck_assert_uint_eq(clock_of(s, 2), 2);

    /* the removal update: [client, clock, null], duplicates and unknown skipped */
    tbuf u;
    tbuf_init(&u, 0);
    ck_assert_int_eq(aw_encode(s, drop, 4, &u), TDM_OK);
    static const uint8_t want[] = {0x82, 0x83, 0x01, 0x01, 0xf6, 0x83, 0x02, 0x02, 0xf6};
    ck_assert_uint_eq(u.len, sizeof want);
    ck_assert_mem_eq(u.data, want, sizeof want);
    rec rp;
    rec_reset(&rp);
    aw_set_observer(p, on_change, &rp);
    ck_assert_int_eq(aw_apply(p, u.data, u.len, 10, NULL), TDM_OK);
    ck_assert_uint_eq(rp.nr, 2);
    ck_assert_uint_eq(aw_count(p), 1);
    expect_state(p, 3, "c", 1);
    tbuf_fini(&u);

    /* removing again or nothing: no event */
    ck_assert_int_eq(aw_remove_clients(s, drop, 4, 20), TDM_OK);
    ck_assert_int_eq(aw_remove_clients(s, NULL, 0, 20), TDM_OK);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(aw_remove_clients(s, NULL, 1, 20), TDM_EINVAL);

    /* the local client in the list is cleared with a clock bump */
    ck_assert_int_eq(aw_set_local(s, S("srv"), 0), TDM_OK);
    uint64_t self = 100;
    ck_assert_int_eq(aw_remove_clients(s, &self, 1, 30), TDM_OK);
    expect_absent(s, 100);
    ck_assert_uint_eq(clock_of(s, 100), 2);
    aw_free(a);
    aw_free(bb);
    aw_free(c);
    aw_free(s);
    aw_free(p);
}
END_TEST

/* ------------------------------------------------------------- timers */

START_TEST(test_expiry)
{
    aw_state *a = mk(1), *b = mk(2);
    rec r;
    rec_reset(&r);
    ck_assert_int_eq(aw_set_local(a, S("a"), 0), TDM_OK);
    ck_assert_int_eq(aw_set_local(b, S("b"), 0), TDM_OK);
    aw_set_observer(b, on_change, &r);
    send_local(a, b, 1000);
    ck_assert_int_eq(r.calls, 1);
    bool renew = true;
    ck_assert_int_eq(aw_tick(b, 1000 + AW_TIMEOUT_MS - 1, &renew), TDM_OK);
    expect_state(b, 1, "a", 1);
    ck_assert_int_eq(r.calls, 1);
    ck_assert(renew); /* b's own renewal is due */
    /* the local entry never expires */
    ck_assert_int_eq(aw_tick(b, 1000 + AW_TIMEOUT_MS, &renew), TDM_OK);
    expect_absent(b, 1);
    ck_assert_uint_eq(clock_of(b, 1), 1);
    ck_assert_uint_eq(aw_count(b), 1);
    ck_assert_int_eq(aw_get(b, 2, &(aw_entry){0}), TDM_OK);
    ck_assert_int_eq(r.calls, 2);
    ck_assert_int_eq(r.origin, AW_ORIGIN_TIMEOUT);
    ck_assert_uint_eq(r.nr, 1);
    ck_assert_uint_eq(r.removed[0], 1);

    /* renewals keep an entry alive: renewed every 15 s, checked every 3 s */
    aw_state *c = mk(3);
    uint64_t t = 0;
    ck_assert_int_eq(aw_set_local(a, S("a"), t), TDM_OK);
    send_local(a, c, t);
    for (t = 3000; t <= 120000; t += 3000) {
        bool rn = false;
        ck_assert_int_eq(aw_tick(a, t, &rn), TDM_OK);
        if (rn) send_local(a, c, t);
        ck_assert_int_eq(aw_tick(c, t, NULL), TDM_OK);
        expect_state(c, 1, "a", clock_of(a, 1));
    }
    /* the renewals stop: gone 30 s after the last one */
    aw_entry e;
    ck_assert_int_eq(aw_get(c, 1, &e), TDM_OK);
    uint64_t last = e.updated_ms;
    ck_assert_int_eq(aw_tick(c, last + AW_TIMEOUT_MS - 1, NULL), TDM_OK);
    ck_assert_int_eq(aw_get(c, 1, &e), TDM_OK);
    ck_assert_int_eq(aw_tick(c, last + AW_TIMEOUT_MS, NULL), TDM_OK);
    expect_absent(c, 1);
    /* time going backwards counts as no time */
    ck_assert_int_eq(aw_set_local(a, S("x"), 1000000), TDM_OK);
    send_local(a, c, 1000000);
    ck_assert_int_eq(aw_tick(c, 5, NULL), TDM_OK);
    expect_state(c, 1, "x", clock_of(a, 1));

    /* tombstones are forgotten after AW_TOMBSTONE_MS */
    lit gone = {77, 9, NULL};
    ck_assert_int_eq(apply_lits(c, &gone, 1, 2000000, NULL), TDM_OK);
    ck_assert_int_eq(aw_tick(c, 2000000 + AW_TOMBSTONE_MS - 1, NULL), TDM_OK);
    ck_assert_uint_eq(clock_of(c, 77), 9);
    ck_assert_int_eq(aw_tick(c, 2000000 + AW_TOMBSTONE_MS, NULL), TDM_OK);
    ck_assert_int_eq(aw_get_clock(c, 77, &(uint32_t){0}), TDM_ENOTFOUND);
    ck_assert_int_eq(aw_tick(NULL, 0, NULL), TDM_EINVAL);
    aw_free(a);
    aw_free(b);
    aw_free(c);
}
END_TEST

START_TEST(test_renewal)
{
    aw_state *a = mk(1);
    bool renew = true;
    ck_assert_int_eq(aw_tick(a, 100000, &renew), TDM_OK);
    ck_assert(!renew); /* nothing set: nothing to renew */
    ck_assert_int_eq(aw_set_local(a, S("s"), 1000), TDM_OK);
    ck_assert_int_eq(aw_tick(a, 1000 + AW_RENEW_MS - 1, &renew), TDM_OK);
    ck_assert(!renew);
    ck_assert_uint_eq(clock_of(a, 1), 1);
    ck_assert_int_eq(aw_tick(a, 1000 + AW_RENEW_MS, &renew), TDM_OK);
    ck_assert(renew);
    ck_assert_uint_eq(clock_of(a, 1), 2);
    expect_state(a, 1, "s", 2);
    /* the renewal update carries the bumped clock */
    tbuf u;
    tbuf_init(&u, 0);
    ck_assert_int_eq(aw_encode_local(a, &u), TDM_OK);
    static const uint8_t want[] = {0x81, 0x83, 0x01, 0x02, 0x41, 's'};
    ck_assert_uint_eq(u.len, sizeof want);
    ck_assert_mem_eq(u.data, want, sizeof want);
    tbuf_fini(&u);
    ck_assert_int_eq(aw_tick(a, 1000 + AW_RENEW_MS + 1, &renew), TDM_OK);
    ck_assert(!renew);
    ck_assert_int_eq(aw_tick(a, 1000 + 2 * AW_RENEW_MS, &renew), TDM_OK);
    ck_assert(renew);
    ck_assert_uint_eq(clock_of(a, 1), 3);
    /* a set restarts the timer */
    ck_assert_int_eq(aw_set_local(a, S("t"), 40000), TDM_OK);
    ck_assert_int_eq(aw_tick(a, 40000 + AW_RENEW_MS - 1, &renew), TDM_OK);
    ck_assert(!renew);
    /* cleared: no renewal */
    ck_assert_int_eq(aw_clear_local(a, 60000), TDM_OK);
    ck_assert_int_eq(aw_tick(a, 200000, &renew), TDM_OK);
    ck_assert(!renew);
    aw_free(a);
}
END_TEST

/* ------------------------------------------------------------- events */

START_TEST(test_events)
{
    aw_state *b = mk(2);
    rec r;
    rec_reset(&r);
    aw_set_observer(b, on_change, &r);
    lit first[] = {{30, 1, "c"}, {10, 1, "a"}, {20, 1, "b"}, {40, 1, "d"}};
    ck_assert_int_eq(apply_lits(b, first, 4, 0, NULL), TDM_OK);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_uint_eq(r.na, 4);
    ck_assert_uint_eq(r.nu + r.nr, 0);
    for (size_t i = 0; i < 4; i++) ck_assert_uint_eq(r.added[i], 10 * (i + 1)); /* ascending */

    /* one update with every kind: 10 updated, 20 renewed (same bytes, no
     * event), 30 removed, 40 stale (ignored), 50 added, 60 tombstone only */
    lit mixed[] = {{60, 2, NULL}, {50, 1, "e"}, {40, 1, "D"},
                   {30, 2, NULL}, {20, 2, "b"}, {10, 2, "A"}};
    ck_assert_int_eq(apply_lits(b, mixed, 6, 5, NULL), TDM_OK);
    ck_assert_int_eq(r.calls, 2);
    ck_assert_int_eq(r.origin, AW_ORIGIN_REMOTE);
    ck_assert_uint_eq(r.na, 1);
    ck_assert_uint_eq(r.added[0], 50);
    ck_assert_uint_eq(r.nu, 1);
    ck_assert_uint_eq(r.updated[0], 10);
    ck_assert_uint_eq(r.nr, 1);
    ck_assert_uint_eq(r.removed[0], 30);
    expect_state(b, 20, "b", 2);
    aw_entry e;
    ck_assert_int_eq(aw_get(b, 20, &e), TDM_OK);
    ck_assert_uint_eq(e.updated_ms, 5); /* the renewal counts */
    expect_state(b, 40, "d", 1);

    /* an update that changes nothing: no call */
    ck_assert_int_eq(apply_lits(b, mixed, 6, 6, NULL), TDM_OK);
    ck_assert_int_eq(r.calls, 2);
    lit none[1] = {{0, 0, NULL}};
    ck_assert_int_eq(apply_lits(b, none, 0, 6, NULL), TDM_OK);
    ck_assert_int_eq(r.calls, 2);

    /* removing the observer */
    aw_set_observer(b, NULL, NULL);
    lit more = {70, 1, "g"};
    ck_assert_int_eq(apply_lits(b, &more, 1, 7, NULL), TDM_OK);
    ck_assert_int_eq(r.calls, 2);
    aw_free(b);
}
END_TEST

/* An observer that tries to mutate (refused) and encodes (allowed). */
typedef struct reent {
    aw_state *aw;
    int calls;
    tbuf out;
} reent;

static void on_change_reenter(void *ud, const aw_change *ch)
{
    reent *x = ud;
    x->calls++;
    ck_assert_int_eq(aw_set_local(x->aw, S("no"), 0), TDM_EINVAL);
    ck_assert_int_eq(aw_clear_local(x->aw, 0), TDM_EINVAL);
    ck_assert_int_eq(aw_tick(x->aw, 0, NULL), TDM_EINVAL);
    ck_assert_int_eq(aw_remove_clients(x->aw, ch->added, ch->n_added, 0), TDM_EINVAL);
    ck_assert_int_eq(aw_apply(x->aw, (const uint8_t *)"\x80", 1, 0, NULL), TDM_EINVAL);
    ck_assert_int_eq(aw_encode(x->aw, ch->added, ch->n_added, &x->out), TDM_OK);
}

START_TEST(test_observer_reentry)
{
    reent x = {mk(2), 0, {0}};
    tbuf_init(&x.out, 0);
    aw_set_observer(x.aw, on_change_reenter, &x);
    lit l[] = {{5, 1, "five"}, {6, 1, "six"}};
    ck_assert_int_eq(apply_lits(x.aw, l, 2, 0, NULL), TDM_OK);
    ck_assert_int_eq(x.calls, 1);
    tbuf want;
    build(&want, l, 2);
    ck_assert_uint_eq(x.out.len, want.len);
    ck_assert_mem_eq(x.out.data, want.data, want.len);
    /* after the call, mutation works again */
    ck_assert_int_eq(aw_set_local(x.aw, S("ok"), 0), TDM_OK);
    ck_assert_int_eq(x.calls, 2);
    tbuf_fini(&want);
    tbuf_fini(&x.out);
    aw_free(x.aw);
}
END_TEST

/* ------------------------------------------------------------- local override */

START_TEST(test_local_override)
{
    aw_state *a = mk(1), *b = mk(2);
    rec r;
    rec_reset(&r);
    aw_set_observer(a, on_change, &r);
    ck_assert_int_eq(aw_set_local(a, S("mine"), 0), TDM_OK);
    ck_assert_int_eq(aw_set_local(a, S("mine"), 0), TDM_OK);
    ck_assert_int_eq(aw_set_local(a, S("mine"), 0), TDM_OK); /* clock 3 */
    int calls = r.calls;

    /* a forged entry about A with a higher clock: B takes it, A does not */
    lit forged = {1, 10, "forged"};
    ck_assert_int_eq(apply_lits(b, &forged, 1, 0, NULL), TDM_OK);
    expect_state(b, 1, "forged", 10);
    bool rb = false;
    ck_assert_int_eq(apply_lits(a, &forged, 1, 0, &rb), TDM_OK);
    ck_assert(rb);
    expect_state(a, 1, "mine", 11);
    ck_assert_int_eq(r.calls, calls); /* our view did not change */
    /* A's rebroadcast wins at B */
    send_local(a, b, 0);
    expect_state(b, 1, "mine", 11);

    /* equal clock with other bytes: ignored, no rebroadcast */
    lit eq = {1, 11, "other"};
    ck_assert_int_eq(apply_lits(a, &eq, 1, 0, &rb), TDM_OK);
    ck_assert(!rb);
    expect_state(a, 1, "mine", 11);
    /* lower clock: ignored */
    lit low = {1, 2, NULL};
    ck_assert_int_eq(apply_lits(a, &low, 1, 0, &rb), TDM_OK);
    ck_assert(!rb);
    /* equal-clock null (a server thought we left): keep our state, bump */
    lit eqnull = {1, 11, NULL};
    ck_assert_int_eq(apply_lits(a, &eqnull, 1, 0, &rb), TDM_OK);
    ck_assert(rb);
    expect_state(a, 1, "mine", 12);
    /* higher-clock null: the same */
    lit hinull = {1, 20, NULL};
    ck_assert_int_eq(apply_lits(a, &hinull, 1, 0, &rb), TDM_OK);
    ck_assert(rb);
    expect_state(a, 1, "mine", 21);
    ck_assert_int_eq(r.calls, calls);

    /* cleared locally, someone claims we are here: we stay absent, bump */
    ck_assert_int_eq(aw_clear_local(a, 0), TDM_OK); /* clock 22 */
    lit claim = {1, 30, "ghost"};
    ck_assert_int_eq(apply_lits(a, &claim, 1, 0, &rb), TDM_OK);
    ck_assert(rb);
    expect_absent(a, 1);
    ck_assert_uint_eq(clock_of(a, 1), 31);
    ck_assert_int_eq(apply_lits(b, &claim, 1, 0, NULL), TDM_OK);
    expect_state(b, 1, "ghost", 30);
    send_local(a, b, 0); /* [1, 31, null] removes the ghost */
    expect_absent(b, 1);
    /* equal-clock null while cleared: nothing to do */
    lit eqn2 = {1, 31, NULL};
    ck_assert_int_eq(apply_lits(a, &eqn2, 1, 0, &rb), TDM_OK);
    ck_assert(!rb);

    /* the clock saturates */
    lit top = {1, UINT32_MAX, "top"};
    ck_assert_int_eq(apply_lits(a, &top, 1, 0, &rb), TDM_OK);
    ck_assert(rb);
    ck_assert_uint_eq(clock_of(a, 1), UINT32_MAX);
    ck_assert_int_eq(aw_set_local(a, S("still"), 0), TDM_OK);
    expect_state(a, 1, "still", UINT32_MAX);
    aw_free(a);
    aw_free(b);
}
END_TEST

/* ------------------------------------------------------------- convergence */

/* n replicas each change their local state at random; updates (local ones,
 * and now and then a full state) are delivered in random order with
 * duplicates; at the end every queued update is delivered. */
static void converge(size_t n, uint64_t seed)
{
    enum { QCAP = 4096 };
    aw_state *r[3];
    for (size_t i = 0; i < n; i++) r[i] = mk(1000 + i);
    typedef struct msg {
        uint8_t *p;
        size_t len;
        size_t to;
    } msg;
    msg *q = calloc(QCAP, sizeof *q);
    size_t nq = 0, fails = 0, rebroadcasts = 0; /* counted: few Check calls in loops */
    for (int step = 0; step < 600; step++) {
        size_t who = (size_t)(rng_next(&seed) % n);
        uint64_t op = rng_next(&seed) % 10;
        tbuf b;
        tbuf_init(&b, 0);
        if (op < 6) {
            char s[32];
            int len = (int)(rng_next(&seed) % 8);
            for (int k = 0; k < len; k++) s[k] = (char)('a' + rng_next(&seed) % 3);
            fails += aw_set_local(r[who], (const uint8_t *)s, (size_t)len, 0) != TDM_OK;
            fails += aw_encode_local(r[who], &b) != TDM_OK;
        } else if (op < 8) {
            fails += aw_clear_local(r[who], 0) != TDM_OK;
            fails += aw_encode_local(r[who], &b) != TDM_OK;
        } else {
            fails += aw_encode(r[who], NULL, 0, &b) != TDM_OK;
        }
        for (size_t to = 0; to < n && nq + 2 < QCAP; to++) {
            if (to == who) continue;
            size_t copies = 1 + (rng_next(&seed) % 4 == 0);
            for (size_t c = 0; c < copies; c++) {
                q[nq].p = malloc(b.len);
                memcpy(q[nq].p, b.data, b.len);
                q[nq].len = b.len;
                q[nq].to = to;
                nq++;
            }
        }
        tbuf_fini(&b);
        /* deliver a few queued messages, picked at random */
        size_t deliver = (size_t)(rng_next(&seed) % 3);
        for (size_t d = 0; d < deliver && nq; d++) {
            size_t k = (size_t)(rng_next(&seed) % nq);
            bool rb = true;
            fails += aw_apply(r[q[k].to], q[k].p, q[k].len, 0, &rb) != TDM_OK;
            rebroadcasts += rb; /* nobody speaks for another client */
            free(q[k].p);
            q[k] = q[--nq];
        }
    }
    while (nq) {
        size_t k = (size_t)(rng_next(&seed) % nq);
        fails += aw_apply(r[q[k].to], q[k].p, q[k].len, 0, NULL) != TDM_OK;
        free(q[k].p);
        q[k] = q[--nq];
    }
    ck_assert_uint_eq(fails, 0);
    ck_assert_uint_eq(rebroadcasts, 0);
    for (size_t i = 1; i < n; i++) expect_same_view(r[0], r[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            ck_assert_uint_eq(clock_of(r[i], 1000 + j), clock_of(r[j], 1000 + j));
    free(q);
    for (size_t i = 0; i < n; i++) aw_free(r[i]);
}

START_TEST(test_converge_two)
{
    for (uint64_t seed = 1; seed <= 20; seed++) converge(2, seed);
}
END_TEST

START_TEST(test_converge_three)
{
    for (uint64_t seed = 100; seed <= 120; seed++) converge(3, seed);
}
END_TEST

START_TEST(test_converge_via_server)
{
    /* Three clients talk only through a server replica that relays every
     * update and, at the end, removes one dropped client. */
    aw_state *c[3] = {mk(1), mk(2), mk(3)}, *s = mk(0);
    const char *states[] = {"x", "yy", "zzz"};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(aw_set_local(c[i], (const uint8_t *)states[i], i + 1, 0), TDM_OK);
        send_local(c[i], s, 0);
    }
    for (size_t i = 0; i < 3; i++) send(s, NULL, 0, c[i], 0);
    for (size_t i = 0; i < 3; i++) expect_same_view(c[i], s);
    uint64_t gone = 2;
    ck_assert_int_eq(aw_remove_clients(s, &gone, 1, 0), TDM_OK);
    send(s, &gone, 1, c[0], 0);
    send(s, &gone, 1, c[2], 0);
    expect_same_view(c[0], s);
    expect_same_view(c[2], s);
    ck_assert_uint_eq(aw_count(s), 2);
    for (size_t i = 0; i < 3; i++) aw_free(c[i]);
    aw_free(s);
}
END_TEST

/* ------------------------------------------------------------- encoding */

START_TEST(test_roundtrip)
{
    aw_state *a = mk(5);
    ck_assert_int_eq(aw_set_local(a, S("hi"), 0), TDM_OK);
    tbuf u;
    tbuf_init(&u, 0);
    ck_assert_int_eq(aw_encode(a, NULL, 0, &u), TDM_OK);
    static const uint8_t want[] = {0x81, 0x83, 0x05, 0x01, 0x42, 'h', 'i'};
    ck_assert_uint_eq(u.len, sizeof want);
    ck_assert_mem_eq(u.data, want, sizeof want);

    /* many clients, large ids and clocks, empty and binary states */
    lit l[] = {
        {UINT64_MAX, UINT32_MAX, "max"}, {0, 0, ""}, {1u << 20, 300, "\x01\x02"}, {77, 1, NULL}};
    ck_assert_int_eq(apply_lits(a, l, 4, 0, NULL), TDM_OK);
    tbuf_reset(&u);
    ck_assert_int_eq(aw_encode(a, NULL, 0, &u), TDM_OK);
    aw_state *b = mk(9);
    ck_assert_int_eq(aw_apply(b, u.data, u.len, 0, NULL), TDM_OK);
    expect_same_view(a, b);
    ck_assert_uint_eq(aw_count(b), 4);
    expect_absent(b, 77); /* tombstones are not part of "all" */
    ck_assert_int_eq(aw_get_clock(b, 77, &(uint32_t){0}), TDM_ENOTFOUND);

    /* a list: tombstones as null, unknown skipped, duplicates once */
    uint64_t ids[] = {77, 12345, 5, 77};
    tbuf_reset(&u);
    ck_assert_int_eq(aw_encode(a, ids, 4, &u), TDM_OK);
    static const uint8_t want2[] = {0x82, 0x83, 0x18, 77,   0x01, 0xf6,
                                    0x83, 0x05, 0x01, 0x42, 'h',  'i'};
    ck_assert_uint_eq(u.len, sizeof want2);
    ck_assert_mem_eq(u.data, want2, sizeof want2);
    ck_assert_int_eq(aw_apply(b, u.data, u.len, 0, NULL), TDM_OK);
    ck_assert_uint_eq(clock_of(b, 77), 1);
    /* an empty list */
    tbuf_reset(&u);
    ck_assert_int_eq(aw_encode(a, ids, 0, &u), TDM_OK);
    ck_assert_uint_eq(u.len, 1);
    ck_assert_uint_eq(u.data[0], 0x80);
    /* the output limit: error, out unchanged */
    tbuf small;
    tbuf_init(&small, 4);
    ck_assert_int_eq(tbuf_append(&small, "ab", 2), TDM_OK);
    ck_assert_int_eq(aw_encode(a, NULL, 0, &small), TDM_ETOOBIG);
    ck_assert_uint_eq(small.len, 2);
    ck_assert_int_eq(aw_encode(a, NULL, 0, NULL), TDM_EINVAL);
    tbuf_fini(&small);
    tbuf_fini(&u);
    aw_free(a);
    aw_free(b);
}
END_TEST

START_TEST(test_encode_chunks)
{
    aw_state *a = mk_opts(1, 0, 3, 0), *b = mk_opts(2, 0, 3, 0);
    ck_assert_int_eq(aw_set_local(a, S("me"), 0), TDM_OK);
    for (uint64_t c = 10; c < 20; c++) {
        lit l = {c, 1, "s"};
        ck_assert_int_eq(apply_lits(a, &l, 1, 0, NULL), TDM_OK);
    }
    lit g[] = {{12, 2, NULL}, {19, 2, NULL}};
    ck_assert_int_eq(apply_lits(a, g, 2, 0, NULL), TDM_OK);
    ck_assert_uint_eq(aw_count(a), 9);
    tbuf u;
    tbuf_init(&u, 0);
    ck_assert_int_eq(aw_encode(a, NULL, 0, &u), TDM_ETOOBIG); /* 9 > 3 */
    ck_assert_uint_eq(u.len, 0);
    uint64_t four[] = {10, 11, 13, 14};
    ck_assert_int_eq(aw_encode(a, four, 4, &u), TDM_ETOOBIG);
    size_t pos = 0, chunks = 0;
    bool done = false;
    while (!done) {
        tbuf_reset(&u);
        ck_assert_int_eq(aw_encode_next(a, &pos, &u, &done), TDM_OK);
        ck_assert_int_eq(aw_apply(b, u.data, u.len, 0, NULL), TDM_OK);
        chunks++;
        ck_assert_uint_le(chunks, 3);
    }
    ck_assert_uint_eq(chunks, 3);
    /* b also holds its own (absent) local entry; compare the views */
    expect_same_view(a, b);
    /* past the end: an empty update */
    tbuf_reset(&u);
    ck_assert_int_eq(aw_encode_next(a, &pos, &u, &done), TDM_OK);
    ck_assert(done);
    ck_assert_uint_eq(u.len, 1);
    tbuf_fini(&u);
    aw_free(a);
    aw_free(b);
}
END_TEST

/* ------------------------------------------------------------- hostile input */

static const uint64_t watch[] = {1, 2, 3, 4, 5, 6, 7, 100};

/* A replica with some state; every hostile input below must leave it alone. */
static aw_state *victim(rec *r)
{
    aw_state *v = mk(100);
    ck_assert_int_eq(aw_set_local(v, S("local"), 0), TDM_OK);
    lit l[] = {{1, 5, "one"}, {2, 3, "two"}, {3, 7, NULL}};
    ck_assert_int_eq(apply_lits(v, l, 3, 0, NULL), TDM_OK);
    rec_reset(r);
    aw_set_observer(v, on_change, r);
    return v;
}

static void expect_rejected(const uint8_t *p, size_t n, tdm_err want)
{
    rec r;
    aw_state *v = victim(&r);
    tbuf before, after;
    snap(v, watch, sizeof watch / sizeof *watch, &before);
    bool rb = true;
    tdm_err e = aw_apply(v, p, n, 999, &rb);
    if (want == TDM_OK)
        ck_assert_int_ne(e, TDM_OK);
    else
        ck_assert_int_eq(e, want);
    ck_assert(!rb);
    snap(v, watch, sizeof watch / sizeof *watch, &after);
    ck_assert_uint_eq(before.len, after.len);
    ck_assert_mem_eq(before.data, after.data, before.len);
    ck_assert_int_eq(r.calls, 0);
    tbuf_fini(&before);
    tbuf_fini(&after);
    aw_free(v);
}

#define REJECT(want, ...)                                                                          \
    do {                                                                                           \
        static const uint8_t in_[] = {__VA_ARGS__};                                                \
        expect_rejected(in_, sizeof in_, want);                                                    \
    } while (0)

START_TEST(test_hostile_shapes)
{
    /* A valid first entry changing 1 and 2 precedes each bad part, so an
     * error that leaked would show. */
#define GOOD 0x83, 0x01, 0x06, 0x41, 'X'
    REJECT(TDM_EMALFORMED, 0x9a, 0xff, 0xff, 0xff, 0xff);             /* huge declared array */
    REJECT(TDM_EMALFORMED, 0x9b, 0, 0, 0, 1, 0, 0, 0, 0, GOOD);       /* 2^32 entries */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x9a, 0xff, 0xff, 0xff, 0xff); /* huge entry */
    REJECT(TDM_EMALFORMED, 0xa1, 0x01, 0x02);                         /* map, not array */
    REJECT(TDM_EMALFORMED, 0x41, 0x00);                               /* bytes, not array */
    REJECT(TDM_EMALFORMED, 0x9f, GOOD, 0xff);                         /* indefinite array */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x01);                         /* entry not an array */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x82, 0x02, 0x09);             /* 2 elements */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x84, 0x02, 0x09, 0xf6, 0x00); /* 4 elements */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x61, 'a', 0x09, 0xf6);  /* text client */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x22, 0x09, 0xf6);       /* negative client */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x29, 0xf6);       /* negative clock */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x1b, 0, 0, 0, 1, 0, 0, 0, 0,
           0xf6);                                                                 /* clock > u32 */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0xf9, 0x3c, 0x00, 0xf6);       /* float clock */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x09, 0x61, 'a');              /* text state */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x09, 0x05);                   /* int state */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x09, 0xf7);                   /* undefined */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x09, 0xf4);                   /* false */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x09, 0x80);                   /* array state */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x09, 0xd8, 0x18, 0x41, 0x00); /* tagged */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x09, 0x5f, 0x41, 0x00, 0xff); /* indef */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x02, 0x09, 0x45, 'a'); /* bytes run past end */
    REJECT(TDM_EMALFORMED, 0x81, GOOD, 0x00);                        /* trailing byte */
    REJECT(TDM_EMALFORMED, 0x81, GOOD, 0x81, GOOD);                  /* trailing update */
    REJECT(TDM_EMALFORMED, 0x82, GOOD, 0x83, 0x01, 0x07, 0xf6);      /* duplicate client */
    REJECT(TDM_EMALFORMED, 0x83, 0x83, 0x04, 0x01, 0xf6, GOOD, 0x83, 0x04, 0x02, 0x40);
    REJECT(TDM_EMALFORMED, 0xff); /* stray break */
    REJECT(TDM_EMALFORMED, 0x1c); /* reserved info */
#undef GOOD
    expect_rejected(NULL, 0, TDM_EMALFORMED); /* empty input */
    rec r;
    aw_state *v = victim(&r);
    ck_assert_int_eq(aw_apply(v, NULL, 3, 0, NULL), TDM_EINVAL);
    ck_assert_int_eq(aw_apply(NULL, (const uint8_t *)"\x80", 1, 0, NULL), TDM_EINVAL);
    aw_free(v);
}
END_TEST

START_TEST(test_hostile_sizes)
{
    /* a state one byte over the cap, after a good entry */
    tbuf b;
    tbuf_init(&b, 0);
    uint8_t *big = calloc(AW_MAX_STATE_BYTES + 1, 1);
    ck_assert_int_eq(tbuf_cbor_array(&b, 2), TDM_OK);
    lit good = {1, 6, "X"};
    tbuf g;
    build(&g, &good, 1);
    ck_assert_int_eq(tbuf_append(&b, g.data + 1, g.len - 1), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_array(&b, 3), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_uint(&b, 2), TDM_OK);
    ck_assert_int_eq(tbuf_cbor_uint(&b, 9), TDM_OK);
    size_t mark = b.len;
    ck_assert_int_eq(tbuf_cbor_bytes(&b, big, AW_MAX_STATE_BYTES + 1), TDM_OK);
    expect_rejected(b.data, b.len, TDM_ETOOBIG);
    /* exactly the cap is fine */
    b.len = mark;
    ck_assert_int_eq(tbuf_cbor_bytes(&b, big, AW_MAX_STATE_BYTES), TDM_OK);
    rec r;
    aw_state *v = victim(&r);
    ck_assert_int_eq(aw_apply(v, b.data, b.len, 0, NULL), TDM_OK);
    aw_entry e;
    ck_assert_int_eq(aw_get(v, 2, &e), TDM_OK);
    ck_assert_uint_eq(e.len, AW_MAX_STATE_BYTES);
    aw_free(v);

    /* too many entries (all present in the bytes) */
    build_many(&b, 1000, AW_MAX_UPDATE_ENTRIES + 1);
    expect_rejected(b.data, b.len, TDM_ETOOBIG);
    /* exactly the cap is fine */
    build_many(&b, 1000, AW_MAX_UPDATE_ENTRIES);
    v = victim(&r);
    ck_assert_int_eq(aw_apply(v, b.data, b.len, 0, NULL), TDM_OK);
    ck_assert_uint_eq(aw_count(v), 3 + AW_MAX_UPDATE_ENTRIES);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_uint_eq(r.na, 64); /* (recorder keeps 64) */
    aw_free(v);
    free(big);
    tbuf_fini(&g);
    tbuf_fini(&b);
}
END_TEST

START_TEST(test_hostile_truncations)
{
    /* every proper prefix of a valid multi-entry update is an error */
    lit l[] = {{1, 9, "new one"}, {6, 1, "six"}, {2, 4, NULL}, {300, 70000, ""}};
    tbuf b;
    build(&b, l, 4);
    for (size_t n = 0; n < b.len; n++) expect_rejected(b.data, n, TDM_OK);
    /* and the whole thing applies */
    rec r;
    aw_state *v = victim(&r);
    ck_assert_int_eq(aw_apply(v, b.data, b.len, 0, NULL), TDM_OK);
    expect_state(v, 1, "new one", 9);
    expect_absent(v, 2);
    expect_state(v, 300, "", 70000);
    aw_free(v);
    /* every single-byte corruption either applies or changes nothing */
    for (size_t i = 0; i < b.len; i++) {
        for (int x = 0; x < 256; x += 17) {
            uint8_t *c = malloc(b.len);
            memcpy(c, b.data, b.len);
            c[i] = (uint8_t)x;
            v = victim(&r);
            tbuf before, after;
            snap(v, watch, sizeof watch / sizeof *watch, &before);
            if (aw_apply(v, c, b.len, 0, NULL) != TDM_OK) {
                snap(v, watch, sizeof watch / sizeof *watch, &after);
                ck_assert_uint_eq(before.len, after.len);
                ck_assert_mem_eq(before.data, after.data, before.len);
                ck_assert_int_eq(r.calls, 0);
                tbuf_fini(&after);
            }
            tbuf_fini(&before);
            aw_free(v);
            free(c);
        }
    }
    tbuf_fini(&b);
}
END_TEST

/* ------------------------------------------------------------- caps */

START_TEST(test_caps)
{
    /* max_clients 4: tombstones are evicted oldest first; live ones never */
    aw_state *a = mk_opts(100, 4, 0, 0);
    lit l4[] = {{1, 1, "a"}, {2, 1, "b"}, {3, 1, "c"}, {4, 1, "d"}};
    ck_assert_int_eq(apply_lits(a, l4, 4, 0, NULL), TDM_OK);
    ck_assert_int_eq(aw_set_local(a, S("me"), 0), TDM_OK); /* local not counted */
    uint64_t ids[] = {1, 2, 3, 4, 5, 6, 100};
    tbuf before, after;
    snap(a, ids, 7, &before);
    lit five = {5, 1, "e"};
    ck_assert_int_eq(apply_lits(a, &five, 1, 10, NULL), TDM_ETOOBIG);
    snap(a, ids, 7, &after);
    ck_assert_mem_eq(before.data, after.data, before.len);
    tbuf_fini(&before);
    tbuf_fini(&after);
    /* 2 removed at t=20, 1 at t=30: 2 is the oldest tombstone */
    lit r2 = {2, 2, NULL}, r1 = {1, 2, NULL};
    ck_assert_int_eq(apply_lits(a, &r2, 1, 20, NULL), TDM_OK);
    ck_assert_int_eq(apply_lits(a, &r1, 1, 30, NULL), TDM_OK);
    ck_assert_int_eq(apply_lits(a, &five, 1, 40, NULL), TDM_OK);
    ck_assert_int_eq(aw_get_clock(a, 2, &(uint32_t){0}), TDM_ENOTFOUND);
    ck_assert_uint_eq(clock_of(a, 1), 2);
    expect_state(a, 5, "e", 1);
    /* a tombstone touched by the same update is not evicted; two new need
     * two slots but only one tombstone (1) is left: refused */
    lit two_new[] = {{6, 1, "f"}, {7, 1, "g"}};
    ck_assert_int_eq(apply_lits(a, two_new, 2, 50, NULL), TDM_ETOOBIG);
    lit with1[] = {{1, 3, NULL}, {6, 1, "f"}};
    ck_assert_int_eq(apply_lits(a, with1, 2, 50, NULL), TDM_ETOOBIG);
    ck_assert_uint_eq(clock_of(a, 1), 2);
    lit revive[] = {{1, 3, "A"}, {6, 1, NULL}};
    ck_assert_int_eq(apply_lits(a, revive, 2, 50, NULL), TDM_ETOOBIG);
    expect_absent(a, 1);
    aw_free(a);

    /* a batch eviction whose victims sit at the end of the table: 14 live
     * clients, then two tombstones made with an older `now` (time may step
     * back), then a new client evicts both (batch 16 / 8 = 2) */
    a = mk_opts(100, 16, 0, 0);
    for (uint64_t c = 1; c <= 14; c++) {
        lit l = {c, 1, "x"};
        ck_assert_int_eq(apply_lits(a, &l, 1, 1000, NULL), TDM_OK);
    }
    lit old2[] = {{15, 1, NULL}, {16, 1, NULL}};
    ck_assert_int_eq(apply_lits(a, old2, 2, 1, NULL), TDM_OK);
    lit n17 = {17, 1, "y"};
    ck_assert_int_eq(apply_lits(a, &n17, 1, 2000, NULL), TDM_OK);
    for (uint64_t c = 1; c <= 14; c++) expect_state(a, c, "x", 1);
    expect_state(a, 17, "y", 1);
    ck_assert_int_eq(aw_get_clock(a, 15, &(uint32_t){0}), TDM_ENOTFOUND);
    ck_assert_int_eq(aw_get_clock(a, 16, &(uint32_t){0}), TDM_ENOTFOUND);
    ck_assert_uint_eq(aw_count(a), 15);
    aw_free(a);

    /* max_total_bytes */
    a = mk_opts(100, 0, 0, 10);
    lit t1[] = {{1, 1, "12345"}, {2, 1, "12345"}};
    ck_assert_int_eq(apply_lits(a, t1, 2, 0, NULL), TDM_OK);
    lit t2 = {3, 1, "x"};
    ck_assert_int_eq(apply_lits(a, &t2, 1, 0, NULL), TDM_ETOOBIG);
    expect_absent(a, 3);
    lit t3[] = {{1, 2, "1234"}, {3, 1, "x"}}; /* frees one, adds one: fits */
    ck_assert_int_eq(apply_lits(a, t3, 2, 0, NULL), TDM_OK);
    lit t4 = {2, 2, "123456"};
    ck_assert_int_eq(apply_lits(a, &t4, 1, 0, NULL), TDM_ETOOBIG);
    expect_state(a, 2, "12345", 1);
    /* the local state does not count against it */
    ck_assert_int_eq(aw_set_local(a, S("a local state longer than ten"), 0), TDM_OK);
    /* expiry frees room */
    ck_assert_int_eq(aw_tick(a, AW_TIMEOUT_MS, NULL), TDM_OK);
    ck_assert_uint_eq(aw_count(a), 1);
    lit t5 = {4, 1, "0123456789"};
    ck_assert_int_eq(apply_lits(a, &t5, 1, AW_TIMEOUT_MS, NULL), TDM_OK);
    aw_free(a);
}
END_TEST

/* The churn model: what every client's entry must be. */
enum { CHURN_MAX = 3000 };
typedef struct churn {
    size_t n;
    uint32_t clock[CHURN_MAX];
    uint64_t updated[CHURN_MAX];
    bool live[CHURN_MAX];
    uint8_t val[CHURN_MAX];
    size_t nlive;
} churn;

/* Mismatches between `a` and the model (plain loops: one Check assertion per
 * call keeps this fast under the sanitizers). A client the model has as
 * removed may be forgotten (tombstone dropped or evicted) but must not hold
 * another clock. */
static size_t churn_mismatches(const aw_state *a, const churn *m)
{
    size_t bad = aw_count(a) != m->nlive;
    for (size_t k = 0; k < m->n; k++) {
        aw_entry en;
        uint32_t cc;
        tdm_err e = aw_get(a, k + 1, &en);
        if (m->live[k])
            bad += e != TDM_OK || en.clock != m->clock[k] || en.len != 1 ||
                   en.state[0] != m->val[k] || en.updated_ms != m->updated[k];
        else
            bad +=
                e != TDM_ENOTFOUND || (aw_get_clock(a, k + 1, &cc) == TDM_OK && cc != m->clock[k]);
    }
    return bad;
}

/* Random updates over n clients with a tracking cap: adds, changes,
 * removals, expiry by aw_tick every 1000 steps (the last ~400 steps' entries
 * survive), tombstone drops and evictions. */
static void churn_run(size_t n, size_t cap, int steps, uint64_t seed)
{
    aw_state *a = mk_opts(0, cap, 0, 0);
    static churn m;
    memset(&m, 0, sizeof m);
    m.n = n;
    uint64_t now = 0;
    size_t failures = 0, bad = 0;
    tbuf u;
    tbuf_init(&u, 0);
    for (int step = 1; step <= steps; step++) {
        uint64_t c = 1 + rng_next(&seed) % n;
        size_t i = (size_t)(c - 1);
        bool add = rng_next(&seed) % 3 != 0;
        now += 1;
        if (add && !m.live[i] && m.nlive >= cap / 2) add = false;
        uint8_t s = (uint8_t)('a' + rng_next(&seed) % 26);
        tbuf_reset(&u);
        tdm_err e = tbuf_cbor_array(&u, 1);
        if (!e) e = tbuf_cbor_array(&u, 3);
        if (!e) e = tbuf_cbor_uint(&u, c);
        if (!e) e = tbuf_cbor_uint(&u, m.clock[i] + 1);
        if (!e) e = add ? tbuf_cbor_bytes(&u, &s, 1) : tbuf_cbor_null(&u);
        if (!e) e = aw_apply(a, u.data, u.len, now, NULL);
        failures += e != TDM_OK;
        m.clock[i]++;
        m.updated[i] = now;
        if (add) {
            m.nlive += !m.live[i];
            m.live[i] = true;
            m.val[i] = s;
        } else {
            m.nlive -= m.live[i];
            m.live[i] = false;
        }
        if (step % 1000 == 0) {
            now += AW_TIMEOUT_MS - 400;
            failures += aw_tick(a, now, NULL) != TDM_OK;
            for (size_t k = 0; k < n; k++) {
                if (m.live[k] && now - m.updated[k] >= AW_TIMEOUT_MS) {
                    m.live[k] = false;
                    m.nlive--;
                }
            }
            bad += churn_mismatches(a, &m);
        } else if (step % 97 == 0) {
            bad += churn_mismatches(a, &m);
        }
    }
    tbuf_fini(&u);
    ck_assert_uint_eq(failures, 0);
    ck_assert_uint_eq(bad, 0);
    ck_assert_uint_eq(churn_mismatches(a, &m), 0);
    /* everything expires, then every tombstone is dropped */
    ck_assert_int_eq(aw_tick(a, now + AW_TOMBSTONE_MS + AW_TIMEOUT_MS, NULL), TDM_OK);
    ck_assert_int_eq(aw_tick(a, now + 2 * AW_TOMBSTONE_MS + AW_TIMEOUT_MS, NULL), TDM_OK);
    ck_assert_uint_eq(aw_count(a), 0);
    size_t left = 0;
    for (uint64_t c = 1; c <= n; c++) left += aw_get_clock(a, c, &(uint32_t){0}) == TDM_OK;
    ck_assert_uint_eq(left, 0);
    aw_free(a);
}

/* Churn through many clients with small caps: the hash table's deletion
 * (including probe runs that wrap around the table's end) and the eviction
 * must keep every entry findable with the right state. */
START_TEST(test_table_churn)
{
    churn_run(3000, 512, 40000, 42);
    churn_run(40, 8, 40000, 7);
    churn_run(200, 64, 40000, 9);
}
END_TEST

/* Memory held after a spike of clients goes back once they are gone. */
START_TEST(test_memory_shrinks)
{
    aw_state *a = mk(0);
    size_t base = aw_mem_bytes(a);
    tbuf u;
    tbuf_init(&u, 0);
    for (uint64_t round = 0; round < 4; round++) {
        build_many(&u, 1 + round * 100000, AW_MAX_UPDATE_ENTRIES);
        ck_assert_int_eq(aw_apply(a, u.data, u.len, 0, NULL), TDM_OK);
    }
    ck_assert_uint_eq(aw_count(a), 4 * AW_MAX_UPDATE_ENTRIES);
    size_t peak = aw_mem_bytes(a);
    ck_assert_uint_gt(peak, base + 4 * AW_MAX_UPDATE_ENTRIES * (10 + 8));
    ck_assert_int_eq(aw_tick(a, AW_TIMEOUT_MS, NULL), TDM_OK);
    ck_assert_uint_eq(aw_count(a), 0);
    ck_assert_int_eq(aw_tick(a, AW_TIMEOUT_MS + AW_TOMBSTONE_MS, NULL), TDM_OK);
    ck_assert_int_eq(aw_tick(a, AW_TIMEOUT_MS + AW_TOMBSTONE_MS + 1, NULL), TDM_OK);
    size_t after = aw_mem_bytes(a);
    ck_assert_uint_lt(after, base + 8192);
    /* still fully usable */
    lit l = {5, 9, "back"};
    ck_assert_int_eq(apply_lits(a, &l, 1, 0, NULL), TDM_OK);
    expect_state(a, 5, "back", 9);
    tbuf_fini(&u);
    aw_free(a);
}
END_TEST

START_TEST(test_iteration)
{
    aw_state *a = mk(50);
    size_t pos = 0;
    aw_entry e;
    ck_assert(!aw_next(a, &pos, &e));
    ck_assert_int_eq(aw_set_local(a, S("L"), 0), TDM_OK);
    lit l[] = {{1, 1, "a"}, {2, 1, NULL}, {3, 1, "c"}};
    ck_assert_int_eq(apply_lits(a, l, 3, 0, NULL), TDM_OK);
    pos = 0;
    uint64_t seen = 0;
    size_t n = 0;
    while (aw_next(a, &pos, &e)) {
        seen |= 1ull << (e.client % 64);
        n++;
    }
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(aw_count(a), 3);
    ck_assert_uint_eq(seen, (1ull << 1) | (1ull << 3) | (1ull << 50));
    ck_assert(!aw_next(a, &pos, &e));
    ck_assert_int_eq(aw_get(a, 1, NULL), TDM_EINVAL);
    ck_assert_int_eq(aw_get_clock(a, 1, NULL), TDM_EINVAL);
    aw_free(a);
}
END_TEST

static Suite *awareness_suite(void)
{
    Suite *s = suite_create("awareness");
    TCase *tl = tcase_create("local");
    tcase_add_test(tl, test_set_clear);
    tcase_add_test(tl, test_renewal);
    tcase_add_test(tl, test_iteration);
    suite_add_tcase(s, tl);
    TCase *tr = tcase_create("remote");
    tcase_add_test(tr, test_clock_order);
    tcase_add_test(tr, test_removal_by_null);
    tcase_add_test(tr, test_remove_clients);
    tcase_add_test(tr, test_expiry);
    tcase_add_test(tr, test_events);
    tcase_add_test(tr, test_observer_reentry);
    tcase_add_test(tr, test_local_override);
    suite_add_tcase(s, tr);
    TCase *tc = tcase_create("converge");
    tcase_add_test(tc, test_converge_two);
    tcase_add_test(tc, test_converge_three);
    tcase_add_test(tc, test_converge_via_server);
    suite_add_tcase(s, tc);
    TCase *tw = tcase_create("wire");
    tcase_add_test(tw, test_roundtrip);
    tcase_add_test(tw, test_encode_chunks);
    tcase_add_test(tw, test_hostile_shapes);
    tcase_add_test(tw, test_hostile_sizes);
    tcase_add_test(tw, test_hostile_truncations);
    suite_add_tcase(s, tw);
    TCase *tk = tcase_create("caps");
    tcase_add_test(tk, test_caps);
    tcase_add_test(tk, test_table_churn);
    tcase_add_test(tk, test_memory_shrinks);
    suite_add_tcase(s, tk);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(awareness_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
