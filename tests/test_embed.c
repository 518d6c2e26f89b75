#define _DEFAULT_SOURCE /* mkdtemp, popen, mmap's MAP_ANONYMOUS */
/*
 * test_embed.c - networks embedded in a C program through `nnc -c`.
 *
 * This program links four model objects compiled by nnc_add_model() (see
 * embed.cmake): moons, moons again with --inference-only as moons_inf, mlp and
 * linear, and uses them only through their generated headers.  The tests:
 *
 *   header      what -c writes beside the object, --header, flag errors
 *   predictions the embedded model predicts exactly what the training binary
 *               predicts from the same checkpoint (moons; mlp on Fashion-MNIST)
 *   training    an instance trains bit for bit like the training binary, also
 *               with a recipe (schedule, warmup, momentum cycling, accumulate,
 *               clipping) once it is told the run's layout (_set_run)
 *   inference   --inference-only: no backward symbols, a smaller object, the
 *               same predictions; inference on any n, reading only n rows
 *   instances   two instances stay independent, interleaved and in two
 *               threads at once; an instance in the caller's memory
 *   API         parameters by name, errors as codes
 *   installed   `cmake --install` into a temporary prefix: nnc links programs
 *               from there, tests/downstream and examples/embed build with
 *               CMake (find_package(nnc)) and with make + pkg-config, and run
 */
#include <criterion/criterion.h>
#include <ctype.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "linear.h"
#include "mlp.h"
#include "moons.h"
#include "moons_inf.h"
#include "recipe.h"
#include "nnrt_internal.h"
#include "sh_harness.h"

#define FASHION_TEST_IMAGES "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

static char tmpdir[256];

static void setup(void)
{
	sh_mktemp(tmpdir, sizeof tmpdir, "embed");
}

static void teardown(void)
{
	sh_rmtree(tmpdir);
}

TestSuite(embed, .init = setup, .fini = teardown, .timeout = 300);

/* ---- helpers ---- */


/* Runs a command that must succeed; returns its output. */
static char *must(const char *what, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	char *out;
	int rc = sh_run(&out, "%s", cmd);
	cr_assert_eq(rc, 0, "%s failed (exit %d): %s\n%s", what, rc, cmd, out);
	return out;
}

