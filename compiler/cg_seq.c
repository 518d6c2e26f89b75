/*
 * cg_seq.c - the lowering of the sequence ops (docs/architecture.md
 * "Sequences"): embedding, positional (bias) add, layer and RMS
 * normalisation, the batched matrix product of two computed tensors, the
 * head split/merge, softmax over the last axis (with a causal mask), and the
 * per-position cross-entropy.
 *
 * Every value is sample-major (NC) and "a row" is the last axis of a
 * sample's value, so each op is a loop over the chunk's rows (or samples),
 * split across the threads when the step runs in one chunk.  Sums run in a
 * fixed order inside one row or one sample (vectors of 16 reduce with
 * cg_hsum's fixed tree), so results do not depend on the thread count.
 * Ops whose result is a sum over the batch (the embedding's and the
 * normalisation's parameter gradients) split the result across threads and
 * walk every row in order, each thread adding only to its own part.
 */
#include "cg.h"

#include "cg_math.h"

static ir_node *operand(cg_ctx *c, ir_node *n, int k) { return &c->g->nodes[n->in[k]]; }
static LLVMValueRef I(cg_ctx *c, int64_t v) { return cg_i64(c, v); }
static LLVMValueRef add(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(c->B, a, b, ""); }
static LLVMValueRef mul(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(c->B, a, b, ""); }
static LLVMValueRef mulk(cg_ctx *c, LLVMValueRef a, int64_t k) { return LLVMBuildMul(c->B, a, cg_i64(c, k), ""); }
static LLVMValueRef fadd(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(c->B, a, b, ""); }
static LLVMValueRef fsub(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(c->B, a, b, ""); }
static LLVMValueRef fmul(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(c->B, a, b, ""); }
static LLVMValueRef fdiv(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(c->B, a, b, ""); }
static LLVMValueRef fld(cg_ctx *c, LLVMValueRef base, LLVMValueRef i) { return cg_load(c, c->f32, cg_gep(c, base, i)); }
static void fst(cg_ctx *c, LLVMValueRef v, LLVMValueRef base, LLVMValueRef i) { cg_store(c, v, cg_gep(c, base, i)); }
static LLVMValueRef fsqrt(cg_ctx *c, LLVMValueRef v) { return cg_call_intr(c, "llvm.sqrt", &c->f32, 1, &v, 1); }

/* A float accumulator in the entry block, set to v. */
static LLVMValueRef facc(cg_ctx *c, LLVMValueRef v, const char *name)
{
	LLVMValueRef p = cg_alloca(c, LLVMTypeOf(v), name);
	cg_store(c, v, p);
	return p;
}
static void acc_add(cg_ctx *c, LLVMValueRef p, LLVMValueRef v)
{
	cg_store(c, LLVMTypeOf(v) == c->v16 ? LLVMBuildFAdd(c->B, cg_load(c, c->v16, p), v, "")
					    : fadd(c, cg_load(c, c->f32, p), v),
		 p);
}

/* The chunk's rows of `len` values of node t: n size / len */
static LLVMValueRef rows_of(cg_ctx *c, const ir_node *t, int64_t len) { return mulk(c, cg_batch_n(c), t->size / len); }
static int64_t last_dim(const ir_node *t) { return t->dims[t->rank - 1]; }

/* ---- embedding ---- */

/* A token id read from a float, clamped to [0, V) (the loaders check ids;
 * the clamp keeps an API caller's bad id from reading outside the table) */
static LLVMValueRef token_id(cg_ctx *c, LLVMValueRef f, int64_t V)
{
	LLVMValueRef id = LLVMBuildFPToSI(c->B, f, c->i64, "");
	id = LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, id, I(c, 0), ""), I(c, 0), id, "");
	return cg_min_i64(c, id, I(c, V - 1));
}

typedef struct copy_env {
	LLVMValueRef src, dst, src2; /* dst[j] = src[j] (+ src2[j]) */
} copy_env;

static void copy_vec(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	copy_env *e = env;
	LLVMValueRef v = cg_vload(c, cg_gep(c, e->src, j), mask);
	if (e->src2)
		v = LLVMBuildFAdd(c->B, v, cg_vload(c, cg_gep(c, e->src2, j), mask), "");
	cg_vstore(c, v, cg_gep(c, e->dst, j), mask);
}

/* y[r][0..d) = W[id_r][0..d) for each row r (position) of the chunk */
void lower_embed(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *w = operand(c, n, 1);
	int64_t V = w->dims[0], d = w->dims[1];
	LLVMValueRef X = cg_tensor(c, x), W = cg_tensor(c, w), Y = cg_tensor(c, n), lo, hi;
	cg_partition(c, mulk(c, cg_batch_n(c), x->size), &lo, &hi);
	cg_loop r = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef id = token_id(c, fld(c, X, r.i), V);
	copy_env e = {cg_gep(c, W, mulk(c, id, d)), cg_gep(c, Y, mulk(c, r.i, d)), NULL};
	cg_vec_loop(c, d, copy_vec, &e);
	cg_loop_end(c, &r);
}

static void add_vec(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	copy_env *e = env; /* dst[j] += src[j] */
	LLVMValueRef v = LLVMBuildFAdd(c->B, cg_vload(c, cg_gep(c, e->dst, j), mask), cg_vload(c, cg_gep(c, e->src, j), mask), "");
	cg_vstore(c, v, cg_gep(c, e->dst, j), mask);
}

/* dW[v] = sum of dy[r] over the chunk's rows r with id_r = v, in row order.
 * A sum over the samples (a reduce op): each thread owns the rows [lo, hi)
 * of dW, zeroes them, and walks every position adding those that fall in
 * its range, so the order of the additions is the positions' order. */
void lower_embed_grad(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *dy = operand(c, n, 1);
	int64_t V = n->dims[0], d = n->dims[1];
	LLVMValueRef X = cg_tensor(c, x), DY = cg_tensor(c, dy), DW = cg_tensor(c, n), lo, hi;
	cg_partition(c, I(c, V), &lo, &hi);
	LLVMValueRef mine0 = cg_gep(c, DW, mulk(c, lo, d)), span = mulk(c, LLVMBuildSub(c->B, hi, lo, ""), d);
	cg_loop zi = cg_loop_begin(c, I(c, 0), span, 1);
	fst(c, cg_f32(c, 0), mine0, zi.i);
	cg_loop_end(c, &zi);
	cg_loop r = cg_loop_begin(c, I(c, 0), mulk(c, cg_batch_n(c), x->size), 1);
	LLVMValueRef id = token_id(c, fld(c, X, r.i), V);
	LLVMValueRef mine = LLVMBuildAnd(c->B, LLVMBuildICmp(c->B, LLVMIntSGE, id, lo, ""),
					 LLVMBuildICmp(c->B, LLVMIntSLT, id, hi, ""), "");
	cg_if f = cg_if_begin(c, mine);
	copy_env e = {cg_gep(c, DY, mulk(c, r.i, d)), cg_gep(c, DW, mulk(c, id, d)), NULL};
	cg_vec_loop(c, d, add_vec, &e);
	cg_if_end(c, &f);
	cg_loop_end(c, &r);
}

/* y[s] = x[s] + P for each sample s (a learned positional embedding) */
void lower_bias_add(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *p = operand(c, n, 1);
	LLVMValueRef X = cg_tensor(c, x), P = cg_tensor(c, p), Y = cg_tensor(c, n), lo, hi;
	cg_partition(c, cg_batch_n(c), &lo, &hi);
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef base = mulk(c, s.i, n->size);
	copy_env e = {cg_gep(c, X, base), cg_gep(c, Y, base), P};
	cg_vec_loop(c, n->size, copy_vec, &e);
	cg_loop_end(c, &s);
}

/* ---- layer normalisation over the last axis ---- */

