/*
 * cg_abi.c - LLVM types of the structs in cg_abi.h (the runtime's nnrt.h
 * mirrored field by field; tests/test_abi.c holds the two to each other).
 */
#include "cg_abi.h"

#include "nnrt.h"

/* The number of hyper-parameter slots, as nnrt.h declares the array. */
#define CG_HP_SLOTS (sizeof((nnrt_step_args *)0)->hp / sizeof(float))

typedef struct abi_prims {
	LLVMTypeRef i32, i64, f32, f64, ptr, shape, hp, data, sched, miles;
} abi_prims;

static LLVMTypeRef make(LLVMContextRef C, LLVMTypeRef *f, unsigned n)
{
	return LLVMStructTypeInContext(C, f, n, 0);
}

cg_abi cg_abi_types(LLVMContextRef C)
{
	abi_prims p;
	p.i32 = LLVMInt32TypeInContext(C);
	p.i64 = LLVMInt64TypeInContext(C);
	p.f32 = LLVMFloatTypeInContext(C);
	p.f64 = LLVMDoubleTypeInContext(C);
	p.ptr = LLVMPointerTypeInContext(C, 0);
	p.shape = LLVMArrayType2(p.i64, NNRT_MAX_RANK);
	p.hp = LLVMArrayType2(p.f32, CG_HP_SLOTS);
	p.data = p.sched = NULL;
	p.miles = LLVMArrayType2(p.f64, NNRT_MAX_MILESTONES);
#define CG_ABI_TYPE(f, t) p.t,
#define I32 i32
#define I64 i64
#define F32 f32
#define F64 f64
#define PTR ptr
#define SHAPE shape
#define HP hp
#define DATA data
#define SCHED sched
#define MILES miles
	cg_abi a;
	LLVMTypeRef data[] = {CG_DATA_SPEC(CG_ABI_TYPE)};
	a.data_spec = p.data = make(C, data, CG_DATA_NFIELDS);
	LLVMTypeRef sched[] = {CG_SCHEDULE(CG_ABI_TYPE)};
	a.schedule = p.sched = make(C, sched, CG_SCHED_NFIELDS);
	LLVMTypeRef args[] = {CG_STEP_ARGS(CG_ABI_TYPE)};
	a.step_args = make(C, args, CG_ARGS_NFIELDS);
	LLVMTypeRef param[] = {CG_PARAM_INFO(CG_ABI_TYPE)};
	a.param_info = make(C, param, CG_PARAM_NFIELDS);
	LLVMTypeRef op[] = {CG_OP_INFO(CG_ABI_TYPE)};
	a.op_info = make(C, op, CG_OPINFO_NFIELDS);
	LLVMTypeRef model[] = {CG_MODEL(CG_ABI_TYPE)};
	a.model = make(C, model, CG_MODEL_NFIELDS);
	LLVMTypeRef chunk[] = {CG_CHUNK(CG_ABI_TYPE)};
	a.chunk = make(C, chunk, CG_CHUNK_NFIELDS);
#undef I32
#undef I64
#undef F32
#undef F64
#undef PTR
#undef SHAPE
#undef HP
#undef DATA
#undef SCHED
#undef MILES
#undef CG_ABI_TYPE
	_Static_assert(sizeof data / sizeof data[0] == CG_DATA_NFIELDS, "one type per field");
	return a;
}

LLVMTypeRef cg_abi_field_type(LLVMTypeRef st, unsigned f) { return LLVMStructGetTypeAtIndex(st, f); }
