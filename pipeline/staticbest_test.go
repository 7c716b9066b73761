package pipeline_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// hoursOf stops a source after its first n hours of start times (the
// synthetic generator emits in start order).
type hoursOf struct {
	src replay.Source
	end int64
}

func (h *hoursOf) Next() (replay.Invocation, error) {
	for {
		in, err := h.src.Next()
		if err != nil {
			return in, err
		}
		if in.StartUS() < h.end {
			return in, nil
		}
	}
}

func synthHours(t *testing.T, hours int) replay.Source {
	t.Helper()
	s, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 11, Apps: 5})
	if err != nil {
		t.Fatal(err)
	}
	return &hoursOf{src: s, end: int64(hours) * grid.TacticalTickUS}
}

// TestStaticBestBeatsRandomAndGreedyLatency runs the closed loop on a few
// synthetic hours — all training days — with the tactical layer under
// static-best (chosen on those hours), random and greedy-latency, the other
// layers off, and compares the mean tactical reward over the hours every
// policy decided (hour 1 on: the agents' first decision needs hour 0's
// state; static-best is in force from the start).
func TestStaticBestBeatsRandomAndGreedyLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("three closed-loop runs")
	}
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	const hours = 5
	mean := map[string]float64{}
	for _, pol := range []string{"static-best", "random", "greedy-latency"} {
		o := pipelinetest.LoopConfig(t, "sb-"+pol, 0, &pipelinetest.BatchLog{})
		m := o.Model
		pb := twin.NewProfileBuilder(o.Epoch)
		src := synthHours(t, hours)
		for {
			in, err := src.Next()
			if err != nil {
				break
			}
			pb.Add(in)
		}
		o.Profile = pb.Build(m)
		o.Policies = map[schemas.Layer]worker.Policy{}
		if pol == "static-best" {
			c, err := twin.TrainStatic(context.Background(), m, o.Engine, o.Profile, synthHours(t, hours), o.LatenessUS)
			if err != nil {
				t.Fatal(err)
			}
			o.Engine.Internal = map[schemas.Layer]twin.InternalPolicy{schemas.Tactical: twin.PolicyStaticBest}
			o.Engine.Static = c
		} else {
			p, err := agents.New(pol, schemas.Tactical, agents.Options{Seed: 1, Model: m, Epoch: o.Epoch})
			if err != nil {
				t.Fatal(err)
			}
			o.Policies[schemas.Tactical] = p
		}
		st, err := store.OpenDuckDB(context.Background(), filepath.Join(t.TempDir(), "sb.duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		if err := st.EnsureSchema(ctx); err != nil {
			t.Fatal(err)
		}
		o.Store, o.Run = st, &stratapb.Run{RunId: o.RunID, Source: "synth"}
		res, err := pipeline.ClosedLoop(ctx, o, synthHours(t, hours), "synth", 0)
		if err != nil {
			t.Fatal(err)
		}
		_, rows, err := st.Query(ctx, "SELECT avg(reward), count(*) FROM rewards WHERE layer = 'tactical' AND tick >= 1 AND run_id = '"+o.RunID+"'")
		cancel()
		_ = st.Close()
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(fmt.Sprint(rows[0][0]), 64)
		if err != nil {
			t.Fatalf("mean tactical reward %v: %v", rows[0][0], err)
		}
		mean[pol] = v
		// Every tactical reward of a decision the agent made for its hour
		// is a transition (static-best decided once, for hour 0).
		if pol != "static-best" && (res.Twin.Transitions == 0 || res.Twin.TransitionsDropped != 0) {
			t.Errorf("%s: %d transitions written, %d dropped: want some, none dropped", pol, res.Twin.Transitions, res.Twin.TransitionsDropped)
		}
		t.Logf("%-15s mean tactical reward %.4f over %v function-hours (twin: %d ticks)", pol, v, rows[0][1], res.Twin.Ticks)
	}
	for _, other := range []string{"random", "greedy-latency"} {
		if mean["static-best"] <= mean[other] {
			t.Errorf("static-best %.4f does not beat %s %.4f on its training hours", mean["static-best"], other, mean[other])
		}
	}
}
