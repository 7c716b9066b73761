package dataset

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// ScalerFormat is scaler.json's format version.
const ScalerFormat = "dataset-scaler/1"

// Scaler is scaler.json: a robust scaler per feature, fitted on the
// training split's rows only.
type Scaler struct {
	// Format is ScalerFormat.
	Format string `json:"format"`
	// Method says how to apply it.
	Method string `json:"method"`
	// FittedOn names the split and its days; Rows counts its rows.
	FittedOn string `json:"fitted_on"`
	Days     string `json:"days"`
	Rows     int64  `json:"rows"`
	// Features holds one entry per feature, in column order.
	Features []ScalerFeature `json:"features"`
}

// ScalerFeature is the robust scaler of one feature.
type ScalerFeature struct {
	// Name is the feature's column.
	Name string `json:"name"`
	// Median, Q25 and Q75 are the training values' quantiles (linear
	// interpolation between order statistics, numpy's default).
	Median float64 `json:"median"`
	Q25    float64 `json:"q25"`
	Q75    float64 `json:"q75"`
	// IQR is Q75 − Q25; Scale is IQR, or 1 when IQR is 0 (ZeroIQR).
	IQR     float64 `json:"iqr"`
	Scale   float64 `json:"scale"`
	ZeroIQR bool    `json:"zero_iqr"`
	// Min and Max bound the training values.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// scalerMethod is Scaler.Method.
const scalerMethod = "scaled = (raw - median) / scale; scale = q75 - q25, or 1 where q75 = q25 (zero_iqr: the feature is only centred); quantiles by linear interpolation between the sorted training values (numpy's default)"

// Transform returns the scaled value of feature i (column order).
func (s *Scaler) Transform(i int, raw float64) float64 {
	f := &s.Features[i]
	return (raw - f.Median) / f.Scale
}

// fitScaler fits the scaler on the training split's file, one column at a
// time: each column's values are read back and sorted (8 bytes per
// training row at a time).
func fitScaler(ctx context.Context, trainPath string, split Split, rows int64) (*Scaler, error) {
	s := &Scaler{Format: ScalerFormat, Method: scalerMethod, FittedOn: split.Name, Days: split.Days(), Rows: rows}
	for _, f := range features {
		v, err := readColumn(ctx, trainPath, f.Name)
		if err != nil {
			return nil, fmt.Errorf("fitting the scaler: %w", err)
		}
		if int64(len(v)) != rows {
			return nil, fmt.Errorf("fitting the scaler: %s has %d values, want %d", f.Name, len(v), rows)
		}
		s.Features = append(s.Features, fitFeature(f.Name, v))
	}
	return s, nil
}

// fitFeature sorts v and returns its robust scaler.
func fitFeature(name string, v []float64) ScalerFeature {
	slices.Sort(v)
	sf := ScalerFeature{Name: name, Median: quantile(v, 0.5), Q25: quantile(v, 0.25), Q75: quantile(v, 0.75)}
	if len(v) > 0 {
		sf.Min, sf.Max = v[0], v[len(v)-1]
	}
	sf.IQR = sf.Q75 - sf.Q25
	sf.Scale = sf.IQR
	if !(sf.IQR > 0) {
		sf.Scale, sf.ZeroIQR = 1, true
	}
	return sf
}

// quantile returns the q-quantile of sorted v by linear interpolation
// between order statistics (position q·(n−1)); 0 for no values.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	pos := q * float64(len(v)-1)
	lo := int(math.Floor(pos))
	if lo >= len(v)-1 {
		return v[len(v)-1]
	}
	return v[lo] + (pos-float64(lo))*(v[lo+1]-v[lo])
}

// marshalIndent is json.MarshalIndent with a final newline.
func marshalIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
