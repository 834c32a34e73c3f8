/* ot_room.c - OT-mode channels (ShareDB semantics) over the room's CRDT
 * document: the version history (in memory, bounded; older versions from the
 * host), transforming a late operation over everything since its base
 * version, applying it as edits of the room's replica, acking it once durable
 * (with later remote operations held behind the ack), catching a
 * subscriber up, and snapshots. */
#include "sync_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ history */

static sync_hist *hist_at(sync_room *r, size_t i)
{
    return &r->hist[(r->hstart + i) % r->hcap];
}

static void hist_drop_oldest(sync_room *r)
{
    sync_hist *h = hist_at(r, 0);
    r->hbytes -= h->bytes;
    ot_op_free(h->op);
    memset(h, 0, sizeof *h);
    r->hstart = (r->hstart + 1) % r->hcap;
    r->hcount--;
    r->hbase++;
}

void sync__hist_clear(sync_room *r)
{
    while (r->hcount) hist_drop_oldest(r);
    r->hstart = 0;
}

/* take op as the operation turning version - 1 into version (r->version) */
void sync__hist_push(sync_room *r, ot_op *op, uint64_t src, uint64_t op_id)
{
    size_t bytes = 16 + ot_op_count(op) * 8; /* an estimate of its weight */
    for (size_t i = 0; i < ot_op_count(op); i++) {
        ot_comp c;
        ot_op_get(op, i, &c);
        bytes += c.nbytes;
    }
    size_t maxb = r->srv->o.ot_history_bytes;
    while (r->hcount && (r->hcount == r->hcap || r->hbytes + bytes > maxb)) hist_drop_oldest(r);
    if (r->hcap == 0 || bytes > maxb) {
        ot_op_free(op);
        r->hbase = r->version;
        return;
    }
    sync_hist *h = hist_at(r, r->hcount);
    h->op = op;
    h->src = src;
    h->op_id = op_id;
    h->bytes = bytes;
    r->hcount++;
    r->hbytes += bytes;
}

/* the operations turning version `from` into r->version, one by one, to fn;
 * TDM_ERANGE when they are not all available */
typedef tdm_err (*hist_fn)(void *arg, uint64_t version, const ot_op *op, uint64_t src,
                           uint64_t op_id);

typedef struct host_walk {
    uint64_t next, stop;
    hist_fn fn;
    void *arg;
    tdm_err err;
} host_walk;

static tdm_err host_emit(void *arg, uint64_t version, const uint8_t *p, size_t n, uint64_t src,
                         uint64_t op_id)
{
    host_walk *w = arg;
    if (version < w->next) return TDM_OK;         /* older than asked: skip */
    if (version >= w->stop) return TDM_ENOTFOUND; /* memory has the rest: stop */
    if (version != w->next) return w->err = TDM_ERANGE;
    ot_op *op = NULL;
    tdm_err e = ot_op_decode(p, n, &op);
    if (e) return w->err = TDM_ERANGE; /* unusable history counts as missing */
    e = w->fn(w->arg, version + 1, op, src, op_id);
    ot_op_free(op);
    if (e) return w->err = e;
    w->next++;
    return TDM_OK;
}

static tdm_err hist_walk(sync_room *r, uint64_t from, hist_fn fn, void *arg)
{
    sync_server *srv = r->srv;
    if (from > r->version) return TDM_ERANGE;
    if (from < r->hbase) {
        if (!srv->host.ot_history || r->ot_persist_failed) return TDM_ERANGE;
        host_walk w = {.next = from, .stop = r->hbase, .fn = fn, .arg = arg};
        tdm_err e = srv->host.ot_history(srv->host.ctx, r->name, from, host_emit, &w);
        if (w.err) return w.err;
        if (e && e != TDM_ENOTFOUND) return TDM_ERANGE;
        if (w.next != r->hbase) return TDM_ERANGE;
        from = r->hbase;
    }
    for (uint64_t v = from; v < r->version; v++) {
        sync_hist *h = hist_at(r, (size_t)(v - r->hbase));
        tdm_err e = fn(arg, v + 1, h->op, h->src, h->op_id);
        if (e) return e;
    }
    return TDM_OK;
}

