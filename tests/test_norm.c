/*
 * test_norm.c - batch normalisation, compiled by nnc and run in this process
 * (the JIT harness of tests/jit_harness.h).
 *
 * Each network is "layer1 -> [relu -> global_avgpool] -> batchnorm -> act ->
 * dense -> softmax cross-entropy", layer1 a dense layer (batchnorm per
 * feature, sample-major) or a convolution (per channel, batch-innermost), and
 * is also written as a plain double-precision C reference that reads the
 * program's parameters and state by name.  Per network and variant (fused,
 * unfused, naive kernels):
 *   train      the train step's loss with the whole batch's statistics, and
 *              the running statistics it leaves (PyTorch's update, unbiased
 *              variance), against the reference, for a full batch, a partial
 *              one (a chunk without samples) and a single sample;
 *   eval       eval_step's loss and infer()'s outputs use the running
 *              statistics (set to arbitrary values), against the reference;
 *   gradients  train_step with learning rate 0 against central differences
 *              of the reference's train-mode loss, every parameter entry
 *              (through batchnorm's x: the layer before it);
 *   threads    1, 2, 3, 4 and 8 threads give bit-identical parameters and state
 *              after three training steps; 1, 2 and 3 chunks agree within
 *              rounding (the statistics are of the whole batch, whatever the
 *              chunking: per-chunk statistics would differ by far more);
 *   steps      the running statistics after k steps against the reference.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "jit_harness.h"
#include "nnrt.h"
#include "util.h"

#define SRC_PATH "/tmp/nnc_test_norm.nn"

typedef enum { A_NONE, A_RELU, A_TANH } bn_act;

typedef struct bnnet {
	const char *name;
	const char *src;
	int64_t C0, H, W; /* the input */
	bool conv;        /* layer1: conv2d(F, 3, pad: 1), else dense(F) */
	bool gap;         /* relu and global_avgpool between layer1 and batchnorm */
	int64_t F;
	bn_act act;       /* after batchnorm */
	bool affine;
	double momentum, eps;
	int64_t K, batch;
	bool resid; /* dense: a + dense(a) after the activation */
	bool skip;  /* conv: act(batchnorm(conv(x)) + x), C0 == F (fuse.c: one pass) */
} bnnet;

#define TRAIN_BLOCK(batch) \
	"loss softmax_cross_entropy(logits, y)\n" \
	"optimizer sgd(lr: 0.1)\n" \
	"train {\n  data: idx(\"/nonexistent/a\", \"/nonexistent/b\")\n  batch: " #batch "\n}\n"

static const bnnet nets[] = {
	{"dense_tanh",
	 "model bnd\ninput x : f32[7]\nlabel y : class(3)\n"
	 "h = x |> dense(6) |> batchnorm(momentum: 0.3) |> tanh\nlogits = h |> dense(3)\n" TRAIN_BLOCK(20),
	 7, 1, 1, false, false, 6, A_TANH, true, 0.3, 1e-5, 3, 20, false, false},
	{"dense_relu_wide",
	 "model bnw\ninput x : f32[5]\nlabel y : class(4)\n"
	 "h = x |> dense(37) |> batchnorm |> relu\nlogits = h |> dense(4)\n" TRAIN_BLOCK(20),
	 5, 1, 1, false, false, 37, A_RELU, true, 0.1, 1e-5, 4, 20, false, false},
	{"dense_no_affine",
	 "model bna\ninput x : f32[7]\nlabel y : class(3)\n"
	 "h = x |> dense(6) |> batchnorm(affine: false, eps: 0.001, momentum: 1)\nlogits = h |> dense(3)\n" TRAIN_BLOCK(20),
	 7, 1, 1, false, false, 6, A_NONE, false, 1, 1e-3, 3, 20, false, false},
	{"conv_relu",
	 "model bnc\ninput x : f32[2, 5, 5]\nlabel y : class(3)\n"
	 "h = x |> conv2d(3, 3, pad: 1) |> batchnorm(momentum: 0.2) |> relu\nlogits = h |> flatten |> dense(3)\n" TRAIN_BLOCK(20),
	 2, 5, 5, true, false, 3, A_RELU, true, 0.2, 1e-5, 3, 20, false, false},
	{"conv_gap",
	 "model bng\ninput x : f32[2, 4, 4]\nlabel y : class(3)\n"
	 "h = x |> conv2d(5, 3, pad: 1) |> relu |> global_avgpool |> batchnorm |> tanh\nlogits = h |> dense(3)\n" TRAIN_BLOCK(20),
	 2, 4, 4, true, true, 5, A_TANH, true, 0.1, 1e-5, 3, 20, false, false},
	/* relu's derivative has no product after it to go into: batchnorm's
	 * backward ops apply it (fuse.c rule 4) */
	{"dense_residual",
	 "model bnr\ninput x : f32[7]\nlabel y : class(3)\n"
	 "h = x |> dense(6) |> batchnorm |> relu\nlogits = (h + (h |> dense(6))) |> dense(3)\n" TRAIN_BLOCK(20),
	 7, 1, 1, false, false, 6, A_RELU, true, 0.1, 1e-5, 3, 20, true, false},
	/* chunks of 150 samples: rows of 10 vectors, which the kernels loop over */
	{"conv_large_chunks",
	 "model bnl\ninput x : f32[2, 5, 5]\nlabel y : class(3)\n"
	 "h = x |> conv2d(3, 3, pad: 1) |> batchnorm(momentum: 0.2) |> relu\nlogits = h |> flatten |> dense(3)\n" TRAIN_BLOCK(300),
	 2, 5, 5, true, false, 3, A_RELU, true, 0.2, 1e-5, 3, 300, false, false},
	/* a residual block's end: the input added after the batchnorm, before
	 * the activation, fused into the normalising pass */
	{"conv_skip",
	 "model bns\ninput x : f32[3, 4, 4]\nlabel y : class(3)\n"
	 "h = relu((x |> conv2d(3, 3, pad: 1) |> batchnorm) + x)\nlogits = h |> flatten |> dense(3)\n" TRAIN_BLOCK(20),
	 3, 4, 4, true, false, 3, A_RELU, true, 0.1, 1e-5, 3, 20, false, true},
	/* chunks of 60 samples: rows of 4 vectors, unrolled, each vector into
	 * its own accumulator of the statistics (cg_norm.c, STAT_ACCS) */
	{"conv_rows_of_four",
	 "model bn4\ninput x : f32[2, 5, 5]\nlabel y : class(3)\n"
	 "h = x |> conv2d(3, 3, pad: 1) |> batchnorm(momentum: 0.2) |> relu\nlogits = h |> flatten |> dense(3)\n" TRAIN_BLOCK(120),
	 2, 5, 5, true, false, 3, A_RELU, true, 0.2, 1e-5, 3, 120, false, false},
};
enum { NET_DENSE_TANH, NET_DENSE_WIDE, NET_DENSE_NOAFFINE, NET_CONV, NET_GAP, NET_RESID, NET_LARGE, NET_SKIP, NET_ROWS4 };

