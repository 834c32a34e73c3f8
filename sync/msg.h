/* msg.h - the tandem sync protocol's messages (prefix syncm_).
 *
 * Every frame is one CBOR array whose first element is the message type (an
 * unsigned integer); the elements after it are the message's fields, in a
 * fixed order per type (docs/PROTOCOL.md lists every one byte by byte). Most
 * messages name their document by a channel id (1..SYNCM_MAX_CHANNEL) that the
 * client picks in SUBSCRIBE and the server confirms in SUBSCRIBED.
 *
 * A syncm is a flat struct holding the fields of every type; each type uses a
 * subset and the others stay zero. One table (msg.c) lists each type's fields,
 * and both the encoder and the one validating decoder walk it, so they cannot
 * disagree.
 *
 * Decoding (syncm_decode) trusts nothing: the frame size is capped by the
 * caller, every item is read through the cbr_* reader (definite lengths,
 * counts bounded by the bytes present), every string has a cap, text is
 * strict UTF-8, state vectors and OT operations pass their own validating
 * decoders. Elements after the known fields are skipped (nesting at most
 * SYNCM_SKIP_DEPTH), so a newer peer may append fields. A frame whose type
 * number is not known decodes as SYNCM_UNKNOWN (still checked to be one
 * well-formed array): receivers ignore it. Bytes after the array are
 * malformed.
 *
 * Ownership: a decoded syncm points into the frame for its byte and text
 * fields (valid while the frame is) and owns its `sv`, `op` and `recs`;
 * release them with syncm_clear. For encoding the caller fills a syncm (its
 * pointers are only read) and syncm_encode appends the frame to a tbuf.
 * Threads: pure functions over caller values; any thread, no globals.
 */
#ifndef TANDEM_SYNC_MSG_H
#define TANDEM_SYNC_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"
#include "buf.h"
#include "ids.h"
#include "ot.h"

#define SYNCM_PROTOCOL_VERSION 1u

/* Caps (bytes unless noted). */
#define SYNCM_MAX_CHANNEL    65535u                   /* channel ids are 1..this */
#define SYNCM_MAX_NAME       255u                     /* document / room name, 1..this */
#define SYNCM_MAX_TOKEN      4096u                    /* auth token */
#define SYNCM_MAX_ERROR_TEXT 1024u                    /* ERROR text */
#define SYNCM_MAX_USER       255u                     /* user id and display name */
#define SYNCM_MAX_CHAT_TEXT  16384u                   /* one chat message */
#define SYNCM_MAX_HISTORY    256u                     /* records in one CHAT_HISTORY_REPLY */
#define SYNCM_CHUNK_FRAME    ((size_t)64 << 10)       /* largest UPDATE_CHUNK / OT_SNAPSHOT frame */
#define SYNCM_CHUNK_DATA     (SYNCM_CHUNK_FRAME - 64) /* payload bytes per chunk */
#define SYNCM_DEFAULT_FRAME  ((size_t)1 << 20)        /* default inbound frame cap */
#define SYNCM_MAX_FRAME      ((size_t)256 << 20)      /* largest cap syncm_decode accepts */
#define SYNCM_SKIP_DEPTH     8                        /* nesting of skipped extra elements */

/* Message type numbers (the first element of every frame). */
typedef enum syncm_type {
    SYNCM_UNKNOWN = 0, /* decoded only: a type this build does not know */
    SYNCM_HELLO = 1,
    SYNCM_WELCOME = 2,
    SYNCM_ERROR = 3,
    SYNCM_PING = 4,
    SYNCM_PONG = 5,
    SYNCM_SUBSCRIBE = 10,
    SYNCM_SUBSCRIBED = 11,
    SYNCM_UNSUBSCRIBE = 12,
    SYNCM_SYNC_STEP = 20,
    SYNCM_UPDATE_CHUNK = 21,
    SYNCM_UPDATE = 22,
    SYNCM_ACK = 23,
    SYNCM_AWARENESS = 24,
    SYNCM_OT_OP = 30,
    SYNCM_OT_ACK = 31,
    SYNCM_OT_REMOTE = 32,
    SYNCM_OT_SNAPSHOT = 33,
    SYNCM_CHAT_SEND = 40,
    SYNCM_CHAT_ACK = 41,
    SYNCM_CHAT_MSG = 42,
    SYNCM_CHAT_HISTORY = 43,
    SYNCM_CHAT_HISTORY_REPLY = 44,
    SYNCM_TYPING = 50,
    SYNCM_TYPE_LIMIT_ = 51 /* not a type: one past the largest number */
} syncm_type;

