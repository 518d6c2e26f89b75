/*
 * test_codegen.c - the code nnc generates, compiled and run in this process.
 *
 * Each program below goes through the same pipeline as compiler/main.c
 * (parse, sema, autodiff, inference tail, fuse unless unfused, plan, lower);
 * then, instead of nnc_emit, the module is verified, optimised with
 * nnc's -O2 pass pipeline for the host CPU and JIT-compiled with MCJIT, and the
 * `<model>_model` descriptor (runtime/nnrt.h) is run through nnrt_run() on
 * arrays allocated here.  The generated code calls nnrt_barrier(), which MCJIT
 * resolves from this executable (it is linked with -rdynamic).
 *
 * What is checked, as tables of networks:
 *   - forward: infer and eval_step against a plain double-precision C
 *     reference of each network, fused (-O3) and unfused (-O0, --no-fuse),
 *     and fused against unfused;
 *   - gradients: train_step with learning rate 0 against central differences
 *     of the eval_step loss, for every parameter entry, every op and loss;
 *   - optimizers: SGD, SGD with momentum and Adam against the update rule;
 *   - determinism: gradients bit-identical for 1, 2, 3, 4 and 8 threads (4 and
 *     8: more threads than chunks, a group of threads per chunk);
 *   - the IR after fusion (golden text) and the memory plan (no two live
 *     workspace tensors overlap);
 *   - semantic and shape errors with their exact text.
 * The checkers themselves are tested too: each is shown a corrupted input and
 * must reject it.  A new op or loss adds rows (a network and its reference),
 * not machinery.
 */
#include <criterion/criterion.h>
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
#include <unistd.h>

#include "backend.h"
#include "header.h"
#include "diag.h"
#include "ir.h"
#include "nnrt.h"
#include "util.h"
#include "act_ref.h"
#include "jit_harness.h"
#include "sh_harness.h"

/* Programs need a path for diagnostics and for relative data paths. */
#define SRC_PATH "/tmp/nnc_test_codegen.nn"
#define make_source(text) th_make_source(SRC_PATH, (text))
#define build_graph(text, fuse) th_build_graph(SRC_PATH, (text), (fuse))
/* test_codegen's "unfused" is nnc --no-fuse: fast kernels, optimised */
#define jit_graph(g, fuse) th_jit((g), false, true)
#define jit_free th_jit_free
#define state_new th_state_new
#define state_free th_state_free

/* A program text with `optimizer LINE` appended (programs below leave it out
 * so the optimizer tests can vary it). */
static const char *with_optimizer(const char *text, const char *opt)
{
	return nnc_sprintf("%soptimizer %s\n", text, opt);
}

/* ---- running a step ------------------------------------------------- */

/* Runs one body on the first n samples.  The workspace is filled with NaN
 * first, so a kernel that reads a tensor nobody wrote shows up; the outputs
 * past n * output_size hold a canary that must survive. */
static void run(state *s, nnrt_body_fn body, int64_t n, float lr)
{
	s->a.hp[NNRT_HP_LR] = lr;
	th_run(s, body, n);
}



/* ---- the C reference of a network ----------------------------------- */

/* Reads parameters straight from the params array the JIT uses. */
typedef struct ref {
	const nnrt_model *m;
	const float *params;
	uint64_t relu_signs; /* hash of the sign of every relu input seen */
} ref;

static const nnrt_param_info *find_param(const nnrt_model *m, const char *name)
{
	for (int i = 0; i < m->n_params; i++)
		if (!strcmp(m->params[i].name, name))
			return &m->params[i];
	return NULL;
}

/* y[o] = sum_i x[i] W[i][o] + b[o]: W is [in][out] row-major, b is [out]. */
static void ref_dense(ref *r, const char *layer, bool bias, const double *x, int64_t in, int64_t out, double *y)
{
	char name[64];
	snprintf(name, sizeof name, "%s.weight", layer);
	const nnrt_param_info *w = find_param(r->m, name);
	cr_assert(w && w->rank == 2 && w->shape[0] == in && w->shape[1] == out, "%s: no %s [%lld, %lld]",
		  r->m->name, name, (long long)in, (long long)out);
	snprintf(name, sizeof name, "%s.bias", layer);
	const nnrt_param_info *b = find_param(r->m, name);
	cr_assert(bias ? b && b->rank == 1 && b->shape[0] == out : !b, "%s: %s is %s", r->m->name, name,
		  bias ? "missing" : "present, but the layer has bias: false");
	for (int64_t o = 0; o < out; o++) {
		double acc = b ? r->params[b->offset + o] : 0;
		for (int64_t i = 0; i < in; i++)
			acc += x[i] * r->params[w->offset + i * out + o];
		y[o] = acc;
	}
}

static double ref_relu(ref *r, double z)
{
	r->relu_signs = (r->relu_signs ^ (uint64_t)(z > 0)) * 0x100000001b3ull;
	return z > 0 ? z : 0;
}

static double sigmoid(double z) { return 1 / (1 + exp(-z)); }

static void ref_softmax(const double *z, int64_t k, double *p)
{
	double mx = z[0], sum = 0;
	for (int64_t j = 1; j < k; j++)
		mx = z[j] > mx ? z[j] : mx;
	for (int64_t j = 0; j < k; j++)
		sum += exp(z[j] - mx);
	for (int64_t j = 0; j < k; j++)
		p[j] = exp(z[j] - mx) / sum;
}

/* One sample: x -> pred, the loss's first operand (label_size values), and
 * out, the value of an `output` statement (networks without one leave it). */
typedef void forward_fn(ref *r, const float *x, double *pred, double *out);

/* ---- the networks --------------------------------------------------- */

/* Every forward op: dense with and without bias, relu (standalone: its input
 * is used twice), tanh and sigmoid (fused at -O3), + - * between tensors,
 * scalar affine maps, negation, ops on the input that need no gradient,
 * softmax_cross_entropy (and the softmax of the inference tail). */
static const char ops_src[] =
	"model opsnet\n"
	"input x : f32[7]\n"
	"label y : class(2)\n"
	"xs = x * 2 - 1\n"
	"a = xs * x |> dense(5)\n"
	"b = a |> relu\n"
	"c = a + b\n"
	"d = c |> dense(9, bias: false) |> tanh\n"
	"e = d * 0.5 + 1\n"
	"f = -e\n"
	"g = f - d\n"
	"h = g * d\n"
	"s = h |> dense(6) |> sigmoid\n"
	"logits = s |> dense(2)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"train {\n  data: parity(bits: 7)\n  batch: 8\n}\n";

static void fwd_ops(ref *r, const float *x, double *pred, double *out)
{
	(void)out;
	double t[7], a[5], c[5], d[9], h[9], s[6];
	for (int i = 0; i < 7; i++)
		t[i] = (x[i] * 2.0 - 1) * x[i];
	ref_dense(r, "dense1", true, t, 7, 5, a);
	for (int i = 0; i < 5; i++)
		c[i] = a[i] + ref_relu(r, a[i]);
	ref_dense(r, "dense2", false, c, 5, 9, d);
	for (int i = 0; i < 9; i++) {
		d[i] = tanh(d[i]);
		double e = d[i] * 0.5 + 1, f = -e, g = f - d[i];
		h[i] = g * d[i];
	}
	ref_dense(r, "dense3", true, h, 9, 6, s);
	for (int i = 0; i < 6; i++)
		s[i] = sigmoid(s[i]);
	ref_dense(r, "dense4", true, s, 6, 2, pred);
}

/* softmax inside the network (softmax_grad), mse over 4 outputs (the 1/k),
 * an explicit output, an input of rank 2 read flattened by dense. */
static const char soft_src[] =
	"model softnet\n"
	"input x : f32[3, 5]\n"
	"label t : f32[4]\n"
	"h = x |> dense(11) |> relu\n"
	"p = h |> dense(4) |> softmax\n"
	"q = p * 3 - 0.5\n"
	"output q\n"
	"loss mse(q, t)\n"
	"train {\n  data: csv(\"unused.csv\", x: [0], y: [1])\n  batch: 8\n}\n";

static void fwd_soft(ref *r, const float *x, double *pred, double *out)
{
	double xd[15], h[11], z[4], p[4];
	for (int i = 0; i < 15; i++)
		xd[i] = x[i];
	ref_dense(r, "dense1", true, xd, 15, 11, h);
	for (int i = 0; i < 11; i++)
		h[i] = ref_relu(r, h[i]);
	ref_dense(r, "dense2", true, h, 11, 4, z);
	ref_softmax(z, 4, p);
	for (int i = 0; i < 4; i++)
		pred[i] = out[i] = p[i] * 3 - 0.5;
}

/* binary_cross_entropy on a sigmoid output of 3 values. */
static const char bce_src[] =
	"model bcenet\n"
	"input x : f32[6]\n"
	"label y : f32[3]\n"
	"h = x |> dense(13) |> tanh\n"
	"z = h |> dense(3)\n"
	"p = z |> sigmoid\n"
	"loss binary_cross_entropy(p, y)\n"
	"train {\n  data: csv(\"unused.csv\", x: [0], y: [1])\n  batch: 8\n}\n";

static void fwd_bce(ref *r, const float *x, double *pred, double *out)
{
	(void)out;
	double xd[6], h[13], z[3];
	for (int i = 0; i < 6; i++)
		xd[i] = x[i];
	ref_dense(r, "dense1", true, xd, 6, 13, h);
	for (int i = 0; i < 13; i++)
		h[i] = tanh(h[i]);
	ref_dense(r, "dense2", true, h, 13, 3, z);
	for (int i = 0; i < 3; i++)
		pred[i] = sigmoid(z[i]);
}

/* The 3-3-1 parity network of examples/seed.nn: one output, a batch of 5. */
static const char seed_src[] =
	"model seednet\n"
	"input x : f32[3]\n"
	"label y : f32[1]\n"
	"hidden = x |> dense(3) |> sigmoid\n"
	"p = hidden |> dense(1) |> sigmoid\n"
	"loss binary_cross_entropy(p, y)\n"
	"train {\n  data: parity(bits: 3, count: 256)\n  batch: 5\n}\n";

static void fwd_seed(ref *r, const float *x, double *pred, double *out)
{
	(void)out;
	double xd[3], h[3], z[1];
	for (int i = 0; i < 3; i++)
		xd[i] = x[i];
	ref_dense(r, "dense1", true, xd, 3, 3, h);
	for (int i = 0; i < 3; i++)
		h[i] = sigmoid(h[i]);
	ref_dense(r, "dense2", true, h, 3, 1, z);
	pred[0] = sigmoid(z[0]);
}

/* Wider layers: several register tiles and column blocks (70 > 64 columns),
 * partial row tiles (batch 13), a product with the input (one operand needs
 * no gradient) and a difference whose right side does (neg). */
static const char wide_src[] =
	"model widenet\n"
	"input x : f32[19]\n"
	"label y : class(21)\n"
	"v = x |> dense(19) |> sigmoid\n"
	"u = v * x\n"
	"r = x - u\n"
	"h = r |> dense(70) |> relu\n"
	"k = h |> dense(37) |> tanh\n"
	"logits = k |> dense(21)\n" /* more than 16 classes: the softmax rows are not one vector */
	"loss softmax_cross_entropy(logits, y)\n"
	"train {\n  data: csv(\"unused.csv\", x: [0], y: [1])\n  batch: 13\n}\n";

static void fwd_wide(ref *r, const float *x, double *pred, double *out)
{
	(void)out;
	double xd[19], v[19], rr[19], h[70], k[37];
	for (int i = 0; i < 19; i++)
		xd[i] = x[i];
	ref_dense(r, "dense1", true, xd, 19, 19, v);
	for (int i = 0; i < 19; i++)
		rr[i] = xd[i] - sigmoid(v[i]) * xd[i];
	ref_dense(r, "dense2", true, rr, 19, 70, h);
	for (int i = 0; i < 70; i++)
		h[i] = ref_relu(r, h[i]);
	ref_dense(r, "dense3", true, h, 70, 37, k);
	for (int i = 0; i < 37; i++)
		k[i] = tanh(k[i]);
	ref_dense(r, "dense4", true, k, 37, 21, pred);
}

