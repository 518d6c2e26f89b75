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
 * The partial gradients do not wait for the sync: they go in buckets as
 * the backward pass completes them (nnrt_dist_ready, "The overlapped
 * gradient exchange" below), and the sync before the update waits for the
 * last ones.
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
static void reduce_fast(nnrt_dist *d, nnrt_step_args *a, const int64_t *t, int64_t active, int grads)
{
	int64_t lo = (int64_t)d->rank * t[NNRT_DIST_CHUNKS] / d->size;
	int64_t hi = (int64_t)(d->rank + 1) * t[NNRT_DIST_CHUNKS] / d->size;
	if (hi > active)
		hi = active;
	if (t[NNRT_DIST_WS_PARTIALS] >= 0 && !grads) { /* summed in buckets: the others' partials become -0 */
		for (int64_t k = 1; k < active; k++) {
			float *s = chunk_grads(a, t, k);
			for (int64_t i = 0; i < t[NNRT_DIST_PARAM_FLOATS]; i++)
				s[i] = -0.0f;
		}
	} else if (t[NNRT_DIST_WS_PARTIALS] >= 0) {
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

/* ---- The overlapped gradient exchange (FINAL_BUCKETS) ----
 *
 * A train body's FINAL table lists buckets: contiguous runs of a chunk's
 * gradients, the last layers' first, in the order the backward pass
 * completes them (cg_dist.c).  After each op of a chunk, the thread running
 * it says how many of the chunk's buckets are complete (nnrt_dist_ready);
 * thread 0 (the only thread that calls the transport: MPI_THREAD_FUNNELED)
 * sends them at once and tests the messages in flight at each of its own op
 * boundaries, since Open MPI moves a message only inside an MPI call.  The
 * FINAL sync sends what is left and waits.  Ordered path: the owner of
 * chunk k sends each bucket to every other rank, which posted the matching
 * receives into chunk k's partials at the step's first call: bytes only,
 * so every rank sums the same partials as one process.  --allreduce: once
 * every chunk of the rank has bucket b, the rank sums them (in chunk order)
 * into grads and posts MPI_Iallreduce on it, buckets in the same order on
 * every rank.  The messages and sums go on a communicator of their own, so
 * that the batch statistics' broadcasts in between cannot be confused with
 * them. */

static int64_t nbuckets(const int64_t *t) { return t[NNRT_DIST_NBUCKETS]; }
static int64_t bucket_off(const int64_t *t, int64_t b) { return t[NNRT_DIST_BUCKET0 + 2 * b]; }
static int64_t bucket_bytes(const int64_t *t, int64_t b)
{
	return t[NNRT_DIST_BUCKET0 + 2 * b + 1] * (int64_t)sizeof(float);
}

/* This rank's chunks that hold samples in this step: [*lo, *hi). */
static void own_active(const nnrt_dist *d, const nnrt_step_args *a, const int64_t *t, int64_t *lo, int64_t *hi)
{
	int64_t chunks = t[NNRT_DIST_CHUNKS], cb = t[NNRT_DIST_CBATCH];
	int64_t active = (a->n + cb - 1) / cb;
	*lo = (int64_t)d->rank * chunks / d->size;
	*hi = (int64_t)(d->rank + 1) * chunks / d->size;
	if (*hi > active)
		*hi = active;
	if (*lo > *hi)
		*lo = *hi;
}

/* Bucket b of chunk k's tag: unique in a step unless chunks x buckets
 * exceed the transport's tags, where the buckets are then sent in order
 * (d->strict), and messages of one source and tag arrive in order. */
static int tag_of(const nnrt_dist *d, const int64_t *t, int64_t k, int64_t b)
{
	return (int)(1 + (k * nbuckets(t) + b) % d->tag_ub);
}

/* --reduce-scatter: rank r's slice of bucket b, [*lo, *lo + *n) floats */
static void slice_of(const nnrt_dist *d, const int64_t *t, int64_t b, int r, int64_t *lo, int64_t *n)
{
	int64_t off = bucket_off(t, b), len = bucket_bytes(t, b) / (int64_t)sizeof(float);
	*lo = off + len * r / d->size;
	*n = off + len * (r + 1) / d->size - *lo;
}

static int64_t ready_of(nnrt_dist *d, int64_t k)
{
	return k < NNRT_DIST_MAX_CHUNKS ? atomic_load_explicit(&d->ready[k], memory_order_acquire) : 0;
}

static void started(nnrt_dist *d)
{
	if (!d->inflight) {
		d->inflight = 1;
		d->t_mark = nnrt_now();
	}
	d->buckets++;
}

static void open_step(nnrt_dist *d, nnrt_step_args *a, const int64_t *t)
{
	int64_t chunks = t[NNRT_DIST_CHUNKS], cb = t[NNRT_DIST_CBATCH], nb = nbuckets(t);
	int64_t active = (a->n + cb - 1) / cb, lo, hi;
	own_active(d, a, t, &lo, &hi);
	d->open = 1;
	d->table = t;
	d->sent_sum = 0;
	for (int64_t k = lo; k < hi && k < NNRT_DIST_MAX_CHUNKS; k++)
		d->sent[k] = 0;
	if (!d->tag_ub)
		d->tag_ub = d->tp->tag_ub(d->comm) > 1 ? d->tp->tag_ub(d->comm) - 1 : 1;
	d->strict = chunks * nb >= d->tag_ub;
	if (d->check && (hi - lo) * nb > d->nhashes) {
		free(d->hashes);
		d->nhashes = (hi - lo) * nb;
		d->hashes = calloc((size_t)d->nhashes, sizeof *d->hashes);
		if (!d->hashes) {
			nnrt_sys_error("out of memory");
			abort();
		}
	}
	if (d->allreduce)
		return;
	for (int64_t k = 0; k < active; k++) {
		int root = nnrt_dist_owner(k, chunks, d->size);
		if (root == d->rank)
			continue;
		for (int64_t b = 0; b < nb; b++) {
			int64_t lo = bucket_off(t, b), n = bucket_bytes(t, b) / (int64_t)sizeof(float);
			if (d->rs) /* only this rank's slice, which it sums */
				slice_of(d, t, b, d->rank, &lo, &n);
			if (n && d->tp->irecv(d->comm, chunk_grads(a, t, k) + lo, n * (int64_t)sizeof(float), root,
			                      tag_of(d, t, k, b)) != 0)
				abort();
			d->bytes += n * (int64_t)sizeof(float);
		}
	}
}

/* The chunks whose bucket the check hashes: --allreduce sums into chunk
 * 0's partial (grads), which therefore changes after it is sent. */
static int64_t first_hashed(const nnrt_dist *d, int64_t lo) { return d->allreduce && lo == 0 ? 1 : lo; }

static void hash_bucket(nnrt_dist *d, nnrt_step_args *a, const int64_t *t, int64_t k, int64_t lo, int64_t b)
{
	d->hashes[(k - lo) * nbuckets(t) + b] =
		nnrt_hash(NNRT_HASH0, chunk_grads(a, t, k) + bucket_off(t, b), (size_t)bucket_bytes(t, b));
}

/* Ordered: bucket b of chunk k to every other rank. */
static void send_bucket(nnrt_dist *d, nnrt_step_args *a, const int64_t *t, int64_t k, int64_t lo, int64_t b)
{
	for (int r = 0; r < d->size; r++) {
		int64_t lo = bucket_off(t, b), n = bucket_bytes(t, b) / (int64_t)sizeof(float);
		if (d->rs) /* rank r's slice, which rank r sums */
			slice_of(d, t, b, r, &lo, &n);
		if (r != d->rank && n &&
		    d->tp->isend(d->comm, chunk_grads(a, t, k) + lo, n * (int64_t)sizeof(float), r, tag_of(d, t, k, b)) != 0)
			abort();
	}
	if (d->check)
		hash_bucket(d, a, t, k, lo, b);
	started(d);
}

/* --allreduce: grads' bucket b = the sum of this rank's chunks' (in chunk
 * order, as reduce_fast), then summed over the ranks. */
static void sum_bucket(nnrt_dist *d, nnrt_step_args *a, const int64_t *t, int64_t lo, int64_t hi, int64_t b)
{
	int64_t off = bucket_off(t, b), n = bucket_bytes(t, b) / (int64_t)sizeof(float);
	float *g = a->grads + off;
	for (int64_t k = first_hashed(d, lo); d->check && k < hi; k++)
		hash_bucket(d, a, t, k, lo, b);
	if (lo >= hi)
		memset(g, 0, (size_t)n * sizeof(float));
	else if (lo > 0)
		memcpy(g, chunk_grads(a, t, lo) + off, (size_t)n * sizeof(float));
	for (int64_t k = lo + 1; k < hi; k++) {
		const float *s = chunk_grads(a, t, k) + off;
		for (int64_t i = 0; i < n; i++)
			g[i] += s[i];
	}
	if (d->tp->iallreduce_f32(d->comm, g, n) != 0)
		abort();
	d->bytes += 2 * (d->size - 1) * n * (int64_t)sizeof(float) / d->size;
	started(d);
}

/* Thread 0: sends the complete buckets (all of them when `final`) and lets
 * the transport move the messages in flight. */
static void pump(nnrt_dist *d, nnrt_step_args *a, const int64_t *t, int final)
{
	if (!d->open)
		open_step(d, a, t);
	if (d->inflight && !final) { /* in flight since the last call: behind an op */
		double now = nnrt_now();
		d->overlapped += now - d->t_mark;
		d->t_mark = now;
	}
	int64_t lo, hi, nb = nbuckets(t);
	own_active(d, a, t, &lo, &hi);
	if (d->allreduce) {
		for (; d->sent_sum < nb; d->sent_sum++) {
			for (int64_t k = lo; k < hi && !final; k++)
				if (ready_of(d, k) <= d->sent_sum)
					goto sent;
			sum_bucket(d, a, t, lo, hi, d->sent_sum);
		}
	} else {
		for (int64_t k = lo; k < hi; k++) {
			int64_t r = final ? nb : ready_of(d, k), s = k < NNRT_DIST_MAX_CHUNKS ? d->sent[k] : 0;
			for (; s < r; s++)
				send_bucket(d, a, t, k, lo, s);
			if (k < NNRT_DIST_MAX_CHUNKS)
				d->sent[k] = (int32_t)s;
			if (d->strict && s < nb)
				break;
		}
	}
sent:
	if (!final && d->inflight) {
		int rc = d->tp->test(d->comm, 0);
		if (rc < 0)
			abort();
		d->inflight = rc == 0;
	}
}

/* NNRT_DIST_CHECK: a bucket that changed after it was sent was sent
 * before the backward pass had completed it. */
static void verify(nnrt_dist *d, nnrt_step_args *a, const int64_t *t)
{
	int64_t lo, hi, nb = nbuckets(t);
	own_active(d, a, t, &lo, &hi);
	for (int64_t k = first_hashed(d, lo); k < hi; k++)
		for (int64_t b = 0; b < nb; b++) {
			uint64_t h = nnrt_hash(NNRT_HASH0, chunk_grads(a, t, k) + bucket_off(t, b), (size_t)bucket_bytes(t, b));
			if (h != d->hashes[(k - lo) * nb + b]) {
				nnrt_error("internal error: bucket %lld of chunk %lld's gradients (floats %lld to %lld) changed "
				           "after it was sent: its exchange started before the backward pass completed it "
				           "(NNRT_DIST_CHECK)",
				           (long long)b, (long long)k, (long long)bucket_off(t, b),
				           (long long)(bucket_off(t, b) + bucket_bytes(t, b) / 4));
				fflush(stderr);
				abort();
			}
		}
}

/* --reduce-scatter, once every rank holds its slice of every chunk's
 * buckets: the rank sums its slices in chunk order into grads (the very
 * additions the update would make: grads + chunk 1 + chunk 2 ...), sends
 * the sums to every other rank and receives theirs (an allgather of bytes),
 * and the other chunks' partials become -0, which the update adds without
 * changing a value.  Each rank receives (K - K/N) P/N + (N - 1) P/N floats
 * instead of (K - K/N) P: a ring's 2 (N - 1)/N P when K = N. */
static void rs_finish(nnrt_dist *d, nnrt_step_args *a, const int64_t *t)
{
	int64_t cb = t[NNRT_DIST_CBATCH], active = (a->n + cb - 1) / cb, nb = nbuckets(t), lo, n;
	float *g = a->grads;
	for (int64_t b = 0; b < nb; b++) {
		slice_of(d, t, b, d->rank, &lo, &n);
		for (int64_t k = 1; k < active; k++) {
			const float *s = chunk_grads(a, t, k);
			for (int64_t i = lo; i < lo + n; i++)
				g[i] += s[i];
		}
	}
	for (int64_t b = 0; b < nb; b++)
		for (int r = 0; r < d->size; r++) {
			if (r == d->rank)
				continue;
			int64_t rlo, rn;
			slice_of(d, t, b, r, &rlo, &rn);
			slice_of(d, t, b, d->rank, &lo, &n);
			int tag = (int)(1 + b % d->tag_ub);
			if ((rn && d->tp->irecv(d->comm, g + rlo, rn * (int64_t)sizeof(float), r, tag) != 0) ||
			    (n && d->tp->isend(d->comm, g + lo, n * (int64_t)sizeof(float), r, tag) != 0))
				abort();
			d->bytes += rn * (int64_t)sizeof(float);
		}
	if (d->tp->test(d->comm, 1) != 1)
		abort();
	for (int64_t k = 1; k < active; k++) {
		float *s = chunk_grads(a, t, k);
		for (int64_t i = 0; i < t[NNRT_DIST_PARAM_FLOATS]; i++)
			s[i] = -0.0f;
	}
}

/* The FINAL sync's part: the rest of the buckets, then the wait. */
static void finish_buckets(nnrt_dist *d, nnrt_step_args *a, const int64_t *t)
{
	if (d->inflight)
		d->overlapped += nnrt_now() - d->t_mark;
	pump(d, a, t, 1);
	if (d->tp->test(d->comm, 1) != 1)
		abort();
	d->inflight = 0;
	if (d->check)
		verify(d, a, t);
	if (d->rs && !d->allreduce)
		rs_finish(d, a, t);
	int64_t chunks = t[NNRT_DIST_CHUNKS];
	for (int64_t k = 0; k < chunks && k < NNRT_DIST_MAX_CHUNKS; k++)
		atomic_store_explicit(&d->ready[k], 0, memory_order_relaxed);
	d->open = 0;
	d->table = NULL;
}

void nnrt_dist_ready(nnrt_step_args *a, int32_t tid, int64_t chunk, int64_t nready, const int64_t *table)
{
	nnrt_dist *d = dist_of(a);
	if (!d || !d->overlap)
		return;
	if (d->early) /* the test of the check: every bucket "complete" after the chunk's first op */
		nready = nbuckets(table);
	if (chunk >= 0 && chunk < NNRT_DIST_MAX_CHUNKS && nready > 0)
		atomic_store_explicit(&d->ready[chunk], (int32_t)nready, memory_order_release);
	if (tid == 0)
		pump(d, a, table, 0);
}

static void exchange(nnrt_dist *d, nnrt_step_args *a, const int64_t *t)
{
	double t0 = nnrt_now();
	int64_t chunks = t[NNRT_DIST_CHUNKS], cb = t[NNRT_DIST_CBATCH];
	int64_t active = (a->n + cb - 1) / cb;
	int kind = (int)t[NNRT_DIST_KIND];
	bufs b = {.d = d};
	if (kind == NNRT_DIST_FINAL_BUCKETS) {
		/* the gradients went (or go now) in buckets; the metrics and the
		 * state as below */
		finish_buckets(d, a, t);
		if (d->allreduce) {
			reduce_fast(d, a, t, active, 0);
		} else if (t[NNRT_DIST_WS_METRICS] >= 0) {
			for (int64_t k = 0; k < active; k++)
				add_buf(&b, chunk_metrics(a, t, k), 2 * (int64_t)sizeof(double), nnrt_dist_owner(k, chunks, d->size));
		}
		kind = NNRT_DIST_FINAL;
	} else if (kind == NNRT_DIST_PARTIALS) {
		for (int64_t k = 0; k < active; k++) {
			int root = nnrt_dist_owner(k, chunks, d->size);
			float *base = a->ws + t[NNRT_DIST_WS_CHUNK0] + k * t[NNRT_DIST_WS_CHUNK];
			for (int64_t i = 0; i < t[NNRT_DIST_COUNT]; i++)
				add_buf(&b, base + t[NNRT_DIST_TENSORS + 2 * i],
				        t[NNRT_DIST_TENSORS + 2 * i + 1] * (int64_t)sizeof(float), root);
		}
	} else if (d->allreduce) {
		reduce_fast(d, a, t, active, 1);
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
	if (kind == NNRT_DIST_FINAL && t[NNRT_DIST_WS_PARTIALS] >= 0 && a->state)
		add_buf(&b, a->state, d->state_floats * (int64_t)sizeof(float), nnrt_dist_owner(0, chunks, d->size));
	flush_bufs(&b);
	d->syncs++;
	if (kind == NNRT_DIST_FINAL && t[NNRT_DIST_WS_PARTIALS] >= 0)
		d->steps++; /* training steps (the evaluation's exchanges count in their time) */
	d->seconds += nnrt_now() - t0;
}

void nnrt_dist_sync(nnrt_step_args *a, int32_t tid, int32_t nthreads, const int64_t *table)
{
	(void)nthreads;
	nnrt_dist *d = dist_of(a);
	if (!d)
		return;
	if (tid == 0) {
		if (d->open && table[NNRT_DIST_KIND] == NNRT_DIST_PARTIALS)
			pump(d, a, d->table, 0); /* one more chance for the buckets in flight */
		exchange(d, a, table);
	}
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
	d->overlap = 1;
	const char *check = getenv("NNRT_DIST_CHECK");
	d->check = check && *check && strcmp(check, "0") != 0;
	d->early = check && !strcmp(check, "early");
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
		("another model object than rank 0 (compiled from another .nn file, or with other nnc options: "
		 "every rank must run the same binary)"),
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
	printf("\ndata-parallel exchange (%s, %d rank%s, %s, %s): %lld exchanges, %.3f MB received and %.1f gradient "
	       "buckets sent per step\nexchange: %.3f ms exposed, %.3f ms overlapped per step (%.3f s exposed, %.3f s "
	       "overlapped in all; exposed: the team waits for it; overlapped: in flight while the forward and backward "
	       "passes ran)\n",
	       d->tp->name, d->size, d->size == 1 ? "" : "s",
	       d->allreduce ? "allreduce" : d->rs ? "ordered reduce-scatter" : "ordered",
	       d->overlap ? "overlapped" : "not overlapped", (long long)d->syncs, (double)d->bytes / steps / 1e6,
	       (double)d->buckets / steps, d->seconds / steps * 1e3, d->overlapped / steps * 1e3, d->seconds,
	       d->overlapped);
}

void nnrt_dist_free(nnrt_dist *d)
{
	if (!d)
		return;
	if (atomic_load_explicit(&bound, memory_order_relaxed) == d)
		nnrt_dist_bind(NULL, NULL);
	if (!d->owns_init && d->tp->free_comm)
		d->tp->free_comm(d->comm);
	free(d->hashes);
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
	free(d->hashes);
	free(d);
	return rc;
}
