/*
 * ir.h - nnc's typed tensor IR and the passes over it.
 *
 * A graph is a flat array of nodes in topological order; operands are
 * integer indices of earlier nodes.  Every tensor has a static shape: a
 * batched tensor has an implicit leading batch dimension n (1 <= n <= batch,
 * only known at run time) in front of `dims`; an unbatched tensor (a
 * parameter, its gradient, a loss) has exactly `dims`.
 *
 * The pipeline, one pass per file (see compiler/main.c):
 *   sema*.c     AST -> forward graph (shape inference, checks), and beside it
 *               the training configuration (nnc_train_config)
 *   autodiff.c  appends the reverse-mode backward graph and the optimizer update
 *   pass_infer.c appends the inference tail
 *   fuse.c      folds bias+activation into dense, activation derivatives into
 *               the backward matmul epilogues; removes dead nodes
 *   plan.c      assigns every tensor a place (param/grad/workspace offsets),
 *               reusing workspace for tensors whose lifetimes do not overlap
 *   cg.c        lowers the graph to LLVM IR (one body per entry point)
 */
#ifndef NNC_IR_H
#define NNC_IR_H

#include <stdbool.h>
#include <stdint.h>

#include "ast.h"
#include "augment.h"
#include "nnrt.h"
#include "util.h"

#define IR_MAX_IN 5
#define IR_MAX_RANK 4
#define IR_FA_ACT 2 /* fa[] slot of an activation's option */
#define IR_IA_ROWS 11 /* ia[] slot of DENSE, DENSE_BWD_X/W, BIAS_GRAD: rows per sample (0 or 1: the
		       * sample is one row; T: a per-position dense of a [T, d] value) */
/* Rows per sample of a product over the last axis (IR_IA_ROWS). */
#define ir_rows(n) ((n)->ia[IR_IA_ROWS] > 1 ? (n)->ia[IR_IA_ROWS] : 1)

typedef enum ir_op {
#define OP(id, name, arity, shape, grad, lower, kind, flops) IR_##id,
#include "ops.def"
#undef OP
	IR_NUM_OPS
} ir_op;

/* An element-wise activation (a row of acts.def): a node of its op, or fused
 * into another op's epilogue (forward) or its derivative. */
typedef enum ir_act {
	ACT_NONE = 0,
#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) ACT_##id,
#include "acts.def"
#undef ACT
	IR_NUM_ACTS
} ir_act;

/* acts.def's `from`: what an activation's derivative reads besides dy. */
typedef enum ir_act_from { ACT_FROM_Y, ACT_FROM_X } ir_act_from;
/* acts.def's option kinds. */
typedef enum ir_act_opt { ACT_OPT_NONE, ACT_OPT_NUM, ACT_OPT_BOOL } ir_act_opt;

/* acts.def's columns that the passes read (cg.c has the emitters). */
typedef struct ir_act_info {
	const char *name;
	ir_act_from from;
	int init;             /* NNRT_INIT_* of a weight that feeds only this activation */
	const char *opt;      /* the option's name, or NULL */
	ir_act_opt opt_kind;
	double opt_default, opt_min;
	bool inl;             /* applied inline in matmul loops */
	double flops, dflops; /* per element: forward, derivative */
} ir_act_info;
const ir_act_info *ir_act_get(ir_act a); /* a != ACT_NONE */
/* The activation of an activation op or of its derivative op, or ACT_NONE. */
ir_act ir_op_act(ir_op op);
bool ir_op_is_act_grad(ir_op op);
ir_op ir_act_op(ir_act a);      /* IR_<ID> */
ir_op ir_act_grad_op(ir_act a); /* IR_<ID>_GRAD */
/* "relu", "leaky_relu(alpha=0.2)": an activation and its option (arena) */
char *ir_act_str(ir_act a, double opt);

