/* doc_insert.c - being written */
typedef int tandem_doc_insert_placeholder_;
