/* ids.c - state vectors and delete sets.
 *
 * crdt_sv is a sorted array of (client, clock) with clock > 0.
 * crdt_ds is one sorted array of (client, clock, len) ranges in (client, clock)
 * order, kept canonical: ranges of one client never overlap or touch (touching
 * ranges are merged), so two sets are equal exactly when their arrays are.
 * Both have hard caps; every operation that fails leaves the value unchanged.
 * Decoders build a fresh value and swap it in only when everything validated.
 */
#include "ids.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_rd.h"

/* ---------------------------------------------------------------- sv */

typedef struct sv_entry {
    uint64_t client;
    uint32_t clock;
} sv_entry;

struct crdt_sv {
    sv_entry *e; /* sorted by client, clock > 0 */
    size_t n, cap;
};

crdt_sv *crdt_sv_new(void)
{
    return calloc(1, sizeof(crdt_sv));
}

void crdt_sv_free(crdt_sv *sv)
{
    if (!sv) return;
    free(sv->e);
    free(sv);
}

void crdt_sv_clear(crdt_sv *sv)
{
    assert(sv);
    sv->n = 0;
}

/* Index of the first entry with client >= c. */
static size_t sv_lower(const crdt_sv *sv, uint64_t c)
{
    size_t lo = 0, hi = sv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sv->e[mid].client < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static tdm_err sv_grow(crdt_sv *sv, size_t need)
{
    if (need > CRDT_MAX_CLIENTS) return TDM_ETOOBIG;
    if (need <= sv->cap) return TDM_OK;
    size_t ncap = sv->cap ? sv->cap * 2 : 8;
    if (ncap < need) ncap = need;
    if (ncap > CRDT_MAX_CLIENTS) ncap = CRDT_MAX_CLIENTS;
    sv_entry *ne = realloc(sv->e, ncap * sizeof *ne);
    if (!ne) return TDM_ENOMEM;
    sv->e = ne;
    sv->cap = ncap;
    return TDM_OK;
}

uint32_t crdt_sv_get(const crdt_sv *sv, uint64_t client)
{
    assert(sv);
    size_t i = sv_lower(sv, client);
    return (i < sv->n && sv->e[i].client == client) ? sv->e[i].clock : 0;
}

tdm_err crdt_sv_set(crdt_sv *sv, uint64_t client, uint32_t clock)
{
    assert(sv);
    if (clock >= CRDT_CLOCK_MAX) return TDM_EINVAL;
    size_t i = sv_lower(sv, client);
    bool found = i < sv->n && sv->e[i].client == client;
    if (clock == 0) {
        if (found) {
            memmove(sv->e + i, sv->e + i + 1, (sv->n - i - 1) * sizeof *sv->e);
            sv->n--;
        }
        return TDM_OK;
    }
    if (found) {
        sv->e[i].clock = clock;
        return TDM_OK;
    }
    tdm_err e = sv_grow(sv, sv->n + 1);
    if (e) return e;
    memmove(sv->e + i + 1, sv->e + i, (sv->n - i) * sizeof *sv->e);
    sv->e[i].client = client;
    sv->e[i].clock = clock;
    sv->n++;
    return TDM_OK;
}

size_t crdt_sv_count(const crdt_sv *sv)
{
    assert(sv);
    return sv->n;
}

void crdt_sv_entry(const crdt_sv *sv, size_t i, uint64_t *client, uint32_t *clock)
{
    assert(sv && i < sv->n);
    if (client) *client = sv->e[i].client;
    if (clock) *clock = sv->e[i].clock;
}

tdm_err crdt_sv_merge(crdt_sv *dst, const crdt_sv *src)
{
    assert(dst && src);
    if (dst == src || src->n == 0) return TDM_OK;

    /* Size of the union, to fail before anything changes. */
    size_t i = 0, j = 0, u = 0;
    while (i < dst->n && j < src->n) {
        uint64_t a = dst->e[i].client, b = src->e[j].client;
        i += a <= b;
        j += b <= a;
        u++;
    }
    u += (dst->n - i) + (src->n - j);
    if (u > CRDT_MAX_CLIENTS) return TDM_ETOOBIG;

    if (u == dst->n) { /* every src client is already in dst: update in place */
        for (i = 0, j = 0; j < src->n; i++) {
            if (dst->e[i].client != src->e[j].client) continue;
            if (src->e[j].clock > dst->e[i].clock) dst->e[i].clock = src->e[j].clock;
            j++;
        }
        return TDM_OK;
    }

    sv_entry *m = malloc(u * sizeof *m);
    if (!m) return TDM_ENOMEM;
    i = j = 0;
    size_t k = 0;
    while (i < dst->n || j < src->n) {
        if (j == src->n || (i < dst->n && dst->e[i].client < src->e[j].client)) {
            m[k++] = dst->e[i++];
        } else if (i == dst->n || src->e[j].client < dst->e[i].client) {
            m[k++] = src->e[j++];
        } else {
            m[k] = dst->e[i];
            if (src->e[j].clock > m[k].clock) m[k].clock = src->e[j].clock;
            k++, i++, j++;
        }
    }
    assert(k == u);
    free(dst->e);
    dst->e = m;
    dst->n = dst->cap = u;
    return TDM_OK;
}

tdm_err crdt_sv_copy(crdt_sv *dst, const crdt_sv *src)
{
    assert(dst && src);
    if (dst == src) return TDM_OK;
    if (src->n > dst->cap) {
        sv_entry *ne = malloc(src->n * sizeof *ne);
        if (!ne) return TDM_ENOMEM;
        free(dst->e);
        dst->e = ne;
        dst->cap = src->n;
    }
    if (src->n) memcpy(dst->e, src->e, src->n * sizeof *src->e);
    dst->n = src->n;
    return TDM_OK;
}

bool crdt_sv_equal(const crdt_sv *a, const crdt_sv *b)
{
    assert(a && b);
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++) {
        if (a->e[i].client != b->e[i].client || a->e[i].clock != b->e[i].clock) return false;
    }
    return true;
}

