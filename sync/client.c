/* client.c - sync_client core: lists, lifecycle, connect / disconnect,
 * channels, the outbound queue, inbound dispatch and chunk reassembly. */
#include "client_internal.h"

#include "utf8.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ lists */

cl_item *cl_item_new(uint64_t id, const void *p, size_t n)
{
    cl_item *it = malloc(sizeof *it + n);
    if (!it) return NULL;
    it->next = NULL;
    it->id = id;
    it->refused = false;
    it->n = n;
    if (n) memcpy(it->data, p, n);
    return it;
}

void cl_list_push(cl_list *l, cl_item *it)
{
    it->next = NULL;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->count++;
    l->bytes += it->n;
}

bool cl_list_remove(cl_list *l, uint64_t id)
{
    cl_item *prev = NULL;
    for (cl_item *it = l->head; it; prev = it, it = it->next) {
        if (it->id != id) continue;
        if (prev)
            prev->next = it->next;
        else
            l->head = it->next;
        if (l->tail == it) l->tail = prev;
        l->count--;
        l->bytes -= it->n;
        free(it);
        return true;
    }
    return false;
}

void cl_list_free(cl_list *l)
{
    cl_item *it = l->head;
    while (it) {
        cl_item *n = it->next;
        free(it);
        it = n;
    }
    memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------------ lifecycle */

#define DEF(x, v)                                                                                  \
    do {                                                                                           \
        if (!(x)) (x) = (v);                                                                       \
    } while (0)

tdm_err sync_client_new(const sync_client_opts *opts, const sync_client_events *ev,
                        sync_client **out)
{
    if (!out || (opts && opts->token_len > SYNCM_MAX_TOKEN)) return TDM_EINVAL;
    sync_client *c = calloc(1, sizeof *c);
    if (!c) return TDM_ENOMEM;
    if (opts) c->o = *opts;
    if (ev) c->ev = *ev;
    DEF(c->o.max_out_bytes, (size_t)16 << 20);
    DEF(c->o.max_unacked_bytes, (size_t)64 << 20);
    DEF(c->o.max_frame, (size_t)64 << 20);
    DEF(c->o.max_transfer_bytes, (size_t)256 << 20);
    DEF(c->o.max_channels, 64);
    DEF(c->o.max_chat_pending, 256);
    if (c->o.max_frame > SYNCM_MAX_FRAME) c->o.max_frame = SYNCM_MAX_FRAME;
    if (c->o.max_channels > SYNCM_MAX_CHANNEL) c->o.max_channels = SYNCM_MAX_CHANNEL;
    if (opts && opts->token_len) memcpy(c->token, opts->token, opts->token_len);
    c->token_len = opts ? opts->token_len : 0;
    c->o.token = NULL;
    c->chans = calloc(c->o.max_channels, sizeof *c->chans);
    if (!c->chans) {
        free(c);
        return TDM_ENOMEM;
    }
    *out = c;
    return TDM_OK;
}

static void chan_free(sync_client *c, cl_chan *ch)
{
    tbuf_fini(&ch->xfer);
    tbuf_fini(&ch->text);
    crdt_sv_free(ch->sent);
    c->unacked_bytes -= ch->unacked.bytes;
    cl_list_free(&ch->unacked);
    cl_list_free(&ch->chats);
    ot_op_free(ch->inflight);
    ot_op_free(ch->buffer);
    free(ch);
}

void sync_client_free(sync_client *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nchans; i++) chan_free(c, c->chans[i]);
    cl_list_free(&c->out);
    free(c->chans);
    free(c);
}

cl_chan *cl_chan_get(const sync_client *c, uint32_t id)
{
    for (size_t i = 0; i < c->nchans; i++)
        if (c->chans[i]->id == id) return c->chans[i];
    return NULL;
}

/* ------------------------------------------------------------ sending */

tdm_err cl_send(sync_client *c, const syncm *m)
{
    if (!c->connected) return TDM_OK;
    tbuf b;
    tbuf_init(&b, SYNCM_MAX_FRAME);
    tdm_err e = syncm_encode(m, &b);
    if (!e && c->out.bytes + b.len > c->o.max_out_bytes) e = TDM_ETOOBIG;
    cl_item *it = e ? NULL : cl_item_new(0, b.data, b.len);
    if (!e && !it) e = TDM_ENOMEM;
    if (it) cl_list_push(&c->out, it);
    tbuf_fini(&b);
    return e;
}

