/*
 * test_runtime.c - tests of libnnrt: RNG, the parallel team, the data
 * loaders, checkpoints, and nnrt_main end to end.
 *
 * The end-to-end tests need model bodies, which normally come from nnc.
 * Here they are written by hand in C (a 2-16-2 tanh MLP with Adam, a linear
 * regression with SGD + momentum, a softmax regression for Fashion-MNIST),
 * using the same contract as generated code: work split by (tid, nthreads),
 * nnrt_barrier() between dependent phases, metrics written by thread 0.  They
 * exercise the runtime, not the compiler.
 *
 * Every test runs in its own process (Criterion) with its own temporary
 * directory, holding the small IDX/CSV files it writes.  Error cases are
 * tables of input -> exact message; "{dir}" in a message stands for that
 * directory.
 */
#define _XOPEN_SOURCE 700

#include <criterion/criterion.h>

#include "nnrt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <zlib.h>

/* ---- Scratch directory and files ---- */

static char tmpdir[64];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/nnrt_test_XXXXXX");
	cr_assert(mkdtemp(tmpdir) != NULL);
	nnrt_set_error_echo(0);
}

static void teardown(void)
{
	DIR *d = opendir(tmpdir);
	if (!d)
		return;
	struct dirent *e;
	char path[512];
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
			unlink(path);
		}
	}
	closedir(d);
	rmdir(tmpdir);
}

TestSuite(rng, .init = setup, .fini = teardown);
TestSuite(parallel, .init = setup, .fini = teardown);
TestSuite(idx, .init = setup, .fini = teardown);
TestSuite(csv, .init = setup, .fini = teardown);
TestSuite(synth, .init = setup, .fini = teardown);
TestSuite(ckpt, .init = setup, .fini = teardown);
TestSuite(main, .init = setup, .fini = teardown);
TestSuite(model, .init = setup, .fini = teardown);
TestSuite(fashion, .init = setup, .fini = teardown);

/* Path of `name` in the scratch directory (a ring of static buffers). */
static const char *tpath(const char *name)
{
	static char ring[16][512];
	static int next;
	char *p = ring[next++ % 16];
	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

/* `tmpl` with every "{dir}" replaced by the scratch directory. */
static const char *subst(const char *tmpl)
{
	static char ring[4][2048];
	static int next;
	char *out = ring[next++ % 4];
	size_t n = 0;
	for (const char *p = tmpl; *p && n + 80 < 2048;) {
		if (strncmp(p, "{dir}", 5) == 0) {
			n += (size_t)snprintf(out + n, 2048 - n, "%s", tmpdir);
			p += 5;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = 0;
	return out;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert(f != NULL, "cannot create %s", path);
	cr_assert_eq(fwrite(p, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
}

static void write_gz(const char *path, const void *p, size_t n)
{
	gzFile f = gzopen(path, "wb");
	cr_assert(f != NULL);
	cr_assert_eq(gzwrite(f, p, (unsigned)n), (int)n);
	cr_assert_eq(gzclose(f), Z_OK);
}

static void write_text(const char *path, const char *s)
{
	write_bytes(path, s, strlen(s));
}

/* Whole file into a NUL-terminated heap string (NULL if missing). */
static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t k;
	while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += k;
		if (n + 1 == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

/* An IDX file of unsigned bytes: big-endian magic 0x000008NN, dims, data. */
static unsigned char *idx_bytes(size_t *len, int type, int ndims, const uint32_t *dims, const unsigned char *data,
                                size_t ndata)
{
	*len = 4 + 4 * (size_t)ndims + ndata;
	unsigned char *b = malloc(*len);
	b[0] = 0, b[1] = 0, b[2] = (unsigned char)type, b[3] = (unsigned char)ndims;
	for (int i = 0; i < ndims; i++)
		for (int k = 0; k < 4; k++)
			b[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
	if (ndata)
		memcpy(b + 4 + 4 * ndims, data, ndata);
	return b;
}

static void write_idx(const char *path, int gz, int type, int ndims, const uint32_t *dims,
                      const unsigned char *data, size_t ndata)
{
	size_t len;
	unsigned char *b = idx_bytes(&len, type, ndims, dims, data, ndata);
	if (gz)
		write_gz(path, b, len);
	else
		write_bytes(path, b, len);
	free(b);
}

/* A model with no bodies, enough for the loaders. */
static nnrt_model data_model(int64_t input, int32_t label_kind, int64_t label_size)
{
	nnrt_model m;
	memset(&m, 0, sizeof m);
	m.struct_size = sizeof m;
	m.abi_version = NNRT_ABI_VERSION;
	m.name = "t";
	m.input_rank = 1;
	m.input_shape[0] = input;
	m.input_size = input;
	m.label_kind = label_kind;
	m.label_size = label_size;
	m.output_size = label_size;
	m.batch = 4;
	return m;
}

/* ---- RNG ---- */

Test(rng, splitmix_seeding_is_the_reference_sequence)
{
	/* splitmix64 from state 0 yields 0xe220a8397b1dcdaf first: the
	 * published first output of the reference generator. */
	nnrt_rng r;
	nnrt_rng_seed(&r, 0);
	cr_assert_eq(r.s[0], 0xe220a8397b1dcdafull);
}

Test(rng, same_seed_same_stream_other_seed_other_stream)
{
	nnrt_rng a, b, c;
	nnrt_rng_seed(&a, 42);
	nnrt_rng_seed(&b, 42);
	nnrt_rng_seed(&c, 43);
	int differ = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = nnrt_rng_next(&a);
		cr_assert_eq(x, nnrt_rng_next(&b));
		differ += x != nnrt_rng_next(&c);
	}
	cr_assert_eq(differ, 1000);
}

Test(rng, state_is_four_words_and_resumes_exactly)
{
	nnrt_rng a, b;
	nnrt_rng_seed(&a, 7);
	for (int i = 0; i < 10; i++)
		nnrt_rng_normal(&a);
	memcpy(&b, &a, sizeof a);
	cr_assert_eq(sizeof a, 4 * sizeof(uint64_t));
	for (int i = 0; i < 100; i++)
		cr_assert_eq(nnrt_rng_normal(&a), nnrt_rng_normal(&b));
}

Test(rng, distributions)
{
	nnrt_rng r;
	nnrt_rng_seed(&r, 1);
	enum { N = 200000 };
	double su = 0, sn = 0, sn2 = 0;
	int64_t hist[10] = {0};
	for (int i = 0; i < N; i++) {
		float u = nnrt_rng_uniform(&r);
		cr_assert(u >= 0.0f && u < 1.0f);
		su += u;
		double z = nnrt_rng_normal(&r);
		cr_assert(isfinite(z));
		sn += z;
		sn2 += z * z;
		uint64_t k = nnrt_rng_below(&r, 10);
		cr_assert(k < 10);
		hist[k]++;
	}
	cr_assert_float_eq(su / N, 0.5, 0.01);
	cr_assert_float_eq(sn / N, 0.0, 0.01);
	cr_assert_float_eq(sn2 / N, 1.0, 0.02);
	for (int k = 0; k < 10; k++)
		cr_assert(hist[k] > N / 10 - N / 100 && hist[k] < N / 10 + N / 100, "bucket %d: %lld", k,
		          (long long)hist[k]);
	cr_assert_eq(nnrt_rng_below(&r, 1), 0);
}

Test(rng, shuffle_is_a_deterministic_permutation)
{
	enum { N = 1000 };
	int64_t a[N], b[N];
	nnrt_rng r1, r2;
	nnrt_rng_seed(&r1, 5);
	nnrt_rng_seed(&r2, 5);
	for (int i = 0; i < N; i++)
		a[i] = b[i] = i;
	nnrt_rng_shuffle(&r1, a, N);
	nnrt_rng_shuffle(&r2, b, N);
	int seen[N] = {0}, moved = 0;
	for (int i = 0; i < N; i++) {
		cr_assert_eq(a[i], b[i]);
		seen[a[i]]++;
		moved += a[i] != i;
	}
	for (int i = 0; i < N; i++)
		cr_assert_eq(seen[i], 1);
	cr_assert(moved > N / 2);
}

/* ---- Parallel team ---- */

enum { ROUNDS = 200 };
static volatile int slots[NNRT_MAX_THREADS];
static int errors[NNRT_MAX_THREADS], seen_tid[NNRT_MAX_THREADS], seen_nt[NNRT_MAX_THREADS];

/* Each round: everyone writes, barrier, everyone checks everyone, barrier.
 * Without a working barrier a thread sees a stale slot. */
static void barrier_body(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	(void)a;
	seen_tid[tid]++;
	seen_nt[tid] = nt;
	for (int r = 1; r <= ROUNDS; r++) {
		slots[tid] = r;
		nnrt_barrier();
		for (int t = 0; t < nt; t++)
			errors[tid] += slots[t] != r;
		nnrt_barrier();
	}
}

Test(parallel, barrier_orders_every_round)
{
	int sizes[] = {1, 2, 3, 4};
	for (int s = 0; s < 4; s++) {
		int n = sizes[s];
		memset(errors, 0, sizeof errors);
		memset(seen_tid, 0, sizeof seen_tid);
		nnrt_set_threads(n);
		cr_assert_eq(nnrt_get_threads(), n);
		nnrt_step_args args;
		memset(&args, 0, sizeof args);
		nnrt_run(barrier_body, &args);
		for (int t = 0; t < n; t++) {
			cr_assert_eq(seen_tid[t], 1, "thread %d of %d ran %d times", t, n, seen_tid[t]);
			cr_assert_eq(seen_nt[t], n);
			cr_assert_eq(errors[t], 0, "thread %d of %d saw %d stale slots", t, n, errors[t]);
		}
		cr_assert_eq(seen_tid[n], 0);
	}
}

/* nnrt_team: the caller's function runs on thread 0 while the others wait
 * for the bodies it passes to nnrt_run. */
static int team_rounds(void *ctx)
{
	nnrt_step_args args;
	memset(&args, 0, sizeof args);
	for (int i = 0; i < 5; i++)
		nnrt_run(barrier_body, &args);
	return *(int *)ctx;
}

Test(parallel, persistent_team_runs_every_body_on_every_thread)
{
	for (int n = 1; n <= 2; n++) {
		memset(errors, 0, sizeof errors);
		memset(seen_tid, 0, sizeof seen_tid);
		nnrt_set_threads(n);
		int ret = 40 + n;
		cr_assert_eq(nnrt_team(team_rounds, &ret), 40 + n);
		for (int t = 0; t < n; t++) {
			cr_assert_eq(seen_tid[t], 5, "thread %d of %d ran %d bodies", t, n, seen_tid[t]);
			cr_assert_eq(seen_nt[t], n);
			cr_assert_eq(errors[t], 0, "thread %d of %d saw %d stale slots", t, n, errors[t]);
		}
		cr_assert_eq(seen_tid[n], 0);
	}
}

/* nnrt_chunks_begin's rule (docs/architecture.md, "Parallel schedule"):
 * each thread's share of chunks [lo, hi), and the group barrier.  With no
 * more threads than chunks every chunk is one thread's, alone; with more,
 * every thread has a chunk, a chunk's group is a run of threads ranked 0 ..
 * size - 1, and groups differ in size by at most one.  Each round, every
 * thread of a group writes its slot, waits at the group's barrier and
 * must then see its partners' slots written. */
static int64_t chunk_lo, chunk_hi, shares[NNRT_MAX_THREADS][4];

static void chunks_body(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	(void)a;
	seen_nt[tid] = nt;
	for (int r = 1; r <= 20; r++) {
		int64_t *sh = shares[tid];
		nnrt_chunks_begin(chunk_lo, chunk_hi, tid, nt, sh);
		slots[tid] = r;
		nnrt_barrier(); /* the group's */
		for (int t = tid - (int)sh[2]; t < tid - (int)sh[2] + (int)sh[3]; t++)
			errors[tid] += slots[t] != r;
		nnrt_barrier();
		nnrt_chunks_end();
		nnrt_barrier(); /* the team's again */
	}
}

Test(parallel, chunks_are_shared_by_a_fixed_rule)
{
	for (int n = 1; n <= 9; n++)
		for (int64_t k = 0; k <= 5; k++) {
			memset(errors, 0, sizeof errors);
			memset(shares, 0, sizeof shares);
			chunk_lo = 3;
			chunk_hi = 3 + k;
			nnrt_set_threads(n);
			nnrt_step_args args;
			memset(&args, 0, sizeof args);
			nnrt_run(chunks_body, &args);
			int runs[8] = {0}, minsz = n, maxsz = 0;
			for (int t = 0; t < n; t++) {
				int64_t *sh = shares[t];
				cr_assert_eq(errors[t], 0, "%d threads, %lld chunks: thread %d saw its group unfinished", n,
					     (long long)k, t);
				cr_assert(sh[0] >= 3 && sh[1] <= 3 + k && sh[0] <= sh[1]);
				for (int64_t c = sh[0]; c < sh[1]; c++)
					runs[c - 3] += sh[2] == 0; /* counted once per group */
				if (n <= k) {
					cr_assert(sh[2] == 0 && sh[3] == 1, "%d threads, %lld chunks: thread %d in a group", n,
						  (long long)k, t);
				} else if (k > 0) {
					cr_assert_eq(sh[1] - sh[0], 1, "%d threads, %lld chunks: thread %d has no chunk", n,
						     (long long)k, t);
					cr_assert(sh[2] >= 0 && sh[2] < sh[3]);
					/* the group's threads are [t - rank, t - rank + size), all on its chunk */
					for (int u = t - (int)sh[2]; u < t - (int)sh[2] + (int)sh[3]; u++)
						cr_assert(u >= 0 && u < n && shares[u][0] == sh[0] && shares[u][3] == sh[3]);
					minsz = sh[3] < minsz ? (int)sh[3] : minsz;
					maxsz = sh[3] > maxsz ? (int)sh[3] : maxsz;
				} else {
					cr_assert_eq(sh[0], sh[1], "no chunks, but thread %d has some", t);
				}
			}
			for (int64_t c = 0; c < k; c++)
				cr_assert_eq(runs[c], 1, "%d threads: chunk %lld of %lld run by %d threads or groups", n,
					     (long long)c, (long long)k, runs[c]);
			if (n > k && k > 0)
				cr_assert(maxsz - minsz <= 1, "%d threads, %lld chunks: groups of %d and %d threads", n,
					  (long long)k, minsz, maxsz);
		}
}

Test(parallel, thread_count_is_clamped)
{
	nnrt_set_threads(100000);
	cr_assert_eq(nnrt_get_threads(), NNRT_MAX_THREADS);
	nnrt_set_threads(0);
	cr_assert(nnrt_get_threads() >= 1);
}

/* ---- IDX ---- */

/* 5 images of 2x3 bytes, pixel k of image i = 10 i + k; labels i % 3. */
static unsigned char img5[30], lab5[5] = {0, 1, 2, 0, 1};

static void make_idx_files(void)
{
	for (int i = 0; i < 30; i++)
		img5[i] = (unsigned char)(10 * (i / 6) + i % 6);
	uint32_t dims[3] = {5, 2, 3}, ldims[1] = {5};
	write_idx(tpath("good.idx"), 0, 8, 3, dims, img5, 30);
	write_idx(tpath("good.idx.gz"), 1, 8, 3, dims, img5, 30);
	write_idx(tpath("labels.idx"), 0, 8, 1, ldims, lab5, 5);
	write_idx(tpath("labels.idx.gz"), 1, 8, 1, ldims, lab5, 5);
}

Test(idx, loads_raw_and_gzip_alike)
{
	make_idx_files();
	nnrt_model m = data_model(6, NNRT_LABEL_CLASS, 3);
	const char *pairs[2][2] = {{tpath("good.idx"), tpath("labels.idx")},
	                           {tpath("good.idx.gz"), tpath("labels.idx.gz")}};
	for (int k = 0; k < 2; k++) {
		nnrt_data_spec spec = {.kind = NNRT_DATA_IDX, .path_x = pairs[k][0], .path_y = pairs[k][1],
		                       .scale = 0.5f, .shift = -1.0f};
		nnrt_dataset d;
		cr_assert_eq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0, "%s", nnrt_last_error());
		cr_assert_eq(d.n, 5);
		cr_assert_eq(d.dim, 6);
		cr_assert(d.x_u8 != NULL && d.x_f32 == NULL);
		cr_assert_eq(memcmp(d.x_u8, img5, 30), 0);
		/* Gather samples 4 and 1: floats raw * 0.5 - 1, int32 labels. */
		int64_t idx[2] = {4, 1};
		float x[12];
		int32_t y[2];
		nnrt_data_gather(&d, idx, 2, x, y);
		cr_assert_float_eq(x[0], 40 * 0.5f - 1, 1e-6);
		cr_assert_float_eq(x[5], 45 * 0.5f - 1, 1e-6);
		cr_assert_float_eq(x[6], 10 * 0.5f - 1, 1e-6);
		cr_assert_eq(y[0], 1);
		cr_assert_eq(y[1], 1);
		nnrt_data_free(&d);
	}
}

Test(idx, limit_and_real_labels)
{
	make_idx_files();
	nnrt_model m = data_model(6, NNRT_LABEL_REAL, 1);
	nnrt_data_spec spec = {.kind = NNRT_DATA_IDX, .path_x = tpath("good.idx"), .path_y = tpath("labels.idx")};
	nnrt_dataset d;
	cr_assert_eq(nnrt_data_load(&d, &m, &spec, "train", 3, 1), 0, "%s", nnrt_last_error());
	cr_assert_eq(d.n, 3);
	cr_assert_eq(d.y_real[2], 2.0f);
	nnrt_data_free(&d);
	/* A vector label takes the byte as a class index, one-hot. */
	m = data_model(6, NNRT_LABEL_REAL, 3);
	cr_assert_eq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0, "%s", nnrt_last_error());
	float want[6] = {1, 0, 0, 0, 1, 0};
	cr_assert_eq(memcmp(d.y_real, want, sizeof want), 0);
	nnrt_data_free(&d);
}

Test(idx, every_error_names_the_file)
{
	make_idx_files();
	uint32_t dims[3] = {5, 2, 3}, ldims[1] = {5};
	write_text(tpath("empty.idx"), "");
	write_text(tpath("text.idx"), "hello world");
	write_idx(tpath("float.idx"), 0, 0x0d, 3, dims, img5, 30);
	write_idx(tpath("hdr.idx"), 0, 8, 3, dims, NULL, 0);
	write_bytes(tpath("hdr.idx"), "\0\0\x08\x03\0\0\0\x05", 8);
	write_idx(tpath("trunc.idx"), 0, 8, 3, dims, img5, 20);
	write_idx(tpath("trunc.idx.gz"), 1, 8, 3, dims, img5, 20);
	uint32_t l4[1] = {4};
	write_idx(tpath("labels4.idx"), 0, 8, 1, l4, lab5, 4);
	unsigned char bad[5] = {0, 1, 2, 7, 1};
	write_idx(tpath("badlab.idx"), 0, 8, 1, ldims, bad, 5);
	uint32_t zero[3] = {0, 2, 3};
	write_idx(tpath("zero.idx"), 0, 8, 3, zero, NULL, 0);
	write_idx(tpath("labtrunc.idx"), 0, 8, 1, ldims, lab5, 3);
	write_bytes(tpath("corrupt.gz"), "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-garbage-garbage", 33);

	static const struct {
		const char *images, *labels;
		int64_t input;
		const char *want;
	} cases[] = {
		{"missing.idx", "labels.idx", 6, "{dir}/missing.idx: cannot open: No such file or directory"},
		{"good.idx", "missing.idx", 6, "{dir}/missing.idx: cannot open: No such file or directory"},
		{"empty.idx", "labels.idx", 6, "{dir}/empty.idx: file is empty; expected an IDX image file"},
		{"text.idx", "labels.idx", 6,
		 "{dir}/text.idx: not an IDX file: bad magic number 0x68656c6c (expected 0x00000803 for images)"},
		{"float.idx", "labels.idx", 6,
		 "{dir}/float.idx: IDX element type 0x0d (float) is not supported; only unsigned bytes (0x08) are"},
		{"labels.idx", "labels.idx", 6,
		 "{dir}/labels.idx: expected an IDX image file (magic 0x00000803) but found magic 0x00000801 (1 "
		 "dimension)"},
		{"good.idx", "good.idx", 6,
		 "{dir}/good.idx: expected an IDX label file (magic 0x00000801) but found magic 0x00000803 (3 "
		 "dimensions)"},
		{"hdr.idx", "labels.idx", 6, "{dir}/hdr.idx: file is truncated: it ends inside the IDX header"},
		{"trunc.idx", "labels.idx", 6,
		 "{dir}/trunc.idx: file is truncated: the header promises 5 images of 6 bytes but the file holds only 20 "
		 "bytes of image data"},
		{"trunc.idx.gz", "labels.idx", 6,
		 "{dir}/trunc.idx.gz: file is truncated: the header promises 5 images of 6 bytes but the file holds only "
		 "20 bytes of image data"},
		{"good.idx", "labels4.idx", 6, "{dir}/good.idx has 5 images but {dir}/labels4.idx has 4 labels"},
		{"good.idx", "badlab.idx", 6,
		 "{dir}/badlab.idx: label 7 of sample 3 is out of range: the model has 3 classes (0..2)"},
		{"good.idx", "labels.idx", 5,
		 "{dir}/good.idx: train images have 2x3 = 6 values per sample but the model input is f32[5]"},
		{"zero.idx", "labels.idx", 6, "{dir}/zero.idx: no samples (the IDX header gives a count of 0)"},
		{"good.idx", "labtrunc.idx", 6,
		 "{dir}/labtrunc.idx: file is truncated: the header promises 5 labels but the file holds only 3"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		nnrt_model m = data_model(cases[i].input, NNRT_LABEL_CLASS, 3);
		nnrt_data_spec spec = {.kind = NNRT_DATA_IDX, .path_x = tpath(cases[i].images),
		                       .path_y = tpath(cases[i].labels)};
		nnrt_dataset d;
		cr_expect_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0, "case %zu accepted", i);
		cr_expect_str_eq(nnrt_last_error(), subst(cases[i].want), "case %zu", i);
		cr_expect_eq(d.n, 0);
		cr_expect(d.x_u8 == NULL);
	}

	/* A gzip stream cut in half, and one that is garbage: reported, not
	 * crashed on. */
	unsigned char big[4000];
	for (int i = 0; i < 4000; i++)
		big[i] = (unsigned char)((i * 7919) >> 3);
	uint32_t bdims[3] = {250, 4, 4};
	write_idx(tpath("big.idx.gz"), 1, 8, 3, bdims, big, 4000);
	size_t len = 0;
	char *gz = read_all(tpath("big.idx.gz"), &len);
	write_bytes(tpath("cut.idx.gz"), gz, len / 2);
	free(gz);
	nnrt_model m = data_model(16, NNRT_LABEL_CLASS, 3);
	nnrt_data_spec spec = {.kind = NNRT_DATA_IDX, .path_x = tpath("cut.idx.gz"), .path_y = tpath("labels.idx")};
	nnrt_dataset d;
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 0), 0);
	const char *want = subst("{dir}/cut.idx.gz: file is truncated");
	cr_assert_eq(strncmp(nnrt_last_error(), want, strlen(want)), 0, "%s", nnrt_last_error());
	spec.path_x = tpath("corrupt.gz");
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 0), 0);
	want = subst("{dir}/corrupt.gz: ");
	cr_assert_eq(strncmp(nnrt_last_error(), want, strlen(want)), 0, "%s", nnrt_last_error());
}

/* Starts a child that writes `head` (n bytes) into the FIFO at path, then
 * `fill` forever; returns its pid (kill it when done). */
static pid_t endless_fifo(const char *path, const void *head, size_t n, const char *fill)
{
	cr_assert_eq(mkfifo(path, 0600), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		int fd = open(path, O_WRONLY);
		if (write(fd, head, n) < 0)
			_exit(0);
		char buf[4096];
		size_t fl = strlen(fill), k = 0;
		for (size_t i = 0; i < sizeof buf; i++)
			buf[i] = fl ? fill[k++ % fl] : 0;
		/* whole copies of fill only, so that the stream stays regular */
		size_t whole = fl ? sizeof buf / fl * fl : sizeof buf;
		while (write(fd, buf, whole) > 0)
			;
		_exit(0);
	}
	return pid;
}

/* Devices, pipes and files without line breaks are refused (or read only
 * as far as --limit needs) instead of read until memory runs out. */
