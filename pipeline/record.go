package pipeline

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os/exec"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/secret"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// RecordFlags say where `strata eval` and `strata train` record their
// runs: a runs row each, the rewards of its scored days, its strategic and
// tactical decisions (the operational ones when asked) and its latency
// histogram per scored day (docs/tables.md, "Runs of eval and train").
type RecordFlags struct {
	// Store is the DuckDB file or ClickHouse DSN; File "" records nothing.
	Store StoreFlags
	// Operational also stores the operational layer's decisions (a
	// 14-day run's are millions of rows).
	Operational bool
}

// DefaultRecordFlags records into store.DefaultDuckDBFile, without
// operational decisions.
func DefaultRecordFlags() RecordFlags {
	return RecordFlags{Store: StoreFlags{File: store.DefaultDuckDBFile}}
}

// RegisterFlags registers --store, --clickhouse and --store-operational,
// each name preceded by prefix.
func (f *RecordFlags) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&f.Store.File, prefix+"store", f.Store.File, "DuckDB `FILE` the runs, the rewards of their scored days, their strategic and tactical decisions and latency histograms are written to (\"\" writes none; used unless --clickhouse is given)")
	fs.StringVar(&f.Store.ClickHouse, prefix+"clickhouse", f.Store.ClickHouse, "ClickHouse `DSN` (clickhouse://host:9000/database) to write the runs to instead of --store")
	fs.BoolVar(&f.Operational, prefix+"store-operational", f.Operational, "also store the operational layer's decisions (many rows: about 4,500 a synthetic day when sent only as they change)")
}

// Open opens the store and creates or migrates its tables; it returns nil
// and no error when the flags record nothing. The store is safe for the
// concurrent runs of one command (`--parallel`): its writes are
// serialised.
func (f *RecordFlags) Open(ctx context.Context, logger *slog.Logger) (*Recorder, error) {
	target := f.Store.Target()
	if target == "" {
		return nil, nil
	}
	st, err := store.Open(ctx, target, store.WithLogger(logger.With("role", "store")))
	if err != nil {
		return nil, err
	}
	if err := st.EnsureSchema(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	return NewRecorder(st, target, f.Operational), nil
}

// Recorder writes the runs of one command to a store.
type Recorder struct {
	mu          sync.Mutex
	st          store.Store
	target      string
	operational bool
	revision    string
}

// Target names the store (a DuckDB file or a ClickHouse DSN), a DSN's
// password redacted: for what is printed.
func (r *Recorder) Target() string { return secret.Redact(r.target) }

// NewRecorder returns a recorder over an open store whose schema is in
// place; operational says whether the operational decisions are stored.
func NewRecorder(st store.Store, target string, operational bool) *Recorder {
	return &Recorder{st: st, target: target, operational: operational, revision: Revision()}
}

// Close closes the store.
func (r *Recorder) Close() error { return r.st.Close() }

// Store returns the store behind a lock, for the sink of one of the
// command's runs.
func (r *Recorder) Store() store.Store { return lockedStore{r: r} }

// Apply makes lc record its run: the sink writes lc's run row, rewards
// and decisions to the store; the rewards and outcomes of the intervals
// before scoreFrom (warm-up) and the operational decisions (unless asked
// for) are not written. run is the row; its kind, label and revision are set here when
// empty.
func (r *Recorder) Apply(lc *LoopConfig, run *stratapb.Run, scoreFrom int64) {
	if run.Revision == "" {
		run.Revision = r.revision
	}
	lc.Store, lc.Run, lc.StoreFromTick = r.Store(), run, scoreFrom
	if !r.operational {
		lc.StoreNoDecisions = map[schemas.Layer]bool{schemas.Operational: true}
	}
}

// Finish writes the run's row again with its wall time, and its latency
// histogram per trace day (the run's day d is trace day run.FirstDay + d).
func (r *Recorder) Finish(ctx context.Context, run *stratapb.Run, ts twin.Stats, wall time.Duration) error {
	run.WallMs = wall.Milliseconds()
	var rows []*stratapb.LatencyBucket
	days := make([]int64, 0, len(ts.LatencyByDay))
	for d := range ts.LatencyByDay {
		days = append(days, d)
	}
	slices.Sort(days)
	first := max(run.GetFirstDay(), 1)
	for _, d := range days {
		rows = append(rows, ts.LatencyByDay[d].Rows(run.GetRunId(), first+int32(d))...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.st.WriteRuns(ctx, []*stratapb.Run{run}); err != nil {
		return fmt.Errorf("recording run %s's wall time: %w", run.GetRunId(), err)
	}
	if err := r.st.WriteLatencyBuckets(ctx, rows); err != nil {
		return fmt.Errorf("recording run %s's latency histogram: %w", run.GetRunId(), err)
	}
	return nil
}

// lockedStore serialises the writes of a command's concurrent runs.
type lockedStore struct{ r *Recorder }

func (l lockedStore) lock() func() { l.r.mu.Lock(); return l.r.mu.Unlock }

func (l lockedStore) EnsureSchema(ctx context.Context) error {
	defer l.lock()()
	return l.r.st.EnsureSchema(ctx)
}

func (l lockedStore) WriteRuns(ctx context.Context, rows []*stratapb.Run) error {
	defer l.lock()()
	return l.r.st.WriteRuns(ctx, rows)
}

func (l lockedStore) WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error {
	defer l.lock()()
	return l.r.st.WriteDecisions(ctx, rows)
}

func (l lockedStore) WriteRewards(ctx context.Context, rows []*stratapb.Reward) error {
	defer l.lock()()
	return l.r.st.WriteRewards(ctx, rows)
}

func (l lockedStore) WriteOutcomes(ctx context.Context, rows []*stratapb.Outcome) error {
	defer l.lock()()
	return l.r.st.WriteOutcomes(ctx, rows)
}

func (l lockedStore) WriteLatencyBuckets(ctx context.Context, rows []*stratapb.LatencyBucket) error {
	defer l.lock()()
	return l.r.st.WriteLatencyBuckets(ctx, rows)
}

func (l lockedStore) Expire(ctx context.Context, before time.Time) (int64, bool, error) {
	defer l.lock()()
	return l.r.st.Expire(ctx, before)
}

func (l lockedStore) Query(ctx context.Context, q string) ([]string, [][]any, error) {
	defer l.lock()()
	return l.r.st.Query(ctx, q)
}

func (l lockedStore) Close() error { return nil }

// Revision returns the source revision of this binary: the VCS revision
// the build recorded ("+dirty" when the tree had changes), else that of
// the git work tree in the current directory (`go run` and builds with
// -buildvcs=false record none), else "".
func Revision() string {
	revisionOnce.Do(func() { revision = readRevision() })
	return revision
}

var (
	revisionOnce sync.Once
	revision     string
)

func readRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev string
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "+dirty"
			}
			return rev
		}
	}
	// A revision lookup must not hold a command up: at most 5 s.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "+dirty"
	}
	return rev
}
