// Package lstm is the operational layer's learned predictor (docs/lstm.md,
// seed §2.6): a two-layer LSTM that reads a function's last 12 fifteen-
// second steps (request rate, memory util, CPU util, queue depth, hour
// sine; schemas.OperationalRow.Vector) and predicts the next step's CPU
// util, memory util and request rate, which a Little's-law rule turns into
// a pre-warm count.
//
// Train is the supervised trainer, pure and without I/O, for a one-time
// export of operational sequences: samples with NaN or ±Inf values are
// rejected and counted by Dataset; a seeded validation split (or a given
// validation set); scalers fitted on the training samples only (log1p on
// request rate and queue depth, then min-max or robust); shuffled
// minibatches of 128; Adam 1e-3 with ReduceLROnPlateau (×0.5 after 3
// epochs without a better validation loss); early stopping after 5 and
// the best epoch's weights kept; the asymmetric loss (β_under 5, β_over 1)
// or the symmetric MSE (Config.Loss). It returns the learning curve.
//
// Evaluate computes RMSE, MAE and R² per target and the under-provisioning
// rate; MovingAverage5 is the baseline predictor to compare with.
//
// The Policy (name "lstm", the operational layer) serves decisions from
// exported weights (nn.LSTMWeights) through PrewarmRule. Checkpoints (Save,
// ReadCheckpoint, LoadPolicy) are tar archives of a JSON manifest and the
// network as an nn safetensors file; docs/lstm.md gives the details.
//
// Counters live in TrainStats and PolicyStats values; the package keeps
// no global state.
package lstm