Test(idx, huge_promises_from_streams_are_refused, .timeout = 30)
{
	nnrt_model m = data_model(1024 * 1024, NNRT_LABEL_CLASS, 10);
	unsigned char hdr[16];
	size_t len;
	uint32_t dims[3] = {0xffffffffu, 1024, 1024};
	unsigned char *b = idx_bytes(&len, 8, 3, dims, NULL, 0);
	memcpy(hdr, b, 16);
	free(b);
	pid_t pid = endless_fifo(tpath("fifo"), hdr, 16, "");
	uint32_t ldims[1] = {0xffffffffu};
	write_idx(tpath("lab.idx"), 0, 8, 1, ldims, NULL, 0);
	nnrt_data_spec spec = {.kind = NNRT_DATA_IDX, .path_x = tpath("fifo"), .path_y = tpath("lab.idx"), .scale = 1};
	nnrt_dataset d;
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0);
	kill(pid, SIGKILL);
	const char *want = subst("{dir}/fifo: the header promises 4294967295 images of 1048576 bytes (4194304.0 GiB), more "
	                         "than this machine's memory (");
	cr_assert_eq(strncmp(nnrt_last_error(), want, strlen(want)), 0, "%s", nnrt_last_error());
	/* gzip: the stream can be far larger than the file */
	write_idx(tpath("big.gz"), 1, 8, 3, dims, NULL, 0);
	spec.path_x = tpath("big.gz");
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0);
	cr_assert(strstr(nnrt_last_error(), "big.gz: the header promises 4294967295 images"), "%s", nnrt_last_error());
	/* a plain file is read only as far as it goes */
	write_idx(tpath("big.idx"), 0, 8, 3, dims, NULL, 0);
	spec.path_x = tpath("big.idx");
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(),
	                 subst("{dir}/big.idx: file is truncated: the header promises 4294967295 images of 1048576 bytes "
	                       "but the file holds only 0 bytes of image data"));
}

Test(csv, devices_pipes_and_endless_lines_are_bounded, .timeout = 30)
{
	nnrt_model m = data_model(2, NNRT_LABEL_CLASS, 2);
	nnrt_dataset d;
	nnrt_data_spec spec = {.kind = NNRT_DATA_CSV, .path_x = "/dev/zero", .has_header = -1, .scale = 1};
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(), "/dev/zero: not a text file (it contains NUL bytes)");
	/* a line longer than 1 MiB (this model's rows are far shorter) */
	size_t big = (1 << 20) + 10;
	char *line = malloc(big + 16);
	strcpy(line, "a,b,y\n1,2,0\n");
	memset(line + 12, '7', big);
	line[12 + big] = 0;
	write_text(tpath("long.csv"), line);
	free(line);
	spec.path_x = tpath("long.csv");
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(), subst("{dir}/long.csv:3: line is longer than 1048576 bytes; not a CSV file?"));
	/* an endless pipe of rows: --limit rows are read, and no more */
	pid_t pid = endless_fifo(tpath("rows"), "a,b,y\n", 6, "0.5,-1,1\n\n");
	spec.path_x = tpath("rows");
	cr_assert_eq(nnrt_data_load(&d, &m, &spec, "train", 1000, 1), 0, "%s", nnrt_last_error());
	kill(pid, SIGKILL);
	cr_assert_eq(d.n, 1000);
	cr_assert_eq(d.x_f32[2 * 999 + 1], -1.0f);
	cr_assert_eq(d.y_class[999], 1);
	nnrt_data_free(&d);
}

/* ---- CSV ---- */

static int load_csv(nnrt_dataset *d, const nnrt_model *m, const char *file, int header, const char *cx,
                    const char *cy)
{
	nnrt_data_spec spec = {.kind = NNRT_DATA_CSV, .path_x = tpath(file), .has_header = header, .cols_x = cx,
	                       .cols_y = cy, .scale = 1.0f};
	return nnrt_data_load(d, m, &spec, "train", 0, 1);
}

Test(csv, column_selection_by_name_index_and_default)
{
	nnrt_model m = data_model(2, NNRT_LABEL_CLASS, 2);
	write_text(tpath("a.csv"), "a,b,label\n1,2,0\n3,4.5e1,1\n");
	write_text(tpath("b.csv"), "1, 2 ,1\r\n\r\n  \r\n 3,-4,0\r\n");
	write_text(tpath("q.csv"), "\"id\",\"b\",\"a\",\"y\"\nfoo,2,1,1\nbar,4,3,0\n");
	static const struct {
		const char *file;
		int header;
		const char *cx, *cy;
		float x[4];
		int32_t y[2];
	} cases[] = {
		{"a.csv", 1, "a,b", "label", {1, 2, 3, 45}, {0, 1}},
		{"a.csv", 1, "b, a", "label", {2, 1, 45, 3}, {0, 1}},
		{"a.csv", 1, NULL, NULL, {1, 2, 3, 45}, {0, 1}},   /* label = last column */
		{"a.csv", 1, "0,1", NULL, {1, 2, 3, 45}, {0, 1}},  /* label = the rest */
		{"a.csv", 1, NULL, "label", {1, 2, 3, 45}, {0, 1}}, /* features = the rest */
		{"a.csv", -1, NULL, NULL, {1, 2, 3, 45}, {0, 1}},  /* header guessed */
		{"b.csv", 0, "0,1", "2", {1, 2, 3, -4}, {1, 0}},    /* CRLF, blanks, spaces */
		{"b.csv", -1, NULL, NULL, {1, 2, 3, -4}, {1, 0}},   /* no header guessed */
		{"q.csv", 1, "a,b", "y", {1, 2, 3, 4}, {1, 0}},     /* quoted names, text column unused */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		nnrt_dataset d;
		cr_assert_eq(load_csv(&d, &m, cases[i].file, cases[i].header, cases[i].cx, cases[i].cy), 0, "case %zu: %s",
		             i, nnrt_last_error());
		cr_assert_eq(d.n, 2, "case %zu", i);
		for (int k = 0; k < 4; k++)
			cr_expect_eq(d.x_f32[k], cases[i].x[k], "case %zu x[%d] = %g", i, k, d.x_f32[k]);
		cr_expect_eq(d.y_class[0], cases[i].y[0], "case %zu", i);
		cr_expect_eq(d.y_class[1], cases[i].y[1], "case %zu", i);
		nnrt_data_free(&d);
	}
}

Test(csv, real_labels_gzip_limit_and_scale)
{
	nnrt_model m = data_model(1, NNRT_LABEL_REAL, 2);
	const char *text = "x,y1,y2\n1,0.5,-0.5\n2,1.5,2.5\n3,0,0\n";
	write_gz(tpath("r.csv.gz"), text, strlen(text));
	nnrt_data_spec spec = {.kind = NNRT_DATA_CSV, .path_x = tpath("r.csv.gz"), .has_header = 1, .cols_x = "x",
	                       .scale = 2.0f, .shift = 1.0f};
	nnrt_dataset d;
	cr_assert_eq(nnrt_data_load(&d, &m, &spec, "train", 2, 1), 0, "%s", nnrt_last_error());
	cr_assert_eq(d.n, 2);
	cr_assert_eq(d.x_f32[1], 5.0f);
	float want[4] = {0.5f, -0.5f, 1.5f, 2.5f};
	cr_assert_eq(memcmp(d.y_real, want, sizeof want), 0);
	nnrt_data_free(&d);
}

Test(csv, every_error_has_file_line_and_column)
{
	write_text(tpath("c.csv"), "a,b,y\n1,2,0\n");
	write_text(tpath("e.csv"), "");
	write_text(tpath("h.csv"), "a,b,y\n\n");
	write_text(tpath("r.csv"), "a,b,y\n1,2,0\n3,4\n");
	write_text(tpath("f1.csv"), "a,b,y\n1,,0\n");
	write_text(tpath("f2.csv"), "a,b,y\n1,abc,0\n");
	write_text(tpath("f3.csv"), "a,b,y\n1, nan,0\n");
	write_text(tpath("f4.csv"), "a,b,y\ninf,1,0\n");
	write_text(tpath("f5.csv"), "a,b,y\n1,2,0.5\n");
	write_text(tpath("f6.csv"), "a,b,y\n1,2,-1\n");
	write_text(tpath("f7.csv"), "a,b,y\n1,2,0\n1,2,2\n");
	write_text(tpath("f8.csv"), "1,x,0\n");
	write_text(tpath("f9.csv"), "a,b,y\n1,2,1e999\n");
	write_bytes(tpath("bin.csv"), "a,b\0,y\n", 7);
	static const struct {
		const char *file;
		int header;
		const char *cx, *cy;
		const char *want;
	} cases[] = {
		{"nope.csv", 1, "a,b", "y", "{dir}/nope.csv: cannot open: No such file or directory"},
		{"e.csv", 1, "a,b", "y", "{dir}/e.csv: the file is empty"},
		{"h.csv", 1, "a,b", "y", "{dir}/h.csv: no data rows after the header"},
		{"c.csv", 1, "a,c", "y", "{dir}/c.csv: the header has no column 'c' (its columns are: a, b, y)"},
		{"c.csv", 0, "a,b", "y",
		 "{dir}/c.csv: x column 'a' is a name, but the file has no header line; use 0-based column numbers or "
		 "header: true"},
		{"c.csv", 1, "0,5", "y", "{dir}/c.csv: x column 5 is out of range: the file has 3 columns (0..2)"},
		{"c.csv", 1, "a,,b", "y", "{dir}/c.csv: empty column name in the x columns \"a,,b\""},
		{"c.csv", 1, "a", "y", "{dir}/c.csv: the x columns give 1 value per sample but the model input is f32[2]"},
		{"c.csv", 1, "a,b", "y,a", "{dir}/c.csv: the y columns give 2 values per sample but the model label "
		                           "class(2) needs 1"},
		{"r.csv", 1, "a,b", "y", "{dir}/r.csv:3: row has 2 fields but the header has 3"},
		{"f1.csv", 1, "a,b", "y", "{dir}/f1.csv:2:3: empty field in column 'b'"},
		{"f2.csv", 1, "a,b", "y", "{dir}/f2.csv:2:3: 'abc' in column 'b' is not a number"},
		{"f3.csv", 1, "a,b", "y", "{dir}/f3.csv:2:4: 'nan' in column 'b' is not a finite number"},
		{"f4.csv", 1, "a,b", "y", "{dir}/f4.csv:2:1: 'inf' in column 'a' is not a finite number"},
		{"f5.csv", 1, "a,b", "y", "{dir}/f5.csv:2:5: class label '0.5' in column 'y' is not a non-negative integer"},
		{"f6.csv", 1, "a,b", "y", "{dir}/f6.csv:2:5: class label '-1' in column 'y' is not a non-negative integer"},
		{"f7.csv", 1, "a,b", "y",
		 "{dir}/f7.csv:3:5: class label 2 in column 'y' is out of range: the model has 2 classes (0..1)"},
		{"f8.csv", 0, "0,1", "2", "{dir}/f8.csv:1:3: 'x' in column 1 is not a number"},
		{"f9.csv", 1, "a,b", "y", "{dir}/f9.csv:2:5: '1e999' in column 'y' is not a finite number"},
		{"bin.csv", 1, "a,b", "y", "{dir}/bin.csv: not a text file (it contains NUL bytes)"},
	};
	nnrt_model m = data_model(2, NNRT_LABEL_CLASS, 2);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		nnrt_dataset d;
		cr_expect_neq(load_csv(&d, &m, cases[i].file, cases[i].header, cases[i].cx, cases[i].cy), 0,
		              "case %zu accepted", i);
		cr_expect_str_eq(nnrt_last_error(), subst(cases[i].want), "case %zu", i);
		cr_expect(d.x_f32 == NULL && d.n == 0);
	}
}

Test(csv, cross_entropy_targets_must_be_probabilities)
{
	nnrt_model m = data_model(2, NNRT_LABEL_REAL, 1);
	m.loss = NNRT_LOSS_BCE;
	write_text(tpath("ok.csv"), "a,b,t\n1,2,0\n3,4,1\n5,6,0.25\n");
	write_text(tpath("hi.csv"), "a,b,t\n1,2,0\n3,4,1.5\n");
	write_text(tpath("lo.csv"), "a,b,t\n1,2,-0.5\n");
	nnrt_dataset d;
	cr_assert_eq(load_csv(&d, &m, "ok.csv", 1, "a,b", "t"), 0, "%s", nnrt_last_error());
	nnrt_data_free(&d);
	cr_assert_neq(load_csv(&d, &m, "hi.csv", 1, "a,b", "t"), 0);
	cr_assert_str_eq(nnrt_last_error(),
	                 subst("{dir}/hi.csv:3:5: target '1.5' in column 't' is outside [0, 1], which "
	                       "binary_cross_entropy needs"));
	cr_assert_neq(load_csv(&d, &m, "lo.csv", 1, "a,b", "t"), 0);
	cr_assert_str_eq(nnrt_last_error(),
	                 subst("{dir}/lo.csv:2:5: target '-0.5' in column 't' is outside [0, 1], which "
	                       "binary_cross_entropy needs"));
	/* Soft targets of a softmax cross-entropy too; MSE takes anything. */
	nnrt_model soft = data_model(2, NNRT_LABEL_REAL, 1);
	soft.loss = NNRT_LOSS_SOFTMAX_XENT;
	cr_assert_neq(load_csv(&d, &soft, "hi.csv", 1, "a,b", "t"), 0);
	cr_assert(strstr(nnrt_last_error(), "which softmax_cross_entropy needs"), "%s", nnrt_last_error());
	nnrt_model mse = data_model(2, NNRT_LABEL_REAL, 1);
	mse.loss = NNRT_LOSS_MSE;
	cr_assert_eq(load_csv(&d, &mse, "hi.csv", 1, "a,b", "t"), 0, "%s", nnrt_last_error());
	nnrt_data_free(&d);
	/* IDX bytes as real targets: 0 and 1 only. */
	nnrt_model im = data_model(4, NNRT_LABEL_REAL, 1);
	im.loss = NNRT_LOSS_BCE;
	uint32_t dims[3] = {3, 2, 2}, ldims[1] = {3};
	unsigned char img[12] = {0}, lab[3] = {0, 1, 2};
	write_idx(tpath("i.idx"), 0, 8, 3, dims, img, 12);
	write_idx(tpath("l.idx"), 0, 8, 1, ldims, lab, 3);
	nnrt_data_spec spec = {.kind = NNRT_DATA_IDX, .path_x = tpath("i.idx"), .path_y = tpath("l.idx"), .scale = 1};
	cr_assert_neq(nnrt_data_load(&d, &im, &spec, "train", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(),
	                 subst("{dir}/l.idx: label 2 of sample 2 is outside [0, 1], which binary_cross_entropy needs"));
	cr_assert_eq(nnrt_data_load(&d, &im, &spec, "train", 2, 1), 0, "%s", nnrt_last_error());
	nnrt_data_free(&d);
	/* A three-armed spiral against one BCE target. */
	nnrt_data_spec sp = {.kind = NNRT_DATA_SPIRAL, .count = 30, .classes = 3, .scale = 1};
	cr_assert_neq(nnrt_data_load(&d, &m, &sp, "train", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(),
	                 "train data: spiral has 3 classes, but binary_cross_entropy needs targets in [0, 1]");
}

/* ---- Synthetic sets ---- */

static nnrt_dataset synth(nnrt_model *m, int32_t kind, int64_t count, float noise, int64_t seed, int64_t classes)
{
	nnrt_data_spec spec = {.kind = kind, .count = count, .noise = noise, .seed = seed, .classes = classes,
	                       .scale = 1.0f};
	nnrt_dataset d;
	cr_assert_eq(nnrt_data_load(&d, m, &spec, "train", 0, 1), 0, "%s", nnrt_last_error());
	return d;
}

Test(synth, sizes_balance_and_determinism)
{
	static const struct {
		int32_t kind;
		int64_t input, classes, count, arg, want_n;
	} cases[] = {
		{NNRT_DATA_XOR, 2, 2, 200, 0, 200},       {NNRT_DATA_MOONS, 2, 2, 0, 0, 1000},
		{NNRT_DATA_CIRCLES, 2, 2, 300, 0, 300},   {NNRT_DATA_SPIRAL, 2, 3, 300, 0, 300},
		{NNRT_DATA_SPIRAL, 2, 5, 500, 5, 500},    {NNRT_DATA_PARITY, 3, 2, 0, 0, 8},
		{NNRT_DATA_MAJORITY, 5, 2, 0, 5, 32},     {NNRT_DATA_PARITY, 3, 2, 256, 3, 256},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		nnrt_model m = data_model(cases[i].input, NNRT_LABEL_CLASS, cases[i].classes);
		nnrt_dataset a = synth(&m, cases[i].kind, cases[i].count, 0.1f, 9, cases[i].arg);
		nnrt_dataset b = synth(&m, cases[i].kind, cases[i].count, 0.1f, 9, cases[i].arg);
		nnrt_dataset c = synth(&m, cases[i].kind, cases[i].count, 0.1f, 10, cases[i].arg);
		cr_assert_eq(a.n, cases[i].want_n, "case %zu: n = %lld", i, (long long)a.n);
		size_t bytes = (size_t)(a.n * a.dim) * sizeof(float);
		cr_assert_eq(memcmp(a.x_f32, b.x_f32, bytes), 0, "case %zu not deterministic", i);
		cr_assert_eq(memcmp(a.y_class, b.y_class, (size_t)a.n * 4), 0);
		cr_assert_neq(memcmp(a.x_f32, c.x_f32, bytes), 0, "case %zu ignores its seed", i);
		int64_t count[8] = {0};
		for (int64_t k = 0; k < a.n; k++) {
			cr_assert(a.y_class[k] >= 0 && a.y_class[k] < cases[i].classes);
			count[a.y_class[k]]++;
		}
		/* Every class present, and for the geometric sets exactly
		 * balanced (classes take turns). */
		for (int k = 0; k < cases[i].classes; k++) {
			cr_assert(count[k] > 0, "case %zu: class %d empty", i, k);
			if (cases[i].kind <= NNRT_DATA_SPIRAL)
				cr_assert(count[k] * cases[i].classes - a.n <= cases[i].classes, "case %zu unbalanced", i);
		}
		nnrt_data_free(&a);
		nnrt_data_free(&b);
		nnrt_data_free(&c);
	}
}

Test(synth, shapes_follow_their_definitions)
{
	nnrt_model m = data_model(2, NNRT_LABEL_CLASS, 2);
	nnrt_dataset d = synth(&m, NNRT_DATA_XOR, 400, 0, 1, 0);
	for (int64_t i = 0; i < d.n; i++) {
		float x1 = d.x_f32[2 * i], x2 = d.x_f32[2 * i + 1];
		cr_assert(fabsf(x1) <= 1 && fabsf(x2) <= 1);
		cr_assert_eq(d.y_class[i], (x1 < 0) != (x2 < 0), "xor sample %lld", (long long)i);
	}
	nnrt_data_free(&d);
	d = synth(&m, NNRT_DATA_CIRCLES, 400, 0, 1, 0);
	for (int64_t i = 0; i < d.n; i++) {
		float r = hypotf(d.x_f32[2 * i], d.x_f32[2 * i + 1]);
		cr_assert_float_eq(r, d.y_class[i] ? 0.5f : 1.0f, 1e-5);
	}
	nnrt_data_free(&d);
	d = synth(&m, NNRT_DATA_MOONS, 400, 0, 1, 0);
	for (int64_t i = 0; i < d.n; i++) {
		float x = d.x_f32[2 * i], y = d.x_f32[2 * i + 1];
		/* Outer moon: unit circle around (0,0), upper half; inner: around
		 * (1, 0.5), lower half. */
		if (d.y_class[i] == 0)
			cr_assert(fabsf(hypotf(x, y) - 1) < 1e-5 && y >= -1e-6);
		else
			cr_assert(fabsf(hypotf(x - 1, y - 0.5f) - 1) < 1e-5 && y <= 0.5f + 1e-6);
	}
	nnrt_data_free(&d);

	/* Parity and majority over all 3-bit patterns, cycled to 10. */
	m = data_model(3, NNRT_LABEL_CLASS, 2);
	d = synth(&m, NNRT_DATA_PARITY, 10, 0, 1, 3);
	nnrt_model mr = data_model(3, NNRT_LABEL_REAL, 1);
	nnrt_dataset maj = synth(&mr, NNRT_DATA_MAJORITY, 0, 0, 1, 0);
	cr_assert_eq(maj.n, 8);
	for (int64_t i = 0; i < 10; i++) {
		int p = (int)(i % 8), ones = (p & 1) + (p >> 1 & 1) + (p >> 2 & 1);
		cr_assert_eq(d.x_f32[3 * i], (float)(p >> 2 & 1));
		cr_assert_eq(d.x_f32[3 * i + 2], (float)(p & 1));
		cr_assert_eq(d.y_class[i], ones & 1);
		if (i < 8)
			cr_assert_eq(maj.y_real[i], ones >= 2 ? 1.0f : 0.0f);
	}
	nnrt_data_free(&d);
	nnrt_data_free(&maj);
}

Test(synth, mismatches_are_reported)
{
	nnrt_model m = data_model(3, NNRT_LABEL_CLASS, 2);
	nnrt_data_spec spec = {.kind = NNRT_DATA_MOONS, .count = 10};
	nnrt_dataset d;
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(), "train data: moons has 2 features per sample but the model input is f32[3]");
	m = data_model(2, NNRT_LABEL_CLASS, 2);
	spec.kind = NNRT_DATA_SPIRAL;
	spec.classes = 4;
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "test", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(), "test data: spiral has 4 classes but the model label is class(2)");
	m = data_model(4, NNRT_LABEL_CLASS, 2);
	spec.kind = NNRT_DATA_PARITY;
	spec.classes = 30;
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "train", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(), "train data: parity(bits: 30): the number of bits must be between 1 and 24");
}

/* ---- Hand-written model bodies ---- */

enum { MAXT = 8 };

/* 2-16-2 tanh MLP, softmax cross-entropy, Adam.
 * params: W1 (2,16) | b1 (16) | W2 (16,2) | b2 (2)
 * ws: per-thread gradient (MAXT, P). */
enum { MI = 2, MH = 16, MC = 2, MP = MI * MH + MH + MH * MC + MC };
static double part[MAXT][2]; /* per-thread loss and correct count */

static const nnrt_param_info mlp_params[] = {
	{.name = "fc1.weight", .offset = 0, .size = MI * MH, .shape = {MI, MH}, .rank = 2,
	 .init = NNRT_INIT_GLOROT_UNIFORM, .fan_in = MI, .fan_out = MH},
	{.name = "fc1.bias", .offset = MI * MH, .size = MH, .shape = {MH}, .rank = 1, .init = NNRT_INIT_ZEROS},
	{.name = "fc2.weight", .offset = MI * MH + MH, .size = MH * MC, .shape = {MH, MC}, .rank = 2,
	 .init = NNRT_INIT_GLOROT_UNIFORM, .fan_in = MH, .fan_out = MC},
	{.name = "fc2.bias", .offset = MI * MH + MH + MH * MC, .size = MC, .shape = {MC}, .rank = 1,
	 .init = NNRT_INIT_ZEROS},
};

/* x (MI) -> h (MH), p (MC) softmax probabilities. */
static void mlp_forward(const float *w, const float *x, float *h, float *p)
{
	const float *W1 = w, *b1 = w + MI * MH, *W2 = b1 + MH, *b2 = W2 + MH * MC;
	for (int j = 0; j < MH; j++) {
		float s = b1[j];
		for (int i = 0; i < MI; i++)
			s += x[i] * W1[i * MH + j];
		h[j] = tanhf(s);
	}
	float z[MC], mx = -INFINITY, sum = 0;
	for (int k = 0; k < MC; k++) {
		z[k] = b2[k];
		for (int j = 0; j < MH; j++)
			z[k] += h[j] * W2[j * MC + k];
		mx = z[k] > mx ? z[k] : mx;
	}
	for (int k = 0; k < MC; k++)
		sum += p[k] = expf(z[k] - mx);
	for (int k = 0; k < MC; k++)
		p[k] /= sum;
}

static int argmax(const float *p, int n)
{
	int b = 0;
	for (int k = 1; k < n; k++)
		b = p[k] > p[b] ? k : b;
	return b;
}

static void mlp_metrics(nnrt_step_args *a, int32_t tid, int32_t nt, const float *x, const int32_t *y,
                        float *g)
{
	double loss = 0, correct = 0;
	int64_t lo = a->n * tid / nt, hi = a->n * (tid + 1) / nt;
	const float *w = a->params;
	for (int64_t s = lo; s < hi; s++) {
		float h[MH], p[MC];
		mlp_forward(w, x + s * MI, h, p);
		loss -= log(p[y[s]] > 1e-30f ? p[y[s]] : 1e-30f);
		correct += argmax(p, MC) == y[s];
		if (!g)
			continue;
		const float *W2 = w + MI * MH + MH;
		float *gW1 = g, *gb1 = g + MI * MH, *gW2 = gb1 + MH, *gb2 = gW2 + MH * MC;
		float dz[MC];
		for (int k = 0; k < MC; k++) {
			dz[k] = p[k] - (k == y[s]);
			gb2[k] += dz[k];
		}
		for (int j = 0; j < MH; j++) {
			float dh = 0;
			for (int k = 0; k < MC; k++) {
				gW2[j * MC + k] += h[j] * dz[k];
				dh += W2[j * MC + k] * dz[k];
			}
			float da = dh * (1 - h[j] * h[j]);
			gb1[j] += da;
			for (int i = 0; i < MI; i++)
				gW1[i * MH + j] += x[s * MI + i] * da;
		}
	}
	part[tid][0] = loss;
	part[tid][1] = correct;
}

