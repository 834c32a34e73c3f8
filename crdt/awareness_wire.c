/* awareness_wire.c - aw_apply (decoding an untrusted update through cbr_*,
 * planning, committing all or nothing) and the aw_encode family. */
#include "awareness_internal.h"

#include <stdlib.h>
#include <string.h>

#include "cbor_rd.h"

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
    if (aw__grow((void **)&aw->plan, &aw->cap_plan, cnt, sizeof *aw->plan, aw->max_entries))
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
        size_t idx = aw__tab_find(aw, q->client);
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
    if (aw__grow((void **)&aw->cand, &aw->cap_cand, nc, sizeof *aw->cand, aw->max_clients))
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
            aw->local.clock = aw__clock_bump(q->clock);
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
    for (size_t i = 0; i < n_evict; i++) aw__ent_drop(aw, aw->cand[i].idx);
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
        aw__tab_put(aw, aw->n_ents++);
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
    if ((e = aw__grow((void **)&aw->ev, &aw->cap_ev, cnt, sizeof *aw->ev, SIZE_MAX / 8))) return e;
    if ((e = aw__tab_reserve(aw, aw->n_ents + n_new - n_evict))) return e;
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
    aw__emit(aw, AW_ORIGIN_REMOTE, ev[0], ev[1], ev[2]);
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
            if (aw__ent_at(aw, pos)->live && (e = enc_ent(out, aw__ent_at(aw, pos)))) goto fail;
        return TDM_OK;
    }
    uint64_t g1 = ++aw->gen, g2 = ++aw->gen;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        aw_ent *x = aw__find(aw, clients[i]);
        if (x && x->mark != g1) {
            x->mark = g1;
            cnt++;
        }
    }
    if (cnt > aw->max_entries) return TDM_ETOOBIG;
    if ((e = tbuf_cbor_array(out, cnt))) goto fail;
    for (size_t i = 0; i < n; i++) {
        aw_ent *x = aw__find(aw, clients[i]);
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
    while (end < total && cnt < aw->max_entries) cnt += aw__ent_at(aw, end++)->live;
    while (end < total && !aw__ent_at(aw, end)->live) end++;
    size_t start = out->len;
    tdm_err e = tbuf_cbor_array(out, cnt);
    for (size_t i = p; !e && i < end; i++)
        if (aw__ent_at(aw, i)->live) e = enc_ent(out, aw__ent_at(aw, i));
    if (e) {
        out->len = start;
        return e;
    }
    *pos = end;
    *done = end == total;
    return TDM_OK;
}
