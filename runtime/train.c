/*
 * train.c - nnrt_main(), the main() of every training binary nnc builds.
 *
 * The program, in order:
 *   check the model object (model.c) -> parse flags (nnrt_cli_parse: no file touched)
 *   -> check the --save path (before any work it could waste)
 *   -> load data
 *   -> create the instance that holds the model's state (api.c), its
 *      parameters initialised from the seed, and the batch arrays
 *   -> load a checkpoint into it (--load/--resume)
 *   -> train epochs (shuffle, train_step per batch, eval_step over the test
 *      set, one line per epoch, periodic checkpoints; a signal stops it
 *      between two steps and saves)
 *   -> print small models' parameters        -> save -> check stdout was written.
 * --eval and --predict replace the training part.
 *
 * Determinism: parameter init and shuffles draw from one RNG seeded by the
 * seed; data sets have their own seeds; the generated bodies split work by
 * thread id.  So the same seed and thread count give the same output bit for
 * bit, and a run resumed from a checkpoint continues exactly as the
 * uninterrupted run would (each epoch's order depends only on the RNG state,
 * which the checkpoint stores).
 *
 * Memory: every array is allocated before the first epoch; the epoch loop
 * allocates nothing.
 */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"
#include "dist.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Standard output ---- */

/* The reason of the first failed flush of stdout.  stdio keeps only an
 * error flag, and a failed flush drops the buffer, so the next flush
 * "succeeds": the reason must be taken at the flush that failed. */
static int stdout_errno;

static void flush_stdout(void)
{
	errno = 0;
	if (fflush(stdout) != 0 && !stdout_errno)
		stdout_errno = errno ? errno : EIO;
}

/* After a printf: a flush inside it that failed left its errno. */
static int stdout_failed(void)
{
	if (ferror(stdout) && !stdout_errno)
		stdout_errno = errno ? errno : EIO;
	return stdout_errno != 0;
}

/* ---- Flags ---- */

typedef nnrt_cli opts;

enum {
	FLAG_BOOL,    /* no value */
	FLAG_COUNT,   /* integer >= 0 */
	FLAG_POSINT,  /* integer >= 1 */
	FLAG_THREADS, /* integer in 1..NNRT_MAX_THREADS */
	FLAG_SEED,    /* integer in 0..2^64-1 */
	FLAG_LR,      /* real > 0 that a float holds as neither 0 nor inf */
	FLAG_REAL0,   /* real >= 0 that a float holds as a finite number */
	FLAG_PATH,    /* non-empty string */
	FLAG_WORD,    /* non-empty string: a name */
};

/* Every flag once: parsing and --help both read this table. */
static const struct flag {
	const char *name;
	const char *arg;
	int type;
	size_t off;
	const char *help;
} flags[] = {
	{"--epochs", "N", FLAG_COUNT, offsetof(opts, epochs), "train for N epochs (default: the model's)"},
	{"--lr", "X", FLAG_LR, offsetof(opts, lr), "learning rate (default: the model's)"},
	{"--weight-decay", "X", FLAG_REAL0, offsetof(opts, weight_decay),
	 "weight decay, 0 for none (default: the model's; which tensors decay is compiled in)"},
	{"--clip-norm", "X", FLAG_REAL0, offsetof(opts, clip_norm),
	 "clip the gradient's global norm to X, 0 for no clipping (default: the model's; needs clip_norm: in the .nn)"},
	{"--clip-value", "X", FLAG_REAL0, offsetof(opts, clip_value),
	 "clip each gradient value to [-X, X], 0 for no clipping (default: the model's)"},
	{"--schedule", "NAME", FLAG_WORD, offsetof(opts, schedule),
	 "learning-rate schedule: constant, cosine, polynomial, onecycle over the whole run, or the model's own "
	 "(default: the model's)"},
	{"--warmup", "N", FLAG_COUNT, offsetof(opts, warmup),
	 "steps of linear learning-rate warmup, 0 for none (default: the model's)"},
	{"--augment", "LIST", FLAG_PATH, offsetof(opts, augment),
	 "transforms of the training images instead of the model's, as in the .nn: e.g. 'crop(pad: 2), flip', "
	 "'erase(size: 8, p: 0.5)', or none (docs/language.md#augmentation)"},
	{"--seed", "N", FLAG_SEED, offsetof(opts, seed), "seed of parameter init and shuffling (default: the model's)"},
	{"--precision", "P", FLAG_WORD, offsetof(opts, precision),
	 "the arithmetic of dense products and convolutions: bf16 (bfloat16 operands, float32 sums) or fp32; a model "
	 "compiled with "
	 "nnc --precision bf16 runs either, one compiled in float32 only fp32 (default: as compiled)"},
	{"--threads", "N", FLAG_THREADS, offsetof(opts, threads),
	 "worker threads (default: OMP_NUM_THREADS, or one per core)"},
	{"--data", "PATH[,LABELS]", FLAG_PATH, offsetof(opts, data),
	 "train on PATH instead: IMAGES,LABELS for IDX files, else a CSV file"},
	{"--test", "PATH[,LABELS]", FLAG_PATH, offsetof(opts, test), "evaluate on PATH instead (same forms as --data)"},
	{"--limit", "N", FLAG_POSINT, offsetof(opts, limit), "use only the first N training samples"},
	{"--test-limit", "N", FLAG_POSINT, offsetof(opts, test_limit), "use only the first N test samples"},
	{"--save", "FILE", FLAG_PATH, offsetof(opts, save),
	 "save a checkpoint to FILE after training, or when interrupted (atomically)"},
	{"--checkpoint-every", "N", FLAG_POSINT, offsetof(opts, checkpoint_every),
	 "also save to the --save FILE every N epochs"},
	{"--force", NULL, FLAG_BOOL, offsetof(opts, force), "let --save replace a file that is not a checkpoint"},
	{"--load", "FILE", FLAG_PATH, offsetof(opts, load), "start from the parameters in checkpoint FILE"},
	{"--resume", "FILE", FLAG_PATH, offsetof(opts, resume),
	 "continue training from checkpoint FILE (parameters, optimizer state, epoch, RNG)"},
	{"--eval", NULL, FLAG_BOOL, offsetof(opts, eval),
	 "print test loss and accuracy instead of training; needs --load or --resume"},
	{"--predict", "FILE", FLAG_PATH, offsetof(opts, predict),
	 "print a prediction per sample of FILE (IDX images or CSV); needs --load or --resume"},
	{"--probabilities", NULL, FLAG_BOOL, offsetof(opts, probabilities),
	 "with --predict: a classifier's line holds every class's probability, to 9 digits"},
	{"--export-onnx", "FILE", FLAG_PATH, offsetof(opts, export_onnx),
	 "write the model with the --load/--resume checkpoint's values as ONNX to FILE, and exit (docs/onnx.md)"},
	{"--print-params", NULL, FLAG_BOOL, offsetof(opts, print_params), "print every parameter tensor (and state tensor)"},
	{"--quiet", NULL, FLAG_BOOL, offsetof(opts, quiet), "print no progress lines (--verbose 0)"},
	{"--verbose", "N", FLAG_COUNT, offsetof(opts, verbose),
	 "0: print nothing but errors and what was asked for; 1: a live progress bar on a terminal and a line per "
	 "epoch (default); 2: a line per epoch, no bar"},
	{"--log", "FILE", FLAG_PATH, offsetof(opts, log),
	 "write a row of metrics per epoch to FILE (.csv, or .jsonl/.json for JSON lines); --resume appends"},
	{"--log-every", "N", FLAG_POSINT, offsetof(opts, log_every),
	 "also write a --log row every N training steps (its test and validation columns empty)"},
	{"--plot", "DIR", FLAG_PATH, offsetof(opts, plot),
	 "write SVG loss/accuracy curves every epoch (and a 2-feature model's decision boundary) into DIR"},
	{"--plot-every", "N", FLAG_POSINT, offsetof(opts, plot_every),
	 "redraw the decision boundary every N epochs (default 1; always after the last)"},
	{"--allreduce", NULL, FLAG_BOOL, offsetof(opts, allreduce),
	 "under mpirun: sum the ranks' gradients with MPI_Allreduce (faster for many ranks, not bit-identical "
	 "to one process; docs/distributed.md)"},
	{"--reduce-scatter", NULL, FLAG_BOOL, offsetof(opts, reduce_scatter),
	 "under mpirun: the ordered exchange as a reduce-scatter (each rank sums a slice of the gradients in chunk "
	 "order) and an allgather: a ring's bytes, still bit-identical to one process (docs/distributed.md)"},
	{"--no-overlap", NULL, FLAG_BOOL, offsetof(opts, no_overlap),
	 "under mpirun: exchange the gradients after the backward pass instead of during it (the same results; "
	 "for measurements, docs/distributed.md)"},
	{"--generate", "N", FLAG_POSINT, offsetof(opts, generate),
	 "sample N bytes of text from a next-token model after training, or from --load's parameters (no training)"},
	{"--prompt", "TEXT", FLAG_PATH, offsetof(opts, prompt), "the text --generate continues (default: a newline)"},
	{"--temperature", "X", FLAG_LR, offsetof(opts, temperature), "--generate's temperature (default 1)"},
	{"--top-k", "K", FLAG_COUNT, offsetof(opts, top_k), "--generate draws among the K likeliest (default 0: all)"},
	{"--summary", NULL, FLAG_BOOL, offsetof(opts, summary),
	 "print the model's layers, tensors, ops and totals, and exit"},
	{"--help", NULL, FLAG_BOOL, offsetof(opts, help), "print this help and exit"},
};
#define N_FLAGS (int)(sizeof flags / sizeof flags[0])

static int usage_error(const char *fmt, ...) NNRT_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	nnrt_verror(fmt, ap);
	va_end(ap);
	if (nnrt_error_echo())
		fprintf(stderr, "Try '%s --help' for the list of flags.\n", nnrt_prog());
	return NNRT_EXIT_USAGE;
}

