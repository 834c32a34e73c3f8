/* test_server_crash.c - fault tests of the real `tandem serve --dev`
 * (support/server_proc) with real sync clients over WebSocket
 * (support/sync_peer on support/ws_client) and raw sockets.
 *
 *   kill: three CRDT clients edit and chat while the server is SIGKILLed at
 *     a random point of the write burst, then restarted on the same data
 *     directory; before any client reconnects, every update a client had
 *     seen acked is in the stored document (a fresh subscriber's state
 *     vector covers each client's acked clock) and every acked chat message
 *     is in the stored history; then the clients reconnect and resync, all
 *     replicas and GET /text converge and every chat message sent appears
 *     exactly once. TANDEM_KILL_ROUNDS rounds (default 10), each at least
 *     600 ms and at most one chat message per client, so the clients stay
 *     under the per-user rate limits (a refused write would make "acked"
 *     ambiguous; the test asserts none was refused).
 *   vanish mid-frame: clients that send half a WebSocket frame (half a
 *     header, a header and part of the payload, a frame declaring 2 MiB)
 *     and drop the connection, before and after HELLO, while a client keeps
 *     editing: the server keeps its pid, answers /healthz, its connection
 *     count comes back and two clients converge.
 *   half-request flood: 100 TCP connections with half an HTTP request and
 *     100 that send nothing, all at once: two clients sync and converge
 *     through it, the server closes every one of them (lws's request
 *     timeout, about 10 s) and its connection count comes back.
 * Connect/disconnect cycles, room churn, slow consumers and a flood of
 * upgraded WebSockets that never send HELLO are in test_server_stress.c;
 * pre-HELLO caps and the per-IP connect limit in test_server_limits.c; LMDB
 * map full in test_store.c (test_map_full_capped).
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "server_proc.h"
#include "sync_peer.h"

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the tandem binary"
#endif

extern char **environ;

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long healthz_num(int port, const char *field)
{
    json_t *v = np_get_json(port, "/healthz");
    long n = (long)json_integer_value(json_object_get(v, field));
    json_decref(v);
    return n;
}

/* ---- SIGKILL and restart on the same data directory -------------------------------- */

/* srv_restart - start `tandem serve --dev` again on s->data (same port when
 * it is free, else another); false when it does not come up. */
static bool srv_restart(srvp *s)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        if (attempt > 0) s->port = 20000 + (int)((srvp_mono_ms() * 7919u + attempt) % 40000u);
        char port[16];
        snprintf(port, sizeof port, "%d", s->port);
        const char *argv[] = {TANDEM_BIN, "serve",  "--host", "127.0.0.1", "--port",
                              port,       "--data", s->data,  "--dev",     NULL};
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        int rc = posix_spawn(&s->pid, TANDEM_BIN, &fa, NULL, (char *const *)argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) return false;
        char want[48];
        snprintf(want, sizeof want, "\"pid\":%ld", (long)s->pid);
        uint64_t end = srvp_mono_ms() + 15000;
        bool up = false, exited = false;
        while (!up && !exited && srvp_mono_ms() < end) {
            int st;
            if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
                exited = true;
                break;
            }
            srvp_http r = srvp_get(s->port, "/healthz");
            up = r.status == 200 && r.body && strstr(r.body, want);
            srvp_http_free(&r);
            if (!up) nap_ms(20);
        }
        if (up) return true;
        if (!exited) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        s->pid = 0;
    }
    return false;
}

/* ---- the kill test ------------------------------------------------------------------- */

#define KP         3    /* writing clients */
#define KMAX_FLUSH 4096 /* flushes remembered per client per round */
#define KMAX_CHAT  4096 /* chat messages per client over the test */
#define KROUND_MS                                                                                  \
    600 /* shortest round: 40 updates and 1 chat message per client                                \
           and round stay under the per-user rate limits */

typedef struct kpeer {
    np_peer p;
    uint32_t base;              /* own clock when the round started (all acked) */
    uint32_t flush[KMAX_FLUSH]; /* own clock after each flush of this round */
    size_t nflush;              /* flushes this round, all while connected */
    uint32_t acked;             /* own clock known durable at the kill */
    char *chat[KMAX_CHAT];      /* texts sent, in order */
    size_t nchat;               /* sent in all */
    size_t chat_round0;         /* sent before this round (all acked) */
    size_t chat_acked_at_kill;  /* acked before the kill */
    bool chatted;               /* sent its chat message of this round */
} kpeer;

