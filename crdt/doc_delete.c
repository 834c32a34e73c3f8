/* doc_delete.c - being written */
typedef int tandem_doc_delete_placeholder_;
