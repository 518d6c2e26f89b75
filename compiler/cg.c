/*
 * cg.c - the top of the code generator: one LLVM function per op (the
 * lowering chosen here, from ops.def), the schedule that runs them (the
 * entry bodies train_step, eval_step and infer), the model descriptor
 * runtime/nnrt.h declares, and main().
 *
 * A module holds one or two units: the model's graph and, when small.c
 * made one, the sample-major copy that infer() runs for a few samples.
 * Each unit has its own context (cg_ctx: its graph) and its own op
 * functions; what they share (the function types, the runtime's barrier
 * and profile tick, the epilogues) is the module's.
 */
#include "cg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the units of one module share. */
typedef struct cg_module {
	const cg_options *opt;
	LLVMTypeRef op_fn_t;   /* void (nnrt_step_args *, i32 tid, i32 nthreads, cg_chunk *) */
	LLVMTypeRef body_fn_t; /* void (nnrt_step_args *, i32 tid, i32 nthreads): nnrt_body_fn */
	LLVMTypeRef barrier_t, tick_t;
	LLVMValueRef barrier_fn; /* nnrt_barrier */
	LLVMValueRef tick_fn;    /* nnrt_prof_tick, with cg_options.profile; or NULL */
	cg_epilogue *epilogues;  /* cg_call_epilogue's functions, made on first use */
} cg_module;

/* One graph being lowered. */
typedef struct cg_unit {
	cg_ctx c;              /* c.g is this unit's graph */
	const cg_module *m;
	const char *tag;       /* prefix of its op functions' names: "" or "small." */
	LLVMValueRef *op_fns;  /* node -> its op function, or NULL; the train step's
				* for a mode-dependent op (ir_op_mode_dependent) */
	LLVMValueRef *op_fns_eval; /* node -> its eval/infer function if mode-dependent */
	LLVMValueRef *op_tabs, *op_tabs_eval; /* node -> the offset table its shared kernel
					       * is called with (kernel sharing, below), or NULL */
	int *op_index;         /* node -> index in the op table (profile ticks), or -1 */
	bool infer_body;       /* emitting infer(): no data-parallel calls (cg_dist.c) */
} cg_unit;

static cg_unit new_unit(cg_module *m, const cg_ctx *proto, ir_graph *g, const char *tag)
{
	cg_unit u = {.c = *proto, .m = m, .tag = tag};
	u.c.g = g;
	u.c.epilogues = &m->epilogues;
	u.op_fns = nnc_alloc(sizeof(LLVMValueRef) * (size_t)g->n);
	u.op_fns_eval = nnc_alloc(sizeof(LLVMValueRef) * (size_t)g->n);
	u.op_tabs = nnc_alloc(sizeof(LLVMValueRef) * (size_t)g->n);
	u.op_tabs_eval = nnc_alloc(sizeof(LLVMValueRef) * (size_t)g->n);
	u.op_index = nnc_alloc(sizeof(int) * (size_t)g->n);
	for (int i = 0; i < g->n; i++)
		u.op_index[i] = -1;
	return u;
}

/* ---- functions ---- */

/* In an executable, code whose speed does not matter: the entry bodies
 * (calls and barriers, a few per step) and main, and the sample-major
 * copy's ops if it has one (the driver makes none for an executable: see
 * main.c).  emit.c generates it with LLVM's -O0 code generator after the
 * same optimisation (backend.h).  An object (-c) keeps full code
 * generation: embedding infers on a few samples at a time. */
static void mark_quick(const cg_module *m, LLVMContextRef C, LLVMValueRef fn)
{
	if (m->opt->emit_main)
		LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
					LLVMCreateStringAttribute(C, NNC_QUICK_CODEGEN, (unsigned)strlen(NNC_QUICK_CODEGEN), "", 0));
}

static void begin_fn(cg_ctx *c, LLVMValueRef fn)
{
	c->fn = fn;
	c->args = LLVMGetParam(fn, 0);
	c->tid = LLVMGetParam(fn, 1);
	c->nth = LLVMGetParam(fn, 2);
	c->chunk = LLVMCountParams(fn) > 3 ? LLVMGetParam(fn, 3) : NULL;
	LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->C, fn, "entry");
	LLVMPositionBuilderAtEnd(c->B, entry);
}

static lower_fn *const lowerings[IR_NUM_OPS] = {
#define OP(id, name, arity, shape, grad, lower, kind, flops) [IR_##id] = lower,
#include "ops.def"
#undef OP
};

/* The reference kernel (cg_naive.c) of each op that has one, and the
 * fast lowering's precondition (NULL: every node of the op). */
static const struct {
	lower_fn *naive;
	can_lower_fn *can_fast;
} reference[IR_NUM_OPS] = {
	[IR_DENSE] = {naive_dense, NULL},
	[IR_DENSE_BWD_X] = {naive_dense_bx, NULL},
	[IR_DENSE_BWD_XT] = {naive_dense_bx, NULL},
	[IR_DENSE_BWD_W] = {naive_dense_bw, NULL},
	[IR_TRANSPOSE] = {naive_transpose, NULL},
	[IR_CONV2D] = {naive_conv, NULL},
	[IR_CONV2D_BWD_X] = {naive_conv_bx, can_lower_conv_bwd},
	[IR_CONV2D_BWD_W] = {naive_conv_bw, can_lower_conv_bwd},
	/* the sequence ops (cg_seq.c) */
	[IR_LAYERNORM] = {naive_layernorm, NULL},
	[IR_LN_BWD_X] = {naive_ln_bwd_x, NULL},
	[IR_LN_BWD_GAMMA] = {naive_ln_bwd_gamma, NULL},
	[IR_MATMUL] = {naive_matmul, NULL},
	[IR_SOFTMAX_LAST] = {naive_softmax_last, NULL},
	[IR_ATTN_PROBS] = {naive_attn_probs, NULL},
	[IR_ATTN_OUT] = {naive_attn_out, NULL},
	[IR_SOFTMAX_LAST_GRAD] = {naive_softmax_last, NULL},
	[IR_SEQ_XENT] = {naive_seq_xent, NULL},
	[IR_SEQ_XENT_GRAD] = {naive_seq_xent, NULL},
};

/* Fast or reference, in this one place: the reference kernel when
 * --naive-kernels (or -O0) asks for it or the fast one cannot take n. */
static lower_fn *choose_lowering(const cg_unit *u, const ir_node *n)
{
	const cg_ctx *c = &u->c;
	lower_fn *naive = reference[n->op].naive;
	can_lower_fn *can = reference[n->op].can_fast;
	if (naive && (u->m->opt->naive || (can && !can(c, n))))
		return naive;
	NNC_ASSERT(!can || can(c, n)); /* a precondition needs a reference kernel */
	return lowerings[n->op];
}

static bool has_code(const ir_node *n)
{
	return !n->dead && !n->in_epilogue && n->op != IR_INPUT && n->op != IR_LABEL && n->op != IR_PARAM &&
	       n->op != IR_STATE;
}

/* Ops whose code depends on cg_ctx.bf16: the dense products and the
 * convolutions. */
static bool precision_op(const ir_node *n)
{
	return n->op == IR_DENSE || n->op == IR_DENSE_BWD_X || n->op == IR_DENSE_BWD_XT || n->op == IR_DENSE_BWD_W ||
	       n->op == IR_CONV2D || n->op == IR_CONV2D_BWD_X || n->op == IR_CONV2D_BWD_W;
}

/* Where bf16 products are compiled in, f's code twice: the float32 one
 * when the step's hp[NNRT_HP_FP32] asks for it (the binary's --precision
 * fp32), else the bf16 one. */
static void by_precision(cg_ctx *c, void (*f)(cg_ctx *, ir_node *, const void *), ir_node *n, const void *env)
{
	if (!c->bf16) {
		f(c, n, env);
		return;
	}
	cg_if fp = cg_if_begin(c, LLVMBuildFCmp(c->B, LLVMRealONE, cg_hp(c, NNRT_HP_FP32), cg_f32(c, 0), ""));
	c->bf16 = false;
	f(c, n, env);
	c->bf16 = true;
	cg_if_else(c, &fp);
	f(c, n, env);
	cg_if_end(c, &fp);
}

static void lower_with(cg_ctx *c, ir_node *n, const void *env)
{
	const cg_unit *u = env;
	choose_lowering(u, n)(c, n);
}

/* The op function of node id for one mode (train: the train step's); with
 * `shared`, its tensors' offsets come from the table in its fifth
 * parameter (cg_ctx.offs), and *nslots, *slots say which node each entry
 * of the table is. */
static LLVMValueRef lower_fn_for(cg_unit *u, int id, bool train, bool shared, int *nslots, const void ***slots)
{
	cg_ctx *c = &u->c;
	ir_node *n = &c->g->nodes[id];
	char name[80];
	snprintf(name, sizeof name, "%sop%d.%s%s", u->tag, id, ir_op_name(n->op),
		 !ir_op_mode_dependent(n->op) ? "" : train ? ".train" : ".eval");
	LLVMValueRef fn = LLVMAddFunction(c->M, name, u->m->op_fn_t);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	cg_fn_attrs(c, fn);
	/* the three entry bodies share op functions: compiling each kernel
	 * once keeps code size and compile time down */
	unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
	LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->C, noinline, 0));
	if (*u->tag)
		mark_quick(u->m, c->C, fn);
	begin_fn(c, fn);
	c->train_mode = train;
	c->offs = shared ? LLVMGetParam(fn, 4) : NULL;
	c->nslots = 0;
	c->slot_nodes = NULL;
	c->slot_vals = NULL;
	c->slot_cap = 0;
	if (precision_op(n))
		by_precision(c, lower_with, n, u);
	else
		choose_lowering(u, n)(c, n);
	c->train_mode = false;
	c->offs = NULL;
	LLVMBuildRetVoid(c->B);
	if (shared) {
		*nslots = c->nslots;
		*slots = c->slot_nodes;
	}
	return fn;
}

