/*
 * cg_rnn.c - the lowering of the recurrent layers (docs/architecture.md
 * "Recurrent layers"): LSTM and GRU over the T steps of a [T, d] value, the
 * states taken out of them, W_hh packed in panels, and the backward pass of
 * the recurrence (dW_hh is a per-position DENSE_BWD_W of the states one
 * step later, RNN_HPREV).
 *
 * The input projection of every step (x_t W_ih + b_ih) is one per-position
 * DENSE before the op: cg_kernels.c's GEMM over the n T rows at once.  What
 * is left is sequential in t, so one op function runs all T steps: at each
 * step the h_{t-1} of this thread's samples times W_hh, in register tiles of
 * samples x 16-float vectors (a column panel of W_hh, contiguous after
 * RNN_PACK, stays in L1 while every sample tile uses it), then the gates,
 * element-wise.  A sample's arithmetic does not depend on which samples
 * share its tile (each accumulator lane adds its k in order), so the
 * threads split the samples, with no barrier between the steps, and
 * results are the same for any chunking and thread count.
 *
 * The op's result is what the backward pass needs, a row of K H floats per
 * position of each sample:
 *   LSTM  [h | c | i f g o]         the gates after their activations, K = 6
 *   GRU   [h | r z n | hn]          hn = h_{t-1} W_hn + b_hn, K = 5
 * and RNN_OUT copies the states h out of it ([T, H], or the last [H]).
 *
 * The backward op runs t from T-1 down to 0 and writes d xp, the gradient
 * of the step's pre-activations from x, a row of G H per position.  While
 * step t runs, row t-1 of d xp (not written yet) holds the carries to step
 * t-1, so the pass needs no memory beyond its result:
 *   [0, H)    dh_rec = dhp_t W_hh^T (the product at the end of step t)
 *   [H, 2H)   LSTM: dc_t f_t;  GRU: dh_t z_t
 *   [2H, 3H)  GRU: dhn_t = dn_t r_t, the part of dhp_t not in row t
 *             (the product reads dr, dz from row t and dhn from here)
 * Row T-1's carries start at zero.
 */
#include "cg.h"

#include "cg_math.h"

static ir_node *operand(cg_ctx *c, ir_node *n, int k) { return &c->g->nodes[n->in[k]]; }
static LLVMValueRef I(cg_ctx *c, int64_t v) { return cg_i64(c, v); }
static LLVMValueRef add(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(c->B, a, b, ""); }
static LLVMValueRef addk(cg_ctx *c, LLVMValueRef a, int64_t k) { return LLVMBuildAdd(c->B, a, cg_i64(c, k), ""); }
static LLVMValueRef mulk(cg_ctx *c, LLVMValueRef a, int64_t k) { return LLVMBuildMul(c->B, a, cg_i64(c, k), ""); }
static LLVMValueRef vadd(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(c->B, a, b, ""); }
static LLVMValueRef vsub(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(c->B, a, b, ""); }
static LLVMValueRef vmul(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(c->B, a, b, ""); }
static LLVMValueRef one(cg_ctx *c) { return cg_vf32(c, 1.0); }
static LLVMValueRef at(cg_ctx *c, LLVMValueRef base, LLVMValueRef i) { return cg_gep(c, base, i); }
static LLVMValueRef vld(cg_ctx *c, LLVMValueRef base, LLVMValueRef i, LLVMValueRef mask)
{
	return cg_vload(c, at(c, base, i), mask);
}
static void vst(cg_ctx *c, LLVMValueRef v, LLVMValueRef base, LLVMValueRef i, LLVMValueRef mask)
{
	cg_vstore(c, v, at(c, base, i), mask);
}
/* v (1 - v): the derivative of the sigmoid from its value */
static LLVMValueRef dsig(cg_ctx *c, LLVMValueRef v) { return vmul(c, v, vsub(c, one(c), v)); }
/* 1 - v^2: the derivative of tanh from its value */
static LLVMValueRef dtanh(cg_ctx *c, LLVMValueRef v) { return vsub(c, one(c), vmul(c, v, v)); }