/* ---- the double-precision reference ---- */

static int64_t pidx(const nnrt_model *m, const char *name)
{
	int i = nnrt_model_param_index(m, name);
	cr_assert(i >= 0, "no parameter %s", name);
	return m->params[i].offset;
}

static int64_t sidx(const nnrt_model *m, const char *name)
{
	int i = nnrt_model_state_index(m, name);
	cr_assert(i >= 0, "no state %s", name);
	return m->state[i].offset;
}

static double act_f(bn_act a, double v) { return a == A_RELU ? (v > 0 ? v : 0) : a == A_TANH ? tanh(v) : v; }

/* The mean loss of n samples; train: the batch's statistics (and the
 * updated running statistics into rm_new, rv_new), else the running ones;
 * probs (n x K): the softmax. */
static double ref_loss(const bnnet *nt, const nnrt_model *m, const double *P, const float *st, const float *x,
		       const int32_t *y, int64_t n, bool train, double *rm_new, double *rv_new, double *probs)
{
	const char *l1 = nt->conv ? "conv1" : "dense1", *l2 = nt->conv ? "dense1" : nt->resid ? "dense3" : "dense2";
	int64_t in = nt->C0 * nt->H * nt->W, F = nt->F, HW = nt->conv && !nt->gap ? nt->H * nt->W : 1;
	int64_t w1 = pidx(m, nnc_sprintf("%s.weight", l1)), b1 = pidx(m, nnc_sprintf("%s.bias", l1));
	int64_t w2 = pidx(m, nnc_sprintf("%s.weight", l2)), b2 = pidx(m, nnc_sprintf("%s.bias", l2));
	int64_t rm = sidx(m, "batchnorm1.running_mean"), rv = sidx(m, "batchnorm1.running_var");
	double *z = calloc((size_t)(n * F * HW), sizeof(double));
	for (int64_t s = 0; s < n; s++) {
		const float *xs = x + s * in;
		for (int64_t f = 0; f < F; f++) {
			if (!nt->conv) {
				double v = P[b1 + f];
				for (int64_t i = 0; i < in; i++)
					v += xs[i] * P[w1 + i * F + f];
				z[s * F + f] = v;
				continue;
			}
			double pool = 0;
			for (int64_t h = 0; h < nt->H; h++)
				for (int64_t w = 0; w < nt->W; w++) {
					double v = P[b1 + f];
					for (int64_t c = 0; c < nt->C0; c++)
						for (int64_t i = 0; i < 3; i++)
							for (int64_t j = 0; j < 3; j++) {
								int64_t ih = h + i - 1, iw = w + j - 1;
								if (ih >= 0 && ih < nt->H && iw >= 0 && iw < nt->W)
									v += xs[(c * nt->H + ih) * nt->W + iw] *
									     P[w1 + ((f * nt->C0 + c) * 3 + i) * 3 + j];
							}
					if (nt->gap)
						pool += (v > 0 ? v : 0) / (double)(nt->H * nt->W);
					else
						z[(s * F + f) * HW + h * nt->W + w] = v;
				}
			if (nt->gap)
				z[s * F + f] = pool;
		}
	}
	/* batchnorm per channel f over the n HW values */
	double N = (double)(n * HW);
	for (int64_t f = 0; f < F; f++) {
		double mean = 0, var = 0;
		for (int64_t s = 0; s < n; s++)
			for (int64_t p = 0; p < HW; p++)
				mean += z[(s * F + f) * HW + p];
		mean /= N;
		for (int64_t s = 0; s < n; s++)
			for (int64_t p = 0; p < HW; p++)
				var += (z[(s * F + f) * HW + p] - mean) * (z[(s * F + f) * HW + p] - mean);
		var /= N;
		if (rm_new) {
			rm_new[f] = (1 - nt->momentum) * st[rm + f] + nt->momentum * mean;
			rv_new[f] = (1 - nt->momentum) * st[rv + f] + nt->momentum * (N > 1 ? var * N / (N - 1) : var);
		}
		if (!train) {
			mean = st[rm + f];
			var = st[rv + f];
		}
		double g = nt->affine ? P[pidx(m, "batchnorm1.weight") + f] : 1;
		double b = nt->affine ? P[pidx(m, "batchnorm1.bias") + f] : 0;
		for (int64_t s = 0; s < n; s++)
			for (int64_t p = 0; p < HW; p++) {
				double *v = &z[(s * F + f) * HW + p];
				double r = nt->skip ? x[s * in + f * HW + p] : 0;
				*v = act_f(nt->act, g * (*v - mean) / sqrt(var + nt->eps) + b + r);
			}
	}
	if (nt->resid) { /* a + dense2(a), F -> F */
		int64_t wr = pidx(m, "dense2.weight"), br = pidx(m, "dense2.bias");
		double r[64];
		for (int64_t s = 0; s < n; s++) {
			for (int64_t f = 0; f < F; f++) {
				r[f] = P[br + f];
				for (int64_t i = 0; i < F; i++)
					r[f] += z[s * F + i] * P[wr + i * F + f];
			}
			for (int64_t f = 0; f < F; f++)
				z[s * F + f] += r[f];
		}
	}
	double loss = 0;
	for (int64_t s = 0; s < n; s++) {
		double lg[16] = {0}, mx = -1e300, se = 0;
		for (int64_t k = 0; k < nt->K; k++) {
			lg[k] = P[b2 + k];
			for (int64_t i = 0; i < F * HW; i++)
				lg[k] += z[s * F * HW + i] * P[w2 + i * nt->K + k];
			mx = fmax(mx, lg[k]);
		}
		for (int64_t k = 0; k < nt->K; k++)
			se += exp(lg[k] - mx);
		loss += log(se) + mx - lg[y[s]];
		for (int64_t k = 0; probs && k < nt->K; k++)
			probs[s * nt->K + k] = exp(lg[k] - mx) / se;
	}
	free(z);
	return loss / (double)n;
}

