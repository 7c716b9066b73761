package bench

import (
	"bufio"
	"context"
	"errors"
	"github.com/strata-rl/strata/cloud"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"database/sql/driver"
	"fmt"
	"net/url"
	"sync"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/sink"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// benchSinkMain runs `strata bench sink`: it generates decision and reward
// rows with the twin engine and produces them to Kafka, then measures in
// interleaved runs a raw batch insert of the rows into fresh tables
// (clickhouse-go PrepareBatch/Append/Send, or the DuckDB appender: the
// ceiling) and the sink writing them from Kafka into other fresh tables,
// and prints the ratio of the two sides' best runs as its last line. The
// temporary databases are dropped afterwards.
// SinkConfig configures the sink benchmark.
type SinkConfig struct {
	// ClickHouseDSN or DuckDBFile (exactly one) is the store: the
	// benchmark creates and drops its own databases on ClickHouse, or
	// creates the DuckDB file (which must not exist) and removes it.
	ClickHouseDSN, DuckDBFile string
	// Brokers is the Kafka the sink reads (nil: an embedded broker) and
	// Partitions the partition count of the topics it writes.
	Brokers    []string
	Partitions int
	// Rows decision and reward rows are written in batches of BatchRows,
	// Runs times on each side (interleaved; each side's best run counts).
	Rows, BatchRows, Runs int
	// Seed seeds the synthetic trace the rows come from.
	Seed int64
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
	// Logger receives the sink's log.
	Logger *slog.Logger
}

// Sink measures the sink (Kafka → store) against a raw insert of the same
// rows into the same store and prints each run and, last, the sink/raw
// ratio on stdout.
func Sink(ctx context.Context, c SinkConfig, stdout io.Writer) error {
	if (c.ClickHouseDSN == "") == (c.DuckDBFile == "") {
		return errors.New("strata bench sink needs exactly one of --clickhouse DSN or --store FILE.duckdb")
	}
	if c.Rows < 1 || c.BatchRows < 1 || c.Runs < 1 || c.Partitions < 1 {
		return errors.New("strata bench sink: --rows, --batch-rows, --runs and --partitions must be positive")
	}
	var err error
	var tg *sinkTarget
	if c.ClickHouseDSN != "" {
		tg, err = clickHouseTarget(ctx, c.ClickHouseDSN)
	} else {
		tg, err = duckDBTarget(ctx, c.DuckDBFile)
	}
	if err != nil {
		return err
	}
	defer func() {
		if err := tg.cleanup(context.WithoutCancel(ctx)); err != nil {
			c.Logger.Warn("removing the benchmark's databases", "err", err)
		}
	}()

	runID := "bench-" + strings.TrimPrefix(pipeline.NewRunID(), "run-")
	rows, err := sinkBenchRows(ctx, c.NewModel, runID, c.Rows, c.Seed)
	if err != nil {
		return err
	}
	n := rows.count()
	fmt.Fprintf(stdout, "machine: %s, %d cores, %s; store: %s; broker: %s\n", CPUModel(), runtime.NumCPU(), runtime.Version(),
		tg.name, orDefault(strings.Join(c.Brokers, ","), "embedded kfake"))
	fmt.Fprintf(stdout, "rows: %d decisions, %d rewards, 1 run (from the twin engine on the synthetic trace, seed %d)\n",
		len(rows.decisions), len(rows.rewards), c.Seed)

	sk, err := newSinkBenchKafka(ctx, rows, c.Brokers, c.Partitions, runID, c.Logger)
	if err != nil {
		return err
	}
	defer sk.close(context.WithoutCancel(ctx))
	var rawRate, sinkRate float64
	for i := range c.Runs {
		if err := tg.resetRaw(ctx); err != nil {
			return err
		}
		t0 := time.Now()
		if err := tg.raw(ctx, rows, c.BatchRows); err != nil {
			return err
		}
		d := time.Since(t0)
		rate := float64(n) / d.Seconds()
		rawRate = max(rawRate, rate)
		fmt.Fprintf(stdout, "raw %s, run %d: %d rows in %.2f s = %.0f rows/s\n", tg.rawName, i+1, n, d.Seconds(), rate)

		if err := tg.resetSink(ctx); err != nil {
			return err
		}
		sr, err := sk.run(ctx, tg.sinkStore, rows, c.BatchRows, i)
		if err != nil {
			return err
		}
		rate = float64(n) / sr.wall.Seconds()
		sinkRate = max(sinkRate, rate)
		fmt.Fprintf(stdout, "sink Kafka → %s, run %d: %d rows (%d records, %d batches) in %.2f s = %.0f rows/s (first record after %.2f s: joining the group)\n",
			tg.storeKind, i+1, n, sr.stats.Records, sr.stats.Batches, sr.wall.Seconds(), rate, sr.firstRecord.Seconds())
	}
	fmt.Fprintf(stdout, "raw ceiling (best run): %.0f rows/s; sink (best run): %.0f rows/s\n", rawRate, sinkRate)
	fmt.Fprintf(stdout, "sink/raw ratio: %.3f\n", sinkRate/rawRate)
	return nil
}

// benchRows are the rows the sink benchmark writes.
type benchRows struct {
	run       *stratapb.Run
	decisions []*stratapb.Decision
	rewards   []*stratapb.Reward
}

func (r *benchRows) count() int { return 1 + len(r.decisions) + len(r.rewards) }

// benchSinkPolicy names the fixed operational policy of the sink
// benchmark's rows.
const benchSinkPolicy = "bench-prewarm-active"

// sinkBenchRows returns n decision and reward rows (and a run row) as the
// twin writes them: the engine evaluates the synthetic trace tick by tick
// under a fixed operational policy (one pre-warmed instance for every
// function active in the last hour, none once it is not), with every
// function at the default placement, until it has emitted n rows. Like the
// closed loop's runs, that gives about one operational reward per
// decision, plus the hourly and daily rewards. The cloud model is newModel's.
func sinkBenchRows(ctx context.Context, newModel func(time.Time) (*cloud.Model, error), runID string, n int, seed int64) (*benchRows, error) {
	m, err := pipeline.ModelAt(newModel, grid.DefaultEpoch)
	if err != nil {
		return nil, err
	}
	// Function properties from the first day (enough for realistic rows).
	pb := twin.NewProfileBuilder(grid.DefaultEpoch)
	day, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("creating synthetic trace: %w", err)
	}
	for {
		in, err := day.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("deriving function properties: %w", err)
		}
		pb.Add(in)
	}
	// On GCP a pre-warmed instance is billed every tick (AWS bills
	// provisioned concurrency in blocks), so every pre-warmed function-tick
	// is scored, as in the closed loop's runs.
	pl := cloud.Placement{Provider: cloud.GCP, Metro: cloud.USEast, Tier: 3}
	eng, err := twin.NewEngine(m, twin.Config{RunID: runID, DefaultPlacement: pl, Reward: m.Config().Reward}, pb.Build(m))
	if err != nil {
		return nil, err
	}
	src, err := replay.NewSynth(replay.SynthConfig{Days: 14, Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("creating synthetic trace: %w", err)
	}
	out := &benchRows{run: &stratapb.Run{RunId: runID, StartedUnixMs: time.Now().UnixMilli(), Source: fmt.Sprintf("synthetic(days=14,seed=%d)", seed),
		Seed: seed, Speed: "max", StrategicPolicy: "none", TacticalPolicy: "none", OperationalPolicy: benchSinkPolicy,
		DefaultPlacement: "gcp/us-east/1024", TraceEpoch: grid.DefaultEpoch.Format(time.RFC3339), ConfigJson: `["bench","sink"]`}}
	type fnKey struct{ app, fn string }
	lastSeen := map[fnKey]int64{}
	var (
		tick   int64
		bucket []twin.Arrival
	)
	evaluate := func() error {
		for _, a := range bucket {
			lastSeen[fnKey{a.App, a.Func}] = tick
		}
		b := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: runID, Layer: schemas.Operational, Tick: tick,
			TickStartUS: tick * grid.OperationalTickUS, NShards: 1}}
		for f, k := range lastSeen {
			var pre int32 = 1
			if tick-k >= grid.TicksPerHour {
				// Inactive for an hour: a last decision releases the
				// pre-warmed instance.
				delete(lastSeen, f)
				pre = 0
			}
			b.Rows = append(b.Rows, schemas.DecisionRow{App: f.app, Func: f.fn, Action: pre, Prewarm: pre, Policy: benchSinkPolicy, PolicyVersion: "1"})
		}
		if len(b.Rows) > 0 {
			if err := eng.Apply(b); err != nil {
				return err
			}
		}
		o, err := eng.Tick(tick, bucket)
		if err != nil {
			return err
		}
		out.decisions = append(out.decisions, o.Decisions...)
		out.rewards = append(out.rewards, o.Rewards...)
		bucket = bucket[:0]
		tick++
		return nil
	}
	for len(out.decisions)+len(out.rewards) < n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the synthetic trace: %w", err)
		}
		// The generator emits in start order: evaluate the ticks before
		// this invocation's.
		k := grid.TickOf(in.StartUS(), grid.OperationalTickUS)
		for tick < k && len(out.decisions)+len(out.rewards) < n {
			if err := evaluate(); err != nil {
				return nil, fmt.Errorf("generating benchmark rows: %w", err)
			}
		}
		bucket = append(bucket, twin.Arrival{ID: in.ID(), App: in.App, Func: in.Func, StartUS: in.StartUS(), DurationUS: in.DurationUS, Row: in.Row})
	}
	// Keep exactly n rows: decisions first, then rewards.
	if len(out.decisions) > n {
		out.decisions = out.decisions[:n]
	}
	if len(out.decisions)+len(out.rewards) > n {
		out.rewards = out.rewards[:n-len(out.decisions)]
	}
	return out, nil
}

