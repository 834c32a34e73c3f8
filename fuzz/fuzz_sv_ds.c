/* fuzz_sv_ds.c - libFuzzer harness: crdt_sv_decode and crdt_ds_decode on the
 * same arbitrary bytes, each into a value that already holds entries.
 *
 * Invariants (each decoder):
 *   - on error: TDM_EMALFORMED or TDM_ETOOBIG, and the target is unchanged
 *     (equal to its old value and encoding to the same bytes);
 *   - on success: the value is well formed (sv: clients strictly increasing,
 *     clocks in 1..CRDT_CLOCK_MAX-1, crdt_sv_get agrees; ds: ranges sorted,
 *     non-empty, below CRDT_CLOCK_MAX, never overlapping or touching within a
 *     client, crdt_ds_has and crdt_ds_ids agree); encode -> decode gives an
 *     equal value and encoding it again gives the same bytes, never longer
 *     than the input; merging with another value is commutative and covers
 *     (contains) both; a ds rebuilt with crdt_ds_add, range by range forwards
 *     and backwards, equals the decoded one.
 */
#include "fuzz_util.h"

static crdt_sv *sv_ref(void)
{
    crdt_sv *sv = crdt_sv_new();
    FZ_CHECK(sv);
    FZ_OK(crdt_sv_set(sv, 1, 5));
    FZ_OK(crdt_sv_set(sv, (uint64_t)1 << 40, 3));
    FZ_OK(crdt_sv_set(sv, UINT64_MAX, CRDT_CLOCK_MAX - 1));
    return sv;
}

static crdt_ds *ds_ref(void)
{
    crdt_ds *ds = crdt_ds_new();
    FZ_CHECK(ds);
    FZ_OK(crdt_ds_add(ds, 1, 0, 3));
    FZ_OK(crdt_ds_add(ds, 1, 10, 2));
    FZ_OK(crdt_ds_add(ds, 5, 7, 1));
    FZ_OK(crdt_ds_add(ds, UINT64_MAX, CRDT_CLOCK_MAX - 2, 2));
    return ds;
}

static void sv_enc(const crdt_sv *sv, tbuf *out)
{
    tbuf_reset(out);
    FZ_OK(crdt_sv_encode(sv, out));
}

static void ds_enc(const crdt_ds *ds, tbuf *out)
{
    tbuf_reset(out);
    FZ_OK(crdt_ds_encode(ds, out));
}

static void fuzz_sv(const uint8_t *data, size_t size)
{
    crdt_sv *ref = sv_ref(), *sv = sv_ref(), *sv2 = crdt_sv_new(), *m = crdt_sv_new(),
            *m2 = crdt_sv_new();
    tbuf e0, e1, e2;
    FZ_CHECK(sv2 && m && m2);
    tbuf_init(&e0, 0);
    tbuf_init(&e1, 0);
    tbuf_init(&e2, 0);
    sv_enc(ref, &e0);

    tdm_err e = crdt_sv_decode(sv, data, size);
    if (e) {
        FZ_CHECK(e == TDM_EMALFORMED || e == TDM_ETOOBIG);
        FZ_CHECK(crdt_sv_equal(sv, ref));
        sv_enc(sv, &e1);
        FZ_CHECK(fz_buf_eq(&e0, &e1));
        goto out;
    }

    size_t n = crdt_sv_count(sv);
    FZ_CHECK(n <= CRDT_MAX_CLIENTS && n <= size / 2);
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t c;
        uint32_t k;
        crdt_sv_entry(sv, i, &c, &k);
        FZ_CHECK(i == 0 || c > prev);
        FZ_CHECK(k > 0 && k < CRDT_CLOCK_MAX);
        FZ_CHECK(crdt_sv_get(sv, c) == k);
        prev = c;
    }
    FZ_CHECK(crdt_sv_covers(sv, sv));

    sv_enc(sv, &e1);
    FZ_CHECK(e1.len <= size);
    FZ_OK(crdt_sv_decode(sv2, e1.data, e1.len));
    FZ_CHECK(crdt_sv_equal(sv, sv2));
    sv_enc(sv2, &e2);
    FZ_CHECK(fz_buf_eq(&e1, &e2));

    FZ_OK(crdt_sv_copy(m, ref));
    FZ_OK(crdt_sv_merge(m, sv));
    FZ_OK(crdt_sv_copy(m2, sv));
    FZ_OK(crdt_sv_merge(m2, ref));
    FZ_CHECK(crdt_sv_equal(m, m2));
    FZ_CHECK(crdt_sv_covers(m, sv) && crdt_sv_covers(m, ref));
    for (size_t i = 0; i < crdt_sv_count(m); i++) {
        uint64_t c;
        uint32_t k, a, b;
        crdt_sv_entry(m, i, &c, &k);
        a = crdt_sv_get(sv, c);
        b = crdt_sv_get(ref, c);
        FZ_CHECK(k == (a > b ? a : b));
    }