/* mean (0 for rms) and 1/sd (1/rms) of row[0..d) in *mean, *rstd */
static void row_stats(cg_ctx *c, LLVMValueRef row, int64_t d, bool rms, double eps, LLVMValueRef *mean,
		      LLVMValueRef *rstd)
{
	LLVMValueRef inv_d = cg_f32(c, 1.0 / (double)d);
	LLVMValueRef m = cg_f32(c, 0);
	if (!rms) {
		LLVMValueRef s = facc(c, cg_f32(c, 0), "sum");
		cg_loop j = cg_loop_begin(c, I(c, 0), I(c, d), 1);
		acc_add(c, s, fld(c, row, j.i));
		cg_loop_end(c, &j);
		m = fmul(c, cg_load(c, c->f32, s), inv_d);
	}
	LLVMValueRef q = facc(c, cg_f32(c, 0), "sq");
	cg_loop j = cg_loop_begin(c, I(c, 0), I(c, d), 1);
	LLVMValueRef v = fsub(c, fld(c, row, j.i), m);
	acc_add(c, q, fmul(c, v, v));
	cg_loop_end(c, &j);
	LLVMValueRef var = fmul(c, cg_load(c, c->f32, q), inv_d);
	*mean = m;
	*rstd = fdiv(c, cg_f32(c, 1), fsqrt(c, fadd(c, var, cg_f32(c, eps))));
}

/* y[r] = gamma (x[r] - mean) / sd + beta per row r of d values
 * (rms: gamma x[r] / rms) */
void naive_layernorm(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	int64_t d = last_dim(n);
	bool rms = n->ia[0];
	LLVMValueRef X = cg_tensor(c, x), Y = cg_tensor(c, n), G = cg_tensor(c, operand(c, n, 1));
	LLVMValueRef Bt = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL, lo, hi;
	cg_partition(c, rows_of(c, n, d), &lo, &hi);
	cg_loop r = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef base = mulk(c, r.i, d), row = cg_gep(c, X, base), out = cg_gep(c, Y, base), mean, rstd;
	row_stats(c, row, d, rms, n->fa[0], &mean, &rstd);
	cg_loop j = cg_loop_begin(c, I(c, 0), I(c, d), 1);
	LLVMValueRef v = fmul(c, fmul(c, fsub(c, fld(c, row, j.i), mean), rstd), fld(c, G, j.i));
	if (Bt)
		v = fadd(c, v, fld(c, Bt, j.i));
	fst(c, v, out, j.i);
	cg_loop_end(c, &j);
	cg_loop_end(c, &r);
}

/* dx[r] = (g - mean(g) - xhat mean(g xhat)) / sd, g = gamma dy[r] (rms:
 * without the mean(g) term); the row's statistics are computed again */
void naive_ln_bwd_x(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *dy = operand(c, n, 1);
	int64_t d = last_dim(n);
	bool rms = n->ia[0];
	LLVMValueRef X = cg_tensor(c, x), DY = cg_tensor(c, dy), DX = cg_tensor(c, n);
	LLVMValueRef G = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL, lo, hi;
	LLVMValueRef inv_d = cg_f32(c, 1.0 / (double)d);
	cg_partition(c, rows_of(c, n, d), &lo, &hi);
	cg_loop r = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef base = mulk(c, r.i, d), row = cg_gep(c, X, base), drow = cg_gep(c, DY, base), mean, rstd;
	row_stats(c, row, d, rms, n->fa[0], &mean, &rstd);
	LLVMValueRef sg = facc(c, cg_f32(c, 0), "sg"), sgx = facc(c, cg_f32(c, 0), "sgx");
	cg_loop j = cg_loop_begin(c, I(c, 0), I(c, d), 1);
	LLVMValueRef g = fld(c, drow, j.i);
	if (G)
		g = fmul(c, g, fld(c, G, j.i));
	LLVMValueRef xh = fmul(c, fsub(c, fld(c, row, j.i), mean), rstd);
	acc_add(c, sg, g);
	acc_add(c, sgx, fmul(c, g, xh));
	cg_loop_end(c, &j);
	LLVMValueRef mg = rms ? cg_f32(c, 0) : fmul(c, cg_load(c, c->f32, sg), inv_d);
	LLVMValueRef mgx = fmul(c, cg_load(c, c->f32, sgx), inv_d);
	cg_loop j2 = cg_loop_begin(c, I(c, 0), I(c, d), 1);
	LLVMValueRef g2 = fld(c, drow, j2.i);
	if (G)
		g2 = fmul(c, g2, fld(c, G, j2.i));
	LLVMValueRef xh2 = fmul(c, fsub(c, fld(c, row, j2.i), mean), rstd);
	fst(c, fmul(c, fsub(c, fsub(c, g2, mg), fmul(c, xh2, mgx)), rstd), cg_gep(c, DX, base), j2.i);
	cg_loop_end(c, &j2);
	cg_loop_end(c, &r);
}

/* dgamma[j] = sum over the chunk's rows r of dy[r][j] xhat[r][j], in row
 * order; each thread owns the columns [lo, hi) and computes every row's
 * statistics (d values a row: cheap beside the sum) */
void naive_ln_bwd_gamma(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *dy = operand(c, n, 1);
	int64_t d = n->dims[0];
	bool rms = n->ia[0];
	LLVMValueRef X = cg_tensor(c, x), DY = cg_tensor(c, dy), DG = cg_tensor(c, n), lo, hi;
	cg_partition(c, I(c, d), &lo, &hi);
	cg_loop z = cg_loop_begin(c, lo, hi, 1);
	fst(c, cg_f32(c, 0), DG, z.i);
	cg_loop_end(c, &z);
	cg_loop r = cg_loop_begin(c, I(c, 0), rows_of(c, x, d), 1);
	LLVMValueRef base = mulk(c, r.i, d), row = cg_gep(c, X, base), drow = cg_gep(c, DY, base), mean, rstd;
	row_stats(c, row, d, rms, n->fa[0], &mean, &rstd);
	cg_loop j = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef xh = fmul(c, fsub(c, fld(c, row, j.i), mean), rstd);
	fst(c, fadd(c, fld(c, DG, j.i), fmul(c, fld(c, drow, j.i), xh)), DG, j.i);
	cg_loop_end(c, &j);
	cg_loop_end(c, &r);
}

/* ---- batched matrix product of two computed tensors ---- */

/* crow[j] = scale sum over k < K in order of a[k sak] B[k sbk + j sbj], for
 * j in [0, jend): one row of a product, scalar (st: sak, sbk, sbj). */
static void naive_row(cg_ctx *c, LLVMValueRef arow, LLVMValueRef B, LLVMValueRef crow, LLVMValueRef jend, LLVMValueRef K,
		      const int64_t *st, LLVMValueRef scale)
{
	cg_loop j = cg_loop_begin(c, I(c, 0), jend, 1);
	LLVMValueRef acc = facc(c, cg_f32(c, 0), "acc");
	cg_loop k = cg_loop_begin(c, I(c, 0), K, 1);
	acc_add(c, acc, fmul(c, fld(c, arow, mulk(c, k.i, st[0])), fld(c, B, add(c, mulk(c, k.i, st[1]), mulk(c, j.i, st[2])))));
	cg_loop_end(c, &k);
	fst(c, fmul(c, cg_load(c, c->f32, acc), scale), crow, j.i);
	cg_loop_end(c, &j);
}

/* C[g] = scale op(A[g]) op(B[g]) for every matrix g of every sample:
 * A(i, k) = a[i sai + k sak], B(k, j) = b[k sbk + j sbj]. */
