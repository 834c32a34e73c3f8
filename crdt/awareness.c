/* awareness.c - per-document presence: the client table, local changes,
 * merging remote updates, expiry, and the CBOR wire form.
 *
 * Storage: the local entry lives in the aw_state itself; remote entries (live
 * and tombstones) sit in a dense array indexed by an open-addressing hash
 * table (linear probing, load <= 1/2, keyed by a seeded mix of the client id,
 * backward-shift deletion). Removing from the dense array swaps the last entry
 * into the hole.
 *
 * Atomicity: every mutating call first plans (decodes, classifies, allocates
 * every copy and scratch buffer it will need, grows the table) and only then
 * commits with steps that cannot fail. Growing the table or scratch space
 * changes nothing visible, so an error after it still leaves the view as it
 * was.
 */
#include "awareness.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_rd.h"

#define AW_CAP_LIMIT ((size_t)1 << 30)
#define AW_NONE      SIZE_MAX

typedef struct aw_ent {
    uint64_t client;
    uint64_t updated; /* last accepted change/renewal; removal time for tombstones */
    uint64_t mark;    /* scratch generation (eviction exclusion, encode dedupe) */
    uint8_t *state;   /* owned; NULL when len is 0 or not live */
    size_t len;
    uint32_t clock;
    bool live; /* false: tombstone (removed, clock remembered) */
} aw_ent;

/* What aw_apply will do with one decoded entry. */
enum { ACT_NONE, ACT_NEW, ACT_SET, ACT_REMOVE, ACT_CLOCK, ACT_LOCAL };
enum { EV_NONE, EV_ADDED, EV_UPDATED, EV_REMOVED };

typedef struct aw_plan {
    uint64_t client;
    const uint8_t *state; /* into the input */
    size_t len;
    uint8_t *copy; /* owned copy to install (NULL for an empty state) */
    size_t idx;    /* existing entry (ACT_SET, ACT_REMOVE, ACT_CLOCK) */
    uint32_t clock;
    bool null;
    bool install; /* replace the entry's bytes with copy/len */
    uint8_t act;
    uint8_t ev;
} aw_plan;

/* An eviction candidate (a tombstone). */
typedef struct aw_cand {
    uint64_t updated;
    uint64_t client;
    size_t idx;
} aw_cand;

struct aw_state {
    aw_ent local;
    aw_ent *ents; /* remote entries, n_ents valid */
    size_t n_ents, cap_ents;
    size_t n_live;    /* live remote entries */
    uint32_t *slots;  /* hash table: index + 1, 0 = empty */
    size_t n_slots;   /* 0 or a power of two >= 2 * n_ents */
    size_t rem_bytes; /* sum of live remote state lengths */
    aw_plan *plan;
    size_t cap_plan;
    uint64_t *ev; /* event lists: added, then updated, then removed */
    size_t cap_ev;
    aw_cand *cand;
    size_t cap_cand;
    uint64_t gen;
    uint64_t seed;
    size_t max_clients, max_state, max_entries, max_total;
    aw_observer obs;
    void *obs_ud;
    bool busy; /* an observer is running */
};

/* ------------------------------------------------------------ helpers */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

static uint32_t clock_bump(uint32_t c)
{
    return c == UINT32_MAX ? c : c + 1;
}

static uint64_t age(uint64_t now, uint64_t t)
{
    return now > t ? now - t : 0;
}

/* Make room for `need` elements of `elem` bytes in *p (capacity *cap), growing
 * geometrically but never beyond `limit` elements (need <= limit). */
static tdm_err grow(void **p, size_t *cap, size_t need, size_t elem, size_t limit)
{
    assert(need <= limit);
    if (need <= *cap) return TDM_OK;
    size_t nc = *cap ? *cap : 8;
    while (nc < need) nc *= 2;
    if (nc > limit) nc = limit;
    void *q = realloc(*p, nc * elem);
    if (!q) return TDM_ENOMEM;
    *p = q;
    *cap = nc;
    return TDM_OK;
}

/* ------------------------------------------------------------ hash table */

static size_t home(const aw_state *aw, uint64_t client)
{
    return (size_t)(mix64(client ^ aw->seed) & (aw->n_slots - 1));
}

