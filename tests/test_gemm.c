/*
 * test_gemm.c - the cache blocking of the dense products (cg_kernels.c,
 * gemm_blocking): packed panels of B, slices of the reduction, row groups
 * cut to L2, the partial row blocks' power-of-two tiles, and the blocked
 * transposition of a weight.
 *
 * The blocking depends on the cache sizes, so each network is compiled with
 * tiny caches (th_l1, th_l2: panels of a few rows, many slices, row groups of
 * two blocks) and with large ones (one slice, no row cut; packing still where
 * B's rows are far apart), for the AVX2 and the AVX-512 register tiles.  A
 * blocking changes only where sums wait, never their order, so:
 *   - the blocked builds give the same bits as each other, for partial
 *     batches, one and several chunks, and 1, 2 and 3 threads;
 *   - they agree with the reference kernels (cg_naive.c) within rounding.
 * The shapes are odd on purpose: primes, 1, widths just below and above the
 * packing threshold (GEMM_PACK_LD = 256 floats) and the slice lengths the
 * tiny caches give (32 rows of 16 floats: K = 31, 32, 33).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "cg.h"
#include "jit_harness.h"

#define SRC_PATH "gemm.nn"

/* Each layer's products and what they exercise (AVX2 tile 6 x 16, tiny L1
 * of 4 KiB: slices of 32 rows; L2 of 16 KiB):
 *   33 -> 257   forward packed (N = 257: 16 full column blocks and a 1-wide
 *               tail), K = 33 in two slices; dW not packed (K = n at run time,
 *               ldb 257: packed, one slice of at most cbatch rows)
 *   257 -> 263  everything packed, K = 257 and 263 in 9 slices each; dx's
 *               weight transposed in 16 x 16 blocks with ragged edges
 *   263 -> 31   forward not packed (N = 31); dx packed (Wt rows 263 apart)
 *   31 -> 1     one output column; K = 31, just below a slice
 *   1 -> 255    (second net) K = 1; N = 255 just below the threshold
 * The third net is per position (24 rows a sample): the weight gradients'
 * K is the chunk's rows at run time (up to 960), sliced for that bound:
 *   20 -> 300   dW packed (ldb 300), in slices of 32 rows with the tiny L1
 *               (one of 960 with the large one), the last slice partial
 *   300 -> 40   dW not packed, K cut in two slices of 480 (32 KiB of B)
 */
static const char *nets[] = {
	"model g\n"
	"input x : f32[33]\n"
	"label y : class(5)\n"
	"a = x |> dense(257) |> relu\n"
	"b = a |> dense(263) |> tanh\n"
	"c = b |> dense(31) |> relu\n"
	"d = c |> dense(1) |> sigmoid\n"
	"logits = concat(d, c |> dense(4))\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\n"
	"train {\n  data: idx(\"/nonexistent/a\", \"/nonexistent/b\")\n  batch: 40\n}\n",

	"model h\n"
	"input x : f32[32]\n"
	"label y : class(3)\n"
	"s = x |> dense(1) |> tanh\n"
	"t = s |> dense(255) |> relu |> dense(256) |> relu\n"
	"logits = t |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\n"
	"train {\n  data: idx(\"/nonexistent/a\", \"/nonexistent/b\")\n  batch: 29\n}\n",

	"model p\n"
	"input x : token(13)[24]\n"
	"label y : class(13)[24]\n"
	"a = x |> embedding(13, 20) |> dense(300) |> gelu\n"
	"logits = a |> dense(40) |> tanh |> dense(13)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\n"
	"train {\n  data: text(\"/nonexistent/corpus.txt\", context: 24)\n  batch: 40\n}\n",

	/* convolutions for the bf16 tests: one channel (float32 even in a bf16
	 * build, next to bf16 layers), pairs of channels from C = 2 (even), 5
	 * and 3 (odd: a zero channel pads the last pair), 3 x 3, 5 x 5 with
	 * stride 2, 1 x 1; a batch that is no multiple of 16 */
	"model k\n"
	"input x : f32[1, 10, 9]\n"
	"label y : class(3)\n"
	"a = x |> conv2d(2, 5, pad: 2) |> relu |> conv2d(5, 3, pad: 1) |> relu\n"
	"b = a |> conv2d(3, 5, stride: 2, pad: 2) |> tanh\n"
	"logits = b |> conv2d(8, 1) |> relu |> avgpool(2) |> flatten |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\n"
	"train {\n  data: idx(\"/nonexistent/a\", \"/nonexistent/b\")\n  batch: 37\n}\n",
};
#define SEQ_NET 2 /* nets[SEQ_NET] reads tokens */
#define CONV_NET 3

