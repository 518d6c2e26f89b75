/*
 * output.c - see output.h: checked, atomic outputs and temporary files that
 * never outlive nnc.
 *
 * Why each rule:
 *   - `nnc x.nn -o x.nn` or `-c -o x.o --header x.o` used to overwrite the
 *     source or the object and exit 0; files are compared by device and
 *     inode (so symbolic and hard links are caught) and, for files that do
 *     not exist yet, by their path with the directory resolved;
 *   - a typo such as `-o notes.txt` must not silently replace a file nnc did
 *     not write: only empty files, ELF files and the text formats nnc writes
 *     (recognised by how they begin) are replaced without --force;
 *   - a compile interrupted during the link used to leave a 0-byte object
 *     in /tmp and possibly half an executable: outputs are written beside
 *     their final name and renamed, temporary names are kept in a fixed
 *     table that the signal handler can walk with unlink() alone (the only
 *     async-signal-safe way), and the linker runs in its own process group
 *     so the handler can stop it and everything it started.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemps, memmem, getdents64 */
#endif
#include "output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* ---- temporary files, visible to the signal handler ---- */

enum { MAX_TEMPS = 8 };
static char temp_name[MAX_TEMPS][PATH_MAX];
enum { TEMP_FILE = 1, TEMP_DIR = 2 };
static volatile sig_atomic_t temp_live[MAX_TEMPS]; /* 0: free, TEMP_FILE or TEMP_DIR */
static volatile sig_atomic_t child_pgid;

/* Empties the directory (one level: the linker's temporary files) and
 * removes it, with system calls alone (the signal handler runs this).  A
 * process of the linker that is still stopping may create a file between
 * the listing and rmdir: then the listing is taken again.  Once rmdir
 * succeeded nothing can be created there any more. */
static void remove_dir(const char *path)
{
	for (int tries = 0; tries < 100; tries++) {
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return;
		char buf[4096];
		ssize_t n;
		while ((n = getdents64(fd, buf, sizeof buf)) > 0)
			for (ssize_t off = 0; off < n;) {
				struct dirent64 *e = (struct dirent64 *)(buf + off);
				off += e->d_reclen;
				const char *name = e->d_name;
				if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
					continue;
				if (unlinkat(fd, name, 0) != 0)
					unlinkat(fd, name, AT_REMOVEDIR);
			}
		close(fd);
		if (rmdir(path) == 0 || errno == ENOENT)
			return;
	}
}

static void remove_temps(void)
{
	for (int i = 0; i < MAX_TEMPS; i++)
		if (temp_live[i]) {
			if (temp_live[i] == TEMP_DIR)
				remove_dir(temp_name[i]);
			else
				unlink(temp_name[i]);
			temp_live[i] = 0;
		}
}

static void on_fatal_signal(int sig)
{
	pid_t g = (pid_t)child_pgid;
	if (g > 0)
		kill(-g, SIGTERM);
	remove_temps();
	/* SA_RESETHAND restored the default action; the signal stays blocked
	 * until we return, and then ends the process with the usual status */
	raise(sig);
}

void nnc_out_init(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fatal_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&sa.sa_mask, sigs[i]);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct sigaction old;
		/* a signal ignored by whoever started us (nohup) stays ignored */
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
	/* a file-size limit (ulimit -f) makes writes fail with EFBIG, which is
	 * reported, instead of killing nnc with its temporary files in place */
	signal(SIGXFSZ, SIG_IGN);
	atexit(remove_temps);
}

void nnc_out_set_child(pid_t pgid) { child_pgid = (sig_atomic_t)pgid; }

void nnc_out_abandon(int status)
{
	remove_temps();
	_exit(status);
}

/* Creates a temporary file from `templ` (ending in XXXXXX and then
 * suffix_len more characters), or with `kind` TEMP_DIR a directory (no
 * suffix), in a free slot; the slot index, or -1 (errno set). */
