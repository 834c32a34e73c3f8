/* replay.c - sequential and fork/merge replay of traces; see replay.h. */
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VER_ENTRIES ((size_t)1 << 28)

/* Record err with a description in info (if any) and return it. */
static tdm_err fail_at(replay_info *info, tdm_err err, const char *what, size_t txn)
{
    if (info)
        snprintf(info->detail, sizeof info->detail, "txn %zu: %s (%s)", txn, what,
                 tdm_err_name(err));
    return err;
}

/* One patch as local edits: delete, then insert. */
static tdm_err local_patch(crdt_doc *doc, size_t pos, size_t del, const char *ins, size_t n)
{
    tdm_err err = TDM_OK;
    if (del) err = crdt_doc_delete(doc, pos, del);
    if (!err && n) err = crdt_doc_insert(doc, pos, ins, n);
    return err;
}

tdm_err replay_sequential(const trace *t, crdt_doc *doc)
{
    tdm_err err = local_patch(doc, 0, 0, t->start_content, t->start_len);
    for (uint32_t i = 0; !err && i < t->ntxns; i++) {
        const trace_txn *tx = &t->txns[i];
        for (uint32_t k = 0; !err && k < tx->npatches; k++) {
            const trace_patch *p = &tx->patches[k];
            err = local_patch(doc, p->pos, p->del, p->ins, p->ins_len);
        }
    }
    return err;
}

/* Send doc's operations that `remote` lacks to replica. */
static tdm_err push(crdt_doc *doc, const crdt_sv *remote, crdt_doc *replica, tbuf *buf,
                    replay_info *info)
{
    tbuf_reset(buf);
    tdm_err err = crdt_doc_diff(doc, remote, buf);
    if (!err) err = crdt_doc_apply(replica, buf->data, buf->len);
    if (!err && info) info->update_bytes += buf->len;
    return err;
}

tdm_err replay_sequential_sync(const trace *t, crdt_doc *doc, crdt_doc *replica, replay_info *info)
{
    uint64_t client = crdt_doc_client(doc);
    crdt_sv *remote = crdt_sv_new(), *check = crdt_sv_new();
    tbuf buf;
    tbuf_init(&buf, 0);
    tdm_err err = TDM_ENOMEM;
    const char *what = "allocating";
    size_t txn = 0;
    if (info) memset(info, 0, sizeof *info);
    if (!remote || !check) goto fail;
    /* First the replica gets everything doc holds (start content included);
     * from then on remote is doc's state vector and only doc's entry moves. */
    what = "initial sync";
    err = local_patch(doc, 0, 0, t->start_content, t->start_len);
    if (!err) err = crdt_doc_state_vector(replica, remote);
    if (!err) err = push(doc, remote, replica, &buf, info);
    if (!err) err = crdt_doc_state_vector(doc, remote);
    if (err) goto fail;
    uint64_t clock = crdt_sv_get(remote, client);
    what = "patch, diff or apply";
    for (txn = 0; txn < t->ntxns; txn++) {
        const trace_txn *tx = &t->txns[txn];
        for (uint32_t k = 0; k < tx->npatches; k++) {
            const trace_patch *p = &tx->patches[k];
            err = local_patch(doc, p->pos, p->del, p->ins, p->ins_len);
            if (!err) err = push(doc, remote, replica, &buf, info);
            clock += (uint64_t)p->del + p->ins_cps;
            if (!err && clock >= CRDT_CLOCK_MAX) err = TDM_ETOOBIG;
            if (!err) err = crdt_sv_set(remote, client, (uint32_t)clock);
            if (err) goto fail;
        }
    }
    /* The tracked vector must be exactly doc's, and the replica must hold it. */
    what = "state vectors disagree with the operation count";
    err = crdt_doc_state_vector(doc, check);
    if (!err && !crdt_sv_equal(check, remote)) err = TDM_ECONFLICT;
    if (!err) err = crdt_doc_state_vector(replica, check);
    if (!err && (!crdt_sv_covers(check, remote) || crdt_doc_pending(replica) != 0))
        err = TDM_ECONFLICT;
fail:
    if (err) fail_at(info, err, what, txn);
    tbuf_fini(&buf);
    crdt_sv_free(remote);
    crdt_sv_free(check);
    return err;
}

