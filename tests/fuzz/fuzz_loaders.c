#define _POSIX_C_SOURCE 200809L
/*
 * fuzz_loaders.c - libFuzzer harness over the runtime's readers of user
 * files: IDX images and labels (raw or gzip), CSV (train, test and
 * prediction input), and checkpoints.
 *
 * An input is one selector byte and a payload, written to a temporary file
 * that the chosen loader then reads exactly as a training binary would:
 *
 *   byte 0 = model + 3 * (loader + 5 * variant)
 *     model    0: input f32[4], label class(3)   1: f32[1, 2, 2] -> f32[2]
 *              2: f32[2] -> f32[1]
 *     loader   0: IDX training pair; the payload is a 2-byte little-endian
 *                 length L, L bytes of images, then the labels
 *              1: CSV training data     2: checkpoint (--resume or --load)
 *              3: prediction input (IDX or CSV, sniffed)
 *              4: CSV test data with a limit
 *     variant  which columns and header setting a CSV spec has, and
 *              whether a checkpoint is resumed (optimizer state) or loaded
 *
 * Findings, besides crashes, sanitizer reports and leaks (which abort):
 * a loader that succeeds must hand over exactly what the file holds and
 * stay within the model's promises (labels in range, finite features,
 * 1 <= n), and one that fails must leave the caller's arrays untouched.
 *
 * NNC_FUZZ_VERBOSE=1 prints the loaders' error messages (to see why an
 * input is rejected).  Seeds: NNC_FUZZ_WRITE_SEEDS=DIR ./fuzz_loaders writes a valid input of
 * every kind into DIR and exits (scripts/fuzz.sh --seeds).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nnrt_internal.h"

static const nnrt_param_info params[] = {
	{.name = "fc.weight", .offset = 0, .size = 12, .shape = {4, 3}, .rank = 2, .init = NNRT_INIT_ZEROS},
	{.name = "fc.bias", .offset = 16, .size = 3, .shape = {3}, .rank = 1, .init = NNRT_INIT_ZEROS},
};

#define NMODELS 3
static const nnrt_model models[NMODELS] = {
	{.struct_size = sizeof(nnrt_model), .abi_version = NNRT_ABI_VERSION, .name = "cls",
	 .fingerprint = 0x1111222233334444ull, .input_shape = {4}, .input_rank = 1, .label_kind = NNRT_LABEL_CLASS,
	 .input_size = 4, .label_size = 3, .output_size = 3, .batch = 4, .loss = NNRT_LOSS_SOFTMAX_XENT,
	 .optimizer = NNRT_OPT_SGD, .n_params = 2, .params = params, .param_floats = 32, .opt_floats = 32},
	{.struct_size = sizeof(nnrt_model), .abi_version = NNRT_ABI_VERSION, .name = "img",
	 .fingerprint = 0x5555666677778888ull, .input_shape = {1, 2, 2}, .input_rank = 3,
	 .label_kind = NNRT_LABEL_REAL, .input_size = 4, .label_size = 2, .output_size = 2, .batch = 4,
	 .loss = NNRT_LOSS_MSE, .optimizer = NNRT_OPT_ADAM, .n_params = 2, .params = params, .param_floats = 32,
	 .opt_floats = 64},
	{.struct_size = sizeof(nnrt_model), .abi_version = NNRT_ABI_VERSION, .name = "reg",
	 .fingerprint = 0x9999aaaabbbbccccull, .input_shape = {2}, .input_rank = 1, .label_kind = NNRT_LABEL_REAL,
	 .input_size = 2, .label_size = 1, .output_size = 1, .batch = 4, .loss = NNRT_LOSS_MSE,
	 .optimizer = NNRT_OPT_SGD, .n_params = 2, .params = params, .param_floats = 32, .opt_floats = 0},
};

/* CSV column choices per model: x, y (NULL: the defaults). */
static const char *const csv_cols[NMODELS][4][2] = {
	{{NULL, NULL}, {"0,1,2,3", "4"}, {"a,b,c,d", "e"}, {NULL, "e"}},
	{{NULL, NULL}, {"0,1,2,3", "4,5"}, {"a,b,c,d", "e,f"}, {NULL, "4,5"}},
	{{NULL, NULL}, {"0,1", "2"}, {"x1,x2", "y"}, {"x1,x2", NULL}},
};

