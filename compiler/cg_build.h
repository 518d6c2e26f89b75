/*
 * cg_build.h - the LLVM builder helpers every lowering writes with: types,
 * constants, splats and masks of <16 x float> vectors, allocas, loads and
 * stores, masked vector loads and stores, intrinsic calls, loops and ifs.
 *
 * The bottom layer of the code generator (docs/architecture.md, "Code
 * generation"): it knows LLVM and the vector width, nothing of the graph,
 * the ops or how the bodies call them.  The elementary functions
 * (exp, log, tanh, ...) are cg_math.h, the same layer.
 */
#ifndef NNC_CG_BUILD_H
#define NNC_CG_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include <llvm-c/Core.h>

#include "cg_abi.h"

#define CG_VW 16 /* floats per vector */

struct ir_graph;
struct cg_epilogue;

/* One code generator's state.  The builder helpers below use only the
 * first group; the rest describes the op function being built, set by the
 * dispatcher (cg.c) and read by the lowerings through cg.h. */
typedef struct cg_ctx {
	/* the builder (this file) */
	LLVMContextRef C;
	LLVMModuleRef M;
	LLVMBuilderRef B;
	LLVMTypeRef f32, f64, i1, i8, i32, i64, ptr, v16, m16, vt;
	LLVMValueRef fn; /* function being built */

	/* the unit being lowered (cg.h) */
	struct ir_graph *g;             /* the graph of this unit: the model's, or small.c's copy */
	cg_abi abi;                     /* runtime structs and the chunk record (cg_abi.h) */
	LLVMValueRef args, tid, nth, chunk; /* parameters of the op function being built */
	bool train_mode;                /* the op function is the train step's (a mode-dependent
					 * op, ir_op_mode_dependent, is lowered once per mode) */
	struct cg_epilogue **epilogues; /* cg_call_epilogue's functions, shared by the units of a module */
	int vacc; /* <16 x float> accumulators a register tile may hold on the target: 24 with
		   * AVX-512 (32 registers of 16 floats), 6 otherwise (16 registers of 8 floats,
		   * two per vector, the rest for operands); 0 until nnc_lower sets it: 24 */
	int64_t l1, l2; /* data cache bytes per core the products block for (cg_kernels.c) */
	bool bf16;      /* dense products take bfloat16 operands, float32 sums (cg_kernels.c
			 * "bf16 products"; needs avx512bf16) */
	/* kernel sharing (cg.c): while offs (the op function's table of i64 offsets) is
	 * set, cg_tensor takes each tensor's offset from it, slot k for the k-th distinct
	 * node the lowering asks for (slot_nodes), instead of baking the offset in */
	LLVMValueRef offs;
	const void **slot_nodes;
	LLVMValueRef *slot_vals;
	int nslots, slot_cap;
} cg_ctx;

/* The types above for context C, the module M, a new builder. */
void cg_build_init(cg_ctx *c, LLVMContextRef C, LLVMModuleRef M);
/* The function attributes of every generated kernel (vector width,
 * nounwind, no trapping math). */
void cg_fn_attrs(cg_ctx *c, LLVMValueRef fn);

LLVMValueRef cg_i64(cg_ctx *c, int64_t v);
LLVMValueRef cg_i32(cg_ctx *c, int32_t v);
LLVMValueRef cg_f32(cg_ctx *c, double v);
LLVMValueRef cg_splat(cg_ctx *c, LLVMValueRef scalar);   /* 16 copies, of any scalar type */
LLVMValueRef cg_vf32(cg_ctx *c, double v);         /* splat constant */
LLVMValueRef cg_mask(cg_ctx *c, int nlanes);       /* first nlanes lanes on */
LLVMValueRef cg_mask_dyn(cg_ctx *c, LLVMValueRef remaining); /* lanes < remaining */
/* for (j = 0; j < len; j += CG_VW) body(j, mask): full vectors, then a
 * masked tail; the callback sees NULL for a full vector. */
typedef void cg_vec_body(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env);
void cg_vec_loop(cg_ctx *c, int64_t len, cg_vec_body *f, void *env);
LLVMValueRef cg_iota(cg_ctx *c, unsigned bits);             /* <0, 1, .., 15> as `bits`-bit integers */
/* Positions the builder at the start of the function's entry block and
 * returns the block it was in (to go back to with LLVMPositionBuilderAtEnd). */
