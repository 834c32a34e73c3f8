/* gen_corpus_sync.c - writes the seed corpora of the sync harnesses:
 * fuzz_sync_msg gets one or more valid frames of every message type (plus an
 * unknown type and a frame with extra trailing elements); fuzz_sync_session
 * gets scripts in its record format (see fuzz_sync_session.c) that drive two
 * sessions through HELLO, SUBSCRIBE (CRDT and OT), SYNC_STEP, UPDATE,
 * AWARENESS, OT_OP, chat, typing, PING, UNSUBSCRIBE, refused writes,
 * timeouts and repeated SYNC_STEPs on a document of several KiB.
 *
 * fuzz_sync_client gets sessions of its client (fuzz_client.h) recorded
 * against a real server with a second, editing client: every frame the
 * server sent becomes a record, next to the local actions, so the seed
 * replays the same conversation in the harness; both clients must end with
 * the same CRDT and OT texts.
 *
 * Usage: fuzz_gen_corpus_sync <dir>   (writes <dir>/fuzz_sync_msg/... and
 * <dir>/fuzz_sync_session/...; the directories must exist). Deterministic.
 * Every message seed is checked to decode; every script is replayed against a
 * server with the harness's host and must draw exactly the ERROR frames it
 * expects (most expect none).
 */
#include "fuzz_sync_host.h"
#include "fuzz_client.h"
#include "awareness.h"
#include "utf8.h"

#define FZ_T0_GEN 1700000000000ull

static const char *outdir;

static void put(const char *harness, const char *name, const uint8_t *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", outdir, harness, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "gen_corpus_sync: cannot write %s\n", path);
        exit(1);
    }
}

static syncm_str S(const char *s)
{
    return (syncm_str){(const uint8_t *)s, strlen(s)};
}

static syncm_str B(const tbuf *b)
{
    return (syncm_str){b->data, b->len};
}

/* ------------------------------------------------------------ inputs */

static tbuf upd_a, upd_b, upd_b2, aw_bytes;
static crdt_sv *sv_empty, *sv_a;
static ot_op *op_ins, *op_mixed;

static void make_inputs(void)
{
    crdt_doc *a = fz_doc(11, false, 0), *b = fz_doc(12, false, 0);
    tbuf_init(&upd_a, 0);
    tbuf_init(&upd_b, 0);
    tbuf_init(&upd_b2, 0);
    tbuf_init(&aw_bytes, 0);
    FZ_OK(crdt_doc_insert(a, 0, "hello world", 11));
    FZ_OK(crdt_doc_diff(a, NULL, &upd_a));
    sv_empty = crdt_sv_new();
    sv_a = crdt_sv_new();
    FZ_CHECK(sv_empty && sv_a);
    FZ_OK(crdt_doc_state_vector(a, sv_a));
    FZ_OK(crdt_doc_apply(b, upd_a.data, upd_a.len));
    crdt_sv *sv_b = crdt_sv_new();
    FZ_CHECK(sv_b);
    FZ_OK(crdt_doc_state_vector(b, sv_b));
    FZ_OK(crdt_doc_insert(b, 5, ", dear \xc3\xa9\xf0\x9f\x98\x80", 13));
    FZ_OK(crdt_doc_delete(b, 0, 1));
    FZ_OK(crdt_doc_diff(b, sv_b, &upd_b));
    FZ_OK(crdt_doc_state_vector(b, sv_b));
    FZ_OK(crdt_doc_insert(b, crdt_doc_len(b), "!", 1));
    FZ_OK(crdt_doc_diff(b, sv_b, &upd_b2));
    crdt_sv_free(sv_b);
    crdt_doc_free(a);
    crdt_doc_free(b);

    aw_state *aw = NULL;
    FZ_OK(aw_new(11, &aw));
    FZ_OK(aw_set_local(aw, (const uint8_t *)"{\"cursor\":3}", 12, FZ_T0_GEN));
    FZ_OK(aw_encode_local(aw, &aw_bytes));
    aw_free(aw);

    FZ_OK(ot_op_new(&op_ins));
    FZ_OK(ot_op_insert(op_ins, "abc", 3));
    FZ_OK(ot_op_new(&op_mixed));
    FZ_OK(ot_op_retain(op_mixed, 1));
    FZ_OK(ot_op_delete(op_mixed, 1));
    FZ_OK(ot_op_insert(op_mixed, "\xc3\xa9x", 3));
    FZ_OK(ot_op_retain(op_mixed, 4)); /* base length 6: "abcabc" */
}

