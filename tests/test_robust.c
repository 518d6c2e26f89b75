#define _POSIX_C_SOURCE 200809L
/*
 * test_robust.c - nothing is lost and bad input never crashes, tested on
 * real training binaries built by nnc:
 *   - kill -9 at random moments while checkpointing every epoch: the
 *     checkpoint is always absent or loads cleanly, and the temporary files
 *     the killed processes leave behind are removed by the next run;
 *   - a run interrupted (by --epochs, and by kill -9) and resumed ends with
 *     a checkpoint identical byte for byte to an uninterrupted run's;
 *   - a diverging run stops naming epoch and step and keeps the last good
 *     checkpoint;
 *   - damaged data files (IDX with wrong sizes, corrupt gzip, CSV values out
 *     of range) and damaged checkpoints exit 1 with a message naming the
 *     file, never with a signal.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "sh_harness.h"

static char dir[64];

static void setup(void)
{
	sh_mktemp(dir, sizeof dir, "robust");
}

static void teardown(void)
{
	sh_rmtree(dir);
}

TestSuite(robust, .init = setup, .fini = teardown, .timeout = 600);

/* dir/NAME, valid for the next 63 calls: keep a copy (PATH_COPY) of
 * anything needed longer. */
static const char *path(const char *name)
{
	static char buf[64][256];
	static int k;
	char *p = buf[k++ % 64];
	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

#define PATH_COPY(var, name) \
	char var[256]; \
	snprintf(var, sizeof var, "%s", path(name))


static void write_file(const char *p, const void *data, size_t n)
{
	FILE *f = fopen(p, "wb");
	cr_assert_not_null(f, "cannot write %s", p);
	cr_assert_eq(fwrite(data, 1, n, f), n);
	fclose(f);
}

static unsigned char *read_file(const char *p, size_t *n)
{
	FILE *f = fopen(p, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = malloc(*n + 1);
	cr_assert_eq(fread(b, 1, *n, f), *n);
	fclose(f);
	return b;
}

static bool same_bytes(const char *a, const char *b)
{
	size_t na, nb;
	unsigned char *x = read_file(a, &na), *y = read_file(b, &nb);
	bool same = x && y && na == nb && memcmp(x, y, na) == 0;
	free(x);
	free(y);
	return same;
}

/* Compiles `src` (a .nn text) into dir/NAME. */
static void compile(const char *name, const char *src)
{
	char nn[64];
	snprintf(nn, sizeof nn, "%s.nn", name);
	write_file(path(nn), src, strlen(src));
	char *out;
	int rc = sh_run(&out, "'%s' '%s' -o '%s'", NNC_EXE, path(nn), path(name));
	cr_assert_eq(rc, 0, "nnc %s failed (%d):\n%s", nn, rc, out);
	free(out);
}

/* Many short epochs, so that a kill lands at any point of a save. */
static const char *const moons_nn =
	"model moons\n"
	"input x : f32[2]\n"
	"label y : class(2)\n"
	"logits = x |> dense(16) |> tanh |> dense(16) |> tanh |> dense(2)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer adam(lr: 0.01)\n"
	"train { data: moons(count: 256, noise: 0.1, seed: 1), test: moons(count: 64, seed: 2),"
	" batch: 32, epochs: 1000000, seed: 3 }\n";

/* Epochs completed, from a checkpoint's header (docs/checkpoint.md). */
static int64_t ckpt_epoch(const char *p)
{
	size_t n;
	unsigned char *b = read_file(p, &n);
	cr_assert(b && n >= 64, "cannot read %s", p);
	int64_t e = 0;
	for (int i = 7; i >= 0; i--)
		e = e << 8 | b[56 + i];
	free(b);
	return e;
}

/* Starts `exe args` (no shell), lets it run for `ms` (counted from when the
 * file `wait_for` exists, if not NULL: a loaded machine can take any time to
 * get there), kills it with SIGKILL. */
static void run_and_kill(const char *exe, char *const *argv, long ms, const char *wait_for)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execv(exe, argv);
		_exit(127);
	}
	while (wait_for && access(wait_for, F_OK) != 0) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			cr_assert_fail("the run ended (status %#x) before it wrote %s", st, wait_for);
		struct timespec poll = {0, 10000000L};
		nanosleep(&poll, NULL);
	}
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	kill(pid, SIGKILL);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	/* it must still have been running: it was killed, it did not exit */
	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the run ended before the kill (status %d)", st);
}

