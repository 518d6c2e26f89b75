/*
 * jit_harness.c - see jit_harness.h.
 */
#include "jit_harness.h"

#include <criterion/criterion.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "diag.h"
#include "util.h"

/* The runtime functions generated code calls, kept in this executable
 * (a static libnnrt.a gives only what something references) so that MCJIT
 * resolves them from it (-rdynamic): the data-parallel calls of the
 * chunked bodies are otherwise unreferenced here. */
__attribute__((used)) static void (*const th_runtime_calls[])(void) = {
	(void (*)(void))nnrt_dist_span,
	(void (*)(void))nnrt_dist_sync,
};

uint64_t rng_next(rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double rng_uniform(rng *r, double lo, double hi)
{
	return lo + (hi - lo) * (double)(rng_next(r) >> 11) * 0x1p-53;
}

nnc_source *th_make_source(const char *path, const char *text)
{
	nnc_source *src = nnc_alloc(sizeof *src);
	src->path = path;
	src->text = text;
	src->len = (long)strlen(text);
	return src;
}

int64_t th_chunks;
int th_vacc;
int64_t th_l1, th_l2;
void (*th_graph_hook)(ir_graph *g);
void (*th_plan_hook)(ir_graph *g);
bool th_fold_eval = true;
bool th_owned = true;
bool th_bf16;

/* The graphs th_build_graph made, each with its training configuration. */
static struct built {
	const ir_graph *g;
	nnc_train_config cfg;
} *built;
static int nbuilt;

const nnc_train_config *th_config(const ir_graph *g)
{
	for (int i = nbuilt - 1; i >= 0; i--)
		if (built[i].g == g)
			return &built[i].cfg;
	cr_assert_fail("graph %p was not made by th_build_graph", (const void *)g);
	return NULL;
}

ir_graph *th_build_graph(const char *path, const char *text, bool fuse)
{
	nnc_train_config cfg;
	nnc_source *src = th_make_source(path, text);
	nnc_buf diags = {0};
	nnc_diag_reset();
	nnc_diag_capture(&diags);
	nnc_program *prog = nnc_parse(src);
	ir_graph *g = prog ? nnc_sema(prog, &cfg) : NULL;
	nnc_diag_capture(NULL);
	cr_assert(g, "the program does not compile:\n%s\n%s", diags.data ? diags.data : "", text);
	nnc_buf_free(&diags);
	built = nnc_realloc_array(built, (size_t)nbuilt, (size_t)nbuilt + 1, sizeof *built);
	built[nbuilt++] = (struct built){g, cfg};
	if (th_graph_hook)
		th_graph_hook(g);
	nnc_autodiff(g, &cfg.opt);
	nnc_add_inference_tail(g);
	if (fuse)
		nnc_fuse(g);
	if (th_plan_hook)
		th_plan_hook(g);
	else if (fuse && th_fold_eval)
		nnc_fold_batchnorm_eval(g); /* as the driver does after fusion */
	g->chunks = th_chunks;
	nnc_plan(g);
	th_check_plan(g);
	return g;
}

static void jit_init(void)
{
	static int done;
	if (done)
		return;
	LLVMLinkInMCJIT();
	cr_assert(!LLVMInitializeNativeTarget(), "no native target");
	cr_assert(!LLVMInitializeNativeAsmPrinter(), "no native asm printer");
	done = 1;
}

static void verify_module(LLVMModuleRef mod, const char *when)
{
	char *msg = NULL;
	if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg))
		cr_assert_fail("the generated module does not verify %s:\n%s", when, msg);
	LLVMDisposeMessage(msg);
}

