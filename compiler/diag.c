/*
 * diag.c - printing of user errors with the source line and a caret
 * underline under the exact span, plus "did you mean" suggestions.
 */
#include "diag.h"

#include <stdio.h>
#include <string.h>

static int color;
static int nerrors, nwarnings;
static nnc_buf *capture;

void nnc_diag_set_color(int on) { color = on; }
void nnc_diag_capture(nnc_buf *b) { capture = b; }
int nnc_diag_error_count(void) { return nerrors; }
int nnc_diag_warning_count(void) { return nwarnings; }
void nnc_diag_reset(void) { nerrors = nwarnings = 0; }

static void out(const char *fmt, ...) NNC_PRINTF(1, 2);
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (capture)
		nnc_buf_vprintf(capture, fmt, ap);
	else
		vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void vout(const char *fmt, va_list ap)
{
	if (capture)
		nnc_buf_vprintf(capture, fmt, ap);
	else
		vfprintf(stderr, fmt, ap);
}

/* Prints line `loc.line` of the source and a ^~~ underline of the span. */
static void show_line(const nnc_source *src, nnc_loc loc)
{
	if (!src || !src->text || loc.line <= 0)
		return;
	const char *p = src->text, *end = src->text + src->len;
	for (int l = 1; l < loc.line && p < end; p++)
		if (*p == '\n')
			l++;
	if (p >= end && loc.line > 1)
		return;
	const char *e = p;
	while (e < end && *e != '\n' && *e != '\r')
		e++;
	int width = (int)(e - p);
	out(" %4d | %.*s\n", loc.line, width, p);
	out("      | ");
	int col = loc.col < 1 ? 1 : loc.col;
	int stop = (loc.end_line == loc.line && loc.end_col > col) ? loc.end_col : col + 1;
	if (loc.end_line > loc.line)
		stop = width + 1 > col ? width + 1 : col + 1;
	for (int c = 1; c < col; c++)
		out("%c", (c - 1 < width && p[c - 1] == '\t') ? '\t' : ' ');
	if (color)
		out("\033[1;32m");
	out("^");
	for (int c = col + 1; c < stop; c++)
		out("~");
	if (color)
		out("\033[0m");
	out("\n");
}

static void report(const nnc_source *src, nnc_loc loc, const char *kind, const char *kcolor,
		   const char *fmt, va_list ap)
{
	const char *path = src && src->path ? src->path : "<input>";
	if (color)
		out("\033[1m%s:%d:%d: %s%s:\033[0m\033[1m ", path, loc.line, loc.col, kcolor, kind);
	else
		out("%s:%d:%d: %s: ", path, loc.line, loc.col, kind);
	vout(fmt, ap);
	if (color)
		out("\033[0m");
	out("\n");
	show_line(src, loc);
}

void nnc_error(const nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(src, loc, "error", "\033[1;31m", fmt, ap);
	va_end(ap);
	nerrors++;
}

void nnc_warning(const nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(src, loc, "warning", "\033[1;35m", fmt, ap);
	va_end(ap);
	nwarnings++;
}

void nnc_note(const nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(src, loc, "note", "\033[1;36m", fmt, ap);
	va_end(ap);
}

void nnc_hint(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out(color ? "\033[1;36mhint:\033[0m " : "hint: ");
	vout(fmt, ap);
	va_end(ap);
	out("\n");
}

void nnc_error_plain(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out(color ? "\033[1;31mnnc: error:\033[0m " : "nnc: error: ");
	vout(fmt, ap);
	va_end(ap);
	out("\n");
	nerrors++;
}

static int edit_distance(const char *a, const char *b)
{
	int la = (int)strlen(a), lb = (int)strlen(b);
	if (la > 63 || lb > 63)
		return 99;
	int d[64][64];
	for (int i = 0; i <= la; i++)
		d[i][0] = i;
	for (int j = 0; j <= lb; j++)
		d[0][j] = j;
	for (int i = 1; i <= la; i++)
		for (int j = 1; j <= lb; j++) {
			int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < c)
				c = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < c)
				c = d[i][j - 1] + 1;
			/* adjacent transposition counts as one edit */
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
				c = d[i - 2][j - 2] + 1;
			d[i][j] = c;
		}
	return d[la][lb];
}

const char *nnc_suggest(const char *word, const char *const *choices)
{
	const char *best = NULL;
	int bestd = 1 << 30;
	for (int i = 0; choices[i]; i++) {
		int d = edit_distance(word, choices[i]);
		if (d < bestd) {
			bestd = d;
			best = choices[i];
		}
	}
	int len = (int)strlen(word);
	int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
	return bestd <= limit ? best : NULL;
}
