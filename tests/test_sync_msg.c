/* test_sync_msg.c - sync/msg.h: every message type round-trips through
 * syncm_encode / syncm_decode; the decoder refuses hostile frames (huge
 * counts, wrong item types, truncations at every length, trailing bytes,
 * out-of-range values, bad UTF-8, oversize frames) and ignores unknown types;
 * the encoder refuses what the decoder would refuse. */
#include "msg.h"
#include "buf.h"
#include "cbor_rd.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define STR(s) ((syncm_str){(const uint8_t *)(s), sizeof(s) - 1})

static const syncm_type all_types[] = {
    SYNCM_HELLO,        SYNCM_WELCOME,
    SYNCM_ERROR,        SYNCM_PING,
    SYNCM_PONG,         SYNCM_SUBSCRIBE,
    SYNCM_SUBSCRIBED,   SYNCM_UNSUBSCRIBE,
    SYNCM_SYNC_STEP,    SYNCM_UPDATE_CHUNK,
    SYNCM_UPDATE,       SYNCM_ACK,
    SYNCM_AWARENESS,    SYNCM_OT_OP,
    SYNCM_OT_ACK,       SYNCM_OT_REMOTE,
    SYNCM_OT_SNAPSHOT,  SYNCM_CHAT_SEND,
    SYNCM_CHAT_ACK,     SYNCM_CHAT_MSG,
    SYNCM_CHAT_HISTORY, SYNCM_CHAT_HISTORY_REPLY,
    SYNCM_TYPING,
};
#define NTYPES (sizeof all_types / sizeof all_types[0])

static syncm_chat recs[2];

static crdt_sv *mk_sv(void)
{
    crdt_sv *sv = crdt_sv_new();
    ck_assert_ptr_nonnull(sv);
    ck_assert_int_eq(crdt_sv_set(sv, 7, 42), TDM_OK);
    ck_assert_int_eq(crdt_sv_set(sv, 1ull << 40, 3), TDM_OK);
    return sv;
}

static ot_op *mk_op(void)
{
    ot_op *op = NULL;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 3), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "h\xc3\xa9", 3), TDM_OK);
    ck_assert_int_eq(ot_op_delete(op, 2), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 1), TDM_OK);
    return op;
}

/* a sample of each type with every field set to something non-trivial;
 * sv and op are allocated (free with free_sample) */
