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
