/* test_server.c - the real `tandem serve` binary (TANDEM_BIN) on 127.0.0.1
 * (support/server_proc.h: a random high port retried when taken, a mkdtemp
 * data directory), driven by real clients: sync_client over the lws client
 * API (support/ws_client.h) and raw HTTP/1.1 over a socket. Everything waits by
 * polling with deadlines; nothing sleeps a fixed time. */
#define _XOPEN_SOURCE 700 /* mkdtemp, symlink */

#include "client.h"
#include "doc.h"
#include "ids.h"
#include "msg.h"
#include "ws_client.h"
#include "auth.h"
#include "server_proc.h"
#include "sync_peer.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

#define TEST_SECRET "0123456789abcdef0123456789abcdef-test-secret"

/* ---- raw HTTP (support/server_proc) --------------------------------------------- */

static bool has_header(const srvp_http *r, const char *line)
{
    return srvp_ci_strstr(r->headers, line) != NULL;
}

static json_t *http_json(int port, const char *path, int want_status)
{
    srvp_http r = srvp_get(port, path);
    ck_assert_msg(r.status == want_status, "GET %s: status %d, want %d: %s", path, r.status,
                  want_status, r.body ? r.body : "");
    ck_assert_msg(has_header(&r, "content-type: application/json"), "GET %s: %s", path, r.headers);
    json_error_t je;
    json_t *v = json_loadb(r.body, r.len, 0, &je);
    ck_assert_msg(v != NULL, "GET %s: not JSON: %s", path, r.body);
    srvp_http_free(&r);
    return v;
}

/* ---- the server process (support/server_proc) ---------------------------------- */

/* The server with a static web root (its own temporary directory, filled
 * before the start) in dev mode or, prod, with TEST_SECRET. */
typedef struct server {
    srvp p;
    char web[128];
    const char *args[3]; /* --web DIR */
    srvp_opts o;
} server;

/* Start again on the same data directory (and port when free) after server_stop. */
static void server_start(server *s)
{
    ck_assert_msg(srvp_restart_opts(&s->p, TANDEM_BIN, &s->o), "could not start the server");
}

