#define _POSIX_C_SOURCE 200809L
/*
 * test_mpi.c - data-parallel training under mpirun (docs/distributed.md),
 * run the way a user runs it: binaries compiled by nnc, launched by mpirun
 * with 1, 2 and 4 ranks (--oversubscribe: this machine has 2 cores), their
 * checkpoints compared byte for byte with one process's.  Every test is
 * skipped, with a message saying why, where MPI is not installed or the
 * runtime was built without it (NNC_MPI=OFF).
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sh_harness.h"

static char tmpdir[256];

/* mpirun as root needs the OMPI_ALLOW variables; harmless otherwise.  In
 * the sanitized build (scripts/test.sh) the ranks run without leak checks:
 * Open MPI keeps allocations of MPI_Init (some in plugins it unloads, so no
 * suppression can name them) until exit.  One process, without mpirun,
 * never initialises MPI and keeps them. */
#define MPIRUN                                                                                  \
	"env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 OMPI_ALLOW_RUN_AS_ROOT=1 " \
	"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe"

static void setup(void)
{
	sh_mktemp(tmpdir, sizeof tmpdir, "mpi");
}

static void teardown(void)
{
	sh_rmtree(tmpdir);
}

TestSuite(mpi, .init = setup, .fini = teardown, .timeout = 300);

/* Skips the test unless mpirun is there and the runtime has MPI support. */
static void need_mpi(void)
{
	char *out;
	int rc = sh_run(&out, "command -v mpirun");
	free(out);
	if (rc != 0)
		cr_skip_test("MPI is not installed (apt-get install libopenmpi-dev openmpi-bin; scripts/deps.sh does): "
		             "data-parallel tests skipped");
	if (access(NNC_BINARY_DIR "/runtime/libnnrt_mpi.link", R_OK) != 0)
		cr_skip_test("the runtime was built without MPI (NNC_MPI=OFF): data-parallel tests skipped");
}

/* Compiles examples/NAME.nn (or tmpdir/NAME.nn) into tmpdir/OUT with nnc's
 * extra options. */
static void compile(const char *src, const char *out_name, const char *opts)
{
	char *out;
	int rc = sh_run(&out, "'%s' '%s' %s -o '%s/%s'", NNC_EXE, src, opts, tmpdir, out_name);
	cr_assert_eq(rc, 0, "nnc %s failed (%d):\n%s", src, rc, out);
	free(out);
}

static void compile_example(const char *name, const char *opts)
{
	char src[512];
	snprintf(src, sizeof src, "%s/examples/%s.nn", NNC_SOURCE_DIR, name);
	compile(src, name, opts);
}

/* Runs `cmd` in tmpdir, which must succeed; returns its output. */
static char *run_ok(const char *cmd)
{
	char *out;
	int rc = sh_run(&out, "cd '%s' && %s", tmpdir, cmd);
	cr_assert_eq(rc, 0, "'%s' failed (%d):\n%s", cmd, rc, out);
	return out;
}

/* Whether two files of tmpdir are byte for byte the same. */
static int same(const char *a, const char *b)
{
	return sh_run(NULL, "cd '%s' && cmp -s '%s' '%s'", tmpdir, a, b) == 0;
}

/* The epoch lines (without the timing columns) of a run's output. */
static char *epoch_lines(const char *text)
{
	char *r = calloc(strlen(text) + 1, 1);
	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (!strncmp(line, "epoch", 5)) {
			const char *cut = strstr(line, "samples/s");
			size_t keep = cut && cut < line + len ? (size_t)(cut - line) : len;
			while (keep && line[keep - 1] == ' ')
				keep--;
			while (keep && line[keep - 1] != ' ')
				keep--; /* the number before samples/s */
			strncat(r, line, keep);
			strcat(r, "\n");
		}
		line += len + (end != NULL);
	}
	return r;
}

/* One process (no mpirun), then mpirun with 1, 2 and 4 ranks, of the same
 * binary and flags: every checkpoint must be the one process's, byte for
 * byte, and every epoch line the same. */
