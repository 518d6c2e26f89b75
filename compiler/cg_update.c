/*
 * cg_update.c - the lowering of the optimizer update: one fused loop over
 * every parameter float at once (parameters, gradients and each optimizer
 * state array share one layout), split across the threads in blocks of
 * UPDATE_BLOCK floats.
 *
 * The rules are torch.optim's (docs/language.md writes each one out), with
 * g the batch-mean gradient, wd the step's weight decay, lr its rate:
 *   sgd      g += wd p;  v = mu v + d g (d: 1 at step 1, else 1 - dampening);
 *            step = nesterov ? g + mu v : v (no v when mu = 0: step = g);  p -= lr step
 *   adam     g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *            [amsgrad: vmax = max(vmax, v), used for v];
 *            p -= lr (m c1) / (sqrt(v c2) + eps),  c1 = 1/(1-b1^t), c2 = 1/(1-b2^t)
 *   adamw    p *= 1 - lr wd, then adam without the g += wd p
 *   rmsprop  g += wd p;  s = a s + (1-a) g^2;  [centered: ga = a ga + (1-a) g];
 *            r = sqrt(s [- ga^2]) + eps;  [mu: b = mu b + g / r, p -= lr b] else p -= lr g / r
 * The constants of the .nn file (momentum, betas, eps, alpha) are baked in;
 * lr, wd, c1, c2 and d come from the step's hp[] (nnrt.h NNRT_HP_*), so the
 * runtime changes them without recompiling, and so does the momentum (sgd,
 * rmsprop) or beta1 (adam) where onecycle cycles it (hp[] > 0, else the
 * constant).
 *
 * Weight decay applies to the parameters ir_param_decays() chooses (by
 * default not to biases).  The parameters are cut into runs of tensors that
 * are alike in that, and the loop runs over a constant table of the runs'
 * bounds, each with its decay (the step's wd or 0).  A decay of 0 selects the
 * plain gradient, so a run without decay computes exactly what it did before
 * weight decay existed, bit for bit.
 *
 * With several chunks, g is first the sum of the chunks' partial gradients
 * (in chunk order, so any thread count gives the same sum), stored back
 * into grads.  Every element's update reads only that element: the result
 * does not depend on the thread split either.
 *
 * Gradient clipping comes first, as torch's clip_grad_value_ and
 * clip_grad_norm_ before optimizer.step(): each value to [-cv, cv] (a NaN
 * stays NaN), then the whole gradient scaled by min(1, cn / (|g| + 1e-6)),
 * |g| the global norm over every parameter; cv, cn from hp[], 0 = off.
 * The norm needs the whole gradient before any update: with clip_norm
 * compiled in, a first pass sums the partials and the squares of each
 * block of UPDATE_BLOCK floats (in double, lanes in order) into the
 * workspace (ws_norm, plan.c), a barrier, and every thread adds the
 * blocks' sums in block order: the same norm for any thread count.
 *
 * With accumulate (NNRT_OPTF_ACCUMULATE), the last optimizer state array
 * holds the weighted sum of a group's micro-batch gradients: a step that
 * does not end its group adds w g to it and updates nothing; the last one
 * updates with w g + the sum, and clears it (w, and whether the step ends
 * the group, come from hp[]).
 */
#include "cg.h"

#define UPDATE_BLOCK IR_UPDATE_BLOCK /* floats: the unit of the threads' static split */

static LLVMValueRef fadd(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(c->B, a, b, ""); }
static LLVMValueRef fsub(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(c->B, a, b, ""); }
static LLVMValueRef fmul(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(c->B, a, b, ""); }
static LLVMValueRef fdiv(cg_ctx *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(c->B, a, b, ""); }
static LLVMValueRef vsqrt(cg_ctx *c, LLVMValueRef v)
{
	LLVMTypeRef t = c->v16;
	return cg_call_intr(c, "llvm.sqrt", &t, 1, &v, 1);
}
static LLVMValueRef vmax(cg_ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	LLVMTypeRef t = c->v16;
	LLVMValueRef ab[2] = {a, b};
	return cg_call_intr(c, "llvm.maxnum", &t, 1, ab, 2);
}

