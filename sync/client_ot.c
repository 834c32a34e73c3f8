/* client_ot.c - OT channels of sync_client: the standard client states
 * (synchronized / awaiting ack / awaiting with buffer), transforming remote
 * operations over the local ones, catch-up after a reconnect, snapshots. */
#include "client_internal.h"

#include "utf8.h"

#include <stdlib.h>
#include <string.h>

tdm_err cl_ot_send_inflight(sync_client *c, cl_chan *ch)
{
    if (!ch->inflight || !ch->subscribed || !ch->has_version || ch->version < ch->target)
        return TDM_OK; /* later: when connected and caught up */
    syncm m = {.type = SYNCM_OT_OP,
               .channel = ch->id,
               .version = ch->version,
               .op_id = ch->inflight_id,
               .op = ch->inflight};
    tdm_err e = cl_send(c, &m);
    if (!e && c->connected) ch->inflight_sent = true;
    return e;
}

static tdm_err apply_text(cl_chan *ch, const ot_op *op)
{
    tbuf nt;
    tbuf_init(&nt, ch->text.limit);
    tdm_err e = ot_op_apply(op, (const char *)ch->text.data, ch->text.len, &nt);
    if (e) {
        tbuf_fini(&nt);
        return e;
    }
    tbuf_fini(&ch->text);
    ch->text = nt;
    return TDM_OK;
}

static void caught_up(sync_client *c, cl_chan *ch)
{
    if (!ch->subscribed || !ch->has_version || ch->version < ch->target) return;
    if (!ch->synced) {
        ch->synced = true;
        if (c->ev.on_synced) c->ev.on_synced(c->ev.ctx, ch->id);
    }
    if (ch->inflight && !ch->inflight_sent) cl_ot_send_inflight(c, ch);
}

tdm_err cl_ot_subscribed(sync_client *c, cl_chan *ch, const syncm *m)
{
    ch->target = m->version;
    caught_up(c, ch);
    return TDM_OK;
}

/* the inflight operation is done: the buffer (if any) goes next */
static void acked(sync_client *c, cl_chan *ch, uint64_t version)
{
    if (version > ch->version) ch->version = version;
    ot_op_free(ch->inflight);
    ch->inflight = ch->buffer;
    ch->buffer = NULL;
    ch->inflight_sent = false;
    if (ch->inflight) {
        ch->inflight_id = ++ch->next_op_id;
        cl_ot_send_inflight(c, ch);
    }
}

tdm_err cl_ot_ack(sync_client *c, cl_chan *ch, const syncm *m)
{
    if (!ch->inflight || m->op_id != ch->inflight_id) return TDM_OK; /* stale */
    /* an ack past a gap (we are catching up again): the catch-up shows the
     * operation with our id at its version and that counts as the ack */
    if (!ch->subscribed || m->version > ch->version + 1) return TDM_OK;
    acked(c, ch, m->version);
    return TDM_OK;
}

tdm_err cl_ot_remote(sync_client *c, cl_chan *ch, const syncm *m)
{
    /* before SUBSCRIBED: left over from an earlier subscription */
    if (!ch->subscribed || !ch->has_version || m->version <= ch->version) return TDM_OK;
    if (m->version != ch->version + 1) {
        /* a gap (a lost frame): catch up again from the version we hold */
        syncm u = {.type = SYNCM_UNSUBSCRIBE, .channel = ch->id};
        tdm_err e = cl_send(c, &u);
        if (!e) e = cl_subscribe_frame(c, ch);
        ch->inflight_sent = false;
        return e ? e : TDM_EMALFORMED;
    }
    if (ch->inflight && m->src == c->o.client_id && c->o.client_id && m->op_id == ch->inflight_id) {
        /* our own operation, seen during a catch-up: it was applied */
        acked(c, ch, m->version);
        caught_up(c, ch);
        return TDM_OK;
    }
    ot_op *op = NULL, *in2 = NULL, *op2 = NULL, *buf2 = NULL, *op3 = NULL;
    tdm_err e = ot_op_clone(m->op, &op);
    if (!e && ch->inflight) {
        /* the server put our inflight op LEFT of what it had already */
        e = ot_op_transform_pair(ch->inflight, op, OT_LEFT, &in2, &op2);
        if (!e) {
            ot_op_free(op);
            op = op2;
        }
    }
    if (!e && ch->buffer) {
        e = ot_op_transform_pair(ch->buffer, op, OT_LEFT, &buf2, &op3);
        if (!e) {
            ot_op_free(op);
            op = op3;
        }
    }
    if (!e) e = apply_text(ch, op);
    if (e) {
        ot_op_free(in2);
        ot_op_free(buf2);
        ot_op_free(op);
        return e;
    }
    if (in2) {
        ot_op_free(ch->inflight);
        ch->inflight = in2;
    }
    if (buf2) {
        ot_op_free(ch->buffer);
        ch->buffer = buf2;
    }
    ch->version = m->version;
    if (c->ev.on_remote) c->ev.on_remote(c->ev.ctx, ch->id, op);
    ot_op_free(op);
    caught_up(c, ch);
    return TDM_OK;
}

