/* client_chat.c - chat, typing and awareness for sync_client: messages are
 * kept until CHAT_ACK and resent after a reconnect (the server deduplicates
 * by client id and message id); records are reported once each, in id
 * order; history pages are followed while the server says there is more. */
#include "client_internal.h"

#include "utf8.h"

#include <stdlib.h>
#include <string.h>

tdm_err sync_client_chat_send(sync_client *c, uint32_t channel, const char *text, size_t n,
                              uint64_t *msg_id)
{
    cl_chan *ch = cl_chan_get(c, channel);
    if (!ch || !text || n == 0 || n > SYNCM_MAX_CHAT_TEXT ||
        !utf8_validate((const uint8_t *)text, n, NULL, NULL))
        return TDM_EINVAL;
    if (ch->chats.count >= c->o.max_chat_pending) return TDM_ETOOBIG;
    cl_item *it = cl_item_new(ch->next_msg_id + 1, text, n);
    if (!it) return TDM_ENOMEM;
    ch->next_msg_id++;
    cl_list_push(&ch->chats, it);
    if (msg_id) *msg_id = it->id;
    if (!ch->subscribed) return TDM_OK;
    syncm m = {
        .type = SYNCM_CHAT_SEND, .channel = ch->id, .msg_id = it->id, .text = {it->data, it->n}};
    return cl_send(c, &m);
}

tdm_err cl_chat_subscribed(sync_client *c, cl_chan *ch)
{
    tdm_err e = TDM_OK;
    for (cl_item *it = ch->chats.head; it && !e; it = it->next) {
        it->refused = false;
        syncm m = {.type = SYNCM_CHAT_SEND,
                   .channel = ch->id,
                   .msg_id = it->id,
                   .text = {it->data, it->n}};
        e = cl_send(c, &m);
    }
    return e;
}

void cl_chat_msg(sync_client *c, cl_chan *ch, const syncm_chat *rec)
{
    if (rec->id <= ch->chat_last) return; /* seen (replay overlapping live) */
    ch->chat_last = rec->id;
    if (c->ev.on_chat) c->ev.on_chat(c->ev.ctx, ch->id, rec);
}

void cl_chat_ack(sync_client *c, cl_chan *ch, const syncm *m)
{
    if (!cl_list_remove(&ch->chats, m->msg_id)) return; /* a second ack of a resend */
    if (m->chat_id > ch->chat_last) ch->chat_last = m->chat_id;
    if (c->ev.on_chat_ack) c->ev.on_chat_ack(c->ev.ctx, ch->id, m->msg_id, m->chat_id);
}

void cl_chat_reply(sync_client *c, cl_chan *ch, const syncm *m)
{
    for (size_t i = 0; i < m->nrecs; i++) cl_chat_msg(c, ch, &m->recs[i]);
    if (m->more && m->nrecs) sync_client_chat_history(c, ch->id, ch->chat_last, SYNCM_MAX_HISTORY);
}

void cl_chat_refused(sync_client *c, cl_chan *ch, const syncm *m)
{
    (void)c;
    if (!m->ref) return;
    for (cl_item *it = ch->chats.head; it; it = it->next) {
        if (it->id != m->ref) continue;
        if (m->code == SYNC_ERR_RATE_LIMITED || m->code == SYNC_ERR_SERVER_BUSY ||
            m->code == SYNC_ERR_STORAGE || m->code == SYNC_ERR_INTERNAL)
            it->refused = true;
        else
            cl_list_remove(&ch->chats, m->ref);
        return;
    }
}

tdm_err sync_client_chat_history(sync_client *c, uint32_t channel, uint64_t after, uint64_t limit)
{
    cl_chan *ch = cl_chan_get(c, channel);
    if (!ch || limit == 0) return TDM_EINVAL;
    if (limit > SYNCM_MAX_HISTORY) limit = SYNCM_MAX_HISTORY;
    syncm m = {.type = SYNCM_CHAT_HISTORY, .channel = channel, .after = after, .limit = limit};
    return cl_send(c, &m);
}

uint64_t sync_client_chat_last(const sync_client *c, uint32_t channel)
{
    cl_chan *ch = cl_chan_get(c, channel);
    return ch ? ch->chat_last : 0;
}

tdm_err sync_client_typing(sync_client *c, uint32_t channel, bool on)
{
    cl_chan *ch = cl_chan_get(c, channel);
    if (!ch) return TDM_EINVAL;
    syncm m = {.type = SYNCM_TYPING, .channel = channel, .on = on};
    return cl_send(c, &m);
}

tdm_err sync_client_awareness(sync_client *c, uint32_t channel, const uint8_t *p, size_t n)
{
    cl_chan *ch = cl_chan_get(c, channel);
    if (!ch || (n && !p)) return TDM_EINVAL;
    syncm m = {.type = SYNCM_AWARENESS, .channel = channel, .data = {p, n}};
    return cl_send(c, &m);
}
