/*
 * cg_norm.c - batch normalisation: the lowerings of BATCHNORM and its
 * statistics and gradient ops (ops.def).
 *
 * A batchnorm normalises each channel (a [C, H, W] value, batch-innermost:
 * CN) or each feature (a vector, either layout) with the mean and variance
 * over the whole step's batch.  The parallel schedule runs every chunk of
 * samples on its own thread, so a statistic of the whole batch is built in
 * two steps (docs/architecture.md "Cross-chunk reductions"):
 *
 *   BN_PARTIAL      per chunk: the mean and the sum of squared deviations
 *                   (M2) of its own samples, summed in double
 *   BN_COMBINE      once, after every chunk's partial: Chan's merge of the
 *                   chunks' (count, mean, M2) in chunk order, so the result
 *                   does not depend on the thread count; the running
 *                   statistics updated; out: mean and 1/sd per channel.
 *                   In eval and inference: the running statistics instead.
 *   BATCHNORM       per chunk: y = act(x scale + shift)
 *
 * and the backward pass likewise: BN_BWD_PARTIAL (per chunk: sum dy and sum
 * dy xhat, which are also the chunk's dbeta and dgamma, BN_PARAM_GRAD),
 * BN_BWD_COMBINE (the whole batch's sums -> the coefficients of dx), BN_BWD_X.
 * The derivative of a fused activation (ACT_FROM_Y) is applied where dy is
 * read, from the activation's output v (the last operand).
 *
 * Columns past the chunk's n samples in a CN tensor hold no sample: the
 * reductions mask them; the element-wise passes compute them (never read),
 * so a channel is one block of P x bpad floats, one flat loop.
 */
#include "cg.h"

static ir_node *operand(cg_ctx *c, ir_node *n, int k) { return &c->g->nodes[n->in[k]]; }
static LLVMValueRef add(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(c->B, a, b, ""); }
static LLVMValueRef mulk(cg_ctx *c, LLVMValueRef a, int64_t k) { return k == 1 ? a : LLVMBuildMul(c->B, a, cg_i64(c, k), ""); }
static LLVMValueRef fload(cg_ctx *c, LLVMValueRef base, LLVMValueRef i) { return cg_load(c, c->f32, cg_gep(c, base, i)); }
static LLVMValueRef dload(cg_ctx *c, LLVMValueRef base, LLVMValueRef i)
{
	return LLVMBuildFPExt(c->B, fload(c, base, i), c->f64, "");
}

/* The geometry of a batchnorm's input x: C channels of P positions. */
typedef struct bn_geo {
	int64_t C, P, bp;
	bool cn;
} bn_geo;

static bn_geo geo_of(cg_ctx *c, const ir_node *x)
{
	bn_geo G = {.C = ir_bn_channels(x), .bp = c->g->bpad, .cn = x->layout == LAYOUT_CN};
	G.P = x->size / G.C;
	return G;
}

static LLVMTypeRef v64(cg_ctx *c) { return LLVMVectorType(c->f64, CG_VW); }
static LLVMValueRef ext(cg_ctx *c, LLVMValueRef v) { return LLVMBuildFPExt(c->B, v, v64(c), ""); }
static LLVMValueRef zero_off(cg_ctx *c, LLVMValueRef mask, LLVMValueRef v)
{
	return mask ? LLVMBuildSelect(c->B, mask, v, LLVMConstNull(LLVMTypeOf(v)), "") : v;
}

/* A pass's body: the vector of 16 values at offset `off` of the operands;
 * loads take `lmask` (NULL: the whole vector exists), sums leave out the
 * lanes off `smask` (NULL: every lane is a value). */
typedef void bn_body(cg_ctx *c, void *ctx, LLVMValueRef off, LLVMValueRef lmask, LLVMValueRef smask);

/* Every vector of channel ch of a CN tensor: P rows of bpad/16 vectors,
 * a row's vectors unrolled, each with the mask of the chunk's samples in
 * it (computed once); the loads are whole (bpad columns exist). */
