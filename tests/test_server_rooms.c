/* test_server_rooms.c - rooms over the real network: the real `tandem serve
 * --dev` (support/server_proc) and sync_clients over real WebSockets
 * (support/sync_peer, support/ws_client). CRDT and OT clients editing one
 * room converge with each other and with GET /api/rooms/{id}/text; late
 * joiners and reconnecting peers catch up by state vector; presence join,
 * leave and timeout; typing start, stop and expiry; chat replay after a
 * reconnect and deduplicated resends. Everything waits by polling with
 * deadlines; nothing sleeps a fixed time. */
#include "awareness.h"
#include "client.h"
#include "msg.h"
#include "server_proc.h"
#include "session.h"
#include "utf8.h"
#include "sync_peer.h"
#include "ws_client.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

static void start(srvp *s)
{
    ck_assert_msg(srvp_start(s, TANDEM_BIN), "could not start the server");
}

static void stop(srvp *s)
{
    ck_assert_int_eq(srvp_stop(s), 0);
}

/* Every peer's text equals the server's. */
static void expect_server_text(int port, const char *room, np_peer **ps, size_t n)
{
    char *want = np_server_text(port, room);
    for (size_t i = 0; i < n; i++) {
        char *t = np_text(ps[i]);
        ck_assert_msg(strcmp(t, want) == 0, "peer %zu: '%s' != server '%s'", i, t, want);
        free(t);
    }
    free(want);
}

/* rounds of random edits by every peer; every third round all insert at
 * position 0 (the same spot), and frames move only every other round so
 * edits pile up concurrently. */
static void edit_rounds(wsc_ctx *x, np_peer **ps, size_t n, int rounds, unsigned seed)
{
    unsigned rng = seed;
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) np_random_edit(ps[i], &rng, r % 3 == 0);
        if (r % 2) {
            for (size_t i = 0; i < n; i++) np_pump(ps[i]);
            wsc_service(x, 1);
        }
    }
}

/* ---- convergence ---------------------------------------------------------------- */

START_TEST(test_ot_and_crdt_converge)
{
    srvp s;
    start(&s);
    wsc_ctx *x = wsc_new();
    ck_assert_ptr_nonnull(x);
    np_peer a, b, o, late, late_ot;
    np_open(&a, x, s.port, "mixed", 101, false, NULL);
    np_open(&b, x, s.port, "mixed", 102, false, NULL);
    np_open(&o, x, s.port, "mixed", 103, true, NULL);
    np_peer *ps[] = {&a, &b, &o, &late, &late_ot};
    np_wait_synced(x, ps, 3, 10000);
    edit_rounds(x, ps, 3, 40, 7);
    np_wait_converged(x, ps, 3, 20000);
    expect_server_text(s.port, "mixed", ps, 3);
    char *t = np_text(&a);
    ck_assert_uint_gt(strlen(t), 20); /* the edits did land */
    free(t);
    ck_assert_uint_eq(a.errors + b.errors + o.errors, 0);
    ck_assert_uint_gt(o.remote, 0); /* the OT client saw CRDT edits */

    /* a late CRDT joiner and a late OT joiner catch up */
    np_open(&late, x, s.port, "mixed", 104, false, NULL);
    np_open(&late_ot, x, s.port, "mixed", 105, true, NULL);
    np_wait_converged(x, ps, 5, 20000);
    expect_server_text(s.port, "mixed", ps, 5);

    /* b goes away without a goodbye and edits offline while the others go on;
     * it reconnects with its state vector and everyone converges */
    np_drop(&b);
    unsigned rng = 99;
    for (int i = 0; i < 10; i++) np_random_edit(&b, &rng, i % 2 == 0);
    np_peer *others[] = {&a, &o, &late, &late_ot};
    edit_rounds(x, others, 4, 12, 11);
    np_wait_converged(x, others, 4, 20000);
    np_connect(&b);
    np_wait_converged(x, ps, 5, 20000);
    expect_server_text(s.port, "mixed", ps, 5);
    for (size_t i = 0; i < 5; i++) ck_assert_uint_eq(ps[i]->errors, 0);

    wsc_free(x);
    for (size_t i = 0; i < 5; i++) np_free(ps[i]);
    stop(&s);
}
END_TEST