static char *path(const char *name)
{
	static char buf[8][512];
	static int k;
	char *p = buf[k++ % 8];
	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

static char *read_text(const char *file)
{
	FILE *f = fopen(file, "rb");
	cr_assert_not_null(f, "cannot open %s", file);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = 0;
	fclose(f);
	return s;
}

static void write_text(const char *file, const char *text)
{
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static long file_size(const char *file)
{
	struct stat st;
	cr_assert_eq(stat(file, &st), 0, "no file %s", file);
	return (long)st.st_size;
}

static int have_fashion(void)
{
	return access(FASHION_TEST_IMAGES, R_OK) == 0;
}

/* Compiles examples/NAME.nn with the build tree's nnc into tmpdir/NAME. */
static void compile_example(const char *name)
{
	free(must("nnc", "'%s' '%s/examples/%s.nn' -o '%s'", NNC_EXE, NNC_SOURCE_DIR, name, path(name)));
}

/* A labelled data set as plain arrays. */
typedef struct data {
	int64_t n;
	float *x;     /* [n][input_size] */
	int32_t *y;   /* [n] class labels */
	nnrt_dataset d;
} data;

/* Loads `spec` through the runtime's own loaders, as a training binary would. */
static data load(const nnrt_model *m, const nnrt_data_spec *spec)
{
	data r = {0};
	cr_assert_eq(nnrt_data_load(&r.d, m, spec, "test data", 0, 1), 0, "%s", nnrt_last_error());
	r.n = r.d.n;
	r.x = malloc((size_t)(r.n * m->input_size) * sizeof(float));
	r.y = malloc((size_t)r.n * sizeof(int32_t));
	int64_t *idx = malloc((size_t)r.n * sizeof(int64_t));
	for (int64_t i = 0; i < r.n; i++)
		idx[i] = i;
	nnrt_data_gather(&r.d, idx, r.n, r.x, r.y);
	free(idx);
	return r;
}

static data moons_set(int64_t count, int64_t seed, int flip)
{
	nnrt_data_spec spec = moons_model.train;
	spec.count = count;
	spec.seed = seed;
	data r = load(&moons_model, &spec);
	for (int64_t i = 0; flip && i < r.n; i++)
		r.y[i] = 1 - r.y[i];
	return r;
}

static void data_free(data *d)
{
	free(d->x);
	free(d->y);
	nnrt_data_free(&d->d);
}

/* `epochs` passes over d in order, batch after batch. */
static void train_moons(moons_instance *net, const data *d, int epochs)
{
	for (int e = 0; e < epochs; e++)
		for (int64_t b = 0; b < d->n; b += MOONS_BATCH) {
			int64_t n = d->n - b < MOONS_BATCH ? d->n - b : MOONS_BATCH;
			float loss;
			cr_assert_eq(moons_train_step(net, d->x + b * MOONS_INPUT_SIZE, d->y + b, n, &loss), NNRT_OK, "%s",
				     moons_error(net));
		}
}

static int same_params(const float *a, const float *b, int64_t n)
{
	return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

/* The lines a training binary's --predict prints for softmax outputs. */
static char *predict_lines(const float *out, int64_t n, int64_t k)
{
	size_t cap = (size_t)n * 48 + 1, len = 0;
	char *s = malloc(cap);
	s[0] = 0;
	for (int64_t i = 0; i < n; i++) {
		const float *o = out + i * k;
		int64_t best = 0;
		for (int64_t j = 1; j < k; j++)
			if (o[j] > o[best])
				best = j;
		len += (size_t)snprintf(s + len, cap - len, "%lld %lld %.6f\n", (long long)i, (long long)best, o[best]);
	}
	return s;
}

/* Compares two texts line by line, naming the first difference. */
static void expect_same_lines(const char *want, const char *got, const char *what)
{
	int line = 1;
	const char *a = want, *b = got;
	while (*a && *b) {
		size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
		cr_assert(la == lb && !strncmp(a, b, la), "%s: line %d differs:\n  binary:   %.*s\n  embedded: %.*s", what,
			  line, (int)la, a, (int)lb, b);
		a += la + (a[la] == '\n');
		b += lb + (b[lb] == '\n');
		line++;
	}
	cr_assert(!*a && !*b, "%s: %s has more lines (from line %d)", what, *a ? "the binary" : "the embedded model",
		  line);
}

/* ---- the header ---- */

Test(embed, c_writes_the_object_and_a_header_beside_it)
{
	free(must("nnc -c", "'%s' '%s/examples/moons.nn' -c -o '%s'", NNC_EXE, NNC_SOURCE_DIR, path("moons.o")));
	cr_assert_gt(file_size(path("moons.o")), 0);
	char *h = read_text(path("moons.h"));
	const char *want[] = {
		"C API of the network 'moons'",
		"input      x : f32[2]",
		"label      class(2): one int32_t per sample",
		"output     class probabilities",
		"parameters 354 learnable floats in 6 tensors",
		"dense1.weight      [2, 16]",
		"training   compiled in",
		"-lnnrt -fopenmp -lz -lm",
		"THREADS AND OWNERSHIP",
		"#define MOONS_INPUT_SIZE 2\n",
		"#define MOONS_OUTPUT_SIZE 2\n",
		"#define MOONS_BATCH 32 ",
		"#define MOONS_PARAM_COUNT 354 ",
		"#define MOONS_TRAINING 1 ",
		"#define MOONS_P_DENSE3_BIAS 5 ",
		"static inline int moons_train_step(moons_instance *net, const float *x, const int32_t *y",
		"static inline moons_instance *moons_new_in(void *mem, size_t size, int *err)",
		"static inline int moons_load(moons_instance *net, const char *path)",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_expect(strstr(h, want[i]), "the header lacks \"%s\"", want[i]);
	char mem[64];
	snprintf(mem, sizeof mem, "#define MOONS_MEMORY_SIZE %zuu ", nnrt_instance_memory_size(&moons_model));
	cr_expect(strstr(h, mem), "the header lacks \"%s\"", mem);
	free(h);

	/* --header, the other emitters, and the inference-only variant */
	free(must("nnc --header", "'%s' '%s/examples/moons.nn' -c --inference-only --prefix m2 -o '%s' --header '%s'",
		  NNC_EXE, NNC_SOURCE_DIR, path("obj.o"), path("api.h")));
	h = read_text(path("api.h"));
	cr_expect(strstr(h, "training   NOT compiled in"));
	cr_expect(strstr(h, "#define M2_TRAINING 0 "));
	cr_expect(!strstr(h, "m2_train_step"));
	cr_expect(strstr(h, "static inline int m2_infer(m2_instance *net"));
	free(h);
	cr_expect_eq(access(path("obj.h"), F_OK), -1, "--header given, yet obj.h was written too");
	free(must("nnc -S", "cd '%s' && '%s' '%s/examples/moons.nn' -S && grep -q moons_model moons.s", tmpdir, NNC_EXE,
		  NNC_SOURCE_DIR));
	free(must("nnc --emit-llvm", "cd '%s' && '%s' '%s/examples/moons.nn' --emit-llvm --header ll.h && "
		  "grep -q '@moons_model = ' moons.ll && test -s ll.h", tmpdir, NNC_EXE, NNC_SOURCE_DIR));
	free(must("nnc --emit-dot", "'%s' '%s/examples/moons.nn' --emit-dot | grep -q digraph", NNC_EXE, NNC_SOURCE_DIR));

	/* the header is C++ too */
	if (sh_run(NULL, "command -v c++") == 0)
		free(must("c++", "cd '%s' && printf '#include \"moons.h\"\\nint main() { return moons_new(nullptr) ? 0 : 1; }\\n' "
			  "> u.cpp && c++ -std=c++17 -Wall -Wextra -Wpedantic -Wold-style-cast -Werror -I'%s/runtime' -c u.cpp",
			  tmpdir, NNC_SOURCE_DIR));
}

Test(embed, header_flags_are_checked)
{
	struct {
		const char *flags, *message;
	} rows[] = {
		{"--header x.h", "--header goes with -c, -S or --emit-llvm"},
		{"-c --prefix 9lives", "--prefix '9lives' is not a C identifier"},
		{"-c --prefix a-b", "--prefix 'a-b' is not a C identifier"},
		{"-c --header", "--header needs an argument"},
		{"--stats --chunks 0", "--chunks needs a number from 1 to 256, not '0'"},
		{"--stats --chunks 2x", "--chunks needs a number from 1 to 256, not '2x'"},
		{"--stats --chunks", "--chunks needs an argument"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *out;
		int rc = sh_run(&out, "cd '%s' && '%s' '%s/examples/moons.nn' %s", tmpdir, NNC_EXE, NNC_SOURCE_DIR,
			     rows[i].flags);
		cr_expect_eq(rc, 2, "nnc %s: exit %d", rows[i].flags, rc);
		cr_expect(strstr(out, rows[i].message), "nnc %s said:\n%s", rows[i].flags, out);
		free(out);
	}
}

/* A small classifier whose two dense layers are called `first` and `second`
 * (a `name:` argument each, or none when NULL), compiled as model `model`. */
static void write_named_model(const char *file, const char *model, const char *first, const char *second)
{
	char a[200] = "", b[200] = "";
	if (first)
		snprintf(a, sizeof a, ", name: \"%s\"", first);
	if (second)
		snprintf(b, sizeof b, ", name: \"%s\"", second);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fprintf(f, "model %s\ninput x : f32[2]\nlabel y : class(2)\n"
		   "h = x |> dense(4%s) |> tanh\nlogits = h |> dense(2%s)\n"
		   "loss softmax_cross_entropy(logits, y)\noptimizer sgd(lr: 0.1)\n"
		   "train {\n  data: xor(count: 64, seed: 1)\n  batch: 16\n  epochs: 1\n}\n", model, a, b);
	fclose(f);
}

/* Layer names may hold any bytes; the header must still be one that every
 * C and C++ compiler here takes without a warning under the strictest flags
 * users build with (a star-slash in a name used to end a comment, and the
 * wrappers' C casts failed -Wold-style-cast). */
Test(embed, headers_compile_without_warnings_as_c_and_cxx_whatever_the_layer_names)
{
	write_named_model(path("odd.nn"), "odd", "x*/y/*z?\?/\xc3\xa9\x01", "w*/");
	free(must("nnc -c", "cd '%s' && '%s' odd.nn -c -o odd.o", tmpdir, NNC_EXE));
	char *h = read_text(path("odd.h"));
	for (const char *p = h; *p; p++)
		cr_assert((*p >= 0x20 && *p < 0x7f) || *p == '\n' || *p == '\t', "byte 0x%02x in the header",
			  (unsigned char)*p);
	cr_expect(strstr(h, "#define ODD_P_X__Y__Z_______WEIGHT 0 /* x* /y/ *z? ?/\\xc3\\xa9\\x01.weight [2, 4] */"),
		  "%s", h);
	free(h);
	write_text(path("use.c"), "#include \"odd.h\"\nint main(void) { odd_instance *n = odd_new(0); "
				  "odd_free(n); return n ? 0 : 1; }\n");
	write_text(path("use.cpp"), "#include \"odd.h\"\nint main() { odd_instance *n = odd_new(nullptr); "
				    "odd_free(n); return n ? 0 : 1; }\n");
	const char *strict = "-Wall -Wextra -Wpedantic -Werror";
	struct {
		const char *cc, *flags, *file;
	} builds[] = {
		{"cc", "-std=c99", "use.c"},
		{"clang", "-std=c99", "use.c"},
		{"c++", "-std=c++11 -Wold-style-cast", "use.cpp"},
		{"clang++", "-std=c++11 -Wold-style-cast", "use.cpp"},
	};
	int built = 0;
	for (size_t i = 0; i < sizeof builds / sizeof builds[0]; i++) {
		if (sh_run(NULL, "command -v %s", builds[i].cc) != 0)
			continue;
		free(must(builds[i].cc, "cd '%s' && %s %s %s -I'%s/runtime' -c %s -o /dev/null", tmpdir, builds[i].cc,
			  builds[i].flags, strict, NNC_SOURCE_DIR, builds[i].file));
		built++;
	}
	cr_assert_geq(built, 1, "no C compiler found");
}

/* Names that would clash as C identifiers (in the header) or as checkpoint
 * entries are errors of the .nn file, for every kind of build; names in the
 * runtime's namespace are refused as model names and as --prefix. */
Test(embed, names_that_clash_in_c_or_in_checkpoints_are_errors)
{
	struct {
		const char *model, *first, *second, *flags;
		int status;
		const char *message, *note;
	} rows[] = {
		{"t", "a.b", "a_b", "-c", 1,
		 "t.nn:5:10: error: layer name 'a_b' clashes with 'a.b': both become A_B in C names such as T_P_A_B_WEIGHT", "t.nn:4:5: note: layer 'a.b' is here"},
		{"t", "a.b", "a_b", "-o t", 1, "layer name 'a_b' clashes with 'a.b'", NULL},
		{"t", "Fc", "fc", "--emit-ir", 1, "layer name 'fc' clashes with 'Fc': both become FC", NULL},
		{"t", "dense2", NULL, "-c", 1,
		 "t.nn:5:10: error: a second layer is named 'dense2': the model would have two parameters 'dense2.weight'",
		 "t.nn:4:5: note: the first layer named 'dense2' is here"},
		{"t", "dense2", NULL, "-o t", 1, "a second layer is named 'dense2'", NULL},
		{"nnrt", NULL, NULL, "-c", 1,
		 "t.nn:1:7: error: the model name 'nnrt' is reserved: 'nnrt' and names starting with 'nnrt_' belong to the runtime", NULL},
		{"NNRT_instance", NULL, NULL, "-o t", 1, "the model name 'NNRT_instance' is reserved", NULL},
		{"t", NULL, NULL, "-c --prefix nnrt_instance", 2, "--prefix 'nnrt_instance' is reserved", NULL},
		{"t", NULL, NULL, "-c --prefix Nnrt", 2, "--prefix 'Nnrt' is reserved", NULL},
		/* not clashes: distinct in C, or only sharing a beginning */
		{"nnrtx", "a.b", "a.bb", "-c", 0, NULL, NULL},
		{"t", NULL, NULL, "-c --prefix nnrtx", 0, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		write_named_model(path("t.nn"), rows[i].model, rows[i].first, rows[i].second);
		char *out;
		int rc = sh_run(&out, "cd '%s' && rm -f t.o t.h && '%s' t.nn %s", tmpdir, NNC_EXE, rows[i].flags);
		cr_expect_eq(rc, rows[i].status, "row %zu (%s): exit %d\n%s", i, rows[i].flags, rc, out);
		if (rows[i].message)
			cr_expect(strstr(out, rows[i].message), "row %zu: wanted '%s' in:\n%s", i, rows[i].message, out);
		if (rows[i].note)
			cr_expect(strstr(out, rows[i].note), "row %zu: wanted '%s' in:\n%s", i, rows[i].note, out);
		if (rows[i].status)
			cr_expect_neq(access(path("t.h"), F_OK), 0, "row %zu: a header was written", i);
		free(out);
	}
}

Test(embed, the_linked_headers_agree_with_the_runtime)
{
	cr_assert_eq(MOONS_MEMORY_SIZE, nnrt_instance_memory_size(&moons_model));
	cr_assert_eq(MOONS_INF_MEMORY_SIZE, nnrt_instance_memory_size(&moons_inf_model));
	cr_assert_eq(MLP_MEMORY_SIZE, nnrt_instance_memory_size(&mlp_model));
	cr_assert_lt(MOONS_INF_MEMORY_SIZE, MOONS_MEMORY_SIZE, "an inference-only instance needs no gradients");
	cr_assert_eq(MOONS_INPUT_SIZE, moons_model.input_size);
	cr_assert_eq(MLP_BATCH, mlp_model.batch);
	cr_assert_eq(MLP_PARAM_FLOATS, mlp_model.param_floats);
	cr_assert_eq(MLP_P_DENSE2_WEIGHT, mlp_param_index("dense2.weight"));
	cr_assert_eq(MLP_P_DENSE2_WEIGHT_SIZE, mlp_model.params[MLP_P_DENSE2_WEIGHT].size);
	cr_assert_null(moons_inf_model.train_step);
	cr_assert_not_null(moons_model.train_step);
	cr_assert_eq(moons_inf_model.fingerprint, moons_model.fingerprint, "the same network, the same checkpoints");
}

/* ---- predictions: embedded == training binary ---- */

Test(embed, moons_predictions_equal_the_training_binary)
{
	compile_example("moons");
	free(must("training", "'%s' --epochs 5 --quiet --save '%s'", path("moons"), path("moons.ckpt")));
	/* a grid over the plane, as CSV */
	char *csv = malloc(1 << 16);
	size_t len = 0;
	for (int i = 0; i < 21; i++)
		for (int j = 0; j < 11; j++)
			len += (size_t)sprintf(csv + len, "%.3f,%.3f\n", -1.5 + 0.2 * i, -1.0 + 0.25 * j);
	write_text(path("grid.csv"), csv);
	free(csv);
	char *want = must("predicting", "'%s' --load '%s' --predict '%s'", path("moons"), path("moons.ckpt"),
			  path("grid.csv"));

	/* the same features, read by the same loader */
	nnrt_dataset d;
	cr_assert_eq(nnrt_data_load_predict(&d, &moons_model, &moons_model.train, path("grid.csv")), 0);
	cr_assert_eq(d.n, 231);
	int err;
	moons_instance *net = moons_new(&err);
	moons_inf_instance *inf = moons_inf_new(&err);
	cr_assert(net && inf);
	cr_assert_eq(moons_load(net, path("moons.ckpt")), NNRT_OK, "%s", moons_error(net));
	cr_assert_eq(moons_inf_load(inf, path("moons.ckpt")), NNRT_OK, "%s", moons_inf_error(inf));
	float *out = malloc((size_t)d.n * MOONS_OUTPUT_SIZE * sizeof(float));
	float *out2 = malloc((size_t)d.n * MOONS_OUTPUT_SIZE * sizeof(float));
	cr_assert_eq(moons_infer(net, d.x_f32, d.n, out), NNRT_OK); /* 231 samples: 8 batches */
	char *got = predict_lines(out, d.n, MOONS_OUTPUT_SIZE);
	expect_same_lines(want, got, "moons --predict");
	cr_assert_eq(moons_inf_infer(inf, d.x_f32, d.n, out2), NNRT_OK);
	cr_assert(!memcmp(out, out2, (size_t)d.n * MOONS_OUTPUT_SIZE * sizeof(float)),
		  "the --inference-only object predicts differently");
	free(want);
	free(got);
	free(out);
	free(out2);
	moons_free(net);
	moons_inf_free(inf);
	nnrt_data_free(&d);
}

Test(embed, mlp_predictions_equal_the_training_binary)
{
	if (!have_fashion())
		cr_skip_test("Fashion-MNIST is not installed (" FASHION_TEST_IMAGES ")");
	compile_example("mlp");
	free(must("training", "'%s' --limit 2000 --epochs 1 --test-limit 100 --quiet --save '%s'", path("mlp"),
		  path("mlp.ckpt")));
	char *want = must("predicting", "'%s' --load '%s' --predict " FASHION_TEST_IMAGES, path("mlp"),
			  path("mlp.ckpt"));
	data t;
	nnrt_dataset d;
	cr_assert_eq(nnrt_data_load_predict(&d, &mlp_model, &mlp_model.train, FASHION_TEST_IMAGES), 0);
	t.n = d.n;
	t.x = malloc((size_t)(d.n * MLP_INPUT_SIZE) * sizeof(float));
	int64_t *idx = malloc((size_t)d.n * sizeof(int64_t));
	for (int64_t i = 0; i < d.n; i++)
		idx[i] = i;
	nnrt_data_gather(&d, idx, d.n, t.x, NULL);
	int err;
	mlp_instance *net = mlp_new(&err);
	cr_assert_not_null(net, "%s", nnrt_strerror(err));
	cr_assert_eq(mlp_load(net, path("mlp.ckpt")), NNRT_OK, "%s", mlp_error(net));
	float *out = malloc((size_t)d.n * MLP_OUTPUT_SIZE * sizeof(float));
	cr_assert_eq(mlp_infer(net, t.x, t.n, out), NNRT_OK); /* all 10000 in one call */
	char *got = predict_lines(out, t.n, MLP_OUTPUT_SIZE);
	expect_same_lines(want, got, "mlp --predict t10k");
	free(want);
	free(got);
	free(out);
	free(idx);
	free(t.x);
	mlp_free(net);
	nnrt_data_free(&d);
}

/* ---- training: an instance == the training binary ---- */

Test(embed, an_instance_trains_bit_for_bit_like_the_training_binary)
{
	compile_example("moons");
	free(must("training", "'%s' --epochs 3 --quiet --save '%s'", path("moons"), path("bin.ckpt")));

	/* train.c's loop: init from the model's seed, then per epoch a shuffle
	 * drawn from the same stream, and the batches in that order */
	data d = load(&moons_model, &moons_model.train);
	int err;
	moons_instance *net = moons_new(&err); /* initialised from the model's seed */
	cr_assert_not_null(net);
	nnrt_rng r;
	nnrt_rng_seed(&r, (uint64_t)moons_model.seed);
	float *scratch = calloc((size_t)moons_model.param_floats, sizeof(float));
	nnrt_init_params(&moons_model, scratch, &r);
	cr_assert(same_params(scratch, moons_params(net), moons_model.param_floats));
	int64_t *perm = malloc((size_t)d.n * sizeof(int64_t));
	float xb[MOONS_BATCH * MOONS_INPUT_SIZE];
	int32_t yb[MOONS_BATCH];
	for (int e = 0; e < 3; e++) {
		for (int64_t i = 0; i < d.n; i++)
			perm[i] = i;
		nnrt_rng_shuffle(&r, perm, d.n);
		for (int64_t b = 0; b < d.n; b += MOONS_BATCH) {
			int64_t n = d.n - b < MOONS_BATCH ? d.n - b : MOONS_BATCH;
			nnrt_data_gather(&d.d, perm + b, n, xb, yb);
			cr_assert_eq(moons_train_step(net, xb, yb, n, NULL), NNRT_OK);
		}
	}
	moons_instance *bin = moons_new(&err);
	cr_assert_eq(moons_load(bin, path("bin.ckpt")), NNRT_OK, "%s", moons_error(bin));
	cr_assert_eq(nnrt_instance_steps((nnrt_instance *)bin), nnrt_instance_steps((nnrt_instance *)net));
	cr_assert(same_params(moons_params(net), moons_params(bin), moons_model.param_floats),
		  "the parameters differ from those of `moons --epochs 3`");

	/* and the binary reads what the instance saves */
	cr_assert_eq(moons_save(net, path("api.ckpt")), NNRT_OK, "%s", moons_error(net));
	char *out = must("eval", "'%s' --load '%s' --eval", path("moons"), path("api.ckpt"));
	char *want = must("eval", "'%s' --load '%s' --eval", path("moons"), path("bin.ckpt"));
	cr_assert_str_eq(out, want);
	free(out);
	free(want);
	free(scratch);
	free(perm);
	data_free(&d);
	moons_free(net);
	moons_free(bin);
}

/* The field `col` (0-based) of CSV line `row` (1-based, after the header) of text. */
/* The field of column NAME (found in the header line) in data row ROW
 * (1 = the first after the header) of the CSV TEXT. */
static char *csv_field(const char *text, int row, const char *name, char *buf, size_t cap)
{
	int col = 0;
	const char *h = text;
	size_t len = strlen(name);
	while (strncmp(h, name, len) != 0 || (h[len] != ',' && h[len] != '\n')) {
		h += strcspn(h, ",\n");
		cr_assert(*h == ',', "no column '%s' in the header of\n%s", name, text);
		h++, col++;
	}
	const char *p = text;
	for (int r = 0; r < row && p; r++)
		p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
	cr_assert(p && *p, "no line %d in\n%s", row, text);
	for (int c = 0; c < col; c++)
		p = strchr(p, ',') + 1;
	size_t n = strcspn(p, ",\n");
	cr_assert(n < cap);
	memcpy(buf, p, n);
	buf[n] = 0;
	return buf;
}

/* tests/fixtures/recipe.nn trains with onecycle after a warmup (its
 * momentum cycling), accumulate: 3 over epochs whose last group is
 * shorter, clipping by value and weight decay.  An instance told the run's
 * layout (_set_run) and fed the binary's batches gets each step's rate,
 * momentum and accumulation weight from the same step count: it ends with
 * the binary's parameters bit for bit, its epochs' last rates are the ones
 * the binary's --log wrote, and it counts the epochs.  The rate can be read
 * and overridden; without a run the instance trains at a constant rate. */
Test(embed, an_instance_with_a_run_follows_the_binarys_schedule_and_accumulation)
{
	free(must("nnc", "'%s' '%s/tests/fixtures/recipe.nn' -o '%s'", NNC_EXE, NNC_SOURCE_DIR, path("recipe")));
	free(must("training", "'%s' --quiet --save '%s' --log '%s'", path("recipe"), path("bin.ckpt"), path("log.csv")));
	char *log = read_text(path("log.csv"));

	data d = load(&recipe_model, &recipe_model.train);
	cr_assert_eq(d.n, 500);
	int err;
	recipe_instance *net = recipe_new(&err);
	cr_assert_not_null(net, "%s", nnrt_strerror(err));
	nnrt_position pos;
	cr_assert_eq(recipe_position(net, &pos), NNRT_OK);
	cr_assert(pos.epoch_steps == 0 && pos.lr == (double)recipe_model.lr && pos.momentum == (double)(float)0.9,
		  "without a run: %lld steps an epoch, rate %g, momentum %g", (long long)pos.epoch_steps, pos.lr,
		  pos.momentum);
	cr_assert_eq(recipe_set_run(net, 48, 1), NNRT_ERR_ARG, "a warmup of 5 updates in a run of 1");
	cr_assert(strstr(recipe_error(net), "the warmup of 5 steps is not shorter than the training"), "%s",
		  recipe_error(net));
	cr_assert_eq(recipe_set_run(net, -1, 0), NNRT_ERR_ARG);
	cr_assert_eq(recipe_set_run(net, d.n, 0), NNRT_OK); /* the model's 3 epochs */
	cr_assert_eq(recipe_position(net, &pos), NNRT_OK);
	cr_assert(pos.epoch_steps == 32 && pos.total_updates == 33 && pos.step == 0 && pos.update == 0,
		  "%lld steps an epoch, %lld updates", (long long)pos.epoch_steps, (long long)pos.total_updates);
	/* onecycle's first rate lr / 25, and warmup's first fifth of it; the momentum at its maximum */
	cr_assert_float_eq(pos.lr, 0.2 / 25 / 5, 1e-9, "the first rate: %g", pos.lr);
	cr_assert_float_eq(pos.momentum, 0.95, 1e-12, "the first momentum: %g", pos.momentum);

	nnrt_rng r;
	nnrt_rng_seed(&r, (uint64_t)recipe_model.seed);
	float *scratch = calloc((size_t)recipe_model.param_floats, sizeof(float));
	nnrt_init_params(&recipe_model, scratch, &r); /* the stream goes on to shuffle */
	int64_t *perm = malloc((size_t)d.n * sizeof(int64_t));
	float xb[RECIPE_BATCH * RECIPE_INPUT_SIZE];
	int32_t yb[RECIPE_BATCH];
	double lows = 1, highs = 0;
	for (int e = 0; e < 3; e++) {
		for (int64_t i = 0; i < d.n; i++)
			perm[i] = i;
		nnrt_rng_shuffle(&r, perm, d.n);
		double last = 0;
		for (int64_t b = 0; b < d.n; b += RECIPE_BATCH) {
			int64_t n = d.n - b < RECIPE_BATCH ? d.n - b : RECIPE_BATCH;
			nnrt_data_gather(&d.d, perm + b, n, xb, yb);
			cr_assert_eq(recipe_position(net, &pos), NNRT_OK);
			cr_assert_eq(pos.epoch, e, "step %lld: epoch %lld", (long long)pos.step, (long long)pos.epoch);
			cr_assert_eq(pos.epoch_step, b / RECIPE_BATCH);
			last = pos.lr;
			lows = fmin(lows, pos.momentum), highs = fmax(highs, pos.momentum);
			cr_assert_eq(recipe_train_step(net, xb, yb, n, NULL), NNRT_OK, "%s", recipe_error(net));
		}
		/* the epoch's last rate, as the binary's log row gives it */
		char want[64], got[64];
		snprintf(got, sizeof got, "%.7g", (double)(float)last);
		cr_assert_str_eq(got, csv_field(log, e + 1, "lr", want, sizeof want), "epoch %d's last rate", e + 1);
		cr_assert_eq(recipe_epoch(net), e + 1, "the run's epochs are counted");
	}
	cr_assert(lows < 0.86 && highs > 0.94, "the momentum did not cycle: %g to %g", lows, highs);
	cr_assert_eq(recipe_position(net, &pos), NNRT_OK);
	cr_assert(pos.step == 96 && pos.update == 33, "%lld steps, %lld updates", (long long)pos.step,
		  (long long)pos.update);
	recipe_instance *bin = recipe_new(&err);
	cr_assert_eq(recipe_load(bin, path("bin.ckpt")), NNRT_OK, "%s", recipe_error(bin));
	cr_assert(same_params(recipe_params(net), recipe_params(bin), recipe_model.param_floats),
		  "the parameters differ from those of the training binary");

	/* the rate override, and back to the schedule */
	double scheduled = pos.lr;
	cr_assert_eq(recipe_set_rate(net, 0.0125f), NNRT_OK);
	cr_assert_eq(recipe_position(net, &pos), NNRT_OK);
	cr_assert(pos.lr == 0.0125f && pos.overridden, "overridden: %g", pos.lr);
	cr_assert_eq(recipe_set_rate(net, -1), NNRT_ERR_ARG);
	cr_assert_eq(recipe_set_rate(net, 0), NNRT_OK);
	cr_assert_eq(recipe_position(net, &pos), NNRT_OK);
	cr_assert(pos.lr == scheduled && !pos.overridden, "the schedule's again: %g, not %g", pos.lr, scheduled);
	/* clipping: by value on any model, by norm only where it is compiled in */
	cr_assert_eq(recipe_set_clip(net, 0, 0.25f), NNRT_OK);
	cr_assert_eq(recipe_set_clip(net, 1, 0), NNRT_ERR_ARG);
	cr_assert(strstr(recipe_error(net), "compiled without clip_norm:"), "%s", recipe_error(net));

	/* without a run: the model's rate, one update a step */
	cr_assert_eq(recipe_init(net, (uint64_t)recipe_model.seed), NNRT_OK);
	cr_assert_eq(recipe_set_run(net, 0, 0), NNRT_OK);
	cr_assert_eq(recipe_position(net, &pos), NNRT_OK);
	cr_assert(pos.lr == (double)recipe_model.lr && pos.epoch_steps == 0, "%g", pos.lr);
	free(log);
	free(scratch);
	free(perm);
	data_free(&d);
	recipe_free(net);
	recipe_free(bin);
}

/* How far Adam's first step moved each parameter, against the learning rate:
 * with the bias corrections of step 1 (c1 = 1 / (1 - beta1), c2 =
 * 1 / (1 - beta2)) the corrected moments are g and g^2, so every parameter
 * with a gradient well above eps moves by lr exactly, whatever g is.  Wrong
 * corrections move it by 0 (none), 3.2 lr (c1 = c2 = 1) or 1000 lr (the two
 * swapped).  Returns the share of parameters that moved by lr; fails on one
 * that moved further. */
static double share_moved_by_lr(const float *before, const float *after, int64_t count, float lr)
{
	int64_t by_lr = 0;
	for (int64_t j = 0; j < count; j++) {
		double d = fabs((double)before[j] - (double)after[j]);
		cr_assert(d <= lr * (1 + 1e-4), "parameter %lld moved by %g, more than lr %g", (long long)j, d, lr);
		by_lr += fabs(d - lr) <= 1e-4 * lr;
	}
	return (double)by_lr / (double)count;
}

/* The hyper-parameters the runtime fills (model.c) are those moons's
 * generated Adam update reads, through the API and through the binary. */
Test(embed, adams_first_step_moves_every_parameter_by_the_learning_rate)
{
	int64_t P = moons_model.param_floats;
	int64_t used = 0; /* param_floats counts the 64-byte padding, which never moves */
	for (int i = 0; i < moons_model.n_params; i++)
		used += moons_model.params[i].size;
	float *p0 = malloc((size_t)P * sizeof(float)), *p1 = malloc((size_t)P * sizeof(float));
	float lr = moons_model.lr;
	cr_assert_eq(moons_model.optimizer, NNRT_OPT_ADAM);

	/* the API: one train_step */
	int err;
	moons_instance *net = moons_new(&err);
	data d = moons_set(MOONS_BATCH, 5, 0);
	memcpy(p0, moons_params(net), (size_t)P * sizeof(float));
	cr_assert_eq(moons_train_step(net, d.x, d.y, d.n, NULL), NNRT_OK, "%s", moons_error(net));
	double api = share_moved_by_lr(p0, moons_params(net), P, lr) * (double)P / (double)used;
	cr_assert(api > 0.9, "only %.0f%% of the parameters moved by lr", 100 * api);

	/* the binary: one batch of its own data, from the same initial values */
	compile_example("moons");
	free(must("init", "'%s' --epochs 0 --quiet --save '%s'", path("moons"), path("p0.ckpt")));
	free(must("step", "'%s' --epochs 1 --limit %d --quiet --save '%s'", path("moons"), MOONS_BATCH,
		  path("p1.ckpt")));
	cr_assert_eq(moons_load(net, path("p0.ckpt")), NNRT_OK, "%s", moons_error(net));
	cr_assert_eq(nnrt_instance_steps((nnrt_instance *)net), 0);
	memcpy(p0, moons_params(net), (size_t)P * sizeof(float));
	cr_assert_eq(moons_load(net, path("p1.ckpt")), NNRT_OK, "%s", moons_error(net));
	cr_assert_eq(nnrt_instance_steps((nnrt_instance *)net), 1);
	memcpy(p1, moons_params(net), (size_t)P * sizeof(float));
	double bin = share_moved_by_lr(p0, p1, P, lr) * (double)P / (double)used;
	cr_assert(bin > 0.9, "only %.0f%% of the parameters moved by lr", 100 * bin);
	data_free(&d);
	moons_free(net);
	free(p0);
	free(p1);
}

/* ---- --inference-only ---- */

/* <PREFIX>_MEMORY_SIZE from the header written beside `object` (X.o -> X.h). */
static long memory_size(const char *object, const char *prefix)
{
	char hdr[320], want[96], up[64];
	snprintf(hdr, sizeof hdr, "%.*s.h", (int)strlen(object) - 2, object);
	size_t i = 0;
	for (; prefix[i] && i + 1 < sizeof up; i++)
		up[i] = (char)toupper((unsigned char)prefix[i]);
	up[i] = 0;
	snprintf(want, sizeof want, "#define %s_MEMORY_SIZE ", up);
	FILE *f = fopen(hdr, "r");
	cr_assert(f, "cannot open %s", hdr);
	char line[512];
	long v = -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, want, strlen(want)))
			v = strtol(line + strlen(want), NULL, 10);
	fclose(f);
	cr_assert(v > 0, "%s has no %s", hdr, want);
	return v;
}

Test(embed, inference_only_objects_have_no_backward_code_and_are_smaller)
{
	const char *models[] = {"moons", "mlp", "lenet"};
	const char *backward[] = {"bwd", "_grad", "update", "train_step"};
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
		const char *m = models[i];
		char full[300], inf[300];
		snprintf(full, sizeof full, "%s/%s.o", tmpdir, m);
		snprintf(inf, sizeof inf, "%s/%s_inf.o", tmpdir, m);
		free(must("nnc -c", "'%s' '%s/examples/%s.nn' -c -o '%s'", NNC_EXE, NNC_SOURCE_DIR, m, full));
		free(must("nnc -c --inference-only", "'%s' '%s/examples/%s.nn' -c --inference-only -o '%s'", NNC_EXE,
			  NNC_SOURCE_DIR, m, inf));
		char *syms_full = must("nm", "nm '%s'", full);
		char *syms_inf = must("nm", "nm '%s'", inf);
		for (size_t k = 0; k < sizeof backward / sizeof backward[0]; k++) {
			cr_expect(strstr(syms_full, backward[k]), "%s.o has no '%s' symbol: is the check blind?", m,
				  backward[k]);
			cr_expect(!strstr(syms_inf, backward[k]), "%s_inf.o has a '%s' symbol:\n%s", m, backward[k],
				  syms_inf);
		}
		char model_sym[64];
		snprintf(model_sym, sizeof model_sym, " D %s_model\n", m);
		cr_expect(strstr(syms_inf, model_sym), "%s_inf.o does not define %s_model:\n%s", m, m, syms_inf);
		long a = file_size(full), b = file_size(inf);
		fprintf(stderr, "embed: %-6s object %6ld bytes, --inference-only %6ld bytes (%.0f%%)\n", m, a, b,
			100.0 * (double)b / (double)a);
		cr_expect_lt(b, a, "%s: --inference-only is not smaller (%ld vs %ld bytes)", m, b, a);
		/* and its instances need no gradients, optimizer state or backward workspace:
		 * lenet 4.2 MB against 2.0 MB */
		long ma = memory_size(full, m), mb = memory_size(inf, m);
		fprintf(stderr, "embed: %-6s instance %8ld bytes, --inference-only %8ld bytes\n", m, ma, mb);
		if (!strcmp(m, "lenet"))
			cr_expect_lt(2 * mb, ma, "%s: an inference-only instance takes %ld bytes, a training one %ld", m, mb, ma);
		else
			cr_expect_lt(mb, ma, "%s: an inference-only instance takes %ld bytes, a training one %ld", m, mb, ma);
		free(syms_full);
		free(syms_inf);
	}
}

Test(embed, inference_only_instances_cannot_train)
{
	int err;
	moons_inf_instance *inf = moons_inf_new(&err);
	cr_assert_not_null(inf);
	float x[2] = {0, 0};
	int32_t y[1] = {0};
	cr_assert_eq(nnrt_instance_train_step((nnrt_instance *)inf, x, y, 1, NULL), NNRT_ERR_NO_TRAINING);
	cr_assert(strstr(moons_inf_error(inf), "--inference-only"));
	double acc;
	cr_assert_eq(moons_inf_evaluate(inf, x, y, 1, NULL, &acc), NNRT_OK);
	/* its checkpoints are whole: the training binary's instance reads them */
	cr_assert_eq(moons_inf_save(inf, path("inf.ckpt")), NNRT_OK, "%s", moons_inf_error(inf));
	moons_instance *net = moons_new(&err);
	cr_assert_eq(moons_load(net, path("inf.ckpt")), NNRT_OK, "%s", moons_error(net));
	cr_assert(same_params(moons_params(net), moons_inf_params(inf), moons_model.param_floats));
	moons_free(net);
	moons_inf_free(inf);
}

/* ---- inference on any n ---- */

/* n floats that end right before an unreadable page: a read past them faults. */
static float *guarded(int64_t n, void **base, size_t *len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t bytes = ((size_t)n * sizeof(float) + page - 1) / page * page;
	*len = bytes + page;
	*base = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(*base, MAP_FAILED);
	cr_assert_eq(mprotect((char *)*base + bytes, page, PROT_NONE), 0);
	return (float *)((char *)*base + bytes) - n;
}

Test(embed, infer_takes_any_n_and_touches_only_n_rows)
{
	data d = moons_set(1000, 5, 0);
	int err;
	moons_instance *net = moons_new(&err);
	train_moons(net, &d, 1);
	/* one sample at a time: the reference */
	float *one = malloc((size_t)d.n * MOONS_OUTPUT_SIZE * sizeof(float));
	for (int64_t i = 0; i < d.n; i++)
		cr_assert_eq(moons_infer(net, d.x + i * MOONS_INPUT_SIZE, 1, one + i * MOONS_OUTPUT_SIZE), NNRT_OK);
	int64_t sizes[] = {1, 2, 31, 32, 33, 64, 65, 100, 1000};
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		int64_t n = sizes[s];
		void *xb, *ob;
		size_t xl, ol;
		float *x = guarded(n * MOONS_INPUT_SIZE, &xb, &xl);
		float *out = guarded(n * MOONS_OUTPUT_SIZE, &ob, &ol);
		memcpy(x, d.x, (size_t)(n * MOONS_INPUT_SIZE) * sizeof(float));
		cr_assert_eq(moons_infer(net, x, n, out), NNRT_OK);
		cr_assert(!memcmp(out, one, (size_t)(n * MOONS_OUTPUT_SIZE) * sizeof(float)),
			  "inference on %lld samples differs from one sample at a time", (long long)n);
		munmap(xb, xl);
		munmap(ob, ol);
	}
	/* the mlp's wide rows too (random weights and inputs) */
	mlp_instance *mlp = mlp_new(&err);
	for (int64_t n = 1; n <= 130; n += 43) {
		void *xb, *ob;
		size_t xl, ol;
		float *x = guarded(n * MLP_INPUT_SIZE, &xb, &xl);
		float *out = guarded(n * MLP_OUTPUT_SIZE, &ob, &ol);
		for (int64_t i = 0; i < n * MLP_INPUT_SIZE; i++)
			x[i] = (float)((i * 7919) % 256) / 255.0f;
		cr_assert_eq(mlp_infer(mlp, x, n, out), NNRT_OK);
		float sum = 0;
		for (int k = 0; k < MLP_OUTPUT_SIZE; k++)
			sum += out[(n - 1) * MLP_OUTPUT_SIZE + k];
		cr_assert_float_eq(sum, 1.0f, 1e-5f);
		munmap(xb, xl);
		munmap(ob, ol);
	}
	mlp_free(mlp);
	moons_free(net);
	free(one);
	data_free(&d);
}

/* ---- independent instances ---- */

Test(embed, two_instances_trained_on_different_data_stay_independent)
{
	data d1 = moons_set(640, 11, 0), d2 = moons_set(640, 12, 1);
	int err;
	moons_instance *a = moons_new(&err), *b = moons_new(&err);
	/* interleaved, step by step */
	for (int e = 0; e < 2; e++)
		for (int64_t s = 0; s < d1.n; s += MOONS_BATCH) {
			cr_assert_eq(moons_train_step(a, d1.x + s * 2, d1.y + s, MOONS_BATCH, NULL), NNRT_OK);
			cr_assert_eq(moons_train_step(b, d2.x + s * 2, d2.y + s, MOONS_BATCH, NULL), NNRT_OK);
		}
	moons_instance *a1 = moons_new(&err), *b1 = moons_new(&err);
	train_moons(a1, &d1, 2);
	train_moons(b1, &d2, 2);
	int64_t pf = moons_model.param_floats;
	cr_assert(same_params(moons_params(a), moons_params(a1), pf), "instance A was disturbed by B");
	cr_assert(same_params(moons_params(b), moons_params(b1), pf), "instance B was disturbed by A");
	cr_assert(!same_params(moons_params(a), moons_params(b), pf));
	/* each learnt its own labelling */
	double acc_a, acc_b;
	moons_evaluate(a, d1.x, d1.y, d1.n, NULL, &acc_a);
	moons_evaluate(b, d1.x, d1.y, d1.n, NULL, &acc_b);
	cr_assert_gt(acc_a, 0.8);
	cr_assert_lt(acc_b, 0.2);
	moons_free(a);
	moons_free(b);
	moons_free(a1);
	moons_free(b1);
	data_free(&d1);
	data_free(&d2);
}

/* A job for one user thread: train an instance on its data. */
typedef struct job {
	int model; /* 0 moons, 1 mlp */
	void *net;
	const float *x;
	const int32_t *y;
	int64_t n;
	int epochs;
	int rc;
} job;

static void *train_job(void *p)
{
	job *j = p;
	for (int e = 0; e < j->epochs && !j->rc; e++) {
		int64_t batch = j->model ? MLP_BATCH : MOONS_BATCH, in = j->model ? MLP_INPUT_SIZE : MOONS_INPUT_SIZE;
		for (int64_t b = 0; b < j->n && !j->rc; b += batch) {
			int64_t k = j->n - b < batch ? j->n - b : batch;
			j->rc = j->model ? mlp_train_step(j->net, j->x + b * in, j->y + b, k, NULL)
					 : moons_train_step(j->net, j->x + b * in, j->y + b, k, NULL);
		}
	}
	return NULL;
}

/* Trains two jobs in two threads at once, each instance on a team of
 * `threads`; then the same jobs alone, one after the other, on one thread. */
static void concurrent_vs_alone(job *jobs, void **alone, int threads)
{
	for (int i = 0; i < 2; i++)
		cr_assert_eq(nnrt_instance_set_threads(jobs[i].net, threads), NNRT_OK);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, train_job, &jobs[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(jobs[i].rc, NNRT_OK, "%s", nnrt_strerror(jobs[i].rc));
	}
	for (int i = 0; i < 2; i++) {
		job j = jobs[i];
		j.net = alone[i];
		cr_assert_eq(nnrt_instance_set_threads(alone[i], 1), NNRT_OK);
		train_job(&j);
		cr_assert_eq(j.rc, NNRT_OK);
		const nnrt_model *m = nnrt_instance_model(alone[i]);
		cr_assert(same_params(nnrt_instance_params(jobs[i].net), nnrt_instance_params(alone[i]), m->param_floats),
			  "%s instance %d trained concurrently differs from the one trained alone", m->name, i);
	}
}

Test(embed, instances_trained_concurrently_in_two_threads_equal_instances_trained_alone)
{
	data d1 = moons_set(2000, 21, 0), d2 = moons_set(2000, 22, 1);
	int err;
	job jobs[2] = {{0, moons_new(&err), d1.x, d1.y, d1.n, 3, 0}, {0, moons_new(&err), d2.x, d2.y, d2.n, 3, 0}};
	void *alone[2] = {moons_new(&err), moons_new(&err)};
	concurrent_vs_alone(jobs, alone, 2);
	for (int i = 0; i < 2; i++) {
		moons_free(jobs[i].net);
		moons_free(alone[i]);
	}
	data_free(&d1);
	data_free(&d2);

	/* the mlp's kernels, on made-up data */
	enum { N = 640 };
	float *x = malloc(2 * N * MLP_INPUT_SIZE * sizeof(float));
	int32_t *y = malloc(2 * N * sizeof(int32_t));
	for (int64_t i = 0; i < 2 * N * MLP_INPUT_SIZE; i++)
		x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
	for (int i = 0; i < 2 * N; i++)
		y[i] = (i * 7) % MLP_CLASSES;
	job mj[2] = {{1, mlp_new(&err), x, y, N, 1, 0}, {1, mlp_new(&err), x + N * MLP_INPUT_SIZE, y + N, N, 1, 0}};
	void *malone[2] = {mlp_new(&err), mlp_new(&err)};
	concurrent_vs_alone(mj, malone, 2);
	for (int i = 0; i < 2; i++) {
		mlp_free(mj[i].net);
		mlp_free(malone[i]);
	}
	free(x);
	free(y);
}

/* A training loop inside nnrt_team(): one team of threads for every call. */
typedef struct team_job {
	moons_instance *net;
	const data *d;
} team_job;

static int team_loop(void *p)
{
	team_job *j = p;
	train_moons(j->net, j->d, 2);
	return 7;
}

Test(embed, an_instance_trains_alike_inside_a_persistent_team)
{
	data d = moons_set(500, 41, 0);
	int err;
	moons_instance *a = moons_new(&err), *b = moons_new(&err);
	team_job j = {a, &d};
	nnrt_set_threads(2);
	cr_assert_eq(nnrt_team(team_loop, &j), 7);
	nnrt_set_threads(0);
	cr_assert_eq(moons_set_threads(b, 1), NNRT_OK);
	train_moons(b, &d, 2);
	cr_assert(same_params(moons_params(a), moons_params(b), moons_model.param_floats));
	moons_free(a);
	moons_free(b);
	data_free(&d);
}

Test(embed, an_instance_in_caller_memory)
{
	size_t size = MOONS_MEMORY_SIZE;
	unsigned char *mem = aligned_alloc(64, size + 64);
	int err = -1;
	cr_assert_null(moons_new_in(mem, size - 1, &err));
	cr_assert_eq(err, NNRT_ERR_SIZE);
	cr_assert_null(moons_new_in(mem + 8, size, &err));
	cr_assert_eq(err, NNRT_ERR_ALIGN);
	cr_assert_null(moons_new_in(NULL, size, &err));
	cr_assert_eq(err, NNRT_ERR_ARG);
	memset(mem + size, 0xA5, 64);
	moons_instance *net = moons_new_in(mem, size, &err);
	cr_assert_not_null(net);
	cr_assert_eq(err, NNRT_OK);
	cr_assert_eq((void *)net, (void *)mem);
	moons_instance *heap = moons_new(&err);
	data d = moons_set(320, 31, 0);
	train_moons(net, &d, 3);
	train_moons(heap, &d, 3);
	cr_assert(same_params(moons_params(net), moons_params(heap), moons_model.param_floats));
	for (int i = 0; i < 64; i++)
		cr_assert_eq(mem[size + i], 0xA5, "the instance wrote past MOONS_MEMORY_SIZE");
	moons_free(net); /* ends its use; the memory is still ours */
	free(mem);
	moons_free(heap);
	data_free(&d);
}

/* ---- the rest of the API ---- */

Test(embed, parameters_by_name_and_index)
{
	int err;
	linear_instance *net = linear_new(&err);
	cr_assert_not_null(net);
	int w = linear_param_index("dense1.weight"), b = linear_param_index("dense1.bias");
	cr_assert_eq(w, LINEAR_P_DENSE1_WEIGHT);
	cr_assert_eq(b, LINEAR_P_DENSE1_BIAS);
	cr_assert_eq(linear_param_index("dense9.weight"), -1);
	const float wv[LINEAR_P_DENSE1_WEIGHT_SIZE] = {2.5f, -1.5f}, bv[LINEAR_P_DENSE1_BIAS_SIZE] = {0.75f};
	cr_assert_eq(linear_set_param(net, w, wv, LINEAR_P_DENSE1_WEIGHT_SIZE), NNRT_OK);
	cr_assert_eq(linear_set_param(net, b, bv, LINEAR_P_DENSE1_BIAS_SIZE), NNRT_OK);
	const float x[3][2] = {{1, 2}, {0, 0}, {-2, 4}};
	float y[3];
	cr_assert_eq(linear_infer(net, x[0], 3, y), NNRT_OK);
	cr_assert(y[0] == 0.25f && y[1] == 0.75f && y[2] == -10.25f, "got %g %g %g", y[0], y[1], y[2]);
	float got[2];
	cr_assert_eq(linear_get_param(net, w, got, 2), NNRT_OK);
	cr_assert(got[0] == 2.5f && got[1] == -1.5f);
	/* weight decay (sgd, coupled): on a batch with zero gradients (x = 0,
	 * target = the bias) it alone moves the weight, w -= lr wd w, and
	 * spares the bias; 0 turns it off again */
	cr_assert_eq(linear_weight_decay(net), 0.0f);
	cr_assert_eq(linear_set_weight_decay(net, 0.5f), NNRT_OK);
	cr_assert_eq(linear_weight_decay(net), 0.5f);
	cr_assert_eq(linear_set_weight_decay(net, NAN), NNRT_ERR_ARG);
	linear_set_lr(net, 0.125f);
	const float zx[2][2] = {{0, 0}, {0, 0}}, zt[2] = {0.75f, 0.75f};
	cr_assert_eq(linear_train_step(net, zx[0], zt, 2, NULL), NNRT_OK);
	cr_assert_eq(linear_get_param(net, w, got, 2), NNRT_OK);
	cr_assert(got[0] == 2.34375f && got[1] == -1.40625f, "decayed weight %.9g %.9g", got[0], got[1]);
	cr_assert_eq(linear_get_param(net, b, got, 1), NNRT_OK);
	cr_assert(got[0] == 0.75f, "the bias moved to %.9g", got[0]);
	cr_assert_eq(linear_set_weight_decay(net, 0), NNRT_OK);
	cr_assert_eq(linear_train_step(net, zx[0], zt, 2, NULL), NNRT_OK);
	cr_assert_eq(linear_get_param(net, w, got, 2), NNRT_OK);
	cr_assert(got[0] == 2.34375f && got[1] == -1.40625f, "no decay, yet the weight moved: %.9g %.9g", got[0], got[1]);
	cr_assert_eq(linear_set_param(net, w, wv, LINEAR_P_DENSE1_WEIGHT_SIZE), NNRT_OK);
	/* real-valued labels: a few steps towards y = x1 - x2 */
	const float target[3] = {-1, 0, -6};
	float l0, l1;
	linear_set_lr(net, 0.01f);
	cr_assert_float_eq(linear_lr(net), 0.01f, 0);
	cr_assert_eq(linear_train_step(net, x[0], target, 3, &l0), NNRT_OK);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(linear_train_step(net, x[0], target, 3, &l1), NNRT_OK);
	cr_assert_lt(l1, l0);
	cr_assert_eq(nnrt_instance_steps((nnrt_instance *)net), 53);
	/* init() starts over: the model's initialiser here is zeros */
	cr_assert_eq(linear_init(net, 1), NNRT_OK);
	cr_assert_eq(linear_get_param(net, w, got, 2), NNRT_OK);
	cr_assert(got[0] == 0 && got[1] == 0);
	cr_assert_eq(nnrt_instance_steps((nnrt_instance *)net), 0);
	linear_free(net);
}

static void expect_code(const moons_instance *net, int got, int want, const char *message)
{
	cr_expect_eq(got, want, "code %d (%s), expected %d (%s)", got, nnrt_strerror(got), want, nnrt_strerror(want));
	cr_expect(strstr(moons_error(net), message), "message '%s', expected '%s'", moons_error(net), message);
}

static int64_t moons_steps_taken(const moons_instance *net)
{
	return nnrt_instance_steps((const nnrt_instance *)net);
}

Test(embed, errors_are_codes_with_messages)
{
	nnrt_set_error_echo(0); /* the runtime's own stderr lines */
	for (int c = NNRT_OK; c <= NNRT_ERR_CPU; c++) {
		cr_assert_str_neq(nnrt_strerror(c), "unknown error code", "code %d", c);
		for (int d = NNRT_OK; d < c; d++)
			cr_assert_str_neq(nnrt_strerror(c), nnrt_strerror(d));
	}
	cr_assert_str_eq(nnrt_strerror(-1), "unknown error code");
	cr_assert_str_eq(nnrt_strerror(NNRT_ERR_CPU + 1), "unknown error code");

	int err;
	moons_instance *net = moons_new(&err);
	cr_assert_str_eq(moons_error(net), "");
	float x[MOONS_BATCH + 1][2] = {{0}}, out[2];
	int32_t y[MOONS_BATCH + 1] = {0};
	/* call -> code and the message it leaves in moons_error(net) */
	expect_code(net, moons_load(net, path("missing.ckpt")), NNRT_ERR_IO, "cannot open checkpoint");
	write_text(path("junk.ckpt"), "not a checkpoint at all, really");
	expect_code(net, moons_load(net, path("junk.ckpt")), NNRT_ERR_CHECKPOINT, "is not an nnc checkpoint");
	expect_code(net, moons_save(net, "/nonexistent-dir/x.ckpt"), NNRT_ERR_IO, "cannot save checkpoint");
	expect_code(net, moons_train_step(net, x[0], y, 0, NULL), NNRT_ERR_ARG, "0 samples");
	expect_code(net, moons_train_step(net, x[0], y, MOONS_BATCH + 1, NULL), NNRT_ERR_BATCH, "at most 32");
	expect_code(net, moons_train_step(net, NULL, y, 1, NULL), NNRT_ERR_ARG, "the input is NULL");
	y[3] = 2;
	expect_code(net, moons_train_step(net, x[0], y, 8, NULL), NNRT_ERR_LABEL, "label 2 of sample 3");
	expect_code(net, moons_evaluate(net, x[0], y, 8, NULL, NULL), NNRT_ERR_LABEL, "label 2 of sample 3");
	expect_code(net, moons_infer(net, x[0], -3, out), NNRT_ERR_ARG, "-3 samples");
	expect_code(net, moons_infer(net, x[0], 1, NULL), NNRT_ERR_ARG, "the output is NULL");
	expect_code(net, moons_get_param(net, 6, out, 2), NNRT_ERR_ARG, "no parameter tensor 6");
	expect_code(net, moons_set_param(net, MOONS_P_DENSE3_BIAS, out, 3), NNRT_ERR_SIZE, "has 2 values, not 3");
	expect_code(net, moons_set_lr(net, -1), NNRT_ERR_ARG, "learning rate");
	expect_code(net, moons_set_threads(net, NNRT_MAX_THREADS + 1), NNRT_ERR_ARG, "thread count");
	cr_expect_eq(moons_steps_taken(net), 0, "failed steps were counted");

	/* another model's checkpoint, refused without touching the parameters */
	mlp_instance *mlp = mlp_new(&err);
	cr_assert_eq(mlp_save(mlp, path("mlp.ckpt")), NNRT_OK);
	float before[512];
	memcpy(before, moons_params(net), sizeof(float) * (size_t)moons_model.param_floats);
	cr_expect_eq(moons_load(net, path("mlp.ckpt")), NNRT_ERR_CHECKPOINT);
	cr_expect(strstr(moons_error(net), "not by this model 'moons'"), "%s", moons_error(net));
	cr_expect(same_params(before, moons_params(net), moons_model.param_floats));
	mlp_free(mlp);

	/* a model object from another runtime ABI */
	nnrt_model bad = moons_model;
	bad.abi_version = NNRT_ABI_VERSION + 1;
	cr_expect_null(nnrt_instance_new(&bad, &err));
	cr_expect_eq(err, NNRT_ERR_MODEL);
	cr_expect_null(nnrt_instance_new(NULL, &err));
	cr_expect_eq(err, NNRT_ERR_ARG);
	moons_free(net);
	moons_free(NULL);
	nnrt_set_error_echo(1);
}

/* A file that cannot be read is NNRT_ERR_IO, whatever fopen() thinks of it. */
Test(embed, a_checkpoint_path_that_cannot_be_read_is_an_io_error)
{
	int err;
	moons_instance *net = moons_new(&err);
	moons_set_error_handler(net, nnrt_error_ignore, NULL);
	expect_code(net, moons_load(net, tmpdir), NNRT_ERR_IO, "it is a directory");
	expect_code(net, moons_load(net, path("missing.ckpt")), NNRT_ERR_IO, "No such file or directory");
	expect_code(net, moons_save(net, tmpdir), NNRT_ERR_IO, "cannot save checkpoint");
	moons_free(net);
}

/* Saves a checkpoint of an instance of `m` (a variant of moons) to file. */
static void save_variant(const nnrt_model *m, const char *file)
{
	int err;
	nnrt_instance *v = nnrt_instance_new(m, &err);
	cr_assert_not_null(v, "variant model refused: %s", nnrt_strerror(err));
	cr_assert_eq(nnrt_instance_save(v, file), NNRT_OK, "%s", nnrt_instance_error(v));
	nnrt_instance_free(v);
}

/* The checkpoint of another version of a model says what changed, and a
 * damaged parameter table says what is damaged (it used to say "has shape
 * [2] but this model's is [2]"). */
Test(embed, a_checkpoint_of_another_version_says_what_changed)
{
	nnrt_param_info params[16];
	cr_assert_leq(moons_model.n_params, 16);
	int bias = MOONS_P_DENSE3_BIAS;
	struct {
		const char *file, *message;
	} rows[] = {
		{"wider.ckpt", "wider.ckpt: parameter 'dense3.bias' has shape [3] but this model's is [2]"},
		{"sgd.ckpt", "sgd.ckpt was written with the sgd optimizer but this model 'moons' uses adam"},
		{"act.ckpt", "act.ckpt was written by another version of model 'moons' (fingerprint 0x00000000000000ac, "
			     "this model's 0x"},
		{"fewer.ckpt", "fewer.ckpt: the file holds 5 parameter tensors but this model has 6"},
		{"renamed.ckpt", "renamed.ckpt: parameter 5 is 'out.bias' but this model's is 'dense3.bias'"},
		{"damaged.ckpt", "damaged.ckpt is damaged: its table gives parameter 'dense3.bias' (shape [2]) offset "},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		nnrt_model m = moons_model;
		memcpy(params, moons_model.params, sizeof(nnrt_param_info) * (size_t)m.n_params);
		m.params = params;
		m.fingerprint ^= 1;
		switch (i) {
		case 0: params[bias].shape[0] = params[bias].size = 3; break; /* within the 64-byte padding */
		case 1: m.optimizer = NNRT_OPT_SGD; break;
		case 2: m.fingerprint = 0xac; break;
		case 3: m.n_params--; break;
		case 4: params[bias].name = "out.bias"; break;
		case 5: m.fingerprint = moons_model.fingerprint; params[bias].offset -= 2; break;
		}
		save_variant(&m, path(rows[i].file));
		int err;
		moons_instance *net = moons_new(&err);
		moons_set_error_handler(net, nnrt_error_ignore, NULL);
		float before[512];
		memcpy(before, moons_params(net), sizeof(float) * (size_t)moons_model.param_floats);
		expect_code(net, moons_load(net, path(rows[i].file)), NNRT_ERR_CHECKPOINT, rows[i].message);
		cr_expect(same_params(before, moons_params(net), moons_model.param_floats), "row %zu: changed", i);
		moons_free(net);
	}
}

/* Found by tests/fuzz/fuzz_checkpoint.c: an inference-only instance (like
 * --load) does not compare the file's optimizer count with the model's, and
 * a huge count overflowed the size check (UBSan: signed overflow).  The
 * file's size field and checksum are made right, so only that count is off. */
Test(embed, a_huge_optimizer_count_is_refused_without_overflow)
{
	int err;
	moons_instance *net = moons_new(&err);
	cr_assert_eq(moons_save(net, path("ok.ckpt")), NNRT_OK);
	moons_free(net);
	size_t n = (size_t)file_size(path("ok.ckpt"));
	unsigned char *b = malloc(n);
	FILE *f = fopen(path("ok.ckpt"), "rb");
	cr_assert_eq(fread(b, 1, n, f), n);
	fclose(f);
	const uint64_t huge = 0x4000000000000001ull; /* 4 * (params + huge) wraps */
	for (int i = 0; i < 8; i++)
		b[48 + i] = (unsigned char)(huge >> (8 * i));
	uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(n - 4));
	for (int i = 0; i < 4; i++)
		b[n - 4 + i] = (unsigned char)(crc >> (8 * i));
	f = fopen(path("huge.ckpt"), "wb");
	cr_assert_eq(fwrite(b, 1, n, f), n);
	fclose(f);
	free(b);
	moons_inf_instance *inf = moons_inf_new(&err);
	moons_inf_set_error_handler(inf, nnrt_error_ignore, NULL);
	cr_expect_eq(moons_inf_load(inf, path("huge.ckpt")), NNRT_ERR_CHECKPOINT);
	cr_expect(strstr(moons_inf_error(inf), "is malformed (array sizes do not match the file)"), "%s",
		  moons_inf_error(inf));
	moons_inf_free(inf);
}

/* The epoch count goes into checkpoints and comes back, also for the
 * training binary's --resume. */
Test(embed, the_epoch_count_is_saved_and_loaded)
{
	int err;
	moons_instance *net = moons_new(&err), *back = moons_new(&err);
	cr_assert_eq(moons_epoch(net), 0);
	expect_code(net, moons_set_epoch(net, -1), NNRT_ERR_ARG, "cannot be negative");
	data d = moons_set(320, 3, 0);
	train_moons(net, &d, 3);
	cr_assert_eq(moons_epoch(net), 0, "train_step counted epochs");
	cr_assert_eq(moons_set_epoch(net, 3), NNRT_OK);
	cr_assert_eq(moons_save(net, path("e3.ckpt")), NNRT_OK, "%s", moons_error(net));
	cr_assert_eq(moons_load(back, path("e3.ckpt")), NNRT_OK, "%s", moons_error(back));
	cr_assert_eq(moons_epoch(back), 3);
	cr_assert_eq(moons_init(back, 1), NNRT_OK);
	cr_assert_eq(moons_epoch(back), 0, "init() kept the epoch");
	/* an inference-only instance keeps the count too */
	moons_inf_instance *inf = moons_inf_new(&err);
	cr_assert_eq(moons_inf_load(inf, path("e3.ckpt")), NNRT_OK, "%s", moons_inf_error(inf));
	cr_assert_eq(moons_inf_epoch(inf), 3);
	moons_inf_free(inf);
	compile_example("moons");
	char *out = must("moons --resume", "cd '%s' && ./moons --resume e3.ckpt --epochs 4", tmpdir);
	cr_assert(strstr(out, "at epoch 3 (step ") && strstr(out, "epoch  4/4") && !strstr(out, "epoch  1/4"), "%s", out);
	free(out);
	moons_free(net);
	moons_free(back);
	data_free(&d);
}

/* A body standing in for a generated one: counts the threads it ran on. */
static atomic_int body_calls, body_team;
static void counting_body(nnrt_step_args *a, int32_t tid, int32_t nthreads)
{
	(void)a;
	atomic_fetch_add(&body_calls, 1);
	if (tid == 0)
		atomic_store(&body_team, nthreads);
	nnrt_barrier();
}

typedef struct threads_job {
	nnrt_instance *inst;
	int want[3]; /* set_threads -> threads the body ran on */
	int got[3];
} threads_job;

static int threads_loop(void *p)
{
	threads_job *j = p;
	float x[2] = {0}, out[2];
	for (int k = 0; k < 3; k++) {
		static const int counts[3] = {1, 0, 2};
		nnrt_instance_set_threads(j->inst, counts[k]);
		atomic_store(&body_calls, 0);
		nnrt_instance_infer(j->inst, x, 1, out);
		j->got[k] = atomic_load(&body_calls) * 100 + atomic_load(&body_team);
	}
	return 0;
}

/* _set_threads applies inside nnrt_team() too (it used to be ignored there:
 * the team's every thread ran every call). */
Test(embed, set_threads_applies_inside_a_persistent_team)
{
	nnrt_model m = moons_model;
	m.infer = counting_body;
	int err;
	nnrt_instance *inst = nnrt_instance_new(&m, &err);
	cr_assert_not_null(inst);
	threads_job j = {.inst = inst};
	nnrt_set_threads(2);
	nnrt_team(threads_loop, &j);
	nnrt_set_threads(0);
	/* 1 thread: one call with a team of 1; 0 and 2: the whole team of 2 */
	cr_expect_eq(j.got[0], 101, "set_threads(1): %d calls, team of %d", j.got[0] / 100, j.got[0] % 100);
	cr_expect_eq(j.got[1], 202, "set_threads(0): %d calls, team of %d", j.got[1] / 100, j.got[1] % 100);
	cr_expect_eq(j.got[2], 202, "set_threads(2): %d calls, team of %d", j.got[2] / 100, j.got[2] % 100);
	nnrt_instance_free(inst);
}

typedef struct seen_error {
	int calls, code;
	char message[400];
} seen_error;

static void remember_error(void *ctx, int code, const char *message)
{
	seen_error *e = ctx;
	e->calls++;
	e->code = code;
	snprintf(e->message, sizeof e->message, "%s", message);
}

/* Runs fn(net) with stderr going to a file; returns what it printed. */
static char *stderr_of(void (*fn)(moons_instance *), moons_instance *net)
{
	fflush(stderr);
	int saved = dup(2);
	FILE *f = fopen(path("stderr.txt"), "w");
	cr_assert_not_null(f);
	dup2(fileno(f), 2);
	fn(net);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fclose(f);
	return read_text(path("stderr.txt"));
}

static void load_junk(moons_instance *net)
{
	moons_load(net, path("junk.ckpt"));
}

/* The last error can be cleared; an error handler gets every failure and
 * silences stderr; without one the runtime prints as it always did. */
Test(embed, errors_can_be_cleared_handled_and_silenced)
{
	int err;
	moons_instance *net = moons_new(&err);
	float x[2] = {0}, out[2];
	write_text(path("junk.ckpt"), "not a checkpoint at all, really");
	char *printed = stderr_of(load_junk, net);
	cr_expect(strstr(printed, "nnrt: error: ") && strstr(printed, "is not an nnc checkpoint"), "'%s'", printed);
	free(printed);
	cr_assert_str_neq(moons_error(net), "");
	moons_clear_error(net);
	cr_assert_str_eq(moons_error(net), "");

	seen_error seen = {0};
	cr_assert_eq(moons_set_error_handler(net, remember_error, &seen), NNRT_OK);
	printed = stderr_of(load_junk, net);
	cr_expect_str_eq(printed, "", "printed with a handler set");
	free(printed);
	cr_expect_eq(seen.calls, 1);
	cr_expect_eq(seen.code, NNRT_ERR_CHECKPOINT);
	cr_expect_str_eq(seen.message, moons_error(net));
	cr_expect_eq(moons_infer(net, x, 0, out), NNRT_ERR_ARG);
	cr_expect_eq(seen.calls, 2, "every failure reaches the handler");
	cr_expect(strstr(seen.message, "0 samples"), "%s", seen.message);
	cr_expect_eq(moons_infer(net, x, 1, out), NNRT_OK);
	cr_expect_eq(seen.calls, 2, "success is no failure");

	cr_assert_eq(moons_set_error_handler(net, nnrt_error_ignore, NULL), NNRT_OK);
	printed = stderr_of(load_junk, net);
	cr_expect_str_eq(printed, "");
	free(printed);
	cr_expect(strstr(moons_error(net), "is not an nnc checkpoint"), "%s", moons_error(net));
	moons_free(net);
}

/* The runtime's last message is per thread: a failure in one thread does not
 * overwrite what another thread is about to copy into its instance. */
typedef struct error_race {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stage;
	char mine[400];
} error_race;

static void *fail_then_wait(void *p)
{
	error_race *r = p;
	nnrt_error("first thread's failure");
	pthread_mutex_lock(&r->mu);
	r->stage = 1;
	pthread_cond_broadcast(&r->cv);
	while (r->stage != 2)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	snprintf(r->mine, sizeof r->mine, "%s", nnrt_last_error());
	return NULL;
}

Test(embed, the_runtime_keeps_the_last_error_per_thread)
{
	nnrt_set_error_echo(0);
	error_race r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, ""};
	pthread_t t;
	pthread_create(&t, NULL, fail_then_wait, &r);
	pthread_mutex_lock(&r.mu);
	while (r.stage != 1)
		pthread_cond_wait(&r.cv, &r.mu);
	nnrt_error("second thread's failure");
	r.stage = 2;
	pthread_cond_broadcast(&r.cv);
	pthread_mutex_unlock(&r.mu);
	pthread_join(t, NULL);
	nnrt_set_error_echo(1);
	cr_expect_str_eq(r.mine, "first thread's failure");
	cr_expect_str_eq(nnrt_last_error(), "second thread's failure");
}

