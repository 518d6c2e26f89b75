/*
 * test_conv.c - convolution and pooling, compiled by nnc and run in this
 * process.
 *
 * The harness follows tests/test_codegen.c: a program goes through the
 * driver's pipeline (parse, sema, autodiff, inference tail, fuse or not,
 * plan, lower), is verified, optimised for the host and JIT-compiled with
 * MCJIT; its `<model>_model` descriptor is run through nnrt_run() on arrays
 * allocated here (-rdynamic lets MCJIT find nnrt_barrier in this executable).
 * Each network is built the three ways the driver builds it: fused (nnc),
 * unfused (nnc --no-fuse) and naive (nnc -O0: reference loop nests, no
 * fusion, no LLVM optimisation).
 *
 * Every network is written twice: as .nn text, and as a table of layers that
 * a plain double-precision C reference walks forward (direct 7-loop
 * convolution with padding and stride, max/avg/global pooling, activations,
 * dense, softmax cross-entropy) and backward.  The reference reads the
 * parameters from the same array as the program, by name.
 *
 * Per network:
 *   forward     infer (softmax) and eval_step (loss sum, correct count)
 *               against the reference, every variant, n = batch and
 *               n < batch, 1 and 2 threads;
 *   gradients   train_step with hp[NNRT_HP_LR] = 0 against the reference's
 *               backward pass, every entry, every variant; and (fused,
 *               unfused) against central differences of eval_step's mean
 *               loss, every parameter entry (a random sample of each tensor
 *               for LeNet);
 *   sensitivity the same difference check must reject the reference's
 *               backward pass with one planted bug: a padded tap reading the
 *               edge instead of zero, stride 1 in place of the real stride, an
 *               activation derivative left out, an input edge column lost -
 *               so the tolerance is shown to be tight enough;
 *   fusion      the fused program folds activations into convolutions and
 *               their derivatives into conv2d_bwd_x / pooling gradients, and
 *               agrees with the unfused one within 1e-5 (outputs, loss, every
 *               gradient), with the naive one within 1e-4;
 *   threads     fused: gradients, loss and outputs bit-identical for 1, 2,
 *               3, 4 and 8 threads (4 and 8: more threads than chunks).
 * The networks are chosen so that conv -> conv (conv2d_bwd_x with act'
 * fused), pool -> conv, overlapping and partial pooling windows, strides,
 * asymmetric padding, `pad: same`, a convolution without bias, register
 * tiles with a remainder and batches that are not multiples of 16 all occur.
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

#include "backend.h"
#include "diag.h"
#include "ir.h"
#include "nnrt.h"
#include "util.h"
#include "act_ref.h"
#include "jit_harness.h"

#define SRC_PATH "/tmp/nnc_test_conv.nn"

/* ---- compiling and JIT-ing a program string -------------------------- */

/* The three ways nnc builds a program (compiler/main.c). */
typedef enum variant {
	V_FUSED,   /* nnc: fusion, fast kernels, -O2 */
	V_UNFUSED, /* nnc --no-fuse: fast kernels without epilogue fusion, -O2 */
	V_NAIVE,   /* nnc -O0: no fusion, reference loop nests (cg_naive.c), no LLVM optimisation */
	NUM_VARIANTS,
} variant;

static const char *const variant_names[] = {"fused", "unfused", "naive"};

/* Builds `src` as variant v, lowers, verifies, optimises for the host CPU
 * (nnc's -O2 pipeline, or nothing for -O0) and JIT-compiles it. */
static jitted jit_program(const char *src, variant v)
{
	return th_jit(th_build_graph(SRC_PATH, src, v == V_FUSED), v == V_NAIVE, v != V_NAIVE);
}

#define jit_free th_jit_free
#define state_new th_state_new
#define state_free th_state_free

/* ---- running a step ------------------------------------------------- */

/* Runs one body on the first n samples with learning rate 0.  The workspace
 * is NaN first, so a kernel reading a value nobody wrote (a padding lane of a
 * batch-innermost tensor, say) poisons the result; outputs past n samples
 * hold a canary that must survive. */
static void run(state *s, nnrt_body_fn body, int64_t n)
{
	memset(s->a.hp, 0, sizeof s->a.hp);
	th_run(s, body, n);
}



/* ---- the networks, as layer tables ----------------------------------- */

typedef enum lkind {
	L_END = 0,
	L_CONV,    /* name, out = filters, kernel, stride, padding */
	L_MAXPOOL, /* kernel = window, stride */
	L_AVGPOOL,
	L_GAP,     /* global average pool: [C, H, W] -> [C] */
	L_RELU,
	L_TANH,
	L_SIGMOID,
	L_DENSE,   /* name, out = units; reads any shape flattened */
	L_ACT,     /* name = an activation of act_ref.h, opt its option */
} lkind;

typedef struct layer {
	lkind k;
	const char *name; /* L_CONV, L_DENSE: parameter prefix */
	int64_t out;
	int64_t kh, kw, sh, sw, ph, pw;
	double opt; /* L_ACT */
} layer;

#define CONV(nm, f, kh, kw, sh, sw, ph, pw) {L_CONV, nm, f, kh, kw, sh, sw, ph, pw, 0}
#define POOL(kind, k, s) {kind, NULL, 0, k, k, s, s, 0, 0, 0}
#define LAYER(kind) {kind, NULL, 0, 0, 0, 0, 0, 0, 0, 0}
#define DENSE(nm, u) {L_DENSE, nm, u, 0, 0, 0, 0, 0, 0, 0}
#define ACTL(nm, o) {L_ACT, nm, 0, 0, 0, 0, 0, 0, 0, o}

#define MAXL 16

typedef struct net {
	const char *name;
	const char *src;
	layer L[MAXL];
	int64_t ns[2];     /* samples per step: the batch, and fewer */
	int fd_per_tensor; /* 0: differences for every entry; k: k random entries per tensor */
} net;

#define TRAIN_BLOCK(batch) \
	"loss softmax_cross_entropy(logits, y)\n" \
	"optimizer sgd(lr: 1)\n" \
	"train {\n  data: idx(\"/nonexistent/a\", \"/nonexistent/b\")\n  batch: " #batch "\n}\n"

#define LENET_SRC(batch) \
	"model lenet\n" \
	"input x : f32[1, 28, 28]\n" \
	"label y : class(10)\n" \
	"c1 = x |> conv2d(6, 5, pad: 2) |> tanh |> avgpool(2)\n" /* [6, 14, 14] */ \
	"c2 = c1 |> conv2d(16, 5) |> tanh |> avgpool(2)\n"       /* [16, 5, 5] */ \
	"f = c2 |> flatten |> dense(120) |> tanh |> dense(84) |> tanh\n" \
	"logits = f |> dense(10)\n" TRAIN_BLOCK(batch)
#define LENET_LAYERS \
	{CONV("conv1", 6, 5, 5, 1, 1, 2, 2), LAYER(L_TANH), POOL(L_AVGPOOL, 2, 2), CONV("conv2", 16, 5, 5, 1, 1, 0, 0), \
	 LAYER(L_TANH), POOL(L_AVGPOOL, 2, 2), DENSE("dense1", 120), LAYER(L_TANH), DENSE("dense2", 84), \
	 LAYER(L_TANH), DENSE("dense3", 10)}

