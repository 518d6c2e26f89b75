/*
 * cg_kernels.c - the lowering of each op to an LLVM loop nest specialised
 * to its static shapes (only the batch size n is a run-time value).
 *
 * Matrix products (dense forward, its two backward products) share one
 * generator, gemm(): register tiles of MR rows x NV vectors of 16 floats held
 * in accumulators across the whole reduction, the A element broadcast, the B
 * row loaded once per k, and an epilogue that adds the bias, applies the
 * activation or multiplies by the activation's derivative before the one
 * store.  Work is split into tiles, statically across threads; every
 * reduction runs inside one tile in a fixed order, so results do not depend
 * on the number of threads.
 */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_math.h"

static ir_node *operand(cg_ctx *c, ir_node *n, int k) { return &c->g->nodes[n->in[k]]; }

/* The chunk's rows of R per sample: n R (n itself for R = 1) */
static LLVMValueRef batch_rows(cg_ctx *c, int64_t R)
{
	return R == 1 ? cg_batch_n(c) : LLVMBuildMul(c->B, cg_batch_n(c), cg_i64(c, R), "");
}

/* ---- matrix product ---- */

/* C[m, j] = epilogue(sum_k A(m, k) B[k, j]) for m < M, j < N, where
 * A(m, k) = a[m*sam + k*sak], B[k, j] = b[k*ldb + j], C[m, j] = c[m*ldc + j]. */
typedef struct gemm_spec {
	LLVMValueRef a, b, c;
	LLVMValueRef M;  /* i64, may be run-time */
	LLVMValueRef K;  /* i64, may be run-time */
	int64_t N;
	int64_t sam, sak, ldb, ldc;
	int64_t mmax;    /* upper bound of M (for choosing tiles) */
	int64_t kmax;    /* upper bound of a run-time K (for sizing a packed panel); 0: unknown */
	LLVMValueRef bias; /* float[N] or NULL */
	ir_act act;
	ir_act dact;     /* multiply by act'(v), v[m, j] = y[m*ldy + j] (x or y, acts.def) */
	double opt;      /* the activation's option */
	LLVMValueRef out2; /* act(C) goes here (ldc apart), C keeping the value; or NULL */
	LLVMValueRef y;
	int64_t ldy;
	/* several chunks in one call (cg_multi_chunk): respec fills a, c, M,
	 * out2 and y for the chunk c->chunk; with `more` (i64, > 0) set, every
	 * task is one column block of the rows of chunk0 and the `more` chunk
	 * records after it, each slice of B (packed once) serving them all */
	void (*respec)(cg_ctx *c, ir_node *n, struct gemm_spec *s);
	ir_node *node;
	LLVMValueRef more, chunk0;
	/* i1 or NULL: when true, C += the product instead of C = it (C holds the
	 * earlier chunks' sum: the owned tail, cg_dense_bw_rows).  The product is
	 * summed in registers and added at the end, so C ends as the sum of the
	 * chunks' products in chunk order, bit for bit what the update makes of
	 * the partials; K in one slice, no bias or activation. */
	LLVMValueRef addto;
} gemm_spec;

/* The forward activation goes into the accumulation loop itself. */
static bool inline_act(const gemm_spec *s) { return s->act && !s->dact && !s->out2 && ir_act_get(s->act)->inl; }

/* A slice [k0, k1) of the reduction; the first starts from zero, the others
 * from the partial sums in C; only the last applies the epilogue.  first and
 * last are i1 values (constants when K is not cut). */
typedef struct kslice {
	LLVMValueRef k0, k1;
	LLVMValueRef first, last;
} kslice;

/* Where a tile reads B: row k, columns [j, j + 16 nv) at b[(k - k0) * ld + j - j0]: the
 * operand itself (k0 = 0, j0 = 0, ld = ldb) or the packed panel of one column block and one
 * slice of k (gemm_task: k0 the slice's first row, j0 the block's first column). */
typedef struct bsrc {
	LLVMValueRef b, k0, j0;
	int64_t ld;
	/* bf16 products (gemm_bf16): b is the pair panel of one column block (ld i32 per pair
	 * of rows of k), and A comes packed as well: the pair (A(m, k), A(m, k + 1)) is an i32
	 * at apack[(m - ar0) * am + (k - k0) / 2 * ak]; NULL: float32 */
	LLVMValueRef apack, ar0;
	int64_t am, ak;
} bsrc;

static bool is_true(LLVMValueRef v) { return LLVMIsAConstantInt(v) && LLVMConstIntGetZExtValue(v); }
static bool is_false(LLVMValueRef v) { return LLVMIsAConstantInt(v) && !LLVMConstIntGetZExtValue(v); }

/* Pairs of k in [k0, k1), the last one short for an odd count. */
static LLVMValueRef pair_count(cg_ctx *c, LLVMValueRef k0, LLVMValueRef k1)
{
	return LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, LLVMBuildSub(c->B, k1, k0, ""), cg_i64(c, 1), ""), cg_i64(c, 2), "");
}

/* The reduction of a bf16 tile over the slice ks: per pair of k, one
 * vdpbf16ps per accumulator adds A(m, k + 1) B[k + 1, j] and then A(m, k)
 * B[k, j] (products of bfloat16 are exact in float32, each add rounds:
 * what naive_dense computes in that order). */
static void tile_bf16(cg_ctx *c, const kslice *ks, const bsrc *bs, LLVMValueRef m0, LLVMValueRef j0, int mr, int nv,
		      LLVMValueRef acc[16][4])
{
	LLVMTypeRef vi = LLVMVectorType(c->i32, CG_VW);
	LLVMValueRef np = pair_count(c, ks->k0, ks->k1);
	LLVMValueRef abase[16];
	for (int r = 0; r < mr; r++)
		abase[r] = LLVMBuildMul(c->B, LLVMBuildSub(c->B, LLVMBuildAdd(c->B, m0, cg_i64(c, r), ""), bs->ar0, ""),
					cg_i64(c, bs->am), "");
	LLVMValueRef jb = LLVMBuildSub(c->B, j0, bs->j0, "");
	cg_loop p = cg_loop_begin(c, cg_i64(c, 0), np, 1);
	{
		LLVMValueRef brow = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, p.i, cg_i64(c, bs->ld), ""), jb, "");
		LLVMValueRef bv[4];
		for (int v = 0; v < nv; v++) {
			bv[v] = LLVMBuildLoad2(c->B, vi, cg_gep_i32(c, bs->b, LLVMBuildAdd(c->B, brow, cg_i64(c, 16 * v), "")), "");
			LLVMSetAlignment(bv[v], 4);
		}
		LLVMValueRef aoff = LLVMBuildMul(c->B, p.i, cg_i64(c, bs->ak), "");
		for (int r = 0; r < mr; r++) {
			LLVMValueRef a = cg_load(c, c->i32, cg_gep_i32(c, bs->apack, LLVMBuildAdd(c->B, abase[r], aoff, "")));
			LLVMValueRef av = cg_splat(c, a);
			for (int v = 0; v < nv; v++)
				cg_store(c, cg_dpbf16(c, cg_load(c, c->v16, acc[r][v]), av, bv[v]), acc[r][v]);
		}
	}
	cg_loop_end(c, &p);
}

/* One register tile: rows [m0, m0+mr), vectors [j0, j0 + 16 nv), the last
 * vector masked to `tail` lanes (16 = full), over the slice ks of k. */
static void gemm_tile(cg_ctx *c, const gemm_spec *s, const kslice *ks, const bsrc *bs, LLVMValueRef m0,
		      LLVMValueRef j0, int mr, int nv, int tail)
{
	LLVMValueRef acc[16][4];
	LLVMValueRef tmask = tail < CG_VW ? cg_mask(c, tail) : NULL;
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < nv; v++) {
			acc[r][v] = cg_alloca(c, c->v16, "acc");
			LLVMValueRef init = LLVMConstNull(c->v16);
			if (!is_true(ks->first)) { /* C holds this slice's start (read, unused, on the first) */
				LLVMValueRef m = LLVMBuildAdd(c->B, m0, cg_i64(c, r), "");
				LLVMValueRef j = LLVMBuildAdd(c->B, j0, cg_i64(c, 16 * v), "");
				LLVMValueRef co = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, m, cg_i64(c, s->ldc), ""), j, "");
				LLVMValueRef part = cg_vload(c, cg_gep(c, s->c, co), v == nv - 1 ? tmask : NULL);
				init = LLVMBuildSelect(c->B, ks->first, init, part, "");
			}
			cg_store(c, init, acc[r][v]);
		}
	if (bs->apack) {
		tile_bf16(c, ks, bs, m0, j0, mr, nv, acc);
		goto epilogue;
	}
	/* row base offsets of A for each r: (m0 + r) * sam */
	LLVMValueRef arow[16];
	for (int r = 0; r < mr; r++)
		arow[r] = LLVMBuildMul(c->B, LLVMBuildAdd(c->B, m0, cg_i64(c, r), ""), cg_i64(c, s->sam), "");
	cg_loop k = cg_loop_begin(c, ks->k0, ks->k1, 1);
	{
		LLVMValueRef bk = LLVMBuildSub(c->B, k.i, bs->k0, "");
		LLVMValueRef brow = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, bk, cg_i64(c, bs->ld), ""),
						 LLVMBuildSub(c->B, j0, bs->j0, ""), "");
		LLVMValueRef bv[4];
		for (int v = 0; v < nv; v++) {
			LLVMValueRef p = cg_gep(c, bs->b, LLVMBuildAdd(c->B, brow, cg_i64(c, 16 * v), ""));
			bv[v] = cg_vload(c, p, v == nv - 1 ? tmask : NULL);
		}
		LLVMValueRef koff = LLVMBuildMul(c->B, k.i, cg_i64(c, s->sak), "");
		if (s->sak == 1 && s->sam >= 16 * CG_VW && mr > 1) {
			/* long sample-major rows of A, e.g. the caller's input (often
			 * not in cache): the next row block's rows are prefetched
			 * along, one row per k, 16 columns ahead */
			LLVMValueRef r = LLVMBuildAnd(c->B, k.i, cg_i64(c, mr - 1), "");
			LLVMValueRef row = LLVMBuildAdd(c->B, LLVMBuildAdd(c->B, m0, cg_i64(c, mr), ""), r, "");
			LLVMValueRef off = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, row, cg_i64(c, s->sam), ""),
							LLVMBuildAdd(c->B, k.i, cg_i64(c, CG_VW), ""), "");
			cg_prefetch(c, s->a, off, 3); /* may pass the end: a hint */
		}
		for (int r = 0; r < mr; r++) {
			LLVMValueRef av = cg_load(c, c->f32, cg_gep(c, s->a, LLVMBuildAdd(c->B, arow[r], koff, "")));
			LLVMValueRef bc = cg_splat(c, av);
			for (int v = 0; v < nv; v++)
				cg_store(c, cg_fma(c, bc, bv[v], cg_load(c, c->v16, acc[r][v])), acc[r][v]);
		}
	}
	cg_loop_end(c, &k);
