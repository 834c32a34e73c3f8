/* fuzz_sync_session.c - libFuzzer harness: a sync_server (sync/session.h) with
 * an in-memory host (fuzz_sync_host.h) and two sessions, fed a script of
 * frames from the input.
 *
 * Input: records [ctl][len hi][len lo][len bytes of frame] (a short last
 * record takes what is left). ctl bits:
 *   0     which session gets the frame (0 or 1)
 *   1     drain both sessions' outbound queues afterwards (a closing session
 *         is then closed and replaced by a new connection)
 *   2     report every queued write durable afterwards
 *   3     run sync_server_tick afterwards
 *   4     reconnect the session (close it, open a new one) before the frame
 *   5..7  the clock advances by (ctl >> 5)^2 * 100 ms before the frame
 * The clock starts at a fixed Unix time and only moves forwards.
 *
 * Invariants:
 *   - no crash, leak or sanitizer report; no host callback sees a bad
 *     argument (names of 1..SYNCM_MAX_NAME bytes, contiguous OT versions,
 *     tokens the server knows: sync_server_durable returns TDM_OK for each);
 *   - sync_session_recv returns an error only for a frame it answered with an
 *     ERROR frame (or that closed the session); a closing session ignores
 *     frames (TDM_OK);
 *   - after every step each session's outbound bytes stay within
 *     max_out_bytes (a closing session: plus its final ERROR CLOSING), and every frame the server
 * sends decodes (syncm_decode) as a known type within SYNCM_MAX_FRAME;
 *   - at the end, for every room in memory: its snapshot loads into a fresh
 *     document with the same text, which is also sync_server_room_text; the
 *     updates handed to persist_update, replayed into a fresh document, give
 *     the same text (what was acknowledged is what a restart reloads);
 *   - after closing every session the server holds no sessions; after the
 *     remaining writes complete nothing is pending and no stream bytes are
 *     held; once the rooms have idled out no room is in memory.
 */
#include "fuzz_sync_host.h"

#define FZ_T0        1700000000000ull
#define FZ_OUT_CAP   ((size_t)256 << 10)
#define FZ_ROOM_IDLE 2000u