/* ---- kernel sharing ----
 * Layers of one shape (a ResNet's blocks, their backward twins, the
 * batchnorms of a stage) would get one op function each, differing only in
 * the offsets of their tensors, and LLVM's code generation costs about the
 * same per instruction whoever calls the code (most of a compile: ResNet
 * 1.7 of 2.1 s).  So every op function is first lowered with its tensors'
 * offsets read from a table (its fifth parameter); the functions whose IR
 * then reads the same are one kernel, kept once and called by each node
 * with the node's own table, a private constant array.  Equal text is equal
 * code whatever made it so, so no rule of ours decides which nodes may
 * share, and a difference in anything but an offset (a shape, a fused
 * activation, the mode, a stride) keeps the kernels apart.  A function that
 * matches no other is lowered again with its offsets as constants: the code
 * it had before sharing existed. */

/* ---- a function's code as a sequence of numbers ----
 * Printing each function as IR text to compare them cost more than the
 * sharing saved (LLVM's printer numbers the whole module for each); this
 * walk writes what the text would say: per instruction its opcode, type,
 * the properties the C API can set or read (predicates, alignment, flags,
 * GEP and call types, shuffle masks) and each operand, an instruction,
 * argument or block by its index in the function and anything else (a
 * constant, a global, a function: unique per context) by identity. */

typedef struct cg_key {
	uint64_t *v;
	size_t n, cap;
} cg_key;

static void key_put(cg_key *k, uint64_t x)
{
	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 1024;
		uint64_t *v = nnc_alloc(sizeof(uint64_t) * cap);
		if (k->n)
			memcpy(v, k->v, sizeof(uint64_t) * k->n);
		k->v = v; /* the arena frees the old array at exit */
		k->cap = cap;
	}
	k->v[k->n++] = x;
}

/* A map from a function's values (instructions, blocks) to their index. */
typedef struct cg_numbering {
	LLVMValueRef *keys;
	uint64_t *vals;
	size_t cap;
} cg_numbering;

static size_t ptr_slot(const cg_numbering *m, LLVMValueRef v)
{
	size_t h = (size_t)(((uintptr_t)v >> 4) * 0x9E3779B97F4A7C15ull) & (m->cap - 1);
	while (m->keys[h] && m->keys[h] != v)
		h = (h + 1) & (m->cap - 1);
	return h;
}

static cg_key function_key(LLVMValueRef fn)
{
	size_t ninst = 0, nblocks = 0;
	for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(fn); b; b = LLVMGetNextBasicBlock(b), nblocks++)
		for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i))
			ninst++;
	cg_numbering m = {.cap = 16};
	while (m.cap < 2 * (ninst + nblocks))
		m.cap *= 2;
	m.keys = calloc(m.cap, sizeof(LLVMValueRef));
	m.vals = malloc(m.cap * sizeof(uint64_t));
	if (!m.keys || !m.vals)
		nnc_internal_error(__FILE__, __LINE__, "out of memory");
	uint64_t idx = 0;
	for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(fn); b; b = LLVMGetNextBasicBlock(b)) {
		size_t h = ptr_slot(&m, LLVMBasicBlockAsValue(b));
		m.keys[h] = LLVMBasicBlockAsValue(b);
		m.vals[h] = idx++;
		for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i)) {
			h = ptr_slot(&m, i);
			m.keys[h] = i;
			m.vals[h] = idx++;
		}
	}
	cg_key k = {0};
	key_put(&k, LLVMCountParams(fn));
	for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(fn); b; b = LLVMGetNextBasicBlock(b)) {
		key_put(&k, 0xB10C);
		for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i)) {
			LLVMOpcode op = LLVMGetInstructionOpcode(i);
			key_put(&k, (uint64_t)op);
			key_put(&k, (uint64_t)(uintptr_t)LLVMTypeOf(i));
			switch (op) {
			case LLVMICmp: key_put(&k, (uint64_t)LLVMGetICmpPredicate(i)); break;
			case LLVMFCmp: key_put(&k, (uint64_t)LLVMGetFCmpPredicate(i)); break;
			case LLVMLoad:
			case LLVMStore:
				key_put(&k, LLVMGetAlignment(i));
				key_put(&k, (uint64_t)LLVMGetVolatile(i));
				key_put(&k, (uint64_t)LLVMGetOrdering(i));
				break;
			case LLVMAlloca:
				key_put(&k, LLVMGetAlignment(i));
				key_put(&k, (uint64_t)(uintptr_t)LLVMGetAllocatedType(i));
				break;
			case LLVMGetElementPtr:
				key_put(&k, (uint64_t)LLVMIsInBounds(i));
				key_put(&k, (uint64_t)(uintptr_t)LLVMGetGEPSourceElementType(i));
				break;
			case LLVMCall:
				key_put(&k, (uint64_t)(uintptr_t)LLVMGetCalledFunctionType(i));
				key_put(&k, LLVMGetInstructionCallConv(i));
				key_put(&k, (uint64_t)LLVMGetTailCallKind(i));
				break;
			case LLVMShuffleVector: {
				unsigned ne = LLVMGetNumMaskElements(i);
				key_put(&k, ne);
				for (unsigned e = 0; e < ne; e++)
					key_put(&k, (uint64_t)(int64_t)LLVMGetMaskValue(i, e));
				break;
			}
			case LLVMExtractValue:
			case LLVMInsertValue: {
				unsigned ne = LLVMGetNumIndices(i);
				const unsigned *ix = LLVMGetIndices(i);
				key_put(&k, ne);
				for (unsigned e = 0; e < ne; e++)
					key_put(&k, ix[e]);
				break;
			}
			case LLVMAdd:
			case LLVMSub:
			case LLVMMul:
			case LLVMShl:
				key_put(&k, (uint64_t)LLVMGetNSW(i) | (uint64_t)LLVMGetNUW(i) << 1);
				break;
			case LLVMSDiv:
			case LLVMUDiv:
			case LLVMAShr:
			case LLVMLShr: key_put(&k, (uint64_t)LLVMGetExact(i)); break;
			case LLVMOr: key_put(&k, (uint64_t)LLVMGetIsDisjoint(i)); break;
			case LLVMZExt: key_put(&k, (uint64_t)LLVMGetNNeg(i)); break;
			default: break;
			}
			if (LLVMCanValueUseFastMathFlags(i))
				key_put(&k, (uint64_t)LLVMGetFastMathFlags(i));
			key_put(&k, (uint64_t)LLVMHasMetadata(i));
			int nops = LLVMGetNumOperands(i);
			key_put(&k, (uint64_t)nops);
			for (int o = 0; o < nops; o++) {
				LLVMValueRef v = LLVMGetOperand(i, (unsigned)o);
				if (v && (LLVMIsAInstruction(v) || LLVMValueIsBasicBlock(v))) {
					size_t h = ptr_slot(&m, v);
					NNC_ASSERT(m.keys[h] == v);
					key_put(&k, 1);
					key_put(&k, m.vals[h]);
				} else if (v && LLVMIsAArgument(v)) {
					unsigned a = 0;
					while (LLVMGetParam(fn, a) != v)
						a++;
					key_put(&k, 2);
					key_put(&k, a);
				} else {
					key_put(&k, 3);
					key_put(&k, (uint64_t)(uintptr_t)v);
				}
			}
		}
	}
	free(m.keys);
	free(m.vals);
	return k;
}

static uint64_t key_hash(const cg_key *k)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t j = 0; j < k->n; j++)
		h = (h ^ k->v[j]) * 1099511628211ull;
	return h;
}

static bool key_equal(const cg_key *a, const cg_key *b)
{
	return a->n == b->n && !memcmp(a->v, b->v, sizeof(uint64_t) * a->n);
}

typedef struct cg_item {
	int id;
	bool train;
	LLVMValueRef fn;  /* the shared lowering while grouping */
	cg_key key;       /* its code (function_key) */
	uint64_t hash;
	int nslots;
	const void **slots;
	int rep;          /* the first item of its group */
	int count;        /* items in the group (valid at rep) */
} cg_item;

/* The offset table of a node whose kernel is shared: a private constant
 * array of its slots' offsets. */
static LLVMValueRef offset_table(cg_unit *u, const cg_item *it)
{
	cg_ctx *c = &u->c;
	LLVMValueRef *v = nnc_alloc(sizeof(LLVMValueRef) * (size_t)(it->nslots + 1));
	for (int k = 0; k < it->nslots; k++)
		v[k] = LLVMConstInt(c->i64, (unsigned long long)((const ir_node *)it->slots[k])->offset, 1);
	LLVMValueRef init = LLVMConstArray2(c->i64, v, (uint64_t)it->nslots);
	LLVMValueRef gv = LLVMAddGlobal(c->M, LLVMTypeOf(init), nnc_sprintf("%soffsets.op%d", u->tag, it->id));
	LLVMSetInitializer(gv, init);
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMPrivateLinkage);
	LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
	return gv;
}

