package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
)

// The files Export writes into Config.Out.
const (
	ScalerFile   = "scaler.json"
	ProfileFile  = "profile.csv"
	MetadataFile = "metadata.json"
	// MetadataFormat is metadata.json's format version.
	MetadataFormat = "dataset-metadata/1"
)

// ErrShortTrace is wrapped by Export when the trace does not reach the
// last day of the splits or leaves a split without rows.
var ErrShortTrace = errors.New("trace too short for the splits")

// Input is the trace an export reads.
type Input struct {
	// Src yields the invocations, nearly in start order (the Azure 2021
	// file is in end order); Export orders them.
	Src replay.Source
	// Name names the trace in the files (e.g. the file's path, or
	// "synthetic(days=14,seed=1,apps=0)").
	Name string
	// LenUS is the trace's length in microseconds when known (a synthetic
	// trace), 0 otherwise: a known length shorter than the splits is
	// refused before reading.
	LenUS int64
	// Synthetic is the synthetic trace's configuration, nil for a file.
	Synthetic *replay.SynthConfig
}

// Result is what Export wrote and counted.
type Result struct {
	// Splits are the splits; Rows the rows written to each.
	Splits Splits
	Rows   [3]int64
	// Unassigned counts invocations on days between the splits, Late
	// those dropped as later than the allowed lateness (or starting
	// before trace time 0), Malformed the trace lines that did not parse.
	Unassigned, Late, Malformed int64
	// Beyond reports that the trace continues past the last split day;
	// it was not read further.
	Beyond bool
	// Functions and Apps count those seen in the rows computed.
	Functions, Apps int
	// Files maps each file written to its size in bytes.
	Files map[string]int64
	// Wall is the export's wall time (for the command's summary only).
	Wall time.Duration
}

// Metadata is metadata.json.
type Metadata struct {
	// Format is MetadataFormat; SplitFormat the Parquet files' Format.
	Format      string `json:"format"`
	SplitFormat string `json:"split_format"`
	// Source describes the trace.
	Source SourceMeta `json:"source"`
	// Epoch is trace time 0 (RFC 3339).
	Epoch string `json:"epoch"`
	// Model is what the features take from the cloud model.
	Model ModelMeta `json:"model"`
	// Splits give each split's days, file and rows.
	Splits []SplitMeta `json:"splits"`
	// Rows counts the rows written; Unassigned, Late and Malformed the
	// invocations not written (Result); BeyondLastSplit as Result.Beyond.
	Rows            int64 `json:"rows"`
	Unassigned      int64 `json:"unassigned_rows"`
	Late            int64 `json:"late_rows"`
	Malformed       int64 `json:"malformed_lines"`
	BeyondLastSplit bool  `json:"beyond_last_split"`
	// Functions and Apps count those in the rows computed.
	Functions int `json:"functions"`
	Apps      int `json:"apps"`
	// Values says the Parquet files hold raw values.
	Values string `json:"values"`
	// Causality states what a row's features depend on.
	Causality string `json:"causality"`
	// Identifiers are the columns before the features; Label the
	// label column among them.
	Identifiers []string `json:"identifiers"`
	Label       string   `json:"label"`
	// Groups count the features per group; Features describe each.
	Groups   []GroupSize `json:"groups"`
	Features []Feature   `json:"features"`
	// Scaler and Profile name the other files.
	Scaler  string `json:"scaler"`
	Profile string `json:"profile"`
}

// SourceMeta describes the trace.
type SourceMeta struct {
	// Name is Input.Name.
	Name string `json:"name"`
	// Kind is "synthetic" or "file".
	Kind string `json:"kind"`
	// Seed, Days and Apps are the synthetic trace's configuration.
	Seed *int64 `json:"seed,omitempty"`
	Days *int   `json:"days,omitempty"`
	Apps *int   `json:"apps,omitempty"`
}

// ModelMeta is what the features take from the cloud model.
type ModelMeta struct {
	// CatalogVersion is the catalog's version.
	CatalogVersion string `json:"catalog_version"`
	// Seed draws the functions' hidden profiles.
	Seed uint64 `json:"seed"`
	// Reference is the reference placement (provider/tier) of cold_ref,
	// cold_start_ms_ref and carbon_ref_g.
	Reference string `json:"reference"`
	// KeepAliveMin is the reference provider's free keep-alive.
	KeepAliveMin float64 `json:"keep_alive_min"`
	// CarbonMode is the carbon lookup.
	CarbonMode string `json:"carbon_mode"`
	// GCPGen2 reports GCP priced as 2nd gen.
	GCPGen2 bool `json:"gcp_gen2"`
}

// SplitMeta is one split in metadata.json.
type SplitMeta struct {
	Split
	// File is the split's Parquet file; Rows its rows.
	File string `json:"file"`
	Rows int64  `json:"rows"`
}

const causality = "a row's features depend only on its own start (not its duration, a label), on the invocations that start before it in (start, row) order (durations and ends only of those ended by its start) and on the catalog, carbon and renewable data of its hour and the cloud model's parameters"

