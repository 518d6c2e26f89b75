/*
 * dist.c - data-parallel training over several processes (ranks),
 * bit-identical to one process (docs/distributed.md).
 *
 * The generated step already cuts the batch into chunks and sums the
 * chunks' partial results in chunk order (docs/architecture.md, "Parallel
 * schedule").  A rank runs whole chunks of every global batch (the span
 * nnrt_dist_span gives it) and, where the body needs every chunk's
 * results (before a batch-statistics combine, before the metrics and the
 * update: nnrt_dist_sync), its chunks' results are broadcast to every
 * rank.  Only bytes move between ranks; the sums are the generated code's,
 * in chunk order, on every rank: so N ranks compute, byte for byte, what
 * one process with the same chunks computes, and every rank applies the
 * same update to the same parameters.  With --allreduce the ranks sum
 * their own chunks and MPI sums the ranks (MPI_Allreduce): fewer bytes for
 * many ranks, but the order of the sum is then MPI's.
 *
 * This file knows no MPI: the transport (dist_mpi.c, in libnnrt_mpi) is a
 * table of collectives that libnnrt.a references weakly, so a binary
 * linked without it runs as one process and needs no MPI library.
 *
 * Threads: a sync is called by every thread of the team; thread 0 moves
 * the bytes (the thread that joined the job, MPI_THREAD_FUNNELED is
 * enough) while the others wait at the team's barrier.
 */
#define _POSIX_C_SOURCE 200809L

#include "dist.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

