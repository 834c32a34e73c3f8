/* awareness.h - presence and cursors for one document (prefix aw_).
 *
 * An aw_state is one replica's view of who is in a document: a map
 * client id -> (clock, state bytes, last renewal time). The state bytes are
 * opaque to tandem (the application picks JSON, CBOR, ...). The model and the
 * rules follow Yjs awareness (y-protocols):
 *
 *   - Every client owns exactly one entry, its own, and bumps that entry's
 *     clock on every change (aw_set_local, aw_clear_local) and on every renewal.
 *   - A remote entry replaces what we hold when its clock is higher. Equal or
 *     lower clocks are ignored, with one exception kept from Yjs: a NULL state
 *     at a clock EQUAL to ours removes a live entry. That is how a server's
 *     removal of a dropped connection works: it re-sends the client's last
 *     clock with a null state (aw_remove_clients, then aw_encode).
 *   - A null state means "removed". A removed client is remembered as a
 *     tombstone holding its clock, so late or replayed updates with that clock
 *     or lower cannot bring it back. Tombstones are not part of the view (not
 *     counted, not iterated, not returned by aw_get). They are dropped by
 *     aw_tick AW_TOMBSTONE_MS after the removal, or earlier, oldest first, when
 *     the tracking cap is reached and room is needed for new clients (then a
 *     batch of up to max_clients / 8 goes at once, so churn at the cap stays
 *     cheap).
 *   - A client not tracked at all accepts an entry whatever its clock (0
 *     included); a null entry about an unknown client creates a tombstone only.
 *   - Remote entries not renewed (no accepted entry with a higher clock) for
 *     AW_TIMEOUT_MS (aw_opts.timeout_ms) are removed by aw_tick. The local entry never expires;
 *     aw_tick asks the caller to re-broadcast it every AW_RENEW_MS.
 *   - An entry about OUR client that would win over our own (higher clock, or
 *     the equal-clock null) never changes our state: our clock jumps to its
 *     clock + 1 and aw_apply asks the caller to re-broadcast our entry, which
 *     then wins everywhere (Yjs does the same for null; we do it for any
 *     state, since only this replica speaks for its client id).
 *   - Clocks are uint32; a clock that would pass UINT32_MAX stays there.
 *
 * Time is passed in by the caller as milliseconds (any monotonic origin);
 * nothing here reads a clock. A `now` earlier than a stored time counts as no
 * time elapsed.
 *
 * Wire format (untrusted input goes through cbr_*): one CBOR array of entries,
 * each a 3-element array [client uint, clock uint <= UINT32_MAX, state bytes
 * or null]. Decoding rejects, with the state left unchanged: anything not of
 * exactly that shape (TDM_EMALFORMED), a client listed twice (TDM_EMALFORMED),
 * trailing bytes (TDM_EMALFORMED), more than max_update_entries entries or a
 * state longer than max_state_bytes (TDM_ETOOBIG).
 *
 * Change events: an optional observer (aw_set_observer) is called after every
 * call that changed the view, once per call, with three lists: clients added
 * (absent or removed before, present now), updated (present before and after,
 * state bytes differ), removed (present before, absent now). A renewal that
 * only bumps the clock, and a tombstone's clock moving, are not events.
 *
 * Caps: every buffer has a hard cap chosen at creation (aw_opts): tracked
 * clients (live + tombstones, the local client not counted), state size,
 * entries per update, and the total bytes of remote states held.
 *
 * Ownership: the aw_state owns copies of every state; pointers it hands out
 * (aw_get, aw_next, event lists) stay valid until the next call that may
 * change the view (aw_set_local, aw_clear_local, aw_tick, aw_apply,
 * aw_remove_clients) or aw_free. Input bytes are only read during the call.
 * Errors: every function that can fail returns a tdm_err and, on error, leaves
 * the view, the clocks and the timers exactly as they were.
 * Threads: an aw_state is single-threaded: one thread at a time may call any
 * function on it (no locking, no globals, no I/O). Different aw_states are
 * independent.
 */
#ifndef TANDEM_AWARENESS_H
#define TANDEM_AWARENESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"
#include "buf.h"

#define AW_TIMEOUT_MS         30000u  /* remote entries expire after this without renewal */
#define AW_RENEW_MS           15000u  /* the local entry is re-broadcast this often */
#define AW_TOMBSTONE_MS       300000u /* removed clients' clocks are remembered this long */
#define AW_MAX_CLIENTS        65536u  /* default cap on tracked clients */
#define AW_MAX_STATE_BYTES    65536u  /* default cap on one state */
#define AW_MAX_UPDATE_ENTRIES 4096u   /* default cap on entries in one update */
#define AW_MAX_TOTAL_BYTES    ((size_t)16 << 20) /* default cap on remote state bytes held */

typedef struct aw_state aw_state;