/* ---- register tiles: mr rows x nv vectors of accumulators ---- */

#define TILE_MR 8
#define TILE_NV 3

typedef struct tile {
	int mr, nv;
	LLVMValueRef tmask; /* the last vector's lanes, NULL: all 16 */
	LLVMValueRef acc[TILE_MR][TILE_NV];
} tile;

/* Accumulators set to init[j0 + ...] (the same for every row), or zero */
static tile tile_begin(cg_ctx *c, int mr, int nv, int tail, LLVMValueRef init)
{
	tile t = {.mr = mr, .nv = nv, .tmask = tail < CG_VW ? cg_mask(c, tail) : NULL};
	for (int v = 0; v < nv; v++) {
		LLVMValueRef x = init ? vld(c, init, I(c, 16 * v), v == nv - 1 ? t.tmask : NULL) : LLVMConstNull(c->v16);
		for (int r = 0; r < mr; r++) {
			t.acc[r][v] = cg_alloca(c, c->v16, "acc");
			cg_store(c, x, t.acc[r][v]);
		}
	}
	return t;
}

/* acc[r][v] += A(r) B(v), A(r) = a0[r sa], vector v of B at brow + v bvs */
static void tile_step(cg_ctx *c, tile *t, LLVMValueRef a0, int64_t sa, LLVMValueRef brow, int64_t bvs)
{
	LLVMValueRef bv[TILE_NV];
	for (int v = 0; v < t->nv; v++)
		bv[v] = vld(c, brow, I(c, v * bvs), v == t->nv - 1 ? t->tmask : NULL);
	for (int r = 0; r < t->mr; r++) {
		LLVMValueRef av = cg_splat(c, cg_load(c, c->f32, at(c, a0, I(c, r * sa))));
		for (int v = 0; v < t->nv; v++)
			cg_store(c, cg_fma(c, av, bv[v], cg_load(c, c->v16, t->acc[r][v])), t->acc[r][v]);
	}
}

/* C(r, 16 v ...) = acc[r][v], C(r, .) at c0 + r sc */
static void tile_store(cg_ctx *c, const tile *t, LLVMValueRef c0, int64_t sc)
{
	for (int r = 0; r < t->mr; r++)
		for (int v = 0; v < t->nv; v++)
			vst(c, cg_load(c, c->v16, t->acc[r][v]), c0, I(c, r * sc + 16 * v), v == t->nv - 1 ? t->tmask : NULL);
}

/* The tile shape for the target (cg_kernels.c's gemm chooses the same way):
 * AVX-512, up to 8 rows x 3 vectors; AVX2 (a <16 x float> in two of its 16
 * registers), vacc rows x 1 vector. */
static void tile_shape(const cg_ctx *c, int64_t N, int *mr, int *nv)
{
	int64_t nvec = (N + CG_VW - 1) / CG_VW;
	if (c->vacc >= 24 || c->vacc == 0) {
		*nv = nvec >= TILE_NV ? TILE_NV : (int)nvec;
		*mr = TILE_MR;
	} else {
		*nv = 1;
		*mr = c->vacc < TILE_MR ? c->vacc : TILE_MR;
	}
}

/* The column blocks of N: `full` blocks of 16 nv columns, then (if N is
 * not a multiple) one of last_nv vectors, the last with last_tail lanes. */
typedef struct colblocks {
	int64_t full;
	int last_nv, last_tail;
} colblocks;

static colblocks col_blocks(int64_t N, int nv)
{
	int64_t jw = 16 * (int64_t)nv, rest = N % jw;
	colblocks b = {N / jw, 0, 0};
	if (rest) {
		b.last_nv = (int)((rest + CG_VW - 1) / CG_VW);
		b.last_tail = (int)(rest - 16 * (b.last_nv - 1));
	}
	return b;
}

/* ---- the product of a step: samples as the rows ---- */

