#define _POSIX_C_SOURCE 200809L
/*
 * test_driver.c - the nnc command as a careless user meets it:
 *   - outputs never destroy inputs or each other (the same file by name,
 *     through a symbolic or a hard link, or by a path that only resolves to
 *     the same place), and replace only files nnc writes unless --force;
 *   - bad command lines (empty arguments, two output kinds, a flag given
 *     twice, --inference-only for an executable) exit 2 naming the flags;
 *   - lost output (a full disk, a file-size limit, a full stdout) exits 3;
 *   - an interrupted compile leaves no temporary file and no partial
 *     output, and stops the linker it started;
 *   - --cpu and --target-features are checked against LLVM's tables, and
 *     binaries and objects compiled for a CPU refuse to start on one that
 *     lacks its extensions, naming them, instead of dying of SIGILL.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nnrt.h"
#include "sh_harness.h"
#include "target.h"
#include "util.h"

static char dir[64];

static void setup(void) { sh_mktemp(dir, sizeof dir, "driver"); }
static void teardown(void) { sh_rmtree(dir); }

TestSuite(driver, .init = setup, .fini = teardown, .timeout = 300);

static const char *const moons_nn =
	"model moons\n"
	"input x : f32[2]\n"
	"label y : class(2)\n"
	"logits = x |> dense(16) |> tanh |> dense(2)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer adam(lr: 0.01)\n"
	"train { data: moons(count: 256, noise: 0.1, seed: 1), test: moons(count: 64, seed: 2),"
	" batch: 32, epochs: 2, seed: 3 }\n";

static void write_file(const char *name, const char *text)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "cannot write %s", p);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* The whole file dir/NAME, or NULL; malloc'd. */
static char *read_file(const char *name)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "rb");
	if (!f)
		return NULL;
	char *b = calloc(1, 1 << 20);
	size_t n = fread(b, 1, (1 << 20) - 1, f);
	b[n] = 0;
	fclose(f);
	return b;
}

/* Runs `cd dir && nnc ARGS`, output into *out (malloc'd); the exit status. */
static int nnc(char **out, const char *args)
{
	return sh_run(out, "cd '%s' && '%s' %s", dir, NNC_EXE, args);
}

/* The names in dir (one per line, sorted, dot files included). */
static char *listing(void)
{
	char *out;
	cr_assert_eq(sh_run(&out, "cd '%s' && ls -A | LC_ALL=C sort", dir), 0);
	return out;
}

/* ---- outputs and inputs ---- */

typedef struct clash_case {
	const char *args;   /* the command line, in dir where m.nn and m.o exist */
	const char *needle; /* in the message */
} clash_case;

static const clash_case clashes[] = {
	{"m.nn -o m.nn", "nnc: error: -o 'm.nn' is the input file 'm.nn'; refusing to overwrite it"},
	{"m.nn --emit-ir -o m.nn", "-o 'm.nn' is the input file 'm.nn'"},
	{"m.nn --emit-ast -o m.nn", "-o 'm.nn' is the input file 'm.nn'"},
	{"m.nn -S -o ./m.nn", "-o './m.nn' is the input file 'm.nn'"},
	{"m.nn -c --header m.nn", "--header 'm.nn' is the input file 'm.nn'"},
	{"m.nn -c -o m.o --header m.o", "nnc: error: -o 'm.o' and --header 'm.o' are the same file"},
	{"m.nn -o soft.nn", "-o 'soft.nn' is the input file 'm.nn'"},   /* a symbolic link to m.nn */
	{"m.nn -o hard.nn", "-o 'hard.nn' is the input file 'm.nn'"},   /* a hard link to m.nn */
	{"m.nn -o sub/../m.nn", "-o 'sub/../m.nn' is the input file 'm.nn'"},
	{"soft.nn --emit-dot -o m.nn", "-o 'm.nn' is the input file 'soft.nn'"},
	/* neither exists yet: the same resolved path */
	{"m.nn -c -o new.o --header ./sub/../new.o", "-o 'new.o' and --header './sub/../new.o' are the same file"},
	{"m.nn -c -o new.o --header new.o", "-o 'new.o' and --header 'new.o' are the same file"},
	/* the default output is the model's name: here, the source's */
	{"moons", "nnc: error: the output 'moons' is the input file 'moons'; refusing to overwrite it"},
	{"moons -c -o moons.o --header moons", "--header 'moons' is the input file 'moons'"},
	/* distinct names are fine */
	{"m.nn -c -o m.hh --header m.hh.h", NULL},
};

Test(driver, outputs_never_overwrite_the_input_or_each_other)
{
	write_file("m.nn", moons_nn);
	write_file("moons", moons_nn);
	char *out;
	cr_assert_eq(sh_run(&out, "cd '%s' && mkdir sub && ln -s m.nn soft.nn && ln m.nn hard.nn", dir), 0, "%s", out);
	free(out);
	for (size_t i = 0; i < sizeof clashes / sizeof clashes[0]; i++) {
		const clash_case *c = &clashes[i];
		int rc = nnc(&out, c->args);
		if (!c->needle) {
			cr_expect_eq(rc, 0, "nnc %s: %d\n%s", c->args, rc, out);
		} else {
			cr_expect_eq(rc, 2, "nnc %s: %d\n%s", c->args, rc, out);
			cr_expect(strstr(out, c->needle), "nnc %s: no '%s' in\n%s", c->args, c->needle, out);
		}
		free(out);
		char *now = read_file("m.nn");
		cr_assert_str_eq(now, moons_nn, "nnc %s changed the source", c->args);
		free(now);
	}
	/* nothing was written by the refused compiles */
	char *ls = listing();
	cr_expect_str_eq(ls, "hard.nn\nm.hh\nm.hh.h\nm.nn\nmoons\nsoft.nn\nsub\n");
	char *src = read_file("moons");
	cr_expect_str_eq(src, moons_nn);
	free(src);
	free(ls);
}

/* Every output kind may replace its own earlier output (and any other of
 * nnc's), an empty file or a device, but not a file nnc did not write. */