/* One step's results: the gradients, the loss and the inference outputs. */
typedef struct result {
	float *grads, *out;
	double loss;
} result;

/* hp[NNRT_HP_FP32] of the steps step() runs (a bf16 build's float32 code) */
static float step_fp32;

static result step(const jitted *j, int64_t n, int threads, bool tokens)
{
	const nnrt_model *m = j->m;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 11);
	if (tokens)
		th_fill_tokens(&s, n, 13, 12, false);
	else
		th_fill_batch(&s, n, 12);
	nnrt_set_threads(threads);
	memset(s.a.hp, 0, sizeof s.a.hp);
	s.a.hp[NNRT_HP_FP32] = step_fp32;
	th_run(&s, m->train_step, n);
	result r = {th_falloc(m->param_floats), th_falloc(n * m->output_size), s.metrics[0]};
	memcpy(r.grads, s.grads, sizeof(float) * (size_t)m->param_floats);
	th_run(&s, m->infer, n);
	memcpy(r.out, s.out, sizeof(float) * (size_t)(n * m->output_size));
	th_state_free(&s);
	return r;
}

static void result_free(result *r)
{
	free(r->grads);
	free(r->out);
}

static void results_free(result *a, result *b, result *c)
{
	result_free(a);
	result_free(b);
	result_free(c);
}

static void jits_free(jitted *a, jitted *b, jitted *c)
{
	th_jit_free(a);
	th_jit_free(b);
	th_jit_free(c);
}

static jitted build(int net, bool naive, int64_t l1, int64_t l2)
{
	th_l1 = l1;
	th_l2 = l2;
	return th_jit(th_build_graph(SRC_PATH, nets[net], true), naive, !naive);
}

static void same_bits(const jitted *j, const result *a, const result *b, int64_t n, const char *what)
{
	const nnrt_model *m = j->m;
	for (int pi = 0; pi < m->n_params; pi++) {
		const nnrt_param_info *p = &m->params[pi];
		for (int64_t e = p->offset; e < p->offset + p->size; e++)
			cr_assert(!memcmp(&a->grads[e], &b->grads[e], sizeof(float)),
				  "%s n=%lld: d loss / d %s[%lld] %.9g vs %.9g", what, (long long)n, p->name,
				  (long long)(e - p->offset), a->grads[e], b->grads[e]);
	}
	cr_assert(!memcmp(a->out, b->out, sizeof(float) * (size_t)(n * m->output_size)), "%s n=%lld: infer differs",
		  what, (long long)n);
	cr_assert(a->loss == b->loss, "%s n=%lld: loss %.17g vs %.17g", what, (long long)n, a->loss, b->loss);
}

/* |a - b| <= 1e-4 (|b| + the tensor's largest |b| / 100): sums of a few
 * hundred products in another order (the reference does not fuse its
 * multiply-adds) */
static void close_to_out(const jitted *j, const result *a, const result *b, int64_t n, double out_tol)
{
	const nnrt_model *m = j->m;
	for (int pi = 0; pi < m->n_params; pi++) {
		const nnrt_param_info *p = &m->params[pi];
		double big = 0;
		for (int64_t e = 0; e < p->size; e++)
			big = fmax(big, fabs(b->grads[p->offset + e]));
		for (int64_t e = 0; e < p->size; e++) {
			double x = a->grads[p->offset + e], y = b->grads[p->offset + e];
			cr_assert(fabs(x - y) <= 1e-4 * (fabs(y) + 1e-2 * big) + 1e-12,
				  "n=%lld: d loss / d %s[%lld] blocked %.9g, naive %.9g", (long long)n, p->name,
				  (long long)e, x, y);
		}
	}
	for (int64_t e = 0; e < n * m->output_size; e++)
		cr_assert(fabs(a->out[e] - b->out[e]) <= out_tol * (fabs(b->out[e]) + 1e-3), "n=%lld: output %lld %.9g vs %.9g",
			  (long long)n, (long long)e, a->out[e], b->out[e]);
	cr_assert(fabs(a->loss - b->loss) <= 1e-4 * fabs(b->loss), "n=%lld: loss %.9g vs %.9g", (long long)n, a->loss,
		  b->loss);
}

