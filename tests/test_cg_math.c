/*
 * test_cg_math.c - the inline exp/log/tanh/sigmoid of cg_math.c, measured
 * the way the generated code will run them: the IR is built into kernels
 * `void k(const float *in, float *out, i64 n)` at several vector widths,
 * verified, optimised with default<O2> for the host, JIT-compiled with
 * MCJIT, and run over ~2M inputs (a dense sweep of the interesting range,
 * a stride through every float bit pattern, and special values).  Results
 * are compared with double-precision libm.
 *
 * Each kernel is built twice: for the host CPU (AVX-512 and FMA here) and
 * for baseline x86-64 (SSE2, no FMA), because llvm.fmuladd lowers to
 * different instructions on the two.
 *
 * The JIT helper (jit_*) takes its target machine from compiler/target.c,
 * like nnc itself.
 */
#include "cg_math.h"
#include "act_ref.h"
#include "target.h"

#include <criterion/criterion.h>
#include <float.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/ExecutionEngine.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tiny JIT: module -> verify -> O2 for the host -> MCJIT ---------- */

typedef struct jit {
	LLVMContextRef ctx;
	LLVMModuleRef mod; /* owned by ee once jit_compile() has run */
	LLVMBuilderRef b;
	LLVMTargetMachineRef tm; /* host triple, CPU and features */
	LLVMExecutionEngineRef ee;
	char *cpu, *features;
} jit;

static jit jit_new(const char *name)
{
	static int initialised;
	if (!initialised) {
		LLVMLinkInMCJIT();
		cr_assert(!LLVMInitializeNativeTarget(), "no native target");
		cr_assert(!LLVMInitializeNativeAsmPrinter(), "no native asm printer");
		initialised = 1;
	}
	jit j = {0};
	j.ctx = LLVMContextCreate();
	j.mod = LLVMModuleCreateWithNameInContext(name, j.ctx);
	j.b = LLVMCreateBuilderInContext(j.ctx);
	/* nnc's own machine for this host (target.c), as nnc_lower and
	 * nnc_emit use it */
	j.tm = nnc_target_machine(NULL, 2);
	j.cpu = LLVMGetTargetMachineCPU(j.tm);
	j.features = LLVMGetTargetMachineFeatureString(j.tm);
	char *triple = LLVMGetTargetMachineTriple(j.tm);
	LLVMSetTarget(j.mod, triple);
	LLVMTargetDataRef td = LLVMCreateTargetDataLayout(j.tm);
	LLVMSetModuleDataLayout(j.mod, td);
	LLVMDisposeTargetData(td);
	LLVMDisposeMessage(triple);
	return j;
}

/* Compile fn for `cpu` instead of the host (the default). */
static void jit_set_cpu(LLVMValueRef fn, const char *cpu, const char *features)
{
	LLVMAddTargetDependentFunctionAttr(fn, "target-cpu", cpu);
	LLVMAddTargetDependentFunctionAttr(fn, "target-features", features);
}

static void jit_verify(jit *j, const char *when)
{
	char *msg = NULL;
	if (LLVMVerifyModule(j->mod, LLVMReturnStatusAction, &msg)) {
		char *ir = LLVMPrintModuleToString(j->mod);
		cr_log_error("%s", ir);
		cr_assert_fail("module invalid %s: %s", when, msg);
	}
	LLVMDisposeMessage(msg);
}

/* Verifies and runs default<O2>.  Functions without a target-cpu get the
 * host's.  Auto-vectorisation is off so each kernel keeps the width its IR
 * was written with. */
static void jit_optimize(jit *j)
{
	jit_verify(j, "before optimisation");
	for (LLVMValueRef fn = LLVMGetFirstFunction(j->mod); fn; fn = LLVMGetNextFunction(fn))
		if (LLVMCountBasicBlocks(fn) &&
		    !LLVMGetStringAttributeAtIndex(fn, LLVMAttributeFunctionIndex, "target-cpu", 10))
			jit_set_cpu(fn, j->cpu, j->features);
	LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
	LLVMPassBuilderOptionsSetLoopVectorization(opts, 0);
	LLVMPassBuilderOptionsSetSLPVectorization(opts, 0);
	LLVMErrorRef e = LLVMRunPasses(j->mod, "default<O2>", j->tm, opts);
	LLVMDisposePassBuilderOptions(opts);
	if (e) {
		char *msg = LLVMGetErrorMessage(e);
		cr_assert_fail("LLVMRunPasses: %s", msg);
	}
	jit_verify(j, "after optimisation");
}

