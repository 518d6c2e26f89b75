// target_llvm.cpp - the three questions about LLVM's targets that its C API
// cannot answer, asked through the C++ API and answered in C:
//   - is a CPU name one LLVM knows (an unknown one is only a warning on
//     stderr to LLVM, and code for a generic CPU),
//   - is a feature name one LLVM knows,
//   - which features does a target machine's CPU + feature string enable,
//     the implied ones included (x86-64-v3 means avx2, fma, bmi2, ...).
// The answers come from the subtarget tables the X86 back end was built
// with, so they can never disagree with the code LLVM generates.
// And one thing the C API cannot do at all: generate code on several
// threads (nnc_llvm_emit_split, below).  This is the only C++ in nnc;
// everything else reaches LLVM through llvm-c.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <llvm/ADT/SmallString.h>
#include <llvm/Bitcode/BitcodeReader.h>
#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Transforms/Utils/SplitModule.h>

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

// Parallel optimisation and code generation.  nnc's passes, instruction
// selection and register allocation of the op functions are nearly all of
// a compile (ResNet: 1.9 of 2.1 s), and each function is optimised and
// generated on its own (function passes only, no inlining), so the module
// is split into n parts (llvm::SplitModule, functions dealt round-robin in module
// order; its locals become hidden globals so that the parts can call each
// other), each part goes through bitcode into a context of its own (an
// LLVMContext is not thread-safe), and the parts are generated on
// `threads` threads, part i optimised (the callback) and generated with
// tms[i].  m's bodies are deleted.  The parts depend on the module
// and n only, never on the threads: the same bytes for any thread count.
extern "C" bool nnc_llvm_emit_split(LLVMModuleRef mod, LLVMTargetMachineRef *tms, unsigned n, unsigned threads,
				    nnc_part_pass_fn *optimise, void *arg, LLVMMemoryBufferRef *out, char **err)
{
	std::vector<llvm::SmallString<0>> bitcode;
	llvm::SplitModule(
		*llvm::unwrap(mod), n,
		[&](std::unique_ptr<llvm::Module> part) {
			bitcode.emplace_back();
			llvm::raw_svector_ostream os(bitcode.back());
			llvm::WriteBitcodeToFile(*part, os);
		},
		/*PreserveLocals=*/false, /*RoundRobin=*/true);
	// The parts hold everything now: m's function bodies go before the
	// parts are parsed (peak RSS of compile_scale.sh's defs 1000: 162 MB
	// with them kept, 148 MB without; 118 MB in one part); m is only fit
	// for disposal.
	llvm::unwrap(mod)->dropAllReferences();
	std::vector<llvm::SmallString<0>> objects(bitcode.size());
	std::vector<std::string> errors(bitcode.size());
	std::atomic<unsigned> next{0};
	auto worker = [&]() {
		for (unsigned i; (i = next++) < bitcode.size();) {
			llvm::LLVMContext ctx;
			llvm::Expected<std::unique_ptr<llvm::Module>> part =
				llvm::parseBitcodeFile(llvm::MemoryBufferRef(bitcode[i].str(), "part"), ctx);
			if (!part) {
				errors[i] = llvm::toString(part.takeError());
				continue;
			}
			char *msg = nullptr;
			if (optimise && !optimise(llvm::wrap(part->get()), tms[i], arg, &msg)) {
				errors[i] = msg ? msg : "the optimisation passes failed";
				if (msg)
					LLVMDisposeMessage(msg);
				continue;
			}
			llvm::TargetMachine *tm = reinterpret_cast<llvm::TargetMachine *>(tms[i]);
			llvm::raw_svector_ostream os(objects[i]);
			llvm::legacy::PassManager pm;
			if (tm->addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile)) {
				errors[i] = "the target cannot emit object files";
				continue;
			}
			pm.run(**part);
		}
	};
	std::vector<std::thread> pool;
	for (unsigned t = 1; t < threads && t < bitcode.size(); t++)
		pool.emplace_back(worker);
	worker();
	for (std::thread &t : pool)
		t.join();
	for (unsigned i = 0; i < n; i++)
		out[i] = nullptr;
	for (unsigned i = 0; i < bitcode.size(); i++)
		if (!errors[i].empty()) {
			*err = LLVMCreateMessage(errors[i].c_str());
			return false;
		}
	for (unsigned i = 0; i < bitcode.size(); i++)
		out[i] = LLVMCreateMemoryBufferWithMemoryRangeCopy(objects[i].data(), objects[i].size(), "object");
	return true;
}