static void free_inputs(void)
{
    tbuf_fini(&upd_a);
    tbuf_fini(&upd_b);
    tbuf_fini(&upd_b2);
    tbuf_fini(&aw_bytes);
    crdt_sv_free(sv_empty);
    crdt_sv_free(sv_a);
    ot_op_free(op_ins);
    ot_op_free(op_mixed);
}

/* ------------------------------------------------------------ messages */

static void enc(const syncm *m, tbuf *out)
{
    tbuf_reset(out);
    FZ_OK(syncm_encode(m, out));
    syncm d;
    FZ_OK(syncm_decode(out->data, out->len, 0, &d));
    FZ_CHECK(d.type == m->type);
    syncm_clear(&d);
}

static void put_msg(const char *name, const syncm *m)
{
    tbuf b;
    tbuf_init(&b, 0);
    enc(m, &b);
    put("fuzz_sync_msg", name, b.data, b.len);
    tbuf_fini(&b);
}

static void gen_msgs(void)
{
    put_msg("hello", &(syncm){.type = SYNCM_HELLO,
                              .proto = 1,
                              .caps = SYNC_CAP_ALL,
                              .client_id = UINT64_MAX,
                              .token = S("alice:w")});
    put_msg(
        "welcome",
        &(syncm){
            .type = SYNCM_WELCOME, .proto = 1, .session_id = 7, .caps = 3, .max_frame = 1 << 20});
    put_msg("error", &(syncm){.type = SYNCM_ERROR,
                              .code = SYNC_ERR_RATE_LIMITED,
                              .channel = 2,
                              .ref = 9,
                              .retry_ms = 500,
                              .text = S("slow down \xe2\x82\xac")});
    put_msg("error-op", &(syncm){.type = SYNCM_ERROR,
                                 .code = SYNC_ERR_TOO_FAR_BEHIND,
                                 .channel = 1,
                                 .op = op_mixed});
    put_msg("ping", &(syncm){.type = SYNCM_PING, .nonce = 0x1fffffffffffffull});
    put_msg("pong", &(syncm){.type = SYNCM_PONG, .nonce = 1});
    put_msg("subscribe-crdt",
            &(syncm){.type = SYNCM_SUBSCRIBE, .channel = 1, .name = S("doc"), .sv = sv_a});
    put_msg("subscribe-ot", &(syncm){.type = SYNCM_SUBSCRIBE,
                                     .channel = SYNCM_MAX_CHANNEL,
                                     .name = S("n\xc3\xa4me"),
                                     .mode = SYNC_MODE_OT,
                                     .has_version = true,
                                     .version = 4,
                                     .has_after = true,
                                     .after = 2});
    put_msg("subscribed", &(syncm){.type = SYNCM_SUBSCRIBED,
                                   .channel = 1,
                                   .access = SYNC_ACCESS_WRITE,
                                   .version = 3,
                                   .chat_id = 5,
                                   .is_new = true,
                                   .sv = sv_empty});
    put_msg("subscribed-ot", &(syncm){.type = SYNCM_SUBSCRIBED,
                                      .channel = 3,
                                      .access = SYNC_ACCESS_READ,
                                      .mode = SYNC_MODE_OT,
                                      .version = 1});
    put_msg("unsubscribe", &(syncm){.type = SYNCM_UNSUBSCRIBE, .channel = 1});
    put_msg("sync-step", &(syncm){.type = SYNCM_SYNC_STEP, .channel = 1, .sv = sv_a});
    put_msg("update-chunk", &(syncm){.type = SYNCM_UPDATE_CHUNK,
                                     .channel = 1,
                                     .sync_id = 1,
                                     .offset = 4,
                                     .total = upd_a.len + 10,
                                     .data = B(&upd_a)});
    put_msg("update", &(syncm){.type = SYNCM_UPDATE, .channel = 1, .seq = 1, .data = B(&upd_b)});
    put_msg("ack", &(syncm){.type = SYNCM_ACK, .channel = 1, .seq = 1});
    put_msg("awareness", &(syncm){.type = SYNCM_AWARENESS, .channel = 1, .data = B(&aw_bytes)});
    put_msg("ot-op", &(syncm){.type = SYNCM_OT_OP, .channel = 1, .op_id = 1, .op = op_ins});
    put_msg("ot-ack", &(syncm){.type = SYNCM_OT_ACK, .channel = 1, .op_id = 1, .version = 1});
    put_msg("ot-remote", &(syncm){.type = SYNCM_OT_REMOTE,
                                  .channel = 1,
                                  .version = 1,
                                  .op = op_mixed,
                                  .src = 99,
                                  .op_id = 4});
    put_msg(
        "ot-snapshot",
        &(syncm){
            .type = SYNCM_OT_SNAPSHOT, .channel = 1, .version = 2, .total = 5, .data = S("hello")});
    put_msg("chat-send",
            &(syncm){.type = SYNCM_CHAT_SEND, .channel = 1, .msg_id = 1, .text = S("hi all")});
    put_msg("chat-ack", &(syncm){.type = SYNCM_CHAT_ACK,
                                 .channel = 1,
                                 .msg_id = 1,
                                 .chat_id = 3,
                                 .time_ms = 1700000000000ull});
    put_msg("chat-msg", &(syncm){.type = SYNCM_CHAT_MSG,
                                 .channel = 1,
                                 .chat_id = 3,
                                 .time_ms = 1700000000000ull,
                                 .user = S("alice"),
                                 .display = S("Alice"),
                                 .text = S("hi")});
    put_msg("chat-history",
            &(syncm){.type = SYNCM_CHAT_HISTORY, .channel = 1, .after = 2, .limit = 50});
    syncm_chat recs[2] = {
        {.id = 3, .time_ms = 10, .user = S("alice"), .display = S("Alice"), .text = S("one")},
        {.id = 4,
         .time_ms = 11,
         .user = S("bob"),
         .display = S(""),
         .text = S("two \xe2\x9c\x93")}};
    put_msg("chat-history-reply", &(syncm){.type = SYNCM_CHAT_HISTORY_REPLY,
                                           .channel = 1,
                                           .more = true,
                                           .recs = recs,
                                           .nrecs = 2});
    put_msg(
        "typing",
        &(syncm){
            .type = SYNCM_TYPING, .channel = 1, .on = true, .user = S("bob"), .display = S("Bob")});

    /* an unknown type, and PING with elements a newer peer appended */
    static const uint8_t unknown[] = {0x83, 0x18, 0x63, 0x01, 0x82, 0x40, 0x60};
    static const uint8_t extra[] = {0x84, 0x04, 0x05, 0xa1, 0x01, 0x81, 0x02, 0xf6};
    put("fuzz_sync_msg", "unknown-type", unknown, sizeof unknown);
    put("fuzz_sync_msg", "ping-extra-fields", extra, sizeof extra);
    syncm d;
    FZ_OK(syncm_decode(unknown, sizeof unknown, 0, &d));
    FZ_CHECK(d.type == SYNCM_UNKNOWN);
    FZ_OK(syncm_decode(extra, sizeof extra, 0, &d));
    FZ_CHECK(d.type == SYNCM_PING && d.nonce == 5);
}

