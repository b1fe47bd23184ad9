#!/usr/bin/env bash
# Fuzz the frame parser (csrc/parse.c) with libFuzzer + ASan + UBSan.
#   scripts/fuzz.sh [SECONDS]     default 60
# Builds build/fuzz/fuzz_parse (again only when a source changed), writes a seed corpus made
# by csrc/fuzz/make_seeds.py (scapy) into a temporary directory, and fuzzes for SECONDS.  The
# corpus it grows is kept in build/fuzz/corpus for the next run.  Exits non-zero on any
# finding (a sanitizer report or an invariant of csrc/fuzz/fuzz_parse.c violated), printing
# the reproducer's path and bytes; replay it with `build/fuzz/fuzz_parse FILE`.
# Needs clang with its libFuzzer runtime (Debian: clang libclang-rt-14-dev) and libdpdk's
# headers; scapy for the seeds (without it, fuzzing starts from the kept corpus alone).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs < 1)); then
    echo "usage: scripts/fuzz.sh [SECONDS]" >&2
    exit 2
fi

CC=${CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz.sh: clang not found: install it (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi

out=build/fuzz
bin=$out/fuzz_parse
mkdir -p "$out/corpus" "$out/findings"

if cflags=$(pkg-config --cflags libdpdk 2>/dev/null); then
    :
else   # parse.c needs only rte_byteorder.h (header-only) and rte_config.h
    cflags="-I/usr/include/dpdk -I/usr/include/$(uname -m)-linux-gnu/dpdk -include rte_config.h"
fi
srcs=(csrc/parse.c csrc/parse.h csrc/include/dpdkswitch.h csrc/fuzz/fuzz_parse.c scripts/fuzz.sh)
if [[ ! -x $bin ]] || [[ -n $(find "${srcs[@]}" -newer "$bin" 2>/dev/null) ]]; then
    echo "fuzz.sh: building $bin"
    # shellcheck disable=SC2086  # cflags is a list of flags
    if ! "$CC" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
            -fno-sanitize-recover=all -Wall -Wextra $cflags -Icsrc/include -Icsrc \
            csrc/parse.c csrc/fuzz/fuzz_parse.c -o "$bin.tmp"; then
        echo "fuzz.sh: build failed (libFuzzer's runtime is in Debian's libclang-rt-14-dev;" \
             "libdpdk's headers in libdpdk-dev)" >&2
        rm -f "$bin.tmp"
        exit 1
    fi
    mv "$bin.tmp" "$bin"
fi

seeds=$(mktemp -d /tmp/dps-fuzz-seeds.XXXXXX)
trap 'rm -rf "$seeds"' EXIT
if ! ${PYTHON:-python3} csrc/fuzz/make_seeds.py "$seeds"; then
    echo "fuzz.sh: warning: could not make the seed corpus (is scapy installed?);" \
         "fuzzing from build/fuzz/corpus alone" >&2
fi

# Findings of earlier runs stay in findings/ for reference; only this run's count.
stamp=$out/.run-start
touch "$stamp"
log=$out/fuzz.log
echo "fuzz.sh: fuzzing dps_parse_ofs for ${secs}s (log: $log)"
rc=0
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=2048 -print_final_stats=1 \
    -dict=csrc/fuzz/parse.dict -artifact_prefix="$out/findings/" \
    "$out/corpus" "$seeds" >"$log" 2>&1 || rc=$?

mapfile -t found < <(find "$out/findings" -type f -newer "$stamp" | sort)
if ((rc != 0)) || ((${#found[@]} > 0)); then
    echo "fuzz.sh: FINDING (libFuzzer exit $rc). Report:" >&2
    grep -E "^(==[0-9]+==ERROR|SUMMARY|fuzz_parse: invariant|frame \(|.*runtime error)" "$log" | head -20 >&2 || true
    for f in "${found[@]}"; do
        echo "fuzz.sh: reproducer: $f ($(stat -c %s "$f") bytes)" >&2
        echo "fuzz.sh:   hex: $(od -An -v -tx1 "$f" | tr -d ' \n')" >&2
        echo "fuzz.sh:   replay: $bin $f" >&2
    done
    ((${#found[@]} > 0)) || echo "fuzz.sh: no reproducer written; see $log" >&2
    exit 1
fi
grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|cov: .* corp: " "$log" | tail -3 || true
echo "fuzz.sh: no finding in ${secs}s"
