#!/usr/bin/env bash
# run.sh - build every libFuzzer target under tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) and run each for a bounded time
# on its seed corpus.  `make fuzz` runs it from a configured build tree.
#
#   tests/fuzz/run.sh SRCDIR BUILDDIR CORPUS [TARGET...]
#
# SRCDIR is the source tree, BUILDDIR a configured build tree (its
# config.h is used), CORPUS the shared mail corpus.  FUZZ_SECONDS (60)
# bounds each target's run, FUZZ_JOBS (2) how many run at once, FUZZ_SEED (1)
# its random seed, so that a CI run is repeatable.  The
# maildesk library is compiled again with clang into BUILDDIR/fuzz/.
#
# Prints one TAP line per target with its executions, then summary lines
# "# PASS: N" / "# FAIL: N" as automake's harness does (.ci/run sums
# them).  A crash, leak, timeout or failed check leaves its input in
# BUILDDIR/fuzz/NAME-crash-*; turn it into a regression seed under
# tests/fuzz/regressions/NAME/ (tests/test-fuzz-regressions runs them).
set -uo pipefail

srcdir=$(cd "${1:?SRCDIR}" && pwd)
builddir=$(cd "${2:?BUILDDIR}" && pwd)
corpus=${3:?CORPUS}
shift 3
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
work=$builddir/fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(calendar trim template rules lmtp ingest outgoing prefilter authres)

mkdir -p "$work/obj"
modules="glib-2.0 gio-2.0 gio-unix-2.0 gmime-3.0 json-glib-1.0 libpcre2-8 sqlite3 libcurl libxml-2.0 libytnef gnutls libetpan"
# Debian's libetpan.pc leaks a -specs flag from its own build (see configure.ac)
pc_cflags=$(pkg-config --cflags $modules | sed -e 's/-specs=[^ ]*//g')
pc_libs=$(pkg-config --libs $modules | sed -e 's/-specs=[^ ]*//g')
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-g -O1 $san -I$builddir -I$srcdir/src -I$srcdir/tests -DMD_FUZZ_SRCDIR=\"$srcdir\"
	-DMD_SYSCONFDIR=\"/etc\" -DMD_PKGDATADIR=\"$srcdir\" $pc_cflags -w"

# ---- build: the library once, then one executable per target ----
build_log=$work/build.log
: >"$build_log"
lib_sources=$(sed -n 's/^src_libmaildesk_a_SOURCES += //p' "$srcdir/Makefile.am" | tr ' ' '\n' | grep '\.c$')
objs=()
pids=()
for src in $lib_sources; do
	obj=$work/obj/$(basename "$src" .c).o
	objs+=("$obj")
	if [ ! -e "$obj" ] || [ "$srcdir/$src" -nt "$obj" ] || [ "$builddir/config.h" -nt "$obj" ]; then
		clang $cflags -fsanitize=fuzzer-no-link -c "$srcdir/$src" -o "$obj" >>"$build_log" 2>&1 &
		pids+=($!)
		if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}" || echo "compile failed: $src" >>"$build_log"; pids=("${pids[@]:1}"); fi
	fi
done
for p in "${pids[@]}"; do wait "$p" || echo "compile failed" >>"$build_log"; done
rm -f "$work/libmaildesk-fuzz.a"
if grep -q 'compile failed' "$build_log" || ! ar cr "$work/libmaildesk-fuzz.a" "${objs[@]}"; then
	cat "$build_log"
	echo "Bail out! the maildesk library does not build with clang for fuzzing"
	echo "# PASS: 0"
	echo "# FAIL: ${#targets[@]}"
	exit 1
fi

extra_sources () { # what a target needs besides the library
	case $1 in
	lmtp) echo "$srcdir/tests/lmtp-recorder.c" ;;
	esac
}