static const net nets[] = {
	/* stride [2, 1] with padding [1, 0]: rows 0 and OH-1 read padding, the
	 * last conv column is dropped by maxpool(2) (5 -> 2); a dense layer reads
	 * the batch-innermost pool output (dense_bwd_x_cn). batch 5: one vector */
	{"strided",
	 "model strided\n"
	 "input x : f32[2, 7, 6]\n"
	 "label y : class(4)\n"
	 "h = x |> conv2d(3, [3, 2], stride: [2, 1], pad: [1, 0]) |> tanh |> maxpool(2)\n" /* [3, 4, 5] -> [3, 2, 2] */
	 "logits = h |> flatten |> dense(6) |> tanh |> dense(4)\n" TRAIN_BLOCK(5),
	 {CONV("conv1", 3, 3, 2, 2, 1, 1, 0), LAYER(L_TANH), POOL(L_MAXPOOL, 2, 2), DENSE("dense1", 6), LAYER(L_TANH),
	  DENSE("dense2", 4)},
	 {5, 3}, 0},
	/* pad: same, relu, overlapping avgpool(2, 1) feeding a second conv (pool ->
	 * conv: conv2d_bwd_x into avgpool_bwd with relu' fused after the
	 * accumulation), global_avgpool with relu' fused. batch 20: two vectors,
	 * n = 17 leaves one sample in the second */
	{"samepool",
	 "model samepool\n"
	 "input x : f32[3, 6, 5]\n"
	 "label y : class(3)\n"
	 "h = x |> conv2d(4, 3, pad: same) |> relu |> avgpool(2, 1)\n"           /* [4, 6, 5] -> [4, 5, 4] */
	 "g = h |> conv2d(5, [3, 1], pad: same) |> relu |> global_avgpool\n"     /* [5, 5, 4] -> [5] */
	 "logits = g |> dense(3)\n" TRAIN_BLOCK(20),
	 {CONV("conv1", 4, 3, 3, 1, 1, 1, 1), LAYER(L_RELU), POOL(L_AVGPOOL, 2, 1), CONV("conv2", 5, 3, 1, 1, 1, 1, 0),
	  LAYER(L_RELU), LAYER(L_GAP), DENSE("dense1", 3)},
	 {20, 17}, 0},
	/* conv -> sigmoid -> conv (conv2d_bwd_x with sigmoid' fused) with stride
	 * 2, padding 1 and no bias; avgpool(3, 2) leaves the last column out.
	 * 9 filters, batch 37 (bpad 48, three vectors per tile): register tiles
	 * of 8 filters or channels and a remainder of 1 */
	{"sigstack",
	 "model sigstack\n"
	 "input x : f32[1, 11, 9]\n"
	 "label y : class(3)\n"
	 "a = x |> conv2d(9, 3) |> sigmoid\n"                                          /* [9, 9, 7] */
	 "b = a |> conv2d(4, [2, 3], stride: 2, pad: 1, bias: false) |> sigmoid\n"     /* [4, 5, 4] */
	 "logits = b |> avgpool(3, 2) |> flatten |> dense(3)\n" TRAIN_BLOCK(37),     /* [4, 2, 1] */
	 {CONV("conv1", 9, 3, 3, 1, 1, 0, 0), LAYER(L_SIGMOID), CONV("conv2", 4, 2, 3, 2, 2, 1, 1), LAYER(L_SIGMOID),
	  POOL(L_AVGPOOL, 3, 2), DENSE("dense1", 3)},
	 {37, 19}, 0},
	/* examples/lenet.nn with a batch of 8 (one vector of samples, so the
	 * register tiles are 16 filters tall: this crashed nnc_lower while the
	 * accumulator arrays of cg_conv.c held only 8 rows) */
	{"lenet", LENET_SRC(8), LENET_LAYERS, {8, 5}, 6},
	/* the same with a batch of 33 (three vectors: register tiles of 8
	 * filters) */
	{"lenet33", LENET_SRC(33), LENET_LAYERS, {33, 20}, 6},
	/* dense layers only, sample-major input: 300 inputs cut the reduction
	 * of the first product in two slices (cg_kernels.c gemm_task); 53
	 * outputs leave a 5-lane column block; 21 samples in chunks of 11 leave
	 * rows outside the 8-row tiles */
	{"widedense",
	 "model widedense\n"
	 "input x : f32[3, 10, 10]\n"
	 "label y : class(5)\n"
	 "logits = x |> flatten |> dense(53) |> relu |> dense(5)\n" TRAIN_BLOCK(21),
	 {DENSE("dense1", 53), LAYER(L_RELU), DENSE("dense2", 5)},
	 {21, 13}, 8},
	/* the activations of acts.def whose derivative reads y, after convs:
	 * folded into the conv epilogues, their derivatives into conv2d_bwd_x,
	 * maxpool_bwd and global_avgpool_bwd (kinked ones on small tensors, so
	 * that few differences straddle a kink) */
	{"acty",
	 "model acty\n"
	 "input x : f32[2, 8, 7]\n"
	 "label y : class(3)\n"
	 "a = x |> conv2d(4, 3, pad: 1) |> softplus\n"                                /* [4, 8, 7] */
	 "b = a |> conv2d(5, 3, stride: 2) |> elu |> maxpool(2)\n"                    /* [5, 3, 3] -> [5, 1, 1] */
	 "c = b |> conv2d(3, 1) |> leaky_relu(alpha: 0.2) |> global_avgpool\n"        /* [3, 1, 1] -> [3] */
	 "logits = c |> dense(3)\n" TRAIN_BLOCK(13),
	 {CONV("conv1", 4, 3, 3, 1, 1, 1, 1), ACTL("softplus", 0), CONV("conv2", 5, 3, 3, 2, 2, 0, 0), ACTL("elu", 1),
	  POOL(L_MAXPOOL, 2, 2), CONV("conv3", 3, 1, 1, 1, 1, 0, 0), ACTL("leaky_relu", 0.2), LAYER(L_GAP),
	  DENSE("dense1", 3)},
	 {13, 6}, 0},
	/* those whose derivative reads x: the conv epilogue writes the
	 * activation into the activation's tensor and keeps its own output for
	 * the derivatives, which go into conv2d_bwd_x and global_avgpool_bwd */
	{"actx",
	 "model actx\n"
	 "input x : f32[3, 7, 6]\n"
	 "label y : class(3)\n"
	 "a = x |> conv2d(4, 3, pad: same) |> silu\n"                                /* [4, 7, 6] */
	 "b = a |> conv2d(5, [3, 2], stride: [2, 1]) |> gelu\n"                      /* [5, 3, 5] */
	 "c = b |> conv2d(3, 1) |> gelu(approximate: false) |> global_avgpool\n"     /* [3, 3, 5] -> [3] */
	 "logits = c |> dense(3)\n" TRAIN_BLOCK(18),
	 {CONV("conv1", 4, 3, 3, 1, 1, 1, 1), ACTL("silu", 0), CONV("conv2", 5, 3, 2, 2, 1, 0, 0), ACTL("gelu", 1),
	  CONV("conv3", 3, 1, 1, 1, 1, 0, 0), ACTL("gelu", 0), LAYER(L_GAP), DENSE("dense1", 3)},
	 {18, 7}, 0},
	/* the shapes of the ResNet of issue #12, small: a 3x3 pad-1 conv on a
	 * 7x7 image, a stride-2 3x3 pad-1 conv, a stride-2 1x1 conv, channel
	 * counts that are not multiples of 16 (17, 20: tiles with a remainder
	 * whatever the register budget; the 1x1 weight gradient's channel groups
	 * of 6: 6 + 6 + 5), global average pooling.  n = 29 and 13
	 * leave the last vector of samples 13 lanes: the second 8-lane half of
	 * the AVX2 dw tile partly masked */
	{"resshapes",
	 "model resshapes\n"
	 "input x : f32[3, 7, 7]\n"
	 "label y : class(3)\n"
	 "a = x |> conv2d(5, 3, pad: 1) |> tanh\n"                                      /* [5, 7, 7] */
	 "b = a |> conv2d(17, 3, stride: 2, pad: 1, bias: false) |> tanh\n"             /* [17, 4, 4] */
	 "c = b |> conv2d(20, 1, stride: 2, bias: false) |> sigmoid |> global_avgpool\n" /* [20, 2, 2] -> [20] */
	 "logits = c |> dense(3)\n" TRAIN_BLOCK(29),
	 {CONV("conv1", 5, 3, 3, 1, 1, 1, 1), LAYER(L_TANH), CONV("conv2", 17, 3, 3, 2, 2, 1, 1), LAYER(L_TANH),
	  CONV("conv3", 20, 1, 1, 2, 2, 0, 0), LAYER(L_SIGMOID), LAYER(L_GAP), DENSE("dense1", 3)},
	 {29, 13}, 12},
	/* three convolutions of one shape (4 -> 4 channels, 3x3 pad 1 on 6x6,
	 * tanh), as in a ResNet's block, then two dense layers of one shape:
	 * the second and third convolution, their backward passes and the two
	 * 5 -> 5 products share their kernels (cg.c, kernel sharing), each
	 * called with its own weights and tensors */
	{"twins",
	 "model twins\n"
	 "input x : f32[4, 6, 6]\n"
	 "label y : class(5)\n"
	 "a = x |> conv2d(4, 3, pad: 1) |> tanh\n"                       /* [4, 6, 6] */
	 "b = a |> conv2d(4, 3, pad: 1) |> tanh\n"                       /* [4, 6, 6] */
	 "c = b |> conv2d(4, 3, pad: 1) |> tanh |> global_avgpool\n"     /* [4] */
	 "d = c |> dense(5) |> tanh |> dense(5) |> tanh\n"
	 "logits = d |> dense(5)\n" TRAIN_BLOCK(21),
	 {CONV("conv1", 4, 3, 3, 1, 1, 1, 1), LAYER(L_TANH), CONV("conv2", 4, 3, 3, 1, 1, 1, 1), LAYER(L_TANH),
	  CONV("conv3", 4, 3, 3, 1, 1, 1, 1), LAYER(L_TANH), LAYER(L_GAP), DENSE("dense1", 5), LAYER(L_TANH),
	  DENSE("dense2", 5), LAYER(L_TANH), DENSE("dense3", 5)},
	 {21, 6}, 0},
};

enum { NET_STRIDED, NET_SAMEPOOL, NET_SIGSTACK, NET_LENET, NET_LENET33, NET_WIDEDENSE, NET_ACTY, NET_ACTX,
       NET_RESSHAPES, NET_TWINS };

/* ---- the reference ---------------------------------------------------- */

/* Bugs the reference's backward pass can be told to have, to show that the
 * gradient check notices them. */
typedef enum fault {
	FAULT_NONE = 0,
	FAULT_BORDER, /* conv dw: a tap in the padding reads the nearest edge value, not 0 */
	FAULT_STRIDE, /* conv dw and dx: rows mapped with stride 1 instead of the real one */
	FAULT_DACT,   /* the derivative of an activation right after a conv is left out */
	FAULT_EDGE,   /* conv dx: the last input column gets nothing */
	NUM_FAULTS,
} fault;

