/*
 * cg.h - lowering of the planned IR graph to LLVM IR (internal to cg*.c).
 *
 * Every op becomes one internal function `void op_K(nnrt_step_args *, i32 tid,
 * i32 nthreads, cg_chunk *)` that does this thread's share of the op's work
 * on the samples of one chunk (plan.c): batched tensors are read and written
 * at the chunk's place, sums over samples go to the chunk's partial gradients
 * and metrics.  The entry points (train_step, eval_step, infer) run the chunks
 * on separate threads (each op with tid 0 of 1, or, with more threads than
 * chunks, split among a group of threads per chunk), then sum the partials;
 * with one chunk they call the ops in order, split across the threads, with
 * a runtime barrier between them.  An op's result never depends on its
 * share: tid and nthreads decide who computes what, not what is computed.  Kernels are specialised to static shapes:
 * only the batch size n is read at run time.  Vectors are <16 x float>.
 *
 * This header is the middle layer (docs/architecture.md, "Code
 * generation"): what an op function sees (cg_op.c) and the lowerings
 * written against it (cg_kernels.c, cg_conv.c, cg_naive.c), above the
 * builder helpers (cg_build.h) and below the dispatcher (cg.c), which
 * alone knows how the bodies call them.
 */
#ifndef NNC_CG_H
#define NNC_CG_H

#include <llvm-c/Core.h>

#include "backend.h"
#include "cg_abi.h"
#include "cg_build.h"
#include "ir.h"
#include "target.h"

typedef struct cg_epilogue {
	struct cg_epilogue *next;
	ir_act act, dact;
	double opt;
	int nv, tail;
	bool to_y;
	LLVMValueRef fn;
} cg_epilogue;

/* ---- what an op function sees (cg_op.c) ---- */

/* Run-time values available in an op function. */
LLVMValueRef cg_arg(cg_ctx *c, cg_args_field f);      /* a field of nnrt_step_args, loaded */
LLVMValueRef cg_batch_n(cg_ctx *c);                   /* i64: samples of this chunk */
LLVMValueRef cg_batch_total(cg_ctx *c);               /* i64: samples of the whole step (means) */
LLVMValueRef cg_chunk_more(cg_ctx *c);                /* i64: chunks after this one the call covers (cg_abi.h) */
/* Whether node n's op function takes several chunks in one call (cg_kernels.c) */
bool cg_multi_chunk(const cg_ctx *c, const ir_node *n);
LLVMValueRef cg_first_sample(cg_ctx *c);              /* i64: global index of the chunk's first sample
						       * (args.sample0 + the chunk's start): the
						       * random stream's sample index */
LLVMValueRef cg_active_chunks(cg_ctx *c, LLVMValueRef n); /* chunks holding samples: ceil(n / cbatch) */
/* Scalar row passes (cg_kernels.c), shared by the softmax losses and the
 * per-position cross-entropy's reference kernel: max and first argmax of
 * row[0..k) (am may be NULL), and sum_j exp(row[j] - mx) in j order. */
void cg_row_max(cg_ctx *c, LLVMValueRef row, int64_t k, LLVMValueRef *mx, LLVMValueRef *am);
LLVMValueRef cg_row_sumexp(cg_ctx *c, LLVMValueRef row, int64_t k, LLVMValueRef mx);
LLVMValueRef cg_chunk_s0(cg_ctx *c); /* the chunk's first sample in the step: 0 for chunk 0 */
LLVMValueRef cg_hp(cg_ctx *c, int k);                 /* float hp[k] */
LLVMValueRef cg_metrics(cg_ctx *c);                   /* double* */
LLVMValueRef cg_tensor(cg_ctx *c, const ir_node *n);  /* base pointer of a node's tensor */
/* Chunk k's copy of a per-chunk tensor (ir_per_chunk), and the samples of
 * chunk k (k < cg_active_chunks): what a combine op reads of every chunk. */
LLVMValueRef cg_chunk_tensor(cg_ctx *c, const ir_node *n, LLVMValueRef k);
LLVMValueRef cg_chunk_samples(cg_ctx *c, LLVMValueRef k);
/* Rows of a node: n if batched, else 1. */
LLVMValueRef cg_rows(cg_ctx *c, const ir_node *n);
/* This thread's share [*lo, *hi) of ntasks tasks. */
void cg_partition(cg_ctx *c, LLVMValueRef ntasks, LLVMValueRef *lo, LLVMValueRef *hi);
/* n (a convolution or one of its gradients) takes bf16 operands (cg_ctx.bf16
 * and a shape the bf16 kernels take: cg_conv.c "bf16 convolutions"); the
 * reference kernels round where the fast ones do. */
bool cg_conv_bf16(const cg_ctx *c, const ir_node *n);

/* Data parallelism (cg_dist.c): this rank's span of chunks [*lo, *hi)
 * (every chunk in a run of one process); the sync before the combine ops ids[0..n) (the per-chunk
 * partials they read); the sync before the metrics and the update. */
