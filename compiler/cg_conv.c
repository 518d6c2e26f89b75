/*
 * cg_conv.c - lowering of convolution, pooling and layout changes.
 *
 * These ops work on batch-innermost (CN) tensors: value i of sample s is at
 * i*bpad + s, so every kernel vectorises over 16 samples at a time with no
 * padding waste and no im2col buffer, whatever the image and kernel sizes.
 * Kernel loops are specialised to the static shapes; border handling is
 * done by clipping the tap ranges, never by branches in the inner loop.
 *
 *   conv forward   tile: MR filters x NV sample vectors, accumulated over
 *                  every (c, kh, kw) tap, then bias + activation, one store
 *   conv dx        the same tile over MR input channels, reading the taps
 *                  that reach each input position; act' fused before the store
 *   conv dw        per (filter block, c, kw group), every kh: sums over
 *                  positions and samples in vector accumulators (AVX2: 8
 *                  lanes at a time), one horizontal sum at the end; only the
 *                  n real samples are read (masked tail)
 *
 * Register tiles are sized for the target (tile_acc): AVX-512's 32 registers
 * of 16 floats hold 24 accumulators, AVX2's 16 registers of 8 floats hold 6
 * of our 16-float vectors.  The tile never changes the order in which a
 * value's products are added, so results are the same on both.
 */
#include "cg.h"

static ir_node *operand(cg_ctx *c, ir_node *n, int k) { return &c->g->nodes[n->in[k]]; }

static LLVMValueRef add(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(c->B, a, b, ""); }
static LLVMValueRef sub(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSub(c->B, a, b, ""); }
static LLVMValueRef mul(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(c->B, a, b, ""); }
static LLVMValueRef mulk(cg_ctx *c, LLVMValueRef a, int64_t k) { return k == 1 ? a : mul(c, a, cg_i64(c, k)); }
static LLVMValueRef addk(cg_ctx *c, LLVMValueRef a, int64_t k) { return k == 0 ? a : add(c, a, cg_i64(c, k)); }
static LLVMValueRef max0(cg_ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSGT, a, b, ""), a, b, "");
}

/* Number of 16-sample vectors holding the n real samples. */
static LLVMValueRef nvec_dyn(cg_ctx *c) { return LLVMBuildSDiv(c->B, addk(c, cg_batch_n(c), 15), cg_i64(c, 16), ""); }

/* <16 x float> accumulators a register tile may hold (cg_build.h): 24 on
 * AVX-512, 6 on AVX2, where a vector takes two of the 16 registers and 24
 * accumulators spilled to the stack on every multiply-add. */
static int tile_acc(const cg_ctx *c) { return c->vacc ? c->vacc : 24; }

/* Vectors per register tile: the largest of 4, 3, 2, 1 dividing bpad/16 that
 * leaves room for rows (AVX2: one vector, up to 6 rows, 12 of 16 registers). */
static int tile_nv(cg_ctx *c)
{
	int64_t v = c->g->bpad / CG_VW;
	int top = tile_acc(c) >= 24 ? 4 : 1;
	for (int nv = top; nv > 1; nv--)
		if (v % nv == 0)
			return nv;
	return 1;
}

/* Rows per tile for `count` rows (filters or channels), nv vectors wide. */
static int rows_for(int64_t count, int cap)
{
	if (count <= cap)
		return (int)count;
	for (int mr = cap; mr >= (cap + 1) / 2; mr--)
		if (count % mr == 0)
			return mr;
	return cap;
}

static int tile_mr(const cg_ctx *c, int64_t count, int nv)
{
	int cap = tile_acc(c) / nv; /* at most 24 rows: the accumulator arrays below */
	if (cap < 8) /* AVX2: every row counts (6 + 6 + 4 filters beat 4 + 4 + 4 + 4) */
		return count < cap ? (int)count : cap;
	return rows_for(count, cap);
}

/* ---- layout changes ---- */

/* TO_CN: x[s][i] -> xt[i][s];  TO_NC: xt[i][s] -> x[s][i].  Tasks: blocks of i. */
void lower_relayout(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	int64_t S = n->size, bp = c->g->bpad;
	LLVMValueRef src = cg_tensor(c, x), dst = cg_tensor(c, n), rows = cg_batch_n(c);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, S), &lo, &hi);
	cg_loop i = cg_loop_begin(c, lo, hi, 1);
	cg_loop s = cg_loop_begin(c, cg_i64(c, 0), rows, 1);
	LLVMValueRef nc = add(c, mulk(c, s.i, S), i.i), cn = add(c, mulk(c, i.i, bp), s.i);
	bool to_cn = n->op == IR_TO_CN;
	cg_store(c, cg_load(c, c->f32, cg_gep(c, src, to_cn ? nc : cn)), cg_gep(c, dst, to_cn ? cn : nc));
	cg_loop_end(c, &s);
	cg_loop_end(c, &i);
}

/* ---- convolution forward ---- */

typedef struct conv_geo {
	int64_t C, H, W, F, OH, OW, KH, KW, SH, SW, PH, PW;
} conv_geo;

static conv_geo geometry(ir_node *x, ir_node *y, const int64_t *ia)
{
	NNC_ASSERT(x->rank == 3 && y->rank == 3);
	conv_geo g = {x->dims[0], x->dims[1], x->dims[2], y->dims[0], y->dims[1], y->dims[2],
		      ia[0],      ia[1],      ia[2],      ia[3],      ia[4],      ia[5]};
	return g;
}

/* Taps k in [lo, hi) with 0 <= o*s - p + k < extent. */
static void tap_range(cg_ctx *c, LLVMValueRef o, int64_t s, int64_t p, int64_t K, int64_t extent,
		      LLVMValueRef *lo, LLVMValueRef *hi)
{
	LLVMValueRef base = sub(c, mulk(c, o, s), cg_i64(c, p)); /* input index of tap 0 */
	*lo = max0(c, cg_i64(c, 0), sub(c, cg_i64(c, 0), base));
	*hi = cg_min_i64(c, cg_i64(c, K), sub(c, cg_i64(c, extent), base));
}

/* acc[r][v] += w[w0 + r * ws] (in every lane) * xv[v]: the rows of a register tile */
static void fma_rows(cg_ctx *c, LLVMValueRef w, LLVMValueRef w0, int64_t ws, const LLVMValueRef *xv, int mr, int nv,
		     LLVMValueRef acc[24][4])
{
	for (int r = 0; r < mr; r++) {
		LLVMValueRef wv = cg_splat(c, cg_load(c, c->f32, cg_gep(c, w, addk(c, w0, r * ws))));
		for (int v = 0; v < nv; v++)
			cg_store(c, cg_fma(c, wv, xv[v], cg_load(c, c->v16, acc[r][v])), acc[r][v]);
	}
}

/* The nv input vectors xv[] of tap (ci, ih, kw) for one register tile. */
typedef void tap_loader(cg_ctx *c, const conv_geo *G, const void *ctx, LLVMValueRef ci, LLVMValueRef ih,
			LLVMValueRef kw, int nv, LLVMValueRef *xv);

/* The forward convolution's register tile, for both layouts: allocates
 * acc[r][v] and sums into it w[f0 + r][ci][kh][kw] times input vector v of
 * every tap, kh in [khlo, khhi), kw in [kwlo, kwhi). */
static void conv_accumulate(cg_ctx *c, const conv_geo *G, LLVMValueRef Wt, LLVMValueRef f0, LLVMValueRef oh,
			    LLVMValueRef khlo, LLVMValueRef khhi, LLVMValueRef kwlo, LLVMValueRef kwhi, int mr, int nv,
			    tap_loader *load, const void *ctx, LLVMValueRef acc[24][4])
{
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < nv; v++) {
			acc[r][v] = cg_alloca(c, c->v16, "acc");
			cg_store(c, LLVMConstNull(c->v16), acc[r][v]);
		}
	cg_loop ci = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, G->C), 1);
	cg_loop kh = cg_loop_begin(c, khlo, khhi, 1);
	LLVMValueRef ih = add(c, sub(c, mulk(c, oh, G->SH), cg_i64(c, G->PH)), kh.i);
	LLVMValueRef wrow = add(c, mulk(c, ci.i, G->KH * G->KW), mulk(c, kh.i, G->KW));
	cg_loop kw = cg_loop_begin(c, kwlo, kwhi, 1);
	{
		LLVMValueRef xv[4];
		load(c, G, ctx, ci.i, ih, kw.i, nv, xv);
		int64_t ckk = G->C * G->KH * G->KW;
		fma_rows(c, Wt, add(c, mulk(c, f0, ckk), add(c, wrow, kw.i)), ckk, xv, mr, nv, acc);
	}
	cg_loop_end(c, &kw);
	cg_loop_end(c, &kh);
	cg_loop_end(c, &ci);
}

/* ---- bf16 convolutions ----
 * With bf16 products (cg_ctx.bf16) a forward convolution of two or more
 * input channels (batch-innermost, or small.c's sample-major one, whose
 * vectors are 16 output columns) multiplies bfloat16 pairs of channels: for
 * each pair (2p, 2p + 1) and tap (kh, kw), one vdpbf16ps adds
 * w[f][2p + 1] x[2p + 1] and w[f][2p] x[2p] into each accumulator lane (a
 * sample).  The weights are packed into pairs once per call (wp[f][p][kh][kw],
 * an i32 each, the second channel 0 past an odd C), the inputs as they are
 * loaded: the two channels' vectors of 16 samples, rounded and interleaved
 * (cg_bf16_pairs), serve every filter of the tile. */

/* The weight gradient pairs neighbouring samples instead: vectors of 32
 * samples of dy and of x, rounded into 16 pairs each (cg_bf16_seq, no
 * interleaving), one vdpbf16ps per accumulator, whose lanes are summed at
 * the end as before. */

/* Pairs of input channels; the packed weights' bound in bytes. */
static int64_t conv_pairs(const conv_geo *G) { return (G->C + 1) / 2; }
#define CONV_BF16_WBYTES (256 * 1024) /* packed weights on the thread's stack, at most */

bool cg_conv_bf16(const cg_ctx *c, const ir_node *n)
{
	if (!c->bf16)
		return false;
	const ir_node *x = &c->g->nodes[n->in[0]];
	if (c->vacc && c->vacc < 24) /* the AVX-512 tiles (avx512bf16 implies them; tests can ask for others) */
		return false;
	if (n->op == IR_CONV2D_BWD_W)
		return true;
	if (n->op != IR_CONV2D && n->op != IR_CONV2D_BWD_X)
		return false;
	/* pairs along the first operand's channels (the forward's input
	 * channels, from either layout; the input gradient's dy: filters),
	 * for each of n's channels: at least two to pair, the packed weights
	 * within their bound */
	int64_t D = x->dims[0], O = n->dims[0];
	return D >= 2 && O * ((D + 1) / 2) * n->ia[0] * n->ia[1] * 4 <= CONV_BF16_WBYTES;
}

