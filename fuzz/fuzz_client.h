/* fuzz_client.h - the client under test of fuzz_sync_client and its local
 * actions, shared with the seed generator (gen_corpus_sync.c) so that a seed
 * recorded against a real server replays exactly in the harness.
 *
 * One sync_client (client id FC_CLIENT_ID, small caps) with a CRDT channel on
 * "doc" (a borrowed crdt_doc, chat replay on) and an OT channel on "ot".
 * Script records are [ctl][len:2 big-endian][len bytes]; fc_local performs
 * the local actions (ctl % 8 >= 3), the caller feeds frames (ctl % 8 < 3)
 * to sync_client_recv. Harness-only code: everything is static.
 */
#ifndef TANDEM_FUZZ_CLIENT_H
#define TANDEM_FUZZ_CLIENT_H

#include "fuzz_util.h"
#include "client.h"
#include "msg.h"
#include "ot.h"

#define FC_CLIENT_ID 77
#define FC_T0        1700000000000ull

enum {
    FC_RECV_MAX = 2, /* ctl % 8 in 0..2: a frame from the server */
    FC_CRDT_EDIT = 3,
    FC_OT_EDIT = 4,
    FC_DRAIN = 5,
    FC_SEND = 6,
    FC_RECONNECT = 7
};

typedef struct fc_ctx {
    crdt_doc *doc;
    sync_client *c;
    uint32_t ch_crdt, ch_ot;
    size_t frames_out;   /* frames drained */
    uint64_t chat_id[2]; /* last chat record delivered on ch_crdt, ch_ot */
    size_t chats;        /* records delivered */
    uint64_t sent[256];  /* client message ids of the chat messages sent */
    bool acked[256];     /* ... and whether CHAT_ACK reported them */
    size_t nsent;
} fc_ctx;

#include "utf8.h"

/* on_chat - records reach the application once each, in increasing id
 * order per channel (client.h), with text fields that are strict UTF-8,
 * and the channel's last chat id is the record's. */
static void fc_on_chat(void *ctx, uint32_t channel, const syncm_chat *rec)
{
    fc_ctx *f = ctx;
    FZ_CHECK(channel == f->ch_crdt || channel == f->ch_ot);
    int k = channel == f->ch_ot;
    FZ_CHECK(rec->id > f->chat_id[k]);
    f->chat_id[k] = rec->id;
    FZ_CHECK(sync_client_chat_last(f->c, channel) == rec->id);
    FZ_CHECK(utf8_validate(rec->text.p, rec->text.n, NULL, NULL));
    FZ_CHECK(utf8_validate(rec->user.p, rec->user.n, NULL, NULL));
    FZ_CHECK(utf8_validate(rec->display.p, rec->display.n, NULL, NULL));
    f->chats++;
}

/* on_chat_ack - only for a message we sent, once */
static void fc_on_chat_ack(void *ctx, uint32_t channel, uint64_t msg_id, uint64_t chat_id)
{
    fc_ctx *f = ctx;
    (void)chat_id;
    FZ_CHECK(channel == f->ch_crdt);
    size_t i = 0;
    while (i < f->nsent && f->sent[i] != msg_id) i++;
    FZ_CHECK(i < f->nsent);
    FZ_CHECK(!f->acked[i]);
    f->acked[i] = true;
}

static void fc_open(fc_ctx *f, uint64_t now)
{
    sync_client_opts o = {.client_id = FC_CLIENT_ID,
                          .token = (const uint8_t *)"fz:w",
                          .token_len = 4,
                          .max_out_bytes = (size_t)1 << 20,
                          .max_unacked_bytes = (size_t)1 << 20,
                          .max_frame = (size_t)64 << 10,
                          .max_transfer_bytes = (size_t)256 << 10,
                          .max_channels = 4,
                          .max_chat_pending = 8};
    memset(f, 0, sizeof *f);
    f->doc = fz_doc(FC_CLIENT_ID, false, (size_t)256 << 10);
    sync_client_events ev = {.ctx = f, .on_chat = fc_on_chat, .on_chat_ack = fc_on_chat_ack};
    FZ_OK(sync_client_new(&o, &ev, &f->c));
    FZ_OK(sync_client_subscribe_crdt(f->c, "doc", f->doc, true, &f->ch_crdt));
    FZ_OK(sync_client_subscribe_ot(f->c, "ot", false, &f->ch_ot));
    FZ_OK(sync_client_connect(f->c, now));
}

static void fc_close(fc_ctx *f)
{
    sync_client_free(f->c);
    crdt_doc_free(f->doc);
    memset(f, 0, sizeof *f);
}

/* fc_ascii - bytes mapped to printable ASCII, at most cap of them */
static size_t fc_ascii(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t k = n < cap ? n : cap;
    for (size_t i = 0; i < k; i++) out[i] = (char)('a' + p[i] % 26);
    return k;
}