// sinkBenchKafka is the Kafka side of the sink benchmark: the rows'
// records, produced once to the topics every sink run reads from the start.
type sinkBenchKafka struct {
	brokers    []string
	topics     sink.Topics
	partitions int
	runID      string
	cl         *kgo.Client
	log        *slog.Logger
	// close stops the embedded broker, or on given brokers deletes the
	// scratch topics and the runs' consumer groups.
	close  func(ctx context.Context)
	groups []string
}

// newSinkBenchKafka produces the rows (untimed). With embedded Kafka (no
// brokers) it uses the strata topics of a fresh in-process broker; on
// given brokers, scratch topics that close deletes.
func newSinkBenchKafka(ctx context.Context, rows *benchRows, brokers []string, partitions int, runID string, logger *slog.Logger) (*sinkBenchKafka, error) {
	k := &sinkBenchKafka{partitions: partitions, runID: runID, log: logger,
		topics: sink.Topics{Runs: sink.TopicRuns, Decisions: schemas.TopicDecisions, Rewards: schemas.TopicRewards, DeadLetter: schemas.TopicDeadLetter}}
	var stopBroker func()
	if len(brokers) > 0 {
		p := "strata.bench." + runID + "."
		k.topics = sink.Topics{Runs: p + "runs", Decisions: p + "decisions", Rewards: p + "rewards", Outcomes: p + "outcomes", DeadLetter: p + "deadletter"}
	} else {
		emb, err := kafka.StartEmbedded(partitions)
		if err != nil {
			return nil, err
		}
		stopBroker, brokers = emb.Close, emb.Brokers()
	}
	k.brokers = brokers
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, logger), kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(1<<20))...)
	if err != nil {
		if stopBroker != nil {
			stopBroker()
		}
		return nil, fmt.Errorf("creating bench kafka client: %w", err)
	}
	k.cl = cl
	all := []string{k.topics.Runs, k.topics.Decisions, k.topics.Rewards, k.topics.DeadLetter}
	k.close = func(ctx context.Context) {
		if stopBroker != nil {
			cl.Close()
			stopBroker()
			return
		}
		adm := kadm.NewClient(cl)
		if _, err := adm.DeleteTopics(ctx, append(all, k.topics.Outcomes)...); err != nil {
			logger.Warn("deleting the benchmark's topics", "err", err)
		}
		if len(k.groups) > 0 {
			if _, err := adm.DeleteGroups(ctx, k.groups...); err != nil {
				logger.Warn("deleting the benchmark's consumer groups", "groups", k.groups, "err", err)
			}
		}
		cl.Close()
	}
	if err := kafka.EnsureTopics(ctx, cl, int32(partitions), all...); err != nil {
		k.close(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := produceRows(ctx, cl, k.topics, rows); err != nil {
		k.close(context.WithoutCancel(ctx))
		return nil, err
	}
	return k, nil
}

// sinkResult is what one sink run measured.
type sinkResult struct {
	wall, firstRecord time.Duration
	stats             sink.Stats
}

// run times one sink, in a consumer group of its own, from its start
// until it has written every row to st.
func (k *sinkBenchKafka) run(ctx context.Context, st sink.Writer, rows *benchRows, batchRows, i int) (sinkResult, error) {
	var res sinkResult
	group := fmt.Sprintf("strata-bench-sink-%s-%d", k.runID, i)
	k.groups = append(k.groups, group)
	sk, err := sink.New(ctx, sink.Config{Brokers: k.brokers, Group: group, Topics: k.topics,
		Partitions: k.partitions, BatchRows: batchRows}, st, k.log.With("role", "sink"), nil)
	if err != nil {
		return res, err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	exited := make(chan struct{})
	var runErr error
	t0 := time.Now()
	go func() {
		defer close(exited)
		runErr = sk.Run(sctx)
	}()
	watched := make(chan struct{})
	var firstRecord time.Duration
	go func() {
		// The first record marks the end of joining the group.
		defer close(watched)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for sk.Stats().Records == 0 {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
		firstRecord = time.Since(t0)
	}()
	err = pipeline.WaitSink(ctx, sk, exited)
	res.wall = time.Since(t0)
	stop()
	<-exited
	<-watched
	res.stats, res.firstRecord = sk.Stats(), firstRecord
	if err != nil {
		return res, errors.Join(fmt.Errorf("waiting for the sink: %w", err), runErr)
	}
	if runErr != nil {
		return res, fmt.Errorf("running the sink: %w", runErr)
	}
	return res, nil
}

// produceRows writes the rows to their topics, keyed by app as the twin
// keys them, and waits until every one is acknowledged.
func produceRows(ctx context.Context, cl *kgo.Client, topics sink.Topics, rows *benchRows) error {
	var (
		mu   sync.Mutex
		perr error
	)
	produce := func(topic, key string, m proto.Message) error {
		v, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return fmt.Errorf("encoding a record for %s: %w", topic, err)
		}
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = errors.Join(perr, err)
				mu.Unlock()
			}
		})
		return nil
	}
	if err := produce(topics.Runs, rows.run.GetRunId(), rows.run); err != nil {
		return err
	}
	for _, d := range rows.decisions {
		if err := produce(topics.Decisions, d.GetApp(), d); err != nil {
			return err
		}
	}
	for _, r := range rows.rewards {
		if err := produce(topics.Rewards, r.GetApp(), r); err != nil {
			return err
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing benchmark records: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if perr != nil {
		return fmt.Errorf("producing benchmark records: %w", perr)
	}
	return nil
}

// sinkTarget is one store the sink benchmark writes to: a store for the
// sink and a raw insert path into other, fresh tables of the same kind.
type sinkTarget struct {
	name, storeKind, rawName string
	sinkStore                store.Store
	// resetSink and resetRaw (re)create empty tables for the sink and the
	// raw insert; raw inserts the rows in batches of the given size.
	resetSink, resetRaw func(ctx context.Context) error
	raw                 func(ctx context.Context, rows *benchRows, batch int) error
	cleanup             func(ctx context.Context) error
}

// clickHouseTarget creates two fresh databases on the server of dsn: one
// for the sink's store and one for the raw clickhouse-go inserts; cleanup
// drops both.
func clickHouseTarget(ctx context.Context, dsn string) (*sinkTarget, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing clickhouse dsn: %w", err)
	}
	id := fmt.Sprintf("strata_bench_%d", time.Now().UnixNano())
	sinkDB, rawDB := id+"_sink", id+"_raw"
	withDB := func(db string) string {
		v := *u
		v.Path = "/" + db
		return v.String()
	}
	var closers []func() error
	tg := &sinkTarget{name: "ClickHouse " + u.Host + "/" + sinkDB, storeKind: "ClickHouse", rawName: "clickhouse-go batch insert"}
	tg.cleanup = func(ctx context.Context) error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c())
		}
		admin, err := store.OpenClickHouse(ctx, withDB("default"))
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		defer func() { _ = admin.Close() }()
		for _, db := range []string{sinkDB, rawDB} {
			if err := admin.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
				errs = append(errs, fmt.Errorf("dropping clickhouse database %s: %w", db, err))
			}
		}
		return errors.Join(errs...)
	}
	sinkSt, err := store.OpenClickHouse(ctx, withDB(sinkDB))
	if err != nil {
		return nil, errors.Join(err, tg.cleanup(ctx))
	}
	closers = append(closers, sinkSt.Close)
	tg.sinkStore = sinkSt
	if err := sinkSt.EnsureSchema(ctx); err != nil {
		return nil, errors.Join(err, tg.cleanup(ctx))
	}
	rawSt, err := store.OpenClickHouse(ctx, withDB(rawDB))
	if err != nil {
		return nil, errors.Join(err, tg.cleanup(ctx))
	}
	closers = append(closers, rawSt.Close)
	reset := func(st *store.ClickHouse) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			for _, t := range []string{schemas.TableRuns, schemas.TableDecisions, schemas.TableRewards} {
				if err := st.Conn().Exec(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
					return fmt.Errorf("dropping clickhouse table %s: %w", t, err)
				}
			}
			return st.EnsureSchema(ctx)
		}
	}
	tg.resetSink, tg.resetRaw = reset(sinkSt), reset(rawSt)
	conn := rawSt.Conn()
	tg.raw = func(ctx context.Context, rows *benchRows, batch int) error {
		insert := func(table string, n int, row func(i int) []any) error {
			q := "INSERT INTO " + table + " (" + quotedColumns(table) + ")"
			for lo := 0; lo < n; lo += batch {
				b, err := conn.PrepareBatch(ctx, q)
				if err != nil {
					return fmt.Errorf("preparing raw insert into %s: %w", table, err)
				}
				for i := lo; i < min(lo+batch, n); i++ {
					if err := b.Append(row(i)...); err != nil {
						_ = b.Abort()
						return fmt.Errorf("appending raw row %d of %s: %w", i, table, err)
					}
				}
				if err := b.Send(); err != nil {
					return fmt.Errorf("sending raw insert into %s: %w", table, err)
				}
			}
			return nil
		}
		return rawInsert(rows, insert)
	}
	return tg, nil
}

