package dataset

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/strata-rl/strata/cloud"
)

// renewableCSV is the hourly 2022 renewable share of the grid zones of the
// cloud model's regions, derived from the files in shared/data/carbon as
// data/SOURCE.md says.
//
//go:embed data/renewable_2022_hourly_by_metro.csv
var renewableCSV []byte

// Renewable zones, the columns of the embedded file.
const (
	zonePJM = iota
	zoneBPAT
	zoneIE
	zoneBE
	zoneSG
	numZones
)

var zoneColumns = [numZones]string{"us_east_PJM", "us_west_BPAT", "eu_west_IE", "eu_west_BE", "ap_southeast_SG"}

// metroZone is the zone of the AWS and Azure regions of each metro, as in
// cloud.DefaultCarbonColumns (GCP's eu-west region is in Belgium).
var metroZone = [cloud.NumMetros]int{cloud.USEast: zonePJM, cloud.USWest: zoneBPAT, cloud.EUWest: zoneIE, cloud.APSoutheast: zoneSG}

// renewableSeries is the parsed file: one row per UTC hour from start.
type renewableSeries struct {
	start time.Time
	pct   [][numZones]float64
}

var (
	renewableOnce sync.Once
	renewable     *renewableSeries
	renewableErr  error
)

// loadRenewable parses the embedded file once.
func loadRenewable() (*renewableSeries, error) {
	renewableOnce.Do(func() { renewable, renewableErr = parseRenewable(renewableCSV) })
	return renewable, renewableErr
}

// parseRenewable reads a renewable-share CSV: datetime_utc followed by the
// zone columns, consecutive UTC hours, percentages in [0, 100].
func parseRenewable(b []byte) (*renewableSeries, error) {
	r := csv.NewReader(bytes.NewReader(b))
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("reading renewable CSV header: %w", err)
	}
	want := append([]string{"datetime_utc"}, zoneColumns[:]...)
	if len(header) != len(want) {
		return nil, fmt.Errorf("reading renewable CSV header: %q, want %q", header, want)
	}
	for i := range want {
		if header[i] != want[i] {
			return nil, fmt.Errorf("reading renewable CSV header: column %d is %q, want %q", i+1, header[i], want[i])
		}
	}
	s := &renewableSeries{}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading renewable CSV line %d: %w", line, err)
		}
		ts, err := time.Parse(time.RFC3339, rec[0])
		if err != nil {
			return nil, fmt.Errorf("reading renewable CSV line %d: %w", line, err)
		}
		if len(s.pct) == 0 {
			s.start = ts
		} else if want := s.start.Add(time.Duration(len(s.pct)) * time.Hour); !ts.Equal(want) {
			return nil, fmt.Errorf("reading renewable CSV line %d: timestamp %s, want %s", line, rec[0], want.Format(time.RFC3339))
		}
		var row [numZones]float64
		for z := range numZones {
			v, err := strconv.ParseFloat(rec[z+1], 64)
			if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
				return nil, fmt.Errorf("reading renewable CSV line %d column %s: %q is not a percentage", line, zoneColumns[z], rec[z+1])
			}
			row[z] = v
		}
		s.pct = append(s.pct, row)
	}
	if len(s.pct) == 0 {
		return nil, errors.New("reading renewable CSV: no rows")
	}
	return s, nil
}

// hour returns the row of the instant offsetUS microseconds after the
// series' start, floored and wrapped around the series as the carbon series
// does (a year of 2022 stands for every year).
func (s *renewableSeries) hour(offsetUS int64) int {
	const hourUS = int64(time.Hour / time.Microsecond)
	h := offsetUS / hourUS
	if offsetUS < 0 && offsetUS%hourUS != 0 {
		h--
	}
	n := int64(len(s.pct))
	return int(((h % n) + n) % n)
}