bool sync_client_next_out(sync_client *c, const uint8_t **p, size_t *n)
{
    if (!c->out.head) return false;
    *p = c->out.head->data;
    *n = c->out.head->n;
    return true;
}

void sync_client_consume(sync_client *c)
{
    cl_item *it = c->out.head;
    if (!it) return;
    c->out.head = it->next;
    if (!c->out.head) c->out.tail = NULL;
    c->out.count--;
    c->out.bytes -= it->n;
    free(it);
}

void cl_error_event(sync_client *c, uint32_t channel, sync_errcode code, const char *text,
                    const ot_op *op)
{
    if (!c->ev.on_error) return;
    syncm m = {.type = SYNCM_ERROR, .channel = channel, .code = code, .op = (ot_op *)op};
    m.text.p = (const uint8_t *)text;
    m.text.n = strlen(text);
    c->ev.on_error(c->ev.ctx, &m);
}

/* ------------------------------------------------------------ connection */

tdm_err cl_subscribe_frame(sync_client *c, cl_chan *ch)
{
    syncm m = {.type = SYNCM_SUBSCRIBE, .channel = ch->id, .mode = ch->mode};
    m.name.p = (const uint8_t *)ch->name;
    m.name.n = strlen(ch->name);
    crdt_sv *sv = NULL;
    if (ch->mode == SYNC_MODE_CRDT) {
        sv = crdt_sv_new();
        if (!sv) return TDM_ENOMEM;
        tdm_err e = crdt_doc_state_vector(ch->doc, sv);
        if (e) {
            crdt_sv_free(sv);
            return e;
        }
        m.sv = sv;
    } else {
        m.has_version = ch->has_version;
        m.version = ch->version;
    }
    if (ch->chat_replay || ch->chat_last) {
        m.has_after = true;
        m.after = ch->chat_last;
    }
    ch->subscribed = ch->synced = false;
    tdm_err e = cl_send(c, &m);
    crdt_sv_free(sv);
    return e;
}

tdm_err sync_client_connect(sync_client *c, uint64_t now_ms)
{
    (void)now_ms;
    sync_client_disconnect(c);
    c->connected = true;
    syncm h = {.type = SYNCM_HELLO,
               .proto = SYNCM_PROTOCOL_VERSION,
               .caps = SYNC_CAP_ALL,
               .client_id = c->o.client_id,
               .token = {c->token, c->token_len}};
    tdm_err e = cl_send(c, &h);
    for (size_t i = 0; i < c->nchans && !e; i++) e = cl_subscribe_frame(c, c->chans[i]);
    return e;
}

void sync_client_disconnect(sync_client *c)
{
    c->connected = false;
    cl_list_free(&c->out);
    for (size_t i = 0; i < c->nchans; i++) {
        cl_chan *ch = c->chans[i];
        ch->subscribed = ch->synced = false;
        ch->xfer_on = false;
        tbuf_fini(&ch->xfer);
        ch->inflight_sent = false;
    }
}

bool sync_client_connected(const sync_client *c)
{
    return c->connected;
}

tdm_err sync_client_set_token(sync_client *c, const uint8_t *token, size_t n)
{
    if (n > SYNCM_MAX_TOKEN || (n && !token)) return TDM_EINVAL;
    if (n) memcpy(c->token, token, n);
    c->token_len = n;
    syncm h = {.type = SYNCM_HELLO,
               .proto = SYNCM_PROTOCOL_VERSION,
               .caps = SYNC_CAP_ALL,
               .client_id = c->o.client_id,
               .token = {c->token, c->token_len}};
    return cl_send(c, &h);
}

/* ------------------------------------------------------------ channels */

static tdm_err subscribe(sync_client *c, const char *name, unsigned mode, crdt_doc *doc,
                         bool chat_replay, uint32_t *channel)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > SYNCM_MAX_NAME || !utf8_validate((const uint8_t *)name, len, NULL, NULL))
        return TDM_EINVAL;
    if (c->nchans >= c->o.max_channels) return TDM_ETOOBIG;
    cl_chan *ch = calloc(1, sizeof *ch);
    if (!ch) return TDM_ENOMEM;
    do {
        c->next_chan = c->next_chan % SYNCM_MAX_CHANNEL + 1;
    } while (cl_chan_get(c, c->next_chan));
    ch->id = c->next_chan;
    memcpy(ch->name, name, len + 1);
    ch->mode = mode;
    ch->doc = doc;
    ch->chat_replay = chat_replay;
    tbuf_init(&ch->xfer, c->o.max_transfer_bytes);
    tbuf_init(&ch->text, c->o.max_transfer_bytes);
    if (mode == SYNC_MODE_CRDT && !(ch->sent = crdt_sv_new())) {
        free(ch);
        return TDM_ENOMEM;
    }
    c->chans[c->nchans++] = ch;
    if (channel) *channel = ch->id;
    return cl_subscribe_frame(c, ch);
}

