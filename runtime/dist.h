/*
 * dist.h - data-parallel training over several processes (ranks), shared by
 * the runtime's own files: dist.c (the ordered exchange of the generated
 * bodies, the trainer's start-up checks and exit), dist_mpi.c (the MPI
 * transport, in libnnrt_mpi) and their callers train.c and api.c.  Never
 * seen by generated code (nnrt.h declares the two calls it makes) nor by
 * programs that do not use MPI (nnrt_mpi.h is the embedding's header).
 * docs/distributed.md explains the design.
 */
#ifndef NNRT_DIST_H
#define NNRT_DIST_H

#include "nnrt_internal.h"

#include <stdatomic.h>

/* What dist.c needs of a message-passing library: collectives on an
 * opaque communicator, all called from one thread at a time. */
typedef struct nnrt_dist_transport {
	const char *name; /* "MPI" */
	/* Whether this process was started by the library's launcher (mpirun,
	 * srun): the trainer then joins the job, else it runs as one process. */
	int (*launched)(void);
	/* Joins the job (MPI_Init) and makes the trainer's communicator: 0, or
	 * non-zero with the reason in err. */
	int (*init)(void **comm, char *err, size_t n);
	int (*rank)(void *comm);
	int (*size)(void *comm);
	/* Ranks on this host (for the default thread count). */
	int (*local_size)(void *comm);
	/* count broadcasts at once, buffer i of bytes[i] bytes from rank roots[i]:
	 * in this order on every rank, complete on return.  Bytes only: no
	 * arithmetic, so the library's algorithm cannot change a value. */
	int (*bcast_many)(void *comm, int count, void *const *bufs, const int64_t *bytes, const int *roots);
	/* Every rank's `bytes` bytes at mine, into all[rank * bytes]. */
	int (*allgather)(void *comm, const void *mine, void *all, int64_t bytes);
	/* In-place sums over the ranks (the fast path, --allreduce). */
	int (*allreduce_f32)(void *comm, float *buf, int64_t n);
	int (*allreduce_f64)(void *comm, double *buf, int64_t n);
	/* The largest of every rank's v. */
	int (*max_i32)(void *comm, int *v);
	/* The overlapped exchange of gradient buckets, on a communicator of its
	 * own: non-blocking point-to-point messages (bytes, matched by source
	 * and tag) and in-place sums (--allreduce, posted in the same order on
	 * every rank), kept by the transport until `test` sees them complete.
	 * test: 1 when every posted request is complete (they are then
	 * forgotten), 0 if some are not (wait = 0), -1 on an error; wait = 1
	 * blocks until they are.  tag_ub: the largest tag. */
	int (*isend)(void *comm, const void *buf, int64_t bytes, int dest, int tag);
	int (*irecv)(void *comm, void *buf, int64_t bytes, int src, int tag);
	int (*iallreduce_f32)(void *comm, float *buf, int64_t n);
	int (*test)(void *comm, int wait);
	int (*tag_ub)(void *comm);
	/* Leaves the job: status 0 finalises after every rank arrived; non-zero
	 * waits up to `wait_s` seconds for the others to arrive (a failure all
	 * ranks saw) and else stops the whole job (MPI_Abort), never hanging. */
	void (*finish)(void *comm, int status, double wait_s, int owns_init);
	void (*free_comm)(void *comm);
} nnrt_dist_transport;

/* libnnrt_mpi's transport, if linked (a weak reference: NULL otherwise). */
extern const nnrt_dist_transport nnrt_dist_mpi __attribute__((weak));

/* Chunks whose buckets can be sent while the step runs; a chunk beyond
 * (a model compiled with more chunks) sends its buckets at the end. */
#define NNRT_DIST_MAX_CHUNKS 1024

