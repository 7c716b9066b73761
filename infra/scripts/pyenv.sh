#!/usr/bin/env bash
# The Python virtual environment of the example tactical worker
# (agents/pyworker): created once under $STRATA_INFRA_HOME/pyenv/, keyed by
# the interpreter's version and the hash of agents/pyworker/requirements.txt,
# with the pinned packages from PyPI (wheels only). Prints the environment's
# python on stdout; progress goes to stderr.
#
#   infra/scripts/pyenv.sh                    create if missing, print the python
#   eval "$(infra/scripts/pyenv.sh --export)" also export STRATA_PYTHON
#
# `make test` exports STRATA_PYTHON to the unit tier, whose Go test runs the
# worker against a closed loop (cmd/strata/pyworker_test.go). The base
# interpreter is STRATA_PYTHON_BASE (default python3, 3.11 or newer); where it
# or its venv module is missing, Debian's python3 and python3-venv are
# installed. A changed requirements file gives a new environment; old ones are
# left in place (delete $STRATA_INFRA_HOME/pyenv to reclaim them).
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPTS/../.." && pwd)"
SVC=pyenv
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPTS/lib.sh"

REQ="$ROOT/agents/pyworker/requirements.txt"
BASE="${STRATA_PYTHON_BASE:-python3}"

export_line=0
case "${1:-}" in
"") ;;
--export) export_line=1 ;;
*)
	echo "usage: pyenv.sh [--export]" >&2
	exit 2
	;;
esac

[[ -f $REQ ]] || die "missing $REQ"

if ! command -v "$BASE" >/dev/null 2>&1; then
	[[ $BASE == python3 ]] || die "STRATA_PYTHON_BASE=$BASE not found"
	log "no python3: installing Debian's"
	apt_install python3 python3-venv
fi
ver=$("$BASE" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ $(printf '3.11\n%s\n' "$ver" | sort -V | head -n1) == 3.11 ]] ||
	die "$BASE is Python $ver; the pinned pyarrow needs 3.11 or newer (set STRATA_PYTHON_BASE)"

key="py$ver-$(sha256sum "$REQ" | cut -c1-16)"
top="$STRATA_INFRA_HOME/pyenv"
dir="$top/$key"
mkdir -p "$top"

if [[ ! -f $dir/.complete || ! -x $dir/bin/python ]]; then
	# One creator at a time (parallel `make` runs share the cache); the
	# others wait and find it complete.
	exec 9>"$top/.lock"
	flock 9
	if [[ ! -f $dir/.complete || ! -x $dir/bin/python ]]; then
		start=$SECONDS
		# Debian splits venv's pip bootstrap (ensurepip) into python3-venv.
		if ! "$BASE" -c 'import venv, ensurepip' >/dev/null 2>&1; then
			log "Python $ver has no venv/ensurepip: installing Debian's python3-venv"
			apt_install python3-venv
		fi
		log "creating $dir from $REQ (Python $ver)"
		rm -rf "$dir"
		"$BASE" -m venv "$dir"
		"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
			--only-binary=:all: --requirement "$REQ" >&2
		"$dir/bin/python" -c 'import pyarrow, nats' ||
			die "the new environment cannot import pyarrow and nats"
		touch "$dir/.complete"
		log "ready in $((SECONDS - start))s"
	fi
	exec 9>&-
fi

py="$dir/bin/python"
if ((export_line)); then
	printf 'export STRATA_PYTHON=%q\n' "$py"
else
	echo "$py"
fi
