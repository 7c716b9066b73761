package pipeline

import "github.com/strata-rl/strata/agents/learner"

// SetLearnerConfig makes r adjust its learner's configuration with f (the
// tests' small buffers).
func SetLearnerConfig(r *LearnerRole, f func(*learner.Config)) { r.configure = f }
