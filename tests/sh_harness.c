/*
 * sh_harness.c - see sh_harness.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "sh_harness.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int sh_run(char **out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sh_vrun(out, fmt, ap);
	va_end(ap);
	return rc;
}

int sh_vrun(char **out, const char *fmt, va_list ap)
{
	char cmd[8192], full[8300];
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	snprintf(full, sizeof full, "( %s ) 2>&1", cmd);
	FILE *p = popen(full, "r");
	cr_assert_not_null(p, "popen failed: %s", cmd);
	size_t cap = 1 << 16, len = 0, n;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (cap - len < 1024) {
			buf = realloc(buf, cap *= 2);
			cr_assert_not_null(buf);
		}
	}
	buf[len] = 0;
	int st = pclose(p);
	if (out)
		*out = buf;
	else
		free(buf);
	/* the shell reports a command killed by signal s as 128 + s */
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void sh_mktemp(char *buf, size_t size, const char *tag)
{
	snprintf(buf, size, "/tmp/nnc-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(buf), "cannot create %s", buf);
}

void sh_rmtree(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

bool sh_nth_line(const char *s, int k, char *buf, size_t cap)
{
	for (; k > 0 && s; k--) {
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	if (!s || !*s)
		return false;
	size_t len = strcspn(s, "\n");
	if (len >= cap)
		len = cap - 1;
	memcpy(buf, s, len);
	buf[len] = 0;
	return true;
}

bool sh_has_line(const char *s, const char *line)
{
	char buf[1024];
	for (int k = 0; sh_nth_line(s, k, buf, sizeof buf); k++)
		if (!strcmp(buf, line))
			return true;
	return false;
}

double sh_last_number(const char *text, const char *key)
{
	size_t n = strlen(key);
	const char *hit = NULL;
	for (const char *p = text; (p = strstr(p, key)); p++)
		if ((p == text || p[-1] == ' ') && p[n] == ' ')
			hit = p;
	cr_assert(hit, "no field %s in:\n%s", key, text);
	return strtod(hit + n + 1, NULL);
}

int sh_rerun(char **out, const char *fmt, ...)
{
	free(*out);
	*out = NULL;
	va_list ap;
	va_start(ap, fmt);
	int rc = sh_vrun(out, fmt, ap);
	va_end(ap);
	return rc;
}