static void for_channel(cg_ctx *c, const bn_geo *G, LLVMValueRef ch, bn_body *body, void *ctx)
{
	int64_t slots = G->bp / CG_VW;
	LLVMValueRef n = cg_batch_n(c);
	if (slots > 8) { /* a large chunk: a loop over the row's vectors, not a copy of the body each */
		cg_loop p = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, G->P), 1);
		LLVMValueRef row = mulk(c, add(c, mulk(c, ch, G->P), p.i), G->bp);
		cg_loop v = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, slots), 1);
		LLVMValueRef s0 = mulk(c, v.i, CG_VW);
		body(c, ctx, add(c, row, s0), NULL, cg_mask_dyn(c, LLVMBuildSub(c->B, n, s0, "")));
		cg_loop_end(c, &v);
		cg_loop_end(c, &p);
		return;
	}
	LLVMValueRef *mask = nnc_alloc(sizeof(LLVMValueRef) * (size_t)slots);
	for (int64_t v = 0; v < slots; v++)
		mask[v] = cg_mask_dyn(c, LLVMBuildSub(c->B, n, cg_i64(c, v * CG_VW), ""));
	cg_loop p = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, G->P), 1);
	LLVMValueRef row = mulk(c, add(c, mulk(c, ch, G->P), p.i), G->bp);
	for (int64_t v = 0; v < slots; v++)
		body(c, ctx, add(c, row, cg_i64(c, v * CG_VW)), NULL, mask[v]);
	cg_loop_end(c, &p);
}

/* Every sample of features [16 j, 16 j + 16) of an NC tensor [n][C]. */
static void for_block(cg_ctx *c, const bn_geo *G, LLVMValueRef j, bn_body *body, void *ctx)
{
	LLVMValueRef f0 = mulk(c, j, CG_VW);
	LLVMValueRef mask = G->C % CG_VW ? cg_mask_dyn(c, LLVMBuildSub(c->B, cg_i64(c, G->C), f0, "")) : NULL;
	cg_loop s = cg_loop_begin(c, cg_i64(c, 0), cg_batch_n(c), 1);
	body(c, ctx, add(c, mulk(c, s.i, G->C), f0), mask, mask);
	cg_loop_end(c, &s);
}

/* This thread's channels (CN) or feature blocks (NC): [*lo, *hi). */
static int64_t bn_tasks(const bn_geo *G) { return G->cn ? G->C : (G->C + CG_VW - 1) / CG_VW; }

/* A per-channel value as a vector: the channel's scalar (CN) or the
 * block's 16 features (NC, lanes past C zero). */
static LLVMValueRef chan_vec(cg_ctx *c, const bn_geo *G, LLVMValueRef base, LLVMValueRef t)
{
	if (G->cn)
		return cg_splat(c, fload(c, base, t));
	LLVMValueRef f0 = mulk(c, t, CG_VW);
	LLVMValueRef mask = G->C % CG_VW ? cg_mask_dyn(c, LLVMBuildSub(c->B, cg_i64(c, G->C), f0, "")) : NULL;
	return cg_vload(c, cg_gep(c, base, f0), mask);
}

/* Stores a per-channel vector of doubles (as floats): lane 0 (CN), or the
 * block's features (NC). */
static void chan_store(cg_ctx *c, const bn_geo *G, LLVMValueRef v, LLVMValueRef base, LLVMValueRef t)
{
	if (G->cn) {
		cg_store(c, LLVMBuildFPTrunc(c->B, v, c->f32, ""), cg_gep(c, base, t));
		return;
	}
	LLVMValueRef f0 = mulk(c, t, CG_VW);
	LLVMValueRef mask = G->C % CG_VW ? cg_mask_dyn(c, LLVMBuildSub(c->B, cg_i64(c, G->C), f0, "")) : NULL;
	cg_vstore(c, LLVMBuildFPTrunc(c->B, v, c->v16, ""), cg_gep(c, base, f0), mask);
}

static LLVMValueRef new_acc(cg_ctx *c)
{
	LLVMValueRef a = cg_alloca(c, v64(c), "acc");
	cg_store(c, LLVMConstNull(v64(c)), a);
	return a;
}

static void acc_add(cg_ctx *c, LLVMValueRef acc, LLVMValueRef v)
{
	cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, v64(c), acc), v, ""), acc);
}

/* Runs body over channel / feature block t. */
static void for_task(cg_ctx *c, const bn_geo *G, LLVMValueRef t, bn_body *body, void *ctx)
{
	if (G->cn)
		for_channel(c, G, t, body, ctx);
	else
		for_block(c, G, t, body, ctx);
}

/* ---- forward statistics ---- */

/* Independent accumulators of a pass over a channel: the vectors of a row
 * go to them in turn, so that the adds of a row do not wait on each other. */
#define STAT_ACCS 4

typedef struct stat_ctx {
	LLVMValueRef X, shift;        /* shift: <16 x double>, the value subtracted first */
	LLVMValueRef s1[STAT_ACCS], s2[STAT_ACCS];
	int next;                     /* the accumulator of the next body emitted */
} stat_ctx;

