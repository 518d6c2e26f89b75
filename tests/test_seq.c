/*
 * test_seq.c - the sequence ops (docs/architecture.md "Sequences"),
 * compiled by nnc and run in this process (tests/jit_harness.h):
 *   forward    a per-position network (embedding, positional, dense per
 *              position, layernorm, attention) against a double-precision C
 *              reference of the same maths, reading the parameters by name;
 *              the per-position loss and accuracy with ignored positions;
 *   gradients  the train step's gradient of every parameter entry against
 *              central differences of its loss, for every op (fused,
 *              unfused, reference kernels; full and partial batches);
 *   threads    1, 2 and 3 threads give bit-identical parameters after
 *              three Adam steps.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "jit_harness.h"
#include "sh_harness.h"
#include "nnrt.h"
#include "util.h"

#define SRC_PATH "/tmp/nnc_test_seq.nn"
#define TRAIN(batch) \
	"optimizer adam(lr: 0.01)\ntrain {\n  data: text(\"/nonexistent/corpus.txt\")\n  batch: " #batch "\n}\n"

static const float *param(const nnrt_model *m, const float *p, const char *name)
{
	int i = nnrt_model_param_index(m, name);
	cr_assert(i >= 0, "no parameter %s", name);
	return p + m->params[i].offset;
}

/* ---- the double-precision reference ---- */

/* y[t] = x[t] W + b for t < T: x [T][din], W [din][dout] */
static void ref_dense(const double *x, int64_t T, int64_t din, const float *W, const float *b, int64_t dout, double *y)
{
	for (int64_t t = 0; t < T; t++)
		for (int64_t o = 0; o < dout; o++) {
			double a = b ? b[o] : 0;
			for (int64_t i = 0; i < din; i++)
				a += x[t * din + i] * W[i * dout + o];
			y[t * dout + o] = a;
		}
}

static void ref_layernorm(double *x, int64_t T, int64_t d, const float *g, const float *b)
{
	for (int64_t t = 0; t < T; t++) {
		double m = 0, v = 0;
		for (int64_t j = 0; j < d; j++)
			m += x[t * d + j];
		m /= (double)d;
		for (int64_t j = 0; j < d; j++)
			v += (x[t * d + j] - m) * (x[t * d + j] - m);
		double r = 1 / sqrt(v / (double)d + 1e-5);
		for (int64_t j = 0; j < d; j++)
			x[t * d + j] = (x[t * d + j] - m) * r * g[j] + b[j];
	}
}

/* self-attention of x [T][d] with h heads, parameters NAME.q/k/v/out */
static void ref_attention(const nnrt_model *m, const float *p, const char *name, const double *x, int64_t T, int64_t d,
			  int64_t h, bool causal, double *y)
{
	int64_t k = d / h;
	double *q = calloc((size_t)(T * d), sizeof(double)), *kk = calloc((size_t)(T * d), sizeof(double));
	double *v = calloc((size_t)(T * d), sizeof(double)), *ctx = calloc((size_t)(T * d), sizeof(double));
	char buf[3][64], bb[3][64];
	double *dst[3] = {q, kk, v};
	const char *part[3] = {"q", "k", "v"};
	for (int i = 0; i < 3; i++) {
		snprintf(buf[i], sizeof buf[i], "%s.%s.weight", name, part[i]);
		snprintf(bb[i], sizeof bb[i], "%s.%s.bias", name, part[i]);
		ref_dense(x, T, d, param(m, p, buf[i]), param(m, p, bb[i]), d, dst[i]);
	}
	for (int64_t hh = 0; hh < h; hh++)
		for (int64_t i = 0; i < T; i++) {
			double sc[64], mx = -1e300, sum = 0;
			int64_t L = causal ? i + 1 : T;
			for (int64_t j = 0; j < L; j++) {
				double a = 0;
				for (int64_t e = 0; e < k; e++)
					a += q[i * d + hh * k + e] * kk[j * d + hh * k + e];
				sc[j] = a / sqrt((double)k);
				mx = fmax(mx, sc[j]);
			}
			for (int64_t j = 0; j < L; j++)
				sum += sc[j] = exp(sc[j] - mx);
			for (int64_t e = 0; e < k; e++) {
				double a = 0;
				for (int64_t j = 0; j < L; j++)
					a += sc[j] / sum * v[j * d + hh * k + e];
				ctx[i * d + hh * k + e] = a;
			}
		}
	char w[64], b[64];
	snprintf(w, sizeof w, "%s.out.weight", name);
	snprintf(b, sizeof b, "%s.out.bias", name);
	ref_dense(ctx, T, d, param(m, p, w), param(m, p, b), d, y);
	free(q), free(kk), free(v), free(ctx);
}

