/*
 * test_blocks.c - blocks (user-defined sub-networks expanded by sema) and
 * shared layers, run for real through the JIT harness:
 *   - a net built from blocks (with if, repeat, defaults, named arguments
 *     and a block calling a block) is the same graph as the net written
 *     out by hand: same parameters in the same order, the same values
 *     after training steps, names differing only by their prefixes;
 *   - parameter names by call site, in the model descriptor and in the
 *     header's macros, two levels deep;
 *   - a shared layer: one parameter set, its gradient the sum over its uses
 *     (against central differences of the loss), a later use of another
 *     input size an error.
 * Messages of the errors are rows of test_diag.c.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "header.h"
#include "ir.h"
#include "nnrt.h"
#include "util.h"
#include "jit_harness.h"

#define SRC_PATH "/tmp/nnc_test_blocks.nn"

#define TAIL "loss softmax_cross_entropy(logits, y)\noptimizer sgd(lr: 0.05, momentum: 0.9)\n" \
	     "train { data: idx(\"i.gz\", \"l.gz\"), batch: 8 }\n"

/* Two residual blocks (the second with a projection, chosen by `if`), a
 * stage that repeats one, an activation passed as a word. */
static const char block_src[] =
	"model blk\n"
	"input x : f32[2, 6, 6]\n"
	"label y : class(3)\n"
	"block residual(x, filters, stride: 1, act: relu) {\n"
	"  h = x |> conv2d(filters, 3, stride: stride, pad: 1, bias: false) |> act\n"
	"  h = h |> conv2d(filters, 3, pad: 1)\n"
	"  s = x\n"
	"  if stride != 1 || filters != 4 { s = x |> conv2d(filters, 1, stride: stride, bias: false) }\n"
	"  return relu(h + s)\n"
	"}\n"
	"block stage(x, filters, n) {\n"
	"  h = x |> residual(filters, stride: 2, act: tanh)\n"
	"  repeat n - 1 { h = h |> residual(filters) }\n"
	"  return h\n"
	"}\n"
	"h = x |> conv2d(4, 3, pad: 1) |> relu |> residual(4)\n"
	"h2 = h |> stage(n: 2, filters: 5)\n"
	"logits = h2 |> global_avgpool |> dense(3)\n" TAIL;

/* The same network, written out. */
static const char hand_src[] =
	"model blk\n"
	"input x : f32[2, 6, 6]\n"
	"label y : class(3)\n"
	"a = x |> conv2d(4, 3, pad: 1) |> relu\n"
	"a1 = a |> conv2d(4, 3, pad: 1, bias: false) |> relu\n"
	"a2 = a1 |> conv2d(4, 3, pad: 1)\n"
	"b = relu(a2 + a)\n"
	"b1 = b |> conv2d(5, 3, stride: 2, pad: 1, bias: false) |> tanh\n"
	"b2 = b1 |> conv2d(5, 3, pad: 1)\n"
	"bs = b |> conv2d(5, 1, stride: 2, bias: false)\n"
	"c = relu(b2 + bs)\n"
	"c1 = c |> conv2d(5, 3, pad: 1, bias: false) |> relu\n"
	"c2 = c1 |> conv2d(5, 3, pad: 1)\n"
	"cs = c |> conv2d(5, 1, bias: false)\n"
	"d = relu(c2 + cs)\n"
	"logits = d |> global_avgpool |> dense(3)\n" TAIL;

static const char *const block_names[] = {
	"conv1.weight",
	"conv1.bias",
	"residual1.conv1.weight",
	"residual1.conv2.weight",
	"residual1.conv2.bias",
	"stage1.residual1.conv1.weight",
	"stage1.residual1.conv2.weight",
	"stage1.residual1.conv2.bias",
	"stage1.residual1.conv3.weight",
	"stage1.residual2.conv1.weight",
	"stage1.residual2.conv2.weight",
	"stage1.residual2.conv2.bias",
	"stage1.residual2.conv3.weight",
	"dense1.weight",
	"dense1.bias",
};

