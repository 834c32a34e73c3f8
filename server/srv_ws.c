/* srv_ws.c - WebSocket sessions of subprotocol SRV_SUBPROTOCOL: each inbound
 * message is reassembled under cfg.max_frame (past it: close 1009) and fed
 * to sync_session_recv (a message that arrives in one piece straight from
 * lws's buffer; a reassembly buffer exists only while a message is in
 * pieces). Outbound frames are written at the end of each turn of the
 * event loop (srv_ws_flush from srv_service; sync reports each queued frame
 * through srv_ws_output, which only lists the connection): lws_write straight from
 * the session's queue while the socket takes them whole. lws 4.1.6 allows a
 * write outside WRITEABLE: a send the socket cuts short keeps its rest in
 * lws's buflist_out, which goes out first on the next POLLOUT, so frames
 * stay in order and nothing is interleaved into a half-sent frame; from
 * then on (lws_partial_buffered) the connection waits for WRITEABLE and at
 * most one frame sits in lws, the rest stays in sync's capped queue. This
 * saves the two epoll_ctl calls (POLLOUT on, off) and the loop pass per
 * frame that one write per WRITEABLE callback cost (docs/PERFORMANCE.md).
 * A session sync marks for closing is
 * closed with the code for its reason once its queue is sent. Until a HELLO
 * is accepted a connection may send at most cfg.pre_hello_bytes payload bytes
 * and cfg.pre_hello_msgs messages; past either it is closed with
 * SRV_CLOSE_PRE_HELLO (4004). A session marked for closing that has not
 * taken its queue within cfg.close_grace_ms (a peer that stopped reading:
 * its window stays shut, WRITEABLE never comes) is dropped without a close
 * frame (checked on the server tick). Once a close frame is queued nothing
 * else is written on the connection (RFC 6455 5.5.1): the sync session ends
 * at that moment and lws waits for the peer's answering close (during
 * shutdown too: srv_ws_close_all leaves such connections alone).
 * Service thread only. */
#include "srv_internal.h"

#include <stdlib.h>
#include <string.h>

static void conn_link(srv *s, srv_conn *c)
{
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
}

static void conn_unlink(srv *s, srv_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (s->conns == c)
        s->conns = c->next;
    else
        return; /* not linked */
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->nconns--;
}

static unsigned close_code_for(sync_close_reason why)
{
    switch (why) {
    case SYNC_CLOSE_BACKPRESSURE:
        return SRV_CLOSE_BACKPRESSURE;
    case SYNC_CLOSE_PROTOCOL:
        return SRV_CLOSE_PROTOCOL;
    case SYNC_CLOSE_HELLO_TIMEOUT:
        return SRV_CLOSE_HELLO_TIMEOUT;
    case SYNC_CLOSE_IDLE:
        return SRV_CLOSE_IDLE;
    case SYNC_CLOSE_INTERNAL:
        return SRV_CLOSE_INTERNAL;
    default:
        return SRV_CLOSE_NORMAL;
    }
}

static const char *close_text(unsigned code)
{
    switch (code) {
    case SRV_CLOSE_GOING_AWAY:
        return "server shutting down";
    case SRV_CLOSE_PROTOCOL:
        return "protocol error";
    case SRV_CLOSE_TOO_BIG:
        return "message too big";
    case SRV_CLOSE_INTERNAL:
        return "internal error";
    case SRV_CLOSE_TRY_LATER:
        return "too many sessions";
    case SRV_CLOSE_BACKPRESSURE:
        return "outbound queue full";
    case SRV_CLOSE_HELLO_TIMEOUT:
        return "no HELLO in time";
    case SRV_CLOSE_IDLE:
        return "idle timeout";
    case SRV_CLOSE_PRE_HELLO:
        return "too much before HELLO";
    default:
        return "bye";
    }
}

/* The session's part ends: its room sees it leave now, and sync queues
 * nothing more for it (no srv_ws_output from here). */
static void conn_end_session(srv_conn *c)
{
    if (!c->ss) return;
    sync_session_set_data(c->ss, NULL);
    sync_session_close(c->ss, srv_now_ms());
    c->ss = NULL;
}

/* Queue the close frame with `code` (returned -1 tells lws to send it). From
 * here nothing else is written on c: no data frame may follow a close frame
 * (RFC 6455 5.5.1; browsers log "Data frame received after close"), so the
 * session ends now and c asks for no more WRITEABLE callbacks; lws waits for
 * the peer's answering close (CLOSED follows). */
static int close_with(srv_conn *c, struct lws *wsi, unsigned code)
{
    const char *t = close_text(code);
    c->close_sent = true;
    c->close_code = code;
    conn_end_session(c);
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)(uintptr_t)t, strlen(t));
    return -1;
}

