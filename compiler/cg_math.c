/*
 * cg_math.c - exp, log, tanh and sigmoid written as straight-line LLVM IR.
 *
 * Every function works lane-wise on float or <N x float> with no branches,
 * so a kernel that applies it to a vector stays a vector loop.  The methods:
 *
 *   exp:  x = n*ln2 + r, |r| <= ln2/2; e^x = 2^n * p(r), p a degree-6
 *         minimax polynomial; 2^n is built in the exponent bits, in two
 *         halves so that n in [-150, 129] (subnormal and overflowing
 *         results) needs no special case.
 *   log:  x = 2^e * m, m in [sqrt(1/2), sqrt(2)); log x = e*ln2 + log1p(m-1),
 *         log1p(f) = f - f^2/2 + f^3 * q(f), q a degree-7 minimax polynomial.
 *   tanh: m / (m + 2), m = e^(2|x|) - 1 from exp's reduction and polynomial
 *         (relatively accurate for tiny x too); sign copied from x at the end.
 *   sigmoid: 1 / (1 + e^-x) with the exp above, which saturates cleanly.
 *
 * The polynomial coefficients were fitted for this file with a weighted
 * Remez exchange (relative error for exp and tanh, absolute for log1p) and
 * rounded to float; the fitting error is ~5e-9, well under float rounding.
 * Multiply-adds use llvm.fmuladd: one fused instruction where the target has
 * FMA, a mul and an add where it does not (llvm.fma would become a call to
 * fmaf there).  Every step tolerates the unfused form.
 */
#include "cg_math.h"

#include "util.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* ln2 split so that n * LN2_HI is exact for |n| < 2^15 (LN2_HI has 9
 * significant bits) and LN2_HI + LN2_LO = ln2 to ~1e-11. */
#define LN2_HI 0.693359375f
#define LN2_LO (-2.121944417e-4f)
#define LOG2E 1.442695022f
/* 1.5 * 2^23: adding it to |v| < 2^22 leaves round(v) in the low mantissa
 * bits, so it rounds to nearest without llvm.rint (a libcall on plain x86-64)
 * and gives the integer by a subtraction on the bits. */
#define ROUND_MAGIC 12582912.0f
#define ROUND_MAGIC_BITS 0x4b400000
#define SQRT_HALF_BITS 0x3f3504f3 /* bits of (float)sqrt(0.5) */

/* e^r ~ 1 + r + r^2 * EXP_P(r) on |r| <= 0.3467: relative error 3.1e-9. */
static const float EXP_P[] = {
	4.999999404e-01f, 1.666652113e-01f, 4.166838899e-02f,
	8.368735202e-03f, 1.381456037e-03f,
};
/* log1p(f) ~ f - f^2/2 + f^3 * LOG_P(f) on [sqrt(.5)-1, sqrt(2)-1]:
 * absolute error 5.2e-9. */
static const float LOG_P[] = {
	3.333308399e-01f, -2.500079572e-01f, 2.001538277e-01f,
	-1.663231403e-01f, 1.396015435e-01f, -1.287653446e-01f,
	1.406222135e-01f, -9.770023823e-02f,
};
/* tanh rounds to 1.0f from 9.02 on; clamping keeps e^(2|x|) finite. */
#define TANH_CLAMP 10.0f
/* cgm_exp's domain: e^89 overflows to +inf, e^-104 rounds to 0. */
#define EXP_HI 89.0f
#define EXP_LO (-104.0f)

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* What every emitter needs: the builder and the float/int types that match
 * the operand's shape (lanes == 0 for a scalar). */
typedef struct cgm_emit {
	LLVMBuilderRef b;
	LLVMModuleRef mod;
	LLVMTypeRef fty, ity; /* float / i32, or <lanes x float> / <lanes x i32> */
	unsigned lanes;
} cgm_emit;

static cgm_emit cgm_begin(LLVMBuilderRef b, LLVMValueRef x)
{
	cgm_emit c = {.b = b, .fty = LLVMTypeOf(x)};
	LLVMBasicBlockRef bb = LLVMGetInsertBlock(b);
	NNC_ASSERT(bb != NULL);
	c.mod = LLVMGetGlobalParent(LLVMGetBasicBlockParent(bb));
	LLVMContextRef ctx = LLVMGetTypeContext(c.fty);
	LLVMTypeRef elem = c.fty;
	if (LLVMGetTypeKind(c.fty) == LLVMVectorTypeKind) {
		c.lanes = LLVMGetVectorSize(c.fty);
		elem = LLVMGetElementType(c.fty);
	}
	NNC_ASSERT(LLVMGetTypeKind(elem) == LLVMFloatTypeKind);
	LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx);
	c.ity = c.lanes ? LLVMVectorType(i32, c.lanes) : i32;
	return c;
}

