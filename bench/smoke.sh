#!/bin/sh
# bench/smoke.sh - every benchmark once, briefly, so that one which stops
# building or running is noticed by CI rather than by the next person who
# wants its figures. The figures of such short runs mean nothing.
#
#   make bench-smoke        (from the build tree)
#
# Prints each benchmark's output and ends with automake-style summary lines
# ("# PASS: N", "# FAIL: N") that .ci/run adds to its count.
set -u

srcdir=${1:?srcdir}
corpus=${2:?corpus dir}
export MD_TOP_SRCDIR="$srcdir"
pass=0
fail=0

run () {
	name=$1
	shift
	echo "+ $name: $*"
	if "$@"; then
		echo "PASS: bench $name"
		pass=$((pass + 1))
	else
		echo "FAIL: bench $name (exit $?)"
		fail=$((fail + 1))
	fi
}

run ingest bench/ingest 100
run compose bench/compose 100
run tick bench/tick 20 1000
run fidelity bench/fidelity "$corpus"
run list env MAILDESK=./maildesk "${PYTHON3:-python3}" "$srcdir/bench/list.py" 2000 20000
# One second per run; no quiet period, a fresh CI machine has deleted
# nothing yet.
if command -v smtp-sink >/dev/null 2>&1; then
	run lmtp env QUIET_SECONDS=0 sh "$srcdir/bench/lmtp.sh" 1
else
	echo "FAIL: bench lmtp (smtp-sink, from Postfix, is not installed)"
	fail=$((fail + 1))
fi

echo "# PASS: $pass"
echo "# FAIL: $fail"
[ "$fail" -eq 0 ]
