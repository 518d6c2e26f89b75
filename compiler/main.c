/*
 * main.c - the nnc command: flags, and the driver whose one function,
 * compile(), spells out the whole pipeline.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <llvm-c/ErrorHandling.h>
#include <llvm/Config/llvm-config.h>

#include "backend.h"
#include "diag.h"
#include "header.h"
#include "onnx.h"
#include "output.h"

#define NNC_VERSION "0.1.0"

typedef enum { OUT_EXE, OUT_OBJ, OUT_ASM, OUT_LL, OUT_IR, OUT_AST, OUT_DOT, OUT_STATS, OUT_SUMMARY, OUT_ONNX } out_kind;

typedef struct options {
	const char *input;
	const char *output;
	out_kind kind;
	const char *kind_flag;  /* the flag that chose kind, or NULL for the executable */
	bool force;             /* --force: replace files nnc did not write */
	int opt_level;
	bool no_fuse;
	bool naive;
	bool profile;
	bool inference_only;
	const char *prefix;
	const char *header;     /* --header PATH */
	const char *dump_after; /* sema | autodiff | fuse | plan */
	int chunks;             /* --chunks N; 0: NNC_DEFAULT_CHUNKS */
	nnc_target target;      /* --cpu, --target-features */
	const char *precision;  /* --precision fp32|bf16, or NULL: the train block's */
} options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nnc FILE.nn [options]\n"
		"       nnc import MODEL.onnx [-o MODEL.nn]   (an ONNX model as .nn + checkpoint; nnc import --help)\n"
		"\n"
		"Compiles a network description into a native training program.\n"
		"\n"
		"output:\n"
		"  -o PATH            output file (default: the model name, or NAME.o, NAME.s, NAME.ll)\n"
		"  -c                 write an object file, and its C header beside it, instead of an executable\n"
		"  --header PATH      where -c (or -S, --emit-llvm) writes the C header (default: OUTPUT.h)\n"
		"  --force            replace an existing output even if nnc did not write it\n"
		"  -S                 write assembly\n"
		"  --emit-llvm        write the optimised LLVM IR (.ll)\n"
		"  --emit-onnx FILE   write the inference graph with the initial weights as ONNX (docs/onnx.md)\n"
		"  --emit-ir          print the tensor IR after all passes (to -o or stdout)\n"
		"  --emit-ast         print the syntax tree\n"
		"  --emit-dot         print the graph in Graphviz dot format\n"
		"  --stats            print parameter count, planned memory and FLOPs per sample\n"
		"  --summary          print a table of every layer and value (shape, parameters, state,\n"
		"                     FLOPs, memory), block calls as groups, and the totals\n"
		"  --dump-after=PASS  print the tensor IR after PASS (sema, autodiff, fuse, plan) to stderr\n"
		"\n"
		"code generation:\n"
		"  -O0 -O1 -O2 -O3    LLVM optimisation level (default -O2)\n"
		"  --no-fuse          do not fuse activations into matrix products\n"
		"  --profile          time every op; the training binary's --profile prints the table\n"
		"  --naive-kernels    plain scalar reference loops for products and convolutions\n"
		"                     (also implied by -O0, which does no fusion either)\n"
		"  --inference-only   leave out the training step (backward and update); with -c, -S\n"
		"                     or --emit-llvm\n"
		"  --chunks N         cut each batch into N slices that threads run whole (default 2);\n"
		"                     results do not depend on the thread count, but on N\n"
		"  --prefix NAME      prefix of generated symbols (default: the model name)\n"
		"  --cpu NAME         generate code for CPU NAME (default: host, this machine's); x86-64-v3\n"
		"                     for code that runs on most x86 CPUs of the last ten years;\n"
		"                     --cpu help lists the CPUs and features\n"
		"  --target-features LIST\n"
		"                     add (+NAME) or remove (-NAME) CPU features, comma-separated\n"
		"  --precision P      fp32 (default) or bf16: dense products and convolutions in bfloat16\n"
		"                     with float32 sums (needs avx512bf16)\n"
		"\n"
		"other:\n"
		"  --color=WHEN       colour diagnostics: auto (default), always, never; NO_COLOR is respected\n"
		"  -h, --help         this help\n"
		"  --version          print the version\n"
		"\n"
		"exit status: 0 success, 1 error in the .nn file, 2 bad command line, 3 internal or system error\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "nnc: error: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nnnc: run 'nnc --help' for the list of options\n");
	return NNC_EXIT_USAGE;
}

