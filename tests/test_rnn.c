/*
 * test_rnn.c - the recurrent layers lstm and gru (docs/language.md
 * "Recurrent layers", docs/architecture.md "Recurrent layers"), compiled by
 * nnc and run in this process (tests/jit_harness.h):
 *   forward    networks of lstm and gru layers (stacked, all states or the
 *              last one) against a double-precision C loop of PyTorch's
 *              formulas, reading the parameters by name, for every batch
 *              size up to the batch (full and partial register tiles of
 *              samples), with the AVX2 and the AVX-512 tile shapes;
 *   gradients  the train step's gradient of every parameter entry against
 *              central differences of its loss (full and partial batches,
 *              one chunk and two, both tile shapes);
 *   threads    1, 2 and 3 threads give bit-identical parameters after three
 *              Adam steps, with chunks and with one chunk split across the
 *              threads;
 *   programs   errors at the right line (their ONNX export is
 *              test_onnx.c's), examples/charlstm.nn trained on a slice of the
 *              fortunes corpus, and --generate from it.
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
#include "nnrt.h"
#include "sh_harness.h"
#include "util.h"

#define SRC_PATH "/tmp/nnc_test_rnn.nn"

/* ---- the networks: a chain of layers, each row of the table one ---- */

enum { L_END, L_EMBED, L_LSTM, L_GRU, L_DENSE };

typedef struct layer {
	int kind;
	int64_t units; /* embedding: d */
	bool last;     /* lstm, gru: sequences: false */
} layer;

typedef struct net {
	const char *name;
	int64_t V, T, batch;
	layer l[6];
} net;

static const net nets[] = {
	/* stacked, all states; 20 units: a full vector and a masked tail */
	{"lstm_stack", 7, 5, 9, {{L_EMBED, 4, 0}, {L_LSTM, 5, 0}, {L_LSTM, 20, 0}, {L_DENSE, 7, 0}}},
	{"gru_stack", 6, 4, 9, {{L_EMBED, 3, 0}, {L_GRU, 18, 0}, {L_GRU, 7, 0}, {L_DENSE, 6, 0}}},
	/* the last state, read by a dense over the whole vector */
	{"lstm_last", 5, 6, 7, {{L_EMBED, 4, 0}, {L_LSTM, 6, 1}, {L_DENSE, 30, 0}}},
	{"gru_last", 5, 4, 7, {{L_EMBED, 3, 0}, {L_GRU, 17, 1}, {L_DENSE, 20, 0}}},
	/* one of each, on a per-position dense */
	{"gru_lstm", 6, 5, 8, {{L_EMBED, 5, 0}, {L_DENSE, 8, 0}, {L_GRU, 9, 0}, {L_LSTM, 4, 0}, {L_DENSE, 6, 0}}},
	/* one unit: every vector a masked tail of one lane */
	{"units_1", 4, 3, 5, {{L_EMBED, 2, 0}, {L_LSTM, 1, 0}, {L_GRU, 1, 1}, {L_DENSE, 12, 0}}},
};

/* The .nn program of a net (arena) */
static const char *net_src(const net *t)
{
	char *s = nnc_sprintf("model %s\ninput x : token(%lld)[%lld]\nlabel y : class(%lld)[%lld]\nlogits = x", t->name,
			      (long long)t->V, (long long)t->T, (long long)t->V, (long long)t->T);
	for (const layer *l = t->l; l->kind != L_END; l++) {
		switch (l->kind) {
		case L_EMBED: s = nnc_sprintf("%s |> embedding(%lld, %lld)", s, (long long)t->V, (long long)l->units); break;
		case L_LSTM:
		case L_GRU:
			s = nnc_sprintf("%s |> %s(%lld%s)", s, l->kind == L_LSTM ? "lstm" : "gru", (long long)l->units,
					l->last ? ", sequences: false" : "");
			break;
		case L_DENSE: s = nnc_sprintf("%s |> dense(%lld)", s, (long long)l->units); break;
		}
	}
	return nnc_sprintf("%s\nloss softmax_cross_entropy(logits, y)\noptimizer adam(lr: 0.01)\n"
			   "train {\n  data: text(\"/nonexistent/corpus.txt\")\n  batch: %lld\n}\n",
			   s, (long long)t->batch);
}