/* Every activation of acts.def after its own dense layer, options at
 * non-default values: leaky_relu, elu and softplus (derivative from y) are
 * folded into the dense epilogues forward (in place) and backward, silu
 * and the two gelus (derivative from x) too, their epilogue writing both
 * the product and the activation. */
static const char act_src[] =
	"model actnet\n"
	"input x : f32[6]\n"
	"label y : class(3)\n"
	"a = x |> dense(8) |> leaky_relu(alpha: 0.2)\n"
	"b = a |> dense(8) |> elu(alpha: 0.7)\n"
	"c = b |> dense(8) |> softplus\n"
	"d = c |> dense(8) |> silu\n"
	"e = d |> dense(8) |> gelu\n"
	"f = e |> dense(8) |> gelu(approximate: false)\n"
	"logits = f |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"train {\n  data: csv(\"unused.csv\", x: [0], y: [1])\n  batch: 11\n}\n";

/* An activation of act_ref.h; kinks (relu-like) go into the sign hash. */
static double ref_act(ref *r, const char *name, double opt, double z)
{
	const act_ref *a = act_ref_find(name);
	cr_assert(a, "no C reference of %s", name);
	if (a->kink(opt))
		r->relu_signs = (r->relu_signs ^ (uint64_t)(z > 0)) * 0x100000001b3ull;
	return a->f(z, opt);
}

static void fwd_act(ref *r, const float *x, double *pred, double *out)
{
	(void)out;
	static const struct {
		const char *act;
		double opt;
	} layers[] = {{"leaky_relu", 0.2}, {"elu", 0.7}, {"softplus", 0}, {"silu", 0}, {"gelu", 1}, {"gelu", 0}};
	double h[8], t[8];
	int64_t in = 6;
	for (int i = 0; i < 6; i++)
		h[i] = x[i];
	for (size_t l = 0; l < NELEMS(layers); l++) {
		char name[16];
		snprintf(name, sizeof name, "dense%zu", l + 1);
		ref_dense(r, name, true, h, in, 8, t);
		for (int i = 0; i < 8; i++)
			h[i] = ref_act(r, layers[l].act, layers[l].opt, t[i]);
		in = 8;
	}
	ref_dense(r, "dense7", true, h, 8, 3, pred);
}

typedef struct net {
	const char *name;
	const char *src;  /* without the optimizer line */
	forward_fn *fwd;
	bool explicit_out; /* has an `output` statement */
	int kink_params;   /* the first k parameter tensors feed a relu: their
			    * differences are skipped where a relu input
			    * changes sign between p - h and p + h */
} net;

/* softmax_cross_entropy's label smoothing in the network being checked (its
 * source and its reference), 0 but in check_smoothed_net: a setting of the
 * check rather than a column of every row of nets[]. */
static double net_smoothing;

static const net nets[] = {
	{"opsnet", ops_src, fwd_ops, false, 2},
	{"softnet", soft_src, fwd_soft, true, 2},
	{"bcenet", bce_src, fwd_bce, false, 0},
	{"seednet", seed_src, fwd_seed, false, 0},
	{"widenet", wide_src, fwd_wide, false, 4},
	{"actnet", act_src, fwd_act, false, 14},
};

/* nt's source, with net_smoothing on its softmax_cross_entropy. */
static const char *net_src(const net *nt)
{
	if (net_smoothing == 0)
		return nt->src;
	const char *at = strstr(nt->src, "softmax_cross_entropy(logits, y)");
	cr_assert(at, "%s has no softmax_cross_entropy(logits, y)", nt->name);
	int pre = (int)(at - nt->src) + (int)strlen("softmax_cross_entropy(logits, y");
	return nnc_sprintf("%.*s, smoothing: %g%s", pre, nt->src, net_smoothing, nt->src + pre);
}

/* Reference of a batch: infer's outputs [n][output_size] and the metrics
 * eval_step reports (sum of per-sample losses, number correct). */
static void ref_batch(const net *nt, ref *r, const float *x, const void *y, int64_t n, double *out, double metrics[2])
{
	const nnrt_model *m = r->m;
	int64_t k = m->label_size, os = m->output_size;
	double pred[128], o[128];
	cr_assert(k <= 128 && os <= 128);
	metrics[0] = metrics[1] = 0;
	for (int64_t i = 0; i < n; i++) {
		nt->fwd(r, x + i * m->input_size, pred, o);
		if (!nt->explicit_out) {
			if (m->loss == NNRT_LOSS_SOFTMAX_XENT)
				ref_softmax(pred, k, o);
			else
				memcpy(o, pred, sizeof(double) * (size_t)k);
		}
		if (out)
			memcpy(out + i * os, o, sizeof(double) * (size_t)os);
		if (m->loss == NNRT_LOSS_SOFTMAX_XENT) {
			int32_t cls = ((const int32_t *)y)[i];
			double mx = pred[0], sum = 0;
			int64_t am = 0;
			for (int64_t j = 1; j < k; j++)
				if (pred[j] > mx)
					mx = pred[j], am = j;
			for (int64_t j = 0; j < k; j++)
				sum += exp(pred[j] - mx);
			/* torch's label smoothing: the target (1-eps) onehot + eps/K */
			double eps = net_smoothing, zsum = 0;
			for (int64_t j = 0; j < k; j++)
				zsum += pred[j];
			metrics[0] += log(sum) + mx - (1 - eps) * pred[cls] - eps * zsum / (double)k;
			metrics[1] += am == cls;
		} else {
			const float *t = (const float *)y + i * k;
			double l = 0, hits = 0;
			for (int64_t j = 0; j < k; j++) {
				if (m->loss == NNRT_LOSS_MSE) {
					l += (pred[j] - t[j]) * (pred[j] - t[j]);
				} else {
					double p = fmin(fmax(pred[j], 1e-7), 1 - 1e-7);
					l -= t[j] * log(p) + (1 - t[j]) * log(1 - p);
					hits += (pred[j] > 0.5) == (t[j] > 0.5);
				}
			}
			metrics[0] += l / (double)k;
			metrics[1] += hits / (double)k;
		}
	}
}

/* |a - r| within tol relative to max(1, |r|). */
static bool close_to(double a, double r, double tol)
{
	return fabs(a - r) <= tol * fmax(1.0, fabs(r));
}

/* ---- 1. forward against the reference -------------------------------- */

#define FWD_TOL 1e-5

/* j[1] is the program fused (-O3), j[0] unfused (-O0). */
static void check_forward(const net *nt, const jitted j[2])
{
	state s[2];
	for (int f = 0; f < 2; f++)
		s[f] = state_new(j[f].m);
	const nnrt_model *m = j[1].m;
	cr_assert_eq(j[0].m->param_floats, m->param_floats);
	cr_assert_eq(j[0].m->output_size, m->output_size);
	int64_t os = m->output_size;
	double *want = calloc((size_t)(m->batch * os), sizeof(double));
	float *p0 = th_falloc(m->param_floats);
	int64_t ns[3] = {1, 3, m->batch};
	double worst = 0; /* largest error relative to max(1, |reference|) */
	for (int t = 0; t < 3; t++) {
		int64_t n = ns[t];
		for (int f = 0; f < 2; f++) {
			th_fill_params(m, s[f].params, 100 + (uint64_t)t);
			th_fill_batch(&s[f], n, 200 + (uint64_t)t);
		}
		memcpy(p0, s[1].params, sizeof(float) * (size_t)m->param_floats);
		ref r = {m, s[1].params, 0};
		double wm[2];
		ref_batch(nt, &r, s[1].x, s[1].y, n, want, wm);
		for (int threads = 1; threads <= 2; threads++) {
			nnrt_set_threads(threads);
			for (int f = 0; f < 2; f++) {
				const char *how = f ? "fused" : "unfused";
				run(&s[f], j[f].m->infer, n, 0);
				for (int64_t i = 0; i < n * os; i++) {
					worst = fmax(worst, fabs(s[f].out[i] - want[i]) / fmax(1.0, fabs(want[i])));
					cr_assert(close_to(s[f].out[i], want[i], FWD_TOL),
						  "%s %s infer, n=%lld, %d threads: out[%lld][%lld] = %.9g, reference %.9g",
						  nt->name, how, (long long)n, threads, (long long)(i / os),
						  (long long)(i % os), s[f].out[i], want[i]);
				}
				run(&s[f], j[f].m->eval_step, n, 0);
				worst = fmax(worst, fabs(s[f].metrics[0] - wm[0]) / fmax(1.0, fabs(wm[0])));
				cr_assert(close_to(s[f].metrics[0], wm[0], FWD_TOL),
					  "%s %s eval_step, n=%lld: loss sum %.9g, reference %.9g", nt->name, how,
					  (long long)n, s[f].metrics[0], wm[0]);
				cr_assert(s[f].metrics[1] == wm[1] ||
						  (m->loss == NNRT_LOSS_BCE && fabs(s[f].metrics[1] - wm[1]) < 1e-6),
					  "%s %s eval_step, n=%lld: %g correct, reference %g", nt->name, how,
					  (long long)n, s[f].metrics[1], wm[1]);
				cr_assert(!memcmp(p0, s[f].params, sizeof(float) * (size_t)m->param_floats),
					  "%s %s: infer or eval_step changed the parameters", nt->name, how);
			}
			for (int64_t i = 0; i < n * os; i++)
				cr_assert(close_to(s[1].out[i], s[0].out[i], FWD_TOL),
					  "%s: fused and unfused infer differ at out[%lld]: %.9g vs %.9g", nt->name,
					  (long long)i, s[1].out[i], s[0].out[i]);
		}
		/* the comparison can fail: a reference whose last parameter tensor
		 * is off by 1e-3 in its first entry must disagree with the program */
		const nnrt_param_info *last = &m->params[m->n_params - 1];
		p0[last->offset] += 1e-3f;
		ref wrong = {m, p0, 0};
		ref_batch(nt, &wrong, s[1].x, s[1].y, n, want, wm);
		int64_t differ = 0;
		for (int64_t i = 0; i < n * os; i++)
			differ += !close_to(s[1].out[i], want[i], FWD_TOL);
		cr_assert(differ > 0, "%s, n=%lld: the forward check does not notice %s[0] off by 1e-3", nt->name,
			  (long long)n, last->name);
	}
	cr_log_info("%s forward: worst error %.3g (tolerance %g)", nt->name, worst, FWD_TOL);
	free(want);
	free(p0);
	for (int f = 0; f < 2; f++)
		state_free(&s[f]);
}

/* ---- 2. gradients against central differences ------------------------ */

#define FD_STEP 1e-2
#define GRAD_ATOL 1e-4 /* per entry: |g - fd| <= ATOL + RTOL |fd| */
#define GRAD_RTOL 2e-3
#define GRAD_NORM_RTOL 5e-3 /* per tensor: |g - fd| <= NORM_RTOL |fd| (2-norms) */

/* Judges one parameter tensor's analytic gradient g against the differences
 * fd; entries with skip[i] (the difference crossed a relu kink) are left out.
 * Returns NULL if it passes, else why (arena). */
static const char *grad_verdict(const double *g, const double *fd, const bool *skip, int64_t k)
{
	double dn = 0, fn = 0;
	for (int64_t i = 0; i < k; i++) {
		if (skip[i])
			continue;
		if (fabs(g[i] - fd[i]) > GRAD_ATOL + GRAD_RTOL * fabs(fd[i]))
			return nnc_sprintf("entry %lld: gradient %.7g, central difference %.7g", (long long)i, g[i],
					   fd[i]);
		dn += (g[i] - fd[i]) * (g[i] - fd[i]);
		fn += fd[i] * fd[i];
	}
	if (sqrt(dn) > GRAD_NORM_RTOL * sqrt(fn) + 1e-6)
		return nnc_sprintf("|g - fd| = %.4g is more than %g of |fd| = %.4g", sqrt(dn), GRAD_NORM_RTOL, sqrt(fn));
	return NULL;
}

/* One parameter tensor's gradient and its differences. */
typedef struct grad_table {
	const char *param;
	int64_t k;
	double *g, *fd;
	bool *skip;
} grad_table;

typedef struct grad_run {
	grad_table t[16];
	int nt;
	int64_t n;
	double max_err; /* largest |g - fd| / (ATOL + RTOL |fd|) */
	int64_t skipped, checked;
} grad_run;

/* Loss (the mean over the n samples, as training uses) at the current
 * params; with `signs`, also the relu sign pattern of the reference. */
static double mean_loss(state *s, const net *nt, int64_t n, uint64_t *signs)
{
	run(s, s->m->eval_step, n, 0);
	if (signs) {
		ref r = {s->m, s->params, 0};
		double wm[2];
		ref_batch(nt, &r, s->x, s->y, n, NULL, wm);
		*signs = r.relu_signs;
	}
	return s->metrics[0] / (double)n;
}

/* Analytic gradients of the program (train_step with learning rate 0 at
 * `threads` threads) and central differences of eval_step, for every entry. */
static grad_run gradients(const net *nt, const nnrt_model *m, int64_t n_or_batch, int threads, uint64_t seed)
{
	state s = state_new(m);
	int64_t n = n_or_batch > 0 ? n_or_batch : m->batch;
	th_fill_params(m, s.params, seed);
	th_fill_batch(&s, n, seed + 1);
	float *p0 = th_falloc(m->param_floats);
	memcpy(p0, s.params, sizeof(float) * (size_t)m->param_floats);
	for (int pi = 0; pi < m->n_params; pi++) /* every gradient must be written */
		for (int64_t e = 0; e < m->params[pi].size; e++)
			s.grads[m->params[pi].offset + e] = NAN;
	nnrt_set_threads(threads);
	run(&s, m->train_step, n, 0);
	cr_assert(!memcmp(p0, s.params, sizeof(float) * (size_t)m->param_floats),
		  "%s: train_step with hp[NNRT_HP_LR] = 0 changed the parameters", nt->name);
	nnrt_set_threads(1);
	grad_run gr = {.n = n};
	cr_assert((size_t)m->n_params <= NELEMS(gr.t));
	for (int pi = 0; pi < m->n_params; pi++) {
		const nnrt_param_info *info = &m->params[pi];
		grad_table *t = &gr.t[gr.nt++];
		t->param = info->name;
		t->k = info->size;
		t->g = calloc((size_t)t->k, sizeof(double));
		t->fd = calloc((size_t)t->k, sizeof(double));
		t->skip = calloc((size_t)t->k, sizeof(bool));
		bool kinks = pi < nt->kink_params;
		for (int64_t e = 0; e < t->k; e++) {
			float *p = &s.params[info->offset + e];
			float orig = *p;
			t->g[e] = s.grads[info->offset + e];
			cr_assert(isfinite(t->g[e]), "%s: gradient of %s[%lld] is %g", nt->name, info->name,
				  (long long)e, t->g[e]);
			uint64_t sp = 0, sm = 0;
			*p = (float)(orig + FD_STEP);
			double hp = *p, lp = mean_loss(&s, nt, n, kinks ? &sp : NULL);
			*p = (float)(orig - FD_STEP);
			double hm = *p, lm = mean_loss(&s, nt, n, kinks ? &sm : NULL);
			*p = orig;
			t->fd[e] = (lp - lm) / (hp - hm);
			t->skip[e] = sp != sm;
			gr.skipped += t->skip[e];
			gr.checked += !t->skip[e];
			if (!t->skip[e]) {
				double err = fabs(t->g[e] - t->fd[e]) / (GRAD_ATOL + GRAD_RTOL * fabs(t->fd[e]));
				gr.max_err = fmax(gr.max_err, err);
			}
		}
	}
	free(p0);
	state_free(&s);
	return gr;
}

static void grad_run_free(grad_run *gr)
{
	for (int i = 0; i < gr->nt; i++) {
		free(gr->t[i].g);
		free(gr->t[i].fd);
		free(gr->t[i].skip);
	}
}

/* The verdict must reject the analytic gradients of a tensor when they are
 * off by a factor, have the wrong sign, miss the 1/n of the mean (n = 3), or
 * are wrong in their largest entry alone. */
static void check_verdict_rejects(const net *nt, const grad_table *t)
{
	static const double factors[] = {-1, 2, 0.5, 3, 1.05, 0};
	double *g = calloc((size_t)t->k, sizeof(double));
	for (size_t f = 0; f < NELEMS(factors); f++) {
		for (int64_t e = 0; e < t->k; e++)
			g[e] = t->g[e] * factors[f];
		cr_assert(grad_verdict(g, t->fd, t->skip, t->k), "%s: d/d %s scaled by %g passes the check", nt->name,
			  t->param, factors[f]);
	}
	int64_t big = 0;
	for (int64_t e = 0; e < t->k; e++)
		if (!t->skip[e] && (t->skip[big] || fabs(t->fd[e]) > fabs(t->fd[big])))
			big = e;
	memcpy(g, t->g, sizeof(double) * (size_t)t->k);
	g[big] = -g[big];
	cr_assert(grad_verdict(g, t->fd, t->skip, t->k), "%s: d/d %s with entry %lld negated passes the check",
		  nt->name, t->param, (long long)big);
	free(g);
}

/* j[1] is the program fused, j[0] unfused; both with `optimizer sgd`. */
static void check_gradients(const net *nt, const jitted j[2])
{
	for (int fuse = 1; fuse >= 0; fuse--) {
		for (int b = 0; b < 2; b++) {
			int64_t n = b ? 0 : 3; /* 3 samples (n < batch), then the full batch */
			grad_run gr = gradients(nt, j[fuse].m, n, 2, 300 + (uint64_t)b);
			double worst_norm = 0;
			for (int i = 0; i < gr.nt; i++) {
				grad_table *t = &gr.t[i];
				const char *why = grad_verdict(t->g, t->fd, t->skip, t->k);
				cr_assert(!why, "%s (%s, n=%lld): d loss / d %s: %s", nt->name, fuse ? "fused" : "unfused",
					  (long long)gr.n, t->param, why);
				if (gr.n == 3)
					check_verdict_rejects(nt, t);
				double dn = 0, fn = 0;
				for (int64_t e = 0; e < t->k; e++)
					if (!t->skip[e]) {
						dn += (t->g[e] - t->fd[e]) * (t->g[e] - t->fd[e]);
						fn += t->fd[e] * t->fd[e];
					}
				worst_norm = fmax(worst_norm, sqrt(dn) / (GRAD_NORM_RTOL * sqrt(fn) + 1e-6));
			}
			/* no more than a few differences may straddle a relu kink */
			cr_assert(gr.skipped * 8 <= gr.checked + gr.skipped, "%s: %lld of %lld differences skipped",
				  nt->name, (long long)gr.skipped, (long long)(gr.checked + gr.skipped));
			cr_log_info("%s %s n=%lld: %lld entries, %lld skipped at relu kinks; worst error %.3f of the "
				    "entry tolerance, %.3f of the tensor tolerance",
				    nt->name, fuse ? "fused" : "unfused", (long long)gr.n, (long long)gr.checked,
				    (long long)gr.skipped, gr.max_err, worst_norm);
			grad_run_free(&gr);
		}
	}
}

/* Each network is compiled twice (JIT compilation is most of the time) and
 * both checks run on the two. */
static void check_net(const net *nt)
{
	const char *src = with_optimizer(net_src(nt), "sgd(lr: 1)");
	jitted j[2];
	for (int f = 0; f < 2; f++)
		j[f] = jit_graph(build_graph(src, f), f);
	check_forward(nt, j);
	check_gradients(nt, j);
	for (int f = 0; f < 2; f++)
		jit_free(&j[f]);
}

Test(network, opsnet) { check_net(&nets[0]); }
Test(network, softnet) { check_net(&nets[1]); }
Test(network, bcenet) { check_net(&nets[2]); }
Test(network, seednet) { check_net(&nets[3]); }
Test(network, widenet) { check_net(&nets[4]); }
Test(network, actnet) { check_net(&nets[5]); }
/* Label smoothing: its loss against the reference, its gradient against
 * finite differences; 3 classes (a row is one vector), 21 (a loop). */
static void check_smoothed_net(const net *nt, double eps)
{
	net_smoothing = eps;
	check_net(nt);
	net_smoothing = 0;
}
Test(network, opsnet_label_smoothing) { check_smoothed_net(&nets[0], 0.1); }
Test(network, widenet_label_smoothing) { check_smoothed_net(&nets[4], 0.25); }

/* Label smoothing over 50 training steps, against torch's
 * CrossEntropyLoss(label_smoothing=eps) computed here in double: a linear
 * classifier (logits = x W + b), whose gradient is (softmax - target) / n
 * with target (1 - eps) on the label plus eps / K on every class, so that
 * each step's loss and the parameters after it have an exact reference
 * (each step checked from the parameters the program had before it).  3
 * classes (a row is one vector) and 21 (a loop); batches of 8 and of 3. */
static void check_smoothing_steps(int K, double eps)
{
	char src[512];
	snprintf(src, sizeof src,
		 "model smooth\ninput x : f32[5]\nlabel y : class(%d)\nlogits = x |> dense(%d)\n"
		 "loss softmax_cross_entropy(logits, y, smoothing: %g)\noptimizer sgd(lr: 0.5)\n"
		 "train {\n  data: csv(\"unused.csv\", x: [0, 1, 2, 3, 4], y: 5)\n  batch: 8\n}\n", K, K, eps);
	jitted j = jit_graph(build_graph(src, true), true);
	const nnrt_model *m = j.m;
	state s = state_new(m);
	cr_assert_eq(m->n_params, 2);
	const float *W = s.params + m->params[0].offset, *B = s.params + m->params[1].offset;
	th_fill_params(m, s.params, 41);
	nnrt_set_threads(2);
	const double lr = 0.5;
	double *w0 = calloc(5 * (size_t)K, sizeof(double)), *b0 = calloc((size_t)K, sizeof(double));
	double *gw = calloc(5 * (size_t)K, sizeof(double)), *gb = calloc((size_t)K, sizeof(double));
	double z[32], p[32];
	for (int step = 1; step <= 50; step++) {
		int64_t n = step % 4 == 3 ? 3 : 8;
		th_fill_batch(&s, n, 900 + (uint64_t)step);
		for (int k = 0; k < 5 * K; k++)
			w0[k] = W[k];
		for (int k = 0; k < K; k++)
			b0[k] = B[k];
		memset(gw, 0, 5 * (size_t)K * sizeof(double));
		memset(gb, 0, (size_t)K * sizeof(double));
		double loss = 0;
		for (int64_t i = 0; i < n; i++) {
			const float *x = s.x + i * 5;
			int32_t y = ((const int32_t *)s.y)[i];
			double mx = -INFINITY, sum = 0, mean_logp = 0;
			for (int c = 0; c < K; c++) {
				z[c] = b0[c];
				for (int f = 0; f < 5; f++)
					z[c] += x[f] * w0[f * K + c];
				mx = fmax(mx, z[c]);
			}
			for (int c = 0; c < K; c++)
				sum += exp(z[c] - mx);
			for (int c = 0; c < K; c++) {
				p[c] = exp(z[c] - mx) / sum;
				mean_logp += (z[c] - mx - log(sum)) / K;
			}
			/* torch: (1 - eps) * nll + eps * mean over classes of -log p */
			loss += (1 - eps) * -(z[y] - mx - log(sum)) + eps * -mean_logp;
			for (int c = 0; c < K; c++) {
				double d = (p[c] - ((c == y) * (1 - eps) + eps / K)) / (double)n;
				gb[c] += d;
				for (int f = 0; f < 5; f++)
					gw[f * K + c] += x[f] * d;
			}
		}
		run(&s, m->train_step, n, (float)lr);
		cr_assert(fabs(s.metrics[0] - loss) <= 1e-6 * fabs(loss), "K %d, eps %g, step %d: loss %.9g, torch %.9g", K,
			  eps, step, s.metrics[0], loss);
		for (int k = 0; k < 5 * K; k++) {
			double want = w0[k] - lr * gw[k];
			cr_assert(fabs(W[k] - want) <= 1e-6 * fmax(1, fabs(want)), "K %d, eps %g, step %d: W[%d] %.9g, want %.9g",
				  K, eps, step, k, W[k], want);
		}
		for (int k = 0; k < K; k++) {
			double want = b0[k] - lr * gb[k];
			cr_assert(fabs(B[k] - want) <= 1e-6 * fmax(1, fabs(want)), "K %d, eps %g, step %d: b[%d] %.9g, want %.9g",
				  K, eps, step, k, B[k], want);
		}
	}
	free(w0), free(b0), free(gw), free(gb);
	state_free(&s);
	jit_free(&j);
}
Test(network, label_smoothing_follows_torch_over_50_steps)
{
	check_smoothing_steps(3, 0.1);
	check_smoothing_steps(21, 0.3);
}

/* A loss that reaches no parameter, beside a parameterised output: a step
 * changes nothing, whatever the optimizer, the fusion and the chunking, and
 * the metrics are those of the reference.  (The planner used to reserve the
 * chunks' partial gradients only when some node writes a gradient, so chunk
 * 1 wrote its zeros over the metrics and chunk 0's tensors, and the update
 * summed workspace garbage into the weights.) */
static const char free_src[] =
	"model freenet\n"
	"input x : f32[3]\n"
	"label t : f32[3]\n"
	"h = x |> dense(40) |> tanh\n"
	"output h\n"
	"p = x * 2 - 1\n"
	"loss mse(p, t)\n"
	"train {\n  data: csv(\"unused.csv\", x: [0], y: [1])\n  batch: 8\n}\n";

static void fwd_free(ref *r, const float *x, double *pred, double *out)
{
	double xd[3];
	for (int i = 0; i < 3; i++)
		pred[i] = (xd[i] = x[i]) * 2.0 - 1;
	ref_dense(r, "dense1", true, xd, 3, 40, out);
	for (int i = 0; i < 40; i++)
		out[i] = tanh(out[i]);
}

Test(network, loss_reaching_no_parameter)
{
	static const net nt = {"freenet", free_src, fwd_free, true, 0};
	static const char *opts[] = {"sgd(lr: 0.5, momentum: 0.9)", "adam(lr: 0.1)"};
	for (size_t oi = 0; oi < NELEMS(opts); oi++)
		for (int chunks = 0; chunks < 2; chunks++) { /* the default (2), then 1 */
			jitted j[2];
			th_chunks = chunks;
			for (int f = 0; f < 2; f++)
				j[f] = jit_graph(build_graph(with_optimizer(free_src, opts[oi]), f), f);
			th_chunks = 0;
			cr_assert_eq(j[1].g->chunks, chunks ? 1 : NNC_DEFAULT_CHUNKS);
			if (oi == 0)
				check_forward(&nt, j);
			for (int f = 0; f < 2; f++) {
				const nnrt_model *m = j[f].m;
				state s = state_new(m);
				th_fill_params(m, s.params, 900);
				float *p0 = th_falloc(m->param_floats);
				memcpy(p0, s.params, sizeof(float) * (size_t)m->param_floats);
				for (int64_t i = 0; i < m->param_floats; i++) /* every gradient must be written */
					s.grads[i] = NAN;
				nnrt_set_threads(2);
				for (int step = 1; step <= 2; step++) {
					int64_t n = step == 1 ? m->batch : 3;
					th_fill_batch(&s, n, 900 + (uint64_t)step);
					s.a.hp[NNRT_HP_ADAM_C1] = s.a.hp[NNRT_HP_ADAM_C2] = 2;
					run(&s, m->train_step, n, 0.5f);
					ref r = {m, s.params, 0};
					double wm[2];
					ref_batch(&nt, &r, s.x, s.y, n, NULL, wm);
					const char *how = nnc_sprintf("%s, %s, %lld chunks, step %d", opts[oi],
								      f ? "fused" : "unfused", (long long)j[f].g->chunks, step);
					cr_assert(close_to(s.metrics[0], wm[0], FWD_TOL) && s.metrics[1] == wm[1],
						  "%s: metrics %.9g %g, reference %.9g %g", how, s.metrics[0], s.metrics[1],
						  wm[0], wm[1]);
					for (int64_t i = 0; i < m->param_floats; i++)
						cr_assert(s.grads[i] == 0 && s.params[i] == p0[i],
							  "%s: grads[%lld] = %g, params[%lld] %.9g -> %.9g", how, (long long)i,
							  s.grads[i], (long long)i, p0[i], s.params[i]);
				}
				free(p0);
				state_free(&s);
			}
			for (int f = 0; f < 2; f++)
				jit_free(&j[f]);
		}
}

/* ---- 3. optimizer updates --------------------------------------------- */

typedef struct opt_case {
	const char *opt;
	float lr, wd; /* hp[NNRT_HP_LR], hp[NNRT_HP_WD]: the step's, deliberately not the model's */
	/* the hyper-parameters as written (the kernel bakes in these doubles;
	 * nnrt_model carries them rounded to float) */
	int kind, flags; /* NNRT_OPT_*, NNRT_OPTF_* */
	double momentum, dampening, beta1, beta2, eps, alpha;
	int slots; /* optimizer state arrays */
	float cn, cv; /* hp[NNRT_HP_CLIP_NORM], hp[NNRT_HP_CLIP_VALUE] (clip_norm: compiles the norm's pass in) */
} opt_case;

enum {
	NEST = NNRT_OPTF_NESTEROV,
	CENT = NNRT_OPTF_CENTERED,
	AMS = NNRT_OPTF_AMSGRAD,
	ALLD = NNRT_OPTF_DECAY_BIASES,
	CLIPN = NNRT_OPTF_CLIP_NORM,
};
#define SGD_ NNRT_OPT_SGD
#define ADAM_ NNRT_OPT_ADAM
#define ADAMW_ NNRT_OPT_ADAMW
#define RMS_ NNRT_OPT_RMSPROP
static const opt_case opt_cases[] = {
	{"sgd(lr: 0.1)", 0.07f, 0, SGD_, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0},
	{"sgd(lr: 0.1, momentum: 0.55)", 0.3f, 0, SGD_, 0, 0.55, 0, 0.9, 0.999, 1e-8, 0.99, 1, 0, 0},
	{"adam(lr: 0.01)", 0.02f, 0, ADAM_, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 2, 0, 0},
	{"adam(lr: 0.01, beta1: 0.8, beta2: 0.95, eps: 0.001)", 0.05f, 0, ADAM_, 0, 0, 0, 0.8, 0.95, 0.001, 0.99, 2, 0, 0},
	/* 4: weight decay, Nesterov, dampening, amsgrad, AdamW, RMSprop */
	{"sgd(lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01)", 0.05f, 0.03f, SGD_, NEST, 0.9, 0, 0.9,
	 0.999, 1e-8, 0.99, 1, 0, 0},
	{"sgd(momentum: 0.8, dampening: 0.3, weight_decay: 0.05, decay_biases: true)", 0.1f, 0.05f, SGD_, ALLD, 0.8,
	 0.3, 0.9, 0.999, 1e-8, 0.99, 1, 0, 0},
	{"sgd(lr: 0.1, weight_decay: 0.5)", 0.1f, 0.5f, SGD_, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0},
	{"adam(lr: 0.01, amsgrad: true, weight_decay: 0.1)", 0.01f, 0.1f, ADAM_, AMS, 0, 0, 0.9, 0.999, 1e-8, 0.99, 3, 0, 0},
	{"adamw(lr: 0.01)", 0.02f, 0.01f, ADAMW_, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 2, 0, 0},
	{"adamw(lr: 0.01, weight_decay: 0.3, amsgrad: true, decay_biases: true, beta2: 0.9)", 0.03f, 0.3f, ADAMW_,
	 AMS | ALLD, 0, 0, 0.9, 0.9, 1e-8, 0.99, 3, 0, 0},
	{"rmsprop", 0.01f, 0, RMS_, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 1, 0, 0},
	{"rmsprop(lr: 0.01, alpha: 0.9, momentum: 0.5, centered: true, weight_decay: 0.02)", 0.005f, 0.02f, RMS_, CENT,
	 0.5, 0, 0.9, 0.999, 1e-8, 0.9, 3, 0, 0},
	{"rmsprop(centered: true, eps: 0.001)", 0.01f, 0, RMS_, CENT, 0, 0, 0.9, 0.999, 0.001, 0.99, 2, 0, 0},
	{"rmsprop(momentum: 0.9, weight_decay: 0.1, decay_biases: true)", 0.002f, 0.1f, RMS_, ALLD, 0.9, 0, 0.9, 0.999,
	 1e-8, 0.99, 2, 0, 0},
	/* 14: gradient clipping, by norm (small enough to clip every step), by value, both */
	{"sgd(lr: 0.1, momentum: 0.9, clip_norm: 0.5)", 0.1f, 0, SGD_, CLIPN, 0.9, 0, 0.9, 0.999, 1e-8, 0.99, 1, 0.01f, 0},
	{"adam(lr: 0.01, clip_value: 0.01)", 0.01f, 0, ADAM_, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 2, 0, 0.002f},
	{"adamw(lr: 0.01, clip_norm: 1, clip_value: 1)", 0.01f, 0.01f, ADAMW_, CLIPN, 0, 0, 0.9, 0.999, 1e-8, 0.99, 2,
	 0.02f, 0.003f},
	{"rmsprop(clip_norm: 2, weight_decay: 0.1)", 0.01f, 0.1f, RMS_, CLIPN, 0, 0, 0.9, 0.999, 1e-8, 0.99, 1, 0, 0},
};

/* torch.optim's rule for one parameter float, in double (docs/language.md):
 * st[k] its optimizer state arrays' values, t the step (from 1), decays
 * whether weight decay applies to it; term[k] receives the size of what
 * the step adds to st[k] (the scale of its rounding where the sum cancels).
 * Returns the new parameter. */
static double torch_rule(const opt_case *oc, double p, double g, double *st, double *term, int t, bool decays)
{
	double lr = oc->lr, wd = decays ? oc->wd : 0;
	if (oc->kind == NNRT_OPT_ADAMW)
		p *= 1 - lr * wd;
	else
		g += wd * p;
	switch (oc->kind) {
	case NNRT_OPT_SGD:
		if (oc->momentum != 0) {
			st[0] = t == 1 ? g : oc->momentum * st[0] + (1 - oc->dampening) * g;
			term[0] = fabs(g);
			g = oc->flags & NNRT_OPTF_NESTEROV ? g + oc->momentum * st[0] : st[0];
		}
		return p - lr * g;
	case NNRT_OPT_ADAM:
	case NNRT_OPT_ADAMW: {
		double b1 = oc->beta1, b2 = oc->beta2;
		st[0] = b1 * st[0] + (1 - b1) * g;
		st[1] = b2 * st[1] + (1 - b2) * g * g;
		term[0] = fabs(g);
		double v = st[1];
		if (oc->flags & NNRT_OPTF_AMSGRAD)
			v = st[2] = fmax(st[2], st[1]);
		double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
		return p - lr / bc1 * st[0] / (sqrt(v) / sqrt(bc2) + oc->eps);
	}
	default: {
		double a = oc->alpha;
		int k = 1;
		st[0] = a * st[0] + (1 - a) * g * g;
		double avg = st[0];
		if (oc->flags & NNRT_OPTF_CENTERED) {
			st[k] = a * st[k] + (1 - a) * g;
			term[k] = fabs(g);
			avg -= st[k] * st[k];
			k++;
		}
		avg = sqrt(avg) + oc->eps;
		if (oc->momentum != 0) {
			st[k] = oc->momentum * st[k] + g / avg;
			term[k] = fabs(g / avg);
			return p - lr * st[k];
		}
		return p - lr * g / avg;
	}
	}
}

/* 50 steps; after each, params and optimizer state must equal torch's rule
 * applied in double to the step's gradients and the params and state the
 * program had before the step (each step checked on its own: a state carried
 * in double from step 1 drifts from the float one, most where it cancels). */
/* With cycle set (onecycle's momentum, check_cycled), step t's momentum
 * (sgd, rmsprop) or beta1 (adam) is cycle(t), handed to the update in
 * hp[NNRT_HP_MOMENTUM] instead of the compiled constant. */
static double (*cycle)(int t);

static void check_optimizer(const net *nt, const opt_case *oc0)
{
	opt_case cur = *oc0;
	const opt_case *oc = &cur;
	jitted j = jit_graph(build_graph(with_optimizer(nt->src, oc->opt), true), true);
	const nnrt_model *m = j.m;
	state s = state_new(m);
	int64_t pf = m->param_floats;
	cr_assert_eq(m->optimizer, oc->kind, "%s: optimizer %d", oc->opt, m->optimizer);
	cr_assert_eq(m->opt_flags, oc->flags, "%s: flags %d", oc->opt, m->opt_flags);
	cr_assert_eq(m->opt_floats, oc->slots * pf, "%s: opt_floats %lld", oc->opt, (long long)m->opt_floats);
	cr_assert(m->momentum == (float)oc0->momentum && m->beta1 == (float)oc->beta1 && m->beta2 == (float)oc->beta2 &&
			  m->eps == (float)oc->eps && m->alpha == (float)oc->alpha && m->dampening == (float)oc->dampening,
		  "%s: the model carries momentum %g, betas %g %g, eps %g, alpha %g, dampening %g", oc->opt, m->momentum,
		  m->beta1, m->beta2, m->eps, m->alpha, m->dampening);
	th_fill_params(m, s.params, 500);
	bool *decays = calloc((size_t)pf, 1);
	for (int k = 0; k < m->n_params; k++)
		for (int64_t e = 0; e < m->params[k].size; e++)
			decays[m->params[k].offset + e] = m->params[k].rank >= 2 || (oc->flags & NNRT_OPTF_DECAY_BIASES);
	double *st = calloc((size_t)(3 * pf), sizeof(double));
	int64_t clipped_values = 0, clipped_steps = 0;
	nnrt_set_threads(2);
	for (int step = 1; step <= 50; step++) {
		int64_t n = step % 3 == 2 ? 3 : m->batch;
		th_fill_batch(&s, n, 600 + (uint64_t)step);
		if (cycle) { /* torch reads the group's current momentum, and Adam corrects with it */
			double mt = cycle(step);
			if (oc->kind == NNRT_OPT_ADAM || oc->kind == NNRT_OPT_ADAMW)
				cur.beta1 = mt;
			else
				cur.momentum = mt;
			s.a.hp[NNRT_HP_MOMENTUM] = (float)mt;
			s.a.hp[NNRT_HP_MOMENTUM_1M] = (float)(1 - mt);
		}
		double b1 = oc->beta1, b2 = oc->beta2;
		s.a.hp[NNRT_HP_ADAM_C1] = (float)(1.0 / (1.0 - pow(b1, step)));
		s.a.hp[NNRT_HP_ADAM_C2] = (float)(1.0 / (1.0 - pow(b2, step)));
		s.a.hp[NNRT_HP_DAMP] = step == 1 ? 1.0f : (float)(1 - oc->dampening);
		s.a.hp[NNRT_HP_WD] = oc->wd;
		s.a.hp[NNRT_HP_CLIP_NORM] = oc->cn;
		s.a.hp[NNRT_HP_CLIP_VALUE] = oc->cv;
		float *p0 = th_falloc(pf);
		memcpy(p0, s.params, sizeof(float) * (size_t)pf);
		for (int64_t i = 0; i < oc->slots * pf; i++)
			st[i] = s.opt[i];
		run(&s, m->train_step, n, oc->lr);
		/* torch's clip_grad_value_, then clip_grad_norm_ (over every
		 * parameter), on the batch's gradient, which grads holds */
		double norm2 = 0, coef = 1;
		for (int64_t i = 0; i < pf; i++) {
			double gi = s.grads[i];
			if (oc->cv > 0)
				gi = fmin(fmax(gi, -oc->cv), oc->cv);
			clipped_values += gi != s.grads[i];
			norm2 += gi * gi;
		}
		if (oc->cn > 0 && oc->cn / (sqrt(norm2) + 1e-6) < 1)
			coef = oc->cn / (sqrt(norm2) + 1e-6), clipped_steps++;
		for (int64_t i = 0; i < pf; i++) {
			double v[3] = {st[i], st[pf + i], st[2 * pf + i]}, term[3] = {0, 0, 0};
			double gi = oc->cv > 0 ? fmin(fmax(s.grads[i], -oc->cv), oc->cv) : s.grads[i];
			double want = torch_rule(oc, p0[i], gi * coef, v, term, step, decays[i]);
			cr_assert(fabs(s.params[i] - want) <= 1e-6 * fmax(1, fabs(want)),
				  "%s, step %d: params[%lld] = %.9g, torch's rule gives %.9g (from %.9g, gradient %.9g)",
				  oc->opt, step, (long long)i, s.params[i], want, p0[i], s.grads[i]);
			for (int k = 0; k < oc->slots; k++) {
				float got = s.opt[k * pf + i];
				/* one step's rounding: relative to the terms, which may cancel */
				double old = st[k * pf + i];
				cr_assert(fabs(got - v[k]) <= 1e-30 + 1e-6 * (fabs(v[k]) + fabs(old) + term[k]),
					  "%s, step %d: optimizer state %d [%lld] = %.9g, want %.9g (was %.9g)", oc->opt,
					  step, k, (long long)i, got, v[k], old);
			}
		}
		free(p0);
	}
	/* the clipping cases must clip */
	cr_assert(oc->cn == 0 || clipped_steps > 25, "%s: the norm was clipped in %lld steps", oc->opt,
		  (long long)clipped_steps);
	cr_assert(oc->cv == 0 || clipped_values > 0, "%s: no value was clipped", oc->opt);
	free(st);
	free(decays);
	state_free(&s);
	jit_free(&j);
}

Test(optimizer, sgd) { check_optimizer(&nets[0], &opt_cases[0]); }
Test(optimizer, sgd_momentum) { check_optimizer(&nets[4], &opt_cases[1]); }
Test(optimizer, adam) { check_optimizer(&nets[0], &opt_cases[2]); }
Test(optimizer, adam_betas_eps) { check_optimizer(&nets[4], &opt_cases[3]); }
Test(optimizer, sgd_nesterov_weight_decay) { check_optimizer(&nets[0], &opt_cases[4]); }
Test(optimizer, sgd_dampening_decay_biases) { check_optimizer(&nets[4], &opt_cases[5]); }
Test(optimizer, sgd_weight_decay) { check_optimizer(&nets[1], &opt_cases[6]); }
Test(optimizer, adam_amsgrad_weight_decay) { check_optimizer(&nets[0], &opt_cases[7]); }
Test(optimizer, adamw) { check_optimizer(&nets[4], &opt_cases[8]); }
Test(optimizer, adamw_amsgrad_decay_biases) { check_optimizer(&nets[1], &opt_cases[9]); }
Test(optimizer, rmsprop) { check_optimizer(&nets[0], &opt_cases[10]); }
Test(optimizer, rmsprop_centered_momentum_decay) { check_optimizer(&nets[4], &opt_cases[11]); }
Test(optimizer, rmsprop_centered) { check_optimizer(&nets[1], &opt_cases[12]); }
Test(optimizer, rmsprop_momentum_decay_biases) { check_optimizer(&nets[0], &opt_cases[13]); }
Test(optimizer, sgd_clip_norm) { check_optimizer(&nets[4], &opt_cases[14]); }
Test(optimizer, sgd_clip_norm_one_chunk) /* every op split across the threads, barriers between */
{
	th_chunks = 1;
	check_optimizer(&nets[4], &opt_cases[14]);
	th_chunks = 0;
}
Test(optimizer, adam_clip_value) { check_optimizer(&nets[0], &opt_cases[15]); }
Test(optimizer, adamw_clip_norm_and_value) { check_optimizer(&nets[1], &opt_cases[16]); }
Test(optimizer, rmsprop_clip_norm_compiled_in_but_off) { check_optimizer(&nets[4], &opt_cases[17]); }

/* Every parameter is checked against the rule, so a test must give the
 * decay something to tell apart: a network with weights and biases. */
/* onecycle's cycled momentum (nnrt_schedule_momentum gives it, the step
 * hands it over in hp[]): the update takes each step's value for sgd's
 * momentum (with Nesterov and dampening), Adam's and AdamW's beta1 and
 * rmsprop's momentum, against torch's rules with that momentum; a value
 * that stayed the compiled constant (0.9, 0.5) fails them. */
static double cycled(int t)
{
	return 0.85 + 0.1 * (0.5 + 0.5 * cos(3.14159265358979323846 * t / 25)); /* 0.95 .. 0.85 .. 0.95 */
}

static void check_cycled(const net *nt, const opt_case *oc)
{
	cycle = cycled;
	check_optimizer(nt, oc);
	cycle = NULL;
}

Test(optimizer, sgd_nesterov_cycled_momentum) { check_cycled(&nets[0], &opt_cases[4]); }
Test(optimizer, sgd_dampening_cycled_momentum) { check_cycled(&nets[4], &opt_cases[5]); }
Test(optimizer, adam_cycled_beta1) { check_cycled(&nets[0], &opt_cases[7]); }
Test(optimizer, adamw_cycled_beta1) { check_cycled(&nets[4], &opt_cases[8]); }
Test(optimizer, rmsprop_cycled_momentum) { check_cycled(&nets[4], &opt_cases[11]); }

Test(optimizer, weight_decay_spares_biases_by_default)
{
	ir_graph *g = build_graph(with_optimizer(nets[0].src, "sgd(weight_decay: 0.1)"), true);
	int n1 = 0, n2 = 0;
	for (int k = 0; k < g->nparams; k++) {
		bool d = ir_param_decays(&g->params[k], 0);
		cr_assert_eq(d, g->params[k].rank >= 2, "%s decays: %d", g->params[k].name, d);
		cr_assert(ir_param_decays(&g->params[k], NNRT_OPTF_DECAY_BIASES));
		n1 += g->params[k].rank < 2, n2 += g->params[k].rank >= 2;
	}
	cr_assert(n1 > 0 && n2 > 0, "%d biases, %d weights", n1, n2);
}

/* ---- 4. determinism across thread counts ------------------------------ */

/* Large enough that every kernel splits its work: 64 x 70 = 4480 values in
 * the element-wise ops (more than one 4096-float chunk), several gemm tiles. */
static const char det_src[] =
	"model detnet\n"
	"input x : f32[37]\n"
	"label y : class(5)\n"
	"a = x |> dense(70)\n"
	"b = a |> relu\n"
	"c = a + b\n"
	"k = c |> dense(33) |> tanh\n"
	"logits = k |> dense(5)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\n"
	"train {\n  data: csv(\"unused.csv\", x: [0], y: [1])\n  batch: 64\n}\n";

/* 4 and 8 threads are more than the 2 chunks (1 in the partial batch of 29,
 * which also leaves 2 threads with a chunk to share): the threads share each
 * chunk's ops in groups (nnrt_chunks_begin), with the same results. */
Test(determinism, one_to_eight_threads)
{
	static const int team[] = {1, 2, 3, 4, 8};
	jitted j = jit_graph(build_graph(det_src, true), true);
	const nnrt_model *m = j.m;
	state s = state_new(m);
	int64_t pf = m->param_floats, ns[2] = {64, 29};
	float *g1 = th_falloc(pf), *o1 = th_falloc(m->batch * m->output_size);
	for (int t = 0; t < 2; t++) {
		int64_t n = ns[t];
		th_fill_params(m, s.params, 700);
		th_fill_batch(&s, n, 701 + (uint64_t)t);
		double l1 = 0;
		for (size_t ti = 0; ti < NELEMS(team); ti++) {
			int threads = team[ti];
			nnrt_set_threads(threads);
			memset(s.grads, 0, sizeof(float) * (size_t)pf);
			run(&s, m->train_step, n, 0);
			double loss = s.metrics[0];
			run(&s, m->infer, n, 0);
			if (threads == 1) {
				memcpy(g1, s.grads, sizeof(float) * (size_t)pf);
				memcpy(o1, s.out, sizeof(float) * (size_t)(n * m->output_size));
				l1 = loss;
				continue;
			}
			for (int64_t i = 0; i < pf; i++)
				cr_assert(!memcmp(&g1[i], &s.grads[i], sizeof(float)),
					  "n=%lld: grads[%lld] is %.9g with 1 thread, %.9g with %d", (long long)n,
					  (long long)i, g1[i], s.grads[i], threads);
			cr_assert(!memcmp(o1, s.out, sizeof(float) * (size_t)(n * m->output_size)),
				  "n=%lld: infer differs between 1 and %d threads", (long long)n, threads);
			cr_assert(loss == l1, "n=%lld: loss %.17g with 1 thread, %.17g with %d", (long long)n, l1, loss,
				  threads);
		}
	}
	free(g1);
	free(o1);
	state_free(&s);
	jit_free(&j);
}

/* The update of every optimizer, with weight decay over runs of decayed and
 * spared tensors that cross the threads' 4096-float blocks: parameters and
 * optimizer state after three steps are the same bits for 1, 2 and 3
 * threads; so is the clipping's global norm, summed over the blocks. */
Test(determinism, every_optimizer_on_one_two_and_three_threads)
{
	static const char *opts[] = {
		"sgd(lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01)",
		"sgd(lr: 0.1, momentum: 0.9, dampening: 0.5, weight_decay: 0.01)",
		"adam(lr: 0.01, amsgrad: true, weight_decay: 0.1)",
		"adamw(lr: 0.01, amsgrad: true)",
		"rmsprop(lr: 0.01, momentum: 0.5, centered: true, weight_decay: 0.02)",
		"sgd(lr: 0.1, momentum: 0.9, clip_norm: 0.01, clip_value: 0.001)",
	};
	const char *base = nnc_strndup(det_src, strstr(det_src, "optimizer") - det_src);
	const char *train = strstr(det_src, "train {");
	for (size_t oi = 0; oi < NELEMS(opts); oi++) {
		jitted j = jit_graph(build_graph(nnc_sprintf("%soptimizer %s\n%s", base, opts[oi], train), true), true);
		const nnrt_model *m = j.m;
		state s = state_new(m);
		int64_t pf = m->param_floats, of = m->opt_floats;
		cr_assert_gt(pf, 4096, "the update must span two blocks");
		float *p1 = th_falloc(pf), *o1 = th_falloc(of);
		for (int threads = 1; threads <= 3; threads++) {
			nnrt_set_threads(threads);
			th_fill_params(m, s.params, 700);
			memset(s.opt, 0, sizeof(float) * (size_t)of);
			for (int step = 1; step <= 3; step++) {
				th_fill_batch(&s, step == 2 ? 29 : 64, 710 + (uint64_t)step);
				s.a.hp[NNRT_HP_ADAM_C1] = (float)(1 / (1 - pow(0.9, step)));
				s.a.hp[NNRT_HP_ADAM_C2] = (float)(1 / (1 - pow(0.999, step)));
				s.a.hp[NNRT_HP_DAMP] = step == 1 ? 1 : 0.5f;
				s.a.hp[NNRT_HP_WD] = (float)m->weight_decay;
				s.a.hp[NNRT_HP_CLIP_NORM] = m->clip_norm;
				s.a.hp[NNRT_HP_CLIP_VALUE] = m->clip_value;
				run(&s, m->train_step, step == 2 ? 29 : 64, (float)m->lr);
			}
			if (threads == 1) {
				memcpy(p1, s.params, sizeof(float) * (size_t)pf);
				memcpy(o1, s.opt, sizeof(float) * (size_t)of);
				continue;
			}
			cr_assert(!memcmp(p1, s.params, sizeof(float) * (size_t)pf), "%s: params differ between 1 and %d threads",
				  opts[oi], threads);
			cr_assert(!memcmp(o1, s.opt, sizeof(float) * (size_t)of),
				  "%s: optimizer state differs between 1 and %d threads", opts[oi], threads);
		}
		free(p1);
		free(o1);
		state_free(&s);
		jit_free(&j);
	}
}

/* ---- 5. the IR after fusion, and the memory plan ---------------------- */

static const char tiny_src[] =
	"model tiny\n"
	"input x : f32[7]\n"
	"label y : class(3)\n"
	"h = x |> dense(5) |> relu\n"
	"logits = h |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\n"
	"train {\n  data: csv(\"unused.csv\", x: [0], y: [1])\n  batch: 4\n}\n";

/* The dump after nnc_fuse, before the plan places anything but gradients:
 * relu folded into the first dense (act=relu), its derivative into the
 * backward product (dact=relu), no relu or relu_grad node left. */
static const char tiny_fused_ir[] =
	"model tiny  ; batch 4, 4 params (96 floats)\n"
	"forward:\n"
	"  %0 = input() : [n, 7]  ; x\n"
	"  %1 = label() : [n, 1]  ; y\n"
	"  %2 = param() : [7, 5]  ; dense1.weight\n"
	"  %3 = param() : [5]  ; dense1.bias\n"
	"  %4 = dense(%0, %2, %3) act=relu : [n, 5]  ; h\n"
	"  %6 = param() : [5, 3]  ; dense2.weight\n"
	"  %7 = param() : [3]  ; dense2.bias\n"
	"  %8 = dense(%4, %6, %7) : [n, 3]  ; logits\n"
	"  %9 = softmax_cross_entropy(%8, %1) : []\n"
	"backward:\n"
	"  %10 = softmax_cross_entropy_grad(%8, %1) : [n, 3]\n"
	"  %11 = transpose(%6) : [3, 5]\n"
	"  %12 = dense_bwd_x(%10, %11, %4) dact=relu : [n, 5]\n"
	"  %13 = dense_bwd_w(%4, %10) : [5, 3]  @grads+64\n"
	"  %14 = bias_grad(%10) : [3]  @grads+80\n"
	"  %16 = dense_bwd_w(%0, %12) : [7, 5]  @grads+0\n"
	"  %17 = bias_grad(%12) : [5]  @grads+48\n"
	"  %18 = sgd_update() : []\n"
	"inference output:\n"
	"  %19 = softmax(%8) : [n, 3]\n";

Test(ir, golden_after_fusion)
{
	nnc_buf diags = {0};
	nnc_diag_reset();
	nnc_diag_capture(&diags);
	nnc_program *prog = nnc_parse(make_source(tiny_src));
	nnc_train_config cfg;
	ir_graph *g = prog ? nnc_sema(prog, &cfg) : NULL;
	nnc_diag_capture(NULL);
	cr_assert(g, "%s", diags.data ? diags.data : "");
	nnc_buf_free(&diags);
	nnc_autodiff(g, &cfg.opt);
	nnc_add_inference_tail(g);
	nnc_fuse(g);
	nnc_buf b = {0};
	ir_dump(g, &b);
	cr_assert_str_eq(b.data, tiny_fused_ir, "IR after fusion:\n%s", b.data);
	nnc_buf_free(&b);
}

/* Without fusion the same program keeps relu and relu_grad as nodes. */
Test(ir, unfused_keeps_activation_nodes)
{
	ir_graph *g = build_graph(tiny_src, false);
	nnc_buf b = {0};
	ir_dump(g, &b);
	cr_assert(strstr(b.data, " = relu(%4) : [n, 5]  ; h"), "%s", b.data);
	cr_assert(strstr(b.data, " = relu_grad(%5, %12) : [n, 5]"), "%s", b.data);
	cr_assert(!strstr(b.data, "act="), "%s", b.data);
	nnc_buf_free(&b);
}

/* The live nodes after `id` that read it (once per operand). */
static int live_readers(const ir_graph *g, int id)
{
	int c = 0;
	for (int i = id + 1; i < g->n; i++)
		for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].nin; k++)
			c += g->nodes[i].in[k] == id;
	return c;
}

