//go:build amd64 && !purego

#include "textflag.h"

// Vectorised float32 exp, sigmoid and tanh (Cephes expf: range reduction
// by ln 2 and a degree-5 polynomial, relative error about 2e-7).

DATA vmc<>+0(SB)/4, $0x42b0c0a5
DATA vmc<>+4(SB)/4, $0x42b0c0a5
DATA vmc<>+8(SB)/4, $0x42b0c0a5
DATA vmc<>+12(SB)/4, $0x42b0c0a5
DATA vmc<>+16(SB)/4, $0x42b0c0a5
DATA vmc<>+20(SB)/4, $0x42b0c0a5
DATA vmc<>+24(SB)/4, $0x42b0c0a5
DATA vmc<>+28(SB)/4, $0x42b0c0a5
DATA vmc<>+32(SB)/4, $0xc2b0c0a5
DATA vmc<>+36(SB)/4, $0xc2b0c0a5
DATA vmc<>+40(SB)/4, $0xc2b0c0a5
DATA vmc<>+44(SB)/4, $0xc2b0c0a5
DATA vmc<>+48(SB)/4, $0xc2b0c0a5
DATA vmc<>+52(SB)/4, $0xc2b0c0a5
DATA vmc<>+56(SB)/4, $0xc2b0c0a5
DATA vmc<>+60(SB)/4, $0xc2b0c0a5
DATA vmc<>+64(SB)/4, $0x3fb8aa3b
DATA vmc<>+68(SB)/4, $0x3fb8aa3b
DATA vmc<>+72(SB)/4, $0x3fb8aa3b
DATA vmc<>+76(SB)/4, $0x3fb8aa3b
DATA vmc<>+80(SB)/4, $0x3fb8aa3b
DATA vmc<>+84(SB)/4, $0x3fb8aa3b
DATA vmc<>+88(SB)/4, $0x3fb8aa3b
DATA vmc<>+92(SB)/4, $0x3fb8aa3b
DATA vmc<>+96(SB)/4, $0x3f000000
DATA vmc<>+100(SB)/4, $0x3f000000
DATA vmc<>+104(SB)/4, $0x3f000000
DATA vmc<>+108(SB)/4, $0x3f000000
DATA vmc<>+112(SB)/4, $0x3f000000
DATA vmc<>+116(SB)/4, $0x3f000000
DATA vmc<>+120(SB)/4, $0x3f000000
DATA vmc<>+124(SB)/4, $0x3f000000
DATA vmc<>+128(SB)/4, $0x3f318000
DATA vmc<>+132(SB)/4, $0x3f318000
DATA vmc<>+136(SB)/4, $0x3f318000
DATA vmc<>+140(SB)/4, $0x3f318000
DATA vmc<>+144(SB)/4, $0x3f318000
DATA vmc<>+148(SB)/4, $0x3f318000
DATA vmc<>+152(SB)/4, $0x3f318000
DATA vmc<>+156(SB)/4, $0x3f318000
DATA vmc<>+160(SB)/4, $0xb95e8083
DATA vmc<>+164(SB)/4, $0xb95e8083
DATA vmc<>+168(SB)/4, $0xb95e8083
DATA vmc<>+172(SB)/4, $0xb95e8083
DATA vmc<>+176(SB)/4, $0xb95e8083
DATA vmc<>+180(SB)/4, $0xb95e8083
DATA vmc<>+184(SB)/4, $0xb95e8083
DATA vmc<>+188(SB)/4, $0xb95e8083
DATA vmc<>+192(SB)/4, $0x39506967
DATA vmc<>+196(SB)/4, $0x39506967
DATA vmc<>+200(SB)/4, $0x39506967
DATA vmc<>+204(SB)/4, $0x39506967
DATA vmc<>+208(SB)/4, $0x39506967
DATA vmc<>+212(SB)/4, $0x39506967
DATA vmc<>+216(SB)/4, $0x39506967
DATA vmc<>+220(SB)/4, $0x39506967
DATA vmc<>+224(SB)/4, $0x3ab743ce
DATA vmc<>+228(SB)/4, $0x3ab743ce
DATA vmc<>+232(SB)/4, $0x3ab743ce
DATA vmc<>+236(SB)/4, $0x3ab743ce
DATA vmc<>+240(SB)/4, $0x3ab743ce
DATA vmc<>+244(SB)/4, $0x3ab743ce
DATA vmc<>+248(SB)/4, $0x3ab743ce
DATA vmc<>+252(SB)/4, $0x3ab743ce
DATA vmc<>+256(SB)/4, $0x3c088908
DATA vmc<>+260(SB)/4, $0x3c088908
DATA vmc<>+264(SB)/4, $0x3c088908
DATA vmc<>+268(SB)/4, $0x3c088908
DATA vmc<>+272(SB)/4, $0x3c088908
DATA vmc<>+276(SB)/4, $0x3c088908
DATA vmc<>+280(SB)/4, $0x3c088908
DATA vmc<>+284(SB)/4, $0x3c088908
DATA vmc<>+288(SB)/4, $0x3d2aa9c1
DATA vmc<>+292(SB)/4, $0x3d2aa9c1
DATA vmc<>+296(SB)/4, $0x3d2aa9c1
DATA vmc<>+300(SB)/4, $0x3d2aa9c1
DATA vmc<>+304(SB)/4, $0x3d2aa9c1
DATA vmc<>+308(SB)/4, $0x3d2aa9c1
DATA vmc<>+312(SB)/4, $0x3d2aa9c1
DATA vmc<>+316(SB)/4, $0x3d2aa9c1
DATA vmc<>+320(SB)/4, $0x3e2aaaaa
DATA vmc<>+324(SB)/4, $0x3e2aaaaa
DATA vmc<>+328(SB)/4, $0x3e2aaaaa
DATA vmc<>+332(SB)/4, $0x3e2aaaaa
DATA vmc<>+336(SB)/4, $0x3e2aaaaa
DATA vmc<>+340(SB)/4, $0x3e2aaaaa
DATA vmc<>+344(SB)/4, $0x3e2aaaaa
DATA vmc<>+348(SB)/4, $0x3e2aaaaa
DATA vmc<>+352(SB)/4, $0x3f000000
DATA vmc<>+356(SB)/4, $0x3f000000
DATA vmc<>+360(SB)/4, $0x3f000000
DATA vmc<>+364(SB)/4, $0x3f000000
DATA vmc<>+368(SB)/4, $0x3f000000
DATA vmc<>+372(SB)/4, $0x3f000000
DATA vmc<>+376(SB)/4, $0x3f000000
DATA vmc<>+380(SB)/4, $0x3f000000
DATA vmc<>+384(SB)/4, $0x3f800000
DATA vmc<>+388(SB)/4, $0x3f800000
DATA vmc<>+392(SB)/4, $0x3f800000
DATA vmc<>+396(SB)/4, $0x3f800000
DATA vmc<>+400(SB)/4, $0x3f800000
DATA vmc<>+404(SB)/4, $0x3f800000
DATA vmc<>+408(SB)/4, $0x3f800000
DATA vmc<>+412(SB)/4, $0x3f800000
DATA vmc<>+416(SB)/4, $0x40000000
DATA vmc<>+420(SB)/4, $0x40000000
DATA vmc<>+424(SB)/4, $0x40000000
DATA vmc<>+428(SB)/4, $0x40000000
DATA vmc<>+432(SB)/4, $0x40000000
DATA vmc<>+436(SB)/4, $0x40000000
DATA vmc<>+440(SB)/4, $0x40000000
DATA vmc<>+444(SB)/4, $0x40000000
DATA vmc<>+448(SB)/4, $0xbf800000
DATA vmc<>+452(SB)/4, $0xbf800000
DATA vmc<>+456(SB)/4, $0xbf800000
DATA vmc<>+460(SB)/4, $0xbf800000
DATA vmc<>+464(SB)/4, $0xbf800000
DATA vmc<>+468(SB)/4, $0xbf800000
DATA vmc<>+472(SB)/4, $0xbf800000
DATA vmc<>+476(SB)/4, $0xbf800000
DATA vmc<>+480(SB)/4, $0xc0000000
DATA vmc<>+484(SB)/4, $0xc0000000
DATA vmc<>+488(SB)/4, $0xc0000000
DATA vmc<>+492(SB)/4, $0xc0000000
DATA vmc<>+496(SB)/4, $0xc0000000
DATA vmc<>+500(SB)/4, $0xc0000000
DATA vmc<>+504(SB)/4, $0xc0000000
DATA vmc<>+508(SB)/4, $0xc0000000
DATA vmc<>+512(SB)/4, $0x0000007f
DATA vmc<>+516(SB)/4, $0x0000007f
DATA vmc<>+520(SB)/4, $0x0000007f
DATA vmc<>+524(SB)/4, $0x0000007f
DATA vmc<>+528(SB)/4, $0x0000007f
DATA vmc<>+532(SB)/4, $0x0000007f
DATA vmc<>+536(SB)/4, $0x0000007f
DATA vmc<>+540(SB)/4, $0x0000007f
GLOBL vmc<>(SB), RODATA|NOPTR, $544