static const float *param(const nnrt_model *m, const float *p, const char *layer_name, const char *what)
{
	char name[64];
	snprintf(name, sizeof name, "%s.%s", layer_name, what);
	int i = nnrt_model_param_index(m, name);
	cr_assert(i >= 0, "no parameter %s", name);
	return p + m->params[i].offset;
}

/* ---- the double-precision reference: PyTorch's formulas, as loops ---- */

static double sigm(double v) { return 1 / (1 + exp(-v)); }

/* torch.nn.LSTM / torch.nn.GRU (one layer, batch_first, zero initial
 * state) on x [T][d] into h [T][H], with nnc's parameters: weight_ih [d][G H]
 * (torch's weight_ih_l0 transposed), weight_hh [H][G H], bias_ih, bias_hh
 * [G H]; gates i f g o (LSTM), r z n (GRU) */
static void ref_rnn(const nnrt_model *m, const float *p, const char *name, bool lstm, const double *x, int64_t T,
		    int64_t d, int64_t H, double *hout)
{
	int64_t G = lstm ? 4 : 3, GH = G * H;
	const float *Wi = param(m, p, name, "weight_ih"), *Wh = param(m, p, name, "weight_hh");
	const float *bi = param(m, p, name, "bias_ih"), *bh = param(m, p, name, "bias_hh");
	double *h = calloc((size_t)H, sizeof(double)), *cc = calloc((size_t)H, sizeof(double));
	double *xp = calloc((size_t)GH, sizeof(double)), *hp = calloc((size_t)GH, sizeof(double));
	for (int64_t t = 0; t < T; t++) {
		for (int64_t j = 0; j < GH; j++) {
			xp[j] = bi[j];
			hp[j] = bh[j];
			for (int64_t i = 0; i < d; i++)
				xp[j] += x[t * d + i] * Wi[i * GH + j];
			for (int64_t k = 0; k < H; k++)
				hp[j] += h[k] * Wh[k * GH + j];
		}
		for (int64_t u = 0; u < H; u++) {
			if (lstm) {
				double ig = sigm(xp[u] + hp[u]), fg = sigm(xp[H + u] + hp[H + u]);
				double gg = tanh(xp[2 * H + u] + hp[2 * H + u]), og = sigm(xp[3 * H + u] + hp[3 * H + u]);
				cc[u] = fg * cc[u] + ig * gg;
				h[u] = og * tanh(cc[u]);
			} else {
				double r = sigm(xp[u] + hp[u]), z = sigm(xp[H + u] + hp[H + u]);
				double nn = tanh(xp[2 * H + u] + r * hp[2 * H + u]);
				h[u] = (1 - z) * nn + z * h[u];
			}
			hout[t * H + u] = h[u];
		}
	}
	free(h), free(cc), free(xp), free(hp);
}

/* One sample's logits [T][V] (malloc'd) from its T token ids */
static double *ref_logits(const net *t, const nnrt_model *m, const float *p, const float *x)
{
	int64_t rows = t->T, width = 1; /* the value: rows x width (rows 1: a vector) */
	double *v = malloc(sizeof(double) * (size_t)t->T), *w = NULL;
	for (int64_t i = 0; i < t->T; i++)
		v[i] = x[i];
	int nl = 0, nd = 0, ng = 0;
	for (const layer *l = t->l; l->kind != L_END; l++) {
		char name[32];
		w = malloc(sizeof(double) * (size_t)(rows * l->units));
		if (l->kind == L_EMBED) {
			const float *W = param(m, p, "embedding1", "weight");
			for (int64_t i = 0; i < rows; i++)
				for (int64_t j = 0; j < l->units; j++)
					w[i * l->units + j] = W[(int64_t)v[i] * l->units + j];
		} else if (l->kind == L_DENSE) {
			snprintf(name, sizeof name, "dense%d", ++nd);
			const float *W = param(m, p, name, "weight"), *b = param(m, p, name, "bias");
			for (int64_t r = 0; r < rows; r++)
				for (int64_t o = 0; o < l->units; o++) {
					double a = b[o];
					for (int64_t i = 0; i < width; i++)
						a += v[r * width + i] * W[i * l->units + o];
					w[r * l->units + o] = a;
				}
		} else {
			bool lstm = l->kind == L_LSTM;
			snprintf(name, sizeof name, "%s%d", lstm ? "lstm" : "gru", lstm ? ++nl : ++ng);
			ref_rnn(m, p, name, lstm, v, rows, width, l->units, w);
			if (l->last) { /* the last state, as one vector */
				memmove(w, w + (rows - 1) * l->units, sizeof(double) * (size_t)l->units);
				rows = 1;
			}
		}
		width = l->units;
		free(v);
		v = w;
	}
	cr_assert_eq(rows * width, t->T * t->V);
	return v;
}