/* Occurrences of needle in hay. */
static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *at = hay; (at = strstr(at, needle)); at += strlen(needle)) n++;
    return n;
}

/* An OT insert of `text` at code point 0 of p's text. */
static void ot_insert_front(np_peer *p, const char *text)
{
    char *t = np_text(p);
    size_t len = utf8_count((const uint8_t *)t, strlen(t));
    free(t);
    ot_op *op;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, text, strlen(text)), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, len), TDM_OK);
    ck_assert_int_eq(sync_client_ot_edit(p->cl, p->ch, op), TDM_OK);
    ot_op_free(op);
}

/* An OT client whose connection drops with an operation in flight (sent,
 * maybe applied, not acked) and a buffer of offline edits behind it: after
 * reconnecting every one of its edits is in the text exactly once. */
START_TEST(test_ot_reconnect_in_flight)
{
    srvp s;
    start(&s);
    wsc_ctx *x = wsc_new();
    np_peer a, o;
    np_open(&a, x, s.port, "otr", 701, false, NULL);
    np_open(&o, x, s.port, "otr", 702, true, NULL);
    np_peer *ps[] = {&a, &o};
    np_wait_synced(x, ps, 2, 10000);
    char tok[32];
    for (int k = 0; k < 24; k++) {
        snprintf(tok, sizeof tok, "[o%d]", k);
        ot_insert_front(&o, tok);
        np_pump(&o);               /* on the wire */
        if (k % 3 == 0) {          /* an op in flight (and usually a buffer) when it drops */
            wsc_service(x, k % 2); /* sometimes it reaches the server first */
            np_drop(&o);
            snprintf(tok, sizeof tok, "[o%d']", k); /* offline, behind it */
            ot_insert_front(&o, tok);
        }
        snprintf(tok, sizeof tok, "(a%d)", k);
        ck_assert_int_eq(crdt_doc_insert(a.doc, crdt_doc_len(a.doc), tok, strlen(tok)), TDM_OK);
        ck_assert_int_eq(sync_client_flush(a.cl, a.ch), TDM_OK);
        np_pump(&a);
        if (k % 3 == 0) {
            wsc_service(x, 5);
            np_connect(&o);
        }
        wsc_service(x, 1);
    }
    np_wait_converged(x, ps, 2, 20000);
    expect_server_text(s.port, "otr", ps, 2);
    char *t = np_text(&a);
    for (int k = 0; k < 24; k++) {
        snprintf(tok, sizeof tok, "[o%d]", k);
        ck_assert_msg(count_of(t, tok) == 1, "%s %zu times in %s", tok, count_of(t, tok), t);
        snprintf(tok, sizeof tok, "(a%d)", k);
        ck_assert_msg(count_of(t, tok) == 1, "%s %zu times in %s", tok, count_of(t, tok), t);
        snprintf(tok, sizeof tok, "[o%d']", k);
        ck_assert_uint_eq(count_of(t, tok), k % 3 == 0 ? 1 : 0);
    }
    free(t);
    ck_assert_uint_eq(a.errors, 0);
    wsc_free(x);
    np_free(&a);
    np_free(&o);
    stop(&s);
}
END_TEST

/* ---- presence ------------------------------------------------------------------- */

typedef struct aw_want {
    np_peer **ps;
    size_t n;
    uint64_t client;
    bool present;
} aw_want;

/* Does every peer's view hold (or not hold) `client`? */
static bool aw_seen(void *arg)
{
    aw_want *w = arg;
    bool ok = true;
    for (size_t i = 0; i < w->n; i++) {
        np_pump(w->ps[i]);
        aw_entry e;
        bool has = aw_get(w->ps[i]->aw, w->client, &e) == TDM_OK;
        ok = ok && has == w->present;
    }
    return ok;
}

