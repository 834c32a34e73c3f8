/* doc_tree.c - being written */
typedef int tandem_doc_tree_placeholder_;