static void stat_body(cg_ctx *c, void *p, LLVMValueRef off, LLVMValueRef lmask, LLVMValueRef mask)
{
	stat_ctx *s = p;
	int a = s->next++ % STAT_ACCS;
	/* x - shift and its square are exact in double (24-bit operands) */
	LLVMValueRef d = zero_off(c, mask, LLVMBuildFSub(c->B, ext(c, cg_vload(c, cg_gep(c, s->X, off), lmask)), s->shift, ""));
	acc_add(c, s->s1[a], d);
	acc_add(c, s->s2[a], LLVMBuildFMul(c->B, d, d, ""));
}

/* A per-channel sum: the accumulators added in a fixed order, then their
 * lanes (CN: in a fixed pairwise order, cg_hsum), or the lanes themselves
 * (NC: lane = feature). */
static LLVMValueRef acc_total(cg_ctx *c, const bn_geo *G, LLVMValueRef *acc)
{
	LLVMValueRef v = cg_load(c, v64(c), acc[0]);
	for (int a = 1; a < STAT_ACCS; a++)
		v = LLVMBuildFAdd(c->B, v, cg_load(c, v64(c), acc[a]), "");
	return G->cn ? cg_hsum(c, v) : v;
}

/* partial[0][ch] = mean of the chunk's values of channel ch, partial[1][ch]
 * = their sum of squared deviations from it (M2), in double, in one pass:
 * with K one of the channel's values (its first sample's, at its first
 * position) and S1, S2 the sums of x - K and (x - K)^2, mean = K + S1/n
 * and M2 = S2 - S1^2/n.  K is near the data, so S1^2/n is of the order of
 * M2 and the subtraction keeps its precision, as the two passes did (mean,
 * then the squares of x - mean) reading the chunk twice. */
void lower_bn_partial(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	bn_geo G = geo_of(c, x);
	NNC_ASSERT(G.cn || G.P == 1); /* images are CN in the step (sema) */
	LLVMValueRef D = cg_tensor(c, n), X = cg_tensor(c, x), lo, hi;
	LLVMValueRef count = LLVMBuildSIToFP(c->B, mulk(c, cg_batch_n(c), G.P), c->f64, "");
	if (!G.cn)
		count = cg_splat(c, count);
	cg_partition(c, cg_i64(c, bn_tasks(&G)), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	stat_ctx s = {.X = X};
	for (int a = 0; a < STAT_ACCS; a++)
		s.s1[a] = new_acc(c), s.s2[a] = new_acc(c);
	/* K: CN x[ch][0][sample 0] (a scalar, splat for the vectors); NC
	 * sample 0's features of the block */
	LLVMValueRef k = G.cn ? dload(c, X, mulk(c, t.i, G.P * G.bp)) : ext(c, chan_vec(c, &G, X, t.i));
	s.shift = G.cn ? cg_splat(c, k) : k;
	for_task(c, &G, t.i, stat_body, &s);
	LLVMValueRef s1 = acc_total(c, &G, s.s1), s2 = acc_total(c, &G, s.s2);
	LLVMValueRef d = LLVMBuildFDiv(c->B, s1, count, ""); /* mean - K */
	chan_store(c, &G, LLVMBuildFAdd(c->B, k, d, ""), D, t.i);
	LLVMValueRef m2 = LLVMBuildFSub(c->B, s2, LLVMBuildFMul(c->B, s1, d, ""), "");
	LLVMValueRef z = LLVMConstNull(LLVMTypeOf(m2)); /* rounding must not make it negative */
	m2 = LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOGT, m2, z, ""), m2, z, "");
	chan_store(c, &G, m2, cg_gep(c, D, cg_i64(c, G.C)), t.i);
	cg_loop_end(c, &t);
}

static void dstore(cg_ctx *c, LLVMValueRef v, LLVMValueRef base, LLVMValueRef i)
{
	cg_store(c, LLVMBuildFPTrunc(c->B, v, c->f32, ""), cg_gep(c, base, i));
}

static LLVMValueRef dk(cg_ctx *c, double v) { return LLVMConstReal(c->f64, v); }

static LLVMValueRef inv_sqrt(cg_ctx *c, LLVMValueRef v)
{
	LLVMTypeRef t = c->f64;
	return LLVMBuildFDiv(c->B, dk(c, 1), cg_call_intr(c, "llvm.sqrt", &t, 1, &v, 1), "");
}