/* C(s, j) = bias[j] + sum over the segments of A(s, k) B(k, j), for the
 * samples s of [lo, hi): A(s, k) = seg.a[s sa + k] for k in [k0, k1) of
 * each segment, C(s, j) = c[s sc + j], j < N.  B is K x N packed in
 * panels of 16 columns (RNN_PACK): B(k, j) = b[(j / 16) K 16 + 16 k + j % 16],
 * so that a tile's columns of B are K x 16 contiguous floats, not K rows
 * 4 KiB apart (one L1 set for all of them).  Each segment's k range may be a
 * run-time value: none at the first step. */
typedef struct step_prod {
	struct {
		LLVMValueRef a, k0, k1;
	} seg[2];
	int nseg;
	int64_t sa, K, sc, N;
	LLVMValueRef b, c, bias;
} step_prod;

static void step_tile(cg_ctx *c, const step_prod *p, LLVMValueRef s0, LLVMValueRef j0, int mr, int nv, int tail)
{
	tile t = tile_begin(c, mr, nv, tail, p->bias ? at(c, p->bias, j0) : NULL);
	LLVMValueRef panel = at(c, p->b, mulk(c, j0, p->K)); /* (j0 / 16) K 16 */
	for (int q = 0; q < p->nseg; q++) {
		LLVMValueRef arow = at(c, p->seg[q].a, mulk(c, s0, p->sa));
		cg_loop k = cg_loop_begin(c, p->seg[q].k0, p->seg[q].k1, 1);
		tile_step(c, &t, at(c, arow, k.i), p->sa, at(c, panel, mulk(c, k.i, CG_VW)), p->K * CG_VW);
		cg_loop_end(c, &k);
	}
	tile_store(c, &t, at(c, p->c, add(c, mulk(c, s0, p->sc), j0)), p->sc);
}

/* The samples [lo, hi) of one column block: tiles of mr rows, then one
 * tile of the rest (a tile for each possible size, so that every sample
 * shares its tile's reads of B) */
static void step_rows(cg_ctx *c, const step_prod *p, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef j0, int mr, int nv,
		      int tail)
{
	LLVMValueRef cnt = LLVMBuildSub(c->B, hi, lo, "");
	LLVMValueRef end = add(c, lo, mulk(c, LLVMBuildSDiv(c->B, cnt, I(c, mr), ""), mr));
	cg_loop s = cg_loop_begin(c, lo, end, mr);
	step_tile(c, p, s.i, j0, mr, nv, tail);
	cg_loop_end(c, &s);
	LLVMValueRef rest = LLVMBuildSub(c->B, hi, end, "");
	for (int r = 1; r < mr; r++) {
		cg_if f = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, rest, I(c, r), ""));
		step_tile(c, p, end, j0, r, nv, tail);
		cg_if_end(c, &f);
	}
}

/* Column blocks outside, sample tiles inside: a panel of B (K x 16 nv) is
 * read once per step from memory and then from L1 by every sample tile. */
static void step_product(cg_ctx *c, const step_prod *p, LLVMValueRef lo, LLVMValueRef hi)
{
	int mr, nv;
	tile_shape(c, p->N, &mr, &nv);
	colblocks b = col_blocks(p->N, nv);
	if (b.full) {
		cg_loop j = cg_loop_begin(c, I(c, 0), I(c, b.full), 1);
		step_rows(c, p, lo, hi, mulk(c, j.i, 16 * (int64_t)nv), mr, nv, CG_VW);
		cg_loop_end(c, &j);
	}
	if (b.last_nv)
		step_rows(c, p, lo, hi, I(c, b.full * 16 * nv), mr, b.last_nv, b.last_tail);
}

/* ---- forward ---- */

typedef struct cell_env {
	int64_t H;
	LLVMValueRef row, prev, xrow; /* this step's saved row, the previous step's (any row at t = 0), xp's row */
	LLVMValueRef has_prev;        /* i1: t > 0 */
	LLVMValueRef drow, dprev, dy; /* backward: d xp's rows t and t-1 (t at t = 0), dy's value at t (or NULL: 0) */
} cell_env;

