/*
 * data.c - loads training, test and prediction data into nnrt_dataset, and
 * gathers shuffled batches out of it.
 *
 * Three families of source, all checked against the model before a single
 * step runs, because a shape or label mistake found after an hour of training
 * is an hour lost:
 *   IDX   (MNIST-style) images and labels, raw or gzip: zlib's gzread reads
 *         both transparently.  Images stay uint8 in memory.
 *   CSV   numeric columns picked by name (header) or 0-based index.
 *   synthetic sets (xor, moons, circles, spiral, parity, majority), made
 *         from the spec's seed so every run sees the same samples.
 * Every error names the file, and for CSV the line and column, and returns
 * non-zero with the data set left empty.
 */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* A .nn file that says nothing about scaling gives scale 0 if the compiler
 * leaves the field zero; a zero scale would erase every feature, so it can
 * only mean "unset". */
static float spec_scale(const nnrt_data_spec *s)
{
	return s->scale != 0.0f ? s->scale : 1.0f;
}

void nnrt_data_free(nnrt_dataset *d)
{
	nnrt_free(d->x_u8);
	nnrt_free(d->x_f32);
	nnrt_free(d->y_class);
	nnrt_free(d->y_real);
	memset(d, 0, sizeof *d);
}

const char *nnrt_data_kind_name(int32_t kind)
{
	switch (kind) {
	case NNRT_DATA_NONE: return "none";
	case NNRT_DATA_IDX: return "idx";
	case NNRT_DATA_CSV: return "csv";
	case NNRT_DATA_XOR: return "xor";
	case NNRT_DATA_MOONS: return "moons";
	case NNRT_DATA_CIRCLES: return "circles";
	case NNRT_DATA_SPIRAL: return "spiral";
	case NNRT_DATA_PARITY: return "parity";
	case NNRT_DATA_MAJORITY: return "majority";
	}
	return "unknown";
}

/* Stores label value v (already checked) of sample i. */
static void set_label(nnrt_dataset *d, int64_t i, double v)
{
	if (d->label_kind == NNRT_LABEL_CLASS) {
		d->y_class[i] = (int32_t)v;
	} else if (d->label_size == 1) {
		d->y_real[i] = (float)v;
	} else {
		/* A class index against a vector label: one-hot. */
		for (int64_t k = 0; k < d->label_size; k++)
			d->y_real[i * d->label_size + k] = (k == (int64_t)v) ? 1.0f : 0.0f;
	}
}

/* A cross-entropy compares probabilities: a real target outside [0, 1]
 * makes its loss negative or unbounded, and the training "converges" to
 * nonsense without a word.  NULL if `v` suits m's loss, else the loss's
 * name for the message. */
static const char *bad_target(const nnrt_model *m, double v)
{
	if (m->label_kind != NNRT_LABEL_REAL || (v >= 0 && v <= 1))
		return NULL;
	if (m->loss == NNRT_LOSS_BCE)
		return "binary_cross_entropy";
	if (m->loss == NNRT_LOSS_SOFTMAX_XENT)
		return "softmax_cross_entropy";
	return NULL;
}

static int alloc_labels(nnrt_dataset *d)
{
	if (d->label_kind == NNRT_LABEL_CLASS)
		d->y_class = nnrt_calloc(d->n, sizeof(int32_t), "labels");
	else
		d->y_real = nnrt_calloc(d->n * d->label_size, sizeof(float), "labels");
	return d->y_class || d->y_real ? 0 : -1;
}

/* ---- IDX ---- */

typedef struct idx_file {
	gzFile f;
	const char *path;
	int ndims;
	int64_t dims[1 + NNRT_MAX_RANK]; /* dims[0]: number of items */
} idx_file;

/* Reads up to n bytes; *got = bytes read (short at end of file).  Returns
 * non-zero, reported, on a read or decompression error. */
static int gz_read(gzFile f, const char *path, void *buf, int64_t n, int64_t *got)
{
	unsigned char *p = buf;
	*got = 0;
	while (*got < n) {
		/* gzread takes an unsigned count and returns an int. */
		int64_t want = n - *got;
		unsigned chunk = want > (1 << 30) ? (1u << 30) : (unsigned)want;
		int r = gzread(f, p + *got, chunk);
		if (r < 0) {
			int zerr;
			const char *msg = gzerror(f, &zerr);
			nnrt_sys_error("%s: cannot read: %s", path, zerr == Z_ERRNO ? strerror(errno) : msg);
			return -1;
		}
		if (r == 0) {
			/* End of input.  A gzip stream cut short also ends here,
			 * with Z_BUF_ERROR ("unexpected end of file"): that is a
			 * truncated file, which the caller reports with the sizes
			 * it expected.  Any other error is corruption. */
			int zerr;
			const char *msg = gzerror(f, &zerr);
			if (zerr != Z_OK && zerr != Z_BUF_ERROR) {
				nnrt_sys_error("%s: cannot read: %s", path, msg);
				return -1;
			}
			break;
		}
		*got += r;
	}
	return 0;
}

/* Reads up to n bytes into a new buffer (*out, freed with nnrt_free) that
 * grows with the data that actually arrives: a header that promises more
 * than the file holds costs no more memory than the file.  *got as in
 * gz_read. */
