/* fuzz_awareness.c - libFuzzer harness for awareness updates (crdt/awareness.h).
 *
 * The input is byte 0 (bit 0: small caps - 8 tracked clients, 32-byte
 * states, 4 entries per update, 96 state bytes in total - else the defaults;
 * bits 1..7: the local client id 1..128) followed by a script of records
 * [ctl:1][len:2 big-endian][len bytes]. ctl % 4:
 *   0: aw_apply the bytes (untrusted) at `now`;
 *   1: aw_tick at now += first byte * 1000 + len ms (the timeouts are
 *      30 s and 300 s);
 *   2: aw_set_local with the bytes (1: and 2: move the clock forwards only);
 *   3: aw_remove_clients of the ids named by the bytes (one byte each).
 * Invariants after every step:
 *   - errors are documented ones (aw_apply: TDM_EMALFORMED, TDM_ETOOBIG;
 *     aw_set_local: TDM_ETOOBIG) and leave the view and the local clock
 *     exactly as they were, with no event;
 *   - the observer's lists agree with the view: added and updated clients
 *     are present afterwards, removed ones absent, no client in two lists,
 *     count after == count before + added - removed, and a call without an
 *     event left the view's clients and states as they were;
 *   - applying accepted bytes to a fresh state (another local id) yields
 *     exactly the non-null entries of the update; encoding that state and
 *     applying the encoding to a third fresh state yields the same view,
 *     and re-encoding it gives the same bytes (a decoded update re-encodes
 *     to something that decodes the same);
 *   - aw_encode of the whole view and aw_encode_next in chunks decode to
 *     the view; every entry of the view has a clock aw_get_clock agrees with.
 * Nothing leaks (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "awareness.h"
#include "buf.h"
#include "error.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* The local id of the fresh states the round trips decode into. An update
 * may name it too; it is then the fresh state's own client and not stored. */
#define FA_FRESH_CLIENT ((uint64_t)1 << 62)
/* Entries a view may hold here: inputs are at most 4096 bytes and an entry
 * takes at least 4. */
#define FA_MAX_VIEW 2048

/* A copy of the view: entries sorted by client. */
typedef struct fa_view {
    size_t n;
    uint64_t client[FA_MAX_VIEW];
    uint32_t clock[FA_MAX_VIEW];
    tbuf state[FA_MAX_VIEW];
} fa_view;

static int fa_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void fa_view_take(aw_state *aw, fa_view *v)
{
    aw_entry e;
    size_t pos = 0;
    static uint64_t ids[FA_MAX_VIEW];
    size_t n = 0;
    while (aw_next(aw, &pos, &e)) {
        FZ_CHECK(n < FA_MAX_VIEW);
        ids[n++] = e.client;
    }
    FZ_CHECK(n == aw_count(aw));
    qsort(ids, n, sizeof ids[0], fa_cmp_u64);
    v->n = n;
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK(i == 0 || ids[i] != ids[i - 1]);
        FZ_OK(aw_get(aw, ids[i], &e));
        uint32_t clk;
        FZ_OK(aw_get_clock(aw, ids[i], &clk));
        FZ_CHECK(clk == e.clock);
        v->client[i] = ids[i];
        v->clock[i] = e.clock;
        tbuf_init(&v->state[i], 0);
        FZ_OK(tbuf_append(&v->state[i], e.state, e.len));
    }
}

static void fa_view_free(fa_view *v)
{
    for (size_t i = 0; i < v->n; i++) tbuf_fini(&v->state[i]);
    v->n = 0;
}

/* equal clients and states; clocks too when `clocks` */
static bool fa_view_eq(const fa_view *a, const fa_view *b, bool clocks)
{
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++) {
        if (a->client[i] != b->client[i]) return false;
        if (clocks && a->clock[i] != b->clock[i]) return false;
        if (!fz_buf_eq(&a->state[i], &b->state[i])) return false;
    }
    return true;
}

