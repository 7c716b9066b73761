package pipelinetest

import (
	"bytes"
	"context"
	"math"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// LearnerRun sizes a recorded two-layer run for the learner (Transitions).
type LearnerRun struct {
	// Hours of Funcs tactical transitions each; the transitions of hour h
	// carry the PPO version h/HoursPerVersion (the version in force when
	// a rollout fills every HoursPerVersion hours).
	Hours, Funcs, HoursPerVersion int
	// Apps strategic transitions a day; a day closes after every fourth
	// hour, so a run has Hours/4 days.
	Apps int
}

// Transitions is run as the twin writes it, each interval closed by its
// marker: hour by hour the tactical transitions of seed-v1 states (the
// reward favours action 3), and after every fourth hour a day of strategic
// transitions (the last day's done).
func (c LearnerRun) Transitions(run string) []*stratapb.Transition {
	var out []*stratapb.Transition
	lp := math.Log(1.0 / 24)
	days := c.Hours / 4
	for h := range c.Hours {
		for f := range c.Funcs {
			st := make([]float32, schemas.TacticalDim)
			for i := range st {
				st[i] = float32((f*7+i*3+h)%11) / 10
			}
			st[7], st[8], st[9] = 1, 0, 0
			a := int32((f + h) % 24)
			r := -0.2
			if a == 3 {
				r = 1
			}
			next := append([]float32(nil), st...)
			next[0] += 0.1
			out = append(out, &stratapb.Transition{RunId: run, Layer: string(schemas.Tactical), Tick: int64(h), App: "app" + strconv.Itoa(f%5),
				Func: "f" + strconv.Itoa(f), State: st, Action: a, Reward: r, NextState: next,
				PolicyVersion: ppo.FormatVersion(uint64(h / c.HoursPerVersion)), LogProb: &lp, Policy: ppo.Name})
		}
		out = append(out, &stratapb.Transition{RunId: run, Layer: string(schemas.Tactical), Tick: int64(h), EndOfInterval: true, Count: int64(c.Funcs)})
		if d := h / 4; h%4 == 3 {
			for a := range c.Apps {
				st := make([]float32, schemas.StrategicDim)
				for i := range st {
					st[i] = float32((a*5+i+d)%9) + 0.5
				}
				tr := &stratapb.Transition{RunId: run, Layer: string(schemas.Strategic), Tick: int64(d), App: "app" + strconv.Itoa(a),
					State: st, Action: int32(a % 3), Reward: float64(a%3) - 1, Policy: "dqn"}
				if d < days-1 {
					tr.NextState = st
				} else {
					tr.Done = true
				}
				out = append(out, tr)
			}
			out = append(out, &stratapb.Transition{RunId: run, Layer: string(schemas.Strategic), Tick: int64(d), EndOfInterval: true, Count: int64(c.Apps)})
		}
	}
	return out
}

// ProduceTransitions writes the runs' transitions (Transitions) to the
// transitions topic under names, interleaved record by record, keyed as the
// twin keys them (by app, a marker by layer) so they spread over the
// partitions.
func (c LearnerRun) ProduceTransitions(t testing.TB, ctx context.Context, brokers []string, names schemas.Names, runs ...string) {
	t.Helper()
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var all [][]*stratapb.Transition
	for _, run := range runs {
		all = append(all, c.Transitions(run))
	}
	var recs []*kgo.Record
	for i := range all[0] {
		for _, trs := range all {
			tr := trs[i]
			key := tr.GetApp()
			if tr.GetEndOfInterval() {
				key = tr.GetLayer()
			}
			v, err := proto.Marshal(tr)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: names.Topic(schemas.TopicTransitions), Key: []byte(key), Value: v})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// SameCheckpoints fails t unless run got's checkpoint index of each layer
// the learner trains has the entries of run want's, in order (version and
// in-force interval), each with the same bytes; it returns the number of
// entries compared.
func SameCheckpoints(t testing.TB, ctx context.Context, ms *natsbus.ModelStore, got, want string) int {
	t.Helper()
	n := 0
	for _, layer := range []schemas.Layer{schemas.Strategic, schemas.Tactical} {
		w, err := ms.Index(ctx, want, layer)
		if err != nil {
			t.Fatal(err)
		}
		g, err := ms.Index(ctx, got, layer)
		if err != nil {
			t.Fatal(err)
		}
		if len(g) != len(w) {
			t.Fatalf("%s index of %s %+v, of %s %+v", layer, got, g, want, w)
		}
		for i := range w {
			if g[i].Version != w[i].Version || g[i].InForce != w[i].InForce {
				t.Fatalf("%s index entry %d of %s: %+v, of %s %+v", layer, i, got, g[i], want, w[i])
			}
			a, err := ms.Object(ctx, g[i].Object)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ms.Object(ctx, w[i].Object)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("%s checkpoint %s of %s differs from %s's", layer, w[i].Version, got, want)
			}
			n++
		}
	}
	return n
}