static const char *const fault_names[] = {"none", "padding read as the edge value in conv dw",
					  "stride 1 in conv backward", "act' after a conv left out",
					  "last column lost in conv dx"};

/* A layer table bound to a compiled model: shapes and parameters. */
typedef struct refnet {
	const nnrt_model *m;
	const layer *L;
	int nl;
	/* value v: the input (v = 0) or the output of layer v-1, [c, h, w] */
	int64_t c[MAXL + 1], h[MAXL + 1], w[MAXL + 1], size[MAXL + 1], maxsize;
	const nnrt_param_info *pw[MAXL], *pb[MAXL];
	bool has_kinks; /* relu or maxpool: differences may straddle a kink */
} refnet;

static const nnrt_param_info *find_param(const nnrt_model *m, const char *prefix, const char *what)
{
	char name[64];
	snprintf(name, sizeof name, "%s.%s", prefix, what);
	for (int i = 0; i < m->n_params; i++)
		if (!strcmp(m->params[i].name, name))
			return &m->params[i];
	return NULL;
}

/* Shapes from the layer table; every parameter of the model must be one the
 * table names, with the shape it implies. */
static refnet ref_bind(const net *nt, const nnrt_model *m)
{
	refnet r = {.m = m, .L = nt->L};
	cr_assert_eq(m->input_rank, 3, "%s: input rank %d", nt->name, m->input_rank);
	r.c[0] = m->input_shape[0], r.h[0] = m->input_shape[1], r.w[0] = m->input_shape[2];
	r.size[0] = r.maxsize = m->input_size;
	int used = 0;
	for (int l = 0; nt->L[l].k != L_END; l++) {
		const layer *L = &nt->L[l];
		int64_t C = r.c[l], H = r.h[l], W = r.w[l];
		r.nl = l + 1;
		switch (L->k) {
		case L_CONV: {
			r.c[l + 1] = L->out;
			r.h[l + 1] = (H + 2 * L->ph - L->kh) / L->sh + 1;
			r.w[l + 1] = (W + 2 * L->pw - L->kw) / L->sw + 1;
			const nnrt_param_info *w = r.pw[l] = find_param(m, L->name, "weight");
			cr_assert(w && w->rank == 4 && w->shape[0] == L->out && w->shape[1] == C && w->shape[2] == L->kh &&
					  w->shape[3] == L->kw,
				  "%s: no %s.weight [%lld, %lld, %lld, %lld]", nt->name, L->name, (long long)L->out,
				  (long long)C, (long long)L->kh, (long long)L->kw);
			r.pb[l] = find_param(m, L->name, "bias");
			cr_assert(!r.pb[l] || (r.pb[l]->rank == 1 && r.pb[l]->shape[0] == L->out));
			used += 1 + (r.pb[l] != NULL);
			break;
		}
		case L_MAXPOOL:
		case L_AVGPOOL:
			r.c[l + 1] = C;
			r.h[l + 1] = (H - L->kh) / L->sh + 1;
			r.w[l + 1] = (W - L->kw) / L->sw + 1;
			break;
		case L_GAP:
			r.c[l + 1] = C, r.h[l + 1] = r.w[l + 1] = 1;
			break;
		case L_DENSE: {
			int64_t in = C * H * W;
			r.c[l + 1] = L->out, r.h[l + 1] = r.w[l + 1] = 1;
			const nnrt_param_info *w = r.pw[l] = find_param(m, L->name, "weight");
			cr_assert(w && w->rank == 2 && w->shape[0] == in && w->shape[1] == L->out,
				  "%s: no %s.weight [%lld, %lld]", nt->name, L->name, (long long)in, (long long)L->out);
			r.pb[l] = find_param(m, L->name, "bias");
			cr_assert(r.pb[l] && r.pb[l]->rank == 1 && r.pb[l]->shape[0] == L->out);
			used += 2;
			break;
		}
		default:
			r.c[l + 1] = C, r.h[l + 1] = H, r.w[l + 1] = W;
			break;
		}
		r.has_kinks |= L->k == L_RELU || L->k == L_MAXPOOL ||
			       (L->k == L_ACT && act_ref_find(L->name)->kink(L->opt));
		r.size[l + 1] = r.c[l + 1] * r.h[l + 1] * r.w[l + 1];
		if (r.size[l + 1] > r.maxsize)
			r.maxsize = r.size[l + 1];
	}
	cr_assert_eq(used, m->n_params, "%s: the layer table names %d parameters, the program has %d", nt->name, used,
		     m->n_params);
	cr_assert_eq(r.size[r.nl], m->label_size, "%s: %lld logits for %lld classes", nt->name,
		     (long long)r.size[r.nl], (long long)m->label_size);
	return r;
}

static double sigmoid(double z) { return 1 / (1 + exp(-z)); }

/* y[f][oh][ow] = b[f] + sum_{c, i, j} w[f][c][i][j] x[c][oh*sh - ph + i][ow*sw - pw + j],
 * taps outside the input being 0. */
static void conv_fwd(const refnet *r, int l, const float *P, const double *x, double *y)
{
	const layer *L = &r->L[l];
	int64_t C = r->c[l], H = r->h[l], W = r->w[l], F = r->c[l + 1], OH = r->h[l + 1], OW = r->w[l + 1];
	const float *w = P + r->pw[l]->offset;
	for (int64_t f = 0; f < F; f++)
		for (int64_t oh = 0; oh < OH; oh++)
			for (int64_t ow = 0; ow < OW; ow++) {
				double acc = r->pb[l] ? P[r->pb[l]->offset + f] : 0;
				for (int64_t c = 0; c < C; c++)
					for (int64_t i = 0; i < L->kh; i++)
						for (int64_t j = 0; j < L->kw; j++) {
							int64_t ih = oh * L->sh - L->ph + i, iw = ow * L->sw - L->pw + j;
							if (ih >= 0 && ih < H && iw >= 0 && iw < W)
								acc += w[((f * C + c) * L->kh + i) * L->kw + j] *
								       x[(c * H + ih) * W + iw];
						}
				y[(f * OH + oh) * OW + ow] = acc;
			}
}

/* From dy: dw, db accumulated into G; dx (if wanted) overwritten. */
static void conv_bwd(const refnet *r, int l, const float *P, const double *x, const double *dy, double *dx, double *G,
		     fault flt)
{
	const layer *L = &r->L[l];
	int64_t C = r->c[l], H = r->h[l], W = r->w[l], F = r->c[l + 1], OH = r->h[l + 1], OW = r->w[l + 1];
	const float *w = P + r->pw[l]->offset;
	double *gw = G + r->pw[l]->offset, *gb = r->pb[l] ? G + r->pb[l]->offset : NULL;
	int64_t sh = flt == FAULT_STRIDE ? 1 : L->sh;
	if (dx)
		memset(dx, 0, sizeof(double) * (size_t)(C * H * W));
	for (int64_t f = 0; f < F; f++)
		for (int64_t oh = 0; oh < OH; oh++)
			for (int64_t ow = 0; ow < OW; ow++) {
				double d = dy[(f * OH + oh) * OW + ow];
				if (gb)
					gb[f] += d;
				for (int64_t c = 0; c < C; c++)
					for (int64_t i = 0; i < L->kh; i++)
						for (int64_t j = 0; j < L->kw; j++) {
							int64_t ih = oh * sh - L->ph + i, iw = ow * L->sw - L->pw + j;
							int64_t widx = ((f * C + c) * L->kh + i) * L->kw + j;
							bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
							if (!inside && flt == FAULT_BORDER) {
								int64_t ch = ih < 0 ? 0 : ih >= H ? H - 1 : ih;
								int64_t cw = iw < 0 ? 0 : iw >= W ? W - 1 : iw;
								gw[widx] += d * x[(c * H + ch) * W + cw];
							}
							if (!inside)
								continue;
							gw[widx] += d * x[(c * H + ih) * W + iw];
							if (dx && !(flt == FAULT_EDGE && iw == W - 1))
								dx[(c * H + ih) * W + iw] += d * w[widx];
						}
			}
}

/* Pooling forward; maxpool takes the first maximum of a window, as the
 * program does. */
static void pool_fwd(const refnet *r, int l, const double *x, double *y)
{
	const layer *L = &r->L[l];
	int64_t C = r->c[l], H = r->h[l], W = r->w[l], OH = r->h[l + 1], OW = r->w[l + 1];
	int64_t kh = L->k == L_GAP ? H : L->kh, kw = L->k == L_GAP ? W : L->kw;
	for (int64_t c = 0; c < C; c++)
		for (int64_t oh = 0; oh < OH; oh++)
			for (int64_t ow = 0; ow < OW; ow++) {
				double acc = L->k == L_MAXPOOL ? -INFINITY : 0;
				for (int64_t i = 0; i < kh; i++)
					for (int64_t j = 0; j < kw; j++) {
						double v = x[(c * H + oh * L->sh + i) * W + ow * L->sw + j];
						acc = L->k != L_MAXPOOL ? acc + v : v > acc ? v : acc;
					}
				y[(c * OH + oh) * OW + ow] = L->k == L_MAXPOOL ? acc : acc / (double)(kh * kw);
			}
}