static void check_identical_with(const char *bin, const char *flags, const char *env, int threads)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "./%s %s --threads 1 --save one.ckpt", bin, flags);
	char *one = run_ok(cmd);
	char *want = epoch_lines(one);
	cr_assert(strstr(want, "epoch"), "no epoch line:\n%s", one);
	static const int ranks[] = {1, 2, 4};
	for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
		char ck[32];
		snprintf(ck, sizeof ck, "n%d.ckpt", ranks[i]);
		snprintf(cmd, sizeof cmd, "env %s " MPIRUN " -np %d ./%s %s --threads %d --save %s", env, ranks[i], bin, flags,
		         threads, ck);
		char *out = run_ok(cmd);
		char *got = epoch_lines(out);
		cr_expect_str_eq(got, want, "%d ranks printed other epoch lines:\n%s", ranks[i], out);
		cr_expect(same("one.ckpt", ck), "%d ranks: the checkpoint differs from one process's", ranks[i]);
		free(got);
		free(out);
	}
	free(want);
	free(one);
}

static void check_identical(const char *bin, const char *flags) { check_identical_with(bin, flags, "", 1); }

/* 50 steps of LeNet (batch 64, 4 chunks): convolutions, pooling, dense. */
Test(mpi, lenet_50_steps_identical_for_1_2_4_ranks)
{
	need_mpi();
	compile_example("lenet", "--chunks 4");
	check_identical("lenet", "--limit 3200 --test-limit 300 --epochs 1");
}

/* 50 steps of the MLP, and an evaluation split across the ranks. */
Test(mpi, mlp_50_steps_identical_for_1_2_4_ranks)
{
	need_mpi();
	compile_example("mlp", "--chunks 4");
	check_identical("mlp", "--limit 3200 --test-limit 1000 --epochs 1");
}

/* Batch statistics (every rank needs every chunk's partials before the
 * combine), running statistics (state moved by chunk 0's rank), dropout
 * (the random stream of global sample indices), Adam, a last partial batch
 * (1000 = 31 * 32 + 8: ranks without samples in it) and 8 chunks. */
static const char bn_model[] =
	"model bnet\n"
	"input x : f32[2]\n"
	"label y : class(3)\n"
	"h1 = x |> dense(32, bias: false) |> batchnorm |> relu |> dropout(0.2)\n"
	"h2 = h1 |> dense(24) |> batchnorm(momentum: 0.01) |> tanh\n"
	"logits = h2 |> dense(3)\n"
	"loss softmax_cross_entropy(logits, y)\n"
	"optimizer adam(lr: 0.01)\n"
	"train {\n"
	"  data: spiral(count: 1000, noise: 0.2, seed: 1)\n"
	"  test: spiral(count: 300, noise: 0.2, seed: 2)\n"
	"  batch: 32\n"
	"  epochs: 2\n"
	"  seed: 3\n"
	"}\n";

static void write_bn_model_as(const char *bin, const char *opts)
{
	char path[512];
	snprintf(path, sizeof path, "%s/bnet.nn", tmpdir);
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs(bn_model, f);
	fclose(f);
	compile(path, bin, opts);
}

static void write_bn_model(void) { write_bn_model_as("bnet", "--chunks 8"); }

Test(mpi, batchnorm_dropout_identical_for_1_2_4_ranks)
{
	need_mpi();
	write_bn_model();
	check_identical("bnet", "");
}

/* A checkpoint does not depend on the ranks that wrote it: saved by 2
 * ranks after one epoch, resumed by 1 process and by 4 ranks, both end
 * where the uninterrupted run ends. */
Test(mpi, resume_with_any_number_of_ranks)
{
	need_mpi();
	write_bn_model();
	free(run_ok("./bnet --epochs 3 --threads 1 --save full.ckpt"));
	free(run_ok(MPIRUN " -np 2 ./bnet --epochs 1 --threads 1 --save half.ckpt"));
	free(run_ok("cp half.ckpt half4.ckpt"));
	free(run_ok("./bnet --epochs 3 --threads 1 --resume half.ckpt --save r1.ckpt"));
	free(run_ok(MPIRUN " -np 4 ./bnet --epochs 3 --threads 1 --resume half4.ckpt --save r4.ckpt"));
	cr_expect(same("full.ckpt", "r1.ckpt"), "saved by 2 ranks, resumed by 1 process: differs");
	cr_expect(same("full.ckpt", "r4.ckpt"), "saved by 2 ranks, resumed by 4 ranks: differs");
}

