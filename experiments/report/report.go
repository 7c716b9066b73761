package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/experiments/eval"
	"github.com/strata-rl/strata/schemas"
)

// ref is one planned run and the run of the store that answers it.
type ref struct {
	job   eval.Job
	runID string
	// found says the run was already in the store (not run now).
	found bool
	// unchecked says the run found was recorded before runs rows held the
	// checkpoints' digest, so it was not compared with the model directory.
	unchecked bool
	// stale is, for a job not found, the newest run of its configuration
	// that served other checkpoints than its model directory holds now.
	stale string
	// row is the found run's runs row (its revision and wall time among
	// them); from names the runs file it came from ("" for the store).
	row  runRow
	from string
}

// Run builds the report: it plans the configurations' runs, finds the
// finished ones in the store and runs the others (none with FromStore),
// reads every figure back from the store and writes DIR/report.md, the
// figures and DIR/summary.json. A progress line per run goes to stderr.
func Run(ctx context.Context, c Config, stdout, stderr io.Writer) error {
	if err := c.Validate(); err != nil {
		return err
	}
	t0 := time.Now()
	var preds []Prediction
	if c.Eval.LSTMTest != "" {
		// First: a missing checkpoint or sequences file fails before any
		// run starts.
		var err error
		if preds, err = c.predictions(ctx); err != nil {
			return err
		}
	}
	var more *carried
	if c.FromRuns != "" {
		var err error
		if more, err = readRuns(c.FromRuns); err != nil {
			return err
		}
	}
	jobs, err := c.jobs()
	if err != nil {
		return err
	}
	jobs, planned := c.combinations(jobs)
	s, err := eval.NewSession(ctx, c.Eval, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	win, err := s.Window()
	if err != nil {
		return err
	}
	st := s.Recorder().Store()
	refs, err := resolve(ctx, st, win, jobs, more)
	if err != nil {
		return err
	}
	var missing []string
	for _, r := range refs {
		if !r.found {
			m := r.job.Label + modelsSuffix(r.job.Models)
			if r.stale != "" {
				m += " (run " + r.stale + " served other checkpoints than the directory holds now)"
			}
			missing = append(missing, m)
		}
	}
	if c.FromStore && len(missing) > 0 && !c.Partial {
		where := s.Recorder().Target()
		if c.FromRuns != "" {
			where += " or " + c.FromRuns
		}
		return fmt.Errorf("strata report --from-store: %d configuration(s) have no finished run in %s with these days and trace: %s",
			len(missing), where, strings.Join(missing, "; "))
	}
	if !c.FromStore {
		if err := runMissing(ctx, s, refs, c.Eval.Parallel, stderr); err != nil {
			return err
		}
		// The rows of runs made now were written with their wall time:
		// read the refs again so every one has its runs row's revision.
		if refs, err = resolve(ctx, st, win, jobs, more); err != nil {
			return err
		}
	}
	var vrefs []ref
	if c.Sensitivity {
		if c.VariantModel == nil {
			c.VariantModel = DefaultVariantModel
		}
		if vrefs, err = runVariants(ctx, &c, s, win, variantJobs(jobs), more, stderr); err != nil {
			return err
		}
	}
	all := append(slices.Clone(refs), vrefs...)
	d, err := load(ctx, st, all, win, more)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", c.Out, err)
	}
	mainRefs, comboRefs := splitCombinations(refs, planned)
	rep := build(d, mainRefs, win)
	rep.LSTMTest, rep.Predictions = c.Eval.LSTMTest, preds
	if c.Combinations {
		rep.Combinations = build(d, comboRefs, win).Configs
		rep.CombinationsPlanned = len(comboRefs)
		rep.compareCombinations()
	}
	for _, r := range all {
		if !r.found {
			rep.Missing = append(rep.Missing, r.job.Label+modelsSuffix(r.job.Models))
		}
	}
	if c.Sensitivity {
		vs := build(d, vrefs, win)
		rep.VariantConfigs = vs.Configs
		rep.Sensitivity = rankings(&Summary{Configs: append(slices.Clone(rep.Configs), vs.Configs...)})
	}
	if err := rep.writeFigures(c.Out); err != nil {
		return err
	}
	if err := writeRuns(c.Out, all, d); err != nil {
		return err
	}
	rep.Runs, rep.RunSeconds = runTime(all)
	rep.Command = "strata report " + strings.Join(os.Args[min(2, len(os.Args)):], " ")
	rep.WallSeconds = time.Since(t0).Seconds()
	if err := rep.write(c.Out); err != nil {
		return err
	}
	now := fmt.Sprintf("%d run now", len(missing))
	if c.FromStore {
		now = fmt.Sprintf("%d not in the store yet", len(missing))
	}
	fromFiles := 0
	for _, r := range refs {
		if r.found && r.from != "" {
			fromFiles++
		}
	}
	files := ""
	if more != nil {
		files = fmt.Sprintf(", %d from %s", fromFiles, c.FromRuns)
	}
	fmt.Fprintf(stdout, "report: %d configurations, %d runs (%s, %d from the store %s%s) in %s: %s/report.md\n",
		len(rep.Configs), len(refs), now, len(refs)-len(missing)-fromFiles, s.Recorder().Target(), files, time.Since(t0).Round(time.Second), c.Out)
	return nil
}