/* The mean loss and accuracy over n samples */
static void ref_forward(const net *t, const nnrt_model *m, const float *p, const float *x, const float *y, int64_t n,
			double *loss, double *acc)
{
	*loss = *acc = 0;
	for (int64_t s = 0; s < n; s++) {
		double *z = ref_logits(t, m, p, x + s * t->T), ls, ac;
		th_ref_seq_xent(z, y + s * t->T, t->T, t->V, &ls, &ac);
		*loss += ls;
		*acc += ac;
		free(z);
	}
}

static void check_forward(const net *t, int vacc)
{
	th_vacc = vacc;
	jitted j = th_jit(th_build_graph(SRC_PATH, net_src(t), true), false, true);
	th_vacc = 0;
	const nnrt_model *m = j.m;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 5);
	for (int64_t n = 1; n <= m->batch; n++) {
		th_fill_tokens(&s, n, t->V, 40 + (uint64_t)n, true);
		th_run_threads(&s, m->eval_step, n, 2);
		double l, a;
		ref_forward(t, m, s.params, s.x, s.y, n, &l, &a);
		cr_assert(fabs(s.metrics[0] - l) <= 2e-5 * (1 + fabs(l)) * (double)n, "%s (vacc %d) n %lld: loss %.7g, reference %.7g",
			  t->name, vacc, (long long)n, s.metrics[0], l);
		cr_assert(fabs(s.metrics[1] - a) <= 1e-6 * (double)n, "%s n %lld: accuracy %.7g, reference %.7g", t->name,
			  (long long)n, s.metrics[1], a);
	}
	th_state_free(&s);
	th_jit_free(&j);
}

Test(rnn, forward_against_reference)
{
	for (size_t i = 0; i < NELEMS(nets); i++) {
		check_forward(&nets[i], 6);  /* AVX2's tiles: 6 samples x 16 */
		check_forward(&nets[i], 24); /* AVX-512's: 8 samples x 48 */
	}
}

/* Inference (the softmax of each position's logits, the forward nodes
 * that the output depends on) against the reference, value by value */
Test(rnn, inference_against_reference)
{
	for (size_t i = 0; i < NELEMS(nets); i++) {
		const net *t = &nets[i];
		jitted j = th_jit(th_build_graph(SRC_PATH, net_src(t), true), false, true);
		const nnrt_model *m = j.m;
		state s = th_state_new(m);
		th_fill_params(m, s.params, 3);
		int64_t n = 5, T = t->T, V = t->V;
		th_fill_tokens(&s, n, V, 8, true);
		th_run_threads(&s, m->infer, n, 2);
		for (int64_t smp = 0; smp < n; smp++) {
			double *z = ref_logits(t, m, s.params, s.x + smp * T);
			for (int64_t r = 0; r < T; r++) {
				double mx = -1e300, sum = 0;
				for (int64_t o = 0; o < V; o++)
					mx = fmax(mx, z[r * V + o]);
				for (int64_t o = 0; o < V; o++)
					sum += exp(z[r * V + o] - mx);
				for (int64_t o = 0; o < V; o++) {
					double got = s.out[(smp * T + r) * V + o], want = exp(z[r * V + o] - mx) / sum;
					cr_assert(fabs(got - want) < 2e-6, "%s sample %lld position %lld class %lld: %.7g, reference %.7g",
						  t->name, (long long)smp, (long long)r, (long long)o, got, want);
				}
			}
			free(z);
		}
		th_state_free(&s);
		th_jit_free(&j);
	}
}

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
 * threads) against the central difference of the eval step's loss. */