/* ------------------------------------------------------------ scripts */

typedef struct script {
    tbuf b;
} script;

#define C_S1    0x01
#define C_DRAIN 0x02
#define C_DUR   0x04
#define C_TICK  0x08
#define C_RECON 0x10
#define C_STEP1 0x20 /* 100 ms */
#define C_STEP7 0xe0 /* 4900 ms */

/* one record: ctl, 2-byte length, frame */
static void rec(script *s, uint8_t ctl, const syncm *m)
{
    tbuf f;
    tbuf_init(&f, 0);
    enc(m, &f);
    FZ_CHECK(f.len <= 0xffff);
    uint8_t hdr[3] = {ctl, (uint8_t)(f.len >> 8), (uint8_t)f.len};
    FZ_OK(tbuf_append(&s->b, hdr, 3));
    FZ_OK(tbuf_append(&s->b, f.data, f.len));
    tbuf_fini(&f);
}

static void rec_raw(script *s, uint8_t ctl, const uint8_t *p, size_t n)
{
    uint8_t hdr[3] = {ctl, (uint8_t)(n >> 8), (uint8_t)n};
    FZ_OK(tbuf_append(&s->b, hdr, 3));
    FZ_OK(tbuf_append(&s->b, p, n));
}

static void hello(script *s, uint8_t who, uint64_t client, const char *token)
{
    rec(s, who | C_DRAIN | C_STEP1,
        &(syncm){.type = SYNCM_HELLO,
                 .proto = 1,
                 .caps = SYNC_CAP_ALL,
                 .client_id = client,
                 .token = S(token)});
}