Test(driver, existing_files_are_replaced_only_if_nnc_wrote_them)
{
	static const char *const kinds[] = {"", "-c", "-S", "--emit-llvm", "--emit-ir", "--emit-ast", "--emit-dot",
					    "--stats", "--summary"};
	write_file("m.nn", moons_nn);
	write_file("other.nn", moons_nn);
	write_file("notes.txt", "my notes\n");
	write_file("prog.c", "/* my program */\nint main(void) { return 0; }\n");
	write_file("empty", "");
	char *out;
	size_t nk = sizeof kinds / sizeof kinds[0];
	char args[256];
	for (size_t k = 0; k < nk; k++) {
		snprintf(args, sizeof args, "m.nn %s -o out%zu", kinds[k], k);
		cr_expect_eq(nnc(&out, args), 0, "nnc %s:\n%s", args, out);
		free(out);
	}
	for (size_t k = 0; k < nk; k++) {
		/* its own earlier output, and another kind's */
		snprintf(args, sizeof args, "m.nn %s -o out%zu", kinds[k], k);
		cr_expect_eq(nnc(&out, args), 0, "nnc %s (again):\n%s", args, out);
		free(out);
		snprintf(args, sizeof args, "m.nn %s -o out%zu", kinds[k], (k + 1) % nk);
		cr_expect_eq(nnc(&out, args), 0, "nnc %s over a %s output:\n%s", args, kinds[(k + 1) % nk], out);
		free(out);
		static const char *const precious[] = {"other.nn", "notes.txt", "prog.c"};
		for (size_t p = 0; p < 3; p++) {
			snprintf(args, sizeof args, "m.nn %s -o %s", kinds[k], precious[p]);
			cr_expect_eq(nnc(&out, args), 2, "nnc %s:\n%s", args, out);
			cr_expect(strstr(out, "exists and is not a file nnc writes") && strstr(out, "--force"), "%s", out);
			free(out);
		}
		snprintf(args, sizeof args, "m.nn %s -o empty", kinds[k]);
		cr_expect_eq(nnc(&out, args), 0, "nnc %s:\n%s", args, out);
		free(out);
		write_file("empty", "");
		/* a device is written in place (-c's header needs a place of its own) */
		snprintf(args, sizeof args, "m.nn %s -o /dev/null%s", kinds[k], k == 1 ? " --header h.h" : "");
		cr_expect_eq(nnc(&out, args), 0, "nnc %s:\n%s", args, out);
		free(out);
	}
	char *t = read_file("notes.txt"), *c = read_file("prog.c"), *n = read_file("other.nn");
	cr_expect_str_eq(t, "my notes\n");
	cr_expect_str_eq(c, "/* my program */\nint main(void) { return 0; }\n");
	cr_expect_str_eq(n, moons_nn);
	free(t);
	free(c);
	free(n);
	/* --force replaces them */
	cr_expect_eq(nnc(&out, "m.nn --emit-ir -o notes.txt --force"), 0, "%s", out);
	free(out);
	t = read_file("notes.txt");
	cr_expect(!strncmp(t, "model moons", 11), "%s", t);
	free(t);
	/* the header -c would write beside the object is checked too */
	cr_expect_eq(nnc(&out, "m.nn -c -o prog.o --header prog.c"), 2, "%s", out);
	cr_expect(strstr(out, "--header 'prog.c' exists and is not a file nnc writes"), "%s", out);
	free(out);
	/* and nothing else was left behind */
	char *ls = listing();
	cr_expect(!strstr(ls, ".nnc-"), "temporary files left:\n%s", ls);
	free(ls);
}

Test(driver, outputs_into_a_missing_directory_or_onto_a_directory)
{
	write_file("m.nn", moons_nn);
	char *out;
	cr_expect_eq(nnc(&out, "m.nn -o nodir/m"), 3, "%s", out);
	cr_expect(strstr(out, "nnc: error: cannot write nodir/m: directory 'nodir': No such file or directory"), "%s",
		  out);
	free(out);
	cr_expect_eq(nnc(&out, "m.nn -c -o m.o --header nodir/m.h"), 3, "%s", out);
	free(out);
	cr_expect_eq(sh_run(&out, "mkdir '%s/d'", dir), 0);
	free(out);
	cr_expect_eq(nnc(&out, "m.nn -o d"), 2, "%s", out);
	cr_expect(strstr(out, "nnc: error: -o 'd' is a directory"), "%s", out);
	free(out);
	cr_expect_eq(nnc(&out, "m.nn -o d/"), 2, "%s", out);
	free(out);
	/* checked before the compile: no object was written for the header's sake */
	char *ls = listing();
	cr_expect_str_eq(ls, "d\nm.nn\n");
	free(ls);
}

/* ---- the command line ---- */

typedef struct usage_case {
	const char *args;
	const char *needle;
} usage_case;

static const usage_case usage_cases[] = {
	{"m.nn -o ''", "nnc: error: -o needs a non-empty argument"},
	{"m.nn -c --header ''", "nnc: error: --header needs a non-empty argument"},
	{"m.nn --prefix ''", "nnc: error: --prefix needs a non-empty argument"},
	{"m.nn --chunks ''", "nnc: error: --chunks needs a non-empty argument"},
	{"''", "nnc: error: an empty input file name"},
	{"m.nn -c -S", "nnc: error: -c and -S both choose what nnc writes; give one of them"},
	{"m.nn -S -c", "nnc: error: -S and -c both choose what nnc writes"},
	{"m.nn --emit-ir --stats", "nnc: error: --emit-ir and --stats both choose what nnc writes"},
	{"m.nn --emit-llvm -c", "nnc: error: --emit-llvm and -c both choose"},
	{"m.nn -o a -o b", "nnc: error: -o given twice ('a' and 'b')"},
	{"m.nn --prefix p --prefix q", "nnc: error: --prefix given twice ('p' and 'q')"},
	{"m.nn --chunks 2 --chunks 4", "nnc: error: --chunks given twice ('2' and '4')"},
	{"m.nn --dump-after=sema --dump-after=plan --stats", "nnc: error: --dump-after given twice ('sema' and 'plan')"},
	{"m.nn --dump-after= --stats", "nnc: error: --dump-after needs a non-empty argument"},
	{"m.nn --inference-only", "nnc: error: --inference-only leaves out the training step a training binary runs; "
				  "use it with -c (an object for embedding), -S or --emit-llvm"},
	{"m.nn --inference-only -o m", "--inference-only leaves out the training step"},
	/* -o - is standard output for the dumps only; never a file named '-' */
	{"m.nn -o -", "nnc: error: -o - (standard output) goes with --emit-ir, --emit-ast, --emit-dot or --stats"},
	{"m.nn -c -o -", "-o - (standard output) goes with"},
	{"m.nn -S -o -", "-o - (standard output) goes with"},
	{"m.nn --emit-llvm -o -", "-o - (standard output) goes with"},
	{"m.nn -c -o m.o --header -", "nnc: error: --header - : the C header needs a file name"},
};

