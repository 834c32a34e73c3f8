/* awareness.c - per-document presence: lifetime, the local entry, timers,
 * server-side removal and queries (prefix aw_). Remote updates and the wire
 * form are in awareness_wire.c, the client table in awareness_table.c. */
#include "awareness_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

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
    aw->timeout = opts->timeout_ms ? opts->timeout_ms : AW_TIMEOUT_MS;
    aw->seed = opts->hash_seed ? opts->hash_seed : aw__mix64(opts->client ^ 0x9e3779b97f4a7c15u);
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
    if (aw__grow((void **)&aw->ev, &aw->cap_ev, 1, sizeof *aw->ev, SIZE_MAX / 8)) {
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
    l->clock = aw__clock_bump(l->clock);
    l->updated = now;
    aw->ev[0] = l->client;
    if (!was)
        aw__emit(aw, AW_ORIGIN_LOCAL, 1, 0, 0);
    else if (!same)
        aw__emit(aw, AW_ORIGIN_LOCAL, 0, 1, 0);
    return TDM_OK;
}

tdm_err aw_clear_local(aw_state *aw, uint64_t now)
{
    if (!aw || aw->busy) return TDM_EINVAL;
    if (aw__grow((void **)&aw->ev, &aw->cap_ev, 1, sizeof *aw->ev, SIZE_MAX / 8)) return TDM_ENOMEM;
    aw_ent *l = &aw->local;
    bool was = l->live;
    free(l->state);
    l->state = NULL;
    l->len = 0;
    l->live = false;
    l->clock = aw__clock_bump(l->clock);
    l->updated = now;
    aw->ev[0] = l->client;
    if (was) aw__emit(aw, AW_ORIGIN_LOCAL, 0, 0, 1);
    return TDM_OK;
}

/* ------------------------------------------------------------ timers */

tdm_err aw_tick(aw_state *aw, uint64_t now, bool *renew)
{
    if (renew) *renew = false;
    if (!aw || aw->busy) return TDM_EINVAL;
    aw__compact(aw);
    size_t n_exp = 0;
    for (size_t i = 0; i < aw->n_ents; i++)
        if (aw->ents[i].live && aw__age(now, aw->ents[i].updated) >= aw->timeout) n_exp++;
    if (aw__grow((void **)&aw->ev, &aw->cap_ev, n_exp, sizeof *aw->ev, SIZE_MAX / 8))
        return TDM_ENOMEM;

    /* Drop old tombstones first (back to front: a swap only moves an entry
     * already visited), then expire: fresh tombstones get updated = now. */
    for (size_t i = aw->n_ents; i-- > 0;)
        if (!aw->ents[i].live && aw__age(now, aw->ents[i].updated) >= AW_TOMBSTONE_MS)
            aw__ent_drop(aw, i);
    size_t k = 0;
    for (size_t i = 0; i < aw->n_ents; i++) {
        aw_ent *x = &aw->ents[i];
        if (!x->live || aw__age(now, x->updated) < aw->timeout) continue;
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
    if (l->live && aw__age(now, l->updated) >= AW_RENEW_MS) {
        l->clock = aw__clock_bump(l->clock);
        l->updated = now;
        if (renew) *renew = true;
    }
    aw__emit(aw, AW_ORIGIN_TIMEOUT, 0, 0, k);
    return TDM_OK;
}

tdm_err aw_remove_clients(aw_state *aw, const uint64_t *clients, size_t n, uint64_t now)
{
    if (!aw || (!clients && n) || aw->busy) return TDM_EINVAL;
    size_t most = aw->n_live + 1;
    if (aw__grow((void **)&aw->ev, &aw->cap_ev, n < most ? n : most, sizeof *aw->ev, SIZE_MAX / 8))
        return TDM_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        aw_ent *x = aw__find(aw, clients[i]);
        if (!x || !x->live) continue;
        free(x->state);
        x->state = NULL;
        if (x == &aw->local) {
            x->clock = aw__clock_bump(x->clock);
        } else {
            aw->rem_bytes -= x->len;
            aw->n_live--;
        }
        x->len = 0;
        x->live = false;
        x->updated = now;
        aw->ev[k++] = x->client;
    }
    aw__emit(aw, AW_ORIGIN_REMOVE, 0, 0, k);
    return TDM_OK;
}

/* ------------------------------------------------------------ queries */

size_t aw_mem_bytes(const aw_state *aw)
{
    size_t n = sizeof *aw + aw->cap_ents * sizeof *aw->ents + aw->n_slots * sizeof *aw->slots +
               aw->cap_plan * sizeof *aw->plan + aw->cap_ev * sizeof *aw->ev +
               aw->cap_cand * sizeof *aw->cand + aw->rem_bytes + aw->local.len;
    return n;
}

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
    const aw_ent *x = aw__find_c(aw, client);
    if (!x || !x->live) return TDM_ENOTFOUND;
    fill(x, e);
    return TDM_OK;
}

tdm_err aw_get_clock(const aw_state *aw, uint64_t client, uint32_t *clock)
{
    if (!aw || !clock) return TDM_EINVAL;
    const aw_ent *x = aw__find_c(aw, client);
    if (!x) return TDM_ENOTFOUND;
    *clock = x->clock;
    return TDM_OK;
}

bool aw_next(const aw_state *aw, size_t *pos, aw_entry *e)
{
    while (*pos <= aw->n_ents) {
        const aw_ent *x = aw__ent_at(aw, (*pos)++);
        if (x->live) {
            fill(x, e);
            return true;
        }
    }
    return false;
}
