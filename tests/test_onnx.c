#define _POSIX_C_SOURCE 200809L
/*
 * test_onnx.c - ONNX export and import (docs/onnx.md), checked by real
 * consumers: the ONNX checker of python3-onnx, onnxruntime (the npm package
 * onnxruntime-node, which scripts/onnxruntime.sh installs into build/ort),
 * and PyTorch 1.13's own exports and outputs (tests/fixtures/onnx/, made
 * by make_fixtures.py; PyTorch itself is not needed here).
 *
 * A test whose tool or data is missing is skipped with a line on stderr
 * saying which, never passed silently.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlp.h"
#include "onnx.h"
#include "sh_harness.h"

#define IMAGES "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
#define FIX NNC_SOURCE_DIR "/tests/fixtures/onnx"
/* onnxruntime-node: $NNC_ORT_DIR, else this build's ort/, else build/ort/
 * of the source tree (scripts/onnxruntime.sh's default, which the
 * sanitizer build in build-asan/ shares). */
static const char *ort_modules(void)
{
	const char *env = getenv("NNC_ORT_DIR");
	const char *dirs[3] = {env && *env ? nnc_sprintf("%s/node_modules", env) : NULL,
			       NNC_BINARY_DIR "/ort/node_modules", NNC_SOURCE_DIR "/build/ort/node_modules"};
	for (int i = 0; i < 3; i++)
		if (dirs[i] && access(nnc_sprintf("%s/onnxruntime-node/package.json", dirs[i]), R_OK) == 0)
			return dirs[i];
	return NNC_BINARY_DIR "/ort/node_modules";
}
#define ORT_MODULES ort_modules()

static char dir[256];

static void setup(void)
{
	sh_mktemp(dir, sizeof dir, "onnx");
}

static void teardown(void)
{
	sh_rmtree(dir);
}

TestSuite(onnx_export, .init = setup, .fini = teardown, .timeout = 600);
TestSuite(onnx_import, .init = setup, .fini = teardown, .timeout = 600);

/* ---- What is installed ---- */

static void skip(const char *what)
{
	fprintf(stderr, "test_onnx: SKIPPED (%s)\n", what);
	cr_skip_test("%s", what);
}

static void need_checker(void)
{
	if (sh_run(NULL, "/usr/bin/python3 -c 'import onnx' 2>/dev/null") != 0)
		skip("python3-onnx is not installed: apt-get install python3-onnx");
}

static void need_ort(void)
{
	if (sh_run(NULL, "NODE_PATH='%s' node -e \"require('onnxruntime-node')\" 2>/dev/null", ORT_MODULES) != 0)
		skip("onnxruntime-node is not installed in build/ort: run scripts/onnxruntime.sh");
}

static void need_data(void)
{
	if (access(IMAGES, R_OK) != 0)
		skip("the Fashion-MNIST test images are missing: apt-get install dataset-fashion-mnist");
}

/* ---- Helpers ---- */