void naive_matmul(cg_ctx *c, ir_node *n)
{
	ir_node *a = operand(c, n, 0), *b = operand(c, n, 1);
	int r = n->rank;
	bool ta = n->ia[0], tb = n->ia[1];
	int64_t M = n->dims[r - 2], N = n->dims[r - 1], K = a->dims[ta ? r - 2 : r - 1];
	int64_t G = n->size / (M * N); /* matrices per sample */
	int64_t sai = ta ? 1 : K, sak = ta ? M : 1, sbk = tb ? 1 : N, sbj = tb ? K : 1;
	LLVMValueRef Ap = cg_tensor(c, a), Bp = cg_tensor(c, b), Cp = cg_tensor(c, n), lo, hi;
	LLVMValueRef scale = cg_f32(c, n->fa[0]);
	cg_partition(c, mulk(c, cg_batch_n(c), G), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1); /* one matrix of one sample */
	LLVMValueRef A = cg_gep(c, Ap, mulk(c, t.i, M * K)), B = cg_gep(c, Bp, mulk(c, t.i, K * N));
	LLVMValueRef C = cg_gep(c, Cp, mulk(c, t.i, M * N));
	cg_loop i = cg_loop_begin(c, I(c, 0), I(c, M), 1);
	LLVMValueRef arow = cg_gep(c, A, mulk(c, i.i, sai)), crow = cg_gep(c, C, mulk(c, i.i, N));
	if (!tb) {
		/* B's rows are contiguous: 16 columns of C at a time, k in order */
		int64_t full = N / CG_VW * CG_VW;
		for (int part = 0; part < 2; part++) {
			if (part == 0 ? full == 0 : full == N)
				continue;
			LLVMValueRef mask = part ? cg_mask(c, (int)(N - full)) : NULL;
			cg_loop j = part ? (cg_loop){0} : cg_loop_begin(c, I(c, 0), I(c, full), CG_VW);
			LLVMValueRef j0 = part ? I(c, full) : j.i;
			LLVMValueRef acc = facc(c, LLVMConstNull(c->v16), "acc");
			cg_loop k = cg_loop_begin(c, I(c, 0), I(c, K), 1);
			LLVMValueRef av = cg_splat(c, fld(c, arow, mulk(c, k.i, sak)));
			LLVMValueRef bv = cg_vload(c, cg_gep(c, B, add(c, mulk(c, k.i, sbk), j0)), mask);
			cg_store(c, cg_fma(c, av, bv, cg_load(c, c->v16, acc)), acc);
			cg_loop_end(c, &k);
			cg_vstore(c, LLVMBuildFMul(c->B, cg_load(c, c->v16, acc), cg_splat(c, scale), ""), cg_gep(c, crow, j0), mask);
			if (!part)
				cg_loop_end(c, &j);
		}
	} else if (!ta) {
		/* C(i, j) = a row i . b row j, both contiguous in k: 16 k at a time */
		cg_loop j = cg_loop_begin(c, I(c, 0), I(c, N), 1);
		LLVMValueRef brow = cg_gep(c, B, mulk(c, j.i, sbj));
		LLVMValueRef acc = facc(c, LLVMConstNull(c->v16), "acc");
		int64_t full = K / CG_VW * CG_VW;
		if (full) {
			cg_loop k = cg_loop_begin(c, I(c, 0), I(c, full), CG_VW);
			cg_store(c, cg_fma(c, cg_vload(c, cg_gep(c, arow, k.i), NULL), cg_vload(c, cg_gep(c, brow, k.i), NULL),
					   cg_load(c, c->v16, acc)), acc);
			cg_loop_end(c, &k);
		}
		if (K > full) {
			LLVMValueRef mask = cg_mask(c, (int)(K - full));
			cg_store(c, cg_fma(c, cg_vload(c, cg_gep(c, arow, I(c, full)), mask),
					   cg_vload(c, cg_gep(c, brow, I(c, full)), mask), cg_load(c, c->v16, acc)), acc);
		}
		fst(c, fmul(c, cg_hsum(c, cg_load(c, c->v16, acc)), scale), crow, j.i);
		cg_loop_end(c, &j);
	} else {
		naive_row(c, arow, B, crow, I(c, N), I(c, K), (int64_t[3]){sak, sbk, sbj}, scale);
	}
	cg_loop_end(c, &i);
	cg_loop_end(c, &t);
}

/* y[b][a][0..C) = x[a][b][0..C) per sample: x viewed as [A, B, C] */
void lower_heads(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	int64_t A = n->ia[0], Bd = n->ia[1], C = n->ia[2];
	LLVMValueRef X = cg_tensor(c, x), Y = cg_tensor(c, n), lo, hi;
	cg_partition(c, cg_batch_n(c), &lo, &hi);
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef base = mulk(c, s.i, n->size);
	cg_loop ai = cg_loop_begin(c, I(c, 0), I(c, A), 1);
	cg_loop bi = cg_loop_begin(c, I(c, 0), I(c, Bd), 1);
	LLVMValueRef src = add(c, base, mulk(c, add(c, mulk(c, ai.i, Bd), bi.i), C));
	LLVMValueRef dst = add(c, base, mulk(c, add(c, mulk(c, bi.i, A), ai.i), C));
	copy_env e = {cg_gep(c, X, src), cg_gep(c, Y, dst), NULL};
	cg_vec_loop(c, C, copy_vec, &e);
	cg_loop_end(c, &bi);
	cg_loop_end(c, &ai);
	cg_loop_end(c, &s);
}

/* ---- softmax over the last axis ---- */

/* out[0..L) = softmax of row[0..len), 0 from len on (out may be row) */
static void naive_softmax_row(cg_ctx *c, LLVMValueRef row, LLVMValueRef out, LLVMValueRef len, int64_t L)
{
	LLVMValueRef mx = facc(c, fld(c, row, I(c, 0)), "max");
	cg_loop j = cg_loop_begin(c, I(c, 1), len, 1);
	LLVMValueRef v = fld(c, row, j.i), m0 = cg_load(c, c->f32, mx);
	cg_store(c, LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOGT, v, m0, ""), v, m0, ""), mx);
	cg_loop_end(c, &j);
	LLVMValueRef m = cg_load(c, c->f32, mx), sum = facc(c, cg_f32(c, 0), "sum");
	cg_loop j2 = cg_loop_begin(c, I(c, 0), len, 1);
	LLVMValueRef e = cgm_exp(c->B, fsub(c, fld(c, row, j2.i), m));
	fst(c, e, out, j2.i);
	acc_add(c, sum, e);
	cg_loop_end(c, &j2);
	LLVMValueRef inv = fdiv(c, cg_f32(c, 1), cg_load(c, c->f32, sum));
	cg_loop j3 = cg_loop_begin(c, I(c, 0), I(c, L), 1);
	LLVMValueRef in = LLVMBuildICmp(c->B, LLVMIntSLT, j3.i, len, "");
	fst(c, LLVMBuildSelect(c->B, in, fmul(c, fld(c, out, j3.i), inv), cg_f32(c, 0), ""), out, j3.i);
	cg_loop_end(c, &j3);
}

/* SOFTMAX_LAST: y[r] = softmax(x[r]) over the row's L values; causal: over
 * its first i + 1 values, i = the row's place in its [L, L] matrix, the rest
 * 0.  SOFTMAX_LAST_GRAD (y, dy): dx[r] = y (dy - sum(dy y)), 0 where y is. */
void naive_softmax_last(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	int64_t L = n->ia[1] ? n->ia[1] : last_dim(n); /* ia[1]: rows of a flat value (the inference tail) */
	bool causal = n->ia[0], grad = n->op == IR_SOFTMAX_LAST_GRAD;
	LLVMValueRef X = cg_tensor(c, x), D = grad ? cg_tensor(c, operand(c, n, 1)) : NULL, Y = cg_tensor(c, n), lo, hi;
	cg_partition(c, rows_of(c, n, L), &lo, &hi);
	cg_loop r = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef base = mulk(c, r.i, L), row = cg_gep(c, X, base), out = cg_gep(c, Y, base);
	LLVMValueRef len = causal ? add(c, LLVMBuildSRem(c->B, r.i, I(c, L), ""), I(c, 1)) : I(c, L);
	if (grad) {
		LLVMValueRef drow = cg_gep(c, D, base), dot = facc(c, cg_f32(c, 0), "dot");
		cg_loop j = cg_loop_begin(c, I(c, 0), I(c, L), 1);
		acc_add(c, dot, fmul(c, fld(c, row, j.i), fld(c, drow, j.i)));
		cg_loop_end(c, &j);
		LLVMValueRef s = cg_load(c, c->f32, dot);
		cg_loop j2 = cg_loop_begin(c, I(c, 0), I(c, L), 1);
		fst(c, fmul(c, fld(c, row, j2.i), fsub(c, fld(c, drow, j2.i), s)), out, j2.i);
		cg_loop_end(c, &j2);
	} else {
		naive_softmax_row(c, row, out, len, L);
	}
	cg_loop_end(c, &r);
}

/* ---- the per-position cross-entropy ---- */

/* Label of position t of a sample: a class id, or -1 (ignored) for a
 * negative or out-of-range value */
static LLVMValueRef pos_label(cg_ctx *c, LLVMValueRef yrow, LLVMValueRef t, int64_t V)
{
	LLVMValueRef id = LLVMBuildFPToSI(c->B, fld(c, yrow, t), c->i64, "");
	LLVMValueRef bad = LLVMBuildOr(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, id, I(c, 0), ""),
				       LLVMBuildICmp(c->B, LLVMIntSGE, id, I(c, V), ""), "");
	return LLVMBuildSelect(c->B, bad, I(c, -1), id, "");
}