bool crdt_sv_covers(const crdt_sv *a, const crdt_sv *b)
{
    assert(a && b);
    size_t i = 0;
    for (size_t j = 0; j < b->n; j++) {
        while (i < a->n && a->e[i].client < b->e[j].client) i++;
        if (i == a->n || a->e[i].client != b->e[j].client) return false;
        if (a->e[i].clock < b->e[j].clock) return false;
    }
    return true;
}

tdm_err crdt_sv_encode(const crdt_sv *sv, tbuf *out)
{
    assert(sv && out);
    size_t start = out->len;
    tdm_err e = tbuf_cbor_map(out, sv->n);
    for (size_t i = 0; !e && i < sv->n; i++) {
        e = tbuf_cbor_uint(out, sv->e[i].client);
        if (!e) e = tbuf_cbor_uint(out, sv->e[i].clock);
    }
    if (e) out->len = start;
    return e;
}

tdm_err crdt_sv_decode(crdt_sv *sv, const uint8_t *p, size_t n)
{
    assert(sv && (p || n == 0));
    crdt_sv tmp = {0};
    cbr r;
    size_t count;
    tdm_err e;

    cbr_init(&r, p, n);
    if ((e = cbr_map(&r, &count))) goto fail;
    if ((e = sv_grow(&tmp, count))) goto fail; /* count <= n / 2: bounded by input */
    for (size_t i = 0; i < count; i++) {
        uint64_t client, clock;
        if ((e = cbr_uint(&r, &client)) || (e = cbr_uint(&r, &clock))) goto fail;
        if ((i > 0 && client <= tmp.e[i - 1].client) || clock == 0 || clock >= CRDT_CLOCK_MAX) {
            e = TDM_EMALFORMED;
            goto fail;
        }
        tmp.e[i].client = client;
        tmp.e[i].clock = (uint32_t)clock;
        tmp.n = i + 1;
    }
    if ((e = cbr_finish(&r))) goto fail;

    free(sv->e);
    *sv = tmp;
    return TDM_OK;

fail:
    free(tmp.e);
    return e;
}

/* ---------------------------------------------------------------- ds */

typedef struct ds_range {
    uint64_t client;
    uint32_t clock;
    uint32_t len;
} ds_range;

struct crdt_ds {
    ds_range *r; /* sorted by (client, clock); canonical (see top) */
    size_t n, cap;
    size_t nclients; /* distinct clients among r */
};

crdt_ds *crdt_ds_new(void)
{
    return calloc(1, sizeof(crdt_ds));
}

void crdt_ds_free(crdt_ds *ds)
{
    if (!ds) return;
    free(ds->r);
    free(ds);
}

void crdt_ds_clear(crdt_ds *ds)
{
    assert(ds);
    ds->n = 0;
    ds->nclients = 0;
}

static uint64_t rend(const ds_range *x)
{
    return (uint64_t)x->clock + x->len;
}

