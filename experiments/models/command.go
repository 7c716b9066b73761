package models

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// Command is `strata models`: its flags and run.
type Command struct {
	// Paths are checkpoint files and `strata train` directories.
	Paths []string
	// NATS, if set, lists the JetStream registry at this URL instead, its
	// names under Prefix; RunID and Layer filter it and Inspect reads each
	// checkpoint.
	NATS    string
	Prefix  string
	RunID   string
	Layer   string
	Inspect bool
	// JSON prints the descriptions as a JSON array.
	JSON bool
	// Deployment, with Promote (a version of RunID's Layer checkpoints)
	// or Rollback, changes the model the deployment's agents serve
	// (strata agent --deployment) instead of listing.
	Deployment string
	Promote    string
	Rollback   bool
}

// RegisterFlags registers the command's flags, each name preceded by
// prefix.
func (c *Command) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.NATS, prefix+"nats", c.NATS, "list the JetStream model registry at `URL` instead of files")
	fs.StringVar(&c.Prefix, prefix+"prefix", c.Prefix, "name prefix of the registry's buckets (as the learner's --prefix)")
	fs.StringVar(&c.RunID, prefix+"run", c.RunID, "registry: only this run's checkpoints")
	fs.StringVar(&c.Layer, prefix+"layer", c.Layer, "registry: only this layer's checkpoints (strategic, tactical, operational)")
	fs.BoolVar(&c.Inspect, prefix+"inspect", c.Inspect, "registry: read every listed checkpoint (network, scaler, seed), not only its index entry")
	fs.BoolVar(&c.JSON, prefix+"json", c.JSON, "print the full descriptions as JSON")
	fs.StringVar(&c.Deployment, prefix+"deployment", c.Deployment, "registry: with --promote or --rollback, the deployment `NAME` whose served model changes (strata agent --deployment)")
	fs.StringVar(&c.Promote, prefix+"promote", c.Promote, "registry: make checkpoint `VERSION` of --run's --layer the model --deployment serves; its agents switch at their next tick")
	fs.BoolVar(&c.Rollback, prefix+"rollback", c.Rollback, "registry: make the model --deployment served before the one in force for --layer the one it serves again")
}

// Validate reports a command line that names no checkpoints, or both
// paths and a registry, or an unknown layer or prefix.
func (c *Command) Validate() error {
	switch {
	case c.NATS == "" && len(c.Paths) == 0:
		return errors.New("strata models: name checkpoint files or directories, or a registry with --nats URL")
	case c.NATS != "" && len(c.Paths) > 0:
		return fmt.Errorf("strata models: give either paths (%s) or --nats, not both", strings.Join(c.Paths, " "))
	case c.NATS == "" && (c.RunID != "" || c.Layer != "" || c.Inspect || c.Prefix != ""):
		return errors.New("strata models: --run, --layer, --inspect and --prefix apply to the registry (--nats URL)")
	}
	switch {
	case c.Promote != "" && c.Rollback:
		return errors.New("strata models: --promote or --rollback, not both")
	case (c.Promote != "" || c.Rollback) && (c.NATS == "" || c.Layer == "" || c.Deployment == ""):
		return errors.New("strata models --promote and --rollback need --nats, --layer and --deployment")
	case c.Promote != "" && c.RunID == "":
		return errors.New("strata models --promote VERSION needs --run: the training run whose checkpoint it is")
	case c.Deployment != "" && c.Promote == "" && !c.Rollback:
		return errors.New("strata models --deployment goes with --promote or --rollback")
	}
	if c.Layer != "" {
		if _, err := schemas.ParseLayer(c.Layer); err != nil {
			return fmt.Errorf("strata models --layer: %w", err)
		}
	}
	if err := schemas.ValidatePrefix(c.Prefix); err != nil {
		return fmt.Errorf("strata models --prefix: %w", err)
	}
	return nil
}

// Run lists the checkpoints on stdout.
func (c *Command) Run(ctx context.Context, stdout io.Writer) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Promote != "" || c.Rollback {
		return c.serve(ctx, stdout)
	}
	var infos []Info
	if c.NATS != "" {
		var err error
		if infos, err = c.registry(ctx); err != nil {
			return err
		}
	}
	for _, p := range c.Paths {
		got, err := ReadPath(p)
		if err != nil {
			return err
		}
		infos = append(infos, got...)
	}
	if c.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if infos == nil {
			infos = []Info{}
		}
		return enc.Encode(infos)
	}
	return WriteTable(stdout, infos)
}