/* stats[0][ch] = mean, stats[1][ch] = 1 / sqrt(var + eps), per channel.
 * Train step: the chunks' partials (count_k, mean_k, M2_k) merged in chunk
 * order by Chan's formula,
 *   mean += d n_k / n,  M2 += M2_k + d^2 n_prev n_k / n,  d = mean_k - mean,
 * var = M2 / N (biased), and the running statistics moved towards the
 * batch's: rm = (1 - m) rm + m mean, rv = (1 - m) rv + m var N / (N - 1)
 * (unbiased; var itself when N = 1).  Eval and inference: rm and rv. */
void lower_bn_combine(cg_ctx *c, ir_node *n)
{
	ir_node *part = operand(c, n, 0), *rmn = operand(c, n, 1), *rvn = operand(c, n, 2);
	int64_t C = n->dims[1];
	double m = n->fa[0], eps = n->fa[1];
	LLVMValueRef S = cg_tensor(c, n), RM = cg_tensor(c, rmn), RV = cg_tensor(c, rvn), lo, hi;
	cg_partition(c, cg_i64(c, C), &lo, &hi);
	if (!c->train_mode) {
		cg_loop ch = cg_loop_begin(c, lo, hi, 1);
		cg_store(c, fload(c, RM, ch.i), cg_gep(c, S, ch.i));
		dstore(c, inv_sqrt(c, LLVMBuildFAdd(c->B, dload(c, RV, ch.i), dk(c, eps), "")), S, add(c, ch.i, cg_i64(c, C)));
		cg_loop_end(c, &ch);
		return;
	}
	int64_t P = c->g->nodes[part->in[0]].size / C;
	LLVMValueRef total = cg_batch_total(c);
	LLVMValueRef N = LLVMBuildSIToFP(c->B, mulk(c, total, P), c->f64, "");
	LLVMValueRef active = cg_active_chunks(c, total);
	LLVMValueRef cnt = cg_alloca(c, c->f64, "n"), mean = cg_alloca(c, c->f64, "mean"), m2 = cg_alloca(c, c->f64, "m2");
	cg_loop ch = cg_loop_begin(c, lo, hi, 1);
	cg_store(c, dk(c, 0), cnt);
	cg_store(c, dk(c, 0), mean);
	cg_store(c, dk(c, 0), m2);
	cg_loop k = cg_loop_begin(c, cg_i64(c, 0), active, 1);
	{
		LLVMValueRef pk = cg_chunk_tensor(c, part, k.i);
		LLVMValueRef nb = LLVMBuildSIToFP(c->B, mulk(c, cg_chunk_samples(c, k.i), P), c->f64, "");
		LLVMValueRef na = cg_load(c, c->f64, cnt), ma = cg_load(c, c->f64, mean);
		LLVMValueRef nn = LLVMBuildFAdd(c->B, na, nb, "");
		LLVMValueRef d = LLVMBuildFSub(c->B, dload(c, pk, ch.i), ma, "");
		LLVMValueRef w = LLVMBuildFDiv(c->B, nb, nn, ""); /* n_k / n */
		cg_store(c, LLVMBuildFAdd(c->B, ma, LLVMBuildFMul(c->B, d, w, ""), ""), mean);
		LLVMValueRef corr = LLVMBuildFMul(c->B, LLVMBuildFMul(c->B, d, d, ""), LLVMBuildFMul(c->B, na, w, ""), "");
		LLVMValueRef m2b = dload(c, pk, add(c, ch.i, cg_i64(c, C)));
		cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, m2), LLVMBuildFAdd(c->B, m2b, corr, ""), ""), m2);
		cg_store(c, nn, cnt);
	}
	cg_loop_end(c, &k);
	LLVMValueRef mu = cg_load(c, c->f64, mean);
	LLVMValueRef var = LLVMBuildFDiv(c->B, cg_load(c, c->f64, m2), N, "");
	dstore(c, mu, S, ch.i);
	dstore(c, inv_sqrt(c, LLVMBuildFAdd(c->B, var, dk(c, eps), "")), S, add(c, ch.i, cg_i64(c, C)));
	LLVMValueRef big = LLVMBuildFCmp(c->B, LLVMRealOGT, N, dk(c, 1), "");
	LLVMValueRef unb = LLVMBuildSelect(c->B, big, LLVMBuildFDiv(c->B, LLVMBuildFMul(c->B, var, N, ""),
							     LLVMBuildFSub(c->B, N, dk(c, 1), ""), ""), var, "");
	/* every chunk merges for itself (chunk_copy): chunk 0 alone moves the
	 * running statistics */
	cg_if c0 = cg_if_begin(c, n->chunk_copy ? LLVMBuildICmp(c->B, LLVMIntEQ, cg_chunk_s0(c), cg_i64(c, 0), "")
						: LLVMConstInt(c->i1, 1, 0));
	LLVMValueRef rm = dload(c, RM, ch.i), rv = dload(c, RV, ch.i);
	dstore(c, LLVMBuildFAdd(c->B, LLVMBuildFMul(c->B, dk(c, 1 - m), rm, ""), LLVMBuildFMul(c->B, dk(c, m), mu, ""), ""), RM, ch.i);
	dstore(c, LLVMBuildFAdd(c->B, LLVMBuildFMul(c->B, dk(c, 1 - m), rv, ""), LLVMBuildFMul(c->B, dk(c, m), unb, ""), ""), RV, ch.i);
	cg_if_end(c, &c0);
	cg_loop_end(c, &ch);
}