#define C_hi vmc<>+0(SB)
#define C_lo vmc<>+32(SB)
#define C_log2e vmc<>+64(SB)
#define C_half vmc<>+96(SB)
#define C_c1 vmc<>+128(SB)
#define C_c2 vmc<>+160(SB)
#define C_p0 vmc<>+192(SB)
#define C_p1 vmc<>+224(SB)
#define C_p2 vmc<>+256(SB)
#define C_p3 vmc<>+288(SB)
#define C_p4 vmc<>+320(SB)
#define C_p5 vmc<>+352(SB)
#define C_one vmc<>+384(SB)
#define C_two vmc<>+416(SB)
#define C_neg1 vmc<>+448(SB)
#define C_neg2 vmc<>+480(SB)
#define C_i127 vmc<>+512(SB)

// EXP8 replaces Y0 with exp(Y0); Y8 and Y9 hold the clamp bounds; clobbers
// Y1, Y2, Y3. NaN propagates (the clamps return their second operand).
#define EXP8 \
	VMINPS Y0, Y8, Y0 \
	VMAXPS Y0, Y9, Y0 \
	VMOVUPS C_half, Y1 \
	VFMADD231PS C_log2e, Y0, Y1 \
	VROUNDPS $1, Y1, Y1 \
	VFNMADD231PS C_c1, Y1, Y0 \
	VFNMADD231PS C_c2, Y1, Y0 \
	VMOVUPS C_p0, Y2 \
	VFMADD213PS C_p1, Y0, Y2 \
	VFMADD213PS C_p2, Y0, Y2 \
	VFMADD213PS C_p3, Y0, Y2 \
	VFMADD213PS C_p4, Y0, Y2 \
	VFMADD213PS C_p5, Y0, Y2 \
	VMULPS Y0, Y0, Y3 \
	VFMADD213PS Y0, Y3, Y2 \
	VADDPS C_one, Y2, Y2 \
	VCVTTPS2DQ Y1, Y1 \
	VPADDD C_i127, Y1, Y1 \
	VPSLLD $23, Y1, Y1 \
	VMULPS Y1, Y2, Y0

