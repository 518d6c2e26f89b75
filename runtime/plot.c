/*
 * plot.c - the training binary's --plot DIR: self-contained SVG pictures of
 * a run, written by the runtime itself.
 *
 *   DIR/loss.svg      train and test (and validation) loss per epoch
 *   DIR/accuracy.svg  the same for accuracy (classifiers)
 *   DIR/boundary.svg  for a classifier with two input features: the plane
 *                     coloured by the predicted class, the training points
 *                     on top (red and blue for two classes)
 *
 * Why SVG written by hand: a line chart and a grid of rectangles are a few
 * dozen elements of a format every browser shows, and the C libraries that
 * draw charts (PLplot, cairo, libharu) would each add a dependency the
 * size of the runtime for that; so the runtime prints the elements.
 *
 * The curves are rewritten after every epoch, so that a browser tab can be
 * refreshed while the run goes on; every file is written to a temporary
 * name in DIR and renamed over the old one, so a reader never sees half a
 * picture.  The boundary is computed on a GRID x GRID lattice over the
 * training data's range (plus a margin) by the model's infer entry, every
 * --plot-every epochs and after the last; runs of cells of one class in a
 * row are one rectangle.  Everything here is allocated by nnrt_plot_open,
 * before the first epoch.
 */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define W 720
#define H 400
#define ML 64 /* margins: left, right, top, bottom */
#define MR 104 /* the legend sits right of the plot: curves near 1 ran under it */
#define MT 40
#define MB 48

