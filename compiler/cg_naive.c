/*
 * cg_naive.c - reference lowerings of the matrix products and convolutions:
 * plain scalar loop nests written straight from each op's definition, no
 * tiling, no vectors, no epilogue tricks.  `nnc -O0` (or --naive-kernels)
 * uses them instead of the fast kernels; the tests compare the two on odd
 * shapes, and a user can do the same when a result looks wrong.
 * Work is still split across threads (by the outermost output index), so the
 * generated bodies keep their structure.
 */
#include "cg.h"

static ir_node *operand(cg_ctx *c, ir_node *n, int k) { return &c->g->nodes[n->in[k]]; }
static LLVMValueRef add(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(c->B, a, b, ""); }
static LLVMValueRef sub(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSub(c->B, a, b, ""); }
static LLVMValueRef mulk(cg_ctx *c, LLVMValueRef a, int64_t k) { return LLVMBuildMul(c->B, a, cg_i64(c, k), ""); }
static LLVMValueRef ld(cg_ctx *c, LLVMValueRef base, LLVMValueRef i) { return cg_load(c, c->f32, cg_gep(c, base, i)); }
static void st(cg_ctx *c, LLVMValueRef v, LLVMValueRef base, LLVMValueRef i) { cg_store(c, v, cg_gep(c, base, i)); }

/* acc += a * b on a float alloca */
static void mac(cg_ctx *c, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b)
{
	cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f32, acc), LLVMBuildFMul(c->B, a, b, ""), ""), acc);
}

/* The two factors of term k of a product's sum. */
typedef void term_fn(cg_ctx *c, const void *env, LLVMValueRef k, LLVMValueRef *a, LLVMValueRef *b);

/* acc += sum_{k < K} a(k) b(k): in order of k; with bf16 products (cg_ctx.bf16)
 * the factors rounded to bfloat16 and the terms taken by pairs, k + 1
 * before k (the order of vdpbf16ps: the fast kernels' exact results). */
static void sum_terms(cg_ctx *c, LLVMValueRef acc, LLVMValueRef K, term_fn *term, const void *env)
{
	LLVMValueRef a, b;
	if (!c->bf16) {
		cg_loop k = cg_loop_begin(c, cg_i64(c, 0), K, 1);
		term(c, env, k.i, &a, &b);
		mac(c, acc, a, b);
		cg_loop_end(c, &k);
		return;
	}
	LLVMValueRef np = LLVMBuildSDiv(c->B, add(c, K, cg_i64(c, 1)), cg_i64(c, 2), "");
	cg_loop p = cg_loop_begin(c, cg_i64(c, 0), np, 1);
	LLVMValueRef k0 = mulk(c, p.i, 2), k1 = add(c, k0, cg_i64(c, 1));
	cg_if odd = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntSLT, k1, K, ""));
	term(c, env, k1, &a, &b);
	mac(c, acc, cg_round_bf16(c, a), cg_round_bf16(c, b));
	cg_if_end(c, &odd);
	term(c, env, k0, &a, &b);
	mac(c, acc, cg_round_bf16(c, a), cg_round_bf16(c, b));
	cg_loop_end(c, &p);
}

static LLVMValueRef zero_acc(cg_ctx *c)
{
	LLVMValueRef a = cg_alloca(c, c->f32, "acc");
	cg_store(c, cg_f32(c, 0), a);
	return a;
}

/* Index of value i of sample s in a tensor of per-sample size `size`. */
static LLVMValueRef at(cg_ctx *c, const ir_node *t, LLVMValueRef s, LLVMValueRef i)
{
	if (t->layout == LAYOUT_CN)
		return add(c, mulk(c, i, c->g->bpad), s);
	return add(c, mulk(c, s, t->size), i);
}

/* Row s of R per sample (a per-position dense, IR_IA_ROWS), value i; R = 1: at() */
static LLVMValueRef atr(cg_ctx *c, const ir_node *t, LLVMValueRef s, LLVMValueRef i, int64_t R)
{
	return R == 1 ? at(c, t, s, i) : add(c, mulk(c, s, t->size / R), i);
}

static LLVMValueRef rows_of(cg_ctx *c, int64_t R)
{
	return R == 1 ? cg_batch_n(c) : mulk(c, cg_batch_n(c), R);
}