/* --allreduce: MPI sums the ranks' gradients; trains, close to the exact
 * path (not bit-identical: the order of the sum is MPI's). */
Test(mpi, allreduce_fast_path_trains)
{
	need_mpi();
	compile_example("mlp", "--chunks 4");
	char *exact = run_ok(MPIRUN " -np 2 ./mlp --limit 3200 --test-limit 1000 --epochs 1 --threads 1");
	char *fast = run_ok(MPIRUN " -np 2 ./mlp --limit 3200 --test-limit 1000 --epochs 1 --threads 1 --allreduce");
	const char *a = strstr(exact, "test_acc "), *b = strstr(fast, "test_acc ");
	cr_assert(a && b, "no test_acc:\n%s\n%s", exact, fast);
	double x = strtod(a + 9, NULL), y = strtod(b + 9, NULL);
	cr_expect(fabs(x - y) < 0.02, "test_acc %g (ordered) vs %g (allreduce)", x, y);
	cr_expect(x > 0.7, "the MLP did not learn: test_acc %g", x);
	free(exact);
	free(fast);
}

static char *run_fail(const char *cmd, double *seconds);

/* ---- The overlapped exchange (docs/distributed.md "Overlap") ----
 *
 * Compiled with NNC_DIST_BUCKET=1, every parameter's gradient is a bucket of
 * its own, sent as soon as the op that completes it has run in its chunk;
 * NNRT_DIST_CHECK=1 makes every rank verify, at the end of each step, that
 * no bucket it sent changed afterwards (a bucket sent before the backward
 * pass completed it stops the run).  Ranks then run 2 threads each, so
 * that another thread than thread 0 (which sends) completes buckets. */
#define SMALL_BUCKETS "NNC_DIST_BUCKET=1 "

static void compile_small_buckets(const char *name, const char *src, const char *opts)
{
	char *out;
	int rc = sh_run(&out, SMALL_BUCKETS "'%s' '%s' %s -o '%s/%s'", NNC_EXE, src, opts, tmpdir, name);
	cr_assert_eq(rc, 0, "nnc %s failed (%d):\n%s", src, rc, out);
	free(out);
}

static void compile_example_small_buckets(const char *name, const char *opts)
{
	char src[512];
	snprintf(src, sizeof src, "%s/examples/%s.nn", NNC_SOURCE_DIR, name);
	compile_small_buckets(name, src, opts);
}

Test(mpi, overlapped_lenet_in_small_buckets_identical_and_checked)
{
	need_mpi();
	compile_example_small_buckets("lenet", "--chunks 4");
	check_identical_with("lenet", "--limit 3200 --test-limit 300 --epochs 1", "NNRT_DIST_CHECK=1", 2);
}

Test(mpi, overlapped_mlp_in_small_buckets_identical_and_checked)
{
	need_mpi();
	compile_example_small_buckets("mlp", "--chunks 4");
	check_identical_with("mlp", "--limit 3200 --test-limit 1000 --epochs 1", "NNRT_DIST_CHECK=1", 2);
}

Test(mpi, overlapped_batchnorm_in_small_buckets_identical_and_checked)
{
	need_mpi();
	write_bn_model();
	char src[512];
	snprintf(src, sizeof src, "%s/bnet.nn", tmpdir);
	compile_small_buckets("bnet", src, "--chunks 8");
	check_identical_with("bnet", "", "NNRT_DIST_CHECK=1", 2);
}

/* --reduce-scatter: each rank sums its slice of every chunk's gradients in
 * chunk order, then the sums are all-gathered: still one process's bytes,
 * with 3 ranks too (slices of unequal sizes; 8 chunks, unevenly owned). */
