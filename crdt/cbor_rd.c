/* cbor_rd.c - validating pull decoder over libcbor's streaming decoder.
 *
 * Every read decodes exactly one item head with cbor_stream_decode; the
 * callbacks only record what was seen into a `head` on the stack. The head is
 * then checked (definite length, declared count against the bytes that remain,
 * expected type) before the reader moves. A failed call never moves the reader.
 * Nothing here allocates.
 */
#include "cbor_rd.h"

#include <assert.h>
#include <string.h>

#include <cbor.h>

/* What one cbor_stream_decode call saw. */
typedef struct head {
    cbr_type type;
    bool bad;         /* indefinite length, stray break, or other rejected form */
    uint64_t u;       /* integer value, negint argument, count, tag */
    const uint8_t *s; /* string payload (points into the input) */
    size_t slen;      /* string length */
    bool b;           /* boolean value */
    size_t len;       /* bytes the item head (plus string payload) takes */
} head;

static void on_u8(void *ctx, uint8_t v)
{
    head *h = ctx;
    h->type = CBR_UINT;
    h->u = v;
}
static void on_u16(void *ctx, uint16_t v)
{
    on_u8(ctx, 0);
    ((head *)ctx)->u = v;
}
static void on_u32(void *ctx, uint32_t v)
{
    on_u8(ctx, 0);
    ((head *)ctx)->u = v;
}
static void on_u64(void *ctx, uint64_t v)
{
    on_u8(ctx, 0);
    ((head *)ctx)->u = v;
}
static void on_n8(void *ctx, uint8_t v)
{
    head *h = ctx;
    h->type = CBR_NEGINT;
    h->u = v;
}
static void on_n16(void *ctx, uint16_t v)
{
    on_n8(ctx, 0);
    ((head *)ctx)->u = v;
}
static void on_n32(void *ctx, uint32_t v)
{
    on_n8(ctx, 0);
    ((head *)ctx)->u = v;
}
static void on_n64(void *ctx, uint64_t v)
{
    on_n8(ctx, 0);
    ((head *)ctx)->u = v;
}
static void on_bytes(void *ctx, cbor_data p, size_t n)
{
    head *h = ctx;
    h->type = CBR_BYTES;
    h->s = p;
    h->slen = n;
}
static void on_text(void *ctx, cbor_data p, size_t n)
{
    head *h = ctx;
    h->type = CBR_TEXT;
    h->s = p;
    h->slen = n;
}
static void on_array(void *ctx, size_t n)
{
    head *h = ctx;
    h->type = CBR_ARRAY;
    h->u = n;
}
static void on_map(void *ctx, size_t n)
{
    head *h = ctx;
    h->type = CBR_MAP;
    h->u = n;
}
static void on_tag(void *ctx, uint64_t v)
{
    head *h = ctx;
    h->type = CBR_TAG;
    h->u = v;
}
static void on_float4(void *ctx, float v)
{
    (void)v;
    ((head *)ctx)->type = CBR_FLOAT;
}
static void on_float8(void *ctx, double v)
{
    (void)v;
    ((head *)ctx)->type = CBR_FLOAT;
}
static void on_null(void *ctx)
{
    ((head *)ctx)->type = CBR_NULL;
}
static void on_undef(void *ctx)
{
    ((head *)ctx)->type = CBR_UNDEF;
}
static void on_bool(void *ctx, bool v)
{
    head *h = ctx;
    h->type = CBR_BOOL;
    h->b = v;
}
/* Indefinite-length starts and the break byte: never accepted. */
static void on_reject(void *ctx)
{
    ((head *)ctx)->bad = true;
}

/* Decode the head at the reader's position into *h without moving the reader.
 * Returns the type; CBR_END at the end of input, CBR_BAD for anything this
 * reader does not accept (malformed, truncated, indefinite, count too large). */
/* Every callback of libcbor 0.8's struct is set (none may be NULL); the
 * assertion catches a libcbor that adds fields. A const table, built once. */
_Static_assert(sizeof(struct cbor_callbacks) == 24 * sizeof(void (*)(void)),
               "libcbor added callbacks: list them here");
static const struct cbor_callbacks head_callbacks = {
    .uint8 = on_u8,
    .uint16 = on_u16,
    .uint32 = on_u32,
    .uint64 = on_u64,
    .negint8 = on_n8,
    .negint16 = on_n16,
    .negint32 = on_n32,
    .negint64 = on_n64,
    /* libcbor 0.8 naming: byte_string/string are the definite forms,
     * byte_string_start/string_start the indefinite ones. */
    .byte_string = on_bytes,
    .byte_string_start = on_reject,
    .string = on_text,
    .string_start = on_reject,
    .array_start = on_array,
    .indef_array_start = on_reject,
    .map_start = on_map,
    .indef_map_start = on_reject,
    .tag = on_tag,
    .float2 = on_float4,
    .float4 = on_float4,
    .float8 = on_float8,
    .null = on_null,
    .undefined = on_undef,
    .boolean = on_bool,
    .indef_break = on_reject,
};