/* jit_optimize, then machine code.  The module belongs to the JIT after. */
static void jit_compile(jit *j)
{
	jit_optimize(j);
	struct LLVMMCJITCompilerOptions o;
	LLVMInitializeMCJITCompilerOptions(&o, sizeof o);
	o.OptLevel = 2;
	char *err = NULL;
	cr_assert(!LLVMCreateMCJITCompilerForModule(&j->ee, j->mod, &o, sizeof o, &err), "MCJIT: %s", err);
}

static uint64_t jit_sym(jit *j, const char *name)
{
	uint64_t a = LLVMGetFunctionAddress(j->ee, name);
	cr_assert(a, "JIT has no symbol %s", name);
	return a;
}

/* Host assembly of the (optimised) module, malloc'd.  Not after jit_compile. */
static char *jit_asm(jit *j)
{
	char *err = NULL;
	LLVMMemoryBufferRef buf;
	LLVMSetTargetMachineAsmVerbosity(j->tm, 0);
	cr_assert(!LLVMTargetMachineEmitToMemoryBuffer(j->tm, j->mod, LLVMAssemblyFile, &err, &buf), "%s", err);
	size_t n = LLVMGetBufferSize(buf);
	char *s = malloc(n + 1);
	memcpy(s, LLVMGetBufferStart(buf), n);
	s[n] = 0;
	LLVMDisposeMemoryBuffer(buf);
	return s;
}

static void jit_free(jit *j)
{
	if (j->ee)
		LLVMDisposeExecutionEngine(j->ee);
	else
		LLVMDisposeModule(j->mod);
	LLVMDisposeBuilder(j->b);
	LLVMDisposeTargetMachine(j->tm);
	LLVMContextDispose(j->ctx);
	LLVMDisposeMessage(j->cpu);
	LLVMDisposeMessage(j->features);
}

/* ---- kernels --------------------------------------------------------- */

typedef LLVMValueRef emit_fn(LLVMBuilderRef, LLVMValueRef);
typedef void kernel_fn(const float *in, float *out, int64_t n);

/* void name(const float *in, float *out, i64 n): out[i] = f(in[i]), `width`
 * lanes per iteration (a plain float when width == 1); n % width == 0. */
static LLVMValueRef build_map_kernel(jit *j, const char *name, unsigned width, emit_fn *f)
{
	LLVMContextRef c = j->ctx;
	LLVMBuilderRef b = j->b;
	LLVMTypeRef f32 = LLVMFloatTypeInContext(c), i64 = LLVMInt64TypeInContext(c);
	LLVMTypeRef ptr = LLVMPointerTypeInContext(c, 0);
	LLVMTypeRef vty = width == 1 ? f32 : LLVMVectorType(f32, width);
	LLVMTypeRef params[] = {ptr, ptr, i64};
	LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(c), params, 3, 0);
	LLVMValueRef fn = LLVMAddFunction(j->mod, name, fty);
	LLVMValueRef in = LLVMGetParam(fn, 0), out = LLVMGetParam(fn, 1), n = LLVMGetParam(fn, 2);
	LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c, fn, "entry");
	LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(c, fn, "loop");
	LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c, fn, "done");

	LLVMPositionBuilderAtEnd(b, entry);
	LLVMValueRef zero = LLVMConstInt(i64, 0, 0);
	LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSGT, n, zero, ""), loop, done);

	LLVMPositionBuilderAtEnd(b, loop);
	LLVMValueRef i = LLVMBuildPhi(b, i64, "i");
	LLVMValueRef src = LLVMBuildGEP2(b, f32, in, &i, 1, "");
	LLVMValueRef x = LLVMBuildLoad2(b, vty, src, "x");
	LLVMSetAlignment(x, 4);
	LLVMValueRef y = f(b, x);
	cr_assert(LLVMTypeOf(y) == vty, "%s: result type differs from operand type", name);
	LLVMValueRef dst = LLVMBuildGEP2(b, f32, out, &i, 1, "");
	LLVMSetAlignment(LLVMBuildStore(b, y, dst), 4);
	LLVMValueRef next = LLVMBuildAdd(b, i, LLVMConstInt(i64, width, 0), "");
	LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, next, n, ""), loop, done);
	LLVMValueRef inc_v[] = {zero, next};
	LLVMBasicBlockRef inc_b[] = {entry, loop};
	LLVMAddIncoming(i, inc_v, inc_b, 2);

	LLVMPositionBuilderAtEnd(b, done);
	LLVMBuildRetVoid(b);
	return fn;
}