static void close_to(const jitted *j, const result *a, const result *b, int64_t n)
{
	close_to_out(j, a, b, n, 1e-4);
}

/* The tiny-cache build against the large-cache build (bits), the naive
 * build (rounding), and itself on 2 and 3 threads (bits), for full and
 * partial batches. */
static void check(int net, int vacc, int64_t chunks)
{
	th_vacc = vacc;
	th_chunks = chunks;
	jitted tiny = build(net, false, 4096, 16384), wide = build(net, false, 1 << 20, 64 << 20),
	       ref = build(net, true, 0, 0);
	int64_t B = tiny.m->batch, ns[] = {1, 7, B / 2 + 1, B - 1, B};
	for (size_t k = 0; k < NELEMS(ns); k++) {
		int64_t n = ns[k];
		bool tok = net == SEQ_NET;
		result t1 = step(&tiny, n, 1, tok), w1 = step(&wide, n, 1, tok), r1 = step(&ref, n, 1, tok);
		same_bits(&tiny, &t1, &w1, n, "tiny vs large caches");
		close_to(&tiny, &t1, &r1, n);
		for (int th = 2; th <= 3; th++) {
			result tt = step(&tiny, n, th, tok);
			same_bits(&tiny, &tt, &t1, n, th == 2 ? "2 threads vs 1" : "3 threads vs 1");
			result_free(&tt);
		}
		results_free(&t1, &w1, &r1);
	}
	jits_free(&tiny, &wide, &ref);
}

Test(gemm, odd_shapes_avx2_tiles) { check(0, 6, 0); }
Test(gemm, odd_shapes_avx512_tiles) { check(0, 24, 0); }
Test(gemm, odd_shapes_one_chunk) { check(0, 6, 1); }
Test(gemm, threshold_widths_avx2_tiles) { check(1, 6, 0); }
Test(gemm, threshold_widths_avx512_tiles) { check(1, 24, 3); }
Test(gemm, run_time_k_slices_avx2_tiles) { check(SEQ_NET, 6, 0); }
Test(gemm, run_time_k_slices_avx512_tiles) { check(SEQ_NET, 24, 0); }
Test(gemm, run_time_k_slices_one_chunk) { check(SEQ_NET, 6, 1); }

/* ---- bf16 products ----
 * The blocked bf16 products (packed pairs of A and B, vdpbf16ps) against
 * the reference kernels with bf16 (operands rounded the same way, terms
 * added by pairs in vdpbf16ps's order): the same bits, since every product
 * of two bfloat16 is exact in float32 and each instruction adds its two in
 * a fixed order.  (vdpbf16ps flushes denormals, which these values do not
 * reach.)  Tiny and large caches, partial batches, 1 to 3 threads; and
 * different from float32. */
static bool host_bf16(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512bf16");
}

