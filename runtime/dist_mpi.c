/*
 * dist_mpi.c - the MPI transport of data-parallel training (dist.h), and
 * the embedding's nnrt_instance_set_mpi_comm (nnrt_mpi.h).  Built only
 * with NNC_MPI, into libnnrt_mpi, which nnc links before libnnrt.a when it
 * exists (compiler/link.c); libnnrt.a refers to the transport weakly, so
 * nothing else depends on MPI.
 *
 * Every collective goes through MPI's own algorithms, but only on bytes
 * (broadcasts, an allgather) except in the --allreduce fast path: the
 * values the update sums are summed by the generated code, in chunk order.
 * Three duplicates of the host communicator: one for the steps, one for
 * the last agreement at exit, so that a rank leaving early can never match
 * a step's broadcast by mistake, and one for the gradient buckets that move
 * while the backward pass runs (point-to-point messages, or non-blocking
 * sums with --allreduce), which must not be matched against the step's
 * broadcasts in between.
 */
#define _POSIX_C_SOURCE 200809L

#include "dist.h"
#include "nnrt_mpi.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mpi_comm {
	MPI_Comm work, exit;
	MPI_Comm grad;     /* the overlapped gradient exchange's messages and sums */
	MPI_Request *req;  /* its requests in flight */
	int nreq, cap;
} mpi_comm;

static MPI_Comm work(void *c) { return ((mpi_comm *)c)->work; }

static int mpi_launched(void)
{
	static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		if (getenv(vars[i]))
			return 1;
	return 0;
}

static mpi_comm *dup_comm(MPI_Comm from)
{
	mpi_comm *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	MPI_Comm_dup(from, &c->work);
	MPI_Comm_dup(from, &c->exit);
	MPI_Comm_dup(from, &c->grad);
	return c;
}

static int mpi_init(void **comm, char *err, size_t n)
{
	int inited = 0, provided = 0;
	MPI_Initialized(&inited);
	if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
		snprintf(err, n, "MPI_Init_thread failed");
		return -1;
	}
	mpi_comm *c = dup_comm(MPI_COMM_WORLD);
	if (!c) {
		snprintf(err, n, "out of memory");
		return -1;
	}
	*comm = c;
	return 0;
}

static int mpi_rank(void *c)
{
	int r = 0;
	MPI_Comm_rank(work(c), &r);
	return r;
}

static int mpi_size(void *c)
{
	int s = 1;
	MPI_Comm_size(work(c), &s);
	return s;
}

static int mpi_local_size(void *c)
{
	MPI_Comm local;
	int s = 1;
	if (MPI_Comm_split_type(work(c), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
		MPI_Comm_size(local, &s);
		MPI_Comm_free(&local);
	}
	return s;
}

/* MPI counts are int: buffers go in pieces of at most 1 GiB. */
#define PIECE ((int64_t)1 << 30)
enum { MAX_REQS = 512 };

static int mpi_bcast_many(void *c, int count, void *const *bufs, const int64_t *bytes, const int *roots)
{
	MPI_Request req[MAX_REQS];
	int n = 0;
	for (int i = 0; i < count; i++)
		for (int64_t off = 0; off < bytes[i]; off += PIECE) {
			int64_t len = bytes[i] - off < PIECE ? bytes[i] - off : PIECE;
			if (n == MAX_REQS) {
				if (MPI_Waitall(n, req, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
					return -1;
				n = 0;
			}
			if (MPI_Ibcast((char *)bufs[i] + off, (int)len, MPI_BYTE, roots[i], work(c), &req[n++]) !=
			    MPI_SUCCESS)
				return -1;
		}
	return n && MPI_Waitall(n, req, MPI_STATUSES_IGNORE) != MPI_SUCCESS ? -1 : 0;
}

static int mpi_allgather(void *c, const void *mine, void *all, int64_t bytes)
{
	return MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, work(c)) == MPI_SUCCESS ? 0 : -1;
}

static int allreduce(void *c, void *buf, int64_t n, MPI_Datatype t, size_t size)
{
	for (int64_t off = 0; off < n; off += INT_MAX / 8) {
		int64_t len = n - off < INT_MAX / 8 ? n - off : INT_MAX / 8;
		if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * (int64_t)size, (int)len, t, MPI_SUM, work(c)) !=
		    MPI_SUCCESS)
			return -1;
	}
	return 0;
}