/* ------------------------------------------------------------ OT_OP */

typedef struct xform {
    ot_op *op;
    uint64_t src, op_id; /* the submitter (src 0: no duplicate check) */
    uint64_t dup;        /* the version the same operation produced, or 0 */
} xform;

/* stops with TDM_ECONFLICT at an operation the same client submitted under the
 * same op id: a resend (its ack was lost), not a new operation */
static tdm_err xform_fn(void *arg, uint64_t version, const ot_op *h, uint64_t src, uint64_t op_id)
{
    xform *x = arg;
    if (x->src && src == x->src && op_id == x->op_id) {
        x->dup = version;
        return TDM_ECONFLICT;
    }
    ot_op **op = &x->op;
    ot_op *next = NULL;
    /* the late operation goes after the ones already in history (ot.js order:
     * the client's insert wins ties on the left, as its own client does) */
    tdm_err e = ot_op_transform(*op, h, OT_LEFT, &next);
    if (e) return e;
    ot_op_free(*op);
    *op = next;
    return TDM_OK;
}

static sync_errcode xform_code(tdm_err e)
{
    switch (e) {
    case TDM_ERANGE:
        return SYNC_ERR_TOO_FAR_BEHIND;
    case TDM_ETOOBIG:
        return SYNC_ERR_TOO_BIG;
    case TDM_ENOMEM:
        return SYNC_ERR_INTERNAL;
    default:
        return SYNC_ERR_BAD_OPERATION;
    }
}

tdm_err sync__on_ot_op(sync_session *ss, sync_chan *c, const syncm *m)
{
    sync_server *srv = ss->srv;
    sync_room *r = c->room;
    if (c->mode != SYNC_MODE_OT) {
        sync__send_error(ss, c->id, SYNC_ERR_BAD_STATE, m->op_id, 0, "OT_OP on a CRDT channel",
                         m->op);
        return TDM_EINVAL;
    }
    if (c->access != SYNC_ACCESS_WRITE) {
        sync__send_error(ss, c->id, SYNC_ERR_NOT_ALLOWED, m->op_id, 0, "read-only", m->op);
        return TDM_EINVAL;
    }
    if (!sync__rate(ss, c, SYNC_RATE_OT, c->id, m->op_id)) return TDM_EINVAL;
    if (sync__pending_full(srv)) {
        sync__send_error(ss, c->id, SYNC_ERR_SERVER_BUSY, m->op_id, 500, "too many writes pending",
                         m->op);
        return TDM_ETOOBIG;
    }
    if (m->version > r->version) {
        sync__send_error(ss, c->id, SYNC_ERR_BAD_OPERATION, m->op_id, 0,
                         "base version from the future", m->op);
        return TDM_EINVAL;
    }
    xform x = {.src = ss->client_id, .op_id = m->op_id};
    tdm_err e = ot_op_clone(m->op, &x.op);
    if (!e) e = hist_walk(r, m->version, xform_fn, &x);
    ot_op *op = x.op;
    if (e == TDM_ECONFLICT && x.dup) {
        /* already applied (ShareDB's check): acked with the version it
         * produced, in order behind what is pending, and nothing changes */
        sync_pending p = {.kind = SYNC_P_OT, .chan = c, .seq = m->op_id, .version = x.dup};
        sync__persist(r, &p, NULL, 0, c);
        sync__pending_drain(srv);
        ot_op_free(op);
        return TDM_OK;
    }
    if (!e && ot_op_base_len(op) != crdt_doc_len(r->doc)) e = TDM_EBASELEN;
    crdt_sv *before = NULL;
    tbuf diff;
    tbuf_init(&diff, 0);
    bool grew = false;
    if (!e && !ot_op_is_noop(op)) {
        before = crdt_sv_new();
        e = before ? crdt_doc_state_vector(r->doc, before) : TDM_ENOMEM;
        if (!e) {
            /* the edits are this OT client's own: a replica id of its own,
             * fresh from the host, never shared with another replica */
            if (!c->ot_client) c->ot_client = srv->host.fresh_client_id(srv->host.ctx);
            e = crdt_doc_apply_ot_as(r->doc, c->ot_client, op);
            sync__room_commit(r, c, ss->client_id, m->op_id);
            /* CRDT members get what changed as an update (also the prefix a
             * failed apply may leave) */
            grew = sync__room_publish(r, before, NULL, &diff);
        }
    }
    sync_pending p = {.kind = SYNC_P_OT, .chan = c, .seq = m->op_id, .version = r->version};
    if (e) {
        sync_errcode code = xform_code(e);
        sync__send_error(ss, c->id, code, m->op_id, 0,
                         code == SYNC_ERR_TOO_FAR_BEHIND ? "too far behind: rebase on a snapshot"
                                                         : tdm_strerror(e),
                         m->op); /* the unsent operation goes back */
        if (code == SYNC_ERR_TOO_FAR_BEHIND) sync__ot_snapshot(c);
        if (grew) {
            p.kind = SYNC_P_UPDATE, p.chan = NULL;
            sync__persist(r, &p, diff.data, diff.len, NULL);
        }
    } else {
        /* the ack waits for the write, and remote operations after it wait
         * behind the ack (a no-op is acked in order with the current version) */
        sync__persist(r, &p, diff.data, diff.len, c);
    }
    tbuf_fini(&diff);
    sync__pending_drain(srv);
    crdt_sv_free(before);
    ot_op_free(op);
    return e;
}

