package schemas

// Tables of the store: infra/store creates them (ClickHouse or DuckDB) and
// consumers/sink fills them from the twin's topics.
const (
	// TableRuns holds one row per run (stratapb.Run).
	TableRuns = "runs"
	// TableDecisions holds the decisions (stratapb.Decision).
	TableDecisions = "decisions"
	// TableRewards holds the rewards (stratapb.Reward).
	TableRewards = "rewards"
	// TableOutcomes holds the invocation outcomes (stratapb.Outcome).
	TableOutcomes = "outcomes"
	// TableLatencyHist holds each run's latency histogram per trace day
	// (stratapb.LatencyBucket, schemas.LatencyHistogram), written by the
	// workflows at a run's end.
	TableLatencyHist = "latency_hist"
)