static size_t tab_find(const aw_state *aw, uint64_t client)
{
    if (!aw->n_slots) return AW_NONE;
    size_t mask = aw->n_slots - 1;
    for (size_t i = home(aw, client);; i = (i + 1) & mask) {
        uint32_t s = aw->slots[i];
        if (!s) return AW_NONE;
        if (aw->ents[s - 1].client == client) return s - 1;
    }
}

static void tab_put(aw_state *aw, size_t idx)
{
    size_t mask = aw->n_slots - 1;
    size_t i = home(aw, aw->ents[idx].client);
    while (aw->slots[i]) i = (i + 1) & mask;
    aw->slots[i] = (uint32_t)(idx + 1);
}

/* The slot holding entry idx. */
static size_t tab_slot(const aw_state *aw, size_t idx)
{
    size_t mask = aw->n_slots - 1;
    size_t i = home(aw, aw->ents[idx].client);
    while (aw->slots[i] != idx + 1) i = (i + 1) & mask;
    return i;
}

/* Unlink entry idx from the table (Knuth's algorithm R: shift later members
 * of the probe run back into the hole when their home allows it). */
static void tab_unlink(aw_state *aw, size_t idx)
{
    size_t mask = aw->n_slots - 1;
    size_t i = tab_slot(aw, idx);
    aw->slots[i] = 0;
    for (size_t j = (i + 1) & mask; aw->slots[j]; j = (j + 1) & mask) {
        size_t h = home(aw, aw->ents[aw->slots[j] - 1].client);
        bool stays = i <= j ? (i < h && h <= j) : (h > i || h <= j);
        if (!stays) {
            aw->slots[i] = aw->slots[j];
            aw->slots[j] = 0;
            i = j;
        }
    }
}

/* Make room for `total` remote entries (array and table). Changes nothing
 * visible; on failure the table is as it was. */
static tdm_err tab_reserve(aw_state *aw, size_t total)
{
    assert(total <= aw->max_clients);
    tdm_err e = grow((void **)&aw->ents, &aw->cap_ents, total, sizeof *aw->ents, aw->max_clients);
    if (e) return e;
    if (aw->n_slots >= 2 * total && aw->n_slots) return TDM_OK;
    size_t ns = aw->n_slots ? aw->n_slots : 16;
    while (ns < 2 * total) ns *= 2;
    uint32_t *s = calloc(ns, sizeof *s);
    if (!s) return TDM_ENOMEM;
    free(aw->slots);
    aw->slots = s;
    aw->n_slots = ns;
    for (size_t i = 0; i < aw->n_ents; i++) tab_put(aw, i);
    return TDM_OK;
}

/* Remove remote entry idx entirely (tombstone or live). */
static void ent_drop(aw_state *aw, size_t idx)
{
    aw_ent *x = &aw->ents[idx];
    if (x->live) {
        aw->n_live--;
        aw->rem_bytes -= x->len;
    }
    free(x->state);
    tab_unlink(aw, idx);
    size_t last = aw->n_ents - 1;
    if (idx != last) {
        aw->slots[tab_slot(aw, last)] = (uint32_t)(idx + 1);
        aw->ents[idx] = aw->ents[last];
    }
    aw->n_ents--;
}

/* The tracked entry for client (local or remote, live or tombstone), or NULL. */
static aw_ent *find(aw_state *aw, uint64_t client)
{
    if (client == aw->local.client) return &aw->local;
    size_t i = tab_find(aw, client);
    return i == AW_NONE ? NULL : &aw->ents[i];
}

static const aw_ent *find_c(const aw_state *aw, uint64_t client)
{
    return find((aw_state *)aw, client);
}

/* Call the observer with the first na + nu + nr ids of aw->ev. */
static void emit(aw_state *aw, aw_origin o, size_t na, size_t nu, size_t nr)
{
    if (!aw->obs || na + nu + nr == 0) return;
    aw_change ch = {o, aw->ev, na, aw->ev + na, nu, aw->ev + na + nu, nr};
    aw->busy = true;
    aw->obs(aw->obs_ud, &ch);
    aw->busy = false;
}

/* ------------------------------------------------------------ lifetime */