static void sub_crdt(script *s, uint8_t who, uint32_t ch, const char *name, crdt_sv *sv)
{
    rec(s, who | C_DRAIN | C_STEP1,
        &(syncm){.type = SYNCM_SUBSCRIBE,
                 .channel = ch,
                 .name = S(name),
                 .sv = sv,
                 .has_after = true,
                 .after = 0});
}

static void sub_ot(script *s, uint8_t who, uint32_t ch, const char *name)
{
    rec(s, who | C_DRAIN | C_STEP1,
        &(syncm){.type = SYNCM_SUBSCRIBE, .channel = ch, .name = S(name), .mode = SYNC_MODE_OT});
}

static void update(script *s, uint8_t ctl, uint32_t ch, uint64_t seq, const tbuf *u)
{
    rec(s, ctl, &(syncm){.type = SYNCM_UPDATE, .channel = ch, .seq = seq, .data = B(u)});
}

/* replay - run a script against a fresh server as the harness does (the
 * harness's ctl handling, without its checks) and return the ERROR frames
 * sent */
static uint64_t replay(const script *s)
{
    fh_host h;
    sync_server_opts o = {.max_rooms = 3,
                          .max_sessions = 8,
                          .max_channels = 4,
                          .max_frame = 65536,
                          .max_out_bytes = (size_t)256 << 10,
                          .room_idle_ms = 2000,
                          .hello_timeout_ms = 5000,
                          .idle_timeout_ms = 30000,
                          .hash_seed = 42};
    uint64_t now = FZ_T0_GEN;
    fh_init(&h, &o);
    sync_session *ss[2];
    FZ_OK(sync_session_new(h.srv, now, &ss[0]));
    FZ_OK(sync_session_new(h.srv, now, &ss[1]));
    for (size_t at = 0; s->b.len - at >= 3;) {
        const uint8_t *d = s->b.data;
        uint8_t ctl = d[at];
        size_t len = (size_t)d[at + 1] << 8 | d[at + 2];
        at += 3;
        FZ_CHECK(len <= s->b.len - at);
        unsigned step = ctl >> 5;
        now += (uint64_t)step * step * 100;
        if (ctl & C_RECON) {
            sync_session_close(ss[ctl & 1], now);
            FZ_OK(sync_session_new(h.srv, now, &ss[ctl & 1]));
        }
        sync_session_recv(ss[ctl & 1], d + at, len, now);
        at += len;
        if (ctl & C_DRAIN)
            for (int i = 0; i < 2; i++) {
                const uint8_t *p;
                size_t n;
                while (sync_session_next_out(ss[i], &p, &n)) {
                    if (getenv("GEN_TRACE")) {
                        syncm m;
                        FZ_OK(syncm_decode(p, n, SYNCM_MAX_FRAME, &m));
                        fprintf(stderr, "  s%d <- %s code %llu\n", i, syncm_type_name(m.type),
                                (unsigned long long)m.code);
                        syncm_clear(&m);
                    }
                    sync_session_consume(ss[i]);
                }
            }
        if (ctl & C_DUR) fh_complete(&h);
        if (ctl & C_TICK) FZ_OK(sync_server_tick(h.srv, now));
    }
    sync_server_stats st;
    sync_server_get_stats(h.srv, &st);
    for (int i = 0; i < 2; i++) sync_session_close(ss[i], now);
    fh_complete(&h);
    fh_fini(&h);
    return st.errors_sent;
}

