/* test_sync.c - sync/session.h and sync/client.h wired in-process: CRDT
 * clients converging through a server (also with dropped, reordered and
 * duplicated frames across reconnects), durable acks, chunked first sync,
 * read-only refusal, CRDT and OT clients in one document, OT catch-up and
 * too-far-behind, chat (dedup, monotonic ids, history, replay), typing
 * expiry, awareness removal on close, malformed frames, backpressure, room
 * loading and eviction. The host is in memory (test_sync_harness.h). */
#include "test_sync_harness.h"

#include "msg.h"
#include "utf8.h"

/* ------------------------------------------------------------ helpers */

static void ins(peer *p, size_t pos, const char *s)
{
    ck_assert_int_eq(crdt_doc_insert(p->doc, pos, s, strlen(s)), TDM_OK);
    ck_assert_int_eq(sync_client_flush(p->cl, p->ch), TDM_OK);
}

static void random_edit(peer *p, uint64_t *rng)
{
    size_t len = crdt_doc_len(p->doc);
    if (len > 4 && rnd(rng) % 3 == 0) {
        size_t pos = rnd(rng) % len;
        size_t n = 1 + rnd(rng) % 3;
        if (pos + n > len) n = len - pos;
        ck_assert_int_eq(crdt_doc_delete(p->doc, pos, n), TDM_OK);
    } else {
        static const char *words[] = {"a", "bc", "def", "\xc3\xa9", "\xe2\x82\xac", "xyz!"};
        const char *w = words[rnd(rng) % 6];
        ck_assert_int_eq(crdt_doc_insert(p->doc, rnd(rng) % (len + 1), w, strlen(w)), TDM_OK);
    }
    ck_assert_int_eq(sync_client_flush(p->cl, p->ch), TDM_OK);
}

static void expect_converged(th *h, peer **ps, size_t n, const char *name)
{
    char *want = room_text(h, name);
    for (size_t i = 0; i < n; i++) {
        char *got = doc_text(ps[i]->doc);
        ck_assert_str_eq(got, want);
        free(got);
        ck_assert_uint_eq(sync_client_unacked(ps[i]->cl, ps[i]->ch), 0);
    }
    free(want);
}

static void sub_crdt(peer *p, const char *name)
{
    ck_assert_int_eq(sync_client_subscribe_crdt(p->cl, name, p->doc, false, &p->ch), TDM_OK);
}

/* raw sessions: encode and feed a message; decode everything queued */
static tdm_err raw_send(sync_session *ss, const syncm *m)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(syncm_encode(m, &b), TDM_OK);
    tdm_err e = sync_session_recv(ss, b.data, b.len, 0);
    tbuf_fini(&b);
    return e;
}

/* frames decoded by raw_drain point into copies kept here until raw_clear */
static uint8_t *raw_copies[256];

static size_t raw_drain(sync_session *ss, syncm *out, size_t max)
{
    size_t n = 0;
    const uint8_t *p;
    size_t len;
    while (sync_session_next_out(ss, &p, &len)) {
        if (n < max && n < 256) {
            raw_copies[n] = malloc(len);
            memcpy(raw_copies[n], p, len);
            ck_assert_int_eq(syncm_decode(raw_copies[n], len, SYNCM_MAX_FRAME, &out[n]), TDM_OK);
            n++;
        }
        sync_session_consume(ss);
    }
    return n;
}

static void raw_clear(syncm *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        syncm_clear(&v[i]);
        free(raw_copies[i]);
        raw_copies[i] = NULL;
    }
}

static sync_session *raw_hello(th *h, const char *token)
{
    sync_session *ss;
    ck_assert_int_eq(sync_session_new(h->srv, 0, &ss), TDM_OK);
    syncm hi = {.type = SYNCM_HELLO, .proto = 1, .caps = SYNC_CAP_ALL, .client_id = 77};
    if (token) hi.token = (syncm_str){(const uint8_t *)token, strlen(token)};
    ck_assert_int_eq(raw_send(ss, &hi), TDM_OK);
    syncm out[4];
    size_t n = raw_drain(ss, out, 4);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(out[0].type, SYNCM_WELCOME);
    raw_clear(out, n);
    return ss;
}

/* ------------------------------------------------------------ CRDT basics */

START_TEST(test_two_clients)
{
    th h;
    th_init(&h, NULL);
    peer a, b;
    peer_init(&a, 1, "alice:w");
    peer_init(&b, 2, "bob:w");
    peer *ps[] = {&a, &b};
    sub_crdt(&a, "doc");
    sub_crdt(&b, "doc");
    peer_connect(&h, &a, 0);
    peer_connect(&h, &b, 0);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.welcome, 1);
    ck_assert_uint_eq(a.synced, 1);
    ck_assert_uint_eq(b.synced, 1);
    ins(&a, 0, "hello");
    net_run(&h, ps, 2, NULL, 0);
    char *t = doc_text(b.doc);
    ck_assert_str_eq(t, "hello");
    free(t);
    /* concurrent edits */
    ins(&a, 0, "A:");
    ins(&b, 5, " world");
    net_run(&h, ps, 2, NULL, 0);
    expect_converged(&h, ps, 2, "doc");
    t = doc_text(a.doc);
    ck_assert_str_eq(t, "A:hello world");
    free(t);
    ck_assert_uint_eq(a.acks, 2);
    ck_assert_uint_eq(b.acks, 1);
    ck_assert_uint_eq(a.nerr + b.nerr, 0);
    peer_disconnect(&a, 0);
    peer_disconnect(&b, 0);
    peer_fini(&a);
    peer_fini(&b);
    th_fini(&h);
}
END_TEST

START_TEST(test_durable_acks)
{
    th h;
    th_init(&h, NULL);
    peer a, b;
    peer_init(&a, 1, "alice:w");
    peer_init(&b, 2, "bob:w");
    peer *ps[] = {&a, &b};
    sub_crdt(&a, "doc");
    sub_crdt(&b, "doc");
    peer_connect(&h, &a, 0);
    peer_connect(&h, &b, 0);
    net_run(&h, ps, 2, NULL, 0);

    h.hold = true;
    ins(&a, 0, "one");
    ins(&a, 3, " two");
    net_run(&h, ps, 2, NULL, 0);
    /* broadcast did not wait, acks did */
    char *t = doc_text(b.doc);
    ck_assert_str_eq(t, "one two");
    free(t);
    ck_assert_uint_eq(a.acks, 0);
    ck_assert_uint_eq(sync_client_unacked(a.cl, a.ch), 2);
    ck_assert_uint_eq(h.ntoks, 2);
    /* a duplicate of an update whose write is still pending waits too */
    sync_client_disconnect(a.cl);
    sync_session_close(a.ss, 0);
    a.ss = NULL;
    peer_connect(&h, &a, 0); /* resends both unacked updates */
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.acks, 0);
    ck_assert_uint_eq(h.ntoks, 2); /* duplicates are not written again */
    /* release: now (and only now) the acks go out */
    h.hold = false;
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.acks, 2);
    ck_assert_uint_eq(sync_client_unacked(a.cl, a.ch), 0);
    /* re-sending an acked update is harmless: acked again */
    size_t persists = h.persists;
    const hdoc *d = th_doc(&h, "doc", false);
    syncm up = {.type = SYNCM_UPDATE,
                .channel = a.ch,
                .seq = 99,
                .data = {d->updates[0].p, d->updates[0].n}};
    ck_assert_int_eq(raw_send(a.ss, &up), TDM_OK);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.acks, 3);
    ck_assert_uint_eq(h.persists, persists);
    expect_converged(&h, ps, 2, "doc");

    /* a failed write: ERROR STORAGE naming the seq, kept for a retry */
    h.fail_durable = 1;
    ins(&b, 0, "x");
    net_run(&h, ps, 2, NULL, 0);
    ck_assert(peer_has_error(&b, SYNC_ERR_STORAGE));
    ck_assert_uint_eq(sync_client_unacked(b.cl, b.ch), 1);
    ck_assert_int_eq(sync_client_retry(b.cl), TDM_OK);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(sync_client_unacked(b.cl, b.ch), 0);
    /* a write refused at once: same */
    h.fail_persist = 1;
    ins(&b, 0, "y");
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(sync_client_unacked(b.cl, b.ch), 1);
    ck_assert_int_eq(sync_client_retry(b.cl), TDM_OK);
    net_run(&h, ps, 2, NULL, 0);
    expect_converged(&h, ps, 2, "doc");

    peer_disconnect(&a, 0);
    peer_disconnect(&b, 0);
    peer_fini(&a);
    peer_fini(&b);
    th_fini(&h);
}
END_TEST

START_TEST(test_read_only)
{
    th h;
    th_init(&h, NULL);
    peer a, b;
    peer_init(&a, 1, "alice:w");
    peer_init(&b, 2, "bob:r");
    peer *ps[] = {&a, &b};
    sub_crdt(&a, "doc");
    sub_crdt(&b, "doc");
    peer_connect(&h, &a, 0);
    peer_connect(&h, &b, 0);
    net_run(&h, ps, 2, NULL, 0);
    ins(&a, 0, "shared");
    net_run(&h, ps, 2, NULL, 0);
    uint64_t v = sync_server_room_version(h.srv, "doc");
    ins(&b, 0, "nope ");
    net_run(&h, ps, 2, NULL, 0);
    ck_assert(peer_has_error(&b, SYNC_ERR_NOT_ALLOWED));
    ck_assert_uint_eq(b.err_refs[0], 1); /* names the refused seq */
    char *t = room_text(&h, "doc");
    ck_assert_str_eq(t, "shared");
    free(t);
    t = doc_text(a.doc);
    ck_assert_str_eq(t, "shared");
    free(t);
    ck_assert_uint_eq(sync_server_room_version(h.srv, "doc"), v);
    ck_assert_uint_eq(sync_client_unacked(b.cl, b.ch), 0); /* never acceptable: dropped */
    /* no access at all */
    peer c;
    peer_init(&c, 3, "carol:n");
    sub_crdt(&c, "doc");
    peer_connect(&h, &c, 0);
    peer *pc[] = {&c};
    net_run(&h, pc, 1, NULL, 0);
    ck_assert(peer_has_error(&c, SYNC_ERR_NOT_ALLOWED));
    ck_assert_uint_eq(c.synced, 0);
    peer_disconnect(&a, 0);
    peer_disconnect(&b, 0);
    peer_disconnect(&c, 0);
    peer_fini(&a);
    peer_fini(&b);
    peer_fini(&c);
    th_fini(&h);
}
END_TEST

