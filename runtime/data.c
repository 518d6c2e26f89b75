/*
 * data.c - the data sets of a run: loads training, test and prediction data
 * into nnrt_dataset through the loader of its kind, and gathers shuffled
 * batches out of it.
 *
 * Three families of source, each in its own file, all checked against the
 * model before a single step runs, because a shape or label mistake found
 * after an hour of training is an hour lost:
 *   idx.c    IDX (MNIST-style) images and labels, raw or gzip.
 *   csv.c    numeric columns of a CSV file, picked by name or index.
 *   synth.c  synthetic sets (xor, moons, circles, spiral, parity, majority).
 * This file holds what they share (loader.h): the reading of files that may
 * be gzip'ed (zlib's gzread reads both transparently), the labels, and the
 * dispatch on the spec's kind, including the sniffing of a --predict file.
 * Every error names the file, and for CSV the line and column, and returns
 * non-zero with the data set left empty.
 */
#include "loader.h"

#include <errno.h>
#include <string.h>

/* A .nn file that says nothing about scaling gives scale 0 if the compiler
 * leaves the field zero; a zero scale would erase every feature, so it can
 * only mean "unset". */
float nnrt_data_scale(const nnrt_data_spec *s)
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
	case NNRT_DATA_REVERSE: return "reverse";
	case NNRT_DATA_TEXT: return "text";
	}
	return "unknown";
}

/* Stores label value v (already checked) of sample i. */
void nnrt_data_set_label(nnrt_dataset *d, int64_t i, double v)
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
const char *nnrt_data_bad_target(const nnrt_model *m, double v)
{
	if (m->label_kind != NNRT_LABEL_REAL || (v >= 0 && v <= 1))
		return NULL;
	if (m->loss == NNRT_LOSS_BCE)
		return "binary_cross_entropy";
	if (m->loss == NNRT_LOSS_SOFTMAX_XENT)
		return "softmax_cross_entropy";
	return NULL;
}

int nnrt_data_alloc_labels(nnrt_dataset *d)
{
	if (d->label_kind == NNRT_LABEL_CLASS)
		d->y_class = nnrt_calloc(d->n, sizeof(int32_t), "labels");
	else
		d->y_real = nnrt_calloc(d->n * d->label_size, sizeof(float), "labels");
	return d->y_class || d->y_real ? 0 : -1;
}

/* ---- Files, raw or gzip ---- */

gzFile nnrt_gz_open(const char *path)
{
	errno = 0;
	gzFile f = gzopen(path, "rb");
	if (!f)
		nnrt_error("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
	return f;
}

/* Reads up to n bytes; *got = bytes read (short at end of file).  Returns
 * non-zero, reported, on a read or decompression error. */
int nnrt_gz_read(gzFile f, const char *path, void *buf, int64_t n, int64_t *got)
{
	unsigned char *p = buf;
	*got = 0;
	while (*got < n) {
		/* gzread takes an unsigned count and returns an int. */
		int64_t want = n - *got;
		/* 1 MiB at a time while a loading bar is drawn (progress.c) */
		unsigned most = nnrt_progress_loading_on() ? 1u << 20 : 1u << 30;
		unsigned chunk = want > most ? most : (unsigned)want;
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
		nnrt_progress_read(f, path);
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
		rc = nnrt_idx_load(d, m, spec, what, limit, need_labels);
		break;
	case NNRT_DATA_CSV:
		rc = nnrt_csv_load(d, m, spec, what, limit, need_labels);
		break;
	case NNRT_DATA_XOR:
	case NNRT_DATA_MOONS:
	case NNRT_DATA_CIRCLES:
	case NNRT_DATA_SPIRAL:
	case NNRT_DATA_PARITY:
	case NNRT_DATA_MAJORITY:
		rc = nnrt_synth_load(d, m, spec, what, need_labels);
		break;
	case NNRT_DATA_REVERSE:
	case NNRT_DATA_TEXT:
		rc = nnrt_seq_load(d, m, spec, what, limit, need_labels);
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
	nnrt_progress_read_end();
	if (!rc)
		rc = nnrt_seq_check(d, m, spec, what);
	if (rc)
		nnrt_data_free(d);
	return rc;
}

int nnrt_data_load_predict(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *like, const char *path)
{
	memset(d, 0, sizeof *d); /* empty on every failure, as nnrt_data_load leaves it */
	/* Sniff the format: IDX starts with two zero bytes and a type byte;
	 * a CSV file never starts with a NUL. */
	gzFile f = nnrt_gz_open(path);
	if (!f)
		return -1;
	unsigned char h[4] = {1, 1, 1, 1};
	int64_t got;
	int rc = nnrt_gz_read(f, path, h, 4, &got);
	gzclose(f);
	if (rc)
		return -1;
	nnrt_data_spec spec;
	memset(&spec, 0, sizeof spec);
	spec.path_x = path;
	spec.scale = 1.0f;
	spec.classes = like->classes; /* a sequence model's vocabulary (nnrt_seq_check) */
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
