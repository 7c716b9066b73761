package pipeline

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/guard"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/schemas"
)

// ServeFlags are the flags that say how a process serves its layers'
// policies in live use (docs/guardrails.md): the guardrails every decision
// honours, and the baselines that take over a layer.
type ServeFlags struct {
	// Guardrails is the guardrails YAML file; "" constrains nothing.
	Guardrails string
	// Fallback names each layer's fallback, "layer=policy,…": it decides
	// the batches the layer's policy fails on.
	Fallback string
	// UseFallback lists the layers whose fallback decides every batch
	// (the operator's choice).
	UseFallback string

	loaded *Serving
}

// Serving is what ServeFlags say, loaded and checked.
type Serving struct {
	// Rules are the guardrails; nil constrains nothing.
	Rules *guard.Rules
	// Fallback is each layer's fallback policy name.
	Fallback map[schemas.Layer]string
	// Forced are the layers whose fallback decides every batch.
	Forced map[schemas.Layer]bool
	// contents is the guardrails file as read.
	contents []byte
}

// RegisterFlags registers the flags, each name preceded by prefix; their
// defaults are s's values.
func (s *ServeFlags) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&s.Guardrails, prefix+"guardrails", s.Guardrails, "guardrails YAML `FILE`: allowed providers and regions per app, memory-tier bounds per function, keep-warm budget per app; every decision is projected onto them (docs/guardrails.md)")
	fs.StringVar(&s.Fallback, prefix+"fallback", s.Fallback, "fallback policy per layer, `layer=policy,...`: it decides the batches the layer's policy fails on (docs/guardrails.md)")
	fs.StringVar(&s.UseFallback, prefix+"use-fallback", s.UseFallback, "`layers` (comma-separated) whose --fallback decides every batch instead of the layer's policy")
}

// Validate loads and checks the guardrails file and the fallback lists.
func (s *ServeFlags) Validate() error {
	sv, err := s.load()
	if err != nil {
		return err
	}
	s.loaded = sv
	return nil
}

// Load returns what the flags say (loading them if Validate did not).
func (s *ServeFlags) Load() (*Serving, error) {
	if s.loaded != nil {
		return s.loaded, nil
	}
	return s.load()
}

func (s *ServeFlags) load() (*Serving, error) {
	sv := &Serving{Fallback: map[schemas.Layer]string{}, Forced: map[schemas.Layer]bool{}}
	if s.Guardrails != "" {
		data, err := os.ReadFile(s.Guardrails)
		if err != nil {
			return nil, fmt.Errorf("reading --guardrails: %w", err)
		}
		if sv.Rules, err = guard.Parse(s.Guardrails, data); err != nil {
			return nil, fmt.Errorf("reading --guardrails: %w", err)
		}
		sv.contents = data
	}
	for _, kv := range SplitList(s.Fallback) {
		ln, name, ok := strings.Cut(kv, "=")
		ln, name = strings.TrimSpace(ln), strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("parsing --fallback: %q: want layer=policy, e.g. tactical=greedy-cost", kv)
		}
		l, err := schemas.ParseLayer(ln)
		if err != nil {
			return nil, fmt.Errorf("parsing --fallback: %w", err)
		}
		if _, dup := sv.Fallback[l]; dup {
			return nil, fmt.Errorf("parsing --fallback: %s is given twice", l)
		}
		if _, internal := twin.ParseInternalPolicy(name); internal || name == PolicyExternal || name == "none" {
			return nil, fmt.Errorf("parsing --fallback: %s=%s: a fallback is a policy a worker serves (%s, or %s with --models)", l, name, strings.Join(append(agents.Names(l), agents.Own(l)...), ", "), agents.LearnedName(l))
		}
		sv.Fallback[l] = name
	}
	forced, err := ParseLayers(s.UseFallback)
	if err != nil {
		return nil, fmt.Errorf("parsing --use-fallback: %w", err)
	}
	for _, l := range forced {
		if sv.Fallback[l] == "" {
			return nil, fmt.Errorf("--use-fallback %s: the layer has no --fallback", l)
		}
		sv.Forced[l] = true
	}
	return sv, nil
}