/* A data-parallel run, of one trainer or one embedded instance. */
typedef struct nnrt_dist {
	const nnrt_dist_transport *tp;
	void *comm;
	int rank, size;
	int owns_init;          /* this runtime joined the job (the trainer): it leaves it */
	int allreduce;          /* --allreduce: MPI sums the gradients (fast, not bit-identical) */
	int overlap;            /* exchange gradient buckets during the backward pass (not --no-overlap) */
	int rs;                 /* --reduce-scatter: the ordered sums by slices, then an allgather */
	int check;              /* NNRT_DIST_CHECK=1: every sent bucket must be unchanged at the step's end */
	int early;              /* NNRT_DIST_CHECK=early: send buckets too early (tests the check) */
	int64_t state_floats;   /* of the model: the state tensors chunk 0's rank moves */
	const nnrt_step_args *args; /* the step being run (nnrt_dist_bind) */
	/* the gradient exchange of the step in flight (dist.c): buckets of chunk
	 * k complete (written by the thread running chunk k), buckets sent (by
	 * thread 0, which alone calls the transport) */
	_Atomic int32_t ready[NNRT_DIST_MAX_CHUNKS];
	int32_t sent[NNRT_DIST_MAX_CHUNKS];
	int64_t sent_sum;       /* --allreduce: buckets summed and posted */
	const int64_t *table;   /* the step's FINAL_BUCKETS table, once open */
	int open, strict, inflight;
	int tag_ub;
	double t_mark;          /* last progress call with requests in flight */
	uint64_t *hashes;       /* NNRT_DIST_CHECK: each sent bucket's, [chunk - first own][bucket] */
	int64_t nhashes;
	/* counters for --profile: exchanges, their bytes and seconds (exposed:
	 * the team waits for the exchange; overlapped: it was in flight while
	 * the backward pass ran) */
	int64_t syncs, bytes, steps, buckets;
	double seconds, overlapped;
} nnrt_dist;

/* The owner of chunk k of `chunks` among `size` ranks: rank r runs the
 * chunks [r K / size, (r + 1) K / size). */
int nnrt_dist_owner(int64_t k, int64_t chunks, int size);

/* Makes d the data-parallel run of the steps at a (NULL d: none) until the
 * next bind; the generated bodies' calls find it there. */
void nnrt_dist_bind(nnrt_dist *d, const nnrt_step_args *a);

/* The trainer: joins the job if launched by an MPI launcher and the
 * transport is linked, returning its run (or NULL: one process).  *rc
 * receives non-zero (reported) if the job cannot be joined, or if the
 * launcher started several ranks of a binary built without MPI. */
nnrt_dist *nnrt_dist_launch(const nnrt_model *m, int *rc);
/* The embedding: a run on a transport's communicator (nnrt_mpi.h). */
nnrt_dist *nnrt_dist_new(const nnrt_dist_transport *tp, void *comm, const nnrt_model *m);
/* Start-up checks, collective: every rank runs the same model object and
 * configuration (`config`: a hash of what must agree, e.g. flags and data
 * sizes) and holds the same state after loading a checkpoint; then rank 0's
 * parameters, optimizer state, state tensors and counters go to all.
 * Non-zero, reported on every rank naming the ranks that differ, if not. */
int nnrt_dist_setup(nnrt_dist *d, nnrt_instance *inst, uint64_t config, int loaded);
/* The largest signal number any rank caught (every rank stops together). */
int nnrt_dist_signal(nnrt_dist *d, int sig);
/* --profile: the exchanges' count, bytes and time per step. */
void nnrt_dist_report(const nnrt_dist *d);
/* Leaves the job with status rc (nnrt_dist_transport.finish) and frees d. */
int nnrt_dist_finish(nnrt_dist *d, int rc);
void nnrt_dist_free(nnrt_dist *d);

/* A 64-bit FNV-1a hash of n bytes, continuing h (start: NNRT_HASH0). */
#define NNRT_HASH0 1469598103934665603ull
uint64_t nnrt_hash(uint64_t h, const void *p, size_t n);

#endif