static char *run_ok(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *run_ok(const char *what, const char *fmt, ...)
{
	char *out;
	va_list ap;
	va_start(ap, fmt);
	int rc = sh_vrun(&out, fmt, ap);
	va_end(ap);
	cr_assert_eq(rc, 0, "%s failed (%d):\n%s", what, rc, out);
	return out;
}

/* The checker on dir/FILE, and what the file says of itself: "INPUT
 * [dims] OUTPUT [dims] opset NAME". */
static char *checked(const char *file)
{
	return run_ok("the ONNX checker",
		      "cd '%s' && /usr/bin/python3 -c \"import onnx, sys\n"
		      "m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)\n"
		      "d = lambda v: [x.dim_param or x.dim_value for x in v.type.tensor_type.shape.dim]\n"
		      "i, o = m.graph.input[0], m.graph.output[0]\n"
		      "print(i.name, d(i), o.name, d(o), m.opset_import[0].version, m.graph.name)\" '%s'",
		      dir, file);
}

/* onnxruntime on dir/MODEL against dir/PRED (--predict --probabilities
 * lines): the same classes, and all 10 probabilities of every sample
 * within 1e-5. */
static void ort_agrees(const char *model, const char *pred, int count)
{
	char *out = run_ok("onnxruntime", "cd '%s' && NODE_PATH='%s' node '%s/ort_check.js' '%s' '%s' %d '%s' 1e-5", dir,
			   ORT_MODULES, FIX, model, IMAGES, count, pred);
	cr_expect(strstr(out, nnc_sprintf("ok %d samples of 10 values", count)), "%s", out);
	free(out);
}

/* ---- Export ---- */

Test(onnx_export, examples_pass_the_checker_with_names_shapes_and_opset)
{
	need_checker();
	static const struct {
		const char *model, *expect;
	} rows[] = {
		{"mlp", "x ['N', 784] probabilities ['N', 10] 17 mlp"},
		{"lenet", "x ['N', 1, 28, 28] probabilities ['N', 10] 17 lenet"},
		{"resnet", "x ['N', 1, 28, 28] probabilities ['N', 10] 17 resnet"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		free(run_ok("nnc --emit-onnx", "cd '%s' && '%s' '%s/examples/%s.nn' --emit-onnx %s.onnx", dir, NNC_EXE,
			    NNC_SOURCE_DIR, rows[i].model, rows[i].model));
		char *out = checked(nnc_sprintf("%s.onnx", rows[i].model));
		cr_expect(sh_has_line(out, rows[i].expect), "%s: expected '%s', got:\n%s", rows[i].model, rows[i].expect, out);
		free(out);
	}
}

/* Trains an example briefly, exports it with --export-onnx, and runs it in
 * onnxruntime against the binary's --predict on 1,000 test images. */
static void trained_export(const char *model, int limit)
{
	need_data();
	need_checker();
	need_ort();
	free(run_ok("train, export, predict",
		    "cd '%s' && '%s' '%s/examples/%s.nn' -o %s && ./%s --epochs 1 --limit %d --warmup 0 --test-limit 100 --quiet "
		    "--save %s.ckpt && ./%s --load %s.ckpt --export-onnx %s.onnx && ./%s --load %s.ckpt --predict '%s' --probabilities "
		    "> %s.pred",
		    dir, NNC_EXE, NNC_SOURCE_DIR, model, model, model, limit, model, model, model, model, model, model, IMAGES,
		    model));
	free(checked(nnc_sprintf("%s.onnx", model)));
	ort_agrees(nnc_sprintf("%s.onnx", model), nnc_sprintf("%s.pred", model), 1000);
}

Test(onnx_export, trained_mlp_runs_in_onnxruntime) { trained_export("mlp", 2000); }
Test(onnx_export, trained_lenet_runs_in_onnxruntime) { trained_export("lenet", 2000); }
/* batchnorm's running statistics travel too: after a short training they
 * are far from their initial 0 and 1 */
Test(onnx_export, trained_resnet_with_batchnorm_runs_in_onnxruntime) { trained_export("resnet", 1000); }

/* nnc --emit-onnx writes the weights a training run starts from. */
Test(onnx_export, emit_onnx_holds_the_initial_weights)
{
	need_data();
	need_ort();
	free(run_ok("nnc", "cd '%s' && '%s' '%s/examples/mlp.nn' -o mlp && '%s' '%s/examples/mlp.nn' --emit-onnx m0.onnx && "
			   "./mlp --epochs 0 --quiet --save m0.ckpt && ./mlp --load m0.ckpt --predict '%s' --probabilities > m0.pred",
		    dir, NNC_EXE, NNC_SOURCE_DIR, NNC_EXE, NNC_SOURCE_DIR, IMAGES));
	ort_agrees("m0.onnx", "m0.pred", 1000);
}

/* Every op of the language, each activation with its options, in one
 * network: the checker accepts it and onnxruntime computes what nnc does. */
static const char every_op[] =
	"model every_op\n"
	"input x : f32[1, 28, 28]\n"
	"label y : class(10)\n"
	"a = x |> conv2d(4, 3, pad: 1) |> batchnorm(affine: false) |> leaky_relu(alpha: 0.2) |> maxpool(2)\n"
	"b = x |> conv2d(2, [3, 5], stride: [2, 2], pad: [1, 2]) |> elu(alpha: 0.5) |> dropout(0.3)\n"
	"c = concat(a, b) |> avgpool(2) |> softplus\n"
	"d = c |> global_avgpool\n"
	"e = c |> flatten |> dense(16) |> silu |> batchnorm\n"
	"f = e |> dense(6, bias: false) |> gelu\n"
	"g = f |> dense(6) |> gelu(approximate: false)\n"
	"h = concat(d * 2 - 0.5, g - d, g * d |> sigmoid, -g |> tanh, d / 4)\n"
	"logits = h |> dense(10) |> relu\n"
	"output logits |> softmax\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer adam(lr: 0.01)\n"
	"train {\n"
	"  data: idx(\"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz\",\n"
	"            \"/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz\", scale: 1/255)\n"
	"  batch: 32\n"
	"}\n";

Test(onnx_export, every_op_maps_to_standard_onnx)
{
	need_data();
	need_checker();
	need_ort();
	FILE *f = fopen(nnc_sprintf("%s/every_op.nn", dir), "w");
	cr_assert(f);
	fputs(every_op, f);
	fclose(f);
	free(run_ok("train and export", "cd '%s' && '%s' every_op.nn -o every_op && ./every_op --epochs 1 --limit 512 --quiet "
					 "--save e.ckpt && ./every_op --load e.ckpt --export-onnx e.onnx && "
					 "./every_op --load e.ckpt --predict '%s' --probabilities > e.pred",
		    dir, NNC_EXE, IMAGES));
	char *out = checked("e.onnx");
	cr_expect(strstr(out, "x ['N', 1, 28, 28] ") && strstr(out, " ['N', 10] 17 every_op"), "%s", out);
	free(out);
	ort_agrees("e.onnx", "e.pred", 1000);
}

/* The sequence ops (docs/language.md "Sequences") in a small causal
 * transformer: trained briefly, exported, and onnxruntime's per-position
 * probabilities compared with --predict's on 300 token sequences. */
static const char seq_ops[] =
	"model seq_ops\n"
	"input x : token(12)[8]\n"
	"label y : class(12)[8]\n"
	"e = x |> embedding(12, 16) |> positional\n"
	"a = e + (e |> layernorm |> attention(heads: 2, causal: true))\n"
	"m = a + (a |> rmsnorm |> dense(32) |> gelu |> dense(16))\n"
	"b = m + (m |> layernorm(eps: 0.001) |> attention(heads: 4))\n"
	"logits = b |> rmsnorm(eps: 0.01) |> dense(24) |> gelu(approximate: false) |> dense(12)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer adam(lr: 0.01)\n"
	"train {\n"
	"  data: reverse(count: 512)\n"
	"  batch: 32\n"
	"  seed: 3\n"
	"}\n";

/* COUNT sequences of T ids below V into dir/FILE (a CSV line each), from
 * a fixed generator; id V - 1 and 0 appear (the embedding's edge rows). */
static void token_csv(const char *file, int count, int T, int V)
{
	FILE *f = fopen(nnc_sprintf("%s/%s", dir, file), "w");
	cr_assert(f);
	uint64_t r = 12345;
	for (int i = 0; i < count; i++)
		for (int t = 0; t < T; t++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			fprintf(f, "%d%c", (int)((r >> 33) % (uint64_t)V), t == T - 1 ? '\n' : ',');
		}
	fclose(f);
}

static void ort_seq_agrees(const char *model, const char *csv, const char *pred, int count)
{
	char *out = run_ok("onnxruntime", "cd '%s' && NODE_PATH='%s' node '%s/ort_seq_check.js' '%s' '%s' '%s' 1e-5", dir,
			   ORT_MODULES, FIX, model, csv, pred);
	cr_expect(strstr(out, nnc_sprintf("ok %d sequences", count)), "%s", out);
	free(out);
}

Test(onnx_export, sequence_ops_map_to_standard_onnx)
{
	need_checker();
	need_ort();
	FILE *f = fopen(nnc_sprintf("%s/seq_ops.nn", dir), "w");
	cr_assert(f);
	fputs(seq_ops, f);
	fclose(f);
	token_csv("tokens.csv", 300, 8, 12);
	free(run_ok("train and export", "cd '%s' && '%s' seq_ops.nn -o seq_ops && ./seq_ops --epochs 1 --quiet "
					 "--save s.ckpt && ./seq_ops --load s.ckpt --export-onnx s.onnx && "
					 "./seq_ops --load s.ckpt --predict tokens.csv > s.pred",
		    dir, NNC_EXE));
	char *out = checked("s.onnx");
	cr_expect(sh_has_line(out, "x ['N', 8] probabilities ['N', 8, 12] 17 seq_ops"), "%s", out);
	free(out);
	ort_seq_agrees("s.onnx", "tokens.csv", "s.pred", 300);
}

/* examples/reverse.nn, as --emit-onnx writes it (its initial weights). */
Test(onnx_export, reverse_example_runs_in_onnxruntime)
{
	need_checker();
	need_ort();
	token_csv("digits.csv", 300, 8, 10);
	free(run_ok("nnc", "cd '%s' && '%s' '%s/examples/reverse.nn' -o rev && '%s' '%s/examples/reverse.nn' --emit-onnx r.onnx && "
			   "./rev --epochs 0 --quiet --save r.ckpt && ./rev --load r.ckpt --predict digits.csv > r.pred",
		    dir, NNC_EXE, NNC_SOURCE_DIR, NNC_EXE, NNC_SOURCE_DIR));
	char *out = checked("r.onnx");
	cr_expect(sh_has_line(out, "x ['N', 8] probabilities ['N', 8, 10] 17 reverse"), "%s", out);
	free(out);
	ort_seq_agrees("r.onnx", "digits.csv", "r.pred", 300);
}

/* Recurrent layers (docs/onnx.md "lstm, gru"): ONNX's LSTM and GRU nodes
 * hold the gates in another order and the weights transposed, which the
 * runtime writes from nnc's parameters (nnrt_onnx_piece's layout).  After
 * a short training the weights are far from symmetric, so a wrong gate
 * order, transposition or bias split changes the probabilities. */

/* dir/rows_LAYER.nn: LAYER (lstm or gru) row by row over an image, all
 * states into a second one, whose last state the classifier reads.
 * Returns the model's name. */
static const char *rows_program(const char *layer)
{
	const char *name = nnc_sprintf("rows_%s", layer);
	FILE *f = fopen(nnc_sprintf("%s/%s.nn", dir, name), "w");
	cr_assert(f);
	fprintf(f,
		"model %s\ninput x : f32[28, 28]\nlabel y : class(10)\n"
		"logits = x |> %s(24) |> %s(16, sequences: false) |> dense(10)\n"
		"loss softmax_cross_entropy(logits, y)\noptimizer adam(lr: 0.01)\ntrain {\n"
		"  data: idx(\"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz\",\n"
		"            \"/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz\", scale: 1/255)\n"
		"  batch: 32\n}\n",
		name, layer, layer);
	fclose(f);
	return name;
}

/* Row by row over an image (input f32[28, 28]): all states into a second
 * layer, its last state into the classifier; 1,000 test images in
 * onnxruntime give --predict's classes and probabilities. */
Test(onnx_export, trained_recurrent_layers_run_in_onnxruntime)
{
	need_data();
	need_checker();
	need_ort();
	static const char *const layer[2] = {"gru", "lstm"};
	for (int i = 0; i < 2; i++) {
		const char *name = rows_program(layer[i]);
		free(run_ok("train and export",
			    "cd '%s' && '%s' %s.nn -o %s && ./%s --epochs 1 --limit 2000 --warmup 0 --test-limit 100 --quiet "
			    "--save %s.ckpt && ./%s --load %s.ckpt --export-onnx %s.onnx && "
			    "./%s --load %s.ckpt --predict '%s' --probabilities > %s.pred",
			    dir, NNC_EXE, name, name, name, name, name, name, name, name, name, IMAGES, name));
		char *out = checked(nnc_sprintf("%s.onnx", name));
		cr_expect(sh_has_line(out, nnc_sprintf("x ['N', 28, 28] probabilities ['N', 10] 17 %s", name)), "%s", out);
		free(out);
		out = run_ok("the nodes", "cd '%s' && /usr/bin/python3 -c \"import onnx, sys\n"
					  "print(' '.join(n.op_type for n in onnx.load(sys.argv[1]).graph.node))\" %s.onnx",
			     dir, name);
		const char *op = i ? "LSTM" : "GRU";
		cr_expect(strstr(out, nnc_sprintf("Transpose %s Squeeze Transpose Transpose %s Squeeze Gemm Softmax", op, op)),
			  "%s", out);
		free(out);
		ort_agrees(nnc_sprintf("%s.onnx", name), nnc_sprintf("%s.pred", name), 1000);
	}
}

/* examples/charlstm.nn after a few steps on a slice of the fortunes
 * corpus: every probability of every position of 40 token windows. */
Test(onnx_export, trained_charlstm_runs_in_onnxruntime)
{
	need_checker();
	need_ort();
	if (access("/usr/share/games/fortunes", R_OK) != 0)
		skip("the fortunes corpus is missing: apt-get install fortunes");
	token_csv("bytes.csv", 40, 64, 256);
	free(run_ok("train and export",
		    "cd '%s' && '%s' '%s/examples/charlstm.nn' -o lm && ./lm --limit 200 --epochs 1 --quiet --save lm.ckpt && "
		    "./lm --load lm.ckpt --export-onnx lm.onnx && ./lm --load lm.ckpt --predict bytes.csv > lm.pred",
		    dir, NNC_EXE, NNC_SOURCE_DIR));
	char *out = checked("lm.onnx");
	cr_expect(sh_has_line(out, "x ['N', 64] probabilities ['N', 64, 256] 17 charlstm"), "%s", out);
	free(out);
	ort_seq_agrees("lm.onnx", "bytes.csv", "lm.pred", 40);
}

/* The runtime's layouts (nnrt_onnx_piece): a 2 x 6 matrix of three column
 * blocks written with the blocks in the order 2 0 1, as it is and
 * transposed, and a vector of two blocks swapped after it in the same
 * tensor; a layout that does not fit its floats, and a graph of another
 * version, are refused. */
Test(onnx_export, the_runtime_writes_pieces_in_their_layout)
{
	const float params[16] = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23};
	const unsigned char bytes[3] = {'a', 'b', 'c'};
	int64_t perm = 2 | 0 << 4 | 1 << 8;
	nnrt_onnx_piece pieces[3] = {
		{.at = 1, .from = NNRT_ONNX_PARAMS, .offset = 0, .count = 12, .rows = 2, .blocks = 3, .perm = perm},
		{.at = 2, .from = NNRT_ONNX_PARAMS, .offset = 0, .count = 12, .rows = 2, .blocks = 3, .perm = perm, .transpose = 1},
		{.at = 2, .from = NNRT_ONNX_PARAMS, .offset = 12, .count = 4, .rows = 1, .blocks = 2, .perm = 1},
	};
	nnrt_onnx o = {.version = NNRT_ONNX_VERSION, .bytes = bytes, .len = 3, .n_pieces = 3, .pieces = pieces};
	const char *path = nnc_sprintf("%s/p.bin", dir);
	char err[256] = "";
	cr_assert_eq(nnrt_onnx_write(&o, params, NULL, path, err, sizeof err), NNRT_OK, "%s", err);
	const float want[28] = {4, 5, 0, 1, 2, 3, 14, 15, 10, 11, 12, 13,        /* blocks 2 0 1 */
				4, 14, 5, 15, 0, 10, 1, 11, 2, 12, 3, 13,        /* the same, transposed */
				22, 23, 20, 21};                                 /* two blocks swapped */
	unsigned char file[3 + 4 * 28];
	FILE *f = fopen(path, "rb");
	cr_assert(f);
	cr_assert_eq(fread(file, 1, sizeof file + 1, f), sizeof file);
	fclose(f);
	cr_expect(file[0] == 'a' && file[1 + 48] == 'b' && file[sizeof file - 1] == 'c');
	for (int i = 0; i < 28; i++) {
		float v;
		memcpy(&v, file + (i < 12 ? 1 : 2) + 4 * i, 4);
		cr_expect_eq(v, want[i], "float %d: %g, want %g", i, v, want[i]);
	}
	pieces[2].blocks = 3; /* 4 columns in 3 blocks */
	cr_expect_eq(nnrt_onnx_write(&o, params, NULL, path, err, sizeof err), NNRT_ERR_MODEL);
	cr_expect(strstr(err, "malformed"), "%s", err);
	pieces[2].blocks = 2;
	pieces[2].perm = 2; /* block 2 of 2 */
	cr_expect_eq(nnrt_onnx_write(&o, params, NULL, path, err, sizeof err), NNRT_ERR_MODEL);
	pieces[2].perm = 1;
	o.version = 1;
	cr_expect_eq(nnrt_onnx_write(&o, params, NULL, path, err, sizeof err), NNRT_ERR_MODEL);
	cr_expect(strstr(err, "rebuild"), "%s", err);
}

/* An op without an ONNX form (the internal random_uniform, which no .nn
 * syntax reaches) is an error naming it, in the file and at export. */
Test(onnx_export, an_op_without_a_mapping_is_a_clear_error)
{
	static const char prog[] = "model m\ninput x : f32[2]\nlabel y : class(2)\nz = x |> dense(2)\n"
				   "loss softmax_cross_entropy(z, y)\noptimizer sgd(lr: 0.1)\ntrain { data: xor(count: 10) }\n";
	nnc_source src = {.path = "m.nn", .text = prog, .len = (long)strlen(prog)};
	nnc_program *p = nnc_parse(&src);
	nnc_train_config cfg;
	ir_graph *g = p ? nnc_sema(p, &cfg) : NULL;
	cr_assert(g);
	nnc_onnx_model ok;
	nnc_onnx_build(g, &cfg, "m.nn", "test", &ok);
	cr_assert_null(ok.error, "%s", ok.error);
	cr_expect_gt(ok.len, 0);
	int r = ir_add(g, IR_RANDOM, 1, (int[]){g->input});
	cr_assert(ir_infer_shape(g, r));
	g->nodes[r].loc = (nnc_loc){4, 5, 4, 9};
	g->output = r;
	nnc_onnx_model bad;
	nnc_onnx_build(g, &cfg, "m.nn", "test", &bad);
	cr_assert_not_null(bad.error);
	cr_expect_str_eq(bad.error, "m.nn:4:5: the op 'random_uniform' has no ONNX mapping");
}

/* The header's export of an embedded model: a new instance starts from the
 * model's seed, so its file is --emit-onnx's, byte for byte. */
Test(onnx_export, the_header_exports_an_embedded_model)
{
	int err;
	mlp_instance *net = mlp_new(&err);
	cr_assert(net, "mlp_new: %d", err);
	cr_assert_eq(mlp_export_onnx(net, nnc_sprintf("%s/h.onnx", dir)), NNRT_OK, "%s", mlp_error(net));
	cr_expect_eq(mlp_export_onnx(net, nnc_sprintf("%s/no/such/dir/h.onnx", dir)), NNRT_ERR_IO);
	cr_expect(strstr(mlp_error(net), "export_onnx: cannot write"), "%s", mlp_error(net));
	mlp_free(net);
	free(run_ok("nnc --emit-onnx and cmp", "cd '%s' && '%s' '%s/examples/mlp.nn' --emit-onnx e.onnx && cmp e.onnx h.onnx",
		    dir, NNC_EXE, NNC_SOURCE_DIR));
}

Test(onnx_export, export_onnx_needs_a_checkpoint)
{
	char *out;
	free(run_ok("nnc", "cd '%s' && '%s' '%s/examples/moons.nn' -o moons", dir, NNC_EXE, NNC_SOURCE_DIR));
	cr_expect_eq(sh_run(&out, "cd '%s' && ./moons --export-onnx m.onnx", dir), 2);
	cr_expect(strstr(out, "--export-onnx needs --load FILE"), "%s", out);
	free(out);
}

/* --predict --probabilities: every class's value to 9 digits, the class
 * the largest, the same as --predict's; alone, the flag is refused. */
Test(onnx_export, predict_probabilities_prints_every_class)
{
	FILE *f = fopen(nnc_sprintf("%s/points.csv", dir), "w");
	cr_assert(f);
	fputs("x1,x2\n-1.0,0.2\n2.0,0.3\n0.0,0.9\n1.0,-0.4\n0.5,0.25\n", f);
	fclose(f);
	char *one = run_ok("train, predict",
			   "cd '%s' && '%s' '%s/examples/moons.nn' -o moons && ./moons --epochs 2 --quiet --save m.ckpt && "
			   "./moons --load m.ckpt --predict points.csv",
			   dir, NNC_EXE, NNC_SOURCE_DIR);
	char *all = run_ok("predict --probabilities", "cd '%s' && ./moons --load m.ckpt --predict points.csv --probabilities", dir);
	const char *p = one, *q = all;
	int lines = 0;
	for (int idx, cls, idx2, cls2, used; sscanf(p, "%d %d", &idx, &cls) == 2; lines++) {
		double top, v[2];
		char end;
		cr_assert_eq(sscanf(p, "%*d %*d %lf", &top), 1, "%s", one);
		cr_assert_eq(sscanf(q, "%d %d %lf %lf%c%n", &idx2, &cls2, &v[0], &v[1], &end, &used), 5, "%s", all);
		cr_expect(end == '\n', "more than 2 values: %s", all);
		cr_expect_eq(idx2, idx);
		cr_expect_eq(cls2, cls);
		cr_expect_eq(cls, v[1] > v[0], "%s", all);
		cr_expect_float_eq(v[0] + v[1], 1.0, 1e-6, "%s", all);
		cr_expect_float_eq(v[cls], top, 1e-6, "%s\n%s", one, all);
		/* to the 9 digits that give the float back */
		cr_expect(strchr(q, '.') && strcspn(strchr(q, '.'), " \n") > 7, "%s", all);
		p = strchr(p, '\n') + 1;
		q += used;
	}
	cr_expect_eq(lines, 5, "%s", one);
	free(one);
	free(all);
	char *out;
	cr_expect_eq(sh_run(&out, "cd '%s' && ./moons --load m.ckpt --eval --probabilities", dir), 2);
	cr_expect(strstr(out, "--probabilities goes with --predict FILE"), "%s", out);
	free(out);
}

/* ---- Import ---- */

/* PyTorch's outputs as --predict --probabilities lines: "index class
 * v0 ... v9". */
static int torch_reference(const char *name, const char *pred)
{
	FILE *in = fopen(nnc_sprintf("%s/%s.out", FIX, name), "r");
	FILE *out = fopen(nnc_sprintf("%s/%s", dir, pred), "w");
	cr_assert(in && out);
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof line, in)) {
		if (line[0] == '#')
			continue;
		char *p = line;
		int best = 0;
		double v[10];
		for (int k = 0; k < 10; k++) {
			v[k] = strtod(p, &p);
			if (v[k] > v[best])
				best = k;
		}
		fprintf(out, "%d %d", n++, best);
		for (int k = 0; k < 10; k++)
			fprintf(out, " %.9g", v[k]);
		fprintf(out, "\n");
	}
	fclose(in);
	fclose(out);
	return n;
}

