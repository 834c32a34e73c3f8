/* doc_update.c - being written */
typedef int tandem_doc_update_placeholder_;
