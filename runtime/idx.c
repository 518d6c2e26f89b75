/*
 * idx.c - the IDX loader: MNIST-style image and label files, raw or gzip
 * (zlib's gzread reads both, so one code path serves).
 *
 * Images stay uint8 in memory, a quarter of the floats' size, and become
 * floats batch by batch in nnrt_data_gather().  A header is a promise the
 * data may not keep, and a gzip stream or a device can deliver far more than
 * a file's size suggests: buffers grow with the bytes that actually arrive,
 * a promise beyond the machine's memory is refused up front, and a file
 * that ends early or runs on after its data is an error naming the sizes.
 */
#define _POSIX_C_SOURCE 200809L

#include "loader.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct idx_file {
	gzFile f;
	const char *path;
	int ndims;
	int64_t dims[1 + NNRT_MAX_RANK]; /* dims[0]: number of items */
} idx_file;

/* Reads up to n bytes into a new buffer (*out, freed with nnrt_free) that
 * grows with the data that actually arrives: a header that promises more
 * than the file holds costs no more memory than the file.  *got as in
 * nnrt_gz_read. */
static int gz_read_alloc(gzFile f, const char *path, int64_t n, const char *what, uint8_t **out, int64_t *got)
{
	int64_t cap = n < ((int64_t)1 << 24) ? n : ((int64_t)1 << 24);
	uint8_t *buf = nnrt_calloc(cap, 1, what);
	*out = NULL;
	*got = 0;
	while (buf) {
		int64_t g;
		if (nnrt_gz_read(f, path, buf + *got, cap - *got, &g)) {
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
	if (nnrt_gz_read(f, path, &c, 1, &got))
		return -1;
	return got > 0;
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
	x->f = nnrt_gz_open(path);
	if (!x->f)
		return -1;
	const char *kind = labels ? "label" : "image";
	unsigned expect = labels ? 0x801u : 0x803u;
	unsigned char h[4];
	int64_t got;
	if (nnrt_gz_read(x->f, path, h, 4, &got))
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
	if (nnrt_gz_read(x->f, path, dims, 4 * x->ndims, &got))
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
int nnrt_idx_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
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
	d->scale = nnrt_data_scale(spec);
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
		if (nnrt_data_alloc_labels(d)) {
			nnrt_free(raw);
			goto out;
		}
		/* A real-valued label of size 1 takes the byte as its value; any
		 * other label treats it as a class index. */
		int is_index = !(d->label_kind == NNRT_LABEL_REAL && d->label_size == 1);
		for (int64_t i = 0; i < n; i++) {
			const char *loss = is_index ? NULL : nnrt_data_bad_target(m, raw[i]);
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
			nnrt_data_set_label(d, i, raw[i]);
		}
		nnrt_free(raw);
	}
	rc = 0;
out:
	idx_close(&im);
	idx_close(&lb);
	return rc;
}