/* fast_head - the definite-length heads of major types 0-6 (integers,
 * strings, arrays, maps, tags: nearly everything tandem sends), decoded directly per
 * RFC 8949 section 3 with the same checks as the libcbor path below. Returns
 * false to let libcbor handle the rest (tags, simple values, floats, and
 * anything malformed, which it rejects). Measured: this halves the cost of
 * decoding a one-keystroke update. */
static bool fast_head(const uint8_t *src, size_t avail, head *h)
{
    uint8_t ib = src[0];
    unsigned major = ib >> 5, ai = ib & 31;
    if (major > 6 || ai > 27) return false;
    uint64_t v = ai;
    size_t hl = 1;
    if (ai >= 24) {
        size_t k = (size_t)1 << (ai - 24);
        if (avail < 1 + k) return false;
        v = 0;
        for (size_t i = 1; i <= k; i++) v = (v << 8) | src[i];
        hl = 1 + k;
    }
    size_t rest = avail - hl;
    switch (major) {
    case 0:
        h->type = CBR_UINT;
        h->u = v;
        break;
    case 1:
        h->type = CBR_NEGINT;
        h->u = v;
        break;
    case 2:
    case 3:
        if (v > rest) return false;
        h->type = major == 2 ? CBR_BYTES : CBR_TEXT;
        h->s = src + hl;
        h->slen = (size_t)v;
        hl += (size_t)v;
        break;
    case 4:
        if (v > rest) return false;
        h->type = CBR_ARRAY;
        h->u = v;
        break;
    case 5:
        if (v > rest / 2) return false;
        h->type = CBR_MAP;
        h->u = v;
        break;
    default: /* 6: a tag, in any head length (libcbor 0.8 refuses tags 6-20 in one byte) */
        h->type = CBR_TAG;
        h->u = v;
        break;
    }
    h->len = hl;
    return true;
}

static cbr_type read_head(const cbr *r, head *h)
{
    memset(h, 0, sizeof *h);
    h->type = CBR_BAD;
    if (r->pos >= r->n) return h->type = CBR_END;

    const uint8_t *src = r->p + r->pos;
    size_t avail = r->n - r->pos;
    if (fast_head(src, avail, h)) return h->type;
    struct cbor_decoder_result res = cbor_stream_decode(src, avail, &head_callbacks, h);
    if (res.status != CBOR_DECODER_FINISHED || h->bad || h->type == CBR_BAD || res.read == 0 ||
        res.read > avail) {
        return h->type = CBR_BAD;
    }
#if SIZE_MAX < UINT64_MAX
    /* libcbor narrows 8-byte lengths and counts to size_t: on a 32-bit target a
     * huge declared size would be silently truncated. Nothing that large can
     * be present, so reject it from the raw bytes. */
    {
        uint8_t ib = src[0], major = ib >> 5;
        if ((ib & 0x1f) == 27 && major >= 2 && major <= 5 &&
            (src[1] | src[2] | src[3] | src[4]) != 0)
            return h->type = CBR_BAD;
    }
#endif
    size_t rest = avail - res.read;
    if (h->type == CBR_ARRAY && h->u > rest) return h->type = CBR_BAD;
    if (h->type == CBR_MAP && h->u > rest / 2) return h->type = CBR_BAD;
    h->len = res.read;
    return h->type;
}

/* Read one head of type `want`, advancing past it on success. */
static tdm_err take(cbr *r, cbr_type want, head *h)
{
    assert(r);
    if (read_head(r, h) != want) return TDM_EMALFORMED;
    r->pos += h->len;
    return TDM_OK;
}

void cbr_init(cbr *r, const uint8_t *p, size_t n)
{
    assert(r && (p || n == 0));
    r->p = p;
    r->n = n;
    r->pos = 0;
}

cbr_type cbr_peek(const cbr *r)
{
    head h;
    return read_head(r, &h);
}

size_t cbr_remaining(const cbr *r)
{
    return r->n - r->pos;
}

tdm_err cbr_uint(cbr *r, uint64_t *v)
{
    head h;
    tdm_err e = take(r, CBR_UINT, &h);
    if (!e) *v = h.u;
    return e;
}

tdm_err cbr_int(cbr *r, int64_t *v)
{
    head h;
    cbr_type t = read_head(r, &h);
    if (t == CBR_UINT) {
        if (h.u > (uint64_t)INT64_MAX) return TDM_EMALFORMED;
        *v = (int64_t)h.u;
    } else if (t == CBR_NEGINT) {
        /* value is -1 - u; representable when u <= INT64_MAX */
        if (h.u > (uint64_t)INT64_MAX) return TDM_EMALFORMED;
        *v = -(int64_t)h.u - 1;
    } else {
        return TDM_EMALFORMED;
    }
    r->pos += h.len;
    return TDM_OK;
}

