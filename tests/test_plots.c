#define _POSIX_C_SOURCE 200809L
/*
 * test_plots.c - the training binary's --plot DIR, checked with real tools:
 * every SVG is parsed by libxml2's xmllint, the axes of the curves are
 * checked against the numbers --log wrote, and the decision boundary of
 * moons is rendered by librsvg's rsvg-convert and its pixels read back (the
 * PNG decoded here with zlib) to see that the plane around the points of
 * each class has that class's colour.  A missing tool fails the test with
 * the package to install; nothing is skipped silently.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "sh_harness.h"

static char tmpdir[256];

static void setup(void)
{
	sh_mktemp(tmpdir, sizeof tmpdir, "plots");
}

static void teardown(void)
{
	sh_rmtree(tmpdir);
}

TestSuite(plots, .init = setup, .fini = teardown, .timeout = 300);

static void need_tool(const char *tool, const char *package)
{
	char *out;
	int rc = sh_run(&out, "command -v %s", tool);
	free(out);
	cr_assert_eq(rc, 0, "%s is not installed: apt-get install %s (scripts/deps.sh installs it)", tool, package);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap + 1);
	size_t k;
	while ((k = fread(b + n, 1, cap - n, f)) > 0) {
		n += k;
		if (n == cap)
			b = realloc(b, (cap *= 2) + 1);
	}
	fclose(f);
	b[n] = 0;
	if (len)
		*len = n;
	return b;
}

/* ---- A PNG reader for what rsvg-convert writes (8-bit RGB or RGBA) ---- */

typedef struct image {
	int w, h, bpp;
	unsigned char *px; /* [h][w][bpp] */
} image;

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
	int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

static image read_png(const char *path)
{
	size_t len;
	unsigned char *d = (unsigned char *)slurp(path, &len);
	cr_assert(len > 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0, "%s is not a PNG", path);
	image im = {0};
	unsigned char *z = malloc(len);
	size_t zn = 0;
	for (size_t p = 8; p + 12 <= len;) {
		uint32_t n = be32(d + p);
		const unsigned char *type = d + p + 4, *data = d + p + 8;
		if (!memcmp(type, "IHDR", 4)) {
			im.w = (int)be32(data);
			im.h = (int)be32(data + 4);
			cr_assert_eq(data[8], 8, "bit depth %d", data[8]);
			cr_assert(data[9] == 6 || data[9] == 2, "colour type %d", data[9]);
			cr_assert_eq(data[12], 0, "interlaced");
			im.bpp = data[9] == 6 ? 4 : 3;
		} else if (!memcmp(type, "IDAT", 4)) {
			memcpy(z + zn, data, n);
			zn += n;
		}
		p += 12 + n;
	}
	size_t stride = (size_t)im.w * (size_t)im.bpp;
	uLongf rawlen = (uLongf)((stride + 1) * (size_t)im.h);
	unsigned char *raw = malloc(rawlen);
	cr_assert_eq(uncompress(raw, &rawlen, z, (uLong)zn), Z_OK);
	im.px = malloc(stride * (size_t)im.h);
	for (int y = 0; y < im.h; y++) {
		int f = raw[(size_t)y * (stride + 1)];
		const unsigned char *s = raw + (size_t)y * (stride + 1) + 1;
		unsigned char *o = im.px + (size_t)y * stride, *up = y ? o - stride : NULL;
		for (size_t x = 0; x < stride; x++) {
			int a = x >= (size_t)im.bpp ? o[x - (size_t)im.bpp] : 0, b = up ? up[x] : 0,
			    c = up && x >= (size_t)im.bpp ? up[x - (size_t)im.bpp] : 0;
			int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : paeth(a, b, c);
			o[x] = (unsigned char)(s[x] + pred);
		}
	}
	free(raw);
	free(z);
	free(d);
	return im;
}

/* ---- SVG text ---- */

/* The numbers of every <text class="CLASS" x=".." y="..">N</text>, in
 * order, and where each is drawn: its x (for x ticks) or the y of its
 * tick line (for y ticks, whose text sits 4 units below the line). */