/* ---- forward against the reference ---- */

#define T_ 6
#define V_ 11
#define D_ 8

static const char fwd_src[] =
	"model seqfwd\ninput x : token(11)[6]\nlabel y : class(11)[6]\n"
	"e = x |> embedding(11, 8) |> positional\n"
	"h = e + (e |> layernorm |> attention(heads: 2, causal: true))\n"
	"logits = h |> dense(11)\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN(7);

static const char fwd_plain_src[] =
	"model seqplain\ninput x : token(11)[6]\nlabel y : class(11)[6]\n"
	"logits = x |> embedding(11, 8) |> dense(16) |> relu |> dense(11)\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN(7);

/* The mean loss and accuracy over n samples of either network */
static void ref_forward(const nnrt_model *m, const float *p, const float *x, const float *y, int64_t n, bool attn,
			double *loss, double *acc)
{
	*loss = *acc = 0;
	for (int64_t s = 0; s < n; s++) {
		double e[T_ * D_], h[T_ * D_], a[T_ * D_], z[T_ * 16], logits[T_ * V_];
		const float *W = param(m, p, "embedding1.weight");
		for (int64_t t = 0; t < T_; t++)
			for (int64_t j = 0; j < D_; j++)
				e[t * D_ + j] = W[(int64_t)x[s * T_ + t] * D_ + j];
		if (attn) {
			const float *P = param(m, p, "positional1.weight");
			for (int64_t i = 0; i < T_ * D_; i++)
				e[i] += P[i];
			memcpy(h, e, sizeof h);
			ref_layernorm(h, T_, D_, param(m, p, "layernorm1.weight"), param(m, p, "layernorm1.bias"));
			ref_attention(m, p, "attention1", h, T_, D_, 2, true, a);
			for (int64_t i = 0; i < T_ * D_; i++)
				h[i] = e[i] + a[i];
			ref_dense(h, T_, D_, param(m, p, "dense1.weight"), param(m, p, "dense1.bias"), V_, logits);
		} else {
			ref_dense(e, T_, D_, param(m, p, "dense1.weight"), param(m, p, "dense1.bias"), 16, z);
			for (int64_t i = 0; i < T_ * 16; i++)
				z[i] = fmax(z[i], 0);
			ref_dense(z, T_, 16, param(m, p, "dense2.weight"), param(m, p, "dense2.bias"), V_, logits);
		}
		double l, c;
		th_ref_seq_xent(logits, y + s * T_, T_, V_, &l, &c);
		*loss += l;
		*acc += c;
	}
}

static void check_forward(const char *src, bool attn, bool fuse, bool naive)
{
	jitted j = th_jit(th_build_graph(SRC_PATH, src, fuse), naive, true);
	const nnrt_model *m = j.m;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 5);
	for (int64_t n = 1; n <= m->batch; n += 3) {
		th_fill_tokens(&s, n, V_, 40 + (uint64_t)n, true);
		th_run_threads(&s, m->eval_step, n, 2);
		double l, a;
		ref_forward(m, s.params, s.x, s.y, n, attn, &l, &a);
		cr_assert(fabs(s.metrics[0] - l) <= 1e-4 * (1 + fabs(l)), "%s n %lld: loss %.7g, reference %.7g", m->name,
			  (long long)n, s.metrics[0], l);
		cr_assert(fabs(s.metrics[1] - a) <= 1e-6 * (double)n, "%s n %lld: accuracy %.7g, reference %.7g", m->name, (long long)n,
			  s.metrics[1], a);
	}
	th_state_free(&s);
	th_jit_free(&j);
}

Test(seq, forward_plain) { check_forward(fwd_plain_src, false, true, false); }
Test(seq, forward_plain_naive) { check_forward(fwd_plain_src, false, false, true); }
Test(seq, forward_attention) { check_forward(fwd_src, true, true, false); }
Test(seq, forward_attention_naive) { check_forward(fwd_src, true, false, true); }

/* ---- gradients against central differences ---- */

