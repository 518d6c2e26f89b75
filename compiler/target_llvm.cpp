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
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <cstring>
#include <string>
#include <mutex>
#include <thread>
#include <unordered_map>
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
#include <llvm/Transforms/Utils/Cloning.h>
#include <llvm/Transforms/Utils/ValueMapper.h>

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
// a compile, and each function is optimised and generated on its own
// (function passes only, no inlining), so the module is split into n parts,
// each part goes through bitcode into a context of its own (an LLVMContext
// is not thread-safe), and the parts are generated on `threads` threads,
// part i optimised (the callback) and generated with tms[i].  m's bodies
// are deleted.  The parts depend on the module and fn_part only, never on
// the threads: the same bytes for any thread count.
//
// The split (llvm::SplitModule deals functions round-robin and cannot be
// told where each goes): function k of the module (declarations counted,
// their entries unused) goes to part fn_part[k], which emit.c chooses by
// cost.  Local functions become hidden globals, so that the parts can call
// each other.  A local constant that only function bodies read is copied
// into every part that reads it and stays local there, so each function is
// optimised against the same constants as in one module (offset tables,
// the update's decay runs); any other global variable has one definition,
// in part 0, hidden if it was local.

namespace {
// NNC_TIME's figures for one part: wall and this thread's CPU time since
// the part began.
struct part_clock {
	timespec w0, c0;
	part_clock()
	{
		clock_gettime(CLOCK_MONOTONIC, &w0);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	}
	static double since(clockid_t id, const timespec &t0)
	{
		timespec t;
		clock_gettime(id, &t);
		return double(t.tv_sec - t0.tv_sec) + 1e-9 * double(t.tv_nsec - t0.tv_nsec);
	}
	double wall() const { return since(CLOCK_MONOTONIC, w0); }
	double cpu() const { return since(CLOCK_THREAD_CPUTIME_ID, c0); }
};

struct split_plan {
	std::vector<unsigned> fn_part;                          // by llvm::Function order
	std::unordered_map<const llvm::GlobalValue *, unsigned> part_of; // functions
	std::unordered_map<const llvm::GlobalVariable *, std::vector<bool>> copies;
};
} // namespace

// The parts whose function bodies use c (through constant expressions);
// false if a global variable's initializer uses it.
static bool users_in_parts(const llvm::Value *c, const split_plan &p, std::vector<bool> &parts)
{
	for (const llvm::User *u : c->users()) {
		if (auto *i = llvm::dyn_cast<llvm::Instruction>(u)) {
			auto it = p.part_of.find(i->getFunction());
			if (it == p.part_of.end())
				return false;
			parts[it->second] = true;
		} else if (llvm::isa<llvm::GlobalValue>(u) || !llvm::isa<llvm::Constant>(u) ||
			   !users_in_parts(u, p, parts)) {
			return false;
		}
	}
	return true;
}