/* The positions of sample s that count (label not -1), as a float */
static LLVMValueRef counted(cg_ctx *c, LLVMValueRef yrow, int64_t T, int64_t V)
{
	LLVMValueRef cnt = facc(c, cg_f32(c, 0), "cnt");
	cg_loop t = cg_loop_begin(c, I(c, 0), I(c, T), 1);
	LLVMValueRef ok = LLVMBuildICmp(c->B, LLVMIntSGE, pos_label(c, yrow, t.i, V), I(c, 0), "");
	acc_add(c, cnt, LLVMBuildUIToFP(c->B, ok, c->f32, ""));
	cg_loop_end(c, &t);
	return cg_load(c, c->f32, cnt);
}

/* SEQ_XENT (thread 0, samples in order, like the other losses):
 *   metrics[0] += mean over counted positions of lse - z[y],
 *   metrics[1] += share of counted positions whose argmax is y.
 * SEQ_XENT_GRAD: (softmax(z) - onehot(y)) / (n counted) per counted
 * position, 0 at an ignored one; split across threads by samples. */
static void seq_xent_vec_max(cg_ctx *c, LLVMValueRef row, int64_t V, LLVMValueRef *mx, LLVMValueRef *am);
static LLVMValueRef seq_xent_vec_sumexp(cg_ctx *c, LLVMValueRef row, int64_t V, LLVMValueRef mx);
static void seq_xent_vec_grad(cg_ctx *c, LLVMValueRef row, LLVMValueRef out, int64_t V, LLVMValueRef mx,
			      LLVMValueRef inv, LLVMValueRef y, LLVMValueRef scale);

/* fast: 16 values of a position's V at a time (the same maths; sums in
 * another order), else the scalar loops (the reference kernel) */
static void seq_xent(cg_ctx *c, ir_node *n, bool fast)
{
	ir_node *p = operand(c, n, 0);
	int64_t T = c->g->label_size, V = c->g->label_vocab;
	bool grad = n->op == IR_SEQ_XENT_GRAD;
	LLVMValueRef P = cg_tensor(c, p), Yl = cg_tensor(c, operand(c, n, 1)), lo, hi;
	LLVMValueRef loss = NULL, correct = NULL, nf = NULL, Out = NULL;
	cg_if only0 = {0};
	if (grad) {
		Out = cg_tensor(c, n);
		nf = LLVMBuildSIToFP(c->B, cg_batch_total(c), c->f32, "");
		cg_partition(c, cg_batch_n(c), &lo, &hi);
	} else {
		only0 = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, c->tid, cg_i32(c, 0), ""));
		loss = facc(c, LLVMConstReal(c->f64, 0), "loss");
		correct = facc(c, LLVMConstReal(c->f64, 0), "correct");
		lo = I(c, 0);
		hi = cg_batch_n(c);
	}
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef yrow = cg_gep(c, Yl, mulk(c, s.i, T));
	LLVMValueRef cnt = counted(c, yrow, T, V);
	LLVMValueRef cnt1 = LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOGT, cnt, cg_f32(c, 0), ""), cnt, cg_f32(c, 1), "");
	LLVMValueRef sl = facc(c, cg_f32(c, 0), "sl"), sc = facc(c, cg_f32(c, 0), "sc");
	cg_loop t = cg_loop_begin(c, I(c, 0), I(c, T), 1);
	{
		LLVMValueRef base = mul(c, add(c, mulk(c, s.i, T), t.i), I(c, V)), row = cg_gep(c, P, base);
		LLVMValueRef y = pos_label(c, yrow, t.i, V);
		LLVMValueRef ok = LLVMBuildICmp(c->B, LLVMIntSGE, y, I(c, 0), "");
		LLVMValueRef m, sum, amv = NULL;
		if (fast) {
			seq_xent_vec_max(c, row, V, &m, grad ? NULL : &amv);
			sum = seq_xent_vec_sumexp(c, row, V, m);
		} else {
			cg_row_max(c, row, V, &m, &amv);
			sum = cg_row_sumexp(c, row, V, m);
		}
		if (grad && fast) {
			LLVMValueRef scale = LLVMBuildSelect(c->B, ok, fdiv(c, cg_f32(c, 1), fmul(c, nf, cnt1)), cg_f32(c, 0), "");
			seq_xent_vec_grad(c, row, cg_gep(c, Out, base), V, m, fdiv(c, cg_f32(c, 1), sum), y, scale);
		} else if (grad) {
			LLVMValueRef scale = LLVMBuildSelect(c->B, ok, fdiv(c, cg_f32(c, 1), fmul(c, nf, cnt1)), cg_f32(c, 0), "");
			LLVMValueRef inv = fdiv(c, cg_f32(c, 1), sum);
			cg_loop j3 = cg_loop_begin(c, I(c, 0), I(c, V), 1);
			LLVMValueRef pr = fmul(c, cgm_exp(c->B, fsub(c, fld(c, row, j3.i), m)), inv);
			LLVMValueRef hot = LLVMBuildUIToFP(c->B, LLVMBuildICmp(c->B, LLVMIntEQ, j3.i, y, ""), c->f32, "");
			fst(c, fmul(c, fsub(c, pr, hot), scale), cg_gep(c, Out, base), j3.i);
			cg_loop_end(c, &j3);
		} else {
			cg_if f = cg_if_begin(c, ok);
			LLVMValueRef lse = fadd(c, cgm_log(c->B, sum), m);
			acc_add(c, sl, fsub(c, lse, fld(c, row, y)));
			LLVMValueRef hit = LLVMBuildICmp(c->B, LLVMIntEQ, amv, y, "");
			acc_add(c, sc, LLVMBuildUIToFP(c->B, hit, c->f32, ""));
			cg_if_end(c, &f);
		}
	}
	cg_loop_end(c, &t);
	if (!grad) {
		LLVMValueRef l = LLVMBuildFPExt(c->B, fdiv(c, cg_load(c, c->f32, sl), cnt1), c->f64, "");
		LLVMValueRef a = LLVMBuildFPExt(c->B, fdiv(c, cg_load(c, c->f32, sc), cnt1), c->f64, "");
		cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, loss), l, ""), loss);
		cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, correct), a, ""), correct);
	}
	cg_loop_end(c, &s);
	if (!grad) {
		LLVMValueRef met = cg_metrics(c), one = I(c, 1);
		cg_store(c, cg_load(c, c->f64, loss), met);
		cg_store(c, cg_load(c, c->f64, correct), LLVMBuildInBoundsGEP2(c->B, c->f64, met, &one, 1, ""));
		cg_if_end(c, &only0);
	}
}

/* ---- the fast kernels: vectorised rows and register-tiled products ----
 *
 * The same maths as the scalar loops above (which stay as the reference
 * kernels: --naive-kernels, cg.c's reference table), 16 values at a time:
 * a row's sums are vector partial sums reduced by cg_hsum's fixed tree, so
 * each row's result still depends on nothing but the row. */

/* What a row pass reads and writes (the callbacks of vec_loop). */
typedef struct row_env {
	LLVMValueRef x, dy, out;  /* row pointers */
	LLVMValueRef g, b;        /* gamma, beta (or NULL) */
	LLVMValueRef acc, acc2;   /* <16 x float> accumulators (allocas) */
	LLVMValueRef mean, rstd;  /* splats */
	LLVMValueRef s1, s2;      /* splats: mean(g), mean(g xhat); s1: the softmax gradient's sum(dy y) */
} row_env;

static LLVMValueRef vzero(cg_ctx *c) { return LLVMConstNull(c->v16); }
static LLVMValueRef vld(cg_ctx *c, LLVMValueRef base, LLVMValueRef j, LLVMValueRef mask)
{
	return cg_vload(c, cg_gep(c, base, j), mask);
}
static void vacc_add(cg_ctx *c, LLVMValueRef p, LLVMValueRef v)
{
	cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->v16, p), v, ""), p);
}
static LLVMValueRef vfsub(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(c->B, a, b, ""); }
static LLVMValueRef vfmul(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(c->B, a, b, ""); }
/* v where the lane is live (mask NULL: every lane), else z */
static LLVMValueRef live(cg_ctx *c, LLVMValueRef mask, LLVMValueRef v, LLVMValueRef z)
{
	return mask ? LLVMBuildSelect(c->B, mask, v, z, "") : v;
}

