#!/usr/bin/env bash
# Stops the integration-test servers started by up.sh.
#   down.sh           stop; keep data and downloads
#   down.sh --purge   stop and wipe data (Kafka logs, JetStream store,
#                     ClickHouse tables); downloads are kept
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPTS/../.." && pwd)"
SVC=down
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPTS/lib.sh"

purge=""
case "${1:-}" in
"") ;;
--purge) purge=1 ;;
*)
	echo "usage: down.sh [--purge]" >&2
	exit 2
	;;
esac

for s in kafka nats clickhouse; do
	"$SCRIPTS/$s.sh" stop
done

mode="${STRATA_INFRA_MODE:-}"
if [[ $mode == docker ]] || { [[ -z $mode ]] && command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; }; then
	docker compose -f "$ROOT/docker-compose.yml" down ${purge:+--volumes}
fi

if [[ -n $purge ]]; then
	log "wiping $STATE_DIR (downloads in $DOWNLOADS_DIR are kept)"
	rm -rf "$STATE_DIR"
fi
rm -f "$ROOT/infra/.env.test"