jitted th_jit(ir_graph *g, bool naive, bool optimise)
{
	jit_init();
	jitted j = {.g = g};
	j.ctx = LLVMContextCreate();
	cg_options co = {.opt_level = optimise ? 2 : 0, .naive = naive, .small = naive ? NULL : nnc_small_batch(g),
			 .vacc = th_vacc, .l1_bytes = th_l1, .l2_bytes = th_l2, .no_owned = !th_owned,
			 .bf16 = th_bf16};
	th_check_plan(g); /* also a graph a test planned itself */
	if (co.small)
		th_check_plan(co.small);
	LLVMModuleRef mod = nnc_lower(g, th_config(g), &co, j.ctx);
	verify_module(mod, "after lowering");

	/* the machine nnc_lower laid the module out for (target.c, this host) */
	LLVMTargetMachineRef tm = nnc_target_machine(NULL, optimise ? 2 : 0);
	char *cpu = LLVMGetTargetMachineCPU(tm), *features = LLVMGetTargetMachineFeatureString(tm), *err = NULL;
	/* MCJIT would pick a generic CPU: compile for this host, as nnc_emit does */
	for (LLVMValueRef fn = LLVMGetFirstFunction(mod); fn; fn = LLVMGetNextFunction(fn))
		if (LLVMCountBasicBlocks(fn)) {
			LLVMAddTargetDependentFunctionAttr(fn, "target-cpu", cpu);
			LLVMAddTargetDependentFunctionAttr(fn, "target-features", features);
		}
	LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
	LLVMErrorRef e = LLVMRunPasses(mod, nnc_pass_pipeline(optimise ? 2 : 0), tm, po);
	LLVMDisposePassBuilderOptions(po);
	if (e)
		cr_assert_fail("LLVMRunPasses: %s", LLVMGetErrorMessage(e));
	verify_module(mod, "after optimisation");
	LLVMDisposeTargetMachine(tm);
	LLVMDisposeMessage(cpu);
	LLVMDisposeMessage(features);

	struct LLVMMCJITCompilerOptions o;
	LLVMInitializeMCJITCompilerOptions(&o, sizeof o);
	o.OptLevel = optimise ? 2 : 0;
	cr_assert(!LLVMCreateMCJITCompilerForModule(&j.ee, mod, &o, sizeof o, &err), "MCJIT: %s", err);
	const char *name = nnc_sprintf("%s_model", g->model_name);
	uint64_t addr = LLVMGetGlobalValueAddress(j.ee, name);
	cr_assert(addr, "the JIT has no %s", name);
	j.m = (const nnrt_model *)(uintptr_t)addr;
	cr_assert_eq(j.m->struct_size, (int64_t)sizeof(nnrt_model), "nnrt_model layout differs from nnrt.h");
	cr_assert_eq(j.m->abi_version, NNRT_ABI_VERSION);
	cr_assert_eq(j.m->param_floats, g->param_floats);
	cr_assert_eq(j.m->ws_floats, g->ws_floats);
	return j;
}

/* Floats a tensor occupies: a chunk's rows (bpad for batch-innermost tensors). */
static int64_t ws_floats_of(const ir_graph *g, const ir_node *n)
{
	if (!n->batched)
		return n->size;
	return n->size * (n->layout == LAYOUT_CN ? g->bpad : g->cbatch);
}

/* Checks the workspace plan of the nodes of `entries`: the regions (unbatched
 * tensors, partial gradients, partial metrics, chunks) follow each other
 * inside ws_floats; every ST_WS tensor lies in its region (unbatched: the
 * first; batched: a chunk, at an offset from the chunk's start) at a
 * 16-float boundary; two tensors of one region whose lifetimes (definition
 * to last reader among the nodes of `entries`, IR_ENTRY_*) overlap do not share memory, and with several
 * chunks unbatched tensors (written before the chunks run) share with none.
 * Returns NULL or the first violation (arena). */