START_TEST(test_chunked_first_sync)
{
    th h;
    th_init(&h, NULL);
    peer a, c;
    peer_init(&a, 1, "alice:w");
    peer_init(&c, 3, "carol:w");
    peer *ps[] = {&a};
    sub_crdt(&a, "big");
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 1, NULL, 0);
    /* ~400 KB of text in 20 KB edits */
    char piece[20001];
    for (int k = 0; k < 20; k++) {
        for (int i = 0; i < 20000; i++) piece[i] = (char)('a' + (i + k) % 26);
        piece[20000] = '\0';
        ins(&a, crdt_doc_len(a.doc), piece);
        net_run(&h, ps, 1, NULL, 0);
    }
    /* carol's first sync: watch every frame */
    sub_crdt(&c, "big");
    peer_connect(&h, &c, 0);
    size_t chunks = 0, max_queued = 0;
    uint64_t expect_off = 0;
    for (int round = 0; round < 1000; round++) {
        const uint8_t *p;
        size_t n, moved = 0;
        while (sync_client_next_out(c.cl, &p, &n)) {
            sync_session_recv(c.ss, p, n, 0);
            sync_client_consume(c.cl);
            moved++;
        }
        if (sync_session_out_bytes(c.ss) > max_queued) max_queued = sync_session_out_bytes(c.ss);
        while (sync_session_next_out(c.ss, &p, &n)) {
            syncm m;
            ck_assert_int_eq(syncm_decode(p, n, SYNCM_MAX_FRAME, &m), TDM_OK);
            if (m.type == SYNCM_UPDATE_CHUNK) {
                ck_assert_uint_le(n, SYNCM_CHUNK_FRAME);
                ck_assert_uint_eq(m.offset, expect_off);
                expect_off += m.data.n;
                chunks++;
            }
            syncm_clear(&m);
            uint8_t *copy = malloc(n);
            memcpy(copy, p, n);
            sync_session_consume(c.ss);
            sync_client_recv(c.cl, copy, n, 0);
            free(copy);
            moved++;
        }
        if (!moved) break;
    }
    ck_assert_uint_ge(chunks, 6);
    ck_assert_uint_le(max_queued, 3 * SYNCM_CHUNK_FRAME); /* produced as the queue drains */
    ck_assert_uint_eq(c.synced, 1);
    ck_assert_uint_eq(c.progress_done, c.progress_total);
    ck_assert_uint_eq(c.progress_total, expect_off);
    ck_assert_uint_ge(c.progress_calls, chunks);
    char *ta = doc_text(a.doc), *tc = doc_text(c.doc);
    ck_assert_uint_eq(strlen(tc), 400000);
    ck_assert_str_eq(ta, tc);
    free(ta);
    free(tc);
    peer_disconnect(&a, 0);
    peer_disconnect(&c, 0);
    peer_fini(&a);
    peer_fini(&c);
    th_fini(&h);
}
END_TEST

/* ------------------------------------------------------------ faults */

static void fault_run(unsigned npeers, uint64_t seed, unsigned rounds)
{
    th h;
    th_init(&h, NULL);
    peer pv[3];
    peer *ps[3];
    for (unsigned i = 0; i < npeers; i++) {
        char tok[16];
        snprintf(tok, sizeof tok, "u%u:w", i);
        peer_init(&pv[i], 10 + i, tok);
        ps[i] = &pv[i];
        sub_crdt(ps[i], "doc");
        peer_connect(&h, ps[i], 0);
    }
    net_run(&h, ps, npeers, NULL, 0);
    uint64_t rng = seed;
    faults f = {.drop = 150, .dup = 150, .reorder = 300, .rng = seed * 7 + 1};
    for (unsigned r = 0; r < rounds; r++) {
        peer *p = ps[rnd(&rng) % npeers];
        unsigned edits = 1 + rnd(&rng) % 3;
        for (unsigned k = 0; k < edits; k++) random_edit(p, &rng);
        if (rnd(&rng) % 4 == 0) h.hold = !h.hold; /* writes complete late */
        net_run(&h, ps, npeers, &f, 0);
        if (rnd(&rng) % 5 == 0) {
            /* reconnect: a new session; unacked updates are resent */
            peer *q = ps[rnd(&rng) % npeers];
            peer_disconnect(q, 0);
            peer_connect(&h, q, 0);
        }
    }
    /* heal: clean network, everyone reconnects once */
    h.hold = false;
    for (unsigned i = 0; i < npeers; i++) {
        peer_disconnect(ps[i], 0);
        peer_connect(&h, ps[i], 0);
        net_run(&h, ps, npeers, NULL, 0);
    }
    net_run(&h, ps, npeers, NULL, 0);
    expect_converged(&h, ps, npeers, "doc");
    /* and the stored log rebuilds the same document */
    crdt_doc *re;
    crdt_doc_opts o = {.client = 5};
    sync_room_info info;
    ck_assert_int_eq(h_load(&h, "doc", &o, &re, &info), SYNC_LOAD_OK);
    char *a = doc_text(re), *b = room_text(&h, "doc");
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    crdt_doc_free(re);
    for (unsigned i = 0; i < npeers; i++) {
        peer_disconnect(ps[i], 0);
        peer_fini(ps[i]);
    }
    th_fini(&h);
}

START_TEST(test_faults_two)
{
    for (uint64_t seed = 1; seed <= 6; seed++) fault_run(2, seed * 7919, 60);
}
END_TEST

START_TEST(test_faults_three)
{
    for (uint64_t seed = 1; seed <= 6; seed++) fault_run(3, seed * 104729, 80);
}
END_TEST

/* ------------------------------------------------------------ hostile */

START_TEST(test_malformed_frames)
{
    th h;
    th_init(&h, NULL);
    peer a;
    peer_init(&a, 1, "alice:w");
    peer *ps[] = {&a};
    sub_crdt(&a, "doc");
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 1, NULL, 0);
    ins(&a, 0, "keep me");
    net_run(&h, ps, 1, NULL, 0);
    uint64_t v = sync_server_room_version(h.srv, "doc");
    size_t persists = h.persists;

    sync_session *ss = raw_hello(&h, "mallory:w");
    syncm sub = {.type = SYNCM_SUBSCRIBE,
                 .channel = 5,
                 .name = {(const uint8_t *)"doc", 3},
                 .mode = SYNC_MODE_CRDT,
                 .sv = crdt_sv_new()};
    ck_assert_int_eq(raw_send(ss, &sub), TDM_OK);
    crdt_sv_free(sub.sv);
    syncm out[32];
    size_t n = raw_drain(ss, out, 32);
    ck_assert_uint_ge(n, 2);
    raw_clear(out, n);

    /* garbage, truncated frames, wrong shapes, trailing bytes */
    static const uint8_t junk[][8] = {
        {0xff}, {0x84, 0x16, 0x05}, {0xa1, 0x00, 0x00}, {0x83, 0x17, 0x05, 0x01, 0x00}};
    static const size_t jl[] = {1, 3, 3, 5};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(sync_session_recv(ss, junk[i], jl[i], 0), TDM_EMALFORMED);
        n = raw_drain(ss, out, 32);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(out[0].type, SYNCM_ERROR);
        ck_assert_uint_eq(out[0].code, SYNC_ERR_MALFORMED);
        raw_clear(out, n);
    }
    /* a well-formed frame carrying a bad update: ERROR naming the seq */
    syncm up = {.type = SYNCM_UPDATE,
                .channel = 5,
                .seq = 7,
                .data = {(const uint8_t *)"\x83\x01\x02\x03", 4}};
    ck_assert_int_ne(raw_send(ss, &up), TDM_OK);
    n = raw_drain(ss, out, 32);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(out[0].code, SYNC_ERR_MALFORMED);
    ck_assert_uint_eq(out[0].ref, 7);
    ck_assert_uint_eq(out[0].channel, 5);
    raw_clear(out, n);
    /* unknown channel; unknown message type (ignored, no answer) */
    up.channel = 9;
    ck_assert_int_eq(raw_send(ss, &up), TDM_ENOTFOUND);
    n = raw_drain(ss, out, 32);
    ck_assert_uint_eq(out[0].code, SYNC_ERR_UNKNOWN_CHANNEL);
    raw_clear(out, n);
    static const uint8_t unk[] = {0x83, 0x18, 0xc8, 0x01, 0x02};
    ck_assert_int_eq(sync_session_recv(ss, unk, sizeof unk, 0), TDM_OK);
    ck_assert_uint_eq(raw_drain(ss, out, 32), 0);
    /* a server-only message from a client */
    syncm ack = {.type = SYNCM_ACK, .channel = 5, .seq = 1};
    raw_send(ss, &ack);
    n = raw_drain(ss, out, 32);
    ck_assert_uint_eq(out[0].code, SYNC_ERR_BAD_STATE);
    raw_clear(out, n);
    /* an oversized frame */
    size_t big = SYNCM_DEFAULT_FRAME + 10;
    uint8_t *bp = calloc(big, 1);
    ck_assert_int_eq(sync_session_recv(ss, bp, big, 0), TDM_ETOOBIG);
    free(bp);
    n = raw_drain(ss, out, 32);
    ck_assert_uint_eq(out[0].code, SYNC_ERR_TOO_BIG);
    raw_clear(out, n);
    /* a mutated stream of frames: never crashes, never changes the room */
    uint64_t rng = 99;
    tbuf b;
    tbuf_init(&b, 0);
    syncm okup = {
        .type = SYNCM_UPDATE, .channel = 5, .seq = 8, .data = {(const uint8_t *)"\x80", 1}};
    ck_assert_int_eq(syncm_encode(&okup, &b), TDM_OK);
    for (int i = 0; i < 2000; i++) {
        uint8_t f[16];
        size_t fl = b.len < 16 ? b.len : 16;
        memcpy(f, b.data, fl);
        f[rnd(&rng) % fl] = (uint8_t)rnd(&rng);
        sync_session_recv(ss, f, 1 + rnd(&rng) % fl, 0);
        n = raw_drain(ss, out, 32);
        raw_clear(out, n < 32 ? n : 32);
    }
    tbuf_fini(&b);
    char *t = room_text(&h, "doc");
    ck_assert_str_eq(t, "keep me");
    free(t);
    ck_assert_uint_eq(sync_server_room_version(h.srv, "doc"), v);
    ck_assert_uint_eq(h.persists, persists);
    ck_assert(!sync_session_closing(ss, NULL));
    sync_session_close(ss, 0);
    peer_disconnect(&a, 0);
    peer_fini(&a);
    th_fini(&h);
}
END_TEST