/* A constant of the operand's shape: the scalar itself or its splat. */
static LLVMValueRef splat(const cgm_emit *c, LLVMValueRef s)
{
	if (!c->lanes)
		return s;
	LLVMValueRef stack[64];
	LLVMValueRef *v = c->lanes <= NELEMS(stack) ? stack : nnc_alloc(c->lanes * sizeof(*v));
	for (unsigned i = 0; i < c->lanes; i++)
		v[i] = s;
	return LLVMConstVector(v, c->lanes);
}

static LLVMValueRef kf(const cgm_emit *c, float v)
{
	return splat(c, LLVMConstReal(LLVMFloatTypeInContext(LLVMGetTypeContext(c->fty)), v));
}

static LLVMValueRef ki(const cgm_emit *c, int32_t v)
{
	LLVMTypeRef i32 = c->lanes ? LLVMGetElementType(c->ity) : c->ity;
	return splat(c, LLVMConstInt(i32, (unsigned long long)(int64_t)v, 1));
}

static LLVMValueRef intrinsic(const cgm_emit *c, const char *name, LLVMValueRef *args, unsigned n)
{
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	NNC_ASSERT(id != 0);
	LLVMTypeRef ty = c->fty;
	LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, &ty, 1);
	LLVMTypeRef fnty = LLVMIntrinsicGetType(LLVMGetTypeContext(c->fty), id, &ty, 1);
	return LLVMBuildCall2(c->b, fnty, fn, args, n, "");
}

/* a*b + d, fused where the target can. */
static LLVMValueRef mla(const cgm_emit *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef d)
{
	LLVMValueRef args[] = {a, b, d};
	return intrinsic(c, "llvm.fmuladd", args, 3);
}

static LLVMValueRef fabs_(const cgm_emit *c, LLVMValueRef x)
{
	return intrinsic(c, "llvm.fabs", &x, 1);
}

static LLVMValueRef copysign_(const cgm_emit *c, LLVMValueRef mag, LLVMValueRef sgn)
{
	LLVMValueRef args[] = {mag, sgn};
	return intrinsic(c, "llvm.copysign", args, 2);
}

/* cond(x, k) ? k : x.  With an ordered compare a NaN x is kept, which is
 * what lets NaN flow through the clamps below (llvm.minnum would drop it). */
static LLVMValueRef clamp_if(const cgm_emit *c, LLVMRealPredicate p, LLVMValueRef x, float k)
{
	LLVMValueRef kv = kf(c, k);
	return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, p, x, kv, ""), kv, x, "");
}

/* Horner: P[0] + x*(P[1] + x*(... + x*P[n-1])). */
static LLVMValueRef horner(const cgm_emit *c, LLVMValueRef x, const float *p, size_t n)
{
	LLVMValueRef acc = kf(c, p[n - 1]);
	for (size_t i = n - 1; i-- > 0;)
		acc = mla(c, acc, x, kf(c, p[i]));
	return acc;
}

/* 2^k as float for integer k in [-126, 127]: k + 127 in the exponent field. */
static LLVMValueRef pow2i(const cgm_emit *c, LLVMValueRef k)
{
	LLVMValueRef e = LLVMBuildAdd(c->b, k, ki(c, 127), "");
	return LLVMBuildBitCast(c->b, LLVMBuildShl(c->b, e, ki(c, 23), ""), c->fty, "");
}

/* e^x for x in [-104, 89] or NaN (no clamping here).  With wide_range the
 * scale 2^n is applied as 2^(n/2) * 2^(n - n/2), which covers every n this
 * domain produces; without it n must stay in [-126, 127] (|x| <= 87). */
/* x = n ln2 + r: returns e^r - 1 (r + r^2 EXP_P(r)) and sets *n (integer
 * lanes). */