static void ln_sum(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	row_env *e = env;
	vacc_add(c, e->acc, vld(c, e->x, j, mask));
}

static void ln_sq(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	row_env *e = env;
	LLVMValueRef v = live(c, mask, vfsub(c, vld(c, e->x, j, mask), e->mean), vzero(c));
	cg_store(c, cg_fma(c, v, v, cg_load(c, c->v16, e->acc)), e->acc);
}

/* splats of mean (0 for rms) and 1/sd of the row e->x of d values */
static void vrow_stats(cg_ctx *c, row_env *e, int64_t d, bool rms, double eps)
{
	LLVMValueRef inv_d = cg_f32(c, 1.0 / (double)d), m = cg_f32(c, 0);
	e->acc = facc(c, vzero(c), "vsum");
	if (!rms) {
		cg_vec_loop(c, d, ln_sum, e);
		m = fmul(c, cg_hsum(c, cg_load(c, c->v16, e->acc)), inv_d);
		cg_store(c, vzero(c), e->acc);
	}
	e->mean = cg_splat(c, m);
	cg_vec_loop(c, d, ln_sq, e);
	LLVMValueRef var = fmul(c, cg_hsum(c, cg_load(c, c->v16, e->acc)), inv_d);
	e->rstd = cg_splat(c, fdiv(c, cg_f32(c, 1), fsqrt(c, fadd(c, var, cg_f32(c, eps)))));
}

static LLVMValueRef xhat(cg_ctx *c, row_env *e, LLVMValueRef j, LLVMValueRef mask)
{
	return vfmul(c, vfsub(c, vld(c, e->x, j, mask), e->mean), e->rstd);
}

static void ln_out(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	row_env *e = env;
	LLVMValueRef v = vfmul(c, xhat(c, e, j, mask), vld(c, e->g, j, mask));
	if (e->b)
		v = LLVMBuildFAdd(c->B, v, vld(c, e->b, j, mask), "");
	cg_vstore(c, v, cg_gep(c, e->out, j), mask);
}

/* y[r] = gamma (x[r] - mean) / sd + beta per row r of d values (rms: gamma x[r] / rms) */
void lower_layernorm(cg_ctx *c, ir_node *n)
{
	int64_t d = last_dim(n);
	LLVMValueRef X = cg_tensor(c, operand(c, n, 0)), Y = cg_tensor(c, n), lo, hi;
	row_env e = {.g = cg_tensor(c, operand(c, n, 1)), .b = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL};
	cg_partition(c, rows_of(c, n, d), &lo, &hi);
	cg_loop r = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef base = mulk(c, r.i, d);
	e.x = cg_gep(c, X, base);
	e.out = cg_gep(c, Y, base);
	vrow_stats(c, &e, d, n->ia[0], n->fa[0]);
	cg_vec_loop(c, d, ln_out, &e);
	cg_loop_end(c, &r);
}

static LLVMValueRef ln_g(cg_ctx *c, row_env *e, LLVMValueRef j, LLVMValueRef mask)
{
	LLVMValueRef g = vld(c, e->dy, j, mask);
	return e->g ? vfmul(c, g, vld(c, e->g, j, mask)) : g;
}

static void ln_bx_sums(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	row_env *e = env; /* masked lanes: dy = 0, so g = 0 adds nothing */
	LLVMValueRef g = ln_g(c, e, j, mask);
	vacc_add(c, e->acc, g);
	cg_store(c, cg_fma(c, g, xhat(c, e, j, mask), cg_load(c, c->v16, e->acc2)), e->acc2);
}

static void ln_bx_out(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	row_env *e = env;
	LLVMValueRef v = vfsub(c, vfsub(c, ln_g(c, e, j, mask), e->s1), vfmul(c, xhat(c, e, j, mask), e->s2));
	cg_vstore(c, vfmul(c, v, e->rstd), cg_gep(c, e->out, j), mask);
}

/* dx[r] = (g - mean(g) - xhat mean(g xhat)) / sd, g = gamma dy[r] (rms:
 * without the mean(g) term); the row's statistics are computed again */
void lower_ln_bwd_x(cg_ctx *c, ir_node *n)
{
	int64_t d = last_dim(n);
	bool rms = n->ia[0];
	LLVMValueRef X = cg_tensor(c, operand(c, n, 0)), DY = cg_tensor(c, operand(c, n, 1)), DX = cg_tensor(c, n);
	LLVMValueRef inv_d = cg_f32(c, 1.0 / (double)d), lo, hi;
	row_env e = {.g = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL};
	cg_partition(c, rows_of(c, n, d), &lo, &hi);
	cg_loop r = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef base = mulk(c, r.i, d);
	e.x = cg_gep(c, X, base);
	e.dy = cg_gep(c, DY, base);
	e.out = cg_gep(c, DX, base);
	vrow_stats(c, &e, d, rms, n->fa[0]);
	cg_store(c, vzero(c), e.acc);
	e.acc2 = facc(c, vzero(c), "vsgx");
	cg_vec_loop(c, d, ln_bx_sums, &e);
	e.s1 = cg_splat(c, rms ? cg_f32(c, 0) : fmul(c, cg_hsum(c, cg_load(c, c->v16, e.acc)), inv_d));
	e.s2 = cg_splat(c, fmul(c, cg_hsum(c, cg_load(c, c->v16, e.acc2)), inv_d));
	cg_vec_loop(c, d, ln_bx_out, &e);
	cg_loop_end(c, &r);
}

/* dgamma[j] = sum over the chunk's rows r of dy[r][j] xhat[r][j], in row
 * order; each thread owns the vectors [lo, hi) of columns and computes
 * every row's statistics (2 d values a row: cheap beside the sum) */
void lower_ln_bwd_gamma(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	int64_t d = n->dims[0], nvec = (d + CG_VW - 1) / CG_VW;
	LLVMValueRef X = cg_tensor(c, x), DY = cg_tensor(c, operand(c, n, 1)), DG = cg_tensor(c, n), lo, hi;
	cg_partition(c, I(c, nvec), &lo, &hi);
	/* the last vector of a row that is not a multiple of 16 is masked */
	cg_loop z = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef j0 = mulk(c, z.i, CG_VW), m0 = d % CG_VW ? cg_mask_dyn(c, LLVMBuildSub(c->B, I(c, d), j0, "")) : NULL;
	cg_vstore(c, vzero(c), cg_gep(c, DG, j0), m0);
	cg_loop_end(c, &z);
	row_env e = {0};
	cg_loop r = cg_loop_begin(c, I(c, 0), rows_of(c, x, d), 1);
	LLVMValueRef base = mulk(c, r.i, d);
	e.x = cg_gep(c, X, base);
	e.dy = cg_gep(c, DY, base);
	vrow_stats(c, &e, d, n->ia[0], n->fa[0]);
	cg_loop v = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef j = mulk(c, v.i, CG_VW), m = d % CG_VW ? cg_mask_dyn(c, LLVMBuildSub(c->B, I(c, d), j, "")) : NULL;
	LLVMValueRef s = cg_fma(c, vld(c, e.dy, j, m), xhat(c, &e, j, m), vld(c, DG, j, m));
	cg_vstore(c, s, cg_gep(c, DG, j), m);
	cg_loop_end(c, &v);
	cg_loop_end(c, &r);
}

/* ---- softmax over the last axis, 16 values at a time ---- */

#define NEG_INF (-__builtin_inf()) /* not math.h: its fadd, fmul... are names here */

static LLVMValueRef vfmax(cg_ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOGT, a, b, ""), a, b, "");
}

/* v's lanes combined pairwise by op, halving the width each round: the
 * largest or smallest lane (exact in any order) */