/* Fork/merge replay state. ver holds, for every txn, the clocks per agent
 * after it (its version); target is the version of the txn being replayed. */
typedef struct conc {
    const trace *t;
    uint32_t *ver;   /* ntxns * num_agents */
    crdt_doc **rep;  /* one replica per agent, made on first use */
    crdt_doc *uni;   /* every operation so far */
    crdt_sv *target; /* parents' merged version */
    crdt_sv *have;   /* a replica's state vector */
    tbuf buf;
    replay_info *info;
} conc;

/* target = merge of the parents' versions, into c->ver row i and c->target. */
static tdm_err set_target(conc *c, uint32_t i)
{
    uint32_t A = c->t->num_agents;
    uint32_t *row = c->ver + (size_t)i * A;
    const trace_txn *tx = &c->t->txns[i];
    for (uint32_t k = 0; k < tx->nparents; k++) {
        const uint32_t *pr = c->ver + (size_t)tx->parents[k] * A;
        for (uint32_t a = 0; a < A; a++)
            if (pr[a] > row[a]) row[a] = pr[a];
    }
    crdt_sv_clear(c->target);
    for (uint32_t a = 0; a < A; a++) {
        tdm_err err = crdt_sv_set(c->target, (uint64_t)a + 1, row[a]);
        if (err) return err;
    }
    return TDM_OK;
}

/* Replay txn i on its agent's replica and merge it into the universe. */
static tdm_err replay_txn(conc *c, uint32_t i)
{
    const trace_txn *tx = &c->t->txns[i];
    uint32_t a = tx->agent;
    tdm_err err = set_target(c, i);
    if (err) return fail_at(c->info, err, "building the parents' version", i);
    if (!c->rep[a]) {
        err = crdt_doc_new((uint64_t)a + 1, &c->rep[a]);
        if (err) return fail_at(c->info, err, "creating a replica", i);
    }
    crdt_doc *rep = c->rep[a];
    err = crdt_doc_state_vector(rep, c->have);
    if (err) return fail_at(c->info, err, "reading the replica's state vector", i);
    if (!crdt_sv_covers(c->target, c->have))
        return fail_at(c->info, TDM_EMALFORMED,
                       "the agent's replica holds more than the parents "
                       "(agent's previous txn is not an ancestor)",
                       i);
    if (!crdt_sv_equal(c->target, c->have)) { /* catch up from the universe */
        tbuf_reset(&c->buf);
        err = crdt_doc_diff_range(c->uni, c->have, c->target, &c->buf);
        if (!err) err = crdt_doc_apply(rep, c->buf.data, c->buf.len);
        if (!err) err = crdt_doc_state_vector(rep, c->have);
        if (err) return fail_at(c->info, err, "bringing the replica to the parents' version", i);
        if (!crdt_sv_equal(c->target, c->have) || crdt_doc_pending(rep) != 0)
            return fail_at(c->info, TDM_ECONFLICT, "replica not at the parents' version", i);
        if (c->info) {
            c->info->bringups++;
            c->info->update_bytes += c->buf.len;
        }
    }
    uint64_t ops = 0;
    for (uint32_t k = 0; k < tx->npatches; k++) {
        const trace_patch *p = &tx->patches[k];
        err = local_patch(rep, p->pos, p->del, p->ins, p->ins_len);
        if (err) return fail_at(c->info, err, "applying a patch", i);
        ops += (uint64_t)p->del + p->ins_cps;
    }
    uint32_t *row = c->ver + (size_t)i * c->t->num_agents;
    if (row[a] + ops >= CRDT_CLOCK_MAX) return fail_at(c->info, TDM_ETOOBIG, "clock overflow", i);
    if (ops == 0) return TDM_OK;
    tbuf_reset(&c->buf);
    err = crdt_doc_diff(rep, c->target, &c->buf);
    if (!err) err = crdt_doc_apply(c->uni, c->buf.data, c->buf.len);
    if (err) return fail_at(c->info, err, "merging the txn into the universe", i);
    if (c->info) c->info->update_bytes += c->buf.len;
    row[a] += (uint32_t)ops;
    err = crdt_sv_set(c->target, (uint64_t)a + 1, row[a]);
    if (!err) err = crdt_doc_state_vector(rep, c->have);
    if (err) return fail_at(c->info, err, "reading the replica's state vector", i);
    if (!crdt_sv_equal(c->target, c->have))
        return fail_at(c->info, TDM_ECONFLICT, "replica's clocks differ from the op count", i);
    return TDM_OK;
}

