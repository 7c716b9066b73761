package ppo

import (
	"os"
	"testing"
)

// TestBanditStudy is the measurement behind the dropout default in
// docs/ppo.md: the contextual bandit of TestLearnsContextualBandit run for
// 12 updates without stopping, with dropout 0.1 and 0, with and without a
// KL target, on three seeds. It takes about five minutes, so it runs only
// when STRATA_PPO_STUDY is set:
//
//	STRATA_PPO_STUDY=1 go test ./agents/ppo/ -run BanditStudy -v -timeout 30m
func TestBanditStudy(t *testing.T) {
	if os.Getenv("STRATA_PPO_STUDY") == "" {
		t.Skip("set STRATA_PPO_STUDY=1 to run the bandit study")
	}
	for _, targetKL := range []float64{0, 0.02} {
		for _, dropout := range []float64{0.1, 0} {
			for _, seed := range []uint64{7, 8, 9} {
				cfg := DefaultConfig()
				cfg.Net.Dropout, cfg.TargetKL = dropout, targetKL
				mean, n := runBandit(t, cfg, seed, 12, 2)
				t.Logf("RESULT target KL %.2f dropout %.1f seed %d: best-action probability %.3f after %d updates",
					targetKL, dropout, seed, mean, n)
			}
		}
	}
}