static int count_tmp(const char *base)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	int n = 0;
	size_t bl = strlen(base);
	for (struct dirent *e; (e = readdir(d));)
		n += strncmp(e->d_name, base, bl) == 0 && strncmp(e->d_name + bl, ".tmp.", 5) == 0;
	closedir(d);
	return n;
}

static uint64_t rng_state;

static long rand_ms(long lo, long hi)
{
	rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
	return lo + (long)(rng_state % (uint64_t)(hi - lo));
}

Test(robust, kill_9_never_leaves_a_bad_checkpoint)
{
	compile("moons", moons_nn);
	rng_state = (uint64_t)time(NULL) * 2654435761u | 1;
	PATH_COPY(exe, "moons");
	PATH_COPY(ck, "m.ckpt");
	char *argv[] = {exe, "--checkpoint-every", "1", "--save", ck, "--quiet", "--threads", "2", NULL};
	int loaded = 0;
	for (int i = 0; i < 10; i++) {
		long ms = rand_ms(30, 600);
		/* the last run, if none saved yet, is killed after its first save */
		run_and_kill(exe, argv, ms, i == 9 && loaded == 0 ? ck : NULL);
		struct stat sb;
		if (stat(ck, &sb) != 0)
			continue; /* killed before the first save: nothing, which is fine */
		char *out;
		int rc = sh_run(&out, "'%s' --load '%s' --eval --quiet", exe, ck);
		cr_expect_eq(rc, 0, "kill after %ld ms (run %d) left a checkpoint that does not load:\n%s", ms, i, out);
		free(out);
		loaded++;
	}
	cr_expect_gt(loaded, 0, "no run lived long enough to save a checkpoint");
	/* the killed runs' temporary files are cleaned up by the next save */
	char *out;
	cr_assert_eq(sh_run(&out, "'%s' --epochs 1 --save '%s' --quiet", exe, ck), 0, "%s", out);
	free(out);
	cr_expect_eq(count_tmp("m.ckpt"), 0, "temporary files left after a clean run");
}

Test(robust, interrupted_and_resumed_equals_uninterrupted)
{
	compile("moons", moons_nn);
	PATH_COPY(exe, "moons");
	PATH_COPY(kk, "k.ckpt");
	char *out;
	/* stopped by --epochs, resumed */
	cr_assert_eq(sh_run(&out, "'%s' --epochs 6 --save '%s' --quiet --threads 2", exe, path("a.ckpt")), 0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "'%s' --epochs 3 --save '%s' --quiet --threads 2", exe, path("b.ckpt")), 0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "'%s' --resume '%s' --epochs 6 --save '%s' --quiet --threads 2", exe, path("b.ckpt"),
			 path("b.ckpt")), 0, "%s", out);
	free(out);
	cr_expect(same_bytes(path("a.ckpt"), path("b.ckpt")), "resumed at epoch 3 differs from the uninterrupted run");

	/* killed with SIGKILL at an unknown epoch, resumed three epochs further */
	rng_state = (uint64_t)time(NULL) * 40503u | 1;
	char *argv[] = {exe, "--checkpoint-every", "1", "--save", kk, "--quiet", "--threads", "2", NULL};
	long ms = rand_ms(0, 300);
	run_and_kill(exe, argv, ms, kk); /* after the first checkpoint */
	int64_t e = ckpt_epoch(path("k.ckpt"));
	cr_assert_gt(e, 0);
	cr_assert_eq(sh_run(&out, "'%s' --resume '%s' --epochs %lld --save '%s' --quiet --threads 2", exe, path("k.ckpt"),
			 (long long)e + 3, path("k.ckpt")), 0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "'%s' --epochs %lld --save '%s' --quiet --threads 2", exe, (long long)e + 3, path("u.ckpt")),
		     0, "%s", out);
	free(out);
	cr_expect(same_bytes(path("k.ckpt"), path("u.ckpt")),
		  "killed after %ld ms at epoch %lld and resumed: differs from the uninterrupted run", ms, (long long)e);
	/* and the parameters as printed agree too */
	char *pa, *pb;
	cr_assert_eq(sh_run(&pa, "'%s' --load '%s' --eval --print-params", exe, path("k.ckpt")), 0);
	cr_assert_eq(sh_run(&pb, "'%s' --load '%s' --eval --print-params", exe, path("u.ckpt")), 0);
	cr_expect_str_eq(pa, pb);
	free(pa);
	free(pb);
}