epilogue:;
	/* epilogue, part 1 (unrolled): accumulators + bias, stored once */
	LLVMValueRef bias[4] = {0};
	if (s->bias && !is_false(ks->last))
		for (int v = 0; v < nv; v++) {
			bias[v] = cg_vload(c, cg_gep(c, s->bias, LLVMBuildAdd(c->B, j0, cg_i64(c, 16 * v), "")),
					   v == nv - 1 ? tmask : NULL);
			bias[v] = LLVMBuildSelect(c->B, ks->last, bias[v], LLVMConstNull(c->v16), "");
		}
	for (int r = 0; r < mr; r++) {
		LLVMValueRef m = LLVMBuildAdd(c->B, m0, cg_i64(c, r), "");
		for (int v = 0; v < nv; v++) {
			LLVMValueRef j = LLVMBuildAdd(c->B, j0, cg_i64(c, 16 * v), "");
			LLVMValueRef x = cg_load(c, c->v16, acc[r][v]);
			if (bias[v])
				x = LLVMBuildFAdd(c->B, x, bias[v], "");
			if (inline_act(s)) /* no constants to keep: inline */
				x = LLVMBuildSelect(c->B, ks->last, cg_act(c, s->act, s->opt, x), x, "");
			LLVMValueRef co = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, m, cg_i64(c, s->ldc), ""), j, "");
			if (s->addto) { /* the earlier chunks' sum + this chunk's */
				LLVMValueRef old = cg_vload(c, cg_gep(c, s->c, co), v == nv - 1 ? tmask : NULL);
				x = LLVMBuildSelect(c->B, s->addto, LLVMBuildFAdd(c->B, old, x, ""), x, "");
			}
			cg_vstore(c, x, cg_gep(c, s->c, co), v == nv - 1 ? tmask : NULL);
		}
	}
	/* part 2: the activation (or its derivative) over the tile while it is
	 * in L1, out of line (see cg_call_epilogue) */
	if ((!s->act && !s->dact) || is_false(ks->last) || inline_act(s))
		return;
	cg_if lf = cg_if_begin(c, ks->last);
	LLVMValueRef co = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, m0, cg_i64(c, s->ldc), ""), j0, "");
	LLVMValueRef yp = NULL;
	if (s->dact)
		yp = cg_gep(c, s->y, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, m0, cg_i64(c, s->ldy), ""), j0, ""));
	int64_t ldy = s->out2 ? s->ldc : s->ldy;
	if (s->out2)
		yp = cg_gep(c, s->out2, co);
	cg_call_epilogue(c, s->act, s->dact, s->opt, nv, tail, cg_gep(c, s->c, co), s->ldc, yp, ldy, cg_i64(c, mr));
	cg_if_end(c, &lf);
}

/* Rows of a block: a full tile when all mr rows exist; the rows of a last,
 * partial block as tiles of the powers of two below mr that sum to their
 * number (5 = 4 + 1): each a register tile with as many independent sums,
 * where single rows were one chain of dependent FMAs each.  A row's sums
 * are the same whatever tile computes it. */
static void gemm_rows(cg_ctx *c, const gemm_spec *s, const kslice *ks, const bsrc *bs, LLVMValueRef m0,
		      LLVMValueRef j0, int mr, int nv, int tail)
{
	if (LLVMIsAConstantInt(s->M) && LLVMConstIntGetSExtValue(s->M) % mr == 0) {
		gemm_tile(c, s, ks, bs, m0, j0, mr, nv, tail); /* every block is full */
		return;
	}
	LLVMValueRef rows = cg_min_i64(c, cg_i64(c, mr), LLVMBuildSub(c->B, s->M, m0, ""));
	cg_if f = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, rows, cg_i64(c, mr), ""));
	gemm_tile(c, s, ks, bs, m0, j0, mr, nv, tail);
	cg_if_else(c, &f);
	int p = 1;
	while (2 * p < mr)
		p *= 2;
	LLVMValueRef at = m0; /* the next row of the partial block */
	for (; p >= 1; p /= 2) {
		LLVMValueRef bit = LLVMBuildAnd(c->B, rows, cg_i64(c, p), "");
		cg_if h = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntNE, bit, cg_i64(c, 0), ""));
		gemm_tile(c, s, ks, bs, at, j0, p, nv, tail);
		cg_if_end(c, &h);
		at = LLVMBuildAdd(c->B, at, bit, "");
	}
	cg_if_end(c, &f);
}

/* The row blocks [b0, b1) of one column block over the slice ks. */
static void gemm_block_rows(cg_ctx *c, const gemm_spec *s, const kslice *ks, const bsrc *bs, LLVMValueRef b0,
			    LLVMValueRef b1, LLVMValueRef j0, int mr, int nv, int tail)
{
	cg_loop b = cg_loop_begin(c, b0, b1, 1);
	gemm_rows(c, s, ks, bs, LLVMBuildMul(c->B, b.i, cg_i64(c, mr), ""), j0, mr, nv, tail);
	cg_loop_end(c, &b);
}

/* Cache blocking (docs/architecture.md "Dense products and cache
 * blocking").  A task is one column block (16 nv columns) of a group of row
 * blocks; inside it the reduction runs in slices of kc rows, each slice
 * over every row block before the next, the partial sums waiting in C:
 * C[m, j] is still the one sum over k in increasing order, so slicing never
 * changes a result.
 *
 * Without packing (the rows of B close together, e.g. the examples'
 * 128-wide layers: the code they were tuned with) a long constant K is cut
 * so that the slice of B a column block reads (kc rows of 16 nv floats)
 * fits GEMM_L1_BYTES.  When B's rows are far apart (ldb >= GEMM_PACK_LD
 * floats: a 1024-wide layer's rows are 4 KiB apart, so a column block's rows
 * all fall into the same few sets of L1 and L2 and evict each other) and
 * the panel is used by more than one row block, each slice of the column
 * block is first copied into a contiguous panel of kc x 16 nv floats that
 * takes half of L1 (BLIS's packed B panel), which the row blocks then read
 * with unit stride.  The row group is cut so that the task's rows of A (K
 * floats each, read again by the next column block) stay in half of L2. */
#define GEMM_L1_BYTES 32768
/* Row blocks per task: enough rows to reuse a slice of B, few enough tasks
 * per column block to split across threads when there is a single chunk. */
#define GEMM_ROWS_PER_TASK 64
/* Rows of B this far apart (floats) are packed */
#define GEMM_PACK_LD 256
/* Dense products with a weight this large (floats) take all of a thread's
 * chunks in one call (cg_multi_chunk): one pass over the weight */
#define GEMM_MULTI_MIN 16384

typedef struct gemm_plan {
	int64_t kc;         /* rows of k per slice (the whole of K: one slice) */
	LLVMValueRef panel; /* the packed panel (kc x 16 nv floats), or NULL: B read in place */
} gemm_plan;

/* panel[k - k0][0, 16 nv) = B[k][j0, j0 + 16 nv) for k in [k0, k1); lanes past `tail` 0 */
static void gemm_pack(cg_ctx *c, const gemm_spec *s, LLVMValueRef panel, LLVMValueRef k0, LLVMValueRef k1,
		      LLVMValueRef j0, int nv, int tail)
{
	LLVMValueRef tmask = tail < CG_VW ? cg_mask(c, tail) : NULL;
	cg_loop k = cg_loop_begin(c, k0, k1, 1);
	LLVMValueRef src = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, k.i, cg_i64(c, s->ldb), ""), j0, "");
	LLVMValueRef dst = LLVMBuildMul(c->B, LLVMBuildSub(c->B, k.i, k0, ""), cg_i64(c, nv * CG_VW), "");
	for (int v = 0; v < nv; v++) {
		LLVMValueRef x = cg_vload(c, cg_gep(c, s->b, LLVMBuildAdd(c->B, src, cg_i64(c, 16 * v), "")),
					  v == nv - 1 ? tmask : NULL);
		cg_vstore(c, x, cg_gep(c, panel, LLVMBuildAdd(c->B, dst, cg_i64(c, 16 * v), "")), NULL);
	}
	/* the next column block's row k, towards L2, while this panel is used:
	 * the next task packs it (may pass the end of B: a hint) */
	LLVMValueRef off = LLVMBuildAdd(c->B, src, cg_i64(c, (int64_t)nv * CG_VW), "");
	for (int v = 0; v < nv; v++)
		cg_prefetch(c, s->b, LLVMBuildAdd(c->B, off, cg_i64(c, 16 * v), ""), 2);
	cg_loop_end(c, &k);
}

/* Slices of kc rows of K: at least one, so that C is written even for a
 * run-time K of 0 (dW: the chunk's rows). */
static LLVMValueRef slice_count(cg_ctx *c, const gemm_spec *s, int64_t kc)
{
	if (LLVMIsAConstantInt(s->K)) {
		int64_t nk = (LLVMConstIntGetSExtValue(s->K) + kc - 1) / kc;
		return cg_i64(c, nk < 1 ? 1 : nk);
	}
	LLVMValueRef nk = LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, s->K, cg_i64(c, kc - 1), ""), cg_i64(c, kc), "");
	return LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, nk, cg_i64(c, 1), ""), cg_i64(c, 1), nk, "");
}

/* Slice qi of nk, kc rows of k each (the last shorter); first and last
 * are constants when a constant K makes one slice. */
static kslice slice_of(cg_ctx *c, const gemm_spec *s, LLVMValueRef qi, LLVMValueRef nk, int64_t kc)
{
	LLVMValueRef k0 = LLVMBuildMul(c->B, qi, cg_i64(c, kc), "");
	kslice ks = {k0, cg_min_i64(c, s->K, LLVMBuildAdd(c->B, k0, cg_i64(c, kc), "")),
		     LLVMBuildICmp(c->B, LLVMIntEQ, qi, cg_i64(c, 0), ""),
		     LLVMBuildICmp(c->B, LLVMIntEQ, qi, LLVMBuildSub(c->B, nk, cg_i64(c, 1), ""), "")};
	if (LLVMIsAConstantInt(s->K) && LLVMConstIntGetSExtValue(s->K) <= kc)
		ks.first = ks.last = LLVMConstInt(c->i1, 1, 0);
	return ks;
}

/* f(c, spec, env) for every chunk of the call: s itself, or with several
 * chunks in one call (s->more, cg_multi_chunk) each chunk's spec (respec),
 * c->chunk pointing at its record meanwhile. */
typedef void chunk_fn(cg_ctx *c, const gemm_spec *s, void *env);

static void each_call_chunk(cg_ctx *c, const gemm_spec *s, chunk_fn *f, void *env)
{
	if (!s->more) {
		f(c, s, env);
		return;
	}
	cg_loop q = cg_loop_begin(c, cg_i64(c, 0), LLVMBuildAdd(c->B, s->more, cg_i64(c, 1), ""), 1);
	c->chunk = LLVMBuildGEP2(c->B, c->abi.chunk, s->chunk0, &q.i, 1, "");
	gemm_spec sq = *s;
	s->respec(c, s->node, &sq);
	f(c, &sq, env);
	cg_loop_end(c, &q);
	c->chunk = s->chunk0;
}

/* gemm_block_rows of all row blocks of one chunk of a multi-chunk call */
typedef struct rows_job {
	const kslice *ks;
	const bsrc *bs;
	LLVMValueRef j0;
	int mr, nv, tail;
} rows_job;

static void chunk_rows(cg_ctx *c, const gemm_spec *s, void *env)
{
	const rows_job *j = env;
	LLVMValueRef mb = LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, s->M, cg_i64(c, j->mr - 1), ""), cg_i64(c, j->mr), "");
	gemm_block_rows(c, s, j->ks, j->bs, cg_i64(c, 0), mb, j->j0, j->mr, j->nv, j->tail);
}

/* The slice ks of one task: packed first if the plan says so. */
static void gemm_slice(cg_ctx *c, const gemm_spec *s, const gemm_plan *pl, const kslice *ks, LLVMValueRef b0,
		       LLVMValueRef b1, LLVMValueRef j0, int mr, int nv, int tail)
{
	bsrc bs = {.b = s->b, .k0 = cg_i64(c, 0), .j0 = cg_i64(c, 0), .ld = s->ldb};
	if (pl->panel) {
		gemm_pack(c, s, pl->panel, ks->k0, ks->k1, j0, nv, tail);
		bs = (bsrc){.b = pl->panel, .k0 = ks->k0, .j0 = j0, .ld = (int64_t)nv * CG_VW};
	}
	if (!s->more) {
		gemm_block_rows(c, s, ks, &bs, b0, b1, j0, mr, nv, tail);
		return;
	}
	rows_job job = {ks, &bs, j0, mr, nv, tail};
	each_call_chunk(c, s, chunk_rows, &job);
}

