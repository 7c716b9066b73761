//go:build integration

package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
)

// TestIntegrationLearnerKilledAndRestarted writes a recorded two-layer
// run's transitions to real Kafka twice (two run ids), trains one with an
// uninterrupted `strata learner` process and the other with one that is
// SIGKILLed twice mid-training and restarted, with the learners' default
// configuration; the restarted learner publishes the same checkpoints,
// entry for entry and byte for byte.
func TestIntegrationLearnerKilledAndRestarted(t *testing.T) {
	brokers, natsURL := servers(t)
	names := testNames(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bin := buildStrata(ctx, t)
	ms, err := natsbus.OpenModelStore(ctx, jetStreamForTest(ctx, t, natsURL, names), names)
	if err != nil {
		t.Fatal(err)
	}
	// The default rollout (2048) fills every 4 hours of 512 functions;
	// 6 days of 400 apps pass the DQN's 1,000-transition warm-up on day 3.
	rec := pipelinetest.LearnerRun{Hours: 24, Funcs: 512, HoursPerVersion: 4, Apps: 400}
	base := fmt.Sprintf("it-learner-%d", time.Now().UnixNano())
	whole, killed := base+"-whole", base+"-killed"
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kafka.ResolvePartitions(ctx, cl, 3, names.Topics()...)
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	rec.ProduceTransitions(t, ctx, brokers, names, whole, killed)

	// start starts `strata learner` for run; wait waits for its progress
	// of layer to reach i, failing if the process exits first.
	type proc struct {
		cmd    *exec.Cmd
		log    *pipelinetest.SyncBuffer
		exited chan error
	}
	start := func(run string) *proc {
		p := &proc{log: &pipelinetest.SyncBuffer{}, exited: make(chan error, 1)}
		p.cmd = exec.CommandContext(ctx, bin, "learner", "--kafka", strings.Join(brokers, ","), "--nats", natsURL, "--prefix", names.Prefix,
			"--run-id", run, "--log-level", "info")
		p.cmd.Stderr = p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.exited <- p.cmd.Wait() }()
		return p
	}
	wait := func(p *proc, run string, layer schemas.Layer, i int64) {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		werr := make(chan error, 1)
		go func() { werr <- ms.WaitProgress(wctx, run, layer, i) }()
		select {
		case err := <-werr:
			if err != nil {
				t.Fatalf("waiting for %s's %s progress %d: %v\n%s", run, layer, i, err, p.log)
			}
		case err := <-p.exited:
			t.Fatalf("strata learner of %s exited (%v) before its %s progress reached %d:\n%s", run, err, layer, i, p.log)
		}
	}
	finish := func(run string) string {
		p := start(run)
		wait(p, run, schemas.Tactical, int64(rec.Hours-1))
		wait(p, run, schemas.Strategic, int64(rec.Hours/4-1))
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := <-p.exited; err != nil {
			t.Fatalf("strata learner of %s: %v\n%s", run, err, p.log)
		}
		return p.log.String()
	}
	finish(whole)

	for i, k := range []int64{5, 13} {
		p := start(killed)
		wait(p, killed, schemas.Tactical, k)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.exited
		if i > 0 && !strings.Contains(p.log.String(), "learner state restored") {
			t.Fatalf("restart %d did not restore the persisted state:\n%s", i, p.log)
		}
		logRestored(t, p.log.String())
	}
	log := finish(killed)
	if !strings.Contains(log, "learner state restored") {
		t.Fatalf("the last restart did not restore the persisted state:\n%s", log)
	}
	logRestored(t, log)
	if n := pipelinetest.SameCheckpoints(t, ctx, ms, killed, whole); n < 8 {
		t.Fatalf("the learners published %d checkpoints: too few to compare", n)
	}
}

// logRestored logs the restore line of a learner's log.
func logRestored(t *testing.T, log string) {
	for line := range strings.Lines(log) {
		if strings.Contains(line, "learner state restored") {
			t.Log(strings.TrimSpace(line))
		}
	}
}