static void check_bf16(int net, int64_t chunks, bool exact)
{
	if (!host_bf16()) {
		cr_skip_test("this CPU has no avx512bf16");
		return;
	}
	th_bf16 = true;
	th_vacc = 0;
	th_chunks = chunks;
	jitted tiny = build(net, false, 4096, 16384), wide = build(net, false, 1 << 20, 64 << 20);
	/* the reference products, the other ops optimised as in the fast
	 * builds (unoptimised, the softmax's float32 rounding differs) */
	jitted ref = th_jit(th_build_graph(SRC_PATH, nets[net], true), true, true);
	th_bf16 = false;
	jitted f32 = build(net, false, 1 << 20, 64 << 20);
	int64_t B = tiny.m->batch, ns[] = {1, 7, B / 2 + 1, B - 1, B};
	for (size_t k = 0; k < NELEMS(ns); k++) {
		int64_t n = ns[k];
		bool tok = net == SEQ_NET;
		result t1 = step(&tiny, n, 1, tok), w1 = step(&wide, n, 1, tok), r1 = step(&ref, n, 1, tok);
		same_bits(&tiny, &t1, &w1, n, "bf16: tiny vs large caches");
		if (exact)
			same_bits(&tiny, &t1, &r1, n, "bf16: blocked vs reference");
		else
			close_to(&tiny, &t1, &r1, n);
		for (int th = 2; th <= 3; th++) {
			result tt = step(&tiny, n, th, tok);
			same_bits(&tiny, &tt, &t1, n, th == 2 ? "bf16: 2 threads vs 1" : "bf16: 3 threads vs 1");
			result_free(&tt);
		}
		/* and bf16 is not float32: the rounding shows (a build that
		 * ignored the precision would pass the checks above) */
		result f = step(&f32, n, 1, tok);
		bool differs = memcmp(f.grads, t1.grads, sizeof(float) * (size_t)tiny.m->param_floats) != 0;
		cr_assert(differs, "n=%lld: bf16 gradients equal the float32 ones", (long long)n);
		/* the float32 code a bf16 build carries (hp[NNRT_HP_FP32], the
		 * binary's --precision fp32) is the float32 build's */
		step_fp32 = 1;
		result w32 = step(&wide, n, 1, tok);
		step_fp32 = 0;
		same_bits(&wide, &w32, &f, n, "bf16 build in float32 vs float32 build");
		result_free(&w32);
		result_free(&f);
		results_free(&t1, &w1, &r1);
	}
	jits_free(&tiny, &wide, &ref);
	th_jit_free(&f32);
}

Test(bf16, odd_shapes) { check_bf16(0, 0, true); }
Test(bf16, odd_shapes_one_chunk) { check_bf16(0, 1, true); }
Test(bf16, threshold_widths) { check_bf16(1, 3, true); }
/* gelu's scalar code in the reference (an element at a time) and its vector
 * code in the fast epilogue round differently in float32: within rounding */
Test(bf16, run_time_k_slices) { check_bf16(SEQ_NET, 0, false); }
/* the convolutions' sums run in other orders than the reference's */
Test(bf16, convolutions) { check_bf16(CONV_NET, 0, false); }
Test(bf16, convolutions_one_chunk) { check_bf16(CONV_NET, 1, false); }

/* NNC_CACHE and the sizes of cg_options: the options win, the variable
 * comes next, a malformed one is ignored. */
Test(gemm, cache_sizes_from_options_and_environment)
{
	cg_options o = {0};
	int64_t l1, l2;
	setenv("NNC_CACHE", "48K,2M", 1);
	cg_cache_sizes(&o, &l1, &l2);
	cr_assert(l1 == 48 * 1024 && l2 == 2 * 1024 * 1024, "NNC_CACHE=48K,2M gave %lld, %lld", (long long)l1,
		  (long long)l2);
	o.l1_bytes = 4096;
	cg_cache_sizes(&o, &l1, &l2);
	cr_assert(l1 == 4096 && l2 == 2 * 1024 * 1024);
	setenv("NNC_CACHE", "2M,48K", 1); /* L2 below L1: ignored, with a warning */
	o.l1_bytes = 0;
	int64_t h1, h2;
	unsetenv("NNC_CACHE");
	cg_cache_sizes(&o, &h1, &h2);
	setenv("NNC_CACHE", "2M,48K", 1);
	cg_cache_sizes(&o, &l1, &l2);
	cr_assert(l1 == h1 && l2 == h2, "a malformed NNC_CACHE changed the sizes");
	cr_assert(h1 >= 4096 && h2 >= h1);
}