/* The entry points of the generated code (docs/architecture.md "The IR").
 * Every node carries the set of entries that run it: sema's forward nodes
 * run in the train and eval steps, autodiff's backward and update nodes in
 * the train step only, the inference tail in inference only, and the
 * forward nodes the output depends on also in inference.  A node whose
 * behaviour depends on the mode (dropout) is one node in every list, with
 * one op function per mode (ir_op_mode_dependent). */
enum {
	IR_ENTRY_TRAIN = 1, /* train_step: forward, loss, backward, update */
	IR_ENTRY_EVAL = 2,  /* eval_step: forward and loss */
	IR_ENTRY_INFER = 4, /* infer: forward to the output, into the caller's out */
	IR_ENTRY_ALL = 7,
};

/* Where a tensor lives at run time. */
typedef enum ir_storage {
	ST_NONE = 0, /* not materialised (dead, or a scalar kept in metrics) */
	ST_INPUT,    /* nnrt_step_args.x */
	ST_LABEL,    /* nnrt_step_args.y */
	ST_PARAM,    /* params + offset */
	ST_GRAD,     /* grads + offset (a parameter's gradient) */
	ST_WS,       /* ws + offset (planned workspace) */
	ST_OUT,      /* nnrt_step_args.out */
	ST_STATE,    /* nnrt_step_args.state + offset (non-trainable state) */
} ir_storage;

/* Memory layout of a batched tensor. */
typedef enum ir_layout {
	LAYOUT_NC = 0, /* [n][per-sample values]: one sample after another */
	LAYOUT_CN = 1, /* [per-sample values][bpad]: the batch innermost, so that
			* convolution and pooling vectorise over samples; bpad is
			* the batch rounded up to a multiple of 16 */
} ir_layout;

typedef struct ir_node {
	ir_op op;
	int nin;
	int in[IR_MAX_IN];     /* operand node ids */
	bool batched;          /* has the implicit leading batch dimension */
	int rank;
	int64_t dims[IR_MAX_RANK];
	int64_t size;          /* product of dims (per sample if batched) */
	ir_layout layout;      /* batched tensors only */
	ir_act act;            /* DENSE, CONV2D: activation applied in the epilogue */
	int act_dst;           /* with act: the node whose tensor receives act(value) while this
				* one keeps the value itself (an activation whose derivative
				* needs its input x), or -1: act applied in place */
	bool in_epilogue;      /* an activation node that act_dst of its operand writes: it has
				* no code of its own */
	ir_act dact;           /* DENSE_BWD_X etc.: multiply by act'(v), v (x or y,
				* acts.def's `from`) the last operand */
	int64_t ia[12];        /* op-specific integers (see each op in ops.def) */
	double fa[4];          /* op-specific reals (AFFINE: a, b; the updates: see
				* nnc_autodiff's update_consts); fa[IR_FA_ACT]: the
				* option of the node's activation (an activation op,
				* its derivative, or act/dact) */
	int param;             /* PARAM: index in graph params; DENSE_BWD_W/BIAS_GRAD: param it writes;
				* STATE: index in graph states */
	const char *name;      /* user-visible name, or NULL */
	nnc_loc loc;           /* where it was written (for diagnostics) */
	bool dead;             /* removed by a pass; skipped by later ones */
	bool chunk_share;      /* one use's share of a shared parameter's gradient, summed over a
				* chunk's samples: a per-chunk tensor (ir_per_chunk) that the sum
				* of the uses (the gradient, in grads) reads in the same chunk */
	bool chunk_copy;       /* a combine whose result every chunk computes for itself, in its
				* copy of the workspace, from every chunk's partials: no barrier
				* after it (plan.c, when the step runs in chunks) */
	bool late;             /* a dense weight gradient that the owned tail (cg.c) may compute
				* after the chunk loop: its operands live to the step's end
				* (plan.c, ir_ownable) */
	uint8_t entries;       /* IR_ENTRY_* that run it (ir_add gives g->adding) */
	bool seq;              /* the first axis of the sample's value is the sequence axis
				* (docs/architecture.md "Sequences"): dense maps its last axis */
	int stands_for;        /* 0, or 1 + the node whose value this one computes in the eval
				* and inference entries instead of it, into that node's tensor
				* (a layer with its batchnorm folded in, pass_infer.c): use
				* ir_stands_for */
	ir_storage storage;    /* set by plan.c */
	int64_t offset;        /* floats, within the storage */
} ir_node;