static tdm_err ds_grow(crdt_ds *ds, size_t need)
{
    if (need > CRDT_DS_MAX_RANGES) return TDM_ETOOBIG;
    if (need <= ds->cap) return TDM_OK;
    size_t ncap = ds->cap ? ds->cap * 2 : 8;
    if (ncap < need) ncap = need;
    if (ncap > CRDT_DS_MAX_RANGES) ncap = CRDT_DS_MAX_RANGES;
    ds_range *nr = realloc(ds->r, ncap * sizeof *nr);
    if (!nr) return TDM_ENOMEM;
    ds->r = nr;
    ds->cap = ncap;
    return TDM_OK;
}

/* Index of the first range that is not entirely before client:clock, i.e. the
 * first with client > c, or client == c and end >= clock (so a range that ends
 * exactly at `clock` is found, to be merged with). */
static size_t ds_lower(const crdt_ds *ds, uint64_t c, uint64_t clock)
{
    size_t lo = 0, hi = ds->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ds_range *x = &ds->r[mid];
        if (x->client < c || (x->client == c && rend(x) < clock))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

tdm_err crdt_ds_add(crdt_ds *ds, uint64_t client, uint32_t clock, uint32_t len)
{
    assert(ds);
    if (len == 0) return TDM_OK;
    uint64_t end = (uint64_t)clock + len;
    if (end > CRDT_CLOCK_MAX) return TDM_EINVAL;

    size_t i = ds_lower(ds, client, clock);
    /* ranges i..j-1 overlap or touch [clock, end) */
    size_t j = i;
    while (j < ds->n && ds->r[j].client == client && ds->r[j].clock <= end) j++;

    if (j > i) { /* merge into r[i], drop r[i+1..j) */
        uint64_t lo = ds->r[i].clock < clock ? ds->r[i].clock : clock;
        uint64_t hi = rend(&ds->r[j - 1]) > end ? rend(&ds->r[j - 1]) : end;
        ds->r[i].clock = (uint32_t)lo;
        ds->r[i].len = (uint32_t)(hi - lo);
        if (j > i + 1) {
            memmove(ds->r + i + 1, ds->r + j, (ds->n - j) * sizeof *ds->r);
            ds->n -= j - i - 1;
        }
        return TDM_OK;
    }

    bool new_client =
        !(i > 0 && ds->r[i - 1].client == client) && !(i < ds->n && ds->r[i].client == client);
    if (new_client && ds->nclients >= CRDT_MAX_CLIENTS) return TDM_ETOOBIG;
    tdm_err e = ds_grow(ds, ds->n + 1);
    if (e) return e;
    memmove(ds->r + i + 1, ds->r + i, (ds->n - i) * sizeof *ds->r);
    ds->r[i] = (ds_range){client, clock, len};
    ds->n++;
    ds->nclients += new_client;
    return TDM_OK;
}

bool crdt_ds_has(const crdt_ds *ds, uint64_t client, uint32_t clock)
{
    assert(ds);
    /* first range with client > c or end > clock */
    size_t lo = 0, hi = ds->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ds_range *x = &ds->r[mid];
        if (x->client < client || (x->client == client && rend(x) <= clock))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ds->n && ds->r[lo].client == client && ds->r[lo].clock <= clock;
}

/* (client, clock) order of two ranges */
static bool range_before(const ds_range *a, const ds_range *b)
{
    return a->client < b->client || (a->client == b->client && a->clock < b->clock);
}

tdm_err crdt_ds_merge(crdt_ds *dst, const crdt_ds *src)
{
    assert(dst && src);
    if (dst == src || src->n == 0) return TDM_OK;

    /* Worst case the union keeps every range; the merged result is computed
     * into a new array and swapped in, so failure changes nothing. */
    size_t total = dst->n + src->n;
    if (total > CRDT_DS_MAX_RANGES) total = CRDT_DS_MAX_RANGES;
    ds_range *m = malloc(total * sizeof *m);
    if (!m) return TDM_ENOMEM;

    size_t i = 0, j = 0, k = 0, clients = 0;
    while (i < dst->n || j < src->n) {
        const ds_range *x;
        if (j == src->n || (i < dst->n && range_before(&dst->r[i], &src->r[j])))
            x = &dst->r[i++];
        else
            x = &src->r[j++];
        if (k > 0 && m[k - 1].client == x->client &&
            m[k - 1].clock + (uint64_t)m[k - 1].len >= x->clock) {
            uint64_t e = rend(x);
            if (e > rend(&m[k - 1])) m[k - 1].len = (uint32_t)(e - m[k - 1].clock);
            continue;
        }
        if (k == total) goto toobig;
        if (k == 0 || m[k - 1].client != x->client) {
            if (clients == CRDT_MAX_CLIENTS) goto toobig;
            clients++;
        }
        m[k++] = *x;
    }
    free(dst->r);
    dst->r = m;
    dst->n = k;
    dst->cap = total;
    dst->nclients = clients;
    return TDM_OK;

toobig:
    free(m);
    return TDM_ETOOBIG;
}

bool crdt_ds_equal(const crdt_ds *a, const crdt_ds *b)
{
    assert(a && b);
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++) {
        const ds_range *x = &a->r[i], *y = &b->r[i];
        if (x->client != y->client || x->clock != y->clock || x->len != y->len) return false;
    }
    return true;
}

