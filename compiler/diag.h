/*
 * diag.h - user-facing diagnostics for .nn programs.
 *
 * Every user error is printed as
 *
 *     FILE:LINE:COL: error: MESSAGE
 *      LINE | source text of that line
 *           |     ^~~~~~
 *     FILE:LINE:COL: note: ...        (optional, e.g. where an operand was defined)
 *     hint: ...                       (optional)
 *
 * and counted; phases keep going where they can so that one run reports
 * several independent errors.  A warning ("FILE:LINE:COL: warning: ...",
 * same layout) points at something legal but almost certainly unintended,
 * such as a value that is never used; warnings are counted apart and never
 * change the exit status.  Source text quoted in a message or echoed is
 * escaped (control bytes and invalid UTF-8 as \xHH).  Output goes to the current sink (stderr by
 * default; tests capture it into a buffer).  docs/diagnostics.md shows
 * examples.
 */
#ifndef NNC_DIAG_H
#define NNC_DIAG_H

#include "ast.h"
#include "util.h"

void nnc_diag_set_color(int on); /* 1 = ANSI colours, 0 = none */
/* Send diagnostics to `b` instead of stderr (NULL restores stderr). */
void nnc_diag_capture(nnc_buf *b);
int nnc_diag_error_count(void);
int nnc_diag_warning_count(void);
void nnc_diag_reset(void); /* both counts back to 0, printing on again */

/* After this many errors the next one prints "too many errors" and nothing
 * more is printed (errors are still counted) until nnc_diag_reset. */
#define NNC_MAX_ERRORS 20
/* Whether that limit was passed: the parser and the checks stop early. */
bool nnc_diag_too_many(void);

void nnc_error(const nnc_source *src, nnc_loc loc, const char *fmt, ...) NNC_PRINTF(3, 4);
void nnc_warning(const nnc_source *src, nnc_loc loc, const char *fmt, ...) NNC_PRINTF(3, 4);
void nnc_note(const nnc_source *src, nnc_loc loc, const char *fmt, ...) NNC_PRINTF(3, 4);
/* A hint line attached to the previous error or warning. */
void nnc_hint(const char *fmt, ...) NNC_PRINTF(1, 2);
/* An error not tied to a place in the source (e.g. cannot open the file). */
void nnc_error_plain(const char *fmt, ...) NNC_PRINTF(1, 2);

/*
 * Where the checks are: inside the expansion of a block called at `loc`.
 * While contexts are pushed, every error and warning is followed (after
 * its own notes and hint) by one note per context, innermost first:
 *
 *     FILE:21:9: note: in block 'residual' called here
 *
 * `what` is the note's text.  Pops match pushes; nnc_diag_flush prints
 * what an error still owes before output is read.
 */
void nnc_diag_push_context(const nnc_source *src, nnc_loc loc, const char *what);
void nnc_diag_pop_context(void);
void nnc_diag_flush(void);

/* Closest of `choices` (NULL-terminated) to `word` by edit distance, or NULL
 * if none is close enough to suggest. */
const char *nnc_suggest(const char *word, const char *const *choices);

/* The same, one choice at a time, for choices not in an array (sema's
 * names): begin, try each, then read `best` (NULL if none is close). */
typedef struct nnc_suggester {
	const char *word;
	int len;
	int limit;        /* the largest distance worth suggesting */
	const char *best; /* the closest so far, NULL if none within limit */
	int bestd;        /* its distance, limit + 1 while there is none */
} nnc_suggester;
void nnc_suggest_begin(nnc_suggester *sg, const char *word);
void nnc_suggest_try(nnc_suggester *sg, const char *choice);

#endif
