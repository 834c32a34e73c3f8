/* test_sync_relay.c - sync/relay.c, the entry points for several nodes
 * serving one room (docs/SCALING.md), on two in-process sync_servers ("nodes")
 * with the in-memory host of test_sync_harness.h plus a relay callback. The
 * test moves what one node hands out (persisted update bytes, relayed
 * awareness) into the other by hand. Checked: a relayed update reaches the
 * other node's clients and store without an ack and without being relayed
 * again; state-vector comparison gives exactly the missing diff both ways;
 * awareness, its removal on leave, typing and chat cross; bad bytes and
 * unknown rooms are refused and change nothing. */
#include "test_sync_harness.h"

/* ------------------------------------------------------------ two nodes */

typedef struct node {
    th h;
    hblob relayed[64]; /* what host->relay handed out */
    size_t nrelayed;
} node;

static void h_relay(void *ctx, const char *name, sync_relay_kind kind, const uint8_t *p, size_t n)
{
    (void)name;
    node *nd = ctx; /* th is the first member */
    ck_assert_int_eq(kind, SYNC_RELAY_AWARENESS);
    ck_assert_uint_lt(nd->nrelayed, 64);
    nd->relayed[nd->nrelayed].p = malloc(n);
    memcpy(nd->relayed[nd->nrelayed].p, p, n);
    nd->relayed[nd->nrelayed++].n = n;
}

static void node_init(node *nd, uint64_t first_client)
{
    memset(nd, 0, sizeof *nd);
    th *h = &nd->h;
    h->limit_kind = -1;
    h->next_client = first_client;
    sync_host host = th_host(nd);
    host.relay = h_relay;
    sync_server_opts o = {.hash_seed = 7};
    ck_assert_int_eq(sync_server_new(&host, &o, &h->srv), TDM_OK);
}

static void node_fini(node *nd)
{
    for (size_t i = 0; i < nd->nrelayed; i++) free(nd->relayed[i].p);
    th_fini(&nd->h);
}

static void ins(peer *p, size_t pos, const char *s)
{
    ck_assert_int_eq(crdt_doc_insert(p->doc, pos, s, strlen(s)), TDM_OK);
    ck_assert_int_eq(sync_client_flush(p->cl, p->ch), TDM_OK);
}

static void join(node *nd, peer *p, uint64_t client, const char *token)
{
    peer_init(p, client, token);
    ck_assert_int_eq(sync_client_subscribe_crdt(p->cl, "doc", p->doc, false, &p->ch), TDM_OK);
    peer_connect(&nd->h, p, 0);
    peer *ps[] = {p};
    net_run(&nd->h, ps, 1, NULL, 0);
    ck_assert_uint_eq(p->synced, 1);
}

static size_t stored(node *nd)
{
    hdoc *d = th_doc(&nd->h, "doc", false);
    return d ? d->nupdates : 0;
}

/* apply every update node `from` stored since index *at to node `to` */
static void carry(node *from, node *to, size_t *at)
{
    hdoc *d = th_doc(&from->h, "doc", false);
    ck_assert_ptr_nonnull(d);
    for (; *at < d->nupdates; (*at)++) {
        bool changed = false;
        ck_assert_int_eq(sync_server_apply_remote(to->h.srv, "doc", d->updates[*at].p,
                                                  d->updates[*at].n, &changed),
                         TDM_OK);
        ck_assert(changed);
    }
}

/* ------------------------------------------------------------ tests */

