/*
 * augment.h - the rules of the image transforms (docs/language.md
 * "Augmentation"), shared by the two places that read a list of them: nnc's
 * train block `augment: [...]` (compiler/sema_train.c) and the training
 * binary's `--augment LIST` (augment.c).  Both take their names, options,
 * defaults, ranges and messages from here, so the two cannot drift apart.
 * The rules are in augment_rules.c; the transforms themselves are applied
 * by augment.c.
 */
#ifndef NNRT_AUGMENT_H
#define NNRT_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

/* A list of transforms: 0 (or a probability of 0) where one is absent. */
typedef struct nnrt_augment_spec {
	int32_t crop_pad, erase_size;
	float flip_p, erase_p;
} nnrt_augment_spec;

/* The transforms, in the order they run whatever a list's order. */
enum { NNRT_AUG_CROP, NNRT_AUG_FLIP, NNRT_AUG_ERASE, NNRT_AUG_COUNT };

/* Their names ("crop", "flip", "erase"), NULL-terminated. */
extern const char *const nnrt_augment_names[NNRT_AUG_COUNT + 1];
/* Every transform with its options, for messages: "crop(pad: N), flip,
 * flip(p: P), erase(size: N, p: P)". */
extern const char nnrt_augment_forms[];

/* The option names of transform tr, NULL-terminated; the first is the one
 * a message's example uses. */
const char *const *nnrt_augment_keys(int tr);
/* Transform tr is in the list: its defaults into *a (probability 0.5,
 * torchvision's, for flip and erase). */
void nnrt_augment_begin(nnrt_augment_spec *a, int tr);
/* Option keys[key] of transform tr is v: into *a, or -1 with the reason in
 * why[0..n) (a probability outside (0, 1], a size that is not a whole
 * number in range). */
int nnrt_augment_set(nnrt_augment_spec *a, int tr, int key, double v, char *why, size_t n);
/* After tr's options: -1 with the reason if one it needs is missing
 * (crop's pad, erase's size). */
int nnrt_augment_end(const nnrt_augment_spec *a, int tr, char *why, size_t n);
/* Whether the transforms of a fit an input of rank `rank` and dims[]: 0, or
 * -1 with the reason (an input that is not an image, a padding or a square
 * too large). */
int nnrt_augment_fit_shape(const nnrt_augment_spec *a, int rank, const int64_t *dims, char *why, size_t n);

#endif