tdm_err aw_new(uint64_t client, aw_state **out)
{
    aw_opts o = {.client = client};
    return aw_new_opts(&o, out);
}

tdm_err aw_new_opts(const aw_opts *opts, aw_state **out)
{
    if (!opts || !out) return TDM_EINVAL;
    if (opts->max_clients > AW_CAP_LIMIT || opts->max_update_entries > AW_CAP_LIMIT)
        return TDM_EINVAL;
    aw_state *aw = calloc(1, sizeof *aw);
    if (!aw) return TDM_ENOMEM;
    aw->local.client = opts->client;
    aw->max_clients = opts->max_clients ? opts->max_clients : AW_MAX_CLIENTS;
    aw->max_state = opts->max_state_bytes ? opts->max_state_bytes : AW_MAX_STATE_BYTES;
    aw->max_entries = opts->max_update_entries ? opts->max_update_entries : AW_MAX_UPDATE_ENTRIES;
    aw->max_total = opts->max_total_bytes ? opts->max_total_bytes : AW_MAX_TOTAL_BYTES;
    aw->seed = opts->hash_seed ? opts->hash_seed : mix64(opts->client ^ 0x9e3779b97f4a7c15u);
    *out = aw;
    return TDM_OK;
}

void aw_free(aw_state *aw)
{
    if (!aw) return;
    assert(!aw->busy);
    for (size_t i = 0; i < aw->n_ents; i++) free(aw->ents[i].state);
    free(aw->local.state);
    free(aw->ents);
    free(aw->slots);
    free(aw->plan);
    free(aw->ev);
    free(aw->cand);
    free(aw);
}

uint64_t aw_client(const aw_state *aw)
{
    return aw->local.client;
}

void aw_set_observer(aw_state *aw, aw_observer fn, void *ud)
{
    aw->obs = fn;
    aw->obs_ud = fn ? ud : NULL;
}

/* ------------------------------------------------------------ local */

tdm_err aw_set_local(aw_state *aw, const uint8_t *p, size_t n, uint64_t now)
{
    if (!aw || (!p && n) || aw->busy) return TDM_EINVAL;
    if (n > aw->max_state) return TDM_ETOOBIG;
    aw_ent *l = &aw->local;
    bool same = l->live && l->len == n && (n == 0 || memcmp(l->state, p, n) == 0);
    uint8_t *copy = NULL;
    if (!same && n) {
        copy = malloc(n);
        if (!copy) return TDM_ENOMEM;
        memcpy(copy, p, n);
    }
    if (grow((void **)&aw->ev, &aw->cap_ev, 1, sizeof *aw->ev, SIZE_MAX / 8)) {
        free(copy);
        return TDM_ENOMEM;
    }
    bool was = l->live;
    if (!same) {
        free(l->state);
        l->state = copy;
        l->len = n;
    }
    l->live = true;
    l->clock = clock_bump(l->clock);
    l->updated = now;
    aw->ev[0] = l->client;
    if (!was)
        emit(aw, AW_ORIGIN_LOCAL, 1, 0, 0);
    else if (!same)
        emit(aw, AW_ORIGIN_LOCAL, 0, 1, 0);
    return TDM_OK;
}

tdm_err aw_clear_local(aw_state *aw, uint64_t now)
{
    if (!aw || aw->busy) return TDM_EINVAL;
    if (grow((void **)&aw->ev, &aw->cap_ev, 1, sizeof *aw->ev, SIZE_MAX / 8)) return TDM_ENOMEM;
    aw_ent *l = &aw->local;
    bool was = l->live;
    free(l->state);
    l->state = NULL;
    l->len = 0;
    l->live = false;
    l->clock = clock_bump(l->clock);
    l->updated = now;
    aw->ev[0] = l->client;
    if (was) emit(aw, AW_ORIGIN_LOCAL, 0, 0, 1);
    return TDM_OK;
}

/* ------------------------------------------------------------ timers */

