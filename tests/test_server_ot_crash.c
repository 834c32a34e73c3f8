/* test_server_ot_crash.c - an OT operation that became durable but whose
 * OT_ACK never reached its client, because the real `tandem serve --dev`
 * (support/server_proc) was SIGKILLed in between, is applied exactly once.
 *
 *   catch-up: a C OT client (sync/client.h over support/sync_peer) sends an
 *     operation and does not read; the test waits until the store (opened
 *     read-only next to the running server) holds the operation's history
 *     record with the client's id and op id, SIGKILLs the server, restarts
 *     it on the same data directory, lets a CRDT client edit, and reconnects
 *     the OT client: the catch-up from storage names the client's operation
 *     (src / op_id), the client takes it as its ack, the text holds the
 *     operation once and client, CRDT peer and GET /text converge.
 *   resend: the same over raw frames with a client that resends its
 *     operation with the old base version right after the restart (without
 *     reading the catch-up first): the server finds (client id, op id) in
 *     its stored history, answers OT_ACK with the stored version and
 *     changes nothing.
 * Each kill comes only after the record is durable (the store shows it), so
 * both runs exercise the "stored but not acked" case, not a lost write.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "ot.h"
#include "server_proc.h"
#include "store.h"
#include "sync_peer.h"

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the tandem binary"
#endif

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct rec_find {
    uint64_t src, op_id;
    uint64_t version; /* found: the version the operation turns into + 1 */
    bool found;
} rec_find;

static int rec_match(void *ctx, const store_ot_rec *r)
{
    rec_find *f = ctx;
    if (r->src == f->src && r->op_id == f->op_id) {
        f->found = true;
        f->version = r->version;
        return 1;
    }
    return 0;
}

/* stored_op - is the operation (src, op_id) in room's stored OT history?
 * Reads the server's LMDB read-only while it runs (LMDB allows readers in
 * other processes). */
static bool stored_op(const srvp *s, const char *room, uint64_t src, uint64_t op_id,
                      uint64_t *version)
{
    store *st;
    store_opts o = {.read_only = true};
    if (store_open(s->data, &o, &st) != TDM_OK) return false;
    rec_find f = {.src = src, .op_id = op_id};
    tdm_err e = store_ot_range_rec(st, room, strlen(room), 0, rec_match, &f);
    store_close(st);
    if (e != TDM_OK && e != TDM_ERANGE) return false;
    if (f.found && version) *version = f.version;
    return f.found;
}

/* wait_stored - service x (so the frames go out and the answers are read
 * off the socket, but NOT handed to the client) until the operation is
 * durable. */
static bool wait_stored(wsc_ctx *x, const srvp *s, const char *room, uint64_t src, uint64_t op_id,
                        uint64_t *version)
{
    uint64_t end = srvp_mono_ms() + 15000;
    while (srvp_mono_ms() < end) {
        wsc_service(x, 5);
        if (stored_op(s, room, src, op_id, version)) return true;
        nap_ms(5);
    }
    return false;
}

/* the text of GET /api/rooms/{room}/text ({"room", "text"}), malloc'd */
static size_t count_sub(const char *hay, const char *needle)
{
    size_t c = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) c++;
    return c;
}

/* send what the client has queued without reading anything back */
static void send_only(np_peer *p)
{
    const uint8_t *f;
    size_t n;
    while (sync_client_next_out(p->cl, &f, &n)) {
        ck_assert(wsc_send(p->ws, f, n));
        sync_client_consume(p->cl);
    }
}

START_TEST(test_ot_op_durable_not_acked_catch_up)
{
    srvp s;
    ck_assert(srvp_start(&s, TANDEM_BIN));
    wsc_ctx *x = wsc_new();
    ck_assert_ptr_nonnull(x);
    const char *room = "otcrash";
    np_peer a, o;
    np_open(&a, x, s.port, room, 11, false, NULL);
    np_open(&o, x, s.port, room, 0x5eedcafe01ULL, true, NULL);
    np_peer *ao[] = {&a, &o};
    np_wait_converged(x, ao, 2, 15000);
    ck_assert_int_eq(crdt_doc_insert(a.doc, 0, "hello", 5), TDM_OK);
    ck_assert_int_eq(sync_client_flush(a.cl, a.ch), TDM_OK);
    np_wait_converged(x, ao, 2, 15000);

    /* the OT client's edit goes out; its ack is never read */
    ot_op *op;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 5), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, " world", 6), TDM_OK);
    ck_assert_int_eq(sync_client_ot_edit(o.cl, o.ch, op), TDM_OK);
    ot_op_free(op);
    ck_assert_int_eq(sync_client_ot_state(o.cl, o.ch), SYNC_OT_AWAITING_ACK);
    send_only(&o);
    uint64_t version = 0;
    ck_assert_msg(wait_stored(x, &s, room, o.client_id, 1, &version),
                  "the operation never showed up in the stored history");
    ck_assert_uint_eq(version, 1); /* "hello" was version 0 -> 1 */
    ck_assert_msg(srvp_kill9(&s), "SIGKILL did not end the server");
    np_drop(&o);
    np_drop(&a);
    ck_assert_int_eq(sync_client_ot_state(o.cl, o.ch), SYNC_OT_AWAITING_ACK);
    char *mine = np_text(&o);
    ck_assert_str_eq(mine, "hello world");
    free(mine);

    ck_assert(srvp_restart_opts(&s, TANDEM_BIN, NULL));
    char *txt = np_server_text(s.port, room);
    ck_assert_str_eq(txt, "hello world"); /* durable: survived the kill */
    free(txt);
    /* someone else edits before the OT client comes back */
    a.port = o.port = s.port;
    np_connect(&a);
    ck_assert(
        wsc_wait(x, (bool (*)(void *))np_all_synced, &(np_group){(np_peer *[]){&a}, 1}, 15000));
    ck_assert_int_eq(crdt_doc_insert(a.doc, 0, "> ", 2), TDM_OK);
    ck_assert_int_eq(sync_client_flush(a.cl, a.ch), TDM_OK);
    np_connect(&o);
    np_wait_converged(x, ao, 2, 15000);
    char *got = np_text(&o);
    ck_assert_str_eq(got, "> hello world");
    free(got);
    got = np_text(&a);
    ck_assert_str_eq(got, "> hello world");
    free(got);
    txt = np_server_text(s.port, room);
    ck_assert_str_eq(txt, "> hello world");
    ck_assert_uint_eq(count_sub(txt, "world"), 1);
    free(txt);
    ck_assert_uint_eq(o.errors, 0);
    ck_assert_uint_eq(sync_client_ot_version(o.cl, o.ch), 3);

    np_close(&a);
    np_close(&o);
    wsc_service(x, 50);
    np_free(&a);
    np_free(&o);
    wsc_free(x);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

