package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

// TestEmbeddedClosedLoopPartitions runs the closed loop over the 998 real
// rows on 1, 3 and 4 partitions with baselines whose decisions differ from
// entity to entity (random draws from a hash of the entity, not from a
// stream of numbers): the partition count only spreads the apps over
// shards, so the twin's decisions and rewards — their digests, which take
// every record in the order the twin wrote it — are the same.
func TestEmbeddedClosedLoopPartitions(t *testing.T) {
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	type result struct {
		parts                int
		decisions, rewards   string
		nDecisions, nRewards int64
	}
	var got []result
	for _, parts := range []int{1, 3, 4} {
		log := &pipelinetest.BatchLog{}
		o := pipelinetest.LoopConfig(t, "loop-parts", 0, log)
		o.Partitions = parts
		for l, name := range map[schemas.Layer]string{schemas.Strategic: "random", schemas.Tactical: "greedy-cost", schemas.Operational: "hybrid-histogram"} {
			p, err := agents.New(name, l, agents.Options{Seed: 7, Model: o.Model, Epoch: o.Epoch})
			if err != nil {
				t.Fatal(err)
			}
			o.Policies[l] = p
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		r, err := replay.OpenTrace(pipelinetest.RealTrace)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		res, err := pipeline.ClosedLoop(ctx, o, r, "real", 0)
		_ = r.Close()
		cancel()
		if err != nil {
			t.Fatalf("%d partitions: %v", parts, err)
		}
		if res.Twin.Ticks != 431 || res.Twin.Telemetry != 998 || res.Twin.Decisions == 0 || res.Twin.Rewards == 0 {
			t.Fatalf("%d partitions: twin %+v: want 431 ticks, 998 invocations observed, some decisions and rewards", parts, res.Twin)
		}
		// Every layer's batches came from parts shards.
		for l, ticks := range res.Features.Ticks {
			if b := res.Features.Batches[l]; b != ticks*int64(parts) {
				t.Fatalf("%d partitions: %s published %d batches over %d ticks, want %d per tick", parts, l, b, ticks, parts)
			}
		}
		// ... and the apps really are spread over them.
		busy := map[int]bool{}
		for _, b := range log.Batches {
			sb, err := schemas.DecodeState(b.Data)
			if err != nil {
				t.Fatal(err)
			}
			if len(sb.Operational) > 0 {
				busy[sb.Header.Shard] = true
			}
		}
		if len(busy) != parts {
			t.Fatalf("%d partitions: operational rows on %d shards", parts, len(busy))
		}
		got = append(got, result{parts, res.Twin.DecisionsSHA256, res.Twin.RewardsSHA256, res.Twin.Decisions, res.Twin.Rewards})
	}
	for _, g := range got[1:] {
		if g != (result{g.parts, got[0].decisions, got[0].rewards, got[0].nDecisions, got[0].nRewards}) {
			t.Errorf("%d partitions: %d decisions (sha256 %s), %d rewards (sha256 %s); %d partitions: %d decisions (%s), %d rewards (%s)",
				g.parts, g.nDecisions, g.decisions, g.nRewards, g.rewards,
				got[0].parts, got[0].nDecisions, got[0].decisions, got[0].nRewards, got[0].rewards)
		}
	}
	t.Logf("%+v", got)
}