typedef struct ir_param {
	const char *name; /* "dense1.weight" */
	int node;         /* its PARAM node */
	int rank;
	int64_t dims[IR_MAX_RANK];
	int64_t size;
	int64_t offset;   /* floats into params / grads (set by sema, contiguous) */
	int init;         /* NNRT_INIT_* */
	double init_arg;
	double fan_in, fan_out;
	bool init_set;    /* the user chose the initialiser */
	nnc_loc loc;
} ir_param;

typedef struct ir_optimizer {
	int kind;  /* NNRT_OPT_* */
	int flags; /* NNRT_OPTF_* */
	double lr, momentum, beta1, beta2, eps;
	double alpha;        /* rmsprop */
	double dampening;    /* sgd */
	double weight_decay; /* coupled (L2 in the gradient), or decoupled for adamw */
	double clip_norm, clip_value; /* gradient clipping, 0: none (clip_norm also sets NNRT_OPTF_CLIP_NORM) */
	int64_t accumulate;  /* micro-batches per update (the train block's; > 1 sets NNRT_OPTF_ACCUMULATE) */
} ir_optimizer;

/* The update's unit of work: the threads split the parameters into blocks
 * of this many floats (a multiple of 16), and the global norm of clipping
 * is summed per block, in block order. */
#define IR_UPDATE_BLOCK 4096

/* Floats of optimizer state per parameter float (nnrt.h, NNRT_OPT_*): the
 * rule's (ir_rule_slots), then the accumulated gradient with accumulate. */
int ir_opt_slots(const ir_optimizer *o);
int ir_rule_slots(const ir_optimizer *o);
/* Whether weight decay applies to parameter p, for an optimizer of `flags`
 * (NNRT_OPTF_*): tensors of rank >= 2 (weights), and those of rank 0 or 1
 * (biases, normalisation scales and shifts) only with decay_biases. */
bool ir_param_decays(const ir_param *p, int flags);
/* The optimizer update op (SGD_UPDATE, ADAM_UPDATE, RMSPROP_UPDATE). */
static inline bool ir_is_update(ir_op op)
{
	return op == IR_SGD_UPDATE || op == IR_ADAM_UPDATE || op == IR_RMSPROP_UPDATE;
}

/* The training configuration (the optimizer statement and the train block),
 * produced by sema beside the graph, not in it: the passes and the back end
 * that need it take it explicitly (autodiff the optimizer, nnc_lower the
 * model descriptor, nnc_header the data scaling). */
typedef struct nnc_train_config {
	ir_optimizer opt;
	nnrt_schedule sched; /* of the learning rate (the train block's schedule: and warmup:) */
	int64_t accumulate;  /* the train block's accumulate: (sema copies it into opt) */
	int64_t batch, epochs, seed;
	nnrt_data_spec train, test;
	struct {                  /* the train block's augment: (nnrt_model's aug_*) */
		nnrt_augment_spec spec; /* the transforms (runtime/augment.h) */
		nnc_loc loc;      /* of the augment: list, for the check against the input */
	} aug;
	double val_fraction;      /* the train block's validation: as a fraction (0: none) */
	nnrt_data_spec val;       /* validation: as a data source (kind NNRT_DATA_NONE: none) */
	int64_t es_metric, es_patience; /* early_stop: NNRT_ES_*, patience in epochs */
	double es_min_delta;
	nnc_loc es_loc;           /* of the early_stop: metric */
	int precision;            /* the train block's precision: NNC_PRECISION_* */
	nnc_loc precision_loc;    /* of its value */
} nnc_train_config;

/* The arithmetic of products and convolutions (train { precision: },
 * nnc --precision): float32, or bfloat16 operands with float32 sums, which
 * needs avx512bf16 (main.c refuses it for a target without it). */