Test(robust, divergence_stops_and_keeps_the_last_good_checkpoint)
{
	compile("moons", moons_nn);
	PATH_COPY(exe, "moons");
	PATH_COPY(ck, "d.ckpt");
	char *out;
	cr_assert_eq(sh_run(&out, "'%s' --epochs 2 --save '%s' --quiet", exe, ck), 0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "cp '%s' '%s'", ck, path("good.ckpt")), 0);
	free(out);
	int rc = sh_run(&out, "'%s' --resume '%s' --epochs 50 --lr 1e38 --checkpoint-every 1 --save '%s' --quiet", exe, ck,
		     ck);
	cr_expect_eq(rc, 1, "a diverging run exited %d:\n%s", rc, out);
	cr_expect(strstr(out, "moons: error: training diverged at epoch 3, step ") == out,
		  "the message does not name epoch 3:\n%s", out);
	/* this run saved nothing: the checkpoint is the one from before */
	char want[1024];
	snprintf(want, sizeof want, "nothing was saved by this run; %s is left as it was\n", ck);
	cr_expect(strstr(out, want) != NULL, "%s", out);
	free(out);
	cr_expect(same_bytes(ck, path("good.ckpt")), "the checkpoint changed");
	cr_expect_eq(sh_run(&out, "'%s' --load '%s' --eval --quiet", exe, ck), 0, "%s", out);
	free(out);
	/* diverging in the first epoch of a fresh run: no checkpoint exists,
	 * and none is claimed */
	rc = sh_run(&out, "'%s' --epochs 5 --lr 1e38 --checkpoint-every 1 --save '%s' --quiet", exe, path("new.ckpt"));
	cr_expect_eq(rc, 1, "%s", out);
	cr_expect(strstr(out, "moons: error: training diverged at epoch 1, step ") == out, "%s", out);
	cr_expect(strstr(out, "); nothing was saved\n") != NULL, "%s", out);
	free(out);
	cr_expect_neq(access(path("new.ckpt"), F_OK), 0);
}

/* ---- interruptions and limits ---- */

/* Starts `exe args` with stdout and stderr into dir/log, waits until it
 * trains (an epoch line in the log: the handlers are in place; however
 * loaded the machine) and `ms` more, sends `sig` (and then `sig2` at once,
 * if not 0), and returns the wait status. */
static int run_and_signal(const char *exe, char *const *argv, long ms, int sig, int sig2)
{
	/* the last run's log would say "training" before this run has even
	 * started (and signalled then, it dies without its handlers) */
	unlink(path("log"));
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int log = open(path("log"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(log, 1);
		dup2(log, 2);
		/* as in an interactive shell: a test started in the background
		 * inherits SIGINT ignored, and the binary rightly keeps it so */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execv(exe, argv);
		_exit(127);
	}
	/* no time limit but the suite's: a loaded machine can take long */
	for (bool training = false; !training;) {
		size_t n = 0;
		char *log = (char *)read_file(path("log"), &n);
		training = log && (log[n] = 0, strstr(log, "\nepoch ") != NULL);
		free(log);
		int st;
		if (!training && waitpid(pid, &st, WNOHANG) == pid)
			cr_assert_fail("the run ended (status %#x) before it trained", st);
		struct timespec poll = {0, 10000000L};
		nanosleep(&poll, NULL);
	}
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	kill(pid, sig);
	if (sig2)
		kill(pid, sig2);
	/* a run that ignores the signal fails the test instead of hanging it */
	int st;
	for (int i = 0; i < 6000 && waitpid(pid, &st, WNOHANG) == 0; i++) {
		struct timespec poll = {0, 10000000L};
		nanosleep(&poll, NULL);
	}
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		cr_assert_fail("the run did not stop within 60 s of signal %d", sig);
	}
	return st;
}