static void put_script(const char *name, script *s, uint64_t errors)
{
    uint64_t got = replay(s);
    if (got != errors) {
        fprintf(stderr, "gen_corpus_sync: script %s: %llu ERROR frames, expected %llu\n", name,
                (unsigned long long)got, (unsigned long long)errors);
        exit(1);
    }
    put("fuzz_sync_session", name, s->b.data, s->b.len);
    tbuf_fini(&s->b);
    tbuf_init(&s->b, 0);
}

static void gen_scripts(void)
{
    script s;
    tbuf_init(&s.b, 0);
    const uint8_t D = C_DRAIN | C_DUR | C_STEP1;

    /* two CRDT editors on one document, awareness, chat and typing */
    hello(&s, 0, 11, "");
    sub_crdt(&s, 0, 1, "doc", sv_empty);
    update(&s, D, 1, 1, &upd_a);
    hello(&s, C_S1, 12, "bob:w");
    sub_crdt(&s, C_S1, 3, "doc", sv_empty);
    update(&s, C_S1 | D, 3, 1, &upd_b);
    rec(&s, D, &(syncm){.type = SYNCM_SYNC_STEP, .channel = 1, .sv = sv_a});
    rec(&s, D, &(syncm){.type = SYNCM_AWARENESS, .channel = 1, .data = B(&aw_bytes)});
    rec(&s, C_S1 | D,
        &(syncm){.type = SYNCM_CHAT_SEND, .channel = 3, .msg_id = 1, .text = S("hello there")});
    rec(&s, C_S1 | D, &(syncm){.type = SYNCM_TYPING, .channel = 3, .on = true});
    update(&s, C_S1 | D, 3, 2, &upd_b2);
    rec(&s, D, &(syncm){.type = SYNCM_CHAT_HISTORY, .channel = 1, .after = 0, .limit = 10});
    rec(&s, D, &(syncm){.type = SYNCM_PING, .nonce = 77});
    rec(&s, D | C_TICK, &(syncm){.type = SYNCM_UNSUBSCRIBE, .channel = 1});
    put_script("crdt-two-editors", &s, 0);

    /* OT: two clients, concurrent operations at version 0, then a CRDT
     * subscriber on the same document */
    hello(&s, 0, 21, "");
    sub_ot(&s, 0, 1, "ot");
    hello(&s, C_S1, 22, "carol:w");
    sub_ot(&s, C_S1, 2, "ot");
    rec(&s, D, &(syncm){.type = SYNCM_OT_OP, .channel = 1, .op_id = 1, .op = op_ins});
    rec(&s, C_S1 | D, &(syncm){.type = SYNCM_OT_OP, .channel = 2, .op_id = 1, .op = op_ins});
    rec(&s, D,
        &(syncm){.type = SYNCM_OT_OP, .channel = 1, .version = 2, .op_id = 2, .op = op_mixed});
    sub_crdt(&s, 0, 5, "ot", sv_empty);
    update(&s, D, 5, 1, &upd_a);
    put_script("ot-two-clients", &s, 0);

    /* writes refused: a reader updates, an unknown channel, a frame before
     * HELLO, garbage; then the idle room is freed by a tick */
    static const uint8_t garbage[] = {0x82, 0x16, 0xff};
    rec(&s, D, &(syncm){.type = SYNCM_PING, .nonce = 1}); /* before HELLO */
    hello(&s, 0, 31, "dave:r");
    sub_crdt(&s, 0, 1, "ro", sv_empty);
    update(&s, D, 1, 1, &upd_a); /* NOT_ALLOWED */
    update(&s, D, 2, 1, &upd_a); /* UNKNOWN_CHANNEL */
    rec_raw(&s, D, garbage, sizeof garbage);
    sub_crdt(&s, 0, 1, "other", sv_empty); /* CHANNEL_IN_USE */
    rec(&s, D | C_TICK | C_STEP7, &(syncm){.type = SYNCM_UNSUBSCRIBE, .channel = 1});
    rec(&s, D | C_TICK | C_STEP7, &(syncm){.type = SYNCM_PING, .nonce = 2});
    /* 5: the ERROR CLOSING of s1 (HELLO timeout) is not counted in
     * errors_sent */
    put_script("refused", &s, 5);

    /* a reconnect: the room is reloaded from what was persisted, and the
     * second session catches up from a state vector */
    hello(&s, 0, 41, "");
    sub_crdt(&s, 0, 1, "doc", sv_empty);
    update(&s, D, 1, 1, &upd_a);
    update(&s, D, 1, 2, &upd_b);
    hello(&s, C_RECON | C_TICK | C_STEP7, 41, "");
    sub_crdt(&s, 0, 1, "doc", sv_a);
    hello(&s, C_S1 | C_RECON, 42, ""); /* s1 timed out waiting for HELLO */
    sub_crdt(&s, C_S1, 9, "doc", sv_empty);
    update(&s, C_S1 | D, 9, 1, &upd_b2);
    rec(&s, C_S1 | D,
        &(syncm){.type = SYNCM_UPDATE_CHUNK,
                 .channel = 9,
                 .sync_id = 1,
                 .total = upd_a.len,
                 .data = B(&upd_a)});
    put_script("reconnect", &s, 1); /* UPDATE_CHUNK is not a client message */
}

