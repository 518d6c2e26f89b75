/*
 * onnx.h - ONNX export and import (docs/onnx.md).
 *
 * Export (onnx_export.c) turns sema's forward graph into the inference
 * graph of an ONNX ModelProto (opset NNC_ONNX_OPSET), serialized with the
 * C bindings protoc-c generates from Debian's onnx.proto.  The payloads of
 * the parameter and state tensors are cut out and listed as pieces, so that
 * the runtime (nnrt_onnx_write) only copies values in: `nnc --emit-onnx`
 * with the initial values, a training binary's --export-onnx and the
 * header's PREFIX_export_onnx with trained ones.
 *
 * Import (onnx_import.c) reads an ONNX file into a .nn program and a
 * checkpoint of its weights (`nnc import`).
 */
#ifndef NNC_ONNX_H
#define NNC_ONNX_H

#include <llvm-c/Core.h>

#include "ir.h"

#define NNC_ONNX_OPSET 17   /* the ai.onnx operator set export writes */
#define NNC_ONNX_IR_VERSION 8 /* the ONNX IR version that goes with it */

/* A payload cut out of the serialized model: nnrt_onnx_piece, field for
 * field (the layout fields are nnrt.h's). */
typedef struct nnc_onnx_piece {
	int64_t at, from, offset, count;
	int64_t rows, blocks, perm, transpose;
} nnc_onnx_piece;
_Static_assert(sizeof(nnc_onnx_piece) == sizeof(nnrt_onnx_piece), "nnc_onnx_piece mirrors nnrt_onnx_piece");

/* The model as the runtime needs it (nnrt_onnx); with error set, the graph
 * has no ONNX form and error says why (bytes is then empty). */
typedef struct nnc_onnx_model {
	unsigned char *bytes;
	int64_t len;
	int npieces;
	nnc_onnx_piece *pieces;
	const char *error;
} nnc_onnx_model;

/* Builds the ONNX model of sema's forward graph g (before autodiff).
 * `source` is the .nn file's path and `version` nnc's, for the doc string.
 * Never fails: an op without a mapping leaves out->error set instead. */
void nnc_onnx_build(const ir_graph *g, const nnc_train_config *cfg, const char *source, const char *version,
		    nnc_onnx_model *out);
/* Defines `symbol` in mod: the nnrt_onnx of m. */
void nnc_onnx_embed(LLVMModuleRef mod, const nnc_onnx_model *m, const char *symbol);
/* Fills an nnrt_model with g's tables (params, state, counts, name,
 * fingerprint, optimizer, seed): enough for nnrt_model_initial_values and
 * nnrt_model_save_values.  Arrays from the arena. */
void nnc_onnx_model_tables(const ir_graph *g, const nnc_train_config *cfg, nnrt_model *m);
/* nnc --emit-onnx: writes m with the values a training run of g starts from.
 * Returns an NNC_EXIT_* status, having reported. */
int nnc_onnx_write_initial(const ir_graph *g, const nnc_train_config *cfg, const nnc_onnx_model *m,
			   const char *path);

/* nnc import: argv after "import".  Returns an NNC_EXIT_* status. */
int nnc_onnx_import_main(int argc, char **argv);
/* A weight the importer read, under nnc's name ("conv1.weight",
 * "bn.running_mean") and in nnc's layout. */
typedef struct nnc_onnx_weight {
	const char *name;
	float *data;
	int64_t count;
} nnc_onnx_weight;
/* The importer on a file's bytes: the .nn text into *nn and the weights
 * into *weights (arena).  Returns NNC_EXIT_OK, or NNC_EXIT_INPUT after
 * reporting every problem; `path` names the file in messages.  The
 * fuzzing harness calls it directly. */
int nnc_onnx_import(const unsigned char *data, size_t len, const char *path, const char *model_name, char **nn,
		    nnc_onnx_weight **weights, int *nweights);

#endif
