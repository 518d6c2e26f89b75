/*
 * diag.c - printing of user errors with the source line and a caret
 * underline under the exact span, plus "did you mean" suggestions.
 *
 * What a program's author wrote reaches the terminal only escaped: a control
 * byte (an escape sequence could clear the screen or retitle the window), a
 * C1 control written in UTF-8, or a byte that is not valid UTF-8 is printed
 * as \xHH, both in the echoed source line and in messages that quote names
 * or strings; the caret line pads such a byte with four spaces so that it
 * still lines up.  A tab stays a tab in both lines.
 *
 * Bounded output for hostile input: after NNC_MAX_ERRORS errors one line
 * says so and nothing more is printed (the phases stop early too, see
 * nnc_diag_too_many); a source line is found through an index built once per
 * file, so printing N diagnostics costs N lines, not N times the file; and
 * only a window of a very long line is shown around the caret.
 *
 * Errors inside a block's expansion carry notes naming the calls that led
 * there (nnc_diag_push_context); they are printed after the error's own
 * notes and hint, so they wait until the next diagnostic, push, pop or
 * nnc_diag_flush.
 */
#include "diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bytes of a long line shown before and after the caret. */
#define WINDOW_BEFORE 120
#define WINDOW_AFTER 200

static int color;
static int nerrors, nwarnings;
static bool muted; /* over the error limit: print nothing until reset */
static nnc_buf *capture;

/* The block calls being expanded (innermost last), and how many of them the
 * last error or warning still owes its notes for (they follow its own notes
 * and hint, so they are printed at the next report, push, pop or flush). */
static struct {
	const nnc_source *src;
	nnc_loc loc;
	const char *what;
} *ctx;
static int nctx, capctx, owed;

static void out(const char *fmt, ...) NNC_PRINTF(1, 2);

/* Where every line of one source starts (index i: line i + 1). */
static struct {
	const char *text;
	long len;
	long *start;
	int n, cap;
} lines;

void nnc_diag_set_color(int on) { color = on; }
void nnc_diag_capture(nnc_buf *b) { capture = b; }
int nnc_diag_error_count(void) { return nerrors; }
int nnc_diag_warning_count(void) { return nwarnings; }
bool nnc_diag_too_many(void) { return muted; }

static void report(const nnc_source *src, nnc_loc loc, const char *kind, const char *kcolor,
		   const char *fmt, va_list ap);

static void note_plain(const nnc_source *src, nnc_loc loc, const char *fmt, ...) NNC_PRINTF(3, 4);
static void note_plain(const nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(src, loc, "note", "\033[1;36m", fmt, ap);
	va_end(ap);
}

void nnc_diag_flush(void)
{
	int n = owed;
	owed = 0;
	/* a deep nesting is shown by its 8 innermost calls and the outermost */
	for (int i = nctx - 1; i >= nctx - n && i >= 0 && !muted; i--) {
		if (i == nctx - 9 && i > nctx - n) {
			out("      (%d more calls)\n", i - (nctx - n));
			i = nctx - n;
		}
		note_plain(ctx[i].src, ctx[i].loc, "%s", ctx[i].what);
	}
}

void nnc_diag_push_context(const nnc_source *src, nnc_loc loc, const char *what)
{
	nnc_diag_flush();
	if (nctx == capctx) {
		capctx = capctx ? 2 * capctx : 16;
		void *p = realloc(ctx, sizeof *ctx * (size_t)capctx);
		if (!p)
			nnc_internal_error(__FILE__, __LINE__, "out of memory");
		ctx = p;
	}
	ctx[nctx].src = src;
	ctx[nctx].loc = loc;
	ctx[nctx].what = what;
	nctx++;
}

void nnc_diag_pop_context(void)
{
	nnc_diag_flush();
	NNC_ASSERT(nctx > 0);
	nctx--;
}

void nnc_diag_reset(void)
{
	nctx = owed = 0;
	nerrors = nwarnings = 0;
	muted = false;
	lines.text = NULL; /* the next source may reuse the last one's memory */
}

static void out_raw(const char *s, size_t n)
{
	if (capture)
		nnc_buf_printf(capture, "%.*s", (int)n, s);
	else
		fwrite(s, 1, n, stderr);
}

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

/*
 * How the byte at p[i] (of a line p[0..n)) is shown: returns the number of
 * bytes it starts and sets *escape if they are printed as \xHH each (4
 * columns apiece) rather than as they are (1 column for the whole
 * character, 0 for its continuation bytes).
 */
static int char_len(const unsigned char *p, long i, long n, bool *escape)
{
	unsigned char c = p[i];
	*escape = false;
	if (c == '\t' || (c >= 0x20 && c < 0x7f))
		return 1;
	int len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	bool ok = len > 0 && i + len <= n;
	for (int k = 1; ok && k < len; k++)
		ok = (p[i + k] & 0xc0) == 0x80;
	if (ok && c == 0xc2 && p[i + 1] < 0xa0) /* U+0080..U+009F: C1 controls */
		ok = false;
	if (!ok) {
		*escape = true;
		return 1;
	}
	return len;
}

