#!/usr/bin/env bash
# Installs (first run only) and starts Kafka, NATS JetStream and ClickHouse for
# integration tests, then writes infra/.env.test. Idempotent; a few seconds
# when everything is already installed.
#
# Where a Docker engine runs (`docker info` succeeds) it uses
# `docker compose up -d --wait` with the repo's docker-compose.yml instead;
# force either path with STRATA_INFRA_MODE=native|docker.
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPTS/../.." && pwd)"
ENV_FILE="$ROOT/infra/.env.test"
SVC=up
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPTS/lib.sh"

mode="${STRATA_INFRA_MODE:-}"
if [[ -z $mode ]]; then
	if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
		mode=docker
	else
		mode=native
	fi
fi

start=$SECONDS
case "$mode" in
docker)
	log "Docker engine found: docker compose up -d --wait"
	docker compose -f "$ROOT/docker-compose.yml" up -d --wait
	;;
native)
	# installs one after another (apt holds a lock), then starts in parallel
	"$SCRIPTS/nats.sh" install
	"$SCRIPTS/clickhouse.sh" install
	"$SCRIPTS/kafka.sh" install
	pids=()
	for s in kafka nats clickhouse; do
		"$SCRIPTS/$s.sh" start &
		pids+=("$!")
	done
	failed=0
	for p in "${pids[@]}"; do
		wait "$p" || failed=1
	done
	((failed == 0)) || die "some services failed to start (see above)"
	;;
*) die "STRATA_INFRA_MODE must be native or docker" ;;
esac

{
	echo "# Written by infra/scripts/up.sh ($mode mode): integration-test endpoints."
	echo "STRATA_KAFKA=127.0.0.1:9092"
	echo "STRATA_NATS=nats://127.0.0.1:4222"
	echo "STRATA_CLICKHOUSE=clickhouse://127.0.0.1:9000"
	echo "STRATA_CLICKHOUSE_HTTP=http://127.0.0.1:8123"
} >"$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "all up in $((SECONDS - start))s ($mode); wrote $ENV_FILE"