static bool conn_wants_write(const srv_conn *c)
{
    if (c->close_sent) return false;
    if (c->close_code) return true;
    return c->ss && (sync_session_out_bytes(c->ss) > 0 || sync_session_closing(c->ss, NULL));
}

/* Ask lws for one WRITEABLE callback on c (once until it comes). */
static void want_writable(srv_conn *c)
{
    if (c->want_w || c->close_sent) return;
    c->want_w = true;
    lws_callback_on_writable(c->wsi);
}

void srv_ws_output(void *ctx, sync_session *ss)
{
    (void)ctx;
    srv_conn *c = sync_session_data(ss);
    if (!c || c->dirty || c->close_sent) return;
    c->dirty = true;
    c->dnext = c->s->dirty;
    c->s->dirty = c;
}

static void dirty_remove(srv *s, srv_conn *c)
{
    if (!c->dirty) return;
    for (srv_conn **pp = &s->dirty; *pp; pp = &(*pp)->dnext)
        if (*pp == c) {
            *pp = c->dnext;
            break;
        }
    c->dirty = false;
    c->dnext = NULL;
}

static bool wbuf_reserve(srv *s, size_t n)
{
    if (LWS_PRE + n <= s->wcap) return true;
    size_t ncap = s->wcap ? s->wcap : 65536;
    while (ncap < LWS_PRE + n) ncap *= 2;
    uint8_t *p = realloc(s->wbuf, ncap);
    if (!p) return false;
    s->wbuf = p;
    s->wcap = ncap;
    return true;
}

#define PUMP_MAX 64 /* frames per connection per pass; the rest waits for WRITEABLE */

/* Write queued frames of c while the socket takes them whole (nothing of
 * c's is buffered in lws) and at most PUMP_MAX. -1: lws_write failed (the
 * socket is gone) or no scratch memory. */
static int pump(srv *s, srv_conn *c)
{
    const uint8_t *p;
    size_t n;
    for (int i = 0; i < PUMP_MAX && c->ss && !lws_partial_buffered(c->wsi); i++) {
        if (!sync_session_next_out(c->ss, &p, &n)) break;
        if (!wbuf_reserve(s, n)) return -1;
        memcpy(s->wbuf + LWS_PRE, p, n);
        if (lws_write(c->wsi, s->wbuf + LWS_PRE, n, LWS_WRITE_BINARY) < (int)n) return -1;
        sync_session_consume(c->ss);
        s->n.frames_out++;
        s->n.bytes_out += n;
    }
    return 0;
}

void srv_ws_flush(srv *s)
{
    while (s->dirty) {
        srv_conn *c = s->dirty;
        s->dirty = c->dnext;
        c->dirty = false;
        c->dnext = NULL;
        if (c->close_sent || c->want_w) continue; /* its WRITEABLE callback writes */
        if (pump(s, c) < 0) {
            /* outside its callback: lws closes it at the next timeout pass */
            conn_end_session(c);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (conn_wants_write(c)) want_writable(c);
    }
}

/* Once sync marks the session for closing, the rest of its life is capped:
 * lws kills the connection when the timeout passes (CLOSED follows). */
static void arm_close_grace(srv *s, srv_conn *c)
{
    if (c->grace_armed || !c->ss || !sync_session_closing(c->ss, NULL)) return;
    c->grace_armed = true;
    uint64_t secs = (s->cfg.close_grace_ms + 999) / 1000;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, (int)(secs ? secs : 1));
}

void srv_ws_kick(srv *s)
{
    srv_ws_flush(s);
    for (srv_conn *c = s->conns; c; c = c->next) {
        arm_close_grace(s, c);
        if (!c->want_w && conn_wants_write(c)) want_writable(c);
    }
}

void srv_ws_close_all(srv *s, unsigned code)
{
    for (srv_conn *c = s->conns; c; c = c->next) {
        if (c->close_sent) continue; /* its close frame is out: it waits for the answer */
        if (!c->close_code) c->close_code = code;
        lws_callback_on_writable(c->wsi);
    }
}