/* Every fusable activation of the test networks is fused: after nnc_fuse no
 * live activation (acts.def) reads a dense whose only user it is, and no
 * activation derivative reads a dense_bwd_x it could have been folded into. */
Test(ir, every_fusable_activation_is_fused)
{
	for (size_t ni = 0; ni < NELEMS(nets); ni++) {
		ir_graph *g = build_graph(with_optimizer(nets[ni].src, "sgd(lr: 0.1)"), true);
		for (int i = 0; i < g->n; i++) {
			ir_node *n = &g->nodes[i];
			if (n->dead)
				continue;
			bool dact = ir_op_is_act_grad(n->op), act = ir_op_act(n->op) != ACT_NONE && !dact;
			if (!act && !dact)
				continue;
			int src = act ? n->in[0] : n->in[1];
			ir_node *d = &g->nodes[src];
			int users = live_readers(g, src);
			cr_assert(!(act && d->op == IR_DENSE && users == 1),
				  "%s: %%%d = %s of dense %%%d was not fused", nets[ni].name, i, ir_op_name(n->op), src);
			cr_assert(!(dact && d->op == IR_DENSE_BWD_X && users == 1 && d->storage != ST_GRAD),
				  "%s: %%%d = %s of dense_bwd_x %%%d was not fused", nets[ni].name, i, ir_op_name(n->op),
				  src);
		}
	}
}