/* The previous step's value at off + j, or 0 at t = 0 */
static LLVMValueRef prev_or_zero(cg_ctx *c, const cell_env *e, int64_t off, LLVMValueRef j, LLVMValueRef mask)
{
	return LLVMBuildSelect(c->B, e->has_prev, vld(c, e->prev, addk(c, j, off), mask), LLVMConstNull(c->v16), "");
}

/* a = xp_t + (h_{t-1} W_hh + b_hh) (the product left the latter at the
 * gates' places):  i f o = sigmoid, g = tanh,  c = f c_{t-1} + i g,
 * h = o tanh(c) */
static void lstm_cell(cg_ctx *c, LLVMValueRef j, LLVMValueRef m, void *env)
{
	cell_env *e = env;
	int64_t H = e->H;
	LLVMValueRef gate[4];
	for (int k = 0; k < 4; k++) {
		LLVMValueRef a = vadd(c, vld(c, e->xrow, addk(c, j, k * H), m), vld(c, e->row, addk(c, j, (2 + k) * H), m));
		gate[k] = k == 2 ? cgm_tanh(c->B, a) : cgm_sigmoid(c->B, a);
	}
	LLVMValueRef cp = prev_or_zero(c, e, H, j, m);
	LLVMValueRef cc = vadd(c, vmul(c, gate[1], cp), vmul(c, gate[0], gate[2]));
	LLVMValueRef h = vmul(c, gate[3], cgm_tanh(c->B, cc));
	vst(c, h, e->row, j, m);
	vst(c, cc, e->row, addk(c, j, H), m);
	for (int k = 0; k < 4; k++)
		vst(c, gate[k], e->row, addk(c, j, (2 + k) * H), m);
}

/* r = sigmoid(xp_r + hp_r), z = sigmoid(xp_z + hp_z), hn = hp_n,
 * n = tanh(xp_n + r hn), h = (1 - z) n + z h_{t-1}  (hp = h_{t-1} W_hh + b_hh,
 * left by the product at r z n's places) */
static void gru_cell(cg_ctx *c, LLVMValueRef j, LLVMValueRef m, void *env)
{
	cell_env *e = env;
	int64_t H = e->H;
	LLVMValueRef r = cgm_sigmoid(c->B, vadd(c, vld(c, e->xrow, j, m), vld(c, e->row, addk(c, j, H), m)));
	LLVMValueRef z = cgm_sigmoid(c->B, vadd(c, vld(c, e->xrow, addk(c, j, H), m), vld(c, e->row, addk(c, j, 2 * H), m)));
	LLVMValueRef hn = vld(c, e->row, addk(c, j, 3 * H), m);
	LLVMValueRef nn = cgm_tanh(c->B, vadd(c, vld(c, e->xrow, addk(c, j, 2 * H), m), vmul(c, r, hn)));
	LLVMValueRef hp = prev_or_zero(c, e, 0, j, m);
	LLVMValueRef h = vadd(c, vmul(c, vsub(c, one(c), z), nn), vmul(c, z, hp));
	vst(c, h, e->row, j, m);
	vst(c, r, e->row, addk(c, j, H), m);
	vst(c, z, e->row, addk(c, j, 2 * H), m);
	vst(c, nn, e->row, addk(c, j, 3 * H), m);
	vst(c, hn, e->row, addk(c, j, 4 * H), m);
}