START_TEST(test_apply_remote_reaches_clients_and_store)
{
    node n1, n2;
    node_init(&n1, 1000000);
    node_init(&n2, 2000000);
    peer a, b;
    join(&n1, &a, 1, "alice:w");
    join(&n2, &b, 2, "bob:w");
    peer *pa[] = {&a}, *pb[] = {&b};
    ins(&a, 0, "hello");
    net_run(&n1.h, pa, 1, NULL, 0);
    ck_assert_uint_eq(a.acks, 1);
    size_t at = 0;
    carry(&n1, &n2, &at);
    net_run(&n2.h, pb, 1, NULL, 0);
    char *t = doc_text(b.doc);
    ck_assert_str_eq(t, "hello");
    free(t);
    ck_assert_uint_eq(stored(&n2), 1); /* n2's store received it */
    ck_assert_uint_eq(b.acks, 0);      /* nobody on n2 waits for an ack */
    /* the same bytes again change nothing and are not stored again */
    hdoc *d = th_doc(&n1.h, "doc", false);
    bool changed = true;
    ck_assert_int_eq(
        sync_server_apply_remote(n2.h.srv, "doc", d->updates[0].p, d->updates[0].n, &changed),
        TDM_OK);
    ck_assert(!changed);
    th_complete(&n2.h);
    ck_assert_uint_eq(stored(&n2), 1);
    /* and back: b's edit reaches a */
    ins(&b, 5, " world");
    net_run(&n2.h, pb, 1, NULL, 0);
    ck_assert_uint_eq(b.acks, 1);
    size_t at2 = 1;
    carry(&n2, &n1, &at2);
    net_run(&n1.h, pa, 1, NULL, 0);
    t = doc_text(a.doc);
    ck_assert_str_eq(t, "hello world");
    free(t);
    ck_assert_uint_eq(n1.nrelayed + n2.nrelayed, 0); /* no awareness was sent */
    ck_assert_uint_eq(a.nerr + b.nerr, 0);
    peer_disconnect(&a, 0);
    peer_disconnect(&b, 0);
    peer_fini(&a);
    peer_fini(&b);
    node_fini(&n1);
    node_fini(&n2);
}
END_TEST

START_TEST(test_compare_repairs_both_ways)
{
    node n1, n2;
    node_init(&n1, 1000000);
    node_init(&n2, 2000000);
    peer a, b;
    join(&n1, &a, 1, "alice:w");
    join(&n2, &b, 2, "bob:w");
    peer *pa[] = {&a}, *pb[] = {&b};
    /* the nodes cannot see each other: both take edits */
    ins(&a, 0, "left ");
    ins(&a, 5, "more ");
    ins(&b, 0, "right");
    net_run(&n1.h, pa, 1, NULL, 0);
    net_run(&n2.h, pb, 1, NULL, 0);
    tbuf sv1, sv2, diff;
    tbuf_init(&sv1, 0);
    tbuf_init(&sv2, 0);
    tbuf_init(&diff, 0);
    ck_assert_int_eq(sync_server_room_sv(n1.h.srv, "doc", &sv1), TDM_OK);
    ck_assert_int_eq(sync_server_room_sv(n2.h.srv, "doc", &sv2), TDM_OK);
    /* n2 announces: n1 sends what n2 lacks and learns it is behind */
    bool behind = false;
    ck_assert_int_eq(sync_server_room_compare(n1.h.srv, "doc", sv2.data, sv2.len, &diff, &behind),
                     TDM_OK);
    ck_assert(behind);
    ck_assert_uint_gt(diff.len, 0);
    ck_assert_int_eq(sync_server_apply_remote(n2.h.srv, "doc", diff.data, diff.len, NULL), TDM_OK);
    tbuf_reset(&diff);
    /* n1 announces: n2 sends what n1 lacks; n2 is not behind any more */
    ck_assert_int_eq(sync_server_room_compare(n2.h.srv, "doc", sv1.data, sv1.len, &diff, &behind),
                     TDM_OK);
    ck_assert(!behind);
    ck_assert_int_eq(sync_server_apply_remote(n1.h.srv, "doc", diff.data, diff.len, NULL), TDM_OK);
    net_run(&n1.h, pa, 1, NULL, 0);
    net_run(&n2.h, pb, 1, NULL, 0);
    char *t1 = room_text(&n1.h, "doc"), *t2 = room_text(&n2.h, "doc");
    ck_assert_str_eq(t1, t2);
    ck_assert_uint_eq(strlen(t1), strlen("left more right"));
    char *ta = doc_text(a.doc), *tb = doc_text(b.doc);
    ck_assert_str_eq(ta, t1);
    ck_assert_str_eq(tb, t1);
    free(t1), free(t2), free(ta), free(tb);
    /* equal now: nothing to send either way */
    tbuf_reset(&sv2);
    tbuf_reset(&diff);
    ck_assert_int_eq(sync_server_room_sv(n2.h.srv, "doc", &sv2), TDM_OK);
    ck_assert_int_eq(sync_server_room_compare(n1.h.srv, "doc", sv2.data, sv2.len, &diff, &behind),
                     TDM_OK);
    ck_assert_uint_eq(diff.len, 0);
    ck_assert(!behind);
    tbuf_fini(&sv1);
    tbuf_fini(&sv2);
    tbuf_fini(&diff);
    peer_disconnect(&a, 0);
    peer_disconnect(&b, 0);
    peer_fini(&a);
    peer_fini(&b);
    node_fini(&n1);
    node_fini(&n2);
}
END_TEST