Test(blocks, parameters_are_named_by_call_site_two_levels_deep)
{
	ir_graph *g = th_build_graph(SRC_PATH, block_src, true);
	cr_assert_eq(g->nparams, (int)NELEMS(block_names));
	for (int i = 0; i < g->nparams; i++)
		cr_expect_str_eq(g->params[i].name, block_names[i], "parameter %d", i);
	/* the header's macros, upper-cased with '.' as '_' */
	nnc_buf h = {0};
	nnc_header(g, th_config(g), "blk", false, "blk.o", &h);
	cr_expect(strstr(h.data, "#define BLK_P_STAGE1_RESIDUAL2_CONV3_WEIGHT 12 ") != NULL, "%s", h.data);
	cr_expect(strstr(h.data, "#define BLK_P_RESIDUAL1_CONV2_BIAS 4 ") != NULL, "%s", h.data);
	nnc_buf_free(&h);
}

/* Runs `steps` training steps of a program on one fixed batch from the same
 * parameters; returns the parameters after them (caller frees). */
static float *train(const char *src, int steps, int64_t *floats, char ***names)
{
	ir_graph *g = th_build_graph(SRC_PATH, src, true);
	jitted j = th_jit(g, false, true);
	const nnrt_model *m = j.m;
	state s = th_state_new(m);
	th_fill_params(m, s.params, 31);
	th_fill_batch(&s, m->batch, 32);
	nnrt_set_threads(2);
	for (int k = 0; k < steps; k++) {
		s.a.hp[NNRT_HP_LR] = 0.05f;
		th_run(&s, m->train_step, m->batch);
	}
	nnrt_set_threads(1);
	*floats = m->param_floats;
	float *p = malloc(sizeof(float) * (size_t)m->param_floats);
	memcpy(p, s.params, sizeof(float) * (size_t)m->param_floats);
	*names = calloc((size_t)m->n_params + 1, sizeof(char *));
	for (int i = 0; i < m->n_params; i++)
		(*names)[i] = strdup(m->params[i].name);
	th_state_free(&s);
	th_jit_free(&j);
	return p;
}

Test(blocks, a_block_net_trains_exactly_like_the_net_written_out)
{
	int64_t nb, nh;
	char **names_b, **names_h;
	float *pb = train(block_src, 4, &nb, &names_b);
	float *ph = train(hand_src, 4, &nh, &names_h);
	cr_assert_eq(nb, nh);
	int np = 0;
	while (names_b[np])
		np++;
	cr_assert_eq(np, (int)NELEMS(block_names));
	/* the hand-written net numbers its convolutions conv1 ... conv9 */
	for (int i = 0; i < np; i++) {
		cr_expect_str_eq(names_b[i], block_names[i]);
		cr_expect(names_h[i] != NULL);
	}
	cr_expect_str_eq(names_h[2], "conv2.weight");
	cr_expect_str_eq(names_h[12], "conv9.weight");
	bool moved = false;
	for (int64_t i = 0; i < nb; i++) {
		cr_assert(!memcmp(&pb[i], &ph[i], sizeof(float)), "params[%lld]: %.9g from blocks, %.9g by hand",
			  (long long)i, pb[i], ph[i]);
		moved |= pb[i] != 0;
	}
	cr_expect(moved);
	for (int i = 0; i < np; i++)
		free(names_b[i]), free(names_h[i]);
	free(names_b);
	free(names_h);
	free(pb);
	free(ph);
}

/* Two branches apply one dense layer: x and 2x - 0.5 (a siamese pair). */
static const char shared_src[] =
	"model siam\n"
	"input x : f32[5]\n"
	"label y : class(3)\n"
	"layer enc = dense(4)\n"
	"a = x |> enc |> tanh\n"
	"b = (x * 2 - 0.5) |> enc |> tanh\n"
	"logits = (a * b + a) |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\n"
	"train { data: idx(\"i.gz\", \"l.gz\"), batch: 6 }\n";

/* The same with a shared convolution (its weight gradient from cg_conv's
 * kernels, batch-innermost). */
static const char shared_conv_src[] =
	"model siamc\n"
	"input x : f32[2, 5, 5]\n"
	"label y : class(3)\n"
	"layer enc = conv2d(3, 3, pad: 1)\n"
	"a = x |> enc |> tanh\n"
	"b = (x * 2 - 0.5) |> enc |> tanh\n"
	"logits = (a * b + a) |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\n"
	"train { data: idx(\"i.gz\", \"l.gz\"), batch: 6 }\n";

/* Fused and unfused, in one chunk and in the default chunks, at 1 and 3
 * threads: the shared weight's gradient against central differences of the
 * loss, and the same bits at every thread count.  The default keeps its
 * chunks: each chunk adds up its own shares of the shared gradient
 * (chunk_share) into its partial gradient. */
