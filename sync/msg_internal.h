/* msg_internal.h - the field table shared by the encoder and the decoder of
 * msg.h (private to sync/msg*.c). */
#ifndef TANDEM_SYNC_MSG_INTERNAL_H
#define TANDEM_SYNC_MSG_INTERNAL_H

#include "msg.h"

/* Largest integer most JSON/JavaScript peers hold exactly (2^53 - 1): the cap
 * of every counter, id and version field except replica ids. */
#define SYNCM_SAFE_UINT 0x1fffffffffffffull

typedef enum syncm_fkind {
    SYNCM_F_UINT,  /* uint64_t at off, min..max */
    SYNCM_F_CHAN,  /* uint32_t channel at off, min..max */
    SYNCM_F_BOOL,  /* bool at off */
    SYNCM_F_BYTES, /* syncm_str at off, length min..max */
    SYNCM_F_TEXT,  /* syncm_str at off, strict UTF-8, length min..max */
    SYNCM_F_NUINT, /* uint64_t at off or null; bool has at has_off */
    SYNCM_F_SV,    /* crdt_sv * at off (a CBOR map); nullable: null allowed */
    SYNCM_F_OP,    /* ot_op * at off (a CBOR array); nullable: null allowed */
    SYNCM_F_RECS   /* recs/nrecs: array of chat records, at most max */
} syncm_fkind;

typedef struct syncm_field {
    syncm_fkind kind;
    bool nullable;
    size_t off;
    size_t has_off;
    uint64_t min, max;
} syncm_field;

typedef struct syncm_schema {
    const syncm_field *f;
    size_t n;
} syncm_schema;

/* syncm__schema - the fields of a known type (after the type element), or
 * NULL for an unknown one. */
const syncm_schema *syncm__schema(uint64_t type);

/* syncm__check - cross-field rules both sides enforce (chunk offsets within
 * the total, CRDT subscribe carries a state vector, ...). TDM_EMALFORMED. */
tdm_err syncm__check(const syncm *m);

#endif
