package ppo

import (
	"os"
	"testing"
)

// TestBanditStudy is the measurement behind the dropout default and the
// stability notes in docs/ppo.md: the contextual bandit of
// TestLearnsContextualBandit run for 12 updates without stopping, with
// dropout 0.1 and 0, with and without a KL target, on three seeds. It
// takes about five minutes, so it runs only when STRATA_PPO_STUDY is set:
//
//	STRATA_PPO_STUDY=1 go test ./agents/ppo/ -run BanditStudy -v -timeout 30m
//
// It asserts the study's two conclusions that hold on every run, each
// with a margin:
//
//   - every run learns: the mean best-action probability passes 0.9
//     within the 12 updates (the runs measured first passed it at the
//     3rd–6th update);
//   - no run stays converged: after first passing 0.9, every run later
//     loses a context, whose best-action probability falls below 0.5 (the
//     highest such low measured was 0.27).
//
// The value after the 12th update, which the docs' table also gives,
// depends on where in a dip the run ends (0.53–0.90 measured), so it is
// logged, not asserted; so is the dropout comparison, which three seeds do
// not settle.
func TestBanditStudy(t *testing.T) {
	if os.Getenv("STRATA_PPO_STUDY") == "" {
		t.Skip("set STRATA_PPO_STUDY=1 to run the bandit study")
	}
	const updates, learned, lost = 12, 0.9, 0.5
	for _, targetKL := range []float64{0, 0.02} {
		for _, dropout := range []float64{0.1, 0} {
			for _, seed := range []uint64{7, 8, 9} {
				cfg := DefaultConfig()
				cfg.Net.Dropout, cfg.TargetKL = dropout, targetKL
				steps := runBandit(t, cfg, seed, updates, 2) // 2: never stops early
				first := 0
				lowest := 1.0 // worst context's best-action probability after first
				for i, s := range steps {
					if first > 0 {
						lowest = min(lowest, s.worst)
					} else if s.mean > learned {
						first = i + 1
					}
				}
				last := steps[len(steps)-1]
				t.Logf("RESULT target KL %.2f dropout %.1f seed %d: mean best-action probability first above %.1f at update %d; "+
					"after %d updates mean %.3f (worst context %.3f); lowest context after first passing %.3f",
					targetKL, dropout, seed, learned, first, len(steps), last.mean, last.worst, lowest)
				if len(steps) != updates {
					t.Fatalf("target KL %.2f dropout %.1f seed %d: %d updates, want %d", targetKL, dropout, seed, len(steps), updates)
				}
				if first == 0 {
					t.Errorf("target KL %.2f dropout %.1f seed %d: the mean best-action probability never passed %.1f in %d updates",
						targetKL, dropout, seed, learned, updates)
				} else if lowest >= lost {
					t.Errorf("target KL %.2f dropout %.1f seed %d: stayed converged after update %d (lowest context %.3f, want below %.1f): "+
						"docs/ppo.md's stability notes are out of date", targetKL, dropout, seed, first, lowest, lost)
				}
			}
		}
	}
}