static int gz_read_alloc(gzFile f, const char *path, int64_t n, const char *what, uint8_t **out, int64_t *got)
{
	int64_t cap = n < ((int64_t)1 << 24) ? n : ((int64_t)1 << 24);
	uint8_t *buf = nnrt_calloc(cap, 1, what);
	*out = NULL;
	*got = 0;
	while (buf) {
		int64_t g;
		if (gz_read(f, path, buf + *got, cap - *got, &g)) {
			nnrt_free(buf);
			return -1;
		}
		*got += g;
		if (*got < cap || cap == n)
			break;
		int64_t ncap = cap > n / 2 ? n : 2 * cap;
		uint8_t *nb = realloc(buf, (size_t)ncap);
		if (!nb) {
			nnrt_sys_error("out of memory reading %s (%lld bytes of %s)", path, (long long)ncap, what);
			nnrt_free(buf);
			return -1;
		}
		buf = nb;
		cap = ncap;
	}
	if (!buf)
		return -1;
	*out = buf;
	return 0;
}

/* After the data a header describes: 0 at a clean end of file, 1 if bytes
 * are left over, -1 (reported) if the rest is corrupt (a gzip checksum). */
static int gz_at_end(gzFile f, const char *path)
{
	unsigned char c;
	int64_t got;
	if (gz_read(f, path, &c, 1, &got))
		return -1;
	return got > 0;
}

