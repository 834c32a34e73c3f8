/* fuzz_sync_client.c - libFuzzer harness for the client side of the sync
 * protocol (sync/client.h) fed arbitrary frames from a "server".
 *
 * The client of fuzz_client.h (a CRDT channel on a borrowed document, an OT
 * channel, chat replay) connects; the input is a script of records
 * [ctl][len:2 big-endian][len bytes]: ctl % 8 in 0..2 feeds the bytes to
 * sync_client_recv as one frame, 3..7 are local actions (CRDT edit + flush,
 * OT edit, drain the outbound queue, chat/typing/sync step/ping, reconnect
 * or retry). The clock moves 10 ms per record (ctl >> 3 adds seconds).
 * Invariants:
 *   - a frame refused as TDM_EMALFORMED changes nothing: the document's text,
 *     state vector, delete set and pending count, the OT text, version and
 *     state, the last chat id and the unacked count are as before;
 *   - after every record the document's text is strict UTF-8 with the
 *     lengths it reports, and the OT text is strict UTF-8;
 *   - every frame the client queues decodes (syncm_decode);
 *   - chat records reach the application once each, in increasing id order
 *     per channel, the channel's last chat id is the record's, and their
 *     text, user and display fields are strict UTF-8; CHAT_ACK reaches the
 *     application only for a message we sent, once;
 *   - at the end the document still encodes: its snapshot loads into a
 *     fresh document with the same text, state vector and delete set, and
 *     its full diff applied to another fresh document gives the same text;
 *   - freeing the client and the document leaves nothing (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_client.h"
#include "utf8.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

typedef struct fsc_snap {
    fz_state doc;
    tbuf ot;
    uint64_t ot_version, chat_last;
    sync_ot_state ot_state;
    size_t unacked;
} fsc_snap;

static void fsc_take(fc_ctx *f, fsc_snap *s)
{
    fz_capture(f->doc, &s->doc);
    tbuf_reset(&s->ot);
    FZ_OK(sync_client_ot_text(f->c, f->ch_ot, &s->ot));
    FZ_CHECK(utf8_validate(s->ot.data, s->ot.len, NULL, NULL));
    s->ot_version = sync_client_ot_version(f->c, f->ch_ot);
    s->ot_state = sync_client_ot_state(f->c, f->ch_ot);
    s->chat_last = sync_client_chat_last(f->c, f->ch_crdt);
    s->unacked = sync_client_unacked(f->c, f->ch_crdt);
}

static bool fsc_same(const fsc_snap *a, const fsc_snap *b)
{
    return fz_same_state(&a->doc, &b->doc) && fz_buf_eq(&a->ot, &b->ot) &&
           a->ot_version == b->ot_version && a->ot_state == b->ot_state &&
           a->chat_last == b->chat_last && a->unacked == b->unacked;
}

static void fsc_check_reload(crdt_doc *d)
{
    fz_state s0, s1, s2;
    fz_state_init(&s0);
    fz_state_init(&s1);
    fz_state_init(&s2);
    fz_capture(d, &s0);
    tbuf snap, diff;
    tbuf_init(&snap, 0);
    tbuf_init(&diff, 0);
    FZ_OK(crdt_doc_snapshot(d, &snap));
    crdt_doc *r = fz_doc(1, false, 0);
    FZ_OK(crdt_doc_load(r, snap.data, snap.len));
    fz_capture(r, &s1);
    FZ_CHECK(fz_same_text(&s0, &s1));
    FZ_CHECK(crdt_sv_equal(s0.sv, s1.sv));
    FZ_CHECK(crdt_ds_equal(s0.ds, s1.ds));
    FZ_OK(crdt_doc_diff(d, NULL, &diff));
    crdt_doc *r2 = fz_doc(2, false, 0);
    FZ_OK(crdt_doc_apply(r2, diff.data, diff.len));
    fz_capture(r2, &s2);
    FZ_CHECK(fz_same_text(&s0, &s2));
    crdt_doc_free(r);
    crdt_doc_free(r2);
    tbuf_fini(&snap);
    tbuf_fini(&diff);
    fz_state_fini(&s0);
    fz_state_fini(&s1);
    fz_state_fini(&s2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_ctx f;
    uint64_t now = FC_T0;
    fc_open(&f, now);
    fsc_snap before, after;
    fz_state_init(&before.doc);
    fz_state_init(&after.doc);
    tbuf_init(&before.ot, 0);
    tbuf_init(&after.ot, 0);
    size_t at = 0;
    for (int steps = 0; size - at >= 3 && steps < 256; steps++) {
        uint8_t ctl = data[at];
        size_t len = (size_t)data[at + 1] << 8 | data[at + 2];
        at += 3;
        if (len > size - at) len = size - at;
        const uint8_t *p = data + at;
        at += len;
        now += 10 + (uint64_t)(ctl >> 3) * 1000;
        if (ctl % 8 <= FC_RECV_MAX) {
            fsc_take(&f, &before);
            tdm_err e = sync_client_recv(f.c, p, len, now);
            fsc_take(&f, &after);
            if (e == TDM_EMALFORMED) FZ_CHECK(fsc_same(&before, &after));
        } else {
            fc_local(&f, ctl, p, len, now);
            fsc_take(&f, &after);
        }
    }
    fc_drain(&f, NULL, NULL);
    fsc_check_reload(f.doc);
    fz_state_fini(&before.doc);
    fz_state_fini(&after.doc);
    tbuf_fini(&before.ot);
    tbuf_fini(&after.ot);
    fc_close(&f);
    return 0;
}
