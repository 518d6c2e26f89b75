/*
 * nnrt_internal.h - declarations shared by the runtime's own files (and its
 * tests), never by generated code: that only sees nnrt.h.
 *
 * One section per .c file, in the order the training program uses them:
 * util.c (errors, aligned memory), rng.c, data.c (with the loaders of
 * loader.h), checkpoint.c, model.c, train.c, api.c.  cpu.c, parallel.c and
 * profile.c serve generated code too, so nnrt.h declares them.
 *
 * Error policy: every failure a user can cause (bad data, bad checkpoint, bad
 * flags, a full disk) is reported once through nnrt_error(), which prints
 * "PROG: error: MESSAGE" to stderr, and the function returns non-zero.  The
 * message names the user's file (and line and column for text files), not the
 * C file: the reader of a runtime error is the person training the model.
 * Library code never calls exit(); only nnrt_main() turns a failure into an
 * exit status.
 */
#ifndef NNRT_INTERNAL_H
#define NNRT_INTERNAL_H

#include "augment.h"
#include "nnrt.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define NNRT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NNRT_PRINTF(f, a)
#endif

/* ---- util.c ---- */

/* Program name used as the prefix of every message ("mlp: error: ..."). */
void nnrt_set_prog(const char *name);
const char *nnrt_prog(void);

/* Prints "PROG: error: MESSAGE\n" to stderr (unless silenced) and keeps the
 * message, without prefix or newline, for nnrt_last_error(). */
void nnrt_error(const char *fmt, ...) NNRT_PRINTF(1, 2);
void nnrt_verror(const char *fmt, va_list ap);
/* The message of the latest nnrt_error() ("" if none): lets tests compare
 * diagnostics exactly.  Thread-local storage, overwritten by the calling
 * thread's next error. */
const char *nnrt_last_error(void);
/* For system failures (a read or write that fails, memory running out):
 * not the user's doing, so, like llm.c's checked I/O, the message also names
 * the runtime source line that saw it: "... [runtime/data.c:119]". */
void nnrt_sys_error_at(const char *file, int line, const char *fmt, ...) NNRT_PRINTF(3, 4);
#define nnrt_sys_error(...) nnrt_sys_error_at(__FILE__, __LINE__, __VA_ARGS__)
/* Tests silence stderr while they provoke errors on purpose. */
void nnrt_set_error_echo(int on);
/* Silences stderr for the calling thread only (the embedding API, while an
 * instance has its own error handler); returns the previous setting. */
int nnrt_mute_errors(int on);
int nnrt_error_echo(void);

/* 64-byte aligned, zeroed array of n floats (n may be 0: a valid, unique
 * pointer is still returned).  NULL, with an error reported, if memory runs
 * out.  The caller owns it and releases it with nnrt_free(). */
float *nnrt_alloc_floats(int64_t n, const char *what);
/* Zeroed heap block of n elements of `size` bytes; NULL + error on failure
 * or overflow.  Released with nnrt_free(). */
void *nnrt_calloc(int64_t n, size_t size, const char *what);
void nnrt_free(void *p);

/* Bytes of physical memory (INT64_MAX if unknown): the bound of what a
 * data file's header may promise. */
int64_t nnrt_memory_bytes(void);

/* Seconds on a monotonic clock, for throughput lines only. */
double nnrt_now(void);

/* "f32[1,28,28]" for the model input, "class(10)" or "f32[3]" for its label.
 * Writes into buf (always NUL-terminated) and returns it. */
char *nnrt_fmt_input(const nnrt_model *m, char *buf, size_t cap);
char *nnrt_fmt_label(const nnrt_model *m, char *buf, size_t cap);

/* ---- rng.c ---- */

/* xoshiro256** seeded through splitmix64.  The whole state is these four
 * words, so a checkpoint that stores them resumes the exact stream.  Normal
 * draws do not cache a spare value for the same reason. */
typedef struct nnrt_rng {
	uint64_t s[4];
} nnrt_rng;