typedef struct dense_env {
	const ir_node *x;
	LLVMValueRef X, W, s, j;
	int64_t R, N;
} dense_env;

static void dense_term(cg_ctx *c, const void *env, LLVMValueRef k, LLVMValueRef *a, LLVMValueRef *b)
{
	const dense_env *e = env;
	*a = ld(c, e->X, atr(c, e->x, e->s, k, e->R));
	*b = ld(c, e->W, add(c, mulk(c, k, e->N), e->j));
}

/* y(s, j) = act(b[j] + sum_k x(s, k) W[k][j]) */
void naive_dense(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0);
	int64_t R = ir_rows(n), K = x->size / R, N = n->size / R;
	LLVMValueRef X = cg_tensor(c, x), W = cg_tensor(c, operand(c, n, 1)), Y = cg_tensor(c, n);
	LLVMValueRef Bs = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL;
	LLVMValueRef lo, hi;
	cg_partition(c, rows_of(c, R), &lo, &hi);
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, N), 1);
	LLVMValueRef acc = zero_acc(c);
	dense_env e = {x, X, W, s.i, j.i, R, N};
	sum_terms(c, acc, cg_i64(c, K), dense_term, &e);
	LLVMValueRef v = cg_load(c, c->f32, acc);
	if (Bs)
		v = LLVMBuildFAdd(c->B, v, ld(c, Bs, j.i), "");
	LLVMValueRef Ya = cg_act_dst(c, n); /* act(v) there, v kept; or in place */
	st(c, Ya ? v : cg_act(c, n->act, n->fa[IR_FA_ACT], v), Y, atr(c, n, s.i, j.i, R));
	if (Ya)
		st(c, cg_act(c, n->act, n->fa[IR_FA_ACT], v), Ya, atr(c, n, s.i, j.i, R));
	cg_loop_end(c, &j);
	cg_loop_end(c, &s);
}

typedef struct bx_env {
	const ir_node *dy;
	LLVMValueRef DY, W, s, i;
	int64_t R, I, O;
	bool cn;
} bx_env;

/* the sum's terms in the fast kernel's order of factors: dy first */
static void bx_term(cg_ctx *c, const void *env, LLVMValueRef o, LLVMValueRef *a, LLVMValueRef *b)
{
	const bx_env *e = env;
	LLVMValueRef wi = e->cn ? add(c, mulk(c, e->i, e->O), o) : add(c, mulk(c, o, e->I), e->i);
	*a = ld(c, e->DY, atr(c, e->dy, e->s, o, e->R));
	*b = ld(c, e->W, wi);
}

/* dx(s, i) = act'(y(s, i)) * sum_o dy(s, o) W[i][o]: DENSE_BWD_X reads
 * Wt[o][i], DENSE_BWD_XT reads W[i][o] and dyT; both are written here. */
void naive_dense_bx(cg_ctx *c, ir_node *n)
{
	bool cn = n->op == IR_DENSE_BWD_XT;
	ir_node *dy = operand(c, n, cn ? 1 : 0), *w = operand(c, n, cn ? 0 : 1);
	int64_t R = ir_rows(n), I = n->size / R, O = dy->size / R;
	LLVMValueRef DY = cg_tensor(c, dy), W = cg_tensor(c, w), DX = cg_tensor(c, n);
	LLVMValueRef Yv = n->dact ? cg_tensor(c, operand(c, n, 2)) : NULL;
	LLVMValueRef lo, hi;
	cg_partition(c, rows_of(c, R), &lo, &hi);
	cg_loop s = cg_loop_begin(c, lo, hi, 1);
	cg_loop i = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, I), 1);
	LLVMValueRef acc = zero_acc(c);
	bx_env e = {dy, DY, W, s.i, i.i, R, I, O, cn};
	sum_terms(c, acc, cg_i64(c, O), bx_term, &e);
	LLVMValueRef idx = atr(c, n, s.i, i.i, R);
	LLVMValueRef v = cg_load(c, c->f32, acc);
	if (Yv)
		v = cg_dact(c, n->dact, n->fa[IR_FA_ACT], ld(c, Yv, idx), v);
	st(c, v, DX, idx);
	cg_loop_end(c, &i);
	cg_loop_end(c, &s);
}