static void sample(syncm_type t, syncm *m)
{
    memset(m, 0, sizeof *m);
    m->type = t;
    m->channel = 513;
    switch (t) {
    case SYNCM_HELLO:
        m->proto = 1, m->caps = SYNC_CAP_ALL, m->client_id = 0xfedcba9876543210ull;
        m->token = STR("secret-token");
        break;
    case SYNCM_WELCOME:
        m->proto = 1, m->session_id = 99, m->caps = 5, m->max_frame = 1 << 20;
        break;
    case SYNCM_ERROR:
        m->code = SYNC_ERR_TOO_FAR_BEHIND, m->ref = 17, m->retry_ms = 250;
        m->text = STR("too far behind");
        m->op = mk_op();
        break;
    case SYNCM_PING:
    case SYNCM_PONG:
        m->nonce = 123456789;
        break;
    case SYNCM_SUBSCRIBE:
        m->name = STR("notes/\xe2\x82\xac");
        m->mode = SYNC_MODE_CRDT;
        m->sv = mk_sv();
        m->has_version = false;
        m->has_after = true, m->after = 77;
        break;
    case SYNCM_SUBSCRIBED:
        m->access = SYNC_ACCESS_WRITE, m->mode = SYNC_MODE_CRDT, m->version = 900;
        m->chat_id = 31, m->is_new = true, m->sv = mk_sv();
        break;
    case SYNCM_UNSUBSCRIBE:
        break;
    case SYNCM_SYNC_STEP:
        m->sv = mk_sv();
        break;
    case SYNCM_UPDATE_CHUNK:
        m->sync_id = 4, m->offset = 100, m->total = 105, m->data = STR("\x01\x02\x03\x04\x05");
        break;
    case SYNCM_UPDATE:
        m->seq = 12, m->data = STR("\xa1\x00\x01update");
        break;
    case SYNCM_ACK:
        m->seq = 12;
        break;
    case SYNCM_AWARENESS:
        m->data = STR("\x81\x83\x01\x02\xf6");
        break;
    case SYNCM_OT_OP:
        m->version = 41, m->op_id = 3, m->op = mk_op();
        break;
    case SYNCM_OT_ACK:
        m->op_id = 3, m->version = 42;
        break;
    case SYNCM_OT_REMOTE:
        m->version = 43, m->op = mk_op(), m->src = UINT64_MAX, m->op_id = 8;
        break;
    case SYNCM_OT_SNAPSHOT:
        m->version = 43, m->offset = 0, m->total = 5, m->data = STR("hello");
        break;
    case SYNCM_CHAT_SEND:
        m->msg_id = 5, m->text = STR("hi \xf0\x9f\x98\x80");
        break;
    case SYNCM_CHAT_ACK:
        m->msg_id = 5, m->chat_id = 1001, m->time_ms = 1700000000000ull;
        break;
    case SYNCM_CHAT_MSG:
        m->chat_id = 1001, m->time_ms = 1700000000000ull, m->user = STR("u1");
        m->display = STR("Ann"), m->text = STR("hello");
        break;
    case SYNCM_CHAT_HISTORY:
        m->after = 10, m->limit = 50;
        break;
    case SYNCM_CHAT_HISTORY_REPLY:
        recs[0] = (syncm_chat){11, 1000, STR("u1"), STR("Ann"), STR("a")};
        recs[1] = (syncm_chat){12, 2000, STR("u2"), STR(""), STR("b\xc3\xa9")};
        m->more = true, m->recs = recs, m->nrecs = 2;
        break;
    case SYNCM_TYPING:
        m->on = true, m->user = STR("u1"), m->display = STR("Ann");
        break;
    default:
        ck_abort_msg("no sample");
    }
    if (t == SYNCM_HELLO || t == SYNCM_WELCOME || t == SYNCM_PING || t == SYNCM_PONG)
        m->channel = 0; /* connection-level messages carry no channel */
}

static void free_sample(syncm *m)
{
    crdt_sv_free(m->sv);
    ot_op_free(m->op);
    memset(m, 0, sizeof *m);
}