/* The activations of actnet fuse as acts.def says: those whose derivative
 * reads y into the dense epilogue (in place) and the backward product,
 * those that read x too, but the epilogue writes the activation into its
 * own node's tensor and keeps x for the derivative; options travel with
 * them. */
Test(ir, activations_fuse_as_their_table_says)
{
	ir_graph *g = build_graph(with_optimizer(act_src, "sgd(lr: 0.1)"), true);
	nnc_buf b = {0};
	ir_dump(g, &b);
	static const char *const want[] = {
		"act=leaky_relu(alpha=0.2) : [n, 8]  ; a", "act=elu(alpha=0.7) : [n, 8]  ; b", "act=softplus : [n, 8]  ; c",
		"act=silu into %17 : [n, 8]", "= silu(%16) in-epilogue of %16 : [n, 8]  ; d",
		"act=gelu(approximate=true) into %21 : [n, 8]", "= gelu(%20) approximate=true in-epilogue of %20 : [n, 8]  ; e",
		"act=gelu(approximate=false) into %25 : [n, 8]", "= gelu(%24) approximate=false in-epilogue of %24 : [n, 8]  ; f",
		"dact=leaky_relu(alpha=0.2)", "dact=elu(alpha=0.7)", "dact=softplus", "dact=silu",
		"dact=gelu(approximate=true)", "dact=gelu(approximate=false)",
	};
	for (size_t i = 0; i < NELEMS(want); i++)
		cr_expect(strstr(b.data, want[i]), "no '%s' in\n%s", want[i], b.data);
	for (int i = 0; i < g->n; i++)
		cr_expect(g->nodes[i].dead || !ir_op_is_act_grad(g->nodes[i].op), "%%%d = %s was not fused:\n%s", i,
			  ir_op_name(g->nodes[i].op), b.data);
	nnc_buf_free(&b);
}

