/*
 * nnrt_mpi.h - data-parallel training of an embedded model over MPI: the
 * one part of the runtime's API that needs <mpi.h>, kept out of nnrt.h so
 * that programs without MPI never see it.  Link with libnnrt_mpi (CMake:
 * nnc::nnrt_mpi; by hand: -lnnrt_mpi -lnnrt and the MPI library, e.g. with
 * mpicc).  docs/embedding.md and docs/distributed.md describe the use.
 */
#ifndef NNRT_MPI_H
#define NNRT_MPI_H

#include <mpi.h>

#include "nnrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* nnrt_instance_set_mpi_comm's flags. */
enum {
	NNRT_MPI_ALLREDUCE = 1, /* sum the gradients with MPI_Allreduce: fewer bytes for many ranks, but
	                         * results then depend on the number of ranks (not bit-identical) */
	NNRT_MPI_NO_OVERLAP = 2, /* exchange the gradients after the backward pass, not during it (the same
	                          * results; for measurements) */
	NNRT_MPI_REDUCE_SCATTER = 4, /* the ordered exchange as a reduce-scatter (each rank sums a slice in chunk
	                              * order) and an allgather: a ring's bytes, still bit-identical */
};

/* Makes inst one of the ranks of `comm` (the host's communicator; the
 * runtime keeps a duplicate, so the host's own traffic never mixes with
 * it).  Collective: every rank of comm calls it, with an instance of the
 * same model object.  Refused (NNRT_ERR_MODEL, on every rank) if the
 * ranks' model objects differ.  Rank 0's parameters, optimizer state,
 * state tensors and counters are then copied to every rank.
 *
 * After it, nnrt_instance_train_step and nnrt_instance_evaluate are
 * collective too: every rank calls them in the same order with the same
 * global batch (x, y, n); each rank computes its share of the batch's
 * chunks (nnc --chunks K, K >= the ranks) and the ranks exchange their
 * results, so that every rank's parameters after a step are byte for
 * byte those of one process running the same steps (without
 * NNRT_MPI_ALLREDUCE).  Inference stays local.  comm = MPI_COMM_NULL
 * returns inst to running alone.  MPI must be initialised (at least
 * MPI_THREAD_FUNNELED, with the calls made from the thread that
 * initialised it) and stay so until the instance is freed or detached. */
int nnrt_instance_set_mpi_comm(nnrt_instance *inst, MPI_Comm comm, int flags);

#ifdef __cplusplus
}
#endif
#endif
