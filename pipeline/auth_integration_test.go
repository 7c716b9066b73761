//go:build integration

package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/infra/tlstest"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
)

// TestIntegrationNATSCredentials runs the real rows' closed loop against a
// nats-server of the test's own that requires a user and password: with
// them in the URL, or in STRATA_NATS_USER and STRATA_NATS_PASSWORD, the run
// completes with the twin's rows in its store and the password in no log
// line; with a wrong password it ends with NATS's authorization error,
// the password not in it, before writing anything.
func TestIntegrationNATSCredentials(t *testing.T) {
	const user, pass = "strata", "n4ts-s3cret"
	n := startChaosNATS(t, "NATS_USER="+user, "NATS_PASS="+pass)
	host := strings.TrimPrefix(n.addr, "nats://")
	for _, tc := range []struct {
		name, pass string
		env, ok    bool
	}{{"right password", pass, false, true}, {"from the environment", pass, true, true}, {"wrong password", "not-" + pass, false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			runID := "nats-auth-" + strings.ReplaceAll(tc.name, " ", "-")
			o := pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{})
			o.NATSURL = fmt.Sprintf("nats://%s:%s@%s", user, tc.pass, host)
			if tc.env {
				t.Setenv("STRATA_NATS_USER", user)
				t.Setenv("STRATA_NATS_PASSWORD", tc.pass)
				o.NATSURL = "nats://" + host
			}
			var logs bytes.Buffer
			o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			res, st, err := chaosLoop(t, o, 0, nil)
			if strings.Contains(logs.String(), tc.pass) {
				t.Errorf("the password is in the run's log")
			}
			checkAuthRun(t, runID, res, st, err, tc.ok, "authorization violation", tc.pass)
		})
	}
}

// TestIntegrationClickHouseCredentials writes the real rows' closed loop
// into a ClickHouse server of the test's own as a user that must give a
// password: with it (from STRATA_CLICKHOUSE_PASSWORD) every decision and
// reward lands; with a wrong one in the DSN the store does not open, with
// ClickHouse's error and without the password in it.
func TestIntegrationClickHouseCredentials(t *testing.T) {
	const user, pass = "strata", "ch-s3cret"
	c := startChaosClickHouse(t, "CH_USER="+user, "CH_PASSWORD="+pass)
	dsn := func(p string) string {
		return strings.Replace(c.addr, "clickhouse://", fmt.Sprintf("clickhouse://%s:%s@", user, p), 1)
	}
	_, err := store.Open(t.Context(), dsn("not-"+pass))
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "password") {
		t.Fatalf("a wrong password: %v, want ClickHouse's refusal", err)
	}
	if strings.Contains(err.Error(), "not-"+pass) {
		t.Errorf("the error shows the password: %v", err)
	}
	t.Logf("a wrong password: %v", err)
	// The password from the environment, the DSN naming only the user.
	t.Setenv("STRATA_CLICKHOUSE_PASSWORD", pass)
	st, err := store.Open(t.Context(), strings.Replace(dsn(""), ":@", "@", 1))
	if err != nil {
		t.Fatalf("the right password from STRATA_CLICKHOUSE_PASSWORD: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	const runID = "ch-auth"
	o := pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{})
	res, err := chaosLoopOn(t, o, st, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := [2]string{fmt.Sprint(res.Twin.Decisions), fmt.Sprint(res.Twin.Rewards)}
	if got := tableCounts(t, st, runID); got != want {
		t.Fatalf("decisions and rewards in ClickHouse %v, the twin wrote %v", got, want)
	}
}

// TestIntegrationKafkaSCRAM runs the real rows' closed loop on a Kafka
// broker of the test's own whose listener takes SASL/SCRAM-SHA-256 only:
// with the user and password in STRATA_KAFKA_USER and
// STRATA_KAFKA_PASSWORD the run completes with the twin's rows in its
// store; with a wrong password it ends with Kafka's authentication error,
// without the password in it, and writes nothing; a client without SASL
// is refused too.
func TestIntegrationKafkaSCRAM(t *testing.T) {
	const user, pass = "strata", "k4fka-s3cret"
	k := startChaosKafka(t, "KAFKA_SASL_USER="+user, "KAFKA_SASL_PASS="+pass)
	for _, tc := range []struct {
		name, pass string
		ok         bool
	}{{"right password", pass, true}, {"wrong password", "not-" + pass, false}, {"no credentials", "", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STRATA_KAFKA_USER", user)
			if tc.pass == "" {
				t.Setenv("STRATA_KAFKA_USER", "") // a client without SASL
			}
			t.Setenv("STRATA_KAFKA_PASSWORD", tc.pass)
			runID := "kafka-scram-" + strings.ReplaceAll(tc.name, " ", "-")
			o := pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{})
			o.Brokers, o.Partitions = []string{k.addr}, 1
			o.KafkaOutage = -1 // a refused login is not an outage to wait out
			res, st, err := chaosLoop(t, o, 0, nil)
			want := "sasl" // Kafka's authentication error; without SASL the broker closes the connection
			if tc.pass == "" {
				want = ""
			}
			checkAuthRun(t, runID, res, st, err, tc.ok, want, tc.pass)
		})
	}
}

