/*
 * augment.c - the augmentation of training images (the train block's
 * augment:), applied to a batch as it is gathered.
 *
 * Each image of a training batch, [C, H, W] row-major, is transformed in
 * place after its conversion to floats, in this order whatever the .nn
 * list's order:
 *   crop(pad: P)    zero padding of P pixels on every side, then an H x W
 *                   window at offset (dy, dx), each uniform in 0..2P: the
 *                   image moves by (P - dy, P - dx), zeros come in;
 *   flip(p)         with probability p, columns mirrored (x -> W-1-x);
 *   erase(size, p)  with probability p, a size x size square of zeros
 *                   whose centre (cy, cx) is uniform over the image, cut
 *                   at its borders (cutout: rows cy - size/2 to
 *                   cy - size/2 + size - 1, columns alike), every channel.
 * "Zero" is the value 0 after the data's scale and shift.
 *
 * Determinism: every draw is nnrt_random_uniform(key, sample, k) with
 * key a hash of the seed and the epoch, sample the image's index in the
 * training set and k the draw's number (AUG_*).  A pure function of (seed,
 * epoch, sample): independent of the batch, the thread that gathers it and
 * the thread count, and the same again when a run is resumed.  Nothing is
 * allocated: the shifts are memmoves inside each plane.
 *
 * The training binary's --augment LIST replaces the model's list for a run
 * (nnrt_augment_parse: the .nn list's syntax, brackets optional, or none).
 */
#include "nnrt_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The draws of one image, by number in its random stream. */
enum { AUG_CROP_Y, AUG_CROP_X, AUG_FLIP, AUG_ERASE, AUG_ERASE_Y, AUG_ERASE_X };

int nnrt_augments(const nnrt_model *m)
{
	return m->aug_crop_pad > 0 || m->aug_flip_p > 0 || (m->aug_erase_size > 0 && m->aug_erase_p > 0);
}

uint64_t nnrt_augment_key(uint64_t seed, int64_t epoch)
{
	/* "augment" in ASCII keeps the stream apart from dropout's */
	return nnrt_mix64(nnrt_mix64(seed ^ 0x6175676d656e74ull) + (uint64_t)epoch);
}

/* An integer uniform in 0..n-1 from a draw in [0, 1). */
static int64_t pick(float u, int64_t n)
{
	int64_t v = (int64_t)(u * (float)n);
	return v < n ? v : n - 1;
}

/* Moves the rows of plane p (h x w) by dy: row y takes row y + dy, rows
 * from outside are zeros. */
static void shift_rows(float *p, int64_t h, int64_t w, int64_t dy)
{
	if (dy >= h || -dy >= h) {
		memset(p, 0, (size_t)(h * w) * sizeof *p);
	} else if (dy > 0) {
		memmove(p, p + dy * w, (size_t)((h - dy) * w) * sizeof *p);
		memset(p + (h - dy) * w, 0, (size_t)(dy * w) * sizeof *p);
	} else if (dy < 0) {
		memmove(p - dy * w, p, (size_t)((h + dy) * w) * sizeof *p);
		memset(p, 0, (size_t)(-dy * w) * sizeof *p);
	}
}

void nnrt_augment_image(const nnrt_model *m, uint64_t key, int64_t sample, float *x)
{
	/* x is [C, H, W] */
	int64_t c = m->input_shape[0], h = m->input_shape[1], w = m->input_shape[2];
	if (m->aug_crop_pad > 0) {
		int64_t pad = m->aug_crop_pad;
		int64_t dy = pick(nnrt_random_uniform(key, sample, AUG_CROP_Y), 2 * pad + 1) - pad;
		int64_t dx = pick(nnrt_random_uniform(key, sample, AUG_CROP_X), 2 * pad + 1) - pad;
		for (int64_t k = 0; k < c; k++) {
			float *p = x + k * h * w;
			shift_rows(p, h, w, dy);
			for (int64_t y = 0; y < h; y++)
				shift_rows(p + y * w, w, 1, dx); /* a row is a plane of w rows of 1 */
		}
	}
	if (m->aug_flip_p > 0 && nnrt_random_uniform(key, sample, AUG_FLIP) < m->aug_flip_p) {
		for (int64_t r = 0; r < c * h; r++) {
			float *row = x + r * w;
			for (int64_t i = 0, j = w - 1; i < j; i++, j--) {
				float t = row[i];
				row[i] = row[j];
				row[j] = t;
			}
		}
	}
	if (m->aug_erase_size > 0 && nnrt_random_uniform(key, sample, AUG_ERASE) < m->aug_erase_p) {
		int64_t s = m->aug_erase_size;
		int64_t y0 = pick(nnrt_random_uniform(key, sample, AUG_ERASE_Y), h) - s / 2;
		int64_t x0 = pick(nnrt_random_uniform(key, sample, AUG_ERASE_X), w) - s / 2;
		int64_t y1 = y0 + s < h ? y0 + s : h, x1 = x0 + s < w ? x0 + s : w;
		y0 = y0 > 0 ? y0 : 0;
		x0 = x0 > 0 ? x0 : 0;
		for (int64_t k = 0; k < c; k++)
			for (int64_t y = y0; y < y1; y++)
				if (x1 > x0)
					memset(x + (k * h + y) * w + x0, 0, (size_t)(x1 - x0) * sizeof *x);
	}
}

