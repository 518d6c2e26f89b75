/*
 * fuzz_onnx.c - libFuzzer harness over `nnc import`: bytes -> the ONNX
 * parser (protoc-c's bindings) -> nnc_onnx_import -> the .nn program it
 * wrote -> nnc_parse -> nnc_sema.
 *
 * Findings are crashes, sanitizer reports, leaks, internal errors (exit
 * status 3), and a broken promise, which aborts: a model the importer
 * accepts becomes a program nnc compiles, whose every parameter and state
 * tensor has weights of its size.  Run it with scripts/fuzz.sh; the seeds
 * in corpus_onnx/ are the test fixtures' models.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "ir.h"
#include "onnx.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *nn;
	nnc_onnx_weight *w;
	int nw;
	nnc_diag_reset();
	if (nnc_onnx_import(data, size, "fuzz.onnx", "fuzz", &nn, &w, &nw) == NNC_EXIT_OK) {
		nnc_source src = {.path = "fuzz.nn", .text = nn, .len = (long)strlen(nn)};
		nnc_program *prog = nnc_parse(&src);
		nnc_train_config cfg;
		ir_graph *g = prog ? nnc_sema(prog, &cfg) : NULL;
		if (!g) {
			fprintf(stderr, "fuzz_onnx: the imported program does not compile:\n%s\n", nn);
			abort();
		}
		const ir_param *tabs[2] = {g->params, g->states};
		int counts[2] = {g->nparams, g->nstates};
		for (int t = 0; t < 2; t++)
			for (int i = 0; i < counts[t]; i++) {
				int k = 0;
				while (k < nw && strcmp(w[k].name, tabs[t][i].name))
					k++;
				if (k == nw || w[k].count != tabs[t][i].size) {
					fprintf(stderr, "fuzz_onnx: no weights of the right size for '%s'\n%s\n", tabs[t][i].name, nn);
					abort();
				}
			}
	}
	nnc_arena_free_all();
	return 0;
}