static int mpi_allreduce_f32(void *c, float *buf, int64_t n) { return allreduce(c, buf, n, MPI_FLOAT, sizeof(float)); }
static int mpi_allreduce_f64(void *c, double *buf, int64_t n) { return allreduce(c, buf, n, MPI_DOUBLE, sizeof(double)); }

static int mpi_max_i32(void *c, int *v)
{
	return MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_INT, MPI_MAX, work(c)) == MPI_SUCCESS ? 0 : -1;
}

/* ---- the overlapped exchange: requests in flight on the grad communicator ---- */

static MPI_Request *new_req(mpi_comm *c)
{
	if (c->nreq == c->cap) {
		int cap = c->cap ? 2 * c->cap : 256;
		MPI_Request *r = realloc(c->req, sizeof *r * (size_t)cap);
		if (!r)
			return NULL;
		c->req = r;
		c->cap = cap;
	}
	return &c->req[c->nreq++];
}

/* A message in pieces of at most 1 GiB, all of one tag: MPI delivers the
 * messages of one source and tag in the order they were sent. */
static int p2p(void *comm, void *buf, int64_t bytes, int peer, int tag, int send)
{
	mpi_comm *c = comm;
	for (int64_t off = 0; off < bytes; off += PIECE) {
		int len = (int)(bytes - off < PIECE ? bytes - off : PIECE);
		MPI_Request *r = new_req(c);
		if (!r)
			return -1;
		int rc = send ? MPI_Isend((char *)buf + off, len, MPI_BYTE, peer, tag, c->grad, r)
		              : MPI_Irecv((char *)buf + off, len, MPI_BYTE, peer, tag, c->grad, r);
		if (rc != MPI_SUCCESS)
			return -1;
	}
	return 0;
}

static int mpi_isend(void *c, const void *buf, int64_t bytes, int dest, int tag)
{
	return p2p(c, (void *)(uintptr_t)buf, bytes, dest, tag, 1);
}

static int mpi_irecv(void *c, void *buf, int64_t bytes, int src, int tag) { return p2p(c, buf, bytes, src, tag, 0); }

static int mpi_iallreduce_f32(void *comm, float *buf, int64_t n)
{
	mpi_comm *c = comm;
	for (int64_t off = 0; off < n; off += INT_MAX / 8) {
		int len = (int)(n - off < INT_MAX / 8 ? n - off : INT_MAX / 8);
		MPI_Request *r = new_req(c);
		if (!r || MPI_Iallreduce(MPI_IN_PLACE, buf + off, len, MPI_FLOAT, MPI_SUM, c->grad, r) != MPI_SUCCESS)
			return -1;
	}
	return 0;
}

/* Open MPI moves a non-blocking message only inside an MPI call (it has no
 * progress thread: ompi_info says "OMPI progress: no"): each test is one. */