static LLVMValueRef exp_reduce(const cgm_emit *c, LLVMValueRef x, LLVMValueRef *n)
{
	LLVMBuilderRef b = c->b;
	LLVMValueRef t = mla(c, x, kf(c, LOG2E), kf(c, ROUND_MAGIC));
	LLVMValueRef nf = LLVMBuildFSub(b, t, kf(c, ROUND_MAGIC), "exp.n");
	/* r = x - n*ln2 in two steps: the first is exact with or without FMA. */
	LLVMValueRef r = mla(c, nf, kf(c, -LN2_HI), x);
	r = mla(c, nf, kf(c, -LN2_LO), r);
	LLVMValueRef q = horner(c, r, EXP_P, NELEMS(EXP_P));
	*n = LLVMBuildSub(b, LLVMBuildBitCast(b, t, c->ity, ""), ki(c, ROUND_MAGIC_BITS), "");
	return mla(c, LLVMBuildFMul(b, r, r, ""), q, r);
}

LLVMValueRef cgm_exp(LLVMBuilderRef b, LLVMValueRef x)
{
	cgm_emit c = cgm_begin(b, x);
	x = clamp_if(&c, LLVMRealOGT, x, EXP_HI);
	x = clamp_if(&c, LLVMRealOLT, x, EXP_LO);
	LLVMValueRef n, p = LLVMBuildFAdd(b, exp_reduce(&c, x, &n), kf(&c, 1.0f), "exp.p");
	/* 2^n in two halves: p * 2^n1 is normal; the second product rounds
	 * once into subnormals. */
	LLVMValueRef n1 = LLVMBuildAShr(b, n, ki(&c, 1), "");
	LLVMValueRef n2 = LLVMBuildSub(b, n, n1, "");
	p = LLVMBuildFMul(b, p, pow2i(&c, n1), "");
	return LLVMBuildFMul(b, p, pow2i(&c, n2), "exp");
}

LLVMValueRef cgm_log(LLVMBuilderRef b, LLVMValueRef x)
{
	cgm_emit c = cgm_begin(b, x);
	/* Subnormals: scale by 2^23 first and take 23 off the exponent. */
	LLVMValueRef sub = LLVMBuildFCmp(b, LLVMRealOLT, x, kf(&c, 0x1p-126f), "");
	LLVMValueRef xs = LLVMBuildSelect(b, sub, LLVMBuildFMul(b, x, kf(&c, 0x1p23f), ""), x, "");
	LLVMValueRef eadj = LLVMBuildSelect(b, sub, ki(&c, -23), ki(&c, 0), "");
	/* e = exponent of xs relative to sqrt(1/2), m = xs / 2^e. */
	LLVMValueRef i = LLVMBuildBitCast(b, xs, c.ity, "");
	LLVMValueRef e = LLVMBuildAShr(b, LLVMBuildSub(b, i, ki(&c, SQRT_HALF_BITS), ""), ki(&c, 23), "");
	LLVMValueRef mi = LLVMBuildSub(b, i, LLVMBuildShl(b, e, ki(&c, 23), ""), "");
	LLVMValueRef f = LLVMBuildFSub(b, LLVMBuildBitCast(b, mi, c.fty, ""), kf(&c, 1.0f), "log.f");
	/* log1p(f) = f + f^2 * (-1/2 + f * LOG_P(f)) */
	LLVMValueRef q = mla(&c, f, horner(&c, f, LOG_P, NELEMS(LOG_P)), kf(&c, -0.5f));
	LLVMValueRef y = mla(&c, LLVMBuildFMul(b, f, f, ""), q, f);
	LLVMValueRef ef = LLVMBuildSIToFP(b, LLVMBuildAdd(b, e, eadj, ""), c.fty, "log.e");
	LLVMValueRef r = mla(&c, ef, kf(&c, LN2_HI), mla(&c, ef, kf(&c, LN2_LO), y));
	/* The bit arithmetic gives finite garbage for these; order matters:
	 * -0 is not < 0, so it keeps the -inf of the first select. */
	LLVMValueRef inf = kf(&c, INFINITY);
	r = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOEQ, x, kf(&c, 0.0f), ""),
	                    LLVMBuildFNeg(b, inf, ""), r, "");
	r = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealULT, x, kf(&c, 0.0f), ""),
	                    kf(&c, NAN), r, "");
	return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOEQ, x, inf, ""), inf, r, "log");
}