/* ---- the owned gradient tail (cg.c) ----
 * A large dense weight gradient runs after the chunk loop, by blocks of
 * rows, each computed for every chunk and updated at once by the thread
 * that owns it: the same sums in the same order as the chunks and the
 * update after them, so the two schedules must give the same bits, for
 * every optimizer rule, full and partial batches, 2 and 3 chunks and any
 * thread count.  The first net's three weights are owned: 100 -> 48, the
 * last op of the chunk loop, and 48 -> 90 and 90 -> 64 from the middle of
 * it (their input gradients follow them, and later ops take memory that
 * would have been theirs if plan.c did not keep their operands alive);
 * 48 -> 90's rows end in a partial vector, its update at the padded end;
 * its chunks of 330 rows (2 chunks) write partials, those of 220 (3 chunks)
 * add their products to the gradient (at most CG_ADDTO_KMAX rows).  The
 * second's per-position layer (rows n x 12) is owned with its embedding's
 * gradient after it;
 * the third has a weight gradient too small to own (16 x 32). */
static const char *owned_nets[] = {
	"model o\n"
	"input x : f32[100]\n"
	"label y : class(10)\n"
	"h = x |> dense(48) |> relu |> dense(90) |> tanh |> dense(64) |> relu\n"
	"logits = h |> dense(10)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer %s\n"
	"train {\n  data: idx(\"/nonexistent/a\", \"/nonexistent/b\")\n  batch: 660\n}\n",

	"model q\n"
	"input x : token(13)[12]\n"
	"label y : class(13)[12]\n"
	"a = x |> embedding(13, 20) |> dense(256) |> gelu\n"
	"logits = a |> dense(13)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer %s\n"
	"train {\n  data: text(\"/nonexistent/corpus.txt\", context: 12)\n  batch: 24\n}\n",

	"model r\n"
	"input x : f32[16]\n"
	"label y : class(3)\n"
	"logits = x |> dense(32) |> relu |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer %s\n"
	"train {\n  data: idx(\"/nonexistent/a\", \"/nonexistent/b\")\n  batch: 40\n}\n",
};

/* the first net's two kinds of chunk (above) */
_Static_assert(660 / 2 > CG_ADDTO_KMAX && (660 + 2) / 3 + 16 <= CG_ADDTO_KMAX, "both ways of the owned tail");

static const char *owned_opts[] = {
	"sgd(lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01)",
	"adamw(lr: 0.01, weight_decay: 0.1, amsgrad: true)",
	"rmsprop(lr: 0.01, centered: true, momentum: 0.5, weight_decay: 0.001, decay_biases: true)",
	"sgd(lr: 0.05, clip_norm: 1.0)", /* the global norm: no tail */
};

typedef struct trained3 {
	float *p, *g, *o;
	double loss;
} trained3;

/* Three steps from one start with clip_value on in the last. */
static trained3 three_steps(const jitted *j, int64_t n, int threads, bool tokens)
{
	const nnrt_model *m = j->m;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 21);
	nnrt_set_threads(threads);
	for (int t = 1; t <= 3; t++) {
		if (tokens)
			th_fill_tokens(&s, n, 13, 30 + (uint64_t)t, true);
		else
			th_fill_batch(&s, n, 30 + (uint64_t)t);
		memset(s.a.hp, 0, sizeof s.a.hp);
		s.a.hp[NNRT_HP_LR] = 0.05f;
		s.a.hp[NNRT_HP_ADAM_C1] = (float)(1 / (1 - pow(0.9, t)));
		s.a.hp[NNRT_HP_ADAM_C2] = (float)(1 / (1 - pow(0.999, t)));
		s.a.hp[NNRT_HP_DAMP] = 1;
		s.a.hp[NNRT_HP_WD] = 0.01f;
		s.a.hp[NNRT_HP_CLIP_NORM] = 0.5f;
		s.a.hp[NNRT_HP_CLIP_VALUE] = t == 3 ? 0.002f : 0;
		th_run(&s, m->train_step, n);
	}
	trained3 r = {th_falloc(m->param_floats), th_falloc(m->param_floats), th_falloc(m->opt_floats), s.metrics[0]};
	memcpy(r.p, s.params, sizeof(float) * (size_t)m->param_floats);
	memcpy(r.g, s.grads, sizeof(float) * (size_t)m->param_floats);
	memcpy(r.o, s.opt, sizeof(float) * (size_t)m->opt_floats);
	th_state_free(&s);
	return r;
}