Test(driver, bad_command_lines_exit_2_naming_the_flags)
{
	write_file("m.nn", moons_nn);
	char *out;
	for (size_t i = 0; i < sizeof usage_cases / sizeof usage_cases[0]; i++) {
		const usage_case *u = &usage_cases[i];
		cr_expect_eq(nnc(&out, u->args), 2, "nnc %s:\n%s", u->args, out);
		cr_expect(strstr(out, u->needle), "nnc %s: no '%s' in\n%s", u->args, u->needle, out);
		free(out);
	}
	/* repeating a flag with the same value, or the same kind, is fine */
	cr_expect_eq(nnc(&out, "m.nn -c -c -o m.o -o m.o --inference-only"), 0, "%s", out);
	free(out);
	/* the dumps with -o - go to standard output, as without -o */
	static const char *const dumps[][2] = {{"--emit-ir", "forward:\n"}, {"--emit-ast", "(model moons)"},
					       {"--emit-dot", "digraph \"moons\""}, {"--stats", "parameters"}};
	for (size_t i = 0; i < sizeof dumps / sizeof dumps[0]; i++) {
		char *plain, args[64];
		snprintf(args, sizeof args, "m.nn %s -o -", dumps[i][0]);
		cr_expect_eq(nnc(&out, args), 0, "%s", out);
		snprintf(args, sizeof args, "m.nn %s", dumps[i][0]);
		cr_expect_eq(nnc(&plain, args), 0, "%s", plain);
		cr_expect(strstr(out, dumps[i][1]), "%s -o -: no '%s' in\n%s", dumps[i][0], dumps[i][1], out);
		cr_expect_str_eq(out, plain, "%s: -o - and no -o differ", dumps[i][0]);
		free(out);
		free(plain);
	}
	char *ls = listing();
	cr_expect_str_eq(ls, "m.h\nm.nn\nm.o\n");
	free(ls);
}

/* ---- lost output ---- */

Test(driver, lost_output_exits_3)
{
	write_file("m.nn", moons_nn);
	char *out;
	static const char *const to_stdout[] = {"m.nn --emit-ir", "m.nn --emit-ast", "m.nn --emit-dot", "m.nn --stats",
						"m.nn --summary", "--help", "--version"};
	for (size_t i = 0; i < sizeof to_stdout / sizeof to_stdout[0]; i++) {
		char args[128];
		snprintf(args, sizeof args, "%s > /dev/full", to_stdout[i]);
		cr_expect_eq(nnc(&out, args), 3, "nnc %s:\n%s", args, out);
		free(out);
	}
	cr_expect_eq(nnc(&out, "m.nn --emit-ir > /dev/full"), 3, "%s", out);
	cr_expect(strstr(out, "nnc: error: cannot write to standard output: No space left on device"), "%s", out);
	free(out);
	/* a device as the file: written in place, the error reported */
	cr_expect_eq(nnc(&out, "m.nn --emit-ir -o /dev/full"), 3, "%s", out);
	cr_expect(strstr(out, "nnc: error: cannot write /dev/full: No space left on device"), "%s", out);
	free(out);
	/* a file-size limit: EFBIG, not death by SIGXFSZ with the temporary
	 * file left behind; the earlier output stays whole */
	cr_expect_eq(nnc(&out, "m.nn -c -o m.o"), 0, "%s", out);
	free(out);
	char *before = read_file("m.o");
	cr_expect_eq(sh_run(&out, "cd '%s' && ulimit -f 8 && '%s' m.nn -c -o m.o", dir, NNC_EXE), 3, "%s", out);
	cr_expect(strstr(out, "nnc: error: cannot write m.o: File too large"), "%s", out);
	free(out);
	char *after = read_file("m.o");
	cr_expect(before && after && !memcmp(before, after, 1 << 16), "m.o was changed by the failed compile");
	free(before);
	free(after);
	char *ls = listing();
	cr_expect_str_eq(ls, "m.h\nm.nn\nm.o\n");
	free(ls);
}

/* ---- interruptions ---- */

static bool exists(const char *name)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000000};
	nanosleep(&ts, NULL);
}

/* The linker the tests use ($CC: the sanitizer build sets it). */
static const char *real_cc(void)
{
	const char *cc = getenv("CC");
	return cc && *cc ? cc : "cc";
}

/* Starts `nnc m.nn -o m` in dir with TMPDIR=dir/tmp and CC=cc (no shell
 * between, so that SIGINT is not ignored); its pid. */
static pid_t start_nnc(const char *cc)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char tmp[128];
		snprintf(tmp, sizeof tmp, "%s/tmp", dir);
		if (chdir(dir) != 0)
			_exit(99);
		setenv("TMPDIR", tmp, 1);
		setenv("CC", cc, 1);
		/* a test run in the background inherits SIGINT ignored, and nnc
		 * rightly keeps it so: the dispositions of an interactive shell */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		freopen("/dev/null", "w", stderr);
		execl(NNC_EXE, "nnc", "m.nn", "-o", "m", (char *)NULL);
		_exit(98);
	}
	return pid;
}

/* Some process of group g is alive (a zombie is not: once its parent is
 * gone, who reaps it and when is not up to nnc). */
static bool group_alive(pid_t g)
{
	DIR *d = opendir("/proc");
	cr_assert_not_null(d);
	bool alive = false;
	for (struct dirent *e; !alive && (e = readdir(d));) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char p[300], stat[512];
		snprintf(p, sizeof p, "/proc/%s/stat", e->d_name);
		FILE *f = fopen(p, "r");
		if (!f)
			continue; /* gone in between */
		size_t n = fread(stat, 1, sizeof stat - 1, f);
		fclose(f);
		stat[n] = 0;
		/* pid (comm) state ppid pgrp: comm may hold spaces and ')' */
		char *close = strrchr(stat, ')');
		char state;
		int ppid, pgrp;
		if (close && sscanf(close + 1, " %c %d %d", &state, &ppid, &pgrp) == 3)
			alive = pgrp == g && state != 'Z';
	}
	closedir(d);
	return alive;
}

/* Waits until no process of group g is alive; false if some still is after
 * `secs` seconds (a stop that works takes milliseconds, however loaded the
 * machine is). */
static bool wait_group_gone(pid_t g, int secs)
{
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (!group_alive(g))
			return true;
		sleep_ms(20);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - t0.tv_sec < secs);
	return !group_alive(g);
}

/* Nothing but m.nn, m (as it was: `old`), the linker script and the empty
 * tmp directory is left in dir. */
static void expect_clean(const char *old, const char *what)
{
	char *out;
	cr_assert_eq(sh_run(&out, "cd '%s' && find . -mindepth 1 | LC_ALL=C sort", dir), 0);
	cr_expect_str_eq(out, "./m\n./m.nn\n./slowcc\n./tmp\n", "%s left:\n%s", what, out);
	free(out);
	char *now = read_file("m");
	cr_expect(now && !memcmp(now, old, 1 << 16), "%s changed the earlier output", what);
	free(now);
}

/* A signal while the linker runs: the linker and everything it started
 * stop, the temporary object and executable go, the old output stays, and
 * nnc dies of the signal. */