/* ---- building and running ---- */

typedef enum { V_FUSED, V_UNFUSED, V_NAIVE, NUM_VARIANTS } variant;
static const char *const variant_names[] = {"fused", "unfused", "naive"};

static jitted jit_net(const bnnet *nt, variant v, int64_t chunks)
{
	th_chunks = chunks;
	ir_graph *g = th_build_graph(SRC_PATH, nt->src, v == V_FUSED);
	th_chunks = 0;
	cr_assert(chunks == 0 || g->chunks == chunks, "%s: %lld chunks planned, %lld asked for", nt->name,
		  (long long)g->chunks, (long long)chunks);
	return th_jit(g, v == V_NAIVE, v != V_NAIVE);
}

static void run(state *s, nnrt_body_fn body, int64_t n, float lr)
{
	memset(s->a.hp, 0, sizeof s->a.hp);
	s->a.hp[NNRT_HP_LR] = lr;
	th_run(s, body, n);
}

static double *params_d(const state *s)
{
	double *P = malloc(sizeof(double) * (size_t)s->m->param_floats);
	for (int64_t i = 0; i < s->m->param_floats; i++)
		P[i] = s->params[i];
	return P;
}

static bool close_to(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(1.0, fabs(b)); }

/* train step: loss and running statistics; eval step and infer: with
 * running statistics set to arbitrary values */
static void check_forward(const bnnet *nt, const jitted *j, variant v, int64_t n)
{
	const nnrt_model *m = j->m;
	const char *how = nnc_sprintf("%s %s n=%lld", nt->name, variant_names[v], (long long)n);
	state s = th_state_new(m);
	th_fill_params(m, s.params, 11);
	th_fill_batch(&s, n, 12);
	for (int64_t i = 0; i < n * nt->C0 * nt->H * nt->W; i++)
		s.x[i] = s.x[i] * 2 + 0.5f; /* a mean and a spread to normalise away */
	double *P = params_d(&s), rmn[64], rvn[64];
	float *st0 = th_falloc(m->state_floats);
	memcpy(st0, s.st, sizeof(float) * (size_t)m->state_floats);
	double want = ref_loss(nt, m, P, st0, s.x, s.y, n, true, rmn, rvn, NULL);
	run(&s, m->train_step, n, 0);
	double got = s.metrics[0] / (double)n;
	cr_assert(close_to(got, want, 2e-5), "%s: train-step loss %.8g, the reference (batch statistics) %.8g", how, got, want);
	int64_t rm = sidx(m, "batchnorm1.running_mean"), rv = sidx(m, "batchnorm1.running_var");
	for (int64_t f = 0; f < nt->F; f++) {
		cr_assert(close_to(s.st[rm + f], rmn[f], 2e-5), "%s: running_mean[%lld] %.8g, the reference %.8g", how,
			  (long long)f, s.st[rm + f], rmn[f]);
		cr_assert(close_to(s.st[rv + f], rvn[f], 2e-5), "%s: running_var[%lld] %.8g, the reference %.8g", how,
			  (long long)f, s.st[rv + f], rvn[f]);
	}
	/* eval and infer: the running statistics */
	rng r = {77};
	for (int64_t f = 0; f < nt->F; f++) {
		s.st[rm + f] = (float)rng_uniform(&r, -1, 1);
		s.st[rv + f] = (float)rng_uniform(&r, 0.2, 3);
	}
	double *probs = malloc(sizeof(double) * (size_t)(n * nt->K));
	want = ref_loss(nt, m, P, s.st, s.x, s.y, n, false, NULL, NULL, probs);
	memcpy(st0, s.st, sizeof(float) * (size_t)m->state_floats);
	run(&s, m->eval_step, n, 0);
	got = s.metrics[0] / (double)n;
	cr_assert(close_to(got, want, 2e-5), "%s: eval-step loss %.8g, the reference (running statistics) %.8g", how, got, want);
	run(&s, m->infer, n, 0);
	for (int64_t i = 0; i < n * nt->K; i++)
		cr_assert(fabs(s.out[i] - probs[i]) <= 2e-5, "%s: infer out[%lld] %.8g, the reference %.8g", how, (long long)i,
			  s.out[i], probs[i]);
	cr_assert(!memcmp(st0, s.st, sizeof(float) * (size_t)m->state_floats), "%s: eval or infer changed the state", how);
	free(probs);
	free(P);
	free(st0);
	th_state_free(&s);
}

