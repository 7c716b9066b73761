// Package models lists and inspects the agents' checkpoints — the files
// `strata train` writes (dqn.ckpt, ppo.ckpt, lstm.ckpt and those of each
// episode) and the JetStream registry the learner publishes to — for
// `strata models`: layer, kind and format, version, network and input
// sizes, feature-set version when recorded, scaler, training run and
// episode, in-force interval and validation results.
//
// It reads checkpoints without building their networks: the manifests and
// safetensors metadata say everything it reports.
package models