#define FD_STEP 1e-2
#define GRAD_ATOL 2e-4 /* |g - fd| <= ATOL + RTOL |fd| */
#define GRAD_RTOL 5e-3

static double step_loss(state *s, int64_t n)
{
	th_run_threads(s, s->m->eval_step, n, 1);
	return s->metrics[0] / (double)n;
}

/* Every parameter entry's gradient (train step with learning rate 0, two
 * threads) against the central difference of the eval step's loss; where
 * the one-sided differences disagree (a relu kink), either one will do, for
 * at most an eighth of the entries. */
static void check_gradients(const char *name, const char *src, int64_t V, bool fuse, bool naive, int64_t n_or_batch)
{
	jitted j = th_jit(th_build_graph(SRC_PATH, src, fuse), naive, true);
	const nnrt_model *m = j.m;
	int64_t n = n_or_batch ? n_or_batch : m->batch;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 21);
	th_fill_tokens(&s, n, V, 22, true);
	for (int64_t i = 0; i < m->param_floats; i++)
		s.grads[i] = NAN;
	memset(s.a.hp, 0, sizeof s.a.hp);
	th_run_threads(&s, m->train_step, n, 2);
	float *g = th_falloc(m->param_floats);
	memcpy(g, s.grads, sizeof(float) * (size_t)m->param_floats);
	char what[160];
	snprintf(what, sizeof what, "%s (%s%s)", name, fuse ? "fused" : "unfused", naive ? ", reference kernels" : "");
	th_fd_check(&s, n, g, step_loss, FD_STEP, GRAD_ATOL, GRAD_RTOL, what);
	free(g);
	th_state_free(&s);
	th_jit_free(&j);
}

static void check_gradients_everywhere(const char *name, const char *src, int64_t V)
{
	check_gradients(name, src, V, true, false, 0);
	check_gradients(name, src, V, true, false, 3);
	check_gradients(name, src, V, false, false, 0);
	check_gradients(name, src, V, true, true, 3);
}

#define HEAD(V, T) "model fd\ninput x : token(" #V ")[" #T "]\nlabel y : class(" #V ")[" #T "]\n"

Test(seq_grad, embedding_dense_per_position)
{
	check_gradients_everywhere("embed", HEAD(7, 5) "e = x |> embedding(7, 4) |> positional\n"
					"logits = e |> dense(6) |> tanh |> dense(7)\nloss softmax_cross_entropy(logits, y)\n" TRAIN(6), 7);
}

Test(seq_grad, gelu_per_position)
{
	check_gradients_everywhere("gelu", HEAD(6, 4) "e = x |> embedding(6, 5)\n"
				   "logits = e |> dense(8) |> gelu |> dense(6)\nloss softmax_cross_entropy(logits, y)\n" TRAIN(6), 6);
}

Test(seq_grad, layernorm)
{
	check_gradients_everywhere("layernorm", HEAD(6, 4) "e = x |> embedding(6, 5) |> dense(7) |> layernorm\n"
					"logits = e |> dense(6)\nloss softmax_cross_entropy(logits, y)\n" TRAIN(6), 6);
}

Test(seq_grad, rmsnorm)
{
	check_gradients_everywhere("rmsnorm", HEAD(6, 4) "e = x |> embedding(6, 5) |> rmsnorm(eps: 0.001)\n"
				      "logits = e |> dense(6)\nloss softmax_cross_entropy(logits, y)\n" TRAIN(6), 6);
}

Test(seq_grad, matmul_transposes)
{
	/* every transpose combination, and a product of a value with itself */
	check_gradients_everywhere("matmul", HEAD(5, 4) "e = x |> embedding(5, 6)\n"
				     "a = e |> dense(6)\nb = e |> dense(6)\n"
				     "s = matmul(a, b, transpose_b: true, scale: 0.5) |> tanh\n"  /* [4, 4] */
				     "t = matmul(s, b, transpose_a: true)\n"                     /* [4, 6] */
				     "u = matmul(a, t, transpose_a: true)\n"                    /* [6, 6] */
				     "w = matmul(u, u, transpose_a: true, transpose_b: true) |> split_heads(2) |> merge_heads\n"
				     "logits = (w |> flatten |> dense(20))\nloss softmax_cross_entropy(logits, y)\n" TRAIN(6), 5);
}

/* A product read flattened by a dense: the dense's input gradient gets the
 * product's [M, N] shape back, which the product's rule needs (it stopped
 * the compiler with an internal error when it stayed flat). */
