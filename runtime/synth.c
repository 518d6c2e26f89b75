/*
 * synth.c - the synthetic data sets: xor, moons, circles, spiral, parity and
 * majority, for examples and tests that need no file.
 *
 * Each set is made from the spec's own seed (not the run's), so every run,
 * and the test set beside the training set, sees the same samples; classes
 * take turns, so the sets are exactly balanced.
 */
#include "loader.h"

#include <math.h>

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

int nnrt_synth_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
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
		const char *loss = m->label_size == 1 ? nnrt_data_bad_target(m, (double)(nclass - 1)) : NULL;
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
	if (!d->x_f32 || (need_labels && nnrt_data_alloc_labels(d)))
		return -1;
	nnrt_rng r;
	nnrt_rng_seed(&r, (uint64_t)spec->seed);
	float scale = nnrt_data_scale(spec), shift = spec->shift;
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
			nnrt_data_set_label(d, i, c);
	}
	return 0;
}