static bool is_identifier(const char *s)
{
	if (!*s || (!isalpha((unsigned char)*s) && *s != '_'))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* Sets a flag that takes a value; giving it twice with different values
 * is an error rather than a silent choice of the last. */
static int set_value(const char **slot, const char *flag, const char *v)
{
	if (!*v)
		return usage_error("%s needs a non-empty argument", flag);
	if (*slot && strcmp(*slot, v)) {
		fprintf(stderr, "nnc: error: %s given twice ('%s' and '%s')\n", flag, *slot, v);
		fprintf(stderr, "nnc: run 'nnc --help' for the list of options\n");
		return NNC_EXIT_USAGE;
	}
	*slot = v;
	return 0;
}

/* Sets the output kind; two different kinds (-c -S) are an error. */
static int set_kind(options *o, out_kind k, const char *flag)
{
	if (o->kind_flag && strcmp(o->kind_flag, flag)) {
		fprintf(stderr, "nnc: error: %s and %s both choose what nnc writes; give one of them\n", o->kind_flag,
			flag);
		fprintf(stderr, "nnc: run 'nnc --help' for the list of options\n");
		return NNC_EXIT_USAGE;
	}
	o->kind = k;
	o->kind_flag = flag;
	return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
	static const struct {
		const char *flag;
		out_kind kind;
	} kinds[] = {{"-c", OUT_OBJ},         {"-S", OUT_ASM},         {"--emit-llvm", OUT_LL},
		     {"--emit-ir", OUT_IR},   {"--emit-ast", OUT_AST}, {"--emit-dot", OUT_DOT},
		     {"--stats", OUT_STATS},  {"--summary", OUT_SUMMARY}};
	o->opt_level = 2;
	o->kind = OUT_EXE;
	const char *color = "auto", *chunks = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int rc = 0;
		size_t k = 0;
		while (k < sizeof kinds / sizeof kinds[0] && strcmp(a, kinds[k].flag))
			k++;
		if (k < sizeof kinds / sizeof kinds[0]) {
			rc = set_kind(o, kinds[k].kind, kinds[k].flag);
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(nnc_out_close_stdout());
		} else if (!strcmp(a, "--version")) {
			printf("nnc %s (LLVM %d)\n", NNC_VERSION, LLVM_VERSION_MAJOR);
			exit(nnc_out_close_stdout());
		} else if (!strcmp(a, "-o") || !strcmp(a, "--prefix") || !strcmp(a, "--header") ||
			   !strcmp(a, "--chunks") || !strcmp(a, "--cpu") || !strcmp(a, "--target-features") ||
			   !strcmp(a, "--emit-onnx") || !strcmp(a, "--precision")) {
			if (i + 1 >= argc)
				return usage_error("%s needs an argument", a);
			const char *v = argv[++i];
			if (!strcmp(a, "--cpu") && !strcmp(v, "help")) {
				nnc_target_help(stdout);
				exit(nnc_out_close_stdout());
			}
			if (!strcmp(a, "--emit-onnx") && (rc = set_kind(o, OUT_ONNX, a)))
				return rc;
			rc = set_value(!strcmp(a, "-o") || !strcmp(a, "--emit-onnx") ? &o->output
				       : !strcmp(a, "--prefix") ? &o->prefix
				       : !strcmp(a, "--header") ? &o->header
				       : !strcmp(a, "--cpu")    ? &o->target.cpu
				       : !strcmp(a, "--chunks") ? &chunks
				       : !strcmp(a, "--precision") ? &o->precision
								: &o->target.features,
				       a, v);
		} else if (!strncmp(a, "--dump-after=", 13)) {
			if ((rc = set_value(&o->dump_after, "--dump-after", a + 13)))
				return rc;
			if (strcmp(o->dump_after, "sema") && strcmp(o->dump_after, "autodiff") &&
			    strcmp(o->dump_after, "fuse") && strcmp(o->dump_after, "plan"))
				return usage_error("unknown pass '%s' (expected sema, autodiff, fuse or plan)", o->dump_after);
		} else if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3]) {
			o->opt_level = a[2] - '0'; /* the last -O wins, as with cc */
		} else if (!strcmp(a, "--no-fuse")) {
			o->no_fuse = true;
		} else if (!strcmp(a, "--naive-kernels")) {
			o->naive = true;
		} else if (!strcmp(a, "--profile")) {
			o->profile = true;
		} else if (!strcmp(a, "--inference-only")) {
			o->inference_only = true;
		} else if (!strcmp(a, "--force")) {
			o->force = true;
		} else if (!strncmp(a, "--color=", 8)) {
			color = a + 8;
			if (strcmp(color, "auto") && strcmp(color, "always") && strcmp(color, "never"))
				return usage_error("--color takes auto, always or never, not '%s'", color);
		} else if (a[0] == '-' && a[1]) {
			return usage_error("unknown option '%s'", a);
		} else if (!*a) {
			return usage_error("%s", "an empty input file name");
		} else if (o->input) {
			return usage_error("more than one input file ('%s')", a);
		} else {
			o->input = a;
		}
		if (rc)
			return rc;
	}
	if (!o->input)
		return usage_error("%s", "no input file; usage: nnc FILE.nn [-o OUTPUT]");
	if (chunks) {
		char *end;
		long v = strtol(chunks, &end, 10);
		if (*end || end == chunks || v < 1 || v > 256)
			return usage_error("--chunks needs a number from 1 to 256, not '%s'", chunks);
		o->chunks = (int)v;
	}
	if (o->precision && strcmp(o->precision, "fp32") && strcmp(o->precision, "bf16"))
		return usage_error("--precision takes fp32 or bf16, not '%s'", o->precision);
	if (o->prefix && !is_identifier(o->prefix))
		return usage_error("--prefix '%s' is not a C identifier (letters, digits, '_'; no digit first)", o->prefix);
	if (o->prefix && nnc_reserved_name(o->prefix))
		return usage_error("--prefix '%s' is reserved: 'nnrt' and names starting with 'nnrt_' belong to the "
				   "runtime", o->prefix);
	if (o->header && o->kind != OUT_OBJ && o->kind != OUT_ASM && o->kind != OUT_LL)
		return usage_error("%s", "--header goes with -c, -S or --emit-llvm");
	/* -o - is standard output, for the text dumps; what LLVM or the linker
	 * writes (and -c's header beside it) goes to a named file, never to
	 * one called '-' */
	if (o->output && !strcmp(o->output, "-")) {
		if (o->kind != OUT_IR && o->kind != OUT_AST && o->kind != OUT_DOT && o->kind != OUT_STATS)
			return usage_error("%s", "-o - (standard output) goes with --emit-ir, --emit-ast, --emit-dot or "
						 "--stats; an executable, object, assembly or LLVM IR needs a file name");
		o->output = NULL;
	}
	if (o->header && !strcmp(o->header, "-"))
		return usage_error("%s", "--header - : the C header needs a file name, not standard output");
	int rc = nnc_target_check(&o->target);
	if (rc)
		return rc;
	/* a training binary runs the training step; without it nnrt_main
	 * could not even start */
	if (o->inference_only && o->kind == OUT_EXE)
		return usage_error("%s", "--inference-only leaves out the training step a training binary runs; "
					 "use it with -c (an object for embedding), -S or --emit-llvm");
	bool tty = isatty(2);
	const char *nc = getenv("NO_COLOR");
	nnc_diag_set_color(!strcmp(color, "always") || (!strcmp(color, "auto") && tty && !(nc && *nc)));
	return 0;
}