static LLVMValueRef sum_partials(cg_ctx *c, LLVMValueRef gv, LLVMValueRef i)
{
	ir_graph *g = c->g;
	LLVMValueRef ws = cg_arg(c, CG_ARGS_ws);
	LLVMValueRef n = cg_batch_total(c);
	LLVMValueRef active = cg_active_chunks(c, n);
	LLVMValueRef acc = cg_alloca(c, c->v16, "g");
	cg_store(c, gv, acc);
	cg_loop k = cg_loop_begin(c, cg_i64(c, 1), active, 1);
	LLVMValueRef off = LLVMBuildAdd(c->B, cg_i64(c, g->ws_partials - g->param_floats),
					LLVMBuildMul(c->B, k.i, cg_i64(c, g->param_floats), ""), "");
	LLVMValueRef pv = cg_vload(c, cg_gep(c, ws, LLVMBuildAdd(c->B, off, i, "")), NULL);
	cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->v16, acc), pv, ""), acc);
	cg_loop_end(c, &k);
	return cg_load(c, c->v16, acc);
}

/* A private constant array of `n` elements of type t. */
static LLVMValueRef const_table(cg_ctx *c, LLVMTypeRef t, LLVMValueRef *v, unsigned n, const char *name)
{
	LLVMValueRef init = LLVMConstArray2(t, v, n);
	LLVMValueRef gv = LLVMAddGlobal(c->M, LLVMTypeOf(init), name);
	LLVMSetInitializer(gv, init);
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMPrivateLinkage);
	LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
	return gv;
}

/* The runs of parameters alike in decay: bounds[0..nruns] (floats) and
 * whether each decays, in arena arrays; returns nruns (at least 1). */
static int decay_runs(const ir_graph *g, int flags, int64_t **bounds, bool **decays)
{
	*bounds = nnc_alloc(sizeof(int64_t) * ((size_t)g->nparams + 2));
	*decays = nnc_alloc((size_t)g->nparams + 1);
	int n = 0;
	(*bounds)[0] = 0;
	(*decays)[0] = g->nparams > 0 && ir_param_decays(&g->params[0], flags);
	for (int p = 1; p < g->nparams; p++) {
		bool d = ir_param_decays(&g->params[p], flags);
		if (d != (*decays)[n]) {
			(*bounds)[++n] = g->params[p].offset;
			(*decays)[n] = d;
		}
	}
	(*bounds)[++n] = g->param_floats;
	return n;
}

/* The values the rule reads, hoisted out of the element loop. */
typedef struct upd_vals {
	ir_node *n;
	bool summed;               /* the partials are in G already (the norm's pass) */
	LLVMValueRef cv, cv_on;    /* clip_value (a float), and whether it is > 0 */
	LLVMValueRef coef;         /* splat: the global norm's factor, or NULL */
	LLVMValueRef accw;         /* accumulate: splat of this micro-batch's weight, or NULL */
	int acc_slot;              /* accumulate: the optimizer state slot of the sum */
	LLVMValueRef P, G, O;      /* params, grads, optimizer state */
	LLVMValueRef lr, c1, c2, d; /* splats of hp[] */
	LLVMValueRef wd;           /* splat of this run's decay; */
	LLVMValueRef no_wd;        /* i1: it is 0 */
	LLVMValueRef keep;         /* adamw: splat of 1 - lr wd */
	LLVMValueRef mu, mu1m;     /* splats: the momentum (adam: beta1) and 1 - it, the step's if
				    * the schedule cycles it, else the compiled constants */
} upd_vals;

/* Slot k of the optimizer state at element i. */
static LLVMValueRef slot(cg_ctx *c, const upd_vals *u, int k, LLVMValueRef i)
{
	return cg_gep(c, u->O, k ? LLVMBuildAdd(c->B, i, cg_i64(c, k * c->g->param_floats), "") : i);
}

/* g clipped to [-cv, cv] when cv > 0; exactly g otherwise, NaN included. */
static LLVMValueRef clip_value(cg_ctx *c, const upd_vals *u, LLVMValueRef gv)
{
	LLVMValueRef hi = cg_splat(c, u->cv), lo = LLVMBuildFNeg(c->B, hi, "");
	LLVMValueRef v = LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOLT, gv, lo, ""), lo, gv, "");
	v = LLVMBuildSelect(c->B, LLVMBuildFCmp(c->B, LLVMRealOGT, v, hi, ""), hi, v, "");
	return LLVMBuildSelect(c->B, u->cv_on, v, gv, "");
}