/* Every kernel is built for these widths and CPUs.  NULL cpu = the host. */
static const unsigned widths[] = {1, 4, 16};
static const struct {
	const char *cpu, *features;
} cpus[] = {
	{NULL, NULL},
#if defined(__x86_64__)
	{"x86-64", ""},
#endif
};
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_WIDTH 16

static void kernel_name(char *buf, size_t n, const char *fname, unsigned w, size_t cpu)
{
	snprintf(buf, n, "k_%s_w%u_%s", fname, w, cpus[cpu].cpu ? cpus[cpu].cpu : "host");
}

static void build_all_variants(jit *j, const char *fname, emit_fn *f)
{
	char name[64];
	for (size_t c = 0; c < NELEMS(cpus); c++)
		for (size_t w = 0; w < NELEMS(widths); w++) {
			kernel_name(name, sizeof name, fname, widths[w], c);
			LLVMValueRef fn = build_map_kernel(j, name, widths[w], f);
			if (cpus[c].cpu)
				jit_set_cpu(fn, cpus[c].cpu, cpus[c].features);
		}
}

/* ---- what each function must satisfy --------------------------------- */

/* A judge scores y = f(x) against the double reference r: <= 1 passes.  It
 * stores the error measures reported for the function in m[] (left NAN when
 * one does not apply to this x). */
typedef double judge_fn(float x, float y, double r, double m[2]);

static double judge_exp(float x, float y, double r, double m[2])
{
	if (isnan(x))
		return isnan(y) ? 0 : INFINITY;
	if (x < -104.0f)
		return y == 0.0f && !signbit(y) ? 0 : INFINITY;
	if (isinf(y))
		return y > 0 && r >= FLT_MAX * (1 - 5e-7) ? 0 : INFINITY;
	double e = fabs(y - r);
	if (r < 0x1p-126) { /* subnormal result: within one subnormal step */
		m[1] = e / 0x1p-149;
		return m[1];
	}
	if (x >= -87.0f && x <= 88.0f)
		m[0] = e / r;
	return e / r / 5e-7;
}

static double judge_log(float x, float y, double r, double m[2])
{
	if (isnan(x) || x < 0)
		return isnan(y) ? 0 : INFINITY;
	if (x == 0)
		return y == -INFINITY ? 0 : INFINITY;
	if (isinf(x))
		return y == INFINITY ? 0 : INFINITY;
	m[0] = fabs(y - r) / fmax(1, fabs(r));
	return m[0] / 2e-7;
}

static double judge_tanh(float x, float y, double r, double m[2])
{
	if (isnan(x))
		return isnan(y) ? 0 : INFINITY;
	if (isnan(y) || signbit(y) != signbit(x))
		return INFINITY;
	if (fabsf(x) >= 9.1f)
		return fabsf(y) == 1.0f ? 0 : INFINITY;
	m[0] = fabs(y - r);
	double score = m[0] / 5e-7;
	if (fabsf(x) <= 1.0f && r != 0) {
		m[1] = m[0] / fabs(r);
		score = fmax(score, m[1] / 1e-6);
	}
	return score;
}

static double judge_sigmoid(float x, float y, double r, double m[2])
{
	if (isnan(x))
		return isnan(y) ? 0 : INFINITY;
	if (isnan(y) || y < 0 || y > 1)
		return INFINITY;
	m[0] = fabs(y - r);
	if (x >= -87.0f && x <= 0)
		m[1] = m[0] / r; /* reported, not required */
	return m[0] / 5e-7;
}

static double sigmoid_ref(double x)
{
	return 1 / (1 + exp(-x));
}

static double judge_erf(float x, float y, double r, double m[2])
{
	if (isnan(x))
		return isnan(y) ? 0 : INFINITY;
	if (isnan(y) || fabsf(y) > 1 || (y != 0 && signbit(y) != signbit(x)))
		return INFINITY;
	if (fabsf(x) >= 3.92f)
		return fabsf(y) == 1.0f ? 0 : INFINITY;
	m[0] = r != 0 ? fabs(y - r) / fabs(r) : 0;
	/* x * 1.128 rounded into subnormals cannot be relatively accurate */
	return fabs(y - r) / (2e-7 * fabs(r) + 0x1p-148);
}

