#define _POSIX_C_SOURCE 200809L
/*
 * test_layers.c - dropout, concat, and values with several consumers
 * (fan-out, residual connections), compiled and run in this process like
 * test_codegen.c (jit_harness.h), plus their diagnostics and one training
 * run of the nnc command.
 *
 * What is checked:
 *   - dropout's train-step output against a C reference drawn from
 *     nnrt_random_uniform with the dropout's stream (read from the
 *     workspace, where the planner keeps it to the end of the step), on a
 *     sample-major and on a batch-innermost tensor (the same masks), for 1, 2
 *     and 3 chunks, 1, 2 and 3 threads, a full and a partial batch, fused,
 *     unfused and with the reference kernels; two dropouts draw different
 *     masks; eval_step and infer pass values through unchanged;
 *   - gradients against central differences of the train step's loss (with
 *     the seed and first sample fixed, the masks are fixed), through
 *     dropout, concat and fan-out, on dense and convolutional networks;
 *   - concat's output against a C reference in both layouts, through the
 *     batch path and infer()'s few-sample path;
 *   - the exact text of every error dropout and concat report;
 *   - a network with dropout trained by nnc: it learns, and --eval of its
 *     checkpoint reports the training run's last test line (dropout off).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "ir.h"
#include "jit_harness.h"
#include "nnrt.h"
#include "sh_harness.h"
#include "util.h"

#define SRC_PATH "/tmp/nnc_test_layers.nn"
#define TRAIN_CSV "optimizer sgd(lr: 0.1)\ntrain {\n  data: csv(\"unused.csv\", x: [0], y: [1])\n  batch: 37\n}\n"

static const uint64_t SEED = 0x5eedf00dd00dull;
static const int64_t SAMPLE0 = 3000000019;

/* ---- running a step with the random stream set ---------------------- */

/* Like th_run, with the run's seed and the step's first sample, and every
 * hyper-parameter 0: a train step computes the gradients and leaves the
 * parameters as they are (sgd with learning rate 0). */
static void run_step(state *s, nnrt_body_fn body, int64_t n, int threads)
{
	const nnrt_model *m = s->m;
	for (int64_t i = 0; i < m->ws_floats; i++)
		s->ws[i] = NAN;
	for (int64_t i = n * m->output_size; i < s->out_cap; i++)
		s->out[i] = TH_CANARY;
	s->metrics[0] = s->metrics[1] = -1;
	s->a = (nnrt_step_args){.params = s->params, .grads = s->grads, .opt = s->opt, .ws = s->ws, .x = s->x,
				.y = s->y, .out = s->out, .metrics = s->metrics, .n = n, .seed = SEED,
				.sample0 = SAMPLE0};
	nnrt_run_threads(body, &s->a, threads);
	for (int64_t i = n * m->output_size; i < s->out_cap; i++)
		cr_assert(s->out[i] == TH_CANARY, "%s wrote out[%lld], past its outputs", m->name, (long long)i);
}

/* The node computing what `name` was bound to (its let name). */
static const ir_node *named(const ir_graph *g, const char *name)
{
	for (int i = 0; i < g->n; i++)
		if (!g->nodes[i].dead && g->nodes[i].name && !strcmp(g->nodes[i].name, name))
			return &g->nodes[i];
	cr_assert_fail("no node named %s", name);
	return NULL;
}

/* Floats a batched workspace tensor spans in its chunk. */
static int64_t span(const ir_graph *g, const ir_node *n)
{
	return n->layout == LAYOUT_CN ? n->size * g->bpad : n->size * g->cbatch;
}

/* Reading node d's tensor after a train step is sound only if no later
 * node of the step writes over it. */
static void assert_kept_to_the_end(const ir_graph *g, const ir_node *d)
{
	cr_assert(d->storage == ST_WS && d->batched);
	for (const ir_node *n = d + 1; n < g->nodes + g->n; n++)
		if (!n->dead && (n->entries & IR_ENTRY_TRAIN) && n->storage == ST_WS && n->batched)
			cr_assert(n->offset >= d->offset + span(g, d) || n->offset + span(g, n) <= d->offset,
				  "%s is overwritten by a later %s: the test cannot read it", d->name, ir_op_name(n->op));
}

/* Value v of sample i of batched workspace node d after a step. */
static float ws_value(const ir_graph *g, const float *ws, const ir_node *d, int64_t i, int64_t v)
{
	int64_t k = i / g->cbatch, j = i % g->cbatch;
	const float *base = ws + g->ws_chunk0 + k * g->ws_chunk + d->offset;
	return d->layout == LAYOUT_CN ? base[v * g->bpad + j] : base[j * d->size + v];
}

/* The C reference of dropout: value v of sample `sample` of stream `stream`. */
static float ref_dropout(int64_t stream, int64_t sample, int64_t v, float x, double p)
{
	float u = nnrt_random_uniform(SEED, sample, (int64_t)((uint64_t)stream << 32) + v);
	return u >= (float)p ? x * (float)(1 / (1 - p)) : 0.0f;
}

/* ---- dropout in the train step against the reference ------------------ */

/* The input's 40 values per sample (not a multiple of 16: a masked tail)
 * dropped directly (sample-major), or after a 1x1 max pooling, which copies
 * them into a batch-innermost tensor: the same values, so the same masks. */
static const char drop_nc_src[] =
	"model dropnc\ninput x : f32[2, 4, 5]\nlabel y : class(3)\n"
	"d = x |> dropout(0.3)\n"
	"logits = d |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN_CSV;
