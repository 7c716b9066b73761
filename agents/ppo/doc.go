// Package ppo is the tactical layer's learning agent (docs/ppo.md, seed
// §2.5): Proximal Policy Optimization over the actor-critic of agents/nn,
// and the policy that serves it.
//
// The Learner holds a rollout buffer of transitions of the current policy
// version only (PPO is on-policy): Add rejects and counts transitions of
// another version, malformed ones, duplicates and any holding NaN or ±Inf
// before they reach the buffer. When the buffer holds Config.Rollout
// (2048) transitions, Update computes generalised advantage estimates
// (γ 0.99, λ 0.95) per entity trajectory, normalises the advantages,
// runs Config.Epochs (10) passes of shuffled minibatches of 64 through
// nn's clipped PPO loss (clip 0.2, value 0.5, entropy 0.01, ratio bounded
// to [0.01, 100], gradient norm clip 0.5, Adam 3e-4), and bumps the policy
// version. The feature scaler is fitted on the first rollout's states
// (which the caller feeds from training days only) unless SetScaler gave
// one; version 0 without a scaler is the uniform policy over the allowed
// actions.
//
// A Model is one version's exported weights, scaler and configuration; a
// Policy serves a Model through agents.Policy's method set (Name "ppo",
// Layer tactical): it scales each row's 11-value state
// (schemas.TacticalRow.Vector), runs the pure-Go forward pass, masks the
// actions the catalog marks unavailable for the row's provider
// (Availability; none today) and samples the action from a hash of
// (seed, tick, app, func), or takes the argmax in greedy mode.
//
// Learner.Save writes nn's safetensors checkpoint with the PPO version
// and configuration added to its metadata; LoadLearner and LoadModel read
// it. The package keeps no global state: counters are in Learner.Stats
// and Policy.Stats. It imports no broker or database client. See
// docs/ppo.md.
package ppo
