package agents_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

func testModel(t *testing.T) *cloud.Model {
	t.Helper()
	m, err := cloud.DefaultModel()
	if err != nil {
		t.Fatalf("building model: %v", err)
	}
	return m
}

func TestNewEveryName(t *testing.T) {
	m := testModel(t)
	want := map[schemas.Layer]int{schemas.Strategic: 4, schemas.Tactical: 5, schemas.Operational: 7}
	for _, layer := range schemas.Layers {
		names := agents.Names(layer)
		if len(names) != want[layer] {
			t.Errorf("Names(%s) = %v, want %d names", layer, names, want[layer])
		}
		for _, name := range names {
			p, err := agents.New(name, layer, agents.Options{Seed: 1, Model: m})
			if err != nil {
				t.Fatalf("New(%q, %s): %v", name, layer, err)
			}
			if p.Name() != name || p.Layer() != layer || p.Version() == "" {
				t.Errorf("New(%q, %s) gave %s/%s/%q", name, layer, p.Name(), p.Layer(), p.Version())
			}
			out := &schemas.DecisionBatch{}
			st := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: layer, Tick: 1}}
			if err := p.Decide(context.Background(), st, out); err != nil || len(out.Rows) != 0 {
				t.Errorf("%s/%s on an empty batch: %d rows, %v", layer, name, len(out.Rows), err)
			}
		}
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name   string
		layer  schemas.Layer
		opts   agents.Options
		is     error
		substr string
	}{
		{"oracle", schemas.Tactical, agents.Options{}, agents.ErrUnknownPolicy, "valid names are random, greedy-latency, greedy-cost, greedy-carbon, power-tuning"},
		{"knative", schemas.Strategic, agents.Options{}, agents.ErrUnknownPolicy, "valid names are random,"},
		{"reactive", schemas.Layer("hourly"), agents.Options{}, nil, "unknown layer"},
		{"keepalive-10m", schemas.Operational, agents.Options{Params: map[string]string{"keep_warm_ms": "-5"}}, agents.ErrInvalidParam, "keep_warm_ms"},
		{"keepalive-10m:keep_warm_ms=-5", schemas.Operational, agents.Options{}, agents.ErrInvalidParam, "keep_warm_ms"},
		{"hazard-prewarm:threshold=2", schemas.Operational, agents.Options{}, agents.ErrInvalidParam, "threshold"},
		{"hazard-prewarm:speed=2", schemas.Operational, agents.Options{}, agents.ErrInvalidParam, "valid keys are threshold,"},
		{"hazard-prewarm:threshold", schemas.Operational, agents.Options{}, agents.ErrInvalidParam, "want key=value pairs"},
		{"hazard-prewarm:threshold=0.1", schemas.Operational, agents.Options{Params: map[string]string{"threshold": "0.2"}}, agents.ErrInvalidParam, "threshold given twice"},
		{"hazard-prewarm", schemas.Tactical, agents.Options{}, agents.ErrUnknownPolicy, "valid names are"},
		{"nope", schemas.Operational, agents.Options{}, agents.ErrUnknownPolicy, "hybrid-histogram, hazard-prewarm, and lstm with --models"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agents.New(tt.name, tt.layer, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.substr) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.substr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

// TestNewParamsInName checks that overrides after a colon reach the
// policy: its version names them, as with Options.Params.
func TestNewParamsInName(t *testing.T) {
	tests := []struct {
		name, version string
	}{
		{"hazard-prewarm", "1"},
		{"hazard-prewarm:threshold=0.01", "1+threshold=0.01"},
		{"hazard-prewarm:threshold=0.01,bandwidth_s=60", "1+bandwidth_s=60,threshold=0.01"},
		{"keepalive-10m:keep_warm_ms=300000", "1+keep_warm_ms=300000"},
	}
	for _, tt := range tests {
		p, err := agents.New(tt.name, schemas.Operational, agents.Options{})
		if err != nil {
			t.Fatalf("New(%q): %v", tt.name, err)
		}
		if base, _, _ := strings.Cut(tt.name, ":"); p.Name() != base || p.Version() != tt.version {
			t.Errorf("New(%q): %s version %q, want %s version %q", tt.name, p.Name(), p.Version(), base, tt.version)
		}
	}
}