static LLVMValueRef hreduce(cg_ctx *c, LLVMValueRef v, LLVMValueRef (*op)(cg_ctx *, LLVMValueRef, LLVMValueRef))
{
	for (int w = CG_VW; w > 1; w /= 2) {
		LLVMValueRef lo[CG_VW], hi[CG_VW];
		for (int i = 0; i < w / 2; i++) {
			lo[i] = cg_i32(c, i);
			hi[i] = cg_i32(c, i + w / 2);
		}
		LLVMValueRef p = LLVMGetPoison(LLVMTypeOf(v));
		v = op(c, LLVMBuildShuffleVector(c->B, v, p, LLVMConstVector(lo, (unsigned)(w / 2)), ""),
		       LLVMBuildShuffleVector(c->B, v, p, LLVMConstVector(hi, (unsigned)(w / 2)), ""));
	}
	return LLVMBuildExtractElement(c->B, v, cg_i32(c, 0), "");
}

static LLVMValueRef hmax(cg_ctx *c, LLVMValueRef v) { return hreduce(c, v, vfmax); }

/* Lanes of the vector at j that lie in a row of n values (NULL: all do). */
static LLVMValueRef tail_mask(cg_ctx *c, int64_t n, LLVMValueRef j)
{
	return n % CG_VW ? cg_mask_dyn(c, LLVMBuildSub(c->B, I(c, n), j, "")) : NULL;
}

/* out[0..N) = softmax of x[0..len) and 0 from len on (out may be x), 16
 * values at a time: the passes go over the vectors that hold live values
 * only, then (`part`: len may be < N) zeros to the row's end; lanes past N
 * belong to the next row.  The sums and the max are the same as over the
 * whole row with dead lanes left out. */
static void softmax_row(cg_ctx *c, LLVMValueRef x, LLVMValueRef out, LLVMValueRef len, int64_t N, bool part)
{
	LLVMValueRef nv = LLVMBuildUDiv(c->B, add(c, len, I(c, CG_VW - 1)), I(c, CG_VW), "");
	LLVMValueRef amax = facc(c, cg_vf32(c, NEG_INF), "vmax"), asum = facc(c, vzero(c), "vsum");
	cg_loop v = cg_loop_begin(c, I(c, 0), nv, 1);
	LLVMValueRef j = mulk(c, v.i, CG_VW), m = cg_mask_dyn(c, LLVMBuildSub(c->B, len, j, ""));
	cg_store(c, vfmax(c, live(c, m, vld(c, x, j, m), cg_vf32(c, NEG_INF)), cg_load(c, c->v16, amax)), amax);
	cg_loop_end(c, &v);
	LLVMValueRef mx = cg_splat(c, hmax(c, cg_load(c, c->v16, amax)));
	cg_loop v2 = cg_loop_begin(c, I(c, 0), nv, 1);
	j = mulk(c, v2.i, CG_VW);
	m = cg_mask_dyn(c, LLVMBuildSub(c->B, len, j, ""));
	LLVMValueRef ev = live(c, m, cgm_exp(c->B, vfsub(c, vld(c, x, j, m), mx)), vzero(c));
	cg_vstore(c, ev, cg_gep(c, out, j), tail_mask(c, N, j));
	vacc_add(c, asum, ev);
	cg_loop_end(c, &v2);
	LLVMValueRef inv = cg_splat(c, fdiv(c, cg_f32(c, 1), cg_hsum(c, cg_load(c, c->v16, asum))));
	cg_loop v3 = cg_loop_begin(c, I(c, 0), nv, 1);
	j = mulk(c, v3.i, CG_VW);
	cg_vstore(c, vfmul(c, vld(c, out, j, tail_mask(c, N, j)), inv), cg_gep(c, out, j), tail_mask(c, N, j));
	cg_loop_end(c, &v3);
	if (part) {
		cg_loop v4 = cg_loop_begin(c, nv, I(c, (N + CG_VW - 1) / CG_VW), 1);
		j = mulk(c, v4.i, CG_VW);
		cg_vstore(c, vzero(c), cg_gep(c, out, j), tail_mask(c, N, j));
		cg_loop_end(c, &v4);
	}
}

static void smg_dot(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	row_env *e = env;
	cg_store(c, cg_fma(c, vld(c, e->x, j, mask), vld(c, e->dy, j, mask), cg_load(c, c->v16, e->acc)), e->acc);
}

static void smg_out(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	row_env *e = env;
	LLVMValueRef v = vfmul(c, vld(c, e->x, j, mask), vfsub(c, vld(c, e->dy, j, mask), e->s1));
	cg_vstore(c, v, cg_gep(c, e->out, j), mask);
}

/* SOFTMAX_LAST: y[r] = softmax(x[r]) over the row's L values; causal: over
 * its first i + 1 values, i = the row's place in its [L, L] matrix, the rest
 * 0.  SOFTMAX_LAST_GRAD (y, dy): dx[r] = y (dy - sum(dy y)), 0 where y is. */
void lower_softmax_last(cg_ctx *c, ir_node *n)
{
	int64_t L = n->ia[1] ? n->ia[1] : last_dim(n);
	bool causal = n->ia[0], grad = n->op == IR_SOFTMAX_LAST_GRAD;
	LLVMValueRef X = cg_tensor(c, operand(c, n, 0)), D = grad ? cg_tensor(c, operand(c, n, 1)) : NULL;
	LLVMValueRef Y = cg_tensor(c, n), lo, hi;
	cg_partition(c, rows_of(c, n, L), &lo, &hi);
	cg_loop r = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef base = mulk(c, r.i, L);
	row_env e = {.x = cg_gep(c, X, base), .out = cg_gep(c, Y, base)};
	if (grad) {
		e.dy = cg_gep(c, D, base);
		e.acc = facc(c, vzero(c), "vdot");
		cg_vec_loop(c, L, smg_dot, &e);
		e.s1 = cg_splat(c, cg_hsum(c, cg_load(c, c->v16, e.acc)));
		cg_vec_loop(c, L, smg_out, &e);
	} else {
		LLVMValueRef len = causal ? add(c, LLVMBuildSRem(c->B, r.i, I(c, L), ""), I(c, 1)) : I(c, L);
		softmax_row(c, e.x, e.out, len, L, causal);
	}
	cg_loop_end(c, &r);
}

/* ---- the batched product: register tiles per matrix ---- */

/* A transposed b is copied into a stack buffer of at most this many floats
 * (64 KiB) so that its rows are contiguous in j; a larger one takes the
 * reference loops. */
#define MATMUL_BT_FLOATS IR_MATMUL_BT_FLOATS

typedef struct mm_env {
	LLVMValueRef A, B, C, scale; /* this matrix's; B(k, j) = B[k N + j]; scale a splat */
	LLVMValueRef row0;           /* NULL, or the row C's first row is (a tile's buffer) */
	LLVMValueRef kend;           /* NULL, or k's end at run time (< K: the rest of A is 0) */
	int64_t K, N, sai, sak;
} mm_env;

/* Row `row` of C (e->row0: C holds the rows from row0 on). */
static LLVMValueRef mm_crow(cg_ctx *c, const mm_env *e, LLVMValueRef row)
{
	return cg_gep(c, e->C, mulk(c, e->row0 ? LLVMBuildSub(c->B, row, e->row0, "") : row, e->N));
}

/* C rows [m0, m0 + rows) x the 16 columns at j (mask: the row's tail):
 * rows accumulators over k in order, then scaled, stored once */
static void mm_tile(cg_ctx *c, const mm_env *e, LLVMValueRef m0, int rows, LLVMValueRef j, LLVMValueRef mask)
{
	LLVMValueRef acc[16], arow[16];
	for (int q = 0; q < rows; q++) {
		acc[q] = facc(c, vzero(c), "mmacc");
		arow[q] = cg_gep(c, e->A, mulk(c, add(c, m0, I(c, q)), e->sai));
	}
	cg_loop k = cg_loop_begin(c, I(c, 0), e->kend ? e->kend : I(c, e->K), 1);
	LLVMValueRef bv = vld(c, e->B, add(c, mulk(c, k.i, e->N), j), mask), ko = mulk(c, k.i, e->sak);
	for (int q = 0; q < rows; q++)
		cg_store(c, cg_fma(c, cg_splat(c, fld(c, arow[q], ko)), bv, cg_load(c, c->v16, acc[q])), acc[q]);
	cg_loop_end(c, &k);
	for (int q = 0; q < rows; q++)
		cg_vstore(c, vfmul(c, cg_load(c, c->v16, acc[q]), e->scale), cg_gep(c, mm_crow(c, e, add(c, m0, I(c, q))), j),
			  mask);
}