const char *th_plan_violation(ir_graph *g, unsigned entries)
{
	bool chunked = g->chunks > 1;
	if (g->chunks < 1 || g->cbatch * g->chunks < g->batch || g->bpad < g->cbatch || g->bpad % 16)
		return nnc_sprintf("%lld chunks of %lld samples (bpad %lld) for batch %lld", (long long)g->chunks,
				   (long long)g->cbatch, (long long)g->bpad, (long long)g->batch);
	/* the chunks' partial gradients: what cg.c's bodies use whenever the
	 * step has an update, whether or not a node writes a gradient */
	int64_t partials = chunked && ir_has_update(g) ? (g->chunks - 1) * g->param_floats : 0;
	if (g->ws_partials < g->ws_shared || g->ws_metrics < g->ws_partials + partials ||
	    g->ws_norm < g->ws_metrics + (chunked ? 4 * g->chunks : 0) || g->ws_chunk0 < g->ws_norm ||
	    g->ws_chunk0 + g->chunks * g->ws_chunk > g->ws_floats || g->ws_chunk0 % 16 || g->ws_chunk % 16)
		return nnc_sprintf("workspace regions overlap: shared %lld, partials %lld, metrics %lld, chunks %lld x %lld "
				   "from %lld, total %lld",
				   (long long)g->ws_shared, (long long)g->ws_partials, (long long)g->ws_metrics,
				   (long long)g->chunks, (long long)g->ws_chunk, (long long)g->ws_chunk0,
				   (long long)g->ws_floats);
	int *last = nnc_alloc(sizeof(int) * (size_t)g->n);
	for (int i = 0; i < g->n; i++)
		last[i] = i;
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || !(n->entries & entries))
			continue;
		for (int k = 0; k < n->nin; k++)
			if (last[n->in[k]] < i)
				last[n->in[k]] = i;
		/* an activation written by its operand's epilogue is written while
		 * that op reads its own operands */
		const ir_node *p = &g->nodes[n->in[0]];
		for (int k = 0; n->in_epilogue && k < p->nin; k++)
			if (last[p->in[k]] < i)
				last[p->in[k]] = i;
	}
	/* a node standing for another (a folded layer) writes that tensor: it
	 * lives while that one is read */
	for (int i = 0; i < g->n; i++) {
		int sf = ir_stands_for(&g->nodes[i]);
		if (!g->nodes[i].dead && sf >= 0 && last[i] < last[sf])
			last[i] = last[sf];
	}
	for (int i = 0; i < g->n; i++) {
		ir_node *a = &g->nodes[i];
		if (!(a->entries & entries))
			continue;
		if (!a->dead && (a->storage == ST_PARAM || a->storage == ST_GRAD)) {
			/* a parameter or its gradient: exactly the parameter's place */
			const ir_param *p = a->param >= 0 && a->param < g->nparams ? &g->params[a->param] : NULL;
			if (!p || a->offset != p->offset || a->size != p->size || a->batched)
				return nnc_sprintf("%%%d %s in %s+%lld is not the place of parameter %d", i,
						   ir_op_name(a->op), a->storage == ST_PARAM ? "params" : "grads",
						   (long long)a->offset, a->param);
		}
		if (a->dead || a->storage != ST_WS)
			continue;
		/* a per-chunk partial (ir_per_chunk) lives in each chunk like a batched tensor */
		bool a_chunk = a->batched || ir_per_chunk(a);
		int64_t asz = ws_floats_of(g, a), region = a_chunk ? g->ws_chunk : g->ws_shared;
		if (a->offset < 0 || a->offset % 16 || a->offset + asz > region)
			return nnc_sprintf("%%%d %s: [%lld, %lld) is misplaced in a region of %lld", i, ir_op_name(a->op),
					   (long long)a->offset, (long long)(a->offset + asz), (long long)region);
		for (int j = i + 1; j < g->n; j++) {
			ir_node *b = &g->nodes[j];
			if (b->dead || !(b->entries & entries) || b->storage != ST_WS || (b->batched || ir_per_chunk(b)) != a_chunk)
				continue;
			if (ir_stands_for(b) == i || ir_stands_for(a) == j)
				continue; /* one tensor: b writes a's in eval and inference */
			int64_t bsz = ws_floats_of(g, b);
			/* b is defined while a is still read */
			bool live_together = j <= last[i] || (chunked && !a_chunk);
			bool share = a->offset < b->offset + bsz && b->offset < a->offset + asz;
			if (live_together && share)
				return nnc_sprintf("%%%d %s [%lld, %lld) (last read by %%%d) overlaps %%%d %s [%lld, %lld)",
						   i, ir_op_name(a->op), (long long)a->offset, (long long)(a->offset + asz),
						   last[i], j, ir_op_name(b->op), (long long)b->offset,
						   (long long)(b->offset + bsz));
		}
	}
	return NULL;
}

void th_check_plan(ir_graph *g)
{
	const char *why = th_plan_violation(g, IR_ENTRY_TRAIN | IR_ENTRY_EVAL);
	cr_assert(!why, "%s: the memory plan is wrong: %s", g->model_name, why);
	why = th_plan_violation(g, IR_ENTRY_INFER);
	cr_assert(!why, "%s: the memory plan of the inference tail is wrong: %s", g->model_name, why);
}

void th_jit_free(jitted *j)
{
	LLVMDisposeExecutionEngine(j->ee);
	LLVMContextDispose(j->ctx);
}