static void check_gradients(const net *t, int64_t n_or_batch, int vacc, int64_t chunks)
{
	th_vacc = vacc;
	th_chunks = chunks;
	jitted j = th_jit(th_build_graph(SRC_PATH, net_src(t), true), false, true);
	th_vacc = 0;
	th_chunks = 0;
	const nnrt_model *m = j.m;
	int64_t n = n_or_batch ? n_or_batch : m->batch;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 21);
	th_fill_tokens(&s, n, t->V, 22, true);
	for (int64_t i = 0; i < m->param_floats; i++)
		s.grads[i] = NAN;
	memset(s.a.hp, 0, sizeof s.a.hp);
	th_run_threads(&s, m->train_step, n, 2);
	float *g = th_falloc(m->param_floats);
	memcpy(g, s.grads, sizeof(float) * (size_t)m->param_floats);
	char what[160];
	snprintf(what, sizeof what, "%s (vacc %d, chunks %lld)", t->name, vacc, (long long)chunks);
	th_fd_check(&s, n, g, step_loss, FD_STEP, GRAD_ATOL, GRAD_RTOL, what);
	free(g);
	th_state_free(&s);
	th_jit_free(&j);
}

static void check_gradients_everywhere(const net *t)
{
	check_gradients(t, 0, 6, 0);
	check_gradients(t, 3, 6, 0); /* a partial batch */
	check_gradients(t, 0, 24, 0);
	check_gradients(t, 0, 6, 1); /* one chunk: the samples split across the threads */
}

Test(rnn_grad, lstm_stack) { check_gradients_everywhere(&nets[0]); }
Test(rnn_grad, gru_stack) { check_gradients_everywhere(&nets[1]); }
Test(rnn_grad, lstm_last) { check_gradients_everywhere(&nets[2]); }
Test(rnn_grad, gru_last) { check_gradients_everywhere(&nets[3]); }
Test(rnn_grad, gru_lstm) { check_gradients_everywhere(&nets[4]); }
Test(rnn_grad, units_1) { check_gradients_everywhere(&nets[5]); }

/* ---- threads ---- */

/* Three Adam steps with 1, 2 and 3 threads: bit-identical parameters */
static void check_threads(const net *t, int64_t chunks)
{
	th_chunks = chunks;
	jitted j = th_jit(th_build_graph(SRC_PATH, net_src(t), true), false, true);
	th_chunks = 0;
	char what[64];
	snprintf(what, sizeof what, "%s, chunks %lld", t->name, (long long)chunks);
	th_check_seq_threads(j.m, t->V, what);
	th_jit_free(&j);
}

Test(rnn, threads_bit_identical)
{
	for (size_t i = 0; i < NELEMS(nets); i++) {
		check_threads(&nets[i], 0);
		check_threads(&nets[i], 1);
	}
}

/* ---- the compiler and the training binary ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	cr_assert(f, "cannot write %s", path);
	cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
}

/* Bad programs: the error at the right line and column */
typedef struct diag_case {
	const char *name, *body, *want;
} diag_case;