Test(seq_grad, matmul_read_flattened)
{
	check_gradients_everywhere("matmul_flat", HEAD(5, 4) "e = x |> embedding(5, 6)\n"
					  "a = e |> dense(6)\n"
					  "u = matmul(a, a, transpose_a: true)\n"                      /* [6, 6] */
					  "w = matmul(u, u, transpose_a: true, transpose_b: true)\n" /* [6, 6] */
					  "logits = (w |> flatten |> dense(20))\nloss softmax_cross_entropy(logits, y)\n" TRAIN(6), 5);
}

Test(seq_grad, attention_causal)
{
	check_gradients_everywhere("attention", HEAD(6, 5) "e = x |> embedding(6, 8) |> positional\n"
					"h = e + (e |> layernorm |> attention(heads: 2, causal: true))\n"
					"logits = h |> dense(6)\nloss softmax_cross_entropy(logits, y)\n" TRAIN(6), 6);
}

Test(seq_grad, attention_full)
{
	check_gradients_everywhere("attention_full", HEAD(6, 3) "e = x |> embedding(6, 6)\n"
					"h = e |> attention(heads: 3)\n"
					"logits = h |> dense(6)\nloss softmax_cross_entropy(logits, y)\n" TRAIN(5), 6);
}

Test(seq_grad, softmax_causal)
{
	check_gradients_everywhere("softmax", HEAD(5, 4) "e = x |> embedding(5, 4)\n"
				      "p = matmul(e, e, transpose_b: true) |> softmax(causal: true)\n"
				      "q = matmul(e |> dense(4), e, transpose_b: true) |> softmax(axis: last)\n"
				      "logits = (matmul(p, e) + matmul(q, e)) |> dense(5)\nloss softmax_cross_entropy(logits, y)\n" TRAIN(6), 5);
}

/* ---- the fast kernels against the reference kernels ----
 * cg_seq.c's vectorised rows (layernorm, softmax) and tiled matmul against
 * the scalar loops of --naive-kernels: the same loss and gradients within
 * rounding, at sizes that are not multiples of 16 (tails, a causal row
 * crossing a vector, a row remainder of the register tile), full and partial
 * batches, both register tiles (th_vacc 6: AVX2, 24: AVX-512), and the fast
 * kernels bit-identical with 1, 2 and 3 threads. */

static const char *const equiv_srcs[] = {
	HEAD(13, 18) "e = x |> embedding(13, 21) |> positional\n"
	"h = e + (e |> layernorm |> attention(heads: 3, causal: true))\n"
	"logits = h |> rmsnorm |> dense(13)\nloss softmax_cross_entropy(logits, y)\n" TRAIN(7),
	HEAD(9, 19) "e = x |> embedding(9, 17) |> layernorm\n"
	"a = e |> dense(17)\nb = e |> dense(17)\n"
	"s = matmul(a, b, transpose_b: true, scale: 0.3) |> softmax(axis: last)\n" /* [19, 19] */
	"t = matmul(matmul(s, b), s, transpose_a: true)\n"                        /* [17, 19] */
	"u = matmul(t, a)\n"                                                       /* [17, 17] */
	"w = matmul(t, a, transpose_a: true, transpose_b: true)\n"                 /* [19, 19] */
	"z = matmul(w, matmul(u, t), transpose_b: true)\n"                         /* [19, 17] */
	"logits = z |> split_heads(1) |> merge_heads |> flatten |> dense(9 * 19)\nloss softmax_cross_entropy(logits, y)\n" TRAIN(5),
};

/* Loss, accuracy (eval step) and gradients (train step, learning rate 0) of n samples */
static void loss_acc_grads(const jitted *j, int64_t n, int threads, double *loss, double *acc, float *g)
{
	state s = th_state_new(j->m);
	th_fill_params(j->m, s.params, 31);
	th_fill_tokens(&s, n, j->g->label_vocab, 32, true);
	memset(s.a.hp, 0, sizeof s.a.hp);
	th_run_threads(&s, j->m->eval_step, n, threads);
	*loss = s.metrics[0];
	*acc = s.metrics[1];
	th_run_threads(&s, j->m->train_step, n, threads);
	memcpy(g, s.grads, sizeof(float) * (size_t)j->m->param_floats);
	th_state_free(&s);
}