/* Whole decimal number, optionally signed; nothing else in the string. */
static int parse_int(const char *s, int64_t *v)
{
	if (!*s)
		return -1;
	char *end;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (*end || errno)
		return -1;
	*v = x;
	return 0;
}

static int set_flag(opts *o, const struct flag *f, const char *val)
{
	void *dst = (char *)o + f->off;
	int64_t i;
	switch (f->type) {
	case FLAG_COUNT:
		if (parse_int(val, &i) || i < 0)
			return usage_error("%s expects a whole number >= 0, got '%s'", f->name, val);
		*(int64_t *)dst = i;
		return 0;
	case FLAG_POSINT:
		if (parse_int(val, &i) || i < 1)
			return usage_error("%s expects a whole number >= 1, got '%s'", f->name, val);
		*(int64_t *)dst = i;
		return 0;
	case FLAG_THREADS:
		if (parse_int(val, &i) || i < 1 || i > NNRT_MAX_THREADS)
			return usage_error("%s expects a number of threads from 1 to %d, got '%s'", f->name,
			                   NNRT_MAX_THREADS, val);
		*(int64_t *)dst = i;
		return 0;
	case FLAG_SEED: {
		char *end;
		errno = 0;
		unsigned long long u = strtoull(val, &end, 10);
		if (!*val || *end || errno || val[0] == '-' || val[0] == '+' || val[0] == ' ')
			return usage_error("%s expects a whole number >= 0, got '%s'", f->name, val);
		*(uint64_t *)dst = u;
		return 0;
	}
	case FLAG_LR: {
		/* The generated code reads the rate as a float: the .nn file's
		 * rule (nnc's semantic check) refuses what a float makes 0 or inf,
		 * and so does the flag.  errno is not consulted: ERANGE on
		 * underflow is the float test's to report, more precisely. */
		char *end;
		double x = strtod(val, &end);
		if (!*val || *end || isnan(x) || x <= 0)
			return usage_error("%s expects a positive number, got '%s'", f->name, val);
		if (x > FLT_MAX)
			return usage_error("%s %s is too large: beyond the range of a 32-bit float (about 3.4e38)", f->name,
			                   val);
		if ((float)x == 0)
			return usage_error("%s %s is too small: it is 0 as a 32-bit float", f->name, val);
		*(double *)dst = x;
		return 0;
	}
	case FLAG_REAL0: {
		char *end;
		double x = strtod(val, &end);
		if (!*val || *end || !(x >= 0))
			return usage_error("%s expects a number >= 0, got '%s'", f->name, val);
		if (x > FLT_MAX)
			return usage_error("%s %s is too large: beyond the range of a 32-bit float (about 3.4e38)", f->name,
			                   val);
		*(double *)dst = x;
		return 0;
	}
	case FLAG_PATH:
		if (!*val)
			return usage_error("%s expects %s, got ''", f->name,
			                   !strcmp(f->arg, "LIST") ? "a list of transforms (or none)"
			                   : !strcmp(f->arg, "TEXT") ? "some text" : "a file name");
		*(const char **)dst = val;
		return 0;
	case FLAG_WORD:
		if (!*val)
			return usage_error("%s expects a name, got ''", f->name);
		*(const char **)dst = val;
		return 0;
	}
	return 0;
}

/* Applies a --data/--test value to a copy of the model's spec.  `ref` tells
 * what kind of data the model expects there; `buf` (owned by the caller)
 * receives a mutable copy of the value. */
static int override_spec(nnrt_data_spec *s, const nnrt_data_spec *ref, const char *flag, const char *value,
                         char **buf)
{
	*buf = malloc(strlen(value) + 1);
	if (!*buf) {
		nnrt_sys_error("out of memory");
		return NNRT_EXIT_FAILURE;
	}
	strcpy(*buf, value);
	char *comma = strchr(*buf, ',');
	if (comma)
		*comma = 0;
	const char *labels = comma ? comma + 1 : NULL;
	if (ref->kind == NNRT_DATA_IDX || (ref->kind != NNRT_DATA_CSV && labels)) {
		if (!labels || !*labels || !**buf)
			return usage_error("%s expects IMAGES,LABELS for IDX data, got '%s'", flag, value);
		*s = *ref;
		if (ref->kind != NNRT_DATA_IDX) {
			s->scale = 1.0f;
			s->shift = 0.0f;
		}
		s->kind = NNRT_DATA_IDX;
		s->path_x = *buf;
		s->path_y = labels;
		s->count = 0;
		return 0;
	}
	if (labels)
		return usage_error("%s expects one CSV file for this model, got '%s'", flag, value);
	*s = *ref;
	if (ref->kind != NNRT_DATA_CSV) {
		/* Not described by the model: guess the header, labels last. */
		memset(s, 0, sizeof *s);
		s->has_header = -1;
		s->scale = 1.0f;
	}
	s->kind = NNRT_DATA_CSV;
	s->path_x = *buf;
	s->count = 0;
	return 0;
}

void nnrt_cli_free(nnrt_cli *c)
{
	free(c->train_buf);
	free(c->test_buf);
	c->train_buf = c->test_buf = NULL;
}

/* The model's schedule, or --schedule's: a schedule whose values follow
 * from the length of the run, or the model's own kind again; --warmup. */
static int choose_schedule(opts *o, const nnrt_model *m)
{
	o->sched = m->schedule;
	o->sched.warmup = o->warmup;
	if (!o->schedule)
		return 0;
	static const struct {
		const char *name;
		int kind;
	} names[] = {
		{"constant", NNRT_SCHED_CONSTANT}, {"step", NNRT_SCHED_STEP},
		{"multistep", NNRT_SCHED_MULTISTEP}, {"exponential", NNRT_SCHED_EXPONENTIAL},
		{"cosine", NNRT_SCHED_COSINE},     {"polynomial", NNRT_SCHED_POLYNOMIAL},
		{"onecycle", NNRT_SCHED_ONECYCLE},
	};
	int kind = -1;
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
		if (!strcmp(o->schedule, names[k].name))
			kind = names[k].kind;
	if (kind < 0)
		return usage_error("unknown schedule '%s' for --schedule (constant, cosine, polynomial, onecycle, or the "
		                   "model's own)", o->schedule);
	if (kind == m->schedule.kind)
		return 0;
	if (kind == NNRT_SCHED_STEP || kind == NNRT_SCHED_MULTISTEP || kind == NNRT_SCHED_EXPONENTIAL)
		return usage_error("--schedule %s needs values that only the .nn file can give (the model's schedule "
		                   "is another); write it in the train block", o->schedule);
	int64_t w = o->sched.warmup;
	memset(&o->sched, 0, sizeof o->sched);
	o->sched.kind = kind;
	o->sched.warmup = w;
	if (kind == NNRT_SCHED_POLYNOMIAL)
		o->sched.b = 1;
	if (kind == NNRT_SCHED_COSINE)
		o->sched.b = 1;
	if (kind == NNRT_SCHED_ONECYCLE)
		o->sched.b = 0.3, o->sched.c = 25, o->sched.d = 1e4, o->sched.mom_base = 0.85, o->sched.mom_max = 0.95;
	return 0;
}

