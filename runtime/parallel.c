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
 * No global mutable state: every team (a region opened by nnrt_run, or a
 * persistent team) has its own barrier, on the stack of the function that
 * opened it.  Generated code calls nnrt_barrier() with no arguments, so each
 * thread finds its team's barrier through a _Thread_local pointer set when
 * it joins the team and restored when it leaves.  Two user threads that each
 * run a model (two instances through the embedding API, or two nnrt_team()
 * runs) therefore never share a barrier.  The one process-wide setting is the
 * default team size of nnrt_set_threads().
 *
 * Chunks and groups: a chunked body asks nnrt_chunks_begin() which of the
 * step's chunks this thread runs.  With no more threads than chunks each
 * thread runs its chunks alone; with more, the threads form one group per
 * chunk and split each op of it (docs/architecture.md, "Parallel
 * schedule"), and nnrt_barrier() between those ops waits for the group
 * only, on a barrier of the team's kept for that group, until
 * nnrt_chunks_end().
 *
 * Determinism: generated code splits work by (tid, nthreads) only, every op
 * computes the same whatever its share, and we forbid OpenMP from
 * shrinking teams (omp_set_dynamic(0)).  Nothing here allocates.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, under -std=c17 */
#include "nnrt_internal.h"

#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* 0 = OpenMP's default (OMP_NUM_THREADS, or one per core).  Atomic: any
 * thread may read it while another sets it. */
static atomic_int team_size;

static int clamp_threads(int n)
{
	if (n < 0)
		n = 0;
	return n > NNRT_MAX_THREADS ? NNRT_MAX_THREADS : n;
}

void nnrt_set_threads(int n)
{
	atomic_store_explicit(&team_size, clamp_threads(n), memory_order_relaxed);
	omp_set_dynamic(0);
}

int nnrt_get_threads(void)
{
	int n = atomic_load_explicit(&team_size, memory_order_relaxed);
	if (!n)
		n = omp_get_max_threads();
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

/* The barrier of one team; zero-initialised by whoever opens the team. */
typedef struct team_barrier {
	_Alignas(64) atomic_int count;
	_Alignas(64) atomic_int gen;
} team_barrier;

/* The barrier of one group of threads sharing a chunk (nnrt_chunks_begin):
 * one cache line, since a group is small.  A team keeps NNRT_MAX_THREADS / 2
 * of them: a group of two or more threads [first, first + size) uses slot
 * first / 2, distinct for any two such groups (their first threads are two
 * or more apart); a group of one needs none. */
typedef struct group_barrier {
	_Alignas(64) atomic_int count;
	atomic_int gen;
} group_barrier;

#define NNRT_GROUP_SLOTS (NNRT_MAX_THREADS / 2)

/* This thread's current team: its barrier and size (NULL, 1 outside any),
 * its group barriers, and inside nnrt_chunks_begin .. _end its group's
 * barrier and size (my_group_n > 0). */
static _Thread_local team_barrier *my_barrier;
static _Thread_local int my_nthreads = 1;
static _Thread_local group_barrier *my_groups;
static _Thread_local group_barrier *my_group;
static _Thread_local int my_group_n;
/* With a profile on: the seconds this thread waited in barriers so far,
 * and when it began its chunks (profile.c's busy time). */
static _Thread_local double my_waited, my_chunks_t0;
static _Thread_local int my_chunks_tid = -1;

/* Arrives at a sense-counting barrier of n threads and waits for the others. */
static void arrive(atomic_int *count, atomic_int *gen, int n)
{
	int g = atomic_load_explicit(gen, memory_order_acquire);
	if (atomic_fetch_add_explicit(count, 1, memory_order_acq_rel) == n - 1) {
		atomic_store_explicit(count, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(gen, 1, memory_order_release);
		return;
	}
	double t0 = nnrt_prof_on() ? omp_get_wtime() : 0;
	unsigned long spins = 0;
	while (atomic_load_explicit(gen, memory_order_acquire) == g)
		backoff(&spins);
	if (t0 > 0)
		my_waited += omp_get_wtime() - t0;
}

void nnrt_barrier(void)
{
	if (my_group_n) {
		if (my_group_n > 1)
			arrive(&my_group->count, &my_group->gen, my_group_n);
		return;
	}
	team_barrier *b = my_barrier;
	int n = my_nthreads;
	if (n <= 1 || !b)
		return;
	arrive(&b->count, &b->gen, n);
}

/* Joining a team: remembers the thread's previous team, to restore it. */
typedef struct membership {
	team_barrier *barrier;
	int nthreads;
	group_barrier *groups;
} membership;

static membership join(team_barrier *b, int nthreads, group_barrier *groups)
{
	membership old = {my_barrier, my_nthreads, my_groups};
	my_barrier = b;
	my_nthreads = nthreads;
	my_groups = groups;
	return old;
}

static void leave(membership old)
{
	my_barrier = old.barrier;
	my_nthreads = old.nthreads;
	my_groups = old.groups;
}

/* ---- chunks ---- */

void nnrt_chunks_begin(int64_t lo, int64_t hi, int32_t tid, int32_t nthreads, int64_t *share)
{
	int64_t k = hi > lo ? hi - lo : 0, t = tid, n = nthreads > 0 ? nthreads : 1;
	int64_t size = 1, first = t;
	/* alone, on chunks [t k / n, (t + 1) k / n); also outside a team of
	 * ours (no group barriers), where nnrt_barrier could not wait either */
	if (n <= k || k == 0 || !my_groups) {
		share[0] = lo + t * k / n;
		share[1] = lo + (t + 1) * k / n;
		share[2] = 0;
	} else { /* group g: threads [ceil(g n / k), ceil((g + 1) n / k)) on chunk g */
		int64_t g = t * k / n;
		first = (g * n + k - 1) / k;
		size = ((g + 1) * n + k - 1) / k - first;
		share[0] = lo + g;
		share[1] = lo + g + 1;
		share[2] = t - first;
	}
	share[3] = size;
	my_group_n = (int)size;
	my_group = size > 1 ? &my_groups[first / 2] : NULL;
	my_chunks_tid = -1;
	if (nnrt_prof_on()) {
		nnrt_prof_team(tid, nthreads);
		if (share[1] > share[0]) {
			my_chunks_tid = tid;
			my_waited = 0;
			my_chunks_t0 = omp_get_wtime();
		}
	}
}

void nnrt_chunks_end(void)
{
	my_group_n = 0;
	my_group = NULL;
	if (my_chunks_tid >= 0) {
		nnrt_prof_busy(my_chunks_tid, omp_get_wtime() - my_chunks_t0 - my_waited);
		my_chunks_tid = -1;
	}
}

static void init_groups(group_barrier *g)
{
	for (int i = 0; i < NNRT_GROUP_SLOTS; i++) {
		atomic_init(&g[i].count, 0);
		atomic_init(&g[i].gen, 0);
	}
}

/* ---- persistent team ---- */

typedef struct team {
	_Alignas(64) atomic_long posted; /* number of bodies posted, or -1 to stop */
	nnrt_body_fn body;
	nnrt_step_args *args;
	int nthreads;
	int active; /* threads that run the posted body: 1..nthreads */
	int level;  /* omp_get_level() inside the team's region */
	team_barrier barrier;
	team_barrier sub; /* the barrier of the active threads, when fewer than all */
	group_barrier groups[NNRT_GROUP_SLOTS]; /* of the active threads' groups */
} team;

/* Set on thread 0 of a persistent team while the caller's function runs. */
static _Thread_local team *my_team;

/* Thread tid's share of the posted body.  A call that asked for fewer
 * threads than the team has (nnrt_instance_set_threads) runs on threads
 * 0..active-1 with a barrier of their own; the others only wait at the
 * team's barrier after it. */
static void run_share(team *t, int tid)
{
	if (t->active == t->nthreads) {
		t->body(t->args, tid, t->nthreads);
	} else if (tid < t->active) {
		membership old = join(&t->sub, t->active, t->groups);
		t->body(t->args, tid, t->active);
		leave(old);
	}
}

static void worker(team *t, int tid)
{
	long seen = 0;
	for (;;) {
		unsigned long spins = 0;
		long p;
		while ((p = atomic_load_explicit(&t->posted, memory_order_acquire)) == seen)
			backoff(&spins);
		if (p < 0)
			return;
		seen = p;
		run_share(t, tid);
		nnrt_barrier();
	}
}

int nnrt_team(int (*fn)(void *ctx), void *ctx)
{
	int n = nnrt_get_threads();
	if (n <= 1 || my_team || omp_in_parallel())
		return fn(ctx);
	team t = {.nthreads = 1};
	atomic_init(&t.posted, 0);
	atomic_init(&t.barrier.count, 0);
	atomic_init(&t.barrier.gen, 0);
	atomic_init(&t.sub.count, 0);
	atomic_init(&t.sub.gen, 0);
	init_groups(t.groups);
	int rc = 0;
	omp_set_dynamic(0);
#pragma omp parallel num_threads(n)
	{
		int nt = omp_get_num_threads();
		membership old = join(&t.barrier, nt, t.groups);
		if (omp_get_thread_num() == 0) {
			/* published to the workers by the release in nnrt_run */
			t.nthreads = nt;
			t.level = omp_get_level();
			my_team = &t;
			rc = fn(ctx);
			my_team = NULL;
			atomic_store_explicit(&t.posted, -1, memory_order_release);
		} else {
			worker(&t, omp_get_thread_num());
		}
		leave(old);
	}
	return rc;
}

/* ---- running one body ---- */

void nnrt_run_threads(nnrt_body_fn body, nnrt_step_args *args, int nthreads)
{
	team *t = my_team;
	int n = clamp_threads(nthreads);
	if (t && omp_get_level() == t->level) {
		t->body = body;
		t->args = args;
		t->active = n && n < t->nthreads ? n : t->nthreads;
		atomic_fetch_add_explicit(&t->posted, 1, memory_order_release);
		run_share(t, 0);
		nnrt_barrier(); /* every thread has finished this body */
		return;
	}
	if (!n)
		n = nnrt_get_threads();
	if (n == 1) {
		membership old = join(NULL, 1, NULL);
		body(args, 0, 1);
		leave(old);
		return;
	}
	team_barrier b;
	group_barrier groups[NNRT_GROUP_SLOTS];
	atomic_init(&b.count, 0);
	atomic_init(&b.gen, 0);
	init_groups(groups);
	omp_set_dynamic(0);
#pragma omp parallel num_threads(n)
	{
		int nt = omp_get_num_threads();
		membership old = join(&b, nt, groups);
		body(args, (int32_t)omp_get_thread_num(), (int32_t)nt);
		leave(old);
	}
}

void nnrt_run(nnrt_body_fn body, nnrt_step_args *args)
{
	nnrt_run_threads(body, args, 0);
}