Test(seq, fast_kernels_match_reference, .timeout = 600)
{
	for (size_t k = 0; k < sizeof equiv_srcs / sizeof *equiv_srcs; k++)
		for (int vacc = 6; vacc <= 24; vacc += 18) {
			th_vacc = vacc;
			jitted fast = th_jit(th_build_graph(SRC_PATH, equiv_srcs[k], true), false, true);
			jitted ref = th_jit(th_build_graph(SRC_PATH, equiv_srcs[k], true), true, true);
			th_vacc = 0;
			const nnrt_model *m = fast.m;
			int64_t P = m->param_floats;
			float *gf = th_falloc(P), *gr = th_falloc(P), *gt = th_falloc(P);
			for (int64_t n = m->batch; n >= 2; n -= m->batch - 2) { /* full, then partial */
				double lf, lr, lt, af, ar, at_;
				loss_acc_grads(&fast, n, 2, &lf, &af, gf);
				loss_acc_grads(&ref, n, 2, &lr, &ar, gr);
				cr_assert(af == ar, "net %zu vacc %d n %lld: accuracy %.9g, reference %.9g", k, vacc, (long long)n, af, ar);
				cr_assert(fabs(lf - lr) <= 1e-5 * (1 + fabs(lr)), "net %zu vacc %d n %lld: loss %.9g, reference %.9g", k,
					  vacc, (long long)n, lf, lr);
				double worst = 0;
				int64_t at = 0;
				for (int64_t i = 0; i < P; i++) {
					double err = fabs((double)gf[i] - gr[i]) / (1e-4 + fabs((double)gr[i]));
					cr_assert(isfinite(gf[i]), "net %zu: gradient %lld is %g", k, (long long)i, gf[i]);
					if (err > worst)
						worst = err, at = i;
				}
				cr_assert(worst <= 2e-3, "net %zu vacc %d n %lld: gradient %lld is %.9g, reference %.9g", k, vacc,
					  (long long)n, (long long)at, gf[at], gr[at]);
				for (int threads = 1; threads <= 3; threads += 2) {
					loss_acc_grads(&fast, n, threads, &lt, &at_, gt);
					cr_assert(lt == lf && at_ == af && !memcmp(gt, gf, sizeof(float) * (size_t)P),
						  "net %zu n %lld: %d threads differ from 2", k, (long long)n, threads);
				}
			}
			free(gf), free(gr), free(gt);
			th_jit_free(&fast);
			th_jit_free(&ref);
		}
}

/* fuse.c rules 5 and 6: attention's scores go into their softmax (one
 * attention_probs op: no scores tensor, causal rows skip the products
 * above the diagonal), and where eval and inference read the
 * probabilities only through the weighted sum, that product becomes
 * attention_out, which computes attention whole there (no probabilities
 * tensor).  The fused graph has one attention_probs per attention (and per
 * matmul |> softmax), an attention_out where the probabilities have no
 * other reader (net 1's are read twice), and no product left that only a
 * softmax reads; its eval loss and accuracy and its train step's gradients
 * agree with the unfused graph's within rounding, with both register
 * tiles, full and partial batches. */