/* x scale + shift, plus the residual r's value at the same place */
static LLVMValueRef normalised(cg_ctx *c, LLVMValueRef X, LLVMValueRef R, LLVMValueRef off, LLVMValueRef mask, LLVMValueRef vs,
			       LLVMValueRef vb)
{
	LLVMValueRef v = cg_fma(c, cg_vload(c, cg_gep(c, X, off), mask), vs, vb);
	return R ? LLVMBuildFAdd(c->B, v, cg_vload(c, cg_gep(c, R, off), mask), "") : v;
}

/* y = act(x scale + shift [+ r]), scale = gamma / sd, shift = beta - mean
 * scale (gamma 1, beta 0 without affine; r: a residual, ir_bn_residual);
 * CN: tasks are channels, every sample vector; NC: tasks are samples */
void lower_batchnorm(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *st = operand(c, n, 1);
	bn_geo G = geo_of(c, x);
	bool affine = ir_bn_affine(n);
	LLVMValueRef X = cg_tensor(c, x), Y = cg_tensor(c, n), S = cg_tensor(c, st);
	LLVMValueRef R = ir_bn_residual(n) ? cg_tensor(c, operand(c, n, n->nin - 1)) : NULL;
	LLVMValueRef GA = affine ? cg_tensor(c, operand(c, n, 2)) : NULL, BE = affine ? cg_tensor(c, operand(c, n, 3)) : NULL;
	LLVMValueRef SD = cg_gep(c, S, cg_i64(c, G.C)), lo, hi;
	double opt = n->fa[IR_FA_ACT];
	if (G.cn) {
		cg_partition(c, cg_i64(c, G.C), &lo, &hi);
		cg_loop ch = cg_loop_begin(c, lo, hi, 1);
		LLVMValueRef scale = fload(c, SD, ch.i);
		if (GA)
			scale = LLVMBuildFMul(c->B, fload(c, GA, ch.i), scale, "");
		LLVMValueRef shift = LLVMBuildFNeg(c->B, LLVMBuildFMul(c->B, fload(c, S, ch.i), scale, ""), "");
		if (BE)
			shift = LLVMBuildFAdd(c->B, fload(c, BE, ch.i), shift, "");
		LLVMValueRef vs = cg_splat(c, scale), vb = cg_splat(c, shift);
		/* the channel's P rows of bpad columns are one block: every
		 * column (those past n are never read) */
		LLVMValueRef base = mulk(c, ch.i, G.P * G.bp);
		cg_loop i = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, G.P * G.bp), CG_VW);
		LLVMValueRef off = add(c, base, i.i);
		LLVMValueRef y = cg_act(c, n->act, opt, normalised(c, X, R, off, NULL, vs, vb));
		cg_vstore(c, y, cg_gep(c, Y, off), NULL);
		cg_loop_end(c, &i);
		cg_loop_end(c, &ch);
		return;
	}
	if (G.P > 1) { /* an image in small.c's sample-major copy: rows of P positions */
		int64_t nv = (G.P + CG_VW - 1) / CG_VW;
		LLVMValueRef tail = G.P % CG_VW ? cg_mask(c, (int)(G.P % CG_VW)) : NULL;
		cg_partition(c, mulk(c, cg_batch_n(c), G.C), &lo, &hi);
		cg_loop r = cg_loop_begin(c, lo, hi, 1); /* sample * C + channel */
		LLVMValueRef ch = LLVMBuildSRem(c->B, r.i, cg_i64(c, G.C), "");
		LLVMValueRef scale = fload(c, SD, ch);
		if (GA)
			scale = LLVMBuildFMul(c->B, fload(c, GA, ch), scale, "");
		LLVMValueRef shift = LLVMBuildFNeg(c->B, LLVMBuildFMul(c->B, fload(c, S, ch), scale, ""), "");
		if (BE)
			shift = LLVMBuildFAdd(c->B, fload(c, BE, ch), shift, "");
		LLVMValueRef vs = cg_splat(c, scale), vb = cg_splat(c, shift);
		/* the row's whole vectors in a loop (a 28 x 28 image is 49: unrolled,
		 * they were most of the copy's code and compile time), then the tail */
		int64_t full = tail ? nv - 1 : nv;
		cg_loop v = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, full * CG_VW), CG_VW);
		LLVMValueRef off = add(c, mulk(c, r.i, G.P), v.i);
		cg_vstore(c, cg_act(c, n->act, opt, normalised(c, X, R, off, NULL, vs, vb)), cg_gep(c, Y, off), NULL);
		cg_loop_end(c, &v);
		if (tail) {
			off = add(c, mulk(c, r.i, G.P), cg_i64(c, full * CG_VW));
			cg_vstore(c, cg_act(c, n->act, opt, normalised(c, X, R, off, tail, vs, vb)), cg_gep(c, Y, off), tail);
		}
		cg_loop_end(c, &r);
		return;
	}
	int64_t nb = bn_tasks(&G);
	cg_partition(c, cg_batch_n(c), &lo, &hi);
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, nb), 1);
	{
		LLVMValueRef f0 = mulk(c, j.i, CG_VW);
		LLVMValueRef mask = G.C % CG_VW ? cg_mask_dyn(c, LLVMBuildSub(c->B, cg_i64(c, G.C), f0, "")) : NULL;
		LLVMValueRef scale = chan_vec(c, &G, SD, j.i);
		if (GA)
			scale = LLVMBuildFMul(c->B, chan_vec(c, &G, GA, j.i), scale, "");
		LLVMValueRef shift = LLVMBuildFNeg(c->B, LLVMBuildFMul(c->B, chan_vec(c, &G, S, j.i), scale, ""), "");
		if (BE)
			shift = LLVMBuildFAdd(c->B, chan_vec(c, &G, BE, j.i), shift, "");
		LLVMValueRef off = add(c, mulk(c, s.i, G.C), f0);
		LLVMValueRef y = cg_act(c, n->act, opt, normalised(c, X, R, off, mask, scale, shift));
		cg_vstore(c, y, cg_gep(c, Y, off), mask);
	}
	cg_loop_end(c, &j);
	cg_loop_end(c, &s);
}