/* LSTM, GRU: (xp [T, G H], packed W_hh [H, G H], b_hh [G H]) -> saved [T, K H] */
void lower_rnn(cg_ctx *c, ir_node *n)
{
	ir_node *xp = operand(c, n, 0), *w = operand(c, n, 1), *b = operand(c, n, 2);
	bool lstm = n->op == IR_LSTM;
	int64_t T = n->dims[0], RW = n->dims[1], GH = b->dims[0], H = GH / (lstm ? 4 : 3), SS = T * RW;
	LLVMValueRef X = cg_tensor(c, xp), W = cg_tensor(c, w), Bh = cg_tensor(c, b), S = cg_tensor(c, n), lo, hi;
	cg_partition(c, cg_batch_n(c), &lo, &hi);
	cg_loop t = cg_loop_begin(c, I(c, 0), I(c, T), 1);
	LLVMValueRef has_prev = LLVMBuildICmp(c->B, LLVMIntSGT, t.i, I(c, 0), "");
	LLVMValueRef tp = LLVMBuildSelect(c->B, has_prev, addk(c, t.i, -1), I(c, 0), "");
	LLVMValueRef row = mulk(c, t.i, RW), prow = mulk(c, tp, RW);
	/* the gates' pre-activations from h: G H values at 2H (LSTM), H (GRU) */
	step_prod p = {.nseg = 1, .sa = SS, .K = H, .sc = SS, .N = GH, .b = W, .bias = Bh};
	p.seg[0].a = at(c, S, prow); /* h_{t-1}; no k at t = 0 */
	p.seg[0].k0 = I(c, 0);
	p.seg[0].k1 = LLVMBuildSelect(c->B, has_prev, I(c, H), I(c, 0), "");
	p.c = at(c, S, addk(c, row, lstm ? 2 * H : H));
	step_product(c, &p, lo, hi);
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef base = mulk(c, s.i, SS);
	cell_env e = {.H = H,
		      .row = at(c, S, add(c, base, row)),
		      .prev = at(c, S, add(c, base, prow)),
		      .xrow = at(c, X, add(c, mulk(c, s.i, T * GH), mulk(c, t.i, GH))),
		      .has_prev = has_prev};
	cg_vec_loop(c, H, lstm ? lstm_cell : gru_cell, &e);
	cg_loop_end(c, &s);
	cg_loop_end(c, &t);
}

static void zero_vec(cg_ctx *c, LLVMValueRef j, LLVMValueRef m, void *env)
{
	vst(c, LLVMConstNull(c->v16), *(LLVMValueRef *)env, j, m);
}

typedef struct copy_env {
	LLVMValueRef src, dst;
} copy_env;

static void copy_vec(cg_ctx *c, LLVMValueRef j, LLVMValueRef m, void *env)
{
	copy_env *e = env;
	vst(c, vld(c, e->src, j, m), e->dst, j, m);
}

/* RNN_OUT: y[s][t] = h of saved row t (every t, or t = T-1 into y[s]);
 * RNN_HPREV: y[s][t] = h of saved row t-1, y[s][0] = 0 */
void lower_rnn_out(cg_ctx *c, ir_node *n)
{
	ir_node *sv = operand(c, n, 0);
	int64_t T = sv->dims[0], RW = sv->dims[1], H = n->ia[1];
	bool last = n->ia[0], shift = n->op == IR_RNN_HPREV;
	LLVMValueRef S = cg_tensor(c, sv), Y = cg_tensor(c, n), lo, hi;
	cg_partition(c, cg_batch_n(c), &lo, &hi);
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	if (shift) {
		LLVMValueRef y0 = at(c, Y, mulk(c, s.i, T * H));
		cg_vec_loop(c, H, zero_vec, &y0);
	}
	cg_loop t = cg_loop_begin(c, I(c, last ? T - 1 : 0), I(c, shift ? T - 1 : T), 1);
	LLVMValueRef yt = shift ? addk(c, t.i, 1) : t.i;
	copy_env e = {at(c, S, add(c, mulk(c, s.i, T * RW), mulk(c, t.i, RW))),
		      at(c, Y, last ? mulk(c, s.i, H) : add(c, mulk(c, s.i, T * H), mulk(c, yt, H)))};
	cg_vec_loop(c, H, copy_vec, &e);
	cg_loop_end(c, &t);
	cg_loop_end(c, &s);
}

/* RNN_PACK: W [K, N] (or W^T, from W [N, K]) in panels of 16 columns,
 * [ceil(N / 16)][K][16], the columns past N zero; split across the threads
 * by panels (an op on parameters: once a step, before the chunks) */
