# strata — see README.md. `make test` runs all three test tiers; it installs
# and starts real Kafka, NATS and ClickHouse on a fresh Debian machine first,
# and the Python environment of agents/pyworker for the unit tier.
SHELL := /bin/bash
GO ?= go
GOLANGCI_VERSION ?= v2.15.0
PKGS := ./...

.PHONY: all build test test-unit test-race test-integration up-test py-env bench lint proto up down fuzz clean check-cuda gpu-binaries

all: build

build:
	$(GO) build -o strata ./cmd/strata

## test: every tier — unit + embedded (with the calibration test), the unit
## and embedded tiers again under -race (-short), and the integration tier
## against real servers.
test: test-unit test-race test-integration

## -parallel 4: the closed-loop tests (t.Parallel) wait on tick round trips
## more than they compute, so four of them share two cores well.
## STRATA_PYTHON (py-env) lets cmd/strata's test serve the tactical layer with
## the Python worker of agents/pyworker; without it that test skips.
test-unit: py-env
	$(GO) vet $(PKGS)
	STRATA_PYTHON="$$(infra/scripts/pyenv.sh)" $(GO) test -count=1 -parallel 4 -timeout 10m $(PKGS)

## py-env: the virtual environment of agents/pyworker with its pinned
## requirements from PyPI, created once and cached under
## ~/.cache/strata-infra/pyenv (infra/scripts/pyenv.sh prints its python).
py-env:
	@infra/scripts/pyenv.sh >/dev/null

## The race tier covers the packages whose code or tests run goroutines
## (broker clients, servers, the pipeline, the learner); the pure numeric,
## decoding and model packages run on one goroutine and gain nothing from it
## (the unit tier runs them), nor does depcheck, which runs go list. -short
## skips the tests that only train longer.
RACE_SKIP := /agents$$|/agentstest$$|/baselines$$|/dqn$$|/draw$$|/lstm$$|/nn$$|/ppo$$|/cloud$$|/replay$$|/schemas$$|/grid$$|/stratapb$$|/telemetry$$|/dedup$$|/depcheck$$|/sequences$$
test-race:
	$(GO) test -count=1 -race -short -parallel 4 -timeout 10m $$($(GO) list $(PKGS) | grep -Ev '$(RACE_SKIP)')

## test-integration starts the servers from fresh state (a new Kafka log
## directory, JetStream store and ClickHouse data), as on a new machine, and
## runs the tier in shuffled order. STRATA_REUSE=1 keeps the running servers
## and their state (quick local runs). The chaos tests (TestChaos…) start,
## kill or stop and restart servers of their own; -run selects them too
## (before, the pattern was Integration alone and they never ran here).
test-integration: up-test
	set -a && . infra/.env.test && set +a && \
	$(GO) test -count=1 -shuffle=on -tags integration -run 'Integration|Chaos' -timeout 20m $(PKGS)

up-test:
	@if [ "$${STRATA_REUSE:-0}" != 1 ]; then infra/scripts/down.sh --purge; fi
	infra/scripts/up.sh

## check-cuda: builds and tests the CUDA backend of agents/nn (-tags
## strata_cuda: cgo over the CUDA runtime, cuBLAS and NVRTC) where CUDA 13
## is installed: the kernels compile, and on a GPU the parity tests against
## gorgonia, determinism and forward passes run (STRATA_REQUIRE_CUDA turns
## "no device" into a failure). CUDA_HOME holds include/ and lib64/ (or
## lib/: bench/cuda-wheels.sh puts the CUDA 13.0 headers and libraries of
## PyPI's wheels there on a machine without the toolkit). Neither the
## default build nor make test needs CUDA.
CUDA_HOME ?= /usr/local/cuda
CUDA_ENV = CGO_CFLAGS="-I$(CUDA_HOME)/include" CGO_LDFLAGS="-L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib" \
	LD_LIBRARY_PATH="$(CUDA_HOME)/lib64:$(CUDA_HOME)/lib:$${LD_LIBRARY_PATH:-}"
check-cuda:
	$(CUDA_ENV) $(GO) vet -tags strata_cuda ./agents/nn/... ./agents/learner/...
	$(CUDA_ENV) STRATA_REQUIRE_CUDA=1 $(GO) test -tags strata_cuda -count=1 -timeout 10m -run 'TestCUDA' -v ./agents/nn