static const char drop_cn_src[] =
	"model dropcn\ninput x : f32[2, 4, 5]\nlabel y : class(3)\n"
	"d = x |> maxpool(1) |> dropout(p: 0.3)\n"
	"logits = d |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN_CSV;
/* two dropouts of the same values: streams 1 and 2 */
static const char drop_two_src[] =
	"model droptwo\ninput x : f32[2, 4, 5]\nlabel y : class(3)\n"
	"a = x |> dropout(0.3)\n"
	"b = x |> dropout(0.3)\n"
	"logits = (a |> dense(3)) + (b |> dense(3))\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN_CSV;

typedef struct build {
	int chunks;
	bool fuse, naive;
} build;
static const build builds[] = {
	{1, true, false}, {2, true, false}, {3, true, false}, {2, false, false}, {2, true, true},
};

/* Every value of the named dropouts after train steps of every build,
 * thread count and batch size equals the reference of its stream.  Returns
 * the number of values dropped, over all the checks. */
static int64_t check_dropout_values(const char *src, const char *const *names, const int64_t *streams, int nd)
{
	int64_t dropped = 0, seen = 0;
	for (size_t b = 0; b < NELEMS(builds); b++) {
		th_chunks = builds[b].chunks;
		ir_graph *g = th_build_graph(SRC_PATH, src, builds[b].fuse);
		th_chunks = 0;
		cr_assert_eq(g->chunks, builds[b].chunks);
		jitted j = th_jit(g, builds[b].naive, true);
		state s = th_state_new(j.m);
		th_fill_params(j.m, s.params, 5);
		const int64_t ns[2] = {37, 20};
		for (int t = 0; t < 2; t++) {
			int64_t n = ns[t];
			th_fill_batch(&s, n, 6 + (uint64_t)t);
			for (int threads = 1; threads <= 3; threads++) {
				run_step(&s, j.m->train_step, n, threads);
				for (int k = 0; k < nd; k++) {
					const ir_node *d = named(g, names[k]);
					cr_assert_eq(d->op, IR_DROPOUT);
					cr_assert_eq(d->ia[0], streams[k], "%s draws from stream %lld", names[k], (long long)d->ia[0]);
					assert_kept_to_the_end(g, d);
					for (int64_t i = 0; i < n; i++)
						for (int64_t v = 0; v < d->size; v++) {
							float want = ref_dropout(streams[k], SAMPLE0 + i, v, s.x[i * d->size + v], 0.3);
							float got = ws_value(g, s.ws, d, i, v);
							cr_assert(got == want,
								  "%s (%s), %d chunks%s%s, %d threads, n %lld: sample %lld value %lld is %.9g, reference %.9g",
								  names[k], d->layout == LAYOUT_CN ? "batch-innermost" : "sample-major",
								  builds[b].chunks, builds[b].fuse ? "" : ", unfused",
								  builds[b].naive ? ", reference kernels" : "", threads, (long long)n,
								  (long long)i, (long long)v, got, want);
							dropped += want == 0;
							seen++;
						}
				}
			}
		}
		th_state_free(&s);
		th_jit_free(&j);
	}
	/* p = 0.3 of some 40,000 values: 0.3 within a few standard deviations */
	cr_assert(fabs((double)dropped / (double)seen - 0.3) < 0.02, "%lld of %lld dropped", (long long)dropped,
		  (long long)seen);
	return dropped;
}

Test(dropout, sample_major_values_match_the_reference)
{
	const char *names[] = {"d"};
	const int64_t streams[] = {1};
	check_dropout_values(drop_nc_src, names, streams, 1);
}

Test(dropout, batch_innermost_values_match_the_same_reference)
{
	const char *names[] = {"d"};
	const int64_t streams[] = {1};
	cr_assert_eq(named(th_build_graph(SRC_PATH, drop_cn_src, true), "d")->layout, LAYOUT_CN);
	check_dropout_values(drop_cn_src, names, streams, 1);
}

Test(dropout, two_dropouts_draw_different_masks)
{
	const char *names[] = {"a", "b"};
	const int64_t streams[] = {1, 2};
	check_dropout_values(drop_two_src, names, streams, 2);
	/* the two references differ: each matched its own stream above */
	int64_t differ = 0;
	for (int64_t i = 0; i < 37; i++)
		for (int64_t v = 0; v < 40; v++)
			differ += (ref_dropout(1, SAMPLE0 + i, v, 1, 0.3) == 0) != (ref_dropout(2, SAMPLE0 + i, v, 1, 0.3) == 0);
	cr_assert_gt(differ, 37 * 40 / 5, "the masks of streams 1 and 2 differ in %lld places", (long long)differ);
}

/* In eval_step and infer, dropout passes its input on: infer returns it
 * unchanged (dropped sample-major and batch-innermost, through the batch
 * path and, for n = 3, the few-sample copy), and eval_step's loss is that
 * of the same network without the dropout, to the bit. */
static const char drop_eval_src[] =
	"model dropeval\ninput x : f32[2, 4, 5]\nlabel y : class(3)\n"
	"c = x |> conv2d(3, 3, pad: 1) |> tanh\n"
	"d = c |> dropout(0.5)\n"
	"e = concat(x |> dropout(0.25), x |> maxpool(1) |> dropout(0.5))\n"
	"output e\n"
	"logits = concat(d, d) |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN_CSV;