out:
    crdt_sv_free(ref);
    crdt_sv_free(sv);
    crdt_sv_free(sv2);
    crdt_sv_free(m);
    crdt_sv_free(m2);
    tbuf_fini(&e0);
    tbuf_fini(&e1);
    tbuf_fini(&e2);
}

/* every range of `sub` is in `super` */
static bool ds_contains(const crdt_ds *super, const crdt_ds *sub)
{
    for (size_t i = 0; i < crdt_ds_ranges(sub); i++) {
        uint64_t c;
        uint32_t k, n;
        crdt_ds_range(sub, i, &c, &k, &n);
        if (!crdt_ds_has(super, c, k) || !crdt_ds_has(super, c, k + n - 1)) return false;
    }
    return true;
}

static void fuzz_ds(const uint8_t *data, size_t size)
{
    crdt_ds *ref = ds_ref(), *ds = ds_ref(), *ds2 = crdt_ds_new(), *m = crdt_ds_new(),
            *m2 = crdt_ds_new();
    tbuf e0, e1, e2;
    FZ_CHECK(ds2 && m && m2);
    tbuf_init(&e0, 0);
    tbuf_init(&e1, 0);
    tbuf_init(&e2, 0);
    ds_enc(ref, &e0);

    tdm_err e = crdt_ds_decode(ds, data, size);
    if (e) {
        FZ_CHECK(e == TDM_EMALFORMED || e == TDM_ETOOBIG);
        FZ_CHECK(crdt_ds_equal(ds, ref));
        ds_enc(ds, &e1);
        FZ_CHECK(fz_buf_eq(&e0, &e1));
        goto out;
    }

    size_t n = crdt_ds_ranges(ds);
    uint64_t ids = 0, pc = 0, pend = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t c;
        uint32_t k, len;
        crdt_ds_range(ds, i, &c, &k, &len);
        FZ_CHECK(len > 0 && (uint64_t)k + len <= CRDT_CLOCK_MAX);
        if (i > 0 && c == pc)
            FZ_CHECK(k > pend); /* sorted, not overlapping, not touching */
        else
            FZ_CHECK(i == 0 || c > pc);
        FZ_CHECK(crdt_ds_has(ds, c, k) && crdt_ds_has(ds, c, k + len - 1));
        FZ_CHECK(k == 0 || !crdt_ds_has(ds, c, k - 1));
        FZ_CHECK(!crdt_ds_has(ds, c, k + len));
        ids += len;
        pc = c;
        pend = (uint64_t)k + len;
    }
    FZ_CHECK(crdt_ds_ids(ds) == ids);

    ds_enc(ds, &e1);
    FZ_CHECK(e1.len <= size);
    FZ_OK(crdt_ds_decode(ds2, e1.data, e1.len));
    FZ_CHECK(crdt_ds_equal(ds, ds2));
    ds_enc(ds2, &e2);
    FZ_CHECK(fz_buf_eq(&e1, &e2));

    /* canonical: rebuilt range by range, in either order, it is equal */
    crdt_ds_clear(ds2);
    for (size_t i = 0; i < n; i++) {
        uint64_t c;
        uint32_t k, len;
        crdt_ds_range(ds, i, &c, &k, &len);
        FZ_OK(crdt_ds_add(ds2, c, k, len));
    }
    FZ_CHECK(crdt_ds_equal(ds, ds2));
    crdt_ds_clear(ds2);
    for (size_t i = n; i-- > 0;) {
        uint64_t c;
        uint32_t k, len;
        crdt_ds_range(ds, i, &c, &k, &len);
        FZ_OK(crdt_ds_add(ds2, c, k, len));
    }
    FZ_CHECK(crdt_ds_equal(ds, ds2));

    FZ_OK(crdt_ds_merge(m, ref));
    FZ_OK(crdt_ds_merge(m, ds));
    FZ_OK(crdt_ds_merge(m2, ds));
    FZ_OK(crdt_ds_merge(m2, ref));
    FZ_CHECK(crdt_ds_equal(m, m2));
    FZ_CHECK(ds_contains(m, ds) && ds_contains(m, ref));
    FZ_CHECK(crdt_ds_ids(m) <= crdt_ds_ids(ds) + crdt_ds_ids(ref));
    FZ_CHECK(crdt_ds_ids(m) >= crdt_ds_ids(ds) && crdt_ds_ids(m) >= crdt_ds_ids(ref));
out:
    crdt_ds_free(ref);
    crdt_ds_free(ds);
    crdt_ds_free(ds2);
    crdt_ds_free(m);
    crdt_ds_free(m2);
    tbuf_fini(&e0);
    tbuf_fini(&e1);
    tbuf_fini(&e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_sv(data, size);
    fuzz_ds(data, size);
    return 0;
}
