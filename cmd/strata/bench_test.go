package main

import (
	"bytes"
	"context"
	"testing"
)

func TestBenchUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{nil, {"nope"}, {"sink"}, {"sink", "--clickhouse", "clickhouse://x:9000", "--store", "x.duckdb"}} {
		if err := benchMain(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("strata bench %v: want a usage error", args)
		}
	}
}
