/*
 * emit.c - verification, optimisation for the target CPU (target.c), and
 * writing of the module as an object file, assembly or LLVM IR text.
 *
 * An executable's objects (nnc_emit_objects) are optimised and generated
 * on all cores: the passes, LLVM's instruction selection and register
 * allocation are ~90 % of a large model's compile, function by function,
 * so the module is split into parts optimised and generated on threads of
 * their own (target_llvm.cpp) and the linker joins them.  -c keeps one module: a user's object must stay one
 * file whose only global symbols are the documented ones, and the split
 * parts call each other through hidden globals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <string.h>

#include "backend.h"
#include "diag.h"
#include "output.h"

/* The generated main() only calls the runtime, whose first act is to check
 * that this CPU has the features the model's code needs: compiled for the
 * architecture's baseline, main itself runs anywhere. */
static void baseline_main(LLVMModuleRef m)
{
	LLVMValueRef f = LLVMGetNamedFunction(m, "main");
	const char *triple = LLVMGetTarget(m);
	if (!f || strncmp(triple, "x86_64", 6))
		return;
	LLVMContextRef c = LLVMGetModuleContext(m);
	LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateStringAttribute(c, "target-cpu", 10, "x86-64", 6));
	LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateStringAttribute(c, "target-features", 15, "", 0));
}

/* -O2 runs our own short pipeline: the kernels come out of cg*.c tiled,
 * vectorised and with constant trip counts, so what they need is registers
 * for the accumulators (sroa), redundancy removal (early-cse, gvn,
 * instcombine), address arithmetic hoisted out of the loops (licm) and clean
 * control flow.  default<O2> produced the same speed (LeNet and MLP
 * training, MLP and LeNet inference, measured side by side) in 0.9 s instead
 * of 0.6 s for LeNet.  -O1 and -O3 run LLVM's standard pipelines.
 * invalidate<all> drops each function's cached analyses once it is done:
 * kept for every kernel until the end they were most of the memory of a
 * large program (1000 definitions: 181 MB instead of 85, same output). */
const char *nnc_pass_pipeline(int opt_level)
{
	return opt_level <= 0   ? "default<O0>"
	       : opt_level == 1 ? "default<O1>"
	       : opt_level == 2 ? "function(sroa,early-cse<memssa>,simplifycfg,instcombine<no-verify-fixpoint>,"
				  "loop-mssa(licm),gvn,instcombine<no-verify-fixpoint>,simplifycfg,invalidate<all>)"
				: "default<O3>";
}

/* Verifies m; false (message printed) if it does not verify. */
static bool verify(LLVMModuleRef m)
{
	char *err = NULL;
	if (LLVMVerifyModule(m, LLVMReturnStatusAction, &err)) {
		fprintf(stderr, "nnc: internal error: the generated LLVM module does not verify:\n%s\n", err);
		LLVMDisposeMessage(err);
		return false;
	}
	LLVMDisposeMessage(err);
	baseline_main(m);
	return true;
}

/* Runs the passes of -O<opt_level> on m for tm; an LLVM error or NULL. */
static LLVMErrorRef run_passes(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level)
{
	const char *passes = nnc_pass_pipeline(opt_level);
	LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
	/* kernels are emitted with explicit <16 x float> vectors; the
	 * auto-vectorisers would only cost compile time */
	LLVMPassBuilderOptionsSetLoopVectorization(po, 0);
	LLVMPassBuilderOptionsSetSLPVectorization(po, 0);
	/* register tiles are unrolled by construction; unrolling the long
	 * reduction loops again only multiplies code size and compile time */
	LLVMPassBuilderOptionsSetLoopUnrolling(po, opt_level >= 3);
	LLVMErrorRef e = LLVMRunPasses(m, passes, tm, po);
	LLVMDisposePassBuilderOptions(po);
	return e;
}

/* A part of a split module (nnc_llvm_emit_split, on its thread). */
static bool optimise_part(LLVMModuleRef part, LLVMTargetMachineRef tm, void *opt_level, char **err)
{
	LLVMErrorRef e = run_passes(part, tm, *(int *)opt_level);
	if (e)
		*err = LLVMGetErrorMessage(e); /* LLVMDisposeErrorMessage is LLVMDisposeMessage */
	return !e;
}