Test(dropout, eval_and_infer_pass_values_through)
{
	char *plain = nnc_strdup(drop_eval_src);
	char *cut = strstr(plain, " |> dropout(0.5)");
	memmove(cut, cut + strlen(" |> dropout(0.5)"), strlen(cut + strlen(" |> dropout(0.5)")) + 1);
	for (int naive = 0; naive <= 1; naive++) {
		jitted j = th_jit(th_build_graph(SRC_PATH, drop_eval_src, true), naive, true);
		jitted k = th_jit(th_build_graph(SRC_PATH, plain, true), naive, true);
		state s = th_state_new(j.m), t = th_state_new(k.m);
		cr_assert_eq(j.m->param_floats, k.m->param_floats);
		th_fill_params(j.m, s.params, 11);
		memcpy(t.params, s.params, sizeof(float) * (size_t)j.m->param_floats);
		const int64_t ns[3] = {3, 37, 20};
		for (int c = 0; c < 3; c++) {
			int64_t n = ns[c];
			th_fill_batch(&s, n, 12 + (uint64_t)c);
			memcpy(t.x, s.x, sizeof(float) * (size_t)(n * j.m->input_size));
			memcpy(t.y, s.y, sizeof(int32_t) * (size_t)n);
			for (int threads = 1; threads <= 2; threads++) {
				run_step(&s, j.m->infer, n, threads);
				for (int64_t i = 0; i < n; i++)
					for (int half = 0; half < 2; half++)
						cr_assert(!memcmp(s.out + i * 80 + half * 40, s.x + i * 40, sizeof(float) * 40),
							  "infer (n %lld, %d threads) changed the values dropout passes on, sample %lld",
							  (long long)n, threads, (long long)i);
				run_step(&s, j.m->eval_step, n, threads);
				run_step(&t, k.m->eval_step, n, threads);
				cr_assert(s.metrics[0] == t.metrics[0] && s.metrics[1] == t.metrics[1],
					  "eval_step with dropout: loss %.17g, %g correct; without: %.17g, %g", s.metrics[0],
					  s.metrics[1], t.metrics[0], t.metrics[1]);
				/* the train step does drop: its loss differs */
				run_step(&s, j.m->train_step, n, threads);
				cr_assert(s.metrics[0] != t.metrics[0], "the train step dropped nothing");
			}
		}
		th_state_free(&s), th_state_free(&t);
		th_jit_free(&j), th_jit_free(&k);
	}
}

/* The embedding API on the same model: nnrt_instance_infer passes the
 * values through (in batches, n above the compiled batch), evaluate is
 * deterministic and sees no dropout, and each training step draws new
 * masks (its first sample moves on), so two steps on the same batch with a
 * negligible learning rate report different losses, both unlike the
 * evaluation's. */
Test(dropout, the_embedding_api_infers_without_it_and_trains_with_it)
{
	jitted j = th_jit(th_build_graph(SRC_PATH, drop_eval_src, true), false, true);
	int err = 0;
	nnrt_instance *inst = nnrt_instance_new(j.m, &err);
	cr_assert(inst, "%s", nnrt_strerror(err));
	enum { N = 50 };
	float *x = th_falloc(N * 40), *out = th_falloc(N * 80);
	int32_t y[N];
	rng r = {41};
	for (int i = 0; i < N * 40; i++)
		x[i] = (float)rng_uniform(&r, -1, 1);
	for (int i = 0; i < N; i++)
		y[i] = (int32_t)(rng_next(&r) % 3);
	for (int64_t n = 3; n <= N; n += N - 3) {
		cr_assert_eq(nnrt_instance_infer(inst, x, n, out), NNRT_OK, "%s", nnrt_instance_error(inst));
		for (int64_t i = 0; i < n; i++)
			cr_assert(!memcmp(out + i * 80, x + i * 40, 160) && !memcmp(out + i * 80 + 40, x + i * 40, 160),
				  "infer of %lld samples changed sample %lld", (long long)n, (long long)i);
	}
	double e1, e2;
	cr_assert_eq(nnrt_instance_evaluate(inst, x, y, 37, &e1, NULL), NNRT_OK);
	cr_assert_eq(nnrt_instance_evaluate(inst, x, y, 37, &e2, NULL), NNRT_OK);
	cr_assert(e1 == e2);
	cr_assert_eq(nnrt_instance_set_lr(inst, 1e-20f), NNRT_OK);
	float t1, t2;
	cr_assert_eq(nnrt_instance_train_step(inst, x, y, 37, &t1), NNRT_OK);
	cr_assert_eq(nnrt_instance_train_step(inst, x, y, 37, &t2), NNRT_OK);
	cr_assert(t1 != t2 && fabs(t1 - e1) > 1e-6 && fabs(t2 - e1) > 1e-6,
		  "train step losses %.9g, %.9g; evaluation %.9g", t1, t2, e1);
	cr_assert_eq(nnrt_instance_evaluate(inst, x, y, 37, &e2, NULL), NNRT_OK);
	cr_assert(fabs(e2 - e1) < 1e-9, "the steps changed the model: %.17g, then %.17g", e1, e2);
	free(x), free(out);
	nnrt_instance_free(inst);
	th_jit_free(&j);
}

/* ---- gradients against central differences ---------------------------- */

#define FD_STEP 1e-2
#define GRAD_ATOL 1e-4 /* |g - fd| <= ATOL + RTOL |fd| */
#define GRAD_RTOL 3e-3

