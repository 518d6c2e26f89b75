/*
 * cg.c - lowering driver: builder helpers, one LLVM function per op, the
 * three entry bodies (train_step, eval_step, infer), the model descriptor
 * that runtime/nnrt.h declares, and main().
 */
#include "cg.h"

#include <stdio.h>
#include <string.h>

#include "cg_math.h"

/* ---- small helpers ---- */

LLVMValueRef cg_i64(cg_ctx *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
LLVMValueRef cg_i32(cg_ctx *c, int32_t v) { return LLVMConstInt(c->i32, (unsigned long long)(int64_t)v, 1); }
LLVMValueRef cg_f32(cg_ctx *c, double v) { return LLVMConstReal(c->f32, v); }

LLVMValueRef cg_splat(cg_ctx *c, LLVMValueRef s)
{
	LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), CG_VW);
	LLVMValueRef v = LLVMBuildInsertElement(c->B, LLVMGetPoison(vt), s, cg_i32(c, 0), "");
	LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(c->i32, CG_VW));
	return LLVMBuildShuffleVector(c->B, v, LLVMGetPoison(vt), zeros, "splat");
}

LLVMValueRef cg_vf32(cg_ctx *c, double v)
{
	LLVMValueRef e[CG_VW];
	for (int i = 0; i < CG_VW; i++)
		e[i] = cg_f32(c, v);
	return LLVMConstVector(e, CG_VW);
}

LLVMValueRef cg_mask(cg_ctx *c, int nlanes)
{
	LLVMValueRef e[CG_VW];
	for (int i = 0; i < CG_VW; i++)
		e[i] = LLVMConstInt(c->i1, i < nlanes, 0);
	return LLVMConstVector(e, CG_VW);
}

LLVMValueRef cg_iota(cg_ctx *c, unsigned bits)
{
	LLVMTypeRef elem = LLVMIntTypeInContext(c->C, bits);
	LLVMValueRef e[CG_VW];
	for (int i = 0; i < CG_VW; i++)
		e[i] = LLVMConstInt(elem, (unsigned long long)i, 0);
	return LLVMConstVector(e, CG_VW);
}

LLVMValueRef cg_mask_dyn(cg_ctx *c, LLVMValueRef remaining)
{
	return LLVMBuildICmp(c->B, LLVMIntSLT, cg_iota(c, 64), cg_splat(c, remaining), "mask");
}

LLVMValueRef cg_alloca(cg_ctx *c, LLVMTypeRef t, const char *name)
{
	/* allocas go to the entry block so that mem2reg promotes them */
	LLVMBasicBlockRef cur = LLVMGetInsertBlock(c->B);
	LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(c->fn);
	LLVMValueRef first = LLVMGetFirstInstruction(entry);
	if (first)
		LLVMPositionBuilderBefore(c->B, first);
	else
		LLVMPositionBuilderAtEnd(c->B, entry);
	LLVMValueRef a = LLVMBuildAlloca(c->B, t, name);
	LLVMPositionBuilderAtEnd(c->B, cur);
	return a;
}

LLVMValueRef cg_load(cg_ctx *c, LLVMTypeRef t, LLVMValueRef p) { return LLVMBuildLoad2(c->B, t, p, ""); }
void cg_store(cg_ctx *c, LLVMValueRef v, LLVMValueRef p) { LLVMBuildStore(c->B, v, p); }

LLVMValueRef cg_gep(cg_ctx *c, LLVMValueRef base, LLVMValueRef idx)
{
	return LLVMBuildInBoundsGEP2(c->B, c->f32, base, &idx, 1, "");
}

LLVMValueRef cg_gep_i32(cg_ctx *c, LLVMValueRef base, LLVMValueRef idx)
{
	return LLVMBuildInBoundsGEP2(c->B, c->i32, base, &idx, 1, "");
}

LLVMValueRef cg_call_intr(cg_ctx *c, const char *name, LLVMTypeRef *over, int nover, LLVMValueRef *a, int na)
{
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	NNC_ASSERT(id != 0);
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->M, id, over, (size_t)nover);
	LLVMTypeRef ft = LLVMIntrinsicGetType(c->C, id, over, (size_t)nover);
	return LLVMBuildCall2(c->B, ft, f, a, (unsigned)na, "");
}

LLVMValueRef cg_vload(cg_ctx *c, LLVMValueRef p, LLVMValueRef mask)
{
	if (!mask) {
		LLVMValueRef v = LLVMBuildLoad2(c->B, c->v16, p, "");
		LLVMSetAlignment(v, 4);
		return v;
	}
	LLVMTypeRef over[2] = {c->v16, c->ptr};
	LLVMValueRef a[4] = {p, cg_i32(c, 4), mask, LLVMConstNull(c->v16)};
	return cg_call_intr(c, "llvm.masked.load", over, 2, a, 4);
}

void cg_vstore(cg_ctx *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask)
{
	if (!mask) {
		LLVMValueRef s = LLVMBuildStore(c->B, v, p);
		LLVMSetAlignment(s, 4);
		return;
	}
	LLVMTypeRef over[2] = {c->v16, c->ptr};
	LLVMValueRef a[4] = {v, p, cg_i32(c, 4), mask};
	cg_call_intr(c, "llvm.masked.store", over, 2, a, 4);
}

LLVMValueRef cg_fma(cg_ctx *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc)
{
	LLVMTypeRef t = LLVMTypeOf(acc);
	LLVMValueRef args[3] = {a, b, acc};
	return cg_call_intr(c, "llvm.fma", &t, 1, args, 3);
}

LLVMValueRef cg_min_i64(cg_ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, a, b, ""), a, b, "");
}