/* SIGTERM and wait, keeping the data; returns the exit status (128 + signal when killed). */
static int server_stop(server *s)
{
    return srvp_term(&s->p);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void server_setup_mode(server *s, bool prod)
{
    memset(s, 0, sizeof *s);
    snprintf(s->web, sizeof s->web, "/tmp/tandem-web-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s->web));
    char p[256];
    snprintf(p, sizeof p, "%s/index.html", s->web);
    write_file(p, "<!doctype html><title>tandem</title>\n");
    snprintf(p, sizeof p, "%s/app.js", s->web);
    write_file(p, "console.log('tandem');\n");
    snprintf(p, sizeof p, "%s/style.css", s->web);
    write_file(p, "body{}\n");
    snprintf(p, sizeof p, "%s/.secret", s->web);
    write_file(p, "hidden\n");
    snprintf(p, sizeof p, "%s/sub", s->web);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/sub/index.html", s->web);
    write_file(p, "<p>sub</p>\n");
    snprintf(p, sizeof p, "%s/outside", s->web);
    ck_assert_int_eq(symlink("/etc/passwd", p), 0);
    s->args[0] = "--web";
    s->args[1] = s->web;
    s->args[2] = NULL;
    s->o.args = s->args;
    s->o.secret = prod ? TEST_SECRET : NULL;
    ck_assert_msg(srvp_start_opts(&s->p, TANDEM_BIN, &s->o), "could not start the server");
}

static void server_setup(server *s)
{
    server_setup_mode(s, false);
}

static void server_teardown(server *s)
{
    bool running = s->p.pid != 0;
    int rc = srvp_stop(&s->p); /* also removes the data directory */
    if (running) ck_assert_int_eq(rc, 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->web);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- sync peers ------------------------------------------------------------------ */

static void on_ack(void *ctx, uint32_t channel, uint64_t seq)
{
    (void)channel, (void)seq;
    ((np_peer *)ctx)->acks++;
}

static void on_error(void *ctx, const syncm *m)
{
    (void)m;
    ((np_peer *)ctx)->errors++;
}

static bool subscribe_refused(void *arg)
{
    np_peer *p = arg;
    uint8_t *m;
    size_t n;
    const uint8_t *f;
    while (sync_client_next_out(p->cl, &f, &n)) {
        ck_assert(wsc_send(p->ws, f, n));
        sync_client_consume(p->cl);
    }
    while (wsc_recv(p->ws, &m, &n)) {
        sync_client_recv(p->cl, m, n, np_now_ms());
        free(m);
    }
    return p->errors > 0;
}

static char *doc_text(crdt_doc *d)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(crdt_doc_text(d, &b), TDM_OK);
    char *s = malloc(b.len + 1);
    memcpy(s, b.data, b.len);
    s[b.len] = '\0';
    tbuf_fini(&b);
    return s;
}

typedef struct group {
    np_peer *p;
    size_t n;
} group;

static bool all_synced(void *arg)
{
    group *g = arg;
    bool ok = true;
    for (size_t i = 0; i < g->n; i++) {
        np_pump(&g->p[i]);
        ok = ok && sync_client_synced(g->p[i].cl, g->p[i].ch);
    }
    return ok;
}

/* Every update acked and every peer holding the same text. */
static bool all_converged(void *arg)
{
    group *g = arg;
    for (size_t i = 0; i < g->n; i++) np_pump(&g->p[i]);
    for (size_t i = 0; i < g->n; i++)
        if (!sync_client_synced(g->p[i].cl, g->p[i].ch) ||
            sync_client_unacked(g->p[i].cl, g->p[i].ch))
            return false;
    char *t0 = doc_text(g->p[0].doc);
    bool same = true;
    for (size_t i = 1; i < g->n && same; i++) {
        char *t = doc_text(g->p[i].doc);
        same = strcmp(t0, t) == 0;
        free(t);
    }
    free(t0);
    return same;
}

static void random_edit(np_peer *p, unsigned *rng)
{
    static const char *const words[] = {"a", "bc", "def", "ü", "日本", " ", "xyz\n", "😀"};
    size_t len = crdt_doc_len(p->doc);
    size_t pos = len ? (size_t)rand_r(rng) % (len + 1) : 0;
    const char *w = words[(size_t)rand_r(rng) % (sizeof words / sizeof words[0])];
    if (len > 4 && rand_r(rng) % 4 == 0) {
        size_t at = (size_t)rand_r(rng) % (len - 2);
        ck_assert_int_eq(crdt_doc_delete(p->doc, at, 2), TDM_OK);
    } else {
        ck_assert_int_eq(crdt_doc_insert(p->doc, pos, w, strlen(w)), TDM_OK);
    }
    ck_assert_int_eq(sync_client_flush(p->cl, p->ch), TDM_OK);
}

/* n peers edit concurrently for `rounds` rounds and converge. */
static void edit_and_converge(wsc_ctx *x, group *g, int rounds, unsigned seed)
{
    unsigned rng = seed;
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < g->n; i++) random_edit(&g->p[i], &rng);
        for (size_t i = 0; i < g->n; i++) np_pump(&g->p[i]);
        wsc_service(x, 1);
    }
    ck_assert_msg(wsc_wait(x, all_converged, g, 20000), "peers did not converge");
}

/* ---- tests ------------------------------------------------------------------------ */