START_TEST(test_hello_rules)
{
    th h;
    th_init(&h, NULL);
    sync_session *ss;
    syncm out[8];
    /* anything before HELLO */
    ck_assert_int_eq(sync_session_new(h.srv, 0, &ss), TDM_OK);
    syncm ping = {.type = SYNCM_PING, .nonce = 1};
    raw_send(ss, &ping);
    size_t n = raw_drain(ss, out, 8);
    ck_assert_uint_eq(out[0].code, SYNC_ERR_BAD_STATE);
    raw_clear(out, n);
    /* a version the server does not speak */
    syncm hi = {.type = SYNCM_HELLO, .proto = 2};
    ck_assert_int_eq(raw_send(ss, &hi), TDM_EVERSION);
    n = raw_drain(ss, out, 8);
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_eq(out[0].code, SYNC_ERR_VERSION_MISMATCH);
    raw_clear(out, n);
    sync_close_reason why;
    ck_assert(sync_session_closing(ss, &why));
    ck_assert_int_eq(why, SYNC_CLOSE_PROTOCOL);
    sync_session_close(ss, 0);
    /* pre-HELLO frames are capped small */
    ck_assert_int_eq(sync_session_new(h.srv, 0, &ss), TDM_OK);
    uint8_t *big = calloc(10000, 1);
    ck_assert_int_eq(sync_session_recv(ss, big, 10000, 0), TDM_ETOOBIG);
    free(big);
    n = raw_drain(ss, out, 8);
    raw_clear(out, n);
    /* HELLO timeout and idle timeout */
    ck_assert_int_eq(sync_server_tick(h.srv, 10000), TDM_OK);
    ck_assert(sync_session_closing(ss, &why));
    ck_assert_int_eq(why, SYNC_CLOSE_HELLO_TIMEOUT);
    sync_session_close(ss, 0);
    ss = raw_hello(&h, NULL);
    ck_assert_int_eq(raw_send(ss, &ping), TDM_OK);
    n = raw_drain(ss, out, 8);
    ck_assert_int_eq(out[0].type, SYNCM_PONG);
    ck_assert_uint_eq(out[0].nonce, 1);
    raw_clear(out, n);
    sync_server_tick(h.srv, 119999);
    ck_assert(!sync_session_closing(ss, NULL));
    sync_server_tick(h.srv, 120000);
    ck_assert(sync_session_closing(ss, &why));
    ck_assert_int_eq(why, SYNC_CLOSE_IDLE);
    sync_session_close(ss, 0);
    th_fini(&h);
}
END_TEST

/* ------------------------------------------------------------ OT */

static ot_op *mk_ins(size_t len, size_t pos, const char *text)
{
    ot_op *op;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, pos), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, text, strlen(text)), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, len - pos), TDM_OK);
    return op;
}

static size_t ot_len(peer *p, uint32_t ch)
{
    char *t = ot_text(p, ch);
    size_t n = utf8_count((const uint8_t *)t, strlen(t));
    free(t);
    return n;
}

static void ot_ins(peer *p, uint32_t ch, size_t pos, const char *text)
{
    ot_op *op = mk_ins(ot_len(p, ch), pos, text);
    ck_assert_int_eq(sync_client_ot_edit(p->cl, ch, op), TDM_OK);
    ot_op_free(op);
}

static void ot_random_edit(peer *p, uint32_t ch, uint64_t *rng)
{
    size_t len = ot_len(p, ch);
    ot_op *op;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    size_t pos = rnd(rng) % (len + 1);
    ck_assert_int_eq(ot_op_retain(op, pos), TDM_OK);
    if (len - pos > 2 && rnd(rng) % 3 == 0) {
        size_t n = 1 + rnd(rng) % 2;
        ck_assert_int_eq(ot_op_delete(op, n), TDM_OK);
        ck_assert_int_eq(ot_op_retain(op, len - pos - n), TDM_OK);
    } else {
        static const char *words[] = {"O", "tt", "\xc3\xb6", "\xf0\x9f\x98\x80", "ot!"};
        const char *w = words[rnd(rng) % 5];
        ck_assert_int_eq(ot_op_insert(op, w, strlen(w)), TDM_OK);
        ck_assert_int_eq(ot_op_retain(op, len - pos), TDM_OK);
    }
    ck_assert_int_eq(sync_client_ot_edit(p->cl, ch, op), TDM_OK);
    ot_op_free(op);
}

static void expect_ot(th *h, peer *p, uint32_t ch, const char *name)
{
    char *want = room_text(h, name), *got = ot_text(p, ch);
    ck_assert_str_eq(got, want);
    free(want);
    free(got);
    ck_assert_uint_eq(sync_client_ot_version(p->cl, ch), sync_server_room_version(h->srv, name));
    ck_assert_int_eq(sync_client_ot_state(p->cl, ch), SYNC_OT_SYNCHRONIZED);
}

START_TEST(test_ot_basic)
{
    th h;
    th_init(&h, NULL);
    peer a, o;
    peer_init(&a, 1, "alice:w");
    peer_init(&o, 2, "olga:w");
    peer *ps[] = {&a, &o};
    sub_crdt(&a, "doc");
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 1, NULL, 0);
    ins(&a, 0, "hello world");
    net_run(&h, ps, 1, NULL, 0);
    uint32_t ch;
    ck_assert_int_eq(sync_client_subscribe_ot(o.cl, "doc", false, &ch), TDM_OK);
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(o.synced, 1);
    expect_ot(&h, &o, ch, "doc");
    ck_assert_uint_eq(sync_client_ot_version(o.cl, ch), 1);
    /* OT edit reaches the CRDT client and bumps the version */
    ot_ins(&o, ch, 5, ",");
    ck_assert_int_eq(sync_client_ot_state(o.cl, ch), SYNC_OT_AWAITING_ACK);
    ot_ins(&o, ch, 12, "!");
    ck_assert_int_eq(sync_client_ot_state(o.cl, ch), SYNC_OT_AWAITING_WITH_BUFFER);
    net_run(&h, ps, 2, NULL, 0);
    char *t = doc_text(a.doc);
    ck_assert_str_eq(t, "hello, world!");
    free(t);
    expect_ot(&h, &o, ch, "doc");
    ck_assert_uint_eq(sync_client_ot_version(o.cl, ch), 3);
    /* CRDT edit reaches the OT client as an operation */
    ins(&a, 0, ">> ");
    net_run(&h, ps, 2, NULL, 0);
    expect_ot(&h, &o, ch, "doc");
    ck_assert_uint_eq(sync_client_ot_version(o.cl, ch), 4);
    /* the OT history is stored with the document: one op per version */
    ck_assert_uint_eq(th_doc(&h, "doc", false)->nops, 4);
    /* a read-only OT client cannot submit */
    peer r;
    peer_init(&r, 3, "rita:r");
    peer *pr[] = {&r};
    uint32_t rch;
    ck_assert_int_eq(sync_client_subscribe_ot(r.cl, "doc", false, &rch), TDM_OK);
    peer_connect(&h, &r, 0);
    net_run(&h, pr, 1, NULL, 0);
    ot_ins(&r, rch, 0, "no");
    net_run(&h, pr, 1, NULL, 0);
    ck_assert(peer_has_error(&r, SYNC_ERR_NOT_ALLOWED));
    net_run(&h, pr, 1, NULL, 0);
    expect_ot(&h, &r, rch, "doc"); /* resynchronized from a snapshot */
    peer_disconnect(&a, 0);
    peer_disconnect(&o, 0);
    peer_disconnect(&r, 0);
    peer_fini(&a);
    peer_fini(&o);
    peer_fini(&r);
    th_fini(&h);
}
END_TEST