static const diag_case diags[] = {
	{"lstm of a vector", "h = x |> embedding(10, 4) |> flatten |> lstm(8)\nlogits = h |> dense(60)\n",
	 ":4:5: error: 'lstm' needs a per-sample value of shape [T, d] (T steps of d features), but its input has shape [n, 24]"},
	{"gru of the last state", "h = x |> embedding(10, 4) |> gru(8, sequences: false) |> gru(4)\nlogits = h |> dense(60)\n",
	 ":4:5: error: 'gru' needs a per-sample value of shape [T, d] (T steps of d features), but its input has shape [n, 8]"},
	{"lstm of heads", "h = x |> embedding(10, 4) |> split_heads(2) |> lstm(8)\nlogits = h |> dense(60)\n",
	 ":4:5: error: 'lstm' needs a per-sample value of shape [T, d] (T steps of d features), but its input has shape [n, 2, 6, 2]"},
	{"zero units", "e = x |> embedding(10, 4)\nh = e |> lstm(0)\nlogits = h |> dense(10)\n",
	 ":5:15: error: the number of units must be a whole number >= 1, not 0"},
	{"negative units", "e = x |> embedding(10, 4)\nh = e |> gru(units: -3)\nlogits = h |> dense(10)\n",
	 ":5:21: error: the number of units must be a whole number >= 1, not -3"},
	{"no units", "e = x |> embedding(10, 4)\n\nh = e |> lstm\nlogits = h |> dense(10)\n",
	 ":6:5: error: 'lstm' needs the number of units, e.g. lstm(units: 4)"},
	{"sequences not a bool", "h = x |> embedding(10, 4) |> lstm(8, sequences: 2)\nlogits = h |> dense(10)\n",
	 ":4:49: error: 'sequences' of lstm must be true or false"},
	{"unknown option", "h = x |> embedding(10, 4) |> gru(8, return_sequences: false)\nlogits = h |> dense(10)\n",
	 ":4:37: error: 'gru' has no option 'return_sequences'"},
};

Test(rnn, diagnostics)
{
	for (size_t i = 0; i < NELEMS(diags); i++) {
		char *src = nnc_sprintf("model d\ninput x : token(10)[6]\nlabel y : class(10)[6]\n%sloss softmax_cross_entropy(logits, y)\n"
					"optimizer adam(lr: 0.01)\ntrain {\n  data: reverse(count: 10)\n  batch: 4\n}\n",
					diags[i].body);
		char dir[256], *out = NULL;
		sh_mktemp(dir, sizeof dir, "rnndiag");
		write_file(nnc_sprintf("%s/d.nn", dir), src);
		cr_assert_eq(sh_rerun(&out, "'%s' '%s/d.nn' -o '%s/d'", NNC_EXE, dir, dir), 1, "%s: %s", diags[i].name, out);
		cr_assert(strstr(out, diags[i].want), "%s: want\n%s\ngot\n%s", diags[i].name, diags[i].want, out);
		free(out);
		sh_rmtree(dir);
	}
}

/* examples/charlstm.nn on a slice of the fortunes corpus (1000 windows, two
 * epochs, 60 steps): the validation loss falls well below what the bytes'
 * frequencies alone give (3.37 nats on those 64000 bytes; the uniform
 * ln 256 is 5.55), and the saved model writes text, seeded and
 * reproducibly */
Test(rnn_e2e, charlstm_trains_and_generates, .timeout = 900)
{
	char dir[256], *out = NULL, *a = NULL, *b = NULL;
	sh_mktemp(dir, sizeof dir, "rnnlm");
	cr_assert_eq(sh_rerun(&out, "'%s' '%s/examples/charlstm.nn' -o '%s/lm'", NNC_EXE, NNC_SOURCE_DIR, dir), 0, "%s", out);
	cr_assert_eq(sh_rerun(&out, "cd '%s' && ./lm --limit 1000 --epochs 2 --save lm.ckpt", dir), 0, "%s", out);
	double vl = sh_last_number(out, "val_loss"), bpc = sh_last_number(out, "val_bpc");
	cr_assert_lt(vl, 2.8, "validation loss %.4f after two epochs of 1000 windows\n%s", vl, out);
	cr_assert(fabs(bpc - vl / log(2)) < 2e-4, "val_bpc %g is not val_loss %g in bits\n%s", bpc, vl, out);
	const char *gen = "./lm --load lm.ckpt --generate 40 --prompt 'The ' --temperature 0.8 --top-k 10 --seed 4";
	cr_assert_eq(sh_rerun(&a, "cd '%s' && %s", dir, gen), 0, "%s", a);
	cr_assert_eq(sh_rerun(&b, "cd '%s' && %s --threads 1", dir, gen), 0, "%s", b);
	cr_assert_str_eq(a, b, "the same seed gave other text");
	const char *g = strstr(a, "generated:\nThe ");
	cr_assert(g, "%s", a);
	cr_assert_eq(strlen(g), strlen("generated:\nThe ") + 40 + 1, "not 40 bytes after the prompt:\n%s", a);
	free(out), free(a), free(b);
	sh_rmtree(dir);
}