/* The weights as bf16 pairs along one of their two leading indices:
 * wp[o][q][kh][kw] = (w(o, 2q), w(o, 2q + 1)) at tap (kh, kw), where w(o, i)
 * is the tap's weight at o * so + i * si (i < D; the second 0 past an odd
 * D).  This thread's copy, before its tasks. */
static LLVMValueRef pack_weight_pairs(cg_ctx *c, const conv_geo *G, LLVMValueRef Wt, int64_t O, int64_t so, int64_t D,
				      int64_t si)
{
	int64_t Q = (D + 1) / 2, KK = G->KH * G->KW;
	LLVMValueRef wp = cg_alloca(c, LLVMArrayType(c->i32, (unsigned)(O * Q * KK)), "wpairs");
	cg_loop o = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, O), 1);
	cg_loop q = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, Q), 1);
	cg_loop k = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KK), 1);
	{
		LLVMValueRef i0 = mulk(c, q.i, 2), i1 = addk(c, i0, 1);
		LLVMValueRef has2 = LLVMBuildICmp(c->B, LLVMIntSLT, i1, cg_i64(c, D), "");
		i1 = LLVMBuildSelect(c->B, has2, i1, i0, "");
		LLVMValueRef base = add(c, mulk(c, o.i, so), k.i);
		LLVMValueRef w0 = cg_load(c, c->f32, cg_gep(c, Wt, add(c, base, mulk(c, i0, si))));
		LLVMValueRef w1 = cg_load(c, c->f32, cg_gep(c, Wt, add(c, base, mulk(c, i1, si))));
		LLVMValueRef pr = cg_bf16_pair(c, w0, LLVMBuildSelect(c->B, has2, w1, cg_f32(c, 0), ""));
		cg_store(c, pr, cg_gep_i32(c, wp, add(c, mulk(c, add(c, mulk(c, o.i, Q), q.i), KK), k.i)));
	}
	cg_loop_end(c, &k);
	cg_loop_end(c, &q);
	cg_loop_end(c, &o);
	return wp;
}

/* forward: pairs of input channels, wp[f][p][kh][kw] */
static LLVMValueRef pack_conv_weights(cg_ctx *c, const conv_geo *G, LLVMValueRef Wt)
{
	int64_t KK = G->KH * G->KW;
	return pack_weight_pairs(c, G, Wt, G->F, G->C * KK, G->C, KK);
}

/* acc[r][v] += vdpbf16ps(the pair wp[w0 + r * ws] in every lane, xv[v]) */
static void dp_rows(cg_ctx *c, LLVMValueRef wp, LLVMValueRef w0, int64_t ws, const LLVMValueRef *xv, int mr, int nv,
		    LLVMValueRef acc[24][4])
{
	for (int r = 0; r < mr; r++) {
		LLVMValueRef wv = cg_splat(c, cg_load(c, c->i32, cg_gep_i32(c, wp, addk(c, w0, r * ws))));
		for (int v = 0; v < nv; v++)
			cg_store(c, cg_dpbf16(c, cg_load(c, c->v16, acc[r][v]), wv, xv[v]), acc[r][v]);
	}
}

/* conv_accumulate with bf16 pairs of channels (above): acc[r][v] sums
 * filter f0 + r over every channel pair and tap, input vectors from `load`. */
static void conv_accumulate_bf16(cg_ctx *c, const conv_geo *G, LLVMValueRef Wp, LLVMValueRef f0, LLVMValueRef oh,
				 LLVMValueRef khlo, LLVMValueRef khhi, LLVMValueRef kwlo, LLVMValueRef kwhi, int mr,
				 int nv, tap_loader *load, const void *ctx, LLVMValueRef acc[24][4])
{
	int64_t P = conv_pairs(G), KK = G->KH * G->KW;
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < nv; v++) {
			acc[r][v] = cg_alloca(c, c->v16, "acc");
			cg_store(c, LLVMConstNull(c->v16), acc[r][v]);
		}
	cg_loop p = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, P), 1);
	LLVMValueRef c0 = mulk(c, p.i, 2), c1 = addk(c, c0, 1);
	LLVMValueRef has2 = LLVMBuildICmp(c->B, LLVMIntSLT, c1, cg_i64(c, G->C), "");
	c1 = LLVMBuildSelect(c->B, has2, c1, c0, ""); /* a real channel, its values then zeroed */
	cg_loop kh = cg_loop_begin(c, khlo, khhi, 1);
	LLVMValueRef ih = add(c, sub(c, mulk(c, oh, G->SH), cg_i64(c, G->PH)), kh.i);
	LLVMValueRef wrow = add(c, mulk(c, p.i, KK), mulk(c, kh.i, G->KW));
	cg_loop kw = cg_loop_begin(c, kwlo, kwhi, 1);
	{
		LLVMValueRef x0[4], x1[4], xv[4];
		load(c, G, ctx, c0, ih, kw.i, nv, x0);
		load(c, G, ctx, c1, ih, kw.i, nv, x1);
		for (int v = 0; v < nv; v++) {
			if (G->C % 2)
				x1[v] = LLVMBuildSelect(c->B, has2, x1[v], LLVMConstNull(c->v16), "");
			xv[v] = cg_bf16_pairs(c, x0[v], x1[v]);
		}
		dp_rows(c, Wp, add(c, mulk(c, f0, P * KK), add(c, wrow, kw.i)), P * KK, xv, mr, nv, acc);
	}
	cg_loop_end(c, &kw);
	cg_loop_end(c, &kh);
	cg_loop_end(c, &p);
}

/* Batch-innermost input: vectors of 16 samples at output column ow, from sample s0. */
typedef struct cn_taps {
	LLVMValueRef X, ow, s0;
} cn_taps;

static void cn_load(cg_ctx *c, const conv_geo *G, const void *ctx, LLVMValueRef ci, LLVMValueRef ih, LLVMValueRef kw,
		    int nv, LLVMValueRef *xv)
{
	const cn_taps *t = ctx;
	LLVMValueRef iw = add(c, sub(c, mulk(c, t->ow, G->SW), cg_i64(c, G->PW)), kw);
	LLVMValueRef xoff = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, ci, G->H), ih), G->W), iw), c->g->bpad), t->s0);
	for (int v = 0; v < nv; v++)
		xv[v] = cg_vload(c, cg_gep(c, t->X, addk(c, xoff, 16 * v)), NULL);
}

/* One register tile of conv_fwd_tile at sample offset s0, nv vectors wide. */
static void conv_fwd_tile_block(cg_ctx *c, ir_node *n, const conv_geo *G, LLVMValueRef X, LLVMValueRef Wt,
				LLVMValueRef Wp, LLVMValueRef Bias, LLVMValueRef Y, LLVMValueRef f0, LLVMValueRef oh, LLVMValueRef ow_i, LLVMValueRef khlo, LLVMValueRef khhi,
				 LLVMValueRef kwlo, LLVMValueRef kwhi, LLVMValueRef s0, int mr, int nv)
{
	int64_t bp = c->g->bpad;
	LLVMValueRef acc[24][4]; /* tile_mr() rows x tile_nv() vectors */
	cn_taps taps = {X, ow_i, s0};
	if (Wp)
		conv_accumulate_bf16(c, G, Wp, f0, oh, khlo, khhi, kwlo, kwhi, mr, nv, cn_load, &taps, acc);
	else
		conv_accumulate(c, G, Wt, f0, oh, khlo, khhi, kwlo, kwhi, mr, nv, cn_load, &taps, acc);
	for (int r = 0; r < mr; r++) {
		LLVMValueRef fr = addk(c, f0, r);
		LLVMValueRef bv = Bias ? cg_splat(c, cg_load(c, c->f32, cg_gep(c, Bias, fr))) : NULL;
		LLVMValueRef yoff = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, fr, G->OH), oh), G->OW), ow_i), bp), s0);
		for (int v = 0; v < nv; v++) {
			LLVMValueRef val = cg_load(c, c->v16, acc[r][v]);
			if (bv)
				val = LLVMBuildFAdd(c->B, val, bv, "");
			cg_vstore(c, val, cg_gep(c, Y, addk(c, yoff, 16 * v)), NULL);
		}
	}
	/* the activation, out of line (filters are OH*OW*bp apart) */
	if (n->act) {
		LLVMValueRef y0 = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, f0, G->OH), oh), G->OW), ow_i), bp), s0);
		LLVMValueRef Ya = cg_act_dst(c, n); /* or in place */
		cg_call_epilogue(c, n->act, ACT_NONE, n->fa[IR_FA_ACT], nv, CG_VW, cg_gep(c, Y, y0), G->OH * G->OW * bp,
				 Ya ? cg_gep(c, Ya, y0) : NULL, Ya ? G->OH * G->OW * bp : 0, cg_i64(c, mr));
	}
}

static void conv_fwd_tile(cg_ctx *c, ir_node *n, const conv_geo *G, LLVMValueRef X, LLVMValueRef Wt,
			  LLVMValueRef Wp, LLVMValueRef Bias, LLVMValueRef Y, LLVMValueRef f0, LLVMValueRef oh, int mr,
			  int nv)
{
	LLVMValueRef khlo, khhi, kwlo, kwhi;
	tap_range(c, oh, G->SH, G->PH, G->KH, G->H, &khlo, &khhi);
	cg_loop ow = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, G->OW), 1);
	tap_range(c, ow.i, G->SW, G->PW, G->KW, G->W, &kwlo, &kwhi);
	LLVMValueRef nvec = nvec_dyn(c), nfull = LLVMBuildSDiv(c->B, nvec, cg_i64(c, nv), "");
	cg_loop vb = cg_loop_begin(c, cg_i64(c, 0), nfull, 1);
	conv_fwd_tile_block(c, n, G, X, Wt, Wp, Bias, Y, f0, oh, ow.i, khlo, khhi, kwlo, kwhi,
			    mulk(c, vb.i, (int64_t)nv * CG_VW), mr, nv);
	cg_loop_end(c, &vb);
	if (nv > 1) { /* the last vectors one at a time: small n computes no unused lanes */
		cg_loop v1 = cg_loop_begin(c, mulk(c, nfull, nv), nvec, 1);
		conv_fwd_tile_block(c, n, G, X, Wt, Wp, Bias, Y, f0, oh, ow.i, khlo, khhi, kwlo, kwhi, mulk(c, v1.i, CG_VW),
				    mr, 1);
		cg_loop_end(c, &v1);
	}
	cg_loop_end(c, &ow);
}