static void mixed_run(uint64_t seed, bool hold_sometimes)
{
    th h;
    th_init(&h, NULL);
    peer a, b, o1, o2;
    peer_init(&a, 1, "a:w");
    peer_init(&b, 2, "b:w");
    peer_init(&o1, 3, "o1:w");
    peer_init(&o2, 4, "o2:w");
    peer *ps[] = {&a, &b, &o1, &o2};
    sub_crdt(&a, "mix");
    sub_crdt(&b, "mix");
    uint32_t c1, c2;
    ck_assert_int_eq(sync_client_subscribe_ot(o1.cl, "mix", false, &c1), TDM_OK);
    ck_assert_int_eq(sync_client_subscribe_ot(o2.cl, "mix", false, &c2), TDM_OK);
    for (int i = 0; i < 4; i++) peer_connect(&h, ps[i], 0);
    net_run(&h, ps, 4, NULL, 0);
    uint64_t rng = seed;
    for (int round = 0; round < 120; round++) {
        /* several peers edit before anything is delivered: concurrency */
        int edits = 1 + (int)(rnd(&rng) % 4);
        for (int k = 0; k < edits; k++) {
            int who = (int)(rnd(&rng) % 4);
            if (who < 2)
                random_edit(ps[who], &rng);
            else
                ot_random_edit(ps[who], who == 2 ? c1 : c2, &rng);
        }
        if (hold_sometimes) h.hold = rnd(&rng) % 3 == 0;
        /* deliver some peers first, then the others */
        int first = (int)(rnd(&rng) % 4);
        net_run(&h, &ps[first], 1, NULL, 0);
        net_run(&h, ps, 4, NULL, 0);
    }
    h.hold = false;
    net_run(&h, ps, 4, NULL, 0);
    peer *crdt[] = {&a, &b};
    expect_converged(&h, crdt, 2, "mix");
    expect_ot(&h, &o1, c1, "mix");
    expect_ot(&h, &o2, c2, "mix");
    ck_assert_uint_eq(o1.nerr + o2.nerr + a.nerr + b.nerr, 0);
    for (int i = 0; i < 4; i++) {
        peer_disconnect(ps[i], 0);
        peer_fini(ps[i]);
    }
    th_fini(&h);
}

START_TEST(test_crdt_and_ot_concurrent)
{
    for (uint64_t seed = 1; seed <= 5; seed++) mixed_run(seed * 31337, false);
    for (uint64_t seed = 1; seed <= 5; seed++) mixed_run(seed * 65537, true);
}
END_TEST

START_TEST(test_ot_reconnect_catch_up)
{
    th h;
    sync_server_opts so = {.ot_history = 4, .hash_seed = 1};
    th_init(&h, &so);
    peer a, o;
    peer_init(&a, 1, "a:w");
    peer_init(&o, 2, "o:w");
    peer *ps[] = {&a, &o};
    sub_crdt(&a, "doc");
    uint32_t ch;
    ck_assert_int_eq(sync_client_subscribe_ot(o.cl, "doc", false, &ch), TDM_OK);
    peer_connect(&h, &a, 0);
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    ins(&a, 0, "base");
    net_run(&h, ps, 2, NULL, 0);
    /* offline OT edit, while the CRDT side moves on by 3 versions (from memory) */
    peer_disconnect(&o, 0);
    ot_ins(&o, ch, 4, "+ot");
    for (int i = 0; i < 3; i++) ins(&a, 0, "c");
    net_run(&h, ps, 1, NULL, 0);
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    expect_ot(&h, &o, ch, "doc");
    char *t = room_text(&h, "doc");
    ck_assert_str_eq(t, "cccbase+ot");
    free(t);
    /* again, 10 versions behind: memory keeps 4, the host's history has them */
    peer_disconnect(&o, 0);
    ot_ins(&o, ch, 0, "[");
    for (int i = 0; i < 10; i++) ins(&a, crdt_doc_len(a.doc), "d");
    net_run(&h, ps, 1, NULL, 0);
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    expect_ot(&h, &o, ch, "doc");
    ck_assert_uint_eq(o.nerr, 0);
    /* and with the host's history trimmed: too far behind, snapshot, the
     * local operation comes back in the error */
    peer_disconnect(&o, 0);
    ot_ins(&o, ch, 0, "lost");
    for (int i = 0; i < 10; i++) ins(&a, 0, "e");
    net_run(&h, ps, 1, NULL, 0);
    h.ot_trim = sync_server_room_version(h.srv, "doc");
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert(peer_has_error(&o, SYNC_ERR_TOO_FAR_BEHIND));
    ck_assert_ptr_nonnull(o.err_op);
    ot_op *want = mk_ins(ot_op_base_len(o.err_op), 0, "lost");
    ck_assert(ot_op_equal(o.err_op, want));
    ot_op_free(want);
    expect_ot(&h, &o, ch, "doc");
    t = room_text(&h, "doc");
    ck_assert_ptr_null(strstr(t, "lost"));
    free(t);
    peer_disconnect(&a, 0);
    peer_disconnect(&o, 0);
    peer_fini(&a);
    peer_fini(&o);
    th_fini(&h);
}
END_TEST

START_TEST(test_ot_own_op_in_catch_up)
{
    /* the op was applied, its ack was lost with the connection: the
     * catch-up shows it with our id and it counts as the ack, not twice */
    th h;
    th_init(&h, NULL);
    peer a, o;
    peer_init(&a, 1, "a:w");
    peer_init(&o, 2, "o:w");
    peer *ps[] = {&a, &o};
    sub_crdt(&a, "doc");
    uint32_t ch;
    ck_assert_int_eq(sync_client_subscribe_ot(o.cl, "doc", false, &ch), TDM_OK);
    peer_connect(&h, &a, 0);
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    h.hold = true;
    ot_ins(&o, ch, 0, "once");
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_int_eq(sync_client_ot_state(o.cl, ch), SYNC_OT_AWAITING_ACK);
    peer_disconnect(&o, 0);
    h.hold = false;
    ins(&a, 4, "!");
    net_run(&h, ps, 1, NULL, 0);
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    expect_ot(&h, &o, ch, "doc");
    char *t = room_text(&h, "doc");
    ck_assert_str_eq(t, "once!");
    free(t);
    peer_disconnect(&a, 0);
    peer_disconnect(&o, 0);
    peer_fini(&a);
    peer_fini(&o);
    th_fini(&h);
}
END_TEST

START_TEST(test_ot_gap_resync)
{
    /* a lost OT_REMOTE leaves a gap in the versions: the client catches up
     * again from the version it holds, keeping its own work */
    th h;
    th_init(&h, NULL);
    peer a, o;
    peer_init(&a, 1, "a:w");
    peer_init(&o, 2, "o:w");
    peer *ps[] = {&a, &o};
    sub_crdt(&a, "doc");
    uint32_t ch;
    ck_assert_int_eq(sync_client_subscribe_ot(o.cl, "doc", false, &ch), TDM_OK);
    peer_connect(&h, &a, 0);
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    ins(&a, 0, "one ");
    net_run(&h, ps, 1, NULL, 0);
    /* drop what the server sends o now (the OT_REMOTE of version 1) */
    const uint8_t *p;
    size_t n;
    while (sync_session_next_out(o.ss, &p, &n)) sync_session_consume(o.ss);
    ins(&a, 4, "two");
    net_run(&h, ps, 1, NULL, 0);
    ot_ins(&o, ch, 0, "[o]"); /* local work on the old text */
    net_run(&h, ps, 2, NULL, 0);
    expect_ot(&h, &o, ch, "doc");
    char *t = room_text(&h, "doc");
    ck_assert_str_eq(t, "[o]one two");
    free(t);
    peer_disconnect(&a, 0);
    peer_disconnect(&o, 0);
    peer_fini(&a);
    peer_fini(&o);
    th_fini(&h);
}
END_TEST

START_TEST(test_ot_too_far_behind_raw)
{
    th h;
    sync_server_opts so = {.ot_history = 3, .hash_seed = 1};
    th_init(&h, &so);
    peer a;
    peer_init(&a, 1, "a:w");
    peer *ps[] = {&a};
    sub_crdt(&a, "doc");
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 1, NULL, 0);
    ins(&a, 0, "abc");
    net_run(&h, ps, 1, NULL, 0);
    sync_session *ss = raw_hello(&h, "raw:w");
    syncm sub = {.type = SYNCM_SUBSCRIBE,
                 .channel = 1,
                 .name = {(const uint8_t *)"doc", 3},
                 .mode = SYNC_MODE_OT,
                 .has_version = true,
                 .version = 1};
    ck_assert_int_eq(raw_send(ss, &sub), TDM_OK);
    syncm out[64];
    size_t n = raw_drain(ss, out, 64);
    ck_assert_int_eq(out[0].type, SYNCM_SUBSCRIBED);
    ck_assert_uint_eq(out[0].version, 1);
    raw_clear(out, n);
    for (int i = 0; i < 6; i++) ins(&a, 0, "x");
    net_run(&h, ps, 1, NULL, 0);
    n = raw_drain(ss, out, 64);
    ck_assert_uint_eq(n, 6); /* six OT_REMOTE */
    ck_assert_int_eq(out[5].type, SYNCM_OT_REMOTE);
    ck_assert_uint_eq(out[5].version, 7);
    raw_clear(out, n);
    h.ot_trim = 5;
    /* an op against version 1: memory keeps 3, the host from 5: too far */
    ot_op *op = mk_ins(3, 3, "!");
    syncm o = {.type = SYNCM_OT_OP, .channel = 1, .version = 1, .op_id = 42, .op = op};
    ck_assert_int_ne(raw_send(ss, &o), TDM_OK);
    n = raw_drain(ss, out, 64);
    ck_assert_uint_ge(n, 2);
    ck_assert_int_eq(out[0].type, SYNCM_ERROR);
    ck_assert_uint_eq(out[0].code, SYNC_ERR_TOO_FAR_BEHIND);
    ck_assert_uint_eq(out[0].ref, 42);
    ck_assert_ptr_nonnull(out[0].op);
    ck_assert(ot_op_equal(out[0].op, op)); /* its unsent operation back */
    ck_assert_int_eq(out[1].type, SYNCM_OT_SNAPSHOT);
    ck_assert_uint_eq(out[1].version, 7);
    ck_assert_uint_eq(out[1].data.n, 9);
    raw_clear(out, n);
    char *t = room_text(&h, "doc");
    ck_assert_str_eq(t, "xxxxxxabc");
    free(t);
    /* against version 5 the host's history bridges the gap */
    ot_op_free(op);
    op = mk_ins(7, 7, "!"); /* text at version 5: "xxxxabc" */
    o.op = op, o.version = 5, o.op_id = 43;
    ck_assert_int_eq(raw_send(ss, &o), TDM_OK);
    net_run(&h, ps, 1, NULL, 0);
    n = raw_drain(ss, out, 64);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(out[0].type, SYNCM_OT_ACK);
    ck_assert_uint_eq(out[0].op_id, 43);
    ck_assert_uint_eq(out[0].version, 8);
    raw_clear(out, n);
    t = room_text(&h, "doc");
    ck_assert_str_eq(t, "xxxxxxabc!");
    free(t);
    /* an op that does not fit its version; one from the future */
    ot_op_free(op);
    op = mk_ins(99, 0, "?");
    o.op = op, o.version = 8, o.op_id = 44;
    ck_assert_int_ne(raw_send(ss, &o), TDM_OK);
    n = raw_drain(ss, out, 64);
    ck_assert_uint_eq(out[0].code, SYNC_ERR_BAD_OPERATION);
    raw_clear(out, n);
    o.version = 9;
    ck_assert_int_ne(raw_send(ss, &o), TDM_OK);
    n = raw_drain(ss, out, 64);
    ck_assert_uint_eq(out[0].code, SYNC_ERR_BAD_OPERATION);
    raw_clear(out, n);
    ck_assert_uint_eq(sync_server_room_version(h.srv, "doc"), 8);
    ot_op_free(op);
    sync_session_close(ss, 0);
    peer_disconnect(&a, 0);
    peer_fini(&a);
    th_fini(&h);
}
END_TEST