void lower_rnn_pack(cg_ctx *c, ir_node *n)
{
	ir_node *w = operand(c, n, 0);
	bool tr = n->ia[0];
	int64_t P = n->dims[0], K = n->dims[1], N = w->dims[tr ? 0 : 1];
	LLVMValueRef W = cg_tensor(c, w), O = cg_tensor(c, n), lo, hi;
	cg_partition(c, I(c, P), &lo, &hi);
	cg_loop p = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef j0 = mulk(c, p.i, CG_VW), panel = at(c, O, mulk(c, p.i, K * CG_VW));
	LLVMValueRef mask = cg_mask_dyn(c, LLVMBuildSub(c->B, I(c, N), j0, ""));
	if (!tr) { /* row k of the panel: W[k][j0 .. j0 + 16) */
		cg_loop k = cg_loop_begin(c, I(c, 0), I(c, K), 1);
		LLVMValueRef v = vld(c, W, add(c, mulk(c, k.i, N), j0), mask);
		vst(c, LLVMBuildSelect(c->B, mask, v, LLVMConstNull(c->v16), ""), panel, mulk(c, k.i, CG_VW), NULL);
		cg_loop_end(c, &k);
	} else { /* lane l of the panel: W row j0 + l, contiguous in k */
		cg_loop l = cg_loop_begin(c, I(c, 0), I(c, CG_VW), 1);
		LLVMValueRef j = add(c, j0, l.i), in = LLVMBuildICmp(c->B, LLVMIntSLT, j, I(c, N), "");
		LLVMValueRef src = at(c, W, mulk(c, LLVMBuildSelect(c->B, in, j, I(c, 0), ""), K));
		cg_loop k = cg_loop_begin(c, I(c, 0), I(c, K), 1);
		LLVMValueRef v = LLVMBuildSelect(c->B, in, cg_load(c, c->f32, at(c, src, k.i)), cg_f32(c, 0), "");
		cg_store(c, v, at(c, panel, add(c, mulk(c, k.i, CG_VW), l.i)));
		cg_loop_end(c, &k);
		cg_loop_end(c, &l);
	}
	cg_loop_end(c, &p);
}

/* ---- backward ---- */

/* dh = dy_t + dh_rec,  dc = dc_{t+1} f_{t+1} + dh o (1 - tanh(c)^2),
 * da_i = dc g i (1-i),  da_f = dc c_{t-1} f (1-f),  da_g = dc i (1 - g^2),
 * da_o = dh tanh(c) o (1-o); the carry dc f to row t-1 */
static void lstm_cell_bwd(cg_ctx *c, LLVMValueRef j, LLVMValueRef m, void *env)
{
	cell_env *e = env;
	int64_t H = e->H;
	LLVMValueRef dh = vld(c, e->drow, j, m), dcc = vld(c, e->drow, addk(c, j, H), m);
	if (e->dy)
		dh = vadd(c, dh, vld(c, e->dy, j, m));
	LLVMValueRef g[4];
	for (int k = 0; k < 4; k++)
		g[k] = vld(c, e->row, addk(c, j, (2 + k) * H), m);
	LLVMValueRef tc = cgm_tanh(c->B, vld(c, e->row, addk(c, j, H), m));
	LLVMValueRef dc = vadd(c, dcc, vmul(c, vmul(c, dh, g[3]), dtanh(c, tc)));
	LLVMValueRef cp = prev_or_zero(c, e, H, j, m);
	/* the carry first: at t = 0 row t-1 is row t, whose d xp follows */
	vst(c, vmul(c, dc, g[1]), e->dprev, addk(c, j, H), m);
	vst(c, vmul(c, vmul(c, dc, g[2]), dsig(c, g[0])), e->drow, j, m);
	vst(c, vmul(c, vmul(c, dc, cp), dsig(c, g[1])), e->drow, addk(c, j, H), m);
	vst(c, vmul(c, vmul(c, dc, g[0]), dtanh(c, g[2])), e->drow, addk(c, j, 2 * H), m);
	vst(c, vmul(c, vmul(c, dh, tc), dsig(c, g[3])), e->drow, addk(c, j, 3 * H), m);
}

