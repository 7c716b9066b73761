package twin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

type dayRec struct{ all map[string]map[int64][3]float64 }

func (d *dayRec) Add(c Counterfactual) {
	if c.Layer != schemas.Strategic {
		return
	}
	m := d.all[c.App]
	if m == nil {
		m = map[int64][3]float64{}
		d.all[c.App] = m
	}
	var r [3]float64
	for i := range 3 {
		r[i] = c.Rewards[i].R
	}
	m[c.Tick] = r
}

func TestZZScratchStrategic(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	m := testModel(t)
	src, _ := replay.NewSynth(replay.SynthConfig{Days: 14, Seed: 1})
	pb := NewProfileBuilder(grid.DefaultEpoch)
	type st struct {
		n              int64
		durS, memS     float64
		funcs          map[string]bool
		rt             map[cloud.Runtime]int
		ws             float64
	}
	apps := map[string]*st{}
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		pb.Add(in)
		a := apps[in.App]
		if a == nil {
			a = &st{funcs: map[string]bool{}, rt: map[cloud.Runtime]int{}}
			apps[in.App] = a
		}
		a.n++
		a.durS += float64(in.DurationUS) / 1e6
		a.funcs[in.Func] = true
	}
	profile := pb.Build(m)
	for app, a := range apps {
		for f := range a.funcs {
			p := profile(app, f)
			a.rt[p.Profile.Runtime]++
			a.ws = max(a.ws, p.Profile.WorkingSetMB)
		}
	}
	src, _ = replay.NewSynth(replay.SynthConfig{Days: 14, Seed: 1})
	d := &dayRec{all: map[string]map[int64][3]float64{}}
	cfg := Config{DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}, Reward: cloud.DefaultRewardConfig(), Learn: d}
	if err := ReplayCounterfactuals(context.Background(), m, cfg, profile, src, 600_000_000, 14); err != nil {
		t.Fatal(err)
	}
	type row struct {
		app  string
		adv  float64
		days int
	}
	var rows []row
	for app, days := range d.all {
		var tot [3]float64
		n := 0
		for k, r := range days {
			if k < 10 {
				n++
				for i := range 3 {
					tot[i] += r[i]
				}
			}
		}
		if n == 0 {
			continue
		}
		rows = append(rows, row{app, (tot[1] - tot[0]) / float64(n), n})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].adv > rows[j].adv })
	for _, r := range rows {
		a := apps[r.app]
		fmt.Printf("%-12.12s adv %+.3f days %2d inv/day %8.0f dur %.3fs funcs %d ws %.0f rt %v\n", r.app, r.adv, r.days, float64(a.n)/14, a.durS/float64(a.n), len(a.funcs), a.ws, a.rt)
	}
}