/* NNC_TIME=1: each phase's wall and CPU seconds on stderr (the parts of a
 * split module report their own, target_llvm.cpp), to see where a compile's
 * time goes (bench/README.md, "Compile time of the examples"). */
static void phase_time(const char *phase)
{
	static int on = -1;
	static struct timespec w0, c0;
	if (on < 0) {
		const char *env = getenv("NNC_TIME");
		on = env && *env && strcmp(env, "0");
		clock_gettime(CLOCK_MONOTONIC, &w0);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	}
	if (!on || !phase)
		return;
	struct timespec w, c;
	clock_gettime(CLOCK_MONOTONIC, &w);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
	fprintf(stderr, "nnc: time: %-24s %.3f s (%.3f s CPU)\n", phase,
		(double)(w.tv_sec - w0.tv_sec) + 1e-9 * (double)(w.tv_nsec - w0.tv_nsec),
		(double)(c.tv_sec - c0.tv_sec) + 1e-9 * (double)(c.tv_nsec - c0.tv_nsec));
	w0 = w;
	c0 = c;
}

/* Writes text to the claimed output `path`, or to stdout if it is NULL
 * (checked once, when nnc closes it). */
static int write_text(const char *path, const char *text)
{
	if (!path) {
		fputs(text ? text : "", stdout);
		return 0;
	}
	const char *tmp = nnc_out_stage(path);
	if (!tmp)
		return NNC_EXIT_INTERNAL;
	return nnc_out_write(tmp, text ? text : "", text ? strlen(text) : 0);
}