/* The op functions of the nodes ids[0..n) of unit u: one per node that
 * computes something, two for a mode-dependent op that both the train step
 * and eval/infer run; shared between nodes where the code is the same. */
static void lower_ops(cg_unit *u, const int *ids, int n)
{
	cg_ctx *c = &u->c;
	cg_item *items = nnc_alloc(sizeof(cg_item) * (size_t)(2 * n + 1));
	int ni = 0;
	for (int k = 0; k < n; k++) {
		ir_node *nd = &c->g->nodes[ids[k]];
		bool train = (nd->entries & IR_ENTRY_TRAIN) != 0, other = (nd->entries & ~IR_ENTRY_TRAIN) != 0;
		if (!ir_op_mode_dependent(nd->op)) {
			items[ni++] = (cg_item){.id = ids[k]};
			continue;
		}
		if (train)
			items[ni++] = (cg_item){.id = ids[k], .train = true};
		if (other)
			items[ni++] = (cg_item){.id = ids[k], .train = false};
	}
	bool share = !u->m->opt->no_share;
	LLVMValueRef last = LLVMGetLastGlobal(c->M); /* globals made by the lowerings follow it */
	if (share) {
		/* group by code: an open-addressing table of group leaders */
		int cap = 16;
		while (cap < 2 * ni)
			cap *= 2;
		int *table = nnc_alloc(sizeof(int) * (size_t)cap);
		for (int k = 0; k < cap; k++)
			table[k] = -1;
		for (int i = 0; i < ni; i++) {
			cg_item *it = &items[i];
			it->fn = lower_fn_for(u, it->id, it->train, true, &it->nslots, &it->slots);
			it->key = function_key(it->fn);
			it->hash = key_hash(&it->key);
			it->rep = i;
			size_t h = (size_t)(it->hash & (uint64_t)(cap - 1));
			for (; table[h] >= 0; h = (h + 1) & (size_t)(cap - 1)) {
				cg_item *r = &items[table[h]];
				if (r->hash == it->hash && key_equal(&r->key, &it->key)) {
					it->rep = table[h];
					break;
				}
			}
			if (it->rep == i)
				table[h] = i;
			items[it->rep].count++;
		}
	}
	if (share) {
		/* the lowerings not kept, and the private globals only they used */
		for (int i = 0; i < ni; i++)
			if (items[i].rep != i || items[i].count == 1)
				LLVMDeleteFunction(items[i].fn);
		for (LLVMValueRef gv = last ? LLVMGetNextGlobal(last) : LLVMGetFirstGlobal(c->M), next; gv; gv = next) {
			next = LLVMGetNextGlobal(gv);
			if (!LLVMGetFirstUse(gv) && LLVMGetLinkage(gv) == LLVMPrivateLinkage)
				LLVMDeleteGlobal(gv);
		}
	}
	for (int i = 0; i < ni; i++) {
		cg_item *it = &items[i];
		LLVMValueRef fn, tab = NULL;
		if (!share || items[it->rep].count == 1) {
			fn = lower_fn_for(u, it->id, it->train, false, NULL, NULL);
		} else {
			fn = items[it->rep].fn;
			tab = offset_table(u, it);
		}
		ir_node *nd = &c->g->nodes[it->id];
		if (ir_op_mode_dependent(nd->op) && !it->train) {
			u->op_fns_eval[it->id] = fn;
			u->op_tabs_eval[it->id] = tab;
		} else {
			u->op_fns[it->id] = fn;
			u->op_tabs[it->id] = tab;
		}
	}
}

static void barrier(cg_unit *u) { LLVMBuildCall2(u->c.B, u->m->barrier_t, u->m->barrier_fn, NULL, 0, ""); }

static void tick(cg_unit *u, int op)
{
	if (u->m->tick_fn) {
		LLVMValueRef v = cg_i32(&u->c, op);
		LLVMBuildCall2(u->c.B, u->m->tick_t, u->m->tick_fn, &v, 1, "");
	}
}

/* Fills a cg_chunk (alloca'd in the body) for chunk k (i64) of a step of n
 * samples; chunk 0 writes its gradients and metrics straight to the
 * caller's arrays, the others to their partials in the workspace. */
static LLVMValueRef chunk_args(cg_ctx *c, LLVMValueRef slot, LLVMValueRef k, LLVMValueRef n)
{
	ir_graph *g = c->g;
	LLVMValueRef ws = cg_arg(c, CG_ARGS_ws);
	LLVMValueRef is0 = LLVMBuildICmp(c->B, LLVMIntEQ, k, cg_i64(c, 0), "");
	LLVMValueRef km1 = LLVMBuildSub(c->B, k, cg_i64(c, 1), "");
	LLVMValueRef s0 = LLVMBuildMul(c->B, k, cg_i64(c, g->cbatch), "");
	LLVMValueRef left = LLVMBuildSub(c->B, n, s0, "");
	LLVMValueRef f[CG_CHUNK_NFIELDS];
	f[CG_CHUNK_ws] = cg_gep(c, ws, LLVMBuildAdd(c->B, cg_i64(c, g->ws_chunk0), LLVMBuildMul(c->B, k, cg_i64(c, g->ws_chunk), ""), ""));
	f[CG_CHUNK_grads] = LLVMBuildSelect(c->B, is0, cg_arg(c, CG_ARGS_grads),
				     cg_gep(c, ws, LLVMBuildAdd(c->B, cg_i64(c, g->ws_partials),
								LLVMBuildMul(c->B, km1, cg_i64(c, g->param_floats), ""), "")), "");
	f[CG_CHUNK_metrics] = LLVMBuildSelect(c->B, is0, cg_arg(c, CG_ARGS_metrics),
				       cg_gep(c, ws, LLVMBuildAdd(c->B, cg_i64(c, g->ws_metrics), LLVMBuildMul(c->B, k, cg_i64(c, 4), ""), "")), "");
	f[CG_CHUNK_s0] = s0;
	f[CG_CHUNK_n] = cg_min_i64(c, left, cg_i64(c, g->cbatch));
	f[CG_CHUNK_total] = n;
	f[CG_CHUNK_more] = cg_i64(c, 0);
	for (int i = 0; i < CG_CHUNK_NFIELDS; i++)
		cg_store(c, f[i], LLVMBuildStructGEP2(c->B, c->abi.chunk, slot, (unsigned)i, ""));
	return slot;
}

/* Zeros what no op writes in a chunk's gradients, so that the update can
 * sum (and step along) whole vectors: the padding after each parameter and
 * the gradients of parameters that the loss does not reach, which are
 * therefore 0 whatever the caller's grads held and whatever the chunking. */
static void clear_unwritten(cg_ctx *c, LLVMValueRef grads)
{
	ir_graph *g = c->g;
	bool *written = nnc_alloc((size_t)g->nparams + 1);
	for (int i = 0; i < g->n; i++) {
		ir_node *nd = &g->nodes[i];
		if (!nd->dead && (nd->entries & IR_ENTRY_TRAIN) && nd->storage == ST_GRAD && nd->param >= 0)
			written[nd->param] = true;
	}
	for (int p = 0; p < g->nparams; p++) {
		ir_param *pr = &g->params[p];
		int64_t lo = pr->offset + (written[p] ? pr->size : 0), hi = pr->offset + (pr->size + 15) / 16 * 16;
		if (hi - lo > 16) {
			cg_loop j = cg_loop_begin(c, cg_i64(c, lo), cg_i64(c, hi), 1);
			cg_store(c, cg_f32(c, 0), cg_gep(c, grads, j.i));
			cg_loop_end(c, &j);
		} else {
			for (int64_t j = lo; j < hi; j++)
				cg_store(c, cg_f32(c, 0), cg_gep(c, grads, cg_i64(c, j)));
		}
	}
}

/* Calls node id's op function; train: from the train step's body. */
static void call_op(cg_unit *u, int id, bool train, LLVMValueRef tid, LLVMValueRef nth, LLVMValueRef chunk)
{
	bool eval = !train && u->op_fns_eval[id];
	LLVMValueRef fn = eval ? u->op_fns_eval[id] : u->op_fns[id];
	LLVMValueRef tab = eval ? u->op_tabs_eval[id] : u->op_tabs[id];
	NNC_ASSERT(fn);
	LLVMValueRef a[5] = {u->c.args, tid, nth, chunk, tab ? tab : LLVMConstNull(u->c.ptr)};
	LLVMBuildCall2(u->c.B, u->m->op_fn_t, fn, a, 5, "");
}


/* Thread 0: metrics = the sum of the chunks' partial metrics, in chunk order. */
static void sum_metrics(cg_ctx *c, LLVMValueRef n)
{
	cg_if t0 = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, c->tid, cg_i32(c, 0), ""));
	LLVMValueRef m = cg_arg(c, CG_ARGS_metrics), ws = cg_arg(c, CG_ARGS_ws);
	cg_loop k = cg_loop_begin(c, cg_i64(c, 1), cg_active_chunks(c, n), 1);
	for (int j = 0; j < 2; j++) {
		LLVMValueRef pj = cg_i64(c, j);
		LLVMValueRef dst = LLVMBuildInBoundsGEP2(c->B, c->f64, m, &pj, 1, "");
		LLVMValueRef off = LLVMBuildAdd(c->B, cg_i64(c, c->g->ws_metrics), LLVMBuildMul(c->B, k.i, cg_i64(c, 4), ""), "");
		LLVMValueRef src = LLVMBuildInBoundsGEP2(c->B, c->f64, cg_gep(c, ws, off), &pj, 1, "");
		cg_store(c, LLVMBuildFAdd(c->B, cg_load(c, c->f64, dst), cg_load(c, c->f64, src), ""), dst);
	}
	cg_loop_end(c, &k);
	cg_if_end(c, &t0);
}