/* ---- sample-major convolution (small.c: inference on a few samples) ----
 * One sample at a time; register tiles of mr filters x nv vectors of 16
 * consecutive output columns of one output row.  Input columns are loaded
 * as vectors (a gather for a column stride > 1) with the lanes that fall in
 * the padding or past the row masked off. */

/* Lanes l of the vector of outputs ow0 + l that exist (ow0 + l < OW) and
 * read an input column inside the image for tap kw. */
static LLVMValueRef nc_lanes(cg_ctx *c, const conv_geo *G, LLVMValueRef ow0, LLVMValueRef kw)
{
	LLVMValueRef ow = add(c, cg_iota(c, 64), cg_splat(c, ow0));
	/* iw = ow*SW - PW + kw */
	LLVMValueRef iw = add(c, mul(c, ow, cg_splat(c, cg_i64(c, G->SW))), cg_splat(c, addk(c, kw, -G->PW)));
	LLVMValueRef in_row = LLVMBuildAnd(c->B, LLVMBuildICmp(c->B, LLVMIntSGE, iw, LLVMConstNull(LLVMTypeOf(iw)), ""),
					   LLVMBuildICmp(c->B, LLVMIntSLT, iw, cg_splat(c, cg_i64(c, G->W)), ""), "");
	LLVMValueRef exists = LLVMBuildICmp(c->B, LLVMIntSLT, ow, cg_splat(c, cg_i64(c, G->OW)), "");
	return LLVMBuildAnd(c->B, in_row, exists, "");
}

/* 16 input values x[row + (ow0 + l)*SW - PW + kw] under mask, 0 elsewhere. */
static LLVMValueRef nc_load(cg_ctx *c, const conv_geo *G, LLVMValueRef row, LLVMValueRef ow0, LLVMValueRef kw,
			    LLVMValueRef mask)
{
	LLVMValueRef first = addk(c, add(c, mulk(c, ow0, G->SW), kw), -G->PW);
	/* may point before the row (not inbounds): only the masked lanes are read */
	LLVMValueRef p = LLVMBuildGEP2(c->B, c->f32, row, &first, 1, "");
	if (G->SW == 1)
		return cg_vload(c, p, mask);
	LLVMValueRef e[CG_VW];
	for (int i = 0; i < CG_VW; i++)
		e[i] = LLVMConstInt(c->i64, (unsigned long long)(i * G->SW), 0);
	LLVMValueRef ptrs = LLVMBuildGEP2(c->B, c->f32, p, (LLVMValueRef[]){LLVMConstVector(e, CG_VW)}, 1, "");
	LLVMTypeRef over[2] = {c->v16, LLVMVectorType(c->ptr, CG_VW)};
	LLVMValueRef a[4] = {ptrs, cg_i32(c, 4), mask, LLVMConstNull(c->v16)};
	return cg_call_intr(c, "llvm.masked.gather", over, 2, a, 4);
}

/* Sample-major input: vectors of 16 output columns from owb, of one sample at X. */
typedef struct nc_taps {
	LLVMValueRef X, owb;
} nc_taps;

static void nc_taps_load(cg_ctx *c, const conv_geo *G, const void *ctx, LLVMValueRef ci, LLVMValueRef ih,
			 LLVMValueRef kw, int nv, LLVMValueRef *xv)
{
	const nc_taps *t = ctx;
	LLVMValueRef row = cg_gep(c, t->X, mulk(c, add(c, mulk(c, ci, G->H), ih), G->W));
	for (int v = 0; v < nv; v++) {
		LLVMValueRef ow0 = addk(c, t->owb, 16 * v);
		xv[v] = nc_load(c, G, row, ow0, kw, nc_lanes(c, G, ow0, kw));
	}
}

/* ... the last of the nv vectors holding `tail` outputs */
static void conv_nc_tile(cg_ctx *c, ir_node *n, const conv_geo *G, LLVMValueRef X, LLVMValueRef Wt, LLVMValueRef Wp,
			 LLVMValueRef Bias,
			 LLVMValueRef Y, LLVMValueRef Ya, LLVMValueRef f0, LLVMValueRef oh, LLVMValueRef owb, int mr, int nv,
			 int tail)
{
	LLVMValueRef acc[24][4], khlo, khhi;
	tap_range(c, oh, G->SH, G->PH, G->KH, G->H, &khlo, &khhi);
	nc_taps taps = {X, owb};
	if (Wp)
		conv_accumulate_bf16(c, G, Wp, f0, oh, khlo, khhi, cg_i64(c, 0), cg_i64(c, G->KW), mr, nv, nc_taps_load,
				     &taps, acc);
	else
		conv_accumulate(c, G, Wt, f0, oh, khlo, khhi, cg_i64(c, 0), cg_i64(c, G->KW), mr, nv, nc_taps_load, &taps,
				acc);
	for (int r = 0; r < mr; r++) {
		LLVMValueRef fr = addk(c, f0, r);
		LLVMValueRef bv = Bias ? cg_splat(c, cg_load(c, c->f32, cg_gep(c, Bias, fr))) : NULL;
		LLVMValueRef yrow = cg_gep(c, Y, mulk(c, add(c, mulk(c, fr, G->OH), oh), G->OW));
		for (int v = 0; v < nv; v++) {
			LLVMValueRef val = cg_load(c, c->v16, acc[r][v]);
			if (bv)
				val = LLVMBuildFAdd(c->B, val, bv, "");
			LLVMValueRef ow0 = addk(c, owb, 16 * v);
			cg_vstore(c, val, cg_gep(c, yrow, ow0), v == nv - 1 && tail < CG_VW ? cg_mask(c, tail) : NULL);
		}
	}
	if (n->act) { /* out of line: the polynomial's constants stay out of the loop above */
		LLVMValueRef y0 = add(c, mulk(c, add(c, mulk(c, f0, G->OH), oh), G->OW), owb);
		cg_call_epilogue(c, n->act, ACT_NONE, n->fa[IR_FA_ACT], nv, tail, cg_gep(c, Y, y0), G->OH * G->OW,
				 Ya ? cg_gep(c, Ya, y0) : NULL, Ya ? G->OH * G->OW : 0, cg_i64(c, mr));
	}
}

/* Tasks: (sample, filter block, output row, block of up to 64 columns). */
static void lower_conv_nc(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	conv_geo G = geometry(x, n, n->ia);
	int64_t nvt = (G.OW + 15) / 16;
	int top = tile_acc(c) >= 24 ? 4 : 1;
	int nv = nvt < top ? (int)nvt : top, mr = tile_mr(c, G.F, nv);
	int64_t ncb = (nvt + nv - 1) / nv, lastv = nvt - (ncb - 1) * nv;
	int64_t nfb = (G.F + mr - 1) / mr, last = G.F - (nfb - 1) * mr;
	LLVMValueRef X = cg_tensor(c, x), Wt = cg_tensor(c, operand(c, n, 1)), Y = cg_tensor(c, n);
	LLVMValueRef Bias = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL;
	LLVMValueRef Wp = cg_conv_bf16(c, n) ? pack_conv_weights(c, &G, Wt) : NULL;
	int64_t per = nfb * G.OH * ncb; /* tasks per sample */
	LLVMValueRef lo, hi;
	cg_partition(c, mulk(c, cg_batch_n(c), per), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef smp = LLVMBuildSDiv(c->B, t.i, cg_i64(c, per), "");
	LLVMValueRef rest = LLVMBuildSRem(c->B, t.i, cg_i64(c, per), "");
	LLVMValueRef fb = LLVMBuildSDiv(c->B, rest, cg_i64(c, G.OH * ncb), "");
	rest = LLVMBuildSRem(c->B, rest, cg_i64(c, G.OH * ncb), "");
	LLVMValueRef oh = LLVMBuildSDiv(c->B, rest, cg_i64(c, ncb), ""), cb = LLVMBuildSRem(c->B, rest, cg_i64(c, ncb), "");
	LLVMValueRef Xs = cg_gep(c, X, mulk(c, smp, x->size)), Ys = cg_gep(c, Y, mulk(c, smp, n->size));
	LLVMValueRef Ya = cg_act_dst(c, n); /* the activation's tensor, or NULL: in place */
	if (Ya)
		Ya = cg_gep(c, Ya, mulk(c, smp, n->size));
	LLVMValueRef f0 = mulk(c, fb, mr), owb = mulk(c, cb, 16 * nv);
	/* four shapes: last filter block or not, last column block or not */
	LLVMValueRef lastf = LLVMBuildICmp(c->B, LLVMIntEQ, fb, cg_i64(c, nfb - 1), "");
	LLVMValueRef lastc = LLVMBuildICmp(c->B, LLVMIntEQ, cb, cg_i64(c, ncb - 1), "");
	for (int fl = 0; fl < 2; fl++) {
		if (fl == 1 && last == mr)
			break;
		cg_if ff = {0};
		bool fsplit = last != mr;
		if (fsplit)
			ff = cg_if_begin(c, fl == 0 ? LLVMBuildNot(c->B, lastf, "") : lastf);
		int rows = fl == 0 ? mr : (int)last;
		int tail = (int)(G.OW - (ncb - 1) * 16 * nv - 16 * (lastv - 1)); /* outputs in the last vector */
		if (ncb == 1) {
			conv_nc_tile(c, n, &G, Xs, Wt, Wp, Bias, Ys, Ya, f0, oh, owb, rows, (int)lastv, tail);
		} else {
			cg_if fc = cg_if_begin(c, lastc);
			conv_nc_tile(c, n, &G, Xs, Wt, Wp, Bias, Ys, Ya, f0, oh, owb, rows, (int)lastv, tail);
			cg_if_else(c, &fc);
			conv_nc_tile(c, n, &G, Xs, Wt, Wp, Bias, Ys, Ya, f0, oh, owb, rows, nv, CG_VW);
			cg_if_end(c, &fc);
		}
		if (fsplit)
			cg_if_end(c, &ff);
	}
	cg_loop_end(c, &t);
}

/* y[f][oh][ow] = act(b[f] + sum_{c,kh,kw} w[f][c][kh][kw] x[c][oh*sh-ph+kh][ow*sw-pw+kw]) */
void lower_conv(cg_ctx *c, ir_node *n)
{
	if (operand(c, n, 0)->layout == LAYOUT_NC) {
		lower_conv_nc(c, n);
		return;
	}
	ir_node *x = operand(c, n, 0);
	conv_geo G = geometry(x, n, n->ia);
	int nv = tile_nv(c), mr = tile_mr(c, G.F, nv);
	int64_t nfb = (G.F + mr - 1) / mr, last = G.F - (nfb - 1) * mr;
	LLVMValueRef X = cg_tensor(c, x), Wt = cg_tensor(c, operand(c, n, 1)), Y = cg_tensor(c, n);
	LLVMValueRef Bias = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL;
	LLVMValueRef Wp = cg_conv_bf16(c, n) ? pack_conv_weights(c, &G, Wt) : NULL;
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, nfb * G.OH), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef fb = LLVMBuildSDiv(c->B, t.i, cg_i64(c, G.OH), ""), oh = LLVMBuildSRem(c->B, t.i, cg_i64(c, G.OH), "");
	LLVMValueRef f0 = mulk(c, fb, mr);
	if (last == mr) {
		conv_fwd_tile(c, n, &G, X, Wt, Wp, Bias, Y, f0, oh, mr, nv);
	} else {
		cg_if f = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, fb, cg_i64(c, nfb - 1), ""));
		conv_fwd_tile(c, n, &G, X, Wt, Wp, Bias, Y, f0, oh, (int)last, nv);
		cg_if_else(c, &f);
		conv_fwd_tile(c, n, &G, X, Wt, Wp, Bias, Y, f0, oh, mr, nv);
		cg_if_end(c, &f);
	}
	cg_loop_end(c, &t);
}

