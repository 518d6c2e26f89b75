/*
 * cg_build.c - see cg_build.h.
 */
#include "cg_build.h"

#include <string.h>

#include "util.h"

void cg_build_init(cg_ctx *c, LLVMContextRef C, LLVMModuleRef M)
{
	c->C = C;
	c->M = M;
	c->B = LLVMCreateBuilderInContext(C);
	c->f32 = LLVMFloatTypeInContext(C);
	c->f64 = LLVMDoubleTypeInContext(C);
	c->i1 = LLVMInt1TypeInContext(C);
	c->i8 = LLVMInt8TypeInContext(C);
	c->i32 = LLVMInt32TypeInContext(C);
	c->i64 = LLVMInt64TypeInContext(C);
	c->ptr = LLVMPointerTypeInContext(C, 0);
	c->v16 = LLVMVectorType(c->f32, CG_VW);
	c->m16 = LLVMVectorType(c->i1, CG_VW);
	c->vt = LLVMVoidTypeInContext(C);
}

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

void cg_vec_loop(cg_ctx *c, int64_t len, cg_vec_body *f, void *env)
{
	int64_t full = len / CG_VW * CG_VW;
	if (full) {
		cg_loop j = cg_loop_begin(c, cg_i64(c, 0), cg_i64(c, full), CG_VW);
		f(c, j.i, NULL, env);
		cg_loop_end(c, &j);
	}
	if (len > full)
		f(c, cg_i64(c, full), cg_mask(c, (int)(len - full)), env);
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

LLVMBasicBlockRef cg_at_entry(cg_ctx *c)
{
	LLVMBasicBlockRef cur = LLVMGetInsertBlock(c->B);
	LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(c->fn);
	LLVMValueRef first = LLVMGetFirstInstruction(entry);
	if (first)
		LLVMPositionBuilderBefore(c->B, first);
	else
		LLVMPositionBuilderAtEnd(c->B, entry);
	return cur;
}

LLVMValueRef cg_alloca(cg_ctx *c, LLVMTypeRef t, const char *name)
{
	/* allocas go to the entry block so that mem2reg promotes them */
	LLVMBasicBlockRef cur = cg_at_entry(c);
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

void cg_prefetch(cg_ctx *c, LLVMValueRef base, LLVMValueRef off, int locality)
{
	LLVMValueRef pa[4] = {LLVMBuildGEP2(c->B, c->f32, base, &off, 1, ""), cg_i32(c, 0), cg_i32(c, locality), cg_i32(c, 1)};
	LLVMTypeRef pt = c->ptr;
	cg_call_intr(c, "llvm.prefetch", &pt, 1, pa, 4);
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

void cg_fn_attrs(cg_ctx *c, LLVMValueRef fn)
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

/* An i64 constant of z's type: a scalar, or a vector of them. */
static LLVMValueRef k64(cg_ctx *c, LLVMValueRef z, uint64_t v)
{
	LLVMValueRef k = LLVMConstInt(c->i64, v, 0);
	if (LLVMGetTypeKind(LLVMTypeOf(z)) != LLVMVectorTypeKind)
		return k;
	LLVMValueRef e[CG_VW];
	for (int i = 0; i < CG_VW; i++)
		e[i] = k;
	return LLVMConstVector(e, CG_VW);
}

/* splitmix64's finaliser on an i64 or a vector of them (nnrt.h, nnrt_mix64) */
static LLVMValueRef mix64(cg_ctx *c, LLVMValueRef z)
{
	LLVMBuilderRef B = c->B;
	z = LLVMBuildAdd(B, z, k64(c, z, 0x9E3779B97F4A7C15ull), "");
	z = LLVMBuildMul(B, LLVMBuildXor(B, z, LLVMBuildLShr(B, z, k64(c, z, 30), ""), ""), k64(c, z, 0xBF58476D1CE4E5B9ull), "");
	z = LLVMBuildMul(B, LLVMBuildXor(B, z, LLVMBuildLShr(B, z, k64(c, z, 27), ""), ""), k64(c, z, 0x94D049BB133111EBull), "");
	return LLVMBuildXor(B, z, LLVMBuildLShr(B, z, k64(c, z, 31), ""), "");
}

LLVMValueRef cg_random_key(cg_ctx *c, LLVMValueRef seed, LLVMValueRef sample)
{
	return mix64(c, LLVMBuildXor(c->B, seed, mix64(c, sample), ""));
}

LLVMValueRef cg_random_at(cg_ctx *c, LLVMValueRef key, LLVMValueRef elem)
{
	LLVMBuilderRef B = c->B;
	bool vec = LLVMGetTypeKind(LLVMTypeOf(elem)) == LLVMVectorTypeKind;
	LLVMValueRef h = mix64(c, LLVMBuildAdd(B, key, elem, ""));
	LLVMValueRef top24 = LLVMBuildLShr(B, h, k64(c, h, 40), ""); /* (bits >> 32) >> 8 */
	/* below 2^24: exact in an i32 and in a float */
	top24 = LLVMBuildTrunc(B, top24, vec ? LLVMVectorType(c->i32, CG_VW) : c->i32, "");
	LLVMValueRef u = LLVMBuildUIToFP(B, top24, vec ? c->v16 : c->f32, "");
	return LLVMBuildFMul(B, u, vec ? cg_vf32(c, 0x1p-24) : cg_f32(c, 0x1p-24), "");
}

LLVMValueRef cg_random_uniform(cg_ctx *c, LLVMValueRef seed, LLVMValueRef sample, LLVMValueRef elem)
{
	return cg_random_at(c, cg_random_key(c, seed, sample), elem);
}

/* The rounded bits of x (i32 or <16 x i32>, the type of x's lanes). */
static LLVMValueRef bf16_bits(cg_ctx *c, LLVMValueRef x)
{
	bool vec = LLVMGetTypeKind(LLVMTypeOf(x)) == LLVMVectorTypeKind;
	LLVMTypeRef it = vec ? LLVMVectorType(c->i32, CG_VW) : c->i32;
	LLVMValueRef k = cg_i32(c, 0x7fff), sh = cg_i32(c, 16), one = cg_i32(c, 1), hi = cg_i32(c, (int32_t)0xffff0000u);
	if (vec) {
		k = cg_splat(c, k);
		sh = cg_splat(c, sh);
		one = cg_splat(c, one);
		hi = cg_splat(c, hi);
	}
	LLVMValueRef u = LLVMBuildBitCast(c->B, x, it, "");
	LLVMValueRef odd = LLVMBuildAnd(c->B, LLVMBuildLShr(c->B, u, sh, ""), one, "");
	u = LLVMBuildAdd(c->B, u, LLVMBuildAdd(c->B, k, odd, ""), "");
	return LLVMBuildAnd(c->B, u, hi, "");
}

LLVMValueRef cg_round_bf16(cg_ctx *c, LLVMValueRef x)
{
	return LLVMBuildBitCast(c->B, bf16_bits(c, x), LLVMTypeOf(x), "");
}

/* vcvtne2ps2bf16: 32 bfloat16, a's 16 values in the low half, b's in the
 * high half, as <32 x i16> */
static LLVMValueRef cvt2(cg_ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	LLVMValueRef args[2] = {b, a};
	LLVMValueRef r = cg_call_intr(c, "llvm.x86.avx512bf16.cvtne2ps2bf16.512", NULL, 0, args, 2);
	return LLVMBuildBitCast(c->B, r, LLVMVectorType(LLVMInt16TypeInContext(c->C), 2 * CG_VW), "");
}

LLVMValueRef cg_bf16_pairs(cg_ctx *c, LLVMValueRef lo, LLVMValueRef hi)
{
	LLVMValueRef w = cvt2(c, lo, hi), idx[2 * CG_VW];
	for (int j = 0; j < CG_VW; j++) { /* lo[j], hi[j] side by side */
		idx[2 * j] = cg_i32(c, j);
		idx[2 * j + 1] = cg_i32(c, CG_VW + j);
	}
	w = LLVMBuildShuffleVector(c->B, w, LLVMGetUndef(LLVMTypeOf(w)), LLVMConstVector(idx, 2 * CG_VW), "");
	return LLVMBuildBitCast(c->B, w, LLVMVectorType(c->i32, CG_VW), "");
}

LLVMValueRef cg_bf16_seq(cg_ctx *c, LLVMValueRef v0, LLVMValueRef v1)
{
	return LLVMBuildBitCast(c->B, cvt2(c, v0, v1), LLVMVectorType(c->i32, CG_VW), "");
}

LLVMValueRef cg_bf16_pair(cg_ctx *c, LLVMValueRef lo, LLVMValueRef hi)
{
	LLVMValueRef b0 = LLVMBuildBitCast(c->B, cg_round_bf16(c, lo), c->i32, "");
	LLVMValueRef b1 = LLVMBuildBitCast(c->B, cg_round_bf16(c, hi), c->i32, "");
	return LLVMBuildOr(c->B, LLVMBuildLShr(c->B, b0, cg_i32(c, 16), ""), b1, "");
}

LLVMValueRef cg_dpbf16(cg_ctx *c, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b)
{
	LLVMTypeRef vb = LLVMVectorType(LLVMBFloatTypeInContext(c->C), 2 * CG_VW);
	LLVMValueRef args[3] = {acc, LLVMBuildBitCast(c->B, a, vb, ""), LLVMBuildBitCast(c->B, b, vb, "")};
	return cg_call_intr(c, "llvm.x86.avx512bf16.dpbf16ps.512", NULL, 0, args, 3);
}
