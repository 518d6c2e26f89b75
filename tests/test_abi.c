/*
 * test_abi.c - the structs the generated code shares with the runtime, as
 * the code generator describes them to LLVM (compiler/cg_abi.h), against
 * the C compiler's layout of runtime/nnrt.h: every field by name (offsetof
 * against LLVMOffsetOfElement of the field's index in the LLVM type) and
 * the total size and alignment.  The data layout is the one nnc_lower puts
 * on its modules (target.c, this host).
 *
 * A field added, removed, moved or swapped with another field of the same
 * type on one side only shows up here as the first field whose offset
 * differs, named; the runtime's own check (struct_size) sees only sizes.
 */
#include <criterion/criterion.h>
#include <stddef.h>

#include <llvm-c/Target.h>

#include "cg_abi.h"
#include "nnrt.h"
#include "target.h"

static LLVMContextRef ctx;
static LLVMTargetDataRef td;
static cg_abi abi;

static void setup(void)
{
	ctx = LLVMContextCreate();
	abi = cg_abi_types(ctx);
	LLVMTargetMachineRef tm = nnc_target_machine(NULL, 2);
	td = LLVMCreateTargetDataLayout(tm);
	LLVMDisposeTargetMachine(tm);
}

static void teardown(void)
{
	LLVMDisposeTargetData(td);
	LLVMContextDispose(ctx);
}

static void check_field(const char *st_name, LLVMTypeRef st, const char *field, unsigned idx, size_t c_offset,
			size_t c_size)
{
	cr_assert_lt(idx, LLVMCountStructElementTypes(st), "%s.%s: no such element", st_name, field);
	unsigned long long off = LLVMOffsetOfElement(td, st, idx);
	unsigned long long size = LLVMABISizeOfType(td, LLVMStructGetTypeAtIndex(st, idx));
	cr_expect_eq(off, (unsigned long long)c_offset, "%s.%s: the code generator puts it at byte %llu, nnrt.h at %zu",
		     st_name, field, off, c_offset);
	cr_expect_eq(size, (unsigned long long)c_size, "%s.%s: %llu bytes for the code generator, %zu in nnrt.h",
		     st_name, field, size, c_size);
}

static void check_whole(const char *st_name, LLVMTypeRef st, size_t c_size, size_t c_align)
{
	cr_expect_eq(LLVMABISizeOfType(td, st), (unsigned long long)c_size, "%s: %llu bytes, nnrt.h says %zu", st_name,
		     LLVMABISizeOfType(td, st), c_size);
	cr_expect_eq(LLVMABIAlignmentOfType(td, st), (unsigned)c_align, "%s: aligned to %u, nnrt.h to %zu", st_name,
		     LLVMABIAlignmentOfType(td, st), c_align);
}

#define FIELD_SIZE(T, f) sizeof(((T *)0)->f)

TestSuite(abi, .init = setup, .fini = teardown);

Test(abi, step_args)
{
#define F(f, t) check_field("nnrt_step_args", abi.step_args, #f, CG_ARGS_##f, offsetof(nnrt_step_args, f), \
			    FIELD_SIZE(nnrt_step_args, f));
	CG_STEP_ARGS(F)
#undef F
	check_whole("nnrt_step_args", abi.step_args, sizeof(nnrt_step_args), _Alignof(nnrt_step_args));
}

Test(abi, param_info)
{
#define F(f, t) check_field("nnrt_param_info", abi.param_info, #f, CG_PARAM_##f, offsetof(nnrt_param_info, f), \
			    FIELD_SIZE(nnrt_param_info, f));
	CG_PARAM_INFO(F)
#undef F
	check_whole("nnrt_param_info", abi.param_info, sizeof(nnrt_param_info), _Alignof(nnrt_param_info));
}

Test(abi, data_spec)
{
#define F(f, t) check_field("nnrt_data_spec", abi.data_spec, #f, CG_DATA_##f, offsetof(nnrt_data_spec, f), \
			    FIELD_SIZE(nnrt_data_spec, f));
	CG_DATA_SPEC(F)
#undef F
	check_whole("nnrt_data_spec", abi.data_spec, sizeof(nnrt_data_spec), _Alignof(nnrt_data_spec));
}

Test(abi, schedule)
{
#define F(f, t) check_field("nnrt_schedule", abi.schedule, #f, CG_SCHED_##f, offsetof(nnrt_schedule, f), \
			    FIELD_SIZE(nnrt_schedule, f));
	CG_SCHEDULE(F)
#undef F
	check_whole("nnrt_schedule", abi.schedule, sizeof(nnrt_schedule), _Alignof(nnrt_schedule));
}

Test(abi, op_info)
{
#define F(f, t) check_field("nnrt_op_info", abi.op_info, #f, CG_OPINFO_##f, offsetof(nnrt_op_info, f), \
			    FIELD_SIZE(nnrt_op_info, f));
	CG_OP_INFO(F)
#undef F
	check_whole("nnrt_op_info", abi.op_info, sizeof(nnrt_op_info), _Alignof(nnrt_op_info));
}

Test(abi, model)
{
#define F(f, t) check_field("nnrt_model", abi.model, #f, CG_MODEL_##f, offsetof(nnrt_model, f), \
			    FIELD_SIZE(nnrt_model, f));
	CG_MODEL(F)
#undef F
	check_whole("nnrt_model", abi.model, sizeof(nnrt_model), _Alignof(nnrt_model));
}

/* The hyper-parameter slots the kernels read (cg_hp) are inside the array
 * the code generator declares. */
Test(abi, hyper_parameters_fit)
{
	LLVMTypeRef hp = LLVMStructGetTypeAtIndex(abi.step_args, CG_ARGS_hp);
	cr_assert_eq(LLVMGetTypeKind(hp), LLVMArrayTypeKind);
	cr_expect_eq(LLVMGetArrayLength2(hp), (uint64_t)(FIELD_SIZE(nnrt_step_args, hp) / sizeof(float)));
	cr_expect_leq((uint64_t)NNRT_HP_COUNT, LLVMGetArrayLength2(hp));
	int slots[] = {NNRT_HP_LR,	  NNRT_HP_ADAM_C1,    NNRT_HP_ADAM_C2,	  NNRT_HP_DAMP,	     NNRT_HP_WD,
		       NNRT_HP_CLIP_NORM, NNRT_HP_CLIP_VALUE, NNRT_HP_ACC_WEIGHT, NNRT_HP_ACC_APPLY};
	for (size_t k = 0; k < sizeof slots / sizeof slots[0]; k++)
		cr_expect_lt((uint64_t)slots[k], (uint64_t)NNRT_HP_COUNT, "hp slot %d", slots[k]);
}
