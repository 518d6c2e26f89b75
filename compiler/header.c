/*
 * header.c - the C header of a model compiled with `nnc -c`.
 *
 * The object defines one symbol, `const nnrt_model <prefix>_model`; the
 * header is what a user reads to use it.  It is written from the planned
 * graph, so every number in it is the one the object was built with:
 *
 *   - a comment block documenting the model: input, label and output shapes,
 *     parameter tensors, batch, memory per instance, whether training is
 *     compiled in, how to build, how to use, errors, threads and ownership;
 *   - macros for shapes and sizes (<PREFIX>_INPUT_SIZE, _BATCH, _MEMORY_SIZE,
 *     one index and size per parameter tensor, ...);
 *   - `static inline` wrappers `<prefix>_new`, `_infer`, `_train_step`, ...
 *     over the generic instance API of runtime/nnrt.h, typed for this model
 *     (labels are int32_t or float as the model wants; an instance of one
 *     model cannot be passed to another's functions).
 *
 * The header is C99 and C++ compatible and includes only <nnrt.h>.
 */
#include "header.h"
#include "diag.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* PREFIX for macros: the prefix in capitals. */
static const char *upper(const char *s)
{
	char *u = nnc_strdup(s);
	for (char *p = u; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return u;
}

/* A parameter name as part of a macro name: "dense1.weight" -> DENSE1_WEIGHT. */
static const char *macro_part(const char *name)
{
	char *u = nnc_strdup(name);
	for (char *p = u; *p; p++)
		*p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
	return u;
}

/* User text (layer names, paths) as it may sit inside a C comment: a star
 * then a slash in a name must not end the comment, nor a slash then a star
 * open a nested one (a -Wcomment warning), nor "??/" make a trigraph line
 * splice under -std=c99.
 * Bytes outside printable ASCII are written as \xNN, so a header is plain
 * ASCII whatever the names hold.  Nothing else the header writes comes from
 * the user except identifiers (model, prefix, input: checked to be C names)
 * and numbers; no user text goes into a string literal. */
static const char *comment_safe(const char *s)
{
	if (!s)
		return "";
	nnc_buf b = {0};
	nnc_buf_puts(&b, "");
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c > 0x7e)
			nnc_buf_printf(&b, "\\x%02x", c);
		else
			nnc_buf_printf(&b, "%c", c);
		/* break "*" "/", "/" "*" and "??" apart */
		if ((p[0] == '*' && p[1] == '/') || (p[0] == '/' && p[1] == '*') || (p[0] == '?' && p[1] == '?'))
			nnc_buf_puts(&b, " ");
	}
	char *r = nnc_strdup(b.data);
	nnc_buf_free(&b);
	return r;
}

/* A float literal that is one in C too ("1.0f", not "1f"). */
static const char *float_lit(double v)
{
	char *s = nnc_sprintf("%.9g", v);
	if (!strpbrk(s, ".eEn"))
		return nnc_sprintf("%s.0f", s);
	return nnc_sprintf("%sf", s);
}

/* "[n][784]" */
static const char *batched_str(int rank, const int64_t *dims)
{
	nnc_buf b = {0};
	nnc_buf_puts(&b, "[n]");
	for (int i = 0; i < rank; i++)
		nnc_buf_printf(&b, "[%lld]", (long long)dims[i]);
	char *r = nnc_strdup(b.data);
	nnc_buf_free(&b);
	return r;
}

static const char *loss_name(int kind)
{
	switch (kind) {
	case NNRT_LOSS_SOFTMAX_XENT: return "softmax_cross_entropy";
	case NNRT_LOSS_MSE: return "mse";
	case NNRT_LOSS_BCE: return "binary_cross_entropy";
	case NNRT_LOSS_SEQ_XENT: return "softmax_cross_entropy per position";
	}
	nnc_unreachable();
}

/* The optimizer as the .nn file would write it: every number, and the
 * options that are not at their default. */
static const char *optimizer_str(const ir_optimizer *o)
{
	const char *s;
	bool adam = o->kind == NNRT_OPT_ADAM || o->kind == NNRT_OPT_ADAMW;
	if (adam)
		s = nnc_sprintf("%s(lr: %g, beta1: %g, beta2: %g, eps: %g%s", o->kind == NNRT_OPT_ADAM ? "adam" : "adamw",
				o->lr, o->beta1, o->beta2, o->eps, o->flags & NNRT_OPTF_AMSGRAD ? ", amsgrad: true" : "");
	else if (o->kind == NNRT_OPT_RMSPROP)
		s = nnc_sprintf("rmsprop(lr: %g, alpha: %g, eps: %g, momentum: %g%s", o->lr, o->alpha, o->eps, o->momentum,
				o->flags & NNRT_OPTF_CENTERED ? ", centered: true" : "");
	else
		s = nnc_sprintf("sgd(lr: %g, momentum: %g%s%s", o->lr, o->momentum,
				o->dampening != 0 ? nnc_sprintf(", dampening: %g", o->dampening) : "",
				o->flags & NNRT_OPTF_NESTEROV ? ", nesterov: true" : "");
	if (o->weight_decay != 0 || o->kind == NNRT_OPT_ADAMW)
		s = nnc_sprintf("%s, weight_decay: %g%s", s, o->weight_decay,
				o->flags & NNRT_OPTF_DECAY_BIASES ? ", decay_biases: true" : "");
	if (o->clip_norm > 0)
		s = nnc_sprintf("%s, clip_norm: %g", s, o->clip_norm);
	if (o->clip_value > 0)
		s = nnc_sprintf("%s, clip_value: %g", s, o->clip_value);
	return nnc_sprintf("%s)", s);
}