/* ---- the installed tree ---- */

static char prefix[300];

/* `cmake --install` of this build tree into tmpdir/prefix. */
static void install(void)
{
	snprintf(prefix, sizeof prefix, "%s/prefix", tmpdir);
	free(must("cmake --install", "'%s' --install '%s' --prefix '%s'", NNC_CMAKE_COMMAND, NNC_BINARY_DIR, prefix));
	const char *files[] = {"bin/nnc", NNC_LIBDIR "/libnnrt.a", NNC_LIBDIR "/libnnrt.so", "include/nnrt.h",
			       NNC_LIBDIR "/pkgconfig/nnrt.pc", NNC_LIBDIR "/cmake/nnc/nncConfig.cmake",
			       NNC_LIBDIR "/cmake/nnc/nncConfigVersion.cmake", NNC_LIBDIR "/cmake/nnc/nncModel.cmake"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char f[600];
		snprintf(f, sizeof f, "%s/%s", prefix, files[i]);
		cr_assert_eq(access(f, R_OK), 0, "cmake --install did not install %s", files[i]);
	}
}

/* The environment of a user of the installed tree: its nnc first on PATH,
 * its pkg-config file found, nothing from this build tree. */
static const char *user_env(void)
{
	static char env[1200];
	snprintf(env, sizeof env, "env -u NNC_RUNTIME_DIR PATH='%s/bin':\"$PATH\" PKG_CONFIG_PATH='%s/%s/pkgconfig'",
		 prefix, prefix, NNC_LIBDIR);
	return env;
}

