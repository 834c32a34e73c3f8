/* doc_snapshot.c - being written */
typedef int tandem_doc_snapshot_placeholder_;