Test(robust, sigterm_and_sigint_save_then_exit_128_plus_the_signal)
{
	compile("moons", moons_nn);
	PATH_COPY(exe, "moons");
	PATH_COPY(ck, "s.ckpt");
	char *argv[] = {exe, "--save", ck, "--threads", "2", NULL};
	for (int k = 0; k < 2; k++) {
		int sig = k ? SIGINT : SIGTERM;
		unlink(ck);
		int st = run_and_signal(exe, argv, 100, sig, 0);
		cr_assert(WIFEXITED(st), "killed by signal %d instead of exiting", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		cr_expect_eq(WEXITSTATUS(st), 128 + sig);
		size_t n;
		char *log = (char *)read_file(path("log"), &n);
		log[n] = 0;
		char want[1024];
		snprintf(want, sizeof want, "saved checkpoint to %s (--resume %s continues from there)\n", ck, ck);
		cr_expect(strstr(log, sig == SIGINT ? "moons: interrupted by SIGINT " : "moons: interrupted by SIGTERM "),
		          "%s", log);
		cr_expect(strstr(log, want), "%s", log);
		free(log);
		int64_t e = ckpt_epoch(ck);
		char *out;
		cr_expect_eq(sh_run(&out, "'%s' --resume '%s' --epochs %lld --quiet", exe, ck, (long long)e + 2), 0, "%s",
		             out);
		free(out);
	}
	/* the reader of stdout gone: saved too, not killed by SIGPIPE (at
	 * its default disposition, as in a user's shell; --epochs bounds the
	 * run should it be ignored after all) */
	unlink(ck);
	signal(SIGPIPE, SIG_DFL);
	char *out;
	cr_assert_eq(sh_run(&out, "cd '%s' && ./moons --epochs 5000 --save s.ckpt --threads 2 2>err | head -n 2 >/dev/null; "
	                          "cat err",
	                    dir),
	             0);
	cr_expect(strstr(out, "moons: interrupted by SIGPIPE (standard output was closed) after epoch "), "%s", out);
	cr_expect(strstr(out, "saved checkpoint to s.ckpt"), "%s", out);
	free(out);
	cr_expect_eq(sh_run(&out, "'%s' --load '%s' --eval --quiet", exe, ck), 0, "%s", out);
	free(out);
	/* a second signal ends it at once, by the signal (two kinds: two of
	 * one kind sent together may arrive as one).  Which one is second is
	 * not known: both can be pending when the run next gets the CPU, and
	 * the kernel then delivers the lower-numbered SIGINT first. */
	int st = run_and_signal(exe, argv, 100, SIGTERM, SIGINT);
	cr_expect(WIFSIGNALED(st) && (WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGTERM),
	          "not killed by the second signal (status %#x)", st);
}

Test(robust, file_size_limit_fails_the_save_with_exit_1_and_no_temporary_file)
{
	compile("moons", moons_nn);
	/* SIGXFSZ at its default disposition, as in a user's shell: the
	 * binary itself must keep it from killing the run. */
	signal(SIGXFSZ, SIG_DFL);
	char *out;
	cr_assert_eq(sh_run(&out, "cd '%s' && ./moons --epochs 1 --quiet --save m.ckpt", dir), 0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "cp '%s' '%s'", path("m.ckpt"), path("old.ckpt")), 0);
	free(out);
	/* ulimit -f counts blocks of 512 (sh) or 1024 (bash) bytes: either
	 * way smaller than the checkpoint */
	int rc = sh_run(&out, "cd '%s' && sh -c 'ulimit -f 2; exec ./moons --epochs 2 --quiet --save m.ckpt'", dir);
	cr_expect_eq(rc, 1, "exit %d:\n%s", rc, out);
	cr_expect(strstr(out, "moons: error: cannot save checkpoint m.ckpt: writing m.ckpt.tmp.") == out, "%s", out);
	cr_expect(strstr(out, "File too large (the previous checkpoint, if any, is unchanged)"), "%s", out);
	free(out);
	cr_expect_eq(count_tmp("m.ckpt"), 0, "the temporary file was left behind");
	cr_expect(same_bytes(path("m.ckpt"), path("old.ckpt")), "the previous checkpoint changed");
}

