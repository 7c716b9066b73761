// Package agents holds strata's decision policies: the [Policy] interface
// every layer's policy implements, and a registry, [New] and [Names], that
// builds them by name. The baselines live in agents/baselines; the learned
// policies (strategic DQN, tactical PPO, operational LSTM) will register
// here too.
//
// A policy receives one state batch per tick (schemas.StateBatch: raw,
// documented values) and appends one schemas.DecisionRow per entity it
// decides for to the tick's decision batch. The tick loop (docs/tick-contract.md) makes
// the whole system deterministic as long as every policy is: the same
// sequence of batches and the same Options give the same decisions.
package agents