uint64_t crdt_ds_ids(const crdt_ds *ds)
{
    assert(ds);
    uint64_t s = 0;
    for (size_t i = 0; i < ds->n; i++) s += ds->r[i].len;
    return s;
}

size_t crdt_ds_ranges(const crdt_ds *ds)
{
    assert(ds);
    return ds->n;
}

void crdt_ds_range(const crdt_ds *ds, size_t i, uint64_t *client, uint32_t *clock, uint32_t *len)
{
    assert(ds && i < ds->n);
    if (client) *client = ds->r[i].client;
    if (clock) *clock = ds->r[i].clock;
    if (len) *len = ds->r[i].len;
}

tdm_err crdt_ds_encode(const crdt_ds *ds, tbuf *out)
{
    assert(ds && out);
    size_t start = out->len;
    tdm_err e = tbuf_cbor_map(out, ds->nclients);
    for (size_t i = 0; !e && i < ds->n;) {
        size_t j = i;
        while (j < ds->n && ds->r[j].client == ds->r[i].client) j++;
        e = tbuf_cbor_uint(out, ds->r[i].client);
        if (!e) e = tbuf_cbor_array(out, 2 * (j - i));
        for (; !e && i < j; i++) {
            e = tbuf_cbor_uint(out, ds->r[i].clock);
            if (!e) e = tbuf_cbor_uint(out, ds->r[i].len);
        }
    }
    if (e) out->len = start;
    return e;
}

tdm_err crdt_ds_decode(crdt_ds *ds, const uint8_t *p, size_t n)
{
    assert(ds && (p || n == 0));
    crdt_ds tmp = {0};
    cbr r;
    size_t nclients;
    tdm_err e;

    cbr_init(&r, p, n);
    if ((e = cbr_map(&r, &nclients))) goto fail;
    if (nclients > CRDT_MAX_CLIENTS) {
        e = TDM_ETOOBIG;
        goto fail;
    }
    for (size_t c = 0; c < nclients; c++) {
        uint64_t client;
        size_t cnt;
        if ((e = cbr_uint(&r, &client))) goto fail;
        if (c > 0 && client <= tmp.r[tmp.n - 1].client) {
            e = TDM_EMALFORMED;
            goto fail;
        }
        if ((e = cbr_array(&r, &cnt))) goto fail;
        if (cnt == 0 || cnt % 2 != 0) {
            e = TDM_EMALFORMED;
            goto fail;
        }
        /* cnt <= remaining bytes, so this allocation is bounded by the input */
        if ((e = ds_grow(&tmp, tmp.n + cnt / 2))) goto fail;
        size_t first = tmp.n;
        for (size_t k = 0; k < cnt / 2; k++) {
            uint64_t clock, len;
            if ((e = cbr_uint(&r, &clock)) || (e = cbr_uint(&r, &len))) goto fail;
            if (len == 0 || clock >= CRDT_CLOCK_MAX || len > CRDT_CLOCK_MAX - clock) {
                e = TDM_EMALFORMED;
                goto fail;
            }
            if (tmp.n > first) {
                ds_range *prev = &tmp.r[tmp.n - 1];
                if (clock < rend(prev)) { /* unsorted or overlapping */
                    e = TDM_EMALFORMED;
                    goto fail;
                }
                if (clock == rend(prev)) { /* touching: keep the canonical form */
                    prev->len = (uint32_t)(clock + len - prev->clock);
                    continue;
                }
            }
            tmp.r[tmp.n++] = (ds_range){client, (uint32_t)clock, (uint32_t)len};
        }
        tmp.nclients++;
    }
    if ((e = cbr_finish(&r))) goto fail;

    free(ds->r);
    *ds = tmp;
    return TDM_OK;

fail:
    free(tmp.r);
    return e;
}
