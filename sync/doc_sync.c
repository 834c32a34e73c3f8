/* doc_sync.c - CRDT-mode channels: the subscribe answer (SUBSCRIBED with the
 * room's state vector, then exactly the missing updates as a chunked
 * transfer), SYNC_STEP, and UPDATE (apply, broadcast, persist, ack when
 * durable). */
#include "sync_internal.h"

#include <stdlib.h>
#include <string.h>

static tdm_err start_diff(sync_chan *c, const crdt_sv *remote)
{
    sync_room *r = c->room;
    tbuf b;
    tbuf_init(&b, r->srv->o.max_stream_bytes);
    tdm_err e = crdt_doc_diff(r->doc, remote, &b);
    if (e) {
        tbuf_fini(&b);
        return e;
    }
    return sync__stream_start(c, SYNCM_UPDATE_CHUNK, sync__token(r->srv), &b);
}

tdm_err sync__crdt_subscribed(sync_session *ss, sync_chan *c, const syncm *m)
{
    sync_room *r = c->room;
    crdt_sv *sv = crdt_sv_new();
    if (!sv) return TDM_ENOMEM;
    tdm_err e = crdt_doc_state_vector(r->doc, sv);
    /* the transfer is prepared first and goes out after SUBSCRIBED */
    if (!e) e = start_diff(c, m->sv);
    if (!e) {
        syncm s = {.type = SYNCM_SUBSCRIBED,
                   .channel = c->id,
                   .access = c->access,
                   .mode = SYNC_MODE_CRDT,
                   .version = r->version,
                   .chat_id = r->last_chat_id,
                   .is_new = r->is_new,
                   .sv = sv};
        sync__send(ss, &s, 0);
    }
    crdt_sv_free(sv);
    return e;
}

tdm_err sync__on_sync_step(sync_session *ss, sync_chan *c, const syncm *m)
{
    if (c->mode != SYNC_MODE_CRDT) {
        sync__send_error(ss, c->id, SYNC_ERR_BAD_STATE, 0, 0, "SYNC_STEP on an OT channel", NULL);
        return TDM_EINVAL;
    }
    if (!sync__rate(ss, c, SYNC_RATE_OTHER, c->id, 0)) return TDM_EINVAL;
    tdm_err e = start_diff(c, m->sv);
    if (e)
        sync__send_error(ss, c->id, SYNC_ERR_SERVER_BUSY, 0, 1000, "cannot start the sync", NULL);
    return e;
}

static sync_errcode apply_code(tdm_err e)
{
    switch (e) {
    case TDM_ETOOBIG:
        return SYNC_ERR_TOO_BIG;
    case TDM_EPENDING_FULL:
        return SYNC_ERR_SERVER_BUSY;
    case TDM_ENOMEM:
        return SYNC_ERR_INTERNAL;
    default:
        return SYNC_ERR_MALFORMED;
    }
}

bool sync__room_publish(sync_room *r, const crdt_sv *before, sync_chan *skip, tbuf *diff)
{
    crdt_sv *now = crdt_sv_new();
    bool grew = !now || crdt_doc_state_vector(r->doc, now) || !crdt_sv_equal(before, now);
    crdt_sv_free(now);
    if (!grew) return false;
    if (crdt_doc_diff(r->doc, before, diff) == TDM_OK) {
        syncm u = {.type = SYNCM_UPDATE, .seq = 0, .data = {diff->data, diff->len}};
        sync__room_broadcast(r, &u, skip, SYNC_MODE_CRDT, 0);
    }
    return true;
}

void sync__persist(sync_room *r, sync_pending *p, const uint8_t *data, size_t n, sync_chan *hold)
{
    sync_server *srv = r->srv;
    uint64_t token;
    bool write = n && srv->host.persist_update;
    p->room = r;
    p->done = !write;
    if (n) r->is_new = false;
    if (sync__pending_add(srv, p, &token)) return;
    if (hold && sync__chan_hold_placeholder(hold, token) && hold->sess)
        sync__close(hold->sess, SYNC_CLOSE_INTERNAL, "out of memory");
    if (!write) return;
    tdm_err e = srv->host.persist_update(srv->host.ctx, r->name, data, n, token);
    if (e) sync__pending_complete(srv, token, e, 0, false);
}

tdm_err sync__on_update(sync_session *ss, sync_chan *c, const syncm *m)
{
    sync_server *srv = ss->srv;
    sync_room *r = c->room;
    if (c->mode != SYNC_MODE_CRDT) {
        sync__send_error(ss, c->id, SYNC_ERR_BAD_STATE, m->seq, 0, "UPDATE on an OT channel", NULL);
        return TDM_EINVAL;
    }
    if (c->access != SYNC_ACCESS_WRITE) {
        sync__send_error(ss, c->id, SYNC_ERR_NOT_ALLOWED, m->seq, 0, "read-only", NULL);
        return TDM_EINVAL;
    }
    if (!sync__rate(ss, c, SYNC_RATE_UPDATE, c->id, m->seq)) return TDM_EINVAL;
    if (sync__pending_full(srv)) {
        sync__send_error(ss, c->id, SYNC_ERR_SERVER_BUSY, m->seq, 500, "too many writes pending",
                         NULL);
        return TDM_ETOOBIG;
    }
    crdt_sv *before = crdt_sv_new();
    if (!before || crdt_doc_state_vector(r->doc, before)) {
        crdt_sv_free(before);
        sync__send_error(ss, c->id, SYNC_ERR_INTERNAL, m->seq, 1000, "out of memory", NULL);
        return TDM_ENOMEM;
    }
    size_t pend_before = crdt_doc_pending(r->doc);
    tdm_err e = crdt_doc_apply(r->doc, m->data.p, m->data.n);
    sync__room_commit(r, NULL, 0, 0);
    /* the others get exactly what the room integrated: this update's
     * operations and any it released from pending (not the raw bytes, which
     * would miss released operations and carry pending ones). Released
     * operations may come from others, so then the sender gets it too. */
    tbuf diff;
    tbuf_init(&diff, 0);
    bool grew = sync__room_publish(r, before, pend_before || e ? NULL : c, &diff);
    sync_pending p = {.kind = SYNC_P_UPDATE, .chan = c, .seq = m->seq};
    if (e) {
        /* out of memory or a size cap can leave a prefix applied: that part
         * is stored (without an ack: the update as a whole was refused) */
        sync__send_error(ss, c->id, apply_code(e), m->seq, e == TDM_EPENDING_FULL ? 1000 : 0,
                         tdm_strerror(e), NULL);
        if (grew) {
            p.chan = NULL;
            sync__persist(r, &p, diff.data, diff.len, NULL);
        }
    } else if (!grew && crdt_doc_pending(r->doc) == pend_before && !r->persist_failed) {
        /* a duplicate: nothing to write; acked once what came before is */
        p.kind = SYNC_P_BARRIER;
        sync__persist(r, &p, NULL, 0, NULL);
    } else {
        /* the raw bytes: operations held pending are part of the ack too */
        sync__persist(r, &p, m->data.p, m->data.n, NULL);
    }
    tbuf_fini(&diff);
    crdt_sv_free(before);
    sync__pending_drain(srv);
    return e;
}