static void check_shared_gradient(const char *src, bool fuse, int64_t chunks)
{
	th_chunks = chunks;
	ir_graph *g = th_build_graph(SRC_PATH, src, fuse);
	th_chunks = 0;
	cr_assert_eq(g->chunks, chunks ? chunks : NNC_DEFAULT_CHUNKS, "a shared layer keeps the chunks");
	jitted j = th_jit(g, false, true);
	const nnrt_model *m = j.m;
	const char *how = nnc_sprintf("%s, %lld chunks", fuse ? "fused" : "unfused", (long long)g->chunks);
	cr_assert_eq(m->n_params, 4);
	cr_expect_str_eq(m->params[0].name, "enc.weight");
	cr_expect_str_eq(m->params[1].name, "enc.bias");
	cr_expect_str_eq(m->params[2].name, "dense1.weight");
	state s = th_state_new(m);
	int64_t n = 6;
	th_fill_params(m, s.params, 5);
	th_fill_batch(&s, n, 6);
	s.a.hp[NNRT_HP_LR] = 0;
	float *g1 = th_falloc(m->param_floats);
	for (int threads = 3; threads >= 1; threads -= 2) {
		nnrt_set_threads(threads);
		th_run(&s, m->train_step, n);
		if (threads == 3)
			memcpy(g1, s.grads, sizeof(float) * (size_t)m->param_floats);
		else
			cr_expect(!memcmp(g1, s.grads, sizeof(float) * (size_t)m->param_floats),
				  "%s: other gradients at 1 and 3 threads", how);
	}
	double worst = 0;
	for (int pi = 0; pi < 2; pi++) {
		const nnrt_param_info *info = &m->params[pi];
		for (int64_t e = 0; e < info->size; e++) {
			float *p = &s.params[info->offset + e], orig = *p;
			double gr = s.grads[info->offset + e], l[2], h[2];
			for (int k = 0; k < 2; k++) {
				*p = (float)(orig + (k ? -1e-2 : 1e-2));
				h[k] = *p;
				th_run(&s, m->eval_step, n);
				l[k] = s.metrics[0] / (double)n;
			}
			*p = orig;
			double fd = (l[0] - l[1]) / (h[0] - h[1]);
			double err = fabs(gr - fd) / (1e-3 + 1e-2 * fabs(fd));
			cr_expect(err < 1, "%s: %s[%lld]: gradient %.6g, central difference %.6g", how, info->name,
				  (long long)e, gr, fd);
			worst = fmax(worst, fabs(fd));
		}
	}
	cr_expect(worst > 1e-3, "the shared weight's gradient is not trivially zero");
	free(g1);
	th_state_free(&s);
	th_jit_free(&j);
}

Test(blocks, a_shared_layer_has_one_parameter_set_and_sums_its_gradients)
{
	for (int fuse = 0; fuse < 2; fuse++)
		for (int64_t chunks = 0; chunks < 2; chunks++)
			for (int conv = 0; conv < 2; conv++)
				check_shared_gradient(conv ? shared_conv_src : shared_src, fuse, chunks);
}

/* The gradient of a shared layer is not that of its first or last use alone:
 * the same net with two layers (one per branch), both holding the shared
 * layer's values, has gradients whose sum is the shared one. */