int nnrt_cli_parse(nnrt_cli *o, const nnrt_model *m, int argc, char **argv)
{
	memset(o, 0, sizeof *o);
	o->epochs = m->epochs;
	o->lr = m->lr;
	o->weight_decay = m->weight_decay;
	o->clip_norm = m->clip_norm;
	o->clip_value = m->clip_value;
	o->warmup = m->schedule.warmup;
	o->seed = (uint64_t)m->seed;
	o->verbose = -1; /* not given */
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "--", 2) != 0)
			return usage_error("unexpected argument '%s' (flags start with --)", arg);
		const char *eq = strchr(arg, '=');
		size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
		const struct flag *f = NULL;
		for (int k = 0; k < N_FLAGS; k++)
			if (strlen(flags[k].name) == len && strncmp(flags[k].name, arg, len) == 0)
				f = &flags[k];
		if (!f)
			return usage_error("unknown flag '%.*s'", (int)len, arg);
		if (f->type == FLAG_BOOL) {
			if (eq)
				return usage_error("%s takes no value", f->name);
			*(int *)((char *)o + f->off) = 1;
			continue;
		}
		const char *val = eq ? eq + 1 : NULL;
		if (!val) {
			if (i + 1 >= argc)
				return usage_error("%s needs a value (%s %s)", f->name, f->name, f->arg);
			val = argv[++i];
		}
		int rc = set_flag(o, f, val);
		if (rc)
			return rc;
	}
	if (o->help || o->summary)
		return 0;
	int bad = choose_schedule(o, m);
	if (bad)
		return bad;
	if (o->precision) {
		int bf16 = !strcmp(o->precision, "bf16");
		if (!bf16 && strcmp(o->precision, "fp32"))
			return usage_error("--precision takes fp32 or bf16, not '%s'", o->precision);
		if (bf16 && m->precision != NNRT_PRECISION_BF16)
			return usage_error("--precision bf16: model '%s' was compiled with float32 products; compile it "
			                   "with nnc --precision bf16 (it then runs either)", m->name);
		o->fp32_products = !bf16 && m->precision == NNRT_PRECISION_BF16;
	}
	/* the norm needs its own pass, compiled in only when the model asks */
	if (o->clip_norm > 0 && !(m->opt_flags & NNRT_OPTF_CLIP_NORM))
		return usage_error("--clip-norm needs a model compiled with clip_norm: in its optimizer (the pass that "
		                   "computes the gradient's norm is compiled in only then)");
	if (o->load && o->resume)
		return usage_error("--load and --resume cannot be used together");
	if (o->augment) {
		char why[300];
		if (nnrt_augment_parse(o->augment, &o->aug, why, sizeof why) || nnrt_augment_fit(m, &o->aug, why, sizeof why))
			return usage_error("--augment '%s': %s", o->augment, why);
		if (o->eval || o->predict || o->export_onnx)
			return usage_error("--augment transforms training images: it goes with no --eval, --predict or "
			                   "--export-onnx");
	}
	if (o->export_onnx && ((!o->load && !o->resume) || o->eval || o->predict || o->save))
		return usage_error("--export-onnx needs --load FILE (a trained checkpoint) and goes with no --eval, "
		                   "--predict or --save");
	if (o->checkpoint_every && !o->save)
		return usage_error("--checkpoint-every needs --save FILE");
	if (o->predict && !o->load && !o->resume)
		return usage_error("--predict needs --load FILE (a trained checkpoint)");
	if (o->probabilities && !o->predict)
		return usage_error("--probabilities goes with --predict FILE");
	/* Evaluating the random initial parameters is never what was meant;
	 * whoever wants it saves them first (--epochs 0 --save FILE). */
	if (o->eval && !o->load && !o->resume)
		return usage_error("--eval needs --load FILE (a trained checkpoint); to evaluate the initial "
		                   "parameters, save them with --epochs 0 --save FILE and load that");
	/* Nothing changes without training: a --save would only rewrite the
	 * loaded checkpoint with its optimizer state and epoch lost. */
	if (o->save && (o->eval || o->predict))
		return usage_error("--save cannot be used with %s, which changes nothing to save",
		                   o->eval ? "--eval" : "--predict");
	if (o->force && !o->save)
		return usage_error("--force needs --save FILE");
	if (o->log && (o->eval || o->predict))
		return usage_error("--log cannot be used with %s, which trains no epoch to log", o->eval ? "--eval" : "--predict");
	if (o->verbose > 2)
		return usage_error("--verbose expects 0 (silent), 1 (progress bar) or 2 (a line per epoch), got '%lld'",
		                   (long long)o->verbose);
	if (o->quiet && o->verbose > 0)
		return usage_error("--quiet and --verbose %lld contradict each other", (long long)o->verbose);
	o->verbose = o->verbose < 0 ? !o->quiet : o->verbose;
	o->quiet = o->verbose == 0;
	if (o->log_every && !o->log)
		return usage_error("--log-every needs --log FILE");
	if (o->plot_every && !o->plot)
		return usage_error("--plot-every needs --plot DIR");
	if (o->plot && o->predict)
		return usage_error("--plot cannot be used with --predict");
	if (o->log && nnrt_log_format(o->log) < 0)
		return usage_error("--log %s: the name must end in .csv (CSV) or .jsonl, .ndjson or .json (JSON lines)", o->log);

	/* Which data: the model's, or the flags'. */
	o->train_spec = m->train;
	o->test_spec = m->test;
	if (o->data) {
		int rc = override_spec(&o->train_spec, &m->train, "--data", o->data, &o->train_buf);
		if (rc)
			return rc;
	}
	if (o->test) {
		const nnrt_data_spec *ref = m->test.kind != NNRT_DATA_NONE ? &m->test : &m->train;
		int rc = override_spec(&o->test_spec, ref, "--test", o->test, &o->test_buf);
		if (rc)
			return rc;
	}
	if (o->generate && (m->loss != NNRT_LOSS_SEQ_XENT || m->label_size != m->input_size))
		return usage_error("--generate needs a next-token model (input token(V)[T], label class(V)[T])");
	if ((o->prompt || o->temperature || o->top_k) && !o->generate)
		return usage_error("--prompt, --temperature and --top-k go with --generate N");
	if (!o->eval && !o->predict && !o->export_onnx && !(o->generate && o->load) &&
	    o->train_spec.kind == NNRT_DATA_NONE)
		return usage_error("the model has no training data; pass --data PATH");
	if (o->eval && o->test_spec.kind == NNRT_DATA_NONE)
		return usage_error("--eval needs test data, and the model has none; pass --test PATH");
	return 0;
}

/* ---- Descriptions for --help ---- */

static const char *loss_name(int32_t loss)
{
	switch (loss) {
	case NNRT_LOSS_SOFTMAX_XENT: return "softmax_cross_entropy";
	case NNRT_LOSS_MSE: return "mse";
	case NNRT_LOSS_BCE: return "binary_cross_entropy";
	case NNRT_LOSS_SEQ_XENT: return "softmax_cross_entropy per position";
	}
	return "unknown";
}

static void describe_spec(const nnrt_data_spec *s, char *buf, size_t cap)
{
	const char *kind = nnrt_data_kind_name(s->kind);
	switch (s->kind) {
	case NNRT_DATA_NONE:
		snprintf(buf, cap, "none");
		break;
	case NNRT_DATA_IDX:
		snprintf(buf, cap, "idx(\"%s\", \"%s\", scale: %g, shift: %g)", s->path_x ? s->path_x : "",
		         s->path_y ? s->path_y : "", s->scale != 0 ? s->scale : 1.0, s->shift);
		break;
	case NNRT_DATA_CSV:
		snprintf(buf, cap, "csv(\"%s\", header: %s, x: \"%s\", y: \"%s\")", s->path_x ? s->path_x : "",
		         s->has_header ? "true" : "false", s->cols_x ? s->cols_x : "", s->cols_y ? s->cols_y : "");
		break;
	case NNRT_DATA_PARITY:
	case NNRT_DATA_MAJORITY:
		snprintf(buf, cap, "%s(bits: %lld, count: %lld, noise: %g, seed: %lld)", kind, (long long)s->classes,
		         (long long)s->count, s->noise, (long long)s->seed);
		break;
	case NNRT_DATA_SPIRAL:
		snprintf(buf, cap, "spiral(classes: %lld, count: %lld, noise: %g, seed: %lld)", (long long)s->classes,
		         (long long)s->count, s->noise, (long long)s->seed);
		break;
	default:
		snprintf(buf, cap, "%s(count: %lld, noise: %g, seed: %lld)", kind, (long long)s->count, s->noise,
		         (long long)s->seed);
		break;
	}
}

/* Learnable values (param_floats also counts the 64-byte alignment padding). */
static int64_t param_count(const nnrt_model *m)
{
	int64_t n = 0;
	for (int32_t i = 0; i < m->n_params; i++)
		n += m->params[i].size;
	return n;
}

static void print_help(const nnrt_model *m)
{
	char in[128], lab[128], train[1024], test[1024];
	describe_spec(&m->train, train, sizeof train);
	describe_spec(&m->test, test, sizeof test);
	printf("usage: %s [flags]\n\n", nnrt_prog());
	printf("Trains the model '%s' (compiled by nnc from %s), then evaluates it on its test data.\n\n",
	       m->name ? m->name : "", m->source ? m->source : "?");
	printf("model:\n");
	printf("  input        %s\n", nnrt_fmt_input(m, in, sizeof in));
	printf("  label        %s\n", nnrt_fmt_label(m, lab, sizeof lab));
	printf("  loss         %s\n", loss_name(m->loss));
	char opt[256];
	printf("  optimizer    %s\n", nnrt_fmt_optimizer(m, opt, sizeof opt));
	printf("  schedule     %s\n", nnrt_fmt_schedule(&m->schedule, opt, sizeof opt));
	printf("  parameters   %lld in %d tensors\n", (long long)param_count(m), m->n_params);
	printf("  batch        %lld\n", (long long)m->batch);
	if (m->accumulate > 1)
		printf("  accumulate   %lld micro-batches per update\n", (long long)m->accumulate);
	printf("  epochs       %lld\n", (long long)m->epochs);
	printf("  seed         %lld\n", (long long)m->seed);
	printf("  train data   %s\n", train);
	printf("  test data    %s\n", test);
	printf("\nflags:\n");
	for (int k = 0; k < N_FLAGS; k++) {
		char head[64];
		snprintf(head, sizeof head, "%s%s%s", flags[k].name, flags[k].arg ? " " : "",
		         flags[k].arg ? flags[k].arg : "");
		printf("  %-24s %s\n", head, flags[k].help);
		stdout_failed();
	}
	printf("\nExit status: 0 on success, 1 on a data, checkpoint, training or output failure, 2 on a bad command\n"
	       "line, 128+N when interrupted by signal N (SIGINT, SIGTERM, SIGHUP, SIGPIPE: saved to the --save FILE\n"
	       "first).\n");
}

/* ---- The trainer ---- */

/* The model's state (parameters, gradients, optimizer state, workspace,
 * counters and RNG, learning rate) is an instance of the embedding API
 * (api.c), the one owner of that state; the trainer adds what a run over
 * data sets needs. */
typedef struct trainer {
	const nnrt_model *m;
	nnrt_model augm; /* m with --augment's transforms in its aug_* fields */
	opts o;
	nnrt_instance *inst;
	nnrt_dataset train, test, pred;
	float *x, *y, *out; /* batch buffers; y holds int32 for CLASS labels */
	int64_t *perm;      /* training order, reshuffled each epoch */
	int64_t *order;     /* 0, 1, 2, ...: evaluation and prediction order */
	int64_t *plot_order; /* 0, 1, 2, ... over the --plot lattice */
	nnrt_step_args args; /* the instance's arrays and the batch buffers */
	int has_acc;         /* the loss is a classification loss: print accuracy */
	int64_t saved_epoch; /* epoch of this run's latest checkpoint, or -1 */
	int bar;             /* draw progress lines (progress.c): a terminal, --verbose 1 */
	nnrt_log log;        /* --log FILE (metrics_log.c) */
	nnrt_plot plot;      /* --plot DIR (plot.c) */
	nnrt_validation val; /* validation split and early stopping (validation.c) */
	nnrt_dist *dist;     /* under mpirun: this rank's part of a data-parallel run (dist.c), or NULL */
} trainer;