START_TEST(test_awareness_typing_chat_cross)
{
    node n1, n2;
    node_init(&n1, 1000000);
    node_init(&n2, 2000000);
    peer a, b;
    join(&n1, &a, 1, "alice:w");
    join(&n2, &b, 2, "bob:w");
    ck_assert_int_eq(aw_new(2, &b.aw), TDM_OK);
    peer *pa[] = {&a}, *pb[] = {&b};
    /* a's presence on n1 is handed to the relay, put into n2, seen by b */
    aw_state *mine;
    ck_assert_int_eq(aw_new(1, &mine), TDM_OK);
    ck_assert_int_eq(aw_set_local(mine, (const uint8_t *)"{\"x\":1}", 7, 0), TDM_OK);
    tbuf e;
    tbuf_init(&e, 0);
    ck_assert_int_eq(aw_encode_local(mine, &e), TDM_OK);
    ck_assert_int_eq(sync_client_awareness(a.cl, a.ch, e.data, e.len), TDM_OK);
    net_run(&n1.h, pa, 1, NULL, 0);
    ck_assert_uint_eq(n1.nrelayed, 1);
    ck_assert_int_eq(
        sync_server_relay_awareness(n2.h.srv, "doc", n1.relayed[0].p, n1.relayed[0].n, 0), TDM_OK);
    net_run(&n2.h, pb, 1, NULL, 0);
    aw_entry en;
    ck_assert_int_eq(aw_get(b.aw, 1, &en), TDM_OK);
    ck_assert_uint_eq(en.len, 7);
    ck_assert_uint_eq(n2.nrelayed, 0); /* not relayed back */
    /* n2 re-announces only what its own connections introduced: nothing */
    tbuf loc;
    tbuf_init(&loc, 0);
    ck_assert_int_eq(sync_server_awareness_local(n2.h.srv, "doc", &loc), TDM_OK);
    ck_assert_uint_eq(loc.len, 0);
    ck_assert_int_eq(sync_server_awareness_local(n1.h.srv, "doc", &loc), TDM_OK);
    ck_assert_uint_gt(loc.len, 0);
    tbuf_fini(&loc);
    /* a leaves n1: the removal is relayed and b loses the entry */
    peer_disconnect(&a, 0);
    ck_assert_uint_eq(n1.nrelayed, 2);
    ck_assert_int_eq(
        sync_server_relay_awareness(n2.h.srv, "doc", n1.relayed[1].p, n1.relayed[1].n, 0), TDM_OK);
    net_run(&n2.h, pb, 1, NULL, 0);
    ck_assert_int_ne(aw_get(b.aw, 1, &en), TDM_OK);
    /* typing and chat from another node */
    ck_assert_int_eq(sync_server_relay_typing(n2.h.srv, "doc", "alice", "Alice", true), TDM_OK);
    net_run(&n2.h, pb, 1, NULL, 0);
    ck_assert_int_eq(b.typing_on, 1);
    ck_assert_str_eq(b.typing_user, "alice");
    sync_chat_rec rec = {.id = 5,
                         .time_ms = 1,
                         .user = (const uint8_t *)"alice",
                         .user_len = 5,
                         .display = (const uint8_t *)"Alice",
                         .display_len = 5,
                         .text = (const uint8_t *)"hi",
                         .text_len = 2};
    ck_assert_int_eq(sync_server_relay_chat(n2.h.srv, "doc", &rec), TDM_OK);
    ck_assert_int_eq(sync_server_relay_chat(n2.h.srv, "doc", &rec), TDM_OK); /* seen: nothing */
    net_run(&n2.h, pb, 1, NULL, 0);
    ck_assert_uint_eq(b.nchat, 1);
    ck_assert_uint_eq(b.chat_ids[0], 5);
    ck_assert_str_eq(b.chat_texts[0], "hi");
    ck_assert_uint_eq(b.nerr, 0);
    tbuf_fini(&e);
    aw_free(mine);
    peer_disconnect(&b, 0);
    peer_fini(&a);
    peer_fini(&b);
    node_fini(&n1);
    node_fini(&n2);
}
END_TEST

