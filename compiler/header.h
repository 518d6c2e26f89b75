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
void nnc_header(ir_graph *g, const nnc_train_config *cfg, const char *prefix, bool inference_only, const char *object,
		nnc_buf *out);

/* Checks, for every build, the names that become C identifiers or
 * checkpoint entries: the model name may not be in the runtime's namespace
 * (nnc_reserved_name), and no two parameter tensors may have one name, or
 * names that are one after the header's mangling ("a.b" and "a_b" are both
 * A_B).  Reports each clash (file:line:col, naming both layers) and returns
 * false if there was any.  `prefix` (NULL: the model name) is only quoted. */
bool nnc_check_names(const nnc_program *prog, const ir_graph *g, const char *prefix);

/* "nnrt" or "nnrt_..." in any case: the runtime's names (nnrt_instance,
 * NNRT_OK, ...), not to be used as a model name or --prefix. */
bool nnc_reserved_name(const char *name);

#endif
