/* test_server_stress.c - the real `tandem serve --dev` under connection
 * churn, room churn, a slow consumer and a flood of silent connections:
 * sync_clients over real WebSockets (support/sync_peer) and raw WebSocket
 * clients written here over plain sockets (so a test can send half a frame,
 * shrink its receive window, or never send HELLO). The server runs with
 * TANDEM_ROOM_IDLE_MS and TANDEM_HELLO_TIMEOUT_MS shortened so rooms are
 * freed and silent connections closed within a test.
 *
 * Memory: the server's RssAnon (/proc/PID/status: heap and stacks, not
 * LMDB's file map, which grows with the database) after a warm-up is the
 * baseline; after the churn, once /healthz reports no rooms and no
 * connections, RssAnon must come back within RSS_SLACK_KB of it (not checked
 * under AddressSanitizer, whose quarantine keeps freed memory).
 * TANDEM_STRESS_CYCLES (default 3000) and TANDEM_STRESS_ROOMS (default
 * 2000) scale the churn for longer local runs. */
#define _GNU_SOURCE /* usleep */
#include "client.h"
#include "msg.h"
#include "server_proc.h"
#include "sync_peer.h"
#include "ws_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define RSS_SLACK_KB 4096L /* growth allowed over the baseline (not under ASan) */
#define ROOM_IDLE_MS 300   /* TANDEM_ROOM_IDLE_MS for these tests */
#define HELLO_MS     1000  /* TANDEM_HELLO_TIMEOUT_MS for these tests */

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long n = strtol(v, &end, 10);
    return *end == '\0' && n > 0 ? n : def;
}

static void start(srvp *s)
{
    static const char *const env[] = {"TANDEM_ROOM_IDLE_MS=300", "TANDEM_HELLO_TIMEOUT_MS=1000",
                                      NULL};
    srvp_opts o = {0};
    o.env = env;
    ck_assert_msg(srvp_start_opts(s, TANDEM_BIN, &o), "could not start the server");
}

/* /healthz's integer field `name`. */
static long health(int port, const char *name)
{
    json_t *v = np_get_json(port, "/healthz");
    json_t *f = json_object_get(v, name);
    ck_assert_msg(json_is_integer(f), "/healthz has no %s", name);
    long n = (long)json_integer_value(f);
    json_decref(v);
    return n;
}

/* Wait (servicing x when given) until /healthz reports no rooms, sessions
 * or connections. */
static void wait_idle(wsc_ctx *x, int port)
{
    uint64_t end = np_mono_ms() + 20000;
    long rooms = -1, conns = -1, sessions = -1;
    while (np_mono_ms() < end) {
        rooms = health(port, "rooms");
        conns = health(port, "connections");
        sessions = health(port, "sessions");
        if (!rooms && !conns && !sessions) return;
        if (x)
            wsc_service(x, 50);
        else
            usleep(50 * 1000);
    }
    ck_abort_msg("server not idle: rooms %ld connections %ld sessions %ld", rooms, conns, sessions);
}

/* The server's anonymous resident memory (heap, stacks; LMDB's file map,
 * which grows with the database, is RssFile and not counted). */
static long anon_kb(const srvp *s)
{
    return srvp_status_kb(s->pid, "RssAnon");
}

/* The server gives freed memory back at most once a second after rooms
 * were freed (malloc_trim): allow it a few seconds to get under the bound.
 * Under AddressSanitizer the numbers are only printed: its allocator keeps
 * freed blocks in quarantine and never trims; there LeakSanitizer at the
 * server's exit (a non-zero exit status, checked by every test) is the check. */