START_TEST(test_ot_ack_holds_remote)
{
    /* while an OT ack waits for durability, later remote ops wait behind it */
    th h;
    th_init(&h, NULL);
    peer a;
    peer_init(&a, 1, "a:w");
    peer *ps[] = {&a};
    sub_crdt(&a, "doc");
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 1, NULL, 0);
    sync_session *ss = raw_hello(&h, "raw:w");
    syncm sub = {.type = SYNCM_SUBSCRIBE,
                 .channel = 1,
                 .name = {(const uint8_t *)"doc", 3},
                 .mode = SYNC_MODE_OT};
    raw_send(ss, &sub);
    syncm out[16];
    size_t n = raw_drain(ss, out, 16);
    raw_clear(out, n);
    h.hold = true;
    ot_op *op = mk_ins(0, 0, "ot");
    syncm o = {.type = SYNCM_OT_OP, .channel = 1, .version = 0, .op_id = 1, .op = op};
    ck_assert_int_eq(raw_send(ss, &o), TDM_OK);
    net_run(&h, ps, 1, NULL, 0); /* the CRDT side sees the change at once */
    ins(&a, 2, "+crdt");
    net_run(&h, ps, 1, NULL, 0);
    ck_assert_uint_eq(raw_drain(ss, out, 16), 0); /* nothing: the ack is not durable */
    h.hold = false;
    th_complete(&h);
    n = raw_drain(ss, out, 16);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(out[0].type, SYNCM_OT_ACK);
    ck_assert_uint_eq(out[0].version, 1);
    ck_assert_int_eq(out[1].type, SYNCM_OT_REMOTE);
    ck_assert_uint_eq(out[1].version, 2);
    raw_clear(out, n);
    ot_op_free(op);
    sync_session_close(ss, 0);
    peer_disconnect(&a, 0);
    peer_fini(&a);
    th_fini(&h);
}
END_TEST

/* A server restart over the same host storage: the old server's sessions
 * are gone, writes it still held are lost unless the host has them (the
 * harness stores at persist time, so everything persisted survives; acks
 * not yet released are lost with the "crash"). */
static void th_restart(th *h, const sync_server_opts *opts)
{
    sync_server_free(h->srv);
    h->srv = NULL;
    h->ntoks = 0; /* the acks were never sent */
    h->hold = false;
    sync_host host = th_host(h);
    sync_server_opts o = {.hash_seed = 42};
    if (opts) o = *opts;
    ck_assert_int_eq(sync_server_new(&host, &o, &h->srv), TDM_OK);
}

START_TEST(test_ot_own_op_after_restart)
{
    /* the op was stored, the server died before the ack: after the restart
     * the catch-up comes from the host's history, which must still name
     * the submitter, so the client takes it as its ack (not applied twice) */
    th h;
    th_init(&h, NULL);
    peer a, o;
    peer_init(&a, 1, "a:w");
    peer_init(&o, 2, "o:w");
    peer *ps[] = {&a, &o};
    sub_crdt(&a, "doc");
    uint32_t ch;
    ck_assert_int_eq(sync_client_subscribe_ot(o.cl, "doc", false, &ch), TDM_OK);
    peer_connect(&h, &a, 0);
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    ins(&a, 0, "base");
    net_run(&h, ps, 2, NULL, 0);
    h.hold = true;
    ot_ins(&o, ch, 4, "+once");
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_int_eq(sync_client_ot_state(o.cl, ch), SYNC_OT_AWAITING_ACK);
    hdoc *d = th_doc(&h, "doc", false);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(d->nops, 2);
    ck_assert_uint_eq(d->ops[0].src, 0);   /* a CRDT change */
    ck_assert_uint_eq(d->ops[1].src, 2);   /* o's HELLO client id ... */
    ck_assert_uint_eq(d->ops[1].op_id, 1); /* ... and op id */
    peer_disconnect(&o, 0);
    peer_disconnect(&a, 0);
    th_restart(&h, NULL);
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 1, NULL, 0);
    ins(&a, 0, ">"); /* a CRDT change after the restart: src 0 */
    net_run(&h, ps, 1, NULL, 0);
    peer_connect(&h, &o, 0);
    net_run(&h, ps, 2, NULL, 0);
    expect_ot(&h, &o, ch, "doc");
    char *t = room_text(&h, "doc");
    ck_assert_str_eq(t, ">base+once");
    free(t);
    ck_assert_uint_eq(o.nerr, 0);
    peer_disconnect(&a, 0);
    peer_disconnect(&o, 0);
    peer_fini(&a);
    peer_fini(&o);
    th_fini(&h);
}
END_TEST

/* one raw OT session with client id 77 (raw_hello) subscribed to "doc" at
 * `version` (no catch-up wanted: the room is at that version) */
static sync_session *raw_ot(th *h, uint64_t version)
{
    sync_session *ss = raw_hello(h, "raw:w");
    syncm sub = {.type = SYNCM_SUBSCRIBE,
                 .channel = 1,
                 .name = {(const uint8_t *)"doc", 3},
                 .mode = SYNC_MODE_OT,
                 .has_version = true,
                 .version = version};
    ck_assert_int_eq(raw_send(ss, &sub), TDM_OK);
    syncm out[8];
    size_t n = raw_drain(ss, out, 8);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(out[0].type, SYNCM_SUBSCRIBED);
    raw_clear(out, n);
    return ss;
}

static void expect_ot_ack(sync_session *ss, uint64_t op_id, uint64_t version)
{
    syncm out[8];
    size_t n = raw_drain(ss, out, 8);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(out[0].type, SYNCM_OT_ACK);
    ck_assert_uint_eq(out[0].op_id, op_id);
    ck_assert_uint_eq(out[0].version, version);
    raw_clear(out, n);
}

START_TEST(test_ot_resend_acked_not_applied)
{
    /* an OT_OP whose (client id, op id) is in the history since its base
     * version is a resend: acked with the version it made, nothing changes
     * (from memory, and from the host's history after a restart) */
    th h;
    th_init(&h, NULL);
    peer a;
    peer_init(&a, 1, "a:w");
    peer *ps[] = {&a};
    sub_crdt(&a, "doc");
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 1, NULL, 0);
    ins(&a, 0, "abc");
    net_run(&h, ps, 1, NULL, 0);
    sync_session *ss = raw_ot(&h, 1);
    ot_op *op = mk_ins(3, 3, "!");
    syncm o = {.type = SYNCM_OT_OP, .channel = 1, .version = 1, .op_id = 5, .op = op};
    ck_assert_int_eq(raw_send(ss, &o), TDM_OK);
    net_run(&h, ps, 1, NULL, 0);
    expect_ot_ack(ss, 5, 2);
    ins(&a, 0, "x"); /* version 3 */
    net_run(&h, ps, 1, NULL, 0);
    syncm out[8];
    size_t n = raw_drain(ss, out, 8);
    ck_assert_uint_eq(n, 1); /* the OT_REMOTE of version 3 */
    raw_clear(out, n);
    size_t persists = h.persists;
    ck_assert_int_eq(raw_send(ss, &o), TDM_OK); /* the same op again, same base */
    net_run(&h, ps, 1, NULL, 0);
    expect_ot_ack(ss, 5, 2);
    ck_assert_uint_eq(sync_server_room_version(h.srv, "doc"), 3);
    ck_assert_uint_eq(h.persists, persists);
    char *t = room_text(&h, "doc");
    ck_assert_str_eq(t, "xabc!");
    free(t);
    sync_session_close(ss, 0);
    peer_disconnect(&a, 0);

    /* after a restart the history comes from the host, with the submitter */
    th_restart(&h, NULL);
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 1, NULL, 0);
    ss = raw_ot(&h, 3);
    ck_assert_int_eq(raw_send(ss, &o), TDM_OK);
    net_run(&h, ps, 1, NULL, 0);
    expect_ot_ack(ss, 5, 2);
    t = room_text(&h, "doc");
    ck_assert_str_eq(t, "xabc!");
    free(t);
    /* another op id is a new operation (transformed over versions 2, 3) */
    o.op_id = 7;
    ck_assert_int_eq(raw_send(ss, &o), TDM_OK);
    net_run(&h, ps, 1, NULL, 0);
    expect_ot_ack(ss, 7, 4);
    t = room_text(&h, "doc");
    ck_assert_str_eq(t, "xabc!!");
    free(t);
    sync_session_close(ss, 0);
    ot_op_free(op);
    peer_disconnect(&a, 0);
    peer_fini(&a);
    th_fini(&h);
}
END_TEST

/* ------------------------------------------------------------ chat */

