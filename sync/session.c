/* session.c - one connection: the outbound queue with its byte cap and
 * backpressure, channels and their held frames, chunked transfers, session
 * lifecycle. Inbound dispatch is in session_recv.c. */
#include "sync_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* keep at most this many bytes queued before producing more chunks */
#define SYNC_PUMP_LOW (2 * SYNCM_CHUNK_FRAME)

/* ------------------------------------------------------------ the queue */

/* tell the host that ss has something to send */
static void notify_output(sync_session *ss)
{
    if (ss->srv->host.session_output) ss->srv->host.session_output(ss->srv->host.ctx, ss);
}

/* drop queued ephemeral frames (never the head: the host may be sending it)
 * until `need` more bytes fit; true when they do */
static bool drop_ephemeral(sync_session *ss, size_t need)
{
    size_t cap = ss->srv->o.max_out_bytes;
    sync_node *prev = ss->out.head;
    while (prev && ss->out_bytes + need > cap) {
        sync_node *n = prev->next;
        if (!n) break;
        if (n->flags & SYNC_F_EPHEMERAL) {
            prev->next = n->next;
            if (ss->out.tail == n) ss->out.tail = prev;
            ss->out.count--;
            ss->out_bytes -= n->blob->n;
            ss->srv->st.dropped_ephemeral++;
            sync__blob_unref(n->blob);
            free(n);
        } else {
            prev = n;
        }
    }
    return ss->out_bytes + need <= cap;
}

/* may n more bytes be queued? Applies the backpressure rules. */
static bool admit(sync_session *ss, size_t n, unsigned flags)
{
    if (ss->closing) return false;
    size_t cap = ss->srv->o.max_out_bytes;
    if (flags & SYNC_F_EPHEMERAL) {
        if (ss->out_bytes >= cap / 2 || ss->out_bytes + n > cap) {
            ss->srv->st.dropped_ephemeral++;
            return false;
        }
        return true;
    }
    if (ss->out_bytes + n <= cap) return true;
    if (drop_ephemeral(ss, n)) return true;
    sync__close(ss, SYNC_CLOSE_BACKPRESSURE, "outbound queue full");
    return false;
}

static void push(sync_session *ss, sync_fq *q, sync_blob *b, unsigned flags)
{
    sync_node *n = calloc(1, sizeof *n);
    if (!n) {
        sync__close(ss, SYNC_CLOSE_INTERNAL, "out of memory");
        return;
    }
    b->refs++;
    n->blob = b;
    n->flags = flags;
    ss->out_bytes += b->n;
    sync__fq_push(q, n);
    if (q == &ss->out) notify_output(ss);
}

void sync__send_blob(sync_session *ss, sync_blob *b, unsigned flags)
{
    if (!admit(ss, b->n, flags)) return;
    push(ss, &ss->out, b, flags);
    ss->srv->st.frames_out++;
}

void sync__send(sync_session *ss, const syncm *m, unsigned flags)
{
    if (ss->closing) return;
    sync_blob *b;
    tdm_err e = sync__blob(m, &b);
    if (e) {
        if (e == TDM_ENOMEM) sync__close(ss, SYNC_CLOSE_INTERNAL, "out of memory");
        return;
    }
    sync__send_blob(ss, b, flags);
    sync__blob_unref(b);
}

void sync__send_error(sync_session *ss, uint32_t channel, sync_errcode code, uint64_t ref,
                      uint64_t retry_ms, const char *text, const ot_op *op)
{
    syncm m = {.type = SYNCM_ERROR,
               .code = code,
               .channel = channel,
               .ref = ref,
               .retry_ms = retry_ms,
               .op = (ot_op *)op};
    m.text.p = (const uint8_t *)text;
    m.text.n = text ? strlen(text) : 0;
    if (m.text.n > SYNCM_MAX_ERROR_TEXT) m.text.n = SYNCM_MAX_ERROR_TEXT;
    ss->srv->st.errors_sent++;
    sync__send(ss, &m, 0);
}

void sync__close(sync_session *ss, sync_close_reason why, const char *text)
{
    if (ss->closing) return;
    /* the final ERROR goes past the cap: it is small and tells the peer why */
    syncm m = {.type = SYNCM_ERROR, .code = SYNC_ERR_CLOSING};
    m.text.p = (const uint8_t *)text;
    m.text.n = strlen(text);
    sync_blob *b;
    if (sync__blob(&m, &b) == TDM_OK) {
        push(ss, &ss->out, b, 0);
        sync__blob_unref(b);
    }
    ss->closing = true;
    ss->why = why;
    notify_output(ss);
}

/* ------------------------------------------------------------ channels */

static bool hold_active(const sync_chan *c)
{
    return c->hold.count > 0 || (c->stream.active && c->stream.type == SYNCM_OT_SNAPSHOT);
}