/* Thread 0 sums the partial metrics in thread order: deterministic. */
static void sum_metrics(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	if (tid != 0)
		return;
	a->metrics[0] = a->metrics[1] = 0;
	for (int t = 0; t < nt; t++) {
		a->metrics[0] += part[t][0];
		a->metrics[1] += part[t][1];
	}
}

static void mlp_train(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	float *g = a->ws + (int64_t)tid * MP;
	memset(g, 0, MP * sizeof(float));
	mlp_metrics(a, tid, nt, a->x, a->y, g);
	nnrt_barrier();
	/* Adam on this thread's slice of the parameters. */
	int64_t lo = (int64_t)MP * tid / nt, hi = (int64_t)MP * (tid + 1) / nt;
	/* the model's constants, compiled in as nnc does (mlp_model) */
	const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
	for (int64_t j = lo; j < hi; j++) {
		float gj = 0;
		for (int t = 0; t < nt; t++)
			gj += a->ws[(int64_t)t * MP + j];
		gj /= (float)a->n;
		float *m = &a->opt[j], *v = &a->opt[MP + j];
		*m = b1 * *m + (1 - b1) * gj;
		*v = b2 * *v + (1 - b2) * gj * gj;
		a->params[j] -= a->hp[NNRT_HP_LR] * (*m * a->hp[NNRT_HP_ADAM_C1]) /
		                (sqrtf(*v * a->hp[NNRT_HP_ADAM_C2]) + eps);
	}
	sum_metrics(a, tid, nt);
}

static void mlp_eval(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	mlp_metrics(a, tid, nt, a->x, a->y, NULL);
	nnrt_barrier();
	sum_metrics(a, tid, nt);
}

static void mlp_infer(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	int64_t lo = a->n * tid / nt, hi = a->n * (tid + 1) / nt;
	for (int64_t s = lo; s < hi; s++) {
		float h[MH];
		mlp_forward(a->params, a->x + s * MI, h, a->out + s * MC);
	}
}

static nnrt_model mlp_model(void)
{
	nnrt_model m = data_model(MI, NNRT_LABEL_CLASS, MC);
	m.name = "xor";
	m.source = "/src/xor.nn";
	m.fingerprint = 0x1234abcd5678ef00ull;
	m.loss = NNRT_LOSS_SOFTMAX_XENT;
	m.optimizer = NNRT_OPT_ADAM;
	m.n_params = 4;
	m.params = mlp_params;
	m.param_floats = MP;
	m.opt_floats = 2 * MP;
	m.ws_floats = MAXT * MP;
	m.batch = 32;
	m.lr = 0.02f;
	m.beta1 = 0.9f;
	m.beta2 = 0.999f;
	m.eps = 1e-8f;
	m.epochs = 20;
	m.seed = 1;
	m.train = (nnrt_data_spec){.kind = NNRT_DATA_XOR, .count = 1000, .noise = 0.05f, .seed = 11, .scale = 1};
	m.test = (nnrt_data_spec){.kind = NNRT_DATA_XOR, .count = 500, .noise = 0.05f, .seed = 12, .scale = 1};
	m.train_step = mlp_train;
	m.eval_step = mlp_eval;
	m.infer = mlp_infer;
	return m;
}

/* Linear regression y = W.x + b, MSE, SGD with momentum.
 * params: W (2,1) | b (1); opt: velocity (3); ws: per-thread gradient. */
enum { LP = 3 };
#define LIN_MOMENTUM 0.5f /* compiled in, as nnc does */
static const nnrt_param_info lin_params[] = {
	{.name = "fc.weight", .offset = 0, .size = 2, .shape = {2, 1}, .rank = 2, .init = NNRT_INIT_ZEROS},
	{.name = "fc.bias", .offset = 2, .size = 1, .shape = {1}, .rank = 1, .init = NNRT_INIT_ZEROS},
};

static void lin_part(nnrt_step_args *a, int32_t tid, int32_t nt, float *g)
{
	int64_t lo = a->n * tid / nt, hi = a->n * (tid + 1) / nt;
	const float *x = a->x, *y = a->y, *w = a->params;
	double loss = 0;
	for (int64_t s = lo; s < hi; s++) {
		float e = w[0] * x[2 * s] + w[1] * x[2 * s + 1] + w[2] - y[s];
		loss += (double)e * e;
		if (g) {
			g[0] += 2 * e * x[2 * s];
			g[1] += 2 * e * x[2 * s + 1];
			g[2] += 2 * e;
		}
	}
	part[tid][0] = loss;
	part[tid][1] = 0;
}

static void lin_train(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	float *g = a->ws + (int64_t)tid * LP;
	memset(g, 0, LP * sizeof(float));
	lin_part(a, tid, nt, g);
	nnrt_barrier();
	if (tid == 0) {
		for (int j = 0; j < LP; j++) {
			float gj = 0;
			for (int t = 0; t < nt; t++)
				gj += a->ws[t * LP + j];
			a->opt[j] = LIN_MOMENTUM * a->opt[j] + gj / (float)a->n;
			a->params[j] -= a->hp[NNRT_HP_LR] * a->opt[j];
		}
	}
	sum_metrics(a, tid, nt);
}

static void lin_eval(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	lin_part(a, tid, nt, NULL);
	nnrt_barrier();
	sum_metrics(a, tid, nt);
}

static void lin_infer(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	int64_t lo = a->n * tid / nt, hi = a->n * (tid + 1) / nt;
	for (int64_t s = lo; s < hi; s++)
		a->out[s] = a->params[0] * a->x[2 * s] + a->params[1] * a->x[2 * s + 1] + a->params[2];
}

/* y = 2.5 x1 - 1.5 x2 + 0.75 + noise, 400 rows, like examples/linear.nn. */
static nnrt_model lin_model(const char *csv)
{
	nnrt_rng r;
	nnrt_rng_seed(&r, 3);
	FILE *f = fopen(csv, "w");
	fprintf(f, "x1,x2,y\n");
	for (int i = 0; i < 400; i++) {
		double x1 = 4 * nnrt_rng_uniform_d(&r) - 2, x2 = 4 * nnrt_rng_uniform_d(&r) - 2;
		fprintf(f, "%.5f,%.5f,%.5f\n", x1, x2, 2.5 * x1 - 1.5 * x2 + 0.75 + 0.01 * nnrt_rng_normal(&r));
	}
	fclose(f);
	nnrt_model m = data_model(2, NNRT_LABEL_REAL, 1);
	m.name = "linear";
	m.fingerprint = 0x77;
	m.loss = NNRT_LOSS_MSE;
	m.optimizer = NNRT_OPT_SGD;
	m.n_params = 2;
	m.params = lin_params;
	m.param_floats = LP;
	m.opt_floats = LP;
	m.ws_floats = MAXT * LP;
	m.batch = 16;
	m.lr = 0.05f;
	m.momentum = LIN_MOMENTUM;
	m.epochs = 60;
	m.seed = 1;
	m.train = (nnrt_data_spec){.kind = NNRT_DATA_CSV, .path_x = csv, .has_header = 1, .cols_x = "x1,x2",
	                           .cols_y = "y", .scale = 1};
	m.train_step = lin_train;
	m.eval_step = lin_eval;
	m.infer = lin_infer;
	return m;
}

/* ---- Running nnrt_main in-process ---- */

typedef struct run_result {
	int rc;
	char *out, *err;
} run_result;

/* Runs nnrt_main(m, "tiny" + args split at spaces), capturing stdout and
 * stderr through temporary files. */
static run_result run_main(const nnrt_model *m, const char *fmt, ...)
{
	char args[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	char *argv[64];
	int argc = 0;
	argv[argc++] = "./tiny";
	for (char *tok = strtok(args, " "); tok && argc < 63; tok = strtok(NULL, " "))
		argv[argc++] = tok;
	argv[argc] = NULL;

	char out_path[512], err_path[512];
	snprintf(out_path, sizeof out_path, "%s/stdout.txt", tmpdir);
	snprintf(err_path, sizeof err_path, "%s/stderr.txt", tmpdir);
	fflush(stdout);
	fflush(stderr);
	int saved_out = dup(1), saved_err = dup(2);
	int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fo, 1);
	dup2(fe, 2);
	close(fo);
	close(fe);
	nnrt_set_error_echo(1);
	run_result r;
	r.rc = nnrt_main(m, argc, argv);
	nnrt_set_error_echo(0);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	r.out = read_all(out_path, NULL);
	r.err = read_all(err_path, NULL);
	return r;
}

static void run_free(run_result *r)
{
	free(r->out);
	free(r->err);
}

/* The number after the last "key " in s (NAN if absent). */
static double last_value(const char *s, const char *key)
{
	const char *hit = NULL;
	size_t kl = strlen(key);
	for (const char *p = strstr(s, key); p; p = strstr(p + 1, key))
		if (p[kl] == ' ')
			hit = p;
	return hit ? strtod(hit + kl + 1, NULL) : NAN;
}

static int count_lines(const char *s, const char *prefix)
{
	int n = 0;
	for (const char *p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		n += strncmp(p, prefix, strlen(prefix)) == 0;
	return n;
}

/* s without the throughput and time columns, which vary run to run. */
static char *strip_timing(const char *s)
{
	char *out = malloc(strlen(s) + 1);
	size_t n = 0;
	while (*s) {
		const char *eol = strchr(s, '\n');
		size_t len = eol ? (size_t)(eol - s) : strlen(s);
		const char *sp = strstr(s, " samples/s");
		size_t keep = len;
		if (sp && sp < s + len) {
			const char *q = sp;
			while (q > s && q[-1] != ' ')
				q--;
			keep = (size_t)(q - s);
		}
		memcpy(out + n, s, keep);
		n += keep;
		out[n++] = '\n';
		s += len + (eol ? 1 : 0);
	}
	out[n] = 0;
	return out;
}

static int files_equal(const char *a, const char *b)
{
	size_t la = 0, lb = 0;
	char *x = read_all(a, &la), *y = read_all(b, &lb);
	int eq = x && y && la == lb && memcmp(x, y, la) == 0;
	free(x);
	free(y);
	return eq;
}

/* ---- Progress on a terminal (progress.c) ---- */

/* Runs nnrt_main(m, "./tiny" + args) in a child whose stdout and stderr are
 * a pseudo-terminal 100 columns wide, with output post-processing off (so
 * that '\n' arrives as '\n', not "\r\n"), and returns every byte the
 * terminal received.  The child is the first in this process to start the
 * runtime's thread team, so forking here is safe. */
static char *run_on_pty(const nnrt_model *m, const char *term, const char *args, int *rc)
{
	char buf[1024];
	snprintf(buf, sizeof buf, "%s", args);
	char *argv[32];
	int argc = 0;
	argv[argc++] = "./tiny";
	for (char *tok = strtok(buf, " "); tok && argc < 31; tok = strtok(NULL, " "))
		argv[argc++] = tok;
	argv[argc] = NULL;
	struct termios tio;
	memset(&tio, 0, sizeof tio);
	tio.c_cflag = CS8 | CREAD;
	struct winsize ws = {.ws_row = 24, .ws_col = 100};
	int master;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = forkpty(&master, NULL, &tio, &ws);
	cr_assert(pid >= 0, "forkpty: %s", strerror(errno));
	if (pid == 0) {
		if (term)
			setenv("TERM", term, 1);
		else
			unsetenv("TERM");
		nnrt_set_error_echo(1);
		_exit(nnrt_main(m, argc, argv));
	}
	size_t len = 0, cap = 1 << 16;
	char *out = malloc(cap);
	for (;;) {
		if (len + 4096 > cap)
			out = realloc(out, cap *= 2);
		ssize_t k = read(master, out + len, 4096);
		if (k > 0)
			len += (size_t)k;
		else if (k < 0 && errno == EINTR)
			continue;
		else
			break; /* EIO: the child closed its side */
	}
	out[len] = 0;
	close(master);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	*rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return out;
}

/* What a terminal shows of s: each line's text after its last '\r'
 * (everything before was drawn over). */
static char *as_shown(const char *s)
{
	char *r = calloc(strlen(s) + 1, 1);
	size_t n = 0;
	while (*s) {
		const char *eol = strchr(s, '\n');
		size_t len = eol ? (size_t)(eol - s) : strlen(s);
		const char *from = s;
		for (const char *q = s; q < s + len; q++)
			if (*q == '\r')
				from = q + 1;
		memcpy(r + n, from, (size_t)(s + len - from));
		n += (size_t)(s + len - from);
		if (eol)
			r[n++] = '\n';
		s += len + (eol != NULL);
	}
	r[n] = 0;
	return r;
}

/* On a terminal each epoch draws a live line with carriage returns, which
 * the epoch line then replaces: what the terminal shows in the end is, line
 * for line, what a pipe receives.  In a pipe or file there is no '\r' and
 * no escape code; --quiet and TERM=dumb draw nothing on a terminal either. */
Test(main, progress_bar_on_a_terminal_plain_lines_elsewhere)
{
	nnrt_model m = mlp_model();
	int rc;
	char *tty = run_on_pty(&m, "xterm", "--threads 1 --epochs 3", &rc);
	cr_assert_eq(rc, 0, "%s", tty);
	cr_assert(strchr(tty, '\r'), "no carriage return on a terminal:\n%s", tty);
	cr_assert(strstr(tty, "\repoch  1/3 [") && strstr(tty, " ETA ") && strstr(tty, "  acc 0.") &&
	              strstr(tty, " samples/s"),
	          "no progress line on a terminal:\n%s", tty);
	/* Steps done/total: 1000 samples in batches of 32 are 32 steps. */
	cr_assert(strstr(tty, "/32  "), "%s", tty);
	cr_assert(!strchr(tty, '\033'), "escape code on a terminal:\n%s", tty);
	/* An evaluation of the test set draws one too; a validation split's is
	 * "validating". */
	cr_assert(strstr(tty, "\revaluating ["), "%s", tty);
	cr_assert(!strstr(tty, "\rvalidating ["), "%s", tty);
	nnrt_model mv = mlp_model();
	mv.val_fraction = 0.2f;
	char *vtty = run_on_pty(&mv, "xterm", "--threads 1 --epochs 1", &rc);
	cr_assert_eq(rc, 0, "%s", vtty);
	cr_assert(strstr(vtty, "\rvalidating [") && strstr(vtty, "\revaluating ["), "%s", vtty);
	free(vtty);
	run_result r = run_main(&m, "--threads 1 --epochs 3");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(!strchr(r.out, '\r') && !strchr(r.out, '\033'), "%s", r.out);
	char *shown = as_shown(tty), *a = strip_timing(shown), *b = strip_timing(r.out);
	cr_assert_str_eq(a, b, "the terminal shows other lines than a pipe gets");
	cr_assert_eq(count_lines(shown, "epoch "), 3, "%s", shown);
	free(shown);
	free(a);
	free(b);
	run_free(&r);
	free(tty);

	const char *plain[][2] = {{"xterm", "--threads 1 --epochs 2 --quiet"}, {"dumb", "--threads 1 --epochs 2"}};
	for (int i = 0; i < 2; i++) {
		tty = run_on_pty(&m, plain[i][0], plain[i][1], &rc);
		cr_assert_eq(rc, 0, "%s", tty);
		cr_assert(!strchr(tty, '\r') && !strchr(tty, '\033'), "TERM=%s %s drew a bar:\n%s", plain[i][0],
		          plain[i][1], tty);
		free(tty);
	}
}

/* A terminal narrower than the line gets the line cut to its width: a line
 * that wraps could not be drawn over by '\r'. */
Test(main, progress_line_fits_the_terminal)
{
	nnrt_progress p;
	char path[512];
	snprintf(path, sizeof path, "%s/bar.txt", tmpdir);
	fflush(stdout);
	int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 1);
	close(fd);
	nnrt_progress_begin(&p, 1, 1, "epoch 12/100", 0, 938);
	p.cols = 40;
	nnrt_progress_step(&p, 5, 160, 80, 100);
	p.cols = 200;
	p.next = 0;
	nnrt_progress_step(&p, 938, 30000, 300, 27000);
	nnrt_progress_end(&p);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	char *s = read_all(path, NULL);
	/* First draw: 39 columns; second: the whole line; then blanked. */
	cr_assert_eq(s[0], '\r');
	const char *second = strchr(s + 1, '\r');
	cr_assert(second && second - s - 1 == 39, "%s", s);
	cr_assert(strncmp(second, "\repoch 12/100 [====================] 938/938  ", 46) == 0, "%s", second);
	cr_assert(strstr(second, "  loss 0.0100  acc 0.9000  "), "%s", second);
	const char *blank = strchr(second + 1, '\r');
	size_t drawn = (size_t)(blank - second - 1);
	cr_assert(blank && strspn(blank + 1, " ") == drawn && strcmp(blank + 1 + drawn, "\r") == 0, "%s", s);
	free(s);
}

/* --verbose follows Keras's fit(): 0 prints nothing but what was asked for
 * (as --quiet), 1 (the default) draws the bar on a terminal, 2 prints the
 * epoch lines and never a bar.  1 and 2 print the same lines. */