static gzFile gz_open(const char *path)
{
	errno = 0;
	gzFile f = gzopen(path, "rb");
	if (!f)
		nnrt_error("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
	return f;
}

static const char *idx_type_name(int t)
{
	switch (t) {
	case 0x08: return "unsigned byte";
	case 0x09: return "signed byte";
	case 0x0b: return "short";
	case 0x0c: return "int";
	case 0x0d: return "float";
	case 0x0e: return "double";
	}
	return "unknown type";
}

/* Opens an IDX file and reads its header.  labels: expect 0x00000801 (one
 * dimension), else 0x00000803-like images (2..1+NNRT_MAX_RANK dims). */
static int idx_open(idx_file *x, const char *path, int labels)
{
	memset(x, 0, sizeof *x);
	x->path = path;
	x->f = gz_open(path);
	if (!x->f)
		return -1;
	const char *kind = labels ? "label" : "image";
	unsigned expect = labels ? 0x801u : 0x803u;
	unsigned char h[4];
	int64_t got;
	if (gz_read(x->f, path, h, 4, &got))
		return -1;
	if (got == 0) {
		nnrt_error("%s: file is empty; expected an IDX %s file", path, kind);
		return -1;
	}
	if (got < 4) {
		nnrt_error("%s: file is truncated: it ends inside the IDX header", path);
		return -1;
	}
	unsigned magic = (unsigned)h[0] << 24 | (unsigned)h[1] << 16 | (unsigned)h[2] << 8 | h[3];
	if (h[0] || h[1] || h[3] == 0) {
		nnrt_error("%s: not an IDX file: bad magic number 0x%08x (expected 0x%08x for %ss)", path, magic,
		           expect, kind);
		return -1;
	}
	if (h[2] != 0x08) {
		nnrt_error("%s: IDX element type 0x%02x (%s) is not supported; only unsigned bytes (0x08) are",
		           path, h[2], idx_type_name(h[2]));
		return -1;
	}
	x->ndims = h[3];
	if (labels ? x->ndims != 1 : (x->ndims < 2 || x->ndims > 1 + NNRT_MAX_RANK)) {
		nnrt_error("%s: expected an IDX %s file (magic 0x%08x) but found magic 0x%08x (%d dimension%s)",
		           path, kind, expect, magic, x->ndims, x->ndims == 1 ? "" : "s");
		return -1;
	}
	unsigned char dims[4 * (1 + NNRT_MAX_RANK)];
	if (gz_read(x->f, path, dims, 4 * x->ndims, &got))
		return -1;
	if (got < 4 * x->ndims) {
		nnrt_error("%s: file is truncated: it ends inside the IDX header", path);
		return -1;
	}
	for (int i = 0; i < x->ndims; i++) {
		const unsigned char *b = dims + 4 * i;
		x->dims[i] = (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
		if (i > 0 && x->dims[i] == 0) {
			nnrt_error("%s: IDX dimension %d is 0", path, i);
			return -1;
		}
	}
	return 0;
}

static void idx_close(idx_file *x)
{
	if (x->f)
		gzclose(x->f);
	x->f = NULL;
}

/* Images: [n][per] bytes; labels: n bytes, checked against the model. */
static int load_idx(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                    int64_t limit, int need_labels)
{
	if (!spec->path_x || (need_labels && !spec->path_y)) {
		nnrt_error("%s data: idx() needs an images file and a labels file", what);
		return -1;
	}
	idx_file im, lb;
	memset(&lb, 0, sizeof lb);
	int rc = -1;
	if (idx_open(&im, spec->path_x, 0))
		goto out;

	/* Bytes per sample, and "28x28" for the message if it does not fit. */
	int64_t per = 1;
	char shape[128] = "";
	size_t len = 0;
	for (int i = 1; i < im.ndims; i++) {
		if (per > ((int64_t)1 << 40) / im.dims[i]) {
			nnrt_error("%s: IDX dimensions are too large for one sample", im.path);
			goto out;
		}
		per *= im.dims[i];
		len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", i > 1 ? "x" : "",
		                        (long long)im.dims[i]);
	}
	if (per != m->input_size) {
		char in[128];
		if (im.ndims > 2)
			nnrt_error("%s: %s images have %s = %lld values per sample but the model input is %s",
			           im.path, what, shape, (long long)per, nnrt_fmt_input(m, in, sizeof in));
		else
			nnrt_error("%s: %s images have %lld values per sample but the model input is %s", im.path,
			           what, (long long)per, nnrt_fmt_input(m, in, sizeof in));
		goto out;
	}
	if (im.dims[0] == 0) {
		nnrt_error("%s: no samples (the IDX header gives a count of 0)", im.path);
		goto out;
	}
	if (need_labels) {
		if (idx_open(&lb, spec->path_y, 1))
			goto out;
		if (lb.dims[0] != im.dims[0]) {
			nnrt_error("%s has %lld images but %s has %lld labels", im.path, (long long)im.dims[0],
			           lb.path, (long long)lb.dims[0]);
			goto out;
		}
	}

	int64_t n = im.dims[0];
	if (limit > 0 && limit < n)
		n = limit;
	/* The buffer grows only with the bytes that arrive, so a plain file
	 * costs at most its size; but a device, a pipe or a gzip stream can
	 * deliver all that the header promises: more than the memory is
	 * refused up front.  (n < 2^32 and per <= 2^40: n * per could
	 * overflow, a division cannot.) */
	struct stat sb;
	int regular_raw = gzdirect(im.f) && stat(im.path, &sb) == 0 && S_ISREG(sb.st_mode);
	int64_t mem = nnrt_memory_bytes();
	if (!regular_raw && per > mem / n) {
		nnrt_error("%s: the header promises %lld images of %lld bytes (%.1f GiB), more than this machine's memory "
		           "(%.1f GiB)",
		           im.path, (long long)n, (long long)per, (double)n * (double)per / (1 << 30),
		           (double)mem / (1 << 30));
		goto out;
	}
	d->n = n;
	d->scale = spec_scale(spec);
	d->shift = spec->shift;
	/* features are byte * scale + shift, made batch by batch: check the
	 * extremes once, here */
	if (!isfinite(255.0f * d->scale + d->shift) || !isfinite(d->shift)) {
		nnrt_error("%s data: scale %g and shift %g make features that are not finite", what, d->scale, d->shift);
		goto out;
	}
	int64_t got;
	if (gz_read_alloc(im.f, im.path, n * per, "images", &d->x_u8, &got))
		goto out;
	if (got < n * per) {
		nnrt_error("%s: file is truncated: the header promises %lld images of %lld bytes but the file "
		           "holds only %lld bytes of image data",
		           im.path, (long long)im.dims[0], (long long)per, (long long)got);
		goto out;
	}
	/* More bytes than the header describes: its dimensions are wrong. */
	if (n == im.dims[0]) {
		int more = gz_at_end(im.f, im.path);
		if (more > 0)
			nnrt_error("%s: the file holds more than the %lld images of %s bytes its header describes", im.path,
			           (long long)im.dims[0], shape);
		if (more)
			goto out;
	}

	if (need_labels) {
		uint8_t *raw;
		if (gz_read_alloc(lb.f, lb.path, n, "labels", &raw, &got))
			goto out;
		if (got < n) {
			nnrt_error("%s: file is truncated: the header promises %lld labels but the file holds only %lld",
			           lb.path, (long long)lb.dims[0], (long long)got);
			nnrt_free(raw);
			goto out;
		}
		int more = n == lb.dims[0] ? gz_at_end(lb.f, lb.path) : 0;
		if (more > 0)
			nnrt_error("%s: the file holds more than the %lld labels its header describes", lb.path,
			           (long long)lb.dims[0]);
		if (more) {
			nnrt_free(raw);
			goto out;
		}
		if (alloc_labels(d)) {
			nnrt_free(raw);
			goto out;
		}
		/* A real-valued label of size 1 takes the byte as its value; any
		 * other label treats it as a class index. */
		int is_index = !(d->label_kind == NNRT_LABEL_REAL && d->label_size == 1);
		for (int64_t i = 0; i < n; i++) {
			const char *loss = is_index ? NULL : bad_target(m, raw[i]);
			if (loss) {
				nnrt_error("%s: label %d of sample %lld is outside [0, 1], which %s needs", lb.path, raw[i],
				           (long long)i, loss);
				nnrt_free(raw);
				goto out;
			}
			if (is_index && raw[i] >= d->label_size) {
				nnrt_error("%s: label %d of sample %lld is out of range: the model has %lld classes (0..%lld)",
				           lb.path, raw[i], (long long)i, (long long)d->label_size,
				           (long long)d->label_size - 1);
				nnrt_free(raw);
				goto out;
			}
			set_label(d, i, raw[i]);
		}
		nnrt_free(raw);
	}
	rc = 0;
out:
	idx_close(&im);
	idx_close(&lb);
	return rc;
}

/* ---- CSV ---- */

/* Limits of a CSV file, so that a device, a pipe that never ends or a file
 * with no line breaks is refused instead of read until memory runs out. */
typedef struct text_limits {
	int64_t max_line;  /* bytes in one line */
	int64_t max_bytes; /* bytes in all */
	int64_t max_lines; /* non-blank lines worth reading (0: all) */
} text_limits;

/* Reads a whole (optionally gzip'ed) text file, NUL-terminated, within
 * `lim`; with max_lines, stops after that many non-blank lines.  The caller
 * frees *text. */
static int read_text(const char *path, const text_limits *lim, char **text, int64_t *len)
{
	*text = NULL;
	gzFile f = gz_open(path);
	if (!f)
		return -1;
	int64_t cap = 1 << 16, n = 0;
	int64_t lineno = 1, line_len = 0, lines = 0;
	int nonblank = 0;
	char *buf = malloc((size_t)cap);
	for (;;) {
		if (!buf) {
			nnrt_sys_error("%s: out of memory reading the file", path);
			gzclose(f);
			return -1;
		}
		int64_t got;
		if (gz_read(f, path, buf + n, cap - 1 - n, &got)) {
			free(buf);
			gzclose(f);
			return -1;
		}
		/* Checked as it arrives: /dev/zero is refused after one block. */
		const char *why = NULL;
		int64_t i;
		for (i = n; i < n + got && !why; i++) {
			char c = buf[i];
			if (c == '\n') {
				lines += nonblank;
				nonblank = 0;
				line_len = 0;
				lineno++;
				if (lim->max_lines > 0 && lines >= lim->max_lines)
					break;
				continue;
			}
			if (c == 0)
				why = "nul";
			else if (++line_len > lim->max_line)
				why = "line";
			nonblank |= c != ' ' && c != '\t' && c != '\r';
		}
		if (why) {
			if (*why == 'n')
				nnrt_error("%s: not a text file (it contains NUL bytes)", path);
			else
				nnrt_error("%s:%lld: line is longer than %lld bytes; not a CSV file?", path, (long long)lineno,
				           (long long)lim->max_line);
			free(buf);
			gzclose(f);
			return -1;
		}
		if (i < n + got) { /* enough lines: the rest is not read */
			n = i + 1;
			break;
		}
		n += got;
		if (n < cap - 1)
			break;
		if (n >= lim->max_bytes) {
			nnrt_error("%s: the file holds more than %lld MiB of text, more than a data set this machine's memory "
			           "can hold; use --limit, or a smaller file",
			           path, (long long)(lim->max_bytes >> 20));
			free(buf);
			gzclose(f);
			return -1;
		}
		cap *= 2;
		char *nb = realloc(buf, (size_t)cap);
		if (!nb)
			free(buf);
		buf = nb;
	}
	gzclose(f);
	buf[n] = 0;
	*text = buf;
	*len = n;
	return 0;
}

/* One field of a row: its text after trimming blanks and quotes. */
typedef struct csv_field {
	const char *p;
	int len;
	int col; /* 1-based column of the first character in the line */
} csv_field;

/* A line of the file, without its line terminator. */
typedef struct csv_line {
	const char *p;
	int64_t len;
	int64_t no; /* 1-based */
} csv_line;

/* Advances *pos to the next line that holds anything but blanks.  0 at the
 * end of the text. */
static int next_line(const char **pos, int64_t *lineno, csv_line *line)
{
	while (**pos) {
		const char *s = *pos;
		const char *e = strchr(s, '\n');
		if (!e)
			e = s + strlen(s);
		*pos = *e ? e + 1 : e;
		++*lineno;
		const char *end = e;
		if (end > s && end[-1] == '\r')
			end--;
		for (const char *q = s; q < end; q++) {
			if (*q != ' ' && *q != '\t') {
				line->p = s;
				line->len = end - s;
				line->no = *lineno;
				return 1;
			}
		}
	}
	return 0;
}

/* Splits a line at commas outside double quotes.  Stores up to max fields
 * and returns how many there are. */
static int split_fields(const csv_line *line, csv_field *f, int max)
{
	int n = 0;
	const char *p = line->p, *end = line->p + line->len;
	for (;;) {
		const char *s = p;
		int quoted = 0;
		while (p < end && (*p != ',' || quoted)) {
			if (*p == '"')
				quoted = !quoted;
			p++;
		}
		if (n < max) {
			const char *a = s, *b = p;
			while (a < b && (*a == ' ' || *a == '\t'))
				a++;
			while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
				b--;
			if (b - a >= 2 && *a == '"' && b[-1] == '"')
				a++, b--;
			f[n].p = a;
			f[n].len = (int)(b - a);
			f[n].col = (int)(a - line->p) + 1;
			if (f[n].len == 0)
				f[n].col = (int)(s - line->p) + 1;
		}
		n++;
		if (p >= end)
			return n;
		p++; /* the comma */
	}
}

enum { NUM_OK, NUM_EMPTY, NUM_BAD, NUM_NONFINITE, NUM_RANGE };

static int parse_num(const csv_field *f, double *v)
{
	if (f->len == 0)
		return NUM_EMPTY;
	char *end;
	errno = 0;
	*v = strtod(f->p, &end);
	if (end != f->p + f->len)
		return NUM_BAD;
	if (!isfinite(*v))
		return NUM_NONFINITE; /* "nan", "inf", or an overflow like 1e999 */
	if (fabs(*v) > FLT_MAX)
		return NUM_RANGE; /* it would be inf as the float training reads */
	return NUM_OK;
}

/* Everything a CSV load needs to know about the file's columns. */
typedef struct csv_cols {
	const char *path;
	int ncols;
	csv_field *head; /* [ncols] header names, or NULL */
	int *x, nx;      /* feature columns */
	int *y, ny;      /* label columns */
} csv_cols;

/* Writes a column's name for messages: 'x2' with a header, else its index. */
static const char *col_name(const csv_cols *c, int col, char *buf, size_t cap)
{
	if (c->head)
		snprintf(buf, cap, "'%.*s'", c->head[col].len, c->head[col].p);
	else
		snprintf(buf, cap, "%d", col);
	return buf;
}

static void list_header(const csv_cols *c, char *buf, size_t cap)
{
	size_t len = 0;
	buf[0] = 0;
	for (int i = 0; i < c->ncols && len + 8 < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%.*s", i ? ", " : "", c->head[i].len, c->head[i].p);
}

/* Resolves a column list ("x1,x2" or "0,1") into indices; out has room for
 * ncols entries.  `which` is "x" or "y", the key of the .nn data spec. */
static int resolve_cols(const csv_cols *c, const char *list, const char *which, int *out, int *nout)
{
	*nout = 0;
	const char *p = list;
	for (;;) {
		const char *s = p;
		while (*p && *p != ',')
			p++;
		const char *a = s, *b = p;
		while (a < b && (*a == ' ' || *a == '\t' || *a == '"'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '"'))
			b--;
		int len = (int)(b - a);
		if (len == 0) {
			nnrt_error("%s: empty column name in the %s columns \"%s\"", c->path, which, list);
			return -1;
		}
		int all_digits = 1;
		for (const char *q = a; q < b; q++)
			all_digits &= *q >= '0' && *q <= '9';
		int col = -1;
		if (all_digits) {
			long v = strtol(a, NULL, 10);
			if (len > 9 || v >= c->ncols) {
				nnrt_error("%s: %s column %.*s is out of range: the file has %d column%s (0..%d)", c->path,
				           which, len, a, c->ncols, c->ncols == 1 ? "" : "s", c->ncols - 1);
				return -1;
			}
			col = (int)v;
		} else if (!c->head) {
			nnrt_error("%s: %s column '%.*s' is a name, but the file has no header line; "
			           "use 0-based column numbers or header: true",
			           c->path, which, len, a);
			return -1;
		} else {
			for (int i = 0; i < c->ncols; i++) {
				if (c->head[i].len == len && memcmp(c->head[i].p, a, (size_t)len) == 0) {
					col = i;
					break;
				}
			}
			if (col < 0) {
				char names[512];
				list_header(c, names, sizeof names);
				nnrt_error("%s: the header has no column '%.*s' (its columns are: %s)", c->path, len, a, names);
				return -1;
			}
		}
		if (*nout >= c->ncols) {
			nnrt_error("%s: the %s columns \"%s\" list more columns than the file has", c->path, which, list);
			return -1;
		}
		out[(*nout)++] = col;
		if (!*p)
			return 0;
		p++;
	}
}

/* Columns not in `not`, in file order. */
static void complement(const csv_cols *c, const int *not, int nnot, int *out, int *nout)
{
	*nout = 0;
	for (int i = 0; i < c->ncols; i++) {
		int taken = 0;
		for (int j = 0; j < nnot; j++)
			taken |= not[j] == i;
		if (!taken)
			out[(*nout)++] = i;
	}
}

static int has_list(const char *s)
{
	return s && *s;
}

/* Picks the feature and label columns from the spec, with defaults:
 * labels are the last column(s) and features the rest, or whichever side the
 * spec leaves open is the complement of the other. */
static int choose_cols(csv_cols *c, const nnrt_model *m, const nnrt_data_spec *spec, int need_labels)
{
	int want_y = m->label_kind == NNRT_LABEL_CLASS ? 1 : (int)m->label_size;
	if (has_list(spec->cols_x)) {
		if (resolve_cols(c, spec->cols_x, "x", c->x, &c->nx))
			return -1;
	} else if (!need_labels && c->ncols == m->input_size) {
		complement(c, NULL, 0, c->x, &c->nx);
	} else if (has_list(spec->cols_y)) {
		if (resolve_cols(c, spec->cols_y, "y", c->y, &c->ny))
			return -1;
		complement(c, c->y, c->ny, c->x, &c->nx);
	} else {
		c->nx = c->ncols - want_y > 0 ? c->ncols - want_y : 0;
		for (int i = 0; i < c->nx; i++)
			c->x[i] = i;
	}
	char in[128], lab[128];
	if (c->nx != m->input_size) {
		nnrt_error("%s: the x columns give %d value%s per sample but the model input is %s", c->path, c->nx,
		           c->nx == 1 ? "" : "s", nnrt_fmt_input(m, in, sizeof in));
		return -1;
	}
	if (!need_labels)
		return 0;
	if (has_list(spec->cols_y)) {
		if (resolve_cols(c, spec->cols_y, "y", c->y, &c->ny))
			return -1;
	} else if (has_list(spec->cols_x)) {
		complement(c, c->x, c->nx, c->y, &c->ny);
	} else {
		c->ny = 0;
		for (int i = c->ncols - want_y; i < c->ncols; i++)
			if (i >= 0)
				c->y[c->ny++] = i;
	}
	if (c->ny != want_y) {
		nnrt_error("%s: the y columns give %d value%s per sample but the model label %s needs %d", c->path,
		           c->ny, c->ny == 1 ? "" : "s", nnrt_fmt_label(m, lab, sizeof lab), want_y);
		return -1;
	}
	return 0;
}

/* Reports a bad numeric field; returns -1. */
static int bad_field(const csv_cols *c, const csv_line *line, const csv_field *f, int col, int why)
{
	char name[128];
	col_name(c, col, name, sizeof name);
	switch (why) {
	case NUM_EMPTY:
		nnrt_error("%s:%lld:%d: empty field in column %s", c->path, (long long)line->no, f->col, name);
		break;
	case NUM_BAD:
		nnrt_error("%s:%lld:%d: '%.*s' in column %s is not a number", c->path, (long long)line->no, f->col,
		           f->len > 40 ? 40 : f->len, f->p, name);
		break;
	case NUM_RANGE:
		nnrt_error("%s:%lld:%d: '%.*s' in column %s is too large for a 32-bit float", c->path,
		           (long long)line->no, f->col, f->len > 40 ? 40 : f->len, f->p, name);
		break;
	default:
		nnrt_error("%s:%lld:%d: '%.*s' in column %s is not a finite number", c->path, (long long)line->no,
		           f->col, f->len > 40 ? 40 : f->len, f->p, name);
		break;
	}
	return -1;
}

static int load_csv(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                    int64_t limit, int need_labels)
{
	if (!spec->path_x) {
		nnrt_error("%s data: csv() needs a file", what);
		return -1;
	}
	/* A line holds at most every column at 64 characters, or 1 MiB; a
	 * file at most a quarter of the memory (its floats take as much). */
	text_limits lim = {.max_line = (int64_t)1 << 20, .max_bytes = nnrt_memory_bytes() / 4,
	                   .max_lines = limit > 0 ? limit + 1 : 0};
	if (64 * (m->input_size + m->label_size) > lim.max_line)
		lim.max_line = 64 * (m->input_size + m->label_size);
	char *text;
	int64_t text_len;
	if (read_text(spec->path_x, &lim, &text, &text_len))
		return -1;
	csv_cols c = {.path = spec->path_x};
	csv_field *row = NULL;
	int rc = -1;

	const char *pos = text;
	int64_t lineno = 0;
	csv_line first;
	if (!next_line(&pos, &lineno, &first)) {
		nnrt_error("%s: the file is empty", c.path);
		goto out;
	}
	c.ncols = split_fields(&first, NULL, 0);
	/* One spare slot: split_fields stores at most ncols fields, and a
	 * ragged row is detected by the count it returns. */
	row = nnrt_calloc(c.ncols + 1, sizeof *row, "a CSV row");
	c.x = nnrt_calloc(c.ncols, sizeof(int), "CSV columns");
	c.y = nnrt_calloc(c.ncols, sizeof(int), "CSV columns");
	csv_field *head = nnrt_calloc(c.ncols, sizeof *head, "the CSV header");
	if (!row || !c.x || !c.y || !head) {
		nnrt_free(head);
		goto out;
	}
	split_fields(&first, head, c.ncols);
	int header = spec->has_header;
	if (header < 0) {
		header = 0;
		for (int i = 0; i < c.ncols; i++) {
			double v;
			header |= parse_num(&head[i], &v) == NUM_BAD;
		}
	}
	const char *data_start = pos;
	int64_t data_lineno = lineno;
	if (header) {
		c.head = head;
	} else {
		nnrt_free(head);
		data_start = first.p;
		data_lineno = first.no - 1;
	}
	if (choose_cols(&c, m, spec, need_labels))
		goto out;

	/* Count the rows first: then the arrays are allocated once, exactly. */
	int64_t n = 0;
	csv_line line;
	pos = data_start;
	lineno = data_lineno;
	while ((limit <= 0 || n < limit) && next_line(&pos, &lineno, &line))
		n++;
	if (n == 0) {
		nnrt_error("%s: no data rows%s", c.path, header ? " after the header" : "");
		goto out;
	}
	d->n = n;
	d->x_f32 = nnrt_calloc(n * m->input_size, sizeof(float), "features");
	if (!d->x_f32 || (need_labels && alloc_labels(d)))
		goto out;

	float scale = spec_scale(spec), shift = spec->shift;
	pos = data_start;
	lineno = data_lineno;
	for (int64_t i = 0; i < n; i++) {
		next_line(&pos, &lineno, &line);
		int nf = split_fields(&line, row, c.ncols);
		if (nf != c.ncols) {
			nnrt_error("%s:%lld: row has %d field%s but the %s has %d", c.path, (long long)line.no, nf,
			           nf == 1 ? "" : "s", header ? "header" : "first row", c.ncols);
			goto out;
		}
		for (int j = 0; j < c.nx; j++) {
			double v;
			int why = parse_num(&row[c.x[j]], &v);
			if (why != NUM_OK) {
				bad_field(&c, &line, &row[c.x[j]], c.x[j], why);
				goto out;
			}
			float x = (float)v * scale + shift;
			if (!isfinite(x)) {
				const csv_field *f = &row[c.x[j]];
				char name[128];
				nnrt_error("%s:%lld:%d: '%.*s' in column %s is not finite after scaling (scale %g, shift %g)",
				           c.path, (long long)line.no, f->col, f->len > 40 ? 40 : f->len, f->p,
				           col_name(&c, c.x[j], name, sizeof name), scale, shift);
				goto out;
			}
			d->x_f32[i * m->input_size + j] = x;
		}
		if (!need_labels)
			continue;
		for (int j = 0; j < c.ny; j++) {
			double v;
			const csv_field *f = &row[c.y[j]];
			int why = parse_num(f, &v);
			if (why != NUM_OK) {
				bad_field(&c, &line, f, c.y[j], why);
				goto out;
			}
			if (m->label_kind == NNRT_LABEL_CLASS) {
				char name[128];
				col_name(&c, c.y[j], name, sizeof name);
				if (v < 0 || v != floor(v)) {
					nnrt_error("%s:%lld:%d: class label '%.*s' in column %s is not a non-negative integer",
					           c.path, (long long)line.no, f->col, f->len > 40 ? 40 : f->len, f->p, name);
					goto out;
				}
				if (v >= (double)m->label_size) {
					nnrt_error("%s:%lld:%d: class label %.0f in column %s is out of range: the model has "
					           "%lld classes (0..%lld)",
					           c.path, (long long)line.no, f->col, v, name, (long long)m->label_size,
					           (long long)m->label_size - 1);
					goto out;
				}
				d->y_class[i] = (int32_t)v;
			} else {
				const char *loss = bad_target(m, v);
				if (loss) {
					char name[128];
					nnrt_error("%s:%lld:%d: target '%.*s' in column %s is outside [0, 1], which %s needs", c.path,
					           (long long)line.no, f->col, f->len > 40 ? 40 : f->len, f->p,
					           col_name(&c, c.y[j], name, sizeof name), loss);
					goto out;
				}
				d->y_real[i * m->label_size + j] = (float)v;
			}
		}
	}
	rc = 0;
out:
	nnrt_free(c.head);
	nnrt_free(row);
	nnrt_free(c.x);
	nnrt_free(c.y);
	free(text);
	return rc;
}

/* ---- Synthetic sets ---- */

/* Bits of a parity/majority set: `classes` if given, else the input size. */
static int64_t synth_bits(const nnrt_data_spec *spec, const nnrt_model *m)
{
	return spec->classes > 0 ? spec->classes : m->input_size;
}

/* Arms of a spiral: `classes` if given, else the model's class count. */
static int64_t synth_arms(const nnrt_data_spec *spec, const nnrt_model *m)
{
	if (spec->classes > 0)
		return spec->classes;
	return m->label_kind == NNRT_LABEL_CLASS ? m->label_size : 3;
}

int64_t nnrt_data_default_count(const nnrt_data_spec *spec, const nnrt_model *m)
{
	if (spec->kind == NNRT_DATA_PARITY || spec->kind == NNRT_DATA_MAJORITY) {
		int64_t bits = synth_bits(spec, m);
		return bits >= 1 && bits <= 24 ? (int64_t)1 << bits : 0;
	}
	return 1000;
}

/* Fills sample i (features x[0..nf), returns its class). */
static int synth_sample(const nnrt_data_spec *spec, int64_t i, int64_t nclass, int64_t bits, nnrt_rng *r,
                        float *x)
{
	const double pi = 3.141592653589793;
	int c = (int)(i % nclass); /* classes take turns: exactly balanced */
	double u, v;
	switch (spec->kind) {
	case NNRT_DATA_XOR: {
		/* A random quadrant of the class's pair: c = 1 iff the signs
		 * differ, each feature uniform in [-1, 1]. */
		double s = nnrt_rng_uniform_d(r) < 0.5 ? -1.0 : 1.0;
		u = nnrt_rng_uniform_d(r);
		v = nnrt_rng_uniform_d(r);
		x[0] = (float)(s * u);
		x[1] = (float)((c ? -s : s) * v);
		break;
	}
	case NNRT_DATA_MOONS:
		/* Upper half-circle around (0, 0) and a lower one around
		 * (1, 0.5), interlocked. */
		u = pi * nnrt_rng_uniform_d(r);
		x[0] = (float)(c ? 1.0 - cos(u) : cos(u));
		x[1] = (float)(c ? 0.5 - sin(u) : sin(u));
		break;
	case NNRT_DATA_CIRCLES:
		/* Class 0 on the outer circle (radius 1), class 1 inside (0.5). */
		u = 2 * pi * nnrt_rng_uniform_d(r);
		v = c ? 0.5 : 1.0;
		x[0] = (float)(v * cos(u));
		x[1] = (float)(v * sin(u));
		break;
	case NNRT_DATA_SPIRAL:
		/* Arm c starts at the centre at angle 2*pi*c/K and winds four
		 * radians outwards to radius 1. */
		u = nnrt_rng_uniform_d(r);
		v = 2 * pi * c / (double)nclass + 4.0 * u;
		x[0] = (float)(u * sin(v));
		x[1] = (float)(u * cos(v));
		break;
	default: {
		/* Parity / majority: the bit patterns in order (most significant
		 * bit first), cycled when more samples are asked for. */
		int64_t pat = i % ((int64_t)1 << bits), ones = 0;
		for (int64_t j = 0; j < bits; j++) {
			int bit = (int)(pat >> (bits - 1 - j)) & 1;
			x[j] = (float)bit;
			ones += bit;
		}
		/* A tie (even bits, half set) is not a majority. */
		c = spec->kind == NNRT_DATA_PARITY ? (int)(ones & 1) : (2 * ones > bits);
		break;
	}
	}
	int64_t nf = spec->kind == NNRT_DATA_PARITY || spec->kind == NNRT_DATA_MAJORITY ? bits : 2;
	if (spec->noise > 0)
		for (int64_t j = 0; j < nf; j++)
			x[j] += (float)(spec->noise * nnrt_rng_normal(r));
	return c;
}

static int load_synthetic(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                          int need_labels)
{
	const char *kind = nnrt_data_kind_name(spec->kind);
	int64_t nf = 2, nclass = 2, bits = 0;
	if (spec->kind == NNRT_DATA_PARITY || spec->kind == NNRT_DATA_MAJORITY) {
		bits = synth_bits(spec, m);
		if (bits < 1 || bits > 24) {
			nnrt_error("%s data: %s(bits: %lld): the number of bits must be between 1 and 24", what, kind,
			           (long long)bits);
			return -1;
		}
		nf = bits;
	} else if (spec->kind == NNRT_DATA_SPIRAL) {
		nclass = synth_arms(spec, m);
		if (nclass < 1 || nclass > 1000) {
			nnrt_error("%s data: spiral(classes: %lld): the number of arms must be between 1 and 1000", what,
			           (long long)nclass);
			return -1;
		}
	}
	char in[128], lab[128];
	if (nf != m->input_size) {
		nnrt_error("%s data: %s has %lld feature%s per sample but the model input is %s", what, kind,
		           (long long)nf, nf == 1 ? "" : "s", nnrt_fmt_input(m, in, sizeof in));
		return -1;
	}
	if (need_labels) {
		if (m->label_kind == NNRT_LABEL_CLASS && nclass > m->label_size) {
			nnrt_error("%s data: %s has %lld classes but the model label is %s", what, kind, (long long)nclass,
			           nnrt_fmt_label(m, lab, sizeof lab));
			return -1;
		}
		if (m->label_kind == NNRT_LABEL_REAL && m->label_size != 1 && m->label_size != nclass) {
			nnrt_error("%s data: %s gives one class per sample but the model label is %s", what, kind,
			           nnrt_fmt_label(m, lab, sizeof lab));
			return -1;
		}
		/* A single real target takes the class number itself. */
		const char *loss = m->label_size == 1 ? bad_target(m, (double)(nclass - 1)) : NULL;
		if (loss) {
			nnrt_error("%s data: %s has %lld classes, but %s needs targets in [0, 1]", what, kind,
			           (long long)nclass, loss);
			return -1;
		}
	}
	int64_t n = spec->count > 0 ? spec->count : nnrt_data_default_count(spec, m);
	if (n > ((int64_t)1 << 32)) {
		nnrt_error("%s data: %s(count: %lld) is too many samples", what, kind, (long long)n);
		return -1;
	}
	d->n = n;
	d->x_f32 = nnrt_calloc(n * nf, sizeof(float), "features");
	if (!d->x_f32 || (need_labels && alloc_labels(d)))
		return -1;
	nnrt_rng r;
	nnrt_rng_seed(&r, (uint64_t)spec->seed);
	float scale = spec_scale(spec), shift = spec->shift;
	for (int64_t i = 0; i < n; i++) {
		float *x = d->x_f32 + i * nf;
		int c = synth_sample(spec, i, nclass, bits, &r, x);
		for (int64_t j = 0; j < nf; j++)
			x[j] = x[j] * scale + shift;
		for (int64_t j = 0; j < nf; j++)
			if (!isfinite(x[j])) {
				nnrt_error("%s data: %s(noise: %g) with scale %g and shift %g gives features that are not finite",
				           what, kind, spec->noise, scale, shift);
				return -1;
			}
		if (need_labels)
			set_label(d, i, c);
	}
	return 0;
}

/* ---- Entry points ---- */

int nnrt_data_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                   int64_t limit, int need_labels)
{
	memset(d, 0, sizeof *d);
	d->dim = m->input_size;
	d->label_kind = m->label_kind;
	d->label_size = m->label_size;
	d->has_labels = need_labels;
	d->scale = 1.0f;
	int rc;
	switch (spec->kind) {
	case NNRT_DATA_IDX:
		rc = load_idx(d, m, spec, what, limit, need_labels);
		break;
	case NNRT_DATA_CSV:
		rc = load_csv(d, m, spec, what, limit, need_labels);
		break;
	case NNRT_DATA_XOR:
	case NNRT_DATA_MOONS:
	case NNRT_DATA_CIRCLES:
	case NNRT_DATA_SPIRAL:
	case NNRT_DATA_PARITY:
	case NNRT_DATA_MAJORITY:
		rc = load_synthetic(d, m, spec, what, need_labels);
		break;
	case NNRT_DATA_NONE:
		nnrt_error("the model has no %s data", what);
		rc = -1;
		break;
	default:
		nnrt_error("%s data: unknown data kind %d (the model was compiled for a newer runtime)", what,
		           spec->kind);
		rc = -1;
		break;
	}
	if (rc)
		nnrt_data_free(d);
	return rc;
}

int nnrt_data_load_predict(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *like, const char *path)
{
	memset(d, 0, sizeof *d); /* empty on every failure, as nnrt_data_load leaves it */
	/* Sniff the format: IDX starts with two zero bytes and a type byte;
	 * a CSV file never starts with a NUL. */
	gzFile f = gz_open(path);
	if (!f)
		return -1;
	unsigned char h[4] = {1, 1, 1, 1};
	int64_t got;
	int rc = gz_read(f, path, h, 4, &got);
	gzclose(f);
	if (rc)
		return -1;
	nnrt_data_spec spec;
	memset(&spec, 0, sizeof spec);
	spec.path_x = path;
	spec.scale = 1.0f;
	if (got == 4 && h[0] == 0 && h[1] == 0) {
		spec.kind = NNRT_DATA_IDX;
		if (like->kind == NNRT_DATA_IDX) {
			spec.scale = like->scale;
			spec.shift = like->shift;
		}
	} else {
		spec.kind = NNRT_DATA_CSV;
		spec.has_header = -1;
		if (like->kind == NNRT_DATA_CSV) {
			spec.has_header = like->has_header;
			spec.cols_x = like->cols_x;
			spec.cols_y = like->cols_y;
			spec.scale = like->scale;
			spec.shift = like->shift;
		}
	}
	return nnrt_data_load(d, m, &spec, "prediction", 0, 0);
}

void nnrt_data_gather(const nnrt_dataset *d, const int64_t *idx, int64_t n, float *x, void *y)
{
	/* x is (n, dim); y is (n) int32 or (n, label_size) float. */
	int64_t dim = d->dim;
	for (int64_t i = 0; i < n; i++) {
		int64_t s = idx[i];
		float *dst = x + i * dim;
		if (d->x_u8) {
			const uint8_t *src = d->x_u8 + s * dim;
			for (int64_t j = 0; j < dim; j++)
				dst[j] = (float)src[j] * d->scale + d->shift;
		} else {
			memcpy(dst, d->x_f32 + s * dim, (size_t)dim * sizeof(float));
		}
	}
	if (!y || !d->has_labels)
		return;
	for (int64_t i = 0; i < n; i++) {
		int64_t s = idx[i];
		if (d->y_class)
			((int32_t *)y)[i] = d->y_class[s];
		else
			memcpy((float *)y + i * d->label_size, d->y_real + s * d->label_size,
			       (size_t)d->label_size * sizeof(float));
	}
}
