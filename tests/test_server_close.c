/* test_server_close.c - how the real `tandem serve` (TANDEM_BIN) ends
 * WebSocket sessions: after its close frame no data frame may follow
 * (RFC 6455 5.5.1; Chromium logs "Data frame received after close").
 * Checked with a raw-socket WebSocket reader that sees every frame on the
 * wire and answers the close late (like a busy browser tab), and with
 * sync_clients over support/ws_client:
 *  - SIGTERM: every client gets what was queued for it (the acks of its
 *    edits), then exactly one close frame with 1001, nothing after, while
 *    the other sessions leaving keep producing presence frames;
 *  - 1009 (a message over the frame cap), 4004 (too much before HELLO) and
 *    4001 (a reader that stopped while its queue passed the cap, then reads
 *    again) on sessions whose room stays busy: one close frame, nothing
 *    after;
 *  - a client that closes first while its room stays busy: the server's
 *    answering close frame (the client's code echoed) and nothing after,
 *    now that the server writes frames outside WRITEABLE callbacks too.
 * Everything waits by polling with deadlines. */
#define _XOPEN_SOURCE 700

#include "server_proc.h"
#include "sync_peer.h"

#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

/* ---- a raw WebSocket client: every frame as it is on the wire ------------------------ */

#define RW_MAX_FRAMES 4096

typedef struct rw_frame {
    uint8_t opcode;
    size_t len;
    unsigned close_code; /* opcode 8 */
    syncm_type type;     /* binary: the decoded type (SYNCM_UNKNOWN when not decodable) */
} rw_frame;

typedef struct rawws {
    int fd;
    bool eof;
    uint8_t *buf; /* unparsed bytes */
    size_t len, cap;
    rw_frame frames[RW_MAX_FRAMES];
    size_t nframes;
    size_t closes;      /* close frames received */
    size_t after_close; /* data frames (text, binary, continuation) after the first close */
    uint64_t closed_at; /* mono ms of the first close frame */
    bool replied;       /* our close frame went out */
} rawws;

static void rw_need(rawws *r, size_t extra)
{
    if (r->len + extra <= r->cap) return;
    size_t cap = r->cap ? r->cap : 65536;
    while (cap < r->len + extra) cap *= 2;
    ck_assert_uint_le(cap, (size_t)64 << 20);
    r->buf = realloc(r->buf, cap);
    ck_assert_ptr_nonnull(r->buf);
    r->cap = cap;
}

/* Send one masked frame (FIN set). */
static void rw_send(rawws *r, uint8_t opcode, const void *p, size_t n)
{
    size_t hl = 2 + (n > 65535 ? 8 : n > 125 ? 2 : 0) + 4;
    uint8_t *f = malloc(hl + n);
    ck_assert_ptr_nonnull(f);
    f[0] = (uint8_t)(0x80 | opcode);
    size_t i = 2;
    if (n > 65535) {
        f[1] = 0x80 | 127;
        for (int k = 7; k >= 0; k--) f[i++] = (uint8_t)((uint64_t)n >> (8 * k));
    } else if (n > 125) {
        f[1] = 0x80 | 126;
        f[i++] = (uint8_t)(n >> 8);
        f[i++] = (uint8_t)n;
    } else {
        f[1] = (uint8_t)(0x80 | n);
    }
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(f + i, mask, 4);
    i += 4;
    for (size_t k = 0; k < n; k++) f[i + k] = ((const uint8_t *)p)[k] ^ mask[k & 3];
    size_t off = 0;
    while (off < hl + n) {
        ssize_t w = write(r->fd, f + off, hl + n - off);
        if (w <= 0) break; /* the server may already have closed */
        off += (size_t)w;
    }
    free(f);
}

static void rw_send_msg(rawws *r, const syncm *m)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(syncm_encode(m, &b), TDM_OK);
    rw_send(r, 2, b.data, b.len);
    tbuf_fini(&b);
}

/* Connect (receive buffer rcvbuf bytes; 0: the default) and upgrade to
 * SRV_SUBPROTOCOL. */