Test(robust, save_never_replaces_the_program_or_its_source)
{
	compile("moons", moons_nn);
	char *out;
	cr_assert_eq(sh_run(&out, "cp '%s' '%s'", path("moons"), path("moons.orig")), 0);
	free(out);
	static const struct {
		const char *args, *want;
	} rows[] = {
		{"--save moons", "moons: error: --save moons is this program itself; refusing to overwrite it\n"},
		{"--save moons --force", "moons: error: --save moons is this program itself; refusing to overwrite it\n"},
		{"--save ./link --force", "moons: error: --save ./link is this program itself; refusing to overwrite it\n"},
		{"--save moons.nn", "moons: error: --save moons.nn is the model's source file; refusing to overwrite it\n"},
		{"--save notes", "moons: error: --save notes: the file exists and is not an nnc checkpoint; pass --force to "
		                 "replace it\n"},
		{"--save moons.nn --force", "moons: error: --save moons.nn is the model's source file; refusing to "
		                            "overwrite it\n"},
		{"--save nodir/m.ckpt", "moons: error: --save nodir/m.ckpt: cannot use directory nodir: No such file or "
		                        "directory\n"},
		{"--load moons --eval", "moons: error: --load moons is this program itself, not a checkpoint\n"},
		{"--resume ./moons", "moons: error: --resume ./moons is this program itself, not a checkpoint\n"},
	};
	cr_assert_eq(symlink("moons", path("link")), 0);
	write_file(path("notes"), "notes\n", 6);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		/* all epochs: a refusal after training would never come */
		int rc = sh_run(&out, "cd '%s' && timeout 60 ./moons --quiet %s", dir, rows[i].args);
		cr_expect_eq(rc, 2, "'%s': exit %d\n%s", rows[i].args, rc, out);
		char want[512];
		snprintf(want, sizeof want, "%sTry 'moons --help' for the list of flags.\n", rows[i].want);
		cr_expect_str_eq(out, want, "'%s'", rows[i].args);
		free(out);
	}
	cr_expect(same_bytes(path("moons"), path("moons.orig")), "the program was changed");
}

static const char *const moons_csv_nn =
	"model mc\n"
	"input x : f32[2]\n"
	"label y : class(2)\n"
	"logits = x |> dense(8) |> tanh |> dense(2)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer adam(lr: 0.01)\n"
	"train { data: moons(count: 64, seed: 1), batch: 16, epochs: 1, seed: 3 }\n";

Test(robust, output_write_errors_fail_the_run)
{
	compile("mc", moons_csv_nn);
	char *out;
	cr_assert_eq(sh_run(&out, "cd '%s' && ./mc --quiet --save m.ckpt", dir), 0, "%s", out);
	free(out);
	FILE *f = fopen(path("pts.csv"), "w");
	for (int i = 0; i < 2000; i++)
		fprintf(f, "%g,%g\n", (i % 40) / 20.0 - 1, (i % 17) / 17.0);
	fclose(f);
	static const char *const rows[] = {
		"./mc --load m.ckpt --predict pts.csv",
		"./mc --epochs 3",
		"./mc --load m.ckpt --epochs 0 --print-params",
		"./mc --help",
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		int rc = sh_run(&out, "cd '%s' && %s > /dev/full", dir, rows[i]);
		cr_expect_eq(rc, 1, "'%s > /dev/full' exited %d:\n%s", rows[i], rc, out);
		cr_expect(strstr(out, "mc: error: cannot write to standard output: No space left on device\n"), "'%s':\n%s",
		          rows[i], out);
		free(out);
	}
}

/* ---- damaged files ---- */

static const char *const idx_nn =
	"model tiny\n"
	"input x : f32[2, 2]\n"
	"label y : class(3)\n"
	"logits = x |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer sgd(lr: 0.1)\n"
	"train { data: idx(\"img\", \"lab\", scale: 1/255), epochs: 1, batch: 2 }\n";

static size_t be32(unsigned char *b, uint32_t v)
{
	b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16), b[2] = (unsigned char)(v >> 8),
	b[3] = (unsigned char)v;
	return 4;
}

/* An IDX image file of `count` (header) images of 2x2, `have` of them present, plus `extra` bytes. */
static size_t idx_images(unsigned char *b, uint32_t count, int have, int extra)
{
	size_t n = be32(b, 0x803);
	n += be32(b + n, count);
	n += be32(b + n, 2);
	n += be32(b + n, 2);
	for (int i = 0; i < 4 * have + extra; i++)
		b[n++] = (unsigned char)(i * 7);
	return n;
}

static size_t idx_labels(unsigned char *b, uint32_t count, int have, int top)
{
	size_t n = be32(b, 0x801);
	n += be32(b + n, count);
	for (int i = 0; i < have; i++)
		b[n++] = (unsigned char)(i % top);
	return n;
}

