//go:build integration

package bench_test

import (
	"testing"

	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/pipeline"
)

// TestIntegrationIngest runs the ingest benchmark on the real Kafka of
// STRATA_KAFKA (infra/scripts/up.sh), under a prefix of its own; its
// scratch topics carry the run id and are deleted after each run.
func TestIntegrationIngest(t *testing.T) {
	k := kafkatest.Real(t, 2)
	runIngest(t, pipeline.Config{Brokers: k.Brokers, Names: k.Names, Partitions: 2}, "json", 5)
}