void nnrt_rng_seed(nnrt_rng *r, uint64_t seed);
uint64_t nnrt_rng_next(nnrt_rng *r);
/* Uniform in [0, 1), 24 random bits: every value is exactly a float. */
float nnrt_rng_uniform(nnrt_rng *r);
/* Uniform in [0, 1), 53 random bits. */
double nnrt_rng_uniform_d(nnrt_rng *r);
/* Standard normal, by Box-Muller (one of the pair is dropped). */
double nnrt_rng_normal(nnrt_rng *r);
/* Uniform integer in [0, n), without modulo bias; n must be > 0. */
uint64_t nnrt_rng_below(nnrt_rng *r, uint64_t n);
/* Fisher-Yates shuffle of idx[0..n). */
void nnrt_rng_shuffle(nnrt_rng *r, int64_t *idx, int64_t n);

/* ---- data.c (the loaders behind it: idx.c, csv.c, synth.c; loader.h) ---- */

/* A data set held compactly: IDX images stay bytes (a quarter of the memory
 * of floats) and become floats one batch at a time in nnrt_data_gather();
 * CSV and synthetic sets are floats already scaled.  Exactly one of x_u8 /
 * x_f32 is set; exactly one of y_class / y_real when has_labels. */
typedef struct nnrt_dataset {
	int64_t n;          /* samples */
	int64_t dim;        /* features per sample (= the model's input_size) */
	uint8_t *x_u8;      /* [n][dim] raw bytes; feature = raw * scale + shift */
	float *x_f32;       /* [n][dim] features */
	float scale, shift; /* for x_u8 only */
	int has_labels;
	int32_t label_kind; /* NNRT_LABEL_* of the model */
	int64_t label_size; /* classes, or floats per label */
	int32_t *y_class;   /* [n] */
	float *y_real;      /* [n][label_size] */
} nnrt_dataset;

/* Loads `spec` for model m.  `what` ("train", "test") starts messages about
 * the set as a whole; limit > 0 keeps only the first `limit` samples (for
 * synthetic sets it is ignored: their size is spec->count).  need_labels = 0
 * loads features only (prediction input).  For CSV, has_header < 0 means:
 * guess from the first line (any non-numeric field makes it a header).
 * Returns 0, or non-zero after reporting the error; d is then empty. */
int nnrt_data_load(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *spec,
                   const char *what, int64_t limit, int need_labels);
/* Loads prediction input: an IDX image file (raw or gzip, recognised by its
 * magic) or else a CSV file holding the model's feature columns.  `like` is
 * the training spec, whose scale/shift (and for CSV, columns and header
 * setting) the file shares; it may be of any kind. */
int nnrt_data_load_predict(nnrt_dataset *d, const nnrt_model *m, const nnrt_data_spec *like,
                           const char *path);
void nnrt_data_free(nnrt_dataset *d);

/* Gathers samples idx[0..n) into x: float [n][dim] and, if y != NULL and the
 * set has labels, y: int32 [n] (CLASS) or float [n][label_size] (REAL). */
void nnrt_data_gather(const nnrt_dataset *d, const int64_t *idx, int64_t n, float *x, void *y);

/* ---- Validation split and early stopping (validation.c) ---- */

typedef struct nnrt_train_state nnrt_train_state; /* below, with the checkpoints */

/* Early stopping's state, which checkpoints carry (version 3). */
typedef struct nnrt_early_stop {
	float *best;         /* params then state of the best epoch (owned) */
	int64_t best_epoch;  /* 0: none yet */
	int64_t wait;        /* epochs since best_epoch */
	double best_value;   /* of the watched metric at best_epoch */
} nnrt_early_stop;

/* A run's validation samples and early-stopping state.  All arrays are
 * owned, allocated before the first epoch, released by nnrt_val_free. */
typedef struct nnrt_validation {
	int64_t *train_ids, *val_ids; /* sample indices, ascending; NULL: no split */
	int64_t n_train, n_val;
	nnrt_dataset set;    /* validation: SOURCE, which val_ids index (n = 0: the training set) */
	nnrt_early_stop es;  /* early stopping (es.best NULL: none); nnrt_train_state.es points here */
} nnrt_validation;

/* Splits samples 0..n-1 as m's val_fraction says, from `seed` (no split,
 * v zeroed, without validation), or loads m's validation set (m->val) into
 * v->set.  Non-zero, reported, if none would be left to train on, the set
 * does not load, or on allocation failure. */
