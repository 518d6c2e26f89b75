/*
 * profile.c - where a training step spends its time, from the ticks that
 * bodies compiled with `nnc --profile` emit after every op.
 *
 * Thread 0 of the team attributes the time since the previous tick to the op
 * that just finished, barrier included: that is the op's share of the wall
 * clock, load imbalance and all.  Only steps run between nnrt_prof_enable(1)
 * and nnrt_prof_enable(0) count (the training binary enables it around
 * train_step when its model was compiled with --profile).  Process-wide state: profiles are for
 * the training binaries, not for embedded instances.
 *
 * Every thread also reports its busy time in the chunks of the forward and
 * backward pass (parallel.c: from nnrt_chunks_begin to _end, less the time
 * it waited in barriers), so that the report shows whether every thread of
 * the team got work (docs/architecture.md, "Parallel schedule").
 */
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "nnrt_internal.h"

#define MAX_OPS 1024

static struct {
	atomic_int on; /* read by every thread of the team */
	double last;
	double busy[NNRT_MAX_THREADS]; /* busy[t]: written by thread t only */
	int team;      /* threads of the latest profiled step */
	double seconds[MAX_OPS];
	int64_t calls[MAX_OPS];
	int64_t samples; /* summed over profiled steps */
	int64_t steps;
} prof;

int nnrt_prof_on(void) { return atomic_load_explicit(&prof.on, memory_order_relaxed); }

void nnrt_prof_team(int32_t tid, int32_t nthreads)
{
	if (tid == 0)
		prof.team = nthreads < NNRT_MAX_THREADS ? nthreads : NNRT_MAX_THREADS;
}

void nnrt_prof_busy(int32_t tid, double seconds)
{
	if (tid >= 0 && tid < NNRT_MAX_THREADS)
		prof.busy[tid] += seconds;
}

void nnrt_prof_tick(int32_t op)
{
	if (!nnrt_prof_on() || omp_get_thread_num() != 0)
		return;
	double t = omp_get_wtime();
	if (op >= 0 && op < MAX_OPS) {
		prof.seconds[op] += t - prof.last;
		prof.calls[op]++;
	}
	prof.last = t;
}

void nnrt_prof_enable(int on, int64_t samples)
{
	atomic_store_explicit(&prof.on, on, memory_order_relaxed);
	if (on) {
		prof.samples += samples;
		prof.steps++;
	}
}

static double gflops(double flops, double seconds) { return seconds > 0 ? flops / seconds / 1e9 : 0; }

void nnrt_prof_report(const nnrt_model *m)
{
	if (!m->profiled || !m->ops || !prof.steps) {
		if (!m->profiled)
			fprintf(stderr, "%s: no profile: compile the model with nnc --profile\n", m->name);
		return;
	}
	int n = m->n_ops < MAX_OPS ? m->n_ops : MAX_OPS;
	double total = 0;
	for (int i = 0; i < n; i++)
		total += prof.seconds[i];
	printf("\nprofile: %lld training steps, %lld samples, %.3f s in the steps (%.1f us per step)\n",
	       (long long)prof.steps, (long long)prof.samples, total, total / (double)prof.steps * 1e6);
	printf("  %-34s %-12s %9s %6s %9s\n", "op", "class", "ms", "%", "GFLOP/s");
	for (int i = 0; i < n; i++) {
		const nnrt_op_info *o = &m->ops[i];
		double fl = o->flops_per_sample * (double)prof.samples + o->flops_per_step * (double)prof.steps;
		printf("  %-34.34s %-12s %9.2f %6.1f", o->name, o->kind, prof.seconds[i] * 1e3,
		       total > 0 ? 100 * prof.seconds[i] / total : 0);
		if (fl > 0)
			printf(" %9.1f", gflops(fl, prof.seconds[i]));
		printf("\n");
	}
	/* per kernel class, in order of first appearance */
	printf("  by class:\n");
	for (int i = 0; i < n; i++) {
		int first = 1;
		for (int j = 0; j < i; j++)
			first &= strcmp(m->ops[j].kind, m->ops[i].kind) != 0;
		if (!first)
			continue;
		double sec = 0, fl = 0;
		for (int j = i; j < n; j++)
			if (!strcmp(m->ops[j].kind, m->ops[i].kind)) {
				sec += prof.seconds[j];
				fl += m->ops[j].flops_per_sample * (double)prof.samples +
				      m->ops[j].flops_per_step * (double)prof.steps;
			}
		printf("    %-12s %9.2f ms %6.1f %%", m->ops[i].kind, sec * 1e3, total > 0 ? 100 * sec / total : 0);
		if (fl > 0)
			printf("  %7.1f GFLOP/s", gflops(fl, sec));
		printf("\n");
	}
	if (prof.team > 0) {
		printf("  busy in the forward and backward chunks, ms per thread (%d thread%s):\n   ", prof.team,
		       prof.team == 1 ? "" : "s");
		for (int t = 0; t < prof.team; t++)
			printf(" %d: %.2f%s", t, prof.busy[t] * 1e3, (t + 1) % 8 || t + 1 == prof.team ? "" : "\n   ");
		printf("\n");
	}
	memset(&prof, 0, sizeof prof);
}
