package nn

import "unsafe"

// Single-threaded float32 matrix products for the fast backend.
//
// gemm computes C = C₀ + op(A)·op(B) on row-major slices, with C₀ the old C
// (accumulate) or zero. A micro-kernel computes one mr×nr tile of C per
// call, kc values deep at a time: the AVX2/FMA assembly kernel where the
// CPU has it, a pure-Go one elsewhere. Untransposed operands are read in
// place (A's rows by pointer, B's rows by stride); transposed operands and
// narrower edge panels are first copied into zero-padded panels (A in
// panels of mr rows, B in panels of nr columns). Every element of C
// is computed the same way wherever it falls — a chain of fused (AVX2) or
// separate (pure Go) multiply-adds over k in order, one kc block after the
// other, added to C₀ — so the result does not depend on how callers split
// the rows or columns among threads, and two runs give the same bits.

const (
	gemmMR = 6   // rows of a micro-tile
	gemmNR = 16  // columns of a micro-tile (two AVX registers)
	gemmKC = 256 // depth of a packed block
	gemmMC = 96  // rows of A packed at once (16 panels)
)

// gemmWork is the packing scratch of one thread; the zero value is ready
// and grows on first use.
type gemmWork struct {
	a, b []float32
	tile [gemmMR * gemmNR]float32
}

// mat is a read-only view of a row-major matrix: element (i, j) of the
// rows×cols matrix it stands for is d[i*ld+j], or d[j*ld+i] when t is set
// (the view is the transpose of the stored matrix).
type mat struct {
	d  []float32
	ld int
	t  bool
}

