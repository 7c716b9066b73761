package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/strata-rl/strata/pipeline/roleconf"
	"github.com/strata-rl/strata/replay"
)

const traceUsage = `Usage:
  strata trace synth --days N --seed S [--apps K] --out FILE
      write a synthetic trace calibrated to the Azure Functions 2021 trace
      (FILE "-" is stdout; a .gz suffix compresses it; a .parquet suffix
      writes Parquet, otherwise the Azure 2021 CSV)
  strata trace stats PATH [--trace-format F] [--trace-columns M] [--seed S] [--json]
      print statistics of a trace in any format strata reads (docs/traces.md;
      PATH "-" is a CSV on stdin); malformed lines are reported and skipped
`

// traceMaxReported bounds how many malformed lines trace stats reports one
// by one; the rest are only counted.
const traceMaxReported = 20

// traceMain implements `strata trace synth|stats`. Diagnostics go to
// os.Stderr.
func traceMain(ctx context.Context, args []string, stdout io.Writer) error {
	return traceRun(ctx, args, stdout, os.Stderr)
}

// traceRun is traceMain with an explicit diagnostics writer.
func traceRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "trace", args, stdout, stderr, traceUsage)
}

// traceParse parses args with fs, accepting flags before and after the
// positional arguments, which it returns.
func traceParse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func traceSynth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("strata trace synth", stderr)
	var cfg replay.SynthConfig
	var out string
	fs.IntVar(&cfg.Days, "days", 14, "length of the trace in `days` (day 0 is a Sunday)")
	fs.Int64Var(&cfg.Seed, "seed", 1, "`seed` of the realisation; the same flags give byte-identical output")
	fs.IntVar(&cfg.Apps, "apps", 0, "keep this many `apps` of the 119 (0 = all)")
	fs.StringVar(&out, "out", "", "output `FILE` (\"-\" = stdout, .gz suffix = gzip, .parquet suffix = Parquet)")
	confPath := roleconf.Register(fs)
	pos, err := traceParse(fs, args)
	if err != nil {
		return err
	}
	if _, err := roleconf.Load(fs, *confPath, false); err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("trace synth: unexpected arguments %q", pos)
	}
	if out == "" {
		fs.Usage()
		return errors.New("trace synth: --out is required")
	}
	src, err := replay.NewSynth(cfg)
	if err != nil {
		return fmt.Errorf("creating synthetic trace: %w", err)
	}
	n, err := traceWrite(out, stdout, &traceCtxSource{ctx: ctx, src: src})
	if err != nil {
		return err
	}
	report := stdout
	if out == "-" {
		report = stderr
	}
	fmt.Fprintf(report, "wrote %d invocations (days=%d seed=%d apps=%d) to %s\n", n, cfg.Days, cfg.Seed, cfg.Apps, out)
	return nil
}

// traceWrite writes src to path ("-" = stdout) as Parquet for a .parquet
// suffix, as gzip-compressed CSV for .gz, as CSV otherwise, and removes a
// partly written file on error.
func traceWrite(path string, stdout io.Writer, src replay.Source) (n int64, err error) {
	w := io.Writer(stdout)
	var f *os.File
	if path != "-" {
		f, err = os.Create(path)
		if err != nil {
			return 0, fmt.Errorf("creating trace file: %w", err)
		}
		defer func() {
			if cerr := f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("closing trace file: %w", cerr)
			}
			if err != nil {
				_ = os.Remove(path)
			}
		}()
		w = f
	}
	if strings.HasSuffix(strings.ToLower(path), ".parquet") {
		return replay.WriteParquet(w, src, 0)
	}
	if strings.HasSuffix(path, ".gz") {
		zw := gzip.NewWriter(w)
		n, err = replay.WriteCSV(zw, src)
		if cerr := zw.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("compressing trace: %w", cerr)
		}
		return n, err
	}
	return replay.WriteCSV(w, src)
}

func traceStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("strata trace stats", stderr)
	asJSON := fs.Bool("json", false, "print the statistics as JSON")
	var oc replay.OpenConfig
	fs.StringVar((*string)(&oc.Format), "trace-format", string(replay.FormatAuto), "`format` of the trace: auto (a directory is azure2019, .parquet is parquet, else azure2021, or csv with --trace-columns), azure2021, azure2019, csv or parquet")
	fs.StringVar(&oc.Columns, "trace-columns", "", "column `mapping` of a csv or parquet trace (docs/traces.md)")
	fs.Int64Var(&oc.Seed, "seed", 1, "`seed` of the expansion of an Azure 2019 trace's counts into invocations")
	confPath := roleconf.Register(fs)
	pos, err := traceParse(fs, args)
	if err != nil {
		return err
	}
	if _, err := roleconf.Load(fs, *confPath, false); err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("trace stats: want exactly one trace PATH, got %d arguments", len(pos))
	}
	r, err := traceOpen(pos[0], oc)
	if err != nil {
		return fmt.Errorf("trace stats: %w", err)
	}
	defer func() { _ = r.Close() }()
	rep := &traceReportSource{src: &traceCtxSource{ctx: ctx, src: r}, w: stderr}
	st, err := replay.ComputeStats(rep)
	if err != nil {
		return fmt.Errorf("reading trace %s: %w", pos[0], err)
	}
	if rep.bad > traceMaxReported {
		fmt.Fprintf(stderr, "... and %d more malformed lines\n", rep.bad-traceMaxReported)
	}
	if rep.bad > 0 {
		fmt.Fprintf(stderr, "%d malformed lines skipped\n", rep.bad)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return fmt.Errorf("writing stats: %w", err)
		}
		return nil
	}
	return st.WriteText(stdout)
}

// traceOpen opens the trace at path as oc says; path "-" is a CSV on
// stdin, in the Azure 2021 format or through a column mapping.
func traceOpen(path string, oc replay.OpenConfig) (replay.ReadCloser, error) {
	if path != "-" {
		r, _, err := replay.Open(path, oc)
		return r, err
	}
	if err := oc.Check(); err != nil {
		return nil, err
	}
	switch f, _ := replay.ParseFormat(string(oc.Format)); {
	case f == replay.FormatCSV || (f == replay.FormatAuto && oc.Columns != ""):
		cols, _ := replay.ParseColumns(oc.Columns)
		return replay.NewColumnReader(os.Stdin, "stdin", cols)
	case f == replay.FormatAuto || f == replay.FormatAzure2021:
		return replay.NewCSVReader(os.Stdin, "stdin")
	default:
		return nil, fmt.Errorf("stdin holds a CSV trace; a %s trace needs a PATH: %w", f, replay.ErrFormat)
	}
}

// traceCtxSource stops a source when its context is done.
type traceCtxSource struct {
	ctx context.Context
	src replay.Source
	n   int
}

// Next implements replay.Source.
func (s *traceCtxSource) Next() (replay.Invocation, error) {
	if s.n++; s.n%4096 == 0 {
		if err := s.ctx.Err(); err != nil {
			return replay.Invocation{}, err
		}
	}
	return s.src.Next()
}

// traceReportSource writes each malformed line (*replay.LineError) it sees
// to w, up to traceMaxReported, and passes every result on unchanged.
type traceReportSource struct {
	src replay.Source
	w   io.Writer
	bad int
}

// Next implements replay.Source.
func (s *traceReportSource) Next() (replay.Invocation, error) {
	in, err := s.src.Next()
	var le *replay.LineError
	if errors.As(err, &le) {
		s.bad++
		if s.bad <= traceMaxReported {
			fmt.Fprintf(s.w, "malformed line skipped: %v: %q\n", le, le.Text)
		}
	}
	return in, err
}