/* train_step's gradients (learning rate 0) against central differences of
 * the reference's train-mode loss, every entry */
static void check_gradients(const bnnet *nt, const jitted *j, variant v, int64_t n)
{
	const nnrt_model *m = j->m;
	const char *how = nnc_sprintf("%s %s n=%lld", nt->name, variant_names[v], (long long)n);
	state s = th_state_new(m);
	th_fill_params(m, s.params, 21);
	th_fill_batch(&s, n, 22);
	for (int pi = 0; pi < m->n_params; pi++)
		for (int64_t e = 0; e < m->params[pi].size; e++)
			s.grads[m->params[pi].offset + e] = NAN;
	float *st0 = th_falloc(m->state_floats);
	memcpy(st0, s.st, sizeof(float) * (size_t)m->state_floats);
	run(&s, m->train_step, n, 0);
	double *P = params_d(&s);
	for (int pi = 0; pi < m->n_params; pi++) {
		const nnrt_param_info *p = &m->params[pi];
		double *fd = malloc(sizeof(double) * (size_t)p->size), big = 0;
		for (int64_t e = 0; e < p->size; e++) {
			double *q = &P[p->offset + e], o = *q, h = 1e-5 * fmax(1, fabs(o));
			*q = o + h;
			double lp = ref_loss(nt, m, P, st0, s.x, s.y, n, true, NULL, NULL, NULL);
			*q = o - h;
			double lm = ref_loss(nt, m, P, st0, s.x, s.y, n, true, NULL, NULL, NULL);
			*q = o;
			fd[e] = (lp - lm) / (2 * h);
			big = fmax(big, fabs(fd[e]));
		}
		for (int64_t e = 0; e < p->size; e++) {
			double g = s.grads[p->offset + e];
			cr_assert(fabs(g - fd[e]) <= 1e-4 * big + 2e-3 * fabs(fd[e]) + 1e-7,
				  "%s: d loss / d %s[%lld] = %.8g, central difference %.8g (largest %.4g)", how, p->name,
				  (long long)e, g, fd[e], big);
		}
		free(fd);
	}
	free(P);
	free(st0);
	th_state_free(&s);
}

static void check_net(int which)
{
	const bnnet *nt = &nets[which];
	for (int v = 0; v < NUM_VARIANTS; v++) {
		jitted j = jit_net(nt, (variant)v, 0);
		nnrt_set_threads(2);
		int64_t ns[] = {nt->batch, 13, 1};
		for (size_t k = 0; k < NELEMS(ns); k++)
			check_forward(nt, &j, (variant)v, ns[k]);
		check_gradients(nt, &j, (variant)v, nt->batch);
		check_gradients(nt, &j, (variant)v, 13);
		th_jit_free(&j);
	}
}

Test(norm, dense_per_feature, .timeout = 240) { check_net(NET_DENSE_TANH); }
Test(norm, dense_wide_relu, .timeout = 240) { check_net(NET_DENSE_WIDE); }
Test(norm, dense_without_affine, .timeout = 240) { check_net(NET_DENSE_NOAFFINE); }
Test(norm, conv_per_channel, .timeout = 240) { check_net(NET_CONV); }
Test(norm, after_global_avgpool, .timeout = 240) { check_net(NET_GAP); }
Test(norm, residual_activation_derivative_in_batchnorm, .timeout = 240) { check_net(NET_RESID); }
Test(norm, residual_sum_in_batchnorm, .timeout = 240) { check_net(NET_SKIP); }

/* The fused build only, on its whole batch and on a partial one. */
static void check_fused(int which, int64_t partial)
{
	const bnnet *nt = &nets[which];
	jitted j = jit_net(nt, V_FUSED, 0);
	nnrt_set_threads(2);
	check_forward(nt, &j, V_FUSED, nt->batch);
	check_forward(nt, &j, V_FUSED, partial);
	check_gradients(nt, &j, V_FUSED, partial);
	th_jit_free(&j);
}

Test(norm, large_chunks, .timeout = 240) { check_fused(NET_LARGE, 157); }
/* 60 + 41: the second chunk's last vectors masked */
Test(norm, rows_of_four_vectors, .timeout = 240) { check_fused(NET_ROWS4, 101); }

/* What fusion does with the activation after a batchnorm: forward, it is
 * applied in the normalising pass (the node disappears); backward, its
 * derivative goes into the next layer's backward product where there is
 * one (rule 3), else into batchnorm's two backward passes (rule 4). */