/* nnc's --predict --probabilities lines of dir/A against those of dir/B:
 * the same class, all 10 values within 1e-5, on the first n samples. */
static void same_predictions(const char *a, const char *b, int n)
{
	FILE *fa = fopen(nnc_sprintf("%s/%s", dir, a), "r"), *fb = fopen(nnc_sprintf("%s/%s", dir, b), "r");
	cr_assert(fa && fb);
	double maxd = 0;
	for (int i = 0; i < n; i++) {
		long ia, ib, ca, cb;
		cr_assert_eq(fscanf(fa, "%ld %ld", &ia, &ca), 2, "%s: line %d", a, i);
		cr_assert_eq(fscanf(fb, "%ld %ld", &ib, &cb), 2, "%s: line %d", b, i);
		cr_assert_eq(ca, cb, "sample %d: class %ld in %s, %ld in %s", i, ca, a, cb, b);
		for (int k = 0; k < 10; k++) {
			double pa, pb;
			cr_assert_eq(fscanf(fa, "%lf", &pa), 1, "%s: line %d, value %d", a, i, k);
			cr_assert_eq(fscanf(fb, "%lf", &pb), 1, "%s: line %d, value %d", b, i, k);
			maxd = fmax(maxd, fabs(pa - pb));
		}
		int ea = fgetc(fa), eb = fgetc(fb);
		cr_assert(ea == '\n' && eb == '\n', "sample %d: more than 10 values in %s or %s", i, a, b);
	}
	cr_expect_leq(maxd, 1e-5, "largest difference %g", maxd);
	fclose(fa);
	fclose(fb);
}