/* sync-steps: a document of some KiB, then SYNC_STEPs with an empty state
 * vector and no draining in between (each restarts the channel's transfer;
 * the queue cap of 256 KiB is out of reach of a 16 KiB script, since
 * transfers are produced only as the queue drains) */
static void gen_sync_steps(void)
{
    script s;
    tbuf_init(&s.b, 0);
    crdt_doc *d = fz_doc(51, false, 0);
    char line[64];
    for (int i = 0; crdt_doc_len_bytes(d) < 9000; i++) {
        int n = snprintf(line, sizeof line, "line %d of a long document\n", i);
        FZ_OK(crdt_doc_insert(d, crdt_doc_len(d), line, (size_t)n));
    }
    tbuf u;
    tbuf_init(&u, 0);
    FZ_OK(crdt_doc_diff(d, NULL, &u));
    FZ_CHECK(u.len < 12000);
    crdt_doc_free(d);
    hello(&s, 0, 51, "");
    sub_crdt(&s, 0, 1, "big", sv_empty);
    update(&s, C_DRAIN | C_DUR | C_STEP1, 1, 1, &u);
    for (int i = 0; i < 40; i++)
        rec(&s, C_STEP1, &(syncm){.type = SYNCM_SYNC_STEP, .channel = 1, .sv = sv_empty});
    rec(&s, C_DRAIN, &(syncm){.type = SYNCM_PING, .nonce = 3});
    tbuf_fini(&u);
    FZ_CHECK(s.b.len <= 16384);
    put_script("sync-steps", &s, 0);
    tbuf_fini(&s.b);
}

/* ------------------------------------------------------------ client seeds */

typedef struct gc_run {
    fh_host h;
    sync_session *sa, *sb;
    fc_ctx a;       /* the harness's client */
    crdt_doc *bdoc; /* the peer */
    sync_client *b;
    uint32_t bcrdt, bot;
    tbuf s; /* the script */
    uint64_t now;
} gc_run;