/* ------------------------------------------------------------ subscribe */

tdm_err sync__ot_snapshot(sync_chan *c)
{
    sync_room *r = c->room;
    tbuf b;
    tbuf_init(&b, r->srv->o.max_stream_bytes);
    tdm_err e = crdt_doc_text(r->doc, &b);
    if (e) {
        tbuf_fini(&b);
        return e;
    }
    return sync__stream_start(c, SYNCM_OT_SNAPSHOT, r->version, &b);
}

typedef struct catchup {
    sync_chan *c;
    size_t bytes, max;
    bool send; /* false: only check that everything is there and fits */
} catchup;

static tdm_err catchup_fn(void *arg, uint64_t version, const ot_op *op, uint64_t src,
                          uint64_t op_id)
{
    catchup *k = arg;
    syncm m = {.type = SYNCM_OT_REMOTE,
               .channel = k->c->id,
               .version = version,
               .op = (ot_op *)op,
               .src = src,
               .op_id = op_id};
    sync_blob *b;
    tdm_err e = sync__blob(&m, &b);
    if (e) return e;
    k->bytes += b->n;
    if (k->bytes > k->max) e = TDM_ERANGE;
    if (!e && k->send) sync__chan_send_blob(k->c, b, SYNC_F_ORDERED);
    sync__blob_unref(b);
    return e;
}

tdm_err sync__ot_subscribed(sync_session *ss, sync_chan *c, const syncm *m)
{
    sync_room *r = c->room;
    syncm s = {.type = SYNCM_SUBSCRIBED,
               .channel = c->id,
               .access = c->access,
               .mode = SYNC_MODE_OT,
               .version = r->version,
               .chat_id = r->last_chat_id,
               .is_new = r->is_new};
    if (!m->has_version) {
        /* a fresh client: the text as of now */
        tdm_err e = sync__ot_snapshot(c);
        if (!e) sync__send(ss, &s, 0);
        return e;
    }
    /* a returning client: every operation since its version, unless that is
     * more than the history keeps (or more than a quarter of the queue) */
    catchup k = {.c = c, .max = ss->srv->o.max_out_bytes / 4};
    tdm_err e = m->version <= r->version ? hist_walk(r, m->version, catchup_fn, &k) : TDM_ERANGE;
    if (!e) {
        sync__send(ss, &s, 0);
        k.send = true;
        k.bytes = 0;
        e = hist_walk(r, m->version, catchup_fn, &k);
    }
    if (e != TDM_ERANGE) return e;
    sync__send_error(ss, c->id, SYNC_ERR_TOO_FAR_BEHIND, 0, 0,
                     "version not in the history: resynchronized from a snapshot", NULL);
    e = sync__ot_snapshot(c);
    if (!e) sync__send(ss, &s, 0);
    return e;
}