void sync__chan_send_blob(sync_chan *c, sync_blob *b, unsigned flags)
{
    sync_session *ss = c->sess;
    if (c->dead || !ss) return;
    if (!(flags & SYNC_F_ORDERED) || !hold_active(c)) {
        sync__send_blob(ss, b, flags);
        return;
    }
    if (!admit(ss, b->n, flags)) return;
    push(ss, &c->hold, b, flags);
}

void sync__chan_send(sync_chan *c, const syncm *m, unsigned flags)
{
    if (c->dead || !c->sess || c->sess->closing) return;
    sync_blob *b;
    tdm_err e = sync__blob(m, &b);
    if (e) {
        if (e == TDM_ENOMEM) sync__close(c->sess, SYNC_CLOSE_INTERNAL, "out of memory");
        return;
    }
    sync__chan_send_blob(c, b, flags);
    sync__blob_unref(b);
}

void sync__chan_flush_hold(sync_chan *c)
{
    sync_session *ss = c->sess;
    while (c->hold.head && !(c->hold.head->flags & SYNC_F_PLACEHOLDER) &&
           !(c->stream.active && c->stream.type == SYNCM_OT_SNAPSHOT)) {
        sync_node *n = sync__fq_pop(&c->hold);
        if (!ss || c->dead || ss->closing) {
            if (ss) ss->out_bytes -= n->blob->n;
            sync__blob_unref(n->blob);
            free(n);
            continue;
        }
        sync__fq_push(&ss->out, n); /* bytes were counted when it was held */
        ss->srv->st.frames_out++;
        notify_output(ss);
    }
}

tdm_err sync__chan_hold_placeholder(sync_chan *c, uint64_t token)
{
    sync_node *n = calloc(1, sizeof *n);
    if (!n) return TDM_ENOMEM;
    n->flags = SYNC_F_PLACEHOLDER;
    n->token = token;
    sync__fq_push(&c->hold, n);
    c->hold_pending++;
    return TDM_OK;
}

void sync__chan_fill(sync_chan *c, uint64_t token, const syncm *m)
{
    sync_node *n = c->hold.head;
    while (n && !((n->flags & SYNC_F_PLACEHOLDER) && n->token == token)) n = n->next;
    if (!n) return;
    sync_blob *b = NULL;
    if (c->sess && !c->dead && sync__blob(m, &b) == TDM_OK) {
        n->blob = b;
        n->flags = 0;
        c->sess->out_bytes += b->n; /* acks pass the cap: their slot was reserved */
    } else {
        /* nobody to send it to, or no memory: drop the slot */
        sync_node **pp = &c->hold.head;
        sync_node *prev = NULL;
        while (*pp != n) prev = *pp, pp = &(*pp)->next;
        *pp = n->next;
        if (c->hold.tail == n) c->hold.tail = prev;
        c->hold.count--;
        free(n);
    }
    c->hold_pending--;
    sync__chan_flush_hold(c);
}

static void stream_free(sync_server *srv, sync_stream *s)
{
    if (!s->active) return;
    srv->stream_bytes -= s->len;
    srv->nstreams--;
    free(s->buf);
    memset(s, 0, sizeof *s);
}

void sync__chan_free(sync_chan *c)
{
    sync_server *srv = c->room ? c->room->srv : NULL;
    if (srv) stream_free(srv, &c->stream);
    if (c->sess) {
        for (sync_node *n = c->hold.head; n; n = n->next)
            if (n->blob) c->sess->out_bytes -= n->blob->n;
    }
    sync__fq_free(&c->hold);
    c->hold_pending = 0;
    c->sess = NULL;
    c->dead = true;
    if (c->npending == 0) free(c);
}

void sync__chan_unref(sync_chan *c)
{
    assert(c->npending > 0);
    if (--c->npending == 0 && c->dead && !c->sess) free(c);
}

/* ------------------------------------------------------------ transfers */

tdm_err sync__stream_start(sync_chan *c, syncm_type type, uint64_t id, tbuf *data)
{
    sync_server *srv = c->room->srv;
    if (data->len > srv->o.max_stream_bytes - srv->stream_bytes) {
        tbuf_fini(data);
        return TDM_ETOOBIG;
    }
    if (c->stream.active && c->stream.type == SYNCM_OT_SNAPSHOT && type == SYNCM_OT_SNAPSHOT) {
        /* a newer snapshot makes the held remote operations obsolete */
        sync_fq keep = {0};
        sync_node *n;
        while ((n = sync__fq_pop(&c->hold))) {
            if (n->flags & SYNC_F_PLACEHOLDER) {
                sync__fq_push(&keep, n);
                continue;
            }
            if (c->sess) c->sess->out_bytes -= n->blob->n;
            sync__blob_unref(n->blob);
            free(n);
        }
        c->hold = keep;
    }
    stream_free(srv, &c->stream);
    size_t len = data->len;
    c->stream.buf = tbuf_take(data, &len);
    c->stream.len = len;
    c->stream.off = 0;
    c->stream.type = type;
    c->stream.id = id;
    c->stream.active = true;
    c->stream.started = false;
    srv->stream_bytes += len;
    srv->nstreams++;
    return TDM_OK;
}

