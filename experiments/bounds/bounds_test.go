package bounds_test

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/experiments/bounds"
)

// row returns the row of function fn in hour h (0-based from trace time 0)
// with inv invocations, working set ws MB and the given action rewards
// (the others 0).
func row(h int64, fn string, inv int64, ws float64, rewards map[int]float64) bounds.Row {
	r := bounds.Row{Hour: h, App: "app", Func: fn, Invocations: inv,
		Descriptors: bounds.Descriptors{UserMetro: cloud.EUWest, WorkingSetMB: ws, CPUBoundFraction: 0.25, Runtime: cloud.Python}}
	for a, x := range rewards {
		r.Rewards[a] = x
	}
	return r
}

// days returns one row per hour of days [first, last] (1-based) from at.
func days(first, last int, at func(h int64) bounds.Row) []bounds.Row {
	var rows []bounds.Row
	for h := int64(first-1) * 24; h < int64(last)*24; h++ {
		rows = append(rows, at(h))
	}
	return rows
}

// oneTwo trains on day 1 and scores day 2, with action 0 the default.
func oneTwo() bounds.Config {
	c := bounds.DefaultConfig()
	c.TrainFirst, c.TrainLast, c.EvalFirst, c.EvalLast = 1, 1, 2, 2
	c.Default = twin.RegionTier{}
	c.HalfLivesH = []float64{2}
	return c
}

// TestCompute checks each rule's mean reward on hand-made rows whose
// answers are worked out in the comments.
func TestCompute(t *testing.T) {
	// flip: the best action alternates every hour between 1 (even hours)
	// and 2 (odd hours).
	flip := days(1, 2, func(h int64) bounds.Row {
		return row(h, "f", 3, 100, map[int]float64{1 + int(h%2): 1})
	})
	// sparse and busy share a group (user metro, tier need): sparse has 1
	// invocation an hour and is best on 4, busy 50 and is best on 5.
	group := append(days(1, 2, func(h int64) bounds.Row { return row(h, "sparse", 1, 200, map[int]float64{4: 1}) }),
		days(1, 2, func(h int64) bounds.Row { return row(h, "busy", 50, 200, map[int]float64{5: 1}) })...)
	// late appears on day 2 only, in sparse's group (without busy): best
	// on 4 (0.8), the default 0 earns 0.2.
	late := append(days(1, 2, func(h int64) bounds.Row { return row(h, "sparse", 1, 200, map[int]float64{4: 1}) }),
		days(2, 2, func(h int64) bounds.Row { return row(h, "late", 1, 200, map[int]float64{0: 0.2, 4: 0.8}) })...)
	for _, tc := range []struct {
		name string
		rows []bounds.Row
		want map[string]float64
	}{{
		name: "best action flips every hour",
		rows: flip,
		want: map[string]float64{
			bounds.NameOracle:  1,
			bounds.NameDefault: 0,
			// Day 1's totals tie 12–12: the lowest action, 1, is right
			// every other hour.
			bounds.NameStaticBest: 0.5,
			// Before an even hour the totals tie (→ 1, right), before
			// an odd one action 1 leads by one (→ 1, wrong).
			bounds.NameFollow: 0.5,
			// The last hour weighs most: always the other hour's action.
			bounds.NameEWMA: 0,
			// Yesterday's same hour is always right.
			bounds.NameHourOfDay:   1,
			bounds.NameGroup:       0.5,
			bounds.NameCheat:       0.5,
			bounds.NameStaticPrior: 0.5,
		},
	}, {
		name: "a group with two best actions, told apart by invocations",
		rows: group,
		want: map[string]float64{
			bounds.NameOracle:     1,
			bounds.NameDefault:    0,
			bounds.NameStaticBest: 1,
			bounds.NameFollow:     1,
			bounds.NameEWMA:       1,
			bounds.NameHourOfDay:  1,
			// The group's totals tie 24–24: action 4, right for sparse
			// only.
			bounds.NameGroup: 0.5,
			// The invocation bucket separates them.
			bounds.NameCheat:       1,
			bounds.NameStaticPrior: 1,
		},
	}, {
		name: "a function first seen on an evaluation day",
		rows: late,
		want: map[string]float64{
			bounds.NameOracle: (24*1 + 24*0.8) / 48.0,
			// late keeps the default (0.2) for the static and online
			// rules until it has a past: the online ones learn after
			// its first hour.
			bounds.NameStaticBest: (24 + 24*0.2) / 48.0,
			bounds.NameFollow:     (24 + 0.2 + 23*0.8) / 48.0,
			bounds.NameHourOfDay:  (24 + 0.2 + 23*0.8) / 48.0,
			// The group and the prior know late's group from sparse.
			bounds.NameGroup:       (24 + 24*0.8) / 48.0,
			bounds.NameStaticPrior: (24 + 24*0.8) / 48.0,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			// The order of the rows does not matter.
			rows := slices.Clone(tc.rows)
			slices.Reverse(rows)
			res, err := bounds.Compute(rows, oneTwo())
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			if err := res.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				p, ok := res.Policy(name)
				if !ok {
					t.Fatalf("no %q line in\n%s", name, &text)
				}
				if math.Abs(p.Mean-want) > 1e-12 {
					t.Errorf("%s: mean %.6f, want %.6f\n%s", p.Name, p.Mean, want, &text)
				}
			}
			oracle := res.Policies[0]
			for _, p := range res.Policies {
				if p.Mean > oracle.Mean+1e-12 {
					t.Errorf("%s beats the oracle: %.6f > %.6f", p.Name, p.Mean, oracle.Mean)
				}
			}
		})
	}
}