enum { NNC_PRECISION_FP32, NNC_PRECISION_BF16 };

typedef struct ir_graph {
	const nnc_source *src;
	const char *model_name;
	ir_node *nodes;
	int n, cap;
	ir_param *params;
	int nparams;
	int64_t param_floats;
	int64_t opt_floats;
	int64_t ws_floats;     /* set by plan.c: max over every entry point */
	ir_param *states;      /* non-trainable state tensors (init: NNRT_INIT_CONSTANT, init_arg) */
	int nstates;
	int64_t state_floats;  /* contiguous, each tensor padded to 16 floats */

	int input;             /* INPUT node */
	int label;             /* LABEL node */
	int label_kind;        /* NNRT_LABEL_* */
	int64_t label_size;    /* classes, or floats per sample */
	int loss;              /* loss node */
	int loss_kind;         /* NNRT_LOSS_* */
	int output;            /* node whose (transformed) value inference returns */
	int64_t input_vocab;   /* token(V)[T] input: V; else 0 */
	int64_t label_vocab;   /* class(V)[T] label: V (label_kind REAL, label_size T); else 0 */
	uint8_t adding;        /* the entries of the nodes ir_add appends: TRAIN|EVAL for sema's
				* forward graph, TRAIN for autodiff, INFER for the inference tail */

	uint64_t fingerprint;  /* architecture hash, set by sema (checkpoints carry it) */
	int64_t batch;         /* samples a step is planned for, at most: the training
				* batch (sema), NNC_SMALL_BATCH in small.c's copy */
	int64_t bpad;          /* cbatch rounded up to 16: row length of CN tensors */

	/* Sample chunks (plan.c, docs/architecture.md "Parallel schedule"): the
	 * batch is cut into `chunks` slices of at most `cbatch` samples; each
	 * slice runs the whole forward/backward pass on one thread, in its own
	 * copy of the batched workspace.  chunks == 1: every op is split across
	 * the threads instead, with a barrier after each. */
	int64_t chunks;        /* requested by the driver before nnc_plan(); 1 or more */
	int64_t cbatch;        /* samples per chunk: ceil(batch / chunks) */
	int64_t ws_shared;     /* floats at the start of ws: unbatched tensors */
	int64_t ws_partials;   /* ws offset of chunks 1.. partial gradients ((chunks-1) * param_floats) */
	int64_t ws_metrics;    /* ws offset of the chunks' partial metrics (2 doubles each) */
	int64_t ws_norm;       /* ws offset of the update's per-block sums of squares (a double
				* per IR_UPDATE_BLOCK, clip_norm only) */
	int64_t ws_chunk0;     /* ws offset of chunk 0's batched tensors */
	int64_t ws_chunk;      /* floats per chunk of batched tensors */
} ir_graph;

/* ---- graph building (ir.c) ---- */
ir_graph *ir_new(const nnc_source *src);
int ir_add(ir_graph *g, ir_op op, int nin, const int *in);
const char *ir_op_name(ir_op op);
int ir_op_arity(ir_op op);
void ir_set_shape(ir_node *n, bool batched, int rank, const int64_t *dims);
bool ir_same_shape(const ir_node *a, const ir_node *b);
char *ir_shape_str(const ir_node *n); /* "[n, 128]" or "[784, 128]" */
char *ir_dims_str(bool batched, int rank, const int64_t *dims); /* the same from its parts */
/* Runs the op's shape rule; reports a user error and returns false on mismatch. */
bool ir_infer_shape(ir_graph *g, int id);
/* Floats per position a recurrent op (LSTM, GRU) keeps, in units of its H
 * (ops.c; the layout is cg_rnn.c's). */
int64_t ir_rnn_row(ir_op op);
void ir_dump(ir_graph *g, nnc_buf *out);
void ir_dump_dot(ir_graph *g, nnc_buf *out);
/* FLOPs per sample of one node (multiply-adds count 2). */
double ir_node_flops(ir_graph *g, const ir_node *n);
/* Kernel class of an op, for profiles: "dense", "conv dW", "pool", ... */
const char *ir_op_kind(ir_op op);
/* need[i] (arena) is true for root and every node it is computed from in
 * eval and inference (operands only the train step reads, ir_operand_train_only,
 * are not followed). */