/* The train step's mean loss at the current parameters (learning rate 0:
 * the parameters stay; the seed and first sample are fixed, so the masks
 * are too, and the loss is a function of the parameters). */
static bool near(double a, double b) { return fabs(a - b) <= GRAD_ATOL + GRAD_RTOL * fabs(b); }

static double step_loss(state *s, int64_t n)
{
	run_step(s, s->m->train_step, n, 1);
	return s->metrics[0] / (double)n;
}

/* Every parameter entry's gradient (train step, `threads` threads, lr 0)
 * against the central difference of step_loss.  Where the one-sided
 * differences disagree (a relu kink within the step), the gradient must
 * match one of them; at most an eighth of the entries may be such. */
static void check_gradients(const char *name, const char *src, bool fuse, bool naive, int64_t n_or_batch, double step)
{
	jitted j = th_jit(th_build_graph(SRC_PATH, src, fuse), naive, true);
	const nnrt_model *m = j.m;
	int64_t n = n_or_batch ? n_or_batch : m->batch;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 21);
	th_fill_batch(&s, n, 22);
	for (int64_t i = 0; i < m->param_floats; i++)
		s.grads[i] = NAN;
	run_step(&s, m->train_step, n, 2);
	float *g = th_falloc(m->param_floats);
	memcpy(g, s.grads, sizeof(float) * (size_t)m->param_floats);
	char what[160];
	snprintf(what, sizeof what, "%s (%s%s)", name, fuse ? "fused" : "unfused", naive ? ", reference kernels" : "");
	double worst = th_fd_check(&s, n, g, step_loss, step, GRAD_ATOL, GRAD_RTOL, what);
	cr_log_info("%s: worst %.3f of the tolerance", name, worst);
	free(g);
	th_state_free(&s);
	th_jit_free(&j);
}

/* Every build: fused, unfused, reference kernels; the full batch and a
 * partial one.  A difference straddles a relu's kink wherever one of the
 * relu's inputs lies within the step: with relus, the networks below take
 * a batch of 8 and a step of 1e-3, so that only a few do. */
static void check_gradients_everywhere(const char *name, const char *src, double step)
{
	check_gradients(name, src, true, false, 0, step);
	check_gradients(name, src, true, false, 3, step);
	check_gradients(name, src, false, false, 0, step);
	check_gradients(name, src, true, true, 3, step);
}

static const char fd_drop_dense_src[] =
	"model fddrop\ninput x : f32[6]\nlabel y : class(3)\n"
	"h = x |> dense(7) |> tanh |> dropout(0.4)\n"
	"k = h |> dense(5) |> dropout(0.2) |> tanh\n"
	"logits = k |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN_CSV;

static const char fd_drop_conv_src[] =
	"model fddropconv\ninput x : f32[2, 5, 5]\nlabel y : class(3)\n"
	"h = x |> conv2d(3, 3, pad: 1) |> tanh |> dropout(0.4)\n"
	"k = h |> conv2d(2, 3) |> dropout(0.3) |> avgpool(3)\n"
	"logits = k |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN_CSV;

Test(gradients, through_dropout_after_dense) { check_gradients_everywhere("fddrop", fd_drop_dense_src, FD_STEP); }
Test(gradients, through_dropout_after_convolutions) { check_gradients_everywhere("fddropconv", fd_drop_conv_src, FD_STEP); }

/* The gradient check can fail: a backward that draws another mask than
 * the forward (its dropouts given other streams) disagrees with the
 * differences in most entries of the first layer's weights. */
Test(gradients, a_backward_with_another_mask_fails_the_check)
{
	ir_graph *g = th_build_graph(SRC_PATH, fd_drop_dense_src, true);
	for (int i = 0; i < g->n; i++)
		if (g->nodes[i].op == IR_DROPOUT_GRAD)
			g->nodes[i].ia[0] += 7;
	jitted j = th_jit(g, false, true);
	state s = th_state_new(j.m);
	th_fill_params(j.m, s.params, 21);
	th_fill_batch(&s, 37, 22);
	run_step(&s, j.m->train_step, 37, 1);
	const nnrt_param_info *w = &j.m->params[0]; /* dense1.weight: before both dropouts */
	cr_assert_str_eq(w->name, "dense1.weight");
	float *g0 = th_falloc(w->size);
	memcpy(g0, s.grads + w->offset, sizeof(float) * (size_t)w->size);
	int64_t bad = 0;
	for (int64_t e = 0; e < w->size; e++) {
		float *p = &s.params[w->offset + e], orig = *p;
		*p = (float)(orig + FD_STEP);
		double hp = *p, lp = step_loss(&s, 37);
		*p = (float)(orig - FD_STEP);
		double hm = *p, lm = step_loss(&s, 37);
		*p = orig;
		bad += !near(g0[e], (lp - lm) / (hp - hm));
	}
	cr_assert_gt(bad, w->size / 2, "only %lld of %lld gradients disagree", (long long)bad, (long long)w->size);
	free(g0);
	th_state_free(&s);
	th_jit_free(&j);
}

/* ---- concat ---------------------------------------------------------- */

static const nnrt_param_info *param(const nnrt_model *m, const char *name)
{
	for (int i = 0; i < m->n_params; i++)
		if (!strcmp(m->params[i].name, name))
			return &m->params[i];
	cr_assert_fail("no parameter %s", name);
	return NULL;
}

