//go:build amd64 && !purego

#include "textflag.h"

// One k step of the 6×16 micro-kernel: B row at b0 and b1 (its two
// halves), six A values at SI+aoff; accumulators Y4..Y15 (row r in
// Y(4+2r), Y(5+2r)).
#define STEP(aoff, b0, b1) \
	VMOVUPS b0, Y0 \
	VMOVUPS b1, Y1 \
	VBROADCASTSS (aoff)(SI), Y2 \
	VBROADCASTSS (aoff+4)(SI), Y3 \
	VFMADD231PS Y0, Y2, Y4 \
	VFMADD231PS Y1, Y2, Y5 \
	VFMADD231PS Y0, Y3, Y6 \
	VFMADD231PS Y1, Y3, Y7 \
	VBROADCASTSS (aoff+8)(SI), Y2 \
	VBROADCASTSS (aoff+12)(SI), Y3 \
	VFMADD231PS Y0, Y2, Y8 \
	VFMADD231PS Y1, Y2, Y9 \
	VFMADD231PS Y0, Y3, Y10 \
	VFMADD231PS Y1, Y3, Y11 \
	VBROADCASTSS (aoff+16)(SI), Y2 \
	VBROADCASTSS (aoff+20)(SI), Y3 \
	VFMADD231PS Y0, Y2, Y12 \
	VFMADD231PS Y1, Y2, Y13 \
	VFMADD231PS Y0, Y3, Y14 \
	VFMADD231PS Y1, Y3, Y15

// Store (or add to) one row of C at ptr from accumulators lo, hi.
#define STOREROW(ptr, lo, hi) \
	VMOVUPS lo, (ptr) \
	VMOVUPS hi, 32(ptr)

#define ADDROW(ptr, lo, hi) \
	VADDPS (ptr), lo, lo \
	VADDPS 32(ptr), hi, hi \
	VMOVUPS lo, (ptr) \
	VMOVUPS hi, 32(ptr)

// func sgemm6x16AVX2(kc int, a, b *float32, ldb int, c *float32, ldc int, acc bool)
//
// B's rows are ldb values apart (16 when packed).
TEXT ·sgemm6x16AVX2(SB), NOSPLIT, $0-49
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ ldb+24(FP), BX
	SHLQ $2, BX
	LEAQ (BX)(BX*2), AX
	LEAQ (BX*4), R12
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8
	MOVBLZX acc+48(FP), R9

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	CMPQ CX, $4
	JL   tail

loop4:
	STEP(0, (DI), 32(DI))
	STEP(24, (DI)(BX*1), 32(DI)(BX*1))
	STEP(48, (DI)(BX*2), 32(DI)(BX*2))
	STEP(72, (DI)(AX*1), 32(DI)(AX*1))
	ADDQ $96, SI
	ADDQ R12, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail:
	TESTQ CX, CX
	JE    store

loop1:
	STEP(0, (DI), 32(DI))
	ADDQ $24, SI
	ADDQ BX, DI
	DECQ CX
	JNZ  loop1

store:
	LEAQ (DX)(R8*1), R10
	LEAQ (DX)(R8*2), R11
	LEAQ (R10)(R8*2), R12
	LEAQ (R11)(R8*2), R13
	LEAQ (R12)(R8*2), R14
	TESTQ R9, R9
	JE    overwrite
	ADDROW(DX, Y4, Y5)
	ADDROW(R10, Y6, Y7)
	ADDROW(R11, Y8, Y9)
	ADDROW(R12, Y10, Y11)
	ADDROW(R13, Y12, Y13)
	ADDROW(R14, Y14, Y15)
	VZEROUPPER
	RET

overwrite:
	STOREROW(DX, Y4, Y5)
	STOREROW(R10, Y6, Y7)
	STOREROW(R11, Y8, Y9)
	STOREROW(R12, Y10, Y11)
	STOREROW(R13, Y12, Y13)
	STOREROW(R14, Y14, Y15)
	VZEROUPPER
	RET

