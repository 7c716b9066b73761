package schemas

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The column constructors below build Arrow arrays straight from Go slices,
// without per-value builder calls: state batches are encoded once per tick
// per shard, so this is the hot path of the feature service.

// bitmap returns an Arrow validity bitmap for valid and its null count, or
// (nil, 0) when every value is valid.
func bitmap(valid []bool) (*memory.Buffer, int) {
	nulls := 0
	for _, v := range valid {
		if !v {
			nulls++
		}
	}
	if nulls == 0 {
		return nil, 0
	}
	b := make([]byte, (len(valid)+7)/8)
	for i, v := range valid {
		if v {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return memory.NewBufferBytes(b), nulls
}

func float64Col(vals []float64, valid []bool) arrow.Array {
	var vb *memory.Buffer
	nulls := 0
	if valid != nil {
		vb, nulls = bitmap(valid)
	}
	d := array.NewData(arrow.PrimitiveTypes.Float64, len(vals),
		[]*memory.Buffer{vb, memory.NewBufferBytes(arrow.Float64Traits.CastToBytes(vals))}, nil, nulls, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func int64Col(vals []int64) arrow.Array {
	d := array.NewData(arrow.PrimitiveTypes.Int64, len(vals),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(vals))}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func int32Col(vals []int32) arrow.Array {
	d := array.NewData(arrow.PrimitiveTypes.Int32, len(vals),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(vals))}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func stringCol(vals []string) arrow.Array {
	offsets := make([]int32, len(vals)+1)
	size := 0
	for _, v := range vals {
		size += len(v)
	}
	data := make([]byte, 0, size)
	for i, v := range vals {
		data = append(data, v...)
		offsets[i+1] = int32(len(data))
	}
	d := array.NewData(arrow.BinaryTypes.String, len(vals),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets)), memory.NewBufferBytes(data)}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

// seqCol builds a List<float64> sequence column from the concatenated
// values of its rows (each row's newest steps, oldest first), the n+1
// offsets of the rows and, when valid is not nil, the values' validity.
func seqCol(vals []float64, valid []bool, offsets []int32) arrow.Array {
	child := float64Col(vals, valid)
	defer child.Release()
	d := array.NewData(seqType, len(offsets)-1,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets))}, []arrow.ArrayData{child.Data()}, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

// listCol builds a List<float64> column from the concatenated values and
// the n+1 offsets of its rows.
func listCol(vals []float64, offsets []int32) arrow.Array {
	child := float64Col(vals, nil)
	defer child.Release()
	d := array.NewData(idleType, len(offsets)-1,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets))}, []arrow.ArrayData{child.Data()}, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func valueCol(vs []Value) arrow.Array {
	vals := make([]float64, len(vs))
	valid := make([]bool, len(vs))
	for i, v := range vs {
		vals[i], valid[i] = v.V, v.Valid
	}
	return float64Col(vals, valid)
}

func operationalColumns(rows []OperationalRow) []arrow.Array {
	n := len(rows)
	apps, fns := make([]string, n), make([]string, n)
	inv, last := make([]int64, n), make([]int64, n)
	total := 0
	for i := range rows {
		total += rows[i].wireSteps()
	}
	rate, sin := make([]float64, 0, total), make([]float64, 0, total)
	cmean, cpeak := make([]float64, 0, total), make([]float64, 0, total)
	offs := make([]int32, n+1)
	idleOff := make([]int32, n+1)
	var idle []float64
	var vals [3][]float64
	var valid [3][]bool
	for k := range vals {
		vals[k] = make([]float64, 0, total)
		valid[k] = make([]bool, 0, total)
	}
	for i := range rows {
		r := &rows[i]
		apps[i], fns[i], inv[i], last[i] = r.App, r.Func, r.Invocations, r.LastStartUS
		from := SeqLen - r.wireSteps()
		rate = append(rate, r.RequestRate[from:]...)
		sin = append(sin, r.HourSin[from:]...)
		cmean = append(cmean, r.ConcurrencyMean[from:]...)
		cpeak = append(cpeak, r.ConcurrencyPeak[from:]...)
		offs[i+1] = int32(len(rate))
		if !r.Left {
			idle = append(idle, r.IdleTimesS...)
		}
		idleOff[i+1] = int32(len(idle))
		for k, src := range [3]*[SeqLen]Value{&r.MemoryUtil, &r.CPUUtil, &r.QueueDepth} {
			for _, v := range src[from:] {
				vals[k], valid[k] = append(vals[k], v.V), append(valid[k], v.Valid)
			}
		}
	}
	return []arrow.Array{stringCol(apps), stringCol(fns), int64Col(inv), int64Col(last),
		seqCol(rate, nil, offs), seqCol(vals[0], valid[0], offs), seqCol(vals[1], valid[1], offs), seqCol(vals[2], valid[2], offs), seqCol(sin, nil, offs),
		seqCol(cmean, nil, offs), seqCol(cpeak, nil, offs), listCol(idle, idleOff)}
}

func tacticalColumns(rows []TacticalRow) []arrow.Array {
	n := len(rows)
	apps, fns, prov, reg := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	inv := make([]int64, n)
	mem, peakHour, hour := make([]int32, n), make([]int32, n), make([]int32, n)
	var f [6][]float64 // request_rate, peak_rate, duration_mean, duration_p95, trend, memory_peak
	for k := range f {
		f[k] = make([]float64, n)
	}
	var v [8][]Value
	for k := range v {
		v[k] = make([]Value, n)
	}
	for i := range rows {
		r := &rows[i]
		apps[i], fns[i], prov[i], reg[i], inv[i], mem[i] = r.App, r.Func, r.Provider, r.Region, r.Invocations, r.MemoryMB
		f[0][i], f[1][i], f[2][i], f[3][i], f[4][i], f[5][i] = r.RequestRate, r.PeakRate, r.DurationMeanMS, r.DurationP95MS, r.Trend, r.MemoryPeakMB
		peakHour[i], hour[i] = r.AppPeakHour, r.Hour
		for k, x := range [8]Value{r.LatencyMeanMS, r.LatencyP95MS, r.CostUSD, r.CarbonG, r.MemoryUtil, r.CPUUtil, r.QueueDepth, r.ColdStartRate} {
			v[k][i] = x
		}
	}
	cols := []arrow.Array{stringCol(apps), stringCol(fns), int64Col(inv),
		float64Col(f[0], nil), float64Col(f[1], nil), float64Col(f[2], nil), float64Col(f[3], nil)}
	for k := range v {
		cols = append(cols, valueCol(v[k]))
	}
	return append(cols, stringCol(prov), stringCol(reg), int32Col(mem), float64Col(f[4], nil),
		float64Col(f[5], nil), int32Col(peakHour), int32Col(hour))
}

func strategicColumns(rows []StrategicRow) []arrow.Array {
	n := len(rows)
	apps := make([]string, n)
	fns, hours := make([]int32, n), make([]int32, n)
	inv := make([]int64, n)
	var f [5][]float64 // request_rate, peak_hour_rate, duration_mean, duration_p95, trend
	for k := range f {
		f[k] = make([]float64, n)
	}
	var v [7][]Value
	for k := range v {
		v[k] = make([]Value, n)
	}
	for i := range rows {
		r := &rows[i]
		apps[i], fns[i], hours[i], inv[i] = r.App, r.Functions, r.ActiveHours, r.Invocations
		f[0][i], f[1][i], f[2][i], f[3][i], f[4][i] = r.RequestRate, r.PeakHourRate, r.DurationMeanMS, r.DurationP95MS, r.Trend
		for k, x := range [7]Value{r.LatencyMeanMS, r.LatencyP95MS, r.CostUSD, r.CarbonG, r.ColdStartRate, r.CPUUtil, r.MemoryUtil} {
			v[k][i] = x
		}
	}
	cols := []arrow.Array{stringCol(apps), int32Col(fns), int64Col(inv), float64Col(f[0], nil), float64Col(f[1], nil),
		int32Col(hours), float64Col(f[2], nil), float64Col(f[3], nil)}
	for k := range v {
		cols = append(cols, valueCol(v[k]))
	}
	prov, reg := make([]string, n), make([]string, n)
	mem, peakHour := make([]int32, n), make([]int32, n)
	peak := make([]float64, n)
	for i := range rows {
		r := &rows[i]
		prov[i], reg[i], mem[i], peak[i], peakHour[i] = r.Provider, r.Region, r.MemoryMB, r.MemoryPeakMB, r.AppPeakHour
	}
	return append(cols, float64Col(f[4], nil), stringCol(prov), stringCol(reg), int32Col(mem), float64Col(peak, nil), int32Col(peakHour))
}
