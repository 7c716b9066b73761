package main

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-rl/strata/experiments/models"
	"github.com/strata-rl/strata/pipeline/roleconf"
)

// modelsMain runs `strata models`: list and inspect checkpoints.
func modelsMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c models.Command
	fs := newFlagSet("strata models", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: strata models [--json] PATH...
       strata models --nats URL [--prefix P] [--run ID] [--layer L] [--inspect] [--json]
       strata models --nats URL --deployment NAME --layer L --run ID --promote VERSION
       strata models --nats URL --deployment NAME --layer L --rollback

Lists checkpoints: files (dqn.ckpt, ppo.ckpt, lstm.ckpt) and the directories
strata train writes (their best checkpoints, then episodes/N/), or the
JetStream registry the learner publishes to. For each: layer, version,
episode or in-force interval, input and output sizes, scaler, feature-set
version, seed, validation result and training run. --promote and --rollback
change the model a deployment's agents serve (strata agent --deployment):
they switch between two ticks, without a restart (docs/guardrails.md).

`)
		fs.PrintDefaults()
	}
	c.RegisterFlags(fs, "")
	if _, err := roleconf.Parse(fs, args); err != nil {
		return err
	}
	c.Paths = fs.Args()
	return c.Run(ctx, stdout)
}