LLVMValueRef cg_hsum(cg_ctx *c, LLVMValueRef v)
{
	/* pairwise halving: a fixed order, so results do not depend on lanes */
	int w = CG_VW;
	while (w > 1) {
		int h = w / 2;
		LLVMValueRef lo[CG_VW], hi[CG_VW];
		for (int i = 0; i < h; i++) {
			lo[i] = cg_i32(c, i);
			hi[i] = cg_i32(c, i + h);
		}
		LLVMValueRef a = LLVMBuildShuffleVector(c->B, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(lo, (unsigned)h), "");
		LLVMValueRef b = LLVMBuildShuffleVector(c->B, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(hi, (unsigned)h), "");
		v = LLVMBuildFAdd(c->B, a, b, "");
		w = h;
	}
	return LLVMBuildExtractElement(c->B, v, cg_i32(c, 0), "");
}

cg_loop cg_loop_begin(cg_ctx *c, LLVMValueRef lo, LLVMValueRef hi, int64_t step)
{
	cg_loop l;
	l.var = cg_alloca(c, c->i64, "iv");
	l.step = cg_i64(c, step);
	cg_store(c, lo, l.var);
	l.cond = LLVMAppendBasicBlockInContext(c->C, c->fn, "loop.cond");
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->C, c->fn, "loop.body");
	l.exit = LLVMAppendBasicBlockInContext(c->C, c->fn, "loop.exit");
	LLVMBuildBr(c->B, l.cond);
	LLVMPositionBuilderAtEnd(c->B, l.cond);
	l.i = cg_load(c, c->i64, l.var);
	LLVMBuildCondBr(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, l.i, hi, ""), body, l.exit);
	LLVMPositionBuilderAtEnd(c->B, body);
	return l;
}

void cg_loop_end(cg_ctx *c, cg_loop *l)
{
	LLVMValueRef next = LLVMBuildAdd(c->B, l->i, l->step, "");
	cg_store(c, next, l->var);
	LLVMBuildBr(c->B, l->cond);
	LLVMPositionBuilderAtEnd(c->B, l->exit);
}

cg_if cg_if_begin(cg_ctx *c, LLVMValueRef cond)
{
	cg_if f;
	LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->C, c->fn, "if.then");
	f.els = LLVMAppendBasicBlockInContext(c->C, c->fn, "if.else");
	f.end = LLVMAppendBasicBlockInContext(c->C, c->fn, "if.end");
	LLVMBuildCondBr(c->B, cond, then, f.els);
	LLVMPositionBuilderAtEnd(c->B, then);
	return f;
}

void cg_if_else(cg_ctx *c, cg_if *f)
{
	LLVMBuildBr(c->B, f->end);
	LLVMPositionBuilderAtEnd(c->B, f->els);
	f->els = NULL;
}

void cg_if_end(cg_ctx *c, cg_if *f)
{
	LLVMBuildBr(c->B, f->end);
	if (f->els) {
		LLVMPositionBuilderAtEnd(c->B, f->els);
		LLVMBuildBr(c->B, f->end);
	}
	LLVMPositionBuilderAtEnd(c->B, f->end);
}

/* ---- access to nnrt_step_args ---- */

LLVMValueRef cg_arg(cg_ctx *c, cg_args_field f)
{
	LLVMValueRef p = LLVMBuildStructGEP2(c->B, c->abi.step_args, c->args, (unsigned)f, "");
	return cg_load(c, cg_abi_field_type(c->abi.step_args, (unsigned)f), p);
}

/* The chunk an op function works on (cg_abi.h); filled by chunk_args() below. */
static LLVMValueRef chunk_field(cg_ctx *c, cg_chunk_field f)
{
	NNC_ASSERT(c->chunk);
	LLVMValueRef p = LLVMBuildStructGEP2(c->B, c->abi.chunk, c->chunk, (unsigned)f, "");
	return cg_load(c, cg_abi_field_type(c->abi.chunk, (unsigned)f), p);
}

LLVMValueRef cg_batch_n(cg_ctx *c) { return chunk_field(c, CG_CHUNK_n); }
LLVMValueRef cg_batch_total(cg_ctx *c) { return chunk_field(c, CG_CHUNK_total); }
LLVMValueRef cg_metrics(cg_ctx *c) { return chunk_field(c, CG_CHUNK_metrics); }

LLVMValueRef cg_hp(cg_ctx *c, int k)
{
	LLVMValueRef base = LLVMBuildStructGEP2(c->B, c->abi.step_args, c->args, CG_ARGS_hp, "");
	LLVMValueRef i = cg_i64(c, k);
	return cg_load(c, c->f32, LLVMBuildInBoundsGEP2(c->B, c->f32, base, &i, 1, ""));
}

LLVMValueRef cg_tensor(cg_ctx *c, const ir_node *n)
{
	LLVMValueRef base;
	switch (n->storage) {
	case ST_INPUT:
	case ST_LABEL:
	case ST_OUT:
		/* the caller's [n][size] arrays (int32 labels are 4 bytes too) */
		NNC_ASSERT(n->batched && n->layout == LAYOUT_NC);
		base = cg_arg(c, n->storage == ST_INPUT ? CG_ARGS_x : n->storage == ST_LABEL ? CG_ARGS_y : CG_ARGS_out);
		if (c->g->chunks > 1)
			base = cg_gep(c, base, LLVMBuildMul(c->B, chunk_field(c, CG_CHUNK_s0), cg_i64(c, n->size), ""));
		break;
	case ST_PARAM: base = cg_arg(c, CG_ARGS_params); break;
	case ST_GRAD: base = chunk_field(c, CG_CHUNK_grads); break;
	case ST_WS: base = n->batched ? chunk_field(c, CG_CHUNK_ws) : cg_arg(c, CG_ARGS_ws); break;
	default: nnc_internal_error(__FILE__, __LINE__, "tensor %s has no storage", ir_op_name(n->op));
	}
	if (n->offset == 0)
		return base;
	return cg_gep(c, base, cg_i64(c, n->offset));
}

LLVMValueRef cg_rows(cg_ctx *c, const ir_node *n) { return n->batched ? cg_batch_n(c) : cg_i64(c, 1); }

