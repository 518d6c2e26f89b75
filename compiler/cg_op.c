/*
 * cg_op.c - what an op function sees (cg.h): its step arguments and chunk
 * by name (cg_abi.h), the base pointer of each tensor by storage class,
 * its thread's share of the work, and the activations with their
 * out-of-line epilogues.  The lowerings are written against these; the
 * dispatcher (cg.c) sets up the function they run in.
 */
#include "cg.h"

#include <stdio.h>

#include "cg_math.h"

/* ---- access to nnrt_step_args ---- */

LLVMValueRef cg_arg(cg_ctx *c, cg_args_field f)
{
	LLVMValueRef p = LLVMBuildStructGEP2(c->B, c->abi.step_args, c->args, (unsigned)f, "");
	return cg_load(c, cg_abi_field_type(c->abi.step_args, (unsigned)f), p);
}

/* The chunk an op function works on (cg_abi.h); the bodies fill it (cg.c, chunk_args). */
static LLVMValueRef chunk_field(cg_ctx *c, cg_chunk_field f)
{
	NNC_ASSERT(c->chunk);
	LLVMValueRef p = LLVMBuildStructGEP2(c->B, c->abi.chunk, c->chunk, (unsigned)f, "");
	return cg_load(c, cg_abi_field_type(c->abi.chunk, (unsigned)f), p);
}

LLVMValueRef cg_first_sample(cg_ctx *c)
{
	return LLVMBuildAdd(c->B, cg_arg(c, CG_ARGS_sample0), chunk_field(c, CG_CHUNK_s0), "");
}

LLVMValueRef cg_batch_n(cg_ctx *c) { return chunk_field(c, CG_CHUNK_n); }
LLVMValueRef cg_chunk_s0(cg_ctx *c) { return chunk_field(c, CG_CHUNK_s0); }
LLVMValueRef cg_batch_total(cg_ctx *c) { return chunk_field(c, CG_CHUNK_total); }
LLVMValueRef cg_chunk_more(cg_ctx *c) { return chunk_field(c, CG_CHUNK_more); }
LLVMValueRef cg_metrics(cg_ctx *c) { return chunk_field(c, CG_CHUNK_metrics); }

LLVMValueRef cg_hp(cg_ctx *c, int k)
{
	LLVMValueRef base = LLVMBuildStructGEP2(c->B, c->abi.step_args, c->args, CG_ARGS_hp, "");
	LLVMValueRef i = cg_i64(c, k);
	return cg_load(c, c->f32, LLVMBuildInBoundsGEP2(c->B, c->f32, base, &i, 1, ""));
}

/* A node's offset in its storage (floats, i64): a constant, or with kernel
 * sharing (cg_ctx.offs) its slot of the op function's offset table, loaded
 * once in the entry block. */
static LLVMValueRef tensor_offset(cg_ctx *c, const ir_node *n)
{
	if (!c->offs)
		return cg_i64(c, n->offset);
	for (int k = 0; k < c->nslots; k++)
		if (c->slot_nodes[k] == n)
			return c->slot_vals[k];
	if (c->nslots == c->slot_cap) {
		int cap = c->slot_cap ? 2 * c->slot_cap : 8;
		const void **nodes = nnc_alloc(sizeof *nodes * (size_t)cap);
		LLVMValueRef *vals = nnc_alloc(sizeof *vals * (size_t)cap);
		for (int k = 0; k < c->nslots; k++) {
			nodes[k] = c->slot_nodes[k];
			vals[k] = c->slot_vals[k];
		}
		c->slot_nodes = nodes;
		c->slot_vals = vals;
		c->slot_cap = cap;
	}
	LLVMBasicBlockRef cur = cg_at_entry(c); /* loaded once, before any loop */
	LLVMValueRef k = cg_i64(c, c->nslots);
	LLVMValueRef v = cg_load(c, c->i64, LLVMBuildInBoundsGEP2(c->B, c->i64, c->offs, &k, 1, ""));
	LLVMPositionBuilderAtEnd(c->B, cur);
	c->slot_nodes[c->nslots] = n;
	c->slot_vals[c->nslots++] = v;
	return v;
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
	case ST_STATE: base = cg_arg(c, CG_ARGS_state); break;
	case ST_GRAD: base = chunk_field(c, CG_CHUNK_grads); break;
	case ST_WS: base = n->batched || ir_per_chunk(n) ? chunk_field(c, CG_CHUNK_ws) : cg_arg(c, CG_ARGS_ws); break;
	default: nnc_internal_error(__FILE__, __LINE__, "tensor %s has no storage", ir_op_name(n->op));
	}
	if (n->offset == 0 && !c->offs)
		return base;
	return cg_gep(c, base, tensor_offset(c, n));
}

LLVMValueRef cg_chunk_tensor(cg_ctx *c, const ir_node *n, LLVMValueRef k)
{
	ir_graph *g = c->g;
	NNC_ASSERT(n->storage == ST_WS && ir_per_chunk(n));
	LLVMValueRef base = c->offs ? LLVMBuildAdd(c->B, tensor_offset(c, n), cg_i64(c, g->ws_chunk0), "")
				    : cg_i64(c, g->ws_chunk0 + n->offset);
	LLVMValueRef off = LLVMBuildAdd(c->B, base, LLVMBuildMul(c->B, k, cg_i64(c, g->ws_chunk), ""), "");
	return cg_gep(c, cg_arg(c, CG_ARGS_ws), off);
}

LLVMValueRef cg_chunk_samples(cg_ctx *c, LLVMValueRef k)
{
	LLVMValueRef left = LLVMBuildSub(c->B, cg_batch_total(c), LLVMBuildMul(c->B, k, cg_i64(c, c->g->cbatch), ""), "");
	return cg_min_i64(c, left, cg_i64(c, c->g->cbatch));
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

LLVMValueRef cg_active_chunks(cg_ctx *c, LLVMValueRef n)
{
	return LLVMBuildSDiv(c->B, LLVMBuildAdd(c->B, n, cg_i64(c, c->g->cbatch - 1), ""), cg_i64(c, c->g->cbatch), "");
}

/* ---- out-of-line epilogues ---- */

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
	for (cg_epilogue *e = *c->epilogues; e && !slot; e = e->next)
		if (e->act == act && e->dact == dact && e->opt == opt && e->nv == nv && e->tail == tail && e->to_y == to_y)
			slot = &e->fn;
	if (!slot) {
		cg_epilogue *e = nnc_alloc(sizeof *e);
		*e = (cg_epilogue){*c->epilogues, act, dact, opt, nv, tail, to_y, NULL};
		*c->epilogues = e;
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
		cg_fn_attrs(c, fn);
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
