package features

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"time"

	"github.com/strata-rl/strata/consumers/internal/gobsafe"
)

// The snapshot types mirror Partition's state with exported fields so that
// encoding/gob can write them. A snapshot restores a partition exactly: the
// batches it emits afterwards are identical to those the original would have
// emitted.

type snapStep struct {
	Tick          int64
	Rate          float64
	Mem, CPU, Que [2]float64 // value, valid (1/0)
	ConcMean      float64
	ConcPeak      float64
	Idle          []float64
}

type snapStepAcc struct {
	Tick, N, MaxStartUS   int64
	CPUMS, QueueMS, MemMB float64
	CPUN, QueueN, MemN    int64
	MaxInst, Tier         int32
	Idle                  []float64
}

type snapPeriod struct {
	Period             int64
	N                  int64
	DurSumMS           float64
	Dur, Lat           []int64
	DurN, LatN2        int64
	LatSum             float64
	LatN               int64
	Cost               float64
	CostN              int64
	Carbon             float64
	CarbonN            int64
	Cold, CldN         int64
	CPUS, MemS, QueueS float64
	CPUN, MemN, QueueN int64
	MaxInst, Tier      int32
	PeakTick           map[int64]int64
	Funcs              []string
	Placement          map[string]int64
	MemPeak            float64
}

type snapFunc struct {
	App, Fn                  string
	ClosedUS                 int64
	Closed                   bool
	HasCPU, HasMem, HasQueue bool
	Open                     []snapStepAcc
	Ring                     []snapStep
	Hours                    []snapPeriod
	PrevN                    periodCount
	Running                  [][2]int64
	MaxEnd                   int64
	HasEnd                   bool
	// Sent, SentTick and SentFlags say which row the function's next
	// operational batch sends (whole or newest step), so that batches
	// republished after a restore are the same bytes.
	Sent      bool
	SentTick  int64
	SentFlags uint8
	// MemPeak is the function's memory peak of its closed hours.
	MemPeak float64
	// ReaderValid and ReaderLast decide whether its next row may be left
	// out (state schema version 6).
	ReaderValid [3]bool
	ReaderLast  int64
}

type snapApp struct {
	App      string
	ClosedUS int64
	Closed   bool
	Days     []snapPeriod
	PrevN    periodCount
	// ByHour is the app's invocations of its closed hours by UTC hour.
	ByHour [24]int64
	// MemPeak is the largest memory_used_mb of the app's closed days.
	MemPeak float64
}

// snapIDs is the invocation ids added to one open tick, in the order added.
type snapIDs struct {
	Tick int64
	IDs  []string
}

// Snapshot is the serialisable state of a Partition. It is not versioned:
// gob matches fields by name, so a snapshot written before a field was
// added decodes with that field's zero value (OpenIDs and Duplicates came
// with deduplication; an older snapshot restores with no open ids).
type Snapshot struct {
	RunID    string
	Shard    int
	NShards  int
	Epoch    time.Time
	Started  bool
	NextTick int64
	Horizon  int64
	Final    bool
	Late     int64
	Funcs    []snapFunc
	Apps     []snapApp
	// Duplicates and OpenIDs are the deduplication state: the count of
	// duplicates rejected and the ids of the open ticks, by tick.
	Duplicates int64
	OpenIDs    []snapIDs
	// Writers, WM and WMStarted are the watermark writers' alignment
	// (schemas.Watermarks; the idle bound comes from the configuration).
	Writers   map[string]int64
	WM        int64
	WMStarted bool
}