typedef struct fa_obs {
    aw_state *aw;
    int calls;
    size_t added, removed;
} fa_obs;

static void fa_observe(void *ud, const aw_change *ch)
{
    fa_obs *o = ud;
    o->calls++;
    o->added += ch->n_added;
    o->removed += ch->n_removed;
    FZ_CHECK(ch->n_added + ch->n_updated + ch->n_removed > 0);
    aw_entry e;
    for (size_t i = 0; i < ch->n_added; i++) FZ_OK(aw_get(o->aw, ch->added[i], &e));
    for (size_t i = 0; i < ch->n_updated; i++) FZ_OK(aw_get(o->aw, ch->updated[i], &e));
    for (size_t i = 0; i < ch->n_removed; i++)
        FZ_CHECK(aw_get(o->aw, ch->removed[i], &e) == TDM_ENOTFOUND);
    /* each client in one list at most */
    for (size_t i = 0; i < ch->n_added; i++) {
        for (size_t j = 0; j < ch->n_updated; j++) FZ_CHECK(ch->added[i] != ch->updated[j]);
        for (size_t j = 0; j < ch->n_removed; j++) FZ_CHECK(ch->added[i] != ch->removed[j]);
    }
    for (size_t i = 0; i < ch->n_updated; i++)
        for (size_t j = 0; j < ch->n_removed; j++) FZ_CHECK(ch->updated[i] != ch->removed[j]);
}

static aw_state *fa_new(uint64_t client, bool small)
{
    aw_opts o = {0};
    aw_state *aw = NULL;
    o.client = client;
    o.hash_seed = 0x5eed;
    if (small) {
        o.max_clients = 8;
        o.max_state_bytes = 32;
        o.max_update_entries = 4;
        o.max_total_bytes = 96;
    }
    FZ_OK(aw_new_opts(&o, &aw));
    return aw;
}

/* fa_check_roundtrip - accepted update bytes p[0..n): a fresh state (whose
 * local id `fresh` is not in the update) holds exactly its non-null entries,
 * and its encoding decodes to the same view and re-encodes identically. */
static void fa_check_roundtrip(const uint8_t *p, size_t n, bool small, uint64_t fresh)
{
    aw_state *f = fa_new(fresh, small), *g = fa_new(fresh, small);
    tdm_err e = aw_apply(f, p, n, 1000, NULL);
    if (e == TDM_ETOOBIG) goto done; /* fits the used state but not a fresh one? cannot happen */
    FZ_OK(e);
    tbuf enc, enc2;
    tbuf_init(&enc, 0);
    tbuf_init(&enc2, 0);
    FZ_OK(aw_encode(f, NULL, 0, &enc));
    FZ_OK(aw_apply(g, enc.data, enc.len, 1000, NULL));
    fa_view vf, vg;
    fa_view_take(f, &vf);
    fa_view_take(g, &vg);
    FZ_CHECK(fa_view_eq(&vf, &vg, true));
    FZ_OK(aw_encode(g, NULL, 0, &enc2));
    FZ_CHECK(fz_buf_eq(&enc, &enc2));
    fa_view_free(&vf);
    fa_view_free(&vg);
    tbuf_fini(&enc);
    tbuf_fini(&enc2);
done:
    aw_free(f);
    aw_free(g);
}

/* fa_check_encode - the whole view, encoded at once and in chunks, decodes to
 * the same view in a fresh state. */