/* one chunk of c's transfer; true when the transfer is complete */
static bool stream_chunk(sync_session *ss, sync_chan *c)
{
    sync_stream *s = &c->stream;
    size_t n = s->len - s->off;
    if (n > SYNCM_CHUNK_DATA) n = SYNCM_CHUNK_DATA;
    syncm m = {.type = s->type, .channel = c->id, .offset = s->off, .total = s->len};
    m.data.p = n ? s->buf + s->off : NULL;
    m.data.n = n;
    if (s->type == SYNCM_UPDATE_CHUNK)
        m.sync_id = s->id;
    else
        m.version = s->id;
    sync__send(ss, &m, 0);
    s->off += n;
    s->started = true;
    if (s->off < s->len) return false;
    stream_free(ss->srv, s);
    sync__chan_flush_hold(c);
    return true;
}

void sync__pump(sync_session *ss)
{
    if (!ss->srv->nstreams) return; /* the common case: nothing is being transferred */
    while (!ss->closing && ss->out_bytes < SYNC_PUMP_LOW && ss->nchans) {
        sync_chan *c = NULL;
        for (size_t k = 0; k < ss->nchans; k++) {
            size_t i = (ss->pump_next + k) % ss->nchans;
            if (ss->chans[i]->stream.active) {
                c = ss->chans[i];
                ss->pump_next = i + 1;
                break;
            }
        }
        if (!c) return;
        stream_chunk(ss, c);
    }
}

/* ------------------------------------------------------------ lifecycle */

tdm_err sync_session_new(sync_server *srv, uint64_t now_ms, sync_session **out)
{
    assert(srv && out);
    if (srv->nsessions >= srv->o.max_sessions) return TDM_ETOOBIG;
    sync_session *ss = calloc(1, sizeof *ss);
    if (!ss) return TDM_ENOMEM;
    ss->srv = srv;
    ss->id = ++srv->next_session_id;
    ss->created_ms = ss->last_recv_ms = now_ms;
    ss->next = srv->sessions;
    if (srv->sessions) srv->sessions->prev = ss;
    srv->sessions = ss;
    srv->nsessions++;
    *out = ss;
    return TDM_OK;
}

void sync__session_leave(sync_session *ss, size_t i, uint64_t now_ms)
{
    sync_chan *c = ss->chans[i];
    sync__room_leave(c->room, c, now_ms);
    memmove(&ss->chans[i], &ss->chans[i + 1], (ss->nchans - i - 1) * sizeof *ss->chans);
    ss->nchans--;
    sync__chan_free(c);
}

void sync__session_free(sync_session *ss, bool leave, uint64_t now_ms)
{
    sync_server *srv = ss->srv;
    while (ss->nchans) {
        size_t i = ss->nchans - 1;
        sync_chan *c = ss->chans[i];
        if (leave) {
            sync__session_leave(ss, i, now_ms);
        } else {
            ss->nchans--;
            sync__chan_free(c);
        }
    }
    sync__fq_free(&ss->out);
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        srv->sessions = ss->next;
    if (ss->next) ss->next->prev = ss->prev;
    srv->nsessions--;
    free(ss->chans);
    free(ss->token);
    free(ss);
}

void sync_session_close(sync_session *ss, uint64_t now_ms)
{
    if (!ss) return;
    ss->srv->now_ms = now_ms;
    sync__session_free(ss, true, now_ms);
}

bool sync_session_next_out(sync_session *ss, const uint8_t **p, size_t *n)
{
    assert(ss && p && n);
    if (!ss->out.head) sync__pump(ss);
    sync_node *h = ss->out.head;
    if (!h) return false;
    *p = h->blob->data;
    *n = h->blob->n;
    return true;
}

void sync_session_consume(sync_session *ss)
{
    assert(ss);
    sync_node *h = sync__fq_pop(&ss->out);
    if (!h) return;
    ss->out_bytes -= h->blob->n;
    sync__blob_unref(h->blob);
    free(h);
    sync__pump(ss);
}

size_t sync_session_out_bytes(const sync_session *ss)
{
    return ss->out_bytes;
}

bool sync_session_closing(const sync_session *ss, sync_close_reason *why)
{
    if (why) *why = ss->why;
    return ss->closing;
}

uint64_t sync_session_id(const sync_session *ss)
{
    return ss->id;
}

void sync_session_set_data(sync_session *ss, void *data)
{
    ss->data = data;
}

void *sync_session_data(const sync_session *ss)
{
    return ss->data;
}

bool sync__rate(sync_session *ss, sync_chan *c, sync_rate_kind kind, uint32_t channel, uint64_t ref)
{
    sync_server *srv = ss->srv;
    if (!srv->host.rate_limit) return true;
    const char *user = c ? c->auth.user : "";
    uint64_t retry = srv->host.rate_limit(srv->host.ctx, ss, user, kind, srv->now_ms);
    if (!retry) return true;
    sync__send_error(ss, channel, SYNC_ERR_RATE_LIMITED, ref, retry, "rate limited", NULL);
    return false;
}
