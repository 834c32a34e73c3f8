/* test_server_events.c - the per-room Server-Sent Events stream
 * GET /api/rooms/{id}/events of the real `tandem serve` binary (TANDEM_BIN),
 * started with an HS256 secret so tokens decide access. Editors are real
 * sync_clients over WebSocket (support/sync_peer on support/ws_client);
 * watchers are raw TCP sockets reading the event stream (support/sse_reader). Checked: chat
 * (content, ids), presence join / update / leave on disconnect, typing start / stop / expiry, the
 * snapshot of who is present and typing that a new watcher gets first,
 * Last-Event-ID and ?after= replay of exactly the missed chat then live,
 * 401 / 403 / 400 / 404 answers, many watchers, watchers that vanish are
 * cleaned up, and a watched room is still freed when its editors leave.
 * Everything waits by polling with deadlines. */
#define _XOPEN_SOURCE 700

#include "server_proc.h"
#include "sse_reader.h"
#include "sync_peer.h"
#include "auth.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

#define SECRET "events-test-secret-0123456789abcdef0123456789"

static void nap_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the server: HS256 secret, short room idle time --------------------------------- */

static srvp S;

static void setup(void)
{
    static const char *const env[] = {"TANDEM_ROOM_IDLE_MS=500", NULL};
    srvp_opts o = {.secret = SECRET, .env = env};
    ck_assert_msg(srvp_start_opts(&S, TANDEM_BIN, &o), "could not start the server");
}

static void teardown(void)
{
    ck_assert_int_eq(srvp_stop(&S), 0);
}

static char *mint_ttl(const char *user, const char *display, const char *rooms, uint64_t ttl_s)
{
    srv_auth_config ac = {0};
    ac.alg = SRV_AUTH_HS256;
    ac.secret = (const uint8_t *)SECRET;
    ac.secret_len = strlen(SECRET);
    srv_auth *a;
    ck_assert_int_eq(srv_auth_new(&ac, &a), TDM_OK);
    char *tok = malloc(SRV_AUTH_TOKEN_MAX + 1);
    ck_assert_ptr_nonnull(tok);
    const char *r[] = {rooms};
    ck_assert_int_eq(srv_auth_mint(a, user, display, r, 1, ttl_s, np_now_ms(), tok,
                                   SRV_AUTH_TOKEN_MAX + 1, NULL),
                     TDM_OK);
    srv_auth_free(a);
    return tok;
}

static char *mint(const char *user, const char *display, const char *rooms)
{
    return mint_ttl(user, display, rooms, 600);
}

/* ---- watchers: support/sse_reader ------------------------------------------------- */

typedef sse_client watcher;
typedef sse_event event;

/* Watch `room` (URL-encoded) with token `tok` (may be NULL); `extra` headers. */
static void w_watch(watcher *w, const char *room, const char *tok, const char *query,
                    const char *extra)
{
    char path[1536];
    snprintf(path, sizeof path, "/api/rooms/%s/events?%s%s%s", room, tok ? "token=" : "",
             tok ? tok : "", query ? query : "");
    sse_open(w, S.port, path, extra);
}

/* ---- editors: np_peers (support/sync_peer) with tokens ----------------------------- */

static wsc_ctx *X;

/* A CRDT editor of `room` as `user` (token rw on every room), synced. */
static void peer_open(np_peer *p, const char *room, const char *user, const char *display,
                      uint64_t client_id)
{
    char *tok = mint(user, display, "*:rw");
    np_open(p, X, S.port, room, client_id, false, tok);
    free(tok);
    np_peer *one[] = {p};
    np_group g = {one, 1};
    ck_assert_msg(wsc_wait(X, np_all_synced, &g, 10000), "the editor did not sync");
}

typedef struct ack_wait {
    np_peer *p;
    uint64_t want;
} ack_wait;

static bool chat_acked(void *arg)
{
    ack_wait *w = arg;
    np_pump(w->p);
    return w->p->chat_acks >= w->want;
}

/* Send one chat message and wait for its ack. */
static void say(np_peer *p, const char *text)
{
    ack_wait w = {p, p->chat_acks + 1};
    ck_assert_int_eq(sync_client_chat_send(p->cl, p->ch, text, strlen(text), NULL), TDM_OK);
    ck_assert_msg(wsc_wait(X, chat_acked, &w, 10000), "chat '%s' not acked", text);
}