/* nnrt_chunks_begin(lo, hi, tid, nth, share) and nnrt_chunks_end(): this
 * thread's chunks and group in a segment of the chunk loop (nnrt.h). */
static void chunks_begin(cg_unit *u, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef share)
{
	cg_ctx *c = &u->c;
	LLVMTypeRef pt[5] = {c->i64, c->i64, c->i32, c->i32, c->ptr};
	LLVMTypeRef ft = LLVMFunctionType(c->vt, pt, 5, 0);
	LLVMValueRef fn = LLVMGetNamedFunction(c->M, "nnrt_chunks_begin");
	if (!fn)
		fn = LLVMAddFunction(c->M, "nnrt_chunks_begin", ft);
	LLVMValueRef a[5] = {lo, hi, c->tid, c->nth, share};
	LLVMBuildCall2(c->B, ft, fn, a, 5, "");
}

static void chunks_end(cg_unit *u)
{
	cg_ctx *c = &u->c;
	LLVMTypeRef ft = LLVMFunctionType(c->vt, NULL, 0, 0);
	LLVMValueRef fn = LLVMGetNamedFunction(c->M, "nnrt_chunks_end");
	if (!fn)
		fn = LLVMAddFunction(c->M, "nnrt_chunks_end", ft);
	LLVMBuildCall2(c->B, ft, fn, NULL, 0, "");
}

static LLVMValueRef share_at(cg_ctx *c, LLVMValueRef share, int i)
{
	LLVMValueRef ix = cg_i64(c, i);
	return cg_load(c, c->i64, LLVMBuildInBoundsGEP2(c->B, c->i64, share, &ix, 1, ""));
}

/* A node's phase in the body of one mode: a mode-dependent combine reads
 * no partials outside the train step (the running statistics instead), so
 * there it runs before the chunks with the ops on parameters. */
static ir_phase body_phase(const ir_graph *g, const ir_node *nd, bool train)
{
	ir_phase ph = ir_node_phase(g, nd);
	if (ph == PHASE_COMBINE && !train && ir_op_mode_dependent(nd->op))
		return nd->chunk_copy ? PHASE_SAMPLE : PHASE_PARAM; /* a chunk_copy: in each chunk's copy */
	return ph;
}

/* Record k (i64) of the body's array of chunk records. */
static LLVMValueRef chunk_rec(cg_ctx *c, LLVMValueRef recs, LLVMValueRef k)
{
	return LLVMBuildGEP2(c->B, c->abi.chunk, recs, &k, 1, "");
}

/* Whether the body calls node nd once for all of a thread's chunks: its
 * fast lowering takes several (cg_multi_chunk). */
static bool multi_call(const cg_unit *u, const ir_node *nd)
{
	return !u->m->opt->naive && cg_multi_chunk(&u->c, nd);
}

/* ---- the owned gradient tail (docs/architecture.md "Owned gradient tail") ----
 * With several chunks, every chunk computes its partial weight gradients
 * and the update sums them afterwards, split across the threads: a weight
 * of 400 KB crossed the cores twice a step that way (each thread's update
 * reads the other chunk's partial).  A large dense layer's weight gradient
 * instead runs after the loop, by blocks of its rows: the thread that owns
 * a block computes it for every chunk (each chunk's product added to the
 * sum of the ones before, or into the partials as the chunk loop would)
 * and updates the block at once, while it is in cache.  The same sums in
 * the same order: bit for bit the schedule it replaces. */

/* Rows of dW per block: about 32 KiB of it, a multiple of 48 rows (the
 * register tiles' 6 and 8, and 16), at most 480. */
static int64_t owned_rows(int64_t N)
{
	int64_t rb = 8192 / N / 48 * 48;
	return rb < 48 ? 48 : rb > 480 ? 480 : rb;
}

/* The train step's update node when the step has the owned tail, or NULL. */
static const ir_node *tail_update(const cg_unit *u)
{
	ir_graph *g = u->c.g;
	const cg_options *o = u->m->opt;
	if (g->chunks < 2 || o->naive || o->no_owned)
		return NULL;
	for (int i = 0; i < g->n; i++) {
		const ir_node *nd = &g->nodes[i];
		if (!nd->dead && (nd->entries & IR_ENTRY_TRAIN) && ir_node_phase(g, nd) == PHASE_UPDATE)
			return cg_update_piecewise(nd) ? nd : NULL;
	}
	return NULL;
}

/* Marks owned[q] for the ops ids[q] of a train body that the tail takes:
 * the dense weight gradients that plan.c made late (ir_ownable: their
 * operands live to the step's end, so they can run after the chunk loop
 * wherever they stand in it).  Returns how many. */
static int owned_tail(const cg_unit *u, bool train, const int *ids, int n, bool *owned)
{
	ir_graph *g = u->c.g;
	if (!train || u->infer_body || !tail_update(u))
		return 0;
	int count = 0;
	for (int q = 0; q < n; q++) {
		const ir_node *nd = &g->nodes[ids[q]];
		ir_phase ph = body_phase(g, nd, train);
		if (nd->late && (ph == PHASE_SAMPLE || ph == PHASE_REDUCE)) {
			owned[q] = true;
			count++;
		}
	}
	return count;
}

/* cg_dense_bw_rows of rows [r0, r1) = env[0, 1] (blocks of owned_rows),
 * into env[2] (or NULL), added to it when env[3] */
static void owned_rows_of(cg_ctx *c, ir_node *d, const void *env)
{
	const LLVMValueRef *r = env;
	int64_t R = ir_rows(d), N = c->g->nodes[d->in[1]].size / R;
	cg_dense_bw_rows(c, d, r[0], r[1], owned_rows(N), r[2], r[3]);
}

/* The tail's function for weight gradient d: this thread's blocks of rows,
 * each computed for every chunk holding samples, then updated by upd. */
static LLVMValueRef owned_fn(cg_unit *u, ir_node *d, ir_node *upd)
{
	cg_ctx *c = &u->c;
	ir_graph *g = c->g;
	char name[64];
	snprintf(name, sizeof name, "%sop%d.owned", u->tag, (int)(d - g->nodes));
	LLVMValueRef fn = LLVMAddFunction(c->M, name, u->m->body_fn_t);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	cg_fn_attrs(c, fn);
	begin_fn(c, fn);
	c->train_mode = true;
	int64_t R = ir_rows(d), M = g->nodes[d->in[0]].size / R, N = g->nodes[d->in[1]].size / R;
	int64_t rb = owned_rows(N), off = g->params[d->param].offset;
	LLVMValueRef nsteps = cg_arg(c, CG_ARGS_n), slot = cg_alloca(c, c->abi.chunk, "chunk");
	LLVMValueRef active = cg_active_chunks(c, nsteps), lo, hi;
	cg_partition(c, cg_i64(c, (M + rb - 1) / rb), &lo, &hi);
	c->chunk = slot;
	/* A chunk's rows (K) in one slice: every chunk adds its product to the
	 * gradient, where the update finds the sum (no partials written and read
	 * back); else each chunk into its partial, as in the chunk loop. */
	bool sum_here = g->cbatch * R <= CG_ADDTO_KMAX;
	LLVMValueRef grad = NULL;
	if (sum_here) {
		chunk_args(c, slot, cg_i64(c, 0), nsteps);
		grad = cg_tensor(c, d);
	}
	cg_loop b = cg_loop_begin(c, lo, hi, 1);
	{
		LLVMValueRef r0 = LLVMBuildMul(c->B, b.i, cg_i64(c, rb), "");
		LLVMValueRef r1 = cg_min_i64(c, cg_i64(c, M), LLVMBuildAdd(c->B, r0, cg_i64(c, rb), ""));
		cg_loop k = cg_loop_begin(c, cg_i64(c, 0), active, 1);
		chunk_args(c, slot, k.i, nsteps);
		LLVMValueRef rows[4] = {r0, r1, grad,
					sum_here ? LLVMBuildICmp(c->B, LLVMIntNE, k.i, cg_i64(c, 0), "") : NULL};
		by_precision(c, owned_rows_of, d, rows);
		cg_loop_end(c, &k);
		chunk_args(c, slot, cg_i64(c, 0), nsteps); /* the update's gradients: chunk 0's */
		/* r0 N is a multiple of 16 (rb is of 48); the last block's end is
		 * rounded up to the weight's padded end, where rest_fn starts */
		LLVMValueRef n16 = cg_i64(c, N), e = LLVMBuildMul(c->B, r1, n16, "");
		e = LLVMBuildAnd(c->B, LLVMBuildAdd(c->B, e, cg_i64(c, CG_VW - 1), ""), cg_i64(c, -CG_VW), "");
		cg_update_span(c, upd, LLVMBuildAdd(c->B, cg_i64(c, off), LLVMBuildMul(c->B, r0, n16, ""), ""),
			       LLVMBuildAdd(c->B, cg_i64(c, off), e, ""), sum_here);
	}
	cg_loop_end(c, &b);
	c->chunk = NULL;
	c->train_mode = false;
	LLVMBuildRetVoid(c->B);
	return fn;
}

