/* ot.h - operational-transform text operations over Unicode code points
 * (prefix ot_).
 *
 * An operation (ot_op) walks a base text from start to end as a sequence of
 * components:
 *   retain n   keep the next n code points;
 *   insert s   insert the UTF-8 text s (s is at least one code point);
 *   delete n   remove the next n code points.
 * Its base length is the number of code points it walks (retains + deletes);
 * its target length is the length of the text it produces (retains + inserts).
 * Applying an operation to a text of any other length is TDM_EBASELEN: trailing
 * retains are significant, as in ot.js.
 *
 * Normal form. The builders keep every operation normalized as they go:
 * adjacent components of the same kind are merged, empty components are never
 * stored, and where an insert and a delete are adjacent the insert comes first
 * (ShareDB / ot.js order). So between two retains there is at most one insert
 * followed by at most one delete, and operations built from the same edits
 * compare equal with ot_op_equal.
 *
 * Caps. Every operation holds at most OT_MAX_COMPONENTS components and
 * OT_MAX_TEXT_BYTES bytes of inserted text; its base and target lengths are at
 * most OT_MAX_LEN code points. Growing past any of them is TDM_ETOOBIG and
 * leaves the operation unchanged. The caps fit a 32-bit size_t.
 *
 * Wire form (CBOR, RFC 8949): an array of components, one item each:
 *   unsigned integer n  -> retain n   (n >= 1)
 *   text string s       -> insert s   (s non-empty, strict UTF-8)
 *   negative integer -n -> delete n   (CBOR -1 is delete 1)
 * e.g. [3, "ab", -2] retains 3, inserts "ab" and deletes 2.
 *
 * Ownership: an ot_op owns its components and text. Functions that produce an
 * operation (compose, transform, invert, clone, decode) allocate it and store
 * it in *out only on success; the caller frees it with ot_op_free. On error
 * *out is not written. Input operations and texts are only read.
 * Threads: an ot_op is a plain value with no internal locking and no globals:
 * one thread at a time may modify it; any number may read an operation that
 * nobody modifies. No function does I/O.
 */
#ifndef TANDEM_OT_H
#define TANDEM_OT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"
#include "buf.h"

/* Hard caps (see above). */
#define OT_MAX_COMPONENTS ((size_t)1 << 20)    /* components per operation */
#define OT_MAX_TEXT_BYTES ((size_t)64 << 20)   /* inserted UTF-8 bytes per operation */
#define OT_MAX_LEN        ((size_t)0x7fffffff) /* base and target length, code points */

typedef enum ot_kind { OT_RETAIN = 1, OT_INSERT = 2, OT_DELETE = 3 } ot_kind;

/* ot_side - which of two concurrent inserts at the same position goes first
 * in ot_op_transform: OT_LEFT puts the transformed operation's insert to the
 * left of the other's, OT_RIGHT to its right. The two sides of one concurrent
 * pair must be complementary. */
typedef enum ot_side { OT_LEFT = 0, OT_RIGHT = 1 } ot_side;

/* ot_comp - one component as seen through ot_op_get. `text` points into the
 * operation and is valid until the operation is next modified or freed. */
typedef struct ot_comp {
    ot_kind kind;
    size_t n;         /* code points retained, inserted or deleted (>= 1) */
    const char *text; /* OT_INSERT: the UTF-8 text, not terminated; else NULL */
    size_t nbytes;    /* OT_INSERT: bytes of text; else 0 */
} ot_comp;

typedef struct ot_op ot_op;

/* ot_op_new - an empty operation (no components, base and target length 0).
 * Errors: TDM_ENOMEM. */
tdm_err ot_op_new(ot_op **out);
/* ot_op_free - release op and its text. ot_op_free(NULL) is a no-op. */
void ot_op_free(ot_op *op);
/* ot_op_clear - remove every component (keeps the memory). */
void ot_op_clear(ot_op *op);
/* ot_op_clone - a new operation equal to src. Errors: TDM_ENOMEM. */
tdm_err ot_op_clone(const ot_op *src, ot_op **out);

/* Builders. Each appends one component at the end, merging and reordering to
 * keep the normal form; n == 0 (or an empty text) is a no-op returning TDM_OK.
 * Errors: TDM_ETOOBIG past a cap, TDM_ENOMEM; ot_op_insert also TDM_EUTF8 for
 * text that is not strict UTF-8. On error the operation is unchanged. */
tdm_err ot_op_retain(ot_op *op, size_t n);
/* ot_op_insert - insert UTF-8 text[0..nbytes). The bytes are copied. */
tdm_err ot_op_insert(ot_op *op, const char *text, size_t nbytes);
tdm_err ot_op_delete(ot_op *op, size_t n);

