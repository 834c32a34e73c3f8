/* session_recv.c - inbound frames of a server session: decode, the HELLO
 * handshake, SUBSCRIBE / UNSUBSCRIBE, re-authorization, and dispatch of
 * channel messages to doc_sync.c, ot_room.c and chat.c. */
#include "sync_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static size_t chan_index(const sync_session *ss, uint32_t id)
{
    for (size_t i = 0; i < ss->nchans; i++)
        if (ss->chans[i]->id == id) return i;
    return SIZE_MAX;
}

static tdm_err authorize(sync_session *ss, const char *name, sync_auth *a)
{
    sync_server *srv = ss->srv;
    memset(a, 0, sizeof *a);
    if (!srv->host.authorize) {
        a->access = SYNC_ACCESS_WRITE;
        memcpy(a->user, "anon", 5);
        return TDM_OK;
    }
    const uint8_t *tok = ss->token ? ss->token : (const uint8_t *)"";
    tdm_err e = srv->host.authorize(srv->host.ctx, ss, tok, ss->token_len, name, a);
    a->user[SYNCM_MAX_USER] = a->display[SYNCM_MAX_USER] = '\0';
    if (e) a->access = SYNC_ACCESS_NONE;
    return e;
}

static tdm_err on_hello(sync_session *ss, const syncm *m)
{
    sync_server *srv = ss->srv;
    if (m->proto != SYNCM_PROTOCOL_VERSION) {
        sync__send_error(ss, 0, SYNC_ERR_VERSION_MISMATCH, 0, 0,
                         "this server speaks protocol version 1", NULL);
        if (ss->state == SYNC_S_NEW) sync__close(ss, SYNC_CLOSE_PROTOCOL, "version mismatch");
        return TDM_EVERSION;
    }
    bool refresh = ss->state == SYNC_S_READY;
    uint8_t *tok = NULL; /* an exact copy: most sessions hold a short token or none */
    if (m->token.n) {
        tok = malloc(m->token.n);
        if (!tok) {
            sync__send_error(ss, 0, SYNC_ERR_INTERNAL, 0, 1000, "out of memory", NULL);
            return TDM_ENOMEM;
        }
        memcpy(tok, m->token.p, m->token.n);
    }
    free(ss->token);
    ss->token = tok;
    ss->token_len = m->token.n;
    if (!refresh) ss->client_id = m->client_id;
    ss->state = SYNC_S_READY;
    syncm w = {.type = SYNCM_WELCOME,
               .proto = SYNCM_PROTOCOL_VERSION,
               .session_id = ss->id,
               .caps = srv->o.caps,
               .max_frame = srv->o.max_frame};
    sync__send(ss, &w, 0);
    if (refresh) return sync_session_reauthorize(ss, srv->now_ms);
    return TDM_OK;
}

tdm_err sync_session_reauthorize(sync_session *ss, uint64_t now_ms)
{
    ss->srv->now_ms = now_ms;
    for (size_t i = 0; i < ss->nchans;) {
        sync_chan *c = ss->chans[i];
        sync_auth a;
        authorize(ss, c->room->name, &a);
        if (a.access == SYNC_ACCESS_NONE) {
            uint32_t id = c->id;
            sync__session_leave(ss, i, now_ms);
            sync__send_error(ss, id, SYNC_ERR_NOT_ALLOWED, 0, 0, a.why ? a.why : "access revoked",
                             NULL);
            continue;
        }
        c->auth = a;
        c->access = a.access;
        i++;
    }
    return TDM_OK;
}

/* the room's awareness and typing state, for a new member */
static void send_presence(sync_session *ss, sync_chan *c)
{
    sync_room *r = c->room;
    size_t pos = 0;
    bool done = false;
    while (aw_count(r->aw) && !done) {
        tbuf b;
        tbuf_init(&b, SYNCM_MAX_FRAME);
        if (aw_encode_next(r->aw, &pos, &b, &done)) {
            tbuf_fini(&b);
            break;
        }
        syncm m = {.type = SYNCM_AWARENESS, .channel = c->id, .data = {b.data, b.len}};
        sync__send(ss, &m, SYNC_F_EPHEMERAL);
        tbuf_fini(&b);
    }
    for (sync_chan *o = r->members; o; o = o->rnext) {
        if (o == c || !o->typing) continue;
        syncm t = {.type = SYNCM_TYPING, .channel = c->id, .on = true};
        t.user.p = (const uint8_t *)o->auth.user, t.user.n = strlen(o->auth.user);
        t.display.p = (const uint8_t *)o->auth.display, t.display.n = strlen(o->auth.display);
        sync__send(ss, &t, SYNC_F_EPHEMERAL);
    }
}