Test(plan, live_workspace_tensors_never_overlap)
{
	const char *srcs[NELEMS(nets) + 2];
	for (size_t i = 0; i < NELEMS(nets); i++)
		srcs[i] = with_optimizer(nets[i].src, "adam(lr: 0.01)");
	srcs[NELEMS(nets)] = det_src;
	srcs[NELEMS(nets) + 1] = tiny_src;
	for (size_t i = 0; i < NELEMS(srcs); i++)
		for (int fuse = 0; fuse < 2; fuse++) {
			ir_graph *g = build_graph(srcs[i], fuse);
			int ws = 0;
			for (int k = 0; k < g->n; k++)
				ws += !g->nodes[k].dead && (g->nodes[k].entries & IR_ENTRY_TRAIN) && g->nodes[k].storage == ST_WS;
			cr_assert(ws >= 3, "%s: only %d workspace tensors", g->model_name, ws);
			const char *why = th_plan_violation(g, IR_ENTRY_TRAIN | IR_ENTRY_EVAL);
			cr_assert(!why, "%s (%s): %s", g->model_name, fuse ? "fused" : "unfused", why);
			why = th_plan_violation(g, IR_ENTRY_INFER);
			cr_assert(!why, "%s (%s), inference tail: %s", g->model_name, fuse ? "fused" : "unfused", why);
		}
}