static void chat(peer *p, const char *text, uint64_t *msg_id)
{
    ck_assert_int_eq(sync_client_chat_send(p->cl, p->ch, text, strlen(text), msg_id), TDM_OK);
}

START_TEST(test_chat)
{
    th h;
    th_init(&h, NULL);
    peer a, b;
    peer_init(&a, 1, "alice:w");
    peer_init(&b, 2, "bob:r"); /* readers may chat */
    peer *ps[] = {&a, &b};
    sub_crdt(&a, "room");
    sub_crdt(&b, "room");
    peer_connect(&h, &a, 0);
    peer_connect(&h, &b, 0);
    net_run(&h, ps, 2, NULL, 0);
    uint64_t m1, m2, m3;
    chat(&a, "hi", &m1);
    chat(&b, "hello", &m2);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.nchat_acks, 1);
    ck_assert_uint_eq(a.chat_acks[0][0], m1);
    ck_assert_uint_eq(a.chat_acks[0][1], 1);
    ck_assert_uint_eq(b.chat_acks[0][1], 2);
    ck_assert_uint_eq(b.nchat, 1); /* the other's message, not our own */
    ck_assert_str_eq(b.chat_texts[0], "hi");
    ck_assert_uint_eq(a.nchat, 1);
    ck_assert_str_eq(a.chat_texts[0], "hello");

    /* resend after a lost ack: deduplicated, acked with the same id */
    h.hold = true;
    chat(&a, "once", &m3);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.nchat_acks, 1);
    ck_assert_uint_eq(b.nchat, 1); /* not broadcast before it is stored */
    peer_disconnect(&a, 0);
    h.hold = false;
    net_run(&h, ps, 2, NULL, 0); /* stored; b sees it once */
    ck_assert_uint_eq(b.nchat, 2);
    ck_assert_str_eq(b.chat_texts[1], "once");
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.nchat_acks, 2);
    ck_assert_uint_eq(a.chat_acks[1][0], m3);
    ck_assert_uint_eq(a.chat_acks[1][1], 3);
    ck_assert_uint_eq(b.nchat, 2);
    ck_assert_uint_eq(th_doc(&h, "room", false)->nchats, 3);

    /* replay: b misses three messages while away */
    peer_disconnect(&b, 0);
    chat(&a, "m4", NULL);
    chat(&a, "m5", NULL);
    chat(&a, "m6", NULL);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(sync_client_chat_last(b.cl, b.ch), 3);
    peer_connect(&h, &b, 0);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(b.nchat, 5);
    ck_assert_str_eq(b.chat_texts[2], "m4");
    ck_assert_str_eq(b.chat_texts[4], "m6");
    ck_assert_uint_eq(sync_client_chat_last(b.cl, b.ch), 6);

    /* ids monotonic, history from an id in pages */
    for (int i = 0; i < 300; i++) {
        char t[16];
        snprintf(t, sizeof t, "n%d", i);
        chat(&a, t, NULL);
        if (i % 50 == 49) net_run(&h, ps, 2, NULL, 0);
    }
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(b.nchat, 305);
    ck_assert_uint_eq(a.nchat_acks, 305);
    peer c;
    peer_init(&c, 3, "carol:w");
    ck_assert_int_eq(sync_client_subscribe_crdt(c.cl, "room", c.doc, true, &c.ch), TDM_OK);
    peer *pc[] = {&c};
    peer_connect(&h, &c, 0);
    net_run(&h, pc, 1, NULL, 0);
    ck_assert_uint_eq(sync_client_chat_last(c.cl, c.ch), 306); /* all pages followed */
    ck_assert_str_eq(c.chat_texts[0], "hi");
    ck_assert_uint_eq(c.nchat, 306);
    for (size_t i = 1; i < 256; i++) ck_assert_uint_eq(c.chat_ids[i], c.chat_ids[i - 1] + 1);
    /* an explicit history request: raw, to see the reply */
    syncm q = {.type = SYNCM_CHAT_HISTORY, .channel = c.ch, .after = 300, .limit = 4};
    ck_assert_int_eq(raw_send(c.ss, &q), TDM_OK);
    syncm out[4];
    size_t n = raw_drain(c.ss, out, 4);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(out[0].type, SYNCM_CHAT_HISTORY_REPLY);
    ck_assert_uint_eq(out[0].nrecs, 4);
    ck_assert(out[0].more);
    ck_assert_uint_eq(out[0].recs[0].id, 301);
    ck_assert_uint_eq(out[0].recs[3].id, 304);
    ck_assert_int_eq(strncmp((const char *)out[0].recs[0].user.p, "alice", 5), 0);
    raw_clear(out, n);
    /* a failed write is reported and can be retried */
    h.fail_persist = 1;
    uint64_t m9;
    chat(&c, "retry me", &m9);
    net_run(&h, pc, 1, NULL, 0);
    ck_assert(peer_has_error(&c, SYNC_ERR_STORAGE));
    ck_assert_int_eq(sync_client_retry(c.cl), TDM_OK);
    net_run(&h, pc, 1, NULL, 0);
    ck_assert_uint_eq(c.nchat_acks, 1);
    ck_assert_uint_eq(c.chat_acks[0][0], m9);
    ck_assert_uint_eq(c.chat_acks[0][1], 307);
    peer_disconnect(&a, 0);
    peer_disconnect(&b, 0);
    peer_disconnect(&c, 0);
    peer_fini(&a);
    peer_fini(&b);
    peer_fini(&c);
    th_fini(&h);
}
END_TEST

/* ------------------------------------------------------------ presence */

START_TEST(test_typing)
{
    th h;
    th_init(&h, NULL);
    peer a, b;
    peer_init(&a, 1, "alice:w");
    peer_init(&b, 2, "bob:w");
    peer *ps[] = {&a, &b};
    sub_crdt(&a, "doc");
    sub_crdt(&b, "doc");
    peer_connect(&h, &a, 0);
    peer_connect(&h, &b, 0);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    net_run(&h, ps, 2, NULL, 1000);
    ck_assert_int_eq(b.typing_on, 1);
    ck_assert_str_eq(b.typing_user, "alice");
    ck_assert_int_eq(a.typing_on, 0); /* not echoed */
    sync_server_tick(h.srv, 3999);
    net_run(&h, ps, 2, NULL, 3999);
    ck_assert_int_eq(b.typing_off, 0);
    /* renewed at 2500: expires 3 s after the last start */
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    net_run(&h, ps, 2, NULL, 2500);
    sync_server_tick(h.srv, 5499);
    net_run(&h, ps, 2, NULL, 5499);
    ck_assert_int_eq(b.typing_off, 0);
    sync_server_tick(h.srv, 5500);
    net_run(&h, ps, 2, NULL, 5500);
    ck_assert_int_eq(b.typing_off, 1);
    /* explicit stop; and stop when the connection goes */
    sync_client_typing(a.cl, a.ch, true);
    net_run(&h, ps, 2, NULL, 6000);
    sync_client_typing(a.cl, a.ch, false);
    net_run(&h, ps, 2, NULL, 6100);
    ck_assert_int_eq(b.typing_off, 2);
    sync_client_typing(a.cl, a.ch, true);
    net_run(&h, ps, 2, NULL, 6200);
    /* a newcomer learns who is typing */
    peer c;
    peer_init(&c, 3, "carol:w");
    sub_crdt(&c, "doc");
    peer_connect(&h, &c, 6300);
    peer *pc[] = {&b, &c};
    net_run(&h, pc, 2, NULL, 6300);
    ck_assert_int_eq(c.typing_on, 1);
    peer_disconnect(&a, 6400);
    net_run(&h, pc, 2, NULL, 6400);
    ck_assert_int_eq(b.typing_off, 3);
    ck_assert_int_eq(c.typing_off, 1);
    peer_disconnect(&b, 0);
    peer_disconnect(&c, 0);
    peer_fini(&a);
    peer_fini(&b);
    peer_fini(&c);
    th_fini(&h);
}
END_TEST

START_TEST(test_awareness_removed_on_close)
{
    th h;
    th_init(&h, NULL);
    peer a, b, c;
    peer_init(&a, 1, "alice:w");
    peer_init(&b, 2, "bob:w");
    peer_init(&c, 3, "carol:w");
    ck_assert_int_eq(aw_new(1, &a.aw), TDM_OK);
    ck_assert_int_eq(aw_new(2, &b.aw), TDM_OK);
    ck_assert_int_eq(aw_new(3, &c.aw), TDM_OK);
    peer *ps[] = {&a, &b, &c};
    sub_crdt(&a, "doc");
    sub_crdt(&b, "doc");
    peer_connect(&h, &a, 0);
    peer_connect(&h, &b, 0);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_int_eq(aw_set_local(a.aw, (const uint8_t *)"{\"cursor\":3}", 12, 0), TDM_OK);
    tbuf t;
    tbuf_init(&t, 0);
    ck_assert_int_eq(aw_encode_local(a.aw, &t), TDM_OK);
    ck_assert_int_eq(sync_client_awareness(a.cl, a.ch, t.data, t.len), TDM_OK);
    tbuf_fini(&t);
    net_run(&h, ps, 2, NULL, 0);
    aw_entry e;
    ck_assert_int_eq(aw_get(b.aw, 1, &e), TDM_OK);
    /* a newcomer gets the current presence */
    sub_crdt(&c, "doc");
    peer_connect(&h, &c, 0);
    net_run(&h, ps, 3, NULL, 0);
    ck_assert_int_eq(aw_get(c.aw, 1, &e), TDM_OK);
    /* the tab closes: everyone drops the cursor (no ghost) */
    peer_disconnect(&a, 100);
    net_run(&h, ps, 3, NULL, 100);
    ck_assert_int_eq(aw_get(b.aw, 1, &e), TDM_ENOTFOUND);
    ck_assert_int_eq(aw_get(c.aw, 1, &e), TDM_ENOTFOUND);
    /* bad awareness bytes are refused */
    syncm bad = {
        .type = SYNCM_AWARENESS, .channel = b.ch, .data = {(const uint8_t *)"\x81\x01", 2}};
    ck_assert_int_ne(raw_send(b.ss, &bad), TDM_OK);
    net_run(&h, ps, 3, NULL, 100);
    ck_assert(peer_has_error(&b, SYNC_ERR_MALFORMED));
    peer_disconnect(&b, 0);
    peer_disconnect(&c, 0);
    peer_fini(&a);
    peer_fini(&b);
    peer_fini(&c);
    th_fini(&h);
}
END_TEST

