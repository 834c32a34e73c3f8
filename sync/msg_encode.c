/* msg_encode.c - syncm_encode: walks the field table of msg.c and appends one
 * frame. Every value is checked against the caps the decoder enforces; on
 * any error the output buffer is truncated back to where it was. */
#include "msg.h"
#include "msg_internal.h"

#include "utf8.h"

#include <assert.h>

static uint64_t get_u64(const syncm *m, size_t off)
{
    return *(const uint64_t *)(const void *)((const char *)m + off);
}

static const syncm_str *get_str(const syncm *m, size_t off)
{
    return (const syncm_str *)(const void *)((const char *)m + off);
}

static bool get_bool(const syncm *m, size_t off)
{
    return *(const bool *)(const void *)((const char *)m + off);
}

static tdm_err enc_str(const syncm_field *f, const syncm_str *s, tbuf *out)
{
    if (s->n < f->min || s->n > f->max || (s->n && !s->p)) return TDM_EINVAL;
    if (f->kind == SYNCM_F_TEXT) {
        if (s->n && !utf8_validate(s->p, s->n, NULL, NULL)) return TDM_EINVAL;
        return tbuf_cbor_text(out, s->p, s->n);
    }
    return tbuf_cbor_bytes(out, s->p, s->n);
}

static tdm_err enc_recs(const syncm_field *f, const syncm *m, tbuf *out)
{
    if (m->nrecs > f->max || (m->nrecs && !m->recs)) return TDM_EINVAL;
    tdm_err e = tbuf_cbor_array(out, m->nrecs);
    static const syncm_field user = {SYNCM_F_TEXT, false, 0, 0, 0, SYNCM_MAX_USER};
    static const syncm_field text = {SYNCM_F_TEXT, false, 0, 0, 0, SYNCM_MAX_CHAT_TEXT};
    for (size_t i = 0; i < m->nrecs && !e; i++) {
        const syncm_chat *r = &m->recs[i];
        if (r->id > SYNCM_SAFE_UINT || r->time_ms > SYNCM_SAFE_UINT) return TDM_EINVAL;
        e = tbuf_cbor_array(out, 5);
        if (!e) e = tbuf_cbor_uint(out, r->id);
        if (!e) e = tbuf_cbor_uint(out, r->time_ms);
        if (!e) e = enc_str(&user, &r->user, out);
        if (!e) e = enc_str(&user, &r->display, out);
        if (!e) e = enc_str(&text, &r->text, out);
    }
    return e;
}

static tdm_err enc_field(const syncm_field *f, const syncm *m, tbuf *out)
{
    switch (f->kind) {
    case SYNCM_F_UINT: {
        uint64_t v = get_u64(m, f->off);
        if (v < f->min || v > f->max) return TDM_EINVAL;
        return tbuf_cbor_uint(out, v);
    }
    case SYNCM_F_CHAN:
        if (m->channel < f->min || m->channel > f->max) return TDM_EINVAL;
        return tbuf_cbor_uint(out, m->channel);
    case SYNCM_F_BOOL:
        return tbuf_cbor_bool(out, get_bool(m, f->off));
    case SYNCM_F_BYTES:
    case SYNCM_F_TEXT:
        return enc_str(f, get_str(m, f->off), out);
    case SYNCM_F_NUINT: {
        if (!get_bool(m, f->has_off)) return tbuf_cbor_null(out);
        uint64_t v = get_u64(m, f->off);
        if (v > f->max) return TDM_EINVAL;
        return tbuf_cbor_uint(out, v);
    }
    case SYNCM_F_SV:
        if (!m->sv) return f->nullable ? tbuf_cbor_null(out) : TDM_EINVAL;
        return crdt_sv_encode(m->sv, out);
    case SYNCM_F_OP:
        if (!m->op) return f->nullable ? tbuf_cbor_null(out) : TDM_EINVAL;
        return ot_op_encode(m->op, out);
    case SYNCM_F_RECS:
        return enc_recs(f, m, out);
    }
    return TDM_EINVAL;
}

tdm_err syncm_encode(const syncm *m, tbuf *out)
{
    assert(m && out);
    const syncm_schema *s = syncm__schema(m->type);
    if (!s) return TDM_EINVAL;
    if (syncm__check(m)) return TDM_EINVAL;
    size_t mark = out->len;
    tdm_err e = tbuf_cbor_array(out, 1 + s->n);
    if (!e) e = tbuf_cbor_uint(out, (uint64_t)m->type);
    for (size_t i = 0; i < s->n && !e; i++) e = enc_field(&s->f[i], m, out);
    if (e) out->len = mark;
    return e;
}
