#!/bin/sh
# bench/lmtp.sh - `maildesk serve` under LMTP load, against Postfix's null
# LMTP server in the same run (issue 3, "Speed and scale").
#
#   make bench && bench/lmtp.sh [SECONDS_PER_RUN]      (from the build tree)
#
# 1. A fresh desk (durable: WAL, synchronous=FULL, the shipped rules; each
#    new ticket queues an acknowledgement, which the desk's sender then
#    really sends to a null SMTP server) and `smtp-sink -L`, both driven by
#    bench/lmtp with 1, 8, 16 and 32 sessions of distinct 4 KB messages:
#    messages/s, p50/p99 from end of DATA to 250, server CPU, peak RSS,
#    CPU µs per message of maildesk's writer thread, of its spool-and-parse
#    pool and of its main loop, and of the load client; for maildesk the
#    messages/s all the way through (their desk mail composed and sent
#    too); and maildesk's rate as a share of the null server's (target
#    >= 50 % at 16).  In the same runs, bench/floor: an LMTP server that
#    does before each 250 only the durable minimum DESIGN 5 requires of
#    any implementation (the raw message in its fsync'd content-addressed
#    file, a GMime parse, a row committed with synchronous=FULL, commits
#    shared) and nothing else: the highest ratio reachable here.
# 2. Another fresh desk with 1 ms added to every fsync/fdatasync (the
#    LD_PRELOAD shim bench/fsync-delay.c, to model a real disk): 1 and 16
#    sessions and their ratio (target >= 5x: group commit).
# 3. A fresh `maildesk serve` holding 256 idle sessions: its RSS (target
#    < 64 MB).
# Needs smtp-sink (Postfix), python3 (free ports) and cc; runs as root or not.
set -eu

seconds=${1:-5}
builddir=$(pwd)
srcdir=$(cd "$(dirname "$0")/.." && pwd)
maildesk=$builddir/maildesk
client=$builddir/bench/lmtp
floor=$builddir/bench/floor
[ -x "$maildesk" ] && [ -x "$client" ] && [ -x "$floor" ] || { echo "build first: make && make bench" >&2; exit 1; }
command -v smtp-sink >/dev/null || { echo "smtp-sink (Postfix) is needed" >&2; exit 1; }
sink_user=nobody