/* A task: one column block (ji) and a group of row blocks [b0, b1). */
static void gemm_task(cg_ctx *c, const gemm_spec *s, const gemm_plan *pl, LLVMValueRef b0, LLVMValueRef b1,
		      LLVMValueRef j0, int mr, int nv, int tail)
{
	int64_t kc = pl->kc;
	bool kconst = LLVMIsAConstantInt(s->K);
	if (kconst ? LLVMConstIntGetSExtValue(s->K) <= kc : s->kmax <= kc) {
		LLVMValueRef yes = LLVMConstInt(c->i1, 1, 0);
		kslice ks = {cg_i64(c, 0), s->K, yes, yes};
		gemm_slice(c, s, pl, &ks, b0, b1, j0, mr, nv, tail);
		return;
	}
	/* nk slices of kc (the last shorter) */
	LLVMValueRef nk = slice_count(c, s, kc);
	cg_loop q = cg_loop_begin(c, cg_i64(c, 0), nk, 1); /* one copy of the code for all slices */
	kslice ks = slice_of(c, s, q.i, nk, kc);
	gemm_slice(c, s, pl, &ks, b0, b1, j0, mr, nv, tail);
	cg_loop_end(c, &q);
}

/* Even slices of at most kc rows of K (K itself when K <= kc). */
static int64_t even_slices(int64_t K, int64_t kc)
{
	if (K <= kc)
		return K;
	int64_t nk = (K + kc - 1) / kc;
	return (K + nk - 1) / nk;
}

/* The blocking of a product (see above): the slice length, packing, and
 * the row blocks per task (*group). */
static gemm_plan gemm_blocking(cg_ctx *c, const gemm_spec *s, int mr, int nv, int64_t *group)
{
	gemm_plan pl = {0};
	bool kconst = LLVMIsAConstantInt(s->K);
	int64_t K = kconst ? LLVMConstIntGetSExtValue(s->K) : s->kmax;
	*group = GEMM_ROWS_PER_TASK / mr > 1 ? GEMM_ROWS_PER_TASK / mr : 1;
	int64_t jw = (int64_t)nv * CG_VW;
	/* several chunks' rows share each panel */
	int64_t rows = s->more ? s->mmax * c->g->chunks : s->mmax;
	bool pack = s->ldb >= GEMM_PACK_LD && rows >= 2 * mr && K > 0;
	if (!pack) { /* the unpacked blocking (a slice of 1.5 kc stays whole) */
		int64_t kc = GEMM_L1_BYTES / (jw * 4);
		pl.kc = K > kc + kc / 2 ? even_slices(K, kc) : K > 0 ? K : 1;
		if ((!kconst && K <= 0) || s->addto) /* a run-time K of unknown bound, or addto: one slice */
			pl.kc = INT64_MAX;
		return pl;
	}
	/* half of L1; at most 64 KiB on the thread's stack, whatever NNC_CACHE says.
	 * A run-time K (dW: the chunk's rows) is sliced for its bound, kmax.
	 * One slice for addto (its caller bounds K: CG_ADDTO_KMAX). */
	int64_t kc = (c->l1 < 128 * 1024 ? c->l1 : 128 * 1024) / 2 / (jw * 4);
	if (kc < 16)
		kc = 16;
	pl.kc = s->addto ? K : even_slices(K, kc);
	pl.panel = cg_alloca(c, LLVMArrayType(c->f32, (unsigned)(pl.kc * jw)), "panel");
	if (K > 0) { /* the task's rows of A in half of L2 */
		int64_t rows = c->l2 / 2 / (K * 4) / mr * mr;
		if (rows < 2 * mr)
			rows = 2 * mr;
		if (rows / mr < *group)
			*group = rows / mr;
	}
	return pl;
}

static void gemm_body(cg_ctx *c, const gemm_spec *s);

/* The product; with several chunks in the call (cg_chunk_more > 0), the
 * variant whose tasks are column blocks of all of them. */
static void gemm_bf16(cg_ctx *c, const gemm_spec *s);

static void gemm(cg_ctx *c, const gemm_spec *s)
{
	void (*body)(cg_ctx *, const gemm_spec *) = c->bf16 ? gemm_bf16 : gemm_body;
	if (!s->respec) {
		body(c, s);
		return;
	}
	LLVMValueRef more = cg_chunk_more(c);
	cg_if one = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, more, cg_i64(c, 0), ""));
	body(c, s);
	cg_if_else(c, &one);
	gemm_spec m = *s;
	m.more = more;
	m.chunk0 = c->chunk;
	body(c, &m);
	cg_if_end(c, &one);
}

static void gemm_body(cg_ctx *c, const gemm_spec *s)
{
	int64_t nvec = (s->N + CG_VW - 1) / CG_VW;
	/* AVX-512 (cg_ctx.vacc 24): 8 x 48 floats, 24 accumulators, 3 loads of
	 * B and 8 broadcasts of A per 24 FMAs (measured faster than 4 x 64 and
	 * 6 x 64 on a 784-128 layer); 8 rows divide the usual chunk sizes.
	 * AVX2 (16 registers of 8 floats, a <16 x float> in two): 6 x 16
	 * floats, 6 accumulators in 12 registers, B's vector in 2 and the
	 * broadcast in 1, the classic AVX2 tile; 24 accumulators there were 48
	 * registers and every FMA went through the stack.  Each element adds
	 * the same products in the same order whatever the tile. */
	int nv, mr;
	if (c->vacc >= 24 || c->vacc == 0) {
		nv = nvec >= 3 ? 3 : (int)nvec;
		mr = nv == 1 ? 16 : 8;
	} else {
		nv = 1;
		mr = c->vacc;
	}
	while (mr > 1 && s->mmax < mr)
		mr /= 2;
	int64_t jw = (int64_t)nv * CG_VW;
	int64_t nj = (s->N + jw - 1) / jw;
	/* the last column block may be narrower and end in a partial vector */
	int64_t last_cols = s->N - (nj - 1) * jw;
	int last_nv = (int)((last_cols + CG_VW - 1) / CG_VW);
	int last_tail = (int)(last_cols - (int64_t)(last_nv - 1) * CG_VW);
	int64_t group; /* row blocks per task */
	gemm_plan pl = gemm_blocking(c, s, mr, nv, &group);

	LLVMValueRef mb = LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, s->M, cg_i64(c, mr - 1), ""), cg_i64(c, mr), "");
	LLVMValueRef ng = LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, mb, cg_i64(c, group - 1), ""), cg_i64(c, group), "");
	if (s->more) /* one task per column block: every chunk's rows */
		ng = cg_i64(c, 1);
	LLVMValueRef ntasks = LLVMBuildMul(c->B, ng, cg_i64(c, nj), "");
	LLVMValueRef lo, hi;
	cg_partition(c, ntasks, &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	{
		LLVMValueRef gi = LLVMBuildSDiv(c->B, t.i, cg_i64(c, nj), "");
		LLVMValueRef ji = LLVMBuildSRem(c->B, t.i, cg_i64(c, nj), "");
		LLVMValueRef b0 = LLVMBuildMul(c->B, gi, cg_i64(c, group), "");
		LLVMValueRef b1 = cg_min_i64(c, mb, LLVMBuildAdd(c->B, b0, cg_i64(c, group), ""));
		LLVMValueRef j0 = LLVMBuildMul(c->B, ji, cg_i64(c, jw), "");
		if (last_nv == nv && last_tail == CG_VW) {
			gemm_task(c, s, &pl, b0, b1, j0, mr, nv, CG_VW);
		} else if (nj == 1) {
			gemm_task(c, s, &pl, b0, b1, j0, mr, last_nv, last_tail);
		} else {
			cg_if f = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, ji, cg_i64(c, nj - 1), ""));
			gemm_task(c, s, &pl, b0, b1, j0, mr, last_nv, last_tail);
			cg_if_else(c, &f);
			gemm_task(c, s, &pl, b0, b1, j0, mr, nv, CG_VW);
			cg_if_end(c, &f);
		}
	}
	cg_loop_end(c, &t);
}

/* ---- bf16 products ----
 *
 * With train { precision: bf16 } every dense product (forward, input and
 * weight gradients, the eval and inference steps alike) multiplies
 * bfloat16 operands and adds in float32 with vdpbf16ps, which takes pairs
 * of k: lane j of the accumulator gets A(m, k) B[k, j] + A(m, k + 1)
 * B[k + 1, j].  Both operands are rounded (to nearest, ties to even) and
 * packed into that pair layout as they are used: a task is a group of row
 * blocks; for each slice of k its rows of A are packed once into pairs
 * (apack, read by broadcasts), then for each column block the slice of B
 * is packed into a panel of pairs (half the bytes of a float panel), which
 * the group's row blocks read.  Results do not depend on the thread count
 * (a task's sums are fixed by the spec), nor on the slicing: C holds the
 * float32 partial sums between slices, and slices start at even k.  The
 * parameters, their gradients' sums across chunks, the optimizer and every
 * other op stay float32.
 */

/* apack <- the pairs of A's rows [r0, r1) over the slice [k0, k1), kp pairs
 * of capacity: rows along k (sak == 1: 32 floats of a row per step) or
 * along m (sam == 1: 16 rows per step, two rows of k at a time); pairs past
 * k1 hold zeros. */
static void pack_a_bf16(cg_ctx *c, const gemm_spec *s, const bsrc *bs, LLVMValueRef r0, LLVMValueRef r1,
			LLVMValueRef k0, LLVMValueRef k1)
{
	LLVMValueRef np = pair_count(c, k0, k1);
	if (s->sak == 1) {
		cg_loop m = cg_loop_begin(c, r0, r1, 1);
		LLVMValueRef row = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, m.i, cg_i64(c, s->sam), ""), k0, "");
		LLVMValueRef dst = LLVMBuildMul(c->B, LLVMBuildSub(c->B, m.i, r0, ""), cg_i64(c, bs->am), "");
		cg_loop p = cg_loop_begin(c, cg_i64(c, 0), np, CG_VW);
		{
			LLVMValueRef k = LLVMBuildMul(c->B, p.i, cg_i64(c, 2), ""); /* from k0 */
			LLVMValueRef left = LLVMBuildSub(c->B, LLVMBuildSub(c->B, k1, k0, ""), k, "");
			LLVMValueRef at = LLVMBuildAdd(c->B, row, k, "");
			LLVMValueRef v0 = cg_vload(c, cg_gep(c, s->a, at), cg_mask_dyn(c, left));
			LLVMValueRef v1 = cg_vload(c, cg_gep(c, s->a, LLVMBuildAdd(c->B, at, cg_i64(c, CG_VW), "")),
						   cg_mask_dyn(c, LLVMBuildSub(c->B, left, cg_i64(c, CG_VW), "")));
			LLVMValueRef x = cg_bf16_seq(c, v0, v1);
			LLVMValueRef st = LLVMBuildStore(c->B, x, cg_gep_i32(c, bs->apack, LLVMBuildAdd(c->B, dst, p.i, "")));
			LLVMSetAlignment(st, 4);
		}
		cg_loop_end(c, &p);
		cg_loop_end(c, &m);
		return;
	}
	NNC_ASSERT(s->sam == 1);
	cg_loop p = cg_loop_begin(c, cg_i64(c, 0), np, 1);
	LLVMValueRef k = LLVMBuildAdd(c->B, k0, LLVMBuildMul(c->B, p.i, cg_i64(c, 2), ""), "");
	LLVMValueRef has2 = LLVMBuildICmp(c->B, LLVMIntSLT, LLVMBuildAdd(c->B, k, cg_i64(c, 1), ""), k1, "");
	LLVMValueRef rowk = LLVMBuildMul(c->B, k, cg_i64(c, s->sak), "");
	LLVMValueRef dst = LLVMBuildMul(c->B, p.i, cg_i64(c, bs->ak), "");
	cg_loop m = cg_loop_begin(c, r0, r1, CG_VW);
	{
		LLVMValueRef mask = cg_mask_dyn(c, LLVMBuildSub(c->B, r1, m.i, ""));
		LLVMValueRef at = LLVMBuildAdd(c->B, rowk, m.i, "");
		LLVMValueRef lo = cg_vload(c, cg_gep(c, s->a, at), mask);
		LLVMValueRef m2 = LLVMBuildAnd(c->B, mask, cg_splat(c, has2), "");
		LLVMValueRef hi = cg_vload(c, cg_gep(c, s->a, LLVMBuildAdd(c->B, at, cg_i64(c, s->sak), "")), m2);
		LLVMValueRef x = cg_bf16_pairs(c, lo, hi);
		LLVMValueRef st = LLVMBuildStore(
			c->B, x, cg_gep_i32(c, bs->apack, LLVMBuildAdd(c->B, dst, LLVMBuildSub(c->B, m.i, r0, ""), "")));
		LLVMSetAlignment(st, 4);
	}
	cg_loop_end(c, &m);
	cg_loop_end(c, &p);
}

