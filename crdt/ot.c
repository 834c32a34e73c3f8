/* ot.c - being written */
typedef int tandem_ot_placeholder_;
