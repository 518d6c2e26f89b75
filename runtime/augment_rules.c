/*
 * augment_rules.c - the rules of the image transforms (augment.h): names,
 * options, defaults, ranges and messages.  Self-contained (the C library
 * only), so that nnc's front end, which checks the train block's augment:
 * with them, links this file alone where it does not link the runtime
 * (the fuzzing harness of the front end).
 */
#include "augment.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const nnrt_augment_names[NNRT_AUG_COUNT + 1] = {"crop", "flip", "erase", NULL};
const char nnrt_augment_forms[] = "crop(pad: N), flip, flip(p: P), erase(size: N, p: P)";

const char *const *nnrt_augment_keys(int tr)
{
	static const char *const crop[] = {"pad", NULL}, *const flip[] = {"p", NULL},
	                         *const erase[] = {"size", "p", NULL};
	static const char *const *const keys[NNRT_AUG_COUNT] = {crop, flip, erase};
	return keys[tr];
}

void nnrt_augment_begin(nnrt_augment_spec *a, int tr)
{
	if (tr == NNRT_AUG_FLIP)
		a->flip_p = 0.5f;
	else if (tr == NNRT_AUG_ERASE)
		a->erase_p = 0.5f;
}

int nnrt_augment_set(nnrt_augment_spec *a, int tr, int key, double v, char *why, size_t n)
{
	const char *k = nnrt_augment_keys(tr)[key], *name = nnrt_augment_names[tr];
	if (!strcmp(k, "p")) {
		if (!(v > 0 && v <= 1)) {
			snprintf(why, n, "the probability 'p' of '%s' must be in (0, 1], not %g", name, v);
			return -1;
		}
		*(tr == NNRT_AUG_FLIP ? &a->flip_p : &a->erase_p) = (float)v;
		return 0;
	}
	/* pad or size, in pixels: bounded so that the shifts stay in int32 */
	double hi = tr == NNRT_AUG_CROP ? 1024 : 65536;
	if (!(v == floor(v) && v >= 1 && v <= hi)) {
		snprintf(why, n, "'%s' of '%s' must be a whole number from 1 to %g, not %g", k, name, hi, v);
		return -1;
	}
	*(tr == NNRT_AUG_CROP ? &a->crop_pad : &a->erase_size) = (int32_t)v;
	return 0;
}

int nnrt_augment_end(const nnrt_augment_spec *a, int tr, char *why, size_t n)
{
	if (tr == NNRT_AUG_CROP && !a->crop_pad) {
		snprintf(why, n, "'crop' needs the padding 'pad' (pixels per side), e.g. crop(pad: 4)");
		return -1;
	}
	if (tr == NNRT_AUG_ERASE && !a->erase_size) {
		snprintf(why, n, "'erase' needs the side 'size' of the square (pixels), e.g. erase(size: 8)");
		return -1;
	}
	return 0;
}

int nnrt_augment_fit_shape(const nnrt_augment_spec *a, int rank, const int64_t *dims, char *why, size_t n)
{
	if (!a->crop_pad && !a->erase_size && a->flip_p == 0)
		return 0;
	if (rank != 3) {
		snprintf(why, n, "augmentation needs an image input [channels, rows, columns], but the input is %s",
		         rank == 1 ? "a vector" : "not of rank 3");
		return -1;
	}
	int64_t h = dims[1], w = dims[2], side = h < w ? h : w;
	if (a->crop_pad >= side) {
		snprintf(why, n, "crop's padding of %d pixels is not smaller than the image (%lldx%lld)", (int)a->crop_pad,
		         (long long)h, (long long)w);
		return -1;
	}
	if (a->erase_size > side) {
		snprintf(why, n, "erase's square of %d pixels is larger than the image (%lldx%lld)", (int)a->erase_size,
		         (long long)h, (long long)w);
		return -1;
	}
	return 0;
}