int nnrt_val_split(const nnrt_model *m, uint64_t seed, int64_t n, nnrt_validation *v);
/* The set v->val_ids index: its own, or the training set `train`. */
static inline const nnrt_dataset *nnrt_val_data(const nnrt_validation *v, const nnrt_dataset *train)
{
	return v->set.n > 0 ? &v->set : train;
}
/* Allocates the best-parameter copy if m stops early (owned by v, pointed
 * to by st->es_best) and starts st's early stopping; non-zero on failure. */
int nnrt_es_init(const nnrt_model *m, nnrt_validation *v, nnrt_train_state *st);
/* Takes epoch `epoch`'s validation metrics: copies params/state aside if the
 * watched one improved by more than min_delta.  1: patience is exhausted, stop. */
int nnrt_es_update(const nnrt_model *m, nnrt_train_state *st, int64_t epoch, double loss, double acc,
                   const float *params, const float *state);
/* Puts the best epoch's parameters and state back. */
void nnrt_es_restore(const nnrt_model *m, const nnrt_train_state *st, float *params, float *state);
void nnrt_val_free(nnrt_validation *v);

/* ---- Augmentation of training images (augment.c) ---- */

/* Whether m augments its training images (the train block's augment:). */
int nnrt_augments(const nnrt_model *m);
/* The key of epoch `epoch`'s random draws (a hash of the seed and the epoch). */
uint64_t nnrt_augment_key(uint64_t seed, int64_t epoch);
/* Transforms image x ([C, H, W], m's input) of training sample `sample` in
 * place: crop, flip, erase, as m's aug_* say, drawn from (key, sample). */
void nnrt_augment_image(const nnrt_model *m, uint64_t key, int64_t sample, float *x);
/* The same for the n images of x, (n, input_size), samples idx[0..n). */
void nnrt_augment_batch(const nnrt_model *m, uint64_t key, const int64_t *idx, int64_t n, float *x);

/* nnrt_augment_spec and the transforms' rules: augment.h */
/* Parses --augment's LIST ("crop(pad: 2), flip", "[flip, erase(size: 8)]",
 * "none") into *out: 0, or -1 with the reason in why[0..n). */
int nnrt_augment_parse(const char *text, nnrt_augment_spec *out, char *why, size_t n);
/* Whether a fits m's input, as nnc checks the train block's list: 0, or -1
 * with the reason in why[0..n). */
int nnrt_augment_fit(const nnrt_model *m, const nnrt_augment_spec *a, char *why, size_t n);
/* Sets m's aug_* fields to a. */
void nnrt_augment_apply(nnrt_model *m, const nnrt_augment_spec *a);

/* Name of a data kind as written in .nn files ("idx", "moons", ...). */
const char *nnrt_data_kind_name(int32_t kind);
/* Default sample count of a synthetic set whose count is 0 (synth.c). */
int64_t nnrt_data_default_count(const nnrt_data_spec *spec, const nnrt_model *m);

/* ---- checkpoint.c (format: docs/checkpoint.md) ---- */

#define NNRT_CKPT_MAGIC "NNRTCKPT"
#define NNRT_CKPT_VERSION 3u /* 2: the state tensors, 3: early stopping; versions 1 and 2 load too */
/* Bound of the epoch and step counters a checkpoint may hold (2^53: exact
 * as a double, and more steps than any run takes). */
#define NNRT_CKPT_MAX_COUNT ((int64_t)1 << 53)

/* Training state beyond the model's arrays. */
typedef struct nnrt_train_state {
	int64_t epoch; /* epochs completed */
	int64_t step;  /* optimizer steps taken (Adam's t) */
	int64_t batch; /* steps of epoch `epoch + 1` already taken: 0 except
	                  after a run interrupted in the middle of an epoch */
	nnrt_rng rng;  /* the shuffling stream before epoch `epoch + 1`'s shuffle */
	struct nnrt_early_stop *es; /* the trainer's early stopping (checkpoint version 3), or NULL */
} nnrt_train_state;

/* Writes params, opt and state (m->param_floats / m->opt_floats /
 * m->state_floats floats; state may be NULL when m has none) and st to
 * path, atomically: a temporary file in the same directory is written,
 * flushed, fsync'ed and renamed over path, then the directory is fsync'ed.
 * On failure the temporary file is removed and path is left untouched. */