/* The update of the 16 floats at element i. */
static void update_vector(cg_ctx *c, const upd_vals *u, LLVMValueRef i)
{
	ir_graph *g = c->g;
	ir_node *n = u->n;
	int flags = (int)n->ia[0];
	bool adamw = n->ia[1] == NNRT_OPT_ADAMW;
	LLVMValueRef pp = cg_gep(c, u->P, i);
	LLVMValueRef gv = cg_vload(c, cg_gep(c, u->G, i), NULL), pv = cg_vload(c, pp, NULL);
	if (g->chunks > 1 && !u->summed) {
		gv = sum_partials(c, gv, i);
		cg_vstore(c, gv, cg_gep(c, u->G, i), NULL);
	}
	if (u->accw) { /* the group's last micro-batch: the weighted sum of all of them */
		LLVMValueRef ap = slot(c, u, u->acc_slot, i);
		gv = cg_fma(c, u->accw, gv, cg_vload(c, ap, NULL));
		cg_vstore(c, LLVMConstNull(c->v16), ap, NULL);
	}
	gv = clip_value(c, u, gv);
	if (u->coef)
		gv = fmul(c, gv, u->coef);
	if (adamw) /* decoupled: p *= 1 - lr wd, exactly p when wd = 0 */
		pv = fmul(c, pv, u->keep);
	else /* coupled (L2): g += wd p, exactly g when wd = 0 */
		gv = LLVMBuildSelect(c->B, u->no_wd, gv, cg_fma(c, u->wd, pv, gv), "");
	if (n->op == IR_SGD_UPDATE) {
		double mu = n->fa[0];
		LLVMValueRef step = gv;
		if (mu != 0) {
			LLVMValueRef vp = slot(c, u, 0, i);
			LLVMValueRef dg = n->fa[1] != 0 ? fmul(c, u->d, gv) : gv;
			LLVMValueRef v = cg_fma(c, u->mu, cg_vload(c, vp, NULL), dg);
			cg_vstore(c, v, vp, NULL);
			step = flags & NNRT_OPTF_NESTEROV ? cg_fma(c, u->mu, v, gv) : v;
		}
		cg_vstore(c, fsub(c, pv, fmul(c, u->lr, step)), pp, NULL);
	} else if (n->op == IR_ADAM_UPDATE) {
		LLVMValueRef mp = slot(c, u, 0, i), vp = slot(c, u, 1, i);
		double b2 = n->fa[1];
		LLVMValueRef m = cg_fma(c, u->mu, cg_vload(c, mp, NULL), fmul(c, u->mu1m, gv));
		LLVMValueRef v =
			cg_fma(c, cg_vf32(c, b2), cg_vload(c, vp, NULL), fmul(c, cg_vf32(c, 1 - b2), fmul(c, gv, gv)));
		cg_vstore(c, m, mp, NULL);
		cg_vstore(c, v, vp, NULL);
		if (flags & NNRT_OPTF_AMSGRAD) {
			LLVMValueRef xp = slot(c, u, 2, i);
			v = vmax(c, cg_vload(c, xp, NULL), v);
			cg_vstore(c, v, xp, NULL);
		}
		LLVMValueRef den = fadd(c, vsqrt(c, fmul(c, v, u->c2)), cg_vf32(c, n->fa[2]));
		cg_vstore(c, fsub(c, pv, fdiv(c, fmul(c, u->lr, fmul(c, m, u->c1)), den)), pp, NULL);
	} else {
		double a = n->fa[0], eps = n->fa[1], mu = n->fa[2];
		int k = 0;
		LLVMValueRef sp = slot(c, u, k++, i);
		LLVMValueRef s = cg_fma(c, cg_vf32(c, a), cg_vload(c, sp, NULL), fmul(c, cg_vf32(c, 1 - a), fmul(c, gv, gv)));
		cg_vstore(c, s, sp, NULL);
		if (flags & NNRT_OPTF_CENTERED) {
			LLVMValueRef ap = slot(c, u, k++, i);
			LLVMValueRef ga = cg_fma(c, cg_vf32(c, a), cg_vload(c, ap, NULL), fmul(c, cg_vf32(c, 1 - a), gv));
			cg_vstore(c, ga, ap, NULL);
			/* s - ga^2 >= 0 exactly; rounding may take it below 0 */
			s = vmax(c, fsub(c, s, fmul(c, ga, ga)), cg_vf32(c, 0));
		}
		LLVMValueRef r = fadd(c, vsqrt(c, s), cg_vf32(c, eps));
		LLVMValueRef step = fdiv(c, gv, r);
		if (mu != 0) {
			LLVMValueRef bp = slot(c, u, k++, i);
			step = cg_fma(c, u->mu, cg_vload(c, bp, NULL), step);
			cg_vstore(c, step, bp, NULL);
		}
		cg_vstore(c, fsub(c, pv, fmul(c, u->lr, step)), pp, NULL);
	}
}