static void dump_if(const options *o, const char *pass, ir_graph *g)
{
	if (!o->dump_after || strcmp(o->dump_after, pass))
		return;
	nnc_buf b = {0};
	nnc_buf_printf(&b, "; tensor IR after %s\n", pass);
	ir_dump(g, &b);
	fputs(b.data, stderr);
	nnc_buf_free(&b);
}

/* The C header of -c: --header, else the object's name with .h for .o. */
static const char *header_path(const options *o, const char *object)
{
	if (o->header)
		return o->header;
	if (o->kind != OUT_OBJ)
		return NULL;
	size_t len = strlen(object);
	if (len > 2 && !strcmp(object + len - 2, ".o"))
		return nnc_sprintf("%.*s.h", (int)(len - 2), object);
	return nnc_sprintf("%s.h", object);
}

/* Writes the header that documents and wraps the object's model. */
static int write_header(const options *o, ir_graph *g, const nnc_train_config *cfg, const char *object)
{
	const char *path = header_path(o, object);
	if (!path)
		return 0;
	nnc_buf b = {0};
	const char *slash = strrchr(object, '/');
	nnc_header(g, cfg, o->prefix ? o->prefix : g->model_name, o->inference_only, slash ? slash + 1 : object, &b);
	int rc = write_text(path, b.data);
	nnc_buf_free(&b);
	return rc;
}

static const char *default_output(const options *o, const char *model)
{
	switch (o->kind) {
	case OUT_OBJ: return nnc_sprintf("%s.o", model);
	case OUT_ASM: return nnc_sprintf("%s.s", model);
	case OUT_LL: return nnc_sprintf("%s.ll", model);
	default: return model;
	}
}

/* Checks the outputs of this compile against the input and each other
 * (output.h) before any work is done. */
static int claim_outputs(const options *o, const char *out)
{
	int rc = out ? nnc_out_claim(out, o->output ? "-o" : "the output", o->force) : 0;
	const char *h = out ? header_path(o, out) : NULL;
	if (!rc && h)
		rc = nnc_out_claim(h, o->header ? "--header" : "the header", o->force);
	return rc;
}

/* The text outputs: the tensor IR, the graph and the statistics. */
static int write_dump(const options *o, ir_graph *g)
{
	nnc_buf b = {0};
	if (o->kind == OUT_IR)
		ir_dump(g, &b);
	else if (o->kind == OUT_DOT)
		ir_dump_dot(g, &b);
	else if (o->kind == OUT_SUMMARY)
		nnc_summary(g, &b);
	else
		ir_stats(g, &b);
	int rc = write_text(o->output, b.data);
	nnc_buf_free(&b);
	return rc;
}

/* Emits the module as the object, assembly or LLVM IR at `out` (with the C
 * header), or as an object linked into the executable `out`; nothing
 * replaces an existing file until everything has been written. */
static int write_code(const options *o, ir_graph *g, const nnc_train_config *cfg, LLVMModuleRef mod,
		      const char *out)
{
	int rc;
	if (o->kind == OUT_EXE) {
		const char *objs[NNC_EMIT_MAX_PARTS], *exe = nnc_out_stage(out);
		int nobj = 0;
		if (!exe)
			return NNC_EXIT_INTERNAL;
		rc = nnc_emit_objects(mod, &o->target, o->opt_level, objs, &nobj);
		phase_time("optimise and generate");
		if (!rc)
			rc = nnc_link(objs, nobj, exe);
		phase_time("link");
	} else {
		emit_kind k = o->kind == OUT_OBJ ? EMIT_OBJ : o->kind == OUT_ASM ? EMIT_ASM : EMIT_LL;
		const char *tmp = nnc_out_stage(out);
		rc = tmp ? nnc_emit(mod, &o->target, o->opt_level, k, tmp) : NNC_EXIT_INTERNAL;
		phase_time("optimise and generate");
		if (!rc)
			rc = write_header(o, g, cfg, out);
	}
	return rc ? rc : nnc_out_commit();
}