Test(driver, an_interrupted_link_leaves_nothing_behind)
{
	write_file("m.nn", moons_nn);
	char *out;
	cr_assert_eq(nnc(&out, "m.nn -o m"), 0, "%s", out);
	free(out);
	char *old = read_file("m");
	cr_assert_eq(sh_run(&out, "mkdir '%s/tmp'", dir), 0);
	free(out);
	/* a linker that says when it starts (with its pid: nnc puts it in a
	 * process group of its own, led by it), leaves a temporary file in
	 * $TMPDIR that it does not remove when stopped (as gcc's collect2 once
	 * did), takes its time, and says when it went on to link */
	char script[512];
	snprintf(script, sizeof script,
		 "#!/bin/sh\n: >\"$TMPDIR/cc-left.c\"\necho $$ >linking.tmp\nmv linking.tmp linking\nsleep 30\n"
		 "touch linked\nexec '%s' \"$@\"\n",
		 real_cc());
	write_file("slowcc", script);
	char cc[128];
	snprintf(cc, sizeof cc, "%s/slowcc", dir);
	chmod(cc, 0755);
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		pid_t pid = start_nnc(cc);
		/* no time limit but the suite's: a loaded machine can take long */
		char *pidtext;
		while (!(pidtext = read_file("linking"))) {
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid)
				cr_assert_fail("nnc ended (status %#x) before the linker started", st);
			sleep_ms(20);
		}
		pid_t linker = (pid_t)atol(pidtext);
		free(pidtext);
		cr_assert_gt(linker, 1, "the linker's pid");
		kill(pid, sigs[i]);
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == sigs[i], "nnc did not die of signal %d (status %#x)", sigs[i],
			  st);
		if (!wait_group_gone(linker, 20)) {
			kill(-linker, SIGKILL);
			cr_assert_fail("the linker still ran 20 s after nnc died of signal %d", sigs[i]);
		}
		cr_expect(!exists("linked"), "the linker went on after nnc died of signal %d", sigs[i]);
		char p[256];
		snprintf(p, sizeof p, "%s/linking", dir);
		remove(p);
		snprintf(p, sizeof p, "%s/linked", dir);
		remove(p);
		expect_clean(old, "a compile interrupted by a signal");
	}
	free(old);
}

/* A linker that succeeds but leaves a temporary file in $TMPDIR: nnc gives
 * it a directory of its own and removes it with what is left. */
Test(driver, the_linkers_leftovers_are_removed)
{
	write_file("m.nn", moons_nn);
	char *out, script[512];
	snprintf(script, sizeof script, "#!/bin/sh\n: >\"$TMPDIR/cc-left.c\"\nexec '%s' \"$@\"\n", real_cc());
	write_file("leavecc", script);
	cr_assert_eq(sh_run(&out, "cd '%s' && chmod +x leavecc && mkdir tmp && TMPDIR=$PWD/tmp CC=$PWD/leavecc '%s' m.nn -o m",
			    dir, NNC_EXE),
		     0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "cd '%s' && ./m --epochs 1 >/dev/null && find tmp | LC_ALL=C sort", dir), 0, "%s", out);
	cr_expect_str_eq(out, "tmp\n", "the linker's temporary files were left:\n%s", out);
	free(out);
}

/* Signals at every moment of a whole compile (parse, emit, link).  The
 * linker (the real one, behind a script that notes its pid, which leads its
 * process group) may still be stopping after nnc died: the directory is
 * looked at once that group is gone. */
Test(driver, a_compile_interrupted_at_any_moment_leaves_nothing_behind)
{
	write_file("m.nn", moons_nn);
	char *out;
	cr_assert_eq(nnc(&out, "m.nn -o m"), 0, "%s", out);
	free(out);
	char *old = read_file("m");
	/* the pids go outside dir, whose listing is checked */
	char pids[128], script[512], cc[128];
	snprintf(pids, sizeof pids, "%s.linkers", dir);
	snprintf(script, sizeof script, "#!/bin/sh\necho $$ >>'%s'\nexec '%s' \"$@\"\n", pids, real_cc());
	write_file("slowcc", script);
	snprintf(cc, sizeof cc, "%s/slowcc", dir);
	chmod(cc, 0755);
	cr_assert_eq(sh_run(&out, "mkdir '%s/tmp'", dir), 0, "%s", out);
	free(out);
	int linked = 0;
	for (long ms = 0; ms < 400; ms += 20) {
		remove(pids);
		pid_t pid = start_nnc(cc);
		sleep_ms(ms);
		kill(pid, SIGTERM);
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_expect((WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM) || (WIFEXITED(st) && WEXITSTATUS(st) == 0),
			  "status %#x after a SIGTERM at %ld ms", st, ms);
		FILE *f = fopen(pids, "r");
		long g;
		while (f && fscanf(f, "%ld", &g) == 1) {
			linked++;
			if (!wait_group_gone((pid_t)g, 20)) {
				kill(-(pid_t)g, SIGKILL);
				cr_assert_fail("the linker still ran 20 s after nnc died of SIGTERM at %ld ms", ms);
			}
		}
		if (f)
			fclose(f);
		expect_clean(old, "a compile interrupted by a signal");
	}
	remove(pids);
	cr_log_info("%d of 20 compiles reached the linker", linked);
	free(old);
}

/* ---- the target CPU ---- */

Test(driver, cpu_and_target_features_are_checked)
{
	write_file("m.nn", moons_nn);
	static const usage_case bad[] = {
		{"m.nn --cpu skylak", "nnc: error: --cpu: LLVM knows no CPU 'skylak'; 'nnc --cpu help' lists the CPUs and "
				      "features"},
		{"m.nn --cpu ''", "nnc: error: --cpu needs a non-empty argument"},
		{"m.nn --cpu x86-64 --cpu x86-64-v3", "nnc: error: --cpu given twice ('x86-64' and 'x86-64-v3')"},
		{"m.nn --target-features +avx3", "nnc: error: --target-features: LLVM knows no feature 'avx3'"},
		{"m.nn --target-features avx2", "nnc: error: --target-features takes +name or -name items separated by "
						"commas, not 'avx2'"},
		{"m.nn --target-features +avx2,", "nnc: error: --target-features: an empty item in '+avx2,'"},
		{"m.nn --target-features +avx2,,-fma", "not ''"},
		{"m.nn --target-features ''", "nnc: error: --target-features needs a non-empty argument"},
		{"m.nn --target-features", "nnc: error: --target-features needs an argument"},
	};
	char *out;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_expect_eq(nnc(&out, bad[i].args), 2, "nnc %s:\n%s", bad[i].args, out);
		cr_expect(strstr(out, bad[i].needle), "nnc %s: no '%s' in\n%s", bad[i].args, bad[i].needle, out);
		free(out);
	}
	cr_expect_eq(nnc(&out, "--cpu help"), 0, "%s", out);
	cr_expect(sh_has_line(out, "  x86-64-v3") && sh_has_line(out, "  x86-64") && strstr(out, "\n  avx512f "),
		  "%s", out);
	free(out);
	cr_expect_eq(nnc(&out, "--cpu help > /dev/full"), 3, "%s", out);
	free(out);
	cr_expect_eq(nnc(&out, "m.nn --cpu x86-64-v2 --target-features +avx,-sse4.2 --stats"), 0, "%s", out);
	free(out);
}