/* ---- convolution, gradient of the input ---- */

/* The input gradient walks the taps that reach an input downwards, k = the
 * last of lo, lo + s, ... < hi first: the dy positions (t0 - k)/s then
 * increase, tap after tap and tile after tile, an ascending stream that the
 * hardware prefetchers follow.  Upwards (positions falling within a tile,
 * rising across tiles) the first input gradient of VGG's stack ran at 67
 * GFLOP/s, where the forward convolution of the same shape runs at 230; now
 * 130-170.  Returns the loop (over j); *k = lo + (count - 1 - j) s. */
static cg_loop taps_down(cg_ctx *c, LLVMValueRef lo, LLVMValueRef hi, int64_t s, LLVMValueRef *k)
{
	LLVMValueRef count = LLVMBuildSDiv(c->B, addk(c, sub(c, hi, lo), s - 1), cg_i64(c, s), "");
	count = max0(c, count, cg_i64(c, 0));
	cg_loop j = cg_loop_begin(c, cg_i64(c, 0), count, 1);
	*k = add(c, lo, mulk(c, sub(c, sub(c, count, cg_i64(c, 1)), j.i), s));
	return j;
}

/* Positions ahead at which an input-gradient tile prefetches the activation
 * output its epilogue will read (measured: 2-8 alike, 4% of VGG's step). */
#define BX_PREFETCH 4

/* In bf16 the input gradient pairs filters: wq[c][q][kh][kw] = (w[2q][c][kh][kw],
 * w[2q + 1][c][kh][kw]) (the second 0 past an odd F), dy's two filters'
 * vectors interleaved as loaded. */
static LLVMValueRef pack_bx_weights(cg_ctx *c, const conv_geo *G, LLVMValueRef Wt)
{
	int64_t KK = G->KH * G->KW;
	return pack_weight_pairs(c, G, Wt, G->C, KK, G->F, G->C * KK);
}

/* The bf16 sums of conv_bx_tile_block: per filter pair and reaching tap,
 * one vdpbf16ps per accumulator. */
static void bx_accumulate_bf16(cg_ctx *c, const conv_geo *G, LLVMValueRef DY, LLVMValueRef Wq, LLVMValueRef c0,
			       LLVMValueRef t0, LLVMValueRef u0, LLVMValueRef khlo, LLVMValueRef khhi,
			       LLVMValueRef kwlo, LLVMValueRef kwhi, LLVMValueRef s0, int mr, int nv,
			       LLVMValueRef acc[24][4])
{
	int64_t bp = c->g->bpad, Q = (G->F + 1) / 2, KK = G->KH * G->KW;
	cg_loop q = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, Q), 1);
	LLVMValueRef f0 = mulk(c, q.i, 2), f1 = addk(c, f0, 1);
	LLVMValueRef has2 = LLVMBuildICmp(c->B, LLVMIntSLT, f1, cg_i64(c, G->F), "");
	f1 = LLVMBuildSelect(c->B, has2, f1, f0, "");
	LLVMValueRef kh, kw;
	cg_loop hj = taps_down(c, khlo, khhi, G->SH, &kh);
	LLVMValueRef oh = LLVMBuildExactSDiv(c->B, sub(c, t0, kh), cg_i64(c, G->SH), "");
	cg_loop kj = taps_down(c, kwlo, kwhi, G->SW, &kw);
	{
		LLVMValueRef ow = LLVMBuildExactSDiv(c->B, sub(c, u0, kw), cg_i64(c, G->SW), "");
		LLVMValueRef pos = add(c, mulk(c, oh, G->OW), ow);
		LLVMValueRef d0 = add(c, mulk(c, add(c, mulk(c, f0, G->OH * G->OW), pos), bp), s0);
		LLVMValueRef d1 = add(c, mulk(c, add(c, mulk(c, f1, G->OH * G->OW), pos), bp), s0);
		LLVMValueRef dv[4];
		for (int v = 0; v < nv; v++) {
			LLVMValueRef a = cg_vload(c, cg_gep(c, DY, addk(c, d0, 16 * v)), NULL);
			LLVMValueRef b = cg_vload(c, cg_gep(c, DY, addk(c, d1, 16 * v)), NULL);
			if (G->F % 2)
				b = LLVMBuildSelect(c->B, has2, b, LLVMConstNull(c->v16), "");
			dv[v] = cg_bf16_pairs(c, a, b);
		}
		LLVMValueRef wbase = add(c, mulk(c, q.i, KK), add(c, mulk(c, kh, G->KW), kw));
		dp_rows(c, Wq, add(c, wbase, mulk(c, c0, Q * KK)), Q * KK, dv, mr, nv, acc);
	}
	cg_loop_end(c, &kj);
	cg_loop_end(c, &hj);
	cg_loop_end(c, &q);
}

/* One register tile of conv_bx_tile at sample offset s0, nv vectors wide. */
static void conv_bx_tile_block(cg_ctx *c, ir_node *n, const conv_geo *G, LLVMValueRef DY, LLVMValueRef Wt, LLVMValueRef Wp, LLVMValueRef DX,
				LLVMValueRef Yact, LLVMValueRef c0, LLVMValueRef ih, LLVMValueRef iw_i, LLVMValueRef t0,
				LLVMValueRef u0, LLVMValueRef khlo, LLVMValueRef khhi, LLVMValueRef kwlo, LLVMValueRef kwhi, LLVMValueRef s0, int mr, int nv)
{
	int64_t bp = c->g->bpad;
	LLVMValueRef acc[24][4]; /* tile_mr() rows x tile_nv() vectors */
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < nv; v++) {
			acc[r][v] = cg_alloca(c, c->v16, "acc");
			cg_store(c, LLVMConstNull(c->v16), acc[r][v]);
		}
	if (n->dact) {
		/* the activation's output that the epilogue reads, BX_PREFETCH
		 * positions ahead: streamed from memory, it stalled the epilogue */
		int64_t D = BX_PREFETCH;
		LLVMValueRef y0 = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, c0, G->H), ih), G->W), addk(c, iw_i, D)), bp), s0);
		for (int r = 0; r < mr; r++)
			for (int v = 0; v < nv; v++)
				cg_prefetch(c, Yact, addk(c, y0, r * G->H * G->W * bp + 16 * v), 3);
	}
	/* only the taps with (t0 - kh) and (u0 - kw) multiples of the stride
	 * reach this input: the first of them, then every stride-th */
	khlo = add(c, khlo, LLVMBuildSRem(c->B, sub(c, t0, khlo), cg_i64(c, G->SH), ""));
	kwlo = add(c, kwlo, LLVMBuildSRem(c->B, sub(c, u0, kwlo), cg_i64(c, G->SW), ""));
	if (Wp) {
		bx_accumulate_bf16(c, G, DY, Wp, c0, t0, u0, khlo, khhi, kwlo, kwhi, s0, mr, nv, acc);
	} else {
		cg_loop f = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, G->F), 1);
		LLVMValueRef kh, kw;
		cg_loop hj = taps_down(c, khlo, khhi, G->SH, &kh);
		LLVMValueRef oh = LLVMBuildExactSDiv(c->B, sub(c, t0, kh), cg_i64(c, G->SH), "");
		cg_loop kj = taps_down(c, kwlo, kwhi, G->SW, &kw);
		{
			LLVMValueRef ow = LLVMBuildExactSDiv(c->B, sub(c, u0, kw), cg_i64(c, G->SW), "");
			LLVMValueRef doff = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, f.i, G->OH), oh), G->OW), ow), bp), s0);
			LLVMValueRef dv[4];
			for (int v = 0; v < nv; v++)
				dv[v] = cg_vload(c, cg_gep(c, DY, addk(c, doff, 16 * v)), NULL);
			LLVMValueRef wbase = add(c, mulk(c, f.i, G->C * G->KH * G->KW), add(c, mulk(c, kh, G->KW), kw));
			fma_rows(c, Wt, add(c, wbase, mulk(c, c0, G->KH * G->KW)), G->KH * G->KW, dv, mr, nv, acc);
		}
		cg_loop_end(c, &kj);
		cg_loop_end(c, &hj);
		cg_loop_end(c, &f);
	}
	for (int r = 0; r < mr; r++) {
		LLVMValueRef cr = addk(c, c0, r);
		LLVMValueRef off = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, cr, G->H), ih), G->W), iw_i), bp), s0);
		for (int v = 0; v < nv; v++)
			cg_vstore(c, cg_load(c, c->v16, acc[r][v]), cg_gep(c, DX, addk(c, off, 16 * v)), NULL);
	}
	if (n->dact) {
		LLVMValueRef x0 = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, c0, G->H), ih), G->W), iw_i), bp), s0);
		cg_call_epilogue(c, ACT_NONE, n->dact, n->fa[IR_FA_ACT], nv, CG_VW, cg_gep(c, DX, x0), G->H * G->W * bp,
				 cg_gep(c, Yact, x0), G->H * G->W * bp, cg_i64(c, mr));
	}
}