/* The update of every parameter the tail does not own (padding included),
 * each run of them split across the threads in vectors. */
static LLVMValueRef rest_fn(cg_unit *u, const bool *owned_param, ir_node *upd)
{
	cg_ctx *c = &u->c;
	ir_graph *g = c->g;
	LLVMValueRef fn = LLVMAddFunction(c->M, nnc_sprintf("%supdate.rest", u->tag), u->m->body_fn_t);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	cg_fn_attrs(c, fn);
	begin_fn(c, fn);
	c->train_mode = true;
	LLVMValueRef slot = cg_alloca(c, c->abi.chunk, "chunk0");
	chunk_args(c, slot, cg_i64(c, 0), cg_arg(c, CG_ARGS_n));
	c->chunk = slot;
	int64_t a = 0;
	for (int p = 0; p <= g->nparams; p++) {
		int64_t lo = p < g->nparams ? g->params[p].offset : g->param_floats;
		if (p < g->nparams && !owned_param[p])
			continue;
		if (lo > a) { /* [a, lo): not owned */
			LLVMValueRef vlo, vhi;
			cg_partition(c, cg_i64(c, (lo - a) / CG_VW), &vlo, &vhi);
			LLVMValueRef s0 = LLVMBuildAdd(c->B, cg_i64(c, a), LLVMBuildMul(c->B, vlo, cg_i64(c, CG_VW), ""), "");
			LLVMValueRef s1 = LLVMBuildAdd(c->B, cg_i64(c, a), LLVMBuildMul(c->B, vhi, cg_i64(c, CG_VW), ""), "");
			cg_update_span(c, upd, s0, s1, false);
		}
		if (p < g->nparams)
			a = lo + (g->params[p].size + CG_VW - 1) / CG_VW * CG_VW;
	}
	c->chunk = NULL;
	c->train_mode = false;
	LLVMBuildRetVoid(c->B);
	return fn;
}

/* An entry body.  One chunk: the listed ops in order, split across the
 * threads, a barrier between two ops.  Several chunks: ops on parameters
 * only (packed weights), a barrier; each thread runs the forward/backward
 * ops of its chunks alone, or, with more threads than chunks, with the
 * other threads of its chunk's group, each op split among them and the
 * group's barrier between two ops (nnrt_chunks_begin); a barrier; the
 * metrics and the update sum the chunks' partials.  A combine op (batch
 * statistics: PHASE_COMBINE) cuts the chunk loop into segments: every
 * thread runs the segment's ops on its chunks, a barrier, the combine
 * split across the threads, a barrier, the next segment
 * (docs/architecture.md "Cross-chunk reductions"). */
static LLVMValueRef emit_body(cg_unit *u, const char *name, bool train, const int *ids, int n)
{
	cg_ctx *c = &u->c;
	ir_graph *g = c->g;
	/* the owned tail's functions first: each is a function of its own */
	bool *owned = nnc_alloc((size_t)n + 1), *owned_param = nnc_alloc((size_t)g->nparams + 1);
	LLVMValueRef *owned_fns = nnc_alloc(sizeof(LLVMValueRef) * ((size_t)n + 1)), rest = NULL;
	if (owned_tail(u, train, ids, n, owned)) {
		ir_node *upd = NULL;
		for (int q = 0; q < n; q++)
			if (ir_node_phase(g, &g->nodes[ids[q]]) == PHASE_UPDATE)
				upd = &g->nodes[ids[q]];
		for (int q = 0; q < n; q++)
			if (owned[q]) {
				owned_fns[q] = owned_fn(u, &g->nodes[ids[q]], upd);
				owned_param[g->nodes[ids[q]].param] = true;
			}
		rest = rest_fn(u, owned_param, upd);
	}
	LLVMValueRef fn = LLVMAddFunction(c->M, name, u->m->body_fn_t);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	cg_fn_attrs(c, fn);
	mark_quick(u->m, c->C, fn);
	begin_fn(c, fn);
	LLVMValueRef nsteps = cg_arg(c, CG_ARGS_n);
	LLVMValueRef ck0 = chunk_args(c, cg_alloca(c, c->abi.chunk, "chunk0"), cg_i64(c, 0), nsteps);
	tick(u, -1);
	if (g->chunks == 1) {
		bool update = false;
		for (int k = 0; k < n; k++)
			update |= ir_node_phase(g, &g->nodes[ids[k]]) == PHASE_UPDATE;
		if (update) { /* before the first barrier; no op writes these */
			cg_if t0 = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, c->tid, cg_i32(c, 0), ""));
			clear_unwritten(c, cg_arg(c, CG_ARGS_grads));
			cg_if_end(c, &t0);
		}
		for (int k = 0; k < n; k++) {
			call_op(u, ids[k], train, c->tid, c->nth, ck0);
			if (k + 1 < n)
				barrier(u);
			tick(u, u->op_index[ids[k]]);
		}
		LLVMBuildRetVoid(c->B);
		return fn;
	}
	bool metrics = false, pre = false, post = false;
	for (int k = 0; k < n; k++) {
		ir_node *nd = &g->nodes[ids[k]];
		post |= ir_node_phase(g, nd) == PHASE_UPDATE;
		metrics |= nd->op == IR_XENT || nd->op == IR_MSE || nd->op == IR_BCE || nd->op == IR_SEQ_XENT;
		if (body_phase(g, nd, train) == PHASE_PARAM) {
			for (int j = 0; pre && j < nd->nin; j++)
				if (has_code(&g->nodes[nd->in[j]])) { /* reads a packed weight: wait for it */
					barrier(u);
					break;
				}
			call_op(u, ids[k], train, c->tid, c->nth, ck0);
			pre = true;
			tick(u, u->op_index[ids[k]]);
		}
	}
	if (pre)
		barrier(u);
	/* the chunks of the step [lo, hi) (its rank's span of them in a
	 * data-parallel run, cg_dist.c) that hold samples; the runtime shares
	 * them out (nnrt_chunks_begin): alone, or a group of threads per chunk
	 * splitting each op of it, with the group's barrier between its ops */
	LLVMValueRef lo = cg_i64(c, 0), hi = cg_i64(c, g->chunks);
	bool dist = !u->infer_body;
	if (dist)
		cg_dist_span(c, &lo, &hi);
	/* the owned tail needs every chunk's activations: in a run of one
	 * process; under mpirun the weight gradients stay in the chunks */
	LLVMValueRef solo = NULL;
	if (rest)
		solo = LLVMBuildAnd(c->B, LLVMBuildICmp(c->B, LLVMIntEQ, lo, cg_i64(c, 0), ""),
				    LLVMBuildICmp(c->B, LLVMIntEQ, hi, cg_i64(c, g->chunks), ""), "solo");
	hi = cg_min_i64(c, hi, cg_active_chunks(c, nsteps));
	/* every chunk's record, filled at the start of each segment for this
	 * thread's chunks */
	LLVMValueRef recs = cg_alloca(c, LLVMArrayType2(c->abi.chunk, (uint64_t)g->chunks), "chunks");
	LLVMValueRef share = cg_alloca(c, LLVMArrayType2(c->i64, 4), "share");
	/* the final sync's table; with an update, the gradient buckets whose
	 * exchange starts as the chunk loop completes them (cg_dist.c) */
	cg_dist_plan *plan = NULL;
	if (dist && (metrics || post)) {
		bool *in_loop = nnc_alloc((size_t)n + 1);
		for (int j = 0; j < n; j++) {
			ir_phase ph = body_phase(g, &g->nodes[ids[j]], train);
			in_loop[j] = ph == PHASE_SAMPLE || ph == PHASE_REDUCE ||
				     (ph == PHASE_COMBINE && g->nodes[ids[j]].chunk_copy);
		}
		plan = cg_dist_plan_final(c, metrics, post, ids, n, in_loop);
	}
	/* segments of the chunk loop, cut by the combine ops (which merge every
	 * chunk's partials: a barrier before them); none in a graph without
	 * batch statistics, which keeps the one loop.  A chunk_copy combine
	 * opens the next segment: each chunk merges for itself, so no thread
	 * waits after it */
	for (int j = 0, first = 1;; first = 0) {
		int end = j;
		while (end < n && body_phase(g, &g->nodes[ids[end]], train) == PHASE_COMBINE && g->nodes[ids[end]].chunk_copy)
			end++;
		while (end < n && body_phase(g, &g->nodes[ids[end]], train) != PHASE_COMBINE)
			end++;
		LLVMValueRef sub, gsize;
		chunks_begin(u, lo, hi, share);
		LLVMValueRef clo = share_at(c, share, 0), chi = share_at(c, share, 1);
		sub = LLVMBuildTrunc(c->B, share_at(c, share, 2), c->i32, "sub");
		gsize = LLVMBuildTrunc(c->B, share_at(c, share, 3), c->i32, "group");
		LLVMValueRef grouped = LLVMBuildICmp(c->B, LLVMIntSGT, gsize, cg_i32(c, 1), "");
		int lastop = -1; /* the segment's last op that runs in the chunks */
		for (int q = j; q < end; q++) {
			ir_phase ph = body_phase(g, &g->nodes[ids[q]], train);
			if (ph == PHASE_SAMPLE || ph == PHASE_REDUCE || ph == PHASE_COMBINE)
				lastop = q;
		}
		cg_loop kf = cg_loop_begin(c, clo, chi, 1);
		chunk_args(c, chunk_rec(c, recs, kf.i), kf.i, nsteps);
		if (post && first) { /* by the group's first thread, before its ops run */
			cg_if s0 = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, sub, cg_i32(c, 0), ""));
			clear_unwritten(c, cg_load(c, c->ptr, LLVMBuildStructGEP2(c->B, c->abi.chunk, chunk_rec(c, recs, kf.i),
										 CG_CHUNK_grads, "")));
			cg_if_end(c, &s0);
			cg_if gb = cg_if_begin(c, grouped);
			barrier(u);
			cg_if_end(c, &gb);
		}
		cg_loop_end(c, &kf);
		/* op by op, each on all of this thread's chunks (several when
		 * there are fewer threads than chunks; a group has one): a dense
		 * product with a large weight takes them in one call, which reads
		 * the weight once for all of them (cg_multi_chunk); the chunks'
		 * tensors are apart, so the order of their ops does not matter */
		for (; j < end; j++) {
			ir_phase ph = body_phase(g, &g->nodes[ids[j]], train);
			if (ph != PHASE_SAMPLE && ph != PHASE_REDUCE && ph != PHASE_COMBINE)
				continue;
			bool multi = multi_call(u, &g->nodes[ids[j]]);
			cg_loop k = {0};
			LLVMValueRef rec, more = NULL;
			if (multi) {
				rec = chunk_rec(c, recs, clo);
				more = LLVMBuildStructGEP2(c->B, c->abi.chunk, rec, CG_CHUNK_more, "");
				cg_store(c, LLVMBuildSub(c->B, LLVMBuildSub(c->B, chi, clo, ""), cg_i64(c, 1), ""), more);
			} else {
				k = cg_loop_begin(c, clo, chi, 1);
				rec = chunk_rec(c, recs, k.i);
			}
			if (owned[j]) { /* the tail's, when it runs */
				cg_if o = cg_if_begin(c, LLVMBuildNot(c->B, solo, ""));
				call_op(u, ids[j], train, sub, gsize, rec);
				cg_if_end(c, &o);
			} else {
				call_op(u, ids[j], train, sub, gsize, rec);
			}
			if (multi) {
				cg_store(c, cg_i64(c, 0), more);
				k = cg_loop_begin(c, clo, chi, 1); /* for the data-parallel bookkeeping */
			}
			if (j != lastop) { /* the group's next op reads this one's results */
				cg_if gb = cg_if_begin(c, grouped);
				barrier(u);
				cg_if_end(c, &gb);
				if (post) /* op j is complete in the whole chunk: after the group's barrier */
					cg_dist_ready(c, plan, j, k.i);
			} else if (post) { /* a group's last op: the final sync waits for it */
				cg_if gl = cg_if_begin(c, LLVMBuildNot(c->B, grouped, ""));
				cg_dist_ready(c, plan, j, k.i);
				cg_if_end(c, &gl);
			}
			cg_loop_end(c, &k);
			tick(u, u->op_index[ids[j]]); /* a combine's: its op and the wait before it */
		}
		chunks_end(u);
		if (j == n)
			break;
		int comb = j; /* the combine ops [j, comb): the partials they read, from every rank */
		while (comb < n && body_phase(g, &g->nodes[ids[comb]], train) == PHASE_COMBINE)
			comb++;
		if (g->nodes[ids[j]].chunk_copy) {
			barrier(u); /* every chunk's partial is written */
			if (dist)
				cg_dist_sync_partials(c, ids + j, comb - j);
			continue;
		}
		/* the combine ops: every chunk's partial is written; each reads
		 * the combine before it or is read by the next segment */
		barrier(u);
		if (dist)
			cg_dist_sync_partials(c, ids + j, comb - j);
		for (; j < n && body_phase(g, &g->nodes[ids[j]], train) == PHASE_COMBINE; j++) {
			call_op(u, ids[j], train, c->tid, c->nth, ck0);
			barrier(u);
			tick(u, u->op_index[ids[j]]); /* the combine's time: its op and the waits around it */
		}
	}
	if (metrics || post)
		barrier(u);
	if (dist && (metrics || post))
		cg_dist_sync_final(c, plan);
	if (metrics)
		sum_metrics(c, nsteps);
	for (int j = 0; j < n; j++)
		if (ir_node_phase(g, &g->nodes[ids[j]]) == PHASE_UPDATE) {
			if (!rest) {
				call_op(u, ids[j], train, c->tid, c->nth, ck0);
				tick(u, u->op_index[ids[j]]);
				continue;
			}
			/* the owned weights, each block updated by the thread that
			 * computed its gradient; then every other parameter */
			LLVMValueRef a[3] = {c->args, c->tid, c->nth};
			cg_if o = cg_if_begin(c, solo);
			for (int q = 0; q < n; q++)
				if (owned[q]) {
					LLVMBuildCall2(c->B, u->m->body_fn_t, owned_fns[q], a, 3, "");
					tick(u, u->op_index[ids[q]]);
				}
			LLVMBuildCall2(c->B, u->m->body_fn_t, rest, a, 3, "");
			cg_if_else(c, &o);
			call_op(u, ids[j], train, c->tid, c->nth, ck0);
			cg_if_end(c, &o);
			tick(u, u->op_index[ids[j]]);
		}
	LLVMBuildRetVoid(c->B);
	return fn;
}