/* What inference writes per sample. */
static const char *output_str(ir_graph *g)
{
	ir_node *out = &g->nodes[g->output];
	if (out->op == IR_SOFTMAX)
		return "class probabilities (the softmax of the logits)";
	const ir_node *src = out->nin > 0 ? &g->nodes[out->in[0]] : out;
	while (!src->name && src->nin == 1 && (src->op == IR_TO_NC || src->op == IR_TO_CN))
		src = &g->nodes[src->in[0]];
	if (src->name)
		return nnc_sprintf("the value of '%s'%s", comment_safe(src->name),
				   g->loss_kind == NNRT_LOSS_BCE ? " (a probability)" : "");
	return "the prediction";
}

static const char *kib(uint64_t bytes)
{
	if (bytes >= 10u << 20)
		return nnc_sprintf("%.1f MiB", (double)bytes / (1 << 20));
	return nnc_sprintf("%.1f KiB", (double)bytes / 1024);
}

/* The comment block: everything a user needs before reading any code. */
static void doc_block(ir_graph *g, const nnc_train_config *cfg, const char *P, const char *U, bool train,
		      const char *object, uint64_t mem, int64_t count, nnc_buf *o)
{
	ir_node *in = &g->nodes[g->input];
	ir_node *out = &g->nodes[g->output];
	const char *label = g->label_kind == NNRT_LABEL_CLASS ? "int32_t" : "float";
	nnc_buf_printf(o, "/*\n * %s.h - C API of the network '%s', compiled by nnc from %s.\n", P, g->model_name,
		       comment_safe(g->src->path));
	nnc_buf_printf(o, " * Generated: edit the .nn file and run nnc again, not this file.\n *\n");
	nnc_buf_printf(o, " * THE MODEL\n");
	nnc_buf_printf(o, " *   input      %s : f32%s, %lld floats per sample (%s_INPUT_SIZE)\n",
		       comment_safe(in->name ? in->name : "x"), ir_dims_str(false, in->rank, in->dims), (long long)in->size, U);
	if (g->input_vocab)
		nnc_buf_printf(o, " *   (tokens: the input holds token ids 0 .. %lld as floats)\n", (long long)g->input_vocab - 1);
	if (g->label_kind == NNRT_LABEL_CLASS)
		nnc_buf_printf(o, " *   label      class(%lld): one int32_t per sample, 0 <= y < %s_CLASSES\n",
			       (long long)g->label_size, U);
	else if (g->label_vocab)
		nnc_buf_printf(o, " *   label      class(%lld)[%lld]: %s_LABEL_SIZE floats per sample, a class id per "
			       "position (-1: ignored)\n", (long long)g->label_vocab, (long long)g->label_size, U);
	else
		nnc_buf_printf(o, " *   label      f32[%lld]: %s_LABEL_SIZE floats per sample\n", (long long)g->label_size,
			       U);
	nnc_buf_printf(o, " *   output     %s: f32[%lld] per sample (%s_OUTPUT_SIZE)\n", output_str(g),
		       (long long)out->size, U);
	nnc_buf_printf(o, " *   loss       %s\n", loss_name(g->loss_kind));
	nnc_buf_printf(o, " *   optimizer  %s\n", optimizer_str(&cfg->opt));
	nnc_buf_printf(o, " *   parameters %lld learnable floats in %d tensors (%s_PARAM_COUNT):\n", (long long)count,
		       g->nparams, U);
	for (int i = 0; i < g->nparams; i++) {
		ir_param *p = &g->params[i];
		nnc_buf_printf(o, " *                %-18s %-16s %s_P_%s\n", comment_safe(p->name), ir_dims_str(false, p->rank, p->dims), U,
			       macro_part(p->name));
	}
	nnc_buf_printf(o, " *   batch      a training step takes 1 to %lld samples (%s_BATCH); inference any n >= 1\n",
		       (long long)g->batch, U);
	nnc_buf_printf(o, " *   memory     %llu bytes (%s) per instance (%s_MEMORY_SIZE): parameters,%s\n",
		       (unsigned long long)mem, kib(mem), U, train ? " gradients," : "");
	nnc_buf_printf(o, " *              %sworkspace for a batch of %lld; inputs and outputs are yours\n",
		       train ? "optimizer state, " : "", (long long)g->batch);
	if (train)
		nnc_buf_printf(o, " *   training   compiled in: %s_train_step() runs forward, backward and update\n", P);
	else
		nnc_buf_printf(o, " *   training   NOT compiled in (nnc --inference-only): inference and evaluation only\n");
	nnc_buf_printf(o, " *   data       the .nn file's training data: feature = raw * %s_DATA_SCALE + %s_DATA_SHIFT\n",
		       U, U);
	nnc_buf_printf(o, " *\n * BUILDING\n");
	nnc_buf_printf(o, " *   The object needs the nnc runtime, libnnrt, and OpenMP:\n");
	nnc_buf_printf(o, " *     cc app.c %s $(pkg-config --cflags --libs nnrt)   i.e.  -lnnrt -fopenmp -lz -lm\n",
		       comment_safe(object));
	nnc_buf_printf(o, " *   plus -Wl,-rpath,$(pkg-config --variable=libdir nnrt) where the loader does not\n");
	nnc_buf_printf(o, " *   look for the shared libnnrt (or link libnnrt.a by path).\n");
	nnc_buf_printf(o, " *   With CMake: find_package(nnc) and nnc_add_model(app %s.nn), which runs nnc.\n", g->model_name);
	nnc_buf_printf(o, " *\n * USE\n");
	nnc_buf_printf(o, " *   int err;\n");
	nnc_buf_printf(o, " *   %s_instance *net = %s_new(&err);    // parameters initialised from the model's seed\n", P,
		       P);
	nnc_buf_printf(o, " *   if (!net) { fprintf(stderr, \"%%s\\n\", nnrt_strerror(err)); return 1; }\n");
	nnc_buf_printf(o, " *   err = %s_load(net, \"%s.ckpt\");     // a checkpoint of `./%s --save %s.ckpt`\n", P,
		       g->model_name, g->model_name, g->model_name);
	nnc_buf_printf(o, " *   float out[%s_OUTPUT_SIZE];\n", U);
	nnc_buf_printf(o, " *   err = %s_infer(net, x, 1, out);     // x: %s_INPUT_SIZE floats\n", P, U);
	if (train) {
		nnc_buf_printf(o, " *   float loss;                          // or train it, one batch at a time:\n");
		nnc_buf_printf(o, " *   err = %s_train_step(net, xs, ys, %s_BATCH, &loss);   // ys: %s labels\n", P, U,
			       label);
	}
	nnc_buf_printf(o, " *   err = %s_save(net, \"%s.ckpt\");\n", P, g->model_name);
	nnc_buf_printf(o, " *   %s_free(net);\n", P);
	nnc_buf_printf(o, " *   Arrays are row-major, sample after sample: x is float%s, out float[n][%lld].\n",
		       batched_str(in->rank, in->dims), (long long)out->size);
	nnc_buf_printf(o, " *\n * ERRORS\n");
	nnc_buf_printf(o, " *   Every function that can fail returns 0 (NNRT_OK) or an NNRT_ERR_* code (nnrt.h);\n");
	nnc_buf_printf(o, " *   nnrt_strerror(code) names it, %s_error(net) adds the details of net's latest\n", P);
	nnc_buf_printf(o, " *   failure.  Nothing exits or aborts.  Failed checkpoint loads and saves are also\n");
	nnc_buf_printf(o, " *   reported on stderr by the runtime, unless net has an error handler\n");
	nnc_buf_printf(o, " *   (%s_set_error_handler(net, nnrt_error_ignore, NULL) silences it).\n", P);
	nnc_buf_printf(o, " *\n * THREADS AND OWNERSHIP\n");
	nnc_buf_printf(o, " *   An instance is all the mutable state there is: no globals.  Use one instance\n");
	nnc_buf_printf(o, " *   from one thread at a time; different instances (of this model or others) may\n");
	nnc_buf_printf(o, " *   be used from different threads at once and stay independent.  Each call runs\n");
	nnc_buf_printf(o, " *   on a team of OpenMP threads (%s_set_threads; results do not depend on it).\n", P);
	nnc_buf_printf(o, " *   %s_new() allocates the instance, which you release with %s_free();\n", P, P);
	nnc_buf_printf(o, " *   %s_new_in() places it in memory you own (%s_MEMORY_SIZE bytes, 64-byte aligned)\n", P,
		       U);
	nnc_buf_printf(o, " *   and allocates nothing.  No function keeps a pointer to your arrays.\n");
	nnc_buf_printf(o, " */\n");
}