START_TEST(test_http_endpoints)
{
    server s;
    server_setup(&s);
    json_t *v = http_json(s.p.port, "/healthz", 200);
    ck_assert_str_eq(json_string_value(json_object_get(v, "status")), "ok");
    ck_assert_str_eq(json_string_value(json_object_get(v, "subprotocol")), "tandem.v1");
    ck_assert(json_is_true(json_object_get(v, "dev")));
    ck_assert(json_is_integer(json_object_get(v, "connections")));
    json_decref(v);
    v = http_json(s.p.port, "/api/rooms", 200);
    ck_assert_uint_eq(json_array_size(json_object_get(v, "rooms")), 0);
    json_decref(v);
    v = http_json(s.p.port, "/api/rooms/nope", 404);
    ck_assert_str_eq(json_string_value(json_object_get(v, "error")), "not_found");
    json_decref(v);
    json_decref(http_json(s.p.port, "/api/rooms/nope/text", 404));
    json_decref(http_json(s.p.port, "/api/rooms/nope/messages", 404));
    json_decref(http_json(s.p.port, "/api/unknown", 404));
    srvp_http r =
        srvp_request(s.p.port, "POST /api/rooms HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n");
    ck_assert_int_eq(r.status, 405);
    srvp_http_free(&r);

    /* static files */
    r = srvp_get(s.p.port, "/");
    ck_assert_int_eq(r.status, 200);
    ck_assert(has_header(&r, "content-type: text/html"));
    ck_assert_ptr_nonnull(strstr(r.body, "<title>tandem</title>"));
    srvp_http_free(&r);
    r = srvp_get(s.p.port, "/app.js");
    ck_assert_int_eq(r.status, 200);
    ck_assert(has_header(&r, "content-type: text/javascript"));
    srvp_http_free(&r);
    r = srvp_get(s.p.port, "/style.css");
    ck_assert_int_eq(r.status, 200);
    ck_assert(has_header(&r, "content-type: text/css"));
    srvp_http_free(&r);
    r = srvp_get(s.p.port, "/sub/");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "sub"));
    srvp_http_free(&r);
    r = srvp_get(s.p.port, "/missing.html");
    ck_assert_int_eq(r.status, 404);
    srvp_http_free(&r);
    static const char *const evil[] = {
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "//etc/passwd",
        "/sub/../../etc/passwd",
        "/.secret",
        "/outside",
        "/..%2f..%2fetc/passwd",
        "/%252e%252e/etc/passwd",
        "/sub/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    };
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        r = srvp_get(s.p.port, evil[i]);
        ck_assert_msg(r.status == 403 || r.status == 404 || r.status == 400, "%s: status %d",
                      evil[i], r.status);
        ck_assert_msg(!r.body || !strstr(r.body, "root:"), "%s leaked a file", evil[i]);
        srvp_http_free(&r);
    }
    /* still alive */
    json_decref(http_json(s.p.port, "/healthz", 200));
    server_teardown(&s);
}
END_TEST

typedef struct one_conn {
    wsc_conn *c;
} one_conn;

static bool conn_settled(void *arg)
{
    wsc_state st = wsc_state_of(((one_conn *)arg)->c);
    return st != WSC_CONNECTING;
}

static bool conn_ended(void *arg)
{
    wsc_state st = wsc_state_of(((one_conn *)arg)->c);
    return st == WSC_CLOSED || st == WSC_FAILED;
}