static int entry_ops(ir_graph *g, unsigned entry, int *ids);

/* infer() for n <= NNC_SMALL_BATCH: the ops of the sample-major copy
 * (small.c), run by thread 0 alone; the other threads return at once. */
static LLVMValueRef emit_infer(cg_unit *u, cg_unit *few, const char *name, const int *ids, int n)
{
	u->infer_body = true;
	LLVMValueRef big = emit_body(u, nnc_sprintf("%s.batch", name), false, ids, n);
	u->infer_body = false;
	if (!few)
		return big;
	cg_ctx *c = &few->c;
	ir_graph *s = c->g;
	int *sids = nnc_alloc(sizeof(int) * (size_t)s->n);
	int ns = entry_ops(s, IR_ENTRY_INFER, sids);
	lower_ops(few, sids, ns);
	LLVMValueRef small = LLVMAddFunction(c->M, nnc_sprintf("%s.few", name), u->m->body_fn_t);
	LLVMSetLinkage(small, LLVMInternalLinkage);
	cg_fn_attrs(c, small);
	mark_quick(u->m, c->C, small);
	begin_fn(c, small);
	LLVMValueRef ck = chunk_args(c, cg_alloca(c, c->abi.chunk, "chunk0"), cg_i64(c, 0), cg_arg(c, CG_ARGS_n));
	for (int k = 0; k < ns; k++)
		call_op(few, sids[k], false, cg_i32(c, 0), cg_i32(c, 1), ck);
	LLVMBuildRetVoid(c->B);

	c = &u->c;
	LLVMValueRef fn = LLVMAddFunction(c->M, name, u->m->body_fn_t);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	cg_fn_attrs(c, fn);
	mark_quick(u->m, c->C, fn);
	begin_fn(c, fn);
	LLVMValueRef a[3] = {c->args, c->tid, c->nth};
	LLVMValueRef cond = LLVMBuildICmp(c->B, LLVMIntSLE, cg_arg(c, CG_ARGS_n), cg_i64(c, NNC_SMALL_BATCH), "");
	cg_if f = cg_if_begin(c, cond);
	cg_if t0 = cg_if_begin(c, LLVMBuildICmp(c->B, LLVMIntEQ, c->tid, cg_i32(c, 0), ""));
	LLVMValueRef one[3] = {c->args, cg_i32(c, 0), cg_i32(c, 1)};
	LLVMBuildCall2(c->B, u->m->body_fn_t, small, one, 3, "");
	cg_if_end(c, &t0);
	cg_if_else(c, &f);
	LLVMBuildCall2(c->B, u->m->body_fn_t, big, a, 3, "");
	cg_if_end(c, &f);
	LLVMBuildRetVoid(c->B);
	return fn;
}

/* ---- the model descriptor (mirrors runtime/nnrt.h) ---- */

static LLVMValueRef cstr(cg_ctx *c, const char *s)
{
	if (!s)
		return LLVMConstNull(c->ptr);
	size_t len = strlen(s);
	LLVMValueRef init = LLVMConstStringInContext2(c->C, s, len, 0);
	LLVMValueRef g = LLVMAddGlobal(c->M, LLVMTypeOf(init), ".str");
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetLinkage(g, LLVMPrivateLinkage);
	LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
	return g;
}

static LLVMValueRef ci32(cg_ctx *c, int64_t v) { return LLVMConstInt(c->i32, (unsigned long long)v, 1); }
static LLVMValueRef ci64(cg_ctx *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }

static LLVMValueRef shape4(cg_ctx *c, int rank, const int64_t *d)
{
	LLVMValueRef e[4];
	for (int i = 0; i < 4; i++)
		e[i] = ci64(c, i < rank ? d[i] : 0);
	return LLVMConstArray2(c->i64, e, 4);
}

/* The fields are filled by name (cg_abi.h), one statement each, in the
 * order the globals they create (strings, tables) should appear. */