// duckDBTarget creates DuckDB file path for the sink's store and path.raw
// for the raw appender; cleanup removes both. path must not exist.
func duckDBTarget(ctx context.Context, path string) (*sinkTarget, error) {
	rawPath := path + ".raw"
	for _, p := range []string{path, rawPath} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("strata bench sink --store %s: %s exists; the benchmark creates and removes its files", path, p)
		}
	}
	var closers []func() error
	tg := &sinkTarget{name: "DuckDB " + path, storeKind: "DuckDB", rawName: "DuckDB appender"}
	tg.cleanup = func(context.Context) error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c())
		}
		for _, p := range []string{path, path + ".wal", rawPath, rawPath + ".wal"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
			}
		}
		return errors.Join(errs...)
	}
	sinkSt, err := store.OpenDuckDB(ctx, path)
	if err != nil {
		return nil, errors.Join(err, tg.cleanup(ctx))
	}
	closers = append(closers, sinkSt.Close)
	tg.sinkStore = sinkSt
	if err := sinkSt.EnsureSchema(ctx); err != nil {
		return nil, errors.Join(err, tg.cleanup(ctx))
	}
	rawSt, err := store.OpenDuckDB(ctx, rawPath)
	if err != nil {
		return nil, errors.Join(err, tg.cleanup(ctx))
	}
	closers = append(closers, rawSt.Close)
	reset := func(st *store.DuckDB) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			for _, t := range []string{schemas.TableRuns, schemas.TableDecisions, schemas.TableRewards} {
				if _, err := st.DB().ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
					return fmt.Errorf("dropping duckdb table %s: %w", t, err)
				}
			}
			return st.EnsureSchema(ctx)
		}
	}
	tg.resetSink, tg.resetRaw = reset(sinkSt), reset(rawSt)
	db := rawSt.DB()
	tg.raw = func(ctx context.Context, rows *benchRows, batch int) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("taking a raw duckdb connection: %w", err)
		}
		defer func() { _ = conn.Close() }()
		insert := func(table string, n int, row func(i int) []any) error {
			return conn.Raw(func(dc any) error {
				drv, ok := dc.(driver.Conn)
				if !ok {
					return fmt.Errorf("unexpected duckdb connection type %T", dc)
				}
				vals := make([]driver.Value, 0, 32)
				for lo := 0; lo < n; lo += batch {
					a, err := duckdb.NewAppender(drv, "", "main", table)
					if err != nil {
						return fmt.Errorf("creating raw appender on %s: %w", table, err)
					}
					for i := lo; i < min(lo+batch, n); i++ {
						vals = vals[:0]
						for _, v := range row(i) {
							if p, ok := v.(*float64); ok {
								if p == nil {
									v = nil
								} else {
									v = *p
								}
							}
							vals = append(vals, v)
						}
						if err := a.AppendRow(vals...); err != nil {
							_ = a.Close()
							return fmt.Errorf("appending raw row %d of %s: %w", i, table, err)
						}
					}
					if err := a.Close(); err != nil {
						return fmt.Errorf("flushing raw appender on %s: %w", table, err)
					}
				}
				return nil
			})
		}
		return rawInsert(rows, insert)
	}
	return tg, nil
}