START_TEST(test_upgrade_needs_subprotocol)
{
    server s;
    server_setup(&s);
    wsc_ctx *x = wsc_new();
    ck_assert_ptr_nonnull(x);
    one_conn a = {wsc_connect(x, "127.0.0.1", s.p.port, "/ws", NULL)};
    ck_assert(wsc_wait(x, conn_settled, &a, 5000));
    ck_assert_int_eq(wsc_state_of(a.c), WSC_FAILED);
    one_conn b = {wsc_connect(x, "127.0.0.1", s.p.port, "/ws", "chat.v2")};
    ck_assert(wsc_wait(x, conn_settled, &b, 5000));
    ck_assert_int_eq(wsc_state_of(b.c), WSC_FAILED);
    one_conn c = {wsc_connect(x, "127.0.0.1", s.p.port, "/ws", "tandem.v1")};
    ck_assert(wsc_wait(x, conn_settled, &c, 5000));
    ck_assert_int_eq(wsc_state_of(c.c), WSC_OPEN);
    srvp_http r = srvp_request(s.p.port, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                         "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "tandem.v1"));
    srvp_http_free(&r);
    wsc_free(x);
    json_decref(http_json(s.p.port, "/healthz", 200));
    server_teardown(&s);
}
END_TEST

static void converge_n(server *s, size_t n, const char *room, unsigned seed)
{
    wsc_ctx *x = wsc_new();
    np_peer *p = calloc(n + 1, sizeof *p);
    for (size_t i = 0; i < n; i++)
        np_open(&p[i], x, s->p.port, room, 1000 + seed * 100 + i, false, NULL);
    group g = {p, n};
    ck_assert_msg(wsc_wait(x, all_synced, &g, 10000), "peers did not sync");
    edit_and_converge(x, &g, 20, seed);
    char *t0 = doc_text(p[0].doc);
    char *st = np_server_text(s->p.port, room);
    ck_assert_str_eq(t0, st);
    ck_assert_uint_gt(strlen(t0), 0);
    /* a late joiner catches up by state vector */
    np_open(&p[n], x, s->p.port, room, 1000 + seed * 100 + n, false, NULL);
    group late = {&p[n], 1};
    ck_assert(wsc_wait(x, all_synced, &late, 10000));
    char *tl = doc_text(p[n].doc);
    ck_assert_str_eq(tl, t0);
    for (size_t i = 0; i <= n; i++) ck_assert_uint_eq(p[i].errors, 0);
    free(tl);
    free(st);
    free(t0);
    wsc_free(x);
    for (size_t i = 0; i <= n; i++) np_free(&p[i]);
    free(p);
}

START_TEST(test_two_then_ten_converge)
{
    server s;
    server_setup(&s);
    converge_n(&s, 2, "room-two", 1);
    converge_n(&s, 10, "room-ten", 2);
    json_t *v = http_json(s.p.port, "/api/rooms", 200);
    json_t *rooms = json_object_get(v, "rooms");
    ck_assert_uint_eq(json_array_size(rooms), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *o = json_array_get(rooms, i);
        ck_assert_int_gt(json_integer_value(json_object_get(o, "bytes")), 0);
    }
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rooms, 0), "name")),
                     "room-ten");
    json_decref(v);
    v = http_json(s.p.port, "/api/rooms/room-two", 200);
    ck_assert_str_eq(json_string_value(json_object_get(v, "name")), "room-two");
    ck_assert(json_is_true(json_object_get(v, "stored")));
    ck_assert_int_gt(json_integer_value(json_object_get(v, "updates")) +
                         json_integer_value(json_object_get(v, "snapshot_bytes")),
                     0);
    json_decref(v);
    server_teardown(&s);
}
END_TEST

static bool chat_acked(void *arg)
{
    group *g = arg;
    np_pump(&g->p[0]);
    return g->p[0].chat_acks >= 3;
}

START_TEST(test_chat_history_endpoint)
{
    server s;
    server_setup(&s);
    wsc_ctx *x = wsc_new();
    np_peer p;
    np_open(&p, x, s.p.port, "chatroom", 77, false, NULL);
    group g = {&p, 1};
    ck_assert(wsc_wait(x, all_synced, &g, 10000));
    ck_assert_int_eq(sync_client_chat_send(p.cl, p.ch, "hello", 5, NULL), TDM_OK);
    ck_assert_int_eq(sync_client_chat_send(p.cl, p.ch, "wörld", 6, NULL), TDM_OK);
    ck_assert_int_eq(sync_client_chat_send(p.cl, p.ch, "three", 5, NULL), TDM_OK);
    ck_assert(wsc_wait(x, chat_acked, &g, 10000));
    json_t *v = http_json(s.p.port, "/api/rooms/chatroom/messages", 200);
    json_t *msgs = json_object_get(v, "messages");
    ck_assert_uint_eq(json_array_size(msgs), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "text")), "wörld");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "user")), "anon");
    ck_assert(json_is_false(json_object_get(v, "more")));
    json_int_t first = json_integer_value(json_object_get(json_array_get(msgs, 0), "id"));
    json_decref(v);
    char path[256];
    snprintf(path, sizeof path, "/api/rooms/chatroom/messages?after=%lld&limit=1",
             (long long)first);
    v = http_json(s.p.port, path, 200);
    msgs = json_object_get(v, "messages");
    ck_assert_uint_eq(json_array_size(msgs), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "text")), "wörld");
    ck_assert(json_is_true(json_object_get(v, "more")));
    json_decref(v);
    static const char *const bad[] = {"?limit=abc", "?limit=0",  "?limit=5000",
                                      "?after=-1",  "?after=1x", "?limit="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "/api/rooms/chatroom/messages%s", bad[i]);
        v = http_json(s.p.port, path, 400);
        ck_assert_str_eq(json_string_value(json_object_get(v, "error")), "bad_request");
        json_decref(v);
    }
    v = http_json(s.p.port, "/api/rooms/chatroom", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "chat_count")), 3);
    json_decref(v);
    wsc_free(x);
    np_free(&p);
    server_teardown(&s);
}
END_TEST