func snapPeriodOf(pa *periodAcc) snapPeriod {
	sp := snapPeriod{
		Period: pa.period, N: pa.n, DurSumMS: pa.durSumMS,
		Dur: append([]int64(nil), pa.dur.counts...), DurN: pa.dur.n,
		Lat: append([]int64(nil), pa.lat.counts...), LatN2: pa.lat.n,
		LatSum: pa.latSum, LatN: pa.latN, Cost: pa.cost, CostN: pa.costN,
		Carbon: pa.carbon, CarbonN: pa.carbonN, Cold: pa.cold, CldN: pa.cldN,
		CPUS: pa.cpuS, MemS: pa.memS, QueueS: pa.queueS, CPUN: pa.cpuN, MemN: pa.memN, QueueN: pa.queueN,
		MaxInst: pa.maxInst, Tier: pa.tier, PeakTick: pa.peakTick, Placement: pa.placement, MemPeak: pa.memPeak,
	}
	for f := range pa.funcs {
		sp.Funcs = append(sp.Funcs, f)
	}
	return sp
}

func (sp snapPeriod) acc() *periodAcc {
	pa := newPeriod(sp.Period)
	pa.n, pa.durSumMS = sp.N, sp.DurSumMS
	pa.dur = logHist{counts: sp.Dur, n: sp.DurN}
	pa.lat = logHist{counts: sp.Lat, n: sp.LatN2}
	pa.latSum, pa.latN, pa.cost, pa.costN = sp.LatSum, sp.LatN, sp.Cost, sp.CostN
	pa.carbon, pa.carbonN, pa.cold, pa.cldN = sp.Carbon, sp.CarbonN, sp.Cold, sp.CldN
	pa.cpuS, pa.memS, pa.queueS, pa.cpuN, pa.memN, pa.queueN = sp.CPUS, sp.MemS, sp.QueueS, sp.CPUN, sp.MemN, sp.QueueN
	pa.maxInst, pa.tier, pa.memPeak = sp.MaxInst, sp.Tier, sp.MemPeak
	if sp.PeakTick != nil {
		pa.peakTick = sp.PeakTick
	}
	if sp.Placement != nil {
		pa.placement = sp.Placement
	}
	for _, f := range sp.Funcs {
		pa.funcs[f] = struct{}{}
	}
	return pa
}