/* --emit-onnx: the ONNX graph with the initial weights (onnx_export.c). */
static int write_onnx(const options *o, const ir_graph *g, const nnc_train_config *cfg, const nnc_onnx_model *m)
{
	int rc = claim_outputs(o, o->output);
	const char *tmp = rc ? NULL : nnc_out_stage(o->output);
	if (!tmp)
		return rc ? rc : NNC_EXIT_INTERNAL;
	rc = nnc_onnx_write_initial(g, cfg, m, tmp);
	return rc ? rc : nnc_out_commit();
}

/* The pipeline: parse -> check -> build IR -> autodiff -> fuse -> plan memory
 * -> lower to LLVM -> optimise and emit -> link (or, for -c, the C header). */
/* bf16 products (--precision, the train block's precision:; the flag
 * overrides the file) need the target's avx512bf16 dot products: a clear
 * error at compile time rather than code that dies of SIGILL.  *bf16 says
 * whether they were asked for. */
static int check_precision(const options *o, const nnc_source *src, const nnc_train_config *cfg, bool *bf16)
{
	bool flag = o->precision != NULL;
	*bf16 = flag ? !strcmp(o->precision, "bf16") : cfg->precision == NNC_PRECISION_BF16;
	if (!*bf16 || nnc_target_has(&o->target, "avx512bf16"))
		return 0;
	const char *why = nnc_sprintf("bf16 needs avx512bf16, which CPU %s lacks", nnc_target_describe(&o->target));
	if (flag) {
		fprintf(stderr, "nnc: error: --precision %s; train in float32 (--precision fp32, the default)\n", why);
		return NNC_EXIT_USAGE;
	}
	nnc_error(src, cfg->precision_loc, "precision: %s", why);
	nnc_hint("train in float32: precision: fp32 (the default)");
	return NNC_EXIT_INPUT;
}

