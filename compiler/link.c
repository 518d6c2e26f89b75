/*
 * link.c - linking a model's object with the runtime into an executable,
 * through the system C compiler (which knows the C library and OpenMP).
 *
 * The runtime is looked for next to the nnc executable in an installed tree
 * (<prefix>/bin/nnc -> <prefix>/lib/libnnrt.a), then in the build tree nnc
 * was built in.  NNC_RUNTIME_DIR overrides both.  A runtime built with MPI
 * has libnnrt_mpi.a and libnnrt_mpi.link (the MPI libraries) beside it:
 * the binary then links them and can run under mpirun (docs/distributed.md);
 * NNC_MPI=0 leaves them out.
 *
 * The linker runs in a process group of its own, so that a fatal signal to
 * nnc stops it and whatever it started (collect2, ld) before the temporary
 * files go (output.c); a Ctrl-C on the terminal reaches it through nnc.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "output.h"

extern char **environ;

static bool file_exists(const char *p) { return access(p, R_OK) == 0; }

/* Directory holding libnnrt.a, or NULL. */
static const char *runtime_dir(void)
{
	const char *env = getenv("NNC_RUNTIME_DIR");
	if (env && *env)
		return env;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			const char *lib = nnc_sprintf("%s/../%s", exe, NNC_INSTALL_LIBDIR);
			if (file_exists(nnc_sprintf("%s/libnnrt.a", lib)))
				return lib;
			const char *build = nnc_sprintf("%s/../runtime", exe);
			if (file_exists(nnc_sprintf("%s/libnnrt.a", build)))
				return build;
		}
	}
	if (file_exists(NNC_BUILD_RUNTIME_DIR "/libnnrt.a"))
		return NNC_BUILD_RUNTIME_DIR;
	return NULL;
}

/* The MPI link arguments of a runtime built with MPI (one a line of
 * libnnrt_mpi.link), at most max; -1 without MPI support (or NNC_MPI=0). */
static int mpi_link_args(const char *dir, char **args, int max)
{
	const char *env = getenv("NNC_MPI");
	if ((env && !strcmp(env, "0")) || !file_exists(nnc_sprintf("%s/libnnrt_mpi.a", dir)))
		return -1;
	FILE *f = fopen(nnc_sprintf("%s/libnnrt_mpi.link", dir), "r");
	if (!f)
		return -1;
	char line[PATH_MAX];
	int n = 0;
	while (n < max && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (*line)
			args[n++] = (char *)nnc_sprintf("%s", line);
	}
	fclose(f);
	return n;
}

int nnc_link(const char *const *objs, int n, const char *exe)
{
	const char *dir = runtime_dir();
	if (!dir) {
		fprintf(stderr, "nnc: error: cannot find the runtime library libnnrt.a "
				"(looked next to nnc and in %s); set NNC_RUNTIME_DIR\n", NNC_BUILD_RUNTIME_DIR);
		return NNC_EXIT_INTERNAL;
	}
	const char *cc = getenv("CC");
	if (!cc || !*cc)
		cc = "cc";
	const char *lib = nnc_sprintf("%s/libnnrt.a", dir);
	enum { MAX_MPI_ARGS = 16 };
	char *argv[10 + NNC_EMIT_MAX_PARTS + MAX_MPI_ARGS] = {(char *)cc, "-o", (char *)exe};
	int argc = 3;
	for (int i = 0; i < n; i++)
		argv[argc++] = (char *)objs[i];
	char *mpi[MAX_MPI_ARGS];
	int nmpi = mpi_link_args(dir, mpi, MAX_MPI_ARGS);
	if (nmpi >= 0) { /* the transport, which libnnrt.a only refers to weakly */
		argv[argc++] = "-Wl,--undefined=nnrt_dist_mpi";
		argv[argc++] = (char *)nnc_sprintf("%s/libnnrt_mpi.a", dir);
	}
	argv[argc++] = (char *)lib;
	argv[argc++] = "-fopenmp";
	argv[argc++] = "-lz";
	argv[argc++] = "-lm";
	for (int i = 0; i < nmpi; i++)
		argv[argc++] = mpi[i];
	argv[argc] = NULL;
	/* gcc's temporary files go into a directory of nnc's own, removed
	 * with whatever is in it once the linker is done or stopped */
	const char *scratch = nnc_scratch_dir();
	if (!scratch)
		return NNC_EXIT_INTERNAL;
	int nenv = 0;
	while (environ[nenv])
		nenv++;
	char **envp = nnc_alloc((size_t)(nenv + 2) * sizeof *envp);
	int ne = 0;
	for (int i = 0; i < nenv; i++)
		if (strncmp(environ[i], "TMPDIR=", 7))
			envp[ne++] = environ[i];
	envp[ne++] = (char *)nnc_sprintf("TMPDIR=%s", scratch);
	envp[ne] = NULL;
	pid_t pid;
	/* The fatal signals stay blocked from before the spawn until the
	 * handler knows the linker's group: a signal in between (a loaded
	 * machine can hold the parent back while the linker runs) would
	 * otherwise leave the linker running after nnc died.  The linker
	 * itself starts with the mask nnc had. */
	sigset_t fatal, before;
	sigemptyset(&fatal);
	sigaddset(&fatal, SIGINT);
	sigaddset(&fatal, SIGTERM);
	sigaddset(&fatal, SIGHUP);
	sigaddset(&fatal, SIGQUIT);
	sigprocmask(SIG_BLOCK, &fatal, &before);
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &before);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
	int rc = posix_spawnp(&pid, cc, NULL, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	if (rc == 0)
		nnc_out_set_child(pid);
	sigprocmask(SIG_SETMASK, &before, NULL);
	if (rc != 0) {
		nnc_scratch_dir_done(scratch);
		fprintf(stderr, "nnc: error: cannot run the linker '%s': %s\n", cc, strerror(rc));
		return NNC_EXIT_INTERNAL;
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			nnc_out_set_child(0);
			nnc_scratch_dir_done(scratch);
			fprintf(stderr, "nnc: error: waiting for the linker: %s\n", strerror(errno));
			return NNC_EXIT_INTERNAL;
		}
	nnc_out_set_child(0);
	nnc_scratch_dir_done(scratch);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "nnc: error: linking %s failed (%s %s %s ...)\n", exe, cc, objs[0], lib);
		return NNC_EXIT_INTERNAL;
	}
	return 0;
}