/* Macros for shapes and sizes. */
static void constants(ir_graph *g, const nnc_train_config *cfg, const char *P, const char *U, bool train, uint64_t mem,
		      int64_t count, nnc_buf *o)
{
	ir_node *in = &g->nodes[g->input];
	nnc_buf_printf(o, "/* Shapes and sizes (counts of floats unless said otherwise). */\n");
	nnc_buf_printf(o, "#define %s_INPUT_SIZE %lld\n", U, (long long)in->size);
	nnc_buf_printf(o, "#define %s_INPUT_RANK %d\n", U, in->rank);
	nnc_buf_printf(o, "#define %s_INPUT_SHAPE {", U);
	for (int i = 0; i < in->rank; i++)
		nnc_buf_printf(o, "%s%lld", i ? ", " : "", (long long)in->dims[i]);
	nnc_buf_printf(o, "}\n");
	nnc_buf_printf(o, "#define %s_OUTPUT_SIZE %lld\n", U, (long long)g->nodes[g->output].size);
	nnc_buf_printf(o, "#define %s_LABEL_SIZE %lld /* %s */\n", U, (long long)g->label_size,
		       g->label_kind == NNRT_LABEL_CLASS ? "classes; one int32_t label per sample"
							 : "floats per sample");
	if (g->label_kind == NNRT_LABEL_CLASS)
		nnc_buf_printf(o, "#define %s_CLASSES %lld\n", U, (long long)g->label_size);
	nnc_buf_printf(o, "#define %s_BATCH %lld /* samples per training step, at most */\n", U, (long long)g->batch);
	nnc_buf_printf(o, "#define %s_PARAM_COUNT %lld /* learnable values */\n", U, (long long)count);
	nnc_buf_printf(o, "#define %s_PARAM_TENSORS %d\n", U, g->nparams);
	nnc_buf_printf(o, "#define %s_PARAM_FLOATS %lld /* length of %s_params(net), with 64-byte padding */\n", U,
		       (long long)g->param_floats, P);
	nnc_buf_printf(o, "#define %s_STATE_TENSORS %d /* non-trainable state: running statistics, counters */\n", U,
		       g->nstates);
	nnc_buf_printf(o, "#define %s_STATE_FLOATS %lld /* length of the state array, with 64-byte padding */\n", U,
		       (long long)g->state_floats);
	nnc_buf_printf(o, "#define %s_MEMORY_SIZE %lluu /* bytes per instance */\n", U, (unsigned long long)mem);
	nnc_buf_printf(o, "#define %s_MEMORY_ALIGN %d /* bytes: alignment of %s_new_in() memory */\n", U,
		       NNRT_INSTANCE_ALIGN, P);
	nnc_buf_printf(o, "#define %s_TRAINING %d /* 1: training compiled in */\n", U, train ? 1 : 0);
	double scale = cfg->train.scale != 0 ? cfg->train.scale : 1.0;
	nnc_buf_printf(o, "#define %s_DATA_SCALE %s\n", U, float_lit(scale));
	nnc_buf_printf(o, "#define %s_DATA_SHIFT %s\n", U, float_lit(cfg->train.shift));
	nnc_buf_printf(o, "\n/* Parameter tensors: index (for _get_param/_set_param) and size. */\n");
	for (int i = 0; i < g->nparams; i++) {
		ir_param *p = &g->params[i];
		const char *m = macro_part(p->name);
		nnc_buf_printf(o, "#define %s_P_%s %d /* %s %s */\n", U, m, i, comment_safe(p->name), ir_dims_str(false, p->rank, p->dims));
		nnc_buf_printf(o, "#define %s_P_%s_SIZE %lld\n", U, m, (long long)p->size);
	}
	if (g->nstates)
		nnc_buf_printf(o, "\n/* State tensors: index (for _get_state/_set_state) and size. */\n");
	for (int i = 0; i < g->nstates; i++) {
		ir_param *p = &g->states[i];
		const char *m = macro_part(p->name);
		nnc_buf_printf(o, "#define %s_S_%s %d /* %s %s */\n", U, m, i, comment_safe(p->name),
			       ir_dims_str(false, p->rank, p->dims));
		nnc_buf_printf(o, "#define %s_S_%s_SIZE %lld\n", U, m, (long long)p->size);
	}
}