Test(mpi, reduce_scatter_identical_for_1_2_3_4_ranks)
{
	need_mpi();
	write_bn_model();
	char src[512];
	snprintf(src, sizeof src, "%s/bnet.nn", tmpdir);
	compile_small_buckets("bnet", src, "--chunks 8");
	check_identical_with("bnet", "--reduce-scatter", "NNRT_DIST_CHECK=1", 2);
	free(run_ok(MPIRUN " -np 3 ./bnet --threads 1 --reduce-scatter --save n3.ckpt"));
	cr_expect(same("one.ckpt", "n3.ckpt"), "3 ranks: the checkpoint differs from one process's");
}

Test(mpi, reduce_scatter_lenet_identical)
{
	need_mpi();
	compile_example("lenet", "--chunks 4");
	check_identical_with("lenet", "--limit 3200 --test-limit 300 --epochs 1 --reduce-scatter", "", 1);
}

/* The megabytes a rank received per step, from the profile's line. */
static double profile_mb(const char *out)
{
	const char *p = strstr(out, " MB received");
	cr_assert(p, "no MB received in:\n%s", out);
	while (p > out && p[-1] != ' ')
		p--;
	return strtod(p, NULL);
}

/* The reduce-scatter's bytes: with 4 ranks of 4 chunks a rank receives 3/4
 * of P for its slices and 3/4 of P of the others' sums, half of the 3 P of
 * the ordered broadcasts. */
Test(mpi, reduce_scatter_moves_fewer_bytes)
{
	need_mpi();
	compile_example("mlp", "--chunks 4 --profile");
	char *ord = run_ok(MPIRUN " -np 4 ./mlp --limit 1280 --test-limit 1 --epochs 1 --threads 1");
	char *rs = run_ok(MPIRUN " -np 4 ./mlp --limit 1280 --test-limit 1 --epochs 1 --threads 1 --reduce-scatter");
	double a = profile_mb(ord), b = profile_mb(rs);
	cr_expect(a > 1.1 && b < 0.55 * a && b > 0.45 * a, "ordered %g MB, reduce-scatter %g MB per step", a, b);
	free(ord);
	free(rs);
}

/* The check can fail: NNRT_DIST_CHECK=early sends every bucket after the
 * chunk's first op, long before the backward pass completes it; the run
 * must stop, naming the bucket, within seconds. */
Test(mpi, a_bucket_sent_before_its_gradient_is_complete_is_caught)
{
	need_mpi();
	compile_example_small_buckets("mlp", "--chunks 4");
	double s;
	char *out = run_fail("env NNRT_DIST_CHECK=early " MPIRUN " -np 2 ./mlp --limit 640 --test-limit 100 --epochs 1 "
	                     "--threads 1",
	                     &s);
	cr_expect(strstr(out, "changed after it was sent"), "%s", out);
	cr_expect(s < 30, "took %.1f s to stop", s);
	free(out);
}

/* Many steps (2 epochs, 64 steps, the last a partial batch) of the
 * overlapped exchange against the one that waits for the end of the
 * backward pass: the same checkpoint, for the ordered path (which is also
 * one process's) and for --allreduce with 2 ranks (where MPI's sum of two
 * numbers has one order). */
Test(mpi, overlapped_and_not_overlapped_give_the_same_checkpoints)
{
	need_mpi();
	write_bn_model_as("bnet", "--chunks 8");
	free(run_ok("./bnet --threads 1 --save one.ckpt"));
	free(run_ok(MPIRUN " -np 2 ./bnet --threads 2 --save o.ckpt"));
	free(run_ok(MPIRUN " -np 2 ./bnet --threads 2 --no-overlap --save n.ckpt"));
	cr_expect(same("one.ckpt", "o.ckpt"), "overlapped: differs from one process");
	cr_expect(same("one.ckpt", "n.ckpt"), "not overlapped: differs from one process");
	free(run_ok(MPIRUN " -np 2 ./bnet --threads 2 --allreduce --save ao.ckpt"));
	free(run_ok(MPIRUN " -np 2 ./bnet --threads 2 --allreduce --no-overlap --save an.ckpt"));
	cr_expect(same("ao.ckpt", "an.ckpt"), "--allreduce: overlapped and not overlapped differ");
}

