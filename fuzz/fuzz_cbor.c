/* fuzz_cbor.c - libFuzzer harness: the validating CBOR reader (cbr_*) and the
 * varint reader (vrd_*) against small reference decoders written here from
 * RFC 8949 and the rules in cbor_rd.h.
 *
 * Input: byte 0 picks cbr_skip's max_depth ((b % 70) - 2, so -2..67 and some
 * invalid values); the rest is the CBOR (and varint) data.
 * Invariants:
 *   - cbr_skip with an invalid depth is TDM_EINVAL and does not move;
 *   - skipping item after item: each cbr_skip consumes exactly what the
 *     reference says (never past the input), or fails with TDM_EMALFORMED
 *     without moving exactly when the reference rejects the item (malformed,
 *     truncated, indefinite, a count beyond the remaining bytes, unassigned
 *     simple values, nesting deeper than max_depth);
 *   - cbr_remaining is the bytes left and cbr_finish succeeds exactly when none
 *     are left;
 *   - walking head by head: cbr_peek agrees with the reference type; the
 *     matching typed reader returns the reference value, count or string
 *     (pointing into the input) and consumes the head; every other typed
 *     reader fails with TDM_EMALFORMED without moving or writing its outputs;
 *   - vrd_uint/u32/sint/byte agree with a reference LEB128 decoder and never
 *     move on failure.
 */
#include "fuzz_util.h"
#include "cbor_rd.h"

/* Formerly a known divergence from RFC 8949, mirrored so the harness kept
 * going: the reader rejected the one-byte tag heads 0xc6..0xd4 (tags 6..20)
 * while it accepted the same tags written 0xd8 0x06..0x14. cbor_rd.c accepts
 * them since d0e677c ("one-byte tag heads decode like longer ones"), so the
 * reference does too; 1 restores the old expectation. */
#define REF_SHORT_TAGS_6_20_BAD 0

typedef struct ref_head {
    uint64_t v;  /* value, count, length or tag */
    size_t hl;   /* bytes of the head, plus the payload for strings */
    unsigned ai; /* additional information (bool: 20 false, 21 true) */
} ref_head;

static cbr_type ref_read_head(const uint8_t *p, size_t n, size_t pos, ref_head *h)
{
    if (pos >= n) return CBR_END;
    uint8_t ib = p[pos];
    unsigned major = ib >> 5, ai = ib & 31;
    size_t avail = n - pos, hl = 1;
    uint64_t v = ai;
    if (ai >= 28) return CBR_BAD; /* reserved, or indefinite / break */
    if (ai >= 24) {
        size_t k = (size_t)1 << (ai - 24);
        if (avail < 1 + k) return CBR_BAD;
        v = 0;
        for (size_t i = 1; i <= k; i++) v = (v << 8) | p[pos + i];
        hl = 1 + k;
    }
    size_t rest = avail - hl;
    h->v = v;
    h->hl = hl;
    h->ai = ai;
    switch (major) {
    case 0:
        return CBR_UINT;
    case 1:
        return CBR_NEGINT;
    case 2:
    case 3:
        if (v > rest) return CBR_BAD;
        h->hl = hl + (size_t)v;
        return major == 2 ? CBR_BYTES : CBR_TEXT;
    case 4:
        return v > rest ? CBR_BAD : CBR_ARRAY;
    case 5:
        return v > rest / 2 ? CBR_BAD : CBR_MAP;
    case 6:
#if REF_SHORT_TAGS_6_20_BAD
        if (ai >= 6 && ai <= 20) return CBR_BAD;
#endif
        return CBR_TAG;
    default:
        if (ai == 20 || ai == 21) return CBR_BOOL;
        if (ai == 22) return CBR_NULL;
        if (ai == 23) return CBR_UNDEF;
        if (ai >= 25) return CBR_FLOAT;
        return CBR_BAD; /* simple values 0..19 and 0xf8 xx: not accepted */
    }
}

/* bytes one whole item at pos takes with at most `depth` levels, or SIZE_MAX */
static size_t ref_skip(const uint8_t *p, size_t n, size_t pos, int depth)
{
    ref_head h;
    cbr_type t = ref_read_head(p, n, pos, &h);
    if (t == CBR_BAD || t == CBR_END) return SIZE_MAX;
    size_t at = pos + h.hl;
    if (t != CBR_ARRAY && t != CBR_MAP && t != CBR_TAG) return h.hl;
    if (depth <= 0) return SIZE_MAX;
    uint64_t kids = t == CBR_ARRAY ? h.v : t == CBR_MAP ? 2 * h.v : 1;
    for (uint64_t k = 0; k < kids; k++) {
        size_t c = ref_skip(p, n, at, depth - 1);
        if (c == SIZE_MAX) return SIZE_MAX;
        at += c;
    }
    return at - pos;
}