// MarshalBinary encodes the partition's state.
func (p *Partition) MarshalBinary() ([]byte, error) {
	s := Snapshot{RunID: p.runID, Shard: p.shard, NShards: p.nShards, Epoch: p.epoch, Started: p.started,
		NextTick: p.nextTick, Horizon: p.horizon, Final: p.final, Late: p.late, Duplicates: p.dup,
		Writers: p.wms.Writers, WM: p.wms.WM, WMStarted: p.wms.Started}
	for _, t := range p.ids.Ticks() {
		s.OpenIDs = append(s.OpenIDs, snapIDs{Tick: t, IDs: p.ids.IDs(t)})
	}
	for _, f := range p.order {
		sf := snapFunc{App: f.app, Fn: f.fn, ClosedUS: f.closedUS, Closed: f.closed,
			HasCPU: f.hasCPU, HasMem: f.hasMem, HasQueue: f.hasQueue, PrevN: f.prevN,
			Sent: f.sent, SentTick: f.sentTick, SentFlags: f.sentFlags, MemPeak: f.memPeak,
			ReaderValid: f.readerValid, ReaderLast: f.readerLast}
		for _, o := range f.open {
			sf.Open = append(sf.Open, snapStepAcc{Tick: o.tick, N: o.n, MaxStartUS: o.maxStartUS,
				CPUMS: o.cpuMS, QueueMS: o.queueMS, MemMB: o.memMB, CPUN: o.cpuN, QueueN: o.queueN, MemN: o.memN,
				MaxInst: o.maxInst, Tier: o.tier, Idle: o.idle})
		}
		for _, sp := range f.running {
			sf.Running = append(sf.Running, [2]int64{sp.start, sp.end})
		}
		sf.MaxEnd, sf.HasEnd = f.maxEnd, f.hasEnd
		for _, st := range f.ring {
			sf.Ring = append(sf.Ring, snapStep{Tick: st.tick, Rate: st.rate, ConcMean: st.concMean, ConcPeak: st.concPeak, Idle: st.idle,
				Mem: [2]float64{st.mem.V, b2f(st.mem.Valid)}, CPU: [2]float64{st.cpu.V, b2f(st.cpu.Valid)},
				Que: [2]float64{st.que.V, b2f(st.que.Valid)}})
		}
		for _, h := range f.hours {
			sf.Hours = append(sf.Hours, snapPeriodOf(h))
		}
		s.Funcs = append(s.Funcs, sf)
	}
	for _, a := range p.appList {
		sa := snapApp{App: a.app, ClosedUS: a.closedUS, Closed: a.closed, PrevN: a.prevN, ByHour: a.byHour, MemPeak: a.memPeak}
		for _, d := range a.days {
			sa.Days = append(sa.Days, snapPeriodOf(d))
		}
		s.Apps = append(s.Apps, sa)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&s); err != nil {
		return nil, fmt.Errorf("encoding features snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// RestorePartition decodes a state written by MarshalBinary. Corrupt data
// gives an error; what it claims cannot make the decoding allocate without
// bound (gobsafe).
func RestorePartition(data []byte) (*Partition, error) {
	var s Snapshot
	if err := gobsafe.Decode(data, &s, "RunID"); err != nil {
		return nil, fmt.Errorf("decoding features snapshot: %w", err)
	}
	p := NewPartition(s.RunID, s.Shard, s.NShards, s.Epoch)
	p.started, p.nextTick, p.horizon, p.final, p.late, p.dup = s.Started, s.NextTick, s.Horizon, s.Final, s.Late, s.Duplicates
	p.wms.Writers, p.wms.WM, p.wms.Started = s.Writers, s.WM, s.WMStarted
	for _, o := range s.OpenIDs {
		p.ids.Restore(o.Tick, o.IDs)
	}
	for _, sa := range s.Apps {
		a := p.app(sa.App)
		a.closedUS, a.closed, a.prevN, a.byHour, a.memPeak = sa.ClosedUS, sa.Closed, sa.PrevN, sa.ByHour, sa.MemPeak
		for _, d := range sa.Days {
			a.days = append(a.days, d.acc())
		}
	}
	for _, sf := range s.Funcs {
		f := p.function(sf.App, sf.Fn)
		f.closedUS, f.closed, f.prevN, f.memPeak = sf.ClosedUS, sf.Closed, sf.PrevN, sf.MemPeak
		f.hasCPU, f.hasMem, f.hasQueue = sf.HasCPU, sf.HasMem, sf.HasQueue
		f.sent, f.sentTick, f.sentFlags = sf.Sent, sf.SentTick, sf.SentFlags
		f.readerValid, f.readerLast = sf.ReaderValid, sf.ReaderLast
		for _, o := range sf.Open {
			f.open = append(f.open, &stepAcc{tick: o.Tick, n: o.N, maxStartUS: o.MaxStartUS,
				cpuMS: o.CPUMS, queueMS: o.QueueMS, memMB: o.MemMB, cpuN: o.CPUN, queueN: o.QueueN, memN: o.MemN,
				maxInst: o.MaxInst, tier: o.Tier, idle: o.Idle})
		}
		for _, sp := range sf.Running {
			f.running = append(f.running, span{sp[0], sp[1]})
		}
		f.maxEnd, f.hasEnd = sf.MaxEnd, sf.HasEnd
		for i, st := range sf.Ring {
			if i < len(f.ring) {
				f.ring[i] = step{tick: st.Tick, rate: st.Rate, concMean: st.ConcMean, concPeak: st.ConcPeak, idle: st.Idle}
				f.ring[i].mem.V, f.ring[i].mem.Valid = st.Mem[0], st.Mem[1] == 1
				f.ring[i].cpu.V, f.ring[i].cpu.Valid = st.CPU[0], st.CPU[1] == 1
				f.ring[i].que.V, f.ring[i].que.Valid = st.Que[0], st.Que[1] == 1
			}
		}
		for _, h := range sf.Hours {
			f.hours = append(f.hours, h.acc())
		}
	}
	return p, nil
}