static bool all_closed(void *arg)
{
    group *g = arg;
    for (size_t i = 0; i < g->n; i++) {
        wsc_state st = wsc_state_of(g->p[i].ws);
        if (st != WSC_CLOSED && st != WSC_FAILED) return false;
    }
    return true;
}

START_TEST(test_restart_keeps_acked)
{
    server s;
    server_setup(&s);
    wsc_ctx *x = wsc_new();
    enum { N = 3 };
    np_peer p[N];
    for (size_t i = 0; i < N; i++) np_open(&p[i], x, s.p.port, "durable", 500 + i, false, NULL);
    group g = {p, N};
    ck_assert(wsc_wait(x, all_synced, &g, 10000));
    edit_and_converge(x, &g, 15, 7);
    /* what every peer holds now is acked (stored) */
    crdt_sv *acked = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_state_vector(p[0].doc, acked), TDM_OK);
    /* more edits in flight while the server goes down */
    unsigned rng = 99;
    for (size_t i = 0; i < N; i++) random_edit(&p[i], &rng);
    for (size_t i = 0; i < N; i++) np_pump(&p[i]);
    wsc_service(x, 1);
    ck_assert_int_eq(server_stop(&s), 0);
    ck_assert(wsc_wait(x, all_closed, &g, 10000));
    for (size_t i = 0; i < N; i++) {
        ck_assert_uint_eq(wsc_close_code(p[i].ws), 1001);
        np_pump(&p[i]); /* disconnect */
    }
    server_start(&s);
    /* a fresh reader, before anyone reconnects, holds everything acked */
    np_peer r;
    np_open(&r, x, s.p.port, "durable", 900, false, NULL);
    group rg = {&r, 1};
    ck_assert(wsc_wait(x, all_synced, &rg, 10000));
    crdt_sv *got = crdt_sv_new();
    ck_assert_int_eq(crdt_doc_state_vector(r.doc, got), TDM_OK);
    for (size_t i = 0; i < crdt_sv_count(acked); i++) {
        uint64_t client;
        uint32_t clock;
        crdt_sv_entry(acked, i, &client, &clock);
        ck_assert_uint_ge(crdt_sv_get(got, client), clock);
    }
    crdt_sv_free(got);
    crdt_sv_free(acked);
    /* the peers reconnect, resend what was not acked and converge */
    for (size_t i = 0; i < N; i++) {
        p[i].port = s.p.port; /* the restart may have moved it */
        np_connect(&p[i]);
    }
    np_peer all[N + 1];
    memcpy(all, p, sizeof p);
    all[N] = r;
    group ag = {all, N + 1};
    ck_assert_msg(wsc_wait(x, all_converged, &ag, 20000), "no convergence after restart");
    char *final = doc_text(all[0].doc);
    char *srvt = np_server_text(s.p.port, "durable");
    ck_assert_str_eq(final, srvt);
    free(final);
    free(srvt);
    wsc_free(x);
    for (size_t i = 0; i < N + 1; i++) np_free(&all[i]);
    server_teardown(&s);
}
END_TEST

