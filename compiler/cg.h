/*
 * cg.h - lowering of the planned IR graph to LLVM IR (internal to cg*.c).
 *
 * Every op becomes one internal function `void op_K(nnrt_step_args *, i32 tid,
 * i32 nthreads, cg_chunk *)` that does this thread's share of the op's work
 * on the samples of one chunk (plan.c): batched tensors are read and written
 * at the chunk's place, sums over samples go to the chunk's partial gradients
 * and metrics.  The entry points (train_step, eval_step, infer) run the chunks
 * on separate threads (each op with tid 0 of 1), then sum the partials; with
 * one chunk they call the ops in order, split across the threads, with a
 * runtime barrier between them.  Kernels are specialised to static shapes:
 * only the batch size n is read at run time.  Vectors are <16 x float>.
 */
#ifndef NNC_CG_H
#define NNC_CG_H

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

#include "backend.h"
#include "cg_abi.h"
#include "ir.h"
#include "target.h"

#define CG_VW 16 /* floats per vector */

typedef struct cg_ctx {
	ir_graph *g;
	const cg_options *opt;
	LLVMContextRef C;
	LLVMModuleRef M;
	LLVMBuilderRef B;
	LLVMTypeRef f32, f64, i1, i8, i32, i64, ptr, v16, m16, vt, op_fn_t;
	cg_abi abi;          /* runtime structs and the chunk record (cg_abi.h) */
	LLVMValueRef fn;     /* function being built */
	LLVMValueRef args, tid, nth, chunk; /* parameters of the op function being built */
	LLVMTypeRef body_fn_t;
	LLVMValueRef barrier_fn;
	LLVMTypeRef barrier_t;
	LLVMValueRef tick_fn;   /* nnrt_prof_tick, with cg_options.profile */
	LLVMTypeRef tick_t;
	int *op_index;          /* node -> index in the op table, or -1 */
	struct cg_epilogue *epilogues; /* cg_call_epilogue's functions, made on first use */
} cg_ctx;

typedef struct cg_epilogue {
	struct cg_epilogue *next;
	ir_act act, dact;
	double opt;
	int nv, tail;
	bool to_y;
	LLVMValueRef fn;
} cg_epilogue;

/* ---- helpers (cg.c) ---- */
LLVMValueRef cg_i64(cg_ctx *c, int64_t v);
LLVMValueRef cg_i32(cg_ctx *c, int32_t v);
LLVMValueRef cg_f32(cg_ctx *c, double v);
LLVMValueRef cg_splat(cg_ctx *c, LLVMValueRef scalar);   /* 16 copies, of any scalar type */
LLVMValueRef cg_vf32(cg_ctx *c, double v);         /* splat constant */
LLVMValueRef cg_mask(cg_ctx *c, int nlanes);       /* first nlanes lanes on */
LLVMValueRef cg_mask_dyn(cg_ctx *c, LLVMValueRef remaining); /* lanes < remaining */
LLVMValueRef cg_iota(cg_ctx *c, unsigned bits);             /* <0, 1, .., 15> as `bits`-bit integers */
LLVMValueRef cg_alloca(cg_ctx *c, LLVMTypeRef t, const char *name);
LLVMValueRef cg_load(cg_ctx *c, LLVMTypeRef t, LLVMValueRef p);
void cg_store(cg_ctx *c, LLVMValueRef v, LLVMValueRef p);
LLVMValueRef cg_gep(cg_ctx *c, LLVMValueRef base, LLVMValueRef idx); /* float* + idx */
LLVMValueRef cg_gep_i32(cg_ctx *c, LLVMValueRef base, LLVMValueRef idx);
LLVMValueRef cg_vload(cg_ctx *c, LLVMValueRef p, LLVMValueRef mask);  /* mask NULL = full */
void cg_vstore(cg_ctx *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask);
LLVMValueRef cg_call_intr(cg_ctx *c, const char *name, LLVMTypeRef *over, int nover, LLVMValueRef *a, int na);
LLVMValueRef cg_fma(cg_ctx *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc);
LLVMValueRef cg_min_i64(cg_ctx *c, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef cg_hsum(cg_ctx *c, LLVMValueRef v);   /* horizontal sum of a vector */

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

/* Run-time values available in an op function. */
LLVMValueRef cg_arg(cg_ctx *c, cg_args_field f);      /* a field of nnrt_step_args, loaded */
LLVMValueRef cg_batch_n(cg_ctx *c);                   /* i64: samples of this chunk */
LLVMValueRef cg_batch_total(cg_ctx *c);               /* i64: samples of the whole step (means) */
LLVMValueRef cg_active_chunks(cg_ctx *c, LLVMValueRef n); /* chunks holding samples: ceil(n / cbatch) */
LLVMValueRef cg_hp(cg_ctx *c, int k);                 /* float hp[k] */
LLVMValueRef cg_metrics(cg_ctx *c);                   /* double* */
LLVMValueRef cg_tensor(cg_ctx *c, const ir_node *n);  /* base pointer of a node's tensor */
/* Rows of a node: n if batched, else 1. */
LLVMValueRef cg_rows(cg_ctx *c, const ir_node *n);
/* This thread's share [*lo, *hi) of ntasks tasks. */
void cg_partition(cg_ctx *c, LLVMValueRef ntasks, LLVMValueRef *lo, LLVMValueRef *hi);

/* Applies the activation, or multiplies by the derivative of `dact` taken
 * at v (x or y, acts.def's `from`), in place to a tile of `rows` rows of nv
 * vectors, the last one with `tail` lanes: c[r*ldc + v*16 ...],
 * v[r*ldy + v*16 ...]; `opt` is the activation's option.  With `act` and a
 * y pointer, act(c) goes to y instead and c is left as it is (cg_act_dst).  The work happens
 * in a separate function so that the polynomials' constants do not occupy
 * registers in the caller's accumulation loops. */
void cg_call_epilogue(cg_ctx *c, ir_act act, ir_act dact, double opt, int nv, int tail, LLVMValueRef cptr,
		      int64_t ldc, LLVMValueRef yptr, int64_t ldy, LLVMValueRef rows);

/* An activation of acts.def (ACT_NONE: x itself) and dy times its
 * derivative from v (x or y, as the row says; ACT_NONE: dy), with the
 * activation's option; float or vector values. */
LLVMValueRef cg_act(cg_ctx *c, ir_act a, double opt, LLVMValueRef x);
/* Where a product's or convolution's epilogue writes act(value) besides the
 * value itself (ir_node.act_dst, same shape and layout), or NULL: in place. */
LLVMValueRef cg_act_dst(cg_ctx *c, const ir_node *n);
LLVMValueRef cg_dact(cg_ctx *c, ir_act a, double opt, LLVMValueRef v, LLVMValueRef dy);

/* ---- kernels (cg_kernels.c): one lowering per row of ops.def ---- */
typedef void lower_fn(cg_ctx *c, ir_node *n);
#define OP(id, name, arity, shape, grad, lower, kind, flops) lower_fn lower;
#include "ops.def"
#undef OP

/* ---- reference kernels (cg_naive.c), used when cg_options.naive ---- */
void naive_dense(cg_ctx *c, ir_node *n);
void naive_dense_bx(cg_ctx *c, ir_node *n); /* DENSE_BWD_X and DENSE_BWD_XT */
void naive_dense_bw(cg_ctx *c, ir_node *n);
void naive_conv(cg_ctx *c, ir_node *n);
void naive_conv_bx(cg_ctx *c, ir_node *n);
void naive_conv_bw(cg_ctx *c, ir_node *n);

#endif