// TestComputeTable checks the counts, the causal marks, the shares and
// the buckets.
func TestComputeTable(t *testing.T) {
	rows := append(days(1, 2, func(h int64) bounds.Row { return row(h, "sparse", 1, 200, map[int]float64{4: 1, 0: 0.5}) }),
		days(1, 2, func(h int64) bounds.Row { return row(h, "busy", 500, 200, map[int]float64{5: 0.5}) })...)
	res, err := bounds.Compute(rows, oneTwo())
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 48 || res.Functions != 2 {
		t.Errorf("%d function-hours of %d functions, want 48 of 2", res.Rows, res.Functions)
	}
	causal := map[string]bool{bounds.NameOracle: false, bounds.NameDefault: true, bounds.NameStaticBest: true, bounds.NameCheat: false, bounds.NameFollow: true}
	for name, want := range causal {
		if p, _ := res.Policy(name); p.Causal != want {
			t.Errorf("%s: causal %v, want %v", p.Name, p.Causal, want)
		}
	}
	if p, _ := res.Policy(bounds.NameDefault); math.Abs(p.Share-0.25/0.75) > 1e-12 {
		t.Errorf("default's share %.6f, want %.6f", p.Share, 0.25/0.75)
	}
	want := []bounds.Bucket{{Label: "≤ 1", Rows: 24, Oracle: 1, StaticBest: 1}, {Label: "> 100", Rows: 24, Oracle: 0.5, StaticBest: 0.5}}
	if !slices.Equal(res.Buckets, want) {
		t.Errorf("buckets %+v, want %+v", res.Buckets, want)
	}
	// Training on the evaluation days is marked, and adds static-best
	// over the days before them.
	c := oneTwo()
	c.EvalFirst, c.EvalLast, c.TrainLast = 2, 2, 2
	res, err = bounds.Compute(rows, c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range res.Policies {
		names = append(names, p.Name)
		if strings.HasPrefix(p.Name, bounds.NameStaticBest+" (days 1–2)") && p.Causal {
			t.Errorf("%s trains on the evaluation day but is marked causal", p.Name)
		}
	}
	if !slices.Contains(names, bounds.NameStaticBest+" (day 1)") {
		t.Errorf("no static-best over the day before the evaluation in %q", names)
	}
}

// TestComputeErrors checks the configurations and rows Compute refuses.
func TestComputeErrors(t *testing.T) {
	rows := days(1, 1, func(h int64) bounds.Row { return row(h, "f", 1, 100, nil) })
	if _, err := bounds.Compute(rows, oneTwo()); !errors.Is(err, bounds.ErrNoRows) {
		t.Errorf("no evaluation rows: %v, want ErrNoRows", err)
	}
	for name, mod := range map[string]func(*bounds.Config){
		"training days reversed": func(c *bounds.Config) { c.TrainFirst, c.TrainLast = 3, 2 },
		"evaluation day 0":       func(c *bounds.Config) { c.EvalFirst = 0 },
		"negative prior":         func(c *bounds.Config) { c.PriorWeight = -1 },
		"zero half-life":         func(c *bounds.Config) { c.HalfLivesH = []float64{0} },
		"no such tier":           func(c *bounds.Config) { c.Default.Tier = cloud.NumTiers },
	} {
		c := oneTwo()
		mod(&c)
		if _, err := bounds.Compute(rows, c); err == nil || errors.Is(err, bounds.ErrNoRows) {
			t.Errorf("%s: %v, want a configuration error", name, err)
		}
	}
}

// TestTierNeed checks the smallest tier holding the working set.
func TestTierNeed(t *testing.T) {
	for _, tc := range []struct {
		ws   float64
		want int
	}{{16, 128}, {128, 128}, {128.5, 256}, {1024, 1024}, {2900, 3008}, {5000, 3008}} {
		if got := (bounds.Descriptors{WorkingSetMB: tc.ws}).TierNeed().MB(); got != tc.want {
			t.Errorf("working set %v MB: tier %d MB, want %d", tc.ws, got, tc.want)
		}
	}
}

// TestCSVRoundTrip checks ReadCSV gives back what WriteCSV wrote, bit for
// bit.
func TestCSVRoundTrip(t *testing.T) {
	rows := []bounds.Row{row(5, "f", 7, 170.123456789, map[int]float64{0: 1.0 / 3, 23: -0.1}),
		row(6, "g,with comma", 1, 3000, map[int]float64{11: math.Nextafter(0.5, 1)})}
	rows[1].Runtime, rows[1].UserMetro = cloud.Go, cloud.APSoutheast
	var b bytes.Buffer
	if err := bounds.WriteCSV(&b, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "hour,app,func,invocations,user_metro,working_set_mb,cpu_bound_fraction,runtime,tier_need_mb,r0,") {
		t.Errorf("header: %q", strings.SplitN(b.String(), "\n", 2)[0])
	}
	text := b.String()
	got, err := bounds.ReadCSV(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, rows) {
		t.Errorf("read back %+v, want %+v", got, rows)
	}
	if _, err := bounds.ReadCSV(strings.NewReader(strings.Replace(text, "python", "cobol", 1))); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("an unknown runtime on line 2: %v", err)
	}
}

// TestWriteText checks the bucket table's shares and parts of the gap.
func TestWriteText(t *testing.T) {
	r := bounds.Result{Config: oneTwo(), Rows: 4, Functions: 1,
		Policies: []bounds.Policy{{Name: "oracle (x)", Mean: 0.5, Share: 1}, {Name: "static-best (y)", Causal: true, Mean: 0.25, Share: 0.5}},
		Buckets:  []bounds.Bucket{{Label: "≤ 1", Rows: 3, Oracle: 0.5, StaticBest: 0.25}, {Label: "> 100", Rows: 1, Oracle: 0.5, StaticBest: 0.25}}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| oracle (x) | no | 0.5000 | 1.000 |", "| static-best (y) | yes | 0.2500 | 0.500 |",
		"| ≤ 1 | 3 | 0.5000 | 0.2500 | 0.500 | 0.750 |", "| > 100 | 1 | 0.5000 | 0.2500 | 0.500 | 0.250 |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, &b)
		}
	}
}
