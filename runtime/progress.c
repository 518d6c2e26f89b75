/*
 * progress.c - the live progress line a training binary draws on a terminal
 * while an epoch (or a long evaluation) runs:
 *
 *   epoch  3/10 [=========>          ]  412/938  1.9s ETA 2.4s  loss 0.4123  acc 0.8512  1.12e+04 samples/s
 *
 * Why it is cheap: the training loop calls nnrt_progress_step() after every
 * step, and all that costs between two redraws is one clock read and a
 * compare; the line is redrawn at most NNRT_PROGRESS_HZ times a second.
 * Measured in the training thread's CPU time (bench/progress_cost.c,
 * bench/README.md): 38 ns per step, 3.6 us per redraw and flush to a
 * pseudo-terminal.  LeNet at its fastest here (598 us a step) pays 81 us
 * per second of training: 0.008 %, where the issue allowed 1 %.
 *
 * Why only on a terminal: scripts and tests parse the one-line-per-epoch
 * output, so when stdout is a pipe or a file (or with --quiet, --verbose 0
 * or --verbose 2) nothing here writes a byte and the output is exactly what
 * it was before the bar existed.  On a terminal the line is drawn with a carriage return and
 * blanked with spaces before the epoch line replaces it: no escape codes, so
 * even a terminal that knows none shows it right.  The line is cut to the
 * terminal's width, since a wrapped line cannot be redrawn by '\r'.
 *
 * Data loading draws the same line, in bytes ("reading
 * train-images-idx3-ubyte.gz [====>   ] 12.1/26.4 MB ..."): the loaders read
 * through nnrt_gz_read (data.c), which, while a training binary on a
 * terminal has switched it on with nnrt_progress_loading(1), reads in 1 MiB
 * chunks and reports after each how far into the file (compressed, for a
 * gzip file: zlib's gzoffset) it is.  A file whose size is unknown (a pipe,
 * a device) draws nothing.
 *
 * Every bar draws on the same terminal line, so the width drawn there is
 * kept once, here: any bar blanks what another left, and an error message
 * (nnrt_verror calls nnrt_progress_clear) first blanks the line, so that
 * "error: ..." never appears glued to a half-drawn bar.
 *
 * The caller flushes stdout after a step that drew (train.c keeps the reason
 * of a failed flush); nothing here allocates.
 */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include "loader.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define NNRT_PROGRESS_HZ 5
#define BAR_CELLS 20

/* Columns of the line on the terminal now (0: none drawn). */
static int line_width;

int nnrt_progress_wanted(int verbose)
{
	if (verbose != 1 || !isatty(STDOUT_FILENO))
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
	int64_t run = p->done - p->first; /* steps (bytes) this run timed */
	double dt = now - p->t0;
	fmt_secs(el, sizeof el, dt);
	fmt_secs(eta, sizeof eta, run > 0 ? dt / (double)run * (double)(p->total - p->done) : 0);
	int fill = p->total > 0 ? (int)(BAR_CELLS * p->done / p->total) : BAR_CELLS;
	char bar[BAR_CELLS + 1];
	for (int i = 0; i < BAR_CELLS; i++)
		bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
	bar[BAR_CELLS] = 0;
	int n;
	if (p->bytes) {
		double unit = p->total >= 1000000 ? 1e6 : 1e3; /* MB, or kB for a small file */
		const char *u = p->total >= 1000000 ? "MB" : "kB";
		n = snprintf(line, sizeof line, "%s [%s] %.1f/%.1f %s  %s ETA %s", p->label, bar, (double)p->done / unit,
		             (double)p->total / unit, u, el, eta);
		if (dt >= 0.2 && n < (int)sizeof line) /* before, zlib's read-ahead is most of it */
			n += snprintf(line + n, sizeof line - (size_t)n, "  %.1f %s/s", (double)run / unit / dt, u);
	} else {
		int tw = 1;
		for (int64_t v = p->total; v >= 10; v /= 10)
			tw++;
		n = snprintf(line, sizeof line, "%s [%s] %*lld/%lld  %s ETA %s", p->label, bar, tw, (long long)p->done,
		             (long long)p->total, el, eta);
		if (p->samples > 0 && n < (int)sizeof line) {
			n += snprintf(line + n, sizeof line - (size_t)n, "  loss %.4f", p->loss / p->samples);
			if (p->has_acc && n < (int)sizeof line)
				n += snprintf(line + n, sizeof line - (size_t)n, "  acc %.4f", p->correct / p->samples);
			if (dt > 0 && n < (int)sizeof line)
				n += snprintf(line + n, sizeof line - (size_t)n, "  %.2e samples/s", p->samples / dt);
		}
	}
	if (n >= (int)sizeof line)
		n = (int)sizeof line - 1;
	if (n > p->cols - 1)
		n = p->cols - 1;
	line[n] = 0;
	/* Blank what is left of a longer line drawn before. */
	printf("\r%s%*s", line, line_width > n ? line_width - n : 0, "");
	line_width = n;
	p->next = now + 1.0 / NNRT_PROGRESS_HZ;
	return 1;
}

int nnrt_progress_end(nnrt_progress *p)
{
	if (!p->on || !line_width)
		return 0;
	printf("\r%*s\r", line_width, "");
	line_width = 0;
	return 1;
}

void nnrt_progress_clear(void)
{
	if (!line_width)
		return;
	printf("\r%*s\r", line_width, "");
	line_width = 0;
	fflush(stdout);
}

/* ---- Data loading ---- */

static struct {
	int on;          /* nnrt_progress_loading */
	char path[1024]; /* the file the bar is of ("": none yet) */
	nnrt_progress bar;
} loading;

void nnrt_progress_loading(int on)
{
	loading.on = on;
	loading.path[0] = 0;
}

int nnrt_progress_loading_on(void)
{
	return loading.on;
}

void nnrt_progress_read(gzFile f, const char *path)
{
	if (!loading.on)
		return;
	int64_t off = (int64_t)gzoffset(f);
	nnrt_progress *p = &loading.bar;
	/* A new file, or the same one opened again: a new line. */
	if (strcmp(loading.path, path) != 0 || off < p->done) {
		nnrt_progress_end(p);
		snprintf(loading.path, sizeof loading.path, "%s", path);
		struct stat st;
		int sized = stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
		const char *base = strrchr(path, '/');
		char label[48];
		snprintf(label, sizeof label, "reading %s", base ? base + 1 : path);
		nnrt_progress_begin(p, sized, 0, label, 0, sized ? (int64_t)st.st_size : 0);
		p->bytes = 1;
	}
	if (!p->on)
		return;
	p->done = off < p->total ? off : p->total;
	double now = nnrt_now();
	if (now >= p->next || p->done >= p->total) {
		nnrt_progress_draw(p, now);
		fflush(stdout);
	}
}

void nnrt_progress_read_end(void)
{
	if (loading.on && nnrt_progress_end(&loading.bar))
		fflush(stdout);
	loading.bar.on = 0;
	loading.path[0] = 0;
}
