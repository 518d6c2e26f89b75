/*
 * util.c - arena, text buffer, file reading, internal errors.
 */
#define _POSIX_C_SOURCE 200809L /* fileno */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The arena is a chain of blocks; large requests get a block of their own. */
typedef struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
} arena_block;

static arena_block *arena_head;
static size_t arena_bytes;

nnc_work_counts nnc_work;

size_t nnc_arena_bytes(void) { return arena_bytes; }

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "nnc: out of memory (%zu bytes)\n", n);
		exit(NNC_EXIT_INTERNAL);
	}
	return p;
}

void *nnc_alloc(size_t size)
{
	size = (size + 15) & ~(size_t)15;
	if (!arena_head || arena_head->cap - arena_head->used < size) {
		size_t cap = size > (1u << 20) ? size : (1u << 20);
		arena_block *b = xmalloc(sizeof(arena_block) + cap);
		b->next = arena_head;
		b->used = 0;
		b->cap = cap;
		arena_head = b;
	}
	void *p = arena_head->data + arena_head->used;
	arena_head->used += size;
	arena_bytes += size;
	memset(p, 0, size);
	return p;
}

void *nnc_realloc_array(void *old, size_t old_n, size_t new_n, size_t elem)
{
	void *p = nnc_alloc(new_n * elem);
	if (old && old_n)
		memcpy(p, old, (old_n < new_n ? old_n : new_n) * elem);
	return p;
}

char *nnc_strndup(const char *s, size_t n)
{
	char *p = nnc_alloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *nnc_strdup(const char *s)
{
	return nnc_strndup(s, strlen(s));
}

char *nnc_sprintf(const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *p = nnc_alloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

void nnc_arena_free_all(void)
{
	arena_bytes = 0;
	while (arena_head) {
		arena_block *next = arena_head->next;
		free(arena_head);
		arena_head = next;
	}
}

void nnc_buf_vprintf(nnc_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d) {
			fprintf(stderr, "nnc: out of memory\n");
			exit(NNC_EXIT_INTERNAL);
		}
		b->data = d;
		b->cap = cap;
	}
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	b->len += (size_t)n;
}

void nnc_buf_printf(nnc_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	nnc_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void nnc_buf_puts(nnc_buf *b, const char *s)
{
	nnc_buf_printf(b, "%s", s);
}

void nnc_buf_free(nnc_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/*
 * Reads at most NNC_MAX_SOURCE + 1 bytes whatever the file is: a regular
 * file announces its size, but a device (/dev/zero), a FIFO or a file still
 * growing does not, and must not fill memory before the limit is noticed.
 * A directory opens fine on Linux and then fails with EIO on the first
 * read, so it is recognised up front and named for what it is (EISDIR).
 */
char *nnc_read_file(const char *path, long *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_size > NNC_MAX_SOURCE))) {
		fclose(f);
		errno = S_ISDIR(st.st_mode) ? EISDIR : EFBIG;
		return NULL;
	}
	nnc_buf b = {0};
	char chunk[65536];
	size_t n, want = sizeof chunk;
	while ((n = fread(chunk, 1, want, f)) > 0) {
		if (b.len + n + 1 > b.cap) {
			size_t cap = b.cap ? b.cap * 2 : sizeof chunk * 2;
			while (cap < b.len + n + 1)
				cap *= 2;
			char *d = realloc(b.data, cap);
			if (!d) {
				fclose(f);
				free(b.data);
				errno = ENOMEM;
				return NULL;
			}
			b.data = d;
			b.cap = cap;
		}
		memcpy(b.data + b.len, chunk, n);
		b.len += n;
		if (b.len > (size_t)NNC_MAX_SOURCE) {
			fclose(f);
			free(b.data);
			errno = EFBIG;
			return NULL;
		}
		/* never more than one byte past the limit */
		size_t left = (size_t)NNC_MAX_SOURCE + 1 - b.len;
		want = left < sizeof chunk ? left : sizeof chunk;
	}
	int err = ferror(f) ? errno : 0;
	fclose(f);
	if (err) {
		free(b.data);
		errno = err == EISDIR ? EISDIR : EIO;
		return NULL;
	}
	char *p = nnc_strndup(b.data ? b.data : "", b.len);
	free(b.data);
	if (len)
		*len = (long)b.len;
	return p;
}

void nnc_internal_error(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "nnc: internal error at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nnnc: this is a bug in nnc; please report it with the .nn file that triggered it\n");
	exit(NNC_EXIT_INTERNAL);
}

uint64_t nnc_hash(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
