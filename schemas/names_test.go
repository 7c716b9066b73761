package schemas

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	tests := []struct {
		prefix                                       string
		topic, group, stream, bucket, state, act     string
		stateFilter, decisionFilter, decisionSubject string
	}{
		{"", "strata.telemetry.v1", "strata-sink", "STRATA_STATE", "strata_models", "strata.state.tactical", "strata.act.operational",
			"strata.state.>", "strata.decision.>", "strata.decision.strategic"},
		{"it-loop-7", "it-loop-7.strata.telemetry.v1", "it-loop-7.strata-sink", "IT_LOOP_7_STRATA_STATE", "it-loop-7_strata_models",
			"it-loop-7.strata.state.tactical", "it-loop-7.strata.act.operational",
			"it-loop-7.strata.state.>", "it-loop-7.strata.decision.>", "it-loop-7.strata.decision.strategic"},
	}
	for _, tt := range tests {
		n := Names{Prefix: tt.prefix}
		got := []string{n.Topic(TopicTelemetry), n.Group("strata-sink"), n.Stream(StreamState), n.Bucket(BucketModels),
			n.StateSubject(Tactical), n.ActSubject(Operational), n.StateSubjects(), n.DecisionSubjects(), n.DecisionSubject(Strategic)}
		want := []string{tt.topic, tt.group, tt.stream, tt.bucket, tt.state, tt.act, tt.stateFilter, tt.decisionFilter, tt.decisionSubject}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("prefix %q: name %d = %q, want %q", tt.prefix, i, got[i], want[i])
			}
		}
		topics := n.Topics()
		if len(topics) != 7 {
			t.Fatalf("prefix %q: %d topics, want 7", tt.prefix, len(topics))
		}
		for _, tp := range topics {
			if !strings.HasPrefix(tp, tt.prefix) || !strings.Contains(tp, "strata.") {
				t.Errorf("prefix %q: topic %q", tt.prefix, tp)
			}
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	tests := []struct {
		p       string
		wantErr string
	}{
		{"", ""},
		{"a", ""},
		{"it-loop-12345", ""},
		{"9x", ""},
		{"-a", "byte 0"},
		{"A", "byte 0"},
		{"a.b", "byte 1"},
		{"a_b", "byte 1"},
		{"a b", "byte 1"},
		{"a>", "byte 1"},
		{strings.Repeat("a", 49), "longer than 48"},
	}
	for _, tt := range tests {
		err := ValidatePrefix(tt.p)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidatePrefix(%q) = %v, want nil", tt.p, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ValidatePrefix(%q) = %v, want an error containing %q", tt.p, err, tt.wantErr)
		}
	}
}

func TestLayerTicks(t *testing.T) {
	for _, c := range []struct {
		l           Layer
		tickUS, ops int64
	}{
		{Strategic, 86_400_000_000, 5760},
		{Tactical, 3_600_000_000, 240},
		{Operational, 15_000_000, 1},
		{"hourly", 0, 0},
	} {
		if got := c.l.TickUS(); got != c.tickUS {
			t.Errorf("%q.TickUS() = %d, want %d", c.l, got, c.tickUS)
		}
		if got := c.l.OperationalTicks(); got != c.ops {
			t.Errorf("%q.OperationalTicks() = %d, want %d", c.l, got, c.ops)
		}
	}
}