/* Point and plane colours per class: red and blue first. */
static const char *const point_colour[] = {"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd",
                                           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
static const char *const plane_colour[] = {"#f7c4c4", "#c4dcf2", "#c9ecc9", "#ffdfbf", "#e0d4ee",
                                           "#e0ccc8", "#f8d8ee", "#dddddd", "#ececbf", "#bfeef4"};

int nnrt_plot_open(nnrt_plot *p, const char *dir, const nnrt_model *m, int64_t epochs, int has_acc)
{
	memset(p, 0, sizeof *p);
	p->dir = dir;
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		return -1;
	struct stat st;
	if (stat(dir, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	if (access(dir, W_OK | X_OK) != 0)
		return -1;
	p->on = 1;
	p->has_acc = has_acc;
	p->cap = epochs > 0 ? epochs : 1;
	p->hist = calloc((size_t)p->cap * NNRT_PLOT_COLS, sizeof(double));
	if (!p->hist)
		return -1;
	/* A boundary for classifiers of two features. */
	int classifier = m->loss == NNRT_LOSS_SOFTMAX_XENT || (m->loss == NNRT_LOSS_BCE && m->output_size == 1);
	if (m->input_size == 2 && classifier) {
		p->boundary = 1;
		p->classes = m->loss == NNRT_LOSS_BCE ? 2 : m->output_size;
		p->grid.n = NNRT_PLOT_GRID * NNRT_PLOT_GRID;
		p->grid.dim = 2;
		p->grid.x_f32 = calloc((size_t)p->grid.n * 2, sizeof(float));
		p->cls = calloc((size_t)p->grid.n, sizeof(int32_t));
		if (!p->grid.x_f32 || !p->cls)
			return -1;
	}
	return 0;
}

void nnrt_plot_free(nnrt_plot *p)
{
	free(p->hist);
	free(p->grid.x_f32);
	free(p->cls);
	memset(p, 0, sizeof *p);
}

void nnrt_plot_set_data(nnrt_plot *p, const nnrt_dataset *train)
{
	if (!p->boundary || !train->x_f32 || train->n == 0)
		return;
	p->train = train;
	float lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
	for (int64_t i = 0; i < train->n; i++)
		for (int k = 0; k < 2; k++) {
			float v = train->x_f32[i * 2 + k];
			lo[k] = v < lo[k] ? v : lo[k];
			hi[k] = v > hi[k] ? v : hi[k];
		}
	for (int k = 0; k < 2; k++) {
		double pad = (hi[k] - lo[k]) * 0.1 + 1e-3;
		p->lo[k] = lo[k] - pad;
		p->hi[k] = hi[k] + pad;
	}
	/* Cell centres, row 0 at the top (largest x2). */
	for (int r = 0; r < NNRT_PLOT_GRID; r++)
		for (int c = 0; c < NNRT_PLOT_GRID; c++) {
			float *x = p->grid.x_f32 + ((int64_t)r * NNRT_PLOT_GRID + c) * 2;
			x[0] = (float)(p->lo[0] + (p->hi[0] - p->lo[0]) * (c + 0.5) / NNRT_PLOT_GRID);
			x[1] = (float)(p->hi[1] - (p->hi[1] - p->lo[1]) * (r + 0.5) / NNRT_PLOT_GRID);
		}
}

/* ---- Writing a file atomically ---- */

static FILE *begin_file(const nnrt_plot *p, const char *name, char *tmp, size_t cap)
{
	snprintf(tmp, cap, "%s/.%s.tmp", p->dir, name);
	FILE *f = fopen(tmp, "w");
	if (f)
		fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	return f;
}

static int end_file(const nnrt_plot *p, const char *name, FILE *f, const char *tmp)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", p->dir, name);
	int bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		int e = errno ? errno : EIO;
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

/* ---- Axes ---- */

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about 5 ticks. */
static double tick_step(double span)
{
	if (!(span > 0))
		return 1;
	double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
	return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* Range [lo, hi] widened to whole ticks of `step`. */
static void nice_range(double *lo, double *hi, double *step)
{
	if (*hi - *lo < 1e-12) {
		*lo -= 0.5;
		*hi += 0.5;
	}
	*step = tick_step(*hi - *lo);
	*lo = floor(*lo / *step + 1e-9) * *step;
	*hi = ceil(*hi / *step - 1e-9) * *step;
}

static void axes(FILE *f, const char *title, const char *xlabel, const char *ylabel, double x0, double x1,
                 double xs, double y0, double y1, double ys)
{
	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", ML, MT,
	        W - ML - MR, H - MT - MB);
	fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">%s</text>\n", W / 2, title);
	for (double v = x0; v <= x1 + xs * 1e-6; v += xs) {
		double px = ML + (v - x0) / (x1 - x0) * (W - ML - MR);
		fprintf(f,
		        "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#444\"/>"
		        "<text class=\"xtick\" x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n",
		        px, H - MB, px, H - MB + 5, px, H - MB + 18, fabs(v) < xs * 1e-6 ? 0 : v);
	}
	for (double v = y0; v <= y1 + ys * 1e-6; v += ys) {
		double py = H - MB - (v - y0) / (y1 - y0) * (H - MT - MB);
		fprintf(f,
		        "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#444\"/>"
		        "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
		        "<text class=\"ytick\" x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n",
		        ML - 5, py, ML, py, ML + 1, py, W - MR - 1, py, ML - 8, py + 4, fabs(v) < ys * 1e-6 ? 0 : v);
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n", (ML + W - MR) / 2,
	        H - 10, xlabel);
	fprintf(f,
	        "<text x=\"16\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 %d)\">%s</text>\n",
	        (MT + H - MB) / 2, (MT + H - MB) / 2, ylabel);
}

/* ---- Curves ---- */

enum { H_EPOCH, H_TRAIN_LOSS, H_TRAIN_ACC, H_TEST_LOSS, H_TEST_ACC, H_VAL_LOSS, H_VAL_ACC };
#define HC NNRT_PLOT_COLS

/* One chart: a polyline per column of cols[0..3] that is >= 0 (train,
 * test, validation), axes fitted to all of them, a legend. */
static int curves(const nnrt_plot *p, const char *name, const char *title, const char *ylabel, const int cols[3])
{
	char tmp[4096];
	FILE *f = begin_file(p, name, tmp, sizeof tmp);
	if (!f)
		return -1;
	const double *h = p->hist;
	double ylo = INFINITY, yhi = -INFINITY;
	for (int64_t i = 0; i < p->n; i++)
		for (int c = 0; c < 3; c++) {
			if (cols[c] < 0)
				continue;
			double v = h[i * HC + cols[c]];
			ylo = v < ylo ? v : ylo;
			yhi = v > yhi ? v : yhi;
		}
	double x0 = h[H_EPOCH], x1 = h[(p->n - 1) * HC + H_EPOCH], xs, ys;
	if (x1 - x0 < 1)
		x1 = x0 + 1;
	nice_range(&ylo, &yhi, &ys);
	xs = tick_step(x1 - x0);
	if (xs < 1)
		xs = 1;
	x0 = floor(x0 / xs) * xs;
	x1 = ceil(x1 / xs) * xs;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
	           "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
	        W, H, W, H);
	axes(f, title, "epoch", ylabel, x0, x1, xs, ylo, yhi, ys);
	static const char *const colour[] = {"#1f77b4", "#d62728", "#2ca02c"};
	static const char *const cls[] = {"train", "test", "val"};
	static const char *const label[] = {"train", "test", "validation"};
	for (int c = 0, shown = 0; c < 3; c++) {
		if (cols[c] < 0)
			continue;
		fprintf(f, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", cls[c],
		        colour[c]);
		for (int64_t i = 0; i < p->n; i++)
			fprintf(f, "%s%.1f,%.1f", i ? " " : "",
			        ML + (h[i * HC + H_EPOCH] - x0) / (x1 - x0) * (W - ML - MR),
			        H - MB - (h[i * HC + cols[c]] - ylo) / (yhi - ylo) * (H - MT - MB));
		fprintf(f, "\"/>\n");
		/* The legend, right of the plot area, where no curve can pass. */
		int ly = MT + 10 + 18 * shown++;
		fprintf(f,
		        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>"
		        "<text class=\"legend\" x=\"%d\" y=\"%d\" font-size=\"12\">%s</text>\n",
		        W - MR + 10, ly, W - MR + 34, ly, colour[c], W - MR + 40, ly + 4, label[c]);
	}
	fprintf(f, "</svg>\n");
	return end_file(p, name, f, tmp);
}

int nnrt_plot_epoch(nnrt_plot *p, const double *h, int has_test, int has_val)
{
	if (!p->on)
		return 0;
	if (p->n == p->cap) /* more epochs than planned: drop the oldest */
		memmove(p->hist, p->hist + HC, sizeof(double) * HC * (size_t)(--p->n));
	memcpy(p->hist + p->n++ * HC, h, sizeof(double) * HC);
	int loss[3] = {H_TRAIN_LOSS, has_test ? H_TEST_LOSS : -1, has_val ? H_VAL_LOSS : -1};
	int acc[3] = {H_TRAIN_ACC, has_test ? H_TEST_ACC : -1, has_val ? H_VAL_ACC : -1};
	if (curves(p, "loss.svg", "loss", "loss", loss))
		return -1;
	if (p->has_acc && curves(p, "accuracy.svg", "accuracy", "accuracy", acc))
		return -1;
	return 0;
}

/* ---- Decision boundary ---- */

int nnrt_plot_boundary(nnrt_plot *p, int64_t epoch)
{
	if (!p->boundary || !p->train)
		return 0;
	char tmp[4096];
	FILE *f = begin_file(p, "boundary.svg", tmp, sizeof tmp);
	if (!f)
		return -1;
	/* The plane is square: its side fits between the margins. */
	const int side = H - MT - MB, G = NNRT_PLOT_GRID;
	const int w = ML + side + 80; /* room for the legend */
	double x0 = p->lo[0], x1 = p->hi[0], y0 = p->lo[1], y1 = p->hi[1], xs, ys;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
	           "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
	        w, H, w, H);
	fprintf(f, "<g class=\"plane\" shape-rendering=\"crispEdges\">\n");
	double cell = (double)side / G;
	for (int r = 0; r < G; r++)
		for (int c = 0; c < G;) {
			int k = p->cls[r * G + c], e = c + 1;
			while (e < G && p->cls[r * G + e] == k)
				e++;
			fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>\n", ML + c * cell,
			        MT + r * cell, (e - c) * cell + 0.3, cell + 0.3, plane_colour[k % 10]);
			c = e;
		}
	fprintf(f, "</g>\n<g class=\"points\">\n");
	const nnrt_dataset *d = p->train;
	/* At most 2000 points: beyond that they hide the plane. */
	int64_t stride = d->n > 2000 ? (d->n + 1999) / 2000 : 1;
	for (int64_t i = 0; i < d->n; i += stride) {
		const float *x = d->x_f32 + i * 2;
		int k = d->y_class ? d->y_class[i] : d->y_real && d->y_real[i * d->label_size] >= 0.5f;
		fprintf(f, "<circle class=\"c%d\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\" stroke=\"white\" "
		           "stroke-width=\"0.5\"/>\n",
		        k, ML + (x[0] - x0) / (x1 - x0) * side, MT + (y1 - x[1]) / (y1 - y0) * side, point_colour[k % 10]);
	}
	fprintf(f, "</g>\n");
	char title[64];
	snprintf(title, sizeof title, "decision boundary after epoch %lld", (long long)epoch);
	/* Axes over the plane: the same tick code, the plane's square. */
	double ax0 = x0, ax1 = x1, ay0 = y0, ay1 = y1;
	xs = tick_step(ax1 - ax0);
	ys = tick_step(ay1 - ay0);
	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", ML, MT, side,
	        side);
	fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">%s</text>\n", w / 2, title);
	for (double v = ceil(ax0 / xs) * xs; v <= ax1; v += xs) {
		double px = ML + (v - ax0) / (ax1 - ax0) * side;
		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#444\"/>"
		           "<text class=\"xtick\" x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n",
		        px, MT + side, px, MT + side + 5, px, MT + side + 18, fabs(v) < xs * 1e-6 ? 0 : v);
	}
	for (double v = ceil(ay0 / ys) * ys; v <= ay1; v += ys) {
		double py = MT + (ay1 - v) / (ay1 - ay0) * side;
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#444\"/>"
		           "<text class=\"ytick\" x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n",
		        ML - 5, py, ML, py, ML - 8, py + 4, fabs(v) < ys * 1e-6 ? 0 : v);
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">x1</text>\n", ML + side / 2, H - 10);
	fprintf(f, "<text x=\"16\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 %d)\">x2"
	           "</text>\n",
	        MT + side / 2, MT + side / 2);
	/* Legend: one swatch per class. */
	for (int k = 0; k < p->classes && k < 10; k++)
		fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/><text class=\"legend\" x=\"%d\" y=\"%d\" "
		           "font-size=\"11\">class %d</text>\n",
		        ML + side + 4, MT + 10 + 16 * k, point_colour[k], ML + side + 10, MT + 14 + 16 * k, k);
	fprintf(f, "</svg>\n");
	return end_file(p, "boundary.svg", f, tmp);
}