/* ---- backward ---- */

/* The gradient reaching the batchnorm: dy, or dy act'(v) for a fused
 * activation (v its output, the last operand). */
typedef struct bwd_ctx {
	ir_node *n;
	LLVMValueRef X, DY, V;
	LLVMValueRef mean, sd;    /* per-channel vectors (splats for CN) */
	LLVMValueRef acc0[STAT_ACCS], acc1[STAT_ACCS]; /* bwd partial: sum dy, sum dy xhat */
	int next;                 /* bwd partial: the accumulators of the next body emitted */
	LLVMValueRef a, b, cc, DX; /* bwd x: dx = a dy + b (x - mean) + cc */
} bwd_ctx;

static LLVMValueRef grad_in(cg_ctx *c, bwd_ctx *b, LLVMValueRef off, LLVMValueRef mask /* of the loads */)
{
	LLVMValueRef dy = cg_vload(c, cg_gep(c, b->DY, off), mask);
	if (!b->n->dact)
		return dy;
	return cg_dact(c, b->n->dact, b->n->fa[IR_FA_ACT], cg_vload(c, cg_gep(c, b->V, off), mask), dy);
}

static void bwd_partial_body(cg_ctx *c, void *p, LLVMValueRef off, LLVMValueRef lmask, LLVMValueRef mask)
{
	bwd_ctx *b = p;
	LLVMValueRef d = grad_in(c, b, off, lmask);
	LLVMValueRef xh = LLVMBuildFMul(c->B, LLVMBuildFSub(c->B, cg_vload(c, cg_gep(c, b->X, off), lmask), b->mean, ""), b->sd, "");
	int a = b->next++ % STAT_ACCS;
	acc_add(c, b->acc0[a], zero_off(c, mask, ext(c, d)));
	acc_add(c, b->acc1[a], zero_off(c, mask, ext(c, LLVMBuildFMul(c->B, d, xh, ""))));
}

/* partial[0][ch] = sum of dy, partial[1][ch] = sum of dy xhat over the
 * chunk's values of channel ch (in double) */