/* ------------------------------------------------------------ limits */

START_TEST(test_backpressure)
{
    th h;
    sync_server_opts so = {.max_out_bytes = 256 << 10, .hash_seed = 3};
    th_init(&h, &so);
    peer a, b;
    peer_init(&a, 1, "alice:w");
    peer_init(&b, 2, "bob:w");
    peer *ps[] = {&a, &b};
    sub_crdt(&a, "doc");
    sub_crdt(&b, "doc");
    peer_connect(&h, &a, 0);
    peer_connect(&h, &b, 0);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_int_eq(aw_new(2, &b.aw), TDM_OK);
    /* a stops reading; b floods presence: dropped once half the cap is used */
    peer *pb[] = {&b};
    static uint8_t state[4000];
    memset(state, 'x', sizeof state);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(aw_set_local(b.aw, state, sizeof state - (size_t)i, 0), TDM_OK);
        tbuf t;
        tbuf_init(&t, 0);
        ck_assert_int_eq(aw_encode_local(b.aw, &t), TDM_OK);
        sync_client_awareness(b.cl, b.ch, t.data, t.len);
        tbuf_fini(&t);
        net_run(&h, pb, 1, NULL, 0);
    }
    sync_server_stats st;
    sync_server_get_stats(h.srv, &st);
    ck_assert_uint_gt(st.dropped_ephemeral, 0);
    ck_assert(!sync_session_closing(a.ss, NULL));
    ck_assert_uint_le(sync_session_out_bytes(a.ss), (256 << 10) / 2 + 8192);
    size_t before = st.dropped_ephemeral;
    /* document updates are not dropped: ephemeral frames make room first */
    char big[30001];
    memset(big, 'y', 30000);
    big[30000] = '\0';
    ins(&b, 0, big);
    net_run(&h, pb, 1, NULL, 0);
    ck_assert(!sync_session_closing(a.ss, NULL));
    /* then the cap: a is marked for closing */
    for (int i = 0; i < 12 && !sync_session_closing(a.ss, NULL); i++) {
        ins(&b, 0, big);
        net_run(&h, pb, 1, NULL, 0);
    }
    sync_close_reason why;
    ck_assert(sync_session_closing(a.ss, &why));
    ck_assert_int_eq(why, SYNC_CLOSE_BACKPRESSURE);
    sync_server_get_stats(h.srv, &st);
    ck_assert_uint_gt(st.dropped_ephemeral, before);
    ck_assert_uint_le(sync_session_out_bytes(a.ss), (256 << 10) + 1024);
    /* b is fine; a's last frame says why */
    ck_assert(!sync_session_closing(b.ss, NULL));
    const uint8_t *p;
    size_t n;
    syncm last = {0};
    while (sync_session_next_out(a.ss, &p, &n)) {
        syncm_clear(&last);
        ck_assert_int_eq(syncm_decode(p, n, SYNCM_MAX_FRAME, &last), TDM_OK);
        if (last.type == SYNCM_ERROR) break;
        sync_session_consume(a.ss);
    }
    ck_assert_int_eq(last.type, SYNCM_ERROR);
    ck_assert_uint_eq(last.code, SYNC_ERR_CLOSING);
    syncm_clear(&last);
    peer_disconnect(&a, 0);
    peer_disconnect(&b, 0);
    peer_fini(&a);
    peer_fini(&b);
    th_fini(&h);
}
END_TEST

START_TEST(test_rooms)
{
    th h;
    sync_server_opts so = {.max_rooms = 2, .hash_seed = 5};
    th_init(&h, &so);
    h.broken = "broken";
    peer a;
    peer_init(&a, 1, "alice:w");
    peer *ps[] = {&a};
    /* a failed load refuses the subscribe and creates nothing */
    sub_crdt(&a, "broken");
    peer_connect(&h, &a, 0);
    net_run(&h, ps, 1, NULL, 0);
    ck_assert(peer_has_error(&a, SYNC_ERR_LOAD_FAILED));
    ck_assert_uint_eq(a.synced, 0);
    sync_server_stats st;
    sync_server_get_stats(h.srv, &st);
    ck_assert_uint_eq(st.rooms, 0);
    ck_assert_ptr_null(th_doc(&h, "broken", false));
    ck_assert_int_eq(sync_client_unsubscribe(a.cl, a.ch), TDM_OK);
    /* unknown documents may not be created under a strict host */
    h.strict = true;
    sub_crdt(&a, "nope");
    net_run(&h, ps, 1, NULL, 0);
    ck_assert(peer_has_error(&a, SYNC_ERR_UNKNOWN_DOCUMENT));
    sync_client_unsubscribe(a.cl, a.ch);
    h.strict = false;
    /* a document, stored, freed when idle, loaded again */
    sub_crdt(&a, "one");
    net_run(&h, ps, 1, NULL, 0);
    ins(&a, 0, "persisted");
    net_run(&h, ps, 1, NULL, 0);
    peer_disconnect(&a, 1000);
    sync_server_tick(h.srv, 1000 + 29999);
    sync_server_get_stats(h.srv, &st);
    ck_assert_uint_eq(st.rooms, 1);
    sync_server_tick(h.srv, 1000 + 30000);
    sync_server_get_stats(h.srv, &st);
    ck_assert_uint_eq(st.rooms, 0);
    ck_assert_uint_eq(h.closed, 1);
    peer b;
    peer_init(&b, 2, "bob:w");
    peer *pb[] = {&b};
    sub_crdt(&b, "one");
    peer_connect(&h, &b, 40000);
    net_run(&h, pb, 1, NULL, 40000);
    char *t = doc_text(b.doc);
    ck_assert_str_eq(t, "persisted");
    free(t);
    /* the room cap: an idle room is evicted for a new one; busy rooms are not */
    uint32_t c2, c3;
    ck_assert_int_eq(sync_client_subscribe_crdt(b.cl, "two", b.doc, false, &c2), TDM_OK);
    net_run(&h, pb, 1, NULL, 40000);
    crdt_doc *d3;
    ck_assert_int_eq(crdt_doc_new(9, &d3), TDM_OK);
    ck_assert_int_eq(sync_client_subscribe_crdt(b.cl, "three", d3, false, &c3), TDM_OK);
    net_run(&h, pb, 1, NULL, 40000);
    ck_assert(peer_has_error(&b, SYNC_ERR_SERVER_BUSY));
    sync_client_unsubscribe(b.cl, c2);
    net_run(&h, pb, 1, NULL, 40000);
    sync_client_unsubscribe(b.cl, c3);
    ck_assert_int_eq(sync_client_subscribe_crdt(b.cl, "three", d3, false, &c3), TDM_OK);
    net_run(&h, pb, 1, NULL, 40000);
    ck_assert(sync_client_synced(b.cl, c3));
    ck_assert_uint_eq(h.closed, 2); /* "two" made room */
    peer_disconnect(&b, 0);
    crdt_doc_free(d3);
    peer_fini(&a);
    peer_fini(&b);
    th_fini(&h);
}
END_TEST

START_TEST(test_auth_refresh_and_rate_limit)
{
    th h;
    th_init(&h, NULL);
    peer a, b;
    peer_init(&a, 1, "alice:w");
    peer_init(&b, 2, "bob:w");
    peer *ps[] = {&a, &b};
    sub_crdt(&a, "doc");
    sub_crdt(&b, "doc");
    peer_connect(&h, &a, 0);
    peer_connect(&h, &b, 0);
    net_run(&h, ps, 2, NULL, 0);
    /* rate limited: refused with retry-after, not applied, retried later */
    h.limit_kind = SYNC_RATE_UPDATE;
    h.limit_retry = 750;
    ins(&a, 0, "slow");
    net_run(&h, ps, 2, NULL, 0);
    ck_assert(peer_has_error(&a, SYNC_ERR_RATE_LIMITED));
    char *t = room_text(&h, "doc");
    ck_assert_str_eq(t, "");
    free(t);
    h.limit_kind = -1;
    ck_assert_int_eq(sync_client_retry(a.cl), TDM_OK);
    net_run(&h, ps, 2, NULL, 0);
    expect_converged(&h, ps, 2, "doc");
    /* token refresh without reconnecting: downgraded to read-only */
    ck_assert_int_eq(sync_client_set_token(a.cl, (const uint8_t *)"alice:r", 7), TDM_OK);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.welcome, 2);
    size_t errs = a.nerr;
    ins(&a, 0, "x");
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.nerr, errs + 1);
    ck_assert(peer_has_error(&a, SYNC_ERR_NOT_ALLOWED));
    /* revoked: the channel is closed by the server */
    ck_assert_int_eq(sync_client_set_token(a.cl, (const uint8_t *)"alice:n", 7), TDM_OK);
    net_run(&h, ps, 2, NULL, 0);
    ck_assert_uint_eq(a.nerr, errs + 2);
    ins(&b, 0, "after");
    net_run(&h, ps, 2, NULL, 0);
    t = doc_text(a.doc);
    ck_assert_ptr_null(strstr(t, "after")); /* no longer receives */
    free(t);
    peer_disconnect(&a, 0);
    peer_disconnect(&b, 0);
    peer_fini(&a);
    peer_fini(&b);
    th_fini(&h);
}
END_TEST

/* ------------------------------------------------------------ fuzz */

/* random client messages, well-formed and not, from several raw sessions,
 * with random durability, ticks and reconnects: nothing crashes or leaks,
 * caps hold, and the rooms stay consistent with what was stored */