tdm_err cbr_array(cbr *r, size_t *count)
{
    head h;
    tdm_err e = take(r, CBR_ARRAY, &h);
    if (!e) *count = (size_t)h.u;
    return e;
}

tdm_err cbr_map(cbr *r, size_t *count)
{
    head h;
    tdm_err e = take(r, CBR_MAP, &h);
    if (!e) *count = (size_t)h.u;
    return e;
}

tdm_err cbr_bytes(cbr *r, const uint8_t **p, size_t *n)
{
    head h;
    tdm_err e = take(r, CBR_BYTES, &h);
    if (!e) {
        *p = h.s;
        *n = h.slen;
    }
    return e;
}

tdm_err cbr_text(cbr *r, const uint8_t **p, size_t *n)
{
    head h;
    tdm_err e = take(r, CBR_TEXT, &h);
    if (!e) {
        *p = h.s;
        *n = h.slen;
    }
    return e;
}

tdm_err cbr_null(cbr *r)
{
    head h;
    return take(r, CBR_NULL, &h);
}

tdm_err cbr_bool(cbr *r, bool *v)
{
    head h;
    tdm_err e = take(r, CBR_BOOL, &h);
    if (!e) *v = h.b;
    return e;
}

tdm_err cbr_skip(cbr *r, int max_depth)
{
    assert(r);
    if (max_depth < 0 || max_depth > CBR_MAX_DEPTH) return TDM_EINVAL;

    /* left[d]: items still to skip at nesting level d (level 0 is the item
     * itself). Each count is bounded by the bytes that remain. */
    size_t left[CBR_MAX_DEPTH + 1];
    int depth = 0;
    size_t start = r->pos;
    left[0] = 1;

    for (;;) {
        while (depth >= 0 && left[depth] == 0) depth--;
        if (depth < 0) return TDM_OK;
        left[depth]--;

        head h;
        cbr_type t = read_head(r, &h);
        if (t == CBR_BAD || t == CBR_END) goto fail;
        r->pos += h.len;

        size_t kids;
        if (t == CBR_ARRAY)
            kids = (size_t)h.u;
        else if (t == CBR_MAP)
            kids = (size_t)h.u * 2; /* h.u <= remaining / 2: no overflow */
        else if (t == CBR_TAG)
            kids = 1;
        else
            continue;
        if (depth >= max_depth) goto fail; /* this container would nest too deep */
        if (kids) left[++depth] = kids;
    }

fail:
    r->pos = start;
    return TDM_EMALFORMED;
}

tdm_err cbr_finish(const cbr *r)
{
    return r->pos == r->n ? TDM_OK : TDM_EMALFORMED;
}

void vrd_init(vrd *r, const uint8_t *p, size_t n)
{
    assert(r && (p || n == 0));
    r->p = p;
    r->n = n;
    r->pos = 0;
}

tdm_err vrd_uint(vrd *r, uint64_t *v)
{
    uint64_t x = 0;
    size_t i = r->pos;
    for (unsigned k = 0; k < 10; k++) {
        if (i >= r->n) return TDM_EMALFORMED; /* truncated */
        uint8_t c = r->p[i++];
        /* the 10th byte holds bit 63 only: anything more overflows */
        if (k == 9 && c > 1) return TDM_EMALFORMED;
        x |= (uint64_t)(c & 0x7f) << (7 * k);
        if (!(c & 0x80)) {
            r->pos = i;
            *v = x;
            return TDM_OK;
        }
    }
    return TDM_EMALFORMED; /* unreachable: the 10th byte has no continuation bit */
}

tdm_err vrd_u32(vrd *r, uint32_t *v)
{
    size_t save = r->pos;
    uint64_t x;
    tdm_err e = vrd_uint(r, &x);
    if (e) return e;
    if (x > UINT32_MAX) {
        r->pos = save;
        return TDM_EMALFORMED;
    }
    *v = (uint32_t)x;
    return TDM_OK;
}

tdm_err vrd_sint(vrd *r, int64_t *v)
{
    uint64_t z;
    tdm_err e = vrd_uint(r, &z);
    if (e) return e;
    /* zigzag decode: even -> z/2, odd -> -(z+1)/2 */
    *v = (z & 1) ? -(int64_t)(z >> 1) - 1 : (int64_t)(z >> 1);
    return TDM_OK;
}

tdm_err vrd_byte(vrd *r, uint8_t *v)
{
    if (r->pos >= r->n) return TDM_EMALFORMED;
    *v = r->p[r->pos++];
    return TDM_OK;
}
