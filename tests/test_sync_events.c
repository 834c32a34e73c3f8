/* test_sync_events.c - sync_host.room_event (sync/session.h) on the in-memory
 * host of test_sync_harness.h: chat is reported once when durable with the
 * record as stored (never for a duplicate resend or a failed write), presence
 * added / updated / removed by the client, on leaving and on expiry with the
 * owner's user, typing start (not renewals) and stop by the client, on
 * expiry and on leaving; each event names its room. */
/* the harness is header-only and written for test_sync.c: not every helper is used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test_sync_harness.h"
#pragma GCC diagnostic pop

#define MAXEV 64

typedef struct rec_ev {
    char room[64];
    sync_room_event_kind kind;
    sync_room_event_why why;
    uint64_t chat_id, chat_client, chat_msg;
    char text[64], user[64], display[64], state[64];
    uint64_t client;
    bool on;
} rec_ev;

/* the harness host plus a log of room events (h first: it is the ctx) */
typedef struct eh {
    th h;
    rec_ev ev[MAXEV];
    size_t nev;
} eh;

static void copy(char *dst, size_t cap, const void *p, size_t n)
{
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, p, n);
    dst[n] = '\0';
}

static void on_room_event(void *ctx, const char *name, const sync_room_event *ev)
{
    eh *e = ctx;
    ck_assert_uint_lt(e->nev, MAXEV);
    rec_ev *r = &e->ev[e->nev++];
    memset(r, 0, sizeof *r);
    copy(r->room, sizeof r->room, name, strlen(name));
    r->kind = ev->kind;
    r->why = ev->why;
    r->on = ev->on;
    r->client = ev->client;
    if (ev->user) copy(r->user, sizeof r->user, ev->user, strlen(ev->user));
    if (ev->display) copy(r->display, sizeof r->display, ev->display, strlen(ev->display));
    if (ev->state) copy(r->state, sizeof r->state, ev->state, ev->state_len);
    if (ev->kind == SYNC_ROOM_CHAT) {
        ck_assert_ptr_nonnull(ev->chat);
        r->chat_id = ev->chat->id;
        r->chat_client = ev->chat->client_id;
        r->chat_msg = ev->chat->msg_id;
        copy(r->text, sizeof r->text, ev->chat->text, ev->chat->text_len);
        copy(r->user, sizeof r->user, ev->chat->user, ev->chat->user_len);
        copy(r->display, sizeof r->display, ev->chat->display, ev->chat->display_len);
    }
}

/* th_init with room_event set (the harness host otherwise unchanged) */
static void eh_init(eh *e)
{
    memset(e, 0, sizeof *e);
    th_init(&e->h, NULL);
    sync_server_free(e->h.srv);
    sync_host host = th_host(e);
    host.room_event = on_room_event;
    sync_server_opts o = {.hash_seed = 42};
    ck_assert_int_eq(sync_server_new(&host, &o, &e->h.srv), TDM_OK);
}

/* events of `kind` logged from index `from` on */
static size_t count(const eh *e, size_t from, sync_room_event_kind kind)
{
    size_t n = 0;
    for (size_t i = from; i < e->nev; i++) n += e->ev[i].kind == kind;
    return n;
}

static void join(eh *e, peer *p, uint64_t id, const char *token, const char *room, uint64_t now)
{
    peer_init(p, id, token);
    ck_assert_int_eq(sync_client_subscribe_crdt(p->cl, room, p->doc, false, &p->ch), TDM_OK);
    peer_connect(&e->h, p, now);
}

static void set_presence(peer *p, const char *state, uint64_t now)
{
    if (!p->aw) ck_assert_int_eq(aw_new(p->client_id, &p->aw), TDM_OK);
    tbuf b;
    tbuf_init(&b, 0);
    if (state)
        ck_assert_int_eq(aw_set_local(p->aw, (const uint8_t *)state, strlen(state), now), TDM_OK);
    else
        ck_assert_int_eq(aw_clear_local(p->aw, now), TDM_OK);
    ck_assert_int_eq(aw_encode_local(p->aw, &b), TDM_OK);
    ck_assert_int_eq(sync_client_awareness(p->cl, p->ch, b.data, b.len), TDM_OK);
    tbuf_fini(&b);
}