// eta says when the runs left will be done at the pace of the done ones
// so far (elapsed since the first started), or nothing once all are.
func eta(elapsed time.Duration, done, total int) string {
	if done <= 0 || done >= total {
		return ""
	}
	left := time.Duration(float64(elapsed) / float64(done) * float64(total-done))
	return fmt.Sprintf("; %d left, ~%s at this pace", total-done, strings.TrimSuffix(left.Round(time.Minute).String(), "0s"))
}

// jobs returns the runs the report needs: the evaluation's, and with
// --baselines over the operational layer the keep-alive sweep.
func (c *Config) jobs() ([]eval.Job, error) {
	all, err := c.Eval.Jobs()
	if err != nil {
		return nil, err
	}
	// A configuration both the baselines and the models evaluation run
	// (tactical static-best under the same operational policy) runs once.
	var jobs []eval.Job
	seen := map[string]bool{}
	for _, j := range all {
		p := j.Policies
		if k := runKey(j.Label, j.Models, j.PolicySeed, p["strategic"], p["tactical"], p["operational"]); !seen[k] {
			seen[k] = true
			jobs = append(jobs, j)
		}
	}
	kas, _ := c.keepAlive()
	layers := strings.Split(c.Eval.Layers, ",")
	if !c.Eval.Baselines || len(kas) == 0 || !containsTrim(layers, "operational") {
		return jobs, nil
	}
	sweep := c.Eval
	sweep.Models, sweep.Layers = "", "operational"
	var ps []string
	for _, d := range kas {
		ps = append(ps, "keepalive-10m:keep_warm_ms="+strconv.FormatInt(d.Milliseconds(), 10))
	}
	sweep.Policies = strings.Join(ps, ",")
	more, err := sweep.Jobs()
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, j := range jobs {
		have[j.Label+"\x00"+j.Models] = true
	}
	for _, j := range more {
		if !have[j.Label+"\x00"+j.Models] {
			jobs = append(jobs, j)
			have[j.Label+"\x00"+j.Models] = true
		}
	}
	return jobs, nil
}

// combination is a planned combination of baselines and the job whose run
// answers it: its own, or one another comparison runs already (the
// reference, a one-layer variation).
type combination struct {
	job eval.Job
	of  int // the index of the job whose run answers it
}

// combinations appends to jobs every combination of baselines
// (eval.CombinationJobs) that no job of jobs runs already, and returns
// every combination, in the planned order, with the job that answers it.
func (c *Config) combinations(jobs []eval.Job) ([]eval.Job, []combination) {
	if !c.Combinations {
		return jobs, nil
	}
	var only []string
	if c.Eval.Policies != "" {
		only = eval.SplitPolicies(c.Eval.Policies)
	}
	byPolicies := map[string]int{}
	key := func(j eval.Job) string {
		p := j.Policies
		return runKey("", "", j.PolicySeed, p["strategic"], p["tactical"], p["operational"])
	}
	for i, j := range jobs {
		if j.Models == "" {
			if _, ok := byPolicies[key(j)]; !ok {
				byPolicies[key(j)] = i
			}
		}
	}
	var planned []combination
	for _, j := range eval.CombinationJobs(only, c.Eval.PolicySeed) {
		i, ok := byPolicies[key(j)]
		if !ok {
			i = len(jobs)
			jobs = append(jobs, j)
		}
		planned = append(planned, combination{job: j, of: i})
	}
	return jobs, planned
}

// splitCombinations separates the combinations' refs, in the planned
// order, each labelled as its combination, from the others'.
func splitCombinations(refs []ref, planned []combination) (main, combos []ref) {
	for _, r := range refs {
		if r.job.Section != eval.SectionCombination {
			main = append(main, r)
		}
	}
	for _, p := range planned {
		r := refs[p.of]
		r.job = p.job
		combos = append(combos, r)
	}
	return main, combos
}

func containsTrim(xs []string, x string) bool {
	for _, s := range xs {
		if strings.TrimSpace(s) == x {
			return true
		}
	}
	return false
}

func modelsSuffix(m string) string {
	if m == "" {
		return ""
	}
	return " (" + m + ")"
}

// querier is what the report reads the store with.
type querier interface {
	Query(ctx context.Context, query string) ([]string, [][]any, error)
}