/* Prints `s[0..n)` with control bytes and invalid UTF-8 escaped. */
static void out_escaped(const char *s, long n)
{
	const unsigned char *p = (const unsigned char *)s;
	long i = 0, run = 0; /* p[run..i) is printable as it is */
	while (i < n) {
		bool escape;
		int len = char_len(p, i, n, &escape);
		if (!escape || p[i] == '\t') {
			i += len;
			continue;
		}
		out_raw(s + run, (size_t)(i - run));
		out("\\x%02x", p[i]);
		run = ++i;
	}
	out_raw(s + run, (size_t)(i - run));
}

/*
 * The line under bytes [from, stop) of a source line s[0..n): blanks up
 * to byte `caret` (a tab for a tab, so that the caret lines up), then '^'
 * and '~' to `stop`.  Bytes past the end of the line count one column each.
 */
static void out_underline(const char *s, long n, long from, long caret, long stop)
{
	const unsigned char *p = (const unsigned char *)s;
	bool first = true;
	for (long i = from; i < stop || first;) {
		bool escape = false;
		int len = i < n ? char_len(p, i, n, &escape) : 1;
		int width = escape ? 4 : 1;
		if (i < caret) {
			if (i < n && p[i] == '\t')
				out("\t");
			else
				out("%*s", width, "");
		} else {
			if (first && color)
				out("\033[1;32m");
			out("%c%.*s", first ? '^' : '~', width - 1, "~~~");
			first = false;
		}
		i += len;
	}
	if (color)
		out("\033[0m");
}

/* Indexes the line starts of `src` unless the last source was the same. */
static void index_lines(const nnc_source *src)
{
	if (lines.text == src->text && lines.len == src->len)
		return;
	lines.text = src->text;
	lines.len = src->len;
	lines.n = 0;
	for (long i = 0;;) {
		if (lines.n == lines.cap) {
			lines.cap = lines.cap ? lines.cap * 2 : 1024;
			long *s = realloc(lines.start, sizeof *s * (size_t)lines.cap);
			if (!s)
				nnc_internal_error(__FILE__, __LINE__, "out of memory indexing %ld bytes", src->len);
			lines.start = s;
		}
		lines.start[lines.n++] = i;
		/* a line ends at \n, \r\n or \r, as in grammar/lexer.l */
		while (i < src->len && src->text[i] != '\n' && src->text[i] != '\r')
			i++;
		if (i >= src->len)
			break;
		i += src->text[i] == '\r' && i + 1 < src->len && src->text[i + 1] == '\n' ? 2 : 1;
	}
	nnc_work.line_scan_bytes += src->len;
}

/* Prints line `loc.line` of the source and a ^~~ underline of the span. */
static void show_line(const nnc_source *src, nnc_loc loc)
{
	if (!src || !src->text || loc.line <= 0)
		return;
	index_lines(src);
	if (loc.line > lines.n)
		return;
	long b = lines.start[loc.line - 1];
	if (b >= src->len && loc.line > 1)
		return;
	const char *p = src->text + b;
	long width = 0;
	while (b + width < src->len && p[width] != '\n' && p[width] != '\r')
		width++;
	nnc_work.line_scan_bytes += width;
	long col = loc.col < 1 ? 1 : loc.col;
	long stop = (loc.end_line == loc.line && loc.end_col > col) ? loc.end_col : col + 1;
	if (loc.end_line > loc.line)
		stop = width + 1 > col ? width + 1 : col + 1;

	/* the window of a long line: bytes [from, to) */
	long from = 0, to = width;
	if (col - 1 > WINDOW_BEFORE && width > WINDOW_BEFORE + WINDOW_AFTER) {
		from = col - 1 - WINDOW_BEFORE;
		while (from > 0 && ((unsigned char)p[from] & 0xc0) == 0x80) /* not inside a character */
			from--;
	}
	if (to - from > WINDOW_BEFORE + WINDOW_AFTER) {
		to = (col - 1 > from ? col - 1 : from) + WINDOW_AFTER;
		if (to > width) /* a caret near the end of a long line */
			to = width;
		while (to < width && ((unsigned char)p[to] & 0xc0) == 0x80)
			to++;
	}
	if (stop - 1 > to)
		stop = to + 1;
	const char *dots = "...";
	out(" %4d | %s", loc.line, from > 0 ? dots : "");
	out_escaped(p + from, to - from);
	out("%s\n", to < width ? dots : "");
	out("      | %s", from > 0 ? "   " : "");
	out_underline(p, width, from, col - 1, stop - 1);
	out("\n");
}