/* Verifies and optimises m; its target machine, or NULL (message printed). */
static LLVMTargetMachineRef optimise(LLVMModuleRef m, const nnc_target *t, int opt_level)
{
	if (!verify(m))
		return NULL;
	LLVMTargetMachineRef tm = nnc_target_machine(t, opt_level);
	LLVMErrorRef e = run_passes(m, tm, opt_level);
	if (e) {
		char *msg = LLVMGetErrorMessage(e);
		fprintf(stderr, "nnc: internal error: LLVM passes failed: %s\n", msg);
		LLVMDisposeErrorMessage(msg);
		LLVMDisposeTargetMachine(tm);
		return NULL;
	}
	return tm;
}

int nnc_emit(LLVMModuleRef m, const nnc_target *t, int opt_level, emit_kind kind, const char *path)
{
	LLVMTargetMachineRef tm = optimise(m, t, opt_level);
	if (!tm)
		return NNC_EXIT_INTERNAL;
	/* the bytes go through output.c, which checks every write and whose
	 * temporary files a signal removes (LLVM's own file streams abort the
	 * process on a write error) */
	int rc = 0;
	if (kind == EMIT_LL) {
		char *text = LLVMPrintModuleToString(m);
		rc = nnc_out_write(path, text, strlen(text));
		LLVMDisposeMessage(text);
	} else {
		char *err = NULL;
		LLVMMemoryBufferRef buf = NULL;
		if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, kind == EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile,
							&err, &buf)) {
			fprintf(stderr, "nnc: internal error: LLVM code generation failed: %s\n", err);
			rc = NNC_EXIT_INTERNAL;
		} else {
			rc = nnc_out_write(path, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf));
			LLVMDisposeMemoryBuffer(buf);
		}
		if (err)
			LLVMDisposeMessage(err);
	}
	LLVMDisposeTargetMachine(tm);
	return rc;
}

/* Instructions in f's body. */
static long fn_instructions(LLVMValueRef f)
{
	long n = 0;
	for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(f); b; b = LLVMGetNextBasicBlock(b))
		for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i))
			n++;
	return n;
}

/* Instructions in m's function bodies. */
static long instructions(LLVMModuleRef m)
{
	long n = 0;
	for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f))
		n += fn_instructions(f);
	return n;
}

/* The number in the environment variable `name` within 1..max, or `dflt`. */
static unsigned env_count(const char *name, long dflt, long max)
{
	const char *env = getenv(name);
	long n = env && *env ? strtol(env, NULL, 10) : dflt;
	return n < 1 ? 1 : n > max ? (unsigned)max : (unsigned)n;
}

static bool is_quick(LLVMValueRef f)
{
	return LLVMGetStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, NNC_QUICK_CODEGEN,
					     (unsigned)strlen(NNC_QUICK_CODEGEN)) != NULL;
}

/* Optimisation and code generation cost about the same per instruction
 * (as lowered) in every kernel, and in the quick part, whose optimisation is
 * the same but whose code generation is LLVM's -O0, about half of that
 * (ResNet, NNC_TIME=1: 65 us per instruction in the other parts, 33 in the
 * quick one). */
enum { QUICK_COST_DIV = 2 };

/* The part of each function of m (fn_part[k] for the k-th, in module
 * order): the functions cg.c marked NNC_QUICK_CODEGEN (with `quick`) in
 * part `hot`, generated by LLVM's -O0 code generator; the others over
 * parts 0..hot-1, largest first, each into the part with the least
 * instructions so far (part 0 starts with the quick part's share: the
 * thread that finishes part 0 first takes the quick part next).  Ties go
 * to the lower part and the earlier function, so the plan depends on the
 * module alone.  The number of parts. */
/* qsort's order for plan_parts: larger cost first, then module order */
static const long *plan_cost;
static int by_cost(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	if (plan_cost[x] != plan_cost[y])
		return plan_cost[x] > plan_cost[y] ? -1 : 1;
	return (x > y) - (x < y);
}

