/* msg.c - the per-type field table of the sync protocol, type and error
 * names, and the cross-field checks shared by msg_encode.c and msg_decode.c. */
#include "msg.h"
#include "msg_internal.h"

#include <stddef.h>

#define OFF(f) offsetof(syncm, f)
#define U(f, lo, hi)                                                                               \
    {                                                                                              \
        SYNCM_F_UINT, false, OFF(f), 0, (lo), (hi)                                                 \
    }
#define US(f)  U(f, 0, SYNCM_SAFE_UINT)
#define U64(f) U(f, 0, UINT64_MAX)
#define CH                                                                                         \
    {                                                                                              \
        SYNCM_F_CHAN, false, OFF(channel), 0, 1, SYNCM_MAX_CHANNEL                                 \
    }
#define CH0                                                                                        \
    {                                                                                              \
        SYNCM_F_CHAN, false, OFF(channel), 0, 0, SYNCM_MAX_CHANNEL                                 \
    }
#define BOOL(f)                                                                                    \
    {                                                                                              \
        SYNCM_F_BOOL, false, OFF(f), 0, 0, 1                                                       \
    }
#define BYTES(f, max)                                                                              \
    {                                                                                              \
        SYNCM_F_BYTES, false, OFF(f), 0, 0, (max)                                                  \
    }
#define TEXT(f, lo, hi)                                                                            \
    {                                                                                              \
        SYNCM_F_TEXT, false, OFF(f), 0, (lo), (hi)                                                 \
    }
#define NUINT(f, has)                                                                              \
    {                                                                                              \
        SYNCM_F_NUINT, true, OFF(f), OFF(has), 0, SYNCM_SAFE_UINT                                  \
    }
#define SV(nul)                                                                                    \
    {                                                                                              \
        SYNCM_F_SV, (nul), OFF(sv), 0, 0, 0                                                        \
    }
#define OP(nul)                                                                                    \
    {                                                                                              \
        SYNCM_F_OP, (nul), OFF(op), 0, 0, 0                                                        \
    }
#define RECS                                                                                       \
    {                                                                                              \
        SYNCM_F_RECS, false, OFF(recs), OFF(nrecs), 0, SYNCM_MAX_HISTORY                           \
    }

static const syncm_field f_hello[] = {U(proto, 1, SYNCM_SAFE_UINT), US(caps), U64(client_id),
                                      BYTES(token, SYNCM_MAX_TOKEN)};
static const syncm_field f_welcome[] = {U(proto, 1, SYNCM_SAFE_UINT), US(session_id), US(caps),
                                        US(max_frame)};
static const syncm_field f_error[] = {
    U(code, 1, SYNCM_SAFE_UINT),         CH0,     US(ref), US(retry_ms),
    TEXT(text, 0, SYNCM_MAX_ERROR_TEXT), OP(true)};
static const syncm_field f_ping[] = {US(nonce)};
static const syncm_field f_subscribe[] = {
    CH,       TEXT(name, 1, SYNCM_MAX_NAME), U(mode, 0, 1),
    SV(true), NUINT(version, has_version),   NUINT(after, has_after)};
static const syncm_field f_subscribed[] = {CH,          U(access, 1, 2), U(mode, 0, 1), US(version),
                                           US(chat_id), BOOL(is_new),    SV(true)};
static const syncm_field f_chan[] = {CH};
static const syncm_field f_sync_step[] = {CH, SV(false)};
static const syncm_field f_chunk[] = {CH, US(sync_id), US(offset), US(total),
                                      BYTES(data, SYNCM_CHUNK_DATA)};
static const syncm_field f_update[] = {CH, US(seq), BYTES(data, SYNCM_MAX_FRAME)};
static const syncm_field f_ack[] = {CH, US(seq)};
static const syncm_field f_awareness[] = {CH, BYTES(data, SYNCM_MAX_FRAME)};
static const syncm_field f_ot_op[] = {CH, US(version), US(op_id), OP(false)};
static const syncm_field f_ot_ack[] = {CH, US(op_id), US(version)};
static const syncm_field f_ot_remote[] = {CH, US(version), OP(false), U64(src), US(op_id)};
static const syncm_field f_ot_snapshot[] = {CH, US(version), US(offset), US(total),
                                            BYTES(data, SYNCM_CHUNK_DATA)};
static const syncm_field f_chat_send[] = {CH, US(msg_id), TEXT(text, 1, SYNCM_MAX_CHAT_TEXT)};
static const syncm_field f_chat_ack[] = {CH, US(msg_id), US(chat_id), US(time_ms)};
static const syncm_field f_chat_msg[] = {CH,
                                         US(chat_id),
                                         US(time_ms),
                                         TEXT(user, 0, SYNCM_MAX_USER),
                                         TEXT(display, 0, SYNCM_MAX_USER),
                                         TEXT(text, 0, SYNCM_MAX_CHAT_TEXT)};
static const syncm_field f_chat_history[] = {CH, US(after), U(limit, 1, SYNCM_MAX_HISTORY)};
static const syncm_field f_chat_reply[] = {CH, BOOL(more), RECS};
static const syncm_field f_typing[] = {CH, BOOL(on), TEXT(user, 0, SYNCM_MAX_USER),
                                       TEXT(display, 0, SYNCM_MAX_USER)};

#define S(a)                                                                                       \
    {                                                                                              \
        a, sizeof a / sizeof a[0]                                                                  \
    }