/* ERROR codes (docs/PROTOCOL.md). Numbers are part of the protocol. */
typedef enum sync_errcode {
    SYNC_ERR_MALFORMED = 1,        /* the frame failed validation */
    SYNC_ERR_NOT_ALLOWED = 2,      /* no access, or read-only and the message writes */
    SYNC_ERR_RATE_LIMITED = 3,     /* retry after retry_ms */
    SYNC_ERR_TOO_BIG = 4,          /* a frame, update, or queue over its cap */
    SYNC_ERR_UNKNOWN_DOCUMENT = 5, /* the document does not exist and may not be created */
    SYNC_ERR_SERVER_BUSY = 6,      /* a server cap (rooms, sessions, pending writes); retry */
    SYNC_ERR_VERSION_MISMATCH = 7, /* HELLO names a protocol version the server cannot speak */
    SYNC_ERR_TOO_FAR_BEHIND = 8,   /* OT: base version older than the history kept */
    SYNC_ERR_UNKNOWN_CHANNEL = 9,  /* the channel is not subscribed */
    SYNC_ERR_CHANNEL_IN_USE = 10,  /* SUBSCRIBE on a channel already subscribed */
    SYNC_ERR_BAD_STATE = 11,       /* message not valid now (e.g. before HELLO) */
    SYNC_ERR_STORAGE = 12,         /* the write failed; not durable (ref names it) */
    SYNC_ERR_BAD_OPERATION = 13,   /* OT op or update that does not fit the document */
    SYNC_ERR_LOAD_FAILED = 14,     /* the document could not be loaded; nothing was created */
    SYNC_ERR_INTERNAL = 15,        /* out of memory or another server fault */
    SYNC_ERR_CLOSING = 16          /* the session is being closed (reason in the text) */
} sync_errcode;

/* Capability bits (HELLO / WELCOME caps). */
#define SYNC_CAP_CRDT      0x01u
#define SYNC_CAP_OT        0x02u
#define SYNC_CAP_AWARENESS 0x04u
#define SYNC_CAP_CHAT      0x08u
#define SYNC_CAP_TYPING    0x10u
#define SYNC_CAP_ALL       0x1fu

/* Subscription modes and access levels. */
#define SYNC_MODE_CRDT    0u
#define SYNC_MODE_OT      1u
#define SYNC_ACCESS_NONE  0u
#define SYNC_ACCESS_READ  1u
#define SYNC_ACCESS_WRITE 2u

/* A byte or text range. */
typedef struct syncm_str {
    const uint8_t *p;
    size_t n;
} syncm_str;

/* One chat record (CHAT_HISTORY_REPLY). */
typedef struct syncm_chat {
    uint64_t id;
    uint64_t time_ms;
    syncm_str user;
    syncm_str display;
    syncm_str text;
} syncm_chat;

/* All fields of all messages. Which ones a type uses: docs/PROTOCOL.md and
 * the table in msg.c. Unused fields are zero. */
