package schemas

import (
	"fmt"
	"strings"

	"github.com/strata-rl/strata/schemas/grid"
)

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
	// HeaderProducedUS, on a watermark record, holds when it was produced
	// in microseconds since the Unix epoch (decimal): Kafka's own record
	// timestamps have millisecond resolution, too coarse for the closed
	// loop's sub-millisecond hop (strata_features_watermark_delay_seconds).
	HeaderProducedUS = "strata-produced-us"
	// HeaderWriter, on a watermark record, names the instance that wrote
	// it: several `strata ingest` behind a load balancer each write their
	// own watermarks, and a reader takes the minimum over the live ones
	// (Watermarks). Absent means the one writer of a replay.
	HeaderWriter = "strata-writer"
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

// TickUS returns the length of one tick of layer l in microseconds of trace
// time (package grid), 0 for an unknown layer.
func (l Layer) TickUS() int64 {
	switch l {
	case Strategic:
		return grid.StrategicTickUS
	case Tactical:
		return grid.TacticalTickUS
	case Operational:
		return grid.OperationalTickUS
	}
	return 0
}

// OperationalTicks returns the number of operational ticks in one tick of
// layer l: 1, grid.TicksPerHour or grid.TicksPerDay; 0 for an unknown
// layer.
func (l Layer) OperationalTicks() int64 { return l.TickUS() / grid.OperationalTickUS }

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
	// BucketTwin is the JetStream object store of the replay twin's
	// checkpoints, one object per run.
	BucketTwin = "strata_twin"
	// BucketFeatures is the JetStream object store of the feature
	// service's checkpoints too large for a key-value entry (NATS's
	// maximum payload, 1 MiB by default): the entry in BucketCheckpoints
	// then names the object (features.KVCheckpoints).
	BucketFeatures = "strata_features"
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

// Names are the broker-side names of one deployment: its Kafka topics and
// consumer groups, its JetStream streams, subjects and buckets. A non-empty
// Prefix puts every one of them in a namespace of its own, so several
// deployments (or tests) share a Kafka cluster and a NATS server without
// seeing each other's records; the zero Names are the bare names above.
//
// With prefix p, topic strata.telemetry.v1 becomes p.strata.telemetry.v1,
// subject strata.state.tactical p.strata.state.tactical, group
// strata-features p.strata-features, stream STRATA_STATE P_STRATA_STATE (in
// upper case, '-' as '_') and bucket strata_models p_strata_models.
type Names struct {
	// Prefix is empty, or 1–48 of [a-z0-9-], starting with a letter or a
	// digit (see ValidatePrefix).
	Prefix string
}

// ValidatePrefix checks that p can prefix every kind of name: Kafka topics,
// NATS subjects, stream and bucket names.
func ValidatePrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > 48 {
		return fmt.Errorf("name prefix %q: longer than 48 bytes", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return fmt.Errorf("name prefix %q: byte %d is %q; want lower-case letters, digits and '-' (not first)", p, i, c)
		}
	}
	return nil
}

// Topic returns the Kafka topic of base (one of the Topic constants).
func (n Names) Topic(base string) string { return n.dotted(base) }

// Group returns the Kafka consumer group (or NATS queue group) of base.
func (n Names) Group(base string) string { return n.dotted(base) }

// Stream returns the JetStream stream of base (one of the Stream
// constants).
func (n Names) Stream(base string) string {
	if n.Prefix == "" {
		return base
	}
	return strings.ToUpper(strings.ReplaceAll(n.Prefix, "-", "_")) + "_" + base
}

// Bucket returns the JetStream key-value or object bucket of base (one of
// the Bucket constants).
func (n Names) Bucket(base string) string {
	if n.Prefix == "" {
		return base
	}
	return n.Prefix + "_" + base
}

// StateSubject returns the subject of layer's state batches.
func (n Names) StateSubject(l Layer) string { return n.dotted(StateSubject(l)) }

// DecisionSubject returns the subject of layer's decision batches.
func (n Names) DecisionSubject(l Layer) string { return n.dotted(DecisionSubject(l)) }

// ActSubject returns the request/reply subject of layer.
func (n Names) ActSubject(l Layer) string { return n.dotted(ActSubject(l)) }

// StateSubjects returns the subject filter of the state stream.
func (n Names) StateSubjects() string { return n.dotted(SubjectStatePrefix + ">") }

// DecisionSubjects returns the subject filter of the decision stream.
func (n Names) DecisionSubjects() string { return n.dotted(SubjectDecisionPrefix + ">") }

// Topics lists every Kafka topic of the deployment.
func (n Names) Topics() []string {
	base := []string{TopicInvocations, TopicTelemetry, TopicDecisions, TopicRewards, TopicOutcomes, TopicTransitions, TopicDeadLetter}
	out := make([]string, len(base))
	for i, t := range base {
		out[i] = n.Topic(t)
	}
	return out
}

func (n Names) dotted(base string) string {
	if n.Prefix == "" {
		return base
	}
	return n.Prefix + "." + base
}
