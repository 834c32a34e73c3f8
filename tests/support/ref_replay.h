/* ref_replay.h - the naive reference replay of verify-traces.mjs, in C
 * (prefix ref_replay). Test support only.
 *
 * Every character ever inserted stays in one array with the txn that inserted
 * it and the txns that deleted it. A character is visible to txn i when its
 * inserter is i or an ancestor of i and none of its deleters is; ancestors are
 * kept as one bitset per txn. A patch's insert goes right after the visible
 * character at pos-1 (or at the very front). O(patches * characters), so meant
 * for concurrent traces of tens of thousands of txns, not for speed.
 * Threads: pure function of the trace.
 */
#ifndef TANDEM_REF_REPLAY_H
#define TANDEM_REF_REPLAY_H

#include <stddef.h>
#include "trace.h"

/* ref_replay - replay t (a sequential trace counts as a chain) and return the
 * final text in *out (malloc'd, NUL-terminated; the caller frees) with *len
 * bytes. TDM_ERANGE when a patch reaches past its version's text, TDM_ETOOBIG
 * when the ancestor bitsets would pass 1 GiB, TDM_ENOMEM. */
tdm_err ref_replay(const trace *t, char **out, size_t *len);

#endif