enum { L_IDX, L_CSV, L_CKPT, L_PREDICT, L_CSV_TEST, NLOADERS };

static char dir[64];
static char path_a[96], path_b[96];

static void fail(const char *why)
{
	fprintf(stderr, "fuzz_loaders: %s (last error: %s)\n", why, nnrt_last_error());
	abort();
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		abort();
	}
}

static nnrt_data_spec csv_spec(int model, int variant, const char *path)
{
	nnrt_data_spec s;
	memset(&s, 0, sizeof s);
	s.kind = NNRT_DATA_CSV;
	s.path_x = path;
	s.cols_x = csv_cols[model][variant % 4][0];
	s.cols_y = csv_cols[model][variant % 4][1];
	s.has_header = (variant / 4) % 3 - 1;
	s.scale = 1.0f;
	return s;
}

/* What every successful load promises. */
static void check_dataset(const nnrt_dataset *d, const nnrt_model *m, int labels)
{
	if (d->n < 1 || d->dim != m->input_size || (!d->x_u8 == !d->x_f32))
		fail("a loaded set has no samples or an inconsistent shape");
	for (int64_t i = 0; d->x_f32 && i < d->n * d->dim; i++)
		if (!isfinite(d->x_f32[i]))
			fail("a loaded feature is not finite");
	if (labels && d->label_kind == NNRT_LABEL_CLASS)
		for (int64_t i = 0; i < d->n; i++)
			if (d->y_class[i] < 0 || d->y_class[i] >= m->label_size)
				fail("a loaded class label is out of range");
	/* every sample can be gathered into a batch */
	int64_t idx[4];
	float x[4 * 4];
	float y[4 * 2];
	for (int64_t b = 0; b < d->n && b < 64; b += 4) {
		int64_t n = d->n - b < 4 ? d->n - b : 4;
		for (int64_t i = 0; i < n; i++)
			idx[i] = d->n - 1 - b - i;
		nnrt_data_gather(d, idx, n, x, labels ? y : NULL);
	}
}