uint64_t nnrt_hash(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

int nnrt_dist_owner(int64_t k, int64_t chunks, int size)
{
	for (int r = 0; r < size; r++)
		if (k < (int64_t)(r + 1) * chunks / size)
			return r;
	return size - 1;
}

/* The run whose step is being run, and the step's arguments.  One per
 * process: a distributed step runs one at a time (its collectives would
 * not tell two apart); a step of another instance, which has other
 * arguments, is not distributed. */
static _Atomic(nnrt_dist *) bound;

void nnrt_dist_bind(nnrt_dist *d, const nnrt_step_args *a)
{
	if (d)
		d->args = a;
	atomic_store_explicit(&bound, d, memory_order_release);
}

static nnrt_dist *dist_of(const nnrt_step_args *a)
{
	nnrt_dist *d = atomic_load_explicit(&bound, memory_order_acquire);
	return d && d->args == a ? d : NULL;
}

void nnrt_dist_span(const nnrt_step_args *a, int64_t chunks, int64_t *span)
{
	nnrt_dist *d = dist_of(a);
	span[0] = d ? (int64_t)d->rank * chunks / d->size : 0;
	span[1] = d ? (int64_t)(d->rank + 1) * chunks / d->size : chunks;
}

/* Up to this many buffers go in one bcast_many. */
enum { MAX_BUFS = 256 };

typedef struct bufs {
	void *p[MAX_BUFS];
	int64_t bytes[MAX_BUFS];
	int root[MAX_BUFS];
	int n;
	nnrt_dist *d;
} bufs;

static void flush_bufs(bufs *b)
{
	if (b->n && b->d->tp->bcast_many(b->d->comm, b->n, b->p, b->bytes, b->root) != 0)
		abort(); /* the transport reported and could not stop the job */
	b->n = 0;
}

static void add_buf(bufs *b, void *p, int64_t bytes, int root)
{
	if (bytes <= 0)
		return;
	if (b->n == MAX_BUFS)
		flush_bufs(b);
	b->p[b->n] = p;
	b->bytes[b->n] = bytes;
	b->root[b->n] = root;
	b->n++;
	if (root != b->d->rank) /* what this rank receives */
		b->d->bytes += bytes;
}

/* chunk k's partial gradients and metrics */
static float *chunk_grads(nnrt_step_args *a, const int64_t *t, int64_t k)
{
	return k == 0 ? a->grads : a->ws + t[NNRT_DIST_WS_PARTIALS] + (k - 1) * t[NNRT_DIST_PARAM_FLOATS];
}

static double *chunk_metrics(nnrt_step_args *a, const int64_t *t, int64_t k)
{
	return k == 0 ? a->metrics : (double *)(void *)(a->ws + t[NNRT_DIST_WS_METRICS]) + 2 * k;
}

/* --allreduce: grads = the sum of this rank's chunks (in chunk order),
 * summed over the ranks by the transport; the other chunks' partials
 * become -0, which the update adds without changing a value (x + -0 = x
 * for every x, +0 and -0 included). */
static void reduce_fast(nnrt_dist *d, nnrt_step_args *a, const int64_t *t, int64_t active)
{
	int64_t lo = (int64_t)d->rank * t[NNRT_DIST_CHUNKS] / d->size;
	int64_t hi = (int64_t)(d->rank + 1) * t[NNRT_DIST_CHUNKS] / d->size;
	if (hi > active)
		hi = active;
	if (t[NNRT_DIST_WS_PARTIALS] >= 0) {
		int64_t p = t[NNRT_DIST_PARAM_FLOATS];
		float *g = a->grads;
		if (lo >= hi)
			memset(g, 0, (size_t)p * sizeof(float));
		else if (lo > 0)
			memcpy(g, chunk_grads(a, t, lo), (size_t)p * sizeof(float));
		for (int64_t k = lo + 1; k < hi; k++) {
			const float *s = chunk_grads(a, t, k);
			for (int64_t i = 0; i < p; i++)
				g[i] += s[i];
		}
		if (d->tp->allreduce_f32(d->comm, g, p) != 0)
			abort();
		/* what a ring allreduce moves through each rank */
		d->bytes += 2 * (d->size - 1) * p * (int64_t)sizeof(float) / d->size;
		for (int64_t k = 1; k < active; k++) {
			float *s = chunk_grads(a, t, k);
			for (int64_t i = 0; i < p; i++)
				s[i] = -0.0f;
		}
	}
	if (t[NNRT_DIST_WS_METRICS] >= 0) {
		double m[2] = {0, 0};
		for (int64_t k = lo; k < hi; k++) {
			m[0] += chunk_metrics(a, t, k)[0];
			m[1] += chunk_metrics(a, t, k)[1];
		}
		if (d->tp->allreduce_f64(d->comm, m, 2) != 0)
			abort();
		a->metrics[0] = m[0];
		a->metrics[1] = m[1];
		for (int64_t k = 1; k < active; k++)
			chunk_metrics(a, t, k)[0] = chunk_metrics(a, t, k)[1] = -0.0;
	}
}

static void exchange(nnrt_dist *d, nnrt_step_args *a, const int64_t *t)
{
	double t0 = nnrt_now();
	int64_t chunks = t[NNRT_DIST_CHUNKS], cb = t[NNRT_DIST_CBATCH];
	int64_t active = (a->n + cb - 1) / cb;
	bufs b = {.d = d};
	if (t[NNRT_DIST_KIND] == NNRT_DIST_PARTIALS) {
		for (int64_t k = 0; k < active; k++) {
			int root = nnrt_dist_owner(k, chunks, d->size);
			float *base = a->ws + t[NNRT_DIST_WS_CHUNK0] + k * t[NNRT_DIST_WS_CHUNK];
			for (int64_t i = 0; i < t[NNRT_DIST_COUNT]; i++)
				add_buf(&b, base + t[NNRT_DIST_TENSORS + 2 * i],
				        t[NNRT_DIST_TENSORS + 2 * i + 1] * (int64_t)sizeof(float), root);
		}
	} else if (d->allreduce) {
		reduce_fast(d, a, t, active);
	} else {
		for (int64_t k = 0; k < active; k++) {
			int root = nnrt_dist_owner(k, chunks, d->size);
			if (t[NNRT_DIST_WS_PARTIALS] >= 0)
				add_buf(&b, chunk_grads(a, t, k), t[NNRT_DIST_PARAM_FLOATS] * (int64_t)sizeof(float), root);
			if (t[NNRT_DIST_WS_METRICS] >= 0)
				add_buf(&b, chunk_metrics(a, t, k), 2 * (int64_t)sizeof(double), root);
		}
	}
	/* the train step's state (running statistics): chunk 0 moves it */
	if (t[NNRT_DIST_KIND] == NNRT_DIST_FINAL && t[NNRT_DIST_WS_PARTIALS] >= 0 && a->state)
		add_buf(&b, a->state, d->state_floats * (int64_t)sizeof(float), nnrt_dist_owner(0, chunks, d->size));
	flush_bufs(&b);
	d->syncs++;
	if (t[NNRT_DIST_KIND] == NNRT_DIST_FINAL)
		d->steps++;
	d->seconds += nnrt_now() - t0;
}

void nnrt_dist_sync(nnrt_step_args *a, int32_t tid, int32_t nthreads, const int64_t *table)
{
	(void)nthreads;
	nnrt_dist *d = dist_of(a);
	if (!d)
		return;
	if (tid == 0)
		exchange(d, a, table);
	nnrt_barrier();
}

/* ---- Runs ---- */

static nnrt_dist *dist_alloc(const nnrt_dist_transport *tp, void *comm, const nnrt_model *m)
{
	nnrt_dist *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->tp = tp;
	d->comm = comm;
	d->rank = tp->rank(comm);
	d->size = tp->size(comm);
	d->state_floats = m->state_floats;
	return d;
}

nnrt_dist *nnrt_dist_new(const nnrt_dist_transport *tp, void *comm, const nnrt_model *m)
{
	return dist_alloc(tp, comm, m);
}

/* Ranks an MPI launcher says it started, or 0 if none did: what a
 * binary without the transport can still see. */
static long launcher_size(void)
{
	static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		const char *v = getenv(vars[i]);
		if (v && *v)
			return strtol(v, NULL, 10);
	}
	return 0;
}