static unsigned plan_parts(LLVMModuleRef m, unsigned hot, bool quick, unsigned *fn_part)
{
	long nf = 0;
	for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f))
		nf++;
	long *cost = nnc_alloc(sizeof(long) * (size_t)(nf ? nf : 1));
	long load[NNC_EMIT_MAX_PARTS] = {0}, quick_load = 0;
	bool any_quick = false;
	long k = 0;
	for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f), k++) {
		cost[k] = fn_instructions(f);
		fn_part[k] = 0;
		if (quick && cost[k] && is_quick(f)) {
			fn_part[k] = hot;
			load[0] += cost[k] / QUICK_COST_DIV;
			quick_load += cost[k];
			cost[k] = 0; /* placed */
			any_quick = true;
		}
	}
	/* largest first (sorted once: a model of many layers has tens of
	 * thousands of functions), each into the lightest part */
	long *order = nnc_alloc(sizeof(long) * (size_t)(nf ? nf : 1)), no = 0;
	for (k = 0; k < nf; k++)
		if (cost[k])
			order[no++] = k;
	plan_cost = cost;
	qsort(order, (size_t)no, sizeof *order, by_cost);
	for (long j = 0; j < no; j++) {
		unsigned p = 0;
		for (unsigned i = 1; i < hot; i++)
			if (load[i] < load[p])
				p = i;
		fn_part[order[j]] = p;
		load[p] += cost[order[j]];
	}
	const char *env = getenv("NNC_TIME");
	if (env && *env && strcmp(env, "0"))
		for (unsigned i = 0; i < hot; i++)
			fprintf(stderr, "nnc: time: part %u planned: %ld instructions as lowered%s\n", i, load[i],
				i || !any_quick ? "" : nnc_sprintf(" (%ld of them the quick part's share)", quick_load / QUICK_COST_DIV));
	return hot + any_quick;
}

int nnc_emit_objects(LLVMModuleRef m, const nnc_target *t, int opt_level, const char **paths, int *nparts)
{
	/* The number of parts depends on the module alone, so that the output
	 * does not depend on the machine; the threads (NNC_CODEGEN_THREADS,
	 * default the CPUs online) do not change the bytes.  A module in parts
	 * is optimised part by part on the threads too (the passes are
	 * function passes: the same code as optimised whole). */
	unsigned hot = env_count("NNC_CODEGEN_PARTS", instructions(m) >= NNC_EMIT_SPLIT_MIN ? NNC_EMIT_PARTS : 1,
				 NNC_EMIT_MAX_PARTS - 1),
		 n = hot;
	unsigned *fn_part = NULL;
	if (hot > 1) {
		const char *env = getenv("NNC_QUICK_CODEGEN");
		long nf = 0;
		for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f))
			nf++;
		fn_part = nnc_alloc(sizeof(unsigned) * (size_t)(nf ? nf : 1));
		n = plan_parts(m, hot, !(env && !strcmp(env, "0")), fn_part);
	}
	LLVMTargetMachineRef tm = n == 1 ? optimise(m, t, opt_level) : verify(m) ? nnc_target_machine(t, opt_level) : NULL;
	if (!tm)
		return NNC_EXIT_INTERNAL;
	LLVMTargetMachineRef tms[NNC_EMIT_MAX_PARTS] = {tm};
	LLVMMemoryBufferRef bufs[NNC_EMIT_MAX_PARTS] = {0};
	for (unsigned i = 1; i < n; i++) /* a quick part is the last */
		tms[i] = nnc_target_machine(t, i < hot ? opt_level : 0);
	char *err = NULL;
	int rc = 0;
	bool ok = n == 1 ? !LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMObjectFile, &err, &bufs[0])
			 : nnc_llvm_emit_split(m, fn_part, tms, n,
					       env_count("NNC_CODEGEN_THREADS", sysconf(_SC_NPROCESSORS_ONLN), NNC_EMIT_MAX_PARTS),
					       optimise_part, &opt_level, bufs, &err);
	if (!ok) {
		fprintf(stderr, "nnc: internal error: LLVM code generation failed: %s\n", err ? err : "");
		rc = NNC_EXIT_INTERNAL;
	}
	if (err)
		LLVMDisposeMessage(err);
	for (unsigned i = 0; i < n; i++) {
		if (!rc) {
			paths[i] = nnc_scratch(".o");
			rc = paths[i] ? nnc_out_write(paths[i], LLVMGetBufferStart(bufs[i]), LLVMGetBufferSize(bufs[i]))
				      : NNC_EXIT_INTERNAL;
		}
		if (bufs[i])
			LLVMDisposeMemoryBuffer(bufs[i]);
		LLVMDisposeTargetMachine(tms[i]);
	}
	*nparts = (int)n;
	return rc;
}
