/* replay.h - replay editing traces through the crdt_doc API (prefix replay_).
 * Test and benchmark support only.
 *
 * Sequential traces become local edits on one document (per patch: delete,
 * then insert). Concurrent traces are replayed by forking and merging: one
 * replica per agent (client id agent + 1) and one "universe" document (client
 * id num_agents + 1) holding every operation made so far. Before txn i, agent
 * a's replica is brought to exactly the version named by i's parents with
 * crdt_doc_diff_range(universe, replica's state vector, parents' state
 * vector); i's patches are then applied as local edits and the resulting
 * update (crdt_doc_diff against the parents' vector) is merged into the
 * universe. Each agent's txns must be causally ordered (the format promises it;
 * the replica is only ever moved forward), so a replica never holds more than
 * the parents.
 * Every step is checked: state vectors before and after each txn (so the
 * document's clock accounting is checked too), nothing pending, and at the end
 * the last txn's replica and the universe agree on the text.
 * Threads: the functions touch only their arguments.
 */
#ifndef TANDEM_REPLAY_H
#define TANDEM_REPLAY_H

#include <stddef.h>
#include "trace.h"
#include "doc.h"

typedef struct replay_info {
    size_t bringups;     /* txns whose replica first had to catch up */
    size_t update_bytes; /* bytes of all updates applied */
    char detail[200];    /* on error: where and what failed */
} replay_info;

/* replay_sequential - apply start_content and every patch of t as local edits
 * on doc. Errors: whatever crdt_doc_insert / crdt_doc_delete return. */
tdm_err replay_sequential(const trace *t, crdt_doc *doc);

/* replay_sequential_sync - the same, and after every patch encode the update
 * the second replica lacks (crdt_doc_diff against a state vector that tracks
 * what `replica` holds, advanced by the patch's operation count) and apply it
 * to `replica`. TDM_ECONFLICT when the tracked state vector disagrees with
 * the documents' at the end. info may be NULL. */
tdm_err replay_sequential_sync(const trace *t, crdt_doc *doc, crdt_doc *replica, replay_info *info);

/* replay_concurrent - fork/merge replay of concurrent trace t; on success *out
 * is the universe document (the caller frees it). TDM_EINVAL for a sequential
 * trace, TDM_ETOOBIG for more than CRDT_MAX_CLIENTS - 1 agents or more than
 * 2^28 txn-agent pairs, TDM_EMALFORMED when an agent's txn does not follow its
 * previous one, TDM_ECONFLICT when a check fails, else the crdt_doc error.
 * info (may be NULL) gets counters and, on error, a description. */
tdm_err replay_concurrent(const trace *t, crdt_doc **out, replay_info *info);
/* replay_concurrent_observed - the same with fn observing the universe
 * document (every merge arrives there as a remote change). */
tdm_err replay_concurrent_observed(const trace *t, crdt_doc **out, replay_info *info,
                                   crdt_doc_observer_fn fn, void *ctx);

#endif
