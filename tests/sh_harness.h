/*
 * sh_harness.h - tests that run programs the way a user does: through the
 * shell, in a temporary directory of their own.
 */
#ifndef NNC_TEST_SH_HARNESS_H
#define NNC_TEST_SH_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Runs the shell command printf(fmt, ...) with stdout and stderr captured
 * into *out (malloc'd; pass NULL to discard).  Returns the exit status, or
 * 128 + the number of the signal that ended the command. */
int sh_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* sh_run with the arguments in a va_list. */
int sh_vrun(char **out, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* sh_run into *out, freeing what *out held first. */
int sh_rerun(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Creates /tmp/nnc-TAG-XXXXXX into buf (fails the test if it cannot). */
void sh_mktemp(char *buf, size_t size, const char *tag);
/* Removes a directory made by sh_mktemp, with everything in it. */
void sh_rmtree(const char *dir);

/* Line k (0-based) of s into buf (cut to cap - 1 bytes); false if s has no
 * line k. */
bool sh_nth_line(const char *s, int k, char *buf, size_t cap);
/* s has a line equal to `line`. */
bool sh_has_line(const char *s, const char *line);
/* The number after "KEY " in the last line of text that has the field (an
 * epoch line's "test_acc 0.9123"); fails the test if no line has it. */
double sh_last_number(const char *text, const char *key);

#endif
