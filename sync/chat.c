/* chat.c - chat (send with a client message id, persisted then acked and
 * broadcast with the host-assigned id, history pages), typing indicators,
 * and the release of durable changes (ACK, OT_ACK, CHAT_ACK) in order. */
#include "sync_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ chat */

tdm_err sync__on_chat_send(sync_session *ss, sync_chan *c, const syncm *m)
{
    sync_server *srv = ss->srv;
    sync_room *r = c->room;
    if (!(srv->o.caps & SYNC_CAP_CHAT)) {
        sync__send_error(ss, c->id, SYNC_ERR_NOT_ALLOWED, m->msg_id, 0, "no chat", NULL);
        return TDM_EINVAL;
    }
    if (!sync__rate(ss, c, SYNC_RATE_CHAT, c->id, m->msg_id)) return TDM_EINVAL;
    if (sync__pending_full(srv)) {
        sync__send_error(ss, c->id, SYNC_ERR_SERVER_BUSY, m->msg_id, 500, "too many writes pending",
                         NULL);
        return TDM_ETOOBIG;
    }
    size_t ul = strlen(c->auth.user), dl = strlen(c->auth.display);
    uint8_t *blob = malloc(ul + dl + m->text.n + 1);
    if (!blob) {
        sync__send_error(ss, c->id, SYNC_ERR_INTERNAL, m->msg_id, 1000, "out of memory", NULL);
        return TDM_ENOMEM;
    }
    memcpy(blob, c->auth.user, ul);
    memcpy(blob + ul, c->auth.display, dl);
    memcpy(blob + ul + dl, m->text.p, m->text.n);
    sync_pending p = {.kind = SYNC_P_CHAT,
                      .room = r,
                      .chan = c,
                      .seq = m->msg_id,
                      .time_ms = srv->now_ms,
                      .client_id = ss->client_id,
                      .chat = blob,
                      .user_len = (uint16_t)ul,
                      .display_len = (uint16_t)dl,
                      .text_len = (uint32_t)m->text.n};
    sync_chat_rec rec = {.time_ms = srv->now_ms,
                         .client_id = ss->client_id,
                         .msg_id = m->msg_id,
                         .user = blob,
                         .user_len = ul,
                         .display = blob + ul,
                         .display_len = dl,
                         .text = blob + ul + dl,
                         .text_len = m->text.n};
    p.done = !srv->host.persist_chat;
    if (p.done) p.id = r->last_chat_id + 1;
    uint64_t token;
    if (sync__pending_add(srv, &p, &token)) {
        free(blob);
        return TDM_ETOOBIG;
    }
    if (srv->host.persist_chat) {
        tdm_err e = srv->host.persist_chat(srv->host.ctx, r->name, &rec, token);
        if (e) sync__pending_complete(srv, token, e, 0, false);
    } else {
        r->last_chat_id++;
    }
    sync__pending_drain(srv);
    return TDM_OK;
}

static void release_chat(sync_pending *p)
{
    sync_room *r = p->room;
    sync_chan *c = p->chan;
    bool live = c && !c->dead && c->sess;
    if (p->status) {
        if (live)
            sync__send_error(c->sess, c->id, SYNC_ERR_STORAGE, p->seq, 1000,
                             "the message was not stored", NULL);
        return;
    }
    if (p->id > r->last_chat_id) r->last_chat_id = p->id;
    if (live) {
        syncm a = {.type = SYNCM_CHAT_ACK,
                   .channel = c->id,
                   .msg_id = p->seq,
                   .chat_id = p->id,
                   .time_ms = p->time_ms};
        sync__send(c->sess, &a, 0);
    }
    if (p->dup) return; /* the others got it the first time */
    syncm b = {.type = SYNCM_CHAT_MSG, .chat_id = p->id, .time_ms = p->time_ms};
    b.user.p = p->chat, b.user.n = p->user_len;
    b.display.p = p->chat + p->user_len, b.display.n = p->display_len;
    b.text.p = p->chat + p->user_len + p->display_len, b.text.n = p->text_len;
    sync__room_broadcast(r, &b, live ? c : NULL, -1, 0);
    sync_host *h = &r->srv->host;
    if (h->room_event) {
        sync_chat_rec rec = {.id = p->id,
                             .time_ms = p->time_ms,
                             .client_id = p->client_id,
                             .msg_id = p->seq,
                             .user = b.user.p,
                             .user_len = b.user.n,
                             .display = b.display.p,
                             .display_len = b.display.n,
                             .text = b.text.p,
                             .text_len = b.text.n};
        sync_room_event ev = {.kind = SYNC_ROOM_CHAT, .chat = &rec};
        h->room_event(h->ctx, r->name, &ev);
    }
}

/* history: records are copied into one arena as they are emitted */
typedef struct hist_page {
    tbuf arena;
    syncm_chat recs[SYNCM_MAX_HISTORY + 1];
    size_t off[SYNCM_MAX_HISTORY + 1][3];
    size_t n, want, bytes;
    bool more;
} hist_page;

/* payload budget of one reply: well under SYNCM_CHUNK_FRAME */
#define HIST_BUDGET (SYNCM_CHUNK_FRAME - 4096)

