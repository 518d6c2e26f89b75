/*
 * cpu.c - does this CPU have what the model's code was compiled for?
 *
 * nnc compiles for this host's CPU by default, or for the CPU of --cpu,
 * and records in nnrt_model.cpu_features the instruction-set extensions
 * that code may use.  Run on a CPU without one of them, the code would die
 * of SIGILL at its first vector instruction; nnrt_main and the instance
 * constructors call nnrt_cpu_check first and say which extensions are
 * missing instead.
 *
 * Detection reads CPUID directly rather than through
 * __builtin_cpu_supports, whose list of names differs between compilers
 * and their versions: the table below is the whole truth, one row per
 * extension, with the register state the operating system must save for
 * it (an AVX-512 CPU under a kernel that does not save the ZMM registers
 * cannot run AVX-512 code).  This file is compiled for the baseline of the
 * architecture, like the rest of the runtime.
 */
#include "nnrt_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

enum { EAX, EBX, ECX, EDX };
enum { OS_NONE, OS_YMM, OS_ZMM }; /* register state the OS must enable */

typedef struct extension {
	const char *name; /* LLVM's name, as nnc writes it */
	unsigned leaf, sub, reg, bit, os;
} extension;

static const extension extensions[] = {
	{"sse3", 1, 0, ECX, 0, OS_NONE},
	{"pclmul", 1, 0, ECX, 1, OS_NONE},
	{"ssse3", 1, 0, ECX, 9, OS_NONE},
	{"fma", 1, 0, ECX, 12, OS_YMM},
	{"cx16", 1, 0, ECX, 13, OS_NONE},
	{"sse4.1", 1, 0, ECX, 19, OS_NONE},
	{"sse4.2", 1, 0, ECX, 20, OS_NONE},
	{"movbe", 1, 0, ECX, 22, OS_NONE},
	{"popcnt", 1, 0, ECX, 23, OS_NONE},
	{"aes", 1, 0, ECX, 25, OS_NONE},
	{"avx", 1, 0, ECX, 28, OS_YMM},
	{"f16c", 1, 0, ECX, 29, OS_YMM},
	{"bmi", 7, 0, EBX, 3, OS_NONE},
	{"avx2", 7, 0, EBX, 5, OS_YMM},
	{"bmi2", 7, 0, EBX, 8, OS_NONE},
	{"avx512f", 7, 0, EBX, 16, OS_ZMM},
	{"avx512dq", 7, 0, EBX, 17, OS_ZMM},
	{"adx", 7, 0, EBX, 19, OS_NONE},
	{"avx512ifma", 7, 0, EBX, 21, OS_ZMM},
	{"avx512cd", 7, 0, EBX, 28, OS_ZMM},
	{"sha", 7, 0, EBX, 29, OS_NONE},
	{"avx512bw", 7, 0, EBX, 30, OS_ZMM},
	{"avx512vl", 7, 0, EBX, 31, OS_ZMM},
	{"avx512vbmi", 7, 0, ECX, 1, OS_ZMM},
	{"avx512vbmi2", 7, 0, ECX, 6, OS_ZMM},
	{"gfni", 7, 0, ECX, 8, OS_NONE},
	{"vaes", 7, 0, ECX, 9, OS_YMM},
	{"vpclmulqdq", 7, 0, ECX, 10, OS_YMM},
	{"avx512vnni", 7, 0, ECX, 11, OS_ZMM},
	{"avx512bitalg", 7, 0, ECX, 12, OS_ZMM},
	{"avx512vpopcntdq", 7, 0, ECX, 14, OS_ZMM},
	{"avx512vp2intersect", 7, 0, EDX, 8, OS_ZMM},
	{"avx512fp16", 7, 0, EDX, 23, OS_ZMM},
	{"avxvnni", 7, 1, EAX, 4, OS_YMM},
	{"avx512bf16", 7, 1, EAX, 5, OS_ZMM},
	{"sahf", 0x80000001, 0, ECX, 0, OS_NONE},
	{"lzcnt", 0x80000001, 0, ECX, 5, OS_NONE},
	{"sse4a", 0x80000001, 0, ECX, 6, OS_NONE},
	{"prfchw", 0x80000001, 0, ECX, 8, OS_NONE},
	{"xop", 0x80000001, 0, ECX, 11, OS_YMM},
	{"fma4", 0x80000001, 0, ECX, 16, OS_YMM},
};