/* The run's decay wd (a float): the values update_vector reads of it. */
static void set_decay(cg_ctx *c, upd_vals *u, LLVMValueRef wd)
{
	u->wd = cg_splat(c, wd);
	u->no_wd = LLVMBuildFCmp(c->B, LLVMRealOEQ, wd, cg_f32(c, 0), "");
	u->keep = cg_splat(c, fsub(c, cg_f32(c, 1), fmul(c, cg_hp(c, NNRT_HP_LR), wd)));
}

/* clip_norm's first pass over this thread's blocks [blo, bhi): the
 * partial gradients summed into G, and each block's sum of squares (of the
 * values clipped by value) into ws_norm; then, after a barrier, the factor
 * min(1, cn / (norm + 1e-6)) (1 when cn = 0), a float. */
static LLVMValueRef norm_factor(cg_ctx *c, const upd_vals *u, LLVMValueRef blo, LLVMValueRef bhi)
{
	ir_graph *g = c->g;
	int64_t total = g->param_floats, nblocks = (total + UPDATE_BLOCK - 1) / UPDATE_BLOCK;
	LLVMTypeRef vd = LLVMVectorType(c->f64, CG_VW);
	LLVMValueRef sums = cg_gep(c, cg_arg(c, CG_ARGS_ws), cg_i64(c, g->ws_norm)); /* double[nblocks] */
	LLVMValueRef acc = cg_alloca(c, vd, "sq");
	cg_loop b = cg_loop_begin(c, blo, bhi, 1);
	{
		LLVMValueRef i0 = LLVMBuildMul(c->B, b.i, cg_i64(c, UPDATE_BLOCK), "");
		LLVMValueRef i1 = cg_min_i64(c, cg_i64(c, total), LLVMBuildAdd(c->B, i0, cg_i64(c, UPDATE_BLOCK), ""));
		cg_store(c, LLVMConstNull(vd), acc);
		cg_loop i = cg_loop_begin(c, i0, i1, CG_VW);
		LLVMValueRef gv = cg_vload(c, cg_gep(c, u->G, i.i), NULL);
		if (g->chunks > 1) {
			gv = sum_partials(c, gv, i.i);
			cg_vstore(c, gv, cg_gep(c, u->G, i.i), NULL);
		}
		LLVMValueRef gd = LLVMBuildFPExt(c->B, clip_value(c, u, gv), vd, "");
		cg_store(c, cg_fma(c, gd, gd, cg_load(c, vd, acc)), acc);
		cg_loop_end(c, &i);
		LLVMValueRef ra[2] = {LLVMConstReal(c->f64, 0), cg_load(c, vd, acc)};
		LLVMValueRef s = cg_call_intr(c, "llvm.vector.reduce.fadd", &vd, 1, ra, 2); /* in lane order */
		cg_store(c, s, LLVMBuildGEP2(c->B, c->f64, sums, &b.i, 1, ""));
	}
	cg_loop_end(c, &b);
	LLVMValueRef bar = LLVMGetNamedFunction(c->M, "nnrt_barrier");
	LLVMTypeRef bt = LLVMFunctionType(LLVMVoidTypeInContext(c->C), NULL, 0, 0);
	if (!bar)
		bar = LLVMAddFunction(c->M, "nnrt_barrier", bt);
	LLVMBuildCall2(c->B, bt, bar, NULL, 0, "");
	/* every thread: the blocks' sums in block order */
	LLVMValueRef tot = cg_alloca(c, c->f64, "norm2");
	cg_store(c, LLVMConstReal(c->f64, 0), tot);
	cg_loop k = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, nblocks), 1);
	LLVMValueRef sk = cg_load(c, c->f64, LLVMBuildGEP2(c->B, c->f64, sums, &k.i, 1, ""));
	cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, tot), sk, ""), tot);
	cg_loop_end(c, &k);
	LLVMTypeRef f64 = c->f64;
	LLVMValueRef t = cg_load(c, c->f64, tot);
	LLVMValueRef norm = cg_call_intr(c, "llvm.sqrt", &f64, 1, &t, 1);
	LLVMValueRef cn = LLVMBuildFPExt(c->B, cg_hp(c, NNRT_HP_CLIP_NORM), c->f64, "");
	LLVMValueRef coef = LLVMBuildFDiv(c->B, cn, LLVMBuildFAdd(c->B, norm, LLVMConstReal(c->f64, 1e-6), ""), "");
	LLVMValueRef one = LLVMConstReal(c->f64, 1);
	LLVMValueRef keep = LLVMBuildOr(c->B, LLVMBuildFCmp(c->B, LLVMRealOLE, cn, LLVMConstReal(c->f64, 0), ""),
					LLVMBuildFCmp(c->B, LLVMRealUGE, coef, one, ""), "");
	return LLVMBuildFPTrunc(c->B, LLVMBuildSelect(c->B, keep, one, coef, ""), c->f32, "");
}