/* ---- Data-parallel runs (dist.c, docs/distributed.md) ---- */

/* Rank 0 alone prints, logs, plots and saves; every rank gets its share
 * of the cores by default; messages name the rank. */
static void dist_rank_setup(trainer *t)
{
	nnrt_dist *d = t->dist;
	static char prog[128];
	snprintf(prog, sizeof prog, "%s (rank %d)", nnrt_prog(), d->rank);
	nnrt_set_prog(prog);
	d->allreduce = t->o.allreduce;
	d->overlap = !t->o.no_overlap;
	d->rs = t->o.reduce_scatter;
	if (!t->o.threads) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN), local = d->tp->local_size(d->comm);
		t->o.threads = cores > local && local > 0 ? cores / local : 1;
	}
	if (d->rank > 0) { /* quiet stays rank 0's: it decides what is evaluated */
		t->o.print_params = 0;
		t->o.save = t->o.log = t->o.plot = NULL;
		t->o.checkpoint_every = 0;
		if (!freopen("/dev/null", "w", stdout))
			t->o.quiet = 1; /* not reached: /dev/null opens */
	}
}

/* What every rank's run must agree on besides the model object. */
static uint64_t dist_config(const trainer *t)
{
	const opts *o = &t->o;
	double r[6] = {o->lr, o->weight_decay, o->clip_norm, o->clip_value, (double)o->allreduce,
	               (double)o->reduce_scatter};
	int64_t v[6] = {o->epochs, (int64_t)o->seed, t->train.n, t->test.n, t->val.n_train, t->val.n_val};
	uint64_t h = nnrt_hash(NNRT_HASH0, r, sizeof r);
	h = nnrt_hash(h, v, sizeof v);
	const nnrt_model *a = &t->augm; /* --augment */
	float ap[2] = {a->aug_flip_p, a->aug_erase_p};
	int32_t ai[2] = {a->aug_crop_pad, a->aug_erase_size};
	h = nnrt_hash(h, ap, sizeof ap);
	h = nnrt_hash(h, ai, sizeof ai);
	return nnrt_hash(h, &o->sched, sizeof o->sched);
}