static void pool_bwd(const refnet *r, int l, const double *x, const double *y, const double *dy, double *dx)
{
	const layer *L = &r->L[l];
	int64_t C = r->c[l], H = r->h[l], W = r->w[l], OH = r->h[l + 1], OW = r->w[l + 1];
	int64_t kh = L->k == L_GAP ? H : L->kh, kw = L->k == L_GAP ? W : L->kw;
	memset(dx, 0, sizeof(double) * (size_t)(C * H * W));
	for (int64_t c = 0; c < C; c++)
		for (int64_t oh = 0; oh < OH; oh++)
			for (int64_t ow = 0; ow < OW; ow++) {
				int64_t o = (c * OH + oh) * OW + ow;
				bool taken = false;
				for (int64_t i = 0; i < kh; i++)
					for (int64_t j = 0; j < kw; j++) {
						int64_t k = (c * H + oh * L->sh + i) * W + ow * L->sw + j;
						if (L->k != L_MAXPOOL)
							dx[k] += dy[o] / (double)(kh * kw);
						else if (!taken && x[k] == y[o])
							dx[k] += dy[o], taken = true;
					}
			}
}

static void dense_fwd(const refnet *r, int l, const float *P, const double *x, double *y)
{
	int64_t in = r->size[l], out = r->size[l + 1];
	const float *w = P + r->pw[l]->offset, *b = P + r->pb[l]->offset;
	for (int64_t o = 0; o < out; o++) {
		double acc = b[o];
		for (int64_t i = 0; i < in; i++)
			acc += x[i] * w[i * out + o];
		y[o] = acc;
	}
}

static void dense_bwd(const refnet *r, int l, const float *P, const double *x, const double *dy, double *dx, double *G)
{
	int64_t in = r->size[l], out = r->size[l + 1];
	const float *w = P + r->pw[l]->offset;
	double *gw = G + r->pw[l]->offset, *gb = G + r->pb[l]->offset;
	for (int64_t o = 0; o < out; o++)
		gb[o] += dy[o];
	for (int64_t i = 0; i < in; i++) {
		double acc = 0;
		for (int64_t o = 0; o < out; o++) {
			gw[i * out + o] += x[i] * dy[o];
			acc += w[i * out + o] * dy[o];
		}
		if (dx)
			dx[i] = acc;
	}
}

/* One batch through the reference, with the parameters P:
 *   out      [n][K] softmax of the logits (or NULL)
 *   metrics  sum of per-sample losses, number correct
 *   G        (or NULL) d mean loss / d params, laid out like P, with `flt` */
static void ref_batch(const refnet *r, const float *P, const float *x, const int32_t *y, int64_t n, double *out,
		      double metrics[2], double *G, fault flt)
{
	int nl = r->nl;
	int64_t K = r->size[nl];
	double *v[MAXL + 1];
	for (int l = 0; l <= nl; l++)
		v[l] = malloc(sizeof(double) * (size_t)r->size[l]);
	double *d0 = malloc(sizeof(double) * (size_t)r->maxsize), *d1 = malloc(sizeof(double) * (size_t)r->maxsize);
	metrics[0] = metrics[1] = 0;
	if (G)
		memset(G, 0, sizeof(double) * (size_t)r->m->param_floats);
	for (int64_t s = 0; s < n; s++) {
		for (int64_t i = 0; i < r->size[0]; i++)
			v[0][i] = x[s * r->size[0] + i];
		for (int l = 0; l < nl; l++) {
			const double *a = v[l];
			double *b = v[l + 1];
			switch (r->L[l].k) {
			case L_CONV: conv_fwd(r, l, P, a, b); break;
			case L_DENSE: dense_fwd(r, l, P, a, b); break;
			case L_MAXPOOL:
			case L_AVGPOOL:
			case L_GAP: pool_fwd(r, l, a, b); break;
			case L_RELU:
				for (int64_t i = 0; i < r->size[l]; i++)
					b[i] = a[i] > 0 ? a[i] : 0;
				break;
			case L_TANH:
				for (int64_t i = 0; i < r->size[l]; i++)
					b[i] = tanh(a[i]);
				break;
			case L_SIGMOID:
				for (int64_t i = 0; i < r->size[l]; i++)
					b[i] = sigmoid(a[i]);
				break;
			case L_ACT: {
				const act_ref *ar = act_ref_find(r->L[l].name);
				for (int64_t i = 0; i < r->size[l]; i++)
					b[i] = ar->f(a[i], r->L[l].opt);
				break;
			}
			default: cr_assert_fail("layer kind %d", r->L[l].k);
			}
		}
		/* softmax cross-entropy of the logits */
		const double *z = v[nl];
		double mx = z[0], sum = 0;
		int64_t am = 0;
		for (int64_t k = 1; k < K; k++)
			if (z[k] > mx)
				mx = z[k], am = k;
		for (int64_t k = 0; k < K; k++)
			sum += exp(z[k] - mx);
		metrics[0] += log(sum) + mx - z[y[s]];
		metrics[1] += am == y[s];
		for (int64_t k = 0; k < K; k++) {
			double p = exp(z[k] - mx) / sum;
			if (out)
				out[s * K + k] = p;
			d0[k] = (p - (k == y[s])) / (double)n;
		}
		if (!G)
			continue;
		/* backward: d0 holds d loss / d v[l + 1] */
		for (int l = nl - 1; l >= 0; l--) {
			const layer *L = &r->L[l];
			bool want_dx = l > 0;
			const double *a = v[l], *b = v[l + 1];
			switch (L->k) {
			case L_CONV: conv_bwd(r, l, P, a, d0, want_dx ? d1 : NULL, G, flt); break;
			case L_DENSE: dense_bwd(r, l, P, a, d0, want_dx ? d1 : NULL, G); break;
			case L_MAXPOOL:
			case L_AVGPOOL:
			case L_GAP: pool_bwd(r, l, a, b, d0, d1); break;
			default: {
				bool skip = flt == FAULT_DACT && l > 0 && r->L[l - 1].k == L_CONV;
				for (int64_t i = 0; i < r->size[l]; i++) {
					double dact = L->k == L_ACT    ? act_ref_find(L->name)->df(a[i], L->opt)
						      : L->k == L_RELU ? (b[i] > 0)
						      : L->k == L_TANH ? 1 - b[i] * b[i]
									: b[i] * (1 - b[i]);
					d1[i] = skip ? d0[i] : d0[i] * dact;
				}
			}
			}
			double *t = d0;
			d0 = d1;
			d1 = t;
		}
	}
	for (int l = 0; l <= nl; l++)
		free(v[l]);
	free(d0);
	free(d1);
}

/* |a - b| within tol relative to max(1, |b|). */
static bool close_to(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(1.0, fabs(b)); }

/* ---- 1. forward -------------------------------------------------------- */

#define FWD_TOL 1e-5

/* j[v] is the program built as variant v (as in the checks below). */
static void check_forward(const net *nt, const jitted j[NUM_VARIANTS])
{
	state s[NUM_VARIANTS];
	for (int v = 0; v < NUM_VARIANTS; v++)
		s[v] = state_new(j[v].m);
	const nnrt_model *m = j[V_FUSED].m;
	refnet r = ref_bind(nt, m);
	int64_t K = m->label_size;
	cr_assert_eq(m->output_size, K);
	double *want = malloc(sizeof(double) * (size_t)(m->batch * K));
	for (int t = 0; t < 2; t++) {
		int64_t n = nt->ns[t];
		for (int f = 0; f < NUM_VARIANTS; f++) {
			th_fill_params(m, s[f].params, 100 + (uint64_t)t);
			th_fill_batch(&s[f], n, 200 + (uint64_t)t);
		}
		double wm[2];
		ref_batch(&r, s[0].params, s[0].x, (const int32_t *)s[0].y, n, want, wm, NULL, FAULT_NONE);
		for (int threads = 1; threads <= 2; threads++) {
			nnrt_set_threads(threads);
			for (int f = 0; f < NUM_VARIANTS; f++) {
				const char *how = variant_names[f];
				run(&s[f], j[f].m->infer, n);
				for (int64_t i = 0; i < n * K; i++)
					cr_assert(close_to(s[f].out[i], want[i], FWD_TOL),
						  "%s %s infer, n=%lld, %d threads: p[%lld][%lld] = %.9g, reference %.9g",
						  nt->name, how, (long long)n, threads, (long long)(i / K), (long long)(i % K),
						  s[f].out[i], want[i]);
				run(&s[f], j[f].m->eval_step, n);
				cr_assert(close_to(s[f].metrics[0], wm[0], FWD_TOL),
					  "%s %s eval_step, n=%lld, %d threads: loss sum %.9g, reference %.9g", nt->name,
					  how, (long long)n, threads, s[f].metrics[0], wm[0]);
				cr_assert(s[f].metrics[1] == wm[1], "%s %s eval_step, n=%lld: %g correct, reference %g",
					  nt->name, how, (long long)n, s[f].metrics[1], wm[1]);
			}
		}
		/* the comparison can fail: the reference with the first conv
		 * weight off by 1e-2 must disagree with the program */
		float *p = th_falloc(m->param_floats);
		memcpy(p, s[0].params, sizeof(float) * (size_t)m->param_floats);
		p[r.pw[0]->offset] += 1e-2f;
		ref_batch(&r, p, s[0].x, (const int32_t *)s[0].y, n, want, wm, NULL, FAULT_NONE);
		int64_t differ = 0;
		for (int64_t i = 0; i < n * K; i++)
			differ += !close_to(s[0].out[i], want[i], FWD_TOL);
		cr_assert(differ > 0, "%s: the forward check does not notice %s[0] off by 1e-2", nt->name,
			  r.pw[0]->name);
		free(p);
	}
	free(want);
	for (int v = 0; v < NUM_VARIANTS; v++)
		state_free(&s[v]);
}