void cg_partition(cg_ctx *c, LLVMValueRef ntasks, LLVMValueRef *lo, LLVMValueRef *hi)
{
	LLVMValueRef tid = LLVMBuildSExt(c->B, c->tid, c->i64, "");
	LLVMValueRef nth = LLVMBuildSExt(c->B, c->nth, c->i64, "");
	LLVMValueRef t1 = LLVMBuildAdd(c->B, tid, cg_i64(c, 1), "");
	*lo = LLVMBuildSDiv(c->B, LLVMBuildMul(c->B, tid, ntasks, ""), nth, "lo");
	*hi = LLVMBuildSDiv(c->B, LLVMBuildMul(c->B, t1, ntasks, ""), nth, "hi");
}

/* acts.def's emitters (cg_math.c), by activation. */
static cgm_act_fn *const act_emit[IR_NUM_ACTS] = {
#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) [ACT_##id] = act,
#include "acts.def"
#undef ACT
};

static cgm_dact_fn *const dact_emit[IR_NUM_ACTS] = {
#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) [ACT_##id] = dact,
#include "acts.def"
#undef ACT
};

LLVMValueRef cg_act(cg_ctx *c, ir_act a, double opt, LLVMValueRef x)
{
	return a == ACT_NONE ? x : act_emit[a](c->B, x, opt);
}

LLVMValueRef cg_dact(cg_ctx *c, ir_act a, double opt, LLVMValueRef v, LLVMValueRef dy)
{
	return a == ACT_NONE ? dy : dact_emit[a](c->B, v, dy, opt);
}

/* ---- out-of-line epilogues ---- */

static void set_fn_attrs(cg_ctx *c, LLVMValueRef fn);

LLVMValueRef cg_act_dst(cg_ctx *c, const ir_node *n)
{
	if (n->act_dst < 0)
		return NULL;
	NNC_ASSERT(!c->g->nodes[n->act_dst].dead); /* ir_drop_dead_act_dst */
	return cg_tensor(c, &c->g->nodes[n->act_dst]);
}

void cg_call_epilogue(cg_ctx *c, ir_act act, ir_act dact, double opt, int nv, int tail, LLVMValueRef cptr,
		      int64_t ldc, LLVMValueRef yptr, int64_t ldy, LLVMValueRef rows)
{
	NNC_ASSERT(nv >= 1 && nv <= 4 && tail >= 1 && tail <= CG_VW && (act == ACT_NONE || dact == ACT_NONE));
	bool to_y = act && yptr; /* act(c) into y, c kept */
	LLVMTypeRef pt[5] = {c->ptr, c->i64, c->ptr, c->i64, c->i64};
	LLVMTypeRef ft = LLVMFunctionType(c->vt, pt, 5, 0);
	/* one function per (activation, option, shape of the tile), made on
	 * first use; a module needs a handful */
	LLVMValueRef *slot = NULL;
	for (cg_epilogue *e = c->epilogues; e && !slot; e = e->next)
		if (e->act == act && e->dact == dact && e->opt == opt && e->nv == nv && e->tail == tail && e->to_y == to_y)
			slot = &e->fn;
	if (!slot) {
		cg_epilogue *e = nnc_alloc(sizeof *e);
		*e = (cg_epilogue){c->epilogues, act, dact, opt, nv, tail, to_y, NULL};
		c->epilogues = e;
		slot = &e->fn;
	}
	if (!*slot) {
		/* build it once, with the builder state of the caller saved */
		LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->B);
		LLVMValueRef saved_fn = c->fn;
		char name[64];
		snprintf(name, sizeof name, "epilogue.%s.%s.%dx%d%s", act ? ir_act_get(act)->name : "none",
			 dact ? ir_act_get(dact)->name : "none", nv, tail, to_y ? ".to_y" : "");
		LLVMValueRef fn = LLVMAddFunction(c->M, name, ft);
		LLVMSetLinkage(fn, LLVMInternalLinkage);
		set_fn_attrs(c, fn);
		unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
		LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->C, noinline, 0));
		c->fn = fn;
		LLVMPositionBuilderAtEnd(c->B, LLVMAppendBasicBlockInContext(c->C, fn, "entry"));
		LLVMValueRef C = LLVMGetParam(fn, 0), L = LLVMGetParam(fn, 1), Y = LLVMGetParam(fn, 2);
		LLVMValueRef LY = LLVMGetParam(fn, 3), R = LLVMGetParam(fn, 4);
		LLVMValueRef tmask = tail < CG_VW ? cg_mask(c, tail) : NULL;
		cg_loop r = cg_loop_begin(c, cg_i64(c, 0), R, 1);
		for (int v = 0; v < nv; v++) {
			LLVMValueRef mask = v == nv - 1 ? tmask : NULL;
			LLVMValueRef off = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, r.i, L, ""), cg_i64(c, 16 * v), "");
			LLVMValueRef p = cg_gep(c, C, off);
			LLVMValueRef x = cg_act(c, act, opt, cg_vload(c, p, mask));
			LLVMValueRef yo = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, r.i, LY, ""), cg_i64(c, 16 * v), "");
			if (dact)
				x = cg_dact(c, dact, opt, cg_vload(c, cg_gep(c, Y, yo), mask), x);
			cg_vstore(c, x, to_y ? cg_gep(c, Y, yo) : p, mask);
		}
		cg_loop_end(c, &r);
		LLVMBuildRetVoid(c->B);
		*slot = fn;
		c->fn = saved_fn;
		LLVMPositionBuilderAtEnd(c->B, saved);
	}
	LLVMValueRef a[5] = {cptr, cg_i64(c, ldc), yptr ? yptr : LLVMConstNull(c->ptr), cg_i64(c, ldy), rows};
	LLVMBuildCall2(c->B, ft, *slot, a, 5, "");
}

/* ---- functions ---- */

static void set_fn_attrs(cg_ctx *c, LLVMValueRef fn)
{
	const char *kv[][2] = {{"min-legal-vector-width", "512"}, {"prefer-vector-width", "512"},
			       {"no-trapping-math", "true"}};
	for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
		LLVMAttributeRef at = LLVMCreateStringAttribute(c->C, kv[i][0], (unsigned)strlen(kv[i][0]), kv[i][1],
								(unsigned)strlen(kv[i][1]));
		LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, at);
	}
	unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
	LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->C, nounwind, 0));
}