static void check_skips(const uint8_t *p, size_t n, int max_depth)
{
    cbr r;
    cbr_init(&r, p, n);
    if (max_depth < 0 || max_depth > CBR_MAX_DEPTH) {
        FZ_CHECK(cbr_skip(&r, max_depth) == TDM_EINVAL);
        FZ_CHECK(r.pos == 0);
        max_depth = CBR_MAX_DEPTH;
    }
    for (;;) {
        size_t pos = r.pos;
        FZ_CHECK(pos <= n);
        FZ_CHECK(cbr_remaining(&r) == n - pos);
        FZ_CHECK((cbr_finish(&r) == TDM_OK) == (pos == n));
        size_t want = ref_skip(p, n, pos, max_depth);
        tdm_err e = cbr_skip(&r, max_depth);
        if (want == SIZE_MAX) {
            FZ_CHECK(e == TDM_EMALFORMED);
            FZ_CHECK(r.pos == pos);
            break;
        }
        FZ_CHECK(e == TDM_OK);
        FZ_CHECK(want > 0 && r.pos == pos + want && r.pos <= n);
    }
}

/* every typed reader except the one for `t` fails without moving or writing */
static void check_wrong_readers(cbr *r, cbr_type t, const ref_head *h)
{
    const size_t pos = r->pos;
    const uint64_t su = 0x5a5a5a5a5a5a5a5aull;
    const uint8_t *sp = (const uint8_t *)"sentinel";
    uint64_t u = su;
    int64_t i = (int64_t)su;
    size_t cnt = (size_t)su;
    const uint8_t *bp = sp;
    size_t bn = (size_t)su;
    bool b = true;
    bool int_ok = (t == CBR_UINT || t == CBR_NEGINT) && h->v <= (uint64_t)INT64_MAX;
    if (t != CBR_UINT) FZ_CHECK(cbr_uint(r, &u) == TDM_EMALFORMED && u == su);
    if (!int_ok) FZ_CHECK(cbr_int(r, &i) == TDM_EMALFORMED && i == (int64_t)su);
    if (t != CBR_ARRAY) FZ_CHECK(cbr_array(r, &cnt) == TDM_EMALFORMED && cnt == (size_t)su);
    if (t != CBR_MAP) FZ_CHECK(cbr_map(r, &cnt) == TDM_EMALFORMED && cnt == (size_t)su);
    if (t != CBR_BYTES) FZ_CHECK(cbr_bytes(r, &bp, &bn) == TDM_EMALFORMED);
    if (t != CBR_TEXT) FZ_CHECK(cbr_text(r, &bp, &bn) == TDM_EMALFORMED);
    FZ_CHECK(bp == sp && bn == (size_t)su);
    if (t != CBR_NULL) FZ_CHECK(cbr_null(r) == TDM_EMALFORMED);
    if (t != CBR_BOOL) FZ_CHECK(cbr_bool(r, &b) == TDM_EMALFORMED && b);
    if (t == CBR_BAD || t == CBR_END) FZ_CHECK(cbr_skip(r, CBR_MAX_DEPTH) == TDM_EMALFORMED);
    FZ_CHECK(r->pos == pos);
}

