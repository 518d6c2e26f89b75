/*
 * act_ref.h - double-precision C references of every activation of
 * compiler/acts.def, for the tests that check the generated code against
 * them (test_cg_math.c: the emitters; test_codegen.c and test_conv.c: whole
 * networks).  A new activation adds one row here.
 *
 * f(x, opt) is the activation, df(x, opt) its derivative, both in terms of
 * the input x whatever the compiled code keeps; `kink` says the derivative
 * jumps at 0 (so finite differences across 0 are skipped).
 */
#ifndef NNC_TEST_ACT_REF_H
#define NNC_TEST_ACT_REF_H

#include <math.h>
#include <stdbool.h>
#include <string.h>

typedef struct act_ref {
	const char *name;   /* the surface name */
	double (*f)(double x, double opt);
	double (*df)(double x, double opt);
	bool (*kink)(double opt);
} act_ref;

#define AR_PI 3.14159265358979323846

static inline double ar_sigmoid(double x) { return 1 / (1 + exp(-x)); }

static inline double ar_relu(double x, double o) { (void)o; return x > 0 ? x : 0; }
static inline double ar_drelu(double x, double o) { (void)o; return x > 0; }
static inline double ar_sig(double x, double o) { (void)o; return ar_sigmoid(x); }
static inline double ar_dsig(double x, double o) { (void)o; return ar_sigmoid(x) * (1 - ar_sigmoid(x)); }
static inline double ar_tanh(double x, double o) { (void)o; return tanh(x); }
static inline double ar_dtanh(double x, double o) { (void)o; return 1 - tanh(x) * tanh(x); }
static inline double ar_leaky(double x, double a) { return x > 0 ? x : a * x; }
static inline double ar_dleaky(double x, double a) { return x > 0 ? 1 : a; }
static inline double ar_elu(double x, double a) { return x > 0 ? x : a * expm1(x); }
static inline double ar_delu(double x, double a) { return x > 0 ? 1 : a * exp(x); }
static inline double ar_silu(double x, double o) { (void)o; return x * ar_sigmoid(x); }
static inline double ar_dsilu(double x, double o)
{
	(void)o;
	double s = ar_sigmoid(x);
	return s * (1 + x * (1 - s));
}
/* gelu: opt != 0 is the tanh approximation, 0 the exact x Phi(x) */
static inline double ar_gelu(double x, double approx)
{
	if (approx == 0)
		return 0.5 * x * erfc(-x / sqrt(2.0));
	/* (1 + tanh u)/2 = sigmoid(2u): the same function, without the
	 * cancellation that would make the left tail inaccurate even in double */
	double u = sqrt(2 / AR_PI) * (x + 0.044715 * x * x * x);
	return x * ar_sigmoid(2 * u);
}
static inline double ar_dgelu(double x, double approx)
{
	if (approx == 0)
		return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-x * x / 2) / sqrt(2 * AR_PI);
	/* (1 + t)/2 = s and (1 - t^2)/2 = 2 s (1 - s), s = sigmoid(2u) */
	double k = sqrt(2 / AR_PI), u = k * (x + 0.044715 * x * x * x);
	double s = ar_sigmoid(2 * u), sm = ar_sigmoid(-2 * u);
	return s + 2 * x * s * sm * k * (1 + 3 * 0.044715 * x * x);
}
static inline double ar_softplus(double x, double o) { (void)o; return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static inline double ar_dsoftplus(double x, double o) { (void)o; return ar_sigmoid(x); }

static inline bool ar_kink_always(double o) { (void)o; return true; }
static inline bool ar_kink_never(double o) { (void)o; return false; }
static inline bool ar_kink_elu(double a) { return a != 1; } /* alpha e^0 = 1: smooth */

static const act_ref act_refs[] = {
	{"relu", ar_relu, ar_drelu, ar_kink_always},
	{"sigmoid", ar_sig, ar_dsig, ar_kink_never},
	{"tanh", ar_tanh, ar_dtanh, ar_kink_never},
	{"leaky_relu", ar_leaky, ar_dleaky, ar_kink_always},
	{"elu", ar_elu, ar_delu, ar_kink_elu},
	{"softplus", ar_softplus, ar_dsoftplus, ar_kink_never},
	{"silu", ar_silu, ar_dsilu, ar_kink_never},
	{"gelu", ar_gelu, ar_dgelu, ar_kink_never},
};

static inline const act_ref *act_ref_find(const char *name)
{
	for (size_t i = 0; i < sizeof act_refs / sizeof act_refs[0]; i++)
		if (!strcmp(act_refs[i].name, name))
			return &act_refs[i];
	return NULL;
}

#endif
