/*
 * parallel.c - runs generated bodies on a team of OpenMP threads.
 *
 * A training step is tens of small ops separated by barriers, thousands of
 * times a second, so the cost of synchronisation decides the speed of small
 * networks.  Two measurements on the 2-core VM this was written on: libgomp's
 * `#pragma omp barrier` took about 6 us and opening a parallel region about
 * 9 us (and about 1 ms when its threads had gone to sleep), while a plain
 * spinning barrier took 0.3 us.  Hence:
 *
 *  - nnrt_team() opens ONE OpenMP parallel region for a whole training run:
 *    thread 0 runs the caller's function (the training loop), the other
 *    threads wait for work; nnrt_run() on thread 0 then posts a body and
 *    runs its own share, so a step costs no region start and no thread
 *    wake-up from sleep.
 *  - nnrt_barrier() is our own sense-counting barrier: it spins with `pause`,
 *    then yields the CPU (so that an oversubscribed machine does not starve
 *    the thread being waited for).
 *  Outside nnrt_team(), nnrt_run() opens a region per call (still correct).
 *
 * Determinism: generated code splits work by (tid, nthreads) only, and we
 * forbid OpenMP from shrinking teams (omp_set_dynamic(0)).  Nothing here
 * allocates.
 */
#include "nnrt.h"

#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* 0 = OpenMP's default (OMP_NUM_THREADS, or one per core). */
static int team_size;

void nnrt_set_threads(int n)
{
	if (n < 0)
		n = 0;
	if (n > NNRT_MAX_THREADS)
		n = NNRT_MAX_THREADS;
	team_size = n;
	omp_set_dynamic(0);
}

int nnrt_get_threads(void)
{
	int n = team_size ? team_size : omp_get_max_threads();
	if (n < 1)
		n = 1;
	return n > NNRT_MAX_THREADS ? NNRT_MAX_THREADS : n;
}

/* Waits politely: spin, then yield, then (after a long idle time) sleep. */
static void backoff(unsigned long *spins)
{
	unsigned long s = ++*spins;
	if (s < 2000) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	} else if (s < 200000) {
		sched_yield();
	} else {
		struct timespec ts = {0, 50000};
		nanosleep(&ts, NULL);
	}
}

/* ---- barrier ---- */

static struct {
	_Alignas(64) atomic_int count;
	_Alignas(64) atomic_int gen;
} bar;

void nnrt_barrier(void)
{
	int n = omp_get_num_threads();
	if (n <= 1)
		return;
	int g = atomic_load_explicit(&bar.gen, memory_order_acquire);
	if (atomic_fetch_add_explicit(&bar.count, 1, memory_order_acq_rel) == n - 1) {
		atomic_store_explicit(&bar.count, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(&bar.gen, 1, memory_order_release);
		return;
	}
	unsigned long spins = 0;
	while (atomic_load_explicit(&bar.gen, memory_order_acquire) == g)
		backoff(&spins);
}

/* ---- persistent team ---- */

static struct {
	_Alignas(64) atomic_long posted; /* number of bodies posted, or -1 to stop */
	nnrt_body_fn body;
	nnrt_step_args *args;
	int nthreads;
	bool active;
} team;

static void worker(int tid)
{
	long seen = 0;
	for (;;) {
		unsigned long spins = 0;
		long p;
		while ((p = atomic_load_explicit(&team.posted, memory_order_acquire)) == seen)
			backoff(&spins);
		if (p < 0)
			return;
		seen = p;
		team.body(team.args, tid, team.nthreads);
		nnrt_barrier();
	}
}

int nnrt_team(int (*fn)(void *ctx), void *ctx)
{
	int n = nnrt_get_threads();
	if (n <= 1 || team.active || omp_in_parallel())
		return fn(ctx);
	int rc = 0;
	omp_set_dynamic(0);
	atomic_store(&team.posted, 0);
#pragma omp parallel num_threads(n)
	{
		if (omp_get_thread_num() == 0) {
			team.nthreads = omp_get_num_threads();
			team.active = true;
			rc = fn(ctx);
			team.active = false;
			atomic_store_explicit(&team.posted, -1, memory_order_release);
		} else {
			worker(omp_get_thread_num());
		}
	}
	return rc;
}

void nnrt_run(nnrt_body_fn body, nnrt_step_args *args)
{
	if (team.active && omp_get_thread_num() == 0 && omp_in_parallel()) {
		team.body = body;
		team.args = args;
		atomic_fetch_add_explicit(&team.posted, 1, memory_order_release);
		body(args, 0, team.nthreads);
		nnrt_barrier(); /* every thread has finished this body */
		return;
	}
	int n = nnrt_get_threads();
	if (n == 1) {
		body(args, 0, 1);
		return;
	}
	omp_set_dynamic(0);
#pragma omp parallel num_threads(n)
	body(args, (int32_t)omp_get_thread_num(), (int32_t)omp_get_num_threads());
}
