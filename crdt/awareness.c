/* awareness.c - being written */
typedef int tandem_awareness_placeholder_;