static void begin_fn(cg_ctx *c, LLVMValueRef fn)
{
	c->fn = fn;
	c->args = LLVMGetParam(fn, 0);
	c->tid = LLVMGetParam(fn, 1);
	c->nth = LLVMGetParam(fn, 2);
	c->chunk = LLVMCountParams(fn) > 3 ? LLVMGetParam(fn, 3) : NULL;
	LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->C, fn, "entry");
	LLVMPositionBuilderAtEnd(c->B, entry);
}

/* One op function per live node that computes something. */
static LLVMValueRef *op_fns;

static lower_fn *const lowerings[IR_NUM_OPS] = {
#define OP(id, name, arity, shape, grad, lower, kind, flops) [IR_##id] = lower,
#include "ops.def"
#undef OP
};

static bool has_code(const ir_node *n)
{
	return !n->dead && !n->in_epilogue && n->op != IR_INPUT && n->op != IR_LABEL && n->op != IR_PARAM;
}

static void lower_op(cg_ctx *c, int id)
{
	ir_node *n = &c->g->nodes[id];
	char name[64];
	snprintf(name, sizeof name, "%sop%d.%s", c->g == c->opt->small ? "small." : "", id, ir_op_name(n->op));
	LLVMValueRef fn = LLVMAddFunction(c->M, name, c->op_fn_t);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	set_fn_attrs(c, fn);
	/* the three entry bodies share op functions: compiling each kernel
	 * once keeps code size and compile time down */
	unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
	LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->C, noinline, 0));
	begin_fn(c, fn);
	lowerings[n->op](c, n);
	LLVMBuildRetVoid(c->B);
	op_fns[id] = fn;
}

static void barrier(cg_ctx *c) { LLVMBuildCall2(c->B, c->barrier_t, c->barrier_fn, NULL, 0, ""); }

static void tick(cg_ctx *c, int op)
{
	if (c->tick_fn) {
		LLVMValueRef v = cg_i32(c, op);
		LLVMBuildCall2(c->B, c->tick_t, c->tick_fn, &v, 1, "");
	}
}

/* Fills a cg_chunk (alloca'd in the body) for chunk k (i64) of a step of n
 * samples; chunk 0 writes its gradients and metrics straight to the
 * caller's arrays, the others to their partials in the workspace. */
static LLVMValueRef chunk_args(cg_ctx *c, LLVMValueRef slot, LLVMValueRef k, LLVMValueRef n)
{
	ir_graph *g = c->g;
	LLVMValueRef ws = cg_arg(c, CG_ARGS_ws);
	LLVMValueRef is0 = LLVMBuildICmp(c->B, LLVMIntEQ, k, cg_i64(c, 0), "");
	LLVMValueRef km1 = LLVMBuildSub(c->B, k, cg_i64(c, 1), "");
	LLVMValueRef s0 = LLVMBuildMul(c->B, k, cg_i64(c, g->cbatch), "");
	LLVMValueRef left = LLVMBuildSub(c->B, n, s0, "");
	LLVMValueRef f[CG_CHUNK_NFIELDS];
	f[CG_CHUNK_ws] = cg_gep(c, ws, LLVMBuildAdd(c->B, cg_i64(c, g->ws_chunk0), LLVMBuildMul(c->B, k, cg_i64(c, g->ws_chunk), ""), ""));
	f[CG_CHUNK_grads] = LLVMBuildSelect(c->B, is0, cg_arg(c, CG_ARGS_grads),
				     cg_gep(c, ws, LLVMBuildAdd(c->B, cg_i64(c, g->ws_partials),
								LLVMBuildMul(c->B, km1, cg_i64(c, g->param_floats), ""), "")), "");
	f[CG_CHUNK_metrics] = LLVMBuildSelect(c->B, is0, cg_arg(c, CG_ARGS_metrics),
				       cg_gep(c, ws, LLVMBuildAdd(c->B, cg_i64(c, g->ws_metrics), LLVMBuildMul(c->B, k, cg_i64(c, 4), ""), "")), "");
	f[CG_CHUNK_s0] = s0;
	f[CG_CHUNK_n] = cg_min_i64(c, left, cg_i64(c, g->cbatch));
	f[CG_CHUNK_total] = n;
	for (int i = 0; i < CG_CHUNK_NFIELDS; i++)
		cg_store(c, f[i], LLVMBuildStructGEP2(c->B, c->abi.chunk, slot, (unsigned)i, ""));
	return slot;
}

/* Zeros what no op writes in a chunk's gradients, so that the update can
 * sum (and step along) whole vectors: the padding after each parameter and
 * the gradients of parameters that the loss does not reach, which are
 * therefore 0 whatever the caller's grads held and whatever the chunking. */
static void clear_unwritten(cg_ctx *c, LLVMValueRef grads)
{
	ir_graph *g = c->g;
	bool *written = nnc_alloc((size_t)g->nparams + 1);
	for (int i = 0; i < g->n_train; i++) {
		ir_node *nd = &g->nodes[i];
		if (!nd->dead && nd->storage == ST_GRAD && nd->param >= 0)
			written[nd->param] = true;
	}
	for (int p = 0; p < g->nparams; p++) {
		ir_param *pr = &g->params[p];
		int64_t lo = pr->offset + (written[p] ? pr->size : 0), hi = pr->offset + (pr->size + 15) / 16 * 16;
		if (hi - lo > 16) {
			cg_loop j = cg_loop_begin(c, cg_i64(c, lo), cg_i64(c, hi), 1);
			cg_store(c, cg_f32(c, 0), cg_gep(c, grads, j.i));
			cg_loop_end(c, &j);
		} else {
			for (int64_t j = lo; j < hi; j++)
				cg_store(c, cg_f32(c, 0), cg_gep(c, grads, cg_i64(c, j)));
		}
	}
}