Test(embed, installed_nnc_links_programs_and_a_downstream_cmake_project_builds, .timeout = 400)
{
	install();
	/* nnc from the prefix links against the prefix's libnnrt.a */
	char *out = must("installed nnc", "cd '%s' && %s nnc '%s/examples/moons.nn' -o moons && ./moons --epochs 2",
			 tmpdir, user_env(), NNC_SOURCE_DIR);
	cr_assert(strstr(out, "test_acc"), "%s", out);
	free(out);

	/* tests/downstream: find_package(nnc) + nnc_add_model, static and shared runtime, C and C++ */
	/* A sanitized runtime needs the sanitizers in every program that links
	 * it: C programs get them from $CC (as the tests' nnc links do), the C++
	 * one from here. */
	/* clang++ where there is one: g++ does not see the C casts that
	 * -Wold-style-cast forbids in inline functions nobody calls.  Not with
	 * the sanitizers, whose runtimes differ between gcc and clang. */
	const char *cxx = sh_run(NULL, "command -v clang++") == 0 ? "-DCMAKE_CXX_COMPILER=clang++" : "";
	free(must("configuring tests/downstream",
		  "%s '%s' -S '%s/tests/downstream' -B '%s/ds' -DCMAKE_PREFIX_PATH='%s' -DCMAKE_BUILD_TYPE=Release "
		  "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF %s",
		  user_env(), NNC_CMAKE_COMMAND, NNC_SOURCE_DIR, tmpdir, prefix,
		  NNC_SANITIZED ? "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined" : cxx));
	char *cache = read_text(path("ds/CMakeCache.txt"));
	char want[600];
	snprintf(want, sizeof want, "nnc_DIR:PATH=%s/%s/cmake/nnc", prefix, NNC_LIBDIR);
	cr_assert(strstr(cache, want), "the downstream project did not find the installed package (%s)", want);
	free(cache);
	free(must("building tests/downstream", "%s '%s' --build '%s/ds'", user_env(), NNC_CMAKE_COMMAND, tmpdir));
	const char *programs[] = {"xor_app", "xor_app_shared", "xor_cxx"};
	for (size_t i = 0; i < 3; i++) {
		char exe[400];
		snprintf(exe, sizeof exe, "%s/ds/%s", tmpdir, programs[i]);
		if (i == 2 && access(exe, X_OK) != 0)
			continue; /* no C++ compiler */
		out = must(programs[i], "'%s'", exe);
		cr_assert(strstr(out, "downstream ok") || strstr(out, "downstream C++ ok"), "%s", out);
		free(out);
	}
	out = must("ldd", "ldd '%s/ds/xor_app_shared'", tmpdir);
	cr_assert(strstr(out, prefix), "xor_app_shared does not use the installed libnnrt.so:\n%s", out);
	free(out);
}

