package pipeline

import "time"

// The defaults every command that runs a loop shares, spelled once: the
// commands' flags and configuration files take them from here.
const (
	// DefaultPlacement is the placement of a function before any
	// decision: provider/metro/memory MB.
	DefaultPlacement = "aws/us-east/1024"
	// DefaultStrategicPolicy and DefaultTacticalPolicy decide the
	// strategic and tactical layers unless told otherwise.
	DefaultStrategicPolicy = "greedy-cost"
	DefaultTacticalPolicy  = "greedy-cost"
	// DefaultOperationalPolicy decides the operational layer of a run and
	// of live mode unless told otherwise (training and export choose their
	// own).
	DefaultOperationalPolicy = "hybrid-histogram"
	// DefaultPolicySeed seeds the policies' random choices.
	DefaultPolicySeed = 1
	// DefaultLogLevel is the log level of the commands unless told
	// otherwise (the learner's is info).
	DefaultLogLevel = "warn"
	// DefaultLateness is the replay's allowed lateness unless told
	// otherwise: longer than the Azure trace's longest duration (578.6 s).
	DefaultLateness = 600 * time.Second
)

// DefaultTransitions is `strata run`'s --transitions default (and `strata
// bench loop`'s, which runs the loop as `strata run` does): the layers
// whose learner transitions the twin writes.
const DefaultTransitions = "strategic,tactical"

// DefaultTacticalFeatures is the --tactical-features default: the seed's
// tactical state.
const DefaultTacticalFeatures = "seed-v1"

// DefaultStrategicFeatures is the --strategic-features default: the seed's
// set.
const DefaultStrategicFeatures = "seed-v1"