static void call_op(cg_ctx *c, int id, LLVMValueRef tid, LLVMValueRef nth, LLVMValueRef chunk)
{
	LLVMValueRef a[4] = {c->args, tid, nth, chunk};
	LLVMBuildCall2(c->B, c->op_fn_t, op_fns[id], a, 4, "");
}

LLVMValueRef cg_active_chunks(cg_ctx *c, LLVMValueRef n)
{
	return LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, n, cg_i64(c, c->g->cbatch - 1), ""), cg_i64(c, c->g->cbatch), "");
}

/* Thread 0: metrics = the sum of the chunks' partial metrics, in chunk order. */
static void sum_metrics(cg_ctx *c, LLVMValueRef n)
{
	cg_if t0 = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, c->tid, cg_i32(c, 0), ""));
	LLVMValueRef m = cg_arg(c, CG_ARGS_metrics), ws = cg_arg(c, CG_ARGS_ws);
	cg_loop k = cg_loop_begin(c, cg_i64(c, 1), cg_active_chunks(c, n), 1);
	for (int j = 0; j < 2; j++) {
		LLVMValueRef pj = cg_i64(c, j);
		LLVMValueRef dst = LLVMBuildInBoundsGEP2(c->B, c->f64, m, &pj, 1, "");
		LLVMValueRef off = LLVMBuildAdd(c->B, cg_i64(c, c->g->ws_metrics), LLVMBuildMul(c->B, k.i, cg_i64(c, 4), ""), "");
		LLVMValueRef src = LLVMBuildInBoundsGEP2(c->B, c->f64, cg_gep(c, ws, off), &pj, 1, "");
		cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, dst), cg_load(c, c->f64, src), ""), dst);
	}
	cg_loop_end(c, &k);
	cg_if_end(c, &t0);
}

/* An entry body.  One chunk: the listed ops in order, split across the
 * threads, a barrier between two ops.  Several chunks: ops on parameters
 * only (packed weights), a barrier; each thread runs the forward/backward
 * ops of its chunks alone; a barrier; the metrics and the update sum the
 * chunks' partials. */
static LLVMValueRef emit_body(cg_ctx *c, const char *name, const int *ids, int n)
{
	ir_graph *g = c->g;
	LLVMValueRef fn = LLVMAddFunction(c->M, name, c->body_fn_t);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	set_fn_attrs(c, fn);
	begin_fn(c, fn);
	LLVMValueRef nsteps = cg_arg(c, CG_ARGS_n);
	LLVMValueRef ck0 = chunk_args(c, cg_alloca(c, c->abi.chunk, "chunk0"), cg_i64(c, 0), nsteps);
	tick(c, -1);
	if (g->chunks == 1) {
		bool update = false;
		for (int k = 0; k < n; k++)
			update |= ir_node_phase(g, &g->nodes[ids[k]]) == PHASE_UPDATE;
		if (update) { /* before the first barrier; no op writes these */
			cg_if t0 = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, c->tid, cg_i32(c, 0), ""));
			clear_unwritten(c, cg_arg(c, CG_ARGS_grads));
			cg_if_end(c, &t0);
		}
		for (int k = 0; k < n; k++) {
			call_op(c, ids[k], c->tid, c->nth, ck0);
			if (k + 1 < n)
				barrier(c);
			tick(c, c->op_index[ids[k]]);
		}
		LLVMBuildRetVoid(c->B);
		return fn;
	}
	bool metrics = false, pre = false, post = false;
	for (int k = 0; k < n; k++) {
		ir_node *nd = &g->nodes[ids[k]];
		post |= ir_node_phase(g, nd) == PHASE_UPDATE;
		metrics |= nd->op == IR_XENT || nd->op == IR_MSE || nd->op == IR_BCE;
		if (ir_node_phase(g, nd) == PHASE_PARAM) {
			for (int j = 0; pre && j < nd->nin; j++)
				if (has_code(&g->nodes[nd->in[j]])) { /* reads a packed weight: wait for it */
					barrier(c);
					break;
				}
			call_op(c, ids[k], c->tid, c->nth, ck0);
			pre = true;
			tick(c, c->op_index[ids[k]]);
		}
	}
	if (pre)
		barrier(c);
	/* this thread's chunks: [tid K / nth, (tid + 1) K / nth) */
	LLVMValueRef lo, hi;
	cg_partition(c, cg_i64(c, g->chunks), &lo, &hi);
	hi = cg_min_i64(c, hi, cg_active_chunks(c, nsteps));
	LLVMValueRef slot = cg_alloca(c, c->abi.chunk, "chunk");
	LLVMValueRef zero = cg_i32(c, 0), one = cg_i32(c, 1);
	cg_loop k = cg_loop_begin(c, lo, hi, 1);
	chunk_args(c, slot, k.i, nsteps);
	if (post)
		clear_unwritten(c, cg_load(c, c->ptr, LLVMBuildStructGEP2(c->B, c->abi.chunk, slot, CG_CHUNK_grads, "")));
	for (int j = 0; j < n; j++) {
		ir_phase ph = ir_node_phase(g, &g->nodes[ids[j]]);
		if (ph == PHASE_SAMPLE || ph == PHASE_REDUCE) {
			call_op(c, ids[j], zero, one, slot);
			tick(c, c->op_index[ids[j]]);
		}
	}
	cg_loop_end(c, &k);
	if (metrics || post)
		barrier(c);
	if (metrics)
		sum_metrics(c, nsteps);
	for (int j = 0; j < n; j++)
		if (ir_node_phase(g, &g->nodes[ids[j]]) == PHASE_UPDATE) {
			call_op(c, ids[j], c->tid, c->nth, ck0);
			tick(c, c->op_index[ids[j]]);
		}
	LLVMBuildRetVoid(c->B);
	return fn;
}

/* Nodes needed to compute `root` (its ancestors), in order. */
static int collect_ancestors(ir_graph *g, int root, int *ids);

/* infer() for n <= NNC_SMALL_BATCH: the ops of the sample-major copy
 * (small.c), run by thread 0 alone; the other threads return at once. */