/* panel[p][0, 16 nv) (rows ld i32 apart) <- the pairs of B's rows k0 + 2p,
 * k0 + 2p + 1 over the columns [j0, j0 + 16 nv), lanes past `tail` and a
 * row past k1 zero. */
static void pack_b_bf16(cg_ctx *c, const gemm_spec *s, LLVMValueRef panel, int64_t ld, LLVMValueRef k0,
			LLVMValueRef k1, LLVMValueRef j0, int nv, int tail)
{
	LLVMValueRef np = pair_count(c, k0, k1);
	cg_loop p = cg_loop_begin(c, cg_i64(c, 0), np, 1);
	LLVMValueRef k = LLVMBuildAdd(c->B, k0, LLVMBuildMul(c->B, p.i, cg_i64(c, 2), ""), "");
	LLVMValueRef has2 = cg_splat(c, LLVMBuildICmp(c->B, LLVMIntSLT, LLVMBuildAdd(c->B, k, cg_i64(c, 1), ""), k1, ""));
	LLVMValueRef src = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, k, cg_i64(c, s->ldb), ""), j0, "");
	LLVMValueRef dst = LLVMBuildMul(c->B, p.i, cg_i64(c, ld), "");
	for (int v = 0; v < nv; v++) {
		LLVMValueRef tm = cg_mask(c, v == nv - 1 ? tail : CG_VW);
		LLVMValueRef at = LLVMBuildAdd(c->B, src, cg_i64(c, 16 * v), "");
		LLVMValueRef lo = cg_vload(c, cg_gep(c, s->b, at), v == nv - 1 && tail < CG_VW ? tm : NULL);
		LLVMValueRef hi = cg_vload(c, cg_gep(c, s->b, LLVMBuildAdd(c->B, at, cg_i64(c, s->ldb), "")),
					   LLVMBuildAnd(c->B, tm, has2, ""));
		LLVMValueRef st = LLVMBuildStore(c->B, cg_bf16_pairs(c, lo, hi),
						 cg_gep_i32(c, panel, LLVMBuildAdd(c->B, dst, cg_i64(c, 16 * v), "")));
		LLVMSetAlignment(st, 4);
	}
	cg_loop_end(c, &p);
}

/* Pairs of k per slice: the pair panel of a column block in half of L1. */
static int64_t bf16_pairs_per_slice(const cg_ctx *c, int64_t jw)
{
	int64_t kp = (c->l1 < 128 * 1024 ? c->l1 : 128 * 1024) / 2 / (jw * 4);
	return kp < 8 ? 8 : kp;
}

/* The column blocks [0, nj) of a task's row blocks [b0, b1) over the slice
 * ks, A packed: each block's pair panel at panel + ji * pstride, packed
 * here first unless `packed` (then every block's panel is ready). */
typedef struct bf16_cols {
	LLVMValueRef panel;
	int64_t pstride, nj, jw;
	int nv, last_nv, last_tail;
	bool packed;
} bf16_cols;

static void bf16_block(cg_ctx *c, const gemm_spec *s, const bf16_cols *bc, const kslice *ks, bsrc *bs,
		       LLVMValueRef b0, LLVMValueRef b1, LLVMValueRef ji, int mr, int nv, int tail)
{
	LLVMValueRef j0 = LLVMBuildMul(c->B, ji, cg_i64(c, bc->jw), "");
	bs->j0 = j0;
	bs->b = cg_gep_i32(c, bc->panel, LLVMBuildMul(c->B, ji, cg_i64(c, bc->pstride), ""));
	if (!bc->packed || !b0) /* b0 NULL: the packing pass of whole-width panels */
		pack_b_bf16(c, s, bs->b, bc->jw, ks->k0, ks->k1, j0, nv, tail);
	if (b0)
		gemm_block_rows(c, s, ks, bs, b0, b1, j0, mr, nv, tail);
}

/* Every column block: full ones, then the last (narrower) one. */
static void bf16_cols_each(cg_ctx *c, const gemm_spec *s, const bf16_cols *bc, const kslice *ks, bsrc *bs,
			   LLVMValueRef b0, LLVMValueRef b1, int mr)
{
	bool ragged = bc->last_nv != bc->nv || bc->last_tail != CG_VW;
	int64_t nfull = ragged ? bc->nj - 1 : bc->nj;
	if (nfull > 0) {
		cg_loop jl = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, nfull), 1);
		bf16_block(c, s, bc, ks, bs, b0, b1, jl.i, mr, bc->nv, CG_VW);
		cg_loop_end(c, &jl);
	}
	if (ragged)
		bf16_block(c, s, bc, ks, bs, b0, b1, cg_i64(c, bc->nj - 1), mr, bc->last_nv, bc->last_tail);
}

typedef struct bf16_plan {
	bf16_cols *bc;
	bsrc *bs;
	int mr;
	int64_t group, kc;
	LLVMValueRef nk;
	const kslice *ks; /* the slice whose whole-width B panels are ready, or NULL */
} bf16_plan;

/* This thread's tasks (groups of row blocks) of s (a chunk_fn, env the
 * bf16_plan): over the slice p->ks (whole-width B panels ready), or, ks
 * NULL, over every slice, B packed per column block. */
static void bf16_tasks(cg_ctx *c, const gemm_spec *s, void *env)
{
	const bf16_plan *p = env;
	const kslice *ks = p->ks;
	int mr = p->mr;
	LLVMValueRef mb = LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, s->M, cg_i64(c, mr - 1), ""), cg_i64(c, mr), "");
	LLVMValueRef ntasks = LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, mb, cg_i64(c, p->group - 1), ""),
					    cg_i64(c, p->group), "");
	LLVMValueRef lo, hi;
	cg_partition(c, ntasks, &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef b0 = LLVMBuildMul(c->B, t.i, cg_i64(c, p->group), "");
	LLVMValueRef b1 = cg_min_i64(c, mb, LLVMBuildAdd(c->B, b0, cg_i64(c, p->group), ""));
	LLVMValueRef r0 = LLVMBuildMul(c->B, b0, cg_i64(c, mr), "");
	LLVMValueRef r1 = cg_min_i64(c, s->M, LLVMBuildMul(c->B, b1, cg_i64(c, mr), ""));
	p->bs->ar0 = r0;
	cg_loop q = {0};
	kslice each;
	if (!ks) {
		q = cg_loop_begin(c, cg_i64(c, 0), p->nk, 1);
		each = slice_of(c, s, q.i, p->nk, p->kc);
		ks = &each;
	}
	p->bs->k0 = ks->k0;
	pack_a_bf16(c, s, p->bs, r0, r1, ks->k0, ks->k1);
	bf16_cols_each(c, s, p->bc, ks, p->bs, b0, b1, mr);
	if (ks == &each)
		cg_loop_end(c, &q);
	cg_loop_end(c, &t);
}

/* Whole-width B panels up to this many bytes on the thread's stack: B's
 * slice is packed once for all of the thread's tasks (a weight gradient's
 * 13 row groups of a 784-wide input each packed all of dy before) */
#define BF16_WHOLE_BYTES (192 * 1024)

static void gemm_bf16(cg_ctx *c, const gemm_spec *s)
{
	NNC_ASSERT(s->sak == 1 || s->sam == 1);
	int64_t nvec = (s->N + CG_VW - 1) / CG_VW;
	bf16_cols bc = {0};
	bc.nv = nvec >= 3 ? 3 : (int)nvec; /* the AVX-512 tile: avx512bf16 implies it */
	int mr = bc.nv == 1 ? 16 : 8;
	while (mr > 1 && s->mmax < mr)
		mr /= 2;
	int64_t jw = (int64_t)bc.nv * CG_VW;
	bc.jw = jw;
	bc.nj = (s->N + jw - 1) / jw;
	int64_t last_cols = s->N - (bc.nj - 1) * jw;
	bc.last_nv = (int)((last_cols + CG_VW - 1) / CG_VW);
	bc.last_tail = (int)(last_cols - (int64_t)(bc.last_nv - 1) * CG_VW);
	/* the slice: even, at most kp pairs (cut evenly); one slice for K <= 1.5 kp pairs */
	bool kconst = LLVMIsAConstantInt(s->K);
	int64_t K = kconst ? LLVMConstIntGetSExtValue(s->K) : s->kmax;
	int64_t kp = bf16_pairs_per_slice(c, jw);
	int64_t kc = K > 3 * kp && !s->addto ? 2 * ((even_slices(K, 2 * kp) + 1) / 2) : K > 0 ? K + (K & 1) : 2;
	int64_t kpc = kc / 2; /* pairs in a slice */
	int64_t group = GEMM_ROWS_PER_TASK / mr > 1 ? GEMM_ROWS_PER_TASK / mr : 1;
	int64_t G = group * mr; /* rows of a task */
	bsrc bs = {.ld = jw};
	if (s->sak == 1) { /* apack[m][p], rows of kpc pairs rounded up to whole vectors */
		bs.am = (kpc + CG_VW - 1) / CG_VW * CG_VW;
		bs.ak = 1;
	} else { /* apack[p][m] */
		bs.am = 1;
		bs.ak = (G + CG_VW - 1) / CG_VW * CG_VW;
	}
	int64_t asize = s->sak == 1 ? G * bs.am : kpc * bs.ak;
	bs.apack = cg_alloca(c, LLVMArrayType(c->i32, (unsigned)asize), "apack");
	bc.pstride = kpc * jw;
	bool whole = bc.nj > 1 && bc.nj * bc.pstride * 4 <= BF16_WHOLE_BYTES;
	bc.panel = cg_alloca(c, LLVMArrayType(c->i32, (unsigned)(whole ? bc.nj * bc.pstride : bc.pstride)), "bpanel");
	if (!whole)
		bc.pstride = 0;

	LLVMValueRef nk = slice_count(c, s, kc);
	bf16_plan pl = {&bc, &bs, mr, group, kc, nk, NULL};
	if (!whole) { /* for each task, every slice, B packed per column block */
		each_call_chunk(c, s, bf16_tasks, &pl);
		return;
	}
	/* whole: for each slice, B packed, then every task (of every chunk in the call) */
	bc.packed = true;
	cg_loop outer = cg_loop_begin(c, cg_i64(c, 0), nk, 1);
	kslice ks = slice_of(c, s, outer.i, nk, kc);
	bf16_cols_each(c, s, &bc, &ks, &bs, NULL, NULL, mr); /* packs only */
	pl.ks = &ks;
	each_call_chunk(c, s, bf16_tasks, &pl);
	cg_loop_end(c, &outer);
}

/* ---- cache sizes ---- */

/* "32K", "2M", "65536": bytes, or -1 */
static int64_t parse_bytes(const char *p, const char **end)
{
	char *e;
	long long v = strtoll(p, &e, 10);
	if (e == p || v <= 0)
		return -1;
	if (*e == 'K' || *e == 'k')
		v *= 1024, e++;
	else if (*e == 'M' || *e == 'm')
		v *= 1024 * 1024, e++;
	*end = e;
	return v;
}

