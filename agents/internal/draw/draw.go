package draw

import "math"

// Hash is FNV-1a over seed and tick (8 bytes each, little-endian) and each
// part followed by a zero byte, finished with one splitmix64 step.
func Hash(seed, tick int64, parts ...string) uint64 {
	h := uint64(14695981039346656037)
	mix := func(b byte) {
		h ^= uint64(b)
		h *= 1099511628211
	}
	for _, v := range [2]int64{seed, tick} {
		for i := range 8 {
			mix(byte(uint64(v) >> (8 * i)))
		}
	}
	for _, s := range parts {
		for i := 0; i < len(s); i++ {
			mix(s[i])
		}
		mix(0)
	}
	return SplitMix(h)
}

// SplitMix is one splitmix64 step: a well-mixed successor of x, for a
// second draw from one hash.
func SplitMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Uniform maps a hash to a float64 in (0, 1). The top 53 bits plus a half
// step, scaled; the largest hash would round to exactly 1, so it is held
// just below.
func Uniform(h uint64) float64 {
	return min((float64(h>>11)+0.5)/(1<<53), math.Nextafter(1, 0))
}
