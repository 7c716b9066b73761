package decisions

import (
	"encoding/json"
	"math"
	"time"

	"github.com/strata-rl/strata/schemas"
)

// decisionJSON is the wire form of a Decision; the layer's fields are
// pointers so that a zero value of the layer (prewarm 0) is written and the
// other layers' fields are not.
type decisionJSON struct {
	Tick          int64     `json:"tick"`
	InForceFrom   time.Time `json:"in_force_from"`
	Policy        string    `json:"policy"`
	PolicyVersion string    `json:"policy_version"`
	Action        int32     `json:"action"`
	Provider      *string   `json:"provider,omitempty"`
	Region        *string   `json:"region,omitempty"`
	MemoryMB      *int32    `json:"memory_mb,omitempty"`
	Prewarm       *int32    `json:"prewarm,omitempty"`
	KeepWarmMS    *int64    `json:"keep_warm_ms,omitempty"`
	LogProb       *float64  `json:"log_prob,omitempty"`
	Value         *float64  `json:"value,omitempty"`
	Predicted     *float64  `json:"predicted,omitempty"`
	ReceivedAt    time.Time `json:"received_at"`
}

// finite returns v's value when it is set and finite (JSON has no NaN or
// infinities), nil otherwise.
func finite(v schemas.Value) *float64 {
	if !v.Valid || math.IsNaN(v.V) || math.IsInf(v.V, 0) {
		return nil
	}
	return &v.V
}

// MarshalJSON writes the decision as {"tick", "in_force_from", "policy",
// "policy_version", "action", the layer's fields, "log_prob", "value" and
// "predicted" when set and finite, "received_at"}, times in RFC 3339 UTC.
func (d Decision) MarshalJSON() ([]byte, error) {
	r := d.Row
	j := decisionJSON{Tick: d.Tick, InForceFrom: d.InForceFrom.UTC(), Policy: r.Policy, PolicyVersion: r.PolicyVersion,
		Action: r.Action, LogProb: finite(r.LogProb), Value: finite(r.Value), Predicted: finite(r.Predicted),
		ReceivedAt: d.ReceivedAt.UTC()}
	switch d.Layer {
	case schemas.Strategic:
		j.Provider = &r.Provider
	case schemas.Tactical:
		j.Region, j.MemoryMB = &r.Region, &r.MemoryMB
	case schemas.Operational:
		j.Prewarm, j.KeepWarmMS = &r.Prewarm, &r.KeepWarmMS
	}
	return json.Marshal(j)
}