typedef struct bw_env {
	const ir_node *x, *dy;
	LLVMValueRef X, DY, i, o;
	int64_t R;
} bw_env;

static void bw_term(cg_ctx *c, const void *env, LLVMValueRef s, LLVMValueRef *a, LLVMValueRef *b)
{
	const bw_env *e = env;
	*a = ld(c, e->X, atr(c, e->x, s, e->i, e->R));
	*b = ld(c, e->DY, atr(c, e->dy, s, e->o, e->R));
}

/* dW[i][o] = sum_{s < n} x(s, i) dy(s, o) */
void naive_dense_bw(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *dy = operand(c, n, 1);
	int64_t R = ir_rows(n), I = x->size / R, O = dy->size / R;
	LLVMValueRef X = cg_tensor(c, x), DY = cg_tensor(c, dy), DW = cg_tensor(c, n);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, I), &lo, &hi);
	cg_loop i = cg_loop_begin(c, lo, hi, 1);
	cg_loop o = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, O), 1);
	LLVMValueRef acc = zero_acc(c);
	bw_env e = {x, dy, X, DY, i.i, o.i, R};
	sum_terms(c, acc, rows_of(c, R), bw_term, &e);
	st(c, cg_load(c, c->f32, acc), DW, add(c, mulk(c, i.i, O), o.i));
	cg_loop_end(c, &o);
	cg_loop_end(c, &i);
}

/* wt[o, i] = w[i, o], one element at a time (split by rows of wt) */
void naive_transpose(cg_ctx *c, ir_node *n)
{
	ir_node *w = operand(c, n, 0);
	int64_t I = w->dims[0], O = w->dims[1];
	LLVMValueRef W = cg_tensor(c, w), WT = cg_tensor(c, n);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, O), &lo, &hi);
	cg_loop o = cg_loop_begin(c, lo, hi, 1);
	cg_loop i = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, I), 1);
	st(c, ld(c, W, add(c, mulk(c, i.i, O), o.i)), WT, add(c, mulk(c, o.i, I), i.i));
	cg_loop_end(c, &i);
	cg_loop_end(c, &o);
}

/* v rounded to bfloat16 where the fast kernel rounds (cg_conv_bf16) */
static LLVMValueRef bf(cg_ctx *c, bool bf16, LLVMValueRef v) { return bf16 ? cg_round_bf16(c, v) : v; }

/* value (ch, h, w) of sample s of a CN image tensor with dims [C, H, W] */
static LLVMValueRef img(cg_ctx *c, const ir_node *t, LLVMValueRef ch, LLVMValueRef h, LLVMValueRef w, LLVMValueRef s)
{
	LLVMValueRef i = add(c, mulk(c, add(c, mulk(c, ch, t->dims[1]), h), t->dims[2]), w);
	return add(c, mulk(c, i, c->g->bpad), s);
}

/* 0 <= v < hi */
static LLVMValueRef in_range(cg_ctx *c, LLVMValueRef v, int64_t hi)
{
	return LLVMBuildAnd(c->B, LLVMBuildICmp(c->B, LLVMIntSGE, v, cg_i64(c, 0), ""),
			    LLVMBuildICmp(c->B, LLVMIntSLT, v, cg_i64(c, hi), ""), "");
}