static bool str_eq(syncm_str a, syncm_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void expect_same(const syncm *a, const syncm *b)
{
    ck_assert_int_eq(a->type, b->type);
    ck_assert_uint_eq(a->channel, b->channel);
    ck_assert_uint_eq(a->proto, b->proto);
    ck_assert_uint_eq(a->caps, b->caps);
    ck_assert_uint_eq(a->client_id, b->client_id);
    ck_assert_uint_eq(a->session_id, b->session_id);
    ck_assert_uint_eq(a->max_frame, b->max_frame);
    ck_assert(str_eq(a->token, b->token));
    ck_assert_uint_eq(a->code, b->code);
    ck_assert_uint_eq(a->ref, b->ref);
    ck_assert_uint_eq(a->retry_ms, b->retry_ms);
    ck_assert_uint_eq(a->nonce, b->nonce);
    ck_assert(str_eq(a->name, b->name));
    ck_assert_uint_eq(a->mode, b->mode);
    ck_assert_uint_eq(a->access, b->access);
    ck_assert_int_eq(a->is_new, b->is_new);
    ck_assert_int_eq(!a->sv, !b->sv);
    if (a->sv) ck_assert(crdt_sv_equal(a->sv, b->sv));
    ck_assert_int_eq(a->has_version, b->has_version);
    ck_assert_uint_eq(a->version, b->version);
    ck_assert_int_eq(a->has_after, b->has_after);
    ck_assert_uint_eq(a->after, b->after);
    ck_assert_uint_eq(a->limit, b->limit);
    ck_assert_uint_eq(a->seq, b->seq);
    ck_assert_uint_eq(a->sync_id, b->sync_id);
    ck_assert_uint_eq(a->offset, b->offset);
    ck_assert_uint_eq(a->total, b->total);
    ck_assert(str_eq(a->data, b->data));
    ck_assert_int_eq(!a->op, !b->op);
    if (a->op) ck_assert(ot_op_equal(a->op, b->op));
    ck_assert_uint_eq(a->op_id, b->op_id);
    ck_assert_uint_eq(a->src, b->src);
    ck_assert_uint_eq(a->msg_id, b->msg_id);
    ck_assert_uint_eq(a->chat_id, b->chat_id);
    ck_assert_uint_eq(a->time_ms, b->time_ms);
    ck_assert(str_eq(a->user, b->user));
    ck_assert(str_eq(a->display, b->display));
    ck_assert(str_eq(a->text, b->text));
    ck_assert_int_eq(a->more, b->more);
    ck_assert_uint_eq(a->nrecs, b->nrecs);
    for (size_t i = 0; i < a->nrecs; i++) {
        ck_assert_uint_eq(a->recs[i].id, b->recs[i].id);
        ck_assert_uint_eq(a->recs[i].time_ms, b->recs[i].time_ms);
        ck_assert(str_eq(a->recs[i].user, b->recs[i].user));
        ck_assert(str_eq(a->recs[i].display, b->recs[i].display));
        ck_assert(str_eq(a->recs[i].text, b->recs[i].text));
    }
    ck_assert_int_eq(a->on, b->on);
}

static void encode_ok(const syncm *m, tbuf *b)
{
    tbuf_init(b, 0);
    ck_assert_int_eq(syncm_encode(m, b), TDM_OK);
}

/* ------------------------------------------------------------ round trips */

START_TEST(test_roundtrip_all)
{
    for (size_t i = 0; i < NTYPES; i++) {
        syncm m, d;
        sample(all_types[i], &m);
        tbuf b, b2;
        encode_ok(&m, &b);
        ck_assert_msg(syncm_decode(b.data, b.len, 0, &d) == TDM_OK, "%s",
                      syncm_type_name(all_types[i]));
        d.wire_type = 0;
        expect_same(&m, &d);
        ck_assert_uint_eq(d.type, all_types[i]);
        /* re-encoding the decoded message gives the same bytes */
        encode_ok(&d, &b2);
        ck_assert_uint_eq(b.len, b2.len);
        ck_assert_mem_eq(b.data, b2.data, b.len);
        syncm_clear(&d);
        free_sample(&m);
        tbuf_fini(&b);
        tbuf_fini(&b2);
    }
}
END_TEST

START_TEST(test_roundtrip_variants)
{
    /* OT subscribe with a version and no chat replay */
    syncm m = {.type = SYNCM_SUBSCRIBE,
               .channel = 1,
               .name = STR("d"),
               .mode = SYNC_MODE_OT,
               .has_version = true,
               .version = 0};
    syncm d;
    tbuf b;
    encode_ok(&m, &b);
    ck_assert_int_eq(syncm_decode(b.data, b.len, 0, &d), TDM_OK);
    ck_assert(d.has_version && d.version == 0 && !d.has_after && !d.sv);
    ck_assert_uint_eq(d.mode, SYNC_MODE_OT);
    syncm_clear(&d);
    tbuf_fini(&b);

    /* ERROR without an op, on the connection (channel 0) */
    syncm er = {.type = SYNCM_ERROR, .code = SYNC_ERR_MALFORMED, .text = STR("bad")};
    encode_ok(&er, &b);
    ck_assert_int_eq(syncm_decode(b.data, b.len, 0, &d), TDM_OK);
    ck_assert(d.op == NULL && d.channel == 0 && d.code == SYNC_ERR_MALFORMED);
    syncm_clear(&d);
    tbuf_fini(&b);

    /* an empty history reply and an empty chunk (empty transfer) */
    syncm hr = {.type = SYNCM_CHAT_HISTORY_REPLY, .channel = 2};
    encode_ok(&hr, &b);
    ck_assert_int_eq(syncm_decode(b.data, b.len, 0, &d), TDM_OK);
    ck_assert(d.nrecs == 0 && d.recs == NULL);
    syncm_clear(&d);
    tbuf_fini(&b);
    syncm ch = {.type = SYNCM_UPDATE_CHUNK, .channel = 2, .sync_id = 1};
    encode_ok(&ch, &b);
    ck_assert_int_eq(syncm_decode(b.data, b.len, 0, &d), TDM_OK);
    syncm_clear(&d);
    tbuf_fini(&b);

    /* a full-size chunk fits SYNCM_CHUNK_FRAME */
    static uint8_t big[SYNCM_CHUNK_DATA];
    syncm full = {.type = SYNCM_UPDATE_CHUNK,
                  .channel = SYNCM_MAX_CHANNEL,
                  .sync_id = 1u << 30,
                  .offset = (uint64_t)1 << 40,
                  .total = ((uint64_t)1 << 41),
                  .data = {big, sizeof big}};
    encode_ok(&full, &b);
    ck_assert_uint_le(b.len, SYNCM_CHUNK_FRAME);
    ck_assert_int_eq(syncm_decode(b.data, b.len, SYNCM_CHUNK_FRAME, &d), TDM_OK);
    syncm_clear(&d);
    tbuf_fini(&b);
}
END_TEST

START_TEST(test_exact_bytes)
{
    /* [22, 1, 5, h'0102'] */
    syncm m = {.type = SYNCM_UPDATE, .channel = 1, .seq = 5, .data = STR("\x01\x02")};
    tbuf b;
    encode_ok(&m, &b);
    static const uint8_t want[] = {0x84, 0x16, 0x01, 0x05, 0x42, 0x01, 0x02};
    ck_assert_uint_eq(b.len, sizeof want);
    ck_assert_mem_eq(b.data, want, sizeof want);
    tbuf_fini(&b);
    ck_assert_str_eq(syncm_type_name(SYNCM_OT_REMOTE), "OT_REMOTE");
    ck_assert_str_eq(syncm_type_name(9999), "UNKNOWN");
    ck_assert_str_eq(syncm_errcode_name(SYNC_ERR_RATE_LIMITED), "RATE_LIMITED");
    ck_assert_str_eq(syncm_errcode_name(0), "UNKNOWN");
}
END_TEST

/* ------------------------------------------------------------ hostile */

static tdm_err dec(const uint8_t *p, size_t n)
{
    syncm d;
    tdm_err e = syncm_decode(p, n, 0, &d);
    syncm_clear(&d);
    return e;
}

START_TEST(test_truncations)
{
    for (size_t i = 0; i < NTYPES; i++) {
        syncm m;
        sample(all_types[i], &m);
        tbuf b;
        encode_ok(&m, &b);
        for (size_t cut = 0; cut < b.len; cut++) {
            syncm d;
            tdm_err e = syncm_decode(b.data, cut, 0, &d);
            ck_assert_msg(e != TDM_OK, "%s cut at %zu", syncm_type_name(all_types[i]), cut);
            /* a failed decode owns nothing and is zeroed */
            ck_assert(d.sv == NULL && d.op == NULL && d.recs == NULL && d.type == 0);
        }
        /* trailing bytes */
        uint8_t *t = malloc(b.len + 1);
        memcpy(t, b.data, b.len);
        t[b.len] = 0x00;
        ck_assert_int_eq(dec(t, b.len + 1), TDM_EMALFORMED);
        free(t);
        free_sample(&m);
        tbuf_fini(&b);
    }
}
END_TEST

START_TEST(test_mutations)
{
    /* every single-byte change: never crashes, and whatever still decodes
     * re-encodes to a frame that decodes */
    for (size_t i = 0; i < NTYPES; i++) {
        syncm m;
        sample(all_types[i], &m);
        tbuf b;
        encode_ok(&m, &b);
        static const uint8_t vals[] = {0x00, 0x01, 0x17, 0x18, 0x1f, 0x3f, 0x40, 0x5f, 0x60,
                                       0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xf4, 0xf6, 0xff};
        for (size_t pos = 0; pos < b.len; pos++) {
            for (size_t v = 0; v < sizeof vals; v++) {
                uint8_t save = b.data[pos];
                b.data[pos] = vals[v];
                syncm d;
                if (syncm_decode(b.data, b.len, 0, &d) == TDM_OK && d.type != SYNCM_UNKNOWN) {
                    tbuf b2;
                    tbuf_init(&b2, 0);
                    ck_assert_int_eq(syncm_encode(&d, &b2), TDM_OK);
                    syncm d2;
                    ck_assert_int_eq(syncm_decode(b2.data, b2.len, 0, &d2), TDM_OK);
                    syncm_clear(&d2);
                    tbuf_fini(&b2);
                }
                syncm_clear(&d);
                b.data[pos] = save;
            }
        }
        free_sample(&m);
        tbuf_fini(&b);
    }
}
END_TEST

START_TEST(test_huge_counts)
{
    /* array claiming 2^32 elements */
    static const uint8_t a[] = {0x9a, 0xff, 0xff, 0xff, 0xff, 0x16, 0x01};
    ck_assert_int_eq(dec(a, sizeof a), TDM_EMALFORMED);
    /* array claiming 2^64-1 elements */
    static const uint8_t a2[] = {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x16};
    ck_assert_int_eq(dec(a2, sizeof a2), TDM_EMALFORMED);
    /* history reply with a record array claiming 1000 records */
    static const uint8_t h[] = {0x84, 0x18, 0x2c, 0x01, 0xf5, 0x99, 0x03, 0xe8};
    ck_assert_int_eq(dec(h, sizeof h), TDM_EMALFORMED);
    /* history reply with 257 (> SYNCM_MAX_HISTORY) tiny but well-formed records */
    tbuf b;
    tbuf_init(&b, 0);
    tbuf_cbor_array(&b, 4);
    tbuf_cbor_uint(&b, SYNCM_CHAT_HISTORY_REPLY);
    tbuf_cbor_uint(&b, 1);
    tbuf_cbor_bool(&b, 0);
    tbuf_cbor_array(&b, SYNCM_MAX_HISTORY + 1);
    for (unsigned i = 0; i < SYNCM_MAX_HISTORY + 1; i++) {
        tbuf_cbor_array(&b, 5);
        tbuf_cbor_uint(&b, i + 1);
        tbuf_cbor_uint(&b, 0);
        tbuf_cbor_text(&b, "u", 1);
        tbuf_cbor_text(&b, "", 0);
        tbuf_cbor_text(&b, "t", 1);
    }
    ck_assert_int_eq(dec(b.data, b.len), TDM_EMALFORMED);
    tbuf_fini(&b);
    /* update whose byte string claims 4 GiB */
    static const uint8_t u[] = {0x84, 0x16, 0x01, 0x01, 0x5a, 0xff, 0xff, 0xff, 0xff, 0x00};
    ck_assert_int_eq(dec(u, sizeof u), TDM_EMALFORMED);
    /* state vector map claiming 2^31 entries */
    static const uint8_t s[] = {0x83, 0x14, 0x01, 0xba, 0x80, 0x00, 0x00, 0x00, 0x01, 0x01};
    ck_assert_int_eq(dec(s, sizeof s), TDM_EMALFORMED);
    /* indefinite-length array */
    static const uint8_t ind[] = {0x9f, 0x04, 0x01, 0xff};
    ck_assert_int_eq(dec(ind, sizeof ind), TDM_EMALFORMED);
    /* deeply nested unknown-type frame: skipped elements nest at most 8 */
    uint8_t deep[64];
    size_t n = 0;
    deep[n++] = 0x82;
    deep[n++] = 0x18;
    deep[n++] = 0xc8; /* type 200 */
    for (int i = 0; i < 20; i++) deep[n++] = 0x81;
    deep[n++] = 0x00;
    ck_assert_int_eq(dec(deep, n), TDM_EMALFORMED);
}
END_TEST

START_TEST(test_wrong_types)
{
    /* each element after the type, in each sample, replaced by an item of
     * another CBOR type: refused (unless a null is involved: nullable fields) */
    static const uint8_t items[][3] = {{1, 0x00}, {1, 0x20}, {1, 0x40},      {1, 0x60},
                                       {1, 0x80}, {1, 0xa0}, {1, 0xf6},      {1, 0xf5},
                                       {1, 0xf7}, {1, 0xf9}, {2, 0xc1, 0x00}};
    for (size_t i = 0; i < NTYPES; i++) {
        syncm m;
        sample(all_types[i], &m);
        tbuf b;
        encode_ok(&m, &b);
        cbr r;
        cbr_init(&r, b.data, b.len);
        size_t count;
        uint64_t type;
        ck_assert_int_eq(cbr_array(&r, &count), TDM_OK);
        ck_assert_int_eq(cbr_uint(&r, &type), TDM_OK);
        for (size_t k = 1; k < count; k++) {
            size_t start = r.pos;
            cbr_type orig = cbr_peek(&r);
            ck_assert_int_eq(cbr_skip(&r, 8), TDM_OK);
            size_t end = r.pos;
            for (size_t it = 0; it < sizeof items / sizeof items[0]; it++) {
                cbr ir;
                cbr_init(&ir, items[it] + 1, items[it][0]);
                cbr_type rep = cbr_peek(&ir);
                if (items[it][1] == 0xf9) rep = CBR_BAD; /* truncated half float */
                tbuf x;
                tbuf_init(&x, 0);
                tbuf_append(&x, b.data, start);
                tbuf_append(&x, items[it] + 1, items[it][0]);
                tbuf_append(&x, b.data + end, b.len - end);
                tdm_err e = dec(x.data, x.len);
                if (rep != orig && rep != CBR_NULL && orig != CBR_NULL)
                    ck_assert_msg(e != TDM_OK, "%s element %zu item %zu",
                                  syncm_type_name(all_types[i]), k, it);
                tbuf_fini(&x);
            }
        }
        free_sample(&m);
        tbuf_fini(&b);
    }
    /* frame that is not an array; an empty array; a non-uint type */
    static const uint8_t f1[] = {0x04};
    static const uint8_t f2[] = {0x80};
    static const uint8_t f3[] = {0x81, 0x20};
    static const uint8_t f4[] = {0x81, 0x61, 0x41};
    ck_assert_int_eq(dec(f1, 1), TDM_EMALFORMED);
    ck_assert_int_eq(dec(f2, 1), TDM_EMALFORMED);
    ck_assert_int_eq(dec(f3, 2), TDM_EMALFORMED);
    ck_assert_int_eq(dec(f4, 3), TDM_EMALFORMED);
    ck_assert_int_eq(dec(NULL, 0), TDM_EMALFORMED);
}
END_TEST

START_TEST(test_values_out_of_range)
{
    /* channel 0 and 65536 */
    static const uint8_t c0[] = {0x83, 0x17, 0x00, 0x01};
    static const uint8_t cbig[] = {0x83, 0x17, 0x1a, 0x00, 0x01, 0x00, 0x00, 0x01};
    static const uint8_t cok[] = {0x83, 0x17, 0x19, 0xff, 0xff, 0x01};
    ck_assert_int_eq(dec(c0, sizeof c0), TDM_EMALFORMED);
    ck_assert_int_eq(dec(cbig, sizeof cbig), TDM_EMALFORMED);
    ck_assert_int_eq(dec(cok, sizeof cok), TDM_OK);
    /* ACK seq past 2^53 - 1 */
    static const uint8_t sq[] = {0x83, 0x17, 0x01, 0x1b, 0x00, 0x20, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(dec(sq, sizeof sq), TDM_EMALFORMED);
    /* SUBSCRIBE with mode 2 */
    static const uint8_t md[] = {0x87, 0x0a, 0x01, 0x61, 'd', 0x02, 0xf6, 0xf6, 0xf6};
    ck_assert_int_eq(dec(md, sizeof md), TDM_EMALFORMED);
    /* SUBSCRIBE OT mode with a state vector; CRDT mode without */
    static const uint8_t ots[] = {0x87, 0x0a, 0x01, 0x61, 'd', 0x01, 0xa0, 0xf6, 0xf6};
    static const uint8_t crn[] = {0x87, 0x0a, 0x01, 0x61, 'd', 0x00, 0xf6, 0xf6, 0xf6};
    static const uint8_t crok[] = {0x87, 0x0a, 0x01, 0x61, 'd', 0x00, 0xa0, 0xf6, 0xf6};
    ck_assert_int_eq(dec(ots, sizeof ots), TDM_EMALFORMED);
    ck_assert_int_eq(dec(crn, sizeof crn), TDM_EMALFORMED);
    ck_assert_int_eq(dec(crok, sizeof crok), TDM_OK);
    /* empty name */
    static const uint8_t en[] = {0x87, 0x0a, 0x01, 0x60, 0x00, 0xa0, 0xf6, 0xf6};
    ck_assert_int_eq(dec(en, sizeof en), TDM_EMALFORMED);
    /* bad UTF-8 in the name */
    static const uint8_t bu[] = {0x87, 0x0a, 0x01, 0x61, 0xc0, 0x00, 0xa0, 0xf6, 0xf6};
    ck_assert_int_eq(dec(bu, sizeof bu), TDM_EUTF8);
    /* chunk outside its total; empty chunk of a non-empty transfer */
    static const uint8_t ck1[] = {0x86, 0x15, 0x01, 0x01, 0x04, 0x05, 0x42, 0x01, 0x02};
    static const uint8_t ck2[] = {0x86, 0x15, 0x01, 0x01, 0x00, 0x05, 0x40};
    ck_assert_int_eq(dec(ck1, sizeof ck1), TDM_EMALFORMED);
    ck_assert_int_eq(dec(ck2, sizeof ck2), TDM_EMALFORMED);
    /* HELLO protocol version 0 */
    static const uint8_t h0[] = {0x85, 0x01, 0x00, 0x00, 0x00, 0x40};
    ck_assert_int_eq(dec(h0, sizeof h0), TDM_EMALFORMED);
    /* state vector with a zero clock; OT op with a zero retain */
    static const uint8_t sv0[] = {0x83, 0x14, 0x01, 0xa1, 0x01, 0x00};
    ck_assert_int_eq(dec(sv0, sizeof sv0), TDM_EMALFORMED);
    static const uint8_t op0[] = {0x85, 0x1e, 0x01, 0x00, 0x01, 0x81, 0x00};
    ck_assert_int_eq(dec(op0, sizeof op0), TDM_EMALFORMED);
    /* a too-long token (4097 bytes) */
    tbuf b;
    tbuf_init(&b, 0);
    tbuf_cbor_array(&b, 5);
    tbuf_cbor_uint(&b, 1);
    tbuf_cbor_uint(&b, 1);
    tbuf_cbor_uint(&b, 0);
    tbuf_cbor_uint(&b, 0);
    uint8_t *tok = calloc(SYNCM_MAX_TOKEN + 1, 1);
    tbuf_cbor_bytes(&b, tok, SYNCM_MAX_TOKEN + 1);
    ck_assert_int_eq(dec(b.data, b.len), TDM_EMALFORMED);
    free(tok);
    tbuf_fini(&b);
    /* fewer fields than the type needs */
    static const uint8_t few[] = {0x82, 0x17, 0x01};
    ck_assert_int_eq(dec(few, sizeof few), TDM_EMALFORMED);
}
END_TEST

START_TEST(test_unknown_and_extra)
{
    /* unknown type 200 with a few elements: decodes as UNKNOWN */
    static const uint8_t u[] = {0x83, 0x18, 0xc8, 0x01, 0x82, 0x61, 'x', 0xf6};
    syncm d;
    ck_assert_int_eq(syncm_decode(u, sizeof u, 0, &d), TDM_OK);
    ck_assert_int_eq(d.type, SYNCM_UNKNOWN);
    ck_assert_uint_eq(d.wire_type, 200);
    syncm_clear(&d);
    /* unknown type numbers inside the known range (6) and one huge one */
    static const uint8_t u6[] = {0x81, 0x06};
    ck_assert_int_eq(syncm_decode(u6, sizeof u6, 0, &d), TDM_OK);
    ck_assert_int_eq(d.type, SYNCM_UNKNOWN);
    static const uint8_t uh[] = {0x81, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(syncm_decode(uh, sizeof uh, 0, &d), TDM_OK);
    ck_assert_int_eq(d.type, SYNCM_UNKNOWN);
    /* unknown but malformed: still an error */
    static const uint8_t ub[] = {0x83, 0x18, 0xc8, 0x01};
    ck_assert_int_eq(dec(ub, sizeof ub), TDM_EMALFORMED);
    /* a known frame with extra trailing elements from a newer peer */
    static const uint8_t ex[] = {0x85, 0x17, 0x01, 0x05, 0x82, 0x01, 0x02, 0x63, 'n', 'e', 'w'};
    ck_assert_int_eq(syncm_decode(ex, sizeof ex, 0, &d), TDM_OK);
    ck_assert_int_eq(d.type, SYNCM_ACK);
    ck_assert_uint_eq(d.seq, 5);
    syncm_clear(&d);
}
END_TEST

START_TEST(test_frame_cap)
{
    static uint8_t big[2000];
    syncm m = {.type = SYNCM_UPDATE, .channel = 1, .seq = 1, .data = {big, sizeof big}};
    tbuf b;
    encode_ok(&m, &b);
    syncm d;
    ck_assert_int_eq(syncm_decode(b.data, b.len, 1000, &d), TDM_ETOOBIG);
    ck_assert_int_eq(syncm_decode(b.data, b.len, b.len, &d), TDM_OK);
    syncm_clear(&d);
    tbuf_fini(&b);
}
END_TEST

START_TEST(test_encode_refuses)
{
    tbuf b;
    tbuf_init(&b, 0);
    tbuf_append(&b, "xy", 2);
    syncm m = {.type = SYNCM_ACK, .channel = 0, .seq = 1};
    ck_assert_int_eq(syncm_encode(&m, &b), TDM_EINVAL); /* channel 0 */
    m.channel = 1, m.seq = (uint64_t)1 << 60;
    ck_assert_int_eq(syncm_encode(&m, &b), TDM_EINVAL); /* unsafe integer */
    syncm u = {.type = SYNCM_UNKNOWN};
    ck_assert_int_eq(syncm_encode(&u, &b), TDM_EINVAL);
    syncm t = {.type = SYNCM_CHAT_SEND, .channel = 1, .msg_id = 1, .text = STR("\xff")};
    ck_assert_int_eq(syncm_encode(&t, &b), TDM_EINVAL); /* not UTF-8 */
    syncm o = {.type = SYNCM_OT_OP, .channel = 1};
    ck_assert_int_eq(syncm_encode(&o, &b), TDM_EINVAL); /* no op */
    syncm c = {
        .type = SYNCM_UPDATE_CHUNK, .channel = 1, .offset = 3, .total = 4, .data = STR("ab")};
    ck_assert_int_eq(syncm_encode(&c, &b), TDM_EINVAL); /* past the total */
    ck_assert_uint_eq(b.len, 2);                        /* untouched */
    tbuf_fini(&b);
    /* a capped buffer that cannot hold the frame */
    tbuf small;
    tbuf_init(&small, 4);
    syncm up = {.type = SYNCM_UPDATE, .channel = 1, .seq = 1, .data = STR("0123456789")};
    ck_assert_int_eq(syncm_encode(&up, &small), TDM_ETOOBIG);
    ck_assert_uint_eq(small.len, 0);
    tbuf_fini(&small);
}
END_TEST

static Suite *msg_suite(void)
{
    Suite *s = suite_create("sync_msg");
    TCase *tr = tcase_create("roundtrip");
    tcase_add_test(tr, test_roundtrip_all);
    tcase_add_test(tr, test_roundtrip_variants);
    tcase_add_test(tr, test_exact_bytes);
    suite_add_tcase(s, tr);
    TCase *th = tcase_create("hostile");
    tcase_add_test(th, test_truncations);
    tcase_add_test(th, test_mutations);
    tcase_add_test(th, test_huge_counts);
    tcase_add_test(th, test_wrong_types);
    tcase_add_test(th, test_values_out_of_range);
    tcase_add_test(th, test_unknown_and_extra);
    tcase_add_test(th, test_frame_cap);
    tcase_add_test(th, test_encode_refuses);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(msg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