/* The size of the host's data or unified cache of `level`, per core, from
 * sysfs (cpu0's view; both Intel's CPUID leaf 4 and AMD's 0x8000001D end up
 * there), or -1. */
static int64_t sysfs_cache(int level)
{
	for (int i = 0; i < 8; i++) {
		char path[96], buf[32];
		int lv = -1;
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
		FILE *f = fopen(path, "r");
		if (!f)
			return -1;
		if (fscanf(f, "%d", &lv) != 1)
			lv = -1;
		fclose(f);
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
		f = fopen(path, "r");
		if (!f)
			continue;
		bool data = fgets(buf, sizeof buf, f) && (!strncmp(buf, "Data", 4) || !strncmp(buf, "Unified", 7));
		fclose(f);
		if (lv != level || !data)
			continue;
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
		f = fopen(path, "r");
		if (!f)
			return -1;
		const char *e;
		int64_t v = fgets(buf, sizeof buf, f) ? parse_bytes(buf, &e) : -1;
		fclose(f);
		return v;
	}
	return -1;
}

void cg_cache_sizes(const cg_options *opt, int64_t *l1, int64_t *l2)
{
	*l1 = 32 * 1024;
	*l2 = 512 * 1024;
	const char *t = opt->target ? opt->target->cpu : NULL;
	if (!t || !strcmp(t, "host") || !strcmp(t, "native")) {
		int64_t a = sysfs_cache(1), b = sysfs_cache(2);
		if (a >= 4096)
			*l1 = a;
		if (b >= *l1)
			*l2 = b;
	}
	const char *env = getenv("NNC_CACHE");
	if (env && *env) {
		const char *e, *e2;
		int64_t a = parse_bytes(env, &e), b = a > 0 && *e == ',' ? parse_bytes(e + 1, &e2) : -1;
		if (a >= 1024 && b >= a && !*e2) {
			*l1 = a;
			*l2 = b;
		} else {
			fprintf(stderr, "nnc: warning: NNC_CACHE='%s' is not L1,L2 (e.g. 32K,512K); using %lldK,%lldK\n",
				env, (long long)(*l1 / 1024), (long long)(*l2 / 1024));
		}
	}
	if (opt->l1_bytes > 0)
		*l1 = opt->l1_bytes;
	if (opt->l2_bytes > 0)
		*l2 = opt->l2_bytes;
}

bool cg_multi_chunk(const cg_ctx *c, const ir_node *n)
{
	if ((n->op != IR_DENSE && n->op != IR_DENSE_BWD_X) || ir_rows(n) != 1 || c->g->chunks < 2 || c->g->nodes[n->in[0]].layout != LAYOUT_NC)
		return false;
	const ir_node *w = &c->g->nodes[n->in[1]];
	return w->size >= GEMM_MULTI_MIN;
}

/* y[n, o] = act(x[n, i] W[i, o] + b[o]): what depends on the chunk */
static void dense_chunk(cg_ctx *c, ir_node *n, gemm_spec *s)
{
	ir_node *x = operand(c, n, 0);
	int64_t R = ir_rows(n);
	s->a = cg_tensor(c, x);
	s->c = cg_tensor(c, n);
	s->M = batch_rows(c, R);
	s->out2 = cg_act_dst(c, n);
}

void lower_dense(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *w = operand(c, n, 1);
	gemm_spec s = {0};
	dense_chunk(c, n, &s);
	s.b = cg_tensor(c, w);
	int64_t R = ir_rows(n); /* a per-position dense: n R rows of x->size / R */
	s.mmax = c->g->cbatch * R;
	s.K = cg_i64(c, x->size / R);
	s.N = n->size / R;
	if (x->layout == LAYOUT_CN) { /* x[i][s]: A(m = s, k = i) */
		s.sam = 1;
		s.sak = c->g->bpad;
	} else {
		s.sam = x->size / R;
		s.sak = 1;
	}
	s.ldb = s.N;
	s.ldc = s.N;
	s.bias = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL;
	s.act = n->act;
	s.opt = n->fa[IR_FA_ACT];
	if (cg_multi_chunk(c, n)) {
		s.respec = dense_chunk;
		s.node = n;
	}
	gemm(c, &s);
}

/* dx[n, i] = (dy[n, o] Wt[o, i]) * act'(y[n, i]): what depends on the chunk */
static void dense_bx_chunk(cg_ctx *c, ir_node *n, gemm_spec *s)
{
	ir_node *dy = operand(c, n, 0);
	s->a = cg_tensor(c, dy);
	s->c = cg_tensor(c, n);
	s->M = batch_rows(c, ir_rows(n));
	if (n->dact)
		s->y = cg_tensor(c, operand(c, n, 2));
}

void lower_dense_bx(cg_ctx *c, ir_node *n)
{
	ir_node *dy = operand(c, n, 0), *wt = operand(c, n, 1);
	gemm_spec s = {0};
	dense_bx_chunk(c, n, &s);
	s.b = cg_tensor(c, wt);
	int64_t R = ir_rows(n);
	s.mmax = c->g->cbatch * R;
	s.K = cg_i64(c, dy->size / R);
	s.N = n->size / R;
	s.sam = dy->size / R;
	s.sak = 1;
	s.ldb = s.N;
	s.ldc = s.N;
	if (n->dact) {
		s.dact = n->dact;
		s.opt = n->fa[IR_FA_ACT];
		s.ldy = s.N;
	}
	if (cg_multi_chunk(c, n)) {
		s.respec = dense_bx_chunk;
		s.node = n;
	}
	gemm(c, &s);
}

/* dxT[i][s] = act'(y) * sum_o W[i][o] dyT[o][s], for x batch-innermost.
 * All bpad sample columns are computed (the ones past n are never read). */
void lower_dense_bxt(cg_ctx *c, ir_node *n)
{
	ir_node *w = operand(c, n, 0), *dyt = operand(c, n, 1);
	int64_t bp = c->g->bpad;
	gemm_spec s = {0};
	s.a = cg_tensor(c, w);
	s.b = cg_tensor(c, dyt);
	s.c = cg_tensor(c, n);
	s.M = cg_i64(c, w->dims[0]);
	s.mmax = w->dims[0];
	s.K = cg_i64(c, w->dims[1]);
	s.N = bp;
	s.sam = w->dims[1];
	s.sak = 1;
	s.ldb = bp;
	s.ldc = bp;
	if (n->dact) {
		s.dact = n->dact;
		s.opt = n->fa[IR_FA_ACT];
		s.y = cg_tensor(c, operand(c, n, 2));
		s.ldy = bp;
	}
	gemm(c, &s);
}

/* dW[i, o] = sum_n x[n, i] dy[n, o]: A(m=i, k=n) = x[n*I + i] */
static gemm_spec dense_bw_spec(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *dy = operand(c, n, 1);
	gemm_spec s = {0};
	s.a = cg_tensor(c, x);
	s.b = cg_tensor(c, dy);
	s.c = cg_tensor(c, n);
	int64_t R = ir_rows(n);
	s.M = cg_i64(c, x->size / R);
	s.mmax = x->size / R;
	s.K = batch_rows(c, R);
	s.kmax = c->g->cbatch * R;
	s.N = dy->size / R;
	if (x->layout == LAYOUT_CN) { /* x[i][s]: A(m = i, k = s) */
		s.sam = c->g->bpad;
		s.sak = 1;
	} else {
		s.sam = 1;
		s.sak = x->size / R;
	}
	s.ldb = s.N;
	s.ldc = s.N;
	return s;
}

void lower_dense_bw(cg_ctx *c, ir_node *n)
{
	gemm_spec s = dense_bw_spec(c, n);
	gemm(c, &s);
}

void cg_dense_bw_rows(cg_ctx *c, ir_node *n, LLVMValueRef r0, LLVMValueRef r1, int64_t rmax, LLVMValueRef dst,
		      LLVMValueRef addto)
{
	gemm_spec s = dense_bw_spec(c, n);
	if (dst) {
		NNC_ASSERT(c->g->cbatch * ir_rows(n) <= CG_ADDTO_KMAX);
		s.c = dst;
		s.addto = addto;
	}
	s.a = cg_gep(c, s.a, LLVMBuildMul(c->B, r0, cg_i64(c, s.sam), ""));
	s.c = cg_gep(c, s.c, LLVMBuildMul(c->B, r0, cg_i64(c, s.ldc), ""));
	s.M = LLVMBuildSub(c->B, r1, r0, "");
	s.mmax = rmax < s.mmax ? rmax : s.mmax;
	LLVMValueRef tid = c->tid, nth = c->nth; /* every tile of the rows: this thread's */
	c->tid = cg_i32(c, 0);
	c->nth = cg_i32(c, 1);
	gemm(c, &s);
	c->tid = tid;
	c->nth = nth;
}

/* db[o] = sum_n dy[n, o], each column's rows in order.  A task is a group
 * of BIAS_GROUP vectors of o (256 contiguous bytes of each row), so one pass
 * over dy serves 64 columns: a per-position gradient ([n T, O], megabytes)
 * was read once per vector, from L3. */
#define BIAS_GROUP 4

void lower_bias_grad(cg_ctx *c, ir_node *n)
{
	ir_node *dy = operand(c, n, 0);
	int64_t O = n->size, nvec = (O + CG_VW - 1) / CG_VW, ng = (nvec + BIAS_GROUP - 1) / BIAS_GROUP;
	LLVMValueRef src = cg_tensor(c, dy), dst = cg_tensor(c, n);
	LLVMValueRef rows = batch_rows(c, ir_rows(n)); /* [n R][O] */
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, ng), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	{
		LLVMValueRef j = LLVMBuildMul(c->B, t.i, cg_i64(c, BIAS_GROUP * CG_VW), "");
		LLVMValueRef acc[BIAS_GROUP], mask[BIAS_GROUP];
		int gv = nvec < BIAS_GROUP ? (int)nvec : BIAS_GROUP;
		for (int v = 0; v < gv; v++) {
			LLVMValueRef jv = LLVMBuildAdd(c->B, j, cg_i64(c, v * CG_VW), "");
			/* every group full: plain loads; else lanes past O (a whole vector past it: none) */
			mask[v] = O % (BIAS_GROUP * CG_VW) ? cg_mask_dyn(c, LLVMBuildSub(c->B, cg_i64(c, O), jv, "")) : NULL;
			acc[v] = cg_alloca(c, c->v16, "acc");
			cg_store(c, LLVMConstNull(c->v16), acc[v]);
		}
		cg_loop r = cg_loop_begin(c, cg_i64(c, 0), rows, 1);
		LLVMValueRef off = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, r.i, cg_i64(c, O), ""), j, "");
		for (int v = 0; v < gv; v++) {
			LLVMValueRef p = cg_gep(c, src, LLVMBuildAdd(c->B, off, cg_i64(c, v * CG_VW), ""));
			cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->v16, acc[v]), cg_vload(c, p, mask[v]), ""), acc[v]);
		}
		cg_loop_end(c, &r);
		for (int v = 0; v < gv; v++)
			cg_vstore(c, cg_load(c, c->v16, acc[v]),
				  cg_gep(c, dst, LLVMBuildAdd(c->B, j, cg_i64(c, v * CG_VW), "")), mask[v]);
	}
	cg_loop_end(c, &t);
}

/* shufflevector of two 8-float vectors by a constant mask */
static LLVMValueRef shuf8(cg_ctx *c, LLVMValueRef a, LLVMValueRef b, const int *idx)
{
	LLVMValueRef m[8];
	for (int q = 0; q < 8; q++)
		m[q] = LLVMConstInt(c->i32, (unsigned long long)idx[q], 0);
	return LLVMBuildShuffleVector(c->B, a, b, LLVMConstVector(m, 8), "");
}