float *th_falloc(int64_t n)
{
	size_t bytes = ((size_t)(n < 16 ? 16 : n) * sizeof(float) + 63) / 64 * 64;
	float *p = aligned_alloc(64, bytes);
	cr_assert(p);
	memset(p, 0, bytes);
	return p;
}

state th_state_new(const nnrt_model *m)
{
	state s = {.m = m};
	s.params = th_falloc(m->param_floats);
	s.grads = th_falloc(m->param_floats);
	s.opt = th_falloc(m->opt_floats);
	s.ws = th_falloc(m->ws_floats);
	s.x = th_falloc(m->batch * m->input_size);
	s.out_cap = m->batch * m->output_size + 16;
	s.out = th_falloc(s.out_cap);
	s.y = th_falloc(m->batch * m->label_size);
	s.st = th_falloc(m->state_floats);
	for (int i = 0; i < m->n_state; i++)
		for (int64_t k = 0; k < m->state[i].size; k++)
			s.st[m->state[i].offset + k] = m->state[i].init_arg;
	return s;
}

void th_state_free(state *s)
{
	free(s->params);
	free(s->grads);
	free(s->opt);
	free(s->ws);
	free(s->x);
	free(s->out);
	free(s->y);
	free(s->st);
}

void th_run_threads(state *s, nnrt_body_fn body, int64_t n, int threads)
{
	const nnrt_model *m = s->m;
	cr_assert(body);
	for (int64_t i = 0; i < m->ws_floats; i++)
		s->ws[i] = NAN;
	for (int64_t i = n * m->output_size; i < s->out_cap; i++)
		s->out[i] = TH_CANARY;
	s->metrics[0] = s->metrics[1] = -1;
	float hp[sizeof s->a.hp / sizeof(float)];
	memcpy(hp, s->a.hp, sizeof hp);
	s->a = (nnrt_step_args){.params = s->params, .grads = s->grads, .opt = s->opt, .ws = s->ws, .x = s->x,
				.y = s->y, .out = s->out, .metrics = s->metrics, .n = n, .state = s->st};
	memcpy(s->a.hp, hp, sizeof hp);
	if (threads > 0)
		nnrt_run_threads(body, &s->a, threads);
	else
		nnrt_run(body, &s->a);
	for (int64_t i = n * m->output_size; i < s->out_cap; i++)
		cr_assert(s->out[i] == TH_CANARY, "%s wrote out[%lld], past its %lld x %lld outputs", m->name,
			  (long long)i, (long long)n, (long long)m->output_size);
}

void th_run(state *s, nnrt_body_fn body, int64_t n)
{
	th_run_threads(s, body, n, 0);
}

void th_fill_tokens(state *s, int64_t n, int64_t V, uint64_t seed, bool ignore)
{
	const nnrt_model *m = s->m;
	rng r = {seed};
	for (int64_t i = 0; i < n * m->input_size; i++)
		s->x[i] = (float)(rng_next(&r) % (uint64_t)V);
	for (int64_t i = 0; i < n * m->label_size; i++)
		((float *)s->y)[i] = ignore && i % 5 == 3 ? -1.0f : (float)(rng_next(&r) % (uint64_t)V);
}

void th_ref_seq_xent(const double *z, const float *y, int64_t T, int64_t V, double *loss, double *acc)
{
	double l = 0, a = 0, cnt = 0;
	for (int64_t t = 0; t < T; t++) {
		if (y[t] < 0)
			continue;
		int64_t c = (int64_t)y[t], am = 0;
		double mx = z[t * V], sum = 0;
		for (int64_t j = 1; j < V; j++)
			if (z[t * V + j] > mx)
				mx = z[t * V + j], am = j;
		for (int64_t j = 0; j < V; j++)
			sum += exp(z[t * V + j] - mx);
		l += log(sum) + mx - z[t * V + c];
		a += am == c;
		cnt++;
	}
	*loss = cnt ? l / cnt : 0;
	*acc = cnt ? a / cnt : 0;
}