// rawInsert hands the rows, table by table, to insert as column values in
// the order of store.Columns (the raw path converts the records itself),
// with the decisions' and rewards' written column (the wall clock, to the
// second) last, as the store fills it.
func rawInsert(rows *benchRows, insert func(table string, n int, row func(i int) []any) error) error {
	r := rows.run
	written := time.Now().UTC().Truncate(time.Second)
	if err := insert(schemas.TableRuns, 1, func(int) []any { return store.RunValues(r) }); err != nil {
		return err
	}
	if err := insert(schemas.TableDecisions, len(rows.decisions), func(i int) []any {
		d := rows.decisions[i]
		var carried uint8
		if d.Carried {
			carried = 1
		}
		return []any{d.RunId, d.Layer, d.Tick, d.TickMs, d.App, d.Func, d.Policy, d.PolicyVersion, d.Action,
			d.Provider, d.Region, d.MemoryMb, d.Prewarm, d.KeepWarmMs, d.LogProb, d.Value, carried, written}
	}); err != nil {
		return err
	}
	return insert(schemas.TableRewards, len(rows.rewards), func(i int) []any {
		w := rows.rewards[i]
		return []any{w.RunId, w.Layer, w.Tick, w.TickMs, w.App, w.Func, w.Reward, w.RCost, w.RPerf, w.RCarbon,
			w.SlaPenalty, w.Invocations, w.ColdStarts, w.SlaViolations, w.CostUsd, w.PrewarmCostUsd, w.CarbonG,
			w.LatencyP50Ms, w.LatencyP95Ms, w.PredError, w.Underprovisioned, w.OracleReward, w.Regret, written}
	})
}

// quotedColumns is the column list of an INSERT into table: named and
// quoted, as ClickHouse 18.16 needs for a batch insert.
func quotedColumns(table string) string {
	cols := store.Columns(table)
	for i, c := range cols {
		cols[i] = `"` + c + `"`
	}
	return strings.Join(cols, ", ")
}

// CPUModel is the machine's CPU model from /proc/cpuinfo, or its
// architecture where there is none: the benchmarks print it.
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