/* The psABI levels, for the advice in the message; each includes the ones
 * before it (a CPU with AVX-512 but without FMA, or FMA disabled by
 * NNRT_CPU_DISABLE, runs no level above x86-64-v2). */
static const char *const levels[][2] = {
	{"x86-64-v2", "cx16,sahf,popcnt,sse3,sse4.1,sse4.2,ssse3"},
	{"x86-64-v3", "avx,avx2,bmi,bmi2,f16c,fma,lzcnt,movbe"},
	{"x86-64-v4", "avx512f,avx512bw,avx512cd,avx512dq,avx512vl"},
};

static const extension *find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++)
		if (strlen(extensions[i].name) == len && !strncmp(extensions[i].name, name, len))
			return &extensions[i];
	return NULL;
}

/* `name` (len bytes) is in the comma-separated list s. */
static bool listed(const char *s, const char *name, size_t len)
{
	while (s && *s) {
		size_t n = strcspn(s, ",");
		if (n == len && !strncmp(s, name, len))
			return true;
		s += n + (s[n] == ',');
	}
	return false;
}

static bool has(const extension *e)
{
	if (listed(getenv("NNRT_CPU_DISABLE"), e->name, strlen(e->name)))
		return false;
	unsigned r[4], base = e->leaf & 0x80000000u;
	if ((unsigned)__get_cpuid_max(base, NULL) < e->leaf)
		return false;
	if (e->sub) {
		__cpuid_count(7, 0, r[EAX], r[EBX], r[ECX], r[EDX]);
		if (r[EAX] < e->sub)
			return false;
	}
	__cpuid_count(e->leaf, e->sub, r[EAX], r[EBX], r[ECX], r[EDX]);
	if (!(r[e->reg] >> e->bit & 1))
		return false;
	if (e->os == OS_NONE)
		return true;
	/* the registers must also be saved by the OS: XCR0, if XGETBV exists */
	__cpuid(1, r[EAX], r[EBX], r[ECX], r[EDX]);
	if (!(r[ECX] >> 27 & 1))
		return false;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	unsigned need = e->os == OS_YMM ? 0x6 : 0xe6; /* SSE+AVX state; + opmask and ZMM */
	return (lo & need) == need;
}

/* All of the comma-separated extensions in s are present. */
static bool has_all(const char *s)
{
	for (; *s; s += strcspn(s, ",") + (s[strcspn(s, ",")] == ',')) {
		const extension *e = find(s, strcspn(s, ","));
		if (!e || !has(e))
			return false;
	}
	return true;
}

int nnrt_cpu_check(const char *features, char *err, size_t n)
{
	char missing[512] = "", unknown[256] = "";
	for (const char *s = features; s && *s;) {
		size_t len = strcspn(s, ",");
		const extension *e = find(s, len);
		char *list = e ? missing : unknown;
		size_t cap = e ? sizeof missing : sizeof unknown, used = strlen(list);
		if (len && (!e || !has(e)))
			snprintf(list + used, cap - used, "%s%.*s", used ? ", " : "", (int)len, s);
		s += len + (s[len] == ',');
	}
	if (!*missing && !*unknown)
		return 0;
	if (err && n) {
		if (*unknown) {
			snprintf(err, n, "cannot check whether this CPU has %s, which the model's code was compiled for: "
			                 "this runtime does not know %s; use a runtime as new as the nnc that compiled it",
			         unknown, strchr(unknown, ',') ? "them" : "it");
		} else {
			const char *level = "x86-64";
			for (size_t i = 0; i < sizeof levels / sizeof levels[0] && has_all(levels[i][1]); i++)
				level = levels[i][0];
			snprintf(err, n, "this CPU lacks %s, which the model's code was compiled for; compile it for this "
			                 "CPU (nnc's default) or a CPU it can run, such as nnc --cpu %s",
			         missing, level);
		}
	}
	return *unknown ? -1 : 1;
}

#else

/* Other architectures: nnc records no extensions there yet. */
int nnrt_cpu_check(const char *features, char *err, size_t n)
{
	(void)features;
	if (err && n)
		err[0] = 0;
	return 0;
}

#endif
