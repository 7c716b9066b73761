// Package eval is `strata eval`: the closed loop once per configuration
// over the evaluation days, after unscored warm-up days, and one
// comparison table — the baselines varied one layer at a time against the
// reference (--baselines), or the learned policies of trained model
// directories against the tactical baselines, the ablations of seed §4.5
// and the LSTM's prediction metrics against the 5-step moving average
// (--models), with mean ± std across the seeds. Its Config has
// RegisterFlags and Validate; cmd/strata parses the flags.
package eval