/* Appends text with every $ replaced by the prefix, every @ by PREFIX. */
static void put(nnc_buf *o, const char *P, const char *U, const char *text)
{
	for (const char *t = text; *t; t++) {
		if (*t == '$')
			nnc_buf_puts(o, P);
		else if (*t == '@')
			nnc_buf_puts(o, U);
		else
			nnc_buf_printf(o, "%c", *t);
	}
}

static void wrappers(ir_graph *g, const char *P, const char *U, bool train, nnc_buf *o)
{
	const char *label = g->label_kind == NNRT_LABEL_CLASS ? "int32_t" : "float";
	put(o, P, U,
	    "/* One instance: parameters, optimizer state, workspace, step count.  Opaque,\n"
	    " * and a type of its own, so it cannot be passed to another model's functions. */\n"
	    "typedef struct $_instance $_instance;\n"
	    "\n"
	    "/* The model descriptor the object defines (runtime/nnrt.h): names, shapes,\n"
	    " * parameter table.  Constant. */\n"
	    "extern const nnrt_model $_model;\n"
	    "\n"
	    "/* A new instance, parameters initialised from the model's seed; NULL with the\n"
	    " * code in *err (err may be NULL) on failure.  Release it with $_free(). */\n"
	    "static inline $_instance *$_new(int *err)\n"
	    "{\n"
	    "\treturn NNRT_PTR_CAST($_instance *, nnrt_instance_new(&$_model, err));\n"
	    "}\n"
	    "\n"
	    "/* The same in your memory: at least @_MEMORY_SIZE bytes aligned to 64 (e.g.\n"
	    " * aligned_alloc(64, ...) or _Alignas(64) static storage).  Nothing is allocated;\n"
	    " * the memory stays yours and must outlive the instance. */\n"
	    "static inline $_instance *$_new_in(void *mem, size_t size, int *err)\n"
	    "{\n"
	    "\treturn NNRT_PTR_CAST($_instance *, nnrt_instance_new_in(&$_model, mem, size, err));\n"
	    "}\n"
	    "\n"
	    "/* Releases an instance from $_new(); for $_new_in() it only ends its use. */\n"
	    "static inline void $_free($_instance *net)\n"
	    "{\n"
	    "\tnnrt_instance_free(NNRT_PTR_CAST(nnrt_instance *, net));\n"
	    "}\n"
	    "\n"
	    "/* Parameters from `seed` as the training binary's --seed would draw them;\n"
	    " * optimizer state and step count cleared. */\n"
	    "static inline int $_init($_instance *net, uint64_t seed)\n"
	    "{\n"
	    "\treturn nnrt_instance_init(NNRT_PTR_CAST(nnrt_instance *, net), seed);\n"
	    "}\n"
	    "\n"
	    "/* Threads per call for this instance (0: OMP_NUM_THREADS, or one per core). */\n"
	    "static inline int $_set_threads($_instance *net, int nthreads)\n"
	    "{\n"
	    "\treturn nnrt_instance_set_threads(NNRT_PTR_CAST(nnrt_instance *, net), nthreads);\n"
	    "}\n"
	    "\n"
	    "/* Products in NNRT_PRECISION_FP32 or NNRT_PRECISION_BF16 (default: as compiled;\n"
	    " * bf16 needs a model compiled with nnc --precision bf16). */\n"
	    "static inline int $_set_precision($_instance *net, int precision)\n"
	    "{\n"
	    "\treturn nnrt_instance_set_precision(NNRT_PTR_CAST(nnrt_instance *, net), precision);\n"
	    "}\n"
	    "\n"
	    "/* Inference on n >= 1 samples, any n: x is float[n][@_INPUT_SIZE], out receives\n"
	    " * float[n][@_OUTPUT_SIZE]. */\n"
	    "static inline int $_infer($_instance *net, const float *x, int64_t n, float *out)\n"
	    "{\n"
	    "\treturn nnrt_instance_infer(NNRT_PTR_CAST(nnrt_instance *, net), x, n, out);\n"
	    "}\n"
	    "\n");
	if (g->loss_kind == NNRT_LOSS_SEQ_XENT) /* a next-token model: sampling (runtime/generate.c) */
		put(o, P, U,
		    "/* n tokens sampled after the np >= 1 ids of prompt, into out (nnrt.h,\n"
		    " * nnrt_instance_generate): temperature > 0, top_k 0 for all tokens. */\n"
		    "static inline int $_generate($_instance *net, const int32_t *prompt, int64_t np, int64_t n,\n"
		    "\tfloat temperature, int64_t top_k, uint64_t seed, int32_t *out)\n"
		    "{\n"
		    "\treturn nnrt_instance_generate(NNRT_PTR_CAST(nnrt_instance *, net), prompt, np, n, temperature, top_k,\n"
		    "\t\tseed, out);\n"
		    "}\n"
		    "\n");
	if (train) {
		put(o, P, U,
		    "/* One training step on 1 <= n <= @_BATCH samples: forward, backward, optimizer\n"
		    " * update.  *loss (loss may be NULL) receives the batch's mean loss. */\n");
		put(o, P, U, nnc_sprintf("static inline int $_train_step($_instance *net, const float *x, const %s *y, "
				      "int64_t n,\n\tfloat *loss)\n",
				      label));
		put(o, P, U,
		    "{\n"
		    "\treturn nnrt_instance_train_step(NNRT_PTR_CAST(nnrt_instance *, net), x, y, n, loss);\n"
		    "}\n"
		    "\n"
		    "/* Learning rate of later steps (default: the model's). */\n"
		    "static inline int $_set_lr($_instance *net, float lr)\n"
		    "{\n"
		    "\treturn nnrt_instance_set_lr(NNRT_PTR_CAST(nnrt_instance *, net), lr);\n"
		    "}\n"
		    "\n"
		    "static inline float $_lr(const $_instance *net)\n"
		    "{\n"
		    "\treturn nnrt_instance_lr(NNRT_PTR_CAST(const nnrt_instance *, net));\n"
		    "}\n"
		    "\n"
		    "/* Weight decay of later steps, >= 0 (default: the model's; 0: none). */\n"
		    "static inline int $_set_weight_decay($_instance *net, float wd)\n"
		    "{\n"
		    "\treturn nnrt_instance_set_weight_decay(NNRT_PTR_CAST(nnrt_instance *, net), wd);\n"
		    "}\n"
		    "\n"
		    "static inline float $_weight_decay(const $_instance *net)\n"
		    "{\n"
		    "\treturn nnrt_instance_weight_decay(NNRT_PTR_CAST(const nnrt_instance *, net));\n"
		    "}\n"
		    "\n"
		    "/* Your run, as the training binary lays out its own: epochs of `samples`\n"
		    " * samples in batches of @_BATCH (the last one smaller), `epochs` of them\n"
		    " * (0: the model's).  Then train_step applies the model's schedule, warmup\n"
		    " * and accumulate as the binary does, and counts epochs; 0 samples: none. */\n"
		    "static inline int $_set_run($_instance *net, int64_t samples, int64_t epochs)\n"
		    "{\n"
		    "\treturn nnrt_instance_set_run(NNRT_PTR_CAST(nnrt_instance *, net), samples, epochs);\n"
		    "}\n"
		    "\n"
		    "/* Step, update, epoch, and the rate and momentum of the next step. */\n"
		    "static inline int $_position(const $_instance *net, nnrt_position *pos)\n"
		    "{\n"
		    "\treturn nnrt_instance_position(NNRT_PTR_CAST(const nnrt_instance *, net), pos);\n"
		    "}\n"
		    "\n"
		    "/* The rate of later steps whatever the schedule says; 0: the schedule's again. */\n"
		    "static inline int $_set_rate($_instance *net, float lr)\n"
		    "{\n"
		    "\treturn nnrt_instance_set_rate(NNRT_PTR_CAST(nnrt_instance *, net), lr);\n"
		    "}\n"
		    "\n"
		    "/* Gradient clipping by global norm and by value (0: off), as --clip-norm and\n"
		    " * --clip-value (default: the model's). */\n"
		    "static inline int $_set_clip($_instance *net, float clip_norm, float clip_value)\n"
		    "{\n"
		    "\treturn nnrt_instance_set_clip(NNRT_PTR_CAST(nnrt_instance *, net), clip_norm, clip_value);\n"
		    "}\n"
		    "\n");
	}
	put(o, P, U,
	    "/* Mean loss and accuracy over n >= 1 labelled samples, without training.\n"
	    " * loss or accuracy may be NULL. */\n");
	put(o, P, U, nnc_sprintf("static inline int $_evaluate($_instance *net, const float *x, const %s *y, int64_t n,\n"
			      "\tdouble *loss, double *accuracy)\n",
			      label));
	put(o, P, U,
	    "{\n"
	    "\treturn nnrt_instance_evaluate(NNRT_PTR_CAST(nnrt_instance *, net), x, y, n, loss, accuracy);\n"
	    "}\n"
	    "\n"
	    "/* Index of the parameter tensor `name` (\"dense1.weight\"), or -1. */\n"
	    "static inline int $_param_index(const char *name)\n"
	    "{\n"
	    "\treturn nnrt_model_param_index(&$_model, name);\n"
	    "}\n"
	    "\n"
	    "/* Copies tensor `index` (@_P_*) out of / into net; count must be its size\n"
	    " * (@_P_*_SIZE floats, row-major). */\n"
	    "static inline int $_get_param(const $_instance *net, int index, float *dst, int64_t count)\n"
	    "{\n"
	    "\treturn nnrt_instance_get_param(NNRT_PTR_CAST(const nnrt_instance *, net), index, dst, count);\n"
	    "}\n"
	    "\n"
	    "static inline int $_set_param($_instance *net, int index, const float *src, int64_t count)\n"
	    "{\n"
	    "\treturn nnrt_instance_set_param(NNRT_PTR_CAST(nnrt_instance *, net), index, src, count);\n"
	    "}\n"
	    "\n"
	    "/* All parameters, @_PARAM_FLOATS floats laid out as $_model.params says.\n"
	    " * Owned by net. */\n"
	    "static inline float *$_params($_instance *net)\n"
	    "{\n"
	    "\treturn nnrt_instance_params(NNRT_PTR_CAST(nnrt_instance *, net));\n"
	    "}\n"
	    "\n");
	if (g->nstates)
		put(o, P, U,
		    "/* The state tensors (@_S_*: non-trainable values the train step updates,\n"
		    " * which checkpoints carry), like the parameters: an index by name, a copy\n"
		    " * out or in, and the whole array of @_STATE_FLOATS floats, owned by net. */\n"
		    "static inline int $_state_index(const char *name)\n"
		    "{\n"
		    "\treturn nnrt_model_state_index(&$_model, name);\n"
		    "}\n"
		    "\n"
		    "static inline int $_get_state(const $_instance *net, int index, float *dst, int64_t count)\n"
		    "{\n"
		    "\treturn nnrt_instance_get_state(NNRT_PTR_CAST(const nnrt_instance *, net), index, dst, count);\n"
		    "}\n"
		    "\n"
		    "static inline int $_set_state($_instance *net, int index, const float *src, int64_t count)\n"
		    "{\n"
		    "\treturn nnrt_instance_set_state(NNRT_PTR_CAST(nnrt_instance *, net), index, src, count);\n"
		    "}\n"
		    "\n"
		    "static inline float *$_state($_instance *net)\n"
		    "{\n"
		    "\treturn nnrt_instance_state(NNRT_PTR_CAST(nnrt_instance *, net));\n"
		    "}\n"
		    "\n");
	put(o, P, U,
	    "/* Checkpoints, the files of the training binary's --save and --load.  Saving\n"
	    " * is atomic; loading changes nothing unless the file is valid, and takes the\n"
	    " * counters (epoch, steps), and the optimizer state when training is compiled\n"
	    " * in.  NNRT_ERR_IO: the file cannot be read; NNRT_ERR_CHECKPOINT: it is not\n"
	    " * a checkpoint of this model, and $_error(net) says what differs. */\n"
	    "static inline int $_save($_instance *net, const char *path)\n"
	    "{\n"
	    "\treturn nnrt_instance_save(NNRT_PTR_CAST(nnrt_instance *, net), path);\n"
	    "}\n"
	    "\n"
	    "static inline int $_load($_instance *net, const char *path)\n"
	    "{\n"
	    "\treturn nnrt_instance_load(NNRT_PTR_CAST(nnrt_instance *, net), path);\n"
	    "}\n"
	    "\n"
	    "/* The inference graph with net's parameters and running statistics as an\n"
	    " * ONNX file (docs/onnx.md); NNRT_ERR_MODEL if the model has an op without\n"
	    " * an ONNX form, NNRT_ERR_IO if path cannot be written. */\n"
	    "extern const nnrt_onnx $_onnx;\n"
	    "static inline int $_export_onnx($_instance *net, const char *path)\n"
	    "{\n"
	    "\treturn nnrt_instance_export_onnx(NNRT_PTR_CAST(nnrt_instance *, net), &$_onnx, path);\n"
	    "}\n"
	    "\n"
	    "/* Epochs completed, as checkpoints record it (the training binary's --resume\n"
	    " * continues after it).  Yours to count: a training step does not change it. */\n"
	    "static inline int $_set_epoch($_instance *net, int64_t epoch)\n"
	    "{\n"
	    "\treturn nnrt_instance_set_epoch(NNRT_PTR_CAST(nnrt_instance *, net), epoch);\n"
	    "}\n"
	    "\n"
	    "static inline int64_t $_epoch(const $_instance *net)\n"
	    "{\n"
	    "\treturn nnrt_instance_epoch(NNRT_PTR_CAST(const nnrt_instance *, net));\n"
	    "}\n"
	    "\n"
	    "/* Details of net's latest failure (\"\" if none, or after $_clear_error);\n"
	    " * owned by net. */\n"
	    "static inline const char *$_error(const $_instance *net)\n"
	    "{\n"
	    "\treturn nnrt_instance_error(NNRT_PTR_CAST(const nnrt_instance *, net));\n"
	    "}\n"
	    "\n"
	    "static inline void $_clear_error($_instance *net)\n"
	    "{\n"
	    "\tnnrt_instance_clear_error(NNRT_PTR_CAST(nnrt_instance *, net));\n"
	    "}\n"
	    "\n"
	    "/* fn(ctx, code, message) receives each failure of net; the runtime then\n"
	    " * prints nothing on stderr for net.  nnrt_error_ignore silences; NULL\n"
	    " * restores the default. */\n"
	    "static inline int $_set_error_handler($_instance *net, nnrt_error_fn fn, void *ctx)\n"
	    "{\n"
	    "\treturn nnrt_instance_set_error_handler(NNRT_PTR_CAST(nnrt_instance *, net), fn, ctx);\n"
	    "}\n");
}