static LLVMValueRef data_spec(cg_ctx *c, const nnrt_data_spec *d)
{
	LLVMValueRef f[CG_DATA_NFIELDS];
	f[CG_DATA_kind] = ci32(c, d->kind);
	f[CG_DATA_has_header] = ci32(c, d->has_header);
	f[CG_DATA_path_x] = cstr(c, d->path_x);
	f[CG_DATA_path_y] = cstr(c, d->path_y);
	f[CG_DATA_cols_x] = cstr(c, d->cols_x);
	f[CG_DATA_cols_y] = cstr(c, d->cols_y);
	f[CG_DATA_scale] = cg_f32(c, d->scale);
	f[CG_DATA_shift] = cg_f32(c, d->shift);
	f[CG_DATA_noise] = cg_f32(c, d->noise);
	f[CG_DATA_pad_] = cg_f32(c, 0);
	f[CG_DATA_count] = ci64(c, d->count);
	f[CG_DATA_seed] = ci64(c, d->seed);
	f[CG_DATA_classes] = ci64(c, d->classes);
	return LLVMConstNamedStruct(c->abi.data_spec, f, CG_DATA_NFIELDS);
}

static LLVMValueRef schedule(cg_ctx *c, const nnrt_schedule *s)
{
	LLVMValueRef f[CG_SCHED_NFIELDS], ms[NNRT_MAX_MILESTONES];
	f[CG_SCHED_kind] = ci32(c, s->kind);
	f[CG_SCHED_n_milestones] = ci32(c, s->n_milestones);
	f[CG_SCHED_warmup] = ci64(c, s->warmup);
	f[CG_SCHED_a] = LLVMConstReal(c->f64, s->a);
	f[CG_SCHED_b] = LLVMConstReal(c->f64, s->b);
	f[CG_SCHED_c] = LLVMConstReal(c->f64, s->c);
	f[CG_SCHED_d] = LLVMConstReal(c->f64, s->d);
	for (int k = 0; k < NNRT_MAX_MILESTONES; k++)
		ms[k] = LLVMConstReal(c->f64, s->milestones[k]);
	f[CG_SCHED_milestones] = LLVMConstArray2(c->f64, ms, NNRT_MAX_MILESTONES);
	f[CG_SCHED_mom_base] = LLVMConstReal(c->f64, s->mom_base);
	f[CG_SCHED_mom_max] = LLVMConstReal(c->f64, s->mom_max);
	return LLVMConstNamedStruct(c->abi.schedule, f, CG_SCHED_NFIELDS);
}

/* The rows of the parameter table, or of the state table (the same
 * nnrt_param_info rows), as the global `prefix`_`what`. */
static LLVMValueRef param_table(cg_ctx *c, const char *prefix, const char *what, const ir_param *params, int np)
{
	LLVMTypeRef pt = c->abi.param_info;
	LLVMValueRef *rows = nnc_alloc(sizeof(LLVMValueRef) * (size_t)np + 1);
	for (int i = 0; i < np; i++) {
		const ir_param *p = &params[i];
		LLVMValueRef v[CG_PARAM_NFIELDS];
		v[CG_PARAM_name] = cstr(c, p->name);
		v[CG_PARAM_offset] = ci64(c, p->offset);
		v[CG_PARAM_size] = ci64(c, p->size);
		v[CG_PARAM_shape] = shape4(c, p->rank, p->dims);
		v[CG_PARAM_rank] = ci32(c, p->rank);
		v[CG_PARAM_init] = ci32(c, p->init);
		v[CG_PARAM_init_arg] = cg_f32(c, p->init_arg);
		v[CG_PARAM_fan_in] = cg_f32(c, p->fan_in);
		v[CG_PARAM_fan_out] = cg_f32(c, p->fan_out);
		v[CG_PARAM_pad_] = cg_f32(c, 0);
		rows[i] = LLVMConstNamedStruct(pt, v, CG_PARAM_NFIELDS);
	}
	LLVMValueRef arr = LLVMConstArray2(pt, rows, (uint64_t)np);
	LLVMValueRef gv = LLVMAddGlobal(c->M, LLVMTypeOf(arr), nnc_sprintf("%s_%s", prefix, what));
	LLVMSetInitializer(gv, arr);
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMInternalLinkage);
	return gv;
}

/* The ops of the training step with their kernel class and FLOPs; also
 * numbers them (c->op_index) for the profile ticks (the others tick -1:
 * their time is nobody's). */
static LLVMValueRef op_table(cg_unit *u, const char *prefix, int *count)
{
	cg_ctx *c = &u->c;
	ir_graph *g = c->g;
	LLVMTypeRef ot = c->abi.op_info;
	LLVMValueRef *rows = nnc_alloc(sizeof(LLVMValueRef) * (size_t)(g->n + 1));
	int n = 0;
	/* the ops the profile times: the train step's (or, --inference-only,
	 * the eval step's), not the layers folded for eval and inference only */
	uint8_t timed = IR_ENTRY_EVAL;
	for (int i = 0; i < g->n; i++)
		if (!g->nodes[i].dead && (g->nodes[i].entries & IR_ENTRY_TRAIN))
			timed = IR_ENTRY_TRAIN;
	/* with the owned tail, a weight's update runs (and is timed) with its
	 * gradient: its share of the update's FLOPs goes there, the rest stays
	 * with the update */
	const ir_node *upd = timed == IR_ENTRY_TRAIN ? tail_update(u) : NULL;
	double per_float = upd ? ir_update_flops(g, upd) / (double)g->param_floats : 0, owned_flops = 0;
	for (int i = 0; upd && i < g->n; i++)
		if (!g->nodes[i].dead && g->nodes[i].late)
			owned_flops += per_float * (double)g->params[g->nodes[i].param].size;
	for (int i = 0; i < g->n; i++) {
		ir_node *nd = &g->nodes[i];
		if (!has_code(nd) || !(nd->entries & timed))
			continue;
		u->op_index[i] = n;
		const char *name = nd->name ? nnc_sprintf("%s %s", ir_op_name(nd->op), nd->name)
				   : nd->param >= 0 && (nd->storage == ST_GRAD)
					   ? nnc_sprintf("%s d%s", ir_op_name(nd->op), g->params[nd->param].name)
					   : nnc_sprintf("%s %%%d", ir_op_name(nd->op), i);
		double per_step = 0;
		if (ir_is_update(nd->op))
			per_step = ir_update_flops(g, nd);
		double per_sample = ir_is_update(nd->op) ? 0 : ir_node_flops(g, nd);
		if (upd && nd->late) {
			per_step = per_float * (double)g->params[nd->param].size;
			name = nnc_sprintf("%s+update d%s", ir_op_name(nd->op), g->params[nd->param].name);
		} else if (nd == upd) {
			per_step -= owned_flops;
		}
		LLVMValueRef v[CG_OPINFO_NFIELDS];
		v[CG_OPINFO_name] = cstr(c, name);
		v[CG_OPINFO_kind] = cstr(c, ir_op_kind(nd->op));
		v[CG_OPINFO_flops_per_sample] = LLVMConstReal(c->f64, per_sample);
		v[CG_OPINFO_flops_per_step] = LLVMConstReal(c->f64, per_step);
		rows[n++] = LLVMConstNamedStruct(ot, v, CG_OPINFO_NFIELDS);
	}
	*count = n;
	LLVMValueRef arr = LLVMConstArray2(ot, rows, (uint64_t)n);
	LLVMValueRef gv = LLVMAddGlobal(c->M, LLVMTypeOf(arr), nnc_sprintf("%s_ops", prefix));
	LLVMSetInitializer(gv, arr);
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMInternalLinkage);
	return gv;
}