/* A feature mix LLVM 19 cannot generate nnc's kernels for (AVX-512F without
 * AVX-512VL on a generic CPU: "Cannot select"): nnc's message and status 3,
 * nothing written, never LLVM's abort().  (Should a later LLVM generate it,
 * the compile succeeds, which is fine too.)  The error comes from one of the
 * code-generation threads; exiting from there once crashed 1 time in 3
 * (SIGSEGV in LLVM's destructors), so the compile is run several times. */
Test(driver, llvm_fatal_errors_are_reported_not_aborted)
{
	write_file("m.nn", moons_nn);
	for (int i = 0; i < 8; i++) {
		char *out;
		int rc = nnc(&out, "m.nn --cpu x86-64-v3 --target-features +avx512f -o m");
		cr_expect(rc == 0 || rc == 3, "status %d:\n%s", rc, out);
		if (rc == 3) {
			cr_expect(strstr(out, "nnc: error: LLVM cannot generate code for CPU 'x86-64-v3' with --target-features "
					      "+avx512f: "),
				  "%s", out);
			cr_expect(!strstr(out, "LLVM ERROR"), "%s", out);
			cr_expect(!exists("m"), "an executable was written");
			char *ls = listing();
			cr_expect_str_eq(ls, "m.nn\n", "%s", ls);
			free(ls);
		}
		free(out);
	}
}

static double last_metric(const char *out, const char *key);

/* bf16 products need avx512bf16: refused for a target without it (the flag
 * and the train block's setting), compiled for one with it, and on this
 * host (if it has them) trained to the accuracy of float32. */
Test(driver, bf16_needs_avx512bf16_and_trains_like_fp32)
{
	write_file("m.nn", moons_nn);
	char *b = strdup(moons_nn);
	char *at = strstr(b, " seed: 3 }");
	cr_assert(at);
	memcpy(at, " seed: 3,", 10); /* and the end of the text */
	char *bf = malloc(strlen(b) + 32);
	sprintf(bf, "%s precision: bf16 }\n", b);
	write_file("b.nn", bf);
	static const usage_case bad[] = {
		{"m.nn --precision bf16 --cpu x86-64-v3",
		 "nnc: error: --precision bf16 needs avx512bf16, which CPU 'x86-64-v3' lacks; train in float32 "
		 "(--precision fp32, the default)"},
		{"m.nn --precision bf16 --cpu sapphirerapids --target-features -avx512bf16",
		 "nnc: error: --precision bf16 needs avx512bf16, which CPU 'sapphirerapids' with --target-features "
		 "-avx512bf16 lacks"},
		{"m.nn --precision fp16", "nnc: error: --precision takes fp32 or bf16, not 'fp16'"},
		{"b.nn --precision bf16 --cpu x86-64-v3 --stats", "which CPU 'x86-64-v3' lacks"},
	};
	char *out;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_expect_eq(nnc(&out, bad[i].args), 2, "nnc %s:\n%s", bad[i].args, out);
		cr_expect(strstr(out, bad[i].needle), "nnc %s: no '%s' in\n%s", bad[i].args, bad[i].needle, out);
		free(out);
	}
	/* the train block's precision: an error of the .nn file, at its value */
	cr_expect_eq(nnc(&out, "b.nn --cpu x86-64-v3 --stats"), 1, "%s", out);
	cr_expect(strstr(out, "b.nn:7:130: error: precision: bf16 needs avx512bf16, which CPU 'x86-64-v3' lacks\n"),
		  "%s", out);
	cr_expect(strstr(out, "hint: train in float32: precision: fp32 (the default)"), "%s", out);
	free(out);
	cr_expect_eq(nnc(&out, "b.nn --cpu x86-64-v3 --precision fp32 --stats"), 0, "%s", out);
	free(out);
	/* a CPU with the instructions: an object using them, which says so */
	cr_expect_eq(nnc(&out, "b.nn --cpu sapphirerapids -c -o s.o"), 0, "%s", out);
	free(out);
	cr_expect_eq(nnc(&out, "m.nn --precision bf16 --cpu x86-64-v4 --target-features +avx512bf16 -S -o s.s"), 0,
		     "%s", out);
	free(out);
	cr_expect_eq(sh_run(&out, "cd '%s' && grep -c vdpbf16ps s.s", dir), 0, "no vdpbf16ps in the assembly:\n%s", out);
	free(out);
	cr_expect_eq(nnc(&out, "m.nn --cpu x86-64-v4 --target-features +avx512bf16 -S -o f.s"), 0, "%s", out);
	free(out);
	cr_expect_neq(sh_run(&out, "cd '%s' && grep -c vdpbf16ps f.s", dir), 0, "float32 code uses vdpbf16ps");
	free(out);
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512bf16")) {
		cr_expect_eq(nnc(&out, "m.nn --precision bf16 -o m"), 2, "%s", out);
		cr_expect(strstr(out, "needs avx512bf16, which CPU"), "%s", out);
		free(out);
		cr_expect(!exists("m"), "a bf16 program was written for a host without avx512bf16");
		free(b);
		free(bf);
		return;
	}
	/* this host has them: bf16 trains to float32's accuracy, from the
	 * flag or the file, and the runtime checks the CPU for them */
	cr_assert_eq(nnc(&out, "m.nn -o m32"), 0, "%s", out);
	free(out);
	cr_assert_eq(nnc(&out, "m.nn --precision bf16 -o m16"), 0, "%s", out);
	free(out);
	cr_assert_eq(nnc(&out, "b.nn -o b16"), 0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "cd '%s' && ./m32 --epochs 4", dir), 0, "%s", out);
	double acc32 = last_metric(out, "test_acc "), loss32 = last_metric(out, "test_loss ");
	cr_expect(!strstr(out, "bf16"), "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "cd '%s' && ./m16 --epochs 4", dir), 0, "%s", out);
	double acc16 = last_metric(out, "test_acc "), loss16 = last_metric(out, "test_loss ");
	cr_expect(strstr(out, ", bf16 products, "), "the summary line does not say bf16:\n%s", out);
	free(out);
	/* the binary's --precision: a bf16 build runs float32 products too,
	 * exactly as the float32 build; a float32 build refuses bf16 */
	cr_assert_eq(sh_run(&out, "cd '%s' && ./m16 --epochs 4 --precision fp32", dir), 0, "%s", out);
	cr_expect_float_eq(last_metric(out, "test_loss "), loss32, 1e-9, "--precision fp32 is not float32:\n%s", out);
	cr_expect(!strstr(out, "bf16"), "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, "cd '%s' && ./m16 --epochs 4 --precision bf16", dir), 0, "%s", out);
	cr_expect_float_eq(last_metric(out, "test_loss "), loss16, 1e-9, "%s", out);
	free(out);
	cr_expect_eq(sh_run(&out, "cd '%s' && ./m32 --precision bf16", dir), 2, "%s", out);
	cr_expect(strstr(out, "m32: error: --precision bf16: model 'moons' was compiled with float32 products; compile "
			      "it with nnc --precision bf16"),
		  "%s", out);
	free(out);
	cr_expect_eq(sh_run(&out, "cd '%s' && ./m16 --precision fp16", dir), 2, "%s", out);
	cr_expect(strstr(out, "--precision takes fp32 or bf16, not 'fp16'"), "%s", out);
	free(out);
	cr_expect(fabs(acc16 - acc32) <= 0.05 && acc16 >= 0.8, "bf16 test accuracy %.4f, float32 %.4f", acc16, acc32);
	cr_assert_eq(sh_run(&out, "cd '%s' && ./b16 --epochs 4", dir), 0, "%s", out);
	cr_expect_float_eq(last_metric(out, "test_loss "), loss16, 1e-9, "the file's bf16 trains like the flag's:\n%s",
			   out);
	free(out);
	/* the embedding API: <prefix>_set_precision, a float32 object refusing bf16 */
	write_file("app.c", "#include <stdio.h>\n"
			    "#include <string.h>\n"
			    "#include \"m.h\"\n"
			    "int main(void)\n"
			    "{\n"
			    "\tint err = -1;\n"
			    "\tmoons_instance *net = moons_new(&err);\n"
			    "\tif (!net)\n"
			    "\t\treturn 1;\n"
			    "\tfloat x[64], a[64], b[64], c[64];\n"
			    "\tfor (int i = 0; i < 64; i++)\n"
			    "\t\tx[i] = (float)(i % 7) * 0.37f - 1.1f;\n"
			    "\tint r1 = moons_infer(net, x, 32, a);\n"
			    "\tint r2 = moons_set_precision(net, NNRT_PRECISION_FP32);\n"
			    "\tint r3 = moons_infer(net, x, 32, b);\n"
			    "\tint r4 = moons_set_precision(net, NNRT_PRECISION_BF16);\n"
			    "\tint r5 = moons_infer(net, x, 32, c);\n"
			    "\tint r6 = moons_set_precision(net, 7);\n"
			    "\tprintf(\"model %d rc %d %d %d %d %d %d bf16/fp32 differ %d bf16 again same %d\\n\",\n"
			    "\t       (int)moons_model.precision, r1, r2, r3, r4, r5, r6, memcmp(a, b, sizeof a) != 0,\n"
			    "\t       memcmp(a, c, sizeof a) == 0);\n"
			    "\tmoons_free(net);\n"
			    "\treturn 0;\n"
			    "}\n");
	const char *link = "${CC:-cc} app.c m.o -I'%s/runtime' '%s/runtime/libnnrt.a' -fopenmp -lz -lm -o app";
	char cmd[512];
	snprintf(cmd, sizeof cmd, "cd '%%s' && %s && ./app", link);
	cr_assert_eq(nnc(&out, "m.nn --precision bf16 -c -o m.o"), 0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, cmd, dir, NNC_SOURCE_DIR, NNC_BINARY_DIR), 0, "%s", out);
	cr_expect(strstr(out, "model 1 rc 0 0 0 0 0 1 bf16/fp32 differ 1 bf16 again same 1"), "%s", out);
	free(out);
	cr_assert_eq(nnc(&out, "m.nn -c -o m.o"), 0, "%s", out);
	free(out);
	cr_assert_eq(sh_run(&out, cmd, dir, NNC_SOURCE_DIR, NNC_BINARY_DIR), 0, "%s", out);
	cr_expect(strstr(out, "model 0 rc 0 0 0 1 0 1 bf16/fp32 differ 0 bf16 again same 1"), "%s", out);
	free(out);
	cr_expect_eq(sh_run(&out, "cd '%s' && NNRT_CPU_DISABLE=avx512bf16 ./m16 --epochs 1", dir), 1, "%s", out);
	cr_expect(strstr(out, "this CPU lacks avx512bf16, which the model's code was compiled for"), "%s", out);
	free(out);
	free(b);
	free(bf);
}

