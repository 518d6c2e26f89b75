/*
 * backend.h - the back end as the driver sees it: lower a planned graph to
 * an LLVM module (cg*.c), optimise and write it (emit.c), link it with the
 * runtime (link.c).  main.c, and tests that drive the whole back end,
 * include this and nothing of cg.h, which is internal to cg*.c.
 */
#ifndef NNC_BACKEND_H
#define NNC_BACKEND_H

#include <stdbool.h>

#include <llvm-c/Core.h>

#include "ir.h"
#include "target.h"

typedef struct cg_options {
	int opt_level;       /* 0..3 */
	bool naive;          /* -O0 / --naive-kernels: reference kernels (cg_naive.c) */
	bool emit_main;      /* define main() calling nnrt_main */
	bool inference_only; /* leave out train_step */
	const char *prefix;  /* symbol prefix, default: model name */
	bool profile;        /* bodies call nnrt_prof_tick after every op */
	ir_graph *small;     /* nnc_small_batch(): infer() runs it for few samples; or NULL */
	const nnc_target *target; /* --cpu, --target-features; NULL: this host */
	int vacc;                 /* register-tile budget (cg_build.h cg_ctx.vacc); 0: the target's. Tests
				   * set it to build the AVX-512 or the AVX2 tiles on any host */
	int64_t l1_bytes, l2_bytes; /* per-core L1d and L2 sizes the dense products block for;
				     * 0: NNC_CACHE, else the host's (sysfs), else 32 KiB and 512 KiB */
	bool no_share;            /* one op function per node: no kernel sharing between nodes whose
				   * code differs only in offsets (cg.c); tests, and NNC_SHARE_KERNELS=0 */
	bool bf16;                /* dense products in bfloat16 with float32 sums (train { precision: bf16 },
				   * --precision bf16); the target must have avx512bf16 */
	bool no_owned;            /* no owned gradient tail: every weight gradient in the chunks and one
				   * update after them (cg.c); tests, and NNC_OWNED_TAIL=0 */
} cg_options;

/* The planned graph g (and opt->small) as a new module in ctx, with cfg in
 * its model descriptor and the
 * target triple and data layout of opt->target (target.c); the caller
 * disposes of it. */
LLVMModuleRef nnc_lower(ir_graph *g, const nnc_train_config *cfg, const cg_options *opt, LLVMContextRef ctx);

typedef enum { EMIT_OBJ, EMIT_ASM, EMIT_LL } emit_kind;
/* The LLVM pass pipeline nnc_emit runs at -O<opt_level>. */
const char *nnc_pass_pipeline(int opt_level);
/* Verifies, optimises and writes the module into `tmp`, a temporary file
 * from output.h.  0, or nnc's exit status (message printed). */
int nnc_emit(LLVMModuleRef m, const nnc_target *t, int opt_level, emit_kind kind, const char *tmp);
/* nnc_emit_objects splits a module of NNC_EMIT_SPLIT_MIN instructions or
 * more (as lowered, before optimisation) into NNC_EMIT_PARTS parts; NNC_CODEGEN_PARTS
 * in the environment (1..NNC_EMIT_MAX_PARTS-1) overrides that, for tests.
 * A split module's functions with the string attribute NNC_QUICK_CODEGEN
 * (cg.c: code whose speed does not matter) go to one more part, generated
 * by LLVM's -O0 code generator; NNC_QUICK_CODEGEN=0 in the environment
 * leaves them with the others, for tests and comparisons. */
#define NNC_EMIT_PARTS 2
#define NNC_EMIT_MAX_PARTS 9
#define NNC_QUICK_CODEGEN "nnc-quick-codegen"
#define NNC_EMIT_SPLIT_MIN 2000
/* Verifies, optimises and generates m as *nparts (1..NNC_EMIT_MAX_PARTS)
 * object files on several threads (target_llvm.cpp), their scratch paths
 * in paths[]: the objects of an executable.  0, or nnc's exit status. */
int nnc_emit_objects(LLVMModuleRef m, const nnc_target *t, int opt_level, const char **paths, int *nparts);
/* Links n objects with the runtime into the executable `exe` (a temporary
 * file from output.h).  0, or nnc's exit status (message printed). */
int nnc_link(const char *const *objs, int n, const char *exe);

#endif