/* The 8 x 8 block of floats at src (rows ls apart) transposed into dst
 * (rows ld apart), in registers: rows interleaved in pairs, then pairs of
 * pairs, then halves (unpcklps/unpckhps, shufps, vperm2f128 on AVX2). */
static void transpose8(cg_ctx *c, LLVMValueRef src, LLVMValueRef ls, LLVMValueRef dst, LLVMValueRef ld)
{
	LLVMTypeRef v8 = LLVMVectorType(c->f32, 8);
	LLVMValueRef r[8], t[8], u[8];
	for (int k = 0; k < 8; k++) {
		r[k] = LLVMBuildLoad2(c->B, v8, cg_gep(c, src, LLVMBuildMul(c->B, ls, cg_i64(c, k), "")), "");
		LLVMSetAlignment(r[k], 4);
	}
	static const int lo[8] = {0, 8, 1, 9, 4, 12, 5, 13}, hi[8] = {2, 10, 3, 11, 6, 14, 7, 15};
	static const int p44[8] = {0, 1, 8, 9, 4, 5, 12, 13}, pee[8] = {2, 3, 10, 11, 6, 7, 14, 15};
	static const int h20[8] = {0, 1, 2, 3, 8, 9, 10, 11}, h31[8] = {4, 5, 6, 7, 12, 13, 14, 15};
	for (int k = 0; k < 8; k += 2) { /* t[k]: rows k, k+1 interleaved, low and high pairs */
		t[k] = shuf8(c, r[k], r[k + 1], lo);
		t[k + 1] = shuf8(c, r[k], r[k + 1], hi);
	}
	for (int k = 0; k < 8; k += 4) { /* u: four rows' elements 4 by 4 */
		u[k] = shuf8(c, t[k], t[k + 2], p44);
		u[k + 1] = shuf8(c, t[k], t[k + 2], pee);
		u[k + 2] = shuf8(c, t[k + 1], t[k + 3], p44);
		u[k + 3] = shuf8(c, t[k + 1], t[k + 3], pee);
	}
	for (int k = 0; k < 4; k++) { /* columns k and k + 4: halves of u[k] and u[k + 4] */
		LLVMValueRef a = shuf8(c, u[k], u[k + 4], h20), b = shuf8(c, u[k], u[k + 4], h31);
		LLVMValueRef sa = LLVMBuildStore(c->B, a, cg_gep(c, dst, LLVMBuildMul(c->B, ld, cg_i64(c, k), "")));
		LLVMValueRef sb = LLVMBuildStore(c->B, b, cg_gep(c, dst, LLVMBuildMul(c->B, ld, cg_i64(c, k + 4), "")));
		LLVMSetAlignment(sa, 4);
		LLVMSetAlignment(sb, 4);
	}
}

/* wt[o, i] = w[i, o], in blocks of 16 x 16: a block reads 16 cache lines
 * of w and writes 16 of wt, each whole, where a row of wt at a time read
 * one float per line of w (a 1024 x 1024 weight: 4 KiB apart, every line
 * fetched 16 times; the transposition took as long as the product it
 * feeds).  A whole block is four 8 x 8 transpositions in registers
 * (transpose8; element by element it cost 2.7 ns a float, 17 % of a
 * 1024 x 1024 layer's step), a ragged one at the edges goes element by
 * element.  Tasks are blocks of 16 rows of wt. */
void lower_transpose(cg_ctx *c, ir_node *n)
{
	ir_node *w = operand(c, n, 0);
	int64_t I = w->dims[0], O = w->dims[1], T = 16;
	LLVMValueRef src = cg_tensor(c, w), dst = cg_tensor(c, n);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, (O + T - 1) / T), &lo, &hi);
	cg_loop ob = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef o0 = LLVMBuildMul(c->B, ob.i, cg_i64(c, T), "");
	LLVMValueRef o1 = cg_min_i64(c, cg_i64(c, O), LLVMBuildAdd(c->B, o0, cg_i64(c, T), ""));
	cg_loop ib = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, (I + T - 1) / T), 1);
	LLVMValueRef i0 = LLVMBuildMul(c->B, ib.i, cg_i64(c, T), "");
	LLVMValueRef i1 = cg_min_i64(c, cg_i64(c, I), LLVMBuildAdd(c->B, i0, cg_i64(c, T), ""));
	LLVMValueRef whole = LLVMBuildAnd(c->B, LLVMBuildICmp(c->B, LLVMIntEQ, LLVMBuildSub(c->B, o1, o0, ""), cg_i64(c, T), ""),
					  LLVMBuildICmp(c->B, LLVMIntEQ, LLVMBuildSub(c->B, i1, i0, ""), cg_i64(c, T), ""), "");
	cg_if f = cg_if_begin(c, whole);
	for (int a = 0; a < T; a += 8)
		for (int b = 0; b < T; b += 8) { /* w[i0 + a.., o0 + b..] -> wt[o0 + b.., i0 + a..] */
			LLVMValueRef ia = LLVMBuildAdd(c->B, i0, cg_i64(c, a), ""), ob8 = LLVMBuildAdd(c->B, o0, cg_i64(c, b), "");
			transpose8(c, cg_gep(c, src, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, ia, cg_i64(c, O), ""), ob8, "")), cg_i64(c, O),
				   cg_gep(c, dst, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, ob8, cg_i64(c, I), ""), ia, "")), cg_i64(c, I));
		}
	cg_if_else(c, &f);
	cg_loop o = cg_loop_begin(c, o0, o1, 1);
	cg_loop i = cg_loop_begin(c, i0, i1, 1);
	LLVMValueRef v = cg_load(c, c->f32, cg_gep(c, src, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, i.i, cg_i64(c, O), ""), o.i, "")));
	cg_store(c, v, cg_gep(c, dst, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, o.i, cg_i64(c, I), ""), i.i, "")));
	cg_loop_end(c, &i);
	cg_loop_end(c, &o);
	cg_if_end(c, &f);
	cg_loop_end(c, &ib);
	cg_loop_end(c, &ob);
}

/* ---- element-wise ops over the flat tensor, 16 lanes at a time ---- */

static LLVMValueRef eltwise_value(cg_ctx *c, ir_node *n, LLVMValueRef *x)
{
	switch (n->op) {
	case IR_ADD: return LLVMBuildFAdd(c->B, x[0], x[1], "");
	case IR_SUB: return LLVMBuildFSub(c->B, x[0], x[1], "");
	case IR_MUL: return LLVMBuildFMul(c->B, x[0], x[1], "");
	case IR_NEG: return LLVMBuildFNeg(c->B, x[0], "");
	case IR_COPY: return x[0];
	case IR_AFFINE:
		return LLVMBuildFAdd(c->B, LLVMBuildFMul(c->B, x[0], cg_vf32(c, n->fa[0]), ""), cg_vf32(c, n->fa[1]), "");
	default: break;
	}
	ir_act a = ir_op_act(n->op); /* an activation of acts.def, or its derivative */
	NNC_ASSERT(a != ACT_NONE);
	if (ir_op_is_act_grad(n->op))
		return cg_dact(c, a, n->fa[IR_FA_ACT], x[0], x[1]);
	return cg_act(c, a, n->fa[IR_FA_ACT], x[0]);
}

#define ELT_CHUNK 4096

void lower_eltwise(cg_ctx *c, ir_node *n)
{
	/* batch-innermost tensors are processed whole (bpad columns) */
	LLVMValueRef total = n->batched && n->layout == LAYOUT_CN ? cg_i64(c, n->size * c->g->bpad)
								   : LLVMBuildMul(c->B, cg_rows(c, n), cg_i64(c, n->size), "");
	LLVMValueRef src[IR_MAX_IN], dst = cg_tensor(c, n);
	for (int k = 0; k < n->nin; k++)
		src[k] = cg_tensor(c, operand(c, n, k));
	LLVMValueRef ntasks = LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, total, cg_i64(c, ELT_CHUNK - 1), ""),
					    cg_i64(c, ELT_CHUNK), "");
	LLVMValueRef lo, hi;
	cg_partition(c, ntasks, &lo, &hi);
	LLVMValueRef start = LLVMBuildMul(c->B, lo, cg_i64(c, ELT_CHUNK), "");
	LLVMValueRef end = cg_min_i64(c, total, LLVMBuildMul(c->B, hi, cg_i64(c, ELT_CHUNK), ""));
	cg_loop i = cg_loop_begin(c, start, end, CG_VW);
	{
		LLVMValueRef rem = LLVMBuildSub(c->B, end, i.i, "");
		LLVMValueRef full = LLVMBuildICmp(c->B, LLVMIntSGE, rem, cg_i64(c, CG_VW), "");
		LLVMValueRef x[IR_MAX_IN];
		cg_if f = cg_if_begin(c, full);
		for (int k = 0; k < n->nin; k++)
			x[k] = cg_vload(c, cg_gep(c, src[k], i.i), NULL);
		cg_vstore(c, eltwise_value(c, n, x), cg_gep(c, dst, i.i), NULL);
		cg_if_else(c, &f);
		LLVMValueRef mask = cg_mask_dyn(c, rem);
		for (int k = 0; k < n->nin; k++)
			x[k] = cg_vload(c, cg_gep(c, src[k], i.i), mask);
		cg_vstore(c, eltwise_value(c, n, x), cg_gep(c, dst, i.i), mask);
		cg_if_end(c, &f);
	}
	cg_loop_end(c, &i);
}

/* ---- row-wise ops: one sample's values at a time (scalar code; rows are
 * short: logits, predictions) ---- */

static LLVMValueRef fload(cg_ctx *c, LLVMValueRef base, LLVMValueRef idx) { return cg_load(c, c->f32, cg_gep(c, base, idx)); }
static void fstore(cg_ctx *c, LLVMValueRef v, LLVMValueRef base, LLVMValueRef idx) { cg_store(c, v, cg_gep(c, base, idx)); }
static LLVMValueRef fadd(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(c->B, a, b, ""); }
static LLVMValueRef fsub(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(c->B, a, b, ""); }
static LLVMValueRef fmul(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(c->B, a, b, ""); }
static LLVMValueRef fdiv(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(c->B, a, b, ""); }

/* max and (first) argmax of row[0..k): cg.h */
void cg_row_max(cg_ctx *c, LLVMValueRef row, int64_t k, LLVMValueRef *mx, LLVMValueRef *am)
{
	LLVMValueRef vmax = cg_alloca(c, c->f32, "max"), varg = cg_alloca(c, c->i64, "argmax");
	cg_store(c, fload(c, row, cg_i64(c, 0)), vmax);
	cg_store(c, cg_i64(c, 0), varg);
	cg_loop j = cg_loop_begin(c, cg_i64(c, 1), cg_i64(c, k), 1);
	LLVMValueRef v = fload(c, row, j.i), m = cg_load(c, c->f32, vmax);
	LLVMValueRef gt = LLVMBuildFCmp(c->B, LLVMRealOGT, v, m, "");
	cg_store(c, LLVMBuildSelect(c->B, gt, v, m, ""), vmax);
	cg_store(c, LLVMBuildSelect(c->B, gt, j.i, cg_load(c, c->i64, varg), ""), varg);
	cg_loop_end(c, &j);
	*mx = cg_load(c, c->f32, vmax);
	if (am)
		*am = cg_load(c, c->i64, varg);
}

/* sum_j exp(row[j] - mx), j in order: cg.h */
LLVMValueRef cg_row_sumexp(cg_ctx *c, LLVMValueRef row, int64_t k, LLVMValueRef mx)
{
	LLVMValueRef acc = cg_alloca(c, c->f32, "sum");
	cg_store(c, cg_f32(c, 0), acc);
	cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, k), 1);
	cg_store(c, fadd(c, cg_load(c, c->f32, acc), cgm_exp(c->B, fsub(c, fload(c, row, j.i), mx))), acc);
	cg_loop_end(c, &j);
	return cg_load(c, c->f32, acc);
}