/* ---- Confusion matrix (--eval with --plot) ---- */

/* A cell's shade: white for 0, the full blue for the row's largest share. */
int nnrt_plot_confusion(nnrt_plot *p, const nnrt_confusion *c, const char *const *names)
{
	char tmp[4096];
	FILE *f = begin_file(p, "confusion.svg", tmp, sizeof tmp);
	if (!f)
		return -1;
	int64_t k = c->k;
	const int cell = k <= 10 ? 44 : k <= 30 ? 20 : 8, left = 120, top = 80;
	int side = (int)k * cell, w = left + side + 40, h = top + side + 60;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
	           "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
	        w, h, w, h);
	fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">confusion matrix</text>\n", w / 2);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">predicted class</text>\n",
	        left + side / 2, top - 40);
	fprintf(f, "<text x=\"14\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">"
	           "true class</text>\n",
	        top + side / 2, top + side / 2);
	for (int64_t i = 0; i < k; i++) {
		int64_t row = 0;
		for (int64_t j = 0; j < k; j++)
			row += c->m[i * k + j];
		char lab[32];
		if (names)
			snprintf(lab, sizeof lab, "%s", names[i]);
		else
			snprintf(lab, sizeof lab, "%lld", (long long)i);
		fprintf(f, "<text class=\"row\" x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%s</text>\n",
		        left - 6, top + (int)i * cell + cell / 2 + 4, lab);
		fprintf(f, "<text class=\"col\" x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%lld</text>\n",
		        left + (int)i * cell + cell / 2, top - 8, (long long)i);
		for (int64_t j = 0; j < k; j++) {
			int64_t v = c->m[i * k + j];
			double share = row ? (double)v / (double)row : 0;
			int shade = (int)(255 - share * 200);
			fprintf(f, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\" "
			           "stroke=\"#ccc\"><title>true %lld, predicted %lld: %lld</title></rect>\n",
			        left + (int)j * cell, top + (int)i * cell, cell, cell, shade, shade, (long long)i,
			        (long long)j, (long long)v);
			if (cell >= 20)
				fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"%d\" text-anchor=\"middle\" fill=\"%s\">%lld</text>\n",
				        left + (int)j * cell + cell / 2, top + (int)i * cell + cell / 2 + 4, cell >= 44 ? 11 : 8,
				        share > 0.5 ? "white" : "black", (long long)v);
		}
	}
	fprintf(f, "</svg>\n");
	return end_file(p, "confusion.svg", f, tmp);
}