/* Universe complete, nothing pending, and the last txn's replica agrees. */
static tdm_err final_checks(conc *c)
{
    uint32_t n = c->t->ntxns, A = c->t->num_agents;
    crdt_sv_clear(c->target);
    for (uint32_t a = 0; a < A; a++) {
        uint32_t hi = 0;
        for (uint32_t i = 0; i < n; i++)
            hi = c->ver[(size_t)i * A + a] > hi ? c->ver[(size_t)i * A + a] : hi;
        tdm_err err = crdt_sv_set(c->target, (uint64_t)a + 1, hi);
        if (err) return fail_at(c->info, err, "final version", n);
    }
    tdm_err err = crdt_doc_state_vector(c->uni, c->have);
    if (err) return fail_at(c->info, err, "universe state vector", n);
    if (!crdt_sv_equal(c->have, c->target) || crdt_doc_pending(c->uni) != 0)
        return fail_at(c->info, TDM_ECONFLICT, "universe lacks operations", n);
    if (n == 0) return TDM_OK;
    crdt_doc *last = c->rep[c->t->txns[n - 1].agent];
    err = crdt_doc_state_vector(last, c->have);
    if (err || !crdt_sv_equal(c->have, c->target)) return TDM_OK; /* last txn is not a full merge */
    tbuf other;
    tbuf_init(&other, 0);
    tbuf_reset(&c->buf);
    err = crdt_doc_text(c->uni, &c->buf);
    if (!err) err = crdt_doc_text(last, &other);
    if (!err && (other.len != c->buf.len || memcmp(other.data, c->buf.data, other.len) != 0))
        err = TDM_ECONFLICT;
    tbuf_fini(&other);
    if (err) return fail_at(c->info, err, "last replica and universe differ", n);
    return TDM_OK;
}

tdm_err replay_concurrent(const trace *t, crdt_doc **out, replay_info *info)
{
    return replay_concurrent_observed(t, out, info, NULL, NULL);
}

tdm_err replay_concurrent_observed(const trace *t, crdt_doc **out, replay_info *info,
                                   crdt_doc_observer_fn fn, void *ctx)
{
    if (!t->concurrent) return TDM_EINVAL;
    uint32_t A = t->num_agents;
    if (A >= CRDT_MAX_CLIENTS) return TDM_ETOOBIG;
    if (t->ntxns && A > MAX_VER_ENTRIES / t->ntxns) return TDM_ETOOBIG;
    if (info) memset(info, 0, sizeof *info);

    conc c = {.t = t, .info = info};
    tbuf_init(&c.buf, 0);
    tdm_err err = TDM_ENOMEM;
    c.ver = calloc((size_t)t->ntxns * A + 1, sizeof *c.ver);
    c.rep = calloc(A, sizeof *c.rep);
    c.target = crdt_sv_new();
    c.have = crdt_sv_new();
    if (!c.ver || !c.rep || !c.target || !c.have) goto fail;
    err = crdt_doc_new((uint64_t)A + 1, &c.uni);
    if (err) goto fail;
    if (fn) crdt_doc_observe(c.uni, fn, ctx);
    for (uint32_t i = 0; i < t->ntxns; i++) {
        err = replay_txn(&c, i);
        if (err) goto fail;
    }
    err = final_checks(&c);
    if (err) goto fail;
    *out = c.uni;
    c.uni = NULL;
fail:
    for (uint32_t a = 0; c.rep && a < A; a++) crdt_doc_free(c.rep[a]);
    crdt_doc_free(c.uni);
    free(c.rep);
    free(c.ver);
    crdt_sv_free(c.target);
    crdt_sv_free(c.have);
    tbuf_fini(&c.buf);
    return err;
}