START_TEST(test_chat_once_when_durable)
{
    static eh e;
    eh_init(&e);
    peer a, b;
    join(&e, &a, 7, "alice:w", "room", 0);
    join(&e, &b, 8, "bob:r", "other", 0);
    peer *ps[] = {&a, &b};
    net_run(&e.h, ps, 2, NULL, 0);
    ck_assert_uint_eq(e.nev, 0);
    /* not reported before it is durable */
    e.h.hold = true;
    uint64_t m1;
    ck_assert_int_eq(sync_client_chat_send(a.cl, a.ch, "hi", 2, &m1), TDM_OK);
    net_run(&e.h, ps, 2, NULL, 10);
    ck_assert_uint_eq(count(&e, 0, SYNC_ROOM_CHAT), 0);
    e.h.hold = false;
    th_complete(&e.h);
    ck_assert_uint_eq(count(&e, 0, SYNC_ROOM_CHAT), 1);
    rec_ev *r = &e.ev[e.nev - 1];
    ck_assert_str_eq(r->room, "room");
    ck_assert_uint_eq(r->chat_id, 1);
    ck_assert_uint_eq(r->chat_client, 7);
    ck_assert_uint_eq(r->chat_msg, m1);
    ck_assert_str_eq(r->text, "hi");
    ck_assert_str_eq(r->user, "alice");
    ck_assert_str_eq(r->display, "ALICE");
    /* a resend after a reconnect (the ack was lost) is a duplicate: no event */
    e.h.hold = true;
    ck_assert_int_eq(sync_client_chat_send(a.cl, a.ch, "again", 5, NULL), TDM_OK);
    net_run(&e.h, ps, 2, NULL, 20);
    peer_disconnect(&a, 30);
    e.h.hold = false;
    th_complete(&e.h); /* stored as 2, but nobody gets the ack */
    ck_assert_uint_eq(count(&e, 0, SYNC_ROOM_CHAT), 2);
    size_t before = e.nev;
    peer_connect(&e.h, &a, 40);
    net_run(&e.h, ps, 2, NULL, 40); /* "again" is resent and found stored */
    ck_assert_uint_eq(count(&e, before, SYNC_ROOM_CHAT), 0);
    ck_assert_uint_eq(e.h.docs[0].nchats, 2);
    /* a failed write: no event */
    e.h.fail_durable = 1;
    ck_assert_int_eq(sync_client_chat_send(a.cl, a.ch, "lost", 4, NULL), TDM_OK);
    ck_assert(!peer_has_error(&a, SYNC_ERR_STORAGE));
    net_run(&e.h, ps, 2, NULL, 50);
    ck_assert(peer_has_error(&a, SYNC_ERR_STORAGE)); /* the sender hears of it */
    ck_assert_uint_eq(count(&e, before, SYNC_ROOM_CHAT), 0);
    peer_disconnect(&a, 0);
    peer_disconnect(&b, 0);
    peer_fini(&a);
    peer_fini(&b);
    th_fini(&e.h);
}
END_TEST

