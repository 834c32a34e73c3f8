/* doc.c - being written */
typedef int tandem_doc_placeholder_;