static LLVMValueRef emit_infer(cg_ctx *c, const char *name, const int *ids, int n)
{
	LLVMValueRef big = emit_body(c, nnc_sprintf("%s.batch", name), ids, n);
	ir_graph *g = c->g, *s = c->opt->small;
	if (!s)
		return big;
	LLVMValueRef *fns = op_fns;
	op_fns = nnc_alloc(sizeof(LLVMValueRef) * (size_t)s->n);
	int *sids = nnc_alloc(sizeof(int) * (size_t)s->n);
	c->g = s;
	int ns = collect_ancestors(s, s->output, sids);
	for (int k = 0; k < ns; k++)
		lower_op(c, sids[k]);
	LLVMValueRef small = LLVMAddFunction(c->M, nnc_sprintf("%s.few", name), c->body_fn_t);
	LLVMSetLinkage(small, LLVMInternalLinkage);
	set_fn_attrs(c, small);
	begin_fn(c, small);
	LLVMValueRef ck = chunk_args(c, cg_alloca(c, c->abi.chunk, "chunk0"), cg_i64(c, 0), cg_arg(c, CG_ARGS_n));
	for (int k = 0; k < ns; k++)
		call_op(c, sids[k], cg_i32(c, 0), cg_i32(c, 1), ck);
	LLVMBuildRetVoid(c->B);
	c->g = g;
	op_fns = fns;

	LLVMValueRef fn = LLVMAddFunction(c->M, name, c->body_fn_t);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	set_fn_attrs(c, fn);
	begin_fn(c, fn);
	LLVMValueRef a[3] = {c->args, c->tid, c->nth};
	LLVMValueRef few = LLVMBuildICmp(c->B, LLVMIntSLE, cg_arg(c, CG_ARGS_n), cg_i64(c, NNC_SMALL_BATCH), "");
	cg_if f = cg_if_begin(c, few);
	cg_if t0 = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, c->tid, cg_i32(c, 0), ""));
	LLVMValueRef one[3] = {c->args, cg_i32(c, 0), cg_i32(c, 1)};
	LLVMBuildCall2(c->B, c->body_fn_t, small, one, 3, "");
	cg_if_end(c, &t0);
	cg_if_else(c, &f);
	LLVMBuildCall2(c->B, c->body_fn_t, big, a, 3, "");
	cg_if_end(c, &f);
	LLVMBuildRetVoid(c->B);
	return fn;
}

/* ---- the model descriptor (mirrors runtime/nnrt.h) ---- */

static LLVMValueRef cstr(cg_ctx *c, const char *s)
{
	if (!s)
		return LLVMConstNull(c->ptr);
	size_t len = strlen(s);
	LLVMValueRef init = LLVMConstStringInContext2(c->C, s, len, 0);
	LLVMValueRef g = LLVMAddGlobal(c->M, LLVMTypeOf(init), ".str");
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetLinkage(g, LLVMPrivateLinkage);
	LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
	return g;
}

static LLVMValueRef ci32(cg_ctx *c, int64_t v) { return LLVMConstInt(c->i32, (unsigned long long)v, 1); }
static LLVMValueRef ci64(cg_ctx *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }

static LLVMValueRef shape4(cg_ctx *c, int rank, const int64_t *d)
{
	LLVMValueRef e[4];
	for (int i = 0; i < 4; i++)
		e[i] = ci64(c, i < rank ? d[i] : 0);
	return LLVMConstArray2(c->i64, e, 4);
}

/* The fields are filled by name (cg_abi.h), one statement each, in the
 * order the globals they create (strings, tables) should appear. */
static LLVMValueRef data_spec(cg_ctx *c, const nnrt_data_spec *d)
{
	LLVMValueRef f[CG_DATA_NFIELDS];
	f[CG_DATA_kind] = ci32(c, d->kind);
	f[CG_DATA_has_header] = ci32(c, d->has_header);
	f[CG_DATA_path_x] = cstr(c, d->path_x);
	f[CG_DATA_path_y] = cstr(c, d->path_y);
	f[CG_DATA_cols_x] = cstr(c, d->cols_x);
	f[CG_DATA_cols_y] = cstr(c, d->cols_y);
	f[CG_DATA_scale] = cg_f32(c, d->scale);
	f[CG_DATA_shift] = cg_f32(c, d->shift);
	f[CG_DATA_noise] = cg_f32(c, d->noise);
	f[CG_DATA_pad_] = cg_f32(c, 0);
	f[CG_DATA_count] = ci64(c, d->count);
	f[CG_DATA_seed] = ci64(c, d->seed);
	f[CG_DATA_classes] = ci64(c, d->classes);
	return LLVMConstNamedStruct(c->abi.data_spec, f, CG_DATA_NFIELDS);
}

static LLVMValueRef param_table(cg_ctx *c, const char *prefix)
{
	ir_graph *g = c->g;
	LLVMTypeRef pt = c->abi.param_info;
	LLVMValueRef *rows = nnc_alloc(sizeof(LLVMValueRef) * (size_t)g->nparams);
	for (int i = 0; i < g->nparams; i++) {
		ir_param *p = &g->params[i];
		LLVMValueRef v[CG_PARAM_NFIELDS];
		v[CG_PARAM_name] = cstr(c, p->name);
		v[CG_PARAM_offset] = ci64(c, p->offset);
		v[CG_PARAM_size] = ci64(c, p->size);
		v[CG_PARAM_shape] = shape4(c, p->rank, p->dims);
		v[CG_PARAM_rank] = ci32(c, p->rank);
		v[CG_PARAM_init] = ci32(c, p->init);
		v[CG_PARAM_init_arg] = cg_f32(c, p->init_arg);
		v[CG_PARAM_fan_in] = cg_f32(c, p->fan_in);
		v[CG_PARAM_fan_out] = cg_f32(c, p->fan_out);
		v[CG_PARAM_pad_] = cg_f32(c, 0);
		rows[i] = LLVMConstNamedStruct(pt, v, CG_PARAM_NFIELDS);
	}
	LLVMValueRef arr = LLVMConstArray2(pt, rows, (uint64_t)g->nparams);
	LLVMValueRef gv = LLVMAddGlobal(c->M, LLVMTypeOf(arr), nnc_sprintf("%s_params", prefix));
	LLVMSetInitializer(gv, arr);
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMInternalLinkage);
	return gv;
}