typedef struct peers {
    np_peer *p;
    size_t n;
} peers;

/* sse_next's pump: service the editors while a watcher waits. */
static void pump_peers(void *arg)
{
    peers *ps = arg;
    for (size_t i = 0; i < ps->n; i++) np_pump(&ps->p[i]);
    wsc_service(X, 5);
}

/* The next event of w within timeout_ms, servicing the editors meanwhile. */
static void next_event(watcher *w, event *ev, np_peer *ps, size_t np, int timeout_ms)
{
    peers x = {ps, np};
    sse_next(w, ev, timeout_ms, pump_peers, &x);
}

/* The next event must be `name`; returns its data parsed (caller frees). */
static json_t *expect(watcher *w, event *ev, const char *name, np_peer *ps, size_t np)
{
    next_event(w, ev, ps, np, 10000);
    ck_assert_msg(strcmp(ev->event, name) == 0, "got %s (%s), want %s", ev->event, ev->data, name);
    json_t *v = json_loads(ev->data, 0, NULL);
    ck_assert_msg(v != NULL, "not JSON: %s", ev->data);
    return v;
}

static const char *js(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    ck_assert_msg(v != NULL, "no string %s", k);
    return v;
}

static long long ji(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    ck_assert_msg(json_is_integer(v), "no integer %s", k);
    return json_integer_value(v);
}

/* A watcher that got `connected`; returns its data's "after". */
static long long w_connected(watcher *w, np_peer *ps, size_t np)
{
    event ev;
    json_t *v = expect(w, &ev, "connected", ps, np);
    ck_assert_int_eq(w->status, 200);
    ck_assert_ptr_nonnull(srvp_ci_strstr(w->headers, "content-type: text/event-stream"));
    long long after = ji(v, "after");
    json_decref(v);
    return after;
}

static void fixture_x(void)
{
    setup();
    X = wsc_new();
    ck_assert_ptr_nonnull(X);
}

static void teardown_x(void)
{
    wsc_free(X);
    X = NULL;
    teardown();
}

/* ---- tests --------------------------------------------------------------------------- */

START_TEST(test_chat_presence_typing)
{
    np_peer a;
    peer_open(&a, "doc", "alice", "Alice", 11);
    char *rtok = mint("watcher", "Watcher", "doc:r"); /* read access suffices */
    watcher w;
    w_watch(&w, "doc", rtok, NULL, NULL);
    ck_assert_int_eq(w_connected(&w, &a, 1), 0);

    /* presence: join with a JSON state */
    np_presence(&a, "{\"cursor\":3}");
    event ev;
    json_t *v = expect(&w, &ev, "presence", &a, 1);
    ck_assert_str_eq(js(v, "client"), "11"); /* the awareness client id */
    ck_assert_str_eq(js(v, "user"), "alice");
    ck_assert_str_eq(js(v, "name"), "Alice");
    ck_assert(json_is_false(json_object_get(v, "left")));
    ck_assert_int_eq(ji(json_object_get(v, "state"), "cursor"), 3);
    ck_assert_str_eq(ev.id, "0.2"); /* synthetic: last chat 0, second event */
    json_decref(v);

    /* chat: id, content, sender ids */
    say(&a, "hello \"watchers\"\nline two");
    v = expect(&w, &ev, "chat", &a, 1);
    ck_assert_str_eq(ev.id, "1");
    ck_assert_int_eq(ji(v, "id"), 1);
    ck_assert_str_eq(js(v, "text"), "hello \"watchers\"\nline two");
    ck_assert_str_eq(js(v, "user"), "alice");
    ck_assert_str_eq(js(v, "name"), "Alice");
    ck_assert_str_eq(js(v, "client_id"), "11");
    ck_assert_str_eq(js(v, "msg_id"), "1");
    ck_assert_int_gt(ji(v, "ts"), 1600000000000LL);
    json_decref(v);

    /* typing: start (renewals are not events), stop by the client */
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    v = expect(&w, &ev, "typing", &a, 1);
    ck_assert(json_is_true(json_object_get(v, "typing")));
    ck_assert_str_eq(js(v, "user"), "alice");
    ck_assert_str_eq(ev.id, "1.3"); /* after chat 1 */
    json_decref(v);
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, false), TDM_OK);
    v = expect(&w, &ev, "typing", &a, 1);
    ck_assert(json_is_false(json_object_get(v, "typing")));
    ck_assert_str_eq(js(v, "reason"), "client");
    json_decref(v);

    /* an update of the state, then typing again and a dropped connection:
     * the entry leaves and the indicator stops with reason "left" */
    np_presence(&a, "plain text state");
    v = expect(&w, &ev, "presence", &a, 1);
    ck_assert_str_eq(js(v, "state"), "plain text state");
    json_decref(v);
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    json_decref(expect(&w, &ev, "typing", &a, 1));
    np_drop(&a);
    bool left = false, stopped = false;
    while (!left || !stopped) {
        next_event(&w, &ev, NULL, 0, 10000);
        v = json_loads(ev.data, 0, NULL);
        ck_assert_ptr_nonnull(v);
        if (strcmp(ev.event, "presence") == 0) {
            ck_assert(json_is_true(json_object_get(v, "left")));
            ck_assert_str_eq(js(v, "client"), "11"); /* the awareness client id */
            ck_assert_str_eq(js(v, "user"), "alice");
            ck_assert_str_eq(js(v, "reason"), "left");
            left = true;
        } else {
            ck_assert_str_eq(ev.event, "typing");
            ck_assert(json_is_false(json_object_get(v, "typing")));
            ck_assert_str_eq(js(v, "reason"), "left");
            stopped = true;
        }
        json_decref(v);
    }
    sse_close(&w);
    free(rtok);
    np_free(&a);
}
END_TEST