/* Imports a PyTorch fixture, compiles it and predicts with the imported
 * weights: PyTorch's outputs within 1e-5; then exports it again and runs
 * that in onnxruntime: the same outputs. */
static void torch_import(const char *name)
{
	need_data();
	free(run_ok("nnc import, compile, predict",
		    "cd '%s' && '%s' import '%s/%s.onnx' -o %s.nn && '%s' %s.nn -o %s && ./%s --load %s.ckpt --predict '%s' "
		    "--probabilities | head -200 > %s.pred",
		    dir, NNC_EXE, FIX, name, name, NNC_EXE, name, name, name, name, IMAGES, name));
	int n = torch_reference(name, "torch.pred");
	cr_assert_eq(n, 200);
	same_predictions(nnc_sprintf("%s.pred", name), "torch.pred", n);
	/* the round trip: nnc's export of the imported model */
	need_ort();
	free(run_ok("--export-onnx", "cd '%s' && ./%s --load %s.ckpt --export-onnx rt.onnx", dir, name, name));
	ort_agrees("rt.onnx", "torch.pred", n);
}

Test(onnx_import, pytorch_lenet_computes_what_pytorch_does) { torch_import("torch_lenet"); }
Test(onnx_import, pytorch_resnet_computes_what_pytorch_does) { torch_import("torch_resnet"); }

