package cloud

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

//go:embed data/carbon_2022_hourly_by_metro.csv
var carbonCSV []byte

// CarbonSeries is an hourly grid carbon-intensity table: one column of
// gCO2e/kWh values per grid zone and method, one row per UTC hour from
// Start. It is read-only after parsing.
type CarbonSeries struct {
	// Start is the UTC instant of the first row.
	Start time.Time
	// Hours is the number of rows.
	Hours int
	names []string
	cols  [][]float64
}

// carbonSeriesStart is the first hour of the embedded 2022 series.
var carbonSeriesStart = time.Date(2022, time.January, 1, 0, 0, 0, 0, time.UTC)

// Columns returns the names of the numeric columns, in file order.
func (s *CarbonSeries) Columns() []string { return append([]string(nil), s.names...) }

// Column returns the index of the column called name.
func (s *CarbonSeries) Column(name string) (int, error) {
	for i, n := range s.names {
		if n == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("finding carbon column %q: %w", name, ErrUnknownName)
}

// HourIndex returns the row holding wall-clock instant t. Instants outside
// the series wrap around modulo its length (a year of 2022 stands for every
// year), so every instant has an intensity.
func (s *CarbonSeries) HourIndex(t time.Time) int {
	h := int64(t.Sub(s.Start) / time.Hour)
	if t.Before(s.Start) && t.Sub(s.Start)%time.Hour != 0 {
		h-- // floor, not truncation, before the start
	}
	n := int64(s.Hours)
	return int(((h % n) + n) % n)
}

// hourOf returns the row of the instant offsetUS microseconds after Start,
// as HourIndex does (floor, wrapped around the series).
func (s *CarbonSeries) hourOf(offsetUS int64) int {
	h := floorHour(offsetUS)
	n := int64(s.Hours)
	if h >= 0 && h < n {
		return int(h) // within the series: no wrapping (and no division)
	}
	return int(((h % n) + n) % n)
}

// hourUS is an hour in microseconds.
const hourUS = int64(time.Hour / time.Microsecond)

// floorHour returns the hour holding the instant offsetUS microseconds
// after the series' start: floor, not truncation, before the start.
func floorHour(offsetUS int64) int64 {
	h := offsetUS / hourUS
	if offsetUS < 0 && offsetUS%hourUS != 0 {
		h--
	}
	return h
}

// At returns the intensity (gCO2e/kWh) of column col in row hour.
func (s *CarbonSeries) At(col, hour int) float64 { return s.cols[col][hour] }

// parseCarbonCSV reads the joined hourly CSV: a datetime_utc column followed
// by numeric columns; boolean flag columns are skipped. Blank or non-numeric
// cells are filled from the previous hour (none occur in the embedded file).
func parseCarbonCSV(b []byte) (*CarbonSeries, error) {
	r := csv.NewReader(bytes.NewReader(b))
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("reading carbon CSV header: %w", err)
	}
	if len(header) < 2 || header[0] != "datetime_utc" {
		return nil, fmt.Errorf("reading carbon CSV header: first column is %q, want datetime_utc", header[0])
	}
	s := &CarbonSeries{Start: carbonSeriesStart}
	var idx []int
	line := 1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("reading carbon CSV line %d: %w", line, err)
		}
		if idx == nil { // the first row decides which columns are numeric
			for i := 1; i < len(rec); i++ {
				if _, err := strconv.ParseFloat(rec[i], 64); err == nil {
					idx = append(idx, i)
					s.names = append(s.names, header[i])
					s.cols = append(s.cols, make([]float64, 0, 8760))
				}
			}
			ts, err := time.Parse(time.RFC3339, rec[0])
			if err != nil {
				return nil, fmt.Errorf("reading carbon CSV line %d: %w", line, err)
			}
			s.Start = ts
		}
		want := s.Start.Add(time.Duration(s.Hours) * time.Hour)
		if ts, err := time.Parse(time.RFC3339, rec[0]); err != nil || !ts.Equal(want) {
			return nil, fmt.Errorf("reading carbon CSV line %d: timestamp %q, want %s", line, rec[0], want.Format(time.RFC3339))
		}
		for k, i := range idx {
			v, err := strconv.ParseFloat(rec[i], 64)
			if err != nil || math.IsNaN(v) || v < 0 {
				if s.Hours == 0 {
					return nil, fmt.Errorf("reading carbon CSV line %d column %s: %q", line, header[i], rec[i])
				}
				v = s.cols[k][s.Hours-1]
			}
			s.cols[k] = append(s.cols[k], v)
		}
		s.Hours++
	}
	if s.Hours == 0 {
		return nil, fmt.Errorf("reading carbon CSV: no rows")
	}
	return s, nil
}

// CarbonMode selects how grid carbon intensity is looked up.
type CarbonMode uint8

const (
	// CarbonHourlyLCA uses the hourly 2022 series, life-cycle (LCA) columns.
	// This is the default.
	CarbonHourlyLCA CarbonMode = iota
	// CarbonHourlyDirect uses the hourly 2022 series, direct-emission
	// columns where they exist (us-west has only a life-cycle series).
	CarbonHourlyDirect
	// CarbonStatic uses the catalog's static per-region factor (CCF).
	CarbonStatic
)

// String returns the mode's name.
func (m CarbonMode) String() string {
	switch m {
	case CarbonHourlyLCA:
		return "hourly-lca"
	case CarbonHourlyDirect:
		return "hourly-direct"
	case CarbonStatic:
		return "static"
	}
	return fmt.Sprintf("carbon-mode(%d)", uint8(m))
}

// DefaultCarbonColumns returns the carbon CSV column used for each provider's
// region in each metro under mode (empty for CarbonStatic). The zone mapping
// follows data/CARBON_SOURCE.md §2: PJM for us-east (a proxy, ASSUMED, for
// GCP's South Carolina region), BPAT for us-west, Ireland for AWS eu-west-1
// and Azure northeurope, Belgium for GCP europe-west1, Singapore for
// ap-southeast.
func DefaultCarbonColumns(mode CarbonMode) [NumProviders][NumMetros]string {
	var out [NumProviders][NumMetros]string
	var suffix string
	switch mode {
	case CarbonHourlyLCA:
		suffix = "_em_lca"
	case CarbonHourlyDirect:
		suffix = "_em_direct"
	default:
		return out
	}
	for p := range Provider(NumProviders) {
		eu := "eu_west_IE"
		if p == GCP {
			eu = "eu_west_BE"
		}
		out[p] = [NumMetros]string{
			USEast:      "us_east_PJM" + suffix,
			USWest:      "us_west_BPAT_eia_ipcc_lca", // the only us-west series
			EUWest:      eu + suffix,
			APSoutheast: "ap_southeast_SG" + suffix,
		}
	}
	return out
}
