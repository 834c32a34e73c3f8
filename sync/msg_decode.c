/* msg_decode.c - syncm_decode: the one validating decoder of sync frames.
 *
 * Every item goes through the cbr_* reader; nested state vectors and OT
 * operations are delimited with cbr_skip (bounded depth) and handed to their
 * own validating decoders. Allocation (the state vector, the operation, the
 * chat record array) is proportional to bytes present: a record array's
 * declared count is bounded by the reader and by SYNCM_MAX_HISTORY. */
#include "msg.h"
#include "msg_internal.h"

#include "cbor_rd.h"
#include "utf8.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static void *at(syncm *m, size_t off)
{
    return (char *)m + off;
}

static tdm_err dec_uint(cbr *r, uint64_t lo, uint64_t hi, uint64_t *v)
{
    uint64_t x;
    if (cbr_uint(r, &x)) return TDM_EMALFORMED;
    if (x < lo || x > hi) return TDM_EMALFORMED;
    *v = x;
    return TDM_OK;
}

static tdm_err dec_str(cbr *r, bool text, uint64_t lo, uint64_t hi, syncm_str *s)
{
    const uint8_t *p;
    size_t n;
    if ((text ? cbr_text(r, &p, &n) : cbr_bytes(r, &p, &n))) return TDM_EMALFORMED;
    if (n < lo || n > hi) return TDM_EMALFORMED;
    if (text && n && !utf8_validate(p, n, NULL, NULL)) return TDM_EUTF8;
    s->p = n ? p : NULL;
    s->n = n;
    return TDM_OK;
}

/* the bytes of the next item, which must be of type `want` (nesting <= 1) */
static tdm_err dec_slice(cbr *r, cbr_type want, const uint8_t **p, size_t *n)
{
    if (cbr_peek(r) != want) return TDM_EMALFORMED;
    size_t start = r->pos;
    if (cbr_skip(r, 1)) return TDM_EMALFORMED;
    *p = r->p + start;
    *n = r->pos - start;
    return TDM_OK;
}

static tdm_err dec_sv(cbr *r, bool nullable, syncm *m)
{
    if (cbr_peek(r) == CBR_NULL) return nullable ? cbr_null(r) : TDM_EMALFORMED;
    const uint8_t *p;
    size_t n;
    if (dec_slice(r, CBR_MAP, &p, &n)) return TDM_EMALFORMED;
    crdt_sv *sv = crdt_sv_new();
    if (!sv) return TDM_ENOMEM;
    tdm_err e = crdt_sv_decode(sv, p, n);
    if (e) {
        crdt_sv_free(sv);
        return e == TDM_ENOMEM ? e : TDM_EMALFORMED;
    }
    m->sv = sv;
    return TDM_OK;
}

static tdm_err dec_op(cbr *r, bool nullable, syncm *m)
{
    if (cbr_peek(r) == CBR_NULL) return nullable ? cbr_null(r) : TDM_EMALFORMED;
    const uint8_t *p;
    size_t n;
    if (dec_slice(r, CBR_ARRAY, &p, &n)) return TDM_EMALFORMED;
    ot_op *op = NULL;
    tdm_err e = ot_op_decode(p, n, &op);
    if (e) return e == TDM_ENOMEM || e == TDM_EUTF8 ? e : TDM_EMALFORMED;
    m->op = op;
    return TDM_OK;
}

static tdm_err dec_recs(cbr *r, uint64_t max, syncm *m)
{
    size_t count;
    if (cbr_array(r, &count)) return TDM_EMALFORMED;
    if (count > max) return TDM_EMALFORMED;
    if (count == 0) return TDM_OK;
    syncm_chat *recs = calloc(count, sizeof *recs);
    if (!recs) return TDM_ENOMEM;
    m->recs = recs; /* freed by syncm_clear on error */
    for (size_t i = 0; i < count; i++) {
        syncm_chat *c = &recs[i];
        size_t k;
        tdm_err e = cbr_array(r, &k) || k != 5 ? TDM_EMALFORMED : TDM_OK;
        if (!e) e = dec_uint(r, 0, SYNCM_SAFE_UINT, &c->id);
        if (!e) e = dec_uint(r, 0, SYNCM_SAFE_UINT, &c->time_ms);
        if (!e) e = dec_str(r, true, 0, SYNCM_MAX_USER, &c->user);
        if (!e) e = dec_str(r, true, 0, SYNCM_MAX_USER, &c->display);
        if (!e) e = dec_str(r, true, 0, SYNCM_MAX_CHAT_TEXT, &c->text);
        if (e) return e;
        m->nrecs = i + 1;
    }
    return TDM_OK;
}