static void conv_bx_tile(cg_ctx *c, ir_node *n, const conv_geo *G, LLVMValueRef DY, LLVMValueRef Wt,
			 LLVMValueRef Wp, LLVMValueRef DX, LLVMValueRef Yact, LLVMValueRef c0, LLVMValueRef ih, int mr, int nv)
{
	/* taps kh with oh = (ih + ph - kh)/sh integral and in [0, OH) */
	LLVMValueRef t0 = addk(c, ih, G->PH);
	LLVMValueRef khlo = max0(c, cg_i64(c, 0), sub(c, t0, cg_i64(c, (G->OH - 1) * G->SH)));
	LLVMValueRef khhi = cg_min_i64(c, cg_i64(c, G->KH), addk(c, t0, 1));
	cg_loop iw = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, G->W), 1);
	LLVMValueRef u0 = addk(c, iw.i, G->PW);
	LLVMValueRef kwlo = max0(c, cg_i64(c, 0), sub(c, u0, cg_i64(c, (G->OW - 1) * G->SW)));
	LLVMValueRef kwhi = cg_min_i64(c, cg_i64(c, G->KW), addk(c, u0, 1));
	LLVMValueRef nvec = nvec_dyn(c), nfull = LLVMBuildSDiv(c->B, nvec, cg_i64(c, nv), "");
	cg_loop vb = cg_loop_begin(c, cg_i64(c, 0), nfull, 1);
	conv_bx_tile_block(c, n, G, DY, Wt, Wp, DX, Yact, c0, ih, iw.i, t0, u0, khlo, khhi, kwlo, kwhi,
			   mulk(c, vb.i, (int64_t)nv * CG_VW), mr, nv);
	cg_loop_end(c, &vb);
	if (nv > 1) { /* the last vectors one at a time: small n computes no unused lanes */
		cg_loop v1 = cg_loop_begin(c, mulk(c, nfull, nv), nvec, 1);
		conv_bx_tile_block(c, n, G, DY, Wt, Wp, DX, Yact, c0, ih, iw.i, t0, u0, khlo, khhi, kwlo, kwhi,
				   mulk(c, v1.i, CG_VW), mr, 1);
		cg_loop_end(c, &v1);
	}
	cg_loop_end(c, &iw);
}

/* The kernels below vectorise over 16 samples: they need the batch
 * innermost (CN), as the main graph has it (small.c's sample-major copy
 * has no backward pass). */
bool can_lower_conv_bwd(const cg_ctx *c, const ir_node *n)
{
	for (int k = 0; k < n->nin; k++) {
		const ir_node *in = &c->g->nodes[n->in[k]];
		if (in->batched && in->layout != LAYOUT_CN)
			return false;
	}
	return !n->batched || n->layout == LAYOUT_CN;
}

void lower_conv_bx(cg_ctx *c, ir_node *n)
{
	ir_node *dy = operand(c, n, 0);
	conv_geo G = geometry(n, dy, n->ia); /* x has the shape of this node */
	int nv = tile_nv(c), mr = tile_mr(c, G.C, nv);
	int64_t ncb = (G.C + mr - 1) / mr, last = G.C - (ncb - 1) * mr;
	LLVMValueRef DY = cg_tensor(c, dy), Wt = cg_tensor(c, operand(c, n, 1)), DX = cg_tensor(c, n);
	LLVMValueRef Yact = n->dact ? cg_tensor(c, operand(c, n, 2)) : NULL;
	LLVMValueRef Wp = cg_conv_bf16(c, n) ? pack_bx_weights(c, &G, Wt) : NULL;
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, ncb * G.H), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef cb = LLVMBuildSDiv(c->B, t.i, cg_i64(c, G.H), ""), ih = LLVMBuildSRem(c->B, t.i, cg_i64(c, G.H), "");
	LLVMValueRef c0 = mulk(c, cb, mr);
	if (last == mr) {
		conv_bx_tile(c, n, &G, DY, Wt, Wp, DX, Yact, c0, ih, mr, nv);
	} else {
		cg_if f = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, cb, cg_i64(c, ncb - 1), ""));
		conv_bx_tile(c, n, &G, DY, Wt, Wp, DX, Yact, c0, ih, (int)last, nv);
		cg_if_else(c, &f);
		conv_bx_tile(c, n, &G, DY, Wt, Wp, DX, Yact, c0, ih, mr, nv);
		cg_if_end(c, &f);
	}
	cg_loop_end(c, &t);
}

/* ---- convolution, gradient of the weights and bias ---- */

/* Columns ahead at which the weight gradient prefetches the next output
 * row's new input row (measured: 0 and 8 alike; 3-6 % of ResNet's and VGG's
 * step against no prefetch). */
#define BW_PREFETCH 8
/* bf16 weight gradient: an output row's converted dy on the stack, at most */
#define BW_DYC_BYTES (64 * 1024)

/* Input channels per weight-gradient tile of a 1x1 convolution: 4 filters x
 * 6 channels, 24 accumulators. */
#define BW_CHANNELS 6

/* Loads sample vector `v` of a CN row, lanes past n zeroed. */
static LLVMValueRef load_samples(cg_ctx *c, LLVMValueRef base, LLVMValueRef off, LLVMValueRef mask)
{
	return cg_vload(c, cg_gep(c, base, off), mask);
}

/* Iterates the sample vectors of the n real samples: full vectors unmasked,
 * then one masked tail.  body(ctx, s0, mask) is emitted twice. */
typedef void sample_body(cg_ctx *c, void *ctx, LLVMValueRef s0, LLVMValueRef mask);

/* for_samples `step` (16, or 32 with mask1) samples at a time: the tail's
 * first 16 lanes' mask goes to body, the next 16's into *mask1 (NULL for
 * the full steps). */
static void for_samples_by(cg_ctx *c, sample_body *body, void *ctx, int64_t step, LLVMValueRef *mask1)
{
	LLVMValueRef n = cg_batch_n(c);
	LLVMValueRef full = LLVMBuildSDiv(c->B, n, cg_i64(c, step), "");
	if (mask1)
		*mask1 = NULL;
	cg_loop v = cg_loop_begin(c, cg_i64(c, 0), full, 1);
	body(c, ctx, mulk(c, v.i, step), NULL);
	cg_loop_end(c, &v);
	LLVMValueRef s0 = mulk(c, full, step);
	LLVMValueRef rem = sub(c, n, s0);
	cg_if f = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntSGT, rem, cg_i64(c, 0), ""));
	if (mask1)
		*mask1 = cg_mask_dyn(c, sub(c, rem, cg_i64(c, CG_VW)));
	body(c, ctx, s0, cg_mask_dyn(c, rem));
	cg_if_end(c, &f);
	if (mask1)
		*mask1 = NULL;
}

static void for_samples(cg_ctx *c, sample_body *body, void *ctx) { for_samples_by(c, body, ctx, CG_VW, NULL); }

/* dw tile: MR filters x KG consecutive kw taps of one (c, kh), accumulated as
 * vectors over samples.  Per position and sample vector it loads MR dy
 * vectors and KG x vectors for MR*KG multiply-adds, and a task streams only
 * MR filters of dy, so the data stays in cache.
 *
 * Where a 16-float vector takes two registers (AVX2: tile_acc() < 24), the
 * tile works on 8 lanes at a time: each input row is walked twice (while it
 * is in L1), for lanes 0-7 and then 8-15 of every 16-sample vector, with the
 * accumulators of the other half kept in memory, and the two halves of each
 * accumulator are put back together before the horizontal sum.  Each
 * lane adds the same products in the same order as a 16-lane accumulator
 * would, so the sums are bit-identical, and twice the accumulators fit:
 * 3 filters x 3 taps (13 of 16 registers) instead of 1 x 3. */
typedef struct bw_ctx {
	LLVMValueRef X, DY, xoff[8], doff[8], acc[8][8];
	bool bf16;         /* 32 samples a step in bf16 pairs (cg_conv_bf16) */
	LLVMValueRef mask1; /* bf16: the mask of samples 16-31 of the step (NULL: all) */
	int nsv;           /* float32, whole vectors: sample vectors per walk of a row (1: one walk each) */
	LLVMValueRef svmask[4]; /* nsv > 1: each vector's real lanes (NULL: all) */
	LLVMValueRef valid[8]; /* per kw: tap inside the input (NULL = always) */
	int mr, kg;
	int w;             /* lanes per accumulator: 16, or 8 (two halves) */
	LLVMValueRef half; /* w == 8: the half being walked, i64 0 or 1 */
	LLVMTypeRef vt;    /* <w x float> */
	const conv_geo *G;
	LLVMValueRef f0, ci, kw0;  /* the tile: filters from f0, channel ci, taps from kw0 */
	bool chan;                 /* a 1x1 kernel: k indexes channels ci + k (one tap), not taps */
	LLVMValueRef oh, ih;       /* the output row and the input row of the tap being walked */
	LLVMValueRef xpf;          /* nsv > 1: the offset of the x line to prefetch at this position */
	LLVMValueRef owlo, owhi;   /* the positions where every tap of the group is inside the input */
	/* bf16, stride 1, inside the input: tap k + 1's converted x at this position is tap
	 * k's at the next one, carried over (<16 x i32> each); NULL: each tap converts its own */
	LLVMValueRef carry[8];
	/* bf16: the output row's dy, converted at its first tap row (first: i1) and read
	 * back at the others: dyc[((s0 / 32) OW + ow) mr + r] (<16 x i32>); NULL: converted
	 * at each */
	LLVMValueRef dyc, first, ow;
} bw_ctx;

/* w lanes of a CN row from p; lanes where `mask` (w lanes) is off read as 0. */
static LLVMValueRef load_lanes(cg_ctx *c, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef mask)
{
	if (!mask) {
		LLVMValueRef v = LLVMBuildLoad2(c->B, vt, p, "");
		LLVMSetAlignment(v, 4);
		return v;
	}
	LLVMTypeRef over[2] = {vt, c->ptr};
	LLVMValueRef a[4] = {p, cg_i32(c, 4), mask, LLVMConstNull(vt)};
	return cg_call_intr(c, "llvm.masked.load", over, 2, a, 4);
}

/* Lanes [lo, lo + w) of a 16-lane value. */
static LLVMValueRef lanes(cg_ctx *c, LLVMValueRef v, int lo, int w)
{
	LLVMValueRef e[CG_VW];
	for (int i = 0; i < w; i++)
		e[i] = cg_i32(c, lo + i);
	return LLVMBuildShuffleVector(c->B, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(e, (unsigned)w), "");
}

/* Tap k's x for samples [s0, s0 + 32) as 16 bf16 pairs (mask, b->mask1: the halves'). */
static LLVMValueRef x_bf16(cg_ctx *c, const bw_ctx *b, int k, LLVMValueRef s0, LLVMValueRef mask)
{
	LLVMValueRef lo = load_lanes(c, c->v16, cg_gep(c, b->X, add(c, b->xoff[k], s0)), mask);
	LLVMValueRef hi = load_lanes(c, c->v16, cg_gep(c, b->X, add(c, b->xoff[k], addk(c, s0, CG_VW))), b->mask1);
	return cg_bf16_seq(c, lo, hi);
}