/* Append a received piece to the reassembly buffer. false: over the cap. */
static bool rx_append(srv *s, srv_conn *c, const void *in, size_t len, size_t remaining)
{
    size_t cap = s->cfg.max_frame;
    if (c->rx_len + len > cap || remaining > cap - c->rx_len - len) return false;
    size_t need = c->rx_len + len;
    if (need > c->rx_cap) {
        size_t ncap = c->rx_cap ? c->rx_cap : 4096;
        while (ncap < need + remaining && ncap < cap) ncap *= 2;
        if (ncap > cap) ncap = cap;
        uint8_t *p = realloc(c->rx, ncap);
        if (!p) return false;
        c->rx = p;
        c->rx_cap = ncap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    return true;
}

/* Was frame p[0..n), which sync accepted before any HELLO, a HELLO? (sync
 * accepts only HELLO and ignored unknown types at that point.) */
static bool is_hello(const uint8_t *p, size_t n)
{
    syncm m;
    if (syncm_decode(p, n, n, &m) != TDM_OK) return false;
    bool hello = m.type == SYNCM_HELLO;
    syncm_clear(&m);
    return hello;
}

static int on_receive(srv *s, srv_conn *c, struct lws *wsi, const void *in, size_t len)
{
    if (!c->ss || c->close_code) return 0; /* closing: ignore what still arrives */
    if (lws_is_first_fragment(wsi)) c->rx_len = 0;
    size_t remaining = lws_remaining_packet_payload(wsi);
    bool whole = c->rx_len == 0 && lws_is_final_fragment(wsi) && !remaining;
    if (whole ? len > s->cfg.max_frame : !rx_append(s, c, in, len, remaining)) {
        s->n.too_big++;
        return close_with(c, wsi, SRV_CLOSE_TOO_BIG);
    }
    if (!c->helloed) {
        c->pre_bytes += len;
        if (s->cfg.pre_hello_bytes && c->pre_bytes > s->cfg.pre_hello_bytes) {
            s->n.pre_hello_closed++;
            return close_with(c, wsi, SRV_CLOSE_PRE_HELLO);
        }
    }
    if (!lws_is_final_fragment(wsi) || remaining) return 0;
    /* a message that arrived in one piece is used where lws holds it: an
     * idle connection keeps no buffer of its own */
    const uint8_t *msg = whole ? in : c->rx;
    size_t n = whole ? len : c->rx_len;
    s->n.frames_in++;
    s->n.bytes_in += n;
    if (!c->helloed && s->cfg.pre_hello_msgs && ++c->pre_msgs > s->cfg.pre_hello_msgs) {
        s->n.pre_hello_closed++;
        return close_with(c, wsi, SRV_CLOSE_PRE_HELLO);
    }
    tdm_err e = sync_session_recv(c->ss, msg, n, srv_now_ms());
    if (e) s->n.protocol_errors++;
    if (!c->helloed && !e) c->helloed = is_hello(msg, n);
    c->rx_len = 0;
    free(c->rx); /* reassembly buffers live only while a message is in pieces */
    c->rx = NULL;
    c->rx_cap = 0;
    /* every session that got frames is on the dirty list (srv_ws_output);
     * srv_ws_flush writes them at the end of this turn of the loop */
    return 0;
}

static int on_writeable(srv *s, srv_conn *c, struct lws *wsi)
{
    c->want_w = false;
    if (c->close_sent) return 0; /* a late callback: nothing may follow the close frame */
    if (c->close_now || !c->ss) return close_with(c, wsi, c->close_code ? c->close_code : 1000u);
    if (pump(s, c) < 0) return -1;
    if (sync_session_out_bytes(c->ss) > 0 || lws_partial_buffered(wsi)) {
        want_writable(c);
        return 0;
    }
    sync_close_reason why;
    if (sync_session_closing(c->ss, &why)) return close_with(c, wsi, close_code_for(why));
    if (c->close_code) return close_with(c, wsi, c->close_code);
    return 0;
}

int srv_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    srv_conn *c = user;
    srv *s = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        memset(c, 0, sizeof *c);
        c->s = s;
        c->wsi = wsi;
        conn_link(s, c);
        s->n.ws_accepted++;
        if (s->stopping) {
            c->close_code = SRV_CLOSE_GOING_AWAY;
            c->close_now = true;
        } else if (sync_session_new(s->sync, srv_now_ms(), &c->ss) != TDM_OK) {
            c->ss = NULL;
            c->close_code = SRV_CLOSE_TRY_LATER;
            c->close_now = true;
        } else {
            sync_session_set_data(c->ss, c);
        }
        if (c->close_now) lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        return on_receive(s, c, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(s, c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws answers the peer's close frame: nothing of ours may go out
         * any more (srv_ws_flush writes outside WRITEABLE, which lws would
         * not call in this state) and the session ends now */
        c->close_sent = true;
        conn_end_session(c);
        return 0;
    case LWS_CALLBACK_CLOSED:
        dirty_remove(s, c);
        conn_end_session(c); /* unless close_with did */
        free(c->rx);
        c->rx = NULL;
        conn_unlink(s, c);
        s->n.ws_closed++;
        return 0; /* the leave broadcast's frames go at the end of the turn */
    default:
        return 0;
    }
}