static void gc_rec(gc_run *r, uint8_t ctl, const uint8_t *p, size_t n)
{
    uint8_t hdr[3] = {ctl, (uint8_t)(n >> 8), (uint8_t)n};
    FZ_CHECK(n < 65536);
    FZ_OK(tbuf_append(&r->s, hdr, 3));
    FZ_OK(tbuf_append(&r->s, p, n));
    r->now += 10 + (uint64_t)(ctl >> 3) * 1000;
}

static void gc_to_session(void *ud, const uint8_t *p, size_t n)
{
    gc_run *r = ud;
    sync_session_recv(r->sa, p, n, r->now);
}

/* gc_local - a recorded local action of the harness's client */
static void gc_local(gc_run *r, uint8_t ctl, const uint8_t *p, size_t n)
{
    gc_rec(r, ctl, p, n);
    fc_local(&r->a, ctl, p, n, r->now);
}

static void gc_pump(gc_run *r)
{
    for (int round = 0; round < 64; round++) {
        bool moved = false;
        const uint8_t *p;
        size_t n;
        if (sync_client_next_out(r->a.c, &p, &n)) {
            gc_rec(r, FC_DRAIN, NULL, 0);
            fc_drain(&r->a, gc_to_session, r);
            moved = true;
        }
        while (sync_client_next_out(r->b, &p, &n)) {
            sync_session_recv(r->sb, p, n, r->now);
            sync_client_consume(r->b);
            moved = true;
        }
        if (fh_complete(&r->h)) moved = true;
        while (sync_session_next_out(r->sa, &p, &n)) {
            gc_rec(r, 0, p, n);
            sync_client_recv(r->a.c, p, n, r->now);
            sync_session_consume(r->sa);
            moved = true;
        }
        while (sync_session_next_out(r->sb, &p, &n)) {
            sync_client_recv(r->b, p, n, r->now);
            sync_session_consume(r->sb);
            moved = true;
        }
        if (!moved) return;
    }
    FZ_CHECK(!"gc_pump: no quiescence");
}

static void gc_start(gc_run *r)
{
    sync_server_opts o = {.max_rooms = 3,
                          .max_sessions = 8,
                          .max_channels = 4,
                          .max_frame = 65536,
                          .max_out_bytes = (size_t)256 << 10,
                          .room_idle_ms = 60000,
                          .hello_timeout_ms = 5000,
                          .idle_timeout_ms = 600000,
                          .hash_seed = 42};
    memset(r, 0, sizeof *r);
    r->now = FC_T0;
    tbuf_init(&r->s, 0);
    fh_init(&r->h, &o);
    FZ_OK(sync_session_new(r->h.srv, r->now, &r->sa));
    FZ_OK(sync_session_new(r->h.srv, r->now, &r->sb));
    fc_open(&r->a, r->now);
    sync_client_opts bo = {.client_id = 88, .token = (const uint8_t *)"b:w", .token_len = 3};
    r->bdoc = fz_doc(88, false, 0);
    FZ_OK(sync_client_new(&bo, NULL, &r->b));
    FZ_OK(sync_client_subscribe_crdt(r->b, "doc", r->bdoc, true, &r->bcrdt));
    FZ_OK(sync_client_subscribe_ot(r->b, "ot", false, &r->bot));
    FZ_OK(sync_client_connect(r->b, r->now));
    gc_pump(r);
}

static void gc_b_edit(gc_run *r, size_t pos, const char *text)
{
    FZ_OK(crdt_doc_insert(r->bdoc, pos, text, strlen(text)));
    FZ_OK(sync_client_flush(r->b, r->bcrdt));
}

static void gc_b_ot(gc_run *r, const char *text)
{
    tbuf t;
    tbuf_init(&t, 0);
    FZ_OK(sync_client_ot_text(r->b, r->bot, &t));
    ot_op *op = NULL;
    FZ_OK(ot_op_new(&op));
    FZ_OK(ot_op_insert(op, text, strlen(text)));
    FZ_OK(ot_op_retain(op, utf8_count(t.data, t.len)));
    FZ_OK(sync_client_ot_edit(r->b, r->bot, op));
    ot_op_free(op);
    tbuf_fini(&t);
}