static int make_temp(const char *templ, int suffix_len, int kind)
{
	int k = 0;
	while (k < MAX_TEMPS && temp_live[k])
		k++;
	if (k == MAX_TEMPS)
		nnc_internal_error(__FILE__, __LINE__, "more than %d temporary files", MAX_TEMPS);
	if (strlen(templ) >= sizeof temp_name[k]) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(temp_name[k], templ);
	/* live before the file exists: a signal in between unlinks a name
	 * that is not there, which is harmless */
	temp_live[k] = kind;
	if (kind == TEMP_DIR) {
		if (mkdtemp(temp_name[k]))
			return k;
		int e = errno;
		temp_live[k] = 0;
		errno = e;
		return -1;
	}
	int fd = mkstemps(temp_name[k], suffix_len);
	if (fd < 0) {
		int e = errno;
		temp_live[k] = 0;
		errno = e;
		return -1;
	}
	mode_t mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) != 0 || close(fd) != 0) {
		int e = errno;
		unlink(temp_name[k]);
		temp_live[k] = 0;
		errno = e;
		return -1;
	}
	return k;
}

static int slot_of(const char *tmp)
{
	for (int i = 0; i < MAX_TEMPS; i++)
		if (temp_live[i] && temp_name[i] == tmp)
			return i;
	nnc_internal_error(__FILE__, __LINE__, "%s is not a temporary file of nnc", tmp);
}

/* $TMPDIR, or /tmp */
static const char *temp_dir(void)
{
	const char *dir = getenv("TMPDIR");
	return dir && *dir ? dir : "/tmp";
}

const char *nnc_scratch_dir(void)
{
	const char *dir = temp_dir();
	int k = make_temp(nnc_sprintf("%s/nnc-XXXXXX", dir), 0, TEMP_DIR);
	if (k < 0) {
		fprintf(stderr, "nnc: error: cannot create a temporary directory in %s: %s\n", dir, strerror(errno));
		return NULL;
	}
	return temp_name[k];
}

void nnc_scratch_dir_done(const char *path)
{
	int k = slot_of(path);
	remove_dir(temp_name[k]);
	temp_live[k] = 0;
}

const char *nnc_scratch(const char *suffix)
{
	const char *dir = temp_dir();
	int k = make_temp(nnc_sprintf("%s/nnc-XXXXXX%s", dir, suffix), (int)strlen(suffix), TEMP_FILE);
	if (k < 0) {
		fprintf(stderr, "nnc: error: cannot create a temporary file in %s: %s\n", dir, strerror(errno));
		return NULL;
	}
	return temp_name[k];
}

/* ---- claimed files: the input and every output ---- */

typedef struct claimed {
	const char *path; /* as given */
	const char *role; /* "the input", "-o", "--header" */
	bool exists;
	bool special;     /* a device, FIFO or socket: written in place */
	dev_t dev;
	ino_t ino;
	const char *norm; /* resolved path: where the file is or would be */
	const char *tmp;  /* staged content, or NULL */
} claimed;

enum { MAX_CLAIMED = 8 };
static claimed files[MAX_CLAIMED];
static int n_files;

/* The first 512 bytes of an existing file are something nnc writes: an ELF
 * object, executable or library, or one of its text formats. */
static bool written_by_nnc(const unsigned char *h, size_t n)
{
	if (n == 0)
		return true;
	if (n >= 18 && !memcmp(h, "\177ELF", 4)) {
		unsigned type = h[5] == 2 ? (unsigned)h[16] << 8 | h[17] : (unsigned)h[17] << 8 | h[16];
		return type == 1 || type == 2 || type == 3; /* ET_REL, ET_EXEC, ET_DYN */
	}
	char text[513];
	memcpy(text, h, n);
	text[n] = 0;
	const char *nl = strchr(text, '\n');
	size_t first = nl ? (size_t)(nl - text) : n;
	static const char *const starts[] = {
		"; ModuleID = ", /* --emit-llvm */
		"\t.text",       /* -S */
		"\t.file",       /* -S */
		"(model ",       /* --emit-ast */
		"digraph ",      /* --emit-dot */
	};
	for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
		if (!strncmp(text, starts[i], strlen(starts[i])))
			return true;
	if (!strncmp(text, "model ", 6)) {
		/* --emit-ir: "model m  ; batch 64, ..."; --stats: "model m" and then
		 * "  parameters ..."; a .nn program also begins with "model m" */
		if (memmem(text, first, "; batch ", 8))
			return true;
		if (nl && !strncmp(nl + 1, "  parameters ", 13))
			return true;
	}
	/* the C header of -c */
	return !strncmp(text, "/*", 2) && strstr(text, "compiled by nnc") != NULL;
}

