/*
 * infer_bench.c - inference throughput of a model compiled with
 *     nnc MODEL.nn -c --prefix model -o model.o
 * through its generated header (model.h), on the Fashion-MNIST test images:
 * forward passes at batch 64 and at batch 1, for as many rounds over the
 * 10,000 images as fit in about a second each.  Parameters come from a seed:
 * throughput does not depend on their values.
 *
 * The calls run inside nnrt_team(), as docs/embedding.md advises for a loop
 * of calls: one team of threads for the whole loop instead of a parallel
 * region per call (about 3 us each on this machine).
 *
 * usage: infer_bench THREADS [IMAGES.gz]    prints one JSON line
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "model.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* IDX images (gzip) scaled as the model's data source says. */
static float *load_images(const char *path, int64_t *count)
{
	gzFile f = gzopen(path, "rb");
	unsigned char h[16];
	if (!f || gzread(f, h, 16) != 16) {
		fprintf(stderr, "infer_bench: cannot read %s\n", path);
		exit(1);
	}
	int64_t n = (int64_t)h[4] << 24 | h[5] << 16 | h[6] << 8 | h[7];
	int64_t dim = ((int64_t)h[8] << 24 | h[9] << 16 | h[10] << 8 | h[11]) *
		      ((int64_t)h[12] << 24 | h[13] << 16 | h[14] << 8 | h[15]);
	if (dim != MODEL_INPUT_SIZE || n <= 0) {
		fprintf(stderr, "infer_bench: %s has %lld values per image, the model wants %d\n", path,
			(long long)dim, MODEL_INPUT_SIZE);
		exit(1);
	}
	unsigned char *raw = malloc((size_t)(n * dim));
	float *x = malloc(sizeof(float) * (size_t)(n * dim));
	if (!raw || !x || gzread(f, raw, (unsigned)(n * dim)) != (int)(n * dim)) {
		fprintf(stderr, "infer_bench: %s is truncated\n", path);
		exit(1);
	}
	gzclose(f);
	for (int64_t i = 0; i < n * dim; i++)
		x[i] = (float)raw[i] * MODEL_DATA_SCALE + MODEL_DATA_SHIFT;
	free(raw);
	*count = n;
	return x;
}

/* Samples per second of model_infer in chunks of `batch`. */
static double throughput(model_instance *net, const float *x, int64_t n, int64_t batch, float *out)
{
	double t0 = now(), t;
	int64_t done = 0;
	do {
		for (int64_t i = 0; i < n; i += batch) {
			int64_t k = n - i < batch ? n - i : batch;
			if (model_infer(net, x + i * MODEL_INPUT_SIZE, k, out)) {
				fprintf(stderr, "infer_bench: %s\n", model_error(net));
				exit(1);
			}
			done += k;
		}
		t = now() - t0;
	} while (t < 1.0);
	return (double)done / t;
}

typedef struct bench {
	model_instance *net;
	const float *x;
	int64_t n;
	float *out;
	double b64, b1;
} bench;

static int measure(void *ctx)
{
	bench *b = ctx;
	b->b64 = throughput(b->net, b->x, b->n, 64, b->out);
	b->b1 = throughput(b->net, b->x, b->n, 1, b->out);
	return 0;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	const char *path = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
	int64_t n;
	float *x = load_images(path, &n);
	int err;
	model_instance *net = model_new(&err);
	if (!net || model_init(net, 1) || model_set_threads(net, threads)) {
		fprintf(stderr, "infer_bench: cannot create the model: %s\n", nnrt_strerror(err));
		return 1;
	}
	float *out = malloc(sizeof(float) * MODEL_OUTPUT_SIZE * 64);
	bench b = {net, x, n, out, 0, 0};
	nnrt_set_threads(threads); /* the team's size */
	nnrt_team(measure, &b);
	printf("{\"threads\": %d, \"infer_batch64\": %.0f, \"infer_batch1\": %.0f}\n", threads, b.b64, b.b1);
	model_free(net);
	free(out);
	free(x);
	return 0;
}