# Seed directories, read-only; new inputs go to $work/corpus-NAME.
seeds () {
	case $1 in
	calendar) echo "$srcdir/tests/fuzz/seeds/calendar" ;;
	trim) echo "$corpus/replies" ;;
	template) echo "$srcdir/templates" ;;
	rules) echo "$srcdir/filters $srcdir/tests/fuzz/seeds/rules" ;;
	lmtp) echo "$srcdir/tests/fuzz/corpus-lmtp" ;;
	ingest) echo "$corpus/mime $srcdir/tests/fuzz/seeds/ingest" ;;
	outgoing) echo "$srcdir/tests/fuzz/seeds/outgoing" ;;
	prefilter) echo "$srcdir/tests/fuzz/seeds/prefilter" ;;
	authres) echo "$srcdir/tests/fuzz/seeds/authres" ;;
	esac
}

# Per-target libFuzzer options: inputs big enough for mail, not more.
options () {
	case $1 in
	ingest) echo "-max_len=65536 -timeout=20" ;;
	lmtp) echo "-max_len=8192 -timeout=10" ;;
	trim) echo "-max_len=65536 -timeout=10" ;;
	*) echo "-max_len=8192 -timeout=10" ;;
	esac
}

run_target () { # NAME: builds and runs one target; writes $work/NAME.result
	local name=$1 exe=$work/fuzz-$1 log=$work/$1.log
	if ! clang $cflags -fsanitize=fuzzer "$srcdir/tests/fuzz/fuzz-$name.c" $(extra_sources "$name") \
		"$work/libmaildesk-fuzz.a" $pc_libs -lm -o "$exe" >"$log" 2>&1; then
		echo "not ok - fuzz-$name: does not build" >"$work/$name.result"
		return
	fi
	mkdir -p "$work/corpus-$name"
	local dirs=()
	for d in $(seeds "$name"); do [ -d "$d" ] && dirs+=("$d"); done
	# MD_TOP_SRCDIR: the targets find filters/ and templates/ there
	( cd "$work" && MD_TOP_SRCDIR=$srcdir \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=$srcdir/tests/lsan.supp:print_suppressions=0 \
		"$exe" -max_total_time="$seconds" -seed="${FUZZ_SEED:-1}" -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/$name-" $(options "$name") \
		"$work/corpus-$name" "${dirs[@]}" ) >>"$log" 2>&1
	local rc=$?
	local runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
	local cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	if [ $rc -eq 0 ] && [ -n "$runs" ]; then
		echo "ok - fuzz-$name: ${runs} executions in ${seconds} s, ${cov:-cov: ?}" >"$work/$name.result"
	else
		{
			echo "not ok - fuzz-$name: exit $rc after ${runs:-?} executions"
			grep -E -A30 'ERROR: (Address|Leak)Sanitizer|runtime error|check failed|ERROR: libFuzzer|Test unit written' "$log" \
				| head -60 | sed 's/^/# /'
			if grep -q 'LeakSanitizer' "$log"; then
				echo "# leak stacks stop at GLib (no frame pointers); for whole ones:"
				echo "#   ASAN_OPTIONS=fast_unwind_on_malloc=0 MD_TOP_SRCDIR=$srcdir $exe -runs=0 $work/corpus-$name"
			fi
		} >"$work/$name.result"
	fi
}

running=()
for t in "${targets[@]}"; do
	rm -f "$work/$t.result"
	run_target "$t" &
	running+=($!)
	if [ ${#running[@]} -ge "$jobs" ]; then wait "${running[0]}"; running=("${running[@]:1}"); fi
done
wait

pass=0 fail=0 n=0
echo "1..${#targets[@]}"
for t in "${targets[@]}"; do
	n=$((n + 1))
	line=$(head -1 "$work/$t.result" 2>/dev/null || echo "not ok - fuzz-$t: no result")
	case $line in
	ok*) pass=$((pass + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
	echo "${line/ok -/ok $n -}"
	tail -n +2 "$work/$t.result" 2>/dev/null
done
echo "# PASS: $pass"
echo "# FAIL: $fail"
[ $fail -eq 0 ]
