/* ids.h - ids, state vectors and delete sets: first-class values of crdt/.
 *
 * An id names one operation of one replica: (client, clock). Every replica
 * numbers its operations 0, 1, 2, ... Each inserted character takes one clock;
 * each deleted character takes one clock of the deleting replica too, so a
 * state vector (client -> next clock) names exactly which inserts and deletes a
 * replica holds.
 *
 * crdt_sv:  client -> number of operations held (clocks 0..n-1).
 * crdt_ds:  a set of character ids that are deleted, as sorted, merged clock
 *           ranges per client.
 * Both are opaque handles, created with _new and released with _free
 * (_free(NULL) is a no-op). Each holds at most CRDT_MAX_CLIENTS clients.
 * Encodings are CBOR (see docs/CRDT.md); decoders take untrusted bytes.
 *
 * Thread safety: values are not shared; one thread per value at a time.
 */
#ifndef TANDEM_IDS_H
#define TANDEM_IDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"
#include "buf.h"

#define CRDT_MAX_CLIENTS 65536u
#define CRDT_CLOCK_MAX   0xfffffff0u /* clocks are < this */
/* Hard cap on the (client, range) pairs a crdt_ds holds (TDM_ETOOBIG past it). */
#define CRDT_DS_MAX_RANGES ((size_t)1 << 24)

typedef struct crdt_id {
    uint64_t client;
    uint32_t clock;
} crdt_id;

typedef struct crdt_sv crdt_sv;

crdt_sv *crdt_sv_new(void);
void crdt_sv_free(crdt_sv *sv);
/* crdt_sv_clear - remove every entry. */
void crdt_sv_clear(crdt_sv *sv);
/* crdt_sv_get - operations held from `client` (0 when absent). */
uint32_t crdt_sv_get(const crdt_sv *sv, uint64_t client);
/* crdt_sv_set - set the entry (0 removes it). TDM_ETOOBIG past CRDT_MAX_CLIENTS,
 * TDM_EINVAL for clock >= CRDT_CLOCK_MAX. */
tdm_err crdt_sv_set(crdt_sv *sv, uint64_t client, uint32_t clock);
/* crdt_sv_count - number of clients with a non-zero entry. */
size_t crdt_sv_count(const crdt_sv *sv);
/* crdt_sv_entry - entry i (0 <= i < count) in increasing client order. */
void crdt_sv_entry(const crdt_sv *sv, size_t i, uint64_t *client, uint32_t *clock);
/* crdt_sv_merge - dst[c] = max(dst[c], src[c]) for every client. */
tdm_err crdt_sv_merge(crdt_sv *dst, const crdt_sv *src);
/* crdt_sv_copy - dst becomes equal to src. */
tdm_err crdt_sv_copy(crdt_sv *dst, const crdt_sv *src);
/* crdt_sv_equal - same entries. */
bool crdt_sv_equal(const crdt_sv *a, const crdt_sv *b);
/* crdt_sv_covers - a[c] >= b[c] for every client (a has seen all of b). */
bool crdt_sv_covers(const crdt_sv *a, const crdt_sv *b);
/* crdt_sv_encode - append the CBOR form: a map {client: clock} in client order. */
tdm_err crdt_sv_encode(const crdt_sv *sv, tbuf *out);
/* crdt_sv_decode - replace sv's contents with the decoded bytes. On error sv is
 * unchanged. Duplicate or unsorted clients, clocks of 0 (never encoded) or
 * >= CRDT_CLOCK_MAX and trailing bytes are TDM_EMALFORMED; more than
 * CRDT_MAX_CLIENTS entries is TDM_ETOOBIG. */
tdm_err crdt_sv_decode(crdt_sv *sv, const uint8_t *p, size_t n);

typedef struct crdt_ds crdt_ds;

crdt_ds *crdt_ds_new(void);
void crdt_ds_free(crdt_ds *ds);
void crdt_ds_clear(crdt_ds *ds);
/* crdt_ds_add - add ids client:[clock, clock+len). Ranges are merged (also
 * touching ones). len 0 is a no-op; clock + len > CRDT_CLOCK_MAX is TDM_EINVAL;
 * TDM_ETOOBIG past CRDT_MAX_CLIENTS clients or CRDT_DS_MAX_RANGES ranges.
 * Cost: O(log n) plus a memmove of the later ranges when a separate range is
 * inserted in the middle (appending or extending a range moves nothing); to
 * combine large sets use crdt_ds_merge, which is linear. */
tdm_err crdt_ds_add(crdt_ds *ds, uint64_t client, uint32_t clock, uint32_t len);
/* crdt_ds_has - is client:clock in the set? */
bool crdt_ds_has(const crdt_ds *ds, uint64_t client, uint32_t clock);
/* crdt_ds_merge - dst becomes the union of dst and src (linear time). On
 * TDM_ETOOBIG / TDM_ENOMEM dst is unchanged. */
tdm_err crdt_ds_merge(crdt_ds *dst, const crdt_ds *src);
bool crdt_ds_equal(const crdt_ds *a, const crdt_ds *b);
/* crdt_ds_ids - number of ids in the set. */
uint64_t crdt_ds_ids(const crdt_ds *ds);
/* crdt_ds_ranges - number of (client, range) pairs. */
size_t crdt_ds_ranges(const crdt_ds *ds);
/* crdt_ds_range - range i in (client, clock) order. */
void crdt_ds_range(const crdt_ds *ds, size_t i, uint64_t *client, uint32_t *clock, uint32_t *len);
/* crdt_ds_encode - CBOR: a map {client: [clock, len, clock, len, ...]}. */
tdm_err crdt_ds_encode(const crdt_ds *ds, tbuf *out);
/* crdt_ds_decode - replace ds with decoded bytes; unchanged on error. Ranges must
 * be sorted, non-overlapping, non-empty and below CRDT_CLOCK_MAX (clock + len <=
 * CRDT_CLOCK_MAX); clients strictly increasing, each with a non-empty array of
 * even length. Touching ranges are accepted and merged. TDM_EMALFORMED for
 * bad bytes, TDM_ETOOBIG past CRDT_MAX_CLIENTS or CRDT_DS_MAX_RANGES. */
tdm_err crdt_ds_decode(crdt_ds *ds, const uint8_t *p, size_t n);

#endif