void th_fill_params(const nnrt_model *m, float *p, uint64_t seed)
{
	rng r = {seed};
	memset(p, 0, sizeof(float) * (size_t)m->param_floats);
	for (int i = 0; i < m->n_params; i++) {
		const nnrt_param_info *pi = &m->params[i];
		double fan_in = pi->rank == 4 ? (double)(pi->shape[1] * pi->shape[2] * pi->shape[3])
			      : pi->rank == 2 ? (double)pi->shape[0] : 0;
		double a = fan_in > 0 ? 1.5 / sqrt(fan_in) : 0.5;
		for (int64_t k = 0; k < pi->size; k++)
			p[pi->offset + k] = (float)rng_uniform(&r, -a, a);
	}
}

void th_fill_batch(state *s, int64_t n, uint64_t seed)
{
	const nnrt_model *m = s->m;
	rng r = {seed};
	for (int64_t i = 0; i < n * m->input_size; i++)
		s->x[i] = (float)rng_uniform(&r, -1, 1);
	if (m->label_kind == NNRT_LABEL_CLASS) {
		for (int64_t i = 0; i < n; i++)
			((int32_t *)s->y)[i] = (int32_t)(rng_next(&r) % (uint64_t)m->label_size);
	} else {
		for (int64_t i = 0; i < n * m->label_size; i++)
			((float *)s->y)[i] = m->loss == NNRT_LOSS_BCE ? (float)(rng_next(&r) & 1)
								 : (float)rng_uniform(&r, -1, 1);
	}
}

double th_fd_check(state *s, int64_t n, const float *g, th_loss_fn loss, double step, double atol, double rtol,
                   const char *what)
{
	const nnrt_model *m = s->m;
	double l0 = loss(s, n), worst = 0;
	int64_t checked = 0, kinks = 0;
#define TH_NEAR(a, b) (fabs((a) - (b)) <= atol + rtol * fabs(b))
	for (int pi = 0; pi < m->n_params; pi++) {
		const nnrt_param_info *info = &m->params[pi];
		for (int64_t e = 0; e < info->size; e++) {
			float *p = &s->params[info->offset + e], orig = *p;
			*p = (float)(orig + step);
			double hp = *p, lp = loss(s, n);
			*p = (float)(orig - step);
			double hm = *p, lm = loss(s, n);
			*p = orig;
			double ge = g[info->offset + e], fd = (lp - lm) / (hp - hm);
			double fwd = (lp - l0) / (hp - orig), bwd = (l0 - lm) / (orig - hm);
			cr_assert(isfinite(ge), "%s: gradient of %s[%lld] is %g", what, info->name, (long long)e, ge);
			checked++;
			if (TH_NEAR(ge, fd)) {
				worst = fmax(worst, fabs(ge - fd) / (atol + rtol * fabs(fd)));
				continue;
			}
			bool kink = !TH_NEAR(fwd, bwd) && (TH_NEAR(ge, fwd) || TH_NEAR(ge, bwd));
			cr_assert(kink, "%s, n %lld: d loss / d %s[%lld] is %.7g, central difference %.7g (one-sided %.7g, %.7g)",
			          what, (long long)n, info->name, (long long)e, ge, fd, fwd, bwd);
			kinks++;
		}
	}
#undef TH_NEAR
	cr_assert(kinks * 8 <= checked, "%s: %lld of %lld entries at kinks", what, (long long)kinks, (long long)checked);
	return worst;
}

void th_check_seq_threads(const nnrt_model *m, int64_t V, const char *what)
{
	float *first = NULL;
	for (int threads = 1; threads <= 3; threads++) {
		state s = th_state_new(m);
		th_fill_params(m, s.params, 9);
		for (int step = 1; step <= 3; step++) {
			th_fill_tokens(&s, m->batch, V, (uint64_t)step, true);
			memset(s.a.hp, 0, sizeof s.a.hp);
			s.a.hp[NNRT_HP_LR] = 0.01f;
			s.a.hp[NNRT_HP_ADAM_C1] = (float)(1 / (1 - pow(0.9, step)));
			s.a.hp[NNRT_HP_ADAM_C2] = (float)(1 / (1 - pow(0.999, step)));
			th_run_threads(&s, m->train_step, m->batch, threads);
		}
		if (!first) {
			first = th_falloc(m->param_floats);
			memcpy(first, s.params, sizeof(float) * (size_t)m->param_floats);
		} else {
			cr_assert(!memcmp(first, s.params, sizeof(float) * (size_t)m->param_floats),
				  "%s: %d threads give other parameters than 1", what, threads);
		}
		th_state_free(&s);
	}
	free(first);
}
