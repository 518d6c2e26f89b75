/*
 * seqdata.c - the sequence data sets (docs/language.md "Sequences"):
 * reverse, a synthetic task for fast exact tests, and text, windows of a
 * byte corpus with the next byte at every position.
 *
 * Both fill token ids into the features (as floats: the input is
 * token(V)[T], T = the model's input size) and a class id per position into
 * the real labels (label_size = T).  The compiler puts the vocabulary the
 * data may use (the smaller of the input's and the label's V) in the spec's
 * `classes`; every id is checked against it here, with the file and the
 * byte offset named, before a step runs.
 */
#define _DEFAULT_SOURCE /* lstat */
#include "loader.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The model's shape as a sequence set needs it, or an error. */
static int seq_shape(const nnrt_model *m, const nnrt_data_spec *spec, const char *what, const char *kind, int need_labels)
{
	if (need_labels && (m->loss != NNRT_LOSS_SEQ_XENT || m->label_size != m->input_size)) {
		nnrt_error("%s data: %s gives a class per position: the model needs input token(V)[T] and label "
		           "class(V)[T] with the same T (its input has %lld values, its label %lld)",
		           what, kind, (long long)m->input_size, (long long)m->label_size);
		return -1;
	}
	if (spec->classes < 2) {
		nnrt_error("%s data: %s: the vocabulary size %lld is too small (the model was compiled without one?)", what,
		           kind, (long long)spec->classes);
		return -1;
	}
	return 0;
}

/* reverse(count:, seed:): T random digits, the label the same reversed */
static int reverse_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                        int need_labels)
{
	int64_t T = m->input_size, n = spec->count > 0 ? spec->count : 1000;
	if (seq_shape(m, spec, what, "reverse", need_labels))
		return -1;
	if (spec->classes < 10) {
		nnrt_error("%s data: reverse gives the digits 0..9, but the model's vocabulary has only %lld tokens", what,
		           (long long)spec->classes);
		return -1;
	}
	d->n = n;
	d->x_f32 = nnrt_calloc(n * T, sizeof(float), "features");
	if (!d->x_f32 || (need_labels && nnrt_data_alloc_labels(d)))
		return -1;
	nnrt_rng r;
	nnrt_rng_seed(&r, (uint64_t)spec->seed);
	for (int64_t i = 0; i < n; i++) {
		float *x = d->x_f32 + i * T;
		for (int64_t t = 0; t < T; t++)
			x[t] = (float)(int)(nnrt_rng_uniform_d(&r) * 10);
		if (need_labels)
			for (int64_t t = 0; t < T; t++)
				d->y_real[i * T + t] = x[T - 1 - t];
	}
	return 0;
}

/* Appends the bytes of file `path` (raw or gzip) to *buf (len used, cap
 * allocated): 0, or -1 after reporting. */
static int append_file(const char *path, unsigned char **buf, int64_t *len, int64_t *cap)
{
	gzFile f = nnrt_gz_open(path);
	if (!f)
		return -1;
	for (;;) {
		if (*len == *cap) {
			int64_t nc = *cap ? 2 * *cap : 1 << 20;
			unsigned char *nb = nnrt_calloc(nc, 1, "the text");
			if (!nb) {
				gzclose(f);
				return -1;
			}
			if (*buf)
				memcpy(nb, *buf, (size_t)*len);
			nnrt_free(*buf);
			*buf = nb;
			*cap = nc;
		}
		int64_t got = 0;
		if (nnrt_gz_read(f, path, *buf + *len, *cap - *len, &got)) {
			gzclose(f);
			return -1;
		}
		*len += got;
		if (*len < *cap)
			break;
	}
	gzclose(f);
	return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The corpus at `path`: a file, or a directory whose regular files (not
 * the fortune program's .dat indexes, not symbolic links) are read in
 * the order of their names, one after another. */
static int read_corpus(const char *path, unsigned char **buf, int64_t *len, int64_t *cap)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		DIR *dir = opendir(path);
		if (!dir) {
			nnrt_error("%s: cannot open: %s", path, strerror(errno));
			return -1;
		}
		char **names = NULL;
		size_t n = 0, capn = 0;
		int rc = 0;
		for (struct dirent *e; (e = readdir(dir));) {
			size_t l = strlen(e->d_name);
			if (e->d_name[0] == '.' || (l > 4 && !strcmp(e->d_name + l - 4, ".dat")))
				continue;
			char *full = nnrt_calloc((int64_t)(strlen(path) + l + 2), 1, "a file name");
			if (!full) {
				rc = -1;
				break;
			}
			sprintf(full, "%s/%s", path, e->d_name);
			struct stat fs;
			if (lstat(full, &fs) != 0 || !S_ISREG(fs.st_mode)) {
				nnrt_free(full);
				continue;
			}
			if (n == capn) {
				char **nn = realloc(names, sizeof(char *) * (capn = capn ? 2 * capn : 64));
				if (!nn) {
					nnrt_free(full);
					rc = -1;
					break;
				}
				names = nn;
			}
			names[n++] = full;
		}
		closedir(dir);
		if (!rc && n == 0) {
			nnrt_error("%s: a directory with no text files", path);
			rc = -1;
		}
		if (!rc)
			qsort(names, n, sizeof *names, by_name);
		for (size_t i = 0; i < n; i++) {
			if (!rc)
				rc = append_file(names[i], buf, len, cap);
			nnrt_free(names[i]);
		}
		free(names);
		return rc;
	}
	return append_file(path, buf, len, cap);
}

