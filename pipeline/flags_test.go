package pipeline_test

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
)

func TestConfigFlags(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		want    pipeline.Config
		invalid bool
	}{
		{name: "defaults", want: pipeline.Config{}},
		{name: "all", args: []string{"--x-kafka", "a:9092, b:9092", "--x-nats", "nats://n:4222", "--x-partitions", "3", "--x-prefix", "it-a"},
			want: pipeline.Config{Brokers: []string{"a:9092", "b:9092"}, NATSURL: "nats://n:4222", Partitions: 3, Names: schemas.Names{Prefix: "it-a"}}},
		{name: "bad prefix", args: []string{"--x-prefix", "Not_A_Prefix"}, want: pipeline.Config{Names: schemas.Names{Prefix: "Not_A_Prefix"}}, invalid: true},
		{name: "negative partitions", args: []string{"--x-partitions", "-1"}, want: pipeline.Config{Partitions: -1}, invalid: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got pipeline.Config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			got.RegisterFlags(fs, "x-")
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Brokers, c.want.Brokers) || got.NATSURL != c.want.NATSURL || got.Partitions != c.want.Partitions || got.Names != c.want.Names {
				t.Fatalf("parsed %+v, want %+v", got, c.want)
			}
			if err := got.Validate(); (err != nil) != c.invalid {
				t.Fatalf("Validate() = %v, want an error: %v", err, c.invalid)
			}
		})
	}
}

func TestGroupsOfArePrefixedAndDistinct(t *testing.T) {
	g := pipeline.GroupsOf(schemas.Names{Prefix: "p"}, "r1")
	all := []string{g.Features, g.Twin, g.Shadow, g.Sink, g.Learner}
	seen := map[string]bool{}
	for _, n := range all {
		if seen[n] || n == "" {
			t.Fatalf("groups %+v: %q twice or empty", g, n)
		}
		seen[n] = true
	}
	if g.Features != (schemas.Names{Prefix: "p"}).Group("strata-features-r1") {
		t.Fatalf("features group %q", g.Features)
	}
}

// TestParseDevice maps --device values to network backends: cpu (and the
// empty default) always, cuda only in a binary built with -tags
// strata_cuda on a machine with a GPU, where it is refused with the reason
// otherwise; anything else is refused.
func TestParseDevice(t *testing.T) {
	_, noCUDA := nn.CUDADevice()
	for _, tc := range []struct {
		in      string
		want    nn.Backend
		wantErr bool
	}{
		{"", nn.BackendCPU, false},
		{"cpu", nn.BackendCPU, false},
		{"cuda", nn.BackendCUDA, noCUDA != nil},
		{"gpu", "", true},
		{"CPU", "", true},
	} {
		got, err := pipeline.ParseDevice(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("ParseDevice(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
		if tc.in == "cuda" && err != nil && !strings.Contains(err.Error(), "cuda") {
			t.Errorf("ParseDevice(cuda): error %q does not say why", err)
		}
	}
	r := pipeline.DefaultLearnerRole()
	r.Brokers, r.NATSURL, r.RunID, r.Device = "k:9092", "nats://n:4222", "run", "tpu"
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "--device") {
		t.Errorf("strata learner --device tpu: Validate() = %v, want an error naming --device", err)
	}
}