/* ---- names the header (and checkpoints) rely on ---- */

bool nnc_reserved_name(const char *name)
{
	static const char rt[] = "nnrt";
	for (int i = 0; i < 4; i++)
		if (tolower((unsigned char)name[i]) != rt[i])
			return false;
	return name[4] == 0 || name[4] == '_';
}

/* A parameter's layer: its name without the last ".part" ("fc1.weight"). */
static const char *layer_of(const char *param)
{
	const char *dot = strrchr(param, '.');
	return dot ? nnc_sprintf("%.*s", (int)(dot - param), param) : param;
}

typedef struct mangled {
	const char *macro; /* macro_part(name) */
	int param;
} mangled;

static int by_macro(const void *a, const void *b)
{
	const mangled *x = a, *y = b;
	int c = strcmp(x->macro, y->macro);
	return c ? c : (x->param > y->param) - (x->param < y->param);
}

/* Layers whose tensors of one table (parameters: what = "parameters",
 * macro letter P; state: "state tensors", S) clash by name or C spelling:
 * reported, false.  Equal spellings sort together, in source order.  A
 * layer's tensors are consecutive in the table, so one error per layer: at
 * its first clashing tensor. */
static bool check_table(const ir_graph *g, const ir_param *rows, int n, const char *what, char letter, const char *prefix)
{
	bool ok = true;
	mangled *m = nnc_alloc(sizeof(mangled) * (size_t)(n ? n : 1));
	int *first = nnc_alloc(sizeof(int) * (size_t)(n ? n : 1));
	for (int i = 0; i < n; i++) {
		m[i] = (mangled){macro_part(rows[i].name), i};
		first[i] = -1;
	}
	qsort(m, (size_t)n, sizeof *m, by_macro);
	for (int i = 1, start = 0; i < n; i++) {
		if (strcmp(m[i].macro, m[start].macro))
			start = i;
		else
			first[m[i].param] = m[start].param;
	}
	for (int i = 0; i < n; i++) {
		if (first[i] < 0)
			continue;
		const ir_param *p = &rows[i], *q = &rows[first[i]];
		const char *lp = layer_of(p->name), *lq = layer_of(q->name);
		ok = false;
		if (!strcmp(p->name, q->name)) {
			nnc_error(g->src, p->loc, "a second layer is named '%s': the model would have two %s '%s'", lp,
				  what, p->name);
			nnc_note(g->src, q->loc, "the first layer named '%s' is here", lq);
			nnc_hint("a layer without name: is called after its kind and number (dense1, dense2, ...); "
				 "give one of them another name: \"...\"");
		} else {
			nnc_error(g->src, p->loc, "layer name '%s' clashes with '%s': both become %s in C names such as "
				  "%s_%c_%s", lp, lq, macro_part(lp), upper(prefix ? prefix : g->model_name), letter,
				  macro_part(p->name));
			nnc_note(g->src, q->loc, "layer '%s' is here", lq);
			nnc_hint("in C names every character other than a letter or digit becomes '_', and letters "
				 "capitals; rename one of the layers");
		}
		while (i + 1 < n && !strcmp(layer_of(rows[i + 1].name), lp))
			i++; /* one error per layer */
	}
	return ok;
}