Test(norm, the_activation_fuses_into_batchnorm)
{
	static const struct {
		int net;
		ir_act act;
		int bn_dacts; /* backward batchnorm ops applying the derivative */
		bool residual; /* act(bn + x): the sum in the normalising pass too */
	} want[] = {{NET_DENSE_TANH, ACT_TANH, 0, false}, {NET_CONV, ACT_RELU, 0, false}, {NET_RESID, ACT_RELU, 2, false},
		    {NET_DENSE_NOAFFINE, ACT_NONE, 0, false}, {NET_SKIP, ACT_RELU, 0, true}};
	for (size_t k = 0; k < NELEMS(want); k++) {
		ir_graph *g = th_build_graph(SRC_PATH, nets[want[k].net].src, true);
		int bn = -1, dacts = 0, acts = 0, sums = 0;
		for (int i = 0; i < g->n; i++) {
			ir_node *n = &g->nodes[i];
			if (n->dead)
				continue;
			bn = n->op == IR_BATCHNORM ? i : bn;
			sums += n->op == IR_ADD && (n->entries & IR_ENTRY_EVAL);
			dacts += (n->op == IR_BN_BWD_PARTIAL || n->op == IR_BN_BWD_X) && n->dact == want[k].act && n->dact;
			acts += ir_op_act(n->op) != ACT_NONE && !ir_op_is_act_grad(n->op);
		}
		cr_assert(bn >= 0);
		cr_assert_eq(g->nodes[bn].act, want[k].act, "%s: batchnorm's act", nets[want[k].net].name);
		cr_assert_eq(acts, 0, "%s: an activation node is left", nets[want[k].net].name);
		cr_assert_eq(dacts, want[k].bn_dacts, "%s: %d backward batchnorm ops apply the derivative", nets[want[k].net].name, dacts);
		cr_assert_eq(ir_bn_residual(&g->nodes[bn]), want[k].residual, "%s: the residual sum", nets[want[k].net].name);
		if (want[k].residual)
			cr_assert_eq(sums, 0, "%s: a forward sum is left", nets[want[k].net].name);
	}
}

/* --emit-ir: the batch statistics' partial is a forward node that only the
 * train step runs, shown as such, not under "backward:" (which starts once,
 * after the loss). */
Test(norm, emit_ir_shows_the_partial_in_the_forward_pass)
{
	ir_graph *g = th_build_graph(SRC_PATH, nets[NET_CONV].src, true);
	nnc_buf b = {0};
	ir_dump(g, &b);
	/* the section that opens with it (the layer and the batchnorm, which
	 * eval runs folded, are train-step-only sections of their own) */
	const char *hdr = "forward, train step only:\n", *part = b.data, *op = NULL;
	while (!op && (part = strstr(part, hdr))) {
		const char *line = part + strlen(hdr);
		op = strstr(line, " = batchnorm_partial(");
		if (op && op > strchr(line, '\n'))
			op = NULL;
		part = line;
	}
	cr_assert(op && op < strstr(b.data, "backward:\n"), "%s", b.data);
	const char *back = strstr(b.data, "backward:\n"), *loss = strstr(b.data, " = softmax_cross_entropy(");
	cr_assert(back && loss && loss < back && !strstr(back + 1, "backward:"), "%s", b.data);
	nnc_buf_free(&b);
}

/* ---- the schedule: threads, chunks, steps ---- */

typedef struct trained {
	float *params, *st;
	double loss;
} trained;

/* k train steps (lr 0.1) from the same start on batches of n samples */
static trained train_steps(const jitted *j, int threads, int k, int64_t n)
{
	const nnrt_model *m = j->m;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 31);
	nnrt_set_threads(threads);
	trained t = {th_falloc(m->param_floats), th_falloc(m->state_floats), 0};
	for (int i = 0; i < k; i++) {
		th_fill_batch(&s, n, 40 + (uint64_t)i);
		run(&s, m->train_step, n, 0.1f);
		t.loss = s.metrics[0];
	}
	memcpy(t.params, s.params, sizeof(float) * (size_t)m->param_floats);
	memcpy(t.st, s.st, sizeof(float) * (size_t)m->state_floats);
	th_state_free(&s);
	return t;
}

static void check_schedule(int which)
{
	const bnnet *nt = &nets[which];
	trained ref[3];
	for (int64_t chunks = 1; chunks <= 3; chunks++) {
		jitted j = jit_net(nt, V_FUSED, chunks);
		const nnrt_model *m = j.m;
		int64_t ns[] = {nt->batch, 13}; /* 13 = 7 + 6: the third chunk holds no sample */
		for (size_t q = 0; q < NELEMS(ns); q++) {
			trained t1 = train_steps(&j, 1, 3, ns[q]);
			static const int team[] = {2, 3, 4, 8}; /* 4, 8: more threads than chunks */
			for (size_t ti = 0; ti < NELEMS(team); ti++) {
				int th = team[ti];
				trained t = train_steps(&j, th, 3, ns[q]);
				cr_assert(!memcmp(t.params, t1.params, sizeof(float) * (size_t)m->param_floats) &&
						  !memcmp(t.st, t1.st, sizeof(float) * (size_t)m->state_floats) && t.loss == t1.loss,
					  "%s, %lld chunks, n=%lld: %d threads train differently from 1", nt->name,
					  (long long)chunks, (long long)ns[q], th);
				free(t.params);
				free(t.st);
			}
			if (q == 1 && chunks > 1) {
				for (int64_t i = 0; i < m->param_floats; i++)
					cr_assert(fabs(t1.params[i] - ref[0].params[i]) <= 2e-5 * fmax(1, fabs(ref[0].params[i])),
						  "%s: %lld chunks train unlike one: params[%lld] %.8g, %.8g", nt->name,
						  (long long)chunks, (long long)i, t1.params[i], ref[0].params[i]);
				for (int64_t i = 0; i < m->state_floats; i++)
					cr_assert(fabs(t1.st[i] - ref[0].st[i]) <= 2e-5 * fmax(1, fabs(ref[0].st[i])),
						  "%s: %lld chunks train unlike one: state[%lld] %.8g, %.8g", nt->name,
						  (long long)chunks, (long long)i, t1.st[i], ref[0].st[i]);
			}
			if (q == 1)
				ref[chunks - 1] = t1;
			else {
				free(t1.params);
				free(t1.st);
			}
		}
		th_jit_free(&j);
	}
	for (int c = 0; c < 3; c++) {
		free(ref[c].params);
		free(ref[c].st);
	}
}