tdm_err sync_client_subscribe_crdt(sync_client *c, const char *name, crdt_doc *doc,
                                   bool chat_replay, uint32_t *channel)
{
    if (!doc) return TDM_EINVAL;
    return subscribe(c, name, SYNC_MODE_CRDT, doc, chat_replay, channel);
}

tdm_err sync_client_subscribe_ot(sync_client *c, const char *name, bool chat_replay,
                                 uint32_t *channel)
{
    return subscribe(c, name, SYNC_MODE_OT, NULL, chat_replay, channel);
}

tdm_err sync_client_unsubscribe(sync_client *c, uint32_t channel)
{
    for (size_t i = 0; i < c->nchans; i++) {
        cl_chan *ch = c->chans[i];
        if (ch->id != channel) continue;
        syncm m = {.type = SYNCM_UNSUBSCRIBE, .channel = channel};
        tdm_err e = cl_send(c, &m);
        memmove(&c->chans[i], &c->chans[i + 1], (c->nchans - i - 1) * sizeof *c->chans);
        c->nchans--;
        chan_free(c, ch);
        return e;
    }
    return TDM_EINVAL;
}

bool sync_client_synced(const sync_client *c, uint32_t channel)
{
    cl_chan *ch = cl_chan_get(c, channel);
    return ch && ch->synced;
}

tdm_err sync_client_ping(sync_client *c, uint64_t nonce)
{
    syncm m = {.type = SYNCM_PING, .nonce = nonce};
    return cl_send(c, &m);
}

tdm_err sync_client_retry(sync_client *c)
{
    tdm_err e = TDM_OK;
    for (size_t i = 0; i < c->nchans && !e; i++) {
        cl_chan *ch = c->chans[i];
        if (!ch->subscribed) continue;
        if (ch->mode == SYNC_MODE_CRDT) e = cl_crdt_resend(c, ch, true);
        if (!e && ch->mode == SYNC_MODE_OT && ch->inflight && !ch->inflight_sent)
            e = cl_ot_send_inflight(c, ch);
        for (cl_item *it = ch->chats.head; it && !e; it = it->next) {
            if (!it->refused) continue;
            it->refused = false;
            syncm m = {.type = SYNCM_CHAT_SEND,
                       .channel = ch->id,
                       .msg_id = it->id,
                       .text = {it->data, it->n}};
            e = cl_send(c, &m);
        }
    }
    return e;
}

/* ------------------------------------------------------------ receiving */

/* one chunk; *done set when the transfer is complete (data in ch->xfer) */
static tdm_err chunk(sync_client *c, cl_chan *ch, const syncm *m, uint64_t id, bool *done)
{
    *done = false;
    if (m->offset == 0) {
        tbuf_reset(&ch->xfer);
        ch->xfer_on = true;
        ch->xfer_id = id;
        if (m->total > c->o.max_transfer_bytes) {
            ch->xfer_on = false;
            return TDM_ETOOBIG;
        }
    } else if (!ch->xfer_on || ch->xfer_id != id || m->offset != ch->xfer.len) {
        return TDM_EMALFORMED; /* a piece of a transfer we do not follow */
    }
    tdm_err e = tbuf_append(&ch->xfer, m->data.p, m->data.n);
    if (e) {
        ch->xfer_on = false;
        return e;
    }
    if (c->ev.on_progress) c->ev.on_progress(c->ev.ctx, ch->id, ch->xfer.len, m->total);
    if (ch->xfer.len == m->total) {
        ch->xfer_on = false;
        *done = true;
    }
    return TDM_OK;
}

