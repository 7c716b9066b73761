package train

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/schemas"
)

// curve is one line of curves.csv: a layer's figures in one phase of one
// episode.
type curve struct {
	Episode    int     `json:"episode"`
	Phase      string  `json:"phase"` // train or validation
	Layer      string  `json:"layer"`
	MeanReward float64 `json:"mean_reward"`
	MeanRegret float64 `json:"mean_regret"`
	Rewards    int64   `json:"rewards"`
	Version    string  `json:"version"`
	// Epsilon is the DQN's ε in the episode (strategic rows only).
	Epsilon float64 `json:"epsilon,omitempty"`
	Best    bool    `json:"best"`
	Seconds float64 `json:"seconds"`
}

// update is one line of updates.csv: a published checkpoint.
type update struct {
	Episode                        int
	Layer                          string
	Version                        string
	InForce                        int64
	RolloutReward                  float64
	PolicyLoss, ValueLoss, Entropy float64
	ApproxKL, ExplainedVariance    float64
	DQNLoss                        float64
}

// summary is train.json.
type summary struct {
	Seed     int64 `json:"seed"`
	Episodes int   `json:"episodes"`
	// StoppedAfter is the episode after which --patience ended the
	// training early; 0 when every episode ran.
	StoppedAfter int                `json:"stopped_after_episode,omitempty"`
	Layers       []string           `json:"layers"`
	TrainDays    string             `json:"train_days"`
	ValidDays    string             `json:"valid_days"`
	Operational  string             `json:"operational_during_episodes"`
	Best         map[string]int     `json:"best_episode"`
	BestReward   map[string]float64 `json:"best_validation_reward"`
	Curves       []curve            `json:"curves"`
	Learner      learner.Stats      `json:"learner"`
	WallSeconds  float64            `json:"wall_seconds"`
	// Frozen are the layers that served a trained checkpoint without
	// learning (--models), by layer.
	Frozen map[string]frozenModel `json:"frozen,omitempty"`
}

// frozenModel is a frozen layer's checkpoint: the policy that served it,
// the file it was read from and its SHA-256.
type frozenModel struct {
	Policy string `json:"policy"`
	From   string `json:"from"`
	SHA256 string `json:"sha256"`
}

func writeCurvesCSV(path string, rows []curve) error {
	recs := [][]string{{"episode", "phase", "layer", "mean_reward", "mean_regret", "rewards", "version", "epsilon", "best", "seconds"}}
	for _, r := range rows {
		eps := ""
		if r.Layer == string(schemas.Strategic) {
			eps = strconv.FormatFloat(r.Epsilon, 'f', 4, 64)
		}
		recs = append(recs, []string{strconv.Itoa(r.Episode), r.Phase, r.Layer, f6(r.MeanReward), f6(r.MeanRegret),
			strconv.FormatInt(r.Rewards, 10), r.Version, eps, strconv.FormatBool(r.Best), fmt.Sprintf("%.1f", r.Seconds)})
	}
	return writeCSVFile(path, recs)
}

func writeUpdatesCSV(path string, rows []update) error {
	recs := [][]string{{"episode", "layer", "version", "in_force", "rollout_mean_reward", "policy_loss", "value_loss", "entropy", "approx_kl", "explained_variance", "dqn_loss"}}
	for _, u := range rows {
		recs = append(recs, []string{strconv.Itoa(u.Episode), u.Layer, u.Version, strconv.FormatInt(u.InForce, 10),
			f6(u.RolloutReward), f6(u.PolicyLoss), f6(u.ValueLoss), f6(u.Entropy), f6(u.ApproxKL), f6(u.ExplainedVariance), f6(u.DQNLoss)})
	}
	return writeCSVFile(path, recs)
}

func f6(x float64) string { return strconv.FormatFloat(x, 'f', 6, 64) }

func writeCSVFile(path string, recs [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(recs); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