/* y[o] = act(sum_i x[i] W[i][o] + b[o]) */
static void ref_dense(const nnrt_model *m, const float *p, const char *layer, const double *x, int64_t in,
		      int64_t out, bool tanh_act, double *y)
{
	const nnrt_param_info *w = param(m, nnc_sprintf("%s.weight", layer)), *b = param(m, nnc_sprintf("%s.bias", layer));
	cr_assert(w->shape[0] == in && w->shape[1] == out);
	for (int64_t o = 0; o < out; o++) {
		double acc = p[b->offset + o];
		for (int64_t i = 0; i < in; i++)
			acc += x[i] * p[w->offset + i * out + o];
		y[o] = tanh_act ? tanh(acc) : acc;
	}
}

/* y[f][h][w] for a 3x3 kernel, stride 1, padding 1: x is [C][H][W] */
static void ref_conv3(const nnrt_model *m, const float *p, const char *layer, const double *x, int64_t C, int64_t H,
		      int64_t W, int64_t F, bool tanh_act, double *y)
{
	const nnrt_param_info *w = param(m, nnc_sprintf("%s.weight", layer)), *b = param(m, nnc_sprintf("%s.bias", layer));
	cr_assert(w->shape[0] == F && w->shape[1] == C && w->shape[2] == 3 && w->shape[3] == 3);
	for (int64_t f = 0; f < F; f++)
		for (int64_t h = 0; h < H; h++)
			for (int64_t c0 = 0; c0 < W; c0++) {
				double acc = p[b->offset + f];
				for (int64_t c = 0; c < C; c++)
					for (int64_t kh = 0; kh < 3; kh++)
						for (int64_t kw = 0; kw < 3; kw++) {
							int64_t ih = h + kh - 1, iw = c0 + kw - 1;
							if (ih >= 0 && ih < H && iw >= 0 && iw < W)
								acc += x[(c * H + ih) * W + iw] *
								       p[w->offset + ((f * C + c) * 3 + kh) * 3 + kw];
						}
				y[(f * H + h) * W + c0] = tanh_act ? tanh(acc) : acc;
			}
}

/* Features: five operands (a chain of two nodes), the input among them. */
static const char cat_nc_src[] =
	"model catnc\ninput x : f32[5]\nlabel y : class(3)\n"
	"a = x |> dense(6) |> tanh\n"
	"b = x |> dense(3) |> tanh\n"
	"c = concat(a, b, a, x, b)\n"
	"output c\n"
	"logits = c |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN_CSV;

static void ref_cat_nc(const nnrt_model *m, const float *p, const float *x, double *c)
{
	double xd[5], a[6], b[3];
	for (int i = 0; i < 5; i++)
		xd[i] = x[i];
	ref_dense(m, p, "dense1", xd, 5, 6, true, a);
	ref_dense(m, p, "dense2", xd, 5, 3, true, b);
	double *parts[5] = {a, b, a, xd, b};
	int sizes[5] = {6, 3, 6, 5, 3};
	for (int k = 0, o = 0; k < 5; o += sizes[k++])
		for (int i = 0; i < sizes[k]; i++)
			c[o + i] = parts[k][i];
}

/* Channels, piped: two convolutions and the input itself (converted to
 * batch-innermost); then a vector concat of a batch-innermost pooling and
 * a sample-major dense layer; the channels also feed a dense layer
 * directly (a batch-innermost gradient, summed with the pooling's). */
static const char cat_cn_src[] =
	"model catcn\ninput x : f32[2, 5, 5]\nlabel y : class(3)\n"
	"a = x |> conv2d(3, 3, pad: 1) |> tanh\n"
	"b = x |> conv2d(2, 3, pad: 1)\n"
	"c = a |> concat(b, x)\n"
	"output c\n"
	"f = concat(c |> global_avgpool, x |> dense(4) |> tanh)\n"
	"logits = (f |> dense(3)) + (c |> dense(3))\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN_CSV;

static void ref_cat_cn(const nnrt_model *m, const float *p, const float *x, double *c)
{
	double xd[50];
	for (int i = 0; i < 50; i++)
		xd[i] = x[i];
	ref_conv3(m, p, "conv1", xd, 2, 5, 5, 3, true, c);
	ref_conv3(m, p, "conv2", xd, 2, 5, 5, 2, false, c + 75);
	memcpy(c + 125, xd, sizeof xd);
}

typedef void ref_fn(const nnrt_model *m, const float *p, const float *x, double *out);

static void check_concat_forward(const char *src, ref_fn *ref)
{
	for (int b = 0; b < 3; b++) {
		bool fuse = b != 1, naive = b == 2;
		jitted j = th_jit(th_build_graph(SRC_PATH, src, fuse), naive, true);
		const nnrt_model *m = j.m;
		state s = th_state_new(m);
		th_fill_params(m, s.params, 31);
		double want[256];
		cr_assert(m->output_size <= 256);
		const int64_t ns[3] = {2, 37, 20}; /* infer's few-sample path, then the batch */
		for (int t = 0; t < 3; t++) {
			th_fill_batch(&s, ns[t], 32 + (uint64_t)t);
			for (int threads = 1; threads <= 2; threads++) {
				run_step(&s, m->infer, ns[t], threads);
				for (int64_t i = 0; i < ns[t]; i++) {
					ref(m, s.params, s.x + i * m->input_size, want);
					for (int64_t v = 0; v < m->output_size; v++)
						cr_assert(fabs(s.out[i * m->output_size + v] - want[v]) <= 1e-5 * fmax(1, fabs(want[v])),
							  "%s (%s), n %lld, %d threads: sample %lld value %lld is %.9g, reference %.9g",
							  m->name, naive ? "reference kernels" : fuse ? "fused" : "unfused",
							  (long long)ns[t], threads, (long long)i, (long long)v,
							  s.out[i * m->output_size + v], want[v]);
				}
			}
		}
		th_state_free(&s);
		th_jit_free(&j);
	}
}

