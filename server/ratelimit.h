/* ratelimit.h - token-bucket rate limits for the sync server (prefix srv_rl_).
 *
 * Buckets are keyed by USER ID for the per-user kinds (updates, chat,
 * awareness), so every connection of one user shares them: opening more
 * connections does not buy more rate. Connection attempts are keyed by the
 * client's IP address (text form) and checked before authentication. The
 * two key spaces are separate ("alice" the user and "alice" the IP text never
 * share a bucket). One tracked key holds the buckets of all kinds of its key
 * space.
 *
 * A bucket of rate {count, period_ms, burst} starts full with `burst` tokens,
 * gains `count` tokens every period_ms (continuously, in integer units of
 * 1/period_ms token, so there is no drift or rounding loss), never holds more
 * than `burst`, and each allowed action takes one token. When fewer than one
 * token is left the action is refused and the answer is the exact number of
 * milliseconds until one token is there (at least 1).
 *
 * Memory is bounded: at most max_keys keys are tracked (one allocation each,
 * about 100 bytes plus the key). Keys are kept in least-recently-used order.
 * A key whose buckets are all full again is idle: forgetting it changes
 * nothing, because a new key starts full. srv_rl_sweep frees idle keys (call
 * it from the server's timer). When a new key arrives at the cap, the
 * least recently used key is evicted if it is idle; if even that key is not
 * idle (every tracked key was active within the last refill time: a flood of
 * distinct keys), the new key is refused with a retry-after of the time until
 * the oldest key will be idle - fail closed, so a flood of fresh IPs or
 * tokens cannot reset the buckets of keys being limited. The hash table is
 * keyed with SipHash-1-3 under opts->hash_seed, so chains stay short even for
 * chosen keys.
 *
 * Time is passed in (now_ms: any monotonic milliseconds, e.g. the server's
 * Unix ms). A clock that goes backwards refills nothing until it catches up.
 *
 * Suggested mapping from sync_rate_kind (sync/session.h): UPDATE and OT ->
 * SRV_RL_UPDATE; CHAT -> SRV_RL_CHAT; AWARENESS and TYPING -> SRV_RL_AWARENESS;
 * SUBSCRIBE and OTHER are not limited here (the sync server caps channels).
 * In development mode all anonymous clients share user "anon" and so share
 * its buckets.
 *
 * Threads: none of this is thread-safe. One thread (the server's service
 * thread) makes every call on a limiter; different limiters are independent.
 * No globals, no clock reads, no I/O.
 */
#ifndef TANDEM_SRV_RATELIMIT_H
#define TANDEM_SRV_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SRV_RL_KEY_MAX      255u       /* key bytes considered (longer keys are truncated) */
#define SRV_RL_MAX_KEYS_DEF 65536u     /* default cap on tracked keys */
#define SRV_RL_MAX_KEYS_MAX (1u << 22) /* largest cap accepted */
#define SRV_RL_PERIOD_MAX   86400000u  /* longest period, one day */
#define SRV_RL_BURST_MAX    1000000u   /* largest burst */
#define SRV_RL_RETRY_NOMEM  1000u      /* retry-after when a key cannot be allocated */

typedef struct srv_rl srv_rl;

/* What is limited. The first three are keyed by user id, CONNECT by IP. */
typedef enum srv_rl_kind {
    SRV_RL_UPDATE = 0, /* document updates and OT operations [200 per second, burst 400] */
    SRV_RL_CHAT,       /* chat messages [2 per second, burst 10] */
    SRV_RL_AWARENESS,  /* awareness (cursor, presence) and typing [30 per second, burst 60] */
    SRV_RL_CONNECT,    /* connection attempts per IP before auth [5 per second, burst 30] */
    SRV_RL_KIND_COUNT_
} srv_rl_kind;

/* `count` tokens per `period_ms`, at most `burst` held. A field left 0 takes
 * the kind's default; `off` disables limiting for the kind. */
typedef struct srv_rl_rate {
    uint32_t count;
    uint32_t period_ms;
    uint32_t burst;
    bool off;
} srv_rl_rate;

typedef struct srv_rl_opts {
    srv_rl_rate rate[SRV_RL_KIND_COUNT_];
    size_t max_keys;       /* tracked keys, both key spaces together [SRV_RL_MAX_KEYS_DEF] */
    uint64_t hash_seed[2]; /* random bits for the key hash */
} srv_rl_opts;

typedef struct srv_rl_stats {
    size_t keys;           /* keys tracked now */
    uint64_t allowed;      /* actions allowed */
    uint64_t limited;      /* actions refused because a bucket was empty */
    uint64_t evicted;      /* idle keys freed (at the cap or by srv_rl_sweep) */
    uint64_t refused_full; /* new keys refused because the cap was reached with no idle key */
    uint64_t nomem;        /* new keys refused because allocation failed */
} srv_rl_stats;

/* srv_rl_new - a limiter with `opts` (NULL: defaults; copied). Errors:
 * TDM_EINVAL (period over SRV_RL_PERIOD_MAX, burst over SRV_RL_BURST_MAX,
 * max_keys over SRV_RL_MAX_KEYS_MAX), TDM_ENOMEM. */
tdm_err srv_rl_new(const srv_rl_opts *opts, srv_rl **out);

/* srv_rl_free - free every key. NULL is a no-op. */
void srv_rl_free(srv_rl *rl);

/* srv_rl_check - may one action of `kind` by `key` (key_len bytes: a user id
 * for UPDATE/CHAT/AWARENESS, an IP address for CONNECT) happen at now_ms?
 * Returns 0 and takes a token when allowed; otherwise the milliseconds after
 * which to retry (>= 1; nothing is taken). A kind that is off always gives
 * 0. Allocation failure for a new key gives SRV_RL_RETRY_NOMEM (fail closed).
 * An invalid kind gives 0 (not limited). */
uint64_t srv_rl_check(srv_rl *rl, srv_rl_kind kind, const char *key, size_t key_len,
                      uint64_t now_ms);

/* srv_rl_sweep - free keys idle at now_ms (all buckets full), least recently
 * used first; stops at the first key that is not idle yet (it will be within
 * the longest refill time, and a later sweep takes it and those behind it).
 * Returns how many were freed. Call every few seconds. */
size_t srv_rl_sweep(srv_rl *rl, uint64_t now_ms);

/* srv_rl_get_stats - counters and the number of keys. */
void srv_rl_get_stats(const srv_rl *rl, srv_rl_stats *st);

#endif
