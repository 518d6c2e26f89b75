/*
 * train_mpi.c - a program that already uses MPI trains one network with
 * all its ranks: each rank holds an instance of the model (moons.h, from
 * `nnc moons.nn -c --chunks 4`), hands the runtime its communicator, and
 * then runs the same training loop with the same data on every rank; the
 * runtime gives each rank its chunks of each batch and exchanges the
 * results (docs/distributed.md), so the parameters after every step are,
 * byte for byte, those of one process running this loop.
 *
 *   nnc moons.nn -c --chunks 4 -o moons.o
 *   mpicc -O2 -I. train_mpi.c moons.o -lnnrt_mpi -lnnrt -fopenmp -lz -lm -o train_mpi
 *   mpirun -np 2 ./train_mpi [--epochs N] [--threads N] [--save FILE]
 *
 * Every rank makes the same data from the same seed, as every rank of a
 * real program would read the same files; rank 0 alone prints and saves.
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moons.h"
#include "nnrt_mpi.h"

enum { TRAIN = 2000, TEST = 1000 };

/* xorshift64*: the program's own random numbers, the same on every rank. */
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

static void moon(float *x, int32_t *y)
{
	double t = 3.14159265358979323846 * uniform();
	int c = uniform() < 0.5;
	x[0] = (float)((c ? 1.0 - cos(t) : cos(t)) + 0.1 * normal());
	x[1] = (float)((c ? 0.5 - sin(t) : sin(t)) + 0.1 * normal());
	*y = c;
}

static float train_x[TRAIN][MOONS_INPUT_SIZE], test_x[TEST][MOONS_INPUT_SIZE];
static int32_t train_y[TRAIN], test_y[TEST];

static int fail(moons_instance *net, int err, const char *what)
{
	fprintf(stderr, "train_mpi: %s: %s (%s)\n", what, nnrt_strerror(err), net ? moons_error(net) : "");
	MPI_Abort(MPI_COMM_WORLD, 1); /* the other ranks would wait for this one forever */
	return 1;
}

int main(int argc, char **argv)
{
	int provided, rank, size;
	/* the runtime's exchanges run on the thread that calls train_step */
	MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	int epochs = 10, threads = 1;
	const char *save = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--epochs"))
			epochs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--save"))
			save = argv[i + 1];
	}
	for (int i = 0; i < TRAIN; i++)
		moon(train_x[i], &train_y[i]);
	for (int i = 0; i < TEST; i++)
		moon(test_x[i], &test_y[i]);

	int err;
	moons_instance *net = moons_new(&err);
	if (!net || (err = moons_set_threads(net, threads)))
		return fail(net, err, "new");
	/* collective: checks that every rank runs the same model object and
	 * copies rank 0's parameters to all.  moons_instance is an
	 * nnrt_instance (the header's NNRT_PTR_CAST). */
	if ((err = nnrt_instance_set_mpi_comm(NNRT_PTR_CAST(nnrt_instance *, net), MPI_COMM_WORLD, 0)))
		return fail(net, err, "set_mpi_comm");
	if (rank == 0)
		printf("moons: %d ranks, batch %d\n", size, MOONS_BATCH);

	static int order[TRAIN];
	for (int i = 0; i < TRAIN; i++)
		order[i] = i;
	float xb[MOONS_BATCH][MOONS_INPUT_SIZE];
	int32_t yb[MOONS_BATCH];
	for (int e = 1; e <= epochs; e++) {
		for (int i = TRAIN - 1; i > 0; i--) { /* the same shuffle on every rank */
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
			float loss; /* the whole batch's, on every rank */
			if ((err = moons_train_step(net, &xb[0][0], yb, n, &loss)))
				return fail(net, err, "train_step");
			sum += (double)loss * n;
		}
		if (rank == 0)
			printf("epoch %2d  loss %.4f\n", e, sum / TRAIN);
		moons_set_epoch(net, e);
	}
	double loss, acc; /* collective too: each rank evaluates its chunks */
	if ((err = moons_evaluate(net, &test_x[0][0], test_y, TEST, &loss, &acc)))
		return fail(net, err, "evaluate");
	if (rank == 0) {
		printf("test  loss %.4f  accuracy %.4f\n", loss, acc);
		if (save && (err = moons_save(net, save)))
			return fail(net, err, "save");
	}
	moons_free(net); /* releases the runtime's copy of the communicator */
	MPI_Finalize();
	return 0;
}