Test(seq, attention_scores_fuse_into_the_softmax, .timeout = 300)
{
	static const int want[] = {1, 1}, want_out[] = {1, 0};
	for (size_t k = 0; k < sizeof equiv_srcs / sizeof *equiv_srcs; k++)
		for (int vacc = 6; vacc <= 24; vacc += 18) {
			th_vacc = vacc;
			ir_graph *g = th_build_graph(SRC_PATH, equiv_srcs[k], true);
			int fused = 0, whole = 0;
			for (int i = 0; i < g->n; i++) {
				const ir_node *n = &g->nodes[i];
				if (n->dead)
					continue;
				fused += n->op == IR_ATTN_PROBS;
				whole += n->op == IR_ATTN_OUT;
				cr_assert(n->op != IR_ATTN_OUT || g->nodes[n->in[0]].entries == IR_ENTRY_TRAIN,
					  "net %zu: the probabilities %%%d run in entries %d", k, n->in[0],
					  g->nodes[n->in[0]].entries);
				cr_assert(!(n->op == IR_SOFTMAX_LAST && g->nodes[n->in[0]].op == IR_MATMUL),
					  "net %zu: %%%d softmax of a product left unfused", k, i);
			}
			cr_assert_eq(fused, want[k], "net %zu: %d attention_probs ops", k, fused);
			cr_assert_eq(whole, want_out[k], "net %zu: %d attention_out ops", k, whole);
			jitted f = th_jit(g, false, true);
			jitted u = th_jit(th_build_graph(SRC_PATH, equiv_srcs[k], false), false, true);
			th_vacc = 0;
			int64_t P = f.m->param_floats;
			float *gf = th_falloc(P), *gu = th_falloc(P);
			for (int64_t n = f.m->batch; n >= 2; n -= f.m->batch - 2) {
				double lf, lu, af, au;
				loss_acc_grads(&f, n, 2, &lf, &af, gf);
				loss_acc_grads(&u, n, 2, &lu, &au, gu);
				cr_assert(af == au && fabs(lf - lu) <= 1e-5 * (1 + fabs(lu)),
					  "net %zu vacc %d n %lld: fused loss %.9g acc %g, unfused %.9g %g", k, vacc, (long long)n, lf,
					  af, lu, au);
				for (int64_t i = 0; i < P; i++)
					cr_assert(fabs((double)gf[i] - gu[i]) <= 2e-3 * (1e-4 + fabs((double)gu[i])),
						  "net %zu vacc %d n %lld: gradient %lld fused %.9g, unfused %.9g", k, vacc, (long long)n,
						  (long long)i, gf[i], gu[i]);
			}
			free(gf), free(gu);
			th_jit_free(&f);
			th_jit_free(&u);
		}
}

/* ---- threads ---- */

/* Three Adam steps with 1, 2 and 3 threads: bit-identical parameters */
Test(seq, threads_bit_identical)
{
	jitted j = th_jit(th_build_graph(SRC_PATH, fwd_src, true), false, true);
	th_check_seq_threads(j.m, V_, "seq");
	th_jit_free(&j);
}

/* ---- the compiler and the training binary ---- */

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert(f, "cannot write %s", path);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	fclose(f);
}

/* examples/reverse.nn learns to reverse 8 digits: every position of the
 * 1000 test strings right (so every string exactly), and the saved model
 * reverses strings given to --predict (the argmax of each position's
 * probabilities, which inference returns). */
Test(seq_e2e, reverse_example_exact, .timeout = 600)
{
	char dir[256], *out = NULL;
	sh_mktemp(dir, sizeof dir, "seqrev");
	cr_assert_eq(sh_rerun(&out, "'%s' '%s/examples/reverse.nn' -o '%s/rev'", NNC_EXE, NNC_SOURCE_DIR, dir), 0, "%s", out);
	cr_assert_eq(sh_rerun(&out, "'%s/rev' --epochs 2 --save '%s/rev.ckpt'", dir, dir), 0, "%s", out);
	double acc = sh_last_number(out, "test_acc");
	cr_assert_geq(acc, 0.99995, "per-position test accuracy %.4f: not every string reversed exactly\n%s", acc, out);
	static const int rows[3][8] = {{1, 2, 3, 4, 5, 6, 7, 8}, {9, 9, 0, 0, 1, 1, 2, 3}, {5, 0, 5, 0, 7, 3, 3, 1}};
	char csv[256];
	size_t len = 0;
	for (int r = 0; r < 3; r++)
		for (int t = 0; t < 8; t++)
			len += (size_t)snprintf(csv + len, sizeof csv - len, "%d%c", rows[r][t], t == 7 ? '\n' : ',');
	char *path = nnc_sprintf("%s/p.csv", dir);
	write_file(path, csv, len);
	cr_assert_eq(sh_rerun(&out, "'%s/rev' --load '%s/rev.ckpt' --predict '%s'", dir, dir, path), 0, "%s", out);
	const char *line = out;
	for (int r = 0; r < 3; r++) {
		char *end;
		cr_assert_eq(strtol(line, &end, 10), r, "%s", out);
		double p[80];
		for (int i = 0; i < 80; i++)
			p[i] = strtod(end, &end);
		for (int t = 0; t < 8; t++) {
			int best = 0;
			for (int v = 1; v < 10; v++)
				if (p[t * 10 + v] > p[t * 10 + best])
					best = v;
			cr_assert_eq(best, rows[r][7 - t], "string %d position %d: %d, not %d\n%s", r, t, best, rows[r][7 - t], out);
		}
		line = strchr(end, '\n') + 1;
	}
	free(out);
	sh_rmtree(dir);
}