static void expect_presence(wsc_ctx *x, np_peer **ps, size_t n, uint64_t client, bool present)
{
    aw_want w = {ps, n, client, present};
    ck_assert_msg(wsc_wait(x, aw_seen, &w, 10000), "presence of %llu: not %s everywhere",
                  (unsigned long long)client, present ? "present" : "gone");
}

START_TEST(test_presence_join_leave)
{
    srvp s;
    start(&s);
    wsc_ctx *x = wsc_new();
    np_peer a, b, c, d;
    np_open(&a, x, s.port, "pres", 201, false, NULL);
    np_open(&b, x, s.port, "pres", 202, false, NULL);
    np_open(&c, x, s.port, "pres", 203, true, NULL);
    np_peer *ps[] = {&a, &b, &c, &d};
    np_wait_synced(x, ps, 3, 10000);
    np_presence(&a, "{\"cursor\":1}");
    np_presence(&b, "{\"cursor\":2}");
    np_peer *bc[] = {&b, &c}, *ac[] = {&a, &c};

    expect_presence(x, bc, 2, 201, true);
    expect_presence(x, ac, 2, 202, true);
    aw_entry en;
    ck_assert_int_eq(aw_get(c.aw, 201, &en), TDM_OK);
    ck_assert_uint_eq(en.len, 12);
    ck_assert_int_eq(memcmp(en.state, "{\"cursor\":1}", 12), 0);

    /* a late joiner gets everyone present */
    np_open(&d, x, s.port, "pres", 204, false, NULL);
    np_peer *dd[] = {&d};
    expect_presence(x, dd, 1, 201, true);
    expect_presence(x, dd, 1, 202, true);

    /* leave: a's connection drops (no close handshake): removed everywhere */
    np_drop(&a);
    np_peer *bcd[] = {&b, &c, &d};
    expect_presence(x, bcd, 3, 201, false);
    /* b closes normally: removed too */
    np_close(&b);
    np_peer *cd[] = {&c, &d};
    expect_presence(x, cd, 2, 202, false);

    wsc_free(x);
    for (size_t i = 0; i < 4; i++) np_free(ps[i]);
    stop(&s);
}
END_TEST

/* The server's awareness timeout in test_presence_timeout. */
#define AW_TEST_TIMEOUT_MS 1500

typedef struct renew_ctx {
    np_peer *keep; /* renews its presence every 300 ms */
    uint64_t next_ms;
    aw_want w;
} renew_ctx;

static bool renew_until_seen(void *arg)
{
    renew_ctx *r = arg;
    if (np_mono_ms() >= r->next_ms) {
        np_presence(r->keep, "{\"cursor\":7}");
        r->next_ms = np_mono_ms() + 300;
    }
    return aw_seen(&r->w);
}

