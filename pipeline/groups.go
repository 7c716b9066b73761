package pipeline

import "github.com/strata-rl/strata/schemas"

// Groups are the Kafka consumer groups of one run, each under the run's
// name prefix. They are spelled here once: the roles join them, and the
// embedded broker's retention (TrimConsumed) and live mode's drain read
// their committed offsets.
type Groups struct {
	// Features reads strata.telemetry.v1 into the feature windows.
	Features string
	// Twin reads strata.invocations.v1 in the closed loop.
	Twin string
	// Shadow reads strata.telemetry.v1 in live mode's shadow twin.
	Shadow string
	// Sink reads decisions, rewards, outcomes and runs into the store.
	Sink string
	// Learner reads strata.transitions.v1 into the in-process learner.
	Learner string
}

// GroupsOf returns run runID's consumer groups under names' prefix.
func GroupsOf(names schemas.Names, runID string) Groups {
	return Groups{
		Features: names.Group("strata-features-" + runID),
		Twin:     names.Group("strata-twin-" + runID),
		Shadow:   names.Group("strata-shadow-" + runID),
		Sink:     names.Group("strata-sink-" + runID),
		Learner:  names.Group("strata-learner-" + runID),
	}
}