// Wrap returns p served with layer's fallback, if it has one (an
// agents.Fallback, forced when the layer is in --use-fallback), or p.
func (sv *Serving) Wrap(p agents.Policy, layer schemas.Layer, opts agents.Options) (agents.Policy, error) {
	if sv == nil || sv.Fallback[layer] == "" {
		return p, nil
	}
	fb, err := agents.New(sv.Fallback[layer], layer, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the %s fallback: %w", layer, err)
	}
	f, err := agents.NewFallback(p, fb)
	if err != nil {
		return nil, err
	}
	f.SetForced(sv.Forced[layer])
	return f, nil
}

// Enforcer returns a new guardrail enforcer of layer, nil without
// guardrails.
func (sv *Serving) Enforcer(layer schemas.Layer, m *cloud.Model) (*guard.Enforcer, error) {
	if sv == nil || sv.Rules == nil {
		return nil, nil
	}
	var cat *cloud.Catalog
	if m != nil {
		cat = m.Catalog()
	}
	return guard.NewEnforcer(sv.Rules, layer, cat)
}

// CheckLayers refuses guardrails or a fallback for a layer whose policy
// is not served by a worker of this process (policy names per layer):
// static-best and oracle decide inside the twin, an external worker is
// outside, and neither would be guarded.
func (sv *Serving) CheckLayers(policies map[schemas.Layer]string) error {
	if sv == nil {
		return nil
	}
	var errs []error
	for _, l := range schemas.Layers {
		n := policies[l]
		_, internal := twin.ParseInternalPolicy(n)
		internal = internal && l != schemas.Operational
		if (internal || n == PolicyExternal) && sv.Rules != nil {
			errs = append(errs, fmt.Errorf("--guardrails with --%s %s: that policy does not decide in a worker of this process, so its decisions would not be guarded", l, n))
		}
		if (internal || n == PolicyExternal || n == "none" || n == "") && sv.Fallback[l] != "" {
			errs = append(errs, fmt.Errorf("--fallback %s=%s with --%s %q: a fallback stands beside a policy that a worker of this process serves", l, sv.Fallback[l], l, n))
		}
	}
	return errors.Join(errs...)
}

// Record returns what a run's config_json records of the serving setup:
// the guardrails file's path, SHA-256 and contents, and the fallbacks;
// nil when there is none.
func (sv *Serving) Record() json.RawMessage {
	if sv == nil || (sv.Rules == nil && len(sv.Fallback) == 0) {
		return nil
	}
	var rec struct {
		File        string            `json:"guardrails_file,omitempty"`
		SHA256      string            `json:"guardrails_sha256,omitempty"`
		Contents    string            `json:"guardrails,omitempty"`
		Fallback    map[string]string `json:"fallback,omitempty"`
		UseFallback []string          `json:"use_fallback,omitempty"`
	}
	if sv.Rules != nil {
		rec.File, rec.SHA256, rec.Contents = sv.Rules.File, sv.Rules.SHA256, string(sv.contents)
	}
	for _, l := range schemas.Layers {
		if n := sv.Fallback[l]; n != "" {
			if rec.Fallback == nil {
				rec.Fallback = map[string]string{}
			}
			rec.Fallback[string(l)] = n
		}
		if sv.Forced[l] {
			rec.UseFallback = append(rec.UseFallback, string(l))
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil
	}
	return b
}

// Outside returns the apps whose guardrails the placement pl breaks
// ("*" for the apps the file does not name), sorted; nil without
// guardrails.
func (sv *Serving) Outside(pl cloud.Placement) []string {
	if sv == nil || sv.Rules == nil {
		return nil
	}
	breaks := func(a guard.AppRule) bool {
		return !a.AllowsProvider(pl.Provider) || !a.AllowsMetro(pl.Metro) || !a.Memory.Allows(pl.Tier)
	}
	var out []string
	if breaks(sv.Rules.Default) {
		out = append(out, guard.AnyApp)
	}
	for app, a := range sv.Rules.Apps {
		if breaks(a) {
			out = append(out, app)
		}
	}
	slices.Sort(out)
	return out
}