// Export reads in, computes every invocation's features in (start, row)
// order and writes the dataset into c.Out: train.parquet, valid.parquet,
// test.parquet (raw values), scaler.json (fitted on train.parquet only),
// profile.csv (training days only) and metadata.json. m is the cloud model
// (nil: the default at c's epoch). The files are written under temporary
// names and renamed when all are complete; on error none is left.
func Export(ctx context.Context, c Config, in Input, m *cloud.Model) (*Result, error) {
	t0 := time.Now()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	splits, _ := ParseSplits(c.Splits)
	epoch, _ := c.EpochTime()
	if m == nil {
		cat, err := cloud.DefaultCatalog()
		if err != nil {
			return nil, fmt.Errorf("exporting the dataset: %w", err)
		}
		cfg := cloud.DefaultConfig()
		cfg.Epoch = epoch
		if m, err = cloud.NewModel(cat, cfg); err != nil {
			return nil, fmt.Errorf("exporting the dataset: %w", err)
		}
	} else if !m.Config().Epoch.Equal(epoch) {
		return nil, fmt.Errorf("exporting the dataset: the cloud model's epoch %s is not --trace-epoch %s", m.Config().Epoch.Format(time.RFC3339), c.Epoch)
	}
	need := int64(splits.LastDay()) * dayUS
	if in.LenUS > 0 && in.LenUS < need {
		return nil, fmt.Errorf("exporting the dataset: %w: %s has %g days, --splits %s needs %d",
			ErrShortTrace, in.Name, float64(in.LenUS)/float64(dayUS), splits, splits.LastDay())
	}
	b, err := NewBuilder(m)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", c.Out, err)
	}
	e := &exporter{c: c, in: in, splits: splits, b: b, prof: newProfiler(m), res: &Result{Splits: splits, Files: map[string]int64{}}}
	if err := e.run(ctx); err != nil {
		e.cleanup()
		return nil, err
	}
	if err := e.finish(ctx, m); err != nil {
		e.cleanup()
		return nil, err
	}
	e.res.Wall = time.Since(t0)
	return e.res, nil
}

// exporter is one export in progress.
type exporter struct {
	c       Config
	in      Input
	splits  Splits
	b       *Builder
	prof    *profiler
	w       [3]*splitWriter
	res     *Result
	lastDay int  // the last day of a row computed
	stop    bool // an invocation past the last split day was released
	tmp     []string
	paths   [3]string // the split files' temporary paths
	closed  [3]bool
	feat    [NumFeatures]float64
}

// closeSplit closes split i's file if it is open.
func (e *exporter) closeSplit(i int) error {
	if e.w[i] == nil || e.closed[i] {
		return nil
	}
	e.closed[i] = true
	return e.w[i].close()
}

// tmpPath returns the temporary path of the file name and records it for
// cleanup.
func (e *exporter) tmpPath(name string) string {
	p := filepath.Join(e.c.Out, "."+name+".tmp")
	e.tmp = append(e.tmp, p)
	return p
}

// cleanup closes the writers and removes the temporary files.
func (e *exporter) cleanup() {
	for i, w := range e.w {
		if w != nil && !e.closed[i] {
			w.abort()
		}
	}
	for _, p := range e.tmp {
		_ = os.Remove(p)
	}
}

// run reads the trace through the orderer into the builder and writers.
func (e *exporter) run(ctx context.Context) error {
	ord := replay.NewOrderer(e.c.Lateness.Microseconds())
	for n := 0; !e.stop; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("exporting the dataset: %w", err)
			}
		}
		inv, err := e.in.Src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *replay.LineError
		if errors.As(err, &le) {
			if le.Line == 1 {
				return fmt.Errorf("reading %s: %w", e.in.Name, err)
			}
			e.res.Malformed++
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", e.in.Name, err)
		}
		if err := ord.Push(inv); err != nil {
			if errors.Is(err, replay.ErrLate) {
				e.res.Late++
				continue
			}
			return fmt.Errorf("ordering %s: %w", e.in.Name, err)
		}
		for !e.stop {
			next, ok := ord.Pop()
			if !ok {
				break
			}
			if err := e.row(next); err != nil {
				return err
			}
		}
	}
	for !e.stop {
		next, ok := ord.Drain()
		if !ok {
			break
		}
		if err := e.row(next); err != nil {
			return err
		}
	}
	e.res.Beyond = e.stop
	if e.lastDay < e.splits.LastDay() {
		return fmt.Errorf("exporting the dataset: %w: %s ends on day %d, --splits %s needs days up to %d",
			ErrShortTrace, e.in.Name, e.lastDay, e.splits, e.splits.LastDay())
	}
	for i, w := range e.w {
		if w == nil {
			sp := e.splits[i]
			return fmt.Errorf("exporting the dataset: %w: %s has no invocation in the %s split (days %s)", ErrShortTrace, e.in.Name, sp.Name, sp.Days())
		}
	}
	return nil
}