static void same_training(const nnrt_model *m, const trained3 *a, const trained3 *b, const char *what)
{
	for (int64_t e = 0; e < m->param_floats; e++) {
		cr_assert(!memcmp(&a->p[e], &b->p[e], sizeof(float)), "%s: parameter float %lld %.9g vs %.9g", what,
			  (long long)e, a->p[e], b->p[e]);
		cr_assert(!memcmp(&a->g[e], &b->g[e], sizeof(float)), "%s: gradient float %lld %.9g vs %.9g", what,
			  (long long)e, a->g[e], b->g[e]);
	}
	cr_assert(!memcmp(a->o, b->o, sizeof(float) * (size_t)m->opt_floats), "%s: optimizer state differs", what);
	cr_assert(a->loss == b->loss, "%s: loss %.17g vs %.17g", what, a->loss, b->loss);
}

static void trained3_free(trained3 *t)
{
	free(t->p);
	free(t->g);
	free(t->o);
}

/* Whether g's train step has the tail: its unoptimised module keeps the
 * tail's function for the other parameters' update. */
static bool has_tail(int net, const char *opt)
{
	jitted j = th_jit(th_build_graph(SRC_PATH, nnc_sprintf(owned_nets[net], opt), true), false, false);
	LLVMValueRef fn;
	bool yes = !LLVMFindFunction(j.ee, "update.rest", &fn);
	th_jit_free(&j);
	return yes;
}

static void check_owned(int net, int vacc, bool bf16)
{
	if (bf16 && !host_bf16())
		cr_skip_test("this CPU has no avx512bf16");
	th_bf16 = bf16;
	th_vacc = vacc;
	th_l1 = th_l2 = 0;
	for (size_t oi = 0; oi < NELEMS(owned_opts); oi++) {
		const char *text = nnc_sprintf(owned_nets[net], owned_opts[oi]);
		bool tail = has_tail(net, owned_opts[oi]);
		cr_assert_eq(tail, net != 2 && oi != 3, "net %d, %s: the tail is %s", net, owned_opts[oi],
			     tail ? "there" : "missing");
		for (int64_t chunks = 2; chunks <= 3; chunks++) {
			th_chunks = chunks;
			th_owned = true;
			jitted own = th_jit(th_build_graph(SRC_PATH, text, true), false, true);
			th_owned = false;
			jitted loop = th_jit(th_build_graph(SRC_PATH, text, true), false, true);
			th_owned = true;
			int64_t B = own.m->batch, ns[] = {B, B / 2 + 3, 5, 1};
			for (size_t k = 0; k < NELEMS(ns); k++) {
				bool tok = net == 1;
				trained3 ref = three_steps(&loop, ns[k], 1, tok);
				for (int th = 1; th <= 4; th++) {
					trained3 t = three_steps(&own, ns[k], th, tok);
					same_training(own.m, &t, &ref,
						      nnc_sprintf("net %d, %s, %lld chunks, n=%lld, %d threads: tail vs chunks", net,
								  owned_opts[oi], (long long)chunks, (long long)ns[k], th));
					trained3_free(&t);
				}
				trained3_free(&ref);
			}
			th_jit_free(&own);
			th_jit_free(&loop);
		}
	}
	th_chunks = 0;
	th_bf16 = false;
}

Test(owned, tail_trains_like_the_chunks_avx2_tiles, .timeout = 300) { check_owned(0, 6, false); }
Test(owned, tail_trains_like_the_chunks_avx512_tiles, .timeout = 300) { check_owned(0, 24, false); }
Test(owned, bf16_tail_trains_like_the_chunks, .timeout = 300) { check_owned(0, 24, true); }
Test(owned, per_position_tail_trains_like_the_chunks, .timeout = 300) { check_owned(1, 24, false); }
Test(owned, no_tail_for_a_small_weight, .timeout = 300) { check_owned(2, 0, false); }
