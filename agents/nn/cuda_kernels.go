//go:build strata_cuda

package nn

// cudaKernelSource is the CUDA C source of the CUDA backend's kernels,
// compiled with NVRTC for the device at hand when the backend starts (so
// the build needs no nvcc, and the code is built for the GPU it runs on).
// Matrix products are cuBLAS's; these are the element-wise and per-row
// steps between them. Every reduction runs in a fixed order (a thread per
// column, or one warp per row with a fixed shuffle tree): the backend is
// deterministic run to run, as the CPU backend is for a thread count.
//
// Layouts are the CPU backend's: row-major activations, dense weights
// in×out, LSTM activations step-major (T×R×width) with the four gates
// joined (in×4H, gate order i, f, g, o).
const cudaKernelSource = `
#define RB 2

__device__ __forceinline__ float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float warp_sum(float v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

// y[r, j] = b[j] for rows×w.
extern "C" __global__ void bias_rows(float* y, const float* b, int rows, int w) {
	long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < (long)rows * w) y[i] = b[i % w];
}

// y = max(y, 0) * mask (mask may be null).
extern "C" __global__ void relu_mask(float* y, const float* mask, int n) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n) return;
	float v = y[i];
	v = v < 0.0f ? 0.0f : v;
	if (mask) v *= mask[i];
	y[i] = v;
}

// d = d * mask where o > 0, else 0 (mask may be null).
extern "C" __global__ void relu_mask_bwd(float* d, const float* o, const float* mask, int n) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n) return;
	float g = d[i];
	if (mask) g *= mask[i];
	if (!(o[i] > 0.0f)) g = 0.0f;
	d[i] = g;
}

// y = x * m element-wise.
extern "C" __global__ void mul(float* y, const float* x, const float* m, int n) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) y[i] = x[i] * m[i];
}

// dst[j] += sum over rows of m[r, j] (rows×w, row stride ld).
extern "C" __global__ void col_sums(float* dst, const float* m, int rows, int w, int ld) {
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= w) return;
	float s = 0.0f;
	for (int r = 0; r < rows; r++) s += m[(long)r * ld + j];
	dst[j] += s;
}

// dst (cols×rows) = src (rows×cols) transposed.
extern "C" __global__ void transpose(float* dst, const float* src, int rows, int cols) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= rows * cols) return;
	int r = i / cols, c = i % cols;
	dst[(long)c * rows + r] = src[i];
}

// LayerNorm → ReLU → dropout, one warp per row. z holds the rows' dense
// outputs and receives x̂; inv receives 1/σ, o the block's output.
extern "C" __global__ void ln_fwd(float* z, float* inv, float* o, const float* gain, const float* shift,
		const float* mask, int rows, int w, float eps) {
	int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
	int lane = threadIdx.x % 32;
	if (r >= rows) return;
	float* zr = z + (long)r * w;
	float s = 0.0f;
	for (int j = lane; j < w; j += 32) s += zr[j];
	float mean = warp_sum(s) / (float)w;
	float sq = 0.0f;
	for (int j = lane; j < w; j += 32) {
		float c = zr[j] - mean;
		sq += c * c;
	}
	float iv = 1.0f / sqrtf(warp_sum(sq) / (float)w + eps);
	if (lane == 0) inv[r] = iv;
	float* orow = o + (long)r * w;
	const float* mr = mask ? mask + (long)r * w : 0;
	for (int j = lane; j < w; j += 32) {
		float xh = (zr[j] - mean) * iv;
		zr[j] = xh;
		float v = xh * gain[j] + shift[j];
		v = v < 0.0f ? 0.0f : v;
		if (mr) v *= mr[j];
		orow[j] = v;
	}
}

// The per-row half of LayerNorm → ReLU → dropout's backward pass, one warp
// per row: g (the gradient with respect to the block's output) becomes
// the gradient with respect to the LayerNorm's output (through dropout and
// ReLU), dz receives the gradient with respect to the dense output.
extern "C" __global__ void ln_bwd_rows(float* g, const float* o, const float* mask, const float* xhat,
		const float* inv, const float* gain, float* dz, int rows, int w) {
	int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
	int lane = threadIdx.x % 32;
	if (r >= rows) return;
	long base = (long)r * w;
	float s1 = 0.0f, s2 = 0.0f;
	for (int j = lane; j < w; j += 32) {
		float v = g[base + j];
		if (mask) v *= mask[base + j];
		if (!(o[base + j] > 0.0f)) v = 0.0f;
		g[base + j] = v;
		float dxh = v * gain[j];
		s1 += dxh;
		s2 += dxh * xhat[base + j];
	}
	float m1 = warp_sum(s1) / (float)w, m2 = warp_sum(s2) / (float)w;
	float iv = inv[r];
	for (int j = lane; j < w; j += 32) {
		dz[base + j] = iv * (g[base + j] * gain[j] - m1 - xhat[base + j] * m2);
	}
}

// The parameter half: dgain[j] += Σ g·x̂, dshift[j] += Σ g, a thread per column.
extern "C" __global__ void ln_bwd_params(float* dgain, float* dshift, const float* g, const float* xhat, int rows, int w) {
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= w) return;
	float a = 0.0f, b = 0.0f;
	for (int r = 0; r < rows; r++) {
		float v = g[(long)r * w + j];
		a += v * xhat[(long)r * w + j];
		b += v;
	}
	dgain[j] += a;
	dshift[j] += b;
}

// Q loss on Q(s, a), a thread per row: dq receives the loss's gradient
// (zero but for the taken action), loss[r] the row's loss.
extern "C" __global__ void q_loss(const float* q, const int* actions, const float* targets, float* dq, float* loss,
		int rows, int A, float delta, int huber, float invB) {
	int r = blockIdx.x * blockDim.x + threadIdx.x;
	if (r >= rows) return;
	for (int j = 0; j < A; j++) dq[r * A + j] = 0.0f;
	int a = actions[r];
	float err = q[r * A + a] - targets[r];
	float li, de;
	if (huber) {
		float ab = fabsf(err);
		if (ab < delta) { li = 0.5f * ab * ab; de = ab; } else { li = delta * (ab - 0.5f * delta); de = delta; }
		if (err < 0.0f) de = -de; else if (err == 0.0f) de = 0.0f;
	} else {
		li = err * err;
		de = 2.0f * err;
	}
	loss[r] = li;
	dq[r * A + a] = de * invB;
}

// Masked log-softmax, a thread per row: z (logits) += addMask, logp
// receives the log-probabilities.
extern "C" __global__ void log_softmax(float* z, const float* addMask, float* logp, int rows, int A) {
	int r = blockIdx.x * blockDim.x + threadIdx.x;
	if (r >= rows) return;
	float* zr = z + (long)r * A;
	const float* am = addMask + (long)r * A;
	float m = __int_as_float(0xff800000);
	for (int j = 0; j < A; j++) {
		zr[j] += am[j];
		m = fmaxf(m, zr[j]);
	}
	float s = 0.0f;
	for (int j = 0; j < A; j++) s += expf(zr[j] - m);
	float lse = m + logf(s);
	for (int j = 0; j < A; j++) logp[(long)r * A + j] = zr[j] - lse;
}

// PPO's loss, a thread per row: dl receives the gradient with respect to
// the logits, dv the value head's; terms[4r..4r+3] the row's policy,
// value, entropy (Σ p log p) and counterfactual (Σ p R) terms.
extern "C" __global__ void ppo_loss(const float* logp, const int* actions, const float* old, const float* adv,
		const float* ret, const float* v, const float* rewards, float* dl, float* dv, float* terms,
		int rows, int A, float lnMin, float lnMax, float clipLo, float clipHi, float vc, float ec, float cc, float invB) {
	int r = blockIdx.x * blockDim.x + threadIdx.x;
	if (r >= rows) return;
	const float* lp = logp + (long)r * A;
	float* d = dl + (long)r * A;
	int a = actions[r];
	float dd = lp[a] - old[r];
	float lr = fminf(fmaxf(dd, lnMin), lnMax);
	float ratio = expf(lr);
	float ad = adv[r];
	float rc = fminf(fmaxf(ratio, clipLo), clipHi);
	float s1 = ratio * ad, s2 = rc * ad;
	float policy, dr = 0.0f;
	if (s1 - s2 >= 0.0f) {
		policy = -s2;
		if (ratio >= clipLo && ratio <= clipHi) dr = -invB * ad;
	} else {
		policy = -s1;
		dr = -invB * ad;
	}
	float dlp = dr * ratio;
	if (!(dd >= lnMin && dd <= lnMax)) dlp = 0.0f;
	float ent = 0.0f;
	for (int j = 0; j < A; j++) {
		float pj = expf(lp[j]);
		ent += pj * lp[j];
		d[j] = ec * invB * (pj * lp[j] + pj);
	}
	d[a] += dlp;
	float cf = 0.0f;
	if (rewards) {
		const float* rw = rewards + (long)r * A;
		for (int k = 0; k < A; k++) {
			float pk = expf(lp[k]);
			cf += pk * rw[k];
			d[k] -= cc * invB * pk * rw[k];
		}
	}
	float sum = 0.0f;
	for (int j = 0; j < A; j++) sum += d[j];
	for (int j = 0; j < A; j++) d[j] -= expf(lp[j]) * sum;
	float e = v[r] - ret[r];
	dv[r] = vc * 2.0f * e * invB;
	terms[4 * r] = policy;
	terms[4 * r + 1] = e * e;
	terms[4 * r + 2] = ent;
	terms[4 * r + 3] = cf;
}

// The LSTM's asymmetric squared error, a thread per value.
extern "C" __global__ void asym_loss(const float* y, const float* target, float* dy, float* loss, int n, float bu, float bo, float inv) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n) return;
	float d = y[i] - target[i];
	if (d > 0.0f) { loss[i] = bo * d * d; dy[i] = 2.0f * bo * d * inv; }
	else if (d < 0.0f) { loss[i] = bu * d * d; dy[i] = 2.0f * bu * d * inv; }
	else { loss[i] = 0.0f; dy[i] = 0.0f; }
}

// seqs (B×T×F, one sequence per row) to step-major x (T×B×F).
extern "C" __global__ void seq_tmajor(float* x, const float* seqs, int B, int T, int F) {
	long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (long)B * T * F) return;
	int f = i % F;
	long bt = i / F;
	int t = bt % T, b = bt / T;
	x[((long)t * B + b) * F + f] = seqs[i];
}

// One LSTM layer's recurrence over T steps. z (T×R×4H) holds x·Wx + b and
// receives the gates' activations; c, tc receive the cell states and
// tanh(c) (T×R×H), h the hidden states (T+1)×R×H after a leading block of
// zeros. A block runs RB rows through every step: the rows of a batch do
// not depend on each other, so no block waits for another. Shared memory:
// RB×H previous hidden states, then RB×4H gates.
extern "C" __global__ void lstm_fwd(float* z, float* c, float* tc, float* h, const float* wh, int T, int R, int H) {
	extern __shared__ float sm[];
	int G = 4 * H;
	float* hp = sm;
	float* gs = sm + RB * H;
	int r0 = blockIdx.x * RB;
	for (int t = 0; t < T; t++) {
		for (int i = threadIdx.x; i < RB * H; i += blockDim.x) {
			int rr = i / H, j = i % H, r = r0 + rr;
			hp[i] = (r < R && t > 0) ? h[((long)t * R + r) * H + j] : 0.0f;
		}
		__syncthreads();
		for (int j = threadIdx.x; j < G; j += blockDim.x) {
			float acc[RB];
			for (int rr = 0; rr < RB; rr++) {
				int r = r0 + rr;
				acc[rr] = r < R ? z[((long)t * R + r) * G + j] : 0.0f;
			}
			if (t > 0) {
#pragma unroll 8
				for (int k = 0; k < H; k++) {
					float w = wh[(long)k * G + j];
					for (int rr = 0; rr < RB; rr++) acc[rr] += hp[rr * H + k] * w;
				}
			}
			for (int rr = 0; rr < RB; rr++) gs[rr * G + j] = acc[rr];
		}
		__syncthreads();
		for (int i = threadIdx.x; i < RB * H; i += blockDim.x) {
			int rr = i / H, j = i % H, r = r0 + rr;
			if (r >= R) continue;
			float gi = sigm(gs[rr * G + j]), gf = sigm(gs[rr * G + H + j]);
			float gg = tanhf(gs[rr * G + 2 * H + j]), go = sigm(gs[rr * G + 3 * H + j]);
			long zb = ((long)t * R + r) * G;
			z[zb + j] = gi;
			z[zb + H + j] = gf;
			z[zb + 2 * H + j] = gg;
			z[zb + 3 * H + j] = go;
			float cj = gi * gg;
			if (t > 0) cj += gf * c[((long)(t - 1) * R + r) * H + j];
			long cb = ((long)t * R + r) * H + j;
			c[cb] = cj;
			float tcj = tanhf(cj);
			tc[cb] = tcj;
			h[((long)(t + 1) * R + r) * H + j] = go * tcj;
		}
		__syncthreads();
	}
}

// The recurrence's backward pass for one layer. z holds the gates'
// activations and receives the gradients with respect to their
// pre-activations; dh (T×R×H) is the gradient with respect to the hidden
// states from above; whT is Wh transposed (4H×H). Shared memory: RB×H
// cell-state gradients, RB×H recurrent hidden-state gradients, RB×4H gate
// gradients, and up to 4×RB×H partial sums of the recurrent product.
extern "C" __global__ void lstm_bwd(float* z, const float* c, const float* tc, const float* dh, const float* whT,
		int T, int R, int H) {
	extern __shared__ float sm[];
	int G = 4 * H;
	float* dcs = sm;
	float* dhr = sm + RB * H;
	float* dzs = sm + 2 * RB * H;
	float* part = dzs + RB * G;
	int r0 = blockIdx.x * RB;
	for (int i = threadIdx.x; i < RB * H; i += blockDim.x) { dcs[i] = 0.0f; dhr[i] = 0.0f; }
	__syncthreads();
	for (int t = T - 1; t >= 0; t--) {
		for (int i = threadIdx.x; i < RB * H; i += blockDim.x) {
			int rr = i / H, j = i % H, r = r0 + rr;
			if (r >= R) {
				for (int q = 0; q < 4; q++) dzs[rr * G + q * H + j] = 0.0f;
				continue;
			}
			long hb = ((long)t * R + r) * H + j;
			long zb = ((long)t * R + r) * G;
			float dht = dh[hb];
			if (t < T - 1) dht += dhr[i];
			float gi = z[zb + j], gf = z[zb + H + j], gg = z[zb + 2 * H + j], go = z[zb + 3 * H + j];
			float tcj = tc[hb];
			float dct = dcs[i] + dht * go * (1.0f - tcj * tcj);
			float df = t > 0 ? dct * c[((long)(t - 1) * R + r) * H + j] : 0.0f;
			dcs[i] = dct * gf;
			float a = dct * gg * gi * (1.0f - gi);
			float b = df * gf * (1.0f - gf);
			float cc = dct * gi * (1.0f - gg * gg);
			float d = dht * tcj * go * (1.0f - go);
			z[zb + j] = a;
			z[zb + H + j] = b;
			z[zb + 2 * H + j] = cc;
			z[zb + 3 * H + j] = d;
			dzs[rr * G + j] = a;
			dzs[rr * G + H + j] = b;
			dzs[rr * G + 2 * H + j] = cc;
			dzs[rr * G + 3 * H + j] = d;
		}
		__syncthreads();
		if (t > 0) {
			// dh(t−1) = dz(t)·Whᵀ, the 4H-long sums split into P parts so
			// that every thread works, the parts added in a fixed order.
			int P = blockDim.x / H;
			P = P < 1 ? 1 : (P > 4 ? 4 : P);
			for (int i = threadIdx.x; i < P * H; i += blockDim.x) {
				int j = i % H, q = i / H;
				int g0 = q * G / P, g1 = (q + 1) * G / P;
				float acc[RB];
				for (int rr = 0; rr < RB; rr++) acc[rr] = 0.0f;
#pragma unroll 8
				for (int g = g0; g < g1; g++) {
					float w = whT[(long)g * H + j];
					for (int rr = 0; rr < RB; rr++) acc[rr] += dzs[rr * G + g] * w;
				}
				for (int rr = 0; rr < RB; rr++) part[(q * RB + rr) * H + j] = acc[rr];
			}
			__syncthreads();
			for (int i = threadIdx.x; i < RB * H; i += blockDim.x) {
				int rr = i / H, j = i % H;
				float sum = 0.0f;
				for (int q = 0; q < P; q++) sum += part[(q * RB + rr) * H + j];
				dhr[i] = sum;
			}
		}
		__syncthreads();
	}
}
`

// cudaRowsPerBlock is RB of cudaKernelSource: the rows an LSTM block runs.
const cudaRowsPerBlock = 2