/* y[f][oh][ow] = act(b[f] + sum_{c,kh,kw} w[f][c][kh][kw] x[c][oh*sh-ph+kh][ow*sw-pw+kw]) */
void naive_conv(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *w = operand(c, n, 1);
	int64_t C = x->dims[0], H = x->dims[1], W = x->dims[2], F = n->dims[0], OH = n->dims[1], OW = n->dims[2];
	int64_t KH = n->ia[0], KW = n->ia[1], SH = n->ia[2], SW = n->ia[3], PH = n->ia[4], PW = n->ia[5];
	LLVMValueRef X = cg_tensor(c, x), Wt = cg_tensor(c, w), Y = cg_tensor(c, n);
	LLVMValueRef Bs = n->nin > 2 ? cg_tensor(c, operand(c, n, 2)) : NULL;
	bool bf16 = cg_conv_bf16(c, n);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, F), &lo, &hi);
	cg_loop f = cg_loop_begin(c, lo, hi, 1);
	cg_loop oh = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, OH), 1);
	cg_loop ow = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, OW), 1);
	cg_loop s = cg_loop_begin(c, cg_i64(c, 0), cg_batch_n(c), 1);
	LLVMValueRef acc = zero_acc(c);
	cg_loop ch = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, C), 1);
	cg_loop kh = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KH), 1);
	cg_loop kw = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KW), 1);
	{
		LLVMValueRef ih = add(c, sub(c, mulk(c, oh.i, SH), cg_i64(c, PH)), kh.i);
		LLVMValueRef iw = add(c, sub(c, mulk(c, ow.i, SW), cg_i64(c, PW)), kw.i);
		cg_if in = cg_if_begin(c, LLVMBuildAnd(c->B, in_range(c, ih, H), in_range(c, iw, W), ""));
		LLVMValueRef wi = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, f.i, C), ch.i), KH), kh.i), KW), kw.i);
		mac(c, acc, bf(c, bf16, ld(c, Wt, wi)), bf(c, bf16, ld(c, X, img(c, x, ch.i, ih, iw, s.i))));
		cg_if_end(c, &in);
	}
	cg_loop_end(c, &kw);
	cg_loop_end(c, &kh);
	cg_loop_end(c, &ch);
	LLVMValueRef v = cg_load(c, c->f32, acc);
	if (Bs)
		v = LLVMBuildFAdd(c->B, v, ld(c, Bs, f.i), "");
	LLVMValueRef Ya = cg_act_dst(c, n); /* act(v) there, v kept; or in place */
	st(c, Ya ? v : cg_act(c, n->act, n->fa[IR_FA_ACT], v), Y, img(c, n, f.i, oh.i, ow.i, s.i));
	if (Ya)
		st(c, cg_act(c, n->act, n->fa[IR_FA_ACT], v), Ya, img(c, n, f.i, oh.i, ow.i, s.i));
	cg_loop_end(c, &s);
	cg_loop_end(c, &ow);
	cg_loop_end(c, &oh);
	cg_loop_end(c, &f);
}

/* dx[c][ih][iw] = act'(y) * sum over (f, kh, kw) whose output position
 * oh = (ih + ph - kh) / sh, ow = (iw + pw - kw) / sw is whole and in range */
void naive_conv_bx(cg_ctx *c, ir_node *n)
{
	ir_node *dy = operand(c, n, 0), *w = operand(c, n, 1);
	int64_t C = n->dims[0], H = n->dims[1], W = n->dims[2], F = dy->dims[0], OH = dy->dims[1], OW = dy->dims[2];
	int64_t KH = n->ia[0], KW = n->ia[1], SH = n->ia[2], SW = n->ia[3], PH = n->ia[4], PW = n->ia[5];
	LLVMValueRef DY = cg_tensor(c, dy), Wt = cg_tensor(c, w), DX = cg_tensor(c, n);
	LLVMValueRef Yv = n->dact ? cg_tensor(c, operand(c, n, 2)) : NULL;
	bool bf16 = cg_conv_bf16(c, n);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, C), &lo, &hi);
	cg_loop ch = cg_loop_begin(c, lo, hi, 1);
	cg_loop ih = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, H), 1);
	cg_loop iw = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, W), 1);
	cg_loop s = cg_loop_begin(c, cg_i64(c, 0), cg_batch_n(c), 1);
	LLVMValueRef acc = zero_acc(c);
	cg_loop f = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, F), 1);
	cg_loop kh = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KH), 1);
	cg_loop kw = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KW), 1);
	{
		LLVMValueRef th = sub(c, add(c, ih.i, cg_i64(c, PH)), kh.i);
		LLVMValueRef tw = sub(c, add(c, iw.i, cg_i64(c, PW)), kw.i);
		LLVMValueRef oh = LLVMBuildSDiv(c->B, th, cg_i64(c, SH), ""), ow = LLVMBuildSDiv(c->B, tw, cg_i64(c, SW), "");
		LLVMValueRef ok = LLVMBuildAnd(c->B, LLVMBuildICmp(c->B, LLVMIntSGE, th, cg_i64(c, 0), ""),
					       LLVMBuildICmp(c->B, LLVMIntSGE, tw, cg_i64(c, 0), ""), "");
		ok = LLVMBuildAnd(c->B, ok, LLVMBuildICmp(c->B, LLVMIntEQ, LLVMBuildSRem(c->B, th, cg_i64(c, SH), ""), cg_i64(c, 0), ""), "");
		ok = LLVMBuildAnd(c->B, ok, LLVMBuildICmp(c->B, LLVMIntEQ, LLVMBuildSRem(c->B, tw, cg_i64(c, SW), ""), cg_i64(c, 0), ""), "");
		ok = LLVMBuildAnd(c->B, ok, LLVMBuildAnd(c->B, in_range(c, oh, OH), in_range(c, ow, OW), ""), "");
		cg_if in = cg_if_begin(c, ok);
		LLVMValueRef wi = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, f.i, C), ch.i), KH), kh.i), KW), kw.i);
		mac(c, acc, bf(c, bf16, ld(c, Wt, wi)), bf(c, bf16, ld(c, DY, img(c, dy, f.i, oh, ow, s.i))));
		cg_if_end(c, &in);
	}
	cg_loop_end(c, &kw);
	cg_loop_end(c, &kh);
	cg_loop_end(c, &f);
	LLVMValueRef idx = img(c, n, ch.i, ih.i, iw.i, s.i);
	LLVMValueRef v = cg_load(c, c->f32, acc);
	if (Yv)
		v = cg_dact(c, n->dact, n->fa[IR_FA_ACT], ld(c, Yv, idx), v);
	st(c, v, DX, idx);
	cg_loop_end(c, &s);
	cg_loop_end(c, &iw);
	cg_loop_end(c, &ih);
	cg_loop_end(c, &ch);
}

