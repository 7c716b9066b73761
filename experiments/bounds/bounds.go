package bounds

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
)

// hoursPerDay is the number of tactical intervals (hours) in a day.
const hoursPerDay = 24

// Config says which days train and which are scored, and the policies'
// parameters. Days are 1-based and inclusive.
type Config struct {
	// TrainFirst and TrainLast are the days static-best and the group
	// rules are trained on (static-best's are days 1–10).
	TrainFirst, TrainLast int
	// EvalFirst and EvalLast are the scored days.
	EvalFirst, EvalLast int
	// Default is the tactical action of the default placement, which a
	// rule takes for a function it knows nothing about.
	Default twin.RegionTier
	// HalfLivesH are the half-lives, in hours, of the exponentially
	// weighted leaders.
	HalfLivesH []float64
	// PriorWeight is the weight of the group's mean reward per
	// function-hour added to a function's training total (the prior row).
	PriorWeight float64
}

// DefaultConfig is `strata bounds`' defaults: trained on days 1–10, scored
// on days 13–14, default placement us-east/1024 MB.
func DefaultConfig() Config {
	return Config{TrainFirst: 1, TrainLast: twin.TrainingDays, EvalFirst: 13, EvalLast: 14,
		Default: twin.RegionTier{Metro: cloud.USEast, Tier: 3}, HalfLivesH: []float64{2, 6, 24, 72, 168}, PriorWeight: 10}
}

// Validate reports days out of order and a default action or half-life
// out of range.
func (c Config) Validate() error {
	switch {
	case c.TrainFirst < 1 || c.TrainLast < c.TrainFirst:
		return fmt.Errorf("bounds: training days %d–%d", c.TrainFirst, c.TrainLast)
	case c.EvalFirst < 1 || c.EvalLast < c.EvalFirst:
		return fmt.Errorf("bounds: evaluation days %d–%d", c.EvalFirst, c.EvalLast)
	case int(c.Default.Metro) >= cloud.NumMetros || int(c.Default.Tier) >= cloud.NumTiers:
		return fmt.Errorf("bounds: default action %v", c.Default)
	case !(c.PriorWeight >= 0) || math.IsInf(c.PriorWeight, 0):
		return fmt.Errorf("bounds: prior weight %v", c.PriorWeight)
	}
	for _, h := range c.HalfLivesH {
		if !(h > 0) || math.IsInf(h, 0) {
			return fmt.Errorf("bounds: half-life %v h", h)
		}
	}
	return nil
}

// Policy is one line of the table: a rule and its mean reward per
// function-hour of the evaluation days.
type Policy struct {
	// Name says what the rule does.
	Name string `json:"name"`
	// Causal is false for a rule that sees the evaluation hours' own
	// outcomes or counts (the oracle, the cheat) or trains on evaluation
	// days.
	Causal bool `json:"causal"`
	// Mean is the mean reward per function-hour; Share is Mean over the
	// oracle's.
	Mean  float64 `json:"mean_reward"`
	Share float64 `json:"share_of_oracle"`
}

// Bucket is the oracle against static-best over the function-hours whose
// invocation count falls in one range.
type Bucket struct {
	// Label is the range of the hour's invocations (e.g. "2–10").
	Label string `json:"invocations"`
	// Rows counts its function-hours.
	Rows int `json:"function_hours"`
	// Oracle and StaticBest are the two rules' mean rewards in it.
	Oracle     float64 `json:"oracle"`
	StaticBest float64 `json:"static_best"`
}

// Result is what Compute measured.
type Result struct {
	// Config is what it was computed with.
	Config Config `json:"-"`
	// Rows and Functions count the evaluation days' function-hours and
	// the functions among them.
	Rows      int `json:"function_hours"`
	Functions int `json:"functions"`
	// Policies are the table's lines, the oracle first.
	Policies []Policy `json:"policies"`
	// Buckets split the oracle and static-best by the hour's invocations.
	Buckets []Bucket `json:"buckets"`
}

// Policy returns the line whose name starts with prefix, or false.
func (r *Result) Policy(prefix string) (Policy, bool) {
	for _, p := range r.Policies {
		if strings.HasPrefix(p.Name, prefix) {
			return p, true
		}
	}
	return Policy{}, false
}

