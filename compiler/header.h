/*
 * header.h - the C header that `nnc -c` writes beside a model's object
 * (header.c): the model documented in a comment, its shapes and sizes as
 * macros, and `<prefix>_*` inline wrappers of the runtime's instance API.
 */
#ifndef NNC_HEADER_H
#define NNC_HEADER_H

#include "ir.h"

/* Appends the header of the planned graph g to out.  `prefix` is the symbol
 * prefix the object was compiled with, `object` the object file's name (for
 * the build line in the comment). */
void nnc_header(ir_graph *g, const char *prefix, bool inference_only, const char *object, nnc_buf *out);

#endif