typedef struct aw_opts {
    uint64_t client;           /* the local client id */
    size_t max_clients;        /* tracked remote clients incl. tombstones; 0 = AW_MAX_CLIENTS,
                                  at most 2^30 */
    size_t max_state_bytes;    /* one state; 0 = AW_MAX_STATE_BYTES */
    size_t max_update_entries; /* entries in one decoded or encoded update;
                                  0 = AW_MAX_UPDATE_ENTRIES, at most 2^30 */
    size_t max_total_bytes;    /* sum of remote states held; 0 = AW_MAX_TOTAL_BYTES */
    uint64_t hash_seed;        /* keys the client-id hash table; a server holding ids chosen
                                  by untrusted peers should pass random bits. 0 = derived
                                  from `client` (predictable). */
    uint64_t timeout_ms;       /* remote entries expire after this without renewal;
                                  0 = AW_TIMEOUT_MS */
} aw_opts;

/* Why a change event fired. */
typedef enum aw_origin {
    AW_ORIGIN_LOCAL,   /* aw_set_local / aw_clear_local */
    AW_ORIGIN_REMOTE,  /* aw_apply */
    AW_ORIGIN_TIMEOUT, /* aw_tick expired entries */
    AW_ORIGIN_REMOVE   /* aw_remove_clients */
} aw_origin;

/* One change event. The arrays belong to the aw_state and are valid only
 * during the observer call. Each client appears in at most one list. */
typedef struct aw_change {
    aw_origin origin;
    const uint64_t *added;
    size_t n_added;
    const uint64_t *updated;
    size_t n_updated;
    const uint64_t *removed;
    size_t n_removed;
} aw_change;

/* aw_observer - called after a call that changed the view. It may read the
 * aw_state (aw_get, aw_next, aw_count, aw_encode*) but must not change it:
 * aw_set_local, aw_clear_local, aw_tick, aw_apply and aw_remove_clients
 * return TDM_EINVAL while an observer runs, and aw_free must not be called. */
typedef void (*aw_observer)(void *ud, const aw_change *ch);

/* One entry of the view, as returned by aw_get and aw_next. `state` points
 * into the aw_state (see Ownership above); it may be NULL when len is 0. */
typedef struct aw_entry {
    uint64_t client;
    uint32_t clock;
    const uint8_t *state;
    size_t len;
    uint64_t updated_ms; /* `now` of the last accepted change or renewal */
} aw_entry;

/* aw_new - an empty view for local client `client`, default caps. The local
 * entry starts at clock 0 with no state (not present in the view).
 * Errors: TDM_ENOMEM. *out is set only on success; free with aw_free. */
tdm_err aw_new(uint64_t client, aw_state **out);
/* aw_new_opts - like aw_new with explicit caps and seed (see aw_opts).
 * Errors: TDM_EINVAL for a NULL argument or a cap above its maximum,
 * TDM_ENOMEM. */
tdm_err aw_new_opts(const aw_opts *opts, aw_state **out);
/* aw_free - free the view and every state it holds. NULL is a no-op. Not from
 * inside an observer of the same aw_state. */
void aw_free(aw_state *aw);
/* aw_client - the local client id. */
uint64_t aw_client(const aw_state *aw);
/* aw_set_observer - install (fn non-NULL) or remove (fn NULL) the change
 * observer; `ud` is passed back unchanged. Replaces any previous observer. */
void aw_set_observer(aw_state *aw, aw_observer fn, void *ud);

/* aw_set_local - set the local state to a copy of p[0..n) (p may be NULL when
 * n is 0; an empty state is a present state, unlike a cleared one), bump the
 * local clock and restart the renewal timer at `now`. Event: added if the
 * local client was absent, updated if the bytes differ, none otherwise. The
 * caller then broadcasts aw_encode_local().
 * Errors: TDM_ETOOBIG when n > max_state_bytes, TDM_ENOMEM, TDM_EINVAL (NULL
 * aw, p NULL with n > 0, called from an observer). */
tdm_err aw_set_local(aw_state *aw, const uint8_t *p, size_t n, uint64_t now);
/* aw_clear_local - remove the local state (null) and bump the local clock,
 * even when already cleared (Yjs does the same). Event: removed if the local
 * client was present. The caller then broadcasts aw_encode_local().
 * Errors: TDM_EINVAL (NULL aw, called from an observer). */
tdm_err aw_clear_local(aw_state *aw, uint64_t now);
/* aw_tick - housekeeping; call every few seconds (Yjs: every 3 s).
 * Removes remote entries with now - updated_ms >= the timeout (aw_opts
 * timeout_ms, default AW_TIMEOUT_MS) (event
 * removed, origin AW_ORIGIN_TIMEOUT; their clocks are kept as tombstones),
 * drops tombstones older than AW_TOMBSTONE_MS, gives back memory left over
 * from a spike (see aw_mem_bytes), and when the local state is present and
 * now - its updated_ms >= AW_RENEW_MS, bumps the local clock, restarts its
 * timer and sets *renew (else clears it): the caller must then broadcast
 * aw_encode_local(). `renew` may be NULL (then the renewal still
 * happens and the caller must broadcast on its own schedule).
 * Errors: TDM_ENOMEM (event list), TDM_EINVAL (NULL aw, called from an
 * observer); on error nothing changes and *renew is false. */