// The names Compute gives the rules, as prefixes (the full names carry the
// days and parameters).
const (
	NameOracle      = "oracle"
	NameDefault     = "default placement"
	NameStaticBest  = "static-best"
	NameFollow      = "follow-the-leader"
	NameEWMA        = "EWMA leader"
	NameHourOfDay   = "hour-of-day leader"
	NameGroup       = "group best"
	NameCheat       = "group best + this hour's invocations"
	NameStaticPrior = "static-best + group prior"
)

// ErrNoRows is returned by Compute when no row falls on the evaluation
// days.
var ErrNoRows = errors.New("bounds: no function-hour on the evaluation days")

// argmax returns the first index of the largest value (as
// twin.StaticLearner chooses).
func argmax(xs *[NumActions]float64) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// bucketOf returns the invocation bucket of n: ≤ 1, 2–10, 11–100, > 100.
func bucketOf(n int64) int {
	switch {
	case n <= 1:
		return 0
	case n <= 10:
		return 1
	case n <= 100:
		return 2
	}
	return 3
}

var bucketLabels = [4]string{"≤ 1", "2–10", "11–100", "> 100"}

// groupKey is a descriptor group: user metro × the tier the working set
// needs, and for the cheat the hour's invocation bucket (−1 for none).
type groupKey struct {
	metro  cloud.Metro
	tier   cloud.Tier
	bucket int
}

func groupOf(r *Row, bucket int) groupKey {
	return groupKey{metro: r.UserMetro, tier: r.TierNeed(), bucket: bucket}
}

// totals sums rewards per key, with the number of rows summed.
type totals[K comparable] struct {
	sum map[K]*[NumActions]float64
	n   map[K]int
}

func newTotals[K comparable]() totals[K] {
	return totals[K]{sum: map[K]*[NumActions]float64{}, n: map[K]int{}}
}

func (t totals[K]) add(k K, rs *[NumActions]float64) {
	s := t.sum[k]
	if s == nil {
		s = &[NumActions]float64{}
		t.sum[k] = s
	}
	for i, x := range rs {
		s[i] += x
	}
	t.n[k]++
}

// choose returns the argmax of k's totals, or def when k has none.
func (t totals[K]) choose(k K, def int) int {
	if s := t.sum[k]; s != nil {
		return argmax(s)
	}
	return def
}

// dayOf returns the 1-based day of hour h.
func dayOf(h int64) int { return int(h/hoursPerDay) + 1 }