nnrt_dist *nnrt_dist_launch(const nnrt_model *m, int *rc)
{
	*rc = 0;
	const nnrt_dist_transport *tp = &nnrt_dist_mpi;
	if (!tp) {
		long n = launcher_size();
		if (n > 1) {
			nnrt_error("started as one of %ld ranks, but this binary has no MPI support (its runtime was built "
			           "without NNC_MPI): every rank would train alone; rebuild nnc with MPI (docs/distributed.md)",
			           n);
			*rc = NNRT_EXIT_FAILURE;
		}
		return NULL;
	}
	if (!tp->launched())
		return NULL;
	void *comm = NULL;
	char err[256] = "";
	if (tp->init(&comm, err, sizeof err)) {
		nnrt_error("cannot join the %s job: %s", tp->name, err);
		*rc = NNRT_EXIT_FAILURE;
		return NULL;
	}
	nnrt_dist *d = dist_alloc(tp, comm, m);
	if (!d) {
		nnrt_sys_error("out of memory");
		tp->finish(comm, NNRT_EXIT_FAILURE, 0, 1);
		*rc = NNRT_EXIT_FAILURE;
		return NULL;
	}
	d->owns_init = 1;
	return d;
}

/* What makes two model objects the same binary for this purpose: the
 * fingerprint (names, shapes, optimizer) and what the generated code was
 * compiled with (sizes of its arrays, its ops, the CPU features). */
static uint64_t model_hash(const nnrt_model *m)
{
	uint64_t h = NNRT_HASH0;
	int64_t v[] = {(int64_t)m->fingerprint, m->abi_version, m->param_floats, m->opt_floats, m->ws_floats,
	               m->state_floats, m->batch, m->n_ops, m->accumulate};
	h = nnrt_hash(h, v, sizeof v);
	for (int32_t i = 0; i < m->n_ops && m->ops; i++) {
		if (m->ops[i].name)
			h = nnrt_hash(h, m->ops[i].name, strlen(m->ops[i].name));
		if (m->ops[i].kind)
			h = nnrt_hash(h, m->ops[i].kind, strlen(m->ops[i].kind));
	}
	if (m->cpu_features)
		h = nnrt_hash(h, m->cpu_features, strlen(m->cpu_features));
	return h;
}

static uint64_t state_hash(const nnrt_instance *inst)
{
	const nnrt_model *m = inst->m;
	uint64_t h = nnrt_hash(NNRT_HASH0, inst->params, (size_t)m->param_floats * sizeof(float));
	if (inst->opt)
		h = nnrt_hash(h, inst->opt, (size_t)m->opt_floats * sizeof(float));
	h = nnrt_hash(h, inst->state, (size_t)m->state_floats * sizeof(float));
	int64_t c[3] = {inst->st.epoch, inst->st.step, inst->st.batch};
	h = nnrt_hash(h, c, sizeof c);
	return nnrt_hash(h, inst->st.rng.s, sizeof inst->st.rng.s);
}

/* The ranks whose value k differs from rank 0's, as "1, 3" into buf: how
 * many. */
static int differing(const nnrt_dist *d, const uint64_t *all, int k, char *buf, size_t cap)
{
	int n = 0;
	size_t len = 0;
	buf[0] = 0;
	for (int r = 1; r < d->size; r++)
		if (all[3 * r + k] != all[k]) {
			if (len + 16 < cap)
				len += (size_t)snprintf(buf + len, cap - len, "%s%d", n ? ", " : "", r);
			n++;
		}
	return n;
}

