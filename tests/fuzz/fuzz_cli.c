/*
 * fuzz_cli.c - libFuzzer harness over the training binary's command line:
 * bytes -> argv -> nnrt_cli_parse(), the call nnrt_main() makes before it
 * touches any file.  The parser reports and returns; it never exits, so one
 * process runs millions of command lines.
 *
 * An input is one selector byte and the arguments, separated by NUL bytes:
 *   byte 0 % 3 chooses the model whose defaults the flags override:
 *     0: IDX training and test data      1: CSV training data, no test set
 *     2: a synthetic set (moons) and no test set
 *
 * Findings, besides crashes, sanitizer reports and leaks (which abort): the
 * parser returns 0 or 2 and nothing else; a refusal has reported an error;
 * and an accepted command line keeps every promise run() relies on: counts
 * in range, a learning rate that is a positive finite float, --load and
 * --resume not both, --eval and --predict with a checkpoint and without
 * --save, --checkpoint-every and --force only with --save, training data
 * when training, test data for --eval, and IDX data with both files named.
 *
 * Seeds: corpus_cli/ (one command line per file); flag names: cli.dict.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnrt_internal.h"

#define NMODELS 3
static const nnrt_model models[NMODELS] = {
	{.struct_size = sizeof(nnrt_model), .abi_version = NNRT_ABI_VERSION, .name = "img", .input_size = 4,
	 .input_rank = 3, .input_shape = {1, 2, 2},
	 .label_kind = NNRT_LABEL_CLASS, .label_size = 3, .output_size = 3, .batch = 4, .epochs = 3, .lr = 0.1f,
	 .loss = NNRT_LOSS_SOFTMAX_XENT, .optimizer = NNRT_OPT_SGD,
	 .train = {.kind = NNRT_DATA_IDX, .path_x = "train-images", .path_y = "train-labels", .scale = 1},
	 .test = {.kind = NNRT_DATA_IDX, .path_x = "test-images", .path_y = "test-labels", .scale = 1}},
	{.struct_size = sizeof(nnrt_model), .abi_version = NNRT_ABI_VERSION, .name = "csv", .input_size = 2,
	 .label_kind = NNRT_LABEL_REAL, .label_size = 1, .output_size = 1, .batch = 4, .epochs = 3, .lr = 0.1f,
	 .loss = NNRT_LOSS_MSE, .optimizer = NNRT_OPT_ADAM,
	 .train = {.kind = NNRT_DATA_CSV, .path_x = "d.csv", .has_header = 1, .cols_x = "a,b", .cols_y = "y",
	           .scale = 1}},
	{.struct_size = sizeof(nnrt_model), .abi_version = NNRT_ABI_VERSION, .name = "moons", .input_size = 2,
	 .label_kind = NNRT_LABEL_CLASS, .label_size = 2, .output_size = 2, .batch = 4, .epochs = 3, .lr = 0.1f,
	 .loss = NNRT_LOSS_SOFTMAX_XENT, .optimizer = NNRT_OPT_ADAM,
	 .train = {.kind = NNRT_DATA_MOONS, .count = 100, .seed = 1, .scale = 1}},
};

#define MAX_ARGS 64

static void fail(const char *why, int argc, char **argv)
{
	fprintf(stderr, "fuzz_cli: %s (last error: %s)\ncommand line:", why, nnrt_last_error());
	for (int i = 0; i < argc; i++)
		fprintf(stderr, " '%s'", argv[i]);
	fprintf(stderr, "\n");
	abort();
}

static int nonempty(const char *s)
{
	return s && *s;
}

/* The promises of an accepted command line, one line each. */
static const char *broken_promise(const nnrt_cli *c)
{
	int training = !c->eval && !c->predict;
	if (c->help || c->summary)
		return NULL;
	if (c->epochs < 0)
		return "negative --epochs";
	if (!(c->lr > 0) || !isfinite(c->lr) || c->lr > FLT_MAX || (float)c->lr == 0)
		return "a learning rate that is not a positive finite float";
	if (!(c->weight_decay >= 0) || c->weight_decay > FLT_MAX)
		return "a weight decay that is not a non-negative finite float";
	if (!(c->clip_norm >= 0) || c->clip_norm > FLT_MAX || !(c->clip_value >= 0) || c->clip_value > FLT_MAX)
		return "a clipping bound that is not a non-negative finite float";
	if (c->threads < 0 || c->threads > NNRT_MAX_THREADS)
		return "--threads out of range";
	if (c->limit < 0 || c->test_limit < 0 || c->checkpoint_every < 0)
		return "a negative count";
	if (c->load && c->resume)
		return "--load with --resume";
	if ((c->eval || c->predict) && !c->load && !c->resume)
		return "--eval or --predict without a checkpoint";
	if (c->save && !training)
		return "--save with --eval or --predict";
	if ((c->checkpoint_every || c->force) && !c->save)
		return "--checkpoint-every or --force without --save";
	if (c->log && (!training || nnrt_log_format(c->log) < 0))
		return "--log with --eval or --predict, or without .csv/.jsonl/.ndjson/.json";
	if ((c->plot_every && !c->plot) || (c->plot && c->predict))
		return "--plot-every without --plot, or --plot with --predict";
	if (c->verbose < 0 || c->verbose > 2 || c->quiet != (c->verbose == 0))
		return "--verbose out of 0..2, or disagreeing with --quiet";
	if (c->log_every && !c->log)
		return "--log-every without --log";
	const char *paths[] = {c->data, c->test, c->save, c->load, c->resume, c->predict, c->log, c->plot};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		if (paths[i] && !*paths[i])
			return "an empty path accepted";
	if (training && c->train_spec.kind == NNRT_DATA_NONE)
		return "training without training data";
	if (c->eval && c->test_spec.kind == NNRT_DATA_NONE)
		return "--eval without test data";
	const nnrt_data_spec *specs[2] = {&c->train_spec, &c->test_spec};
	for (int i = 0; i < 2; i++) {
		if (specs[i]->kind == NNRT_DATA_IDX && (!nonempty(specs[i]->path_x) || !nonempty(specs[i]->path_y)))
			return "IDX data without both files";
		if (specs[i]->kind == NNRT_DATA_CSV && !nonempty(specs[i]->path_x))
			return "CSV data without a file";
	}
	if ((c->data && !c->train_buf) || (c->test && !c->test_buf))
		return "--data or --test not applied to the spec";
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	const nnrt_model *m = &models[data[0] % NMODELS];
	/* The arguments: NUL-separated, the last one ended by the input. */
	char *text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = 0;
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	argv[argc++] = "fuzz";
	for (char *p = text; p <= text + size - 1 && argc <= MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;

	nnrt_set_error_echo(0);
	nnrt_set_prog("fuzz");
	nnrt_error("%s", ""); /* no message left from the previous input */
	nnrt_cli c;
	int rc = nnrt_cli_parse(&c, m, argc, argv);
	if (rc != 0 && rc != NNRT_EXIT_USAGE && rc != NNRT_EXIT_FAILURE)
		fail("an exit status other than 0, 1 (out of memory) or 2", argc, argv);
	if (rc && !*nnrt_last_error())
		fail("refused without a message", argc, argv);
	if (!rc) {
		const char *why = broken_promise(&c);
		if (why)
			fail(why, argc, argv);
	}
	nnrt_cli_free(&c);
	free(text);
	return 0;
}