static void trainer_free(trainer *t)
{
	nnrt_data_free(&t->train);
	nnrt_data_free(&t->test);
	nnrt_data_free(&t->pred);
	nnrt_instance_free(t->inst);
	nnrt_free(t->x);
	nnrt_free(t->y);
	nnrt_free(t->out);
	nnrt_free(t->perm);
	nnrt_free(t->order);
	nnrt_free(t->plot_order);
	nnrt_val_free(&t->val);
	nnrt_cli_free(&t->o);
	nnrt_log_close(&t->log);
	nnrt_plot_free(&t->plot);
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* Keeps the first `limit` samples (synthetic sets are generated whole). */
static void apply_limit(nnrt_dataset *d, int64_t limit)
{
	if (limit > 0 && d->n > limit)
		d->n = limit;
}

/* The instance, its parameters initialised from --seed, and the batch and
 * order arrays. */
static int alloc_arrays(trainer *t)
{
	const nnrt_model *m = t->m;
	int64_t nmax = max64(max64(t->train.n, t->test.n), max64(t->pred.n, m->batch));
	int err;
	t->inst = nnrt_instance_new_seeded(m, t->o.seed, &err);
	if (!t->inst) {
		nnrt_sys_error("cannot allocate the model's parameters, gradients, optimizer state and workspace "
		               "(%zu bytes): %s", nnrt_instance_memory_size(m), nnrt_strerror(err));
		return -1;
	}
	nnrt_instance *inst = t->inst;
	inst->lr = (float)t->o.lr;
	inst->wd = (float)t->o.weight_decay;
	inst->clip_norm = (float)t->o.clip_norm;
	inst->clip_value = (float)t->o.clip_value;
	inst->fp32_products = t->o.fp32_products;
	t->x = nnrt_alloc_floats(m->batch * m->input_size, "the input batch");
	t->y = nnrt_alloc_floats(m->batch * m->label_size, "the label batch");
	t->out = nnrt_alloc_floats(m->batch * m->output_size, "the output batch");
	t->perm = nnrt_calloc(nmax, sizeof(int64_t), "the sample order");
	t->order = nnrt_calloc(nmax, sizeof(int64_t), "the sample order");
	if (!t->x || !t->y || !t->out || !t->perm || !t->order)
		return -1;
	for (int64_t i = 0; i < nmax; i++)
		t->order[i] = i;
	nnrt_step_args *a = &t->args;
	a->params = inst->params;
	a->grads = inst->grads;
	a->opt = inst->opt;
	a->ws = inst->ws;
	a->state = inst->state;
	a->x = t->x;
	a->y = t->y;
	a->out = t->out;
	a->metrics = inst->metrics;
	nnrt_hyper h = nnrt_instance_hyper(inst, inst->lr);
	nnrt_step_hp(a, m, &h, 0, inst->seed);
	return 0;
}

/* One step with its batch gathered by the team: each thread converts the
 * rows that its share of the step reads first (the generated bodies give
 * thread t the t-th slice of the batch), so the conversion runs in parallel
 * and the rows are in that thread's cache.  `args` comes first: the team
 * runs gather_step() with a pointer to it. */
typedef struct gathered_step {
	nnrt_step_args args;
	nnrt_body_fn body;
	const nnrt_dataset *d;
	const int64_t *idx;
	const nnrt_model *aug; /* augments the images (augment.c) with aug_key, or NULL */
	uint64_t aug_key;
} gathered_step;

static void gather_step(nnrt_step_args *a, int32_t tid, int32_t nthreads)
{
	gathered_step *g = (gathered_step *)a;
	int64_t lo = a->n * tid / nthreads, hi = a->n * (tid + 1) / nthreads;
	int32_t *y = (int32_t *)a->y; /* int32 or float: 4 bytes per value */
	int64_t ylen = g->d->y_class ? 1 : g->d->label_size;
	nnrt_data_gather(g->d, g->idx + lo, hi - lo, (float *)a->x + lo * g->d->dim, y ? y + lo * ylen : NULL);
	if (g->aug)
		nnrt_augment_batch(g->aug, g->aug_key, g->idx + lo, hi - lo, (float *)a->x + lo * g->d->dim);
	nnrt_barrier();
	g->body(a, tid, nthreads);
}

/* body on samples idx[0..n) of d (labels too when t->args.y is set); the
 * images augmented by the draws of epoch aug_epoch, if > 0 and the model
 * augments. */
static void run_gathered_aug(trainer *t, nnrt_body_fn body, const nnrt_dataset *d, const int64_t *idx, int64_t n,
                             int64_t aug_epoch)
{
	gathered_step g = {.args = t->args, .body = body, .d = d, .idx = idx};
	if (aug_epoch > 0 && nnrt_augments(&t->augm)) {
		g.aug = &t->augm;
		g.aug_key = nnrt_augment_key(t->inst->seed, aug_epoch);
	}
	g.args.n = n;
	nnrt_dist_bind(t->dist, &g.args); /* a data-parallel run: this rank's chunks (dist.c) */
	nnrt_run(gather_step, &g.args);
	nnrt_dist_bind(NULL, NULL);
}

static void run_gathered(trainer *t, nnrt_body_fn body, const nnrt_dataset *d, const int64_t *idx, int64_t n)
{
	run_gathered_aug(t, body, d, idx, n, 0);
}

/* Runs `body` on samples idx[0..count) of d in batches; sums the metrics. */
static void run_batches(trainer *t, const char *what, nnrt_body_fn body, const nnrt_dataset *d, const int64_t *idx,
                        int64_t count, double *sum)
{
	int64_t batch = t->m->batch;
	double *m = t->inst->metrics;
	sum[0] = sum[1] = 0;
	nnrt_progress bar;
	nnrt_progress_begin(&bar, t->bar, t->has_acc, what, 0, (count + batch - 1) / batch);
	for (int64_t b = 0, s = 1; b < count; b += batch, s++) {
		int64_t n = count - b < batch ? count - b : batch;
		memset(m, 0, sizeof t->inst->metrics);
		run_gathered(t, body, d, idx + b, n);
		sum[0] += m[0];
		sum[1] += m[1];
		if (nnrt_progress_step(&bar, s, (double)(b + n), sum[0], sum[1]))
			flush_stdout();
	}
	if (nnrt_progress_end(&bar))
		flush_stdout();
}

/* Loss and accuracy, per sample, of samples idx[0..n) of d; `what` labels
 * the bar ("evaluating" the test set, "validating"). */
static void evaluate_on(trainer *t, const char *what, const nnrt_dataset *d, const int64_t *idx, int64_t n, double *loss, double *acc)
{
	double sum[2];
	nnrt_hyper h = nnrt_instance_hyper(t->inst, t->inst->lr);
	nnrt_step_hp(&t->args, t->m, &h, 0, t->inst->seed);
	run_batches(t, what, t->m->eval_step, d, idx, n, sum);
	*loss = sum[0] / (double)n;
	*acc = sum[1] / (double)n;
}

/* Test loss and accuracy, per sample. */
static void evaluate(trainer *t, double *loss, double *acc)
{
	evaluate_on(t, "evaluating", &t->test, t->order, t->test.n, loss, acc);
}

static void print_shape(const nnrt_param_info *p)
{
	printf("[");
	for (int k = 0; k < p->rank; k++)
		printf("%s%lld", k ? "," : "", (long long)p->shape[k]);
	printf("]");
}

/* Every tensor of a table (parameters or state) by name; matrices one row
 * per line. */
static void print_table(const char *title, const nnrt_param_info *rows, int n, const float *params)
{
	printf("%s:\n", title);
	for (int i = 0; i < n; i++) {
		const nnrt_param_info *p = &rows[i];
		printf("  %s ", p->name);
		print_shape(p);
		printf("\n");
		int64_t cols = p->rank >= 2 ? p->shape[p->rank - 1] : p->size;
		if (cols < 1)
			cols = 1;
		for (int64_t r = 0; r * cols < p->size && !stdout_failed(); r++) {
			printf("   ");
			for (int64_t c = 0; c < cols && r * cols + c < p->size; c++)
				printf(" %.6g", params[p->offset + r * cols + c]);
			printf("\n");
		}
	}
}

static void print_params(const nnrt_model *m, const nnrt_instance *inst)
{
	print_table("parameters", m->params, m->n_params, inst->params);
	if (m->n_state > 0)
		print_table("state", m->state, m->n_state, inst->state);
}

static int save(trainer *t, const char *why)
{
	if (nnrt_ckpt_save(t->o.save, t->m, t->inst->params, t->inst->opt, t->inst->state, &t->inst->st))
		return -1;
	t->saved_epoch = t->inst->st.epoch;
	if (!t->o.quiet)
		printf("saved %s to %s (epoch %lld)\n", why, t->o.save, (long long)t->inst->st.epoch);
	return 0;
}

/* What a failed run leaves, said truthfully: whoever reads it decides from
 * it whether there is anything to resume. */
static const char *what_is_kept(const trainer *t, char *buf, size_t cap)
{
	if (t->saved_epoch >= 0)
		snprintf(buf, cap, "the last good checkpoint, of epoch %lld, is kept in %s", (long long)t->saved_epoch,
		         t->o.save);
	else if (t->o.save && access(t->o.save, F_OK) == 0)
		snprintf(buf, cap, "nothing was saved by this run; %s is left as it was", t->o.save);
	else
		snprintf(buf, cap, "nothing was saved");
	return buf;
}

/* The first parameter tensor holding a NaN or an infinity, or NULL.  *bad
 * receives the value. */
static const nnrt_param_info *nonfinite_param(const nnrt_model *m, const float *params, float *bad)
{
	for (int i = 0; i < m->n_params; i++) {
		const nnrt_param_info *p = &m->params[i];
		for (int64_t j = 0; j < p->size; j++)
			if (!isfinite(params[p->offset + j])) {
				*bad = params[p->offset + j];
				return p;
			}
	}
	return NULL;
}

/* Reports a parameter gone NaN or infinite after step `s` of `epoch`, if
 * any: non-zero then. */
static int diverged_params(const trainer *t, int64_t epoch, int64_t s)
{
	float bad;
	const nnrt_param_info *p = nonfinite_param(t->m, t->inst->params, &bad);
	if (!p)
		return 0;
	char kept[8192];
	nnrt_error("training diverged at epoch %lld, step %lld (parameter '%s' is %s); %s", (long long)epoch,
	           (long long)s, p->name, isnan(bad) ? "nan" : "inf", what_is_kept(t, kept, sizeof kept));
	return 1;
}

/* ---- Interruption ---- */

/* SIGINT, SIGTERM and SIGHUP (the terminal went away) while training, and
 * SIGPIPE (whoever read stdout went away: `./model | head`), which would
 * otherwise end hours of training unsaved.  The handler only records the signal,
 * which is all a handler may safely do; the training loop looks at the
 * record between steps, when no thread of the team is inside a body and the
 * parameters, optimizer state and counters agree, and stops there.  Any
 * thread may take the signal (the OpenMP workers too): recording it is all
 * any of them does.  A second signal means "now": its default action,
 * raised again (the process dies by it, leaving at worst a temporary file
 * that the next save removes). */
static volatile sig_atomic_t caught_signal;

static void on_stop_signal(int sig)
{
	/* Two signals sent together can be taken by two threads at once: one
	 * atomic step decides which was first (a test and then a store let
	 * both be first, and the second did not end the run).  A lock-free
	 * atomic is safe in a handler. */
	int none = 0;
	if (__atomic_compare_exchange_n(&caught_signal, &none, sig, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return;
	/* Every later write to the closed pipe raises SIGPIPE again: only
	 * the user's signals count twice. */
	if (sig != SIGPIPE) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
}

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
#define N_STOP_SIGNALS (int)(sizeof stop_signals / sizeof stop_signals[0])

typedef struct stop_handlers {
	struct sigaction old[N_STOP_SIGNALS];
	int installed[N_STOP_SIGNALS];
} stop_handlers;

/* A signal ignored when the program started (`nohup`, `cmd &` in a
 * script) stays ignored, as the shell meant. */
static void catch_stop_signals(stop_handlers *h)
{
	caught_signal = 0;
	for (int i = 0; i < N_STOP_SIGNALS; i++) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_stop_signal;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART; /* no EINTR in the middle of a printf */
		h->installed[i] = 0;
		if (sigaction(stop_signals[i], NULL, &h->old[i]) == 0 && h->old[i].sa_handler != SIG_IGN)
			h->installed[i] = sigaction(stop_signals[i], &sa, NULL) == 0;
	}
}

static void restore_stop_signals(const stop_handlers *h)
{
	for (int i = 0; i < N_STOP_SIGNALS; i++)
		if (h->installed[i])
			sigaction(stop_signals[i], &h->old[i], NULL);
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGINT: return "SIGINT";
	case SIGTERM: return "SIGTERM";
	case SIGHUP: return "SIGHUP";
	case SIGPIPE: return "SIGPIPE (standard output was closed)";
	}
	return "a signal";
}

/* The end of an interrupted run: save what there is, say so, and give the
 * status a shell gives a process that the signal ended (128 + its number). */
static int interrupted(trainer *t)
{
	int sig = caught_signal;
	if (t->dist && t->dist->rank > 0)
		return 128 + sig; /* rank 0 says it, and saves */
	const nnrt_train_state *st = &t->inst->st;
	char where[128];
	if (st->batch)
		snprintf(where, sizeof where, "in epoch %lld after step %lld", (long long)st->epoch + 1,
		         (long long)st->batch);
	else
		snprintf(where, sizeof where, "after epoch %lld", (long long)st->epoch);
	flush_stdout();
	if (!t->o.save) {
		fprintf(stderr, "%s: interrupted by %s %s; nothing is saved (no --save FILE was given)\n", nnrt_prog(),
		        signal_name(sig), where);
		return 128 + sig;
	}
	if (nnrt_ckpt_save(t->o.save, t->m, t->inst->params, t->inst->opt, t->inst->state, &t->inst->st)) {
		char kept[8192];
		nnrt_error("interrupted by %s %s, and the checkpoint could not be saved; %s", signal_name(sig), where,
		           what_is_kept(t, kept, sizeof kept));
		return NNRT_EXIT_FAILURE;
	}
	fprintf(stderr, "%s: interrupted by %s %s; saved checkpoint to %s (--resume %s continues from there)\n",
	        nnrt_prog(), signal_name(sig), where, t->o.save, t->o.save);
	return 128 + sig;
}

enum { TRAIN_DONE, TRAIN_FAILED, TRAIN_INTERRUPTED };

/* --plot: the curves after every epoch, the decision boundary every
 * --plot-every epochs and after the last.  Non-zero if a file cannot be
 * written (reported). */
static int plot_epoch(trainer *t, int64_t epoch, int64_t first, double tl, double ta, double vl, double va,
                      double loss, double correct)
{
	double seen = (double)((t->val.train_ids ? t->val.n_train : t->train.n) - first * t->m->batch);
	double h[NNRT_PLOT_COLS] = {(double)epoch, loss / seen, correct / seen, tl, ta, vl, va};
	int rc = nnrt_plot_epoch(&t->plot, h, t->test.n > 0, t->val.val_ids != NULL);
	int64_t every = t->o.plot_every ? t->o.plot_every : 1;
	if (!rc && t->plot.boundary && (epoch % every == 0 || epoch == t->o.epochs)) {
		/* The lattice through infer, a batch at a time (as --predict). */
		nnrt_plot *p = &t->plot;
		const nnrt_model *m = t->m;
		t->args.y = NULL;
		for (int64_t b = 0; b < p->grid.n; b += m->batch) {
			int64_t n = p->grid.n - b < m->batch ? p->grid.n - b : m->batch;
			run_gathered(t, m->infer, &p->grid, t->plot_order + b, n);
			for (int64_t i = 0; i < n; i++) {
				const float *out = t->out + i * m->output_size;
				int32_t best = 0;
				if (m->loss == NNRT_LOSS_BCE)
					best = out[0] >= 0.5f;
				else
					for (int64_t k = 1; k < m->output_size; k++)
						if (out[k] > out[best])
							best = (int32_t)k;
				p->cls[b + i] = best;
			}
		}
		t->args.y = t->y;
		rc = nnrt_plot_boundary(p, epoch);
	}
	if (!rc)
		return 0;
	char kept[8192];
	nnrt_error("cannot write the plots in --plot %s: %s; %s", t->o.plot, strerror(errno),
	           what_is_kept(t, kept, sizeof kept));
	return -1;
}

/* Writes a --log row; non-zero (reported) if it cannot. */
static int log_row(trainer *t, const nnrt_log_entry *r)
{
	if (nnrt_log_row(&t->log, r) == 0)
		return 0;
	char kept[8192];
	nnrt_error("cannot write to --log %s: %s; %s", t->log.path, strerror(errno), what_is_kept(t, kept, sizeof kept));
	return -1;
}

/* The --log row of an epoch: the numbers its epoch line prints, unrounded.
 * first: steps an interrupted run took before this one resumed the epoch;
 * loss, correct: sums over this run's samples; t0, t1: the epoch's start
 * and the end of its last step; lr: the rate of its last step (the
 * schedule's, or the constant one).  Non-zero if the row cannot be written. */
static int log_epoch(trainer *t, int64_t epoch, int64_t first, double tl, double ta, double vl, double va,
                     double loss, double correct, double t0, double t1, double lr)
{
	if (!t->log.f)
		return 0;
	double seen = (double)((t->val.train_ids ? t->val.n_train : t->train.n) - first * t->m->batch);
	double dt = t1 - t0 > 0 ? t1 - t0 : 1e-9;
	nnrt_log_entry r = {.epoch = epoch, .step = t->inst->st.step, .lr = lr,
	                    .train_loss = loss / seen, .train_acc = correct / seen, .test_loss = tl, .test_acc = ta,
	                    .val_loss = vl, .val_acc = va, .seconds = nnrt_now() - t0, .samples_per_s = seen / dt,
	                    .has_acc = t->has_acc, .has_test = t->test.n > 0, .has_val = t->val.val_ids != NULL};
	return log_row(t, &r);
}

/* The --log-every row after step s of epoch `epoch` (metrics_log.c): the
 * running means over the `seen` samples this run has trained on in the
 * epoch, as the progress bar shows them. */
static int log_step(trainer *t, int64_t epoch, int64_t s, double seen, double loss, double correct, double t0,
                    double lr)
{
	double dt = nnrt_now() - t0;
	nnrt_log_entry r = {.epoch = epoch, .step = t->inst->st.step, .batch = s, .lr = lr, .train_loss = loss / seen,
	                    .train_acc = correct / seen, .seconds = dt, .samples_per_s = seen / (dt > 0 ? dt : 1e-9),
	                    .has_acc = t->has_acc};
	return log_row(t, &r);
}

static int train(trainer *t)
{
	const nnrt_model *m = t->m;
	const opts *o = &t->o;
	nnrt_step_args *a = &t->args;
	nnrt_instance *inst = t->inst;
	nnrt_train_state *st = &inst->st;
	int64_t n = t->val.train_ids ? t->val.n_train : t->train.n;
	int64_t steps = (n + m->batch - 1) / m->batch; /* per epoch */
	int64_t width = 1;
	for (int64_t e = o->epochs; e >= 10; e /= 10)
		width++;
	if (width < 2)
		width = 2;
	if (st->batch >= steps) {
		nnrt_error("checkpoint %s was saved after step %lld of epoch %lld, but an epoch of this data has %lld "
		           "step%s; resume it with the data (and --limit) it was trained on",
		           o->resume, (long long)st->batch, (long long)st->epoch + 1, (long long)steps,
		           steps == 1 ? "" : "s");
		return TRAIN_FAILED;
	}
	/* accumulate: groups of acc micro-batch steps of an epoch make one
	 * update each (the last group may be shorter); the optimizer's step
	 * and the schedule count updates */
	int64_t acc = m->accumulate > 1 ? m->accumulate : 1, updates = (steps + acc - 1) / acc; /* per epoch */
	int64_t total = o->epochs * updates;
	int scheduled = o->sched.kind != NNRT_SCHED_CONSTANT || o->sched.warmup > 0;
	if (o->sched.warmup > 0 && o->sched.warmup >= total && st->epoch < o->epochs) {
		nnrt_error("the warmup of %lld steps is not shorter than the training: %lld epoch%s of %lld step%s "
		           "(shorten warmup: in %s, or pass --warmup N)",
		           (long long)o->sched.warmup, (long long)o->epochs, o->epochs == 1 ? "" : "s", (long long)updates,
		           updates == 1 ? "" : "s", m->source ? m->source : "the .nn file");
		return TRAIN_FAILED;
	}
	if (st->epoch >= o->epochs && !o->quiet)
		printf("the checkpoint is at epoch %lld already; nothing to train for --epochs %lld\n",
		       (long long)st->epoch, (long long)o->epochs);
	int stopped = st->es && st->es->wait >= m->es_patience; /* a checkpoint of a run that stopped early */
	if (stopped && st->epoch < o->epochs && !o->quiet)
		printf("the checkpoint's run stopped early after epoch %lld; nothing to train\n", (long long)st->epoch);
	while (st->epoch < o->epochs && !stopped) {
		int64_t epoch = st->epoch + 1;
		int64_t first = st->batch; /* steps taken by an interrupted run */
		nnrt_rng before = st->rng;
		double t0 = nnrt_now();
		/* From the identity each time: the order then depends on the RNG
		 * state alone, which is what a checkpoint restores. */
		for (int64_t i = 0; i < n; i++)
			t->perm[i] = t->val.train_ids ? t->val.train_ids[i] : i;
		nnrt_rng_shuffle(&st->rng, t->perm, n);
		double loss = 0, correct = 0, rate = inst->lr;
		nnrt_progress bar;
		char label[48];
		snprintf(label, sizeof label, "epoch %*lld/%lld", (int)width, (long long)epoch, (long long)o->epochs);
		nnrt_progress_begin(&bar, t->bar, t->has_acc, label, first, steps);
		for (int64_t b = first * m->batch, s = first + 1; b < n; b += m->batch, s++) {
			int64_t bn = n - b < m->batch ? n - b : m->batch;
			int64_t step = st->step + 1;
			a->n = bn;
			/* a pure function of the step: a resumed run goes on with it */
			int64_t u = step;
			nnrt_hyper h = nnrt_instance_hyper(inst, 0);
			if (acc > 1) {
				int64_t grp = (s - 1) / acc, last = (grp + 1) * acc < steps ? (grp + 1) * acc : steps;
				int64_t end = last * m->batch < n ? last * m->batch : n;
				h.acc_weight = (float)((double)bn / (double)(end - grp * acc * m->batch));
				h.acc_apply = s == last;
				h.t = u = st->epoch * updates + grp + 1;
			}
			rate = scheduled ? nnrt_schedule_lr(&o->sched, inst->lr, u, updates, total) : inst->lr;
			h.lr = (float)rate;
			h.mom = scheduled ? nnrt_schedule_momentum(&o->sched, u, updates, total) : 0;
			nnrt_step_hp(a, m, &h, step, inst->seed);
			memset(inst->metrics, 0, sizeof inst->metrics);
			nnrt_prof_enable(m->profiled, bn);
			run_gathered_aug(t, m->train_step, &t->train, t->perm + b, bn, epoch);
			nnrt_prof_enable(0, 0);
			if (!isfinite(inst->metrics[0])) {
				char kept[8192];
				if (nnrt_progress_end(&bar))
					flush_stdout();
				nnrt_error("training diverged at epoch %lld, step %lld (loss is %s); %s", (long long)epoch,
				           (long long)s, isnan(inst->metrics[0]) ? "nan" : "inf",
				           what_is_kept(t, kept, sizeof kept));
				return TRAIN_FAILED;
			}
			st->step = step;
			if (t->dist) /* every rank stops at the same step */
				caught_signal = nnrt_dist_signal(t->dist, caught_signal);
			loss += inst->metrics[0];
			correct += inst->metrics[1];
			if (nnrt_progress_step(&bar, s, (double)(b + bn - first * m->batch), loss, correct))
				flush_stdout();
			if (o->log_every && step % o->log_every == 0 &&
			    log_step(t, epoch, s, (double)(b + bn - first * m->batch), loss, correct, t0, (double)(float)rate))
				return TRAIN_FAILED;
			if (caught_signal && b + m->batch < n && s <= (int64_t)UINT32_MAX) {
				/* Stopped inside the epoch: the checkpoint records
				 * the steps taken and the RNG state before this
				 * epoch's shuffle, so --resume redraws the same order
				 * and goes on with step s + 1. */
				if (nnrt_progress_end(&bar))
					flush_stdout();
				if (diverged_params(t, epoch, s))
					return TRAIN_FAILED;
				st->batch = s;
				st->rng = before;
				return TRAIN_INTERRUPTED;
			}
		}
		if (nnrt_progress_end(&bar)) /* the epoch line (or a message) replaces it */
			flush_stdout();
		st->batch = 0;
		/* A non-finite gradient makes the next step's loss non-finite,
		 * except after the last step: so the parameters are checked
		 * once an epoch, before anything can save them. */
		if (diverged_params(t, epoch, steps))
			return TRAIN_FAILED;
		double t1 = nnrt_now();
		st->epoch = epoch;
		/* Evaluated before the line is begun: its progress line must
		 * not draw over half an epoch line. */
		double tl = 0, ta = 0;
		if (t->test.n > 0 && (!o->quiet || t->log.f || t->plot.on || t->dist)) /* every rank, or none */
			evaluate(t, &tl, &ta);
		double vl = 0, va = 0;
		int stop = 0;
		if (t->val.val_ids) {
			evaluate_on(t, "validating", nnrt_val_data(&t->val, &t->train), t->val.val_ids, t->val.n_val, &vl, &va);
			stop = st->es && nnrt_es_update(m, st, epoch, vl, va, inst->params, inst->state);
		}
		if (!o->quiet) {
			/* Regression losses get more digits: a good fit's MSE is
			 * small, and 0.0001 alone says little.  An epoch resumed
			 * in its middle averages over the samples this run saw. */
			double seen = (double)(n - first * m->batch);
			printf(t->has_acc ? "epoch %*lld/%lld  loss %.4f" : "epoch %*lld/%lld  loss %.6f", (int)width,
			       (long long)epoch, (long long)o->epochs, loss / seen);
			if (t->has_acc)
				printf("  train_acc %.4f", correct / seen);
			if (t->test.n > 0) {
				printf(t->has_acc ? "  test_loss %.4f" : "  test_loss %.6f", tl);
				if (t->has_acc)
					printf("  test_acc %.4f", ta);
			}
			if (t->val.val_ids) {
				printf(t->has_acc ? "  val_loss %.4f" : "  val_loss %.6f", vl);
				if (t->has_acc)
					printf("  val_acc %.4f", va);
				if (m->loss == NNRT_LOSS_SEQ_XENT) /* a language model's nats, in bits per token */
					printf("  val_bpc %.4f", vl / 0.6931471805599453);
			}
			if (scheduled) /* the rate of the epoch's last step */
				printf("  lr %.4g", (double)(float)rate);
			double dt = t1 - t0 > 0 ? t1 - t0 : 1e-9;
			printf("  %.2e samples/s  %.2f s\n", seen / dt, nnrt_now() - t0);
			flush_stdout();
		}
		if (log_epoch(t, epoch, first, tl, ta, vl, va, loss, correct, t0, t1, (double)(float)rate))
			return TRAIN_FAILED;
		if (t->plot.on && plot_epoch(t, epoch, first, tl, ta, vl, va, loss, correct))
			return TRAIN_FAILED;
		if (o->checkpoint_every && epoch % o->checkpoint_every == 0 && epoch < o->epochs)
			if (save(t, "checkpoint"))
				return TRAIN_FAILED;
		if (stop) {
			if (!o->quiet)
				printf("early stop after epoch %lld: %s has not improved for %lld epoch%s\n", (long long)epoch,
				       m->es_metric == NNRT_ES_VAL_LOSS ? "val_loss" : "val_acc",
				       (long long)st->es->wait, st->es->wait == 1 ? "" : "s");
			break;
		}
		if (caught_signal && epoch < o->epochs)
			return TRAIN_INTERRUPTED;
	}
	if (st->es && st->es->best_epoch > 0) {
		/* Keras' restore_best_weights: the run ends with the best epoch's model */
		nnrt_es_restore(m, st, inst->params, inst->state);
		if (!o->quiet) {
			printf(m->es_metric == NNRT_ES_VAL_LOSS ? "restored the parameters of epoch %lld (val_loss %.4f)\n"
			                                        : "restored the parameters of epoch %lld (val_acc %.4f)\n",
			       (long long)st->es->best_epoch, st->es->best_value);
			flush_stdout();
		}
	}
	return TRAIN_DONE;
}

/* One line per sample: "index class probability" for classifiers (with
 * --probabilities "index class p0 p1 ...", every class's probability to
 * the 9 digits that give a float back exactly, which tests/test_onnx.c
 * compares with onnxruntime's), else "index value...".  Stops at the
 * first failed write (reported by nnrt_main). */
static void predict(trainer *t)
{
	const nnrt_model *m = t->m;
	nnrt_dataset *d = &t->pred;
	for (int64_t b = 0; b < d->n && !stdout_failed(); b += m->batch) {
		int64_t n = d->n - b < m->batch ? d->n - b : m->batch;
		t->args.n = n;
		t->args.y = NULL;
		run_gathered(t, m->infer, d, t->order + b, n);
		for (int64_t i = 0; i < n && !stdout_failed(); i++) {
			const float *out = t->out + i * m->output_size;
			if (m->loss == NNRT_LOSS_SOFTMAX_XENT) {
				int64_t best = 0;
				for (int64_t k = 1; k < m->output_size; k++)
					if (out[k] > out[best])
						best = k;
				printf("%lld %lld", (long long)(b + i), (long long)best);
				if (t->o.probabilities)
					for (int64_t k = 0; k < m->output_size; k++)
						printf(" %.9g", out[k]);
				else
					printf(" %.6f", out[best]);
				printf("\n");
			} else if (m->loss == NNRT_LOSS_BCE && m->output_size == 1) {
				int cls = out[0] >= 0.5f;
				if (t->o.probabilities)
					printf("%lld %d %.9g %.9g\n", (long long)(b + i), cls, 1.0f - out[0], out[0]);
				else
					printf("%lld %d %.6f\n", (long long)(b + i), cls, cls ? out[0] : 1.0f - out[0]);
			} else {
				printf("%lld", (long long)(b + i));
				for (int64_t k = 0; k < m->output_size; k++)
					printf(" %.6g", out[k]);
				printf("\n");
			}
		}
	}
	t->args.y = t->y;
}

/* ---- Paths checked before any work ---- */

/* Whether `path` names the file st describes (a path that cannot be
 * stat'ed does not). */
static int same_file(const struct stat *st, const char *path)
{
	struct stat o;
	return path && stat(path, &o) == 0 && o.st_dev == st->st_dev && o.st_ino == st->st_ino;
}

/* Whether the file at path begins with the checkpoint magic or is empty:
 * the only files --save replaces without --force. */
static int replaceable(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	char b[8];
	size_t n = fread(b, 1, sizeof b, f);
	fclose(f);
	return n == 0 || (n == 8 && memcmp(b, NNRT_CKPT_MAGIC, 8) == 0);
}

/* What `st` is among the files this run reads, or NULL. */
static const char *input_named(const trainer *t, const struct stat *st)
{
	const opts *o = &t->o;
	static char buf[64];
	if (same_file(st, "/proc/self/exe"))
		return "this program itself";
	if (same_file(st, t->m->source))
		return "the model's source file";
	const nnrt_data_spec *specs[4] = {&o->train_spec, &o->test_spec, &t->m->train, &t->m->test};
	for (int i = 0; i < 4; i++) {
		int kind = specs[i]->kind;
		if ((kind == NNRT_DATA_IDX || kind == NNRT_DATA_CSV) &&
		    (same_file(st, specs[i]->path_x) || (kind == NNRT_DATA_IDX && same_file(st, specs[i]->path_y)))) {
			snprintf(buf, sizeof buf, "a %s data file", i % 2 ? "test" : "training");
			return buf;
		}
	}
	if (same_file(st, o->predict))
		return "the --predict input";
	return NULL;
}

/* Refuses, before the data is even loaded, a --save FILE that could not be
 * written at the end (a missing or read-only directory) or must not be
 * replaced: a directory, a device, one of this run's inputs (the program,
 * its source, its data), or an existing file that is not a checkpoint
 * unless --force says so.  Exit status 2: the command line is at fault. */
static int check_save_path(const trainer *t)
{
	const char *path = t->o.save;
	size_t len = strlen(path);
	char *dir = malloc(len + 2);
	if (!dir) {
		nnrt_sys_error("out of memory");
		return NNRT_EXIT_FAILURE;
	}
	const char *slash = strrchr(path, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else
		snprintf(dir, len + 2, "%.*s", (int)(slash - path), path);
	struct stat st;
	int rc = 0;
	if (stat(dir, &st) != 0)
		rc = usage_error("--save %s: cannot use directory %s: %s", path, dir, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		rc = usage_error("--save %s: %s is not a directory", path, dir);
	else if (access(dir, W_OK | X_OK) != 0)
		rc = usage_error("--save %s: cannot write in directory %s: %s", path, dir, strerror(errno));
	free(dir);
	if (rc)
		return rc;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		return usage_error("--save %s: %s", path, strerror(errno));
	}
	if (S_ISDIR(st.st_mode))
		return usage_error("--save %s: is a directory", path);
	if (!S_ISREG(st.st_mode))
		return usage_error("--save %s: not a regular file; a checkpoint can only replace a regular file", path);
	const char *input = input_named(t, &st);
	if (input)
		return usage_error("--save %s is %s; refusing to overwrite it", path, input);
	if (!t->o.force && !replaceable(path))
		return usage_error("--save %s: the file exists and is not an nnc checkpoint; pass --force to replace it",
		                   path);
	return 0;
}

/* A checkpoint to read must not be the program itself: no checkpoint
 * check would explain that as clearly. */
static int check_load_path(const char *flag, const char *path)
{
	struct stat st;
	if (path && stat(path, &st) == 0 && same_file(&st, "/proc/self/exe"))
		return usage_error("%s %s is this program itself, not a checkpoint", flag, path);
	return 0;
}

/* Opens the --log FILE before any work, as --save is checked: a fresh run
 * replaces it, --resume appends.  One of the run's inputs is refused. */
static int open_log(trainer *t)
{
	const char *path = t->o.log;
	struct stat st;
	const char *input = stat(path, &st) == 0 ? input_named(t, &st) : NULL;
	if (input)
		return usage_error("--log %s is %s; refusing to overwrite it", path, input);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return usage_error("--log %s: is a directory", path);
	if (t->o.save && stat(path, &st) == 0 && same_file(&st, t->o.save))
		return usage_error("--log %s is also the --save file", path);
	int rc = nnrt_log_open(&t->log, path, t->o.resume != NULL);
	if (rc == NNRT_LOG_COLUMNS)
		return usage_error("--log %s: its first line has the columns '%.200s', not this binary's; it was written "
		                   "by another version of the program: move it away or give another --log file, "
		                   "so that its rows are not mixed with rows of other columns",
		                   path, t->log.old_columns);
	if (rc)
		return usage_error("--log %s: cannot open for writing: %s", path, strerror(errno));
	return 0;
}

/* --eval of a classifier: every test sample's predicted class (through
 * infer, as --predict) against its label, as per-class scores and a
 * confusion matrix (confusion.c), and DIR/confusion.svg with --plot. */
static int eval_classes(trainer *t)
{
	const nnrt_model *m = t->m;
	int bce = m->loss == NNRT_LOSS_BCE && m->output_size == 1;
	if (m->loss != NNRT_LOSS_SOFTMAX_XENT && !bce)
		return 0;
	nnrt_confusion c;
	if (nnrt_confusion_init(&c, bce ? 2 : m->output_size))
		return NNRT_EXIT_FAILURE;
	const nnrt_dataset *d = &t->test;
	t->args.y = NULL;
	nnrt_progress bar;
	nnrt_progress_begin(&bar, t->bar, 0, "classifying", 0, (d->n + m->batch - 1) / m->batch);
	for (int64_t b = 0; b < d->n; b += m->batch) {
		int64_t n = d->n - b < m->batch ? d->n - b : m->batch;
		run_gathered(t, m->infer, d, t->order + b, n);
		if (nnrt_progress_step(&bar, b / m->batch + 1, 0, 0, 0))
			flush_stdout();
		for (int64_t i = 0; i < n; i++) {
			const float *out = t->out + i * m->output_size;
			int64_t best = 0;
			if (bce)
				best = out[0] >= 0.5f;
			else
				for (int64_t k = 1; k < m->output_size; k++)
					if (out[k] > out[best])
						best = k;
			int64_t truth = d->y_class[b + i];
			if (truth >= 0 && truth < c.k)
				c.m[truth * c.k + best]++;
		}
	}
	t->args.y = t->y;
	if (nnrt_progress_end(&bar))
		flush_stdout();
	const char *const *names = nnrt_class_names(&t->o.test_spec, c.k);
	nnrt_confusion_print(&c, names);
	int rc = 0;
	if (t->plot.on && nnrt_plot_confusion(&t->plot, &c, names)) {
		nnrt_error("cannot write %s/confusion.svg: %s", t->o.plot, strerror(errno));
		rc = NNRT_EXIT_FAILURE;
	}
	nnrt_confusion_free(&c);
	return rc;
}

static int run(trainer *t)
{
	const nnrt_model *m = t->m;
	opts *o = &t->o;
	int training = !o->eval && !o->predict && !o->export_onnx && !(o->generate && o->load);
	const nnrt_train_state *st;
	int rc;

	/* Output first: an unusable --save must not cost a training run. */
	if (o->save && (rc = check_save_path(t)) != 0)
		return rc;
	if ((rc = check_load_path("--load", o->load)) != 0 || (rc = check_load_path("--resume", o->resume)) != 0)
		return rc;
	if (o->plot && (training || o->eval) && nnrt_plot_open(&t->plot, o->plot, m, o->epochs, t->has_acc))
		return usage_error("--plot %s: cannot write pictures there: %s", o->plot, strerror(errno));
	if (o->log && (rc = open_log(t)) != 0)
		return rc;

	/* Data next: its errors are the likeliest, and its sizes size the
	 * order arrays. */
	if (training) {
		int64_t limit = o->limit ? o->limit : o->train_spec.kind <= NNRT_DATA_CSV ? o->train_spec.count : 0;
		if (nnrt_data_load(&t->train, m, &o->train_spec, "train", limit, 1))
			return NNRT_EXIT_FAILURE;
		apply_limit(&t->train, o->limit);
		if (nnrt_val_split(m, o->seed, t->train.n, &t->val))
			return NNRT_EXIT_FAILURE;
	}
	if ((training || o->eval) && o->test_spec.kind != NNRT_DATA_NONE) {
		int64_t limit = o->test_limit ? o->test_limit
		                : o->test_spec.kind <= NNRT_DATA_CSV ? o->test_spec.count : 0;
		if (nnrt_data_load(&t->test, m, &o->test_spec, "test", limit, 1))
			return NNRT_EXIT_FAILURE;
		apply_limit(&t->test, o->test_limit);
	}
	if (o->predict && nnrt_data_load_predict(&t->pred, m, &o->train_spec, o->predict))
		return NNRT_EXIT_FAILURE;

	if (alloc_arrays(t) || (training && nnrt_es_init(m, &t->val, &t->inst->st)))
		return NNRT_EXIT_FAILURE;
	if (t->plot.boundary) {
		t->plot_order = nnrt_calloc(t->plot.grid.n, sizeof(int64_t), "the plot's lattice order");
		if (!t->plot_order)
			return NNRT_EXIT_FAILURE;
		for (int64_t i = 0; i < t->plot.grid.n; i++)
			t->plot_order[i] = i;
		nnrt_plot_set_data(&t->plot, &t->train);
	}

	/* Initialised from the seed, then overwritten from a checkpoint: the
	 * RNG has then drawn the same numbers either way. */
	st = &t->inst->st;
	if (o->load && nnrt_ckpt_load(o->load, m, t->inst->params, NULL, t->inst->state, NULL))
		return NNRT_EXIT_FAILURE;
	if (o->resume && nnrt_ckpt_load(o->resume, m, t->inst->params, t->inst->opt, t->inst->state, &t->inst->st))
		return NNRT_EXIT_FAILURE;
	if (o->export_onnx) /* the checkpoint's values into the ONNX graph, nothing else (rank 0 writes) */
		return t->dist && t->dist->rank > 0 ? 0 : nnrt_onnx_export_main(t->inst->params, t->inst->state, o->export_onnx);
	if (t->dist && nnrt_dist_setup(t->dist, t->inst, dist_config(t), o->load || o->resume))
		return NNRT_EXIT_FAILURE;

	stop_handlers handlers;
	if (training) {
		if (!o->quiet) {
			printf("model %s: %lld parameters, %lld training samples", m->name, (long long)param_count(m),
			       (long long)(t->val.train_ids ? t->val.n_train : t->train.n));
			if (t->val.val_ids)
				printf(", %lld validation samples", (long long)t->val.n_val);
			if (t->test.n)
				printf(", %lld test samples", (long long)t->test.n);
			printf(", batch %lld, %s lr %g, %s%d thread%s\n", (long long)m->batch,
			       nnrt_opt_name(m->optimizer), o->lr,
			       m->precision == NNRT_PRECISION_BF16 && !o->fp32_products ? "bf16 products, " : "",
			       nnrt_get_threads(), nnrt_get_threads() == 1 ? "" : "s");
			if (o->resume && st->batch)
				printf("resuming from %s in epoch %lld after step %lld (step %lld in all)\n", o->resume,
				       (long long)st->epoch + 1, (long long)st->batch, (long long)st->step);
			else if (o->resume)
				printf("resuming from %s at epoch %lld (step %lld)\n", o->resume, (long long)st->epoch,
				       (long long)st->step);
			flush_stdout();
		}
		/* From here on an interruption has something to save. */
		catch_stop_signals(&handlers);
		rc = train(t);
		if (rc != TRAIN_DONE) {
			rc = rc == TRAIN_INTERRUPTED ? interrupted(t) : NNRT_EXIT_FAILURE;
			restore_stop_signals(&handlers);
			return rc;
		}
	}
	if (o->eval) {
		double tl, ta;
		evaluate(t, &tl, &ta);
		printf(t->has_acc ? "test_loss %.4f" : "test_loss %.6f", tl);
		if (t->has_acc)
			printf("  test_acc %.4f", ta);
		printf("  (%lld samples)\n", (long long)t->test.n);
		if (t->test.y_class && (rc = eval_classes(t)) != 0)
			return rc;
	}
	if (o->predict)
		predict(t);
	if (o->generate && (rc = nnrt_generate_text(t->inst, o)) != 0)
		return rc;
	if (o->print_params || (training && !o->quiet && m->param_floats <= 64))
		print_params(m, t->inst);
	if (training && m->profiled)
		nnrt_prof_report(m);
	if (training && m->profiled)
		nnrt_dist_report(t->dist);
	fflush(stdout);
	if (o->save && save(t, "checkpoint"))
		return NNRT_EXIT_FAILURE;
	return NNRT_EXIT_OK;
}

/* The training run, on thread 0 of the persistent team (see parallel.c). */
static int run_team(void *t)
{
	return run(t);
}

/* Every line the binary prints goes to stdout: a write that failed (a full
 * disk, /dev/full) fails the run, as a failed checkpoint write does. */
static int check_stdout(int rc)
{
	stdout_failed();
	flush_stdout();
	if (!stdout_errno && !ferror(stdout))
		return rc;
	nnrt_error("cannot write to standard output: %s", strerror(stdout_errno ? stdout_errno : EIO));
	clearerr(stdout);
	return rc ? rc : NNRT_EXIT_FAILURE;
}

int nnrt_main(const nnrt_model *m, int argc, char **argv)
{
	const char *prog = argc > 0 && argv[0] ? argv[0] : NULL;
	if (prog && strrchr(prog, '/'))
		prog = strrchr(prog, '/') + 1;
	nnrt_set_prog(prog && *prog ? prog : m && m->name ? m->name : "nnrt");
	char why[512];
	if (nnrt_model_check(m, 1, why, sizeof why)) {
		nnrt_error("%s", why);
		return NNRT_EXIT_FAILURE;
	}
	trainer t;
	memset(&t, 0, sizeof t);
	t.m = m;
	t.saved_epoch = -1;
	stdout_errno = 0;
	int rc = nnrt_cli_parse(&t.o, m, argc, argv);
	t.augm = *m;
	if (!rc && t.o.augment)
		nnrt_augment_apply(&t.augm, &t.o.aug);
	if (rc || t.o.help || t.o.summary) {
		if (!rc && t.o.help)
			print_help(m);
		else if (!rc)
			nnrt_print_summary(m);
		nnrt_cli_free(&t.o);
		return check_stdout(rc);
	}
	/* A file size limit (ulimit -f) must fail a write with EFBIG, which
	 * the checkpoint writer reports and cleans up after, rather than kill
	 * the process by SIGXFSZ in the middle of it. */
	struct sigaction ign, old_xfsz;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	int xfsz = sigaction(SIGXFSZ, &ign, &old_xfsz) == 0;
	t.dist = nnrt_dist_launch(m, &rc);
	if (!rc && t.dist)
		dist_rank_setup(&t);
	nnrt_set_threads((int)t.o.threads);
	t.has_acc = m->loss != NNRT_LOSS_MSE;
	t.bar = !t.dist && nnrt_progress_wanted((int)t.o.verbose); /* mpirun's ranks may see a terminal that is not one */
	nnrt_progress_loading(t.bar);
	if (!rc)
		rc = check_stdout(nnrt_team(run_team, &t));
	nnrt_progress_loading(0);
	rc = nnrt_dist_finish(t.dist, rc);
	if (xfsz)
		sigaction(SIGXFSZ, &old_xfsz, NULL);
	trainer_free(&t);
	return rc;
}