/* The ops of the training step with their kernel class and FLOPs; also
 * numbers them (c->op_index) for the profile ticks. */
static LLVMValueRef op_table(cg_ctx *c, const char *prefix, int *count)
{
	ir_graph *g = c->g;
	LLVMTypeRef ot = c->abi.op_info;
	LLVMValueRef *rows = nnc_alloc(sizeof(LLVMValueRef) * (size_t)(g->n + 1));
	int n = 0;
	for (int i = 0; i < g->n_train; i++) {
		ir_node *nd = &g->nodes[i];
		if (!has_code(nd))
			continue;
		c->op_index[i] = n;
		const char *name = nd->name ? nnc_sprintf("%s %s", ir_op_name(nd->op), nd->name)
				   : nd->param >= 0 && (nd->storage == ST_GRAD)
					   ? nnc_sprintf("%s d%s", ir_op_name(nd->op), g->params[nd->param].name)
					   : nnc_sprintf("%s %%%d", ir_op_name(nd->op), i);
		double per_step = 0;
		if (nd->op == IR_SGD_UPDATE || nd->op == IR_ADAM_UPDATE)
			per_step = (double)g->param_floats * (nd->op == IR_ADAM_UPDATE ? 10 : 4);
		double per_sample = nd->op == IR_SGD_UPDATE || nd->op == IR_ADAM_UPDATE ? 0 : ir_node_flops(g, nd);
		LLVMValueRef v[CG_OPINFO_NFIELDS];
		v[CG_OPINFO_name] = cstr(c, name);
		v[CG_OPINFO_kind] = cstr(c, ir_op_kind(nd->op));
		v[CG_OPINFO_flops_per_sample] = LLVMConstReal(c->f64, per_sample);
		v[CG_OPINFO_flops_per_step] = LLVMConstReal(c->f64, per_step);
		rows[n++] = LLVMConstNamedStruct(ot, v, CG_OPINFO_NFIELDS);
	}
	*count = n;
	LLVMValueRef arr = LLVMConstArray2(ot, rows, (uint64_t)n);
	LLVMValueRef gv = LLVMAddGlobal(c->M, LLVMTypeOf(arr), nnc_sprintf("%s_ops", prefix));
	LLVMSetInitializer(gv, arr);
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMInternalLinkage);
	return gv;
}

static void emit_model(cg_ctx *c, const char *prefix, LLVMValueRef train, LLVMValueRef eval, LLVMValueRef infer,
		       LLVMValueRef ops, int n_ops)
{
	ir_graph *g = c->g;
	ir_node *in = &g->nodes[g->input];
	LLVMTypeRef mt = c->abi.model;
	LLVMTargetDataRef td = LLVMGetModuleDataLayout(c->M);
	int64_t out_size = g->output >= 0 ? g->nodes[g->output].size : 0;
	LLVMValueRef v[CG_MODEL_NFIELDS];
	v[CG_MODEL_struct_size] = ci64(c, (int64_t)LLVMABISizeOfType(td, mt));
	v[CG_MODEL_abi_version] = ci64(c, NNRT_ABI_VERSION);
	v[CG_MODEL_name] = cstr(c, g->model_name);
	v[CG_MODEL_source] = cstr(c, g->src->path);
	v[CG_MODEL_fingerprint] = LLVMConstInt(c->i64, g->fingerprint, 0);
	v[CG_MODEL_input_shape] = shape4(c, in->rank, in->dims);
	v[CG_MODEL_input_rank] = ci32(c, in->rank);
	v[CG_MODEL_label_kind] = ci32(c, g->label_kind);
	v[CG_MODEL_input_size] = ci64(c, in->size);
	v[CG_MODEL_label_size] = ci64(c, g->label_size);
	v[CG_MODEL_output_size] = ci64(c, out_size);
	v[CG_MODEL_batch] = ci64(c, g->batch);
	v[CG_MODEL_loss] = ci32(c, g->loss_kind);
	v[CG_MODEL_optimizer] = ci32(c, g->opt.kind);
	v[CG_MODEL_n_params] = ci32(c, g->nparams);
	v[CG_MODEL_pad_] = ci32(c, 0);
	v[CG_MODEL_params] = param_table(c, prefix);
	v[CG_MODEL_param_floats] = ci64(c, g->param_floats);
	v[CG_MODEL_opt_floats] = ci64(c, g->opt_floats);
	v[CG_MODEL_ws_floats] = ci64(c, g->ws_floats);
	v[CG_MODEL_lr] = cg_f32(c, g->opt.lr);
	v[CG_MODEL_momentum] = cg_f32(c, g->opt.momentum);
	v[CG_MODEL_beta1] = cg_f32(c, g->opt.beta1);
	v[CG_MODEL_beta2] = cg_f32(c, g->opt.beta2);
	v[CG_MODEL_eps] = cg_f32(c, g->opt.eps);
	v[CG_MODEL_pad2_] = cg_f32(c, 0);
	v[CG_MODEL_epochs] = ci64(c, g->epochs);
	v[CG_MODEL_seed] = ci64(c, g->seed);
	v[CG_MODEL_train] = data_spec(c, &g->train);
	v[CG_MODEL_test] = data_spec(c, &g->test);
	v[CG_MODEL_train_step] = train ? train : LLVMConstNull(c->ptr);
	v[CG_MODEL_eval_step] = eval ? eval : LLVMConstNull(c->ptr);
	v[CG_MODEL_infer] = infer ? infer : LLVMConstNull(c->ptr);
	v[CG_MODEL_ops] = ops;
	v[CG_MODEL_n_ops] = ci32(c, n_ops);
	v[CG_MODEL_profiled] = ci32(c, c->opt->profile);
	v[CG_MODEL_cpu_features] = cstr(c, nnc_target_required(c->opt->target));
	LLVMValueRef init = LLVMConstNamedStruct(mt, v, CG_MODEL_NFIELDS);
	LLVMValueRef gv = LLVMAddGlobal(c->M, mt, nnc_sprintf("%s_model", prefix));
	LLVMSetInitializer(gv, init);
	LLVMSetGlobalConstant(gv, 1);

	if (c->opt->emit_main) {
		LLVMTypeRef mp[2] = {c->i32, c->ptr};
		LLVMTypeRef main_t = LLVMFunctionType(c->i32, mp, 2, 0);
		LLVMValueRef mainf = LLVMAddFunction(c->M, "main", main_t);
		LLVMTypeRef np[3] = {c->ptr, c->i32, c->ptr};
		LLVMTypeRef nm_t = LLVMFunctionType(c->i32, np, 3, 0);
		LLVMValueRef nm = LLVMAddFunction(c->M, "nnrt_main", nm_t);
		LLVMPositionBuilderAtEnd(c->B, LLVMAppendBasicBlockInContext(c->C, mainf, "entry"));
		LLVMValueRef a[3] = {gv, LLVMGetParam(mainf, 0), LLVMGetParam(mainf, 1)};
		LLVMBuildRet(c->B, LLVMBuildCall2(c->B, nm_t, nm, a, 3, ""));
	}
}