/* dw[f][c][kh][kw] = sum_{oh, ow, s < n} dy[f][oh][ow][s] x[c][ih][iw][s] */
void naive_conv_bw(cg_ctx *c, ir_node *n)
{
	ir_node *x = operand(c, n, 0), *dy = operand(c, n, 1);
	int64_t C = x->dims[0], H = x->dims[1], W = x->dims[2], F = dy->dims[0], OH = dy->dims[1], OW = dy->dims[2];
	int64_t KH = n->ia[0], KW = n->ia[1], SH = n->ia[2], SW = n->ia[3], PH = n->ia[4], PW = n->ia[5];
	LLVMValueRef X = cg_tensor(c, x), DY = cg_tensor(c, dy), DW = cg_tensor(c, n);
	bool bf16 = cg_conv_bf16(c, n);
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, F), &lo, &hi);
	cg_loop f = cg_loop_begin(c, lo, hi, 1);
	cg_loop ch = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, C), 1);
	cg_loop kh = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KH), 1);
	cg_loop kw = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, KW), 1);
	LLVMValueRef acc = zero_acc(c);
	cg_loop oh = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, OH), 1);
	cg_loop ow = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, OW), 1);
	{
		LLVMValueRef ih = add(c, sub(c, mulk(c, oh.i, SH), cg_i64(c, PH)), kh.i);
		LLVMValueRef iw = add(c, sub(c, mulk(c, ow.i, SW), cg_i64(c, PW)), kw.i);
		cg_if in = cg_if_begin(c, LLVMBuildAnd(c->B, in_range(c, ih, H), in_range(c, iw, W), ""));
		cg_loop s = cg_loop_begin(c, cg_i64(c, 0), cg_batch_n(c), 1);
		mac(c, acc, bf(c, bf16, ld(c, DY, img(c, dy, f.i, oh.i, ow.i, s.i))),
		    bf(c, bf16, ld(c, X, img(c, x, ch.i, ih, iw, s.i))));
		cg_loop_end(c, &s);
		cg_if_end(c, &in);
	}
	cg_loop_end(c, &ow);
	cg_loop_end(c, &oh);
	LLVMValueRef wi = add(c, mulk(c, add(c, mulk(c, add(c, mulk(c, f.i, C), ch.i), KH), kh.i), KW), kw.i);
	st(c, cg_load(c, c->f32, acc), DW, wi);
	cg_loop_end(c, &kw);
	cg_loop_end(c, &kh);
	cg_loop_end(c, &ch);
	cg_loop_end(c, &f);
}