/* First value after `key` in text ("loss" -> the number after it), from `from`. */
static double value_after(const char *text, const char *key, int last)
{
	double v = NAN;
	size_t kl = strlen(key);
	for (const char *p = text; (p = strstr(p, key)); p += kl) {
		v = strtod(p + kl, NULL);
		if (!last)
			break;
	}
	return v;
}

Test(embed, examples_build_with_make_and_pkg_config_and_with_cmake, .timeout = 400)
{
	install();
	/* make + cc + pkg-config */
	free(must("mkdir", "mkdir -p '%s/mk'", tmpdir));
	free(must("make", "cd '%s/mk' && %s make -f '%s/examples/embed/Makefile'", tmpdir, user_env(), NNC_SOURCE_DIR));
	char *out = must("train_loop", "cd '%s/mk' && ./train_loop --save loop.ckpt", tmpdir);
	double first = value_after(out, "loss ", 0), last = value_after(out, "epoch 20  loss ", 0);
	double acc = value_after(out, "accuracy ", 1);
	cr_assert_lt(last, first / 4, "the loss did not fall:\n%s", out);
	cr_assert_geq(acc, 0.97, "train_loop test accuracy %.4f\n%s", acc, out);
	free(out);
	/* the training binary evaluates the checkpoint train_loop saved */
	out = must("moons --eval", "cd '%s/mk' && %s nnc '%s/examples/moons.nn' -o moons && ./moons --load loop.ckpt --eval",
		   tmpdir, user_env(), NNC_SOURCE_DIR);
	cr_assert_geq(value_after(out, "test_acc ", 1), 0.97, "%s", out);
	free(out);

	if (have_fashion()) {
		/* classify: PGM images and CSV rows, against ./mlp --predict */
		free(must("mlp", "cd '%s/mk' && %s nnc '%s/examples/mlp.nn' -o mlp && "
			  "./mlp --limit 2000 --epochs 1 --test-limit 100 --quiet --save mlp.ckpt",
			  tmpdir, user_env(), NNC_SOURCE_DIR));
		nnrt_dataset d;
		cr_assert_eq(nnrt_data_load_predict(&d, &mlp_model, &mlp_model.train, FASHION_TEST_IMAGES), 0);
		cr_assert_not_null(d.x_u8);
		char files[2048] = "";
		FILE *csv = fopen(path("mk/rows.csv"), "w");
		for (int i = 0; i < 6; i++) {
			char name[64], rel[80];
			snprintf(name, sizeof name, "img%d.pgm", i);
			snprintf(rel, sizeof rel, "mk/%s", name);
			FILE *f = fopen(path(rel), "wb");
			cr_assert_not_null(f);
			fprintf(f, "P5\n# test image %d\n28 28\n255\n", i);
			fwrite(d.x_u8 + i * 784, 1, 784, f);
			fclose(f);
			strcat(files, " ");
			strcat(files, name);
			for (int k = 0; k < 784; k++)
				fprintf(csv, "%s%.9g", k ? "," : "", d.x_u8[(6 + i) * 784 + k] / 255.0);
			fprintf(csv, "\n");
		}
		fclose(csv);
		nnrt_data_free(&d);
		char *got = must("classify", "cd '%s/mk' && ./classify mlp.ckpt%s rows.csv", tmpdir, files);
		char *want_img = must("predict", "cd '%s/mk' && ./mlp --load mlp.ckpt --predict " FASHION_TEST_IMAGES
				      " | head -6", tmpdir);
		char *want_csv = must("predict", "cd '%s/mk' && ./mlp --load mlp.ckpt --predict rows.csv", tmpdir);
		/* "SOURCE CLASS PROB NAME" vs "INDEX CLASS PROB" */
		const char *g = got, *wi = want_img, *wc = want_csv;
		for (int i = 0; i < 12; i++) {
			const char *w = i < 6 ? wi : wc;
			int wc_cls, gc;
			char wp[32], gp[32];
			cr_assert_eq(sscanf(w, "%*d %d %31s", &wc_cls, wp), 2, "%s", w);
			cr_assert_eq(sscanf(g, "%*s %d %31s", &gc, gp), 2, "%s", g);
			cr_assert(wc_cls == gc && !strcmp(wp, gp), "classify line %d: %.60s\n--predict: %.40s", i + 1, g, w);
			g = strchr(g, '\n') + 1;
			if (i < 6)
				wi = strchr(wi, '\n') + 1;
			else
				wc = strchr(wc, '\n') + 1;
		}
		free(got);
		free(want_img);
		free(want_csv);
	}

	/* CMake: find_package(nnc) + nnc_add_model */
	free(must("configuring examples/embed",
		  "%s '%s' -S '%s/examples/embed' -B '%s/cm' -DCMAKE_PREFIX_PATH='%s' -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF",
		  user_env(), NNC_CMAKE_COMMAND, NNC_SOURCE_DIR, tmpdir, prefix));
	free(must("building examples/embed", "%s '%s' --build '%s/cm'", user_env(), NNC_CMAKE_COMMAND, tmpdir));
	out = must("train_loop (CMake)", "'%s/cm/train_loop' --epochs 3 --threads 1", tmpdir);
	cr_assert(strstr(out, "test  loss"), "%s", out);
	free(out);
	out = must("classify (CMake)", "'%s/cm/classify' 2>&1; true", tmpdir);
	cr_assert(strstr(out, "usage: classify"), "%s", out);
	free(out);
}
