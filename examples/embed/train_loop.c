/*
 * train_loop.c - trains a network inside the program's own loop, through the
 * header `nnc moons.nn -c` writes (moons.h): the program makes its own data
 * (two interleaved half-moons, as a simulation would produce samples), feeds
 * it batch by batch, watches the loss and measures the accuracy.
 *
 *   ./train_loop [--epochs N] [--threads N] [--save FILE]
 *
 * The instance lives in this program's static memory (moons_new_in): the
 * runtime allocates nothing.  A checkpoint saved here is the training
 * binary's format: `./moons --load FILE --eval` evaluates it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moons.h"

enum { TRAIN = 2000, TEST = 1000 };

/* xorshift64*: the program's own random numbers. */
static uint64_t rng_state = 42;
static double uniform(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static double normal(void)
{
	double u = uniform(), v = uniform();
	return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* Sample i of a half-moon set: class 0 the upper moon, class 1 the lower. */
static void moon(float *x, int32_t *y)
{
	double t = 3.14159265358979323846 * uniform();
	int c = uniform() < 0.5;
	x[0] = (float)((c ? 1.0 - cos(t) : cos(t)) + 0.1 * normal());
	x[1] = (float)((c ? 0.5 - sin(t) : sin(t)) + 0.1 * normal());
	*y = c;
}

static _Alignas(MOONS_MEMORY_ALIGN) unsigned char memory[MOONS_MEMORY_SIZE];
static float train_x[TRAIN][MOONS_INPUT_SIZE], test_x[TEST][MOONS_INPUT_SIZE];
static int32_t train_y[TRAIN], test_y[TEST];

int main(int argc, char **argv)
{
	int epochs = 20, threads = 0;
	const char *save = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--epochs"))
			epochs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--save"))
			save = argv[i + 1];
	}
	if (argc % 2 == 0 || epochs < 1) {
		fprintf(stderr, "usage: train_loop [--epochs N] [--threads N] [--save FILE]\n");
		return 2;
	}
	for (int i = 0; i < TRAIN; i++)
		moon(train_x[i], &train_y[i]);
	for (int i = 0; i < TEST; i++)
		moon(test_x[i], &test_y[i]);

	int err;
	moons_instance *net = moons_new_in(memory, sizeof memory, &err);
	if (!net || (err = moons_set_threads(net, threads))) {
		fprintf(stderr, "train_loop: %s\n", nnrt_strerror(err));
		return 1;
	}
	printf("moons: %d parameters, %u bytes of instance memory, batch %d\n", MOONS_PARAM_COUNT,
	       (unsigned)MOONS_MEMORY_SIZE, MOONS_BATCH);

	static int order[TRAIN];
	for (int i = 0; i < TRAIN; i++)
		order[i] = i;
	float xb[MOONS_BATCH][MOONS_INPUT_SIZE];
	int32_t yb[MOONS_BATCH];
	for (int e = 1; e <= epochs; e++) {
		for (int i = TRAIN - 1; i > 0; i--) { /* shuffle */
			int j = (int)(uniform() * (i + 1)), t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		double sum = 0;
		for (int b = 0; b < TRAIN; b += MOONS_BATCH) {
			int n = TRAIN - b < MOONS_BATCH ? TRAIN - b : MOONS_BATCH;
			for (int k = 0; k < n; k++) {
				memcpy(xb[k], train_x[order[b + k]], sizeof xb[k]);
				yb[k] = train_y[order[b + k]];
			}
			float loss;
			if ((err = moons_train_step(net, &xb[0][0], yb, n, &loss))) {
				fprintf(stderr, "train_loop: %s (%s)\n", nnrt_strerror(err), moons_error(net));
				return 1;
			}
			sum += (double)loss * n;
		}
		printf("epoch %2d  loss %.4f\n", e, sum / TRAIN);
		moons_set_epoch(net, e); /* recorded in the checkpoint, for ./moons --resume */
	}
	double loss, acc;
	if ((err = moons_evaluate(net, &test_x[0][0], test_y, TEST, &loss, &acc))) {
		fprintf(stderr, "train_loop: %s\n", nnrt_strerror(err));
		return 1;
	}
	printf("test  loss %.4f  accuracy %.4f\n", loss, acc);
	if (save) {
		if ((err = moons_save(net, save))) {
			fprintf(stderr, "train_loop: %s (%s)\n", nnrt_strerror(err), moons_error(net));
			return 1;
		}
		printf("saved %s\n", save);
	}
	moons_free(net);
	return 0;
}