static int ticks(const char *svg, const char *cls, double *v, double *at, int cap)
{
	char pat[64];
	snprintf(pat, sizeof pat, "<text class=\"%s\"", cls);
	int n = 0;
	for (const char *p = strstr(svg, pat); p && n < cap; p = strstr(p + 1, pat)) {
		double x, y;
		cr_assert_eq(sscanf(p + strlen(pat), " x=\"%lf\" y=\"%lf\"", &x, &y), 2, "%.80s", p);
		const char *gt = strchr(p, '>');
		cr_assert_not_null(gt);
		v[n] = strtod(gt + 1, NULL);
		at[n++] = cls[0] == 'x' ? x : y - 4;
	}
	return n;
}

/* Column `col` of every data row of the --log CSV (NAN when empty). */
static int log_column(const char *csv, int col, double *v, int cap)
{
	int n = 0;
	const char *line = strchr(csv, '\n');
	while (line && line[1] && n < cap) {
		line++;
		const char *f = line;
		for (int k = 0; k < col; k++)
			f = strchr(f, ',') + 1;
		v[n++] = *f == ',' || *f == '\n' ? NAN : strtod(f, NULL);
		line = strchr(line, '\n');
	}
	return n;
}

/* A curve of a chart: its polyline's class, its legend, its log column. */
typedef struct curve {
	const char *cls, *legend;
	int col;
} curve;

/* The axes of `svg` against the numbers --log wrote: the y ticks cover
 * every curve's values and no more than twice their span, the x ticks
 * epochs 1..n; and every point of every polyline, mapped back through the
 * tick positions to data coordinates, is its row's epoch and logged value
 * (to a fifth of a pixel).  Each curve has its legend entry. */
static void check_axes(const char *name, const char *svg, const char *csv, const curve *cv, int ncv, int epochs)
{
	double yt[64], ya[64], xt[64], xa[64], v[8][256];
	int ny = ticks(svg, "ytick", yt, ya, 64), nx = ticks(svg, "xtick", xt, xa, 64);
	cr_assert(ny >= 3 && nx >= 2, "%s: %d y ticks, %d x ticks", name, ny, nx);
	double lo = INFINITY, hi = -INFINITY;
	for (int c = 0; c < ncv; c++) {
		int n = log_column(csv, cv[c].col, v[c], 256);
		cr_assert_eq(n, epochs, "%s: %d log rows", name, n);
		for (int i = 0; i < n; i++) {
			cr_assert(!isnan(v[c][i]), "%s: no %s value in log row %d", name, cv[c].cls, i + 1);
			lo = fmin(lo, v[c][i]);
			hi = fmax(hi, v[c][i]);
		}
	}
	cr_expect(yt[0] <= lo + 1e-9 && yt[ny - 1] >= hi - 1e-9, "%s: y axis %g..%g does not cover %g..%g", name,
		  yt[0], yt[ny - 1], lo, hi);
	cr_expect(yt[ny - 1] - yt[0] <= 2 * (hi - lo) + 1e-9, "%s: y axis %g..%g is far wider than %g..%g", name, yt[0],
		  yt[ny - 1], lo, hi);
	cr_expect(xt[0] <= 1 && xt[nx - 1] >= epochs, "%s: x axis %g..%g for %d epochs", name, xt[0], xt[nx - 1],
		  epochs);
	/* Data per SVG unit, from the outermost ticks. */
	double ys = (yt[ny - 1] - yt[0]) / (ya[ny - 1] - ya[0]), xs = (xt[nx - 1] - xt[0]) / (xa[nx - 1] - xa[0]);
	for (int c = 0; c < ncv; c++) {
		char pat[64];
		snprintf(pat, sizeof pat, "<polyline class=\"%s\"", cv[c].cls);
		const char *pl = strstr(svg, pat);
		cr_assert(pl, "%s: no %s curve", name, cv[c].cls);
		const char *pts = strstr(pl, "points=\"");
		cr_assert(pts);
		pts += 8;
		int i = 0;
		for (double px, py; sscanf(pts, "%lf,%lf", &px, &py) == 2; i++) {
			cr_assert(i < epochs, "%s: %s has more points than epochs", name, cv[c].cls);
			double ep = xt[0] + (px - xa[0]) * xs, val = yt[0] + (py - ya[0]) * ys;
			cr_expect(fabs(ep - (i + 1)) <= 0.2 * fabs(xs), "%s: %s point %d is at epoch %g", name, cv[c].cls, i,
				  ep);
			cr_expect(fabs(val - v[c][i]) <= 0.2 * fabs(ys), "%s: %s point %d is drawn at %g, the log has %g",
				  name, cv[c].cls, i, val, v[c][i]);
			pts += strcspn(pts, " \"");
			if (*pts == ' ')
				pts++;
		}
		cr_expect_eq(i, epochs, "%s: %s has %d points", name, cv[c].cls, i);
		char leg[64];
		snprintf(leg, sizeof leg, ">%s</text>", cv[c].legend);
		cr_expect(strstr(svg, leg), "%s: no legend entry %s", name, cv[c].legend);
	}
}