static void update_runs(cg_ctx *c, upd_vals *u0, LLVMValueRef start, LLVMValueRef end, LLVMValueRef wd);

/* The momentum of the step: hp[NNRT_HP_MOMENTUM] when it is > 0 (onecycle
 * cycles it), else the .nn file's constant, exactly the value it was baked
 * in as before the slot existed (so an uncycled update is bit for bit the
 * same).  sgd and rmsprop read it only with a momentum compiled in. */
static void set_momentum(cg_ctx *c, upd_vals *u)
{
	ir_node *n = u->n;
	double mu = n->op == IR_SGD_UPDATE ? n->fa[0] : n->op == IR_ADAM_UPDATE ? n->fa[0] : n->fa[2];
	if (n->op != IR_ADAM_UPDATE && mu == 0)
		return;
	LLVMValueRef hm = cg_hp(c, NNRT_HP_MOMENTUM);
	LLVMValueRef cyc = LLVMBuildFCmp(c->B, LLVMRealOGT, hm, cg_f32(c, 0), "cycled");
	u->mu = cg_splat(c, LLVMBuildSelect(c->B, cyc, hm, cg_f32(c, mu), ""));
	if (n->op == IR_ADAM_UPDATE)
		u->mu1m = cg_splat(c, LLVMBuildSelect(c->B, cyc, cg_hp(c, NNRT_HP_MOMENTUM_1M), cg_f32(c, 1 - mu), ""));
}

/* The values of the rule every element reads (hoisted out of its loops). */
static upd_vals update_begin(cg_ctx *c, ir_node *n)
{
	ir_graph *g = c->g;
	ir_node pn = {.storage = ST_PARAM}, gn = {.storage = ST_GRAD};
	upd_vals u = {.n = n, .P = cg_tensor(c, &pn), .G = cg_tensor(c, &gn)};
	if (g->opt_floats)
		u.O = cg_arg(c, CG_ARGS_opt);
	u.lr = cg_splat(c, cg_hp(c, NNRT_HP_LR));
	if (n->op == IR_ADAM_UPDATE) {
		u.c1 = cg_splat(c, cg_hp(c, NNRT_HP_ADAM_C1));
		u.c2 = cg_splat(c, cg_hp(c, NNRT_HP_ADAM_C2));
	}
	if (n->op == IR_SGD_UPDATE && n->fa[1] != 0)
		u.d = cg_splat(c, cg_hp(c, NNRT_HP_DAMP));
	set_momentum(c, &u);
	u.cv = cg_hp(c, NNRT_HP_CLIP_VALUE);
	u.cv_on = LLVMBuildFCmp(c->B, LLVMRealOGT, u.cv, cg_f32(c, 0), "");
	return u;
}

bool cg_update_piecewise(const ir_node *n) { return !(n->ia[0] & (NNRT_OPTF_CLIP_NORM | NNRT_OPTF_ACCUMULATE)); }

void cg_update_span(cg_ctx *c, ir_node *n, LLVMValueRef start, LLVMValueRef end, bool summed)
{
	NNC_ASSERT(cg_update_piecewise(n));
	upd_vals u = update_begin(c, n);
	u.summed = summed;
	update_runs(c, &u, start, end, cg_hp(c, NNRT_HP_WD));
}