static int compile(const options *o)
{
	nnc_source src = {.path = o->input};
	long len = 0;
	phase_time(NULL); /* the clock starts */
	int rc = nnc_out_claim_input(o->input);
	if (rc)
		return rc;
	src.text = nnc_read_file(o->input, &len);
	if (!src.text) {
		fprintf(stderr, "nnc: error: cannot read %s: %s\n", o->input, strerror(errno));
		return NNC_EXIT_INPUT;
	}
	src.len = len;
	if ((long)strlen(src.text) != len) {
		fprintf(stderr, "%s: error: the file contains a NUL byte; is it a binary file?\n", o->input);
		return NNC_EXIT_INPUT;
	}

	nnc_program *prog = nnc_parse(&src);
	if (!prog)
		return NNC_EXIT_INPUT;
	if (o->kind == OUT_AST) {
		if ((rc = claim_outputs(o, o->output)))
			return rc;
		nnc_buf b = {0};
		nnc_ast_dump(prog, &b);
		rc = write_text(o->output, b.data);
		nnc_buf_free(&b);
		return rc ? rc : nnc_out_commit();
	}

	nnc_train_config cfg; /* beside the graph: the optimizer and the train block */
	ir_graph *g = nnc_sema(prog, &cfg);
	if (!g || !nnc_check_names(prog, g, o->prefix))
		return NNC_EXIT_INPUT;
	bool bf16;
	if ((rc = check_precision(o, &src, &cfg, &bf16)))
		return rc;
	nnc_onnx_model onnx = {0}; /* the inference graph as ONNX, from sema's graph (onnx_export.c) */
	if (o->kind == OUT_EXE || o->kind == OUT_OBJ || o->kind == OUT_ASM || o->kind == OUT_LL || o->kind == OUT_ONNX)
		nnc_onnx_build(g, &cfg, o->input, NNC_VERSION, &onnx);
	if (o->kind == OUT_ONNX)
		return write_onnx(o, g, &cfg, &onnx);
	bool dump = o->kind == OUT_IR || o->kind == OUT_DOT || o->kind == OUT_STATS || o->kind == OUT_SUMMARY;
	const char *out = dump ? o->output : o->output ? o->output : default_output(o, g->model_name);
	if ((rc = claim_outputs(o, out)))
		return rc;
	dump_if(o, "sema", g);
	nnc_autodiff(g, &cfg.opt);
	nnc_add_inference_tail(g);
	dump_if(o, "autodiff", g);
	if (!o->no_fuse && o->opt_level > 0)
		nnc_fuse(g);
	dump_if(o, "fuse", g);
	if (o->inference_only) {
		ir_drop_training(g); /* nothing after the loss gets code or memory */
		if (!o->no_fuse && o->opt_level > 0)
			nnc_fold_batchnorm(g);
	} else if (!o->no_fuse && o->opt_level > 0) {
		nnc_fold_batchnorm_eval(g); /* for the eval step and inference */
	}
	g->chunks = o->chunks;
	nnc_plan(g);
	dump_if(o, "plan", g);
	bool naive = o->naive || o->opt_level == 0;
	/* infer() on a few samples runs a sample-major copy (small.c), in an
	 * object: embedding infers a sample at a time.  An executable infers
	 * on few samples only at the end of --predict's file: the main graph
	 * does it there, and the compile is a seventh shorter (ResNet). */
	ir_graph *small = naive || o->kind == OUT_EXE ? NULL : nnc_small_batch(g);
	if (dump) {
		rc = write_dump(o, g);
		return rc ? rc : nnc_out_commit();
	}

	cg_options co = {.opt_level = o->opt_level, .naive = naive, .profile = o->profile, .small = small,
			 .emit_main = o->kind == OUT_EXE,
			 .inference_only = o->inference_only, .prefix = o->prefix, .target = &o->target,
			 .bf16 = bf16};
	LLVMContextRef ctx = LLVMContextCreate();
	phase_time("front end");
	LLVMModuleRef mod = nnc_lower(g, &cfg, &co, ctx);
	phase_time("lower");
	nnc_onnx_embed(mod, &onnx, o->kind == OUT_EXE ? "nnrt_main_onnx"
						       : nnc_sprintf("%s_onnx", o->prefix ? o->prefix : g->model_name));
	rc = write_code(o, g, &cfg, mod, out);
	LLVMDisposeModule(mod);
	LLVMContextDispose(ctx);
	return rc;
}

/* LLVM's own fatal errors (an instruction it cannot select for an unusual
 * --cpu / --target-features mix): nnc's message and status 3, the
 * temporary files removed, instead of LLVM's abort().  It may run on a
 * code-generation thread: no exit(), whose destructors would free LLVM
 * under the other threads (a SIGSEGV seen in CI). */
static const char *llvm_target_desc = "this host";

static void on_llvm_fatal(const char *reason)
{
	fprintf(stderr, "nnc: error: LLVM cannot generate code for %s: %.*s\n", llvm_target_desc,
		(int)strcspn(reason, "\n"), reason);
	if (strstr(llvm_target_desc, "--target-features"))
		fprintf(stderr, "nnc: note: a named CPU (nnc --cpu help) or a psABI level such as x86-64-v4 "
				"gives LLVM a combination of features it supports\n");
	nnc_out_abandon(NNC_EXIT_INTERNAL);
}

int main(int argc, char **argv)
{
	options o = {0};
	nnc_out_init();
	LLVMInstallFatalErrorHandler(on_llvm_fatal);
	if (argc > 1 && !strcmp(argv[1], "import")) { /* nnc import model.onnx -o model.nn */
		int irc = nnc_onnx_import_main(argc - 1, argv + 1);
		int orc = nnc_out_close_stdout();
		nnc_arena_free_all();
		return irc ? irc : orc;
	}
	int rc = parse_args(argc, argv, &o);
	if (rc == 0) {
		llvm_target_desc = nnc_sprintf("CPU %s", nnc_target_describe(&o.target));
		rc = compile(&o);
	}
	int out_rc = nnc_out_close_stdout();
	nnc_arena_free_all();
	return rc ? rc : out_rc;
}
