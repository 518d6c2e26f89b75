#define _POSIX_C_SOURCE 200809L
/*
 * fuzz_checkpoint.c - libFuzzer harness over checkpoint loading as a program
 * that embeds a model does it: through the generated header's <prefix>_load
 * on real objects compiled by this build's nnc (tests/fuzz/CMakeLists.txt):
 * moons (Adam), moons again --inference-only as moons_inf (same fingerprint,
 * no optimizer state), and linear (SGD, real-valued labels).
 *
 * fuzz_loaders.c drives nnrt_ckpt_load directly on hand-made descriptors;
 * this one adds what the API does on top: the error codes, the messages, the
 * error handler, the counters an instance keeps, saving what it loaded, and
 * inference on whatever parameters a file held.
 *
 * An input is one selector byte and the checkpoint file:
 *   bit 0   0: moons, loaded into moons and into moons_inf;  1: linear
 *   bit 1   1: repair the file first: its size field becomes its length and
 *           its last 4 bytes the CRC32 of the rest, so that mutations reach
 *           the checks behind the checksum (the parameter table, the
 *           counters, the array sizes) instead of all failing at it.
 *
 * Findings, besides crashes, sanitizer reports and leaks (which abort):
 *   - a refused file must be NNRT_ERR_CHECKPOINT (a readable file is never
 *     an I/O error), leave parameters, step and epoch counts as they were,
 *     and report exactly once through the handler with the code returned and
 *     the message nnrt_instance_error gives, which names the file;
 *   - an accepted file must hand over exactly its parameters and counters,
 *     and saving again must write the same arrays and counters (for
 *     instances that train, the optimizer state too);
 *   - what the training instance of moons accepts, its inference-only twin
 *     accepts too, with the same parameters.
 *
 * NNC_FUZZ_VERBOSE=1 prints each refusal's message.  NNC_FUZZ_WRITE_SEEDS=DIR
 * writes valid checkpoints of every model into DIR and exits (scripts/fuzz.sh
 * --seeds).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "linear.h"
#include "moons.h"
#include "moons_inf.h"

static char dir[64], path_a[96], path_b[96];
static moons_instance *moons;
static moons_inf_instance *moons_i;
static linear_instance *lin;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_checkpoint: %s\n", what);
	abort();
}

typedef struct reported {
	int calls, code;
	char message[400];
} reported;

static void on_error(void *ctx, int code, const char *message)
{
	reported *r = ctx;
	r->calls++;
	r->code = code;
	snprintf(r->message, sizeof r->message, "%s", message);
	if (getenv("NNC_FUZZ_VERBOSE"))
		fprintf(stderr, "refused: %s\n", message);
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		fail("cannot write the temporary file");
}

static uint8_t *read_whole(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail("cannot read a saved checkpoint");
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)len + 1);
	if (!b || fread(b, 1, (size_t)len, f) != (size_t)len)
		fail("cannot read a saved checkpoint");
	fclose(f);
	*n = (size_t)len;
	return b;
}

static uint64_t u64_at(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Offsets in the fixed header (docs/checkpoint.md). */
enum { AT_PARAM_FLOATS = 40, AT_OPT_FLOATS = 48, AT_EPOCH = 56, AT_STEP = 64, AT_RNG = 72, FIXED = 104 };

/* One load into an instance seen only through the API: what a refusal and
 * what an acceptance promise.  Returns 1 if the file was accepted. */
