/* fuzz_sync_msg.c - libFuzzer harness: syncm_decode (sync/msg.h) of arbitrary
 * bytes as one frame.
 *
 * Invariants:
 *   - on error: the code is one that msg.h documents for syncm_decode
 *     (TDM_EMALFORMED, TDM_EUTF8, TDM_ETOOBIG, TDM_ENOMEM), the syncm is all
 *     zero and owns nothing (LeakSanitizer sees anything left allocated);
 *   - on success with a known type: syncm_encode accepts the decoded message,
 *     the frame it writes decodes to an equal message (every field, strings
 *     by content, state vectors, OT operations and chat records by value),
 *     and encoding that message again gives identical bytes (the re-encoded
 *     frame may be longer than the input: OT operations are normalized on
 *     decode, e.g. [10, 65535] becomes [65545], 4 bytes -> 5);
 *   - on success with an unknown type: the type number is one syncm_is_known
 *     rejects, and syncm_encode refuses the message (TDM_EINVAL);
 *   - the same bytes (2 or more) with a frame cap one byte too small give
 *     TDM_ETOOBIG.
 */
#include "fuzz_util.h"
#include "msg.h"

static bool err_documented(tdm_err e)
{
    return e == TDM_EMALFORMED || e == TDM_EUTF8 || e == TDM_ETOOBIG || e == TDM_ENOMEM;
}

static bool str_eq(syncm_str a, syncm_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static bool all_zero(const syncm *m)
{
    static const syncm z; /* syncm_clear zeroes with memset: padding included */
    return memcmp(m, &z, sizeof z) == 0;
}

static bool msg_eq(const syncm *a, const syncm *b)
{
    if (a->type != b->type || a->wire_type != b->wire_type || a->channel != b->channel)
        return false;
    if (a->proto != b->proto || a->caps != b->caps || a->client_id != b->client_id ||
        a->session_id != b->session_id || a->max_frame != b->max_frame ||
        !str_eq(a->token, b->token))
        return false;
    if (a->code != b->code || a->ref != b->ref || a->retry_ms != b->retry_ms ||
        a->nonce != b->nonce)
        return false;
    if (!str_eq(a->name, b->name) || a->mode != b->mode || a->access != b->access ||
        a->is_new != b->is_new)
        return false;
    if ((a->sv == NULL) != (b->sv == NULL) || (a->sv && !crdt_sv_equal(a->sv, b->sv))) return false;
    if (a->has_version != b->has_version || a->version != b->version ||
        a->has_after != b->has_after || a->after != b->after || a->limit != b->limit)
        return false;
    if (a->seq != b->seq || a->sync_id != b->sync_id || a->offset != b->offset ||
        a->total != b->total || !str_eq(a->data, b->data))
        return false;
    if ((a->op == NULL) != (b->op == NULL) || (a->op && !ot_op_equal(a->op, b->op))) return false;
    if (a->op_id != b->op_id || a->src != b->src || a->msg_id != b->msg_id ||
        a->chat_id != b->chat_id || a->time_ms != b->time_ms)
        return false;
    if (!str_eq(a->user, b->user) || !str_eq(a->display, b->display) || !str_eq(a->text, b->text))
        return false;
    if (a->more != b->more || a->nrecs != b->nrecs || a->on != b->on) return false;
    for (size_t i = 0; i < a->nrecs; i++) {
        const syncm_chat *x = &a->recs[i], *y = &b->recs[i];
        if (x->id != y->id || x->time_ms != y->time_ms || !str_eq(x->user, y->user) ||
            !str_eq(x->display, y->display) || !str_eq(x->text, y->text))
            return false;
    }
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    syncm m;
    tdm_err e = syncm_decode(data, size, 0, &m);
    if (e != TDM_OK) {
        if (!err_documented(e)) fz_fail(__FILE__, __LINE__, "documented error", tdm_err_name(e));
        FZ_CHECK(all_zero(&m));
        syncm_clear(&m);
    } else if (m.type == SYNCM_UNKNOWN) {
        tbuf out;
        tbuf_init(&out, 0);
        FZ_CHECK(!syncm_is_known(m.wire_type));
        FZ_CHECK(syncm_encode(&m, &out) == TDM_EINVAL);
        FZ_CHECK(out.len == 0);
        tbuf_fini(&out);
        syncm_clear(&m);
    } else {
        tbuf b1, b2;
        syncm m2;
        tbuf_init(&b1, 0);
        tbuf_init(&b2, 0);
        FZ_CHECK(syncm_is_known(m.wire_type) && m.wire_type == (uint64_t)m.type);
        FZ_OK(syncm_encode(&m, &b1));
        FZ_OK(syncm_decode(b1.data, b1.len, 0, &m2));
        FZ_CHECK(msg_eq(&m, &m2));
        FZ_OK(syncm_encode(&m2, &b2));
        FZ_CHECK(fz_buf_eq(&b1, &b2));
        syncm_clear(&m2);
        tbuf_fini(&b1);
        tbuf_fini(&b2);
        syncm_clear(&m);
    }
    FZ_CHECK(all_zero(&m));

    if (size > 1) { /* a cap of 0 means the default */
        FZ_CHECK(syncm_decode(data, size, size - 1, &m) == TDM_ETOOBIG);
        FZ_CHECK(all_zero(&m));
    }
    return 0;
}