tdm_err aw_tick(aw_state *aw, uint64_t now, bool *renew)
{
    if (renew) *renew = false;
    if (!aw || aw->busy) return TDM_EINVAL;
    size_t n_exp = 0;
    for (size_t i = 0; i < aw->n_ents; i++)
        if (aw->ents[i].live && age(now, aw->ents[i].updated) >= AW_TIMEOUT_MS) n_exp++;
    if (grow((void **)&aw->ev, &aw->cap_ev, n_exp, sizeof *aw->ev, SIZE_MAX / 8)) return TDM_ENOMEM;

    /* Drop old tombstones first (back to front: a swap only moves an entry
     * already visited), then expire: fresh tombstones get updated = now. */
    for (size_t i = aw->n_ents; i-- > 0;)
        if (!aw->ents[i].live && age(now, aw->ents[i].updated) >= AW_TOMBSTONE_MS) ent_drop(aw, i);
    size_t k = 0;
    for (size_t i = 0; i < aw->n_ents; i++) {
        aw_ent *x = &aw->ents[i];
        if (!x->live || age(now, x->updated) < AW_TIMEOUT_MS) continue;
        aw->rem_bytes -= x->len;
        aw->n_live--;
        free(x->state);
        x->state = NULL;
        x->len = 0;
        x->live = false;
        x->updated = now;
        aw->ev[k++] = x->client;
    }
    assert(k == n_exp);

    aw_ent *l = &aw->local;
    if (l->live && age(now, l->updated) >= AW_RENEW_MS) {
        l->clock = clock_bump(l->clock);
        l->updated = now;
        if (renew) *renew = true;
    }
    emit(aw, AW_ORIGIN_TIMEOUT, 0, 0, k);
    return TDM_OK;
}

/* ------------------------------------------------------------ remote */

static int plan_cmp(const void *a, const void *b)
{
    uint64_t x = ((const aw_plan *)a)->client, y = ((const aw_plan *)b)->client;
    return (x > y) - (x < y);
}

static int cand_cmp(const void *a, const void *b)
{
    const aw_cand *x = a, *y = b;
    if (x->updated != y->updated) return x->updated < y->updated ? -1 : 1;
    return (x->client > y->client) - (x->client < y->client);
}

static int cand_idx_desc(const void *a, const void *b)
{
    size_t x = ((const aw_cand *)a)->idx, y = ((const aw_cand *)b)->idx;
    return (x < y) - (x > y);
}

/* Decode p[0..n) into aw->plan[0..*count), sorted by client. Allocates only
 * the plan array (bounded by the bytes present and max_entries). */
static tdm_err decode(aw_state *aw, const uint8_t *p, size_t n, size_t *count)
{
    cbr r;
    cbr_init(&r, p, n);
    size_t cnt;
    if (cbr_array(&r, &cnt)) return TDM_EMALFORMED;
    if (cnt > aw->max_entries) return TDM_ETOOBIG;
    if (grow((void **)&aw->plan, &aw->cap_plan, cnt, sizeof *aw->plan, aw->max_entries))
        return TDM_ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        aw_plan *q = &aw->plan[i];
        size_t k;
        uint64_t clock;
        if (cbr_array(&r, &k) || k != 3 || cbr_uint(&r, &q->client) || cbr_uint(&r, &clock) ||
            clock > UINT32_MAX)
            return TDM_EMALFORMED;
        q->clock = (uint32_t)clock;
        q->null = cbr_peek(&r) == CBR_NULL;
        q->state = NULL;
        q->len = 0;
        if (q->null) {
            if (cbr_null(&r)) return TDM_EMALFORMED;
        } else {
            if (cbr_bytes(&r, &q->state, &q->len)) return TDM_EMALFORMED;
            if (q->len > aw->max_state) return TDM_ETOOBIG;
        }
    }
    if (cbr_finish(&r)) return TDM_EMALFORMED;
    if (cnt > 1) qsort(aw->plan, cnt, sizeof *aw->plan, plan_cmp);
    for (size_t i = 1; i < cnt; i++)
        if (aw->plan[i].client == aw->plan[i - 1].client) return TDM_EMALFORMED;
    *count = cnt;
    return TDM_OK;
}

/* Decide what each plan entry does; sum the bytes freed and added and the new
 * entries needed. Marks every touched remote entry with `mark`. */