LLVMBasicBlockRef cg_at_entry(cg_ctx *c);
LLVMValueRef cg_alloca(cg_ctx *c, LLVMTypeRef t, const char *name); /* in the entry block */
LLVMValueRef cg_load(cg_ctx *c, LLVMTypeRef t, LLVMValueRef p);
void cg_store(cg_ctx *c, LLVMValueRef v, LLVMValueRef p);
LLVMValueRef cg_gep(cg_ctx *c, LLVMValueRef base, LLVMValueRef idx); /* float* + idx */
LLVMValueRef cg_gep_i32(cg_ctx *c, LLVMValueRef base, LLVMValueRef idx);
LLVMValueRef cg_vload(cg_ctx *c, LLVMValueRef p, LLVMValueRef mask);  /* mask NULL = full */
void cg_vstore(cg_ctx *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask);
LLVMValueRef cg_call_intr(cg_ctx *c, const char *name, LLVMTypeRef *over, int nover, LLVMValueRef *a, int na);
/* A read hint for the float at base + off (which may lie past the end of
 * base: no access is made), kept in caches per locality: 3 all levels, 2
 * from L2 on. */
void cg_prefetch(cg_ctx *c, LLVMValueRef base, LLVMValueRef off, int locality);
LLVMValueRef cg_fma(cg_ctx *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc);
LLVMValueRef cg_min_i64(cg_ctx *c, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef cg_hsum(cg_ctx *c, LLVMValueRef v);   /* horizontal sum of a vector */
/* bfloat16 operands.  cg_round_bf16: x (a float or <16 x float>) rounded
 * to the nearest bfloat16, ties to even, as a float (its low 16 bits zero),
 * with integer operations (the reference kernels).  cg_bf16_pairs: two
 * <16 x float> rounded and packed lane by lane into <16 x i32>, lo in the
 * low half (the K-pair layout of vdpbf16ps: element 2j of the pair vector
 * is lo[j]); cg_bf16_seq: 32 consecutive values v0, v1 as 16 pairs of
 * neighbours.  Both by vcvtne2ps2bf16 (avx512bf16), which rounds like
 * cg_round_bf16 except that denormals become zero, as vdpbf16ps reads
 * them anyway. */
LLVMValueRef cg_round_bf16(cg_ctx *c, LLVMValueRef x);
LLVMValueRef cg_bf16_pairs(cg_ctx *c, LLVMValueRef lo, LLVMValueRef hi);
LLVMValueRef cg_bf16_seq(cg_ctx *c, LLVMValueRef v0, LLVMValueRef v1);
/* Two floats rounded (cg_round_bf16) into one i32 pair, lo in the low half. */
LLVMValueRef cg_bf16_pair(cg_ctx *c, LLVMValueRef lo, LLVMValueRef hi);
/* acc (<16 x float>) + vdpbf16ps of a and b (<16 x i32> of pairs, or already <32 x bfloat>). */
LLVMValueRef cg_dpbf16(cg_ctx *c, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b);
/* The runtime's random stream (nnrt.h, nnrt_random_uniform): a float in
 * [0, 1) from i64 seed, global sample index and element index; or, given
 * three <16 x i64> vectors, a <16 x float> of 16 draws. */
LLVMValueRef cg_random_uniform(cg_ctx *c, LLVMValueRef seed, LLVMValueRef sample, LLVMValueRef elem);
/* The same in two halves, for kernels that draw many elements of one
 * sample: the sample's key (two of the three mixes), then an element's
 * draw from it (one mix); scalars or vectors, elem of the key's type. */
LLVMValueRef cg_random_key(cg_ctx *c, LLVMValueRef seed, LLVMValueRef sample);
LLVMValueRef cg_random_at(cg_ctx *c, LLVMValueRef key, LLVMValueRef elem);

/* Loops: for (i = lo; i < hi; i += step) */
typedef struct cg_loop {
	LLVMValueRef var, i, step;
	LLVMBasicBlockRef cond, exit;
} cg_loop;
cg_loop cg_loop_begin(cg_ctx *c, LLVMValueRef lo, LLVMValueRef hi, int64_t step);
void cg_loop_end(cg_ctx *c, cg_loop *l);
/* if (cond) { ... } [else { ... }] */
typedef struct cg_if {
	LLVMBasicBlockRef els, end;
} cg_if;
cg_if cg_if_begin(cg_ctx *c, LLVMValueRef cond);
void cg_if_else(cg_ctx *c, cg_if *f);
void cg_if_end(cg_ctx *c, cg_if *f);

#endif
