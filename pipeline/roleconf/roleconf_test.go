package roleconf

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
)

// testFlags is a flag set with a flag of each kind the roles use, and an
// alias (--raw-runs of --runs).
type testFlags struct {
	fs       *flag.FlagSet
	days     int
	speed    string
	progress bool
	layers   string
	runs     int
	lateness time.Duration
}

func newTestFlags() *testFlags {
	f := &testFlags{fs: flag.NewFlagSet("strata test", flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.IntVar(&f.days, "days", 1, "")
	f.fs.StringVar(&f.speed, "speed", "max", "")
	f.fs.BoolVar(&f.progress, "progress", true, "")
	f.fs.StringVar(&f.layers, "layers", "strategic", "")
	f.fs.IntVar(&f.runs, "runs", 3, "")
	f.fs.IntVar(&f.runs, "raw-runs", 3, "alias of --runs")
	f.fs.DurationVar(&f.lateness, "lateness", time.Minute, "")
	return f
}

// TestApplyConfigFlags covers the YAML → flags layer: what the file sets,
// what the command line keeps, lists, and the errors, which name the file,
// the line and the key.
func TestApplyConfigFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		yaml      string
		want      testFlags // compared field by field (fs ignored)
		wantFlags map[string]string
		wantErr   string
	}{
		{name: "sets unset flags", yaml: "days: 4\nspeed: '3600'\nprogress: false\nlateness: 90s\n",
			want:      testFlags{days: 4, speed: "3600", progress: false, layers: "strategic", runs: 3, lateness: 90 * time.Second},
			wantFlags: map[string]string{"days": "4", "speed": "3600", "progress": "false", "lateness": "90s"}},
		{name: "command line wins", args: []string{"--days", "2", "--runs", "5"}, yaml: "days: 4\nraw-runs: 7\nspeed: '10'\n",
			want:      testFlags{days: 2, speed: "10", progress: true, layers: "strategic", runs: 5, lateness: time.Minute},
			wantFlags: map[string]string{"speed": "10"}},
		{name: "a list is joined with commas", yaml: "layers: [strategic, tactical]\n",
			want:      testFlags{days: 1, speed: "max", progress: true, layers: "strategic,tactical", runs: 3, lateness: time.Minute},
			wantFlags: map[string]string{"layers": "strategic,tactical"}},
		{name: "block list and an anchor", yaml: "layers:\n  - &t tactical\n  - operational\nspeed: *t\n",
			want:      testFlags{days: 1, speed: "tactical", progress: true, layers: "tactical,operational", runs: 3, lateness: time.Minute},
			wantFlags: map[string]string{"layers": "tactical,operational", "speed": "tactical"}},
		{name: "empty file", yaml: "# nothing yet\n",
			want:      testFlags{days: 1, speed: "max", progress: true, layers: "strategic", runs: 3, lateness: time.Minute},
			wantFlags: map[string]string{}},
		{name: "unknown key", yaml: "days: 2\n\n# the next line is wrong\ndayz: 3\n",
			wantErr: `c.yaml:4: unknown key "dayz": strata test has no flag --dayz`},
		{name: "bad value", yaml: "days: 2\nlateness: soon\n",
			wantErr: `c.yaml:2: lateness: invalid value "soon": parse error`},
		{name: "the command line's flag is not read from the file", args: []string{"--days", "3"}, yaml: "days: many\n",
			want:      testFlags{days: 3, speed: "max", progress: true, layers: "strategic", runs: 3, lateness: time.Minute},
			wantFlags: map[string]string{}},
		{name: "no value", yaml: "speed:\n", wantErr: "c.yaml:1: speed: no value"},
		{name: "a mapping", yaml: "speed: {x: 1}\n", wantErr: "c.yaml:1: speed: want a value or a list of values"},
		{name: "a list of lists", yaml: "layers: [[a]]\n", wantErr: "c.yaml:1: layers: list item 1: want a single value"},
		{name: "repeated key", yaml: "days: 2\nspeed: max\ndays: 3\n", wantErr: "c.yaml:3: days repeats line 1"},
		{name: "a config names another", yaml: "config: other.yaml\n", wantErr: "c.yaml:1: config: a config file cannot name another"},
		{name: "cloud section without a model", yaml: "days: 2\nreward:\n  w_cost: 1\n",
			wantErr: "c.yaml:2: reward: strata test builds no cloud model"},
		{name: "not a mapping", yaml: "- days\n", wantErr: "c.yaml:1: want a mapping of flag names to values"},
		{name: "not YAML", yaml: "days: [\n", wantErr: "c.yaml: yaml: line 1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFlags()
			if err := f.fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			rc, err := Apply(f.fs, "c.yaml", []byte(tt.yaml), false)
			if !checkConfigErr(t, err, tt.wantErr) {
				return
			}
			got := *f
			got.fs = nil
			if got != tt.want {
				t.Errorf("flags %+v, want %+v", got, tt.want)
			}
			if !maps.Equal(rc.flags, tt.wantFlags) {
				t.Errorf("recorded flags %v, want %v", rc.flags, tt.wantFlags)
			}
		})
	}
}