Test(schedule, dense_threads_identical_chunks_within_rounding, .timeout = 240) { check_schedule(NET_DENSE_WIDE); }
Test(schedule, conv_threads_identical_chunks_within_rounding, .timeout = 240) { check_schedule(NET_CONV); }
Test(schedule, residual_threads_identical_chunks_within_rounding, .timeout = 240) { check_schedule(NET_SKIP); }

/* The graph keeps its chunks: batch statistics do not make the planner fall
 * back to one chunk, and the train step's combine ops are PHASE_COMBINE,
 * each computed by every chunk for itself (chunk_copy: no barrier after
 * it); in one chunk they are ordinary ops. */
Test(schedule, batchnorm_keeps_the_chunks)
{
	for (int64_t chunks = 0; chunks < 2; chunks++) {
		th_chunks = chunks;
		ir_graph *g = th_build_graph(SRC_PATH, nets[NET_CONV].src, true);
		th_chunks = 0;
		cr_assert_eq(g->chunks, chunks ? 1 : NNC_DEFAULT_CHUNKS);
		int combines = 0, partials = 0, copies = 0;
		for (int i = 0; i < g->n; i++) {
			ir_node *n = &g->nodes[i];
			if (n->dead)
				continue;
			combines += ir_node_phase(g, n) == PHASE_COMBINE;
			copies += n->chunk_copy;
			if (n->op != IR_BN_PARTIAL && n->op != IR_BN_BWD_PARTIAL)
				continue;
			partials++;
			cr_assert(ir_per_chunk(n));
			cr_assert_eq(n->entries, IR_ENTRY_TRAIN, "%%%d %s runs outside the train step", i, ir_op_name(n->op));
		}
		cr_assert_eq(combines, 2, "the forward and the backward combine");
		cr_assert_eq(copies, chunks ? 0 : 2, "the combines computed per chunk");
		cr_assert_eq(partials, 2);
	}
}

/* The default initialiser of a layer's weight looks through a batchnorm
 * and a dropout to the activation after them (He before a rectifier, as
 * Keras and PyTorch users expect); anything else still gets Glorot. */
static const struct {
	const char *body; /* h, from x : f32[2, 5, 5] */
	int init;         /* of the first layer's weight */
} init_cases[] = {
	{"h = x |> conv2d(3, 3, pad: 1) |> batchnorm |> relu", NNRT_INIT_HE_UNIFORM},
	{"h = x |> conv2d(3, 3, pad: 1) |> batchnorm(affine: false) |> leaky_relu", NNRT_INIT_HE_UNIFORM},
	{"h = x |> conv2d(3, 3, pad: 1) |> batchnorm |> tanh", NNRT_INIT_GLOROT_UNIFORM},
	{"h = x |> conv2d(3, 3, pad: 1) |> batchnorm", NNRT_INIT_GLOROT_UNIFORM},
	{"h = x |> flatten |> dense(6) |> dropout(0.5) |> relu", NNRT_INIT_HE_UNIFORM},
	{"h = x |> flatten |> dense(6) |> batchnorm |> dropout(0.2) |> relu", NNRT_INIT_HE_UNIFORM},
	{"h = x |> flatten |> dense(6) |> dropout(0.2) |> batchnorm |> sigmoid", NNRT_INIT_GLOROT_UNIFORM},
	{"c = x |> conv2d(2, 1) |> batchnorm\nh = relu(c) + tanh(c)", NNRT_INIT_GLOROT_UNIFORM},
	{"c = x |> conv2d(2, 1) |> batchnorm\nh = relu(c + x)", NNRT_INIT_GLOROT_UNIFORM},
	{"c = x |> conv2d(2, 1)\nh = relu(c) + relu(c |> batchnorm)", NNRT_INIT_HE_UNIFORM},
	{"h = x |> conv2d(3, 3, pad: 1) |> relu", NNRT_INIT_HE_UNIFORM},
};

Test(norm, the_default_initialiser_looks_through_batchnorm_and_dropout)
{
	for (size_t i = 0; i < NELEMS(init_cases); i++) {
		const char *src = nnc_sprintf("model bni\ninput x : f32[2, 5, 5]\nlabel y : class(3)\n%s\n"
					      "logits = h |> flatten |> dense(3)\n" TRAIN_BLOCK(20),
					      init_cases[i].body);
		ir_graph *g = th_build_graph(SRC_PATH, src, true);
		cr_expect_eq(g->params[0].init, init_cases[i].init, "[%s]: init %d, want %d", init_cases[i].body,
			     g->params[0].init, init_cases[i].init);
	}
}

/* The running statistics after k train steps (each on its own batch, the
 * parameters moving) against the reference's update applied step by step
 * to the same parameters. */
Test(norm, running_statistics_after_steps, .timeout = 120)
{
	const bnnet *nt = &nets[NET_CONV];
	jitted j = jit_net(nt, V_FUSED, 0);
	const nnrt_model *m = j.m;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 51);
	nnrt_set_threads(2);
	int64_t rm = sidx(m, "batchnorm1.running_mean"), rv = sidx(m, "batchnorm1.running_var");
	float *want = th_falloc(m->state_floats);
	memcpy(want, s.st, sizeof(float) * (size_t)m->state_floats);
	for (int k = 0; k < 5; k++) {
		int64_t n = k == 4 ? 9 : nt->batch;
		th_fill_batch(&s, n, 60 + (uint64_t)k);
		double *P = params_d(&s), rmn[64], rvn[64];
		ref_loss(nt, m, P, want, s.x, s.y, n, true, rmn, rvn, NULL);
		for (int64_t f = 0; f < nt->F; f++)
			want[rm + f] = (float)rmn[f], want[rv + f] = (float)rvn[f];
		free(P);
		run(&s, m->train_step, n, 0.1f);
	}
	for (int64_t f = 0; f < nt->F; f++) {
		cr_assert(close_to(s.st[rm + f], want[rm + f], 1e-5), "running_mean[%lld] %.8g after 5 steps, the reference %.8g",
			  (long long)f, s.st[rm + f], want[rm + f]);
		cr_assert(close_to(s.st[rv + f], want[rv + f], 1e-5), "running_var[%lld] %.8g after 5 steps, the reference %.8g",
			  (long long)f, s.st[rv + f], want[rv + f]);
	}
	free(want);
	th_state_free(&s);
	th_jit_free(&j);
}