static bool replaceable(const char *path)
{
	unsigned char h[512];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, h, sizeof h);
	close(fd);
	return n >= 0 && written_by_nnc(h, (size_t)n);
}

static bool same_file(const claimed *a, const claimed *b)
{
	if (a->exists && b->exists)
		return a->dev == b->dev && a->ino == b->ino;
	return a->norm && b->norm && !strcmp(a->norm, b->norm);
}

/* Fills in f's identity; 0 or an exit status (message printed). */
static int identify(claimed *f, bool output)
{
	struct stat st;
	if (stat(f->path, &st) == 0) {
		f->exists = true;
		f->dev = st.st_dev;
		f->ino = st.st_ino;
		f->special = !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
		if (output && S_ISDIR(st.st_mode)) {
			fprintf(stderr, "nnc: error: %s '%s' is a directory\n", f->role, f->path);
			return NNC_EXIT_USAGE;
		}
		char *r = realpath(f->path, NULL);
		f->norm = nnc_strdup(r ? r : f->path);
		free(r);
		return 0;
	}
	if (!output)
		return 0; /* reading it reports the error */
	size_t len = strlen(f->path);
	if (len == 0 || f->path[len - 1] == '/') {
		fprintf(stderr, "nnc: error: %s '%s' is a directory\n", f->role, f->path);
		return NNC_EXIT_USAGE;
	}
	const char *slash = strrchr(f->path, '/');
	const char *dir = slash ? (slash == f->path ? "/" : nnc_strndup(f->path, (size_t)(slash - f->path))) : ".";
	const char *base = slash ? slash + 1 : f->path;
	char *r = realpath(dir, NULL);
	if (!r) {
		fprintf(stderr, "nnc: error: cannot write %s: directory '%s': %s\n", f->path, dir, strerror(errno));
		return NNC_EXIT_INTERNAL;
	}
	f->norm = nnc_sprintf("%s/%s", strcmp(r, "/") ? r : "", base);
	free(r);
	return 0;
}

int nnc_out_claim_input(const char *path)
{
	claimed *f = &files[n_files++];
	*f = (claimed){.path = path, .role = "the input"};
	return identify(f, false);
}

int nnc_out_claim(const char *path, const char *role, bool force)
{
	if (n_files == MAX_CLAIMED)
		nnc_internal_error(__FILE__, __LINE__, "more than %d files", MAX_CLAIMED);
	claimed *f = &files[n_files];
	*f = (claimed){.path = path, .role = role};
	int rc = identify(f, true);
	if (rc)
		return rc;
	for (int i = 0; i < n_files; i++) {
		if (!same_file(f, &files[i]))
			continue;
		if (!strcmp(files[i].role, "the input"))
			fprintf(stderr, "nnc: error: %s '%s' is the input file '%s'; refusing to overwrite it\n", role, path,
				files[i].path);
		else
			fprintf(stderr, "nnc: error: %s '%s' and %s '%s' are the same file\n", files[i].role,
				files[i].path, role, path);
		return NNC_EXIT_USAGE;
	}
	if (f->exists && !f->special && !force && !replaceable(f->norm)) {
		fprintf(stderr,
			"nnc: error: %s '%s' exists and is not a file nnc writes (an executable, object, C header, "
			"assembly, LLVM IR or dump); not replacing it (--force does)\n",
			role, path);
		return NNC_EXIT_USAGE;
	}
	/* the directory must take a new file (the temporary one) */
	const char *slash = strrchr(f->norm, '/');
	const char *dir = slash && slash != f->norm ? nnc_strndup(f->norm, (size_t)(slash - f->norm)) : "/";
	if (!f->special && access(dir, W_OK | X_OK) != 0) {
		fprintf(stderr, "nnc: error: cannot write %s: directory '%s': %s\n", path, dir, strerror(errno));
		return NNC_EXIT_INTERNAL;
	}
	n_files++;
	return 0;
}