LLVMValueRef cgm_tanh(LLVMBuilderRef b, LLVMValueRef x)
{
	cgm_emit c = cgm_begin(b, x);
	/* tanh|x| = m / (m + 2), m = e^(2|x|) - 1 = 2^n (r + r^2 q(r)) + (2^n - 1)
	 * with 2|x| = n ln2 + r: exp's reduction (exp_reduce), without its
	 * final 1 + and product, so that m keeps its relative accuracy for tiny x
	 * (n = 0: m = r + r^2 q, r = 2|x| exactly) and the one division gives
	 * tanh near 1 within half an ulp.  Computed on |x|, the sign restored
	 * last (tanh(-0) = -0); the clamp keeps NaN, so NaN reaches the result. */
	LLVMValueRef ax = clamp_if(&c, LLVMRealOGT, fabs_(&c, x), TANH_CLAMP);
	LLVMValueRef n, pm1 = exp_reduce(&c, LLVMBuildFAdd(b, ax, ax, ""), &n); /* e^r - 1 */
	LLVMValueRef s = pow2i(&c, n);
	LLVMValueRef m = mla(&c, s, pm1, LLVMBuildFSub(b, s, kf(&c, 1.0f), ""));
	LLVMValueRef y = LLVMBuildFDiv(b, m, LLVMBuildFAdd(b, m, kf(&c, 2.0f), ""), "");
	y = copysign_(&c, y, x);
	LLVMSetValueName2(y, "tanh", 4);
	return y;
}

LLVMValueRef cgm_sigmoid(LLVMBuilderRef b, LLVMValueRef x)
{
	cgm_emit c = cgm_begin(b, x);
	/* e^-x is 0 for x > 104 and +inf for x < -89: 1/(1+e) is then exactly
	 * 1 or 0, never NaN. */
	LLVMValueRef e = cgm_exp(b, LLVMBuildFNeg(b, x, ""));
	LLVMValueRef one = kf(&c, 1.0f);
	return LLVMBuildFDiv(b, one, LLVMBuildFAdd(b, one, e, ""), "sigmoid");
}

/* ---- activations (acts.def) ----
 * The derivative emitters get dy and what the row's `from` names; their
 * formulas are in terms of it. */

/* relu(x) = max(x, 0);  from y: dy * (y > 0) */
LLVMValueRef cgm_relu(LLVMBuilderRef b, LLVMValueRef x, double opt)
{
	(void)opt;
	LLVMValueRef z = LLVMConstNull(LLVMTypeOf(x));
	return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, x, z, ""), x, z, "relu");
}

LLVMValueRef cgm_drelu(LLVMBuilderRef b, LLVMValueRef y, LLVMValueRef dy, double opt)
{
	(void)opt;
	LLVMValueRef z = LLVMConstNull(LLVMTypeOf(y));
	return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, y, z, ""), dy, z, "");
}

/* sigmoid:  from y: dy * y (1 - y) */
LLVMValueRef cgm_sigmoid_act(LLVMBuilderRef b, LLVMValueRef x, double opt)
{
	(void)opt;
	return cgm_sigmoid(b, x);
}

LLVMValueRef cgm_dsigmoid(LLVMBuilderRef b, LLVMValueRef y, LLVMValueRef dy, double opt)
{
	(void)opt;
	cgm_emit c = cgm_begin(b, y);
	return LLVMBuildFMul(b, dy, LLVMBuildFMul(b, y, LLVMBuildFSub(b, kf(&c, 1.0f), y, ""), ""), "");
}

/* tanh:  from y: dy * (1 - y^2) */
LLVMValueRef cgm_tanh_act(LLVMBuilderRef b, LLVMValueRef x, double opt)
{
	(void)opt;
	return cgm_tanh(b, x);
}

LLVMValueRef cgm_dtanh(LLVMBuilderRef b, LLVMValueRef y, LLVMValueRef dy, double opt)
{
	(void)opt;
	cgm_emit c = cgm_begin(b, y);
	return LLVMBuildFMul(b, dy, LLVMBuildFSub(b, kf(&c, 1.0f), LLVMBuildFMul(b, y, y, ""), ""), "");
}

/* ---- erf, erfc and the normal distribution function ----
 *   erf z  = z * ERF_P(z^2) for |z| < 1 (relative error 7e-8 after rounding
 *            the coefficients to float);
 *   erfc z = e^(-z^2) * ERFC_P(t) / (z + 2), t = (z - 2)/(z + 2), for z in
 *            [1, 10] (relative 2.2e-8), e^(-z^2) taken as e^(-zh^2) e^(-d)
 *            with zh z's top 12 bits (zh^2 exact) and d = (z - zh)(z + zh),
 *            so that the rounding of z^2 is not magnified by the exponential.
 * The coefficients were fitted for this file (Chebyshev fits with mpmath,
 * then rounded to float and re-measured). */
