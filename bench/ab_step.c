/*
 * ab_step.c - two builds of one model, side by side in one process: the
 * train step of each (the embedding API) on the same batches, in turns of
 * 20 steps inside one nnrt_team, so that both see the same machine from
 * moment to moment.  Prints each build's fastest and median time per step
 * over the turns and the median over turns of b's time / a's.
 *
 * On this VM the speed of a core drifts by 10-30 % from minute to minute
 * and a second core comes and goes; two binaries run one after the other
 * compare their luck as much as their code.  Taking turns inside one
 * process leaves a ratio per turn that drifts far less.
 *
 *   nnc MODEL.nn -c --prefix a -o a.o                 # the build to compare against
 *   NNC_OWNED_TAIL=0 nnc MODEL.nn -c --prefix b -o b.o   # or another nnc, other flags
 *   cc -O2 -fopenmp -I. -Iruntime bench/ab_step.c a.o b.o build/runtime/libnnrt.a -lm -lz -o ab
 *   ./ab THREADS [STEPS]
 *
 * The batches are uniform noise with random labels (what is timed is the
 * step, not learning); 200 different batches, so that the inputs stream
 * from memory as a real epoch's do.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "a.h"
#include "b.h"

#define BATCHES 200
#define TURN 20
#define MAX_TURNS 4096

static a_instance *na;
static b_instance *nb;
static float *xs;
static int32_t *ys;
static int steps;
static double ta[MAX_TURNS], tb[MAX_TURNS];
static int turns;

static const float *batch_x(int i) { return xs + (size_t)(i % BATCHES) * A_BATCH * A_INPUT_SIZE; }
static const int32_t *batch_y(int i) { return ys + (size_t)(i % BATCHES) * A_BATCH; }

static int run(void *ctx)
{
	(void)ctx;
	float loss;
	for (int s = 0; s < 100; s++) { /* warm up both */
		a_train_step(na, batch_x(s), batch_y(s), A_BATCH, &loss);
		b_train_step(nb, batch_x(s), batch_y(s), A_BATCH, &loss);
	}
	for (int k = 0; k * TURN < steps && turns < MAX_TURNS; k++, turns++) {
		double t0 = omp_get_wtime();
		for (int s = 0; s < TURN; s++)
			a_train_step(na, batch_x(k * TURN + s), batch_y(k * TURN + s), A_BATCH, &loss);
		double t1 = omp_get_wtime();
		for (int s = 0; s < TURN; s++)
			b_train_step(nb, batch_x(k * TURN + s), batch_y(k * TURN + s), A_BATCH, &loss);
		double t2 = omp_get_wtime();
		ta[turns] = (t1 - t0) / TURN;
		tb[turns] = (t2 - t1) / TURN;
	}
	return 0;
}

static int by_value(const void *p, const void *q)
{
	double x = *(const double *)p, y = *(const double *)q;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s THREADS [STEPS]\n", argv[0]);
		return 2;
	}
	int threads = atoi(argv[1]);
	steps = argc > 2 ? atoi(argv[2]) : 4000;
	if (A_BATCH != B_BATCH || A_INPUT_SIZE != B_INPUT_SIZE || A_OUTPUT_SIZE != B_OUTPUT_SIZE) {
		fprintf(stderr, "ab_step: a and b are not builds of one model\n");
		return 2;
	}
	int err;
	na = a_new(&err);
	nb = b_new(&err);
	xs = malloc(sizeof(float) * BATCHES * A_BATCH * A_INPUT_SIZE);
	ys = malloc(sizeof(int32_t) * BATCHES * A_BATCH);
	if (!na || !nb || !xs || !ys) {
		fprintf(stderr, "ab_step: out of memory\n");
		return 1;
	}
	a_init(na, 1);
	b_init(nb, 1);
	a_set_lr(na, 0.001f); /* small steps: the weights stay in range however long it runs */
	b_set_lr(nb, 0.001f);
	srand(1);
	for (size_t i = 0; i < (size_t)BATCHES * A_BATCH * A_INPUT_SIZE; i++)
		xs[i] = (float)rand() / (float)RAND_MAX;
	for (int i = 0; i < BATCHES * A_BATCH; i++)
		ys[i] = rand() % A_OUTPUT_SIZE;
	nnrt_set_threads(threads);
	nnrt_team(run, NULL);
	double *ratio = malloc(sizeof(double) * (size_t)turns);
	for (int i = 0; i < turns; i++)
		ratio[i] = tb[i] / ta[i];
	qsort(ta, (size_t)turns, sizeof(double), by_value);
	qsort(tb, (size_t)turns, sizeof(double), by_value);
	qsort(ratio, (size_t)turns, sizeof(double), by_value);
	printf("threads %d, %d turns of %d steps: a %.1f us a step (fastest turn), %.1f (median); "
	       "b %.1f, %.1f; b / a, median of the turns: %.3f\n",
	       threads, turns, TURN, ta[0] * 1e6, ta[turns / 2] * 1e6, tb[0] * 1e6, tb[turns / 2] * 1e6,
	       ratio[turns / 2]);
	free(ratio);
	a_free(na);
	b_free(nb);
	free(xs);
	free(ys);
	return 0;
}