/* dh = dy_t + dh_rec + dh_{t+1} z_{t+1},  dn = dh (1-z) (1-n^2),
 * dz = dh (h_{t-1} - n) z (1-z),  dr = dn hn r (1-r) (d xp: dr dz dn); the
 * carries dh z and dhn = dn r to row t-1 */
static void gru_cell_bwd(cg_ctx *c, LLVMValueRef j, LLVMValueRef m, void *env)
{
	cell_env *e = env;
	int64_t H = e->H;
	LLVMValueRef dh = vadd(c, vld(c, e->drow, j, m), vld(c, e->drow, addk(c, j, H), m));
	if (e->dy)
		dh = vadd(c, dh, vld(c, e->dy, j, m));
	LLVMValueRef r = vld(c, e->row, addk(c, j, H), m), z = vld(c, e->row, addk(c, j, 2 * H), m);
	LLVMValueRef nn = vld(c, e->row, addk(c, j, 3 * H), m), hn = vld(c, e->row, addk(c, j, 4 * H), m);
	LLVMValueRef hp = prev_or_zero(c, e, 0, j, m);
	LLVMValueRef dn = vmul(c, vmul(c, dh, vsub(c, one(c), z)), dtanh(c, nn));
	LLVMValueRef dz = vmul(c, vmul(c, dh, vsub(c, hp, nn)), dsig(c, z));
	LLVMValueRef dr = vmul(c, vmul(c, dn, hn), dsig(c, r));
	/* the carries first: at t = 0 row t-1 is row t, whose d xp follows */
	vst(c, vmul(c, dh, z), e->dprev, addk(c, j, H), m);
	vst(c, vmul(c, dn, r), e->dprev, addk(c, j, 2 * H), m);
	vst(c, dr, e->drow, j, m);
	vst(c, dz, e->drow, addk(c, j, H), m);
	vst(c, dn, e->drow, addk(c, j, 2 * H), m);
}

/* LSTM_BWD, GRU_BWD: (saved [T, K H], dy, W_hh^T [G H, H]) -> d xp [T, G H];
 * dy is [T, H], or [H] for the last state only (ia[0]) */
