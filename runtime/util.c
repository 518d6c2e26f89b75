/*
 * util.c - the runtime's error reporting, aligned allocation and clock.
 *
 * Kept tiny on purpose: the runtime allocates a handful of arrays at start-up
 * and nothing afterwards, so it needs no allocator of its own.
 */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog_name = "nnrt";
/* Per thread: instances used from several threads at once each see their
 * own failure (runtime/api.c copies it right after the call that failed). */
static _Thread_local char last_error[1024];
static int error_echo = 1;
static _Thread_local int muted; /* nnrt_mute_errors() */

void nnrt_set_prog(const char *name)
{
	prog_name = name && *name ? name : "nnrt";
}

const char *nnrt_prog(void)
{
	return prog_name;
}

void nnrt_verror(const char *fmt, va_list ap)
{
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	if (error_echo && !muted) {
		nnrt_progress_clear(); /* not glued to a progress line on a terminal */
		fprintf(stderr, "%s: error: %s\n", prog_name, last_error);
		fflush(stderr);
	}
}

void nnrt_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	nnrt_verror(fmt, ap);
	va_end(ap);
}

void nnrt_sys_error_at(const char *file, int line, const char *fmt, ...)
{
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const char *base = strrchr(file, '/');
	nnrt_error("%s [runtime/%s:%d]", msg, base ? base + 1 : file, line);
}

const char *nnrt_last_error(void)
{
	return last_error;
}

void nnrt_set_error_echo(int on)
{
	error_echo = on;
}

int nnrt_mute_errors(int on)
{
	int was = muted;
	muted = on;
	return was;
}

int nnrt_error_echo(void)
{
	return error_echo;
}

float *nnrt_alloc_floats(int64_t n, const char *what)
{
	/* 64 bytes: one cache line, and the widest vector (AVX-512) the code
	 * generator may assume for aligned loads.  aligned_alloc wants a size
	 * that is a multiple of the alignment, and at least one line so that an
	 * empty array still gets a distinct, valid pointer. */
	if (n < 0 || (uint64_t)n > (SIZE_MAX - 64) / sizeof(float)) {
		nnrt_error("cannot allocate %s: %lld floats is too many", what, (long long)n);
		return NULL;
	}
	size_t bytes = ((size_t)n * sizeof(float) + 63) & ~(size_t)63;
	if (bytes == 0)
		bytes = 64;
	float *p = aligned_alloc(64, bytes);
	if (!p) {
		nnrt_sys_error("out of memory allocating %s (%zu bytes)", what, bytes);
		return NULL;
	}
	memset(p, 0, bytes);
	return p;
}

void *nnrt_calloc(int64_t n, size_t size, const char *what)
{
	if (n < 0 || (size && (uint64_t)n > SIZE_MAX / size)) {
		nnrt_error("cannot allocate %s: %lld elements is too many", what, (long long)n);
		return NULL;
	}
	void *p = calloc(n ? (size_t)n : 1, size ? size : 1);
	if (!p)
		nnrt_sys_error("out of memory allocating %s (%lld x %zu bytes)", what, (long long)n, size);
	return p;
}

void nnrt_free(void *p)
{
	free(p);
}

int64_t nnrt_memory_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || size <= 0 || pages > INT64_MAX / size)
		return INT64_MAX;
	return (int64_t)pages * size;
}

double nnrt_now(void)
{
	return omp_get_wtime();
}

char *nnrt_fmt_input(const nnrt_model *m, char *buf, size_t cap)
{
	/* Callers pass at least 128 bytes: "f32[" + 4 dims of 20 digits fits. */
	char tmp[128];
	size_t len = 0;
	int rank = m->input_rank > NNRT_MAX_RANK ? NNRT_MAX_RANK : m->input_rank;
	if (rank <= 0) {
		len += (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)m->input_size);
	} else {
		for (int i = 0; i < rank; i++)
			len += (size_t)snprintf(tmp + len, sizeof tmp - len, "%s%lld", i ? "," : "",
			                        (long long)m->input_shape[i]);
	}
	snprintf(buf, cap, "f32[%s]", tmp);
	return buf;
}

char *nnrt_fmt_label(const nnrt_model *m, char *buf, size_t cap)
{
	if (m->label_kind == NNRT_LABEL_CLASS)
		snprintf(buf, cap, "class(%lld)", (long long)m->label_size);
	else
		snprintf(buf, cap, "f32[%lld]", (long long)m->label_size);
	return buf;
}