tdm_err aw_tick(aw_state *aw, uint64_t now, bool *renew);
/* aw_apply - merge an encoded update (untrusted bytes, format above) received
 * at `now`, all entries or none. Accepted entries get updated_ms = now.
 * Events (origin AW_ORIGIN_REMOTE) list clients in ascending id order.
 * *rebroadcast (may be NULL) is set when the update contested the local
 * client and our clock was bumped: the caller must broadcast
 * aw_encode_local(); it is cleared otherwise.
 * Errors: TDM_EMALFORMED / TDM_ETOOBIG for bad bytes (see above); TDM_ETOOBIG
 * when the new clients would not fit max_clients even after dropping every
 * tombstone, or the remote states would exceed max_total_bytes; TDM_ENOMEM;
 * TDM_EINVAL (NULL aw, p NULL with n > 0, called from an observer). On error
 * nothing changes. */
tdm_err aw_apply(aw_state *aw, const uint8_t *p, size_t n, uint64_t now, bool *rebroadcast);
/* aw_remove_clients - remove clients[0..n) from the view, e.g. when a server
 * drops their connection. Present remote clients become tombstones with their
 * clock unchanged, so aw_encode(aw, clients, n, out) afterwards yields the
 * removal update ([client, clock, null] each) that removes them at every peer
 * (equal-clock null rule). The local client, if listed, is cleared as by
 * aw_clear_local (clock bumped). Absent, unknown and repeated ids are ignored.
 * Event: removed, origin AW_ORIGIN_REMOVE. `clients` may be NULL when n is 0.
 * Errors: TDM_ENOMEM (event list), TDM_EINVAL (NULL aw or clients with n > 0,
 * called from an observer). */
tdm_err aw_remove_clients(aw_state *aw, const uint64_t *clients, size_t n, uint64_t now);

/* aw_encode - append an update to `out` listing clients[0..n) as
 * [client, clock, state or null]: present clients with their state, removed
 * clients that are still remembered (tombstones, a cleared local client) with
 * null. Unknown ids are skipped; an id listed twice is encoded once.
 * clients NULL (n ignored): every present client, local included.
 * Errors: TDM_ETOOBIG when more than max_update_entries entries would be
 * written (use aw_encode_next to split "everything") or `out` reaches its
 * limit; TDM_ENOMEM; TDM_EINVAL (NULL aw or out). On error `out` is as it
 * was. Does not change the view. */
tdm_err aw_encode(aw_state *aw, const uint64_t *clients, size_t n, tbuf *out);
/* aw_encode_local - append an update holding only the local entry (state or
 * null), to broadcast after aw_set_local / aw_clear_local / a renewal /
 * a rebroadcast request. Errors as aw_encode. */
tdm_err aw_encode_local(aw_state *aw, tbuf *out);
/* aw_encode_next - encode every present client in chunks of at most
 * max_update_entries: start with *pos = 0 and call until it returns TDM_OK
 * with *done set; each call appends one update (possibly with 0 entries) and
 * advances *pos. The view must not change between the calls (else entries may
 * be skipped or repeated; updates are idempotent). Errors as aw_encode; on
 * error *pos and `out` are unchanged. */
tdm_err aw_encode_next(aw_state *aw, size_t *pos, tbuf *out, bool *done);

/* aw_mem_bytes - heap bytes held (tables, scratch, states; allocator
 * overhead not counted). aw_tick gives memory back after a spike. */
size_t aw_mem_bytes(const aw_state *aw);
/* aw_count - clients present in the view, the local one included if set. */
size_t aw_count(const aw_state *aw);
/* aw_get - the present entry for `client` (local or remote) into *e.
 * Errors: TDM_ENOTFOUND when the client is absent or removed, TDM_EINVAL for
 * NULL arguments. */
tdm_err aw_get(const aw_state *aw, uint64_t client, aw_entry *e);
/* aw_get_clock - the clock remembered for `client`, present or tombstone
 * (the local client always has one). Errors: TDM_ENOTFOUND when the client is
 * not tracked, TDM_EINVAL for NULL arguments. */
tdm_err aw_get_clock(const aw_state *aw, uint64_t client, uint32_t *clock);
/* aw_next - iterate the present entries: start with *pos = 0; each call that
 * returns true fills *e and advances *pos; false at the end. Order is
 * unspecified (local first if present). The view must not change during the
 * iteration. */
bool aw_next(const aw_state *aw, size_t *pos, aw_entry *e);

#endif