/* fc_drain - hand every queued frame to `sink` (may be NULL); each must
 * decode (the client only encodes valid frames). */
static void fc_drain(fc_ctx *f, void (*sink)(void *, const uint8_t *, size_t), void *ud)
{
    const uint8_t *p;
    size_t n;
    while (sync_client_next_out(f->c, &p, &n)) {
        syncm m;
        FZ_OK(syncm_decode(p, n, SYNCM_MAX_FRAME, &m));
        syncm_clear(&m);
        if (sink) sink(ud, p, n);
        sync_client_consume(f->c);
        f->frames_out++;
    }
}

/* fc_local - a local action (ctl % 8 >= FC_CRDT_EDIT). Errors of the client
 * calls are allowed where the header documents them (caps, disconnected
 * state); state consistency is checked by the caller. */
static void fc_local(fc_ctx *f, uint8_t ctl, const uint8_t *p, size_t n, uint64_t now)
{
    char txt[64];
    switch (ctl % 8) {
    case FC_CRDT_EDIT: {
        if (n == 0) break;
        size_t len = crdt_doc_len(f->doc);
        size_t pos = len ? p[0] % (len + 1) : 0;
        if ((p[0] & 0x80) && len > 0) {
            size_t cnt = 1 + (n > 1 ? p[1] % 8 : 0);
            if (pos >= len) pos = len - 1;
            if (cnt > len - pos) cnt = len - pos;
            FZ_OK(crdt_doc_delete(f->doc, pos, cnt));
        } else if (n > 1) {
            size_t k = fc_ascii(p + 1, n - 1, txt, sizeof txt);
            FZ_OK(crdt_doc_insert(f->doc, pos, txt, k));
        }
        tdm_err e = sync_client_flush(f->c, f->ch_crdt);
        FZ_CHECK(e == TDM_OK || e == TDM_ETOOBIG);
        break;
    }
    case FC_OT_EDIT: {
        if (n == 0) break;
        tbuf t;
        tbuf_init(&t, 0);
        FZ_OK(sync_client_ot_text(f->c, f->ch_ot, &t));
        size_t len = 0;
        for (size_t i = 0; i < t.len; i++) len += (t.data[i] & 0xC0) != 0x80;
        size_t pos = p[0] % (len + 1);
        ot_op *op = NULL;
        FZ_OK(ot_op_new(&op));
        FZ_OK(ot_op_retain(op, pos));
        if ((p[0] & 0x80) && pos < len) {
            FZ_OK(ot_op_delete(op, 1));
            FZ_OK(ot_op_retain(op, len - pos - 1));
        } else {
            size_t k = fc_ascii(p + 1, n - 1, txt, sizeof txt);
            if (k == 0) txt[k++] = 'o';
            FZ_OK(ot_op_insert(op, txt, k));
            FZ_OK(ot_op_retain(op, len - pos));
        }
        /* TDM_EINVAL: the channel holds no version yet (before its first
         * SUBSCRIBED); then, as for any error, the text stays as it was */
        tdm_err e = sync_client_ot_edit(f->c, f->ch_ot, op);
        FZ_CHECK(e == TDM_OK || e == TDM_ETOOBIG || e == TDM_EINVAL);
        if (e != TDM_OK) {
            tbuf t2;
            tbuf_init(&t2, 0);
            FZ_OK(sync_client_ot_text(f->c, f->ch_ot, &t2));
            FZ_CHECK(fz_buf_eq(&t, &t2));
            tbuf_fini(&t2);
        }
        tbuf_fini(&t);
        ot_op_free(op);
        break;
    }
    case FC_DRAIN:
        fc_drain(f, NULL, NULL);
        break;
    case FC_SEND: {
        uint8_t what = n ? p[0] % 4 : 0;
        size_t k = fc_ascii(n ? p + 1 : p, n ? n - 1 : 0, txt, sizeof txt);
        tdm_err e = TDM_OK;
        if (what == 0 && k > 0 && f->nsent < 256) {
            uint64_t id = 0;
            e = sync_client_chat_send(f->c, f->ch_crdt, txt, k, &id);
            if (e == TDM_OK) f->sent[f->nsent++] = id;
        } else if (what == 1)
            e = sync_client_typing(f->c, f->ch_crdt, k & 1);
        else if (what == 2)
            e = sync_client_sync_step(f->c, f->ch_crdt);
        else
            e = sync_client_ping(f->c, k);
        FZ_CHECK(e == TDM_OK || e == TDM_ETOOBIG);
        break;
    }
    case FC_RECONNECT:
        if (n && (p[0] & 1)) {
            FZ_OK(sync_client_retry(f->c));
        } else {
            sync_client_disconnect(f->c);
            FZ_OK(sync_client_connect(f->c, now));
        }
        break;
    default:
        break;
    }
}

#endif