/* Bad input at run time: the file and the place named, exit status 1 */
Test(seq_e2e, bad_data_is_refused, .timeout = 300)
{
	char dir[256], *out = NULL;
	sh_mktemp(dir, sizeof dir, "seqbad");
	static const char prog[] = "model lm\ninput x : token(128)[8]\nlabel y : class(128)[8]\n"
				   "logits = x |> embedding(128, 8) |> dense(128)\nloss softmax_cross_entropy(logits, y)\n"
				   "optimizer adam(lr: 0.01)\ntrain {\n  data: text(\"corpus.txt\", context: 8)\n  batch: 4\n  epochs: 1\n}\n";
	write_file(nnc_sprintf("%s/lm.nn", dir), prog, sizeof prog - 1);
	cr_assert_eq(sh_rerun(&out, "'%s' '%s/lm.nn' -o '%s/lm'", NNC_EXE, dir, dir), 0, "%s", out);
	/* a byte past the vocabulary */
	write_file(nnc_sprintf("%s/corpus.txt", dir), "hello world, hello text\xc3\xa9 and more text here", 43);
	cr_assert_eq(sh_rerun(&out, "cd '%s' && ./lm", dir), 1, "%s", out);
	cr_assert(strstr(out, "corpus.txt: byte 23 is 195, outside the model's vocabulary of 128 tokens (ids 0..127)"), "%s", out);
	/* shorter than one window */
	write_file(nnc_sprintf("%s/corpus.txt", dir), "short", 5);
	cr_assert_eq(sh_rerun(&out, "cd '%s' && ./lm", dir), 1, "%s", out);
	cr_assert(strstr(out, "corpus.txt: 5 bytes is shorter than one window of context 8 plus the next byte"), "%s", out);
	/* a --predict file with an id outside the vocabulary */
	write_file(nnc_sprintf("%s/corpus.txt", dir), "plenty of text to train on for one epoch at least", 50);
	cr_assert_eq(sh_rerun(&out, "cd '%s' && ./lm --save lm.ckpt", dir), 0, "%s", out);
	write_file(nnc_sprintf("%s/p.csv", dir), "1,2,3,4,5,6,7,8\n1,2,3,4,5,6,7,200\n", 34);
	cr_assert_eq(sh_rerun(&out, "cd '%s' && ./lm --load lm.ckpt --predict p.csv", dir), 1, "%s", out);
	cr_assert(strstr(out, "sample 2, position 7: token id 200 is not in the vocabulary 0..127"), "%s", out);
	free(out);
	sh_rmtree(dir);
}

/* Bad programs: the error at the right line and column */
typedef struct diag_case {
	const char *name, *body, *want;
} diag_case;

static const diag_case diags[] = {
	{"heads that do not divide d", "h = x |> embedding(10, 6) |> attention(heads: 4)\nlogits = h |> dense(10)\n",
	 ":4:47: error: 6 features do not split into 4 heads: 6 is not a multiple of 4"},
	{"causal mask on a non-square matrix",
	 "e = x |> embedding(10, 6)\ns = matmul(e, e, transpose_a: true) |> softmax(causal: false)\n"
	 "p = matmul(e, e |> dense(5), transpose_a: true) |> softmax(causal: true)\nlogits = e |> dense(10)\n",
	 ":6:68: error: a causal mask needs square matrices of scores [..., L, L], but the input has shape [n, 6, 5]"},
	{"embedding smaller than the vocabulary", "logits = x |> embedding(8, 4) |> dense(10)\n",
	 ":4:25: error: the input's vocabulary has 10 tokens, more than this embedding's 8"},
	{"embedding of real values", "logits = (x |> embedding(10, 4) |> flatten |> dense(4)) |> embedding(10, 4) |> dense(10)\n",
	 ":4:10: error: 'embedding' reads token ids: the input declared as token(V)[T], but its input has shape [n, 4]"},
	{"matmul of mismatched matrices", "e = x |> embedding(10, 4)\nlogits = matmul(e, e) |> dense(10)\n",
	 ":5:10: error: 'matmul' needs per-sample matrices [..., M, K] and [..., K, N] with the same leading axes, but got [n, 6, 4] and [n, 6, 4]"},
	{"logits of the wrong size", "logits = x |> embedding(10, 4) |> dense(9)\n",
	 ":5:6: error: 'softmax_cross_entropy' needs 6 x 10 logits per sample to match label class(10)[6], but got shape [n, 6, 9]"},
};

