/*
 * loader.h - what the data loaders share, and nothing else includes: the
 * loader of each kind of source (idx.c, csv.c, synth.c) and the helpers of
 * data.c they all use.  The rest of the runtime sees only nnrt_data_load()
 * and friends in nnrt_internal.h.
 *
 * Contract of a loader: d arrives with n = 0, dim, the label kind and size
 * and has_labels = need_labels set by nnrt_data_load(); the loader fills the
 * samples, or reports the error (naming the file) and returns non-zero,
 * after which nnrt_data_load() empties d.
 */
#ifndef NNRT_LOADER_H
#define NNRT_LOADER_H

#include "nnrt_internal.h"

#include <zlib.h>

/* ---- The loaders ---- */

/* `what` ("train", "test", "prediction") starts messages about the set as a
 * whole; limit > 0 keeps only the first `limit` samples. */
int nnrt_idx_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                  int64_t limit, int need_labels);
int nnrt_csv_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                  int64_t limit, int need_labels);
/* A synthetic set's size is spec->count (or its default), never a limit. */
int nnrt_synth_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                    int need_labels);

/* reverse and text (seqdata.c): token ids and a class per position */
int nnrt_seq_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what,
                  int64_t limit, int need_labels);

/* The ids of a sequence model's data read by csv or idx: 0, or -1 after
 * reporting the first id outside the vocabulary (spec->classes). */
int nnrt_seq_check(const nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec, const char *what);

/* ---- data.c: shared by the loaders ---- */

/* The spec's scale, 1 where the .nn file left it 0 ("unset"). */
float nnrt_data_scale(const nnrt_data_spec *s);
/* Allocates d's labels for d->n samples: 0, or -1 after reporting. */
int nnrt_data_alloc_labels(nnrt_dataset *d);
/* Stores label value v (already checked) of sample i: a class index, a
 * real value, or a class index one-hot encoded into a vector label. */
void nnrt_data_set_label(nnrt_dataset *d, int64_t i, double v);
/* NULL if the real target v suits m's loss, else the name of the
 * cross-entropy loss that needs targets in [0, 1]. */
const char *nnrt_data_bad_target(const nnrt_model *m, double v);

/* Opens a file for reading, raw or gzip alike; NULL after reporting. */
gzFile nnrt_gz_open(const char *path);
/* Reads up to n bytes; *got = bytes read (short at end of file).  Returns
 * non-zero, reported, on a read or decompression error. */
int nnrt_gz_read(gzFile f, const char *path, void *buf, int64_t n, int64_t *got);
/* After each chunk nnrt_gz_read reads: draws the loading bar of path
 * (progress.c), when nnrt_progress_loading(1) has switched it on. */
void nnrt_progress_read(gzFile f, const char *path);

#endif