/* Every column vector of the rows [m0, m0 + rows) */
static void mm_rows(cg_ctx *c, const mm_env *e, LLVMValueRef m0, int rows)
{
	int64_t full = e->N / CG_VW * CG_VW;
	if (full) {
		cg_loop j = cg_loop_begin(c, I(c, 0), I(c, full), CG_VW);
		mm_tile(c, e, m0, rows, j.i, NULL);
		cg_loop_end(c, &j);
	}
	if (e->N > full)
		mm_tile(c, e, m0, rows, I(c, full), cg_mask(c, (int)(e->N - full)));
}

/* ATTN_PROBS's rows [m0, m0 + rows) of the matrix at e->C, scores so far:
 * each row's softmax in place (a loop: one copy of the code; causal: over
 * the values up to the diagonal). */
static void attn_softmax_rows(cg_ctx *c, const mm_env *e, LLVMValueRef m0, int rows, bool causal)
{
	cg_loop q = cg_loop_begin(c, m0, add(c, m0, I(c, rows)), 1);
	LLVMValueRef x = mm_crow(c, e, q.i);
	softmax_row(c, x, x, causal ? add(c, q.i, I(c, 1)) : I(c, e->N), e->N, causal);
	cg_loop_end(c, &q);
}

/* What matmul_tiles computes: a product, attention's probabilities
 * (ATTN_PROBS), or (ATTN_OUT in eval and inference) the whole attention. */
typedef enum { MM_PRODUCT, MM_PROBS, MM_ATTENTION } mm_kind;

/* C[g] = scale op(A[g]) op(B[g]) for every matrix g of every sample:
 * A(i, k) = a[i sai + k sak]; B's rows (k) contiguous in j, copied so when
 * B is transposed.  Each matrix is one task, k summed in order: a sample's
 * results do not depend on the thread count.  MM_PROBS: each tile of rows
 * is then normalised (attn_softmax_rows).  MM_ATTENTION: n = p v with p =
 * ATTN_PROBS(q, k) (n's operands p, v, q, k): p's tiles go to a buffer on
 * the stack, normalised, and the tile's rows of y are made from them. */
static void matmul_tiles(cg_ctx *c, ir_node *n, mm_kind kind)
{
	bool att = kind == MM_ATTENTION;
	ir_node *pn = att ? operand(c, n, 0) : n; /* the scores' product */
	ir_node *a = operand(c, n, att ? 2 : 0), *b = operand(c, n, att ? 3 : 1);
	int r = pn->rank;
	bool ta = pn->ia[0], tb = pn->ia[1], causal = kind != MM_PRODUCT && pn->ia[2];
	int64_t M = pn->dims[r - 2], N = pn->dims[r - 1], K = a->dims[ta ? r - 2 : r - 1], D = n->dims[r - 1];
	NNC_ASSERT(!tb || K * N <= MATMUL_BT_FLOATS);
	NNC_ASSERT(!causal || M == N);
	int64_t G = pn->size / (M * N);
	/* rows per tile: the register tile of the dense products (cg_ctx.vacc) */
	int mr = c->vacc >= 24 || c->vacc == 0 ? 12 : c->vacc;
	if (mr > IR_MATMUL_ROWS_MAX)
		mr = IR_MATMUL_ROWS_MAX;
	NNC_ASSERT(!att || mr * N <= MATMUL_BT_FLOATS); /* fuse.c */
	mm_env e = {.K = K, .N = N, .sai = ta ? 1 : K, .sak = ta ? M : 1, .scale = cg_vf32(c, pn->fa[0])};
	LLVMValueRef Ap = cg_tensor(c, a), Bp = cg_tensor(c, b), Cp = cg_tensor(c, n), lo, hi;
	LLVMValueRef bt = tb ? cg_alloca(c, LLVMArrayType2(c->f32, (uint64_t)(K * N)), "bt") : NULL;
	LLVMValueRef buf = att ? cg_alloca(c, LLVMArrayType2(c->f32, (uint64_t)(mr * N)), "probs") : NULL;
	LLVMValueRef Vp = att ? cg_tensor(c, operand(c, n, 1)) : NULL, V = NULL;
	cg_partition(c, mulk(c, cg_batch_n(c), G), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	e.A = cg_gep(c, Ap, mulk(c, t.i, M * K));
	e.B = cg_gep(c, Bp, mulk(c, t.i, K * N));
	e.C = att ? buf : cg_gep(c, Cp, mulk(c, t.i, M * N));
	LLVMValueRef Y = att ? cg_gep(c, Cp, mulk(c, t.i, M * D)) : NULL;
	if (att)
		V = cg_gep(c, Vp, mulk(c, t.i, N * D));
	if (tb) { /* bt[k N + j] = b[j K + k] */
		cg_loop j = cg_loop_begin(c, I(c, 0), I(c, N), 1);
		cg_loop k = cg_loop_begin(c, I(c, 0), I(c, K), 1);
		fst(c, fld(c, e.B, add(c, mulk(c, j.i, K), k.i)), bt, add(c, mulk(c, k.i, N), j.i));
		cg_loop_end(c, &k);
		cg_loop_end(c, &j);
		e.B = bt;
	}
	for (int part = 0; part < 2; part++) { /* the full tiles of mr rows, then the rest */
		int rows = part ? (int)(M % mr) : mr;
		if (!rows || (!part && !(M / mr)))
			continue;
		cg_loop i = part ? (cg_loop){0} : cg_loop_begin(c, I(c, 0), I(c, M / mr * mr), mr);
		LLVMValueRef m0 = part ? I(c, M / mr * mr) : i.i;
		e.row0 = att ? m0 : NULL;
		if (!causal) {
			mm_rows(c, &e, m0, rows);
		} else { /* the vectors of columns < m0 + rows, the last one masked at N */
			LLVMValueRef jend = cg_min_i64(c, add(c, m0, I(c, rows)), I(c, N));
			cg_loop j = cg_loop_begin(c, I(c, 0), jend, CG_VW);
			mm_tile(c, &e, m0, rows, j.i, tail_mask(c, N, j.i));
			cg_loop_end(c, &j);
		}
		if (kind != MM_PRODUCT)
			attn_softmax_rows(c, &e, m0, rows, causal);
		if (att) { /* the tile's rows of y = scale p v: a product of the tile's p
			    * (causal: zeros from column m0 + rows on, left out; the
			    * train step's product adds them: the same sums) */
			mm_env w = {.A = buf, .B = V, .C = cg_gep(c, Y, mulk(c, m0, D)), .scale = cg_vf32(c, n->fa[0]),
				    .K = N, .N = D, .sai = N, .sak = 1};
			w.kend = causal ? cg_min_i64(c, add(c, m0, I(c, rows)), I(c, N)) : NULL;
			mm_rows(c, &w, I(c, 0), rows);
		}
		if (!part)
			cg_loop_end(c, &i);
	}
	cg_loop_end(c, &t);
}

void lower_matmul(cg_ctx *c, ir_node *n)
{
	ir_node *a = operand(c, n, 0);
	int r = n->rank;
	int64_t N = n->dims[r - 1], K = a->dims[n->ia[0] ? r - 2 : r - 1];
	if (n->ia[1] && K * N > MATMUL_BT_FLOATS)
		naive_matmul(c, n);
	else
		matmul_tiles(c, n, MM_PRODUCT);
}

/* ATTN_PROBS (a, b): softmax(scale op(a) op(b)) over each row, causal or
 * not: attention's scores and probabilities in one op (fuse.c, a matmul
 * whose only reader is the softmax over its rows; fuse.c fuses only a
 * product whose b^T fits on the stack).  Each tile's scores go straight
 * into the output rows and each row is normalised in place while it is in
 * L1, so the scores are no tensor of their own.  Causal, a tile computes
 * only the column vectors that reach its last row's diagonal, and the
 * softmax passes over the live vectors of each row only. */
void lower_attn_probs(cg_ctx *c, ir_node *n) { matmul_tiles(c, n, MM_PROBS); }

/* ATTN_OUT (p, v, q, k): the train step's p v (the backward pass reads p);
 * eval and inference compute attention whole from q, k, v, a tile of p at
 * a time on the stack: no [h, T, T] tensor at all. */
void lower_attn_out(cg_ctx *c, ir_node *n) { matmul_tiles(c, n, c->train_mode ? MM_PRODUCT : MM_ATTENTION); }

/* The reference: each row's scores (causal: up to the diagonal), scalar
 * sums over k in order, then its softmax in place, the rest of it 0;
 * `att` (ATTN_OUT in eval and inference: operands p, v, q, k, the scores
 * as p says), the row on the stack and y's row from it. */
static void naive_attention(cg_ctx *c, ir_node *n, bool att)
{
	ir_node *pn = att ? operand(c, n, 0) : n;
	ir_node *a = operand(c, n, att ? 2 : 0), *b = operand(c, n, att ? 3 : 1);
	int r = pn->rank;
	bool ta = pn->ia[0], tb = pn->ia[1], causal = pn->ia[2];
	int64_t M = pn->dims[r - 2], N = pn->dims[r - 1], K = a->dims[ta ? r - 2 : r - 1], D = n->dims[r - 1];
	int64_t G = pn->size / (M * N);
	int64_t sai = ta ? 1 : K, sak = ta ? M : 1, sbk = tb ? 1 : N, sbj = tb ? K : 1;
	LLVMValueRef Ap = cg_tensor(c, a), Bp = cg_tensor(c, b), Cp = cg_tensor(c, n), lo, hi;
	LLVMValueRef Vp = att ? cg_tensor(c, operand(c, n, 1)) : NULL;
	LLVMValueRef row = att ? cg_alloca(c, LLVMArrayType2(c->f32, (uint64_t)N), "prow") : NULL;
	LLVMValueRef scale = cg_f32(c, pn->fa[0]);
	cg_partition(c, mulk(c, cg_batch_n(c), G), &lo, &hi);
	cg_loop t = cg_loop_begin(c, lo, hi, 1);
	LLVMValueRef A = cg_gep(c, Ap, mulk(c, t.i, M * K)), B = cg_gep(c, Bp, mulk(c, t.i, K * N));
	LLVMValueRef C = cg_gep(c, Cp, mulk(c, t.i, M * (att ? D : N)));
	cg_loop i = cg_loop_begin(c, I(c, 0), I(c, M), 1);
	LLVMValueRef arow = cg_gep(c, A, mulk(c, i.i, sai)), crow = att ? row : cg_gep(c, C, mulk(c, i.i, N));
	LLVMValueRef len = causal ? add(c, i.i, I(c, 1)) : I(c, N);
	naive_row(c, arow, B, crow, len, I(c, K), (int64_t[3]){sak, sbk, sbj}, scale);
	naive_softmax_row(c, crow, crow, len, N);
	if (att) { /* y[i][d] = scale sum over j < len of p[j] v[j][d] */
		LLVMValueRef V = cg_gep(c, Vp, mulk(c, t.i, N * D));
		naive_row(c, crow, V, cg_gep(c, C, mulk(c, i.i, D)), I(c, D), len, (int64_t[3]){1, D, 1}, cg_f32(c, n->fa[0]));
	}
	cg_loop_end(c, &i);
	cg_loop_end(c, &t);
}

void naive_attn_probs(cg_ctx *c, ir_node *n) { naive_attention(c, n, false); }

/* ATTN_OUT: the train step's product, or the whole attention */
void naive_attn_out(cg_ctx *c, ir_node *n)
{
	if (c->train_mode)
		naive_matmul(c, n);
	else
		naive_attention(c, n, true);
}

void lower_seq_xent(cg_ctx *c, ir_node *n) { seq_xent(c, n, true); }
void naive_seq_xent(cg_ctx *c, ir_node *n) { seq_xent(c, n, false); }

/* ---- the per-position cross-entropy, 16 classes at a time ---- */

typedef struct xent_env {
	LLVMValueRef x, out, acc, iacc; /* row, gradient row, accumulators */
	LLVMValueRef m, inv, y, scale;  /* splats: max, 1/sum, the label (i32), the gradient's scale */
} xent_env;

static void xent_max(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	xent_env *e = env;
	LLVMValueRef v = live(c, mask, vld(c, e->x, j, mask), cg_vf32(c, NEG_INF));
	cg_store(c, vfmax(c, v, cg_load(c, c->v16, e->acc)), e->acc);
}

/* the class ids of the 16 lanes at j, as i32 */
static LLVMValueRef lane_ids(cg_ctx *c, LLVMValueRef j)
{
	return LLVMBuildAdd(c->B, cg_iota(c, 32), cg_splat(c, LLVMBuildTrunc(c->B, j, c->i32, "")), "");
}

/* the smallest id whose value is the max: the first argmax, as the scalar loop */
static void xent_argmax(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	xent_env *e = env;
	LLVMValueRef hit = LLVMBuildFCmp(c->B, LLVMRealOEQ, vld(c, e->x, j, mask), e->m, "");
	if (mask)
		hit = LLVMBuildAnd(c->B, hit, mask, "");
	LLVMTypeRef vi = LLVMTypeOf(cg_iota(c, 32));
	LLVMValueRef cand = LLVMBuildSelect(c->B, hit, lane_ids(c, j), cg_splat(c, cg_i32(c, INT32_MAX)), "");
	LLVMValueRef cur = cg_load(c, vi, e->iacc);
	cg_store(c, LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, cand, cur, ""), cand, cur, ""), e->iacc);
}