static const float ERF_P[] = {
	1.128379107e+00f, -3.761262596e-01f, 1.128359437e-01f, -2.685421146e-02f,
	5.189087242e-03f, -8.016864303e-04f, 7.875874871e-05f,
};
static const float ERFC_P[] = {
	1.021582723e+00f, -6.871606708e-01f, 2.794720829e-01f, -3.644441813e-02f, -2.150854096e-02f,
	6.512654945e-03f, 3.039981239e-03f, -9.859090205e-04f, -3.427501942e-04f,
};
/* erfc(10.5) is below the smallest subnormal */
#define ERFC_CLAMP 10.5f

/* erfc z for z >= 1 (or NaN; smaller z are not used). */
static LLVMValueRef erfc_big(const cgm_emit *c, LLVMValueRef z)
{
	LLVMBuilderRef b = c->b;
	z = clamp_if(c, LLVMRealOGT, z, ERFC_CLAMP);
	LLVMValueRef q = LLVMBuildFDiv(b, kf(c, 1.0f), LLVMBuildFAdd(b, z, kf(c, 2.0f), ""), "");
	LLVMValueRef t = LLVMBuildFMul(b, LLVMBuildFSub(b, z, kf(c, 2.0f), ""), q, "");
	LLVMValueRef h = horner(c, t, ERFC_P, NELEMS(ERFC_P));
	LLVMValueRef zh = LLVMBuildBitCast(b, LLVMBuildAnd(b, LLVMBuildBitCast(b, z, c->ity, ""), ki(c, (int32_t)0xfffff000u), ""),
	                                   c->fty, "");
	LLVMValueRef d = LLVMBuildFMul(b, LLVMBuildFSub(b, z, zh, ""), LLVMBuildFAdd(b, z, zh, ""), "");
	LLVMValueRef e = LLVMBuildFMul(b, cgm_exp(b, LLVMBuildFNeg(b, LLVMBuildFMul(b, zh, zh, ""), "")),
	                               cgm_exp(b, LLVMBuildFNeg(b, d, "")), "");
	return LLVMBuildFMul(b, LLVMBuildFMul(b, e, h, ""), q, "erfc");
}

static LLVMValueRef erf_small(const cgm_emit *c, LLVMValueRef z)
{
	return LLVMBuildFMul(c->b, z, horner(c, LLVMBuildFMul(c->b, z, z, ""), ERF_P, NELEMS(ERF_P)), "");
}

LLVMValueRef cgm_erf(LLVMBuilderRef b, LLVMValueRef x)
{
	cgm_emit c = cgm_begin(b, x);
	LLVMValueRef ax = fabs_(&c, x);
	LLVMValueRef big = copysign_(&c, LLVMBuildFSub(b, kf(&c, 1.0f), erfc_big(&c, ax), ""), x);
	LLVMValueRef is_small = LLVMBuildFCmp(b, LLVMRealOLT, ax, kf(&c, 1.0f), "");
	return LLVMBuildSelect(b, is_small, erf_small(&c, x), big, "erf");
}

/* Phi(x) = (1 + erf(x/sqrt 2)) / 2, relative accuracy on both tails (the
 * left one is erfc(|z|)/2, not 1 - something). */
static LLVMValueRef normal_cdf(const cgm_emit *c, LLVMValueRef x)
{
	LLVMBuilderRef b = c->b;
	LLVMValueRef z = LLVMBuildFMul(b, x, kf(c, 0.70710678118654752f), "");
	LLVMValueRef az = fabs_(c, z);
	LLVMValueRef half = kf(c, 0.5f);
	LLVMValueRef small = mla(c, half, erf_small(c, z), half);
	LLVMValueRef tail = LLVMBuildFMul(b, half, erfc_big(c, az), "");
	LLVMValueRef big = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, z, kf(c, 0.0f), ""),
	                                   LLVMBuildFSub(b, kf(c, 1.0f), tail, ""), tail, "");
	return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, az, kf(c, 1.0f), ""), small, big, "Phi");
}