Test(blocks, the_shared_gradient_is_the_sum_of_the_unshared_ones)
{
	const char *two = "model siam\n"
			  "input x : f32[5]\n"
			  "label y : class(3)\n"
			  "a = x |> dense(4, name: \"enc\") |> tanh\n"
			  "b = (x * 2 - 0.5) |> dense(4, name: \"enc2\") |> tanh\n"
			  "logits = (a * b + a) |> dense(3)\n"
			  "loss softmax_cross_entropy(logits, y)\n"
			  "optimizer sgd(lr: 0.1)\n"
			  "train { data: idx(\"i.gz\", \"l.gz\"), batch: 6 }\n";
	jitted js = th_jit(th_build_graph(SRC_PATH, shared_src, true), false, true);
	jitted jt = th_jit(th_build_graph(SRC_PATH, two, true), false, true);
	state ss = th_state_new(js.m), st = th_state_new(jt.m);
	th_fill_params(js.m, ss.params, 5);
	th_fill_batch(&ss, 6, 6);
	th_fill_batch(&st, 6, 6);
	const nnrt_param_info *sp = js.m->params, *tp = jt.m->params;
	/* enc, enc2 <- the shared enc; dense1 <- dense1 */
	for (int k = 0; k < 2; k++) {
		memcpy(&st.params[tp[k].offset], &ss.params[sp[k].offset], sizeof(float) * (size_t)sp[k].size);
		memcpy(&st.params[tp[k + 2].offset], &ss.params[sp[k].offset], sizeof(float) * (size_t)sp[k].size);
		memcpy(&st.params[tp[k + 4].offset], &ss.params[sp[k + 2].offset], sizeof(float) * (size_t)sp[k + 2].size);
	}
	ss.a.hp[NNRT_HP_LR] = st.a.hp[NNRT_HP_LR] = 0;
	th_run(&ss, js.m->train_step, 6);
	th_run(&st, jt.m->train_step, 6);
	for (int k = 0; k < 2; k++)
		for (int64_t e = 0; e < sp[k].size; e++) {
			double sum = (double)st.grads[tp[k].offset + e] + st.grads[tp[k + 2].offset + e];
			double got = ss.grads[sp[k].offset + e];
			cr_expect(fabs(got - sum) <= 1e-5 * (1 + fabs(sum)), "%s[%lld]: shared %.9g, sum of the two %.9g",
				  sp[k].name, (long long)e, got, sum);
		}
	th_state_free(&ss);
	th_state_free(&st);
	th_jit_free(&js);
	th_jit_free(&jt);
}

/* A shared weight's default initialiser: He only if every use is followed by
 * a rectifier (the last use alone decided before). */
Test(blocks, a_shared_weight_gets_he_only_if_every_use_asks_for_it)
{
	const char *fmt = "model siam\ninput x : f32[5]\nlabel y : class(3)\nlayer enc = dense(4)\n"
			  "a = x |> enc |> %s\nb = (x * 2) |> enc |> relu\nlogits = (a + b) |> dense(3)\n"
			  "loss softmax_cross_entropy(logits, y)\noptimizer sgd(lr: 0.1)\n"
			  "train { data: idx(\"i.gz\", \"l.gz\"), batch: 6 }\n";
	ir_graph *g = th_build_graph(SRC_PATH, nnc_sprintf(fmt, "tanh"), true);
	cr_expect_str_eq(g->params[0].name, "enc.weight");
	cr_expect_eq(g->params[0].init, NNRT_INIT_GLOROT_UNIFORM);
	g = th_build_graph(SRC_PATH, nnc_sprintf(fmt, "relu"), true);
	cr_expect_eq(g->params[0].init, NNRT_INIT_HE_UNIFORM);
}

/* ---- through the nnc command and the training binary ---- */

#include "sh_harness.h"

/* A block and a shared layer in a program the binary trains: the names
 * --print-params shows, the shared weight once in the checkpoint, and a
 * reload giving the same evaluation. */
Test(blocks, the_binary_prints_and_checkpoints_call_site_and_shared_names, .timeout = 300)
{
	char dir[64], *out;
	sh_mktemp(dir, sizeof dir, "blocks");
	char *nn = nnc_sprintf("%s/pair.nn", dir);
	FILE *f = fopen(nn, "w");
	cr_assert_not_null(f);
	fputs("model pair\n"
	      "input x : f32[2]\n"
	      "label y : class(2)\n"
	      "block mlp(x, units, act: relu) {\n"
	      "  return x |> dense(units) |> act\n"
	      "}\n"
	      "layer enc = dense(4)\n"
	      "a = x |> enc |> tanh\n"
	      "b = (x * -1) |> enc |> tanh\n"
	      "logits = (a + b) |> mlp(6, act: tanh) |> mlp(5, name: \"head\") |> dense(2)\n"
	      "loss softmax_cross_entropy(logits, y)\n"
	      "optimizer adam(lr: 0.01)\n"
	      "train { data: moons(count: 200), test: moons(count: 100, seed: 2), batch: 16, epochs: 2 }\n",
	      f);
	fclose(f);
	cr_assert_eq(sh_run(&out, "'%s' '%s' -o '%s/pair' && '%s/pair' --quiet --save '%s/p.ckpt' && "
			     "'%s/pair' --load '%s/p.ckpt' --print-params --quiet",
			     NNC_EXE, nn, dir, dir, dir, dir, dir),
		     0, "%s", out);
	const char *names[] = {"enc.weight [2,4]", "enc.bias [4]", "mlp1.dense1.weight [4,6]", "mlp1.dense1.bias [6]",
			       "head.dense1.weight [6,5]", "head.dense1.bias [5]", "dense1.weight [5,2]", "dense1.bias [2]"};
	for (size_t i = 0; i < NELEMS(names); i++)
		cr_expect(sh_has_line(out, nnc_sprintf("  %s", names[i])), "no line '  %s' in\n%s", names[i], out);
	free(out);
	/* the shared weight is stored once */
	cr_assert_eq(sh_run(&out, "grep -ao 'enc\\.weight' '%s/p.ckpt' | wc -l", dir), 0);
	cr_expect_eq(atoi(out), 1, "enc.weight is in the checkpoint %s times", out);
	free(out);
	sh_rmtree(dir);
}