static LLVMValueRef imin(cg_ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef hmin_i32(cg_ctx *c, LLVMValueRef v) { return hreduce(c, v, imin); }

static void seq_xent_vec_max(cg_ctx *c, LLVMValueRef row, int64_t V, LLVMValueRef *mx, LLVMValueRef *am)
{
	xent_env e = {.x = row, .acc = facc(c, cg_vf32(c, NEG_INF), "xmax")};
	cg_vec_loop(c, V, xent_max, &e);
	*mx = hmax(c, cg_load(c, c->v16, e.acc));
	if (!am)
		return;
	e.m = cg_splat(c, *mx);
	e.iacc = facc(c, cg_splat(c, cg_i32(c, INT32_MAX)), "xam");
	cg_vec_loop(c, V, xent_argmax, &e);
	LLVMValueRef first = hmin_i32(c, cg_load(c, LLVMTypeOf(cg_iota(c, 32)), e.iacc));
	/* no lane equal to the max (a NaN row): 0, as the scalar loop's start */
	LLVMValueRef none = LLVMBuildICmp(c->B, LLVMIntEQ, first, cg_i32(c, INT32_MAX), "");
	*am = LLVMBuildSelect(c->B, none, I(c, 0), LLVMBuildSExt(c->B, first, c->i64, ""), "");
}

static void xent_sumexp(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	xent_env *e = env;
	LLVMValueRef v = live(c, mask, cgm_exp(c->B, vfsub(c, vld(c, e->x, j, mask), e->m)), vzero(c));
	vacc_add(c, e->acc, v);
}

static LLVMValueRef seq_xent_vec_sumexp(cg_ctx *c, LLVMValueRef row, int64_t V, LLVMValueRef mx)
{
	xent_env e = {.x = row, .m = cg_splat(c, mx), .acc = facc(c, vzero(c), "xsum")};
	cg_vec_loop(c, V, xent_sumexp, &e);
	return cg_hsum(c, cg_load(c, c->v16, e.acc));
}

static void xent_grad(cg_ctx *c, LLVMValueRef j, LLVMValueRef mask, void *env)
{
	xent_env *e = env;
	LLVMValueRef pr = vfmul(c, cgm_exp(c->B, vfsub(c, vld(c, e->x, j, mask), e->m)), e->inv);
	LLVMValueRef hot = LLVMBuildUIToFP(c->B, LLVMBuildICmp(c->B, LLVMIntEQ, lane_ids(c, j), e->y, ""), c->v16, "");
	cg_vstore(c, vfmul(c, vfsub(c, pr, hot), e->scale), cg_gep(c, e->out, j), mask);
}

static void seq_xent_vec_grad(cg_ctx *c, LLVMValueRef row, LLVMValueRef out, int64_t V, LLVMValueRef mx,
			      LLVMValueRef inv, LLVMValueRef y, LLVMValueRef scale)
{
	xent_env e = {.x = row, .out = out, .m = cg_splat(c, mx), .inv = cg_splat(c, inv),
		      .y = cg_splat(c, LLVMBuildTrunc(c->B, y, c->i32, "")), .scale = cg_splat(c, scale)};
	cg_vec_loop(c, V, xent_grad, &e);
}