static void xml_ok(const char *path)
{
	char *out;
	int rc = sh_run(&out, "xmllint --noout '%s'", path);
	cr_expect_eq(rc, 0, "xmllint %s:\n%s", path, out);
	free(out);
}

/* The share of points of class k (circles "c<k>") around which the
 * rendered plane has colour `want` (0: reddish, 1: bluish): sampled 4
 * pixels left and right of the centre, off the point itself. */
static double share_in_colour(const char *svg, const image *im, int k, int want)
{
	char pat[32];
	snprintf(pat, sizeof pat, "<circle class=\"c%d\" cx=\"", k);
	int n = 0, good = 0;
	for (const char *p = strstr(svg, pat); p; p = strstr(p + 1, pat)) {
		double cx, cy;
		cr_assert_eq(sscanf(p + strlen(pat), "%lf\" cy=\"%lf\"", &cx, &cy), 2);
		for (int side = -1; side <= 1; side += 2) {
			int x = (int)lround(cx) + 4 * side, y = (int)lround(cy);
			if (x < 0 || y < 0 || x >= im->w || y >= im->h)
				continue;
			const unsigned char *px = im->px + ((size_t)y * (size_t)im->w + (size_t)x) * (size_t)im->bpp;
			int red = px[0] > px[2] + 30, blue = px[2] > px[0] + 30;
			n++;
			good += want == 0 ? red : blue;
		}
	}
	cr_assert(n > 100, "only %d samples of class %d", n, k);
	return (double)good / n;
}

/* moons with --plot: loss, accuracy and boundary SVGs that xmllint
 * accepts, axes that cover the logged numbers, a rendered boundary whose
 * plane is red around the red class and blue around the blue one, no
 * temporary file left, and training not changed by plotting. */
