/* ids.c - being written */
typedef int tandem_ids_placeholder_;