bool *ir_ancestors(const ir_graph *g, int root);
/* Parameter count, memory and FLOPs per sample (forward, backward). */
void ir_stats(ir_graph *g, nnc_buf *out);
/* FLOPs of one step of update node n over every parameter. */
double ir_update_flops(const ir_graph *g, const ir_node *n);
/* The layer table of nnc --summary (summary.c), after planning. */
void nnc_summary(ir_graph *g, nnc_buf *out);
uint64_t ir_fingerprint(ir_graph *g, int opt_kind); /* opt_kind: NNRT_OPT_* */
/* A state tensor `name` of shape dims, every value `init` at the start: a
 * new row of g->states and its STATE node (returned). */
int ir_add_state(ir_graph *g, const char *name, int rank, const int64_t *dims, double init);
/* Appends the row of tensor node `id` (its name and shape) to a parameter or
 * state table of *n rows, placed at *floats, which grows by the tensor's size
 * rounded up to 16 floats (64-byte alignment). */
ir_param *ir_table_add(ir_param **rows, int *n, int64_t *floats, const ir_node *node, int id);
/* Batch normalisation normalises per channel of a [C, H, W] value, per
 * feature of a vector: its channels, and the positions of one channel. */
static inline int64_t ir_bn_channels(const ir_node *x) { return x->rank == 3 ? x->dims[0] : x->size; }
/* A per-chunk tensor (docs/architecture.md "Cross-chunk reductions"): an
 * unbatched value every chunk computes from its own samples, in its own
 * copy of the batched workspace, for an op of PHASE_COMBINE to merge, or
 * for the sum of a shared parameter's uses (chunk_share) to add up. */
static inline bool ir_per_chunk(const ir_node *n)
{
	return n->op == IR_BN_PARTIAL || n->op == IR_BN_BWD_PARTIAL || n->chunk_share || n->chunk_copy;
}
/* A batchnorm whose last operand r is added before its activation
 * (fuse.c: relu(batchnorm(x) + r) in one pass); its gamma and beta are the
 * operands 2 and 3 when it has them. */
static inline bool ir_bn_residual(const ir_node *n) { return n->op == IR_BATCHNORM && n->ia[0]; }
static inline bool ir_bn_affine(const ir_node *n) { return n->nin - (ir_bn_residual(n) ? 1 : 0) > 2; }
/* The node whose tensor n writes in its place (ir_node.stands_for), or -1. */
static inline int ir_stands_for(const ir_node *n) { return n->stands_for - 1; }
/* Operand k of n is read by the train step only (the batch statistics of
 * a batchnorm's combine, the probabilities of attention_out): eval and
 * inference do not need what computes it. */
static inline bool ir_operand_train_only(const ir_node *n, int k)
{
	return (n->op == IR_BN_COMBINE || n->op == IR_ATTN_OUT) && k == 0;
}
/* A DENSE_BWD_W of a train step in chunks whose product the owned tail can
 * take (docs/architecture.md "Owned gradient tail"): the whole gradient of
 * a weight of at least IR_OWNED_MIN_FLOATS floats. */
#define IR_OWNED_MIN_FLOATS 4096
bool ir_ownable(const ir_graph *g, const ir_node *n);
/* An op that writes a state tensor in place: a side effect, never dead. */
static inline bool ir_writes_state(const ir_node *n) { return n->op == IR_STEP_COUNT; }
/* An op whose lowering depends on the mode (dropout: a random mask in the
 * train step, the identity in eval and inference): one node in every entry's
 * list, one op function per mode (cg.c), its tensor in one place. */
bool ir_op_mode_dependent(ir_op op);