// TestIntegrationNATSTLS runs the real rows' closed loop against a
// nats-server of the test's own that requires TLS: with its certificate
// authority in STRATA_NATS_CA the run completes with the twin's rows in
// its store; without it the connection is refused for the unknown
// authority and nothing is written.
func TestIntegrationNATSTLS(t *testing.T) {
	cert := tlstest.SelfSigned(t)
	n := startChaosNATS(t, "NATS_TLS_CERT="+cert.CertFile, "NATS_TLS_KEY="+cert.KeyFile)
	for _, tc := range []struct {
		name string
		ca   string
	}{{"trusted", cert.CertFile}, {"unknown authority", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STRATA_NATS_CA", tc.ca)
			runID := "nats-tls-" + strings.ReplaceAll(tc.name, " ", "-")
			o := pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{})
			o.NATSURL = n.addr
			res, st, err := chaosLoop(t, o, 0, nil)
			checkAuthRun(t, runID, res, st, err, tc.ca != "", "certificate", "")
		})
	}
}

// TestIntegrationKafkaTLSAndSCRAM runs the real rows' closed loop on a
// Kafka broker of the test's own whose only listener is SASL_SSL
// (SCRAM-SHA-256 over TLS, a self-signed certificate): with the
// certificate's authority in STRATA_KAFKA_CA and the credentials the run
// completes with the twin's rows in its store; without the authority it
// ends with the certificate error and writes nothing.
func TestIntegrationKafkaTLSAndSCRAM(t *testing.T) {
	const user, pass = "strata", "k4fka-tls-s3cret"
	cert := tlstest.SelfSigned(t)
	k := startChaosKafka(t, "KAFKA_SASL_USER="+user, "KAFKA_SASL_PASS="+pass,
		"KAFKA_TLS_KEYSTORE="+cert.KeystoreFile, "KAFKA_TLS_CA="+cert.CertFile)
	t.Setenv("STRATA_KAFKA_USER", user)
	t.Setenv("STRATA_KAFKA_PASSWORD", pass)
	for _, tc := range []struct{ name, ca string }{{"trusted", cert.CertFile}, {"unknown authority", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STRATA_KAFKA_CA", tc.ca)
			if tc.ca == "" {
				t.Setenv("STRATA_KAFKA_TLS", "1") // TLS against the system's authorities
			}
			runID := "kafka-tls-" + strings.ReplaceAll(tc.name, " ", "-")
			o := pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{})
			o.Brokers, o.Partitions, o.KafkaOutage = []string{k.addr}, 1, -1
			res, st, err := chaosLoop(t, o, 0, nil)
			checkAuthRun(t, runID, res, st, err, tc.ca != "", "certificate", "")
		})
	}
}

// TestIntegrationClickHouseTLS writes the real rows' closed loop into a
// ClickHouse server of the test's own over its TLS native port (a
// self-signed certificate): with the authority in STRATA_CLICKHOUSE_CA
// every decision and reward lands; without it the store does not open,
// for the unknown authority.
func TestIntegrationClickHouseTLS(t *testing.T) {
	cert := tlstest.SelfSigned(t)
	port := freePort(t)
	startChaosClickHouse(t, "CH_TLS_PORT="+fmt.Sprint(port), "CH_TLS_CERT="+cert.CertFile, "CH_TLS_KEY="+cert.KeyFile)
	dsn := fmt.Sprintf("clickhouse://127.0.0.1:%d/default?dial_timeout=5s&secure=true", port)
	if _, err := store.Open(t.Context(), dsn); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the authority: %v, want a certificate error", err)
	} else {
		t.Logf("without the authority: %v", err)
	}
	t.Setenv("STRATA_CLICKHOUSE_CA", cert.CertFile)
	st, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	const runID = "ch-tls"
	res, err := chaosLoopOn(t, pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{}), st, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := [2]string{fmt.Sprint(res.Twin.Decisions), fmt.Sprint(res.Twin.Rewards)}
	if got := tableCounts(t, st, runID); got != want {
		t.Fatalf("decisions and rewards in ClickHouse %v, the twin wrote %v", got, want)
	}
}

// checkAuthRun checks a closed loop of the real rows against a server that
// demands credentials or TLS: with ok the run completed and its store
// holds the twin's rows; without, it ended with an error containing want
// (any error when want is ""), secret (if any) not in it, and wrote no
// run, decision or reward row.
func checkAuthRun(t *testing.T, runID string, res pipeline.LoopResult, st store.Store, err error, ok bool, want, secret string) {
	t.Helper()
	if !ok {
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
			t.Fatalf("refused run: %v, want an error saying %q", err, want)
		}
		if secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the secret: %v", err)
		}
		t.Logf("refused: %v", err)
		for _, table := range []string{schemas.TableRuns, schemas.TableDecisions, schemas.TableRewards} {
			_, rows, qerr := st.Query(context.Background(), "SELECT count(*) FROM "+table+" WHERE run_id = '"+runID+"'")
			if qerr != nil {
				t.Fatal(qerr)
			}
			if got := fmt.Sprint(rows[0][0]); got != "0" {
				t.Errorf("%s holds %s rows of the refused run", table, got)
			}
		}
		return
	}
	if err != nil {
		t.Fatalf("the run: %v", err)
	}
	w := [2]string{fmt.Sprint(res.Twin.Decisions), fmt.Sprint(res.Twin.Rewards)}
	if got := tableCounts(t, st, runID); got != w || res.Twin.Ticks != 431 {
		t.Fatalf("%d ticks; decisions and rewards in the store %v, the twin wrote %v", res.Twin.Ticks, got, w)
	}
}