int nnrt_ckpt_save(const char *path, const nnrt_model *m, const float *params, const float *opt,
                   const float *state, const nnrt_train_state *st);
/* Reads a checkpoint written for model m.  params receives the parameters
 * and state (which may be NULL when m has none) the state tensors; a
 * version 1 file has none, and loads for a model without state.  If opt is
 * non-NULL, the optimizer state is loaded as well (and must match
 * m->opt_floats); st, if non-NULL, receives the counters and RNG.  Nothing is
 * written to params/opt/state/st unless the whole file is valid.  Returns 0, or,
 * after reporting, one of: */
enum {
	NNRT_CKPT_INVALID = -1, /* read, but not a valid checkpoint of m */
	NNRT_CKPT_IO = -2,      /* cannot be opened or read (missing, a directory, EIO) */
	NNRT_CKPT_NOMEM = -3,   /* out of memory while reading */
};
int nnrt_ckpt_load(const char *path, const nnrt_model *m, float *params, float *opt, float *state,
                   nnrt_train_state *st);

/* ---- model.c ---- */

/* Checks that m is a model object this runtime can run: its ABI, this CPU
 * (nnrt_cpu_check), its fields and its parameter table.  `training` = 1
 * also requires a train_step (the training binary); the embedding API
 * passes 0, since an object compiled with --inference-only has none.
 * Returns NNRT_OK, NNRT_ERR_ARG (m is NULL), NNRT_ERR_MODEL or NNRT_ERR_CPU,
 * with the reason written into why (n bytes; why may be NULL).  Prints
 * nothing: the caller reports. */
int nnrt_model_check(const nnrt_model *m, int training, char *why, size_t n);

/* Fills params with the initial values of every tensor of m->params, in
 * table order, drawing from r. */
void nnrt_init_params(const nnrt_model *m, float *params, nnrt_rng *r);
/* The state tensors' initial values (m->state_floats floats; padding 0). */
void nnrt_init_state(const nnrt_model *m, float *state);

/* The run-time hyper-parameters of a step (nnrt.h NNRT_HP_*): the rate,
 * the weight decay and the clipping (0: none); with accumulate, the
 * micro-batch's weight in its group, whether it ends the group, and the
 * optimizer's step t (the update's number; 0: the step's own number). */
typedef struct nnrt_hyper {
	float lr, wd, clip_norm, clip_value;
	float acc_weight, acc_apply;
	int64_t t;
	double mom; /* the momentum (beta1) the schedule gives the step (nnrt_schedule_momentum), 0: the model's */
	int fp32;   /* a bf16 model's products in float32 (NNRT_HP_FP32) */
} nnrt_hyper;

/* Sets a->hp for a step of m with the values of h: `step` is the 1-based
 * number of the training step about to run (Adam's t), or 0 for a step that
 * does not train (evaluation, inference).  The one place the hyper-parameters
 * are computed, for the training binary and the embedding API alike. */
void nnrt_step_hp(nnrt_step_args *a, const nnrt_model *m, const nnrt_hyper *h, int64_t step, uint64_t seed);
/* Whether m's update has a momentum a schedule can cycle: Adam's beta1, or
 * sgd's and rmsprop's momentum when it is not 0. */
int nnrt_has_momentum(const nnrt_model *m);
/* The name of optimizer `kind` (NNRT_OPT_*) as .nn files write it, or NULL. */
const char *nnrt_opt_name(int32_t kind);
/* m's optimizer as the .nn file would write it, into buf (n bytes). */
char *nnrt_fmt_optimizer(const nnrt_model *m, char *buf, size_t n);
/* A schedule as the .nn file would write it ("cosine(min: 1e-05), warmup 500 steps"). */
char *nnrt_fmt_schedule(const nnrt_schedule *s, char *buf, size_t n);

/* ---- train.c ---- */

/* The training binary's command line, parsed.  Paths point into argv (or
 * into train_buf/test_buf, which the struct owns). */
