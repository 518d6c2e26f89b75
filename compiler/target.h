/*
 * target.h - the machine nnc generates code for: --cpu and
 * --target-features, validated against LLVM's own tables, and the one place
 * that makes an LLVM target machine from them (for the data layout in
 * cg.c and for code generation in emit.c).
 *
 * The default is this host's CPU with all its features, as before.  Code
 * for a named CPU (x86-64-v3, znver3, ...) runs on any CPU that has that
 * CPU's features; nnc_target_required() lists the instruction-set
 * extensions among them that a CPU may lack, and the generated model
 * carries that list so that the runtime refuses to start on a CPU without
 * them instead of dying of SIGILL (runtime/cpu.c).
 */
#ifndef NNC_TARGET_H
#define NNC_TARGET_H

#include <stdbool.h>
#include <stdio.h>

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

typedef struct nnc_target {
	const char *cpu;      /* --cpu: an LLVM CPU name, or NULL (or "host") for this host's */
	const char *features; /* --target-features: "+avx2,-fma", ...; or NULL */
} nnc_target;

#ifdef __cplusplus
extern "C" {
#endif

/* Checks --cpu and --target-features against LLVM's CPUs and features for
 * this host's architecture: 0, or nnc's usage status with a message. */
int nnc_target_check(const nnc_target *t);
/* Prints the CPUs and features LLVM knows for this host's architecture
 * (nnc --cpu help). */
void nnc_target_help(FILE *f);
/* A new target machine for t (NULL: the host) at -O<opt_level>.  The
 * caller disposes of it with LLVMDisposeTargetMachine. */
LLVMTargetMachineRef nnc_target_machine(const nnc_target *t, int opt_level);
/* The instruction-set extensions that code for t may use and a CPU of the
 * same architecture can lack, comma-separated in LLVM's names ("" if
 * none).  Arena memory. */
const char *nnc_target_required(const nnc_target *t);
/* Code for t may use the feature `name` (LLVM's name, e.g. "avx512bf16"). */
bool nnc_target_has(const nnc_target *t, const char *name);
/* The CPU t names, for messages: --cpu's name, or the host's ("znver2"),
 * followed by " with --target-features LIST" when t adjusts it.  Arena
 * memory. */
const char *nnc_target_describe(const nnc_target *t);
/* The extensions nnc_target_required() considers, NULL-terminated: the
 * ones runtime/cpu.c can detect. */
extern const char *const nnc_target_checked[];

/* target_llvm.cpp: what only LLVM's C++ API can tell. */
bool nnc_llvm_cpu_known(LLVMTargetMachineRef tm, const char *cpu);
bool nnc_llvm_feature_known(LLVMTargetMachineRef tm, const char *name);
bool nnc_llvm_feature_enabled(LLVMTargetMachineRef tm, const char *name);
void nnc_llvm_print_cpus(LLVMTargetMachineRef tm, FILE *f);
void nnc_llvm_print_features(LLVMTargetMachineRef tm, FILE *f);
/* Splits the module m into n parts, the body of its k-th function (in
 * module order, declarations counted) into part fn_part[k], and, on
 * `threads` threads, optimises part i with optimise(part, tms[i], arg)
 * (NULL: m is optimised already; it returns false with a message in *err)
 * and generates its object code with tms[i] into out[i] (the caller
 * disposes of the buffers); the bytes do not depend on `threads`.  m is
 * left fit only for LLVMDisposeModule (its bodies are deleted to save
 * memory).  false and *err (LLVMDisposeMessage) on failure. */
typedef bool nnc_part_pass_fn(LLVMModuleRef part, LLVMTargetMachineRef tm, void *arg, char **err);
bool nnc_llvm_emit_split(LLVMModuleRef m, const unsigned *fn_part, LLVMTargetMachineRef *tms, unsigned n,
			 unsigned threads, nnc_part_pass_fn *optimise, void *arg, LLVMMemoryBufferRef *out, char **err);

#ifdef __cplusplus
}
#endif

#endif