extern "C" bool nnc_llvm_emit_split(LLVMModuleRef mod, const unsigned *fn_part, LLVMTargetMachineRef *tms, unsigned n,
				    unsigned threads, nnc_part_pass_fn *optimise, void *arg, LLVMMemoryBufferRef *out,
				    char **err)
{
	llvm::Module &m = *llvm::unwrap(mod);
	split_plan plan;
	unsigned k = 0;
	for (llvm::Function &f : m) {
		if (!f.isDeclaration())
			plan.part_of[&f] = fn_part[k];
		k++;
	}
	for (llvm::GlobalVariable &gv : m.globals()) {
		std::vector<bool> parts(n);
		if (!gv.isDeclaration() && gv.hasLocalLinkage() && gv.isConstant() && users_in_parts(&gv, plan, parts))
			plan.copies[&gv] = parts;
	}
	for (llvm::GlobalValue &gv : m.global_values()) {
		if (!gv.hasLocalLinkage() || plan.copies.count(llvm::dyn_cast<llvm::GlobalVariable>(&gv)))
			continue;
		if (!gv.hasName())
			gv.setName("nnc.split");
		gv.setLinkage(llvm::GlobalValue::ExternalLinkage);
		gv.setVisibility(llvm::GlobalValue::HiddenVisibility);
	}
	// The parts are cut one after the other here while the other threads
	// already optimise and generate those that are ready (the cut, its
	// bitcode and the parsing are a tenth of ResNet's compile).
	const char *env = std::getenv("NNC_TIME");
	bool timing = env && *env && std::strcmp(env, "0");
	std::vector<llvm::SmallString<0>> bitcode(n), objects(n);
	std::vector<std::string> errors(n);
	std::mutex mu;
	std::condition_variable cv;
	unsigned ready = 0;
	std::atomic<unsigned> next{0};
	auto worker = [&]() {
		for (unsigned i; (i = next++) < n;) {
			{
				std::unique_lock<std::mutex> lock(mu);
				cv.wait(lock, [&] { return ready > i; });
			}
			llvm::LLVMContext ctx;
			llvm::Expected<std::unique_ptr<llvm::Module>> part =
				llvm::parseBitcodeFile(llvm::MemoryBufferRef(bitcode[i].str(), "part"), ctx);
			if (!part) {
				errors[i] = llvm::toString(part.takeError());
				continue;
			}
			part_clock clk;
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
			double opt_wall = clk.wall(), opt_cpu = clk.cpu();
			pm.run(**part);
			if (timing)
				std::fprintf(stderr, "nnc: time: part %u (%zu bytes of bitcode): optimise %.3f s (%.3f s CPU), "
						     "generate %.3f s (%.3f s CPU)\n", i, bitcode[i].size(), opt_wall, opt_cpu,
					     clk.wall() - opt_wall, clk.cpu() - opt_cpu);
		}
	};
	std::vector<std::thread> pool;
	for (unsigned t = 1; t < threads && t < n; t++)
		pool.emplace_back(worker);
	for (unsigned i = 0; i < n; i++) {
		llvm::ValueToValueMapTy map;
		std::unique_ptr<llvm::Module> part = llvm::CloneModule(m, map, [&](const llvm::GlobalValue *gv) {
			auto f = plan.part_of.find(gv);
			if (f != plan.part_of.end())
				return f->second == i;
			auto c = plan.copies.find(llvm::dyn_cast<llvm::GlobalVariable>(gv));
			if (c != plan.copies.end())
				return bool(c->second[i]);
			return i == 0;
		});
		// what this part does not use (a local constant left as a
		// declaration, a runtime function) goes
		std::vector<llvm::GlobalValue *> unused;
		for (llvm::GlobalValue &gv : part->global_values())
			if (gv.isDeclaration() && gv.use_empty())
				unused.push_back(&gv);
		for (llvm::GlobalValue *gv : unused)
			gv->eraseFromParent();
		llvm::raw_svector_ostream os(bitcode[i]);
		llvm::WriteBitcodeToFile(*part, os);
		{
			std::lock_guard<std::mutex> lock(mu);
			ready = i + 1;
		}
		cv.notify_all();
	}
	// The parts hold everything now: m's function bodies go before the
	// parts are parsed (peak RSS of compile_scale.sh's defs 1000: 162 MB
	// with them kept, 148 MB without; 118 MB in one part); m is only fit
	// for disposal.
	m.dropAllReferences();
	worker();
	for (std::thread &t : pool)
		t.join();
	for (unsigned i = 0; i < n; i++)
		out[i] = nullptr;
	for (unsigned i = 0; i < n; i++)
		if (!errors[i].empty()) {
			*err = LLVMCreateMessage(errors[i].c_str());
			return false;
		}
	for (unsigned i = 0; i < n; i++)
		out[i] = LLVMCreateMemoryBufferWithMemoryRangeCopy(objects[i].data(), objects[i].size(), "object");
	return true;
}