int nnrt_dist_setup(nnrt_dist *d, nnrt_instance *inst, uint64_t config, int loaded)
{
	const nnrt_model *m = inst->m;
	uint64_t mine[3] = {model_hash(m), config, state_hash(inst)};
	uint64_t *all = calloc((size_t)d->size * 3, sizeof(uint64_t));
	if (!all) {
		nnrt_sys_error("out of memory");
		return -1;
	}
	int rc = d->tp->allgather(d->comm, mine, all, sizeof mine);
	char who[256];
	int bad = 0;
	static const char *const what[3] = {
		"another model object than rank 0 (compiled from another .nn file, or with other nnc options: "
		"every rank must run the same binary)",
		"other flags or data sizes than rank 0 (every rank must get the same command line and the same data)",
		"another checkpoint than rank 0 (every rank must resume from the same file)",
	};
	static const char *const verb[3][2] = {{"runs", "run"}, {"runs with", "run with"}, {"loaded", "loaded"}};
	for (int k = 0; k < 3 && !rc; k++) {
		if (k == 2 && !loaded)
			continue;
		int n = differing(d, all, k, who, sizeof who);
		if (n) {
			/* every rank has the message (the embedding's instance
			 * error), rank 0 alone prints it */
			int mute = d->rank != 0 ? nnrt_mute_errors(1) : 0;
			nnrt_error("%s %s %s %s; refusing to start", n == 1 ? "rank" : "ranks", who, verb[k][n > 1], what[k]);
			if (d->rank != 0)
				nnrt_mute_errors(mute);
			bad = 1;
		}
	}
	free(all);
	if (rc || bad)
		return -1;
	/* rank 0's parameters and counters for all (they agree when loaded
	 * from one checkpoint; a fresh run's initialisation is rank 0's) */
	bufs b = {.d = d};
	add_buf(&b, inst->params, m->param_floats * (int64_t)sizeof(float), 0);
	if (inst->opt)
		add_buf(&b, inst->opt, m->opt_floats * (int64_t)sizeof(float), 0);
	add_buf(&b, inst->state, m->state_floats * (int64_t)sizeof(float), 0);
	add_buf(&b, &inst->st.epoch, sizeof inst->st.epoch, 0);
	add_buf(&b, &inst->st.step, sizeof inst->st.step, 0);
	add_buf(&b, &inst->st.batch, sizeof inst->st.batch, 0);
	add_buf(&b, inst->st.rng.s, sizeof inst->st.rng.s, 0);
	flush_bufs(&b);
	d->bytes = 0;
	return 0;
}

int nnrt_dist_signal(nnrt_dist *d, int sig)
{
	int v = sig;
	if (d->tp->max_i32(d->comm, &v) != 0)
		abort();
	return v;
}

void nnrt_dist_report(const nnrt_dist *d)
{
	if (!d || d->rank != 0)
		return;
	double steps = d->steps ? (double)d->steps : 1;
	printf("\ndata-parallel exchange (%s, %d rank%s, %s): %lld exchanges, %.3f MB received and %.3f ms per step, "
	       "%.3f s in all; exposed (the team waits for it): %.3f s, hidden behind computation: 0 s\n",
	       d->tp->name, d->size, d->size == 1 ? "" : "s", d->allreduce ? "allreduce" : "ordered",
	       (long long)d->syncs, (double)d->bytes / steps / 1e6, d->seconds / steps * 1e3, d->seconds, d->seconds);
}

void nnrt_dist_free(nnrt_dist *d)
{
	if (!d)
		return;
	if (atomic_load_explicit(&bound, memory_order_relaxed) == d)
		nnrt_dist_bind(NULL, NULL);
	if (!d->owns_init && d->tp->free_comm)
		d->tp->free_comm(d->comm);
	free(d);
}

int nnrt_dist_finish(nnrt_dist *d, int rc)
{
	if (!d)
		return rc;
	fflush(stdout);
	fflush(stderr);
	if (atomic_load_explicit(&bound, memory_order_relaxed) == d)
		nnrt_dist_bind(NULL, NULL);
	d->tp->finish(d->comm, rc, 5.0, d->owns_init);
	free(d);
	return rc;
}