/* bw_body in bf16: samples [s0, s0 + 32), mask and b->mask1 their halves'. */
static void bw_body_bf16(cg_ctx *c, bw_ctx *b, LLVMValueRef s0, LLVMValueRef mask)
{
	LLVMValueRef dv[8], s1 = addk(c, s0, CG_VW), slot[8];
	LLVMTypeRef vi = LLVMVectorType(c->i32, CG_VW);
	cg_if f = {0};
	if (b->dyc) {
		LLVMValueRef at = mulk(c, add(c, mulk(c, LLVMBuildLShr(c->B, s0, cg_i64(c, 5), ""), b->G->OW), b->ow), b->mr);
		for (int r = 0; r < b->mr; r++)
			slot[r] = LLVMBuildGEP2(c->B, vi, b->dyc, (LLVMValueRef[]){addk(c, at, r)}, 1, "");
		f = cg_if_begin(c, b->first);
	}
	for (int r = 0; r < b->mr; r++) {
		LLVMValueRef lo = load_lanes(c, c->v16, cg_gep(c, b->DY, add(c, b->doff[r], s0)), mask);
		LLVMValueRef hi = load_lanes(c, c->v16, cg_gep(c, b->DY, add(c, b->doff[r], s1)), b->mask1);
		dv[r] = cg_bf16_seq(c, lo, hi);
		if (b->dyc)
			cg_store(c, dv[r], slot[r]);
	}
	if (b->dyc) {
		cg_if_end(c, &f);
		for (int r = 0; r < b->mr; r++)
			dv[r] = cg_load(c, vi, slot[r]);
	}
	LLVMValueRef xs[8];
	for (int k = 0; k < b->kg; k++) {
		cg_if f = {0};
		if (b->valid[k])
			f = cg_if_begin(c, b->valid[k]);
		LLVMValueRef xv = b->carry[0] && k < b->kg - 1 ? cg_load(c, vi, b->carry[k]) : x_bf16(c, b, k, s0, mask);
		xs[k] = xv;
		for (int r = 0; r < b->mr; r++)
			cg_store(c, cg_dpbf16(c, cg_load(c, c->v16, b->acc[r][k]), dv[r], xv), b->acc[r][k]);
		if (b->valid[k])
			cg_if_end(c, &f);
	}
	for (int k = 0; b->carry[0] && k < b->kg - 1; k++) /* for the next position */
		cg_store(c, xs[k + 1], b->carry[k]);
}

/* The float32 multiply-adds of one vector (b->w lanes) of samples from s0
 * at this position: mr dy loads, then per tap (inside the input) one x load
 * for mr multiply-adds. */
static void bw_vector(cg_ctx *c, bw_ctx *b, LLVMValueRef s0, LLVMValueRef mask)
{
	LLVMValueRef dv[8];
	for (int r = 0; r < b->mr; r++)
		dv[r] = load_lanes(c, b->vt, cg_gep(c, b->DY, add(c, b->doff[r], s0)), mask);
	for (int k = 0; k < b->kg; k++) {
		cg_if f = {0};
		if (b->valid[k])
			f = cg_if_begin(c, b->valid[k]);
		LLVMValueRef xv = load_lanes(c, b->vt, cg_gep(c, b->X, add(c, b->xoff[k], s0)), mask);
		for (int r = 0; r < b->mr; r++)
			cg_store(c, cg_fma(c, dv[r], xv, cg_load(c, b->vt, b->acc[r][k])), b->acc[r][k]);
		if (b->valid[k])
			cg_if_end(c, &f);
	}
}

static void bw_body(cg_ctx *c, void *p, LLVMValueRef s0, LLVMValueRef mask)
{
	bw_ctx *b = p;
	if (b->bf16) {
		bw_body_bf16(c, b, s0, mask);
		return;
	}
	LLVMValueRef m = mask;
	if (b->nsv > 1) { /* every sample vector of the chunk at this position */
		for (int v = 0; v < b->nsv; v++)
			cg_prefetch(c, b->X, add(c, b->xpf, addk(c, s0, (int64_t)v * CG_VW)), 3);
		for (int v = 0; v < b->nsv; v++)
			bw_vector(c, b, addk(c, s0, (int64_t)v * CG_VW), b->svmask[v]);
		return;
	}
	if (b->w < CG_VW) { /* this half of the vector, and of its mask */
		s0 = add(c, s0, mulk(c, b->half, b->w));
		if (mask)
			m = LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntEQ, b->half, cg_i64(c, 0), ""),
					    lanes(c, mask, 0, b->w), lanes(c, mask, b->w, b->w), "");
	}
	bw_vector(c, b, s0, m);
}

/* Positions o in [lo, hi) for which o*s - p + k lands in [0, extent) for
 * every k in [k0, k0 + kg). */
static void pos_range(cg_ctx *c, LLVMValueRef k0, int64_t kg, int64_t s, int64_t p, int64_t extent, int64_t O,
		      LLVMValueRef *lo, LLVMValueRef *hi)
{
	/* o >= ceil((p - k0) / s) */
	LLVMValueRef a = sub(c, cg_i64(c, p), k0);
	LLVMValueRef l = LLVMBuildSDiv(c->B, addk(c, a, s - 1), cg_i64(c, s), "");
	*lo = LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSGT, a, cg_i64(c, 0), ""), l, cg_i64(c, 0), "");
	/* o <= (extent - 1 + p - (k0 + kg - 1)) / s */
	LLVMValueRef e = sub(c, cg_i64(c, extent - 1 + p - (kg - 1)), k0);
	LLVMValueRef h = addk(c, LLVMBuildSDiv(c->B, e, cg_i64(c, s), ""), 1);
	h = LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, e, cg_i64(c, 0), ""), cg_i64(c, 0), h, "");
	*hi = cg_min_i64(c, cg_i64(c, O), h);
	*lo = cg_min_i64(c, *lo, *hi);
}

/* b->xoff[k] (and, when checked, b->valid[k]) of each tap at position ow */
static void bw_taps_at(cg_ctx *c, bw_ctx *b, LLVMValueRef ow, bool checked)
{
	const conv_geo *G = b->G;
	LLVMValueRef iw0 = add(c, sub(c, mulk(c, ow, G->SW), cg_i64(c, G->PW)), b->kw0);
	for (int k = 0; k < b->kg; k++) {
		LLVMValueRef iw = b->chan ? iw0 : addk(c, iw0, k);
		LLVMValueRef xrow = mulk(c, add(c, mulk(c, b->chan ? addk(c, b->ci, k) : b->ci, G->H), b->ih), G->W);
		b->xoff[k] = mulk(c, add(c, xrow, iw), c->g->bpad);
		b->valid[k] = NULL;
		if (checked)
			b->valid[k] = LLVMBuildAnd(c->B, LLVMBuildICmp(c->B, LLVMIntSGE, iw, cg_i64(c, 0), ""),
						   LLVMBuildICmp(c->B, LLVMIntSLT, iw, cg_i64(c, G->W), ""), "");
	}
}

/* Positions ow in [lo, hi) of the output row b->oh, input row b->ih, for the
 * sample vector at s0 (mask: its real lanes, NULL = all); `checked` tests
 * each tap. */
static void bw_positions(cg_ctx *c, bw_ctx *b, LLVMValueRef lo, LLVMValueRef hi, bool checked, LLVMValueRef s0,
			 LLVMValueRef mask)
{
	const conv_geo *G = b->G;
	int64_t bp = c->g->bpad;
	/* bf16 inside the input at stride 1: taps 0 .. kg-2 of the first
	 * position converted before the walk, then carried (bw_body_bf16) */
	bool carry = b->bf16 && !checked && G->SW == 1 && !b->chan && b->kg > 1;
	if (carry) {
		LLVMTypeRef vi = LLVMVectorType(c->i32, CG_VW);
		for (int k = 0; k < b->kg - 1; k++)
			b->carry[k] = cg_alloca(c, vi, "xcarry");
		cg_if any = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntSLT, lo, hi, ""));
		bw_taps_at(c, b, lo, false);
		for (int k = 0; k < b->kg - 1; k++)
			cg_store(c, x_bf16(c, b, k, s0, mask), b->carry[k]);
		cg_if_end(c, &any);
	}
	cg_loop ow = cg_loop_begin(c, lo, hi, 1);
	b->ow = ow.i;
	bw_taps_at(c, b, ow.i, checked);
	for (int r = 0; r < b->mr; r++)
		b->doff[r] = mulk(c, add(c, mulk(c, add(c, mulk(c, addk(c, b->f0, r), G->OH), b->oh), G->OW), ow.i), bp);
	if (b->nsv > 1) {
		/* the input row that the next output row's last tap reads first,
		 * BW_PREFETCH columns ahead (the walk of a new row stalled on it) */
		LLVMValueRef ihn = addk(c, mulk(c, b->oh, G->SH), G->SH - G->PH + G->KH - 1);
		LLVMValueRef iwn = addk(c, mulk(c, ow.i, G->SW), BW_PREFETCH);
		b->xpf = mulk(c, add(c, mulk(c, add(c, mulk(c, b->ci, G->H), ihn), G->W), iwn), bp);
	}
	bw_body(c, b, s0, mask);
	cg_loop_end(c, &ow);
	for (int k = 0; k < 8; k++)
		b->carry[k] = NULL;
}

/* One sample vector along the whole row: the border positions test each
 * tap, the interior runs unchecked.  Positions innermost: the loop runs
 * OW times with addresses in constant steps (a lane sees its positions in
 * the same order as with the samples innermost). */
static void bw_row(cg_ctx *c, void *p, LLVMValueRef s0, LLVMValueRef mask)
{
	bw_ctx *b = p;
	bw_positions(c, b, cg_i64(c, 0), b->owlo, true, s0, mask);
	bw_positions(c, b, b->owlo, b->owhi, false, s0, mask);
	bw_positions(c, b, b->owhi, cg_i64(c, b->G->OW), true, s0, mask);
}


/* The tile of filters [f0, f0 + mr), channel ci, taps kw in [kw0, kw0 + kg),
 * every kh.  Output rows outermost: the dy rows of one output row serve every
 * kh (and both halves) while they are in L1, and the task streams dy and x
 * once; each (kh, half)'s accumulators wait in memory between rows.  Every
 * accumulator still takes its positions in increasing order. */
