// target_llvm.cpp - the three questions about LLVM's targets that its C API
// cannot answer, asked through the C++ API and answered in C:
//   - is a CPU name one LLVM knows (an unknown one is only a warning on
//     stderr to LLVM, and code for a generic CPU),
//   - is a feature name one LLVM knows,
//   - which features does a target machine's CPU + feature string enable,
//     the implied ones included (x86-64-v3 means avx2, fma, bmi2, ...).
// The answers come from the subtarget tables the X86 back end was built
// with, so they can never disagree with the code LLVM generates.  This is
// the only C++ in nnc; everything else reaches LLVM through llvm-c.
#include <cstdio>
#include <cstring>

#include <llvm-c/TargetMachine.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/Target/TargetMachine.h>

#include "target.h"

static const llvm::MCSubtargetInfo *subtarget(LLVMTargetMachineRef tm)
{
	return reinterpret_cast<llvm::TargetMachine *>(tm)->getMCSubtargetInfo();
}

static const llvm::SubtargetFeatureKV *feature(const llvm::MCSubtargetInfo *sti, const char *name)
{
	for (const llvm::SubtargetFeatureKV &kv : sti->getAllProcessorFeatures())
		if (!std::strcmp(kv.Key, name))
			return &kv;
	return nullptr;
}

extern "C" bool nnc_llvm_cpu_known(LLVMTargetMachineRef tm, const char *cpu)
{
	return subtarget(tm)->isCPUStringValid(cpu);
}

extern "C" bool nnc_llvm_feature_known(LLVMTargetMachineRef tm, const char *name)
{
	return feature(subtarget(tm), name) != nullptr;
}

extern "C" bool nnc_llvm_feature_enabled(LLVMTargetMachineRef tm, const char *name)
{
	const llvm::MCSubtargetInfo *sti = subtarget(tm);
	const llvm::SubtargetFeatureKV *kv = feature(sti, name);
	return kv && sti->getFeatureBits().test(kv->Value);
}

extern "C" void nnc_llvm_print_cpus(LLVMTargetMachineRef tm, FILE *f)
{
	for (const llvm::SubtargetSubTypeKV &kv : subtarget(tm)->getAllProcessorDescriptions())
		std::fprintf(f, "  %s\n", kv.Key);
}

extern "C" void nnc_llvm_print_features(LLVMTargetMachineRef tm, FILE *f)
{
	for (const llvm::SubtargetFeatureKV &kv : subtarget(tm)->getAllProcessorFeatures())
		std::fprintf(f, "  %-28s %s\n", kv.Key, kv.Desc);
}