static void emit_model(cg_ctx *c, const nnc_train_config *cfg, const cg_options *opt, const char *prefix, LLVMValueRef train,
		       LLVMValueRef eval, LLVMValueRef infer, LLVMValueRef ops, int n_ops)
{
	ir_graph *g = c->g;
	ir_node *in = &g->nodes[g->input];
	LLVMTypeRef mt = c->abi.model;
	LLVMTargetDataRef td = LLVMGetModuleDataLayout(c->M);
	int64_t out_size = g->output >= 0 ? g->nodes[g->output].size : 0;
	LLVMValueRef v[CG_MODEL_NFIELDS];
	v[CG_MODEL_struct_size] = ci64(c, (int64_t)LLVMABISizeOfType(td, mt));
	v[CG_MODEL_abi_version] = ci64(c, NNRT_ABI_VERSION);
	v[CG_MODEL_name] = cstr(c, g->model_name);
	v[CG_MODEL_source] = cstr(c, g->src->path);
	v[CG_MODEL_fingerprint] = LLVMConstInt(c->i64, g->fingerprint, 0);
	v[CG_MODEL_input_shape] = shape4(c, in->rank, in->dims);
	v[CG_MODEL_input_rank] = ci32(c, in->rank);
	v[CG_MODEL_label_kind] = ci32(c, g->label_kind);
	v[CG_MODEL_input_size] = ci64(c, in->size);
	v[CG_MODEL_label_size] = ci64(c, g->label_size);
	v[CG_MODEL_output_size] = ci64(c, out_size);
	v[CG_MODEL_batch] = ci64(c, g->batch);
	v[CG_MODEL_loss] = ci32(c, g->loss_kind);
	v[CG_MODEL_optimizer] = ci32(c, cfg->opt.kind);
	v[CG_MODEL_n_params] = ci32(c, g->nparams);
	v[CG_MODEL_n_state] = ci32(c, g->nstates);
	v[CG_MODEL_params] = param_table(c, prefix, "params", g->params, g->nparams);
	v[CG_MODEL_state] = g->nstates ? param_table(c, prefix, "state", g->states, g->nstates) : LLVMConstNull(c->ptr);
	v[CG_MODEL_param_floats] = ci64(c, g->param_floats);
	v[CG_MODEL_opt_floats] = ci64(c, g->opt_floats);
	v[CG_MODEL_ws_floats] = ci64(c, g->ws_floats);
	v[CG_MODEL_state_floats] = ci64(c, g->state_floats);
	v[CG_MODEL_lr] = cg_f32(c, cfg->opt.lr);
	v[CG_MODEL_momentum] = cg_f32(c, cfg->opt.momentum);
	v[CG_MODEL_beta1] = cg_f32(c, cfg->opt.beta1);
	v[CG_MODEL_beta2] = cg_f32(c, cfg->opt.beta2);
	v[CG_MODEL_eps] = cg_f32(c, cfg->opt.eps);
	v[CG_MODEL_weight_decay] = cg_f32(c, cfg->opt.weight_decay);
	v[CG_MODEL_alpha] = cg_f32(c, cfg->opt.alpha);
	v[CG_MODEL_dampening] = cg_f32(c, cfg->opt.dampening);
	v[CG_MODEL_opt_flags] = ci32(c, cfg->opt.flags);
	v[CG_MODEL_clip_norm] = cg_f32(c, cfg->opt.clip_norm);
	v[CG_MODEL_clip_value] = cg_f32(c, cfg->opt.clip_value);
	v[CG_MODEL_accumulate] = ci64(c, cfg->opt.accumulate > 1 ? cfg->opt.accumulate : 1);
	v[CG_MODEL_pad2_] = cg_f32(c, 0);
	v[CG_MODEL_schedule] = schedule(c, &cfg->sched);
	v[CG_MODEL_epochs] = ci64(c, cfg->epochs);
	v[CG_MODEL_seed] = ci64(c, cfg->seed);
	v[CG_MODEL_train] = data_spec(c, &cfg->train);
	v[CG_MODEL_test] = data_spec(c, &cfg->test);
	v[CG_MODEL_train_step] = train ? train : LLVMConstNull(c->ptr);
	v[CG_MODEL_eval_step] = eval ? eval : LLVMConstNull(c->ptr);
	v[CG_MODEL_infer] = infer ? infer : LLVMConstNull(c->ptr);
	v[CG_MODEL_ops] = ops;
	v[CG_MODEL_n_ops] = ci32(c, n_ops);
	v[CG_MODEL_profiled] = ci32(c, opt->profile);
	v[CG_MODEL_cpu_features] = cstr(c, nnc_target_required(opt->target));
	v[CG_MODEL_aug_crop_pad] = ci32(c, cfg->aug.spec.crop_pad);
	v[CG_MODEL_aug_erase_size] = ci32(c, cfg->aug.spec.erase_size);
	v[CG_MODEL_aug_flip_p] = cg_f32(c, cfg->aug.spec.flip_p);
	v[CG_MODEL_aug_erase_p] = cg_f32(c, cfg->aug.spec.erase_p);
	v[CG_MODEL_val_fraction] = cg_f32(c, cfg->val_fraction);
	v[CG_MODEL_es_metric] = ci32(c, (int32_t)cfg->es_metric);
	v[CG_MODEL_es_patience] = ci32(c, (int32_t)cfg->es_patience);
	v[CG_MODEL_es_min_delta] = cg_f32(c, cfg->es_min_delta);
	v[CG_MODEL_precision] = ci32(c, opt->bf16 ? NNRT_PRECISION_BF16 : NNRT_PRECISION_FP32);
	v[CG_MODEL_val] = data_spec(c, &cfg->val);
	LLVMValueRef init = LLVMConstNamedStruct(mt, v, CG_MODEL_NFIELDS);
	LLVMValueRef gv = LLVMAddGlobal(c->M, mt, nnc_sprintf("%s_model", prefix));
	LLVMSetInitializer(gv, init);
	LLVMSetGlobalConstant(gv, 1);

	if (opt->emit_main) {
		LLVMTypeRef mp[2] = {c->i32, c->ptr};
		LLVMTypeRef main_t = LLVMFunctionType(c->i32, mp, 2, 0);
		LLVMValueRef mainf = LLVMAddFunction(c->M, "main", main_t);
		LLVMTypeRef np[3] = {c->ptr, c->i32, c->ptr};
		LLVMTypeRef nm_t = LLVMFunctionType(c->i32, np, 3, 0);
		LLVMValueRef nm = LLVMAddFunction(c->M, "nnrt_main", nm_t);
		LLVMPositionBuilderAtEnd(c->B, LLVMAppendBasicBlockInContext(c->C, mainf, "entry"));
		LLVMValueRef a[3] = {gv, LLVMGetParam(mainf, 0), LLVMGetParam(mainf, 1)};
		LLVMBuildRet(c->B, LLVMBuildCall2(c->B, nm_t, nm, a, 3, ""));
	}
}

/* The nodes with code that `entry` runs, in order: its body's op calls. */
static int entry_ops(ir_graph *g, unsigned entry, int *ids)
{
	int n = ir_entry_nodes(g, entry, ids), k = 0;
	for (int i = 0; i < n; i++)
		if (has_code(&g->nodes[ids[i]]))
			ids[k++] = ids[i];
	return k;
}

LLVMModuleRef nnc_lower(ir_graph *g, const nnc_train_config *cfg, const cg_options *opt, LLVMContextRef ctx)
{
	cg_ctx proto = {0};
	cg_build_init(&proto, ctx, LLVMModuleCreateWithNameInContext(g->model_name, ctx));
	proto.abi = cg_abi_types(ctx);
	cg_options o = *opt;
	const char *env = getenv("NNC_SHARE_KERNELS");
	if (env && !strcmp(env, "0"))
		o.no_share = true;
	env = getenv("NNC_OWNED_TAIL");
	if (env && !strcmp(env, "0"))
		o.no_owned = true;
	opt = &o;
	cg_module m = {.opt = opt};
	LLVMTypeRef op_params[5] = {proto.ptr, proto.i32, proto.i32, proto.ptr, proto.ptr};
	m.op_fn_t = LLVMFunctionType(proto.vt, op_params, 5, 0);
	m.body_fn_t = LLVMFunctionType(proto.vt, op_params, 3, 0);
	m.barrier_t = LLVMFunctionType(proto.vt, NULL, 0, 0);
	m.barrier_fn = LLVMAddFunction(proto.M, "nnrt_barrier", m.barrier_t);

	/* target triple and data layout of the machine emit.c generates code
	 * for (target.c), so struct layout matches C */
	LLVMTargetMachineRef tm = nnc_target_machine(opt->target, opt->opt_level);
	char *triple = LLVMGetTargetMachineTriple(tm);
	LLVMSetTarget(proto.M, triple);
	LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
	char *dl = LLVMCopyStringRepOfTargetData(td);
	LLVMSetDataLayout(proto.M, dl);
	/* register tiles sized for the target's vector registers (cg_build.h) */
	proto.vacc = opt->vacc ? opt->vacc : nnc_llvm_feature_enabled(tm, "avx512f") ? 24 : 6;
	cg_cache_sizes(opt, &proto.l1, &proto.l2); /* and caches, for blocking the products */
	proto.bf16 = opt->bf16;
	if (opt->bf16 && !nnc_llvm_feature_enabled(tm, "avx512bf16"))
		nnc_internal_error(__FILE__, __LINE__, "bf16 products for a target without avx512bf16");
	LLVMDisposeMessage(dl);
	LLVMDisposeTargetData(td);
	LLVMDisposeTargetMachine(tm);
	LLVMDisposeMessage(triple);

	cg_unit main_unit = new_unit(&m, &proto, g, ""), *u = &main_unit;
	cg_unit few_unit, *few = NULL;
	if (opt->small) {
		few_unit = new_unit(&m, &proto, opt->small, "small.");
		few = &few_unit;
	}
	cg_ctx *c = &u->c;
	const char *prefix = opt->prefix ? opt->prefix : g->model_name;
	int *ids = nnc_alloc(sizeof(int) * (size_t)g->n);
	int n_ops = 0;
	LLVMValueRef ops = op_table(u, prefix, &n_ops);
	if (opt->profile) {
		LLVMTypeRef i32 = c->i32;
		m.tick_t = LLVMFunctionType(c->vt, &i32, 1, 0);
		m.tick_fn = LLVMAddFunction(c->M, "nnrt_prof_tick", m.tick_t);
	}
	/* one op function per node that some entry runs; each entry's body
	 * calls those of its own node list (ir.h, IR_ENTRY_*) */
	int nl = 0;
	for (int i = 0; i < g->n; i++)
		if (has_code(&g->nodes[i]) && g->nodes[i].entries)
			ids[nl++] = i;
	lower_ops(u, ids, nl);

	LLVMValueRef train = NULL, eval, infer = NULL;
	int n;
	if (!opt->inference_only) {
		n = entry_ops(g, IR_ENTRY_TRAIN, ids);
		train = emit_body(u, nnc_sprintf("%s_train_step", prefix), true, ids, n);
	}
	n = entry_ops(g, IR_ENTRY_EVAL, ids);
	eval = emit_body(u, nnc_sprintf("%s_eval_step", prefix), false, ids, n);
	if (g->output >= 0) {
		n = entry_ops(g, IR_ENTRY_INFER, ids);
		infer = emit_infer(u, few, nnc_sprintf("%s_infer", prefix), ids, n);
	}
	emit_model(c, cfg, opt, prefix, train, eval, infer, ops, n_ops);
	LLVMDisposeBuilder(c->B);
	return c->M;
}
