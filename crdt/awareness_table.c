/* awareness_table.c - the aw_ client table: a dense entry array indexed by a
 * seeded open-addressing hash table, plus the helpers every aw_ source uses.
 * See awareness_internal.h. */
#include "awareness_internal.h"

#include <assert.h>
#include <stdlib.h>

uint64_t aw__mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

/* Make room for `need` elements of `elem` bytes in *p (capacity *cap), growing
 * geometrically but never beyond `limit` elements (need <= limit). */
tdm_err aw__grow(void **p, size_t *cap, size_t need, size_t elem, size_t limit)
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
    return (size_t)(aw__mix64(client ^ aw->seed) & (aw->n_slots - 1));
}

size_t aw__tab_find(const aw_state *aw, uint64_t client)
{
    if (!aw->n_slots) return AW_NONE;
    size_t mask = aw->n_slots - 1;
    for (size_t i = home(aw, client);; i = (i + 1) & mask) {
        uint32_t s = aw->slots[i];
        if (!s) return AW_NONE;
        if (aw->ents[s - 1].client == client) return s - 1;
    }
}

void aw__tab_put(aw_state *aw, size_t idx)
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
tdm_err aw__tab_reserve(aw_state *aw, size_t total)
{
    assert(total <= aw->max_clients);
    tdm_err e =
        aw__grow((void **)&aw->ents, &aw->cap_ents, total, sizeof *aw->ents, aw->max_clients);
    if (e) return e;
    if (aw->n_slots >= 2 * total && aw->n_slots) return TDM_OK;
    size_t ns = aw->n_slots ? aw->n_slots : 16;
    while (ns < 2 * total) ns *= 2;
    uint32_t *s = calloc(ns, sizeof *s);
    if (!s) return TDM_ENOMEM;
    free(aw->slots);
    aw->slots = s;
    aw->n_slots = ns;
    for (size_t i = 0; i < aw->n_ents; i++) aw__tab_put(aw, i);
    return TDM_OK;
}

/* Remove remote entry idx entirely (tombstone or live). */
void aw__ent_drop(aw_state *aw, size_t idx)
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
aw_ent *aw__find(aw_state *aw, uint64_t client)
{
    if (client == aw->local.client) return &aw->local;
    size_t i = aw__tab_find(aw, client);
    return i == AW_NONE ? NULL : &aw->ents[i];
}

const aw_ent *aw__find_c(const aw_state *aw, uint64_t client)
{
    return aw__find((aw_state *)aw, client);
}

/* Call the observer with the first na + nu + nr ids of aw->ev. */
void aw__emit(aw_state *aw, aw_origin o, size_t na, size_t nu, size_t nr)
{
    if (!aw->obs || na + nu + nr == 0) return;
    aw_change ch = {o, aw->ev, na, aw->ev + na, nu, aw->ev + na + nu, nr};
    aw->busy = true;
    aw->obs(aw->obs_ud, &ch);
    aw->busy = false;
}

/* Position pos in "every entry" order: 0 is the local entry, i + 1 remote i. */
const aw_ent *aw__ent_at(const aw_state *aw, size_t pos)
{
    return pos == 0 ? &aw->local : &aw->ents[pos - 1];
}

/* Give memory back after a spike (called by aw_tick, never while an
 * observer runs): scratch buffers above a small working size are freed, the
 * entry array halves while at most a quarter full, and the table shrinks to
 * load about 1/4 when below 1/16. A failed shrink keeps the old memory. */
void aw__compact(aw_state *aw)
{
    if (aw->cap_plan > 64) {
        free(aw->plan);
        aw->plan = NULL;
        aw->cap_plan = 0;
    }
    if (aw->cap_cand > 64) {
        free(aw->cand);
        aw->cand = NULL;
        aw->cap_cand = 0;
    }
    if (aw->cap_ev > 64) {
        free(aw->ev);
        aw->ev = NULL;
        aw->cap_ev = 0;
    }
    while (aw->cap_ents > 64 && aw->n_ents <= aw->cap_ents / 4) {
        aw_ent *ne = realloc(aw->ents, aw->cap_ents / 2 * sizeof *ne);
        if (!ne) break;
        aw->ents = ne;
        aw->cap_ents /= 2;
    }
    size_t ns = 16;
    while (ns < 4 * aw->n_ents) ns *= 2;
    if (aw->n_slots > 64 && aw->n_slots >= 4 * ns) {
        uint32_t *sl = calloc(ns, sizeof *sl);
        if (!sl) return;
        free(aw->slots);
        aw->slots = sl;
        aw->n_slots = ns;
        for (size_t i = 0; i < aw->n_ents; i++) aw__tab_put(aw, i);
    }
}