Test(concat, features_match_the_reference) { check_concat_forward(cat_nc_src, ref_cat_nc); }
Test(concat, channels_match_the_reference) { check_concat_forward(cat_cn_src, ref_cat_cn); }
Test(gradients, split_back_by_concat_of_features) { check_gradients_everywhere("catnc", cat_nc_src, FD_STEP); }
Test(gradients, split_back_by_concat_of_channels) { check_gradients_everywhere("catcn", cat_cn_src, FD_STEP); }

/* The five operands made two nodes, the channels one; the gradients are
 * slices of the right places. */
Test(concat, nodes_and_slices)
{
	ir_graph *g = th_build_graph(SRC_PATH, cat_nc_src, true);
	int cats = 0, slices = 0;
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		cats += n->op == IR_CONCAT;
		slices += n->op == IR_SLICE;
		if (n->op == IR_CONCAT)
			cr_assert(n->nin == 4 ? n->size == 20 : n->nin == 2 && n->size == 23);
	}
	cr_assert_eq(cats, 2);
	/* the outer concat gives back its first operand (the inner one) and b;
	 * the inner one a, b and a again (x needs no gradient) */
	cr_assert_eq(slices, 5);
	const ir_node *c = named(g, "c");
	cr_assert_eq(c->layout, LAYOUT_NC);
	g = th_build_graph(SRC_PATH, cat_cn_src, true);
	c = named(g, "c");
	cr_assert(c->op == IR_CONCAT && c->layout == LAYOUT_CN && c->rank == 3 && c->dims[0] == 7 && c->dims[1] == 5);
	const ir_node *f = named(g, "f");
	cr_assert(f->op == IR_CONCAT && f->layout == LAYOUT_NC && f->size == 11);
}

/* ---- fan-out and residual connections --------------------------------- */

/* h feeds three consumers: a dense layer, a product and a residual add. */
static const char fan_src[] =
	"model fan\ninput x : f32[5]\nlabel y : class(3)\n"
	"h = x |> dense(6) |> tanh\n"
	"u = h |> dense(6)\n"
	"v = h * u\n"
	"w = v + h\n"
	"logits = w |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n" TRAIN_CSV;

/* Residual blocks on images, relu(conv(relu(conv(s))) + s), after a stem s
 * that also feeds the block's first convolution, and relu(conv(conv(x)) +
 * x) on the input; the two joined along channels. */
static const char res_src[] =
	"model res\ninput x : f32[3, 6, 6]\nlabel y : class(3)\n"
	"s = x |> conv2d(4, 3, pad: 1) |> tanh\n"
	"r = s |> conv2d(4, 3, pad: 1) |> relu |> conv2d(4, 3, pad: 1)\n"
	"z = relu(r + s)\n"
	"q = relu((x |> conv2d(3, 3, pad: 1) |> conv2d(3, 3, pad: 1)) + x)\n"
	"logits = concat(z, q) |> global_avgpool |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\ntrain {\n  data: csv(\"unused.csv\", x: [0], y: [1])\n  batch: 8\n}\n";

Test(gradients, one_value_feeding_three_consumers) { check_gradients_everywhere("fan", fan_src, FD_STEP); }
Test(gradients, residual_blocks_on_images) { check_gradients_everywhere("res", res_src, 1e-3); }

/* The stem's gradient is the sum over its two uses: an add of a
 * batch-innermost gradient and another. */
Test(gradients, residual_gradients_are_summed_in_their_layout)
{
	ir_graph *g = th_build_graph(SRC_PATH, res_src, false);
	const ir_node *s = named(g, "s");
	int adds = 0;
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (!n->dead && n->op == IR_ADD && n->entries == IR_ENTRY_TRAIN && n->rank == 3) {
			cr_assert_eq(n->layout, LAYOUT_CN);
			cr_assert_eq(g->nodes[n->in[0]].layout, LAYOUT_CN);
			cr_assert_eq(g->nodes[n->in[1]].layout, LAYOUT_CN);
			adds++;
		}
	}
	cr_assert_eq(s->layout, LAYOUT_CN);
	cr_assert_geq(adds, 1, "no gradient sum on images");
}

/* ---- the IR dump and the profile name the new ops ----------------------- */

Test(ir, dump_and_profile_name_the_ops)
{
	ir_graph *g = th_build_graph(SRC_PATH, fd_drop_dense_src, true);
	nnc_buf b = {0};
	ir_dump(g, &b);
	cr_assert(strstr(b.data, " = dropout(%") && strstr(b.data, ") p=0.4 stream=1 : [n, 7]"), "%s", b.data);
	cr_assert(strstr(b.data, ") p=0.2 stream=2 : [n, 5]"), "%s", b.data);
	cr_assert(strstr(b.data, " = dropout_grad(%") && strstr(b.data, ") p=0.2 stream=2 : [n, 5]"), "%s", b.data);
	nnc_buf_free(&b);
	g = th_build_graph(SRC_PATH, cat_nc_src, true);
	ir_dump(g, &b);
	cr_assert(strstr(b.data, " = concat(%") && strstr(b.data, " = slice(%") && strstr(b.data, ") from=20 : [n, 3]"),
		  "%s", b.data);
	nnc_buf_free(&b);
	jitted j = th_jit(th_build_graph(SRC_PATH, fd_drop_dense_src, true), false, true);
	int drops = 0;
	for (int i = 0; i < j.m->n_ops; i++)
		if (!strcmp(j.m->ops[i].kind, "dropout")) {
			cr_assert(!strncmp(j.m->ops[i].name, "dropout", 7), "%s", j.m->ops[i].name);
			cr_assert(j.m->ops[i].flops_per_sample > 0);
			drops++;
		}
	cr_assert_eq(drops, 4, "forward and backward of two dropouts: %d", drops);
	th_jit_free(&j);
}