START_TEST(test_typing_expires)
{
    np_peer a;
    peer_open(&a, "doc", "alice", "Alice", 12);
    char *tok = mint("watcher", "Watcher", "*:r");
    watcher w;
    w_watch(&w, "doc", tok, NULL, NULL);
    w_connected(&w, &a, 1);
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    event ev;
    json_t *v = expect(&w, &ev, "typing", &a, 1);
    ck_assert(json_is_true(json_object_get(v, "typing")));
    json_decref(v);
    /* no renewal: SYNC_TYPING_MS (3 s) later the server stops it */
    v = expect(&w, &ev, "typing", &a, 1);
    ck_assert(json_is_false(json_object_get(v, "typing")));
    ck_assert_str_eq(js(v, "reason"), "expired");
    json_decref(v);
    sse_close(&w);
    free(tok);
    np_free(&a);
}
END_TEST

/* Read chat events until `want` ids were seen; ids must be consecutive from `first`. */
static void expect_chats(watcher *w, np_peer *ps, size_t np, long long first, long long last,
                         const char *prefix)
{
    event ev;
    for (long long id = first; id <= last; id++) {
        json_t *v = expect(w, &ev, "chat", ps, np);
        ck_assert_int_eq(ji(v, "id"), id);
        char want[64];
        snprintf(want, sizeof want, "%s%lld", prefix, id);
        ck_assert_str_eq(js(v, "text"), want);
        char ids[24];
        snprintf(ids, sizeof ids, "%lld", id);
        ck_assert_str_eq(ev.id, ids);
        json_decref(v);
    }
}

/* The snapshot of a room where only alice (client 13) is present with `state`. */
static void snapshot_alice(watcher *w, np_peer *a, const char *state)
{
    event ev;
    json_t *v = expect(w, &ev, "presence", a, 1);
    ck_assert_str_eq(js(v, "client"), "13");
    ck_assert_str_eq(js(v, "user"), "alice");
    json_t *want = json_loads(state, 0, NULL);
    ck_assert_ptr_nonnull(want);
    ck_assert(json_equal(json_object_get(v, "state"), want));
    json_decref(want);
    json_decref(v);
}

static void say_n(np_peer *p, long long from, long long to)
{
    for (long long i = from; i <= to; i++) {
        char t[64];
        snprintf(t, sizeof t, "m%lld", i);
        say(p, t);
    }
}