void lower_update(cg_ctx *c, ir_node *n)
{
	ir_graph *g = c->g;
	int64_t total = g->param_floats; /* a multiple of 16 */
	upd_vals u = update_begin(c, n);
	LLVMValueRef wd = cg_hp(c, NNRT_HP_WD);
	int64_t blocks = (total + UPDATE_BLOCK - 1) / UPDATE_BLOCK;
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, blocks), &lo, &hi);
	if (n->ia[0] & NNRT_OPTF_CLIP_NORM) {
		u.coef = cg_splat(c, norm_factor(c, &u, lo, hi));
		u.summed = true;
	}
	LLVMValueRef start = LLVMBuildMul(c->B, lo, cg_i64(c, UPDATE_BLOCK), "");
	LLVMValueRef end = cg_min_i64(c, cg_i64(c, total), LLVMBuildMul(c->B, hi, cg_i64(c, UPDATE_BLOCK), ""));
	if (!(n->ia[0] & NNRT_OPTF_ACCUMULATE)) {
		update_runs(c, &u, start, end, wd);
		return;
	}
	/* accumulate: a micro-batch that does not end its group only adds its
	 * weighted gradient to the sum; the last one updates with the whole */
	u.acc_slot = (int)n->ia[2];
	LLVMValueRef w = cg_splat(c, cg_hp(c, NNRT_HP_ACC_WEIGHT));
	cg_if f = cg_if_begin(c, LLVMBuildFCmp(c->B, LLVMRealOEQ, cg_hp(c, NNRT_HP_ACC_APPLY), cg_f32(c, 0), ""));
	cg_loop i = cg_loop_begin(c, start, end, CG_VW);
	{
		LLVMValueRef gp = cg_gep(c, u.G, i.i), ap = slot(c, &u, u.acc_slot, i.i);
		LLVMValueRef gv = cg_vload(c, gp, NULL);
		if (g->chunks > 1) {
			gv = sum_partials(c, gv, i.i);
			cg_vstore(c, gv, gp, NULL);
		}
		cg_vstore(c, cg_fma(c, w, gv, cg_vload(c, ap, NULL)), ap, NULL);
	}
	cg_loop_end(c, &i);
	cg_if_else(c, &f);
	u.accw = w;
	update_runs(c, &u, start, end, wd);
	cg_if_end(c, &f);
}

/* The update of [start, end), run by run of decayed or spared tensors. */
static void update_runs(cg_ctx *c, upd_vals *u0, LLVMValueRef start, LLVMValueRef end, LLVMValueRef wd)
{
	ir_graph *g = c->g;
	upd_vals u = *u0;
	int64_t *bounds;
	bool *decays;
	int nruns = decay_runs(g, (int)u.n->ia[0], &bounds, &decays);
	if (nruns == 1) {
		set_decay(c, &u, decays[0] ? wd : cg_f32(c, 0));
		cg_loop i = cg_loop_begin(c, start, end, CG_VW);
		update_vector(c, &u, i.i);
		cg_loop_end(c, &i);
		return;
	}
	/* for each run r: its part of [start, end), at decay wd * scale[r] */
	LLVMValueRef *bv = nnc_alloc(sizeof(LLVMValueRef) * (size_t)(nruns + 1));
	LLVMValueRef *sv = nnc_alloc(sizeof(LLVMValueRef) * (size_t)nruns);
	for (int r = 0; r <= nruns; r++)
		bv[r] = cg_i64(c, bounds[r]);
	for (int r = 0; r < nruns; r++)
		sv[r] = cg_f32(c, decays[r] ? 1 : 0);
	LLVMValueRef bt = const_table(c, c->i64, bv, (unsigned)nruns + 1, "update.runs");
	LLVMValueRef st = const_table(c, c->f32, sv, (unsigned)nruns, "update.decays");
	cg_loop r = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, nruns), 1);
	LLVMValueRef b0 = cg_load(c, c->i64, LLVMBuildGEP2(c->B, c->i64, bt, &r.i, 1, ""));
	LLVMValueRef r1 = LLVMBuildAdd(c->B, r.i, cg_i64(c, 1), "");
	LLVMValueRef b1 = cg_load(c, c->i64, LLVMBuildGEP2(c->B, c->i64, bt, &r1, 1, ""));
	LLVMValueRef rlo = LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSGT, b0, start, ""), b0, start, "");
	LLVMValueRef rhi = cg_min_i64(c, b1, end);
	set_decay(c, &u, fmul(c, wd, cg_load(c, c->f32, cg_gep(c, st, r.i))));
	cg_loop i = cg_loop_begin(c, rlo, rhi, CG_VW);
	update_vector(c, &u, i.i);
	cg_loop_end(c, &i);
	cg_loop_end(c, &r);
}
