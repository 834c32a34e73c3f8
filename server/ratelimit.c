/* ratelimit.c - token buckets per user id and per IP (ratelimit.h): a
 * chained hash table under SipHash-1-3, an LRU list for eviction, integer
 * bucket arithmetic in units of 1/period_ms token. */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

enum { SPACE_USER = 0, SPACE_IP = 1, SLOTS = 3 };

typedef struct rl_key {
    struct rl_key *hnext;       /* hash chain */
    struct rl_key *prev, *next; /* LRU list: head most recent */
    uint64_t hash;
    uint64_t last_ms;      /* buckets were brought up to date at this time */
    uint64_t units[SLOTS]; /* tokens * period_ms, per slot of the key space */
    uint8_t space;
    uint8_t len;
    char key[];
} rl_key;

typedef struct rl_rate {
    uint64_t count, period, full; /* full = burst * period units */
    uint64_t fill_ms;             /* from empty to full */
    bool off;
} rl_rate;

struct srv_rl {
    rl_rate rate[SRV_RL_KIND_COUNT_];
    size_t max_keys;
    uint64_t k0, k1;
    rl_key **table;
    size_t nbuckets; /* power of two */
    size_t nbuckets_max;
    rl_key *head, *tail;
    srv_rl_stats st;
};

static const srv_rl_rate defaults[SRV_RL_KIND_COUNT_] = {
    [SRV_RL_UPDATE] = {200, 1000, 400, false},
    [SRV_RL_CHAT] = {2, 1000, 10, false},
    [SRV_RL_AWARENESS] = {30, 1000, 60, false},
    [SRV_RL_CONNECT] = {5, 1000, 30, false},
};

/* The key space and bucket slot of each kind. */
static const uint8_t kind_space[SRV_RL_KIND_COUNT_] = {SPACE_USER, SPACE_USER, SPACE_USER,
                                                       SPACE_IP};
static const uint8_t kind_slot[SRV_RL_KIND_COUNT_] = {0, 1, 2, 0};

/* ---- SipHash-1-3 ----------------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t siphash13(uint64_t k0, uint64_t k1, uint8_t space, const char *p, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t total = n + 1, m = 0;
    unsigned fill = 0;
    /* message: the space byte, then the key */
    for (size_t i = 0; i <= n; i++) {
        uint8_t b = i == 0 ? space : (uint8_t)p[i - 1];
        m |= (uint64_t)b << (8 * fill);
        if (++fill == 8) {
            v3 ^= m;
            SIPROUND;
            v0 ^= m;
            m = 0;
            fill = 0;
        }
    }
    m |= (total & 0xff) << 56;
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- buckets --------------------------------------------------------------- */

/* Units slot `slot` of key k holds at now (not stored). */
static uint64_t units_at(const srv_rl *rl, const rl_key *k, int kind, uint64_t now)
{
    const rl_rate *r = &rl->rate[kind];
    uint64_t u = k->units[kind_slot[kind]];
    if (now <= k->last_ms) return u;
    uint64_t el = now - k->last_ms;
    if (el >= r->fill_ms) return r->full;
    u += el * r->count; /* el < fill_ms keeps this below full + count */
    return u < r->full ? u : r->full;
}

static bool key_idle(const srv_rl *rl, const rl_key *k, uint64_t now)
{
    for (int kind = 0; kind < SRV_RL_KIND_COUNT_; kind++) {
        if (kind_space[kind] != k->space || rl->rate[kind].off) continue;
        if (units_at(rl, k, kind, now) < rl->rate[kind].full) return false;
    }
    return true;
}

/* Milliseconds until k is idle (0: it is). */
static uint64_t until_idle(const srv_rl *rl, const rl_key *k, uint64_t now)
{
    uint64_t worst = 0;
    for (int kind = 0; kind < SRV_RL_KIND_COUNT_; kind++) {
        if (kind_space[kind] != k->space || rl->rate[kind].off) continue;
        const rl_rate *r = &rl->rate[kind];
        uint64_t u = units_at(rl, k, kind, now);
        uint64_t ms = (r->full - u + r->count - 1) / r->count;
        if (ms > worst) worst = ms;
    }
    return worst;
}

/* ---- table and LRU --------------------------------------------------------- */

static void lru_unlink(srv_rl *rl, rl_key *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        rl->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        rl->tail = k->prev;
    k->prev = k->next = NULL;
}

static void lru_push_head(srv_rl *rl, rl_key *k)
{
    k->prev = NULL;
    k->next = rl->head;
    if (rl->head) rl->head->prev = k;
    rl->head = k;
    if (!rl->tail) rl->tail = k;
}

static void key_remove(srv_rl *rl, rl_key *k)
{
    rl_key **pp = &rl->table[k->hash & (rl->nbuckets - 1)];
    while (*pp != k) pp = &(*pp)->hnext;
    *pp = k->hnext;
    lru_unlink(rl, k);
    free(k);
    rl->st.keys--;
    rl->st.evicted++;
}

static rl_key *key_find(srv_rl *rl, uint8_t space, const char *key, size_t n, uint64_t h)
{
    for (rl_key *k = rl->table[h & (rl->nbuckets - 1)]; k; k = k->hnext)
        if (k->hash == h && k->space == space && k->len == n && memcmp(k->key, key, n) == 0)
            return k;
    return NULL;
}