START_TEST(test_reconnect_replays_missed_chat)
{
    np_peer a;
    peer_open(&a, "team/notes", "alice", "Alice", 13);
    char *tok = mint("watcher", "Watcher", "team/*:r");
    watcher w;
    w_watch(&w, "team%2Fnotes", tok, NULL, NULL);
    w_connected(&w, &a, 1);
    say_n(&a, 1, 3);
    expect_chats(&w, &a, 1, 1, 3, "m");
    /* a non-chat event after chat 3 carries "3.S": a reconnect with it
     * resumes after chat 3 as well */
    np_presence(&a, "{}");
    event ev;
    json_decref(expect(&w, &ev, "presence", &a, 1));
    ck_assert_int_eq(strncmp(ev.id, "3.", 2), 0);
    char last_id[64];
    snprintf(last_id, sizeof last_id, "%s", ev.id);
    sse_close(&w);

    say_n(&a, 4, 7); /* missed while away */
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %s\r\n", last_id);
    w_watch(&w, "team%2Fnotes", tok, NULL, hdr);
    ck_assert_int_eq(w_connected(&w, &a, 1), 3);
    snapshot_alice(&w, &a, "{}");       /* who is present comes first */
    expect_chats(&w, &a, 1, 4, 7, "m"); /* exactly the missed ones, from storage */
    say_n(&a, 8, 8);                    /* then live */
    expect_chats(&w, &a, 1, 8, 8, "m");
    /* nothing repeated: the next event is a fresh one */
    np_presence(&a, "{\"x\":1}");
    json_decref(expect(&w, &ev, "presence", &a, 1));
    ck_assert_str_eq(ev.id, "8.3"); /* connected 1, the snapshot 2 */
    sse_close(&w);

    /* ?after= (no header) and a full replay from 0 */
    w_watch(&w, "team%2Fnotes", tok, "&after=6", NULL);
    ck_assert_int_eq(w_connected(&w, &a, 1), 6);
    snapshot_alice(&w, &a, "{\"x\":1}");
    expect_chats(&w, &a, 1, 7, 8, "m");
    sse_close(&w);
    w_watch(&w, "team%2Fnotes", tok, "&after=0", NULL);
    w_connected(&w, &a, 1);
    snapshot_alice(&w, &a, "{\"x\":1}");
    expect_chats(&w, &a, 1, 1, 8, "m");
    sse_close(&w);
    /* an id past the last stored one (a replaced store) starts after the
     * last stored chat, so new chat is not taken for already sent */
    w_watch(&w, "team%2Fnotes", tok, NULL, "Last-Event-ID: 500.3\r\n");
    ck_assert_int_eq(w_connected(&w, &a, 1), 8);
    sse_close(&w);
    /* without either: live from now (no replay) */
    w_watch(&w, "team%2Fnotes", tok, NULL, NULL);
    ck_assert_int_eq(w_connected(&w, &a, 1), 8);
    snapshot_alice(&w, &a, "{\"x\":1}");
    say_n(&a, 9, 9);
    expect_chats(&w, &a, 1, 9, 9, "m");
    sse_close(&w);
    free(tok);
    np_free(&a);
}
END_TEST

START_TEST(test_replay_larger_than_queue)
{
    /* 40 messages of ~4 KiB: more than one 64 KiB queue; the replay is read
     * from storage page by page as the socket drains */
    np_peer a[4];
    char user[16];
    for (int i = 0; i < 4; i++) {
        snprintf(user, sizeof user, "u%d", i);
        peer_open(&a[i], "big", user, user, 20 + (uint64_t)i);
    }
    static char text[4200];
    for (int n = 1; n <= 40; n++) {
        int k = snprintf(text, sizeof text, "m%d ", n);
        memset(text + k, 'a' + n % 26, 4000);
        text[k + 4000] = '\0';
        say(&a[n % 4], text); /* 10 per user: the chat burst */
    }
    char *tok = mint("watcher", "Watcher", "big:r");
    watcher w;
    w_watch(&w, "big", tok, "&after=0", NULL);
    w_connected(&w, a, 4);
    event ev;
    for (long long id = 1; id <= 40; id++) {
        json_t *v = expect(&w, &ev, "chat", a, 4);
        ck_assert_int_eq(ji(v, "id"), id);
        char want[16];
        snprintf(want, sizeof want, "m%lld ", id);
        ck_assert_int_eq(strncmp(js(v, "text"), want, strlen(want)), 0);
        ck_assert_uint_eq(strlen(js(v, "text")), strlen(want) + 4000);
        json_decref(v);
    }
    sse_close(&w);
    free(tok);
    for (int i = 0; i < 4; i++) np_free(&a[i]);
}
END_TEST