/* e^x - 1 for x <= 0 or NaN, relative error ~1e-7: near 0 the exp
 * polynomial without its leading 1 (no cancellation); below -0.3466
 * e^x - 1, which is then at most -0.29. */
static LLVMValueRef expm1_neg(const cgm_emit *c, LLVMValueRef x)
{
	LLVMBuilderRef b = c->b;
	LLVMValueRef near = mla(c, LLVMBuildFMul(b, x, x, ""), horner(c, x, EXP_P, NELEMS(EXP_P)), x);
	LLVMValueRef far = LLVMBuildFSub(b, cgm_exp(b, x), kf(c, 1.0f), "");
	return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, x, kf(c, -0.3466f), ""), near, far, "expm1");
}

/* x*s with s -> 0 as x -> -inf: -inf * 0 would be NaN, the limit is -0. */
static LLVMValueRef times_vanishing(const cgm_emit *c, LLVMValueRef x, LLVMValueRef s)
{
	return LLVMBuildFMul(c->b, clamp_if(c, LLVMRealOLT, x, -FLT_MAX), s, "");
}

/* leaky_relu(x) = x > 0 ? x : alpha x;  from y (alpha >= 0): y > 0 ? dy : alpha dy */
LLVMValueRef cgm_leaky_relu(LLVMBuilderRef b, LLVMValueRef x, double alpha)
{
	cgm_emit c = cgm_begin(b, x);
	LLVMValueRef pos = LLVMBuildFCmp(b, LLVMRealOGT, x, LLVMConstNull(c.fty), "");
	return LLVMBuildSelect(b, pos, x, LLVMBuildFMul(b, x, kf(&c, (float)alpha), ""), "leaky_relu");
}

LLVMValueRef cgm_dleaky_relu(LLVMBuilderRef b, LLVMValueRef y, LLVMValueRef dy, double alpha)
{
	cgm_emit c = cgm_begin(b, y);
	LLVMValueRef pos = LLVMBuildFCmp(b, LLVMRealOGT, y, LLVMConstNull(c.fty), "");
	return LLVMBuildSelect(b, pos, dy, LLVMBuildFMul(b, dy, kf(&c, (float)alpha), ""), "");
}

/* elu(x) = x > 0 ? x : alpha (e^x - 1);  from y (alpha >= 0):
 * y > 0 ? dy : dy (y + alpha), as alpha e^x = y + alpha */
LLVMValueRef cgm_elu(LLVMBuilderRef b, LLVMValueRef x, double alpha)
{
	cgm_emit c = cgm_begin(b, x);
	LLVMValueRef neg = LLVMBuildFMul(b, kf(&c, (float)alpha), expm1_neg(&c, clamp_if(&c, LLVMRealOGT, x, 0.0f)), "");
	LLVMValueRef pos = LLVMBuildFCmp(b, LLVMRealOGT, x, LLVMConstNull(c.fty), "");
	return LLVMBuildSelect(b, pos, x, neg, "elu");
}

LLVMValueRef cgm_delu(LLVMBuilderRef b, LLVMValueRef y, LLVMValueRef dy, double alpha)
{
	cgm_emit c = cgm_begin(b, y);
	LLVMValueRef pos = LLVMBuildFCmp(b, LLVMRealOGT, y, LLVMConstNull(c.fty), "");
	return LLVMBuildSelect(b, pos, dy, LLVMBuildFMul(b, dy, LLVMBuildFAdd(b, y, kf(&c, (float)alpha), ""), ""), "");
}

/* silu(x) = x sigmoid(x);  from x: dy s (1 + x (1 - s)), s = sigmoid(x) */
LLVMValueRef cgm_silu(LLVMBuilderRef b, LLVMValueRef x, double opt)
{
	(void)opt;
	cgm_emit c = cgm_begin(b, x);
	return times_vanishing(&c, x, cgm_sigmoid(b, x));
}

LLVMValueRef cgm_dsilu(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef dy, double opt)
{
	(void)opt;
	cgm_emit c = cgm_begin(b, x);
	/* beyond +-200 the derivative is exactly 0 or 1; the clamp keeps
	 * inf * 0 out */
	x = clamp_if(&c, LLVMRealOLT, clamp_if(&c, LLVMRealOGT, x, 200.0f), -200.0f);
	LLVMValueRef s = cgm_sigmoid(b, x);
	LLVMValueRef d = LLVMBuildFMul(b, s, mla(&c, x, LLVMBuildFSub(b, kf(&c, 1.0f), s, ""), kf(&c, 1.0f)), "");
	return LLVMBuildFMul(b, dy, d, "");
}