/* text(path, context: T, limit: N): window i is bytes [i T, i T + T), its
 * label the bytes one further on */
static int text_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                     int64_t limit, int need_labels)
{
	int64_t T = m->input_size;
	if (limit <= 0)
		limit = spec->count; /* the .nn file's limit: */
	if (seq_shape(m, spec, what, "text", need_labels))
		return -1;
	int64_t cap = 0, len = 0;
	unsigned char *buf = NULL;
	if (read_corpus(spec->path_x, &buf, &len, &cap)) {
		nnrt_free(buf);
		return -1;
	}
	int rc = -1;
	if (len < T + 1) {
		nnrt_error("%s: %lld bytes is shorter than one window of context %lld plus the next byte", spec->path_x,
		           (long long)len, (long long)T);
		goto out;
	}
	for (int64_t i = 0; i < len; i++)
		if (buf[i] >= spec->classes) {
			nnrt_error("%s: byte %lld is %u, outside the model's vocabulary of %lld tokens (ids 0..%lld)",
			           spec->path_x, (long long)i, buf[i], (long long)spec->classes, (long long)spec->classes - 1);
			goto out;
		}
	int64_t n = (len - 1) / T;
	if (limit > 0 && n > limit)
		n = limit;
	d->n = n;
	d->x_f32 = nnrt_calloc(n * T, sizeof(float), "features");
	if (!d->x_f32 || (need_labels && nnrt_data_alloc_labels(d)))
		goto out;
	for (int64_t i = 0; i < n; i++)
		for (int64_t t = 0; t < T; t++) {
			d->x_f32[i * T + t] = buf[i * T + t];
			if (need_labels)
				d->y_real[i * T + t] = buf[i * T + t + 1];
		}
	rc = 0;
out:
	nnrt_free(buf);
	return rc;
}

int nnrt_seq_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what, int64_t limit,
                  int need_labels)
{
	if (spec->kind == NNRT_DATA_REVERSE)
		return reverse_load(d, m, spec, what, need_labels);
	return text_load(d, m, spec, what, limit, need_labels);
}

/* Token ids and per-position labels that another loader (csv, idx) read for
 * a sequence model: each id an integer in [0, V), each label one too or -1. */
int nnrt_seq_check(const nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what)
{
	if (m->loss != NNRT_LOSS_SEQ_XENT || spec->classes < 1 || spec->kind == NNRT_DATA_REVERSE ||
	    spec->kind == NNRT_DATA_TEXT)
		return 0;
	int64_t V = spec->classes;
	for (int64_t i = 0; i < d->n; i++)
		for (int64_t t = 0; t < d->dim; t++) {
			float v = d->x_f32 ? d->x_f32[i * d->dim + t] : (float)d->x_u8[i * d->dim + t] * d->scale + d->shift;
			if (!(v >= 0 && v < (float)V && v == (float)(int64_t)v)) {
				nnrt_error("%s data%s%s: sample %lld, position %lld: token id %g is not in the vocabulary 0..%lld",
				           what, spec->path_x ? " " : "", spec->path_x ? spec->path_x : "", (long long)i + 1,
				           (long long)t, (double)v, (long long)V - 1);
				return -1;
			}
		}
	for (int64_t i = 0; d->has_labels && d->y_real && i < d->n * d->label_size; i++) {
		float v = d->y_real[i];
		if (!(v == -1 || (v >= 0 && v < (float)V && v == (float)(int64_t)v))) {
			nnrt_error("%s data%s%s: sample %lld, position %lld: label %g is not a class 0..%lld (or -1: ignored)",
			           what, spec->path_x ? " " : "", spec->path_x ? spec->path_x : "",
			           (long long)(i / d->label_size) + 1, (long long)(i % d->label_size), (double)v,
			           (long long)V - 1);
			return -1;
		}
	}
	return 0;
}