static tdm_err on_subscribe(sync_session *ss, const syncm *m)
{
    sync_server *srv = ss->srv;
    uint32_t ch = m->channel;
    if (chan_index(ss, ch) != SIZE_MAX) {
        sync__send_error(ss, ch, SYNC_ERR_CHANNEL_IN_USE, 0, 0, "channel in use", NULL);
        return TDM_EINVAL;
    }
    if (ss->nchans >= srv->o.max_channels) {
        sync__send_error(ss, ch, SYNC_ERR_TOO_BIG, 0, 0, "too many subscriptions", NULL);
        return TDM_ETOOBIG;
    }
    if (ss->nchans == ss->chans_cap) { /* grows by doubling up to max_channels */
        size_t cap = ss->chans_cap ? 2 * ss->chans_cap : 4;
        if (cap > srv->o.max_channels) cap = srv->o.max_channels;
        sync_chan **p = realloc(ss->chans, cap * sizeof *p);
        if (!p) {
            sync__send_error(ss, ch, SYNC_ERR_INTERNAL, 0, 1000, "out of memory", NULL);
            return TDM_ENOMEM;
        }
        ss->chans = p;
        ss->chans_cap = cap;
    }
    uint64_t need = m->mode == SYNC_MODE_OT ? SYNC_CAP_OT : SYNC_CAP_CRDT;
    if (!(srv->o.caps & need)) {
        sync__send_error(ss, ch, SYNC_ERR_NOT_ALLOWED, 0, 0, "mode not offered", NULL);
        return TDM_EINVAL;
    }
    if (memchr(m->name.p, 0, m->name.n)) {
        sync__send_error(ss, ch, SYNC_ERR_MALFORMED, 0, 0, "NUL in document name", NULL);
        return TDM_EMALFORMED;
    }
    char name[SYNCM_MAX_NAME + 1];
    memcpy(name, m->name.p, m->name.n);
    name[m->name.n] = '\0';

    sync_auth a;
    authorize(ss, name, &a);
    if (a.access != SYNC_ACCESS_READ && a.access != SYNC_ACCESS_WRITE) {
        sync__send_error(ss, ch, SYNC_ERR_NOT_ALLOWED, 0, 0, a.why ? a.why : "not allowed", NULL);
        return TDM_EINVAL;
    }
    if (srv->host.rate_limit) {
        uint64_t retry =
            srv->host.rate_limit(srv->host.ctx, ss, a.user, SYNC_RATE_SUBSCRIBE, srv->now_ms);
        if (retry) {
            sync__send_error(ss, ch, SYNC_ERR_RATE_LIMITED, 0, retry, "rate limited", NULL);
            return TDM_EINVAL;
        }
    }
    sync_room *r;
    sync_errcode code;
    tdm_err e = sync__room_get(srv, name, m->name.n, &r, &code);
    if (e) {
        static const char *const why[] = {[SYNC_ERR_SERVER_BUSY] = "too many documents open",
                                          [SYNC_ERR_UNKNOWN_DOCUMENT] = "unknown document",
                                          [SYNC_ERR_LOAD_FAILED] = "the document failed to load",
                                          [SYNC_ERR_INTERNAL] = "out of memory"};
        sync__send_error(ss, ch, code, 0, code == SYNC_ERR_UNKNOWN_DOCUMENT ? 0 : 1000, why[code],
                         NULL);
        return e;
    }
    sync_chan *c = calloc(1, sizeof *c);
    if (!c) {
        sync__send_error(ss, ch, SYNC_ERR_INTERNAL, 0, 1000, "out of memory", NULL);
        return TDM_ENOMEM;
    }
    c->id = ch;
    c->mode = (unsigned)m->mode;
    c->access = a.access;
    c->auth = a;
    c->sess = ss;
    sync__room_join(r, c);
    ss->chans[ss->nchans++] = c;

    e = m->mode == SYNC_MODE_OT ? sync__ot_subscribed(ss, c, m) : sync__crdt_subscribed(ss, c, m);
    if (e) {
        sync__session_leave(ss, ss->nchans - 1, srv->now_ms);
        sync__send_error(ss, ch, e == TDM_ETOOBIG ? SYNC_ERR_SERVER_BUSY : SYNC_ERR_INTERNAL, 0,
                         1000, "cannot start the sync", NULL);
        return e;
    }
    if (m->has_after) sync__on_chat_history(ss, c, m->after, SYNCM_MAX_HISTORY);
    send_presence(ss, c);
    return TDM_OK;
}

