/*
 * aug_cost.c - what augmentation costs per image, alone: the runtime's
 * nnrt_augment_batch (the train block's augment:, run by the threads that
 * gather a batch) over an epoch of Fashion-MNIST-shaped images, on one
 * thread, in CPU time.  Set against the CPU time a LeNet training step
 * takes per sample (bench/README.md, "Augmentation"), it says how much
 * augment: [crop(pad: 2), flip] can slow training down, free of the noise
 * of whole training runs on a shared machine.
 *
 *   cc -O2 -Iruntime bench/aug_cost.c build/runtime/libnnrt.a -fopenmp -lz -lm -o /tmp/aug_cost
 *   /tmp/aug_cost [pad] [flip_p] [erase_size]
 */
#define _POSIX_C_SOURCE 200809L
#include "nnrt_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	enum { N = 60000, D = 784, BATCH = 64, REPS = 7 };
	nnrt_model m;
	memset(&m, 0, sizeof m);
	m.input_shape[0] = 1, m.input_shape[1] = 28, m.input_shape[2] = 28;
	m.input_rank = 3, m.input_size = D;
	m.aug_crop_pad = argc > 1 ? atoi(argv[1]) : 2;
	m.aug_flip_p = argc > 2 ? (float)atof(argv[2]) : 0.5f;
	m.aug_erase_size = argc > 3 ? atoi(argv[3]) : 0;
	m.aug_erase_p = 0.5f;
	float *x = malloc((size_t)BATCH * D * sizeof(float)), *src = malloc((size_t)BATCH * D * sizeof(float));
	int64_t idx[BATCH];
	for (int i = 0; i < BATCH * D; i++)
		src[i] = (float)(i % 251) / 251.0f;
	double t[REPS];
	for (int r = 0; r < REPS; r++) {
		double t0 = cpu_seconds();
		for (int64_t b = 0; b < N; b += BATCH) {
			memcpy(x, src, sizeof(float) * BATCH * D); /* the gather's output, fresh each batch */
			for (int i = 0; i < BATCH; i++)
				idx[i] = b + i;
			nnrt_augment_batch(&m, nnrt_augment_key(1, r + 1), idx, BATCH, x);
		}
		t[r] = cpu_seconds() - t0;
	}
	/* the copy alone, to subtract */
	double c0 = cpu_seconds();
	for (int r = 0; r < REPS; r++)
		for (int64_t b = 0; b < N; b += BATCH) {
			memcpy(x, src, sizeof(float) * BATCH * D);
			__asm__ volatile("" : : "r"(x) : "memory");
		}
	double copy = (cpu_seconds() - c0) / REPS;
	qsort(t, REPS, sizeof t[0], cmp);
	printf("augment crop(pad: %d) flip(p: %g) erase(size: %d): %d images, CPU s per epoch: min %.4f median %.4f max "
	       "%.4f (copy %.4f subtracted: %.0f ns per image, median)\n",
	       (int)m.aug_crop_pad, (double)m.aug_flip_p, (int)m.aug_erase_size, N, t[0] - copy, t[REPS / 2] - copy,
	       t[REPS - 1] - copy, copy, 1e9 * (t[REPS / 2] - copy) / N);
	free(x);
	free(src);
	return 0;
}