/* ---- diagnostics, exact text ------------------------------------------ */

#define L_HEAD "model m\ninput x : f32[7]\nlabel y : class(2)\n"
#define L_IMG "model m\ninput x : f32[2, 4, 4]\nlabel y : class(2)\n"
#define L_TAIL "loss softmax_cross_entropy(logits, y)\noptimizer sgd(lr: 0.1)\ntrain {\n  data: csv(\"d.csv\", x: [0], y: [1])\n}\n"

typedef struct diag_case {
	const char *name, *src;
	const char *first; /* the first line, exactly */
	const char *also;  /* another whole line, or NULL */
	int errors;
} diag_case;

static const diag_case diag_cases[] = {
	{"dropout rate of 1", L_HEAD "logits = x |> dropout(1) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:23: error: the dropout rate must be in [0, 1), not 1", NULL, 1},
	{"negative dropout rate", L_HEAD "logits = x |> dropout(p: -0.1) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:26: error: the dropout rate must be in [0, 1), not -0.1", NULL, 1},
	{"dropout without a rate", L_HEAD "logits = x |> dropout |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:10: error: 'dropout' needs the rate of dropped values, e.g. dropout(0.5)", NULL, 1},
	{"dropout rate given twice", L_HEAD "logits = x |> dropout(0.5, p: 0.2) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:28: error: the dropout rate is given twice", NULL, 1},
	{"dropout option misspelt", L_HEAD "logits = x |> dropout(rate: 0.5) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:23: error: 'dropout' has no option 'rate'", "hint: the options of 'dropout' are: p", 1},
	{"dropout rate not a number", L_HEAD "logits = x |> dropout(\"half\") |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:23: error: the dropout rate must be a number, not a string", NULL, 1},
	{"concat of a vector and an image",
	 L_IMG "a = x |> conv2d(3, 3)\nb = x |> dense(5)\nlogits = concat(a, b) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":6:20: error: 'concat' needs operands of the same rank, but 'a' has shape [n, 3, 2, 2] and 'b' has shape [n, 5]",
	 NULL, 1},
	{"concat of images of other sizes",
	 L_IMG "a = x |> conv2d(3, 3)\nb = x |> conv2d(2, 1)\nlogits = a |> concat(b) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":6:22: error: 'concat' joins images along channels, so their height and width must agree, but 'a' has shape [n, 3, 2, 2] and 'b' has shape [n, 2, 4, 4]",
	 NULL, 1},
	{"concat of an unnamed image and a vector",
	 L_IMG "b = x |> dense(5)\nlogits = x |> conv2d(3, 3) |> concat(b, b) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":5:38: error: 'concat' needs operands of the same rank, but operand 1 has shape [n, 3, 2, 2] and 'b' has shape [n, 5]",
	 NULL, 1},
	{"concat of matrices",
	 "model m\ninput x : f32[3, 5]\nlabel y : class(2)\nlogits = concat(x, x) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:17: error: 'concat' joins vectors [n, k] or images [n, C, H, W], but 'x' has shape [n, 3, 5]", NULL, 1},
	{"concat of one tensor", L_HEAD "logits = x |> concat |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:10: error: 'concat' needs at least two tensors to join, e.g. concat(a, b)", NULL, 1},
	{"concat of a number", L_HEAD "logits = concat(x, 3) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:20: error: 'concat' needs tensors to join, not a number", NULL, 1},
	{"concat with an option", L_HEAD "logits = concat(x, x, axis: 1) |> dense(2)\n" L_TAIL,
	 SRC_PATH ":4:23: error: 'concat' has no option 'axis'", "hint: 'concat' takes no options", 1},
};

