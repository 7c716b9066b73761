package baselines

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-rl/strata/agents/internal/draw"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// Version is the version of every baseline's algorithm. A policy built with
// parameter overrides reports Version + "+" + its sorted overrides (e.g.
// "1+window=3"), so decision rows tell the variants apart.
const Version = "1"

// ErrUnknownPolicy is wrapped by New when no baseline has the requested name
// for the layer.
var ErrUnknownPolicy = errors.New("unknown policy")

// ErrInvalidParam is wrapped by New for an unknown, malformed or
// out-of-range parameter override.
var ErrInvalidParam = errors.New("invalid policy parameter")

// Config is what a baseline is built from.
type Config struct {
	// Seed seeds the baselines that draw random numbers (random,
	// power-tuning's reservoir).
	Seed int64
	// Model is the cloud model the greedy and power-tuning baselines
	// evaluate placements with. The operational baselines do not need it.
	Model *cloud.Model
	// Epoch is the wall-clock instant of trace time 0; it places a tactical
	// state's hour in the day for the user-metro rule. Zero means the
	// model's Config().Epoch.
	Epoch time.Time
	// Params overrides named parameters of the policy (see
	// docs/baselines.md); a key the policy does not know is an error.
	Params map[string]string
}

// Names returns the baselines available for layer, in a fixed order; nil
// for an unknown layer.
func Names(layer schemas.Layer) []string {
	switch layer {
	case schemas.Strategic:
		return []string{"random", "greedy-latency", "greedy-cost", "greedy-carbon"}
	case schemas.Tactical:
		return []string{"random", "greedy-latency", "greedy-cost", "greedy-carbon", "power-tuning"}
	case schemas.Operational:
		return []string{"reactive", "static-2x", "moving-average", "keepalive-10m", "keepalive-20m", "knative", "hybrid-histogram"}
	}
	return nil
}

// New returns the baseline called name for layer.
func New(name string, layer schemas.Layer, cfg Config) (Policy, error) {
	valid := Names(layer)
	if !slices.Contains(valid, name) {
		if _, err := schemas.ParseLayer(string(layer)); err != nil {
			return nil, fmt.Errorf("creating policy %q: %w", name, err)
		}
		return nil, fmt.Errorf("creating %s policy %q: %w: valid names are %s",
			layer, name, ErrUnknownPolicy, strings.Join(valid, ", "))
	}
	ps := newParams(cfg.Params)
	b := base{name: name, version: VersionWith(Version, cfg.Params), layer: layer}
	var p Policy
	var err error
	switch layer {
	case schemas.Operational:
		p, err = newOperational(b, ps)
	default:
		p, err = newPlacement(b, ps, cfg)
	}
	if err == nil {
		err = ps.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("creating %s policy %q: %w", layer, name, err)
	}
	return p, nil
}

// Policy is the method set every baseline has; it is the agents.Policy
// interface, restated here so that this package does not import agents.
type Policy interface {
	Name() string
	Version() string
	Layer() schemas.Layer
	Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error
}

// VersionWith returns the version a policy of algorithm version v built
// with parameter overrides params reports: v, or v + "+" + the sorted
// overrides ("1+window=3").
func VersionWith(v string, params map[string]string) string {
	if len(params) == 0 {
		return v
	}
	kv := make([]string, 0, len(params))
	for k, val := range params {
		kv = append(kv, k+"="+val)
	}
	slices.Sort(kv)
	return v + "+" + strings.Join(kv, ",")
}

// base holds what every baseline shares: its name, version and layer.
type base struct {
	name, version string
	layer         schemas.Layer
}

// Name returns the policy's registry name.
func (b *base) Name() string { return b.name }

// Version returns the algorithm version, with parameter overrides appended.
func (b *base) Version() string { return b.version }

// Layer returns the layer the policy decides for.
func (b *base) Layer() schemas.Layer { return b.layer }

