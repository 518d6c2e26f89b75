/*
 * progress_cost.c - what the training binary's progress bar
 * (runtime/progress.c) costs the thread that trains, measured per call in
 * that thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that other processes
 * competing for the cores do not enter the figures:
 *
 *   step    nnrt_progress_step() between two redraws: what every training
 *           step pays on a terminal (one clock read and a compare);
 *   redraw  nnrt_progress_draw() and the fflush(stdout) train.c does after
 *           it, written to a pseudo-terminal whose other side a child
 *           process reads (as a terminal emulator would), 100 columns wide.
 *
 * The bar's share of a run is then (steps/s x step + redraws/s x redraw)
 * per second of training; bench/README.md has the figures for LeNet.
 *
 *   bash scripts/build.sh
 *   cc -O2 -Iruntime bench/progress_cost.c build/runtime/libnnrt.a -fopenmp -lz -lm -lutil -o /tmp/progress_cost
 *   /tmp/progress_cost
 */
#define _DEFAULT_SOURCE

#include "nnrt_internal.h"

#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
	enum { STEPS = 20000000, DRAWS = 20000 };
	nnrt_progress p;

	/* Steps that do not redraw: the next redraw is never due. */
	nnrt_progress_begin(&p, 1, 1, "epoch  1/10", 0, INT64_MAX);
	p.next = 1e300;
	double loss = 0, t0 = cpu_now();
	int drew = 0;
	for (int64_t s = 1; s <= STEPS; s++) {
		loss += 0.5;
		drew += nnrt_progress_step(&p, s, (double)s * 64, loss, (double)s * 60);
	}
	double step_ns = (cpu_now() - t0) / STEPS * 1e9;
	if (drew)
		return 1;

	/* Redraws to a pseudo-terminal drained by a child. */
	struct winsize ws = {.ws_row = 24, .ws_col = 100};
	int master, slave;
	if (openpty(&master, &slave, NULL, NULL, &ws) != 0) {
		perror("openpty");
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(slave);
		char buf[1 << 16];
		while (read(master, buf, sizeof buf) > 0)
			;
		_exit(0);
	}
	close(master);
	fflush(stdout);
	int saved = dup(1);
	dup2(slave, 1);
	close(slave);
	nnrt_progress_begin(&p, 1, 1, "epoch  1/10", 0, 938);
	t0 = cpu_now();
	for (int i = 0; i < DRAWS; i++) {
		p.done = 1 + i % 938;
		p.samples = 64.0 * (double)p.done;
		p.loss = 0.4 * p.samples;
		p.correct = 0.85 * p.samples;
		nnrt_progress_draw(&p, nnrt_now());
		fflush(stdout);
	}
	double draw_us = (cpu_now() - t0) / DRAWS * 1e6;
	nnrt_progress_end(&p);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	int status;
	waitpid(pid, &status, 0);
	printf("step (no redraw): %.1f ns of CPU time per call (%d calls)\n", step_ns, STEPS);
	printf("redraw to a pty:  %.2f us of CPU time per redraw, with the flush (%d redraws)\n", draw_us, DRAWS);
	printf("at 5 redraws a second: %.1f us per second of training, plus %.1f ns per step\n", 5 * draw_us, step_ns);
	return 0;
}