/* Each node lists the entries that run it (ir.h, IR_ENTRY_*): sema's
 * forward graph and loss run in the train and eval steps, autodiff's nodes
 * in the train step only, inference runs exactly the output's ancestors
 * and its tail; --inference-only drops the train entry and its nodes. */
Test(entries, each_node_lists_the_entries_that_run_it)
{
	for (int fuse = 0; fuse < 2; fuse++) {
		ir_graph *g = build_graph(with_optimizer(ops_src, "adam(lr: 0.01)"), fuse);
		bool *need = ir_ancestors(g, g->output);
		int train_only = 0, step = 0;
		for (int i = 0; i < g->n; i++) {
			ir_node *n = &g->nodes[i];
			if (n->dead)
				continue;
			cr_assert(n->entries, "%%%d %s runs in no entry", i, ir_op_name(n->op));
			cr_assert_eq(!!(n->entries & IR_ENTRY_INFER), need[i], "%%%d %s: inference runs %s", i,
				     ir_op_name(n->op), need[i] ? "without it" : "it needlessly");
			if (n->entries & IR_ENTRY_EVAL)
				cr_assert(n->entries & IR_ENTRY_TRAIN, "%%%d %s: evaluated, not trained", i, ir_op_name(n->op));
			train_only += n->entries == IR_ENTRY_TRAIN;
			step += !!(n->entries & IR_ENTRY_EVAL);
		}
		cr_assert_eq(g->nodes[g->loss].entries, IR_ENTRY_TRAIN | IR_ENTRY_EVAL);
		cr_assert_eq(g->nodes[g->output].entries, IR_ENTRY_INFER);
		cr_assert_eq(g->nodes[g->input].entries, IR_ENTRY_ALL);
		cr_assert_eq(g->nodes[g->n - 2].op, IR_ADAM_UPDATE);
		cr_assert_eq(g->nodes[g->n - 2].entries, IR_ENTRY_TRAIN);
		cr_assert(train_only > 5 && step > 10, "%d train-only nodes, %d evaluated", train_only, step);
		int *ids = nnc_alloc(sizeof(int) * (size_t)g->n);
		int ntrain = ir_entry_nodes(g, IR_ENTRY_TRAIN, ids);
		cr_assert_eq(ntrain, train_only + step);
		cr_assert_eq(ids[ntrain - 1], g->n - 2, "the update ends the train step");

		ir_drop_training(g);
		cr_assert_eq(ir_entry_nodes(g, IR_ENTRY_TRAIN, ids), 0);
		cr_assert_eq(ir_entry_nodes(g, IR_ENTRY_EVAL, ids), step);
		cr_assert(g->nodes[g->n - 2].dead);
		cr_assert(!g->nodes[g->loss].dead && !g->nodes[g->output].dead);
	}
}