typedef struct nnrt_cli {
	int64_t epochs;
	double lr;
	double weight_decay;
	double clip_norm, clip_value;
	const char *schedule; /* --schedule NAME, or NULL */
	const char *precision; /* --precision fp32|bf16, or NULL: as compiled */
	int fp32_products;     /* from --precision: a bf16 model's products in float32 */
	int64_t warmup;       /* --warmup N, or the model's */
	nnrt_schedule sched;  /* the model's schedule with the flags applied */
	uint64_t seed;
	int64_t threads;
	const char *data, *test;
	int64_t limit, test_limit;
	const char *save, *load, *resume, *predict;
	const char *export_onnx; /* --export-onnx FILE (onnx.c) */
	int probabilities;       /* --probabilities: --predict prints every class's probability */
	int64_t checkpoint_every;
	const char *log; /* --log FILE */
	int64_t log_every; /* --log-every N: a row every N steps too (0: none) */
	int64_t verbose;   /* --verbose N: 0 silent (--quiet), 1 bar on a terminal (default), 2 lines only */
	int eval, quiet, print_params, force, help;
	int allreduce; /* --allreduce: data-parallel runs sum gradients with MPI_Allreduce (dist.c) */
	int no_overlap; /* --no-overlap: the gradient exchange waits for the end of the backward pass (dist.c) */
	int reduce_scatter; /* --reduce-scatter: the ordered exchange as sums by slices and an allgather (dist.c) */
	int summary; /* --summary */
	const char *plot;   /* --plot DIR */
	int64_t plot_every; /* --plot-every N: epochs between decision boundaries */
	int64_t generate, top_k; /* --generate N tokens after training or --load, --top-k K (0: all) */
	const char *prompt;      /* --prompt TEXT, or NULL: a newline */
	double temperature;      /* --temperature X (0: 1) */
	const char *augment;     /* --augment LIST, or NULL: the model's */
	nnrt_augment_spec aug;   /* --augment's transforms, parsed */
	nnrt_data_spec train_spec, test_spec; /* the model's, or --data/--test's */
	char *train_buf, *test_buf;
} nnrt_cli;

/* Parses argv (defaults from m) and checks the flags against each other and
 * against the model, touching no file: 0, or the exit status of a bad
 * command line (2) after reporting it.  Never exits.  Release c with
 * nnrt_cli_free() either way. */
int nnrt_cli_parse(nnrt_cli *c, const nnrt_model *m, int argc, char **argv);
void nnrt_cli_free(nnrt_cli *c);
/* --generate: prints the prompt and c->generate sampled bytes (generate.c):
 * 0, or the exit status after reporting. */
int nnrt_generate_text(nnrt_instance *inst, const nnrt_cli *c);

/* ---- onnx.c ---- */

/* --export-onnx: writes the program's own graph (nnrt_main_onnx) with these
 * values to path; returns an NNRT_EXIT_* status, having reported. */
int nnrt_onnx_export_main(const float *params, const float *state, const char *path);

/* ---- api.c ---- */

/* An instance's header (nnrt.h says what an instance is).  Visible to the
 * runtime's own files so that the training binary keeps its model state in
 * an instance too, instead of in arrays of its own. */
struct nnrt_instance {
	const nnrt_model *m;
	float *params, *grads, *opt, *ws; /* grads, opt: NULL without training */
	float *state;                     /* m->state_floats: non-trainable state */
	uint64_t seed;                    /* of the parameters and the steps' random stream */
	nnrt_train_state st;              /* step count and RNG, as checkpoints store them */
	double metrics[4];
	float lr;
	float wd;                         /* weight decay (nnrt_instance_set_weight_decay) */
	float clip_norm, clip_value;      /* gradient clipping (the model's, or the flags') */
	float rate;                       /* nnrt_instance_set_rate's override of the schedule, 0: none */
	int threads;                      /* 0 = the process default */
	int trains;                       /* the model has a train_step */
	int heap;                         /* the block came from nnrt_instance_new */
	int fp32_products;                /* a bf16 model's products run in float32 (--precision fp32) */
	nnrt_error_fn on_error;           /* nnrt_instance_set_error_handler, or NULL */
	void *on_error_ctx;
	int64_t run_samples, run_epochs;  /* nnrt_instance_set_run: the caller's epochs, 0: none */
	struct nnrt_dist *dist;           /* a data-parallel run (dist.h, nnrt_mpi.h), or NULL */
	char msg[280];                    /* latest failure, for nnrt_instance_error (what the 512-byte header leaves) */
};