Test(seq, diagnostics)
{
	for (size_t i = 0; i < sizeof diags / sizeof diags[0]; i++) {
		char *src = nnc_sprintf("model d\ninput x : token(10)[6]\nlabel y : class(10)[6]\n%sloss softmax_cross_entropy(logits, y)\n"
					"optimizer adam(lr: 0.01)\ntrain {\n  data: reverse(count: 10)\n  batch: 4\n}\n",
					diags[i].body);
		char dir[256], *out = NULL;
		sh_mktemp(dir, sizeof dir, "seqdiag");
		write_file(nnc_sprintf("%s/d.nn", dir), src, strlen(src));
		cr_assert_eq(sh_rerun(&out, "'%s' '%s/d.nn' -o '%s/d'", NNC_EXE, dir, dir), 1, "%s: %s", diags[i].name, out);
		cr_assert(strstr(out, diags[i].want), "%s: want\n%s\ngot\n%s", diags[i].name, diags[i].want, out);
		free(out);
		sh_rmtree(dir);
	}
}

/* --generate samples through the compiled inference graph: the prompt
 * and N more bytes, the same for the same seed, other text for another;
 * the epoch lines give the validation loss in bits per character too */
Test(seq_e2e, generate_is_seeded, .timeout = 300)
{
	char dir[256], *out = NULL, *a = NULL, *b = NULL, *c = NULL;
	sh_mktemp(dir, sizeof dir, "seqgen");
	static const char prog[] = "model lm\ninput x : token(128)[16]\nlabel y : class(128)[16]\n"
				   "e = x |> embedding(128, 16) |> positional\n"
				   "h = e + (e |> layernorm |> attention(heads: 2, causal: true))\n"
				   "logits = h |> layernorm |> dense(128)\nloss softmax_cross_entropy(logits, y)\n"
				   "optimizer adam(lr: 0.01)\ntrain {\n  data: text(\"corpus.txt\", context: 16)\n"
				   "  validation: 0.1\n  batch: 16\n  epochs: 2\n}\n";
	write_file(nnc_sprintf("%s/lm.nn", dir), prog, sizeof prog - 1);
	static const char text[] = "the cat sat on the mat. the dog sat on the log. the cat saw the dog.\n";
	char *corpus = nnc_sprintf("%s%s%s%s%s%s%s%s", text, text, text, text, text, text, text, text);
	write_file(nnc_sprintf("%s/corpus.txt", dir), corpus, strlen(corpus));
	cr_assert_eq(sh_rerun(&out, "'%s' '%s/lm.nn' -o '%s/lm'", NNC_EXE, dir, dir), 0, "%s", out);
	cr_assert_eq(sh_rerun(&out, "cd '%s' && ./lm --save lm.ckpt", dir), 0, "%s", out);
	double vl = sh_last_number(out, "val_loss"), bpc = sh_last_number(out, "val_bpc");
	cr_assert(fabs(bpc - vl / log(2)) < 2e-4, "val_bpc %g is not val_loss %g in bits\n%s", bpc, vl, out);
	const char *gen = "./lm --load lm.ckpt --generate 50 --prompt 'the ' --temperature 0.8 --top-k 10";
	cr_assert_eq(sh_rerun(&a, "cd '%s' && %s --seed 5", dir, gen), 0, "%s", a);
	cr_assert_eq(sh_rerun(&b, "cd '%s' && %s --seed 5 --threads 1", dir, gen), 0, "%s", b);
	cr_assert_eq(sh_rerun(&c, "cd '%s' && %s --seed 6", dir, gen), 0, "%s", c);
	cr_assert_str_eq(a, b, "the same seed gave other text");
	cr_assert_str_neq(a, c, "another seed gave the same text");
	const char *g = strstr(a, "generated:\nthe ");
	cr_assert(g, "%s", a);
	cr_assert_eq(strlen(g), strlen("generated:\nthe ") + 50 + 1, "not 50 bytes after the prompt:\n%s", a);
	/* a model that is no next-token model is refused */
	cr_assert_eq(sh_rerun(&out, "cd '%s' && ./lm --prompt x", dir), 2, "%s", out);
	cr_assert(strstr(out, "--prompt, --temperature and --top-k go with --generate N"), "%s", out);
	free(out), free(a), free(b), free(c);
	sh_rmtree(dir);
}