static int load_one(nnrt_instance *inst, const uint8_t *file, size_t n)
{
	const nnrt_model *m = nnrt_instance_model(inst);
	nnrt_instance_init(inst, 1);
	nnrt_instance_set_epoch(inst, 0);
	nnrt_instance_clear_error(inst);
	size_t pbytes = 4 * (size_t)m->param_floats;
	float *before = malloc(pbytes ? pbytes : 1);
	memcpy(before, nnrt_instance_params(inst), pbytes);
	reported r = {0};
	nnrt_instance_set_error_handler(inst, on_error, &r);
	int rc = nnrt_instance_load(inst, path_a);
	if (rc != NNRT_OK) {
		if (rc != NNRT_ERR_CHECKPOINT && rc != NNRT_ERR_NOMEM)
			fail("a readable file was refused with another code than NNRT_ERR_CHECKPOINT");
		if (r.calls != 1 || r.code != rc || strcmp(r.message, nnrt_instance_error(inst)))
			fail("a refusal did not reach the handler once, with its code and message");
		if (!strstr(r.message, path_a))
			fail("a refusal's message does not name the file");
		if (memcmp(before, nnrt_instance_params(inst), pbytes) || nnrt_instance_steps(inst) != 0 ||
		    nnrt_instance_epoch(inst) != 0)
			fail("a refused checkpoint changed the instance");
		free(before);
		return 0;
	}
	free(before);
	if (r.calls != 0 || nnrt_instance_error(inst)[0])
		fail("an accepted checkpoint reported an error");
	/* Accepted: the file is whole, so its fields can be read where the
	 * format puts them. */
	if (n < FIXED + 4)
		fail("a file shorter than the fixed header was accepted");
	int64_t pf = (int64_t)u64_at(file + AT_PARAM_FLOATS), of = (int64_t)u64_at(file + AT_OPT_FLOATS);
	if (pf != m->param_floats || of < 0 || (uint64_t)(pf + of) * 4 + 4 + FIXED > n)
		fail("an accepted file's array sizes do not fit it");
	const uint8_t *params = file + n - 4 - 4 * (size_t)(pf + of);
	if (memcmp(params, nnrt_instance_params(inst), pbytes))
		fail("the loaded parameters are not the file's");
	if (nnrt_instance_epoch(inst) != (int64_t)u64_at(file + AT_EPOCH) ||
	    nnrt_instance_steps(inst) != (int64_t)u64_at(file + AT_STEP))
		fail("the loaded counters are not the file's");
	/* Saved again: the same arrays and counters (and RNG state). */
	if (nnrt_instance_save(inst, path_b) != NNRT_OK)
		fail("an instance cannot save what it loaded");
	size_t bn;
	uint8_t *b = read_whole(path_b, &bn);
	int trains = m->train_step != NULL;
	size_t arrays = 4 * (size_t)(m->param_floats + m->opt_floats);
	if (bn < arrays + 4 + FIXED || memcmp(b + AT_EPOCH, file + AT_EPOCH, FIXED - AT_EPOCH) ||
	    memcmp(b + bn - 4 - arrays, params, trains ? arrays : pbytes))
		fail("saving a loaded checkpoint does not write what was loaded");
	free(b);
	/* Whatever the parameters are (NaN too), inference stays in bounds. */
	float x[2 * 8], out[2 * 8];
	for (int i = 0; i < 16; i++)
		x[i] = (float)i / 4 - 1;
	if (m->input_size <= 8 && m->output_size <= 8 && nnrt_instance_infer(inst, x, 2, out) != NNRT_OK)
		fail("inference failed after a load");
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1 << 20))
		return 0;
	size_t n = size - 1;
	uint8_t *file = malloc(n ? n : 1);
	memcpy(file, data + 1, n);
	if ((data[0] & 2) && n >= 28) {
		for (int i = 0; i < 8; i++)
			file[16 + i] = (uint8_t)((uint64_t)n >> (8 * i));
		uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), file, (uInt)(n - 4));
		for (int i = 0; i < 4; i++)
			file[n - 4 + i] = (uint8_t)(crc >> (8 * i));
	}
	write_file(path_a, file, n);
	if ((data[0] & 1) == 0) {
		int trained = load_one((nnrt_instance *)moons, file, n);
		int inferred = load_one((nnrt_instance *)moons_i, file, n);
		if (trained && !inferred)
			fail("moons_inf refused a checkpoint that moons accepted");
		if (trained && memcmp(moons_params(moons), moons_inf_params(moons_i), 4 * (size_t)MOONS_PARAM_FLOATS))
			fail("moons and moons_inf loaded different parameters");
	} else {
		load_one((nnrt_instance *)lin, file, n);
	}
	free(file);
	return 0;
}

/* Valid checkpoints after a few training steps, saved through the API. */
static void write_seeds(const char *out)
{
	float x[8][2];
	int32_t yc[8];
	float yr[8];
	for (int i = 0; i < 8; i++) {
		x[i][0] = (float)i / 4 - 1;
		x[i][1] = (float)(i % 3) / 2;
		yc[i] = i % 2;
		yr[i] = x[i][0] - x[i][1];
	}
	struct {
		nnrt_instance *inst;
		const void *y;
		uint8_t selector;
		const char *name;
	} seeds[] = {
		{(nnrt_instance *)moons, yc, 0, "moons"},
		{(nnrt_instance *)moons_i, NULL, 0, "moons-inference-only"},
		{(nnrt_instance *)lin, yr, 1, "linear"},
	};
	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
		nnrt_instance *inst = seeds[i].inst;
		for (int s = 0; seeds[i].y && s < 3; s++)
			if (nnrt_instance_train_step(inst, x[0], seeds[i].y, 8, NULL) != NNRT_OK)
				fail("a seed's training step failed");
		nnrt_instance_set_epoch(inst, 2);
		if (nnrt_instance_save(inst, path_b) != NNRT_OK)
			fail("cannot save a seed");
		size_t n;
		uint8_t *b = read_whole(path_b, &n);
		uint8_t *seed = malloc(n + 1);
		seed[0] = seeds[i].selector;
		memcpy(seed + 1, b, n);
		char name[256];
		snprintf(name, sizeof name, "%s/ckpt-%s", out, seeds[i].name);
		write_file(name, seed, n + 1);
		seed[0] |= 2; /* the same, repaired: a start for mutations behind the checksum */
		snprintf(name, sizeof name, "%s/ckpt-%s-repaired", out, seeds[i].name);
		write_file(name, seed, n + 1);
		free(seed);
		free(b);
	}
}

static void cleanup(void)
{
	moons_free(moons);
	moons_inf_free(moons_i);
	linear_free(lin);
	unlink(path_a);
	unlink(path_b);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof dir, "/tmp/nnc-fuzz-ckpt-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(path_a, sizeof path_a, "%s/a.ckpt", dir);
	snprintf(path_b, sizeof path_b, "%s/b.ckpt", dir);
	int err;
	moons = moons_new(&err);
	moons_i = moons_inf_new(&err);
	lin = linear_new(&err);
	if (!moons || !moons_i || !lin)
		fail("cannot create the instances");
	/* one thread: a parallel region per call would dominate the run time */
	moons_set_threads(moons, 1);
	moons_inf_set_threads(moons_i, 1);
	linear_set_threads(lin, 1);
	atexit(cleanup);
	const char *out = getenv("NNC_FUZZ_WRITE_SEEDS");
	if (out && *out) {
		write_seeds(out);
		exit(0);
	}
	return 0;
}