void lower_bn_bwd_partial(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *st = operand(c, n, 2);
	bn_geo G = geo_of(c, x);
	NNC_ASSERT(G.cn || G.P == 1); /* images are CN in the step (sema) */
	LLVMValueRef D = cg_tensor(c, n), S = cg_tensor(c, st), lo, hi;
	bwd_ctx b = {.n = n, .X = cg_tensor(c, x), .DY = cg_tensor(c, operand(c, n, 1))};
	b.V = n->dact ? cg_tensor(c, operand(c, n, n->nin - 1)) : NULL;
	cg_partition(c, cg_i64(c, bn_tasks(&G)), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	for (int a = 0; a < STAT_ACCS; a++)
		b.acc0[a] = new_acc(c), b.acc1[a] = new_acc(c);
	b.mean = chan_vec(c, &G, S, t.i);
	b.sd = chan_vec(c, &G, cg_gep(c, S, cg_i64(c, G.C)), t.i);
	for_task(c, &G, t.i, bwd_partial_body, &b);
	chan_store(c, &G, acc_total(c, &G, b.acc0), D, t.i);
	chan_store(c, &G, acc_total(c, &G, b.acc1), cg_gep(c, D, cg_i64(c, G.C)), t.i);
	cg_loop_end(c, &t);
}

/* dbeta (row 0) or dgamma (row 1): this chunk's sums, into its gradients */
void lower_bn_param_grad(cg_ctx *c, ir_node *n)
{
	ir_node *part = operand(c, n, 0);
	int64_t C = n->size;
	LLVMValueRef src = cg_gep(c, cg_tensor(c, part), cg_i64(c, n->ia[0] * C)), dst = cg_tensor(c, n), lo, hi;
	cg_partition(c, cg_i64(c, C), &lo, &hi);
	cg_loop i = cg_loop_begin(c, lo, hi, 1);
	cg_store(c, fload(c, src, i.i), cg_gep(c, dst, i.i));
	cg_loop_end(c, &i);
}

/* The whole batch's sums (the chunks' partials added in chunk order, in
 * double) -> coef[0..3][ch] = mean, a = gamma / sd, b = -a sum(dy xhat) / (N sd),
 * c = -a sum(dy) / N */
void lower_bn_bwd_combine(cg_ctx *c, ir_node *n)
{
	ir_node *part = operand(c, n, 0), *st = operand(c, n, 1);
	int64_t C = n->dims[1], P = c->g->nodes[part->in[0]].size / C;
	LLVMValueRef S = cg_tensor(c, st), K = cg_tensor(c, n), GA = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL;
	LLVMValueRef total = cg_batch_total(c), lo, hi;
	LLVMValueRef N = LLVMBuildSIToFP(c->B, mulk(c, total, P), c->f64, "");
	LLVMValueRef active = cg_active_chunks(c, total);
	LLVMValueRef s0 = cg_alloca(c, c->f64, "sdy"), s1 = cg_alloca(c, c->f64, "sdyx");
	cg_partition(c, cg_i64(c, C), &lo, &hi);
	cg_loop ch = cg_loop_begin(c, lo, hi, 1);
	cg_store(c, dk(c, 0), s0);
	cg_store(c, dk(c, 0), s1);
	cg_loop k = cg_loop_begin(c, cg_i64(c, 0), active, 1);
	LLVMValueRef pk = cg_chunk_tensor(c, part, k.i);
	cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, s0), dload(c, pk, ch.i), ""), s0);
	cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, s1), dload(c, pk, add(c, ch.i, cg_i64(c, C))), ""), s1);
	cg_loop_end(c, &k);
	LLVMValueRef sd = dload(c, S, add(c, ch.i, cg_i64(c, C)));
	LLVMValueRef a = GA ? LLVMBuildFMul(c->B, dload(c, GA, ch.i), sd, "") : sd;
	LLVMValueRef na = LLVMBuildFDiv(c->B, LLVMBuildFNeg(c->B, a, ""), N, "");
	cg_store(c, fload(c, S, ch.i), cg_gep(c, K, ch.i));
	dstore(c, a, K, add(c, ch.i, cg_i64(c, C)));
	dstore(c, LLVMBuildFMul(c->B, LLVMBuildFMul(c->B, na, sd, ""), cg_load(c, c->f64, s1), ""), K, add(c, ch.i, cg_i64(c, 2 * C)));
	dstore(c, LLVMBuildFMul(c->B, na, cg_load(c, c->f64, s0), ""), K, add(c, ch.i, cg_i64(c, 3 * C)));
	cg_loop_end(c, &ch);
}