// check rejects a cancelled context and a batch of another layer.
func (b *base) check(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s deciding: %w", b.name, err)
	}
	if state == nil || out == nil {
		return fmt.Errorf("%s deciding: nil state or output batch", b.name)
	}
	if state.Header.Layer != b.layer {
		return fmt.Errorf("%s deciding tick %d: got a %s state batch, want %s", b.name, state.Header.Tick, state.Header.Layer, b.layer)
	}
	return nil
}

// row returns a decision row for the entity, stamped with the policy.
func (b *base) row(app, fn string) schemas.DecisionRow {
	return schemas.DecisionRow{App: app, Func: fn, Policy: b.name, PolicyVersion: b.version}
}

// params reads parameter overrides, remembering which keys were read and
// every error, so that New can reject unknown keys with the list of valid
// ones.
type params struct {
	raw  map[string]string
	read []string
	errs []error
}

func newParams(raw map[string]string) *params { return &params{raw: raw} }

func (p *params) lookup(key string) (string, bool) {
	p.read = append(p.read, key)
	v, ok := p.raw[key]
	return v, ok
}

func (p *params) fail(key, v, why string) {
	p.errs = append(p.errs, fmt.Errorf("%w: %s=%q: %s", ErrInvalidParam, key, v, why))
}

// float returns the parameter key, or def, checked to lie in [lo, hi].
func (p *params) float(key string, def, lo, hi float64) float64 {
	s, ok := p.lookup(key)
	if !ok {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < lo || v > hi {
		p.fail(key, s, fmt.Sprintf("want a number in [%g, %g]", lo, hi))
		return def
	}
	return v
}

// int returns the integer parameter key, or def, checked to lie in [lo, hi].
func (p *params) int(key string, def, lo, hi int64) int64 {
	s, ok := p.lookup(key)
	if !ok {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		p.fail(key, s, fmt.Sprintf("want an integer in [%d, %d]", lo, hi))
		return def
	}
	return v
}

// bool returns the boolean parameter key, or def.
func (p *params) bool(key string, def bool) bool {
	s, ok := p.lookup(key)
	if !ok {
		return def
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		p.fail(key, s, "want true or false")
		return def
	}
	return v
}

// choice returns the parameter key, or def, checked to be one of valid.
func (p *params) choice(key, def string, valid ...string) string {
	s, ok := p.lookup(key)
	if !ok {
		return def
	}
	if !slices.Contains(valid, s) {
		p.fail(key, s, "want one of "+strings.Join(valid, ", "))
		return def
	}
	return s
}

// finish reports every malformed value and every key nobody read.
func (p *params) finish() error {
	var unknown []string
	for k := range p.raw {
		if !slices.Contains(p.read, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		valid := slices.Clone(p.read)
		slices.Sort(valid)
		valid = slices.Compact(valid)
		if len(valid) == 0 {
			valid = []string{"(none)"}
		}
		p.errs = append(p.errs, fmt.Errorf("%w: unknown parameter(s) %s: valid are %s",
			ErrInvalidParam, strings.Join(unknown, ", "), strings.Join(valid, ", ")))
	}
	return errors.Join(p.errs...)
}

// ceilCount rounds a non-negative expected count up to an instance count,
// ignoring floating-point noise below 1e-9.
func ceilCount(x float64) int32 {
	if !(x > 1e-9) {
		return 0
	}
	return int32(min(math.Ceil(x-1e-9), math.MaxInt32))
}

// entity is a map key for an app (fn empty) or a function. A struct key
// needs no allocation, unlike a joined string.
type entity struct{ app, fn string }

// key returns the map key of (app, fn).
func key(app, fn string) entity { return entity{app, fn} }

// entityHash is the draw for (seed, tick, app, func) (agents/internal/draw).
func entityHash(seed, tick int64, app, fn string) uint64 { return draw.Hash(seed, tick, app, fn) }

// uniform maps a hash to a float in (0, 1).
func uniform(h uint64) float64 { return draw.Uniform(h) }
