package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

type fnKey struct{ app, fn string }

// checkPipeline asserts the invariants of one run over ins: every invocation
// is counted in exactly one 15 s window of its function, every shard
// publishes exactly one batch per tick of each layer, and the tick counts
// follow event time.
func checkPipeline(t *testing.T, ins []replay.Invocation, res pipeline.OpenLoopResult, log *pipelinetest.BatchLog, partitions int) {
	t.Helper()
	want := map[fnKey]int64{}
	var maxStart int64
	for _, in := range ins {
		want[fnKey{in.App, in.Func}]++
		maxStart = max(maxStart, in.StartUS())
	}
	if res.Replay.Invocations != int64(len(ins)) || res.Features.Invocations != int64(len(ins)) {
		t.Fatalf("replayed %d, windowed %d, want %d", res.Replay.Invocations, res.Features.Invocations, len(ins))
	}
	got := map[fnKey]int64{}
	perShard := map[schemas.Layer]map[int]map[int64]int{}
	for _, b := range log.Batches {
		sb, err := schemas.DecodeState(b.Data)
		if err != nil {
			t.Fatal(err)
		}
		if sb.Header != b.H || sb.Header.NShards != partitions {
			t.Fatalf("decoded header %+v, published as %+v", sb.Header, b.H)
		}
		if perShard[b.H.Layer] == nil {
			perShard[b.H.Layer] = map[int]map[int64]int{}
		}
		if perShard[b.H.Layer][b.H.Shard] == nil {
			perShard[b.H.Layer][b.H.Shard] = map[int64]int{}
		}
		perShard[b.H.Layer][b.H.Shard][b.H.Tick]++
		for _, r := range sb.Operational {
			got[fnKey{r.App, r.Func}] += r.Invocations
		}
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s/%s counted %d times in operational windows, want %d", k.app[:8], k.fn[:8], got[k], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("windows count %d functions, trace has %d", len(got), len(want))
	}
	lastTick := grid.TickOf(maxStart, grid.OperationalTickUS) // the last tick holding a start
	wantTicks := map[schemas.Layer]int64{
		schemas.Operational: lastTick + 2, // batches for ticks 0 … lastTick+1
		schemas.Tactical:    (lastTick+1)/240 + 1,
		schemas.Strategic:   (lastTick+1)/5760 + 1,
	}
	for _, l := range schemas.Layers {
		if len(perShard[l]) != partitions {
			t.Fatalf("%s: %d shards published, want %d", l, len(perShard[l]), partitions)
		}
		for shard, ticks := range perShard[l] {
			if int64(len(ticks)) != wantTicks[l] {
				t.Errorf("%s shard %d: %d ticks, want %d", l, shard, len(ticks), wantTicks[l])
			}
			for tick, n := range ticks {
				if n != 1 || tick < 0 || tick >= wantTicks[l] {
					t.Errorf("%s shard %d tick %d published %d times", l, shard, tick, n)
				}
			}
		}
		if res.Features.Ticks[string(l)] != wantTicks[l] {
			t.Errorf("%s: service reports %d ticks, want %d", l, res.Features.Ticks[string(l)], wantTicks[l])
		}
	}
}

func TestEmbeddedPipelineRealRows(t *testing.T) {
	r, err := replay.OpenTrace(pipelinetest.RealTrace)
	if err != nil {
		t.Fatal(err)
	}
	ins := pipelinetest.ReadAll(t, r)
	_ = r.Close()
	if len(ins) != 998 {
		t.Fatalf("read %d rows, want 998", len(ins))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Same input, config and seed at two speeds: identical state batches.
	var hashes []string
	for _, sp := range []replay.Speed{0, 40000} {
		log := &pipelinetest.BatchLog{}
		res, err := pipeline.OpenLoop(ctx, pipelinetest.Config("real-rows", sp, 3, log), &pipelinetest.SliceSource{Ins: ins}, "real", 0)
		if err != nil {
			t.Fatalf("speed %s: %v", sp, err)
		}
		checkPipeline(t, ins, res, log, 3)
		hashes = append(hashes, log.Hash())
	}
	if hashes[0] != hashes[1] {
		t.Fatalf("state batches differ between speed max and 40000: %s vs %s", hashes[0], hashes[1])
	}
}

func TestEmbeddedPipelineSyntheticDay(t *testing.T) {
	s, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 7, Apps: 6})
	if err != nil {
		t.Fatal(err)
	}
	ins := pipelinetest.ReadAll(t, s)
	if len(ins) < 1000 {
		t.Fatalf("synthetic day has only %d invocations", len(ins))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := &pipelinetest.BatchLog{}
	res, err := pipeline.OpenLoop(ctx, pipelinetest.Config("synth-day", 0, 2, log), &pipelinetest.SliceSource{Ins: ins}, "synthetic", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkPipeline(t, ins, res, log, 2)
}