/* A new watcher first learns who is present and typing: one `presence` per
 * awareness entry (not the ones that left) and one `typing` per typist,
 * right after `connected`; then live events continue the numbering. */
START_TEST(test_presence_snapshot)
{
    np_peer p[3];
    peer_open(&p[0], "snap", "alice", "Alice", 31);
    peer_open(&p[1], "snap", "bob", "Bob", 32);
    peer_open(&p[2], "snap", "carol", "Carol", 33);
    char *tok = mint("watcher", "Watcher", "snap:r");
    /* a first watcher sees the changes: once it has, the server has them */
    watcher w1;
    w_watch(&w1, "snap", tok, NULL, NULL);
    w_connected(&w1, p, 3);
    np_presence(&p[0], "{\"cursor\":1}");
    np_presence(&p[1], "plain bob");
    np_presence(&p[2], "{\"c\":3}");
    ck_assert_int_eq(sync_client_typing(p[1].cl, p[1].ch, true), TDM_OK);
    event ev;
    int presences = 0, typing = 0;
    while (presences < 3 || typing < 1) {
        next_event(&w1, &ev, p, 3, 10000);
        if (strcmp(ev.event, "presence") == 0) presences++;
        if (strcmp(ev.event, "typing") == 0) typing++;
    }
    np_drop(&p[2]); /* carol leaves: not in the snapshot */
    bool carol_left = false;
    while (!carol_left) {
        next_event(&w1, &ev, p, 2, 10000);
        carol_left = strcmp(ev.event, "presence") == 0 && strstr(ev.data, "\"left\":true");
    }
    sse_close(&w1);

    ck_assert_int_eq(sync_client_typing(p[1].cl, p[1].ch, true), TDM_OK); /* renewal: no event */
    np_pump(&p[1]);
    watcher w;
    w_watch(&w, "snap", tok, NULL, NULL);
    ck_assert_int_eq(w_connected(&w, p, 2), 0);
    bool seen_alice = false, seen_bob = false;
    for (int i = 0; i < 2; i++) {
        json_t *v = expect(&w, &ev, "presence", p, 2);
        char want_id[8];
        snprintf(want_id, sizeof want_id, "0.%d", 2 + i);
        ck_assert_str_eq(ev.id, want_id);
        ck_assert(json_is_false(json_object_get(v, "left")));
        const char *user = js(v, "user");
        if (strcmp(user, "alice") == 0) {
            ck_assert(!seen_alice);
            seen_alice = true;
            ck_assert_str_eq(js(v, "client"), "31");
            ck_assert_str_eq(js(v, "name"), "Alice");
            ck_assert_int_eq(ji(json_object_get(v, "state"), "cursor"), 1);
        } else {
            ck_assert_str_eq(user, "bob");
            ck_assert(!seen_bob);
            seen_bob = true;
            ck_assert_str_eq(js(v, "client"), "32");
            ck_assert_str_eq(js(v, "name"), "Bob");
            ck_assert_str_eq(js(v, "state"), "plain bob");
        }
        json_decref(v);
    }
    ck_assert(seen_alice && seen_bob);
    json_t *v = expect(&w, &ev, "typing", p, 2);
    ck_assert_str_eq(ev.id, "0.4");
    ck_assert_str_eq(js(v, "user"), "bob");
    ck_assert_str_eq(js(v, "name"), "Bob");
    ck_assert(json_is_true(json_object_get(v, "typing")));
    json_decref(v);
    /* then live, numbered on */
    np_presence(&p[0], "{\"cursor\":2}");
    v = expect(&w, &ev, "presence", p, 2);
    ck_assert_str_eq(ev.id, "0.5");
    ck_assert_str_eq(js(v, "user"), "alice");
    ck_assert_int_eq(ji(json_object_get(v, "state"), "cursor"), 2);
    json_decref(v);
    sse_close(&w);
    free(tok);
    for (int i = 0; i < 3; i++) np_free(&p[i]);
}
END_TEST