static void run_checkpoint(const nnrt_model *m, int resume, const uint8_t *p, size_t n)
{
	float par[32], opt[64];
	nnrt_train_state st;
	memset(par, 0x7f, sizeof par);
	memset(opt, 0x7f, sizeof opt);
	memset(&st, 0x7f, sizeof st);
	float par0[32], opt0[64];
	nnrt_train_state st0;
	memcpy(par0, par, sizeof par);
	memcpy(opt0, opt, sizeof opt);
	memcpy(&st0, &st, sizeof st);
	write_file(path_a, p, n);
	if (nnrt_ckpt_load(path_a, m, par, resume ? opt : NULL, NULL, resume ? &st : NULL) != 0) {
		if (memcmp(par, par0, sizeof par) || memcmp(opt, opt0, sizeof opt) || memcmp(&st, &st0, sizeof st))
			fail("a rejected checkpoint changed the caller's arrays");
		return;
	}
	/* the arrays are the file's last bytes before the checksum */
	size_t arrays = 4 * (size_t)(m->param_floats + m->opt_floats);
	if (n < arrays + 4 || memcmp(par, p + n - 4 - arrays, 4 * (size_t)m->param_floats))
		fail("loaded parameters are not the file's");
	if (resume && memcmp(opt, p + n - 4 - 4 * (size_t)m->opt_floats, 4 * (size_t)m->opt_floats))
		fail("loaded optimizer state is not the file's");
	if (!resume && memcmp(opt, opt0, sizeof opt))
		fail("--load wrote optimizer state");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1 << 20))
		return 0;
	int model = data[0] % NMODELS;
	int loader = (data[0] / NMODELS) % NLOADERS;
	int variant = data[0] / (NMODELS * NLOADERS);
	const nnrt_model *m = &models[model];
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	nnrt_dataset d;
	nnrt_data_spec s;
	memset(&d, 0, sizeof d);
	switch (loader) {
	case L_IDX: {
		size_t la = n >= 2 ? (size_t)(p[0] | p[1] << 8) : 0;
		p += n >= 2 ? 2 : n;
		n -= n >= 2 ? 2 : n;
		if (la > n)
			la = n;
		write_file(path_a, p, la);
		write_file(path_b, p + la, n - la);
		memset(&s, 0, sizeof s);
		s.kind = NNRT_DATA_IDX;
		s.path_x = path_a;
		s.path_y = path_b;
		s.scale = 1.0f / 255;
		int64_t limit = variant & 1 ? 3 : 0;
		if (nnrt_data_load(&d, m, &s, "train", limit, 1) == 0) {
			check_dataset(&d, m, 1);
			if (limit && d.n > limit)
				fail("the limit was not applied");
		}
		nnrt_data_free(&d);
		break;
	}
	case L_CSV:
	case L_CSV_TEST:
		write_file(path_a, p, n);
		s = csv_spec(model, variant, path_a);
		if (nnrt_data_load(&d, m, &s, loader == L_CSV ? "train" : "test", loader == L_CSV ? 0 : 2, 1) == 0)
			check_dataset(&d, m, 1);
		nnrt_data_free(&d);
		break;
	case L_CKPT:
		run_checkpoint(m, variant & 1, p, n);
		break;
	case L_PREDICT: {
		write_file(path_a, p, n);
		nnrt_data_spec like = csv_spec(model, variant, "unused");
		if (variant & 1) {
			memset(&like, 0, sizeof like);
			like.kind = NNRT_DATA_IDX;
			like.scale = 0.5f;
		}
		if (nnrt_data_load_predict(&d, m, &like, path_a) == 0)
			check_dataset(&d, m, 0);
		nnrt_data_free(&d);
		break;
	}
	}
	return 0;
}

/* ---- seeds ---- */

static void put_be32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8), b[3] = (uint8_t)v;
}

static size_t gzip_bytes(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	char tmp[128];
	snprintf(tmp, sizeof tmp, "%s/gz", dir);
	gzFile f = gzopen(tmp, "wb9");
	if (!f || (n && gzwrite(f, in, (unsigned)n) != (int)n) || gzclose(f) != Z_OK)
		abort();
	FILE *r = fopen(tmp, "rb");
	size_t got = fread(out, 1, cap, r);
	fclose(r);
	return got;
}

static void seed(const char *out, const char *name, int model, int loader, int variant, const uint8_t *p,
		 size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", out, name);
	uint8_t *b = malloc(n + 1);
	b[0] = (uint8_t)(model + NMODELS * (loader + NLOADERS * variant));
	memcpy(b + 1, p, n);
	write_file(path, b, n + 1);
	free(b);
}

/* An IDX pair for `model`: 5 samples, labels in range. */
static size_t idx_pair(int model, int gzip, uint8_t *out)
{
	const nnrt_model *m = &models[model];
	uint8_t im[64], lb[32];
	size_t ni = 0, nl = 0;
	int nd = m->input_rank + 1;
	put_be32(im, 0x00000800u | (uint32_t)nd);
	ni = 4;
	put_be32(im + ni, 5), ni += 4;
	for (int k = 0; k < m->input_rank; k++)
		put_be32(im + ni, (uint32_t)m->input_shape[k]), ni += 4;
	for (int i = 0; i < 5 * m->input_size; i++)
		im[ni++] = (uint8_t)(i * 37);
	put_be32(lb, 0x00000801u), nl = 4;
	put_be32(lb + nl, 5), nl += 4;
	for (int i = 0; i < 5; i++)
		lb[nl++] = (uint8_t)(m->label_kind == NNRT_LABEL_CLASS ? i % m->label_size : i % 2);
	size_t la = ni, n = 2;
	if (gzip) {
		la = gzip_bytes(im, ni, out + 2, 200);
		n += la;
		n += gzip_bytes(lb, nl, out + n, 200);
	} else {
		memcpy(out + 2, im, ni);
		memcpy(out + 2 + ni, lb, nl);
		n += ni + nl;
	}
	out[0] = (uint8_t)la, out[1] = (uint8_t)(la >> 8);
	return n;
}