// Compute measures every rule on rows (any order; one row per function and
// hour) and returns the table. The rules, scored on the evaluation days:
//
//   - oracle: each row's best action (the per-interval hindsight oracle);
//   - default placement: Config.Default in every hour;
//   - static-best: per function, the action with the highest total reward
//     over the training days (twin.TrainStatic's choice when they are
//     days 1–10); functions without a training row keep the default;
//     when the evaluation starts after day TrainLast+1, again over every
//     day before the evaluation;
//   - follow-the-leader: per function, the action with the highest total
//     over every earlier hour of the trace, updated online;
//   - EWMA leader: the same with past rewards decayed by half every
//     half-life (one line per Config.HalfLivesH);
//   - hour-of-day leader: the highest total over the earlier hours with
//     the same hour of the trace day (over every earlier hour when there
//     is none);
//   - group best: the action with the highest total over the training
//     days of all functions with the same user metro and tier need;
//   - the cheat: the same groups split by the current hour's invocation
//     bucket, which no causal rule knows (the group's choice when its
//     bucket was never seen);
//   - static-best + group prior: the function's training total plus
//     PriorWeight × its group's mean reward per function-hour.
//
// Ties go to the lowest action index.
func Compute(rows []Row, c Config) (Result, error) {
	res := Result{Config: c}
	if err := c.Validate(); err != nil {
		return res, err
	}
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b Row) int {
		switch {
		case a.Hour < b.Hour:
			return -1
		case a.Hour > b.Hour:
			return 1
		}
		return 0
	})
	def := int(c.Default.Action())
	isTrain := func(r *Row) bool { d := dayOf(r.Hour); return d >= c.TrainFirst && d <= c.TrainLast }
	isEval := func(r *Row) bool { d := dayOf(r.Hour); return d >= c.EvalFirst && d <= c.EvalLast }

	// Offline training: per function, per group, per group and bucket,
	// and per function over every day before the evaluation.
	static, group, cheat, before := newTotals[twin.FuncID](), newTotals[groupKey](), newTotals[groupKey](), newTotals[twin.FuncID]()
	for i := range rows {
		r := &rows[i]
		k := twin.FuncID{App: r.App, Func: r.Func}
		if isTrain(r) {
			static.add(k, &r.Rewards)
			group.add(groupOf(r, -1), &r.Rewards)
			cheat.add(groupOf(r, bucketOf(r.Invocations)), &r.Rewards)
		}
		if dayOf(r.Hour) < c.EvalFirst {
			before.add(k, &r.Rewards)
		}
	}
	trainCausal := c.TrainLast < c.EvalFirst
	days := func(a, b int) string {
		if a == b {
			return "day " + strconv.Itoa(a)
		}
		return fmt.Sprintf("days %d–%d", a, b)
	}
	type rule struct {
		Policy
		choose func(r *Row) int
	}
	var rules []rule
	add := func(name string, causal bool, choose func(r *Row) int) {
		rules = append(rules, rule{Policy: Policy{Name: name, Causal: causal}, choose: choose})
	}
	add(NameOracle+" (per-hour hindsight)", false, func(r *Row) int { return argmax(&r.Rewards) })
	add(fmt.Sprintf("%s (%s/%d MB)", NameDefault, c.Default.Metro, c.Default.Tier.MB()), true, func(*Row) int { return def })
	staticChoice := func(r *Row) int { return static.choose(twin.FuncID{App: r.App, Func: r.Func}, def) }
	add(fmt.Sprintf("%s (%s)", NameStaticBest, days(c.TrainFirst, c.TrainLast)), trainCausal, staticChoice)
	if c.EvalFirst > 1 && (c.TrainFirst != 1 || c.TrainLast != c.EvalFirst-1) {
		add(fmt.Sprintf("%s (%s)", NameStaticBest, days(1, c.EvalFirst-1)), true, func(r *Row) int {
			return before.choose(twin.FuncID{App: r.App, Func: r.Func}, def)
		})
	}

	// Online rules: state per function, updated after each hour is scored.
	type ewma struct {
		hour int64
		v    [NumActions]float64
	}
	type state struct {
		all  [NumActions]float64
		seen bool
		ew   []ewma
		hod  [hoursPerDay]*[NumActions]float64
	}
	states := map[twin.FuncID]*state{}
	stateOf := func(r *Row) *state {
		k := twin.FuncID{App: r.App, Func: r.Func}
		s := states[k]
		if s == nil {
			s = &state{ew: make([]ewma, len(c.HalfLivesH))}
			states[k] = s
		}
		return s
	}
	add(NameFollow+" (every earlier hour)", true, func(r *Row) int {
		if s := stateOf(r); s.seen {
			return argmax(&s.all)
		}
		return def
	})
	for j, hl := range c.HalfLivesH {
		add(fmt.Sprintf("%s, half-life %s h", NameEWMA, strconv.FormatFloat(hl, 'g', -1, 64)), true, func(r *Row) int {
			if s := stateOf(r); s.seen {
				return argmax(&s.ew[j].v) // decaying all by the same factor keeps the argmax
			}
			return def
		})
	}
	add(NameHourOfDay+" (earlier days' same hour)", true, func(r *Row) int {
		s := stateOf(r)
		if v := s.hod[r.Hour%hoursPerDay]; v != nil {
			return argmax(v)
		}
		if s.seen {
			return argmax(&s.all)
		}
		return def
	})
	add(fmt.Sprintf("%s (user metro × tier need, %s)", NameGroup, days(c.TrainFirst, c.TrainLast)), trainCausal, func(r *Row) int {
		return group.choose(groupOf(r, -1), def)
	})
	add(NameCheat+" (not causal)", false, func(r *Row) int {
		k := groupOf(r, bucketOf(r.Invocations))
		if _, ok := cheat.sum[k]; ok {
			return cheat.choose(k, def)
		}
		return group.choose(groupOf(r, -1), def)
	})
	add(fmt.Sprintf("%s (%s × group mean)", NameStaticPrior, strconv.FormatFloat(c.PriorWeight, 'g', -1, 64)), trainCausal, func(r *Row) int {
		k, g := twin.FuncID{App: r.App, Func: r.Func}, groupOf(r, -1)
		s, gs := static.sum[k], group.sum[g]
		if s == nil && gs == nil {
			return def
		}
		var v [NumActions]float64
		if s != nil {
			v = *s
		}
		if gs != nil {
			w := c.PriorWeight / float64(group.n[g])
			for i, x := range gs {
				v[i] += w * x
			}
		}
		return argmax(&v)
	})

	sums := make([]float64, len(rules))
	var bucketN [4]int
	var bucketOracle, bucketStatic [4]float64
	fns := map[twin.FuncID]bool{}
	decay := make([]float64, len(c.HalfLivesH))
	for j, hl := range c.HalfLivesH {
		decay[j] = math.Pow(0.5, 1/hl)
	}
	for i := range rows {
		r := &rows[i]
		if isEval(r) {
			res.Rows++
			fns[twin.FuncID{App: r.App, Func: r.Func}] = true
			for j, ru := range rules {
				sums[j] += r.Rewards[ru.choose(r)]
			}
			b := bucketOf(r.Invocations)
			bucketN[b]++
			bucketOracle[b] += r.Rewards[argmax(&r.Rewards)]
			bucketStatic[b] += r.Rewards[staticChoice(r)]
		}
		// The hour is over: the online rules learn its rewards.
		s := stateOf(r)
		for a, x := range r.Rewards {
			s.all[a] += x
		}
		for j := range s.ew {
			e := &s.ew[j]
			f := 0.0
			if s.seen {
				f = math.Pow(decay[j], float64(r.Hour-e.hour))
			}
			for a, x := range r.Rewards {
				e.v[a] = e.v[a]*f + x
			}
			e.hour = r.Hour
		}
		h := r.Hour % hoursPerDay
		if s.hod[h] == nil {
			s.hod[h] = &[NumActions]float64{}
		}
		for a, x := range r.Rewards {
			s.hod[h][a] += x
		}
		s.seen = true
	}
	if res.Rows == 0 {
		return res, ErrNoRows
	}
	res.Functions = len(fns)
	n := float64(res.Rows)
	oracle := sums[0] / n
	for j, ru := range rules {
		p := ru.Policy
		p.Mean = sums[j] / n
		if oracle != 0 {
			p.Share = p.Mean / oracle
		}
		res.Policies = append(res.Policies, p)
	}
	for b := range bucketN {
		if bucketN[b] == 0 {
			continue
		}
		k := float64(bucketN[b])
		res.Buckets = append(res.Buckets, Bucket{Label: bucketLabels[b], Rows: bucketN[b], Oracle: bucketOracle[b] / k, StaticBest: bucketStatic[b] / k})
	}
	return res, nil
}