void cg_dist_span(cg_ctx *c, LLVMValueRef *lo, LLVMValueRef *hi);
void cg_dist_sync_partials(cg_ctx *c, const int *ids, int n);
/* The FINAL sync's table, and with an update the gradient buckets of the
 * overlapped exchange: nnrt_dist_ready after op ids[j] of chunk k (i64)
 * says the first ready[j] buckets are complete (in_loop[j]: ids[j] runs
 * once per chunk). */
typedef struct cg_dist_plan {
	LLVMValueRef table;
	int64_t *ready;
	int nbuckets;
} cg_dist_plan;
cg_dist_plan *cg_dist_plan_final(cg_ctx *c, bool metrics, bool update, const int *ids, int n, const bool *in_loop);
void cg_dist_ready(cg_ctx *c, const cg_dist_plan *pl, int j, LLVMValueRef k);
void cg_dist_sync_final(cg_ctx *c, const cg_dist_plan *pl);

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

/* ---- the fast lowerings (cg_kernels.c, cg_conv.c): one per row of ops.def ---- */
typedef void lower_fn(cg_ctx *c, ir_node *n);
#define OP(id, name, arity, shape, grad, lower, kind, flops) lower_fn lower;
#include "ops.def"
#undef OP

/* ---- the owned gradient tail (cg.c; docs/architecture.md "Owned gradient tail") ---- */
/* Rows [r0, r1) (i64) of a DENSE_BWD_W node's product, every tile by this
 * thread, for the chunk c->chunk; rmax bounds r1 - r0.  Each element is the
 * sum lower_dense_bw computes, in the same order.  dst NULL: into the node's
 * tensor (chunk 0's gradient or this chunk's partial).  Else into dst (the
 * gradient), added to what is there when addto (i1) is true: chunk k's
 * product is summed in registers and added to chunks 0..k-1's sum, exactly
 * the update's sum of the partials; needs the chunk's rows (K) at most
 * CG_ADDTO_KMAX, which keeps K in one slice. */
#define CG_ADDTO_KMAX 320
void cg_dense_bw_rows(cg_ctx *c, ir_node *n, LLVMValueRef r0, LLVMValueRef r1, int64_t rmax, LLVMValueRef dst,
		      LLVMValueRef addto);
/* Whether update node n can run piecewise (no clip_norm, no accumulation),
 * and its rule on parameters [start, end) (floats, multiples of 16) by this
 * thread alone, chunk 0's gradients in c->chunk (the partials of the other
 * chunks summed in, as lower_update does; with `summed`, the gradients hold
 * the sum already). */
bool cg_update_piecewise(const ir_node *n);
void cg_update_span(cg_ctx *c, ir_node *n, LLVMValueRef start, LLVMValueRef end, bool summed);

/* ---- when a fast lowering applies ----
 * A fast lowering that handles only some nodes of its op says which here;
 * the dispatcher (cg.c) gives the others to the reference kernel. */
typedef bool can_lower_fn(const cg_ctx *c, const ir_node *n);
can_lower_fn can_lower_conv_bwd; /* CONV2D_BWD_X, CONV2D_BWD_W (cg_conv.c) */

/* ---- reference kernels (cg_naive.c): chosen by the dispatcher (cg.c) with
 * cg_options.naive, or where the fast lowering cannot handle the node ---- */
/* The L1d and L2 bytes per core the dense products block for: opt's, else
 * NNC_CACHE ("L1,L2" with K or M suffixes, e.g. 48K,2M), else the host's
 * from sysfs when opt's target is the host, else 32 KiB and 512 KiB. */
void cg_cache_sizes(const cg_options *opt, int64_t *l1, int64_t *l2);
void naive_dense(cg_ctx *c, ir_node *n);
void naive_dense_bx(cg_ctx *c, ir_node *n); /* DENSE_BWD_X and DENSE_BWD_XT */
void naive_dense_bw(cg_ctx *c, ir_node *n);
void naive_transpose(cg_ctx *c, ir_node *n);
void naive_conv(cg_ctx *c, ir_node *n);
void naive_conv_bx(cg_ctx *c, ir_node *n);
void naive_conv_bw(cg_ctx *c, ir_node *n);
/* the sequence ops' scalar row loops (cg_seq.c) */
void naive_layernorm(cg_ctx *c, ir_node *n);
void naive_ln_bwd_x(cg_ctx *c, ir_node *n);
void naive_ln_bwd_gamma(cg_ctx *c, ir_node *n);
void naive_matmul(cg_ctx *c, ir_node *n);
void naive_softmax_last(cg_ctx *c, ir_node *n); /* SOFTMAX_LAST and SOFTMAX_LAST_GRAD */
void naive_attn_probs(cg_ctx *c, ir_node *n);
void naive_attn_out(cg_ctx *c, ir_node *n);
void naive_seq_xent(cg_ctx *c, ir_node *n);     /* SEQ_XENT and SEQ_XENT_GRAD */

#endif