/* ---- passes ---- */
/* The forward graph, and *cfg filled; NULL after reporting errors. */
ir_graph *nnc_sema(const nnc_program *prog, nnc_train_config *cfg);
void nnc_autodiff(ir_graph *g, const ir_optimizer *opt); /* backward nodes + optimizer update */
void nnc_add_inference_tail(ir_graph *g);     /* the value inference returns, into ST_OUT */
/* --inference-only, after ir_drop_training: a batchnorm after a dense or
 * conv2d layer (its only reader) becomes that layer with weights and bias
 * scaled from the running statistics (pass_infer.c). */
void nnc_fold_batchnorm(ir_graph *g);
/* A training build, after fusion: the same fold for the eval step and
 * inference only.  The layer and its batchnorm stay for the train step; a
 * copy of the layer with the folded weights and bias, run by eval and infer
 * instead of them, writes the batchnorm's tensor (ir_node.stands_for). */
void nnc_fold_batchnorm_eval(ir_graph *g);
void nnc_fuse(ir_graph *g);
void nnc_plan(ir_graph *g);
/* A product or convolution whose act_dst node is dead (nothing reads the
 * activation) keeps its plain value and applies no activation. */
void ir_drop_dead_act_dst(ir_graph *g);
/* --inference-only: marks the nodes that only the train step runs (the
 * backward pass and the update) dead, so that nnc_plan gives them no memory,
 * and leaves the graph without a train entry. */
void ir_drop_training(ir_graph *g);
/* The live nodes that `entry` (IR_ENTRY_*) runs, in order, into ids (g->n
 * ints); returns their count. */
int ir_entry_nodes(const ir_graph *g, unsigned entry, int *ids);
/* Inference runs exactly the ancestors of the output and the nodes that
 * stand for one (ir_node.stands_for): clears IR_ENTRY_INFER on the others
 * (after fusion, which only removes ancestors).  nnc_plan calls it. */
void ir_settle_infer(ir_graph *g);
/* The train step's forward pass (--summary's rows, the forward FLOPs of
 * --stats and --summary): the nodes the eval step runs too (with a train
 * step, those it runs as well), and the layers and batchnorms that eval
 * runs folded (nnc_fold_batchnorm_eval); an array of g->n flags (arena). */
bool *ir_forward_nodes(const ir_graph *g);
/* A batched product with b transposed copies b^T to the stack when it has
 * at most this many floats (64 KiB), else takes the reference loops
 * (cg_seq.c); fuse.c fuses only the products that fit. */
#define IR_MATMUL_BT_FLOATS 16384
/* The most rows a batched product's register tile has (cg_seq.c); an
 * attention_out keeps that many rows of probabilities on the stack, so
 * fuse.c makes one only where they fit in IR_MATMUL_BT_FLOATS. */
#define IR_MATMUL_ROWS_MAX 16
/* Chunks when the driver asks for none (nnc --chunks). */
#define NNC_DEFAULT_CHUNKS 2
typedef enum ir_phase {
	PHASE_SAMPLE, /* batched result: runs per chunk */
	PHASE_REDUCE, /* unbatched result from batched inputs (gradients, losses): per chunk, summed after */
	PHASE_PARAM,  /* from parameters only (packed weights): before the chunks */
	PHASE_UPDATE, /* the optimizer update: after the chunks */
	PHASE_COMBINE, /* merges every chunk's per-chunk partial (ir_per_chunk): between two
			* segments of the chunk loop, split across the threads (cg.c) */
} ir_phase;
ir_phase ir_node_phase(const ir_graph *g, const ir_node *n);
/* The step updates the parameters (a live optimizer node): its chunks need
 * partial gradients, and every gradient entry must be written. */
bool ir_has_update(const ir_graph *g);
/* small.c: the sample-major copy of the inference graph that infer() runs
 * for n <= NNC_SMALL_BATCH samples, planned; NULL when the main graph has no
 * batch-innermost tensor on the way to the output.  Its batchnorms are
 * folded (nnc_fold_batchnorm) when the main graph's are. */
#define NNC_SMALL_BATCH 4
ir_graph *nnc_small_batch(ir_graph *g);

#endif