/* Nodes needed to compute `root` (its ancestors), in order. */
static int collect_ancestors(ir_graph *g, int root, int *ids)
{
	bool *need = ir_ancestors(g, root);
	int n = 0;
	for (int i = 0; i <= root; i++)
		if (need[i] && has_code(&g->nodes[i]))
			ids[n++] = i;
	return n;
}

LLVMModuleRef nnc_lower(ir_graph *g, const cg_options *opt, LLVMContextRef ctx)
{
	cg_ctx C0 = {0}, *c = &C0;
	c->g = g;
	c->opt = opt;
	c->C = ctx;
	c->M = LLVMModuleCreateWithNameInContext(g->model_name, ctx);
	c->B = LLVMCreateBuilderInContext(ctx);
	c->f32 = LLVMFloatTypeInContext(ctx);
	c->f64 = LLVMDoubleTypeInContext(ctx);
	c->i1 = LLVMInt1TypeInContext(ctx);
	c->i8 = LLVMInt8TypeInContext(ctx);
	c->i32 = LLVMInt32TypeInContext(ctx);
	c->i64 = LLVMInt64TypeInContext(ctx);
	c->ptr = LLVMPointerTypeInContext(ctx, 0);
	c->v16 = LLVMVectorType(c->f32, CG_VW);
	c->m16 = LLVMVectorType(c->i1, CG_VW);
	c->vt = LLVMVoidTypeInContext(ctx);
	c->abi = cg_abi_types(ctx);
	LLVMTypeRef op_params[4] = {c->ptr, c->i32, c->i32, c->ptr};
	c->op_fn_t = LLVMFunctionType(c->vt, op_params, 4, 0);
	c->body_fn_t = LLVMFunctionType(c->vt, op_params, 3, 0);
	c->barrier_t = LLVMFunctionType(c->vt, NULL, 0, 0);
	c->barrier_fn = LLVMAddFunction(c->M, "nnrt_barrier", c->barrier_t);

	/* target triple and data layout of the machine emit.c generates code
	 * for (target.c), so struct layout matches C */
	LLVMTargetMachineRef tm = nnc_target_machine(opt->target, opt->opt_level);
	char *triple = LLVMGetTargetMachineTriple(tm);
	LLVMSetTarget(c->M, triple);
	LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
	char *dl = LLVMCopyStringRepOfTargetData(td);
	LLVMSetDataLayout(c->M, dl);
	LLVMDisposeMessage(dl);
	LLVMDisposeTargetData(td);
	LLVMDisposeTargetMachine(tm);
	LLVMDisposeMessage(triple);

	const char *prefix = opt->prefix ? opt->prefix : g->model_name;
	op_fns = nnc_alloc(sizeof(LLVMValueRef) * (size_t)g->n);
	int *ids = nnc_alloc(sizeof(int) * (size_t)g->n);
	c->op_index = nnc_alloc(sizeof(int) * (size_t)g->n);
	for (int i = 0; i < g->n; i++)
		c->op_index[i] = -1;
	int n_ops = 0;
	LLVMValueRef ops = op_table(c, prefix, &n_ops);
	if (opt->profile) {
		LLVMTypeRef i32 = c->i32;
		c->tick_t = LLVMFunctionType(c->vt, &i32, 1, 0);
		c->tick_fn = LLVMAddFunction(c->M, "nnrt_prof_tick", c->tick_t);
	}
	int last = opt->inference_only ? g->n_eval : g->n_train;
	for (int i = 0; i < last; i++)
		if (has_code(&g->nodes[i]))
			lower_op(c, i);
	for (int i = g->n_train; i < g->n; i++)
		if (has_code(&g->nodes[i]))
			lower_op(c, i);

	LLVMValueRef train = NULL, eval, infer = NULL;
	int n = 0;
	if (!opt->inference_only) {
		for (int i = 0; i < g->n_train; i++)
			if (has_code(&g->nodes[i]))
				ids[n++] = i;
		train = emit_body(c, nnc_sprintf("%s_train_step", prefix), ids, n);
	}
	n = 0;
	for (int i = 0; i < g->n_eval; i++)
		if (has_code(&g->nodes[i]))
			ids[n++] = i;
	eval = emit_body(c, nnc_sprintf("%s_eval_step", prefix), ids, n);
	if (g->output >= 0) {
		n = collect_ancestors(g, g->output, ids);
		infer = emit_infer(c, nnc_sprintf("%s_infer", prefix), ids, n);
	}
	emit_model(c, prefix, train, eval, infer, ops, n_ops);
	LLVMDisposeBuilder(c->B);
	return c->M;
}
