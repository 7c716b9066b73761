package schemas

import "fmt"

// Kafka topics. The key of every record is the app id, so an app's functions
// and its strategic state share a partition.
const (
	// TopicInvocations carries arrivals (stratapb.Arrival) and watermarks.
	TopicInvocations = "strata.invocations.v1"
	// TopicTelemetry carries observed invocations (stratapb.Observation) and
	// watermarks.
	TopicTelemetry = "strata.telemetry.v1"
	// TopicDecisions carries joined decisions written by the twin.
	TopicDecisions = "strata.decisions.v1"
	// TopicRewards carries rewards written by the twin.
	TopicRewards = "strata.rewards.v1"
	// TopicOutcomes carries optional per-invocation outcomes.
	TopicOutcomes = "strata.outcomes.v1"
	// TopicTransitions carries learner transitions.
	TopicTransitions = "strata.transitions.v1"
	// TopicDeadLetter carries rejected input (stratapb.DeadLetter).
	TopicDeadLetter = "strata.deadletter.v1"
)

// Kafka record header keys and values.
const (
	// HeaderKind names the kind of a record; absent means the topic's own
	// record type (Arrival or Observation).
	HeaderKind = "strata-kind"
	// KindWatermark marks a stratapb.Watermark record.
	KindWatermark = "watermark"
)

// Layer is one of the three decision layers.
type Layer string

// The decision layers and their cadences.
const (
	// Strategic decides daily, per app, the provider.
	Strategic Layer = "strategic"
	// Tactical decides hourly, per function, region and memory tier.
	Tactical Layer = "tactical"
	// Operational decides every 15 s, per active function, pre-warm counts.
	Operational Layer = "operational"
)

// Layers lists the layers from the slowest to the fastest.
var Layers = []Layer{Strategic, Tactical, Operational}

// ParseLayer returns the layer named s.
func ParseLayer(s string) (Layer, error) {
	for _, l := range Layers {
		if string(l) == s {
			return l, nil
		}
	}
	return "", fmt.Errorf("unknown layer %q: want strategic, tactical or operational", s)
}

// NATS JetStream streams and subjects.
const (
	// StreamState is the JetStream stream holding state batches.
	StreamState = "STRATA_STATE"
	// StreamDecision is the JetStream stream holding decision batches.
	StreamDecision = "STRATA_DECISION"
	// SubjectStatePrefix prefixes the per-layer state subjects.
	SubjectStatePrefix = "strata.state."
	// SubjectDecisionPrefix prefixes the per-layer decision subjects.
	SubjectDecisionPrefix = "strata.decision."
	// SubjectActPrefix prefixes the per-layer request/reply subjects.
	SubjectActPrefix = "strata.act."
	// BucketCheckpoints is the JetStream key-value bucket where consumers
	// keep their state checkpoints.
	BucketCheckpoints = "strata_checkpoints"
	// BucketModels is the JetStream object store of the learner's model
	// checkpoints, one object per (run, layer, version).
	BucketModels = "strata_models"
	// BucketLearner is the JetStream key-value bucket of the learner's
	// per-run progress and checkpoint index.
	BucketLearner = "strata_learner"
)

// StateSubject returns the subject of layer's state batches.
func StateSubject(l Layer) string { return SubjectStatePrefix + string(l) }

// DecisionSubject returns the subject of layer's decision batches.
func DecisionSubject(l Layer) string { return SubjectDecisionPrefix + string(l) }

// ActSubject returns the request/reply subject of layer.
func ActSubject(l Layer) string { return SubjectActPrefix + string(l) }

// BatchMsgID returns the JetStream message id of a tick batch. Republishing
// the same batch (after a restart) reuses the id, so JetStream drops it as a
// duplicate.
func BatchMsgID(runID string, l Layer, tick int64, shard, nShards int) string {
	return fmt.Sprintf("%s.%s.%d.%d.%d", runID, l, tick, shard, nShards)
}