static void classify(aw_state *aw, size_t cnt, uint64_t mark, size_t *n_new, size_t *freed,
                     size_t *added)
{
    for (size_t i = 0; i < cnt; i++) {
        aw_plan *q = &aw->plan[i];
        q->act = ACT_NONE;
        q->ev = EV_NONE;
        q->copy = NULL;
        q->install = false;
        if (q->client == aw->local.client) {
            const aw_ent *l = &aw->local;
            if (q->clock > l->clock || (q->clock == l->clock && q->null && l->live))
                q->act = ACT_LOCAL;
            continue;
        }
        size_t idx = tab_find(aw, q->client);
        if (idx == AW_NONE) {
            q->act = ACT_NEW;
            (*n_new)++;
            if (!q->null) {
                q->ev = EV_ADDED;
                q->install = true;
                *added += q->len;
            }
            continue;
        }
        aw_ent *x = &aw->ents[idx];
        x->mark = mark;
        q->idx = idx;
        bool newer = q->clock > x->clock;
        if (q->null) {
            if (x->live && (newer || q->clock == x->clock)) {
                q->act = ACT_REMOVE;
                q->ev = EV_REMOVED;
                *freed += x->len;
            } else if (newer) {
                q->act = ACT_CLOCK;
            }
        } else if (newer) {
            q->act = ACT_SET;
            bool same = x->live && x->len == q->len &&
                        (q->len == 0 || memcmp(x->state, q->state, q->len) == 0);
            q->ev = !x->live ? EV_ADDED : same ? EV_NONE : EV_UPDATED;
            q->install = !same;
            if (q->install) {
                *added += q->len;
                if (x->live) *freed += x->len;
            }
        }
    }
}

static void plan_free_copies(aw_state *aw, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++) {
        free(aw->plan[i].copy);
        aw->plan[i].copy = NULL;
    }
}

/* Choose at least *need tombstones not marked with `mark` to evict, oldest
 * first, into aw->cand[0..*need), sorted by index descending. Evicts a batch
 * (up to max_clients / 8) at once, so a table kept full by churn sorts once
 * per batch, not once per new client. */
static tdm_err choose_evictions(aw_state *aw, uint64_t mark, size_t *need)
{
    size_t nc = 0;
    for (size_t i = 0; i < aw->n_ents; i++)
        if (!aw->ents[i].live && aw->ents[i].mark != mark) nc++;
    if (nc < *need) return TDM_ETOOBIG;
    if (grow((void **)&aw->cand, &aw->cap_cand, nc, sizeof *aw->cand, aw->max_clients))
        return TDM_ENOMEM;
    size_t batch = aw->max_clients / 8 < nc ? aw->max_clients / 8 : nc;
    if (*need < batch) *need = batch;
    nc = 0;
    for (size_t i = 0; i < aw->n_ents; i++) {
        const aw_ent *x = &aw->ents[i];
        if (!x->live && x->mark != mark) aw->cand[nc++] = (aw_cand){x->updated, x->client, i};
    }
    qsort(aw->cand, nc, sizeof *aw->cand, cand_cmp);
    qsort(aw->cand, *need, sizeof *aw->cand, cand_idx_desc);
    return TDM_OK;
}

/* Apply the planned changes; nothing here can fail. */
static void commit(aw_state *aw, size_t cnt, size_t n_evict, uint64_t now, bool *rebroadcast)
{
    for (size_t i = 0; i < cnt; i++) {
        aw_plan *q = &aw->plan[i];
        if (q->act == ACT_LOCAL) {
            aw->local.clock = clock_bump(q->clock);
            aw->local.updated = now;
            if (rebroadcast) *rebroadcast = true;
            continue;
        }
        if (q->act != ACT_SET && q->act != ACT_REMOVE && q->act != ACT_CLOCK) continue;
        aw_ent *x = &aw->ents[q->idx];
        if (x->live) {
            if (q->act == ACT_REMOVE || q->install) {
                aw->rem_bytes -= x->len;
                free(x->state);
                x->state = NULL;
                x->len = 0;
            }
            if (q->act == ACT_REMOVE) {
                x->live = false;
                aw->n_live--;
            }
        } else if (q->act == ACT_SET) {
            x->live = true;
            aw->n_live++;
        }
        if (q->install) {
            x->state = q->copy;
            x->len = q->len;
            aw->rem_bytes += q->len;
            q->copy = NULL;
        }
        x->clock = q->clock;
        x->updated = now;
    }
    /* Evict after the in-place changes: swaps move entries, invalidating idx. */
    for (size_t i = 0; i < n_evict; i++) ent_drop(aw, aw->cand[i].idx);
    for (size_t i = 0; i < cnt; i++) {
        aw_plan *q = &aw->plan[i];
        if (q->act != ACT_NEW) continue;
        aw_ent *x = &aw->ents[aw->n_ents];
        *x = (aw_ent){.client = q->client, .updated = now, .clock = q->clock, .live = !q->null};
        if (x->live) {
            x->state = q->copy;
            x->len = q->len;
            aw->rem_bytes += q->len;
            aw->n_live++;
            q->copy = NULL;
        }
        tab_put(aw, aw->n_ents++);
    }
}