START_TEST(test_bad_input_changes_nothing)
{
    node n1;
    node_init(&n1, 1000000);
    peer a;
    join(&n1, &a, 1, "alice:w");
    peer *pa[] = {&a};
    ins(&a, 0, "keep");
    net_run(&n1.h, pa, 1, NULL, 0);
    size_t before = stored(&n1);
    static const uint8_t junk[] = {0xff, 0x00, 0x13, 0x37, 0xa1, 0x02};
    bool changed = true;
    ck_assert_int_ne(sync_server_apply_remote(n1.h.srv, "doc", junk, sizeof junk, &changed),
                     TDM_OK);
    ck_assert(!changed);
    ck_assert_int_eq(sync_server_apply_remote(n1.h.srv, "doc", junk, 0, NULL), TDM_EINVAL);
    ck_assert_int_eq(sync_server_apply_remote(n1.h.srv, "nope", junk, sizeof junk, NULL),
                     TDM_ENOTFOUND);
    tbuf d;
    tbuf_init(&d, 0);
    bool behind = true;
    ck_assert_int_ne(sync_server_room_compare(n1.h.srv, "doc", junk, sizeof junk, &d, &behind),
                     TDM_OK);
    ck_assert_uint_eq(d.len, 0);
    ck_assert_int_eq(sync_server_room_sv(n1.h.srv, "nope", &d), TDM_ENOTFOUND);
    ck_assert_int_ne(sync_server_relay_awareness(n1.h.srv, "doc", junk, sizeof junk, 0), TDM_OK);
    ck_assert_int_eq(sync_server_relay_typing(n1.h.srv, "doc", "", "x", true), TDM_EINVAL);
    ck_assert_int_eq(sync_server_relay_typing(n1.h.srv, "nope", "u", "x", true), TDM_ENOTFOUND);
    sync_chat_rec rec = {.id = 0, .user = (const uint8_t *)"u", .user_len = 1};
    ck_assert_int_eq(sync_server_relay_chat(n1.h.srv, "doc", &rec), TDM_EINVAL);
    tbuf_fini(&d);
    net_run(&n1.h, pa, 1, NULL, 0);
    th_complete(&n1.h);
    ck_assert_uint_eq(stored(&n1), before);
    char *t = room_text(&n1.h, "doc");
    ck_assert_str_eq(t, "keep");
    free(t);
    ck_assert_uint_eq(a.nchat + (size_t)a.typing_on, 0);
    ck_assert_uint_eq(n1.nrelayed, 0);
    peer_disconnect(&a, 0);
    peer_fini(&a);
    node_fini(&n1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sync_relay");
    TCase *tc = tcase_create("relay");
    tcase_add_test(tc, test_apply_remote_reaches_clients_and_store);
    tcase_add_test(tc, test_compare_repairs_both_ways);
    tcase_add_test(tc, test_awareness_typing_chat_cross);
    tcase_add_test(tc, test_bad_input_changes_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    (void)th_init; /* harness parts this suite does not use (node_init is its own) */
    (void)peer_has_error;
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