static void fa_check_encode(aw_state *aw, const fa_view *v)
{
    tbuf all;
    tbuf_init(&all, 0);
    tdm_err e = aw_encode(aw, NULL, 0, &all);
    if (e == TDM_OK) {
        /* default caps: the view holds our local entry on top of the remote caps */
        aw_state *f = fa_new(FA_FRESH_CLIENT, false);
        fa_view vf;
        FZ_OK(aw_apply(f, all.data, all.len, 1, NULL));
        fa_view_take(f, &vf);
        FZ_CHECK(fa_view_eq(&vf, v, true));
        fa_view_free(&vf);
        aw_free(f);
    } else {
        FZ_CHECK(e == TDM_ETOOBIG && all.len == 0);
    }
    /* chunks */
    aw_state *f = fa_new(FA_FRESH_CLIENT, false);
    size_t pos = 0;
    bool done = false;
    for (int k = 0; !done; k++) {
        FZ_CHECK(k <= 600);
        tbuf_reset(&all);
        FZ_OK(aw_encode_next(aw, &pos, &all, &done));
        FZ_OK(aw_apply(f, all.data, all.len, 1, NULL));
    }
    fa_view vf;
    fa_view_take(f, &vf);
    FZ_CHECK(fa_view_eq(&vf, v, true));
    fa_view_free(&vf);
    aw_free(f);
    tbuf_fini(&all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    bool small = data[0] & 1;
    uint64_t local = (uint64_t)(data[0] >> 1) + 1;
    aw_state *aw = fa_new(local, small);
    fa_obs obs = {aw, 0, 0, 0};
    aw_set_observer(aw, fa_observe, &obs);
    uint64_t now = 1;
    size_t i = 1;
    int steps = 0;
    while (i + 3 <= size && steps++ < 64) {
        uint8_t ctl = data[i];
        size_t len = ((size_t)data[i + 1] << 8) | data[i + 2];
        i += 3;
        if (len > size - i) len = size - i;
        const uint8_t *p = data + i;
        i += len;

        fa_view *before = malloc(sizeof *before), *after = malloc(sizeof *after);
        FZ_CHECK(before && after);
        uint32_t lclock_before, lclock_after;
        fa_view_take(aw, before);
        FZ_OK(aw_get_clock(aw, local, &lclock_before));
        obs.calls = 0;
        obs.added = obs.removed = 0;
        tdm_err e = TDM_OK;
        bool flag = false;
        switch (ctl % 4) {
        case 0:
            e = aw_apply(aw, p, len, now, &flag);
            if (e != TDM_OK) {
                FZ_CHECK(e == TDM_EMALFORMED || e == TDM_ETOOBIG);
                FZ_CHECK(!flag);
            } else {
                fa_check_roundtrip(p, len, small, FA_FRESH_CLIENT);
            }
            break;
        case 1:
            now += (uint64_t)(len ? p[0] : 0) * 1000 + len;
            e = aw_tick(aw, now, &flag);
            FZ_OK(e);
            break;
        case 2:
            now += 1;
            e = aw_set_local(aw, p, len, now);
            if (e != TDM_OK) FZ_CHECK(e == TDM_ETOOBIG && len > (small ? 32u : AW_MAX_STATE_BYTES));
            break;
        case 3: {
            uint64_t ids[64];
            size_t k = len < 64 ? len : 64;
            for (size_t j = 0; j < k; j++) ids[j] = p[j];
            FZ_OK(aw_remove_clients(aw, ids, k, now));
            for (size_t j = 0; j < k; j++) {
                aw_entry ent;
                FZ_CHECK(aw_get(aw, ids[j], &ent) == TDM_ENOTFOUND);
            }
            break;
        }
        }
        fa_view_take(aw, after);
        FZ_OK(aw_get_clock(aw, local, &lclock_after));
        if (e != TDM_OK) {
            FZ_CHECK(obs.calls == 0);
            FZ_CHECK(fa_view_eq(before, after, true));
            FZ_CHECK(lclock_before == lclock_after);
        } else {
            FZ_CHECK(obs.calls <= 1);
            FZ_CHECK(after->n + obs.removed == before->n + obs.added);
            if (obs.calls == 0) FZ_CHECK(fa_view_eq(before, after, false));
            FZ_CHECK(lclock_after >= lclock_before);
            fa_check_encode(aw, after);
        }
        fa_view_free(before);
        fa_view_free(after);
        free(before);
        free(after);
    }
    aw_free(aw);
    return 0;
}