/* ---- --inference-only: batchnorm folded into the layer before ---- */

static void inference_only(ir_graph *g) { ir_drop_training(g); }
static void inference_only_folded(ir_graph *g)
{
	ir_drop_training(g);
	nnc_fold_batchnorm(g);
}

/* The driver's --inference-only pipeline folds each batchnorm after a
 * dense or conv2d into it (no batchnorm node is left, the layer carries
 * the activation); eval_step and infer() of the folded program agree with
 * the unfolded one and with the reference's running-statistics forward. */
Test(norm, inference_only_folds_batchnorm_into_the_layer, .timeout = 240)
{
	static const int which[] = {NET_DENSE_TANH, NET_DENSE_NOAFFINE, NET_CONV, NET_RESID, NET_GAP};
	for (size_t w = 0; w < NELEMS(which); w++) {
		const bnnet *nt = &nets[which[w]];
		jitted j[2];
		for (int folded = 0; folded < 2; folded++) {
			th_plan_hook = folded ? inference_only_folded : inference_only;
			ir_graph *g = th_build_graph(SRC_PATH, nt->src, true);
			th_plan_hook = NULL;
			int bns = 0, folds = 0;
			for (int i = 0; i < g->n; i++) {
				bns += !g->nodes[i].dead && g->nodes[i].op == IR_BATCHNORM;
				folds += !g->nodes[i].dead && g->nodes[i].op == IR_BN_FOLD_W;
			}
			/* after global_avgpool there is no layer to fold into */
			bool can = !nt->gap;
			cr_assert_eq(bns, folded && can ? 0 : 1, "%s: %d batchnorm nodes left", nt->name, bns);
			cr_assert_eq(folds, folded && can ? 1 : 0, "%s: %d folds", nt->name, folds);
			/* --emit-dot draws no edge from a node it does not draw (the
			 * statistics' train-only partial is dead here) */
			nnc_buf dot = {0};
			ir_dump_dot(g, &dot);
			for (const char *e = dot.data; (e = strstr(e, " -> ")); e++) {
				const char *a = e;
				while (a > dot.data && a[-1] != ' ')
					a--;
				int from = atoi(a + 1);
				cr_assert(strstr(dot.data, nnc_sprintf("  n%d [label", from)), "%s: an edge from undrawn n%d", nt->name, from);
			}
			nnc_buf_free(&dot);
			j[folded] = th_jit(g, false, true);
		}
		const nnrt_model *m = j[0].m;
		for (int64_t n = 13; n > 0; n -= 10) { /* 3: infer() runs small.c's sample-major copy */
			double *probs = malloc(sizeof(double) * (size_t)(n * nt->K));
			float *outs[2];
			double losses[2];
			for (int folded = 0; folded < 2; folded++) {
				state s = th_state_new(j[folded].m);
				th_fill_params(m, s.params, 91);
				th_fill_batch(&s, n, 92);
				rng r = {93};
				int64_t rm = sidx(m, "batchnorm1.running_mean"), rv = sidx(m, "batchnorm1.running_var");
				for (int64_t f = 0; f < nt->F; f++) {
					s.st[rm + f] = (float)rng_uniform(&r, -1, 1);
					s.st[rv + f] = (float)rng_uniform(&r, 0.2, 3);
				}
				double *P = params_d(&s);
				double want = ref_loss(nt, m, P, s.st, s.x, s.y, n, false, NULL, NULL, probs);
				free(P);
				run(&s, j[folded].m->eval_step, n, 0);
				losses[folded] = s.metrics[0] / (double)n;
				cr_assert(close_to(losses[folded], want, 2e-5), "%s folded %d: eval loss %.8g, the reference %.8g", nt->name,
					  folded, losses[folded], want);
				run(&s, j[folded].m->infer, n, 0);
				outs[folded] = th_falloc(n * nt->K);
				memcpy(outs[folded], s.out, sizeof(float) * (size_t)(n * nt->K));
				for (int64_t i = 0; i < n * nt->K; i++)
					cr_assert(fabs(s.out[i] - probs[i]) <= 2e-5, "%s folded %d: infer out[%lld] %.8g, the reference %.8g",
						  nt->name, folded, (long long)i, s.out[i], probs[i]);
				th_state_free(&s);
			}
			for (int64_t i = 0; i < n * nt->K; i++)
				cr_assert(fabs(outs[0][i] - outs[1][i]) <= 1e-5, "%s: folded infer out[%lld] %.8g, unfolded %.8g", nt->name,
					  (long long)i, outs[1][i], outs[0][i]);
			free(outs[0]);
			free(outs[1]);
			free(probs);
		}
		th_jit_free(&j[0]);
		th_jit_free(&j[1]);
	}
}

/* ---- a training build: batchnorm folded for eval and inference only ---- */