static void write_seeds(const char *out)
{
	static const char *const csv[NMODELS][2] = {
		{"a,b,c,d,e\n0.5,1,2,3,0\n1,2,3,4,2\n-1,0,1e-3,7,1\n", "1,2,3,4,0\n5,6,7,8,1\n\"9\", 1 ,2,3,2\n"},
		{"a,b,c,d,e,f\n1,2,3,4,0.5,-0.5\n5,6,7,8,1,0\n", "1,2,3,4,5,6\r\n7,8,9,10,11,12\r\n"},
		{"x1,x2,y\n0.1,0.2,0.3\n1,2,3\n", "0.1,0.2,0.3\n\n1,2,3\n"},
	};
	uint8_t buf[1024];
	char name[64];
	for (int model = 0; model < NMODELS; model++) {
		const nnrt_model *m = &models[model];
		size_t n = idx_pair(model, 0, buf);
		snprintf(name, sizeof name, "idx-raw-%s", m->name);
		seed(out, name, model, L_IDX, 0, buf, n);
		n = idx_pair(model, 1, buf);
		snprintf(name, sizeof name, "idx-gzip-%s", m->name);
		seed(out, name, model, L_IDX, 1, buf, n);
		/* prediction input: the images alone, and a CSV */
		size_t la = (size_t)(buf[0] | buf[1] << 8);
		snprintf(name, sizeof name, "predict-idx-%s", m->name);
		seed(out, name, model, L_PREDICT, 1, buf + 2, la);
		for (int v = 0; v < 12; v++) {
			int header = (v / 4) % 3 - 1;
			const char *text = csv[model][header == 0 ? 1 : 0];
			snprintf(name, sizeof name, "csv-%s-%d", m->name, v);
			seed(out, name, model, v % 3 ? L_CSV : L_CSV_TEST, v, (const uint8_t *)text, strlen(text));
		}
		snprintf(name, sizeof name, "predict-csv-%s", m->name);
		seed(out, name, model, L_PREDICT, 0, (const uint8_t *)csv[model][0], strlen(csv[model][0]));
		snprintf(name, sizeof name, "csv-gzip-%s", m->name);
		n = gzip_bytes((const uint8_t *)csv[model][0], strlen(csv[model][0]), buf, sizeof buf);
		seed(out, name, model, L_CSV, 0, buf, n);

		float par[32], opt[64];
		for (int i = 0; i < 32; i++)
			par[i] = (float)i / 8 - 1;
		for (int i = 0; i < 64; i++)
			opt[i] = (float)i / 16;
		nnrt_train_state st = {.epoch = 3, .step = 42};
		nnrt_rng_seed(&st.rng, 7);
		if (nnrt_ckpt_save(path_a, m, par, opt, NULL, &st))
			abort();
		FILE *f = fopen(path_a, "rb");
		n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		for (int v = 0; v < 2; v++) {
			snprintf(name, sizeof name, "ckpt-%s-%s", m->name, v ? "resume" : "load");
			seed(out, name, model, L_CKPT, v, buf, n);
		}
	}
}

static void cleanup(void)
{
	char gz[128];
	snprintf(gz, sizeof gz, "%s/gz", dir);
	unlink(path_a);
	unlink(path_b);
	unlink(gz);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof dir, "/tmp/nnc-fuzz-loaders-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(path_a, sizeof path_a, "%s/a", dir);
	snprintf(path_b, sizeof path_b, "%s/b", dir);
	atexit(cleanup);
	nnrt_set_prog("fuzz_loaders");
	nnrt_set_error_echo(getenv("NNC_FUZZ_VERBOSE") != NULL); /* the loaders' messages */
	const char *out = getenv("NNC_FUZZ_WRITE_SEEDS");
	if (out && *out) {
		write_seeds(out);
		exit(0);
	}
	return 0;
}