bool nnc_check_names(const nnc_program *prog, const ir_graph *g, const char *prefix)
{
	bool ok = true;
	for (int i = 0; i < prog->nstmts; i++) {
		const nnc_stmt *st = &prog->stmts[i];
		if (st->kind == STMT_MODEL && st->name && nnc_reserved_name(st->name)) {
			nnc_error(prog->src, st->name_loc,
				  "the model name '%s' is reserved: 'nnrt' and names starting with 'nnrt_' belong to "
				  "the runtime", st->name);
			nnc_hint("the name prefixes every symbol of the model (%s_model, %s_new, ...); choose another",
				 st->name, st->name);
			ok = false;
		}
	}
	/* Only parameter and state macros can clash: the others are fixed
	 * names, none of which starts with P_ or S_, and the functions are the
	 * prefix's.  The state tensors are checked when the parameters (which
	 * a layer with state mostly has too) are fine: one error per clash. */
	ok &= check_table(g, g->params, g->nparams, "parameters", 'P', prefix);
	if (ok)
		ok = check_table(g, g->states, g->nstates, "state tensors", 'S', prefix);
	return ok;
}

void nnc_header(ir_graph *g, const nnc_train_config *cfg, const char *prefix, bool inference_only, const char *object, nnc_buf *out)
{
	bool train = !inference_only;
	const char *U = upper(prefix);
	uint64_t mem = NNRT_INSTANCE_MEMORY_SIZE(g->param_floats, g->opt_floats, g->ws_floats, g->state_floats, train);
	int64_t count = 0;
	for (int i = 0; i < g->nparams; i++)
		count += g->params[i].size;
	doc_block(g, cfg, prefix, U, train, object, mem, count, out);
	nnc_buf_printf(out, "#ifndef NNC_MODEL_%s_H\n#define NNC_MODEL_%s_H\n\n", U, U);
	nnc_buf_printf(out, "#include <stddef.h>\n#include <stdint.h>\n\n#include <nnrt.h>\n\n");
	nnc_buf_printf(out, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
	constants(g, cfg, prefix, U, train, mem, count, out);
	nnc_buf_puts(out, "\n");
	wrappers(g, prefix, U, train, out);
	nnc_buf_printf(out, "\n#ifdef __cplusplus\n}\n#endif\n#endif\n");
}