/* Fill aw->ev with the plan's events, added then updated then removed. */
static void collect_events(aw_state *aw, size_t cnt, size_t out[3])
{
    size_t k = 0;
    for (int kind = EV_ADDED; kind <= EV_REMOVED; kind++) {
        size_t start = k;
        for (size_t i = 0; i < cnt; i++)
            if (aw->plan[i].ev == kind) aw->ev[k++] = aw->plan[i].client;
        out[kind - EV_ADDED] = k - start;
    }
}

tdm_err aw_apply(aw_state *aw, const uint8_t *p, size_t n, uint64_t now, bool *rebroadcast)
{
    if (rebroadcast) *rebroadcast = false;
    if (!aw || (!p && n) || aw->busy) return TDM_EINVAL;
    size_t cnt = 0;
    tdm_err e = decode(aw, p, n, &cnt);
    if (e) return e;

    size_t n_new = 0, freed = 0, added = 0, n_evict = 0;
    uint64_t mark = ++aw->gen;
    classify(aw, cnt, mark, &n_new, &freed, &added);
    if (added > freed && aw->rem_bytes + (added - freed) > aw->max_total) return TDM_ETOOBIG;
    if (aw->n_ents + n_new > aw->max_clients) {
        if (n_new > aw->max_clients) return TDM_ETOOBIG;
        n_evict = aw->n_ents + n_new - aw->max_clients;
        if ((e = choose_evictions(aw, mark, &n_evict))) return e;
    }
    if ((e = grow((void **)&aw->ev, &aw->cap_ev, cnt, sizeof *aw->ev, SIZE_MAX / 8))) return e;
    if ((e = tab_reserve(aw, aw->n_ents + n_new - n_evict))) return e;
    for (size_t i = 0; i < cnt; i++) {
        aw_plan *q = &aw->plan[i];
        if (!q->install || !q->len) continue;
        q->copy = malloc(q->len);
        if (!q->copy) {
            plan_free_copies(aw, i);
            return TDM_ENOMEM;
        }
        memcpy(q->copy, q->state, q->len);
    }

    commit(aw, cnt, n_evict, now, rebroadcast);
    size_t ev[3];
    collect_events(aw, cnt, ev);
    emit(aw, AW_ORIGIN_REMOTE, ev[0], ev[1], ev[2]);
    return TDM_OK;
}

tdm_err aw_remove_clients(aw_state *aw, const uint64_t *clients, size_t n, uint64_t now)
{
    if (!aw || (!clients && n) || aw->busy) return TDM_EINVAL;
    size_t most = aw->n_live + 1;
    if (grow((void **)&aw->ev, &aw->cap_ev, n < most ? n : most, sizeof *aw->ev, SIZE_MAX / 8))
        return TDM_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        aw_ent *x = find(aw, clients[i]);
        if (!x || !x->live) continue;
        free(x->state);
        x->state = NULL;
        if (x == &aw->local) {
            x->clock = clock_bump(x->clock);
        } else {
            aw->rem_bytes -= x->len;
            aw->n_live--;
        }
        x->len = 0;
        x->live = false;
        x->updated = now;
        aw->ev[k++] = x->client;
    }
    emit(aw, AW_ORIGIN_REMOVE, 0, 0, k);
    return TDM_OK;
}

/* ------------------------------------------------------------ encoding */