/* ot_op_count - number of components. */
size_t ot_op_count(const ot_op *op);
/* ot_op_get - component i (0 <= i < count) into *c. TDM_ERANGE when i is out
 * of range (then *c is not written). */
tdm_err ot_op_get(const ot_op *op, size_t i, ot_comp *c);
/* ot_op_base_len - code points the operation applies to (retains + deletes). */
size_t ot_op_base_len(const ot_op *op);
/* ot_op_target_len - code points of its result (retains + inserts). */
size_t ot_op_target_len(const ot_op *op);
/* ot_op_is_noop - true when the operation changes nothing (only retains). */
bool ot_op_is_noop(const ot_op *op);
/* ot_op_equal - same components (kind, length and inserted bytes) in order.
 * Normalized operations built from the same edits are equal. */
bool ot_op_equal(const ot_op *a, const ot_op *b);

/* ot_op_apply - append to `out` the result of applying op to the UTF-8 text
 * text[0..n). The text is validated first.
 * Errors: TDM_EUTF8 when the text is not strict UTF-8; TDM_EBASELEN when its
 * length in code points is not ot_op_base_len(op); TDM_ETOOBIG / TDM_ENOMEM
 * when `out` cannot grow. On error `out` is as it was. */
tdm_err ot_op_apply(const ot_op *op, const char *text, size_t n, tbuf *out);

/* ot_op_compose - *out = one operation with the effect of a then b:
 * apply(compose(a, b), S) == apply(b, apply(a, S)). The result is normalized.
 * Errors: TDM_EBASELEN when ot_op_target_len(a) != ot_op_base_len(b);
 * TDM_ETOOBIG when the result would pass a cap; TDM_ENOMEM. */
tdm_err ot_op_compose(const ot_op *a, const ot_op *b, ot_op **out);

/* ot_op_transform - *a_prime = a rebased over a concurrent b (both made on the
 * same base text), so that it applies after b. `side` orders a's inserts
 * against b's inserts at the same position (see ot_side). With complementary
 * sides the two orders converge (TP1):
 *   apply(apply(S, a), transform(b, a, OT_RIGHT))
 *     == apply(apply(S, b), transform(a, b, OT_LEFT)).
 * Deletes of the same text by both are performed once.
 * Errors: TDM_EBASELEN when the base lengths differ; TDM_ETOOBIG when the
 * result would pass a cap; TDM_ENOMEM. */
tdm_err ot_op_transform(const ot_op *a, const ot_op *b, ot_side side, ot_op **a_prime);

/* ot_op_transform_pair - both at once: *a_prime = transform(a, b, a_side) and
 * *b_prime = transform(b, a, the other side). Either both outputs are written
 * or, on error, neither. Errors as ot_op_transform. */
tdm_err ot_op_transform_pair(const ot_op *a, const ot_op *b, ot_side a_side, ot_op **a_prime,
                             ot_op **b_prime);

/* ot_op_invert - *inv = the operation that undoes op applied to the UTF-8
 * text[0..n) (op's base text): apply(apply(S, op), inv) == S. The deleted text
 * is copied out of `text`.
 * Errors: TDM_EUTF8 when the text is not strict UTF-8; TDM_EBASELEN when its
 * length is not op's base length; TDM_ETOOBIG when the deleted text passes
 * OT_MAX_TEXT_BYTES; TDM_ENOMEM. */
tdm_err ot_op_invert(const ot_op *op, const char *text, size_t n, ot_op **inv);

/* ot_op_encode - append the CBOR wire form (see above) to out.
 * Errors: TDM_ETOOBIG / TDM_ENOMEM when out cannot grow; then out is as it
 * was. */
tdm_err ot_op_encode(const ot_op *op, tbuf *out);

/* ot_op_decode - decode one operation from untrusted bytes p[0..n) through the
 * validating reader (cbor_rd.h), which refuses indefinite lengths and declared
 * counts larger than the bytes present; memory grows with the bytes present,
 * never with a declared size. Adjacent components of one kind and a delete
 * before an insert are accepted and normalized.
 * Errors: TDM_EMALFORMED for anything but one definite array of unsigned
 * integers, negative integers and text strings, for a zero retain or an empty
 * text, or for trailing bytes; TDM_EUTF8 for an insert that is not strict
 * UTF-8; TDM_ETOOBIG for more than OT_MAX_COMPONENTS items, a length or a sum
 * of lengths past OT_MAX_LEN, or more than OT_MAX_TEXT_BYTES of text;
 * TDM_ENOMEM. On error *out is not written. */
tdm_err ot_op_decode(const uint8_t *p, size_t n, ot_op **out);

#endif