void lower_rnn_bwd(cg_ctx *c, ir_node *n)
{
	ir_node *sv = operand(c, n, 0), *dy = operand(c, n, 1), *wt = operand(c, n, 2);
	bool lstm = n->op == IR_LSTM_BWD, last = n->ia[0];
	int64_t T = n->dims[0], GH = n->dims[1], H = n->ia[1], RW = sv->dims[1], SS = T * RW, DS = T * GH;
	LLVMValueRef S = cg_tensor(c, sv), DY = cg_tensor(c, dy), WT = cg_tensor(c, wt), D = cg_tensor(c, n), lo, hi;
	cg_partition(c, cg_batch_n(c), &lo, &hi);
	cg_loop s0 = cg_loop_begin(c, lo, hi, 1); /* the carries into step T-1: none */
	LLVMValueRef zrow = at(c, D, add(c, mulk(c, s0.i, DS), I(c, (T - 1) * GH)));
	cg_vec_loop(c, 2 * H, zero_vec, &zrow);
	cg_loop_end(c, &s0);
	cg_loop tt = cg_loop_begin(c, I(c, 0), I(c, T), 1);
	LLVMValueRef t = LLVMBuildSub(c->B, I(c, T - 1), tt.i, "");
	LLVMValueRef has_prev = LLVMBuildICmp(c->B, LLVMIntSGT, t, I(c, 0), "");
	LLVMValueRef tp = LLVMBuildSelect(c->B, has_prev, addk(c, t, -1), I(c, 0), "");
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	{
		LLVMValueRef sb = mulk(c, s.i, SS), db = mulk(c, s.i, DS);
		cell_env e = {.H = H,
			      .row = at(c, S, add(c, sb, mulk(c, t, RW))),
			      .prev = at(c, S, add(c, sb, mulk(c, tp, RW))),
			      .has_prev = has_prev,
			      .drow = at(c, D, add(c, db, mulk(c, t, GH))),
			      .dprev = at(c, D, add(c, db, mulk(c, tp, GH)))};
		cg_if lastf = {0};
		if (last) { /* dy reaches step T-1 only */
			lastf = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, t, I(c, T - 1), ""));
			e.dy = at(c, DY, mulk(c, s.i, H));
			cg_vec_loop(c, H, lstm ? lstm_cell_bwd : gru_cell_bwd, &e);
			cg_if_else(c, &lastf);
			e.dy = NULL;
		} else {
			e.dy = at(c, DY, add(c, mulk(c, s.i, T * H), mulk(c, t, H)));
		}
		cg_vec_loop(c, H, lstm ? lstm_cell_bwd : gru_cell_bwd, &e);
		if (last)
			cg_if_end(c, &lastf);
	}
	cg_loop_end(c, &s);
	/* dh_rec of step t-1 = dhp_t W_hh^T into row t-1 [0, H) */
	cg_if pf = cg_if_begin(c, has_prev);
	{
		step_prod p = {.nseg = lstm ? 1 : 2, .sa = DS, .K = GH, .sc = DS, .N = H, .b = WT};
		p.seg[0].a = at(c, D, mulk(c, t, GH)); /* LSTM: dhp = d xp; GRU: its dr dz */
		p.seg[0].k0 = I(c, 0);
		p.seg[0].k1 = I(c, lstm ? GH : 2 * H);
		p.seg[1].a = at(c, D, mulk(c, tp, GH)); /* GRU: dhn, in row t-1 [2H, 3H) */
		p.seg[1].k0 = I(c, 2 * H);
		p.seg[1].k1 = I(c, 3 * H);
		p.c = at(c, D, mulk(c, tp, GH));
		step_product(c, &p, lo, hi);
	}
	cg_if_end(c, &pf);
	cg_loop_end(c, &tt);
}

/* GRU_DHP: (d xp [T, 3H], saved) -> dhp = [dr | dz | dn r]: the gradient of
 * h_{t-1} W_hh + b_hh, whose n part is multiplied by r in the cell */
typedef struct dhp_env {
	int64_t H;
	LLVMValueRef d, row, out;
} dhp_env;

static void dhp_vec(cg_ctx *c, LLVMValueRef j, LLVMValueRef m, void *env)
{
	dhp_env *e = env;
	int64_t H = e->H;
	vst(c, vld(c, e->d, j, m), e->out, j, m);
	vst(c, vld(c, e->d, addk(c, j, H), m), e->out, addk(c, j, H), m);
	vst(c, vmul(c, vld(c, e->d, addk(c, j, 2 * H), m), vld(c, e->row, addk(c, j, H), m)), e->out, addk(c, j, 2 * H), m);
}

void lower_gru_dhp(cg_ctx *c, ir_node *n)
{
	ir_node *dxp = operand(c, n, 0), *sv = operand(c, n, 1);
	int64_t T = n->dims[0], GH = n->dims[1], H = GH / 3, RW = sv->dims[1];
	LLVMValueRef D = cg_tensor(c, dxp), S = cg_tensor(c, sv), O = cg_tensor(c, n), lo, hi;
	cg_partition(c, LLVMBuildMul(c->B, cg_batch_n(c), I(c, T), ""), &lo, &hi);
	cg_loop r = cg_loop_begin(c, lo, hi, 1); /* a position of a sample */
	dhp_env e = {H, at(c, D, mulk(c, r.i, GH)), at(c, S, mulk(c, r.i, RW)), at(c, O, mulk(c, r.i, GH))};
	cg_vec_loop(c, H, dhp_vec, &e);
	cg_loop_end(c, &r);
}