typedef struct syncm {
    syncm_type type;
    uint64_t wire_type; /* the type number as sent (also for SYNCM_UNKNOWN) */
    uint32_t channel;   /* 1..SYNCM_MAX_CHANNEL; ERROR: 0 = the connection */

    uint64_t proto;      /* HELLO, WELCOME: protocol version */
    uint64_t caps;       /* HELLO, WELCOME: SYNC_CAP_* bits */
    uint64_t client_id;  /* HELLO: the client's replica id (0 = none) */
    uint64_t session_id; /* WELCOME */
    uint64_t max_frame;  /* WELCOME: the server's inbound frame cap */
    syncm_str token;     /* HELLO: auth token (may be empty) */

    uint64_t code;     /* ERROR: sync_errcode */
    uint64_t ref;      /* ERROR: the refused seq / op id / chat message id (0 = none) */
    uint64_t retry_ms; /* ERROR: retry after this many ms (0 = none) */
    uint64_t nonce;    /* PING, PONG */

    syncm_str name;  /* SUBSCRIBE: document name (UTF-8, 1..SYNCM_MAX_NAME) */
    uint64_t mode;   /* SUBSCRIBE, SUBSCRIBED: SYNC_MODE_* */
    uint64_t access; /* SUBSCRIBED: SYNC_ACCESS_READ / WRITE */
    bool is_new;     /* SUBSCRIBED: the document did not exist before */
    crdt_sv *sv;     /* SUBSCRIBE (CRDT mode), SUBSCRIBED (CRDT), SYNC_STEP; NULL = null */

    bool has_version; /* SUBSCRIBE: the OT client has a version (else null) */
    uint64_t version; /* SUBSCRIBE/SUBSCRIBED/OT_*: document version */
    bool has_after;   /* SUBSCRIBE: replay chat after `after` (else null: no replay) */
    uint64_t after;   /* SUBSCRIBE, CHAT_HISTORY: chat id */
    uint64_t limit;   /* CHAT_HISTORY: records wanted (1..SYNCM_MAX_HISTORY) */

    uint64_t seq;     /* UPDATE, ACK: the sender's sequence number (0 = none) */
    uint64_t sync_id; /* UPDATE_CHUNK: which transfer */
    uint64_t offset;  /* UPDATE_CHUNK, OT_SNAPSHOT: bytes before this chunk */
    uint64_t total;   /* UPDATE_CHUNK, OT_SNAPSHOT: bytes of the whole transfer */
    syncm_str data;   /* UPDATE, UPDATE_CHUNK, AWARENESS, OT_SNAPSHOT: payload bytes */

    ot_op *op;      /* OT_OP, OT_REMOTE, ERROR (too far behind; else NULL) */
    uint64_t op_id; /* OT_OP, OT_ACK, OT_REMOTE: the submitting client's op id */
    uint64_t src;   /* OT_REMOTE: the submitting client's id (0 = a CRDT edit) */

    uint64_t msg_id;   /* CHAT_SEND, CHAT_ACK: the client's message id */
    uint64_t chat_id;  /* CHAT_ACK, CHAT_MSG: server id; SUBSCRIBED: last chat id */
    uint64_t time_ms;  /* CHAT_ACK, CHAT_MSG */
    syncm_str user;    /* CHAT_MSG, TYPING: user id */
    syncm_str display; /* CHAT_MSG, TYPING: display name */
    syncm_str text;    /* ERROR, CHAT_SEND, CHAT_MSG */
    bool more;         /* CHAT_HISTORY_REPLY: more records follow the last one */
    syncm_chat *recs;  /* CHAT_HISTORY_REPLY */
    size_t nrecs;
    bool on; /* TYPING: started (true) or stopped */
} syncm;

/* syncm_type_name - "HELLO", ... or "UNKNOWN"; never NULL. */
const char *syncm_type_name(uint64_t type);

/* syncm_errcode_name - "MALFORMED", ... or "UNKNOWN"; never NULL. */
const char *syncm_errcode_name(uint64_t code);

/* syncm_is_known - true for a type number this build encodes and decodes. */
bool syncm_is_known(uint64_t type);

/* syncm_encode - append the frame for m (m->type must be known) to out.
 * Values are checked against the same caps the decoder enforces, so every
 * frame encoded decodes. Errors: TDM_EINVAL (unknown type, a value out of
 * range, a required sv/op missing, text that is not UTF-8), TDM_ETOOBIG /
 * TDM_ENOMEM when out cannot grow; on error out is as it was. */
tdm_err syncm_encode(const syncm *m, tbuf *out);

/* syncm_decode - decode one frame p[0..n) (untrusted) into *m, which is
 * overwritten. max_frame caps n (0: SYNCM_DEFAULT_FRAME; at most
 * SYNCM_MAX_FRAME). On success free m's owned parts with syncm_clear.
 * Errors: TDM_ETOOBIG when n > max_frame; TDM_EMALFORMED for anything that
 * is not one well-formed frame of its type; TDM_EUTF8 for text that is not
 * strict UTF-8; TDM_ENOMEM. On error *m is zeroed and owns nothing. */
tdm_err syncm_decode(const uint8_t *p, size_t n, size_t max_frame, syncm *m);

/* syncm_clear - free what m owns (sv, op, recs) and zero it. NULL is a no-op.
 * Use only on a decoded syncm (an encoder-side syncm owns nothing). */
void syncm_clear(syncm *m);

#endif
