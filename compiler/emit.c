/*
 * emit.c - verification, optimisation for the host CPU, and writing of the
 * module as an object file, assembly or LLVM IR text.
 */
#include <stdio.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <string.h>

#include "cg.h"
#include "diag.h"

static LLVMTargetMachineRef host_machine(int opt_level)
{
	static int initialised;
	if (!initialised) {
		LLVMInitializeNativeTarget();
		LLVMInitializeNativeAsmPrinter();
		initialised = 1;
	}
	char *triple = LLVMGetDefaultTargetTriple();
	char *cpu = LLVMGetHostCPUName();
	char *features = LLVMGetHostCPUFeatures();
	LLVMTargetRef target;
	char *err = NULL;
	if (LLVMGetTargetFromTriple(triple, &target, &err))
		nnc_internal_error(__FILE__, __LINE__, "no LLVM target for %s: %s", triple, err);
	/* -O2 generates machine code at LLVM's "less" level: the kernels are
	 * already tiled and scheduled by construction, the default level's extra
	 * machine passes bought no speed (LeNet, MLP training and inference
	 * measured alike) and cost 0.15 s of LeNet's 1 s compile */
	LLVMCodeGenOptLevel lvl = opt_level <= 0 ? LLVMCodeGenLevelNone
				  : opt_level == 1 ? LLVMCodeGenLevelLess
				  : opt_level == 2 ? LLVMCodeGenLevelLess
						   : LLVMCodeGenLevelAggressive;
	LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, features, lvl, LLVMRelocPIC,
							  LLVMCodeModelDefault);
	LLVMDisposeMessage(triple);
	LLVMDisposeMessage(cpu);
	LLVMDisposeMessage(features);
	return tm;
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

int nnc_emit(LLVMModuleRef m, int opt_level, emit_kind kind, const char *path)
{
	char *err = NULL;
	if (LLVMVerifyModule(m, LLVMReturnStatusAction, &err)) {
		fprintf(stderr, "nnc: internal error: the generated LLVM module does not verify:\n%s\n", err);
		LLVMDisposeMessage(err);
		return -1;
	}
	LLVMDisposeMessage(err);
	err = NULL;
	LLVMTargetMachineRef tm = host_machine(opt_level);
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
	if (e) {
		char *msg = LLVMGetErrorMessage(e);
		fprintf(stderr, "nnc: internal error: LLVM passes failed: %s\n", msg);
		LLVMDisposeErrorMessage(msg);
		LLVMDisposeTargetMachine(tm);
		return -1;
	}
	int rc = 0;
	if (kind == EMIT_LL) {
		if (LLVMPrintModuleToFile(m, path, &err)) {
			fprintf(stderr, "nnc: error: cannot write %s: %s\n", path, err);
			rc = -1;
		}
		if (err)
			LLVMDisposeMessage(err);
	} else {
		if (LLVMTargetMachineEmitToFile(tm, m, path, kind == EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile,
						&err)) {
			fprintf(stderr, "nnc: error: cannot write %s: %s\n", path, err);
			rc = -1;
		}
		if (err)
			LLVMDisposeMessage(err);
	}
	LLVMDisposeTargetMachine(tm);
	return rc;
}
