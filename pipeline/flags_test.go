package pipeline_test

import (
	"flag"
	"io"
	"slices"
	"testing"

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
