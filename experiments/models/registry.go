package models

import (
	"context"
	"fmt"

	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// Registry is the JetStream model registry as this package reads it
// (natsbus.ModelStore).
type Registry interface {
	Indexed(ctx context.Context) ([]natsbus.RunLayer, error)
	Index(ctx context.Context, runID string, l schemas.Layer) ([]natsbus.IndexEntry, error)
	Object(ctx context.Context, name string) ([]byte, error)
}

// ReadRegistry describes the checkpoints the learners published to reg,
// oldest first per run and layer: every run's, or run's alone when it is
// not empty; every layer's, or layer's alone. Each checkpoint is read and
// inspected when inspect is true; otherwise only its index entry fills
// Source, Run, Layer, Version, InForce and Bytes.
func ReadRegistry(ctx context.Context, reg Registry, run string, layer schemas.Layer, inspect bool) ([]Info, error) {
	idx, err := reg.Indexed(ctx)
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, rl := range idx {
		if run != "" && rl.Run != run || layer != "" && rl.Layer != layer {
			continue
		}
		entries, err := reg.Index(ctx, rl.Run, rl.Layer)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			info := Info{Source: e.Object, Layer: rl.Layer, Version: e.Version, Bytes: e.Bytes}
			if inspect {
				data, err := reg.Object(ctx, e.Object)
				if err != nil {
					return nil, err
				}
				if info, err = Inspect(e.Object, data); err != nil {
					return nil, err
				}
				if info.Layer != rl.Layer {
					return nil, fmt.Errorf("inspecting %s: a %s checkpoint in the %s index", e.Object, info.Layer, rl.Layer)
				}
			}
			info.Run = rl.Run
			info.InForce = &e.InForce
			out = append(out, info)
		}
	}
	return out, nil
}
