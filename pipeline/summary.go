package pipeline

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/secret"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/schemas"
)

// Summary is the JSON that `strata run --summary` writes of the open loop,
// and the part of the closed loop's that both loops share.
type Summary struct {
	RunID                string           `json:"run_id"`
	Source               string           `json:"source"`
	Invocations          int64            `json:"invocations"`
	Windowed             int64            `json:"windowed_invocations"`
	Ticks                map[string]int64 `json:"ticks"`
	StatesPublished      int64            `json:"states_published"`
	DeadLetters          int64            `json:"dead_letters"`
	BadLines             int64            `json:"bad_lines"`
	Late                 int64            `json:"late"`
	HorizonSeconds       float64          `json:"horizon_seconds"`
	WallSeconds          float64          `json:"wall_seconds"`
	InvocationsPerSecond float64          `json:"invocations_per_second"`
	Speed                string           `json:"speed"`
	Kafka                string           `json:"kafka"`
	NATS                 string           `json:"nats"`
}

// NewSummary builds the summary fields both loops share.
func NewSummary(o Config, source string, rep producers.ReplayResult, fs features.Stats, wall time.Duration) Summary {
	s := Summary{
		RunID: o.RunID, Source: source, Invocations: rep.Invocations, Windowed: fs.Invocations,
		Ticks: fs.Ticks, StatesPublished: fs.StatesPublished,
		DeadLetters: rep.DeadLetters + fs.Late + fs.Malformed,
		BadLines:    rep.BadLines, Late: rep.Late + fs.Late,
		HorizonSeconds: float64(rep.HorizonUS) / 1e6, WallSeconds: wall.Seconds(), Speed: o.Speed.String(),
		Kafka: orDefault(strings.Join(o.Brokers, ","), "embedded"), NATS: orDefault(secret.Redact(o.NATSURL), "embedded"),
	}
	if w := wall.Seconds(); w > 0 {
		s.InvocationsPerSecond = float64(s.Invocations) / w
	}
	return s
}

// WriteText writes the open loop's one-line report.
func (s Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "run %s: %d invocations from %s, %d windowed; state batches: %d (operational %d, tactical %d, strategic %d); dead letters %d; %.1f s wall, %.0f invocations/s\n",
		s.RunID, s.Invocations, s.Source, s.Windowed, s.StatesPublished,
		s.Ticks[string(schemas.Operational)], s.Ticks[string(schemas.Tactical)], s.Ticks[string(schemas.Strategic)],
		s.DeadLetters, s.WallSeconds, s.InvocationsPerSecond)
}

// LoopSummary is the closed loop's --summary JSON: the open loop's fields
// plus the twin's figures.
type LoopSummary struct {
	Summary
	Policies  map[string]string          `json:"policies"`
	Layers    map[string]twin.LayerStats `json:"layers"`
	TwinTicks int64                      `json:"twin_ticks"`
	// TwinShard is "I/N" when this process ran shard I of a twin split into
	// N: its figures are its apps' only.
	TwinShard         string  `json:"twin_shard,omitempty"`
	CostPerMillionUSD float64 `json:"cost_per_million_usd"`
	// KeepWarmPerMillionUSD is the pre-warm (keep-warm) part of
	// CostPerMillionUSD.
	KeepWarmPerMillionUSD float64 `json:"keep_warm_per_million_usd"`
	GCO2ePerMillion       float64 `json:"gco2e_per_million"`
	LatencyP50MS          float64 `json:"latency_p50_ms"`
	LatencyP95MS          float64 `json:"latency_p95_ms"`
	LatencyP99MS          float64 `json:"latency_p99_ms"`
	ColdStartRate         float64 `json:"cold_start_rate"`
	SLAViolationRate      float64 `json:"sla_violation_rate"`
	RewardsSHA256         string  `json:"rewards_sha256"`
	DecisionsSHA256       string  `json:"decisions_sha256"`
	// ResumedReplayed is, in a run resumed from the twin's checkpoint,
	// the invocations this process replayed (Invocations is the run's).
	ResumedReplayed int64 `json:"resumed_replayed,omitempty"`
	// HeldTicks and HeldSeconds are the ticks the twin held, and for how
	// long, while the sink was too far behind (--sink-max-lag).
	HeldTicks   int64   `json:"held_ticks,omitempty"`
	HeldSeconds float64 `json:"held_seconds,omitempty"`
}

// NewLoopSummary builds the closed loop's summary from its result; names
// gives each layer's policy.
func NewLoopSummary(o Config, name string, res LoopResult, names map[string]string) LoopSummary {
	t := res.Twin
	sum := LoopSummary{Summary: NewSummary(o, name, res.Replay, res.Features, res.Wall), Policies: names, Layers: t.Layers, TwinTicks: t.Ticks,
		LatencyP50MS: t.LatencyP50MS, LatencyP95MS: t.LatencyP95MS, LatencyP99MS: t.LatencyP99MS,
		RewardsSHA256: t.RewardsSHA256, DecisionsSHA256: t.DecisionsSHA256, HeldTicks: t.Held, HeldSeconds: t.HeldSeconds}
	if res.Replay.Skipped > 0 {
		// A resumed run: the replay wrote only what followed what it had
		// written before; the run's invocations are the twin's.
		sum.Invocations, sum.ResumedReplayed = t.Arrivals, res.Replay.Invocations
	}
	if n := float64(t.ScoredInvocations); n > 0 {
		sum.CostPerMillionUSD = t.CostUSD / n * 1e6
		sum.KeepWarmPerMillionUSD = t.PrewarmCostUSD / n * 1e6
		sum.GCO2ePerMillion = t.CarbonG / n * 1e6
		sum.ColdStartRate = float64(t.ColdStarts) / n
		sum.SLAViolationRate = float64(t.Violations) / n
	}
	return sum
}

// WriteText writes the closed loop's report: the run, its figures and a
// line per layer.
func (s LoopSummary) WriteText(w io.Writer) {
	p := s.Policies
	fmt.Fprintf(w, "run %s (closed loop: strategic %s, tactical %s, operational %s): %d invocations from %s in %d ticks, %.1f s wall\n",
		s.RunID, p[string(schemas.Strategic)], p[string(schemas.Tactical)], p[string(schemas.Operational)], s.Invocations, s.Source, s.TwinTicks, s.WallSeconds)
	fmt.Fprintf(w, "  cost %.2f USD per million (keep-warm %.2f), %.0f gCO2e per million, latency p50/p95/p99 %.0f/%.0f/%.0f ms, cold starts %.2f%%, SLA violations %.2f%%\n",
		s.CostPerMillionUSD, s.KeepWarmPerMillionUSD, s.GCO2ePerMillion, s.LatencyP50MS, s.LatencyP95MS, s.LatencyP99MS, 100*s.ColdStartRate, 100*s.SLAViolationRate)
	if s.ResumedReplayed > 0 {
		fmt.Fprintf(w, "  resumed from the twin's checkpoint: this process replayed %d of the invocations\n", s.ResumedReplayed)
	}
	for _, l := range schemas.Layers {
		ls := s.Layers[string(l)]
		fmt.Fprintf(w, "  %-11s %-16s decisions %8d  rewards %8d  mean reward %.4f  mean regret %.4f\n", l, p[string(l)], ls.Decisions, ls.Rewards, ls.MeanReward, ls.MeanRegret)
	}
}