typedef struct reader {
    wsc_conn *c;
    uint8_t *m;
    size_t n;
} reader;

static bool next_msg(void *arg)
{
    reader *r = arg;
    if (r->m) return true;
    return wsc_recv(r->c, &r->m, &r->n) || wsc_state_of(r->c) == WSC_CLOSED;
}

/* Receive one frame and return its ERROR code (0: not an ERROR). */
static uint64_t expect_frame(wsc_ctx *x, wsc_conn *c, syncm_type *type)
{
    reader r = {c, NULL, 0};
    ck_assert(wsc_wait(x, next_msg, &r, 5000));
    ck_assert_ptr_nonnull(r.m);
    syncm m;
    ck_assert_int_eq(syncm_decode(r.m, r.n, 0, &m), TDM_OK);
    *type = m.type;
    uint64_t code = m.type == SYNCM_ERROR ? m.code : 0;
    syncm_clear(&m);
    free(r.m);
    return code;
}

START_TEST(test_bad_input)
{
    server s;
    server_setup(&s);
    wsc_ctx *x = wsc_new();
    /* random bytes before HELLO: an ERROR, and the connection stays */
    one_conn a = {wsc_connect(x, "127.0.0.1", s.p.port, "/ws", "tandem.v1")};
    ck_assert(wsc_wait(x, conn_settled, &a, 5000));
    ck_assert_int_eq(wsc_state_of(a.c), WSC_OPEN);
    unsigned rng = 5;
    for (int i = 0; i < 20; i++) {
        uint8_t junk[200];
        size_t n = 1 + (size_t)rand_r(&rng) % sizeof junk;
        for (size_t k = 0; k < n; k++) junk[k] = (uint8_t)rand_r(&rng);
        ck_assert(wsc_send(a.c, junk, n));
        syncm_type t;
        uint64_t code = expect_frame(x, a.c, &t);
        ck_assert_int_eq(t, SYNCM_ERROR);
        ck_assert(code == SYNC_ERR_MALFORMED || code == SYNC_ERR_BAD_STATE);
    }
    /* a valid HELLO, then truncated CBOR of it */
    tbuf b;
    tbuf_init(&b, 0);
    syncm h = {0};
    h.type = SYNCM_HELLO;
    h.proto = 1;
    h.caps = SYNC_CAP_ALL;
    h.client_id = 42;
    ck_assert_int_eq(syncm_encode(&h, &b), TDM_OK);
    ck_assert(wsc_send(a.c, b.data, b.len - 2));
    syncm_type t;
    ck_assert_int_eq(expect_frame(x, a.c, &t), SYNC_ERR_MALFORMED);
    ck_assert(wsc_send(a.c, b.data, b.len));
    expect_frame(x, a.c, &t);
    ck_assert_int_eq(t, SYNCM_WELCOME);
    ck_assert(wsc_send(a.c, b.data, 3));
    ck_assert_int_eq(expect_frame(x, a.c, &t), SYNC_ERR_MALFORMED);
    tbuf_fini(&b);
    ck_assert_int_eq(wsc_state_of(a.c), WSC_OPEN);

    /* an oversized message: close 1009 */
    one_conn big = {wsc_connect(x, "127.0.0.1", s.p.port, "/ws", "tandem.v1")};
    ck_assert(wsc_wait(x, conn_settled, &big, 5000));
    size_t n = ((size_t)1 << 20) + 4096;
    uint8_t *huge = calloc(1, n);
    ck_assert(wsc_send(big.c, huge, n));
    free(huge);
    ck_assert(wsc_wait(x, conn_ended, &big, 10000));
    ck_assert_uint_eq(wsc_close_code(big.c), 1009);

    /* the server is fine and a real client still works */
    json_decref(http_json(s.p.port, "/healthz", 200));
    np_peer p[2];
    np_open(&p[0], x, s.p.port, "after-bad", 1, false, NULL);
    np_open(&p[1], x, s.p.port, "after-bad", 2, false, NULL);
    group g = {p, 2};
    ck_assert(wsc_wait(x, all_synced, &g, 10000));
    edit_and_converge(x, &g, 5, 3);
    wsc_free(x);
    np_free(&p[0]);
    np_free(&p[1]);
    server_teardown(&s);
}
END_TEST

