#!/usr/bin/env bash
# nats-server with JetStream on 127.0.0.1:4222 (monitoring on 127.0.0.1:8222).
#
#   nats.sh install|start|stop|restart|status
#
# Binary source (NATS_SOURCE): "go" builds nats-server $NATS_VERSION with
# `go install` (newest; needs Go), "apt" uses Debian's nats-server (bookworm:
# 2.9.10, JetStream-capable), "auto" (default) prefers go and falls back to apt.
#
# NATS_PORT, NATS_HTTP_PORT and NATS_STATE_DIR run a second, independent
# server (the chaos tests SIGKILL and restart one of their own).
# NATS_USER and NATS_PASS, both set, make clients authenticate with them
# (written to a config file of mode 600 in the state dir, not on the
# command line). NATS_TLS_CERT and NATS_TLS_KEY, both set, make clients
# connect over TLS with that certificate.
set -euo pipefail

SVC=nats
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NATS_VERSION="${NATS_VERSION:-v2.15.2}"
NATS_SOURCE="${NATS_SOURCE:-auto}"
NATS_HOST=127.0.0.1
NATS_PORT="${NATS_PORT:-4222}"
NATS_HTTP_PORT="${NATS_HTTP_PORT:-8222}"

GO_BIN_DIR="$DOWNLOADS_DIR/nats-server-$NATS_VERSION/bin"
SDIR="${NATS_STATE_DIR:-$STATE_DIR/nats}"
STORE_DIR="$SDIR/jetstream"
LOG_DIR="$SDIR/logs"
PID_FILE="$SDIR/nats.pid"
PID_MARKER="$STORE_DIR"
PID_EXE=nats-server

# nats_bin: prints the nats-server binary to use (without installing).
nats_bin() {
	if [[ $NATS_SOURCE != apt && -x $GO_BIN_DIR/nats-server ]]; then
		echo "$GO_BIN_DIR/nats-server"
	elif [[ $NATS_SOURCE != go ]] && command -v nats-server >/dev/null 2>&1; then
		command -v nats-server
	else
		return 1
	fi
}

install_go() {
	command -v go >/dev/null 2>&1 || return 1
	log "building nats-server $NATS_VERSION with go install (one-off, ~1-2 min)"
	mkdir -p "$GO_BIN_DIR"
	(cd "$DOWNLOADS_DIR" && GOBIN="$GO_BIN_DIR" GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
		go install "github.com/nats-io/nats-server/v2@$NATS_VERSION")
}

install_apt() {
	log "installing nats-server from Debian"
	apt_install nats-server
	local v
	v=$(nats-server --version | sed -n 's/.*v\([0-9]*\.[0-9]*\).*/\1/p')
	# JetStream needs >= 2.2
	if [[ -z $v ]] || ! printf '2.2\n%s\n' "$v" | sort -V -C; then
		die "Debian nats-server $v has no JetStream (need >= 2.2); install Go and use NATS_SOURCE=go"
	fi
}

do_install() {
	mkdir -p "$DOWNLOADS_DIR"
	case "$NATS_SOURCE" in
	auto | go)
		[[ -x $GO_BIN_DIR/nats-server ]] && return 0
		# a failed build is not retried on every start; delete the marker to retry
		if [[ $NATS_SOURCE == go || ! -f $GO_BIN_DIR/../.go-install-failed ]]; then
			if install_go; then
				rm -f "$GO_BIN_DIR/../.go-install-failed"
				return 0
			fi
			[[ $NATS_SOURCE == go ]] && die "go install of nats-server failed (is Go installed?)"
			mkdir -p "$GO_BIN_DIR" && touch "$GO_BIN_DIR/../.go-install-failed"
			log "go install unavailable or failed; falling back to Debian's nats-server"
		fi
		command -v nats-server >/dev/null 2>&1 || install_apt
		;;
	apt) command -v nats-server >/dev/null 2>&1 || install_apt ;;
	*) die "NATS_SOURCE must be auto, go or apt" ;;
	esac
	nats_bin >/dev/null || die "nats-server not found after install"
}

nats_ready() {
	http_get "$NATS_HOST" "$NATS_HTTP_PORT" /healthz | grep '"ok"' >/dev/null &&
		http_get "$NATS_HOST" "$NATS_HTTP_PORT" /jsz | grep '"config"' >/dev/null
}

do_start() {
	local pid bin
	if pid=$(find_pid); then
		log "already running (pid $pid)"
		return 0
	fi
	if port_open "$NATS_HOST" "$NATS_PORT" || port_open "$NATS_HOST" "$NATS_HTTP_PORT"; then
		die "port $NATS_PORT or $NATS_HTTP_PORT is in use by another process"
	fi
	bin=$(nats_bin)
	mkdir -p "$STORE_DIR" "$LOG_DIR"
	local auth=()
	if [[ -n ${NATS_USER:-} && -n ${NATS_PASS:-} ]]; then
		(
			umask 077
			printf 'authorization {\n  user: "%s"\n  password: "%s"\n}\n' "$NATS_USER" "$NATS_PASS" >"$SDIR/auth.conf"
		)
		auth=(-c "$SDIR/auth.conf")
		log "clients must authenticate as $NATS_USER"
	fi
	if [[ -n ${NATS_TLS_CERT:-} && -n ${NATS_TLS_KEY:-} ]]; then
		auth+=(--tls --tlscert "$NATS_TLS_CERT" --tlskey "$NATS_TLS_KEY")
		log "clients must connect over TLS"
	fi
	log "starting $("$bin" --version) with JetStream on $NATS_HOST:$NATS_PORT"
	spawn "$LOG_DIR/nats.log" "$bin" "${auth[@]}" -n strata-test -a "$NATS_HOST" -p "$NATS_PORT" \
		-m "$NATS_HTTP_PORT" -js -sd "$STORE_DIR"
	pid=$(<"$PID_FILE")
	if ! wait_for "${NATS_START_TIMEOUT:-30}" "$pid" nats_ready; then
		print_tail "$LOG_DIR/nats.log"
		die "nats-server did not become ready"
	fi
	log "ready (pid $pid)"
}

do_stop() { stop_service 20; }
do_status() {
	local v=""
	v=$("$(nats_bin 2>/dev/null || echo false)" --version 2>/dev/null) || true
	status_service nats "$NATS_HOST:$NATS_PORT ($v, JetStream)"
}

usage_main nats.sh "$@"