// resolve returns a ref per job with the newest finished eval run in the
// store or in the runs files of more (nil: none) that ran the job's configuration over win (found), if any. For a
// job with learned layers the run must also have served the checkpoints
// its model directory holds now (the runs row's models_digest,
// agents.ModelsDigest): a directory trained again is evaluated again. A
// run recorded before the digest existed is taken as it was (unchecked).
func resolve(ctx context.Context, st querier, win eval.Window, jobs []eval.Job, more *carried) ([]ref, error) {
	_, rows, err := st.Query(ctx, "SELECT run_id, label, models, policy_seed, strategic_policy, tactical_policy, operational_policy, "+
		"source, seed, first_day, scored_first_day, scored_last_day, default_placement, revision, wall_ms, started_ms, models_digest "+
		"FROM runs FINAL WHERE kind = 'eval' AND wall_ms > 0 ORDER BY started_ms, run_id")
	if err != nil {
		return nil, fmt.Errorf("reading the store's runs: %w", err)
	}
	all := make([]runRow, 0, len(rows))
	for _, r := range rows {
		all = append(all, runRow{RunID: str(r[0]), Label: str(r[1]), Models: str(r[2]), PolicySeed: int64(num(r[3])),
			Strategic: str(r[4]), Tactical: str(r[5]), Operational: str(r[6]), Source: str(r[7]), Seed: int64(num(r[8])),
			FirstDay: int32(num(r[9])), ScoredFirstDay: int32(num(r[10])), ScoredLastDay: int32(num(r[11])), DefaultPlacement: str(r[12]),
			Revision: str(r[13]), WallMS: int64(num(r[14])), StartedMS: int64(num(r[15])), ModelsDigest: str(r[16])})
	}
	inStore := map[string]bool{}
	for _, r := range all {
		inStore[r.RunID] = true
	}
	if more != nil {
		// The runs files' runs among the store's, by start: a run in
		// both (a file written from this store) is the store's.
		for _, r := range more.rows {
			if !inStore[r.RunID] {
				all = append(all, r)
			}
		}
		sort.SliceStable(all, func(i, j int) bool {
			if all[i].StartedMS != all[j].StartedMS {
				return all[i].StartedMS < all[j].StartedMS
			}
			return all[i].RunID < all[j].RunID
		})
	}
	newest := map[string]runRow{}    // by configuration and digest
	newestAny := map[string]string{} // by configuration: the newest run's id, whatever its digest
	for _, r := range all {
		if r.Source != win.Source || r.Seed != win.Seed || r.FirstDay != win.FirstDay ||
			r.ScoredFirstDay != win.ScoredFirst || r.ScoredLastDay != win.ScoredLast || r.DefaultPlacement != win.Placement {
			continue
		}
		k := runKey(r.Label, r.Models, r.PolicySeed, r.Strategic, r.Tactical, r.Operational)
		// Ordered by start: the last is the newest.
		newest[k+"\x00"+r.ModelsDigest] = r
		newestAny[k] = r.RunID
	}
	out := make([]ref, len(jobs))
	for i, j := range jobs {
		out[i] = ref{job: j}
		p := j.Policies
		digest, err := agents.ModelsDigest(j.Models, map[schemas.Layer]string{
			schemas.Strategic: p["strategic"], schemas.Tactical: p["tactical"], schemas.Operational: p["operational"]})
		if err != nil {
			return nil, err
		}
		k := runKey(j.Label, j.Models, j.PolicySeed, p["strategic"], p["tactical"], p["operational"])
		f, ok := newest[k+"\x00"+digest]
		if !ok && digest != "" {
			if f, ok = newest[k+"\x00"]; ok {
				out[i].unchecked = true
			}
		}
		if ok {
			out[i].runID, out[i].found, out[i].row = f.RunID, true, f
			if more != nil && !inStore[f.RunID] {
				out[i].from = more.from[f.RunID]
			}
		} else if id, seen := newestAny[k]; seen {
			out[i].stale = id
		}
	}
	return out, nil
}

func runKey(label, models string, seed int64, s, t, o string) string {
	return strings.Join([]string{label, models, strconv.FormatInt(seed, 10), s, t, o}, "\x00")
}

// runMissing runs the refs not found in the store, parallel at a time,
// with a progress line per run.
func runMissing(ctx context.Context, s *eval.Session, refs []ref, parallel int, stderr io.Writer) error {
	var todo []int
	for i, r := range refs {
		if r.found {
			note := ""
			if r.unchecked {
				note = ", recorded before runs held their checkpoints' digest: not compared with " + r.job.Models
			}
			where := "the store"
			if r.from != "" {
				where = r.from
			}
			fmt.Fprintf(stderr, "report: %s%s: in %s (run %s%s), not run again\n", r.job.Label, modelsSuffix(r.job.Models), where, r.runID, note)
			continue
		}
		if r.stale != "" {
			fmt.Fprintf(stderr, "report: %s%s: run %s in the store served other checkpoints than the directory holds now: run again\n",
				r.job.Label, modelsSuffix(r.job.Models), r.stale)
		}
		todo = append(todo, i)
	}
	var mu sync.Mutex
	done := 0
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	for _, i := range todo {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			t0 := time.Now()
			id, err := s.Run(gctx, refs[i].job)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			refs[i].runID = id
			done++
			fmt.Fprintf(stderr, "report %d/%d: %s%s: run %s in %.1f s%s\n", done, len(todo), refs[i].job.Label, modelsSuffix(refs[i].job.Models), id,
				time.Since(t0).Seconds(), eta(time.Since(start), done, len(todo)))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), errors.New("strata report: interrupted; the finished runs are in the store and are not run again"))
	}
	return nil
}