// packA copies rows [i0, i0+mc) and depth [p0, p0+kc) of a into panels of
// gemmMR rows, zero-padding the last panel: element (i, p) of panel ip is
// dst[ip*kc*mr + p*mr + i%mr].
func packA(dst []float32, a mat, i0, mc, p0, kc int) {
	panels := (mc + gemmMR - 1) / gemmMR
	for ip := range panels {
		pd := dst[ip*kc*gemmMR : (ip+1)*kc*gemmMR]
		rows := min(gemmMR, mc-ip*gemmMR)
		base := i0 + ip*gemmMR
		if rows < gemmMR {
			clear(pd)
		}
		if a.t {
			// A(i, p) = d[p*ld+i]: a row of the stored matrix holds the
			// panel's rows side by side.
			if rows == gemmMR {
				for p := range kc {
					off := (p0+p)*a.ld + base
					s := a.d[off : off+gemmMR : off+gemmMR]
					q := (*[gemmMR]float32)(pd[p*gemmMR:])
					q[0], q[1], q[2], q[3], q[4], q[5] = s[0], s[1], s[2], s[3], s[4], s[5]
				}
				continue
			}
			for p := range kc {
				off := (p0+p)*a.ld + base
				for r := range rows {
					pd[p*gemmMR+r] = a.d[off+r]
				}
			}
			continue
		}
		if rows == gemmMR {
			row := func(r int) []float32 { return a.d[(base+r)*a.ld+p0 : (base+r)*a.ld+p0+kc] }
			r0, r1, r2, r3, r4, r5 := row(0), row(1), row(2), row(3), row(4), row(5)
			for p := range kc {
				q := (*[gemmMR]float32)(pd[p*gemmMR:])
				q[0], q[1], q[2], q[3], q[4], q[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
			}
			continue
		}
		for r := range rows {
			src := a.d[(base+r)*a.ld+p0 : (base+r)*a.ld+p0+kc]
			for p, v := range src {
				pd[p*gemmMR+r] = v
			}
		}
	}
}

// packedB is B packed for the micro-kernel: for each kc block, panels of
// gemmNR columns (zero-padded), kc rows each. Weights that serve several
// products in one training step are packed once.
type packedB struct {
	k, n int
	d    []float32
}

// panels returns the number of column panels.
func (pb *packedB) panels() int { return (pb.n + gemmNR - 1) / gemmNR }

// block returns the packed panels of the kc block starting at depth p0.
func (pb *packedB) block(p0 int) []float32 {
	kc := min(gemmKC, pb.k-p0)
	off := p0 * pb.panels() * gemmNR
	return pb.d[off : off+kc*pb.panels()*gemmNR]
}

// pack packs the k×n matrix b.
func (pb *packedB) pack(b mat, k, n int) {
	pb.k, pb.n = k, n
	np := pb.panels()
	pb.d = grow(pb.d, k*np*gemmNR)
	for p0 := 0; p0 < k; p0 += gemmKC {
		kc := min(gemmKC, k-p0)
		blk := pb.block(p0)
		for jp := range np {
			packBPanel(blk[jp*kc*gemmNR:(jp+1)*kc*gemmNR], b, p0, kc, jp*gemmNR, min(gemmNR, n-jp*gemmNR))
		}
	}
}

// packBPanel copies depth [p0, p0+kc) of columns [j0, j0+cols) of b into
// dst (kc rows of gemmNR values, zero-padded).
func packBPanel(dst []float32, b mat, p0, kc, j0, cols int) {
	if cols < gemmNR {
		clear(dst)
	}
	if !b.t {
		if cols == gemmNR {
			for p := range kc {
				off := (p0+p)*b.ld + j0
				*(*[gemmNR]float32)(dst[p*gemmNR:]) = *(*[gemmNR]float32)(b.d[off : off+gemmNR])
			}
			return
		}
		for p := range kc {
			copy(dst[p*gemmNR:p*gemmNR+cols], b.d[(p0+p)*b.ld+j0:(p0+p)*b.ld+j0+cols])
		}
		return
	}
	if cols == gemmNR {
		// Sixteen rows of the stored matrix, read side by side, so the
		// panel is written in order.
		// (The slicing checks the bounds; the loop reads through pointers.)
		var rows [gemmNR]unsafe.Pointer
		for c := range rows {
			rows[c] = unsafe.Pointer(unsafe.SliceData(b.d[(j0+c)*b.ld+p0 : (j0+c)*b.ld+p0+kc]))
		}
		dst = dst[:kc*gemmNR]
		for p := range kc {
			q := (*[gemmNR]float32)(dst[p*gemmNR:])
			off := uintptr(p) * 4
			for c := range q {
				q[c] = *(*float32)(unsafe.Add(rows[c], off))
			}
		}
		return
	}
	for c := range cols {
		src := b.d[(j0+c)*b.ld+p0 : (j0+c)*b.ld+p0+kc]
		for p, v := range src {
			dst[p*gemmNR+c] = v
		}
	}
}

// gemm computes C = C₀ + A·B for the m×k matrix a and the k×n matrix b,
// C row-major with leading dimension ldc; C₀ is C's old value when acc is
// set, else zero.
func (w *gemmWork) gemm(m, n, k int, a, b mat, c []float32, ldc int, acc bool) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !acc {
			for i := range m {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	if b.t {
		var pb packedB
		pb.d = w.b
		pb.pack(b, k, n)
		w.b = pb.d
		w.gemmPacked(m, a, &pb, c, ldc, acc)
		return
	}
	w.gemmDirect(m, n, k, a, b, c, ldc, acc)
}

// gemmDirect is gemm for a B that is not transposed: the kernel reads its
// full 16-column panels in place (rows b.ld apart); only a last, narrower
// panel is packed (zero-padded).
func (w *gemmWork) gemmDirect(m, n, k int, a, b mat, c []float32, ldc int, acc bool) {
	w.a = grow(w.a, gemmMC*gemmKC)
	w.b = grow(w.b, gemmKC*gemmNR)
	np := (n + gemmNR - 1) / gemmNR
	for p0 := 0; p0 < k; p0 += gemmKC {
		kc := min(gemmKC, k-p0)
		add := acc || p0 > 0
		edge := n%gemmNR != 0
		if edge {
			j0 := (np - 1) * gemmNR
			packBPanel(w.b[:kc*gemmNR], b, p0, kc, j0, n-j0)
		}
		for i0 := 0; i0 < m; i0 += gemmMC {
			mc := min(gemmMC, m-i0)
			w.prepA(a, i0, mc, p0, kc)
			for jp := range np {
				j0 := jp * gemmNR
				bp, ldb := b.d[p0*b.ld+j0:], b.ld
				if edge && jp == np-1 {
					bp, ldb = w.b[:kc*gemmNR], gemmNR
				}
				w.tiles(a, p0, i0, mc, kc, bp, ldb, j0, min(gemmNR, n-j0), m, c, ldc, add)
			}
		}
	}
}

// prepA packs what the kernels need of rows [i0, i0+mc), depth
// [p0, p0+kc) of A: every panel when A is transposed; only a last panel of
// fewer than gemmMR rows otherwise (full panels are read in place).
func (w *gemmWork) prepA(a mat, i0, mc, p0, kc int) {
	if a.t {
		packA(w.a, a, i0, mc, p0, kc)
		return
	}
	if full := mc / gemmMR * gemmMR; full < mc {
		packA(w.a[full/gemmMR*kc*gemmMR:], a, i0+full, mc-full, p0, kc)
	}
}

// tiles runs the micro-kernel down one column panel for rows [i0, i0+mc)
// of A's block at depth p0 (prepared by prepA).
func (w *gemmWork) tiles(a mat, p0, i0, mc, kc int, bp []float32, ldb, j0, cols, m int, c []float32, ldc int, add bool) {
	mp := (mc + gemmMR - 1) / gemmMR
	for ip := range mp {
		ap := w.a[ip*kc*gemmMR : (ip+1)*kc*gemmMR]
		r0 := i0 + ip*gemmMR
		rows := min(gemmMR, m-r0)
		direct := !a.t && rows == gemmMR
		if rows == gemmMR && cols == gemmNR {
			if direct {
				kernel6x16Row(kc, a.d[r0*a.ld+p0:], a.ld, bp, ldb, c[r0*ldc+j0:], ldc, add)
			} else {
				kernel6x16(kc, ap, bp, ldb, c[r0*ldc+j0:], ldc, add)
			}
			continue
		}
		// Edge tile: through a full scratch tile.
		t := w.tile[:]
		if add {
			clear(t)
			for r := range rows {
				copy(t[r*gemmNR:r*gemmNR+cols], c[(r0+r)*ldc+j0:(r0+r)*ldc+j0+cols])
			}
		}
		if direct {
			kernel6x16Row(kc, a.d[r0*a.ld+p0:], a.ld, bp, ldb, t, gemmNR, add)
		} else {
			kernel6x16(kc, ap, bp, ldb, t, gemmNR, add)
		}
		for r := range rows {
			copy(c[(r0+r)*ldc+j0:(r0+r)*ldc+j0+cols], t[r*gemmNR:r*gemmNR+cols])
		}
	}
}

// gemmPacked is gemm with B already packed.
func (w *gemmWork) gemmPacked(m int, a mat, pb *packedB, c []float32, ldc int, acc bool) {
	n, k := pb.n, pb.k
	if m == 0 || n == 0 {
		return
	}
	w.a = grow(w.a, gemmMC*gemmKC)
	np := pb.panels()
	for p0 := 0; p0 < k; p0 += gemmKC {
		kc := min(gemmKC, k-p0)
		blk := pb.block(p0)
		add := acc || p0 > 0
		for i0 := 0; i0 < m; i0 += gemmMC {
			mc := min(gemmMC, m-i0)
			w.prepA(a, i0, mc, p0, kc)
			for jp := range np {
				j0 := jp * gemmNR
				w.tiles(a, p0, i0, mc, kc, blk[jp*kc*gemmNR:(jp+1)*kc*gemmNR], gemmNR, j0, min(gemmNR, n-j0), m, c, ldc, add)
			}
		}
	}
}

// kernel6x16RowGo is kernel6x16Go with A read in place (row r of the
// tile's A is a[r*lda:]).
func kernel6x16RowGo(kc int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	var ap [gemmKC * gemmMR]float32
	for r := range gemmMR {
		for p, v := range a[r*lda : r*lda+kc] {
			ap[p*gemmMR+r] = v
		}
	}
	kernel6x16Go(kc, ap[:kc*gemmMR], b, ldb, c, ldc, acc)
}

// kernel6x16Go is the pure-Go micro-kernel: c[r*ldc+j] (r < 6, j < 16) =
// (acc ? c[r*ldc+j] : 0) + Σ_p a[p*6+r]·b[p*ldb+j].
func kernel6x16Go(kc int, a, b []float32, ldb int, c []float32, ldc int, acc bool) {
	var t [gemmMR * gemmNR]float32
	a = a[:kc*gemmMR]
	for p := range kc {
		ap := a[p*gemmMR : p*gemmMR+gemmMR]
		bp := b[p*ldb : p*ldb+gemmNR]
		for r, av := range ap {
			tr := t[r*gemmNR : r*gemmNR+gemmNR]
			for j, bv := range bp {
				tr[j] += av * bv
			}
		}
	}
	for r := range gemmMR {
		cr := c[r*ldc : r*ldc+gemmNR]
		tr := t[r*gemmNR : r*gemmNR+gemmNR]
		if acc {
			for j := range cr {
				cr[j] += tr[j]
			}
		} else {
			copy(cr, tr)
		}
	}
}