/* a raw OT session: HELLO with client_id, SUBSCRIBE OT on channel 1 at
 * `version` (has_version) ; waits for SUBSCRIBED */
static wsc_conn *raw_ot(wsc_ctx *x, int port, const char *room, uint64_t client_id,
                        bool has_version, uint64_t version)
{
    wsc_conn *c = wsc_connect(x, "127.0.0.1", port, "/ws", "tandem.v1");
    ck_assert_ptr_nonnull(c);
    syncm hi = {.type = SYNCM_HELLO,
                .proto = SYNCM_PROTOCOL_VERSION,
                .caps = SYNC_CAP_ALL,
                .client_id = client_id};
    np_raw_send(c, &hi);
    np_raw r;
    ck_assert(np_raw_until(x, c, SYNCM_WELCOME, &r, 10000));
    np_raw_free(&r);
    syncm sub = {.type = SYNCM_SUBSCRIBE,
                 .channel = 1,
                 .name = {(const uint8_t *)room, strlen(room)},
                 .mode = SYNC_MODE_OT,
                 .has_version = has_version,
                 .version = version};
    np_raw_send(c, &sub);
    ck_assert(np_raw_until(x, c, SYNCM_SUBSCRIBED, &r, 10000));
    np_raw_free(&r);
    return c;
}

START_TEST(test_ot_op_durable_not_acked_resend)
{
    srvp s;
    ck_assert(srvp_start(&s, TANDEM_BIN));
    wsc_ctx *x = wsc_new();
    ck_assert_ptr_nonnull(x);
    const char *room = "otresend";
    const uint64_t me = 0x7e5e9d01ULL;
    wsc_conn *c = raw_ot(x, s.port, room, me, false, 0);
    ot_op *op;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "once", 4), TDM_OK);
    syncm m = {.type = SYNCM_OT_OP, .channel = 1, .version = 0, .op_id = 3, .op = op};
    np_raw_send(c, &m);
    uint64_t version = 99;
    ck_assert(wait_stored(x, &s, room, me, 3, &version));
    ck_assert_uint_eq(version, 0);
    ck_assert_msg(srvp_kill9(&s), "SIGKILL did not end the server");
    wsc_drop(c);

    ck_assert(srvp_restart_opts(&s, TANDEM_BIN, NULL));
    /* back with the version it held (0) and at once the same operation
     * again, before reading anything */
    c = raw_ot(x, s.port, room, me, true, 0);
    np_raw_send(c, &m);
    np_raw r;
    /* the catch-up shows the operation as ours ... */
    ck_assert(np_raw_until(x, c, SYNCM_OT_REMOTE, &r, 10000));
    ck_assert_uint_eq(r.m.version, 1);
    ck_assert_uint_eq(r.m.src, me);
    ck_assert_uint_eq(r.m.op_id, 3);
    np_raw_free(&r);
    /* ... and the resend is acked with the version it made, not applied */
    ck_assert(np_raw_until(x, c, SYNCM_OT_ACK, &r, 10000));
    ck_assert_uint_eq(r.m.op_id, 3);
    ck_assert_uint_eq(r.m.version, 1);
    np_raw_free(&r);
    char *txt = np_server_text(s.port, room);
    ck_assert_str_eq(txt, "once");
    free(txt);
    /* still once after a clean restart (nothing else was stored) */
    wsc_close(c);
    wsc_service(x, 50);
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    int st = 0;
    ck_assert_int_eq(waitpid(s.pid, &st, 0), s.pid);
    s.pid = 0;
    ck_assert(srvp_restart_opts(&s, TANDEM_BIN, NULL));
    txt = np_server_text(s.port, room);
    ck_assert_str_eq(txt, "once");
    free(txt);
    ot_op_free(op);
    wsc_free(x);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server_ot_crash");
    TCase *tc = tcase_create("sigkill");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ot_op_durable_not_acked_catch_up);
    tcase_add_test(tc, test_ot_op_durable_not_acked_resend);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