typedef struct math_case {
	const char *name;
	emit_fn *emit;
	double (*ref)(double);
	judge_fn *judge;
	float lo, hi; /* the dense part of the sweep */
	const char *measure[2];
} math_case;

static const math_case cases[] = {
	{"exp", cgm_exp, exp, judge_exp, -110.0f, 90.0f,
	 {"rel err on [-87,88] (< 5e-7)", "subnormal err in units of 2^-149 (< 1)"}},
	{"log", cgm_log, log, judge_log, 0.0f, 4.0f,
	 {"abs err / max(1,|log x|) (< 2e-7)", NULL}},
	{"tanh", cgm_tanh, tanh, judge_tanh, -12.0f, 12.0f,
	 {"abs err (< 5e-7)", "rel err for |x| <= 1 (< 1e-6)"}},
	{"sigmoid", cgm_sigmoid, sigmoid_ref, judge_sigmoid, -120.0f, 120.0f,
	 {"abs err (< 5e-7)", "rel err on [-87,0] (not required)"}},
	{"erf", cgm_erf, erf, judge_erf, -5.0f, 5.0f, {"rel err (< 2e-7)", NULL}},
};

static const math_case *find_case(const char *name)
{
	for (size_t i = 0; i < NELEMS(cases); i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	cr_assert_fail("no case %s", name);
	return NULL;
}

/* ---- inputs ---------------------------------------------------------- */

typedef struct sweep {
	float *x;
	double *ref;
	size_t n;
} sweep;

static float from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

#define DENSE_POINTS 1000000
#define BITS_STRIDE 4093 /* ~1M patterns across all 2^32 floats */

/* Dense [lo, hi], a stride through all bit patterns (every sign, exponent,
 * subnormals, infinities, NaNs), and hand-picked values; padded with zeros
 * to a multiple of MAX_WIDTH.  ref[] is the double-precision answer. */
static sweep make_sweep(const math_case *mc)
{
	static const float special[] = {
		0.0f, -0.0f, 0x1p-149f, -0x1p-149f, 0x1p-126f, -0x1p-126f, 1e-30f, -1e-30f,
		1e-8f, -1e-8f, 1e-4f, -1e-4f, 0.5f, -0.5f, 0.625f, -0.625f, 1.0f, -1.0f, 2.0f,
		9.0f, -9.0f, 9.1f, -9.1f, 20.0f, -20.0f, 87.0f, -87.0f, 88.0f, 88.5f, 88.72f,
		88.73f, -87.5f, -100.0f, -103.9f, -104.0f, -104.5f, 1e6f, -1e6f, FLT_MAX,
		-FLT_MAX, INFINITY, -INFINITY, NAN, -NAN,
	};
	size_t cap = DENSE_POINTS + (1ull << 32) / BITS_STRIDE + NELEMS(special) + 2 * MAX_WIDTH;
	sweep s = {.x = malloc(cap * sizeof(float)), .ref = malloc(cap * sizeof(double))};
	cr_assert(s.x && s.ref);
	for (size_t i = 0; i < DENSE_POINTS; i++)
		s.x[s.n++] = mc->lo + (mc->hi - mc->lo) * (float)((double)i / (DENSE_POINTS - 1));
	for (uint64_t u = 0; u < (1ull << 32); u += BITS_STRIDE)
		s.x[s.n++] = from_bits((uint32_t)u);
	for (size_t i = 0; i < NELEMS(special); i++)
		s.x[s.n++] = special[i];
	while (s.n % MAX_WIDTH)
		s.x[s.n++] = 0.0f;
	for (size_t i = 0; i < s.n; i++)
		s.ref[i] = mc->ref((double)s.x[i]);
	return s;
}

static void sweep_free(sweep *s)
{
	free(s->x);
	free(s->ref);
}

/* ---- checking -------------------------------------------------------- */

typedef struct verdict {
	size_t fails;
	double worst_score;
	float worst_x, worst_y;
	double max_m[2];
	float max_m_x[2];
} verdict;

static verdict judge_all(const math_case *mc, const sweep *s, const float *y)
{
	verdict v = {.worst_score = -1};
	for (size_t i = 0; i < s->n; i++) {
		double m[2] = {NAN, NAN};
		double score = mc->judge(s->x[i], y[i], s->ref[i], m);
		if (!(score <= 1))
			v.fails++;
		if (!(score <= v.worst_score)) {
			v.worst_score = score;
			v.worst_x = s->x[i];
			v.worst_y = y[i];
		}
		for (int k = 0; k < 2; k++)
			if (m[k] > v.max_m[k]) {
				v.max_m[k] = m[k];
				v.max_m_x[k] = s->x[i];
			}
	}
	return v;
}

/* Builds, compiles and sweeps every variant of one function. */
static void check_function(const char *fname)
{
	const math_case *mc = find_case(fname);
	sweep s = make_sweep(mc);
	float *y = malloc(s.n * sizeof(float));
	cr_assert(y);
	jit j = jit_new(fname);
	build_all_variants(&j, fname, mc->emit);
	jit_compile(&j);
	char name[64];
	for (size_t c = 0; c < NELEMS(cpus); c++)
		for (size_t w = 0; w < NELEMS(widths); w++) {
			kernel_name(name, sizeof name, fname, widths[w], c);
			kernel_fn *k = (kernel_fn *)(uintptr_t)jit_sym(&j, name);
			memset(y, 0xff, s.n * sizeof(float)); /* NaN: a skipped lane fails */
			k(s.x, y, (int64_t)s.n);
			verdict v = judge_all(mc, &s, y);
			for (int m = 0; m < 2; m++)
				if (mc->measure[m])
					cr_log_info("cgm_%s %-16s %-40s max %.3g at x=%a", fname, name + 2 + strlen(fname),
					            mc->measure[m], v.max_m[m], (double)v.max_m_x[m]);
			cr_expect(v.fails == 0,
			          "%s: %zu of %zu inputs out of bounds; worst: x=%a (%.9g) gave %.9g, want %.9g",
			          name, v.fails, s.n, (double)v.worst_x, (double)v.worst_x, (double)v.worst_y,
			          mc->ref((double)v.worst_x));
		}
	jit_free(&j);
	free(y);
	sweep_free(&s);
}

Test(cg_math, exp) { check_function("exp"); }
Test(cg_math, log) { check_function("log"); }
Test(cg_math, tanh) { check_function("tanh"); }
Test(cg_math, sigmoid) { check_function("sigmoid"); }
Test(cg_math, erf) { check_function("erf"); }

/* ---- activations (acts.def) against act_ref.h ------------------------
 * Each activation and its derivative emitter, with each option value of
 * the rows below, built into map kernels of every width for both CPUs and
 * swept like the functions above.  The derivative kernel computes
 * dact(v, 1) with v = x or v = act(x), as the table's `from` says, so it is
 * compared with f'(x) as the compiled backward pass uses it. */

typedef struct act_emit {
	const char *name;
	const char *from; /* "ACT_FROM_X" or "ACT_FROM_Y" */
	cgm_act_fn *act;
	cgm_dact_fn *dact;
} act_emit;

static const act_emit act_emits[] = {
#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) {name, #from, act, dact},
#include "acts.def"
#undef ACT
};

/* Tolerances: |y - r| <= ATOL + RTOL |r|. */
#define ACT_RTOL 1e-6
#define ACT_ATOL 1e-7
#define DACT_RTOL 2e-6
#define DACT_ATOL 2e-7

typedef struct act_case {
	const char *name;
	double opt;
} act_case;

/* every activation; options at their default and another value */
static const act_case act_cases[] = {
	{"relu", 0},         {"sigmoid", 0},   {"tanh", 0},     {"leaky_relu", 0.01}, {"leaky_relu", 0.3},
	{"elu", 1},          {"elu", 0.5},     {"softplus", 0}, {"silu", 0},          {"gelu", 1},
	{"gelu", 0},
};

static const act_emit *cur_act;
static double cur_opt;

static LLVMValueRef emit_cur_act(LLVMBuilderRef b, LLVMValueRef x) { return cur_act->act(b, x, cur_opt); }

static LLVMValueRef emit_cur_dact(LLVMBuilderRef b, LLVMValueRef x)
{
	LLVMTypeRef t = LLVMTypeOf(x);
	LLVMValueRef one = LLVMConstReal(LLVMFloatTypeInContext(LLVMGetTypeContext(t)), 1.0);
	if (LLVMGetTypeKind(t) == LLVMVectorTypeKind) {
		LLVMValueRef v[MAX_WIDTH];
		for (unsigned i = 0; i < LLVMGetVectorSize(t); i++)
			v[i] = one;
		one = LLVMConstVector(v, LLVMGetVectorSize(t));
	}
	LLVMValueRef v = strcmp(cur_act->from, "ACT_FROM_X") ? cur_act->act(b, x, cur_opt) : x;
	return cur_act->dact(b, v, one, cur_opt);
}

/* Scores y against r = f(x): <= 1 passes.  NaN only from NaN, and a NaN
 * input gives NaN (except relu, which has always mapped NaN to 0, and the
 * derivatives, which a NaN forward value makes moot); where the double
 * reference itself fails (NaN at +-inf), only a non-NaN y is asked. */
static double judge_act(float x, float y, double r, double rtol, double atol, double *rel, bool nan_in_nan_out)
{
	if (isnan(x))
		return isnan(y) || !nan_in_nan_out ? 0 : INFINITY;
	if (isnan(y))
		return INFINITY;
	if (isnan(r))
		return 0;
	if (isinf(r))
		return y == r ? 0 : INFINITY;
	if (fabs(r) > 1e-30)
		*rel = fabs(y - r) / fabs(r);
	return fabs(y - r) / (atol + rtol * fabs(r));
}

static void check_activation(const act_case *ac)
{
	const act_emit *ae = NULL;
	for (size_t i = 0; i < NELEMS(act_emits); i++)
		if (!strcmp(act_emits[i].name, ac->name))
			ae = &act_emits[i];
	const act_ref *ar = act_ref_find(ac->name);
	cr_assert(ae && ar, "%s: not in acts.def or act_ref.h", ac->name);
	/* the sweep of the exp case (x in [-110, 90], all bit patterns, specials) */
	sweep s = make_sweep(find_case("exp"));
	double *rf = malloc(s.n * sizeof(double)), *rd = malloc(s.n * sizeof(double));
	float *y = malloc(s.n * sizeof(float));
	cr_assert(rf && rd && y);
	for (size_t i = 0; i < s.n; i++) {
		rf[i] = ar->f(s.x[i], ac->opt);
		rd[i] = ar->df(s.x[i], ac->opt);
	}
	jit j = jit_new(ac->name);
	cur_act = ae;
	cur_opt = ac->opt;
	char fname[2][64];
	snprintf(fname[0], sizeof fname[0], "%s_%g", ac->name, ac->opt);
	snprintf(fname[1], sizeof fname[1], "d%s_%g", ac->name, ac->opt);
	build_all_variants(&j, fname[0], emit_cur_act);
	build_all_variants(&j, fname[1], emit_cur_dact);
	jit_compile(&j);
	char name[96];
	for (int d = 0; d < 2; d++)
		for (size_t c = 0; c < NELEMS(cpus); c++)
			for (size_t w = 0; w < NELEMS(widths); w++) {
				kernel_name(name, sizeof name, fname[d], widths[w], c);
				kernel_fn *k = (kernel_fn *)(uintptr_t)jit_sym(&j, name);
				memset(y, 0xff, s.n * sizeof(float));
				k(s.x, y, (int64_t)s.n);
				const double *r = d ? rd : rf;
				size_t fails = 0, worst = 0;
				double wscore = -1, maxrel = 0;
				for (size_t i = 0; i < s.n; i++) {
					double rel = 0;
					double sc = judge_act(s.x[i], y[i], r[i], d ? DACT_RTOL : ACT_RTOL,
							      d ? DACT_ATOL : ACT_ATOL, &rel, !d && strcmp(ac->name, "relu"));
					fails += !(sc <= 1);
					if (!(sc <= wscore))
						wscore = sc, worst = i;
					if (fabs(s.x[i]) <= 20 && rel > maxrel)
						maxrel = rel;
				}
				cr_log_info("%-28s max rel err on [-20, 20] %.3g", name, maxrel);
				cr_expect(fails == 0, "%s: %zu of %zu out of bounds; worst x=%a (%.9g) gave %.9g, want %.9g",
					  name, fails, s.n, (double)s.x[worst], (double)s.x[worst], (double)y[worst],
					  r[worst]);
			}
	jit_free(&j);
	free(rf);
	free(rd);
	free(y);
	sweep_free(&s);
}

Test(cg_math, activations_against_c_reference)
{
	for (size_t i = 0; i < NELEMS(act_cases); i++)
		check_activation(&act_cases[i]);
}

/* Every row of acts.def has a case above, a C reference and a network in
 * test_codegen.c / test_conv.c (which look it up by name). */
Test(cg_math, every_activation_has_a_case)
{
	for (size_t i = 0; i < NELEMS(act_emits); i++) {
		bool found = false;
		for (size_t k = 0; k < NELEMS(act_cases); k++)
			found |= !strcmp(act_cases[k].name, act_emits[i].name);
		cr_expect(found && act_ref_find(act_emits[i].name), "%s has no case or no C reference",
			  act_emits[i].name);
	}
}

/* The judges themselves: the correctly rounded answer passes everywhere,
 * and one off by ~2e-6 relative (a slightly wrong coefficient) is caught
 * on most inputs. */
Test(cg_math, judges_accept_exact_and_reject_perturbed)
{
	for (size_t i = 0; i < NELEMS(cases); i++) {
		const math_case *mc = &cases[i];
		sweep s = make_sweep(mc);
		float *y = malloc(s.n * sizeof(float));
		cr_assert(y);
		for (size_t k = 0; k < s.n; k++)
			y[k] = (float)s.ref[k];
		verdict good = judge_all(mc, &s, y);
		cr_expect(good.fails == 0, "%s: judge rejects libm at x=%a", mc->name, (double)good.worst_x);
		size_t finite = 0;
		for (size_t k = 0; k < s.n; k++)
			if (isfinite(s.ref[k]) && s.ref[k] != 0) {
				y[k] = (float)(s.ref[k] * (1 + 2e-6) + 1e-6);
				finite++;
			}
		verdict bad = judge_all(mc, &s, y);
		cr_expect(bad.fails > finite / 2, "%s: judge let a perturbed result through (%zu of %zu caught)",
		          mc->name, bad.fails, finite);
		free(y);
		sweep_free(&s);
	}
}

/* Nothing may lower to a call, in the functions or the activations: not in
 * the optimised IR (only the intrinsics cg_math.c uses), nor in the machine
 * code of the host or baseline x86-64 (where llvm.fma or llvm.rint would
 * become fmaf/rintf calls). */
Test(cg_math, no_calls_in_ir_or_machine_code)
{
	static const char *const allowed[] = {"llvm.fmuladd.", "llvm.fabs.", "llvm.copysign."};
	jit j = jit_new("cgm_asm");
	for (size_t i = 0; i < NELEMS(cases); i++)
		build_all_variants(&j, cases[i].name, cases[i].emit);
	for (size_t i = 0; i < NELEMS(act_cases); i++) { /* and every activation and derivative */
		for (size_t k = 0; k < NELEMS(act_emits); k++)
			if (!strcmp(act_emits[k].name, act_cases[i].name))
				cur_act = &act_emits[k];
		cur_opt = act_cases[i].opt;
		char name[64];
		snprintf(name, sizeof name, "%s_%g", act_cases[i].name, act_cases[i].opt);
		build_all_variants(&j, name, emit_cur_act);
		snprintf(name, sizeof name, "d%s_%g", act_cases[i].name, act_cases[i].opt);
		build_all_variants(&j, name, emit_cur_dact);
	}
	for (LLVMValueRef fn = LLVMGetFirstFunction(j.mod); fn; fn = LLVMGetNextFunction(fn)) {
		if (LLVMCountBasicBlocks(fn))
			continue;
		size_t len;
		const char *name = LLVMGetValueName2(fn, &len);
		int ok = 0;
		for (size_t a = 0; a < NELEMS(allowed); a++)
			ok |= !strncmp(name, allowed[a], strlen(allowed[a]));
		cr_expect(ok, "emitted IR declares %s", name);
	}
	jit_optimize(&j);
	for (LLVMValueRef fn = LLVMGetFirstFunction(j.mod); fn; fn = LLVMGetNextFunction(fn)) {
		size_t len;
		const char *name = LLVMGetValueName2(fn, &len);
		cr_expect(LLVMCountBasicBlocks(fn) || LLVMGetIntrinsicID(fn), "optimised IR calls %s", name);
	}
	char *text = jit_asm(&j);
	static const char *const banned[] = {"\tcall", "\tjmp\t*", "expf", "logf",
	                                     "fmaf", "rintf", "roundevenf", "floorf"};
	for (size_t i = 0; i < NELEMS(banned); i++) {
		const char *hit = strstr(text, banned[i]);
		cr_expect(!hit, "machine code contains '%s': ...%.60s", banned[i], hit ? hit : "");
	}
	free(text);
	jit_free(&j);
}