/* gc_finish - both clients hold the same texts; write the seed */
static void gc_finish(gc_run *r, const char *name)
{
    gc_pump(r);
    tbuf ta, tb;
    tbuf_init(&ta, 0);
    tbuf_init(&tb, 0);
    FZ_OK(crdt_doc_text(r->a.doc, &ta));
    FZ_OK(crdt_doc_text(r->bdoc, &tb));
    FZ_CHECK(fz_buf_eq(&ta, &tb));
    tbuf_reset(&ta);
    tbuf_reset(&tb);
    FZ_OK(sync_client_ot_text(r->a.c, r->a.ch_ot, &ta));
    FZ_OK(sync_client_ot_text(r->b, r->bot, &tb));
    FZ_CHECK(fz_buf_eq(&ta, &tb));
    FZ_CHECK(sync_client_unacked(r->a.c, r->a.ch_crdt) == 0);
    tbuf_fini(&ta);
    tbuf_fini(&tb);
    put("fuzz_sync_client", name, r->s.data, r->s.len);
    sync_session_close(r->sa, r->now);
    sync_session_close(r->sb, r->now);
    fh_complete(&r->h);
    fh_fini(&r->h);
    fc_close(&r->a);
    sync_client_free(r->b);
    crdt_doc_free(r->bdoc);
    tbuf_fini(&r->s);
}

#define GC_B(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

static void gen_client(void)
{
    gc_run r;
    /* edits both ways, concurrent OT, chat, awareness, typing */
    gc_start(&r);
    gc_local(&r, FC_CRDT_EDIT, GC_B("\x00hello"));
    gc_b_edit(&r, 0, "peer ");
    gc_pump(&r);
    gc_local(&r, FC_OT_EDIT,
             GC_B("\x00"
                  "abc"));
    gc_b_ot(&r, "\xc3\xa9t\xc3\xa9 ");
    gc_pump(&r);
    gc_local(&r, FC_OT_EDIT, GC_B("\x02xy"));
    gc_local(&r, FC_OT_EDIT, GC_B("\x81"));
    gc_b_ot(&r, "B");
    gc_pump(&r);
    FZ_OK(sync_client_awareness(r.b, r.bcrdt, aw_bytes.data, aw_bytes.len));
    FZ_OK(sync_client_typing(r.b, r.bcrdt, true));
    FZ_OK(sync_client_chat_send(r.b, r.bcrdt, "hi from b", 9, NULL));
    gc_local(&r, FC_SEND, GC_B("\x00hey"));
    gc_local(&r, FC_SEND, GC_B("\x01"));
    gc_pump(&r);
    gc_local(&r, FC_CRDT_EDIT, GC_B("\x83\x02"));
    gc_local(&r, FC_SEND, GC_B("\x03"));
    gc_pump(&r);
    gc_finish(&r, "edits-chat-ot");

    /* offline edits on both sides, reconnect, resync, chat replay */
    gc_start(&r);
    gc_b_edit(&r, 0, "0123456789");
    gc_pump(&r);
    gc_local(&r, FC_RECONNECT, GC_B("\x00"));
    sync_session_close(r.sa, r.now);
    FZ_OK(sync_session_new(r.h.srv, r.now, &r.sa));
    sync_client_disconnect(r.a.c);
    gc_local(&r, FC_CRDT_EDIT, GC_B("\x05offline"));
    gc_local(&r, FC_SEND, GC_B("\x00queued"));
    gc_b_edit(&r, 10, " tail");
    FZ_OK(sync_client_chat_send(r.b, r.bcrdt, "while away", 10, NULL));
    gc_pump(&r);
    gc_local(&r, FC_RECONNECT, GC_B("\x00"));
    gc_pump(&r);
    gc_local(&r, FC_SEND, GC_B("\x02"));
    gc_pump(&r);
    gc_finish(&r, "reconnect-resync");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    make_inputs();
    gen_msgs();
    gen_scripts();
    gen_sync_steps();
    gen_client();
    free_inputs();
    return 0;
}