static char *mint(const char *user, const char *rooms)
{
    srv_auth_config ac = {0};
    ac.alg = SRV_AUTH_HS256;
    ac.secret = (const uint8_t *)TEST_SECRET;
    ac.secret_len = strlen(TEST_SECRET);
    srv_auth *a;
    ck_assert_int_eq(srv_auth_new(&ac, &a), TDM_OK);
    char *tok = malloc(SRV_AUTH_TOKEN_MAX + 1);
    const char *r[] = {rooms};
    ck_assert_int_eq(
        srv_auth_mint(a, user, user, r, 1, 600, np_now_ms(), tok, SRV_AUTH_TOKEN_MAX + 1, NULL),
        TDM_OK);
    srv_auth_free(a);
    return tok;
}

START_TEST(test_tokens_required)
{
    server s;
    server_setup_mode(&s, true);
    json_t *v = http_json(s.p.port, "/healthz", 200);
    ck_assert(json_is_false(json_object_get(v, "dev")));
    json_decref(v);
    json_decref(http_json(s.p.port, "/api/rooms", 401));
    char *tok = mint("alice", "team/*:rw");
    char *bad = mint("eve", "other:rw");
    char req[4096];
    snprintf(req, sizeof req,
             "GET /api/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Connection: close\r\n\r\n",
             tok);
    srvp_http r = srvp_request(s.p.port, req);
    ck_assert_int_eq(r.status, 200);
    srvp_http_free(&r);
    /* no token: the subscription is refused */
    wsc_ctx *x = wsc_new();
    np_peer anon;
    np_open(&anon, x, s.p.port, "team/a", 5, false, NULL);
    ck_assert(wsc_wait(x, subscribe_refused, &anon, 5000));
    ck_assert(!sync_client_synced(anon.cl, anon.ch));
    /* a token for team/ *: sync and edits work */
    np_peer p;
    memset(&p, 0, sizeof p);
    ck_assert_int_eq(crdt_doc_new(6, &p.doc), TDM_OK);
    sync_client_opts o = {0};
    o.client_id = 6;
    o.token = (const uint8_t *)tok;
    o.token_len = strlen(tok);
    sync_client_events ev = {0};
    ev.ctx = &p;
    ev.on_ack = on_ack;
    ev.on_error = on_error;
    ck_assert_int_eq(sync_client_new(&o, &ev, &p.cl), TDM_OK);
    ck_assert_int_eq(sync_client_subscribe_crdt(p.cl, "team/a", p.doc, false, &p.ch), TDM_OK);
    p.x = x;
    p.port = s.p.port;
    np_connect(&p);
    group g = {&p, 1};
    ck_assert(wsc_wait(x, all_synced, &g, 10000));
    edit_and_converge(x, &g, 3, 1);
    ck_assert_uint_eq(p.errors, 0);
    char path[256];
    snprintf(path, sizeof path, "/api/rooms/team%%2Fa/text?token=%s", tok);
    json_decref(http_json(s.p.port, path, 200));
    snprintf(path, sizeof path, "/api/rooms/team%%2Fa/text?token=%s", bad);
    json_decref(http_json(s.p.port, path, 403));
    json_decref(http_json(s.p.port, "/api/rooms/team%2Fa/text?token=abc.def.ghi", 401));
    wsc_free(x);
    np_free(&anon);
    np_free(&p);
    free(tok);
    free(bad);
    server_teardown(&s);
}
END_TEST

static Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("serve");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_http_endpoints);
    tcase_add_test(tc, test_upgrade_needs_subprotocol);
    tcase_add_test(tc, test_two_then_ten_converge);
    tcase_add_test(tc, test_chat_history_endpoint);
    tcase_add_test(tc, test_restart_keeps_acked);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_tokens_required);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(server_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
