// Package train is the training workflows: `strata train` (Train:
// closed-loop episodes of the DQN and PPO with an in-process learner,
// validation, the best checkpoints, learning curves as CSV and PNG, and
// the LSTM), `strata train-lstm` (TrainLSTM: the operational LSTM trained
// supervised on exported sequences) and `strata export sequences`
// (Export: those sequences, written by package sequences). Each has a
// Config with RegisterFlags and Validate; cmd/strata parses the flags.
package train