## gpu-binaries: the CUDA backend's test binaries for a GPU machine without
## Go, xz-compressed in .gpu/: agents/nn (tests, training-step benchmarks)
## and pipeline (the learner role end to end on the embedded Kafka and
## NATS); GPU_BINARIES=learner adds agents/learner. bench/gpu-device.sh runs
## them there (docs/nn.md, "CUDA backend"); a device call carries 64 MiB, so
## not all three fit with the repository.
GPU_BINARIES ?= nn pipeline
gpu-binaries:
	mkdir -p .gpu && rm -f .gpu/*.test .gpu/*.xz
	$(CUDA_ENV) $(GO) test -tags strata_cuda -c -o .gpu/nn.test ./agents/nn
	if [[ " $(GPU_BINARIES) " == *" pipeline "* ]]; then $(CUDA_ENV) $(GO) test -tags strata_cuda -c -ldflags='-s -w' -o .gpu/pipeline.test ./pipeline; fi
	if [[ " $(GPU_BINARIES) " == *" learner "* ]]; then $(CUDA_ENV) $(GO) test -tags strata_cuda -c -ldflags='-s -w' -o .gpu/learner.test ./agents/learner; fi
	xz -T0 -6 .gpu/*.test

## bench: Go benchmarks on hot paths, then the pipeline benchmark on the full
## 14-day synthetic trace (its last line is the pipeline/raw ratio), the twin
## engine against the replay source, the closed loop against the twin engine
## and the sink against a raw ClickHouse insert (each prints its ratio last).
bench: up
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./cmd/strata bench pipeline --days 14
	$(GO) run ./cmd/strata bench twin --days 2
	$(GO) run ./cmd/strata bench loop --days 1
	set -a && . infra/.env.test && set +a && \
	$(GO) run ./cmd/strata bench sink --clickhouse "$$STRATA_CLICKHOUSE"

## fuzz runs every decoder of broker and object-store bytes for 1 M
## executions each (docs/fuzzing.md). -fuzzminimizetime bounds the
## minimisation of each new interesting input, which at the default 60 s
## would take longer than the fuzzing on the multi-kB archive and Arrow
## seeds. (go test's -timeout does not apply to the fuzzing phase.) The
## committed seed corpora (testdata/fuzz) run with every go test of their
## packages.
FUZZFLAGS = -fuzzminimizetime 100x

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzCSVReader$$' -fuzztime 1000000x $(FUZZFLAGS) ./replay/
	$(GO) test -run '^$$' -fuzz '^FuzzColumnReader$$' -fuzztime 1000000x $(FUZZFLAGS) ./replay/
	$(GO) test -run '^$$' -fuzz '^FuzzObservationDecode$$' -fuzztime 1000000x $(FUZZFLAGS) ./consumers/features/
	$(GO) test -run '^$$' -fuzz '^FuzzRestorePartition$$' -fuzztime 1000000x $(FUZZFLAGS) ./consumers/features/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime 1000000x $(FUZZFLAGS) ./consumers/sink/
	$(GO) test -run '^$$' -fuzz '^FuzzLiveArrival$$' -fuzztime 1000000x $(FUZZFLAGS) ./consumers/twin/
	$(GO) test -run '^$$' -fuzz '^FuzzRestoreCheckpoint$$' -fuzztime 1000000x $(FUZZFLAGS) ./consumers/twin/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeState$$' -fuzztime 1000000x $(FUZZFLAGS) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeDecisions$$' -fuzztime 1000000x $(FUZZFLAGS) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzSequencesFill$$' -fuzztime 1000000x $(FUZZFLAGS) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzObservationDecoder$$' -fuzztime 1000000x $(FUZZFLAGS) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzFastDecode$$' -fuzztime 1000000x $(FUZZFLAGS) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzReadCheckpoint$$' -fuzztime 1000000x $(FUZZFLAGS) ./agents/nn/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadLearner$$' -fuzztime 1000000x $(FUZZFLAGS) ./agents/dqn/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadState$$' -fuzztime 1000000x $(FUZZFLAGS) ./agents/dqn/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadModel$$' -fuzztime 1000000x $(FUZZFLAGS) ./agents/ppo/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadState$$' -fuzztime 1000000x $(FUZZFLAGS) ./agents/ppo/
	$(GO) test -run '^$$' -fuzz '^FuzzReadCheckpoint$$' -fuzztime 1000000x $(FUZZFLAGS) ./agents/lstm/
	$(GO) test -run '^$$' -fuzz '^FuzzHandle$$' -fuzztime 1000000x $(FUZZFLAGS) ./agents/learner/
	$(GO) test -run '^$$' -fuzz '^FuzzRestore$$' -fuzztime 1000000x $(FUZZFLAGS) ./agents/learner/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeLearnerState$$' -fuzztime 1000000x $(FUZZFLAGS) ./pipeline/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime 1000000x $(FUZZFLAGS) ./ingest/telemetry/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeOTLP$$' -fuzztime 1000000x $(FUZZFLAGS) ./ingest/telemetry/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckJSON$$' -fuzztime 1000000x $(FUZZFLAGS) ./ingest/telemetry/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckOTLPProto$$' -fuzztime 1000000x $(FUZZFLAGS) ./ingest/telemetry/

lint:
	@command -v golangci-lint >/dev/null || GOBIN=$$($(GO) env GOPATH)/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" golangci-lint run $(PKGS)

## proto: regenerate schemas/stratapb from schemas/proto (needs Debian's
## protobuf-compiler; protoc-gen-go is pinned as a tool in go.mod).
proto:
	@command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)
	$(GO) build -o .cache/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	protoc --plugin=protoc-gen-go=.cache/protoc-gen-go -I schemas/proto --go_out=. \
		--go_opt=module=github.com/strata-rl/strata schemas/proto/strata/v1/*.proto

up:
	infra/scripts/up.sh

down:
	infra/scripts/down.sh

clean:
	rm -f strata
