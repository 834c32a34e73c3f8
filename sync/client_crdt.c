/* client_crdt.c - CRDT channels of sync_client: local operations go out as
 * UPDATE frames with increasing sequence numbers and are kept until acked;
 * remote updates and transfers are applied to the borrowed document. */
#include "client_internal.h"

#include <stdlib.h>
#include <string.h>

/* after remote operations arrived: the server has them, so they are not
 * ours to send; our own entry in `sent` is left as it is */
static tdm_err track_remote(cl_chan *ch)
{
    uint64_t own = crdt_doc_client(ch->doc);
    crdt_sv *sv = crdt_sv_new();
    if (!sv) return TDM_ENOMEM;
    tdm_err e = crdt_doc_state_vector(ch->doc, sv);
    if (!e) e = crdt_sv_set(sv, own, crdt_sv_get(ch->sent, own));
    if (!e) e = crdt_sv_merge(ch->sent, sv);
    crdt_sv_free(sv);
    return e;
}

tdm_err cl_crdt_apply(sync_client *c, cl_chan *ch, const uint8_t *p, size_t n)
{
    tdm_err e = crdt_doc_apply(ch->doc, p, n);
    if (e) return e;
    e = track_remote(ch);
    if (c->ev.on_remote) c->ev.on_remote(c->ev.ctx, ch->id, NULL);
    return e;
}

static tdm_err send_update(sync_client *c, cl_chan *ch, const cl_item *it)
{
    syncm m = {.type = SYNCM_UPDATE, .channel = ch->id, .seq = it->id, .data = {it->data, it->n}};
    return cl_send(c, &m);
}

tdm_err cl_crdt_resend(sync_client *c, cl_chan *ch, bool only_refused)
{
    tdm_err e = TDM_OK;
    for (cl_item *it = ch->unacked.head; it && !e; it = it->next) {
        if (only_refused && !it->refused) continue;
        it->refused = false;
        e = send_update(c, ch, it);
    }
    return e;
}

tdm_err cl_crdt_subscribed(sync_client *c, cl_chan *ch, const syncm *m)
{
    /* what the server holds needs no sending; what it acked before is
     * durable; what it did not ack goes again, then anything new */
    tdm_err e = m->sv ? crdt_sv_merge(ch->sent, m->sv) : TDM_OK;
    if (!e) e = cl_crdt_resend(c, ch, false);
    if (!e && ch->access == SYNC_ACCESS_WRITE) e = sync_client_flush(c, ch->id);
    return e;
}

tdm_err sync_client_flush(sync_client *c, uint32_t channel)
{
    cl_chan *ch = cl_chan_get(c, channel);
    if (!ch || ch->mode != SYNC_MODE_CRDT) return TDM_EINVAL;
    uint64_t own = crdt_doc_client(ch->doc);
    crdt_sv *now = crdt_sv_new();
    if (!now) return TDM_ENOMEM;
    tdm_err e = crdt_doc_state_vector(ch->doc, now);
    if (e || crdt_sv_get(now, own) <= crdt_sv_get(ch->sent, own)) {
        crdt_sv_free(now);
        return e;
    }
    tbuf b;
    tbuf_init(&b, c->o.max_unacked_bytes);
    e = crdt_doc_diff(ch->doc, ch->sent, &b);
    if (!e && c->unacked_bytes + b.len > c->o.max_unacked_bytes) e = TDM_ETOOBIG;
    cl_item *it = e ? NULL : cl_item_new(ch->next_seq + 1, b.data, b.len);
    if (!e && !it) e = TDM_ENOMEM;
    if (!e) {
        ch->next_seq++;
        cl_list_push(&ch->unacked, it);
        c->unacked_bytes += it->n;
        crdt_sv_merge(ch->sent, now);
        if (ch->subscribed) e = send_update(c, ch, it);
    }
    tbuf_fini(&b);
    crdt_sv_free(now);
    return e;
}

tdm_err cl_crdt_ack(sync_client *c, cl_chan *ch, uint64_t seq)
{
    size_t before = ch->unacked.bytes;
    if (cl_list_remove(&ch->unacked, seq)) c->unacked_bytes -= before - ch->unacked.bytes;
    if (c->ev.on_ack) c->ev.on_ack(c->ev.ctx, ch->id, seq);
    return TDM_OK;
}

void cl_crdt_refused(sync_client *c, cl_chan *ch, const syncm *m)
{
    if (!m->ref) return;
    for (cl_item *it = ch->unacked.head; it; it = it->next) {
        if (it->id != m->ref) continue;
        switch (m->code) {
        case SYNC_ERR_RATE_LIMITED:
        case SYNC_ERR_SERVER_BUSY:
        case SYNC_ERR_STORAGE:
        case SYNC_ERR_INTERNAL:
            it->refused = true; /* sync_client_retry sends it again */
            return;
        default: {
            /* never acceptable (malformed, not allowed, too big): forget it */
            size_t before = ch->unacked.bytes;
            cl_list_remove(&ch->unacked, m->ref);
            c->unacked_bytes -= before - ch->unacked.bytes;
            return;
        }
        }
    }
}

tdm_err sync_client_sync_step(sync_client *c, uint32_t channel)
{
    cl_chan *ch = cl_chan_get(c, channel);
    if (!ch || ch->mode != SYNC_MODE_CRDT) return TDM_EINVAL;
    crdt_sv *sv = crdt_sv_new();
    if (!sv) return TDM_ENOMEM;
    tdm_err e = crdt_doc_state_vector(ch->doc, sv);
    syncm m = {.type = SYNCM_SYNC_STEP, .channel = ch->id, .sv = sv};
    if (!e) e = cl_send(c, &m);
    crdt_sv_free(sv);
    return e;
}

size_t sync_client_unacked(const sync_client *c, uint32_t channel)
{
    cl_chan *ch = cl_chan_get(c, channel);
    return ch ? ch->unacked.count : 0;
}
