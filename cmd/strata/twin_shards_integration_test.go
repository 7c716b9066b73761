//go:build integration

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// TestIntegrationTwinSharded runs the 998 real rows' closed loop on real
// Kafka and NATS twice: as one `strata run`, and as two `strata run
// --twin-shard I/2` processes side by side — shard 0 with the replay, the
// features and the agents, shard 1 with its twin shard alone, each twin
// holding the apps of its own partitions. The decisions and rewards topics
// of the two runs must hold the same records (each key's deterministic
// encoding; their digests are logged), the shards' ticks must be the run's
// and their invocations must add up to the run's.
func TestIntegrationTwinSharded(t *testing.T) {
	brokers, natsURL := servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := buildStrata(ctx, t)
	const runID = "it-twin-shards"
	dir := t.TempDir()
	cmd := func(names schemas.Names, summary string, extra ...string) (*exec.Cmd, *bytes.Buffer) {
		c := exec.CommandContext(ctx, bin, realRowsRun(brokers, natsURL, names, runID, summary, append([]string{"--partitions", "4", "--store", ""}, extra...)...)...)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		return c, &out
	}
	refNames := testNames(t)
	ref, refOut := cmd(refNames, filepath.Join(dir, "ref.json"))
	if err := ref.Run(); err != nil {
		t.Fatalf("one twin: %v\n%s", err, refOut)
	}
	want := readSummary(t, filepath.Join(dir, "ref.json"))

	names := testNames(t)
	var procs []*exec.Cmd
	var outs []*bytes.Buffer
	for i := range 2 {
		c, out := cmd(names, filepath.Join(dir, fmt.Sprintf("shard%d.json", i)), "--twin-shard", fmt.Sprintf("%d/2", i))
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		procs, outs = append(procs, c), append(outs, out)
	}
	var invocations float64
	for i, c := range procs {
		if err := c.Wait(); err != nil {
			t.Fatalf("twin shard %d: %v\n%s", i, err, outs[i])
		}
		got := readSummary(t, filepath.Join(dir, fmt.Sprintf("shard%d.json", i)))
		if got["twin_ticks"] != want["twin_ticks"] || got["twin_shard"] != fmt.Sprintf("%d/2", i) {
			t.Errorf("shard %d: %v ticks (shard %v), want %v", i, got["twin_ticks"], got["twin_shard"], want["twin_ticks"])
		}
		n, _ := got["invocations"].(float64)
		if n == 0 {
			t.Errorf("shard %d evaluated no invocation: the run's apps are not spread over both shards", i)
		}
		t.Logf("shard %d: %v invocations", i, n)
		invocations += n
	}
	if invocations != want["invocations"] {
		t.Errorf("the shards' invocations add up to %v, the run has %v", invocations, want["invocations"])
	}
	for _, topic := range []string{schemas.TopicDecisions, schemas.TopicRewards} {
		w, wd := keyedRecords(ctx, t, brokers, refNames.Topic(topic), topic)
		g, gd := keyedRecords(ctx, t, brokers, names.Topic(topic), topic)
		t.Logf("%s: %d records, digest %s from one twin; %d, digest %s from the shards", topic, len(w), wd, len(g), gd)
		if len(w) == 0 || len(g) != len(w) || gd != wd {
			t.Errorf("%s: the shards wrote %d records (digest %s), one twin %d (%s)", topic, len(g), gd, len(w), wd)
		}
	}
}

// keyedRecords reads topic (a decisions or rewards topic, base name base)
// and returns its records by layer, tick, app and function, as their
// deterministic encodings, with a SHA-256 over them in key order (the
// table's digest, FINAL). It fails t if a key holds two different records.
func keyedRecords(ctx context.Context, t *testing.T, brokers []string, topic, base string) (map[string]string, string) {
	t.Helper()
	out := map[string]string{}
	for _, r := range kafkatest.ReadTopics(t, ctx, brokers, topic) {
		var m interface {
			proto.Message
			GetLayer() string
			GetTick() int64
			GetApp() string
			GetFunc() string
		}
		if base == schemas.TopicDecisions {
			m = &stratapb.Decision{}
		} else {
			m = &stratapb.Reward{}
		}
		if err := proto.Unmarshal(r.Value, m); err != nil {
			t.Fatal(err)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprintf("%s/%d/%s/%s", m.GetLayer(), m.GetTick(), m.GetApp(), m.GetFunc())
		if prev, ok := out[k]; ok && prev != string(b) {
			t.Fatalf("%s holds %s twice, differently", topic, k)
		}
		out[k] = string(b)
	}
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(out)) {
		h.Write([]byte(out[k]))
	}
	return out, hex.EncodeToString(h.Sum(nil))[:16]
}