Test(diagnostics, exact_text)
{
	for (size_t i = 0; i < NELEMS(diag_cases); i++) {
		const diag_case *dc = &diag_cases[i];
		nnc_buf b = {0};
		nnc_diag_set_color(0);
		nnc_diag_reset();
		nnc_diag_capture(&b);
		nnc_program *prog = nnc_parse(th_make_source(SRC_PATH, dc->src));
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

/* A rate of 0 drops nothing and adds no node. */
Test(diagnostics, a_rate_of_zero_is_no_node)
{
	ir_graph *g = th_build_graph(SRC_PATH, L_HEAD "logits = x |> dropout(0) |> dense(2)\n" L_TAIL, true);
	for (int i = 0; i < g->n; i++)
		cr_assert(g->nodes[i].op != IR_DROPOUT && g->nodes[i].op != IR_DROPOUT_GRAD);
}

/* ---- nnc: a network with dropout learns, and --eval agrees ------------- */

static const char mlp_src[] =
	"model dropmlp\n"
	"input x : f32[2]\nlabel y : class(2)\n"
	"h = x |> dense(64) |> relu |> dropout(0.2)\n"
	"h2 = h |> dense(64) |> relu |> dropout(p: 0.2)\n"
	"logits = h2 |> dense(2)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer adam(lr: 0.01)\n"
	"train {\n  data: moons(count: 2000, noise: 0.1, seed: 1)\n  test: moons(count: 1000, noise: 0.1, seed: 2)\n"
	"  batch: 32\n  epochs: 15\n  seed: 3\n}\n";

/* The epoch lines without their timing (the samples/s and seconds at the
 * end of each); arena memory. */
static char *epoch_lines(const char *text)
{
	nnc_buf b = {0};
	for (const char *line = text; *line;) {
		size_t len = strcspn(line, "\n");
		const char *cut = strstr(line, " samples/s");
		if (!strncmp(line, "epoch", 5) && cut && cut < line + len) {
			while (cut > line && cut[-1] != ' ') /* the number before it */
				cut--;
			nnc_buf_printf(&b, "%.*s\n", (int)(cut - line), line);
		}
		line += len + (line[len] == '\n');
	}
	char *r = nnc_strdup(b.data ? b.data : ""); /* the arena's */
	nnc_buf_free(&b);
	return r;
}

Test(e2e, a_network_with_dropout_learns_and_evaluates_without_it, .timeout = 300)
{
	char dir[256];
	sh_mktemp(dir, sizeof dir, "layers");
	FILE *f = fopen(nnc_sprintf("%s/m.nn", dir), "w");
	cr_assert(f);
	fputs(mlp_src, f);
	fclose(f);
	char *out, *ev, *again, *one;
	cr_assert_eq(sh_run(&out, "'%s' '%s/m.nn' -o '%s/m'", NNC_EXE, dir, dir), 0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "'%s/m' --threads 2 --save '%s/m.ckpt'", dir, dir), 0, "%s", out);
	double acc = sh_last_number(out, "test_acc");
	cr_expect_geq(acc, 0.97, "test accuracy %.4f with dropout\n%s", acc, out);
	cr_assert_eq(sh_run(&ev, "'%s/m' --load '%s/m.ckpt' --eval", dir, dir), 0, "%s", ev);
	cr_expect_eq(sh_last_number(ev, "test_loss"), sh_last_number(out, "test_loss"), "--eval:\n%s\ntraining:\n%s", ev, out);
	cr_expect_eq(sh_last_number(ev, "test_acc"), sh_last_number(out, "test_acc"), "--eval:\n%s\ntraining:\n%s", ev, out);
	/* --predict passes through the dropouts too: the same lines twice */
	FILE *pf = fopen(nnc_sprintf("%s/p.csv", dir), "w");
	cr_assert(pf);
	fputs("x1,x2\n-1.0,0.2\n2.0,0.3\n0.0,0.9\n1.0,-0.4\n0.5,0.5\n", pf);
	fclose(pf);
	/* --predict and --eval give what the same network without its dropouts
	 * gives from the checkpoint (the parameters are the same, so it loads) */
	char *plain = nnc_strdup(mlp_src);
	for (const char *cut; (cut = strstr(plain, " |> dropout"));) {
		const char *end = strchr(cut, ')') + 1;
		memmove((char *)cut, end, strlen(end) + 1);
	}
	cr_assert(!strstr(plain, "dropout"));
	f = fopen(nnc_sprintf("%s/m0.nn", dir), "w");
	cr_assert(f);
	fputs(plain, f);
	fclose(f);
	char *p1, *p2, *e0;
	cr_assert_eq(sh_run(&p1, "'%s' '%s/m0.nn' -o '%s/m0'", NNC_EXE, dir, dir), 0, "%s", p1);
	free(p1);
	cr_assert_eq(sh_run(&p1, "'%s/m' --load '%s/m.ckpt' --predict '%s/p.csv'", dir, dir, dir), 0, "%s", p1);
	cr_assert_eq(sh_run(&p2, "'%s/m0' --load '%s/m.ckpt' --predict '%s/p.csv'", dir, dir, dir), 0, "%s", p2);
	cr_expect(strstr(p1, "\n4 ") || !strncmp(p1, "4 ", 2), "five predictions expected:\n%s", p1);
	cr_expect_str_eq(p1, p2, "--predict with and without the dropouts differ");
	cr_assert_eq(sh_run(&e0, "'%s/m0' --load '%s/m.ckpt' --eval", dir, dir), 0, "%s", e0);
	cr_expect_str_eq(ev, e0, "--eval with and without the dropouts differ");
	free(p1), free(p2), free(e0);
	/* the masks come from the seed alone: another run, and one on one
	 * thread, train the same, to the printed digit */
	cr_assert_eq(sh_run(&again, "'%s/m' --threads 2 --epochs 3", dir), 0, "%s", again);
	cr_assert_eq(sh_run(&one, "'%s/m' --threads 1 --epochs 3", dir), 0, "%s", one);
	cr_expect_str_eq(epoch_lines(again), epoch_lines(one), "1 and 2 threads differ");
	char *other;
	cr_assert_eq(sh_run(&other, "'%s/m' --threads 1 --epochs 3 --seed 4", dir), 0, "%s", other);
	cr_expect_str_neq(epoch_lines(other), epoch_lines(one), "another seed trained the same");
	free(out), free(ev), free(again), free(one), free(other);
	sh_rmtree(dir);
}