/* The extensions nnc records for a CPU are the ones LLVM enables for it,
 * and all of them are ones the runtime can detect. */
Test(driver, recorded_extensions_are_llvms_and_the_runtime_knows_them)
{
	LLVMTargetMachineRef tm = nnc_target_machine(NULL, 0);
	for (int i = 0; nnc_target_checked[i]; i++) {
		cr_expect(nnc_llvm_feature_known(tm, nnc_target_checked[i]), "LLVM has no '%s'", nnc_target_checked[i]);
		char err[512];
		cr_expect_neq(nnrt_cpu_check(nnc_target_checked[i], err, sizeof err), -1, "%s", err);
	}
	LLVMDisposeTargetMachine(tm);
	cr_expect_str_eq(nnc_target_required(&(nnc_target){.cpu = "x86-64"}), "");
	cr_expect_str_eq(nnc_target_required(&(nnc_target){.cpu = "x86-64-v2"}),
			 "sse3,ssse3,sse4.1,sse4.2,popcnt,cx16,sahf");
	cr_expect_str_eq(nnc_target_required(&(nnc_target){.cpu = "x86-64-v3"}),
			 "sse3,ssse3,sse4.1,sse4.2,popcnt,cx16,sahf,avx,avx2,fma,f16c,bmi,bmi2,lzcnt,movbe");
	cr_expect_str_eq(nnc_target_required(&(nnc_target){.cpu = "x86-64-v3", .features = "-avx2,-fma"}),
			 "sse3,ssse3,sse4.1,sse4.2,popcnt,cx16,sahf,avx,f16c,bmi,bmi2,lzcnt,movbe");
	/* with what a feature implies: AVX-512F needs AVX2, FMA and F16C */
	cr_expect_str_eq(nnc_target_required(&(nnc_target){.cpu = "x86-64-v2", .features = "+avx512f"}),
			 "sse3,ssse3,sse4.1,sse4.2,popcnt,cx16,sahf,avx,avx2,fma,f16c,avx512f");
	cr_expect(strstr(nnc_target_required(&(nnc_target){.cpu = "x86-64-v4"}),
			 ",avx512f,avx512dq,avx512cd,avx512bw,avx512vl"));
	/* the runtime's answers */
	char err[512];
	cr_expect_eq(nnrt_cpu_check(NULL, err, sizeof err), 0);
	cr_expect_eq(nnrt_cpu_check("", err, sizeof err), 0);
	cr_expect_eq(nnrt_cpu_check("sse3,avx9000", err, sizeof err), -1);
	cr_expect(strstr(err, "cannot check whether this CPU has avx9000, "), "%s", err);
	setenv("NNRT_CPU_DISABLE", "sse4.1,fma", 1);
	cr_expect_eq(nnrt_cpu_check("sse3,sse4.1,fma", err, sizeof err), 1);
	cr_expect_str_eq(err, "this CPU lacks sse4.1, fma, which the model's code was compiled for; compile it for this "
			      "CPU (nnc's default) or a CPU it can run, such as nnc --cpu x86-64");
	unsetenv("NNRT_CPU_DISABLE");
	nnc_arena_free_all();
}