Test(plots, moons_curves_and_decision_boundary)
{
	need_tool("xmllint", "libxml2-utils");
	need_tool("rsvg-convert", "librsvg2-bin");
	char *out;
	cr_assert_eq(sh_run(&out, "'%s' '%s/examples/moons.nn' -o '%s/moons'", NNC_EXE, NNC_SOURCE_DIR, tmpdir), 0,
		     "%s", out);
	free(out);
	char *plain, *plotted;
	cr_assert_eq(sh_run(&plain, "'%s/moons' --epochs 12 --threads 2", tmpdir), 0, "%s", plain);
	cr_assert_eq(sh_run(&plotted, "cd '%s' && ./moons --epochs 12 --threads 2 --plot pics --plot-every 4 --log m.csv",
			    tmpdir),
		     0, "%s", plotted);
	/* In a pipe: plain lines, no bar, no escape code. */
	cr_assert(!strchr(plotted, '\r') && !strchr(plotted, '\033'), "%s", plotted);
	/* The same epochs, losses and accuracies (timing aside). */
	for (const char *a = plain, *b = plotted; a && b;) {
		a = strstr(a, "\nepoch ");
		b = strstr(b, "\nepoch ");
		cr_assert((a == NULL) == (b == NULL), "%s\n---\n%s", plain, plotted);
		if (!a)
			break;
		size_t la = (size_t)(strstr(a, " samples/s") - a), lb = (size_t)(strstr(b, " samples/s") - b);
		while (la && a[la - 1] != ' ')
			la--;
		while (lb && b[lb - 1] != ' ')
			lb--;
		cr_assert(la == lb && !memcmp(a, b, la), "plotting changed training:\n%.*s\n%.*s", (int)la, a, (int)lb, b);
		a++;
		b++;
	}
	free(plain);
	free(plotted);

	char path[512];
	snprintf(path, sizeof path, "%s/m.csv", tmpdir);
	char *csv = slurp(path, NULL);
	const char *names[] = {"loss.svg", "accuracy.svg", "boundary.svg"};
	char *svg[3];
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/pics/%s", tmpdir, names[i]);
		xml_ok(path);
		svg[i] = slurp(path, NULL);
	}
	const curve loss[] = {{"train", "train", 4}, {"test", "test", 6}}, acc[] = {{"train", "train", 5}, {"test", "test", 7}};
	check_axes("loss.svg", svg[0], csv, loss, 2, 12);
	check_axes("accuracy.svg", svg[1], csv, acc, 2, 12);
	cr_expect(!strstr(svg[0], "class=\"val\""), "a validation curve without a validation split");
	cr_expect(strstr(svg[2], "decision boundary after epoch 12<"), "the boundary is not the last epoch's");
	cr_assert_eq(sh_run(&out, "ls -A '%s/pics'", tmpdir), 0);
	cr_expect_str_eq(out, "accuracy.svg\nboundary.svg\nloss.svg\n", "files left in --plot DIR");
	free(out);

	cr_assert_eq(sh_run(&out, "rsvg-convert '%s/pics/boundary.svg' -o '%s/b.png'", tmpdir, tmpdir), 0, "%s", out);
	free(out);
	snprintf(path, sizeof path, "%s/b.png", tmpdir);
	image im = read_png(path);
	double red = share_in_colour(svg[2], &im, 0, 0), blue = share_in_colour(svg[2], &im, 1, 1);
	cr_expect(red > 0.9 && blue > 0.9, "plane colour around the points: %.3f of class 0 on red, %.3f of class 1 on blue",
		  red, blue);
	free(im.px);
	for (int i = 0; i < 3; i++)
		free(svg[i]);
	free(csv);
}

/* moons with `validation: 0.2`: loss.svg and accuracy.svg draw a third
 * curve, validation, whose points are the val_loss and val_acc the log
 * holds, which are the numbers the epoch lines print. */
Test(plots, validation_curves_follow_the_logged_numbers)
{
	need_tool("xmllint", "libxml2-utils");
	char *out;
	cr_assert_eq(sh_run(&out, "cd '%s' && sed 's/^  batch:  32$/  batch: 32  validation: 0.2/' '%s/examples/moons.nn' > v.nn "
				  "&& grep -q 'validation: 0.2' v.nn && '%s' v.nn -o v",
			    tmpdir, NNC_SOURCE_DIR, NNC_EXE),
		     0, "%s", out);
	free(out);
	char *lines;
	cr_assert_eq(sh_run(&lines, "cd '%s' && ./v --epochs 6 --threads 2 --plot pics --log v.csv", tmpdir), 0, "%s", lines);
	cr_assert(strstr(lines, "1600 training samples, 400 validation samples"), "%s", lines);
	char path[512];
	snprintf(path, sizeof path, "%s/v.csv", tmpdir);
	char *csv = slurp(path, NULL);
	/* The log's validation columns are the epoch lines' numbers. */
	double vl[8], va[8];
	cr_assert_eq(log_column(csv, 8, vl, 8), 6);
	cr_assert_eq(log_column(csv, 9, va, 8), 6);
	const char *line = lines;
	for (int e = 0; e < 6; e++) {
		line = strstr(line, "\nepoch ");
		cr_assert(line, "%s", lines);
		line++;
		double l, a;
		const char *p = strstr(line, "  val_loss ");
		cr_assert(p && sscanf(p, "  val_loss %lf  val_acc %lf", &l, &a) == 2, "%.200s", line);
		char want[64], got[64];
		snprintf(want, sizeof want, "%.4f %.4f", l, a);
		snprintf(got, sizeof got, "%.4f %.4f", vl[e], va[e]);
		cr_expect_str_eq(got, want, "epoch %d: the log's val_loss, val_acc against the epoch line", e + 1);
	}
	const curve loss[] = {{"train", "train", 4}, {"test", "test", 6}, {"val", "validation", 8}};
	const curve acc[] = {{"train", "train", 5}, {"test", "test", 7}, {"val", "validation", 9}};
	const char *names[] = {"loss.svg", "accuracy.svg"};
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/pics/%s", tmpdir, names[i]);
		xml_ok(path);
		char *svg = slurp(path, NULL);
		check_axes(names[i], svg, csv, i ? acc : loss, 3, 6);
		free(svg);
	}
	free(csv);
	free(lines);
}