/* The hyper-parameters of inst's next step, at rate lr. */
static inline nnrt_hyper nnrt_instance_hyper(const nnrt_instance *inst, float lr)
{
	nnrt_hyper h = {lr, inst->wd, inst->clip_norm, inst->clip_value, 1, 1, 0, 0, inst->fp32_products};
	return h;
}

/* nnrt_instance_new, with the parameters initialised from `seed` rather
 * than the model's (a training binary's --seed). */
nnrt_instance *nnrt_instance_new_seeded(const nnrt_model *m, uint64_t seed, int *err);

/* ---- progress.c ---- */

/* The live progress line of an epoch or an evaluation on a terminal (the
 * file's header says when it is drawn and why it costs nothing else).
 * Counts are of this epoch: `first` steps were done before this run began
 * (a resumed epoch), `done` of `total` are done now; samples, loss and
 * correct are sums over the samples this run saw. */
typedef struct nnrt_progress {
	int on, has_acc;
	int bytes; /* counts are bytes of a file being read (data loading) */
	char label[48];
	int64_t first, done, total;
	double samples, loss, correct;
	double t0, next; /* start; earliest time of the next redraw */
	int cols;        /* terminal width */
} nnrt_progress;

/* Whether to draw: --verbose 1 (the default; --quiet is 0), and stdout is a
 * terminal (not TERM=dumb). */
int nnrt_progress_wanted(int verbose);
/* Starts a line; with on = 0 every other call does nothing. */
void nnrt_progress_begin(nnrt_progress *p, int on, int has_acc, const char *label, int64_t done, int64_t total);
/* Redraws now; returns 1 (it wrote to stdout: the caller flushes). */
int nnrt_progress_draw(nnrt_progress *p, double now);
/* Blanks the line (the epoch line replaces it); 1 if it wrote. */
int nnrt_progress_end(nnrt_progress *p);
/* Blanks whatever bar is on the line now, and flushes (before an error). */
void nnrt_progress_clear(void);
/* Data loading's bar (nnrt_gz_read draws it; loader.h): on or off for the
 * files read from now on; nnrt_data_load ends each file's line. */
void nnrt_progress_loading(int on);
int nnrt_progress_loading_on(void);
void nnrt_progress_read_end(void);

/* After each step: one clock read, and a redraw at most a few times a
 * second (and at the last step).  1 if it wrote. */
static inline int nnrt_progress_step(nnrt_progress *p, int64_t done, double samples, double loss, double correct)
{
	if (!p->on)
		return 0;
	p->done = done;
	p->samples = samples;
	p->loss = loss;
	p->correct = correct;
	double now = nnrt_now();
	if (now < p->next && done < p->total)
		return 0;
	return nnrt_progress_draw(p, now);
}

/* ---- metrics_log.c ---- */

/* The --log FILE of a training run (metrics_log.c says what it holds). */
enum { NNRT_LOG_CSV, NNRT_LOG_JSON };
enum { NNRT_LOG_COLUMNS = -2 }; /* nnrt_log_open: the file being appended to has other columns */

typedef struct nnrt_log {
	FILE *f; /* NULL: no log */
	const char *path;
	int format; /* NNRT_LOG_CSV or NNRT_LOG_JSON */
	char old_columns[512]; /* after NNRT_LOG_COLUMNS: the file's columns */
} nnrt_log;

/* One row: an epoch's (batch 0), or, with --log-every, one after step
 * `batch` of epoch `epoch`; has_acc, has_test and has_val say which columns
 * have values (a step row has no test or validation metrics). */
typedef struct nnrt_log_entry {
	int64_t epoch, step, batch;
	double lr, train_loss, train_acc, test_loss, test_acc, val_loss, val_acc, seconds, samples_per_s;
	int has_acc, has_test, has_val;
} nnrt_log_entry;

/* The format path's extension asks for (.csv; .jsonl, .ndjson, .json), or -1. */
int nnrt_log_format(const char *path);
/* Opens path, replacing it or appending to it: 0, -1 with errno set, or
 * NNRT_LOG_COLUMNS when appending to a file with other columns than ours
 * (l->old_columns has them). */