/* The amount of the exchange's time in a rank's line of the profile, "X
 * ms exposed" or "Y ms overlapped". */
static double profile_ms(const char *out, const char *what)
{
	const char *p = strstr(out, what);
	cr_assert(p, "no '%s' in:\n%s", what, out);
	while (p > out && p[-1] != ' ')
		p--;
	return strtod(p, NULL);
}

/* --profile: the exchange's time, exposed and overlapped; nothing
 * overlapped with --no-overlap. */
Test(mpi, profile_reports_exposed_and_overlapped_exchange)
{
	need_mpi();
	compile_example("mlp", "--chunks 4 --profile");
	char *out = run_ok(MPIRUN " -np 2 ./mlp --limit 1280 --test-limit 100 --epochs 1 --threads 1");
	cr_expect(strstr(out, "ordered, overlapped"), "%s", out);
	cr_expect(profile_ms(out, " ms overlapped per step") > 0, "nothing overlapped:\n%s", out);
	cr_expect(profile_ms(out, " ms exposed") >= 0, "%s", out);
	free(out);
	out = run_ok(MPIRUN " -np 2 ./mlp --limit 1280 --test-limit 100 --epochs 1 --threads 1 --no-overlap");
	cr_expect(strstr(out, "ordered, not overlapped"), "%s", out);
	cr_expect(profile_ms(out, " ms overlapped per step") == 0, "overlapped without overlap:\n%s", out);
	free(out);
}

/* Runs cmd (which must fail) and returns its output and the seconds it took. */
static char *run_fail(const char *cmd, double *seconds)
{
	char *out;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = sh_run(&out, "cd '%s' && timeout 60 %s", tmpdir, cmd);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
	cr_assert(rc != 0 && rc != 124, "'%s' should have failed promptly (status %d):\n%s", cmd, rc, out);
	return out;
}

/* Two binaries of one model compiled differently (2 vs 4 chunks: another
 * partition of the batch) must not train together. */
Test(mpi, mismatched_binaries_are_refused)
{
	need_mpi();
	write_bn_model();
	char src[512];
	snprintf(src, sizeof src, "%s/bnet.nn", tmpdir);
	compile(src, "bnet2", "--chunks 2");
	double s;
	char *out = run_fail(MPIRUN " -np 1 ./bnet --threads 1 : -np 1 ./bnet2 --threads 1", &s);
	cr_expect(strstr(out, "rank 1 runs another model object than rank 0"), "%s", out);
	cr_expect(!strstr(out, "epoch"), "trained anyway:\n%s", out);
	free(out);
}

Test(mpi, mismatched_checkpoints_are_refused)
{
	need_mpi();
	write_bn_model();
	free(run_ok("./bnet --epochs 1 --threads 1 --save a.ckpt"));
	free(run_ok("./bnet --epochs 1 --threads 1 --seed 9 --save b.ckpt"));
	double s;
	char *out = run_fail(MPIRUN " -np 1 ./bnet --threads 1 --resume a.ckpt : -np 1 ./bnet --threads 1 --resume b.ckpt",
	                     &s);
	cr_expect(strstr(out, "rank 1 loaded another checkpoint than rank 0"), "%s", out);
	free(out);
}

/* One rank cannot read its data: every rank stops, promptly, and the
 * message names the rank and the file. */
Test(mpi, a_rank_without_its_data_stops_every_rank)
{
	need_mpi();
	compile_example("mlp", "--chunks 4");
	double s;
	char *out = run_fail(MPIRUN " -np 1 ./mlp --limit 640 --threads 1 : -np 1 ./mlp --limit 640 --threads 1 "
	                            "--data missing-images.gz,missing-labels.gz",
	                     &s);
	cr_expect(strstr(out, "mlp (rank 1): error:") && strstr(out, "missing-images.gz"), "%s", out);
	cr_expect(s < 30, "took %.1f s to stop", s);
	free(out);
}

/* A rank killed in the middle of training: every rank stops within
 * seconds, and the last checkpoint rank 0 wrote is still a valid one. */
