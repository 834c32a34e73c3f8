/* relpos.h - relative positions: cursor anchors that survive concurrent edits
 * (prefix crdt_relpos_).
 *
 * A relative position names a character by id rather than by index. With
 * CRDT_ASSOC_RIGHT it sits just before that character (it moves with the text
 * to its right); with CRDT_ASSOC_LEFT just after it (it moves with the text to
 * its left). The start and the end of the text have their own anchors. When
 * the named character is deleted the position resolves to where it stood: the
 * number of visible characters before it, which is always inside the text.
 *
 * Values are plain structs; the functions taking a document follow the
 * document's threading rule (one thread at a time per document).
 */
#ifndef TANDEM_RELPOS_H
#define TANDEM_RELPOS_H

#include <stddef.h>
#include <stdint.h>
#include "doc.h"

typedef enum crdt_assoc { CRDT_ASSOC_RIGHT = 0, CRDT_ASSOC_LEFT = 1 } crdt_assoc;

typedef enum crdt_relpos_kind {
    CRDT_RELPOS_CHAR = 0, /* anchored to a character */
    CRDT_RELPOS_START = 1,
    CRDT_RELPOS_END = 2
} crdt_relpos_kind;

typedef struct crdt_relpos {
    uint8_t kind;  /* crdt_relpos_kind */
    uint8_t assoc; /* crdt_assoc (CHAR only) */
    uint64_t client;
    uint32_t clock;
} crdt_relpos;

/* crdt_relpos_from_index - the anchor for code-point index `index` (0..len).
 * RIGHT anchors to the character at index (END at len); LEFT anchors to the
 * character at index-1 (START at 0). TDM_ERANGE past the end. */
tdm_err crdt_relpos_from_index(crdt_doc *doc, size_t index, crdt_assoc assoc, crdt_relpos *out);

/* crdt_relpos_resolve - the current code-point index of `rp` (0..len).
 * TDM_ENOTFOUND when the document does not hold the named character (yet). */
tdm_err crdt_relpos_resolve(crdt_doc *doc, const crdt_relpos *rp, size_t *index);

/* crdt_relpos_encode - CBOR: [kind, assoc, client, clock] (all unsigned). */
tdm_err crdt_relpos_encode(const crdt_relpos *rp, tbuf *out);
/* crdt_relpos_decode - untrusted bytes; *rp untouched on error. */
tdm_err crdt_relpos_decode(crdt_relpos *rp, const uint8_t *p, size_t n);

#endif