static void bwd_x_body(cg_ctx *c, void *p, LLVMValueRef off, LLVMValueRef mask, LLVMValueRef smask)
{
	(void)smask; /* CN: every column is computed (those past n are never read) */
	bwd_ctx *b = p;
	LLVMValueRef d = grad_in(c, b, off, mask);
	LLVMValueRef xc = LLVMBuildFSub(c->B, cg_vload(c, cg_gep(c, b->X, off), mask), b->mean, "");
	LLVMValueRef dx = cg_fma(c, b->a, d, cg_fma(c, b->b, xc, b->cc));
	cg_vstore(c, dx, cg_gep(c, b->DX, off), mask);
}

/* dx = a dy + b (x - mean) + c with the channel's coefficients */
void lower_bn_bwd_x(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *co = operand(c, n, 2);
	bn_geo G = geo_of(c, x);
	NNC_ASSERT(G.cn || G.P == 1); /* images are CN in the step (sema) */
	LLVMValueRef K = cg_tensor(c, co), lo, hi;
	bwd_ctx b = {.n = n, .X = cg_tensor(c, x), .DY = cg_tensor(c, operand(c, n, 1)), .DX = cg_tensor(c, n)};
	b.V = n->dact ? cg_tensor(c, operand(c, n, n->nin - 1)) : NULL;
	cg_partition(c, cg_i64(c, bn_tasks(&G)), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	b.mean = chan_vec(c, &G, K, t.i);
	b.a = chan_vec(c, &G, cg_gep(c, K, cg_i64(c, G.C)), t.i);
	b.b = chan_vec(c, &G, cg_gep(c, K, cg_i64(c, 2 * G.C)), t.i);
	b.cc = chan_vec(c, &G, cg_gep(c, K, cg_i64(c, 3 * G.C)), t.i);
	for_task(c, &G, t.i, bwd_x_body, &b);
	cg_loop_end(c, &t);
}

/* ---- folding into the layer before (--inference-only, pass_infer.c) ---- */

/* s[ch] = gamma[ch] / sd[ch] (sd: stats row 1, 1 / sqrt(var + eps)) */
static LLVMValueRef fold_scale(cg_ctx *c, LLVMValueRef S, LLVMValueRef GA, int64_t C, LLVMValueRef ch)
{
	LLVMValueRef s = fload(c, S, add(c, ch, cg_i64(c, C)));
	return GA ? LLVMBuildFMul(c->B, fload(c, GA, ch), s, "") : s;
}

/* W'[.., ch, ..] = W s[ch]: dense W[in][C] (ch the column), conv W[C][...] (the row) */
void lower_bn_fold_w(cg_ctx *c, ir_node *n)
{
	ir_node *w = operand(c, n, 0), *st = operand(c, n, 1);
	int64_t C = st->dims[1], per = w->size / C;
	LLVMValueRef W = cg_tensor(c, w), S = cg_tensor(c, st), D = cg_tensor(c, n), lo, hi;
	LLVMValueRef GA = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL;
	cg_partition(c, cg_i64(c, w->size), &lo, &hi);
	cg_loop i = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef ch = n->ia[0] ? LLVMBuildSDiv(c->B, i.i, cg_i64(c, per), "") : LLVMBuildSRem(c->B, i.i, cg_i64(c, C), "");
	cg_store(c, LLVMBuildFMul(c->B, fload(c, W, i.i), fold_scale(c, S, GA, C, ch), ""), cg_gep(c, D, i.i));
	cg_loop_end(c, &i);
}

/* b'[ch] = (b[ch] - mean[ch]) s[ch] + beta[ch] (b 0 without a bias) */
void lower_bn_fold_b(cg_ctx *c, ir_node *n)
{
	ir_node *st = operand(c, n, 0);
	int64_t C = n->size;
	bool affine = n->ia[0], bias = n->ia[1];
	LLVMValueRef S = cg_tensor(c, st), D = cg_tensor(c, n), lo, hi;
	LLVMValueRef GA = affine ? cg_tensor(c, operand(c, n, 1)) : NULL, BE = affine ? cg_tensor(c, operand(c, n, 2)) : NULL;
	LLVMValueRef B = bias ? cg_tensor(c, operand(c, n, affine ? 3 : 1)) : NULL;
	cg_partition(c, cg_i64(c, C), &lo, &hi);
	cg_loop i = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef z = B ? LLVMBuildFSub(c->B, fload(c, B, i.i), fload(c, S, i.i), "") : LLVMBuildFNeg(c->B, fload(c, S, i.i), "");
	LLVMValueRef v = LLVMBuildFMul(c->B, z, fold_scale(c, S, GA, C, i.i), "");
	if (BE)
		v = LLVMBuildFAdd(c->B, v, fload(c, BE, i.i), "");
	cg_store(c, v, cg_gep(c, D, i.i));
	cg_loop_end(c, &i);
}
