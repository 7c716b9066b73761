package replay_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/strata-rl/strata/replay"
)

// Shape of the generated benchmark day: as many functions as a day of the
// Azure 2019 trace lists (~46,000), 1440 minute columns each, counts
// sparse. ASSUMED mix (the dataset's per-function volumes are not
// reproduced): 1 % of the functions busy every minute (1-3 a minute), 9 %
// active in about one minute in ten (1-2), the rest 1-20 invocations a day.
const (
	benchFunctions = 46_000
	benchBusy      = benchFunctions / 100
	benchRegular   = benchFunctions * 9 / 100
)

// hexID returns a 64-character hex id, like the trace's hashes.
func hexID(r *rand.Rand) string {
	return fmt.Sprintf("%016x%016x%016x%016x", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
}

// writeBenchDay writes one realistic-size Azure 2019 day into dir and
// returns the size of its invocations file.
func writeBenchDay(tb testing.TB, dir string) int64 {
	tb.Helper()
	r := rand.New(rand.NewPCG(2019, 1))
	inv, err := os.Create(filepath.Join(dir, "invocations_per_function_md.anon.d01.csv"))
	if err != nil {
		tb.Fatal(err)
	}
	dur, err := os.Create(filepath.Join(dir, "function_durations_percentiles.anon.d01.csv"))
	if err != nil {
		tb.Fatal(err)
	}
	iw, dw := bufio.NewWriterSize(inv, 1<<20), bufio.NewWriterSize(dur, 1<<20)
	iw.WriteString("HashOwner,HashApp,HashFunction,Trigger")
	for m := 1; m <= 1440; m++ {
		iw.WriteString("," + strconv.Itoa(m))
	}
	iw.WriteString("\n")
	dw.WriteString("HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100\n")
	var counts [1440]int
	owner, app := hexID(r), hexID(r)
	for f := range benchFunctions {
		if f%3 == 0 {
			owner = hexID(r)
		}
		if f%2 == 0 {
			app = hexID(r)
		}
		fn := hexID(r)
		counts = [1440]int{}
		n := 0
		switch {
		case f < benchBusy:
			for m := range counts {
				counts[m] = 1 + r.IntN(3)
			}
		case f < benchBusy+benchRegular:
			for m := range counts {
				if r.IntN(10) == 0 {
					counts[m] = 1 + r.IntN(2)
				}
			}
		default:
			for range 1 + r.IntN(20) {
				counts[r.IntN(1440)]++
			}
		}
		iw.WriteString(owner + "," + app + "," + fn + ",http")
		for _, c := range counts {
			iw.WriteString("," + strconv.Itoa(c))
			n += c
		}
		iw.WriteString("\n")
		base := 1 + 100*r.Float64()
		fmt.Fprintf(dw, "%s,%s,%s,%.3f,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f\n", owner, app, fn, 2*base, n, base/2, 50*base,
			base/2, base*0.6, base, 1.5*base, 2.5*base, 20*base, 50*base)
	}
	for _, w := range []*bufio.Writer{iw, dw} {
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
	}
	st, err := inv.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range []*os.File{inv, dur} {
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return st.Size()
}

// drain reads src to io.EOF and returns the number of invocations.
func drain(tb testing.TB, src replay.Source) int64 {
	var n int64
	for {
		_, err := src.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			tb.Fatal(err)
		}
		n++
	}
}

// BenchmarkReadDay compares read throughput on one generated day of
// realistic size (see benchFunctions): the Azure 2019 reader expanding
// the day's counts, and the Azure 2021 CSV reader reading the same
// invocations written as a 2021 CSV. Both read from files (in the page
// cache after the first round); each round opens the trace afresh.
//
//	go test -timeout 600s -run '^$' -bench BenchmarkReadDay -benchtime 3x -benchmem ./replay/
func BenchmarkReadDay(b *testing.B) {
	dir := b.TempDir()
	size := writeBenchDay(b, dir)
	open2019 := func() *replay.Azure2019Reader {
		r, err := replay.NewAzure2019Reader(replay.Azure2019Config{Dir: dir, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	csvPath := filepath.Join(b.TempDir(), "day.csv")
	f, err := os.Create(csvPath)
	if err != nil {
		b.Fatal(err)
	}
	rows, err := replay.WriteCSV(f, open2019())
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(csvPath)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("one day: %d functions, %d invocations; 2019 counts file %.1f MB, the same as a 2021 CSV %.1f MB",
		benchFunctions, rows, float64(size)/1e6, float64(st.Size())/1e6)
	run := func(b *testing.B, open func() replay.Source) {
		var total int64
		for b.Loop() {
			n := drain(b, open())
			if n != rows {
				b.Fatalf("read %d invocations, want %d", n, rows)
			}
			total += n
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "inv/s")
	}
	b.Run("azure2019", func(b *testing.B) {
		run(b, func() replay.Source { return open2019() })
	})
	b.Run("azure2021-csv", func(b *testing.B) {
		var r *replay.CSVReader
		b.Cleanup(func() {
			if r != nil {
				_ = r.Close()
			}
		})
		run(b, func() replay.Source {
			if r != nil {
				_ = r.Close()
			}
			if r, err = replay.OpenTrace(csvPath); err != nil {
				b.Fatal(err)
			}
			return r
		})
	})
}