/* gelu(x) = x Phi(x) (approximate: false), or the tanh approximation
 * x (1 + tanh(k0 (x + k1 x^3)))/2 = x sigmoid(2 k0 (x + k1 x^3)), written
 * with sigmoid so that the left tail keeps its relative accuracy.
 * From x: Phi(x) + x phi(x), resp. s + x s (1 - s) 2 k0 (1 + 3 k1 x^2). */
#define GELU_K0 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_K1 0.044715
LLVMValueRef cgm_gelu(LLVMBuilderRef b, LLVMValueRef x, double approximate)
{
	cgm_emit c = cgm_begin(b, x);
	if (approximate == 0)
		return times_vanishing(&c, x, normal_cdf(&c, x));
	LLVMValueRef x2 = LLVMBuildFMul(b, x, x, "");
	LLVMValueRef v = LLVMBuildFMul(b, x, mla(&c, x2, kf(&c, (float)(2 * GELU_K0 * GELU_K1)), kf(&c, (float)(2 * GELU_K0))), "");
	return times_vanishing(&c, x, cgm_sigmoid(b, v));
}

LLVMValueRef cgm_dgelu(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef dy, double approximate)
{
	cgm_emit c = cgm_begin(b, x);
	/* beyond +-50 the derivative is exactly 0 or 1 */
	x = clamp_if(&c, LLVMRealOLT, clamp_if(&c, LLVMRealOGT, x, 50.0f), -50.0f);
	LLVMValueRef x2 = LLVMBuildFMul(b, x, x, "");
	LLVMValueRef d;
	if (approximate == 0) {
		LLVMValueRef pdf = LLVMBuildFMul(b, kf(&c, 0.39894228040143268f),
		                                 cgm_exp(b, LLVMBuildFMul(b, x2, kf(&c, -0.5f), "")), "");
		d = mla(&c, x, pdf, normal_cdf(&c, x));
	} else {
		LLVMValueRef v = LLVMBuildFMul(b, x, mla(&c, x2, kf(&c, (float)(2 * GELU_K0 * GELU_K1)), kf(&c, (float)(2 * GELU_K0))), "");
		LLVMValueRef s = cgm_sigmoid(b, v), sm = cgm_sigmoid(b, LLVMBuildFNeg(b, v, ""));
		LLVMValueRef dv = mla(&c, x2, kf(&c, (float)(6 * GELU_K0 * GELU_K1)), kf(&c, (float)(2 * GELU_K0)));
		d = mla(&c, LLVMBuildFMul(b, x, LLVMBuildFMul(b, s, sm, ""), ""), dv, s);
	}
	return LLVMBuildFMul(b, dy, d, "");
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|), log1p(u) =
 * log(w) u / (w - 1) with w = 1 + u (exact for the rounded w, so no
 * relative error is lost for small u).  From y: dy (1 - e^-y) = dy sigmoid(x). */
LLVMValueRef cgm_softplus(LLVMBuilderRef b, LLVMValueRef x, double opt)
{
	(void)opt;
	cgm_emit c = cgm_begin(b, x);
	LLVMValueRef u = cgm_exp(b, LLVMBuildFNeg(b, fabs_(&c, x), ""));
	LLVMValueRef w = LLVMBuildFAdd(b, u, kf(&c, 1.0f), "");
	LLVMValueRef l = LLVMBuildFMul(b, cgm_log(b, w), LLVMBuildFDiv(b, u, LLVMBuildFSub(b, w, kf(&c, 1.0f), ""), ""), "");
	l = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOEQ, w, kf(&c, 1.0f), ""), u, l, "");
	LLVMValueRef pos = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, x, kf(&c, 0.0f), ""), x, kf(&c, 0.0f), "");
	return LLVMBuildFAdd(b, pos, l, "softplus");
}

LLVMValueRef cgm_dsoftplus(LLVMBuilderRef b, LLVMValueRef y, LLVMValueRef dy, double opt)
{
	(void)opt;
	cgm_emit c = cgm_begin(b, y);
	LLVMValueRef s = LLVMBuildFNeg(b, expm1_neg(&c, LLVMBuildFNeg(b, y, "")), "");
	return LLVMBuildFMul(b, dy, s, "");
}