// WriteText writes the result as two markdown tables: the rules' mean
// reward per function-hour with their share of the oracle's, and the
// oracle against static-best by the hour's invocations.
func (r *Result) WriteText(w io.Writer) error {
	c := r.Config
	var b strings.Builder
	fmt.Fprintf(&b, "Tactical rewards on days %d–%d: %d function-hours of %d functions, each action scored by the twin in hindsight\n", c.EvalFirst, c.EvalLast, r.Rows, r.Functions)
	fmt.Fprintf(&b, "(replayed under the default placement with no decisions; trained on days %d–%d)\n\n", c.TrainFirst, c.TrainLast)
	b.WriteString("| rule | causal | mean reward | share of oracle |\n|---|---|---:|---:|\n")
	for _, p := range r.Policies {
		causal := "yes"
		if !p.Causal {
			causal = "no"
		}
		fmt.Fprintf(&b, "| %s | %s | %.4f | %.3f |\n", p.Name, causal, p.Mean, p.Share)
	}
	b.WriteString("\nBy the hour's invocations (of the gap: the bucket's part of the oracle's lead over static-best):\n\n")
	b.WriteString("| invocations | function-hours | oracle | static-best | share | of the gap |\n|---|---:|---:|---:|---:|---:|\n")
	gap := 0.0
	for _, k := range r.Buckets {
		gap += float64(k.Rows) * (k.Oracle - k.StaticBest)
	}
	for _, k := range r.Buckets {
		share, part := 0.0, 0.0
		if k.Oracle != 0 {
			share = k.StaticBest / k.Oracle
		}
		if gap != 0 {
			part = float64(k.Rows) * (k.Oracle - k.StaticBest) / gap
		}
		fmt.Fprintf(&b, "| %s | %d | %.4f | %.4f | %.3f | %.3f |\n", k.Label, k.Rows, k.Oracle, k.StaticBest, share, part)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