/* The C-name clash check covers the names made by calls: a block call's
 * layer r1.dense1 and a top-level layer r1_dense1 both become R1_DENSE1;
 * the call's layer is shown at the call. */
Test(blocks, call_site_names_are_in_the_c_name_clash_check)
{
	char dir[64], *out;
	sh_mktemp(dir, sizeof dir, "blocks");
	char *nn = nnc_sprintf("%s/clash.nn", dir);
	FILE *f = fopen(nn, "w");
	cr_assert_not_null(f);
	fputs("model clash\ninput x : f32[2]\nlabel y : class(2)\n"
	      "block r(x, units) {\n  return x |> dense(units) |> relu\n}\n"
	      "h = x |> r(3)\nlogits = h |> dense(2, name: \"r1_dense1\")\n"
	      "loss softmax_cross_entropy(logits, y)\noptimizer sgd\ntrain { data: moons() }\n",
	      f);
	fclose(f);
	cr_expect_eq(sh_run(&out, "cd '%s' && '%s' clash.nn -o /dev/null", dir, NNC_EXE), 1, "%s", out);
	cr_expect(sh_has_line(out, "clash.nn:8:10: error: layer name 'r1_dense1' clashes with 'r1.dense1': both become "
				   "R1_DENSE1 in C names such as CLASH_P_R1_DENSE1_WEIGHT"),
		  "%s", out);
	cr_expect(sh_has_line(out, "clash.nn:7:10: note: layer 'r1.dense1' is here"), "%s", out);
	free(out);
	sh_rmtree(dir);
}

/* ---- what the body can do, as the parameters it makes ---- */

#define HEAD1 "model t\ninput x : f32[2, 6, 6]\nlabel y : class(2)\n"
#define TAIL1 "logits = h |> global_avgpool |> dense(2)\nloss softmax_cross_entropy(logits, y)\n" \
	      "optimizer sgd\ntrain { data: idx(\"i.gz\", \"l.gz\") }\n"

typedef struct param_case {
	const char *name;
	const char *src;
	const char *params; /* "name [dims]" of every parameter, one a line */
} param_case;

