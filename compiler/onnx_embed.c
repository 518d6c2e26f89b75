/*
 * onnx_embed.c - the ONNX model of onnx_export.c as a constant of the
 * generated object: the nnrt_onnx that --export-onnx (nnrt_main_onnx) and
 * the header's PREFIX_export_onnx hand to nnrt_onnx_write.  Apart from the
 * rest of the exporter so that the importer's fuzzing harness needs no LLVM
 * library.
 */
#include <string.h>

#include "onnx.h"

void nnc_onnx_embed(LLVMModuleRef mod, const nnc_onnx_model *m, const char *symbol)
{
	LLVMContextRef c = LLVMGetModuleContext(mod);
	LLVMTypeRef i64 = LLVMInt64TypeInContext(c), ptr = LLVMPointerTypeInContext(c, 0);
	LLVMValueRef bytes = LLVMConstNull(ptr), pieces = LLVMConstNull(ptr), err = LLVMConstNull(ptr);
	if (m->error) {
		LLVMValueRef s = LLVMConstStringInContext(c, m->error, (unsigned)strlen(m->error), 0);
		LLVMValueRef gs = LLVMAddGlobal(mod, LLVMTypeOf(s), nnc_sprintf("%s.error", symbol));
		LLVMSetInitializer(gs, s);
		LLVMSetGlobalConstant(gs, 1);
		LLVMSetLinkage(gs, LLVMPrivateLinkage);
		err = gs;
	} else {
		LLVMValueRef s = LLVMConstStringInContext(c, (const char *)m->bytes, (unsigned)m->len, 1);
		LLVMValueRef gb = LLVMAddGlobal(mod, LLVMTypeOf(s), nnc_sprintf("%s.bytes", symbol));
		LLVMSetInitializer(gb, s);
		LLVMSetGlobalConstant(gb, 1);
		LLVMSetLinkage(gb, LLVMPrivateLinkage);
		bytes = gb;
		/* nnrt_onnx_piece: eight int64_t */
		LLVMTypeRef pt = LLVMArrayType2(i64, 8);
		LLVMValueRef *rows = nnc_alloc(sizeof(LLVMValueRef) * (size_t)(m->npieces + 1));
		for (int i = 0; i < m->npieces; i++) {
			const nnc_onnx_piece *p = &m->pieces[i];
			int64_t v[8] = {p->at, p->from, p->offset, p->count, p->rows, p->blocks, p->perm, p->transpose};
			LLVMValueRef f[8];
			for (int k = 0; k < 8; k++)
				f[k] = LLVMConstInt(i64, (uint64_t)v[k], 0);
			rows[i] = LLVMConstArray2(i64, f, 8);
		}
		LLVMValueRef arr = LLVMConstArray2(pt, rows, (uint64_t)m->npieces);
		LLVMValueRef gp = LLVMAddGlobal(mod, LLVMTypeOf(arr), nnc_sprintf("%s.pieces", symbol));
		LLVMSetInitializer(gp, arr);
		LLVMSetGlobalConstant(gp, 1);
		LLVMSetLinkage(gp, LLVMPrivateLinkage);
		pieces = gp;
	}
	/* nnrt_onnx: version, error, bytes, len, n_pieces, pieces */
	LLVMValueRef f[6] = {LLVMConstInt(i64, NNRT_ONNX_VERSION, 0), err, bytes, LLVMConstInt(i64, (uint64_t)m->len, 0),
			     LLVMConstInt(i64, (uint64_t)m->npieces, 0), pieces};
	LLVMValueRef s = LLVMConstStructInContext(c, f, 6, 0);
	LLVMValueRef gv = LLVMAddGlobal(mod, LLVMTypeOf(s), symbol);
	LLVMSetInitializer(gv, s);
	LLVMSetGlobalConstant(gv, 1);
}