START_TEST(test_presence)
{
    static eh e;
    eh_init(&e);
    peer a, b;
    join(&e, &a, 11, "alice:w", "doc", 0);
    join(&e, &b, 12, "bob:w", "doc", 0);
    peer *ps[] = {&a, &b};
    net_run(&e.h, ps, 2, NULL, 0);
    set_presence(&a, "{\"c\":1}", 100);
    net_run(&e.h, ps, 2, NULL, 100);
    ck_assert_uint_eq(e.nev, 1);
    ck_assert_int_eq(e.ev[0].kind, SYNC_ROOM_PRESENCE);
    ck_assert_uint_eq(e.ev[0].client, 11);
    ck_assert_str_eq(e.ev[0].user, "alice");
    ck_assert_str_eq(e.ev[0].display, "ALICE");
    ck_assert_str_eq(e.ev[0].state, "{\"c\":1}");
    ck_assert_str_eq(e.ev[0].room, "doc");
    /* a change of state is reported; the same bytes again (a renewal) are not */
    set_presence(&a, "{\"c\":2}", 200);
    net_run(&e.h, ps, 2, NULL, 200);
    set_presence(&a, "{\"c\":2}", 300);
    net_run(&e.h, ps, 2, NULL, 300);
    ck_assert_uint_eq(e.nev, 2);
    ck_assert_str_eq(e.ev[1].state, "{\"c\":2}");
    /* cleared by the client */
    set_presence(&a, NULL, 400);
    net_run(&e.h, ps, 2, NULL, 400);
    ck_assert_uint_eq(e.nev, 3);
    ck_assert_int_eq(e.ev[2].kind, SYNC_ROOM_PRESENCE_LEFT);
    ck_assert_int_eq(e.ev[2].why, SYNC_WHY_CLIENT);
    ck_assert_uint_eq(e.ev[2].client, 11);
    /* removed when the connection goes, with the owner named */
    set_presence(&b, "b", 500);
    net_run(&e.h, ps, 2, NULL, 500);
    ck_assert_uint_eq(e.nev, 4);
    peer_disconnect(&b, 600);
    ck_assert_uint_eq(e.nev, 5);
    ck_assert_int_eq(e.ev[4].kind, SYNC_ROOM_PRESENCE_LEFT);
    ck_assert_int_eq(e.ev[4].why, SYNC_WHY_LEFT);
    ck_assert_uint_eq(e.ev[4].client, 12);
    ck_assert_str_eq(e.ev[4].user, "bob");
    /* expiry: not renewed for AW_TIMEOUT_MS */
    set_presence(&a, "back", 1000);
    net_run(&e.h, ps, 1, NULL, 1000);
    ck_assert_uint_eq(e.nev, 6);
    sync_server_tick(e.h.srv, 1000 + AW_TIMEOUT_MS - 1);
    ck_assert_uint_eq(e.nev, 6);
    sync_server_tick(e.h.srv, 1000 + AW_TIMEOUT_MS);
    ck_assert_uint_eq(e.nev, 7);
    ck_assert_int_eq(e.ev[6].kind, SYNC_ROOM_PRESENCE_LEFT);
    ck_assert_int_eq(e.ev[6].why, SYNC_WHY_EXPIRED);
    ck_assert_str_eq(e.ev[6].user, "alice");
    peer_disconnect(&a, 0);
    ck_assert_uint_eq(e.nev, 7); /* nothing left to remove */
    peer_fini(&a);
    peer_fini(&b);
    th_fini(&e.h);
}
END_TEST

START_TEST(test_typing)
{
    static eh e;
    eh_init(&e);
    peer a;
    join(&e, &a, 21, "alice:w", "doc", 0);
    peer *ps[] = {&a};
    net_run(&e.h, ps, 1, NULL, 0);
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    net_run(&e.h, ps, 1, NULL, 100);
    ck_assert_uint_eq(e.nev, 1);
    ck_assert_int_eq(e.ev[0].kind, SYNC_ROOM_TYPING);
    ck_assert(e.ev[0].on);
    ck_assert_str_eq(e.ev[0].user, "alice");
    ck_assert_str_eq(e.ev[0].display, "ALICE");
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK); /* a renewal */
    net_run(&e.h, ps, 1, NULL, 1000);
    ck_assert_uint_eq(e.nev, 1);
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, false), TDM_OK);
    net_run(&e.h, ps, 1, NULL, 1100);
    ck_assert_uint_eq(e.nev, 2);
    ck_assert(!e.ev[1].on);
    ck_assert_int_eq(e.ev[1].why, SYNC_WHY_CLIENT);
    /* a stop without a start is nothing */
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, false), TDM_OK);
    net_run(&e.h, ps, 1, NULL, 1200);
    ck_assert_uint_eq(e.nev, 2);
    /* expiry SYNC_TYPING_MS after the last start */
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    net_run(&e.h, ps, 1, NULL, 2000);
    sync_server_tick(e.h.srv, 2000 + SYNC_TYPING_MS - 1);
    ck_assert_uint_eq(e.nev, 3);
    sync_server_tick(e.h.srv, 2000 + SYNC_TYPING_MS);
    ck_assert_uint_eq(e.nev, 4);
    ck_assert(!e.ev[3].on);
    ck_assert_int_eq(e.ev[3].why, SYNC_WHY_EXPIRED);
    /* and when the connection goes */
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    net_run(&e.h, ps, 1, NULL, 6000);
    ck_assert_uint_eq(e.nev, 5);
    peer_disconnect(&a, 6100);
    ck_assert_uint_eq(e.nev, 6);
    ck_assert(!e.ev[5].on);
    ck_assert_int_eq(e.ev[5].why, SYNC_WHY_LEFT);
    ck_assert_str_eq(e.ev[5].user, "alice");
    peer_fini(&a);
    th_fini(&e.h);
}
END_TEST

static Suite *events_suite(void)
{
    Suite *s = suite_create("sync_events");
    TCase *tc = tcase_create("room_event");
    tcase_add_test(tc, test_chat_once_when_durable);
    tcase_add_test(tc, test_presence);
    tcase_add_test(tc, test_typing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(events_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