static void rw_open_buf(rawws *r, int port, int rcvbuf)
{
    memset(r, 0, sizeof *r);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(r->fd, 0);
    if (rcvbuf > 0) setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tandem.v1\r\n\r\n");
    ck_assert_int_eq(write(r->fd, req, (size_t)n), n);
    char head[2048];
    size_t hl = 0;
    uint64_t end = srvp_mono_ms() + 5000;
    for (;;) {
        ck_assert_msg(srvp_mono_ms() < end, "no upgrade answer");
        struct pollfd pf = {r->fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        ck_assert_uint_lt(hl, sizeof head - 1);
        ssize_t k = read(r->fd, head + hl, 1); /* byte by byte: frames may follow */
        ck_assert_int_eq(k, 1);
        hl++;
        head[hl] = '\0';
        if (hl >= 4 && memcmp(head + hl - 4, "\r\n\r\n", 4) == 0) break;
    }
    ck_assert_msg(strncmp(head, "HTTP/1.1 101", 12) == 0, "upgrade refused: %s", head);
}

static void rw_open(rawws *r, int port)
{
    rw_open_buf(r, port, 0);
}

/* Parse whole frames out of r->buf. */
static void rw_parse(rawws *r)
{
    for (;;) {
        if (r->len < 2) return;
        const uint8_t *b = r->buf;
        ck_assert_msg(!(b[1] & 0x80), "the server masked a frame");
        uint64_t n = b[1] & 0x7f;
        size_t hl = 2;
        if (n == 126) {
            if (r->len < 4) return;
            n = (uint64_t)b[2] << 8 | b[3];
            hl = 4;
        } else if (n == 127) {
            if (r->len < 10) return;
            n = 0;
            for (int k = 0; k < 8; k++) n = n << 8 | b[2 + k];
            hl = 10;
        }
        if (r->len < hl + n) return;
        uint8_t op = b[0] & 0x0f;
        ck_assert_uint_lt(r->nframes, RW_MAX_FRAMES);
        rw_frame *f = &r->frames[r->nframes++];
        memset(f, 0, sizeof *f);
        f->opcode = op;
        f->len = (size_t)n;
        if (op == 8) {
            if (n >= 2) f->close_code = (unsigned)b[hl] << 8 | b[hl + 1];
            if (!r->closes++) r->closed_at = srvp_mono_ms();
        } else if (op <= 2) {
            if (r->closes) r->after_close++;
            if (op == 2) {
                syncm m;
                f->type = syncm_decode(b + hl, (size_t)n, SYNCM_MAX_FRAME, &m) == TDM_OK
                              ? m.type
                              : SYNCM_UNKNOWN;
                syncm_clear(&m);
            }
        }
        memmove(r->buf, r->buf + hl + n, r->len - hl - (size_t)n);
        r->len -= hl + (size_t)n;
    }
}

/* Read what arrives within ms; false at end of stream. */
static bool rw_fill(rawws *r, int ms)
{
    if (r->eof) return false;
    struct pollfd pf = {r->fd, POLLIN, 0};
    if (poll(&pf, 1, ms) <= 0) return true;
    rw_need(r, 65536);
    ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
    if (n <= 0) {
        r->eof = true;
        return false;
    }
    r->len += (size_t)n;
    rw_parse(r);
    return true;
}

/* Service the reader: answer the server's close hold_ms after it came
 * (a late close reply keeps the session in lws's close handshake). */
static void rw_pump(rawws *r, int ms, unsigned hold_ms)
{
    rw_fill(r, ms);
    if (r->closes && !r->replied && srvp_mono_ms() >= r->closed_at + hold_ms) {
        uint8_t code[2] = {r->frames[0].opcode, 0}; /* overwritten below */
        for (size_t i = 0; i < r->nframes; i++)
            if (r->frames[i].opcode == 8) {
                code[0] = (uint8_t)(r->frames[i].close_code >> 8);
                code[1] = (uint8_t)r->frames[i].close_code;
                break;
            }
        rw_send(r, 8, code, 2);
        r->replied = true;
    }
}

static size_t rw_count(const rawws *r, syncm_type t)
{
    size_t k = 0;
    for (size_t i = 0; i < r->nframes; i++) k += r->frames[i].opcode == 2 && r->frames[i].type == t;
    return k;
}

static void rw_free(rawws *r)
{
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
}

/* The stream ended with exactly one close frame of `code` and nothing after. */
static void rw_check_close(const rawws *r, unsigned code, const char *who)
{
    ck_assert_msg(r->closes == 1, "%s: %zu close frames", who, r->closes);
    ck_assert_msg(r->after_close == 0, "%s: %zu data frames after the close frame", who,
                  r->after_close);
    ck_assert_msg(r->frames[r->nframes - 1].opcode == 8, "%s: the last frame is not the close",
                  who);
    ck_assert_msg(r->frames[r->nframes - 1].close_code == code, "%s: close code %u, want %u", who,
                  r->frames[r->nframes - 1].close_code, code);
}

/* HELLO and SUBSCRIBE (CRDT, from nothing) on channel 1 of `room`; wait for SUBSCRIBED. */
static void rw_join(rawws *r, const char *room, uint64_t client_id)
{
    syncm h = {0};
    h.type = SYNCM_HELLO;
    h.proto = SYNCM_PROTOCOL_VERSION;
    h.caps = SYNC_CAP_ALL;
    h.client_id = client_id;
    rw_send_msg(r, &h);
    crdt_sv *sv = crdt_sv_new();
    ck_assert_ptr_nonnull(sv);
    syncm s = {0};
    s.type = SYNCM_SUBSCRIBE;
    s.channel = 1;
    s.name.p = (const uint8_t *)room;
    s.name.n = strlen(room);
    s.mode = SYNC_MODE_CRDT;
    s.sv = sv;
    rw_send_msg(r, &s);
    crdt_sv_free(sv);
    uint64_t end = srvp_mono_ms() + 10000;
    while (rw_count(r, SYNCM_SUBSCRIBED) == 0) {
        ck_assert_msg(srvp_mono_ms() < end, "no SUBSCRIBED");
        ck_assert_msg(rw_fill(r, 20), "the server closed the connection");
        ck_assert_uint_eq(r->closes, 0);
    }
}

/* ---- fixtures ------------------------------------------------------------------------ */

static srvp S;
static wsc_ctx *X;

static void setup(void)
{
    ck_assert_msg(srvp_start(&S, TANDEM_BIN), "could not start the server");
    X = wsc_new();
    ck_assert_ptr_nonnull(X);
}

static void teardown(void)
{
    wsc_free(X);
    X = NULL;
    if (S.pid > 0) ck_assert_int_eq(srvp_stop(&S), 0);
    srvp_stop(&S); /* removes the directory after a test that stopped it */
}

static void peer_join(np_peer *p, const char *room, uint64_t client_id)
{
    np_open(p, X, S.port, room, client_id, false, NULL);
    np_peer *one[] = {p};
    np_group g = {one, 1};
    ck_assert_msg(wsc_wait(X, np_all_synced, &g, 10000), "peer %llu did not sync",
                  (unsigned long long)client_id);
}

/* ---- tests --------------------------------------------------------------------------- */

#define NPEERS 4
#define NRAW   3
#define EDITS  25

typedef struct seen_updates {
    rawws *r;
    size_t want;
} seen_updates;

START_TEST(test_sigterm_queue_then_one_close)
{
    np_peer p[NPEERS];
    for (int i = 0; i < NPEERS; i++) peer_join(&p[i], "doc", 100 + (uint64_t)i);
    static rawws r[NRAW];
    for (int i = 0; i < NRAW; i++) rw_open(&r[i], S.port), rw_join(&r[i], "doc", 200 + (uint64_t)i);
    for (int i = 0; i < NPEERS; i++) { /* present: their leave is broadcast when they go */
        char st[32];
        snprintf(st, sizeof st, "{\"n\":%d}", i);
        np_presence(&p[i], st);
    }

    /* a burst of edits: their acks come once storage has them */
    unsigned rng = 7;
    for (int k = 0; k < EDITS; k++)
        for (int i = 0; i < NPEERS; i++) np_random_edit(&p[i], &rng, false);
    for (int i = 0; i < NPEERS; i++) np_pump(&p[i]);
    /* the server has every edit once a raw reader saw all of them */
    uint64_t end = srvp_mono_ms() + 10000;
    while (rw_count(&r[0], SYNCM_UPDATE) < (size_t)EDITS * NPEERS) {
        ck_assert_msg(srvp_mono_ms() < end, "raw reader saw %zu of %d updates",
                      rw_count(&r[0], SYNCM_UPDATE), EDITS * NPEERS);
        for (int i = 0; i < NPEERS; i++) np_pump(&p[i]);
        wsc_service(X, 1);
        rw_fill(&r[0], 5);
    }

    ck_assert_int_eq(kill(S.pid, SIGTERM), 0);
    /* peers answer the close at once (their leave reaches the raw readers'
     * sessions while those still wait for an answer); raw readers answer
     * after 400 ms */
    end = srvp_mono_ms() + 15000;
    for (;;) {
        bool done = true;
        for (int i = 0; i < NPEERS; i++) {
            np_pump(&p[i]);
            wsc_state st = wsc_state_of(p[i].ws);
            done = done && (st == WSC_CLOSED || st == WSC_FAILED);
        }
        wsc_service(X, 1);
        for (int i = 0; i < NRAW; i++) {
            rw_pump(&r[i], 2, 400);
            done = done && r[i].eof;
        }
        if (done) break;
        ck_assert_msg(srvp_mono_ms() < end, "the connections did not end");
    }
    int status;
    ck_assert_int_eq(waitpid(S.pid, &status, 0), S.pid);
    S.pid = 0;
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    for (int i = 0; i < NPEERS; i++) {
        ck_assert_uint_eq(wsc_close_code(p[i].ws), 1001);
        ck_assert_uint_eq(wsc_data_after_close(p[i].ws), 0);
        /* every edit was acked before the close: nothing left unacked */
        ck_assert_uint_eq(sync_client_unacked(p[i].cl, p[i].ch), 0);
        np_free(&p[i]);
    }
    char who[16];
    for (int i = 0; i < NRAW; i++) {
        snprintf(who, sizeof who, "raw %d", i);
        rw_check_close(&r[i], 1001, who);
        /* the server waited for the late answer: a closing handshake, not a reset */
        ck_assert_msg(r[i].replied, "%s: the connection ended before the close was answered", who);
        ck_assert_uint_ge(rw_count(&r[i], SYNCM_UPDATE), (size_t)EDITS * NPEERS);
        rw_free(&r[i]);
    }
}
END_TEST

/* One step of a busy room: p makes edit k (and every 5th a presence
 * change), then both sides are serviced; r answers a server close after
 * hold_ms. */
static void busy_step(rawws *r, np_peer *p, unsigned *rng, int k, unsigned hold_ms)
{
    np_random_edit(p, rng, false);
    if (k % 5 == 0) {
        char st[32];
        snprintf(st, sizeof st, "{\"k\":%d}", k);
        np_presence(p, st);
    }
    np_pump(p);
    wsc_service(X, 1);
    rw_pump(r, 5, hold_ms);
}

/* The room stays busy (a peer edits and changes presence) while `r`, closed
 * by the server with `code`, holds its close answer for 600 ms. */
static void busy_until_closed(rawws *r, np_peer *p, unsigned code, const char *who)
{
    unsigned rng = 11;
    uint64_t end = srvp_mono_ms() + 10000;
    int k = 0;
    while (!r->eof) {
        ck_assert_msg(srvp_mono_ms() < end, "%s: the connection did not end", who);
        busy_step(r, p, &rng, ++k, 600);
    }
    rw_check_close(r, code, who);
}

START_TEST(test_too_big_then_nothing)
{
    np_peer p;
    peer_join(&p, "busy", 300);
    rawws r;
    rw_open(&r, S.port);
    rw_join(&r, "busy", 301);
    size_t n = ((size_t)1 << 20) + 100; /* over the 1 MiB frame cap */
    uint8_t *big = calloc(1, n);
    ck_assert_ptr_nonnull(big);
    rw_send(&r, 2, big, n);
    free(big);
    busy_until_closed(&r, &p, 1009, "1009");
    rw_free(&r);
    np_free(&p);
}
END_TEST

START_TEST(test_pre_hello_then_nothing)
{
    np_peer p;
    peer_join(&p, "busy", 400);
    rawws r;
    rw_open(&r, S.port);
    /* PINGs before HELLO: each answered with an error frame; past 32
     * messages the connection is closed with 4004 */
    syncm m = {0};
    m.type = SYNCM_PING;
    m.nonce = 1;
    for (int i = 0; i < 40; i++) rw_send_msg(&r, &m);
    busy_until_closed(&r, &p, 4004, "4004");
    rw_free(&r);
    np_free(&p);
}
END_TEST

/* The client closes first (1000) while a peer keeps editing its room: the
 * server answers with one close frame echoing 1000, sends no data frame
 * after it, and the session is gone. */
START_TEST(test_client_close_then_nothing)
{
    np_peer p;
    peer_join(&p, "busy", 600);
    rawws r;
    rw_open(&r, S.port);
    rw_join(&r, "busy", 601);
    /* let the room's traffic reach the raw client first */
    unsigned rng = 7;
    for (int k = 1; k <= 20; k++) busy_step(&r, &p, &rng, k, 0);
    ck_assert_uint_gt(rw_count(&r, SYNCM_UPDATE), 0);
    uint8_t code[2] = {1000 >> 8, 1000 & 0xff};
    rw_send(&r, 8, code, 2);
    r.replied = true; /* ours went first: nothing to answer */
    busy_until_closed(&r, &p, 1000, "client close");
    /* the session is gone: only the peer's connection is left */
    uint64_t end = srvp_mono_ms() + 5000;
    for (bool one = false; !one;) {
        ck_assert_msg(srvp_mono_ms() < end, "the closed session is still counted");
        np_pump(&p);
        wsc_service(X, 20);
        srvp_http h = srvp_get(S.port, "/healthz");
        one = h.body && strstr(h.body, "\"connections\":1,");
        srvp_http_free(&h);
    }
    rw_free(&r);
    np_free(&p);
}
END_TEST

#define FLOOD_CHUNK (64u << 10) /* bytes inserted per update */
#define FLOOD_BYTES ((size_t)10 << 20)

/* A reader with a 4 KiB window stops reading while a writer floods the
 * room past the 4 MiB queue cap (sync marks it for closing: 4001), then
 * reads again while the room stays busy: its queue, ERROR CLOSING as the
 * last data frame, one close 4001, nothing after. */
START_TEST(test_backpressure_then_nothing)
{
    np_peer w, p;
    peer_join(&w, "busy", 500);
    peer_join(&p, "busy", 501);
    rawws r;
    rw_open_buf(&r, S.port, 4096);
    rw_join(&r, "busy", 502);
    char *chunk = malloc(FLOOD_CHUNK);
    ck_assert_ptr_nonnull(chunk);
    for (size_t sent = 0, i = 0; sent < FLOOD_BYTES; sent += FLOOD_CHUNK, i++) {
        memset(chunk, 'a' + (int)(i % 26), FLOOD_CHUNK);
        ck_assert_int_eq(crdt_doc_insert(w.doc, crdt_doc_len(w.doc), chunk, FLOOD_CHUNK), TDM_OK);
        ck_assert_int_eq(sync_client_flush(w.cl, w.ch), TDM_OK);
        uint64_t end = srvp_mono_ms() + 20000;
        while (sync_client_unacked(w.cl, w.ch) > 4) { /* keep the writer within its window */
            np_pump(&w);
            np_pump(&p);
            wsc_service(X, 2);
            ck_assert(srvp_mono_ms() < end);
        }
    }
    free(chunk);
    /* read again; the room stays busy until the reader's connection ended */
    unsigned rng = 5;
    uint64_t end = srvp_mono_ms() + 30000, next_edit = 0;
    int k = 0;
    while (!r.eof) {
        ck_assert_msg(srvp_mono_ms() < end, "the slow reader's connection did not end");
        if (srvp_mono_ms() >= next_edit) {
            np_random_edit(&p, &rng, false);
            char st[32];
            snprintf(st, sizeof st, "{\"k\":%d}", ++k);
            np_presence(&p, st);
            next_edit = srvp_mono_ms() + 20;
        }
        np_pump(&w);
        np_pump(&p);
        wsc_service(X, 1);
        for (int i = 0; i < 16 && !r.eof; i++) rw_pump(&r, i ? 0 : 5, 600);
    }
    rw_check_close(&r, 4001, "4001");
    ck_assert_uint_ge(r.nframes, 2);
    const rw_frame *last = &r.frames[r.nframes - 2]; /* the last data frame */
    ck_assert_uint_eq(last->opcode, 2);
    ck_assert_int_eq(last->type, SYNCM_ERROR);
    ck_assert_uint_gt(rw_count(&r, SYNCM_UPDATE), 0);
    rw_free(&r);
    np_free(&w);
    np_free(&p);
}
END_TEST

static Suite *close_suite(void)
{
    Suite *s = suite_create("server_close");
    TCase *tc = tcase_create("close");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sigterm_queue_then_one_close);
    tcase_add_test(tc, test_too_big_then_nothing);
    tcase_add_test(tc, test_pre_hello_then_nothing);
    tcase_add_test(tc, test_backpressure_then_nothing);
    tcase_add_test(tc, test_client_close_then_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(close_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