static int status_of(const char *path)
{
    srvp_http r = srvp_get(S.port, path);
    int st = r.status;
    if (st != 200)
        ck_assert_msg(r.body && strstr(r.body, "\"error\""), "GET %s: %d without an error body",
                      path, st);
    srvp_http_free(&r);
    return st;
}

START_TEST(test_access_and_names)
{
    np_peer a;
    peer_open(&a, "secret", "alice", "Alice", 14);
    char *other = mint("eve", "Eve", "public:rw");
    char *ro = mint("bob", "Bob", "secret:r");
    char path[2048];
    ck_assert_int_eq(status_of("/api/rooms/secret/events"), 401); /* no token */
    ck_assert_int_eq(status_of("/api/rooms/secret/events?token=abc.def.ghi"), 401);
    snprintf(path, sizeof path, "/api/rooms/secret/events?token=%s", other);
    ck_assert_int_eq(status_of(path), 403);
    /* bad names: invalid UTF-8, too long */
    snprintf(path, sizeof path, "/api/rooms/%%FF%%FE/events?token=%s", ro);
    ck_assert_int_eq(status_of(path), 400);
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = '\0';
    snprintf(path, sizeof path, "/api/rooms/%s/events?token=%s", longname, ro);
    ck_assert_int_eq(status_of(path), 400);
    /* an unknown room */
    char *all = mint("bob", "Bob", "*:r");
    snprintf(path, sizeof path, "/api/rooms/nobody-here/events?token=%s", all);
    ck_assert_int_eq(status_of(path), 404);
    /* the same token in an Authorization header works */
    watcher w;
    char hdr[1024];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", ro);
    sse_open(&w, S.port, "/api/rooms/secret/events", hdr);
    w_connected(&w, &a, 1);
    say(&a, "for readers");
    event ev;
    json_t *v = expect(&w, &ev, "chat", &a, 1);
    ck_assert_str_eq(js(v, "text"), "for readers");
    json_decref(v);
    sse_close(&w);
    /* query arguments after a long ?token= are still read (lws stops at the
     * first argument longer than the caller's buffer): /messages?after= too */
    say(&a, "second");
    snprintf(path, sizeof path, "/api/rooms/secret/messages?token=%s&after=1", ro);
    srvp_http r = srvp_get(S.port, path);
    ck_assert_int_eq(r.status, 200);
    json_t *m = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(m);
    json_t *msgs = json_object_get(m, "messages");
    ck_assert_uint_eq(json_array_size(msgs), 1);
    ck_assert_str_eq(js(json_array_get(msgs, 0), "text"), "second");
    json_decref(m);
    srvp_http_free(&r);
    free(other);
    free(ro);
    free(all);
    np_free(&a);
}
END_TEST

START_TEST(test_stream_ends_with_token)
{
    np_peer a;
    peer_open(&a, "doc", "alice", "Alice", 18);
    char *tok = mint_ttl("w", "W", "doc:r", 2); /* expires in 2 s */
    watcher w;
    w_watch(&w, "doc", tok, NULL, NULL);
    event ev;
    json_t *v = expect(&w, &ev, "connected", &a, 1);
    ck_assert_int_le(ji(v, "lifetime_ms"), 2000);
    json_decref(v);
    uint64_t end = srvp_mono_ms() + 8000;
    while (!w.eof && srvp_mono_ms() < end) {
        np_pump(&a);
        sse_fill(&w, 50);
    }
    ck_assert_msg(w.eof, "the stream outlived its token");
    sse_close(&w);
    free(tok);
    np_free(&a);
}
END_TEST

#define MANY 40

START_TEST(test_many_watchers)
{
    np_peer a;
    peer_open(&a, "crowd", "alice", "Alice", 15);
    char *tok = mint("w", "W", "crowd:r");
    static watcher w[MANY];
    for (int i = 0; i < MANY; i++) w_watch(&w[i], "crowd", tok, NULL, NULL);
    for (int i = 0; i < MANY; i++) w_connected(&w[i], &a, 1);
    say(&a, "to everyone");
    event ev;
    for (int i = 0; i < MANY; i++) {
        json_t *v = expect(&w[i], &ev, "chat", &a, 1);
        ck_assert_str_eq(js(v, "text"), "to everyone");
        ck_assert_str_eq(ev.id, "1");
        json_decref(v);
    }
    for (int i = 0; i < MANY; i++) sse_close(&w[i]);
    free(tok);
    np_free(&a);
}
END_TEST