static LLVMValueRef label_class(cg_ctx *c, LLVMValueRef y, LLVMValueRef r)
{
	return LLVMBuildSExt(c->B, cg_load(c, c->i32, cg_gep_i32(c, y, r)), c->i64, "");
}

static LLVMValueRef clamp01(cg_ctx *c, LLVMValueRef p)
{
	LLVMValueRef lo = cg_f32(c, 1e-7), hi = cg_f32(c, 1 - 1e-7);
	p = LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOLT, p, lo, ""), lo, p, "");
	return LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOGT, p, hi, ""), hi, p, "");
}

/* Losses: thread 0 sums per-sample losses in sample order (deterministic),
 * metrics[0] += loss, metrics[1] += correct. */
static void lower_loss(cg_ctx *c, ir_node *n)
{
	ir_node *pn = operand(c, n, 0);
	int64_t k = pn->size;
	cg_if only0 = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, c->tid, cg_i32(c, 0), ""));
	LLVMValueRef p = cg_tensor(c, pn), y = cg_tensor(c, operand(c, n, 1)), rows = cg_batch_n(c);
	LLVMValueRef loss = cg_alloca(c, c->f64, "loss"), correct = cg_alloca(c, c->f64, "correct");
	cg_store(c, LLVMConstReal(c->f64, 0), loss);
	cg_store(c, LLVMConstReal(c->f64, 0), correct);
	cg_loop r = cg_loop_begin(c, cg_i64(c, 0), rows, 1);
	{
		LLVMValueRef base = LLVMBuildMul(c->B, r.i, cg_i64(c, k), "");
		LLVMValueRef row = cg_gep(c, p, base);
		LLVMValueRef l = NULL, ok = NULL;
		if (n->op == IR_XENT) {
			LLVMValueRef mx, am;
			cg_row_max(c, row, k, &mx, &am);
			LLVMValueRef cls = label_class(c, y, r.i);
			LLVMValueRef lse = fadd(c, cgm_log(c->B, cg_row_sumexp(c, row, k, mx)), mx);
			double eps = n->fa[0];
			if (eps == 0) {
				l = fsub(c, lse, fload(c, row, cls));
			} else { /* against (1-eps) onehot + eps/K: lse - (1-eps) z[y] - eps mean(z) */
				LLVMValueRef s = cg_alloca(c, c->f32, "zsum");
				cg_store(c, cg_f32(c, 0), s);
				cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, k), 1);
				cg_store(c, fadd(c, cg_load(c, c->f32, s), fload(c, row, j.i)), s);
				cg_loop_end(c, &j);
				LLVMValueRef zy = fmul(c, cg_f32(c, 1 - eps), fload(c, row, cls));
				LLVMValueRef zm = fmul(c, cg_f32(c, eps / (double)k), cg_load(c, c->f32, s));
				l = fsub(c, fsub(c, lse, zy), zm);
			}
			ok = LLVMBuildUIToFP(c->B, LLVMBuildICmp(c->B, LLVMIntEQ, am, cls, ""), c->f64, "");
		} else {
			LLVMValueRef yrow = cg_gep(c, y, base);
			LLVMValueRef s = cg_alloca(c, c->f32, "s"), hits = cg_alloca(c, c->f32, "hits");
			cg_store(c, cg_f32(c, 0), s);
			cg_store(c, cg_f32(c, 0), hits);
			cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, k), 1);
			LLVMValueRef pv = fload(c, row, j.i), yv = fload(c, yrow, j.i), e;
			if (n->op == IR_MSE) {
				LLVMValueRef d = fsub(c, pv, yv);
				e = fmul(c, d, d);
			} else {
				LLVMValueRef pc = clamp01(c, pv);
				LLVMValueRef a = fmul(c, yv, cgm_log(c->B, pc));
				LLVMValueRef b = fmul(c, fsub(c, cg_f32(c, 1), yv), cgm_log(c->B, fsub(c, cg_f32(c, 1), pc)));
				e = LLVMBuildFNeg(c->B, fadd(c, a, b), "");
				LLVMValueRef hit = LLVMBuildICmp(c->B, LLVMIntEQ,
								 LLVMBuildFCmp(c->B, LLVMRealOGT, pv, cg_f32(c, 0.5), ""),
								 LLVMBuildFCmp(c->B, LLVMRealOGT, yv, cg_f32(c, 0.5), ""), "");
				cg_store(c, fadd(c, cg_load(c, c->f32, hits), LLVMBuildUIToFP(c->B, hit, c->f32, "")), hits);
			}
			cg_store(c, fadd(c, cg_load(c, c->f32, s), e), s);
			cg_loop_end(c, &j);
			l = fdiv(c, cg_load(c, c->f32, s), cg_f32(c, (double)k));
			ok = LLVMBuildFPExt(c->B, fdiv(c, cg_load(c, c->f32, hits), cg_f32(c, (double)k)), c->f64, "");
		}
		cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, loss), LLVMBuildFPExt(c->B, l, c->f64, ""), ""), loss);
		cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, correct), ok, ""), correct);
	}
	cg_loop_end(c, &r);
	LLVMValueRef m = cg_metrics(c);
	LLVMValueRef one = cg_i64(c, 1);
	cg_store(c, cg_load(c, c->f64, loss), m);
	cg_store(c, cg_load(c, c->f64, correct), LLVMBuildInBoundsGEP2(c->B, c->f64, m, &one, 1, ""));
	cg_if_end(c, &only0);
}

/* softmax of a row of at most 16 values (the lanes of `mask`), as one
 * vector; the sum of the exponentials is a tree of adds (the scalar loop of
 * longer rows adds in order), the same tree every time. */
static LLVMValueRef row_softmax_vec(cg_ctx *c, LLVMValueRef row, LLVMValueRef mask)
{
	LLVMTypeRef over[2] = {c->v16, c->ptr};
	LLVMValueRef la[4] = {row, cg_i32(c, 4), mask, cg_vf32(c, -__builtin_inff())};
	LLVMValueRef v = cg_call_intr(c, "llvm.masked.load", over, 2, la, 4);
	LLVMTypeRef vt = c->v16;
	LLVMValueRef mx = cg_call_intr(c, "llvm.vector.reduce.fmax", &vt, 1, &v, 1);
	LLVMValueRef e = cgm_exp(c->B, LLVMBuildFSub(c->B, v, cg_splat(c, mx), ""));
	e = LLVMBuildSelect(c->B, mask, e, LLVMConstNull(c->v16), "");
	LLVMValueRef ra[2] = {cg_f32(c, 0), e};
	LLVMValueRef sum = cg_call_intr(c, "llvm.vector.reduce.fadd", &vt, 1, ra, 2);
	LLVMSetFastMathFlags(sum, LLVMFastMathAllowReassoc); /* a tree of adds: fixed, so deterministic */
	return LLVMBuildFMul(c->B, e, cg_splat(c, fdiv(c, cg_f32(c, 1), sum)), "");
}

/* One row r of SOFTMAX or XENT_GRAD with k <= 16 values. */
static void softmax_row_vec(cg_ctx *c, ir_node *n, LLVMValueRef pa, LLVMValueRef pb, LLVMValueRef dst,
			    LLVMValueRef nf, LLVMValueRef r, int64_t k)
{
	LLVMValueRef base = LLVMBuildMul(c->B, r, cg_i64(c, k), "");
	LLVMValueRef mask = cg_mask(c, (int)k);
	LLVMValueRef v = row_softmax_vec(c, cg_gep(c, pa, base), mask);
	if (n->op == IR_XENT_GRAD) {
		LLVMValueRef cls = LLVMBuildTrunc(c->B, label_class(c, pb, r), c->i32, "");
		LLVMValueRef lane = LLVMBuildICmp(c->B, LLVMIntEQ, cg_iota(c, 32), cg_splat(c, cls), "");
		LLVMValueRef hot = LLVMBuildUIToFP(c->B, lane, c->v16, "");
		double eps = n->fa[0];
		if (eps != 0) /* the smoothed target (1-eps) onehot + eps/K */
			hot = cg_fma(c, hot, cg_vf32(c, 1 - eps), cg_vf32(c, eps / (double)k));
		v = LLVMBuildFDiv(c->B, LLVMBuildFSub(c->B, v, hot, ""), cg_splat(c, nf), "");
	}
	cg_vstore(c, v, cg_gep(c, dst, base), mask);
}

/* Rows [lo, hi), four at a time: each row is a chain of dependent steps
 * (max, exponentials, sum, scale), four chains keep the core busy. */
static void softmax_rows_vec(cg_ctx *c, ir_node *n, LLVMValueRef pa, LLVMValueRef pb, LLVMValueRef dst,
			     LLVMValueRef nf, LLVMValueRef lo, LLVMValueRef hi, int64_t k)
{
	LLVMValueRef quads = LLVMBuildSDiv(c->B, LLVMBuildSub(c->B, hi, lo, ""), cg_i64(c, 4), "");
	LLVMValueRef mid = LLVMBuildAdd(c->B, lo, LLVMBuildMul(c->B, quads, cg_i64(c, 4), ""), "");
	cg_loop r = cg_loop_begin(c, lo, mid, 4);
	for (int u = 0; u < 4; u++)
		softmax_row_vec(c, n, pa, pb, dst, nf, LLVMBuildAdd(c->B, r.i, cg_i64(c, u), ""), k);
	cg_loop_end(c, &r);
	cg_loop r1 = cg_loop_begin(c, mid, hi, 1);
	softmax_row_vec(c, n, pa, pb, dst, nf, r1.i, k);
	cg_loop_end(c, &r1);
}

/* Per-row ops split across threads by rows. */
static void lower_rows(cg_ctx *c, ir_node *n)
{
	ir_node *a = operand(c, n, 0);
	int64_t k = a->size;
	LLVMValueRef rows = cg_batch_n(c);
	LLVMValueRef pa = cg_tensor(c, a), pb = n->nin > 1 ? cg_tensor(c, operand(c, n, 1)) : NULL;
	LLVMValueRef dst = cg_tensor(c, n);
	LLVMValueRef nf = LLVMBuildSIToFP(c->B, cg_batch_total(c), c->f32, ""); /* means are over the step */
	LLVMValueRef lo, hi;
	cg_partition(c, rows, &lo, &hi);
	if ((n->op == IR_SOFTMAX || n->op == IR_XENT_GRAD) && k <= CG_VW) { /* a row is one vector */
		softmax_rows_vec(c, n, pa, pb, dst, nf, lo, hi, k);
		return;
	}
	cg_loop r = cg_loop_begin(c, lo, hi, 1);
	{
		LLVMValueRef base = LLVMBuildMul(c->B, r.i, cg_i64(c, k), "");
		LLVMValueRef row = cg_gep(c, pa, base), out = cg_gep(c, dst, base);
		LLVMValueRef brow = pb && n->op != IR_XENT_GRAD ? cg_gep(c, pb, base) : NULL;
		switch (n->op) {
		case IR_SOFTMAX:
		case IR_XENT_GRAD: {
			LLVMValueRef mx;
			cg_row_max(c, row, k, &mx, NULL);
			LLVMValueRef inv = fdiv(c, cg_f32(c, 1), cg_row_sumexp(c, row, k, mx));
			LLVMValueRef cls = n->op == IR_XENT_GRAD ? label_class(c, pb, r.i) : NULL;
			cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, k), 1);
			LLVMValueRef v = fmul(c, cgm_exp(c->B, fsub(c, fload(c, row, j.i), mx)), inv);
			if (cls) {
				LLVMValueRef hot = LLVMBuildUIToFP(c->B, LLVMBuildICmp(c->B, LLVMIntEQ, j.i, cls, ""), c->f32, "");
				if (n->fa[0] != 0) /* the smoothed target */
					hot = fadd(c, fmul(c, hot, cg_f32(c, 1 - n->fa[0])), cg_f32(c, n->fa[0] / (double)k));
				v = fdiv(c, fsub(c, v, hot), nf);
			}
			fstore(c, v, out, j.i);
			cg_loop_end(c, &j);
			break;
		}
		case IR_SOFTMAX_GRAD: {
			/* a = y, b = dy: dx = y (dy - sum(dy y)) */
			LLVMValueRef acc = cg_alloca(c, c->f32, "dot");
			cg_store(c, cg_f32(c, 0), acc);
			cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, k), 1);
			cg_store(c, fadd(c, cg_load(c, c->f32, acc), fmul(c, fload(c, row, j.i), fload(c, brow, j.i))), acc);
			cg_loop_end(c, &j);
			LLVMValueRef dot = cg_load(c, c->f32, acc);
			cg_loop j2 = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, k), 1);
			fstore(c, fmul(c, fload(c, row, j2.i), fsub(c, fload(c, brow, j2.i), dot)), out, j2.i);
			cg_loop_end(c, &j2);
			break;
		}
		case IR_MSE_GRAD:
		case IR_BCE_GRAD: {
			LLVMValueRef scale = fmul(c, nf, cg_f32(c, (double)k));
			cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, k), 1);
			LLVMValueRef p = fload(c, row, j.i), y = fload(c, brow, j.i), v;
			if (n->op == IR_MSE_GRAD) {
				v = fdiv(c, fmul(c, cg_f32(c, 2), fsub(c, p, y)), scale);
			} else if (n->ia[0]) {
				v = fdiv(c, fsub(c, p, y), scale); /* w.r.t. the sigmoid's input */
			} else {
				LLVMValueRef pc = clamp01(c, p);
				v = fdiv(c, fsub(c, pc, y), fmul(c, fmul(c, pc, fsub(c, cg_f32(c, 1), pc)), scale));
			}
			fstore(c, v, out, j.i);
			cg_loop_end(c, &j);
			break;
		}
		default:
			nnc_unreachable();
		}
	}
	cg_loop_end(c, &r);
}