void cl_ot_drop_local(sync_client *c, cl_chan *ch)
{
    if (!ch->inflight && !ch->buffer) return;
    ot_op *all = NULL;
    if (ch->inflight && ch->buffer) {
        if (ot_op_compose(ch->inflight, ch->buffer, &all)) all = NULL;
    }
    cl_error_event(c, ch->id, SYNC_ERR_TOO_FAR_BEHIND,
                   "local operations dropped: the text was replaced by a snapshot",
                   all            ? all
                   : ch->inflight ? ch->inflight
                                  : ch->buffer);
    ot_op_free(all);
    ot_op_free(ch->inflight);
    ot_op_free(ch->buffer);
    ch->inflight = ch->buffer = NULL;
    ch->inflight_sent = false;
}

tdm_err cl_ot_snapshot(sync_client *c, cl_chan *ch, uint64_t version)
{
    if (!utf8_validate(ch->xfer.data, ch->xfer.len, NULL, NULL)) return TDM_EUTF8;
    tbuf_reset(&ch->text);
    tdm_err e = tbuf_append(&ch->text, ch->xfer.data, ch->xfer.len);
    if (e) return e;
    cl_ot_drop_local(c, ch);
    ch->version = version;
    ch->has_version = true;
    if (c->ev.on_remote) c->ev.on_remote(c->ev.ctx, ch->id, NULL);
    caught_up(c, ch);
    return TDM_OK;
}

void cl_ot_refused(sync_client *c, cl_chan *ch, const syncm *m)
{
    if (!ch->inflight || !m->ref || m->ref != ch->inflight_id) return;
    switch (m->code) {
    case SYNC_ERR_RATE_LIMITED:
    case SYNC_ERR_SERVER_BUSY:
        ch->inflight_sent = false; /* sync_client_retry sends it again */
        return;
    case SYNC_ERR_STORAGE:
        return; /* applied but not stored; the OT_ACK follows */
    case SYNC_ERR_TOO_FAR_BEHIND:
        return; /* a snapshot follows and replaces the text */
    default:
        /* never acceptable: drop local state and start over from a snapshot */
        cl_ot_drop_local(c, ch);
        ch->has_version = false;
        syncm u = {.type = SYNCM_UNSUBSCRIBE, .channel = ch->id};
        if (cl_send(c, &u) == TDM_OK) cl_subscribe_frame(c, ch);
        return;
    }
}

tdm_err sync_client_ot_edit(sync_client *c, uint32_t channel, const ot_op *op)
{
    cl_chan *ch = cl_chan_get(c, channel);
    if (!ch || ch->mode != SYNC_MODE_OT || !ch->has_version || !op) return TDM_EINVAL;
    if (ot_op_is_noop(op))
        return ot_op_base_len(op) == utf8_count(ch->text.data, ch->text.len) ? TDM_OK
                                                                             : TDM_EBASELEN;
    ot_op *next = NULL;
    tdm_err e = ch->buffer ? ot_op_compose(ch->buffer, op, &next) : ot_op_clone(op, &next);
    if (e) return e;
    e = apply_text(ch, op);
    if (e) {
        ot_op_free(next);
        return e;
    }
    if (!ch->inflight) {
        ch->inflight = next;
        ch->inflight_id = ++ch->next_op_id;
        ch->inflight_sent = false;
        return cl_ot_send_inflight(c, ch);
    }
    ot_op_free(ch->buffer);
    ch->buffer = next;
    return TDM_OK;
}

tdm_err sync_client_ot_text(const sync_client *c, uint32_t channel, tbuf *out)
{
    cl_chan *ch = cl_chan_get(c, channel);
    if (!ch || ch->mode != SYNC_MODE_OT) return TDM_EINVAL;
    return tbuf_append(out, ch->text.data, ch->text.len);
}

uint64_t sync_client_ot_version(const sync_client *c, uint32_t channel)
{
    cl_chan *ch = cl_chan_get(c, channel);
    return ch ? ch->version : 0;
}

sync_ot_state sync_client_ot_state(const sync_client *c, uint32_t channel)
{
    cl_chan *ch = cl_chan_get(c, channel);
    if (!ch || !ch->inflight) return SYNC_OT_SYNCHRONIZED;
    return ch->buffer ? SYNC_OT_AWAITING_WITH_BUFFER : SYNC_OT_AWAITING_ACK;
}