static const param_case param_cases[] = {
	{"a list and a string as arguments, a default from an earlier parameter",
	 HEAD1 "block c(x, f, k: [3, 1], g: f * 2, nm: \"w\") {\n"
	 "  h = x |> conv2d(f, k, pad: [1, 0], name: nm)\n  return h |> conv2d(g, 1, bias: false)\n}\n"
	 "h = x |> c(3)\n" TAIL1,
	 "c1.w.weight [3,2,3,1]\nc1.w.bias [3]\nc1.conv2.weight [6,3,1,1]\ndense1.weight [6,2]\ndense1.bias [2]\n"},
	{"else if, repeat 0, a number bound in the body and rebound",
	 HEAD1 "block c(x, n) {\n  k = 3\n  if n == 1 { k = 1 } else if n == 2 { k = 5 } else { k = 7 }\n"
	 "  repeat n - 1 { x = x |> relu }\n  return x |> conv2d(4, k, pad: (k - 1) / 2)\n}\n"
	 "h = x |> c(2) |> c(1, name: \"one\")\n" TAIL1,
	 "c1.conv1.weight [4,2,5,5]\nc1.conv1.bias [4]\none.conv1.weight [4,4,1,1]\none.conv1.bias [4]\n"
	 "dense1.weight [4,2]\ndense1.bias [2]\n"},
	{"a shared layer inside a block: one per call; a shared conv2d on images of two sizes",
	 HEAD1 "block two(x) {\n  layer c = conv2d(3, 3, pad: 1)\n  a = x |> c |> relu |> maxpool(2)\n"
	 "  b = x |> maxpool(2) |> c\n  return a + b\n}\n"
	 "h = x |> conv2d(2, 1) |> two |> two\n" TAIL1,
	 "conv1.weight [2,2,1,1]\nconv1.bias [2]\ntwo1.c.weight [3,2,3,3]\ntwo1.c.bias [3]\n"
	 "two2.c.weight [3,3,3,3]\ntwo2.c.bias [3]\ndense1.weight [3,2]\ndense1.bias [2]\n"},
	{"top-level convolutions keep their numbers around block calls",
	 HEAD1 "block conv_block(x, f) {\n  return x |> conv2d(f, 3, pad: 1) |> relu\n}\n"
	 "h = x |> conv2d(4, 1) |> conv_block(4) |> conv2d(4, 1) |> conv_block(3)\n" TAIL1,
	 "conv1.weight [4,2,1,1]\nconv1.bias [4]\nconv_block1.conv1.weight [4,4,3,3]\nconv_block1.conv1.bias [4]\n"
	 "conv2.weight [4,4,1,1]\nconv2.bias [4]\nconv_block2.conv1.weight [3,4,3,3]\nconv_block2.conv1.bias [3]\n"
	 "dense1.weight [3,2]\ndense1.bias [2]\n"},
};

Test(blocks, bodies_make_the_parameters_their_arguments_ask_for)
{
	for (size_t i = 0; i < NELEMS(param_cases); i++) {
		const param_case *c = &param_cases[i];
		ir_graph *g = th_build_graph(SRC_PATH, c->src, true);
		nnc_buf b = {0};
		for (int p = 0; p < g->nparams; p++) {
			nnc_buf_printf(&b, "%s [", g->params[p].name);
			for (int d = 0; d < g->params[p].rank; d++)
				nnc_buf_printf(&b, "%s%lld", d ? "," : "", (long long)g->params[p].dims[d]);
			nnc_buf_puts(&b, "]\n");
		}
		cr_expect_str_eq(b.data, c->params, "[%s]", c->name);
		nnc_buf_free(&b);
	}
}

/* The same network from blocks and written out, trained by the binary from
 * the file's seed: the default initialisers (He after relu, Glorot after
 * tanh, chosen through the block's act argument) and every value after
 * training agree; only the names differ. */
Test(blocks, the_binary_trains_a_block_net_like_the_net_written_out, .timeout = 300)
{
	char dir[64], *a, *b;
	sh_mktemp(dir, sizeof dir, "blocks");
	const char *tail = "loss softmax_cross_entropy(logits, y)\noptimizer sgd(lr: 0.1, momentum: 0.9)\n"
			   "train { data: moons(count: 300), batch: 16, epochs: 3, seed: 5 }\n";
	const char *progs[2] = {
		nnc_sprintf("model m\ninput x : f32[2]\nlabel y : class(2)\n"
			    "block layer2(x, units, act: relu) {\n  h = x |> dense(units) |> act\n"
			    "  return h |> dense(units) |> act\n}\n"
			    "logits = x |> layer2(8) |> layer2(6, act: tanh) |> dense(2)\n%s", tail),
		nnc_sprintf("model m\ninput x : f32[2]\nlabel y : class(2)\n"
			    "a = x |> dense(8) |> relu |> dense(8) |> relu\n"
			    "logits = a |> dense(6) |> tanh |> dense(6) |> tanh |> dense(2)\n%s", tail),
	};
	char *outs[2];
	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(nnc_sprintf("%s/p%d.nn", dir, i), "w");
		cr_assert_not_null(f);
		fputs(progs[i], f);
		fclose(f);
		/* the parameters' values only: the lines without a name */
		cr_assert_eq(sh_run(&outs[i], "cd '%s' && '%s' p%d.nn -o p%d && ./p%d --quiet --print-params | grep -v '\\['",
				    dir, NNC_EXE, i, i, i),
			     0, "%s", outs[i]);
	}
	a = outs[0], b = outs[1];
	cr_expect(strlen(a) > 100, "%s", a);
	cr_expect_str_eq(a, b);
	free(a), free(b);
	sh_rmtree(dir);
}