// row computes and writes one invocation, released in (start, row) order.
func (e *exporter) row(in replay.Invocation) error {
	day := int(in.StartUS()/dayUS) + 1
	if day > e.splits.LastDay() {
		e.stop = true
		return nil
	}
	if err := e.b.Add(in, &e.feat); err != nil {
		return fmt.Errorf("exporting the dataset: %w", err)
	}
	e.lastDay = day
	k := e.splits.Of(day)
	if k < 0 {
		e.res.Unassigned++
		return nil
	}
	for i, v := range e.feat {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("exporting the dataset: row %d: feature %s is %v", in.Row, features[i].Name, v)
		}
	}
	w := e.w[k]
	if w == nil {
		// The splits are temporal: the earlier ones are complete.
		for i := range k {
			if err := e.closeSplit(i); err != nil {
				return err
			}
		}
		sp := e.splits[k]
		var err error
		w, err = newSplitWriter(e.tmpPath(sp.Name+".parquet"), sp, map[string]string{
			KeyFormat: Format, KeySplit: sp.Name, KeyDays: sp.Days(), KeySource: e.in.Name,
			KeyEpoch: e.c.Epoch, KeyValues: valuesNote,
		})
		if err != nil {
			return err
		}
		e.w[k] = w
		e.paths[k] = w.path
	}
	if err := w.add(in, day, &e.feat); err != nil {
		return err
	}
	e.res.Rows[k]++
	if k == 0 {
		e.prof.add(in, day, e.feat[fColdRef] == 1)
	}
	return nil
}

// finish closes the split files, fits the scaler, writes the profile and
// metadata and renames every file into place.
func (e *exporter) finish(ctx context.Context, m *cloud.Model) error {
	for i := range e.w {
		if err := e.closeSplit(i); err != nil {
			return err
		}
	}
	e.res.Functions, e.res.Apps = e.b.Functions(), e.b.Apps()
	sc, err := fitScaler(ctx, e.paths[0], e.splits[0], e.res.Rows[0])
	if err != nil {
		return err
	}
	trainHours := float64(e.splits[0].LastDay-e.splits[0].FirstDay+1) * 24
	prof, err := e.prof.csv(trainHours)
	if err != nil {
		return err
	}
	meta, err := marshalIndent(e.metadata(m))
	if err != nil {
		return fmt.Errorf("writing %s: %w", MetadataFile, err)
	}
	scb, err := marshalIndent(sc)
	if err != nil {
		return fmt.Errorf("writing %s: %w", ScalerFile, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ScalerFile, scb}, {ProfileFile, prof}, {MetadataFile, meta}} {
		if err := os.WriteFile(e.tmpPath(f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	for _, p := range e.tmp {
		base := filepath.Base(p)
		name := base[1 : len(base)-len(".tmp")]
		final := filepath.Join(e.c.Out, name)
		if err := os.Rename(p, final); err != nil {
			return fmt.Errorf("renaming %s: %w", final, err)
		}
		st, err := os.Stat(final)
		if err != nil {
			return fmt.Errorf("writing %s: %w", final, err)
		}
		e.res.Files[name] = st.Size()
	}
	return nil
}

// metadata returns metadata.json's content.
func (e *exporter) metadata(m *cloud.Model) Metadata {
	cfg := m.Config()
	md := Metadata{
		Format: MetadataFormat, SplitFormat: Format,
		Source: SourceMeta{Name: e.in.Name, Kind: "file"},
		Epoch:  e.c.Epoch,
		Model: ModelMeta{
			CatalogVersion: m.Catalog().Version, Seed: cfg.Seed,
			Reference:    fmt.Sprintf("%s/%dMB", cfg.ReferenceProvider, cfg.ReferenceTier.MB()),
			KeepAliveMin: cfg.KeepAliveMin[cfg.ReferenceProvider], CarbonMode: cfg.CarbonMode.String(), GCPGen2: cfg.GCPGen2,
		},
		Unassigned: e.res.Unassigned, Late: e.res.Late, Malformed: e.res.Malformed, BeyondLastSplit: e.res.Beyond,
		Functions: e.res.Functions, Apps: e.res.Apps,
		Values:      valuesNote,
		Causality:   causality,
		Identifiers: IDColumns[:], Label: IDColumns[colDuration],
		Groups: GroupSizes(), Features: Features(),
		Scaler: ScalerFile, Profile: ProfileFile,
	}
	if s := e.in.Synthetic; s != nil {
		seed, days, apps := s.Seed, s.Days, s.Apps
		md.Source.Kind, md.Source.Seed, md.Source.Days, md.Source.Apps = "synthetic", &seed, &days, &apps
	}
	for i, sp := range e.splits {
		md.Splits = append(md.Splits, SplitMeta{Split: sp, File: sp.Name + ".parquet", Rows: e.res.Rows[i]})
		md.Rows += e.res.Rows[i]
	}
	return md
}
