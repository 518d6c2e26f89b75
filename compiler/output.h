/*
 * output.h - the files nnc writes, written so that nothing is lost:
 *
 *   - every output is checked before the compile starts: it must not be the
 *     input or another output (the same inode when the file exists, the same
 *     resolved path when it does not), its directory must exist, and a file
 *     already there is replaced only if it is something nnc writes (see
 *     nnc_out_claim) unless --force;
 *   - every output is written to a temporary file beside it and renamed over
 *     it at the end, so an interrupted or failed compile leaves the old file
 *     or the new one, never a part;
 *   - temporary files are removed on every exit, and on SIGINT, SIGTERM,
 *     SIGHUP and SIGQUIT by a handler that only unlinks the names it knows
 *     and stops the linker, then dies of the same signal.
 *
 * Errors are printed here; the functions return 0 or nnc's exit status.
 */
#ifndef NNC_OUTPUT_H
#define NNC_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Installs the signal handlers and the exit-time cleanup. */
void nnc_out_init(void);

/* Records the input file, so that no output can be it. */
int nnc_out_claim_input(const char *path);
/* Checks that `path` may be written as the output `role` (a flag name such
 * as "-o" or "--header", used in messages) and records it. */
int nnc_out_claim(const char *path, const char *role, bool force);

/* A temporary file that will replace the claimed output `path` when
 * nnc_out_commit() runs, or NULL (message printed).  Mode 0666 & ~umask. */
const char *nnc_out_stage(const char *path);
/* Writes all of data into a temporary file from nnc_out_stage/nnc_scratch. */
int nnc_out_write(const char *tmp, const void *data, size_t len);
/* Renames every staged file over its output (or copies it into a device
 * such as /dev/null). */
int nnc_out_commit(void);

/* A scratch file in $TMPDIR (default /tmp) ending in `suffix`, removed at
 * exit, or NULL (message printed). */
const char *nnc_scratch(const char *suffix);

/* A private directory in $TMPDIR for the linker's temporary files, removed
 * with everything in it by nnc_scratch_dir_done, at exit and on a fatal
 * signal (after the linker was stopped), or NULL (message printed).  The
 * linker's own clean-up cannot be relied on: a SIGTERM at the wrong moment
 * left gcc's collect2 files behind. */
const char *nnc_scratch_dir(void);
void nnc_scratch_dir_done(const char *path);

/* Ends nnc now with `status` after removing its temporary files, without
 * running exit()'s handlers and destructors: for a fatal error on any
 * thread (LLVM's, during parallel code generation, where exit() would tear
 * LLVM down under the other threads). */
__attribute__((noreturn)) void nnc_out_abandon(int status);

/* The linker's process group while it runs (0: none): a fatal signal stops
 * it before the temporary files are removed. */
void nnc_out_set_child(pid_t pgid);

/* Flushes and closes stdout; 3 (message printed) if anything written to it
 * was lost, such as on a full disk or /dev/full. */
int nnc_out_close_stdout(void);

#endif
