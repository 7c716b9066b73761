// Package nn holds the three networks of the learning agents (docs/nn.md,
// seed §2.4–2.6), trained by one of two backends and exported to plain
// float32 slices for serving:
//
//   - QNet, the strategic dual-encoder Q-network (14 inputs → 3 Q-values),
//   - PPONet, the tactical actor-critic (11 inputs → 24 action
//     probabilities and a state value),
//   - LSTMNet, the operational two-layer LSTM (12 steps × 5 features → 3
//     predictions).
//
// Each network is created from a configuration (DefaultQConfig,
// DefaultPPOConfig, DefaultLSTMConfig give the seed's) and a seed that
// fixes its initial weights (He- or Glorot-uniform from math/rand/v2) and
// its dropout masks. Options choose the backend that computes: BackendCPU
// (the default: batched float32 kernels, AVX2/FMA assembly with a pure-Go
// fallback, rows split among threads in fixed shards, bitwise
// reproducible at a given thread count), BackendGorgonia (gorgonia
// graphs, the reference the others are tested against) or, in a binary
// built with -tags strata_cuda, BackendCUDA (cuBLAS and kernels compiled
// with NVRTC on an NVIDIA GPU, package internal/cudart). All train the
// same parameters, draw the same dropout masks and write the same
// checkpoints; SetBackend switches between them. Forward runs in
// evaluation mode; TrainStep runs one training step — forward with dropout, backward,
// global-norm gradient clipping, Adam — on the loss the algorithm needs:
// Huber or MSE on Q(s, a) for the DQN, the clipped PPO surrogate with value
// loss and entropy bonus, the asymmetric squared error for the LSTM. A
// step whose batch, loss or gradient norm is NaN or infinite is rejected
// with ErrNonFinite, leaves the weights unchanged and is counted in the
// network's Stats; the package keeps no global state.
//
// gorgonia graphs are built lazily, once per batch size and mode, and
// cached; the CPU backend sizes its buffers on first use. The networks are
// not safe for concurrent use.
//
// Export copies the weights into QWeights, PPOWeights or LSTMWeights,
// whose Forward is a pure-Go pass (no gorgonia, no allocation once its
// buffers are sized) that tests hold to the gorgonia output within 1e-5.
// CompareForward times the two side by side.
//
// Save and Load write and read safetensors checkpoints whose metadata
// carries the format version (FormatVersion), the network kind, the
// configuration, the seed and the feature Scaler; docs/nn.md describes the
// layout and how to read it from Python.
//
// The package is domain code: it imports no broker or database client.
package nn