static void check_rss(const srvp *s, long base_kb, const char *what)
{
    long now = anon_kb(s);
    for (uint64_t end = np_mono_ms() + 5000;
         !UNDER_ASAN && now - base_kb >= RSS_SLACK_KB && np_mono_ms() < end;) {
        usleep(100 * 1000);
        now = anon_kb(s);
    }
    fprintf(stderr,
            "%s: server RssAnon %ld KiB, baseline %ld KiB (+%ld, bound +%ld%s); VmRSS %ld KiB, "
            "RssFile %ld KiB\n",
            what, now, base_kb, now - base_kb, RSS_SLACK_KB,
            UNDER_ASAN ? ", not checked: ASan" : "", srvp_rss_kb(s->pid),
            srvp_status_kb(s->pid, "RssFile"));
    ck_assert_int_gt(now, 0);
    if (!UNDER_ASAN)
        ck_assert_msg(now - base_kb < RSS_SLACK_KB, "%s: RSS grew %ld KiB (bound %ld)", what,
                      now - base_kb, RSS_SLACK_KB);
}

/* ---- a raw WebSocket client over a socket ---------------------------------------- */

#define RWS_BUF ((size_t)2 << 20) /* read buffer: more than one server frame (1 MiB cap) */

typedef struct rws {
    int fd;
    uint8_t *buf; /* RWS_BUF bytes */
    size_t len;
} rws;

/* Connect (with SO_RCVBUF rcvbuf when > 0, set before connecting so the
 * window is small from the start) and do the upgrade; false when the server
 * does not answer 101. */