static void conv_bw_tile(cg_ctx *c, const conv_geo *G, LLVMValueRef X, LLVMValueRef DY, LLVMValueRef DW,
			 LLVMValueRef f0, LLVMValueRef ci, LLVMValueRef kw0, int mr, int kg, int w, bool bf16, bool chan)
{
	int64_t nsv = c->g->bpad / CG_VW;
	bw_ctx b = {.X = X, .DY = DY, .bf16 = bf16, .nsv = !bf16 && w == CG_VW && nsv <= 4 ? (int)nsv : 1, .mr = mr, .kg = kg, .w = w, .vt = LLVMVectorType(c->f32, (unsigned)w),
		    .G = G, .f0 = f0, .ci = ci, .kw0 = kw0, .chan = chan};
	int64_t halves = CG_VW / w;
	LLVMTypeRef saved_t = LLVMArrayType(b.vt, (unsigned)(G->KH * halves));
	LLVMValueRef saved[8][8]; /* [kh][half] of each accumulator */
	for (int r = 0; r < mr; r++)
		for (int k = 0; k < kg; k++) {
			b.acc[r][k] = cg_alloca(c, b.vt, "acc");
			saved[r][k] = cg_alloca(c, saved_t, "acc.saved");
			cg_store(c, LLVMConstNull(saved_t), saved[r][k]);
		}
	LLVMValueRef owlo, owhi, khlo, khhi;
	pos_range(c, kw0, chan ? 1 : kg, G->SW, G->PW, G->W, G->OW, &owlo, &owhi);
	b.owlo = owlo, b.owhi = owhi;
	/* bf16: an output row's dy serves every tap row kh; converted once */
	int64_t dyc_n = (c->g->bpad + 2 * CG_VW - 1) / (2 * CG_VW) * G->OW * mr;
	if (bf16 && G->KH > 1 && dyc_n * 64 <= BW_DYC_BYTES)
		b.dyc = cg_alloca(c, LLVMArrayType(LLVMVectorType(c->i32, CG_VW), (unsigned)dyc_n), "dyc");
	cg_loop oh = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, G->OH), 1);
	tap_range(c, oh.i, G->SH, G->PH, G->KH, G->H, &khlo, &khhi);
	cg_loop kh = cg_loop_begin(c, khlo, khhi, 1);
	b.first = LLVMBuildICmp(c->B, LLVMIntEQ, kh.i, khlo, "");
	LLVMValueRef ih = add(c, sub(c, mulk(c, oh.i, G->SH), cg_i64(c, G->PH)), kh.i);
	/* two halves: the row is walked for each, while it is in L1 */
	cg_loop hl = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, halves), 1);
	b.half = hl.i;
	LLVMValueRef idx[2] = {cg_i64(c, 0), add(c, mulk(c, kh.i, halves), hl.i)}, slot[8][8];
	for (int r = 0; r < mr; r++)
		for (int k = 0; k < kg; k++) {
			slot[r][k] = LLVMBuildInBoundsGEP2(c->B, saved_t, saved[r][k], idx, 2, "");
			cg_store(c, cg_load(c, b.vt, slot[r][k]), b.acc[r][k]);
		}
	b.ih = ih, b.oh = oh.i;
	if (b.bf16) {
		for_samples_by(c, bw_row, &b, 2 * CG_VW, &b.mask1); /* 32 samples in bf16 pairs */
	} else if (b.nsv > 1) {
		/* one walk for all the sample vectors: unmasked for a whole chunk */
		LLVMValueRef n = cg_batch_n(c);
		cg_if f = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, n, cg_i64(c, c->g->bpad), ""));
		bw_row(c, &b, cg_i64(c, 0), NULL);
		cg_if_else(c, &f);
		for (int v = 0; v < b.nsv; v++)
			b.svmask[v] = cg_mask_dyn(c, sub(c, n, cg_i64(c, (int64_t)v * CG_VW)));
		bw_row(c, &b, cg_i64(c, 0), NULL);
		cg_if_end(c, &f);
		for (int v = 0; v < b.nsv; v++)
			b.svmask[v] = NULL;
	} else {
		for_samples(c, bw_row, &b);
	}
	for (int r = 0; r < mr; r++)
		for (int k = 0; k < kg; k++)
			cg_store(c, cg_load(c, b.vt, b.acc[r][k]), slot[r][k]);
	cg_loop_end(c, &hl);
	cg_loop_end(c, &kh);
	cg_loop_end(c, &oh);
	LLVMValueRef whole[CG_VW];
	for (int i = 0; i < CG_VW; i++)
		whole[i] = cg_i32(c, i);
	cg_loop kq = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, G->KH), 1);
	for (int r = 0; r < mr; r++)
		for (int k = 0; k < kg; k++) {
			LLVMValueRef off = chan ? add(c, mulk(c, addk(c, f0, r), G->C), addk(c, ci, k)) /* KH = KW = 1 */
					       : add(c, mulk(c, add(c, mulk(c, addk(c, f0, r), G->C), ci), G->KH * G->KW),
						     add(c, mulk(c, kq.i, G->KW), addk(c, kw0, k)));
			LLVMValueRef i0[2] = {cg_i64(c, 0), mulk(c, kq.i, halves)};
			LLVMValueRef v = cg_load(c, b.vt, LLVMBuildInBoundsGEP2(c->B, saved_t, saved[r][k], i0, 2, ""));
			if (halves > 1) { /* lanes 0-7 from the first walk, 8-15 from the second */
				LLVMValueRef i1[2] = {cg_i64(c, 0), addk(c, mulk(c, kq.i, halves), 1)};
				LLVMValueRef hi = cg_load(c, b.vt, LLVMBuildInBoundsGEP2(c->B, saved_t, saved[r][k], i1, 2, ""));
				v = LLVMBuildShuffleVector(c->B, v, hi, LLVMConstVector(whole, CG_VW), "");
			}
			cg_store(c, cg_hsum(c, v), cg_gep(c, DW, off));
		}
	cg_loop_end(c, &kq);
}

/* dw[f][c][kh][kw] = sum_{oh, ow, s < n} dy[f][oh][ow][s] x[c][ih][iw][s].
 * Tasks: (filter block, c, kw group). */
void lower_conv_bw(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *dy = operand(c, n, 1);
	conv_geo G = geometry(x, dy, n->ia);
	/* a 1x1 kernel (AVX-512 tiles): the tile's second index runs over
	 * BW_CHANNELS input channels instead of its one tap, so that a
	 * position's loads serve mr x BW_CHANNELS multiply-adds, not mr */
	bool chan = G.KH == 1 && G.KW == 1 && tile_acc(c) >= 24;
	int kg = chan ? (int)(G.C < BW_CHANNELS ? G.C : BW_CHANNELS) : G.KW <= 5 ? (int)G.KW : G.KW % 4 == 0 ? 4 : 5;
	int64_t nkg = chan ? 1 : (G.KW + kg - 1) / kg;
	int64_t ncg = chan ? (G.C + kg - 1) / kg : G.C; /* tasks along the channels */
	int64_t lastkg = chan ? G.C - (ncg - 1) * kg : G.KW - (nkg - 1) * kg;
	int mr, w = CG_VW;
	if (tile_acc(c) >= 24) {
		mr = tile_mr(c, G.F, kg <= 4 ? 5 : kg); /* mr * kg accumulators, at most 24 */
		if (mr * kg > 24)
			mr = 24 / kg;
	} else {
		/* half vectors: mr * kg accumulators, mr dy vectors and one x vector in 13 of the 16 registers */
		w = CG_VW / 2;
		mr = rows_for(G.F, 13 / (kg + 1) < 8 ? 13 / (kg + 1) : 8); /* a divisor: one variant, half the code */
	}
	NNC_ASSERT(mr <= 8 && kg <= 8); /* bw_ctx's arrays */
	int64_t nfb = (G.F + mr - 1) / mr, lastmr = G.F - (nfb - 1) * mr;
	LLVMValueRef X = cg_tensor(c, x), DY = cg_tensor(c, dy), DW = cg_tensor(c, n);
	bool bf16 = cg_conv_bf16(c, n);
	NNC_ASSERT(!bf16 || w == CG_VW);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, nfb * ncg * nkg), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef q = t.i;
	LLVMValueRef gi = LLVMBuildSRem(c->B, q, cg_i64(c, nkg), "");
	q = LLVMBuildSDiv(c->B, q, cg_i64(c, nkg), "");
	LLVMValueRef cgi = LLVMBuildSRem(c->B, q, cg_i64(c, ncg), "");
	LLVMValueRef fb = LLVMBuildSDiv(c->B, q, cg_i64(c, ncg), "");
	LLVMValueRef f0 = mulk(c, fb, mr), ci = chan ? mulk(c, cgi, kg) : cgi, kw0 = chan ? cg_i64(c, 0) : mulk(c, gi, kg);
	/* up to four static variants: last filter block, last kw (or channel) group */
	LLVMValueRef lastf = LLVMBuildICmp(c->B, LLVMIntEQ, fb, cg_i64(c, nfb - 1), "");
	LLVMValueRef lastg = chan ? LLVMBuildICmp(c->B, LLVMIntEQ, cgi, cg_i64(c, ncg - 1), "")
				  : LLVMBuildICmp(c->B, LLVMIntEQ, gi, cg_i64(c, nkg - 1), "");
	int mrs[2] = {mr, (int)lastmr}, kgs[2] = {kg, (int)lastkg};
	for (int a = 0; a < 2; a++) {
		if (a == 1 && lastmr == mr)
			break;
		cg_if fa = {0};
		if (lastmr != mr)
			fa = cg_if_begin(c, a ? lastf : LLVMBuildNot(c->B, lastf, ""));
		for (int bq = 0; bq < 2; bq++) {
			if (bq == 1 && lastkg == kg)
				break;
			cg_if fbq = {0};
			if (lastkg != kg)
				fbq = cg_if_begin(c, bq ? lastg : LLVMBuildNot(c->B, lastg, ""));
			conv_bw_tile(c, &G, X, DY, DW, f0, ci, kw0, mrs[a], kgs[bq], w, bf16, chan);
			if (lastkg != kg)
				cg_if_end(c, &fbq);
		}
		if (lastmr != mr)
			cg_if_end(c, &fa);
	}
	cg_loop_end(c, &t);
}

typedef struct sum_ctx {
	LLVMValueRef base, off, acc;
} sum_ctx;

static void sum_body(cg_ctx *c, void *p, LLVMValueRef s0, LLVMValueRef mask)
{
	sum_ctx *b = p;
	LLVMValueRef v = load_samples(c, b->base, add(c, b->off, s0), mask);
	cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->v16, b->acc), v, ""), b->acc);
}

/* db[f] = sum over positions and the n samples of dy[f][...] */
void lower_conv_bg(cg_ctx *c, ir_node *n)
{
	ir_node *dy = operand(c, n, 0);
	int64_t F = n->size, P = dy->size / F, bp = c->g->bpad;
	LLVMValueRef DY = cg_tensor(c, dy), DB = cg_tensor(c, n);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, F), &lo, &hi);
	cg_loop f = cg_loop_begin(c, lo, hi, 1);
	sum_ctx b = {.base = DY, .acc = cg_alloca(c, c->v16, "acc")};
	cg_store(c, LLVMConstNull(c->v16), b.acc);
	cg_loop p = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, P), 1);
	b.off = mulk(c, add(c, mulk(c, f.i, P), p.i), bp);
	for_samples(c, sum_body, &b);
	cg_loop_end(c, &p);
	cg_store(c, cg_hsum(c, cg_load(c, c->v16, b.acc)), cg_gep(c, DB, f.i));
	cg_loop_end(c, &f);
}

