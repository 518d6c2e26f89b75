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
#include "loader.h"

#include <string.h>

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
	gzFile f = nnrt_gz_open(spec->path_x);
	if (!f)
		return -1;
	int64_t cap = 1 << 20, len = 0, got = 0;
	unsigned char *buf = NULL;
	for (;;) {
		unsigned char *nb = nnrt_calloc(cap, 1, "the text");
		if (!nb) {
			nnrt_free(buf);
			gzclose(f);
			return -1;
		}
		if (buf)
			memcpy(nb, buf, (size_t)len);
		nnrt_free(buf);
		buf = nb;
		if (nnrt_gz_read(f, spec->path_x, buf + len, cap - len, &got)) {
			nnrt_free(buf);
			gzclose(f);
			return -1;
		}
		len += got;
		if (len < cap)
			break;
		cap *= 2;
	}
	gzclose(f);
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
