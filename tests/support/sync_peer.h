/* sync_peer.h - a sync_client over a real WebSocket (ws_client.h) for the
 * network suites (prefix np_): one peer = one sync_client on one channel of
 * one room, in CRDT mode (it owns a crdt_doc) or OT mode, with a presence
 * view (aw_state fed from AWARENESS frames) and counters for what the
 * callbacks saw (acks, errors, chat, typing). Also raw syncm frames over a
 * wsc_conn for tests that must send exactly one frame.
 *
 * Failures are Check assertions (ck_assert), so call these from Check tests.
 * Threads: one thread per wsc_ctx and its peers; no globals.
 */
#ifndef TANDEM_SYNC_PEER_H
#define TANDEM_SYNC_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "awareness.h"
#include "client.h"
#include "doc.h"
#include "msg.h"
#include "ws_client.h"

#define NP_MAX_CHAT 512u /* chat records remembered per peer */

typedef struct np_peer {
    wsc_ctx *x; /* borrowed */
    int port;
    wsc_conn *ws; /* the current connection (belongs to x) */
    sync_client *cl;
    crdt_doc *doc; /* CRDT mode: owned; OT mode: NULL */
    aw_state *aw;  /* presence as this peer sees it (owned) */
    uint32_t ch;
    bool ot;
    uint64_t client_id;
    /* what the callbacks saw */
    uint64_t acks, errors, remote, chat_acks;
    uint64_t last_err_code, last_err_retry_ms, last_err_ref;
    char last_err_text[SYNCM_MAX_ERROR_TEXT + 1];
    int subscribed;  /* SUBSCRIBED frames seen */
    uint64_t access; /* SYNC_ACCESS_* of the last SUBSCRIBED */
    uint64_t err_count[SYNC_ERR_CLOSING + 1];
    uint64_t chat_ids[NP_MAX_CHAT];
    size_t nchat; /* records seen (live and history) */
    uint64_t last_chat_ack_id;
    int typing_on, typing_off;
    char typing_user[SYNCM_MAX_USER + 1];
    uint64_t typing_on_ms, typing_off_ms; /* mono ms of the last start / stop seen */
} np_peer;

/* np_now_ms - CLOCK_REALTIME in ms (what sync clients get as now_ms). */
uint64_t np_now_ms(void);
/* np_mono_ms - CLOCK_MONOTONIC in ms. */
uint64_t np_mono_ms(void);

/* np_open - a peer for `room` (CRDT unless ot) with `client_id` and token
 * (NULL: none), subscribed with chat replay, connected to 127.0.0.1:port. */
void np_open(np_peer *p, wsc_ctx *x, int port, const char *room, uint64_t client_id, bool ot,
             const char *token);
/* np_connect - a new connection (after np_drop / np_close). */
void np_connect(np_peer *p);
/* np_drop - lose the connection without a close handshake; np_close - close
 * it with 1000. Either way the client is disconnected (keeps what it must
 * resend). */
void np_drop(np_peer *p);
void np_close(np_peer *p);
/* np_free - free the client, document and view (the connection stays with x). */
void np_free(np_peer *p);
/* np_pump - frames out and in; a closed connection disconnects the client. */
void np_pump(np_peer *p);
/* np_text - the peer's text (CRDT document or OT text), malloc'd. */
char *np_text(const np_peer *p);
/* np_random_edit - one random insert or delete; at_start: insert at the
 * same spot every peer uses (position 0). CRDT edits are flushed. */
void np_random_edit(np_peer *p, unsigned *rng, bool at_start);
/* np_presence - set this peer's presence state and send it (pumps the peer). */
void np_presence(np_peer *p, const char *state);

/* np_all_synced / np_all_converged - wsc_wait predicates over an np_group:
 * every peer synced; every peer synced, nothing unacked, OT synchronized and
 * all texts equal. Both pump every peer. */
typedef struct np_group {
    np_peer **p;
    size_t n;
} np_group;
bool np_all_synced(void *group);
bool np_all_converged(void *group);
/* np_wait_synced / np_wait_converged - wsc_wait up to ms for np_all_synced /
 * np_all_converged over the n peers ps; a Check failure ("peers did not
 * sync" / "peers did not converge") when that does not happen. */
void np_wait_synced(wsc_ctx *x, np_peer **ps, size_t n, int ms);
void np_wait_converged(wsc_ctx *x, np_peer **ps, size_t n, int ms);
/* np_say - queue chat `text` on the peer's channel (np_pump sends it). */
void np_say(np_peer *p, const char *text);

/* Plain HTTP to the server on 127.0.0.1:port (support/server_proc.h).
 * np_get_json - GET path; asserts status 200 and a JSON body; the caller
 * json_decrefs the result. np_get_string - the string member `key` of that
 * body (asserted present), malloc'd. np_server_text - the "text" of
 * /api/rooms/ROOM/text, malloc'd. np_dev_token - a development-mode token
 * for `user` (GET /api/dev/token; each user has its own rate-limit
 * buckets), malloc'd. */
json_t *np_get_json(int port, const char *path);
char *np_get_string(int port, const char *path, const char *key);
char *np_server_text(int port, const char *room);
char *np_dev_token(int port, const char *user);
/* np_metric - the value of metric `name` in GET /metrics (Prometheus text);
 * asserts status 200 and that the metric is there. */
long np_metric(int port, const char *name);

/* Raw frames. np_raw_send - encode m and send it on c. np_raw_recv - wait
 * up to ms for the next frame on c (servicing x) and decode it into *m
 * (syncm_clear it; the frame is kept in *frame until np_raw_free). false on
 * timeout or when the connection closed. */
void np_raw_send(wsc_conn *c, const syncm *m);
typedef struct np_raw {
    uint8_t *frame;
    syncm m;
} np_raw;
bool np_raw_recv(wsc_ctx *x, wsc_conn *c, np_raw *r, int ms);
void np_raw_free(np_raw *r);
/* np_raw_until - receive frames until one of `type` (true, kept in *r) or
 * timeout (false); other frames are dropped. */
bool np_raw_until(wsc_ctx *x, wsc_conn *c, syncm_type type, np_raw *r, int ms);

#endif