Test(mpi, a_killed_rank_stops_every_rank_and_the_checkpoint_stays_valid)
{
	need_mpi();
	write_bn_model();
	char script[512];
	snprintf(script, sizeof script, "%s/rank.sh", tmpdir);
	FILE *f = fopen(script, "w");
	cr_assert(f);
	/* rank 1 dies by SIGKILL a second after rank 0 wrote its first
	 * checkpoint (the run would last much longer), noting the time */
	fputs("#!/bin/sh\n"
	      "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then\n"
	      "  (while [ ! -e run.ckpt ]; do sleep 0.1; done; sleep 1; date +%s > killed; kill -9 $$) &\n"
	      "fi\n"
	      "exec ./bnet --epochs 100000 --threads 1 --checkpoint-every 1 --save run.ckpt --quiet\n",
	      f);
	fclose(f);
	double s;
	char *out = run_fail(MPIRUN " -np 2 sh rank.sh", &s);
	char *killed = run_ok("cat killed");
	long stop = (long)time(NULL) - strtol(killed, NULL, 10);
	cr_expect(stop <= 15, "every rank stopped only %ld s after rank 1 was killed:\n%s", stop, out);
	free(killed);
	free(out);
	out = run_ok("./bnet --eval --load run.ckpt --threads 1");
	cr_expect(strstr(out, "test_acc"), "%s", out);
	free(out);
}

/* A binary linked without the MPI transport (NNC_MPI=0) runs as one
 * process, and refuses to be one of several ranks that would each train
 * alone. */
Test(mpi, binary_without_mpi_refuses_several_ranks)
{
	need_mpi();
	char *out;
	char src[512];
	snprintf(src, sizeof src, "%s/examples/mlp.nn", NNC_SOURCE_DIR);
	int rc = sh_run(&out, "NNC_MPI=0 '%s' '%s' -o '%s/plain'", NNC_EXE, src, tmpdir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	free(run_ok("./plain --limit 640 --test-limit 100 --epochs 1 --threads 1"));
	double s;
	out = run_fail(MPIRUN " -np 2 ./plain --limit 640 --epochs 1 --threads 1", &s);
	cr_expect(strstr(out, "no MPI support"), "%s", out);
	free(out);
}

/* The embedding (examples/embed/train_mpi.c): a host program passes its
 * communicator; 1 rank and 2 ranks save the same checkpoint, which the
 * training binary of the same object's model reads. */
Test(mpi, embedded_instances_share_a_communicator)
{
	need_mpi();
	char *out;
	int rc = sh_run(&out,
	                "cd '%s' && '%s' '%s/examples/moons.nn' -c --chunks 4 -o moons.o && "
	                "OMPI_CC=\"${CC:-cc}\" mpicc -O2 -Wall -Wextra -Werror -I. -I'%s/runtime' -o train_mpi '%s/examples/embed/train_mpi.c' "
	                "moons.o '%s/runtime/libnnrt_mpi.a' '%s/runtime/libnnrt.a' -fopenmp -lz -lm",
	                tmpdir, NNC_EXE, NNC_SOURCE_DIR, NNC_SOURCE_DIR, NNC_SOURCE_DIR, NNC_BINARY_DIR, NNC_BINARY_DIR);
	cr_assert_eq(rc, 0, "building train_mpi failed:\n%s", out);
	free(out);
	char *one = run_ok(MPIRUN " -np 1 ./train_mpi --epochs 3 --save e1.ckpt");
	char *two = run_ok(MPIRUN " -np 2 ./train_mpi --epochs 3 --save e2.ckpt");
	cr_expect(same("e1.ckpt", "e2.ckpt"), "1 and 2 ranks saved different checkpoints:\n%s\n%s", one, two);
	cr_expect(strstr(two, "moons: 2 ranks") && strstr(two, "accuracy"), "%s", two);
	free(one);
	free(two);
	compile_example("moons", "--chunks 4");
	out = run_ok("./moons --eval --load e2.ckpt --threads 1");
	cr_expect(strstr(out, "test_acc"), "%s", out);
	free(out);
}