static sync_server_opts opts = {.max_rooms = 3,
                                .max_sessions = 8,
                                .max_channels = 4,
                                .max_frame = 65536,
                                .max_hello_frame = 8192,
                                .max_out_bytes = FZ_OUT_CAP,
                                .max_pending = 256,
                                .ot_history = 8,
                                .ot_history_bytes = 4096,
                                .max_doc_bytes = (size_t)1 << 20,
                                .room_idle_ms = FZ_ROOM_IDLE,
                                .hello_timeout_ms = 5000,
                                .idle_timeout_ms = 30000,
                                .hash_seed = 42};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* the cap holds, except for the final ERROR CLOSING of a session marked for
 * closing (session.h: it is queued past the cap; its text is one of the
 * server's short reasons) */
#define FZ_CLOSING_SLACK 512u

static void check_queue(sync_session *ss)
{
    size_t n = sync_session_out_bytes(ss);
    if (sync_session_closing(ss, NULL))
        FZ_CHECK(n <= FZ_OUT_CAP + FZ_CLOSING_SLACK);
    else
        FZ_CHECK(n <= FZ_OUT_CAP);
}

/* drain - send everything queued; every frame must decode */
static void drain(sync_session *ss)
{
    const uint8_t *p;
    size_t n;
    size_t frames = 0;
    while (sync_session_next_out(ss, &p, &n)) {
        syncm m;
        FZ_OK(syncm_decode(p, n, SYNCM_MAX_FRAME, &m));
        FZ_CHECK(m.type != SYNCM_UNKNOWN);
        syncm_clear(&m);
        sync_session_consume(ss);
        check_queue(ss);
        FZ_CHECK(++frames < 1000000);
    }
}

static sync_session *connect(fh_host *h, uint64_t now)
{
    sync_session *ss = NULL;
    FZ_OK(sync_session_new(h->srv, now, &ss));
    return ss;
}

static void text_of(crdt_doc *d, tbuf *out)
{
    tbuf_reset(out);
    FZ_OK(crdt_doc_text(d, out));
}

/* check_room - the room's document against its snapshot and its stored log */
static void check_room(fh_host *h, fh_doc *fd)
{
    crdt_doc *d = sync_server_room_doc(h->srv, fd->name);
    if (!d) {
        tbuf t;
        tbuf_init(&t, 0);
        FZ_CHECK(sync_server_room_text(h->srv, fd->name, &t) == TDM_ENOTFOUND);
        tbuf_fini(&t);
        return;
    }
    tbuf text, snap, t2, t3;
    tbuf_init(&text, 0);
    tbuf_init(&snap, 0);
    tbuf_init(&t2, 0);
    tbuf_init(&t3, 0);
    text_of(d, &text);
    FZ_OK(crdt_doc_snapshot(d, &snap));

    FZ_OK(sync_server_room_text(h->srv, fd->name, &t2));
    FZ_CHECK(fz_buf_eq(&text, &t2));

    crdt_doc *l = fz_doc(7, false, 0);
    FZ_OK(crdt_doc_load(l, snap.data, snap.len));
    text_of(l, &t2);
    FZ_CHECK(fz_buf_eq(&text, &t2));
    crdt_doc_free(l);

    crdt_doc *r = fz_doc(8, false, 0);
    for (size_t i = 0; i < fd->nupdates; i++)
        FZ_OK(crdt_doc_apply(r, fd->updates[i].p, fd->updates[i].n));
    text_of(r, &t3);
    FZ_CHECK(fz_buf_eq(&text, &t3));
    crdt_doc_free(r);

    tbuf_fini(&text);
    tbuf_fini(&snap);
    tbuf_fini(&t2);
    tbuf_fini(&t3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fh_host h;
    uint64_t now = FZ_T0;
    fh_init(&h, &opts);
    sync_session *ss[2] = {connect(&h, now), connect(&h, now)};

    size_t at = 0;
    while (size - at >= 3) {
        uint8_t ctl = data[at];
        size_t len = (size_t)data[at + 1] << 8 | data[at + 2];
        at += 3;
        if (len > size - at) len = size - at;
        const uint8_t *frame = data + at;
        at += len;

        unsigned step = ctl >> 5;
        now += (uint64_t)step * step * 100;
        sync_session **s = &ss[ctl & 1];
        if (ctl & 0x10) {
            sync_session_close(*s, now);
            *s = connect(&h, now);
        }
        sync_server_stats before, after;
        sync_server_get_stats(h.srv, &before);
        bool was_closing = sync_session_closing(*s, NULL);
        tdm_err e = sync_session_recv(*s, frame, len, now);
        sync_server_get_stats(h.srv, &after);
        if (was_closing) FZ_CHECK(e == TDM_OK); /* ignored */
        /* a refused frame was answered with an ERROR (or closes the session) */
        if (e != TDM_OK)
            FZ_CHECK(after.errors_sent > before.errors_sent || sync_session_closing(*s, NULL));
        for (int i = 0; i < 2; i++) check_queue(ss[i]);
        if (ctl & 0x02)
            for (int i = 0; i < 2; i++) {
                drain(ss[i]);
                if (sync_session_closing(ss[i], NULL)) {
                    sync_session_close(ss[i], now);
                    ss[i] = connect(&h, now);
                }
            }
        if (ctl & 0x04) fh_complete(&h);
        if (ctl & 0x08) FZ_OK(sync_server_tick(h.srv, now));
        for (int i = 0; i < 2; i++) check_queue(ss[i]);
    }

    /* settle: writes complete, queues drain (acks, broadcasts, chunks) */
    fh_complete(&h);
    for (int i = 0; i < 2; i++) drain(ss[i]);
    for (size_t i = 0; i < h.ndocs; i++) check_room(&h, &h.docs[i]);

    for (int i = 0; i < 2; i++) sync_session_close(ss[i], now);
    sync_server_stats st;
    sync_server_get_stats(h.srv, &st);
    FZ_CHECK(st.sessions == 0);
    fh_complete(&h);
    sync_server_get_stats(h.srv, &st);
    FZ_CHECK(st.pending == 0);
    FZ_CHECK(st.stream_bytes == 0);
    now += FZ_ROOM_IDLE + 1;
    FZ_OK(sync_server_tick(h.srv, now));
    sync_server_get_stats(h.srv, &st);
    FZ_CHECK(st.rooms == 0);
    fh_fini(&h);
    return 0;
}