/* GET /healthz's "sse_streams". */
static long long sse_streams(void)
{
    srvp_http r = srvp_get(S.port, "/healthz");
    ck_assert_int_eq(r.status, 200);
    json_t *v = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(v);
    long long n = ji(v, "sse_streams");
    json_decref(v);
    srvp_http_free(&r);
    return n;
}

static bool room_loaded(const char *room, const char *tok)
{
    char path[1536];
    snprintf(path, sizeof path, "/api/rooms/%s?token=%s", room, tok);
    srvp_http r = srvp_get(S.port, path);
    ck_assert_int_eq(r.status, 200);
    json_t *v = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(v);
    bool loaded = json_is_true(json_object_get(v, "loaded"));
    json_decref(v);
    srvp_http_free(&r);
    return loaded;
}

START_TEST(test_watchers_vanish_room_freed)
{
    np_peer a;
    peer_open(&a, "busy", "alice", "Alice", 16);
    say(&a, "stored"); /* the room exists in storage */
    char *tok = mint("w", "W", "*:r");
    static watcher w[200];
    for (int i = 0; i < 200; i++) w_watch(&w[i], "busy", tok, NULL, NULL);
    for (int i = 0; i < 200; i++) w_connected(&w[i], &a, 1);
    ck_assert_int_eq(sse_streams(), 200);
    for (int i = 0; i < 200; i++) {
        if (i % 4 == 0) { /* some reset */
            struct linger lg = {1, 0};
            setsockopt(w[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        sse_close(&w[i]);
    }
    uint64_t end = srvp_mono_ms() + 10000;
    while (sse_streams() != 0 && srvp_mono_ms() < end) nap_ms(20);
    ck_assert_int_eq(sse_streams(), 0);
    /* the room still works for a new watcher */
    watcher v;
    w_watch(&v, "busy", tok, NULL, NULL);
    w_connected(&v, &a, 1);
    say(&a, "after the crowd");
    event ev;
    json_t *d = expect(&v, &ev, "chat", &a, 1);
    ck_assert_str_eq(js(d, "text"), "after the crowd");
    json_decref(d);
    /* the editor leaves: the watched room is still freed (room idle 500 ms) */
    ck_assert(room_loaded("busy", tok));
    np_close(&a);
    end = srvp_mono_ms() + 45000; /* room idle time + a tick (30 s without TANDEM_ROOM_IDLE_MS) */
    while (room_loaded("busy", tok) && srvp_mono_ms() < end) {
        wsc_service(X, 5);
        nap_ms(20);
    }
    ck_assert_msg(!room_loaded("busy", tok), "a watcher kept the room in memory");
    /* an editor comes back: the watcher sees its chat again */
    np_peer b;
    peer_open(&b, "busy", "bob", "Bob", 17);
    say(&b, "back");
    d = expect(&v, &ev, "chat", &b, 1);
    ck_assert_str_eq(js(d, "text"), "back");
    ck_assert_str_eq(ev.id, "3");
    json_decref(d);
    sse_close(&v);
    free(tok);
    np_free(&a);
    np_free(&b);
}
END_TEST

static Suite *events_suite(void)
{
    Suite *s = suite_create("server_events");
    TCase *tc = tcase_create("events");
    tcase_add_checked_fixture(tc, fixture_x, teardown_x);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_chat_presence_typing);
    tcase_add_test(tc, test_typing_expires);
    tcase_add_test(tc, test_presence_snapshot);
    tcase_add_test(tc, test_reconnect_replays_missed_chat);
    tcase_add_test(tc, test_replay_larger_than_queue);
    tcase_add_test(tc, test_access_and_names);
    tcase_add_test(tc, test_stream_ends_with_token);
    tcase_add_test(tc, test_many_watchers);
    tcase_add_test(tc, test_watchers_vanish_room_freed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(events_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