static bool rws_open(rws *w, int port, int rcvbuf)
{
    memset(w, 0, sizeof *w);
    w->buf = malloc(RWS_BUF);
    ck_assert_ptr_nonnull(w->buf);
    w->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(w->fd, 0);
    if (rcvbuf > 0) setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(w->fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *req = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tandem.v1\r\n\r\n";
    ck_assert_int_eq(write(w->fd, req, strlen(req)), (ssize_t)strlen(req));
    uint64_t end = np_mono_ms() + 5000;
    while (np_mono_ms() < end && w->len < RWS_BUF - 1) {
        struct pollfd pf = {w->fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        ssize_t n = read(w->fd, w->buf + w->len, RWS_BUF - 1 - w->len);
        if (n <= 0) return false;
        w->len += (size_t)n;
        w->buf[w->len] = '\0';
        char *e = strstr((char *)w->buf, "\r\n\r\n");
        if (!e) continue;
        bool ok = strncmp((char *)w->buf, "HTTP/1.1 101", 12) == 0;
        size_t hl = (size_t)(e + 4 - (char *)w->buf);
        memmove(w->buf, w->buf + hl, w->len - hl);
        w->len -= hl;
        return ok;
    }
    return false;
}

static void rws_close_fd(rws *w, bool reset)
{
    free(w->buf);
    w->buf = NULL;
    if (w->fd < 0) return;
    if (reset) { /* RST instead of FIN */
        struct linger l = {1, 0};
        setsockopt(w->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(w->fd);
    w->fd = -1;
}

/* Send one masked frame (opcode 2 binary, 8 close); only the first `cut`
 * bytes of it when cut > 0 (a frame cut off mid-way). */
static void rws_send(rws *w, int opcode, const uint8_t *p, size_t n, size_t cut)
{
    size_t hl = 2 + (n >= 126 ? (n > 65535 ? 8 : 2) : 0) + 4;
    uint8_t *f = malloc(hl + n);
    ck_assert_ptr_nonnull(f);
    size_t i = 0;
    f[i++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        f[i++] = (uint8_t)(0x80 | n);
    } else if (n <= 65535) {
        f[i++] = 0x80 | 126;
        f[i++] = (uint8_t)(n >> 8);
        f[i++] = (uint8_t)n;
    } else {
        f[i++] = 0x80 | 127;
        for (int k = 7; k >= 0; k--) f[i++] = (uint8_t)((uint64_t)n >> (8 * k));
    }
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    memcpy(f + i, mask, 4);
    i += 4;
    for (size_t k = 0; k < n; k++) f[i + k] = p[k] ^ mask[k & 3];
    size_t total = cut ? cut : hl + n, off = 0;
    while (off < total) {
        ssize_t m = write(w->fd, f + off, total - off);
        if (m <= 0) break;
        off += (size_t)m;
    }
    free(f);
}

static void rws_send_msg(rws *w, const syncm *m, size_t cut)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(syncm_encode(m, &b), TDM_OK);
    rws_send(w, 2, b.data, b.len, cut);
    tbuf_fini(&b);
}

/* Read one frame within ms: 1 (opcode, payload malloc'd in *p), 0 timeout,
 * -1 end of stream. */
static int rws_frame(rws *w, int ms, int *opcode, uint8_t **p, size_t *n)
{
    uint64_t end = np_mono_ms() + (uint64_t)ms;
    for (;;) {
        if (w->len >= 2) {
            size_t len = w->buf[1] & 0x7f, hl = 2;
            if (len == 126 && w->len >= 4) {
                len = ((size_t)w->buf[2] << 8) | w->buf[3];
                hl = 4;
            } else if (len == 127 && w->len >= 10) {
                len = 0;
                for (int k = 0; k < 8; k++) len = (len << 8) | w->buf[2 + k];
                hl = 10;
            }
            ck_assert_uint_lt(len, RWS_BUF - 16);
            if ((w->buf[1] & 0x7f) < 126 || hl > 2) {
                if (w->len >= hl + len) {
                    *opcode = w->buf[0] & 0x0f;
                    *n = len;
                    *p = malloc(len + 1);
                    ck_assert_ptr_nonnull(*p);
                    memcpy(*p, w->buf + hl, len);
                    memmove(w->buf, w->buf + hl + len, w->len - hl - len);
                    w->len -= hl + len;
                    return 1;
                }
            }
        }
        uint64_t now = np_mono_ms();
        if (now >= end) return 0;
        struct pollfd pf = {w->fd, POLLIN, 0};
        if (poll(&pf, 1, (int)(end - now)) <= 0) continue;
        ssize_t m = read(w->fd, w->buf + w->len, RWS_BUF - w->len);
        if (m <= 0) return -1;
        w->len += (size_t)m;
    }
}

static void rws_hello(rws *w, uint64_t client_id)
{
    syncm h = {.type = SYNCM_HELLO, .proto = 1, .caps = SYNC_CAP_ALL, .client_id = client_id};
    rws_send_msg(w, &h, 0);
}

static void rws_subscribe_ot(rws *w, uint32_t channel, const char *room)
{
    syncm sub = {.type = SYNCM_SUBSCRIBE,
                 .channel = channel,
                 .name = {(const uint8_t *)room, strlen(room)},
                 .mode = SYNC_MODE_OT};
    rws_send_msg(w, &sub, 0);
}

/* Read frames until the close frame; returns its code (0: the stream ended
 * without one). Counts the sync frames by type into counts[] (when given)
 * and records the index of the last frame of each type in last[]. */
static unsigned rws_read_to_close(rws *w, int ms, size_t *counts, size_t *last, size_t *nframes)
{
    size_t idx = 0;
    uint64_t ot_version = 0; /* the last OT_REMOTE's version (0: none yet) */
    uint64_t end = np_mono_ms() + (uint64_t)ms;
    while (np_mono_ms() < end) {
        int op;
        uint8_t *p;
        size_t n;
        int r = rws_frame(w, 200, &op, &p, &n);
        if (r < 0) break;
        if (r == 0) continue;
        if (op == 8) {
            unsigned code = n >= 2 ? ((unsigned)p[0] << 8) | p[1] : 0;
            free(p);
            if (nframes) *nframes = idx;
            return code;
        }
        if (op == 2 && counts) {
            syncm m;
            ck_assert_int_eq(syncm_decode(p, n, SYNCM_MAX_FRAME, &m), TDM_OK);
            if (m.type < SYNCM_TYPE_LIMIT_) {
                counts[m.type]++;
                last[m.type] = idx;
            }
            /* the server writes outside WRITEABLE and the socket cuts its
             * sends short here: every frame must still arrive whole and in
             * order (each OT_REMOTE is the next version) */
            if (m.type == SYNCM_OT_REMOTE) {
                if (ot_version) ck_assert_uint_eq(m.version, ot_version + 1);
                ot_version = m.version;
            }
            syncm_clear(&m);
        }
        idx++;
        free(p);
    }
    if (nframes) *nframes = idx;
    return 0;
}

/* ---- (a) connect / disconnect cycles -------------------------------------------- */

#define NROOMS_A 8
#define BATCH    50

typedef struct token_set {
    char (*tok)[16]; /* "<k>" tokens */
    size_t n, cap;
} token_set;

static char *users[BATCH];

static void churn_batch(wsc_ctx *x, int port, size_t first, size_t count, token_set *acked)
{
    /* every token-less dev client is user "anon" and shares its rate-limit
     * buckets (200 updates/s, burst 400): the churn spreads over BATCH users */
    for (size_t i = 0; i < BATCH; i++)
        if (!users[i]) {
            char u[16];
            snprintf(u, sizeof u, "user%zu", i);
            users[i] = np_dev_token(port, u);
        }
    np_peer *ps = calloc(count, sizeof *ps);
    np_peer **pp = calloc(count, sizeof *pp);
    char(*tok)[16] = calloc(count, sizeof *tok);
    ck_assert(ps && pp && tok);
    for (size_t i = 0; i < count; i++) {
        size_t k = first + i;
        char room[32];
        snprintf(room, sizeof room, "churn-%zu", k % NROOMS_A);
        np_open(&ps[i], x, port, room, 100000 + k, false, users[i % BATCH]);
        pp[i] = &ps[i];
    }
    np_group g = {pp, count};
    ck_assert_msg(wsc_wait(x, np_all_synced, &g, 20000), "batch at %zu did not sync", first);
    for (size_t i = 0; i < count; i++) {
        size_t k = first + i;
        snprintf(tok[i], sizeof tok[i], "<%u>", (unsigned)(k % 1000000000u));
        size_t len = crdt_doc_len(ps[i].doc);
        /* at either end: never inside another token */
        ck_assert_int_eq(crdt_doc_insert(ps[i].doc, k % 2 ? 0 : len, tok[i], strlen(tok[i])),
                         TDM_OK);
        ck_assert_int_eq(sync_client_flush(ps[i].cl, ps[i].ch), TDM_OK);
        np_pump(&ps[i]);
    }
    /* two thirds wait for their ack; the others leave at once */
    uint64_t end = np_mono_ms() + 20000;
    for (;;) {
        wsc_service(x, 5);
        bool done = true;
        for (size_t i = 0; i < count; i++) {
            np_pump(&ps[i]);
            if ((first + i) % 3 != 2 && ps[i].acks == 0) done = false;
        }
        if (done) break;
        ck_assert_msg(np_mono_ms() < end, "batch at %zu: acks missing", first);
    }
    for (size_t i = 0; i < count; i++) {
        if (ps[i].acks) {
            ck_assert_uint_lt(acked->n, acked->cap);
            memcpy(acked->tok[acked->n++], tok[i], sizeof tok[i]);
        }
        if ((first + i) % 2)
            np_close(&ps[i]);
        else
            np_drop(&ps[i]);
    }
    wsc_service(x, 1);
    for (size_t i = 0; i < count; i++) np_free(&ps[i]);
    free(ps);
    free(pp);
    free(tok);
}

/* Raw connections that leave in the middle of a frame (after HELLO and a
 * SUBSCRIBE), half with a FIN and half with an RST. */
static void churn_raw(int port, size_t first, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        rws w;
        ck_assert(rws_open(&w, port, 0));
        rws_hello(&w, 900000 + first + i);
        char room[32];
        snprintf(room, sizeof room, "churn-%zu", (first + i) % NROOMS_A);
        rws_subscribe_ot(&w, 1, room);
        syncm chat = {.type = SYNCM_CHAT_SEND,
                      .channel = 1,
                      .msg_id = 1,
                      .text = {(const uint8_t *)"cut off mid-frame", 17}};
        rws_send_msg(&w, &chat, 9); /* header and a few payload bytes */
        rws_close_fd(&w, i % 2);
    }
}

START_TEST(test_connect_churn)
{
    long cycles = env_long("TANDEM_STRESS_CYCLES", 3000);
    srvp s;
    start(&s);
    wsc_ctx *x = wsc_new();
    ck_assert_ptr_nonnull(x);
    token_set acked = {calloc((size_t)cycles + BATCH, 16), 0, (size_t)cycles + BATCH};
    ck_assert_ptr_nonnull(acked.tok);
    /* warm-up: one batch of each kind, then everything freed */
    size_t done = 0;
    churn_batch(x, s.port, done, BATCH, &acked);
    churn_raw(s.port, done, 10);
    done += BATCH;
    wait_idle(x, s.port);
    long base = anon_kb(&s);
    uint64_t t0 = np_mono_ms();
    while (done < (size_t)cycles) {
        size_t n = (size_t)cycles - done < BATCH ? (size_t)cycles - done : BATCH;
        size_t raw = n / 5; /* a fifth leave mid-frame on raw sockets */
        churn_batch(x, s.port, done, n - raw, &acked);
        churn_raw(s.port, done, raw);
        done += n;
    }
    fprintf(stderr, "%ld connect/disconnect cycles in %llu ms\n", cycles,
            (unsigned long long)(np_mono_ms() - t0));
    wait_idle(x, s.port);
    check_rss(&s, base, "after connect churn");
    /* the server's own counters agree: every WebSocket accepted was closed */
    long accepted = np_metric(s.port, "tandem_ws_accepted_total");
    ck_assert_int_ge(accepted, cycles);
    ck_assert_int_eq(np_metric(s.port, "tandem_ws_closed_total"), accepted);
    ck_assert_int_eq(np_metric(s.port, "tandem_connections"), 0);
    ck_assert_int_eq(np_metric(s.port, "tandem_rooms"), 0);
    /* still serving, and every acked edit is in the rooms' texts */
    for (size_t r = 0; r < NROOMS_A; r++) {
        char room[32], path[64];
        snprintf(room, sizeof room, "churn-%zu", r);
        np_peer p;
        np_open(&p, x, s.port, room, 5000 + r, false, NULL);
        np_peer *pp[] = {&p};
        np_group g = {pp, 1};
        ck_assert(wsc_wait(x, np_all_synced, &g, 10000));
        char *t = np_text(&p);
        snprintf(path, sizeof path, "/api/rooms/%s/text", room);
        json_t *v = np_get_json(s.port, path);
        ck_assert_str_eq(json_string_value(json_object_get(v, "text")), t);
        json_decref(v);
        for (size_t i = 0; i < acked.n; i++) {
            size_t k = strtoul(acked.tok[i] + 1, NULL, 10);
            if (k % NROOMS_A == r)
                ck_assert_msg(strstr(t, acked.tok[i]), "acked %s missing in %s", acked.tok[i],
                              room);
        }
        free(t);
        np_close(&p);
        np_free(&p);
    }
    ck_assert_uint_ge(acked.n, (size_t)cycles / 2);
    free(acked.tok);
    for (size_t i = 0; i < BATCH; i++) {
        free(users[i]);
        users[i] = NULL;
    }
    wsc_free(x);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

/* ---- (b) thousands of rooms opened and closed ------------------------------------ */

#define ROOMS_PER_ROUND 100

static void open_close_rooms(wsc_ctx *x, int port, size_t first, size_t count)
{
    wsc_conn *c = wsc_connect(x, "127.0.0.1", port, "/ws", "tandem.v1");
    ck_assert_ptr_nonnull(c);
    syncm h = {.type = SYNCM_HELLO, .proto = 1, .caps = SYNC_CAP_ALL, .client_id = 4242};
    np_raw_send(c, &h);
    for (size_t done = 0; done < count;) {
        size_t n = count - done < ROOMS_PER_ROUND ? count - done : ROOMS_PER_ROUND;
        for (size_t i = 0; i < n; i++) {
            char room[32];
            snprintf(room, sizeof room, "many-%zu", first + done + i);
            syncm sub = {.type = SYNCM_SUBSCRIBE,
                         .channel = (uint32_t)(i + 1),
                         .name = {(const uint8_t *)room, strlen(room)},
                         .mode = SYNC_MODE_OT};
            np_raw_send(c, &sub);
        }
        for (size_t i = 0; i < n; i++) {
            np_raw r;
            ck_assert_msg(np_raw_until(x, c, SYNCM_SUBSCRIBED, &r, 10000), "room %zu",
                          first + done + i);
            np_raw_free(&r);
        }
        for (size_t i = 0; i < n; i++) {
            syncm un = {.type = SYNCM_UNSUBSCRIBE, .channel = (uint32_t)(i + 1)};
            np_raw_send(c, &un);
        }
        /* a PONG after the UNSUBSCRIBEs: they were processed */
        syncm ping = {.type = SYNCM_PING, .nonce = first + done};
        np_raw_send(c, &ping);
        np_raw r;
        ck_assert(np_raw_until(x, c, SYNCM_PONG, &r, 10000));
        np_raw_free(&r);
        done += n;
    }
    wsc_close(c);
}

START_TEST(test_room_churn)
{
    long rooms = env_long("TANDEM_STRESS_ROOMS", 2000);
    srvp s;
    start(&s);
    wsc_ctx *x = wsc_new();
    open_close_rooms(x, s.port, 0, 200);
    wait_idle(x, s.port);
    long base = anon_kb(&s);
    uint64_t t0 = np_mono_ms();
    open_close_rooms(x, s.port, 200, (size_t)rooms);
    fprintf(stderr, "%ld rooms opened and closed in %llu ms\n", rooms,
            (unsigned long long)(np_mono_ms() - t0));
    wait_idle(x, s.port);
    check_rss(&s, base, "after room churn");
    /* still serving */
    np_peer p;
    np_open(&p, x, s.port, "many-0", 77, false, NULL);
    ck_assert_int_eq(crdt_doc_insert(p.doc, 0, "ok", 2), TDM_OK);
    ck_assert_int_eq(sync_client_flush(p.cl, p.ch), TDM_OK);
    np_peer *pp[] = {&p};
    np_group g = {pp, 1};
    ck_assert(wsc_wait(x, np_all_converged, &g, 10000));
    wsc_free(x);
    np_free(&p);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

/* ---- (c) a slow consumer --------------------------------------------------------- */

#define FLOOD_CHUNK (64u << 10) /* bytes inserted per update */

/* A writer floods `busy` with large inserts while another client sends
 * presence and typing with each, and a raw consumer with a 4 KiB receive
 * window subscribes and stops reading. resume: the consumer reads again
 * right after the flood (it must get its queue, ERROR CLOSING and 4001);
 * else it never reads again (the server must drop it after the grace). */
static void slow_consumer(bool resume)
{
    static const char *const env[] = {"TANDEM_ROOM_IDLE_MS=300", "TANDEM_CLOSE_GRACE_MS=1000",
                                      NULL};
    srvp s;
    if (resume) {
        start(&s);
    } else {
        srvp_opts so = {0};
        so.env = env;
        ck_assert_msg(srvp_start_opts(&s, TANDEM_BIN, &so), "could not start the server");
    }
    wsc_ctx *x = wsc_new();
    np_peer writer, good, chatty;
    np_open(&writer, x, s.port, "busy", 11, false, NULL);
    np_open(&good, x, s.port, "busy", 12, false, NULL);
    np_open(&chatty, x, s.port, "busy", 13, false, NULL);
    np_peer *ps[] = {&writer, &good, &chatty};
    np_group g = {ps, 3};
    ck_assert(wsc_wait(x, np_all_synced, &g, 10000));
    long base = anon_kb(&s);
    rws slow;
    ck_assert(rws_open(&slow, s.port, 4096));
    rws_hello(&slow, 14);
    rws_subscribe_ot(&slow, 1, "busy");
    int op;
    uint8_t *p;
    size_t n;
    bool subscribed = false;
    while (!subscribed && rws_frame(&slow, 5000, &op, &p, &n) == 1) {
        syncm m;
        ck_assert_int_eq(syncm_decode(p, n, SYNCM_MAX_FRAME, &m), TDM_OK);
        subscribed = m.type == SYNCM_SUBSCRIBED;
        syncm_clear(&m);
        free(p);
    }
    ck_assert(subscribed);
    ck_assert_int_eq(health(s.port, "connections"), 4);
    char *chunk = malloc(FLOOD_CHUNK);
    ck_assert_ptr_nonnull(chunk);
    size_t flood = 0, aw_sent = 0;
    long peak = 0;
    for (int i = 0; flood < (size_t)14 << 20; i++) {
        memset(chunk, 'a' + i % 26, FLOOD_CHUNK);
        ck_assert_int_eq(crdt_doc_insert(writer.doc, crdt_doc_len(writer.doc), chunk, FLOOD_CHUNK),
                         TDM_OK);
        ck_assert_int_eq(sync_client_flush(writer.cl, writer.ch), TDM_OK);
        flood += FLOOD_CHUNK;
        char st[48];
        snprintf(st, sizeof st, "{\"cursor\":%d}", i);
        np_presence(&chatty, st);
        aw_sent++;
        ck_assert_int_eq(sync_client_typing(chatty.cl, chatty.ch, i % 2 == 0), TDM_OK);
        /* keep the others flowing: the writer waits for acks now and then */
        uint64_t end = np_mono_ms() + 20000;
        while (sync_client_unacked(writer.cl, writer.ch) > 4) {
            for (size_t k = 0; k < 3; k++) np_pump(ps[k]);
            wsc_service(x, 2);
            ck_assert(np_mono_ms() < end);
        }
        for (size_t k = 0; k < 3; k++) np_pump(ps[k]);
        wsc_service(x, 1);
        long rss = anon_kb(&s);
        if (rss > peak) peak = rss;
    }
    free(chunk);
    fprintf(stderr, "slow consumer: %zu MiB flooded, server RssAnon peak +%ld KiB\n", flood >> 20,
            peak - base);
    /* memory stayed bounded: the consumer's queue is capped (4 MiB); the
     * rest is the 14 MiB document itself */
    ck_assert_int_lt(peak - base, (UNDER_ASAN ? 512L : 160L) << 10);
    size_t counts[SYNCM_TYPE_LIMIT_] = {0}, last[SYNCM_TYPE_LIMIT_] = {0}, nframes = 0;
    if (resume) {
        /* the consumer reads again: what was queued, the last frame ERROR
         * CLOSING, then close 4001; presence and typing stopped reaching its
         * queue before the document updates did */
        unsigned code = rws_read_to_close(&slow, 30000, counts, last, &nframes);
        fprintf(stderr,
                "slow consumer: %zu frames (OT_REMOTE %zu, AWARENESS %zu of %zu sent, TYPING "
                "%zu), close %u\n",
                nframes, counts[SYNCM_OT_REMOTE], counts[SYNCM_AWARENESS], aw_sent,
                counts[SYNCM_TYPING], code);
        ck_assert_uint_eq(code, 4001);
        ck_assert_uint_eq(counts[SYNCM_ERROR], 1);
        ck_assert_uint_eq(last[SYNCM_ERROR], nframes - 1);
        ck_assert_uint_gt(counts[SYNCM_OT_REMOTE], 0);
        ck_assert_uint_lt(counts[SYNCM_AWARENESS], aw_sent);
        ck_assert_uint_lt(last[SYNCM_AWARENESS], last[SYNCM_OT_REMOTE]);
        ck_assert_uint_lt(counts[SYNCM_TYPING], aw_sent);
        ck_assert_uint_lt(last[SYNCM_TYPING], last[SYNCM_OT_REMOTE]);
    } else {
        /* it never reads: the server drops it once the grace after the
         * backpressure mark has passed, without waiting for the window */
        uint64_t end = np_mono_ms() + 20000;
        long conns = health(s.port, "connections");
        while (conns > 3 && np_mono_ms() < end) {
            for (size_t k = 0; k < 3; k++) np_pump(ps[k]);
            wsc_service(x, 50);
            conns = health(s.port, "connections");
        }
        ck_assert_int_eq(conns, 3);
        /* what the kernel buffered, then the end of the stream */
        unsigned code = rws_read_to_close(&slow, 10000, counts, last, &nframes);
        fprintf(stderr, "stuck consumer: dropped; %zu frames buffered, close %u\n", nframes, code);
        ck_assert_uint_ne(code, 4001);
    }
    rws_close_fd(&slow, false);
    /* the others converge and the room goes on */
    ck_assert_msg(wsc_wait(x, np_all_converged, &g, 60000), "others did not converge");
    ck_assert_uint_eq(writer.errors + good.errors, 0);
    ck_assert_int_eq(crdt_doc_insert(good.doc, 0, "after", 5), TDM_OK);
    ck_assert_int_eq(sync_client_flush(good.cl, good.ch), TDM_OK);
    ck_assert(wsc_wait(x, np_all_converged, &g, 30000));
    for (size_t k = 0; k < 3; k++) np_close(ps[k]);
    wait_idle(x, s.port);
    wsc_free(x);
    for (size_t k = 0; k < 3; k++) np_free(ps[k]);
    ck_assert_int_eq(srvp_stop(&s), 0);
}

START_TEST(test_slow_consumer)
{
    slow_consumer(true);
}
END_TEST

START_TEST(test_stuck_consumer)
{
    slow_consumer(false);
}
END_TEST

/* ---- (d) connections that never send HELLO --------------------------------------- */

#define SILENT 200

START_TEST(test_no_hello_flood)
{
    srvp s;
    start(&s);
    wsc_ctx *x = wsc_new();
    rws *w = calloc(SILENT, sizeof *w);
    ck_assert_ptr_nonnull(w);
    uint64_t t0 = np_mono_ms();
    for (size_t i = 0; i < SILENT; i++) ck_assert(rws_open(&w[i], s.port, 0));
    /* someone else works normally meanwhile */
    np_peer a, b;
    np_open(&a, x, s.port, "calm", 1, false, NULL);
    np_open(&b, x, s.port, "calm", 2, true, NULL);
    np_peer *ps[] = {&a, &b};
    np_group g = {ps, 2};
    ck_assert(wsc_wait(x, np_all_synced, &g, 10000));
    unsigned rng = 5;
    for (int i = 0; i < 10; i++) {
        np_random_edit(&a, &rng, false);
        np_random_edit(&b, &rng, false);
        ck_assert(wsc_wait(x, np_all_converged, &g, 10000));
    }
    ck_assert_uint_eq(a.errors + b.errors, 0);
    /* every silent one is closed with 4002 after the HELLO timeout */
    size_t closed = 0;
    for (size_t i = 0; i < SILENT; i++) {
        unsigned code = rws_read_to_close(&w[i], 10000, NULL, NULL, NULL);
        ck_assert_msg(code == 4002, "silent connection %zu: close %u", i, code);
        closed++;
        rws_close_fd(&w[i], false);
    }
    ck_assert_uint_ge(np_mono_ms() - t0, HELLO_MS - 100);
    ck_assert_uint_eq(closed, SILENT);
    /* the others are still connected and served */
    ck_assert(sync_client_connected(a.cl) && sync_client_connected(b.cl));
    np_random_edit(&b, &rng, true);
    ck_assert(wsc_wait(x, np_all_converged, &g, 10000));
    ck_assert_int_eq(health(s.port, "connections"), 2);
    free(w);
    wsc_free(x);
    np_free(&a);
    np_free(&b);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("server_stress");
    TCase *tc = tcase_create("stress");
    tcase_set_timeout(tc, 280);
    tcase_add_test(tc, test_connect_churn);
    tcase_add_test(tc, test_room_churn);
    tcase_add_test(tc, test_slow_consumer);
    tcase_add_test(tc, test_stuck_consumer);
    tcase_add_test(tc, test_no_hello_flood);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