static claimed *claimed_output(const char *path)
{
	for (int i = 0; i < n_files; i++)
		if (files[i].path == path || !strcmp(files[i].path, path))
			if (strcmp(files[i].role, "the input"))
				return &files[i];
	nnc_internal_error(__FILE__, __LINE__, "output %s was not claimed", path);
}

const char *nnc_out_stage(const char *path)
{
	claimed *f = claimed_output(path);
	if (f->special) {
		f->tmp = nnc_scratch("");
		return f->tmp;
	}
	const char *slash = strrchr(f->norm, '/');
	const char *templ = nnc_sprintf("%.*s/.%s.nnc-XXXXXX", (int)(slash - f->norm), f->norm, slash + 1);
	int k = make_temp(templ, 0, TEMP_FILE);
	if (k < 0) {
		fprintf(stderr, "nnc: error: cannot write %s: %s\n", path, strerror(errno));
		return NULL;
	}
	f->tmp = temp_name[k];
	return f->tmp;
}

/* Writes all of data to fd; 0 or errno. */
static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The output a temporary file stands for, for messages. */
static const char *dest_of(const char *tmp)
{
	for (int i = 0; i < n_files; i++)
		if (files[i].tmp == tmp)
			return files[i].path;
	return tmp;
}

int nnc_out_write(const char *tmp, const void *data, size_t len)
{
	slot_of(tmp);
	int fd = open(tmp, O_WRONLY | O_TRUNC);
	int e = fd < 0 ? errno : write_all(fd, data, len);
	if (fd >= 0 && close(fd) != 0 && !e)
		e = errno;
	if (e) {
		fprintf(stderr, "nnc: error: cannot write %s: %s\n", dest_of(tmp), strerror(e));
		return NNC_EXIT_INTERNAL;
	}
	return 0;
}

/* Copies the file `from` into the device or FIFO `to`. */
static int copy_into(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = in < 0 ? -1 : open(to, O_WRONLY);
	int e = in < 0 || out < 0 ? errno : 0;
	char buf[1 << 16];
	ssize_t n = 0;
	while (!e && (n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		e = n < 0 ? errno : write_all(out, buf, (size_t)n);
	}
	if (out >= 0 && close(out) != 0 && !e)
		e = errno;
	if (in >= 0)
		close(in);
	return e;
}

int nnc_out_commit(void)
{
	for (int i = 0; i < n_files; i++) {
		claimed *f = &files[i];
		if (!f->tmp)
			continue;
		int k = slot_of(f->tmp), e = 0;
		if (f->special) {
			e = copy_into(f->tmp, f->path);
			unlink(f->tmp);
		} else {
			/* the data on disk before the name, so that a crash cannot
			 * leave an empty file where the old one was */
			int fd = open(f->tmp, O_RDONLY);
			if (fd < 0 || fsync(fd) != 0)
				e = errno;
			if (fd >= 0)
				close(fd);
			if (!e && rename(f->tmp, f->norm) != 0)
				e = errno;
			if (e)
				unlink(f->tmp);
		}
		temp_live[k] = 0;
		f->tmp = NULL;
		if (e) {
			fprintf(stderr, "nnc: error: cannot write %s: %s\n", f->path, strerror(e));
			return NNC_EXIT_INTERNAL;
		}
	}
	return 0;
}

int nnc_out_close_stdout(void)
{
	errno = 0;
	bool lost = fflush(stdout) != 0 || ferror(stdout);
	int e = errno;
	/* closing a stdout that was never open (nnc >&-) loses nothing */
	if (fclose(stdout) != 0 && !lost && errno != EBADF) {
		lost = true;
		e = errno;
	}
	if (lost) {
		fprintf(stderr, "nnc: error: cannot write to standard output: %s\n", e ? strerror(e) : "write error");
		return NNC_EXIT_INTERNAL;
	}
	return 0;
}