// One k step of the row-A kernel: B row at b0/b1, A(r, k) at
// aoff(SI + r·R14) for r < 3 and aoff(R13 + (r−3)·R14) for r ≥ 3.
#define STEPR(aoff, b0, b1) \
	VMOVUPS b0, Y0 \
	VMOVUPS b1, Y1 \
	VBROADCASTSS aoff(SI), Y2 \
	VBROADCASTSS aoff(SI)(R14*1), Y3 \
	VFMADD231PS Y0, Y2, Y4 \
	VFMADD231PS Y1, Y2, Y5 \
	VFMADD231PS Y0, Y3, Y6 \
	VFMADD231PS Y1, Y3, Y7 \
	VBROADCASTSS aoff(SI)(R14*2), Y2 \
	VBROADCASTSS aoff(R13), Y3 \
	VFMADD231PS Y0, Y2, Y8 \
	VFMADD231PS Y1, Y2, Y9 \
	VFMADD231PS Y0, Y3, Y10 \
	VFMADD231PS Y1, Y3, Y11 \
	VBROADCASTSS aoff(R13)(R14*1), Y2 \
	VBROADCASTSS aoff(R13)(R14*2), Y3 \
	VFMADD231PS Y0, Y2, Y12 \
	VFMADD231PS Y1, Y2, Y13 \
	VFMADD231PS Y0, Y3, Y14 \
	VFMADD231PS Y1, Y3, Y15

// func sgemm6x16RowAVX2(kc int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc bool)
//
// The 6×16 kernel with A read in place: row r of the tile's A is a[r·lda:],
// kc values. The same multiply-adds in the same order as sgemm6x16AVX2.
TEXT ·sgemm6x16RowAVX2(SB), NOSPLIT, $0-57
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R14
	SHLQ $2, R14
	LEAQ (R14)(R14*2), R13
	ADDQ SI, R13
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), BX
	SHLQ $2, BX
	LEAQ (BX)(BX*2), AX
	LEAQ (BX*4), R12
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R8
	SHLQ $2, R8
	MOVBLZX acc+56(FP), R9

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	CMPQ CX, $4
	JL   rtail

rloop4:
	STEPR(0, (DI), 32(DI))
	STEPR(4, (DI)(BX*1), 32(DI)(BX*1))
	STEPR(8, (DI)(BX*2), 32(DI)(BX*2))
	STEPR(12, (DI)(AX*1), 32(DI)(AX*1))
	ADDQ $16, SI
	ADDQ $16, R13
	ADDQ R12, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  rloop4

rtail:
	TESTQ CX, CX
	JE    rstore

rloop1:
	STEPR(0, (DI), 32(DI))
	ADDQ $4, SI
	ADDQ $4, R13
	ADDQ BX, DI
	DECQ CX
	JNZ  rloop1

rstore:
	LEAQ (DX)(R8*1), R10
	LEAQ (DX)(R8*2), R11
	LEAQ (R10)(R8*2), R12
	LEAQ (R11)(R8*2), R13
	LEAQ (R12)(R8*2), R14
	TESTQ R9, R9
	JE    roverwrite
	ADDROW(DX, Y4, Y5)
	ADDROW(R10, Y6, Y7)
	ADDROW(R11, Y8, Y9)
	ADDROW(R12, Y10, Y11)
	ADDROW(R13, Y12, Y13)
	ADDROW(R14, Y14, Y15)
	VZEROUPPER
	RET

roverwrite:
	STOREROW(DX, Y4, Y5)
	STOREROW(R10, Y6, Y7)
	STOREROW(R11, Y8, Y9)
	STOREROW(R12, Y10, Y11)
	STOREROW(R13, Y12, Y13)
	STOREROW(R14, Y14, Y15)
	VZEROUPPER
	RET