static void check_walk(const uint8_t *p, size_t n)
{
    cbr r;
    cbr_init(&r, p, n);
    for (;;) {
        const size_t pos = r.pos;
        ref_head h = {0};
        cbr_type rt = ref_read_head(p, n, pos, &h);
        cbr_type t = cbr_peek(&r);
        FZ_CHECK(t == rt);
        FZ_CHECK(cbr_remaining(&r) == n - pos);
        check_wrong_readers(&r, t, &h);
        if (t == CBR_END || t == CBR_BAD) {
            FZ_CHECK((cbr_finish(&r) == TDM_OK) == (t == CBR_END));
            return;
        }
        uint64_t u;
        int64_t i;
        size_t cnt, len;
        const uint8_t *s;
        bool b;
        switch (t) {
        case CBR_UINT:
            if (h.v <= (uint64_t)INT64_MAX) {
                cbr c = r;
                FZ_OK(cbr_int(&c, &i));
                FZ_CHECK(i == (int64_t)h.v && c.pos == pos + h.hl);
            }
            FZ_OK(cbr_uint(&r, &u));
            FZ_CHECK(u == h.v);
            break;
        case CBR_NEGINT:
            if (h.v <= (uint64_t)INT64_MAX) {
                FZ_OK(cbr_int(&r, &i));
                FZ_CHECK(i == -1 - (int64_t)h.v);
            } else {
                FZ_OK(cbr_skip(&r, 0));
            }
            break;
        case CBR_BYTES:
        case CBR_TEXT:
            FZ_OK(t == CBR_BYTES ? cbr_bytes(&r, &s, &len) : cbr_text(&r, &s, &len));
            FZ_CHECK(len == h.v && s == p + pos + h.hl - len && s + len <= p + n);
            break;
        case CBR_ARRAY:
            FZ_OK(cbr_array(&r, &cnt));
            FZ_CHECK(cnt == h.v && cnt <= cbr_remaining(&r));
            break;
        case CBR_MAP:
            FZ_OK(cbr_map(&r, &cnt));
            FZ_CHECK(cnt == h.v && 2 * cnt <= cbr_remaining(&r));
            break;
        case CBR_NULL:
            FZ_OK(cbr_null(&r));
            break;
        case CBR_BOOL:
            FZ_OK(cbr_bool(&r, &b));
            FZ_CHECK(b == (h.ai == 21));
            break;
        case CBR_TAG: {
            /* no reader takes a bare tag head: skip the whole tagged item */
            size_t want = ref_skip(p, n, pos, CBR_MAX_DEPTH);
            tdm_err e = cbr_skip(&r, CBR_MAX_DEPTH);
            if (want == SIZE_MAX) {
                FZ_CHECK(e == TDM_EMALFORMED && r.pos == pos);
                return;
            }
            FZ_CHECK(e == TDM_OK && r.pos == pos + want);
            continue;
        }
        default: /* floats, undefined */
            FZ_OK(cbr_skip(&r, 0));
            break;
        }
        FZ_CHECK(r.pos == pos + h.hl && r.pos <= n);
    }
}

/* reference LEB128: value and length, or 0 when malformed */
static size_t ref_varint(const uint8_t *p, size_t n, size_t pos, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t k = 0; k < 10; k++) {
        if (pos + k >= n) return 0;
        uint8_t c = p[pos + k];
        if (k == 9 && c > 1) return 0;
        x |= (uint64_t)(c & 0x7f) << (7 * k);
        if (!(c & 0x80)) {
            *v = x;
            return k + 1;
        }
    }
    return 0;
}

static void check_varints(const uint8_t *p, size_t n, unsigned pattern)
{
    vrd r;
    vrd_init(&r, p, n);
    for (unsigned step = 0;; step++) {
        const size_t pos = r.pos;
        uint64_t want = 0, u = 7;
        uint32_t u32 = 7;
        int64_t s = 7;
        uint8_t byte = 7;
        size_t len = ref_varint(p, n, pos, &want);
        tdm_err e;
        switch ((pattern >> (2 * (step % 4))) & 3) {
        case 0:
            e = vrd_uint(&r, &u);
            FZ_CHECK(e == (len ? TDM_OK : TDM_EMALFORMED));
            FZ_CHECK(len ? u == want : u == 7);
            break;
        case 1:
            if (len && want > UINT32_MAX) len = 0;
            e = vrd_u32(&r, &u32);
            FZ_CHECK(e == (len ? TDM_OK : TDM_EMALFORMED));
            FZ_CHECK(len ? u32 == want : u32 == 7);
            break;
        case 2:
            e = vrd_sint(&r, &s);
            FZ_CHECK(e == (len ? TDM_OK : TDM_EMALFORMED));
            if (len) {
                int64_t z = (want & 1) ? -(int64_t)(want >> 1) - 1 : (int64_t)(want >> 1);
                FZ_CHECK(s == z);
            }
            break;
        default:
            len = pos < n ? 1 : 0;
            e = vrd_byte(&r, &byte);
            FZ_CHECK(e == (len ? TDM_OK : TDM_EMALFORMED));
            FZ_CHECK(len ? byte == p[pos] : byte == 7);
            break;
        }
        FZ_CHECK(r.pos == pos + len && r.pos <= n);
        if (e) return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        cbr r;
        cbr_init(&r, NULL, 0);
        FZ_CHECK(cbr_peek(&r) == CBR_END && cbr_remaining(&r) == 0);
        FZ_CHECK(cbr_finish(&r) == TDM_OK);
        FZ_CHECK(cbr_skip(&r, 0) == TDM_EMALFORMED);
        return 0;
    }
    int max_depth = (int)(data[0] % 70) - 2;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    check_skips(p, n, max_depth);
    check_walk(p, n);
    check_varints(p, n, data[0]);
    return 0;
}