/* is this message one a client sends on a channel? */
static bool chan_msg(syncm_type t)
{
    switch (t) {
    case SYNCM_UNSUBSCRIBE:
    case SYNCM_SYNC_STEP:
    case SYNCM_UPDATE:
    case SYNCM_AWARENESS:
    case SYNCM_OT_OP:
    case SYNCM_CHAT_SEND:
    case SYNCM_CHAT_HISTORY:
    case SYNCM_TYPING:
        return true;
    default:
        return false;
    }
}

static uint64_t msg_ref(const syncm *m)
{
    switch (m->type) {
    case SYNCM_UPDATE:
        return m->seq;
    case SYNCM_OT_OP:
        return m->op_id;
    case SYNCM_CHAT_SEND:
        return m->msg_id;
    default:
        return 0;
    }
}

static tdm_err on_chan(sync_session *ss, const syncm *m, uint64_t now_ms)
{
    size_t i = chan_index(ss, m->channel);
    if (i == SIZE_MAX) {
        sync__send_error(ss, m->channel, SYNC_ERR_UNKNOWN_CHANNEL, msg_ref(m), 0, "not subscribed",
                         m->type == SYNCM_OT_OP ? m->op : NULL);
        return TDM_ENOTFOUND;
    }
    sync_chan *c = ss->chans[i];
    switch (m->type) {
    case SYNCM_UNSUBSCRIBE:
        sync__session_leave(ss, i, now_ms);
        return TDM_OK;
    case SYNCM_SYNC_STEP:
        return sync__on_sync_step(ss, c, m);
    case SYNCM_UPDATE:
        return sync__on_update(ss, c, m);
    case SYNCM_AWARENESS: {
        if (!(ss->srv->o.caps & SYNC_CAP_AWARENESS)) return TDM_OK;
        if (!sync__rate(ss, c, SYNC_RATE_AWARENESS, c->id, 0)) return TDM_EINVAL;
        tdm_err e = sync__room_awareness(c->room, c, m->data.p, m->data.n, now_ms);
        if (e)
            sync__send_error(ss, c->id, e == TDM_ETOOBIG ? SYNC_ERR_TOO_BIG : SYNC_ERR_MALFORMED, 0,
                             0, "awareness update refused", NULL);
        return e;
    }
    case SYNCM_OT_OP:
        return sync__on_ot_op(ss, c, m);
    case SYNCM_CHAT_SEND:
        return sync__on_chat_send(ss, c, m);
    case SYNCM_CHAT_HISTORY:
        return sync__on_chat_history(ss, c, m->after, m->limit);
    case SYNCM_TYPING:
        return sync__on_typing(ss, c, m, now_ms);
    default:
        return TDM_EINVAL;
    }
}

tdm_err sync_session_recv(sync_session *ss, const uint8_t *p, size_t n, uint64_t now_ms)
{
    assert(ss);
    sync_server *srv = ss->srv;
    if (ss->closing) return TDM_OK;
    srv->now_ms = now_ms;
    ss->last_recv_ms = now_ms;
    srv->st.frames_in++;
    size_t cap = ss->state == SYNC_S_NEW ? srv->o.max_hello_frame : srv->o.max_frame;
    syncm m;
    tdm_err e = syncm_decode(p, n, cap, &m);
    if (e) {
        sync__send_error(ss, 0, e == TDM_ETOOBIG ? SYNC_ERR_TOO_BIG : SYNC_ERR_MALFORMED, 0, 0,
                         e == TDM_ETOOBIG ? "frame too big" : "malformed frame", NULL);
        return e;
    }
    if (m.type == SYNCM_UNKNOWN) return TDM_OK; /* ignored: a newer peer's message */
    if (ss->state == SYNC_S_NEW && m.type != SYNCM_HELLO) {
        sync__send_error(ss, 0, SYNC_ERR_BAD_STATE, msg_ref(&m), 0, "HELLO first", NULL);
        syncm_clear(&m);
        return TDM_EINVAL;
    }
    if (m.type == SYNCM_HELLO) {
        e = on_hello(ss, &m);
    } else if (m.type == SYNCM_PING) {
        syncm pong = {.type = SYNCM_PONG, .nonce = m.nonce};
        sync__send(ss, &pong, 0);
    } else if (m.type == SYNCM_PONG) {
        /* liveness only */
    } else if (m.type == SYNCM_SUBSCRIBE) {
        e = on_subscribe(ss, &m);
    } else if (chan_msg(m.type)) {
        e = on_chan(ss, &m, now_ms);
    } else {
        sync__send_error(ss, 0, SYNC_ERR_BAD_STATE, 0, 0, "not a client message", NULL);
        e = TDM_EINVAL;
    }
    syncm_clear(&m);
    sync__pump(ss);
    return e;
}