typedef struct syncm_typeinfo {
    const char *name;
    syncm_schema schema;
} syncm_typeinfo;

static const syncm_typeinfo types[SYNCM_TYPE_LIMIT_] = {
    [SYNCM_HELLO] = {"HELLO", S(f_hello)},
    [SYNCM_WELCOME] = {"WELCOME", S(f_welcome)},
    [SYNCM_ERROR] = {"ERROR", S(f_error)},
    [SYNCM_PING] = {"PING", S(f_ping)},
    [SYNCM_PONG] = {"PONG", S(f_ping)},
    [SYNCM_SUBSCRIBE] = {"SUBSCRIBE", S(f_subscribe)},
    [SYNCM_SUBSCRIBED] = {"SUBSCRIBED", S(f_subscribed)},
    [SYNCM_UNSUBSCRIBE] = {"UNSUBSCRIBE", S(f_chan)},
    [SYNCM_SYNC_STEP] = {"SYNC_STEP", S(f_sync_step)},
    [SYNCM_UPDATE_CHUNK] = {"UPDATE_CHUNK", S(f_chunk)},
    [SYNCM_UPDATE] = {"UPDATE", S(f_update)},
    [SYNCM_ACK] = {"ACK", S(f_ack)},
    [SYNCM_AWARENESS] = {"AWARENESS", S(f_awareness)},
    [SYNCM_OT_OP] = {"OT_OP", S(f_ot_op)},
    [SYNCM_OT_ACK] = {"OT_ACK", S(f_ot_ack)},
    [SYNCM_OT_REMOTE] = {"OT_REMOTE", S(f_ot_remote)},
    [SYNCM_OT_SNAPSHOT] = {"OT_SNAPSHOT", S(f_ot_snapshot)},
    [SYNCM_CHAT_SEND] = {"CHAT_SEND", S(f_chat_send)},
    [SYNCM_CHAT_ACK] = {"CHAT_ACK", S(f_chat_ack)},
    [SYNCM_CHAT_MSG] = {"CHAT_MSG", S(f_chat_msg)},
    [SYNCM_CHAT_HISTORY] = {"CHAT_HISTORY", S(f_chat_history)},
    [SYNCM_CHAT_HISTORY_REPLY] = {"CHAT_HISTORY_REPLY", S(f_chat_reply)},
    [SYNCM_TYPING] = {"TYPING", S(f_typing)},
};

static const char *const errnames[] = {
    [SYNC_ERR_MALFORMED] = "MALFORMED",
    [SYNC_ERR_NOT_ALLOWED] = "NOT_ALLOWED",
    [SYNC_ERR_RATE_LIMITED] = "RATE_LIMITED",
    [SYNC_ERR_TOO_BIG] = "TOO_BIG",
    [SYNC_ERR_UNKNOWN_DOCUMENT] = "UNKNOWN_DOCUMENT",
    [SYNC_ERR_SERVER_BUSY] = "SERVER_BUSY",
    [SYNC_ERR_VERSION_MISMATCH] = "VERSION_MISMATCH",
    [SYNC_ERR_TOO_FAR_BEHIND] = "TOO_FAR_BEHIND",
    [SYNC_ERR_UNKNOWN_CHANNEL] = "UNKNOWN_CHANNEL",
    [SYNC_ERR_CHANNEL_IN_USE] = "CHANNEL_IN_USE",
    [SYNC_ERR_BAD_STATE] = "BAD_STATE",
    [SYNC_ERR_STORAGE] = "STORAGE",
    [SYNC_ERR_BAD_OPERATION] = "BAD_OPERATION",
    [SYNC_ERR_LOAD_FAILED] = "LOAD_FAILED",
    [SYNC_ERR_INTERNAL] = "INTERNAL",
    [SYNC_ERR_CLOSING] = "CLOSING",
};

bool syncm_is_known(uint64_t type)
{
    return type < SYNCM_TYPE_LIMIT_ && types[type].name != NULL;
}

const char *syncm_type_name(uint64_t type)
{
    return syncm_is_known(type) ? types[type].name : "UNKNOWN";
}

const char *syncm_errcode_name(uint64_t code)
{
    size_t n = sizeof errnames / sizeof errnames[0];
    return code < n && errnames[code] ? errnames[code] : "UNKNOWN";
}

const syncm_schema *syncm__schema(uint64_t type)
{
    return syncm_is_known(type) ? &types[type].schema : NULL;
}

tdm_err syncm__check(const syncm *m)
{
    switch (m->type) {
    case SYNCM_UPDATE_CHUNK:
    case SYNCM_OT_SNAPSHOT:
        /* the chunk lies inside the transfer; only an empty transfer has an
         * empty chunk */
        if (m->offset > m->total || m->data.n > m->total - m->offset) return TDM_EMALFORMED;
        if (m->data.n == 0 && m->total != 0) return TDM_EMALFORMED;
        return TDM_OK;
    case SYNCM_SUBSCRIBE:
        /* a CRDT subscriber sends its state vector; an OT one does not */
        if ((m->mode == SYNC_MODE_CRDT) != (m->sv != NULL)) return TDM_EMALFORMED;
        return TDM_OK;
    case SYNCM_SUBSCRIBED:
        if ((m->mode == SYNC_MODE_CRDT) != (m->sv != NULL)) return TDM_EMALFORMED;
        return TDM_OK;
    default:
        return TDM_OK;
    }
}