static int mpi_test(void *comm, int wait)
{
	mpi_comm *c = comm;
	int done = 1;
	if (c->nreq) {
		if (wait)
			done = MPI_Waitall(c->nreq, c->req, MPI_STATUSES_IGNORE) == MPI_SUCCESS ? 1 : -1;
		else if (MPI_Testall(c->nreq, c->req, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
			done = -1;
	}
	if (done == 1)
		c->nreq = 0;
	return done;
}

static int mpi_tag_ub(void *comm)
{
	int *ub = NULL, flag = 0;
	MPI_Comm_get_attr(((mpi_comm *)comm)->grad, MPI_TAG_UB, &ub, &flag);
	return flag && ub ? *ub : 32767;
}

static void mpi_free_comm(void *comm)
{
	mpi_comm *c = comm;
	if (!c)
		return;
	int fin = 0;
	MPI_Finalized(&fin);
	if (!fin) {
		MPI_Comm_free(&c->work);
		MPI_Comm_free(&c->exit);
		MPI_Comm_free(&c->grad);
	}
	free(c->req);
	free(c);
}

/* A failed rank waits for the others at the exit communicator's barrier:
 * if they all failed too (a bad checkpoint every rank saw, an interruption
 * every rank agreed on), the job ends cleanly; if not, they are blocked in
 * a step that will never complete, and MPI_Abort ends the whole job (the
 * launcher names the rank).  Never a hang either way. */
static void mpi_finish(void *comm, int status, double wait_s, int owns_init)
{
	mpi_comm *c = comm;
	int size = mpi_size(c), done = 1;
	if (status != 0 && size > 1) {
		MPI_Request req;
		MPI_Ibarrier(c->exit, &req);
		double t0 = nnrt_now();
		done = 0;
		while (!done && nnrt_now() - t0 < wait_s) {
			MPI_Test(&req, &done, MPI_STATUS_IGNORE);
			if (!done) {
				struct timespec ts = {0, 1000000};
				nanosleep(&ts, NULL);
			}
		}
		if (!done) {
			fprintf(stderr, "%s: stopping every rank: this rank failed (status %d) and the others did not\n",
			        nnrt_prog(), status);
			fflush(stderr);
			MPI_Abort(MPI_COMM_WORLD, status);
		}
	}
	mpi_free_comm(c);
	if (owns_init)
		MPI_Finalize();
}

const nnrt_dist_transport nnrt_dist_mpi = {
	.name = "MPI",
	.launched = mpi_launched,
	.init = mpi_init,
	.rank = mpi_rank,
	.size = mpi_size,
	.local_size = mpi_local_size,
	.bcast_many = mpi_bcast_many,
	.allgather = mpi_allgather,
	.allreduce_f32 = mpi_allreduce_f32,
	.allreduce_f64 = mpi_allreduce_f64,
	.max_i32 = mpi_max_i32,
	.isend = mpi_isend,
	.irecv = mpi_irecv,
	.iallreduce_f32 = mpi_iallreduce_f32,
	.test = mpi_test,
	.tag_ub = mpi_tag_ub,
	.finish = mpi_finish,
	.free_comm = mpi_free_comm,
};

int nnrt_instance_set_mpi_comm(nnrt_instance *inst, MPI_Comm comm, int flags)
{
	if (!inst)
		return NNRT_ERR_ARG;
	nnrt_dist_free(inst->dist);
	inst->dist = NULL;
	if (comm == MPI_COMM_NULL)
		return NNRT_OK;
	mpi_comm *c = dup_comm(comm);
	nnrt_dist *d = c ? nnrt_dist_new(&nnrt_dist_mpi, c, inst->m) : NULL;
	if (!d) {
		mpi_free_comm(c);
		return NNRT_ERR_NOMEM;
	}
	d->allreduce = (flags & NNRT_MPI_ALLREDUCE) != 0;
	d->overlap = (flags & NNRT_MPI_NO_OVERLAP) == 0;
	d->rs = (flags & NNRT_MPI_REDUCE_SCATTER) != 0;
	int mute = nnrt_mute_errors(inst->on_error != NULL);
	int rc = nnrt_dist_setup(d, inst, (uint64_t)flags, 0); /* every rank's flags alike */
	nnrt_mute_errors(mute);
	if (rc) {
		nnrt_dist_free(d);
		snprintf(inst->msg, sizeof inst->msg, "set_mpi_comm: %s", nnrt_last_error());
		if (inst->on_error)
			inst->on_error(inst->on_error_ctx, NNRT_ERR_MODEL, inst->msg);
		return NNRT_ERR_MODEL;
	}
	inst->dist = d;
	return NNRT_OK;
}