/* ---- 2. gradients ------------------------------------------------------ */

/* steps of the central differences: the first that the reference says is an
 * estimate of the derivative (see check_gradients_at) */
static const double fd_steps[] = {1e-2, 3e-3, 1e-3};
#define GRAD_ATOL 1e-4 /* per entry: |g - fd| <= ATOL + RTOL |fd| */
#define GRAD_RTOL 2e-3
/* per tensor, 2-norms over the k entries checked: |g - fd| <= NORM_RTOL |fd| + NORM_ATOL sqrt(k),
 * a systematic error of 0.5% of the gradient above the noise of the differences */
#define GRAD_NORM_RTOL 5e-3
#define GRAD_NORM_ATOL 2.5e-5
/* the share of an entry's tolerance the differences may be off in the reference */
#define FD_METHOD_SHARE 0.1
/* program against the reference's backward pass: |g - r| <= REF_TOL (|r| + max |r| of the tensor) */
#define REF_TOL 1e-4

/* One parameter tensor: the entries checked by differences. */
typedef struct fd_table {
	const nnrt_param_info *p;
	int64_t k;
	int64_t *idx;    /* entries */
	double *fd;      /* central differences of the mean loss */
	bool *skip;      /* the difference is no estimate of the derivative here */
} fd_table;

/* NULL if the gradient g (laid out like params) agrees with the differences
 * of tensor t, else why (arena). */
static const char *grad_verdict(const fd_table *t, const double *g)
{
	double dn = 0, fn = 0;
	int64_t k = 0;
	for (int64_t e = 0; e < t->k; e++) {
		if (t->skip[e])
			continue;
		k++;
		double gv = g[t->p->offset + t->idx[e]], fd = t->fd[e];
		if (fabs(gv - fd) > GRAD_ATOL + GRAD_RTOL * fabs(fd))
			return nnc_sprintf("entry %lld: gradient %.7g, central difference %.7g", (long long)t->idx[e], gv,
					   fd);
		dn += (gv - fd) * (gv - fd);
		fn += fd * fd;
	}
	if (sqrt(dn) > GRAD_NORM_RTOL * sqrt(fn) + GRAD_NORM_ATOL * sqrt((double)k))
		return nnc_sprintf("|g - fd| = %.4g over %lld entries is more than %g of |fd| = %.4g plus %g sqrt(%lld)",
				   sqrt(dn), (long long)k, GRAD_NORM_RTOL, sqrt(fn), GRAD_NORM_ATOL, (long long)k);
	return NULL;
}

/* The mean loss eval_step reports at the current parameters; with `ref`,
 * also the reference's. */
/* The largest |g - fd| over the entries' tolerances, over all tensors. */
static double worst_error(const fd_table *t, int nt, const double *g)
{
	double worst = 0;
	for (int pi = 0; pi < nt; pi++)
		for (int64_t e = 0; e < t[pi].k; e++)
			if (!t[pi].skip[e])
				worst = fmax(worst, fabs(g[t[pi].p->offset + t[pi].idx[e]] - t[pi].fd[e]) /
							    (GRAD_ATOL + GRAD_RTOL * fabs(t[pi].fd[e])));
	return worst;
}

static double mean_loss(state *s, const refnet *r, int64_t n, double *ref)
{
	run(s, s->m->eval_step, n);
	if (ref) {
		double wm[2];
		ref_batch(r, s->params, s->x, s->y, n, NULL, wm, NULL, FAULT_NONE);
		*ref = wm[0] / (double)n;
	}
	return s->metrics[0] / (double)n;
}

/* Central difference of the mean loss in parameter *p with step h: the
 * program's, and (with rfd) the reference's at the same two points. */
static double central_difference(state *s, const refnet *r, int64_t n, float *p, double h, double *rfd)
{
	float orig = *p;
	double rp = 0, rm = 0;
	*p = (float)(orig + h);
	double xp = *p, lp = mean_loss(s, r, n, rfd ? &rp : NULL);
	*p = (float)(orig - h);
	double xm = *p, lm = mean_loss(s, r, n, rfd ? &rm : NULL);
	*p = orig;
	if (rfd)
		*rfd = (rp - rm) / (xp - xm);
	return (lp - lm) / (xp - xm);
}

/* Analytic gradients of the program (2 threads) for n samples, checked
 * against the reference's backward pass and, with `fd`, against differences
 * of eval_step; with `sensitivity`, also shows the differences reject each
 * planted bug of the reference that changes this network's gradients. */
static void check_gradients_at(const net *nt, const jitted *j, variant v, int64_t n, uint64_t seed, bool fd,
			       bool sensitivity)
{
	const nnrt_model *m = j->m;
	const char *how = nnc_sprintf("%s %s n=%lld", nt->name, variant_names[v], (long long)n);
	refnet r = ref_bind(nt, m);
	state s = state_new(m);
	int64_t pf = m->param_floats;
	th_fill_params(m, s.params, seed);
	th_fill_batch(&s, n, seed + 1);
	float *p0 = th_falloc(pf);
	memcpy(p0, s.params, sizeof(float) * (size_t)pf);
	for (int pi = 0; pi < m->n_params; pi++) /* every gradient must be written (padding stays 0) */
		for (int64_t e = 0; e < m->params[pi].size; e++)
			s.grads[m->params[pi].offset + e] = NAN;
	nnrt_set_threads(2);
	run(&s, m->train_step, n);
	cr_assert(!memcmp(p0, s.params, sizeof(float) * (size_t)pf),
		  "%s: train_step with hp[NNRT_HP_LR] = 0 changed the parameters", how);
	double *g = malloc(sizeof(double) * (size_t)pf), *rg = malloc(sizeof(double) * (size_t)pf);
	for (int64_t i = 0; i < pf; i++)
		g[i] = s.grads[i];

	/* against the reference's backward pass, every entry */
	double wm[2];
	ref_batch(&r, s.params, s.x, (const int32_t *)s.y, n, NULL, wm, rg, FAULT_NONE);
	for (int pi = 0; pi < m->n_params; pi++) {
		const nnrt_param_info *p = &m->params[pi];
		double big = 0;
		for (int64_t e = 0; e < p->size; e++)
			big = fmax(big, fabs(rg[p->offset + e]));
		cr_assert(big > 0, "%s: the reference gradient of %s is 0", how, p->name);
		for (int64_t e = 0; e < p->size; e++) {
			double gv = g[p->offset + e], rv = rg[p->offset + e];
			cr_assert(isfinite(gv), "%s: d loss / d %s[%lld] is %g", how, p->name, (long long)e, gv);
			cr_assert(fabs(gv - rv) <= REF_TOL * (fabs(rv) + big),
				  "%s: d loss / d %s[%lld] = %.9g, the reference's backward pass gives %.9g "
				  "(largest in the tensor %.4g)",
				  how, p->name, (long long)e, gv, rv, big);
		}
	}

	if (!fd) {
		free(g);
		free(rg);
		free(p0);
		state_free(&s);
		return;
	}

	/* central differences of the mean loss eval_step reports.  With relu or
	 * maxpool, a step moves some relu input across 0 or some window's
	 * maximum to another position for many entries; the difference is then
	 * no estimate of the derivative.  The reference tells, in double
	 * precision: where its own difference (same two points) is off its
	 * backward pass by more than FD_METHOD_SHARE of the tolerance, a smaller
	 * step is tried; after the last, the entry is skipped. */
	nnrt_set_threads(1);
	fd_table t[16];
	cr_assert((size_t)m->n_params <= NELEMS(t));
	rng pick = {seed * 7 + 3};
	int64_t checked = 0, skipped = 0, small_steps = 0;
	for (int pi = 0; pi < m->n_params; pi++) {
		const nnrt_param_info *p = &m->params[pi];
		fd_table *tt = &t[pi];
		tt->p = p;
		tt->k = nt->fd_per_tensor && nt->fd_per_tensor < p->size ? nt->fd_per_tensor : p->size;
		tt->idx = malloc(sizeof(int64_t) * (size_t)tt->k);
		tt->fd = malloc(sizeof(double) * (size_t)tt->k);
		tt->skip = malloc(sizeof(bool) * (size_t)tt->k);
		for (int64_t e = 0; e < tt->k; e++) {
			tt->idx[e] = tt->k == p->size ? e : (int64_t)(rng_next(&pick) % (uint64_t)p->size);
			float *pp = &s.params[p->offset + tt->idx[e]];
			double rv = rg[p->offset + tt->idx[e]], rfd = rv;
			for (size_t k = 0; k < NELEMS(fd_steps); k++) {
				tt->fd[e] = central_difference(&s, &r, n, pp, fd_steps[k], r.has_kinks ? &rfd : NULL);
				tt->skip[e] = fabs(rfd - rv) > FD_METHOD_SHARE * (GRAD_ATOL + GRAD_RTOL * fabs(rv));
				if (!tt->skip[e])
					break;
				small_steps++;
			}
			skipped += tt->skip[e];
			checked += !tt->skip[e];
		}
	}
	/* most entries must be checked (samepool at n = 20, the worst, skips 11%) */
	cr_assert(skipped * 6 <= checked + skipped, "%s: %lld of %lld differences straddle a kink of relu or maxpool",
		  how, (long long)skipped, (long long)(checked + skipped));
	for (int pi = 0; pi < m->n_params; pi++) {
		const char *why = grad_verdict(&t[pi], g);
		cr_assert(!why, "%s: d loss / d %s against central differences: %s", how, t[pi].p->name, why);
		why = grad_verdict(&t[pi], rg);
		cr_assert(!why, "%s: the reference's d loss / d %s against central differences: %s", how,
			  t[pi].p->name, why);
	}

	cr_log_info("%s: %lld entries checked by differences (%lld smaller steps), %lld skipped at kinks; worst "
		    "error %.3f of the tolerance",
		    how, (long long)checked, (long long)small_steps, (long long)skipped, worst_error(t, m->n_params, g));

	/* the differences are tight enough to notice each planted bug */
	if (sensitivity) {
		double *fg = malloc(sizeof(double) * (size_t)pf);
		for (int f = FAULT_NONE + 1; f < NUM_FAULTS; f++) {
			ref_batch(&r, s.params, s.x, (const int32_t *)s.y, n, NULL, wm, fg, (fault)f);
			double change = 0;
			for (int64_t i = 0; i < pf; i++)
				change = fmax(change, fabs(fg[i] - rg[i]));
			if (change == 0)
				continue; /* this network has no such place */
			const char *caught = NULL;
			for (int pi = 0; pi < m->n_params && !caught; pi++)
				caught = grad_verdict(&t[pi], fg);
			cr_assert(caught, "%s: the gradient check does not notice %s (changes gradients by up to %.3g)",
				  how, fault_names[f], change);
			cr_log_info("%s: %s is caught (worst error %.1f of the tolerance): %s", how, fault_names[f],
				    worst_error(t, m->n_params, fg), caught);
		}
		free(fg);
	}
	for (int pi = 0; pi < m->n_params; pi++) {
		free(t[pi].idx);
		free(t[pi].fd);
		free(t[pi].skip);
	}
	free(g);
	free(rg);
	free(p0);
	state_free(&s);
}