int nnrt_log_open(nnrt_log *l, const char *path, int append);
/* Writes and flushes a row: 0, or -1 with errno set.  No-op without a file. */
int nnrt_log_row(nnrt_log *l, const nnrt_log_entry *r);
int nnrt_log_close(nnrt_log *l);

/* ---- model_summary.c ---- */

/* The training binary's --summary: layers by their tensors, the training
 * step's ops and FLOPs, and the totals, from the descriptor alone. */
void nnrt_print_summary(const nnrt_model *m);

/* ---- plot.c ---- */

#define NNRT_PLOT_GRID 80 /* cells per side of the decision-boundary lattice */
#define NNRT_PLOT_COLS 7  /* an epoch's numbers: epoch, train, test, validation loss and accuracy */

/* The --plot DIR of a training run (plot.c says what it draws). */
typedef struct nnrt_plot {
	int on, has_acc;
	const char *dir;
	double *hist;        /* [cap][NNRT_PLOT_COLS]: epoch, then loss and accuracy of train, test, validation */
	int64_t n, cap;
	int boundary;        /* the model classifies two features: draw its boundary */
	int64_t classes;
	nnrt_dataset grid;   /* the lattice's points (x_f32 owned here), no labels */
	int32_t *cls;        /* [grid.n] predicted class, filled by the caller */
	const nnrt_dataset *train; /* the points drawn on the plane */
	double lo[2], hi[2]; /* the plane's range */
} nnrt_plot;

/* Creates DIR if missing and checks that it can be written; allocates the
 * history of `epochs` epochs and the lattice.  0, or -1 with errno set. */
int nnrt_plot_open(nnrt_plot *p, const char *dir, const nnrt_model *m, int64_t epochs, int has_acc);
/* Fits the lattice to the training data (once it is loaded). */
void nnrt_plot_set_data(nnrt_plot *p, const nnrt_dataset *train);
/* Records an epoch, h = {epoch, train loss, train acc, test loss, test acc,
 * validation loss, validation acc} (has_test, has_val: whether those two
 * pairs are measured), and rewrites loss.svg (and accuracy.svg): 0, or -1
 * with errno. */
int nnrt_plot_epoch(nnrt_plot *p, const double *h, int has_test, int has_val);
/* Writes boundary.svg from p->cls: 0, or -1 with errno. */
int nnrt_plot_boundary(nnrt_plot *p, int64_t epoch);
void nnrt_plot_free(nnrt_plot *p);

/* ---- confusion.c ---- */

/* Counts of (true class, predicted class) over a test set: m[true * k + pred]. */
typedef struct nnrt_confusion {
	int64_t k;
	int64_t *m; /* owned: nnrt_confusion_free */
} nnrt_confusion;

/* Fashion-MNIST's ten class names when `s` is that IDX set, else NULL. */
const char *const *nnrt_class_names(const nnrt_data_spec *s, int64_t classes);
int nnrt_confusion_init(nnrt_confusion *c, int64_t classes); /* 0, or -1 after reporting */
void nnrt_confusion_free(nnrt_confusion *c);
/* Precision, recall, F1 and support (true samples) of class k. */
void nnrt_confusion_scores(const nnrt_confusion *c, int64_t k, double *precision, double *recall, double *f1,
                           int64_t *support);
/* The per-class table, and the matrix for up to 20 classes, to stdout. */
void nnrt_confusion_print(const nnrt_confusion *c, const char *const *names);
/* DIR/confusion.svg of --plot (plot.c): 0, or -1 with errno. */
int nnrt_plot_confusion(nnrt_plot *p, const nnrt_confusion *c, const char *const *names);

/* ---- profile.c: what parallel.c tells it ---- */

/* A profile is on (nnrt_prof_enable): the threads time their chunks. */
int nnrt_prof_on(void);
/* Thread tid of a team of nthreads threads runs a profiled step; it was
 * busy `seconds` in its chunks (not counting barrier waits). */
void nnrt_prof_team(int32_t tid, int32_t nthreads);
void nnrt_prof_busy(int32_t tid, double seconds);

#endif