static tdm_err dec_field(cbr *r, const syncm_field *f, syncm *m)
{
    switch (f->kind) {
    case SYNCM_F_UINT:
        return dec_uint(r, f->min, f->max, at(m, f->off));
    case SYNCM_F_CHAN: {
        uint64_t v;
        tdm_err e = dec_uint(r, f->min, f->max, &v);
        if (!e) m->channel = (uint32_t)v;
        return e;
    }
    case SYNCM_F_BOOL:
        return cbr_bool(r, at(m, f->off)) ? TDM_EMALFORMED : TDM_OK;
    case SYNCM_F_BYTES:
        return dec_str(r, false, f->min, f->max, at(m, f->off));
    case SYNCM_F_TEXT:
        return dec_str(r, true, f->min, f->max, at(m, f->off));
    case SYNCM_F_NUINT:
        if (cbr_peek(r) == CBR_NULL) return cbr_null(r);
        *(bool *)at(m, f->has_off) = true;
        return dec_uint(r, f->min, f->max, at(m, f->off));
    case SYNCM_F_SV:
        return dec_sv(r, f->nullable, m);
    case SYNCM_F_OP:
        return dec_op(r, f->nullable, m);
    case SYNCM_F_RECS:
        return dec_recs(r, f->max, m);
    }
    return TDM_EMALFORMED;
}

/* skip `count` elements of any type (nesting <= SYNCM_SKIP_DEPTH) */
static tdm_err skip_items(cbr *r, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (cbr_skip(r, SYNCM_SKIP_DEPTH)) return TDM_EMALFORMED;
    return TDM_OK;
}

tdm_err syncm_decode(const uint8_t *p, size_t n, size_t max_frame, syncm *m)
{
    assert(m);
    memset(m, 0, sizeof *m);
    if (max_frame == 0) max_frame = SYNCM_DEFAULT_FRAME;
    if (max_frame > SYNCM_MAX_FRAME) max_frame = SYNCM_MAX_FRAME;
    if (n > max_frame) return TDM_ETOOBIG;
    if (!p && n) return TDM_EINVAL;

    cbr r;
    cbr_init(&r, p, n);
    size_t count;
    uint64_t type;
    tdm_err e = TDM_OK;
    if (cbr_array(&r, &count) || count < 1 || cbr_uint(&r, &type)) {
        e = TDM_EMALFORMED;
        goto fail;
    }
    const syncm_schema *s = syncm__schema(type);
    m->wire_type = type;
    if (!s) {
        /* unknown: ignored by the receiver, but still one well-formed frame */
        e = skip_items(&r, count - 1);
        if (!e) e = cbr_finish(&r);
        if (e) goto fail;
        m->type = SYNCM_UNKNOWN;
        return TDM_OK;
    }
    m->type = (syncm_type)type;
    if (count - 1 < s->n) {
        e = TDM_EMALFORMED;
        goto fail;
    }
    for (size_t i = 0; i < s->n && !e; i++) e = dec_field(&r, &s->f[i], m);
    if (!e) e = skip_items(&r, count - 1 - s->n); /* fields of a newer version */
    if (!e) e = cbr_finish(&r);
    if (!e) e = syncm__check(m);
    if (e) goto fail;
    return TDM_OK;
fail:
    syncm_clear(m);
    return e;
}

void syncm_clear(syncm *m)
{
    if (!m) return;
    crdt_sv_free(m->sv);
    ot_op_free(m->op);
    free(m->recs);
    memset(m, 0, sizeof *m);
}