/* ---- pooling ---- */

/* Sample-major pooling (small.c): scalar code, one output at a time; tasks
 * are (sample, channel, output row). */
static void lower_pool_nc(cg_ctx *c, ir_node *n, int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t OH, int64_t OW)
{
	ir_node *x = operand(c, n, 0);
	int64_t C = x->dims[0], H = x->dims[1], W = x->dims[2];
	bool max = n->op == IR_MAXPOOL;
	LLVMValueRef X = cg_tensor(c, x), Y = cg_tensor(c, n), lo, hi;
	cg_partition(c, mulk(c, cg_batch_n(c), C * OH), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef plane = LLVMBuildSDiv(c->B, t.i, cg_i64(c, OH), ""); /* sample * C + channel */
	LLVMValueRef oh = LLVMBuildSRem(c->B, t.i, cg_i64(c, OH), "");
	cg_loop ow = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, OW), 1);
	{
		LLVMValueRef acc = cg_alloca(c, c->f32, "acc");
		cg_store(c, cg_f32(c, max ? -__builtin_inff() : 0.0), acc);
		cg_loop i = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KH), 1);
		LLVMValueRef ih = add(c, mulk(c, oh, SH), i.i);
		cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KW), 1);
		{
			LLVMValueRef iw = add(c, mulk(c, ow.i, SW), j.i);
			LLVMValueRef xv = cg_load(c, c->f32, cg_gep(c, X, add(c, mulk(c, add(c, mulk(c, plane, H), ih), W), iw)));
			LLVMValueRef a = cg_load(c, c->f32, acc);
			cg_store(c, max ? LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOGT, xv, a, ""), xv, a, "")
					: LLVMBuildFAdd(c->B, a, xv, ""),
				 acc);
		}
		cg_loop_end(c, &j);
		cg_loop_end(c, &i);
		LLVMValueRef r = cg_load(c, c->f32, acc);
		if (!max)
			r = LLVMBuildFMul(c->B, r, cg_f32(c, 1.0 / (double)(KH * KW)), "");
		cg_store(c, r, cg_gep(c, Y, add(c, mulk(c, add(c, mulk(c, plane, OH), oh), OW), ow.i)));
	}
	cg_loop_end(c, &ow);
	cg_loop_end(c, &t);
}

/* Forward pooling; tasks are channels.  Sample vectors up to ceil(n/16). */
void lower_pool(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	int64_t C = x->dims[0], H = x->dims[1], W = x->dims[2], bp = c->g->bpad;
	int64_t KH, KW, SH, SW, OH, OW;
	if (n->op == IR_GAVGPOOL) {
		KH = H, KW = W, SH = SW = 1, OH = OW = 1;
	} else {
		KH = n->ia[0], KW = n->ia[1], SH = n->ia[2], SW = n->ia[3], OH = n->dims[1], OW = n->dims[2];
	}
	if (x->layout == LAYOUT_NC) {
		lower_pool_nc(c, n, KH, KW, SH, SW, OH, OW);
		return;
	}
	LLVMValueRef X = cg_tensor(c, x), Y = cg_tensor(c, n), nv = nvec_dyn(c);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, C * OH), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef ch = LLVMBuildSDiv(c->B, t.i, cg_i64(c, OH), ""), oh = LLVMBuildSRem(c->B, t.i, cg_i64(c, OH), "");
	cg_loop ow = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, OW), 1);
	cg_loop v = cg_loop_begin(c, cg_i64(c, 0), nv, 1);
	{
		LLVMValueRef s0 = mulk(c, v.i, 16);
		LLVMValueRef acc = cg_alloca(c, c->v16, "acc");
		bool max = n->op == IR_MAXPOOL;
		cg_store(c, max ? cg_vf32(c, -__builtin_inff()) : LLVMConstNull(c->v16), acc);
		/* constant trip counts: LLVM unrolls small windows completely */
		cg_loop i = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KH), 1);
		LLVMValueRef ih = add(c, mulk(c, oh, SH), i.i);
		cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KW), 1);
		{
			LLVMValueRef iw = add(c, mulk(c, ow.i, SW), j.i);
			LLVMValueRef off = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, ch, H), ih), W), iw), bp), s0);
			LLVMValueRef xv = cg_vload(c, cg_gep(c, X, off), NULL), a = cg_load(c, c->v16, acc);
			LLVMValueRef r = max ? LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOGT, xv, a, ""), xv, a, "")
					     : LLVMBuildFAdd(c->B, a, xv, "");
			cg_store(c, r, acc);
		}
		cg_loop_end(c, &j);
		cg_loop_end(c, &i);
		LLVMValueRef r = cg_load(c, c->v16, acc);
		if (!max)
			r = LLVMBuildFMul(c->B, r, cg_vf32(c, 1.0 / (double)(KH * KW)), "");
		LLVMValueRef yoff = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, ch, OH), oh), OW), ow.i), bp), s0);
		cg_vstore(c, r, cg_gep(c, Y, yoff), NULL);
	}
	cg_loop_end(c, &v);
	cg_loop_end(c, &ow);
	cg_loop_end(c, &t);
}

/* Pooling gradients; tasks are channels, so no two threads touch one dx
 * value.  Windows that tile the input (stride = size) write each dx value
 * once, with the fused activation derivative applied on the way; otherwise
 * dx is cleared, every window adds its share, and the derivative follows in
 * a pass over the channel while it is still in cache.  avg: dy/k to each
 * position; max: dy to the first position holding the maximum, per sample. */
void lower_pool_bwd(cg_ctx *c, ir_node *n)
{
	bool maxp = n->op == IR_MAXPOOL_BWD;
	ir_node *x = operand(c, n, 0);
	ir_node *dy = operand(c, n, maxp ? 2 : 1);
	int64_t C = x->dims[0], H = x->dims[1], W = x->dims[2], bp = c->g->bpad;
	int64_t KH, KW, SH, SW, OH, OW;
	if (n->op == IR_GAVGPOOL_BWD) {
		KH = H, KW = W, SH = SW = 1, OH = OW = 1;
	} else {
		NNC_ASSERT(dy->rank == 3 && x->rank == 3);
		KH = n->ia[0], KW = n->ia[1], SH = n->ia[2], SW = n->ia[3], OH = dy->dims[1], OW = dy->dims[2];
	}
	bool direct = KH == SH && KW == SW;
	bool covered = direct && OH * KH == H && OW * KW == W;
	LLVMValueRef X = cg_tensor(c, x), DY = cg_tensor(c, dy), DX = cg_tensor(c, n), nv = nvec_dyn(c);
	LLVMValueRef Y = maxp ? cg_tensor(c, operand(c, n, 1)) : NULL;
	LLVMValueRef A = n->dact ? cg_tensor(c, operand(c, n, n->nin - 1)) : NULL; /* activation output */
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, C), &lo, &hi);
	cg_loop ch = cg_loop_begin(c, lo, hi, 1);
	if (!covered) {
		cg_loop z = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, H * W), 1);
		cg_loop v = cg_loop_begin(c, cg_i64(c, 0), nv, 1);
		LLVMValueRef off = add(c, mulk(c, add(c, mulk(c, ch.i, H * W), z.i), bp), mulk(c, v.i, 16));
		cg_vstore(c, LLVMConstNull(c->v16), cg_gep(c, DX, off), NULL);
		cg_loop_end(c, &v);
		cg_loop_end(c, &z);
	}
	cg_loop oh = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, OH), 1);
	cg_loop ow = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, OW), 1);
	cg_loop v = cg_loop_begin(c, cg_i64(c, 0), nv, 1);
	{
		LLVMValueRef s0 = mulk(c, v.i, 16);
		LLVMValueRef yoff = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, ch.i, OH), oh.i), OW), ow.i), bp), s0);
		LLVMValueRef g = cg_vload(c, cg_gep(c, DY, yoff), NULL);
		LLVMValueRef yv = Y ? cg_vload(c, cg_gep(c, Y, yoff), NULL) : NULL;
		LLVMValueRef taken = NULL;
		if (Y) {
			taken = cg_alloca(c, c->m16, "taken");
			cg_store(c, LLVMConstNull(c->m16), taken);
		} else {
			g = LLVMBuildFMul(c->B, g, cg_vf32(c, 1.0 / (double)(KH * KW)), "");
		}
		cg_loop i = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KH), 1);
		LLVMValueRef ih = add(c, mulk(c, oh.i, SH), i.i);
		cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KW), 1);
		{
			LLVMValueRef iw = add(c, mulk(c, ow.i, SW), j.i);
			LLVMValueRef off = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, ch.i, H), ih), W), iw), bp), s0);
			LLVMValueRef p = cg_gep(c, DX, off);
			LLVMValueRef val = g;
			if (Y) {
				LLVMValueRef xv = cg_vload(c, cg_gep(c, X, off), NULL);
				LLVMValueRef tk = cg_load(c, c->m16, taken);
				LLVMValueRef hit = LLVMBuildAnd(c->B, LLVMBuildFCmp(c->B, LLVMRealOEQ, xv, yv, ""),
								LLVMBuildNot(c->B, tk, ""), "");
				cg_store(c, LLVMBuildOr(c->B, tk, hit, ""), taken);
				val = LLVMBuildSelect(c->B, hit, g, LLVMConstNull(c->v16), "");
			}
			if (direct) {
				if (A)
					val = cg_dact(c, n->dact, n->fa[IR_FA_ACT], cg_vload(c, cg_gep(c, A, off), NULL), val);
				cg_vstore(c, val, p, NULL);
			} else {
				cg_vstore(c, LLVMBuildFAdd(c->B, cg_vload(c, p, NULL), val, ""), p, NULL);
			}
		}
		cg_loop_end(c, &j);
		cg_loop_end(c, &i);
	}
	cg_loop_end(c, &v);
	cg_loop_end(c, &ow);
	cg_loop_end(c, &oh);
	if (A && !direct) {
		cg_loop z = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, H * W), 1);
		cg_loop v2 = cg_loop_begin(c, cg_i64(c, 0), nv, 1);
		LLVMValueRef off = add(c, mulk(c, add(c, mulk(c, ch.i, H * W), z.i), bp), mulk(c, v2.i, 16));
		LLVMValueRef p = cg_gep(c, DX, off);
		cg_vstore(c, cg_dact(c, n->dact, n->fa[IR_FA_ACT], cg_vload(c, cg_gep(c, A, off), NULL), cg_vload(c, p, NULL)), p, NULL);
		cg_loop_end(c, &v2);
		cg_loop_end(c, &z);
	}
	cg_loop_end(c, &ch);
}