static tdm_err enc_ent(tbuf *out, const aw_ent *x)
{
    tdm_err e;
    if ((e = tbuf_cbor_array(out, 3)) || (e = tbuf_cbor_uint(out, x->client)) ||
        (e = tbuf_cbor_uint(out, x->clock)))
        return e;
    return x->live ? tbuf_cbor_bytes(out, x->state, x->len) : tbuf_cbor_null(out);
}

/* Position pos in "every entry" order: 0 is the local entry, i + 1 remote i. */
static const aw_ent *ent_at(const aw_state *aw, size_t pos)
{
    return pos == 0 ? &aw->local : &aw->ents[pos - 1];
}

tdm_err aw_encode(aw_state *aw, const uint64_t *clients, size_t n, tbuf *out)
{
    if (!aw || !out) return TDM_EINVAL;
    size_t start = out->len;
    tdm_err e = TDM_OK;
    if (!clients) {
        size_t cnt = aw_count(aw);
        if (cnt > aw->max_entries) return TDM_ETOOBIG;
        if ((e = tbuf_cbor_array(out, cnt))) goto fail;
        for (size_t pos = 0; pos <= aw->n_ents; pos++)
            if (ent_at(aw, pos)->live && (e = enc_ent(out, ent_at(aw, pos)))) goto fail;
        return TDM_OK;
    }
    uint64_t g1 = ++aw->gen, g2 = ++aw->gen;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        aw_ent *x = find(aw, clients[i]);
        if (x && x->mark != g1) {
            x->mark = g1;
            cnt++;
        }
    }
    if (cnt > aw->max_entries) return TDM_ETOOBIG;
    if ((e = tbuf_cbor_array(out, cnt))) goto fail;
    for (size_t i = 0; i < n; i++) {
        aw_ent *x = find(aw, clients[i]);
        if (!x || x->mark != g1) continue;
        x->mark = g2;
        if ((e = enc_ent(out, x))) goto fail;
    }
    return TDM_OK;
fail:
    out->len = start;
    return e;
}

tdm_err aw_encode_local(aw_state *aw, tbuf *out)
{
    if (!aw) return TDM_EINVAL;
    uint64_t c = aw->local.client;
    return aw_encode(aw, &c, 1, out);
}

tdm_err aw_encode_next(aw_state *aw, size_t *pos, tbuf *out, bool *done)
{
    if (!aw || !pos || !out || !done) return TDM_EINVAL;
    size_t total = aw->n_ents + 1, p = *pos < total ? *pos : total, end = p, cnt = 0;
    while (end < total && cnt < aw->max_entries) cnt += ent_at(aw, end++)->live;
    while (end < total && !ent_at(aw, end)->live) end++;
    size_t start = out->len;
    tdm_err e = tbuf_cbor_array(out, cnt);
    for (size_t i = p; !e && i < end; i++)
        if (ent_at(aw, i)->live) e = enc_ent(out, ent_at(aw, i));
    if (e) {
        out->len = start;
        return e;
    }
    *pos = end;
    *done = end == total;
    return TDM_OK;
}

/* ------------------------------------------------------------ queries */

size_t aw_count(const aw_state *aw)
{
    return aw->n_live + (aw->local.live ? 1 : 0);
}

static void fill(const aw_ent *x, aw_entry *e)
{
    *e = (aw_entry){x->client, x->clock, x->state, x->len, x->updated};
}

tdm_err aw_get(const aw_state *aw, uint64_t client, aw_entry *e)
{
    if (!aw || !e) return TDM_EINVAL;
    const aw_ent *x = find_c(aw, client);
    if (!x || !x->live) return TDM_ENOTFOUND;
    fill(x, e);
    return TDM_OK;
}

tdm_err aw_get_clock(const aw_state *aw, uint64_t client, uint32_t *clock)
{
    if (!aw || !clock) return TDM_EINVAL;
    const aw_ent *x = find_c(aw, client);
    if (!x) return TDM_ENOTFOUND;
    *clock = x->clock;
    return TDM_OK;
}

bool aw_next(const aw_state *aw, size_t *pos, aw_entry *e)
{
    while (*pos <= aw->n_ents) {
        const aw_ent *x = ent_at(aw, (*pos)++);
        if (x->live) {
            fill(x, e);
            return true;
        }
    }
    return false;
}