static void fuzz_run(uint64_t seed, int steps)
{
    th h;
    sync_server_opts so = {
        .max_out_bytes = 256 << 10, .ot_history = 8, .max_pending = 64, .hash_seed = 9};
    th_init(&h, &so);
    static const char *names[] = {"r1", "r2", "r3"};
    sync_session *ss[4] = {0};
    crdt_doc *src;
    ck_assert_int_eq(crdt_doc_new(500, &src), TDM_OK);
    uint64_t rng = seed;
    uint64_t now = 0;
    for (int step = 0; step < steps; step++) {
        now += rnd(&rng) % 50;
        int i = (int)(rnd(&rng) % 4);
        if (!ss[i] || sync_session_closing(ss[i], NULL) || rnd(&rng) % 200 == 0) {
            if (ss[i]) sync_session_close(ss[i], now);
            ss[i] = raw_hello(&h, rnd(&rng) % 5 ? "fz:w" : "fz:r");
        }
        syncm m = {.channel = (uint32_t)(1 + rnd(&rng) % 3)};
        crdt_sv *sv = NULL;
        ot_op *op = NULL;
        tbuf u;
        tbuf_init(&u, 0);
        switch (rnd(&rng) % 11) {
        case 0:
            m.type = SYNCM_SUBSCRIBE;
            m.name = (syncm_str){(const uint8_t *)names[rnd(&rng) % 3], 2};
            m.mode = rnd(&rng) % 2;
            if (m.mode == SYNC_MODE_CRDT) {
                sv = crdt_sv_new();
                if (rnd(&rng) % 2) crdt_doc_state_vector(src, sv);
                m.sv = sv;
            } else {
                m.has_version = rnd(&rng) % 2;
                m.version = rnd(&rng) % 40;
            }
            m.has_after = rnd(&rng) % 2;
            m.after = rnd(&rng) % 5;
            break;
        case 1:
            m.type = SYNCM_UNSUBSCRIBE;
            break;
        case 2:
        case 3: {
            /* a real update (sometimes from an older state: partly known or pending) */
            size_t len = crdt_doc_len(src);
            crdt_sv *before = crdt_sv_new();
            crdt_doc_state_vector(src, before);
            if (len > 3 && rnd(&rng) % 3 == 0)
                crdt_doc_delete(src, rnd(&rng) % (len - 2), 2);
            else
                crdt_doc_insert(src, rnd(&rng) % (len + 1), "fz", 2);
            crdt_doc_diff(src, rnd(&rng) % 4 ? before : NULL, &u);
            crdt_sv_free(before);
            if (rnd(&rng) % 8 == 0 && u.len > 2) u.data[rnd(&rng) % u.len] ^= 0x40;
            m.type = SYNCM_UPDATE;
            m.seq = rnd(&rng) % 100;
            m.data = (syncm_str){u.data, u.len};
            break;
        }
        case 4:
            m.type = SYNCM_SYNC_STEP;
            sv = crdt_sv_new();
            m.sv = sv;
            break;
        case 5:
        case 6: {
            m.type = SYNCM_OT_OP;
            m.version = rnd(&rng) % 30;
            m.op_id = rnd(&rng) % 50;
            ot_op_new(&op);
            size_t base = rnd(&rng) % 12;
            size_t at = base ? rnd(&rng) % base : 0;
            ot_op_retain(op, at);
            ot_op_insert(op, "o", 1);
            ot_op_retain(op, base - at);
            m.op = op;
            break;
        }
        case 7:
            m.type = SYNCM_CHAT_SEND;
            m.msg_id = rnd(&rng) % 20;
            m.text = (syncm_str){(const uint8_t *)"msg", 3};
            break;
        case 8:
            m.type = SYNCM_CHAT_HISTORY;
            m.after = rnd(&rng) % 10;
            m.limit = 1 + rnd(&rng) % 5;
            break;
        case 9:
            m.type = SYNCM_TYPING;
            m.on = rnd(&rng) % 2;
            break;
        default:
            m.type = SYNCM_AWARENESS;
            m.data = (syncm_str){(const uint8_t *)"\x81\x83\x05\x01\x41x", 6};
            if (rnd(&rng) % 3 == 0) m.data.n = 3;
            break;
        }
        tbuf f;
        tbuf_init(&f, 0);
        ck_assert_int_eq(syncm_encode(&m, &f), TDM_OK);
        if (rnd(&rng) % 10 == 0) f.len = rnd(&rng) % (f.len + 1); /* truncated */
        sync_session_recv(ss[i], f.data, f.len, now);
        tbuf_fini(&f);
        tbuf_fini(&u);
        crdt_sv_free(sv);
        ot_op_free(op);
        /* drain some sessions, sometimes not (backpressure) */
        for (int k = 0; k < 4; k++) {
            if (!ss[k] || rnd(&rng) % 3 == 0) continue;
            const uint8_t *p;
            size_t n;
            while (sync_session_next_out(ss[k], &p, &n)) {
                syncm d;
                ck_assert_int_eq(syncm_decode(p, n, SYNCM_MAX_FRAME, &d), TDM_OK);
                ck_assert_uint_le(n, d.type == SYNCM_UPDATE_CHUNK || d.type == SYNCM_OT_SNAPSHOT
                                         ? SYNCM_CHUNK_FRAME
                                         : SYNCM_MAX_FRAME);
                syncm_clear(&d);
                sync_session_consume(ss[k]);
            }
            ck_assert_uint_le(sync_session_out_bytes(ss[k]), (256 << 10) + 70000);
        }
        h.hold = rnd(&rng) % 4 == 0;
        if (rnd(&rng) % 7 == 0) h.fail_durable = 1;
        th_complete(&h);
        if (rnd(&rng) % 20 == 0) sync_server_tick(h.srv, now);
        sync_server_stats st;
        sync_server_get_stats(h.srv, &st);
        ck_assert_uint_le(st.pending, 64);
    }
    h.hold = false;
    th_complete(&h);
    /* the walk reached the interesting states */
    sync_server_stats st;
    sync_server_get_stats(h.srv, &st);
    ck_assert_uint_gt(h.persists, 30);
    ck_assert_uint_gt(st.errors_sent, 50);
    ck_assert_uint_gt(sync_server_room_version(h.srv, "r1") +
                          sync_server_room_version(h.srv, "r2") +
                          sync_server_room_version(h.srv, "r3"),
                      10);
    size_t chats = 0;
    for (int k = 0; k < 3; k++)
        if (th_doc(&h, names[k], false)) chats += th_doc(&h, names[k], false)->nchats;
    ck_assert_uint_gt(chats, 3);
    /* every room in memory equals what its stored log rebuilds */
    for (int k = 0; k < 3; k++) {
        crdt_doc *room = sync_server_room_doc(h.srv, names[k]);
        if (!room || !th_doc(&h, names[k], false)) continue;
        crdt_doc *re;
        crdt_doc_opts o = {.client = 1};
        sync_room_info info;
        if (h_load(&h, names[k], &o, &re, &info) != SYNC_LOAD_OK) continue;
        crdt_sv *a = crdt_sv_new(), *b = crdt_sv_new();
        crdt_doc_state_vector(room, a);
        crdt_doc_state_vector(re, b);
        /* failed writes may have left the store behind the room, never ahead */
        ck_assert(crdt_sv_covers(a, b));
        crdt_sv_free(a);
        crdt_sv_free(b);
        crdt_doc_free(re);
    }
    for (int k = 0; k < 4; k++)
        if (ss[k]) sync_session_close(ss[k], now);
    crdt_doc_free(src);
    th_fini(&h);
}

START_TEST(test_random_messages)
{
    /* TANDEM_SOAK=N runs N times as many seeds */
    const char *soak = getenv("TANDEM_SOAK");
    int rounds = 4 * (soak && atoi(soak) > 0 ? atoi(soak) : 1);
    for (int k = 0; k < rounds; k++) fuzz_run(12345 + 7919 * (uint64_t)k, 6000);
}
END_TEST

static Suite *sync_suite(void)
{
    Suite *s = suite_create("sync");
    TCase *tc = tcase_create("crdt");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_two_clients);
    tcase_add_test(tc, test_durable_acks);
    tcase_add_test(tc, test_read_only);
    tcase_add_test(tc, test_chunked_first_sync);
    tcase_add_test(tc, test_faults_two);
    tcase_add_test(tc, test_faults_three);
    suite_add_tcase(s, tc);
    TCase *to = tcase_create("ot");
    tcase_set_timeout(to, 300);
    tcase_add_test(to, test_ot_basic);
    tcase_add_test(to, test_crdt_and_ot_concurrent);
    tcase_add_test(to, test_ot_reconnect_catch_up);
    tcase_add_test(to, test_ot_own_op_in_catch_up);
    tcase_add_test(to, test_ot_gap_resync);
    tcase_add_test(to, test_ot_too_far_behind_raw);
    tcase_add_test(to, test_ot_ack_holds_remote);
    tcase_add_test(to, test_ot_own_op_after_restart);
    tcase_add_test(to, test_ot_resend_acked_not_applied);
    suite_add_tcase(s, to);
    TCase *tp = tcase_create("chat_presence");
    tcase_add_test(tp, test_chat);
    tcase_add_test(tp, test_typing);
    tcase_add_test(tp, test_awareness_removed_on_close);
    suite_add_tcase(s, tp);
    TCase *tl = tcase_create("limits");
    tcase_add_test(tl, test_backpressure);
    tcase_add_test(tl, test_rooms);
    tcase_add_test(tl, test_auth_refresh_and_rate_limit);
    suite_add_tcase(s, tl);
    TCase *tx = tcase_create("hostile");
    tcase_add_test(tx, test_malformed_frames);
    tcase_add_test(tx, test_hello_rules);
    tcase_add_test(tx, test_random_messages);
    tcase_set_timeout(tx, 300);
    suite_add_tcase(s, tx);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sync_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
