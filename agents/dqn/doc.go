// Package dqn is the strategic layer's learning agent (docs/dqn.md, seed
// §2.4): a deep Q-network that chooses each app's cloud provider once a
// day, one policy shared by all apps.
//
// The Learner is the algorithm, pure and without I/O: a replay buffer of
// 100,000 transitions (a ring with seeded uniform sampling), minibatches of
// 64, the nn package's dual-encoder QNet trained with Adam 1e-4, Huber
// loss and gradient clip 1.0, bootstrapped targets
// r + γ·(1−done)·max_a' Q_target(s', a') with γ = 0.99 and the Q-values and
// targets clipped to the value bounds [−100, 100], and a soft target update
// (τ = 0.005) after every gradient step. Transitions holding NaN or ±Inf
// are rejected before the buffer and counted; training starts once the
// buffer holds WarmUp transitions (1,000) and then runs
// UpdatesPerTransition steps (1) per added transition. The input scaler is
// fitted with nn.FitScaler on the states of the first ScalerFit
// transitions added (which must come from training days) and frozen.
// Exploration is ε-greedy with ε decaying exponentially per episode from
// 1.0 to 0.05 over 40 episodes (Config.Epsilon).
//
// The Policy serves decisions from exported weights (nn.QWeights) with the
// agents.Policy method set: name "dqn", the strategic layer, and a Decide
// that scales each row's schemas.StrategicRow.Vector, picks the provider
// ε-greedily with a random draw keyed by (seed, tick, app), and writes the
// action, the provider and the largest Q-value.
//
// Checkpoints (Learner.Save, ReadCheckpoint, LoadLearner, LoadPolicy) are
// tar archives of a JSON manifest and the online and target networks as
// nn safetensors files; docs/dqn.md gives the layout.
//
// Counters live in Stats and PolicyStats values; the package keeps no
// global state.
package dqn
