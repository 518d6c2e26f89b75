/*
 * jit_harness.h - running generated code inside a test process.
 *
 * A test compiles a program string through the same pipeline as nnc
 * (parse, sema, autodiff, inference tail, [fuse], plan, lower), optimises the
 * module for the host CPU, JIT-compiles it with MCJIT and calls the model's
 * bodies through nnrt_run() on arrays it owns.  Tests link with -rdynamic so
 * that the JIT finds nnrt_barrier in the test executable.
 */
#ifndef NNC_TEST_JIT_HARNESS_H
#define NNC_TEST_JIT_HARNESS_H

#include <llvm-c/Core.h>
#include <llvm-c/ExecutionEngine.h>
#include <stdbool.h>
#include <stdint.h>

#include "ir.h"
#include "nnrt.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* splitmix64: deterministic test data */
typedef struct rng {
	uint64_t s;
} rng;
uint64_t rng_next(rng *r);
double rng_uniform(rng *r, double lo, double hi); /* uniform in [lo, hi) */

/* A program text that claims to live at `path` (arena memory). */
nnc_source *th_make_source(const char *path, const char *text);

/* The driver's pipeline up to the memory plan, for a program text that
 * claims to live at `path`; fails the test with the diagnostics if the
 * program does not compile, or if the plan fails th_check_plan. */
ir_graph *th_build_graph(const char *path, const char *text, bool fuse);
/* The training configuration sema produced beside g (a graph of th_build_graph). */
const nnc_train_config *th_config(const ir_graph *g);
/* Chunks th_build_graph asks the planner for (nnc --chunks); 0: the default. */
extern int64_t th_chunks;
/* Register-tile budget th_jit lowers with (cg_options.vacc): 0, the host's;
 * 24 or 6 give the AVX-512 or the AVX2 tiles on any host. */
extern int th_vacc;
/* Cache sizes th_jit blocks the dense products for (cg_options.l1_bytes,
 * l2_bytes): 0, the host's; small ones force the blocked paths on small shapes. */
extern int64_t th_l1, th_l2;
/* If set, th_build_graph calls it on sema's graph before autodiff: a test
 * adds internal nodes that no surface syntax makes (state, STEP_COUNT). */
extern void (*th_graph_hook)(ir_graph *g);
/* If set, th_build_graph calls it after fusion, before the plan (what the
 * driver does there with --inference-only), instead of the driver's pass
 * there for a training build: */
extern void (*th_plan_hook)(ir_graph *g);
/* with fusion, th_build_graph folds batchnorms into their layers for the
 * eval step and inference (nnc_fold_batchnorm_eval), as the driver does;
 * default true, false keeps the unfolded eval lowering. */
extern bool th_fold_eval;
/* th_jit lowers with the owned gradient tail (cg.c; cg_options.no_owned); default true. */
extern bool th_owned;
/* th_jit lowers with bf16 dense products (cg_options.bf16); default false. */
extern bool th_bf16;

/* The memory plan checker: the regions of the workspace (unbatched tensors,
 * partial gradients, partial metrics, chunks) follow each other; parameters
 * and gradients sit at their parameter's place; no two workspace tensors of
 * nodes [lo, hi) that are live together share memory.  NULL, or the first
 * violation (arena).  th_build_graph and th_jit run it on every graph
 * (th_check_plan fails the test). */
const char *th_plan_violation(ir_graph *g, unsigned entries);
void th_check_plan(ir_graph *g);

typedef struct jitted {
	ir_graph *g;
	LLVMContextRef ctx;
	LLVMExecutionEngineRef ee; /* owns the module */
	const nnrt_model *m;
} jitted;

/* Lowers g (reference kernels if `naive`), verifies, runs nnc's -O2 pipeline for
 * the host (default<O0> unless `optimise`) and JIT-compiles it. */
jitted th_jit(ir_graph *g, bool naive, bool optimise);
void th_jit_free(jitted *j);

/* Zeroed, 64-byte aligned floats (at least one vector); free() them. */
float *th_falloc(int64_t n);

/* The model's four arrays plus one batch of inputs, labels and outputs. */
typedef struct state {
	const nnrt_model *m;
	float *params, *grads, *opt, *ws, *x, *out;
	float *st;       /* the model's state (nnrt_model.state), at its initial values */
	void *y;         /* int32 classes or float targets */
	int64_t out_cap; /* floats in out: the batch plus a canary zone */
	nnrt_step_args a;
	double metrics[2];
} state;
#define TH_CANARY 12345.0f

state th_state_new(const nnrt_model *m);
void th_state_free(state *s);
/* Runs `body` on the first n samples with the hyper-parameters in s->a.hp.
 * The workspace is NaN first, so a kernel reading a value nobody wrote
 * poisons the result; outputs past n samples hold a canary that must
 * survive. */
void th_run(state *s, nnrt_body_fn body, int64_t n);
/* th_run on `threads` threads (0: the runtime's default). */
void th_run_threads(state *s, nnrt_body_fn body, int64_t n, int threads);
/* Sequence batches: token ids and labels uniform in [0, V); with `ignore`,
 * every fifth label is -1 (the ignore index). */
void th_fill_tokens(state *s, int64_t n, int64_t V, uint64_t seed, bool ignore);
/* The per-position cross-entropy of logits z [T][V] against labels y
 * (-1 ignored), in double: mean loss and accuracy over counted positions. */
/* Three Adam steps on token batches of vocabulary V with 1, 2 and 3
 * threads must leave bit-identical parameters. */
void th_check_seq_threads(const nnrt_model *m, int64_t V, const char *what);
void th_ref_seq_xent(const double *z, const float *y, int64_t T, int64_t V, double *loss, double *acc);

/* Parameters U(-a, a): a = 1.5 / sqrt(fan_in) for dense [in][out] and conv
 * [F][C][KH][KW] weights, 0.5 for the rest; padding between tensors 0. */
void th_fill_params(const nnrt_model *m, float *p, uint64_t seed);
/* Inputs U(-1, 1) for n samples; class labels uniform; BCE targets 0 or 1;
 * other real targets U(-1, 1). */
void th_fill_batch(state *s, int64_t n, uint64_t seed);

/* The loss a gradient check differentiates: a function of s->params alone
 * (same batch, same random stream at every call). */
typedef double (*th_loss_fn)(state *s, int64_t n);
/* Checks every parameter entry's gradient g[] (param_floats, for the
 * parameters in s->params) against the central difference of loss() with
 * steps of +-step: |g - fd| <= atol + rtol |fd|.  Where the one-sided
 * differences disagree (a relu kink inside the step) either one will do,
 * for at most an eighth of the entries.  `what` names the case in
 * failures.  Returns the worst agreement as a share of the tolerance. */
double th_fd_check(state *s, int64_t n, const float *g, th_loss_fn loss, double step, double atol, double rtol,
                   const char *what);

#endif