#define LOADBOUNDS \
	VMOVUPS C_hi, Y8 \
	VMOVUPS C_lo, Y9

// func expAVX2(dst, src *float32, n int)
TEXT ·expAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	LOADBOUNDS
	SHRQ $3, CX
	JZ   expdone
exploop:
	VMOVUPS (SI), Y0
	EXP8
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  exploop
expdone:
	VZEROUPPER
	RET

// func sigmoidAVX2(dst, src *float32, n int)
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	LOADBOUNDS
	VMOVUPS C_one, Y10
	VMOVUPS C_neg1, Y11
	SHRQ $3, CX
	JZ   sigdone
sigloop:
	VMULPS (SI), Y11, Y0
	EXP8
	VADDPS Y10, Y0, Y0
	VDIVPS Y0, Y10, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  sigloop
sigdone:
	VZEROUPPER
	RET

// func tanhAVX2(dst, src *float32, n int)
TEXT ·tanhAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	LOADBOUNDS
	VMOVUPS C_one, Y10
	VMOVUPS C_neg2, Y11
	VMOVUPS C_two, Y12
	SHRQ $3, CX
	JZ   tanhdone
tanhloop:
	VMULPS (SI), Y11, Y0
	EXP8
	VADDPS Y10, Y0, Y0
	VDIVPS Y0, Y12, Y0
	VSUBPS Y10, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  tanhloop
tanhdone:
	VZEROUPPER
	RET

// SIGMOID8 replaces Y0 with σ(Y0); needs Y12 = 1, Y14 = −1.
#define SIGMOID8 \
	VMULPS Y14, Y0, Y0 \
	EXP8 \
	VADDPS Y12, Y0, Y0 \
	VDIVPS Y0, Y12, Y0

// TANH8 replaces Y0 with tanh(Y0); needs Y12 = 1, Y13 = 2, Y15 = −2.
#define TANH8 \
	VMULPS Y15, Y0, Y0 \
	EXP8 \
	VADDPS Y12, Y0, Y0 \
	VDIVPS Y0, Y13, Y0 \
	VSUBPS Y12, Y0, Y0