START_TEST(test_presence_timeout)
{
    static const char *const env[] = {"TANDEM_AWARENESS_TIMEOUT_MS=1500", NULL};
    srvp_opts so = {0};
    so.env = env;
    srvp s;
    ck_assert_msg(srvp_start_opts(&s, TANDEM_BIN, &so), "could not start the server");
    wsc_ctx *x = wsc_new();
    np_peer a, b, c;
    np_open(&a, x, s.port, "aw", 601, false, NULL);
    np_open(&b, x, s.port, "aw", 602, true, NULL);
    np_peer *ps[] = {&a, &b, &c};
    np_wait_synced(x, ps, 2, 10000);
    /* a sets a presence once and stays connected without renewing it; b
     * renews its own every 300 ms */
    np_presence(&a, "{\"cursor\":1}");
    np_peer *bb[] = {&b};
    expect_presence(x, bb, 1, 601, true);
    uint64_t t0 = np_mono_ms();
    renew_ctx r = {&b, 0, {bb, 1, 601, false}};
    ck_assert_msg(wsc_wait(x, renew_until_seen, &r, 10000), "a's presence never expired");
    uint64_t took = np_mono_ms() - t0;
    ck_assert_uint_ge(took, AW_TEST_TIMEOUT_MS - 300); /* not before the timeout */
    /* b, which renewed, is still present at a; a is connected and synced */
    np_pump(&a);
    aw_entry e;
    ck_assert_int_eq(aw_get(a.aw, 602, &e), TDM_OK);
    ck_assert(sync_client_connected(a.cl));
    /* a newcomer gets b but not the expired a */
    np_open(&c, x, s.port, "aw", 603, false, NULL);
    np_peer *cc[] = {&c};
    r.w = (aw_want){cc, 1, 602, true};
    ck_assert(wsc_wait(x, renew_until_seen, &r, 10000));
    ck_assert_int_eq(aw_get(c.aw, 601, &e), TDM_ENOTFOUND);
    /* a renews: back everywhere */
    np_presence(&a, "{\"cursor\":2}");
    np_peer *bc[] = {&b, &c};
    expect_presence(x, bc, 2, 601, true);
    wsc_free(x);
    for (size_t i = 0; i < 3; i++) np_free(ps[i]);
    stop(&s);
}
END_TEST

/* ---- typing --------------------------------------------------------------------- */

typedef struct typing_want {
    np_peer *p;
    int on, off;
} typing_want;

static bool typing_seen(void *arg)
{
    typing_want *w = arg;
    np_pump(w->p);
    return w->p->typing_on >= w->on && w->p->typing_off >= w->off;
}

static void expect_typing(wsc_ctx *x, np_peer *other, np_peer *p, int on, int off, int ms)
{
    typing_want w = {p, on, off};
    uint64_t end = np_mono_ms() + (uint64_t)ms;
    while (!typing_seen(&w) && np_mono_ms() < end) {
        np_pump(other);
        wsc_service(x, 10);
    }
    ck_assert_msg(typing_seen(&w), "typing: on %d off %d, want %d %d", p->typing_on, p->typing_off,
                  on, off);
}

START_TEST(test_typing_start_stop_expiry)
{
    srvp s;
    start(&s);
    wsc_ctx *x = wsc_new();
    np_peer a, b;
    np_open(&a, x, s.port, "typ", 301, false, NULL);
    np_open(&b, x, s.port, "typ", 302, true, NULL);
    np_peer *ps[] = {&a, &b};
    np_wait_synced(x, ps, 2, 10000);
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    expect_typing(x, &a, &b, 1, 0, 5000);
    ck_assert_str_eq(b.typing_user, "anon");
    ck_assert_int_eq(a.typing_on, 0); /* not echoed to the typist */
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, false), TDM_OK);
    expect_typing(x, &a, &b, 1, 1, 5000);
    /* started and never renewed: the server stops it after SYNC_TYPING_MS */
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    expect_typing(x, &a, &b, 2, 1, 5000);
    expect_typing(x, &a, &b, 2, 2, 10000);
    ck_assert_uint_ge(b.typing_off_ms - b.typing_on_ms, SYNC_TYPING_MS - 500);
    ck_assert_int_eq(a.typing_on + a.typing_off, 0);
    ck_assert_uint_eq(a.errors + b.errors, 0);
    wsc_free(x);
    np_free(&a);
    np_free(&b);
    stop(&s);
}
END_TEST

/* ---- chat ----------------------------------------------------------------------- */

static bool chat_seen(void *arg)
{
    np_peer **ps = ((np_group *)arg)->p;
    size_t n = ((np_group *)arg)->n;
    for (size_t i = 0; i < n; i++) np_pump(ps[i]);
    return true;
}