/* Value of `key` (e.g. "test_loss ") in the last line of out. */
static double last_metric(const char *out, const char *key)
{
	const char *p = NULL;
	for (const char *q = out; (q = strstr(q, key)); q++)
		p = q;
	cr_assert_not_null(p, "no %s in\n%s", key, out);
	return atof(p + strlen(key));
}

Test(driver, binaries_check_the_cpu_before_running_its_code)
{
	write_file("m.nn", moons_nn);
	char *out;
	static const char *const cpus[] = {"host", "x86-64", "x86-64-v3", "x86-64-v4"};
	for (size_t i = 0; i < sizeof cpus / sizeof cpus[0]; i++) {
		char args[128];
		snprintf(args, sizeof args, "m.nn --cpu %s -o m-%s", cpus[i], cpus[i]);
		cr_assert_eq(nnc(&out, args), 0, "nnc %s:\n%s", args, out);
		free(out);
	}
	__builtin_cpu_init();
	bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
	bool v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
	/* the generic build runs anywhere, and trains like the host's build */
	int rc = sh_run(&out, "cd '%s' && ./m-x86-64 --epochs 3", dir);
	cr_assert_eq(rc, 0, "%s", out);
	double loss = last_metric(out, "test_loss "), acc = last_metric(out, "test_acc ");
	free(out);
	cr_assert_eq(sh_run(&out, "cd '%s' && ./m-host --epochs 3", dir), 0, "%s", out);
	cr_expect_float_eq(last_metric(out, "test_loss "), loss, 1e-3 * loss + 1e-6, "%s", out);
	cr_expect_float_eq(last_metric(out, "test_acc "), acc, 1e-6, "%s", out);
	free(out);
	/* a CPU level this one has runs; one it lacks is refused, naming what is missing */
	rc = sh_run(&out, "cd '%s' && ./m-x86-64-v3 --epochs 1", dir);
	cr_expect_eq(rc, v3 ? 0 : 1, "%s", out);
	free(out);
	rc = sh_run(&out, "cd '%s' && ./m-x86-64-v4 --epochs 1", dir);
	if (v4) {
		cr_expect_eq(rc, 0, "%s", out);
	} else {
		cr_expect_eq(rc, 1, "a CPU without AVX-512 ran code compiled for x86-64-v4 (status %d):\n%s", rc, out);
		cr_expect(strstr(out, "m-x86-64-v4: error: this CPU lacks avx512f, "), "%s", out);
		cr_expect(strstr(out, "such as nnc --cpu x86-64-v"), "%s", out);
	}
	free(out);
	/* a CPU without an extension, simulated */
	if (v3) {
		rc = sh_run(&out, "cd '%s' && NNRT_CPU_DISABLE=fma ./m-x86-64-v3 --epochs 1", dir);
		cr_expect_eq(rc, 1, "%s", out);
		cr_expect(strstr(out, "m-x86-64-v3: error: this CPU lacks fma, which the model's code was compiled for; "
				      "compile it for this CPU (nnc's default) or a CPU it can run, such as nnc --cpu "
				      "x86-64-v2\n"),
			  "%s", out);
		free(out);
		rc = sh_run(&out, "cd '%s' && NNRT_CPU_DISABLE=avx2 ./m-host --epochs 1", dir);
		cr_expect_eq(rc, 1, "%s", out);
		cr_expect(strstr(out, "this CPU lacks avx2, "), "%s", out);
		free(out);
	}
	rc = sh_run(&out, "cd '%s' && NNRT_CPU_DISABLE=avx2,fma,sse4.2 ./m-x86-64 --epochs 1", dir);
	cr_expect_eq(rc, 0, "the generic build needs nothing:\n%s", out);
	free(out);
}

/* Through the embedding API, <prefix>_new fails with NNRT_ERR_CPU and
 * nnrt_cpu_check names what is missing. */
Test(driver, embedded_objects_check_the_cpu_in_new)
{
	write_file("m.nn", moons_nn);
	write_file("app.c", "#include <stdio.h>\n"
			    "#include \"m.h\"\n"
			    "int main(void)\n"
			    "{\n"
			    "\tint err = -1;\n"
			    "\tmoons_instance *net = moons_new(&err);\n"
			    "\tif (!net) {\n"
			    "\t\tchar why[400];\n"
			    "\t\tnnrt_cpu_check(moons_model.cpu_features, why, sizeof why);\n"
			    "\t\tprintf(\"new: %d: %s\\n%s\\n\", err, nnrt_strerror(err), why);\n"
			    "\t\treturn 1;\n"
			    "\t}\n"
			    "\tfloat x[2] = {0.5f, -0.25f}, y[2];\n"
			    "\tint rc = moons_infer(net, x, 1, y);\n"
			    "\tprintf(\"infer: %d %.3f\\n\", rc, y[0] + y[1]);\n"
			    "\tmoons_free(net);\n"
			    "\treturn rc;\n"
			    "}\n");
	char *out;
	cr_assert_eq(nnc(&out, "m.nn -c -o m.o --cpu x86-64-v3"), 0, "%s", out);
	free(out);
	int rc = sh_run(&out, "cd '%s' && ${CC:-cc} app.c m.o -I'%s/runtime' '%s/runtime/libnnrt.a' -fopenmp -lz -lm -o app",
			dir, NNC_SOURCE_DIR, NNC_BINARY_DIR);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
		cr_expect_eq(sh_run(&out, "cd '%s' && ./app", dir), 0, "%s", out);
		cr_expect(strstr(out, "infer: 0 1.000"), "%s", out);
		free(out);
	}
	rc = sh_run(&out, "cd '%s' && NNRT_CPU_DISABLE=avx2,bmi2 ./app", dir);
	cr_expect_eq(rc, 1, "%s", out);
	cr_expect(strstr(out, "new: 12: this CPU lacks instruction-set extensions the model was compiled for"), "%s", out);
	cr_expect(strstr(out, "this CPU lacks avx2, bmi2, which the model's code was compiled for"), "%s", out);
	free(out);
}

/* ---- parallel code generation (emit.c, target_llvm.cpp) ---- */

/* An executable's module is split into parts generated on several
 * threads: the bytes do not depend on the thread count, and the split
 * binary (different bytes from the one-part build, so the split happened)
 * trains exactly like it. */