/* The tests' way to give a model state (no op of the language has any
 * yet): a counter of 3 values starting at 0.5, which STEP_COUNT, a node of
 * the train step only, increments. */
static void add_step_counter(ir_graph *g)
{
	int64_t dims[1] = {3};
	int s = ir_add_state(g, "steps", 1, dims, 0.5);
	uint8_t was = g->adding;
	g->adding = IR_ENTRY_TRAIN;
	int c = ir_add(g, IR_STEP_COUNT, 1, &s);
	cr_assert(ir_infer_shape(g, c));
	g->adding = was;
}

/* State exists end to end: the plan puts it in its own array, the model
 * descriptor lists it, an instance initialises it, the train step (once
 * per step, whatever the chunks) changes it and the eval step and
 * inference do not, and a checkpoint carries it. */
Test(state, the_train_step_updates_state_and_checkpoints_carry_it)
{
	for (int chunks = 1; chunks <= 2; chunks++) {
		th_chunks = chunks;
		th_graph_hook = add_step_counter;
		ir_graph *g = build_graph(with_optimizer(ops_src, "adam(lr: 0.01)"), true);
		th_graph_hook = NULL;
		th_chunks = 0;
		cr_assert_eq(g->chunks, chunks);
		int counter = -1;
		for (int i = 0; i < g->n; i++)
			if (!g->nodes[i].dead && g->nodes[i].op == IR_STEP_COUNT)
				counter = i;
		cr_assert(counter >= 0, "fusion removed the state op");
		cr_assert_eq(g->nodes[counter].storage, ST_STATE);
		cr_assert_eq(g->nodes[counter].entries, IR_ENTRY_TRAIN);
		cr_assert_eq(g->state_floats, 16);

		jitted j = th_jit(g, false, true);
		const nnrt_model *m = j.m;
		cr_assert_eq(m->n_state, 1);
		cr_assert_eq(m->state_floats, 16);
		cr_assert_str_eq(m->state[0].name, "steps");
		cr_assert_eq(m->state[0].size, 3);
		cr_assert_eq(nnrt_model_state_index(m, "steps"), 0);
		cr_assert_eq(nnrt_model_state_index(m, "dense1.weight"), -1);
		int err = 0;
		nnrt_instance *inst = nnrt_instance_new(m, &err);
		cr_assert(inst, "instance: error %d", err);
		float s[3], x[8 * 7];
		int32_t y[8];
		for (int i = 0; i < 8 * 7; i++)
			x[i] = (float)(i % 5) * 0.25f;
		for (int i = 0; i < 8; i++)
			y[i] = i % 2;
		cr_assert_eq(nnrt_instance_get_state(inst, 0, s, 3), NNRT_OK);
		cr_assert(s[0] == 0.5f && s[1] == 0.5f && s[2] == 0.5f, "initial state %g %g %g", s[0], s[1], s[2]);
		float loss;
		cr_assert_eq(nnrt_instance_train_step(inst, x, y, 8, &loss), NNRT_OK);
		cr_assert_eq(nnrt_instance_train_step(inst, x, y, 5, &loss), NNRT_OK);
		double el, acc;
		cr_assert_eq(nnrt_instance_evaluate(inst, x, y, 8, &el, &acc), NNRT_OK);
		float out[8 * 2];
		cr_assert_eq(nnrt_instance_infer(inst, x, 8, out), NNRT_OK);
		cr_assert_eq(nnrt_instance_get_state(inst, 0, s, 3), NNRT_OK);
		for (int k = 0; k < 3; k++)
			cr_assert_eq(s[k], 2.5f, "chunks %d: state[%d] = %g after two train steps", chunks, k, s[k]);
		cr_assert_eq(nnrt_instance_state(inst)[0], 2.5f);

		char path[] = "/tmp/nnc_state_XXXXXX";
		int fd = mkstemp(path);
		cr_assert(fd >= 0);
		close(fd);
		cr_assert_eq(nnrt_instance_save(inst, path), NNRT_OK, "%s", nnrt_instance_error(inst));
		float zero[3] = {0, 0, 0};
		cr_assert_eq(nnrt_instance_set_state(inst, 0, zero, 3), NNRT_OK);
		cr_assert_eq(nnrt_instance_set_state(inst, 1, zero, 3), NNRT_ERR_ARG);
		cr_assert_eq(nnrt_instance_set_state(inst, 0, zero, 2), NNRT_ERR_SIZE);
		cr_assert_eq(nnrt_instance_load(inst, path), NNRT_OK, "%s", nnrt_instance_error(inst));
		unlink(path);
		cr_assert_eq(nnrt_instance_get_state(inst, 0, s, 3), NNRT_OK);
		for (int k = 0; k < 3; k++)
			cr_assert_eq(s[k], 2.5f, "state[%d] = %g after the load", k, s[k]);
		nnrt_instance_free(inst);
		th_jit_free(&j);
	}
}

/* The header of a model with state: its size macros, an index and size per
 * state tensor, and the accessors, compiling cleanly as C. */
Test(state, the_header_gives_sizes_indices_and_accessors)
{
	th_graph_hook = add_step_counter;
	ir_graph *g = build_graph(with_optimizer(ops_src, "adam(lr: 0.01)"), true);
	th_graph_hook = NULL;
	nnc_buf h = {0};
	nnc_header(g, th_config(g), "sc", false, "sc.o", &h);
	static const char *const want[] = {
		"#define SC_STATE_TENSORS 1 ", "#define SC_STATE_FLOATS 16 ", "#define SC_S_STEPS 0 ",
		"#define SC_S_STEPS_SIZE 3\n", "static inline int sc_get_state(", "static inline float *sc_state(",
	};
	for (size_t i = 0; i < NELEMS(want); i++)
		cr_assert(strstr(h.data, want[i]), "the header lacks '%s':\n%s", want[i], h.data);
	char dir[256], *out;
	sh_mktemp(dir, sizeof dir, "hdr");
	char path[300];
	snprintf(path, sizeof path, "%s/sc.h", dir);
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs(h.data, f);
	fclose(f);
	int rc = sh_run(&out, "cd '%s' && printf '#include \"sc.h\"\\nint main(void) { return SC_S_STEPS + (int)sizeof(&sc_get_state) * 0; }\\n' > u.c && "
			"cc -std=c11 -Wall -Wextra -Wpedantic -Werror -I'%s/runtime' -c u.c -o /dev/null",
			dir, NNC_SOURCE_DIR);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	sh_rmtree(dir);
	nnc_buf_free(&h);
}

/* The tests' way to draw from the step's random stream (no op of the
 * language does yet): the output becomes RANDOM of the input's shape. */
static void add_random_output(ir_graph *g)
{
	int r = ir_add(g, IR_RANDOM, 1, &g->input);
	cr_assert(ir_infer_shape(g, r));
	g->output = r;
}

/* The random stream is a function of (seed, global sample index, element)
 * alone: under 1, 2 or 3 chunks and 1 or 2 threads, for a full and a
 * partial batch, the generated code draws exactly nnrt_random_uniform's
 * values, sample i of the step being sample0 + i. */
Test(random, the_stream_is_independent_of_chunks_and_threads)
{
	const uint64_t seed = 0x5eed0123456789abull;
	const int64_t sample0 = 4000000007;
	int64_t distinct = 0;
	for (int chunks = 1; chunks <= 3; chunks++) {
		th_chunks = chunks;
		th_graph_hook = add_random_output;
		ir_graph *g = build_graph(with_optimizer(ops_src, "sgd(lr: 0.1)"), true);
		th_graph_hook = NULL;
		th_chunks = 0;
		cr_assert_eq(g->chunks, chunks);
		jitted j = th_jit(g, false, true);
		const nnrt_model *m = j.m;
		cr_assert_eq(m->output_size, 7);
		float *params = th_falloc(m->param_floats), *ws = th_falloc(m->ws_floats), *x = th_falloc(8 * 7);
		float out[8 * 7];
		double metrics[4];
		for (int threads = 1; threads <= 2; threads++)
			for (int64_t n = 8; n >= 5; n -= 3) {
				memset(out, 0, sizeof out);
				nnrt_step_args a = {.params = params, .ws = ws, .x = x, .out = out, .metrics = metrics, .n = n,
						    .seed = seed, .sample0 = sample0};
				nnrt_run_threads(m->infer, &a, threads);
				for (int64_t i = 0; i < n; i++)
					for (int64_t e = 0; e < 7; e++) {
						float want = nnrt_random_uniform(seed, sample0 + i, e);
						cr_assert(want >= 0 && want < 1);
						cr_assert_eq(out[i * 7 + e], want, "chunks %d, threads %d, n %lld: sample %lld, value %lld: %.9g, not %.9g",
							     chunks, threads, (long long)n, (long long)i, (long long)e, out[i * 7 + e], want);
						distinct += out[i * 7 + e] != out[0];
					}
			}
		free(params), free(ws), free(x);
		th_jit_free(&j);
	}
	cr_assert_gt(distinct, 200, "the stream repeats itself");
}

/* nnrt_random_bits against values worked out from splitmix64 by hand
 * (its finaliser on seed ^ mix(sample), plus the element, mixed again),
 * so that the C reference the test above trusts is itself the function
 * nnrt.h documents. */
Test(random, the_reference_is_splitmix64s_finaliser)
{
	/* mix64(0) = 0xe220a8397b1dcdaf, splitmix64's first output from 0 */
	cr_assert_eq(nnrt_mix64(0), 0xe220a8397b1dcdafull);
	uint64_t h = nnrt_mix64(nnrt_mix64(7 ^ nnrt_mix64(3)) + 5);
	cr_assert_eq(nnrt_random_bits(7, 3, 5), (uint32_t)(h >> 32));
	cr_assert_eq(nnrt_random_uniform(7, 3, 5), (float)(uint32_t)(h >> 40) * 0x1p-24f);
	cr_assert_neq(nnrt_random_bits(7, 3, 5), nnrt_random_bits(7, 5, 3));
	cr_assert_neq(nnrt_random_bits(7, 3, 5), nnrt_random_bits(8, 3, 5));
}

/* The checker rejects a chunked training plan without room for the chunks'
 * partial gradients (what the planner gave a loss reaching no parameter). */
Test(plan, the_checker_catches_missing_partial_gradients)
{
	ir_graph *g = build_graph(with_optimizer(ops_src, "sgd(lr: 0.1)"), true);
	cr_assert(g->chunks > 1 && !th_plan_violation(g, IR_ENTRY_TRAIN | IR_ENTRY_EVAL));
	g->ws_metrics = g->ws_partials;
	cr_assert(th_plan_violation(g, IR_ENTRY_TRAIN | IR_ENTRY_EVAL), "a plan without partial gradients passes");
}

