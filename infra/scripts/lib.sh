# shellcheck shell=bash
# Common helpers for the infra scripts. Source it; do not execute it.
#
# Layout under STRATA_INFRA_HOME (default ~/.cache/strata-infra):
#   downloads/  jars, binaries and the Maven repository (kept by down.sh --purge)
#   state/<svc>/{conf,data,logs,<svc>.pid}  per-service state (wiped by --purge)

STRATA_INFRA_HOME="${STRATA_INFRA_HOME:-$HOME/.cache/strata-infra}"
# shellcheck disable=SC2034 # used by the scripts that source this file
DOWNLOADS_DIR="$STRATA_INFRA_HOME/downloads"
# shellcheck disable=SC2034
STATE_DIR="$STRATA_INFRA_HOME/state"

log() { printf '[%s] %s\n' "${SVC:-infra}" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# as_root CMD... runs CMD as root (directly when already root, else via sudo).
as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

# apt_install PKG... installs Debian packages; runs apt-get update only when needed.
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	if ! as_root apt-get install -y -q --no-install-recommends "$@"; then
		log "apt-get install failed; running apt-get update and retrying"
		as_root apt-get update -q
		as_root apt-get install -y -q --no-install-recommends "$@"
	fi
}

# port_open HOST PORT: true when a TCP connect succeeds within 1s.
port_open() {
	timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# http_get HOST PORT PATH: prints the response body (HTTP/1.0, no curl needed).
http_get() {
	local host=$1 port=$2 path=$3
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/$0/$1" || exit 1
		printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
		sed "1,/^\r\{0,1\}$/d" <&3' "$host" "$port" "$path" 2>/dev/null
}

# Each service script sets, before using the helpers below:
#   PID_FILE    its pid file
#   PID_MARKER  a string unique to its command line (a path in its state dir)
#   PID_EXE     the basename of its executable (java, nats-server, ...)

# pid_matches PID: true when PID is alive, runs PID_EXE and its command line
# contains PID_MARKER (so a recycled pid is never mistaken for the server).
pid_matches() {
	local pid=$1 cmd exe
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[[ ${exe##*/} == "$PID_EXE" ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *"$PID_MARKER"* ]]
}

# find_pid: prints the pid of the running service, or fails. A stale pid file
# is removed; a live server that lost its pid file is found again by scanning
# /proc, and its pid file rewritten.
find_pid() {
	local pid p
	if [[ -f $PID_FILE ]]; then
		pid=$(<"$PID_FILE")
		if pid_matches "$pid"; then
			echo "$pid"
			return 0
		fi
		rm -f "$PID_FILE"
	fi
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		if pid_matches "$pid"; then
			echo "$pid" >"$PID_FILE"
			echo "$pid"
			return 0
		fi
	done
	return 1
}

# spawn LOGFILE CMD...: starts CMD detached (own session, survives the calling
# shell), stdout+stderr appended to LOGFILE. The child writes its own pid
# before exec, so PID_FILE holds exactly the server's pid.
spawn() {
	local logfile=$1 i
	shift
	rm -f "$PID_FILE"
	# shellcheck disable=SC2016 # expanded by the inner bash
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" "$@" </dev/null >>"$logfile" 2>&1 &
	for ((i = 0; i < 50; i++)); do
		[[ -s $PID_FILE ]] && return 0
		sleep 0.1
	done
	die "process did not start: $*"
}

# stop_service [TIMEOUT_S]: SIGTERM, wait for a clean exit, then SIGKILL.
stop_service() {
	local timeout_s=${1:-30} pid i
	if ! pid=$(find_pid); then
		log "not running"
		return 0
	fi
	log "stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < timeout_s * 10; i++)); do
		pid_matches "$pid" || break
		sleep 0.1
	done
	if pid_matches "$pid"; then
		log "still alive after ${timeout_s}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			pid_matches "$pid" || break
			sleep 0.1
		done
	fi
	rm -f "$PID_FILE"
	log "stopped"
}

# status_service NAME ADDR: prints the state; exit 0 running, 3 stopped.
status_service() {
	local pid
	if pid=$(find_pid); then
		echo "$1: running (pid $pid) on $2"
		return 0
	fi
	echo "$1: stopped"
	return 3
}

# wait_for TIMEOUT_S PID CHECK_CMD...: polls CHECK_CMD until it succeeds;
# fails early if the process PID dies.
wait_for() {
	local timeout_s=$1 pid=$2
	shift 2
	local deadline=$((SECONDS + timeout_s))
	while ((SECONDS < deadline)); do
		if ! pid_matches "$pid"; then
			log "process $pid exited during startup"
			return 1
		fi
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.25
	done
	log "not ready after ${timeout_s}s"
	return 1
}

# print_tail FILE...: last lines of logs, for diagnosing a failed start.
print_tail() {
	local f
	for f in "$@"; do
		[[ -f $f ]] || continue
		echo "----- tail of $f -----" >&2
		tail -n 40 "$f" >&2
	done
}

# usage_main NAME: standard dispatch for {install|start|stop|status|restart}.
usage_main() {
	local name=$1
	shift
	case "${1:-}" in
	install) do_install ;;
	start)
		do_install
		do_start
		;;
	stop) do_stop ;;
	restart)
		do_stop
		do_install
		do_start
		;;
	status) do_status ;;
	*)
		echo "usage: $name {install|start|stop|restart|status}" >&2
		exit 2
		;;
	esac
}