static tdm_err page_emit(void *arg, const sync_chat_rec *rec)
{
    hist_page *h = arg;
    if (h->n == h->want) {
        h->more = true;
        return TDM_ERANGE; /* stop */
    }
    size_t ul = rec->user_len > SYNCM_MAX_USER ? SYNCM_MAX_USER : rec->user_len;
    size_t dl = rec->display_len > SYNCM_MAX_USER ? SYNCM_MAX_USER : rec->display_len;
    size_t tl = rec->text_len > SYNCM_MAX_CHAT_TEXT ? SYNCM_MAX_CHAT_TEXT : rec->text_len;
    size_t cost = ul + dl + tl + 32;
    if (h->n && h->bytes + cost > HIST_BUDGET) {
        h->more = true;
        return TDM_ERANGE;
    }
    size_t base = h->arena.len;
    tdm_err e = tbuf_append(&h->arena, rec->user, ul);
    if (!e) e = tbuf_append(&h->arena, rec->display, dl);
    if (!e) e = tbuf_append(&h->arena, rec->text, tl);
    if (e) return e;
    h->off[h->n][0] = base;
    h->off[h->n][1] = ul;
    h->off[h->n][2] = dl;
    h->recs[h->n] = (syncm_chat){.id = rec->id, .time_ms = rec->time_ms};
    h->recs[h->n].text.n = tl;
    h->bytes += cost;
    h->n++;
    return TDM_OK;
}

tdm_err sync__on_chat_history(sync_session *ss, sync_chan *c, uint64_t after, uint64_t limit)
{
    sync_server *srv = ss->srv;
    if (!(srv->o.caps & SYNC_CAP_CHAT)) return TDM_OK;
    if (!sync__rate(ss, c, SYNC_RATE_OTHER, c->id, 0)) return TDM_EINVAL;
    hist_page *h = calloc(1, sizeof *h);
    if (!h) return TDM_ENOMEM;
    tbuf_init(&h->arena, SYNCM_CHUNK_FRAME);
    h->want = limit > SYNCM_MAX_HISTORY ? SYNCM_MAX_HISTORY : (size_t)limit;
    tdm_err e = TDM_OK;
    if (srv->host.chat_history)
        e = srv->host.chat_history(srv->host.ctx, c->room->name, after, h->want + 1, page_emit, h);
    if (e == TDM_ERANGE || e == TDM_ENOTFOUND) e = TDM_OK;
    if (e) {
        sync__send_error(ss, c->id, SYNC_ERR_STORAGE, 0, 1000, "chat history unavailable", NULL);
    } else {
        for (size_t i = 0; i < h->n; i++) {
            syncm_chat *r = &h->recs[i];
            const uint8_t *p = h->arena.data + h->off[i][0];
            r->user = (syncm_str){p, h->off[i][1]};
            r->display = (syncm_str){p + h->off[i][1], h->off[i][2]};
            r->text.p = p + h->off[i][1] + h->off[i][2];
        }
        syncm m = {.type = SYNCM_CHAT_HISTORY_REPLY,
                   .channel = c->id,
                   .more = h->more,
                   .recs = h->recs,
                   .nrecs = h->n};
        sync__send(ss, &m, 0);
    }
    tbuf_fini(&h->arena);
    free(h);
    return e;
}

/* ------------------------------------------------------------ typing */

/* broadcast c's indicator; report: tell host->room_event (a change, not a renewal) */
static void typing_send(sync_chan *c, bool on, bool report, sync_room_event_why why)
{
    syncm t = {.type = SYNCM_TYPING, .on = on};
    t.user.p = (const uint8_t *)c->auth.user, t.user.n = strlen(c->auth.user);
    t.display.p = (const uint8_t *)c->auth.display, t.display.n = strlen(c->auth.display);
    sync__room_broadcast(c->room, &t, c, -1, SYNC_F_EPHEMERAL);
    sync_host *h = &c->room->srv->host;
    if (report && h->room_event) {
        sync_room_event ev = {.kind = SYNC_ROOM_TYPING,
                              .why = why,
                              .user = c->auth.user,
                              .display = c->auth.display,
                              .on = on};
        h->room_event(h->ctx, c->room->name, &ev);
    }
}

void sync__typing_stop(sync_chan *c, sync_room_event_why why)
{
    if (!c->typing) return;
    c->typing = false;
    typing_send(c, false, true, why);
}

tdm_err sync__on_typing(sync_session *ss, sync_chan *c, const syncm *m, uint64_t now_ms)
{
    if (!(ss->srv->o.caps & SYNC_CAP_TYPING)) return TDM_OK;
    if (!m->on) {
        sync__typing_stop(c, SYNC_WHY_CLIENT);
        return TDM_OK;
    }
    if (!sync__rate(ss, c, SYNC_RATE_TYPING, c->id, 0)) return TDM_EINVAL;
    bool started = !c->typing;
    c->typing = true;
    c->typing_until = now_ms + SYNC_TYPING_MS;
    typing_send(c, true, started, SYNC_WHY_CLIENT);
    return TDM_OK;
}

/* ------------------------------------------------------------ release */

void sync__release(sync_server *srv, sync_pending *p)
{
    (void)srv;
    sync_chan *c = p->chan;
    bool live = c && !c->dead && c->sess;
    switch (p->kind) {
    case SYNC_P_UPDATE:
    case SYNC_P_BARRIER:
        if (p->status) {
            p->room->persist_failed = true;
            if (live)
                sync__send_error(c->sess, c->id, SYNC_ERR_STORAGE, p->seq, 1000,
                                 "the update was not stored", NULL);
            return;
        }
        if (live) {
            syncm a = {.type = SYNCM_ACK, .channel = c->id, .seq = p->seq};
            sync__send(c->sess, &a, 0);
        }
        return;
    case SYNC_P_OT: {
        if (p->status) {
            p->room->persist_failed = true;
            if (live)
                sync__send_error(c->sess, c->id, SYNC_ERR_STORAGE, p->seq, 1000,
                                 "applied but not stored", NULL);
        }
        syncm a = {.type = SYNCM_OT_ACK, .channel = c->id, .op_id = p->seq, .version = p->version};
        if (c) sync__chan_fill(c, p->token, &a);
        return;
    }
    case SYNC_P_CHAT:
        release_chat(p);
        return;
    }
}