/* The message, formatted, with what came from the program escaped. */
static void vout_escaped(const char *fmt, va_list ap)
{
	nnc_buf m = {0};
	nnc_buf_vprintf(&m, fmt, ap);
	out_escaped(m.data, (long)m.len);
	nnc_buf_free(&m);
}

static void report(const nnc_source *src, nnc_loc loc, const char *kind, const char *kcolor,
		   const char *fmt, va_list ap)
{
	const char *path = src && src->path ? src->path : "<input>";
	if (color)
		out("\033[1m");
	out_escaped(path, (long)strlen(path));
	if (color)
		out(":%d:%d: %s%s:\033[0m\033[1m ", loc.line, loc.col, kcolor, kind);
	else
		out(":%d:%d: %s: ", loc.line, loc.col, kind);
	vout_escaped(fmt, ap);
	if (color)
		out("\033[0m");
	out("\n");
	show_line(src, loc);
}

/* Counts an error; false if it is past the limit and must not be printed
 * (the first one past it says so). */
static bool count_error(const char *path)
{
	nerrors++;
	if (nerrors <= NNC_MAX_ERRORS)
		return true;
	if (!muted) {
		muted = true;
		out(color ? "\033[1;31mnnc: error:\033[0m " : "nnc: error: ");
		if (path) {
			out_escaped(path, (long)strlen(path));
			out(": ");
		}
		out("too many errors; stopping after the first %d\n", NNC_MAX_ERRORS);
	}
	return false;
}

void nnc_error(const nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
	nnc_diag_flush();
	if (!count_error(src ? src->path : NULL))
		return;
	va_list ap;
	va_start(ap, fmt);
	report(src, loc, "error", "\033[1;31m", fmt, ap);
	va_end(ap);
	owed = nctx;
}

void nnc_warning(const nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
	nnc_diag_flush();
	nwarnings++;
	if (muted)
		return;
	va_list ap;
	va_start(ap, fmt);
	report(src, loc, "warning", "\033[1;35m", fmt, ap);
	va_end(ap);
	owed = nctx;
}

void nnc_note(const nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
	if (muted)
		return;
	va_list ap;
	va_start(ap, fmt);
	report(src, loc, "note", "\033[1;36m", fmt, ap);
	va_end(ap);
}

void nnc_hint(const char *fmt, ...)
{
	if (muted)
		return;
	va_list ap;
	va_start(ap, fmt);
	out(color ? "\033[1;36mhint:\033[0m " : "hint: ");
	vout_escaped(fmt, ap);
	va_end(ap);
	out("\n");
}

void nnc_error_plain(const char *fmt, ...)
{
	nnc_diag_flush();
	if (!count_error(NULL))
		return;
	va_list ap;
	va_start(ap, fmt);
	out(color ? "\033[1;31mnnc: error:\033[0m " : "nnc: error: ");
	vout_escaped(fmt, ap);
	va_end(ap);
	out("\n");
}

/*
 * The optimal-string-alignment distance between a[0..la) and b[0..lb)
 * (an adjacent transposition is one edit), or max + 1 if it is more than
 * `max`.  Rows stop as soon as two in a row exceed `max` (no later row can
 * come back under it), so comparing unrelated names costs a few rows.
 */
static int edit_distance(const char *a, int la, const char *b, int lb, int max)
{
	if (la > 63 || lb > 63 || la - lb > max || lb - la > max)
		return max + 1;
	int d[64][64];
	for (int i = 0; i <= la; i++)
		d[i][0] = i;
	for (int j = 0; j <= lb; j++)
		d[0][j] = j;
	int prev_min = 0;
	for (int i = 1; i <= la; i++) {
		int row_min = d[i][0];
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
			if (c < row_min)
				row_min = c;
		}
		if (row_min > max && prev_min + 1 > max)
			return max + 1;
		prev_min = row_min;
	}
	return d[la][lb] <= max ? d[la][lb] : max + 1;
}

void nnc_suggest_begin(nnc_suggester *sg, const char *word)
{
	int len = (int)strlen(word);
	*sg = (nnc_suggester){word, len, len <= 3 ? 1 : len <= 6 ? 2 : 3, NULL, 0};
	sg->bestd = sg->limit + 1;
}

void nnc_suggest_try(nnc_suggester *sg, const char *choice)
{
	nnc_work.suggest_compares++;
	/* a tie keeps the earlier choice */
	int d = edit_distance(sg->word, sg->len, choice, (int)strlen(choice), sg->bestd - 1);
	if (d < sg->bestd) {
		sg->bestd = d;
		sg->best = choice;
	}
}

const char *nnc_suggest(const char *word, const char *const *choices)
{
	nnc_suggester sg;
	nnc_suggest_begin(&sg, word);
	for (int i = 0; choices[i]; i++)
		nnc_suggest_try(&sg, choices[i]);
	return sg.best;
}