tmp=$(mktemp -d "${TMPDIR:-/tmp}/maildesk-lmtpbench.XXXXXX")
pids=
cleanup () {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port () {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port () {
	python3 - "$1" <<'EOF'
import socket, sys, time
deadline = time.time() + 15
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

# start_sink LMTP|SMTP: a null server; sets sink_pid and sink_port.
start_sink () {
	sink_port=$(free_port)
	if [ "$1" = LMTP ]; then
		smtp-sink -u "$sink_user" -L "127.0.0.1:$sink_port" 256 &
	else
		smtp-sink -u "$sink_user" "127.0.0.1:$sink_port" 256 &
	fi
	sink_pid=$!
	pids="$pids $sink_pid"
	wait_port "$sink_port"
}

# start_desk NAME [PRELOAD]: a fresh desk and its `maildesk serve`; sets
# md_pid and md_port.  Its own mail goes to the null SMTP server.
start_desk () {
	dir=$tmp/$1
	mkdir -p "$dir"
	md_port=$(free_port)
	cat >"$dir/maildesk.conf" <<EOF
[desk]
name = Bench Support
domain = support.example.com
intake = support
ticket_prefix = SUP
data_dir = $dir/var
rules = $srcdir/filters/default.rules
forms = $srcdir/filters/forms.conf
templates = $srcdir/templates/
[lmtp]
listen = 127.0.0.1:$md_port
[smtp]
url = smtp://127.0.0.1:$relay_port
EOF
	if [ -n "${2:-}" ]; then
		LD_PRELOAD=$2 "$maildesk" -c "$dir/maildesk.conf" serve >"$dir/serve.log" 2>&1 &
	else
		"$maildesk" -c "$dir/maildesk.conf" serve >"$dir/serve.log" 2>&1 &
	fi
	md_pid=$!
	pids="$pids $md_pid"
	wait_port "$md_port" || { cat "$dir/serve.log" >&2; exit 1; }
}

# start_floor: bench/floor on a fresh directory; sets floor_pid, floor_port.
start_floor () {
	mkdir -p "$tmp/floor"
	floor_port=$(free_port)
	"$floor" "$tmp/floor" "$floor_port" &
	floor_pid=$!
	pids="$pids $floor_pid"
	wait_port "$floor_port"
}

stop_desk () {
	kill "$md_pid"
	wait "$md_pid" || true
}

# field KEY LINE: the value of KEY=value in a bench/lmtp line.
field () {
	printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# drain_seconds: how long the desk under test ($dir) takes to send the
# mail its tickets queued (acknowledgements, questions), at most 300 s.
drain_seconds () {
	python3 - "$dir/var/maildesk.db" <<'EOF2'
import sqlite3, sys, time
start = time.time()
db = sqlite3.connect(sys.argv[1], timeout=10)
while time.time() - start < 300:
    if db.execute("SELECT count(*) FROM outbox WHERE state = 'queued'").fetchone()[0] == 0:
        break
    time.sleep(0.05)
print(f"{time.time() - start:.2f}")
EOF2
}

# run LABEL PID ADDRESS SESSIONS: one load run, one table row; the
# client's line is kept in $last.  For maildesk the row also says how
# many messages a second went all the way through: accepted, and their
# desk mail composed and sent (the run's time plus the time the sender
# then needed to empty the outbox); the next run starts with it empty.
run () {
	last=$("$client" -s "$4" -t "$seconds" -p "$2" "$3") || {
		echo "bench/lmtp failed against $1: $last" >&2
		exit 1
	}
	through=-
	if [ "$1" = maildesk ]; then
		drain=$(drain_seconds)
		through=$(python3 -c "import sys; print(f'{float(sys.argv[1]) / (float(sys.argv[2]) + float(sys.argv[3])):.1f}')" \
			"$(field messages "$last")" "$(field seconds "$last")" "$drain")
	fi
	printf '%8s  %-9s %9s %8s %8s %6s %9s %8s %7s %7s %7s %7s %9s\n' "$4" "$1" "$(field rate "$last")" \
		"$(field p50_ms "$last")" "$(field p99_ms "$last")" "$(field server_cpu_pct "$last")" \
		"$(field server_cpu_us_per_msg "$last")" "$(field server_hwm_mb "$last")" \
		"$(field writer_cpu_us_per_msg "$last")" "$(field pool_cpu_us_per_msg "$last")" \
		"$(field loop_cpu_us_per_msg "$last")" "$(field client_cpu_us_per_msg "$last")" "$through"
}

header () {
	printf '%8s  %-9s %9s %8s %8s %6s %9s %8s %7s %7s %7s %7s %9s\n' sessions server msg/s "p50 ms" "p99 ms" "CPU%" \
		"CPU us/m" "HWM MB" writer pool loop client "sent/s"
}

ratio () {
	python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"
}

# Creating a file costs 20x more (300 us instead of 13) for about ten
# seconds after many files were deleted, on ext4 without a journal as on
# this project's VM (the allocator reads every recently freed inode):
# `make check` just before would skew the first runs.  Let it settle.
sleep "${QUIET_SECONDS:-15}"
echo "# bench/lmtp.sh: ${seconds}s per run, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), $("$maildesk" --version 2>/dev/null | head -1)"
start_sink SMTP
relay_port=$sink_port

echo
echo "## 1. maildesk serve (synchronous=FULL) vs smtp-sink -L (stores nothing)"
start_desk plain
start_sink LMTP
start_floor
header
for s in 1 8 16 32; do
	run maildesk "$md_pid" "127.0.0.1:$md_port" "$s"
	eval "md_$s=\$(field rate \"\$last\")"
	run smtp-sink "$sink_pid" "127.0.0.1:$sink_port" "$s"
	eval "sink_$s=\$(field rate \"\$last\")"
	run floor "$floor_pid" "127.0.0.1:$floor_port" "$s"
	eval "floor_$s=\$(field rate \"\$last\")"
done
stop_desk
for s in 1 8 16 32; do
	eval "echo \"maildesk/smtp-sink at $s sessions: \$(ratio \$md_$s \$sink_$s)   (floor/smtp-sink: \$(ratio \$floor_$s \$sink_$s))\""
done
echo "target: >= 0.50 at 16 sessions"

echo
echo "## 2. 1 ms added to every fsync/fdatasync (LD_PRELOAD bench/fsync-delay.c)"
cc -O2 -shared -fPIC -o "$tmp/fsync-delay.so" "$srcdir/bench/fsync-delay.c" -ldl
start_desk delayed "$tmp/fsync-delay.so"
header
run maildesk "$md_pid" "127.0.0.1:$md_port" 1
d1=$(field rate "$last")
run maildesk "$md_pid" "127.0.0.1:$md_port" 16
d16=$(field rate "$last")
stop_desk
echo "16 sessions / 1 session: $(ratio "$d16" "$d1")x (target: >= 5x)"

echo
echo "## 3. 256 idle sessions on a fresh maildesk serve"
start_desk idle
line=$("$client" -i 256 -p "$md_pid" "127.0.0.1:$md_port")
stop_desk
echo "RSS $(field server_rss_mb "$line") MB, peak $(field server_hwm_mb "$line") MB with 256 sessions open (target: < 64 MB)"