// func lstmFwdAVX2(z, cp, c, tc, h *float32, n, stride int)
//
// One row of an LSTM step for n units (a multiple of 8): z holds the four
// gates' pre-activations (i, f, g, o, stride apart), replaced by their
// activations; cp is the previous cell state (nil at the first step).
// c = f⊙cp + i⊙g, tc = tanh(c), h = o⊙tc.
TEXT ·lstmFwdAVX2(SB), NOSPLIT, $0-56
	MOVQ z+0(FP), DI
	MOVQ cp+8(FP), R8
	MOVQ c+16(FP), DX
	MOVQ tc+24(FP), SI
	MOVQ h+32(FP), BX
	MOVQ n+40(FP), CX
	MOVQ stride+48(FP), R9
	SHLQ $2, R9
	LEAQ (DI)(R9*1), R10
	LEAQ (DI)(R9*2), R11
	LEAQ (R10)(R9*2), R12
	LOADBOUNDS
	VMOVUPS C_one, Y12
	VMOVUPS C_two, Y13
	VMOVUPS C_neg1, Y14
	VMOVUPS C_neg2, Y15
	SHRQ $3, CX
	JZ   fwddone

fwdloop:
	VMOVUPS (DI), Y0
	SIGMOID8
	VMOVUPS Y0, (DI)
	VMOVAPS Y0, Y4
	VMOVUPS (R10), Y0
	SIGMOID8
	VMOVUPS Y0, (R10)
	VMOVAPS Y0, Y5
	VMOVUPS (R11), Y0
	TANH8
	VMOVUPS Y0, (R11)
	VMOVAPS Y0, Y6
	VMOVUPS (R12), Y0
	SIGMOID8
	VMOVUPS Y0, (R12)
	VMOVAPS Y0, Y7
	VMULPS Y6, Y4, Y10
	TESTQ R8, R8
	JZ    fwdfirst
	VFMADD231PS (R8), Y5, Y10
	ADDQ  $32, R8

fwdfirst:
	VMOVUPS Y10, (DX)
	VMOVAPS Y10, Y0
	TANH8
	VMOVUPS Y0, (SI)
	VMULPS  Y0, Y7, Y0
	VMOVUPS Y0, (BX)
	ADDQ $32, DI
	ADDQ $32, R10
	ADDQ $32, R11
	ADDQ $32, R12
	ADDQ $32, DX
	ADDQ $32, SI
	ADDQ $32, BX
	DECQ CX
	JNZ  fwdloop

fwddone:
	VZEROUPPER
	RET

// func lstmBwdAVX2(z, tc, dh, dc, cp *float32, n, stride int)
//
// One row of an LSTM step's backward pass for n units (a multiple of 8):
// z holds the gates' activations (i, f, g, o), replaced by the gradients
// with respect to their pre-activations; dh is the gradient with respect to
// h, dc the one with respect to c from the next step, replaced by the one
// with respect to the previous cell state cp (nil at the first step, where
// the forget gate gets no gradient).
TEXT ·lstmBwdAVX2(SB), NOSPLIT, $0-56
	MOVQ z+0(FP), DI
	MOVQ tc+8(FP), SI
	MOVQ dh+16(FP), BX
	MOVQ dc+24(FP), DX
	MOVQ cp+32(FP), R8
	MOVQ n+40(FP), CX
	MOVQ stride+48(FP), R9
	SHLQ $2, R9
	LEAQ (DI)(R9*1), R10
	LEAQ (DI)(R9*2), R11
	LEAQ (R10)(R9*2), R12
	VMOVUPS C_one, Y15
	SHRQ $3, CX
	JZ   bwddone

bwdloop:
	VMOVUPS (DI), Y0
	VMOVUPS (R10), Y1
	VMOVUPS (R11), Y2
	VMOVUPS (R12), Y3
	VMOVUPS (SI), Y4
	VMOVUPS (BX), Y5
	VMULPS  Y4, Y4, Y6
	VSUBPS  Y6, Y15, Y6
	VMULPS  Y5, Y3, Y7
	VMULPS  Y6, Y7, Y7
	VADDPS  (DX), Y7, Y7
	VMULPS  Y5, Y4, Y8
	VSUBPS  Y3, Y15, Y9
	VMULPS  Y3, Y9, Y9
	VMULPS  Y9, Y8, Y8
	VMOVUPS Y8, (R12)
	VSUBPS  Y0, Y15, Y9
	VMULPS  Y0, Y9, Y9
	VMULPS  Y2, Y7, Y10
	VMULPS  Y9, Y10, Y10
	VMOVUPS Y10, (DI)
	VMULPS  Y2, Y2, Y11
	VSUBPS  Y11, Y15, Y11
	VMULPS  Y0, Y7, Y12
	VMULPS  Y11, Y12, Y12
	VMOVUPS Y12, (R11)
	VMULPS  Y1, Y7, Y13
	VMOVUPS Y13, (DX)
	TESTQ   R8, R8
	JZ      bwdfirst
	VMULPS  (R8), Y7, Y13
	VSUBPS  Y1, Y15, Y9
	VMULPS  Y1, Y9, Y9
	VMULPS  Y9, Y13, Y13
	VMOVUPS Y13, (R10)
	ADDQ    $32, R8
	JMP     bwdnext