static uint32_t own_clock(np_peer *p)
{
    crdt_sv *sv = crdt_sv_new();
    ck_assert_ptr_nonnull(sv);
    ck_assert_int_eq(crdt_doc_state_vector(p->doc, sv), TDM_OK);
    uint32_t c = crdt_sv_get(sv, p->client_id);
    crdt_sv_free(sv);
    return c;
}

static void kp_edit(kpeer *k, unsigned *rng)
{
    np_random_edit(&k->p, rng, false);
    ck_assert_uint_lt(k->nflush, KMAX_FLUSH);
    k->flush[k->nflush++] = own_clock(&k->p);
}

/* kp_chat - at most one chat message per client and round: with rounds of
 * at least KROUND_MS that stays under the server's chat rate (2/s per user),
 * so nothing is refused and acks come in send order */
static void kp_chat(kpeer *k, int round)
{
    if (k->chatted) return;
    k->chatted = true;
    ck_assert_uint_lt(k->nchat, KMAX_CHAT);
    char text[64];
    int n = snprintf(text, sizeof text, "c%llu r%d m%zu", (unsigned long long)k->p.client_id, round,
                     k->nchat);
    ck_assert_int_eq(sync_client_chat_send(k->p.cl, k->p.ch, text, (size_t)n, NULL), TDM_OK);
    k->chat[k->nchat++] = strdup(text);
}

/* The stored chat history of `room`, every record's text (malloc'd array of
 * malloc'd strings), paging with after=. */
static char **stored_chat(int port, const char *room, size_t *count)
{
    size_t cap = 64, n = 0;
    char **v = malloc(cap * sizeof *v);
    uint64_t after = 0;
    for (;;) {
        char path[256];
        snprintf(path, sizeof path, "/api/rooms/%s/messages?after=%llu&limit=1000", room,
                 (unsigned long long)after);
        srvp_http r = srvp_get(port, path);
        if (r.status == 404 && after == 0) { /* no such room stored yet */
            srvp_http_free(&r);
            break;
        }
        ck_assert_msg(r.status == 200, "GET %s: status %d", path, r.status);
        json_t *o = json_loads(r.body, 0, NULL);
        srvp_http_free(&r);
        ck_assert_ptr_nonnull(o);
        json_t *msgs = json_object_get(o, "messages");
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m)
        {
            if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
            v[n++] = strdup(json_string_value(json_object_get(m, "text")));
            after = (uint64_t)json_integer_value(json_object_get(m, "id"));
        }
        bool more = json_is_true(json_object_get(o, "more"));
        json_decref(o);
        if (!more) break;
    }
    *count = n;
    return v;
}

static size_t count_text(char **v, size_t n, const char *t)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += strcmp(v[i], t) == 0;
    return c;
}

static void free_texts(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

typedef struct kgroup {
    kpeer *k;
    size_t n;
    np_peer *extra;    /* may be NULL */
    uint64_t retry_ms; /* mono ms of the last sync_client_retry */
} kgroup;

/* every client converged and every chat message acked; what a rate limit
 * refused is retried (sync_client_retry) every 300 ms */
static bool k_settled(void *arg)
{
    kgroup *g = arg;
    if (srvp_mono_ms() - g->retry_ms > 300) {
        for (size_t i = 0; i < g->n; i++)
            if (g->k[i].p.err_count[SYNC_ERR_RATE_LIMITED])
                ck_assert_int_eq(sync_client_retry(g->k[i].p.cl), TDM_OK);
        g->retry_ms = srvp_mono_ms();
    }
    np_peer *ps[KP + 1];
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++) ps[n++] = &g->k[i].p;
    if (g->extra) ps[n++] = g->extra;
    np_group ng = {ps, n};
    if (!np_all_converged(&ng)) return false;
    for (size_t i = 0; i < g->n; i++)
        if (g->k[i].p.chat_acks < g->k[i].nchat) return false;
    return true;
}