/* Pump until p has seen `nchat` records and `acks` chat acks. */
static void wait_chat(wsc_ctx *x, np_peer **ps, size_t n, np_peer *p, size_t nchat, uint64_t acks)
{
    np_group g = {ps, n};
    uint64_t end = np_mono_ms() + 10000;
    while ((p->nchat < nchat || p->chat_acks < acks) && np_mono_ms() < end) {
        chat_seen(&g);
        wsc_service(x, 10);
    }
    ck_assert_msg(p->nchat >= nchat && p->chat_acks >= acks, "chat: %zu records %llu acks",
                  p->nchat, (unsigned long long)p->chat_acks);
}

/* Pump for ms (to see that nothing more arrives). */
static void settle(wsc_ctx *x, np_peer **ps, size_t n, int ms)
{
    np_group g = {ps, n};
    uint64_t end = np_mono_ms() + (uint64_t)ms;
    while (np_mono_ms() < end) {
        chat_seen(&g);
        wsc_service(x, 10);
    }
}

START_TEST(test_chat_replay_after_reconnect)
{
    srvp s;
    start(&s);
    wsc_ctx *x = wsc_new();
    np_peer a, b;
    np_open(&a, x, s.port, "chat", 401, false, NULL);
    np_open(&b, x, s.port, "chat", 402, true, NULL);
    np_peer *ps[] = {&a, &b};
    np_wait_synced(x, ps, 2, 10000);
    np_say(&a, "one");
    np_say(&a, "two");
    wait_chat(x, ps, 2, &b, 2, 0);
    wait_chat(x, ps, 2, &a, 0, 2);
    ck_assert_uint_eq(sync_client_chat_last(b.cl, b.ch), 2);
    /* b drops; three messages go by while it is away */
    np_drop(&b);
    np_peer *aa[] = {&a};
    np_say(&a, "three");
    np_say(&a, "four");
    np_say(&a, "five");
    wait_chat(x, aa, 1, &a, 0, 5);
    ck_assert_uint_eq(b.nchat, 2);
    /* it reconnects with its last seen chat id and gets exactly those three */
    np_connect(&b);
    np_wait_synced(x, ps, 2, 10000);
    wait_chat(x, ps, 2, &b, 5, 0);
    settle(x, ps, 2, 500);
    ck_assert_uint_eq(b.nchat, 5);
    for (size_t i = 0; i < 5; i++) ck_assert_uint_eq(b.chat_ids[i], i + 1);
    ck_assert_uint_eq(sync_client_chat_last(b.cl, b.ch), 5);
    /* the sender's own messages are acked, not echoed */
    ck_assert_uint_eq(a.nchat, 0);
    json_t *v = np_get_json(s.port, "/api/rooms/chat/messages");
    ck_assert_uint_eq(json_array_size(json_object_get(v, "messages")), 5);
    json_decref(v);
    ck_assert_uint_eq(a.errors + b.errors, 0);
    wsc_free(x);
    np_free(&a);
    np_free(&b);
    stop(&s);
}
END_TEST

/* HELLO + an OT SUBSCRIBE without chat replay on a raw connection. */
static wsc_conn *raw_join(wsc_ctx *x, int port, uint64_t client_id, const char *room)
{
    wsc_conn *c = wsc_connect(x, "127.0.0.1", port, "/ws", "tandem.v1");
    ck_assert_ptr_nonnull(c);
    syncm h = {.type = SYNCM_HELLO, .proto = 1, .caps = SYNC_CAP_ALL, .client_id = client_id};
    np_raw_send(c, &h);
    syncm sub = {.type = SYNCM_SUBSCRIBE,
                 .channel = 1,
                 .name = {(const uint8_t *)room, strlen(room)},
                 .mode = SYNC_MODE_OT};
    np_raw_send(c, &sub);
    np_raw r;
    ck_assert(np_raw_until(x, c, SYNCM_SUBSCRIBED, &r, 10000));
    np_raw_free(&r);
    return c;
}