Test(driver, split_code_generation_is_deterministic_and_trains_like_one_part)
{
	write_file("big.nn", "model big\n"
			     "input x : f32[2]\n"
			     "label y : class(2)\n"
			     "h = x |> dense(32) |> tanh |> dense(32) |> relu |> dense(32) |> sigmoid |> dense(32)\n"
			     "loss softmax_cross_entropy(h |> dense(2), y)\n"
			     "optimizer adam(lr: 0.01)\n"
			     "train { data: moons(count: 256, noise: 0.1, seed: 1), test: moons(count: 64, seed: 2),"
			     " batch: 32, epochs: 2, seed: 3 }\n");
	static const char *const builds[][2] = {
		{"one", "NNC_CODEGEN_PARTS=1"},
		{"t1", "NNC_CODEGEN_THREADS=1"},
		{"t2", "NNC_CODEGEN_THREADS=2"},
		{"t3", "NNC_CODEGEN_THREADS=3"},
		{"p3t1", "NNC_CODEGEN_PARTS=3 NNC_CODEGEN_THREADS=1"},
		{"p3t2", "NNC_CODEGEN_PARTS=3 NNC_CODEGEN_THREADS=2"},
	};
	char *out;
	for (size_t i = 0; i < sizeof builds / sizeof builds[0]; i++) {
		const char *b = builds[i][0];
		int rc = sh_run(&out, "cd '%s' && env %s '%s' big.nn -o %s", dir, builds[i][1], NNC_EXE, b);
		cr_assert_eq(rc, 0, "%s: %s", builds[i][1], out);
		free(out);
		/* the trained weights, bit for bit */
		rc = sh_run(&out, "cd '%s' && ./%s --quiet --save %s.ckpt && cmp one.ckpt %s.ckpt", dir, b, b, b);
		cr_expect_eq(rc, 0, "%s trains differently: %s", builds[i][1], out);
		free(out);
	}
	cr_expect_neq(sh_run(&out, "cd '%s' && cmp -s one t1", dir), 0, "the default build was not split");
	free(out);
	cr_expect_eq(sh_run(&out, "cd '%s' && cmp t1 t2 && cmp t1 t3 && cmp p3t1 p3t2", dir), 0,
		     "the thread count changed the bytes: %s", out);
	free(out);
}

/* The entry bodies go to a part of their own, generated by LLVM's -O0 code
 * generator (cg.c mark_quick, emit.c plan_parts): the same training,
 * checkpoint and predictions (--predict's last <= 4 samples too, which an
 * executable infers with its main graph: 3 alone, 67 = a batch of 64 + 3) as
 * the one-module build and the split without it (NNC_QUICK_CODEGEN=0), and
 * different bytes, so the quick part was made; NNC_TIME reports it. */
Test(driver, quick_code_generation_trains_and_predicts_like_full, .timeout = 240)
{
	char path[3][128];
	snprintf(path[0], sizeof path[0], "%s/img.csv", dir);
	snprintf(path[1], sizeof path[1], "%s/p3.csv", dir);
	snprintf(path[2], sizeof path[2], "%s/p67.csv", dir);
	FILE *f = fopen(path[0], "w"), *p3 = fopen(path[1], "w"), *p67 = fopen(path[2], "w");
	cr_assert(f && p3 && p67);
	unsigned s = 12345;
	for (int r = 0; r < 160; r++) {
		int label = r % 3;
		for (int k = 0; k < 36; k++) {
			s = s * 1103515245u + 12345u;
			double v = (double)(s >> 16 & 0x7fff) / 32768.0 + (k % 3 == label ? 0.5 : 0.0);
			fprintf(f, "%.4f,", v);
			if (r < 67)
				fprintf(p67, "%.4f%s", v, k < 35 ? "," : "\n");
			if (r < 3)
				fprintf(p3, "%.4f%s", v, k < 35 ? "," : "\n");
		}
		fprintf(f, "%d\n", label);
	}
	fclose(f);
	fclose(p3);
	fclose(p67);
	char cols[200] = "";
	for (int k = 0; k < 36; k++)
		snprintf(cols + strlen(cols), sizeof cols - strlen(cols), "%s%d", k ? ", " : "", k);
	char text[1024];
	snprintf(text, sizeof text, "model img\n"
					 "input x : f32[1, 6, 6]\n"
					 "label y : class(3)\n"
					 "h = x |> conv2d(4, 3, pad: 1, bias: false) |> batchnorm |> relu\n"
					 "k = h |> conv2d(4, 3, pad: 1) |> relu |> flatten |> dense(3)\n"
					 "loss softmax_cross_entropy(k, y)\n"
					 "optimizer sgd(lr: 0.05, momentum: 0.9)\n"
					 "train { data: csv(\"img.csv\", x: [%s], y: 36), batch: 64, epochs: 2, seed: 3 }\n",
					 cols);
	write_file("img.nn", text);
	static const char *const builds[][2] = {
		{"one", "NNC_CODEGEN_PARTS=1"},
		{"full", "NNC_CODEGEN_PARTS=2 NNC_QUICK_CODEGEN=0"},
		{"quick", "NNC_CODEGEN_PARTS=2 NNC_CODEGEN_THREADS=2"},
		{"quick1", "NNC_CODEGEN_PARTS=2 NNC_CODEGEN_THREADS=1"},
	};
	char *out;
	for (size_t i = 0; i < sizeof builds / sizeof builds[0]; i++) {
		const char *b = builds[i][0];
		int rc = sh_run(&out, "cd '%s' && env NNC_TIME=1 %s '%s' img.nn -o %s", dir, builds[i][1], NNC_EXE, b);
		cr_assert_eq(rc, 0, "%s: %s", builds[i][1], out);
		/* the split reports each part; the quick one is part 2 */
		cr_expect(strstr(out, "nnc: time: link") && strstr(out, "nnc: time: lower"), "%s", out);
		cr_expect_eq(strstr(out, "nnc: time: part 2 ") != NULL, !strncmp(b, "quick", 5), "%s: %s", b, out);
		free(out);
		rc = sh_run(&out, "cd '%s' && ./%s --quiet --save %s.ckpt && ./%s --load %s.ckpt --predict p3.csv "
				  "--probabilities > %s.p3 && ./%s --load %s.ckpt --predict p67.csv --probabilities > %s.p67",
			    dir, b, b, b, b, b, b, b, b);
		cr_assert_eq(rc, 0, "%s: %s", b, out);
		free(out);
		rc = sh_run(&out, "cd '%s' && cmp one.ckpt %s.ckpt && cmp one.p3 %s.p3 && cmp one.p67 %s.p67", dir, b, b, b);
		cr_expect_eq(rc, 0, "%s trains or predicts differently: %s", builds[i][1], out);
		free(out);
	}
	char *p = read_file("one.p67");
	int lines = 0;
	for (char *q = p; *q; q++)
		lines += *q == '\n';
	cr_expect_eq(lines, 67, "%s", p);
	free(p);
	cr_expect_neq(sh_run(&out, "cd '%s' && cmp -s full quick", dir), 0, "no quick part was made");
	free(out);
	cr_expect_eq(sh_run(&out, "cd '%s' && cmp quick quick1", dir), 0, "the thread count changed the bytes: %s", out);
	free(out);
}
