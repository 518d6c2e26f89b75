/*
 * cg_math.h - elementary functions emitted inline as LLVM IR.
 *
 * The kernels apply activations to millions of elements, 16 at a time in
 * AVX-512 registers; a call to libm per element would serialise them.  These
 * emitters instead write branch-free IR (arithmetic, compares + selects,
 * integer ops on the float bits, and intrinsics that lower to instructions:
 * llvm.fmuladd, llvm.fabs, llvm.copysign), so the result vectorises and never
 * calls out.
 *
 * Each takes a value of type float or <N x float> and returns the same type.
 * The builder must be positioned inside a function of the module (intrinsic
 * declarations are added to that module).  Accuracy is measured against a
 * double-precision libm by tests/test_cg_math.c.
 */
#ifndef NNC_CG_MATH_H
#define NNC_CG_MATH_H

#include <llvm-c/Core.h>

/* e^x.  Relative error < 5e-7 on [-87, 88]; correctly scaled subnormals
 * below that, exactly 0 below -103.98, +inf above 88.73; NaN -> NaN. */
LLVMValueRef cgm_exp(LLVMBuilderRef b, LLVMValueRef x);

/* Natural log.  x > 0 (subnormals included): absolute error
 * < 2e-7 * max(1, |log x|); log(+-0) = -inf; log(+inf) = +inf;
 * x < 0 or NaN -> NaN. */
LLVMValueRef cgm_log(LLVMBuilderRef b, LLVMValueRef x);

/* tanh x.  Absolute error < 5e-7 everywhere, relative < 1e-6 for |x| <= 1
 * (so tiny x comes back as x), the sign of x kept exactly (-0 -> -0),
 * exactly +-1 for |x| > 9.1; NaN -> NaN. */
LLVMValueRef cgm_tanh(LLVMBuilderRef b, LLVMValueRef x);

/* 1 / (1 + e^-x).  Absolute error < 5e-7; in [0, 1] for every non-NaN x,
 * 0 at -inf, 1 at +inf; NaN -> NaN. */
LLVMValueRef cgm_sigmoid(LLVMBuilderRef b, LLVMValueRef x);

/* erf x.  Relative error < 2e-7 (|x| < 1: an odd polynomial; beyond,
 * 1 - erfc |x| with erfc from exp(-x^2) times a polynomial), sign kept,
 * exactly +-1 for |x| > 3.9; NaN -> NaN. */
LLVMValueRef cgm_erf(LLVMBuilderRef b, LLVMValueRef x);

/* ---- activations: the emitters acts.def names ----
 * act:  y = f(x), with the row's option;
 * dact: dy * f'(x), from v = x or v = y as the row's `from` says.
 * Same types as above (float or <N x float>, dy like v). */
typedef LLVMValueRef cgm_act_fn(LLVMBuilderRef b, LLVMValueRef x, double opt);
typedef LLVMValueRef cgm_dact_fn(LLVMBuilderRef b, LLVMValueRef v, LLVMValueRef dy, double opt);

#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) cgm_act_fn act; cgm_dact_fn dact;
#include "acts.def"
#undef ACT

#endif