static tdm_err on_error(sync_client *c, const syncm *m)
{
    cl_chan *ch = m->channel ? cl_chan_get(c, m->channel) : NULL;
    if (ch && ch->mode == SYNC_MODE_CRDT) cl_crdt_refused(c, ch, m);
    if (ch && ch->mode == SYNC_MODE_OT) cl_ot_refused(c, ch, m);
    if (ch) cl_chat_refused(c, ch, m);
    if (c->ev.on_error) c->ev.on_error(c->ev.ctx, m);
    return TDM_OK;
}

static tdm_err on_chan_msg(sync_client *c, cl_chan *ch, const syncm *m)
{
    bool done;
    tdm_err e = TDM_OK;
    switch (m->type) {
    case SYNCM_SUBSCRIBED:
        ch->subscribed = true;
        ch->access = (unsigned)m->access;
        if (c->ev.on_subscribed) c->ev.on_subscribed(c->ev.ctx, ch->id, m);
        e = ch->mode == SYNC_MODE_CRDT ? cl_crdt_subscribed(c, ch, m) : cl_ot_subscribed(c, ch, m);
        if (!e) e = cl_chat_subscribed(c, ch);
        return e;
    case SYNCM_UPDATE_CHUNK:
        if (ch->mode != SYNC_MODE_CRDT) return TDM_EMALFORMED;
        e = chunk(c, ch, m, m->sync_id, &done);
        if (e || !done) return e;
        e = cl_crdt_apply(c, ch, ch->xfer.data, ch->xfer.len);
        tbuf_reset(&ch->xfer);
        if (!e && !ch->synced && ch->subscribed) {
            ch->synced = true;
            if (c->ev.on_synced) c->ev.on_synced(c->ev.ctx, ch->id);
        }
        return e;
    case SYNCM_UPDATE:
        if (ch->mode != SYNC_MODE_CRDT) return TDM_EMALFORMED;
        return cl_crdt_apply(c, ch, m->data.p, m->data.n);
    case SYNCM_ACK:
        return ch->mode == SYNC_MODE_CRDT ? cl_crdt_ack(c, ch, m->seq) : TDM_EMALFORMED;
    case SYNCM_OT_ACK:
        return ch->mode == SYNC_MODE_OT ? cl_ot_ack(c, ch, m) : TDM_EMALFORMED;
    case SYNCM_OT_REMOTE:
        return ch->mode == SYNC_MODE_OT ? cl_ot_remote(c, ch, m) : TDM_EMALFORMED;
    case SYNCM_OT_SNAPSHOT:
        if (ch->mode != SYNC_MODE_OT) return TDM_EMALFORMED;
        e = chunk(c, ch, m, m->version, &done);
        if (e || !done) return e;
        e = cl_ot_snapshot(c, ch, m->version);
        tbuf_reset(&ch->xfer);
        return e;
    case SYNCM_AWARENESS:
        if (c->ev.on_awareness) c->ev.on_awareness(c->ev.ctx, ch->id, m->data.p, m->data.n);
        return TDM_OK;
    case SYNCM_CHAT_ACK:
        cl_chat_ack(c, ch, m);
        return TDM_OK;
    case SYNCM_CHAT_MSG: {
        syncm_chat r = {.id = m->chat_id,
                        .time_ms = m->time_ms,
                        .user = m->user,
                        .display = m->display,
                        .text = m->text};
        cl_chat_msg(c, ch, &r);
        return TDM_OK;
    }
    case SYNCM_CHAT_HISTORY_REPLY:
        cl_chat_reply(c, ch, m);
        return TDM_OK;
    case SYNCM_TYPING:
        if (c->ev.on_typing) c->ev.on_typing(c->ev.ctx, ch->id, &m->user, &m->display, m->on);
        return TDM_OK;
    default:
        return TDM_OK;
    }
}

tdm_err sync_client_recv(sync_client *c, const uint8_t *p, size_t n, uint64_t now_ms)
{
    (void)now_ms;
    syncm m;
    tdm_err e = syncm_decode(p, n, c->o.max_frame, &m);
    if (e) return e;
    switch (m.type) {
    case SYNCM_WELCOME:
        if (c->ev.on_welcome) c->ev.on_welcome(c->ev.ctx, &m);
        break;
    case SYNCM_ERROR:
        e = on_error(c, &m);
        break;
    case SYNCM_UNKNOWN:
    case SYNCM_PONG:
        break;
    default: {
        cl_chan *ch = cl_chan_get(c, m.channel);
        if (ch) e = on_chan_msg(c, ch, &m);
        break;
    }
    }
    syncm_clear(&m);
    return e;
}