/* Double the table when it holds more keys than buckets (best effort). */
static void maybe_grow(srv_rl *rl)
{
    if (rl->st.keys <= rl->nbuckets || rl->nbuckets >= rl->nbuckets_max) return;
    size_t nb = rl->nbuckets * 2;
    rl_key **t = calloc(nb, sizeof *t);
    if (!t) return;
    for (size_t i = 0; i < rl->nbuckets; i++) {
        for (rl_key *k = rl->table[i], *next; k; k = next) {
            next = k->hnext;
            k->hnext = t[k->hash & (nb - 1)];
            t[k->hash & (nb - 1)] = k;
        }
    }
    free(rl->table);
    rl->table = t;
    rl->nbuckets = nb;
}

/* ---- API ------------------------------------------------------------------- */

tdm_err srv_rl_new(const srv_rl_opts *opts, srv_rl **out)
{
    if (!out) return TDM_EINVAL;
    *out = NULL;
    srv_rl_opts o = {0};
    if (opts) o = *opts;
    if (o.max_keys > SRV_RL_MAX_KEYS_MAX) return TDM_EINVAL;
    srv_rl *rl = calloc(1, sizeof *rl);
    if (!rl) return TDM_ENOMEM;
    for (int kind = 0; kind < SRV_RL_KIND_COUNT_; kind++) {
        const srv_rl_rate *in = &o.rate[kind], *d = &defaults[kind];
        rl_rate *r = &rl->rate[kind];
        uint64_t count = in->count ? in->count : d->count;
        uint64_t period = in->period_ms ? in->period_ms : d->period_ms;
        uint64_t burst = in->burst ? in->burst : d->burst;
        if (period > SRV_RL_PERIOD_MAX || burst > SRV_RL_BURST_MAX) {
            free(rl);
            return TDM_EINVAL;
        }
        r->off = in->off;
        r->count = count;
        r->period = period;
        r->full = burst * period;
        r->fill_ms = (r->full + count - 1) / count;
    }
    rl->max_keys = o.max_keys ? o.max_keys : SRV_RL_MAX_KEYS_DEF;
    rl->k0 = o.hash_seed[0];
    rl->k1 = o.hash_seed[1];
    rl->nbuckets_max = 64;
    while (rl->nbuckets_max < rl->max_keys) rl->nbuckets_max *= 2;
    rl->nbuckets = 64;
    rl->table = calloc(rl->nbuckets, sizeof *rl->table);
    if (!rl->table) {
        free(rl);
        return TDM_ENOMEM;
    }
    *out = rl;
    return TDM_OK;
}

void srv_rl_free(srv_rl *rl)
{
    if (!rl) return;
    for (rl_key *k = rl->head, *next; k; k = next) {
        next = k->next;
        free(k);
    }
    free(rl->table);
    free(rl);
}

uint64_t srv_rl_check(srv_rl *rl, srv_rl_kind kind, const char *key, size_t key_len,
                      uint64_t now_ms)
{
    if (!rl || (unsigned)kind >= SRV_RL_KIND_COUNT_ || rl->rate[kind].off) return 0;
    if (!key) key_len = 0;
    if (key_len > SRV_RL_KEY_MAX) key_len = SRV_RL_KEY_MAX;
    const rl_rate *r = &rl->rate[kind];
    uint8_t space = kind_space[kind];
    uint64_t h = siphash13(rl->k0, rl->k1, space, key, key_len);
    rl_key *k = key_find(rl, space, key, key_len, h);
    if (!k) {
        if (rl->st.keys >= rl->max_keys) {
            rl_key *old = rl->tail;
            if (!key_idle(rl, old, now_ms)) {
                rl->st.refused_full++;
                uint64_t ms = until_idle(rl, old, now_ms);
                return ms ? ms : 1;
            }
            key_remove(rl, old);
        }
        k = malloc(sizeof *k + key_len);
        if (!k) {
            rl->st.nomem++;
            return SRV_RL_RETRY_NOMEM;
        }
        memset(k, 0, sizeof *k);
        k->hash = h;
        k->space = space;
        k->len = (uint8_t)key_len;
        if (key_len) memcpy(k->key, key, key_len);
        k->last_ms = now_ms;
        for (int kd = 0; kd < SRV_RL_KIND_COUNT_; kd++)
            if (kind_space[kd] == space) k->units[kind_slot[kd]] = rl->rate[kd].full;
        k->hnext = rl->table[h & (rl->nbuckets - 1)];
        rl->table[h & (rl->nbuckets - 1)] = k;
        lru_push_head(rl, k);
        rl->st.keys++;
        maybe_grow(rl);
    } else {
        /* bring every bucket of the key up to now, then mark it most recent */
        if (now_ms > k->last_ms) {
            for (int kd = 0; kd < SRV_RL_KIND_COUNT_; kd++)
                if (kind_space[kd] == space && !rl->rate[kd].off)
                    k->units[kind_slot[kd]] = units_at(rl, k, kd, now_ms);
            k->last_ms = now_ms;
        }
        lru_unlink(rl, k);
        lru_push_head(rl, k);
    }
    uint64_t *u = &k->units[kind_slot[kind]];
    if (*u >= r->period) {
        *u -= r->period;
        rl->st.allowed++;
        return 0;
    }
    rl->st.limited++;
    uint64_t ms = (r->period - *u + r->count - 1) / r->count;
    return ms ? ms : 1;
}

size_t srv_rl_sweep(srv_rl *rl, uint64_t now_ms)
{
    if (!rl) return 0;
    size_t freed = 0;
    while (rl->tail && key_idle(rl, rl->tail, now_ms)) {
        key_remove(rl, rl->tail);
        freed++;
    }
    return freed;
}

void srv_rl_get_stats(const srv_rl *rl, srv_rl_stats *st)
{
    if (!st) return;
    if (!rl) {
        memset(st, 0, sizeof *st);
        return;
    }
    *st = rl->st;
}