// registry reads the JetStream registry.
func (c *Command) registry(ctx context.Context) ([]Info, error) {
	var infos []Info
	err := c.withStore(ctx, func(ms *natsbus.ModelStore) error {
		var err error
		infos, err = ReadRegistry(ctx, ms, c.RunID, schemas.Layer(c.Layer), c.Inspect)
		return err
	})
	return infos, err
}

// serve promotes or rolls back the model a deployment serves and says
// which it serves now.
func (c *Command) serve(ctx context.Context, stdout io.Writer) error {
	l := schemas.Layer(c.Layer)
	return c.withStore(ctx, func(ms *natsbus.ModelStore) error {
		s := natsbus.Served{Run: c.RunID, Version: c.Promote}
		if c.Rollback {
			var err error
			if s, err = ms.Rollback(ctx, c.Deployment, l); err != nil {
				return err
			}
		} else if _, err := ms.Promote(ctx, c.Deployment, l, s); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deployment %s serves %s %s/%s from its agents' next tick\n", c.Deployment, l, s.Run, s.Version)
		return nil
	})
}

// withStore calls fn with the registry's model store.
func (c *Command) withStore(ctx context.Context, fn func(*natsbus.ModelStore) error) error {
	nc, err := natsbus.Connect(c.NATS, "strata-models")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("opening JetStream at %s: %w", c.NATS, err)
	}
	ms, err := natsbus.OpenModelStore(ctx, js, schemas.Names{Prefix: c.Prefix})
	if err != nil {
		return err
	}
	return fn(ms)
}

// WriteTable prints one line per checkpoint: where it is, its layer,
// version, episode or in-force interval, input and output sizes, scaler,
// feature set, and its validation result.
func WriteTable(w io.Writer, infos []Info) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tLAYER\tVERSION\tEPISODE\tIN FORCE\tINPUTS\tOUTPUTS\tSCALER\tFEATURE SET\tSEED\tVALIDATION\tTRAINED")
	for _, in := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Source, in.Layer, in.Version,
			orDash(in.Episode, in.Episode > 0), inForce(in), orDash(in.Inputs, in.Kind != ""), orDash(in.Outputs, in.Kind != ""),
			scaler(in), featureSet(in), orDash(in.Seed, in.Kind != ""), validation(in), trained(in))
	}
	return tw.Flush()
}

func orDash[T any](v T, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprint(v)
}

func inForce(in Info) string {
	if in.InForce == nil {
		return "-"
	}
	return strconv.FormatInt(*in.InForce, 10)
}

func scaler(in Info) string {
	switch {
	case in.Scaler == nil:
		return "-"
	case !in.Scaler.Fitted:
		return "not fitted"
	default:
		return fmt.Sprintf("%s/%d", in.Scaler.Kind, in.Scaler.Dim)
	}
}

func featureSet(in Info) string {
	if in.FeatureSet == "" {
		return "-"
	}
	f := string(in.FeatureSet)
	if len(in.Ablated) > 0 {
		f += " without " + strings.Join(in.Ablated, ",")
	}
	if in.Mask != "" {
		f += ", mask " + in.Mask
	}
	return f
}

// validation is the LSTM's best validation loss, or for DQN and PPO the
// validation reward of the training episode the checkpoint comes from.
func validation(in Info) string {
	switch {
	case in.Layer == schemas.Operational && in.Epochs > 0:
		how := in.Loss
		if in.Head != "" && in.Head != lstm.HeadDirect {
			how += ", " + in.Head + " head"
		}
		if in.BestScore > 0 {
			return fmt.Sprintf("score %.4f of the moving average's errors, loss %.5g (epoch %d of %d, %s)", in.BestScore, in.BestValLoss, in.BestEpoch, in.Epochs, how)
		}
		return fmt.Sprintf("loss %.5g (epoch %d of %d, %s)", in.BestValLoss, in.BestEpoch, in.Epochs, how)
	case in.ValidationReward != nil:
		return fmt.Sprintf("reward %.4f", *in.ValidationReward)
	default:
		return "-"
	}
}

func trained(in Info) string {
	t := in.Training
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("seed %d, %d episodes on days %s (valid %s, operational %s), %.0f s", t.Seed, t.Episodes, t.TrainDays, t.ValidDays, t.Operational, t.WallSeconds)
}
