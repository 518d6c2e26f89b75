/*
 * csv.c - the CSV loader: numeric columns picked by name (with a header
 * line) or by 0-based index, the label columns last unless the spec says
 * otherwise; the file may be gzip'ed.
 *
 * The whole text is read first, within limits (bytes per line, bytes in
 * all), so that a device, a pipe that never ends or a binary file is refused
 * instead of read until memory runs out.  Every error names the file, line
 * and column.
 */
#define _POSIX_C_SOURCE 200809L

#include "loader.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
	gzFile f = nnrt_gz_open(path);
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
		if (nnrt_gz_read(f, path, buf + n, cap - 1 - n, &got)) {
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

int nnrt_csv_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
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
	if (!d->x_f32 || (need_labels && nnrt_data_alloc_labels(d)))
		goto out;

	float scale = nnrt_data_scale(spec), shift = spec->shift;
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
				const char *loss = nnrt_data_bad_target(m, v);
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