/* Differences for the fast kernels; the naive ones (unoptimised, slow) are
 * held to the reference's backward pass alone. */
static void check_gradients(const net *nt, const jitted j[NUM_VARIANTS])
{
	for (int v = 0; v < NUM_VARIANTS; v++)
		for (int t = 0; t < 2; t++)
			check_gradients_at(nt, &j[v], (variant)v, nt->ns[t], 300 + 10 * (uint64_t)t, v != V_NAIVE,
					   v == V_FUSED && t == 0 && !nt->fd_per_tensor);
}

/* ---- 3. fused against unfused and naive -------------------------------- */

/* fused against unfused: the same kernels, only the epilogues differ */
#define FUSE_TOL 1e-5
/* fused against naive: other loop nests, so other summation orders (conv1's
 * weight gradients in lenet sum 8 x 784 products with much cancellation:
 * seen 1.5e-4 apart) */
#define NAIVE_TOL 2e-4

/* The number of conv2d nodes with an activation in their epilogue (acts),
 * and of conv2d_bwd_x / pooling gradients with an activation derivative
 * (dacts). */
static void count_fusions(ir_graph *g, int *acts, int *dacts)
{
	*acts = *dacts = 0;
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		*acts += n->op == IR_CONV2D && n->act != ACT_NONE;
		*dacts += (n->op == IR_CONV2D_BWD_X || n->op == IR_MAXPOOL_BWD || n->op == IR_AVGPOOL_BWD ||
			   n->op == IR_GAVGPOOL_BWD) &&
			  n->dact != ACT_NONE;
	}
}

/* |a - b| within tol of the larger magnitude, or of `floor`. */
static bool agree(double a, double b, double floor, double tol)
{
	return fabs(a - b) <= tol * fmax(fmax(fabs(a), fabs(b)), floor);
}

/* The fused program folds every activation after a conv into it and the
 * derivative into the gradient op that feeds it; the others fold nothing.
 * All three agree on outputs, loss and every gradient. */
static void check_fusion(const net *nt, const jitted j[NUM_VARIANTS], int want_acts, int want_dacts)
{
	state s[NUM_VARIANTS];
	for (int v = 0; v < NUM_VARIANTS; v++) {
		s[v] = state_new(j[v].m);
		int acts, dacts, wa = v == V_FUSED ? want_acts : 0, wd = v == V_FUSED ? want_dacts : 0;
		count_fusions(j[v].g, &acts, &dacts);
		cr_assert(acts == wa && dacts == wd,
			  "%s %s: %d activations fused into conv2d, %d derivatives into conv/pool gradients; want %d, %d",
			  nt->name, variant_names[v], acts, dacts, wa, wd);
	}
	const nnrt_model *m = j[V_FUSED].m;
	int64_t K = m->label_size;
	nnrt_set_threads(2);
	for (int t = 0; t < 2; t++) {
		int64_t n = nt->ns[t];
		for (int v = 0; v < NUM_VARIANTS; v++) {
			th_fill_params(m, s[v].params, 400 + (uint64_t)t);
			th_fill_batch(&s[v], n, 500 + (uint64_t)t);
			run(&s[v], j[v].m->infer, n);
			run(&s[v], j[v].m->train_step, n);
		}
		const state *a = &s[V_FUSED];
		for (int v = V_UNFUSED; v < NUM_VARIANTS; v++) {
			const state *b = &s[v];
			const char *vs = variant_names[v];
			double tol = v == V_UNFUSED ? FUSE_TOL : NAIVE_TOL;
			for (int64_t i = 0; i < n * K; i++)
				cr_assert(agree(a->out[i], b->out[i], 0, tol), "%s n=%lld: infer p[%lld][%lld] fused %.9g, %s %.9g",
					  nt->name, (long long)n, (long long)(i / K), (long long)(i % K), a->out[i], vs,
					  b->out[i]);
			cr_assert(agree(a->metrics[0], b->metrics[0], 0, tol), "%s n=%lld: loss sum fused %.9g, %s %.9g",
				  nt->name, (long long)n, a->metrics[0], vs, b->metrics[0]);
			for (int pi = 0; pi < m->n_params; pi++) {
				const nnrt_param_info *p = &m->params[pi];
				/* entries far below the tensor's largest are sums
				 * with cancellation: judged against 1e-2 of it */
				double big = 0;
				for (int64_t e = 0; e < p->size; e++)
					big = fmax(big, fabs(b->grads[p->offset + e]));
				for (int64_t e = 0; e < p->size; e++) {
					float ga = a->grads[p->offset + e], gb = b->grads[p->offset + e];
					cr_assert(agree(ga, gb, 1e-2 * big, tol),
						  "%s n=%lld: d loss / d %s[%lld] fused %.9g, %s %.9g", nt->name,
						  (long long)n, p->name, (long long)e, ga, vs, gb);
				}
			}
		}
	}
	for (int v = 0; v < NUM_VARIANTS; v++)
		state_free(&s[v]);
}

/* ---- 4. thread count ---------------------------------------------------- */

static void check_threads(const net *nt, const jitted *j, variant v)
{
	const nnrt_model *m = j->m;
	state s = state_new(m);
	int64_t pf = m->param_floats, K = m->label_size;
	float *g1 = th_falloc(pf), *o1 = th_falloc(m->batch * K);
	const char *vs = variant_names[v];
	for (int t = 0; t < 2; t++) {
		int64_t n = nt->ns[t];
		th_fill_params(m, s.params, 600 + (uint64_t)t);
		th_fill_batch(&s, n, 700 + (uint64_t)t);
		double l1 = 0;
		static const int team[] = {1, 2, 3, 4, 8}; /* 4, 8: groups of threads per chunk */
		for (size_t ti = 0; ti < NELEMS(team); ti++) {
			int threads = team[ti];
			nnrt_set_threads(threads);
			run(&s, m->train_step, n);
			double loss = s.metrics[0];
			run(&s, m->infer, n);
			if (threads == 1) {
				memcpy(g1, s.grads, sizeof(float) * (size_t)pf);
				memcpy(o1, s.out, sizeof(float) * (size_t)(n * K));
				l1 = loss;
				continue;
			}
			for (int pi = 0; pi < m->n_params; pi++) {
				const nnrt_param_info *p = &m->params[pi];
				for (int64_t e = 0; e < p->size; e++)
					cr_assert(!memcmp(&g1[p->offset + e], &s.grads[p->offset + e], sizeof(float)),
						  "%s %s n=%lld: d loss / d %s[%lld] is %.9g with 1 thread, %.9g with %d",
						  nt->name, vs, (long long)n, p->name, (long long)e, g1[p->offset + e],
						  s.grads[p->offset + e], threads);
			}
			cr_assert(!memcmp(o1, s.out, sizeof(float) * (size_t)(n * K)),
				  "%s %s n=%lld: infer differs between 1 and %d threads", nt->name, vs, (long long)n,
				  threads);
			cr_assert(loss == l1, "%s %s n=%lld: loss %.17g with 1 thread, %.17g with %d", nt->name, vs,
				  (long long)n, l1, loss, threads);
		}
	}
	free(g1);
	free(o1);
	state_free(&s);
}

