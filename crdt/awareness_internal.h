/* awareness_internal.h - what the aw_ sources share (not installed, not for
 * other modules): the entry table, the apply plan and the internal helpers
 * (aw__ prefix, defined in awareness_table.c).
 *
 * Storage: the local entry lives in the aw_state itself; remote entries (live
 * and tombstones) sit in a dense array indexed by an open-addressing hash
 * table (linear probing, load <= 1/2, keyed by a seeded mix of the client id,
 * backward-shift deletion). Removing from the dense array swaps the last entry
 * into the hole.
 *
 * Atomicity: every mutating call first plans (decodes, classifies, allocates
 * every copy and scratch buffer it will need, grows the table) and only then
 * commits with steps that cannot fail. Growing the table or scratch space
 * changes nothing visible, so an error after it still leaves the view as it
 * was.
 */
#ifndef TANDEM_AWARENESS_INTERNAL_H
#define TANDEM_AWARENESS_INTERNAL_H

#include "awareness.h"

#define AW_CAP_LIMIT ((size_t)1 << 30)
#define AW_NONE      SIZE_MAX

typedef struct aw_ent {
    uint64_t client;
    uint64_t updated; /* last accepted change/renewal; removal time for tombstones */
    uint64_t mark;    /* scratch generation (eviction exclusion, encode dedupe) */
    uint8_t *state;   /* owned; NULL when len is 0 or not live */
    size_t len;
    uint32_t clock;
    bool live; /* false: tombstone (removed, clock remembered) */
} aw_ent;

/* What aw_apply will do with one decoded entry. */
enum { ACT_NONE, ACT_NEW, ACT_SET, ACT_REMOVE, ACT_CLOCK, ACT_LOCAL };
enum { EV_NONE, EV_ADDED, EV_UPDATED, EV_REMOVED };

typedef struct aw_plan {
    uint64_t client;
    const uint8_t *state; /* into the input */
    size_t len;
    uint8_t *copy; /* owned copy to install (NULL for an empty state) */
    size_t idx;    /* existing entry (ACT_SET, ACT_REMOVE, ACT_CLOCK) */
    uint32_t clock;
    bool null;
    bool install; /* replace the entry's bytes with copy/len */
    uint8_t act;
    uint8_t ev;
} aw_plan;

/* An eviction candidate (a tombstone). */
typedef struct aw_cand {
    uint64_t updated;
    uint64_t client;
    size_t idx;
} aw_cand;

struct aw_state {
    aw_ent local;
    aw_ent *ents; /* remote entries, n_ents valid */
    size_t n_ents, cap_ents;
    size_t n_live;    /* live remote entries */
    uint32_t *slots;  /* hash table: index + 1, 0 = empty */
    size_t n_slots;   /* 0 or a power of two >= 2 * n_ents */
    size_t rem_bytes; /* sum of live remote state lengths */
    aw_plan *plan;
    size_t cap_plan;
    uint64_t *ev; /* event lists: added, then updated, then removed */
    size_t cap_ev;
    aw_cand *cand;
    size_t cap_cand;
    uint64_t gen;
    uint64_t seed;
    size_t max_clients, max_state, max_entries, max_total;
    uint64_t timeout; /* remote entries expire after this (ms) */
    aw_observer obs;
    void *obs_ud;
    bool busy; /* an observer is running */
};

/* Saturating clock increment; elapsed time with a clock that may step back. */
static inline uint32_t aw__clock_bump(uint32_t c)
{
    return c == UINT32_MAX ? c : c + 1;
}

static inline uint64_t aw__age(uint64_t now, uint64_t t)
{
    return now > t ? now - t : 0;
}

/* aw__mix64 - the splitmix64 finalizer (hashing, default seed). */
uint64_t aw__mix64(uint64_t x);
/* aw__grow - make room for `need` elements of `elem` bytes in *p (capacity
 * *cap), growing geometrically but never beyond `limit` elements. */
tdm_err aw__grow(void **p, size_t *cap, size_t need, size_t elem, size_t limit);
/* aw__tab_find - index of remote client in ents, or AW_NONE. */
size_t aw__tab_find(const aw_state *aw, uint64_t client);
/* aw__tab_put - link ents[idx] into the table (room reserved, not present). */
void aw__tab_put(aw_state *aw, size_t idx);
/* aw__tab_reserve - room for `total` remote entries; changes nothing visible. */
tdm_err aw__tab_reserve(aw_state *aw, size_t total);
/* aw__ent_drop - remove remote entry idx entirely; the last entry moves to idx. */
void aw__ent_drop(aw_state *aw, size_t idx);
/* aw__find - the tracked entry (local or remote, live or tombstone) or NULL. */
aw_ent *aw__find(aw_state *aw, uint64_t client);
const aw_ent *aw__find_c(const aw_state *aw, uint64_t client);
/* aw__ent_at - position pos in "every entry" order: 0 local, i + 1 ents[i]. */
const aw_ent *aw__ent_at(const aw_state *aw, size_t pos);
/* aw__emit - call the observer with aw->ev: na added, nu updated, nr removed. */
void aw__emit(aw_state *aw, aw_origin o, size_t na, size_t nu, size_t nr);
/* aw__compact - give memory back after a spike (never while an observer runs). */
void aw__compact(aw_state *aw);

#endif