// TestApplyConfigCloud covers the reward, model and catalog sections:
// applied, validated, and errors at the line at fault.
func TestApplyConfigCloud(t *testing.T) {
	def, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		yaml    string
		check   func(rc *Config) error
		wantErr string
	}{
		{name: "reward and model", yaml: "days: 2\nreward:\n  w_cost: 0.7\n  w_perf: 0.2\n  w_carbon: 0.1\nmodel:\n  keep_alive_min: {aws: 12, gcp: 5}\n  carbon_mode: static\n",
			check: func(rc *Config) error {
				c := rc.ModelConfig()
				if c.Reward.WCost != 0.7 || c.Reward.WPerf != 0.2 || c.KeepAliveMin[cloud.AWS] != 12 || c.KeepAliveMin[cloud.GCP] != 5 ||
					c.CarbonMode != cloud.CarbonStatic || rc.cat != nil {
					return fmt.Errorf("config %+v", c)
				}
				m, err := rc.NewModel(time.Unix(0, 0))
				if err != nil || m.Config().Reward.WCost != 0.7 {
					return fmt.Errorf("model: %w", err)
				}
				return nil
			}},
		{name: "catalog: a metro's own price wins over all", yaml: "catalog:\n  aws:\n    us-east:\n      gb_second_usd: 0.002\n    all:\n      gb_second_usd: 0.001\n      request_usd: 0\n  gcp:\n    ap-southeast:\n      gen2_keep_warm_usd_per_hour: {1024: 0.5}\n",
			check: func(rc *Config) error {
				aws := rc.cat.Regions[cloud.AWS]
				kw := rc.cat.Regions[cloud.GCP][cloud.APSoutheast].Gen2KeepWarmUSDPerHour
				if aws[cloud.USEast].GBSecondUSD.Value != 0.002 || aws[cloud.EUWest].GBSecondUSD.Value != 0.001 || aws[cloud.USWest].RequestUSD.Value != 0 ||
					kw[3].Value != 0.5 || kw[3].Src != cloud.SrcOverride || kw[2] != def.Regions[cloud.GCP][cloud.APSoutheast].Gen2KeepWarmUSDPerHour[2] {
					return fmt.Errorf("catalog not as the file says")
				}
				if rc.cfg != nil {
					return fmt.Errorf("a catalog-only file changed the config")
				}
				return nil
			}},
		{name: "weights that do not validate", yaml: "reward:\n  w_cost: 0.5\n  w_perf: -1\n",
			wantErr: "c.yaml:3: reward.w_perf: invalid cloud config: Reward.WPerf -1 must be finite and non-negative"},
		{name: "unknown reward parameter", yaml: "reward:\n  w_cots: 0.5\n", wantErr: `c.yaml:2: reward.w_cots: unknown name: no parameter "reward.w_cots"`},
		{name: "reward's parameter in model", yaml: "model:\n  reward.w_cost: 0.5\n", wantErr: "c.yaml:2: model.reward.w_cost: unknown parameter"},
		{name: "unknown provider of a model parameter", yaml: "model:\n  keep_alive_min:\n    aws: 3\n    ibm: 4\n",
			wantErr: `c.yaml:4: model.keep_alive_min.ibm: unknown name: keep_alive_min has no "ibm"`},
		{name: "a model value that is not a number", yaml: "model:\n  slo_floor_ms: fast\n", wantErr: `c.yaml:2: model.slo_floor_ms: invalid cloud config: "fast" is not a number`},
		{name: "valid alone, invalid together", yaml: "model:\n  working_set_min_mb: 500\n  working_set_max_mb: 400\n",
			wantErr: "c.yaml: the reward and model sections: overrides together: invalid cloud config: working-set clamp"},
		{name: "negative price", yaml: "catalog:\n  azure:\n    eu-west:\n      request_usd: 0\n      gb_second_usd: -0.1\n",
			wantErr: "c.yaml:5: catalog.azure.eu-west.gb_second_usd: invalid cloud config: price -0.1 USD is negative or not finite"},
		{name: "unknown provider", yaml: "catalog:\n  ibm:\n    us-east:\n      request_usd: 1\n", wantErr: `c.yaml:2: catalog.ibm: parsing provider "ibm": unknown name`},
		{name: "unknown metro", yaml: "catalog:\n  aws:\n    mars:\n      request_usd: 1\n", wantErr: `c.yaml:3: catalog.aws.mars: parsing metro "mars": unknown name (or all)`},
		{name: "another provider's price", yaml: "catalog:\n  aws:\n    all:\n      flex_request_usd: 1\n", wantErr: `c.yaml:4: catalog.aws.all.flex_request_usd: unknown name: aws has no price "flex_request_usd"`},
		{name: "not a tier", yaml: "catalog:\n  aws:\n    all:\n      keep_warm_usd_per_hour: {big: 1}\n", wantErr: "c.yaml:4: catalog.aws.all.keep_warm_usd_per_hour.big: a memory tier in MB"},
		{name: "price not a number", yaml: "catalog:\n  aws:\n    all:\n      request_usd: cheap\n", wantErr: `c.yaml:4: catalog.aws.all.request_usd: "cheap" is not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFlags()
			rc, err := Apply(f.fs, "c.yaml", []byte(tt.yaml), true)
			if !checkConfigErr(t, err, tt.wantErr) {
				return
			}
			if err := tt.check(rc); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRunJSONRecordsOverrides checks the config_json of a run with a
// config file: the file, the flags it set and its sections, completed by
// pipeline.RunConfigJSON.
func TestRunJSONRecordsOverrides(t *testing.T) {
	f := newTestFlags()
	if err := f.fs.Parse([]string{"--speed", "10"}); err != nil {
		t.Fatal(err)
	}
	rc, err := Apply(f.fs, "c.yaml", []byte("speed: max\ndays: 3\nreward: {w_cost: 0.5}\ncatalog:\n  gcp:\n    all:\n      keep_warm_usd_per_hour: {128: 0.25}\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	got := pipeline.RunConfigJSON(rc.RunJSON([]string{"--speed", "10"}), 3, schemas.Names{})
	want := `{"args":["--speed","10"],"partitions":3,"config_file":"c.yaml","overrides":{"catalog":{"gcp":{"all":{"keep_warm_usd_per_hour":{"128":0.25}}}},"flags":{"days":"3"},"reward":{"w_cost":0.5}}}`
	if got != want {
		t.Errorf("config_json\n%s, want\n%s", got, want)
	}
	// Secrets are not written down: token flags masked, URL passwords
	// redacted, on the command line and in the file.
	f = newTestFlags()
	f.fs.String("tokens", "", "")
	f.fs.String("nats", "", "")
	args := []string{"--tokens", "s3cret", "--nats=nats://u:natspw@h:4222"}
	if err := f.fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	rc, err = Apply(f.fs, "c.yaml", []byte("nats: nats://u:filepw@h:4222\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	rc2, err := Apply(newTokensFlags(t), "t.yaml", []byte("tokens: filetok\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, js := range []string{rc.RunJSON(args), rc2.RunJSON(nil)} {
		for _, s := range []string{"s3cret", "natspw", "filepw", "filetok"} {
			if strings.Contains(js, s) {
				t.Errorf("config_json %s holds the secret %q", js, s)
			}
		}
	}
	// Without a file, and the plain list of arguments of before.
	if got, want := pipeline.RunConfigJSON((*Config)(nil).RunJSON(nil), 1, schemas.Names{}), `{"args":[],"partitions":1}`; got != want {
		t.Errorf("config_json %s, want %s", got, want)
	}
	if got, want := pipeline.RunConfigJSON(`["--x"]`, 1, schemas.Names{}), `{"args":["--x"],"partitions":1}`; got != want {
		t.Errorf("config_json %s, want %s", got, want)
	}
}

// checkConfigErr fails t unless err starts with want ("" wants no error)
// and reports whether the case goes on to check a result.
func checkConfigErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("error %v, want one starting %q", err, want)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// newTokensFlags returns a flag set with a --tokens flag only.
func newTokensFlags(t *testing.T) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("tokens", "", "")
	return fs
}