/* ---- the tests --------------------------------------------------------- */

/* Each network is compiled once per variant (compilation is most of the
 * time) and every check runs on those.  fused_acts: activations after a conv,
 * fused into it; fused_dacts: their derivatives, fused into maxpool_bwd /
 * avgpool_bwd / global_avgpool_bwd / conv2d_bwd_x. */
static void check_net(int which, int fused_acts, int fused_dacts)
{
	const net *nt = &nets[which];
	jitted j[NUM_VARIANTS];
	for (int v = 0; v < NUM_VARIANTS; v++)
		j[v] = jit_program(nt->src, (variant)v);
	check_forward(nt, j);
	check_gradients(nt, j);
	check_fusion(nt, j, fused_acts, fused_dacts);
	check_threads(nt, &j[V_FUSED], V_FUSED);
	for (int v = 0; v < NUM_VARIANTS; v++)
		jit_free(&j[v]);
}

Test(conv, strided) { check_net(NET_STRIDED, 1, 1); }
Test(conv, samepool) { check_net(NET_SAMEPOOL, 2, 2); }
Test(conv, sigstack) { check_net(NET_SIGSTACK, 2, 2); }
/* batch 8: conv2's 16 filters form one 16-row register tile */
Test(conv, lenet) { check_net(NET_LENET, 2, 2); }
Test(conv, lenet33) { check_net(NET_LENET33, 2, 2); }
Test(conv, widedense) { check_net(NET_WIDEDENSE, 0, 0); }
Test(conv, activations_from_y) { check_net(NET_ACTY, 3, 3); }
Test(conv, activations_from_x) { check_net(NET_ACTX, 3, 3); }
Test(conv, twins) { check_net(NET_TWINS, 3, 3); }
/* cg_conv.c sizes its register tiles for the target (AVX-512: up to 24
 * accumulators of 16 lanes; AVX2: 6, and 8-lane halves in conv dw); both
 * sets of tiles are built and checked here whatever the host runs */
Test(conv, resnet_shapes_avx2_tiles) { th_vacc = 6; check_net(NET_RESSHAPES, 3, 3); }
Test(conv, resnet_shapes_avx512_tiles) { th_vacc = 24; check_net(NET_RESSHAPES, 3, 3); }
Test(conv, lenet33_avx2_tiles) { th_vacc = 6; check_net(NET_LENET33, 2, 2); }
Test(conv, lenet33_avx512_tiles) { th_vacc = 24; check_net(NET_LENET33, 2, 2); }
Test(conv, sigstack_avx2_tiles) { th_vacc = 6; check_net(NET_SIGSTACK, 2, 2); }
Test(conv, sigstack_avx512_tiles) { th_vacc = 24; check_net(NET_SIGSTACK, 2, 2); }
/* the dense products' tiles (cg_kernels.c gemm): 6 rows x 1 vector on AVX2
 * (11-sample chunks: a 6-row tile and 5 single rows), 8 x 3 on AVX-512 */
Test(conv, widedense_avx2_tiles) { th_vacc = 6; check_net(NET_WIDEDENSE, 0, 0); }
Test(conv, widedense_avx512_tiles) { th_vacc = 24; check_net(NET_WIDEDENSE, 0, 0); }
Test(conv, twins_avx2_tiles) { th_vacc = 6; check_net(NET_TWINS, 3, 3); }

/* ---- the parallel schedule ------------------------------------------------
 * Chunks (plan.c) change only the order in which per-chunk gradient sums are
 * added: any chunk count must train like one chunk (within rounding), and a
 * given chunk count must give the same bits for any thread count.  Batches
 * of n < cbatch leave chunks empty; n = 20 of 33 leaves the last one short. */

typedef struct trained {
	float *params;
	double loss;
} trained;

/* Two SGD steps on one batch of n samples. */
static trained train_two_steps(const jitted *j, int threads, int64_t n)
{
	const nnrt_model *m = j->m;
	state s = state_new(m);
	th_fill_params(m, s.params, 71);
	th_fill_batch(&s, n, 72);
	s.a.hp[NNRT_HP_LR] = 0.05f;
	nnrt_set_threads(threads);
	trained t = {0};
	for (int step = 0; step < 2; step++) {
		th_run(&s, m->train_step, n);
		t.loss += s.metrics[0];
	}
	nnrt_set_threads(1);
	t.params = th_falloc(m->param_floats);
	memcpy(t.params, s.params, sizeof(float) * (size_t)m->param_floats);
	state_free(&s);
	return t;
}

static void check_chunks(const char *src, int64_t batch)
{
	th_chunks = 1;
	jitted one = th_jit(th_build_graph(SRC_PATH, src, true), false, true);
	cr_assert_eq(one.g->chunks, 1);
	const int64_t ks[] = {2, 3, 5};
	const int64_t ns[] = {1, 7, 20, batch};
	for (size_t ki = 0; ki < NELEMS(ks); ki++) {
		th_chunks = ks[ki];
		jitted jk = th_jit(th_build_graph(SRC_PATH, src, true), false, true);
		th_chunks = 0;
		cr_assert_eq(jk.g->chunks, ks[ki], "%lld chunks planned, %lld asked", (long long)jk.g->chunks,
			     (long long)ks[ki]);
		cr_assert_eq(jk.g->cbatch, (batch + ks[ki] - 1) / ks[ki]);
		const nnrt_model *m = jk.m;
		for (size_t ni = 0; ni < NELEMS(ns); ni++) {
			int64_t n = ns[ni];
			trained ref = train_two_steps(&one, 1, n);
			trained t1 = train_two_steps(&jk, 1, n);
			cr_assert(fabs(t1.loss - ref.loss) <= 1e-5 * fabs(ref.loss), "%lld chunks, n=%lld: loss %.9g, one chunk %.9g",
				  (long long)ks[ki], (long long)n, t1.loss, ref.loss);
			for (int64_t i = 0; i < m->param_floats; i++)
				cr_assert(fabs(t1.params[i] - ref.params[i]) <= 1e-6 + 1e-5 * fabs(ref.params[i]),
					  "%lld chunks, n=%lld: params[%lld] = %.9g, one chunk %.9g", (long long)ks[ki],
					  (long long)n, (long long)i, t1.params[i], ref.params[i]);
			for (int threads = 2; threads <= 3; threads++) {
				trained tt = train_two_steps(&jk, threads, n);
				cr_assert(tt.loss == t1.loss && !memcmp(tt.params, t1.params, sizeof(float) * (size_t)m->param_floats),
					  "%lld chunks, n=%lld: %d threads differ from 1", (long long)ks[ki], (long long)n, threads);
				free(tt.params);
			}
			free(ref.params);
			free(t1.params);
		}
		jit_free(&jk);
	}
	jit_free(&one);
}

#define DENSE_SRC(batch) \
	"model mlp\n" \
	"input x : f32[3, 4, 4]\n" \
	"label y : class(5)\n" \
	"logits = x |> flatten |> dense(24) |> relu |> dense(16) |> sigmoid |> dense(5)\n" TRAIN_BLOCK(batch)

Test(schedule, chunks_train_like_one_chunk_conv, .timeout = 240) { check_chunks(LENET_SRC(33), 33); }
Test(schedule, chunks_train_like_one_chunk_dense, .timeout = 240) { check_chunks(DENSE_SRC(33), 33); }

/* More chunks than samples: one sample each. */
Test(schedule, chunks_capped_by_the_batch)
{
	th_chunks = 9;
	ir_graph *g = th_build_graph(SRC_PATH, DENSE_SRC(4), true);
	th_chunks = 0;
	cr_assert_eq(g->chunks, 4);
	cr_assert_eq(g->cbatch, 1);
	cr_assert_eq(g->bpad, 16);
}

/* ---- inference on a few samples (small.c) ---------------------------------
 * infer() with n <= NNC_SMALL_BATCH runs the sample-major copy of the graph:
 * its own convolution and pooling kernels.  Every net, n = 1 .. 4 and the
 * first n on the batch-innermost path, on 1 and 2 threads, against the
 * reference forward pass; outputs past n keep their canary. */