static bool one_synced(void *arg)
{
    np_peer *p = arg;
    np_pump(p);
    return sync_client_synced(p->cl, p->ch);
}

static int kill_rounds(void)
{
    const char *v = getenv("TANDEM_KILL_ROUNDS");
    int n = v ? atoi(v) : 10;
    return n > 0 ? n : 10;
}

START_TEST(test_kill_under_load)
{
    srvp s;
    ck_assert(srvp_start(&s, TANDEM_BIN));
    wsc_ctx *x = wsc_new();
    ck_assert_ptr_nonnull(x);
    kpeer *k = calloc(KP, sizeof *k);
    ck_assert_ptr_nonnull(k);
    for (size_t i = 0; i < KP; i++) {
        char user[16];
        snprintf(user, sizeof user, "writer%zu", i);
        char *tok = np_dev_token(s.port, user);
        np_open(&k[i].p, x, s.port, "crash", 101 + i, false, tok);
        free(tok);
    }
    kgroup g = {k, KP, NULL, 0};
    ck_assert(wsc_wait(x, k_settled, &g, 20000));
    unsigned rng = 4242;
    int rounds = kill_rounds();
    uint64_t total_updates = 0, total_chat = 0, acked_updates = 0, acked_chat = 0;
    for (int round = 0; round < rounds; round++) {
        uint64_t round_t0 = srvp_mono_ms();
        for (size_t i = 0; i < KP; i++) {
            k[i].base = own_clock(&k[i].p);
            k[i].nflush = 0;
            k[i].chat_round0 = k[i].nchat;
            k[i].chatted = false;
        }
        /* a write burst; the kill lands at a random step of it */
        int steps = 40, kill_at = 5 + (int)((unsigned)rand_r(&rng) % 30u);
        for (int st = 0; st < kill_at; st++) {
            for (size_t i = 0; i < KP; i++) {
                kp_edit(&k[i], &rng);
                if (rand_r(&rng) % 12 == 0) kp_chat(&k[i], round);
                np_pump(&k[i].p);
            }
            wsc_service(x, 1 + rand_r(&rng) % 4);
        }
        /* sometimes let the acks catch up a little */
        if (rand_r(&rng) % 2) {
            uint64_t until = srvp_mono_ms() + (uint64_t)(rand_r(&rng) % 40);
            while (srvp_mono_ms() < until) {
                wsc_service(x, 2);
                for (size_t i = 0; i < KP; i++) np_pump(&k[i].p);
            }
        }
        /* what each client knows to be durable, then SIGKILL (chat acks are
         * taken in order: nothing may have been refused by a rate limit) */
        for (size_t i = 0; i < KP; i++) {
            np_pump(&k[i].p);
            ck_assert_msg(k[i].p.err_count[SYNC_ERR_RATE_LIMITED] == 0,
                          "round %d: client %zu was rate limited (the test must stay under the "
                          "limits to know which writes were acked)",
                          round, i);
            size_t un = sync_client_unacked(k[i].p.cl, k[i].p.ch);
            ck_assert_uint_le(un, k[i].nflush);
            size_t a = k[i].nflush - un;
            k[i].acked = a ? k[i].flush[a - 1] : k[i].base;
            k[i].chat_acked_at_kill = (size_t)k[i].p.chat_acks;
            ck_assert_uint_le(k[i].chat_acked_at_kill, k[i].nchat);
            acked_updates += a;
            acked_chat += k[i].chat_acked_at_kill - k[i].chat_round0;
            total_updates += k[i].nflush;
        }
        ck_assert_msg(srvp_kill9(&s), "SIGKILL did not end the server");
        /* the clients keep editing offline until they notice */
        for (int st = kill_at; st < steps; st++) {
            for (size_t i = 0; i < KP; i++) {
                np_random_edit(&k[i].p, &rng, false);
                if (rand_r(&rng) % 12 == 0) kp_chat(&k[i], round);
                np_pump(&k[i].p);
            }
            wsc_service(x, 0);
        }
        for (size_t i = 0; i < KP; i++) total_chat += k[i].nchat - k[i].chat_round0;
        ck_assert_msg(srv_restart(&s), "round %d: the server did not restart", round);

        /* before anyone reconnects: the store holds everything acked */
        size_t nst;
        char **stored = stored_chat(s.port, "crash", &nst);
        for (size_t i = 0; i < KP; i++)
            for (size_t m = 0; m < k[i].chat_acked_at_kill; m++)
                ck_assert_msg(count_text(stored, nst, k[i].chat[m]) == 1,
                              "round %d: acked chat '%s' stored %zu times", round, k[i].chat[m],
                              count_text(stored, nst, k[i].chat[m]));
        free_texts(stored, nst);
        np_peer audit;
        np_open(&audit, x, s.port, "crash", 9000 + (uint64_t)round, false, NULL);
        ck_assert(wsc_wait(x, one_synced, &audit, 20000));
        crdt_sv *sv = crdt_sv_new();
        ck_assert_int_eq(crdt_doc_state_vector(audit.doc, sv), TDM_OK);
        for (size_t i = 0; i < KP; i++)
            ck_assert_msg(crdt_sv_get(sv, k[i].p.client_id) >= k[i].acked,
                          "round %d: client %zu acked clock %u, stored %u", round, i, k[i].acked,
                          crdt_sv_get(sv, k[i].p.client_id));
        crdt_sv_free(sv);

        /* reconnect: every replica converges, every chat message once (with
         * new tokens: --dev mints them with this server process's secret) */
        for (size_t i = 0; i < KP; i++) {
            char user[16];
            snprintf(user, sizeof user, "writer%zu", i);
            char *tok = np_dev_token(s.port, user);
            np_drop(&k[i].p);
            ck_assert_int_eq(sync_client_set_token(k[i].p.cl, (const uint8_t *)tok, strlen(tok)),
                             TDM_OK);
            free(tok);
            k[i].p.port = s.port;
            np_connect(&k[i].p);
        }
        g.extra = &audit;
        if (!wsc_wait(x, k_settled, &g, 30000)) {
            for (size_t i = 0; i < KP; i++)
                fprintf(stderr,
                        "client %zu: synced %d unacked %zu chat %llu/%zu errors %llu (last code "
                        "%llu)\n",
                        i, sync_client_synced(k[i].p.cl, k[i].p.ch),
                        sync_client_unacked(k[i].p.cl, k[i].p.ch),
                        (unsigned long long)k[i].p.chat_acks, k[i].nchat,
                        (unsigned long long)k[i].p.errors,
                        (unsigned long long)k[i].p.last_err_code);
            ck_abort_msg("round %d: no convergence", round);
        }
        g.extra = NULL;
        np_drop(&audit);
        np_free(&audit);
        char *t0 = np_text(&k[0].p);
        json_t *tv = np_get_json(s.port, "/api/rooms/crash/text");
        ck_assert_str_eq(json_string_value(json_object_get(tv, "text")), t0);
        json_decref(tv);
        free(t0);
        stored = stored_chat(s.port, "crash", &nst);
        size_t sent = 0;
        for (size_t i = 0; i < KP; i++)
            for (size_t m = 0; m < k[i].nchat; m++, sent++)
                ck_assert_msg(count_text(stored, nst, k[i].chat[m]) == 1,
                              "round %d: chat '%s' stored %zu times", round, k[i].chat[m],
                              count_text(stored, nst, k[i].chat[m]));
        ck_assert_uint_eq(nst, sent);
        free_texts(stored, nst);
        while (srvp_mono_ms() < round_t0 + KROUND_MS) {
            wsc_service(x, 10);
            for (size_t i = 0; i < KP; i++) np_pump(&k[i].p);
        }
    }
    fprintf(stderr,
            "test_kill_under_load: %d kill rounds; updates sent while connected %llu, acked "
            "before the kill %llu; chat messages %llu, acked before the kill %llu; nothing "
            "lost or duplicated\n",
            rounds, (unsigned long long)total_updates, (unsigned long long)acked_updates,
            (unsigned long long)total_chat, (unsigned long long)acked_chat);
    for (size_t i = 0; i < KP; i++) {
        for (size_t m = 0; m < k[i].nchat; m++) free(k[i].chat[m]);
        np_drop(&k[i].p);
        np_free(&k[i].p);
    }
    free(k);
    wsc_free(x);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

/* ---- raw WebSocket ---------------------------------------------------------------------- */

/* ws_raw_open - a TCP connection upgraded to tandem.v1 (101 read), or -1 */
static int ws_raw_open(int port)
{
    int fd = srvp_connect(port);
    if (fd < 0) return -1;
    static const char req[] =
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tandem.v1\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    char buf[2048];
    size_t len = 0;
    uint64_t end = srvp_mono_ms() + 5000;
    while (srvp_mono_ms() < end && len < sizeof buf - 1) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = 0;
        if (strstr(buf, "\r\n\r\n")) break;
    }
    buf[len] = 0;
    if (!strstr(buf, " 101 ")) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ws_frame - a masked binary frame header declaring `declared` payload bytes
 * followed by the masked payload p[0..n) (n may be less than declared).
 * Returns the bytes written to out. */
static size_t ws_frame(uint8_t *out, const uint8_t *p, size_t n, uint64_t declared)
{
    size_t k = 0;
    out[k++] = 0x82;
    if (declared < 126) {
        out[k++] = (uint8_t)(0x80 | declared);
    } else if (declared < 65536) {
        out[k++] = 0x80 | 126;
        out[k++] = (uint8_t)(declared >> 8);
        out[k++] = (uint8_t)declared;
    } else {
        out[k++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) out[k++] = (uint8_t)(declared >> (8 * i));
    }
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(out + k, mask, 4);
    k += 4;
    for (size_t i = 0; i < n; i++) out[k++] = p[i] ^ mask[i % 4];
    return k;
}

static size_t hello_frame(uint8_t *out, uint64_t client_id)
{
    tbuf b;
    tbuf_init(&b, 0);
    syncm m = {.type = SYNCM_HELLO,
               .proto = SYNCM_PROTOCOL_VERSION,
               .caps = SYNC_CAP_ALL,
               .client_id = client_id};
    ck_assert_int_eq(syncm_encode(&m, &b), TDM_OK);
    size_t k = ws_frame(out, b.data, b.len, b.len);
    tbuf_fini(&b);
    return k;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool conns_at_most(int port, long n, int timeout_ms)
{
    uint64_t end = srvp_mono_ms() + (uint64_t)timeout_ms;
    long c = 0;
    while (srvp_mono_ms() < end) {
        c = healthz_num(port, "connections");
        if (c <= n) return true;
        nap_ms(50);
    }
    fprintf(stderr, "connections still %ld (want <= %ld)\n", c, n);
    return false;
}

START_TEST(test_vanish_mid_frame)
{
    srvp s;
    ck_assert(srvp_start(&s, TANDEM_BIN));
    pid_t pid = s.pid;
    wsc_ctx *x = wsc_new();
    np_peer a, b;
    np_open(&a, x, s.port, "vanish", 11, false, NULL);
    np_peer *ab[] = {&a, NULL};
    np_wait_converged(x, ab, 1, 20000);
    long base = healthz_num(s.port, "connections");
    unsigned rng = 77;
    static uint8_t payload[4096], frame[8192];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)rand_r(&rng);
    int vanished = 0;
    for (int i = 0; i < 60; i++) {
        int fd = ws_raw_open(s.port);
        ck_assert_int_ge(fd, 0);
        size_t n = 0;
        if (i % 2) n = hello_frame(frame, 500 + (uint64_t)i); /* after HELLO */
        switch (i % 6 / 2) {
        case 0: /* half a header */
            frame[n++] = 0x82;
            frame[n++] = 0x80 | 126;
            break;
        case 1: /* a header and part of its payload */
            n += ws_frame(frame + n, payload, 100 + (size_t)i, 3000);
            break;
        default: /* a frame declaring 2 MiB (over the 1 MiB cap), 1 KiB sent */
            n += ws_frame(frame + n, payload, 1024, (uint64_t)2 << 20);
            break;
        }
        ck_assert(write_all(fd, frame, n));
        close(fd);
        vanished++;
        /* the live client keeps editing in between */
        np_random_edit(&a, &rng, false);
        np_pump(&a);
        wsc_service(x, 1);
    }
    ck_assert_int_eq(healthz_num(s.port, "pid"), pid);
    ck_assert(conns_at_most(s.port, base, 10000));
    np_open(&b, x, s.port, "vanish", 12, false, NULL);
    ab[1] = &b;
    np_wait_converged(x, ab, 2, 20000);
    ck_assert_int_eq(s.pid, pid);
    fprintf(stderr, "test_vanish_mid_frame: %d clients vanished mid-frame\n", vanished);
    np_drop(&a);
    np_drop(&b);
    np_free(&a);
    np_free(&b);
    wsc_free(x);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

static bool peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
    /* a close frame (or anything) arrived: drain and look again later */
    char buf[512];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    return false;
}

START_TEST(test_half_request_flood)
{
    enum { NHALF = 100, NIDLE = 100, N = NHALF + NIDLE };
    srvp s;
    ck_assert(srvp_start(&s, TANDEM_BIN));
    pid_t pid = s.pid;
    wsc_ctx *x = wsc_new();
    int *fd = malloc(N * sizeof *fd);
    ck_assert_ptr_nonnull(fd);
    static const char part[] = "GET /healthz HTTP/1.1\r\nHost: 127.0";
    for (int i = 0; i < N; i++) {
        fd[i] = srvp_connect(s.port);
        ck_assert_int_ge(fd[i], 0);
        if (i < NHALF) ck_assert(write_all(fd[i], (const uint8_t *)part, sizeof part - 1));
    }
    /* the server keeps serving real clients through the flood */
    np_peer a, b;
    np_open(&a, x, s.port, "flood", 21, false, NULL);
    np_open(&b, x, s.port, "flood", 22, false, NULL);
    unsigned rng = 5;
    for (int i = 0; i < 20; i++) {
        np_random_edit(&a, &rng, false);
        np_random_edit(&b, &rng, false);
    }
    np_peer *ab[] = {&a, &b};
    np_wait_converged(x, ab, 2, 20000);
    json_t *v = np_get_json(s.port, "/healthz");
    json_decref(v);
    /* and closes every one of them (the lws request timeout, about 10 s) */
    uint64_t t0 = srvp_mono_ms(), end = t0 + 30000;
    int open = N;
    while (open > 0 && srvp_mono_ms() < end) {
        open = 0;
        for (int i = 0; i < N; i++)
            if (fd[i] >= 0) {
                if (peer_closed(fd[i])) {
                    close(fd[i]);
                    fd[i] = -1;
                } else {
                    open++;
                }
            }
        wsc_service(x, 20);
        np_pump(&a);
        np_pump(&b);
    }
    ck_assert_msg(open == 0, "%d half-open requests still open after 30 s", open);
    uint64_t took = srvp_mono_ms() - t0;
    ck_assert(conns_at_most(s.port, 2, 10000));
    ck_assert_int_eq(healthz_num(s.port, "pid"), pid);
    for (int i = 0; i < 5; i++) np_random_edit(&a, &rng, false);
    np_wait_converged(x, ab, 2, 20000);
    fprintf(stderr,
            "test_half_request_flood: %d half HTTP requests and %d silent TCP connections closed "
            "by the server within %llu ms, clients served meanwhile, pid unchanged\n",
            NHALF, NIDLE, (unsigned long long)took);
    np_drop(&a);
    np_drop(&b);
    np_free(&a);
    np_free(&b);
    free(fd);
    wsc_free(x);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

/* ---- write errors ------------------------------------------------------------------- */

static bool one_acked_or_failed(void *arg)
{
    np_peer *p = arg;
    np_pump(p);
    return sync_client_unacked(p->cl, p->ch) == 0 || p->err_count[SYNC_ERR_STORAGE] > 0;
}

static bool one_settled(void *arg)
{
    np_peer *p = arg;
    np_pump(p);
    return sync_client_synced(p->cl, p->ch) && sync_client_unacked(p->cl, p->ch) == 0;
}

static int run_verify(const char *data)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' verify '%s' --quiet >/dev/null 2>&1", TANDEM_BIN, data);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The disk fills up: the server is started with a 3 MiB file size limit
 * (RLIMIT_FSIZE, SIGXFSZ ignored: LMDB's writes past it fail with EFBIG,
 * as on a full file system). A client writes 16 KiB updates until the
 * server refuses one: ERROR STORAGE, the update stays unacked, the server
 * keeps running and serving reads, and the database verifies clean. After
 * a restart without the limit the client's retry stores it and the stored
 * text is the client's. */
START_TEST(test_write_error_surfaced)
{
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)3 << 20;
    signal(SIGXFSZ, SIG_IGN); /* inherited through exec: writes fail with EFBIG instead */
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    srvp s;
    bool started = srvp_start(&s, TANDEM_BIN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert(started);
    pid_t pid = s.pid;
    wsc_ctx *x = wsc_new();
    np_peer a;
    np_open(&a, x, s.port, "full", 31, false, NULL);
    ck_assert(wsc_wait(x, one_synced, &a, 20000));
    static char chunk[16384];
    int acked = 0;
    for (int i = 0; i < 1000 && a.err_count[SYNC_ERR_STORAGE] == 0; i++) {
        memset(chunk, 'a' + i % 26, sizeof chunk);
        ck_assert_int_eq(crdt_doc_insert(a.doc, crdt_doc_len(a.doc), chunk, sizeof chunk), TDM_OK);
        ck_assert_int_eq(sync_client_flush(a.cl, a.ch), TDM_OK);
        ck_assert(wsc_wait(x, one_acked_or_failed, &a, 20000));
        if (a.err_count[SYNC_ERR_STORAGE] == 0) acked++;
    }
    ck_assert_msg(a.err_count[SYNC_ERR_STORAGE] > 0, "no write failed");
    ck_assert_int_gt(acked, 10);
    ck_assert_uint_ge(sync_client_unacked(a.cl, a.ch), 1);
    ck_assert_int_eq(healthz_num(s.port, "pid"), pid);
    srvp_http r = srvp_get(s.port, "/api/rooms/full/text");
    ck_assert_int_eq(r.status, 200);
    srvp_http_free(&r);
    ck_assert_int_eq(run_verify(s.data), 0);
    /* more room: restart without the limit, the retry goes through */
    ck_assert_msg(srvp_kill9(&s), "SIGKILL did not end the server");
    ck_assert(srv_restart(&s));
    /* before the client is back: the store holds exactly the acked updates */
    {
        json_t *v = np_get_json(s.port, "/api/rooms/full/text");
        const char *st = json_string_value(json_object_get(v, "text"));
        ck_assert_ptr_nonnull(st);
        ck_assert_uint_eq(strlen(st), (size_t)acked * sizeof chunk);
        for (int i = 0; i < acked; i++)
            ck_assert_msg(st[(size_t)i * sizeof chunk] == 'a' + i % 26 &&
                              st[(size_t)(i + 1) * sizeof chunk - 1] == 'a' + i % 26,
                          "chunk %d", i);
        json_decref(v);
    }
    np_drop(&a);
    a.port = s.port;
    np_connect(&a);
    ck_assert(wsc_wait(x, one_synced, &a, 20000));
    ck_assert_int_eq(sync_client_retry(a.cl), TDM_OK);
    ck_assert(wsc_wait(x, one_settled, &a, 20000));
    char *t = np_text(&a);
    json_t *tv = np_get_json(s.port, "/api/rooms/full/text");
    ck_assert_str_eq(json_string_value(json_object_get(tv, "text")), t);
    json_decref(tv);
    fprintf(stderr,
            "test_write_error_surfaced: %d updates of 16 KiB acked under a 3 MiB file size limit, "
            "then ERROR STORAGE (%llu), nothing acked that was not stored; %zu code points after "
            "the restart and retry\n",
            acked, (unsigned long long)a.err_count[SYNC_ERR_STORAGE], strlen(t));
    free(t);
    np_drop(&a);
    np_free(&a);
    wsc_free(x);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("server_crash");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_kill_under_load);
    tcase_add_test(tc, test_vanish_mid_frame);
    tcase_add_test(tc, test_half_request_flood);
    tcase_add_test(tc, test_write_error_surfaced);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(crash_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