bwdfirst:
	VXORPS  Y13, Y13, Y13
	VMOVUPS Y13, (R10)

bwdnext:
	ADDQ $32, DI
	ADDQ $32, R10
	ADDQ $32, R11
	ADDQ $32, R12
	ADDQ $32, SI
	ADDQ $32, BX
	ADDQ $32, DX
	DECQ CX
	JNZ  bwdloop

bwddone:
	VZEROUPPER
	RET

// func adamAVX2(k *adamConsts, w, grad, m, v *float32, n int)
//
// Adam on n values (a multiple of 8); k is b1, b2, 1−b1, 1−b2, the
// bias-corrected step size, 1/sqrt(1−b2ᵗ), ε and the gradient scale.
TEXT ·adamAVX2(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), AX
	MOVQ w+8(FP), DI
	MOVQ grad+16(FP), SI
	MOVQ m+24(FP), BX
	MOVQ v+32(FP), DX
	MOVQ n+40(FP), CX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	VBROADCASTSS 16(AX), Y12
	VBROADCASTSS 20(AX), Y13
	VBROADCASTSS 24(AX), Y14
	VBROADCASTSS 28(AX), Y15
	SHRQ $3, CX
	JZ   adamdone

adamloop:
	VMULPS      (SI), Y15, Y0
	VMULPS      (BX), Y8, Y1
	VFMADD231PS Y0, Y10, Y1
	VMOVUPS     Y1, (BX)
	VMULPS      Y0, Y0, Y2
	VMULPS      (DX), Y9, Y3
	VFMADD231PS Y2, Y11, Y3
	VMOVUPS     Y3, (DX)
	VSQRTPS     Y3, Y3
	VMULPS      Y13, Y3, Y3
	VADDPS      Y14, Y3, Y3
	VMULPS      Y12, Y1, Y1
	VDIVPS      Y3, Y1, Y1
	VMOVUPS     (DI), Y4
	VSUBPS      Y1, Y4, Y4
	VMOVUPS     Y4, (DI)
	ADDQ        $32, DI
	ADDQ        $32, SI
	ADDQ        $32, BX
	ADDQ        $32, DX
	DECQ        CX
	JNZ         adamloop

adamdone:
	VZEROUPPER
	RET

// func reluAVX2(y, mask *float32, n int)
//
// y = max(y, 0) (NaN stays NaN), then y *= mask unless mask is nil; n is a
// multiple of 8.
TEXT ·reluAVX2(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ mask+8(FP), SI
	MOVQ n+16(FP), CX
	VXORPS Y15, Y15, Y15
	SHRQ $3, CX
	JZ   reludone
	TESTQ SI, SI
	JZ   reluplain

relumask:
	VMOVUPS (DI), Y0
	VMAXPS  Y0, Y15, Y0
	VMULPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	DECQ CX
	JNZ  relumask
	JMP  reludone

reluplain:
	VMOVUPS (DI), Y0
	VMAXPS  Y0, Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	DECQ CX
	JNZ  reluplain

reludone:
	VZEROUPPER
	RET

// func reluBwdAVX2(d, o, mask *float32, n int)
//
// d = o > 0 ? d·mask : 0 (mask nil: d), for the output o of a ReLU (and
// dropout); n is a multiple of 8.
TEXT ·reluBwdAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ o+8(FP), SI
	MOVQ mask+16(FP), BX
	MOVQ n+24(FP), CX
	VXORPS Y15, Y15, Y15
	SHRQ $3, CX
	JZ   rbdone
	TESTQ BX, BX
	JZ   rbplain

rbmask:
	VMOVUPS  (SI), Y1
	VCMPPS   $0x1e, Y15, Y1, Y1
	VMOVUPS  (DI), Y0
	VMULPS   (BX), Y0, Y0
	VANDPS   Y1, Y0, Y0
	VMOVUPS  Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, BX
	DECQ CX
	JNZ  rbmask
	JMP  rbdone

rbplain:
	VMOVUPS  (SI), Y1
	VCMPPS   $0x1e, Y15, Y1, Y1
	VANDPS   (DI), Y1, Y0
	VMOVUPS  Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	DECQ CX
	JNZ  rbplain

rbdone:
	VZEROUPPER
	RET