Test(small_batch, few_samples_match_the_reference, .timeout = 240)
{
	for (size_t ni = 0; ni < NELEMS(nets); ni++) {
		const net *nt = &nets[ni];
		ir_graph *g = th_build_graph(SRC_PATH, nt->src, true);
		jitted j = th_jit(g, false, true);
		/* the convolutional nets get a sample-major copy; widedense needs none */
		bool conv = nt->L[0].k == L_CONV;
		cr_assert(conv == (nnc_small_batch(g) != NULL), "%s: sample-major copy %s", nt->name,
			  conv ? "missing" : "made for a sample-major graph");
		const nnrt_model *m = j.m;
		refnet r = ref_bind(nt, m);
		int64_t K = m->label_size;
		state s = state_new(m);
		double *want = malloc(sizeof(double) * (size_t)(m->batch * K));
		for (int64_t n = 1; n <= NNC_SMALL_BATCH + 1 && n <= m->batch; n++) {
			th_fill_params(m, s.params, 300 + (uint64_t)n);
			th_fill_batch(&s, n, 310 + (uint64_t)n);
			double wm[2];
			ref_batch(&r, s.params, s.x, (const int32_t *)s.y, n, want, wm, NULL, FAULT_NONE);
			for (int threads = 1; threads <= 2; threads++) {
				nnrt_set_threads(threads);
				run(&s, m->infer, n);
				for (int64_t i = 0; i < n * K; i++)
					cr_assert(close_to(s.out[i], want[i], FWD_TOL),
						  "%s infer, n=%lld, %d threads: p[%lld][%lld] = %.9g, reference %.9g", nt->name,
						  (long long)n, threads, (long long)(i / K), (long long)(i % K), s.out[i], want[i]);
			}
		}
		nnrt_set_threads(1);
		free(want);
		state_free(&s);
		jit_free(&j);
	}
}

/* The copy is sample-major throughout and converts nothing. */
Test(small_batch, the_copy_has_no_batch_innermost_tensor)
{
	ir_graph *g = th_build_graph(SRC_PATH, LENET_SRC(64), true);
	ir_graph *s = nnc_small_batch(g);
	cr_assert(s);
	int convs = 0;
	for (int i = 0; i < s->n; i++) {
		ir_node *n = &s->nodes[i];
		if (n->dead)
			continue;
		cr_assert(n->op != IR_TO_CN && n->op != IR_TO_NC, "%%%d converts layouts", i);
		cr_assert(!n->batched || n->layout == LAYOUT_NC, "%%%d (%s) is batch-innermost", i, ir_op_name(n->op));
		convs += n->op == IR_CONV2D;
	}
	cr_assert_eq(convs, 2);
	cr_assert_eq(s->nodes[s->output].storage, ST_OUT);
	cr_assert(g->ws_floats >= s->ws_floats);
}

/* ---- kernel sharing (cg.c) ---- */

/* Op functions defined in a module lowered from g, and how many of them
 * are called with an offset table (shared kernels' tables). */
static int count_op_functions(ir_graph *g, bool no_share, int *tables)
{
	LLVMContextRef ctx = LLVMContextCreate();
	cg_options co = {.opt_level = 2, .no_share = no_share, .small = nnc_small_batch(g)};
	LLVMModuleRef mod = nnc_lower(g, th_config(g), &co, ctx);
	int n = 0;
	for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
		size_t len;
		const char *name = LLVMGetValueName2(f, &len);
		n += !LLVMIsDeclaration(f) && strstr(name, "op") != NULL && !strstr(name, "epilogue");
	}
	*tables = 0;
	for (LLVMValueRef gv = LLVMGetFirstGlobal(mod); gv; gv = LLVMGetNextGlobal(gv)) {
		size_t len;
		*tables += strstr(LLVMGetValueName2(gv, &len), "offsets.") != NULL;
	}
	LLVMDisposeModule(mod);
	LLVMContextDispose(ctx);
	return n;
}

/* Layers of one shape get one kernel, called with each layer's own
 * tensors: the twins network checks against the reference above
 * (conv.twins); here, that the kernels are really shared, and that the
 * shared build computes exactly what one function per node computes
 * (gradients, loss, outputs, bit for bit, for a full and a partial batch). */
Test(sharing, equal_shape_layers_share_kernels_and_compute_the_same, .timeout = 240)
{
	const net *nt = &nets[NET_TWINS];
	ir_graph *g = th_build_graph(SRC_PATH, nt->src, true);
	int tables_shared, tables_alone;
	int shared = count_op_functions(g, false, &tables_shared);
	int alone = count_op_functions(g, true, &tables_alone);
	/* conv2/conv3 forward, dx, dW; dense2/dense3 forward, dx, dW at least */
	cr_assert(shared + 6 <= alone, "%d op functions with sharing, %d without", shared, alone);
	cr_assert(tables_shared >= 12 && tables_alone == 0, "offset tables: %d shared, %d without sharing",
		  tables_shared, tables_alone);

	jitted js = jit_program(nt->src, V_FUSED);
	setenv("NNC_SHARE_KERNELS", "0", 1);
	jitted ja = jit_program(nt->src, V_FUSED);
	unsetenv("NNC_SHARE_KERNELS");
	const nnrt_model *m = js.m;
	state s = state_new(js.m), a = state_new(ja.m);
	int64_t pf = m->param_floats, K = m->label_size;
	for (int t = 0; t < 2; t++) {
		int64_t n = nt->ns[t];
		th_fill_params(m, s.params, 800 + (uint64_t)t);
		th_fill_params(ja.m, a.params, 800 + (uint64_t)t);
		th_fill_batch(&s, n, 900 + (uint64_t)t);
		th_fill_batch(&a, n, 900 + (uint64_t)t);
		run(&s, js.m->train_step, n);
		run(&a, ja.m->train_step, n);
		cr_assert(s.metrics[0] == a.metrics[0], "n=%lld: loss %.17g shared, %.17g alone", (long long)n,
			  s.metrics[0], a.metrics[0]);
		for (int64_t e = 0; e < pf; e++)
			cr_assert(!memcmp(&s.grads[e], &a.grads[e], sizeof(float)), "n=%lld: grads[%lld] %.9g shared, %.9g alone",
				  (long long)n, (long long)e, s.grads[e], a.grads[e]);
		for (int64_t few = 1; few <= n; few += n - 1) { /* infer(): the small copy and the batch */
			run(&s, js.m->infer, few);
			run(&a, ja.m->infer, few);
			cr_assert(!memcmp(s.out, a.out, sizeof(float) * (size_t)(few * K)), "n=%lld: infer differs",
				  (long long)few);
		}
	}
	state_free(&s);
	state_free(&a);
	jit_free(&js);
	jit_free(&ja);
}

/* The op function of node `id` in a module lowered from g, as IR text. */
static char *op_function_ir(ir_graph *g, int id, bool naive)
{
	LLVMContextRef ctx = LLVMContextCreate();
	cg_options co = {.opt_level = 2, .naive = naive};
	LLVMModuleRef mod = nnc_lower(g, th_config(g), &co, ctx);
	const char *name = nnc_sprintf("op%d.%s", id, ir_op_name(g->nodes[id].op));
	LLVMValueRef fn = LLVMGetNamedFunction(mod, name);
	cr_assert(fn, "no function %s", name);
	char *ir = LLVMPrintValueToString(fn);
	char *copy = nnc_strdup(ir);
	LLVMDisposeMessage(ir);
	LLVMDisposeModule(mod);
	LLVMContextDispose(ctx);
	return copy;
}

/* Fast or reference is decided in one place (cg.c): with --naive-kernels,
 * and for a convolution's backward pass whose batched operands are not
 * batch-innermost, which the fast kernels (16 samples a vector) cannot
 * take; the reference kernels are scalar. */
Test(dispatch, conv_backward_falls_back_to_the_reference_where_the_fast_kernel_cannot)
{
	ir_graph *g = th_build_graph(SRC_PATH, LENET_SRC(16), true);
	int bx = -1, bw = -1;
	for (int i = 0; i < g->n; i++) {
		if (g->nodes[i].dead)
			continue;
		if (g->nodes[i].op == IR_CONV2D_BWD_X && bx < 0)
			bx = i;
		if (g->nodes[i].op == IR_CONV2D_BWD_W && bw < 0)
			bw = i;
	}
	cr_assert(bx >= 0 && bw >= 0, "no convolution backward pass");
	cr_expect(strstr(op_function_ir(g, bx, false), "<16 x float>"), "conv2d_bwd_x is not the fast kernel");
	cr_expect(!strstr(op_function_ir(g, bx, true), "<16 x float>"), "--naive-kernels: conv2d_bwd_x is vectorised");
	/* the same nodes with sample-major operands (layout only: the code is
	 * generated, not run) */
	g->nodes[g->nodes[bx].in[0]].layout = LAYOUT_NC;
	g->nodes[g->nodes[bw].in[1]].layout = LAYOUT_NC;
	cr_expect(!strstr(op_function_ir(g, bx, false), "<16 x float>"), "conv2d_bwd_x on NC got the fast kernel");
	cr_expect(!strstr(op_function_ir(g, bw, false), "<16 x float>"), "conv2d_bwd_w on NC got the fast kernel");
}
