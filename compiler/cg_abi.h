/*
 * cg_abi.h - the structs the generated code shares with the runtime
 * (runtime/nnrt.h), and the chunk record its bodies hand to the op
 * functions, described to LLVM in one place.
 *
 * Each struct is a list of (field, type) in nnrt.h's order.  Its field
 * indices (CG_ARGS_x, CG_MODEL_lr, ...) come from the same list, so code
 * reads and fills fields by name, never by number, and tests/test_abi.c
 * checks offsetof() of every named field in nnrt.h against
 * LLVMOffsetOfElement() of the type built here: a field moved, added or
 * swapped with another of its type on one side only fails that test.
 *
 * Types: I32 I64 F32 F64 PTR; SHAPE int64_t[NNRT_MAX_RANK]; HP the
 * hyper-parameters' float array; DATA an nnrt_data_spec; SCHED an
 * nnrt_schedule; MILES its double[NNRT_MAX_MILESTONES].
 */
#ifndef NNC_CG_ABI_H
#define NNC_CG_ABI_H

#include <llvm-c/Core.h>

/* nnrt_step_args: what a body gets from the runtime */
#define CG_STEP_ARGS(F)                                                                              \
	F(params, PTR) F(grads, PTR) F(opt, PTR) F(ws, PTR) F(x, PTR) F(y, PTR) F(out, PTR) F(metrics, PTR) \
	F(n, I64) F(hp, HP) F(state, PTR) F(seed, I64) F(sample0, I64)

/* nnrt_param_info: one row of the parameter table */
#define CG_PARAM_INFO(F)                                                                               \
	F(name, PTR) F(offset, I64) F(size, I64) F(shape, SHAPE) F(rank, I32) F(init, I32) F(init_arg, F32) \
	F(fan_in, F32) F(fan_out, F32) F(pad_, F32)

/* nnrt_data_spec: a training or test set */
#define CG_DATA_SPEC(F)                                                                                   \
	F(kind, I32) F(has_header, I32) F(path_x, PTR) F(path_y, PTR) F(cols_x, PTR) F(cols_y, PTR) F(scale, F32) \
	F(shift, F32) F(noise, F32) F(pad_, F32) F(count, I64) F(seed, I64) F(classes, I64)

/* nnrt_schedule: the learning-rate schedule */
#define CG_SCHEDULE(F)                                                                                     \
	F(kind, I32) F(n_milestones, I32) F(warmup, I64) F(a, F64) F(b, F64) F(c, F64) F(d, F64) F(milestones, MILES) \
	F(mom_base, F64) F(mom_max, F64)

/* nnrt_op_info: one row of the op table */
#define CG_OP_INFO(F) F(name, PTR) F(kind, PTR) F(flops_per_sample, F64) F(flops_per_step, F64)

/* nnrt_model: the descriptor the runtime runs */
#define CG_MODEL(F)                                                                                        \
	F(struct_size, I64) F(abi_version, I64) F(name, PTR) F(source, PTR) F(fingerprint, I64)                 \
	F(input_shape, SHAPE) F(input_rank, I32) F(label_kind, I32) F(input_size, I64) F(label_size, I64)       \
	F(output_size, I64) F(batch, I64) F(loss, I32) F(optimizer, I32) F(n_params, I32) F(n_state, I32)       \
	F(params, PTR) F(state, PTR) F(param_floats, I64) F(opt_floats, I64) F(ws_floats, I64)                  \
	F(state_floats, I64) F(lr, F32) F(momentum, F32)                                                        \
	F(beta1, F32) F(beta2, F32) F(eps, F32) F(weight_decay, F32) F(alpha, F32) F(dampening, F32)            \
	F(opt_flags, I32) F(clip_norm, F32) F(clip_value, F32) F(pad2_, F32) F(accumulate, I64) F(schedule, SCHED) F(epochs, I64) F(seed, I64) F(train, DATA)                              \
	F(test, DATA) F(train_step, PTR) F(eval_step, PTR) F(infer, PTR) F(ops, PTR) F(n_ops, I32)              \
	F(profiled, I32) F(cpu_features, PTR) F(aug_crop_pad, I32) F(aug_erase_size, I32) F(aug_flip_p, F32)         \
	F(aug_erase_p, F32) F(val_fraction, F32) F(es_metric, I32) F(es_patience, I32) F(es_min_delta, F32) \
	F(precision, I32) F(val, DATA)

/* The chunk an op function works on (compiler-internal; cg.h): its
 * workspace slice, where its gradients and metrics go (the caller's arrays
 * for chunk 0, partials in the workspace for the others), its first
 * sample, its samples and the samples of the whole step; `more`: how many
 * chunks after it, the next records of one array, the call covers too
 * (a dense product on all of a thread's chunks at once, cg.c). */
#define CG_CHUNK(F) F(ws, PTR) F(grads, PTR) F(metrics, PTR) F(s0, I64) F(n, I64) F(total, I64) F(more, I64)

#define CG_ABI_ENUM_ARGS(f, t) CG_ARGS_##f,
#define CG_ABI_ENUM_PARAM(f, t) CG_PARAM_##f,
#define CG_ABI_ENUM_DATA(f, t) CG_DATA_##f,
#define CG_ABI_ENUM_OPINFO(f, t) CG_OPINFO_##f,
#define CG_ABI_ENUM_SCHED(f, t) CG_SCHED_##f,
#define CG_ABI_ENUM_MODEL(f, t) CG_MODEL_##f,
#define CG_ABI_ENUM_CHUNK(f, t) CG_CHUNK_##f,
typedef enum { CG_STEP_ARGS(CG_ABI_ENUM_ARGS) CG_ARGS_NFIELDS } cg_args_field;
typedef enum { CG_PARAM_INFO(CG_ABI_ENUM_PARAM) CG_PARAM_NFIELDS } cg_param_field;
typedef enum { CG_DATA_SPEC(CG_ABI_ENUM_DATA) CG_DATA_NFIELDS } cg_data_field;
typedef enum { CG_OP_INFO(CG_ABI_ENUM_OPINFO) CG_OPINFO_NFIELDS } cg_opinfo_field;
typedef enum { CG_SCHEDULE(CG_ABI_ENUM_SCHED) CG_SCHED_NFIELDS } cg_sched_field;
typedef enum { CG_MODEL(CG_ABI_ENUM_MODEL) CG_MODEL_NFIELDS } cg_model_field;
typedef enum { CG_CHUNK(CG_ABI_ENUM_CHUNK) CG_CHUNK_NFIELDS } cg_chunk_field;

/* The LLVM struct types, literal (unnamed), of one context. */
typedef struct cg_abi {
	LLVMTypeRef step_args, param_info, data_spec, schedule, op_info, model, chunk;
} cg_abi;

cg_abi cg_abi_types(LLVMContextRef C);
/* The type of field `f` of a struct type built by cg_abi_types. */
LLVMTypeRef cg_abi_field_type(LLVMTypeRef st, unsigned f);

#endif
