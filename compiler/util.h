/*
 * util.h - the compiler's small shared helpers: the arena every phase
 * allocates from (freed once at exit), a growable text buffer, and the one
 * way to report an internal bug (nnc_unreachable / NNC_ASSERT), which names
 * the C file and line.  User errors never go through here: see diag.h.
 */
#ifndef NNC_UTIL_H
#define NNC_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define NNC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define NNC_NORETURN __attribute__((noreturn))
#else
#define NNC_PRINTF(f, a)
#define NNC_NORETURN
#endif

/* Exit codes of the nnc command (documented in docs/cli.md). */
enum {
	NNC_EXIT_OK = 0,
	NNC_EXIT_INPUT = 1,    /* an error in the .nn program */
	NNC_EXIT_USAGE = 2,    /* a bad command line */
	NNC_EXIT_INTERNAL = 3, /* a bug in nnc, or the system failed (I/O, linker) */
};

/* Arena: zeroed memory that lives until nnc_arena_free_all(). */
void *nnc_alloc(size_t size);
void *nnc_realloc_array(void *old, size_t old_n, size_t new_n, size_t elem);
char *nnc_strdup(const char *s);
char *nnc_strndup(const char *s, size_t n);
char *nnc_sprintf(const char *fmt, ...) NNC_PRINTF(1, 2);
void nnc_arena_free_all(void);

/* Growable, NUL-terminated text buffer (heap, not arena). */
typedef struct nnc_buf {
	char *data;
	size_t len, cap;
} nnc_buf;
void nnc_buf_printf(nnc_buf *b, const char *fmt, ...) NNC_PRINTF(2, 3);
void nnc_buf_vprintf(nnc_buf *b, const char *fmt, va_list ap);
void nnc_buf_puts(nnc_buf *b, const char *s);
void nnc_buf_free(nnc_buf *b);

/* The largest source file nnc reads, in bytes (16 MiB: the examples are
 * about 1 KiB, a 100,000-line program about 3 MiB). */
#define NNC_MAX_SOURCE ((long)16 << 20)

/* Reads a whole file of at most NNC_MAX_SOURCE bytes; returns NULL (errno
 * set) on failure: EFBIG if it is larger (a device such as /dev/zero is read
 * no further than that), EISDIR for a directory.  Arena memory. */
char *nnc_read_file(const char *path, long *len);

/* Internal errors: print "nnc: internal error at FILE:LINE: msg" and exit 3. */
NNC_NORETURN void nnc_internal_error(const char *file, int line, const char *fmt, ...) NNC_PRINTF(3, 4);
#define nnc_unreachable() nnc_internal_error(__FILE__, __LINE__, "unreachable code reached")
#define NNC_ASSERT(c) \
	do { \
		if (!(c)) \
			nnc_internal_error(__FILE__, __LINE__, "assertion failed: %s", #c); \
	} while (0)

/* Counts of the front end's inner steps whose number could grow faster
 * than the program if a lookup went linear again: tests bound them
 * (tests/test_diag.c, "scale"), which times could not do reliably. */
typedef struct nnc_work_counts {
	long name_compares;    /* names compared by sema's lookups */
	long suggest_compares; /* candidates weighed for "did you mean" hints */
	long line_scan_bytes;  /* bytes diag.c read to find the lines it shows */
	long graph_steps;      /* users and free gaps visited by fuse.c, plan.c */
	long bracket_steps;    /* open brackets the scanner searched for a '{' */
} nnc_work_counts;
extern nnc_work_counts nnc_work;

/* Bytes the arena has handed out since the start (or the last free_all). */
size_t nnc_arena_bytes(void);

/* 64-bit FNV-1a, for fingerprints. */
uint64_t nnc_hash(uint64_t h, const void *data, size_t n);
#define NNC_HASH_INIT 0xcbf29ce484222325ull

#endif