/* The small ResNet's four residual blocks, two of each structure, are
 * two blocks called twice each with their filters and strides; the calls
 * are named after PyTorch's modules, so the layers' names (and the
 * checkpoint's) are those of the expanded program; torch_import above
 * checks the outputs and the round trip of this program. */
Test(onnx_import, repeated_sub_graphs_become_blocks)
{
	need_data();
	free(run_ok("nnc import", "cd '%s' && '%s' import '%s/torch_resnet.onnx' -o res.nn", dir, NNC_EXE, FIX));
	char *nn = run_ok("cat", "cat '%s/res.nn'", dir);
	static const char *lines[] = {
		"block block_1(x, filters) {",
		"    |> conv2d(filters, [3, 3], stride: 1, pad: [1, 1], name: \"conv1\")",
		"  return conv2_conv + x |> relu",
		"block block_2(x, filters, stride) {",
		"    |> conv2d(filters, [3, 3], stride: stride, pad: [1, 1], name: \"conv1\")",
		"  short_short_0_conv = x |> conv2d(filters, [1, 1], stride: stride, pad: [0, 0], name: \"short.short.0\")",
		"  |> block_1(filters: 8, name: \"block1\")",
		"  |> block_2(filters: 16, stride: 2, name: \"block2\")",
		"  |> block_1(filters: 16, name: \"block3\")",
		"  |> block_2(filters: 24, stride: 1, name: \"block4\")",
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
		cr_expect(sh_has_line(nn, lines[i]), "no line '%s' in:\n%s", lines[i], nn);
	free(nn);
	char *params = run_ok("compile, print the parameters",
			      "cd '%s' && '%s' res.nn -o res && ./res --load res.ckpt --print-params --epochs 0 --quiet | "
			      "grep -c '^  block[1-4]\\.'",
			      dir, NNC_EXE);
	cr_expect_eq(atoi(params), 2 * 4 + 2 * 6, "block1..4's weights and biases: %s", params);
	free(params);
}

/* nnc import of FIX/FILE.onnx (a graph of 6 inputs and 4 scores) into
 * NAME.nn, compiled, predicting 50 rows of random inputs drawn from seed;
 * the program's text (malloc'd), having checked that its scores are
 * onnxruntime's from the file to 1e-5. */
static char *import_and_match_onnxruntime(const char *file, const char *name, uint64_t seed)
{
	FILE *f = fopen(nnc_sprintf("%s/%s.csv", dir, name), "w");
	cr_assert(f);
	for (int i = 0; i < 50; i++)
		for (int k = 0; k < 6; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			fprintf(f, "%.4f%c", (double)(seed >> 40) / (1 << 24) * 4 - 2, k == 5 ? '\n' : ',');
		}
	fclose(f);
	free(run_ok("import, compile, predict",
		    "cd '%s' && '%s' import '%s/%s.onnx' -o %s.nn && '%s' %s.nn -o %s && ./%s --load %s.ckpt --predict "
		    "%s.csv --probabilities | awk '{$2 = \"\"; print}' > %s.pred",
		    dir, NNC_EXE, FIX, file, name, NNC_EXE, name, name, name, name, name, name));
	char *out = run_ok("onnxruntime", "cd '%s' && NODE_PATH='%s' node '%s/ort_seq_check.js' '%s/%s.onnx' %s.csv "
					  "%s.pred 1e-5",
			   dir, ORT_MODULES, FIX, FIX, file, name, name);
	cr_expect(strstr(out, "ok 50 sequences of 6, 4 values each"), "%s: %s", file, out);
	free(out);
	return run_ok("cat", "cat '%s/%s.nn'", dir, name);
}

/* make_bad.py's residual MLP: three scopes /b1 /b2 /b3 of one structure,
 * the third of 8 units, are one block b(x, units); the program computes
 * what onnxruntime computes from the file (all 4 scores of 50 rows).  The
 * same graph with its Gemms named after the scope alone (no layer name
 * under the call) is imported expanded: found while writing it, the first
 * pass crashed on such a scope. */
Test(onnx_import, a_residual_mlp_becomes_one_block)
{
	need_ort();
	char *nn = import_and_match_onnxruntime("blocks_mlp", "bm", 7);
	static const char *lines[] = {
		"block b(x, units) {",
		"    |> dense(units, bias: false, name: \"fc1\")",
		"    |> dense(6, bias: false, name: \"fc2\")",
		"  return fc2_gemm + x",
		"  |> b(units: 6, name: \"b1\")",
		"  |> b(units: 6, name: \"b2\")",
		"  |> b(units: 8, name: \"b3\")",
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
		cr_expect(sh_has_line(nn, lines[i]), "no line '%s' in:\n%s", lines[i], nn);
	free(nn);
	free(run_ok("import, compile", "cd '%s' && '%s' import '%s/blocks_unnamed.onnx' -o bu.nn && '%s' bu.nn -o bu", dir,
		    NNC_EXE, FIX, NNC_EXE));
	nn = run_ok("cat", "cat '%s/bu.nn'", dir);
	cr_expect(!strstr(nn, "block ") && sh_has_line(nn, "  |> dense(6, bias: false, name: \"b1.gemm_1\")"), "%s", nn);
	free(nn);
}

/* A value read under several names (Identity of Identity, Flatten of a
 * vector), each name read once: the program reads the value as often
 * (an internal error of nnc import before), and computes what onnxruntime
 * computes from the file. */
Test(onnx_import, a_value_read_through_aliases)
{
	need_ort();
	char *nn = import_and_match_onnxruntime("alias_reads", "ar", 11);
	cr_expect(sh_has_line(nn, "add = fc2_2 + fc1_2") && sh_has_line(nn, "logits = add * add |> dense(4, bias: false, name: \"fc3\")"),
		  "%s", nn);
	free(nn);
}

/* A block is named after its scopes without their number, unless that
 * is a name sema keeps (a loss: mse) or the program's top level takes
 * (the input x). */
Test(onnx_import, block_names_avoid_builtin_and_top_level_names)
{
	static const struct {
		const char *file, *lines[3];
	} rows[] = {
		{"blocks_mse", {"block mse_1(x, units) {", "  |> mse_1(units: 6, name: \"mse_1\")",
				"  |> mse_1(units: 8, name: \"mse\")"}},
		{"blocks_x", {"input  x : f32[6]", "block x_block(x, units) {", "  |> x_block(units: 6, name: \"x1\")"}},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		free(run_ok("import, compile", "cd '%s' && '%s' import '%s/%s.onnx' -o m.nn --force && '%s' m.nn -o m", dir,
			    NNC_EXE, FIX, rows[i].file, NNC_EXE));
		char *nn = run_ok("cat", "cat '%s/m.nn'", dir);
		for (int k = 0; k < 3; k++)
			cr_expect(sh_has_line(nn, rows[i].lines[k]), "%s: no line '%s' in:\n%s", rows[i].file, rows[i].lines[k], nn);
		free(nn);
	}
}

/* The program is one a person would write: a pipeline, named layers, the
 * default training part with its comment; and it trains on. */
Test(onnx_import, the_program_is_readable_and_trains_on)
{
	need_data();
	free(run_ok("nnc import", "cd '%s' && '%s' import '%s/torch_lenet.onnx' -o lenet.nn", dir, NNC_EXE, FIX));
	char *nn = run_ok("cat", "cat '%s/lenet.nn'", dir);
	static const char *lines[] = {
		"model lenet",
		"input  x : f32[1, 28, 28]",
		"label  y : class(10)",
		"logits = x",
		"  |> conv2d(6, [5, 5], stride: [1, 1], pad: [0, 0], name: \"conv1\")",
		"  |> maxpool(size: [2, 2], stride: [2, 2])",
		"  |> dense(64, name: \"fc1\")",
		"  |> batchnorm(momentum: 0.1, eps: 1e-05, name: \"bn\")",
		"# nnc import wrote the training part below with defaults: edit the loss, the optimizer",
		"loss      softmax_cross_entropy(logits, y)",
		"optimizer sgd(lr: 0.01, momentum: 0.9)",
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
		cr_expect(sh_has_line(nn, lines[i]), "no line '%s' in:\n%s", lines[i], nn);
	free(nn);
	char *out = run_ok("compile, eval, train on",
			   "cd '%s' && '%s' lenet.nn -o lenet && ./lenet --load lenet.ckpt --eval --test-limit 300 && "
			   "./lenet --load lenet.ckpt --epochs 1 --limit 512 --test-limit 100 --quiet --save more.ckpt",
			   dir, NNC_EXE);
	cr_expect(strstr(out, "test_loss"), "%s", out);
	free(out);
}

/* nnc's own export comes back: the ResNet (BatchNormalization, Softmax at
 * the end) imported and compiled predicts what the original does, with
 * its two projection blocks as one block. */
Test(onnx_import, an_nnc_export_imports_back_to_the_same_model)
{
	need_data();
	free(run_ok("train, export, import, compile",
		    "cd '%s' && '%s' '%s/examples/resnet.nn' -o resnet && ./resnet --epochs 1 --limit 500 --warmup 0 --test-limit 100 "
		    "--quiet --save r.ckpt && ./resnet --load r.ckpt --export-onnx r.onnx && ./resnet --load r.ckpt "
		    "--predict '%s' --probabilities | head -300 > a.pred && '%s' import r.onnx -o back.nn && '%s' back.nn -o back && "
		    "./back --load back.ckpt --predict '%s' --probabilities | head -300 > b.pred",
		    dir, NNC_EXE, NNC_SOURCE_DIR, IMAGES, NNC_EXE, NNC_EXE, IMAGES));
	same_predictions("a.pred", "b.pred", 300);
	char *nn = run_ok("cat", "cat '%s/back.nn'", dir);
	cr_expect(strstr(nn, "batchnorm(momentum: 0.1, eps: 1e-05, name: \"residual1.batchnorm1\")"), "%s", nn);
	/* residual2 and residual3 (projections, 32 and 64 filters) are one block:
	 * the run of each scope takes in its unscoped addition and relu */
	cr_expect(sh_has_line(nn, "block residual(x, filters) {") &&
			  sh_has_line(nn, "  |> residual(filters: 32, name: \"residual2\")") &&
			  sh_has_line(nn, "  |> residual(filters: 64, name: \"residual3\")") &&
			  sh_has_line(nn, "  return batchnorm2_2 + batchnorm3_2 |> relu"),
		  "%s", nn);
	cr_expect(!strstr(nn, "\noutput "), "a Softmax at the end is the default output:\n%s", nn);
	free(nn);
}

/* nnc's LSTM and GRU exports come back as lstm and gru layers (the
 * Transposes and Squeezes around the ONNX nodes vanish), with their
 * weights in nnc's layout and gate order: trained briefly, exported,
 * imported and compiled, they predict what the original does; exported
 * again, they write the same ONNX file. */
Test(onnx_import, recurrent_layers_import_back_to_the_same_model)
{
	need_data();
	static const char *const layer[2] = {"gru", "lstm"};
	for (int i = 0; i < 2; i++) {
		const char *name = rows_program(layer[i]);
		free(run_ok("train, export, import, compile, predict",
			    "cd '%s' && '%s' %s.nn -o %s && ./%s --epochs 1 --limit 1000 --warmup 0 --test-limit 100 --quiet "
			    "--save a.ckpt && ./%s --load a.ckpt --export-onnx a.onnx && ./%s --load a.ckpt --predict '%s' "
			    "--probabilities | head -300 > a.pred && '%s' import a.onnx -o back.nn --force && '%s' back.nn -o back && "
			    "./back --load back.ckpt --predict '%s' --probabilities | head -300 > b.pred && "
			    "./back --load back.ckpt --export-onnx b.onnx",
			    dir, NNC_EXE, name, name, name, name, name, IMAGES, NNC_EXE, NNC_EXE, IMAGES));
		same_predictions("a.pred", "b.pred", 300);
		char *nn = run_ok("cat", "cat '%s/back.nn'", dir);
		cr_expect(sh_has_line(nn, nnc_sprintf("  |> %s(24, name: \"%s1\")", layer[i], layer[i])) &&
				  sh_has_line(nn, nnc_sprintf("  |> %s(16, sequences: false, name: \"%s2\")", layer[i], layer[i])),
			  "%s", nn);
		free(nn);
		/* the same weights in the same places: the files differ in the
		 * model's name and doc strings only, the tensors are equal */
		free(run_ok("the two exports' tensors",
			    "cd '%s' && /usr/bin/python3 -c \"import onnx, sys\n"
			    "a, b = (onnx.load(f).graph for f in sys.argv[1:])\n"
			    "assert [(t.name, t.raw_data) for t in a.initializer] == [(t.name, t.raw_data) for t in b.initializer]\n"
			    "assert [n.op_type for n in a.node] == [n.op_type for n in b.node]\" a.onnx b.onnx",
			    dir));
	}
}

/* An LSTM or GRU nnc's layers cannot express is listed with the reason:
 * nnc's export edited (n: the first LSTM or GRU node; put(name, value)
 * sets an attribute). */
Test(onnx_import, recurrent_nodes_nnc_cannot_express_are_listed)
{
	need_checker();
	static const struct {
		const char *layer, *edit, *message;
	} rows[] = {
		{"gru", "put('linear_before_reset', 0)",
		 "1 node nnc cannot import: 'GRU' (node 'gru1': one forward direction, the default activations, no clip, "
		 "layout 0 and linear_before_reset 1 (the reset gate times h W_hn + b_hn, as nnc's gru))"},
		{"lstm", "put('direction', 'reverse')",
		 "1 node nnc cannot import: 'LSTM' (node 'lstm1': one forward direction, the default activations, no clip, "
		 "input_forget 0 and layout 0)"},
		/* X not the time-major view: x itself ([N, T, d], batch first) */
		{"lstm", "n.input[0] = 'x'",
		 "1 node nnc cannot import: 'LSTM' (node 'lstm1': X must be a [T, d] sequence transposed to [T, N, d] "
		 "(Transpose 1, 0, 2))"},
		/* the time-major view read by something else than the layer */
		{"gru", "[g for g in m.graph.node if g.op_type == 'Gemm'][0].input[0] = m.graph.node[0].output[0]",
		 "1 node nnc cannot import: 'Gemm' (node 'dense1': a time-major value of the detour around an LSTM or GRU "
		 "(nnc's sequences are batch first))"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const char *name = rows_program(rows[i].layer);
		free(run_ok("export and edit",
			    "cd '%s' && rm -f a.onnx && '%s' %s.nn --emit-onnx a.onnx && /usr/bin/python3 -c \"import onnx, onnx.helper\n"
			    "m = onnx.load('a.onnx'); n = [n for n in m.graph.node if n.op_type in ('LSTM', 'GRU')][0]\n"
			    "def put(name, v):\n"
			    "    [n.attribute.remove(x) for x in [x for x in n.attribute if x.name == name]]\n"
			    "    n.attribute.append(onnx.helper.make_attribute(name, v))\n"
			    "%s\n"
			    "onnx.save(m, 'bad.onnx')\"",
			    dir, NNC_EXE, name, rows[i].edit));
		char *out;
		int rc = sh_run(&out, "cd '%s' && '%s' import bad.onnx -o bad.nn --force 2>&1", dir, NNC_EXE);
		cr_expect_eq(rc, 1, "%s", out);
		cr_expect(strstr(out, nnc_sprintf("bad.onnx: error: %s", rows[i].message)), "row %zu: %s", i, out);
		cr_expect(access(nnc_sprintf("%s/bad.nn", dir), F_OK) != 0, "bad.nn written");
		free(out);
	}
}

/* Bad files: one clear message naming the field or node, exit 1; nothing
 * written. */
Test(onnx_import, bad_files_get_clear_errors)
{
	cr_assert_eq(sh_run(NULL, "cd '%s' && printf 'not a model at all' > garbage.onnx && head -c 4000 '%s/torch_lenet.onnx' "
				  "> truncated.onnx && : > empty.onnx",
			    dir, FIX),
		     0);
	static const struct {
		const char *file, *message;
	} rows[] = {
		{"garbage.onnx", "garbage.onnx: error: not an ONNX model: the protobuf does not parse (a malformed or truncated file)"},
		{"truncated.onnx", "truncated.onnx: error: not an ONNX model: the protobuf does not parse (a malformed or truncated file)"},
		{"empty.onnx", "empty.onnx: error: field 'graph' is missing"},
		{FIX "/bad_opset.onnx", "bad_opset.onnx: error: field 'opset_import': ai.onnx opset 99; nnc imports ai.onnx opsets 7 to 21"},
		{FIX "/bad_dynamic.onnx", "bad_dynamic.onnx: error: graph input 'x': dimension 2 is dynamic ('H'); nnc needs static "
					  "sizes for everything but the batch (dimension 0)"},
		{FIX "/bad_external.onnx", "bad_external.onnx: error: tensor 'fc.weight' (read by node 'fc') keeps its data in an "
					   "external file (data_location EXTERNAL); nnc import reads only weights stored in the model file"},
		{FIX "/bad_ops.onnx", "bad_ops.onnx: error: 2 nodes nnc cannot import: 'Resize' (node 'up1'), 'Hardmax' (node 'hard')"},
		/* found by fuzz_onnx: a Gemm of 0 outputs (its float_data field empty) */
		{FIX "/bad_empty_weight.onnx", "bad_empty_weight.onnx: error: tensor 'fc.weight' (read by node 'fc') is empty: one "
					       "of its dims is 0"},
		/* found by fuzz_onnx: a node reading a Softmax's result failed an internal assertion */
		{FIX "/bad_softmax_inside.onnx", "bad_softmax_inside.onnx: error: 1 node nnc cannot import: 'Tanh' (node 'fc': an "
						 "input computed by a Softmax (nnc import takes a Softmax only as the last node))"},
		/* the block detection's first pass is silent: the second reports, once */
		{FIX "/bad_block_op.onnx", "bad_block_op.onnx: error: 1 node nnc cannot import: 'Resize' (node '/b2/Resize')"},
		/* found by mutating the seeds: a scope's exit computed from an unimportable node failed an assertion */
		{FIX "/bad_block_cut.onnx", "bad_block_cut.onnx: error: 1 node nnc cannot import: 'Resize' (node '/b2/Resize')"},
		/* found by fuzz_onnx: a scope that reads a value and then writes it again crashed the block detection */
		{FIX "/bad_rewrite.onnx", "bad_rewrite.onnx: error: node '/b2/Add' writes '/b1/out', which is already defined"},
		/* found by fuzz_onnx: Flatten and Tanh alone imported as a program sema refuses */
		{FIX "/bad_no_weights.onnx", "bad_no_weights.onnx: error: the graph has no weights (no Conv, Gemm, MatMul or "
					     "BatchNormalization with initializers); nnc import makes networks with parameters to train"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *out;
		int rc = sh_run(&out, "cd '%s' && '%s' import '%s' -o out.nn", dir, NNC_EXE, rows[i].file);
		cr_expect_eq(rc, 1, "%s: exit %d:\n%s", rows[i].file, rc, out);
		cr_expect(strstr(out, rows[i].message), "%s: expected\n%s\ngot\n%s", rows[i].file, rows[i].message, out);
		const char *again = strstr(out, "error:");
		cr_expect(again && !strstr(again + 1, "error:"), "%s: more than one error:\n%s", rows[i].file, out);
		cr_expect_eq(access(nnc_sprintf("%s/out.nn", dir), F_OK), -1, "%s: out.nn written", rows[i].file);
		free(out);
	}
}

Test(onnx_import, command_line_errors_exit_2)
{
	static const struct {
		const char *args, *message;
	} rows[] = {
		{"", "no input file"},
		{"a.onnx b.onnx", "more than one input file ('b.onnx')"},
		{"a.onnx --frobnicate", "unknown option '--frobnicate'"},
		{"a.onnx -o", "-o needs an argument"},
		{"a.onnx --name 9lives", "--name '9lives' is not an identifier"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *out;
		int rc = sh_run(&out, "cd '%s' && '%s' import %s", dir, NNC_EXE, rows[i].args);
		cr_expect_eq(rc, 2, "'%s': exit %d:\n%s", rows[i].args, rc, out);
		cr_expect(strstr(out, rows[i].message), "'%s': %s", rows[i].args, out);
		free(out);
	}
}