Test(main, verbose_levels_choose_bar_lines_or_silence)
{
	nnrt_model m = mlp_model();
	int rc;
	run_result pipe = run_main(&m, "--threads 1 --epochs 2");
	cr_assert_eq(pipe.rc, 0, "%s", pipe.err);
	char *want = strip_timing(pipe.out);
	for (int v = 0; v <= 2; v++) {
		char args[64];
		snprintf(args, sizeof args, "--threads 1 --epochs 2 --verbose %d", v);
		char *tty = run_on_pty(&m, "xterm", args, &rc);
		cr_assert_eq(rc, 0, "%s", tty);
		cr_assert(!strchr(tty, '\033'), "%s: escape code:\n%s", args, tty);
		if (v == 0) {
			cr_assert_str_eq(tty, "", "%s printed", args);
		} else {
			cr_assert((strchr(tty, '\r') != NULL) == (v == 1), "%s: bar drawn or missing:\n%s", args, tty);
			char *shown = as_shown(tty), *got = strip_timing(shown);
			cr_assert_str_eq(got, want, "%s shows other lines than a pipe gets", args);
			free(shown);
			free(got);
		}
		free(tty);
		/* In a pipe: the lines of the default, or nothing. */
		run_result r = run_main(&m, "%s", args);
		cr_assert_eq(r.rc, 0, "%s", r.err);
		char *got = strip_timing(r.out);
		cr_assert_str_eq(got, v ? want : "", "%s in a pipe", args);
		free(got);
		run_free(&r);
	}
	/* Silent training, and what --eval was asked for still printed. */
	run_result r = run_main(&m, "--threads 1 --epochs 2 --verbose 0 --save %s", tpath("v.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	run_free(&r);
	r = run_main(&m, "--threads 1 --verbose 0 --load %s --eval", tpath("v.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(strncmp(r.out, "test_loss ", 10) == 0 && strstr(r.out, "\nconfusion matrix"), "%s", r.out);
	/* On a terminal, --eval draws its two passes over the test set. */
	char args[600];
	snprintf(args, sizeof args, "--threads 1 --load %s --eval", tpath("v.ckpt"));
	char *tty = run_on_pty(&m, "xterm", args, &rc);
	cr_assert_eq(rc, 0, "%s", tty);
	cr_assert(strstr(tty, "\revaluating [") && strstr(tty, "\rclassifying ["), "%s", tty);
	char *shown = as_shown(tty);
	cr_assert_str_eq(shown, r.out);
	free(shown);
	free(tty);
	run_free(&r);
	free(want);
	run_free(&pipe);
}

/* Reading a data file draws a bar in bytes on a terminal, which the next
 * line replaces: nothing of it in a pipe, no escape code. */
Test(main, data_loading_draws_a_bar_on_a_terminal)
{
	nnrt_model lin = lin_model(tpath("linear.csv"));
	struct stat st;
	cr_assert_eq(stat(tpath("linear.csv"), &st), 0);
	int rc;
	char *tty = run_on_pty(&lin, "xterm", "--threads 1 --epochs 1", &rc);
	cr_assert_eq(rc, 0, "%s", tty);
	char full[128];
	snprintf(full, sizeof full, "\rreading linear.csv [====================] %.1f/%.1f kB ", st.st_size / 1e3,
	         st.st_size / 1e3);
	cr_assert(strstr(tty, full), "no full loading bar (%s):\n%s", full + 1, tty);
	cr_assert(!strchr(tty, '\033'), "%s", tty);
	run_result r = run_main(&lin, "--threads 1 --epochs 1");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(!strchr(r.out, '\r') && !strstr(r.out, "reading"), "%s", r.out);
	char *shown = as_shown(tty), *a = strip_timing(shown), *b = strip_timing(r.out);
	cr_assert_str_eq(a, b, "the terminal shows other lines than a pipe gets");
	free(shown);
	free(a);
	free(b);
	free(tty);
	run_free(&r);
	/* An error while a bar is drawn starts on a line of its own. */
	FILE *f = fopen(tpath("linear.csv"), "a");
	fprintf(f, "1,2\n");
	fclose(f);
	tty = run_on_pty(&lin, "xterm", "--threads 1 --epochs 1", &rc);
	cr_assert_eq(rc, 1, "%s", tty);
	shown = as_shown(tty);
	cr_assert(strncmp(shown, "tiny: error: ", 13) == 0, "[%s] [%s]", shown, tty);
	free(shown);
	free(tty);
}

/* ---- Metrics logs (metrics_log.c) ---- */

/* The value of column `key` in an epoch line (NAN if absent). */
static double line_value(const char *line, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = strstr(line, key); p; p = strstr(p + 1, key))
		if ((p == line || p[-1] == ' ') && p[kl] == ' ')
			return strtod(p + kl + 1, NULL);
	return NAN;
}

/* Field k (0-based) of a CSV line, as a number; NAN when empty. */
static double csv_field(const char *line, int k)
{
	for (int i = 0; i < k; i++) {
		line = strchr(line, ',');
		cr_assert(line, "no field %d", k);
		line++;
	}
	return *line == ',' || *line == '\n' || !*line ? NAN : strtod(line, NULL);
}

/* Field `key` of a JSON line, as a number; NAN for null. */
static double json_field(const char *line, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(line, pat);
	cr_assert(p, "no %s in %s", key, line);
	p += strlen(pat);
	return strncmp(p, "null", 4) == 0 ? NAN : strtod(p, NULL);
}

/* Checks that log row i (CSV or JSON) holds the numbers that epoch line i
 * of `out` printed, rounded as printed. */
static void check_rows(const char *out, const char *log, int json, int first_epoch, int n)
{
	const char *keys[] = {"loss", "train_acc", "test_loss", "test_acc"};
	const char *cols[] = {"train_loss", "train_acc", "test_loss", "test_acc"};
	const char *line = out, *row = log;
	if (!json) {
		const char *head = "epoch,step,batch,lr,train_loss,train_acc,test_loss,test_acc,val_loss,val_acc,seconds,"
		                   "samples_per_s\n";
		cr_assert(strncmp(log, head, strlen(head)) == 0, "%s", log);
		row = strchr(log, '\n') + 1;
	}
	for (int e = 0; e < n; e++) {
		line = strstr(line, "\nepoch ");
		cr_assert(line, "epoch line %d missing:\n%s", e, out);
		line++;
		char want[32], got[32];
		double ep = json ? json_field(row, "epoch") : csv_field(row, 0);
		cr_assert_eq((int)ep, first_epoch + e, "%s", row);
		double lr = json ? json_field(row, "lr") : csv_field(row, 3);
		cr_assert_eq(lr, 0.02, "%s", row); /* the float rate, printed as a float reads */
		double step = json ? json_field(row, "step") : csv_field(row, 1);
		cr_assert_eq((int)step, 32 * (first_epoch + e), "%s", row);
		for (int k = 0; k < 4; k++) {
			double v = json ? json_field(row, cols[k]) : csv_field(row, 4 + k);
			snprintf(want, sizeof want, "%.4f", line_value(line, keys[k]));
			snprintf(got, sizeof got, "%.4f", v);
			cr_assert_str_eq(got, want, "%s: the log has %s, the epoch line %s", cols[k], got, want);
		}
		double secs = json ? json_field(row, "seconds") : csv_field(row, 10);
		cr_assert(secs >= 0 && secs < 60, "%s", row);
		/* An epoch's row: no batch; no validation split: no val columns. */
		for (int k = 0; k < 3; k++) {
			static const char *const empty[] = {"batch", "val_loss", "val_acc"};
			static const int col[] = {2, 8, 9};
			double v = json ? json_field(row, empty[k]) : csv_field(row, col[k]);
			cr_assert(isnan(v), "%s is not empty in %s", empty[k], row);
		}
		row = strchr(row, '\n');
		cr_assert(row, "row %d missing:\n%s", e, log);
		row++;
	}
	cr_assert_str_eq(row, "", "rows beyond the epochs run");
}

/* --log writes a row per epoch that agrees with the epoch line; --resume
 * appends to it (without a second CSV header); --quiet logs all the same,
 * test metrics included. */
Test(main, metrics_log_rows_agree_with_epoch_lines_and_resume_appends)
{
	nnrt_model m = mlp_model();
	for (int json = 0; json <= 1; json++) {
		char log[512], ck[512];
		snprintf(log, sizeof log, "%s/m.%s", tmpdir, json ? "jsonl" : "csv");
		snprintf(ck, sizeof ck, "%s/m.ckpt", tmpdir);
		run_result r = run_main(&m, "--threads 1 --epochs 2 --log %s --save %s", log, ck);
		cr_assert_eq(r.rc, 0, "%s", r.err);
		char *text = read_all(log, NULL);
		check_rows(r.out, text, json, 1, 2);
		free(text);
		run_free(&r);
		r = run_main(&m, "--threads 1 --epochs 4 --log %s --resume %s", log, ck);
		cr_assert_eq(r.rc, 0, "%s", r.err);
		text = read_all(log, NULL);
		/* The first two rows are the first run's, then this run's. */
		char *rest = text;
		for (int k = 0; k < 2 + !json; k++)
			rest = strchr(rest, '\n') + 1;
		char *tail = json ? strdup(rest) : NULL;
		if (!json) {
			tail = malloc(strlen(rest) + 120);
			strcpy(tail, "epoch,step,batch,lr,train_loss,train_acc,test_loss,test_acc,val_loss,val_acc,seconds,"
			             "samples_per_s\n");
			strcat(tail, rest);
		}
		char *out = malloc(strlen(r.out) + 2);
		sprintf(out, "\n%s", r.out);
		check_rows(out, tail, json, 3, 2);
		free(out);
		free(tail);
		free(text);
		run_free(&r);
		/* --quiet: no lines, the same log. */
		char qlog[512];
		snprintf(qlog, sizeof qlog, "%s/q.%s", tmpdir, json ? "json" : "csv");
		r = run_main(&m, "--threads 1 --epochs 2 --quiet --log %s", qlog);
		cr_assert_eq(r.rc, 0, "%s", r.err);
		cr_assert_str_eq(r.out, "");
		run_free(&r);
		char *a = read_all(qlog, NULL);
		cr_assert(json ? json_field(strchr(a, '\n') + 1, "test_acc") > 0.5 : csv_field(strchr(strchr(a, '\n') + 1, '\n') + 1, 7) > 0.5,
		          "%s", a);
		free(a);
	}
	/* A regression has no accuracy: empty fields, JSON null. */
	nnrt_model lin = lin_model(tpath("linear.csv"));
	run_result r = run_main(&lin, "--threads 1 --epochs 1 --quiet --log %s", tpath("lin.jsonl"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	char *text = read_all(tpath("lin.jsonl"), NULL);
	cr_assert(strstr(text, "\"train_acc\":null,\"test_loss\":null,\"test_acc\":null,") && strstr(text, "{\"epoch\":1,\"step\":25,"),
	          "%s", text);
	free(text);
	run_free(&r);
}

/* --log-every N: a row after every N-th step, before the epoch's row, with
 * the step within the epoch in `batch`, the epoch's running means (the last
 * one is the epoch row's train metrics exactly), and empty test and
 * validation columns; epoch rows keep an empty `batch`; --resume appends
 * and counts on. */
Test(main, log_every_writes_step_rows_and_resume_appends_them)
{
	nnrt_model m = mlp_model(); /* 1000 samples, batch 32: 32 steps an epoch */
	for (int json = 0; json <= 1; json++) {
		const char *log = tpath(json ? "s.jsonl" : "s.csv");
		run_result r = run_main(&m, "--threads 1 --epochs 2 --log %s --log-every 8 --save %s", log, tpath("s.ckpt"));
		cr_assert_eq(r.rc, 0, "%s", r.err);
		run_free(&r);
		r = run_main(&m, "--threads 1 --epochs 3 --log %s --log-every 8 --resume %s", log, tpath("s.ckpt"));
		cr_assert_eq(r.rc, 0, "%s", r.err);
		run_free(&r);
		char *text = read_all(log, NULL);
		const char *row = json ? text : strchr(text, '\n') + 1;
		for (int e = 1; e <= 3; e++) {
			double last_loss = NAN, last_acc = NAN, last_secs = -1;
			for (int k = 1; k <= 5; k++) {
				cr_assert(row && *row, "row %d of epoch %d missing:\n%s", k, e, text);
				double ep = json ? json_field(row, "epoch") : csv_field(row, 0);
				double step = json ? json_field(row, "step") : csv_field(row, 1);
				double batch = json ? json_field(row, "batch") : csv_field(row, 2);
				double loss = json ? json_field(row, "train_loss") : csv_field(row, 4);
				double acc = json ? json_field(row, "train_acc") : csv_field(row, 5);
				double secs = json ? json_field(row, "seconds") : csv_field(row, 10);
				cr_assert_eq(ep, e, "%s", row);
				if (k <= 4) { /* after steps 8, 16, 24, 32 of the epoch */
					cr_assert_eq(batch, 8 * k, "%s", row);
					cr_assert_eq(step, 32 * (e - 1) + 8 * k, "%s", row);
					for (int c = 0; c < 4; c++) {
						static const char *const key[] = {"test_loss", "test_acc", "val_loss", "val_acc"};
						double v = json ? json_field(row, key[c]) : csv_field(row, 6 + c);
						cr_assert(isnan(v), "%s is not empty in a step row: %s", key[c], row);
					}
					cr_assert(loss > 0 && acc >= 0 && acc <= 1 && secs >= last_secs, "%s", row);
					last_loss = loss, last_acc = acc, last_secs = secs;
				} else { /* the epoch's row: the last step row's running means */
					cr_assert(isnan(batch), "%s", row);
					cr_assert_eq(step, 32 * e, "%s", row);
					cr_assert(loss == last_loss && acc == last_acc, "epoch row %s against step row %.9g %.9g", row,
					          last_loss, last_acc);
					double tl = json ? json_field(row, "test_loss") : csv_field(row, 6);
					cr_assert(tl > 0, "%s", row);
				}
				row = strchr(row, '\n');
				row = row ? row + 1 : NULL;
			}
		}
		cr_assert(row && !*row, "rows beyond 3 epochs:\n%s", text);
		free(text);
	}
}

/* With a validation split, the epoch rows carry val_loss and val_acc: the
 * numbers the epoch lines print, and the train means over the samples left
 * to train on. */
Test(main, metrics_log_has_the_validation_columns_of_the_epoch_lines)
{
	nnrt_model m = mlp_model();
	m.val_fraction = 0.2f;
	run_result r = run_main(&m, "--threads 1 --epochs 3 --log %s", tpath("v.csv"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(strstr(r.out, "800 training samples, 200 validation samples"), "%s", r.out);
	char *text = read_all(tpath("v.csv"), NULL);
	const char *line = r.out, *row = strchr(text, '\n') + 1;
	const char *keys[] = {"loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc"};
	const int cols[] = {4, 5, 6, 7, 8, 9};
	for (int e = 0; e < 3; e++) {
		line = strstr(line, "\nepoch ");
		cr_assert(line, "%s", r.out);
		line++;
		for (int k = 0; k < 6; k++) {
			char want[32], got[32];
			snprintf(want, sizeof want, "%.4f", line_value(line, keys[k]));
			snprintf(got, sizeof got, "%.4f", csv_field(row, cols[k]));
			cr_assert_str_eq(got, want, "epoch %d: %s is %s in the log, %s on the line", e + 1, keys[k], got, want);
		}
		row = strchr(row, '\n') + 1;
	}
	cr_assert_str_eq(row, "");
	free(text);
	run_free(&r);
}

/* --resume appends only to a log with this binary's columns: an older
 * binary's log (9 columns, before the validation ones) is refused before
 * training and left as it was; a log with our columns is appended to, and
 * an empty file gets the CSV header. */
Test(main, resume_refuses_to_append_to_a_log_of_other_columns)
{
	nnrt_model m = mlp_model();
	run_result r = run_main(&m, "--threads 1 --epochs 1 --quiet --save %s", tpath("c.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	static const char *const old[] = {
	    "epoch,step,lr,train_loss,train_acc,test_loss,test_acc,seconds,samples_per_s\n1,32,0.1,0.5,0.8,0.5,0.8,1,1000\n",
	    "{\"epoch\":1,\"step\":32,\"lr\":0.1,\"train_loss\":0.5,\"train_acc\":0.8,\"test_loss\":0.5,"
	    "\"test_acc\":0.8,\"seconds\":1,\"samples_per_s\":1000}\n",
	};
	for (int json = 0; json <= 1; json++) {
		const char *log = tpath(json ? "old.jsonl" : "old.csv");
		write_text(log, old[json]);
		r = run_main(&m, "--threads 1 --epochs 2 --log %s --resume %s", log, tpath("c.ckpt"));
		cr_assert_eq(r.rc, 2, "%d %s", r.rc, r.err);
		cr_assert(strstr(r.err, "its first line has the columns 'epoch,step,lr,train_loss,"), "%s", r.err);
		cr_assert(strstr(r.err, "written by another version"), "%s", r.err);
		cr_assert(!strstr(r.out, "epoch 2"), "trained:\n%s", r.out);
		char *text = read_all(log, NULL);
		cr_assert_str_eq(text, old[json], "the old log was changed");
		free(text);
		run_free(&r);
	}
	write_text(tpath("empty.csv"), "");
	r = run_main(&m, "--threads 1 --epochs 2 --quiet --log %s --resume %s", tpath("empty.csv"), tpath("c.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	char *text = read_all(tpath("empty.csv"), NULL);
	cr_assert(strncmp(text, "epoch,step,batch,lr,", 20) == 0 && strstr(text, "\n2,64,"), "%s", text);
	free(text);
	/* ours: appended, header once */
	r = run_main(&m, "--threads 1 --epochs 3 --quiet --log %s --resume %s", tpath("empty.csv"), tpath("c.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	text = read_all(tpath("empty.csv"), NULL);
	cr_assert(strstr(text, "\n2,64,") && strstr(text, "\n3,96,") && !strstr(text + 1, "epoch,step"), "%s", text);
	free(text);
}

/* A log that cannot be written is refused before the data is loaded. */
Test(main, unwritable_log_is_an_error_before_training)
{
	nnrt_model m = mlp_model();
	mkdir(tpath("dir.csv"), 0755);
	struct {
		const char *args, *msg;
	} cases[] = {
	    {"--log /nonexistent/m.csv", "tiny: error: --log /nonexistent/m.csv: cannot open for writing: No such file or directory\n"},
	    {"--log {dir}/dir.csv", "tiny: error: --log {dir}/dir.csv: is a directory\n"},
	    {"--log {dir}/m.txt", "tiny: error: --log {dir}/m.txt: the name must end in .csv (CSV) or .jsonl, .ndjson or .json (JSON lines)\n"},
	    {"--log {dir}/m.csv --eval --load x", "tiny: error: --log cannot be used with --eval, which trains no epoch to log\n"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char args[512], msg[512];
		snprintf(args, sizeof args, "%s", subst(cases[i].args));
		snprintf(msg, sizeof msg, "%s", subst(cases[i].msg));
		run_result r = run_main(&m, "%s", args);
		cr_assert_eq(r.rc, 2, "%s: %d %s", args, r.rc, r.err);
		cr_assert(strncmp(r.err, msg, strlen(msg)) == 0, "%s:\n got %s\nwant %s", args, r.err, msg);
		cr_assert(!strstr(r.out, "epoch"), "%s trained:\n%s", args, r.out);
		run_free(&r);
	}
}

/* ---- --eval's per-class scores and confusion matrix (confusion.c) ---- */

/* The matrix sums to the test set, its diagonal is the accuracy the loss
 * line prints, each row to the class's support, and every precision,
 * recall and F1 printed is the one the printed matrix gives. */
Test(main, eval_prints_scores_that_agree_with_its_confusion_matrix)
{
	nnrt_model m = mlp_model();
	run_result r = run_main(&m, "--threads 1 --epochs 3 --quiet --save %s", tpath("x.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	r = run_main(&m, "--threads 1 --load %s --eval --plot %s", tpath("x.ckpt"), tpath("pics"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	const char *t = strstr(r.out, "\nconfusion matrix (rows: true class, columns: predicted class):\n");
	cr_assert(t, "%s", r.out);
	long long cm[2][2];
	cr_assert_eq(sscanf(strchr(t + 1, '\n') + 1, " 0 1\n0 %lld %lld\n1 %lld %lld", &cm[0][0], &cm[0][1], &cm[1][0],
			    &cm[1][1]),
		     4, "%s", t);
	long long total = cm[0][0] + cm[0][1] + cm[1][0] + cm[1][1];
	cr_assert_eq(total, 500, "%s", r.out);
	char want[32], got[32];
	snprintf(want, sizeof want, "%.4f", last_value(r.out, "test_acc"));
	snprintf(got, sizeof got, "%.4f", (double)(cm[0][0] + cm[1][1]) / (double)total);
	cr_assert_str_eq(got, want, "the diagonal's accuracy against the printed test_acc");
	cr_assert(strstr(r.out, "\nclass            precision  recall      f1  support\n"), "%s", r.out);
	for (int k = 0; k < 2; k++) {
		char head[8];
		snprintf(head, sizeof head, "\n%d ", k);
		const char *row = strstr(r.out, head);
		cr_assert(row, "%s", r.out);
		double p, rc, f;
		long long n;
		cr_assert_eq(sscanf(row + 1, "%*d %lf %lf %lf %lld", &p, &rc, &f, &n), 4, "%s", row);
		double tp = (double)cm[k][k], col = (double)(cm[0][k] + cm[1][k]), rowsum = (double)(cm[k][0] + cm[k][1]);
		cr_expect_float_eq(p, tp / col, 5e-5, "class %d precision", k);
		cr_expect_float_eq(rc, tp / rowsum, 5e-5, "class %d recall", k);
		cr_expect_float_eq(f, 2 * (tp / col) * (tp / rowsum) / (tp / col + tp / rowsum), 5e-5, "class %d f1", k);
		cr_expect_eq(n, (long long)rowsum);
	}
	/* --plot: the matrix as SVG, each cell's count in its title. */
	char *svg = read_all(tpath("pics/confusion.svg"), NULL);
	cr_assert(svg, "no confusion.svg");
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			char cell[64];
			snprintf(cell, sizeof cell, "<title>true %d, predicted %d: %lld</title>", i, j, cm[i][j]);
			cr_expect(strstr(svg, cell), "no %s in confusion.svg", cell);
		}
	free(svg);
	unlink(tpath("pics/confusion.svg"));
	rmdir(tpath("pics"));
	run_free(&r);
}

/* ---- The model object (model.c) ---- */

/* One check (nnrt_model_check) serves the training binary and the
 * embedding API: every bad object is refused by both, with the same reason,
 * and the API used to let an unknown loss, optimizer or initialiser and a
 * parameter whose shape disagrees with its size through.  Only train_step
 * is theirs to judge differently: an --inference-only object has none. */
Test(model, one_check_refuses_a_bad_model_for_the_binary_and_the_api)
{
	static nnrt_param_info params[4];
	struct {
		const char *why;
		int code;
	} rows[] = {
		{"invalid model object: unknown loss (a bug in nnc)", NNRT_ERR_MODEL},
		{"invalid model object: unknown optimizer (a bug in nnc)", NNRT_ERR_MODEL},
		{"invalid model object: parameter 1 (fc1.bias) is inconsistent (a bug in nnc)", NNRT_ERR_MODEL},
		{"invalid model object: parameter 2 (fc2.weight) is inconsistent (a bug in nnc)", NNRT_ERR_MODEL},
		{"invalid model object: parameter 3 (fc2.bias) is inconsistent (a bug in nnc)", NNRT_ERR_MODEL},
		{"invalid model object: parameter 1 (fc1.bias) is inconsistent (a bug in nnc)", NNRT_ERR_MODEL},
		{"invalid model object: negative array size (a bug in nnc)", NNRT_ERR_MODEL},
		{"invalid model object: array size too large (a bug in nnc)", NNRT_ERR_MODEL},
		{"invalid model object: no model name (a bug in nnc)", NNRT_ERR_MODEL},
		{"invalid model object: unknown label kind (a bug in nnc)", NNRT_ERR_MODEL},
		{"this program's model object has ABI version ", NNRT_ERR_MODEL},
		{"this CPU lacks ", NNRT_ERR_CPU},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		nnrt_model m = mlp_model();
		memcpy(params, mlp_params, sizeof params);
		m.params = params;
		switch (i) {
		case 0: m.loss = NNRT_LOSS_SEQ_XENT + 1; break;
		case 1: m.optimizer = 0; break;
		case 2: params[1].init = NNRT_INIT_CONSTANT + 1; break;
		case 3: params[2].shape[0] = MH + 1; break; /* 17 x 2 is not its 32 values */
		case 4: params[3].offset = MP - 1; break;  /* runs past param_floats */
		case 5: /* (2^62 + 4) x 4 wraps around to its 16 values */
			params[1].rank = 2;
			params[1].shape[0] = ((int64_t)1 << 62) + 4;
			params[1].shape[1] = 4;
			break;
		case 6: m.ws_floats = -1; break;
		case 7: m.opt_floats = INT64_MAX; break; /* wrapped the instance size: a crash */
		case 8: m.name = NULL; break;
		case 9: m.label_kind = 0; break;
		case 10: m.abi_version = NNRT_ABI_VERSION + 1; break;
		case 11:
			m.cpu_features = "sse3";
			setenv("NNRT_CPU_DISABLE", "sse3", 1);
			break;
		}
		char why[512];
		cr_assert_eq(nnrt_model_check(&m, 1, why, sizeof why), rows[i].code, "row %zu: %s", i, why);
		cr_assert(strncmp(why, rows[i].why, strlen(rows[i].why)) == 0, "row %zu: %s", i, why);
		cr_assert_eq(nnrt_model_check(&m, 0, NULL, 0), rows[i].code, "row %zu", i);
		/* the training binary reports it and exits 1 before touching a flag */
		run_result r = run_main(&m, "--epochs 0 --no-such-flag");
		cr_assert_eq(r.rc, NNRT_EXIT_FAILURE, "row %zu: %s", i, r.err);
		char want[600];
		snprintf(want, sizeof want, "tiny: error: %s\n", why);
		cr_assert_str_eq(r.err, want, "row %zu", i);
		cr_assert_str_eq(r.out, "");
		run_free(&r);
		/* the API refuses it with the check's code, in either constructor */
		int err = -1;
		cr_assert_null(nnrt_instance_new(&m, &err), "row %zu: accepted", i);
		cr_assert_eq(err, rows[i].code, "row %zu: %s", i, nnrt_strerror(err));
		static _Alignas(NNRT_INSTANCE_ALIGN) unsigned char mem[NNRT_INSTANCE_HEADER_BYTES + 65536];
		err = -1;
		cr_assert_null(nnrt_instance_new_in(&m, mem, sizeof mem, &err), "row %zu: accepted", i);
		cr_assert_eq(err, rows[i].code, "row %zu", i);
		unsetenv("NNRT_CPU_DISABLE");
	}
	cr_assert_eq(nnrt_model_check(NULL, 1, NULL, 0), NNRT_ERR_ARG);

	/* no train_step: an object for inference, which only the API runs */
	nnrt_model m = mlp_model();
	cr_assert_eq(nnrt_model_check(&m, 1, NULL, 0), NNRT_OK);
	m.train_step = NULL;
	char why[512];
	cr_assert_eq(nnrt_model_check(&m, 1, why, sizeof why), NNRT_ERR_MODEL);
	cr_assert_str_eq(why, "invalid model object: missing entry point (a bug in nnc)");
	run_result r = run_main(&m, "");
	cr_assert_eq(r.rc, NNRT_EXIT_FAILURE);
	cr_assert_str_eq(r.err, "tiny: error: invalid model object: missing entry point (a bug in nnc)\n");
	run_free(&r);
	int err;
	nnrt_instance *inst = nnrt_instance_new(&m, &err);
	cr_assert_not_null(inst, "%s", nnrt_strerror(err));
	nnrt_instance_free(inst);
	m.eval_step = NULL;
	cr_assert_null(nnrt_instance_new(&m, &err));
	cr_assert_eq(err, NNRT_ERR_MODEL);
}

/* The hyper-parameters of a step are what the update needs: the rate, and
 * for Adam the bias corrections 1 / (1 - beta^t) of step t (Kingma & Ba),
 * here against the values worked out by hand. */
Test(model, step_hp_gives_the_rate_and_adams_bias_corrections)
{
	nnrt_model m = mlp_model(); /* Adam, beta1 0.9, beta2 0.999 */
	struct {
		int64_t t;
		double c1, c2;
	} rows[] = {
		{1, 10.0, 1000.0},
		{2, 1 / 0.19, 1 / 0.001999},
		{3, 1 / 0.271, 1 / (1 - 0.997002999)},
		{100, 1 / (1 - 2.6561398887587544e-05), 1 / (1 - 0.9047921471137090)},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		nnrt_step_args a;
		memset(&a, 0x55, sizeof a);
		nnrt_step_hp(&a, &m, &(nnrt_hyper){0.25f, 0, 0, 0, 0, 0, 0, 0, 0}, rows[i].t, 3);
		cr_assert_eq(a.hp[NNRT_HP_LR], 0.25f);
		/* the float betas are not exactly 0.9 and 0.999: 1e-5 apart at most */
		cr_assert_float_eq(a.hp[NNRT_HP_ADAM_C1], rows[i].c1, 1e-5 * rows[i].c1, "t = %lld: c1 %.9g",
		                   (long long)rows[i].t, a.hp[NNRT_HP_ADAM_C1]);
		cr_assert_float_eq(a.hp[NNRT_HP_ADAM_C2], rows[i].c2, 1e-4 * rows[i].c2, "t = %lld: c2 %.9g",
		                   (long long)rows[i].t, a.hp[NNRT_HP_ADAM_C2]);
	}
	/* no corrections outside a training step, nor for SGD; the reserved
	 * slots are zero */
	nnrt_step_args a;
	memset(&a, 0x55, sizeof a);
	nnrt_step_hp(&a, &m, &(nnrt_hyper){0.5f, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 3);
	cr_assert(a.hp[NNRT_HP_LR] == 0.5f && a.hp[NNRT_HP_ADAM_C1] == 0 && a.hp[NNRT_HP_ADAM_C2] == 0);
	cr_assert(a.seed == 3 && a.sample0 == 0, "outside a training step: seed %llu, sample0 %lld",
	          (unsigned long long)a.seed, (long long)a.sample0);
	/* AdamW has Adam's corrections */
	m.optimizer = NNRT_OPT_ADAMW;
	nnrt_step_hp(&a, &m, &(nnrt_hyper){0.25f, 0, 0, 0, 0, 0, 0, 0, 0}, 1, 3);
	cr_assert(a.hp[NNRT_HP_ADAM_C1] == (float)(1 / (1 - (double)m.beta1)), "adamw: c1 %g", a.hp[NNRT_HP_ADAM_C1]);
	m.optimizer = NNRT_OPT_SGD;
	memset(&a, 0x55, sizeof a);
	nnrt_step_hp(&a, &m, &(nnrt_hyper){0.5f, 0.125f, 2.5f, 0.75f, 0, 0, 0, 0, 0}, 7, 3);
	cr_assert(a.hp[NNRT_HP_LR] == 0.5f && a.hp[NNRT_HP_ADAM_C1] == 0 && a.hp[NNRT_HP_ADAM_C2] == 0);
	cr_assert(a.hp[NNRT_HP_WD] == 0.125f, "the weight decay is %g", a.hp[NNRT_HP_WD]);
	cr_assert(a.hp[NNRT_HP_CLIP_NORM] == 2.5f && a.hp[NNRT_HP_CLIP_VALUE] == 0.75f, "clipping %g %g",
	          a.hp[NNRT_HP_CLIP_NORM], a.hp[NNRT_HP_CLIP_VALUE]);
	/* SGD's dampening: the first step takes the whole gradient (torch
	 * starts the velocity at g), the later ones 1 - dampening of it */
	cr_assert(a.hp[NNRT_HP_DAMP] == 1.0f, "no dampening: %g", a.hp[NNRT_HP_DAMP]);
	m.dampening = 0.25f;
	nnrt_step_hp(&a, &m, &(nnrt_hyper){0.5f, 0, 0, 0, 0, 0, 0, 0, 0}, 1, 3);
	cr_assert(a.hp[NNRT_HP_DAMP] == 1.0f, "step 1: %g", a.hp[NNRT_HP_DAMP]);
	nnrt_step_hp(&a, &m, &(nnrt_hyper){0.5f, 0, 0, 0, 0, 0, 0, 0, 0}, 7, 3);
	cr_assert(a.hp[NNRT_HP_DAMP] == 0.75f, "step 7: %g", a.hp[NNRT_HP_DAMP]);
	cr_assert(a.seed == 3 && a.sample0 == 6 * m.batch, "step 7 starts at sample %lld", (long long)a.sample0);
	for (size_t k = NNRT_HP_COUNT; k < sizeof a.hp / sizeof a.hp[0]; k++)
		cr_assert_eq(a.hp[k], 0.0f, "reserved hp[%zu] is %g", k, a.hp[k]);
}

/* What the binary's and the API's train steps hand the body, step by step. */
enum { HP_LOG = 64 };
static float hp_log[HP_LOG][sizeof ((nnrt_step_args *)0)->hp / sizeof(float)];
static uint64_t seed_log[HP_LOG];
static int64_t sample0_log[HP_LOG];
static int hp_logged;

static void logging_train(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	if (tid == 0 && hp_logged < HP_LOG) {
		seed_log[hp_logged] = a->seed;
		sample0_log[hp_logged] = a->sample0;
		memcpy(hp_log[hp_logged++], a->hp, sizeof a->hp);
	}
	mlp_train(a, tid, nt);
}

/* The training binary and an instance give the body of step t the same
 * hyper-parameters, which are nnrt_step_hp's for t, and the same random
 * stream: the run's seed, and (t - 1) * batch as the first sample. */
Test(model, the_binary_and_the_api_fill_the_same_hyper_parameters)
{
	nnrt_model m = mlp_model();
	m.train_step = logging_train;
	m.test.kind = NNRT_DATA_NONE;
	hp_logged = 0;
	run_result r = run_main(&m, "--epochs 1 --limit 96 --lr 0.125 --weight-decay 0.0625 --threads 2 --quiet --seed 9");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	cr_assert_eq(hp_logged, 3, "3 steps of 32, not %d", hp_logged);
	float bin[3][sizeof ((nnrt_step_args *)0)->hp / sizeof(float)];
	memcpy(bin, hp_log, sizeof bin);
	uint64_t bin_seed[3];
	int64_t bin_sample0[3];
	memcpy(bin_seed, seed_log, sizeof bin_seed);
	memcpy(bin_sample0, sample0_log, sizeof bin_sample0);

	hp_logged = 0;
	int err;
	nnrt_instance *inst = nnrt_instance_new_seeded(&m, 9, &err);
	cr_assert_not_null(inst);
	cr_assert_eq(nnrt_instance_set_lr(inst, 0.125f), NNRT_OK);
	cr_assert_eq(nnrt_instance_set_weight_decay(inst, 0.0625f), NNRT_OK);
	cr_assert_eq(nnrt_instance_weight_decay(inst), 0.0625f);
	cr_assert_eq(nnrt_instance_set_weight_decay(inst, -1), NNRT_ERR_ARG);
	float x[32 * MI] = {0};
	int32_t y[32] = {0};
	for (int s = 0; s < 3; s++)
		cr_assert_eq(nnrt_instance_train_step(inst, x, y, 32, NULL), NNRT_OK, "%s", nnrt_instance_error(inst));
	nnrt_instance_free(inst);
	cr_assert_eq(hp_logged, 3);
	for (int s = 0; s < 3; s++) {
		nnrt_step_args want;
		nnrt_step_hp(&want, &m, &(nnrt_hyper){0.125f, 0.0625f, 0, 0, 1, 1, 0, 0, 0}, s + 1, 9);
		cr_assert(memcmp(bin[s], want.hp, sizeof want.hp) == 0, "binary, step %d", s + 1);
		cr_assert(memcmp(hp_log[s], want.hp, sizeof want.hp) == 0, "api, step %d", s + 1);
		cr_assert(bin_seed[s] == 9 && seed_log[s] == 9, "step %d: seeds %llu and %llu", s + 1,
		          (unsigned long long)bin_seed[s], (unsigned long long)seed_log[s]);
		cr_assert(bin_sample0[s] == 32 * s && sample0_log[s] == 32 * s, "step %d: first samples %lld and %lld",
		          s + 1, (long long)bin_sample0[s], (long long)sample0_log[s]);
	}
}

/* ---- Learning-rate schedules against torch's own formulations ----
 * Each reference below is written the way torch.optim.lr_scheduler steps
 * (the chainable recurrences of StepLR, MultiStepLR, CosineAnnealingLR,
 * PolynomialLR, the T_cur bookkeeping of CosineAnnealingWarmRestarts, the
 * phases of OneCycleLR), step by step over the whole run, independently of
 * nnrt_schedule_lr's closed forms.  S = 8 steps per epoch keeps 1/S exact,
 * so the restarts' epoch sums land on their boundaries exactly. */
enum { SCH_S = 8, SCH_EPOCHS = 25, SCH_TOTAL = SCH_S * SCH_EPOCHS };

static double sch_anneal(double start, double end, double pct)
{
	return end + (start - end) / 2.0 * (cos(3.14159265358979323846 * pct) + 1);
}

/* ref[u] for u = 0 .. n-1 (steps after the warmup) */
static void sch_reference(const nnrt_schedule *s, double lr, int n, double *ref)
{
	const double pi = 3.14159265358979323846;
	double cur = lr;
	switch (s->kind) {
	case NNRT_SCHED_STEP:
		for (int u = 0; u < n; u++) {
			if (u > 0 && u % (int)(s->a * SCH_S) == 0)
				cur *= s->b;
			ref[u] = cur;
		}
		break;
	case NNRT_SCHED_MULTISTEP:
		for (int u = 0; u < n; u++) {
			for (int k = 0; k < s->n_milestones; k++)
				if (u > 0 && u == (int)(s->milestones[k] * SCH_S))
					cur *= s->b;
			ref[u] = cur;
		}
		break;
	case NNRT_SCHED_EXPONENTIAL:
		for (int u = 0; u < n; u++) {
			if (u > 0)
				cur *= pow(s->b, 1.0 / SCH_S);
			ref[u] = cur;
		}
		break;
	case NNRT_SCHED_COSINE:
		if (s->d > 0) { /* CosineAnnealingWarmRestarts.step() */
			double tcur = 0, ti = s->d;
			for (int u = 0; u < n; u++) {
				if (u > 0) {
					tcur += 1.0 / SCH_S;
					if (tcur >= ti) {
						tcur -= ti;
						ti *= s->b;
					}
				}
				ref[u] = s->c + (lr - s->c) * (1 + cos(pi * tcur / ti)) / 2;
			}
		} else { /* CosineAnnealingLR's recursive form, then flat */
			double T = (s->a > 0 ? s->a : (double)n / SCH_S) * SCH_S;
			for (int u = 0; u < n; u++) {
				if (u > 0 && u <= T)
					cur = s->c + (cur - s->c) * (1 + cos(pi * u / T)) / (1 + cos(pi * (u - 1) / T));
				ref[u] = u <= T ? cur : s->c;
			}
		}
		break;
	case NNRT_SCHED_POLYNOMIAL: { /* PolynomialLR's chainable factor, on lr - min */
		double T = (s->a > 0 ? s->a : (double)n / SCH_S) * SCH_S;
		cur = lr - s->c;
		for (int u = 0; u < n; u++) {
			if (u > 0 && u <= T)
				cur *= pow((1.0 - u / T) / (1.0 - (u - 1) / T), s->b);
			ref[u] = s->c + (u <= T ? cur : 0);
		}
		break;
	}
	case NNRT_SCHED_ONECYCLE: { /* OneCycleLR.get_lr(), two phases, cos */
		double N = (s->a > 0 ? s->a : (double)n / SCH_S) * SCH_S;
		double init = lr / s->c, fin = init / s->d;
		struct {
			double end, start_lr, end_lr;
		} ph[2] = {{s->b * N - 1, init, lr}, {N - 1, lr, fin}};
		for (int u = 0; u < n; u++) {
			double start = 0;
			ref[u] = fin;
			for (int i = 0; i < 2; i++) {
				if (u <= ph[i].end || i == 1) {
					double pct = (u - start) / (ph[i].end - start);
					ref[u] = u > N - 1 ? fin : sch_anneal(ph[i].start_lr, ph[i].end_lr, pct);
					break;
				}
				start = ph[i].end;
			}
		}
		break;
	}
	default:
		for (int u = 0; u < n; u++)
			ref[u] = lr;
	}
}

Test(model, every_schedule_follows_torchs_steps)
{
	static const nnrt_schedule cases[] = {
		{.kind = NNRT_SCHED_CONSTANT},
		{.kind = NNRT_SCHED_STEP, .a = 3, .b = 0.5},
		{.kind = NNRT_SCHED_STEP, .a = 0.5, .b = 0.9, .warmup = 13},
		{.kind = NNRT_SCHED_MULTISTEP, .b = 0.1, .n_milestones = 3, .milestones = {2, 5, 11}},
		{.kind = NNRT_SCHED_EXPONENTIAL, .b = 0.8},
		{.kind = NNRT_SCHED_COSINE, .c = 0.001},
		{.kind = NNRT_SCHED_COSINE, .a = 10, .c = 0.0001, .warmup = 20},
		{.kind = NNRT_SCHED_COSINE, .d = 2, .b = 1, .c = 0.001},
		{.kind = NNRT_SCHED_COSINE, .d = 1, .b = 2, .c = 0, .warmup = 5},
		{.kind = NNRT_SCHED_POLYNOMIAL, .b = 1},
		{.kind = NNRT_SCHED_POLYNOMIAL, .a = 12, .b = 2, .c = 0.002, .warmup = 7},
		{.kind = NNRT_SCHED_ONECYCLE, .b = 0.3, .c = 25, .d = 1e4},
		{.kind = NNRT_SCHED_ONECYCLE, .a = 20, .b = 0.25, .c = 10, .d = 100, .warmup = 3},
	};
	const double lr = 0.1;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const nnrt_schedule *s = &cases[i];
		int w = (int)s->warmup, n = SCH_TOTAL - w;
		double ref[SCH_TOTAL];
		sch_reference(s, lr, n, ref);
		for (int step = 1; step <= SCH_TOTAL; step++) {
			/* warmup: linear from lr0 / w to lr0, the schedule's first rate */
			double want = step <= w ? ref[0] * step / w : ref[step - 1 - w];
			double got = nnrt_schedule_lr(s, lr, step, SCH_S, SCH_TOTAL);
			cr_assert(fabs(got - want) <= 1e-6 * fabs(want) + 1e-12, "case %zu (kind %d), step %d: %.12g, torch %.12g", i,
			          s->kind, step, got, want);
		}
	}
	/* values worked out by hand */
	nnrt_schedule cos = {.kind = NNRT_SCHED_COSINE, .a = 10, .c = 0.02, .warmup = 4};
	cr_assert_float_eq(nnrt_schedule_lr(&cos, 0.1, 1, 8, 200), 0.025, 1e-15);  /* warmup: lr / 4 */
	cr_assert_float_eq(nnrt_schedule_lr(&cos, 0.1, 4, 8, 200), 0.1, 1e-15);    /* its end: lr */
	cr_assert_float_eq(nnrt_schedule_lr(&cos, 0.1, 5, 8, 200), 0.1, 1e-15);    /* the cosine's start */
	cr_assert_float_eq(nnrt_schedule_lr(&cos, 0.1, 45, 8, 200), 0.06, 1e-15);  /* halfway: (lr + min) / 2 */
	cr_assert_float_eq(nnrt_schedule_lr(&cos, 0.1, 200, 8, 200), 0.02, 1e-15); /* after 10 epochs: min */
	nnrt_schedule one = {.kind = NNRT_SCHED_ONECYCLE, .b = 0.25, .c = 25, .d = 1e4};
	cr_assert_float_eq(nnrt_schedule_lr(&one, 0.1, 1, 10, 100), 0.004, 1e-15); /* lr / div */
	cr_assert_float_eq(nnrt_schedule_lr(&one, 0.1, 25, 10, 100), 0.1, 1e-15);  /* the peak, step 25 - 1 */
	cr_assert_float_eq(nnrt_schedule_lr(&one, 0.1, 100, 10, 100), 4e-7, 1e-18); /* lr / div / final_div */
}

/* onecycle's momentum, as torch's OneCycleLR(cycle_momentum=True) steps it:
 * get_lr()'s two phases written out here, from max_momentum down to
 * base_momentum while the rate rises and back while it falls, over 200
 * steps, with and without a warmup (which keeps the first momentum, as it
 * ramps to the first rate); every other schedule, and cycle_momentum:
 * false, give 0 (the optimizer's own). */
Test(model, onecycle_momentum_follows_torchs_steps)
{
	static const nnrt_schedule cases[] = {
		{.kind = NNRT_SCHED_ONECYCLE, .b = 0.3, .c = 25, .d = 1e4, .mom_base = 0.85, .mom_max = 0.95},
		{.kind = NNRT_SCHED_ONECYCLE, .a = 20, .b = 0.25, .c = 10, .d = 100, .warmup = 3, .mom_base = 0.8,
		 .mom_max = 0.99},
		{.kind = NNRT_SCHED_ONECYCLE, .a = 10, .b = 0.5, .c = 25, .d = 1e4, .warmup = 17, .mom_base = 0.95,
		 .mom_max = 0.85}, /* inverted: torch takes it as written */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const nnrt_schedule *s = &cases[i];
		int w = (int)s->warmup, n = SCH_TOTAL - w;
		double N = (s->a > 0 ? s->a : (double)n / SCH_S) * SCH_S, ref[SCH_TOTAL];
		struct {
			double end, start, stop;
		} ph[2] = {{s->b * N - 1, s->mom_max, s->mom_base}, {N - 1, s->mom_base, s->mom_max}};
		for (int u = 0; u < n; u++) {
			double start = 0;
			for (int k = 0; k < 2; k++) {
				if (u <= ph[k].end || k == 1) {
					double pct = (u - start) / (ph[k].end - start);
					ref[u] = u > N - 1 ? s->mom_max : sch_anneal(ph[k].start, ph[k].stop, pct);
					break;
				}
				start = ph[k].end;
			}
		}
		for (int step = 1; step <= SCH_TOTAL; step++) {
			double want = step <= w ? ref[0] : ref[step - 1 - w];
			double got = nnrt_schedule_momentum(s, step, SCH_S, SCH_TOTAL);
			cr_assert(fabs(got - want) <= 1e-6 * want, "case %zu, step %d: momentum %.12g, torch %.12g", i, step,
			          got, want);
		}
	}
	/* by hand: the maximum first, the base at the peak rate, the maximum at the end */
	nnrt_schedule one = {.kind = NNRT_SCHED_ONECYCLE, .b = 0.25, .c = 25, .d = 1e4, .mom_base = 0.85, .mom_max = 0.95};
	cr_assert_float_eq(nnrt_schedule_momentum(&one, 1, 10, 100), 0.95, 1e-15);
	cr_assert_float_eq(nnrt_schedule_momentum(&one, 25, 10, 100), 0.85, 1e-15);
	cr_assert_float_eq(nnrt_schedule_momentum(&one, 100, 10, 100), 0.95, 1e-15);
	cr_assert_float_eq(nnrt_schedule_momentum(&one, 13, 10, 100), 0.9, 1e-15); /* halfway up (u = 12 of 24) */
	nnrt_schedule off = one;
	off.mom_base = off.mom_max = 0;
	nnrt_schedule cos = {.kind = NNRT_SCHED_COSINE, .c = 0.001, .mom_base = 0.85, .mom_max = 0.95};
	for (int step = 1; step <= 100; step += 9)
		cr_assert(nnrt_schedule_momentum(&off, step, 10, 100) == 0 && nnrt_schedule_momentum(&cos, step, 10, 100) == 0,
		          "step %d: a momentum without onecycle's cycling", step);
}

/* A cycled momentum reaches the update through hp[]: Adam's beta1 (and its
 * bias correction, from the current beta1 as torch's Adam computes it),
 * sgd's momentum; an update without a momentum gets none. */
Test(model, the_step_hands_the_update_its_cycled_momentum)
{
	nnrt_model m = mlp_model(); /* adam */
	nnrt_step_args a;
	memset(&a, 0x55, sizeof a);
	nnrt_step_hp(&a, &m, &(nnrt_hyper){0.25f, 0, 0, 0, 1, 1, 0, 0.875, 0}, 3, 1);
	cr_assert(a.hp[NNRT_HP_MOMENTUM] == 0.875f && a.hp[NNRT_HP_MOMENTUM_1M] == 0.125f, "%g %g",
	          a.hp[NNRT_HP_MOMENTUM], a.hp[NNRT_HP_MOMENTUM_1M]);
	cr_assert(a.hp[NNRT_HP_ADAM_C1] == (float)(1 / (1 - pow(0.875, 3))), "c1 from the cycled beta1: %g",
	          a.hp[NNRT_HP_ADAM_C1]);
	nnrt_step_hp(&a, &m, &(nnrt_hyper){0.25f, 0, 0, 0, 1, 1, 0, 0, 0}, 3, 1);
	cr_assert(a.hp[NNRT_HP_MOMENTUM] == 0 && a.hp[NNRT_HP_MOMENTUM_1M] == 0, "not cycled: %g",
	          a.hp[NNRT_HP_MOMENTUM]);
	cr_assert(a.hp[NNRT_HP_ADAM_C1] == (float)(1 / (1 - pow((double)m.beta1, 3))), "c1 from the model's beta1");
	m.optimizer = NNRT_OPT_SGD;
	m.momentum = 0;
	nnrt_step_hp(&a, &m, &(nnrt_hyper){0.25f, 0, 0, 0, 1, 1, 0, 0.875, 0}, 3, 1);
	cr_assert(a.hp[NNRT_HP_MOMENTUM] == 0, "sgd without momentum: %g", a.hp[NNRT_HP_MOMENTUM]);
	m.momentum = 0.5f;
	nnrt_step_hp(&a, &m, &(nnrt_hyper){0.25f, 0, 0, 0, 1, 1, 0, 0.875, 0}, 3, 1);
	cr_assert(a.hp[NNRT_HP_MOMENTUM] == 0.875f && a.hp[NNRT_HP_ADAM_C1] == 0, "sgd: %g", a.hp[NNRT_HP_MOMENTUM]);
}

/* The binary hands every step onecycle's momentum; --schedule onecycle
 * brings torch's default cycle (0.95 down to 0.85); an instance with the
 * same run gives its steps the binary's hyper-parameters, all of them. */
Test(model, the_binary_and_a_run_cycle_the_momentum)
{
	nnrt_model m = mlp_model();
	m.train_step = logging_train;
	m.test.kind = NNRT_DATA_NONE;
	m.schedule = (nnrt_schedule){.kind = NNRT_SCHED_ONECYCLE, .b = 0.4, .c = 10, .d = 100, .warmup = 2,
	                             .mom_base = 0.8, .mom_max = 0.9};
	hp_logged = 0;
	run_result r = run_main(&m, "--epochs 4 --limit 96 --threads 2 --quiet --seed 9");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	cr_assert_eq(hp_logged, 12);
	float bin[12][sizeof ((nnrt_step_args *)0)->hp / sizeof(float)];
	memcpy(bin, hp_log, sizeof bin);
	for (int s = 0; s < 12; s++) {
		float want = (float)nnrt_schedule_momentum(&m.schedule, s + 1, 3, 12);
		cr_assert(bin[s][NNRT_HP_MOMENTUM] == want && want >= 0.8f && want <= 0.9f, "step %d: %g, want %g", s + 1,
		          bin[s][NNRT_HP_MOMENTUM], want);
	}
	cr_assert(bin[0][NNRT_HP_MOMENTUM] == 0.9f && bin[5][NNRT_HP_MOMENTUM] < 0.81f, "%g %g",
	          bin[0][NNRT_HP_MOMENTUM], bin[5][NNRT_HP_MOMENTUM]);
	hp_logged = 0;
	int err;
	nnrt_instance *inst = nnrt_instance_new_seeded(&m, 9, &err);
	cr_assert_not_null(inst);
	cr_assert_eq(nnrt_instance_set_run(inst, 96, 4), NNRT_OK, "%s", nnrt_instance_error(inst));
	float x[32 * MI] = {0};
	int32_t y[32] = {0};
	for (int s = 0; s < 12; s++)
		cr_assert_eq(nnrt_instance_train_step(inst, x, y, 32, NULL), NNRT_OK, "%s", nnrt_instance_error(inst));
	cr_assert_eq(nnrt_instance_epoch(inst), 4);
	nnrt_instance_free(inst);
	for (int s = 0; s < 12; s++)
		cr_assert(memcmp(bin[s], hp_log[s], sizeof bin[s]) == 0, "step %d: the api's hyper-parameters differ", s + 1);
	m.schedule = (nnrt_schedule){.kind = NNRT_SCHED_COSINE};
	hp_logged = 0;
	r = run_main(&m, "--epochs 2 --limit 96 --schedule onecycle --quiet");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	cr_assert(hp_log[0][NNRT_HP_MOMENTUM] == 0.95f && hp_log[1][NNRT_HP_MOMENTUM] < 0.95f, "%g %g",
	          hp_log[0][NNRT_HP_MOMENTUM], hp_log[1][NNRT_HP_MOMENTUM]);
}

/* The training binary's steps get the schedule's rate (and the epoch line
 * shows the last one), from the step count, across epochs. */
Test(model, the_binary_hands_each_step_its_scheduled_rate)
{
	nnrt_model m = mlp_model();
	m.train_step = logging_train;
	m.test.kind = NNRT_DATA_NONE;
	m.schedule = (nnrt_schedule){.kind = NNRT_SCHED_COSINE, .c = 0.001, .warmup = 2};
	hp_logged = 0;
	run_result r = run_main(&m, "--epochs 3 --limit 96 --lr 0.125 --threads 2 --seed 9");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert_eq(hp_logged, 9, "3 epochs of 3 steps, not %d", hp_logged);
	for (int s = 0; s < 9; s++) {
		float want = (float)nnrt_schedule_lr(&m.schedule, 0.125, s + 1, 3, 9);
		cr_assert_eq(hp_log[s][NNRT_HP_LR], want, "step %d: %.9g, want %.9g", s + 1, hp_log[s][NNRT_HP_LR], want);
	}
	cr_assert_eq(hp_log[0][NNRT_HP_LR], 0.0625f, "warmup's first step: lr / 2");
	/* torch's convention: the minimum comes at step T, one after the last */
	cr_assert(hp_log[8][NNRT_HP_LR] > 0.001f && hp_log[8][NNRT_HP_LR] < 0.01f, "the last step: %g",
	          hp_log[8][NNRT_HP_LR]);
	char line[64];
	snprintf(line, sizeof line, "  lr %.4g  ", (double)hp_log[8][NNRT_HP_LR]);
	cr_assert(strstr(r.out, line), "the epoch line shows the rate (%s):\n%s", line, r.out);
	run_free(&r);
	/* --schedule and --warmup replace the model's */
	hp_logged = 0;
	r = run_main(&m, "--epochs 1 --limit 96 --lr 0.125 --schedule constant --warmup 0 --quiet");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	for (int s = 0; s < 3; s++)
		cr_assert_eq(hp_log[s][NNRT_HP_LR], 0.125f, "constant, step %d: %g", s + 1, hp_log[s][NNRT_HP_LR]);
	run_free(&r);
	hp_logged = 0;
	r = run_main(&m, "--epochs 2 --limit 96 --lr 0.125 --schedule polynomial --quiet");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	nnrt_schedule poly = {.kind = NNRT_SCHED_POLYNOMIAL, .b = 1, .warmup = 2};
	for (int s = 0; s < 6; s++)
		cr_assert_eq(hp_log[s][NNRT_HP_LR], (float)nnrt_schedule_lr(&poly, 0.125, s + 1, 3, 6), "polynomial, step %d",
		             s + 1);
	run_free(&r);
	r = run_main(&m, "--epochs 1 --limit 96 --warmup 3");
	cr_assert_eq(r.rc, 1);
	cr_assert(strstr(r.err, "error: the warmup of 3 steps is not shorter than the training: 1 epoch of 3 steps "
	                        "(shorten warmup: in "), "%s",
	          r.err);
	run_free(&r);
	/* clipping: by value on any model; by norm only where it is compiled in */
	hp_logged = 0;
	r = run_main(&m, "--epochs 1 --limit 96 --clip-value 0.25 --quiet");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(hp_log[2][NNRT_HP_CLIP_VALUE] == 0.25f && hp_log[2][NNRT_HP_CLIP_NORM] == 0, "%g %g",
	          hp_log[2][NNRT_HP_CLIP_VALUE], hp_log[2][NNRT_HP_CLIP_NORM]);
	run_free(&r);
	r = run_main(&m, "--epochs 1 --limit 96 --clip-norm 1");
	cr_assert_eq(r.rc, 2);
	cr_assert(strstr(r.err, "--clip-norm needs a model compiled with clip_norm:"), "%s", r.err);
	run_free(&r);
	m.opt_flags |= NNRT_OPTF_CLIP_NORM;
	m.clip_norm = 5;
	hp_logged = 0;
	r = run_main(&m, "--epochs 1 --limit 96 --quiet");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(hp_log[0][NNRT_HP_CLIP_NORM] == 5, "the model's clip_norm: %g", hp_log[0][NNRT_HP_CLIP_NORM]);
	run_free(&r);
	hp_logged = 0;
	r = run_main(&m, "--epochs 1 --limit 96 --clip-norm 1.5 --quiet");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(hp_log[0][NNRT_HP_CLIP_NORM] == 1.5f, "--clip-norm: %g", hp_log[0][NNRT_HP_CLIP_NORM]);
	run_free(&r);
	r = run_main(&m, "--schedule cosin");
	cr_assert_eq(r.rc, 2);
	cr_assert(strstr(r.err, "unknown schedule 'cosin' for --schedule"), "%s", r.err);
	run_free(&r);
	r = run_main(&m, "--schedule step");
	cr_assert_eq(r.rc, 2);
	cr_assert(strstr(r.err, "--schedule step needs values that only the .nn file can give"), "%s", r.err);
	run_free(&r);
}


/* ---- Checkpoints ---- */

Test(ckpt, round_trip_restores_everything)
{
	nnrt_model m = mlp_model();
	float params[MP], opt[2 * MP], p2[MP], o2[2 * MP];
	for (int i = 0; i < MP; i++)
		params[i] = (float)i / 7.0f - 3;
	for (int i = 0; i < 2 * MP; i++)
		opt[i] = (float)i * 1e-3f;
	nnrt_train_state st = {.epoch = 4, .step = 126};
	nnrt_rng_seed(&st.rng, 99);
	cr_assert_eq(nnrt_ckpt_save(tpath("a.ckpt"), &m, params, opt, NULL, &st), 0, "%s", nnrt_last_error());
	nnrt_train_state s2;
	cr_assert_eq(nnrt_ckpt_load(tpath("a.ckpt"), &m, p2, o2, NULL, &s2), 0, "%s", nnrt_last_error());
	cr_assert_eq(memcmp(params, p2, sizeof p2), 0);
	cr_assert_eq(memcmp(opt, o2, sizeof o2), 0);
	cr_assert_eq(s2.epoch, 4);
	cr_assert_eq(s2.step, 126);
	cr_assert_eq(memcmp(&s2.rng, &st.rng, sizeof st.rng), 0);
	/* Parameters only (--load). */
	memset(p2, 0, sizeof p2);
	cr_assert_eq(nnrt_ckpt_load(tpath("a.ckpt"), &m, p2, NULL, NULL, NULL), 0);
	cr_assert_eq(memcmp(params, p2, sizeof p2), 0);
	/* Saving again replaces it; no temporary file is left behind. */
	st.epoch = 5;
	cr_assert_eq(nnrt_ckpt_save(tpath("a.ckpt"), &m, params, opt, NULL, &st), 0);
	cr_assert_eq(nnrt_ckpt_load(tpath("a.ckpt"), &m, p2, o2, NULL, &s2), 0);
	cr_assert_eq(s2.epoch, 5);
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d)))
		files += e->d_name[0] != '.';
	closedir(d);
	cr_assert_eq(files, 1);
}

/* Version 2 carries the state tensors (nnrt_model.state): saved, loaded
 * back exactly, and a file whose state table is not the model's is refused
 * with the difference named. */
Test(ckpt, state_round_trips_and_must_match)
{
	nnrt_model plain = mlp_model(), m = plain;
	static const nnrt_param_info rows[2] = {
		{.name = "bn.mean", .offset = 0, .size = 3, .shape = {3}, .rank = 1, .init = NNRT_INIT_CONSTANT},
		{.name = "bn.var", .offset = 16, .size = 3, .shape = {3}, .rank = 1, .init = NNRT_INIT_CONSTANT, .init_arg = 1},
	};
	m.n_state = 2;
	m.state = rows;
	m.state_floats = 32;
	cr_assert_eq(nnrt_model_check(&m, 1, NULL, 0), NNRT_OK);
	float params[MP], opt[2 * MP] = {0}, state[32], p2[MP], o2[2 * MP], s2[32];
	for (int i = 0; i < MP; i++)
		params[i] = (float)i * 0.5f;
	for (int i = 0; i < 32; i++)
		state[i] = (float)i - 7.25f;
	nnrt_init_state(&m, s2);
	cr_assert(s2[0] == 0 && s2[16] == 1 && s2[18] == 1 && s2[19] == 0, "initial state");
	nnrt_train_state st = {.epoch = 1, .step = 2}, s;
	nnrt_rng_seed(&st.rng, 7);
	cr_assert_eq(nnrt_ckpt_save(tpath("s.ckpt"), &m, params, opt, state, &st), 0, "%s", nnrt_last_error());
	memset(s2, 0, sizeof s2);
	cr_assert_eq(nnrt_ckpt_load(tpath("s.ckpt"), &m, p2, o2, s2, &s), 0, "%s", nnrt_last_error());
	cr_assert(!memcmp(s2, state, sizeof s2) && !memcmp(p2, params, sizeof p2), "state or parameters differ");
	cr_assert_eq(nnrt_ckpt_load(tpath("s.ckpt"), &m, p2, NULL, s2, NULL), 0, "--load takes the state too");

	char want[512];
	cr_assert_neq(nnrt_ckpt_load(tpath("s.ckpt"), &plain, p2, o2, NULL, &s), 0);
	snprintf(want, sizeof want, "checkpoint %s: the file holds 2 state tensors but this model has 0", tpath("s.ckpt"));
	cr_assert_str_eq(nnrt_last_error(), want);
	cr_assert_eq(nnrt_ckpt_save(tpath("p.ckpt"), &plain, params, opt, NULL, &st), 0);
	cr_assert_neq(nnrt_ckpt_load(tpath("p.ckpt"), &m, p2, o2, s2, &s), 0);
	snprintf(want, sizeof want, "checkpoint %s: the file holds 0 state tensors but this model has 2", tpath("p.ckpt"));
	cr_assert_str_eq(nnrt_last_error(), want);
	nnrt_param_info wide[2];
	memcpy(wide, rows, sizeof wide);
	wide[1].shape[0] = 2;
	wide[1].size = 2;
	nnrt_model other = m;
	other.state = wide;
	cr_assert_neq(nnrt_ckpt_load(tpath("s.ckpt"), &other, p2, o2, s2, &s), 0);
	snprintf(want, sizeof want, "checkpoint %s: state 'bn.var' has shape [3] but this model's is [2]", tpath("s.ckpt"));
	cr_assert_str_eq(nnrt_last_error(), want);
}

Test(ckpt, rejects_damaged_and_foreign_files)
{
	nnrt_model m = mlp_model();
	float params[MP] = {0}, opt[2 * MP] = {0};
	nnrt_train_state st = {.epoch = 1, .step = 2};
	nnrt_rng_seed(&st.rng, 7);
	cr_assert_eq(nnrt_ckpt_save(tpath("good.ckpt"), &m, params, opt, NULL, &st), 0);
	size_t len = 0;
	char *bytes = read_all(tpath("good.ckpt"), &len);
	/* header, name, parameter table, state table (none: its two counts),
	 * early-stopping counters (none), parameters and Adam's state, checksum */
	cr_assert_eq(len, 104 + 4 + 3 + (4 + 10 + 4 + 16 + 16) + (4 + 8 + 4 + 8 + 16) + (4 + 10 + 4 + 16 + 16) +
	                      (4 + 8 + 4 + 8 + 16) + 12 + 28 + 4 * 3 * MP + 4);
	write_bytes(tpath("trunc.ckpt"), bytes, len - 10);
	write_bytes(tpath("tiny.ckpt"), bytes, 12);
	bytes[len / 2] ^= 0x10;
	write_bytes(tpath("flip.ckpt"), bytes, len);
	bytes[len / 2] ^= 0x10;
	bytes[8] = 4;
	write_bytes(tpath("v4.ckpt"), bytes, len);
	write_text(tpath("text.ckpt"), "this is not a checkpoint at all");
	free(bytes);

	nnrt_model other = m;
	other.name = "moons";
	other.fingerprint = 0xfeed;
	cr_assert_eq(nnrt_ckpt_save(tpath("other.ckpt"), &other, params, opt, NULL, &st), 0);
	/* Same fingerprint, different shapes: the table catches it. */
	nnrt_param_info wide[4];
	memcpy(wide, mlp_params, sizeof wide);
	wide[3].shape[0] = 3;
	wide[3].size = 3;
	nnrt_model shaped = m;
	shaped.params = wide;
	shaped.param_floats = MP + 1;
	float pw[MP + 1] = {0};
	cr_assert_eq(nnrt_ckpt_save(tpath("shape.ckpt"), &shaped, pw, opt, NULL, &st), 0);
	/* Adam state against an SGD model of the same shapes. */
	nnrt_model sgd = m;
	sgd.opt_floats = MP;

	static const struct {
		const char *file;
		int sgd, with_opt;
		const char *want;
	} cases[] = {
		{"nope.ckpt", 0, 1, "cannot open checkpoint {dir}/nope.ckpt: No such file or directory"},
		{"text.ckpt", 0, 1, "{dir}/text.ckpt is not an nnc checkpoint (bad magic number)"},
		{"tiny.ckpt", 0, 1, "checkpoint {dir}/tiny.ckpt is truncated (12 bytes)"},
		{"trunc.ckpt", 0, 1, "checkpoint {dir}/trunc.ckpt is truncated: 1309 of 1319 bytes"},
		{"v4.ckpt", 0, 1, "checkpoint {dir}/v4.ckpt has format version 4; this runtime reads versions 1 to 3"},
		{"other.ckpt", 0, 1,
		 "checkpoint {dir}/other.ckpt was written by model 'moons' (fingerprint 0x000000000000feed), not by this "
		 "model 'xor' (fingerprint 0x1234abcd5678ef00)"},
		{"shape.ckpt", 0, 1, "checkpoint {dir}/shape.ckpt: parameter 'fc2.bias' has shape [3] but this model's is [2]"},
		{"good.ckpt", 1, 1, "checkpoint {dir}/good.ckpt holds 164 optimizer values but this model needs 82"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		float p[MP + 1], o[2 * MP];
		nnrt_train_state s;
		int rc = nnrt_ckpt_load(tpath(cases[i].file), cases[i].sgd ? &sgd : &m, p, cases[i].with_opt ? o : NULL, NULL, &s);
		cr_expect_neq(rc, 0, "case %zu accepted", i);
		cr_expect_str_eq(nnrt_last_error(), subst(cases[i].want), "case %zu", i);
	}
	float p[MP];
	cr_assert_neq(nnrt_ckpt_load(tpath("flip.ckpt"), &m, p, NULL, NULL, NULL), 0);
	const char *want = subst("checkpoint {dir}/flip.ckpt is corrupt: checksum mismatch (stored 0x");
	cr_assert_eq(strncmp(nnrt_last_error(), want, strlen(want)), 0, "%s", nnrt_last_error());
	/* --load does not need the optimizer state to match. */
	cr_assert_eq(nnrt_ckpt_load(tpath("good.ckpt"), &sgd, p, NULL, NULL, NULL), 0);
}

Test(ckpt, failed_save_keeps_the_old_file)
{
	nnrt_model m = mlp_model();
	float params[MP], opt[2 * MP] = {0}, p2[MP];
	for (int i = 0; i < MP; i++)
		params[i] = 1.0f;
	nnrt_train_state st = {.epoch = 1, .step = 1};
	nnrt_rng_seed(&st.rng, 7);
	cr_assert_eq(nnrt_ckpt_save(tpath("keep.ckpt"), &m, params, opt, NULL, &st), 0);
	/* A file size limit makes the next write fail part-way, as a full
	 * disk would. */
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit lim = {.rlim_cur = 300, .rlim_max = RLIM_INFINITY};
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (int i = 0; i < MP; i++)
		params[i] = 2.0f;
	st.epoch = 2;
	cr_assert_neq(nnrt_ckpt_save(tpath("keep.ckpt"), &m, params, opt, NULL, &st), 0);
	const char *want = subst("cannot save checkpoint {dir}/keep.ckpt: writing {dir}/keep.ckpt.tmp.");
	cr_assert_eq(strncmp(nnrt_last_error(), want, strlen(want)), 0, "%s", nnrt_last_error());
	cr_assert(strstr(nnrt_last_error(), "File too large (the previous checkpoint, if any, is unchanged)"),
	          "%s", nnrt_last_error());
	nnrt_train_state s2;
	cr_assert_eq(nnrt_ckpt_load(tpath("keep.ckpt"), &m, p2, NULL, NULL, &s2), 0, "%s", nnrt_last_error());
	cr_assert_eq(p2[0], 1.0f);
	cr_assert_eq(s2.epoch, 1);
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", tpath("keep.ckpt"), (long)getpid());
	cr_assert_neq(access(tmp, F_OK), 0, "temporary file left behind");
	/* A directory that does not exist: nothing is created. */
	cr_assert_neq(nnrt_ckpt_save(tpath("no/such/dir.ckpt"), &m, params, opt, NULL, &st), 0);
	want = subst("cannot save checkpoint {dir}/no/such/dir.ckpt: cannot create {dir}/no/such/dir.ckpt.tmp.");
	cr_assert_eq(strncmp(nnrt_last_error(), want, strlen(want)), 0, "%s", nnrt_last_error());
}

/* ---- nnrt_main end to end ---- */

Test(ckpt, header_fields_are_checked_against_the_model_and_ranges)
{
	nnrt_model m = mlp_model();
	float params[MP] = {0}, opt[2 * MP] = {0};
	static const struct {
		int64_t epoch, step, batch;
		int zero_rng, sgd;
		const char *want;
	} rows[] = {
		{INT64_MIN, 10, 0, 0, 0, "its epoch counter is -9223372036854775808, outside 0..2^53"},
		{-1, 10, 0, 0, 0, "its epoch counter is -1, outside 0..2^53"},
		{INT64_MAX, 10, 0, 0, 0, "its epoch counter is 9223372036854775807, outside 0..2^53"},
		{1, -5, 0, 0, 0, "its step counter is -5, outside 0..2^53"},
		{1, 10, 11, 0, 0, "its epoch_step 11 exceeds its step counter 10"},
		{1, 10, 0, 1, 0, "its RNG state is all zero, which no run writes"},
		{1, 10, 0, 0, 1, "its optimizer field is 1 but this model's optimizer is 2"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		nnrt_train_state st = {.epoch = rows[i].epoch, .step = rows[i].step, .batch = rows[i].batch};
		if (!rows[i].zero_rng)
			nnrt_rng_seed(&st.rng, 3);
		nnrt_model w = m;
		if (rows[i].sgd)
			w.optimizer = NNRT_OPT_SGD; /* same fingerprint: a crafted file */
		cr_assert_eq(nnrt_ckpt_save(tpath("h.ckpt"), &w, params, opt, NULL, &st), 0, "%s", nnrt_last_error());
		float p[MP];
		nnrt_train_state s;
		cr_expect_neq(nnrt_ckpt_load(tpath("h.ckpt"), &m, p, opt, NULL, &s), 0, "row %zu accepted", i);
		char want[512];
		snprintf(want, sizeof want, "checkpoint %s is corrupt: %s", tpath("h.ckpt"), rows[i].want);
		cr_expect_str_eq(nnrt_last_error(), want, "row %zu", i);
	}
	/* A crafted opt_floats (ignored by --load) with a correct checksum:
	 * the size arithmetic must not overflow (UBSan build). */
	nnrt_train_state ok = {.epoch = 1, .step = 2};
	nnrt_rng_seed(&ok.rng, 3);
	cr_assert_eq(nnrt_ckpt_save(tpath("o.ckpt"), &m, params, opt, NULL, &ok), 0);
	size_t n = 0;
	unsigned char *b = (unsigned char *)read_all(tpath("o.ckpt"), &n);
	uint64_t huge = (uint64_t)1 << 62;
	for (int k = 0; k < 8; k++)
		b[48 + k] = (unsigned char)(huge >> (8 * k));
	uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(n - 4));
	for (int k = 0; k < 4; k++)
		b[n - 4 + k] = (unsigned char)(crc >> (8 * k));
	write_bytes(tpath("o.ckpt"), b, n);
	free(b);
	float q[MP];
	cr_assert_neq(nnrt_ckpt_load(tpath("o.ckpt"), &m, q, NULL, NULL, NULL), 0);
	char msg[512];
	snprintf(msg, sizeof msg, "checkpoint %s is malformed (array sizes do not match the file)", tpath("o.ckpt"));
	cr_assert_str_eq(nnrt_last_error(), msg);

	/* A run resumed from a crafted epoch does not run forever: refused. */
	nnrt_train_state st = {.epoch = INT64_MIN, .step = 1};
	nnrt_rng_seed(&st.rng, 3);
	cr_assert_eq(nnrt_ckpt_save(tpath("h.ckpt"), &m, params, opt, NULL, &st), 0);
	run_result r = run_main(&m, "--threads 1 --resume %s --epochs 2", tpath("h.ckpt"));
	cr_assert_eq(r.rc, 1);
	cr_assert(strstr(r.err, "is corrupt: its epoch counter is -9223372036854775808"), "%s", r.err);
	run_free(&r);
}

/* Reading stops where this model's checkpoint must end: a device or a huge
 * file is refused after that many bytes, not read until memory runs out. */
Test(ckpt, reading_is_bounded_by_the_model, .timeout = 30)
{
	nnrt_model m = mlp_model();
	float params[MP] = {0}, opt[2 * MP] = {0}, p[MP], o[2 * MP];
	nnrt_train_state st = {.epoch = 1, .step = 2};
	nnrt_rng_seed(&st.rng, 7);
	cr_assert_eq(nnrt_ckpt_save(tpath("g.ckpt"), &m, params, opt, NULL, &st), 0);
	size_t len = 0;
	char *bytes = read_all(tpath("g.ckpt"), &len);
	/* the largest has early stopping's copy of the parameters too */
	size_t extra = 4 * MP + 4;
	char *longer = malloc(len + extra);
	memcpy(longer, bytes, len);
	memset(longer + len, 0, extra);
	write_bytes(tpath("long.ckpt"), longer, len + extra);
	free(longer);
	free(bytes);
	cr_assert_neq(nnrt_ckpt_load(tpath("long.ckpt"), &m, p, o, NULL, NULL), 0);
	char want[512];
	snprintf(want, sizeof want, "checkpoint %s is corrupt: it is larger than any checkpoint of this model (%zu bytes)",
	         tpath("long.ckpt"), len + 4 * MP);
	cr_assert_str_eq(nnrt_last_error(), want);
	cr_assert_neq(nnrt_ckpt_load("/dev/zero", &m, p, NULL, NULL, NULL), 0);
	cr_assert_str_eq(nnrt_last_error(), "/dev/zero is not an nnc checkpoint (bad magic number)");
	cr_assert_neq(nnrt_ckpt_load("/dev/urandom", &m, p, o, NULL, NULL), 0);
	cr_assert_str_eq(nnrt_last_error(), "/dev/urandom is not an nnc checkpoint (bad magic number)");
	/* A FIFO that never ends: stops after the model's size too. */
	cr_assert_eq(mkfifo(tpath("fifo"), 0600), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(tpath("fifo"), O_WRONLY);
		char buf[4096];
		memcpy(buf, "NNRTCKPT", 8);
		memset(buf + 8, 1, sizeof buf - 8);
		while (write(fd, buf, sizeof buf) > 0)
			memcpy(buf, "xxxxxxxx", 8);
		_exit(0);
	}
	cr_assert_neq(nnrt_ckpt_load(tpath("fifo"), &m, p, o, NULL, NULL), 0);
	kill(pid, SIGKILL);
	snprintf(want, sizeof want, "checkpoint %s has format version 16843009; this runtime reads versions 1 to 3",
	         tpath("fifo"));
	cr_assert_str_eq(nnrt_last_error(), want);
}



Test(main, help_lists_every_flag_and_the_model)
{
	nnrt_model m = mlp_model();
	run_result r = run_main(&m, "--help");
	cr_assert_eq(r.rc, 0);
	const char *want[] = {"usage: tiny [flags]", "model 'xor' (compiled by nnc from /src/xor.nn)",
	                      "input        f32[2]", "label        class(2)", "loss         softmax_cross_entropy",
	                      "optimizer    adam(lr: 0.02, beta1: 0.9, beta2: 0.999, eps: 1e-08)",
	                      "batch        32", "epochs       20",
	                      "train data   xor(count: 1000, noise: 0.05, seed: 11)", "--epochs N", "--lr X",
	                      "--seed N", "--threads N", "--data PATH[,LABELS]", "--test PATH[,LABELS]", "--limit N",
	                      "--test-limit N", "--save FILE", "--load FILE", "--resume FILE", "--checkpoint-every N",
	                      "--predict FILE", "--eval", "--quiet", "--print-params", "--help", "--force"};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_expect(strstr(r.out, want[i]) != NULL, "help lacks '%s'", want[i]);
	run_free(&r);
}

Test(main, bad_command_lines_exit_2)
{
	static const struct {
		const char *args, *want;
	} cases[] = {
		{"--epochs abc", "tiny: error: --epochs expects a whole number >= 0, got 'abc'"},
		{"--epochs=abc", "tiny: error: --epochs expects a whole number >= 0, got 'abc'"},
		{"--epochs -2", "tiny: error: --epochs expects a whole number >= 0, got '-2'"},
		{"--lr -1", "tiny: error: --lr expects a positive number, got '-1'"},
		{"--lr 0", "tiny: error: --lr expects a positive number, got '0'"},
		{"--lr nan", "tiny: error: --lr expects a positive number, got 'nan'"},
		{"--seed -3", "tiny: error: --seed expects a whole number >= 0, got '-3'"},
		{"--threads 0", "tiny: error: --threads expects a number of threads from 1 to 256, got '0'"},
		{"--limit 0", "tiny: error: --limit expects a whole number >= 1, got '0'"},
		{"--bogus", "tiny: error: unknown flag '--bogus'"},
		{"--batch 8", "tiny: error: unknown flag '--batch'"},
		{"--epochs", "tiny: error: --epochs needs a value (--epochs N)"},
		{"--quiet=1", "tiny: error: --quiet takes no value"},
		{"data.csv", "tiny: error: unexpected argument 'data.csv' (flags start with --)"},
		{"--checkpoint-every 2", "tiny: error: --checkpoint-every needs --save FILE"},
		{"--predict x.csv", "tiny: error: --predict needs --load FILE (a trained checkpoint)"},
		{"--load a --resume b", "tiny: error: --load and --resume cannot be used together"},
		{"--lr 1e-60", "tiny: error: --lr 1e-60 is too small: it is 0 as a 32-bit float"},
		{"--lr 1e300", "tiny: error: --lr 1e300 is too large: beyond the range of a 32-bit float (about 3.4e38)"},
		{"--lr inf", "tiny: error: --lr inf is too large: beyond the range of a 32-bit float (about 3.4e38)"},
		{"--eval", "tiny: error: --eval needs --load FILE (a trained checkpoint); to evaluate the initial "
		           "parameters, save them with --epochs 0 --save FILE and load that"},
		{"--load x --eval --save x", "tiny: error: --save cannot be used with --eval, which changes nothing to save"},
		{"--force", "tiny: error: --force needs --save FILE"},
		{"--verbose 3", "tiny: error: --verbose expects 0 (silent), 1 (progress bar) or 2 (a line per epoch), got '3'"},
		{"--verbose -1", "tiny: error: --verbose expects a whole number >= 0, got '-1'"},
		{"--quiet --verbose 2", "tiny: error: --quiet and --verbose 2 contradict each other"},
		{"--log-every 5", "tiny: error: --log-every needs --log FILE"},
		{"--log m.csv --log-every 0", "tiny: error: --log-every expects a whole number >= 1, got '0'"},
		{"--augment flip", "tiny: error: --augment 'flip': augmentation needs an image input [channels, rows, "
		                   "columns], but the input is a vector"},
		{"--augment=", "tiny: error: --augment expects a list of transforms (or none), got ''"},
		{"--augment flp", "tiny: error: --augment 'flp': unknown transform 'flp' (transforms: crop(pad: N), flip, "
		                  "flip(p: P), erase(size: N, p: P), or none)"},
		{"--augment none --load x --eval", "tiny: error: --augment transforms training images: it goes with no "
		                                   "--eval, --predict or --export-onnx"},
	};
	nnrt_model m = mlp_model();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		run_result r = run_main(&m, "%s", cases[i].args);
		cr_expect_eq(r.rc, 2, "'%s' exited %d", cases[i].args, r.rc);
		char want[512];
		snprintf(want, sizeof want, "%s\nTry 'tiny --help' for the list of flags.\n", cases[i].want);
		cr_expect_str_eq(r.err, want, "'%s'", cases[i].args);
		cr_expect_str_eq(r.out, "");
		run_free(&r);
	}
}

Test(main, data_and_model_errors_exit_1)
{
	nnrt_model m = mlp_model();
	run_result r = run_main(&m, "--data %s", tpath("missing.csv"));
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.err, subst("tiny: error: {dir}/missing.csv: cannot open: No such file or directory\n"));
	run_free(&r);
	r = run_main(&m, "--load %s", tpath("missing.ckpt"));
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.err, subst("tiny: error: cannot open checkpoint {dir}/missing.ckpt: No such file or directory\n"));
	run_free(&r);
	nnrt_model bad = m;
	bad.struct_size -= 8;
	r = run_main(&bad, "");
	cr_assert_eq(r.rc, 1);
	char want[128];
	snprintf(want, sizeof want, "tiny: error: this program's model object has ABI version %d and size",
	         NNRT_ABI_VERSION);
	cr_assert(strstr(r.err, want) == r.err, "%s", r.err);
	run_free(&r);
	nnrt_model notest = m;
	notest.test.kind = NNRT_DATA_NONE;
	r = run_main(&notest, "--load %s --eval", tpath("x.ckpt"));
	cr_assert_eq(r.rc, 2);
	cr_assert(strstr(r.err, "--eval needs test data, and the model has none; pass --test PATH"), "%s", r.err);
	run_free(&r);
}

Test(main, learns_xor_and_reports_each_epoch)
{
	nnrt_model m = mlp_model();
	run_result r = run_main(&m, "--threads 1");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert_str_eq(r.err, "");
	const char *head = "model xor: 82 parameters, 1000 training samples, 500 test samples, batch 32, adam lr 0.02, "
	                   "1 thread\n";
	cr_assert(strncmp(r.out, head, strlen(head)) == 0, "%s", r.out);
	cr_assert_eq(count_lines(r.out, "epoch "), 20);
	cr_assert(strstr(r.out, "\nepoch  1/20  loss "), "%s", r.out);
	double acc = last_value(r.out, "test_acc"), train_acc = last_value(r.out, "train_acc");
	cr_assert(acc > 0.95 && train_acc > 0.95, "xor not learnt: test_acc %g\n%s", acc, r.out);
	cr_assert(last_value(r.out, "loss") < 0.2);
	/* 82 parameters: more than 64, so not printed unasked. */
	cr_assert(!strstr(r.out, "parameters:"));
	run_free(&r);
}

Test(main, learns_moons_on_one_and_four_threads)
{
	nnrt_model m = mlp_model();
	m.train.kind = m.test.kind = NNRT_DATA_MOONS;
	m.train.noise = m.test.noise = 0.1f;
	for (int threads = 1; threads <= 4; threads *= 4) {
		run_result r = run_main(&m, "--threads %d --epochs 30 --lr 0.03", threads);
		cr_assert_eq(r.rc, 0, "%s", r.err);
		double acc = last_value(r.out, "test_acc");
		cr_assert(acc > 0.95, "moons not learnt on %d threads: %g\n%s", threads, acc, r.out);
		run_free(&r);
	}
}

Test(main, fits_a_linear_model_from_csv_and_prints_it)
{
	nnrt_model m = lin_model(tpath("linear.csv"));
	run_result r = run_main(&m, "--threads 1");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	/* Regression: no accuracy columns. */
	cr_assert(!strstr(r.out, "acc"), "%s", r.out);
	cr_assert(last_value(r.out, "loss") < 0.01, "%s", r.out);
	const char *p = strstr(r.out, "parameters:\n  fc.weight [2,1]\n");
	cr_assert(p, "%s", r.out);
	float w1, w2, b;
	cr_assert_eq(sscanf(p, "parameters:\n  fc.weight [2,1]\n %f\n %f\n  fc.bias [1]\n %f", &w1, &w2, &b), 3, "%s", p);
	cr_assert_float_eq(w1, 2.5f, 0.02);
	cr_assert_float_eq(w2, -1.5f, 0.02);
	cr_assert_float_eq(b, 0.75f, 0.02);
	run_free(&r);
	/* Predictions for a CSV with the feature columns only. */
	write_text(tpath("pts.csv"), "x1,x2\n0,0\n1,1\n-2,0.5\n");
	r = run_main(&m, "--quiet --save %s", tpath("lin.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	run_free(&r);
	r = run_main(&m, "--load %s --predict %s", tpath("lin.ckpt"), tpath("pts.csv"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	double v0, v1, v2;
	cr_assert_eq(sscanf(r.out, "0 %lf\n1 %lf\n2 %lf\n", &v0, &v1, &v2), 3, "%s", r.out);
	cr_assert_float_eq(v0, 0.75, 0.03);
	cr_assert_float_eq(v1, 1.75, 0.03);
	cr_assert_float_eq(v2, -5.0, 0.05);
	run_free(&r);
}

Test(main, save_load_eval_and_predict)
{
	nnrt_model m = mlp_model();
	const char *ck = tpath("xor.ckpt");
	run_result r = run_main(&m, "--threads 1 --epochs 10 --save %s", ck);
	cr_assert_eq(r.rc, 0, "%s", r.err);
	char line[128];
	snprintf(line, sizeof line, "saved checkpoint to %s (epoch 10)\n", ck);
	cr_assert(strstr(r.out, line), "%s", r.out);
	double tl = last_value(r.out, "test_loss"), ta = last_value(r.out, "test_acc");
	run_free(&r);

	/* --eval on the loaded parameters reproduces the last epoch's numbers. */
	r = run_main(&m, "--threads 1 --load %s --eval", ck);
	cr_assert_eq(r.rc, 0, "%s", r.err);
	char want[128];
	snprintf(want, sizeof want, "test_loss %.4f  test_acc %.4f  (500 samples)\n", tl, ta);
	/* (then the per-class table: eval_prints_scores_that_agree_with_...) */
	cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
	run_free(&r);
	/* An initialised model is near chance: evaluating it takes saving it
	 * first, on purpose (a bare --eval is refused, see bad_command_lines). */
	r = run_main(&m, "--epochs 0 --save %s", tpath("init.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	r = run_main(&m, "--load %s --eval", tpath("init.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(last_value(r.out, "test_acc") < 0.8, "%s", r.out);
	run_free(&r);

	/* --predict on a CSV: "index class probability" per row. */
	write_text(tpath("pts.csv"), "0.5,0.5\n-0.5,0.5\n0.5,-0.5\n-0.5,-0.5\n");
	r = run_main(&m, "--load %s --predict %s", ck, tpath("pts.csv"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	int idx[4], cls[4];
	double prob[4];
	cr_assert_eq(sscanf(r.out, "%d %d %lf\n%d %d %lf\n%d %d %lf\n%d %d %lf\n", &idx[0], &cls[0], &prob[0], &idx[1],
	                    &cls[1], &prob[1], &idx[2], &cls[2], &prob[2], &idx[3], &cls[3], &prob[3]),
	             12, "%s", r.out);
	int want_cls[4] = {0, 1, 1, 0};
	for (int i = 0; i < 4; i++) {
		cr_expect_eq(idx[i], i);
		cr_expect_eq(cls[i], want_cls[i], "%s", r.out);
		cr_expect(prob[i] > 0.8 && prob[i] <= 1.0, "%s", r.out);
	}
	cr_assert_eq(count_lines(r.out, ""), 4);
	run_free(&r);

	/* --print-params with the loaded parameters. */
	r = run_main(&m, "--load %s --eval --print-params", ck);
	cr_assert(strstr(r.out, "parameters:\n  fc1.weight [2,16]\n   "), "%s", r.out);
	cr_assert(strstr(r.out, "\n  fc2.bias [2]\n   "), "%s", r.out);
	run_free(&r);

	/* A checkpoint of another model is refused. */
	nnrt_model lin = lin_model(tpath("linear.csv"));
	r = run_main(&lin, "--load %s --epochs 0", ck);
	cr_assert_eq(r.rc, 1);
	cr_assert(strstr(r.err, "was written by model 'xor' (fingerprint 0x1234abcd5678ef00), not by this model "
	                        "'linear'"),
	          "%s", r.err);
	run_free(&r);
}

Test(main, predicts_from_idx_images)
{
	/* xor points stored as 1x2 byte "images": byte = (x + 1) * 127.5. */
	nnrt_model m = mlp_model();
	nnrt_data_spec xs = {.kind = NNRT_DATA_XOR, .count = 600, .seed = 5, .scale = 1};
	nnrt_dataset d;
	cr_assert_eq(nnrt_data_load(&d, &m, &xs, "train", 0, 1), 0);
	unsigned char *img = malloc((size_t)d.n * 2), *lab = malloc((size_t)d.n);
	for (int64_t i = 0; i < d.n; i++) {
		img[2 * i] = (unsigned char)lrintf((d.x_f32[2 * i] + 1) * 127.5f);
		img[2 * i + 1] = (unsigned char)lrintf((d.x_f32[2 * i + 1] + 1) * 127.5f);
		lab[i] = (unsigned char)d.y_class[i];
	}
	uint32_t dims[3] = {(uint32_t)d.n, 1, 2}, ldims[1] = {(uint32_t)d.n}, pdims[3] = {100, 1, 2};
	write_idx(tpath("img.idx.gz"), 1, 8, 3, dims, img, (size_t)d.n * 2);
	write_idx(tpath("lab.idx"), 0, 8, 1, ldims, lab, (size_t)d.n);
	write_idx(tpath("pred.idx"), 0, 8, 3, pdims, img + 1000, 200);
	m.train = (nnrt_data_spec){.kind = NNRT_DATA_IDX, .path_x = "/nonexistent", .path_y = "/nonexistent",
	                           .scale = 1 / 127.5f, .shift = -1};
	m.test.kind = NNRT_DATA_NONE;
	run_result r = run_main(&m, "--threads 1 --epochs 30 --data %s,%s --save %s", tpath("img.idx.gz"),
	                        tpath("lab.idx"), tpath("m.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(!strstr(r.out, "test_acc"));
	cr_assert(last_value(r.out, "train_acc") > 0.95, "%s", r.out);
	run_free(&r);
	r = run_main(&m, "--load %s --predict %s", tpath("m.ckpt"), tpath("pred.idx"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out, ""), 100);
	int right = 0;
	const char *p = r.out;
	for (int i = 0; i < 100; i++) {
		int k, c;
		double prob;
		cr_assert_eq(sscanf(p, "%d %d %lf", &k, &c, &prob), 3);
		cr_assert_eq(k, i);
		right += c == lab[500 + i];
		p = strchr(p, '\n') + 1;
	}
	cr_assert(right >= 90, "%d of 100 right", right);
	run_free(&r);
	/* Same file through --test and --eval, with the labels. */
	r = run_main(&m, "--load %s --eval --test %s,%s --test-limit 50", tpath("m.ckpt"), tpath("img.idx.gz"),
	             tpath("lab.idx"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(strstr(r.out, "(50 samples)"), "%s", r.out);
	run_free(&r);
	/* A single path for IDX data is a usage error. */
	r = run_main(&m, "--data %s", tpath("img.idx.gz"));
	cr_assert_eq(r.rc, 2);
	cr_assert(strstr(r.err, subst("--data expects IMAGES,LABELS for IDX data, got '{dir}/img.idx.gz'")), "%s",
	          r.err);
	run_free(&r);
	free(img);
	free(lab);
	nnrt_data_free(&d);
}

Test(main, same_seed_same_threads_same_bits)
{
	nnrt_model m = mlp_model();
	run_result a = run_main(&m, "--threads 3 --epochs 5 --save %s", tpath("a.ckpt"));
	run_result b = run_main(&m, "--threads 3 --epochs 5 --save %s", tpath("b.ckpt"));
	cr_assert_eq(a.rc, 0);
	cr_assert_eq(b.rc, 0);
	char *sa = strip_timing(a.out), *sb = strip_timing(b.out);
	/* Only the checkpoint's name differs. */
	char *ka = strstr(sa, "saved checkpoint"), *kb = strstr(sb, "saved checkpoint");
	cr_assert(ka && kb);
	*ka = *kb = 0;
	cr_assert_str_eq(sa, sb);
	cr_assert(files_equal(tpath("a.ckpt"), tpath("b.ckpt")));
	/* Another seed gives another model. */
	run_result c = run_main(&m, "--threads 3 --epochs 5 --seed 2 --save %s", tpath("c.ckpt"));
	cr_assert(!files_equal(tpath("a.ckpt"), tpath("c.ckpt")));
	free(sa);
	free(sb);
	run_free(&a);
	run_free(&b);
	run_free(&c);
}

Test(main, resume_continues_exactly)
{
	nnrt_model m = mlp_model();
	run_result r = run_main(&m, "--threads 2 --epochs 6 --save %s", tpath("full.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	/* Checkpoints every 2 epochs, stopped at 4 ... */
	r = run_main(&m, "--threads 2 --epochs 4 --checkpoint-every 2 --save %s", tpath("half.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	char line[256];
	snprintf(line, sizeof line, "saved checkpoint to %s (epoch 2)\n", tpath("half.ckpt"));
	cr_assert(strstr(r.out, line), "%s", r.out);
	run_free(&r);
	/* ... resumed to 6: bit for bit the uninterrupted run. */
	r = run_main(&m, "--threads 2 --epochs 6 --resume %s --save %s", tpath("half.ckpt"), tpath("resumed.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	snprintf(line, sizeof line, "resuming from %s at epoch 4 (step 128)\n", tpath("half.ckpt"));
	cr_assert(strstr(r.out, line), "%s", r.out);
	cr_assert(strstr(r.out, "\nepoch  5/6 "), "%s", r.out);
	cr_assert_eq(count_lines(r.out, "epoch "), 2);
	cr_assert(files_equal(tpath("full.ckpt"), tpath("resumed.ckpt")));
	run_free(&r);
}

/* Wraps mlp_train; turns the loss of one chosen step into NaN. */
static int poison_step, steps_seen;
static void poison_train(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	mlp_train(a, tid, nt);
	if (tid == 0 && ++steps_seen == poison_step)
		a->metrics[0] = NAN;
}

Test(main, divergence_stops_and_keeps_the_last_checkpoint)
{
	nnrt_model m = mlp_model();
	m.train_step = poison_train;
	poison_step = 32 + 3; /* 32 steps per epoch: epoch 2, step 3 */
	const char *ck = tpath("last.ckpt");
	run_result r = run_main(&m, "--threads 2 --checkpoint-every 1 --save %s", ck);
	cr_assert_eq(r.rc, 1);
	char want[512];
	snprintf(want, sizeof want,
	         "tiny: error: training diverged at epoch 2, step 3 (loss is nan); the last good checkpoint, of epoch 1, "
	         "is kept in %s\n",
	         ck);
	cr_assert_str_eq(r.err, want);
	float p[MP];
	nnrt_train_state st;
	cr_assert_eq(nnrt_ckpt_load(ck, &m, p, NULL, NULL, &st), 0);
	cr_assert_eq(st.epoch, 1);
	run_free(&r);
	steps_seen = 0;
	poison_step = 1;
	r = run_main(&m, "");
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.err, "tiny: error: training diverged at epoch 1, step 1 (loss is nan); nothing was saved\n");
	run_free(&r);
}

/* Wraps mlp_train; raises stop_sig stop_times times after step stop_step,
 * as a user's Ctrl-C (or kill) would in the middle of a run. */
static int stop_step, stop_sig, stop_times;

/* The dispositions of an interactive shell: a test run in the background
 * inherits SIGINT ignored, and the runtime rightly leaves it so. */
static void default_signals(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
}
static void stop_train(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	mlp_train(a, tid, nt);
	if (tid == 0 && ++steps_seen == stop_step)
		for (int i = 0; i < stop_times; i++)
			raise(stop_sig);
}

Test(main, a_signal_saves_a_checkpoint_that_resumes_exactly)
{
	default_signals();
	nnrt_model m = mlp_model();
	run_result r = run_main(&m, "--threads 2 --epochs 4 --save %s", tpath("full.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);

	/* SIGTERM in the middle of epoch 2 (32 steps an epoch): the step
	 * finishes, the state is saved, the status is 128 + 15. */
	m.train_step = stop_train;
	steps_seen = 0, stop_step = 32 + 5, stop_sig = SIGTERM, stop_times = 1;
	const char *ck = tpath("int.ckpt");
	struct sigaction before, after;
	cr_assert_eq(sigaction(SIGTERM, NULL, &before), 0);
	r = run_main(&m, "--threads 2 --epochs 4 --save %s", ck);
	cr_assert_eq(r.rc, 128 + SIGTERM, "%s", r.err);
	char want[1024];
	snprintf(want, sizeof want,
	         "tiny: interrupted by SIGTERM in epoch 2 after step 5; saved checkpoint to %s (--resume %s continues "
	         "from there)\n",
	         ck, ck);
	cr_assert_str_eq(r.err, want);
	cr_assert_eq(count_lines(r.out, "epoch "), 1, "%s", r.out);
	run_free(&r);
	float p[MP];
	nnrt_train_state st;
	cr_assert_eq(nnrt_ckpt_load(ck, &m, p, NULL, NULL, &st), 0, "%s", nnrt_last_error());
	cr_assert_eq(st.epoch, 1);
	cr_assert_eq(st.step, 37);
	cr_assert_eq(st.batch, 5);
	/* The handler is the caller's again. */
	cr_assert_eq(sigaction(SIGTERM, NULL, &after), 0);
	cr_assert(after.sa_handler == before.sa_handler);

	/* Resumed: the same shuffle, step 6 next, and bit for bit the run that
	 * was never interrupted. */
	m.train_step = mlp_train;
	r = run_main(&m, "--threads 2 --epochs 4 --resume %s --save %s", ck, tpath("resumed.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	snprintf(want, sizeof want, "resuming from %s in epoch 2 after step 5 (step 37 in all)\n", ck);
	cr_assert(strstr(r.out, want), "%s", r.out);
	cr_assert_eq(count_lines(r.out, "epoch "), 3, "%s", r.out);
	cr_assert(files_equal(tpath("full.ckpt"), tpath("resumed.ckpt")));
	run_free(&r);

	/* Resumed on other data, the epoch is not the one it stopped in. */
	r = run_main(&m, "--threads 2 --epochs 4 --limit 100 --resume %s", ck);
	cr_assert_eq(r.rc, 1);
	snprintf(want, sizeof want,
	         "tiny: error: checkpoint %s was saved after step 5 of epoch 2, but an epoch of this data has 4 steps; "
	         "resume it with the data (and --limit) it was trained on\n",
	         ck);
	cr_assert_str_eq(r.err, want);
	run_free(&r);

	/* At the last step of an epoch: the epoch completes. */
	m.train_step = stop_train;
	steps_seen = 0, stop_step = 32;
	r = run_main(&m, "--threads 2 --epochs 4 --save %s", ck);
	cr_assert_eq(r.rc, 128 + SIGTERM, "%s", r.err);
	snprintf(want, sizeof want,
	         "tiny: interrupted by SIGTERM after epoch 1; saved checkpoint to %s (--resume %s continues from there)\n",
	         ck, ck);
	cr_assert_str_eq(r.err, want);
	run_free(&r);
	cr_assert_eq(nnrt_ckpt_load(ck, &m, p, NULL, NULL, &st), 0, "%s", nnrt_last_error());
	cr_assert_eq(st.epoch, 1);
	cr_assert_eq(st.batch, 0);

	/* Without --save, nothing is saved, and it says so. */
	steps_seen = 0, stop_step = 3, stop_sig = SIGINT;
	r = run_main(&m, "--threads 2 --epochs 4");
	cr_assert_eq(r.rc, 128 + SIGINT);
	cr_assert_str_eq(r.err, "tiny: interrupted by SIGINT in epoch 1 after step 3; nothing is saved (no --save FILE "
	                        "was given)\n");
	run_free(&r);
	/* The terminal gone (SIGHUP), or the reader of stdout (SIGPIPE, any
	 * number of times: every write to the pipe raises it again). */
	steps_seen = 0, stop_step = 40, stop_sig = SIGHUP;
	r = run_main(&m, "--threads 2 --epochs 4 --save %s", ck);
	cr_assert_eq(r.rc, 128 + SIGHUP, "%s", r.err);
	cr_assert(strstr(r.err, "tiny: interrupted by SIGHUP in epoch 2 after step 8; saved checkpoint to "), "%s", r.err);
	run_free(&r);
	steps_seen = 0, stop_step = 40, stop_sig = SIGPIPE, stop_times = 3;
	r = run_main(&m, "--threads 2 --epochs 4 --save %s", ck);
	cr_assert_eq(r.rc, 128 + SIGPIPE, "%s", r.err);
	cr_assert(strstr(r.err, "tiny: interrupted by SIGPIPE (standard output was closed) in epoch 2 after step 8; saved "
	                        "checkpoint to "),
	          "%s", r.err);
	run_free(&r);
	cr_assert_eq(nnrt_ckpt_load(ck, &m, p, NULL, NULL, &st), 0, "%s", nnrt_last_error());
	cr_assert_eq(st.batch, 8);
}

/* A second signal does not wait for the step: the process dies by it. */
Test(main, a_second_signal_exits_at_once, .signal = SIGINT)
{
	default_signals();
	nnrt_model m = mlp_model();
	m.train_step = stop_train;
	steps_seen = 0, stop_step = 3, stop_sig = SIGINT, stop_times = 2;
	run_result r = run_main(&m, "--threads 2 --save %s", tpath("never.ckpt"));
	run_free(&r);
}

Test(main, unusable_save_paths_are_refused_before_training)
{
	nnrt_model m = mlp_model();
	write_text(tpath("notes.txt"), "my notes\n");
	write_text(tpath("xor.nn"), "model xor\n");
	write_text(tpath("d.csv"), "0.5,0.5,0\n");
	write_text(tpath("file"), "x");
	static char src[512];
	snprintf(src, sizeof src, "%s", tpath("xor.nn"));
	m.source = src;
	static const struct {
		const char *args, *want;
	} cases[] = {
		{"--save {dir}/no/such/x.ckpt",
		 "--save {dir}/no/such/x.ckpt: cannot use directory {dir}/no/such: No such file or directory"},
		{"--save {dir}/file/x.ckpt", "--save {dir}/file/x.ckpt: {dir}/file is not a directory"},
		{"--save {dir}", "--save {dir}: is a directory"},
		{"--save /dev/null", "--save /dev/null: not a regular file; a checkpoint can only replace a regular file"},
		{"--save {dir}/notes.txt",
		 "--save {dir}/notes.txt: the file exists and is not an nnc checkpoint; pass --force to replace it"},
		{"--save {dir}/xor.nn --force", "--save {dir}/xor.nn is the model's source file; refusing to overwrite it"},
		{"--data {dir}/d.csv --save {dir}/d.csv --force",
		 "--save {dir}/d.csv is a training data file; refusing to overwrite it"},
		{"--load {dir}/x.ckpt --predict {dir}/d.csv --save {dir}/y.ckpt",
		 "--save cannot be used with --predict, which changes nothing to save"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char args[1024];
		snprintf(args, sizeof args, "%s", subst(cases[i].args));
		run_result r = run_main(&m, "--threads 1 %s", args);
		cr_expect_eq(r.rc, 2, "'%s' exited %d", args, r.rc);
		char want[1024];
		snprintf(want, sizeof want, "tiny: error: %s\nTry 'tiny --help' for the list of flags.\n",
		         subst(cases[i].want));
		cr_expect_str_eq(r.err, want, "'%s'", args);
		cr_expect_str_eq(r.out, "", "'%s' trained before refusing", args);
		run_free(&r);
	}
	size_t n;
	char *notes = read_all(tpath("notes.txt"), &n);
	cr_assert_str_eq(notes, "my notes\n");
	free(notes);
	/* --force replaces it; an empty file needs no --force. */
	run_result r = run_main(&m, "--threads 1 --epochs 1 --quiet --save %s --force", tpath("notes.txt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
	float p[MP];
	cr_assert_eq(nnrt_ckpt_load(tpath("notes.txt"), &m, p, NULL, NULL, NULL), 0, "%s", nnrt_last_error());
	write_text(tpath("empty"), "");
	r = run_main(&m, "--threads 1 --epochs 1 --quiet --save %s", tpath("empty"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	run_free(&r);
}

Test(main, data_override_limits_and_csv_training)
{
	/* xor points in a CSV without a header: the label is the last column. */
	nnrt_model m = mlp_model();
	nnrt_data_spec xs = {.kind = NNRT_DATA_XOR, .count = 800, .seed = 21, .scale = 1};
	nnrt_dataset d;
	cr_assert_eq(nnrt_data_load(&d, &m, &xs, "train", 0, 1), 0);
	FILE *f = fopen(tpath("xor.csv"), "w");
	for (int64_t i = 0; i < d.n; i++)
		fprintf(f, "%.4f,%.4f,%d\n", d.x_f32[2 * i], d.x_f32[2 * i + 1], d.y_class[i]);
	fclose(f);
	nnrt_data_free(&d);
	run_result r = run_main(&m, "--threads 1 --data %s --limit 600 --test-limit 100 --epochs 25", tpath("xor.csv"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(strstr(r.out, "600 training samples, 100 test samples"), "%s", r.out);
	cr_assert(last_value(r.out, "test_acc") > 0.9, "%s", r.out);
	run_free(&r);
	/* --epochs 0: initialise and save; --quiet prints nothing. */
	r = run_main(&m, "--epochs 0 --quiet --save %s", tpath("init.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	nnrt_train_state st;
	float p[MP];
	cr_assert_eq(nnrt_ckpt_load(tpath("init.ckpt"), &m, p, NULL, NULL, &st), 0);
	cr_assert_eq(st.epoch, 0);
	run_free(&r);
}

/* ---- Fashion-MNIST, when installed ---- */

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static void need_fashion(void)
{
	if (access(FMNIST "t10k-images-idx3-ubyte.gz", R_OK) != 0)
		cr_skip_test("Fashion-MNIST is not installed");
}

Test(fashion, loads_the_test_set)
{
	need_fashion();
	nnrt_model m = data_model(784, NNRT_LABEL_CLASS, 10);
	nnrt_data_spec spec = {.kind = NNRT_DATA_IDX, .path_x = FMNIST "t10k-images-idx3-ubyte.gz",
	                       .path_y = FMNIST "t10k-labels-idx1-ubyte.gz", .scale = 1 / 255.0f};
	nnrt_dataset d;
	cr_assert_eq(nnrt_data_load(&d, &m, &spec, "test", 0, 1), 0, "%s", nnrt_last_error());
	cr_assert_eq(d.n, 10000);
	int64_t per[10] = {0};
	for (int64_t i = 0; i < d.n; i++)
		per[d.y_class[i]]++;
	for (int k = 0; k < 10; k++)
		cr_assert_eq(per[k], 1000);
	int64_t idx[1] = {0};
	float x[784];
	nnrt_data_gather(&d, idx, 1, x, NULL);
	float mx = 0;
	for (int i = 0; i < 784; i++)
		mx = x[i] > mx ? x[i] : mx;
	cr_assert(mx > 0.5f && mx <= 1.0f);
	nnrt_data_free(&d);

	m = data_model(100, NNRT_LABEL_CLASS, 10);
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "test", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(), FMNIST "t10k-images-idx3-ubyte.gz: test images have 28x28 = 784 values "
	                                           "per sample but the model input is f32[100]");
	m = data_model(784, NNRT_LABEL_CLASS, 10);
	spec.path_y = FMNIST "train-labels-idx1-ubyte.gz";
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "test", 0, 1), 0);
	cr_assert_str_eq(nnrt_last_error(), FMNIST "t10k-images-idx3-ubyte.gz has 10000 images but " FMNIST
	                                           "train-labels-idx1-ubyte.gz has 60000 labels");
	m = data_model(784, NNRT_LABEL_CLASS, 5);
	spec.path_y = FMNIST "t10k-labels-idx1-ubyte.gz";
	cr_assert_neq(nnrt_data_load(&d, &m, &spec, "test", 0, 1), 0);
	cr_assert(strstr(nnrt_last_error(), "is out of range: the model has 5 classes (0..4)"), "%s",
	          nnrt_last_error());
}

/* Softmax regression 784 -> 10 with plain SGD: W (784,10) | b (10). */
enum { SI = 784, SC = 10, SP = SI * SC + SC };
static const nnrt_param_info soft_params[] = {
	{.name = "fc.weight", .offset = 0, .size = SI * SC, .shape = {SI, SC}, .rank = 2, .init = NNRT_INIT_ZEROS},
	{.name = "fc.bias", .offset = SI * SC, .size = SC, .shape = {SC}, .rank = 1, .init = NNRT_INIT_ZEROS},
};

static void soft_part(nnrt_step_args *a, int32_t tid, int32_t nt, float *g, float *out)
{
	int64_t lo = a->n * tid / nt, hi = a->n * (tid + 1) / nt;
	const float *W = a->params, *b = W + SI * SC;
	const int32_t *y = a->y;
	double loss = 0, correct = 0;
	for (int64_t s = lo; s < hi; s++) {
		const float *x = a->x + s * SI;
		float z[SC], mx = -INFINITY, sum = 0;
		for (int k = 0; k < SC; k++)
			z[k] = b[k];
		for (int i = 0; i < SI; i++)
			for (int k = 0; k < SC; k++)
				z[k] += x[i] * W[i * SC + k];
		for (int k = 0; k < SC; k++)
			mx = z[k] > mx ? z[k] : mx;
		for (int k = 0; k < SC; k++)
			sum += z[k] = expf(z[k] - mx);
		for (int k = 0; k < SC; k++)
			z[k] /= sum;
		if (out) {
			memcpy(out + s * SC, z, sizeof z);
			continue;
		}
		loss -= log(z[y[s]] > 1e-30f ? z[y[s]] : 1e-30f);
		correct += argmax(z, SC) == y[s];
		if (!g)
			continue;
		z[y[s]] -= 1;
		for (int i = 0; i < SI; i++)
			if (x[i] != 0)
				for (int k = 0; k < SC; k++)
					g[i * SC + k] += x[i] * z[k];
		for (int k = 0; k < SC; k++)
			g[SI * SC + k] += z[k];
	}
	part[tid][0] = loss;
	part[tid][1] = correct;
}

static void soft_train(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	float *g = a->ws + (int64_t)tid * SP;
	memset(g, 0, SP * sizeof(float));
	soft_part(a, tid, nt, g, NULL);
	nnrt_barrier();
	int64_t lo = (int64_t)SP * tid / nt, hi = (int64_t)SP * (tid + 1) / nt;
	for (int64_t j = lo; j < hi; j++) {
		float gj = 0;
		for (int t = 0; t < nt; t++)
			gj += a->ws[(int64_t)t * SP + j];
		a->params[j] -= a->hp[NNRT_HP_LR] * gj / (float)a->n;
	}
	sum_metrics(a, tid, nt);
}

static void soft_eval(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	soft_part(a, tid, nt, NULL, NULL);
	nnrt_barrier();
	sum_metrics(a, tid, nt);
}

static void soft_infer(nnrt_step_args *a, int32_t tid, int32_t nt)
{
	soft_part(a, tid, nt, NULL, a->out);
}

/* Softmax regression on Fashion-MNIST's gzip'ed IDX files. */
static nnrt_model fashion_model(void)
{
	nnrt_model m = data_model(SI, NNRT_LABEL_CLASS, SC);
	m.name = "fashion";
	m.input_rank = 3;
	m.input_shape[0] = 1, m.input_shape[1] = 28, m.input_shape[2] = 28;
	m.fingerprint = 0xfa5;
	m.loss = NNRT_LOSS_SOFTMAX_XENT;
	m.optimizer = NNRT_OPT_SGD;
	m.n_params = 2;
	m.params = soft_params;
	m.param_floats = SP;
	m.ws_floats = MAXT * SP;
	m.batch = 64;
	m.lr = 0.1f;
	m.epochs = 2;
	m.train = (nnrt_data_spec){.kind = NNRT_DATA_IDX, .path_x = FMNIST "train-images-idx3-ubyte.gz",
	                           .path_y = FMNIST "train-labels-idx1-ubyte.gz", .scale = 1 / 255.0f};
	m.test = (nnrt_data_spec){.kind = NNRT_DATA_IDX, .path_x = FMNIST "t10k-images-idx3-ubyte.gz",
	                          .path_y = FMNIST "t10k-labels-idx1-ubyte.gz", .scale = 1 / 255.0f};
	m.train_step = soft_train;
	m.eval_step = soft_eval;
	m.infer = soft_infer;
	return m;
}

Test(fashion, softmax_regression_learns)
{
	need_fashion();
	nnrt_model m = fashion_model();
	run_result r = run_main(&m, "--threads 2 --limit 3000 --test-limit 1000 --save %s", tpath("f.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert(strstr(r.out, "model fashion: 7850 parameters, 3000 training samples, 1000 test samples"), "%s",
	          r.out);
	cr_assert(last_value(r.out, "test_acc") > 0.7, "%s", r.out);
	run_free(&r);
	/* Predict the first test images from the gzip file. */
	r = run_main(&m, "--threads 2 --load %s --predict " FMNIST "t10k-images-idx3-ubyte.gz", tpath("f.ckpt"));
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out, ""), 10000);
	run_free(&r);
	r = run_main(&m, "--help");
	cr_assert(strstr(r.out, "input        f32[1,28,28]"), "%s", r.out);
	run_free(&r);
}

/* Decompressing the gzip'ed IDX files draws a bar per file on a terminal,
 * redrawn as the file is read, up to its whole size. */
Test(fashion, loading_draws_a_bar_per_file_on_a_terminal)
{
	need_fashion();
	nnrt_model m = fashion_model();
	int rc;
	char *tty = run_on_pty(&m, "xterm", "--threads 1 --epochs 0", &rc);
	cr_assert_eq(rc, 0, "%s", tty);
	const char *files[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
	                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
	for (int i = 0; i < 4; i++) {
		char path[256], head[128], full[256];
		snprintf(path, sizeof path, FMNIST "%s", files[i]);
		struct stat st;
		cr_assert_eq(stat(path, &st), 0);
		int mb = st.st_size >= 1000000;
		snprintf(head, sizeof head, "\rreading %s [", files[i]);
		snprintf(full, sizeof full, "%s====================] %.1f/%.1f %s ", head, st.st_size / (mb ? 1e6 : 1e3),
		         st.st_size / (mb ? 1e6 : 1e3), mb ? "MB" : "kB");
		cr_assert(strstr(tty, full), "no full bar for %s:\n%s", files[i], tty);
		if (i == 0) { /* 26 MB: redrawn part way through too */
			int draws = 0;
			for (const char *p = strstr(tty, head); p; p = strstr(p + 1, head))
				draws++;
			cr_assert(draws >= 2, "%d draws:\n%s", draws, tty);
		}
	}
	cr_assert(!strchr(tty, '\033'), "%s", tty);
	char *shown = as_shown(tty);
	cr_assert(strncmp(shown, "model fashion: 7850 parameters, 60000 training samples, 10000 test samples", 74) == 0,
	          "%s", shown);
	free(shown);
	free(tty);
}

/* ---- Augmentation (augment.c) ---- */

TestSuite(augment, .init = setup, .fini = teardown);

/* The transforms as the docs define them, written the slow way: the image
 * copied into a zero-padded canvas and a window read out of it, the flip by
 * index, the square by its corner.  Draw k of an image is
 * nnrt_random_uniform(key, sample, k): 0, 1 the window's offset, 2 the
 * flip, 3 the erasing, 4, 5 the square's centre. */
static void augment_reference(int64_t c, int64_t h, int64_t w, int pad, float flip_p, int size, float erase_p,
			      uint64_t key, int64_t sample, const float *in, float *out)
{
	int64_t ph = h + 2 * pad, pw = w + 2 * pad;
	float *canvas = calloc((size_t)(c * ph * pw), sizeof *canvas);
	cr_assert_not_null(canvas);
	for (int64_t k = 0; k < c; k++)
		for (int64_t y = 0; y < h; y++)
			for (int64_t x = 0; x < w; x++)
				canvas[(k * ph + y + pad) * pw + x + pad] = in[(k * h + y) * w + x];
	int64_t oy = 0, ox = 0;
	if (pad) {
		oy = (int64_t)floorf(nnrt_random_uniform(key, sample, 0) * (float)(2 * pad + 1));
		ox = (int64_t)floorf(nnrt_random_uniform(key, sample, 1) * (float)(2 * pad + 1));
	}
	int flip = flip_p > 0 && nnrt_random_uniform(key, sample, 2) < flip_p;
	int erase = size > 0 && nnrt_random_uniform(key, sample, 3) < erase_p;
	int64_t cy = (int64_t)floorf(nnrt_random_uniform(key, sample, 4) * (float)h);
	int64_t cx = (int64_t)floorf(nnrt_random_uniform(key, sample, 5) * (float)w);
	for (int64_t k = 0; k < c; k++)
		for (int64_t y = 0; y < h; y++)
			for (int64_t x = 0; x < w; x++) {
				int64_t sx = flip ? w - 1 - x : x;
				float v = canvas[(k * ph + y + oy) * pw + sx + ox];
				if (erase && y >= cy - size / 2 && y < cy - size / 2 + size && x >= cx - size / 2 &&
				    x < cx - size / 2 + size)
					v = 0;
				out[(k * h + y) * w + x] = v;
			}
	free(canvas);
}

/* Every combination of the transforms on 2x5x7 images, 200 samples each,
 * equal to the reference exactly; and every transform seen to happen. */
Test(augment, matches_the_reference)
{
	nnrt_model m = data_model(70, NNRT_LABEL_CLASS, 2);
	m.input_rank = 3;
	m.input_shape[0] = 2, m.input_shape[1] = 5, m.input_shape[2] = 7;
	float in[70], got[70], want[70];
	for (int i = 0; i < 70; i++)
		in[i] = 1.0f + (float)i;
	static const struct { int pad; float flip; int size; float erase; } combos[] = {
		{2, 0, 0, 0}, {0, 0.5f, 0, 0}, {0, 0, 3, 0.5f}, {1, 0.5f, 0, 0}, {3, 0.3f, 4, 1.0f}, {4, 1.0f, 5, 0.7f},
	};
	for (size_t k = 0; k < sizeof combos / sizeof combos[0]; k++) {
		m.aug_crop_pad = combos[k].pad, m.aug_flip_p = combos[k].flip;
		m.aug_erase_size = combos[k].size, m.aug_erase_p = combos[k].erase;
		cr_assert(nnrt_augments(&m));
		uint64_t key = nnrt_augment_key(7, (int64_t)k + 1);
		int changed = 0;
		for (int64_t s = 0; s < 200; s++) {
			memcpy(got, in, sizeof in);
			nnrt_augment_image(&m, key, s, got);
			augment_reference(2, 5, 7, m.aug_crop_pad, m.aug_flip_p, m.aug_erase_size, m.aug_erase_p, key, s, in,
					  want);
			cr_assert_arr_eq(got, want, sizeof got, "combination %zu, sample %lld differs", k, (long long)s);
			changed += memcmp(got, in, sizeof in) != 0;
		}
		cr_expect(changed > 20 && (changed < 200 || combos[k].flip == 1.0f || combos[k].erase == 1.0f),
			  "combination %zu changed %d of 200",
			  k, changed);
	}
	/* another epoch, other draws; the same epoch, the same ones */
	cr_expect_neq(nnrt_augment_key(7, 1), nnrt_augment_key(7, 2));
	cr_expect_neq(nnrt_augment_key(7, 1), nnrt_augment_key(8, 1));
	m.aug_crop_pad = 0, m.aug_flip_p = 0, m.aug_erase_size = 0;
	cr_expect(!nnrt_augments(&m));
}

/* --augment LIST: the .nn list's syntax (brackets optional, spaces
 * anywhere, none), into the model's fields; every malformed list and every
 * list that does not fit the image gets its reason. */
Test(augment, command_line_lists)
{
	static const struct {
		const char *text;
		int pad, size;
		float flip, erase;
	} good[] = {
		{"crop(pad: 2), flip", 2, 0, 0.5f, 0},
		{"[crop(pad: 2), flip]", 2, 0, 0.5f, 0},
		{" [ erase( size :8 , p: 0.25 ) ,flip(p: 1) ] ", 0, 8, 1.0f, 0.25f},
		{"erase(p: 1, size: 3)", 0, 3, 0, 1.0f},
		{"flip(p: 0.3), crop(pad: 4)", 4, 0, 0.3f, 0},
		{"none", 0, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		nnrt_augment_spec a;
		char why[300] = "";
		cr_assert_eq(nnrt_augment_parse(good[i].text, &a, why, sizeof why), 0, "'%s': %s", good[i].text, why);
		cr_expect(a.crop_pad == good[i].pad && a.erase_size == good[i].size && a.flip_p == good[i].flip &&
			  a.erase_p == good[i].erase,
			  "'%s' gave pad %d size %d flip %g erase %g", good[i].text, a.crop_pad, a.erase_size, a.flip_p,
			  a.erase_p);
	}
	static const struct {
		const char *text, *why;
	} bad[] = {
		{"flp", "unknown transform 'flp' (transforms: crop(pad: N), flip, flip(p: P), erase(size: N, p: P), or none)"},
		{"crop", "'crop' needs the padding 'pad' (pixels per side), e.g. crop(pad: 4)"},
		{"erase(p: 0.5)", "'erase' needs the side 'size' of the square (pixels), e.g. erase(size: 8)"},
		{"flip, flip", "transform 'flip' is given twice"},
		{"flip(p: 0)", "the probability 'p' of 'flip' must be in (0, 1], not 0"},
		{"flip(p: 1.5)", "the probability 'p' of 'flip' must be in (0, 1], not 1.5"},
		{"crop(pad: 2.5)", "'pad' of 'crop' must be a whole number from 1 to 1024, not 2.5"},
		{"crop(pad: 0)", "'pad' of 'crop' must be a whole number from 1 to 1024, not 0"},
		{"crop(pad 2)", "'pad' needs a ':' and a value after it"},
		{"crop(pad: x)", "'pad' of 'crop' needs a number"},
		{"crop(pad: 2, pad: 3)", "'pad' of 'crop' is given twice"},
		{"erase(size: 8, q: 1)", "'erase' has no option 'q' (its options: size, p)"},
		{"crop()", "'crop(' must be followed by an option, e.g. pad: 4"},
		{"crop(pad: 2", "')' or ',' expected after the options of 'crop'"},
		{"crop(pad: 2) flip", "unexpected 'flip' after 'crop'"},
		{"[flip", "']' or ',' expected after 'flip'"},
		{"flip,", "a transform is expected at 'the end': crop(pad: N), flip, flip(p: P), erase(size: N, p: P), or none"},
		{"none, flip", "unknown transform 'none' (transforms: crop(pad: N), flip, flip(p: P), erase(size: N, p: P), "
			       "or none)"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		nnrt_augment_spec a;
		char why[300] = "";
		cr_expect_eq(nnrt_augment_parse(bad[i].text, &a, why, sizeof why), -1, "'%s' parsed", bad[i].text);
		cr_expect_str_eq(why, bad[i].why, "'%s'", bad[i].text);
	}
	/* the fit to a 2x5x7 image, and to a vector */
	nnrt_model m = data_model(70, NNRT_LABEL_CLASS, 2);
	m.input_rank = 3;
	m.input_shape[0] = 2, m.input_shape[1] = 5, m.input_shape[2] = 7;
	static const struct {
		nnrt_augment_spec a;
		const char *why;
	} fit[] = {
		{{4, 5, 0.5f, 0.5f}, ""},
		{{5, 0, 0, 0}, "crop's padding of 5 pixels is not smaller than the image (5x7)"},
		{{0, 6, 0, 0.5f}, "erase's square of 6 pixels is larger than the image (5x7)"},
	};
	for (size_t i = 0; i < sizeof fit / sizeof fit[0]; i++) {
		char why[300] = "";
		cr_expect_eq(nnrt_augment_fit(&m, &fit[i].a, why, sizeof why), *fit[i].why ? -1 : 0, "row %zu", i);
		cr_expect_str_eq(why, fit[i].why, "row %zu", i);
	}
	m.input_rank = 1;
	char why[300] = "";
	cr_expect_eq(nnrt_augment_fit(&m, &fit[0].a, why, sizeof why), -1);
	cr_expect_str_eq(why, "augmentation needs an image input [channels, rows, columns], but the input is a vector");
	nnrt_augment_spec none = {0, 0, 0, 0};
	cr_expect_eq(nnrt_augment_fit(&m, &none, why, sizeof why), 0, "no transforms fit anything");
	nnrt_augment_apply(&m, &fit[0].a);
	cr_expect(m.aug_crop_pad == 4 && m.aug_erase_size == 5 && m.aug_flip_p == 0.5f && m.aug_erase_p == 0.5f);
}

/* A version 2 file (version 3 without the early-stopping counters, made here
 * from a version 3 one) loads, and leaves the caller's early stopping as it
 * was; a version 3 file with early stopping restores it: best epoch, its
 * parameters, the epochs waited. */
Test(ckpt, version_2_loads_and_version_3_carries_early_stopping)
{
	nnrt_model m = mlp_model();
	float params[MP], opt[2 * MP] = {0}, best[MP + 1], p2[MP], o2[2 * MP];
	for (int i = 0; i < MP; i++)
		params[i] = (float)i, best[i] = (float)(100 + i);
	nnrt_train_state st = {.epoch = 4, .step = 9};
	nnrt_rng_seed(&st.rng, 7);
	cr_assert_eq(nnrt_ckpt_save(tpath("plain.ckpt"), &m, params, opt, NULL, &st), 0);
	size_t len = 0;
	unsigned char *b = (unsigned char *)read_all(tpath("plain.ckpt"), &len);
	/* the counters follow the state table: header, name, two parameter rows
	 * of this model, the state table's two counts */
	size_t at = 104 + 4 + 3 + (4 + 10 + 4 + 16 + 16) + (4 + 8 + 4 + 8 + 16) + (4 + 10 + 4 + 16 + 16) +
		    (4 + 8 + 4 + 8 + 16) + 12;
	cr_assert_gt(len, at + 28 + 4);
	memmove(b + at, b + at + 28, len - at - 28);
	len -= 28;
	b[8] = 2;
	uint64_t size = len;
	memcpy(b + 16, &size, 8);
	uint32_t crc = (uint32_t)crc32(0L, b, (uInt)(len - 4));
	memcpy(b + len - 4, &crc, 4);
	write_bytes(tpath("v2.ckpt"), b, len);
	free(b);
	nnrt_early_stop es = {.best = best, .best_epoch = 0, .wait = 0, .best_value = INFINITY};
	nnrt_train_state s = {.es = &es};
	cr_assert_eq(nnrt_ckpt_load(tpath("v2.ckpt"), &m, p2, o2, NULL, &s), 0, "%s", nnrt_last_error());
	cr_expect_eq(s.epoch, 4);
	cr_expect_eq(s.step, 9);
	cr_expect_arr_eq(p2, params, sizeof params);
	cr_expect(s.es == &es && es.best_epoch == 0 && es.wait == 0 && isinf(es.best_value));
	cr_expect_eq(best[0], 100.0f);
	/* version 3 with early stopping */
	nnrt_early_stop saved = {.best = best, .best_epoch = 3, .wait = 1, .best_value = 0.25};
	st.es = &saved;
	cr_assert_eq(nnrt_ckpt_save(tpath("es.ckpt"), &m, params, opt, NULL, &st), 0);
	float back[MP + 1] = {0};
	nnrt_early_stop got = {.best = back, .best_value = INFINITY};
	s.es = &got;
	cr_assert_eq(nnrt_ckpt_load(tpath("es.ckpt"), &m, p2, o2, NULL, &s), 0, "%s", nnrt_last_error());
	cr_expect(s.es == &got);
	cr_expect_eq(got.best_epoch, 3);
	cr_expect_eq(got.wait, 1);
	cr_expect_eq(got.best_value, 0.25);
	cr_expect_arr_eq(back, best, MP * sizeof(float));
	cr_expect_arr_eq(p2, params, sizeof params);
	/* --load (no early stopping of its own) reads past it */
	s.es = NULL;
	cr_assert_eq(nnrt_ckpt_load(tpath("es.ckpt"), &m, p2, NULL, NULL, &s), 0, "%s", nnrt_last_error());
}