/* An untrained network's boundary does not separate the moons: the pixel
 * check above is one that can fail. */
Test(plots, untrained_boundary_fails_the_colour_check)
{
	need_tool("rsvg-convert", "librsvg2-bin");
	char *out;
	cr_assert_eq(sh_run(&out, "cd '%s' && '%s' '%s/examples/moons.nn' -o moons && ./moons --epochs 1 --lr 1e-6 "
				  "--quiet --plot pics && rsvg-convert pics/boundary.svg -o b.png",
			    tmpdir, NNC_EXE, NNC_SOURCE_DIR),
		     0, "%s", out);
	free(out);
	char path[512];
	snprintf(path, sizeof path, "%s/pics/boundary.svg", tmpdir);
	char *svg = slurp(path, NULL);
	snprintf(path, sizeof path, "%s/b.png", tmpdir);
	image im = read_png(path);
	double red = share_in_colour(svg, &im, 0, 0), blue = share_in_colour(svg, &im, 1, 1);
	cr_expect(red < 0.9 || blue < 0.9, "an untrained net separated the moons: %.3f, %.3f", red, blue);
	free(im.px);
	free(svg);
}

/* A --plot DIR that cannot be made or written is refused before training. */
Test(plots, unwritable_plot_dir_is_an_error_before_training)
{
	char *out;
	cr_assert_eq(sh_run(&out, "'%s' '%s/examples/moons.nn' -o '%s/moons'", NNC_EXE, NNC_SOURCE_DIR, tmpdir), 0,
		     "%s", out);
	free(out);
	int rc = sh_run(&out, "cd '%s' && touch file && ./moons --plot file/pics", tmpdir);
	cr_expect_eq(rc, 2, "%s", out);
	cr_expect(strstr(out, "moons: error: --plot file/pics: cannot write pictures there: Not a directory") &&
			  !strstr(out, "epoch"),
		  "%s", out);
	free(out);
	rc = sh_run(&out, "cd '%s' && ./moons --plot-every 2", tmpdir);
	cr_expect_eq(rc, 2, "%s", out);
	cr_expect(strstr(out, "--plot-every needs --plot DIR"), "%s", out);
	free(out);
}

/* --eval on Fashion-MNIST names its ten classes, and --plot draws the
 * matrix as an SVG that xmllint accepts. */
Test(plots, fashion_eval_names_classes_and_draws_the_matrix)
{
	need_tool("xmllint", "libxml2-utils");
	if (access("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", R_OK) != 0)
		cr_assert_fail("Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist (scripts/deps.sh)");
	char *out;
	cr_assert_eq(sh_run(&out, "cd '%s' && '%s' '%s/examples/mlp.nn' -o mlp && ./mlp --epochs 1 --limit 3000 --quiet "
				  "--save m.ckpt && ./mlp --load m.ckpt --eval --test-limit 1000 --plot pics",
			    tmpdir, NNC_EXE, NNC_SOURCE_DIR),
		     0, "%s", out);
	const char *names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
			       "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
	for (int k = 0; k < 10; k++) {
		char row[64];
		snprintf(row, sizeof row, "\n%s ", names[k]);
		cr_expect(strstr(out, row), "no row for %s:\n%s", names[k], out);
		snprintf(row, sizeof row, "\n%d %s ", k, names[k]);
		cr_expect(strstr(out, row), "no matrix row for %s:\n%s", names[k], out);
	}
	free(out);
	char path[512];
	snprintf(path, sizeof path, "%s/pics/confusion.svg", tmpdir);
	xml_ok(path);
	char *svg = slurp(path, NULL);
	cr_expect(strstr(svg, ">Ankle boot</text>"), "class names missing from confusion.svg");
	free(svg);
}
