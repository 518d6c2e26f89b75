/*
 * target.c - see target.h.
 *
 * Why the checks: LLVM takes an unknown CPU or feature name with a warning
 * on stderr and then generates code for a generic CPU, so `--cpu skylak`
 * would silently give slow, unchecked code; nnc makes it a usage error.
 */
#include "target.h"

#include <string.h>

#include "util.h"

const char *const nnc_target_checked[] = {
	/* x86-64-v2 */
	"sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "cx16", "sahf",
	/* x86-64-v3 */
	"avx", "avx2", "fma", "f16c", "bmi", "bmi2", "lzcnt", "movbe",
	/* x86-64-v4 */
	"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
	/* later and vendor-specific ones LLVM may use on its own */
	"pclmul", "aes", "adx", "sha", "prfchw", "sse4a", "fma4", "xop", "gfni", "vaes", "vpclmulqdq", "avxvnni",
	"avx512ifma", "avx512vbmi", "avx512vbmi2", "avx512vnni", "avx512bitalg", "avx512vpopcntdq", "avx512bf16",
	"avx512fp16", "avx512vp2intersect", NULL};

static bool is_host(const nnc_target *t)
{
	return !t || !t->cpu || !strcmp(t->cpu, "host") || !strcmp(t->cpu, "native");
}

static LLVMTargetRef native_target(const char *triple)
{
	static bool initialised;
	if (!initialised) {
		LLVMInitializeNativeTarget();
		LLVMInitializeNativeAsmPrinter();
		initialised = true;
	}
	LLVMTargetRef target;
	char *err = NULL;
	if (LLVMGetTargetFromTriple(triple, &target, &err))
		nnc_internal_error(__FILE__, __LINE__, "no LLVM target for %s: %s", triple, err);
	return target;
}

/* The level of LLVM's machine-code passes at -O<opt_level>: -O2 uses
 * "less", since the kernels are already tiled and scheduled by
 * construction; the default level's extra machine passes bought no speed
 * (LeNet, MLP training and inference measured alike) and cost 0.15 s of
 * LeNet's 1 s compile. */
static LLVMCodeGenOptLevel codegen_level(int opt_level)
{
	return opt_level <= 0 ? LLVMCodeGenLevelNone : opt_level <= 2 ? LLVMCodeGenLevelLess : LLVMCodeGenLevelAggressive;
}

LLVMTargetMachineRef nnc_target_machine(const nnc_target *t, int opt_level)
{
	char *triple = LLVMGetDefaultTargetTriple();
	LLVMTargetRef target = native_target(triple);
	char *host_cpu = NULL, *host_features = NULL;
	const char *cpu, *features = t && t->features ? t->features : "";
	if (is_host(t)) {
		cpu = host_cpu = LLVMGetHostCPUName();
		host_features = LLVMGetHostCPUFeatures();
		/* --target-features adjusts the host's own list */
		features = *features ? nnc_sprintf("%s,%s", host_features, features) : host_features;
	} else {
		cpu = t->cpu;
	}
	LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, features, codegen_level(opt_level),
							  LLVMRelocPIC, LLVMCodeModelDefault);
	LLVMDisposeMessage(triple);
	if (host_cpu)
		LLVMDisposeMessage(host_cpu);
	if (host_features)
		LLVMDisposeMessage(host_features);
	return tm;
}

/* A machine for the generic CPU, to ask LLVM's tables questions. */
static LLVMTargetMachineRef generic_machine(void)
{
	char *triple = LLVMGetDefaultTargetTriple();
	LLVMTargetMachineRef tm = LLVMCreateTargetMachine(native_target(triple), triple, "", "", LLVMCodeGenLevelNone,
							  LLVMRelocPIC, LLVMCodeModelDefault);
	LLVMDisposeMessage(triple);
	return tm;
}

static int target_error(const char *what, const char *name)
{
	fprintf(stderr, "nnc: error: %s '%s'; 'nnc --cpu help' lists the CPUs and features\n", what, name);
	fprintf(stderr, "nnc: run 'nnc --help' for the list of options\n");
	return NNC_EXIT_USAGE;
}

int nnc_target_check(const nnc_target *t)
{
	LLVMTargetMachineRef tm = generic_machine();
	int rc = 0;
	if (!is_host(t) && !nnc_llvm_cpu_known(tm, t->cpu))
		rc = target_error("--cpu: LLVM knows no CPU", t->cpu);
	/* --target-features: +name or -name, separated by commas */
	for (const char *p = t->features; !rc && p && *p;) {
		size_t n = strcspn(p, ",");
		const char *item = nnc_strndup(p, n);
		if ((item[0] != '+' && item[0] != '-') || !item[1])
			rc = target_error("--target-features takes +name or -name items separated by commas, not",
					  item);
		else if (!nnc_llvm_feature_known(tm, item + 1))
			rc = target_error("--target-features: LLVM knows no feature", item + 1);
		p += n;
		if (*p == ',' && !*++p)
			rc = target_error("--target-features: an empty item in", t->features);
	}
	LLVMDisposeTargetMachine(tm);
	return rc;
}

void nnc_target_help(FILE *f)
{
	LLVMTargetMachineRef tm = generic_machine();
	char *triple = LLVMGetDefaultTargetTriple(), *host = LLVMGetHostCPUName();
	fprintf(f, "CPUs for %s (--cpu NAME; default: host, which is %s here):\n", triple, host);
	nnc_llvm_print_cpus(tm, f);
	fprintf(f, "\nFeatures (--target-features +NAME,-NAME,...):\n");
	nnc_llvm_print_features(tm, f);
	LLVMDisposeMessage(triple);
	LLVMDisposeMessage(host);
	LLVMDisposeTargetMachine(tm);
}

const char *nnc_target_required(const nnc_target *t)
{
	LLVMTargetMachineRef tm = nnc_target_machine(t, 0);
	nnc_buf b = {0};
	for (int i = 0; nnc_target_checked[i]; i++)
		if (nnc_llvm_feature_enabled(tm, nnc_target_checked[i]))
			nnc_buf_printf(&b, "%s%s", b.len ? "," : "", nnc_target_checked[i]);
	LLVMDisposeTargetMachine(tm);
	const char *s = nnc_strdup(b.data ? b.data : "");
	nnc_buf_free(&b);
	return s;
}

bool nnc_target_has(const nnc_target *t, const char *name)
{
	LLVMTargetMachineRef tm = nnc_target_machine(t, 0);
	bool has = nnc_llvm_feature_enabled(tm, name);
	LLVMDisposeTargetMachine(tm);
	return has;
}

const char *nnc_target_describe(const nnc_target *t)
{
	const char *cpu = t && t->cpu && !is_host(t) ? t->cpu : NULL;
	if (!cpu) {
		char *host = LLVMGetHostCPUName();
		cpu = nnc_sprintf("%s", host);
		LLVMDisposeMessage(host);
	}
	if (t && t->features && *t->features)
		return nnc_sprintf("'%s' with --target-features %s", cpu, t->features);
	return nnc_sprintf("'%s'", cpu);
}
