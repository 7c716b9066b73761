package pipeline

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// RegisterFlags registers the flags of where a run's Kafka and NATS are
// and how its names are prefixed (--kafka, --nats, --partitions,
// --prefix), each name preceded by prefix, into c's fields; their
// defaults are c's values.
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.Var((*brokersValue)(&c.Brokers), prefix+"kafka", "Kafka seed brokers `host:port[,…]` (default: an embedded in-process broker)")
	fs.StringVar(&c.NATSURL, prefix+"nats", c.NATSURL, "NATS `URL` (default: an embedded nats-server with JetStream)")
	fs.IntVar(&c.Partitions, prefix+"partitions", c.Partitions, fmt.Sprintf("partition count of strata's topics; 0 uses the existing topics' count (missing topics are created with it, or with %d when none exists; a closed loop on its embedded broker uses %d); a count that differs from existing topics' is refused", kafka.DefaultPartitions, EmbeddedLoopPartitions))
	RegisterPrefixFlag(fs, prefix+"prefix", &c.Names)
	RegisterOutageFlag(fs, prefix+"kafka-outage", &c.KafkaOutage)
	RegisterNATSOutageFlag(fs, prefix+"nats-outage", &c.NATSOutage)
}

// RegisterNATSOutageFlag registers the flag name (--nats-outage for the
// commands) that bounds how long a role publishing to JetStream waits out
// a NATS outage.
func RegisterNATSOutageFlag(fs *flag.FlagSet, name string, d *time.Duration) {
	if *d == 0 {
		*d = natsbus.DefaultOutageBound
	}
	fs.DurationVar(d, name, *d, "how long a role publishing to JetStream waits through a NATS outage (the connection lost, publishes unacknowledged; it sends its unacknowledged batches again once the server is back) before the run ends with an error; a negative value ends it at the first such error")
}

// publisher returns a batch publisher on js with c's NATS outage bound.
func (c *Config) publisher(js jetstream.JetStream) *natsbus.BatchPublisher {
	return natsbus.NewBatchPublisher(js, 0).SetOutageBound(c.NATSOutage)
}

// RegisterOutageFlag registers the flag name (--kafka-outage for the
// commands) that bounds how long a role reading Kafka waits out a broker
// outage.
func RegisterOutageFlag(fs *flag.FlagSet, name string, d *time.Duration) {
	if *d == 0 {
		*d = kafka.DefaultOutageBound
	}
	fs.DurationVar(d, name, *d, "how long a role reading Kafka keeps polling through a broker outage (refused or cut connections, a lost group session) before the run ends with an error; a negative value ends it at the first such error")
}

// RegisterPrefixFlag registers the flag name (--prefix for the commands)
// that sets the name prefix of a deployment.
func RegisterPrefixFlag(fs *flag.FlagSet, name string, n *schemas.Names) {
	fs.StringVar(&n.Prefix, name, n.Prefix, "name `PREFIX` of every Kafka topic and consumer group, JetStream stream, subject and bucket (lower-case letters, digits, '-'): several deployments or test runs on one cluster")
}

// Validate reports what the flags set wrongly: a name prefix that is not
// one, a negative partition count.
func (c *Config) Validate() error {
	if err := schemas.ValidatePrefix(c.Names.Prefix); err != nil {
		return err
	}
	if c.Partitions < 0 {
		return fmt.Errorf("--partitions %d: a partition count cannot be negative", c.Partitions)
	}
	return nil
}

// brokersValue is the value of --kafka: a comma-separated broker list.
type brokersValue []string

func (v *brokersValue) String() string {
	if v == nil {
		return ""
	}
	return strings.Join(*v, ",")
}

func (v *brokersValue) Set(s string) error {
	b := kafka.ParseBrokers(s)
	if len(b) == 0 && strings.TrimSpace(s) != "" {
		return errors.New("no broker address in the list")
	}
	*v = b
	return nil
}

// RegisterDeviceFlag registers --device (name preceded by prefix) into v:
// where the networks train, cpu or cuda (docs/nn.md).
func RegisterDeviceFlag(fs *flag.FlagSet, prefix string, v *string) {
	fs.StringVar(v, prefix+"device", *v, "where the networks train: cpu, or cuda (an NVIDIA GPU; needs a binary built with -tags strata_cuda, docs/nn.md)")
}

// ParseDevice returns the network backend a --device value stands for:
// cpu ("" too) or cuda. cuda is refused, with the reason, by a binary
// built without CUDA or on a machine without a device.
func ParseDevice(s string) (nn.Backend, error) {
	switch s {
	case "", "cpu":
		return nn.BackendCPU, nil
	case "cuda":
		return nn.ParseBackend(string(nn.BackendCUDA))
	}
	return "", fmt.Errorf("device %q: want cpu or cuda", s)
}

// RegisterTacticalFeatures registers --tactical-features (name preceded by
// prefix) into v, with usage what.
func RegisterTacticalFeatures(fs *flag.FlagSet, prefix string, v *string, what string) {
	registerFeatures(fs, prefix, schemas.Tactical, v, what)
}

// RegisterStrategicFeatures registers --strategic-features (name preceded
// by prefix) into v, with usage what.
func RegisterStrategicFeatures(fs *flag.FlagSet, prefix string, v *string, what string) {
	registerFeatures(fs, prefix, schemas.Strategic, v, what)
}

// registerFeatures registers --<layer>-features, listing the layer's sets
// by their short names.
func registerFeatures(fs *flag.FlagSet, prefix string, l schemas.Layer, v *string, what string) {
	var names []string
	for _, n := range schemas.FeatureSets(l) {
		names = append(names, strings.TrimPrefix(n, string(l)+"/"))
	}
	fs.StringVar(v, prefix+string(l)+"-features", *v, what+": "+strings.Join(names, " or ")+" (docs/agents.md, feature sets)")
}

// tickTime is one operational tick as a duration.
const tickTime = time.Duration(grid.OperationalTickUS) * time.Microsecond

// ticksOf returns d in operational ticks, or an error naming flag when d
// is negative or not a whole number of ticks (15 s).
func ticksOf(flag string, d time.Duration) (int64, error) {
	if d < 0 || d%tickTime != 0 {
		return 0, fmt.Errorf("--%s %v: want a non-negative multiple of 15s", flag, d)
	}
	return int64(d / tickTime), nil
}