/* The driver folds each batchnorm after a dense or conv2d into a copy of
 * the layer that the eval step and infer() run instead of the two
 * (nnc_fold_batchnorm_eval), writing the batchnorm's tensor, while the
 * train step keeps both.  Against the same program without the fold: the
 * train step is the same code (parameters and running statistics equal to
 * the bit after steps on 2 threads), eval and infer agree within rounding
 * (13 samples, and 3: small.c's sample-major copy, folded as well), infer
 * gives the same bits on 1, 2 and 3 threads and leaves the state alone; a
 * batchnorm with no layer to fold into (after pooling, or with the
 * residual sum fused in) keeps its eval lowering. */
Test(norm, training_build_folds_batchnorm_for_eval_and_infer, .timeout = 300)
{
	static const int which[] = {NET_DENSE_TANH, NET_DENSE_NOAFFINE, NET_CONV, NET_RESID, NET_GAP, NET_SKIP, NET_LARGE};
	for (size_t w = 0; w < NELEMS(which); w++) {
		const bnnet *nt = &nets[which[w]];
		bool can = !nt->gap && !nt->skip;
		jitted j[2];
		for (int folded = 0; folded < 2; folded++) {
			th_fold_eval = folded;
			ir_graph *g = th_build_graph(SRC_PATH, nt->src, true);
			th_fold_eval = true;
			int copies = 0, folds = 0;
			for (int i = 0; i < g->n; i++) {
				const ir_node *n = &g->nodes[i];
				if (n->dead)
					continue;
				folds += n->op == IR_BN_FOLD_W;
				int sf = ir_stands_for(n);
				if (sf < 0)
					continue;
				copies++;
				const ir_node *bn = &g->nodes[sf];
				cr_assert_eq(bn->op, IR_BATCHNORM, "%s: %%%d stands for a %s", nt->name, i, ir_op_name(bn->op));
				cr_assert_eq(bn->entries, IR_ENTRY_TRAIN, "%s: the folded batchnorm runs in entries %d", nt->name,
					     bn->entries);
				cr_assert_eq(g->nodes[bn->in[0]].entries, IR_ENTRY_TRAIN, "%s: the folded layer runs in entries %d",
					     nt->name, g->nodes[bn->in[0]].entries);
				cr_assert(n->entries == (IR_ENTRY_EVAL | IR_ENTRY_INFER) && n->op == g->nodes[bn->in[0]].op,
					  "%s: the copy is a %s run in entries %d", nt->name, ir_op_name(n->op), n->entries);
				cr_assert(n->storage == bn->storage && n->offset == bn->offset,
					  "%s: the copy writes %lld, the batchnorm's tensor is at %lld", nt->name,
					  (long long)n->offset, (long long)bn->offset);
			}
			int want = folded && can ? 1 : 0;
			cr_assert_eq(copies, want, "%s folded %d: %d layer copies", nt->name, folded, copies);
			cr_assert_eq(folds, want, "%s folded %d: %d weight folds", nt->name, folded, folds);
			j[folded] = th_jit(g, false, true);
		}
		const nnrt_model *m = j[0].m;
		cr_assert_eq(j[1].m->param_floats, m->param_floats);
		cr_assert_eq(j[1].m->state_floats, m->state_floats);
		trained t[2];
		for (int folded = 0; folded < 2; folded++)
			t[folded] = train_steps(&j[folded], 2, 4, nt->batch);
		cr_assert(!memcmp(t[0].params, t[1].params, sizeof(float) * (size_t)m->param_floats) &&
				  !memcmp(t[0].st, t[1].st, sizeof(float) * (size_t)m->state_floats) && t[0].loss == t[1].loss,
			  "%s: the fold changed the train step", nt->name);
		for (int64_t n = 13; n > 0; n -= 10) {
			float *outs[2];
			double losses[2];
			for (int folded = 0; folded < 2; folded++) {
				const nnrt_model *mf = j[folded].m;
				state s = th_state_new(mf);
				memcpy(s.params, t[folded].params, sizeof(float) * (size_t)m->param_floats);
				memcpy(s.st, t[folded].st, sizeof(float) * (size_t)m->state_floats);
				th_fill_batch(&s, n, 95);
				run(&s, mf->eval_step, n, 0);
				losses[folded] = s.metrics[0] / (double)n;
				float *first = NULL;
				for (int threads = 1; threads <= 3; threads++) {
					th_run_threads(&s, mf->infer, n, threads);
					if (!first) {
						first = th_falloc(n * nt->K);
						memcpy(first, s.out, sizeof(float) * (size_t)(n * nt->K));
					}
					cr_assert(!memcmp(first, s.out, sizeof(float) * (size_t)(n * nt->K)),
						  "%s folded %d n=%lld: infer on %d threads differs from 1", nt->name, folded,
						  (long long)n, threads);
				}
				cr_assert(!memcmp(s.st, t[folded].st, sizeof(float) * (size_t)m->state_floats),
					  "%s folded %d: eval or infer changed the state", nt->name, folded);
				outs[folded] = first;
				th_state_free(&s);
			}
			cr_assert(close_to(losses[1], losses[0], 1e-5), "%s n=%lld: folded eval loss %.8g, unfolded %.8g",
				  nt->name, (long long)n, losses[1], losses[0]);
			for (int64_t i = 0; i < n * nt->K; i++)
				cr_assert(fabs(outs[0][i] - outs[1][i]) <= 1e-5, "%s n=%lld: folded infer out[%lld] %.8g, unfolded %.8g",
					  nt->name, (long long)n, (long long)i, outs[1][i], outs[0][i]);
			free(outs[0]);
			free(outs[1]);
		}
		for (int folded = 0; folded < 2; folded++) {
			free(t[folded].params);
			free(t[folded].st);
			th_jit_free(&j[folded]);
		}
	}
}
