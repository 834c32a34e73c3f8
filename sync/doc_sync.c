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
    crdt_sv *before = crdt_sv_new(), *after = crdt_sv_new();
    tdm_err e = before && after ? crdt_doc_state_vector(r->doc, before) : TDM_ENOMEM;
    size_t pend_before = crdt_doc_pending(r->doc);
    if (!e) e = crdt_doc_apply(r->doc, m->data.p, m->data.n);
    sync__room_commit(r, NULL, 0, 0); /* a partial apply may have changed the text too */
    if (e) {
        sync__send_error(ss, c->id, apply_code(e), m->seq, e == TDM_EPENDING_FULL ? 1000 : 0,
                         tdm_strerror(e), NULL);
        goto out;
    }
    e = crdt_doc_state_vector(r->doc, after);
    bool grew = e || !crdt_sv_equal(before, after);
    bool changed = grew || crdt_doc_pending(r->doc) != pend_before;
    e = TDM_OK;
    if (grew) {
        /* the others get exactly what the room integrated: this update's
         * operations and any it released from pending (not the raw bytes,
         * which would miss released operations and carry pending ones) */
        tbuf diff;
        tbuf_init(&diff, 0);
        if (crdt_doc_diff(r->doc, before, &diff) == TDM_OK) {
            syncm u = {.type = SYNCM_UPDATE, .seq = 0, .data = {diff.data, diff.len}};
            /* released pending operations may come from others: then the
             * sender needs the diff too */
            sync__room_broadcast(r, &u, pend_before ? NULL : c, SYNC_MODE_CRDT, 0);
        }
        tbuf_fini(&diff);
    }
    sync_pending p = {.kind = SYNC_P_UPDATE, .room = r, .chan = c, .seq = m->seq};
    uint64_t token;
    if (!changed && !r->persist_failed) {
        /* a duplicate: nothing to write; acked once what came before is */
        p.kind = SYNC_P_BARRIER;
        p.done = true;
        sync__pending_add(srv, &p, &token);
    } else if (!srv->host.persist_update) {
        p.done = true;
        sync__pending_add(srv, &p, &token);
    } else if (sync__pending_add(srv, &p, &token) == TDM_OK) {
        tdm_err pe = srv->host.persist_update(srv->host.ctx, r->name, m->data.p, m->data.n, token);
        if (pe) sync__pending_complete(srv, token, pe, 0, false);
    }
    r->is_new = false;
    sync__pending_drain(srv);
out:
    crdt_sv_free(before);
    crdt_sv_free(after);
    return e;
}