void lower_rowwise(cg_ctx *c, ir_node *n)
{
	if (n->op == IR_XENT || n->op == IR_MSE || n->op == IR_BCE)
		lower_loss(c, n);
	else
		lower_rows(c, n);
}

/* s[i] += 1 in place, this thread's share of the elements (a state op of
 * the train step: it runs before the chunks, with the param ops) */
void lower_step_count(cg_ctx *c, ir_node *n)
{
	LLVMValueRef s = cg_tensor(c, n), lo, hi;
	cg_partition(c, cg_i64(c, n->size), &lo, &hi);
	cg_loop i = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef p = cg_gep(c, s, i.i);
	cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f32, p), cg_f32(c, 1), ""), p);
	cg_loop_end(c, &i);
}

/* out[s][e] = U(seed, first sample + s, e): a pure function of the global
 * sample index, so any chunking and thread count draw the same values */
void lower_random(cg_ctx *c, ir_node *n)
{
	NNC_ASSERT(n->batched && n->layout == LAYOUT_NC);
	LLVMValueRef dst = cg_tensor(c, n), seed = cg_arg(c, CG_ARGS_seed), first = cg_first_sample(c), lo, hi;
	cg_partition(c, cg_batch_n(c), &lo, &hi);
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef sample = LLVMBuildAdd(c->B, first, s.i, ""), row = LLVMBuildMul(c->B, s.i, cg_i64(c, n->size), "");
	cg_loop e = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, n->size), 1);
	cg_store(c, cg_random_uniform(c, seed, sample, e.i), cg_gep(c, dst, LLVMBuildAdd(c->B, row, e.i, "")));
	cg_loop_end(c, &e);
	cg_loop_end(c, &s);
}

/* ---- dropout, concat and its slices: values moved, some dropped ----
 *
 * Each moves `len` per-sample values of every sample from one tensor to
 * another (both in the same layout), from value src_off of each sample to
 * value dst_off, and with a mask keeps value v of sample s when U(seed, first sample + s,
 * (stream << 32) + v) >= p, scaled by 1 / (1 - p), and writes 0 for the
 * others.  The draw's element index is the value's place in its sample
 * (row-major in the per-sample shape) whatever the layout, so a dropout
 * on a sample-major tensor and on a batch-innermost one of the same
 * values keep the same ones; the stream (the dropout's ordinal, sema)
 * keeps two dropouts of one sample apart. */
typedef struct move_spec {
	LLVMValueRef src, dst;
	int64_t src_size, dst_size; /* per-sample values of the two tensors (NC row lengths) */
	int64_t src_off, dst_off, len;
	bool drop;                  /* masked (dropout in the train step) */
	double p;
	int64_t stream;
} move_spec;

/* 16 values of the move at src + si, dst + di (mask NULL: all 16); with a
 * mask, drawn from the samples' keys (cg_random_key) at these element
 * indices (<16 x i64>) */
static void move_vec(cg_ctx *c, const move_spec *m, LLVMValueRef si, LLVMValueRef di, LLVMValueRef key,
		     LLVMValueRef elem, LLVMValueRef mask)
{
	LLVMValueRef x = cg_vload(c, cg_gep(c, m->src, si), mask);
	if (m->drop) {
		LLVMValueRef u = cg_random_at(c, key, elem);
		LLVMValueRef keep = LLVMBuildFCmp(c->B, LLVMRealOGE, u, cg_vf32(c, (float)m->p), "keep");
		LLVMValueRef y = LLVMBuildFMul(c->B, x, cg_vf32(c, (float)(1 / (1 - m->p))), "");
		x = LLVMBuildSelect(c->B, keep, y, LLVMConstNull(c->v16), "");
	}
	cg_vstore(c, x, cg_gep(c, m->dst, di), mask);
}

/* The element index of value v (i64) of a sample in the dropout's stream */
static LLVMValueRef stream_elem(cg_ctx *c, const move_spec *m, LLVMValueRef v)
{
	return LLVMBuildAdd(c->B, v, cg_i64(c, m->stream << 32), "elem");
}

/* Sample-major, one sample's values [v0, v0 + 16) (mask: the tail's lanes) */
static void move_row_vec(cg_ctx *c, const move_spec *m, LLVMValueRef key, LLVMValueRef sb, LLVMValueRef db,
			 LLVMValueRef v0, LLVMValueRef mask)
{
	LLVMValueRef elem = m->drop ? LLVMBuildAdd(c->B, cg_splat(c, stream_elem(c, m, v0)), cg_iota(c, 64), "") : NULL;
	move_vec(c, m, LLVMBuildAdd(c->B, sb, v0, ""), LLVMBuildAdd(c->B, db, v0, ""), key, elem, mask);
}

/* Sample-major: this thread's samples, each a row of len values (whole
 * vectors, then one masked tail: len is static); a sample's key is drawn
 * once, as a scalar. */
static void move_nc(cg_ctx *c, const move_spec *m)
{
	LLVMValueRef seed = m->drop ? cg_arg(c, CG_ARGS_seed) : NULL;
	LLVMValueRef first = m->drop ? cg_first_sample(c) : NULL, lo, hi;
	int64_t full = m->len / CG_VW * CG_VW;
	cg_partition(c, cg_batch_n(c), &lo, &hi);
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef sb = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, s.i, cg_i64(c, m->src_size), ""), cg_i64(c, m->src_off), "");
	LLVMValueRef db = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, s.i, cg_i64(c, m->dst_size), ""), cg_i64(c, m->dst_off), "");
	LLVMValueRef key = m->drop ? cg_splat(c, cg_random_key(c, seed, LLVMBuildAdd(c->B, first, s.i, ""))) : NULL;
	if (full > 0) {
		cg_loop v = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, full), CG_VW);
		move_row_vec(c, m, key, sb, db, v.i, NULL);
		cg_loop_end(c, &v);
	}
	if (full < m->len)
		move_row_vec(c, m, key, sb, db, cg_i64(c, full), cg_mask(c, (int)(m->len - full)));
	cg_loop_end(c, &s);
}

/* Batch-innermost: this thread's values, each a row of bpad samples (the
 * columns past n are moved too, and never read).  A copy goes row by row;
 * a dropout goes column block by column block, so that the 16 samples'
 * keys are drawn once for all the thread's values. */
static void move_cn(cg_ctx *c, const move_spec *m)
{
	int64_t bp = c->g->bpad;
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, m->len), &lo, &hi);
	if (!m->drop) {
		cg_loop v = cg_loop_begin(c, lo, hi, 1);
		LLVMValueRef sb = LLVMBuildMul(c->B, LLVMBuildAdd(c->B, v.i, cg_i64(c, m->src_off), ""), cg_i64(c, bp), "");
		LLVMValueRef db = LLVMBuildMul(c->B, LLVMBuildAdd(c->B, v.i, cg_i64(c, m->dst_off), ""), cg_i64(c, bp), "");
		cg_loop s = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, bp), CG_VW);
		move_vec(c, m, LLVMBuildAdd(c->B, sb, s.i, ""), LLVMBuildAdd(c->B, db, s.i, ""), NULL, NULL, NULL);
		cg_loop_end(c, &s);
		cg_loop_end(c, &v);
		return;
	}
	LLVMValueRef seed = cg_splat(c, cg_arg(c, CG_ARGS_seed)), first = cg_first_sample(c);
	cg_loop s = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, bp), CG_VW);
	LLVMValueRef sample = LLVMBuildAdd(c->B, cg_splat(c, LLVMBuildAdd(c->B, first, s.i, "")), cg_iota(c, 64), "");
	LLVMValueRef key = cg_random_key(c, seed, sample);
	cg_loop v = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef sb = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, v.i, cg_i64(c, m->src_off), ""), cg_i64(c, bp), ""), s.i, "");
	LLVMValueRef db = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, v.i, cg_i64(c, m->dst_off), ""), cg_i64(c, bp), ""), s.i, "");
	move_vec(c, m, sb, db, key, cg_splat(c, stream_elem(c, m, v.i)), NULL);
	cg_loop_end(c, &v);
	cg_loop_end(c, &s);
}

static void move(cg_ctx *c, const move_spec *m, ir_layout layout)
{
	if (layout == LAYOUT_CN)
		move_cn(c, m);
	else
		move_nc(c, m);
}

/* x[n, ...] -> y[n, ...], either layout: y = x mask / (1 - p) in the train
 * step (and DROPOUT_GRAD: dx = dy mask / (1 - p), the same draws), y = x
 * in eval and inference (a copy: the node's tensor has one place in every
 * mode, so it cannot be its operand's in one of them only) */
void lower_dropout(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	NNC_ASSERT(n->batched && x->layout == n->layout);
	move_spec m = {cg_tensor(c, x), cg_tensor(c, n), n->size, n->size, 0, 0, n->size,
		       c->train_mode || n->op == IR_DROPOUT_GRAD, n->fa[0], n->ia[0]};
	move(c, &m, n->layout);
}

/* a[n, ka], b[n, kb], ... -> y[n, ka + kb + ...] (or [C, H, W] images
 * along C, which is the same per sample), either layout: each operand's
 * values after the previous ones' */
void lower_concat(cg_ctx *c, ir_node *n)
{
	int64_t off = 0;
	for (int k = 0; k < n->nin; k++) {
		ir_node *x = operand(c, n, k);
		NNC_ASSERT(x->layout == n->layout);
		move_spec m = {cg_tensor(c, x), cg_tensor(c, n), x->size, n->size, 0, off, x->size, false, 0, 0};
		move(c, &m, n->layout);
		off += x->size;
	}
}

/* dy[n, total] -> dx[n, k] = dy[n, from .. from + k), either layout */
void lower_slice(cg_ctx *c, ir_node *n)
{
	ir_node *dy = operand(c, n, 0);
	NNC_ASSERT(dy->layout == n->layout);
	move_spec m = {cg_tensor(c, dy), cg_tensor(c, n), dy->size, n->size, n->ia[0], 0, n->size, false, 0, 0};
	move(c, &m, n->layout);
}

void lower_none(cg_ctx *c, ir_node *n)
{
	(void)c;
	(void)n;
}