/* Send CHAT_SEND msg_id `text` and return the chat id of the CHAT_ACK. */
static uint64_t raw_chat(wsc_ctx *x, wsc_conn *c, uint64_t msg_id, const char *text)
{
    syncm m = {.type = SYNCM_CHAT_SEND,
               .channel = 1,
               .msg_id = msg_id,
               .text = {(const uint8_t *)text, strlen(text)}};
    np_raw_send(c, &m);
    np_raw r;
    ck_assert(np_raw_until(x, c, SYNCM_CHAT_ACK, &r, 10000));
    ck_assert_uint_eq(r.m.msg_id, msg_id);
    uint64_t id = r.m.chat_id;
    np_raw_free(&r);
    return id;
}

static size_t message_count(int port, const char *room, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "/api/rooms/%s/messages", room);
    json_t *v = np_get_json(port, path);
    json_t *msgs = json_object_get(v, "messages");
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(msgs, i), "text"));
        if (t && strcmp(t, text) == 0) n++;
    }
    json_decref(v);
    return n;
}

START_TEST(test_chat_dedup_resends)
{
    srvp s;
    start(&s);
    wsc_ctx *x = wsc_new();
    np_peer w; /* a watcher: sees each stored message once */
    np_open(&w, x, s.port, "dedup", 501, false, NULL);
    np_peer *ws[] = {&w};
    np_wait_synced(x, ws, 1, 10000);
    wsc_conn *c = raw_join(x, s.port, 77, "dedup");
    /* the same (client, msg_id) twice back to back, before the first is durable */
    syncm m = {
        .type = SYNCM_CHAT_SEND, .channel = 1, .msg_id = 9, .text = {(const uint8_t *)"same", 4}};
    np_raw_send(c, &m);
    np_raw_send(c, &m);
    np_raw r1, r2;
    ck_assert(np_raw_until(x, c, SYNCM_CHAT_ACK, &r1, 10000));
    ck_assert(np_raw_until(x, c, SYNCM_CHAT_ACK, &r2, 10000));
    ck_assert_uint_eq(r1.m.msg_id, 9);
    ck_assert_uint_eq(r2.m.msg_id, 9);
    ck_assert_uint_ne(r1.m.chat_id, 0);
    ck_assert_uint_eq(r1.m.chat_id, r2.m.chat_id);
    uint64_t id = r1.m.chat_id;
    np_raw_free(&r1);
    np_raw_free(&r2);
    /* once more on a new connection (a client resending after a reconnect) */
    wsc_close(c);
    c = raw_join(x, s.port, 77, "dedup");
    ck_assert_uint_eq(raw_chat(x, c, 9, "same"), id);
    /* another message id is a new message; another client with msg 9 too */
    uint64_t id2 = raw_chat(x, c, 10, "other");
    ck_assert_uint_gt(id2, id);
    wsc_conn *c2 = raw_join(x, s.port, 78, "dedup");
    uint64_t id3 = raw_chat(x, c2, 9, "same");
    ck_assert_uint_gt(id3, id2);
    ck_assert_uint_eq(message_count(s.port, "dedup", "same"), 2);
    ck_assert_uint_eq(message_count(s.port, "dedup", "other"), 1);
    wait_chat(x, ws, 1, &w, 3, 0);
    settle(x, ws, 1, 300);
    ck_assert_uint_eq(w.nchat, 3);
    ck_assert_uint_eq(w.chat_ids[0], id);
    ck_assert_uint_eq(w.chat_ids[1], id2);
    ck_assert_uint_eq(w.chat_ids[2], id3);
    wsc_free(x);
    np_free(&w);
    stop(&s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("server_rooms");
    TCase *tc = tcase_create("rooms");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ot_and_crdt_converge);
    tcase_add_test(tc, test_ot_reconnect_in_flight);
    tcase_add_test(tc, test_presence_join_leave);
    tcase_add_test(tc, test_presence_timeout);
    tcase_add_test(tc, test_typing_start_stop_expiry);
    tcase_add_test(tc, test_chat_replay_after_reconnect);
    tcase_add_test(tc, test_chat_dedup_resends);
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
