package models_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/strata-rl/strata/experiments/models"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/schemas"
)

// TestPromoteRollbackCommand drives `strata models --promote` and
// `--rollback` against a registry: each says what the deployment serves
// now, and the command lines that lack what they need are refused.
func TestPromoteRollbackCommand(t *testing.T) {
	cks := checkpoints(t)
	js, nc := natstest.JetStream(t, "models-serve", natsbus.StreamConfig{Memory: true})
	ctx := context.Background()
	ms, err := natsbus.OpenModelStore(ctx, js, schemas.Names{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		if err := ms.PutCheckpoint(ctx, "run-a", schemas.Checkpoint{Layer: schemas.Tactical, Version: v, Data: cks[schemas.Tactical]}); err != nil {
			t.Fatal(err)
		}
	}
	url := nc.ConnectedUrl()
	for _, tc := range []struct {
		name string
		cmd  models.Command
		want string
	}{
		{"promote v1", models.Command{NATS: url, Layer: "tactical", RunID: "run-a", Deployment: "prod", Promote: "v1"}, "deployment prod serves tactical run-a/v1"},
		{"promote v2", models.Command{NATS: url, Layer: "tactical", RunID: "run-a", Deployment: "prod", Promote: "v2"}, "deployment prod serves tactical run-a/v2"},
		{"rollback", models.Command{NATS: url, Layer: "tactical", Deployment: "prod", Rollback: true}, "deployment prod serves tactical run-a/v1"},
		{"rollback past the first", models.Command{NATS: url, Layer: "tactical", Deployment: "prod", Rollback: true}, "no model to serve"},
		{"unknown version", models.Command{NATS: url, Layer: "tactical", RunID: "run-a", Deployment: "prod", Promote: "v7"}, `run run-a has no tactical checkpoint "v7"`},
		{"no run", models.Command{NATS: url, Layer: "tactical", Deployment: "prod", Promote: "v1"}, "needs --run"},
		{"no deployment", models.Command{NATS: url, Layer: "tactical", RunID: "run-a", Promote: "v1"}, "need --nats, --layer and --deployment"},
		{"both", models.Command{NATS: url, Layer: "tactical", RunID: "run-a", Deployment: "prod", Promote: "v1", Rollback: true}, "not both"},
		{"bad name", models.Command{NATS: url, Layer: "tactical", RunID: "run-a", Deployment: "a.b", Promote: "v1"}, `deployment "a.b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := tc.cmd.Run(ctx, &out)
			got := out.String()
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want it to contain %q", got, tc.want)
			}
		})
	}
	if s, ok, err := ms.ServedNow(ctx, "prod", schemas.Tactical); err != nil || !ok || s.Version != "v1" {
		t.Errorf("served now: %+v, %v, %v", s, ok, err)
	}
}