/* The checker rejects a gradient written outside its parameter's place. */
Test(plan, the_checker_catches_a_misplaced_gradient)
{
	ir_graph *g = build_graph(with_optimizer(ops_src, "sgd(lr: 0.1)"), true);
	int k = 0;
	while (k < g->n && (g->nodes[k].dead || g->nodes[k].storage != ST_GRAD))
		k++;
	cr_assert(k < g->n);
	g->nodes[k].offset += 16;
	cr_assert(th_plan_violation(g, IR_ENTRY_TRAIN | IR_ENTRY_EVAL), "a gradient 16 floats off its place passes");
}

/* The checker rejects a plan where a tensor is put on top of a live one. */
Test(plan, the_checker_catches_an_overlap)
{
	ir_graph *g = build_graph(with_optimizer(ops_src, "sgd(lr: 0.1)"), true);
	cr_assert(!th_plan_violation(g, IR_ENTRY_TRAIN | IR_ENTRY_EVAL));
	/* a node and the first workspace operand it reads are live together */
	bool broke = false;
	for (int i = 0; i < g->n && !broke; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || !(n->entries & IR_ENTRY_TRAIN) || n->storage != ST_WS)
			continue;
		for (int k = 0; k < n->nin; k++) {
			ir_node *o = &g->nodes[n->in[k]];
			if (o->storage == ST_WS && o->batched == n->batched) {
				n->offset = o->offset;
				broke = true;
				break;
			}
		}
	}
	cr_assert(broke);
	cr_assert(th_plan_violation(g, IR_ENTRY_TRAIN | IR_ENTRY_EVAL), "an output placed on its own operand passes");
}

/* ---- 6. semantic and shape errors, exact text --------------------------- */

/* A valid program; each case replaces one line of it. */
#define L_MODEL "model m\n"
#define L_INPUT "input x : f32[7]\n"
#define L_LABEL "label y : class(2)\n"
#define L_LOSS "loss softmax_cross_entropy(logits, y)\n"
#define L_OPT "optimizer sgd(lr: 0.1)\n"
#define L_TRAIN "train {\n  data: parity(bits: 7)\n  batch: 8\n}\n"

typedef struct diag_case {
	const char *name;
	const char *src;
	const char *first;  /* the first line of the diagnostics, exactly */
	const char *also;   /* another whole line that must appear, or NULL */
	int errors;         /* error count */
} diag_case;

static const diag_case diag_cases[] = {
	{"add of [n, 5] and [n, 3]",
	 L_MODEL L_INPUT L_LABEL "a = x |> dense(5)\nb = x |> dense(3)\nc = a + b\nlogits = c |> dense(2)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":6:5: error: 'add' needs operands of the same shape, but got [n, 5] and [n, 3]",
	 SRC_PATH ":4:5: note: left operand a has shape [n, 5]", 1},
	{"sub of input and hidden",
	 L_MODEL L_INPUT L_LABEL "a = x |> dense(5)\nlogits = (x - a) |> dense(2)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":5:11: error: 'sub' needs operands of the same shape, but got [n, 7] and [n, 5]",
	 SRC_PATH ":2:7: note: left operand x has shape [n, 7]", 1},
	{"mul of [n, 2] and [n, 3]",
	 L_MODEL L_INPUT L_LABEL "a = x |> dense(2)\nb = x |> dense(3)\nlogits = a * b\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":6:10: error: 'mul' needs operands of the same shape, but got [n, 2] and [n, 3]", NULL, 1},
	{"unknown layer",
	 L_MODEL L_INPUT L_LABEL "h = x |> dense(5) |> relo\nlogits = h |> dense(2)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":4:22: error: unknown layer or function 'relo'", "hint: did you mean 'relu'?", 1},
	{"unknown name",
	 L_MODEL L_INPUT L_LABEL "hidden = x |> dense(5)\nlogits = hiden |> dense(2)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":5:10: error: unknown name 'hiden'", "hint: did you mean 'hidden'?", 1},
	{"mse with a class label",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2)\nloss mse(logits, y)\n" L_OPT L_TRAIN,
	 SRC_PATH ":5:18: error: 'mse' needs a real-valued f32[...] label, but 'y' is class(N)",
	 "hint: declare it as: label y : f32[k], or use softmax_cross_entropy", 1},
	{"softmax_cross_entropy with a real label",
	 L_MODEL L_INPUT "label y : f32[2]\nlogits = x |> dense(2)\n" L_LOSS L_OPT
	 "train {\n  data: csv(\"d.csv\", x: [0], y: [1])\n}\n",
	 SRC_PATH ":5:36: error: 'softmax_cross_entropy' needs a class(N) label, but 'y' is a real-valued f32[...]",
	 "hint: declare it as: label y : class(N)", 1},
	{"logits do not match the classes",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(3)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":5:6: error: 'softmax_cross_entropy' needs 2 logits per sample to match label class(2), but got shape [n, 3]",
	 NULL, 1},
	{"negative learning rate",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2)\n" L_LOSS "optimizer sgd(lr: -1)\n" L_TRAIN,
	 SRC_PATH ":6:19: error: the learning rate must be positive, not -1", NULL, 1},
	{"momentum of 1",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2)\n" L_LOSS "optimizer sgd(lr: 0.1, momentum: 1)\n" L_TRAIN,
	 SRC_PATH ":6:34: error: momentum must be in [0, 1), not 1", NULL, 1},
	{"unknown optimizer",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2)\n" L_LOSS "optimizer adma(lr: 0.1)\n" L_TRAIN,
	 SRC_PATH ":6:11: error: unknown optimizer 'adma'", "hint: did you mean 'adam'?", 1},
	{"batch of 0",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2)\n" L_LOSS L_OPT "train {\n  data: parity(bits: 7)\n  batch: 0\n}\n",
	 SRC_PATH ":9:10: error: the batch size must be a whole number >= 1, not 0", NULL, 1},
	{"synthetic set with the wrong input size",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2)\n" L_LOSS L_OPT "train {\n  data: moons(count: 100)\n}\n",
	 SRC_PATH ":8:9: error: moons() gives 2 features per sample, but input 'x' has shape [n, 7]", NULL, 1},
	{"parity with the wrong number of bits",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2)\n" L_LOSS L_OPT "train {\n  data: parity(bits: 5)\n}\n",
	 SRC_PATH ":8:9: error: parity() gives 5 features per sample, but input 'x' has shape [n, 7]", NULL, 1},
	{"synthetic set with the wrong number of classes",
	 L_MODEL "input x : f32[2]\nlabel y : class(3)\nlogits = x |> dense(3)\n" L_LOSS L_OPT
	 "train {\n  data: xor(count: 10)\n}\n",
	 SRC_PATH ":8:9: error: xor() has 2 classes, but label 'y' is class(3)", NULL, 1},
	{"unknown train setting",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2)\n" L_LOSS L_OPT
	 "train {\n  data: parity(bits: 7)\n  epoch: 3\n}\n",
	 SRC_PATH ":9:3: error: unknown train setting 'epoch'", "hint: did you mean 'epochs'?", 1},
	{"dense option misspelt",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2, bais: false)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":4:24: error: 'dense' has no option 'bais'", "hint: did you mean 'bias'?", 1},
	{"dense without units",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":4:10: error: 'dense' needs the number of units, e.g. dense(128)", NULL, 1},
	{"tensor divided by a tensor",
	 L_MODEL L_INPUT L_LABEL "a = x |> dense(2)\nlogits = a / a\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":5:10: error: dividing a tensor by a tensor is not supported; divide by a number", NULL, 1},
	{"division by zero",
	 L_MODEL L_INPUT L_LABEL "a = x |> dense(2)\nlogits = a / (1 - 1)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":5:15: error: division by zero", NULL, 1},
	{"name defined twice",
	 L_MODEL L_INPUT L_LABEL "h = x |> dense(2)\nh = h |> relu\nlogits = h\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":5:1: error: 'h' is already defined", SRC_PATH ":4:1: note: 'h' was first defined here", 1},
	{"activation option below its minimum",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2) |> leaky_relu(alpha: -0.5)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":4:45: error: 'alpha' of leaky_relu must be at least 0, not -0.5", NULL, 1},
	{"activation option beyond float",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2) |> elu(alpha: 1e39)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":4:38: error: 'alpha' of elu is too large: 1e+39 is beyond the range of a 32-bit float (about 3.4e38)",
	 NULL, 1},
	{"boolean activation option given a number",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2) |> gelu(approximate: 1)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":4:45: error: 'approximate' of gelu must be true or false", NULL, 1},
	{"option of an activation that has none",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2) |> silu(alpha: 1)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":4:32: error: 'silu' has no option 'alpha'", "hint: 'silu' takes no options", 1},
	{"activation option misspelt",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2) |> elu(alpah: 1)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":4:31: error: 'elu' has no option 'alpah'", "hint: did you mean 'alpha'?", 1},
	{"activation option given by position",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2) |> leaky_relu(0.2)\n" L_LOSS L_OPT L_TRAIN,
	 SRC_PATH ":4:38: error: too many arguments to 'leaky_relu' (it takes 1 plus named options)", NULL, 1},
	{"two independent errors are both reported",
	 L_MODEL L_INPUT L_LABEL "logits = x |> dense(2) |> sigmoud\n" L_LOSS "optimizer sgd(lr: 0)\n" L_TRAIN,
	 SRC_PATH ":4:27: error: unknown layer or function 'sigmoud'",
	 SRC_PATH ":6:19: error: the learning rate must be positive, not 0", 2},
};


Test(diagnostics, exact_text)
{
	cr_assert(NELEMS(diag_cases) >= 12);
	for (size_t i = 0; i < NELEMS(diag_cases); i++) {
		const diag_case *dc = &diag_cases[i];
		nnc_buf b = {0};
		nnc_diag_set_color(0);
		nnc_diag_reset();
		nnc_diag_capture(&b);
		nnc_program *prog = nnc_parse(make_source(dc->src));
		cr_assert(prog, "%s: syntax error:\n%s", dc->name, b.data ? b.data : "");
		nnc_train_config cfg;
		ir_graph *g = nnc_sema(prog, &cfg);
		nnc_diag_capture(NULL);
		const char *text = b.data ? b.data : "";
		char first[512] = "";
		sh_nth_line(text, 0, first, sizeof first);
		cr_expect(!g, "%s: the program compiled", dc->name);
		cr_expect_str_eq(first, dc->first, "%s: first line\n  got:  %s\n  want: %s\nall:\n%s", dc->name, first,
				 dc->first, text);
		if (dc->also)
			cr_expect(sh_has_line(text, dc->also), "%s: no line '%s' in\n%s", dc->name, dc->also, text);
		cr_expect_eq(nnc_diag_error_count(), dc->errors, "%s: %d errors, want %d:\n%s", dc->name,
			     nnc_diag_error_count(), dc->errors, text);
		nnc_buf_free(&b);
	}
}

/* One case in full: the source line and the caret under the whole span. */
Test(diagnostics, caret_under_the_span)
{
	const char *src = L_MODEL L_INPUT L_LABEL "a = x |> dense(5)\nb = x |> dense(3)\nc = a + b\nlogits = c |> dense(2)\n" L_LOSS L_OPT L_TRAIN;
	nnc_buf b = {0};
	nnc_diag_set_color(0);
	nnc_diag_reset();
	nnc_diag_capture(&b);
	nnc_program *prog = nnc_parse(make_source(src));
	cr_assert(prog);
	nnc_train_config cfg;
	cr_assert(!nnc_sema(prog, &cfg));
	nnc_diag_capture(NULL);
	cr_assert_str_eq(b.data,
			 SRC_PATH ":6:5: error: 'add' needs operands of the same shape, but got [n, 5] and [n, 3]\n"
			 "    6 | c = a + b\n"
			 "      |     ^~~~~\n"
			 SRC_PATH ":4:5: note: left operand a has shape [n, 5]\n"
			 "    4 | a = x |> dense(5)\n"
			 "      |     ^~~~~~~~~~~~~\n"
			 SRC_PATH ":5:5: note: right operand b has shape [n, 3]\n"
			 "    5 | b = x |> dense(3)\n"
			 "      |     ^~~~~~~~~~~~~\n");
	nnc_buf_free(&b);
}