static void write_gz(const char *p, const void *data, size_t n)
{
	gzFile f = gzopen(p, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(gzwrite(f, data, (unsigned)n), (int)n);
	cr_assert_eq(gzclose(f), Z_OK);
}

/* Runs the binary on the current img/lab and expects exit 1 with `want` in
 * the message. */
static void expect_data_error(const char *what, const char *want)
{
	char *out;
	int rc = sh_run(&out, "cd '%s' && ./tiny --quiet", dir);
	cr_expect_eq(rc, 1, "[%s] exit status %d:\n%s", what, rc, out);
	cr_expect(strstr(out, want) != NULL, "[%s] no '%s' in:\n%s", what, want, out);
	free(out);
}

Test(robust, damaged_data_files_exit_1_with_the_file_named)
{
	compile("tiny", idx_nn);
	unsigned char im[256], lb[64];
	size_t ni, nl;
	char *out;

	ni = idx_images(im, 6, 6, 0), nl = idx_labels(lb, 6, 6, 3);
	write_file(path("img"), im, ni), write_file(path("lab"), lb, nl);
	cr_assert_eq(sh_run(&out, "cd '%s' && ./tiny --quiet", dir), 0, "valid files fail:\n%s", out);
	free(out);

	/* a header that promises four billion images: refused, without
	 * trying to allocate them */
	ni = idx_images(im, 0xffffffffu, 6, 0), nl = idx_labels(lb, 0xffffffffu, 6, 3);
	write_file(path("img"), im, ni), write_file(path("lab"), lb, nl);
	expect_data_error("huge count", "img: file is truncated: the header promises 4294967295 images of 4 bytes but the "
					"file holds only 24 bytes of image data");
	/* more data than the header describes: its dimensions are wrong */
	ni = idx_images(im, 6, 6, 3), nl = idx_labels(lb, 6, 6, 3);
	write_file(path("img"), im, ni), write_file(path("lab"), lb, nl);
	expect_data_error("extra bytes", "img: the file holds more than the 6 images of 2x2 bytes its header describes");
	/* labels beyond class(3) */
	ni = idx_images(im, 6, 6, 0), nl = idx_labels(lb, 6, 6, 5);
	write_file(path("img"), im, ni), write_file(path("lab"), lb, nl);
	expect_data_error("label range", "lab: label 3 of sample 3 is out of range: the model has 3 classes (0..2)");
	/* image and label counts differ */
	nl = idx_labels(lb, 5, 5, 3);
	write_file(path("lab"), lb, nl);
	expect_data_error("count mismatch", "has 6 images but");
	/* gzip: cut short, and with a flipped byte in the compressed stream */
	unsigned char big[4096];
	nl = idx_labels(big, 600, 600, 3);
	write_file(path("lab"), big, nl);
	ni = idx_images(big, 600, 600, 0);
	write_gz(path("img"), big, ni);
	size_t gn;
	unsigned char *gz = read_file(path("img"), &gn);
	write_file(path("img"), gz, gn / 2);
	expect_data_error("truncated gzip", "img: file is truncated");
	gz[gn / 2] ^= 0x55;
	write_file(path("img"), gz, gn);
	free(gz);
	int rc = sh_run(&out, "cd '%s' && ./tiny --quiet", dir);
	cr_expect_eq(rc, 1, "[corrupt gzip] exit status %d:\n%s", rc, out);
	cr_expect(strstr(out, "tiny: error: ") == out && strstr(out, "img") != NULL, "[corrupt gzip]\n%s", out);
	free(out);
	/* a missing file is named */
	cr_assert_eq(unlink(path("img")), 0);
	expect_data_error("missing file", "img: cannot open: No such file or directory");
}

static const char *const csv_nn =
	"model reg\n"
	"input x : f32[2]\n"
	"label y : f32[1]\n"
	"p = x |> dense(1)\n"
	"loss mse(p, y)\n"
	"optimizer sgd(lr: 0.01)\n"
	"train { data: csv(\"d.csv\", header: true, x: [\"a\", \"b\"], y: [\"t\"]), epochs: 1 }\n";

Test(robust, csv_errors_have_line_and_column)
{
	compile("reg", csv_nn);
	static const struct {
		const char *csv, *want;
	} rows[] = {
		{"a,b,t\n1,2,3\n4,x5,6\n", "d.csv:3:3: 'x5' in column 'b' is not a number"},
		{"a,b,t\n1,2,3\n4,nan,6\n", "d.csv:3:3: 'nan' in column 'b' is not a finite number"},
		{"a,b,t\n1,2,3\n4,5,1e39\n", "d.csv:3:5: '1e39' in column 't' is too large for a 32-bit float"},
		{"a,b,t\n1,2,3\n4,,6\n", "d.csv:3:3: empty field in column 'b'"},
		{"a,b,t\n1,2,3\n4,5\n", "d.csv:3: row has 2 fields but the header has 3"},
		{"a,c,t\n1,2,3\n", "d.csv: the header has no column 'b' (its columns are: a, c, t)"},
		{"a,b,t\n", "d.csv: no data rows after the header"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		write_file(path("d.csv"), rows[i].csv, strlen(rows[i].csv));
		char *out;
		int rc = sh_run(&out, "cd '%s' && ./reg --quiet", dir);
		cr_expect_eq(rc, 1, "[%s] exit status %d:\n%s", rows[i].want, rc, out);
		cr_expect(strstr(out, rows[i].want) != NULL, "no '%s' in:\n%s", rows[i].want, out);
		free(out);
	}	/* devices: refused at once, not read until memory runs out */
	static const struct {
		const char *args, *want;
	} dev[] = {
		{"--data /dev/zero", "reg: error: /dev/zero: not a text file (it contains NUL bytes)\n"},
		{"--data /dev/urandom", "reg: error: /dev/urandom: not a text file (it contains NUL bytes)\n"},
		{"--load /dev/urandom", "reg: error: /dev/urandom is not an nnc checkpoint (bad magic number)\n"},
		{"--resume /dev/zero", "reg: error: /dev/zero is not an nnc checkpoint (bad magic number)\n"},
	};
	write_file(path("d.csv"), "a,b,t\n1,2,3\n", 12);
	for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) {
		char *out;
		int rc = sh_run(&out, "cd '%s' && timeout 20 ./reg --quiet %s", dir, dev[i].args);
		cr_expect_eq(rc, 1, "[%s] exit status %d:\n%s", dev[i].args, rc, out);
		cr_expect_str_eq(out, dev[i].want, "[%s]", dev[i].args);
		free(out);
	}
}

Test(robust, damaged_checkpoints_are_refused)
{
	compile("moons", moons_nn);
	/* the same layers with another width: another model */
	char other[1024];
	snprintf(other, sizeof other, "%s", moons_nn);
	char *w = strstr(other, "dense(16) |> tanh |> dense(2)");
	cr_assert_not_null(w);
	memcpy(w, "dense(12)", 9);
	compile("other", other);
	PATH_COPY(exe, "moons");
	PATH_COPY(ck, "c.ckpt");
	char *out;
	cr_assert_eq(sh_run(&out, "'%s' --epochs 1 --save '%s' --quiet", exe, ck), 0, "%s", out);
	free(out);
	size_t n;
	unsigned char *b = read_file(ck, &n);
	/* a bit flipped anywhere: the checksum */
	for (size_t at = 0; at < n; at += n / 7 + 1) {
		b[at] ^= 0x10;
		write_file(path("f.ckpt"), b, n);
		b[at] ^= 0x10;
		int rc = sh_run(&out, "'%s' --load '%s' --eval --quiet", exe, path("f.ckpt"));
		cr_expect_eq(rc, 1, "a bit flipped at byte %zu: exit %d\n%s", at, rc, out);
		cr_expect(strstr(out, "f.ckpt") != NULL, "%s", out);
		free(out);
	}
	/* cut short anywhere */
	for (size_t len = 0; len < n; len += n / 5 + 1) {
		write_file(path("t.ckpt"), b, len);
		int rc = sh_run(&out, "'%s' --resume '%s' --quiet", exe, path("t.ckpt"));
		cr_expect_eq(rc, 1, "cut to %zu bytes: exit %d\n%s", len, rc, out);
		cr_expect(strstr(out, "t.ckpt") != NULL, "%s", out);
		free(out);
	}
	free(b);
	/* written by another version of the model: the message says what changed */
	int rc = sh_run(&out, "'%s' --load '%s' --eval --quiet", path("other"), ck);
	cr_expect_eq(rc, 1);
	cr_expect(strstr(out, "c.ckpt: parameter 'dense2.weight' has shape [16,16] but this model's is [16,12]") != NULL,
		  "%s", out);
	free(out);
}