void nnrt_augment_batch(const nnrt_model *m, uint64_t key, const int64_t *idx, int64_t n, float *x)
{
	/* x is (n, input_size) */
	for (int64_t i = 0; i < n; i++)
		nnrt_augment_image(m, key, idx[i], x + i * m->input_size);
}

/* ---- --augment LIST: the train block's list on the command line ---- */

typedef struct {
	const char *p;
	char *why;
	size_t n;
} aug_text;

static void skip_blanks(aug_text *t)
{
	while (*t->p == ' ' || *t->p == '\t')
		t->p++;
}

static int aug_fail(aug_text *t, const char *fmt, ...) NNRT_PRINTF(2, 3);
static int aug_fail(aug_text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->why, t->n, fmt, ap);
	va_end(ap);
	return -1;
}

/* A name: letters, digits and '_' after a letter; its length into *len. */
static const char *aug_word(aug_text *t, size_t *len)
{
	skip_blanks(t);
	const char *s = t->p;
	while ((*t->p >= 'a' && *t->p <= 'z') || (*t->p >= 'A' && *t->p <= 'Z') || *t->p == '_' ||
	       (t->p > s && *t->p >= '0' && *t->p <= '9'))
		t->p++;
	*len = (size_t)(t->p - s);
	return s;
}

/* "KEY: NUMBER" of transform `tr`, whose keys are keys[0..): the key's
 * index into *which, the number into *v. */
static int aug_option(aug_text *t, const char *tr, const char *const *keys, int *which, double *v)
{
	size_t len;
	const char *k = aug_word(t, &len);
	*which = -1;
	for (int i = 0; keys[i]; i++)
		if (strlen(keys[i]) == len && !strncmp(keys[i], k, len))
			*which = i;
	if (*which < 0) {
		if (!len)
			return aug_fail(t, "'%s(' must be followed by an option, e.g. %s: 4", tr, keys[0]);
		return aug_fail(t, "'%s' has no option '%.*s' (its option%s: %s%s%s)", tr, (int)len, k, keys[1] ? "s" : "",
		                keys[0], keys[1] ? ", " : "", keys[1] ? keys[1] : "");
	}
	skip_blanks(t);
	if (*t->p != ':')
		return aug_fail(t, "'%s' needs a ':' and a value after it", keys[*which]);
	t->p++;
	skip_blanks(t);
	char *end;
	errno = 0;
	*v = strtod(t->p, &end);
	if (end == t->p || errno || !isfinite(*v))
		return aug_fail(t, "'%s' of '%s' needs a number", keys[*which], tr);
	t->p = end;
	return 0;
}

/* ---- --augment LIST ---- */

int nnrt_augment_parse(const char *text, nnrt_augment_spec *out, char *why, size_t n)
{
	aug_text t = {text, why, n};
	memset(out, 0, sizeof *out);
	skip_blanks(&t);
	if (!strcmp(t.p, "none"))
		return 0;
	int bracket = *t.p == '[';
	t.p += bracket;
	int seen[NNRT_AUG_COUNT] = {0};
	for (;;) {
		size_t len;
		const char *w = aug_word(&t, &len);
		int tr = -1;
		for (int i = 0; i < NNRT_AUG_COUNT; i++)
			if (strlen(nnrt_augment_names[i]) == len && !strncmp(nnrt_augment_names[i], w, len))
				tr = i;
		if (tr < 0) {
			if (!len)
				return aug_fail(&t, "a transform is expected at '%s': %s, or none", *t.p ? t.p : "the end",
				                nnrt_augment_forms);
			return aug_fail(&t, "unknown transform '%.*s' (transforms: %s, or none)", (int)len, w,
			                nnrt_augment_forms);
		}
		const char *name = nnrt_augment_names[tr];
		if (seen[tr]++)
			return aug_fail(&t, "transform '%s' is given twice", name);
		nnrt_augment_begin(out, tr);
		int got[2] = {0, 0};
		skip_blanks(&t);
		if (*t.p == '(') {
			t.p++;
			for (;;) {
				int which = -1;
				double v = 0;
				if (aug_option(&t, name, nnrt_augment_keys(tr), &which, &v))
					return -1;
				if (got[which]++)
					return aug_fail(&t, "'%s' of '%s' is given twice", nnrt_augment_keys(tr)[which], name);
				if (nnrt_augment_set(out, tr, which, v, why, n))
					return -1;
				skip_blanks(&t);
				if (*t.p == ',') {
					t.p++;
					continue;
				}
				if (*t.p != ')')
					return aug_fail(&t, "')' or ',' expected after the options of '%s'", name);
				t.p++;
				break;
			}
		}
		if (nnrt_augment_end(out, tr, why, n))
			return -1;
		skip_blanks(&t);
		if (*t.p == ',') {
			t.p++;
			continue;
		}
		if (bracket) {
			if (*t.p != ']')
				return aug_fail(&t, "']' or ',' expected after '%s'", name);
			t.p++;
			skip_blanks(&t);
		}
		if (*t.p)
			return aug_fail(&t, "unexpected '%s' after '%s'", t.p, name);
		return 0;
	}
}

int nnrt_augment_fit(const nnrt_model *m, const nnrt_augment_spec *a, char *why, size_t n)
{
	return nnrt_augment_fit_shape(a, (int)m->input_rank, m->input_shape, why, n);
}

void nnrt_augment_apply(nnrt_model *m, const nnrt_augment_spec *a)
{
	m->aug_crop_pad = a->crop_pad;
	m->aug_flip_p = a->flip_p;
	m->aug_erase_size = a->erase_size;
	m->aug_erase_p = a->erase_p;
}
